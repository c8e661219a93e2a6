#!/bin/sh
# it_daemon_state_unwritten.sh - state files whose write failed (here a
# plain file where the detector's directory was) and that are written
# again once the directory is back, with writes made slow (an LD_PRELOAD
# shim, tests/slow_open.c: each write's fsync of the directory sleeps):
#  1. stats state_files_unwritten counts what is not on disk at any
#     moment, also while a retry round is being written: whenever it says
#     U, at least N - U of the N files waiting are there. Before, a retry
#     round took the files off the retry list first, and it read 0 while
#     none of them was written yet; and "every state file is written
#     again" comes once all of them are.
#  2. under steady load (six streams with an open alert, saved at each
#     stats interval, faster than the slow disk writes them: the write
#     queue is never empty) the notice still comes once the files that
#     failed are written. Before, it waited for an empty queue: never.
. tests/lib.sh
it_setup it_daemon_state_unwritten

it_shim slow_open -ldl || { it_fail "open() shim builds" "$(cat "$D/cc.log")"; exit 1; }
ASAN_EXTRA=
if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
    ASAN_EXTRA="verify_asan_link_order=0"
    echo "# ASan build: shim preloaded with verify_asan_link_order=0"
fi
it_broker_up

# conf IDLE_EVICT_S
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-unwritten", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "idle_evict_s": $1,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.000001}, "quality": {"enabled": false}}]}
EOC
}
# a plain file in the directory's place, swapped in one step (the daemon
# makes a missing directory again: a move then a create raced it)
break_dir() { : > "$D/pump.away" && it_swap_paths "$D/state/pump" "$D/pump.away"; }
mend_dir() { it_swap_paths "$D/state/pump" "$D/pump.away" && rm -f "$D/pump.away"; }
stat_of() { it_last_stat "$D/sub.jsonl" anomalyd/stats "$1"; }
stat_ge() { v=$(stat_of "$1"); [ "$v" != None ] && [ "${v%.*}" -ge "$2" ]; }
# start_daemon LOG MS: writes slowed by MS each (the directory's fsync)
start_daemon() {
    mkdir -p "$D/state/pump"
    env LD_PRELOAD="$D/slow_open.so" SLOW_OPEN_SUFFIX="/state/pump" SLOW_OPEN_MS="$2" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
        $AD_BIN run -c "$D/ad.json" 2> "$D/$1" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
        >/dev/null || { it_fail "daemon starts" "$(cat "$D/$1")"; exit 1; }
}
stop_daemon() { kill -TERM "$DPID"; wait "$DPID"; DPID=; }
S=$(( $(date +%s) - 100 * 60 ))

it_sub_start

# 1. twelve streams evicted while writes fail: twelve files waiting, none
#    on disk; written again in one slow batch (12 x 400 ms)
conf 1
start_daemon daemon1.log 400
break_dir
$H pub --port "$IT_PORT" --devices 12 --rows 3 --topic 'sensors/{device}a/pump' --start $S \
    >/dev/null
if it_wait_until 30 stat_ge state_files_unwritten 12; then
    it_ok "12 streams evicted while writes fail: state_files_unwritten 12"
else
    it_fail "12 streams evicted while writes fail: state_files_unwritten 12" \
        "unwritten $(stat_of state_files_unwritten); $(grep 'state:' "$D/daemon1.log" | tail -2)"
fi
mend_dir
# each stats message against the files on disk read after it
bad=; seen=; n=0
end=$(( $(date +%s) + 90 ))
while [ "$(date +%s)" -lt "$end" ]; do
    done_=0
    grep -q "every state file is written again" "$D/daemon1.log" && done_=1
    u=$(stat_of state_files_unwritten); u=${u%.*}
    f=$(ls "$D/state/pump" | grep -c '^pump[0-9]*a\.state\.json$')
    n=$((n + 1))
    if [ "$u" != None ] && [ $((12 - u)) -gt "$f" ]; then
        bad="state_files_unwritten $u with $f of the 12 files on disk"
        break
    fi
    [ "$done_" = 1 ] && { seen=$f; break; }
    sleep 0.1
done
if [ -z "$bad" ] && [ "$seen" = 12 ]; then
    it_ok "state_files_unwritten never below the files not on disk ($n looks)"
else
    it_fail "state_files_unwritten never below the files not on disk" \
        "${bad:-no notice, or it came with ${seen:-?} files on disk}; $(grep 'state:' "$D/daemon1.log" | tail -2)"
fi
if [ "$seen" = 12 ]; then
    it_ok "every state file is written again: said once the 12 files are on disk"
else
    it_fail "every state file is written again: said once the 12 files are on disk" \
        "${seen:-no notice} files"
fi
stop_daemon

# 2. steady load: six streams with an open alert, saved every 0.5 s, each
#    write 300 ms: the queue never empties
rm -rf "$D/state"
: > "$D/sub.jsonl"
conf 3600
start_daemon daemon2.log 300
$H pub --port "$IT_PORT" --devices 6 --rows 60 --topic 'sensors/{device}b/pump' --start $S \
    >/dev/null
if $H wait --file "$D/sub.jsonl" --match event=raised --count 6 --timeout 40 >/dev/null; then
    it_ok "six streams with an open alert"
else
    it_fail "six streams with an open alert" "$(tail -3 "$D/daemon2.log")"
fi
sleep 2
break_dir
if it_wait_until 20 stat_ge state_files_unwritten 6; then
    it_ok "writes failing under steady saves: state_files_unwritten 6"
else
    it_fail "writes failing under steady saves: state_files_unwritten 6" \
        "unwritten $(stat_of state_files_unwritten)"
fi
sleep 2
mend_dir
if it_wait_log "$D/daemon2.log" "every state file is written again" 60; then
    it_ok "steady saves: every state file is said written again once those that failed are"
else
    it_fail "steady saves: every state file is said written again once those that failed are" \
        "unwritten $(stat_of state_files_unwritten); $(grep 'state:' "$D/daemon2.log" | tail -2)"
fi
if it_wait_until 5 test "$(stat_of state_files_unwritten)" = 0; then
    it_ok "state_files_unwritten 0"
else
    it_fail "state_files_unwritten 0" "$(stat_of state_files_unwritten)"
fi
stop_daemon
exit 0
