#!/bin/sh
# it_daemon_ha_model.sh - the Home Assistant device of a stream names the
# model it runs ("anomaly detector <detector>, model <id>"): after a reload
# gives its detector another model file, the discovery config must name
# the new model, not the one the stream was first announced with.
. tests/lib.sh
it_setup it_ha_model
it_broker_up
# model B: model A with other provenance (same weights and shape, another id)
IDS=$($PYTHON - "${AD_SRCDIR:-.}/conf/models/pump.safetensors" "$D" <<'EOP'
import hashlib, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
pv = json.loads(h["__metadata__"]["provenance"])
pv["input"] = "pump_normal_b.csv"
h["__metadata__"]["provenance"] = json.dumps(pv)
hj = json.dumps(h, separators=(",", ":")).encode()
hj += b" " * (-len(hj) % 8)
bb = struct.pack("<Q", len(hj)) + hj + b[8 + n:]
open(sys.argv[2] + "/a.safetensors", "wb").write(b)
open(sys.argv[2] + "/b.safetensors", "wb").write(bb)
print(hashlib.sha256(b).hexdigest()[:16], hashlib.sha256(bb).hexdigest()[:16])
EOP
)
IDA=${IDS% *}; IDB=${IDS#* }
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-hamodel", "qos_subscribe": 1},
 "workers": 1, "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$D/$1.safetensors", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
}
CFG=homeassistant/binary_sensor/it-hamodel/pump_pump1/config
device_model() { it_wait_topic "$IT_PORT" "$CFG" 5 "$1" >/dev/null; }
conf a
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
$H pub --port "$IT_PORT" --rows 40 >/dev/null
device_model "model $IDA" || it_fail "pump1 announced with model $IDA" "$(tail -3 "$D/daemon.log")"
conf b
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 || it_fail "reload" "$(tail -3 "$D/daemon.log")"
it_wait_log "$D/daemon.log" 'with the new model' 5
if device_model "model $IDB"; then
    it_ok "after a reload with another model file the Home Assistant device names it ($IDB)"
else
    it_fail "after a reload with another model file the Home Assistant device names it ($IDB)" \
        "$(mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t "$CFG" -C 1 -W 2 | grep -o '"model":"[^"]*"')"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
