#!/bin/sh
# it_daemon_detector_removed.sh - a detector removed from the configuration
# while the daemon was stopped. Nothing restores its streams, so the daemon
# does at start, from their state files, what a live detector does when it
# removes a stream: the open alert is cleared (reason detector_removed) on
# the topic it was raised on, the retained state and the Home Assistant
# entities are emptied; the files stay, rewritten without them, so the next
# start does not do it again.
#  1. detectors pump (plant/#) and line (line/#): line/pump1 and line/pump3
#     raise alerts, line/pump2 does not; pump/pump1 runs. The daemon stops.
#     pump3's state file is made one of an older version (no "published").
#  2. line removed, the broker unreachable (another port), start, stop: the
#     clear and the emptied retained topics wait in outbox.json; pump1's
#     state file no longer holds an open alert.
#  3. the broker reachable, start: a subscriber gets pump1's clear (reason
#     detector_removed, same alert_id, topic anomalyd/alerts/line/pump1);
#     no retained state or Home Assistant entity of line/pump1 or
#     line/pump2 is left; pump/pump1's stay. pump3 (older file): its alert
#     stays open, a warning says so.
#  4. start again: pump1's alert is not cleared a second time.
. tests/lib.sh
it_setup it_detremoved
it_broker_up

det() { # det NAME TOPIC
    cat <<EOD
{"name": "$1", "model": "$MODEL", "topics": ["$2"], "stream_levels": [1], "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}
EOD
}
# conf PORT DETECTORS...
conf() {
    port=$1; shift
    dets=$1; shift
    for x in "$@"; do dets="$dets, $x"; done
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $port, "client_id": "it-detrm", "qos_subscribe": 1,
            "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
 "workers": 1, "state_dir": "$D/state", "homeassistant": {"enabled": true},
 "detectors": [$dets]}
EOC
}
start() { # start N [no]: wait for the Nth connect unless "no"
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    [ "${2:-}" = no ] && return 0
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
# fresh TAG: what a new subscriber gets (retained states, HA configs)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'anomalyd/ha/#' 'homeassistant/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
shown() { grep -q "^$1 {" "$D/fresh$2.txt"; }
# events STREAM: the model alert events of line/STREAM: event reason alert_id topic
events() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/alerts/"):
        j = json.loads(m["payload"])
        if j.get("detector") == "line" and j.get("stream") == sys.argv[2] and j.get("kind") == "model":
            print(j["event"], j.get("reason", "-"), j["alert_id"], m["topic"])
EOP
}
PUMP=$(det pump 'plant/#')
LINE=$(det line 'line/#')

# ---- 1. alerts open on line/pump1 and line/pump3, the daemon stops ------------------------------
conf "$IT_PORT" "$PUMP" "$LINE"
it_sub_start
sleep 0.3
start 1
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 3 --rows 360 --start "$START" --fault 'cavitation@300m+300m' \
    --fault-devices pump1,pump3 --topic 'line/{device}/data'
$H pub --port "$IT_PORT" --devices 1 --rows 360 --start "$START" --topic 'plant/{device}/data'
for p in pump1 pump3; do
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/line/$p event=raised --timeout 20 >/dev/null ||
        it_fail "1: alert raised on line/$p" "$(tail -3 "$D/daemon.log")"
done
it_wait_topic "$IT_PORT" anomalyd/state/line/pump2 10 '"phase":"detecting"' >/dev/null ||
    it_fail "1: line/pump2 detecting" "$(tail -3 "$D/daemon.log")"
fresh 1
if shown anomalyd/state/line/pump1 1 && shown anomalyd/state/line/pump2 1 &&
   shown homeassistant/binary_sensor/it-detrm/line_pump1/config 1 &&
   shown homeassistant/binary_sensor/it-detrm/line_pump2/config 1 &&
   shown anomalyd/state/pump/pump1 1; then
    it_ok "1: line/pump1 (open alert) and line/pump2 show their retained states and Home Assistant entities"
else
    it_fail "1: line/pump1 (open alert) and line/pump2 show their retained states and Home Assistant entities" \
        "$(cut -c1-100 "$D/fresh1.txt" | tr '\n' ';')"
fi
id1=$(events pump1 | awk '$1 == "raised" { print $3; exit }')
stop
# pump3's file as an older version wrote it: nothing says what it published
$PYTHON - "$D/state/line/pump3.state.json" <<'EOP'
import json, sys
o = json.load(open(sys.argv[1]))
o.pop("published", None)
o.get("alert_topic", {}).pop("features", None)
json.dump(o, open(sys.argv[1], "w"), separators=(",", ":"))
EOP

# ---- 2. line removed, the broker away: the messages wait in outbox.json --------------------------
conf "$(it_free_port)" "$PUMP"
start - no
it_wait_log "$D/daemon.log" 'no detector "line" is configured' 10 &&
    it_wait_until 10 grep -q '"detector_removed"' "$D/state/line/pump1.state.json"
stop
if grep -q 'detector_removed' "$D/state/outbox.json" 2>/dev/null &&
   grep -q "$id1" "$D/state/outbox.json"; then
    it_ok "2: broker away at start: pump1's clear (detector_removed) is kept in outbox.json"
else
    it_fail "2: broker away at start: pump1's clear (detector_removed) is kept in outbox.json" \
        "$(cut -c1-300 "$D/state/outbox.json" 2>&1) $(grep 'state:' "$D/daemon.log" | tail -3)"
fi
if grep -q '"open":null' "$D/state/line/pump1.state.json" &&
   ! grep -q '"published"' "$D/state/line/pump1.state.json" &&
   grep -q '"open":{' "$D/state/line/pump3.state.json"; then
    it_ok "2: pump1's state file is kept without its open alert; pump3's (older) is left as it is"
else
    it_fail "2: pump1's state file is kept without its open alert; pump3's (older) is left as it is" \
        "$(cut -c1-200 "$D/state/line/pump1.state.json")"
fi

# ---- 3. the broker reachable: the clear and the emptied topics are delivered ---------------------
conf "$IT_PORT" "$PUMP"
start 2
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/line/pump1 event=cleared --timeout 10 >/dev/null
ev=$(events pump1)
if echo "$ev" | grep -q "^cleared detector_removed $id1 anomalyd/alerts/line/pump1\$"; then
    it_ok "3: the alert line/pump1 held open is cleared, reason detector_removed, on its alert topic"
else
    it_fail "3: the alert line/pump1 held open is cleared, reason detector_removed, on its alert topic" \
        "raised $id1; events: $(echo "$ev" | tr '\n' ';') $(grep 'state:' "$D/daemon.log" | tail -3)"
fi
# the clear reports the alert as its raise did: model, metric, start, top feature names
same=$($PYTHON - "$D/sub.jsonl" "$id1" <<'EOP'
import json, sys
ev = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if not m["topic"].startswith("anomalyd/alerts/"):
        continue
    j = json.loads(m["payload"])
    if j.get("kind") == "model" and j.get("alert_id") == sys.argv[2]:
        ev[j["event"]] = j
r, c = ev.get("raised"), ev.get("cleared")
ok = (r and c and c["model"]["id"] == r["model"]["id"] and c["metric"] == r["metric"] and
      c["start_ms"] == r["start_ms"] and c["end_ms"] >= c["start_ms"] and c["top_features"] and
      all(f["name"] not in ("?", "") for f in c["top_features"]))
print("yes" if ok else "no: %s" % json.dumps(c)[:400])
EOP
)
if [ "$same" = yes ]; then
    it_ok "3: the clear names the model, metric, start and top features of the alert"
else
    it_fail "3: the clear names the model, metric, start and top features of the alert" "$same"
fi
fresh 3
if ! shown anomalyd/state/line/pump1 3 && ! shown anomalyd/state/line/pump2 3 &&
   ! shown homeassistant/binary_sensor/it-detrm/line_pump1/config 3 &&
   ! shown homeassistant/sensor/it-detrm/line_pump1_score/config 3 &&
   ! shown homeassistant/binary_sensor/it-detrm/line_pump2/config 3 &&
   ! shown anomalyd/ha/line/pump1 3 && ! shown anomalyd/ha/line/pump2 3; then
    it_ok "3: line/pump1 and line/pump2: no retained state or Home Assistant entity left"
else
    it_fail "3: line/pump1 and line/pump2: no retained state or Home Assistant entity left" \
        "a new subscriber still gets: $(grep -E 'line/pump[12] |line_pump[12]' "$D/fresh3.txt" | cut -c1-100 | tr '\n' ';')"
fi
if shown anomalyd/state/pump/pump1 3 && shown homeassistant/binary_sensor/it-detrm/pump_pump1/config 3; then
    it_ok "3: the configured detector's stream keeps its retained state and entity"
else
    it_fail "3: the configured detector's stream keeps its retained state and entity" \
        "$(cut -c1-100 "$D/fresh3.txt" | tr '\n' ';')"
fi
w=$(grep '^<4>state: .*/state/line: no detector "line" is configured' "$D/daemon.log" | tail -1)
if shown anomalyd/state/line/pump3 3 && [ -z "$(events pump3 | grep cleared)" ] &&
   echo "$w" | grep -q '3 stream state file(s), 1 with an open alert, 0 of them cleared .*, 1 that nothing clears'; then
    it_ok "3: pump3, its state file from an older version: its alert stays open, one warning says so"
else
    it_fail "3: pump3, its state file from an older version: its alert stays open, one warning says so" \
        "warning: $w; events: $(events pump3 | tr '\n' ';')"
fi
stop

# ---- 4. again: nothing cleared twice ----------------------------------------------------------
# (one warning a start: this start's is the third)
start 3
it_wait_log "$D/daemon.log" 'no detector "line" is configured' 10 3
sleep 1
n=$(events pump1 | grep -c '^cleared')
if [ "$n" -eq 1 ]; then
    it_ok "4: the next start does not clear pump1's alert again"
else
    it_fail "4: the next start does not clear pump1's alert again" "$(events pump1 | tr '\n' ';')"
fi
grep -E 'no detector "line"' "$D/daemon.log" | sed "s/^/# /"
stop
