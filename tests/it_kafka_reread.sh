#!/bin/sh
# it_kafka_reread.sh - Kafka records whose payloads carry no time take the
# record's timestamp (kafka.row_time "record", the default): a record read
# again after a crash (delivery is at-least-once) keeps its time, at or
# before the last row of the state its stream is restored from, and is
# dropped as late rather than applied a second time. With the arrival time
# it got a new time, after that row, and was applied again: the stream's
# windows held its rows twice and a fault in them raised a second alert.
# librdkafka's mock cluster on 127.0.0.1, a real mosquitto (stats).
#  1. 3 pump streams, 200 rows each (a minute apart), a blockage on pump1
#     over rows 70..110, no "ts" in the payload: the time is the record's
#     (tests/kafka_put). Instance a applies rows 0..149 (pump1's alert
#     raised and cleared, states on the state topic), then rows 150..199,
#     and is SIGKILLed at once, before any offset commit. Instance b takes
#     the partition, restores the states and reads every record again: the
#     records at or before each stream's restored last row are dropped (5
#     samples a row, counted exactly from the states a wrote), the others
#     applied, and pump1's fault raised once in all. (Stamped on arrival,
#     b applied all 600 rows again and raised the fault a second time.)
#  2. A producer clock an hour ahead: the record's samples are rejected as
#     future (rows.max_future_ms), with an error naming the record; a clock
#     before 2000 is warned of, naming the record; a record without a
#     timestamp (-1) takes the arrival time, warned of once; a timestamp no
#     stream can hold drops its record, named. With kafka.row_time
#     "arrival" the record an hour ahead is taken, stamped on arrival.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_reread.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
PUT="${AD_BUILD:-build}/tests/kafka_put"
N=3; ROWS=200
DPID= ; SPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_reread" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 al:1 in2:1 || exit 1
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null &
SPID=$!

# conf NAME GROUP TOPIC [ROW_TIME]: the state topic st for topic in
conf() {
    st=
    [ "$3" = in ] && st='"state_topic": "st", '
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kreread-$1", "stats_interval_s": 0.5,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "$2", $st
           "alert_topic": "al", "commit_interval_s": 3600${4:+, \"row_time\": \"$4\"},
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["$3"], "alerts_to": "kafka",
   "payload": {"format": "json"}, "calibration": {"windows": 20}}]}
EOC
}
# stat NAME KEY: KEY of instance NAME's last stats message (a member of
# the detector's entry when KEY starts with "pump.")
stat() { it_line_stat "$D/stats" "anomalyd/stats/$1" "$2"; }
at_least() { [ "$(stat "$1" "$2")" -ge "$3" ]; }
# alerts EVENT STREAM: the alerts of STREAM with an EVENT event on the
# alert topic (distinct ids: a record sent again after a crash is the same)
alerts() {
    kcat -C -b "$BOOT" -t al -o beginning -e -q -f '%s\n' 2>/dev/null |
        $PYTHON -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
print(len({o["alert_id"] for o in ev
           if o.get("event") == sys.argv[1] and o.get("stream") == sys.argv[2]}))' "$1" "$2"
}
cleared() { [ "$(alerts cleared pump1)" -ge 1 ]; }

# ---- 1. a crash, and the records read again --------------------------------
FAULT="blockage@70m+40m:3"
$PYTHON tests/it_kafka_gen.py --record-time --faulty 1 $N 0 150 "$FAULT" |
    "$PUT" "$BOOT" in 0 2>> "$D/put.out" || { it_fail "records produced" "$(cat "$D/put.out")"; exit 0; }
conf a ad in
$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
if ! it_wait_until 90 at_least a samples $((N * 150 * 5)) || ! it_wait_until 60 cleared; then
    it_fail "instance a applies rows 0..149 and pump1's alert clears" \
        "samples $(stat a samples) of $((N * 150 * 5)); $(tail -3 "$D/a.log")"
    exit 0
fi
$PYTHON tests/it_kafka_gen.py --record-time --faulty 1 $N 150 $ROWS "$FAULT" |
    "$PUT" "$BOOT" in 0 2>> "$D/put.out" || { it_fail "records produced" "$(cat "$D/put.out")"; exit 0; }
it_wait_until 60 at_least a samples $((N * ROWS * 5)) ||
    { it_fail "instance a applies every row" "samples $(stat a samples); $(tail -3 "$D/a.log")"; exit 0; }
if grep -q "committed at" "$D/a.log"; then
    it_skip "kafka_reread" "instance a committed before its kill: $(grep 'committed at' "$D/a.log" | head -1)"
    exit 0
fi
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
raised_a=$(alerts raised pump1)

# what the state topic holds of each stream: the rows at or before its
# last row are in it (its records read again must not be applied)
kcat -C -b "$BOOT" -t st -o beginning -e -q -K'|' -f '%k|%s\n' 2>/dev/null > "$D/states"
$PYTHON tests/it_kafka_gen.py --record-time --faulty 1 $N 0 $ROWS "$FAULT" > "$D/records"
held=$($PYTHON - "$D/states" "$D/records" <<'EOP'
import json, sys
last = {}
for l in open(sys.argv[1]):
    k, _, v = l.rstrip("\n").partition("|")
    try:
        st = json.loads(v).get("state") or {}
    except ValueError:
        continue
    t = (st.get("alert") or {}).get("last_ts")
    if t:
        last[k.split("/", 1)[1]] = int(t)
n = 0
for l in open(sys.argv[2]):
    ts, key, _ = l.split("|", 2)
    if key in last and int(ts) <= last[key]:
        n += 1
print(n, len(last))
EOP
)
held_rows=${held% *}; held_streams=${held#* }
[ "$held_streams" -eq "$N" ] ||
    { it_fail "the state topic holds a state with a last row for each stream" "$held_streams of $N"; exit 0; }

conf b ad in
$AD_BIN run -c "$D/b.json" --log-level debug 2> "$D/b.log" & DPID=$!
it_wait_until 90 at_least b samples $((N * ROWS * 5)) ||
    { it_fail "instance b reads every record again" "samples $(stat b samples); $(tail -3 "$D/b.log")"; exit 0; }
# dropped: late, and the restored last row itself as its duplicate
want=$((held_rows * 5))
it_wait_until 10 at_least b pump.dropped_samples "$want"
sleep 1.5                           # its windows scored, alerts produced
dropped=$(stat b pump.dropped_samples)
late=$(stat b pump.samples_late)
raised=$(alerts raised pump1)
if [ "$dropped" -eq "$want" ] && [ "$held_rows" -lt $((N * ROWS)) ]; then
    it_ok "records read again after a crash: the $held_rows rows at or before the restored states' last rows dropped ($dropped samples, $late late), the other $((N * ROWS - held_rows)) applied"
else
    it_fail "records read again after a crash: each row applied once" \
        "$held_rows of $((N * ROWS)) rows are in the restored states: $want samples should be dropped, b dropped $dropped ($late late): it applied $(( (N * ROWS * 5 - dropped) / 5 )) rows, $((N * ROWS - held_rows)) were not in the states"
fi
if [ "$raised_a" -eq 1 ] && [ "$raised" -eq 1 ]; then
    it_ok "pump1's fault raised once across the crash (a raised it, b did not again)"
else
    it_fail "pump1's fault raised once across the crash" "raised by a: $raised_a, in all: $raised"
fi
grep -q "kafka in\[0\]@[0-9]*: detector pump: stream pump[0-9]: [0-9]* sample(s) dropped as late (record timestamp" "$D/b.log" &&
    it_ok "the late records are named (topic[partition]@offset, record timestamp)" ||
    it_fail "the late records are named" "$(grep -m1 'dropped as late' "$D/b.log")"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=

# ---- 2. producer clocks, and a record without a timestamp --------------------
now=$(( $(date +%s) * 1000 ))
{
    echo "$((now + 3600000))|ahead|{\"vibration\": 1, \"current\": 30, \"pressure\": 5, \"temperature\": 25, \"flow\": 45}"
    echo "5000|unset|{\"vibration\": 1, \"current\": 30, \"pressure\": 5, \"temperature\": 25, \"flow\": 45}"
    echo "-1|none|{\"vibration\": 1, \"current\": 30, \"pressure\": 5, \"temperature\": 25, \"flow\": 45}"
    echo "-1|none|{\"vibration\": 1, \"current\": 30, \"pressure\": 5, \"temperature\": 25, \"flow\": 45}"
    echo "-7|broken|{\"vibration\": 1, \"current\": 30, \"pressure\": 5, \"temperature\": 25, \"flow\": 45}"
} | "$PUT" "$BOOT" in2 0 2>> "$D/put.out" || { it_fail "records produced" "$(cat "$D/put.out")"; exit 0; }
conf c c in2
$AD_BIN run -c "$D/c.json" 2> "$D/c.log" & DPID=$!
it_wait_until 60 at_least c samples 20 && it_wait_until 10 at_least c parse_errors 1 ||
    { it_fail "instance c reads the records" "$(tail -3 "$D/c.log")"; exit 0; }
it_wait_until 10 at_least c pump.samples_future 5
fut=$(stat c pump.samples_future)
[ "$fut" -eq 5 ] && grep -q "kafka in2\[0\]@0: detector pump: stream ahead: 5 sample(s) rejected as future (record timestamp $((now + 3600000)) ms is [0-9]* ms after its arrival; rows.max_future_ms 600000): the producer's clock is ahead" "$D/c.log" &&
    it_ok "a producer clock an hour ahead: the record's samples rejected as future, the record named" ||
    it_fail "a producer clock an hour ahead: rejected, the record named" "samples_future $fut; $(grep -m1 'future' "$D/c.log")"
grep -q "kafka in2\[0\]@1: detector pump: record timestamp 1970-01-01T00:00:05.000Z (CreateTime) is before 2000: the producer's clock looks unset" "$D/c.log" &&
    it_ok "a producer clock before 2000: warned of, the record named" ||
    it_fail "a producer clock before 2000: warned of" "$(grep -m1 '2000' "$D/c.log")"
[ "$(grep -c 'record without a timestamp' "$D/c.log")" -eq 1 ] &&
    grep -q "kafka in2\[0\]@2: record without a timestamp: the samples of such records without a time of their own take the arrival time" "$D/c.log" &&
    [ "$(stat c pump.samples_late)" -eq 0 ] &&
    it_ok "records without a timestamp (-1): both taken, on the arrival time, warned of once" ||
    it_fail "records without a timestamp: taken on the arrival time, warned of once" \
        "late $(stat c pump.samples_late); $(grep 'timestamp' "$D/c.log" | head -3)"
grep -q "kafka in2\[0\]@4: detector pump: record timestamp -7 ms (CreateTime) is not a time (1970-01-01 .. 9999-12-31): the record is dropped" "$D/c.log" &&
    it_ok "a record timestamp no stream can hold: the record dropped, named" ||
    it_fail "a record timestamp no stream can hold: dropped, named" "$(grep -m1 'not a time' "$D/c.log")"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=

conf d d in2 arrival
$AD_BIN run -c "$D/d.json" 2> "$D/d.log" & DPID=$!
it_wait_until 60 at_least d samples 25 ||
    { it_fail "instance d reads the records" "$(tail -3 "$D/d.log")"; exit 0; }
sleep 1
if [ "$(stat d pump.samples_future)" -eq 0 ] && [ "$(stat d parse_errors)" -eq 0 ] &&
   ! grep -q "record timestamp\|record without a timestamp" "$D/d.log"; then
    it_ok "kafka.row_time \"arrival\": every record stamped on arrival, whatever its timestamp"
else
    it_fail "kafka.row_time \"arrival\": every record stamped on arrival" \
        "future $(stat d pump.samples_future), parse_errors $(stat d parse_errors); $(grep -m2 'record' "$D/d.log")"
fi
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
exit 0
