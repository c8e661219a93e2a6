#!/bin/sh
# it_kafka.sh - anomalyd instances in one Kafka consumer group against a
# real-protocol cluster (librdkafka's mock cluster, 3 brokers on 127.0.0.1).
# 12 pump streams keyed by device (record key) on a 6-partition topic; one
# has a fault. Two instances start; the one holding the open alert is
# stopped (SIGTERM) while the alert is open and a third joins; later one is
# killed (SIGKILL, 4 s session timeout) and a fourth joins. Asserted: every
# stream calibrated exactly once (its threshold moves with its partition),
# the alert raised on one instance is cleared on another with the same id,
# no partition owned by two instances at once, every record consumed once
# and the windows scored within what the moves allow (a hand-over carries
# the window rows: windows are lost only on the killed instance's streams).
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka.XXXXXX)
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=12; W=30                       # streams, model window
DPID= ; SPID= ; MPID= ; P= ; SUB=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:6 st:3 anomalyd.alerts:1 || exit 1
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null & SUB=$!

conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kafka-$1", "stats_interval_s": 1,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "commit_interval_s": 0.3,
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
}
start() {
    conf "$1"
    $AD_BIN run -c "$D/$1.json" --log-level debug 2> "$D/$1.log" & P="$P $!"
    eval "PID_$1=\$!"
}
pid() { eval "echo \$PID_$1"; }
FAULT="blockage@230m+40m:3"
ROWS=0
produce() {  # rows ROWS..$1 of every stream
    $PYTHON tests/it_kafka_gen.py $N $ROWS "$1" "$FAULT" |
        kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
    ROWS=$1
}
consumed() { [ "$($CHECK consumed "$D/stats")" -ge $((N * ROWS)) ]; }
all_owned() {  # the 6 partitions owned by the live instances $*
    _o=$($CHECK owners "$D" "$D/kills"); _c=0
    for _n in "$@"; do
        _c=$((_c + $(echo "$_o" | tr ' ' '\n' | grep "^$_n:" | cut -d: -f2 | tr ',' '\n' | grep -c .)))
    done
    [ "$_c" -eq 6 ] && [ "$(echo "$_o" | tr ' ' '\n' | grep -c .)" -eq "$#" ]
}
owns_some() { $CHECK owners "$D" "$D/kills" | tr ' ' '\n' | grep -q "^$1:"; }
holder() {   # the instance that logged $1 for stream pump1
    grep -l "alert .* $1: detector pump stream pump1 " "$D"/[a-z].log | head -1 | xargs -r basename | cut -c1
}

start a; start b
it_check "two instances share the 6 partitions" it_wait_until 30 all_owned a b
produce 200
it_check "12 streams calibrated on the two instances" \
    it_wait_until 30 sh -c "[ \$(cat $D/[a-z].log | grep -c 'stream pump/pump[0-9]*: threshold .* from') -ge $N ]"
produce 250
if it_wait_until 30 sh -c "grep -q 'alert .* raised: detector pump stream pump1 ' $D/[a-z].log"; then
    it_ok "fault on pump1 raises an alert"
else
    it_fail "fault on pump1 raises an alert" "$(grep -h 'kafka\|alert' "$D"/[ab].log | tail -5)"
fi
it_wait_until 30 consumed
V=$(holder raised); [ -n "$V" ] || V=a
S=$([ "$V" = a ] && echo b || echo a)
kill -TERM "$(pid "$V")"
it_check "SIGTERM: $V leaves with the open alert, its partitions move to $S" \
    it_wait_until 30 all_owned "$S"
start c
it_check "c joins: the partitions are shared again" it_wait_until 30 all_owned "$S" c
produce 330
it_wait_until 30 consumed
if it_wait_until 30 sh -c "grep -q 'alert .* cleared: detector pump stream pump1 ' $D/[a-z].log" &&
   [ "$(holder cleared)" != "$V" ]; then
    it_ok "the alert raised on $V is cleared on $(holder cleared)"
else
    it_fail "the alert raised on $V is cleared on another instance" "$(grep -h 'alert' "$D"/*.log | tail -5)"
fi

# SIGKILL the instance holding pump1 now; d joins; the group notices the
# dead member after its session timeout.
K=$(holder cleared); [ -n "$K" ] || K=c
L=$([ "$K" = "$S" ] && echo c || echo "$S")
c0=$(grep -c "anomalyd/stats/$K " "$D/stats")    # idle two stats periods: offsets committed
it_wait_until 10 sh -c "[ \$(grep -c 'anomalyd/stats/$K ' $D/stats) -ge $((c0 + 2)) ]"
kill -KILL "$(pid "$K")"
echo "$K $(( $(date +%s%N) / 1000000 ))" >> "$D/kills"
start d
it_check "SIGKILL: $K's partitions go to $L and d after the session timeout" \
    it_wait_until 40 all_owned "$L" d
produce 400
it_check "every record consumed (N x rows $((N * 400)))" it_wait_until 30 consumed
for i in $L d; do kill -TERM "$(pid "$i")"; done
for i in $L d; do it_wait_gone "$(pid "$i")" 20; done
kill "$SUB" 2>/dev/null; SUB=
got=$($CHECK consumed "$D/stats")
if [ "$got" -eq $((N * 400)) ]; then
    it_ok "records consumed exactly once: $got"
else
    it_fail "records consumed exactly once" "$got of $((N * 400))"
fi
kcat -C -b "$BOOT" -t st -e -q -K'|' > "$D/st.txt" 2>> "$D/kcat.out"
kcat -C -b "$BOOT" -t anomalyd.alerts -e -q -K'|' > "$D/alerts.txt" 2>> "$D/kcat.out"
it_check "no recalibration: one threshold per stream, kept in the state topic" \
    $CHECK thresholds "$D" "$D/st.txt" $N
it_check "every alert raised once and cleared once (same id)" $CHECK alerts "$D/alerts.txt"
it_check "no partition owned by two instances at once" $CHECK overlap "$D" "$D/kills"
# Each stream's first window completes at row W. A stream handed over
# (revoke on a live instance: SIGTERM, a join) takes its last W-1 rows along
# and its new owner scores the very next window; only a stream of the killed
# instance starts a new window (W-1 rows unscored, one such move at most).
it_check "windows scored: none twice, none lost but after the SIGKILL" \
    $CHECK windows "$D/stats" $((N * (400 - W + 1) - N * (W - 1))) $((N * (400 - W + 1)))
grep -h 'kafka.*similar line' "$D"/[a-z].log | head -3
