#!/bin/sh
# it_daemon_pubrej.sh - publishes the broker refuses (MQTT 5, an ACL).
# The daemon logs in as user op, whose ACL lets it write its status, stats
# and nothing under anomalyd/alerts/# nor the detector's state topic
# (anomalyd/private/...). A fault raises an alert and normal data clears it:
#  - each refused alert message (raised, cleared) is logged at error level
#    with its topic, alert id and event;
#  - the stats count them (mqtt.publish_refused, mqtt.alerts_refused) and so
#    does the Prometheus file;
#  - the refused state topic (published at calibration, raise and clear) is
#    logged once, at warning level, with its topic (once a minute per topic);
#  - nothing stays unacknowledged: the stop is clean and quick.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_daemon_pubrej.XXXXXX)
chmod 777 "$D"
DPID= ; SPID= ; STPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    [ -n "$STPID" ] && kill "$STPID" 2>/dev/null
    it_broker_stop
    rm -rf "$D"
}
trap cleanup EXIT

mosquitto_passwd -b -c "$D/passwd" op 'op pass' 2>/dev/null
printf 'op pass\n' > "$D/pw"
# anonymous (this script's publisher and readers): sensors and anomalyd/#
cat > "$D/acl" <<EOA
topic readwrite sensors/#
topic read anomalyd/#
user op
topic read sensors/#
topic readwrite anomalyd/status
topic readwrite anomalyd/stats
EOA
chmod 644 "$D/passwd" "$D/acl"
it_broker_start "$D" "password_file $D/passwd" "acl_file $D/acl" ||
    { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-pubrej", "protocol": "5",
            "username": "op", "password_file": "$D/pw",
            "qos_subscribe": 1, "qos_alerts": 1, "stats_interval_s": 0.2},
 "state_dir": null, "workers": 1, "metrics": {"textfile": "$D/ad.prom"},
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "rows": {"mode": "period", "period_ms": 40},
   "calibration": {"windows": 50},
   "alert": {"k": 64, "n": 64, "m": 5,
             "state_topic": "anomalyd/private/{detector}/{stream}"}}]}
EOC
# stat_ge KEY N: the last statistics message has KEY (its last path
# component) >= N
stat_ge() {
    tail -1 "$D/stats.txt" |
        awk -v k="\"$1\":" -v n="$2" '{ i = index($0, k); if (!i) exit 1
                                         exit !(substr($0, i + length(k)) + 0 >= n) }'
}
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/seen.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" "connected to" 10 ||
    { it_fail "daemon connects as op" "$(cat "$D/daemon.log")"; exit 1; }
mosquitto_sub -p "$IT_PORT" -t anomalyd/stats > "$D/stats.txt" 2>/dev/null & STPID=$!

# 5 s of normal data at 50 rows/s calibrate pump1; one anomalous sample
# held by the grid raises the alert 64 windows later; normal data clears it
$H pub --port "$IT_PORT" --no-ts --rows 250 --rate 50
it_wait_log "$D/daemon.log" "pump1: calibrated" 15 ||
    it_fail "stream calibrated" "$(cat "$D/daemon.log")"
$H pub --port "$IT_PORT" --no-ts --rows 1 --const pressure=0.5 --const vibration=9
it_wait_log "$D/daemon.log" "alert [^ ]+ raised" 15 ||
    it_fail "alert raised" "$(cat "$D/daemon.log")"
$H pub --port "$IT_PORT" --no-ts --rows 100 --rate 50
it_wait_log "$D/daemon.log" "alert [^ ]+ cleared" 15 ||
    it_fail "alert cleared" "$(tail -5 "$D/daemon.log")"
id=$(grep -Eo "alert [^ ]+ raised" "$D/daemon.log" | head -1 | cut -d' ' -f2)
echo "# alert id: $id"

for ev in raised cleared; do
    re="^<3>mqtt: the broker refused alert $id $ev on anomalyd/alerts/pump/pump1 \(Not authori[sz]ed\)"
    if it_wait_log "$D/daemon.log" "$re" 5; then
        it_ok "refused alert $ev: logged at error level with topic, alert id and event"
        grep -E -m1 "$re" "$D/daemon.log" | sed 's/^/# /'
    else
        it_fail "refused alert $ev: logged at error level with topic, alert id and event" \
            "$(grep mqtt "$D/daemon.log")"
    fi
done
if it_wait_until 5 stat_ge alerts_refused 2 && stat_ge publish_refused 3; then
    it_ok "stats: mqtt.alerts_refused >= 2, mqtt.publish_refused >= 3"
else
    it_fail "stats: mqtt.alerts_refused >= 2, mqtt.publish_refused >= 3" "$(tail -1 "$D/stats.txt")"
fi
if it_wait_until 5 grep -Eq '^anomalyd_mqtt_alerts_refused_total [2-9]' "$D/ad.prom" &&
   grep -Eq '^anomalyd_mqtt_publish_refused_total [3-9]' "$D/ad.prom"; then
    it_ok "metrics: anomalyd_mqtt_alerts_refused_total, anomalyd_mqtt_publish_refused_total"
else
    it_fail "metrics: anomalyd_mqtt_alerts_refused_total, anomalyd_mqtt_publish_refused_total" \
        "$(grep refused "$D/ad.prom")"
fi
# the state topic: published at calibration, raise and clear, logged once
n=$(grep -c "^<4>mqtt: the broker refused a publish on anomalyd/private/pump/pump1 (Not authori[sz]ed)" "$D/daemon.log")
if [ "$n" -eq 1 ]; then
    it_ok "refused state topic: one warning naming the topic (once a minute per topic)"
else
    it_fail "refused state topic: one warning naming the topic (once a minute per topic)" \
        "$n lines: $(grep mqtt "$D/daemon.log")"
fi
if grep -q '"topic": *"anomalyd/alerts/' "$D/seen.jsonl"; then
    it_fail "the broker really refused: no alert reached a reader" "$(grep alerts "$D/seen.jsonl")"
else
    it_ok "the broker really refused: no alert reached a reader"
fi
# nothing left unacknowledged: the stop does not wait for the refused ones
t0=$(date +%s%N)
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ $rc -eq 0 ] && [ $ms -lt 3000 ] && ! grep -q "unacknowledged" "$D/daemon.log"; then
    it_ok "clean stop in $ms ms, nothing left unacknowledged"
else
    it_fail "clean stop in $ms ms, nothing left unacknowledged" "rc=$rc $(tail -3 "$D/daemon.log")"
fi
exit 0
