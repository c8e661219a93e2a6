#!/bin/sh
# it_kafka_equal_ms.sh - Kafka records of one stream stamped in the same
# millisecond (a topic whose broker stamps batches, LogAppendTime; a
# producer's burst) are 1 ms apart as rows (kafka.row_time "record"). A
# stream handed over in the middle of such a batch (a stop, a revoke) goes
# on with those steps on its next owner: the batch's next record comes
# after the rows its state holds and is applied. Before, the next owner
# stepped from the record's own time again, behind the restored last row:
# the rest of the batch was dropped as late, every row of it lost.
# librdkafka's mock cluster on 127.0.0.1, a real mosquitto (stats).
#   3 pump streams, rows 0..99 all at one record timestamp T; instance a
#   applies them and stops (SIGTERM: states handed over, offset
#   committed); rows 100..179, still at T (the rest of the batch), wait in
#   the partition; instance b takes it and applies every one of them: no
#   sample late, a window scored per record as on one instance (before:
#   all 240 dropped as late, no window).
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_equal_ms.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
PUT="${AD_BUILD:-build}/tests/kafka_put"
N=3; R1=100; R2=180
DPID= ; SPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_equal_ms" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 al:1 || exit 1
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null &
SPID=$!

conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kequal-$1", "stats_interval_s": 0.5,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "alert_topic": "al", "commit_interval_s": 3600,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json"}, "calibration": {"windows": 20}}]}
EOC
}
# stat NAME KEY: KEY of instance NAME's last stats message (a member of
# the detector's entry when KEY starts with "pump.")
stat() { it_line_stat "$D/stats" "anomalyd/stats/$1" "$2"; }
at_least() { [ "$(stat "$1" "$2")" -ge "$3" ]; }
# put FROM TO: rows FROM..TO-1 of every stream, every record stamped T
T=1700000000000
put() {
    $PYTHON tests/it_kafka_gen.py --record-time $N "$1" "$2" | sed "s/^[0-9]*|/$T|/" |
        "$PUT" "$BOOT" in 0 2>> "$D/put.out" || { it_fail "records produced" "$(cat "$D/put.out")"; exit 0; }
}

put 0 $R1
conf a
$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
it_wait_until 90 at_least a samples $((N * R1 * 5)) ||
    { it_fail "instance a applies rows 0..$((R1 - 1))" "samples $(stat a samples); $(tail -3 "$D/a.log")"; exit 0; }
late_a=$(stat a pump.samples_late)
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
grep -q "kafka: in\[0\] committed at $((N * R1)) (stop)" "$D/a.log" ||
    { it_fail "instance a stops, its states handed over at offset $((N * R1))" "$(grep 'kafka:' "$D/a.log" | tail -3)"; exit 0; }
wa=$(grep -c 'stream pump/pump[0-9]*: window .* score' "$D/a.log")

put $R1 $R2
conf b
$AD_BIN run -c "$D/b.json" --log-level debug 2> "$D/b.log" & DPID=$!
it_wait_until 90 at_least b messages_in $((N * (R2 - R1))) ||
    { it_fail "instance b reads the rest of the batch" "$(stat b messages_in) records; $(tail -3 "$D/b.log")"; exit 0; }
it_wait_until 10 at_least b samples $((N * (R2 - R1) * 5))
sleep 1.5                           # the last stats after the last record
late=$(stat b pump.samples_late); dropped=$(stat b pump.dropped_samples)
scored=$(stat b windows_scored)
[ "$late_a" -eq 0 ] && [ "$late" -eq 0 ] && [ "$dropped" -eq 0 ] &&
    it_ok "a batch of one millisecond handed over in its middle: its $((N * (R2 - R1))) records after the hand-over applied on the next owner (none late)" ||
    it_fail "a batch of one millisecond handed over in its middle: the rest applied" \
        "instance a: $late_a late; instance b: $late samples late, $dropped dropped of $((N * (R2 - R1) * 5)); $(grep -m1 'dropped as late' "$D/b.log")"
# the rows continue the handed-over window ring: a window per record
[ "$scored" -eq $((N * (R2 - R1))) ] &&
    it_ok "the next owner scores a window per record ($scored), its windows continuing the handed-over rows" ||
    it_fail "the next owner scores a window per record" "$scored windows of $((N * (R2 - R1)))"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
