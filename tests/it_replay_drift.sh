#!/bin/sh
# it_replay_drift.sh - continual learning follows a slow fault; the drift
# notice says so. The simulated pump (the bundled model's), fourteen days of
# one-minute rows, a bearing that wears over ten days from day 2 (severity
# 0.5), replayed with the example configuration: with continual learning
# the wear is learned a little at each fine-tune and its first alert comes
# days later than without (the problem is real in this data); the drift
# notice (adapt.drift_ratio) names vibration days before that alert. Those
# replays turn the example's level test (alert.level_ms) off: with it (the
# example configuration as it is) the wear's persistent rise alerts days
# before continual learning alone does. The same pump without a fault gives
# no notice and, with the example configuration, no alert.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
SRC=${AD_SRCDIR:-.}
if ldd "$BIN" 2>/dev/null | grep -q 'libasan\|libubsan'; then
    # three replays of 20,000 rows, each fine-tuning every day: minutes under
    # ASan; the learner's drift code runs under it in test_adapt
    it_skip "continual learning follows the wear; the drift notice says so" \
        "sanitizer build: checked on the release binary (make test)"
    exit 0
fi
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

$PYTHON "$SRC/tools/pumpsim.py" --seed 41 --days 14 --fault bearing@2d+10d:0.5 --out "$D/wear.csv" &&
$PYTHON "$SRC/tools/pumpsim.py" --seed 41 --days 14 --out "$D/clean.csv" ||
    { it_fail "pumpsim generates the streams"; exit 0; }
$PYTHON - "$SRC/conf/anomalyd.json" "$D" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["detectors"][0]["adapt"]
assert a.get("enabled") is True, "the example configuration enables continual learning"
json.dump(d, open(sys.argv[2] + "/level.json", "w"))
d["detectors"][0]["alert"]["level_ms"] = 0
json.dump(d, open(sys.argv[2] + "/on.json", "w"))
a["enabled"] = False
json.dump(d, open(sys.argv[2] + "/off.json", "w"))
EOF
[ -f "$D/off.json" ] || { it_fail "example configuration enables continual learning"; exit 0; }

run() { # run CONF CSV NAME
    OPENBLAS_NUM_THREADS=1 "$BIN" replay -c "$1" -m "$SRC/conf/models/pump.safetensors" \
        -i "$2" -o /dev/null -e "$D/$3.jsonl" 2> "$D/$3.log"
}
run "$D/on.json" "$D/wear.csv" on & run "$D/off.json" "$D/wear.csv" off &
wait
run "$D/level.json" "$D/wear.csv" level & run "$D/level.json" "$D/clean.csv" clean &
wait
for k in on off level clean; do
    if [ -s "$D/$k.jsonl" ]; then it_ok "replay ($k) runs"
    else it_fail "replay ($k) runs" "$(tail -5 "$D/$k.log")"; exit 0; fi
done

# days from the start: first alert raised, first drift notice (and its feature)
first() { # first FILE
    $PYTHON - "$1" <<'EOF'
import json, sys, datetime
t0 = datetime.datetime(2026, 1, 5, tzinfo=datetime.timezone.utc).timestamp() * 1000
alert = drift = None
feat = "-"
for line in open(sys.argv[1]):
    e = json.loads(line)
    day = (e["ts"] - t0) / 86400000.0
    if e["event"] == "alert_raised" and alert is None:
        alert = day
    if e["event"] == "adapt" and e.get("decision") == "drift" and drift is None:
        drift, feat = day, e["figures"].get("reference_feature") or "-"
print("%.2f %.2f %s" % (alert if alert is not None else 99, drift if drift is not None else 99, feat))
EOF
}
set -- $(first "$D/on.jsonl"); on_alert=$1; on_drift=$2; on_feat=$3
set -- $(first "$D/off.jsonl"); off_alert=$1
set -- $(first "$D/level.jsonl"); level_alert=$1
set -- $(first "$D/clean.jsonl"); clean_alert=$1; clean_drift=$2
echo "# wear from day 2: first alert day $off_alert without continual learning, day $on_alert with it, day $level_alert with it and the level test; drift notice day $on_drift ($on_feat); clean pump (level test on): notice day $clean_drift, first alert day $clean_alert (99: none)"
if $PYTHON -c "import sys; a, o = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if o >= a + 2 else 1)" "$off_alert" "$on_alert"; then
    it_ok "continual learning follows the wear: its first alert comes days later ($on_alert vs $off_alert)"
else
    it_fail "continual learning follows the wear" "first alert day $on_alert with it, $off_alert without"
fi
if [ "$on_feat" = vibration ] &&
   $PYTHON -c "import sys; d, a = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if d >= 2 and d + 2 <= a else 1)" "$on_drift" "$on_alert"; then
    it_ok "the drift notice names vibration on day $on_drift, days before the first alert (day $on_alert)"
else
    it_fail "the drift notice names vibration before the first alert" \
        "notice day $on_drift ($on_feat), first alert day $on_alert"
fi
# the level test does not alert this slow wear earlier: each promotion
# starts its mean over, and the promoted model has learned part of the wear
# (an earlier form alerted on day 5.7, from the old model's scores read
# against the promoted model's normal scores: an artefact, see
# docs/continual-learning.md); it must not alert later either
if $PYTHON -c "import sys; l, o = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if l <= o else 1)" "$level_alert" "$on_alert"; then
    it_ok "with the level test the wear alerts no later (day $level_alert, continual learning alone day $on_alert)"
else
    it_fail "with the level test the wear alerts no later" "first alert day $level_alert with it, $on_alert without"
fi
if [ "$clean_alert" = 99.00 ]; then
    it_ok "no alert on the pump without a fault (example configuration)"
else
    it_fail "no alert on the pump without a fault (example configuration)" "first alert on day $clean_alert"
fi
if [ "$clean_drift" = 99.00 ]; then
    it_ok "no drift notice on the pump without a fault"
else
    it_fail "no drift notice on the pump without a fault" "notice on day $clean_drift"
fi
if grep -q "drift from the reference model: .*(most: vibration" "$D/on.log"; then
    it_ok "the notice is logged as a warning naming the feature"
else
    it_fail "the notice is logged as a warning naming the feature" "$(grep -i drift "$D/on.log" | head -3)"
fi
