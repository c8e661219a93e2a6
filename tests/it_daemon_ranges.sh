#!/bin/sh
# it_daemon_ranges.sh - quality.ranges, the physical range of a feature,
# against a real mosquitto: `anomalyd check` refuses a bad range naming its
# key; a pressure published above its configured range raises a data_quality
# alert naming the feature with the configured limits (check range, range
# physical), while the feature still learns; its rows do not feed
# calibration (the stream calibrates later than its twin without the
# excursion); it clears when the values come back; a SIGHUP that widens the
# range clears the open one (reason reload) without dropping the stream and
# raises nothing more for the same values, while a SIGHUP that changes
# another feature's range keeps it open (no second raise for values still
# outside; its clear later under its first id); a reload with a bad range is
# refused; replay -c applies the ranges too.
. tests/lib.sh
it_setup it_daemon_ranges

# conf RANGES: the config with quality.ranges RANGES
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": ${IT_PORT:-1883}, "client_id": "it-ranges", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "quality": {"ranges": $1},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}

# check: every error names the key path and the feature
check_err() {       # check_err RANGES MESSAGE
    conf "$1"
    out=$($AD_BIN check -c "$D/ad.json" 2>&1)
    if [ $? -ne 0 ] && echo "$out" | grep -qF -- "$D/ad.json: $2"; then
        it_ok "check refuses $1: $2"
    else
        it_fail "check refuses $1: $2" "$out"
    fi
}
check_err '{"presure": [0, 8]}' "detectors[0].quality.ranges.presure: not a feature of the model (its features: vibration, current, pressure, temperature, flow)"
check_err '{"pressure": [8, 0]}' "detectors[0].quality.ranges.pressure: min 8 is not less than max 0"
check_err '{"pressure": [0, "8"]}' "detectors[0].quality.ranges.pressure[1]: expected a number or null (no upper limit), got a string"
check_err '{"pressure": 8}' "detectors[0].quality.ranges.pressure: expected [min, max] (a number or null each), got a number"
conf '{"pressure": [0, 8], "temperature": [-40, null]}'
if out=$($AD_BIN check -c "$D/ad.json" 2>&1); then
    it_ok "check accepts {pressure: [0, 8], temperature: [-40, null]}"
else
    it_fail "check accepts {pressure: [0, 8], temperature: [-40, null]}" "$out"
fi
# ranges for a monitor that is off: a warning
sed 's/"quality": {/"quality": {"enabled": false, /' "$D/ad.json" > "$D/off.json"
if out=$($AD_BIN check -c "$D/off.json" 2>&1) && echo "$out" | grep -qF \
       "warning: detector pump: quality.ranges does nothing with quality.enabled false"; then
    it_ok "check warns about ranges with quality.enabled false"
else
    it_fail "check warns about ranges with quality.enabled false" "$out"
fi

# replay -c applies the same ranges (pressure 5-6 bar here: above 5.5 at
# times), and refuses the same bad one
$PYTHON tools/pumpsim.py --seed 3 --rows 200 --out "$D/data.csv" >/dev/null 2>&1
conf '{"pressure": [0, 5.5]}'
$AD_BIN replay -c "$D/ad.json" -i "$D/data.csv" -o "$D/replay.csv" -e "$D/replay.jsonl" \
    2> "$D/replay.log"
if grep '"event":"dq_raised"' "$D/replay.jsonl" 2>/dev/null | grep '"check":"range"' |
       grep '"feature":"pressure"' | grep -q '"range":"physical","lo":0,"hi":5.5'; then
    it_ok "replay -c: the configured range raises physical range events on pressure"
else
    it_fail "replay -c: the configured range raises physical range events on pressure" \
        "$(head -3 "$D/replay.jsonl"; tail -2 "$D/replay.log")"
fi
conf '{"presure": [0, 5.5]}'
if ! $AD_BIN replay -c "$D/ad.json" -i "$D/data.csv" -o "$D/replay.csv" 2> "$D/replay.log" &&
   grep -q "quality.ranges.presure: not a feature of the model" "$D/replay.log"; then
    it_ok "replay -c refuses a range naming no feature"
else
    it_fail "replay -c refuses a range naming no feature" "$(cat "$D/replay.log")"
fi
it_broker_up
conf '{"pressure": [0, 8], "temperature": [-40, null]}'
it_daemon_up
START=$(( $(date +%s) - 600 * 60 ))
# a stream's last retained phase
phase() { it_last_stat "$D/sub.jsonl" "anomalyd/state/pump/$1" phase; }
# twins, the same simulated pump: apump1's pressure (5-6 bar) is 10 bar
# higher in rows 20-29 (while its monitor still learns), bpump1's is not
$H pub --port "$IT_PORT" --rows 140 --start "$START" --topic 'sensors/a{device}/pump' \
    --shift pressure:10:20:30
$H pub --port "$IT_PORT" --rows 140 --start "$START" --topic 'sensors/b{device}/pump'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/apump1 kind=data_quality \
       event=dq_raised check=range range=physical feature=pressure lo=0 hi=8 --timeout 20 \
       >/dev/null; then
    it_ok "a pressure above its configured range: data_quality alert naming the feature and the limits 0..8 (range physical), while the feature still learns"
else
    it_fail "a pressure above its configured range: data_quality alert naming the feature and the limits" \
        "$(grep alerts/ "$D/sub.jsonl" | head -3; tail -5 "$D/daemon.log")"
fi
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/apump1 kind=data_quality \
       event=dq_cleared check=range feature=pressure --timeout 20 >/dev/null; then
    it_ok "the pressure back inside: the alert clears"
else
    it_fail "the pressure back inside: the alert clears" "$(grep dq_ "$D/sub.jsonl" | tail -3)"
fi
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/bpump1 phase=detecting \
    --timeout 20 >/dev/null
if [ "$(phase bpump1)" = detecting ] && [ "$(phase apump1)" = calibrating ]; then
    it_ok "the rows out of range do not teach: after 140 rows the twin without them detects, the stream with them still calibrates"
else
    it_fail "the rows out of range do not teach" "bpump1 $(phase bpump1), apump1 $(phase apump1)"
fi
n=$(grep 'alerts/pump/bpump1' "$D/sub.jsonl" | grep -c data_quality)
[ "$n" = 0 ] && it_ok "the twin within range: no data_quality alert" ||
    it_fail "the twin within range: no data_quality alert" "$n"

# rows 140-199 of apump1: the pressure 10 bar higher from row 170 on, open
$H pub --port "$IT_PORT" --rows 200 --start-row 140 --start "$START" \
    --topic 'sensors/a{device}/pump' --shift pressure:10:170
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/apump1 kind=data_quality \
    event=dq_raised check=range --count 2 --timeout 20 >/dev/null ||
    it_fail "the second excursion raises" "$(grep dq_ "$D/sub.jsonl" | tail -3)"
# dq EVENT [REASON]: the data-quality EVENT messages of apump1 (with REASON)
# as "alert_id reason" lines
dq() {
    $PYTHON - "$D/sub.jsonl" "$1" "${2:-}" <<'EOP'
import json, sys
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] != "anomalyd/alerts/pump/apump1":
        continue
    p = json.loads(m["payload"])
    if p.get("event") == sys.argv[2] and (not sys.argv[3] or p.get("reason") == sys.argv[3]):
        print(p.get("alert_id"), p.get("reason"))
EOP
}
# SIGHUP changing another feature's range (temperature): the open pressure
# alert still holds under the new settings. Before, the rebuild cleared it
# (reason reload) and the next value out of range raised it again: two
# events for an unchanged fact
id2=$(dq dq_raised | tail -1 | cut -d' ' -f1)
conf '{"pressure": [0, 8], "temperature": [-50, null]}'
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "configuration reloaded" 20
# rows 200-219: still 10 bar higher, outside 0..8; then 220-239 back inside
$H pub --port "$IT_PORT" --rows 220 --start-row 200 --start "$START" \
    --topic 'sensors/a{device}/pump' --shift pressure:10:170
it_wait_log "$D/daemon.log" "data quality $id2 still holds after the reload" 20
if [ "$(dq dq_raised | wc -l)" = 2 ] && [ -z "$(dq dq_cleared reload)" ] &&
   grep -q "data quality $id2 still holds after the reload" "$D/daemon.log"; then
    it_ok "SIGHUP changing another range: the open pressure alert stays open ($id2), values still outside raise nothing"
else
    it_fail "SIGHUP changing another range: the open pressure alert stays open" \
        "raised: $(dq dq_raised | tr '\n' ' '); cleared: $(dq dq_cleared | tr '\n' ' ')"
fi
# a second SIGHUP (temperature again) while the carried alert is open:
# the monitor rebuilt again takes it over again. Before, the entry kept
# the first monitor's id too: the clear did not match, the alert stayed
# open for ever and a clear was published for an id never raised
conf '{"pressure": [0, 8], "temperature": [-60, null]}'
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "configuration reloaded" 20 2
# rows 220-229: still outside 0..8; then 230-249 back inside
$H pub --port "$IT_PORT" --rows 230 --start-row 220 --start "$START" \
    --topic 'sensors/a{device}/pump' --shift pressure:10:170
it_wait_log "$D/daemon.log" "data quality $id2 still holds after the reload" 20 2
if [ "$(dq dq_raised | wc -l)" = 2 ] && [ "$(dq dq_cleared | wc -l)" = 1 ] &&
   [ "$(grep -c "data quality $id2 still holds after the reload" "$D/daemon.log")" = 2 ]; then
    it_ok "a second SIGHUP: the carried alert is taken over again ($id2), nothing raised or cleared"
else
    it_fail "a second SIGHUP: the carried alert is taken over again" \
        "raised: $(dq dq_raised | tr '\n' ' '); cleared: $(dq dq_cleared | tr '\n' ' ')"
fi
$H pub --port "$IT_PORT" --rows 250 --start-row 230 --start "$START" \
    --topic 'sensors/a{device}/pump'
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/apump1 \
       event=dq_cleared check=range alert_id="$id2" reason=cleared --timeout 20 >/dev/null; then
    it_ok "... and clears once the pressure is back inside, under its first id (reason cleared)"
else
    it_fail "... and clears once the pressure is back inside, under its first id" \
        "cleared: $(dq dq_cleared | tr '\n' ' ')"
fi
sleep 0.5
stray=$(dq dq_cleared | cut -d' ' -f1 | while read -r c; do
            dq dq_raised | cut -d' ' -f1 | grep -qx "$c" || echo "$c"; done)
[ -z "$stray" ] && it_ok "no clear for an id never raised" ||
    it_fail "no clear for an id never raised" "$stray"
# rows 250-269 of apump1: 10 bar higher again, open
$H pub --port "$IT_PORT" --rows 270 --start-row 250 --start "$START" \
    --topic 'sensors/a{device}/pump' --shift pressure:10:250
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/apump1 kind=data_quality \
    event=dq_raised check=range --count 3 --timeout 20 >/dev/null ||
    it_fail "the third excursion raises" "$(grep dq_ "$D/sub.jsonl" | tail -3)"
before=$(phase apump1)
# SIGHUP: pressure 0..30 now
conf '{"pressure": [0, 30], "temperature": [-40, null]}'
kill -HUP "$DPID"
if it_wait_log "$D/daemon.log" "configuration reloaded" 20 3 &&
   $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/apump1 \
       kind=data_quality event=dq_cleared check=range reason=reload --timeout 20 >/dev/null; then
    it_ok "SIGHUP widening the range: the open range alert is cleared (reason reload)"
else
    it_fail "SIGHUP widening the range: the open range alert is cleared (reason reload)" \
        "$(grep dq_ "$D/sub.jsonl" | tail -2; tail -5 "$D/daemon.log")"
fi
if grep -q "reload: detector pump: .* 0 dropped" "$D/daemon.log" &&
   ! grep -q "stream dropped" "$D/daemon.log"; then
    it_ok "the streams are rebuilt, none dropped ($(grep -o '[0-9]* rebuilt' "$D/daemon.log" | tail -1))"
else
    it_fail "the streams are rebuilt, none dropped" "$(grep 'reload:' "$D/daemon.log")"
fi
# rows 270-329, still 10 bar higher: inside the new range
$H pub --port "$IT_PORT" --rows 330 --start-row 270 --start "$START" \
    --topic 'sensors/a{device}/pump' --shift pressure:10:250
$H pub --port "$IT_PORT" --rows 260 --start-row 140 --start "$START" --topic 'sensors/b{device}/pump'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/bpump1 phase=detecting \
    --count 2 --timeout 20 >/dev/null
sleep 1
n=$(grep 'alerts/pump/apump1' "$D/sub.jsonl" | grep -c 'dq_raised')
if [ "$n" = 3 ] && [ "$(phase apump1)" = detecting ]; then
    it_ok "after the reload the same values raise nothing, the stream goes on ($before -> detecting)"
else
    it_fail "after the reload the same values raise nothing, the stream goes on" \
        "$n raised; phase $before -> $(phase apump1)"
fi
# a reload with a range naming no feature: refused, the ranges stay
conf '{"presure": [0, 30]}'
kill -HUP "$DPID"
if it_wait_log "$D/daemon.log" "detectors\[0\]\.quality\.ranges\.presure: not a feature of the model" 20; then
    it_ok "a reload with a bad range is refused naming the key"
else
    it_fail "a reload with a bad range is refused naming the key" "$(tail -3 "$D/daemon.log")"
fi
it_daemon_stop
exit 0
