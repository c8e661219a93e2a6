#!/bin/sh
# it_daemon_reload_queue.sh - broker.max_queued_alerts changed by a reload
# (docs/config.md: reload yes) bounds the alert queue kept while the broker
# is unreachable from then on (a real mosquitto on 127.0.0.1).
#  Four streams raise a data-quality alert each (stuck pressure); a reload
#  lowers max_queued_alerts from 10000 to 2; the broker stops; the daemon
#  stops: the clears of the four alerts meet the bound of 2: "stopping
#  with 2 queued" (before, the reload left the bound at 10000: 4 queued),
#  and a warning names the first clear dropped (before, the drops were
#  counted in the stats alone, which cannot reach the broker then).
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_reload_queue.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SPID=
trap it_daemon_cleanup EXIT
it_broker_up
conf() { # conf MAX_QUEUED_ALERTS
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-rqueue", "qos_subscribe": 1,
            "reconnect_min_s": 0.2, "reconnect_max_s": 0.5, "max_queued_alerts": $1},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "quality": {"learn_samples": 100, "stuck_samples": 30, "range_k": 0}}]}
EOC
}
conf 10000
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 400 * 60 ))
$H pub --port "$IT_PORT" --devices 4 --rows 250 --start "$START" \
    --fault 'stuck@150m+100m:1:pressure' --fault-devices pump1,pump2,pump3,pump4
raised() { [ "$(grep -c 'data quality .* raised' "$D/daemon.log")" -ge 4 ]; }
if it_wait_until 20 raised; then
    it_ok "four data-quality alerts open"
else
    it_fail "four data-quality alerts open" "$(grep 'data quality' "$D/daemon.log" | tail -3)"
fi

conf 2
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 ||
    it_fail "reload" "$(grep reload "$D/daemon.log" | tail -3)"
it_broker_stop
it_wait_log "$D/daemon.log" 'mqtt: disconnected' 10 ||
    it_fail "the daemon sees the broker gone" "$(tail -3 "$D/daemon.log")"
it_daemon_stop
n=$(sed -n 's/.*mqtt: stopping with \([0-9]*\) queued.*/\1/p' "$D/daemon.log" | tail -1)
c=$(grep -c 'data quality .* cleared' "$D/daemon.log")
if [ "$c" -ge 4 ] && [ "${n:-0}" -eq 2 ]; then
    it_ok "after the reload the queue is bounded by max_queued_alerts 2 ($c clears at stop, $n queued)"
else
    it_fail "after the reload the queue is bounded by max_queued_alerts 2" \
        "clears $c; $(grep 'stopping with' "$D/daemon.log")"
fi
if grep -q "mqtt: the queue kept while the broker is unreachable is full (broker.max_queued_alerts 2): the oldest messages are dropped, the first: alert .* dq_cleared to anomalyd/alerts/pump/pump" "$D/daemon.log"; then
    it_ok "the first message dropped from the full queue is said in a warning naming it"
else
    it_fail "the first message dropped from the full queue is said in a warning naming it" \
        "$(grep 'mqtt:' "$D/daemon.log" | tail -4)"
fi
