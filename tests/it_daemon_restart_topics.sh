#!/bin/sh
# it_daemon_restart_topics.sh - the topics of a detector changed while the
# daemon was stopped. A stream restored at start for its open alert is
# judged as a reload that made the same change judges it
# (it_daemon_reload_topics.sh), from the topics its state file names: one
# no longer fed goes at once (its alert cleared with reason reload, its
# retained state emptied, its Home Assistant entities deleted), not an hour
# later by idle eviction (reason evicted); one still fed is untouched.
# A stream without an open alert is not restored; one its saved topics no
# longer feed has its retained state and entities removed at start (its
# data will not come back to them), one still fed keeps them.
#  1. detector pump, topics "plant/#": pump1 (plant/pump1/data) and pump2
#     (plant/pump2/data) raise alerts, pump3 and pump4 run without; the
#     daemon stops.
#     Detector line, stream_levels [1]: pump1 (line/pump1/data) raises one.
#  2. topics "plant/pump2/#" and "plant/pump4/#", then start: pump1 is
#     removed (cleared, reason reload; no retained state, no entity; its
#     state file holds no open alert), pump2 keeps its open alert, state and
#     entity; pump3's retained state and entity are removed, pump4's stay
#     (its file is not touched). Detector line,
#     stream_levels [2]: its topic no longer gives the key pump1: removed.
#  3. detector pump removed from the config, then start: nothing restores
#     its streams; pump2's alert is cleared from its state file (reason
#     detector_removed, it_daemon_detector_removed.sh), one line names the
#     directory and the counts, and the files stay.
. tests/lib.sh
it_setup it_restart_topics
it_broker_up

# conf TOPICS LINE_LEVELS
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-rtopics", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state", "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": $1,
   "stream_levels": [1], "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "line", "model": "$MODEL", "topics": ["line/#"],
   "stream_levels": $2, "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
start() {
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
# fresh TAG: what a new subscriber gets (retained states, HA binary sensor configs)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/binary_sensor/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
shown() { grep -q "^$1 {" "$D/fresh$2.txt"; }
alert_shown() { grep -q "^anomalyd/state/pump/$1 {.*\"state\":\"alert\"" "$D/fresh$2.txt"; }
# events STREAM [DETECTOR]: the model alert events of a stream (detector pump)
events() {
    $PYTHON - "$D/sub.jsonl" "$1" "${2:-pump}" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/alerts/" + sys.argv[3] + "/"):
        j = json.loads(m["payload"])
        if j.get("stream") == sys.argv[2] and j.get("kind") == "model":
            print(j["event"], j.get("reason", "-"), j["alert_id"])
EOP
}

# ---- 1. two alerts open, the daemon stops ------------------------------------------------------
conf '["plant/#"]' '[1]'
it_sub_start
sleep 0.3
start 1
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 4 --rows 360 --start "$START" --fault 'cavitation@300m+300m' \
    --fault-devices pump1,pump2 --topic 'plant/{device}/data'
$H pub --port "$IT_PORT" --devices 1 --rows 360 --start "$START" --fault 'cavitation@300m+300m' \
    --fault-devices pump1 --topic 'line/{device}/data'
for p in pump/pump1 pump/pump2 line/pump1; do
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/$p event=raised --timeout 20 >/dev/null ||
        it_fail "1: alert raised on $p" "$(tail -3 "$D/daemon.log")"
done
fresh 1
if alert_shown pump1 1 && alert_shown pump2 1 &&
   shown homeassistant/binary_sensor/it-rtopics/pump_pump1/config 1; then
    it_ok "1: pump1 and pump2 hold open alerts, shown on their state topics and in Home Assistant"
else
    it_fail "1: pump1 and pump2 hold open alerts, shown on their state topics and in Home Assistant" \
        "$(cut -c1-100 "$D/fresh1.txt" | tr '\n' ';')"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ---- 2. topics narrowed while stopped, start -----------------------------------------------------
for p in pump3 pump4; do
    it_wait_topic "$IT_PORT" anomalyd/state/pump/$p 10 '"phase":"detecting"' >/dev/null ||
        it_fail "1: $p detecting" "$(tail -3 "$D/daemon.log")"
done
conf '["plant/pump2/#", "plant/pump4/#"]' '[2]'
start 2
it_wait_log "$D/daemon.log" 'stream pump/pump2: calibration restored' 10 ||
    it_fail "2: pump2 restored for its open alert" "$(tail -3 "$D/daemon.log")"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared --timeout 5 >/dev/null
fresh 2
ev=$(events pump1)
if echo "$ev" | grep -q '^cleared reload '; then
    it_ok "2: the alert pump1 held open, its saved topic no longer matched: cleared at start, reason reload"
else
    it_fail "2: the alert pump1 held open, its saved topic no longer matched: cleared at start, reason reload" \
        "events of pump1: $(echo "$ev" | tr '\n' ';')"
fi
if ! shown anomalyd/state/pump/pump1 2 &&
   ! shown homeassistant/binary_sensor/it-rtopics/pump_pump1/config 2; then
    it_ok "2: pump1: no retained state or Home Assistant entity left"
else
    it_fail "2: pump1: no retained state or Home Assistant entity left" \
        "a new subscriber still gets: $(grep -E 'pump/pump1 |pump_pump1/config ' "$D/fresh2.txt" | cut -c1-100 | tr '\n' ';')"
fi
if grep -q '"open":null' "$D/state/pump/pump1.state.json" &&
   ! grep -q '"open":{' "$D/state/pump/pump1.state.json"; then
    it_ok "2: pump1's state file holds no open alert (the next start does not restore it)"
else
    it_fail "2: pump1's state file holds no open alert (the next start does not restore it)" \
        "$(grep -o '"open":{[^}]*' "$D/state/pump/pump1.state.json" | cut -c1-100)"
fi
ev=$(events pump2)
if alert_shown pump2 2 && shown homeassistant/binary_sensor/it-rtopics/pump_pump2/config 2 &&
   [ -z "$(echo "$ev" | grep cleared)" ]; then
    it_ok "2: pump2, its saved topic still matched: open alert, state and entity stay"
else
    it_fail "2: pump2, its saved topic still matched: open alert, state and entity stay" \
        "$(grep -E 'pump/pump2 |pump_pump2/config ' "$D/fresh2.txt" | cut -c1-100 | tr '\n' ';') events: $(echo "$ev" | tr '\n' ';')"
fi
if ! shown anomalyd/state/pump/pump3 2 &&
   ! shown homeassistant/binary_sensor/it-rtopics/pump_pump3/config 2 &&
   ! grep -q '"published"' "$D/state/pump/pump3.state.json" &&
   shown anomalyd/state/pump/pump4 2 && shown homeassistant/binary_sensor/it-rtopics/pump_pump4/config 2 &&
   grep -q '"published"' "$D/state/pump/pump4.state.json" &&
   grep -q '^<5>detector pump: 1 stream(s) without an open alert that its topics or stream_levels no longer feed' "$D/daemon.log"; then
    it_ok "2: pump3 (no alert, not restored), its saved topic no longer matched: retained state and entity removed; pump4, still fed: kept"
else
    it_fail "2: pump3 (no alert, not restored), its saved topic no longer matched: retained state and entity removed; pump4, still fed: kept" \
        "$(grep -E 'pump/pump[34] |pump_pump[34]/config ' "$D/fresh2.txt" | cut -c1-80 | tr '\n' ';') $(grep -E 'no longer feed' "$D/daemon.log")"
fi
ev=$(events pump1 line)
if echo "$ev" | grep -q '^cleared reload ' && ! shown anomalyd/state/line/pump1 2 &&
   ! shown homeassistant/binary_sensor/it-rtopics/line_pump1/config 2; then
    it_ok "2: line/pump1, whose saved topic gives no key pump1 under the new stream_levels: cleared (reload), state and entity gone"
else
    it_fail "2: line/pump1, whose saved topic gives no key pump1 under the new stream_levels: cleared (reload), state and entity gone" \
        "events: $(echo "$ev" | tr '\n' ';') fresh: $(grep -E 'line/pump1 |line_pump1/config ' "$D/fresh2.txt" | cut -c1-100 | tr '\n' ';')"
fi
grep -E "restored at start|open alert restored|no longer feed" "$D/daemon.log" | sed "s/^/# /"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# 3. detector pump removed while stopped
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-rtopics", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "line", "model": "$MODEL", "topics": ["line/#"],
   "stream_levels": [2], "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
start 3
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump2 event=cleared --timeout 10 >/dev/null
w=$(grep '^<5>state: .*/state/pump: no detector "pump" is configured' "$D/daemon.log")
if echo "$w" | grep -q '4 stream state file(s), 1 open alert(s) cleared (reason detector_removed)' &&
   events pump2 | grep -q '^cleared detector_removed ' &&
   [ -f "$D/state/pump/pump2.state.json" ] && grep -q '"open":null' "$D/state/pump/pump2.state.json"; then
    it_ok "3: detector pump removed while stopped: pump2's open alert cleared (detector_removed), one line names its directory (4 files, 1 cleared); the files stay"
else
    it_fail "3: detector pump removed while stopped: pump2's open alert cleared (detector_removed), one line names its directory (4 files, 1 cleared); the files stay" \
        "$(grep 'state:' "$D/daemon.log" | tail -3) events: $(events pump2 | tr '\n' ';')"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
