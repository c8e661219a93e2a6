#!/bin/sh
# bench_state_scan.sh - a start with a state directory of many streams: the
# scan reads every stream state file (for open alerts to restore). Prints,
# from the daemon's start: when it was online on the broker (its first
# stats message), when the scan was done (its debug line "state: scan done"; a
# binary without it scans before it connects: then about the online time),
# and the longest silence between its stats messages (stats_interval_s 0.1)
# over the first 3 s online: how long the loop did not run.
# The state files are copies of one stream's real state file (a pump
# stream with a fixed threshold, written by the daemon itself), none with
# an open alert, so the figures are the reading alone.
#   BENCH_FILES=20000 sh bench/bench_state_scan.sh
#   BENCH_OLD=/path/to/anomalyd sh bench/bench_state_scan.sh   (the same for
#   another binary, first, for comparison)
. tests/lib.sh
N=${BENCH_FILES:-20000}
D=$(mktemp -d /tmp/bench_state_scan.XXXXXX)
DPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && it_wait_gone "$DPID" 10
    it_broker_stop; [ -n "${KEEP:-}" ] || rm -rf "$D"
}
trap cleanup EXIT
H="$PYTHON tests/it_daemon_mqtt.py"
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
it_broker_start "$D" || exit 1
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "bench-state-scan", "stats_interval_s": 0.1},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}, "quality": {"enabled": false}}]}
EOC
# one real state file: pump1, 60 rows, stopped
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/seed.jsonl" & SP=$!
"$AD_BIN" run -c "$D/ad.json" 2> "$D/seed.log" & DPID=$!
$H wait --file "$D/seed.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
    >/dev/null || { echo "bench_state_scan: no start"; exit 1; }
$H pub --port "$IT_PORT" --devices 1 --rows 60 --start $(( $(date +%s) - 3600 )) >/dev/null
$H wait --file "$D/seed.jsonl" --match topic=anomalyd/stats samples=300 --timeout 20 >/dev/null
kill -TERM "$DPID"; wait "$DPID"; DPID=
kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null
[ -s "$D/state/pump/pump1.state.json" ] || { echo "bench_state_scan: no state file"; exit 1; }
$PYTHON - "$D/state/pump" "$N" <<'EOP'
import shutil, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    shutil.copyfile(d + "/pump1.state.json", "%s/dev%05d.state.json" % (d, i))
EOP
SZ=$(du -sk "$D/state/pump" | cut -f1)

# run BIN LABEL: one start, its figures
run() {
    : > "$D/sub.jsonl"
    $H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub.jsonl" & SP=$!
    sleep 0.5
    cat "$D/state/pump"/*.json > /dev/null        # the page cache, as after a restart
    "$1" run -c "$D/ad.json" --log-level debug 2> "$D/run.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 120 \
        >/dev/null || { echo "$2: not online"; kill "$SP"; return 1; }
    sleep 3
    kill -TERM "$DPID"; wait "$DPID"; DPID=
    kill "$SP" 2>/dev/null; wait "$SP" 2>/dev/null
    $PYTHON - "$D/sub.jsonl" "$D/run.log" "$2" "$N" <<'EOP'
import json, re, sys
sub, log, label, n = sys.argv[1:5]
stats = []
for line in open(sub):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        stats.append(json.loads(m["payload"])["uptime_s"])
scan_ms = None
for line in open(log):
    x = re.search(r"scan done: .* in (\d+) ms", line)
    if x:
        scan_ms = int(x.group(1))
# uptime_s runs from the loop's start, before the scan: the first stats
# message is the first the daemon published once connected
first = stats[0] if stats else None
gaps = [b - a for a, b in zip(stats, stats[1:]) if a < (first or 0) + 3]
print("%s: %s state files: first stats (online) at %.2f s of uptime, scan done %s, "
      "longest gap between stats %.2f s (interval 0.1 s)"
      % (label, n, first if first is not None else -1,
         ("after %.2f s" % (scan_ms / 1000.0)) if scan_ms is not None else "before it (no debug line)",
         max(gaps) if gaps else -1))
EOP
}
echo "bench_state_scan: $N state files, $SZ KB"
[ -n "${BENCH_OLD:-}" ] && run "$BENCH_OLD" "other binary"
run "$AD_BIN" "this binary"
exit 0
