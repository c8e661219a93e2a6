#!/bin/sh
# it_daemon_share.sh - MQTT shared subscriptions with a real mosquitto: two
# anomalyd instances subscribe "$share/ad/sensors/+/pump"; every message
# reaches exactly one of them and is routed to the detector (the $share
# prefix is not part of the topic match). `anomalyd check` warns when a
# shared subscription lets one stream span several topics.
. tests/lib.sh
it_setup it_share D2PID
it_broker_up

JSONP='{"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}'
conf() { # conf NAME FILTER PAYLOAD
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-share-$1", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2,
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["$2"],
   "payload": $3,
   "calibration": {"windows": 100}}]}
EOC
}
conf a '$share/ad/sensors/+/pump' "$JSONP"
conf b '$share/ad/sensors/+/pump' "$JSONP"
conf w '$share/ad/plant/+/+' '{"format": "number", "feature_level": -1}'

# --- check --------------------------------------------------------------------
$AD_BIN check -c "$D/a.json" > "$D/check_a.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && ! grep -q warning "$D/check_a.out"; then
    it_ok "check: one topic per stream under \$share: valid, no warning"
else
    it_fail "check: one topic per stream under \$share: valid, no warning" "rc=$rc $(cat "$D/check_a.out")"
fi
$AD_BIN check -c "$D/w.json" > "$D/check_w.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q 'warning: detector pump: shared subscription "\$share/ad/plant/+/+": topic level 2 is a wildcard outside stream_levels' "$D/check_w.out"; then
    it_ok "check warns: a stream assembled from several topics under \$share"
else
    it_fail "check warns: a stream assembled from several topics under \$share" "rc=$rc $(cat "$D/check_w.out")"
fi

# --- two instances, one group ------------------------------------------------------
it_sub_start
$AD_BIN run -c "$D/a.json" 2> "$D/a.log" & DPID=$!
$AD_BIN run -c "$D/b.json" 2> "$D/b.log" & D2PID=$!
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status/a state=online --timeout 10 &&
   $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status/b state=online --timeout 10; then
    it_ok "two instances online"
else
    it_fail "two instances online" "$(cat "$D/a.log" "$D/b.log")"
fi
$H pub --port "$IT_PORT" --devices 4 --rows 150
# the last stats of each instance: messages_in and no_detector
last() { grep "\"anomalyd/stats/$1\"" "$D/sub.jsonl" | tail -1 |
         $PYTHON -c 'import json,sys; m=json.loads(sys.stdin.read() or "{}"); j=json.loads(m.get("payload","{}")); print(j.get("messages_in",0), j.get("no_detector",-1))'; }
total() { set -- $(last a) $(last b); [ $(($1 + $3)) -ge 600 ]; }
it_wait_until 20 total
set -- $(last a) $(last b)
if [ $(($1 + $3)) -eq 600 ] && [ "$1" -gt 0 ] && [ "$3" -gt 0 ]; then
    it_ok "the broker shares 600 messages between the instances, each once ($1 + $3)"
else
    it_fail "the broker shares 600 messages between the instances, each once" "a: $1 b: $3"
fi
if [ "$2" = 0 ] && [ "$4" = 0 ] && ! grep -q "matches no detector" "$D/a.log" "$D/b.log"; then
    it_ok "every shared message is routed to the detector (no 'matches no detector')"
else
    it_fail "every shared message is routed to the detector" "no_detector a=$2 b=$4; $(grep -h 'no detector' "$D/a.log" "$D/b.log" | head -3)"
fi
kill "$D2PID"; wait "$D2PID" 2>/dev/null; D2PID=
