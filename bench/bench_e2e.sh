#!/bin/sh
# bench_e2e.sh - the daemon end to end through a real local broker:
# S streams (default 1000) of the bundled pump model (T=30, 5 features),
# samples/s processed and sample-to-alert latency p50/p99 at hop 1 and hop
# 10, the share of the daemon's CPU time spent in the model, and, in the same
# run, the broker's bare throughput (same publisher -> broker -> C subscriber),
# and the daemon's capacity: a backlog of BENCH_CAP_ROWS rows per stream held
# by the broker while the daemon is stopped, worked through at full speed.
# Flood rows per stream: BENCH_ROWS at hop 1, twice that at hop 10.
# Ends with the two end-to-end targets, PASS or MISS (bench_e2e.py summary):
# capacity through a backlog >= 3x the bare relay, and CPU outside the model
# <= 2 us per message, both at hop 1.
#   BENCH_STREAMS=1000 BENCH_ROWS=200 BENCH_CAP_ROWS=300 sh bench/bench_e2e.sh
. tests/lib.sh
S=${BENCH_STREAMS:-1000}
R=${BENCH_ROWS:-200}
CR=${BENCH_CAP_ROWS:-300}
D=$(mktemp -d /tmp/bench_e2e.XXXXXX)
DPID=
cleanup() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null; it_broker_stop; [ -n "$KEEP" ] || rm -rf "$D"; }
trap cleanup EXIT
it_broker_start "$D" "max_queued_messages 0" || exit 1
echo "bench_e2e: $S streams, $R flood rows each at hop 1, broker on port $IT_PORT, $(getconf _NPROCESSORS_ONLN) cores"
$PYTHON bench/bench_e2e.py broker --port "$IT_PORT" --streams "$S" --rows "$R" | tee "$D/out"
[ -s "$D/out" ] || exit 1
for hop in 1 10; do
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "bench-e2e", "stats_interval_s": 0.1,
            "qos_subscribe": 0, "qos_alerts": 1},
 "state_dir": null, "workers": 0, "log_rate_per_min": 5,
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "topics": ["bench/+/pump"], "payload": {"format": "json", "timestamp": "ts",
   "timestamp_unit": "ms"}, "window": {"hop": $hop},
   "calibration": {"windows": 10, "margin": 3},
   "alert": {"k": 1, "n": 1, "m": 1},
   "max_streams": $((S + 10)), "idle_evict_s": 0}]}
EOC
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
    sleep 0.5
    warm=$((30 + 10 * hop + hop))
    if [ "$hop" = 1 ]; then rows=$R; else rows=$((2 * R)); fi
    $PYTHON bench/bench_e2e.py daemon --port "$IT_PORT" --streams "$S" --rows "$rows" \
        --hop "$hop" --warm "$warm" --inject 100 --paced-rate 5 --paced-rows "$((2 * hop + 10))" \
        --pid "$DPID" --capacity-rows "$CR" > "$D/hop.out"; rc=$?
    cat "$D/hop.out"; cat "$D/hop.out" >> "$D/out"
    [ $rc -eq 0 ] || { tail -5 "$D/daemon.log"; exit 1; }
    kill -TERM "$DPID"; wait "$DPID"; DPID=
done
$PYTHON bench/bench_e2e.py summary "$D/out"
