#!/bin/sh
# it_daemon_outbox_acked.sh - outbox.json lets go of an alert event once the
# broker acknowledged it, also while other QoS 1 messages are always in
# flight. Twenty pumps send rows steadily; every window publishes a
# retained Home Assistant state (QoS 1), so the client nearly always has
# some message unacknowledged. pump1 raises an alert; the broker
# acknowledges it at once; two seconds later, rows still flowing, the
# daemon is killed (-9) and started again: the raised event is not
# published a second time. Before, the file was emptied only at a moment
# with no QoS 1 message at all in flight, which steady traffic rarely
# gives: the restart published the raised event again from the file.
. tests/lib.sh
it_setup it_outbox_acked PPID2
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-outbox-acked", "stats_interval_s": 0.5},
 "workers": 1, "state_dir": "$D/state",
 "homeassistant": {"enabled": true, "update_interval_s": 0},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["plant/#"], "stream_levels": [1],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}, "quality": {"enabled": false}}]}
EOC
# raised FILE ID: raised events of alert ID (pump1) in FILE
raised() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
n = 0
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/pump/pump1":
        j = json.loads(m["payload"])
        n += j.get("event") == "raised" and j.get("alert_id") == sys.argv[2]
print(n)
EOP
}

$H sub --port "$IT_PORT" --topic 'anomalyd/alerts/#' --out "$D/sub1.jsonl" & SPID=$!
sleep 0.3
$AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 1 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
# 20 pumps, 40 rows a second each (800 messages a second, steady) for up
# to 150 s, stopped after the kill: rows flow past it on a loaded machine
# or under the sanitizers, where the raise can come tens of seconds in (at
# 100 rows a second for 12 s the publisher had ended before the kill);
# pump1 cavitates from row 300
START=$(( $(date +%s) - 6000 * 60 ))
$H pub --port "$IT_PORT" --devices 20 --rows 6000 --rate 40 --start "$START" \
    --fault 'cavitation@300m+5700m' --fault-devices pump1 --topic 'plant/{device}/data' &
PPID2=$!
$H wait --file "$D/sub1.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 90 \
    >/dev/null || { it_fail "pump1 raises an alert" "$(tail -3 "$D/daemon.log")"; exit 1; }
id=$($PYTHON -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/pump/pump1":
        print(json.loads(m["payload"])["alert_id"]); break' "$D/sub1.jsonl")
sleep 2                                 # acknowledged long since; rows still flowing
if kill -0 "$PPID2" 2>/dev/null; then
    it_ok "rows still flowing at the kill"
else
    it_fail "rows still flowing at the kill" "the publisher ended before the kill"
fi
cp "$D/state/outbox.json" "$D/outbox.at_kill" 2>/dev/null
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
kill "$PPID2" 2>/dev/null; wait "$PPID2" 2>/dev/null; PPID2=
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=
if grep -q "$id" "$D/outbox.at_kill" 2>/dev/null; then
    it_fail "outbox.json no longer holds the acknowledged raised event at the kill" \
        "$(cut -c1-200 "$D/outbox.at_kill")"
else
    it_ok "outbox.json no longer holds the acknowledged raised event at the kill"
fi

# ---- start again: the raised event is not published again ------------------------------------
$H sub --port "$IT_PORT" --topic 'anomalyd/alerts/#' --out "$D/sub2.jsonl" & SPID=$!
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -r -t anomalyd/alerts/it/ready -m '{}'
it_wait_until 10 grep -qs anomalyd/alerts/it/ready "$D/sub2.jsonl"
$AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 2 ||
    { it_fail "daemon connects again" "$(tail -5 "$D/daemon.log")"; exit 1; }
sleep 2
n1=$(raised "$D/sub1.jsonl" "$id")
n2=$(raised "$D/sub2.jsonl" "$id")
if [ "$n1" = 1 ] && [ "$n2" = 0 ]; then
    it_ok "after kill -9 and a restart, pump1's raised event ($id) is not published again"
else
    it_fail "after kill -9 and a restart, pump1's raised event ($id) is not published again" \
        "raised before the kill $n1, after the restart $n2; $(grep -E 'undelivered' "$D/daemon.log" |
        cut -c1-200 | tr '\n' ' ')"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
