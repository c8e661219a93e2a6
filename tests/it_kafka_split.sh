#!/bin/sh
# it_kafka_split.sh - a stream whose records come from two partitions (the
# topic's partitions increased, so the default partitioner maps its key
# elsewhere; a key in two topics of one detector) is no longer kept whole
# by the group: each partition's owner may run it, and its state goes with
# the partition of its latest record. The instance warns of it, once per
# stream, naming both partitions. Before, it went on silently.
# librdkafka's mock cluster on 127.0.0.1, a real mosquitto (stats).
#   pump1 rows 0..39 in in[0], rows 40..59 in in[1] (one instance owns
#   both), pump2 in in[0] only: one warning, for pump1.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_split.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
PUT="${AD_BUILD:-build}/tests/kafka_put"
DPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_split" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:2 st:1 al:1 || exit 1
cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-ksplit"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "alert_topic": "al",
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json"}, "calibration": {"windows": 20}}]}
EOC
put() {     # PARTITION FROM TO: rows FROM..TO-1 of pump1 and pump2
    $PYTHON tests/it_kafka_gen.py --record-time 2 "$2" "$3" | grep "|pump[12]|" |
        if [ "$1" = 1 ]; then grep "|pump1|"; else cat; fi |
        "$PUT" "$BOOT" in "$1" 2>> "$D/put.out" || { it_fail "records produced" "$(cat "$D/put.out")"; exit 0; }
}
$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
it_wait_until 30 grep -q 'kafka: owns in\[1\]' "$D/a.log" ||
    { it_fail "the instance owns both partitions" "$(grep 'kafka:' "$D/a.log" | tail -3)"; exit 0; }
put 0 0 40
it_wait_until 30 grep -q 'new stream pump2' "$D/a.log"
sleep 1
put 1 40 60
if it_wait_until 30 grep -q 'kafka in\[1\]@0: stream pump/pump1 had its records from in\[0\]: a stream.s records must all be in one partition' "$D/a.log" &&
   [ "$(grep -c 'had its records from' "$D/a.log")" -eq 1 ]; then
    it_ok "pump1's records from in[0], then in[1]: warned of once, both partitions named"
else
    it_fail "pump1's records split between partitions: warned of once" \
        "$(grep -c 'had its records from' "$D/a.log") warning(s); $(grep -m1 'had its records' "$D/a.log")"
fi
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
