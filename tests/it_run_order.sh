#!/bin/sh
# it_run_order.sh - tests/run.sh starts the slowest tests first (a long test
# started last runs on alone at the end of the suite) and still prints the
# outputs, and counts them, in listing order. Five stand-in unit tests in a
# build dir of their own, one at a time (JOBS=1: the launch order is the
# order they record):
#  1. by the times of BUILD/test-times.txt; a test it does not know counts
#     as 10 s (before a known 0.3 s, after a known 30 s)
#  2. without BUILD/test-times.txt, by those of AD_TEST_TIMES
. tests/lib.sh
D=$(mktemp -d /tmp/it_run_order.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir "$D/tests"
for n in a b c d e; do
    {
        echo '#!/bin/sh'
        echo "echo $n >> '$D/launch'"
        if [ "$n" = e ]; then echo 'echo "not ok - e fails"; exit 1'; else echo "echo 'ok - $n'"; fi
    } > "$D/tests/test_zzord_$n"
    chmod +x "$D/tests/test_zzord_$n"
done
printf '    30.0 test_zzord_c\n     0.3 test_zzord_e\n     0.2 test_zzord_b\n     0.1 test_zzord_a\n' \
    > "$D/test-times.txt"

# run: the stand-ins through tests/run.sh; sets out (the launch order) and
# seen (the output's test names and summary line)
run() {
    rm -f "$D/launch"
    TESTS=test_zzord_ JOBS=1 sh tests/run.sh "$D" > "$D/out" 2>&1
    rc=$?
    out=$(tr '\n' ' ' < "$D/launch")
    seen=$(grep -e '^== ' -e 'passed, ' "$D/out" | tr '\n' ' ')
}
expect_seen="== test_zzord_a == test_zzord_b == test_zzord_c == test_zzord_d == test_zzord_e 4 passed, 1 failed, 0 skipped "

run
if [ "$out" = "c d e b a " ]; then
    it_ok "the slowest first by BUILD/test-times.txt, an unknown one as 10 s ($out)"
else
    it_fail "the slowest first by BUILD/test-times.txt, an unknown one as 10 s" \
        "launched: $out (c d e b a asked)"
fi
if [ "$seen" = "$expect_seen" ] && [ "$rc" -eq 1 ]; then
    it_ok "outputs and counts in listing order, the failure counted (status $rc)"
else
    it_fail "outputs and counts in listing order, the failure counted" "status $rc: $(cat "$D/out")"
fi

rm -f "$D/test-times.txt"
printf '    50.0 test_zzord_a\n    40.0 test_zzord_e\n' > "$D/other-times.txt"
AD_TEST_TIMES="$D/other-times.txt"
export AD_TEST_TIMES
run
if [ "$out" = "a e b c d " ] && [ "$seen" = "$expect_seen" ]; then
    it_ok "without BUILD/test-times.txt, by AD_TEST_TIMES ($out), outputs in listing order"
else
    it_fail "without BUILD/test-times.txt, by AD_TEST_TIMES" \
        "launched: $out (a e b c d asked); $(cat "$D/out")"
fi
