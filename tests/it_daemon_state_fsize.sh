#!/bin/sh
# it_daemon_state_fsize.sh - a file-size limit (ulimit -f; systemd
# LimitFSIZE=) that a state file outgrows fails that write, as a full disk
# does: the daemon keeps detecting, says so once (File too large), counts
# it (stats state_write_errors, state_files_unwritten), and writes the
# file once the limit is raised. Before, the write raised SIGXFSZ, whose
# default action ended the daemon without a log line (exit status 153),
# a half-written temporary file left in the state directory; under
# systemd's Restart= it died again at the same write.
. tests/lib.sh
it_setup it_daemon_state_fsize

command -v prlimit >/dev/null 2>&1 || { it_skip "file-size limit" "no prlimit"; exit 0; }
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-fsize", "stats_interval_s": 0.3},
 "state_dir": "$D/state", "workers": 0,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 50}, "quality": {"enabled": false},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
stat_of() { it_last_stat "$D/sub.jsonl" anomalyd/stats "$1"; }
stat_ge() { v=$(stat_of "$1"); [ "$v" != None ] && [ "${v%.*}" -ge "$2" ]; }
stat_is() { v=$(stat_of "$1"); [ "${v%.*}" = "$2" ]; }
S=$(( $(date +%s) - 1300 * 60 ))

it_sub_start
# a soft limit of 2 KB (the hard one stays, so prlimit can raise it): the
# state file at calibration is larger
( ulimit -S -f 4 && exec $AD_BIN run -c "$D/ad.json" --log-level info ) 2> "$D/daemon.log" &
DPID=$!
it_daemon_online 0 "daemon starts"
$H pub --port "$IT_PORT" --devices 1 --rows 100 --start $S
it_wait_log "$D/daemon.log" "calibrated" 20
it_wait_log "$D/daemon.log" "state: cannot write" 10
sleep 1
if kill -0 "$DPID" 2>/dev/null; then
    it_ok "a state file over the file-size limit: the daemon runs on"
else
    wait "$DPID"; rc=$?; DPID=
    it_fail "a state file over the file-size limit: the daemon runs on" \
        "it exited with status $rc; $(tail -2 "$D/daemon.log")"
    exit 1
fi
if grep -q "cannot write .*pump1.state.json: .*File too large" "$D/daemon.log" &&
   it_wait_until 10 stat_ge state_write_errors 1 && stat_ge state_files_unwritten 1; then
    it_ok "said (File too large, naming the file) and counted (state_write_errors $(stat_of state_write_errors))"
else
    it_fail "said and counted" "$(grep 'state:' "$D/daemon.log" | tail -2);" \
        "state_write_errors $(stat_of state_write_errors) unwritten $(stat_of state_files_unwritten)"
fi
w0=$(stat_of windows_scored)
$H pub --port "$IT_PORT" --devices 1 --rows 150 --start-row 100 --start $S
if it_wait_until 10 stat_ge windows_scored $(( ${w0%.*} + 50 )); then
    it_ok "detection goes on ($(stat_of windows_scored) windows scored)"
else
    it_fail "detection goes on" "windows_scored $(stat_of windows_scored), was $w0"
fi
prlimit --pid "$DPID" --fsize=unlimited:
if it_wait_log "$D/daemon.log" "every state file is written again" 60 &&
   it_wait_until 10 stat_is state_files_unwritten 0 &&
   [ -s "$D/state/pump/pump1.state.json" ] &&
   [ -z "$(find "$D/state" -name '*.tmp*')" ]; then
    it_ok "the limit raised: the state file is written, no temporary file left"
else
    it_fail "the limit raised: the state file is written" \
        "$(ls -la "$D/state/pump" 2>&1 | tail -3); unwritten $(stat_of state_files_unwritten)"
fi
kill "$DPID"; wait "$DPID"; rc=$?; DPID=
if [ "$rc" = 0 ]; then
    it_ok "stops cleanly"
else
    it_fail "stops cleanly" "exit status $rc"
fi
