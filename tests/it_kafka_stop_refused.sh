#!/bin/sh
# it_kafka_stop_refused.sh - a stop whose states the cluster refuses for
# good (MSG_SIZE_TOO_LARGE, as for a record over the state topic's
# max.message.bytes) commits nothing: the refused states empty the
# producer's queue as delivered ones do, but the records they covered have
# no other trace. Instance a (no periodic commit within the test: only its
# stop commits) applies rows 0..79 of 3 streams and is stopped, the state
# topic refusing everything it writes; b then reads the partition from the
# beginning and scores as the single instance r does (every window of 200
# rows, the same alerts). Before, a's stop committed offset 240 past the
# lost states: b restored none, scored 273 of 513 windows and calibrated on
# too few rows to raise the blockage's alerts.
# librdkafka's mock cluster on 127.0.0.1 (the state topic on broker 3,
# which refuses the first REFUSED produce requests), a real mosquitto.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_stop_refused.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=3; R1=80; R2=200
FAULT="blockage@150m+40m:3"
DPID= ; RPID= ; SPID= ; MPID=
cleanup() {
    for p in $DPID $RPID $SPID; do kill "$p" 2>/dev/null; done
    it_kafka_cleanup
}
trap cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_stop_refused" "kcat not installed"; exit 0; }
it_broker_up
IT_KAFKA_SLOW_ERRORS="${REFUSED:-6}:10" it_kafka_start --slow st:1:ad in:1 st:1 st2:1 al:1 ref.alerts:1 ||
    exit 1
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null &
SPID=$!

# conf NAME GROUP STATE_TOPIC ALERT_TOPIC
conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kcs-$1", "stats_interval_s": 0.5,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "$2", "state_topic": "$3",
           "alert_topic": "$4", "commit_interval_s": $CI, "commit_states": false,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
}
# stat NAME KEY: KEY of instance NAME's last stats message (a member of
# the detector's entry when KEY starts with "pump.")
stat() { it_line_stat "$D/stats" "anomalyd/stats/$1" "$2"; }
at_least() { [ "$(stat "$1" "$2")" -ge "$3" ]; }
gen() {     # FROM TO: rows FROM..TO-1 of every stream, all faulty
    $PYTHON tests/it_kafka_gen.py --faulty $N $N "$1" "$2" "$FAULT" |
        kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
}

gen 0 $R1
CI=3600; conf a ad st al
$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
it_wait_until 90 at_least a samples $((N * R1 * 5)) ||
    { it_fail "instance a applies rows 0..$((R1 - 1))" "samples $(stat a samples); $(tail -3 "$D/a.log")"; exit 0; }
sleep 2                             # every window scored
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
grep -q "offsets not committed at stop" "$D/a.log" &&
    it_ok "a's stop, its states refused, commits nothing" ||
    it_fail "a's stop, its states refused, commits nothing" "$(grep 'kafka:' "$D/a.log" | tail -4)"

gen $R1 $R2
CI=0.3; conf r ref st2 ref.alerts
$AD_BIN run -c "$D/r.json" --log-level debug 2> "$D/r.log" & RPID=$!
conf b ad st al
$AD_BIN run -c "$D/b.json" --log-level debug 2> "$D/b.log" & DPID=$!
it_wait_until 120 at_least r windows_scored $((N * (R2 - 29))) ||
    { it_fail "the single instance scores every window" "$(stat r windows_scored)"; exit 0; }
it_wait_until 120 at_least b samples $((N * R2 * 5)) ||
    { it_fail "instance b reads rows 0..$((R2 - 1))" "samples $(stat b samples); $(tail -3 "$D/b.log")"; exit 0; }
sleep 2                             # the last windows scored, alerts out
scored=$(stat b windows_scored); ref=$(stat r windows_scored)
kill -TERM "$DPID" "$RPID"; it_wait_gone "$DPID" 30; it_wait_gone "$RPID" 30; DPID= ; RPID=
kcat -C -b "$BOOT" -t al -e -q -K'|' > "$D/alerts.txt" 2>> "$D/kcat.out"
kcat -C -b "$BOOT" -t ref.alerts -e -q -K'|' > "$D/ref.txt" 2>> "$D/kcat.out"

[ "$scored" -eq "$ref" ] && [ "$ref" -eq $((N * (R2 - 29))) ] &&
    it_ok "b reads the partition from the start and scores every window ($scored)" ||
    it_fail "b reads the partition from the start and scores every window" \
        "$scored windows, the single instance $ref"
it_check "the blockage from row 150 raises the single instance's alerts, none missed" \
    $CHECK samealerts "$D/alerts.txt" "$D/ref.txt"
