#!/bin/sh
# it_daemon_stop_messages.sh - no sensor row is lost across a stop and a
# start with a persistent session. Four pumps send rows steadily at QoS 1
# (400 messages a second); the daemon is stopped (SIGTERM) in the middle and
# started again at once (a backlog waits for it at the signal). libmosquitto acknowledges a message on receipt, so
# the broker does not send again what arrived during the stop (the drain,
# the hand-over saves, the MQTT stop until the DISCONNECT): those messages
# are kept in state_dir/inbox.dat and applied first by the next start. A
# second daemon (its own client id and state directory) runs through and
# sees every row: the stopped one's two runs together take the same
# samples and score the same windows (their last stats messages). Before,
# the messages of the stop were dropped: fewer samples, fewer windows.
# QoS 1 is "at least once": the acknowledgements of the last messages
# before the DISCONNECT can be lost with the connection (libmosquitto
# closes the socket right after writing the DISCONNECT while the broker
# still sends; a loaded broker then sees a reset, "Broken pipe", and not
# the acknowledgements it had not read yet), and the broker sends those
# messages again to the next start, which has them from inbox.dat too:
# their rows are refused as duplicates (dropped_samples; their timestamps
# are the last rows' or older), not scored twice. The samples taken
# (samples - dropped_samples) are the rows sent, the windows scored the
# reference's, and the duplicates at most the kept messages. KEEP=DIR
# keeps the test's directory (logs, stats) there.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_stop_messages.XXXXXX)
DPID= ; SPID= ; RPID= ; PPID2=
cleanup() {
    [ -n "$PPID2" ] && kill "$PPID2" 2>/dev/null
    [ -n "$RPID" ] && kill "$RPID" 2>/dev/null
    [ -n "${KEEP:-}" ] && rm -rf "$KEEP" && cp -r "$D" "$KEEP"
    it_daemon_cleanup
}
trap cleanup EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DEV=4 ROWS=1500
# the broker keeps what the session misses while the daemon is away
it_broker_start "$D" "max_queued_messages 100000" || { it_fail "broker starts"; exit 1; }
conf() { # conf NAME: $D/NAME.json
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-stopmsg-$1", "clean_session": false,
            "qos_subscribe": 1, "stats_interval_s": 0.5,
            "stats_topic": "anomalyd/it/stats/$1", "status_topic": "anomalyd/it/status/$1"},
 "workers": 1, "state_dir": "$D/state_$1",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["plant/#"], "stream_levels": [1],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3}, "quality": {"enabled": false}}]}
EOC
}
conf a
conf ref
# last NAME FIELD[-FIELD2]: FIELD (minus FIELD2) of NAME's stats, summed
# over its runs (the last message of each run; a run starts where uptime_s
# goes down)
last() {
    $PYTHON - "$D/stats.jsonl" "anomalyd/it/stats/$1" "$2" <<'EOP'
import json, sys
runs, up = [], None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != sys.argv[2]:
        continue
    j = json.loads(m["payload"])
    if up is None or j["uptime_s"] < up:
        runs.append(None)
    up = j["uptime_s"]
    f = sys.argv[3].split("-")
    runs[-1] = j[f[0]] - (j[f[1]] if len(f) > 1 else 0)
print(sum(runs), "=", "+".join(str(r) for r in runs))
EOP
}
# an inbox.dat this version cannot apply (a later format) waits in a's
# state directory: the start leaves it for the operator, under another
# name, so that the stop below, keeping messages, does not replace it
mkdir -p "$D/state_a"
printf 'anomalyd inbox 9\nnot for this version\n' > "$D/state_a/inbox.dat"
$H sub --port "$IT_PORT" --topic 'anomalyd/it/stats/#' --out "$D/stats.jsonl" & SPID=$!
sleep 0.3
$AD_BIN run -c "$D/ref.json" 2>> "$D/ref.log" & RPID=$!
$AD_BIN run -c "$D/a.json" --log-level info 2>> "$D/a.log" & DPID=$!
it_wait_log "$D/ref.log" 'mqtt: connected' 10 1 && it_wait_log "$D/a.log" 'mqtt: connected' 10 1 ||
    { it_fail "daemons connect" "$(tail -3 "$D/a.log" "$D/ref.log")"; exit 1; }
START=$(( $(date +%s) - ROWS * 60 ))
$H pub --port "$IT_PORT" --devices $DEV --rows $ROWS --rate 100 --qos 1 --start "$START" \
    --topic 'plant/{device}/data' &
PPID2=$!
sleep 5
# a backlog waits for the daemon when the signal comes (as when it is
# busy): frozen 0.3 s, then stopped; the broker sends the backlog on
kill -STOP "$DPID"; sleep 0.3
kill -TERM "$DPID"; kill -CONT "$DPID"; wait "$DPID" 2>/dev/null; DPID=
$AD_BIN run -c "$D/a.json" --log-level info 2>> "$D/a.log" & DPID=$!
it_wait_log "$D/a.log" 'mqtt: connected' 10 2 ||
    { it_fail "daemon connects again" "$(tail -3 "$D/a.log")"; exit 1; }
if kill -0 "$PPID2" 2>/dev/null; then
    it_ok "rows still flowing when the daemon is back"
else
    it_fail "rows still flowing when the daemon is back" "the publisher ended before"
fi
wait "$PPID2"; PPID2=
# every row in: the reference has them all (then both stop: final stats)
want=$((DEV * ROWS * 5))
ref_has_all() { [ "$(last ref samples 2>/dev/null | cut -d' ' -f1)" = "$want" ]; }
it_wait_until 30 ref_has_all
sleep 1.5                               # two stats intervals: a's backlog too
kill -TERM "$DPID" "$RPID"; wait "$DPID" "$RPID" 2>/dev/null; DPID= ; RPID=
sleep 0.3
sa=$(last a samples-dropped_samples); sr=$(last ref samples-dropped_samples)
da=$(last a dropped_samples); all=$(last a samples)
wa=$(last a windows_scored); wr=$(last ref windows_scored)
kept=$(grep -o '[0-9]* message(s) received during the stop kept' "$D/a.log" | head -1 | cut -d' ' -f1)
echo "# samples taken: rows sent $want, through $sr, stopped and started $sa (kept during the stop: ${kept:-none})"
echo "# stopped and started: samples $all, refused as duplicates $da (messages the broker sent again)"
echo "# windows scored: through $wr, stopped and started $wa"
if [ "${sr%% *}" = "$want" ] && [ "${sa%% *}" = "$want" ]; then
    it_ok "every sample sent is taken once across the stop and the start ($want)"
else
    it_fail "every sample sent is taken once across the stop and the start ($want)" \
        "through $sr, stopped and started $sa; $(grep -E 'stop|inbox' "$D/a.log" | tail -4 | cut -c1-200)"
fi
if [ $(( ${da%% *} % 5 )) = 0 ] && [ "${da%% *}" -le $(( ${kept:-0} * 5 )) ]; then
    it_ok "the rows sent again are whole kept messages refused as duplicates (${da%% *} samples, ${kept:-0} messages kept)"
else
    it_fail "the rows sent again are whole kept messages refused as duplicates" \
        "refused $da samples, ${kept:-0} messages kept"
fi
if [ "${wa%% *}" = "${wr%% *}" ]; then
    it_ok "the stopped and started daemon scores the windows of the one running through (${wr%% *})"
else
    it_fail "the stopped and started daemon scores the windows of the one running through (${wr%% *})" \
        "through $wr, stopped and started $wa"
fi

aside=$(grep -l 'not for this version' "$D"/state_a/inbox.dat* 2>/dev/null | head -1)
if [ -n "$aside" ] && [ "${aside##*/}" != inbox.dat ] &&
   grep -q 'not an inbox file .*left for the operator as' "$D/a.log"; then
    it_ok "an inbox.dat the start cannot apply is left for the operator as ${aside##*/}, not replaced by the next stop"
else
    it_fail "an inbox.dat the start cannot apply is left for the operator, not replaced by the next stop" \
        "$(ls "$D/state_a" | grep inbox); $(grep 'not an inbox' "$D/a.log" | cut -c1-200)"
fi

# ---- a damaged inbox.dat: what precedes the damage is applied, the rest named and dropped ------
row='{"vibration": 1, "current": 2, "pressure": 3, "temperature": 4, "flow": 5, "ts": 1700000000000}'
{
    t=plant/pump9/data
    printf 'anomalyd inbox 1\n%d %d\n%s%s\n' ${#t} ${#row} "$t" "$row"
    printf '16 99999\nplant/pump9/da'
} > "$D/state_a/inbox.dat"
$AD_BIN run -c "$D/a.json" --log-level info 2>> "$D/a.log" & DPID=$!
if it_wait_log "$D/a.log" 'inbox.dat: malformed at byte [0-9]+: the 1 message\(s\) before it applied' 10 &&
   it_wait_until 5 test ! -e "$D/state_a/inbox.dat" && kill -0 "$DPID" 2>/dev/null; then
    it_ok "a damaged inbox.dat: its first message applied, the damage named, the file removed"
else
    it_fail "a damaged inbox.dat: its first message applied, the damage named, the file removed" \
        "$(grep inbox "$D/a.log" | tail -3 | cut -c1-200)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ---- kept and sent again: the rows are refused as duplicates, not scored twice ------
# (QoS 1 at least once, as above, made certain: inbox.dat holds 40 rows of
# pump8, applied by the start; then the same 40 messages come again)
# now FIELD: FIELD of a's latest stats message
now() {
    $PYTHON - "$D/stats.jsonl" "$1" <<'EOP'
import json, sys
v = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/it/stats/a":
        v = json.loads(m["payload"])[sys.argv[2]]
print(v)
EOP
}
N=40 t=plant/pump8/data
rows() {
    i=0
    while [ $i -lt $N ]; do
        printf '{"vibration": 1.3, "current": 31, "pressure": 5.5, "temperature": 28, "flow": 57, "ts": %d}\n' \
            $((1700000100000 + i * 1000))
        i=$((i + 1))
    done
}
rows | { printf 'anomalyd inbox 1\n'; while read -r r; do printf '%d %d\n%s%s\n' ${#t} ${#r} "$t" "$r"; done; } \
    > "$D/state_a/inbox.dat"
: > "$D/stats.jsonl"
$AD_BIN run -c "$D/a.json" --log-level info 2>> "$D/a.log" & DPID=$!
scored() { [ "$(now windows_scored)" -gt 0 ] 2>/dev/null; }
w0= ; w1= ; dr=
if it_wait_log "$D/a.log" "$N message\\(s\\) received during the last stop applied" 10 &&
   it_wait_log "$D/a.log" 'mqtt: connected' 10 4 && it_wait_until 10 scored; then
    sleep 0.6                           # a stats interval: every window scored
    w0=$(now windows_scored)
    rows | mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t "$t" -l
    refused() { [ "$(now dropped_samples)" = $((N * 5)) ]; }
    it_wait_until 10 refused
    sleep 0.6
    w1=$(now windows_scored); dr=$(now dropped_samples)
fi
echo "# $N rows from inbox.dat, then sent again: windows scored $w0, then $w1; refused samples ${dr:-none}"
if [ -n "$w0" ] && [ "$w1" = "$w0" ] && [ "$dr" = $((N * 5)) ]; then
    it_ok "$N kept rows sent again are refused as duplicates ($dr samples), not scored twice ($w0 windows)"
else
    it_fail "$N kept rows sent again are refused as duplicates, not scored twice" \
        "windows $w0 then $w1, refused ${dr:-none}; $(grep inbox "$D/a.log" | tail -2 | cut -c1-200)"
fi
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
