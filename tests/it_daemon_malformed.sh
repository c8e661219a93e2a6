#!/bin/sh
# it_daemon_malformed.sh - a device that sends messages the parser refuses
# whole (malformed JSON, a bad timestamp, an error text) is alive, and says
# what it sends is unusable, with a real broker. pump1 (JSON, a time every
# 0.5 s) calibrates and a blockage raises an alert, then its firmware
# breaks: 40 messages at 2 a second that are not JSON or carry a bad
# timestamp (3 s), then are the texts "error" and "ERR 5" (7 s), while
# statpump1 sends status messages naming no feature and empty payloads
# (what clears a retained message) at the same pace. idle_evict_s is 6.
#  - pump1 is not evicted as idle, no whole-stream dropout is raised, and
#    its open alert stays open;
#  - pump1 gets a whole-stream data-quality `rejected` alert (feature
#    null), its retained state counts rejected.malformed 40, the stats
#    count every message refused whole (80) as a parse error;
#  - statpump1's status and empty messages are no data: a whole-stream
#    dropout or an eviction as idle (whichever its tick finds first), no
#    rejected alert; nor is its plain-text last will ("Offline" and
#    "\"offline\"", 20 times too: payload.h STATUS TEXT), counted in the
#    stats' status_messages, not as a parse error (before: as malformed
#    data, keeping the stream alive: no dropout, and a rejected alert);
#    pump1's error texts are no such status: malformed (a short text that
#    is not a presence word was taken for a status: pump1 counted 12
#    malformed, was evicted as idle while it talked and its alert closed
#    `evicted`);
#  - good rows again: the rejected alert clears (reject_window_ms 4000).
# Before, such messages were counted only in the stats: the stream went
# silent, a whole-stream dropout was raised and it was then evicted as
# idle, its alert cleared with reason evicted while the fault went on.
. tests/lib.sh
it_setup it_daemon_malformed P2
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-malformed", "stats_interval_s": 0.5},
 "log_rate_per_min": 1000,
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "idle_evict_s": 6,
   "calibration": {"windows": 100},
   "quality": {"reject_window_ms": 4000},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up --log-level info

# 450 rows at once (225 s of data time, ending ~3 min ago), pump1 blocked
# from row 400 on; statpump1 healthy
START=$(( $(date +%s) - 400 ))
P="--port $IT_PORT --start $START --ts-step 0.5"
$H pub $P --rows 450 --fault 'blockage@400m+400m' & P2=$!
$H pub $P --rows 450 --topic 'sensors/stat{device}/pump' --fault-devices none
wait "$P2"; P2=
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=900 --timeout 20 >/dev/null

pub() { mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t "$1" -m "$2"; }
i=0
while [ $i -lt 20 ]; do
    # 3 s of broken JSON and bad times, then 7 s (more than idle_evict_s)
    # of a firmware's error texts
    if [ $i -lt 6 ]; then
        pub sensors/pump1/pump '{"ts": 1, "pressure": 1.0, "flow":'
    else
        pub sensors/pump1/pump 'error'
    fi
    pub sensors/statpump1/pump '{"status": "online", "rssi": -71}'
    sleep 0.25
    if [ $i -lt 6 ]; then
        pub sensors/pump1/pump '{"ts": "soon", "pressure": 1.0}'
    else
        pub sensors/pump1/pump 'ERR 5'
    fi
    pub sensors/statpump1/pump ''
    if [ $((i % 2)) = 0 ]; then
        pub sensors/statpump1/pump 'Offline'
    else
        pub sensors/statpump1/pump '"offline"'
    fi
    sleep 0.25
    i=$((i + 1))
done
# once the last of them are in (900 + 100), before 6 s of silence could
# evict anything
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=1000 --timeout 10 >/dev/null
cp "$D/sub.jsonl" "$D/snap.jsonl"
cp "$D/daemon.log" "$D/snap.log"

check() {
    $PYTHON - "$1" > "$2" <<'EOP'
import json, sys
raised = cleared = None
rej, rej_clear, dropout_all, st, state = {}, {}, [], {}, {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    t = m["topic"]
    if t == "anomalyd/stats":
        st = json.loads(m["payload"])
    elif t.startswith("anomalyd/state/pump/"):
        state[t.rsplit("/", 1)[1]] = json.loads(m["payload"] or "{}")
    if not t.startswith("anomalyd/alerts/"):
        continue
    j = json.loads(m["payload"])
    s = j.get("stream")
    if j.get("kind") == "data_quality":
        if j.get("check") == "rejected":
            d = rej if j.get("event") == "dq_raised" else rej_clear
            d.setdefault(s, []).append(j.get("feature") or "null")
        if j.get("event") == "dq_raised" and j.get("check") == "dropout" and j.get("feature") is None:
            dropout_all.append(s)
    elif s == "pump1" and j.get("event") == "raised":
        raised = j
    elif s == "pump1" and j.get("event") == "cleared":
        cleared = j
print("raised", int(raised is not None))
print("cleared", cleared.get("reason") if cleared else "-")
print("rejected_pump1", ",".join(rej.get("pump1", [])) or "-")
print("rejected_clear_pump1", ",".join(rej_clear.get("pump1", [])) or "-")
print("rejected_stat", ",".join(rej.get("statpump1", [])) or "-")
print("dropout_whole", ",".join(dropout_all) or "-")
print("malformed", state.get("pump1", {}).get("rejected", {}).get("malformed"))
print("parse_errors", st.get("parse_errors"))
print("status_messages", st.get("status_messages"))
EOP
}
check "$D/snap.jsonl" "$D/check.out"
v() { sed -n "s/^$1 //p" "$D/check.out"; }
if [ "$(v raised)" = 1 ] && [ "$(v cleared)" = - ]; then
    it_ok "pump1's blockage alert stays open through 20 s of messages refused whole"
else
    it_fail "pump1's blockage alert stays open through 20 s of messages refused whole" \
        "$(cat "$D/check.out")" "$(grep -i 'pump1' "$D/snap.log" | tail -5)"
fi
if ! grep -q "stream pump1 idle for .* evicted" "$D/snap.log" &&
   ! echo ",$(v dropout_whole)," | grep -q ",pump1,"; then
    it_ok "pump1 is not evicted as idle (idle_evict_s 6) nor flagged as a whole-stream dropout"
else
    it_fail "pump1 is not evicted as idle (idle_evict_s 6) nor flagged as a whole-stream dropout" \
        "dropout on: $(v dropout_whole)" "$(grep "idle for" "$D/snap.log")"
fi
if [ "$(v rejected_pump1)" = null ]; then
    it_ok "pump1: one whole-stream data-quality rejected alert (feature null)"
else
    it_fail "pump1: one whole-stream data-quality rejected alert (feature null)" \
        "rejected on: $(v rejected_pump1)"
fi
if [ "$(v rejected_stat)" = - ] && { echo ",$(v dropout_whole)," | grep -q ",statpump1," ||
                                     grep -q "stream statpump1 idle for .* evicted" "$D/snap.log"; }; then
    it_ok "statpump1: status messages naming no feature and empty payloads are no data (a whole-stream dropout or eviction as idle) and no rejected alert"
else
    it_fail "statpump1: status messages naming no feature and empty payloads are no data (a whole-stream dropout or eviction as idle) and no rejected alert" \
        "rejected on: $(v rejected_stat); dropout on: $(v dropout_whole)"
fi
if [ "$(v parse_errors)" = 80 ] && [ "$(v status_messages)" = 20 ]; then
    it_ok "the stats count the 80 messages refused whole as parse errors, the 20 last wills as status_messages"
else
    it_fail "the stats count the 80 messages refused whole as parse errors, the 20 last wills as status_messages" \
        "parse_errors $(v parse_errors) status_messages $(v status_messages)"
fi

# good rows again, paced: the rejected bucket drains (4 s window) and the
# alert clears
$H pub $P --rows 490 --start-row 450 --rate 4 --fault 'blockage@400m+400m'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=1040 --timeout 20 >/dev/null
sleep 1
it_daemon_stop
check "$D/sub.jsonl" "$D/check.out"
if [ "$(v rejected_clear_pump1)" = null ]; then
    it_ok "pump1: the rejected alert clears once good rows come again"
else
    it_fail "pump1: the rejected alert clears once good rows come again" "$(cat "$D/check.out")"
fi
if [ "$(v malformed)" = 40 ]; then
    it_ok "pump1's retained state counts rejected.malformed 40"
else
    it_fail "pump1's retained state counts rejected.malformed 40" "$(v malformed)"
fi
exit 0
