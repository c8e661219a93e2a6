# adapt_lib.sh - helpers of the continual-learning daemon tests
# (it_daemon_adapt*.sh), sourced after tests/lib.sh; they use H, D, IT_PORT,
# START (the first row's time, s) and K (rows published so far).
# pub FROM TO: simulator rows FROM..TO-1 of pump1, one a minute from START,
# from a pump whose current reads 15% high and pressure 0.6 bar low (a
# plant the shipped model was not trained on: fine-tuning pays off there);
# PUB_NO_TS=1: without their time (the daemon stamps them on arrival)
pub() {
    it_py - "$IT_PORT" "$START" "$1" "$2" <<'EOP'
import json, sys, os
from it_daemon_mqtt import load_pumpsim, connect
ps = load_pumpsim()
port, start, k0, k1 = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sim = ps.PumpSim(1, 60.0, start, [])
c = connect(port)
infos = []
for k in range(k1):
    ts, row, _ = sim.step()
    if k < k0:
        continue
    row["current"] *= 1.15
    row["pressure"] -= 0.6
    msg = {s: round(v, 4) for s, v in row.items()}
    if not os.environ.get("PUB_NO_TS"):
        msg["ts"] = int(round(ts * 1000))
    infos.append(c.publish("sensors/pump1/pump", json.dumps(msg), qos=1))
for i in infos:
    i.wait_for_publish(30)
c.disconnect(); c.loop_stop()
EOP
}
# events_has DECISION: the stream's events topic carried that decision
events_has() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events event=adapt \
        decision="$1" --timeout "${2:-0.1}" > /dev/null
}
# feed_until DECISION... : publish 40 rows at a time (up to row FEED_MAX, default 1000) until
# one of the decisions is on the events topic; windows are offered to the
# learner only once the stream detects, and how many are in flight at the
# phase change depends on the machine, so the data is paced by the events
# themselves (up to 3 s after each 40 rows for any of the decisions, not 3 s
# for each in turn)
feed_until() {
    while [ $K -lt ${FEED_MAX:-1000} ]; do
        pub $K $((K + 40)); K=$((K + 40))
        if [ $# -eq 1 ]; then
            events_has "$1" 3 && return 0
        else
            it_wait_until 3 events_any "$@" && return 0
        fi
    done
    return 1
}
events_any() { # events_any DECISION...: one of them is on the events topic
    for want in "$@"; do events_has "$want" && return 0; done
    return 1
}
# shadow_ids: the model id of each candidate put in shadow (the events
# topic's adapt events, decision shadow), one a line
shadow_ids() {
    $PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1/events":
        p = json.loads(m["payload"])
        if p.get("event") == "adapt" and p.get("decision") == "shadow":
            print(p.get("model_id"))
EOP
}
refr() { # refr FILE: adapt.reference_ratio on pump1's last state ("none")
    $PYTHON - "$1" <<'EOP'
import json, sys
r = "none"
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1":
        v = json.loads(m["payload"]).get("adapt", {}).get("reference_ratio")
        r = repr(float(v)) if isinstance(v, (int, float)) else "none"
print(r)
EOP
}
# restart_daemon: stop the daemon and the subscriber, start both again
# (the daemon's log so far kept as daemon1.log, the messages from now on
# in sub2.jsonl), wait until the daemon is online
restart_daemon() {
    kill -TERM "$DPID"; wait "$DPID"; DPID=
    kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
    mv "$D/daemon.log" "$D/daemon1.log"
    $H sub --port "$IT_PORT" --topic 'anomalyd/#' --out "$D/sub2.jsonl" & SPID=$!
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
    $H wait --file "$D/sub2.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
        { it_fail "daemon restarts" "$(cat "$D/daemon.log")"; exit 1; }
}
# cand_conf CLIENT_ID [WARN_EVERY]: $D/ad.json of the candidate-file tests
# (it_daemon_adapt_cand_*.sh): the shipped model, a state directory, 2
# workers, a fine-tune every 60 windows put in shadow for 120; with
# calibration.warn_every WARN_EVERY when given (a change rebuilds the
# stream at a reload)
cand_conf() {
    _we=
    [ -n "${2:-}" ] && _we=", \"warn_every\": $2"
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "$1", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100$_we}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 120, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"k": 3, "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# order_shim CASE: the shim tests/state_order.c built ($D/state_order.so,
# it_shim); when it cannot be (not built, or an ASan build: its
# interceptors take rename and unlink), the case CASE is skipped and the
# test ends
order_shim() {
    it_shim state_order -ldl -lpthread ||
        { it_skip "$1" "shim not built: $(head -2 "$D/cc.log")"; exit 0; }
    if ldd "$AD_BIN" 2>/dev/null | grep -q libasan; then
        it_skip "$1" "ASan build: its interceptors take rename and unlink"
        exit 0
    fi
}
# order_start N [DELAY_MS]: the daemon (log daemonN.log) with the shim
# tests/state_order.c (it_shim state_order), its candidate file's rename
# held DELAY_MS (ORDER_CAND_DELAY_FIRST in the environment: only the
# first candidate's); sub.jsonl the messages from then on
order_start() {
    it_sub_start
    ORDER_LOG="$D/order.log" ORDER_CAND_DELAY_MS=${2:-0} LD_PRELOAD="$D/state_order.so" \
        $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon$1.log" & DPID=$!
    it_wait_online "$D/sub.jsonl" 0 20 ||
        { it_fail "daemon $1 starts" "$(cat "$D/daemon$1.log")"; exit 1; }
}
# order_stop N: the daemon stopped (it_daemon_stop) and the subscriber;
# its messages kept as subN.jsonl
order_stop() {
    it_daemon_stop
    kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
    mv "$D/sub.jsonl" "$D/sub$1.jsonl"
}
