#!/bin/sh
# it_daemon_training.sh - online training (training.mode finetune) live: each
# stream collects windows, trains on a worker while the stream keeps
# running, calibrates on the new model; the models trained online and the
# calibration are saved in the state directory and reused after a restart.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_training.XXXXXX)
DPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
    it_broker_stop
    [ -n "$KEEP" ] || rm -rf "$D"
}
trap cleanup EXIT
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-training", "stats_interval_s": 1},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "calibration": {"windows": 50},
   "training": {"mode": "finetune", "windows": 100, "epochs": 2}}]}
EOC
# count PATTERN N [TIMEOUT_DS]: wait for N log lines matching PATTERN
count() {
    i=0
    while [ $i -lt "${3:-100}" ]; do
        [ "$(grep -c "$1" "$D/daemon.log")" -ge "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
count "connected to" 1 50
$H pub --port "$IT_PORT" --no-ts --devices 2 --rows 140
if count "model trained online" 2 300; then
    it_ok "finetune: both streams collected windows and trained on a worker"
else
    it_fail "finetune: both streams collected windows and trained on a worker" "$(cat "$D/daemon.log")"
fi
$H pub --port "$IT_PORT" --no-ts --devices 2 --rows 100 --rate 200
if count "calibrated" 2 50; then
    it_ok "after training: the streams calibrate on their new models"
else
    it_fail "after training: the streams calibrate on their new models" "$(cat "$D/daemon.log")"
fi
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
n=$(ls "$D/state/pump" | grep -c '\.safetensors$')
s=$(ls "$D/state/pump" | grep -c '\.state\.json$')
[ $rc -eq 0 ] && [ "$n" -eq 2 ] && [ "$s" -eq 2 ] &&
    it_ok "state dir: 2 models trained online and 2 calibrations saved" ||
    it_fail "state dir: 2 models trained online and 2 calibrations saved" "rc=$rc $(ls "$D/state/pump")"

mv "$D/daemon.log" "$D/daemon1.log"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
count "connected to" 1 50
$H pub --port "$IT_PORT" --no-ts --devices 2 --rows 5
if count "reusing the model trained online" 2 50 && ! grep -q "training (finetune)" "$D/daemon.log" &&
   ! grep -q "recalibrating" "$D/daemon.log"; then
    it_ok "restart: trained models and calibration reused, no retraining"
else
    it_fail "restart: trained models and calibration reused, no retraining" "$(cat "$D/daemon.log")"
fi
it_daemon_stop

# bootstrap: no model file, a model is trained from scratch per stream
cat > "$D/boot.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-boot", "stats_interval_s": 1},
 "state_dir": "$D/bstate", "workers": 2,
 "detectors": [{"name": "pump", "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "window": {"length": 20}, "calibration": {"windows": 30},
   "training": {"mode": "bootstrap", "windows": 150, "epochs": 3, "boot_units": 16,
     "features": ["vibration", "current", "pressure", "temperature", "flow"]}}]}
EOC
$AD_BIN check -c "$D/boot.json" > /dev/null 2>&1 && it_ok "bootstrap config passes check" ||
    it_fail "bootstrap config passes check"
mv "$D/daemon.log" "$D/daemon2.log"
$AD_BIN run -c "$D/boot.json" 2> "$D/daemon.log" & DPID=$!
count "connected to" 1 50
$H pub --port "$IT_PORT" --no-ts --devices 1 --rows 175
count "model trained online" 1 300
$H pub --port "$IT_PORT" --no-ts --devices 1 --rows 60 --rate 200
if count "pump1: calibrated" 1 50 && ls "$D/bstate/pump/" | grep -q 'pump1\.boot\..*\.safetensors'; then
    it_ok "bootstrap: model trained from scratch live, saved, stream calibrated"
else
    it_fail "bootstrap: model trained from scratch live, saved, stream calibrated" "$(cat "$D/daemon.log")"
fi
it_daemon_stop
exit 0
