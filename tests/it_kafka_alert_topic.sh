#!/bin/sh
# it_kafka_alert_topic.sh - Kafka-fed streams whose alerts go to MQTT, with
# detectors[].alert.topic changed while an alert is open: the clear must go
# to the topic the alert was raised on, also when the stream's state moved
# through the Kafka state topic (librdkafka's mock cluster on 127.0.0.1, a
# real mosquitto on 127.0.0.1). No state_dir: the state topic is all a new
# owner has, as on another machine.
#  A. restart: a raises pump1's alert on anomalyd/alerts/..., an operator
#     acknowledges it (the state topic has the acknowledgement at once),
#     a stops (SIGTERM) and b, with alert.topic anomalyd/alarms/..., takes
#     the partition: b shows the alert acknowledged and clears it on
#     anomalyd/alerts/pump/pump1, once
#  B. hand-over: c owns both partitions of in2 and raises q1's and q2's
#     alerts; d (anomalyd/alarms/...) joins and takes one partition from the
#     live c (revoke): both alerts are cleared once, on anomalyd/alerts/...
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_alert_topic.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID= ; P=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_alert_topic" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 in2:2 st:1 || exit 1

# conf NAME GROUP INPUT_TOPIC ALERT_TOPIC_PREFIX
conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kat-$1", "qos_subscribe": 1,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1",
            "stats_interval_s": 1},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "$2", "state_topic": "st",
           "commit_interval_s": 0.3,
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300"}},
 "workers": 1, "commands": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["$3"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"topic": "$4/{detector}/{stream}",
             "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# start NAME GROUP INPUT_TOPIC ALERT_TOPIC_PREFIX: sets PID_<NAME>
start() {
    conf "$@"
    $AD_BIN run -c "$D/$1.json" --log-level debug 2> "$D/$1.log" & P="$P $!"
    eval "PID_$1=\$!"
    it_wait_log "$D/$1.log" 'mqtt: connected' 10 ||
        { it_fail "$1 connects" "$(tail -5 "$D/$1.log")"; exit 1; }
}
pid() { eval "echo \$PID_$1"; }
stop() { kill -TERM "$(pid "$1")"; it_wait_gone "$(pid "$1")" 20; }
FAULT='cavitation@300m+100m'
# produce TOPIC PARTITION KEY FROM TO: rows FROM..TO of a pump with FAULT
produce() {
    $PYTHON tests/it_kafka_gen.py 1 "$4" "$5" "$FAULT" | sed "s/^pump1|/$3|/" |
        kcat -P -K'|' -b "$BOOT" -t "$1" -p "$2" 2>> "$D/kcat.out"
}
# events STREAM [FROM_LINE]: "<topic> <event> <alert_id>" of every model
# alert event of STREAM collected (from line FROM_LINE of sub.jsonl on)
events() {
    tail -n "+${2:-1}" "$D/sub.jsonl" | $PYTHON -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "/alerts/" not in m["topic"] and "/alarms/" not in m["topic"]:
        continue
    j = json.loads(m["payload"])
    if j.get("stream") == sys.argv[1]:
        print(m["topic"], j["event"], j["alert_id"])' "$1"
}
# check_pair STREAM TOPIC WHAT: the first raised event of STREAM (on TOPIC)
# has exactly one cleared event, on TOPIC
check_pair() {
    ev=$(events "$1")
    first=$(echo "$ev" | grep " raised " | head -1)
    id=${first##* }
    on=$(echo "$ev" | grep " cleared $id\$")
    if [ -n "$id" ] && [ "${first%% *}" = "$2" ] && [ "$(echo "$on" | grep -c .)" -eq 1 ] &&
       [ "${on%% *}" = "$2" ]; then
        it_ok "$3: $id cleared once, on $2 where it was raised"
    else
        it_fail "$3: cleared once, on $2 where it was raised" "events of $1: $(echo "$ev" | tr '\n' ';')"
    fi
}
# the newest state-topic record of detector/stream $1, as its "state" JSON
state_of() {
    kcat -C -b "$BOOT" -t st -e -q -f '%k|%s\n' 2>> "$D/kcat.out" | grep "^$1|" | tail -1 |
        cut -d'|' -f2- | $PYTHON -c '
import json, sys
t = sys.stdin.read()
print(json.dumps(json.loads(t).get("state")) if t.strip() else "none")'
}

it_sub_start
sleep 0.3

# ---- A. restart ---------------------------------------------------------------
start a ad in anomalyd/alerts
it_wait_log "$D/a.log" 'kafka: owns in\[0\]' 30 || it_fail "A: a owns in[0]" "$(tail -3 "$D/a.log")"
produce in 0 pump1 0 380
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 30 >/dev/null ||
    it_fail "A: alert raised on a" "$(events pump1; tail -3 "$D/a.log")"
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t anomalyd/cmd/pump/pump1 \
    -m '{"command": "ack", "by": "alice"}'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/reply/pump/pump1 command=ack ok=True \
    --timeout 10 >/dev/null || it_fail "A: ack answered" "$(tail -3 "$D/a.log")"
# every state change goes to the state topic when it happens (a crash then
# loses nothing), the alert's topic and the acknowledgement too
acked() { state_of pump/pump1 | grep -q '"ack_by": "alice"'; }
it_wait_until 10 acked
st=$(state_of pump/pump1)
if echo "$st" | $PYTHON -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(not (s and s.get("feedback", {}).get("ack_by") == "alice" and
              s.get("alert_topic", {}).get("topic") == "anomalyd/alerts/pump/pump1"))'; then
    it_ok "A: the state topic has pump1's acknowledgement and its alert's topic once acked"
else
    it_fail "A: the state topic has pump1's acknowledgement and its alert's topic once acked" "$st"
fi
stop a
from=$(($(wc -l < "$D/sub.jsonl") + 1))
start b ad in anomalyd/alarms
it_wait_log "$D/b.log" 'kafka: owns in\[0\]' 30 || it_fail "A: b owns in[0]" "$(tail -3 "$D/b.log")"
produce in 0 pump1 380 480
$H wait --file "$D/sub.jsonl" --match stream=pump1 event=cleared --timeout 30 >/dev/null
sleep 1
check_pair pump1 anomalyd/alerts/pump/pump1 "A: restart with another alert.topic"
# b's retained state of pump1 before its clear: the alert acknowledged by alice
ack=$(tail -n "+$from" "$D/sub.jsonl" | $PYTHON -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1" and m["payload"]:
        s = json.loads(m["payload"])
        if s.get("state") == "alert":
            print(s.get("acknowledged"), s.get("acknowledged_by")); break')
if [ "$ack" = "True alice" ]; then
    it_ok "A: b shows the alert it took over acknowledged by alice"
else
    it_fail "A: b shows the alert it took over acknowledged by alice" "first open state from b: $ack"
fi
stop b

# ---- B. hand-over to a live instance ------------------------------------------------
start c ad2 in2 anomalyd/alerts
it_wait_log "$D/c.log" 'kafka: owns in2\[' 30 2 || it_fail "B: c owns in2[0] and in2[1]" "$(tail -3 "$D/c.log")"
produce in2 0 q1 0 380
produce in2 1 q2 0 380
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/q1 event=raised --timeout 30 >/dev/null &&
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/q2 event=raised --timeout 30 >/dev/null ||
    it_fail "B: alerts raised on c" "$(events q1; events q2; tail -3 "$D/c.log")"
# d joins at once, c may still be reading and committing
# (it_kafka_join.sh: joins under traffic)
start d ad2 in2 anomalyd/alarms
if it_wait_log "$D/c.log" 'kafka: released in2\[[01]\] .*handed over' 30 &&
   it_wait_log "$D/d.log" 'kafka: owns in2\[' 30; then
    it_ok "B: d joins and takes $(grep -o 'owns in2\[[01]\]' "$D/d.log" | head -1 | cut -c6-) from c"
else
    it_fail "B: d joins and takes a partition from c" "$(grep -h 'kafka: \(owns\|released\)' "$D"/[cd].log)"
fi
produce in2 0 q1 380 480
produce in2 1 q2 380 480
$H wait --file "$D/sub.jsonl" --match stream=q1 event=cleared --timeout 30 >/dev/null &&
$H wait --file "$D/sub.jsonl" --match stream=q2 event=cleared --timeout 30 >/dev/null
sleep 1
moved=q$(( $(grep -o 'owns in2\[[01]\]' "$D/d.log" | head -1 | sed 's/.*\[\(.\)\]/\1/') + 1 ))
if grep -q "alert .* cleared: detector pump stream $moved " "$D/d.log"; then
    it_ok "B: $moved's alert, raised on c, is cleared on d"
else
    it_fail "B: $moved's alert, raised on c, is cleared on d" "$(grep -h 'alert' "$D"/[cd].log | tail -4)"
fi
check_pair q1 anomalyd/alerts/pump/q1 "B: hand-over, q1"
check_pair q2 anomalyd/alerts/pump/q2 "B: hand-over, q2"
stop c; stop d
