#!/bin/sh
# bench_kafka.sh - scale-out throughput: records (one pump row each, one
# window each) per second through 1 and then 2 anomalyd instances in one
# consumer group, against librdkafka's mock cluster (3 brokers on
# 127.0.0.1, an 8-partition input topic, the state topic on). The records
# are produced (kcat, from a file generated beforehand) once the group has
# its assignment; the clock runs from the first record produced to the last
# one counted in the instances' stats. Each instance has 1 worker thread.
# Prints both rates and their ratio (the machine has few cores: the mock
# cluster, kcat and the broker share them with the instances).
#   BENCH_STREAMS=64 BENCH_ROWS=3000 sh bench/bench_kafka.sh
. tests/lib.sh
S=${BENCH_STREAMS:-64}
R=${BENCH_ROWS:-3000}
D=$(mktemp -d /tmp/bench_kafka.XXXXXX)
MOCK="${AD_BUILD:-build}/tests/kafka_mock"
CHECK="$PYTHON tests/it_kafka_check.py"
MPID= ; P= ; SUB=
cleanup() {
    for p in $P $SUB; do kill "$p" 2>/dev/null; done
    for p in $P; do it_wait_gone "$p" 10; done
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    it_broker_stop; [ -n "${KEEP:-}" ] || rm -rf "$D"
}
trap cleanup EXIT
command -v kcat > /dev/null || { echo "bench_kafka: kcat not installed, skipped"; exit 0; }
it_broker_start "$D" || exit 1
"$MOCK" in1:8 in2:8 st:3 > "$D/boot" 2> "$D/mock.out" & MPID=$!
it_wait_until 10 test -s "$D/boot" || exit 1
BOOT=$(head -1 "$D/boot")
$PYTHON tests/it_kafka_gen.py "$S" 0 "$R" > "$D/records"
TOTAL=$((S * R))
echo "bench_kafka: $S streams x $R rows = $TOTAL records, 8 partitions, $(getconf _NPROCESSORS_ONLN) cores"

owned() {  # all 8 partitions owned by the live instances of run $1
    [ "$($CHECK owners "$D/$1" /dev/null | tr ' ,' '\n\n' | grep -c '[0-9]')" -eq 8 ]
}
run() {  # run N: N instances, group gN, topic inN
    mkdir -p "$D/$1"
    for i in $(seq 1 "$1"); do
        cat > "$D/$1/i$i.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "bench-kafka-$1-$i", "stats_interval_s": 0.1,
            "stats_topic": "bench/stats/$1/$i"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "g$1", "state_topic": "st"},
 "state_dir": null, "workers": 1, "log_rate_per_min": 5,
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "kafka_topics": ["in$1"], "alerts_to": "mqtt",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "max_streams": $((S + 10))}]}
EOC
        $AD_BIN run -c "$D/$1/i$i.json" --log-level info 2> "$D/$1/i$i.log" & P="$P $!"
    done
    mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t "bench/stats/$1/#" > "$D/$1.stats" 2>/dev/null &
    SUB=$!
    it_wait_until 60 owned "$1" || { echo "bench_kafka: group g$1 not assigned"; return 1; }
    t0=$(_it_now_ms)
    kcat -P -K'|' -b "$BOOT" -t "in$1" < "$D/records" 2>> "$D/kcat.out"
    it_wait_until 300 sh -c "[ \$($CHECK consumed $D/$1.stats) -ge $TOTAL ]" ||
        { echo "bench_kafka: $1 instance(s) did not consume $TOTAL records"; return 1; }
    t1=$(_it_now_ms)
    for p in $P; do kill -TERM "$p"; done
    for p in $P; do it_wait_gone "$p" 20; done
    kill "$SUB" 2>/dev/null; P= ; SUB=
    echo "$1 $t0 $t1" >> "$D/times"
    awk -v n="$1" -v t="$TOTAL" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "  %d instance(s): %.2f s, %.0f records/s\n", n, (b - a) / 1000, t * 1000 / (b - a) }'
}
run 1 || exit 1
run 2 || exit 1
awk '{ r[$1] = $3 - $2 } END { printf "  ratio 2 instances / 1 instance: %.2f\n", r[1] / r[2] }' "$D/times"
