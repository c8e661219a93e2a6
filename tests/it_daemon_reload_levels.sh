#!/bin/sh
# it_daemon_reload_levels.sh - a reload that changes a detector's
# stream_levels. Streams whose key no longer exists under the new levels
# get no more data: they must go at once, as a removed detector's streams
# do (an alert they hold open cleared with reason reload, their retained
# state emptied, their Home Assistant entities deleted), not linger until
# idle eviction. Streams whose key the new levels give again stay as they
# are (alert, calibration).
#  1. [2] -> [-2]: the same level of site/<site>/<device>/pump: kept
#  2. [-2] -> [1, 2]: keys become <site>/<device>: the old ones removed,
#     the devices' next data makes the new streams
. tests/lib.sh
it_setup it_reload_levels
it_broker_up

# conf LEVELS
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-levels", "qos_subscribe": 1},
 "workers": 1, "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["site/+/+/pump"],
   "stream_levels": $1, "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
reload() {
    conf "$1"
    kill -HUP "$DPID"
    it_wait_log "$D/daemon.log" 'configuration reloaded' 20 "$2" ||
        it_fail "reload to stream_levels $1" "$(tail -3 "$D/daemon.log")"
}
# fresh TAG: what a new subscriber gets (retained states, HA binary sensor configs)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/binary_sensor/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
shown() { grep -q "^$1 {" "$D/fresh$2.txt"; }
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

conf '[2]'
it_sub_start
sleep 0.3
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
F='cavitation@300m+300m'
$H pub --port "$IT_PORT" --devices 2 --rows 360 --start "$START" --fault "$F" --topic 'site/s1/{device}/pump'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "alert raised on pump1" "$(tail -3 "$D/daemon.log")"

# ---- 1. the same keys -------------------------------------------------------------------
reload '[-2]' 1
fresh 1
if shown anomalyd/state/pump/pump1 1 && shown anomalyd/state/pump/pump2 1 &&
   shown homeassistant/binary_sensor/it-levels/pump_pump1/config 1 &&
   [ -z "$(events pump1 | grep cleared)" ]; then
    it_ok "1: [2] -> [-2] gives the same keys: streams, states, entities and the open alert stay"
else
    it_fail "1: [2] -> [-2] gives the same keys: streams, states, entities and the open alert stay" \
        "$(cut -c1-80 "$D/fresh1.txt"; events pump1)"
fi

# ---- 2. new keys -------------------------------------------------------------------------
reload '[1, 2]' 2
$H pub --port "$IT_PORT" --devices 2 --rows 370 --start-row 360 --start "$START" --fault "$F" \
    --topic 'site/s1/{device}/pump'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/s1/pump1 --timeout 10 >/dev/null ||
    it_fail "2: the devices' data makes streams s1/pump1, s1/pump2" "$(tail -3 "$D/daemon.log")"
fresh 2
if ! shown anomalyd/state/pump/pump1 2 && ! shown anomalyd/state/pump/pump2 2 &&
   ! shown homeassistant/binary_sensor/it-levels/pump_pump1/config 2 &&
   ! shown homeassistant/binary_sensor/it-levels/pump_pump2/config 2; then
    it_ok "2: [-2] -> [1, 2]: the streams under the old keys leave no retained state or Home Assistant entity"
else
    it_fail "2: [-2] -> [1, 2]: the streams under the old keys leave no retained state or Home Assistant entity" \
        "a new subscriber still gets: $(grep -E '/pump[12]( |/config )' "$D/fresh2.txt" | cut -c1-100 | tr '\n' ';')"
fi
if shown anomalyd/state/pump/s1/pump1 2 &&
   grep -q '^homeassistant/binary_sensor/it-levels/pump_s1_pump1_[0-9a-f]*/config {' "$D/fresh2.txt"; then
    it_ok "2: the streams under the new keys have their state and entities"
else
    it_fail "2: the streams under the new keys have their state and entities" "$(cut -c1-100 "$D/fresh2.txt")"
fi
ev=$(events pump1)
if echo "$ev" | grep -q '^cleared reload '; then
    it_ok "2: the alert pump1 held open is cleared, reason reload"
else
    it_fail "2: the alert pump1 held open is cleared, reason reload" "events of pump1: $(echo "$ev" | tr '\n' ';')"
fi
grep -E "stream_levels changed" "$D/daemon.log" | sed "s/^/# /"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
