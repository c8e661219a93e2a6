#!/bin/sh
# it_daemon_adapt_trained.sh - the drift reference of a stream that trained
# its own model (training.mode finetune) survives a restart: its promotions
# overwrite the trained model's file, so the reference is kept beside it in
# the state directory and a restart measures the drift from it with the
# saved baseline (the state topic's adapt.reference_ratio is the same
# before and after). Against a real mosquitto.
. tests/lib.sh
it_setup it_daemon_adapt_trained
if ldd "$AD_BIN" 2>/dev/null | grep -q 'libasan\|libubsan'; then
    # training, calibration and a promotion take more rows than the feed
    # allows under ASan (no promotion in 1,300 rows)
    it_skip "the reference of a model trained online survives a restart" \
        "sanitizer build: checked on the release binary (make test)"
    exit 0
fi
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-trained", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "training": {"mode": "finetune", "windows": 100, "epochs": 1},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 60, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up --log-level info
START=$(( $(date +%s) - 1400 * 60 ))
. tests/adapt_lib.sh
K=0
FEED_MAX=2000
pub 0 160; K=160                  # training: 100 windows
it_wait_log "$D/daemon.log" "model trained online" 60 ||
    { it_fail "the stream trains its model" "$(tail -5 "$D/daemon.log")"; exit 1; }
# then calibration (100 windows), 40 rows at a time
while [ $K -lt 600 ] && ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 \
          phase=detecting --timeout 2 >/dev/null; do
    pub $K $((K + 40)); K=$((K + 40))
done
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
    --timeout 5 >/dev/null ||
    { it_fail "the stream trains its model and detects" "$(tail -5 "$D/daemon.log")"; exit 1; }
# the model the stream trained: its first model id when detecting
trained=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1":
        j = json.loads(m["payload"])
        if j.get("phase") == "detecting":
            print(j.get("model_id")); break
EOP
)
promoted=
while [ -z "$promoted" ] && [ $K -lt 2000 ]; do
    feed_until promoted rejected || break
    events_has promoted && promoted=1
done
if [ -z "$promoted" ]; then
    it_skip "the reference of a model trained online survives a restart" \
        "no candidate was promoted in $K rows"
    exit 0
fi
if it_wait_log "$D/daemon.log" "promoted model .* saved in" 20 &&
   [ -n "$(find "$D/state" -name "*.reference.safetensors")" ]; then
    it_ok "promotion (after $K rows): the trained model (the drift reference) is kept beside the promoted one"
else
    it_fail "promotion: the trained model (the drift reference) is kept beside the promoted one" \
        "$(ls "$D/state"; grep -i "reference\|promot" "$D/daemon.log" | tail -3)"
fi
sleep 1
ref1=$(refr "$D/sub.jsonl")
restart_daemon
pub $K $((K + 20))
it_wait_log "$D/daemon.log" "reusing the model trained online" 20
sleep 1
ref2=$(refr "$D/sub2.jsonl")
kill -TERM "$DPID"; wait "$DPID"; DPID=     # its state saved at the stop
if [ "$ref1" != none ] && [ "$ref2" = "$ref1" ] && [ -n "$trained" ] &&
   grep -rqs "\"reference\":{\"id\":\"$trained\"" "$D/state"; then
    it_ok "restart: drift measured from the model the stream trained ($trained), baseline kept (reference_ratio $ref2)"
else
    it_fail "restart: drift measured from the model the stream trained, baseline kept" \
        "before $ref1, after $ref2 (trained $trained); $(grep -rho '"reference":{"id":"[0-9a-f]*"' "$D/state")"
fi
exit 0
