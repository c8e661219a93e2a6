#!/bin/sh
# it_daemon_reload_topics.sh - a reload that changes a detector's topics.
# A stream whose device's topics are no longer subscribed gets no more
# data: it must go at once, as a stream whose key a stream_levels change
# removes (an alert it holds open cleared with reason reload, its retained
# state emptied, its Home Assistant entities deleted), not linger until
# idle eviction. What tells is the topics its messages came on, each
# against the new filters: a stream still fed by one of them stays as it is.
#  1. detector pump (JSON, one topic a device): "plant/#" ->
#     "plant/pump2/#", "plant/+/status": pump1 (plant/pump1/data) is
#     removed, its alert cleared; pump2 (plant/pump2/data, under a wildcard
#     that still matches) keeps its stream, state, entities and open alert.
#     Detector cell (a number a topic, cell/<device>/<sensor>): "cell/#" ->
#     "cell/+/temperature": stream pump3 (first message on
#     cell/pump3/vibration) still gets its temperature topic: kept.
#  2. the topics are kept in the state file: after a restart, pump2 is
#     restored for its open alert and sends nothing; a reload to topics that
#     still match it keeps it, one to topics that do not removes it (alert
#     cleared, reason reload, state emptied).
. tests/lib.sh
it_setup it_reload_topics
it_broker_up

# conf PUMP_TOPICS CELL_TOPICS
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-topics", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state", "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": $1,
   "stream_levels": [1], "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "cell", "model": "$MODEL", "topics": $2,
   "stream_levels": [1], "idle_evict_s": 3600, "payload": {"format": "number"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# reload PUMP_TOPICS CELL_TOPICS N: the Nth reload of this daemon
reload() {
    conf "$1" "$2"
    kill -HUP "$DPID"
    it_wait_log "$D/daemon.log" 'configuration reloaded' 20 "$3" ||
        it_fail "reload to topics $1 $2" "$(tail -3 "$D/daemon.log")"
}
start() {
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
# fresh TAG: what a new subscriber gets (retained states, HA binary sensor configs)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/binary_sensor/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
shown() { grep -q "^$1 {" "$D/fresh$2.txt"; }
# the retained state of STREAM (detector pump) in fresh TAG shows an open alert
alert_shown() { grep -q "^anomalyd/state/pump/$1 {.*\"state\":\"alert\"" "$D/fresh$2.txt"; }
events() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/alerts/"):
        j = json.loads(m["payload"])
        if j.get("stream") == sys.argv[2] and j.get("kind") == "model":
            print(j["event"], j.get("reason", "-"), j["alert_id"])
EOP
}

conf '["plant/#"]' '["cell/#"]'
it_sub_start
sleep 0.3
start
START=$(( $(date +%s) - 800 * 60 ))
F='cavitation@300m+300m'
$H pub --port "$IT_PORT" --devices 2 --rows 360 --start "$START" --fault "$F" \
    --fault-devices pump1,pump2 --topic 'plant/{device}/data'
$H pub --port "$IT_PORT" --format number --devices 3 --rows 3 --fault-devices none \
    --topic 'cell/{device}/{sensor}'
for p in pump1 pump2; do
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/$p event=raised --timeout 20 >/dev/null ||
        it_fail "alert raised on $p" "$(tail -3 "$D/daemon.log")"
done
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/cell/pump3 --timeout 10 >/dev/null ||
    it_fail "stream cell/pump3 announced" "$(tail -3 "$D/daemon.log")"

# ---- 1. topics narrowed -------------------------------------------------------------------
reload '["plant/pump2/#", "plant/+/status"]' '["cell/+/temperature"]' 1
fresh 1
if ! shown anomalyd/state/pump/pump1 1 &&
   ! shown homeassistant/binary_sensor/it-topics/pump_pump1/config 1; then
    it_ok "1: pump1, whose topic no longer matches: no retained state or Home Assistant entity left"
else
    it_fail "1: pump1, whose topic no longer matches: no retained state or Home Assistant entity left" \
        "a new subscriber still gets: $(grep -E 'pump/pump1 |pump_pump1/config ' "$D/fresh1.txt" | cut -c1-100 | tr '\n' ';')"
fi
ev=$(events pump1)
if echo "$ev" | grep -q '^cleared reload '; then
    it_ok "1: the alert pump1 held open is cleared, reason reload"
else
    it_fail "1: the alert pump1 held open is cleared, reason reload" "events of pump1: $(echo "$ev" | tr '\n' ';')"
fi
ev=$(events pump2)
if alert_shown pump2 1 && shown homeassistant/binary_sensor/it-topics/pump_pump2/config 1 &&
   [ -z "$(echo "$ev" | grep cleared)" ]; then
    it_ok "1: pump2, still matched by a wildcard: stream, state, entities and its open alert stay"
else
    it_fail "1: pump2, still matched by a wildcard: stream, state, entities and its open alert stay" \
        "$(grep -E 'pump/pump2 |pump_pump2/config ' "$D/fresh1.txt" | cut -c1-100 | tr '\n' ';') events: $(echo "$ev" | tr '\n' ';')"
fi
if shown anomalyd/state/cell/pump3 1 && ! grep -q 'stream pump3.*removed' "$D/daemon.log"; then
    it_ok "1: cell/pump3, fed on one topic a sensor, one of which still matches: kept"
else
    it_fail "1: cell/pump3, fed on one topic a sensor, one of which still matches: kept" \
        "$(grep -E 'pump3' "$D/daemon.log" | tail -3)"
fi
grep -E "topics changed|removed$" "$D/daemon.log" | sed "s/^/# /"
# pump2 still runs: its next rows are scored
$H pub --port "$IT_PORT" --devices 2 --rows 370 --start-row 360 --start "$START" --fault "$F" \
    --fault-devices pump1,pump2 --topic 'plant/{device}/data'
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ---- 2. after a restart: the topics from the state file --------------------------------------
if grep -q '"topics":\["plant/pump2/data"\]' "$D/state/pump/pump2.state.json"; then
    it_ok "2: the state file names the topics that fed the stream"
else
    it_fail "2: the state file names the topics that fed the stream" \
        "$(grep -o '"topics[^]]*]' "$D/state/pump/pump2.state.json")"
fi
start
it_wait_log "$D/daemon.log" 'stream pump/pump2: calibration restored' 10 ||
    it_fail "2: pump2 restored for its open alert" "$(tail -3 "$D/daemon.log")"
reload '["plant/+/data"]' '["cell/#"]' 1
fresh 2a
if alert_shown pump2 2a && [ -z "$(events pump2 | grep cleared)" ]; then
    it_ok "2: restored pump2, its saved topic still matched: kept with its open alert"
else
    it_fail "2: restored pump2, its saved topic still matched: kept with its open alert" \
        "$(grep -E 'pump/pump2 ' "$D/fresh2a.txt" | cut -c1-100) $(grep pump2 "$D/daemon.log" | tail -2)"
fi
reload '["plant/pump9/#"]' '["cell/#"]' 2
fresh 2b
ev=$(events pump2)
if echo "$ev" | grep -q '^cleared reload ' && ! shown anomalyd/state/pump/pump2 2b &&
   ! shown homeassistant/binary_sensor/it-topics/pump_pump2/config 2b; then
    it_ok "2: restored pump2, its saved topic no longer matched: alert cleared (reload), state and entities gone"
else
    it_fail "2: restored pump2, its saved topic no longer matched: alert cleared (reload), state and entities gone" \
        "events: $(echo "$ev" | tr '\n' ';') fresh: $(grep -E 'pump/pump2 |pump_pump2/config ' "$D/fresh2b.txt" | cut -c1-100 | tr '\n' ';')"
fi
grep -E "topics changed|removed$" "$D/daemon.log" | sed "s/^/# /"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
