#!/bin/sh
# demo.sh - the main job of `make demo`: a private mosquitto on loopback, the
# daemon on the shipped config (conf/anomalyd.json) with the bundled model,
# simulated pumps publishing their sensors in accelerated real time with
# faults injected at random moments (tools/demo_pumps.py), and a subscriber
# printing every alert and phase change as one line (tools/alertwatch.py),
# and at the stop a SUMMARY line: the alerts, and how many injected faults
# were alerted, ended without an alert, or were too recent to be judged.
#
#   sh tools/demo.sh [BUILD] [--duration S] [--seed N] [--no-faults]
#                    [--pumps N] [--speed N] [--port P] [--verbose]
#   make demo ARGS="--duration 60 --seed 7"
#
# The daemon runs on a copy of conf/anomalyd.json in a temporary directory,
# kept to the demo's own broker: broker.host 127.0.0.1 and broker.port the
# demo broker's; the broker's TLS settings and credentials (username,
# password_file), the Kafka section (and each detector's kafka_topics; alerts
# go to MQTT) and the Prometheus metrics file are dropped, so nothing
# connects elsewhere or writes a real daemon's files. broker.client_id is
# "anomalyd-demo" and broker.clean_session true; state_dir is inside the
# temporary directory (every run calibrates afresh) and the model path is
# made absolute (relative paths resolve against the config's directory).
# Home Assistant discovery and commands, when enabled, use the demo broker.
# The broker listens on 127.0.0.1 only, port 1883 when free, else a
# free port (--port P forces one; --port 0 always takes a free one),
# persistence off. The demo never talks to another broker: a --port P in use
# is refused (exit status 1), and nothing connects before the demo's own
# mosquitto is seen listening on the port (by /proc, or where /proc cannot
# tell, by mosquitto still running after the readiness ping with the port no
# longer bindable). Its own client id and a clean session mean that even
# then it could not take over the session of a daemon on the usual
# "anomalyd" client id.
#
# Ctrl-C (SIGINT), SIGTERM, SIGHUP or the end of --duration stop everything in
# order: simulator, daemon (after a second to drain the data already sent,
# when the run ends by --duration), subscriber (after it printed the daemon's
# offline status, so no alert is lost), broker; the temporary directory is
# removed and the exit status is 0. Exit status 1 when a component fails to
# start or dies, or the daemon's own exit status is not 0, with its log.
# The broker and the daemon run in their own sessions so a Ctrl-C on the
# terminal reaches only this script, which stops them in that order; the
# Python children ignore SIGINT (inherited from the non-interactive shell)
# and stop on SIGTERM. Every child gets SIGTERM from the kernel if this
# script dies anyway (SIGKILL, closed output pipe).
BUILD=build
case "${1:-}" in
    ""|-*) ;;
    *) BUILD=$1; shift ;;
esac
PYTHON=${PYTHON:-/usr/bin/python3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
CONF=$SRC/conf/anomalyd.json
BIN=$BUILD/anomalyd
DURATION=0 SEED= FAULTS=1 PUMPS=4 SPEED=20 PORT= VERBOSE=0

usage() {
    echo "usage:"; sed -n '/^#   sh tools/{N;p;}' "$0" | sed 's/^#  //'
    echo "  --duration S   stop after S seconds (default: run until Ctrl-C)"
    echo "  --seed N       fault schedule and pump behaviour (default: random, printed)"
    echo "  --no-faults    healthy pumps only (no alert should fire)"
    echo "  --pumps N      simulated pumps (default 4)"
    echo "  --speed N      simulated minutes per second, a whole number (default 20)"
    echo "  --port P       the demo broker's port (default 1883 if free, else a free one;"
    echo "                 0: a free one); a P in use (another broker) is refused"
    echo "  --verbose      show the daemon's log (info level)"
}
uint() { case $2 in ""|*[!0-9]*) echo "demo: $1 needs a non-negative integer, got '$2'" >&2; exit 2 ;; esac; }
while [ $# -gt 0 ]; do
    case $1 in
        --duration) DURATION=${2:-}; uint "$1" "$DURATION"; shift 2 ;;
        --seed) SEED=${2:-}; uint "$1" "$SEED"; shift 2 ;;
        --no-faults) FAULTS=0; shift ;;
        --pumps) PUMPS=${2:-}; uint "$1" "$PUMPS"; shift 2 ;;
        --speed) SPEED=${2:-}; uint "$1" "$SPEED"; shift 2 ;;
        --port) PORT=${2:-}; uint "$1" "$PORT"; shift 2 ;;
        --verbose) VERBOSE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[ "$PUMPS" -ge 1 ] && [ "$SPEED" -ge 1 ] || { echo "demo: --pumps and --speed must be >= 1" >&2; exit 2; }

need() { echo "demo: $1 (run 'make deps')" >&2; exit 1; }
command -v mosquitto >/dev/null 2>&1 || need "mosquitto not found"
command -v mosquitto_sub >/dev/null 2>&1 || need "mosquitto_sub not found (mosquitto-clients)"
[ -x "$BIN" ] || need "$BIN not built (run 'make')"
$PYTHON -c 'import paho.mqtt.client' 2>/dev/null || need "python3-paho-mqtt missing for $PYTHON"
[ -n "$SEED" ] || SEED=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')

TMP=$(mktemp -d "${TMPDIR:-/tmp}/anomalyd-demo.XXXXXX") || exit 1
# A watchdog outside this script's process group removes $TMP once this
# script is gone, however it ended (a SIGKILL runs no trap).
(
    trap '' INT TERM HUP
    while kill -0 $$ 2>/dev/null; do sleep 1; done
    rm -rf "$TMP"
) </dev/null >/dev/null 2>&1 &
BROKER_PID= DAEMON_PID= WATCH_PID= SIM_PID= SLEEP_PID= DONE= STATUS=0
# $CHILD PID new|same CMD...: exec CMD with SIGTERM as its parent-death
# signal (so even a SIGKILL of this script leaves nothing running), in a new
# session (no terminal Ctrl-C: this script stops it in order) or this one
CHILD="$PYTHON -c"
CHILD_PY='import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
if sys.argv[2] == "new":
    os.setsid()
os.execvp(sys.argv[3], sys.argv[3:])'

alive() { # alive PID: the process exists and is not a zombie
    st=$(ps -o stat= -p "$1" 2>/dev/null)
    [ -n "$st" ] && case $st in Z*) false ;; *) true ;; esac
}
stop() { # stop PID [TENTHS]: SIGTERM, SIGKILL after TENTHS/10 s, reap
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    i=0
    while alive "$1" && [ $i -lt "${2:-50}" ]; do sleep 0.1; i=$((i + 1)); done
    alive "$1" && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null       # its exit status
}
waitexit() { # waitexit PID TENTHS: let it exit by itself, then stop it
    i=0
    while alive "$1" && [ $i -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
    stop "$1"
}
cleanup() {
    [ -n "$DONE" ] && return
    DONE=1
    trap '' INT TERM HUP PIPE
    [ -n "$SLEEP_PID" ] && stop "$SLEEP_PID"
    [ -n "$SIM_PID" ] && stop "$SIM_PID"
    if [ -n "$DAEMON_PID" ]; then
        [ "${1:-}" = drain ] && alive "$DAEMON_PID" && sleep 1
        stop "$DAEMON_PID" 100; rc=$?
        if [ $rc -ne 0 ]; then     # SIGTERM: 0 (sanitizer reports: not 0)
            echo "demo: anomalyd exited with status $rc" >&2
            [ -f "$TMP/daemon.log" ] && tail -30 "$TMP/daemon.log" | sed 's/^/  | /' >&2
            STATUS=1
        fi
    fi
    # the subscriber exits after the daemon's "offline" status
    [ -n "$WATCH_PID" ] && waitexit "$WATCH_PID" 30
    [ -n "$BROKER_PID" ] && stop "$BROKER_PID"
    rm -rf "$TMP"
}
trap 'cleanup' EXIT
trap 'echo; cleanup; exit $STATUS' INT TERM HUP
trap 'cleanup; exit 1' PIPE
die() { # die MESSAGE [LOG]: a component failed
    echo "demo: $1" >&2
    [ -n "${2:-}" ] && [ -f "$2" ] && tail -20 "$2" | sed 's/^/  | /' >&2
    cleanup
    exit 1
}

# --- broker -----------------------------------------------------------------
port_free() { # port_free P: P (0: a free one) can be bound on 127.0.0.1; prints
    # the port, else the reason on stderr
    $PYTHON - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except (OSError, OverflowError) as e:
    sys.exit(getattr(e, "strerror", None) or str(e))
print(s.getsockname()[1])
EOF
}
owns_port() { # owns_port PID P: 0 when process PID has a socket listening on
    # 127.0.0.1:P, 1 when not, 2 when /proc cannot tell (no /proc/net/tcp or
    # /proc/PID/fd readable: some sandboxed containers, WSL1)
    $PYTHON - "$1" "$2" <<'EOF' 2>/dev/null
import os, socket, struct, sys
pid, port = sys.argv[1], int(sys.argv[2])
listening = set()
try:
    with open("/proc/net/tcp") as f:
        lines = f.read().splitlines()
    fds = os.listdir("/proc/%s/fd" % pid)
except OSError:
    sys.exit(2)
if not lines or not fds:
    sys.exit(2)
for line in lines[1:]:
    x = line.split()
    addr, p = x[1].split(":")
    if (x[3] == "0A" and int(p, 16) == port
            and socket.inet_ntoa(struct.pack("=I", int(addr, 16))) == "127.0.0.1"):
        listening.add("socket:[%s]" % x[9])
for n in fds:
    try:
        if os.readlink("/proc/%s/fd/%s" % (pid, n)) in listening:
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
EOF
}
NOTE=
if [ -z "$PORT" ]; then
    PORT=$(port_free 1883 2>/dev/null) || { PORT=$(port_free 0 2>/dev/null); NOTE=" (1883 is taken)"; }
elif [ "$PORT" -eq 0 ]; then
    PORT=$(port_free 0 2>/dev/null)
else
    # never another broker: a client of the demo there would connect to it
    if ! why=$(port_free "$PORT" 2>&1 >/dev/null); then
        why=${why%.}
        case $why in *"in use"*) why="$why (another broker?)" ;; esac
        die "cannot use port $PORT on 127.0.0.1 for the demo's own broker: ${why:-not free}.
  Omit --port (1883 when free, else a free port) or give a free one."
    fi
fi
[ -n "$PORT" ] || die "no free port on 127.0.0.1"
{
    echo "listener $PORT 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence false"
    # As root, mosquitto drops to the "mosquitto" user, and a change of
    # user clears the parent-death signal: a SIGKILL of this script would
    # then leave it running. This private loopback broker keeps root.
    if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
} > "$TMP/mosquitto.conf"
$CHILD "$CHILD_PY" $$ new mosquitto -c "$TMP/mosquitto.conf" > "$TMP/mosquitto.log" 2>&1 &
BROKER_PID=$!
# Connect only once this mosquitto listens on the port: had it failed to
# bind (a port taken meanwhile), another broker would answer there. /proc
# shows which process listens; where it cannot be read, the proof is that
# mosquitto logged it runs (its listeners are open), is still alive after the
# readiness ping (it exits at once when it cannot bind) and the port is no
# longer bindable.
i=0 PROC=1
while :; do
    owns_port "$BROKER_PID" "$PORT"; rc=$?
    [ $rc -eq 0 ] && break
    alive "$BROKER_PID" || die "mosquitto did not start on 127.0.0.1:$PORT" "$TMP/mosquitto.log"
    if [ $rc -eq 2 ] && grep -q ' running$' "$TMP/mosquitto.log" 2>/dev/null; then
        PROC=0; break
    fi
    i=$((i + 1)); [ $i -lt 50 ] || die "mosquitto does not listen on 127.0.0.1:$PORT" "$TMP/mosquitto.log"
    sleep 0.1
done
i=0
until mosquitto_sub -h 127.0.0.1 -p "$PORT" -t demo/ping -E -i demo-ping 2>/dev/null; do
    alive "$BROKER_PID" || die "mosquitto did not start on 127.0.0.1:$PORT" "$TMP/mosquitto.log"
    i=$((i + 1)); [ $i -lt 50 ] || die "mosquitto does not answer on 127.0.0.1:$PORT" "$TMP/mosquitto.log"
    sleep 0.1
done
if [ $PROC -eq 0 ]; then
    alive "$BROKER_PID" || die "mosquitto did not start on 127.0.0.1:$PORT" "$TMP/mosquitto.log"
    port_free "$PORT" >/dev/null 2>&1 && die "mosquitto does not listen on 127.0.0.1:$PORT" "$TMP/mosquitto.log"
fi

# --- daemon config: conf/anomalyd.json, kept to the demo's broker ---------------
CALIB=$($PYTHON - "$CONF" "$TMP/anomalyd.json" "$PORT" <<'EOF'
import json, os, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = json.load(open(src))
b = c.setdefault("broker", {})
# the demo's broker only, whatever the config names: no other host, no TLS
# or credentials (meant for another broker), no Kafka
b["host"] = "127.0.0.1"
b["port"] = port
for k in ("tls", "username", "password", "password_file"):
    b.pop(k, None)
c.pop("kafka", None)
# nor a file a real daemon's metrics collector reads
c.pop("metrics", None)
# never the usual client id nor a persistent session: nothing the demo does
# may resume or end a real daemon's session
b["client_id"] = "anomalyd-demo"
b["clean_session"] = True
c["state_dir"] = "state"
for d in c.get("detectors", []):
    d.pop("kafka_topics", None)
    if d.get("alerts_to", "mqtt") != "mqtt":
        d["alerts_to"] = "mqtt"
    if d.get("model") and not os.path.isabs(d["model"]):
        d["model"] = os.path.join(os.path.dirname(os.path.abspath(src)), d["model"])
json.dump(c, open(dst, "w"), indent=2)
print(c["detectors"][0].get("calibration", {}).get("windows", 200))
EOF
) || die "cannot read $CONF"
MODEL=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["detectors"][0]["model"])' "$TMP/anomalyd.json")
T=$("$BIN" info --model "$MODEL" 2>/dev/null | awk '$1 == "window:" { print $2 }')
[ -n "$T" ] || die "cannot read the model $MODEL (run '$BIN info --model $MODEL')"
CAL_SAMPLES=$((CALIB + T - 1))               # samples until a stream detects
FAULTS_AFTER=$((CAL_SAMPLES + 30))
# a fault ended this recently at the stop may still be alerted: its samples
# stay in the windows for T more samples (plus a second for the messages)
JUDGE_S=$(( (T + SPEED - 1) / SPEED + 1 ))
JUDGE_MS=$((JUDGE_S * SPEED * 60000))        # the same in pump time

# --- banner -----------------------------------------------------------------
if [ "$FAULTS" -eq 1 ]; then
    what="then faults (bearing, cavitation, blockage, overheat) are injected at random moments, seed $SEED"
else
    what="no faults are injected (--no-faults): no alert should fire; seed $SEED"
fi
echo "anomalyd demo: $PUMPS simulated pumps -> mosquitto on 127.0.0.1:$PORT$NOTE -> anomalyd (conf/anomalyd.json, model $(basename "$MODEL")) -> one line per alert below. Ctrl-C stops everything."
echo "  pump time runs $((SPEED * 60))x faster: one sample per simulated minute, $SPEED a second (1 pump-hour = $((3600 / (SPEED * 60))) s); each pump calibrates on its first $CAL_SAMPLES samples (~$(( (CAL_SAMPLES + SPEED - 1) / SPEED )) s), $what."
echo "  Home Assistant: set \"homeassistant\": {\"enabled\": true} in the config and each pump appears as a device with an Anomaly problem sensor, score and severity (MQTT discovery)."
[ "$DURATION" -gt 0 ] && echo "  stopping after $DURATION s."

# --- subscriber, daemon, simulator --------------------------------------------
$CHILD "$CHILD_PY" $$ same $PYTHON "$SRC/tools/alertwatch.py" -c "$TMP/anomalyd.json" \
    --host 127.0.0.1 --port "$PORT" --exit-on-offline --summary \
    --faults demo/faults --judge-s "$JUDGE_S" --judge-ms "$JUDGE_MS" &
WATCH_PID=$!
LOG=$TMP/daemon.log LEVEL=notice
[ "$VERBOSE" -eq 1 ] && LOG=/dev/stderr LEVEL=info
$CHILD "$CHILD_PY" $$ new "$BIN" run -c "$TMP/anomalyd.json" --log-level $LEVEL 2>> "$LOG" &
DAEMON_PID=$!
[ -n "$DAEMON_PID" ] || die "anomalyd did not start"
# wait for the daemon's retained "online" status
st=$(mosquitto_sub -h 127.0.0.1 -p "$PORT" -t anomalyd/status -C 1 -W 15 2>/dev/null)
case $st in
    *'"online"'*) ;;
    *) die "anomalyd did not come online" "$TMP/daemon.log" ;;
esac
NF=; [ "$FAULTS" -eq 0 ] && NF=--no-faults
$CHILD "$CHILD_PY" $$ same $PYTHON "$SRC/tools/demo_pumps.py" --mqtt "127.0.0.1:$PORT" --pumps "$PUMPS" \
    --speed "$SPEED" --seed "$SEED" --faults-after "$FAULTS_AFTER" --events-topic demo/faults $NF &
SIM_PID=$!

# --- run until Ctrl-C, --duration or a component dying --------------------------
t0=$(date +%s)
while :; do
    if ! alive "$DAEMON_PID"; then
        wait "$DAEMON_PID" 2>/dev/null; rc=$?; DAEMON_PID=
        die "anomalyd exited unexpectedly (status $rc)" "$TMP/daemon.log"
    fi
    alive "$BROKER_PID" || { BROKER_PID=; die "mosquitto exited unexpectedly" "$TMP/mosquitto.log"; }
    alive "$SIM_PID" || { SIM_PID=; die "the pump simulator exited unexpectedly"; }
    if [ "$DURATION" -gt 0 ] && [ $(($(date +%s) - t0)) -ge "$DURATION" ]; then
        cleanup drain
        exit $STATUS
    fi
    sleep 0.5 &
    SLEEP_PID=$!
    wait "$SLEEP_PID" 2>/dev/null
    SLEEP_PID=
done
