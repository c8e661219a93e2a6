#!/bin/sh
# it_daemon_restore_unbuilt.sh - a stream restored at start for its open
# alert whose detector cannot be made. The settings were tried by the
# configuration's load and a model of the state dir that does not fit them
# is set aside (it_daemon_reload_unusable), so what is left is out of
# memory; an LD_PRELOAD shim (tests/fail_strdup.c, built here) makes the
# copy of the stream key pump1 fail, as it does then. What the broker shows
# must be true:
#  - the daemon runs no stream pump1: a new subscriber gets no retained
#    state and no Home Assistant entity of it (both from the run before the
#    restart), and a warning names the stream and why;
#  - with no detector nothing tells whether its alert ended: it is not
#    cleared, the state file keeps it, and the next start (memory back)
#    restores the stream with the alert, shown again.
# Under ASan (make check) the shim is preloaded with ASan's link-order
# check off.
. tests/lib.sh
it_setup it_restore_unbuilt

it_shim fail_strdup -ldl || { it_fail "strdup() shim builds" "$(cat "$D/cc.log")"; exit 1; }
ASAN_EXTRA=
if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
    ASAN_EXTRA="verify_asan_link_order=0"
    echo "# ASan build: shim preloaded with verify_asan_link_order=0"
fi
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-unbuilt", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state", "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
# fresh TAG: what a new subscriber gets (retained states, HA binary sensor configs)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/binary_sensor/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
shown() { grep -q "^$1 {" "$D/fresh$2.txt"; }
# run N [shim env...]: start the daemon, log daemonN.log; DPID
run() {
    n=$1; shift
    env "$@" $AD_BIN run -c "$D/ad.json" 2> "$D/daemon$n.log" & DPID=$!
    it_wait_log "$D/daemon$n.log" 'mqtt: connected' 10 ||
        { it_fail "daemon connects (run $n)" "$(tail -5 "$D/daemon$n.log")"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }

it_sub_start
sleep 0.3
run 1
START=$(( $(date +%s) - 800 * 60 ))
$H pub --port "$IT_PORT" --devices 2 --rows 360 --start "$START" --fault 'cavitation@300m+300m'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "alert raised on pump1" "$(tail -3 "$D/daemon1.log")"
stop
ID=$(grep -o '"open":{"id":"[^"]*"' "$D/state/pump/pump1.state.json" | sed 's/.*"id":"//; s/"$//')

# ---- the restart where pump1's detector cannot be made -------------------------------------
run 2 FAIL_STRDUP=pump1 FAIL_STRDUP_LOG="$D/fail.log" LD_PRELOAD="$D/fail_strdup.so" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA"
it_wait_log "$D/fail.log" '^refused pump1$' 10 ||
    { it_fail "pump1's detector fails to be made (shim)" "$(cat "$D/fail.log" 2>&1)"; exit 1; }
if it_wait_log "$D/daemon2.log" 'stream pump1 .*out of memory' 5; then
    it_ok "a warning names the stream and why: $(grep -E 'stream pump1 .*out of memory' "$D/daemon2.log" | head -1 | cut -c1-90)..."
else
    it_fail "a warning names the stream and why" "$(cat "$D/daemon2.log")"
fi
fresh 2
if ! shown anomalyd/state/pump/pump1 2 &&
   ! shown homeassistant/binary_sensor/it-unbuilt/pump_pump1/config 2; then
    it_ok "pump1, not running: no retained state or Home Assistant entity left"
else
    it_fail "pump1, not running: no retained state or Home Assistant entity left" \
        "a new subscriber still gets: $(grep -E 'pump/pump1 |pump_pump1/config ' "$D/fresh2.txt" | cut -c1-100 | tr '\n' ';')"
fi
if shown anomalyd/state/pump/pump2 2 && shown homeassistant/binary_sensor/it-unbuilt/pump_pump2/config 2; then
    it_ok "pump2 (not restored at start: no alert) keeps its retained state and entities"
else
    it_fail "pump2 (not restored at start: no alert) keeps its retained state and entities" \
        "$(cut -c1-100 "$D/fresh2.txt")"
fi
stop

# ---- the next start: the alert the state file kept is back ------------------------------------
if [ -n "$ID" ] && grep -q "\"open\":{\"id\":\"$ID\"" "$D/state/pump/pump1.state.json"; then
    it_ok "pump1's state file still holds its open alert $ID"
else
    it_fail "pump1's state file still holds its open alert $ID" \
        "$(grep -o '"open":[^,]*' "$D/state/pump/pump1.state.json")"
fi
run 3
if it_wait_topic "$IT_PORT" anomalyd/state/pump/pump1 10 "\"state\":\"alert\",\"alert_id\":\"$ID\"" >/dev/null; then
    it_ok "the next start restores pump1 with its alert, shown again"
else
    it_fail "the next start restores pump1 with its alert, shown again" "$(tail -3 "$D/daemon3.log")"
fi
stop
