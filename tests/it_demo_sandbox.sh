#!/bin/sh
# it_demo_sandbox.sh - `make demo` where the user's config points elsewhere,
# and where /proc cannot tell who listens.
# config: conf/anomalyd.json names another broker (broker.host 127.0.0.2),
#   with TLS, a user name and password file, a Kafka section (a detector
#   consuming kafka_topics, alerts_to both) and a Prometheus metrics file:
#   the demo's daemon config has broker.host 127.0.0.1 and none of the
#   others, the daemon and alertwatch connect to the demo broker (ONLINE
#   line), the metrics file is not written, exit status 0.
# noproc: /proc/net/tcp unreadable (some sandboxed containers, WSL1;
#   emulated by a sitecustomize on PYTHONPATH): the demo still runs (the
#   readiness check falls back to mosquitto still running with its port
#   taken), exit status 0.
. tests/lib.sh
BUILD=$(cd "${AD_BUILD:-build}" && pwd)
N=${IT_DEMO_SANDBOX_DURATION:-8}
D=$(mktemp -d /tmp/it_demo_sandbox.XXXXXX)
trap 'rm -rf "$D"' EXIT

# a source tree whose conf/anomalyd.json is the user's, tools the real ones
mkdir -p "$D/src/conf"
ln -s "$(pwd)/tools" "$D/src/tools"
$PYTHON - conf/anomalyd.json "$D/src/conf/anomalyd.json" "$D" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
d = sys.argv[3]
b = c["broker"]
b["host"] = "127.0.0.2"
b["tls"] = {"enabled": True, "ca_file": d + "/ca.pem"}
b["username"] = "plant"
b["password_file"] = d + "/password"
c["kafka"] = {"bootstrap_servers": "127.0.0.2:9092"}
c["metrics"] = {"textfile": d + "/metrics.prom"}
det = c["detectors"][0]
det["model"] = os.path.abspath(os.path.join(os.path.dirname(sys.argv[1]), det["model"]))
det["kafka_topics"] = ["plant.sensors"]
det["alerts_to"] = "both"
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
# a python that cannot read /proc/net/tcp
mkdir -p "$D/shim"
cat > "$D/shim/sitecustomize.py" <<'PY'
import builtins
_open = builtins.open
def open_(f, *a, **k):
    if isinstance(f, str) and f.startswith("/proc/") and "/net/" in f:
        raise PermissionError(13, "Permission denied", f)
    return _open(f, *a, **k)
builtins.open = open_
PY
printf '#!/bin/sh\nPYTHONPATH="%s/shim" exec %s "$@"\n' "$D" "$PYTHON" > "$D/python"
chmod +x "$D/python"

# run NAME DEMO_SH [ENV...]: the demo for N s, TMPDIR $D/NAME.tmp; its
# daemon config, once online, copied to $D/NAME.json
run() {
    name=$1 sh_=$2; shift 2
    mkdir -p "$D/$name.tmp"
    env TMPDIR="$D/$name.tmp" "$@" timeout -k 5 $((N + 40)) setsid sh "$sh_" "$BUILD" --port 0 --seed 1 \
        --duration "$N" --no-faults > "$D/$name.out" 2>&1 & pid=$!
    if it_wait_log "$D/$name.out" ' ONLINE ' 30; then
        cp "$D/$name.tmp"/anomalyd-demo.*/anomalyd.json "$D/$name.json" 2>/dev/null
    fi
    wait $pid; RC=$?
    echo "# $name: exit status $RC"
    grep -E ' (ONLINE|NEW|OFFLINE|SUMMARY) |demo:' "$D/$name.out" | sed 's/^/#   /'
}

run config "$D/src/tools/demo.sh"
if [ $RC -eq 0 ] && grep -q ' ONLINE ' "$D/config.out"; then
    it_ok "config elsewhere: the demo runs on its own broker (online, exit status 0)"
else
    it_fail "config elsewhere: the demo runs on its own broker (online, exit status 0)" \
        "rc=$RC $(tail -20 "$D/config.out")"
fi
why=$($PYTHON - "$D/config.json" 2>&1 <<'PY'
import json, sys
try:
    c = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit("no daemon config: %s" % e)
b = c["broker"]
bad = ["broker.%s" % k for k in ("tls", "username", "password", "password_file") if k in b]
bad += [k for k in ("kafka", "metrics") if k in c]
for d in c["detectors"]:
    bad += ["kafka_topics"] if "kafka_topics" in d else []
    bad += ["alerts_to %s" % d["alerts_to"]] if d.get("alerts_to", "mqtt") != "mqtt" else []
if b.get("host") != "127.0.0.1":
    bad.append("broker.host %s" % b.get("host"))
if bad:
    sys.exit("kept: " + ", ".join(bad))
PY
)
if [ $? -eq 0 ]; then
    it_ok "config elsewhere: the demo's daemon config has broker.host 127.0.0.1, no TLS, credentials, Kafka, metrics"
else
    it_fail "config elsewhere: the demo's daemon config has broker.host 127.0.0.1, no TLS, credentials, Kafka, metrics" \
        "$why"
fi
[ ! -e "$D/metrics.prom" ] && it_ok "config elsewhere: the config's metrics file is not written" ||
    it_fail "config elsewhere: the config's metrics file is not written" "$(head -3 "$D/metrics.prom")"

run noproc tools/demo.sh PYTHON="$D/python"
if [ $RC -eq 0 ] && grep -q ' ONLINE ' "$D/noproc.out" && grep -q ' NEW ' "$D/noproc.out"; then
    it_ok "/proc/net/tcp unreadable: the demo runs (online, data arriving, exit status 0)"
else
    it_fail "/proc/net/tcp unreadable: the demo runs (online, data arriving, exit status 0)" \
        "rc=$RC $(tail -20 "$D/noproc.out")"
fi
exit 0
