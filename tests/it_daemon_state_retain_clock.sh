#!/bin/sh
# it_daemon_state_retain_clock.sh - state_retain_days against a clock that
# is ahead when a sweep runs (an RTC reset into the future, at boot before
# NTP sets it; here an LD_PRELOAD shim, tests/clock_step.c, moves the
# daemon's wall clock a year ahead):
#  1. the start-up sweep keeps the state files of the streams (now is taken
#     as at most a day after the newest file). Before, every file looked a
#     year old and the files of every stream were removed: calibrations,
#     models trained online.
#  2. files that are really old (touch -d, 100 days; retention 90) after a
#     long stop: kept by the start-up sweep, which cannot tell them from a
#     clock ahead, and by the sweeps of that process (its now counts on from
#     the start-up sweep's by the monotonic clock); removed by the start-up
#     sweep of the next process, once a stream has written its file.
#  3. the clock a year ahead at start, and a stream writes its file then
#     (a future time: touch -d, the shim cannot move the kernel's): the
#     next sweep (SIGHUP) keeps the files of the other stream. Before, that
#     file was taken for now and every other stream's files were removed.
#  4. a restart while the clock is still a year ahead, after 3.'s process
#     wrote a file with its time: the start-up sweep keeps the files of the
#     other stream (written before the clock went ahead) and removes a file
#     that is really old (100 days). Before, the future file was the
#     newest, now was the clock's, and the other stream's files were a year
#     old: removed.
#  5. the same restart, the clock now synchronized (an NTP client set it
#     forward: a clock that was behind, corrected): no lead taken (said),
#     none left for the next start. Before, the correction was carried as a lead
#     across restarts: retention ran that much late, or never, silently.
#     A lead in .retain_clock beyond ten years is refused (warned).
# Each start checks the shim took effect (the status message's "started").
. tests/lib.sh
it_setup it_daemon_state_retain_clock

it_shim clock_step -ldl ||
    { it_skip "clock ahead" "shim not built: $(head -2 "$D/cc.log")"; exit 0; }
ASAN_EXTRA=
if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
    ASAN_EXTRA="verify_asan_link_order=0"
    echo "# ASan build: shim preloaded with verify_asan_link_order=0"
fi
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-retain-clock", "stats_interval_s": 0.3},
 "state_dir": "$D/state", "workers": 0,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json"},
   "calibration": {"windows": 50}, "quality": {"enabled": false},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
P=$D/state/pump
start() { # start N [STEP_MS]
    echo "${2:-0}" > "$D/step"
    n_on=$(it_onlines "$D/sub.jsonl")
    CLOCK_STEP_FILE="$D/step" LD_PRELOAD="$D/clock_step.so" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
        $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon$1.log" & DPID=$!
    it_wait_online "$D/sub.jsonl" "$n_on" 20 ||
        { it_fail "daemon starts" "$(cat "$D/daemon$1.log")"; exit 1; }
    # the shim took effect: the year the daemon says it started in
    y=$(it_started_year "$D/sub.jsonl")
    want=$(date -u -d "@$(( $(date +%s) + ${2:-0} / 1000 ))" +%Y)
    [ "$y" = "$want" ] ||
        { it_fail "start $1: the daemon's clock is the shim's" "started in $y, not $want"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID"; DPID=; }

it_sub_start
start 1
$H pub --port "$IT_PORT" --devices 2 --rows 80 --no-ts
it_wait_log "$D/daemon1.log" "calibrated" 20 2
stop
[ -s "$P/pump1.state.json" ] && [ -s "$P/pump2.state.json" ] ||
    { it_fail "state files written" "$(ls -la "$P" 2>&1)"; exit 1; }

# ---- 1. the clock a year ahead at start ------------------------------------
start 2 31536000000
it_wait_log "$D/daemon2.log" "state: retention" 20
stop
if [ -s "$P/pump1.state.json" ] && [ -s "$P/pump2.state.json" ] &&
   grep -q "state: retention 90 day(s): 0 file(s) removed" "$D/daemon2.log"; then
    it_ok "clock a year ahead at start: the streams' state files kept"
else
    it_fail "clock a year ahead at start: the streams' state files kept" \
        "$(grep 'retention' "$D/daemon2.log"); $(ls "$P" 2>&1)"
fi

# ---- 2. really old files after a long stop -----------------------------------
cp "$P/pump2.state.json" "$P/old1.state.json"
touch -d '100 days ago' "$P"/*.state.json
start 3
it_wait_log "$D/daemon3.log" "state: retention" 20
if [ -e "$P/old1.state.json" ] && [ -e "$P/pump2.state.json" ]; then
    it_ok "after a long stop: the start-up sweep keeps the files"
else
    it_fail "after a long stop: the start-up sweep keeps the files" "$(ls "$P" 2>&1)"
fi
# a new device: its stream calibrates and writes its file
$H pub --port "$IT_PORT" --devices 1 --rows 80 --no-ts --topic 'sensors/new{device}/pump'
it_wait_log "$D/daemon3.log" "newpump1: calibrated" 20
it_wait_file "$P/newpump1.state.json" 10
kill -HUP "$DPID"
it_wait_log "$D/daemon3.log" "state: retention" 20 2
if [ -e "$P/old1.state.json" ] && [ -e "$P/pump2.state.json" ]; then
    it_ok "the same process's next sweep keeps them (its now counts on monotonic time)"
else
    it_fail "the same process's next sweep keeps them (its now counts on monotonic time)" \
        "$(grep 'retention' "$D/daemon3.log" | tail -1); $(ls "$P" 2>&1)"
fi
stop
start 4
it_wait_log "$D/daemon4.log" "state: retention" 20
if [ ! -e "$P/old1.state.json" ] && [ ! -e "$P/pump2.state.json" ] && [ -s "$P/newpump1.state.json" ]; then
    it_ok "the next start's sweep removes the old ones ($(grep 'retention' "$D/daemon4.log" | tail -1 | cut -c1-60)...)"
else
    it_fail "the next start's sweep removes the old ones" \
        "$(grep 'retention' "$D/daemon4.log" | tail -1); $(ls "$P" 2>&1)"
fi
stop

# ---- 3. a file written while the clock is a year ahead -----------------------
start 5 31536000000
it_wait_log "$D/daemon5.log" "state: retention" 20
$H pub --port "$IT_PORT" --devices 1 --rows 10 --no-ts
it_wait_log "$D/daemon5.log" "pump1" 10
touch -d "@$(( $(date +%s) + 31536000 ))" "$P/pump1.state.json"
kill -HUP "$DPID"
it_wait_log "$D/daemon5.log" "state: retention" 20 2
if [ -s "$P/newpump1.state.json" ] &&
   grep "state: retention" "$D/daemon5.log" | tail -1 | grep -q ": 0 file(s) removed"; then
    it_ok "clock a year ahead, a file written then: the next sweep keeps the other streams' files"
else
    it_fail "clock a year ahead, a file written then: the next sweep keeps the other streams' files" \
        "$(grep 'retention' "$D/daemon5.log" | tail -1); $(ls "$P" 2>&1)"
fi
stop

# ---- 4. a restart while the clock is still a year ahead ---------------------
cp "$P/newpump1.state.json" "$P/old2.state.json"
touch -d '100 days ago' "$P/old2.state.json"
# the stop wrote pump1's file: with the clock ahead, at its time
touch -d "@$(( $(date +%s) + 31536000 ))" "$P/pump1.state.json"
start 6 31536000000
it_wait_log "$D/daemon6.log" "state: retention" 20
if [ -s "$P/newpump1.state.json" ] && [ -s "$P/pump1.state.json" ] && [ ! -e "$P/old2.state.json" ]; then
    it_ok "restarted with the clock still a year ahead: the other streams' files kept, a really old one removed"
else
    it_fail "restarted with the clock still a year ahead: the other streams' files kept, a really old one removed" \
        "$(grep 'retention' "$D/daemon6.log" | tail -1); $(ls "$P" 2>&1)"
fi
stop

# ---- 5. the clock synchronized: a step forward is a correction -------------
CLOCK_SYNCED=1; export CLOCK_SYNCED
start 7 31536000000
it_wait_log "$D/daemon7.log" "state: retention" 20
lead=$(cut -d' ' -f4 "$D/state/.retain_clock" 2>/dev/null)
if grep -q "state: retention: the wall clock is synchronized: its lead of [0-9]* s" \
       "$D/daemon7.log" && [ "$lead" = 0 ]; then
    it_ok "restarted with the clock synchronized: the step forward taken as a correction (said), no lead kept"
else
    it_fail "restarted with the clock synchronized: the step forward taken as a correction" \
        "lead ${lead:-none}; $(grep 'retention' "$D/daemon7.log" | tail -2); $(ls "$P" 2>&1)"
fi
stop
unset CLOCK_SYNCED
# a lead beyond ten years (not this daemon's): refused, warned
read -r b w t l < "$D/state/.retain_clock"
echo "$b $w $t 9223372036854775000" > "$D/state/.retain_clock"
start 8 31536000000
it_wait_log "$D/daemon8.log" "state: retention" 20
if grep -q "retain_clock: lead 9223372036854775000 s or its times beyond ten years: not taken" \
       "$D/daemon8.log"; then
    it_ok "a lead near LLONG_MAX in .retain_clock: refused, warned"
else
    it_fail "a lead near LLONG_MAX in .retain_clock: refused, warned" "$(grep 'retention' "$D/daemon8.log")"
fi
stop
