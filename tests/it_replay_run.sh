#!/bin/sh
# it_replay_run.sh - one pipeline: the same data through `anomalyd run -c
# FILE` (a real mosquitto on 127.0.0.1, one JSON message per CSV row with its
# timestamp) and through `anomalyd replay -c FILE` gives the same alerts:
# the same sequence of raised/cleared events with the same alert ids, start
# and end times. FILE is the shipped conf/anomalyd.json with only the broker
# port, the model path and the state directory changed.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
SRC=${AD_SRCDIR:-.}
D=$(mktemp -d /tmp/it_replay_run.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT

# 900 simulated pump samples, one a minute, two faults on the way.
$PYTHON "$SRC/tools/pumpsim.py" --seed 3 --rows 900 --fault 'cavitation@400m+90m' \
    --fault 'blockage@650m+80m' --out "$D/data.csv" || { it_fail "simulate data"; exit 1; }
# The same rows as JSON messages {"ts": ms, feature: value, ...}, values as
# printed in the CSV.
$PYTHON - "$D/data.csv" "$D/msgs.txt" <<'EOF'
import sys, csv, json, datetime
rows = list(csv.reader(open(sys.argv[1])))
head = rows[0]
with open(sys.argv[2], "w") as f:
    for r in rows[1:]:
        t = datetime.datetime.strptime(r[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        msg = '{"ts":%d,%s}' % (int(t.timestamp()) * 1000,
                                ",".join('"%s":%s' % (h, v) for h, v in zip(head[1:], r[1:])))
        f.write(msg + "\n")
EOF
it_broker_up
$PYTHON - "$SRC/conf/anomalyd.json" "$D/ad.json" "$IT_PORT" "$SRC/conf" <<'EOF'
import sys, json, os
c = json.load(open(sys.argv[1]))
c["broker"].update(port=int(sys.argv[3]), client_id="it-replay-run", stats_interval_s=1)
c["state_dir"] = None
for d in c["detectors"]:
    d["model"] = os.path.abspath(os.path.join(sys.argv[4], d["model"]))
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF

# replay first: the alerts the daemon must give
if $AD_BIN replay -c "$D/ad.json" -i "$D/data.csv" --stream pump1 -o "$D/replay.csv" \
        -e "$D/replay.jsonl" 2> "$D/replay.log"; then
    it_ok "replay -c conf/anomalyd.json runs ($(tail -1 "$D/replay.log"))"
else
    it_fail "replay -c conf/anomalyd.json runs" "$(cat "$D/replay.log")"
    exit 0
fi
$PYTHON - "$D/replay.jsonl" > "$D/replay.seq" <<'EOF'
import sys, json
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] in ("alert_raised", "alert_cleared"):
        a = e["alert"]
        print(e["event"][6:], a["id"], a["start"], a.get("end"))
EOF
n=$(wc -l < "$D/replay.seq")
if [ "$n" -ge 2 ]; then it_ok "replay raises and clears alerts on the faults ($n events)"
else it_fail "replay raises and clears alerts on the faults" "$(cat "$D/replay.seq")"; fi

it_sub_start
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
if ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10; then
    it_fail "daemon online" "$(cat "$D/daemon.log")"
    exit 0
fi
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/pump1/pump -l < "$D/msgs.txt"
# every message in, every alert out, then a clean stop (in-flight windows
# are scored and their alerts published before the daemon exits)
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=900 --timeout 60 ||
    it_fail "daemon received the 900 messages" "$(grep anomalyd/stats "$D/sub.jsonl" | tail -1)"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 kind=model --count "$n" \
    --timeout 60 > /dev/null
it_daemon_stop
$PYTHON - "$D/sub.jsonl" > "$D/run.seq" <<'EOF'
import sys, json
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] != "anomalyd/alerts/pump/pump1":
        continue
    a = json.loads(m["payload"])
    if a.get("kind") != "model":
        continue                # data-quality alerts share the topic
    print(a["event"], a["alert_id"], a["start_ms"], a["end_ms"])
EOF
sed 's/ None$/ null/' "$D/replay.seq" > "$D/replay.cmp"
sed 's/ None$/ null/' "$D/run.seq" > "$D/run.cmp"
if cmp -s "$D/replay.cmp" "$D/run.cmp"; then
    it_ok "run and replay -c give the same alerts: $(tr '\n' ';' < "$D/run.cmp")"
else
    it_fail "run and replay -c give the same alerts" \
        "replay: $(tr '\n' ';' < "$D/replay.cmp") run: $(tr '\n' ';' < "$D/run.cmp")"
fi
exit 0
