#!/bin/sh
# it_daemon_mqtt.sh - the daemon's MQTT client against a real mosquitto,
# over MQTT 3.1.1 and then MQTT 5, one daemon each:
#  - every delivery path (tests/it_daemon_mqtt.py mix: QoS 0, QoS 1,
#    retained, an MQTT 5 user property, a UTF-8 topic, messages over
#    64 KiB): every message, sample, unknown field and window counted, the
#    faulty pumps' alerts raised and cleared;
#  - a subscription the broker refuses (its dynamic-security plugin denies
#    secret/#; mosquitto's acl_file never refuses a SUBSCRIBE, it only
#    filters deliveries): logged with the filter and the reason, listed as
#    denied on the status topic, counted in the stats;
#  - the maximum packet size: a message far over max_payload_bytes never
#    reaches an MQTT 5 daemon (its CONNECT announced the limit, the broker
#    drops it), while an MQTT 3.1.1 daemon, which cannot announce one,
#    receives it and refuses it (oversized);
#  - a lost connection names its cause: another client taking over the
#    daemon's client id (the reason code of the broker's DISCONNECT where
#    it sends one, else the socket closed by the broker, never a stale
#    errno), then the daemon reconnects.
# Then, with tests/fake_broker.py, which writes packets in pieces of its
# choosing: packets split at every offset, bursts with nothing after them,
# no PINGRESP while data flows; and a stop that waits for the PUBACK of
# every QoS 1 publish before its DISCONNECT.
. tests/lib.sh
it_setup it_daemon_mqtt
[ -n "${KEEP:-}" ] && trap "" EXIT
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors
ROWS=600
DYNSEC=$(ls /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so 2>/dev/null | head -1)
if [ -z "$DYNSEC" ]; then
    it_fail "mosquitto's dynamic-security plugin is installed (package mosquitto)"
    exit 1
fi
chmod 755 "$D"     # mosquitto, started as root, reads it as user mosquitto
cat > "$D/dynsec.json" <<'EOJ'
{"defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,
                      "subscribe": true, "unsubscribe": true},
 "clients": [],
 "groups": [{"groupname": "anonymous", "roles": [{"rolename": "no-secrets"}], "clients": []}],
 "roles": [{"rolename": "no-secrets",
            "acls": [{"acltype": "subscribePattern", "topic": "secret/#", "allow": false}]}],
 "anonymousGroup": "anonymous"}
EOJ
chmod 644 "$D/dynsec.json"
it_broker_start "$D" "plugin $DYNSEC" "plugin_opt_config_file $D/dynsec.json" ||
    { it_fail "broker starts"; exit 1; }
if grep -q "Error loading" "$D/mosquitto.log"; then
    it_fail "broker loads its dynamic-security config" "$(cat "$D/mosquitto.log")"
    exit 1
fi
it_sub_start
$PYTHON -c 'import json, sys; print(json.dumps({"ts": 1700000000000, "vibration": 1.3, "pad": "x" * 250000}))' \
    > "$D/big.json"

last_stats() { # last_stats NAME FIELD...: fields of the last stats message of daemon NAME
    $PYTHON - "$D/sub.jsonl" "anomalyd/stats/$1" "$@" <<'EOP'
import json, sys
path, topic, _, *fields = sys.argv[1:]
last = [l for l in open(path) if json.loads(l)["topic"] == topic][-1]
j = json.loads(json.loads(last)["payload"])
out = []
for f in fields:
    x = j
    for p in f.split("."):
        x = x.get(p)
    out.append("%s=%s" % (f, x))
print(" ".join(out))
EOP
}

for proto in 3.1.1 5; do
    n=mqtt$(echo $proto | tr -d .)
    cat > "$D/$n.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-$n", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "protocol": "$proto", "reconnect_min_s": 0.2,
            "status_topic": "anomalyd/status/$n", "stats_topic": "anomalyd/stats/$n"},
 "state_dir": null, "workers": 2, "max_payload_bytes": 100000,
 "detectors": [
  {"name": "mix", "model": "$MODEL", "topics": ["$n/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"topic": "anomalyd/alerts/$n/{detector}/{stream}"}},
  {"name": "hidden", "model": "$MODEL", "topics": ["secret/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
    $AD_BIN run -c "$D/$n.json" 2> "$D/$n.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status/$n state=online \
        --timeout 10 >/dev/null || { it_fail "MQTT $proto: daemon connects" "$(cat "$D/$n.log")"; exit 1; }

    # the refused subscription
    if [ $proto = 5 ]; then why="Not authorized"; else why="failure, 0x80"; fi
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status/$n state=online \
            "subscriptions.denied=['secret/+/pump']" "subscriptions.granted=['$n/+/pump']" \
            --timeout 10 >/dev/null &&
        grep -q "mqtt: the broker refused the subscription to secret/+/pump ($why" "$D/$n.log"; then
        it_ok "MQTT $proto: refused subscription logged ($(grep -o 'refused the subscription.*' "$D/$n.log" | head -1)) and on the status topic (denied secret/+/pump, granted $n/+/pump)"
    else
        it_fail "MQTT $proto: refused subscription logged and on the status topic" \
            "$(grep "anomalyd/status/$n\"" "$D/sub.jsonl" | tail -2) $(cat "$D/$n.log")"
    fi

    # every delivery path
    $H mix --port "$IT_PORT" --rows $ROWS --topic "$n/{device}/pump" --fault 'cavitation@300m+100m' ||
        it_fail "MQTT $proto: mixed traffic published"
    msgs=$((6 * ROWS)); pad=$(( (ROWS + 6) / 7 ))
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats/$n messages_in=$msgs \
        samples=$((5 * msgs)) unknown_fields=$pad parse_errors=0 dropped_samples=0 \
        windows_scored=$((6 * (ROWS - 29))) mqtt.subscriptions_denied=1 --timeout 60 >/dev/null; then
        it_ok "MQTT $proto: $msgs messages (QoS 0/1, retained, user property, UTF-8 topic, $pad over 64 KiB), $((6 * (ROWS - 29))) windows; mqtt.subscriptions_denied 1"
    else
        it_fail "MQTT $proto: $msgs messages, $((6 * (ROWS - 29))) windows" \
            "$(last_stats $n messages_in samples unknown_fields windows_scored mqtt.subscriptions_denied)"
    fi
    ok=1
    for s in pump1 pump2 pump6; do
        $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/$n/mix/$s event=cleared \
            --timeout 30 >/dev/null || ok=0
    done
    [ $ok = 1 ] && it_ok "MQTT $proto: the faulty pumps' alerts raised and cleared ($(grep -c "anomalyd/alerts/$n/" "$D/sub.jsonl") alert events)" ||
        it_fail "MQTT $proto: the faulty pumps' alerts raised and cleared" "$($H alerts --file "$D/sub.jsonl" | grep "/$n/")"

    # a message far over max_payload_bytes (250 kB against 100,000 + headroom), then a small one
    mosquitto_pub -p "$IT_PORT" -V $(echo $proto | sed 's/3.1.1/311/') -q 1 -t "$n/big/pump" -f "$D/big.json" &&
        mosquitto_pub -p "$IT_PORT" -q 1 -t "$n/big/pump" -m '{"ts": 1700000001000, "vibration": 1.3}'
    if [ $proto = 5 ]; then exp_in=$((msgs + 1)); exp_over=0; else exp_in=$((msgs + 2)); exp_over=1; fi
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats/$n messages_in=$exp_in \
            oversized=$exp_over --timeout 10 >/dev/null; then
        if [ $proto = 5 ]; then
            it_ok "MQTT 5: a 250 kB message never reaches the daemon (maximum packet size announced; broker: $(grep -c -i 'dropp\|too large' "$D/mosquitto.log") drop line(s)), the next one does"
        else
            it_ok "MQTT 3.1.1: a 250 kB message is received and refused as oversized (3.1.1 cannot announce a maximum packet size)"
        fi
    else
        it_fail "MQTT $proto: 250 kB message: messages_in $exp_in, oversized $exp_over" \
            "$(last_stats $n messages_in oversized)"
    fi

    # another client takes over the daemon's client id
    mosquitto_pub -p "$IT_PORT" -V $(echo $proto | sed 's/3.1.1/311/') -i "it-$n" -t "it/x" -m x
    # (mosquitto 2.0.11 closes the socket without a DISCONNECT either way;
    # a broker that sends one gets its reason code logged)
    if [ $proto = 5 ]; then cause="\(the broker disconnected us: Session taken over\|the broker closed the connection\)"
    else cause="the broker closed the connection"; fi
    i=0
    while [ $i -lt 100 ] && [ "$(grep -c 'mqtt: connected to' "$D/$n.log")" -lt 2 ]; do
        sleep 0.1; i=$((i + 1))
    done
    if grep -q "mqtt: disconnected from 127.0.0.1:$IT_PORT: $cause" "$D/$n.log" &&
        [ "$(grep -c 'mqtt: connected to' "$D/$n.log")" -ge 2 ]; then
        it_ok "MQTT $proto: client id taken over: the log names the cause ($(grep -o 'disconnected from .*' "$D/$n.log" | head -1)), the daemon reconnects"
    else
        it_fail "MQTT $proto: client id taken over: the log names the cause ($cause)" "$(cat "$D/$n.log")"
    fi
    kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
    [ $rc -eq 0 ] && it_ok "MQTT $proto: clean stop" || it_fail "MQTT $proto: clean stop" "rc $rc"
done

# Framing: a fake broker writes packets in pieces split at every offset,
# with whole PUBLISH packets inside the payloads, then bursts with nothing
# after them, then one message a second for three keepalive periods
# without ever answering a PINGREQ. Every message must be counted exactly
# once, and the daemon must stay on its first connection.
rm -f "$D/port"
$PYTHON tests/fake_broker.py --port-file "$D/port" --messages 300 --keepalive-s 5 > "$D/fake.out" 2>&1 &
FPID=$!
i=0; while [ ! -s "$D/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
cat > "$D/fake.json" <<EOC
{"broker": {"port": $(cat "$D/port"), "client_id": "it-mqtt-fake", "stats_interval_s": 0.2,
            "keepalive": 5, "qos_subscribe": 0},
 "state_dir": null, "workers": 1,
 "detectors": [{"name": "fp", "model": "$MODEL", "topics": ["fp/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
$AD_BIN run -c "$D/fake.json" 2> "$D/fake.log" & DPID=$!
wait $FPID; frc=$?
res=$(cat "$D/fake.out")
[ $frc -eq 0 ] && it_ok "split packets, packets inside payloads, bursts, no PINGRESP: $res" ||
    it_fail "split packets, packets inside payloads, bursts, no PINGRESP" "$res $(tail -3 "$D/fake.log")"
kill -TERM "$DPID" 2>/dev/null; wait "$DPID"; DPID=

# A stop waits for the broker to acknowledge what it published at QoS 1
# (the offline status, last alerts) before it disconnects, even while QoS 0
# statistics go out meanwhile: the fake broker holds every PUBACK 0.5 s.
rm -f "$D/port" "$D/ready"
$PYTHON tests/fake_broker.py --port-file "$D/port" --stop-test "$D/ready" > "$D/stop.out" 2>&1 &
FPID=$!
i=0; while [ ! -s "$D/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
sed "s/\"port\": [0-9]*/\"port\": $(cat "$D/port")/; s/\"stats_interval_s\": 0.2/\"stats_interval_s\": 0.05/" \
    "$D/fake.json" > "$D/stop.json"
$AD_BIN run -c "$D/stop.json" 2> "$D/stop.log" & DPID=$!
i=0; while [ ! -e "$D/ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.3
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
wait $FPID; frc=$?
[ $frc -eq 0 ] && [ $rc -eq 0 ] &&
    it_ok "stop: QoS 1 publishes acknowledged before the DISCONNECT ($(tail -1 "$D/stop.out" | sed 's/fake broker: //'))" ||
    it_fail "stop: QoS 1 publishes acknowledged before the DISCONNECT" "rc=$rc $(cat "$D/stop.out") $(tail -5 "$D/stop.log")"
exit 0
