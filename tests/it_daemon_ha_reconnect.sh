#!/bin/sh
# it_daemon_ha_reconnect.sh - Home Assistant discovery after the broker
# restarted without persistence, with 1500 streams: every stream's three
# discovery configs come back, paced like the retained states, so that
# what the daemon publishes meanwhile does not wait behind all of them. An
# operator command sent the moment the daemon is back online must be
# answered before the bulk of the 4500 configs (all at once, its reply
# waited behind every one of them).
. tests/lib.sh
it_setup it_ha_reconnect
N=1500
# a subscriber may fall behind a burst: the broker keeps its messages
it_broker_start "$D" "max_queued_messages 1000000" || { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-har", "qos_subscribe": 1,
            "reconnect_min_s": 2, "reconnect_max_s": 2},
 "workers": 1, "homeassistant": {"enabled": true}, "commands": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json"}, "max_streams": 100000}]}
EOC
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
$H pub --port "$IT_PORT" --devices $N --rows 1 --no-ts >/dev/null
it_wait_until 30 sh -c "[ \$(mosquitto_sub -h 127.0.0.1 -p $IT_PORT -t 'homeassistant/binary_sensor/#' -W 2 2>/dev/null | grep -c .) -ge $N ]" ||
    it_fail "$N streams announced" "$(tail -3 "$D/daemon.log")"

# the broker dies without persistence and comes back on the same port; an
# observer is there before the daemon reconnects (2 s backoff)
kill -9 "$IT_BROKER_PID"; wait "$IT_BROKER_PID" 2>/dev/null
mosquitto -c "$D/mosquitto.conf" > "$D/mosquitto2.log" 2>&1 & IT_BROKER_PID=$!
$PYTHON - "$IT_PORT" "$N" > "$D/observer.txt" 2>&1 <<'EOP'
import json, sys, time
import paho.mqtt.client as mqtt
port, n = int(sys.argv[1]), int(sys.argv[2])
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
st = {"configs": 0, "sent_at": None, "reply_at": None, "reply": None, "t0": 0, "t1": 0}
def on_connect(cl, ud, flags, rc):
    cl.subscribe([("homeassistant/#", 1), ("anomalyd/status", 1), ("anomalyd/reply/#", 1)])
def on_message(cl, ud, m):
    if m.topic == "anomalyd/status":
        if st["sent_at"] is None and b'"online"' in m.payload:
            st["sent_at"], st["t0"] = st["configs"], time.time()
            cl.publish("anomalyd/cmd/pump/pump1", json.dumps({"command": "unfreeze",
                       "request_id": 1}), qos=1)
    elif m.topic.startswith("anomalyd/reply/"):
        if st["reply_at"] is None:
            st["reply_at"], st["reply"] = st["configs"], m.payload.decode()[:80]
    elif m.topic.endswith("/config") and m.payload:
        st["configs"] += 1
        st["t1"] = time.time()
c.on_connect, c.on_message = on_connect, on_message
end = time.time() + 5
while True:
    try:
        c.connect("127.0.0.1", port, keepalive=10); break
    except OSError:
        if time.time() > end: raise
        time.sleep(0.05)
c.loop_start()
end = time.time() + 60
while time.time() < end and not (st["reply_at"] is not None and st["configs"] >= 3 * n):
    time.sleep(0.05)
time.sleep(0.5)
c.loop_stop()
print("online_seen_at %s reply_at %s configs %d in %.2f s reply %s" %
      (st["sent_at"], st["reply_at"], st["configs"], max(0, st["t1"] - st["t0"]), st["reply"]))
EOP
cat "$D/observer.txt" | sed 's/^/# /'
set -- $(cat "$D/observer.txt")
sent=$2; at=$4; total=$6
if [ "$total" = "$((3 * N))" ]; then
    it_ok "after the broker restart every stream's 3 discovery configs are back ($total)"
else
    it_fail "after the broker restart every stream's 3 discovery configs are back" \
        "$total of $((3 * N)): $(tail -3 "$D/daemon.log")"
fi
if [ "$sent" != None ] && [ "$at" != None ] && [ "$at" -lt $((3 * N / 2)) ]; then
    it_ok "a command sent when the daemon came back online is answered before the bulk of the discovery configs (after $at of $total)"
else
    it_fail "a command sent when the daemon came back online is answered before the bulk of the discovery configs" \
        "its reply came after $at of $total discovery configs (online seen after $sent)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
