#!/bin/sh
# it_daemon_adapt_alert_restart.sh - continual learning and a restart
# during an alert (a real mosquitto): the stream's state file keeps the
# learner's peak window of the open alert so far ("adapt":{"alert":..});
# restored at start for its open alert, the stream clears it after the
# restart, and the true alert the learner keeps (the one a candidate model
# must still raise) is that peak, with its score, as without the restart.
# Before the peak was saved the restored learner took the highest window
# after the restart, one of the fault's tail (a lower score), or none at
# all when the alert cleared at once: a candidate that silences the fault
# could be promoted.
. tests/lib.sh
it_setup it_adapt_alert_restart
it_broker_up

# config STATE_DIR: learning on (no fine-tune due in this test: the
# learner only follows the alerts)
config() {
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-alert-restart", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$1", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 1000000, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 60},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
F="$1/pump/pump1.state.json"
}

start() {
    : > "$D/sub.jsonl"
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$1" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
}
scored() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=$1 \
        --timeout 60 >/dev/null || echo "# not all $1 windows scored"
}
stop_after() {
    scored "$1"
    kill -TERM "$DPID"; wait "$DPID"; DPID=
}
# rows 0..159 and the calibration's end (row 129), then rows 160..TO-1:
# the learner is offered the windows handed out once the stream detects
pub_to() {
    $H pub --port "$IT_PORT" --devices 1 --rows 160 --start "$S" --fault "$FAULT"
    scored 131
    $H pub --port "$IT_PORT" --devices 1 --rows "$1" --start-row 160 --start "$S" --fault "$FAULT"
}
# adapt.alert of the state file: "id score", or "none"
peak() {
    $PYTHON - "$F" <<'EOP'
import json, sys
a = (json.load(open(sys.argv[1])).get("adapt") or {}).get("alert")
print("%s %r" % (a["id"], a["score"]) if a else "none")
EOP
}
# the learner's true alerts in the state file: "id score" a line
true_alerts() {
    $PYTHON - "$F" <<'EOP'
import json, sys
for t in (json.load(open(sys.argv[1])).get("adapt") or {}).get("true_alerts", []):
    print("%s %r" % (t["id"], t["score"]))
EOP
}

it_sub_start
S=$(( $(date +%s) - 600 * 60 ))
FAULT='cavitation@330m+70m'

# without a restart: the true alert the learner keeps
config "$D/ref"
start "$D/ref.log"
pub_to 520
stop_after 491
want=$(true_alerts)
echo "# without a restart: true alert $want"

# calibrates, then the fault raises an alert still open at the stop
config "$D/state"
start "$D/a.log"
pub_to 400
stop_after 371
p=$(peak)
if grep -q '"open":{' "$F" && [ "$p" != none ]; then
    it_ok "stopped during an alert: the learner's peak window of it is saved ($p)"
else
    it_fail "stopped during an alert: the learner's peak window of it is saved" \
        "peak $p; $(grep -c '"open":{' "$F") open alert(s) in the state file"
fi

# restored at start for its open alert; the fault is over: the alert
# clears, a true alert for the learner: the same as without the restart
start "$D/b.log"
$H pub --port "$IT_PORT" --devices 1 --rows 520 --start-row 400 --start "$S" --fault "$FAULT"
stop_after 120
id=${p%% *}
if ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared \
        --timeout 1 > /dev/null; then
    it_fail "after the restart the alert clears" "$(grep pump1 "$D/b.log" | tail -3)"
fi
ta=$(true_alerts)
if [ "$p" != none ] && [ "$ta" = "$p" ] && [ "$ta" = "$want" ]; then
    it_ok "the alert cleared after the restart is the learner's true alert with its peak from before the restart ($ta)"
else
    it_fail "the alert cleared after the restart is the learner's true alert with its peak from before the restart" \
        "true alerts: '$ta', peak saved: $p, without a restart: '$want'"
fi
exit 0
