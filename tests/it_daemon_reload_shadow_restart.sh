#!/bin/sh
# it_daemon_reload_shadow_restart.sh - reload.shadow across a restart and an
# eviction, against a real mosquitto. A model file that is in shadow at a
# stop is evaluated in shadow again after the restart (the live model, its
# threshold and phase go on: the file is not taken unevaluated); a file the
# shadow rejected stays out after a restart and after the stream's eviction
# and return (the daemon said the live model runs: it does, with its
# calibration, and the log says so once, naming the file); a file changed
# again after that is a new candidate, evaluated in shadow on SIGHUP.
. tests/lib.sh
it_setup it_reload_shadow_restart
SRC=$(cd "${AD_SRCDIR:-.}" && pwd)

# candidate model files of the same shape, trained on another simulated pump
$PYTHON tools/pumpsim.py --seed 5 --days 1 --out "$D/p5.csv" &&
$AD_BIN train -i "$D/p5.csv" -o "$D/cand.safetensors" --arch lstm-ae:4 --epochs 1 --hop 4 \
    --loss mae > "$D/train.log" 2>&1 &&
$AD_BIN train -i "$D/p5.csv" -o "$D/cand2.safetensors" --arch lstm-ae:6 --epochs 1 --hop 4 \
    --loss mae >> "$D/train.log" 2>&1 ||
    { it_fail "candidate models trained" "$(tail -5 "$D/train.log")"; exit 1; }
cp "$SRC/conf/models/pump.safetensors" "$D/model.safetensors"
old_id=$($AD_BIN info "$D/model.safetensors" | awk '/^id:/ { print $2 }')
new_id=$($AD_BIN info "$D/cand.safetensors" | awk '/^id:/ { print $2 }')
it_broker_up
# min_gain 0.9: the candidate is rejected
conf() { # conf IDLE_EVICT_S [ALERT_K]
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-rsrestart", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$D/model.safetensors", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false}, "idle_evict_s": $1,
   "adapt": {"shadow_windows": 40, "normal_windows": 60, "min_windows": 20, "min_gain": 0.9},
   "reload": {"shadow": true},
   "alert": {"k": ${2:-3}, "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
conf 3600
it_sub_start
start() { # start LOG
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/$1" & DPID=$!
    it_wait_log "$D/$1" "connected|online" 20
    sleep 1
}
stop() { kill -TERM "$DPID"; wait "$DPID"; DPID=; }
start daemon.log
it_daemon_online
START=$(( $(date +%s) - 2000 * 60 ))
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
    if m["topic"] == "anomalyd/state/pump/pump1":   # emptied at an eviction
        v = json.loads(m["payload"]).get(sys.argv[2]) if m["payload"] else None
print(v)
EOP
}
live_ok() { # live_ok: the old model runs with its threshold, detecting
    [ "$(state_field model_id)" = "$old_id" ] && [ "$(state_field threshold)" = "$thr0" ] &&
    [ "$(state_field phase)" = detecting ]
}
live_said() { echo "model $(state_field model_id) threshold $(state_field threshold) phase $(state_field phase) (want $old_id $thr0 detecting)"; }
pub 0 200
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
    --timeout 30 >/dev/null || { it_fail "pump1 calibrates" "$(tail -5 "$D/daemon.log")"; exit 1; }
thr0=$(state_field threshold)

# 1. a stop while the new file is in shadow
cp "$D/cand.safetensors" "$D/model.safetensors"
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "1 evaluating it in shadow" 20 ||
    { it_fail "SIGHUP: the new file is evaluated in shadow" "$(tail -5 "$D/daemon.log")"; exit 1; }
pub 200 220
sleep 1
stop
start daemon2.log
pub 220 230
sleep 2
if live_ok && grep -q "was in shadow at the stop, evaluated in shadow again" "$D/daemon2.log" &&
   it_wait_log "$D/daemon2.log" "new model $new_id evaluated in shadow" 5 &&
   ! grep -q "recalibrating" "$D/daemon2.log"; then
    it_ok "restart while the file is in shadow: the live model goes on, the file is evaluated in shadow again"
else
    it_fail "restart while the file is in shadow: the live model goes on, the file is evaluated in shadow again" \
        "$(live_said); $(grep -iE 'shadow|model|calibrat' "$D/daemon2.log" | cut -c1-200 | tail -5)"
fi

# 2. the shadow rejects it; a restart keeps the live model
k=230
while [ $k -lt 600 ]; do
    pub $k $((k + 40)); k=$((k + 40))
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events event=adapt \
        decision=rejected --timeout 2 >/dev/null && { dec=rejected; break; }
done
sleep 1
[ "${dec:-}" = rejected ] && live_ok ||
    { it_fail "the file is rejected in shadow" "$(live_said); $(grep -iE 'shadow|adapt' "$D/daemon2.log" | tail -3)"; exit 1; }
# a reload of other alert rules only (the same file, the same calibration
# settings): the kept model and its calibration go on
conf 3600 2
kill -HUP "$DPID"
it_wait_log "$D/daemon2.log" "reload" 10
pub $k $((k + 5)); k=$((k + 5))
sleep 2
if live_ok && ! grep -q "recalibrating" "$D/daemon2.log"; then
    it_ok "a reload of alert rules only after the rejection: model $old_id and its calibration go on"
else
    it_fail "a reload of alert rules only after the rejection: model $old_id and its calibration go on" \
        "$(live_said); $(grep -iE 'reload|shadow|model|calibrat' "$D/daemon2.log" | cut -c1-200 | tail -5)"
fi
stop
start daemon3.log
pub $k $((k + 20)); k=$((k + 20))
sleep 2
if live_ok && [ "$(grep -c "was rejected by reload.shadow; running model $old_id" "$D/daemon3.log")" = 1 ] &&
   ! grep -qE "recalibrating|evaluated in shadow" "$D/daemon3.log"; then
    it_ok "restart after the rejection: model $old_id and its calibration run, not the rejected file (said once)"
else
    it_fail "restart after the rejection: the live model runs, not the rejected file" \
        "$(live_said); $(grep -iE 'shadow|model|calibrat' "$D/daemon3.log" | cut -c1-200 | tail -5)"
fi
stop

# 3. evicted and back: the same
conf 3
start daemon4.log
pub $k $((k + 5)); k=$((k + 5))
it_wait_log "$D/daemon4.log" "stream pump1 idle for .*evicted" 15 ||
    { it_fail "pump1 is evicted" "$(tail -5 "$D/daemon4.log")"; exit 1; }
pub $k $((k + 5)); k=$((k + 5))
sleep 2
if live_ok && [ "$(grep -c "was rejected by reload.shadow; running model $old_id" "$D/daemon4.log")" = 2 ] &&
   ! grep -q "recalibrating" "$D/daemon4.log"; then
    it_ok "evicted and back: model $old_id and its calibration run, not the rejected file"
else
    it_fail "evicted and back: the live model runs, not the rejected file" \
        "$(live_said); $(grep -iE 'shadow|model|calibrat|evict' "$D/daemon4.log" | cut -c1-200 | tail -5)"
fi

# 4. the file changed again: a new candidate, in shadow
cp "$D/cand2.safetensors" "$D/model.safetensors"
pub $k $((k + 5)); k=$((k + 5))
kill -HUP "$DPID"
if it_wait_log "$D/daemon4.log" "1 evaluating it in shadow" 10 && sleep 1 && live_ok; then
    it_ok "a file changed again is a new candidate: evaluated in shadow, the live model runs"
else
    it_fail "a file changed again is a new candidate: evaluated in shadow, the live model runs" \
        "$(live_said); $(grep -iE 'reload|shadow' "$D/daemon4.log" | cut -c1-200 | tail -5)"
fi
stop
exit 0
