#!/bin/sh
# it_kafka_topic_moved.sh - a reload that moves a Kafka topic from one
# detector to another (the topics consumed stay the same, so it is
# accepted): the streams of the detector that no longer consumes the topic
# get no more data; they are removed as the streams of an MQTT topic no
# longer subscribed are, their open alerts cleared (reason reload), rather
# than left open (librdkafka's mock cluster and a real mosquitto, both on
# 127.0.0.1).
#  A consumes in, B in2; A/pump1 raises an alert (on Kafka topic al).
#  Reload: A consumes in2, B in, and a new detector C in as well.
#  A/pump1's alert is cleared once, reason reload; in's records go on to
#  B and C, whose streams raise and clear their alerts.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_topic_moved.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_topic_moved" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start al:1 in:1 in2:1 || exit 1

det() { # det NAME KAFKA_TOPIC
    cat <<EOD
{"name": "$1", "model": "$MODEL", "kafka_topics": ["$2"], "alerts_to": "kafka",
 "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
 "calibration": {"method": "fixed", "fixed": 0.3}}
EOD
}
conf() { # conf DETECTORS
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-ktmoved"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "it-ktmoved", "alert_topic": "al",
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300"}},
 "workers": 1, "detectors": [$1]}
EOC
}
produce() { # produce FROM TO: rows of pump1 to Kafka topic in, two faults
    $PYTHON tests/it_kafka_gen.py 1 "$1" "$2" 'cavitation@300m+100m' 'cavitation@550m+100m' |
        kcat -P -K'|' -b "$BOOT" -t in -p 0 2>> "$D/kcat.out"
}
# events DET/STREAM: "event alert_id reason" of its alert events on al
events() {
    kcat -C -b "$BOOT" -t al -e -q -f '%k|%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import json, sys
for line in sys.stdin:
    k, _, v = line.rstrip("\n").partition("|")
    try:
        j = json.loads(v)
    except ValueError:
        continue
    if k == sys.argv[1]:
        print(j["event"], j["alert_id"], j.get("reason", "-"))' "$1"
}
n_ev() { [ "$(events "$1" | grep -c "^$2 ")" -ge "$3" ]; }

conf "$(det A in), $(det B in2)"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'kafka: owns' 20 ||
    { it_fail "daemon owns the partitions" "$(tail -5 "$D/daemon.log")"; exit 1; }
produce 0 380
if it_wait_until 30 n_ev A/pump1 raised 1; then
    it_ok "A/pump1 raises an alert before the reload"
else
    it_fail "A/pump1 raises an alert before the reload" "$(tail -3 "$D/daemon.log")"
fi

conf "$(det A in2), $(det B in), $(det C in)"
kill -HUP "$DPID"
if it_wait_log "$D/daemon.log" 'configuration reloaded' 20; then
    it_ok "a reload that moves Kafka topic in from A to B (and adds C on it) is accepted"
else
    it_fail "a reload that moves Kafka topic in from A to B (and adds C on it) is accepted" \
        "$(grep reload "$D/daemon.log" | tail -3)"
fi
produce 380 700
it_wait_until 30 n_ev C/pump1 cleared 2
it_wait_until 10 n_ev B/pump1 cleared 2
id=$(events A/pump1 | sed -n 's/^raised \([^ ]*\) .*/\1/p' | head -1)
ev=$(events A/pump1)
if [ -n "$id" ] && [ "$(echo "$ev" | grep -c "^cleared $id reload\$")" -eq 1 ] &&
   [ "$(echo "$ev" | grep -c '^cleared ')" -eq 1 ]; then
    it_ok "A/pump1's alert, whose topic A no longer consumes, is cleared once at the reload (reason reload)"
else
    it_fail "A/pump1's alert, whose topic A no longer consumes, is cleared once at the reload (reason reload)" \
        "A/pump1 on al: $(echo "$ev" | tr '\n' ';')"
fi
b=$(events B/pump1 | grep -c '^raised '); c=$(events C/pump1 | grep -c '^raised ')
if [ "$b" -ge 1 ] && [ "$c" -ge 1 ]; then
    it_ok "in's records go on to B and C after the reload (alerts raised: B $b, C $c)"
else
    it_fail "in's records go on to B and C after the reload" "raised: B $b, C $c"
fi
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ "$rc" -eq 0 ] && it_ok "the daemon stops cleanly" || it_fail "the daemon stops cleanly" "exit $rc"
