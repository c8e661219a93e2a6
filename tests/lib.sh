# lib.sh - helpers for integration scripts (sourced, not run).
# Each script reports cases as "ok - name" / "not ok - name", and a case it
# cannot run here as "skip - name: reason" (it_skip): tests/run.sh counts
# skips separately and never as passes.
# Waits are for events with a timeout (it_wait_log, it_wait_file,
# it_wait_topic, it_wait_gone, it_retained), never fixed sleeps: a loaded
# machine only makes them slower, not wrong.
AD_BIN=${AD_BIN:-build/anomalyd}
PYTHON=${PYTHON:-/usr/bin/python3}

it_ok()   { echo "ok - $1"; }
it_fail() { echo "not ok - $1"; shift; [ $# -gt 0 ] && echo "  $*"; }
it_skip() { echo "skip - $1: $2"; }   # it_skip NAME REASON
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

# it_daemon_cleanup: the usual EXIT trap of a daemon test: stop the
# processes of it_setup's VARs, the daemon ($DPID) and the subscriber
# ($SPID) if running, the broker, and remove $D.
# Use: DPID= ; SPID= ; trap it_daemon_cleanup EXIT
it_daemon_cleanup() {
    for _v in ${IT_PIDVARS:-}; do
        eval "_p=\${$_v:-}"
        [ -n "$_p" ] && kill "$_p" 2>/dev/null
    done
    [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null
    [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
    it_broker_stop
    rm -rf "$D"
}

# it_setup NAME [VAR...]: the usual start of a daemon test: H
# (tests/it_daemon_mqtt.py, the MQTT tool), a fresh directory D
# (/tmp/NAME.XXXXXX), MODEL (the shipped pump model, an absolute path), DPID
# and SPID empty, it_daemon_cleanup as the EXIT trap; each VAR (empty) is
# for the id of one more process (a publisher in the background) that the
# cleanup stops first. Then it_broker_up, a config in $D/ad.json, it_daemon_up.
it_setup() {
    H="$PYTHON tests/it_daemon_mqtt.py"
    D=$(mktemp -d "/tmp/$1.XXXXXX")
    DPID= ; SPID=
    shift; IT_PIDVARS="$*"
    for _v in "$@"; do eval "$_v="; done
    trap it_daemon_cleanup EXIT
    MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
}
# it_broker_up [extra config lines...]: it_broker_start in $D; when the
# broker does not start, the case "broker starts" fails and the test ends
it_broker_up() { it_broker_start "$D" "$@" || { it_fail "broker starts"; exit 1; }; }
# it_sub_start: the subscriber to anomalyd/# (every message the daemon
# sends, retained ones too) writing JSON lines to $D/sub.jsonl; sets SPID
it_sub_start() {
    $H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub.jsonl" & SPID=$!
}
# it_daemon_online [N [CASE]]: until $D/sub.jsonl holds more than N (default
# 0: take N with it_onlines before a restart) online status messages, 20 s
# at most; else the case CASE (default "daemon connects") fails with the
# daemon's log and the test ends
it_daemon_online() {
    it_wait_online "$D/sub.jsonl" "${1:-0}" 20 ||
        { it_fail "${2:-daemon connects}" "$(cat "$D/daemon.log")"; exit 1; }
}
# it_daemon_up [run options...]: the subscriber (it_sub_start, unless SPID
# is set), then the daemon on $D/ad.json with the options, its log appended
# to $D/daemon.log (DPID), and its online status awaited (it_daemon_online:
# the test ends when it does not come). A daemon started with variables in
# its environment (LD_PRELOAD): it_sub_start, the daemon, it_daemon_online.
it_daemon_up() {
    [ -n "${SPID:-}" ] || it_sub_start
    _up=$(it_onlines "$D/sub.jsonl")
    $AD_BIN run -c "$D/ad.json" "$@" 2>> "$D/daemon.log" & DPID=$!
    it_daemon_online "$_up"
}
# it_daemon_stop: SIGTERM to the daemon, and its end awaited (60 s at most:
# then the case "daemon stops at SIGTERM" fails and it is killed, not
# waited for without end)
it_daemon_stop() {
    kill -TERM "$DPID" 2>/dev/null
    it_wait_gone "$DPID" 60 ||
        { it_fail "daemon stops at SIGTERM" "$(tail -5 "$D/daemon.log")"; kill -KILL "$DPID"; }
    wait "$DPID" 2>/dev/null; DPID=
}
# it_wait_stats [N [TIMEOUT]]: until the daemon has sent N (default 4) more
# stats messages (anomalyd/stats, one every broker.stats_interval_s) to
# $D/sub.jsonl than it had when called, TIMEOUT (default 20) s at most.
# What it sent before them (the retained states of the rows it had taken)
# is in, and a check that something did not happen has had that long (N - 1
# intervals at least) to see it: a fixed sleep on a loaded machine may not.
it_wait_stats() {
    _st=$(_it_nstats)
    it_wait_until "${2:-20}" _it_more_stats "$_st" "${1:-4}"
}
_it_nstats() {
    [ -e "$D/sub.jsonl" ] || { echo 0; return; }
    grep -c '"topic": "anomalyd/stats"' "$D/sub.jsonl"
}
_it_more_stats() { [ "$(_it_nstats)" -ge $(($1 + $2)) ]; }
# it_pub_recent DEVICE N: N rows of the five pump sensors (about 10, a fixed
# random sequence) to sensors/DEVICE/pump, QoS 1, one second apart in data
# time, the last one now
it_pub_recent() {
    it_py - "$IT_PORT" "$1" "$2" <<'EOP'
import json, random, sys, time
from it_daemon_mqtt import SENSORS, connect
port, dev, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = connect(port)
now = time.time()
r = random.Random(7)
infos = []
for i in range(n):
    row = {s: round(10 + r.gauss(0, 1), 4) for s in SENSORS}
    row["ts"] = int((now - (n - 1 - i)) * 1000)
    infos.append(c.publish("sensors/%s/pump" % dev, json.dumps(row), qos=1))
for i in infos:
    i.wait_for_publish(30)
c.disconnect()
c.loop_stop()
EOP
}
# it_shim NAME [LIBS...]: tests/NAME.c built into $D/NAME.so, a library
# for LD_PRELOAD; status 1, the compiler's complaint in $D/cc.log, when it
# was not built
it_shim() {
    _n=$1; shift
    ${CC:-cc} -shared -fPIC -O2 -o "$D/$_n.so" "${AD_SRCDIR:-.}/tests/$_n.c" "$@" > "$D/cc.log" 2>&1
}
# it_py ARGS...: python3 with tests/ on its path, for the test scripts'
# snippets that use it_daemon_mqtt.py's functions (load_pumpsim, connect,
# last_states)
it_py() { PYTHONPATH="${AD_SRCDIR:-$(pwd)}/tests${PYTHONPATH:+:$PYTHONPATH}" $PYTHON "$@"; }

# it_kafka_start [kafka_mock args...]: librdkafka's mock cluster
# (tests/kafka_mock, 3 brokers on 127.0.0.1), its output in $D; sets MPID,
# BOOT (the bootstrap list) and FAST (broker 1). IT_KAFKA_ERRORS=N:ERR: its
# first N produce requests refused with Kafka error ERR. 1 when it did not
# start (said).
it_kafka_start() {
    KAFKA_MOCK_PRODUCE_ERRORS="${IT_KAFKA_ERRORS:-}" \
    KAFKA_MOCK_SLOW_PRODUCE_ERRORS="${IT_KAFKA_SLOW_ERRORS:-}" "${AD_BUILD:-build}/tests/kafka_mock" "$@" \
        > "$D/boot" 2> "$D/mock.out" &
    MPID=$!
    it_wait_until 10 test -s "$D/boot"
    BOOT=$(head -1 "$D/boot")
    case "$BOOT" in 127.0.0.1:*) ;; *) it_fail "mock cluster on 127.0.0.1" "$BOOT"; return 1 ;; esac
    FAST=${BOOT%%,*}
}

# it_kafka_cleanup: the EXIT trap of a Kafka test: the processes in $P (its
# instances: each awaited, 10 s at most) and $SUB stopped, the mock cluster
# stopped, with KEEP=DIR the test's logs ($D) kept there, then
# it_daemon_cleanup.
it_kafka_cleanup() {
    for p in ${P:-} ${SUB:-}; do kill "$p" 2>/dev/null; done
    for p in ${P:-}; do it_wait_gone "$p" 10; done
    [ -n "${MPID:-}" ] && kill "$MPID" 2>/dev/null
    [ -n "${KEEP:-}" ] && rm -rf "$KEEP" && cp -r "$D" "$KEEP"
    it_daemon_cleanup
}

# it_kafka_last TOPIC KEY: the value of the last record with KEY on the mock
# cluster's TOPIC (an empty value, a tombstone, passed over); nothing when
# there is none. kcat's complaints go to $D/kcat.out.
it_kafka_last() {
    kcat -C -b "$BOOT" -t "$1" -e -q -f '%k|%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import sys
k, last = sys.argv[1] + "|", ""
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith(k) and len(line) > len(k):
        last = line[len(k):]
print(last)' "$2"
}

# it_kafka_feed CASE N ROWS: instance a ($D/a.json, its log $D/a.log, DPID;
# its stats to $D/stats, SPID) takes in[0] (30 s at most: else the case
# CASE fails and the test ends), N streams of ROWS rows each
# (tests/it_kafka_gen.py) go to topic in and are consumed (60 s at most,
# else said), and a is stopped (SIGTERM, 20 s at most) once its last
# windows are scored
it_kafka_feed() {
    mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null &
    SPID=$!
    $AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & DPID=$!
    it_wait_until 30 grep -q 'kafka: owns in\[0\]' "$D/a.log" ||
        { it_fail "$1" "$(tail -3 "$D/a.log")"; exit 0; }
    $PYTHON tests/it_kafka_gen.py "$2" 0 "$3" | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
    it_wait_until 60 sh -c "[ \$($PYTHON tests/it_kafka_check.py consumed '$D/stats') -ge $(($2 * $3)) ]" ||
        echo "# not all $(($2 * $3)) rows consumed"
    sleep 1                             # the last windows scored
    kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=
}

# it_line_stat FILE TOPIC KEY: KEY of the last message on TOPIC in FILE
# (mosquitto_sub -v lines: "topic payload"), as an integer, 0 when there is
# none; a KEY starting with "pump." is a member of detector pump's entry
it_line_stat() {
    $PYTHON - "$1" "$2" "$3" <<'EOP'
import json, sys
v = 0
for line in open(sys.argv[1], errors="replace"):
    topic, _, payload = line.partition(" ")
    if topic != sys.argv[2]:
        continue
    try:
        o = json.loads(payload)
    except ValueError:
        continue
    k = sys.argv[3]
    if k.startswith("pump."):
        o = next((d for d in o.get("detectors", []) if d.get("name") == "pump"), {})
        k = k[5:]
    v = o.get(k, v)
print(int(v))
EOP
}

# it_onlines FILE: how many online status messages (anomalyd/status) FILE
# holds (a daemon may send two: retained, and again on a resumed session)
it_onlines() {
    [ -e "$1" ] || { echo 0; return; }
    grep '"anomalyd/status"' "$1" | grep -c '\\"state\\":\\"online\\"'
}
# it_wait_online FILE N TIMEOUT: until FILE holds more than N online status
# messages (take N with it_onlines before the start: counting starts
# cannot tell a daemon's second online message from the next start's)
it_wait_online() { it_wait_until "$3" _it_more_onlines "$1" "$2"; }
_it_more_onlines() { [ "$(it_onlines "$1")" -gt "$2" ]; }

# it_started_year FILE: the year of "started" in the last online status
# message (anomalyd/status) in FILE (it_daemon_mqtt.py sub --out)
it_started_year() {
    $PYTHON - "$1" <<'EOP'
import json, sys
y = ""
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("topic") != "anomalyd/status":
        continue
    p = json.loads(m["payload"])
    if p.get("state") == "online":
        y = p.get("started", "")[:4]
print(y)
EOP
}

# it_last_stat FILE TOPIC KEY: KEY of the last message on TOPIC in FILE (the
# JSON lines of tests/it_daemon_mqtt.py's subscriber); None when there is none
it_last_stat() {
    $PYTHON - "$1" "$2" "$3" <<'EOP'
import json, sys
last = None
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] == sys.argv[2]:
        last = json.loads(m["payload"]).get(sys.argv[3])
print(last)
EOP
}

# it_swap_paths A B: exchange two paths in one step (renameat2 with
# RENAME_EXCHANGE), e.g. a directory and a plain file: a daemon that makes
# a missing directory again finds no moment where the path is free
it_swap_paths() {
    $PYTHON -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) != 0:
    e = ctypes.get_errno(); sys.exit("renameat2 %s %s: %s" % (sys.argv[1], sys.argv[2], os.strerror(e)))' "$1" "$2"
}

# Event waits. Each polls every 50 ms until the event or TIMEOUT seconds
# (fractions allowed) and returns 0 on the event, 1 on timeout. Timeouts are
# upper bounds for a loaded 2-core machine, not expected durations.
_it_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# it_wait_until TIMEOUT CMD...: until CMD succeeds
it_wait_until() {
    _t=$1; shift
    _end=$(( $(_it_now_ms) + $(awk -v t="$_t" 'BEGIN { printf "%d", t * 1000 }') ))
    while :; do
        "$@" && return 0
        [ "$(_it_now_ms)" -ge "$_end" ] && return 1
        sleep 0.05
    done
}
# it_wait_log FILE REGEX TIMEOUT [COUNT]: until FILE has COUNT (default 1)
# lines matching the extended REGEX
it_wait_log() {
    it_wait_until "$3" _it_log_has "$1" "$2" "${4:-1}"
}
_it_log_has() { [ "$(grep -Ec -- "$2" "$1" 2>/dev/null)" -ge "$3" ]; }
# it_wait_file PATH TIMEOUT: until PATH exists (a file, socket, anything)
it_wait_file() { it_wait_until "$2" test -e "$1"; }
# it_wait_gone PID TIMEOUT: until process PID has exited (or is a zombie)
it_wait_gone() { it_wait_until "$2" _it_pid_gone "$1"; }
_it_pid_gone() {
    case $(ps -o stat= -p "$1" 2>/dev/null) in ""|Z*) return 0 ;; esac
    return 1
}
# it_wait_topic PORT TOPIC TIMEOUT [REGEX]: until a message on TOPIC (a
# retained one counts) whose payload matches the extended REGEX (default:
# any) arrives from the broker on 127.0.0.1:PORT; prints that payload.
it_wait_topic() {
    _f=$(mktemp)
    mosquitto_sub -h 127.0.0.1 -p "$1" -t "$2" > "$_f" 2>/dev/null & _p=$!
    if it_wait_log "$_f" "${4:-.}" "$3"; then
        grep -E -m 1 -- "${4:-.}" "$_f"; _r=0
    else
        _r=1
    fi
    kill "$_p" 2>/dev/null; wait "$_p" 2>/dev/null
    rm -f "$_f"
    return $_r
}
# it_retained PORT OUT TOPIC...: what a new subscriber to the TOPICs gets
# (their retained messages), as mosquitto_sub -v "topic payload" lines in
# OUT. The broker sends a subscription's retained messages before anything
# published after the subscription: a marker, published until it comes
# back, ends them (no fixed wait for the retained ones to arrive). Status 1
# when the marker did not come back within 10 s (OUT is then not to be
# trusted: an empty one would pass for "nothing retained").
it_retained() {
    _rp=$1; _ro=$2; shift 2
    _rm="it/retained-end/$$"
    for _rt in "$@"; do set -- "$@" -t "$_rt"; shift; done
    mosquitto_sub -h 127.0.0.1 -p "$_rp" "$@" -t "$_rm" -v > "$_ro.all" 2>/dev/null & _rs=$!
    it_wait_until 10 _it_marked "$_rp" "$_rm" "$_ro.all"; _rr=$?
    kill "$_rs" 2>/dev/null; wait "$_rs" 2>/dev/null
    grep -v "^$_rm " "$_ro.all" > "$_ro"
    rm -f "$_ro.all"
    return $_rr
}
_it_marked() {
    mosquitto_pub -h 127.0.0.1 -p "$1" -t "$2" -m end 2>/dev/null
    grep -q "^$2 " "$3"
}
