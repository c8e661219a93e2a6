#!/bin/sh
# it_daemon_regime.sh - regime acceptance live, against a real mosquitto:
# a pump whose pressure drops 0.6 bar for good raises one alert, which is
# closed as accepted after alert.accept_after_ms (1 h of one-minute rows:
# 60 windows, as the state topic and the log say); the stream's events topic
# carries regime_accepted with the regime's threshold, the state topic shows
# the regime; more rows of the new level raise nothing; a vibration fault on
# top of it still alerts; the accepted regime survives a restart.
. tests/lib.sh
it_setup it_daemon_regime
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-regime", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 1,
 "metrics": {"textfile": "$D/anomalyd.prom"},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "alert": {"k": 3, "n": 5, "m": 10, "clear_ratio": 0.8,
             "accept_after_ms": 3600000, "accept_spread": 50,
             "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up --log-level info
START=$(( $(date +%s) - 1000 * 60 ))
# pub FROM TO: simulator rows FROM..TO-1 of pump1, one a minute from START;
# from row 200 pressure reads 0.6 bar low (the new level), from row FAULT
# vibration reads 1.6x (a fault on another sensor)
FAULT=100000
pub() {
    it_py - "$IT_PORT" "$START" "$1" "$2" "$FAULT" <<'EOP'
import json, sys, os
from it_daemon_mqtt import load_pumpsim, connect
ps = load_pumpsim()
port, start, k0, k1, fault = (int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]),
                              int(sys.argv[4]), int(sys.argv[5]))
sim = ps.PumpSim(3, 60.0, start, [])
c = connect(port)
infos = []
for k in range(k1):
    ts, row, _ = sim.step()
    if k < k0:
        continue
    if k >= 200:
        row["pressure"] -= 0.6
    if k >= fault:
        row["vibration"] *= 1.6
    msg = {s: round(v, 4) for s, v in row.items()}
    msg["ts"] = int(round(ts * 1000))
    infos.append(c.publish("sensors/pump1/pump", json.dumps(msg), qos=1))
for i in infos:
    i.wait_for_publish(30)
c.disconnect(); c.loop_stop()
EOP
}
# alerts EVENT [REASON]: how many model alert messages of pump1 say so
alerts() {
    $PYTHON - "$D/${SUB:-sub}.jsonl" "$1" "${2:-}" <<'EOP'
import json, sys
n = 0
for line in open(sys.argv[1]):
    m = json.loads(line)
    if not m["topic"].startswith("anomalyd/alerts/pump/pump1"):
        continue
    j = json.loads(m["payload"])
    if j.get("event") == sys.argv[2] and (not sys.argv[3] or j.get("reason") == sys.argv[3]):
        n += 1
print(n)
EOP
}
pub 0 200
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
    --timeout 20 >/dev/null || { it_fail "the stream calibrates" "$(tail -5 "$D/daemon.log")"; exit 1; }
pub 200 330
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events \
       event=regime_accepted --timeout 20 >/dev/null; then
    it_ok "the new pressure level is accepted: regime_accepted on the stream's events topic"
else
    it_fail "the new pressure level is accepted" "$(grep -i "alert\|regime" "$D/daemon.log" | tail -5)"
    exit 1
fi
thr=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1/events":
        j = json.loads(m["payload"])
        if j.get("event") == "regime_accepted":
            print(j["threshold"], j["prev_threshold"], j["windows"])
EOP
)
set -- $thr
if [ "$(alerts raised)" = 1 ] && [ "$(alerts cleared accepted)" = 1 ] && [ "${3:-}" = 60 ] &&
   $PYTHON -c "import sys; sys.exit(not (float('$1') > float('$2') > 0))"; then
    it_ok "one alert, closed as accepted after 60 windows; regime threshold $1 over the threshold $2"
else
    it_fail "one alert, closed as accepted; regime threshold over the threshold" \
        "raised $(alerts raised), accepted $(alerts cleared accepted), event: $thr"
fi
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 regime.accepted=1 \
       state=normal --timeout 10 >/dev/null; then
    it_ok "the state topic shows the accepted regime"
else
    it_fail "the state topic shows the accepted regime" "$(grep '"regime"' "$D/sub.jsonl" | tail -1)"
fi
# accept_after_ms 1 h of one-minute rows: 60 windows, the period 60 s
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 regime.accept_after=60 \
       regime.window_s=60 --timeout 10 >/dev/null &&
   grep -q "a window every 60 s of data: alert.accept_after 60 windows = 1 h" "$D/daemon.log"; then
    it_ok "alert.accept_after_ms 1 h: 60 windows of this stream's 60 s (state topic, log)"
else
    it_fail "alert.accept_after_ms 1 h: 60 windows of this stream's 60 s (state topic, log)" \
        "$(grep '"regime"' "$D/sub.jsonl" | tail -1); $(grep 'window every' "$D/daemon.log")"
fi
# the Prometheus text file counts the regime (written every stats interval)
prom_ok=0
for i in $(seq 1 40); do
    if grep -qx 'anomalyd_detector_regimes_accepted{detector="pump"} 1' "$D/anomalyd.prom" 2>/dev/null &&
       grep -qx 'anomalyd_detector_regimes_remembered{detector="pump"} 1' "$D/anomalyd.prom"; then
        prom_ok=1
        break
    fi
    sleep 0.25
done
if [ $prom_ok = 1 ]; then
    it_ok "the metrics file counts the accepted and remembered regime"
else
    it_fail "the metrics file counts the accepted and remembered regime" \
        "$(grep regime "$D/anomalyd.prom" 2>&1 | head -4)"
fi
pub 330 450
sleep 2
if [ "$(alerts raised)" = 1 ]; then
    it_ok "120 more rows of the new level raise nothing"
else
    it_fail "120 more rows of the new level raise nothing" "raised $(alerts raised)"
fi

# restart: the regime comes back from the state file
it_daemon_stop
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --count 2 --timeout 20 \
    >/dev/null || { it_fail "daemon restarts" "$(cat "$D/daemon2.log")"; exit 1; }
pub 450 560
sleep 2
if [ "$(alerts raised)" = 1 ]; then
    it_ok "after a restart the new level still raises nothing (the regime was restored)"
else
    it_fail "after a restart the new level still raises nothing" \
        "raised $(alerts raised); $(grep -i "regime\|alert" "$D/daemon2.log" | tail -3)"
fi
FAULT=560
pub 560 600
REGIME_THR=$1
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised \
       --count 2 --timeout 20 >/dev/null; then
    score=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
s = [json.loads(m["payload"]) for m in map(json.loads, open(sys.argv[1]))
     if m["topic"].startswith("anomalyd/alerts/pump/pump1")]
print([j["score"] for j in s if j.get("event") == "raised"][-1])
EOP
)
    # below the regime's threshold: it alerts because it is not the regime
    if $PYTHON -c "import sys; sys.exit(not (float('$score') < float('$REGIME_THR')))"; then
        it_ok "a vibration fault on the new level alerts (score $score, under the regime's threshold $REGIME_THR)"
    else
        it_fail "a vibration fault under the regime's threshold alerts" \
            "score $score, regime threshold $REGIME_THR"
    fi
else
    it_fail "a vibration fault on the new level alerts" "raised $(alerts raised)"
fi
