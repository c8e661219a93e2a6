#!/bin/sh
# it_kafka_alert_queue_full.sh - Kafka alert events (alerts_to kafka) while
# the alert topic's leader is down and the producer's queue is full
# (queue.buffering.max.messages, here 1: the same as a long outage filling
# librdkafka's default 100000). An event the producer refuses with 'Queue
# full' is kept, in order, in outbox.json and produced once the queue has
# room. Before, it was dropped with a warning: its state file held the
# alert open, so nothing raised it again and al never heard of it.
# librdkafka's mock cluster (the alert topic led by broker 3, which SIGUSR2
# takes down and up) and a real mosquitto, on 127.0.0.1.
#  1. broker 3 down; three pumps' faulty rows: three alerts raised;
#     outbox.json holds the three events
#  2. broker 3 up: the three raised events reach al, each once
#  3. broker.max_queued_alerts 1, broker 3 down again, three more alerts:
#     one in the producer's queue, at most one waiting for room (the older
#     one dropped, a warning says so once); broker 3 up: two reach al
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_alert_queue_full.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_alert_queue_full" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start --slow al:1:ad al:1 || exit 1

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kaqf", "qos_subscribe": 1},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "ad", "alert_topic": "al",
           "properties": {"queue.buffering.max.messages": "1"}},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
$AD_BIN run -c "$D/ad.json" 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
raised_on_al() {
    kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | grep '"event":"raised"' |
        grep -o '"alert_id":"[^"]*"' | cut -d'"' -f4 | sort
}

# ---- 1. the alert topic's leader down; three alerts raised -----------------------------------
kill -USR2 "$MPID"
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 3 --rows 380 --start "$START" \
    --fault 'cavitation@300m+100m' --fault-devices pump1,pump2,pump3
it_wait_log "$D/daemon.log" 'alert pump[0-9]-[0-9-]* raised' 30 3
ids=$(grep -o 'alert pump[0-9]-[0-9-]* raised' "$D/daemon.log" | cut -d' ' -f2 | sort | head -3)
n=$(echo "$ids" | grep -c .)
kept() {
    for i in $ids; do grep -q "\"kafka_topic\":\"al\"[^}]*$i" "$D/state/outbox.json" || return 1; done
}
it_wait_until 10 kept
if [ "$n" -eq 3 ] && kept; then
    it_ok "1: three alerts raised while al's leader is down and the producer's queue is full: outbox.json holds the three events"
else
    it_fail "1: three alerts raised while al's leader is down and the producer's queue is full: outbox.json holds the three events" \
        "raised $(echo $ids); $(grep 'kafka:' "$D/daemon.log" | tail -2); outbox: $(cut -c1-300 "$D/state/outbox.json" 2>/dev/null)"
fi

# ---- 2. up again: the three events reach al -----------------------------------------------------
kill -USR2 "$MPID"
it_wait_until 30 sh -c "[ \$(kcat -C -b '$BOOT' -t al -e -q -f '%s\n' 2>/dev/null | grep -c '\"event\":\"raised\"') -ge 3 ]"
got=$(raised_on_al)
if [ "$n" -eq 3 ] && [ "$got" = "$ids" ]; then
    it_ok "2: once al's leader is back, the three raised events reach it, each once"
else
    it_fail "2: once al's leader is back, the three raised events reach it, each once" \
        "raised $(echo $ids); on al: $(echo $got); $(grep 'kafka:' "$D/daemon.log" | tail -3)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ---- 3. at most broker.max_queued_alerts wait for room --------------------------------------
kill -USR2 "$MPID"
cat > "$D/ad3.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kaqf3", "qos_subscribe": 1,
            "max_queued_alerts": 1},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "ad", "alert_topic": "al",
           "properties": {"queue.buffering.max.messages": "1"}},
 "workers": 1, "state_dir": "$D/state3",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["b/+/pump"],
   "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
$AD_BIN run -c "$D/ad3.json" 2>> "$D/daemon3.log" & DPID=$!
it_wait_log "$D/daemon3.log" 'mqtt: connected' 10 ||
    { it_fail "3: daemon connects" "$(tail -5 "$D/daemon3.log")"; exit 1; }
$H pub --port "$IT_PORT" --devices 3 --rows 380 --start "$START" --topic 'b/{device}/pump' \
    --fault 'cavitation@300m+100m' --fault-devices pump1,pump2,pump3
it_wait_log "$D/daemon3.log" 'alert pump[0-9]-[0-9-]* raised' 30 3
w=$(grep -c 'more than 1 alert events wait for room' "$D/daemon3.log")
kill -USR2 "$MPID"
it_wait_until 30 sh -c "[ \$(kcat -C -b '$BOOT' -t al -e -q -f '%s\n' 2>/dev/null | grep -c '\"event\":\"raised\"') -ge 5 ]"
sleep 1
n3=$(kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" | grep -c '"event":"raised"')
if [ "$w" -eq 1 ] && [ "$n3" -eq 5 ]; then
    it_ok "3: max_queued_alerts 1: one of three events waiting for room dropped, with one warning; two reach al"
else
    it_fail "3: max_queued_alerts 1: one of three events waiting for room dropped, with one warning; two reach al" \
        "warnings $w; raised events on al $n3 (3 from 2); $(grep 'kafka:' "$D/daemon3.log" | tail -3)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
