#!/bin/sh
# it_daemon_calib_refresh.sh - a pretrained stream calibrating on clean
# data for more than a minute, against a real mosquitto: its retained
# state's calibration.progress follows the windows taken, refreshed at
# most once a minute. Before, the state was published when calibration
# began (0 windows) and not again until it ended (only a wait on flagged
# windows refreshed it): "windows" said 0 the whole calibration.
. tests/lib.sh
it_setup it_daemon_calib_refresh
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-calib-refresh", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 400},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up
START=$(( $(date +%s) - 600 * 60 ))
progress() {
    it_py - "$D/sub.jsonl" <<'EOP'
import json, sys
from it_daemon_mqtt import last_states
p = last_states(sys.argv[1]).get("pump1")
print(json.dumps(p and [p.get("phase"), p.get("calibration", {}).get("progress", "absent")]))
EOP
}
# 260 rows at 3.5 a second (~75 s): about 230 of the 400 windows taken
$H pub --port "$IT_PORT" --devices 1 --rows 260 --start "$START" --rate 3.5
moved() {
    $PYTHON -c '
import json, sys
ph, p = json.loads(sys.argv[1]) or (None, None)
sys.exit(0 if ph == "calibrating" and p["windows_needed"] == 400 and
         p["windows"] >= 100 else 1)' "$(progress)"
}
if it_wait_until 10 moved; then
    it_ok "calibrating for more than a minute: the state follows its windows: $(progress)"
else
    it_fail "calibrating for more than a minute: the state follows its windows" \
        "$(progress); $(tail -3 "$D/daemon.log")"
fi
it_daemon_stop
exit 0
