#!/bin/sh
# it_daemon_dq_late.sh - rows dropped as late in bulk against a real
# mosquitto: a device whose clock glitches (every 50th row stamped 40
# minutes ahead, under rows.max_future_ms and under the hour after which a
# late row counts as rejected) has most of its rows dropped as late; that is
# one data_quality alert on the whole stream (check late, feature null)
# giving the share dropped, and the retained state counts the rows in
# rejected.late. A healthy stream with a redelivery of its last 20 rows
# raises nothing.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_dq_late.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors

it_broker_start "$D" || { it_fail "broker starts"; exit 1; }

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
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 1000 * 60 ))
# the healthy stream, then its last 20 rows again (a QoS 1 redelivery)
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$START" --rate 100 \
    --topic 'sensors/h{device}/pump'
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start-row 280 --start "$START" \
    --topic 'sensors/h{device}/pump'
# the glitching one: rows a minute apart, every 50th 40 minutes ahead
$H pub --port "$IT_PORT" --devices 1 --rows 600 --start "$START" --rate 100 \
    --topic 'sensors/g{device}/pump' --glitch 50:2400
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/gpump1 kind=data_quality \
       event=dq_raised check=late --timeout 20 >/dev/null; then
    it_ok "a glitching device clock: rows dropped as late raise a data_quality alert (check late)"
else
    it_fail "a glitching device clock: rows dropped as late raise a data_quality alert (check late)" \
        "$(grep gpump1 "$D/sub.jsonl" | tail -2; grep gpump1 "$D/daemon.log" | tail -3)"
fi
sleep 1.5    # the last retained states
$PYTHON - "$D/sub.jsonl" > "$D/check.out" <<'EOP'
import json, sys
bad, got, late = [], [], 0
for line in open(sys.argv[1]):
    m = json.loads(line)
    t = m["topic"]
    if t == "anomalyd/state/pump/gpump1":
        late = json.loads(m["payload"]).get("rejected", {}).get("late", 0)
    if not t.startswith("anomalyd/alerts/"):
        continue
    j = json.loads(m["payload"])
    if j.get("kind") != "data_quality":
        continue
    if j["stream"] == "hpump1":
        bad.append("healthy hpump1 got %s %s" % (j.get("check"), j.get("feature")))
    if j["stream"] == "gpump1" and j.get("event") == "dq_raised":
        got.append(j)
lates = [j for j in got if j["check"] == "late"]
if len(lates) != 1:
    bad.append("gpump1: %d late alerts" % len(lates))
else:
    j = lates[0]
    if j.get("feature") is not None or not j.get("value", 0) > 0.5 or j.get("count", 0) < 10 \
       or j.get("window_ms") != 2000 or j.get("limit") != 10:
        bad.append("gpump1 late alert: %s" % json.dumps(j))
if late < 50:
    bad.append("gpump1 rejected.late %s" % late)
print("; ".join(bad) if bad else "ok: gpump1 rejected.late %d, share %.2f, %d dropped while raising; hpump1 no alert"
      % (late, lates[0]["value"], lates[0]["count"]))
EOP
if grep -q "^ok" "$D/check.out"; then
    it_ok "one late alert on the whole stream with the share dropped; a redelivery raises none ($(cat "$D/check.out"))"
else
    it_fail "one late alert on the whole stream with the share dropped; a redelivery raises none" \
        "$(cat "$D/check.out")"
fi
if grep -q "stream hpump1: 5 sample(s) dropped as late" "$D/daemon.log"; then
    it_ok "the redelivery to the healthy stream was dropped as late"
else
    it_fail "the redelivery to the healthy stream was dropped as late" "$(grep hpump1 "$D/daemon.log" | tail -3)"
fi
if grep -q "data quality gpump1-dq-[0-9-]* raised: detector pump stream gpump1 check late feature (stream)" \
       "$D/daemon.log"; then
    it_ok "the late alert is logged"
else
    it_fail "the late alert is logged" "$(grep -i quality "$D/daemon.log" | head -3)"
fi
exit 0
