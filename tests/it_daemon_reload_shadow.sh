#!/bin/sh
# it_daemon_reload_shadow.sh - reload.shadow live, against a real mosquitto:
# a detecting stream whose detector's model file changes on SIGHUP keeps its
# live model, threshold and phase (no recalibration, no alert closed) and
# evaluates the new model in shadow beside it; the decision (promoted or
# rejected) is published with its figures on <state topic>/events, and the
# stream's state names the model that runs afterwards.
. tests/lib.sh
it_setup it_reload_shadow
SRC=$(cd "${AD_SRCDIR:-.}" && pwd)

# a candidate model file of the same shape: a small autoencoder trained on
# one simulated day of another pump
$PYTHON tools/pumpsim.py --seed 5 --days 1 --out "$D/p5.csv" &&
$AD_BIN train -i "$D/p5.csv" -o "$D/cand.safetensors" --arch lstm-ae:8 --epochs 2 --hop 4 \
    --loss mae > "$D/train.log" 2>&1 ||
    { it_fail "candidate model trained" "$(tail -5 "$D/train.log")"; exit 1; }
cp "$SRC/conf/models/pump.safetensors" "$D/model.safetensors"
old_id=$($AD_BIN info "$D/model.safetensors" | awk '/^id:/ { print $2 }')
new_id=$($AD_BIN info "$D/cand.safetensors" | awk '/^id:/ { print $2 }')
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-rshadow", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$D/model.safetensors", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"shadow_windows": 40, "normal_windows": 60, "min_windows": 20},
   "reload": {"shadow": true},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up --log-level info
START=$(( $(date +%s) - 1000 * 60 ))
pub() { # pub FROM TO: rows FROM..TO-1 of pump1, one a minute from START
    $H pub --port "$IT_PORT" --devices 1 --start "$START" --start-row "$1" --rows "$2" >/dev/null
}
# state_field KEY: KEY of pump1's last retained state
state_field() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
v = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1":
        v = json.loads(m["payload"]).get(sys.argv[2])
print(v)
EOP
}
pub 0 200
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
    --timeout 30 >/dev/null || { it_fail "pump1 calibrates" "$(tail -5 "$D/daemon.log")"; exit 1; }
thr0=$(state_field threshold)

cp "$D/cand.safetensors" "$D/model.safetensors"
kill -HUP "$DPID"
if it_wait_log "$D/daemon.log" "1 evaluating it in shadow" 20; then
    it_ok "SIGHUP with a new model file: the detecting stream evaluates it in shadow"
else
    it_fail "SIGHUP with a new model file: the detecting stream evaluates it in shadow" \
        "$(grep -E 'reload|shadow' "$D/daemon.log" | tail -5)"
    exit 1
fi
pub 200 240
sleep 1
if [ "$(state_field phase)" = detecting ] && [ "$(state_field model_id)" = "$old_id" ] &&
   [ "$(state_field threshold)" = "$thr0" ] &&
   ! grep -q '"reason": *"model_changed"' "$D/sub.jsonl"; then
    it_ok "while in shadow the live model ($old_id), its threshold and phase continue"
else
    it_fail "while in shadow the live model, its threshold and phase continue" \
        "phase $(state_field phase) model $(state_field model_id) threshold $(state_field threshold) (was $thr0)"
fi
# the shadow span passes: a decision with its figures
k=240
while [ $k -lt 600 ]; do
    pub $k $((k + 40)); k=$((k + 40))
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events event=adapt \
        decision=promoted --timeout 2 >/dev/null && { dec=promoted; break; }
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events event=adapt \
        decision=rejected --timeout 0.1 >/dev/null && { dec=rejected; break; }
done
sleep 1
mid=$(state_field model_id)
case ${dec:-none} in
promoted) want=$new_id ;;
rejected) want=$old_id ;;
*) want=none ;;
esac
if [ "$want" != none ] && [ "$mid" = "$want" ]; then
    it_ok "the candidate is $dec after its shadow span; the stream runs model $mid"
else
    it_fail "a shadow decision is published and the state names the model that runs" \
        "decision ${dec:-none}, model $mid (old $old_id, new $new_id); $(grep -iE 'shadow|adapt|continual' "$D/daemon.log" | tail -5)"
fi
it_daemon_stop
exit 0
