#!/bin/sh
# it_demo.sh - `make demo` (tools/demo.sh) as a user runs it, shortened with
# --duration: with random faults (fixed --seed) at least one injected fault is
# alerted, only pumps that had a fault are alerted, and the last line
# (SUMMARY) counts the injected faults; the fault-free run of the same length
# (--no-faults, same seed) calibrates every pump and raises no alert; a
# Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends
# it) stops the demo with status 0. After every run no process of the demo
# is left (same session, or a command line naming its temporary directory)
# and the temporary directory is gone.
#   IT_DEMO_DURATION  seconds per run (default 25: calibration takes ~12 s at
#                     the demo's default speed, the first fault starts within
#                     3 s after it)
. tests/lib.sh
BUILD=${AD_BUILD:-build}
N=${IT_DEMO_DURATION:-25}
SEED=${IT_DEMO_SEED:-1}
D=$(mktemp -d /tmp/it_demo.XXXXXX)
trap 'rm -rf "$D"' EXIT

# leftovers NAME: processes of the run NAME still alive (its session, or a
# command line naming its TMPDIR), one per line
leftovers() {
    sid=$(cat "$D/$1.sid" 2>/dev/null)
    ps -eo sid=,pid=,args= | awk -v s="${sid:-x}" -v d="$D/$1.tmp/" \
        '($1 == s || index($0, d)) && !/awk -v s=/ { print }'
}
# run NAME ARGS...: the demo in its own session, TMPDIR under $D; sets RC
run() {
    name=$1; shift
    mkdir -p "$D/$name.tmp"
    t0=$(date +%s)
    TMPDIR="$D/$name.tmp" timeout -k 5 $((N + 40)) setsid sh -c 'echo $$ > "$0"; exec sh tools/demo.sh "$@"' \
        "$D/$name.sid" "$BUILD" --port 0 --seed "$SEED" "$@" > "$D/$name.out" 2>&1
    RC=$?
    echo $RC > "$D/$name.rc"
    echo "# $name: $(($(date +%s) - t0)) s, exit status $RC"
}
# clean NAME: nothing left behind (processes get up to 5 s to finish exiting)
no_leftovers() { [ -z "$(leftovers "$1")" ]; }
clean() {
    it_wait_until 5 no_leftovers "$1"
    left=$(leftovers "$1")
    if [ -z "$left" ] && [ -z "$(ls -A "$D/$1.tmp")" ]; then
        it_ok "$1: no process and no temporary file left"
    else
        it_fail "$1: no process and no temporary file left" "$left $(ls -A "$D/$1.tmp")"
    fi
}
show() { grep -E ' (FAULT|RAISED|CLEARED|DETECTING|OFFLINE|SUMMARY) ' "$D/$1.out" | sed 's/^/#   /'; }

# The runs with and without faults and the Ctrl-C run are independent (each
# its own broker on a free port, daemon, simulator and TMPDIR): side by
# side, in the time of one (the Ctrl-C run stops while the others go on;
# its cases are reported last).
run faults --duration "$N" & p1=$!
run nofaults --duration "$N" --no-faults & p2=$!

# --- Ctrl-C ------------------------------------------------------------------------------
# a background job of this non-interactive shell would ignore SIGINT (and a
# shell cannot trap a signal ignored on entry): restore it, as a terminal has
mkdir -p "$D/ctrlc.tmp"; : > "$D/ctrlc.out"
TMPDIR="$D/ctrlc.tmp" $PYTHON -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
open(sys.argv[1], "w").write(str(os.getpid()))
os.execvp("sh", ["sh", "tools/demo.sh"] + sys.argv[2:])' \
    "$D/ctrlc.sid" "$BUILD" --port 0 > "$D/ctrlc.out" 2>&1 &
pid=$!
# Ctrl-C in full run: the daemon online and all four pumps' data arriving
# (each announced as a new stream)
it_wait_log "$D/ctrlc.out" ' ONLINE ' 30 && it_wait_log "$D/ctrlc.out" ' NEW ' 30 4 ||
    echo "# ctrlc: the demo did not reach four streams: $(tail -5 "$D/ctrlc.out")"
t0=$(date +%s)
sid=$(cat "$D/ctrlc.sid" 2>/dev/null)
[ -n "$sid" ] && kill -INT "-$sid"
# never hang: TERM after 20 s, KILL after 25 (then the case fails)
it_wait_gone $pid 20 || { kill -TERM $pid 2>/dev/null; it_wait_gone $pid 5; } ||
    kill -KILL $pid 2>/dev/null
wait $pid; CRC=$?
dt=$(($(date +%s) - t0))

wait $p1 $p2

# --- with faults ----------------------------------------------------------------
RC=$(cat "$D/faults.rc" 2>/dev/null || echo 99)
show faults
faulted=$(awk '$2 == "FAULT" && $3 != "END" { print $3 }' "$D/faults.out" | sort -u)
raised=$(awk '$2 == "RAISED" { print $3 }' "$D/faults.out" | sort -u)
[ $RC -eq 0 ] && it_ok "faults: exit status 0 after --duration $N" ||
    it_fail "faults: exit status 0 after --duration $N" "rc=$RC $(tail -20 "$D/faults.out")"
hit=0 stray=
for s in $raised; do
    if echo "$faulted" | grep -qx "$s"; then hit=$((hit + 1)); else stray="$stray $s"; fi
done
if [ $hit -ge 1 ] && [ -z "$stray" ]; then
    it_ok "faults: an injected fault is alerted ($hit faulty pump(s) alerted, no healthy one)"
else
    it_fail "faults: an injected fault is alerted ($hit faulty pump(s) alerted, no healthy one)" \
        "faulted: $faulted; alerted without a fault:$stray; $(cat "$D/faults.out")"
fi
# the SUMMARY accounts for every fault the simulator announced
nf=$(awk '$2 == "FAULT" && $3 != "END"' "$D/faults.out" | wc -l)
case $nf in 0) want="no fault injected" ;; 1) want="1 fault injected: " ;; *) want="$nf faults injected: " ;; esac
grep ' SUMMARY ' "$D/faults.out" | grep -qF "; $want" &&
    it_ok "faults: the SUMMARY line counts the $nf injected fault(s)" ||
    it_fail "faults: the SUMMARY line counts the $nf injected fault(s)" "$(grep ' SUMMARY ' "$D/faults.out")"
grep -q ' OFFLINE ' "$D/faults.out" && it_ok "faults: the daemon stopped cleanly (offline status printed)" ||
    it_fail "faults: the daemon stopped cleanly (offline status printed)" "$(tail -5 "$D/faults.out")"
clean faults

# --- without faults ---------------------------------------------------------------
RC=$(cat "$D/nofaults.rc" 2>/dev/null || echo 99)
show nofaults
ndet=$(grep -c ' DETECTING ' "$D/nofaults.out")
nraised=$(grep -c ' RAISED ' "$D/nofaults.out")
nfault=$(grep -c ' FAULT ' "$D/nofaults.out")
[ $RC -eq 0 ] && it_ok "no faults: exit status 0" || it_fail "no faults: exit status 0" "rc=$RC"
if [ "$ndet" -eq 4 ] && [ "$nraised" -eq 0 ] && [ "$nfault" -eq 0 ]; then
    it_ok "no faults: all 4 pumps calibrated, no alert in $N s"
else
    it_fail "no faults: all 4 pumps calibrated, no alert in $N s" \
        "detecting=$ndet raised=$nraised faults=$nfault; $(cat "$D/nofaults.out")"
fi
clean nofaults

# --- Ctrl-C (run above) ----------------------------------------------------------------
echo "# ctrlc: stopped in $dt s, exit status $CRC"
if [ $CRC -eq 0 ] && grep -q ' OFFLINE ' "$D/ctrlc.out" && [ $dt -le 15 ]; then
    it_ok "Ctrl-C: everything stops in order (daemon offline), exit status 0"
else
    it_fail "Ctrl-C: everything stops in order (daemon offline), exit status 0" \
        "rc=$CRC after $dt s; $(cat "$D/ctrlc.out")"
fi
clean ctrlc
exit 0
