#!/bin/sh
# it_kafka_alert_outbox.sh - an alert raised to Kafka (alerts_to kafka)
# while the alert topic's leader is down, then the daemon killed -9. Its
# state file already holds the open alert, so a restart does not raise it
# again: only outbox.json can bring the raised event to the Kafka topic.
# Before, a Kafka alert event not yet delivered was lost by a crash.
# librdkafka's mock cluster (the alert topic led by broker 3, which SIGUSR2
# takes down and up) and a real mosquitto, on 127.0.0.1.
#  1. start; broker 3 down; pump1's faulty rows (MQTT): its alert raised
#     (log), its state file holds it open, outbox.json holds the event
#  2. kill -9; broker 3 up; start again: the raised event reaches al once
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_alert_outbox.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_alert_outbox" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start --slow al:1:ad al:1 || exit 1

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kaout", "qos_subscribe": 1},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "ad", "alert_topic": "al"},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
start() { # start N: wait for the Nth connect
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
raised_on_al() {
    kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | grep '"event":"raised"' |
        grep -o '"alert_id":"[^"]*"' | cut -d'"' -f4
}

# ---- 1. the alert topic's leader down; pump1's alert raised ---------------------------------
start 1
kill -USR2 "$MPID"
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --rows 380 --start "$START" --fault 'cavitation@300m+100m'
it_wait_log "$D/daemon.log" 'alert pump1-[0-9-]* raised' 30 &&
    it_wait_until 10 grep -q '"open":{' "$D/state/pump/pump1.state.json"
id=$(grep -o 'alert pump1-[0-9-]* raised' "$D/daemon.log" | head -1 | cut -d' ' -f2)
it_wait_until 10 grep -qs '"kafka_topic":"al"' "$D/state/outbox.json"
if [ -n "$id" ] && grep -q "\"kafka_topic\":\"al\".*$id" "$D/state/outbox.json"; then
    it_ok "1: alert $id raised while al's leader is down: outbox.json holds its event for Kafka"
else
    it_fail "1: alert raised while al's leader is down: outbox.json holds its event for Kafka" \
        "id $id; outbox: $(cut -c1-200 "$D/state/outbox.json" 2>/dev/null)"
fi
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ---- 2. up again; restart: the event reaches al ------------------------------------------------
kill -USR2 "$MPID"
start 2
it_wait_until 20 sh -c "kcat -C -b '$BOOT' -t al -e -q -f '%s\n' 2>/dev/null | grep -q '\"event\":\"raised\"'"
got=$(raised_on_al)
if [ -n "$id" ] && [ "$got" = "$id" ]; then
    it_ok "2: after kill -9 and a restart, alert $id's raised event reaches al, once"
else
    it_fail "2: after kill -9 and a restart, the alert's raised event reaches al, once" \
        "raised $id; on al: $(echo "$got" | tr '\n' ' '); $(grep 'outbox\|kafka:' "$D/daemon.log" | grep -v '^<7>' | tail -3)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
