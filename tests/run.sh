#!/bin/sh
# Test runner: runs every unit test binary in BUILD/tests and every
# integration script tests/it_*.sh, counts the "ok"/"not ok" lines they
# print, and ends with "N passed, N failed". A binary or script that exits
# non-zero without reporting a failing case counts as one failure (a crash
# must never look like success). Exit status 1 if anything failed.
#
#   sh tests/run.sh [BUILD]     (BUILD defaults to build)
#   TESTS=pattern sh tests/run.sh   run only matching tests
BUILD=${1:-build}
export AD_BUILD="$BUILD" AD_BIN="$BUILD/anomalyd" AD_SRCDIR="$(pwd)"
export PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1
pass=0
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run_one() {
    name=$1; shift
    case "$name" in *${TESTS:-}*) ;; *) return ;; esac
    echo "== $name"
    "$@" >"$out" 2>&1
    rc=$?
    cat "$out"
    p=$(grep -c '^ok ' "$out")
    f=$(grep -c '^not ok ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name exited with status $rc"
        f=1
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name ran no test case"
        f=1
    fi
    pass=$((pass + p))
    fail=$((fail + f))
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/it_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" sh "$t"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
