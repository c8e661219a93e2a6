#!/bin/sh
# it_daemon_ha_ids.sh - Home Assistant object ids are "<detector>_<stream>",
# which is ambiguous when one detector's name plus '_' starts another's:
# detector "line" with stream "a_b" and detector "line_a" with stream "b"
# must still be two entities (two discovery configs, each naming its own
# device), not one config overwritten by the other. A reload that removes
# "line" moves "line_a"'s entities back to the plain ids, and the configs
# of the ids no longer used are emptied (no ghost entity left). The same
# change made while the daemon is stopped (or an upgrade from a version
# that gave every detector the plain ids) empties the old configs at start.
. tests/lib.sh
it_setup it_ha_ids
it_broker_up
MODEL="${AD_SRCDIR:-.}/conf/models/pump.safetensors"
det() {
    printf '{"name": "%s", "model": "%s", "topics": ["%s/+/data"],
      "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}' "$1" "$MODEL" "$2"
}
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-haids", "qos_subscribe": 1},
 "workers": 1, "homeassistant": {"enabled": true, "update_interval_s": 0},
 "state_dir": "$D/state",
 "detectors": [$1]}
EOC
}
# the retained discovery configs of binary sensors: "topic device-name" lines
configs() {
    mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t 'homeassistant/binary_sensor/it-haids/+/config' \
        -v -W 1 2>/dev/null | while read -r t p; do
        [ -n "$p" ] || continue
        printf '%s %s\n' "$t" "$(printf '%s' "$p" | $PYTHON -c 'import json,sys; print(json.load(sys.stdin)["device"]["name"])')"
    done | sort
}
conf "$(det line l1), $(det line_a l2)"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
$H pub --port "$IT_PORT" --rows 20 --topic l1/a_b/data >/dev/null
$H pub --port "$IT_PORT" --rows 20 --topic l2/b/data >/dev/null
it_wait_topic "$IT_PORT" 'homeassistant/binary_sensor/it-haids/+/config' 10 '"line_a b"' >/dev/null
C=$(configs)
echo "$C" > "$D/configs1"
if [ "$(echo "$C" | grep -c .)" -eq 2 ] && echo "$C" | grep -q ' line a_b$' &&
   echo "$C" | grep -q ' line_a b$' &&
   echo "$C" | grep -q '^homeassistant/binary_sensor/it-haids/line_a_b/config line a_b$'; then
    it_ok "detectors line (stream a_b) and line_a (stream b) are two Home Assistant devices; line's ids stay plain"
else
    it_fail "detectors line (stream a_b) and line_a (stream b) are two Home Assistant devices; line's ids stay plain" "$C"
fi
# a reload without "line": line_a's stream gets the plain ids back, the
# hashed ones are emptied, line's own entity is removed
conf "$(det line_a l2)"
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 || it_fail "reload" "$(tail -3 "$D/daemon.log")"
$H pub --port "$IT_PORT" --rows 20 --start-row 20 --topic l2/b/data >/dev/null
it_wait_topic "$IT_PORT" 'homeassistant/binary_sensor/it-haids/line_a_b/config' 10 '"line_a b"' >/dev/null
C=$(configs)
if [ "$C" = "homeassistant/binary_sensor/it-haids/line_a_b/config line_a b" ]; then
    it_ok "after a reload removing detector line, line_a's stream b is the one entity, on the plain ids"
else
    it_fail "after a reload removing detector line, line_a's stream b is the one entity, on the plain ids" "$C"
fi
N=$(mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t 'homeassistant/sensor/it-haids/+/config' -v -W 1 2>/dev/null | awk 'NF > 1' | wc -l)
if [ "$N" -eq 2 ]; then
    it_ok "the score and severity sensors follow (2 retained configs)"
else
    it_fail "the score and severity sensors follow (2 retained configs)" "$N"
fi
# stopped with line_a's entity on the plain ids; line added while stopped:
# the start empties them (line_a's stream, silent, announces again with its
# next data under the hashed ids)
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
conf "$(det line l1), $(det line_a l2)"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon3.log" & DPID=$!
it_wait_log "$D/daemon3.log" 'published on other topics now' 10 >/dev/null
C=$(configs)
if [ -z "$C" ]; then
    it_ok "line added while stopped: line_a's entity on the old plain ids is emptied at start"
else
    it_fail "line added while stopped: line_a's entity on the old plain ids is emptied at start" \
        "$C; $(grep -i 'other topics\|moved' "$D/daemon3.log")"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
