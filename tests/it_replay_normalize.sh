#!/bin/sh
# it_replay_normalize.sh - score.normalize "feature" through `anomalyd
# replay` (the daemon's pipeline): a stream of three features, two with a
# large reconstruction error (flow, pressure: noisy) and one the model
# reconstructs well (temp); from row 1200 temp's noise grows tenfold.
#  - plain mae: no alert (the fault is diluted by the others' error);
#  - --normalize feature: an alert raised after row 1200 and none before;
#  - the same from a config file (score.normalize) as from the option;
#  - `anomalyd score --normalize feature`, its scales learned on the same
#    391 windows as replay's calibration, prints the same scores;
#  - bad values and a fixed threshold are refused, naming the setting.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
$PYTHON - "$D" <<'PY'
import sys, math, random
d = sys.argv[1]
random.seed(3)
def rows(n, fault_from=None):
    out = []
    for i in range(n):
        f = fault_from is not None and i >= fault_from
        out.append((1577836800 + i, math.sin(i / 15.0) + random.gauss(0, 0.15),
                    0.5 * math.cos(i / 15.0) + random.gauss(0, 0.15),
                    20 + 0.5 * math.sin(i / 15.0) + random.gauss(0, 0.1 if f else 0.01)))
    return out
for name, rs in (("train", rows(600)), ("test", rows(1600, 1200))):
    with open("%s/%s.csv" % (d, name), "w") as fh:
        fh.write("ts,flow,pressure,temp\n")
        for r in rs:
            fh.write("%d,%.5f,%.5f,%.5f\n" % r)
PY
"$BIN" train -i "$D/train.csv" -o "$D/m.safetensors" --rows 600 --window 10 \
    --arch lstm-ae:16 --epochs 40 --seed 1 -q > /dev/null 2>&1 || { it_fail "train" ""; exit 0; }
# run NAME ARGS...: replay into $D/NAME.csv / NAME.ev; prints "alerts first_row
# normal_ratio fault_ratio": alerts raised, the row of the first, and the
# largest score / threshold before and after row 1200
run() {
    n=$1; shift
    "$BIN" replay -i "$D/test.csv" --stream s -o "$D/$n.csv" -e "$D/$n.ev" "$@" \
        2> "$D/$n.log" || { echo "replay failed: $(tail -1 "$D/$n.log")"; return; }
    $PYTHON - "$D/$n.csv" "$D/$n.ev" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ev = [json.loads(l) for l in open(sys.argv[2])]
ts0 = int(rows[0]["ts_ms"])
raised = [(e["ts"] - ts0) // 1000 for e in ev if e["event"] == "alert_raised"]
def mx(a, b):
    v = [float(r["score"]) / float(r["threshold"]) for r in rows[a:b]
         if r["phase"] == "detecting" and r["score"] not in ("", "nan")]
    return max(v) if v else float("nan")
print(len(raised), raised[0] if raised else -1, "%.3f" % mx(400, 1200), "%.3f" % mx(1200, 1600))
PY
}
run none -m "$D/m.safetensors" --calibrate-rows 400 > "$D/none.out"
run feat -m "$D/m.safetensors" --calibrate-rows 400 --normalize feature > "$D/feat.out"
read -r na nf nn nx < "$D/none.out"
read -r fa ff fn fx < "$D/feat.out"
echo "# plain mae: $na alert(s), max score/threshold $nn normal, $nx fault"
echo "# normalised: $fa alert(s) (first at row $ff), max score/threshold $fn normal, $fx fault"
if [ "$na" = 0 ]; then
    it_ok "plain mae: the fault in the low-error feature raises no alert (ratio $nx)"
else
    it_fail "plain mae: no alert expected" "$(cat "$D/none.out")"
fi
if [ "$fa" -ge 1 ] 2>/dev/null && [ "$ff" -ge 1200 ]; then
    it_ok "--normalize feature: alert at row $ff after the fault at 1200 (ratio $fx), none before"
else
    it_fail "--normalize feature: an alert after row 1200 and none before" "$(cat "$D/feat.out")"
fi
# the config key gives the same scores as the option
cat > "$D/c.json" <<EOF
{"detectors":[{"name":"p","model":"$D/m.safetensors","topics":["x/+"],
  "score":{"metric":"mae","normalize":"feature"}}]}
EOF
"$BIN" replay -c "$D/c.json" -i "$D/test.csv" --stream s --calibrate-rows 400 \
    -o "$D/cfg.csv" 2> "$D/cfg.log"
if cmp -s "$D/cfg.csv" "$D/feat.csv"; then
    it_ok "score.normalize in the config: the same output as --normalize feature"
else
    it_fail "score.normalize in the config: the same output" "$(diff "$D/cfg.csv" "$D/feat.csv" | head -3)"
fi
# score: the same normalised scores as replay's once calibrated
"$BIN" score -m "$D/m.safetensors" -i "$D/test.csv" --metric mae --normalize feature \
    --scale-windows 391 > "$D/score.txt" 2> "$D/score.log"
got=$($PYTHON - "$D/feat.csv" "$D/score.txt" <<'PY'
import csv, sys
rep = {int(r["row"]): r["score"] for r in csv.DictReader(open(sys.argv[1]))}
n, worst = 0, 0.0
for line in open(sys.argv[2]):
    i, s = line.split()[:2]
    i, s = int(i), float(s)
    if i >= 400:
        n += 1
        worst = max(worst, abs(float(rep[i]) - s) / s)
print(n, "%.3g" % worst)
PY
)
case "$got" in
    "1200 0") it_ok "score --normalize feature: the 1200 windows after calibration equal replay's" ;;
    *) it_fail "score --normalize feature equals replay (windows, largest relative difference)" \
           "$got $(tail -1 "$D/score.log")" ;;
esac
# errors name the setting
sed 's/"feature"/"max"/' "$D/c.json" > "$D/bad.json"
msg=$("$BIN" replay -c "$D/bad.json" -i "$D/test.csv" -o /dev/null 2>&1)
case "$msg" in
    *'detectors[0].score.normalize: unknown value "max" (expected none|feature|feature_rms)'*)
        it_ok "config: a bad score.normalize is refused: $msg" ;;
    *) it_fail "config: a bad score.normalize is refused" "$msg" ;;
esac
msg=$("$BIN" replay -m "$D/m.safetensors" -i "$D/test.csv" -o /dev/null --normalize feature \
    --method fixed --value 1 2>&1)
case "$msg" in
    *'score.normalize "feature": the per-feature scales are learned in calibration, which threshold method fixed does not run'*)
        it_ok "--normalize feature with a fixed threshold is refused" ;;
    *) it_fail "--normalize feature with a fixed threshold is refused" "$msg" ;;
esac
