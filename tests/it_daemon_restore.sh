#!/bin/sh
# it_daemon_restore.sh - a stream's saved calibration is restored after a
# restart: the restore reads the state file off the loop thread while the
# stream's first messages arrive; those are held and pushed afterwards, so
# the restored stream detects at once with the saved threshold, and every
# sample counts (the exact number of windows is scored, none dropped as
# out of order or duplicate). With `--state-dir DIR` the state goes to DIR
# instead of the config's state_dir, across a reload, and is restored from
# there. A restart whose next rows follow the saved ones continues them
# (the window rows are saved at stop); one in the middle of calibration
# continues the calibration.
. tests/lib.sh
it_setup it_restore
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-restore", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC

# threshold of the last state message of pump1 in phase detecting
threshold() {
    $H last --file "$1" --topic anomalyd/state/pump/pump1 --match phase=detecting --key threshold
}

it_sub_start
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
# window 30, 100 calibration windows: calibrated after 129 rows
# two days back: the rows after the restart (the last hour) come after
# the saved ones, as a live pump's do (rows at or before the saved last
# row are refused after a restore, as by the stream that ran on)
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start $(($(date +%s) - 172800))
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
        --timeout 30 >/dev/null; then
    it_ok "first run: pump1 calibrated"
else
    it_fail "first run: pump1 calibrated" "$(tail -20 "$D/daemon.log")"
fi
t1=$(threshold "$D/sub.jsonl")
it_daemon_stop
[ -s "$D/state/pump/pump1.state.json" ] && it_ok "calibration saved at stop" ||
    it_fail "calibration saved at stop" "$(ls -l "$D/state/pump" 2>&1)"

: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
# one burst of 60 rows: 31 windows of 30 rows (hop 1)
$H pub --port "$IT_PORT" --devices 1 --rows 60
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
        --timeout 20 >/dev/null; then
    t2=$(threshold "$D/sub.jsonl")
    if [ "$t1" != None ] && [ "$t1" = "$t2" ] && ! grep -q recalibrating "$D/daemon2.log" &&
        grep -q "pump/pump1: calibration restored from $D/state/pump/pump1.state.json" \
            "$D/daemon2.log"; then
        it_ok "restart: pump1 detects at once with the saved threshold ($t2)"
    else
        it_fail "restart: pump1 detects at once with the saved threshold" \
            "before $t1 after $t2: $(grep pump1 "$D/daemon2.log" | head -5)"
    fi
else
    it_fail "restart: pump1 detects at once with the saved threshold" "$(cat "$D/daemon2.log")"
fi
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=300 windows_scored=31 \
        dropped_samples=0 --timeout 20 >/dev/null; then
    it_ok "restart: no sample lost or reordered around the restore (300 samples, 31 windows)"
else
    it_fail "restart: no sample lost or reordered around the restore (300 samples, 31 windows)" \
        "$(grep anomalyd/stats "$D/sub.jsonl" | tail -1)"
fi
held=$(sed -n 's/.*pump1: \([0-9]*\) message(s) held during the restore.*/\1/p' "$D/daemon2.log")
echo "# messages held while the restore was in flight: ${held:-0}"
it_daemon_stop

# --- --state-dir: another instance of the same config keeps its own state ---
sum0=$(cksum < "$D/state/pump/pump1.state.json")
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --state-dir "$D/inst" --log-level debug 2> "$D/daemon3.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 200
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
    --timeout 30 >/dev/null
kill -HUP "$DPID"
i=0
while [ $i -lt 100 ] && ! grep -q "configuration reloaded" "$D/daemon3.log"; do sleep 0.1; i=$((i + 1)); done
t3=$(threshold "$D/sub.jsonl")
it_daemon_stop
if grep -q "calibration restored" "$D/daemon3.log" || [ "$t3" = None ] ||
   ! grep -q "configuration reloaded" "$D/daemon3.log" ||
   [ ! -s "$D/inst/pump/pump1.state.json" ] || [ "$(cksum < "$D/state/pump/pump1.state.json")" != "$sum0" ] ||
   grep -q "state_dir" "$D/daemon3.log"; then
    it_fail "--state-dir: new instance calibrates and saves in its own directory, across a reload" \
        "threshold $t3; $(ls -l "$D/inst/pump" 2>&1); $(grep -e restored -e state_dir -e reload "$D/daemon3.log" | head -5)"
else
    it_ok "--state-dir: new instance calibrates and saves in its own directory, across a reload (config's state untouched)"
fi
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --state-dir "$D/inst" --log-level debug 2> "$D/daemon4.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 60
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
        --timeout 20 >/dev/null &&
   [ "$(threshold "$D/sub.jsonl")" = "$t3" ] &&
   grep -q "pump/pump1: calibration restored from $D/inst/pump/pump1.state.json" "$D/daemon4.log"; then
    it_ok "--state-dir: restart restores from the given directory (threshold $t3)"
else
    it_fail "--state-dir: restart restores from the given directory" \
        "want $t3, got $(threshold "$D/sub.jsonl"); $(grep -e restored -e pump1 "$D/daemon4.log" | head -5)"
fi
it_daemon_stop

# threshold of a state file (None: not calibrated)
file_threshold() {
    $PYTHON -c 'import json, sys; print(json.load(open(sys.argv[1])).get("threshold"))' "$1" \
        2>/dev/null || echo None
}

# --- a restart inside a stream: the next window is the one due anyway ------
# 200 rows, stop, restart, the next 40 rows of the same pump (as a broker
# keeping a persistent session's messages delivers them): the rows saved at
# stop continue, so each of the 40 rows completes a window (40, not the 11
# of a ring started afresh).
S=$(( $(date +%s) - 240 * 60 ))
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --state-dir "$D/cont" 2> "$D/daemon5.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start "$S"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=1000 windows_scored=171 \
    --timeout 30 >/dev/null
it_daemon_stop
tc=$(file_threshold "$D/cont/pump/pump1.state.json")
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --state-dir "$D/cont" 2> "$D/daemon6.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 240 --start-row 200 --start "$S"
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=200 windows_scored=40 \
        --timeout 20 >/dev/null && ! grep -q "window rows ignored" "$D/daemon6.log"; then
    it_ok "restart inside a stream: the rows saved at stop continue (40 rows, 40 windows)"
else
    it_fail "restart inside a stream: the rows saved at stop continue (40 rows, 40 windows)" \
        "$(grep anomalyd/stats "$D/sub.jsonl" | tail -1 | cut -c1-400); $(grep -i window "$D/daemon6.log" | head -3)"
fi
it_daemon_stop

# --- a restart in the middle of calibration: it goes on -------------------
# the same 200 rows, stopped after 80 (51 of 100 calibration windows):
# the state saved at stop holds the calibration so far; after the restart
# calibration ends on the same window with the threshold of the run above
# (before, it started again: 100 windows more, not calibrated by row 200)
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --state-dir "$D/mid" 2> "$D/daemon7.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 80 --start "$S"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=400 windows_scored=51 \
    --timeout 30 >/dev/null
it_daemon_stop
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --state-dir "$D/mid" 2> "$D/daemon8.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start-row 80 --start "$S"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=600 windows_scored=120 \
    --timeout 30 >/dev/null
it_daemon_stop
tm=$(file_threshold "$D/mid/pump/pump1.state.json")
if grep -q "pump1: calibration continues from the saved state: 51 of 100 windows" "$D/daemon8.log" &&
   [ "$tc" != None ] && [ "$tm" = "$tc" ]; then
    it_ok "restart in the middle of calibration: it goes on (51 of 100 windows), threshold $tm as without the restart"
else
    it_fail "restart in the middle of calibration: it goes on, threshold as without the restart" \
        "threshold $tm, without the restart $tc; $(grep -h 'calibrat' "$D/daemon8.log" | head -3)"
fi
exit 0
