#!/bin/sh
# it_daemon_collect_waits.sh - a bootstrap whose every row is flagged (a
# feature out of its quality.ranges) waits, and says so, with a real
# broker: a warning names the stream, the flag and the rows skipped, and
# the stream's retained state ("collection") says it waits on flagged rows
# and on which. Rows back in range resume it (a notice; the retained state
# no longer waits) and it trains. Before, only the range alert was there:
# the bootstrap waited silently.
. tests/lib.sh
it_setup it_collect_waits
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-collect-waits", "stats_interval_s": 1},
 "workers": 1, "state_dir": null,
 "detectors": [{"name": "pump", "topics": ["+/+/pump"], "stream_levels": [0, 1],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "quality": {"ranges": {"pressure": [0, 100]}},
   "window": {"length": 20}, "calibration": {"windows": 30},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"},
   "training": {"mode": "bootstrap", "windows": 60, "epochs": 1, "boot_units": 8,
     "features": ["vibration", "current", "pressure", "temperature", "flow"]}}]}
EOC
it_sub_start
sleep 0.3
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" "connected to" 10 ||
    { it_fail "daemon connects" "$(cat "$D/daemon.log")"; exit 1; }
# state_field PATH: PATH (dotted) of the last retained state of sensors/pump1
state_field() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
v = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/sensors/pump1" and m["payload"]:
        o = json.loads(m["payload"])
        for k in sys.argv[2].split("."):
            o = o.get(k) if isinstance(o, dict) else None
        v = o
print(json.dumps(v))
EOP
}
waiting_is() { [ "$(state_field collection.waiting_on_flagged_rows)" = "$1" ]; }

START=$(( $(date +%s) - 200 * 60 ))    # rows a minute apart (data time)
$H pub --port "$IT_PORT" --devices 1 --rows 40 --start "$START" --const pressure=500
if it_wait_log "$D/daemon.log" "waits: the collection skips rows" 20; then
    w=$(grep "training (bootstrap) waits" "$D/daemon.log" | head -1)
    case $w in
    *"detector pump: stream sensors/pump1: "*"(range on 'pressure'): "*" rows skipped since 20"*"T"*"Z, "*)
        it_ok "a warning names the stream, the flag and the rows: ${w#<4>}" ;;
    *) it_fail "a warning names the stream, the flag and the rows" "$w" ;;
    esac
else
    it_fail "a warning says training waits" "$(tail -5 "$D/daemon.log")"
fi
if it_wait_until 10 waiting_is true; then
    it_ok "the retained state says the collection waits on flagged rows (flags $(state_field collection.flags), $(state_field collection.flagged_rows_in_a_row) rows)"
else
    it_fail "the retained state says the collection waits on flagged rows" \
        "collection: $(state_field collection)"
fi
[ "$(state_field collection.flags)" = "\"range on 'pressure'\"" ] &&
    it_ok "... on the range of pressure" ||
    it_fail "... on the range of pressure" "$(state_field collection)"

$H pub --port "$IT_PORT" --devices 1 --rows 140 --start "$START" --start-row 40
it_wait_log "$D/daemon.log" "collects again after" 20 &&
    it_ok "rows back in range: a notice says it collects again" ||
    it_fail "rows back in range: a notice says it collects again" "$(tail -5 "$D/daemon.log")"
it_wait_log "$D/daemon.log" "model trained online" 60 &&
    it_ok "then it trains" || it_fail "then it trains" "$(tail -5 "$D/daemon.log")"
n=$(grep -c "training (bootstrap) waits" "$D/daemon.log")
[ "$n" -eq 1 ] && it_ok "one warning for the wait" || it_fail "one warning for the wait" "$n"
it_daemon_stop
exit 0
