#!/bin/sh
# it_daemon_adapt_cand_reload.sh - a reload that rebuilds a stream whose
# fine-tune's candidate in shadow has no file on disk yet, against a real
# mosquitto; an LD_PRELOAD shim (tests/state_order.c) holds the rename that
# puts the candidate's file in place (a slow disk), or fails it (a disk
# error), and checks that no state file ever names a candidate whose file
# is not there.
#  1. the SIGHUP (calibration.warn_every changed: new settings, the stream
#     rebuilt) while the candidate's file is being written: the rebuilt
#     stream carries the candidate over and goes on with it in shadow; once
#     its file is there the state names it, and once decided the file is
#     removed. Before, the rebuild looked for the file, warned "no such
#     file", dropped the candidate, and the file written after stayed
#     (orphaned) until a restart or the next candidate.
#  2. the next candidate's save fails, then a SIGHUP: the candidate is
#     dropped with a warning saying its file could not be saved (before:
#     "no such file"), and no candidate file is left.
. tests/lib.sh
it_setup it_adapt_cand_reload

. tests/adapt_lib.sh
order_shim "candidate at a reload"
it_broker_up
conf() { cand_conf it-adapt-cand-reload "$1"; }   # conf WARN_EVERY: calibration.warn_every (a change rebuilds the stream)
conf 100
it_sub_start
ORDER_LOG="$D/order.log" ORDER_CAND_DELAY_MS=6000 ORDER_CAND_FAIL="$D/fail" \
    LD_PRELOAD="$D/state_order.so" $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" &
DPID=$!
it_daemon_online 0 "daemon starts"
START=$(( $(date +%s) - 1400 * 60 ))
FEED_MAX=1600
bad() { grep BAD "$D/order.log"; }
cand_file() { ls "$D"/state/pump/pump1.*.candidate.safetensors 2>/dev/null | head -1; }
has_cand() { [ -n "$(cand_file)" ]; }
no_cand() { [ -z "$(cand_file)" ]; }
names_cand() { grep -q '"shadow":{"model_id"' "$D"/state/pump/pump1.state.json; }
nsh() { grep -c "continual learning: shadow: candidate" "$D/daemon.log"; }

pub 0 160; K=160
while [ $K -lt $FEED_MAX ] && ! events_has shadow; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 events_has shadow
done
events_has shadow || { it_fail "a fine-tuned candidate goes into shadow" \
                           "$(tail -5 "$D/daemon.log")"; exit 1; }
MID=$(shadow_ids)
# 1. the reload while the shim holds its file
conf 200
kill -HUP "$DPID"
no_cand && it_ok "the reload comes while candidate $MID's file is being written" ||
    echo "# candidate $MID's file already written at the reload: part 1 checks less"
it_wait_log "$D/daemon.log" "reload: detector pump: .* 1 rebuilt" 10 ||
    { it_fail "the reload rebuilds the stream" "$(grep reload: "$D/daemon.log")"; exit 1; }
pub $K $((K + 2)); K=$((K + 2))
if it_wait_log "$D/daemon.log" "candidate $MID goes on in shadow" 10 &&
   ! grep -q "no such file" "$D/daemon.log"; then
    it_ok "1. rebuilt while its file is written: candidate $MID goes on in shadow"
else
    it_fail "1. rebuilt while its file is written: candidate $MID goes on in shadow" \
        "$(grep -iE 'candidate|reload' "$D/daemon.log" | tail -5)"
fi
it_wait_until 15 has_cand
pub $K $((K + 2)); K=$((K + 2))
it_wait_until 5 names_cand
if has_cand && names_cand && [ -z "$(bad)" ]; then
    it_ok "its file written after the rebuild is the candidate's: the state names it"
else
    it_fail "its file written after the rebuild is the candidate's: the state names it" \
        "$(bad) | file: $(cand_file) | state names it: $(names_cand && echo yes || echo no)"
fi
while [ $K -lt $FEED_MAX ] && ! events_any promoted rejected; do
    pub $K $((K + 20)); K=$((K + 20)); it_wait_until 2 events_any promoted rejected
done
events_any promoted rejected ||
    { it_fail "the candidate is decided" "$(tail -5 "$D/daemon.log")"; exit 1; }
it_wait_until 10 no_cand
if no_cand && [ -z "$(bad)" ]; then
    it_ok "decided: its file removed, no state naming it"
else
    it_fail "decided: its file removed, no state naming it" "$(bad) | $(ls "$D/state/pump")"
fi

# 2. the next candidate's save fails, then a reload
touch "$D/fail"
N0=$(nsh)
more() { [ "$(nsh)" -gt "$N0" ]; }
while [ $K -lt $FEED_MAX ] && ! more; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 more
done
if ! more; then
    echo "# no second candidate within $FEED_MAX rows: part 2 not run"
    exit 0
fi
it_wait_log "$D/daemon.log" "candidate model not saved" 15 ||
    { it_fail "the shim fails the candidate's save" "$(tail -3 "$D/daemon.log")"; exit 1; }
conf 100
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "reload: detector pump: .* 1 rebuilt" 10 ||
    { it_fail "the second reload rebuilds the stream" "$(grep reload: "$D/daemon.log")"; exit 1; }
pub $K $((K + 2)); K=$((K + 2))
if it_wait_log "$D/daemon.log" "dropped by the rebuild: its model file could not be saved" 10 &&
   ! grep -q "no such file" "$D/daemon.log"; then
    it_ok "2. rebuilt after its save failed: the candidate dropped, saying why"
else
    it_fail "2. rebuilt after its save failed: the candidate dropped, saying why" \
        "$(grep -iE 'candidate' "$D/daemon.log" | tail -4)"
fi
pub $K $((K + 5)); K=$((K + 5))
sleep 1
no_cand && ! names_cand && [ -z "$(bad)" ] &&
    it_ok "no candidate file left, no state naming one" ||
    it_fail "no candidate file left, no state naming one" "$(bad) | $(ls "$D/state/pump")"
it_daemon_stop
exit 0
