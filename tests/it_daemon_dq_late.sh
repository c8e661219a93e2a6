#!/bin/sh
# it_daemon_dq_late.sh - device clocks that leave rows late, against a
# real mosquitto. A clock that steps back 55 minutes (under the hour after
# which a late row counts as rejected) has its rows dropped as late until
# it catches up: one data_quality alert on the whole stream (check late,
# feature null) giving the share dropped; the retained state counts the
# rows in rejected.late. A clock that glitches (every 50th row stamped 40
# minutes ahead) loses only the glitching rows (held, then dropped when the
# next row continues before them: rejected.future), none as late, and
# raises nothing. A healthy stream with a redelivery of its last 20 rows
# raises nothing.
. tests/lib.sh
it_setup it_daemon_dq_late
it_broker_up

# windows of 2 s of arrival time: the publisher sends 100 rows a second
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dq-late", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "quality": {"learn_samples": 100, "reject_window_ms": 2000},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up
START=$(( $(date +%s) - 1000 * 60 ))
# the healthy stream, then its last 20 rows again (a QoS 1 redelivery)
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$START" --rate 100 \
    --topic 'sensors/h{device}/pump'
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start-row 280 --start "$START" \
    --topic 'sensors/h{device}/pump'
# the glitching one: rows a minute apart, every 50th 40 minutes ahead
$H pub --port "$IT_PORT" --devices 1 --rows 600 --start "$START" --rate 100 \
    --topic 'sensors/g{device}/pump' --glitch 50:2400
# the one stepping back: 300 rows, then its clock 55 minutes back
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$START" --rate 100 \
    --topic 'sensors/s{device}/pump'
$H pub --port "$IT_PORT" --devices 1 --rows 420 --start-row 300 --start "$(( START - 3300 ))" \
    --rate 20 --topic 'sensors/s{device}/pump'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/spump1 kind=data_quality \
       event=dq_raised check=late --timeout 20 >/dev/null; then
    it_ok "a device clock 55 min back: rows dropped as late raise a data_quality alert (check late)"
else
    it_fail "a device clock 55 min back: rows dropped as late raise a data_quality alert (check late)" \
        "$(grep spump1 "$D/sub.jsonl" | tail -2; grep spump1 "$D/daemon.log" | tail -3)"
fi
it_wait_stats    # the last retained states and stats
$PYTHON - "$D/sub.jsonl" > "$D/check.out" <<'EOP'
import json, sys
bad, got, st = [], {}, {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    t = m["topic"]
    if t.startswith("anomalyd/state/pump/"):
        st[t.rsplit("/", 1)[1]] = json.loads(m["payload"]).get("rejected", {})
    if not t.startswith("anomalyd/alerts/"):
        continue
    j = json.loads(m["payload"])
    if j.get("kind") != "data_quality" or j.get("event") != "dq_raised":
        continue
    got.setdefault(j["stream"], []).append(j)
for s in ("hpump1", "gpump1"):
    for j in got.get(s, []):
        bad.append("%s got %s %s" % (s, j.get("check"), j.get("feature")))
lates = got.get("spump1", [])
if [j["check"] for j in lates] != ["late"]:
    bad.append("spump1: alerts %s" % [j["check"] for j in lates])
else:
    j = lates[0]
    if j.get("feature") is not None or not j.get("value", 0) > 0.5 or j.get("count", 0) < 10 \
       or j.get("window_ms") != 2000 or j.get("limit") != 10:
        bad.append("spump1 late alert: %s" % json.dumps(j))
sl = st.get("spump1", {}).get("late", 0)
if sl < 20:
    bad.append("spump1 rejected.late %s" % sl)
print("; ".join(bad) if bad else "ok: spump1 rejected.late %d, share %.2f, %d dropped while raising"
      % (sl, lates[0]["value"], lates[0]["count"]))
EOP
if grep -q "^ok" "$D/check.out"; then
    it_ok "one late alert on the whole stream with the share dropped; none on the glitching or the redelivered stream ($(cat "$D/check.out"))"
else
    it_fail "one late alert on the whole stream with the share dropped; none on the glitching or the redelivered stream" \
        "$(cat "$D/check.out")"
fi
# the glitching stream: the stats count its 11 glitching rows' samples as
# future, none late
det_stat() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
last, sl = None, 0
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] == "anomalyd/stats":
        last = json.loads(m["payload"])
    if m["topic"] == "anomalyd/state/pump/spump1":
        sl = json.loads(m["payload"]).get("rejected", {}).get("late", 0)
d = last["detectors"][0]
print(d["samples_future"], d["samples_late"] - sl - 95, d["dropped_samples"], last["dropped_samples"],
      d["samples_future"] + d["samples_late"])
EOP
}
set -- $(det_stat)
# $2: samples_late less the stepping stream's and the redelivery's 19 rows
if [ "$1" = 55 ] && [ "$2" = 0 ] && [ "$3" -ge "$5" ] && [ "$4" = "$3" ]; then
    it_ok "a glitching clock: only the 11 glitching rows are dropped, counted as future, none late (samples_future $1; dropped_samples $3)"
else
    it_fail "a glitching clock: only the 11 glitching rows are dropped, counted as future, none late" \
        "samples_future $1, late beyond the others' $2, dropped_samples $3 (total $4)"
fi
if grep -q "stream hpump1: 5 sample(s) dropped as late" "$D/daemon.log"; then
    it_ok "the redelivery to the healthy stream was dropped as late"
else
    it_fail "the redelivery to the healthy stream was dropped as late" "$(grep hpump1 "$D/daemon.log" | tail -3)"
fi
if grep -q "data quality spump1-dq-[0-9-]* raised: detector pump stream spump1 check late feature (stream)" \
       "$D/daemon.log"; then
    it_ok "the late alert is logged"
else
    it_fail "the late alert is logged" "$(grep -i quality "$D/daemon.log" | head -3)"
fi
exit 0
