#!/bin/sh
# it_daemon_calib_held_restart.sh - a bootstrap stream whose calibration
# waits on windows above the training-error guard (it_daemon_calib_held.sh)
# is stopped (SIGTERM) during the wait and started again, against a real
# mosquitto: the first retained state the restarted daemon publishes shows
# the same wait as the last one before the stop (since when, the windows
# above the guard, the guard), and the wait goes on with the same
# fallback's count. Before, its "guard" was null until the first
# calibration window after the restart (the guard was taken only when a
# window was calibrated), and the restored stream (its own model restored
# with training off) counted calibration.windows toward the fallback
# instead of alert.accept_after: the wait ended with the model's threshold
# at the first window after the restart.
. tests/lib.sh
it_setup it_daemon_calib_held_restart
. tests/calib_held_lib.sh
it_broker_up
calib_held_conf it-calib-held-restart "$D/state"
it_daemon_up
calib_held_train
# the current 60 % up (a level the training never saw): the wait begins
calib_held_begin
it_daemon_stop
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=
# the first daemon's messages and log kept as sub1.jsonl, daemon1.log; a
# subscriber of its own for the restarted daemon's messages
mv "$D/sub.jsonl" "$D/sub1.jsonl"; mv "$D/daemon.log" "$D/daemon1.log"
BEFORE=$(wait_of "$D/sub1.jsonl")
it_sub_start
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_daemon_online 0 "daemon connects again"
# one more row of the level: the stream is restored from its state file
pubrows 215 216 --shift current:30:0
calib_held_in 1 "the row is in"
AFTER=$(wait_of "$D/sub.jsonl")
if $PYTHON -c '
import json, sys
b = json.loads(sys.argv[1])[1]
a = json.loads(sys.argv[2])[0]
ok = (b[0] == "calibrating" and b[1] and a[0] == "calibrating" and a[1] and
      b[1]["guard"] is not None and a[1]["guard"] == b[1]["guard"] and
      a[1]["since"] == b[1]["since"] and
      a[1]["windows_above_guard"] >= b[1]["windows_above_guard"])
sys.exit(0 if ok else 1)' "$BEFORE" "$AFTER"; then
    it_ok "the first retained state after the restart shows the same wait (its guard, since when, the windows above it): $AFTER"
else
    it_fail "the first retained state after the restart shows the same wait (its guard, since when, the windows above it)" \
        "before the stop (last): $BEFORE; after the restart (first, last): $AFTER"
fi
# and the wait goes on after the restart: the model's threshold after
# alert.accept_after (150) windows above the guard, as before it (the
# restored model is the one the stream trained); before, the restored
# stream counted calibration.windows (30) and took the model's threshold
# at the next window
if $PYTHON -c '
import json, sys
a, l = json.loads(sys.argv[1])
ok = (a[1] and a[1]["fallback_after_windows"] == 150 and
      a[1]["windows_to_fallback"] == 150 - a[1]["windows_above_guard"] -
                                     a[1]["windows_flagged"] > 0 and
      l[0] == "calibrating" and l[1])
sys.exit(0 if ok else 1)' "$AFTER"; then
    it_ok "the wait goes on after the restart (fallback after 150 windows, still calibrating)"
else
    it_fail "the wait goes on after the restart (fallback after 150 windows, still calibrating)" \
        "after the restart (first, last): $AFTER; $(grep -i calibration "$D/daemon.log" | tail -3)"
fi
# a reload (SIGHUP) with an alert rule changed during the wait: the stream
# is rebuilt from its state as at a restart, and waits on the same way
N2=$(wc -l < "$D/sub.jsonl")
calib_held_reload
pubrows 216 218 --shift current:30:0
calib_held_in 3
RELOADED=$(tail -n +"$((N2 + 1))" "$D/sub.jsonl" > "$D/sub3.jsonl"; wait_of "$D/sub3.jsonl")
if $PYTHON -c '
import json, sys
b = json.loads(sys.argv[1])[1]
l = json.loads(sys.argv[2])[1]
ok = (l[0] == "calibrating" and l[1] and l[1]["guard"] == b[1]["guard"] and
      l[1]["since"] == b[1]["since"] and l[1]["fallback_after_windows"] == 150 and
      l[1]["windows_to_fallback"] > 0)
sys.exit(0 if ok else 1)' "$AFTER" "$RELOADED"; then
    it_ok "the wait goes on after a reload (SIGHUP): $RELOADED"
else
    it_fail "the wait goes on after a reload (SIGHUP)" \
        "after the reload: $RELOADED; $(grep -i "calibration\|reload" "$D/daemon.log" | tail -4)"
fi
it_daemon_stop
exit 0
