#!/bin/sh
# it_daemon_cmd_input.sh - what an operator command payload may hold, with
# a real broker (commands.enabled):
#  - text after the command object ('{"command":"freeze"}garbage', or a
#    second object) is refused with an error reply naming the line and
#    column of that text; the command is not carried out; trailing white
#    space is still fine;
#  - a command over max_payload_bytes is answered with an error reply on
#    the reply topic (MQTT 3.1.1) and on the MQTT 5 response topic with the
#    correlation data, and logged naming the topic and the size;
#  - both counted (commands.bad_json, oversized); the daemon keeps running.
. tests/lib.sh
it_setup it_cmdin
O="$PYTHON tests/it_ops.py"
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-cmdin", "stats_interval_s": 1, "protocol": "5",
            "reconnect_min_s": 0.2},
 "workers": 1, "max_payload_bytes": 400,
 "commands": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
jget() { $PYTHON -c 'import json,sys
try: v=json.loads(sys.argv[1])
except ValueError: v=None
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v,dict) else None
print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1" "$2"; }

$H sub --port "$IT_PORT" --topic '#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"
$H pub --port "$IT_PORT" --devices 1 --rows 5
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 frozen=False --timeout 10 >/dev/null ||
    it_fail "stream pump1 there" "$(tail -5 "$D/daemon.log")"

T=anomalyd/cmd/pump/pump1
# text after the object: refused, nothing done
r=$($O cmd --port "$IT_PORT" --topic $T --v5 --corr 01 --payload '{"command":"freeze"}garbage')
want='payload is not a JSON object: invalid JSON at line 1 column 21: text after the end of the command object'
if [ "$(jget "$r" ok)" = false ] && [ "$(jget "$r" error)" = "$want" ] &&
   [ "$(jget "$r" command)" = null ]; then
    it_ok "'{\"command\":\"freeze\"}garbage' refused: $(jget "$r" error)"
else
    it_fail "'{\"command\":\"freeze\"}garbage' refused" "$r"
fi
r=$($O cmd --port "$IT_PORT" --topic $T --v5 --corr 02 \
    --payload '{"command":"freeze"}
{"command":"unfreeze"}')
case "$(jget "$r" error)" in
    *"line 2 column 1: text after the end of the command object") it_ok "a second object refused: $(jget "$r" error)" ;;
    *) it_fail "a second object refused" "$r" ;;
esac
s=$($O last --file "$D/sub.jsonl" --topic anomalyd/state/pump/pump1)
[ "$(jget "$s" frozen)" = false ] && it_ok "the refused commands froze nothing" ||
    it_fail "the refused commands froze nothing" "$s"
r=$($O cmd --port "$IT_PORT" --topic $T --v5 --corr 03 --payload '{"command":"freeze"}
  ')
[ "$(jget "$r" ok)" = true ] && [ "$(jget "$r" result.frozen)" = true ] &&
    it_ok "white space after the object is fine: freeze done" || it_fail "white space after the object is fine" "$r"

# over max_payload_bytes (400): answered without reading the payload
big=$($PYTHON -c 'print("{\"command\":\"unfreeze\",\"by\":\"%s\"}" % ("x" * 500))')
n=$(printf '%s' "$big" | wc -c)
r=$($O cmd --port "$IT_PORT" --topic $T --payload "$big" --reply-topic anomalyd/reply/pump/pump1)
if [ "$(jget "$r" ok)" = false ] &&
   [ "$(jget "$r" error)" = "payload of $n bytes is over max_payload_bytes 400" ] &&
   [ "$(jget "$r" detector)" = pump ] && [ "$(jget "$r" stream)" = pump1 ]; then
    it_ok "oversized command (MQTT 3.1.1) answered on the reply topic: $(jget "$r" error)"
else
    it_fail "oversized command (MQTT 3.1.1) answered on the reply topic" "$r"
fi
r=$($O cmd --port "$IT_PORT" --topic $T --v5 --corr 0a0b --payload "$big")
[ "$(jget "$r" ok)" = false ] && [ "$(jget "$r" error)" = "payload of $n bytes is over max_payload_bytes 400" ] &&
    it_ok "oversized command (MQTT 5) answered on the response topic with the correlation data" ||
    it_fail "oversized command (MQTT 5) answered on the response topic" "$r"
grep -q "topic $T: $n-byte command payload over max_payload_bytes 400, refused" "$D/daemon.log" &&
    it_ok "oversized command logged naming the topic and the size" ||
    it_fail "oversized command logged naming the topic and the size" "$(grep -i max_payload "$D/daemon.log")"
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats commands.bad_json=2 oversized=2 \
       commands.ok=1 --timeout 5 >/dev/null && kill -0 "$DPID"; then
    it_ok "stats: 2 bad_json, 2 oversized, 1 ok; daemon still running"
else
    it_fail "stats count the refusals" "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1)"
fi
it_daemon_stop
exit 0
