#!/bin/sh
# it_daemon_restore_features.sh - the daemon restarts with a model of other
# features (5 -> 4: one sensor dropped) while a stream's alert is open in
# its state file. The stream is restored at start for that alert; its
# calibration cannot be reused (another model) and the alert cannot
# continue (its scores were the old model's): it must be closed, a cleared
# event with reason model_changed under the alert's id, not left open for
# ever because its saved feature shares do not fit the new model.
. tests/lib.sh
it_setup it_restore_features
it_broker_up

# conf MODEL
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-features", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$1", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# a 4-feature model (flow dropped), trained here in a second
$PYTHON - "$D/train.csv" <<'EOP'
import math, random, sys
random.seed(3)
with open(sys.argv[1], "w") as f:
    f.write("ts,vibration,current,pressure,temperature\n")
    for i in range(300):
        f.write("%d,%.4f,%.4f,%.4f,%.4f\n" % (1700000000 + 60 * i, 2 + 0.1 * math.sin(i / 9.0),
                30 + random.gauss(0, 0.3), 5 + 0.2 * math.cos(i / 7.0), 40 + random.gauss(0, 0.2)))
EOP
if ! $AD_BIN train -i "$D/train.csv" -o "$D/pump4.safetensors" --window 30 --arch lstm-ae:8 \
        --epochs 2 --seed 1 -q 2> "$D/train.log"; then
    it_fail "a 4-feature model is trained" "$(tail -3 "$D/train.log")"; exit 1
fi

conf "$MODEL"
it_sub_start
sleep 0.3
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon1.log" & DPID=$!
it_wait_log "$D/daemon1.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon1.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 1 --rows 360 --start "$START" --fault 'cavitation@300m+300m'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "alert raised on pump1" "$(tail -3 "$D/daemon1.log")"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
ID=$(grep -o '"open":{"id":"[^"]*"' "$D/state/pump/pump1.state.json" | sed 's/.*"id":"//; s/"$//')
[ -n "$ID" ] || it_fail "pump1's state file holds its open alert" ""

conf "$D/pump4.safetensors"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects with the 4-feature model" "$(tail -5 "$D/daemon.log")"; exit 1; }
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared \
       alert_id="$ID" reason=model_changed --timeout 10 >/dev/null; then
    it_ok "the alert open at the restart ($ID) is cleared, reason model_changed"
else
    it_fail "the alert open at the restart ($ID) is cleared, reason model_changed" \
        "$(grep -E 'pump1' "$D/daemon.log" | grep -vE '<7>' | tail -3)"
fi
if it_wait_topic "$IT_PORT" anomalyd/state/pump/pump1 5 '"state":"normal"' >/dev/null; then
    it_ok "pump1's retained state shows no alert"
else
    it_fail "pump1's retained state shows no alert" \
        "$(it_wait_topic "$IT_PORT" anomalyd/state/pump/pump1 2 | cut -c1-120)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
if ! grep -q '"open":{' "$D/state/pump/pump1.state.json"; then
    it_ok "pump1's state file no longer holds the alert"
else
    it_fail "pump1's state file no longer holds the alert" \
        "$(grep -o '"open":{[^,]*' "$D/state/pump/pump1.state.json")"
fi
