#!/bin/sh
# it_daemon_calib_guard.sh - a pump already blocked when its stream starts
# calibrating (a new device, a new model by reload or restart) against a
# real mosquitto, with the bundled model (its training error in the file):
#  - calibration.model_guard 3 (the default): the blocked pump's windows
#    score far above the model's training error and are left out; once
#    calibration has left out as many as it needs, the stream takes the
#    model's threshold, says so in a warning naming the figures, and the
#    blockage alerts; a healthy pump beside it calibrates on its own data
#    and stays quiet;
#  - model_guard 0: the blockage is learned as normal: a threshold many
#    times the healthy pump's, and no alert (what happened before).
. tests/lib.sh
it_setup it_daemon_calib_guard
it_broker_up

# run_case NAME GUARD: the daemon with model_guard GUARD; pump1 blocked from
# its first row, pump2 healthy; 400 rows each
run_case() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-cg-$1", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["$1/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 60, "model_guard": $2},
   "alert": {"topic": "anomalyd/alerts/$1/{stream}", "k": 3, "n": 5}}]}
EOC
    $H sub --port "$IT_PORT" --topic "anomalyd/alerts/$1/#" --out "$D/$1.jsonl" & SPID=$!
    $AD_BIN run -c "$D/$1.json" 2> "$D/$1.log" & DPID=$!
    it_wait_log "$D/$1.log" "connected to" 10 ||
        { it_fail "$1: daemon connects" "$(cat "$D/$1.log")"; exit 1; }
    $H pub --port "$IT_PORT" --devices 2 --rows 400 --rate 400 --topic "$1/{device}/pump" \
        --fault "blockage@0+2d:1" --fault-devices pump1
    it_wait_log "$D/$1.log" "pump2: calibrated" 15 || it_fail "$1: pump2 calibrates" "$(cat "$D/$1.log")"
    sleep 2
    kill -TERM "$DPID"; wait "$DPID"; DPID=
    kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=
}
thr_of() { sed -n "s/.*stream $2: calibrated (quantile) threshold \([0-9.e+-]*\).*/\1/p" "$D/$1.log" | head -1; }

run_case guard 3
run_case off 0
t1=$(thr_of off pump1); t2=$(thr_of off pump2)
if grep -q '"topic": "anomalyd/alerts/off/pump1"' "$D/off.jsonl" 2>/dev/null ||
   ! awk -v a="$t1" -v b="$t2" 'BEGIN { exit !(a > 5 * b && b > 0) }'; then
    it_fail "model_guard 0: the blockage is learned as normal (threshold $t1 vs healthy $t2, no alert)" \
        "$(grep -i "calibrat\|alert" "$D/off.log" | head -5)"
else
    it_ok "model_guard 0: the blockage is learned as normal (threshold $t1 vs healthy $t2, no alert)"
fi
if grep -q "stream pump1: calibration saw no normal data: .* threshold [0-9.]* from the model" "$D/guard.log" &&
   [ "$(grep -c "calibration saw no normal data" "$D/guard.log")" = 1 ]; then
    it_ok "model_guard 3: the blocked pump takes the model's threshold, one warning names the figures"
else
    it_fail "model_guard 3: the blocked pump takes the model's threshold, one warning names the figures" \
        "$(grep -i "calibrat" "$D/guard.log" | head -5)"
fi
if $H wait --file "$D/guard.jsonl" --match stream=pump1 event=raised --timeout 5 >/dev/null &&
   ! grep -q '"topic": "anomalyd/alerts/guard/pump2"' "$D/guard.jsonl"; then
    it_ok "model_guard 3: the blockage alerts; the healthy pump stays quiet"
else
    it_fail "model_guard 3: the blockage alerts; the healthy pump stays quiet" \
        "$(cat "$D/guard.jsonl" | head -3)" "$(grep -i "calibrat\|alert" "$D/guard.log" | head -5)"
fi
g2=$(thr_of guard pump2)
if [ -n "$g2" ] && [ "$g2" = "$t2" ]; then
    it_ok "the healthy pump's threshold is the same with the guard on and off ($g2)"
else
    it_fail "the healthy pump's threshold is the same with the guard on and off" "on $g2, off $t2"
fi
exit 0
