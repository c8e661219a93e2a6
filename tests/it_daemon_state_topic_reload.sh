#!/bin/sh
# it_daemon_state_topic_reload.sh - a reload that moves a kept detector's
# alert.state_topic to another template: the old retained states should be
# emptied (no ghost a new subscriber takes for live) and the streams'
# states should appear on the new topic without waiting for a state change.
. tests/lib.sh
it_setup it_state_topic_reload
it_broker_up
write_conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-sttr", "qos_subscribe": 1},
 "workers": 1,
 "detectors": [{"name": "pumpA", "model": "$MODEL", "topics": ["a/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 1000}, "alert": {"state_topic": "$1/{detector}/{stream}"}}]}
EOC
}
write_conf anomalyd/state
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
$H pub --port "$IT_PORT" --devices 1 --rows 5 --topic 'a/{device}/pump' >/dev/null
it_wait_topic "$IT_PORT" anomalyd/state/pumpA/pump1 10 >/dev/null ||
    it_fail "state of pumpA/pump1 published" "$(tail -5 "$D/daemon.log")"
write_conf anomalyd/moved
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 ||
    it_fail "reload" "$(tail -5 "$D/daemon.log")"
sleep 1
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t 'anomalyd/#' -v > "$D/fresh.txt" 2>/dev/null & SPID=$!
sleep 2
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
if grep -q '^anomalyd/state/pumpA/pump1 {' "$D/fresh.txt"; then
    it_fail "the old state topic is emptied when a reload moves alert.state_topic" \
        "a new subscriber still gets: $(grep '^anomalyd/state/' "$D/fresh.txt" | cut -c1-120)"
else
    it_ok "the old state topic is emptied when a reload moves alert.state_topic"
fi
if grep -q '^anomalyd/moved/pumpA/pump1 {' "$D/fresh.txt"; then
    it_ok "the stream's state is on the new state topic after the reload"
else
    it_fail "the stream's state is on the new state topic after the reload" \
        "nothing retained there until the stream's state changes: $(cut -c1-100 "$D/fresh.txt")"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
