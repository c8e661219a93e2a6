#!/bin/sh
# it_daemon_dq_kill.sh - an open data-quality alert survives a kill -9: a
# device goes silent (dropout raised), the daemon is killed with kill -9
# and started again: the dropout is cleared with its id (reason restart,
# as a clean stop clears it), without the device coming back, and the
# retained state no longer lists it; when the device returns its new
# alerts never reuse that id, and the old one is not cleared twice.
# Before, the open list lived only in memory: no dq_cleared ever came for
# that id, and the retained state kept listing it.
. tests/lib.sh
it_setup it_daemon_dq_kill
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dq-kill", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "quality": {"learn_samples": 20, "stuck_samples": 0, "range_k": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
# state_dq FILE: the open data-quality alert ids of pump3's last retained
# state ("-": none, "?": no state yet)
state_dq() {
    $PYTHON - "$1" <<'EOP'
import json, sys
last = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump3" and m["payload"]:
        last = json.loads(m["payload"])
if last is None:
    print("?")
else:
    print(" ".join(x.get("alert_id") for x in last.get("data_quality", [])) or "-")
EOP
}
state_dq_is() { [ "$(state_dq "$1")" = "$2" ]; }

it_daemon_up
it_pub_recent pump3 40
if ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 \
        event=dq_raised check=dropout --timeout 30 >/dev/null; then
    it_fail "the silent device raises a dropout" "$(tail -5 "$D/daemon.log")"; exit 1
fi
ID=$($PYTHON -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    j = json.loads(m["payload"]) if m["topic"].startswith("anomalyd/alerts/") else {}
    if j.get("event") == "dq_raised" and j.get("check") == "dropout":
        print(j["alert_id"]); break' "$D/sub.jsonl")
it_ok "the silent device raises a dropout ($ID)"
it_wait_until 10 state_dq_is "$D/sub.jsonl" "$ID" ||
    it_fail "the retained state lists it" "$(state_dq "$D/sub.jsonl")"
sleep 1                                 # its state write (or not, before)
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
# the device stays silent: the restart alone closes it
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon restarts" "$(cat "$D/daemon2.log")"; exit 1; }
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 alert_id="$ID" \
       event=dq_cleared reason=restart --timeout 20 >/dev/null; then
    it_ok "kill -9, restart, device still silent: $ID is cleared with reason restart"
else
    it_fail "kill -9, restart, device still silent: $ID is cleared with reason restart" \
        "$(grep alerts/ "$D/sub.jsonl" | tail -3; grep -i 'quality\|pump3' "$D/daemon2.log" | tail -5)"
fi
if it_wait_until 10 state_dq_is "$D/sub.jsonl" "-"; then
    it_ok "the retained state no longer lists it"
else
    it_fail "the retained state no longer lists it" "$(state_dq "$D/sub.jsonl")"
fi
# the device returns, goes silent again: a new dropout, a new id; the old
# id is cleared once in all
it_pub_recent pump3 40
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 event=dq_raised \
    check=dropout --timeout 30 >/dev/null
$PYTHON - "$D/sub.jsonl" "$ID" > "$D/check.out" <<'EOP'
import json, sys
ev = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/alerts/pump/pump3":
        continue
    j = json.loads(m["payload"])
    ev.setdefault(j["alert_id"], []).append(j["event"])
old = ev.pop(sys.argv[2], [])
new = [i for i, e in ev.items() if "dq_raised" in e]
if old != ["dq_cleared"]:
    print("old id: %s" % old)
elif not new:
    print("no new dropout")
else:
    print("ok new %s" % " ".join(new))
EOP
if grep -q "^ok" "$D/check.out"; then
    it_ok "the device returns and goes silent again: a new id, the old one cleared once ($(cat "$D/check.out"))"
else
    it_fail "the device returns and goes silent again: a new id, the old one cleared once" \
        "$(cat "$D/check.out")"
fi
it_daemon_stop
exit 0
