#!/bin/sh
# it_daemon_outbox_inflight.sh - an alert event handed to the MQTT client
# while connected, not yet acknowledged by the broker, when the machine goes
# down (the daemon and the broker killed, as by a power loss): the state
# file already says what the event said, so only outbox.json can bring the
# event back. The case here: the clear (reason detector_removed) of a
# removed detector's open alert, made by the scan at start after the broker
# connected.
#  1. detectors pump and line; line/pump1 raises an alert; the daemon stops.
#     line's directory gets 30000 more state files (no open alert), so that
#     its scan at start outlasts the connection to the broker.
#  2. line removed, start: once connected the broker is frozen (SIGSTOP: it
#     takes the messages into its socket but never answers); the scan
#     clears line/pump1's alert and rewrites its file closed; outbox.json
#     holds the clear by then. The daemon and the broker are killed (-9).
#  3. a new broker, start: the clear reaches a subscriber (sent again from
#     outbox.json).
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_outbox_inflight.XXXXXX)
DPID= ; SPID=
cleanup() {
    [ -n "${IT_BROKER_PID:-}" ] && kill -CONT "$IT_BROKER_PID" 2>/dev/null
    it_daemon_cleanup
}
trap cleanup EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
it_broker_up

det() { # det NAME TOPIC
    cat <<EOD
{"name": "$1", "model": "$MODEL", "topics": ["$2"], "stream_levels": [1], "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}
EOD
}
conf() { # conf DETECTORS...
    dets=$1; shift
    for x in "$@"; do dets="$dets, $x"; done
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-outinfl", "qos_subscribe": 1, "keepalive": 60},
 "workers": 1, "state_dir": "$D/state", "detectors": [$dets]}
EOC
}
start() { # start N: wait for the Nth connect
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
# cleared FILE ID: FILE (a subscriber's) holds the clear of ID, reason detector_removed
cleared() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
ok = False
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/line/pump1":
        j = json.loads(m["payload"])
        ok = ok or (j.get("event") == "cleared" and j.get("alert_id") == sys.argv[2] and
                    j.get("reason") == "detector_removed")
sys.exit(0 if ok else 1)
EOP
}
PUMP=$(det pump 'plant/#')
LINE=$(det line 'line/#')

# ---- 1. an open alert on line/pump1 ------------------------------------------------------------
conf "$PUMP" "$LINE"
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub1.jsonl" & SPID=$!
sleep 0.3
start 1
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 1 --rows 360 --start "$START" --fault 'cavitation@300m+300m' \
    --fault-devices pump1 --topic 'line/{device}/data'
$H wait --file "$D/sub1.jsonl" --match topic=anomalyd/alerts/line/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "1: alert raised on line/pump1" "$(tail -3 "$D/daemon.log")"
id=$($PYTHON -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/line/pump1":
        print(json.loads(m["payload"])["alert_id"]); break' "$D/sub1.jsonl")
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
$PYTHON - "$D/state/line" <<'EOP'
import os, sys
for i in range(30000):
    with open(os.path.join(sys.argv[1], "filler%05d.state.json" % i), "w") as f:
        f.write('{"version":1,"stream":"filler%05d"}' % i)
EOP

# ---- 2. line removed; the broker frozen once connected; both killed after the scan -------------
conf "$PUMP"
start 2
kill -STOP "$IT_BROKER_PID"
it_wait_log "$D/daemon.log" 'no detector "line" is configured' 30 &&
    it_wait_until 10 grep -q '"detector_removed"' "$D/state/line/pump1.state.json"
cp "$D/state/outbox.json" "$D/outbox.at_kill" 2>/dev/null
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
kill -9 "$IT_BROKER_PID"; wait "$IT_BROKER_PID" 2>/dev/null; IT_BROKER_PID=
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=
order=$(grep -n -E 'mqtt: connected|no detector "line" is configured' "$D/daemon.log" | tail -2 |
        sed 's/:.*connected.*/:c/; s/:.*no detector.*/:s/' | cut -d: -f2 | tr -d '\n')
if [ "$order" != cs ]; then
    it_skip "outbox_inflight" "the scan ended before the broker connected (order $order): nothing to show"
    exit 0
fi
if grep -q "\"alert_id\\\\\":\\\\\"$id\\\\\"" "$D/outbox.at_kill" 2>/dev/null ||
   grep -q "$id" "$D/outbox.at_kill" 2>/dev/null; then
    it_ok "2: the clear handed to the connected broker, not acknowledged: outbox.json holds it once the state file says closed"
else
    it_fail "2: the clear handed to the connected broker, not acknowledged: outbox.json holds it once the state file says closed" \
        "outbox: $(cut -c1-200 "$D/outbox.at_kill" 2>&1); $(grep 'state:' "$D/daemon.log" | tail -3)"
fi

# ---- 3. a new broker, start: the clear is delivered --------------------------------------------
it_broker_start "$D" || { it_fail "broker starts again"; exit 1; }
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub2.jsonl" & SPID=$!
# the subscriber is in before the daemon starts (a retained marker reached it)
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -r -t anomalyd/it/ready -m x
it_wait_until 10 grep -q anomalyd/it/ready "$D/sub2.jsonl"
conf "$PUMP"
start 3
it_wait_until 10 cleared "$D/sub2.jsonl" "$id"
if cleared "$D/sub1.jsonl" "$id" || cleared "$D/sub2.jsonl" "$id"; then
    it_ok "3: after the crash, line/pump1's clear (detector_removed) reaches a subscriber"
else
    it_fail "3: after the crash, line/pump1's clear (detector_removed) reaches a subscriber" \
        "$(grep -E 'state:|outbox|mqtt:' "$D/daemon.log" | tail -8 | cut -c1-220)"
fi
grep -E 'undelivered|no detector "line"' "$D/daemon.log" | cut -c1-200 | sed "s/^/# /"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
