#!/bin/sh
# it_daemon_clientid.sh - two daemons with one client_id on a real
# mosquitto: each connection takes the session of the other, which the
# broker closes. The log hints at the duplicate client_id, and the
# reconnect backoff keeps growing across those brief connections instead of
# starting over at each CONNACK (a few connects in 5 s, not one every
# reconnect_min_s).
. tests/lib.sh
D=$(mktemp -d /tmp/it_daemon_clientid.XXXXXX)
DPID= ; SPID= ; D2=
trap 'kill $D2 2>/dev/null; it_daemon_cleanup' EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-twin", "reconnect_min_s": 0.1,
            "reconnect_max_s": 30, "stats_interval_s": 0},
 "state_dir": null, "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json"}}]}
EOC
$AD_BIN run -c "$D/ad.json" 2> "$D/a.log" & DPID=$!
it_wait_log "$D/a.log" 'mqtt: connected to' 10 || { it_fail "first daemon connects" "$(cat "$D/a.log")"; exit 0; }
$AD_BIN run -c "$D/ad.json" 2> "$D/b.log" & D2=$!
hint='another client with client_id "it-twin" may be connected'
if it_wait_until 20 grep -qF "$hint" "$D/a.log" "$D/b.log"; then
    it_ok "duplicate client_id: the log hints at it"
else
    it_fail "duplicate client_id: the log hints at it" "$(tail -n 4 "$D/a.log" "$D/b.log")"
fi
# a measurement window, not a wait for an event: connects of both in 5 s
# (reconnect_min_s 0.1 restarted at each CONNACK: dozens)
n0=$(cat "$D/a.log" "$D/b.log" | grep -c 'mqtt: connected to')
sleep 5
n=$(( $(cat "$D/a.log" "$D/b.log" | grep -c 'mqtt: connected to') - n0 ))
if [ "$n" -le 20 ]; then
    it_ok "duplicate client_id: the reconnect backoff grows ($n connects of both in 5 s)"
else
    it_fail "duplicate client_id: the reconnect backoff grows" "$n connects of both in 5 s"
fi
kill -TERM "$D2"; wait "$D2"; D2=
exit 0
