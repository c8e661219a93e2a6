#!/bin/sh
# it_daemon_formats.sh - the three payload formats through the daemon with a
# real broker: bare numbers (feature named by a topic level), JSON objects
# without a timestamp (arrival time), SenML records (bn names the device).
# Each detector sees the same simulated pump with an injected fault and must
# raise and clear an alert with the documented fields. The daemon speaks
# MQTT 5 here (3.1.1 in the other tests).
. tests/lib.sh
it_setup it_daemon_formats
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-formats", "stats_interval_s": 1,
            "qos_subscribe": 1, "protocol": "5"},
 "state_dir": null, "workers": 2,
 "detectors": [
  {"name": "num", "model": "$MODEL", "topics": ["num/+/+"], "stream_levels": [1],
   "payload": {"format": "number", "feature_level": -1},
   "calibration": {"windows": 100}},
  {"name": "js", "model": "$MODEL", "topics": ["js/+/pump"],
   "payload": {"format": "json"}, "calibration": {"windows": 100}},
  {"name": "senml", "model": "$MODEL", "topics": ["senml/+"],
   "payload": {"format": "senml"}, "calibration": {"windows": 100}}]}
EOC
it_sub_start
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon connects" "$(cat "$D/daemon.log")"

F='cavitation@300m+100m'
$H pub --port "$IT_PORT" --format number --topic 'num/{device}/{sensor}' --rows 600 --fault "$F" --rate 400 &
P1=$!
$H pub --port "$IT_PORT" --format json --no-ts --topic 'js/{device}/pump' --rows 600 --fault "$F" --rate 400 &
P2=$!
$H pub --port "$IT_PORT" --format senml --topic 'senml/{device}' --rows 600 --fault "$F" --rate 400
wait $P1 $P2
for det in num js senml; do
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/$det/pump1 event=cleared --timeout 15 &&
       $H check-alert --file "$D/sub.jsonl" --detector $det --stream pump1; then
        it_ok "format $det: alert raised and cleared"
    else
        it_fail "format $det: alert raised and cleared" "$(tail -5 "$D/daemon.log")"
    fi
done
# every sample of every format arrived and was used: no parse errors, 600
# rows per detector -> 571 windows each
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=1713 parse_errors=0 \
    --timeout 30 && it_ok "stats: 3 x 571 windows scored, no parse errors" ||
    it_fail "stats: 3 x 571 windows scored, no parse errors" "$(grep anomalyd/stats "$D/sub.jsonl" | tail -1 | cut -c1-400)"
grep -q "as it-formats (p5" "$D/mosquitto.log" && it_ok "connected with MQTT 5" ||
    it_fail "connected with MQTT 5" "$(grep it-formats "$D/mosquitto.log")"
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] && it_ok "clean stop" || it_fail "clean stop" "rc=$rc"
exit 0
