#!/bin/sh
# it_demo_kill.sh - tools/demo.sh killed with SIGKILL (no trap runs) once
# its broker and daemon are up leaves nothing behind: its mosquitto, daemon,
# simulator and watcher exit (parent-death signal; as root mosquitto keeps
# its user so the signal is not cleared) and its temporary directory is
# removed (watchdog), within 10 s.
. tests/lib.sh
BUILD=${AD_BUILD:-build}
D=$(mktemp -d /tmp/it_demo_kill.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/tmp"
TMPDIR="$D/tmp" setsid sh tools/demo.sh "$BUILD" --port 0 --seed 1 --duration 60 \
    > "$D/out" 2>&1 & PID=$!
demo_tmp() { ls -d "$D"/tmp/anomalyd-demo.* 2>/dev/null | head -1; }
running() { t=$(demo_tmp); [ -n "$t" ] && [ -s "$t/daemon.log" ] && grep -q "running" "$t/daemon.log"; }
if ! it_wait_until 60 running; then
    it_fail "demo starts" "$(cat "$D/out")"
    kill -KILL $PID 2>/dev/null
    exit 0
fi
T=$(demo_tmp)
kill -KILL $PID
wait $PID 2>/dev/null
left() { ps -eo pid=,args= | grep -F "$T" | grep -v grep; }
gone() { [ -z "$(left)" ]; }
if it_wait_until 10 gone; then
    it_ok "SIGKILL: no process of the demo left (mosquitto, anomalyd)"
else
    it_fail "SIGKILL: no process of the demo left" "$(left)"
    left | awk '{ print $1 }' | xargs -r kill 2>/dev/null
fi
if it_wait_until 10 test ! -e "$T"; then
    it_ok "SIGKILL: the temporary directory is removed"
else
    it_fail "SIGKILL: the temporary directory is removed" "$(ls "$T")"
fi
