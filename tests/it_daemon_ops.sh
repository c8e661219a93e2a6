#!/bin/sh
# it_daemon_ops.sh - where operators live, with a real broker: Home
# Assistant discovery (retained configs with the required fields, ON while
# an alert is open, OFF after it clears, unavailable after kill -9 through
# the last will, entities removed on eviction), operator commands (ack,
# false_alarm, freeze over MQTT 3.1.1 and MQTT 5 with response topic and
# correlation data; bad JSON, unknown command, unknown stream answered and
# counted; feedback kept across a restart, also one with other calibration
# settings, and a reload to others) and the Prometheus text file
# (format validated, counters, per-stream cap).
. tests/lib.sh
it_setup it_ops
O="$PYTHON tests/it_ops.py"
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-ops", "stats_interval_s": 1, "protocol": "5",
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$D/state", "workers": 2,
 "homeassistant": {"enabled": true, "update_interval_s": 1},
 "commands": {"enabled": true},
 "metrics": {"textfile": "$D/prom/anomalyd.prom", "per_stream": true, "max_streams": 2},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "idle_evict_s": 0, "quality": {"enabled": false},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "aux", "model": "$MODEL", "topics": ["aux/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "idle_evict_s": 2}]}
EOC
mkdir -p "$D/prom"
jget() { $PYTHON -c 'import json,sys
v=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v,dict) else None
print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1" "$2"; }
ST=anomalyd/state/pump
HA=anomalyd/ha/pump
CFG=homeassistant/binary_sensor/it-ops/pump_pump2/config

$H sub --port "$IT_PORT" --topic '#' --out "$D/sub.jsonl" & SPID=$!
# the unit's UMask=0077: the metrics file is still readable by node_exporter
(umask 077; exec $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log") & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"

# pump1: a short fault is raised and clears
$H pub --port "$IT_PORT" --devices 1 --rows 600 --fault 'cavitation@300m+100m'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared --timeout 30 &&
   $H wait --file "$D/sub.jsonl" --match topic=$HA/pump1 problem=ON --timeout 5 >/dev/null &&
   [ "$(jget "$($O last --file "$D/sub.jsonl" --topic $HA/pump1)" problem)" = OFF ]; then
    it_ok "HA: pump1 ON while its alert was open, OFF after it cleared"
else
    it_fail "HA: pump1 ON while its alert was open, OFF after it cleared" \
        "$(grep -c "$HA/pump1.*ON" "$D/sub.jsonl") ON states; $(grep "alerts/pump/pump1" "$D/sub.jsonl" | cut -c1-300)"
fi

# false_alarm without an alert_id once pump1's alert has cleared: the last
# alert is meant (README), its threshold raised to its peak; a second one
# is refused (already marked)
P1ID=$(jget "$($O last --file "$D/sub.jsonl" --topic anomalyd/alerts/pump/pump1)" alert_id)
P1THR=$(jget "$($O last --file "$D/sub.jsonl" --topic $ST/pump1)" threshold)
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump1 \
    --payload '{"command":"false_alarm","by":"carol"}' --reply-topic anomalyd/reply/pump/pump1)
r2=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump1 \
    --payload '{"command":"false_alarm"}' --reply-topic anomalyd/reply/pump/pump1)
if [ "$(jget "$r" ok)" = true ] && [ "$(jget "$r" result.alert_id)" = "$P1ID" ] &&
   [ "$(jget "$r" result.closed)" = false ] &&
   $PYTHON -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(not b > a)' \
       "$P1THR" "$(jget "$r" result.threshold)" &&
   [ "$(jget "$r2" ok)" = false ]; then
    it_ok "false_alarm with no alert_id after pump1's alert cleared: the last alert ($P1ID), threshold $P1THR -> $(jget "$r" result.threshold); again: refused"
else
    it_fail "false_alarm with no alert_id after pump1's alert cleared: the last alert, threshold raised; again: refused" \
        "reply: $r; again: $r2; alert $P1ID, threshold before $P1THR"
fi

# pump2: the fault starts at row 300 and lasts beyond the data: its alert stays open
# (pump1's rows of this run are older than its last ones: dropped)
# (data quality is off for "pump": a silent stream would count as a dropout
# and keep its problem sensor ON; the model alert alone is tested here)
S=$(( $(date +%s) - 480 * 60 ))
$H pub --port "$IT_PORT" --devices 3 --rows 420 --fault 'cavitation@300m+1000m' --fault-devices pump2 --start $S
if $H wait --file "$D/sub.jsonl" --match topic=$HA/pump2 problem=ON --timeout 30; then
    it_ok "HA: binary sensor state ON while pump2's alert is open"
else
    it_fail "HA: binary sensor state ON while pump2's alert is open" "$(tail -5 "$D/daemon.log")"
fi
for t in $CFG homeassistant/sensor/it-ops/pump_pump2_score/config \
         homeassistant/sensor/it-ops/pump_pump2_severity/config; do
    if c=$($O ha-config --file "$D/sub.jsonl" --topic "$t"); then
        it_ok "HA: discovery config $t valid"
    else
        it_fail "HA: discovery config $t valid" "$c"
    fi
done
c=$($O ha-config --file "$D/sub.jsonl" --topic $CFG)
[ "$(jget "$c" device_class)" = problem ] && [ "$(jget "$c" state_topic)" = $HA/pump2 ] &&
[ "$(jget "$c" unique_id)" = anomalyd_it-ops_pump_pump2 ] &&
[ "$(jget "$c" availability)" = '[{"payload_available": "online", "payload_not_available": "offline", "topic": "anomalyd/status", "value_template": "{{ value_json.state }}"}]' ] &&
    it_ok "HA: binary sensor: device_class problem, unique_id, state topic, availability on the status topic" ||
    it_fail "HA: binary sensor fields" "$c"
r=$(mosquitto_sub -p "$IT_PORT" -t $CFG -C 1 -W 3 -F '%r' 2>/dev/null)
[ "$r" = 1 ] && it_ok "HA: discovery config is retained" || it_fail "HA: discovery config is retained" "retain=$r"

# --- commands -------------------------------------------------------------------
AID=$(jget "$($O last --file "$D/sub.jsonl" --topic $HA/pump2)" alert_id)
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump2 \
    --payload '{"command":"ack","by":"alice","request_id":7}' --reply-topic anomalyd/reply/pump/pump2)
if [ "$(jget "$r" ok)" = true ] && [ "$(jget "$r" result.alert_id)" = "$AID" ] &&
   [ "$(jget "$r" request_id)" = 7 ] &&
   $H wait --file "$D/sub.jsonl" --match topic=$ST/pump2 acknowledged=True acknowledged_by=alice --timeout 5 >/dev/null; then
    it_ok "ack (MQTT 3.1.1): reply on the documented reply topic, state shows acknowledged by alice"
else
    it_fail "ack (MQTT 3.1.1)" "reply: $r; state: $($O last --file "$D/sub.jsonl" --topic $ST/pump2)"
fi
THR0=$(jget "$($O last --file "$D/sub.jsonl" --topic $ST/pump2)" threshold)
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump2 --v5 --corr c0ffee01 \
    --payload '{"command":"false_alarm","by":"bob"}')
if [ "$(jget "$r" ok)" = true ] && [ "$(jget "$r" result.closed)" = true ] &&
   $PYTHON -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(not b > a)' \
       "$THR0" "$(jget "$r" result.threshold)"; then
    it_ok "false_alarm (MQTT 5): reply on the response topic with the correlation data; alert closed, threshold $THR0 -> $(jget "$r" result.threshold)"
else
    it_fail "false_alarm (MQTT 5)" "$r (threshold before $THR0)"
fi
FA_THR=$(jget "$r" result.threshold)
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump2 event=cleared reason=false_alarm --timeout 5 >/dev/null &&
   $H wait --file "$D/sub.jsonl" --match topic=$HA/pump2 problem=OFF --timeout 5 >/dev/null; then
    it_ok "false_alarm: cleared event with reason false_alarm, HA state OFF"
else
    it_fail "false_alarm: cleared event with reason false_alarm, HA state OFF" "$(grep alerts/pump/pump2 "$D/sub.jsonl" | tail -2)"
fi
# the fault goes on for 60 more rows (the same simulation continued): the
# raised threshold holds
$H pub --port "$IT_PORT" --devices 3 --rows 480 --start-row 420 --fault 'cavitation@300m+1000m' \
    --fault-devices pump2 --start $S
# every message in, then two more stats ticks for the windows in flight
$O stat-ge --file "$D/sub.jsonl" --key messages_in --value 1980 --timeout 20 --ticks 2 ||
    it_fail "the 60 rows arrive" "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1)"
n=$(grep -c '"topic": "anomalyd/alerts/pump/pump2".*raised' "$D/sub.jsonl")
[ "$n" -eq 1 ] && it_ok "after false_alarm the same fault level raises no new alert (60 rows)" ||
    it_fail "after false_alarm the same fault level raises no new alert" "$n raised events"
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump2 --v5 --corr 02 --payload '{"command":"freeze"}')
[ "$(jget "$r" result.frozen)" = true ] && it_ok "freeze answered" || it_fail "freeze answered" "$r"

# errors: answered, counted, never fatal
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump2 --v5 --corr 03 --payload '{"command":')
[ "$(jget "$r" ok)" = false ] &&
    [ "$(jget "$r" error)" = "payload is not a JSON object: invalid JSON at line 1 column 11" ] &&
    it_ok "bad JSON answered: $(jget "$r" error)" || it_fail "bad JSON answered" "$r"
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump2 --v5 --corr 04 --payload '{"command":"reboot"}')
case "$(jget "$r" error)" in 'unknown command "reboot"'*) it_ok "unknown command answered: $(jget "$r" error)" ;;
    *) it_fail "unknown command answered" "$r" ;; esac
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump9 --payload '{"command":"ack"}' \
    --reply-topic anomalyd/reply/pump/pump9)
[ "$(jget "$r" error)" = 'unknown stream "pump9" of detector pump' ] &&
    it_ok "unknown stream answered on the reply topic: $(jget "$r" error)" || it_fail "unknown stream answered" "$r"
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump3 --v5 --corr 05 --payload '{"command":"ack"}')
[ "$(jget "$r" error)" = "no open alert to acknowledge" ] &&
    it_ok "ack without an open alert refused: $(jget "$r" error)" || it_fail "ack without an open alert refused" "$r"
r=$($O cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump3 --v5 --corr 06 --payload '{"command":"accept_drift"}')
[ "$(jget "$r" error)" = "continual learning is off for this stream (adapt.enabled)" ] &&
    it_ok "accept_drift without continual learning refused: $(jget "$r" error)" ||
    it_fail "accept_drift without continual learning refused" "$r"
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats commands.ok=4 commands.bad_json=1 \
       commands.unknown_command=1 commands.unknown_stream=1 commands.refused=3 --timeout 5 >/dev/null &&
   kill -0 "$DPID"; then
    it_ok "stats count 4 commands done and 6 refused by cause; daemon still running"
else
    it_fail "stats count commands" "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1)"
fi

# --- metrics ------------------------------------------------------------------------
P="$D/prom/anomalyd.prom"
it_wait_file "$P" 5
if v=$($O prom "$P"); then
    it_ok "metrics file valid Prometheus text format ($v)"
else
    it_fail "metrics file valid Prometheus text format" "$v"
fi
mode=$(stat -c %a "$P")
[ "$mode" = 644 ] && it_ok "metrics file mode 644 under umask 077 (node_exporter, another user, reads it)" ||
    it_fail "metrics file readable by another user" "mode $mode"
if command -v promtool >/dev/null 2>&1; then
    it_check "promtool check metrics accepts the file" sh -c "promtool check metrics < '$P'"
fi
m=$(awk '$1 == "anomalyd_messages_received_total" { print $2 }' "$P")
[ -n "$m" ] && [ "$m" -ge 1980 ] && it_ok "anomalyd_messages_received_total $m (>= 1980 published)" ||
    it_fail "anomalyd_messages_received_total" "$m"
n=$(grep -c '^anomalyd_stream_score{detector="pump"' "$P")
o=$(awk '$1 == "anomalyd_stream_series_omitted{detector=\"pump\"}" { print $2 }' "$P")
[ "$n" -eq 2 ] && [ "$o" = 1 ] && it_ok "per-stream series capped at max_streams 2 (1 stream omitted)" ||
    it_fail "per-stream series capped" "$n series, omitted $o"
grep -q '^anomalyd_commands_total{result="bad_json"} 1$' "$P" &&
    it_ok "commands counted in the metrics" || it_fail "commands counted in the metrics" "$(grep commands "$P")"
printf '# TYPE anomalyd_x counter\nanomalyd_x 1\n' > "$D/bad1.prom"
printf '# TYPE anomalyd_y_total counter\nanomalyd_y_total{a="b\\q"} 1\n' > "$D/bad2.prom"
printf '# TYPE anomalyd_z gauge\nanomalyd_z 1\n# TYPE anomalyd_z gauge\n' > "$D/bad3.prom"
if ! $O prom "$D/bad1.prom" >/dev/null && ! $O prom "$D/bad2.prom" >/dev/null &&
   ! $O prom "$D/bad3.prom" >/dev/null; then
    it_ok "the validator refuses a counter without _total, a bad escape, a second TYPE"
else
    it_fail "the validator refuses bad files"
fi

# --- eviction removes the entities ------------------------------------------------------
$H pub --port "$IT_PORT" --devices 1 --rows 40 --topic 'aux/{device}/pump'
AUXCFG=homeassistant/binary_sensor/it-ops/aux_pump1/config
$H wait --file "$D/sub.jsonl" --match topic=$AUXCFG --timeout 10 >/dev/null
if it_wait_log "$D/daemon.log" 'detector aux: stream pump1 idle' 10 &&
   it_wait_until 5 sh -c "grep -q '\"topic\": \"$AUXCFG\", \"payload\": \"\"' '$D/sub.jsonl'" &&
   it_retained "$IT_PORT" "$D/fresh.txt" $AUXCFG && [ ! -s "$D/fresh.txt" ]; then
    it_ok "eviction: empty retained discovery config, the entity is gone from the broker"
else
    it_fail "eviction removes the entities" "$(grep "$AUXCFG" "$D/sub.jsonl" | tail -2)"
fi

# --- kill -9: entities unavailable; restart: feedback kept ---------------------------------
it_wait_until 5 sh -c "ls '$D'/state/pump/pump2.state.json >/dev/null 2>&1 && grep -q false_alarms '$D'/state/pump/pump2.state.json"
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
# the will is retained: it is the status whether it came before or after the
# subscription (waiting for a live message alone would wait out the timeout
# whenever the broker sent the will first, as it usually does)
st=$(it_wait_topic "$IT_PORT" anomalyd/status 40 '"state": *"offline"') ||
    st=$(mosquitto_sub -p "$IT_PORT" -t anomalyd/status -C 1 -W 3 2>/dev/null)
[ "$(jget "$st" state)" = offline ] &&
    it_ok "kill -9: the last will sets the status offline: HA's availability template gives 'offline' (unavailable)" ||
    it_fail "kill -9: last will makes the entities unavailable" "$st"
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 2 --rows 5 --start "$(( $(date +%s) + 7200 ))"
if $H wait --file "$D/sub.jsonl" --match topic=$ST/pump2 phase=detecting false_alarms=1 frozen=True \
       "threshold=$FA_THR" --timeout 20; then
    it_ok "restart: pump2 keeps its false alarm, raised threshold $FA_THR and freeze"
else
    it_fail "restart: feedback kept" "$($O last --file "$D/sub.jsonl" --topic $ST/pump2) $(cat "$D/daemon2.log")"
fi

# --- other calibration settings: the stream recalibrates, the operator's
# feedback (false alarm, freeze) is kept: a restart with them, then a
# reload to yet others. Before, the restart dropped it (the state topic
# said frozen false) and the reload kept saying frozen while the new
# threshold adapted (its saved threshold not frozen).
it_daemon_stop
# (rows.max_future_ms 0: the rows below come after the data of the runs
# before, which ran ahead of the clock)
sed 's/"calibration": {"windows": 100}, "idle_evict_s": 0/"calibration": {"windows": 40}, "rows": {"max_future_ms": 0}, "idle_evict_s": 0/' \
    "$D/ad.json" > "$D/ad2.json"
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad2.json" 2> "$D/daemon3.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 2 --rows 300 --start "$(( $(date +%s) + 86400 ))"
frozen_saved() { # frozen_saved FILE: the saved threshold is calibrated and frozen
    $PYTHON -c 'import json,sys
o=json.load(open(sys.argv[1]))
t=o.get("state") or {}
sys.exit(0 if t.get("fitted") is True and t.get("frozen") is True else 1)' "$1" 2>/dev/null; }
if $H wait --file "$D/sub.jsonl" --match topic=$ST/pump2 phase=detecting false_alarms=1 frozen=True \
       --timeout 20 >/dev/null &&
   grep -q 'saved calibration not reused' "$D/daemon3.log" &&
   it_wait_until 10 frozen_saved "$D/state/pump/pump2.state.json"; then
    it_ok "restart with other calibration settings: recalibrated, the false alarm and the freeze kept (state topic and the saved threshold)"
else
    it_fail "restart with other calibration settings: feedback kept" \
        "$($O last --file "$D/sub.jsonl" --topic $ST/pump2) $(head -c 600 "$D/state/pump/pump2.state.json")"
fi
sed 's/"calibration": {"windows": 40}, "rows"/"calibration": {"windows": 50}, "rows"/' \
    "$D/ad2.json" > "$D/ad3.json" && cp "$D/ad3.json" "$D/ad2.json"
: > "$D/sub.jsonl"
kill -HUP "$DPID"
it_wait_until 10 grep -q 'reload' "$D/daemon3.log"
$H pub --port "$IT_PORT" --devices 2 --rows 300 --start "$(( $(date +%s) + 2 * 86400 ))"
if $H wait --file "$D/sub.jsonl" --match topic=$ST/pump2 phase=detecting false_alarms=1 frozen=True \
       --timeout 20 >/dev/null && [ "$(grep -c 'saved calibration not reused' "$D/daemon3.log")" -ge 2 ] &&
   it_wait_until 10 frozen_saved "$D/state/pump/pump2.state.json"; then
    it_ok "reload to other calibration settings: recalibrated, the freeze holds on the new threshold"
else
    it_fail "reload to other calibration settings: freeze holds" \
        "$($O last --file "$D/sub.jsonl" --topic $ST/pump2) $(grep -i 'calibration\|reload' "$D/daemon3.log" | tail -5)"
fi
it_daemon_stop
exit 0
