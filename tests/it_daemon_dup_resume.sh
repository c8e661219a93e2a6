#!/bin/sh
# it_daemon_dup_resume.sh - a device that publishes its rows retained (one
# JSON message a row), against a real mosquitto: after a restart the
# broker delivers the retained last row again at the resubscription, a
# copy of the row the restored stream consumed last. The daemon tells it a
# copy, as it does for the stream that was not interrupted (said once,
# counted in rejected.copies), and does not warn of a device clock that
# stopped "with other values" (before: it did, at every restart, for
# every such stream: the state kept the last row's time, not its values).
. tests/lib.sh
it_setup it_daemon_dup_resume
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dup-resume", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
start() {
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
# pub.py PORT TOPIC ROWS: ROWS pump rows a minute apart (times in the
# past), each published once, retained
cat > "$D/pub.py" <<'EOP'
import json, sys, time
from it_daemon_mqtt import load_pumpsim, connect
port, topic, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sim = load_pumpsim().PumpSim(7, 60.0, time.time() - rows * 60.0 - 3600, [])
c = connect(port)
for k in range(rows):
    ts, row, _ = sim.step()
    msg = {s: round(v, 4) for s, v in row.items()}
    msg["ts"] = int(round(ts * 1000))
    c.publish(topic, json.dumps(msg), qos=1, retain=True).wait_for_publish(30)
    time.sleep(0.02)
c.disconnect(); c.loop_stop()
EOP
start 1
it_py "$D/pub.py" "$IT_PORT" sensors/pump1/pump 60
it_wait_log "$D/daemon.log" 'windows scored|scored' 10 >/dev/null
sleep 1
it_daemon_stop
[ -f "$D/state/pump/pump1.state.json" ] ||
    { it_fail "the stream's state is saved at the stop" "$(ls -R "$D/state" | head)"; exit 1; }
N0=$(wc -l < "$D/daemon.log")
start 2
# the retained row comes at the resubscription
it_wait_log "$D/daemon.log" 'stream pump1 receives copies|pump1: [0-9]* sample\(s\) dropped as duplicates' 10 >/dev/null
sleep 0.5
tail -n +"$((N0 + 1))" "$D/daemon.log" > "$D/run2.log"
if grep -q "stream pump1 receives copies of its messages" "$D/run2.log" &&
   ! grep -q "pump1: [0-9]* sample(s) dropped as duplicates" "$D/run2.log"; then
    it_ok "the retained last row after a restart: told a copy, not a device clock that stopped"
else
    it_fail "the retained last row after a restart: told a copy, not a device clock that stopped" \
        "$(grep -E 'pump1.*(dupl|copies)' "$D/run2.log" | tail -2)"
fi
it_daemon_stop
exit 0
