#!/bin/sh
# it_daemon_calib_held_restart.sh - a bootstrap stream whose calibration
# waits on windows above the training-error guard (it_daemon_calib_held.sh)
# is stopped (SIGTERM) during the wait and started again, against a real
# mosquitto: the first retained state the restarted daemon publishes shows
# the same wait as the last one before the stop (since when, the windows
# above the guard, the guard), and the wait goes on with the same
# fallback's count. Before, its "guard" was null until the first
# calibration window after the restart (the guard was taken only when a
# window was calibrated), and the restored stream (its own model restored
# with training off) counted calibration.windows toward the fallback
# instead of alert.accept_after: the wait ended with the model's threshold
# at the first window after the restart.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_calib_held_restart.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT

it_broker_start "$D" || { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-calib-held-restart", "stats_interval_s": 0.5},
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
# the current 60 % up (a level the training never saw): the wait begins
pubrows 125 215 --shift current:30:0
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events \
    event=calibration_held calibration=held --timeout 15 > /dev/null ||
    { it_fail "the wait begins" "$(grep -i calibration "$D/daemon.log" | tail -3)"; exit 1; }
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=215 --timeout 30 \
    > /dev/null || { it_fail "the rows are in" "$(tail -3 "$D/daemon.log")"; exit 1; }
sleep 1
# wait_of FILE: pump1's live retained states in the subscriber's FILE (not
# those the broker hands a new subscriber), as [phase, calibration.wait]:
# the first and the last
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
kill -TERM "$DPID"; wait "$DPID"; DPID=
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=
BEFORE=$(wait_of "$D/sub.jsonl")
# a subscriber of its own for the restarted daemon's messages
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub2.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub2.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
    >/dev/null || { it_fail "daemon connects again" "$(cat "$D/daemon2.log")"; exit 1; }
# one more row of the level: the stream is restored from its state file
pubrows 215 216 --shift current:30:0
$H wait --file "$D/sub2.jsonl" --match topic=anomalyd/stats messages_in=1 --timeout 30 \
    > /dev/null || { it_fail "the row is in" "$(tail -3 "$D/daemon2.log")"; exit 1; }
sleep 1
AFTER=$(wait_of "$D/sub2.jsonl")
if $PYTHON -c '
import json, sys
b = json.loads(sys.argv[1])[1]
a = json.loads(sys.argv[2])[0]
ok = (b[0] == "calibrating" and b[1] and a[0] == "calibrating" and a[1] and
      b[1]["guard"] is not None and a[1]["guard"] == b[1]["guard"] and
      a[1]["since"] == b[1]["since"] and
      a[1]["windows_above_guard"] >= b[1]["windows_above_guard"])
sys.exit(0 if ok else 1)' "$BEFORE" "$AFTER"; then
    it_ok "the first retained state after the restart shows the same wait (its guard, since when, the windows above it): $AFTER"
else
    it_fail "the first retained state after the restart shows the same wait (its guard, since when, the windows above it)" \
        "before the stop (last): $BEFORE; after the restart (first, last): $AFTER"
fi
# and the wait goes on after the restart: the model's threshold after
# alert.accept_after (150) windows above the guard, as before it (the
# restored model is the one the stream trained); before, the restored
# stream counted calibration.windows (30) and took the model's threshold
# at the next window
if $PYTHON -c '
import json, sys
a, l = json.loads(sys.argv[1])
ok = (a[1] and a[1]["fallback_after_windows"] == 150 and
      a[1]["windows_to_fallback"] == 150 - a[1]["windows_above_guard"] -
                                     a[1]["windows_flagged"] > 0 and
      l[0] == "calibrating" and l[1])
sys.exit(0 if ok else 1)' "$AFTER"; then
    it_ok "the wait goes on after the restart (fallback after 150 windows, still calibrating)"
else
    it_fail "the wait goes on after the restart (fallback after 150 windows, still calibrating)" \
        "after the restart (first, last): $AFTER; $(grep -i calibration "$D/daemon2.log" | tail -3)"
fi
# a reload (SIGHUP) with an alert rule changed during the wait: the stream
# is rebuilt from its state as at a restart, and waits on the same way
N2=$(wc -l < "$D/sub2.jsonl")
sed 's/"accept_after": 150,/"accept_after": 150, "k": 4,/' "$D/ad.json" > "$D/ad.json.new" &&
    mv "$D/ad.json.new" "$D/ad.json"
kill -HUP "$DPID"
it_wait_log "$D/daemon2.log" "configuration reloaded" 20 ||
    { it_fail "the configuration reloads" "$(tail -5 "$D/daemon2.log")"; exit 1; }
pubrows 216 218 --shift current:30:0
$H wait --file "$D/sub2.jsonl" --match topic=anomalyd/stats messages_in=3 --timeout 30 \
    > /dev/null || { it_fail "the rows are in" "$(tail -3 "$D/daemon2.log")"; exit 1; }
sleep 1
RELOADED=$(tail -n +"$((N2 + 1))" "$D/sub2.jsonl" > "$D/sub3.jsonl"; wait_of "$D/sub3.jsonl")
if $PYTHON -c '
import json, sys
b = json.loads(sys.argv[1])[1]
l = json.loads(sys.argv[2])[1]
ok = (l[0] == "calibrating" and l[1] and l[1]["guard"] == b[1]["guard"] and
      l[1]["since"] == b[1]["since"] and l[1]["fallback_after_windows"] == 150 and
      l[1]["windows_to_fallback"] > 0)
sys.exit(0 if ok else 1)' "$AFTER" "$RELOADED"; then
    it_ok "the wait goes on after a reload (SIGHUP): $RELOADED"
else
    it_fail "the wait goes on after a reload (SIGHUP)" \
        "after the reload: $RELOADED; $(grep -i "calibration\|reload" "$D/daemon2.log" | tail -4)"
fi
kill -TERM "$DPID"; wait "$DPID"; DPID=
exit 0
