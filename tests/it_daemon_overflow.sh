#!/bin/sh
# it_daemon_overflow.sh - rows lost to a full row queue show in the
# daemon-wide figures, not only per detector, with a real broker. One SenML
# pack of 200 vibration samples one second apart (period mode, 1 s grid)
# assembles 199 rows in one message, more than a stream queues
# (AD_STREAM_QUEUE, 64) before the daemon takes them: the oldest are lost.
# The stats message counts them per detector (detectors[].rows_overflow)
# and in total (rows_overflow, the same figure), and the Prometheus file
# says so too (anomalyd_rows_overflow_total).
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_overflow.XXXXXX)
DPID= ; SPID=
trap it_daemon_cleanup EXIT
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors

it_broker_start "$D" || { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-overflow", "stats_interval_s": 1,
            "reconnect_min_s": 0.2},
 "workers": 1, "metrics": {"textfile": "$D/anomalyd.prom"},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["senml/+"],
   "payload": {"format": "senml"}, "rows": {"mode": "period", "period_ms": 1000},
   "quality": {"enabled": false}}]}
EOC
$H sub --port "$IT_PORT" --topic '#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"

# one pack: bt an hour ago, t = 0..199 s, all vibration
$PYTHON -c '
import json, sys, time
bt = int(time.time()) - 3600
recs = [{"bn": "pump1:", "bt": bt, "n": "vibration", "t": 0, "v": 1.0}]
recs += [{"n": "vibration", "t": i, "v": 1.0 + 0.01 * i} for i in range(1, 200)]
sys.stdout.write(json.dumps(recs))' > "$D/pack.json"
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t senml/pump1 -f "$D/pack.json"
# the stats once the pack's 200 samples are counted, and one tick more for
# the metrics file
if ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=200 --timeout 15 >/dev/null; then
    it_fail "200 samples counted" "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1 | cut -c1-400)"
fi
sleep 1.5
got=$($PYTHON - "$D/sub.jsonl" <<'PY'
import json, sys
stats = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        stats = json.loads(m["payload"])
print(stats["detectors"][0]["rows_overflow"], stats.get("rows_overflow", "missing"))
PY
)
set -- $got
per=$1; tot=$2
# grid rows 0..198 come out (row 199 waits for a later sample), the queue
# keeps the newest 64 and holds the last row back until they are taken
# (stream.h THE ROW QUEUE): 134 lost
[ "$per" = 134 ] &&
    it_ok "detector: rows_overflow $per (199 rows at once into a 64-row queue)" ||
    it_fail "detector: rows_overflow 134" "$got"
[ "$tot" = "$per" ] &&
    it_ok "stats: rows_overflow $tot, the detector's" ||
    it_fail "stats: rows_overflow equals the detector's ($per)" "got $tot"
P="$D/anomalyd.prom"
x=$(awk '$1 == "anomalyd_rows_overflow_total" { print $2 }' "$P")
grep -q '^# TYPE anomalyd_rows_overflow_total counter$' "$P" && [ "$x" = "$per" ] &&
    it_ok "metrics file: anomalyd_rows_overflow_total $x, a counter" ||
    it_fail "metrics file: anomalyd_rows_overflow_total $per, a counter" \
        "got '$x': $(grep -c . "$P") lines"
kill -TERM "$DPID"; wait "$DPID"; DPID=
exit 0
