#!/bin/sh
# it_daemon_units.sh - the stats count samples in one unit, feature values,
# with a real broker: JSON rows of 5 features (rows mode), ten of them late
# and two in the future. samples counts 5 per row; a late or future row
# refused whole counts its 5 values in samples_late / samples_future /
# dropped_samples (per detector and in total) and in the stream state's
# rejected.late / rejected.future, and the Prometheus file says the same
# (anomalyd_samples_total, anomalyd_dropped_samples_total).
. tests/lib.sh
it_setup it_units
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-units", "stats_interval_s": 1,
            "reconnect_min_s": 0.2},
 "workers": 1, "metrics": {"textfile": "$D/anomalyd.prom"}, "commands": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "quality": {"enabled": false},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
$H sub --port "$IT_PORT" --topic '#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"

NOW=$(date +%s)
$H pub --port "$IT_PORT" --devices 1 --rows 30 --start $((NOW - 3600))      # 30 rows
$H pub --port "$IT_PORT" --devices 1 --rows 10 --start $((NOW - 7200))      # 10 late rows
$H pub --port "$IT_PORT" --devices 1 --rows 2 --start $((NOW + 7200))       # 2 in the future
# the last stats message once samples reached 42 rows x 5 values
if ! $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=210 --timeout 15 >/dev/null; then
    it_fail "42 rows of 5 values counted as 210 samples" \
        "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1 | cut -c1-400)"
fi
# a command republishes the stream's state at once (rejections alone
# refresh it at most once a minute); one more stats tick for the prom file
$PYTHON tests/it_ops.py cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump1 \
    --payload '{"command":"freeze"}' --reply-topic anomalyd/reply/pump/pump1 >/dev/null
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 frozen=True --timeout 5 >/dev/null
sleep 1.5
$PYTHON - "$D/sub.jsonl" <<'PY'
import json, sys
stats = state = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        stats = json.loads(m["payload"])
    elif m["topic"] == "anomalyd/state/pump/pump1" and m["payload"]:
        state = json.loads(m["payload"])
d = stats["detectors"][0]
got = (stats["samples"], stats["dropped_samples"], d["samples_late"], d["samples_future"],
       d["dropped_samples"])
want = (210, 60, 50, 10, 60)
print(("ok" if got == want else "not ok") +
      " - stats: samples %d, dropped_samples %d; detector: samples_late %d, samples_future %d, "
      "dropped_samples %d (want %s: 5 values a row)" % (got + (want,)))
r = state["rejected"]
print(("ok" if (r["late"], r["future"]) == (50, 10) else "not ok") +
      " - stream state: rejected.late %d, rejected.future %d (want 50, 10)" % (r["late"], r["future"]))
PY
P="$D/anomalyd.prom"
s=$(awk '$1 == "anomalyd_samples_total" { print $2 }' "$P")
x=$(awk '$1 == "anomalyd_dropped_samples_total" { print $2 }' "$P")
[ "$s" = 210 ] && [ "$x" = 60 ] &&
    it_ok "metrics file: anomalyd_samples_total $s, anomalyd_dropped_samples_total $x" ||
    it_fail "metrics file: anomalyd_samples_total 210, anomalyd_dropped_samples_total 60" "$s $x"
grep -q "detector pump: stream pump1: 5 sample(s) dropped as late" "$D/daemon.log" &&
    it_ok "log: a late row is 5 samples dropped" ||
    it_fail "log: a late row is 5 samples dropped" "$(grep -i late "$D/daemon.log" | head -2)"
it_daemon_stop
exit 0
