#!/bin/sh
# it_daemon_reload_rows.sh - a SIGHUP that rebuilds a stream (new settings,
# a new model file with them) keeps its window rows when the rows would be
# assembled the same way (same features in the same order, same window
# length T, same rows.* settings), and the calibration it is in the middle
# of; it drops them, saying why, when they would not.
#  1. model file swapped (same features, same T) with alert.k: the next row
#     is scored, not T - 1 rows later
#  2. alert.cooldown_ms changed, a fault starting with the first row after
#     the SIGHUP: alerted at the same row as by a detector not reloaded
#  3. alert.k changed in the middle of calibration: the calibration goes on
#     and ends with the threshold of a detector not reloaded (1e-6)
#  4. a model file with the features in another order, then rows.max_gap_ms
#     changed: the rows are dropped, a notice names why, and the first
#     window comes T rows later
#  5. case 3 without a state directory (nothing read from a file)
#  6. case 3 after a stop and start in the middle of calibration: not from
#     the older hand-over file of the stop
. tests/lib.sh
it_setup it_daemon_reload_rows
SRC=$(cd "${AD_SRCDIR:-.}" && pwd)

# a second model file of the same shape, and one with the features in
# another order: small autoencoders trained on one simulated day
$PYTHON tools/pumpsim.py --seed 5 --days 1 --out "$D/p5.csv" &&
$AD_BIN train -i "$D/p5.csv" -o "$D/cand.safetensors" --arch lstm-ae:8 --epochs 2 --hop 4 \
    --loss mae > "$D/train.log" 2>&1 &&
$AD_BIN train -i "$D/p5.csv" -o "$D/swapped.safetensors" --arch lstm-ae:8 --epochs 2 --hop 4 \
    --loss mae --features current,vibration,pressure,temperature,flow >> "$D/train.log" 2>&1 ||
    { it_fail "model files trained" "$(tail -5 "$D/train.log")"; exit 1; }
it_broker_up
it_sub_start
sleep 0.3
# every case's rows carry their data time, one a minute
START=$(( $(date +%s) - 2000 * 60 ))
PUB="$H pub --port $IT_PORT --start $START --devices 1"

# det NAME MODEL ALERT CALIB [ROWS]: one detector's JSON
det() {
    _rows=
    [ -n "${5:-}" ] && _rows=", \"rows\": {$5}"
    echo "{\"name\": \"$1\", \"model\": \"$2\", \"topics\": [\"sensors/+/pump\"],
      \"payload\": {\"format\": \"json\", \"timestamp\": \"ts\", \"timestamp_unit\": \"ms\"},
      \"quality\": {\"enabled\": false}, \"alert\": {$3, \"state_topic\": \"anomalyd/state/{detector}/{stream}\"},
      \"calibration\": {$4}$_rows}"
}
# conf CASE DETECTOR_JSON...
conf() {
    c=$1; shift
    dets=$(printf '%s,' "$@")
    sd="\"$D/state$c\""
    [ -n "${STATE_DIR:-}" ] && sd=$STATE_DIR
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-reload-rows-$c", "stats_interval_s": 0.3,
            "stats_topic": "anomalyd/stats$c",
            "qos_subscribe": 1}, "workers": 0, "state_dir": $sd,
 "detectors": [${dets%,}]}
EOC
}
start() { # start CASE
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon$1.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 \
        --count "$1" >/dev/null || it_fail "case $1: daemon connects" "$(cat "$D/daemon$1.log")"
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
reload() { # reload CASE N: SIGHUP, wait for the Nth "configuration reloaded"
    kill -HUP "$DPID"
    it_wait_log "$D/daemon$1.log" "configuration reloaded" 10 "$2" ||
        it_fail "case $1: reload $2" "$(tail -5 "$D/daemon$1.log")"
}
# stat CASE KEY: KEY of case CASE's last stats message
stat() { it_last_stat "$D/sub.jsonl" "anomalyd/stats$1" "$2"; }
scored() { stat "$1" windows_scored; }
_stat_is() { [ "$(stat "$1" "$2")" = "$3" ]; }
wait_stat() { it_wait_until "$4" _stat_is "$1" "$2" "$3"; }   # wait_stat CASE KEY VALUE TIMEOUT
wait_scored() { wait_stat "$1" windows_scored "$2" "$3"; }     # wait_scored CASE N TIMEOUT

# ---- 1. a new model file of the same shape, with alert.k ----------------
conf 1 "$(det pump "$D/model1.safetensors" '"k": 3' '"method": "fixed", "fixed": 100')"
cp "$SRC/conf/models/pump.safetensors" "$D/model1.safetensors"
start 1
$PUB --rows 100
wait_scored 1 71 10 || it_fail "case 1: 100 rows give 71 windows" "scored $(scored 1)"
cp "$D/cand.safetensors" "$D/model1.safetensors"
conf 1 "$(det pump "$D/model1.safetensors" '"k": 2' '"method": "fixed", "fixed": 100')"
reload 1 1
$PUB --rows 101 --start-row 100
if wait_scored 1 72 10; then
    it_ok "case 1: new model file and alert.k: the next row after the SIGHUP is scored"
else
    it_fail "case 1: new model file and alert.k: the next row after the SIGHUP is scored" \
        "windows_scored $(scored 1), 72 expected; $(grep 'reload' "$D/daemon1.log" | tail -2)"
fi
stop

# ---- 2. a fault right after the SIGHUP: alerted as without it -----------
A2() { det a2 "$SRC/conf/models/pump.safetensors" "\"k\": 3, \"cooldown_ms\": $1" \
           '"method": "fixed", "fixed": 0.3'; }
B2=$(det b2 "$SRC/conf/models/pump.safetensors" '"k": 3, "cooldown_ms": 0' \
         '"method": "fixed", "fixed": 0.3')
conf 2 "$(A2 0)" "$B2"
start 2
$PUB --rows 100 --fault 'cavitation@100m+200m'
wait_scored 2 142 10 || it_fail "case 2: 100 rows give 71 windows a detector" "scored $(scored 2)"
conf 2 "$(A2 60000)" "$B2"
reload 2 1
$PUB --rows 200 --start-row 100 --fault 'cavitation@100m+200m'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/b2/pump1 event=raised --timeout 10 >/dev/null
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/a2/pump1 event=raised --timeout 10 >/dev/null
raised() { # raised DETECTOR: start_ms of its first raised event
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] == "anomalyd/alerts/%s/pump1" % sys.argv[2]:
        p = json.loads(m["payload"])
        if p.get("event") == "raised":
            print(p["start_ms"]); break
EOF
}
ra=$(raised a2); rb=$(raised b2)
if [ -n "$rb" ] && [ "$ra" = "$rb" ]; then
    it_ok "case 2: a fault starting right after the SIGHUP is alerted at the row it is without the reload"
else
    it_fail "case 2: a fault starting right after the SIGHUP is alerted at the row it is without the reload" \
        "reloaded detector's alert starts at ${ra:-none}, the other's at ${rb:-none} (ms)"
fi
stop

# ---- 3. alert.k changed in the middle of calibration --------------------
thr() { # thr DETECTOR: its threshold once detecting
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOF'
import json, sys
t = None
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] == "anomalyd/state/%s/pump1" % sys.argv[2]:
        p = json.loads(m["payload"])
        if p.get("phase") == "detecting" and p.get("threshold") is not None:
            t = p["threshold"]
print(t)
EOF
}
# midcalib CASE WHAT: detector aCASE reloaded, bCASE not
midcalib() {
    c=$1
    A() { det a$c "$SRC/conf/models/pump.safetensors" "\"k\": $1" \
              '"method": "sigma", "k": 3, "windows": 100'; }
    B=$(det b$c "$SRC/conf/models/pump.safetensors" '"k": 3' \
            '"method": "sigma", "k": 3, "windows": 100')
    conf $c "$(A 3)" "$B"
    start $c
    $PUB --rows 90
    wait_scored $c 122 10 || it_fail "case $c: 90 rows give 61 windows a detector" "scored $(scored $c)"
    conf $c "$(A 2)" "$B"
    reload $c 1
    $PUB --rows 400 --start-row 90
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/a$c/pump1 phase=detecting \
        --timeout 10 >/dev/null
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/b$c/pump1 phase=detecting \
        --timeout 10 >/dev/null
    ta=$(thr a$c); tb=$(thr b$c)
    if $PYTHON -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 1e-6 * abs(b) else 1)" \
            "$ta" "$tb" 2>/dev/null; then
        it_ok "case $c: alert.k changed mid-calibration$2: the calibration goes on (threshold $ta, not reloaded $tb)"
    else
        it_fail "case $c: alert.k changed mid-calibration$2: the calibration goes on" \
            "threshold $ta, a detector not reloaded $tb; $(grep -i 'calibrat' "$D/daemon$c.log" | tail -3)"
    fi
    stop
}
midcalib 3 ""

# ---- 4. rows that would be assembled otherwise: dropped -----------------
conf 4 "$(det pump "$D/model4.safetensors" '"k": 3' '"method": "fixed", "fixed": 100')"
cp "$SRC/conf/models/pump.safetensors" "$D/model4.safetensors"
start 4
$PUB --rows 100
wait_scored 4 71 10 || it_fail "case 4: 100 rows give 71 windows" "scored $(scored 4)"
cp "$D/swapped.safetensors" "$D/model4.safetensors"
reload 4 1
# 30 rows: the first window of a new ring (rows kept would make 30)
$PUB --rows 130 --start-row 100
wait_stat 4 messages_in 130 10
sleep 0.7
n=$(scored 4)
if [ "$n" = 72 ] && grep -q "reload: detector pump: the features changed (vibration,current,pressure,temperature,flow -> current,vibration,pressure,temperature,flow): the window rows of 1 rebuilt stream(s) are not kept" "$D/daemon4.log"; then
    it_ok "case 4: features in another order: the rows are dropped, with a notice naming why"
else
    it_fail "case 4: features in another order: the rows are dropped, with a notice naming why" \
        "windows_scored $n (72 expected); $(grep 'reload:' "$D/daemon4.log" | tail -2)"
fi
conf 4 "$(det pump "$D/model4.safetensors" '"k": 3' '"method": "fixed", "fixed": 100' '"max_gap_ms": 7200000')"
reload 4 2
$PUB --rows 131 --start-row 130
wait_stat 4 messages_in 131 10
sleep 0.7
n=$(scored 4)
if [ "$n" = 72 ] && grep -q "reload: detector pump: row assembly changed (rows.max_gap_ms): the window rows of 1 rebuilt stream(s) are not kept" "$D/daemon4.log"; then
    it_ok "case 4: rows.max_gap_ms changed: the rows are dropped, with a notice naming the key"
else
    it_fail "case 4: rows.max_gap_ms changed: the rows are dropped, with a notice naming the key" \
        "windows_scored $n (72: no window for the row after); $(grep 'reload:' "$D/daemon4.log" | tail -2)"
fi
stop

# ---- 5. case 3 without a state directory --------------------------------
STATE_DIR=null
midcalib 5 " (no state_dir)"

# ---- 6. a stop in the middle of calibration (a hand-over file), a start,
# more rows, then alert.k changed: the calibration goes on from where it
# is, not from the older file
STATE_DIR=
A6() { det a6 "$SRC/conf/models/pump.safetensors" "\"k\": $1" \
           '"method": "sigma", "k": 3, "windows": 100'; }
B6=$(det b6 "$SRC/conf/models/pump.safetensors" '"k": 3' '"method": "sigma", "k": 3, "windows": 100')
conf 6 "$(A6 3)" "$B6"
start 6
$PUB --rows 60
wait_scored 6 62 10 || it_fail "case 6: 60 rows give 31 windows a detector" "scored $(scored 6)"
stop
start 7
$PUB --rows 90 --start-row 60
wait_scored 6 60 10 || it_fail "case 6: 30 rows more give 30 windows a detector" "scored $(scored 6)"
conf 6 "$(A6 2)" "$B6"
reload 7 1
$PUB --rows 400 --start-row 90
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/a6/pump1 phase=detecting --timeout 10 >/dev/null
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/b6/pump1 phase=detecting --timeout 10 >/dev/null
ta=$(thr a6); tb=$(thr b6)
if $PYTHON -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 1e-6 * abs(b) else 1)" \
        "$ta" "$tb" 2>/dev/null; then
    it_ok "case 6: after a restart mid-calibration, alert.k changed: the calibration goes on from where it is, not from the stop's file (threshold $ta, not reloaded $tb)"
else
    it_fail "case 6: after a restart mid-calibration, alert.k changed: the calibration goes on from where it is, not from the stop's file" \
        "threshold $ta, a detector not reloaded $tb; $(grep -i 'calibrat' "$D/daemon7.log" | tail -3)"
fi
stop
