#!/bin/sh
# it_kafka_dq_removed_partial.sh - the scan at start of a removed
# detector's state file (alerts_to both) whose data-quality alert's clear
# goes to Kafka and then cannot be queued for MQTT (librdkafka's mock
# cluster and a real mosquitto, both on 127.0.0.1):
#  1. pump/pump3 raises a model alert and a dropout (MQTT and Kafka topic
#     al); kill -9: its state file lists both open.
#  2. restart with the detector renamed, the dropout's MQTT clear refused
#     (an LD_PRELOAD shim, tests/fail_strdup.c, fails the copy
#     libmosquitto, or the queue while the broker is away, makes of its
#     topic; the test gives the dropout a topic of its own in the file): the
#     model alert is cleared on both, the dropout on Kafka only; the file
#     keeps the dropout. The stream's retained state no longer says the
#     model alert is open. Before, it did (nothing published it again: it
#     stayed so until a start that cleared the dropout too).
#  3. restart without the shim: the dropout is cleared on MQTT, and not on
#     Kafka a second time. Before, the file kept its Kafka topic and the
#     clear went to al twice.
#  4. from the state of 1 again, the model alert's MQTT clear refused: it is
#     cleared on Kafka, and the file keeps it open for MQTT alone;
#  5. the next start clears it on MQTT, not on Kafka again. Before, the
#     file was left as it was and the clear went to al twice.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_dq_removed_partial.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID=
cleanup() {
    for p in $DPID $SPID; do kill "$p" 2>/dev/null; done
    it_kafka_cleanup
}
trap cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_dq_removed_partial" "kcat not installed"; exit 0; }
it_shim fail_strdup -ldl || { it_fail "strdup() shim builds" "$(cat "$D/cc.log")"; exit 1; }
ASAN_EXTRA=
ldd "$AD_BIN" 2>/dev/null | grep -q libasan && ASAN_EXTRA="verify_asan_link_order=0"
it_broker_up
it_kafka_start al:1 || exit 1

conf() {    # conf DETECTOR
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kdqrp", "stats_interval_s": 0.5},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "it-kdqrp", "alert_topic": "al"},
 "state_dir": "$D/state", "workers": 1,
 "detectors": [{"name": "$1", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "alerts_to": "both",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 1e-6},
   "quality": {"learn_samples": 20, "stuck_samples": 0, "range_k": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
online() {  # online N: more than N online status messages
    it_wait_online "$D/sub.jsonl" "$1" 20 || { it_fail "daemon starts" "$(tail -3 "$D/$2")"; exit 1; }
}
# kafka_dq ID: the events of data-quality alert ID on al, one a line
kafka_dq() {
    kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import json, sys
for line in sys.stdin:
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("alert_id") == sys.argv[1]:
        print(j["event"], j.get("reason", "-"))' "$1"
}

# ---- 1. a model alert and a dropout open at a kill -9 -----------------------------------------
conf pump
it_sub_start
sleep 0.3
n0=$(it_onlines "$D/sub.jsonl")
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon1.log" & DPID=$!
online "$n0" daemon1.log
it_pub_recent pump3 40
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 event=raised \
    --timeout 30 >/dev/null || { it_fail "1: pump3 raises a model alert" "$(tail -5 "$D/daemon1.log")"; exit 1; }
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 event=dq_raised \
    check=dropout --timeout 30 >/dev/null || { it_fail "1: pump3 raises a dropout" "$(tail -5 "$D/daemon1.log")"; exit 1; }
ID=$($PYTHON -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    j = json.loads(m["payload"]) if m["topic"].startswith("anomalyd/alerts/") else {}
    if j.get("event") == "dq_raised" and j.get("check") == "dropout":
        print(j["alert_id"]); break' "$D/sub.jsonl")
F="$D/state/pump/pump3.state.json"
it_wait_until 10 grep -q "\"dq_open\".*$ID" "$F" ||
    { it_fail "1: its state file lists the dropout open" "$(cut -c1-200 "$F")"; exit 1; }
it_wait_until 10 sh -c "[ \$(kcat -C -b '$BOOT' -t al -e -q 2>/dev/null | grep -c '$ID') -ge 1 ]" ||
    { it_fail "1: the dropout raised on Kafka" "$(cat "$D/kcat.out")"; exit 1; }
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
it_ok "1: a model alert and a dropout ($ID) open at a kill -9, raised on MQTT and Kafka"
# the file says the dropout went to an MQTT topic of its own, the one
# whose copy the shim refuses in 2 (the model alert's is another)
DQT=anomalyd/alerts/pump/pump3/dq
$PYTHON - "$F" "$DQT" <<'EOP'
import json, sys
o = json.load(open(sys.argv[1]))
for x in o["dq_open"]:
    x["topic"] = sys.argv[2]
json.dump(o, open(sys.argv[1], "w"), separators=(",", ":"))
EOP
cp -r "$D/state" "$D/state.kill"

# ---- 2. detector renamed; the dropout's MQTT clear refused ------------------------------------
conf pumpx
n0=$(it_onlines "$D/sub.jsonl")
FAIL_STRDUP="$DQT" FAIL_STRDUP_LOG="$D/refused.log" LD_PRELOAD="$D/fail_strdup.so" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon2.log" & DPID=$!
online "$n0" daemon2.log
if ! grep -q refused "$D/refused.log" 2>/dev/null; then
    it_fail "2: the dropout's MQTT clear refused (shim)" "$(grep 'state:' "$D/daemon2.log" | head -3)"
    exit 0
fi
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 event=cleared \
    reason=detector_removed --timeout 20 >/dev/null ||
    it_fail "2: the model alert cleared (detector_removed)" "$(grep 'state:' "$D/daemon2.log" | tail -3)"
it_wait_until 10 sh -c "kcat -C -b '$BOOT' -t al -e -q 2>/dev/null | grep '$ID' | grep -q dq_cleared"
sleep 1
it_retained "$IT_PORT" "$D/retained2" 'anomalyd/state/pump/pump3'
if ! grep -q '"state":"alert"' "$D/retained2"; then
    it_ok "2: the retained state of pump3 does not keep the cleared model alert open ($(wc -l < "$D/retained2") retained message(s))"
else
    it_fail "2: the retained state of pump3 does not keep the cleared model alert open" \
        "$(cut -c1-200 "$D/retained2")"
fi
if grep -q "\"dq_open\".*$ID" "$F"; then
    it_ok "2: the dropout cleared on Kafka, its MQTT clear refused: the file keeps it"
else
    it_fail "2: the dropout's MQTT clear refused: the file keeps it" "$(cut -c1-300 "$F")"
fi
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=

# ---- 3. restart: the dropout cleared on MQTT, not on Kafka again ----------------------------
n0=$(it_onlines "$D/sub.jsonl")
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon3.log" & DPID=$!
online "$n0" daemon3.log
$H wait --file "$D/sub.jsonl" --match topic="$DQT" alert_id="$ID" \
    event=dq_cleared reason=detector_removed --timeout 20 >/dev/null &&
    it_ok "3: the dropout cleared on MQTT (detector_removed)" ||
    it_fail "3: the dropout cleared on MQTT (detector_removed)" "$(grep 'state:' "$D/daemon3.log" | tail -3)"
sleep 2                             # a second Kafka clear, if any, delivered
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=
got=$(kafka_dq "$ID" | grep -c '^dq_cleared ')
[ "$got" -eq 1 ] &&
    it_ok "3: the dropout cleared on Kafka once ($(kafka_dq "$ID" | tr '\n' ';'))" ||
    it_fail "3: the dropout cleared on Kafka once" "$got clears: $(kafka_dq "$ID" | tr '\n' ';')"

# ---- 4. the same for the model alert: its MQTT clear refused, its Kafka clear goes -----------
rm -rf "$D/state"; cp -r "$D/state.kill" "$D/state"
MT=anomalyd/alerts/pump/pump3/model
AID=$($PYTHON - "$F" "$MT" <<'EOP'
import json, sys
o = json.load(open(sys.argv[1]))
o["alert_topic"]["topic"] = sys.argv[2]
json.dump(o, open(sys.argv[1], "w"), separators=(",", ":"))
print(o["alert_topic"]["alert_id"])
EOP
)
k0=$(kafka_dq "$AID" | grep -c '^cleared ')
n0=$(it_onlines "$D/sub.jsonl")
FAIL_STRDUP="$MT" FAIL_STRDUP_LOG="$D/refused4.log" LD_PRELOAD="$D/fail_strdup.so" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon4.log" & DPID=$!
online "$n0" daemon4.log
grep -q refused "$D/refused4.log" 2>/dev/null ||
    it_fail "4: the model alert's MQTT clear refused (shim)" "$(grep 'state:' "$D/daemon4.log" | head -3)"
it_wait_until 10 sh -c "[ \$(kcat -C -b '$BOOT' -t al -e -q 2>/dev/null | grep '$AID' | grep -c '\"cleared\"') -gt $k0 ]"
sleep 1
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=
if $PYTHON -c '
import json, sys
o = json.load(open(sys.argv[1]))
at, op = o.get("alert_topic", {}), (o.get("alert") or {}).get("open")
sys.exit(0 if op and at.get("topic") == sys.argv[2] and "kafka_topic" not in at else 1)' "$F" "$MT"; then
    it_ok "4: cleared on Kafka, its MQTT clear refused: the file keeps it open, for MQTT alone"
else
    it_fail "4: the file keeps it open, for MQTT alone" "$(cut -c1-300 "$F")"
fi
n0=$(it_onlines "$D/sub.jsonl")
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon5.log" & DPID=$!
online "$n0" daemon5.log
$H wait --file "$D/sub.jsonl" --match topic="$MT" alert_id="$AID" event=cleared \
    reason=detector_removed --timeout 20 >/dev/null &&
    it_ok "5: the model alert cleared on MQTT (detector_removed)" ||
    it_fail "5: the model alert cleared on MQTT (detector_removed)" "$(grep 'state:' "$D/daemon5.log" | tail -3)"
sleep 2
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=
got=$(( $(kafka_dq "$AID" | grep -c '^cleared ') - k0 ))
[ "$got" -eq 1 ] &&
    it_ok "5: the model alert cleared on Kafka once in 4 and 5" ||
    it_fail "5: the model alert cleared on Kafka once in 4 and 5" "$got clears: $(kafka_dq "$AID" | tr '\n' ';')"
exit 0
