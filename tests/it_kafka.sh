#!/bin/sh
# it_kafka.sh - anomalyd instances in one Kafka consumer group against a
# real-protocol cluster (librdkafka's mock cluster, 3 brokers on
# 127.0.0.1): 12 streams keyed by device (record key), two instances split
# the partitions and calibrate every stream exactly once between them.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka.XXXXXX)
MOCK="${AD_BUILD:-build}/tests/kafka_mock"
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors
DPID= ; SPID= ; MPID= ; P=
cleanup() {
    for p in $P; do kill "$p" 2>/dev/null; done
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    it_daemon_cleanup
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap "for p in \$P \$MPID; do kill \$p; done; it_broker_stop" EXIT
command -v kcat > /dev/null || { it_skip "kafka" "kcat not installed"; exit 0; }

it_broker_start "$D" || { it_fail "broker starts"; exit 1; }
"$MOCK" in:6 st:3 anomalyd.alerts:1 > "$D/boot" 2> "$D/mock.log" & MPID=$!
it_wait_until 10 test -s "$D/boot"
BOOT=$(head -1 "$D/boot")
case "$BOOT" in 127.0.0.1:*) ;; *) it_fail "mock cluster on 127.0.0.1" "$BOOT"; exit 1 ;; esac

conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kafka-$1", "stats_interval_s": 0,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "commit_interval_s": 0.5},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
}
start() { conf "$1"; $AD_BIN run -c "$D/$1.json" --log-level debug 2> "$D/$1.log" & P="$P $!"; eval "PID_$1=\$!"; }
produce() { $PYTHON tests/it_kafka_gen.py 12 "$@" | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.log"; }
calibrated() { cat "$D"/*.log | grep -c 'stream pump/pump[0-9]*: threshold .* from'; }

start a; start b
if it_wait_log "$D/a.log" 'kafka: owns in\[' 20 && it_wait_log "$D/b.log" 'kafka: owns in\[' 20; then
    it_ok "two instances share the partitions of the input topic"
else
    it_fail "two instances share the partitions of the input topic" "$(tail -5 "$D/a.log" "$D/b.log")"
fi
produce 0 300
it_wait_until 30 sh -c "[ \$(cat $D/*.log | grep -c 'stream pump/pump[0-9]*: threshold .* from') -ge 12 ]"
n=$(calibrated)
if [ "$n" -eq 12 ] && grep -q 'threshold' "$D/a.log" && grep -q 'threshold' "$D/b.log"; then
    it_ok "12 streams calibrated, spread over both instances"
else
    it_fail "12 streams calibrated, spread over both instances" "$n calibrations"
fi

# Not yet covered: stopping an instance and adding one back. Against the
# mock cluster the remaining instance's cooperative rebalance does not
# complete (commits fail with "rebalance in progress"), so state moves,
# alert closure across a move and ownership intervals are not asserted here.
it_skip "partition moves on leave/join" "cooperative rebalance after a member leaves does not complete yet"
