#!/bin/sh
# it_kafka_state_exact.sh - a stream's state on the Kafka state topic
# carries its numbers bit for bit, as its state file does (librdkafka's
# mock cluster on 127.0.0.1, a real mosquitto for the stats): one
# instance with a state_dir takes 3 pump streams past calibration and
# stops; each stream's last state record (its hand-over) holds the same
# threshold state, probability history and window rows as the state file
# written at the same stop, compared as doubles. The record used to be
# printed by cJSON, 15 digits whenever they came within about 1e-16
# relative: 16 to 19 of the 184 numbers of each probability history came
# back changed.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_state_exact.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=3; ROWS=200
MPID= ; DPID= ; SPID=
cleanup() {
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    it_daemon_cleanup
}
trap cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_state_exact" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 anomalyd.alerts:1 || exit 1

cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kexact", "stats_interval_s": 1,
            "status_topic": "anomalyd/status/a", "stats_topic": "anomalyd/stats/a"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "alert_topic": "anomalyd.alerts", "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "state_dir": "$D/state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
it_kafka_feed "the instance takes the partition" $N $ROWS
kcat -C -b "$BOOT" -t st -e -q -K'|' > "$D/st.txt" 2>> "$D/kcat.out"

# per stream: the last record's state against the state file, member by
# member; "ok N" (N numbers compared) or what differs
$PYTHON - "$D/st.txt" "$D/state/pump" $N > "$D/cmp" 2>&1 <<'EOP'
import json, os, sys
recs = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("|")
    try:
        r = json.loads(v)
    except ValueError:
        continue
    if isinstance(r, dict) and r.get("state"):
        recs[r["stream"]] = r["state"]
def numbers(x):
    if isinstance(x, dict):
        for k in sorted(x):
            yield from numbers(x[k])
    elif isinstance(x, list):
        for v in x:
            yield from numbers(v)
    elif isinstance(x, float):
        yield x
bad, n, streams = [], 0, 0
for f in sorted(os.listdir(sys.argv[2])):
    if not f.endswith(".state.json"):
        continue
    st = json.load(open(os.path.join(sys.argv[2], f)))
    rec = recs.get(st["stream"])
    if rec is None:
        bad.append("%s: no state record" % st["stream"])
        continue
    streams += 1
    for m in ("state", "probability", "window", "alert", "smoothed", "threshold"):
        a, b = list(numbers(st.get(m))), list(numbers(rec.get(m)))
        n += len(a)
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        if len(a) != len(b) or diff:
            bad.append("%s %s: %d of %d numbers differ, e.g. %r" %
                       (st["stream"], m, len(diff), len(a), diff[:2]))
if streams != int(sys.argv[3]):
    bad.append("%d streams with a state file and a record, want %s" % (streams, sys.argv[3]))
print("\n".join(bad) if bad else "ok %d" % n)
EOP
if [ "$(cut -d' ' -f1 "$D/cmp")" = ok ] && grep -q "calibrated" "$D/a.log"; then
    it_ok "$N streams: the hand-over records hold the state file's numbers bit for bit ($(cut -d' ' -f2 "$D/cmp") doubles)"
else
    it_fail "$N streams: the hand-over records hold the state file's numbers bit for bit" \
        "$(head -4 "$D/cmp")"
fi
exit 0
