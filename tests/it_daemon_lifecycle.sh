#!/bin/sh
# it_daemon_lifecycle.sh - every raised alert is closed exactly once, with
# its id, across a restart, a reload that changes settings and a broker
# that is away (real mosquitto on 127.0.0.1):
#  1. SIGTERM with an alert open, restart, the fault ends: the same alert id
#     is cleared once (reason cleared), no second id is raised, the
#     retained state shows the alert id right after the restart, and the
#     pause is not taken for a data-quality dropout.
#  2. SIGHUP changing the detector's settings with an alert open: cleared
#     once with reason reload; the rebuilt stream does not calibrate on the
#     ongoing fault (its new threshold stays near the old one).
#  3. an alert closed (eviction) while the broker is away, then SIGTERM:
#     the cleared event is kept in state_dir/outbox.json and delivered after
#     the broker and the daemon are back.
. tests/lib.sh
it_setup it_lifecycle
it_broker_up
S0=$(( $(date +%s) - 100000 ))     # data start time, the same for every publisher run

conf() { # conf CALIB_WINDOWS IDLE_EVICT_S
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-life", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "idle_evict_s": $2,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": $1},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
start() { $AD_BIN run -c "$D/ad.json" --log-level debug 2>> "$D/daemon.log" & DPID=$!; }
stop() { kill -TERM "$DPID"; wait "$DPID"; DPID=; }
pub() { # pub FROM TO: rows FROM..TO-1 of one series (pump1 cavitates at 300..549)
    $H pub --port "$IT_PORT" --devices 1 --start "$S0" --start-row "$1" --rows "$2" \
        --fault 'cavitation@300m+250m' >/dev/null
}
# events of stream pump1 as "event id reason" lines
events() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line); j = json.loads(m["payload"])
    except (ValueError, KeyError):
        continue
    if m["topic"].startswith("anomalyd/alerts/") and j.get("stream") == "pump1":
        print(j["event"], j["alert_id"], j.get("reason", "-"))
EOP
}
# last detecting threshold of pump1 on the state topic
threshold() {
    $H last --file "$D/sub.jsonl" --topic anomalyd/state/pump/pump1 --match phase=detecting --key threshold
}

it_sub_start
conf 100 3600
start
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null

# ---- 1. restart with an alert open ------------------------------------------
pub 0 420
if $H wait --file "$D/sub.jsonl" --match event=raised stream=pump1 --timeout 60 >/dev/null; then
    it_ok "restart: alert raised in the first run"
else
    it_fail "restart: alert raised in the first run" "$(tail -20 "$D/daemon.log")"
fi
t_old=$(threshold)
id1=$(events | awk '$1 == "raised" { print $2; exit }')
sleep 1        # the windows of the last rows are scored
stop
grep -q "\"open\":{\"id\":\"$id1\"" "$D/state/pump/pump1.state.json" &&
    it_ok "restart: the open alert is in the state file" ||
    it_fail "restart: the open alert is in the state file" "$(cat "$D/state/pump/pump1.state.json")"
n0=$(wc -l < "$D/sub.jsonl")
start
# a state message published by the restarted daemon (not the retained one)
new_state() { tail -n +"$((n0 + 1))" "$D/sub.jsonl" | grep -q "anomalyd/state/pump/pump1.*alert_id.*$id1"; }
if it_wait_until 20 new_state; then
    it_ok "restart: the state topic shows the same open alert after the restart (no data yet)"
else
    it_fail "restart: the state topic shows the same open alert after the restart" \
        "$(tail -20 "$D/daemon.log")"
fi
sleep 2        # house ticks run on the restored stream before its next sample
pub 420 700
if $H wait --file "$D/sub.jsonl" --match event=cleared alert_id="$id1" --timeout 60 >/dev/null; then
    it_ok "restart: the same alert id is cleared after the fault ends"
else
    it_fail "restart: the same alert id is cleared after the fault ends" "$(events) $(tail -20 "$D/daemon.log")"
fi
sleep 1
ev=$(events)
n_raised=$(echo "$ev" | grep -c '^raised')
n_cleared=$(echo "$ev" | grep -c "^cleared $id1 cleared\$")
[ "$n_raised" -eq 1 ] && [ "$n_cleared" -eq 1 ] &&
    it_ok "restart: exactly one raised and one cleared (reason cleared) for $id1" ||
    it_fail "restart: exactly one raised and one cleared for $id1" "$ev"
# the data never stopped (in data time): a restored stream must not see the
# restart's wall-clock pause as a dropout
if echo "$ev" | grep -q '^dq_raised'; then
    it_fail "restart: no data-quality alert (the restart's pause is not a dropout)" "$ev"
else
    it_ok "restart: no data-quality alert (the restart's pause is not a dropout)"
fi

# ---- 2. reload with new settings and an alert open ------------------------------
stop
rm -rf "$D/state"; : > "$D/sub.jsonl"
start
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
S0=$(( S0 - 200000 ))      # a new series (new ids)
pub 0 420
$H wait --file "$D/sub.jsonl" --match event=raised stream=pump1 --timeout 60 >/dev/null
t_old=$(threshold)
id2=$(events | awk '$1 == "raised" { print $2; exit }')
sleep 1
conf 80 3600
kill -HUP "$DPID"
if [ -n "$id2" ] && $H wait --file "$D/sub.jsonl" --match event=cleared alert_id="$id2" reason=reload \
        --timeout 20 >/dev/null; then
    it_ok "reload: the open alert is cleared with reason reload"
else
    it_fail "reload: the open alert is cleared with reason reload" "id=$id2 $(events) $(tail -20 "$D/daemon.log")"
fi
if it_wait_topic "$IT_PORT" anomalyd/state/pump/pump1 20 '"phase":"calibrating"' >/dev/null; then
    it_ok "reload: the rebuilt stream announces calibrating on its state topic"
else
    it_fail "reload: the rebuilt stream announces calibrating on its state topic"
fi
: > "$D/sub.jsonl"
pub 420 900
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting --timeout 60 >/dev/null
t_new=$(threshold)
if awk -v a="$t_old" -v b="$t_new" 'BEGIN { exit !(b != "None" && b + 0 > 0 && b < 2 * a && b > a / 2) }'; then
    it_ok "reload: no calibration on the fault (threshold $t_old before, $t_new after)"
else
    it_fail "reload: no calibration on the fault" "threshold $t_old before, $t_new after; $(grep -E "pump1|reload" "$D/daemon.log" | tail -12)"
fi
n=$(events | grep -c "^cleared $id2 ")
[ "$n" -eq 0 ] && it_ok "reload: $id2 cleared only once" || it_fail "reload: $id2 cleared only once" "$(events)"

# ---- 3. broker away, stop, restart -----------------------------------------------
stop
rm -rf "$D/state"; : > "$D/sub.jsonl"
conf 100 2
start
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
S0=$(( S0 - 200000 ))
pub 0 420
$H wait --file "$D/sub.jsonl" --match event=raised stream=pump1 --timeout 60 >/dev/null
id3=$(events | awk '$1 == "raised" { print $2; exit }')
it_broker_stop_keep() { kill "$IT_BROKER_PID"; wait "$IT_BROKER_PID" 2>/dev/null; IT_BROKER_PID=; }
it_broker_stop_keep
it_wait_log "$D/daemon.log" "alert $id3 cleared: .* reason evicted" 20 || true
stop
if grep -q "\"alert_id\":\\\\\"$id3\\\\\"" "$D/state/outbox.json" 2>/dev/null ||
   grep -q "$id3" "$D/state/outbox.json" 2>/dev/null; then
    it_ok "broker away: the cleared event is kept in outbox.json at stop"
else
    it_fail "broker away: the cleared event is kept in outbox.json at stop" \
        "$(cat "$D/state/outbox.json" 2>&1; tail -5 "$D/daemon.log")"
fi
mosquitto -c "$D/mosquitto.conf" >> "$D/mosquitto.log" 2>&1 & IT_BROKER_PID=$!
# the subscriber reconnects by itself (within about a second): a ping every
# 0.3 s until it has one, so that it listens before the daemon starts (a
# single ping, sent before it resubscribed, would be waited for in vain)
it_wait_until 50 sh -c "mosquitto_pub -h 127.0.0.1 -p $IT_PORT -t anomalyd/ping -m '{\"ping\":1}' 2>/dev/null &&
    sleep 0.3 && grep -q '\"topic\": \"anomalyd/ping\"' '$D/sub.jsonl'"
start
if $H wait --file "$D/sub.jsonl" --match event=cleared alert_id="$id3" reason=evicted \
        --timeout 30 >/dev/null; then
    it_ok "broker away: the cleared event is delivered after the restart"
else
    it_fail "broker away: the cleared event is delivered after the restart" \
        "$(events) $(tail -20 "$D/daemon.log")"
fi
stop
