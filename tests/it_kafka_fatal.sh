#!/bin/sh
# it_kafka_fatal.sh - the idempotent producer's fatal error (the broker
# answers an out-of-order sequence number, as after an outage that broke
# the producer's sequence): from then on librdkafka refuses every message,
# so the daemon would run on while every Kafka alert event is dropped. It
# stops instead, keeps the alert event in outbox.json and exits with status
# 3 (systemd's Restart=on-failure starts it again); the next start produces
# the event. librdkafka's mock cluster (refusing the first produce
# requests) and a real mosquitto, on 127.0.0.1.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_fatal.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_fatal" "kcat not installed"; exit 0; }
it_broker_up
IT_KAFKA_ERRORS=${FATAL_ERRS:-1:45}
it_kafka_start al:1 || exit 1

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kfatal", "qos_subscribe": 1},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "alert_topic": "al"},
 "workers": 1, "state_dir": "$D/state",
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
it_wait_log "$D/daemon.log" 'alert pump1-[0-9-]* raised' 30
id=$(grep -o 'alert pump1-[0-9-]* raised' "$D/daemon.log" | head -1 | cut -d' ' -f2)
if it_wait_gone "$DPID" 30; then
    wait "$DPID"; rc=$?
else
    kill -9 "$DPID"; wait "$DPID" 2>/dev/null; rc=running
fi
DPID=
if [ "$rc" = 3 ] && grep -q 'kafka: .*fatal error: .*exit status 3' "$D/daemon.log" &&
   grep -q "\"kafka_topic\":\"al\".*$id" "$D/state/outbox.json"; then
    it_ok "a fatal producer error stops the daemon with exit status 3, alert $id kept in outbox.json"
else
    it_fail "a fatal producer error stops the daemon with exit status 3, the alert kept in outbox.json" \
        "exit $rc; $(grep -i 'fatal\|kafka:' "$D/daemon.log" | tail -3); outbox: $(cut -c1-200 "$D/state/outbox.json" 2>/dev/null)"
fi
$AD_BIN run -c "$D/ad.json" 2>> "$D/daemon2.log" & DPID=$!
it_wait_until 20 sh -c "kcat -C -b '$BOOT' -t al -e -q -f '%s\n' 2>/dev/null | grep -q '$id'"
if kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>/dev/null | grep '"event":"raised"' | grep -q "$id"; then
    it_ok "the next start produces alert $id's raised event"
else
    it_fail "the next start produces the alert's raised event" "$(grep -i 'kafka\|outbox' "$D/daemon2.log" | tail -3)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
