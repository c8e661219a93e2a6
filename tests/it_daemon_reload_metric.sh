#!/bin/sh
# it_daemon_reload_metric.sh - SIGHUP changing score.metric (peak -> mse)
# with the model file unchanged: the stream recalibrates on the new
# metric's scores only. Its threshold matches that of a stream that ran
# mse from the start on the same rows (pump2 gets pump1's rows after the
# reload); a window left under the old metric (an open batch the kept model
# carried over) would put a peak-sized score into the mse calibration.
. tests/lib.sh
it_setup it_daemon_reload_metric
cp "${AD_SRCDIR:-.}/conf/models/pump.safetensors" "$D/pump.safetensors"
it_broker_up
conf() { # conf METRIC
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-reload-metric", "stats_interval_s": 1,
            "qos_subscribe": 1},
 "detectors": [{"name": "pump", "model": "pump.safetensors",
   "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "window": {"hop": 7}, "score": {"metric": "$1"},
   "quality": {"enabled": false},
   "calibration": {"method": "sigma", "k": 3, "windows": 30},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
conf peak
it_sub_start
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon connects" "$(cat "$D/daemon.log")"

# 303 rows: 40 windows (hop 7), calibrated under peak
$H pub --port "$IT_PORT" --no-ts --rows 303 --devices 1
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
        --timeout 20 >/dev/null; then
    it_ok "pump1 calibrates under peak"
else
    it_fail "pump1 calibrates under peak" "$(tail -5 "$D/daemon.log")"
fi
sleep 0.5
conf mse
kill -HUP "$DPID"
if it_wait_until 10 grep -q "configuration reloaded" "$D/daemon.log"; then
    it_ok "SIGHUP: score.metric mse accepted"
else
    it_fail "SIGHUP: score.metric mse accepted" "$(tail -5 "$D/daemon.log")"
fi
# the same rows from 303 on to pump1 and, as a stream new under mse, pump2
$H pub --port "$IT_PORT" --no-ts --rows 900 --start-row 303 --devices 1
$H pub --port "$IT_PORT" --no-ts --rows 900 --start-row 303 --devices 1 --topic sensors/pump2/pump
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump2 phase=detecting \
    --timeout 20 >/dev/null
sleep 1
thr() { # thr STREAM: its threshold in the last detecting state message
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOF'
import json, sys
t = None
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] == "anomalyd/state/pump/" + sys.argv[2]:
        p = json.loads(m["payload"])
        if p.get("phase") == "detecting" and p.get("threshold") is not None:
            t = p["threshold"]
print(t)
EOF
}
t1=$(thr pump1); t2=$(thr pump2)
if $PYTHON -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if 0.67 < a / b < 1.5 else 1)" \
        "$t1" "$t2" 2>/dev/null; then
    it_ok "after the reload pump1 calibrates on mse scores only (threshold $t1, a new mse stream $t2)"
else
    it_fail "after the reload pump1 calibrates on mse scores only" \
        "threshold $t1, a stream new under mse on the same rows $t2"
fi
