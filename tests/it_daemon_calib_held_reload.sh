#!/bin/sh
# it_daemon_calib_held_reload.sh - a bootstrap stream whose calibration
# waits on windows above the training-error guard (it_daemon_calib_held.sh)
# is rebuilt by a reload (SIGHUP, an alert rule changed) during the wait,
# without a restart first (it_daemon_calib_held_restart.sh reloads a stream
# a restart restored): the rebuilt stream, its own model restored from the
# state directory with training off, waits on as before the reload (the
# same guard, since when, fallback after alert.accept_after windows), its
# model not trained again.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_calib_held_reload.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT

it_broker_start "$D" || { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-calib-held-reload", "stats_interval_s": 0.5},
 "workers": 2, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "window": {"length": 20}, "calibration": {"windows": 30},
   "quality": {"enabled": false},
   "alert": {"accept_after": 150, "state_topic": "anomalyd/state/{detector}/{stream}"},
   "training": {"mode": "bootstrap", "windows": 100, "epochs": 3, "boot_units": 16,
     "features": ["vibration", "current", "pressure", "temperature", "flow"]}}]}
EOC
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 1000 * 60 ))
pubrows() {    # pubrows FROM TO [--shift ...]: rows FROM..TO-1 of pump1
    _f=$1 _t=$2; shift 2
    $H pub --port "$IT_PORT" --devices 1 --rows "$_t" --start-row "$_f" --start "$START" \
        --rate 400 "$@"
}
pubrows 0 125
it_wait_log "$D/daemon.log" "model trained online" 120 ||
    { it_fail "the stream trains its model" "$(tail -5 "$D/daemon.log")"; exit 1; }
# the trained model's file in the state directory (written by a worker)
i=0
while [ -z "$(ls "$D/state/pump/" 2>/dev/null | grep -v state.json)" ] && [ $i -lt 50 ]; do
    sleep 0.2; i=$((i + 1))
done
pubrows 125 215 --shift current:30:0
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events \
    event=calibration_held calibration=held --timeout 15 > /dev/null ||
    { it_fail "the wait begins" "$(grep -i calibration "$D/daemon.log" | tail -3)"; exit 1; }
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=215 --timeout 30 \
    > /dev/null || { it_fail "the rows are in" "$(tail -3 "$D/daemon.log")"; exit 1; }
sleep 1
wait_of() {
    $PYTHON - "$1" <<'EOP'
import json, sys
c = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1" and m["payload"] and not m["retain"]:
        p = json.loads(m["payload"])
        c.append((p.get("phase"), p.get("calibration", {}).get("wait", "absent")))
print(json.dumps([c[0], c[-1]] if c else None))
EOP
}
BEFORE=$(wait_of "$D/sub.jsonl")
N=$(wc -l < "$D/sub.jsonl")
sed 's/"accept_after": 150,/"accept_after": 150, "k": 4,/' "$D/ad.json" > "$D/ad.json.new" &&
    mv "$D/ad.json.new" "$D/ad.json"
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "configuration reloaded" 20 ||
    { it_fail "the configuration reloads" "$(tail -5 "$D/daemon.log")"; exit 1; }
pubrows 215 218 --shift current:30:0
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=218 --timeout 30 \
    > /dev/null || { it_fail "the rows are in" "$(tail -3 "$D/daemon.log")"; exit 1; }
sleep 1
RELOADED=$(tail -n +"$((N + 1))" "$D/sub.jsonl" > "$D/sub2.jsonl"; wait_of "$D/sub2.jsonl")
if $PYTHON -c '
import json, sys
b = json.loads(sys.argv[1])[1]
l = json.loads(sys.argv[2])[1]
ok = (b[0] == "calibrating" and b[1] and l[0] == "calibrating" and l[1] and
      l[1]["guard"] == b[1]["guard"] and l[1]["since"] == b[1]["since"] and
      l[1]["fallback_after_windows"] == 150 and l[1]["windows_to_fallback"] > 0 and
      l[1]["windows_above_guard"] >= b[1]["windows_above_guard"])
sys.exit(0 if ok else 1)' "$BEFORE" "$RELOADED"; then
    it_ok "a stream rebuilt by a reload during its wait waits on: $RELOADED"
else
    it_fail "a stream rebuilt by a reload during its wait waits on" \
        "before: $BEFORE; after the reload: $RELOADED; $(grep -i "calibration\|reload\|model" "$D/daemon.log" | tail -6)"
fi
if [ "$(grep -c "model trained online$" "$D/daemon.log")" -eq 1 ] &&
   grep -q "reusing the model trained online" "$D/daemon.log"; then
    it_ok "its model is not trained again"
else
    it_fail "its model is not trained again" "$(grep -i "train" "$D/daemon.log" | tail -4)"
fi
kill -TERM "$DPID"; wait "$DPID"; DPID=
exit 0
