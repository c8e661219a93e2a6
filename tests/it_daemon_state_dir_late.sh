#!/bin/sh
# it_daemon_state_dir_late.sh - a state directory that cannot be made at
# start (state_dir on a file system read-only or not mounted yet; here a
# plain file where its parent should be, which fails for root too): a
# warning, the state writes fail and are tried again, and once the
# directory can be made the first of them makes it and the stream's state
# is written, so that a restart restores it. Before, the detector ran
# without persistence until a reload or a restart: nothing was written,
# not even at the stop, and a restart lost its calibration and its open
# alerts.
. tests/lib.sh
it_setup it_daemon_state_dir_late
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-dir-late", "stats_interval_s": 0.3},
 "state_dir": "$D/mnt/state", "workers": 0,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 50}, "quality": {"enabled": false},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
S=$(( $(date +%s) - 1300 * 60 ))
start() { # start N
    n_on=$(it_onlines "$D/sub.jsonl")
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon$1.log" & DPID=$!
    it_wait_online "$D/sub.jsonl" "$n_on" 20 ||
        { it_fail "daemon starts" "$(cat "$D/daemon$1.log")"; exit 1; }
}

: > "$D/mnt"                            # the mount point is not there yet
it_sub_start
start 1
if grep -q "state directory $D/mnt/.*: Not a directory; the state files are written once it can be made" "$D/daemon1.log"; then
    it_ok "a state directory that cannot be made: a warning"
else
    it_fail "a state directory that cannot be made: a warning" "$(head -3 "$D/daemon1.log")"
fi
$H pub --port "$IT_PORT" --devices 1 --rows 100 --start $S
it_wait_log "$D/daemon1.log" "calibrated" 20
it_wait_log "$D/daemon1.log" "state: cannot write" 10
rm "$D/mnt" && mkdir "$D/mnt"           # mounted
if it_wait_file "$D/mnt/state/pump/pump1.state.json" 40; then
    it_ok "once it can be made: made, and the stream's state written"
else
    it_fail "once it can be made: made, and the stream's state written" \
        "$(grep 'state' "$D/daemon1.log" | tail -3); $(ls -la "$D/mnt" 2>&1)"
fi
kill "$DPID"; wait "$DPID"; DPID=
start 2
$H pub --port "$IT_PORT" --devices 1 --rows 140 --start-row 100 --start $S
if it_wait_log "$D/daemon2.log" "pump1: threshold .* restored from the saved state" 20; then
    it_ok "a restart restores the stream's calibration"
else
    it_fail "a restart restores the stream's calibration" "$(grep pump1 "$D/daemon2.log" | head -3)"
fi
kill "$DPID"; wait "$DPID"; DPID=
