#!/bin/sh
# it_daemon_kill_alert.sh - an alert event is out only once the stream's
# state file holds it: kill -9 the moment a subscriber receives a raised
# event, and every alert received is open in its stream's state file, so a
# restart continues it and clears it with its id (twenty pumps raise at
# once: their state files queue behind each other). Before, the event went
# to the broker while its state file was still queued: the restarted
# stream had no open alert and the raised alert was never cleared.
. tests/lib.sh
it_setup it_daemon_kill_alert
N=20
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kill-alert", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false}}]}
EOC
it_daemon_up
S=$(( $(date +%s) - 400 * 60 ))
# calibration (100 windows of 30 rows) and the healthy start, every pump
$H pub --port "$IT_PORT" --devices $N --rows 200 --start $S
# the rest, a blockage from row 200 on every pump, while a subscriber
# kills the daemon at the first raised event it receives
$PYTHON - "$IT_PORT" "$DPID" "$D/raised.txt" <<'EOP' &
import os, signal, sys, time
import paho.mqtt.client as mqtt
port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
seen = []
def on_msg(cl, ud, m):
    if b'"event":"raised"' in m.payload:
        if not seen:
            os.kill(pid, signal.SIGKILL)
        seen.append(m.payload)
c.on_message = on_msg
c.on_connect = lambda cl, ud, f, rc: cl.subscribe("anomalyd/alerts/#", 1)
c.connect("127.0.0.1", port)
end = time.time() + 60
while time.time() < end and not seen:
    c.loop(0.05)
end = time.time() + 1                 # what the broker had already
while time.time() < end:
    c.loop(0.05)
import json
with open(out, "w") as f:
    for p in seen:
        f.write(json.loads(p)["alert_id"] + "\n")
EOP
KPID=$!
sleep 1
$H pub --port "$IT_PORT" --devices $N --rows 260 --start $S --start-row 200 \
    --fault 'blockage@200m+300m' --fault-devices "$(seq -s, -f 'pump%g' 1 $N)"
wait "$KPID"
wait "$DPID" 2>/dev/null; DPID=
n=$(wc -l < "$D/raised.txt")
if [ "$n" -lt 1 ]; then
    it_fail "a raised event arrives" "$(tail -5 "$D/daemon.log")"; exit 1
fi
missing=""
for id in $(cat "$D/raised.txt"); do
    grep -qs "\"open\":{\"id\":\"$id\"" "$D"/state/pump/*.state.json || missing="$missing $id"
done
if [ -z "$missing" ]; then
    it_ok "kill -9 at the first raised event received: each of the $n received is open in its state file"
else
    it_fail "kill -9 at the first raised event received: each received is open in its state file" \
        "not in a state file:$missing"
fi
# the restart continues them: the fault ends, each is cleared with its id
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null
$H pub --port "$IT_PORT" --devices $N --rows 600 --start $S --start-row 260 \
    --fault 'blockage@200m+100m' --fault-devices "$(seq -s, -f 'pump%g' 1 $N)"
notcl=""
for id in $(cat "$D/raised.txt"); do
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/ alert_id="$id" event=cleared \
        --timeout 20 >/dev/null || notcl="$notcl $id"
done
if [ -z "$notcl" ]; then
    it_ok "after the restart each of them is cleared with its id"
else
    it_fail "after the restart each of them is cleared with its id" "never cleared:$notcl"
fi
it_daemon_stop
exit 0
