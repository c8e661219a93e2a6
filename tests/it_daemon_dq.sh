#!/bin/sh
# it_daemon_dq.sh - data-quality alerts against a real mosquitto: a pressure
# sensor that freezes at its last value raises a data_quality alert on the
# alert topic naming the feature (kind data_quality, check stuck), the
# stream's retained state lists it while open, and it clears once the
# sensor moves again; model alerts on the same topic say kind model; a
# condition still open at stop is cleared with reason restart (and the
# retained state then lists none); rows refused for their timestamps (a
# clock that jumped back, or runs ahead) raise one too.
. tests/lib.sh
it_setup it_daemon_dq
it_broker_up

# state_dq FILE STREAM: "check:feature ..." of the open data-quality alerts
# in the stream's last retained state ("-" when none)
state_dq() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
last = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/" + sys.argv[2]:
        last = json.loads(m["payload"])
if last is None or "data_quality" not in last:
    print("none")
else:
    print(" ".join("%s:%s" % (x.get("check"), x.get("feature"))
                   for x in last["data_quality"]) or "-")
EOP
}
state_dq_is() { [ "$(state_dq "$1" "$2")" = "$3" ]; }

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dq", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "quality": {"learn_samples": 100, "stuck_samples": 30, "range_k": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_sub_start
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
# the subscriber is in place once it has the daemon's retained status
it_daemon_online
START=$(( $(date +%s) - 600 * 60 ))
# pump1's pressure freezes from sample 300 to 400; pump2 stays healthy
$H pub --port "$IT_PORT" --devices 2 --rows 380 --start "$START" \
    --fault 'stuck@300m+100m:1:pressure'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 kind=data_quality \
       event=dq_raised check=stuck feature=pressure --timeout 20; then
    it_ok "stuck pressure sensor: data_quality alert raised naming the feature"
else
    it_fail "stuck pressure sensor: data_quality alert raised naming the feature" \
        "$(grep alerts/ "$D/sub.jsonl" | head -3; tail -5 "$D/daemon.log")"
fi
if it_wait_until 10 state_dq_is "$D/sub.jsonl" pump1 "stuck:pressure"; then
    it_ok "the stream's retained state lists the open data-quality alert"
else
    it_fail "the stream's retained state lists the open data-quality alert" \
        "$(state_dq "$D/sub.jsonl" pump1)"
fi
$H pub --port "$IT_PORT" --devices 2 --rows 600 --start-row 380 --start "$START" \
    --fault 'stuck@300m+100m:1:pressure'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 kind=data_quality \
       event=dq_cleared check=stuck feature=pressure --timeout 20 &&
   it_wait_until 10 state_dq_is "$D/sub.jsonl" pump1 "-"; then
    it_ok "the sensor moves again: the alert clears, the state lists none"
else
    it_fail "the sensor moves again: the alert clears, the state lists none" \
        "$(state_dq "$D/sub.jsonl" pump1)"
fi
$PYTHON - "$D/sub.jsonl" > "$D/check.out" <<'EOP'
import json, sys
ids = {}
bad = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if not m["topic"].startswith("anomalyd/alerts/"):
        continue
    j = json.loads(m["payload"])
    if j.get("kind") != "data_quality":
        continue
    for k in ("schema", "alert_id", "event", "detector", "stream", "check", "feature",
              "start", "time_ms", "published"):
        if k not in j:
            bad.append("%s lacks %s" % (j.get("event"), k))
    ids.setdefault(j.get("alert_id"), []).append(j.get("event"))
    if j["stream"] == "pump2":
        bad.append("healthy pump2 got %s %s" % (j.get("check"), j.get("feature")))
for i, evs in ids.items():
    if evs != ["dq_raised", "dq_cleared"]:
        bad.append("%s: events %s" % (i, evs))
print("; ".join(bad) if bad else "ok %d alert(s)" % len(ids))
EOP
if grep -q "^ok" "$D/check.out"; then
    it_ok "each data-quality alert is one dq_raised/dq_cleared pair with the documented fields, none on the healthy pump ($(cat "$D/check.out"))"
else
    it_fail "each data-quality alert is one dq_raised/dq_cleared pair with the documented fields, none on the healthy pump" \
        "$(cat "$D/check.out")"
fi
if grep -q "data quality pump1-dq-[0-9-]* raised: detector pump stream pump1 check stuck feature pressure" \
       "$D/daemon.log"; then
    it_ok "the data-quality alert is logged"
else
    it_fail "the data-quality alert is logged" "$(grep -i quality "$D/daemon.log" | head -3)"
fi
# a device whose clock jumps back keeps sending rows no stream can hold:
# they are dropped as late, and that is a data-quality alert on the whole
# stream (check rejected), not silence; one whose clock runs a day ahead
# has every row refused as future. The retained state counts them.
# state_rejected FILE STREAM KIND: the last retained state's rejected.KIND
state_rejected() {
    $PYTHON - "$1" "$2" "$3" <<'EOP'
import json, sys
last = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/" + sys.argv[2]:
        last = json.loads(m["payload"])
print((last or {}).get("rejected", {}).get(sys.argv[3], 0))
EOP
}
# clock_alert STREAM KIND TEXT: a rejected data-quality alert on STREAM and
# at least 10 samples counted as KIND on its retained state
clock_alert() {
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/$1 kind=data_quality \
           event=dq_raised check=rejected --timeout 20 >/dev/null &&
       [ "$(state_rejected "$D/sub.jsonl" "$1" "$2")" -ge 10 ]; then
        it_ok "$3 ($(state_rejected "$D/sub.jsonl" "$1" "$2") $2)"
    else
        it_fail "$3" "$2 $(state_rejected "$D/sub.jsonl" "$1" "$2"); $(grep "$1" "$D/sub.jsonl" | tail -2; grep "$1" "$D/daemon.log" | tail -3)"
    fi
}
$H pub --port "$IT_PORT" --devices 1 --rows 60 --topic 'sensors/c{device}/pump'
$H pub --port "$IT_PORT" --devices 1 --rows 30 --start 1000 --topic 'sensors/c{device}/pump'
clock_alert cpump1 late "a clock that jumps back: rows dropped as late raise a data-quality alert (check rejected), the state counts them"
if grep -q 'detector pump: stream cpump1: sample time 1970-01-01T00:16:40.000Z from payload field "ts" in ms: if the devices send seconds, set payload.timestamp_unit "s" (warned once)' "$D/daemon.log" &&
   [ "$(grep -c 'if the devices send seconds' "$D/daemon.log")" = 1 ]; then
    it_ok "a sample time in 1970 from a time in ms: one warning that it may be seconds"
else
    it_fail "a sample time in 1970 from a time in ms: one warning that it may be seconds" \
        "$(grep -i 'seconds' "$D/daemon.log" | head -3)"
fi
$H pub --port "$IT_PORT" --devices 1 --rows 30 --start "$(( $(date +%s) + 86400 ))" \
    --topic 'sensors/f{device}/pump'
clock_alert fpump1 future "a clock a day ahead: every row refused as future, a data-quality alert, the state counts them"
# a condition open at stop is closed (its monitor does not carry open
# conditions over a restart): dq_cleared, same id, reason restart
# (stream xpump1: its own data time, 300 min ago, stuck from minute 150 on)
$H pub --port "$IT_PORT" --devices 1 --rows 250 --start "$(( $(date +%s) - 300 * 60 ))" \
    --topic 'sensors/x{device}/pump' --fault 'stuck@150m+200m:1:pressure'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/xpump1 kind=data_quality \
    event=dq_raised --timeout 20 >/dev/null
id2=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
last = ""
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/pump/xpump1":
        j = json.loads(m["payload"])
        if j.get("event") == "dq_raised":
            last = j["alert_id"]
print(last)
EOP
)
it_daemon_stop
if [ -n "$id2" ] && $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/xpump1 \
       event=dq_cleared alert_id="$id2" reason=restart --timeout 10 >/dev/null; then
    it_ok "stop with a data-quality alert open: it is cleared (reason restart, same id $id2)"
else
    it_fail "stop with a data-quality alert open: it is cleared (reason restart)" \
        "id $id2; $(grep dq_ "$D/sub.jsonl" | tail -3)"
fi
if state_dq_is "$D/sub.jsonl" xpump1 "-"; then
    it_ok "after that clear the retained state lists no open data-quality alert"
else
    it_fail "after that clear the retained state lists no open data-quality alert" \
        "$(state_dq "$D/sub.jsonl" xpump1)"
fi
exit 0
