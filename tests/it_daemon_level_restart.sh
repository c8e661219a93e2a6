#!/bin/sh
# it_daemon_level_restart.sh - the level test (alert.level_ms) keeps its
# mean across a restart, against a real mosquitto. A pump's pressure reads
# 0.3 bar low from row 200 for good: every score stays under the threshold
# (calibration.margin 2.5), while the mean over alert.level_ms 1 h of
# one-minute rows (60 windows) climbs over the level test's fence (level_z
# 3) some 27 rows in. The same rows go to two daemons with their own state
# directories:
#   - one that runs through: the level test raises an alert at some data
#     time, its peak score under its threshold;
#   - one stopped (SIGTERM) 15 rows into the rise and started again: the
#     state file holds the mean ("level"), and the alert is raised at the
#     same data time.
# Before the state kept the mean, the restarted daemon's test was blind for
# an hour of data after the restart and raised 60 windows later.
. tests/lib.sh
it_setup it_daemon_level_restart
it_broker_up
START=1700000000

# pub FROM TO: simulator rows FROM..TO-1 of pump1, one a minute from START;
# from row 200 pressure reads 0.3 bar low for good
pub() {
    $H pub --port "$IT_PORT" --start "$START" --seed 3 --start-row "$1" --rows "$2" \
        --shift pressure:-0.3:200
}

# raised SUBFILE: "<row of the first raise of pump1> <its raised_by, none:
# absent> <peak_score> <threshold>" of its first cleared event (or the
# raise alone)
raised() {
    $PYTHON - "$1" "$START" <<'EOP'
import json, sys
first, by, peak = None, "none", ""
for line in open(sys.argv[1]):
    m = json.loads(line)
    if not m["topic"].startswith("anomalyd/alerts/pump/pump1"):
        continue
    j = json.loads(m["payload"])
    if j.get("event") == "raised" and first is None:
        first = (j["start_ms"] - int(sys.argv[2]) * 1000) // 60000
        by = j.get("raised_by", "none")
    if j.get("event") == "cleared" and not peak:
        peak = "%s %s" % (j.get("score"), j.get("threshold"))
if first is not None:
    print(first, by, peak)
EOP
}

# stats_at SUBFILE N: how many stats messages say messages_in N
stats_at() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
n = 0
for line in open(sys.argv[1]):
    try:                        # (a line being written: not one to count)
        m = json.loads(line)
        if m["topic"].startswith("anomalyd/stats") and \
                json.loads(m["payload"]).get("messages_in") == int(sys.argv[2]):
            n += 1
    except ValueError:
        pass
print(n)
EOP
}

# run NAME MODE: rows 0..214 to a daemon of its own state directory, then
# (MODE stop) a stop and a start, then rows up to 299
run() {
    name=$1 mode=$2
    sub="$D/$name.jsonl"
    cat > "$D/$name.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-level-$name", "stats_interval_s": 0.5},
 "state_dir": "$D/$name.state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100, "margin": 2.5}, "quality": {"enabled": false},
   "alert": {"k": 3, "n": 5, "m": 10, "clear_ratio": 0.8,
             "level_ms": 3600000, "level_z": 3,
             "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
    $H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$sub" & SPID=$!
    $AD_BIN run -c "$D/$name.json" --log-level info 2> "$D/$name.log" & DPID=$!
    $H wait --file "$sub" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
        { it_fail "$name: daemon connects" "$(cat "$D/$name.log")"; return 1; }
    pub 0 215
    $H wait --file "$sub" --match topic=anomalyd/stats messages_in=215 --timeout 30 \
        >/dev/null || { it_fail "$name: 215 rows in" "$(tail -5 "$D/$name.log")"; return 1; }
    if [ "$mode" = stop ]; then
        kill -TERM "$DPID"; wait "$DPID"; DPID=
        if ! grep -q '"level":{' "$D/$name.state/pump/pump1.state.json"; then
            it_fail "$name: the state file holds the level test's mean" \
                "$(head -c 400 "$D/$name.state/pump/pump1.state.json")"
        else
            it_ok "$name: the state file holds the level test's mean ($(wc -c < \
                "$D/$name.state/pump/pump1.state.json") bytes)"
        fi
        mv "$D/$name.log" "$D/$name.1.log"
        $AD_BIN run -c "$D/$name.json" --log-level info 2> "$D/$name.log" & DPID=$!
        $H wait --file "$sub" --match topic=anomalyd/status state=online pid=$DPID \
            --timeout 20 >/dev/null ||
            { it_fail "$name: daemon restarts" "$(cat "$D/$name.log")"; return 1; }
    fi
    pub 215 300
    # rows 215..299 in: messages_in (counted from the process start) 300, or
    # 85 after the restart: one more stats message at 85 than the first
    # process may have published on its way to 215
    n=300 c=1
    [ "$mode" = stop ] && n=85 c=$(($(stats_at "$sub" 85) + 1))
    $H wait --file "$sub" --match topic=anomalyd/stats messages_in=$n --count $c --timeout 30 \
        >/dev/null
    kill -TERM "$DPID"; wait "$DPID"; DPID=
    kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
    return 0
}

run ref none || exit 1
set -- $(raised "$D/ref.jsonl")
if [ $# -eq 4 ] && [ "$1" -gt 215 ] && [ "$1" -lt 260 ] && [ "$2" = level ] &&
   $PYTHON -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$3" "$4"; then
    it_ok "without a restart: the level test raised at row $1 (raised_by $2, peak $3 under the threshold $4)"
else
    it_fail "without a restart: the level test raised after row 215 (raised_by level), peak under the threshold" \
        "got: ${*:-no alert}; $(grep -i "level" "$D/ref.log" | head -3)"
    exit 1
fi
ref_row=$1

run stop stop || exit 1
set -- $(raised "$D/stop.jsonl")
if [ $# -ge 2 ] && [ "$1" = "$ref_row" ] && [ "$2" = level ]; then
    it_ok "stopped 15 rows into the rise: raised at the same row $1 (raised_by $2)"
else
    it_fail "stopped 15 rows into the rise: raised at the same row $ref_row" \
        "got: ${*:-no alert}; $(grep -i "level\|restored" "$D/stop.log" | head -5)"
fi
