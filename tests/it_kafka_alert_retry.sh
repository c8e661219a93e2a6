#!/bin/sh
# it_kafka_alert_retry.sh - an alert event the Kafka cluster does not take
# within message.timeout.ms (the alert topic's leader down) is produced
# again until it is delivered: before, the delivery failure was logged and
# the event lost, so the alert's subscribers never heard of it (or held it
# open forever when its clear was the one lost). librdkafka's mock cluster
# (the alert topic led by broker 3, which SIGUSR2 takes down and up again)
# and a real mosquitto, on 127.0.0.1. The timeout is set under librdkafka's
# other name for it, delivery.timeout.ms (before, the daemon's default of 0
# replaced it: the event waited, never "produced again").
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_alert_retry.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_alert_retry" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start --slow al:1:ad in:1 al:1 || exit 1   # FAST, broker 1: the group's coordinator, topic in

cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kretry"},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "ad", "alert_topic": "al",
           "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300",
                          "delivery.timeout.ms": "2000"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
$AD_BIN run -c "$D/a.json" 2> "$D/a.log" & DPID=$!
it_wait_log "$D/a.log" 'kafka: owns in\[0\]' 20 || it_fail "a owns in[0]" "$(tail -3 "$D/a.log")"
# the alert topic's leader goes down; the pump's cavitation alerts meanwhile
kill -USR2 "$MPID"
$PYTHON tests/it_kafka_gen.py 1 0 380 'cavitation@300m+200m' |
    kcat -P -K'|' -b "$FAST" -t in -p 0 2>> "$D/kcat.out"
it_wait_log "$D/a.log" 'alert pump1-.* raised' 20 || it_fail "the alert is raised" "$(tail -3 "$D/a.log")"
it_wait_until 15 grep -q 'kafka: alert event to al not delivered\|kafka: delivery to al failed' "$D/a.log"
sleep 1
kill -USR2 "$MPID"                # up again
raised() {
    kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | grep -q '"event":"raised"'
}
it_wait_until 20 raised
if raised && grep -q 'kafka: alert event to al not delivered (.*): produced again' "$D/a.log"; then
    it_ok "an alert event not delivered while the alert topic's leader was down reaches it once the leader is back"
else
    it_fail "an alert event not delivered while the alert topic's leader was down reaches it once the leader is back" \
        "$(grep 'kafka:' "$D/a.log" | tail -4)"
fi
n=$(kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | grep -c '"event":"raised"')
if [ "$n" -eq 1 ]; then
    it_ok "the alert is raised on al once"
else
    it_fail "the alert is raised on al once" "$n raised events"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
