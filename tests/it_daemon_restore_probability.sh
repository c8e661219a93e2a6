#!/bin/sh
# it_daemon_restore_probability.sh - with alert.on "probability" the
# anomaly probability's history is kept in the stream's state: a restart
# in the middle of a stream gives, after it, the probabilities and alerts
# the stream gives without the restart. The same 420 rows of one pump
# (calibration 100 windows, window 30: detecting from row 129), a
# cavitation fault from row 330; run A straight through, run B stopped
# (SIGTERM) after row 299 and restarted for rows 300..419. Before the
# history was kept, the restarted stream had an empty history: p = 0.5
# for its first 50 windows (the fault 30 windows after the restart went
# unseen), then probabilities measured on a few dozen averages.
. tests/lib.sh
it_setup it_restore_prob
it_broker_up

# config STATE_DIR: one detector, alerts on the probability
config() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-restore-prob", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$1", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"on": "probability", "probability_history": 200,
             "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}

# the model alert events of pump1 in FILE from data time FROM_MS on, one
# line each: event ts probability log_likelihood peak_probability
events() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
        j = json.loads(m["payload"])
    except (ValueError, KeyError):
        continue
    if not isinstance(j, dict) or j.get("stream") != "pump1" or "alert_id" not in j or \
            "event" not in j or j.get("kind", "model") != "model" or m.get("retain"):
        continue
    if j["time_ms"] < int(sys.argv[2]):
        continue
    print(j["event"], j["time_ms"], repr(j.get("probability")), repr(j.get("log_likelihood")),
          repr(j.get("peak_probability")))
EOP
}

# start the daemon (log FILE) and wait until it is online
start() {
    : > "$D/sub.jsonl"
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$1" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
}

# stop once WINDOWS windows have been scored since the start
stop_after() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=$1 \
        --timeout 60 >/dev/null || echo "# not all $1 windows scored"
    kill -TERM "$DPID"; wait "$DPID"; DPID=
}

S=$(( $(date +%s) - 500 * 60 ))
FAULT='cavitation@330m+60m'
it_sub_start

# run A: straight through (391 windows)
config "$D/a"
start "$D/a.log"
$H pub --port "$IT_PORT" --devices 1 --rows 420 --start "$S" --fault "$FAULT"
stop_after 391
cp "$D/sub.jsonl" "$D/a.jsonl"

# run B: 300 rows (271 windows), restart, rows 300..419 (120 windows: the
# window rows saved at stop continue)
config "$D/b"
start "$D/b1.log"
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start "$S" --fault "$FAULT"
stop_after 271
start "$D/b2.log"
$H pub --port "$IT_PORT" --devices 1 --rows 420 --start-row 300 --start "$S" --fault "$FAULT"
stop_after 120
cp "$D/sub.jsonl" "$D/b.jsonl"

# the restart is at row 299's data time: compare what follows it
T0=$(( (S + 300 * 60) * 1000 ))
events "$D/a.jsonl" "$T0" > "$D/a.ev"
events "$D/b.jsonl" "$T0" > "$D/b.ev"
sed 's/^/# without restart: /' "$D/a.ev"
sed 's/^/# with restart:    /' "$D/b.ev"
if grep -q "^raised" "$D/a.ev"; then
    it_ok "without a restart: the fault raises an alert on the probability"
else
    it_fail "without a restart: the fault raises an alert on the probability" \
        "$(grep -i -e alert -e calibrat "$D/a.log" | head -5)"
fi
if grep -q "pump/pump1: calibration restored" "$D/b2.log" &&
   ! grep -q "probability history ignored" "$D/b2.log"; then
    it_ok "restart: calibration and probability history restored"
else
    it_fail "restart: calibration and probability history restored" \
        "$(grep -e pump1 "$D/b2.log" | head -5)"
fi
# the same events at the same times, their figures within a tolerance: a
# window's score can differ in the last bit of a float with the batch it
# is scored in (OpenBLAS picks its kernel by the matrix size; on AVX-512
# machines a batch of 1 and of 2+ differ by up to 6e-8 in an output),
# and the restart changes which windows share a batch. Probabilities
# within 1e-9, log-likelihoods within 1e-6 relative (seen: 3e-8).
same_events() {
    $PYTHON - "$1" "$2" <<'EOP'
import math, sys
a = [l.split() for l in open(sys.argv[1])]
b = [l.split() for l in open(sys.argv[2])]
def close(x, y, rel, ab):
    if x == y:
        return True
    try:
        x, y = float(x), float(y)
    except ValueError:
        return False
    return abs(x - y) <= max(ab, rel * max(abs(x), abs(y)))
ok = len(a) == len(b) > 0 and all(
    p[0] == q[0] and p[1] == q[1] and close(p[2], q[2], 0, 1e-9) and
    close(p[3], q[3], 1e-6, 1e-9) and close(p[4], q[4], 0, 1e-9) for p, q in zip(a, b))
sys.exit(0 if ok else 1)
EOP
}
if [ -s "$D/a.ev" ] && same_events "$D/a.ev" "$D/b.ev"; then
    it_ok "restart: the alerts after it and their probabilities are those without the restart ($(wc -l < "$D/a.ev") events; probabilities within 1e-9)"
else
    it_fail "restart: the alerts after it and their probabilities are those without the restart" \
        "$(diff "$D/a.ev" "$D/b.ev" | head -10)"
fi
exit 0
