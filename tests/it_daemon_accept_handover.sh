#!/bin/sh
# it_daemon_accept_handover.sh - a stream restored from a stop's save (a
# hand-over: its acceptance progress continues as if nothing was consumed
# after it) writes its state again once it runs, so that a kill -9 later
# does not restore that hand-over again: the rows consumed after the
# restart would be missing from a chain's quiet windows, and a chain that
# ended continued. A pump's pressure drops 0.6 bar for 15 rows: an alert
# raised and cleared, a chain of recurrences pending (alert.accept_gap_ms
# 1 day); the daemon is stopped, started again and given 40 quiet rows.
. tests/lib.sh
it_setup it_daemon_accept_handover
STATE=$D/state/pump/pump1.state.json
it_broker_up
START=$(( $(date +%s) - 1000 * 60 ))

# pub FROM TO: simulator rows FROM..TO-1 of pump1, one a minute from START;
# rows 200-214 read pressure 0.6 bar low
pub() {
    $H pub --port "$IT_PORT" --start "$START" --seed 3 --start-row "$1" --rows "$2" \
        --shift pressure:-0.6:200:215
}

# accept_of STATEFILE: "<handover> <last row>" of the state file's pending
# acceptance progress (nothing when it has none)
accept_of() {
    $PYTHON - "$1" "$START" <<'EOP'
import json, sys
try:
    a = json.load(open(sys.argv[1]))["alert"]
except (OSError, ValueError, KeyError):
    sys.exit(0)
if "accept" in a:
    print(str(a["accept"].get("handover")).lower(), (a["last_ts"] // 1000 - int(sys.argv[2])) // 60)
EOP
}

cat > "$D/c.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-accept-handover", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "alert": {"k": 3, "n": 5, "m": 10, "clear_ratio": 0.8,
             "accept_after_ms": 28800000, "accept_gap_ms": 86400000}}]}
EOC
it_sub_start
$AD_BIN run -c "$D/c.json" --log-level info 2> "$D/1.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/1.log")"; exit 1; }
pub 0 260
if ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared \
         --timeout 30 >/dev/null ||
   ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in=260 --timeout 30 \
         >/dev/null; then
    it_fail "the 15 rows of low pressure raise an alert that clears" "$(tail -5 "$D/1.log")"
    exit 1
fi
it_daemon_stop
set -- $(accept_of "$STATE")
if [ "$1" = true ] && [ "$2" = 259 ]; then
    it_ok "stopped between recurrences: the state file holds the pending chain as a hand-over"
else
    it_fail "stopped between recurrences: the state file holds the pending chain as a hand-over" \
        "got: ${*:-no acceptance progress}"
    exit 1
fi

$AD_BIN run -c "$D/c.json" --log-level info 2> "$D/2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online pid=$DPID \
    --timeout 20 >/dev/null || { it_fail "daemon restarts" "$(cat "$D/2.log")"; exit 1; }
pub 260 300
# a kill -9 from here restores what the file holds: it must no longer be
# the stop's hand-over (rows 260-299 consumed since)
it_wait_until 20 grep -q '"handover":false' "$STATE"
set -- $(accept_of "$STATE")
if [ "$1" = false ] && [ "$2" -ge 259 ]; then
    it_ok "restarted from it and running: the state is written again, no longer a hand-over (last row $2)"
else
    it_fail "restarted from it and running: the state is written again, no longer a hand-over" \
        "got: ${*:-no acceptance progress}" "$(tail -5 "$D/2.log")"
fi
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
