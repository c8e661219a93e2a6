#!/bin/sh
# it_kafka_state_last.sh - an assignment restores each stream from the
# latest record of its key on the state topic, as compaction leaves the
# topic (librdkafka's mock cluster on 127.0.0.1, a real mosquitto for the
# stats). Instance a takes 4 pump streams past calibration and stops (a
# hand-over record each); then another state topic gets, per key:
#   pump1: 30 records with a null state, then its hand-over: restored;
#   pump2: its hand-over, then a tombstone: calibrated afresh;
#   pump3: a tombstone, then its hand-over: restored;
#   pump4: its hand-over, then a record that does not parse: calibrated
#          afresh (the latest record counts, an older one is not used);
#   pump5: its hand-over, then the same naming partition 7 (not restored
#          here): calibrated afresh.
# Instance b (the same group, that state topic) takes the partition and
# 80 more rows of each stream.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_state_last.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=5; ROWS=60
MPID= ; DPID= ; SPID=
cleanup() {
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    it_daemon_cleanup
}
trap cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_state_last" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 st2:1 || exit 1

conf() {    # conf NAME STATE_TOPIC
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-klast-$1", "stats_interval_s": 1,
            "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "$2",
           "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "state_dir": null, "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "mqtt",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 20}}]}
EOC
}
conf a st
conf b st2
it_kafka_feed "a takes the partition" $N $ROWS
kcat -C -b "$BOOT" -t st -e -q -K'|' > "$D/st.txt" 2>> "$D/kcat.out"

# the records for st2 ("key|value" lines; an empty value: a tombstone)
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
        last[k] = v
for k in ("pump/pump%d" % i for i in range(1, 6)):
    if k not in last:
        sys.exit("no hand-over record of " + k)
null = json.loads(last["pump/pump1"])
null["state"] = None
null.pop("offset", None)
null.pop("rec_time", None)
out = ["pump/pump1|" + json.dumps(null)] * 30 + ["pump/pump1|" + last["pump/pump1"]]
out += ["pump/pump2|" + last["pump/pump2"], "pump/pump2|"]
out += ["pump/pump3|", "pump/pump3|" + last["pump/pump3"]]
out += ["pump/pump4|" + last["pump/pump4"], "pump/pump4|" + last["pump/pump4"][:100]]
moved = json.loads(last["pump/pump5"])
moved["partition"] = 7
out += ["pump/pump5|" + last["pump/pump5"], "pump/pump5|" + json.dumps(moved)]
print("\n".join(out))
EOP
[ -s "$D/st2.err" ] && { it_fail "a's hand-over records" "$(cat "$D/st2.err")"; exit 0; }
kcat -P -K'|' -b "$BOOT" -t st2 < "$D/st2.txt" 2>> "$D/kcat.out"

$AD_BIN run -c "$D/b.json" --log-level debug 2> "$D/b.log" & DPID=$!
it_wait_until 30 grep -q 'kafka: owns in\[0\] .*(state read)' "$D/b.log" ||
    { it_fail "b takes the partition" "$(tail -3 "$D/b.log")"; exit 0; }
$PYTHON tests/it_kafka_gen.py $N $ROWS $((ROWS + 80)) |
    kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
it_wait_until 60 sh -c "[ \$(grep -c 'pump[245]: calibrated (' '$D/b.log') -ge 3 ]"
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=

got=
for i in 1 2 3 4 5; do
    if grep -q "pump/pump$i: calibration restored" "$D/b.log"; then
        grep -q "pump$i: calibrated (" "$D/b.log" && got="$got pump$i:restored+calibrated" ||
            got="$got pump$i:restored"
    elif grep -q "pump$i: calibrated (" "$D/b.log"; then
        got="$got pump$i:afresh"
    else
        got="$got pump$i:none"
    fi
done
want=" pump1:restored pump2:afresh pump3:restored pump4:afresh pump5:afresh"
if [ "$got" = "$want" ]; then
    it_ok "the latest record of each key counts: after 30 older ones, a tombstone drops it, one after a tombstone restores, one that does not parse or names a partition not restored leaves none ($(grep -o 'state topic read: .*' "$D/b.log" | head -1))"
else
    it_fail "the latest record of each key counts" "got$got, want$want"
fi
exit 0
