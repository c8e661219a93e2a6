#!/bin/sh
# it_daemon_restart_state_topic.sh - alert.state_topic and the Home
# Assistant discovery prefix changed while the daemon was stopped. What
# each stream published retained on the old topics is emptied at start (a
# SIGHUP making the same change empties them, it_daemon_state_topic_reload.sh),
# from what its state file says it published; the file is rewritten, so a
# second start publishes nothing.
#  1. state_topic anomalyd/state/{detector}/{stream}, Home Assistant on:
#     pump1 runs without an alert, pump2 raises one; the daemon stops.
#  2. state_topic anomalyd/st2/{detector}/{stream}, discovery prefix ha2,
#     start: a new subscriber to the old topics gets nothing retained
#     (pump1, not restored, and pump2, restored for its open alert); one
#     line for the detector with the count.
#  3. start again, unchanged: nothing is published on the old topics, no
#     such line.
. tests/lib.sh
it_setup it_restart_st
it_broker_up

# conf STATE_TOPIC DISCOVERY_PREFIX
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-rst", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state",
 "homeassistant": {"enabled": true, "discovery_prefix": "$2"},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["plant/#"],
   "stream_levels": [1], "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "$1"}}]}
EOC
}
start() {
    $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
    it_wait_log "$D/daemon.log" 'mqtt: connected' 10 "$1" ||
        { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
# fresh TAG: what a new subscriber to the old topics gets (retained)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
OLD='anomalyd/state/{detector}/{stream}'
NEW='anomalyd/st2/{detector}/{stream}'

# ---- 1. old topics ------------------------------------------------------------------------------
conf "$OLD" homeassistant
it_sub_start
sleep 0.3
start 1
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 2 --rows 360 --start "$START" --fault 'cavitation@300m+300m' \
    --fault-devices pump2 --topic 'plant/{device}/data'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump2 event=raised --timeout 20 >/dev/null ||
    it_fail "1: alert raised on pump2" "$(tail -3 "$D/daemon.log")"
it_wait_topic "$IT_PORT" anomalyd/state/pump/pump1 10 '"phase":"detecting"' >/dev/null ||
    it_fail "1: pump1 detecting" "$(tail -3 "$D/daemon.log")"
fresh 1
n1=$(grep -c -E '^(anomalyd/state/pump/pump[12]|homeassistant/[a-z_]+/it-rst/pump_pump[12](_score|_severity)?/config) [{]' "$D/fresh1.txt")
if [ "$n1" = 8 ]; then
    it_ok "1: pump1 and pump2 keep their state and 3 Home Assistant discovery configs each retained (8)"
else
    it_fail "1: pump1 and pump2 keep their state and 3 Home Assistant discovery configs each retained (8)" \
        "$n1: $(cut -c1-80 "$D/fresh1.txt" | tr '\n' ';')"
fi
stop

# ---- 2. moved while stopped, start ------------------------------------------------------------
conf "$NEW" ha2
start 2
it_wait_log "$D/daemon.log" 'stream pump/pump2: calibration restored' 10 ||
    it_fail "2: pump2 restored for its open alert" "$(tail -3 "$D/daemon.log")"
it_wait_log "$D/daemon.log" 'detector pump: .* published on other topics now' 10 >/dev/null
fresh 2
if [ ! -s "$D/fresh2.txt" ]; then
    it_ok "2: state_topic and discovery prefix changed while stopped: nothing left retained on the old topics"
else
    it_fail "2: state_topic and discovery prefix changed while stopped: nothing left retained on the old topics" \
        "a new subscriber still gets: $(cut -c1-80 "$D/fresh2.txt" | tr '\n' ';')"
fi
if grep -q '^<5>detector pump: 2 stream(s) published on other topics now' "$D/daemon.log" &&
   ! grep -q 'anomalyd/state/' "$D/state/pump/pump1.state.json"; then
    it_ok "2: one line for the detector (2 streams); pump1's file no longer names the old topic"
else
    it_fail "2: one line for the detector (2 streams); pump1's file no longer names the old topic" \
        "$(grep 'other topics' "$D/daemon.log") $(grep -o '"published":.*' "$D/state/pump/pump1.state.json" | cut -c1-200)"
fi
stop

# ---- 3. unchanged, start again: nothing published on the old topics -----------------------------
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t 'anomalyd/state/#' -t 'homeassistant/#' -v \
    > "$D/again.txt" 2>/dev/null & _ap=$!
sleep 0.3
start 3
it_wait_log "$D/daemon.log" 'stream pump/pump2: calibration restored' 10 2 >/dev/null
sleep 1.5
kill "$_ap" 2>/dev/null; wait "$_ap" 2>/dev/null
if [ ! -s "$D/again.txt" ] && [ "$(grep -c 'published on other topics now' "$D/daemon.log")" = 1 ]; then
    it_ok "3: a second start publishes nothing on the old topics"
else
    it_fail "3: a second start publishes nothing on the old topics" \
        "$(wc -l < "$D/again.txt") message(s): $(cut -c1-80 "$D/again.txt" | tr '\n' ';') $(grep 'other topics' "$D/daemon.log")"
fi
stop
