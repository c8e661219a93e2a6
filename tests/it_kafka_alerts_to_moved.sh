#!/bin/sh
# it_kafka_alerts_to_moved.sh - detectors[].alerts_to changed by a reload
# while alerts are open: each alert is cleared where it was raised, the
# model alert and the data-quality alert alike, and alerts raised after the
# reload go where alerts go now (librdkafka's mock cluster and a real
# mosquitto, both on 127.0.0.1).
#  m2k: alerts_to mqtt, then kafka: the clears of the alerts open across
#       the reload reach the MQTT subscribers that hold them open.
#  k2m: alerts_to kafka, then mqtt: their clears reach Kafka topic al.
#  kin: fed by Kafka topic in: the consumer goes on after the reload (the
#       reload frees the configuration the consumer was started from).
#  A reload that adds a Kafka topic is refused, naming it.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_alerts_to.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_alerts_to_moved" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start al:1 in:1 in2:1 || exit 1

det() { # det NAME ALERTS_TO
    cat <<EOD
{"name": "$1", "model": "$MODEL", "topics": ["$1/+/pump"], "alerts_to": "$2",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "quality": {"learn_samples": 100, "stuck_samples": 30, "range_k": 0}}
EOD
}
conf() { # conf M2K_ALERTS_TO K2M_ALERTS_TO [KIN_KAFKA_TOPICS]
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kato", "qos_subscribe": 1},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "it-kato", "alert_topic": "al",
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [$(det m2k "$1"), $(det k2m "$2"),
   {"name": "kin", "model": "$MODEL", "kafka_topics": [${3:-\"in\"}],
    "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
    "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
}
# produce FROM TO: rows FROM..TO of pump1 to Kafka topic in, with faults F1, F2
produce() {
    $PYTHON tests/it_kafka_gen.py 1 "$1" "$2" "$F1" "$F2" |
        kcat -P -K'|' -b "$BOOT" -t in -p 0 2>> "$D/kcat.out"
}
# events SINK DET STREAM: "event alert_id" of DET/STREAM's alert events on
# MQTT (anomalyd/alerts/DET/STREAM) or on Kafka topic al (key DET/STREAM)
events() {
    if [ "$1" = kafka ]; then
        kcat -C -b "$BOOT" -t al -e -q -f '%k|%s\n' 2>> "$D/kcat.out"
    else
        $PYTHON -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/alerts/"):
        print("%s|%s" % (m["topic"][len("anomalyd/alerts/"):], m["payload"]))' "$D/sub.jsonl"
    fi | $PYTHON -c '
import json, sys
for line in sys.stdin:
    k, _, v = line.rstrip("\n").partition("|")
    try:
        j = json.loads(v)
    except ValueError:
        continue
    if k == sys.argv[1]:
        print(j["event"], j["alert_id"])' "$2/$3"
}
# cleared_where SINK DET STREAM RAISED CLEARED WHAT: the alert of DET/STREAM
# raised on SINK before the reload has its CLEARED event on SINK too
cleared_where() {
    id=$(echo "$BEFORE" | grep "^$2/$3 $4 " | head -1 | cut -d' ' -f3)
    if [ -n "$id" ] && events "$1" "$2" "$3" | grep -q "^$5 $id\$"; then
        it_ok "$6: cleared on $1, where it was raised"
    else
        it_fail "$6: cleared on $1, where it was raised" \
            "raised $id; mqtt: $(events mqtt "$2" "$3" | tr '\n' ';') kafka: $(events kafka "$2" "$3" | tr '\n' ';')"
    fi
}

it_sub_start
sleep 0.3
conf mqtt kafka
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
F1='cavitation@300m+100m'; F2='cavitation@550m+100m'; FQ='stuck@300m+100m:1:pressure'
for t in m2k k2m; do
    $H pub --port "$IT_PORT" --rows 380 --start "$START" --fault "$F1" --fault "$F2" --topic "$t/{device}/pump"
    $H pub --port "$IT_PORT" --rows 380 --start "$START" --fault "$FQ" --topic "$t/dq{device}/pump"
done
produce 0 380
up() { events "$1" "$2" "$3" | grep -q "^$4 "; }
it_wait_until 20 up mqtt m2k pump1 raised
it_wait_until 20 up mqtt m2k dqpump1 dq_raised
it_wait_until 20 up kafka k2m pump1 raised
it_wait_until 20 up kafka k2m dqpump1 dq_raised
it_wait_until 30 up mqtt kin pump1 raised
BEFORE=$(for x in "mqtt m2k pump1" "mqtt m2k dqpump1" "kafka k2m pump1" "kafka k2m dqpump1"; do
    set -- $x; events "$1" "$2" "$3" | sed "s|^|$2/$3 |"; done)
if echo "$BEFORE" | grep -q '^m2k/pump1 raised ' && echo "$BEFORE" | grep -q '^m2k/dqpump1 dq_raised ' &&
   echo "$BEFORE" | grep -q '^k2m/pump1 raised ' && echo "$BEFORE" | grep -q '^k2m/dqpump1 dq_raised ' &&
   [ -z "$(events kafka m2k pump1)$(events mqtt k2m pump1)" ] && up mqtt kin pump1 raised; then
    it_ok "before the reload: m2k's alerts raised on MQTT, k2m's on Kafka (model and data quality)"
else
    it_fail "before the reload: m2k's alerts raised on MQTT, k2m's on Kafka (model and data quality)" \
        "$(echo "$BEFORE" | tr '\n' ';') $(tail -3 "$D/daemon.log")"
fi

conf kafka mqtt
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 ||
    it_fail "reload" "$(tail -3 "$D/daemon.log")"
# the faults end (row 400): the alerts clear; a second fault at row 550
for t in m2k k2m; do
    $H pub --port "$IT_PORT" --rows 700 --start-row 380 --start "$START" --fault "$F1" --fault "$F2" \
        --topic "$t/{device}/pump"
    $H pub --port "$IT_PORT" --rows 480 --start-row 380 --start "$START" --fault "$FQ" \
        --topic "$t/dq{device}/pump"
done
produce 380 700
n_up() { [ "$(events "$1" "$2" "$3" | grep -c "^$4 ")" -ge "$5" ]; }
it_wait_until 20 n_up kafka m2k pump1 raised 1
it_wait_until 20 n_up mqtt k2m pump1 raised 1
sleep 1
cleared_where mqtt m2k pump1 raised cleared "m2k (mqtt -> kafka): the model alert open across the reload"
cleared_where mqtt m2k dqpump1 dq_raised dq_cleared "m2k (mqtt -> kafka): the data-quality alert open across the reload"
cleared_where kafka k2m pump1 raised cleared "k2m (kafka -> mqtt): the model alert open across the reload"
cleared_where kafka k2m dqpump1 dq_raised dq_cleared "k2m (kafka -> mqtt): the data-quality alert open across the reload"
m=$(events mqtt m2k pump1 | grep -c '^raised '); k=$(events kafka m2k pump1 | grep -c '^raised ')
m2=$(events mqtt k2m pump1 | grep -c '^raised '); k2=$(events kafka k2m pump1 | grep -c '^raised ')
if [ "$m" -eq 1 ] && [ "$k" -eq 1 ] && [ "$m2" -eq 1 ] && [ "$k2" -eq 1 ]; then
    it_ok "the alerts raised after the reload go where alerts go now (m2k: Kafka only, k2m: MQTT only)"
else
    it_fail "the alerts raised after the reload go where alerts go now (m2k: Kafka only, k2m: MQTT only)" \
        "m2k raised: mqtt $m kafka $k; k2m raised: mqtt $m2 kafka $k2"
fi
it_wait_until 20 n_up mqtt kin pump1 raised 2
ev=$(events mqtt kin pump1)
if [ "$(echo "$ev" | grep -c '^raised ')" -eq 2 ] && [ "$(echo "$ev" | grep -c '^cleared ')" -ge 1 ] &&
   ! grep -q 'cannot produce to (null)' "$D/daemon.log"; then
    it_ok "kin (Kafka-fed): after the reload its records are read on, its alert clears and the next fault raises"
else
    it_fail "kin (Kafka-fed): after the reload its records are read on, its alert clears and the next fault raises" \
        "kin events: $(echo "$ev" | tr '\n' ';') $(grep -i 'kafka' "$D/daemon.log" | tail -3)"
fi

# a reload that adds a Kafka topic: refused, the topic named
conf kafka mqtt '"in", "in2"'
kill -HUP "$DPID"
if it_wait_log "$D/daemon.log" 'reload refused' 20 &&
   grep 'reload refused' "$D/daemon.log" | grep -q 'detectors\[2\].kafka_topics: Kafka topic "in2" is new'; then
    it_ok "a reload that adds Kafka topic in2 is refused, naming it"
else
    it_fail "a reload that adds Kafka topic in2 is refused, naming it" "$(grep reload "$D/daemon.log" | tail -3)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
