#!/bin/sh
# it_daemon_eventtime.sh - hostile timestamps against a real mosquitto:
# (a) one row stamped 2e14 ms (the year 8307) does not silence its
#     stream: it is rejected as future (logged naming detector and stream,
#     counted, its 5 values, in the stats and on the stream's state), the stream keeps
#     detecting and a later fault still raises an alert; one stamped 1e15
#     ms (the year 33658, past what a stream holds) is refused as a bad
#     payload naming the timestamp;
# (b) period mode with a device clock 2.5 s behind the daemon's loses no
#     sample: rows are assembled in the device's own time;
# (c) period mode, a device sending two messages per instant stamped a few
#     ms apart (the second stamped before the first): the second message's
#     samples are behind a row already out, and are held for the next row
#     instead of dropped as late; said once, naming rows.max_lateness_ms.
. tests/lib.sh
it_setup it_daemon_eventtime
it_broker_up

# stats_field FILE DETECTOR FIELD: the last stats message's per-detector FIELD
stats_field() {
    $PYTHON - "$1" "$2" "$3" <<'EOP'
import json, sys
v = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/stats":
        continue
    for d in json.loads(m["payload"]).get("detectors", []):
        if d["name"] == sys.argv[2]:
            v = d.get(sys.argv[3])
print(v)
EOP
}
stats_is() { [ "$(stats_field "$1" "$2" "$3")" = "$4" ]; }

# --- (a) a far-future timestamp ------------------------------------------------
cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-et-a", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/a.jsonl" & SPID=$!
$AD_BIN run -c "$D/a.json" 2> "$D/a.log" & DPID=$!
# the subscriber is in place once it has the daemon's retained status
$H wait --file "$D/a.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/a.log")"; exit 1; }
START=$(( $(date +%s) - 700 * 60 ))
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start "$START"
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/pump1/pump \
    -m '{"vibration":1.0,"current":10.0,"pressure":3.0,"temperature":40.0,"flow":50.0,"ts":200000000000000}'
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/pump1/pump \
    -m '{"vibration":1.0,"current":10.0,"pressure":3.0,"temperature":40.0,"flow":50.0,"ts":1000000000000000}'
$H pub --port "$IT_PORT" --devices 1 --rows 700 --start-row 200 --start "$START" \
    --fault 'cavitation@400m+100m'
if $H wait --file "$D/a.jsonl" --match topic=anomalyd/alerts/pump/pump1 kind=model event=raised \
       --timeout 30; then
    it_ok "after samples stamped 2e14 and 1e15 ms the stream keeps detecting: a later fault raises an alert"
else
    it_fail "after samples stamped 2e14 and 1e15 ms the stream keeps detecting: a later fault raises an alert" \
        "$(tail -5 "$D/a.log"; grep state/pump "$D/a.jsonl" | tail -1)"
fi
# the row refused for its time counts its 5 values (samples are values)
if it_wait_until 10 stats_is "$D/a.jsonl" pump samples_future 5 &&
   stats_is "$D/a.jsonl" pump samples_late 0; then
    it_ok "stats: the future row's 5 samples counted per detector (samples_future 5, samples_late 0)"
else
    it_fail "stats: the future row's 5 samples counted per detector (samples_future 5, samples_late 0)" \
        "samples_future $(stats_field "$D/a.jsonl" pump samples_future)" \
        "samples_late $(stats_field "$D/a.jsonl" pump samples_late)"
fi
if $H wait --file "$D/a.jsonl" --match topic=anomalyd/state/pump/pump1 rejected.future=5 \
       rejected.late=0 --timeout 10; then
    it_ok "state topic: rejected.future 5 on the stream's retained state"
else
    it_fail "state topic: rejected.future 5 on the stream's retained state" \
        "$(grep state/pump/pump1 "$D/a.jsonl" | tail -1)"
fi
if grep -q "detector pump: stream pump1: 5 sample(s) rejected as future (timestamp 200000000000000 ms" "$D/a.log"; then
    it_ok "the rejection is logged naming detector, stream and timestamp"
else
    it_fail "the rejection is logged naming detector, stream and timestamp" "$(grep -i future "$D/a.log")"
fi
if grep -q "detector pump: topic sensors/pump1/pump: timestamp 1000000000000 s (payload.timestamp_unit applied): outside 1970-01-01 .. 9999-12-31" "$D/a.log"; then
    it_ok "a timestamp past 9999-12-31 is refused as a bad payload naming it"
else
    it_fail "a timestamp past 9999-12-31 is refused as a bad payload naming it" \
        "$(grep -i timestamp "$D/a.log" | head -3)"
fi
it_daemon_stop
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=

# --- (b) period mode, device clock 2.5 s behind ---------------------------------
# 600 rows at 50 Hz on a 20 ms grid, stamped 2500 ms behind the wall clock;
# 1 s of allowed lateness absorbs the publisher's own stalls on a loaded
# machine (the 2.5 s offset is far beyond it)
cat > "$D/b.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-et-b", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "rows": {"mode": "period", "period_ms": 20, "max_lateness_ms": 1000},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/b.jsonl" & SPID=$!
$AD_BIN run -c "$D/b.json" 2> "$D/b.log" & DPID=$!
# the subscriber is in place once it has the daemon's retained status
$H wait --file "$D/b.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/b.log")"; exit 1; }
$PYTHON - "$IT_PORT" <<'EOP'
import json, sys, time, importlib.util, os
import paho.mqtt.client as mqtt
spec = importlib.util.spec_from_file_location("pumpsim", os.path.join("tools", "pumpsim.py"))
ps = importlib.util.module_from_spec(spec); spec.loader.exec_module(ps)
sim = ps.PumpSim(1, 60.0, 0.0, [])
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=30)
c.loop_start()
infos = []
t0 = time.time()
for k in range(600):
    _, row, _ = sim.step()
    # a 20 ms grid in the device's clock, 2.5 s behind the daemon's
    ts = (int((t0 + k * 0.02) * 1000) // 20) * 20 + 5 - 2500
    msg = {s: round(row[s], 4) for s in ["vibration", "current", "pressure",
                                         "temperature", "flow"]}
    msg["ts"] = ts
    infos.append(c.publish("sensors/pump1/pump", json.dumps(msg), qos=1))
    dt = t0 + (k + 1) * 0.02 - time.time()
    if dt > 0:
        time.sleep(dt)
for i in infos:
    i.wait_for_publish(30)
c.disconnect(); c.loop_stop()
EOP
# the last rows come out once the device's own time has moved past them
if it_wait_until 15 stats_is "$D/b.jsonl" pump samples_late 0 &&
   $H wait --file "$D/b.jsonl" --match topic=anomalyd/stats samples=3000 --timeout 10 &&
   it_wait_until 15 stats_is "$D/b.jsonl" pump dropped_samples 0; then
    it_ok "period mode, device clock 2.5 s behind: all 3000 samples accepted, none late"
else
    it_fail "period mode, device clock 2.5 s behind: all 3000 samples accepted, none late" \
        "late $(stats_field "$D/b.jsonl" pump samples_late)" \
        "dropped $(stats_field "$D/b.jsonl" pump dropped_samples)"
fi
held=$(stats_field "$D/b.jsonl" pump values_held)
if $H wait --file "$D/b.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting --timeout 15 &&
   [ "${held:-99999}" -lt 300 ]; then
    it_ok "period mode, clock behind: the stream calibrates on real rows ($held of 3000 values held)"
else
    it_fail "period mode, clock behind: the stream calibrates on real rows" "values_held $held"
fi
it_daemon_stop
kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; SPID=

# --- (c) period mode, one instant in two messages a few ms apart ---------------
cat > "$D/c.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-et-c", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "rows": {"mode": "period", "period_ms": 20},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/c.jsonl" & SPID=$!
$AD_BIN run -c "$D/c.json" 2> "$D/c.log" & DPID=$!
$H wait --file "$D/c.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/c.log")"; exit 1; }
$PYTHON - "$IT_PORT" <<'EOP'
import json, sys, time, importlib.util, os
import paho.mqtt.client as mqtt
spec = importlib.util.spec_from_file_location("pumpsim", os.path.join("tools", "pumpsim.py"))
ps = importlib.util.module_from_spec(spec); spec.loader.exec_module(ps)
sim = ps.PumpSim(1, 60.0, 0.0, [])
try:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
except AttributeError:
    c = mqtt.Client()
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=30)
c.loop_start()
infos = []
t0 = time.time()
for k in range(400):
    _, row, _ = sim.step()
    g = (int((t0 + k * 0.02) * 1000) // 20) * 20
    # one device, two messages per instant: the first stamped 3 ms after
    # the grid point, the second 2 ms before it
    a = {s: round(row[s], 4) for s in ["vibration", "current"]}
    b = {s: round(row[s], 4) for s in ["pressure", "temperature", "flow"]}
    a["ts"], b["ts"] = g + 3, g - 2
    infos.append(c.publish("sensors/pump1/pump", json.dumps(a), qos=1))
    infos.append(c.publish("sensors/pump1/pump", json.dumps(b), qos=1))
    dt = t0 + (k + 1) * 0.02 - time.time()
    if dt > 0:
        time.sleep(dt)
for i in infos:
    i.wait_for_publish(30)
c.disconnect(); c.loop_stop()
EOP
if $H wait --file "$D/c.jsonl" --match topic=anomalyd/stats samples=2000 --timeout 15 >/dev/null &&
   it_wait_until 15 stats_is "$D/c.jsonl" pump samples_late 0; then
    it_ok "period mode, two messages per instant a few ms apart: all 2000 samples accepted, none late"
else
    it_fail "period mode, two messages per instant a few ms apart: all 2000 samples accepted, none late" \
        "late $(stats_field "$D/c.jsonl" pump samples_late)" \
        "held $(stats_field "$D/c.jsonl" pump samples_late_held)"
fi
held=$(stats_field "$D/c.jsonl" pump samples_late_held)
n=$(grep -c "held for the next row" "$D/c.log")
# the lateness that fits: at least twice the 2 ms the second message's
# samples are behind (4); more when the loop, busy, let the row's time
# advance between the two messages (then the first held sample was later)
fit=$(sed -n 's/.*rows.max_lateness_ms \([0-9]*\) or more.*/\1/p' "$D/c.log" | head -1)
if [ "${held:-0}" -gt 300 ] 2>/dev/null && [ "$n" = 1 ] && [ "${fit:-0}" -ge 4 ]; then
    it_ok "period mode: the samples behind their row are held for the next ($held), said once with the lateness that fits ($fit ms)"
else
    it_fail "period mode: the samples behind their row are held for the next, said once" \
        "samples_late_held $held, log lines $n" "$(grep -i "late" "$D/c.log" | head -3)"
fi
it_daemon_stop
exit 0
