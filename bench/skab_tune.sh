#!/bin/sh
# skab_tune.sh - choose SKAB settings on the tuning split (valve1, 16 files)
# only: trains one model per valve1 file (first 400 rows) with TRAIN_ARGS,
# then bench/skab_search.py searches the replay settings on those files and
# appends every setting tried, with its valve1 F1/FAR/MAR, to
# bench/tuning_log.tsv (commit that log). This script reads nothing but
# SKAB/valve1: the held-out folders (valve2, other) are run by `make eval`
# with the committed settings (bench/eval_settings.json), once per change.
#
#   sh bench/skab_tune.sh [BUILD] [-- skab_search.py options, e.g. --grid full]
#   TRAIN_ARGS="..." FEATURES="..." sh bench/skab_tune.sh   (defaults: the
#   "skab" block of bench/eval_settings.json)
#   WORK=DIR keeps the models (SKIP_TRAIN=1 reuses them)
BUILD=${1:-${AD_BUILD:-build}}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
BIN=${AD_BIN:-$BUILD/anomalyd}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
SKAB=${SKAB:-$(cd "$HERE/../.." && pwd)/shared/data/skab}
[ -d "$SKAB" ] || SKAB=$(cd "$HERE/../../.." && pwd)/shared/data/skab
V1="$SKAB/valve1"
setting() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["skab"][sys.argv[2]])' \
    "$HERE/eval_settings.json" "$1"; }
TRAIN_ARGS=${TRAIN_ARGS:-$(setting train_args)}
FEATURES=${FEATURES-$(setting features)}
ROWS=$(setting train_rows)
export OPENBLAS_NUM_THREADS=1 AD_BIN="$BIN"
[ -x "$BIN" ] || { echo "skab_tune.sh: $BIN not built (run make)" >&2; exit 1; }
[ -d "$V1" ] || { echo "skab_tune.sh: no SKAB valve1 folder at $V1" >&2; exit 1; }
if [ -n "${WORK:-}" ]; then
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT INT TERM
fi
for f in "$V1"/*.csv; do
    m="$WORK/valve1_$(basename "$f" .csv).safetensors"
    [ -n "${SKIP_TRAIN:-}" ] && [ -f "$m" ] && continue
    # shellcheck disable=SC2086
    "$BIN" train -i "$f" -o "$m" --rows "$ROWS" ${FEATURES:+--features "$FEATURES"} $TRAIN_ARGS -q \
        || { echo "skab_tune.sh: training failed on $f" >&2; exit 1; }
done
nice "$PYTHON" "$HERE/skab_search.py" "$WORK" --valve1 "$V1" --bin "$BIN" \
    --train-args "$TRAIN_ARGS --features $FEATURES" "$@"
