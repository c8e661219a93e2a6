#!/bin/sh
# it_kafka_dq_evict.sh - a Kafka-fed stream evicted while a data-quality
# alert is open: the eviction clears it (reason evicted) and writes the
# stream's record on kafka.state_topic without it, so the instance that
# next restores the stream from that topic does not clear it again (mock
# cluster and a real mosquitto, both on 127.0.0.1).
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_dq_evict.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
PUT="${AD_BUILD:-build}/tests/kafka_put"
DPID= ; SPID= ; MPID=
trap it_kafka_cleanup EXIT   # KEEP=DIR: logs kept there
command -v kcat > /dev/null || { it_skip "kafka_dq_evict" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 al:1 || exit 1
conf() { # conf NAME IDLE_EVICT_S
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-dqev-$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "g", "state_topic": "st",
           "alert_topic": "al", "commit_interval_s": 1,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "idle_evict_s": $2, "payload": {"format": "json"}, "calibration": {"windows": 100},
   "quality": {"learn_samples": 20, "stuck_samples": 0, "range_k": 0}}]}
EOC
}
alerts() { kcat -C -b "$BOOT" -t al -o beginning -e -q -f '%s\n' 2>/dev/null; }
mkdir -p "$D/state"
now=$(( $(date +%s) * 1000 ))
$PYTHON - $now > "$D/r1" <<'EOP'
import json, random, sys
now = int(sys.argv[1]); r = random.Random(7)
for i in range(60):
    row = {s: round(10 + r.gauss(0, 1), 4) for s in ["vibration","current","pressure","temperature","flow"]}
    print("%d|p1|%s" % (now - (59 - i) * 1000, json.dumps(row)))
EOP
"$PUT" "$BOOT" in 0 < "$D/r1" 2>> "$D/put.out" || { it_fail "records put on topic in" "$(tail -2 "$D/put.out")"; exit 1; }

# instance a: the device goes silent, a dropout is raised, the stream evicted
conf a 8
$AD_BIN run -c "$D/a.json" 2> "$D/a.log" & DPID=$!
if it_wait_log "$D/a.log" 'stream p1 idle for .*evicted' 90 &&
   it_wait_log "$D/a.log" 'data quality .* cleared: .*reason evicted' 5; then
    it_ok "a dropout raised, then the idle stream evicted and its alert cleared (evicted)"
else
    it_fail "a dropout raised, then the idle stream evicted and its alert cleared (evicted)" \
        "$(grep -i 'quality\|evict' "$D/a.log" | tail -4)"
fi
id=$(sed -n 's/.*data quality \(p1-dq-[^ ]*\) raised.*/\1/p' "$D/a.log" | head -1)
# the state record after the eviction, no alert open in it
if it_wait_until 20 sh -c "kcat -C -b '$BOOT' -t st -o -1 -e -q -f '%s\n' 2>/dev/null | grep -q '\"stream\":\"p1\"' &&
   ! kcat -C -b '$BOOT' -t st -o -1 -e -q -f '%s\n' 2>/dev/null | grep -q '\"dq_open\"'"; then
    it_ok "the stream's last state record, written at the eviction, lists no open data-quality alert"
else
    it_fail "the stream's last state record, written at the eviction, lists no open data-quality alert" \
        "$(kcat -C -b "$BOOT" -t st -o beginning -e -q -f '%s\n' 2>/dev/null | grep -o '"dq_open":[^]]*]' | tail -2)"
fi
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=

# instance b: the device sends again, its stream restored from topic st
echo "$(( $(date +%s) * 1000 ))|p1|{\"vibration\": 10, \"current\": 10, \"pressure\": 10, \"temperature\": 10, \"flow\": 10}" |
    "$PUT" "$BOOT" in 0 2>> "$D/put.out"
conf b 3600
$AD_BIN run -c "$D/b.json" 2> "$D/b.log" & DPID=$!
# its next dropout (the device silent again) shows the stream restored and live
it_wait_log "$D/b.log" 'data quality .* raised' 60 ||
    it_fail "instance b: the restored stream raises its next dropout" "$(tail -3 "$D/b.log")"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
n=$(alerts | grep '"event":"dq_cleared"' | grep -c "\"alert_id\":\"$id\"")
if [ -n "$id" ] && [ "$n" -eq 1 ] && ! grep -q "$id cleared" "$D/b.log"; then
    it_ok "data-quality alert $id cleared once (at the eviction), not again by the next instance"
else
    it_fail "data-quality alert $id cleared once (at the eviction), not again by the next instance" \
        "$n clears: $(alerts | grep '"dq_cleared"' | cut -c1-200 | tr '\n' ';')"
fi
