#!/bin/sh
# it_kafka_detector_removed.sh - detectors fed by MQTT whose alerts go to
# Kafka (alerts_to both, alerts_to kafka), removed from the configuration
# while the daemon was stopped: at start their open alerts are cleared
# (reason detector_removed) on every sink they were raised on, the Kafka
# alert topic included, from the streams' state files (librdkafka's mock
# cluster and a real mosquitto, both on 127.0.0.1).
#  1. detectors pump (plant/#, MQTT), both (both/#, alerts_to both),
#     konly (konly/#, alerts_to kafka), older (older/#, alerts_to both)
#     and keep (keep/#, alerts_to both): both/pump1, older/pump1,
#     keep/pump1 and konly/pump1 raise alerts (on MQTT and Kafka topic al;
#     on al only). The daemon stops.
#  2. both and konly removed, and no Kafka configured: neither alert can be
#     cleared where it was raised: nothing is published for them, their
#     files keep the open alerts, a warning names what is missing.
#  3. Kafka configured again: both/pump1's alert is cleared on its MQTT
#     topic and on al, konly/pump1's on al (key detector/stream, same
#     alert_id, model, start and top feature names as the raise); the files
#     no longer hold open alerts.
#     older/pump1 (alerts_to both), whose state file is made one of an
#     older version (no "alerts_to", no "kafka_topic"; kept aside during
#     2): its alert is cleared on MQTT only, as that file says, and a
#     warning says the file does not tell whether it went to Kafka too.
#     kafka.alert_topic is al2 now: the clears still go to al, where the
#     alerts were raised; so does the clear of keep/pump1 (a detector kept,
#     alerts_to both, its alert raised in 1 and restored open), once its
#     rows turn normal (and on its MQTT topic).
#  4. start again: nothing is cleared a second time.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_detremoved.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID=
cleanup() {
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    [ -n "${KEEP:-}" ] && rm -rf "$KEEP" && cp -r "$D" "$KEEP"   # KEEP=DIR: logs kept there
    it_daemon_cleanup
}
trap cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_detector_removed" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start al:1 al2:1 || exit 1

det() { # det NAME TOPIC ALERTS_TO
    cat <<EOD
{"name": "$1", "model": "$MODEL", "topics": ["$2"], "stream_levels": [1], "idle_evict_s": 3600,
   "alerts_to": "$3",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}
EOD
}
# conf KAFKA_ALERT_TOPIC(or no) DETECTORS...
conf() {
    kafka=
    [ "$1" != no ] && kafka="\"kafka\": {\"bootstrap_servers\": \"$BOOT\", \"group_id\": \"it-kdr\",
           \"alert_topic\": \"$1\"},"
    shift
    dets=$1; shift
    for x in "$@"; do dets="$dets, $x"; done
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kdetrm", "qos_subscribe": 1},
 $kafka
 "workers": 1, "state_dir": "$D/state",
 "detectors": [$dets]}
EOC
}
start() { # start N: wait for the Nth connect
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
# kafka_events DET [TOPIC]: "event reason alert_id key" of DET's model alerts
# on TOPIC (al)
kafka_events() {
    kcat -C -b "$BOOT" -t "${2:-al}" -e -q -f '%k|%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import json, sys
for line in sys.stdin:
    k, _, v = line.rstrip("\n").partition("|")
    try:
        j = json.loads(v)
    except ValueError:
        continue
    if j.get("detector") == sys.argv[1] and j.get("kind") == "model":
        print(j["event"], j.get("reason", "-"), j["alert_id"], k)' "$1"
}
# mqtt_events DET: "event reason alert_id topic" of DET's model alerts on MQTT
mqtt_events() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/alerts/"):
        j = json.loads(m["payload"])
        if j.get("detector") == sys.argv[2] and j.get("kind") == "model":
            print(j["event"], j.get("reason", "-"), j["alert_id"], m["topic"])
EOP
}
raised_on_kafka() { kafka_events "$1" | grep -q '^raised '; }
PUMP=$(det pump 'plant/#' mqtt)
BOTH=$(det both 'both/#' both)
KONLY=$(det konly 'konly/#' kafka)
OLDER=$(det older 'older/#' both)
KEEP_=$(det keep 'keep/#' both)

# ---- 1. alerts open on both/pump1 (MQTT and Kafka) and konly/pump1 (Kafka) ----------------------
conf al "$PUMP" "$BOTH" "$KONLY" "$OLDER" "$KEEP_"
it_sub_start
sleep 0.3
start 1
START=$(( $(date +%s) - 800 * 60 ))
for t in both konly older keep plant; do
    $H pub --port "$IT_PORT" --devices 1 --rows 360 --start "$START" \
        --fault 'cavitation@300m+300m' --fault-devices pump1 --topic "$t/{device}/data"
done
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/both/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "1: alert raised on both/pump1" "$(tail -3 "$D/daemon.log")"
it_wait_until 20 raised_on_kafka konly
it_wait_until 20 raised_on_kafka both
it_wait_until 20 raised_on_kafka older
it_wait_until 20 raised_on_kafka keep
idb=$(mqtt_events both | awk '$1 == "raised" { print $3; exit }')
idk=$(kafka_events konly | awk '$1 == "raised" { print $3; exit }')
if [ -n "$idb" ] && kafka_events both | grep -q "^raised - $idb both/pump1\$" &&
   [ -n "$idk" ] && [ -z "$(mqtt_events konly)" ]; then
    it_ok "1: both/pump1's alert raised on MQTT and Kafka, konly/pump1's on Kafka only"
else
    it_fail "1: both/pump1's alert raised on MQTT and Kafka, konly/pump1's on Kafka only" \
        "mqtt both: $(mqtt_events both | tr '\n' ';') kafka both: $(kafka_events both | tr '\n' ';') kafka konly: $(kafka_events konly | tr '\n' ';')"
fi
stop
ido=$(mqtt_events older | awk '$1 == "raised" { print $3; exit }')
# older/pump1's file as an older version wrote it: where its alerts went
# (alerts_to) and the Kafka topic of its alert not kept; set aside in 2
$PYTHON - "$D/state/older/pump1.state.json" <<'EOP'
import json, sys
o = json.load(open(sys.argv[1]))
o["published"].pop("alerts_to", None)
o["alert_topic"].pop("kafka_topic", None)
json.dump(o, open(sys.argv[1], "w"), separators=(",", ":"))
EOP
mv "$D/state/older" "$D/older.aside"

# ---- 2. both and konly removed, Kafka no longer configured: nothing can clear them -------------
conf no "$PUMP"
start 2
it_wait_log "$D/daemon.log" 'no detector "konly" is configured' 10 &&
    it_wait_log "$D/daemon.log" 'no detector "both" is configured' 10
sleep 1
stop
w=$(grep -E '^<4>state: .*/state/(both|konly)/pump1.state.json: the open alert is not closed' "$D/daemon.log")
if [ -z "$(mqtt_events both | grep cleared)" ] && [ -z "$(kafka_events both | grep cleared)" ] &&
   [ -z "$(kafka_events konly | grep cleared)" ] &&
   grep -q '"open":{' "$D/state/both/pump1.state.json" &&
   grep -q '"open":{' "$D/state/konly/pump1.state.json" &&
   [ "$(echo "$w" | grep -c 'kafka.bootstrap_servers is not configured now')" -eq 2 ]; then
    it_ok "2: no Kafka configured: both alerts stay open (nothing published, files kept open), a warning each names kafka.bootstrap_servers"
else
    it_fail "2: no Kafka configured: both alerts stay open (nothing published, files kept open), a warning each names kafka.bootstrap_servers" \
        "warnings: $w; mqtt both: $(mqtt_events both | tr '\n' ';') kafka: $(kafka_events both | tr '\n' ';') $(kafka_events konly | tr '\n' ';')"
fi

# ---- 3. Kafka configured again: each alert cleared where it was raised --------------------------
mv "$D/older.aside" "$D/state/older"
conf al2 "$PUMP" "$KEEP_"
start 3
it_wait_log "$D/daemon.log" 'no detector "konly" is configured' 10 2 &&
    it_wait_log "$D/daemon.log" 'no detector "both" is configured' 10 2
cleared_k() { kafka_events "$1" | grep -q "^cleared detector_removed $2 $1/pump1\$"; }
it_wait_until 10 cleared_k konly "$idk"
it_wait_until 10 cleared_k both "$idb"
if cleared_k both "$idb" &&
   mqtt_events both | grep -q "^cleared detector_removed $idb anomalyd/alerts/both/pump1\$"; then
    it_ok "3: both/pump1 (alerts_to both): cleared, reason detector_removed, on its MQTT topic and on Kafka (key both/pump1)"
else
    it_fail "3: both/pump1 (alerts_to both): cleared, reason detector_removed, on its MQTT topic and on Kafka (key both/pump1)" \
        "raised $idb; mqtt: $(mqtt_events both | tr '\n' ';') kafka: $(kafka_events both | tr '\n' ';') $(grep 'state:' "$D/daemon.log" | tail -3)"
fi
if cleared_k konly "$idk" && [ -z "$(mqtt_events konly)" ]; then
    it_ok "3: konly/pump1 (alerts_to kafka): cleared, reason detector_removed, on Kafka only (key konly/pump1)"
else
    it_fail "3: konly/pump1 (alerts_to kafka): cleared, reason detector_removed, on Kafka only (key konly/pump1)" \
        "raised $idk; kafka: $(kafka_events konly | tr '\n' ';') mqtt: $(mqtt_events konly | tr '\n' ';') $(grep 'state:' "$D/daemon.log" | tail -3)"
fi
it_wait_log "$D/daemon.log" 'no detector "older" is configured' 10
o=$(grep '^<4>state: .*/state/older/pump1.state.json: written by an older version, it does not say whether the alert went to Kafka as well' "$D/daemon.log")
if mqtt_events older | grep -q "^cleared detector_removed $ido anomalyd/alerts/older/pump1\$" &&
   [ -z "$(kafka_events older | grep cleared)" ] && [ -n "$o" ]; then
    it_ok "3: older/pump1 (file of an older version): cleared on MQTT only, as its file says, a warning says why"
else
    it_fail "3: older/pump1 (file of an older version): cleared on MQTT only, as its file says, a warning says why" \
        "raised $ido; mqtt: $(mqtt_events older | tr '\n' ';') kafka: $(kafka_events older | tr '\n' ';') warning: $o"
fi
# the Kafka clear reports the alert as its raise did: model, metric, start, top feature names
same=$(kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import json, sys
ev = {}
for line in sys.stdin:
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("kind") == "model" and j.get("alert_id") in sys.argv[1:]:
        ev[(j["alert_id"], j["event"])] = j
bad = []
for i in sys.argv[1:]:
    r, c = ev.get((i, "raised")), ev.get((i, "cleared"))
    if not (r and c and c["model"]["id"] == r["model"]["id"] and c["metric"] == r["metric"] and
            c["start_ms"] == r["start_ms"] and c["end_ms"] >= c["start_ms"] and
            c["top_features"] and all(f["name"] not in ("?", "") for f in c["top_features"])):
        bad.append("%s: %s" % (i, json.dumps(c)[:300]))
print("; ".join(bad) if bad else "yes")' "$idb" "$idk")
if [ "$same" = yes ]; then
    it_ok "3: the Kafka clears name the model, metric, start and top features of their alerts"
else
    it_fail "3: the Kafka clears name the model, metric, start and top features of their alerts" "$same"
fi
if grep -q '"open":null' "$D/state/both/pump1.state.json" &&
   grep -q '"open":null' "$D/state/konly/pump1.state.json"; then
    it_ok "3: both state files no longer hold an open alert"
else
    it_fail "3: both state files no longer hold an open alert" \
        "$(cut -c1-200 "$D/state/konly/pump1.state.json")"
fi

# keep/pump1, restored with its alert open: normal rows clear it where it was raised
idp=$(kafka_events keep | awk '$1 == "raised" { print $3; exit }')
$H pub --port "$IT_PORT" --devices 1 --rows 120 --start "$((START + 360 * 60))" \
    --topic 'keep/{device}/data'
keep_cleared() { kafka_events keep | grep -q "^cleared cleared $idp keep/pump1\$"; }
it_wait_until 20 keep_cleared
if keep_cleared && [ -z "$(kafka_events keep al2)" ] &&
   mqtt_events keep | grep -q "^cleared cleared $idp anomalyd/alerts/keep/pump1\$"; then
    it_ok "3: keep/pump1 restored open, kafka.alert_topic now al2: its clear goes to al where it was raised (and MQTT)"
else
    it_fail "3: keep/pump1 restored open, kafka.alert_topic now al2: its clear goes to al where it was raised (and MQTT)" \
        "raised $idp; al: $(kafka_events keep | tr '\n' ';') al2: $(kafka_events keep al2 | tr '\n' ';') mqtt: $(mqtt_events keep | tr '\n' ';')"
fi
if [ -z "$(kafka_events both al2)$(kafka_events konly al2)" ]; then
    it_ok "3: the removed detectors' clears went to al, where raised, not to al2"
else
    it_fail "3: the removed detectors' clears went to al, where raised, not to al2" \
        "al2: $(kafka_events both al2 | tr '\n' ';') $(kafka_events konly al2 | tr '\n' ';')"
fi
stop

# ---- 4. again: nothing cleared twice -----------------------------------------------------------
start 4
it_wait_log "$D/daemon.log" 'no detector "konly" is configured' 10 3
sleep 1.5
n=$(kafka_events konly | grep -c '^cleared')
m=$(kafka_events both | grep -c '^cleared')
l=$(mqtt_events both | grep -c '^cleared')
if [ "$n" -eq 1 ] && [ "$m" -eq 1 ] && [ "$l" -eq 1 ]; then
    it_ok "4: the next start clears neither alert again (Kafka or MQTT)"
else
    it_fail "4: the next start clears neither alert again (Kafka or MQTT)" \
        "kafka konly $n, kafka both $m, mqtt both $l"
fi
grep -E 'no detector "(both|konly|older)"|is not closed|older version' "$D/daemon.log" | sed "s/^/# /"
stop
