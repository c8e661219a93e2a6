# it_lib.sh - helpers for integration scripts (sourced, not run).
# Each script reports cases as "ok - name" / "not ok - name".
AD_BIN=${AD_BIN:-build/anomalyd}
PYTHON=${PYTHON:-/usr/bin/python3}

it_ok()   { echo "ok - $1"; }
it_fail() { echo "not ok - $1"; shift; [ $# -gt 0 ] && echo "  $*"; }
it_check() { # it_check NAME CMD...: ok when CMD succeeds
    n=$1; shift
    if "$@"; then it_ok "$n"; else it_fail "$n" "command failed: $*"; fi
}

# A free TCP port on 127.0.0.1.
it_free_port() {
    $PYTHON -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# it_broker_start DIR [extra config lines...]: start mosquitto on 127.0.0.1 on
# a free port; sets IT_PORT and IT_BROKER_PID. Stop with it_broker_stop.
it_broker_start() {
    dir=$1; shift
    IT_PORT=$(it_free_port)
    {
        echo "listener $IT_PORT 127.0.0.1"
        echo "allow_anonymous true"
        echo "persistence false"
        for l in "$@"; do echo "$l"; done
    } > "$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
    IT_BROKER_PID=$!
    i=0
    while [ $i -lt 50 ]; do
        if mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -t it/ping -m x 2>/dev/null; then
            return 0
        fi
        sleep 0.1; i=$((i + 1))
    done
    echo "mosquitto did not start:"; cat "$dir/mosquitto.log"
    return 1
}
it_broker_stop() {
    [ -n "${IT_BROKER_PID:-}" ] && kill "$IT_BROKER_PID" 2>/dev/null && wait "$IT_BROKER_PID" 2>/dev/null
    IT_BROKER_PID=
}

# it_daemon_cleanup: the usual EXIT trap of a daemon test: stop the daemon
# ($DPID) and the subscriber ($SPID) if running, the broker, and remove $D.
# Use: DPID= ; SPID= ; trap it_daemon_cleanup EXIT
it_daemon_cleanup() {
    [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null
    [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
    it_broker_stop
    rm -rf "$D"
}
