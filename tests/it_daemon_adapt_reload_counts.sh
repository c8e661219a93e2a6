#!/bin/sh
# it_daemon_adapt_reload_counts.sh - a stream's continual-learning
# decisions stay in its detector's figures over a reload that rebuilds it:
# a stream fine-tunes and decides (promoted or rejected, counted in the
# stats' adapt_promoted / adapt_rejected), then a SIGHUP turns continual
# learning off, which rebuilds the stream's detector without a learner to
# restore the counts into: the detector's figures keep them (they went
# back to 0 when only a learner restored from the state file was thought
# to carry them). Before that a SIGHUP gives the detector a model of
# another window length (20 rows, not 30) with learning still on: the
# rebuilt stream's learner refuses the saved learner state (its windows
# are of the old shape), and the decisions stay counted there too (they
# went back to 0: only a learner state restored whole carried them).
. tests/lib.sh
it_setup it_daemon_adapt_reload_counts
it_broker_up
conf() {    # conf true|false [MODEL]: adapt.enabled, the model file
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-counts", "stats_interval_s": 0.3},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "${2:-$MODEL}", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": $1, "every_windows": 60, "every_hours": 0,
             "normal_ms": 4800000, "min_ms": 2400000, "margin_ms": 300000,
             "shadow_ms": 3600000, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# counts: the last stats message's "adapt_promoted adapt_rejected" of pump
counts() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
v = "none"
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        for d in json.loads(m["payload"]).get("detectors", []):
            if d.get("name") == "pump":
                v = "%s %s" % (d.get("adapt_promoted"), d.get("adapt_rejected"))
print(v)
EOP
}
decided() { c=$(counts); [ "$c" != "none" ] && [ "$c" != "0 0" ]; }
# the model of another window length (trained meanwhile)
($PYTHON tools/pumpsim.py --seed 5 --days 1 --out "$D/p5.csv" &&
 nice $AD_BIN train -i "$D/p5.csv" -o "$D/w20.safetensors" --window 20 --arch lstm-ae:4 \
     --epochs 1 --hop 8 --loss mae) > "$D/train.log" 2>&1 &
TPID=$!
conf true
it_daemon_up --log-level info
START=$(( $(date +%s) - 1100 * 60 ))
. tests/adapt_lib.sh
K=0
pub 0 160; K=160                  # calibration: 100 windows
feed_until promoted rejected
if it_wait_until 10 decided; then
    it_ok "a continual-learning decision counted in the detector's figures ($(counts))"
else
    it_fail "a continual-learning decision counted in the detector's figures" \
        "$(counts); $(grep -i "adapt\|candidate" "$D/daemon.log" | tail -3)"
    exit 1
fi
before=$(counts)
stats_more() {  # two more stats messages than now
    n=$(grep -c '"anomalyd/stats"' "$D/sub.jsonl")
    it_wait_until 5 sh -c "[ \$(grep -c '\"anomalyd/stats\"' '$D/sub.jsonl') -ge $((n + 2)) ]"
}
if wait "$TPID" && [ -s "$D/w20.safetensors" ]; then
    conf true "$D/w20.safetensors"
    kill -HUP "$DPID"
    it_wait_log "$D/daemon.log" "1 rebuilt for new settings" 20 ||
        it_fail "a model of another window length rebuilds the stream's detector" \
            "$(grep reload "$D/daemon.log" | tail -3)"
    stats_more
    after=$(counts)
    if [ "$before" = "$after" ] &&
       grep -q "pump1: saved continual-learning state ignored: adapt state: window 30x5, the model's is 20x5 (its counts of decisions go on)" "$D/daemon.log"; then
        it_ok "a model of another window length: the learner's state is refused, its decisions stay counted ($after)"
    else
        it_fail "a model of another window length: the learner's state is refused, its decisions stay counted" \
            "before $before, after $after; $(grep "continual-learning state" "$D/daemon.log" | tail -2)"
    fi
else
    it_fail "a model of window length 20 trained" "$(tail -3 "$D/train.log")"
fi
conf false
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" "1 rebuilt for new settings" 20 2 ||
    it_fail "adapt.enabled false rebuilds the stream's detector" "$(grep reload "$D/daemon.log" | tail -3)"
stats_more
after=$(counts)
if [ "$before" = "$after" ]; then
    it_ok "continual learning turned off by a reload: the decisions stay counted ($after)"
else
    it_fail "continual learning turned off by a reload: the decisions stay counted" \
        "before $before, after $after"
fi
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] && it_ok "clean stop" || it_fail "clean stop" "rc=$rc"
exit 0
