#!/bin/sh
# Test runner: runs every unit test binary in BUILD/tests and every
# integration script tests/it_*.sh, counts the lines they print and ends
# with "N passed, N failed, N skipped".
#
# A case reports one line:
#   ok - NAME                 passed
#   not ok - NAME             failed (details follow, indented)
#   skip - NAME: REASON       not run, and why (never counted as a pass)
# A TAP-style "ok - NAME # SKIP REASON" counts as a skip too, so no skip can
# pass for a success. A binary or script that exits non-zero without
# reporting a failing case counts as one failure (a crash must never look
# like success); one that reports no case at all is a failure too, unless it
# reported skips (then it is listed as skipped entirely). Every skip is
# repeated, with its reason, at the end, and so are the ten slowest tests
# (wall seconds, to keep the suite's time in view). Exit status 1 if
# anything failed.
#
#   sh tests/run.sh [BUILD]     (BUILD defaults to build)
#   TESTS=pattern sh tests/run.sh   run only matching tests
BUILD=${1:-build}
export AD_BUILD="$BUILD" AD_BIN="$BUILD/anomalyd" AD_SRCDIR="$(pwd)"
export PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1
pass=0
fail=0
skip=0
out=$(mktemp)
skips=$(mktemp)
times=$(mktemp)
trap 'rm -f "$out" "$skips" "$times"' EXIT

run_one() {
    name=$1; shift
    case "$name" in *${TESTS:-}*) ;; *) return ;; esac
    echo "== $name"
    t0=$(date +%s%N)
    "$@" >"$out" 2>&1
    rc=$?
    t1=$(date +%s%N)
    cat "$out"
    echo "$(( (t1 - t0) / 1000000 )) $name" >> "$times"
    p=$(grep '^ok ' "$out" | grep -vc '# *SKIP')
    f=$(grep -c '^not ok ' "$out")
    s=$(grep -c -e '^skip - ' -e '^ok .*# *SKIP' "$out")
    grep -e '^skip - ' -e '^ok .*# *SKIP' "$out" | sed "s|^|  $name: |" >> "$skips"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name exited with status $rc"
        f=1
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        if [ "$s" -eq 0 ]; then
            echo "not ok - $name ran no test case"
            f=1
        else
            echo "# $name: every case skipped ($s)"
        fi
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    skip=$((skip + s))
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/it_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" sh "$t"
done

if [ "$skip" -gt 0 ]; then
    echo "skipped:"
    cat "$skips"
fi
echo "slowest (s):"
sort -rn "$times" | head -10 | awk '{ printf "  %7.1f %s\n", $1 / 1000, $2 }'
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
