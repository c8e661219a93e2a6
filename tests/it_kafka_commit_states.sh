#!/bin/sh
# it_kafka_commit_states.sh - kafka.commit_states: each offset commit first
# writes the state of every stream that took records, with its window rows,
# its calibration so far and the offset it continues at. An instance killed
# (SIGKILL) in the middle of a backlog then loses nothing: its successor
# reads on from the commit with those states, its windows continue the
# rows (none unscored) and a calibration goes on where it was. Without it
# the successor restored the state of each stream's last change (no rows,
# no calibration so far): T - 1 samples of each stream unscored and the
# calibration started again, ending 51 windows later than on one instance,
# with another threshold.
# librdkafka's mock cluster on 127.0.0.1, a real mosquitto (stats).
#   3 pump streams, calibration.windows 100. Instance a applies rows 0..79
#   (51 windows each), its states written and the offset committed, and is
#   killed; rows 80..199 arrive; instance b takes the partition. A single
#   instance r (another group, state and alert topics) reads all 200 rows.
#   b scores a window per row (120 each), continues each calibration from
#   51 of 100 windows, ends it with r's threshold (1e-6) on as many
#   windows, and a blockage from row 150 raises r's alerts (same ids).
#   KCS=false runs the same without commit_states (what it was before).
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_commit_states.XXXXXX)
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
command -v kcat > /dev/null || { it_skip "kafka_commit_states" "kcat not installed"; exit 0; }
it_broker_up
# REFUSED=N (it_kafka_state_refused.sh): the state topic, led by broker 3,
# refuses the first N produce requests for good (MSG_SIZE_TOO_LARGE)
if [ -n "${REFUSED:-}" ]; then
    IT_KAFKA_SLOW_ERRORS="$REFUSED:10" it_kafka_start --slow st:1:ad in:1 st:1 st2:1 al:1 \
        ref.alerts:1 || exit 1
else
    it_kafka_start in:1 st:1 st2:1 al:1 ref.alerts:1 || exit 1
fi
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null &
SPID=$!

# conf NAME GROUP STATE_TOPIC ALERT_TOPIC
conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kcs-$1", "stats_interval_s": 0.5,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "$2", "state_topic": "$3",
           "alert_topic": "$4", "commit_interval_s": 0.3, "commit_states": ${KCS:-true},
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
conf a ad st al
$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
it_wait_until 90 at_least a samples $((N * R1 * 5)) ||
    { it_fail "instance a applies rows 0..$((R1 - 1))" "samples $(stat a samples); $(tail -3 "$D/a.log")"; exit 0; }
if [ "${KCS:-true}" = true ]; then
    it_wait_until 30 grep -q "kafka: in\[0\]: states of its streams .* offset $((N * R1))" "$D/a.log" ||
        { it_fail "instance a writes its streams' states at offset $((N * R1))" "$(grep 'kafka:' "$D/a.log" | tail -3)"; exit 0; }
fi
sleep 2                             # its commit, every window scored
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=

gen $R1 $R2
conf r ref st2 ref.alerts
$AD_BIN run -c "$D/r.json" --log-level debug 2> "$D/r.log" & RPID=$!
conf b ad st al
$AD_BIN run -c "$D/b.json" --log-level debug 2> "$D/b.log" & DPID=$!
it_wait_until 120 at_least r windows_scored $((N * (R2 - 29))) ||
    { it_fail "the single instance scores every window" "$(stat r windows_scored)"; exit 0; }
it_wait_until 120 at_least b samples $((N * (R2 - R1) * 5)) ||
    { it_fail "instance b reads rows $R1..$((R2 - 1))" "samples $(stat b samples); $(tail -3 "$D/b.log")"; exit 0; }
sleep 2                             # the last windows scored, alerts out
scored=$(stat b windows_scored); late=$(stat b pump.samples_late)
kill -TERM "$DPID" "$RPID"; it_wait_gone "$DPID" 30; it_wait_gone "$RPID" 30; DPID= ; RPID=
kcat -C -b "$BOOT" -t st -e -q -K'|' > "$D/st.txt" 2>> "$D/kcat.out"
kcat -C -b "$BOOT" -t st2 -e -q -K'|' > "$D/st2.txt" 2>> "$D/kcat.out"
kcat -C -b "$BOOT" -t al -e -q -K'|' > "$D/alerts.txt" 2>> "$D/kcat.out"
kcat -C -b "$BOOT" -t ref.alerts -e -q -K'|' > "$D/ref.txt" 2>> "$D/kcat.out"

[ "$scored" -eq $((N * (R2 - R1))) ] && [ "$late" -eq 0 ] &&
    it_ok "after the kill, b scores a window per row of the backlog ($scored): the rows continue its windows, none read twice" ||
    it_fail "after the kill, b scores a window per row of the backlog" \
        "$scored windows of $((N * (R2 - R1))), $late samples late"
cont=$(grep -c 'calibration continues from the saved state: 51 of 100 windows' "$D/b.log")
[ "$cont" -eq "$N" ] &&
    it_ok "b continues each stream's calibration at 51 of 100 windows" ||
    it_fail "b continues each stream's calibration at 51 of 100 windows" \
        "$cont of $N; $(grep -h 'calibrat' "$D/b.log" | head -3)"
it_check "thresholds as on a single instance, on as many windows" \
    $CHECK same "$D/st.txt" "$D/st2.txt" $N
it_check "the blockage from row 150 raises the single instance's alerts, none missed" \
    $CHECK samealerts "$D/alerts.txt" "$D/ref.txt"
