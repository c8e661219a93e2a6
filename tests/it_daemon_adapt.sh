#!/bin/sh
# it_daemon_adapt.sh - continual learning live, against a real mosquitto:
# with adapt enabled (small settings) a stream fine-tunes its model on a
# worker, runs the candidate in shadow beside the live model in the same
# batches, and publishes the decision with its figures on
# <state topic>/events; a promoted model is saved in the state directory
# with the stream's state, and a restart comes back with it (no
# recalibration, the promoted model id on the state topic, its promotions
# and rejections counted on from the first run). The learner's
# counts are given in data time (one-minute rows: 80, 40, 5 and 60
# windows), as the state topic shows once the stream knows its period.
. tests/lib.sh
it_setup it_daemon_adapt
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2, "commands": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_ms": 4800000, "min_ms": 2400000, "margin_ms": 300000,
             "shadow_ms": 3600000, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
if $AD_BIN check -c "$D/ad.json" > "$D/check.out" 2>&1; then
    it_ok "a config with adapt.* passes check"
else
    it_fail "a config with adapt.* passes check" "$(cat "$D/check.out")"; exit 1
fi
# A threshold that learns from normal windows with the plain quantile
# estimator can be carried up by a slowly rising fault: check says so; the
# trimmed estimator (the example configuration's) passes without a warning.
for est in quantile trimmed; do
    sed "s/\"windows\": 100}/\"windows\": 100, \"adapt\": true, \"estimator\": \"$est\"}/" \
        "$D/ad.json" > "$D/ad_$est.json"
    $AD_BIN check -c "$D/ad_$est.json" > "$D/check_$est.out" 2>&1 || echo "rc=$?" >> "$D/check_$est.out"
done
if grep -q '"adapt": true, "estimator": "quantile"' "$D/ad_quantile.json" &&
   grep -q 'warning: detector pump: calibration.adapt with estimator "quantile"' "$D/check_quantile.out" &&
   ! grep -q 'rc=' "$D/check_quantile.out" && ! grep -q 'warning\|rc=' "$D/check_trimmed.out"; then
    it_ok "check warns of calibration.adapt with the quantile estimator, not with trimmed"
else
    it_fail "check warns of calibration.adapt with the quantile estimator, not with trimmed" \
        "$(cat "$D/check_quantile.out" "$D/check_trimmed.out")"
fi
it_daemon_up --log-level info
START=$(( $(date +%s) - 1100 * 60 ))
. tests/adapt_lib.sh
K=0
pub 0 160; K=160                  # calibration: 100 windows
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
       adapt.normal_windows=80 adapt.min_windows=40 adapt.margin=5 adapt.margin_clear=29 \
       adapt.shadow_windows=60 --timeout 20 >/dev/null &&
   grep -q "a window every 60 s of data: .*adapt.normal_windows 80 = 1.33 h, .*adapt.margin 5 = 0.0833 h (29 = 0.483 h after a clear)" "$D/daemon.log"; then
    it_ok "adapt.normal_ms 80 min etc.: 80/40/5/60 windows of this stream's 60 s, 29 after a clear (the windows sharing a sample with an alert's; state topic, log)"
else
    it_fail "adapt.normal_ms 80 min etc.: 80/40/5/60 windows of this stream's 60 s, 29 after a clear (the windows sharing a sample with an alert's; state topic, log)" \
        "$(grep "state/pump/pump1\"" "$D/sub.jsonl" | tail -1; grep -E "a window every|adapt.margin" "$D/daemon.log")"
fi
if feed_until shadow; then
    it_ok "the stream fine-tuned a candidate on a worker; shadow start published on its events topic (after $K rows)"
else
    it_fail "the stream fine-tuned a candidate on a worker; shadow start published on its events topic" \
        "$(grep -i "adapt\|continual\|fine" "$D/daemon.log" | tail -5)"
    exit 1
fi
# the candidate scores the next windows in shadow, then the decision
feed_until promoted rejected
dec=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/state/pump/pump1/events":
        continue
    j = json.loads(m["payload"])
    if j.get("decision") in ("promoted", "rejected"):
        print(j["decision"], j.get("model_id"), json.dumps(j.get("figures")))
        sys.exit(0)
print("none")
EOP
)
echo "# decision: $dec"
case $dec in
promoted*|rejected*) it_ok "a decision (${dec%% *}) is published with its figures" ;;
*) it_fail "a decision is published with its figures" "$(tail -5 "$D/daemon.log")"; exit 1 ;;
esac
# shadow_windows: windows_shadow of the last stats message
shadow_windows() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
v = 0
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        v = json.loads(m["payload"]).get("windows_shadow", 0)
print(v)
EOP
}
shadow_ge() { [ "$(shadow_windows)" -ge "$1" ]; }
if it_wait_until 10 shadow_ge 60; then
    it_ok "the candidate scored $(shadow_windows) windows in shadow, in the live batches"
else
    it_fail "the candidate scored at least 60 windows in shadow" "windows_shadow $(shadow_windows)"
fi
case $dec in
promoted*) ;;
*) it_skip "a promoted model survives a restart" "the candidate was rejected: $dec"; exit 0 ;;
esac
pid=$(echo "$dec" | cut -d' ' -f2)
if it_wait_log "$D/daemon.log" "promoted model $pid saved in" 20 &&
   $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 model_id="$pid" \
       adapt.promoted=1 --timeout 10; then
    it_ok "promotion: model $pid saved in the state dir, the state topic shows it"
else
    it_fail "promotion: model $pid saved in the state dir, the state topic shows it" \
        "$(grep -i promot "$D/daemon.log")"
fi
# the promotion holds the threshold at the live one x the error ratio for
# a normal set's worth of windows (80): the state topic shows the hold
held=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/state/pump/pump1":
        continue
    j = json.loads(m["payload"])
    if j.get("adapt", {}).get("promoted") == 1:
        c = j.get("calibration", {})
        h, n = c.get("held"), c.get("held_windows")
        ok = isinstance(h, (int, float)) and h > 0 and j["threshold"] >= h and 0 < n <= 80
        print("ok" if ok else "bad", json.dumps(c), j["threshold"])
        sys.exit(0)
print("none")
EOP
)
case $held in
ok*) it_ok "after the promotion the state topic shows the threshold's hold: ${held#ok }" ;;
*) it_fail "after the promotion the state topic shows the threshold's hold" "$held" ;;
esac
# drift from the reference (the configured model): measured from the first
# fine-tune on, on the state topic
ref1=$(refr "$D/sub.jsonl")
case $ref1 in
none) it_fail "the state topic shows the drift from the reference model" "no adapt.reference_ratio" ;;
*) it_ok "the state topic shows the drift from the reference model (adapt.reference_ratio $ref1)" ;;
esac
restart_daemon
pub $K $((K + 40))
if it_wait_log "$D/daemon.log" "reusing the model trained online" 20 &&
   $H wait --file "$D/sub2.jsonl" --match topic=anomalyd/state/pump/pump1 model_id="$pid" \
       phase=detecting --timeout 20 &&
   ! grep -q "recalibrating" "$D/daemon.log"; then
    it_ok "restart: the stream comes back with the promoted model $pid and its calibration"
else
    it_fail "restart: the stream comes back with the promoted model $pid and its calibration" \
        "$(tail -8 "$D/daemon.log"; grep state/pump/pump1 "$D/sub2.jsonl" | tail -1)"
fi
# the stream's decisions go on counting from the saved state: the restored
# stream's own state message (not the one the broker kept retained) shows
# the promotion and rejections of the first run, not 0
decisions() { # adapt.promoted adapt.rejected of the last (live) state message of FILE
    $PYTHON - "$1" "$2" <<'EOP'
import json, sys
r = "none"
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1" and m["payload"] and \
            (sys.argv[2] == "any" or not m.get("retain")):
        a = json.loads(m["payload"]).get("adapt", {})
        r = "%s %s" % (a.get("promoted"), a.get("rejected"))
print(r)
EOP
}
dec1=$(decisions "$D/sub.jsonl" any)
has_live_decisions() { [ "$(decisions "$D/sub2.jsonl" live)" != none ]; }
it_wait_until 20 has_live_decisions
dec2=$(decisions "$D/sub2.jsonl" live)
if [ "${dec1%% *}" = 1 ] && [ "$dec2" = "$dec1" ]; then
    it_ok "restart: the state topic's decisions go on (promoted, rejected: $dec2)"
else
    it_fail "restart: the state topic's decisions go on" "before: $dec1, after: $dec2"
fi
# the restored stream (its promoted model) still measures from the
# configured model, with the saved baseline
ref2=$(refr "$D/sub2.jsonl")
if [ "$ref1" != none ] && [ "$ref2" = "$ref1" ]; then
    it_ok "restart: the drift baseline is kept (reference_ratio $ref2)"
else
    it_fail "restart: the drift baseline is kept" "before $ref1, after $ref2"
fi
# the operator accepts the drift: the live (promoted) model is the
# reference now, without a baseline until the next fine-tune; saved
r=$($PYTHON tests/it_ops.py cmd --port "$IT_PORT" --topic anomalyd/cmd/pump/pump1 \
    --payload '{"command":"accept_drift","by":"alice"}' --reply-topic anomalyd/reply/pump/pump1)
acc=$($PYTHON -c 'import json,sys
r = json.loads(sys.argv[1]); x = r.get("result") or {}
p = x.get("previous_ratio")
print(r.get("ok"), x.get("reference"), repr(float(p)) if isinstance(p, (int, float)) else "none")' "$r" 2>/dev/null)
n=0; ref3=$(refr "$D/sub2.jsonl")
while [ "$ref3" != none ] && [ $n -lt 50 ]; do sleep 0.2; n=$((n + 1)); ref3=$(refr "$D/sub2.jsonl"); done
if [ "$acc" = "True $pid $ref2" ] && [ "$ref3" = none ] &&
   grep -rqs "\"reference\":{\"id\":\"$pid\"}" "$D/state"; then
    it_ok "accept_drift: the promoted model $pid is the reference (ratio was $ref2), no baseline until the next fine-tune, saved"
else
    it_fail "accept_drift" "reply $r; ratio now $ref3; $(grep -i drift "$D/daemon.log" | tail -2); $(grep -rho '"reference":{[^}]*}' "$D/state" | head -2)"
fi
it_daemon_stop
exit 0
