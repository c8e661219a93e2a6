#!/bin/sh
# it_daemon_adapt_shadow_clock.sh - a fine-tune's candidate in shadow when
# the host's wall clock is set back two hours while the daemon runs (an
# LD_PRELOAD shim, tests/clock_step.c, as it_daemon_clock_step.sh), against
# a real mosquitto. The stream's samples carry no time (stamped on
# arrival): a step of more than an hour is taken at once, the stream
# rebuilt from its hand-over state (streams.c clock_rebuild), as a reload
# rebuilds it. The rebuilt stream resumes the same candidate where it was
# (its span in the hand-over text): the candidate's file stays, no new
# fine-tune or shadow event, and its decision carries the whole span (the
# shadow windows before the step counted). Before, the rebuilt detector had
# no candidate: its file was removed and the fine-tune came again.
. tests/lib.sh
it_setup it_adapt_shadow_clock

it_shim clock_step -ldl ||
    { it_skip "candidate in shadow across a clock step" "shim not built: $(head -2 "$D/cc.log")"; exit 0; }
ASAN_EXTRA=
ldd "$AD_BIN" 2>/dev/null | grep -q libasan && ASAN_EXTRA="verify_asan_link_order=0"
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-shclock", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 120, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"k": 3, "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
echo 0 > "$D/step"
it_sub_start
CLOCK_STEP_FILE="$D/step" LD_PRELOAD="$D/clock_step.so" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}$ASAN_EXTRA" \
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
it_daemon_online
START=$(( $(date +%s) - 1400 * 60 ))
. tests/adapt_lib.sh
export PUB_NO_TS=1
FEED_MAX=1300
# events DECISION: "attempt model_id shadow_windows" of each adapt event of
# that decision on pump1's events topic, one a line
events() {
    $PYTHON - "$D/sub.jsonl" "$1" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/state/pump/pump1/events":
        continue
    p = json.loads(m["payload"])
    if p.get("event") == "adapt" and p.get("decision") == sys.argv[2]:
        print(p.get("attempt"), p.get("model_id"), p.get("figures", {}).get("shadow_windows"))
EOP
}
cand_file() { ls "$D"/state/pump/pump1.*.candidate.safetensors 2>/dev/null | head -1; }
has_cand() { [ -n "$(cand_file)" ]; }

pub 0 160; K=160
feed_until shadow || { it_fail "a fine-tuned candidate goes into shadow" \
                           "$(tail -5 "$D/daemon.log")"; exit 1; }
it_wait_until 10 has_cand ||
    { it_fail "the candidate in shadow is saved beside the state" "$(ls "$D/state/pump")"; exit 1; }
CF=$(cand_file)
set -- $(events shadow | tail -1)
ATT=$1 MID=$2
# part of the span (a window a row), then the step back
pub $K $((K + 30)); K=$((K + 30))
sleep 2
NFT=$(grep -c "fine-tuning on" "$D/daemon.log")
echo -7200000 > "$D/step"
sleep 0.3
pub $K $((K + 2)); K=$((K + 2))
it_wait_log "$D/daemon.log" "clock: the wall clock was set back 7[0-9.]* s: more than an hour" 10 ||
    { it_fail "the step taken (the shim works)" "$(grep clock: "$D/daemon.log")"; exit 1; }
if it_wait_log "$D/daemon.log" "clock: after the step back: 1 stream\(s\) start their rows anew" 10 &&
   it_wait_log "$D/daemon.log" "candidate $MID goes on in shadow" 10; then
    it_ok "clock set back two hours: the stream is rebuilt, candidate $MID goes on in shadow"
else
    it_fail "clock set back two hours: the rebuilt stream resumes candidate $MID" \
        "$(grep -iE 'clock:|candidate' "$D/daemon.log" | tail -6)"
fi
sleep 1
[ -f "$CF" ] && it_ok "its file stays ($(basename "$CF"))" ||
    it_fail "its file stays after the rebuild" "$(ls "$D/state/pump")"
# the rows after the step: fewer than the span and a window (30 rows: the
# rebuilt stream's rows start anew) would take without the 30+ before it
K0=$K
while [ $K -lt $FEED_MAX ] && ! events_any promoted rejected; do
    pub $K $((K + 10)); K=$((K + 10)); it_wait_until 2 events_any promoted rejected
done
events_any promoted rejected ||
    { it_fail "the resumed candidate is decided" "$(tail -5 "$D/daemon.log")"; exit 1; }
DEC=$(events promoted; events rejected)
set -- $DEC
if [ "$1" = "$ATT" ] && [ "$2" = "$MID" ] && [ "$3" = 120 ] && [ $((K - K0)) -lt 150 ]; then
    it_ok "its decision covers the whole span: attempt $1, model $2, $3 shadow windows, $((K - K0)) rows after the step"
else
    it_fail "its decision covers the whole span" \
        "want attempt $ATT model $MID 120 within 150 rows; got: $DEC after $((K - K0)) rows"
fi
if [ "$(events shadow | wc -l)" = 1 ] && [ "$(grep -c "fine-tuning on" "$D/daemon.log")" = "$NFT" ]; then
    it_ok "no new fine-tune or shadow after the step"
else
    it_fail "no new fine-tune or shadow after the step" "$(events shadow)"
fi
it_daemon_stop
exit 0
