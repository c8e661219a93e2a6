#!/bin/sh
# it_daemon_adapt_cand_order.sh - a fine-tune's candidate in shadow and its
# file (<stream><tag>.candidate.safetensors) against a kill -9 at any
# moment, against a real mosquitto: an LD_PRELOAD shim (tests/state_order.c)
# checks at each rename that puts a state file in place, and at each
# removal of a candidate's file, that the state on disk never names a
# candidate whose file is not there.
#  1. the candidate's file slow to write (the shim holds its rename 6 s)
#     and a stop meanwhile: no state naming it is written before its file
#     (before, the stop's hand-over state named it while its file was
#     still being written: a kill -9 then found a state naming a missing
#     file, the candidate lost with a warning); once written, the state
#     names it, and after a restart the candidate goes on in shadow.
#  2. decided: its file is removed only after a state that no longer
#     names it is on disk.
#  3. the next candidate's file damaged while stopped: refused at the
#     restore (a warning), and removed only with the next state written,
#     which no longer names it (before, at once: the state on disk still
#     named it).
. tests/lib.sh
it_setup it_adapt_cand_order

. tests/adapt_lib.sh
order_shim "candidate file order"
it_broker_up
cand_conf it-adapt-order
bad() { tail -n "+$(( ${N1:-0} + 1 ))" "$D/order.log" | grep BAD; }   # after line N1 (part 2: its own)
cand_file() { ls "$D"/state/pump/pump1.*.candidate.safetensors 2>/dev/null | head -1; }
has_cand() { [ -n "$(cand_file)" ]; }

order_start 1 6000
START=$(( $(date +%s) - 1400 * 60 ))
FEED_MAX=1300
pub 0 160; K=160
# 40 rows at a time, and the stop as soon as the shadow event is out: its
# file is still held by the shim
while [ $K -lt $FEED_MAX ] && ! events_has shadow; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 events_has shadow
done
events_has shadow || { it_fail "a fine-tuned candidate goes into shadow" \
                           "$(tail -5 "$D/daemon1.log")"; exit 1; }
MID=$(shadow_ids)
if [ -z "$(cand_file)" ]; then
    it_ok "the stop comes while candidate $MID's file is being written"
else
    echo "# candidate $MID's file already written at the stop: part 1 checks less"
fi
order_stop 1
if [ -z "$(bad)" ] && [ -n "$(cand_file)" ] && grep -q '"shadow":{"model_id"' "$D"/state/pump/pump1.state.json; then
    it_ok "1. a stop while its file is written: no state names it before the file is there, the last names it ($(grep -c '^ok rename' "$D/order.log") states checked)"
else
    it_fail "1. a stop while its file is written: no state names it before the file is there, the last names it" \
        "$(bad) | file: $(cand_file) | state: $(grep -o '"shadow":{"model_id":"[0-9a-f]*"' "$D"/state/pump/pump1.state.json)"
fi
N1=$(grep -c "" "$D/order.log")
order_start 2
pub $K $((K + 2)); K=$((K + 2))
it_wait_log "$D/daemon2.log" "candidate $MID goes on in shadow" 20 &&
    it_ok "after the restart candidate $MID goes on in shadow" ||
    it_fail "after the restart candidate $MID goes on in shadow" "$(grep -i candidate "$D/daemon2.log")"

# 2. decided: the file removed after the state without it
while [ $K -lt $FEED_MAX ] && ! events_any promoted rejected; do
    pub $K $((K + 20)); K=$((K + 20)); it_wait_until 2 events_any promoted rejected
done
events_any promoted rejected ||
    { it_fail "the candidate is decided" "$(tail -5 "$D/daemon2.log")"; exit 1; }
no_cand() { [ -z "$(cand_file)" ]; }
it_wait_until 10 no_cand
if no_cand && grep -q "^ok unlink .*candidate" "$D/order.log" && [ -z "$(bad)" ]; then
    it_ok "2. decided: its file removed once a state that no longer names it is on disk"
else
    it_fail "2. decided: its file removed once a state that no longer names it is on disk" \
        "$(bad) | file: $(cand_file) | $(grep unlink "$D/order.log")"
fi

# 3. the next candidate, its file damaged while stopped: refused at the
#    restore, and removed only with a state that no longer names it
N0=$(grep -c "continual learning: shadow: candidate" "$D/daemon2.log")
more() { [ "$(grep -c "continual learning: shadow: candidate" "$D/daemon2.log")" -gt "$N0" ]; }
while [ $K -lt $FEED_MAX ] && ! more; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 more
done
if more && it_wait_until 10 has_cand; then
    order_stop 2
    CF=$(cand_file)
    truncate -s 100 "$CF"
    N1=$(grep -c "" "$D/order.log")
    order_start 3
    pub $K $((K + 2)); K=$((K + 2))
    it_wait_log "$D/daemon3.log" "not restored: $CF" 20 ||
        it_fail "3. the damaged candidate file is refused" "$(grep -i candidate "$D/daemon3.log")"
    pub $K $((K + 5)); K=$((K + 5))
    sleep 1
    order_stop 3
    if [ -z "$(bad)" ] && [ ! -e "$CF" ] && grep -q "^ok unlink $CF" "$D/order.log"; then
        it_ok "3. a damaged candidate file refused at the restore: removed only once a state that no longer names it is on disk"
    else
        it_fail "3. a damaged candidate file refused at the restore: removed only once a state without it is on disk" \
            "$(bad) | $(ls "$D/state/pump") | $(grep unlink "$D/order.log" | tail -2)"
    fi
else
    echo "# no third candidate within $FEED_MAX rows: part 3 not run"
    order_stop 2
fi
exit 0
