#!/bin/sh
# it_daemon_faults.sh - the broker goes away and comes back; bad input.
#  - broker stopped mid-stream while an anomaly is developing: the daemon
#    reconnects, resubscribes, and the alert raised while the broker was away
#    reaches a persistent QoS 1 subscriber afterwards;
#  - garbage payloads, non-finite values, an oversized message and a flood of
#    new stream topics beyond max_streams: counted, the daemon keeps running
#    within its memory bound and keeps alerting on a good stream.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_faults.XXXXXX)
DPID= ; SPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    [ -n "${STPID:-}" ] && kill "$STPID" 2>/dev/null
    it_broker_stop
    [ -n "$KEEP" ] || rm -rf "$D"
}
trap cleanup EXIT
chmod 777 "$D"      # mosquitto started as root saves its database as user mosquitto

it_broker_start "$D" "persistence true" "persistence_location $D/" ||
    { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-faults", "clean_session": false,
            "qos_subscribe": 1, "qos_alerts": 1, "stats_interval_s": 0.2,
            "reconnect_min_s": 0.2, "reconnect_max_s": 1},
 "max_payload_bytes": 1024, "workers": 2,
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "rows": {"mode": "period", "period_ms": 40},
   "calibration": {"windows": 50},
   "alert": {"k": 64, "n": 64, "m": 5},
   "max_streams": 50}]}
EOC
# stat_ge KEY N: the last statistics message has KEY >= N
stat_ge() {
    grep '^anomalyd/stats' "$D/stats.txt" | tail -1 |
        awk -v k="\"$1\":" -v n="$2" '{ i = index($0, k); if (!i) exit 1
                                         exit !(substr($0, i + length(k)) + 0 >= n) }'
}
$H sub --port "$IT_PORT" --topic 'anomalyd/alerts/#' --out "$D/alerts.jsonl" \
    --client-id it-alert-reader --persistent --qos 1 & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" "connected to" 10 ||
    { it_fail "daemon connects" "$(cat "$D/daemon.log")"; exit 1; }
mosquitto_sub -p "$IT_PORT" -t anomalyd/stats -v > "$D/stats.txt" 2>/dev/null & STPID=$!

# 5 s of normal data at 50 rows/s (arrival time, 40 ms grid) calibrate pump1
$H pub --port "$IT_PORT" --no-ts --rows 250 --rate 50
it_wait_log "$D/daemon.log" "pump1: calibrated" 15 && it_ok "stream calibrated" ||
    it_fail "stream calibrated" "$(cat "$D/daemon.log")"

# one anomalous sample; once the daemon has it (statistics: 251 messages in)
# the broker stops. The grid keeps holding the anomalous values: 64 windows
# (2.6 s) after the sample the alert is raised, with the broker away; the
# broker comes back only after the daemon logged the alert.
$H pub --port "$IT_PORT" --no-ts --rows 1 --const pressure=0.5 --const vibration=9
it_wait_until 10 stat_ge messages_in 251 ||
    it_fail "the anomalous sample reaches the daemon" "$(tail -1 "$D/stats.txt")"
kill "$STPID" 2>/dev/null
kill -TERM "$IT_BROKER_PID"; wait "$IT_BROKER_PID" 2>/dev/null
it_wait_log "$D/daemon.log" "disconnected from" 10 &&
    it_wait_log "$D/daemon.log" "alert .* raised" 15 ||
    it_fail "alert raised while the broker is away" "$(cat "$D/daemon.log")"
mosquitto -c "$D/mosquitto.conf" >> "$D/mosquitto.log" 2>&1 & IT_BROKER_PID=$!
if $H wait --file "$D/alerts.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 15; then
    it_ok "alert raised while the broker was away is delivered after it is back"
else
    it_fail "alert raised while the broker was away is delivered after it is back" "$(cat "$D/daemon.log")"
fi
# the order in the daemon's log shows the alert really was raised while away
awk '/disconnected from/ {d=NR} /alert .* raised/ && !a {a=NR} /connected to/ {c=NR}
     END {exit !(d && a > d && c > a)}' "$D/daemon.log" &&
    it_ok "log: disconnected, then alert raised, then reconnected" ||
    it_fail "log: disconnected, then alert raised, then reconnected" "$(cat "$D/daemon.log")"
[ "$(grep -c "connected to" "$D/daemon.log")" -ge 2 ] && it_ok "reconnected" || it_fail "reconnected"

# resubscribed: normal data again clears the alert
$H pub --port "$IT_PORT" --no-ts --rows 100 --rate 50
if $H wait --file "$D/alerts.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared --timeout 10; then
    it_ok "resubscribed after the reconnect: new samples clear the alert"
else
    it_fail "resubscribed after the reconnect: new samples clear the alert" "$(tail -5 "$D/daemon.log")"
fi

# bad input: the statistics are read once they count the whole flood (or
# after 60 s, then the case shows what they said)
it_wait_log "$D/daemon.log" "connected to" 10 2
mosquitto_sub -p "$IT_PORT" -t anomalyd/stats -v > "$D/stats.txt" 2>/dev/null & STPID=$!
$H garbage --port "$IT_PORT" --count 300 --oversize 5000 --flood 2000
it_wait_until 60 stat_ge streams_refused 1950
# this subscriber's own copy of a statistics message after the flood (it
# subscribed while the daemon ran: under a sanitizer it can miss the first)
n0=$(grep -c '^anomalyd/stats' "$D/stats.txt")
it_wait_until 20 sh -c '[ "$(grep -c "^anomalyd/stats" "$1")" -gt "$2" ]' _ "$D/stats.txt" "$n0"
kill "$STPID" 2>/dev/null
last=$(grep '^anomalyd/stats' "$D/stats.txt" | tail -1 | cut -d' ' -f2-)
echo "$last" | $PYTHON -c '
import json, sys
s = json.load(sys.stdin)
m = s["memory"]
print("# stats: parse_errors %d status_messages %d nonfinite %d nonnumeric %d oversized %d "
      "streams %d refused %d rss %d kB (peak %d kB), heap in use %d kB, free %d kB, "
      "fine-tunes running %d" % (
    s["parse_errors"], s["status_messages"], s["nonfinite"], s["nonnumeric"], s["oversized"],
    s["streams"], s["streams_refused"], m["rss_kb"], s["max_rss_kb"], m.get("heap_kb", -1),
    m.get("heap_free_kb", -1), s["adapt_running"]))
# "not json" is malformed, no status (only a presence word is: payload.h
# STATUS TEXT)
ok = (s["parse_errors"] + s["nonfinite"] + s["nonnumeric"] >= 300 and
      s["status_messages"] == 0 and s["oversized"] >= 1 and
      s["streams"] == 50 and s["streams_refused"] >= 1950 and s["max_rss_kb"] < 200000 and
      m["rss_kb"] > 0 and m.get("heap_kb", 1) > 0 and s["adapt_running"] == 0)
sys.exit(0 if ok else 1)' && it_ok "garbage and stream flood counted, 50 streams kept, RSS < 200 MB (memory: RSS and heap in use now)" ||
    it_fail "garbage and stream flood counted, 50 streams kept, RSS < 200 MB (memory: RSS and heap in use now)" "$last"
if kill -0 "$DPID" 2>/dev/null; then
    $H pub --port "$IT_PORT" --no-ts --rows 1 --const pressure=0.5 --const vibration=9
    if $H wait --file "$D/alerts.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --count 2 --timeout 10; then
        it_ok "still running and alerting on the good stream after the bad input"
    else
        it_fail "still running and alerting on the good stream after the bad input"
    fi
else
    it_fail "still running after the bad input" "$(tail -20 "$D/daemon.log")"
fi
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] && it_ok "clean stop" || it_fail "clean stop" "rc=$rc"
exit 0
