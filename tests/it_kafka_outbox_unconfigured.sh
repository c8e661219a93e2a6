#!/bin/sh
# it_kafka_outbox_unconfigured.sh - outbox.json holds an alert event for
# Kafka, and the daemon starts without kafka.bootstrap_servers: the event is
# not produced (a warning says so) and outbox.json no longer holds it once
# rewritten, whatever else it holds. Before, a file holding only such events
# was never rewritten: every start warned again, and a later start with
# Kafka configured again produced the stale event (while one holding an
# MQTT message as well lost it at its next rewrite). A real mosquitto on
# 127.0.0.1; no Kafka.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_outbox_unconf.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID=
cleanup() {
    [ -n "${KEEP:-}" ] && rm -rf "$KEEP" && cp -r "$D" "$KEEP"   # KEEP=DIR: logs kept there
    it_daemon_cleanup
}
trap cleanup EXIT
it_broker_up
mkdir -p "$D/state"
cat > "$D/state/outbox.json" <<'EOO'
{"version":1,"messages":[{"kafka_topic":"al","key":"pump/pump1","payload":"{\"schema\":1,\"kind\":\"model\",\"alert_id\":\"pump1-1700000000000-1\",\"event\":\"raised\",\"detector\":\"pump\",\"stream\":\"pump1\"}"}]}
EOO
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kaunc", "stats_interval_s": 1},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
$AD_BIN run -c "$D/ad.json" 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
it_wait_until 5 sh -c "! grep -q pump1-1700000000000-1 '$D/state/outbox.json' 2>/dev/null"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
if grep -q 'an alert event for Kafka topic al (key pump/pump1) not produced: kafka.bootstrap_servers is not configured now' "$D/daemon.log" &&
   ! grep -q pump1-1700000000000-1 "$D/state/outbox.json" 2>/dev/null; then
    it_ok "an outbox event for Kafka, Kafka no longer configured: warned about and gone from outbox.json"
else
    it_fail "an outbox event for Kafka, Kafka no longer configured: warned about and gone from outbox.json" \
        "$(grep outbox "$D/daemon.log" | tail -2); outbox: $(cut -c1-120 "$D/state/outbox.json" 2>/dev/null)"
fi
