#!/bin/sh
# it_daemon_state_retain.sh - state_retain_days, real mosquitto. Files of
# state_dir/<detector>/ aged with touch -d (100 days; retention 90):
#  - at start, every file of a stream that is not live and whose newest
#    file is older than the retention is removed, and a model file under
#    another model id or settings hash that old; a stream seen 5 days ago
#    keeps all its current files (also a model file 100 days old), a file
#    the daemon does not name is never touched; one info line counts the
#    files and bytes; the stats count them;
#  - a state file holding an open alert is kept: at start its stream is
#    restored (live), then evicted when silent, which clears the alert
#    (reason evicted) and rewrites the file; one whose stream cannot be
#    restored (stream limit) stays, counted as kept for an open alert;
#  - a live stream's files are kept however old (also under an escaped or
#    a cut name), its model file under another settings hash is not
#    (sweep after a reload);
#  - state_retain_days 0 keeps everything; a reload to 90 sweeps at once;
#  - a file that cannot be removed (immutable) is named in a warning.
# Before state_retain_days, files of gone streams stayed for ever.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_state_retain.XXXXXX)
DPID= ; SPID=
cleanup() {
    [ -n "${IMM:-}" ] && chattr -i "$IMM" 2>/dev/null
    it_daemon_cleanup
}
trap cleanup EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
ST=$D/state
it_broker_up
# conf [RETAIN]: three detectors of the same settings (one settings hash):
# pump (never evicted), evict (evicted after 3 s), cap (one stream at
# most); state_retain_days RETAIN (none: the default, 90)
conf() {
    r=${1:+"\"state_retain_days\": $1, "}
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-retain", "stats_interval_s": 0.5},
 "state_dir": "$ST", $r"workers": 2,
 "detectors": [
  {"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"], "idle_evict_s": 0,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false}},
  {"name": "evict", "model": "$MODEL", "topics": ["evict/+/pump"], "idle_evict_s": 3,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false}},
  {"name": "cap", "model": "$MODEL", "topics": ["cap/+/pump"], "idle_evict_s": 0,
   "max_streams": 1,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false}}]}
EOC
}
start() { # start LOG: the daemon, until it is online
    : > "$D/sub.jsonl"
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$1" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
        >/dev/null || { it_fail "daemon starts" "$(tail -5 "$1")"; exit 1; }
}
stop() { kill -TERM "$DPID"; wait "$DPID"; DPID=; }
old() { touch -d '100 days ago' "$@"; }
# copy SRC DET KEY: SRC (a state file) as the state file of stream KEY of
# detector DET (its open alert's topic moved along, and the topics that fed
# it: a stream restored at start whose topics its detector does not
# subscribe is removed, it_daemon_restart_topics.sh)
copy() {
    mkdir -p "$ST/$2"
    $PYTHON - "$1" "$2" "$3" "$ST/$2/$3.state.json" <<'EOP'
import json, sys
src, det, key, out = sys.argv[1:]
o = json.load(open(src))
o["stream"] = key
if "alert_topic" in o:
    o["alert_topic"]["topic"] = "anomalyd/alerts/%s/%s" % (det, key)
if "topics" in o:
    o["topics"] = ["%s/%s/pump" % ("sensors" if det == "pump" else det, key)]
json.dump(o, open(out, "w"), separators=(",", ":"))
EOP
}

# ---- state files made by the daemon: pump1 calibrated, pump2 with an
# alert open at stop
conf
it_sub_start
start "$D/d0.log"
S=$(( $(date +%s) - 400 * 60 ))
$H pub --port "$IT_PORT" --devices 2 --rows 200 --start $S >/dev/null
$H pub --port "$IT_PORT" --devices 2 --rows 260 --start $S --start-row 200 \
    --fault 'blockage@200m+300m' --fault-devices pump2 >/dev/null
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump2 event=raised \
    --timeout 30 >/dev/null || { it_fail "pump2 raises an alert" "$(tail -5 "$D/d0.log")"; exit 1; }
stop
grep -q '"open":{' "$ST/pump/pump2.state.json" && ! grep -q '"open":{' "$ST/pump/pump1.state.json" ||
    { it_fail "state files: pump2 with an open alert, pump1 without"; exit 1; }
cp "$ST/pump/pump1.state.json" "$D/calm.json"
cp "$ST/pump/pump2.state.json" "$D/alert.json"
HASH=$($PYTHON -c 'import json, sys; print(json.load(open(sys.argv[1]))["settings_hash"])' "$D/calm.json")
ID=$($AD_BIN info --model "$MODEL" | awk '$1 == "id:" { print $2 }')
TAG=".$ID.$HASH"
OTHER=0123456789abcdef
[ ${#HASH} -eq 16 ] && [ ${#ID} -eq 16 ] || { it_fail "model tag" "id '$ID' hash '$HASH'"; exit 1; }

# ---- the files at the second start
P=$ST/pump
copy "$D/calm.json" pump gone1
cp "$MODEL" "$P/gone1$TAG.safetensors"
cp "$MODEL" "$P/gone1$TAG.reference.safetensors"
old "$P/gone1.state.json" "$P/gone1$TAG.safetensors" "$P/gone1$TAG.reference.safetensors" \
    "$P/pump1.state.json"
copy "$D/calm.json" pump gone2
touch -d '5 days ago' "$P/gone2.state.json"
cp "$MODEL" "$P/gone2$TAG.safetensors"
cp "$MODEL" "$P/gone2.boot.$OTHER.safetensors"
cp "$MODEL" "$P/gone2.$ID.$OTHER.safetensors"
old "$P/gone2$TAG.safetensors" "$P/gone2.boot.$OTHER.safetensors"
touch -d '5 days ago' "$P/gone2.$ID.$OTHER.safetensors"
echo "the operator's notes" > "$P/NOTES.txt"
old "$P/NOTES.txt"
rm "$P/pump2.state.json"
copy "$D/alert.json" evict ev1
old "$ST/evict/ev1.state.json"
copy "$D/alert.json" cap capa
copy "$D/alert.json" cap capb
old "$ST/cap/capa.state.json" "$ST/cap/capb.state.json"
GONE="gone1.state.json gone1$TAG.safetensors gone1$TAG.reference.safetensors pump1.state.json
gone2.boot.$OTHER.safetensors"
KEPT="gone2.state.json gone2$TAG.safetensors gone2.$ID.$OTHER.safetensors NOTES.txt"
BYTES=0
for f in $GONE; do BYTES=$((BYTES + $(stat -c %s "$P/$f"))); done

start "$D/d1.log"
it_wait_log "$D/d1.log" 'state: retention' 20 ||
    it_fail "a retention sweep at start" "$(tail -3 "$D/d1.log")"
left=""; lost=""
for f in $GONE; do [ -e "$P/$f" ] && left="$left $f"; done
for f in $KEPT; do [ -e "$P/$f" ] || lost="$lost $f"; done
if [ -z "$left$lost" ]; then
    it_ok "at start: the files of gone1 and pump1 (100 days) and gone2's model of another settings hash (100 days) removed; gone2 (seen 5 days ago, its model 100 days), a recent model of another hash, NOTES.txt kept"
else
    it_fail "at start: old files of absent streams removed, the rest kept" \
        "left:$left lost:$lost; $(ls "$P")"
fi
line=$(grep 'state: retention' "$D/d1.log" | head -1)
if echo "$line" | grep -q "^<6>state: retention 90 day(s): 5 file(s) removed, $BYTES bytes freed (4 of 2 stream(s) gone, 1 under another model or settings); [0-9]* kept, 1 of them for an open alert"; then
    it_ok "one info line: $line"
else
    it_fail "one info line with counts and bytes ($BYTES)" "$line"
fi
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats state_files_removed=5 \
    state_bytes_removed=$BYTES --timeout 10 >/dev/null &&
    it_ok "stats: state_files_removed 5, state_bytes_removed $BYTES" ||
    it_fail "stats count the removed files" "$(grep '"anomalyd/stats"' "$D/sub.jsonl" | tail -1 | cut -c1-300)"

# open alerts: ev1 restored at start, kept, then evicted (alert cleared,
# reason evicted) and its file rewritten without it; of capa and capb the
# limit lets one be restored, the other stays
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/evict/ev1 event=cleared \
        reason=evicted --timeout 20 >/dev/null &&
   it_wait_until 10 sh -c "! grep -q '\"open\":{' '$ST/evict/ev1.state.json'" &&
   [ -n "$(find "$ST/evict/ev1.state.json" -mmin -5)" ]; then
    it_ok "an old state file with an open alert: its stream restored at start, kept, evicted when silent (cleared, reason evicted), the file rewritten without the alert"
else
    it_fail "open alert of an old state file: restored, cleared when evicted" \
        "$(ls -l "$ST/evict"; grep -E 'ev1' "$D/d1.log" | tail -3)"
fi
if [ -e "$ST/cap/capa.state.json" ] && [ -e "$ST/cap/capb.state.json" ] &&
   grep -q 'stream limit 1 reached, refusing new stream "cap[ab]"' "$D/d1.log"; then
    it_ok "an old state file with an open alert whose stream is not live (refused at the limit) is kept"
else
    it_fail "an open alert's file whose stream is not live is kept" "$(ls "$ST/cap")"
fi

# live streams: pump3, "pump 4" (escaped name) and a 100-byte key (a cut
# name) calibrate (state files), their files aged; a reload sweeps: the
# live streams' files stay, pump3's model of another hash goes
LONG=L$(printf '%%%.0s' $(seq 1 99))
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start $S --topic sensors/pump3/pump >/dev/null &
P1=$!
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start $S --topic "sensors/pump 4/pump" >/dev/null &
P2=$!
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start $S --topic "sensors/$LONG/pump" >/dev/null
wait $P1 $P2
cut_file() { ls "$P" | grep '^L.*~.*\.state\.json$'; }
if it_wait_file "$P/pump3.state.json" 20 && it_wait_file "$P/pump%204.state.json" 20 &&
   it_wait_until 20 cut_file >/dev/null; then :; else
    it_fail "the live streams calibrate" "$(ls "$P")"; exit 1
fi
LIVE="pump3.state.json pump3$TAG.safetensors pump%204.state.json $(cut_file)"
cp "$MODEL" "$P/pump3$TAG.safetensors"
cp "$MODEL" "$P/pump3.$ID.$OTHER.safetensors"
(cd "$P" && old $LIVE "pump3.$ID.$OTHER.safetensors")
n=$(grep -c 'state: retention' "$D/d1.log")
kill -HUP "$DPID"
it_wait_log "$D/d1.log" 'state: retention' 20 $((n + 1)) >/dev/null
lost=""
for f in $LIVE; do [ -e "$P/$f" ] || lost="$lost $f"; done
if [ -z "$lost" ] && [ ! -e "$P/pump3.$ID.$OTHER.safetensors" ]; then
    it_ok "after a reload: the files of live streams kept (100 days old; an escaped and a cut name too), a live stream's model of another settings hash removed"
else
    it_fail "live streams' files kept, a stale model removed" "lost:$lost; $(ls "$P")"
fi

# 0 keeps everything, at start; a reload back to 90 removes at once
stop
conf 0
copy "$D/calm.json" pump gone3
old "$P/gone3.state.json"
start "$D/d2.log"
it_wait_log "$D/d2.log" 'state_retain_days 0' 5 >/dev/null
sleep 1                 # nothing to wait for: a sweep would be done by now
if [ -e "$P/gone3.state.json" ] && ! grep -q 'state: retention' "$D/d2.log"; then
    it_ok "state_retain_days 0: an old file of an absent stream is kept"
else
    it_fail "state_retain_days 0 keeps everything" "$(grep retention "$D/d2.log")"
fi
conf 90
IMM=
if [ "$(id -u)" = 0 ]; then
    copy "$D/calm.json" pump stuck
    old "$P/stuck.state.json"
    chattr +i "$P/stuck.state.json" 2>/dev/null && IMM=$P/stuck.state.json
fi
kill -HUP "$DPID"
it_wait_log "$D/d2.log" 'state: retention' 20 >/dev/null
[ ! -e "$P/gone3.state.json" ] &&
    it_ok "a reload to state_retain_days 90 removes it at once" ||
    it_fail "a reload to state_retain_days 90 removes it" "$(grep retention "$D/d2.log")"
if [ -n "$IMM" ]; then
    grep -q "^<4>state: retention: cannot remove $P/stuck.state.json: Operation not permitted" \
        "$D/d2.log" &&
        it_ok "a file that cannot be removed is named in a warning" ||
        it_fail "a file that cannot be removed is named in a warning" "$(grep retention "$D/d2.log")"
    chattr -i "$IMM"; IMM=
else
    it_skip "a file that cannot be removed is named in a warning" "needs root and chattr +i"
fi
stop
exit 0
