#!/bin/sh
# it_daemon_badlog.sh - the bad-input log budget (log_rate_per_min lines a
# minute) is kept per kind of bad input against a real mosquitto: one
# device flooding malformed payloads uses its own budget, and an oversized
# payload or a future timestamp of another device is still logged; the
# rest are counted and said in one line at the next minute.
. tests/lib.sh
it_setup it_daemon_badlog
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-badlog", "stats_interval_s": 0.5},
 "workers": 1, "log_rate_per_min": 3, "max_payload_bytes": 2000,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
it_daemon_up
i=0
while [ $i -lt 20 ]; do
    mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/noisy/pump -m '{"vibration":'
    i=$((i + 1))
done
big=$($PYTHON -c 'print("{\"vibration\": 1, \"pad\": \"" + "x" * 3000 + "\"}")')
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/other/pump -m "$big"
fut=$(( ($(date +%s) + 86400) * 1000 ))
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/third/pump \
    -m "{\"vibration\":1,\"current\":10,\"pressure\":3,\"temperature\":40,\"flow\":50,\"ts\":$fut}"
it_wait_until 10 grep -q "stream third: 5 sample(s) rejected as future" "$D/daemon.log"
n=$(grep -c "topic sensors/noisy/pump: malformed JSON" "$D/daemon.log")
if [ "$n" = 3 ]; then
    it_ok "20 malformed payloads from one device: 3 lines logged (log_rate_per_min 3)"
else
    it_fail "20 malformed payloads from one device: 3 lines logged" "$n lines"
fi
if grep -q "topic sensors/other/pump: 3[0-9]*-byte payload over max_payload_bytes 2000, dropped" "$D/daemon.log" &&
   grep -q "stream third: 5 sample(s) rejected as future" "$D/daemon.log"; then
    it_ok "another device's oversized payload and future timestamp are still logged"
else
    it_fail "another device's oversized payload and future timestamp are still logged" \
        "$(grep -v '^$' "$D/daemon.log" | tail -6)"
fi
exit 0
