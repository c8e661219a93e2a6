#!/bin/sh
# it_daemon_refused.sh - one bad value refuses its feature, not the message,
# with a real broker. pump1 (JSON, a time every 0.5 s) calibrates, a
# blockage raises an alert, then its pressure sensor breaks while the
# blockage goes on: 20 messages at 2 a second with "pressure": 1e999, then
# 20 with "pressure": "abc", the four other sensors good. allpump1 sends 40
# messages whose five values are all bad. idle_evict_s is 6.
#  - pump1's good features are scored (a window per message) and its alert
#    stays open: no clear, no eviction as idle;
#  - neither stream is evicted nor flagged as a whole-stream dropout (a
#    message, even one of bad values, says the device is alive);
#  - the bad feature is reported: a data-quality `rejected` alert naming
#    pressure (allpump1: each of its five features), the retained state's
#    rejected.nonfinite / nonnumeric count every refused value, the stats
#    count the messages (nonfinite, nonnumeric), and the log names the
#    stream, the field and what was wrong.
# Before, each such message was refused whole (stats parse_errors or
# nonfinite +1 and nothing else): the stream went silent, its alert was
# cleared with reason evicted while the fault went on, and a whole-stream
# dropout (feature null) was raised.
. tests/lib.sh
it_setup it_daemon_refused P1 P2
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-refused", "stats_interval_s": 0.5},
 "log_rate_per_min": 1000,
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "idle_evict_s": 6,
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up --log-level info

# 450 rows at once (225 s of data time, ending ~3 min ago), then 40 paced
# at 2 a second: pump1 blocked from row 400 on, its pressure bad from row
# 450; allpump1 healthy, every value bad from row 450
START=$(( $(date +%s) - 400 ))
P="--port $IT_PORT --start $START --ts-step 0.5 --rate 2 --rate-from 450 --bad-from 450"
(
    $H pub $P --rows 470 --fault 'blockage@400m+400m' --bad 'pressure=1e999'
    $H pub $P --rows 490 --start-row 470 --fault 'blockage@400m+400m' --bad 'pressure="abc"'
) & P1=$!
$H pub $P --rows 490 --topic 'sensors/all{device}/pump' --fault-devices none \
    --bad 'vibration="NaN"' --bad 'current=1e999' --bad 'pressure="x"' \
    --bad 'temperature=true' --bad 'flow="inf"' & P2=$!
wait "$P1"; P1=
wait "$P2"; P2=
# once the last messages are in (the stats count 980), before 6 s of
# silence could evict anything: what the 20 s of bad values did
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=980 --timeout 10 >/dev/null
# a window per row (window 30, hop 1): pump1's 490 rows 461, allpump1's
# 450 good ones 421 (its 40 bad messages make no row)
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=882 --timeout 5 >/dev/null; then
    scored=ok
else
    scored=$(grep anomalyd/stats "$D/sub.jsonl" | tail -1)
fi
cp "$D/sub.jsonl" "$D/snap.jsonl"
cp "$D/daemon.log" "$D/snap.log"

$PYTHON - "$D/snap.jsonl" "$((START + 225))" > "$D/check.out" <<'EOP'
import json, sys
raised = cleared = None
bad, rej, dropout_all = [], {}, []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if not m["topic"].startswith("anomalyd/alerts/"):
        continue
    j = json.loads(m["payload"])
    s = j.get("stream")
    if j.get("kind") == "data_quality":
        if j.get("event") == "dq_raised" and j.get("check") == "rejected":
            rej.setdefault(s, []).append(j.get("feature"))
        if j.get("event") == "dq_raised" and j.get("check") == "dropout" and j.get("feature") is None:
            dropout_all.append(s)
    elif s == "pump1" and j.get("event") == "raised":
        raised = j
    elif s == "pump1" and j.get("event") == "cleared":
        cleared = j
print("raised_before_bad", int(raised is not None and raised["start_ms"] < int(sys.argv[2]) * 1000))
print("cleared", cleared.get("reason") if cleared else "-")
print("rejected_pump1", ",".join(sorted(set(f or "null" for f in rej.get("pump1", [])))) or "-")
print("rejected_all", ",".join(sorted(set(f or "null" for f in rej.get("allpump1", [])))) or "-")
print("dropout_whole", ",".join(dropout_all) or "-")
EOP
v() { sed -n "s/^$1 //p" "$D/check.out"; }
if [ "$(v raised_before_bad)" = 1 ] && [ "$(v cleared)" = - ]; then
    it_ok "the alert raised on pump1's blockage before its pressure broke stays open through 20 s of messages with a bad pressure"
else
    it_fail "the alert raised on pump1's blockage before its pressure broke stays open through 20 s of messages with a bad pressure" \
        "$(cat "$D/check.out")" "$(grep -i 'pump1' "$D/snap.log" | tail -5)"
fi
if [ "$scored" = ok ]; then
    it_ok "pump1's four good features are scored: a window for each of its 40 messages with a bad pressure (882 windows in all)"
else
    it_fail "pump1's four good features are scored: a window for each of its 40 messages with a bad pressure (882 windows in all)" \
        "last stats: $scored"
fi
if ! grep -q "idle for .* evicted" "$D/snap.log"; then
    it_ok "no stream evicted as idle while it sends bad values (idle_evict_s 6, 20 s)"
else
    it_fail "no stream evicted as idle while it sends bad values (idle_evict_s 6, 20 s)" \
        "$(grep "idle for" "$D/snap.log")"
fi
if [ "$(v dropout_whole)" = - ]; then
    it_ok "no whole-stream dropout (feature null) on either stream"
else
    it_fail "no whole-stream dropout (feature null) on either stream" "on $(v dropout_whole)"
fi
if [ "$(v rejected_pump1)" = pressure ]; then
    it_ok "pump1: a data-quality rejected alert names pressure, and only it"
else
    it_fail "pump1: a data-quality rejected alert names pressure, and only it" \
        "rejected on: $(v rejected_pump1)"
fi
if [ "$(v rejected_all)" = current,flow,pressure,temperature,vibration ]; then
    it_ok "allpump1 (every value bad): a data-quality rejected alert on each of its five features"
else
    it_fail "allpump1 (every value bad): a data-quality rejected alert on each of its five features" \
        "rejected on: $(v rejected_all)"
fi
if grep -q 'detector pump: stream pump1: topic sensors/pump1/pump: field "pressure": not finite: a number beyond the double range (value refused: the feature is missing from this message)' "$D/snap.log" &&
   grep -q 'detector pump: stream pump1: topic sensors/pump1/pump: field "pressure": not a number: "abc" (value refused' "$D/snap.log" &&
   grep -q 'detector pump: stream allpump1: topic sensors/allpump1/pump: 5 values refused (missing from this message): field "vibration": not finite: "NaN"; field "current": not finite: a number beyond the double range; field "pressure": not a number: "x"; and 2 more' "$D/snap.log"; then
    it_ok "the log names the stream, the field and what was wrong"
else
    it_fail "the log names the stream, the field and what was wrong" \
        "$(grep -i 'refused\|not finite\|not a number' "$D/snap.log" | head -4)"
fi

# stopping publishes each stream's state once more (its open alerts
# cleared, reason restart): the rejected counts of every refused value
it_daemon_stop
# the subscriber may write the last states a moment after the daemon is
# gone: read them until the counts are in, 5 s at most
counts() {
$PYTHON - "$D/sub.jsonl" > "$D/counts.out" <<'EOP'
import json, sys
last, st = {}, {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/state/pump/"):
        # an empty payload: the state removed (the stream evicted)
        last[m["topic"].rsplit("/", 1)[1]] = json.loads(m["payload"] or "{}")
    elif m["topic"] == "anomalyd/stats":
        st = json.loads(m["payload"])
for s in ("pump1", "allpump1"):
    r = last.get(s, {}).get("rejected", {})
    print(s, r.get("nonfinite"), r.get("nonnumeric"))
print("stats", st.get("nonfinite"), st.get("nonnumeric"), st.get("parse_errors"))
EOP
}
n=0
while :; do
    counts
    if grep -qx "pump1 20 20" "$D/counts.out" && grep -qx "allpump1 120 80" "$D/counts.out"; then
        break
    fi
    n=$((n + 1))
    [ "$n" -ge 25 ] && break
    sleep 0.2
done
if grep -qx "pump1 20 20" "$D/counts.out" && grep -qx "allpump1 120 80" "$D/counts.out"; then
    it_ok "the retained state counts every refused value (pump1: 20 nonfinite, 20 nonnumeric; allpump1: 120, 80)"
else
    it_fail "the retained state counts every refused value (pump1: 20 nonfinite, 20 nonnumeric; allpump1: 120, 80)" \
        "$(cat "$D/counts.out")"
fi
if grep -qx "stats 60 60 0" "$D/counts.out"; then
    it_ok "the stats count the messages: nonfinite 60, nonnumeric 60, parse_errors 0"
else
    it_fail "the stats count the messages: nonfinite 60, nonnumeric 60, parse_errors 0" \
        "$(grep stats "$D/counts.out")"
fi
exit 0
