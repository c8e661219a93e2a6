#!/bin/sh
# it_daemon_notify.sh - systemd notification protocol, checked with a fake
# NOTIFY_SOCKET: READY=1 after connecting, WATCHDOG=1 at half of
# WATCHDOG_USEC, RELOADING=1 with MONOTONIC_USEC then READY=1 around a
# SIGHUP reload, STATUS= lines, STOPPING=1 on SIGTERM.
. tests/lib.sh
D=$(mktemp -d /tmp/it_daemon_notify.XXXXXX)
DPID= ; NPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
    [ -n "$NPID" ] && kill "$NPID" 2>/dev/null
    it_broker_stop
    rm -rf "$D"
}
trap cleanup EXIT
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-notify", "stats_interval_s": 0.5},
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "topics": ["sensors/+/pump"]}]}
EOC
# The fake notify socket: each datagram one line in notify.log, and the
# same line with its arrival time (monotonic seconds) in notify.times.
$PYTHON -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1] + ".tmp")
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
tim = open(sys.argv[3], "a", buffering=1)
while True:
    m = s.recv(4096).decode().replace("\n", " | ")
    tim.write("%.4f %s\n" % (time.monotonic(), m))
    out.write(m + "\n")
' "$D/notify.sock" "$D/notify.log" "$D/notify.times" & NPID=$!
it_wait_file "$D/notify.sock" 10 || { it_fail "fake notify socket" "not bound"; exit 1; }
L="$D/notify.log"
NOTIFY_SOCKET="$D/notify.sock" WATCHDOG_USEC=400000 $AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
# connected and ready, a few watchdog pings, then a reload; after its
# READY=1, more pings, then the stop
it_wait_log "$L" '^READY=1' 15 && it_wait_log "$L" '^WATCHDOG=1' 10 4
kill -HUP "$DPID"
it_wait_log "$L" '^READY=1' 15 2 && it_wait_log "$L" '^WATCHDOG=1' 10 12
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
it_wait_log "$L" '^STOPPING=1' 5
grep -q '^READY=1' "$L" && it_ok "READY=1" || it_fail "READY=1" "$(cat "$L")"
# the median interval between pings, against half of WATCHDOG_USEC (0.2 s)
wd=$(awk '$2 == "WATCHDOG=1" { if (p) print $1 - p; p = $1 }' "$D/notify.times" | sort -n |
     awk '{ v[NR] = $1 } END { if (NR >= 7) printf "%.3f %d", v[int((NR + 1) / 2)], NR + 1 }')
set -- $wd
if [ -n "$wd" ] && awk -v m="$1" 'BEGIN { exit !(m >= 0.15 && m <= 0.3) }'; then
    it_ok "WATCHDOG=1 every 200 ms (median interval $1 s over $2 pings)"
else
    it_fail "WATCHDOG=1 every 200 ms" "median interval and pings: '$wd'; $(cat "$D/notify.times")"
fi
grep -q '^RELOADING=1 | MONOTONIC_USEC=[0-9][0-9]*' "$L" &&
    awk '/^RELOADING=1/ {r=NR} /^READY=1/ && r && NR > r {ok=1} END {exit !ok}' "$L" &&
    it_ok "RELOADING=1 with MONOTONIC_USEC, then READY=1" ||
    it_fail "RELOADING=1 with MONOTONIC_USEC, then READY=1" "$(cat "$L")"
grep -q '^STATUS=' "$L" && it_ok "STATUS= lines" || it_fail "STATUS= lines"
grep -q '^STOPPING=1' "$L" && [ $rc -eq 0 ] && it_ok "STOPPING=1 on SIGTERM, exit 0" ||
    it_fail "STOPPING=1 on SIGTERM, exit 0" "rc=$rc $(cat "$L")"
grep -v WATCHDOG "$L" | sed 's/^/# /' | head -8
exit 0
