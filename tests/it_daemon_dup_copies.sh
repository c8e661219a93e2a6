#!/bin/sh
# it_daemon_dup_copies.sh - a stream whose every message comes twice (two
# subscriptions or redundant gateways deliver it), against a real
# mosquitto, for over two minutes: the daemon says so once, not at the
# bad-input rate (10 warnings a minute for good, then "N more bad-input
# messages were not logged", drowning real bad input); the copies stay
# counted in the retained state (rejected.duplicate, rejected.copies). A
# device whose clock stopped (messages stamped with one time, other values)
# is still warned of as before. The same with rows.mode "all" (each
# message split into samples aligned into rows; its row out at once): the
# copies count as copies, not as late samples (before, every copy was
# "dropped as late", rejected.late).
. tests/lib.sh
it_setup it_daemon_dup_copies
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dup-copies", "stats_interval_s": 0.5},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "pumpall", "model": "$MODEL", "topics": ["sensorsall/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "rows": {"mode": "all"}, "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up
# pub.py TOPIC ROWS EVERY_S [STOP]: ROWS pump rows a minute apart (times
# in the past), each published twice, one every EVERY_S seconds; STOP: from
# that row on each is stamped with the time of the row before (a device
# clock that stopped: other values, one time), and sent once
cat > "$D/pub.py" <<'EOP'
import json, sys, time
from it_daemon_mqtt import load_pumpsim, connect
port, topic, rows, every = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
stop = int(sys.argv[5]) if len(sys.argv) > 5 else None
sim = load_pumpsim().PumpSim(7, 60.0, time.time() - rows * 60.0 - 3600, [])
c = connect(port)
last = None
for k in range(rows):
    ts, row, _ = sim.step()
    msg = {s: round(v, 4) for s, v in row.items()}
    if stop is not None and k >= stop:
        msg["ts"] = last
        copies = 1
    else:
        msg["ts"] = last = int(round(ts * 1000))
        copies = 1 if stop is not None else 2
    for _ in range(copies):
        c.publish(topic, json.dumps(msg), qos=1).wait_for_publish(30)
    time.sleep(every)
c.disconnect(); c.loop_stop()
EOP
# the stream with copies: 260 rows, 0.5 s apart (over two minutes); the
# stopped clock: 20 rows, then 4 stamped with the 20th's time
it_py "$D/pub.py" "$IT_PORT" sensors/pump1/pump 260 0.5 & PUB=$!
# the same in mode all: 200 rows, 0.5 s apart, each twice
it_py "$D/pub.py" "$IT_PORT" sensorsall/pump3/pump 200 0.5 & PUB3=$!
sleep 5
it_py "$D/pub.py" "$IT_PORT" sensors/pump2/pump 24 0.2 20
wait "$PUB" "$PUB3"
N1=$(grep -E "stream pump1" "$D/daemon.log" | grep -cE "duplicate|copies")
MORE=$(grep -c "more bad-input messages were not logged" "$D/daemon.log")
if [ "$N1" -le 1 ] && [ "$MORE" = 0 ] &&
   grep -q "stream pump1 receives copies of its messages" "$D/daemon.log"; then
    it_ok "every message twice for over two minutes: said once ($N1 line, none suppressed)"
else
    it_fail "every message twice for over two minutes: said once" \
        "$N1 lines about pump1's copies, $MORE suppressed-count lines: $(grep -E 'pump1|bad-input' "$D/daemon.log" | tail -3)"
fi
grep -q "stream pump2: [0-9]* sample(s) dropped as duplicates" "$D/daemon.log" &&
    it_ok "a device clock that stopped is still warned of" ||
    it_fail "a device clock that stopped is still warned of" "$(grep pump2 "$D/daemon.log" | tail -3)"
# counts: pump1's and pump2's rejected duplicate and copies in their last
# retained state
counts() {
    it_py - "$D/sub.jsonl" <<'EOP'
import sys
from it_daemon_mqtt import last_states
rj = {s: p.get("rejected", {}) for s, p in last_states(sys.argv[1]).items()}
a, b = rj.get("pump1", {}), rj.get("pump2", {})
print(a.get("duplicate", 0), a.get("copies", 0), b.get("duplicate", 0), b.get("copies", 0))
EOP
}
counted() { set -- $(counts); [ "${1:-0}" -ge 500 ] && [ "$1" = "$2" ]; }
it_wait_stats    # the last retained state
it_wait_until 10 counted
counts3() {
    it_py - "$D/sub.jsonl" <<'EOP'
import sys
from it_daemon_mqtt import last_states
r = last_states(sys.argv[1], "anomalyd/state/pumpall/").get("pump3", {}).get("rejected", {})
print(r.get("duplicate", 0), r.get("copies", 0), r.get("late", 0))
EOP
}
counted3() { set -- $(counts3); [ "${1:-0}" -ge 100 ] && [ "$1" = "$2" ]; }
it_wait_until 10 counted3
set -- $(counts3)
L3=$(grep "stream pump3" "$D/daemon.log" | grep -c "dropped as late")
if [ "${1:-0}" -ge 100 ] && [ "$1" = "$2" ] && [ "${3:-x}" = 0 ] && [ "$L3" = 0 ] &&
   grep -q "stream pump3 receives copies of its messages" "$D/daemon.log"; then
    it_ok "mode all, every message twice: copies, not late (duplicate $1, copies $2, late $3)"
else
    it_fail "mode all, every message twice: copies, not late" \
        "pump3 duplicate/copies/late ${1:-?}/${2:-?}/${3:-?} (want >= 100, equal, 0), $L3 lines 'dropped as late': $(grep pump3 "$D/daemon.log" | tail -3)"
fi
set -- $(counts)
# pump1: 5 values a copy; only the ones before its last retained state (a
# minute apart at most) are in it (pump2's come within a minute of its
# first: not yet)
if [ "${1:-0}" -ge 500 ] && [ "$1" = "$2" ]; then
    it_ok "the retained state counts them: pump1 duplicate $1, copies $2"
else
    it_fail "the retained state counts them" \
        "pump1 duplicate/copies ${1:-?}/${2:-?} (want >= 500, equal)"
fi
it_daemon_stop
exit 0
