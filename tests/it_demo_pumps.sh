#!/bin/sh
# it_demo_pumps.sh - tools/demo_pumps.py --events-topic publishes its
# {"event": "stop"} when stopped (SIGTERM), so alertwatch's SUMMARY knows
# when the simulator stopped; also with paho-mqtt 1.5's
# MQTTMessageInfo.wait_for_publish(), which takes no timeout (emulated: a
# sitecustomize on PYTHONPATH replaces it with that signature), where a
# call with a timeout raises TypeError and the stop went out unawaited.
. tests/lib.sh
D=$(mktemp -d /tmp/it_demo_pumps.XXXXXX)
DPID= SPID=
trap 'it_daemon_cleanup' EXIT
it_broker_start "$D" || { it_fail "broker starts"; exit 0; }
P=$IT_PORT
mkdir -p "$D/shim"
cat > "$D/shim/sitecustomize.py" <<'PY'
import paho.mqtt.client as m
_wait = m.MQTTMessageInfo.wait_for_publish
def wait_for_publish(self):      # paho-mqtt 1.5: no timeout
    return _wait(self)
m.MQTTMessageInfo.wait_for_publish = wait_for_publish
PY

# run NAME [ENV...]: the simulator until its START line, then SIGTERM; the
# events topic as received in $D/NAME.ev
run() {
    name=$1; shift
    mosquitto_sub -h 127.0.0.1 -p "$P" -q 1 -t "demo/ev/$name" > "$D/$name.ev" 2>&1 & SPID=$!
    it_retained "$P" "$D/$name.ret" "demo/ev/$name" || echo "# $name: subscriber not confirmed"
    env "$@" $PYTHON tools/demo_pumps.py --mqtt "127.0.0.1:$P" --no-faults --speed 50 \
        --events-topic "demo/ev/$name" > "$D/$name.out" 2>&1 & DPID=$!
    it_wait_log "$D/$name.out" ' START ' 10 || echo "# $name: no START line: $(cat "$D/$name.out")"
    kill -TERM $DPID; it_wait_gone $DPID 10; wait $DPID; rc=$?; DPID=
    it_wait_log "$D/$name.ev" '"stop"' 3
    kill $SPID; wait $SPID 2>/dev/null; SPID=
    if [ $rc -eq 0 ] && grep -q '"event": "stop"' "$D/$name.ev"; then
        it_ok "$name: SIGTERM: exit status 0, the stop event is published"
    else
        it_fail "$name: SIGTERM: exit status 0, the stop event is published" \
            "rc=$rc events: $(cat "$D/$name.ev") out: $(cat "$D/$name.out")"
    fi
}
run "paho-$($PYTHON -c 'import paho.mqtt; print(paho.mqtt.__version__)')"
run "paho-1.5-wait_for_publish" PYTHONPATH="$D/shim"
exit 0
