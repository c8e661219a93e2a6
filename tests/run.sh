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
# (wall seconds, to keep the suite's time in view; a full run writes every
# test's time to BUILD/test-times.txt, slowest first). Exit status 1 if
# anything failed.
#
#   sh tests/run.sh [BUILD]     (BUILD defaults to build)
#   TESTS=pattern sh tests/run.sh   run only matching tests
#   JOBS=n sh tests/run.sh          n tests at a time (default 4, at most 999)
# The slowest tests are started first (a long test started last would run
# on alone at the end), by the times of the last full run in
# BUILD/test-times.txt, else of AD_TEST_TIMES (make check passes make test's),
# else of tests/test-times.txt (committed, for a clean clone's first run: a
# copy of a full run's BUILD/test-times.txt, to renew when the slowest
# change); outputs are still printed in listing order.
# An interrupt (Ctrl-C, SIGTERM, SIGHUP) stops the tests still running, and
# what they started, and ends the run without a count (status 130, 143, 129).
BUILD=${1:-build}
export AD_BUILD="$BUILD" AD_BIN="$BUILD/anomalyd" AD_SRCDIR="$(pwd)"
export PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1
pass=0
fail=0
skip=0
skips=$(mktemp)
times=$(mktemp)

# Tests run JOBS at a time (default 4; JOBS=1: one after the other), each
# into its own output file; outputs are printed and counted in the order
# the tests are listed, each as soon as it and those before it are done.
# Four on two cores: most integration tests wait (for brokers, Kafka
# rebalances, paced data) far more than they compute; a full run used 0.7
# of one core at four.
JOBS=${JOBS:-4}
# 1..999, no leading zero ("00" passed a test against 0 and never ran one)
case "$JOBS" in ''|*[!0-9]*|0*|????*) echo "tests/run.sh: JOBS must be a positive integer below 1000 (got '$JOBS')" >&2; exit 2 ;; esac
dir=$(mktemp -d)
trap 'rm -rf "$dir" "$skips" "$times"' EXIT
total=0
printed=0

# Each test runs in a session of its own (setsid), so that an interrupt
# stops it with what it started (daemons, brokers): a test in the
# background ignores the terminal's SIGINT, and would otherwise run on,
# unseen, after the runner is gone.
SETSID=
setsid -w true </dev/null >/dev/null 2>&1 && SETSID="setsid -w"
interrupted() {
    j=$printed
    while [ "$j" -lt "$total" ]; do
        if [ ! -f "$dir/$j.done" ]; then
            [ -f "$dir/$j.sub" ] && kill -TERM "$(cat "$dir/$j.sub")" 2>/dev/null
            if [ -f "$dir/$j.pid" ]; then
                tp=$(cat "$dir/$j.pid")
                kill -TERM "-$tp" 2>/dev/null || kill -TERM "$tp" 2>/dev/null
            fi
        fi
        j=$((j + 1))
    done
    echo "tests/run.sh: interrupted; the tests still running were stopped" >&2
    rm -rf "$dir" "$skips" "$times"
    exit "$1"
}
trap 'interrupted 130' INT
trap 'interrupted 143' TERM
trap 'interrupted 129' HUP

# run_bg I: run test I in the background, KIND (bin or sh) and PATH from
# its files (account() and collect() use variables of their own: sh has no
# local ones)
run_bg() {
    i=$1
    kind=$(cat "$dir/$i.kind")
    tpath=$(cat "$dir/$i.path")
    : >"$dir/$i.run"
    (
        t0=$(date +%s%N)
        if [ "$kind" = sh ]; then
            $SETSID sh "$tpath" >"$dir/$i.out" 2>&1 &
        else
            $SETSID "$tpath" >"$dir/$i.out" 2>&1 &
        fi
        echo $! >"$dir/$i.pid"
        wait $!
        echo $? >"$dir/$i.rc"
        t1=$(date +%s%N)
        echo "$(( (t1 - t0) / 1000000 )) $(cat "$dir/$i.name")" >"$dir/$i.ms"
        rm -f "$dir/$i.run"
        : >"$dir/$i.done"
    ) </dev/null &
    echo $! >"$dir/$i.sub"
}

# account I: print test I's output and count its lines
account() {
    ai=$1
    aname=$(cat "$dir/$ai.name")
    rc=$(cat "$dir/$ai.rc")
    echo "== $aname"
    cat "$dir/$ai.out"
    cat "$dir/$ai.ms" >> "$times"
    p=$(grep '^ok ' "$dir/$ai.out" | grep -vc '# *SKIP')
    f=$(grep -c '^not ok ' "$dir/$ai.out")
    s=$(grep -c -e '^skip - ' -e '^ok .*# *SKIP' "$dir/$ai.out")
    grep -e '^skip - ' -e '^ok .*# *SKIP' "$dir/$ai.out" | sed "s|^|  $aname: |" >> "$skips"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $aname exited with status $rc"
        f=1
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        if [ "$s" -eq 0 ]; then
            echo "not ok - $aname ran no test case"
            f=1
        else
            echo "# $aname: every case skipped ($s)"
        fi
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    skip=$((skip + s))
    rm -f "$dir/$ai".*
}

# collect: account every finished test whose predecessors (in listing
# order) are accounted
collect() {
    while [ "$printed" -lt "$total" ] && [ -f "$dir/$printed.done" ]; do
        account "$printed"
        printed=$((printed + 1))
    done
}

# running: the number of tests launched and not yet finished
running() {
    set -- "$dir"/*.run
    if [ -e "$1" ]; then echo $#; else echo 0; fi
}

# list_one KIND PATH: add a test (in listing order) unless TESTS leaves it out
list_one() {
    name=$(basename "$2")
    case "$name" in *${TESTS:-}*) ;; *) return ;; esac
    echo "$name" >"$dir/$total.name"
    echo "$1" >"$dir/$total.kind"
    echo "$2" >"$dir/$total.path"
    echo "$total $name" >>"$dir/list"
    total=$((total + 1))
}

: >"$dir/list"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    list_one bin "$t"
done
for t in tests/it_*.sh; do
    [ -f "$t" ] || continue
    list_one sh "$t"
done

# The launch order: slowest first by the first of the times files that
# knows the test ("  SECONDS NAME" lines); one none knows counts as 10 s
# (a new test: more than most, less than the slow ones). Ties keep
# listing order.
for f in "$BUILD/test-times.txt" "${AD_TEST_TIMES:-}" tests/test-times.txt; do
    [ -n "$f" ] && [ -f "$f" ] && cat "$f"
done >"$dir/known"
awk 'FILENAME == ARGV[1] { if (!($2 in t)) t[$2] = $1; next }
     { print (($2 in t) ? t[$2] : 10), $1 }' "$dir/known" "$dir/list" |
    sort -k1,1nr -k2,2n | awk '{ print $2 }' >"$dir/order"

for i in $(cat "$dir/order"); do
    # a free slot: fewer than JOBS launched and not yet finished
    while :; do
        collect
        [ "$(running)" -lt "$JOBS" ] && break
        sleep 0.2
    done
    run_bg "$i"
done
while [ "$printed" -lt "$total" ]; do
    collect
    [ "$printed" -lt "$total" ] && sleep 0.2
done

if [ "$skip" -gt 0 ]; then
    echo "skipped:"
    cat "$skips"
fi
echo "slowest (s):"
sort -rn "$times" | awk '{ printf "  %7.1f %s\n", $1 / 1000, $2 }' > "$times.all"
head -10 "$times.all"
[ -z "${TESTS:-}" ] && cp "$times.all" "$BUILD/test-times.txt" 2>/dev/null
rm -f "$times.all"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
