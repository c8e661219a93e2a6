#!/bin/sh
# it_daemon_calib_progress.sh - a pretrained stream whose pressure sensor is
# stuck from the start of its calibration, against a real mosquitto:
# windows flagged by data quality never feed calibration, so with
# calibration.duration_ms 0 it stays "calibrating" (no model alerts) as
# long as the sensor sticks. The retained state says how far calibration
# is and what holds it (its "calibration"'s "progress": windows taken and
# needed, since when, windows left out as flagged, waiting on them since
# when, on which flag); the log says the wait begins and ends. Once the
# sensor moves again calibration completes and the state says detecting.
# Before, the state showed "calibrating" and nothing else.
. tests/lib.sh
it_setup it_daemon_calib_progress
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-calib-progress", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 60},
   "quality": {"learn_samples": 16, "stuck_samples": 30, "range_k": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up
START=$(( $(date +%s) - 600 * 60 ))
# pressure stuck on rows 16..249: data quality learns each feature on its
# first 16 values (a sensor never seen to move is not said stuck), and the
# model's first window (30 rows) ends on row 29: every calibration window
# has stuck rows
pubrows() {    # pubrows FROM TO: rows FROM..TO-1 of pump1
    $H pub --port "$IT_PORT" --devices 1 --rows "$2" --start-row "$1" --start "$START" \
        --rate 400 --fault 'stuck@16m+234m:1:pressure'
}
# progress: phase and calibration.progress of pump1's last retained state
progress() {
    it_py - "$D/sub.jsonl" <<'EOP'
import json, sys
from it_daemon_mqtt import last_states
p = last_states(sys.argv[1]).get("pump1")
print(json.dumps(p and [p.get("phase"), p.get("calibration", {}).get("progress", "absent")]))
EOP
}
# waiting_ok STATE: calibrating, waiting on flagged windows that name the
# stuck feature, none of the 60 windows taken beyond a few before the flag
waiting_ok() {
    $PYTHON -c '
import json, sys
ph, p = json.loads(sys.argv[1]) or (None, None)
ok = (ph == "calibrating" and isinstance(p, dict) and p["waiting_on_flagged"] is True and
      p["windows_needed"] == 60 and p["windows"] < 60 and p["windows_flagged"] > 0 and
      p["flagged_windows_in_a_row"] > 0 and p["waiting_since"] and p["started"] and
      p["ends_by"] is None and "pressure" in (p["flags"] or ""))
sys.exit(0 if ok else 1)' "$1"
}
waiting_now() { waiting_ok "$(progress)"; }
detecting_now() { [ "$(progress)" = '["detecting", "absent"]' ]; }
pubrows 0 150
if it_wait_until 15 waiting_now; then
    it_ok "stuck pressure: the state says calibrating, waiting on flagged windows: $(progress)"
else
    it_fail "stuck pressure: the state says calibrating, waiting on flagged windows" \
        "$(progress); $(tail -3 "$D/daemon.log")"
fi
S1=$(progress)
# still stuck: nothing taken meanwhile, the windows left out grow; while it
# waits its counts follow at most once a minute (wall clock)
sleep 61
pubrows 150 250
it_wait_stats 4 20
S2=$(progress)
if $PYTHON -c '
import json, sys
a, b = json.loads(sys.argv[1])[1], json.loads(sys.argv[2])[1]
sys.exit(0 if a["windows"] == b["windows"] == 0 and b["waiting_on_flagged"] and
         b["windows_flagged"] > a["windows_flagged"] and
         b["waiting_since"] == a["waiting_since"] else 1)' "$S1" "$S2" &&
   waiting_ok "$S2"; then
    it_ok "still stuck: calibration's windows do not move: $S2"
else
    it_fail "still stuck: calibration's windows do not move" "$S1 / $S2"
fi
if grep -q "calibration waits on flagged windows (stuck on 'pressure')" "$D/daemon.log"; then
    it_ok "the log says calibration waits, naming the flag"
else
    it_fail "the log says calibration waits, naming the flag" "$(tail -5 "$D/daemon.log")"
fi
# the sensor moves again: calibration takes its windows and completes
pubrows 250 450
if it_wait_until 20 detecting_now; then
    it_ok "the sensor moves again: calibration completes, the state says detecting"
else
    it_fail "the sensor moves again: calibration completes, the state says detecting" \
        "$(progress); $(tail -3 "$D/daemon.log")"
fi
if grep -q "calibration goes on after [0-9]* flagged windows left out" "$D/daemon.log"; then
    it_ok "the log says calibration goes on"
else
    it_fail "the log says calibration goes on" "$(grep -i calibrat "$D/daemon.log" | tail -5)"
fi
it_daemon_stop
exit 0
