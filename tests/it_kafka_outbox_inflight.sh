#!/bin/sh
# it_kafka_outbox_inflight.sh - an alert raised while the broker is
# connected but does not answer (frozen: it takes the message into its
# socket and never acknowledges it), then the machine goes down (the daemon
# and the broker killed -9). The stream's state file already holds the open
# alert, so a restart does not raise it again: only outbox.json can bring
# the raised event back. The stream is read from Kafka (librdkafka's mock
# cluster on 127.0.0.1), so its rows arrive while the broker is frozen.
#  1. start, connected; the broker frozen (SIGSTOP); pump1's faulty rows
#     produced: its alert is raised (log), its state file holds it open;
#     outbox.json holds the raised event.
#  2. the daemon and the broker killed; a new broker; start: a subscriber
#     gets pump1's raised event.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_kafka_outbox.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID= ; MPID=
cleanup() {
    [ -n "${IT_BROKER_PID:-}" ] && kill -CONT "$IT_BROKER_PID" 2>/dev/null
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null
    it_daemon_cleanup
}
trap cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_outbox_inflight" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 || exit 1

conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kout", "qos_subscribe": 1, "keepalive": 60},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "it-kout", "commit_interval_s": 0.3},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
}
start() { # start N: wait for the Nth connect
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
# raised FILE: the alert id of pump1's raised event in FILE (a subscriber's)
raised() {
    $PYTHON - "$1" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/pump/pump1":
        j = json.loads(m["payload"])
        if j.get("event") == "raised":
            print(j["alert_id"]); break
EOP
}

# ---- 1. the broker frozen once connected; pump1's alert raised ---------------------------------
conf
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub1.jsonl" & SPID=$!
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -r -t anomalyd/it/ready -m x
it_wait_until 10 grep -qs anomalyd/it/ready "$D/sub1.jsonl"
start 1
it_wait_log "$D/daemon.log" 'kafka: owns in\[0\]' 30 ||
    { it_fail "1: the daemon owns in[0]" "$(tail -3 "$D/daemon.log")"; exit 1; }
kill -STOP "$IT_BROKER_PID"
$PYTHON tests/it_kafka_gen.py 1 0 380 'cavitation@300m+100m' |
    kcat -P -K'|' -b "$BOOT" -t in -p 0 2>> "$D/kcat.out"
it_wait_log "$D/daemon.log" 'alert pump1-[0-9-]* raised' 30 &&
    it_wait_until 10 grep -q '"open":{' "$D/state/pump/pump1.state.json"
id=$(grep -o 'alert pump1-[0-9-]* raised' "$D/daemon.log" | head -1 | cut -d' ' -f2)
sleep 0.5
cp "$D/state/outbox.json" "$D/outbox.at_kill" 2>/dev/null
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
kill -9 "$IT_BROKER_PID"; wait "$IT_BROKER_PID" 2>/dev/null; IT_BROKER_PID=
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=
if [ -n "$id" ] && grep -q "$id" "$D/outbox.at_kill" 2>/dev/null; then
    it_ok "1: raised while the broker does not answer: outbox.json holds the event once the state file has the alert"
else
    it_fail "1: raised while the broker does not answer: outbox.json holds the event once the state file has the alert" \
        "alert '$id'; outbox: $(cut -c1-200 "$D/outbox.at_kill" 2>&1)"
fi

# ---- 2. after the crash: the raised event is delivered -----------------------------------------
it_broker_start "$D" || { it_fail "broker starts again"; exit 1; }
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub2.jsonl" & SPID=$!
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -r -t anomalyd/it/ready -m x
it_wait_until 10 grep -qs anomalyd/it/ready "$D/sub2.jsonl"
conf
start 2
got() { [ "$(raised "$D/sub2.jsonl")" = "$id" ] || [ "$(raised "$D/sub1.jsonl")" = "$id" ]; }
it_wait_until 10 got
if [ -n "$id" ] && got; then
    it_ok "2: after the crash, pump1's raised event ($id) reaches a subscriber"
else
    it_fail "2: after the crash, pump1's raised event reaches a subscriber" \
        "alert '$id'; $(grep -E 'outbox|undelivered' "$D/daemon.log" | tail -3)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
