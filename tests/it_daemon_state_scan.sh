#!/bin/sh
# it_daemon_state_scan.sh - the scan at start of a state directory of many
# streams. The state files are read off the loop thread (a directory of
# thousands held the loop, MQTT and signals, for as long); what the scan
# does is unchanged:
#  1. pump1 and pump2 raise alerts, pump3 stays normal; the daemon stops.
#     3000 more streams are added to the directory (pump3's state file
#     under other names: none has an open alert).
#  2. start, and pump1's rows follow at once, while the scan may still run
#     (the fault's last 40 rows; the rest, which end it, after the scan):
#     both streams with an open alert are restored ("2 stream(s) with an
#     open alert restored", the one log line as before); pump2, silent,
#     shows its alert open again on its state topic, with its id; pump1's
#     340 rows are all taken, in order (every sample counted, none dropped
#     as late or duplicate, a window scored per row) and its alert ends,
#     cleared with its id. None of the 3000 streams is restored.
#  3. what the scan reads besides, done once it is read, in directory order
#     after the restores: a directory "gone" naming no configured detector
#     holds a stream gone1 with an open alert (pump2's, moved there): it is
#     cleared (reason detector_removed) on the topic its file names and its
#     retained state emptied; a stream "moved" of pump without an open alert
#     whose saved topic the configuration no longer feeds has its retained
#     state emptied. The log lines are those of a scan on the loop.
. tests/lib.sh
it_setup it_state_scan
NFILES=3000
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-scan", "qos_subscribe": 1,
            "stats_interval_s": 0.5},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "idle_evict_s": 3600, "quality": {"enabled": false},
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
it_daemon_up
S=$(( $(date +%s) - 700 * 60 ))
$H pub --port "$IT_PORT" --devices 3 --rows 260 --start $S \
    --fault 'blockage@200m+300m' --fault-devices pump1,pump2
for p in pump1 pump2; do
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/$p event=raised \
        --timeout 20 >/dev/null || { it_fail "1: $p raises an alert" "$(tail -5 "$D/daemon.log")"; exit 1; }
done
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=3900 --timeout 20 >/dev/null
it_daemon_stop
# the id of STREAM's raised alert
raised() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/pump/" + sys.argv[2] and '"raised"' in m["payload"]:
        print(json.loads(m["payload"])["alert_id"])
        break
EOP
}
ID1=$(raised pump1); ID2=$(raised pump2)
if grep -qs "\"open\":{\"id\":\"$ID1\"" "$D/state/pump/pump1.state.json" &&
   grep -qs "\"open\":{\"id\":\"$ID2\"" "$D/state/pump/pump2.state.json" &&
   ! grep -qs '"open":{' "$D/state/pump/pump3.state.json"; then
    it_ok "1: pump1 and pump2 stopped with their alerts open ($ID1, $ID2), pump3 with none"
else
    it_fail "1: pump1 and pump2 stopped with their alerts open, pump3 with none" \
        "$(ls "$D/state/pump")"
fi
$PYTHON - "$D/state/pump" "$NFILES" <<'EOP'
import shutil, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    shutil.copyfile(d + "/pump3.state.json", "%s/dev%05d.state.json" % (d, i))
EOP
# 3's files: gone/gone1 (an open alert, detector gone) and pump/moved (no
# open alert, fed by a topic no longer subscribed), their retained states
$PYTHON - "$D/state" <<'EOP'
import json, os, sys
d = sys.argv[1]
o = json.load(open(d + "/pump/pump2.state.json"))
o["stream"] = "gone1"
o["alert_topic"]["topic"] = "anomalyd/alerts/gone/gone1"
o["published"] = {"detector": "gone", "state_topic": "anomalyd/state/gone/gone1", "feed": "0"}
os.makedirs(d + "/gone")
json.dump(o, open(d + "/gone/gone1.state.json", "w"), separators=(",", ":"))
o = json.load(open(d + "/pump/pump3.state.json"))
o["stream"] = "moved"
o["topics"] = ["old/moved/pump"]
o["published"] = {"detector": "pump", "state_topic": "anomalyd/state/pump/moved", "feed": "0"}
json.dump(o, open(d + "/pump/moved.state.json", "w"), separators=(",", ":"))
EOP
for t in anomalyd/state/gone/gone1 anomalyd/state/pump/moved; do
    mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -t "$t" -r -q 1 -m '{"phase":"detecting"}'
done

# 2: start; pump1's rows at once
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 30 >/dev/null ||
    { it_fail "2: daemon connects" "$(cat "$D/daemon2.log")"; exit 1; }
# the fault's last 40 rows first (the alert stays open while the scan
# runs), the rest once the scan is done (they end the alert)
$H pub --port "$IT_PORT" --devices 1 --rows 300 --start $S --start-row 260 \
    --fault 'blockage@200m+100m' --fault-devices pump1
it_wait_log "$D/daemon2.log" 'stream\(s\) with an open alert restored' 30 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 600 --start $S --start-row 300 \
    --fault 'blockage@200m+100m' --fault-devices pump1
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=1700 windows_scored=340 \
    --timeout 30 >/dev/null
n=$(grep -c 'open alert restored' "$D/daemon2.log")
if [ "$n" = 1 ] && grep -q 'detector pump: 2 stream(s) with an open alert restored' "$D/daemon2.log"; then
    it_ok "2: one line, 2 stream(s) with an open alert restored of $((NFILES + 4)) state files"
else
    it_fail "2: one line, 2 stream(s) with an open alert restored of $((NFILES + 4)) state files" \
        "$(grep 'restored' "$D/daemon2.log")"
fi
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump2 state=alert \
        alert_id="$ID2" --timeout 20 >/dev/null; then
    it_ok "2: pump2, silent: its alert $ID2 open again on its state topic"
else
    it_fail "2: pump2, silent: its alert $ID2 open again on its state topic" \
        "$(grep 'state/pump/pump2' "$D/sub.jsonl" | tail -2)"
fi
# "samples windows_scored dropped_samples streams" of the last stats
st() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
st = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        st = json.loads(m["payload"])
print(st.get("samples"), st.get("windows_scored"), st.get("dropped_samples"), st.get("streams"))
EOP
}
got=$(st)
if [ "$got" = "1700 340 0 2" ]; then
    it_ok "2: pump1's 340 rows all taken in order: 1700 samples, 340 windows, none dropped; 2 streams"
else
    it_fail "2: pump1's 340 rows all taken in order: 1700 samples, 340 windows, none dropped; 2 streams" \
        "samples windows_scored dropped_samples streams: $got"
fi
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 alert_id="$ID1" \
        event=cleared --timeout 20 >/dev/null; then
    it_ok "2: pump1's alert $ID1 continued and cleared with its id"
else
    it_fail "2: pump1's alert $ID1 continued and cleared with its id" \
        "$(grep 'alerts/pump/pump1' "$D/sub.jsonl" | tail -2)"
fi

# 3: the removed detector's alert cleared, the retained states emptied, in order
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/gone/gone1 alert_id="$ID2" \
        event=cleared reason=detector_removed --timeout 20 >/dev/null; then
    it_ok "3: gone1's alert (detector gone) cleared, reason detector_removed"
else
    it_fail "3: gone1's alert (detector gone) cleared, reason detector_removed" \
        "$(grep 'gone' "$D/daemon2.log" | tail -3)"
fi
if it_retained "$IT_PORT" "$D/fresh.txt" anomalyd/state/gone/gone1 anomalyd/state/pump/moved &&
   [ ! -s "$D/fresh.txt" ]; then
    it_ok "3: the retained states of gone/gone1 and pump/moved are emptied"
else
    it_fail "3: the retained states of gone/gone1 and pump/moved are emptied" \
        "a new subscriber still gets: $(cut -c1-80 "$D/fresh.txt" | tr '\n' ';')"
fi
order=$(grep -n -e 'stream moved (not live, no open alert): no topic its messages came on matches' \
        -e 'detector pump: 2 stream(s) with an open alert restored' \
        -e 'detector pump: 1 stream(s) without an open alert that its topics' \
        -e 'no detector "gone" is configured: 1 stream state file(s), 1 open alert(s) cleared' \
        "$D/daemon2.log" | cut -d: -f1 | tr '\n' ' ')
n=$(echo $order | wc -w)
if [ "$n" = 4 ] && [ "$(echo $order | tr ' ' '\n' | sort -n | tr '\n' ' ')" = "$order" ]; then
    it_ok "3: the unfed stream, the restores, the count and the removed detector's line, in that order"
else
    it_fail "3: the unfed stream, the restores, the count and the removed detector's line, in that order" \
        "$(grep -e 'moved' -e 'restored' -e 'no longer feed' -e 'gone' "$D/daemon2.log")"
fi
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ "$rc" = 0 ] && it_ok "daemon exits 0" || it_fail "daemon exits 0" "exit $rc"
exit 0
