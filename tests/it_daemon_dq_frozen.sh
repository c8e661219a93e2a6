#!/bin/sh
# it_daemon_dq_frozen.sh - a device clock that stops, against a real
# mosquitto. After 300 good rows the device stamps every message with one
# time (a stalled RTC, firmware sending its boot time): each row is a
# duplicate of the newest and is dropped, so the stream is no longer
# scored. The daemon says so: a warning naming the duplicates, a
# data_quality alert on the whole stream (check late), the retained
# state's rejected.duplicate. A healthy stream that gets its last message
# again (a redelivery) raises nothing.
. tests/lib.sh
it_setup it_daemon_dq_frozen
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dq-frozen", "stats_interval_s": 0.5},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "quality": {"learn_samples": 100, "reject_window_ms": 2000},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up
START=$(( $(date +%s) - 1000 * 60 ))
# the healthy stream, then its last row again
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$START" --rate 100 \
    --topic 'sensors/h{device}/pump'
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start-row 299 --start "$START" \
    --topic 'sensors/h{device}/pump'
# the frozen one: 300 rows a minute apart, then 300 stamped alike (the
# published times 0.1 us apart: one ms)
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$START" --rate 100 \
    --topic 'sensors/f{device}/pump'
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$(( START + 300 * 60 ))" \
    --ts-step 0.0000001 --rate 50 --topic 'sensors/f{device}/pump'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/fpump1 kind=data_quality \
       event=dq_raised check=late --timeout 20 >/dev/null; then
    it_ok "a device clock that stopped: its rows dropped as duplicates raise a data_quality alert (check late)"
else
    it_fail "a device clock that stopped: its rows dropped as duplicates raise a data_quality alert (check late)" \
        "$(grep fpump1 "$D/sub.jsonl" | tail -2; grep fpump1 "$D/daemon.log" | tail -3)"
fi
if grep -q "stream fpump1: 5 sample(s) dropped as duplicates" "$D/daemon.log"; then
    it_ok "the duplicates are logged, naming the stream"
else
    it_fail "the duplicates are logged, naming the stream" "$(grep fpump1 "$D/daemon.log" | tail -3)"
fi
# check: the retained states and alerts so far, "ok: ..." when as expected
check() {
    it_py - "$D/sub.jsonl" > "$D/check.out" <<'EOP'
import json, sys
from it_daemon_mqtt import last_states, payloads
dup = {s: p.get("rejected", {}).get("duplicate") for s, p in last_states(sys.argv[1]).items()}
bad, dq = [], [m["json"]["check"] for m in payloads(sys.argv[1])
               if m["topic"] == "anomalyd/alerts/pump/hpump1" and '"dq_raised"' in m["payload"]]
if not (dup.get("fpump1") or 0) >= 50:
    bad.append("fpump1 rejected.duplicate %s" % dup.get("fpump1"))
if dq:
    bad.append("hpump1 raised %s" % dq)
print("; ".join(bad) if bad else "ok: fpump1 rejected.duplicate %d, hpump1 %s" %
      (dup["fpump1"], dup.get("hpump1")))
EOP
    grep -q "^ok" "$D/check.out"
}
it_wait_stats    # the last retained states
it_wait_until 10 check
if check; then
    it_ok "the retained state counts the duplicates; a redelivered message raises nothing ($(cat "$D/check.out"))"
else
    it_fail "the retained state counts the duplicates; a redelivered message raises nothing" \
        "$(cat "$D/check.out")"
fi
