#!/bin/sh
# make_model.sh - regenerate the bundled pretrained model
# conf/models/pump.safetensors, reproducibly, from data the project
# generates itself:
#
#   1. tools/pumpsim.py writes 5 days of normal operation (1 sample/min) for
#      each of 4 simulated pumps (seeds 1..4: small manufacturing spread,
#      daily load cycles, noise), concatenated into one CSV;
#   2. `anomalyd train` fits a standard scaler and an LSTM autoencoder
#      LSTM(32) -> RepeatVector(30) -> LSTM(32, seq) -> per-step Dense(5),
#      windows of 30 samples (hop 2), MAE loss, Adam, early stopping on the
#      last 10% (in time) of the windows, seed 1;
#   3. with --check, scores a different pump (seed 7) with each injectable
#      fault (tools/pumpsim.py) and prints the mean reconstruction error
#      (MAE) of normal and faulty windows, their ratio, and the share of
#      windows above 1.5 x the training q99 (the default calibration).
#
# SOURCE_DATE_EPOCH is fixed, so the metadata carries no wall-clock
# figures: the same machine (and BLAS build) gives the same file, byte for
# byte (the last line prints its sha256).
#
#   sh tools/make_model.sh [--check] [BUILD] [OUT]
#      BUILD defaults to build, OUT to conf/models/pump.safetensors
set -eu
CHECK=0
if [ "${1:-}" = "--check" ]; then CHECK=1; shift; fi
BUILD=${1:-build}
OUT=${2:-conf/models/pump.safetensors}
PYTHON=${PYTHON:-/usr/bin/python3}
BIN="$BUILD/anomalyd"
SIM="tools/pumpsim.py"
[ -x "$BIN" ] || { echo "make_model.sh: $BIN not built (run make)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

for s in 1 2 3 4; do
    "$PYTHON" "$SIM" --seed "$s" --days 7 --out "$TMP/p$s.csv"
done
{ cat "$TMP/p1.csv"; for s in 2 3 4; do tail -n +2 "$TMP/p$s.csv"; done; } > "$TMP/pump_normal.csv"

mkdir -p "$(dirname "$OUT")"
SOURCE_DATE_EPOCH=1767225600 OPENBLAS_NUM_THREADS=1 "$BIN" train \
    --input "$TMP/pump_normal.csv" --output "$OUT" \
    --features vibration,current,pressure,temperature,flow \
    --scaler standard --window 30 --hop 2 --arch lstm-ae:32 \
    --loss mae --metric mae --epochs 60 --batch 32 --lr 0.001 --clip 1 \
    --val-frac 0.1 --patience 5 --seed 1 ${VERBOSE:+--verbose}

if [ "$CHECK" = 1 ]; then
    for f in bearing cavitation blockage overheat stuck spike; do
        "$PYTHON" "$SIM" --seed 7 --days 3 --fault "$f@36h+12h" --label --out "$TMP/f_$f.csv"
        OPENBLAS_NUM_THREADS=1 "$BIN" score --model "$OUT" --input "$TMP/f_$f.csv" \
            --metric mae > "$TMP/s_$f.txt"
    done
    "$BIN" info --model "$OUT" | sed -n 's/^training: *//p' > "$TMP/training.json"
    "$PYTHON" - "$TMP" <<'EOF'
import csv, json, sys
d = sys.argv[1]
tr = json.load(open(d + "/training.json"))
e = tr["error"]
thr = 1.5 * e["q99"]
print("training MAE per window: mean %.4f q99 %.4f max %.4f; "
      "threshold 1.5 x q99 = %.4f" % (e["mean"], e["q99"], e["max"], thr))
print("%-11s %8s %8s %6s %9s %9s" % ("fault", "normal", "faulty", "ratio",
                                     "detected", "false+"))
for f in ["bearing", "cavitation", "blockage", "overheat", "stuck", "spike"]:
    lab = [int(r["anomaly"]) for r in csv.DictReader(open("%s/f_%s.csv" % (d, f)))]
    n, a = [], []
    for line in open("%s/s_%s.txt" % (d, f)):
        i, err = line.split()
        (a if lab[int(i)] else n).append(float(err))
    mn, ma = sum(n) / len(n), sum(a) / len(a)
    print("%-11s %8.4f %8.4f %5.1fx %8.1f%% %8.1f%%" % (
        f, mn, ma, ma / mn, 100.0 * sum(x > thr for x in a) / len(a),
        100.0 * sum(x > thr for x in n) / len(n)))
EOF
fi
sha256sum "$OUT"
