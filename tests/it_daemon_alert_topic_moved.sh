#!/bin/sh
# it_daemon_alert_topic_moved.sh - detectors[].alert.topic changed while
# alerts are open: the subscribers of the topic an alert was raised on must
# see it cleared there (one cleared event, on that topic only), and alerts
# raised afterwards go to the new topic.
#  A. SIGHUP reload, a model alert (pump1) and a data-quality alert
#     (dqpump1, a stuck sensor) open across it
#  B. restart with a state_dir, a model alert (pump3) open across it
. tests/lib.sh
it_setup it_alert_topic_moved
it_broker_up
mkdir -p "$D/state"

# conf ALERT_TOPIC_PREFIX
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-atm", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "quality": {"learn_samples": 100, "stuck_samples": 30, "range_k": 0},
   "alert": {"topic": "$1/{detector}/{stream}",
             "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
start_daemon() {
    $AD_BIN run -c "$D/ad.json" 2> "$D/daemon$1.log" & DPID=$!
    it_wait_log "$D/daemon$1.log" 'mqtt: connected' 10 ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon$1.log")"; exit 1; }
}
# events FILE STREAM: "<topic> <event> <alert_id>" of every alert event of STREAM
events() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if "/alerts/" not in m["topic"] and "/alarms/" not in m["topic"]:
        continue
    j = json.loads(m["payload"])
    if j.get("stream") == sys.argv[2]:
        print(m["topic"], j["event"], j["alert_id"])
EOP
}
# check_pair STREAM RAISED CLEARED TOPIC WHAT: the first RAISED event of
# STREAM (on TOPIC) has exactly one CLEARED event, on TOPIC
check_pair() {
    ev=$(events "$D/sub.jsonl" "$1")
    first=$(echo "$ev" | grep " $2 " | head -1)
    id=${first##* }
    on=$(echo "$ev" | grep " $3 $id\$")
    if [ -n "$id" ] && [ "${first%% *}" = "$4" ] && [ "$(echo "$on" | grep -c .)" -eq 1 ] &&
       [ "${on%% *}" = "$4" ]; then
        it_ok "$5: cleared once, on $4 where it was raised"
    else
        it_fail "$5: cleared once, on $4 where it was raised" "events of $1: $(echo "$ev" | tr '\n' ';')"
    fi
}

it_sub_start
sleep 0.3

# ---- A. reload ----------------------------------------------------------------
conf anomalyd/alerts
start_daemon A
START=$(( $(date +%s) - 800 * 60 ))
F1='cavitation@300m+100m'; F2='cavitation@550m+100m'; FQ='stuck@300m+100m:1:pressure'
$H pub --port "$IT_PORT" --rows 380 --start "$START" --fault "$F1" --fault "$F2"
$H pub --port "$IT_PORT" --rows 380 --start "$START" --fault "$FQ" --topic 'sensors/dq{device}/pump'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 20 >/dev/null &&
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/dqpump1 event=dq_raised --timeout 20 >/dev/null ||
    it_fail "A: alerts raised before the reload" "$(events "$D/sub.jsonl" pump1; tail -3 "$D/daemonA.log")"
conf anomalyd/alarms
kill -HUP "$DPID"
it_wait_log "$D/daemonA.log" 'configuration reloaded' 20 ||
    it_fail "A: reload" "$(tail -3 "$D/daemonA.log")"
# the faults end (row 400): both alerts clear; a second fault at row 550
$H pub --port "$IT_PORT" --rows 700 --start-row 380 --start "$START" --fault "$F1" --fault "$F2"
$H pub --port "$IT_PORT" --rows 480 --start-row 380 --start "$START" --fault "$FQ" --topic 'sensors/dq{device}/pump'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alarms/pump/pump1 event=cleared --timeout 20 >/dev/null
sleep 1
check_pair pump1 raised cleared anomalyd/alerts/pump/pump1 "A: reload: the model alert open across it"
check_pair dqpump1 dq_raised dq_cleared anomalyd/alerts/pump/dqpump1 "A: reload: the data-quality alert open across it"
# the retained state lists the open data-quality alert as before (the topic
# it was raised on is the daemon's own bookkeeping)
dqk=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
keys = set()
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/dqpump1" and m["payload"]:
        for x in json.loads(m["payload"]).get("data_quality", []):
            keys |= set(x)
print(" ".join(sorted(keys)))
EOP
)
if [ "$dqk" = "alert_id check feature since start" ]; then
    it_ok "A: the retained state lists the open data-quality alert with its documented fields ($dqk)"
else
    it_fail "A: the retained state lists the open data-quality alert with its documented fields" "keys: $dqk"
fi
ev=$(events "$D/sub.jsonl" pump1)
n=$(echo "$ev" | grep -c '^anomalyd/alarms/pump/pump1 raised ')
if [ "$n" -eq 1 ] && echo "$ev" | grep -q '^anomalyd/alarms/pump/pump1 cleared '; then
    it_ok "A: the alert raised after the reload is raised and cleared on the new topic"
else
    it_fail "A: the alert raised after the reload is raised and cleared on the new topic" \
        "$(echo "$ev" | tr '\n' ';')"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ---- B. restart with a state_dir --------------------------------------------------
conf anomalyd/alerts
start_daemon B
$H pub --port "$IT_PORT" --rows 380 --start "$START" --fault "$F1" --topic 'sensors/{device}x/pump' \
    --fault-devices pump1
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1x event=raised --timeout 20 >/dev/null ||
    it_fail "B: alert raised before the restart" "$(events "$D/sub.jsonl" pump1x; tail -3 "$D/daemonB.log")"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
conf anomalyd/alarms
start_daemon C
$H pub --port "$IT_PORT" --rows 480 --start-row 380 --start "$START" --fault "$F1" \
    --topic 'sensors/{device}x/pump' --fault-devices pump1
$H wait --file "$D/sub.jsonl" --match stream=pump1x event=cleared --timeout 20 >/dev/null
sleep 1
check_pair pump1x raised cleared anomalyd/alerts/pump/pump1x "B: restart: the model alert open across it"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
