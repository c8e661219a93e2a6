#!/bin/sh
# it_daemon_adapt_shadow_restart.sh - a fine-tune's candidate in shadow
# across a restart, against a real mosquitto. The candidate's model is
# saved beside the stream's state (<stream><tag>.candidate.safetensors)
# and its shadow span's progress in the state: stopped during the span and
# started again, the daemon resumes the same candidate where it stopped
# (no new fine-tune, no new shadow event), and the decision on the events
# topic carries the figures of the whole span (its adapt.shadow_windows,
# the attempt and model of the shadow event before the stop). A truncated
# candidate file is refused with a warning naming it, and the stream goes
# on without the candidate (its next fine-tune comes at its schedule). A
# SIGHUP that rebuilds the stream (alert rules changed: its calibration
# holds) resumes the candidate too; one with new settings drops it with a
# notice.
. tests/lib.sh
it_setup it_adapt_shadow_restart
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-shrestart", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 120, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"k": ALERT_K, "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
sed -i 's/ALERT_K/3/' "$D/ad.json"
it_daemon_up --log-level info
START=$(( $(date +%s) - 1400 * 60 ))
. tests/adapt_lib.sh
FEED_MAX=1300
# events FILE DECISION: "attempt model_id shadow_windows normal_windows" of
# each adapt event of that decision on pump1's events topic, one a line
events() {
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/state/pump/pump1/events":
        continue
    p = json.loads(m["payload"])
    if p.get("event") == "adapt" and p.get("decision") == sys.argv[2]:
        f = p.get("figures", {})
        print(p.get("attempt"), p.get("model_id"), f.get("shadow_windows"),
              f.get("normal_windows"))
EOP
}
# restart: stop (SIGTERM), keep the log and messages so far (N: suffix),
# start again; sub.jsonl holds the messages from then on
restart() {
    kill -TERM "$DPID"; wait "$DPID"; DPID=
    kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
    mv "$D/daemon.log" "$D/daemon$1.log"
    mv "$D/sub.jsonl" "$D/sub$1.jsonl"
    [ -n "$2" ] && eval "$2"
    it_sub_start
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
    it_daemon_online 0 "daemon restarts"
}
cand_file() { ls "$D"/state/pump/pump1.*.candidate.safetensors 2>/dev/null | head -1; }

# 1. a candidate in shadow, the file truncated while stopped: refused
pub 0 160; K=160
feed_until shadow || { it_fail "a fine-tuned candidate goes into shadow" \
                           "$(tail -5 "$D/daemon.log")"; exit 1; }
has_cand() { [ -n "$(cand_file)" ]; }
it_wait_until 10 has_cand
CF=$(cand_file)
[ -n "$CF" ] && it_ok "the candidate in shadow is saved beside the state ($(basename "$CF"))" ||
    { it_fail "the candidate in shadow is saved beside the state" "$(ls "$D/state/pump")"; exit 1; }
restart 1 'truncate -s 100 "$CF"'
pub $K $((K + 2)); K=$((K + 2))     # the stream is restored with its first message
if it_wait_log "$D/daemon.log" "not restored: $CF: .*goes on without it" 20; then
    it_ok "a truncated candidate file is refused, naming it: $(grep -o 'candidate [0-9a-f]* in shadow at the stop not restored.*' "$D/daemon.log" | head -1 | cut -c1-200)"
else
    it_fail "a truncated candidate file is refused, naming it" "$(grep -i candidate "$D/daemon.log")"
    exit 1
fi
has_state() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 --timeout 0.1 >/dev/null
}
it_wait_until 10 has_state && it_ok "the stream goes on without it (state published)" ||
    it_fail "the stream goes on without it" "$(tail -5 "$D/daemon.log")"

# 2. the next fine-tune's candidate, stopped mid-span: resumed
has_shadow() { [ -n "$(events "$D/sub.jsonl" shadow)" ]; }
while [ $K -lt $FEED_MAX ] && ! has_shadow; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 has_shadow
done
has_shadow || { it_fail "a new candidate goes into shadow after the refused one" \
                    "$(tail -5 "$D/daemon.log")"; exit 1; }
set -- $(events "$D/sub.jsonl" shadow | tail -1)
ATT=$1 MID=$2
# part of the span (hop 1 by default: a window a row), then the stop
pub $K $((K + 30)); K=$((K + 30))
sleep 2
restart 2
pub $K $((K + 2)); K=$((K + 2))
if it_wait_log "$D/daemon.log" "candidate $MID goes on in shadow" 20; then
    it_ok "after the restart candidate $MID goes on in shadow"
else
    it_fail "after the restart candidate $MID goes on in shadow" "$(grep -i candidate "$D/daemon.log")"
    exit 1
fi
# 10 rows at a time: the rows the decision took after the restart
K0=$((K - 2))
while [ $K -lt $FEED_MAX ] && ! events_any promoted rejected; do
    pub $K $((K + 10)); K=$((K + 10)); it_wait_until 2 events_any promoted rejected
done
events_any promoted rejected ||
    { it_fail "the resumed candidate is decided" "$(tail -5 "$D/daemon.log")"; exit 1; }
DEC=$(events "$D/sub.jsonl" promoted; events "$D/sub.jsonl" rejected)
set -- $DEC
if [ "$1" = "$ATT" ] && [ "$2" = "$MID" ] && [ "$3" = 120 ] && [ "$4" -gt 0 ]; then
    it_ok "the decision on the state topic's events covers the whole span: attempt $1, model $2, $3 shadow windows, $4 judged normal"
else
    it_fail "the decision covers the whole span" "want attempt $ATT model $MID 120; got: $DEC"
fi
if [ -z "$(events "$D/sub.jsonl" shadow)" ] &&
   ! grep -q "fine-tuning on" "$D/daemon.log"; then
    it_ok "no new fine-tune or shadow after the restart"
else
    it_fail "no new fine-tune or shadow after the restart" "$(events "$D/sub.jsonl" shadow)"
fi
# the windows before the stop counted: fewer rows than the span after it
if [ $((K - K0)) -lt 120 ]; then
    it_ok "decided within $((K - K0)) rows after the restart (the span is 120 windows, 30+ before the stop)"
else
    it_fail "decided within fewer rows than the span after the restart" "$((K - K0)) rows"
fi
no_cand() { [ -z "$(cand_file)" ]; }
it_wait_until 10 no_cand &&
    it_ok "the decided candidate's file is removed" ||
    it_fail "the decided candidate's file is removed" "$(ls "$D/state/pump")"
# removed once the state without it is written, never before
if grep -q '"shadow":{"model_id"' "$D"/state/pump/*.state.json; then
    it_fail "the state written before the file's removal no longer names the candidate" \
        "$(grep -o '"shadow":{"model_id":"[0-9a-f]*"' "$D"/state/pump/*.state.json)"
else
    it_ok "the state written before the file's removal no longer names the candidate"
fi

# 3. the next candidate in shadow, a SIGHUP that rebuilds the stream
nshadow() { events "$D/sub.jsonl" shadow | wc -l; }
ndec() { echo $(( $(events "$D/sub.jsonl" promoted | wc -l) + $(events "$D/sub.jsonl" rejected | wc -l) )); }
more_shadow() { [ "$(nshadow)" -ge 1 ]; }
while [ $K -lt $FEED_MAX ] && ! more_shadow; do
    pub $K $((K + 40)); K=$((K + 40)); it_wait_until 3 more_shadow
done
if more_shadow; then
    set -- $(events "$D/sub.jsonl" shadow | tail -1)
    MID3=$2
    pub $K $((K + 20)); K=$((K + 20))
    sleep 1
    sed -i 's/"k": 3/"k": 4/' "$D/ad.json"
    kill -HUP "$DPID"
    pub $K $((K + 2)); K=$((K + 2))
    if it_wait_log "$D/daemon.log" "candidate $MID3 goes on in shadow" 20; then
        it_ok "a SIGHUP that rebuilds the stream (alert.k 3 -> 4) resumes candidate $MID3"
    else
        it_fail "a SIGHUP that rebuilds the stream resumes the candidate" \
            "$(grep -iE 'candidate|reload' "$D/daemon.log" | tail -5)"
    fi
    D0=$(ndec)
    more_dec() { [ "$(ndec)" -gt "$D0" ]; }
    while [ $K -lt $FEED_MAX ] && ! more_dec; do
        pub $K $((K + 20)); K=$((K + 20)); it_wait_until 2 more_dec
    done
    DEC3=$(events "$D/sub.jsonl" promoted; events "$D/sub.jsonl" rejected)
    if echo "$DEC3" | grep -q " $MID3 120 "; then
        it_ok "its decision covers the whole span ($(echo "$DEC3" | grep " $MID3 "))"
    else
        it_fail "its decision covers the whole span" "$DEC3"
    fi
else
    echo "# no third candidate within $FEED_MAX rows: SIGHUP part not run"
fi
it_daemon_stop
exit 0
