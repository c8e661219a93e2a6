#!/bin/sh
# it_daemon_clock_step.sh - the host's wall clock set back while the daemon
# runs (an NTP step, `date -s`; here an LD_PRELOAD shim, tests/clock_step.c,
# moves the daemon's CLOCK_REALTIME by an hour, the monotonic clock left
# alone) must not stop detection for as long as the step:
#  1. period mode, samples without a time (stamped on arrival), 4 a second
#     on a 250 ms grid: the windows go on being scored after the step.
#     Before, the arrival times after it were the stream's last one + 1 ms
#     each (strictly increasing) and the grid rows stopped: no window
#     scored for an hour (2 windows in the 15 s after the step, here),
#     nothing said.
#  2. a device with timestamps that falls silent just before the step: its
#     dropout is raised after the usual silence. Before, the stream's data
#     clock (its newest time + the wall time since its last message) stood
#     still until the wall clock passed that message again: an hour.
#  3. the clock set back an hour across a restart (period mode, arrival
#     times): the restored stream's last row is ahead of the clock, the
#     data clock goes on from there and catches up; windows are scored
#     after the restart. Before, every sample was stamped 1 ms after the
#     last until the clock passed that row: no window for an hour.
#  5. the same with two hours (each case starts two daemons), set back
#     while the daemon is stopped: more than the data clock catches up with,
#     taken at once (a warning): the stream's rows start anew, windows
#     are scored.
#  6./7. the clock set back two hours while the daemon runs (period mode,
#     arrival times): more than the data clock catches up with, taken at
#     once (a warning), as a restart takes it: the streams' rows start anew
#     from now; windows are scored after the step (counted against the
#     same run without a step, 6.) and the stream's last row is the clock's,
#     not two hours ahead. Before, the two hours were caught up at a tenth
#     of the time: arrival times 0.9 times their spacing for twenty hours.
#  8. the clock set back two hours while a stream collects its training
#     rows (training finetune, arrival times): not rebuilt (its collected
#     rows are in no state), its arrival times go on after its last row at
#     the messages' spacing; it trains on the rows from before and after
#     the step, then starts its rows anew. Before, it was rebuilt: the
#     rows collected before the step were lost (or, left as it was, its
#     samples were stamped 1 ms apart for two hours).
# Each step is checked to have been taken (the daemon logs it): the shim
# may not take effect.
. tests/lib.sh
it_setup it_daemon_clock_step

it_shim clock_step -ldl ||
    { it_skip "host clock step" "shim not built: $(head -2 "$D/cc.log")"; exit 0; }
ASAN_EXTRA=
if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
    ASAN_EXTRA="verify_asan_link_order=0"
    echo "# ASan build: shim preloaded with verify_asan_link_order=0"
fi
it_broker_up
it_sub_start
# conf CASE PAYLOAD ROWS
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-clock-step-$1", "stats_interval_s": 0.3,
            "stats_topic": "anomalyd/stats$1"},
 "state_dir": ${SD:-null}, "workers": 0,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["c$1/+/pump"],
   "payload": {"format": "json"$2}, $3
   "calibration": {"method": "fixed", "fixed": 100},
   "quality": {"dropout_min_ms": 3000, "learn_samples": 16},
   "alert": {"state_topic": "anomalyd/state$1/{detector}/{stream}"}}]}
EOC
}
start() { # start CASE
    echo 0 > "$D/step"
    n_on=$(it_onlines "$D/sub.jsonl")
    CLOCK_STEP_FILE="$D/step" LD_PRELOAD="$D/clock_step.so" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon$1.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
        --count "$(( n_on + 1 ))" >/dev/null || { it_fail "case $1: daemon starts" "$(cat "$D/daemon$1.log")"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
stat_of() { it_last_stat "$D/sub.jsonl" "anomalyd/stats$1" "$2"; }
stat_ge() { v=$(stat_of "$1" "$2"); [ "$v" != None ] && [ "${v%.*}" -ge "$3" ]; }

# ---- 1. period mode, arrival times -----------------------------------------
conf 1 "" '"rows": {"mode": "period", "period_ms": 250},'
start 1
$H pub --port "$IT_PORT" --topic 'c1/{device}/pump' --no-ts --rate 4 --devices 1 --rows 60
it_wait_until 10 stat_ge 1 windows_scored 20 ||
    it_fail "case 1: scoring before the step" "windows_scored $(stat_of 1 windows_scored)"
sleep 0.5
w0=$(stat_of 1 windows_scored)
echo -3600000 > "$D/step"
sleep 0.3
$H pub --port "$IT_PORT" --topic 'c1/{device}/pump' --no-ts --rate 4 --devices 1 --rows 61 \
    --start-row 60
it_wait_log "$D/daemon1.log" "clock: the wall clock was set back 3600" 5 ||
    { it_fail "case 1: the step taken (the shim works)" "$(grep clock: "$D/daemon1.log")"; exit 1; }
$H pub --port "$IT_PORT" --topic 'c1/{device}/pump' --no-ts --rate 4 --devices 1 --rows 120 \
    --start-row 61
# 60 rows in 15 s; the step taken back at a tenth of the time, the data
# clock runs at 0.9: some 54 grid rows, each a window (30 asked)
if it_wait_until 10 stat_ge 1 windows_scored $(( ${w0%.*} + 30 )); then
    it_ok "case 1: clock set back an hour: period rows and windows go on ($w0 -> $(stat_of 1 windows_scored))"
else
    it_fail "case 1: clock set back an hour: period rows and windows go on" \
        "windows_scored $w0 before the step, $(stat_of 1 windows_scored) 15 s of data after it"
fi
stop

# ---- 2. a silent device's dropout ------------------------------------------
conf 2 ', "timestamp": "ts", "timestamp_unit": "ms"' ''
start 2
$H pub --port "$IT_PORT" --topic 'c2/{device}/pump' --start "$(date +%s)" --ts-step 0.25 \
    --rate 4 --devices 1 --rows 40
echo -3600000 > "$D/step"
sleep 0.3
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=dq_raised \
       check=dropout --timeout 15 >/dev/null; then
    it_ok "case 2: clock set back an hour: a device silent since is flagged (dropout)"
else
    it_fail "case 2: clock set back an hour: a device silent since is flagged (dropout)" \
        "no dq_raised dropout in 15 s"
fi
stop
it_wait_log "$D/daemon2.log" "clock: the wall clock was set back 3600" 5 ||
    it_fail "case 2: the step taken (the shim works)" "$(grep clock: "$D/daemon2.log")"

# ---- 3., 5. a step back across a restart --------------------------------------
# restart_case CASE STEP_MS WHAT LOG [STOPPED]: data, the step, data, a restart, 15 s
# of data; the restarted daemon logs LOG. STOPPED: the step while the daemon
# is stopped (one of more than an hour while it runs is taken at once then)
restart_case() {
    SD="\"$D/state$1\"" conf "$1" "" '"rows": {"mode": "period", "period_ms": 250},'
    start "$1"
    $H pub --port "$IT_PORT" --topic "c$1/{device}/pump" --no-ts --rate 4 --devices 1 --rows 40
    [ -n "${5:-}" ] || echo "$2" > "$D/step"
    sleep 0.3
    $H pub --port "$IT_PORT" --topic "c$1/{device}/pump" --no-ts --rate 4 --devices 1 --rows 80 \
        --start-row 40
    sleep 1
    [ -n "${5:-}" ] || it_wait_log "$D/daemon$1.log" "clock: the wall clock was set back" 5 ||
        { it_fail "case $1: the step taken (the shim works)" "$(grep clock: "$D/daemon$1.log")"; return 1; }
    kill "$DPID"; wait "$DPID" 2>/dev/null
    [ -z "${5:-}" ] || echo "$2" > "$D/step"
    n_on=$(it_onlines "$D/sub.jsonl")
    CLOCK_STEP_FILE="$D/step" LD_PRELOAD="$D/clock_step.so" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon$1b.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
        --count "$(( n_on + 1 ))" >/dev/null || { it_fail "case $1: daemon restarts" "$(cat "$D/daemon$1b.log")"; return 1; }
    sleep 1
    w0=$(stat_of "$1" windows_scored)
    $H pub --port "$IT_PORT" --topic "c$1/{device}/pump" --no-ts --rate 4 --devices 1 --rows 140 \
        --start-row 80
    # 60 rows in 15 s: some 56 grid rows, each a window once the stream has
    # a window's rows (20 asked)
    if it_wait_until 10 stat_ge "$1" windows_scored $(( ${w0%.*} + 20 )); then
        it_ok "case $1: clock set back $(( -$2 / 1000 )) s, restarted: windows are scored ($w0 -> $(stat_of "$1" windows_scored)); $3"
    else
        it_fail "case $1: clock set back $(( -$2 / 1000 )) s, restarted: windows are scored" \
            "windows_scored $w0 after the restart, $(stat_of "$1" windows_scored) 15 s of data later"
    fi
    grep -q "$4" "$D/daemon$1b.log" ||
        it_fail "case $1: the restore logs the lead" "$(grep clock: "$D/daemon$1b.log")"
    stop
}
restart_case 3 -3600000 "caught up" "its last row is 3[0-9.]* s ahead of the clock: arrival times run"
restart_case 5 -7200000 "taken at once" "more than an hour, taken at once" stopped

# ---- 6. a step back of two hours while running: taken at once ----------------
# run_step CASE STEP_MS: 60 rows, the step, 120 rows more (period mode,
# arrival times, a state dir); sets w0 (windows scored before the step) and
# w1 (a second after the last message: a silence's period rows are scored
# too, the count never stands still)
run_step() {
    SD="\"$D/state$1\"" conf "$1" "" '"rows": {"mode": "period", "period_ms": 250},'
    start "$1"
    $H pub --port "$IT_PORT" --topic "c$1/{device}/pump" --no-ts --rate 4 --devices 1 --rows 60
    it_wait_until 10 stat_ge "$1" windows_scored 20
    sleep 0.5
    w0=$(stat_of "$1" windows_scored)
    echo "$2" > "$D/step"
    sleep 0.3
    $H pub --port "$IT_PORT" --topic "c$1/{device}/pump" --no-ts --rate 4 --devices 1 --rows 61 \
        --start-row 60
    [ "$2" = 0 ] || it_wait_log "$D/daemon$1.log" "clock: the wall clock was set back" 5 ||
        { it_fail "case $1: the step taken (the shim works)" "$(grep clock: "$D/daemon$1.log")"; return 1; }
    $H pub --port "$IT_PORT" --topic "c$1/{device}/pump" --no-ts --rate 4 --devices 1 --rows 120 \
        --start-row 61
    sleep 1
    w1=$(stat_of "$1" windows_scored)
}
run_step 6 0
ref=$(( ${w1%.*} - ${w0%.*} ))
stop
run_step 7 -7200000
stop
n=$(( ${w1%.*} - ${w0%.*} ))
# the stream's last row against the clock (two hours back): its rows go on
# from now, not two hours ahead catching up at 9/10 of their spacing for
# twenty hours
last=$($PYTHON -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["alert"]["last_ts"]))' \
       "$D/state7/pump/pump1.state.json" 2>/dev/null)
lead=$(( ${last:-0} - ($(date +%s) - 7200) * 1000 ))
if grep -q "clock: the wall clock was set back 7[0-9.]* s: more than an hour, taken at once" \
       "$D/daemon7.log" && [ "$n" -ge $(( ref - 35 )) ] && [ "$lead" -le 60000 ] &&
   [ "$lead" -ge -60000 ]; then
    it_ok "case 7: clock set back two hours while running: taken at once (warned), windows go on ($n after the step, $ref without it; window 30 rows), the last row $(( lead / 1000 )) s from the clock"
else
    it_fail "case 7: clock set back two hours while running: taken at once, windows go on" \
        "windows $n after the step, $ref without it; last row $lead ms from the clock; $(grep clock: "$D/daemon7.log")"
fi

# ---- 8. a step back of two hours while a stream collects training rows ------
SD="\"$D/state8\"" conf 8 "" '"training": {"mode": "finetune", "windows": 100, "epochs": 1},'
start 8
$H pub --port "$IT_PORT" --topic 'c8/{device}/pump' --no-ts --rate 20 --devices 1 --rows 60
sleep 0.5
echo -7200000 > "$D/step"
sleep 0.3
$H pub --port "$IT_PORT" --topic 'c8/{device}/pump' --no-ts --rate 20 --devices 1 --rows 130 \
    --start-row 60
it_wait_log "$D/daemon8.log" "model trained online" 30
it_wait_log "$D/daemon8.log" "clock: stream pump/pump1 starts its rows anew" 10
rows=$(grep -o "training ([a-z]*) on [0-9]* rows" "$D/daemon8.log" | grep -o "[0-9]* rows")
if grep -q "clock: the wall clock was set back 7[0-9.]* s: more than an hour" "$D/daemon8.log" &&
   grep -q "clock: stream pump/pump1 not started anew (collecting or training" "$D/daemon8.log" &&
   grep -q "model trained online" "$D/daemon8.log" &&
   grep -q "clock: stream pump/pump1 starts its rows anew" "$D/daemon8.log"; then
    it_ok "case 8: clock set back two hours while collecting training rows: not rebuilt (warned), trained on the rows from before and after the step ($rows), then its rows start anew"
else
    it_fail "case 8: clock set back two hours while collecting training rows" \
        "$(grep -E 'clock:|train' "$D/daemon8.log")"
fi
stop
