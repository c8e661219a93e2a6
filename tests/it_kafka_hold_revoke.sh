#!/bin/sh
# it_kafka_hold_revoke.sh - a partition revoked while its state is read
# (its records held, the partition paused at the first of them) and later
# assigned back to the same instance is read again. librdkafka keeps a
# partition's pause across its revoke and a later assignment: the instance
# must resume what it paused before letting the partition go. And with
# kafka.commit_states on b, b stopped while the state topic takes nothing
# loses no window: no offset is committed past a state not delivered.
# librdkafka's mock cluster (3 brokers on 127.0.0.1), the state topic led by
# a broker answering 10 s late so that a's first read of it lasts while b
# joins; a real mosquitto on 127.0.0.1 (stats).
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_hold_revoke.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=8
P= ; SUB= ; MPID=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_hold_revoke" "kcat not installed"; exit 0; }
# about 4 minutes (a 30 s session timeout, a state topic 10 s late): not in
# the default run, which must stay within the CI budget
[ "${AD_SLOW_TESTS:-0}" = 1 ] ||
    { it_skip "kafka_hold_revoke" "slow (about 4 min): AD_SLOW_TESTS=1 runs it"; exit 0; }
it_broker_up
it_kafka_start --slow st:10000:ad in:2 st:1 anomalyd.alerts:1 || exit 1
FAST=${BOOT%%,*}                  # broker 1: the instances bootstrap off the slow one
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null & SUB=$!

conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-khold-$1", "stats_interval_s": 1,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "ad", "state_topic": "st",
           "commit_interval_s": 0.2, "commit_states": $2,
           "properties": {"session.timeout.ms": "30000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
}
start() {       # NAME COMMIT_STATES
    conf "$1" "$2"
    $AD_BIN run -c "$D/$1.json" --log-level debug 2> "$D/$1.log" & P="$P $!"
    eval "PID_$1=\$!"
}
pid() { eval "echo \$PID_$1"; }
consumed() { [ "$($CHECK consumed "$D/stats")" -ge "$1" ]; }
gen() {     # N FROM TO: rows FROM..TO of every stream
    $PYTHON tests/it_kafka_gen.py "$@" | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
}
held() { [ "$(grep -c 'kafka: in\[[01]\]: records held until its state is read' "$D/a.log")" -ge 2 ]; }

gen $N 0 40                       # records waiting on both partitions
start a false                     # the state topic as small as before: a reads it fast enough
it_check "a holds the records of both partitions while the state topic is read" \
    it_wait_until 30 held
start b true
it_check "b joins while a reads: a lets one partition go before its read is done" \
    it_wait_until 90 grep -q 'kafka: released in\[' "$D/a.log"
if grep -q 'kafka: owns in\[.*(state read)' "$D/a.log" &&
   [ "$(grep -n 'kafka: owns in\[.*(state read)' "$D/a.log" | head -1 | cut -d: -f1)" -lt \
     "$(grep -n 'kafka: released in\[' "$D/a.log" | head -1 | cut -d: -f1)" ]; then
    it_skip "kafka_hold_revoke" "a's read ended before b joined (slow machine?)"
    exit 0
fi
X=$(grep -o 'kafka: released in\[[01]\]' "$D/a.log" | head -1 | grep -o '[01]\]' | tr -d ']')
# b's read of the state topic, 10 s a round trip, ends 70 to 100 s after
# a let the partition go (5 runs): 120 s left too little on a loaded machine
it_check "b reads in[$X]" it_wait_until 240 grep -q "kafka: owns in\\[$X\\].*(state read)" "$D/b.log"
# b applies the records of in[X] it held (they are all there) and scores
# their windows. The state topic's broker, 10 s late, takes none of its
# states (commit_states: each commit's, and its stop's hand-over) within
# the 1 s a commit waits for them or the stop's 10 s: b commits nothing
# and a reads those records again. Without commit_states b's periodic
# commits went on without its streams' calibrations so far, and its stop
# committed too: a read on past rows whose only trace was the lost states,
# up to 40 rows of each of in[X]'s streams never scored on a, their
# calibrations started again too short to end. Stopped at once, b had
# applied a record or two, or more on a loaded machine: the test was
# unsettled
it_wait_until 30 grep -q 'new stream' "$D/b.log"
sleep 2
kill -TERM "$(pid b)"
it_wait_gone "$(pid b)" 30
it_check "in[$X] back on a, its state read" \
    it_wait_until 120 sh -c "[ \$(grep -c 'kafka: owns in\\[$X\\].*(state read)' $D/a.log) -ge 1 ]"
gen $N 40 140
if it_wait_until 60 consumed $((N * 140)); then
    it_ok "every record read: $((N * 140)) (in[$X] read on after it came back)"
else
    it_fail "every record read: $((N * 140)) (in[$X] read on after it came back)" \
        "$($CHECK consumed "$D/stats") read; $(grep 'kafka: \(owns\|released\)' "$D/a.log" | tail -3)"
fi
it_check "every stream calibrated" \
    it_wait_until 30 sh -c "[ \$(cat $D/a.log $D/b.log | grep -c 'stream pump/pump[0-9]*: threshold .* from') -ge $N ]"
# every window of rows 0..139 scored (111 a stream, rows 29..139), b's
# once more when its states did not arrive and a read their records again
# (when they did, a skips what they hold)
sleep 1.5
it_check "no window lost across b's stop (b's scored again on a when its states were lost)" \
    $CHECK windows "$D/stats" $((N * 111)) $((N * 111 + N * 11))
