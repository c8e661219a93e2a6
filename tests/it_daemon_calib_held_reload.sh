#!/bin/sh
# it_daemon_calib_held_reload.sh - a bootstrap stream whose calibration
# waits on windows above the training-error guard (it_daemon_calib_held.sh)
# is rebuilt by a reload (SIGHUP, an alert rule changed) during the wait,
# without a restart first (it_daemon_calib_held_restart.sh reloads a stream
# a restart restored): the rebuilt stream, its own model restored from the
# state directory with training off, waits on as before the reload (the
# same guard, since when, fallback after alert.accept_after windows), its
# model not trained again.
. tests/lib.sh
it_setup it_daemon_calib_held_reload
. tests/calib_held_lib.sh
it_broker_up
calib_held_conf it-calib-held-reload "$D/state"
it_daemon_up
calib_held_train
# the trained model's file in the state directory (written by a worker)
model_saved() { [ -n "$(ls "$D/state/pump/" 2>/dev/null | grep -v state.json)" ]; }
it_wait_until 10 model_saved
calib_held_begin
BEFORE=$(wait_of "$D/sub.jsonl")
N=$(wc -l < "$D/sub.jsonl")
calib_held_reload
pubrows 215 218 --shift current:30:0
calib_held_in 218
RELOADED=$(tail -n +"$((N + 1))" "$D/sub.jsonl" > "$D/sub2.jsonl"; wait_of "$D/sub2.jsonl")
if $PYTHON -c '
import json, sys
b = json.loads(sys.argv[1])[1]
l = json.loads(sys.argv[2])[1]
ok = (b[0] == "calibrating" and b[1] and l[0] == "calibrating" and l[1] and
      l[1]["guard"] == b[1]["guard"] and l[1]["since"] == b[1]["since"] and
      l[1]["fallback_after_windows"] == 150 and l[1]["windows_to_fallback"] > 0 and
      l[1]["windows_above_guard"] >= b[1]["windows_above_guard"])
sys.exit(0 if ok else 1)' "$BEFORE" "$RELOADED"; then
    it_ok "a stream rebuilt by a reload during its wait waits on: $RELOADED"
else
    it_fail "a stream rebuilt by a reload during its wait waits on" \
        "before: $BEFORE; after the reload: $RELOADED; $(grep -i "calibration\|reload\|model" "$D/daemon.log" | tail -6)"
fi
if [ "$(grep -c "model trained online$" "$D/daemon.log")" -eq 1 ] &&
   grep -q "reusing the model trained online" "$D/daemon.log"; then
    it_ok "its model is not trained again"
else
    it_fail "its model is not trained again" "$(grep -i "train" "$D/daemon.log" | tail -4)"
fi
it_daemon_stop
exit 0
