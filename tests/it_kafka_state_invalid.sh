#!/bin/sh
# it_kafka_state_invalid.sh - a state record whose members parse but whose
# state does not (a syntax error inside it) restores nothing, and its
# "offset" must skip nothing: the rows it should have held are read again
# from the partition's committed offset. Before, the offset still moved the
# stream's start (handed_over): the stream calibrated afresh on the rows
# after it only, the rows before it lost for good. The same for a state
# that parses and that the restore refuses (another model's): the offset
# counts only once the restore took the state.
# librdkafka's mock cluster on 127.0.0.1, a real mosquitto (stats).
#   Instance a takes 2 pump streams through 60 rows and stops (a hand-over
#   record each, offset 120). Another state topic gets pump1's record as it
#   is, pump2's with its state broken and pump3's with another model's id.
#   Instance b (another group: it reads the input from offset 0) skips
#   pump1's 60 rows (in its state), reads pump2's and pump3's 60 again (they
#   calibrate on them), and warns of pump2's state. Both share a state_dir:
#   b has a's state files too (as an instance that owned the streams
#   before), and a latest state record that does not parse or is refused
#   means calibrating afresh, not restoring such an older local file (the
#   restore runs on the thread pool, the records read meanwhile held).
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_state_invalid.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=3; ROWS=60
DPID= ; SPID= ; MPID=
cleanup() {
    for p in $DPID $SPID; do kill "$p" 2>/dev/null; done
    it_kafka_cleanup
}
trap cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_state_invalid" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 st2:1 || exit 1

conf() {    # conf NAME GROUP STATE_TOPIC
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kinv-$1", "stats_interval_s": 0.5,
            "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "$2", "state_topic": "$3",
           "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "state_dir": "$D/sd", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "mqtt",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 20}}]}
EOC
}
stat() { it_line_stat "$D/stats" "anomalyd/stats/$1" "$2"; }
at_least() { [ "$(stat "$1" "$2")" -ge "$3" ]; }
conf a ad st
conf b other st2
it_kafka_feed "a takes the partition" $N $ROWS
kcat -C -b "$BOOT" -t st -e -q -K'|' > "$D/st.txt" 2>> "$D/kcat.out"

$PYTHON - "$D/st.txt" > "$D/st2.txt" 2> "$D/st2.err" <<'EOP'
import json, sys
last = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("|")
    try:
        r = json.loads(v)
    except ValueError:
        continue
    if isinstance(r, dict) and r.get("state") and "offset" in r:
        last[k] = (v, r)
for k in ("pump/pump1", "pump/pump2", "pump/pump3"):
    if k not in last:
        sys.exit("no hand-over record of " + k)
v, r = last["pump/pump2"]
st = json.dumps(r.pop("state"))
bad = st.replace(":", " ", 1)           # {"version" 1, ...}: balanced, invalid
hdr = json.dumps(r)
broken = hdr[:-1] + ', "state": ' + bad + "}"
print("pump/pump1|" + last["pump/pump1"][0])
print("pump/pump2|" + broken)
v, r = last["pump/pump3"]
r["state"]["model_id"] = "0123456789abcdef"    # parses: another model's, refused
print("pump/pump3|" + json.dumps(r))
EOP
[ -s "$D/st2.err" ] && { it_fail "a's hand-over records" "$(cat "$D/st2.err")"; exit 0; }
kcat -P -K'|' -b "$BOOT" -t st2 < "$D/st2.txt" 2>> "$D/kcat.out"

$AD_BIN run -c "$D/b.json" --log-level debug 2> "$D/b.log" & DPID=$!
it_wait_until 30 grep -q 'kafka: owns in\[0\] .*(state read)' "$D/b.log" ||
    { it_fail "b takes the partition" "$(tail -3 "$D/b.log")"; exit 0; }
it_wait_until 60 at_least b messages_in $((N * ROWS)) ||
    echo "# b did not read all $((N * ROWS)) records"
sleep 1
skipped=$(stat b handover_skipped); msgs=$(stat b messages_in)
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=

[ "$skipped" -eq "$ROWS" ] &&
    it_ok "b skips only the rows a valid state holds ($skipped of $msgs records: pump1's)" ||
    it_fail "b skips only the rows a valid state holds" \
        "$skipped records skipped of $msgs, want $ROWS (pump1's; pump2's state did not parse, pump3's was refused)"
grep -q 'stream pump/pump2: its latest record on the Kafka state topic holds a state that does not parse' "$D/b.log" &&
    it_ok "b warns of pump2's state that does not parse" ||
    it_fail "b warns of pump2's state that does not parse" "$(grep -i 'pump2' "$D/b.log" | head -3)"
grep -q 'stream pump/pump3: its hand-over state was not restored' "$D/b.log" &&
    it_ok "b says pump3's refused state skips nothing" ||
    it_fail "b says pump3's refused state skips nothing" "$(grep -i 'pump3' "$D/b.log" | head -3)"
got="$(grep -c 'pump1: calibrated (' "$D/b.log") $(grep -c 'pump2: calibrated (' "$D/b.log") $(grep -c 'pump3: calibrated (' "$D/b.log")"
[ "$got" = "0 1 1" ] &&
    it_ok "pump1 goes on with its restored threshold, pump2 and pump3 calibrate afresh on their rows read again" ||
    it_fail "pump1 goes on with its restored threshold, pump2 and pump3 calibrate afresh on their rows read again" \
        "calibrations of pump1, pump2, pump3: $got, want 0 1 1"
exit 0
