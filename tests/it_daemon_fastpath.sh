#!/bin/sh
# it_daemon_fastpath.sh - the MQTT reader's QoS 0 fast path against
# libmosquitto's own path, with a real broker. Two daemons read the same
# traffic at once, one with the fast path (the default) and one with
# ANOMALYD_MQTT_FAST_PATH=0, over MQTT 3.1.1 and then MQTT 5. The traffic
# takes every delivery path (it_daemon_mqtt.py mix: QoS 0, QoS 1, retained,
# an MQTT 5 user property, a UTF-8 topic, messages over 64 KiB). Both
# daemons must count the same messages, samples, unknown fields and
# windows, raise and clear the same alerts at the same data times with the
# same scores; and the fast one must have read exactly the messages the
# fast path is for, the other none.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_fastpath.XXXXXX)
DPID= ; SPID= ; D2=
cleanup() { [ -n "$D2" ] && kill "$D2" 2>/dev/null; it_daemon_cleanup; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap "" EXIT
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors
ROWS=600
it_broker_start "$D" || { it_fail "broker starts"; exit 1; }
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub.jsonl" & SPID=$!

conf() { # conf NAME PROTO PREFIX
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-fp-$1", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "protocol": "$2",
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "state_dir": null, "workers": 2, "max_payload_bytes": 100000,
 "detectors": [
  {"name": "mix", "model": "$MODEL", "topics": ["$3/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"topic": "anomalyd/alerts/$1/{detector}/{stream}"}}]}
EOC
}

for proto in 3.1.1 5; do
    P=mix$(echo $proto | tr -d .)
    F=fast$P; S=slow$P
    conf "$F" "$proto" "$P"; conf "$S" "$proto" "$P"
    $AD_BIN run -c "$D/$F.json" 2> "$D/$F.log" & DPID=$!
    ANOMALYD_MQTT_FAST_PATH=0 $AD_BIN run -c "$D/$S.json" 2> "$D/$S.log" & D2=$!
    for n in $F $S; do
        $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status/$n state=online \
            --timeout 10 >/dev/null || { it_fail "$n: daemon connects" "$(cat "$D/$n.log")"; exit 1; }
    done
    $H mix --port "$IT_PORT" --rows $ROWS --topic "$P/{device}/pump" --fault 'cavitation@300m+100m' ||
        it_fail "MQTT $proto: mixed traffic published"
    # 6 streams x 600 rows; every 7th row of pump6 is padded (86 unknown
    # fields) and too big for the fast path; QoS 1 and the UTF-8 topic are
    # never fast; over MQTT 5 the user property keeps pump4 off it too. Of
    # the rest, a packet that straddles two socket reads goes to
    # libmosquitto: at most the eligible ones are fast (and at least a
    # quarter of them).
    msgs=$((6 * ROWS)); pad=$(( (ROWS + 6) / 7 ))
    if [ $proto = 5 ]; then elig=$((3 * ROWS - pad)); else elig=$((4 * ROWS - pad)); fi
    for n in $F $S; do
        if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats/$n messages_in=$msgs \
            samples=$((5 * msgs)) unknown_fields=$pad parse_errors=0 dropped_samples=0 \
            windows_scored=$((6 * (ROWS - 29))) --timeout 30 >/dev/null; then
            fast=$($PYTHON -c '
import json, sys
last = [l for l in open(sys.argv[1]) if json.loads(l)["topic"] == sys.argv[2]][-1]
print(json.loads(json.loads(last)["payload"])["mqtt"]["fast_path"])' "$D/sub.jsonl" "anomalyd/stats/$n")
            if [ $n = $F ] && grep -q "fast path on)" "$D/$n.log"; then
                [ "$fast" -le $elig ] && [ "$fast" -ge $((elig / 4)) ]; okf=$?
                what="$fast by the fast path (of $elig eligible)"
            else
                [ "$fast" -eq 0 ] && grep -q "fast path off" "$D/$n.log"; okf=$?
                what="$fast by the fast path, $(grep -o 'fast path off[^)]*)' "$D/$n.log" | head -1)"
            fi
            [ $okf -eq 0 ] && it_ok "MQTT $proto, $n: $msgs messages, $((6 * (ROWS - 29))) windows, $what" ||
                it_fail "MQTT $proto, $n: $msgs messages, $((6 * (ROWS - 29))) windows, $what"
        else
            it_fail "MQTT $proto, $n: $msgs messages, $((6 * (ROWS - 29))) windows" \
                "$(grep "anomalyd/stats/$n\"" "$D/sub.jsonl" | tail -1 | cut -c1-400)"
        fi
    done
    for n in $F $S; do
        $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/$n/mix/pump6 event=cleared \
            --timeout 20 >/dev/null || it_fail "$n: pump6 alert cleared"
    done
    if $PYTHON - "$D/sub.jsonl" "$F" "$S" <<'EOP'
import json, sys
path, fast, slow = sys.argv[1:]
ev = {fast: {}, slow: {}}
for line in open(path):
    m = json.loads(line)
    for n in ev:
        if m["topic"].startswith("anomalyd/alerts/%s/" % n):
            j = json.loads(m["payload"])
            ev[n][(j["stream"], j["event"], j["time_ms"])] = j["score"]
a, b = ev[fast], ev[slow]
streams = sorted({k[0] for k in a if k[1] == "raised"})
if sorted(a) != sorted(b):
    print("  alert events differ: fast %s slow %s" % (sorted(a), sorted(b)))
    sys.exit(1)
worst = max(abs(a[k] - b[k]) / abs(b[k]) for k in a) if a else 0.0
print("# %d alert events on %s, largest relative score difference %.2g" % (
    len(a), ",".join(streams), worst))
sys.exit(0 if streams == ["pump1", "pump2", "pump6"] and worst <= 1e-4 else 1)
EOP
    then
        it_ok "MQTT $proto: same alerts (stream, event, data time) and scores (1e-4) on both paths"
    else
        it_fail "MQTT $proto: same alerts (stream, event, data time) and scores (1e-4) on both paths"
    fi
    kill -TERM "$DPID" "$D2"; wait "$DPID"; r1=$?; wait "$D2"; r2=$?; DPID=; D2=
    [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && it_ok "MQTT $proto: both stop cleanly" ||
        it_fail "MQTT $proto: both stop cleanly" "rc $r1 $r2"
done

# Framing: a fake broker writes packets in pieces split at every offset,
# with whole PUBLISH packets inside the payloads (what a reader that lost
# its place would deliver), then more than 64 KiB at once, then one message
# a second for three keepalive periods without ever answering a PINGREQ.
# Every message must be counted exactly once, and the daemon must stay on
# its first connection: libmosquitto itself keeps reading some of the
# packets, so it never needs a PINGRESP while data flows.
rm -f "$D/port"
$PYTHON tests/fake_broker.py --port-file "$D/port" --messages 300 --keepalive-s 5 > "$D/fake.out" 2>&1 &
FPID=$!
i=0; while [ ! -s "$D/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
cat > "$D/fake.json" <<EOC
{"broker": {"port": $(cat "$D/port"), "client_id": "it-fp-fake", "stats_interval_s": 0.2,
            "keepalive": 5, "qos_subscribe": 0},
 "state_dir": null, "workers": 1,
 "detectors": [{"name": "fp", "model": "$MODEL", "topics": ["fp/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
$AD_BIN run -c "$D/fake.json" 2> "$D/fake.log" & DPID=$!
wait $FPID; frc=$?
res=$(cat "$D/fake.out")
fast=$(echo "$res" | sed -n 's/.*, \([0-9]*\) by the fast path.*/\1/p')
if grep -q "fast path on)" "$D/fake.log"; then [ "${fast:-0}" -gt 0 ]; else [ "${fast:-1}" -eq 0 ]; fi
fok=$?
[ $frc -eq 0 ] && [ $fok -eq 0 ] && it_ok "split packets, packets inside payloads, 64 KiB burst, no PINGRESP: $res" ||
    it_fail "split packets, packets inside payloads, 64 KiB burst, no PINGRESP" "$res $(tail -3 "$D/fake.log")"
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
