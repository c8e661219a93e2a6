#!/bin/sh
# it_daemon_calib_held.sh - a stream that trained its own model (training
# bootstrap) whose data leaves the training level as calibration begins,
# against a real mosquitto: its calibration windows score above the
# training-error guard, and it waits (up to alert.accept_after windows) for
# normal windows before it would take the model's threshold. A fault under
# way is not alerted on meanwhile; the retained state says so (its
# "calibration"'s "wait": why, since when, the windows above the guard so far, the
# fallback's count and how many windows are left to it), and an event
# (calibration_held) goes to <state topic>/events when the wait begins and
# when it ends (here: calibrated, on the normal windows after the level
# came back). Before, only a log line said so; the state said "calibrating".
. tests/lib.sh
it_setup it_daemon_calib_held
. tests/calib_held_lib.sh
it_broker_up
calib_held_conf it-calib-held
it_daemon_up
calib_held_train
# the current 60 % up (a level the training never saw), 90 rows
pubrows 125 215 --shift current:30:0
held() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events \
        event=calibration_held calibration="$1" --timeout "${2:-0.1}" > /dev/null
}
# last_state: the last retained state's calibration object of pump1
last_state() {
    it_py - "$D/sub.jsonl" <<'EOP'
import json, sys
from it_daemon_mqtt import last_states
p = last_states(sys.argv[1]).get("pump1")
print(json.dumps(p and (p.get("phase"), p.get("calibration", {}).get("wait", "absent"))))
EOP
}
if held held 15; then
    it_ok "the wait begins: an event on the state topic's events (calibration held)"
else
    it_fail "the wait begins: an event on the state topic's events (calibration held)" \
        "$(grep -i calibration "$D/daemon.log" | tail -3)"
fi
held_ok() {    # held_ok STATE: last_state's STATE says the calibration is held
    $PYTHON -c '
import json, sys
ph, c = json.loads(sys.argv[1]) or (None, None)
ok = (ph == "calibrating" and c and c["since"] and
      c["windows_above_guard"] >= 30 and c["fallback_after_windows"] == 150 and
      c["windows_to_fallback"] == 150 - c["windows_above_guard"] and c["guard"] > 0 and
      "guard" in c["reason"])
sys.exit(0 if ok else 1)' "$1"
}
held_now() { held_ok "$(last_state)"; }
detecting_now() { [ "$(last_state)" = '["detecting", null]' ]; }
# the retained state published after the event (stats_interval_s 0.5)
it_wait_until 10 held_now
S=$(last_state)
if held_ok "$S"; then
    it_ok "the retained state says it is held: $S"
else
    it_fail "the retained state says it is held (why, since when, how many, the fallback)" "$S"
fi
# back to the training level: calibrated on the normal windows
pubrows 215 300
if held calibrated 15; then
    it_ok "the wait ends: an event says it calibrated"
else
    it_fail "the wait ends: an event says it calibrated" "$(grep -i calibrat "$D/daemon.log" | tail -3)"
fi
it_wait_until 10 detecting_now
S=$(last_state)
case "$S" in
    '["detecting", null]') it_ok "the retained state: detecting, no calibration held" ;;
    *) it_fail "the retained state: detecting, no calibration held" "$S" ;;
esac
it_daemon_stop
exit 0
