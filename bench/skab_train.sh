#!/bin/sh
# skab_train.sh - the SKAB run of `anomalyd train`: for each of the 34 SKAB
# experiment files, train a model on its first 400 rows (the published
# protocol's training part), score every window of the file with
# `anomalyd score`, and compare the reconstruction error (MAE per window,
# window labelled by its last row) on the normal and the anomalous rows of
# the test part (rows 400..). Prints one line per file (training time,
# epochs, mean error on normal / anomalous test rows, their ratio) and a
# summary.
#
#   sh bench/skab_train.sh [BUILD] [-- extra anomalyd train options]
#   SKAB=../shared/data/skab (beside the checkout) by default; the data is read in place.
#
# Settings: window 10 (as the published LSTM-AE baseline), standard scaler,
# MAE loss, lstm-ae:32, patience 5, seed 1; override or add any with
# extra options after "--".
BUILD=${1:-build}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
SKAB=${SKAB:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/skab}
PYTHON=${PYTHON:-/usr/bin/python3}
BIN="$BUILD/anomalyd"
export OPENBLAS_NUM_THREADS=1
[ -x "$BIN" ] || { echo "skab_train.sh: $BIN not built" >&2; exit 1; }
[ -d "$SKAB" ] || { echo "skab_train.sh: no SKAB data at $SKAB" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
: > "$TMP/results"
k=0
for f in "$SKAB"/valve1/*.csv "$SKAB"/valve2/*.csv "$SKAB"/other/*.csv; do
    [ -f "$f" ] || continue
    name=$(echo "$f" | sed "s|$SKAB/||")
    t0=$(date +%s.%N)
    if ! "$BIN" train --input "$f" --output "$TMP/m.safetensors" --rows 400 \
            --window 10 --loss mae --arch lstm-ae:32 --seed 1 --quiet "$@" \
            2> "$TMP/err"; then
        echo "$name: train failed: $(cat "$TMP/err")"
        continue
    fi
    t1=$(date +%s.%N)
    k=$((k + 1))
    "$BIN" score --model "$TMP/m.safetensors" --input "$f" --metric mae > "$TMP/score.$k" || continue
    epochs=$("$BIN" info --model "$TMP/m.safetensors" | sed -n 's/.*"epochs_run":\([0-9]*\).*/\1/p')
    echo "$name $(echo "$t1 - $t0" | bc -l) $epochs $f $TMP/score.$k" >> "$TMP/results"
done

"$PYTHON" - "$TMP/results" <<'EOF'
import csv, sys
rows = [l.split() for l in open(sys.argv[1])]
print("%-16s %7s %6s %9s %9s %6s" % ("file", "train s", "epochs", "normal", "anomal.", "ratio"))
times, ratios, gaps = [], [], []
pool_n, pool_a = [], []
for name, secs, epochs, path, score in rows:
    lab = [float(r["anomaly"]) for r in csv.DictReader(open(path), delimiter=";")]
    n, a = [], []
    for line in open(score):
        i, e = line.split()
        i = int(i)
        if i < 400:
            continue
        (a if lab[i] >= 0.5 else n).append(float(e))
    if not n or not a:
        print("%-16s no normal or no anomalous test rows" % name)
        continue
    mn, ma = sum(n) / len(n), sum(a) / len(a)
    pool_n += n
    pool_a += a
    times.append(float(secs))
    ratios.append(ma / mn)
    print("%-16s %7.2f %6s %9.4f %9.4f %5.2fx" % (name, float(secs), epochs, mn, ma, ma / mn))
if ratios:
    rs = sorted(ratios)
    print("files %d: training time mean %.2f s (max %.2f s); error ratio "
          "anomalous/normal median %.2fx, min %.2fx, max %.2fx; higher on the "
          "anomalous rows in %d of %d files; pooled means normal %.4f anomalous %.4f"
          % (len(ratios), sum(times) / len(times), max(times), rs[len(rs) // 2],
             rs[0], rs[-1], sum(r > 1 for r in ratios), len(ratios),
             sum(pool_n) / len(pool_n), sum(pool_a) / len(pool_a)))
EOF
