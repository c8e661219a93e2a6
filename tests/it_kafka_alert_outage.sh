#!/bin/sh
# it_kafka_alert_outage.sh - the alert topic's leader away (alerts_to both):
# the instance reads and scores on, and raises its alerts on MQTT, while
# the Kafka alert events wait in the producer; the offsets wait for them.
# Before, the commit barrier stopped reading until they were delivered:
# for as long as the leader was away the instance scored nothing, on any
# topic, and raised no alert, MQTT's neither, its status online all the
# while (here: 400 of the 600 records read during the outage).
# librdkafka's mock cluster (the alert topic led by broker 3, which SIGUSR2
# takes down and up) and a real mosquitto, on 127.0.0.1.
#   2 pumps, rows 0..99 (pump1's blockage raised); broker 3 down; rows
#   100..199 with a blockage on pump2, then rows 200..299: every record
#   read and scored while it is down, pump2's alert on MQTT; broker 3 up:
#   the Kafka events delivered, the offsets committed again.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_alert_outage.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID=
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    it_kafka_cleanup
}
trap cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_alert_outage" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start --slow al:1:ad in:1 al:1 || exit 1   # FAST, broker 1: the group's coordinator, topic in
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/#' > "$D/mq" 2>/dev/null & SPID=$!

cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-koutage", "stats_interval_s": 0.5,
            "stats_topic": "anomalyd/stats/a"},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "ad", "alert_topic": "al",
           "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "both",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
stat() {    # KEY of the last stats message
    grep '^anomalyd/stats/a ' "$D/mq" | tail -1 | sed 's/^[^ ]* //' |
        $PYTHON -c 'import json, sys; print(int(json.load(sys.stdin).get(sys.argv[1], 0)))' "$1" 2>/dev/null || echo 0
}
at_least() { [ "$(stat "$1")" -ge "$2" ]; }
mqtt_raised() {     # STREAM: its raised alerts on MQTT
    grep "^anomalyd/alerts/pump/$1 " "$D/mq" | grep -c '"event":"raised"'
}
gen() {
    $PYTHON tests/it_kafka_gen.py "$@" | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
}

$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
gen --faulty 1 2 0 100 "blockage@40m+40m:3"
it_wait_until 60 at_least messages_in 200 && it_wait_until 30 sh -c "[ \$(kcat -C -b $BOOT -t al -o beginning -e -q 2>/dev/null | grep -c raised) -ge 1 ]" ||
    { it_fail "rows 0..99 read, pump1's alert on al" "$(stat messages_in) records; $(tail -3 "$D/a.log")"; exit 0; }
kill -USR2 "$MPID"                  # broker 3, the alert topic's leader, down
sleep 1
gen --faulty 2 2 100 200 "blockage@140m+40m:3"
gen --faulty 2 2 200 300
if it_wait_until 30 at_least messages_in 600 && it_wait_until 10 at_least windows_scored 542; then
    it_ok "the alert topic's leader away: every record read and scored on ($(stat messages_in) records, $(stat windows_scored) windows)"
else
    it_fail "the alert topic's leader away: every record read and scored on" \
        "$(stat messages_in) of 600 records, $(stat windows_scored) of 542 windows"
fi
it_check "pump2's alert raised on MQTT while the Kafka alert topic is away" \
    it_wait_until 10 sh -c "[ \$(grep '^anomalyd/alerts/pump/pump2 ' $D/mq | grep -c '\"event\":\"raised\"') -ge 1 ]"
it_check "the wait is said: offsets not committed, records read on" \
    it_wait_until 10 grep -q 'not delivered after 1000 ms .*offsets not committed until they are, records read on' "$D/a.log"
kill -USR2 "$MPID"                  # and up again
it_check "broker 3 back: pump2's alert events reach the alert topic" \
    it_wait_until 60 sh -c "[ \$(kcat -C -b $BOOT -t al -o beginning -e -q 2>/dev/null | grep '\"stream\":\"pump2\"' | grep -c raised) -ge 1 ]"
it_check "the offsets committed again once delivered" \
    it_wait_until 60 grep -q 'kafka: messages delivered again: offsets committed' "$D/a.log"
[ "$(grep -c 'not delivered after 1000 ms' "$D/a.log")" -eq 1 ] &&
    it_ok "said once for the outage" ||
    it_fail "said once for the outage" "$(grep 'not delivered after' "$D/a.log")"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
