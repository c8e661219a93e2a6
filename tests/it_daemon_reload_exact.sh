#!/bin/sh
# it_daemon_reload_exact.sh - a SIGHUP rebuilding a stream whose window
# rows do not fit the new settings (rows.max_gap_ms changed) in the middle
# of its calibration: the calibration goes on from its numbers. Two runs
# on the same rows, one of them reloaded after its last row: their state
# files at the stop hold the same numbers (the window rows aside): counts
# equal, figures within 1e-6 relative. Not bit for bit: a window's score
# can differ in the last bit of a float with the batch it is scored in
# (OpenBLAS picks its kernels by matrix size; on an AVX-512 machine a
# batch of 1 and of 2+ differ by up to 6e-8 in an output), and how many
# windows share a batch depends on how the messages arrive. A window lost
# or repeated by the reload changes the counts, compared exactly.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_reload_exact.XXXXXX)
DPID= ; SPID=
cleanup() { [ -n "${KEEP:-}" ] && rm -rf "$KEEP" && cp -r "$D" "$KEEP"; it_daemon_cleanup; }   # KEEP=DIR: files kept there
trap cleanup EXIT
SRC=$(cd "${AD_SRCDIR:-.}" && pwd)
it_broker_up
it_sub_start
sleep 0.3
START=$(( $(date +%s) - 2000 * 60 ))

conf() { # conf ROWS_JSON RUN
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-reload-exact", "stats_interval_s": 0.3,
            "qos_subscribe": 1}, "workers": 0, "state_dir": "$D/state$2",
 "detectors": [{"name": "pump", "model": "$SRC/conf/models/pump.safetensors",
   "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "quality": {"enabled": false}, "alert": {"k": 3},
   "calibration": {"method": "sigma", "k": 3, "windows": 400}, "rows": {$1}}]}
EOC
}
start() { # start N: the Nth start
    $AD_BIN run -c "$D/ad.json" --log-level info 2>> "$D/daemon.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 \
        --count "$1" >/dev/null || it_fail "daemon connects ($1)" "$(tail -5 "$D/daemon.log")"
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
stat() { it_last_stat "$D/sub.jsonl" anomalyd/stats "$1"; }
_scored() { [ "$(stat windows_scored)" = "$1" ]; }

# run 1: 200 rows, stop
conf '"max_gap_ms": 600000' 1
start 1
$H pub --port "$IT_PORT" --start "$START" --devices 1 --rows 200
it_wait_until 10 _scored 171 || it_fail "run 1: 200 rows give 171 windows" "scored $(stat windows_scored)"
stop
# run 2: the same rows, a reload, stop
conf '"max_gap_ms": 600000' 2
start 2
$H pub --port "$IT_PORT" --start "$START" --devices 1 --rows 200
it_wait_until 10 _scored 171 || it_fail "run 2: 200 rows give 171 windows" "scored $(stat windows_scored)"
conf '"max_gap_ms": 7200000' 2
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "configuration reloaded" 10 ||
    it_fail "reload" "$(tail -5 "$D/daemon.log")"
stop
if grep -q "row assembly changed (rows.max_gap_ms): the window rows of 1 rebuilt stream(s) are not kept" \
        "$D/daemon.log"; then
    it_ok "the reload rebuilt the stream and dropped its window rows"
else
    it_fail "the reload rebuilt the stream and dropped its window rows" \
        "$(grep 'reload' "$D/daemon.log" | tail -3)"
fi
cmp=$($PYTHON - "$D/state1/pump/pump1.state.json" "$D/state2/pump/pump1.state.json" <<'EOP'
import json, sys
def nums(o, p, out):
    if isinstance(o, dict):
        for k, v in o.items():
            if k not in ("window", "published"):
                nums(v, p + "/" + k, out)
    elif isinstance(o, list):
        for i, v in enumerate(o):
            nums(v, "%s[%d]" % (p, i), out)
    elif isinstance(o, float) or (isinstance(o, int) and not isinstance(o, bool)):
        out[p] = o
    return out
a = nums(json.load(open(sys.argv[1])), "", {})
b = nums(json.load(open(sys.argv[2])), "", {})
def same(x, y):
    if isinstance(x, int) and isinstance(y, int):
        return x == y
    return abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1e-12)
diff = [p for p in a if p in b and not same(a[p], b[p])]
print("%d %d %s" % (len(a), len(diff), " ".join("%s %r->%r" % (p, a[p], b[p]) for p in diff[:3])))
EOP
)
set -- $cmp
if [ "${1:-0}" -gt 0 ] && [ "${2:-1}" = 0 ]; then
    it_ok "the calibration under way goes on from its numbers ($1 numbers, within 1e-6)"
else
    it_fail "the calibration under way goes on from its numbers" "$cmp"
fi
