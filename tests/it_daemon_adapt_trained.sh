#!/bin/sh
# it_daemon_adapt_trained.sh - the drift reference of a stream that trained
# its own model (training.mode finetune) survives a restart: its promotions
# overwrite the trained model's file, so the reference is kept beside it in
# the state directory and a restart measures the drift from it with the
# saved baseline (the state topic's adapt.reference_ratio is the same
# before and after). Against a real mosquitto.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_adapt_trained.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors

it_broker_start "$D" || { it_fail "broker starts"; exit 1; }

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-trained", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "training": {"mode": "finetune", "windows": 100, "epochs": 2},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 60, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 1400 * 60 ))
# pub FROM TO: simulator rows FROM..TO-1 of pump1, one a minute from START
# (a plant the shipped model was not trained on, as in it_daemon_adapt.sh)
pub() {
    $PYTHON - "$IT_PORT" "$START" "$1" "$2" <<'EOP'
import json, sys, importlib.util, os
import paho.mqtt.client as mqtt
spec = importlib.util.spec_from_file_location("pumpsim", os.path.join("tools", "pumpsim.py"))
ps = importlib.util.module_from_spec(spec); spec.loader.exec_module(ps)
port, start, k0, k1 = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sim = ps.PumpSim(1, 60.0, start, [])
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
c.connect("127.0.0.1", port, keepalive=30)
c.loop_start()
infos = []
for k in range(k1):
    ts, row, _ = sim.step()
    if k < k0:
        continue
    row["current"] *= 1.15
    row["pressure"] -= 0.6
    msg = {s: round(v, 4) for s, v in row.items()}
    msg["ts"] = int(round(ts * 1000))
    infos.append(c.publish("sensors/pump1/pump", json.dumps(msg), qos=1))
for i in infos:
    i.wait_for_publish(30)
c.loop_stop(); c.disconnect()
EOP
}
events_has() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events event=adapt \
        decision="$1" --timeout "${2:-0.1}" > /dev/null
}
K=0
feed_until() { # publish 40 rows at a time (up to row 1300) until a decision
    while [ $K -lt 1300 ]; do
        pub $K $((K + 40)); K=$((K + 40))
        for want in "$@"; do events_has "$want" 3 && return 0; done
    done
    return 1
}
# refr FILE: adapt.reference_ratio on pump1's last state ("none")
refr() {
    $PYTHON - "$1" <<'EOP'
import json, sys
r = "none"
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1":
        v = json.loads(m["payload"]).get("adapt", {}).get("reference_ratio")
        r = repr(float(v)) if isinstance(v, (int, float)) else "none"
print(r)
EOP
}
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
while [ -z "$promoted" ] && [ $K -lt 1300 ]; do
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
    it_ok "promotion: the trained model (the drift reference) is kept beside the promoted one"
else
    it_fail "promotion: the trained model (the drift reference) is kept beside the promoted one" \
        "$(ls "$D/state"; grep -i "reference\|promot" "$D/daemon.log" | tail -3)"
fi
sleep 1
ref1=$(refr "$D/sub.jsonl")
kill -TERM "$DPID"; wait "$DPID"; DPID=
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=

mv "$D/daemon.log" "$D/daemon1.log"
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub2.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub2.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon restarts" "$(cat "$D/daemon.log")"; exit 1; }
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
