#!/bin/sh
# it_daemon_reload_counts.sh - a reload does not set a detector's figures
# back (stats, and the metrics counters read from them):
#  - SIGHUP with the same configuration: streams_refused (a stream past
#    max_streams) and samples_late of the detector stay as they were;
#  - SIGHUP with new alert settings, which rebuilds the stream's detector:
#    its samples_late stays in the detector's figures, and the daemon's
#    dropped_samples total with it.
. tests/lib.sh
it_setup it_daemon_reload_counts
it_broker_up
conf() {    # conf K: the configuration with alert.k K
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-reload-counts", "stats_interval_s": 0.2},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "max_streams": 1,
   "alert": {"k": $1, "n": 5}}]}
EOC
}
# field FILE DETECTOR|- FIELD: the last stats message's FIELD, of the
# detector (or the daemon's, with -)
field() {
    $PYTHON - "$@" <<'EOP'
import json, sys
v = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/stats":
        continue
    s = json.loads(m["payload"])
    if sys.argv[2] == "-":
        v = s.get(sys.argv[3])
    for d in s.get("detectors", []):
        if d["name"] == sys.argv[2]:
            v = d.get(sys.argv[3])
print(v)
EOP
}
is() { [ "$(field "$D/s.jsonl" "$1" "$2")" = "$3" ]; }
figures() {
    echo "refused $(field "$D/s.jsonl" pump streams_refused) late $(field "$D/s.jsonl" pump samples_late)" \
         "dropped $(field "$D/s.jsonl" - dropped_samples)"
}
# reload CONFIGURATION-K N: SIGHUP, wait for the N-th "configuration
# reloaded", then for statistics published after it
reload() {
    conf "$1"
    kill -HUP "$DPID"
    it_wait_until 10 sh -c "[ \$(grep -c 'configuration reloaded' '$D/d.log') -ge $2 ]" ||
        it_fail "reload $2 done" "$(tail -3 "$D/d.log")"
    n=$(grep -c '"anomalyd/stats"' "$D/s.jsonl")
    it_wait_until 5 sh -c "[ \$(grep -c '\"anomalyd/stats\"' '$D/s.jsonl') -ge $((n + 2)) ]"
}

conf 3
$H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/s.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" 2> "$D/d.log" & DPID=$!
$H wait --file "$D/s.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon connects" "$(cat "$D/d.log")"; exit 1; }
START=$(( $(date +%s) - 100 * 60 ))
$H pub --port "$IT_PORT" --devices 1 --rows 30 --start "$START"
# a row stamped at the stream's first row: late, its 5 values refused
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/pump1/pump \
    -m "{\"vibration\":1.0,\"current\":10.0,\"pressure\":3.0,\"temperature\":40.0,\"flow\":50.0,\"ts\":${START}000}"
# a second stream past max_streams 1: refused
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t sensors/pump2/pump \
    -m "{\"vibration\":1.0,\"current\":10.0,\"pressure\":3.0,\"temperature\":40.0,\"flow\":50.0,\"ts\":${START}000}"
if it_wait_until 10 is pump samples_late 5 && it_wait_until 5 is pump streams_refused 1; then
    it_ok "before the reload: the late row's 5 values and the refused stream counted ($(figures))"
else
    it_fail "before the reload: the late row's 5 values and the refused stream counted" "$(figures)"
fi
dropped=$(field "$D/s.jsonl" - dropped_samples)

reload 3 1
if is pump streams_refused 1 && is pump samples_late 5 && is - dropped_samples "$dropped"; then
    it_ok "SIGHUP, same configuration: the detector's figures are kept ($(figures))"
else
    it_fail "SIGHUP, same configuration: the detector's figures are kept" \
        "$(figures); want refused 1 late 5 dropped $dropped"
fi

reload 4 2
grep -q "1 rebuilt for new settings" "$D/d.log" ||
    it_fail "the alert change rebuilds the stream's detector" "$(grep reload "$D/d.log")"
if is pump streams_refused 1 && is pump samples_late 5 && is - dropped_samples "$dropped"; then
    it_ok "SIGHUP, new alert settings (the detector rebuilt): its figures are kept ($(figures))"
else
    it_fail "SIGHUP, new alert settings (the detector rebuilt): its figures are kept" \
        "$(figures); want refused 1 late 5 dropped $dropped"
fi
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] && it_ok "clean stop" || it_fail "clean stop" "rc=$rc"
exit 0
