#!/bin/sh
# it_daemon_state_unreadable.sh - a stream's state file that is there but
# cannot be used (truncated; replaced by a directory) is a warning naming
# the file when its stream comes back, and the stream calibrates anew and
# detects. Before, a directory in its place was skipped without a word and
# a truncated file was an info line without its name ("saved calibration
# not reused (calibration state: not a JSON object)"), as for a settings
# change, although an alert the file held open is lost with it.
# An inbox.dat that is not one is named with its first bytes escaped
# (\xNN), not written to the log raw (a terminal escape, binary).
. tests/lib.sh
it_setup it_daemon_state_unreadable
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-unreadable", "stats_interval_s": 0.3},
 "state_dir": "$D/state", "workers": 0,
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
stat_of() { it_last_stat "$D/sub.jsonl" anomalyd/stats "$1"; }
stat_ge() { v=$(stat_of "$1"); [ "$v" != None ] && [ "${v%.*}" -ge "$2" ]; }

it_sub_start
start 1
$H pub --port "$IT_PORT" --devices 2 --rows 100 --start $S
it_wait_log "$D/daemon1.log" "calibrated" 20 2
kill "$DPID"; wait "$DPID"; DPID=
P=$D/state/pump
[ -s "$P/pump1.state.json" ] && [ -s "$P/pump2.state.json" ] ||
    { it_fail "state files written at stop" "$(ls -la "$P" 2>&1)"; exit 1; }
head -c 300 "$P/pump1.state.json" > "$P/t" && mv "$P/t" "$P/pump1.state.json"
rm "$P/pump2.state.json" && mkdir "$P/pump2.state.json"
# and an inbox.dat that is not one, starting with a terminal escape
printf 'X\033[2J\001\n' > "$D/state/inbox.dat"

start 2
$H pub --port "$IT_PORT" --devices 2 --rows 200 --start-row 100 --start $S
it_wait_log "$D/daemon2.log" "calibrated" 20 2
if grep -q "<4>stream pump/pump1: state file $P/pump1.state.json is not JSON" "$D/daemon2.log"; then
    it_ok "a truncated state file: a warning naming it"
else
    it_fail "a truncated state file: a warning naming it" "$(grep pump1 "$D/daemon2.log" | head -3)"
fi
if grep -q "<4>stream pump/pump2: state file cannot be read ($P/pump2.state.json: " "$D/daemon2.log"; then
    it_ok "a directory in place of a state file: a warning naming it"
else
    it_fail "a directory in place of a state file: a warning naming it" \
        "$(grep pump2 "$D/daemon2.log" | head -3)"
fi
if it_wait_until 10 stat_ge detecting_streams 2 && stat_ge windows_scored 100; then
    it_ok "both streams calibrate anew and detect ($(stat_of windows_scored) windows scored)"
else
    it_fail "both streams calibrate anew and detect" \
        "detecting_streams $(stat_of detecting_streams), windows_scored $(stat_of windows_scored)"
fi
ESC=$(printf '\033')
if grep -q 'not an inbox file (first line "X\\x1b\[2J\\x01")' "$D/daemon2.log" &&
   ! grep -q "$ESC" "$D/daemon2.log"; then
    it_ok "an inbox.dat that is not one: its first bytes shown escaped"
else
    it_fail "an inbox.dat that is not one: its first bytes shown escaped" \
        "$(grep -a 'inbox' "$D/daemon2.log" | cat -v | head -2)"
fi
kill "$DPID"; wait "$DPID"; DPID=
