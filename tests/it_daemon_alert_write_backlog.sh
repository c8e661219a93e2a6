#!/bin/sh
# it_daemon_alert_write_backlog.sh - an alert message waits for its own
# stream's state file (8cf7caa), not for every state file queued before it.
# A reload that rebuilds a detector of 1000 streams queues 1000 state files
# (two fsyncs each); an alert cleared on another detector's stream just
# then (an operator's false_alarm) must reach the broker before the last
# of those files is on disk, not after the whole backlog (the writer took
# the queue in order and in one batch: 1 to 9 s of fsyncs here). A disk
# that writes the backlog within 0.5 s of the command (tmpfs) cannot tell.
. tests/lib.sh
it_setup it_alert_write_backlog
N=1000
# the daemon may pause reading behind its workers: the broker keeps the data
it_broker_start "$D" "max_queued_messages 1000000" || { it_fail "broker starts"; exit 1; }

# conf BULK_K
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-awb", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state", "commands": {"enabled": true},
 "detectors": [
  {"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}, "quality": {"enabled": false}},
  {"name": "bulk", "model": "$MODEL", "topics": ["bulk/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 5}, "quality": {"enabled": false},
   "alert": {"k": $1}}]}
EOC
}
conf 3
# alert events with their delay: receipt time - "published" (when it was made)
$PYTHON - "$IT_PORT" "$D/alerts.txt" <<'EOP' & SPID=$!
import datetime, json, sys, time
import paho.mqtt.client as mqtt
port, out = int(sys.argv[1]), sys.argv[2]
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
f = open(out, "a", buffering=1)
def on_msg(cl, ud, m):
    j = json.loads(m.payload)
    made = datetime.datetime.strptime(j["published"], "%Y-%m-%dT%H:%M:%S.%fZ")
    made = made.replace(tzinfo=datetime.timezone.utc).timestamp()
    now = time.time()
    f.write("%s %s %s %.3f %.3f\n" % (j["stream"], j["event"], j.get("reason", "-"),
                                     now - made, now))
c.on_message = on_msg
c.on_connect = lambda cl, ud, fl, rc: cl.subscribe("anomalyd/alerts/#", 1)
c.connect("127.0.0.1", port)
c.loop_forever()
EOP
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --rows 380 --start "$START" --fault 'cavitation@300m+300m' >/dev/null
it_wait_until 20 grep -q '^pump1 raised' "$D/alerts.txt" ||
    { it_fail "pump1 raises an alert" "$(tail -3 "$D/daemon.log")"; exit 1; }
# the bulk streams calibrate (one state file each), 50 devices a publisher
for g in $(seq 1 $((N / 50))); do
    $H pub --port "$IT_PORT" --devices 50 --rows 40 --start "$START" \
        --topic "bulk/g$g{device}/pump" >/dev/null
done
nfiles() { [ "$(ls "$D/state/bulk" 2>/dev/null | grep -c 'state\.json$')" -ge $N ]; }
it_wait_until 300 nfiles || { it_fail "$N bulk streams calibrated" "$(ls "$D/state/bulk" | grep -c .)"; exit 1; }
sleep 1
# bulk rebuilt for a new alert.k: its N state files queued at once, then
# pump1's alert cleared by an operator
conf 2
T_HUP=$($PYTHON -c 'import time; print("%.3f" % time.time())')
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 || it_fail "reload" "$(tail -3 "$D/daemon.log")"
T_CMD=$($PYTHON -c 'import time; print("%.3f" % time.time())')
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t anomalyd/cmd/pump/pump1 -m '{"command": "false_alarm"}'
it_wait_until 60 grep -q '^pump1 cleared' "$D/alerts.txt"
# the last of the reload's N files on disk (mtime), once all are rewritten
last_write() {
    $PYTHON - "$D/state/bulk" "$T_HUP" "$N" <<'EOP'
import glob, os, sys
m = [os.stat(f).st_mtime for f in glob.glob(sys.argv[1] + "/*.state.json")]
new = [t for t in m if t >= float(sys.argv[2]) - 0.05]
print("%.3f" % max(new) if len(new) >= int(sys.argv[3]) else "")
EOP
}
has_last() { [ -n "$(last_write)" ]; }
it_wait_until 120 has_last
T_LAST=$(last_write)
line=$(grep '^pump1 cleared' "$D/alerts.txt" | head -1)
set -- $line
delay=$4; T_CLR=$5
verdict=$($PYTHON -c "
c, l, cmd = float('${T_CLR:-0}'), float('${T_LAST:-0}'), float('$T_CMD')
print('none' if not c or not l else 'fast' if l <= cmd + 0.5 else 'ok' if c < l else 'late')")
what="the reload's $N files written in $($PYTHON -c "print('%.1f' % (float('${T_LAST:-0}') - float('$T_CMD')))") s after the command"
case $verdict in
ok)   it_ok "an alert cleared behind a reload's $N queued state files reaches the broker in $delay s, before the last of them is written ($what)" ;;
fast) it_ok "# cannot tell: the disk wrote the reload's $N state files within 0.5 s of the command (cleared in $delay s)" ;;
*)    it_fail "an alert cleared behind a reload's $N queued state files reaches the broker before the last of them is written" \
          "cleared event: ${line:-none}; $what" ;;
esac
grep -q '"open":{' "$D/state/pump/pump1.state.json" &&
    it_fail "pump1's state file has no open alert after the clear" "$(cut -c1-200 "$D/state/pump/pump1.state.json")"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
exit 0
