#!/bin/sh
# it_daemon_adapt_cand_twice.sh - two fine-tuned candidates of one stream
# whose files are written one after the other to the same path
# (<stream><tag>.candidate.safetensors), the first one's slow (a slow disk:
# the LD_PRELOAD shim tests/state_order.c holds its rename 30 s, not the
# next one's), against a real mosquitto, 2 workers. The first candidate
# goes into shadow, is decided, and the next one goes into shadow while
# the first one's file is still being written. Its file must be the one
# the path holds at the end: the state names it, and after a restart it
# goes on in shadow. Before, the two saves ran at once on the two workers
# and the older one, renamed last, replaced the newer file: the restart
# dropped the candidate ("not restored: ... it holds model <first>, the
# saved candidate is <second>"). A reload rebuilds the stream while the
# first file is still held (the second candidate's save waiting for it):
# the rebuilt stream carries the second candidate over, and its file is
# written after the first one's.
. tests/lib.sh
it_setup it_adapt_cand_twice
HOLD_MS=30000

. tests/adapt_lib.sh
order_shim "two candidate saves in order"
it_broker_up
conf() { cand_conf it-adapt-twice "$1"; }   # conf WARN_EVERY: calibration.warn_every (a change rebuilds the stream)
conf 100
# the shim holds only the first candidate file's rename (order_start's DELAY_MS)
ORDER_CAND_DELAY_FIRST=1; export ORDER_CAND_DELAY_FIRST
shadows() { grep -c "continual learning: shadow: candidate" "$D/daemon1.log"; }
puts() { grep -c "^put .*candidate" "$D/order.log" 2>/dev/null; }

order_start 1 $HOLD_MS
T0=$(date +%s)
START=$(( T0 - 1400 * 60 ))
FEED_MAX=1300
pub 0 160; K=160
one() { [ "$(shadows)" -ge 1 ]; }
two() { [ "$(shadows)" -ge 2 ]; }
while [ $K -lt $FEED_MAX ] && ! one; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 one
done
one || { it_fail "a first candidate goes into shadow" "$(tail -5 "$D/daemon1.log")"; exit 1; }
T1=$(date +%s)
while [ $K -lt $FEED_MAX ] && ! two; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 two
done
two || { it_fail "a second candidate goes into shadow" "$(tail -5 "$D/daemon1.log")"; exit 1; }
T2=$(date +%s)
# the second candidate: the last shadow event's model
sleep 1
MID=$(shadow_ids | tail -1)
if ! grep -q "^put held" "$D/order.log" 2>/dev/null; then
    it_ok "the second candidate ($MID) goes into shadow while the first one's file is still being written ($((T2 - T1)) s after the first, held $((HOLD_MS / 1000)) s)"
else
    it_skip "two candidate saves in order" "the first candidate's file was written before the second candidate ($((T2 - T1)) s): the machine was too slow to overlap them"
    order_stop 1
    exit 0
fi
# the reload while the first file is held: the stream rebuilt, the second
# candidate carried over
conf 200
kill -HUP "$DPID"
if it_wait_log "$D/daemon1.log" "reload: detector pump: .* 1 rebuilt" 10 &&
   { pub $K $((K + 2)); K=$((K + 2)); } &&
   it_wait_log "$D/daemon1.log" "candidate $MID goes on in shadow \\(carried over" 10 &&
   ! grep -q "^put held" "$D/order.log"; then
    it_ok "rebuilt while the first file is held: candidate $MID carried over"
else
    it_fail "rebuilt while the first file is held: candidate $MID carried over" \
        "$(grep -iE 'candidate|reload' "$D/daemon1.log" | tail -4) | $(cat "$D/order.log" | grep put)"
fi
names() { grep -q "\"shadow\":{\"model_id\":\"$MID\"" "$D"/state/pump/pump1.state.json 2>/dev/null; }
both() { [ "$(puts)" -ge 2 ] && names; }
it_wait_until $((HOLD_MS / 1000 + 20)) both ||
    it_fail "both files written, the state names the second candidate" \
        "$(puts) files put; $(grep -o '"shadow":{"model_id":"[0-9a-f]*"' "$D"/state/pump/pump1.state.json)"
order_stop 1
order_start 2
pub $K $((K + 2)); K=$((K + 2))
if it_wait_log "$D/daemon2.log" "candidate $MID goes on in shadow" 20; then
    it_ok "after a restart the second candidate $MID goes on in shadow: its file is the one on disk"
else
    it_fail "after a restart the second candidate $MID goes on in shadow: its file is the one on disk" \
        "$(grep -i candidate "$D/daemon2.log" | tail -3)"
fi
[ -z "$(grep BAD "$D/order.log")" ] && it_ok "no state named a candidate whose file was not there" ||
    it_fail "no state named a candidate whose file was not there" "$(grep BAD "$D/order.log")"
order_stop 2
exit 0
