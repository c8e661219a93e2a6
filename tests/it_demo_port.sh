#!/bin/sh
# it_demo_port.sh - `make demo ARGS="--port P"` with P taken by another
# broker (the user's): the demo refuses with a message naming the port,
# exit status 1, and never connects to that broker. A persistent client with
# the daemon's usual client id ("anomalyd", clean session false: the user's
# real daemon) stays connected, and the broker logs no other connection
# (before, the demo's own mosquitto failed on the port, its readiness check
# answered from the user's broker and the demo daemon took the "anomalyd"
# session over). After the refusal no process and no temporary file of the
# demo is left.
. tests/lib.sh
BUILD=${AD_BUILD:-build}
D=$(mktemp -d /tmp/it_demo_port.XXXXXX)
SPID=
trap 'it_daemon_cleanup' EXIT
it_broker_start "$D" || { it_fail "another broker starts"; exit 0; }
P=$IT_PORT
# the user's daemon: client id anomalyd, persistent session, subscribed
mosquitto_sub -h 127.0.0.1 -p "$P" -i anomalyd -c -q 1 -t 'sensors/+/pump' > "$D/sub.out" 2>&1 & SPID=$!
it_wait_log "$D/mosquitto.log" ' as anomalyd ' 10 ||
    { it_fail "the user's client connects" "$(cat "$D/mosquitto.log")"; exit 0; }
n0=$(wc -l < "$D/mosquitto.log")

mkdir -p "$D/tmp"
t0=$(date +%s)
TMPDIR="$D/tmp" timeout -k 5 40 setsid sh tools/demo.sh "$BUILD" --port "$P" --seed 1 --duration 10 \
    > "$D/demo.out" 2>&1
RC=$?
echo "# demo --port $P: exit status $RC after $(($(date +%s) - t0)) s"
sed 's/^/#   /' "$D/demo.out" | head -12

if [ $RC -eq 1 ] && grep -q "port $P .*in use" "$D/demo.out" && ! grep -q ' ONLINE ' "$D/demo.out"; then
    it_ok "taken --port $P: the demo refuses (exit status 1), naming the port"
else
    it_fail "taken --port $P: the demo refuses (exit status 1), naming the port" "rc=$RC $(cat "$D/demo.out")"
fi
sleep 1       # a takeover would show by now
after=$(tail -n +$((n0 + 1)) "$D/mosquitto.log")
if kill -0 "$SPID" 2>/dev/null && ! echo "$after" | grep -q 'New connection\|already connected'; then
    it_ok "taken --port $P: the other broker's client \"anomalyd\" undisturbed, no demo connection there"
else
    it_fail "taken --port $P: the other broker's client \"anomalyd\" undisturbed, no demo connection there" \
        "broker log since the client connected: $after"
fi
tmp_empty() { [ -z "$(ls -A "$D/tmp")" ]; }
it_wait_until 5 tmp_empty
left=$(ps -eo pid=,args= | grep -F "$D/tmp/" | grep -v grep)
if tmp_empty && [ -z "$left" ]; then
    it_ok "taken --port $P: no process and no temporary file left"
else
    it_fail "taken --port $P: no process and no temporary file left" "$left $(ls -A "$D/tmp")"
fi
