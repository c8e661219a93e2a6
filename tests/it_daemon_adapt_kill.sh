#!/bin/sh
# it_daemon_adapt_kill.sh - continual learning's own state survives a
# kill -9: the drift baseline taken at a fine-tune and the decisions
# counted are in the stream's state file once the candidate is in shadow
# or decided, not only after a promotion or a drift notice (a daemon killed
# with only rejections since its last promotion lost its baseline and took
# a new one at its next fine-tune, on data that may have drifted already).
. tests/lib.sh
it_setup it_daemon_adapt_kill
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-kill", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 60, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up --log-level info
START=$(( $(date +%s) - 1100 * 60 ))
. tests/adapt_lib.sh
K=0
pub 0 160; K=160
if ! feed_until shadow; then
    it_fail "a fine-tuned candidate goes into shadow" "$(tail -5 "$D/daemon.log")"; exit 1
fi
ref1=$(refr "$D/sub.jsonl")
# the state file is written on the thread pool: give it a second, then kill
sleep 1
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
mv "$D/daemon.log" "$D/daemon1.log"
mv "$D/sub.jsonl" "$D/sub1.jsonl"     # adapt_lib.sh's helpers read sub.jsonl
it_sub_start
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
it_daemon_online 0 "daemon restarts"
pub $K $((K + 10)); K=$((K + 10))
# the restored stream's own state (not the one the broker kept retained)
live_ref() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
r = "none"
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1" and not m.get("retain"):
        v = json.loads(m["payload"]).get("adapt", {}).get("reference_ratio")
        r = repr(float(v)) if isinstance(v, (int, float)) else "null"
print(r)
EOP
}
has_live() { [ "$(live_ref)" != none ]; }
it_wait_until 20 has_live
ref2=$(live_ref)
if [ "$ref1" != none ] && [ "$ref2" = "$ref1" ]; then
    it_ok "kill -9 with a candidate in shadow: the drift baseline is kept (reference_ratio $ref2)"
else
    it_fail "kill -9 with a candidate in shadow: the drift baseline is kept" "before $ref1, after $ref2"
fi
# a decision: the state file counts it at once (the learner's promotions
# and rejections, from which a restart's state topic counts on)
feed_until promoted rejected >/dev/null
ndec() { # decisions on the events topic since the restart, and in the state file
    $PYTHON - "$D/sub.jsonl" "$D/state/pump/pump1.state.json" <<'EOP'
import json, sys
n = 0
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1/events" and \
            json.loads(m["payload"]).get("decision") in ("promoted", "rejected"):
        n += 1
try:
    a = json.load(open(sys.argv[2])).get("adapt", {})
    f = a.get("promotions", 0) + a.get("rejections", 0)
except (OSError, ValueError):
    f = -1
print(n, f)
EOP
}
same() { set -- $(ndec); [ "$1" -ge 1 ] && [ "$1" = "$2" ]; }
if it_wait_until 10 same; then
    it_ok "after a decision the state file counts it ($(ndec | cut -d' ' -f2) decisions)"
else
    it_fail "after a decision the state file counts it" "events, file: $(ndec)"
fi
it_daemon_stop
exit 0
