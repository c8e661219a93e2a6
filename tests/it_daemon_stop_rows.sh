#!/bin/sh
# it_daemon_stop_rows.sh - a stop with an alert open, while the broker is
# slow to acknowledge: the state file the stop leaves is its hand-over (the
# stream's last T-1 window rows with it), so after the restart the very next
# row is scored. The periodic save of open alerts used to run on while the
# MQTT stop waited for the broker (up to 5 s) and replaced the hand-over with
# a save without rows: the restarted stream scored again only T-1 rows later,
# with its alert open. After the restart the last 2 rows come again before
# new ones (QoS 1 redelivery): refused as duplicates, the windows go on.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_stop_rows.XXXXXX)
DPID= ; SPID=
trap 'kill -CONT "$IT_BROKER_PID" 2>/dev/null; it_daemon_cleanup' EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-stop-rows", "qos_subscribe": 1,
            "stats_interval_s": 0.2},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "quality": {"enabled": false},
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
it_daemon_up
S=$(( $(date +%s) - 700 * 60 ))
$H pub --port "$IT_PORT" --devices 1 --rows 240 --start $S --fault 'blockage@200m+300m' \
    --fault-devices pump1 >/dev/null
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised \
    --timeout 20 >/dev/null || { it_fail "pump1 raises an alert" "$(tail -5 "$D/daemon.log")"; exit 1; }
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=1200 windows_scored=211 \
    --timeout 20 >/dev/null
# the broker stops answering; the daemon stops (its MQTT stop waits for it)
kill -STOP "$IT_BROKER_PID"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
kill -CONT "$IT_BROKER_PID"
n=$($PYTHON -c '
import json, sys
o = json.load(open(sys.argv[1]))
print(len(o.get("window", {}).get("rows", [])), "open" if o.get("alert", {}).get("open") else "closed")' \
    "$D/state/pump/pump1.state.json" 2>&1)
if [ "$n" = "29 open" ]; then
    it_ok "the stop leaves pump1's hand-over: its open alert and its last 29 window rows"
else
    it_fail "the stop leaves pump1's hand-over: its open alert and its last 29 window rows" "$n"
fi
# restart: the last 2 rows come again (QoS 1 is at least once: the broker
# sends again what it did not see acknowledged), then new rows: the copies
# are refused as duplicates (2 rows of 5 values) and the next row makes a
# window at once. Before, the first copy restarted the window ring: no
# window in the 5 new rows.
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon restarts" "$(cat "$D/daemon2.log")"; exit 1; }
$H pub --port "$IT_PORT" --devices 1 --rows 240 --start $S --start-row 238 \
    --fault 'blockage@200m+300m' --fault-devices pump1 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 245 --start $S --start-row 240 \
    --fault 'blockage@200m+300m' --fault-devices pump1 >/dev/null
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=35 dropped_samples=10 \
        windows_scored=5 --timeout 20 >/dev/null; then
    it_ok "after the restart the last 2 rows again are refused and each of the next 5 rows is scored"
else
    it_fail "after the restart the last 2 rows again are refused and each of the next 5 rows is scored" \
        "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1 | grep -o '[a-z_]*samples[a-z_]*[^,]*\|windows_scored[^,]*' | tr '\n' ' ')"
fi
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=
