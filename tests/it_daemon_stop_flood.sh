#!/bin/sh
# it_daemon_stop_flood.sh - a stop under a flood ends in bounded time and
# loses no row. While the daemon is frozen, 1600 rows of 64 KB each
# (padded) wait for it at the broker, QoS 1, persistent session; then it is
# stopped (SIGTERM). The messages it receives during the stop are kept for
# the next start, up to 64 MiB: then it reads no more, and the broker keeps
# the rest for the session. The stop ends within its bound (15 s of drain,
# 5 s of MQTT stop); the next start applies the kept messages and the
# broker sends the rest: the two runs count every row once.
. tests/lib.sh
D=$(mktemp -d /tmp/it_stop_flood.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
N=1600
it_broker_start "$D" "max_queued_messages 100000" || { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-stop-flood", "clean_session": false,
            "qos_subscribe": 1, "stats_interval_s": 0.5, "stats_topic": "anomalyd/it/stats"},
 "workers": 1, "state_dir": "$D/state", "max_payload_bytes": 2000000,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["plant/#"], "stream_levels": [1],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}, "quality": {"enabled": false}}]}
EOC
# samples: the samples of the daemon's runs, summed (the last stats
# message of each run; a run starts where uptime_s goes down)
samples() {
    $PYTHON - "$D/stats.jsonl" <<'EOP'
import json, sys
runs, up = [], None
for line in open(sys.argv[1]):
    j = json.loads(json.loads(line)["payload"])
    if up is None or j["uptime_s"] < up:
        runs.append(None)
    up = j["uptime_s"]
    runs[-1] = j["samples"]
print(sum(runs), "=", "+".join(str(r) for r in runs))
EOP
}
$PYTHON tests/it_daemon_mqtt.py sub --port "$IT_PORT" --topic 'anomalyd/it/stats' \
    --out "$D/stats.jsonl" & SPID=$!
sleep 0.3
$AD_BIN run -c "$D/ad.json" --log-level info 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 1 ||
    { it_fail "daemon connects" "$(tail -3 "$D/daemon.log")"; exit 1; }
kill -STOP "$DPID"
$PYTHON - "$IT_PORT" "$N" <<'EOP' || { it_fail "the flood is published"; kill -CONT "$DPID"; exit 1; }
import json, sys
import paho.mqtt.client as mqtt
port, n = int(sys.argv[1]), int(sys.argv[2])
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
c.connect("127.0.0.1", port)
c.loop_start()
pad = "x" * 64000
infos = []
for k in range(n):
    row = {"vibration": 1.0, "current": 2.0, "pressure": 3.0, "temperature": 4.0, "flow": 5.0,
           "ts": 1700000000000 + 60000 * k, "pad": pad}
    infos.append(c.publish("plant/pump1/data", json.dumps(row), qos=1))
for i in infos:
    i.wait_for_publish(60)
c.disconnect()
c.loop_stop()
EOP
t0=$(date +%s)
kill -TERM "$DPID"; kill -CONT "$DPID"
if it_wait_gone "$DPID" 30; then
    t=$(( $(date +%s) - t0 ))
    wait "$DPID" 2>/dev/null; DPID=
    it_ok "the stop under a flood ends within its bound (${t} s)"
else
    it_fail "the stop under a flood ends within its bound" "$(tail -3 "$D/daemon.log")"
    exit 1
fi
size=$( (wc -c < "$D/state/inbox.dat") 2>/dev/null || echo 0)
if grep -q 'reading no more of them' "$D/daemon.log" && [ "$size" -gt $((64 << 20)) ] &&
   [ "$size" -lt $((72 << 20)) ]; then
    it_ok "past 64 MiB kept the daemon reads no more ($size bytes in inbox.dat)"
else
    it_fail "past 64 MiB kept the daemon reads no more" \
        "inbox.dat $size bytes; $(grep -E 'stop|inbox' "$D/daemon.log" | tail -3 | cut -c1-200)"
fi
$AD_BIN run -c "$D/ad.json" --log-level info 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 2 ||
    { it_fail "daemon connects again" "$(tail -3 "$D/daemon.log")"; exit 1; }
all() { [ "$(samples | cut -d' ' -f1)" = $((N * 5)) ]; }
it_wait_until 30 all
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
sleep 0.3
got=$(samples)
echo "# samples: sent $((N * 5)), counted $got; $(grep -o '[0-9]* message(s) received during the stop kept' "$D/daemon.log")"
if [ "${got%% *}" = $((N * 5)) ]; then
    it_ok "every row of the flood is counted once across the stop and the start"
else
    it_fail "every row of the flood is counted once across the stop and the start" \
        "sent $((N * 5)), counted $got"
fi
