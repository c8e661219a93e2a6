#!/bin/sh
# bench_kafka.sh - Kafka throughput against librdkafka's mock cluster (3
# brokers on 127.0.0.1), a real mosquitto for the instances' stats.
#
# Default mode: scale-out, records (one pump row each, one window each) per
# second through 1 and then 2 anomalyd instances in one consumer group (an
# 8-partition input topic, the state topic on). The records are produced
# (kcat, from a file generated beforehand) once the group has its
# assignment; the clock runs from the first record produced to the last
# one counted in the instances' stats. Each instance has 1 worker thread.
# Prints both rates and their ratio (the machine has few cores: the mock
# cluster, kcat and the broker share them with the instances).
#   BENCH_STREAMS=64 BENCH_ROWS=3000 sh bench/bench_kafka.sh
#
# Mode "states": the cost of kafka.commit_states. For each number of
# active streams S, one instance (1 worker) reads the
# same BENCH_RECORDS records (S pump streams, rows interleaved: every
# stream takes records between two commits), produced beforehand into an
# 8-partition topic, once with commit_states false and once true (own
# group, own state topic, in turns). Throughput: records counted in the
# stats from the first message with records to the first with all of them
# (timestamped as received, 0.1 s apart), and the CPU seconds of the
# instance (all threads, /proc), the steadier figure on a loaded machine.
# Per commit: the states written and their bytes (key + value), from the
# "kafka: checkpoint" debug lines (not the states written when they
# change, as without commit_states). calibration.windows BENCH_CALIB (50):
# with 1000 streams the streams calibrate within their 120 rows (their
# states are still small: a full probability history, 500 windows, makes
# a pump stream's about 14 KB). BENCH_COMMIT_S: commit_interval_s (1).
# BENCH_RATE=R: the records are produced as the instance reads them, R
# rows of each stream a second (a steady load rather than a backlog: the
# records/s are R x S, the CPU seconds tell the cost).
#   BENCH_STATE_STREAMS="10 100 1000" BENCH_RECORDS=120000 BENCH_REPEAT=2 \
#       sh bench/bench_kafka.sh states
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
# states_got STATS N: the last stats message counts N records in (or more)
states_got() {
    [ "$(tail -n 1 "$1" | grep -o '"messages_in":[0-9]*' | grep -o '[0-9]*$')" -ge "$2" ] 2>/dev/null
}
# states_run S MODE I: one instance reads topic inS (with BENCH_RATE, its
# own topic, fed as it reads), commit_states MODE
# (false/true), group and state topic named after S, MODE and I
states_run() {
    n=s$1$2$3; mkdir -p "$D/$n"
    tin=in$1; [ -n "${BENCH_RATE:-}" ] && tin=in$n
    cat > "$D/$n/i.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "bench-kafka-$n", "stats_interval_s": 0.1,
            "stats_topic": "bench/stats/$n"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "g$n", "state_topic": "st$n",
           "commit_interval_s": ${BENCH_COMMIT_S:-1}, "commit_states": $2},
 "state_dir": null, "workers": 1, "log_rate_per_min": 5,
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "kafka_topics": ["$tin"], "alerts_to": "mqtt",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": ${BENCH_CALIB:-50}}, "max_streams": $(($1 + 10))}]}
EOC
    mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -F '%U %t %p' -t "bench/stats/$n" \
        > "$D/$n.stats" 2>/dev/null &
    SUB=$!
    $AD_BIN run -c "$D/$n/i.json" --log-level debug 2> "$D/$n/i.log" & P=$!
    total=$(wc -l < "$D/rec$1")
    if [ -n "${BENCH_RATE:-}" ]; then
        it_wait_until 60 sh -c "[ \$(grep -c 'kafka: owns $tin' $D/$n/i.log) -ge 8 ]" ||
            { echo "bench_kafka: $n not assigned"; return 1; }
        $PYTHON tests/it_kafka_gen.py --rate "$BENCH_RATE" "$1" 0 $((NR / $1)) |
            kcat -P -K'|' -b "$BOOT" -t "$tin" 2>> "$D/kcat.out"
    fi
    it_wait_until 600 states_got "$D/$n.stats" "$total" ||
        { echo "bench_kafka: $n did not consume $total records"; return 1; }
    # CPU seconds of the instance (all its threads) up to there
    cpu=$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$P/stat")
    kill -TERM "$P"; it_wait_gone "$P" 60; kill "$SUB" 2>/dev/null; P= ; SUB=
    $PYTHON - "$D/$n.stats" "$D/$n/i.log" - "$1" "$2" "$cpu" >> "$D/states" <<'EOP'
import json, re, sys
t0 = n0 = t1 = n1 = None
last = 0
for ln in open(sys.argv[1], errors="replace"):
    ts, _, rest = ln.partition(" ")
    _, _, p = rest.partition(" ")
    try:
        s = json.loads(p)
    except ValueError:
        continue
    n = s.get("messages_in", 0) - s.get("handover_skipped", 0)
    if n > 0 and t0 is None:
        t0, n0 = float(ts), n
    if n > last:
        t1, n1, last = float(ts), n, n
cps = [(int(m.group(1)), int(m.group(2))) for m in
       re.finditer(r"kafka: checkpoint: (\d+) state\(s\), (\d+) bytes", open(sys.argv[2]).read())]
ns = [c[0] for c in cps] or [0]
bs = [c[1] for c in cps] or [0]
rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0
# S MODE RATE SECONDS CHECKPOINTS MEAN_STATES MEAN_BYTES MAX_BYTES ALL_BYTES CPU_S
print(sys.argv[4], sys.argv[5], "%.0f" % rate, "%.2f" % (t1 - t0), len(cps),
      "%.0f" % (sum(ns) / len(ns)), "%.0f" % (sum(bs) / len(bs)), max(bs), sum(bs),
      sys.argv[6])
EOP
    tail -1 "$D/states" | awk '{ printf "  %5d streams, commit_states %-5s: %7d records/s (%s s), %d checkpoints of %d states, %.0f KB (max %.0f KB); %.1f MB in all; %.1f CPU s\n", $1, $2, $3, $4, $5, $6, $7 / 1024, $8 / 1024, $9 / 1048576, $10 }'
}
bench_states() {
    SS=${BENCH_STATE_STREAMS:-10 100 1000}
    NR=${BENCH_RECORDS:-120000}
    REP=${BENCH_REPEAT:-2}
    tp=
    for s in $SS; do
        tp="$tp in$s:8"
        for r in $(seq 1 "$REP"); do
            tp="$tp sts${s}false$r:3 sts${s}true$r:3 ins${s}false$r:8 ins${s}true$r:8"
        done
    done
    "$MOCK" $tp > "$D/boot" 2> "$D/mock.out" & MPID=$!
    it_wait_until 10 test -s "$D/boot" || return 1
    BOOT=$(head -1 "$D/boot")
    echo "bench_kafka states: $NR records, 8 partitions, 1 instance, 1 worker," \
        "commit_interval_s ${BENCH_COMMIT_S:-1}, $(getconf _NPROCESSORS_ONLN) cores"
    for s in $SS; do
        $PYTHON tests/it_kafka_gen.py "$s" 0 $((NR / s)) > "$D/rec$s"
        [ -n "${BENCH_RATE:-}" ] ||
            kcat -P -K'|' -b "$BOOT" -t "in$s" < "$D/rec$s" 2>> "$D/kcat.out"
        for r in $(seq 1 "$REP"); do
            states_run "$s" false "$r" || return 1
            states_run "$s" true "$r" || return 1
        done
    done
    echo "  commit_states true / false, means over $REP run(s) each: records/s (wall clock," \
        "a loaded machine makes it noisy), CPU seconds of the instance; per commit"
    awk '{ k = $1 " " $2; r[k] += $3; u[k] += $10; c[k]++
           if ($2 == "true") { b[$1] += $7; st[$1] += $6 } }
         END { for (k in r) if (k ~ / true$/) { split(k, a, " "); f = a[1] " false"
               printf "  %5d streams: records/s x%.2f, CPU x%.2f; %.0f KB, %d states per commit\n",
                 a[1], (r[k] / c[k]) / (r[f] / c[f]), (u[k] / c[k]) / (u[f] / c[f]),
                 b[a[1]] / c[k] / 1024, st[a[1]] / c[k] } }' "$D/states" | sort -n
}
# Mode "rebalance": how long an assignment takes to read the state topic
# (every assignment reads it from its beginning). One instance applies 60
# rows of BENCH_STREAMS streams (1000) and stops (each stream's state
# written as at a hand-over, besides those of its phase changes); then the
# state topic holds that many copies of each record more (BENCH_COPIES,
# "0 9 49": an uncompacted topic, as commit_states or a long life leaves
# it), and each time another instance of the group starts and takes every
# partition: its log says what it read and how long it took. BENCH_OLD=BIN:
# an instance of that other build reads each time too, right after, for a
# comparison on the same topic and load.
#   BENCH_STREAMS=1000 BENCH_COPIES="0 9 49" sh bench/bench_kafka.sh rebalance
rb_conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "bench-kafka-$1", "stats_interval_s": 0.5,
            "stats_topic": "bench/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "grb", "state_topic": "st",
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "state_dir": null, "workers": 1, "log_rate_per_min": 5,
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "kafka_topics": ["in"], "alerts_to": "mqtt",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 20}, "max_streams": $((S + 10))}]}
EOC
}
bench_rebalance() {
    S=${BENCH_STREAMS:-1000}
    "$MOCK" in:8 st:3 > "$D/boot" 2> "$D/mock.out" & MPID=$!
    it_wait_until 10 test -s "$D/boot" || return 1
    BOOT=$(head -1 "$D/boot")
    echo "bench_kafka rebalance: $S streams, 8 partitions, a 3-partition state topic," \
        "$(getconf _NPROCESSORS_ONLN) cores"
    $PYTHON tests/it_kafka_gen.py "$S" 0 60 | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
    rb_conf a
    mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t bench/stats/a > "$D/a.stats" 2>/dev/null &
    SUB=$!
    $AD_BIN run -c "$D/a.json" --log-level info 2> "$D/a.log" & P=$!
    it_wait_until 600 states_got "$D/a.stats" $((S * 60)) ||
        { echo "bench_kafka: the first instance did not apply $((S * 60)) records"; return 1; }
    kill -TERM "$P"; it_wait_gone "$P" 60; kill "$SUB" 2>/dev/null; P= ; SUB=
    kcat -C -b "$BOOT" -t st -e -q -f '%k|%s\n' > "$D/st.txt" 2>> "$D/kcat.out"
    echo "  the first instance wrote $(wc -l < "$D/st.txt") states, $(($(wc -c < "$D/st.txt") / 1024)) KB"
    have=0
    for c in ${BENCH_COPIES:-0 9 49}; do
        while [ "$have" -lt "$c" ]; do
            kcat -P -K'|' -b "$BOOT" -t st < "$D/st.txt" 2>> "$D/kcat.out"; have=$((have + 1))
        done
        for b in "b$c" ${BENCH_OLD:+"o$c"}; do
            rb_conf "$b"
            bin=$AD_BIN; [ "$b" = "o$c" ] && bin=$BENCH_OLD
            t0=$(_it_now_ms)
            $bin run -c "$D/$b.json" --log-level info 2> "$D/$b.log" & P=$!
            it_wait_until 900 grep -q 'kafka: state topic read' "$D/$b.log" ||
                { echo "bench_kafka: $b did not read the state topic"; return 1; }
            t1=$(_it_now_ms)
            kill -TERM "$P"; it_wait_gone "$P" 60; P=
            [ "$b" = "o$c" ] && echo "  +$c copies (BENCH_OLD):" \
                "$(grep -o 'state topic read: .*' "$D/$b.log" | head -1)" \
                "($(((t1 - t0) / 1000)) s from the instance's start)" && continue
            t2=$(_it_now_ms)        # kcat reading the same topic, for scale
            kcat -C -b "$BOOT" -t st -e -q -f '%k\n' 2>> "$D/kcat.out" | wc -l > "$D/kcat$c"
            t3=$(_it_now_ms)
            echo "  +$c copies: $(grep -o 'state topic read: .*' "$D/$b.log" | head -1)" \
                "($(((t1 - t0) / 1000)) s from the instance's start; kcat read $(cat "$D/kcat$c")" \
                "records in $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", (b - a) / 1000 }') s)"
        done
    done
}
command -v kcat > /dev/null || { echo "bench_kafka: kcat not installed, skipped"; exit 0; }
it_broker_start "$D" || exit 1
[ "${1:-}" = states ] && { bench_states; exit $?; }
[ "${1:-}" = rebalance ] && { bench_rebalance; exit $?; }
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
