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
it_broker_start "$D" || { it_fail "broker starts"; exit 1; }
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-notify", "stats_interval_s": 0.5},
 "detectors": [{"name": "pump", "model": "${AD_SRCDIR:-.}/conf/models/pump.safetensors",
   "topics": ["sensors/+/pump"]}]}
EOC
$PYTHON -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
while True:
    out.write(s.recv(4096).decode().replace("\n", " | ") + "\n")
' "$D/notify.sock" "$D/notify.log" & NPID=$!
i=0; while [ ! -S "$D/notify.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
NOTIFY_SOCKET="$D/notify.sock" WATCHDOG_USEC=400000 $AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
sleep 1.5
kill -HUP "$DPID"
sleep 1
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
sleep 0.2
L="$D/notify.log"
grep -q '^READY=1' "$L" && it_ok "READY=1" || it_fail "READY=1" "$(cat "$L")"
n=$(grep -c '^WATCHDOG=1' "$L")
[ "$n" -ge 8 ] && it_ok "WATCHDOG=1 every 200 ms ($n pings in ~2.5 s)" ||
    it_fail "WATCHDOG=1 every 200 ms" "$n pings: $(cat "$L")"
grep -q '^RELOADING=1 | MONOTONIC_USEC=[0-9][0-9]*' "$L" &&
    awk '/^RELOADING=1/ {r=NR} /^READY=1/ && r && NR > r {ok=1} END {exit !ok}' "$L" &&
    it_ok "RELOADING=1 with MONOTONIC_USEC, then READY=1" ||
    it_fail "RELOADING=1 with MONOTONIC_USEC, then READY=1" "$(cat "$L")"
grep -q '^STATUS=' "$L" && it_ok "STATUS= lines" || it_fail "STATUS= lines"
grep -q '^STOPPING=1' "$L" && [ $rc -eq 0 ] && it_ok "STOPPING=1 on SIGTERM, exit 0" ||
    it_fail "STOPPING=1 on SIGTERM, exit 0" "rc=$rc $(cat "$L")"
grep -v WATCHDOG "$L" | sed 's/^/# /' | head -8
exit 0
