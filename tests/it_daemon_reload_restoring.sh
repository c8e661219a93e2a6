#!/bin/sh
# it_daemon_reload_restoring.sh - a reload that changes stream_levels or
# topics while streams restored at start for their open alerts are still
# being restored (their state files read on the thread pool: no detector
# yet). Once a restore lands, the stream is decided as any other:
#  - detector pump, stream_levels [2] -> [1, 2]: the key pump1 no longer
#    exists. pump1 must be removed: the alert it held open cleared with
#    reason reload, its retained state emptied, its Home Assistant entities
#    (announced by the daemon before the restart) deleted, and its state
#    file no longer holding the alert (a next start does not bring it back);
#  - detector lab, topics "lab/+/pump" -> "lab/#": pump2's topic (named in
#    its state file) still matches: it stays, its alert open.
# An LD_PRELOAD shim (tests/slow_open.c, built here) makes the thread
# pool's opens of state files sleep 4 s: the scan at start reads the state
# files one after the other, then the restores of pump1 and pump2 read
# theirs again, in flight together. The SIGHUP comes during the scan: the
# reload waits for it (the scan restores streams of the running
# configuration) and lands right after, while those restores are in
# flight; the test checks it did.
# Under ASan (make check) the shim is preloaded with ASan's link-order
# check off.
. tests/lib.sh
it_setup it_reload_restoring
DELAY_MS=4000

it_shim slow_open -ldl || { it_fail "open() shim builds" "$(cat "$D/cc.log")"; exit 1; }
ASAN_EXTRA=
if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
    ASAN_EXTRA="verify_asan_link_order=0"
    echo "# ASan build: shim preloaded with verify_asan_link_order=0"
fi
it_broker_up

# conf PUMP_LEVELS LAB_TOPICS
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-restoring", "qos_subscribe": 1},
 "workers": 1, "state_dir": "$D/state", "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["site/+/+/pump"],
   "stream_levels": $1, "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "lab", "model": "$MODEL", "topics": $2,
   "stream_levels": [1], "idle_evict_s": 3600,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# fresh TAG: what a new subscriber gets (retained states, HA binary sensor configs)
fresh() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/binary_sensor/#' ||
        it_fail "a new subscriber's retained messages ($1)" "no answer from the broker within 10 s"
}
shown() { grep -q "^$1 {" "$D/fresh$2.txt"; }
# events DETECTOR STREAM: its model alert events, "event reason id" a line
events() {
    $PYTHON - "$D/sub.jsonl" "$1" "$2" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"].startswith("anomalyd/alerts/"):
        j = json.loads(m["payload"])
        if j.get("detector") == sys.argv[2] and j.get("stream") == sys.argv[3] and \
           j.get("kind") == "model":
            print(j["event"], j.get("reason", "-"), j["alert_id"])
EOP
}

# ---- a first run raises alerts on pump/pump1 and lab/pump2, stops with them open -----------
conf '[2]' '["lab/+/pump"]'
it_sub_start
sleep 0.3
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon1.log" & DPID=$!
it_wait_log "$D/daemon1.log" 'mqtt: connected' 10 ||
    { it_fail "daemon connects" "$(tail -5 "$D/daemon1.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
F='cavitation@300m+300m'
$H pub --port "$IT_PORT" --devices 1 --rows 360 --start "$START" --fault "$F" \
    --topic 'site/s1/{device}/pump'
$H pub --port "$IT_PORT" --devices 2 --rows 360 --start "$START" --fault "$F" \
    --fault-devices pump2 --topic 'lab/{device}/pump'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "alert raised on pump/pump1" "$(tail -3 "$D/daemon1.log")"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/lab/pump2 event=raised --timeout 20 >/dev/null ||
    it_fail "alert raised on lab/pump2" "$(tail -3 "$D/daemon1.log")"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
grep -q '"open":{' "$D/state/pump/pump1.state.json" && grep -q '"open":{' "$D/state/lab/pump2.state.json" ||
    it_fail "the state files of pump/pump1 and lab/pump2 hold their open alerts after the stop" ""

# ---- the restart: both restores are slow; the reload lands meanwhile -------------------------
: > "$D/slow.log"
SLOW_OPEN_LOG="$D/slow.log" SLOW_OPEN_MS=$DELAY_MS SLOW_OPEN_SUFFIX=.state.json \
    LD_PRELOAD="$D/slow_open.so" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
    $AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
NS=$(ls "$D"/state/*/*.state.json | wc -l)     # the files the scan reads
if ! it_wait_log "$D/slow.log" '^start ' 10 1 || ! it_wait_log "$D/daemon.log" 'connecting to' 10; then
    it_fail "the scan at start reads the state files (slowed)" \
        "$(tail -3 "$D/daemon.log"; cat "$D/slow.log")"
    exit 1
fi
conf '[1, 2]' '["lab/#"]'
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' $((NS * DELAY_MS / 1000 + 20)) ||
    it_fail "reload to stream_levels [1, 2], topics lab/#" "$(tail -3 "$D/daemon.log")"
if grep -q 'SIGHUP during the state scan at start: reloading after it' "$D/daemon.log" &&
   [ "$(grep -c 'open alert restored' "$D/daemon.log")" = 2 ]; then
    it_ok "a SIGHUP during the scan at start: the reload waits for it (both streams restored first)"
else
    it_fail "a SIGHUP during the scan at start: the reload waits for it (both streams restored first)" \
        "$(grep -E 'SIGHUP|restored|reload' "$D/daemon.log")"
fi
# the scan's reads are done; the two restores' are not, or skip
if [ "$(grep -c '^end ' "$D/slow.log")" != "$NS" ] ||
   [ "$(grep -c '^start ' "$D/slow.log")" != $((NS + 2)) ]; then
    it_skip "streams decided once restored" \
        "a restore landed before the reload (machine too slow for the ${DELAY_MS} ms window)"
    exit 0
fi
it_ok "the reload landed while the restores of pump/pump1 and lab/pump2 were in flight"
grep -E "stream_levels changed|topics changed" "$D/daemon.log" | sed "s/^/# /"
it_wait_log "$D/slow.log" '^end ' 10 $((NS + 2))
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared reason=reload \
       --timeout 10 >/dev/null; then
    it_ok "pump/pump1: the alert it held open is cleared, reason reload, once its restore lands"
else
    it_fail "pump/pump1: the alert it held open is cleared, reason reload, once its restore lands" \
        "events: $(events pump pump1 | tr '\n' ';') log: $(grep 'stream pump1' "$D/daemon.log" | tail -2)"
fi
fresh 1
if ! shown anomalyd/state/pump/pump1 1 &&
   ! shown homeassistant/binary_sensor/it-restoring/pump_pump1/config 1; then
    it_ok "pump/pump1 leaves no retained state or Home Assistant entity"
else
    it_fail "pump/pump1 leaves no retained state or Home Assistant entity" \
        "a new subscriber still gets: $(grep -E 'pump/pump1 |pump_pump1/config ' "$D/fresh1.txt" | cut -c1-100 | tr '\n' ';')"
fi
ev=$(events lab pump2)
if grep -q '^anomalyd/state/lab/pump2 {.*"state":"alert"' "$D/fresh1.txt" &&
   shown homeassistant/binary_sensor/it-restoring/lab_pump2/config 1 &&
   [ -z "$(echo "$ev" | grep cleared)" ]; then
    it_ok "lab/pump2, its saved topic still matched: restored, its alert still open"
else
    it_fail "lab/pump2, its saved topic still matched: restored, its alert still open" \
        "events: $(echo "$ev" | tr '\n' ';') fresh: $(grep -E 'lab/pump2 |lab_pump2/config ' "$D/fresh1.txt" | cut -c1-100 | tr '\n' ';')"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
if ! grep -q '"open":{' "$D/state/pump/pump1.state.json"; then
    it_ok "pump/pump1's state file no longer holds the alert (a next start does not restore it)"
else
    it_fail "pump/pump1's state file no longer holds the alert (a next start does not restore it)" \
        "$(grep -o '"open":{[^}]*' "$D/state/pump/pump1.state.json" | cut -c1-120)"
fi
