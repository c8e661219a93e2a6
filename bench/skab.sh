#!/bin/sh
# skab.sh - the SKAB benchmark protocol end to end with anomalyd's own tools.
#
# For each of the 34 SKAB experiment files (valve1/*, valve2/*, other/*):
#   1. `anomalyd train` on the first 400 rows (the training part),
#   2. `anomalyd replay` of the whole file: the windows ending in the first
#      400 rows calibrate the threshold, the rest is detected,
#   3. point metrics over the test part only (rows >= 400, SKAB protocol),
# then TP/FP/FN/TN are pooled over the 34 files and F1, FAR, MAR printed
# beside the published leaderboard. The same configuration for every file;
# the test labels are only used for the final counts.
#
#   sh bench/skab.sh [BUILD]
#   SKAB=/path/to/skab TRAIN_ARGS="..." REPLAY_ARGS="..." sh bench/skab.sh
#   SETS="valve1" sh bench/skab.sh     only some folders (tuning split)
#
# SKAB data: ../shared/data/skab beside the checkout (GPL, read-only; never copied into the
# repository). Models and per-file outputs go to $WORK (default a temporary
# directory; kept when WORK is given, so replay settings can be re-run
# against the same models with SKIP_TRAIN=1).
BUILD=${1:-${AD_BUILD:-build}}
BIN=${AD_BIN:-$BUILD/anomalyd}
SKAB=${SKAB:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/skab}
TRAIN_ROWS=${TRAIN_ROWS:-400}     # the SKAB training part (metrics from here on)
FIT_ROWS=${FIT_ROWS:-$TRAIN_ROWS}   # rows the model is fitted on (<= TRAIN_ROWS)
CALIB_FROM=${CALIB_FROM:-0}         # first row whose window may calibrate
# Model inputs: every sensor but the two thermal ones (Temperature,
# Thermocouple), which drift between the start and the end of an experiment
# (docs/pipeline.md, "SKAB results"). FEATURES="" trains on all columns.
# Defaults: the "skab" block of bench/eval_settings.json (the settings of
# `make eval`, chosen on valve1 only; bench/skab_tune.sh, bench/tuning_log.tsv).
setting() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["skab"][sys.argv[2]])' \
    "$(dirname "$0")/eval_settings.json" "$1"; }
FEATURES=${FEATURES-$(setting features)}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# The documented configuration (docs/evaluation.md), the same for every file.
TRAIN_ARGS=${TRAIN_ARGS:-$(setting train_args)}
REPLAY_ARGS=${REPLAY_ARGS:-$(setting replay_args)}

if [ ! -d "$SKAB" ]; then
    echo "skab.sh: SKAB data not found at $SKAB" >&2
    exit 1
fi
if [ ! -x "$BIN" ]; then
    echo "skab.sh: $BIN not built (run make)" >&2
    exit 1
fi
if [ -n "${WORK:-}" ]; then
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

echo "train:  anomalyd train --rows $FIT_ROWS${FEATURES:+ --features \"$FEATURES\"} $TRAIN_ARGS"
echo "replay: anomalyd replay --calibrate-rows $TRAIN_ROWS --calibrate-from $CALIB_FROM --exclude-calibration --label anomaly $REPLAY_ARGS"
TP=0; FP=0; FN=0; TN=0; n=0
for f in $(for s in ${SETS:-valve1 valve2 other}; do ls "$SKAB/$s"/*.csv; done); do
    [ -f "$f" ] || continue
    name=$(echo "$f" | sed "s|$SKAB/||; s|/|_|g; s|\.csv$||")
    model="$WORK/$name.safetensors"
    if [ -z "${SKIP_TRAIN:-}" ] || [ ! -f "$model" ]; then
        # shellcheck disable=SC2086
        # (the feature list is passed as one argument: names contain spaces)
        if [ -n "$FEATURES" ]; then
            set -- --features "$FEATURES"
        else
            set --
        fi
        if ! "$BIN" train -i "$f" -o "$model" --rows "$FIT_ROWS" "$@" $TRAIN_ARGS -q \
                2> "$WORK/$name.train.log"; then
            echo "skab.sh: training failed on $f:"; cat "$WORK/$name.train.log"
            exit 1
        fi
    fi
    # shellcheck disable=SC2086
    if ! "$BIN" replay -m "$model" -i "$f" --calibrate-rows "$TRAIN_ROWS" \
            --calibrate-from "$CALIB_FROM" --exclude-calibration --label anomaly --stream "$name" $REPLAY_ARGS \
            -o "$WORK/$name.out.csv" -e "$WORK/$name.events.jsonl" \
            2> "$WORK/$name.replay.log"; then
        echo "skab.sh: replay failed on $f:"; cat "$WORK/$name.replay.log"
        exit 1
    fi
    line=$(grep '^metrics:' "$WORK/$name.replay.log")
    set -- $(echo "$line" | sed 's/.*TP=\([0-9]*\) FP=\([0-9]*\) FN=\([0-9]*\) TN=\([0-9]*\).*/\1 \2 \3 \4/')
    TP=$((TP + $1)); FP=$((FP + $2)); FN=$((FN + $3)); TN=$((TN + $4)); n=$((n + 1))
    [ -n "${VERBOSE:-}" ] && echo "$name: $line"
done
awk -v tp=$TP -v fp=$FP -v fn=$FN -v tn=$TN -v n=$n 'BEGIN {
    f1 = tp / (tp + (fp + fn) / 2); far = 100 * fp / (fp + tn); mar = 100 * fn / (fn + tp);
    printf "files %d, pooled test rows %d: TP=%d FP=%d FN=%d TN=%d\n", n, tp+fp+fn+tn, tp, fp, fn, tn;
    printf "\n| method | F1 | FAR %% | MAR %% |\n|---|---|---|---|\n";
    printf "| **anomalyd (this run)** | **%.2f** | **%.2f** | **%.2f** |\n", f1, far, mar;
    print "| Conv-AE (published) | 0.78 | 13.55 | 28.02 |";
    print "| MSET (published) | 0.78 | 39.73 | 14.13 |";
    print "| T2+Q (PCA) (published) | 0.76 | 26.62 | 24.92 |";
    print "| LSTM-AE (published) | 0.74 | 29.96 | 25.92 |";
    print "| T2 (published) | 0.66 | 19.21 | 42.60 |";
    print "| Vanilla LSTM (published) | 0.54 | 12.54 | 59.53 |";
    print "| Vanilla AE (published) | 0.39 | 2.59 | 75.15 |";
    print "| Isolation Forest (published) | 0.29 | 2.56 | 82.89 |";
    printf "\nSKAB_F1=%.4f SKAB_FAR=%.2f SKAB_MAR=%.2f\n", f1, far, mar;
}'
