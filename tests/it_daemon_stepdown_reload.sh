#!/bin/sh
# it_daemon_stepdown_reload.sh - step-down acceptance turned on by a reload
# (SIGHUP) while an alert is open, against a real mosquitto. A pump's
# pressure reads 1.5 bar low from row 200, then 0.6 bar low from row 250 for
# good (a fault that ended, the pump left at a lower level, still over the
# threshold); one-minute rows, accept_after_ms 1 day (no plain acceptance).
#   - on from the start (stepdown_ratio 0.67, windows 10, after 10): the
#     alert closes with reason "accepted" and a regime_accepted event
#     "stepped down to ..." before row 330;
#   - off until row 330, then the configuration turns it on and the daemon
#     is reloaded (alert rules only: the stream is rebuilt from its state
#     and continues its alert): the step down already happened, so the
#     alert is accepted on the first window after the reload (row 330).
# Before the progress was rebuilt from the alert's scores the acceptance
# progress keeps, the highest mean started at the reload, at the lower
# level, and the alert stayed open. Each daemon must also run through all
# rows and stop cleanly: a step-down regime's learning overran its scores
# (sized before accept_after_ms was a count of windows) and corrupted the
# heap.
. tests/lib.sh
it_setup it_daemon_stepdown_reload
it_broker_up
START=$(( $(date +%s) - 1000 * 60 ))

# pub FROM TO: simulator rows FROM..TO-1 of pump1, one a minute from START
pub() {
    $H pub --port "$IT_PORT" --start "$START" --seed 3 --start-row "$1" --rows "$2" \
        --shift pressure:-0.9:200:250 --shift pressure:-0.6:200
}

# conf NAME RATIO
conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-stepdown-$1", "stats_interval_s": 0.5},
 "state_dir": "$D/$1.state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "alert": {"k": 3, "n": 5, "m": 10, "clear_ratio": 0.8,
             "accept_after_ms": 86400000, "stepdown_ratio": $2,
             "stepdown_windows": 10, "stepdown_after": 10,
             "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}

# accepted SUBFILE: "<row> <raises> <text>" of pump1's alert closed as
# accepted (its end's row) and the regime_accepted event (nothing: none)
accepted() {
    $PYTHON - "$1" "$START" <<'EOP'
import json, sys
raised, end, text = 0, None, None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if not m["topic"].startswith("anomalyd/"):
        continue
    try:
        j = json.loads(m["payload"])
    except ValueError:
        continue
    if m["topic"] == "anomalyd/alerts/pump/pump1":
        raised += j.get("event") == "raised"
        if j.get("event") == "cleared" and j.get("reason") == "accepted" and end is None:
            end = j["end_ms"]
    elif j.get("event") == "regime_accepted" and text is None:
        text = j.get("text", "")
if end is not None and text is not None:
    print((end // 1000 - int(sys.argv[2])) // 60, raised, text)
EOP
}

# run NAME RATIO [reload]: rows 0..329 to a daemon with stepdown_ratio
# RATIO; with reload, then turned to 0.67 by a reload; rows 330..359
run() {
    name=$1
    sub="$D/$name.jsonl"
    conf "$name" "$2"
    $H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$sub" & SPID=$!
    $AD_BIN run -c "$D/$name.json" --log-level info 2> "$D/$name.log" & DPID=$!
    $H wait --file "$sub" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
        { it_fail "$name: daemon connects" "$(cat "$D/$name.log")"; return 1; }
    pub 0 330
    if ! $H wait --file "$sub" --match topic=anomalyd/alerts/pump/pump1 event=raised \
             --timeout 30 >/dev/null ||
       ! $H wait --file "$sub" --match topic=anomalyd/stats messages_in=330 --timeout 30 \
             >/dev/null; then
        it_fail "$name: the pressure drop raises an alert" "$(tail -5 "$D/$name.log")"
        return 1
    fi
    if [ "${3:-}" = reload ]; then
        conf "$name" 0.67
        kill -HUP "$DPID"
        it_wait_log "$D/$name.log" "configuration reloaded" 20 ||
            { it_fail "$name: the configuration reloads" "$(tail -5 "$D/$name.log")"; return 1; }
    fi
    pub 330 360
    $H wait --file "$sub" --match topic=anomalyd/alerts/pump/pump1 event=cleared \
        reason=accepted --timeout 15 >/dev/null
    # the windows after it judged against the regime teach its threshold
    # (within the scores it keeps: accept_after from accept_after_ms)
    $H wait --file "$sub" --match topic=anomalyd/stats messages_in=360 --timeout 15 >/dev/null
    kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
    kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
    if [ "$rc" = 0 ]; then
        it_ok "$name: the daemon ran through all rows and stopped cleanly"
    else
        it_fail "$name: the daemon ran through all rows and stopped cleanly" \
            "exit status $rc: $(tail -2 "$D/$name.log")"
    fi
    return 0
}

run on 0.67 || exit 1
set -- $(accepted "$D/on.jsonl")
if [ $# -ge 3 ] && [ "$1" -gt 250 ] && [ "$1" -lt 330 ] && [ "$2" = 1 ] &&
   [ "$3 $4" = "stepped down" ]; then
    it_ok "on from the start: one alert, closed as accepted at row $1 (before row 330): $*"
else
    it_fail "on from the start: one alert, closed as accepted before row 330" \
        "got: ${*:-not accepted}" "$(grep -i "regime\|step" "$D/on.log" | head -5)"
    exit 1
fi

run reload 0 reload || exit 1
set -- $(accepted "$D/reload.jsonl")
if [ $# -ge 3 ] && [ "$1" -ge 330 ] && [ "$1" -le 331 ] && [ "$2" = 1 ] &&
   [ "$3 $4" = "stepped down" ] && grep -q "rebuilt from its" "$D/reload.log"; then
    it_ok "turned on by a reload at row 330, after the step down: accepted on the first window after it (row $1)"
else
    it_fail "turned on by a reload at row 330, after the step down: accepted on the first window after it" \
        "got: ${*:-not accepted}" "$(grep -i "regime\|step\|reload" "$D/reload.log" | head -8)"
fi
