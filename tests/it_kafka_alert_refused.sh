#!/bin/sh
# it_kafka_alert_refused.sh - an alert event the Kafka cluster refuses for
# good (here MSG_SIZE_TOO_LARGE, as a broker answers an event over the alert
# topic's max.message.bytes) is not produced again at once,
# over and over: before, each refusal was answered by producing it again,
# a loop at the speed of the round trip, a warning each time, for as long
# as the refusal lasted (for ever, for an event too large), and the offsets
# never committed meanwhile. An event not delivered within
# message.timeout.ms is still produced again (it_kafka_alert_retry).
# librdkafka's mock cluster (its first 200 produce requests refused) and a
# real mosquitto, on 127.0.0.1.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_alert_refused.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_alert_refused" "kcat not installed"; exit 0; }
it_broker_up
IT_KAFKA_ERRORS=200:10
it_kafka_start al:1 || exit 1

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-karef", "qos_subscribe": 1},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "alert_topic": "al"},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
$AD_BIN run -c "$D/ad.json" 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --rows 380 --start "$START" --fault 'cavitation@300m+100m'
it_wait_log "$D/daemon.log" 'alert pump1-[0-9-]* raised' 30 ||
    it_fail "the alert is raised" "$(tail -3 "$D/daemon.log")"
it_wait_log "$D/daemon.log" 'kafka: .*al.*Message size too large' 10
sleep 3
n=$(grep -c 'kafka: .*Message size too large' "$D/daemon.log")
if [ "$n" -eq 1 ] && grep -q "kafka: alert event to al refused (Broker: Message size too large): dropped" "$D/daemon.log"; then
    it_ok "an alert event the cluster refuses (message size too large) is warned about once, not produced again in a loop"
else
    it_fail "an alert event the cluster refuses (message size too large) is warned about once, not produced again in a loop" \
        "$n warnings; $(grep 'kafka:' "$D/daemon.log" | tail -2)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
