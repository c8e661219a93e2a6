#!/bin/sh
# it_replay_label.sh - replay --label COL takes a column of 0/1 labels
# only: a model feature given as the label column, or a label column with a
# 2 in it, stops the replay (exit 1) naming the column, the first line with
# another value and that value; 0/1 and 0.0/1.0 labels replay with metrics.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
$PYTHON - "$D" <<'PY'
import sys, math, random
d = sys.argv[1]
random.seed(9)
rows = []
for i in range(500):
    rows.append((1577836800 + i, math.sin(i / 15.0) + random.gauss(0, 0.05),
                 0.5 * math.cos(i / 15.0) + random.gauss(0, 0.05), 20 + random.gauss(0, 0.05),
                 1 if 420 <= i < 450 else 0))
def write(name, lab):
    with open("%s/%s.csv" % (d, name), "w") as f:
        f.write("ts,flow,pressure,temp,anomaly\n")
        for i, r in enumerate(rows):
            f.write("%d,%.5f,%.5f,%.5f,%s\n" % (r[:4] + (lab(i, r[4]),)))
write("int", lambda i, y: "%d" % y)
write("float", lambda i, y: "%.1f" % y)
write("two", lambda i, y: "2" if i == 300 else "%d" % y)
PY
"$BIN" train -i "$D/int.csv" -o "$D/m.safetensors" --features flow,pressure,temp --rows 300 \
    --window 10 --arch lstm-ae:8 --epochs 2 --seed 1 -q > /dev/null 2>&1 || { it_fail "train" ""; exit 0; }
R="$BIN replay -m $D/m.safetensors --stream s --calibrate-rows 300 -o /dev/null"
FLOW=$(sed -n 2p "$D/int.csv" | cut -d, -f2)
$R -i "$D/int.csv" --label flow 2> "$D/flow.log"; rc=$?
if [ $rc -eq 1 ] && grep -q "^anomalyd replay: $D/int.csv:2: label column 'flow': not 0 or 1: '$FLOW'$" "$D/flow.log"; then
    it_ok "--label flow (a model feature): exit 1, naming the column, line 2 and its value"
else
    it_fail "--label flow (a model feature): exit 1, naming the column, line 2 and its value" \
        "rc $rc: $(grep -v '^<' "$D/flow.log" | tail -2)"
fi
$R -i "$D/two.csv" --label anomaly 2> "$D/two.log"; rc=$?
if [ $rc -eq 1 ] && grep -q "^anomalyd replay: $D/two.csv:302: label column 'anomaly': not 0 or 1: '2'$" "$D/two.log"; then
    it_ok "a label 2 on line 302: exit 1, naming the line and the value"
else
    it_fail "a label 2 on line 302: exit 1, naming the line and the value" \
        "rc $rc: $(grep -v '^<' "$D/two.log" | tail -2)"
fi
for f in int float; do
    $R -i "$D/$f.csv" --label anomaly 2> "$D/$f.log"; rc=$?
    if [ $rc -eq 0 ] && grep -q "^metrics: TP=" "$D/$f.log"; then
        it_ok "$f 0/1 labels: replayed with metrics"
    else
        it_fail "$f 0/1 labels: replayed with metrics" "rc $rc: $(grep -v '^<' "$D/$f.log" | tail -2)"
    fi
done
exit 0
