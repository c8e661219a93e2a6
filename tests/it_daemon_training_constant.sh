#!/bin/sh
# it_daemon_training_constant.sh - online training (training.mode
# bootstrap) warns of a feature that never varies in a stream's training
# rows, as the offline anomalyd train names constant columns: one warning
# per training naming detector, stream and feature, with a real broker.
# Two streams of one detector: flat/pump1 sends pressure 5 throughout,
# sensors/pump1 the simulator's varying pressure (no warning).
. tests/lib.sh
it_setup it_training_constant
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-training-constant", "stats_interval_s": 1},
 "workers": 2,
 "detectors": [{"name": "pump", "topics": ["+/+/pump"], "stream_levels": [0, 1],
   "payload": {"format": "json"}, "quality": {"enabled": false},
   "window": {"length": 20}, "calibration": {"windows": 30},
   "training": {"mode": "bootstrap", "windows": 60, "epochs": 1, "boot_units": 8,
     "features": ["vibration", "current", "pressure", "temperature", "flow"]}}]}
EOC
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" "connected to" 10 ||
    { it_fail "daemon connects" "$(cat "$D/daemon.log")"; exit 1; }
$H pub --port "$IT_PORT" --no-ts --devices 1 --rows 85 --topic 'flat/{device}/pump' \
    --const pressure=5
$H pub --port "$IT_PORT" --no-ts --devices 1 --rows 85
if ! it_wait_log "$D/daemon.log" "model trained online" 30 2; then
    it_fail "both streams trained online" "$(cat "$D/daemon.log")"; exit 1
fi
n=$(grep -c "constant in the training rows" "$D/daemon.log")
w=$(grep "constant in the training rows" "$D/daemon.log")
case $w in
*"detector pump: stream flat/pump1: training (bootstrap) on "*" rows: feature 'pressure' (always 5) is constant in the training rows"*)
    [ "$n" = 1 ] && it_ok "one warning names the stream and its constant feature: ${w#<4>}" ||
        it_fail "one warning names the stream and its constant feature" "$n warnings: $w" ;;
*) it_fail "a warning names the stream and its constant feature" "$(cat "$D/daemon.log")" ;;
esac
grep -q "stream sensors/pump1: .*constant" "$D/daemon.log" &&
    it_fail "no warning for the stream whose features vary" "$w" ||
    it_ok "no warning for the stream whose features vary"
it_daemon_stop
exit 0
