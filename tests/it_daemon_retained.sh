#!/bin/sh
# it_daemon_retained.sh - the retained per-stream state topic
# (alert.state_topic) as a late subscriber sees it, real mosquitto:
#  - a stream evicted when idle and a stream of a detector removed by a
#    reload leave no retained state behind (an empty retained message
#    deletes it: a new subscriber gets nothing), while the live streams'
#    states are still delivered in the same subscription;
#  - a topic shared by a detector's streams (no {stream}) is kept when one
#    of them is evicted and another still publishes there;
#  - after the broker is killed (no persistence) and restarted on the same
#    port, every live stream's retained state is published again.
. tests/lib.sh
H="$PYTHON tests/it_daemon_mqtt.py"
D=$(mktemp -d /tmp/it_retained.XXXXXX)
DPID= ; SPID= ; KPID=
trap 'kill $KPID 2>/dev/null; it_daemon_cleanup' EXIT
MODEL=${AD_SRCDIR:-.}/conf/models/pump.safetensors
it_broker_up
# config with or without detector pumpB ($1: 1 or 0)
write_conf() {
    $PYTHON - "$D/ad.json" "$MODEL" "$IT_PORT" "$1" <<'EOP'
import json, sys
path, model, port, with_b = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
st = "anomalyd/state/{detector}/{stream}"
def det(name, topic, **kw):
    d = {"name": name, "model": model, "topics": [topic],
         "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
         "calibration": {"windows": 1000}, "alert": {"state_topic": st}}
    d.update(kw)
    return d
dets = [det("pumpA", "a/+/pump")]
if with_b:
    dets.append(det("pumpB", "b/+/pump"))
dets.append(det("idle", "i/+/pump", idle_evict_s=2))
dets.append(det("shared", "s/+/pump", idle_evict_s=2,
                alert={"state_topic": "anomalyd/state/shared"}))
json.dump({"broker": {"port": port, "client_id": "it-ret", "qos_subscribe": 1,
                      "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
           "state_dir": sys.argv[1].rsplit("/", 1)[0] + "/state", "workers": 1,
           "detectors": dets}, open(path, "w"))
EOP
}
# fresh_states FILE TIMEOUT TOPIC...: a new subscriber to anomalyd/state/#
# writes "topic payload" lines to FILE until every TOPIC (the positive
# controls) has a state or TIMEOUT s, then one more second for anything a
# retained message would still bring
fresh_states() {
    _o=$1; _t=$2; shift 2
    mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -t 'anomalyd/state/#' -v > "$_o" 2>/dev/null & _sp=$!
    it_wait_until "$_t" has_all "$_o" "$@"
    sleep 1
    kill "$_sp" 2>/dev/null; wait "$_sp" 2>/dev/null
}
has() { grep -q "^$1 {" "$2"; }
has_all() { _f=$1; shift; for _x in "$@"; do has "$_x" "$_f" || return 1; done; }

write_conf 1
$H sub --port "$IT_PORT" --topic 'anomalyd/state/#' --out "$D/sub.jsonl" & SPID=$!
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
# one device keeps publishing on the shared topic's detector (5 Hz, 20 s)
$H pub --port "$IT_PORT" --devices 1 --rows 100 --rate 5 --topic 's/keep{device}/pump' >/dev/null & KPID=$!
$H pub --port "$IT_PORT" --devices 3 --rows 5 --topic 'a/{device}/pump' >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 5 --topic 'b/{device}/pump' >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 5 --topic 'i/{device}/pump' >/dev/null
it_wait_topic "$IT_PORT" anomalyd/state/shared 10 keeppump1 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 3 --topic 's/gone{device}/pump' >/dev/null
for t in pumpA/pump1 pumpA/pump2 pumpA/pump3 pumpB/pump1 idle/pump1; do
    $H wait --file "$D/sub.jsonl" --match "topic=anomalyd/state/$t" --timeout 10 >/dev/null ||
        it_fail "state of $t published" "$(tail -5 "$D/daemon.log")"
done
kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=

# idle eviction (2 s), then a reload that removes detector pumpB
it_wait_log "$D/daemon.log" 'detector idle: stream pump1 idle for 2 s, evicted' 10 &&
it_wait_log "$D/daemon.log" 'detector shared: stream gonepump1 idle for 2 s, evicted' 10 ||
    it_fail "idle streams evicted" "$(grep -E 'evict' "$D/daemon.log" | tail -5)"
write_conf 0
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 ||
    it_fail "reload without pumpB" "$(tail -5 "$D/daemon.log")"
fresh_states "$D/fresh1.txt" 5 anomalyd/state/pumpA/pump1 anomalyd/state/pumpA/pump3
if has anomalyd/state/pumpA/pump1 "$D/fresh1.txt" && has anomalyd/state/pumpA/pump3 "$D/fresh1.txt"; then
    it_ok "a new subscriber gets the live streams' retained states"
else
    it_fail "a new subscriber gets the live streams' retained states" "$(cut -c1-120 "$D/fresh1.txt")"
fi
if ! grep -q '^anomalyd/state/idle/pump1' "$D/fresh1.txt"; then
    it_ok "an idle-evicted stream's retained state is gone"
else
    it_fail "an idle-evicted stream's retained state is gone" "$(grep idle/pump1 "$D/fresh1.txt" | cut -c1-160)"
fi
if ! grep -q '^anomalyd/state/pumpB/' "$D/fresh1.txt"; then
    it_ok "a removed detector's stream leaves no retained state"
else
    it_fail "a removed detector's stream leaves no retained state" "$(grep pumpB "$D/fresh1.txt" | cut -c1-160)"
fi
if grep -q '^anomalyd/state/shared {' "$D/fresh1.txt" &&
   grep -q 'stream shared/gonepump1 gone: state topic anomalyd/state/shared kept' "$D/daemon.log"; then
    it_ok "a state topic shared with a live stream is kept when another stream is evicted"
else
    it_fail "a state topic shared with a live stream is kept" \
        "$(grep shared "$D/fresh1.txt" | cut -c1-120; grep 'gonepump1' "$D/daemon.log" | tail -3)"
fi
# what it keeps must be a live stream's state, not the evicted stream's
if grep '^anomalyd/state/shared {' "$D/fresh1.txt" | grep -q '"stream":"keeppump1"'; then
    it_ok "the shared state topic holds a live stream's state after another is evicted"
else
    it_fail "the shared state topic holds a live stream's state after another is evicted" \
        "$(grep '^anomalyd/state/shared' "$D/fresh1.txt" | cut -c1-100)"
fi
kill "$KPID" 2>/dev/null; wait "$KPID" 2>/dev/null; KPID=

# the broker dies without persistence and comes back on the same port
kill -9 "$IT_BROKER_PID"; wait "$IT_BROKER_PID" 2>/dev/null
mosquitto -c "$D/mosquitto.conf" > "$D/mosquitto2.log" 2>&1 & IT_BROKER_PID=$!
if it_wait_log "$D/daemon.log" 'mqtt: connected' 15 2; then
    fresh_states "$D/fresh2.txt" 5 anomalyd/state/pumpA/pump1 anomalyd/state/pumpA/pump2 \
        anomalyd/state/pumpA/pump3
    if has anomalyd/state/pumpA/pump1 "$D/fresh2.txt" && has anomalyd/state/pumpA/pump2 "$D/fresh2.txt" &&
       has anomalyd/state/pumpA/pump3 "$D/fresh2.txt"; then
        it_ok "broker restarted without persistence: every live stream's retained state is back"
    else
        it_fail "broker restarted without persistence: every live stream's retained state is back" \
            "$(cut -c1-120 "$D/fresh2.txt")"
    fi
else
    it_fail "daemon reconnects to the restarted broker" "$(grep mqtt "$D/daemon.log" | tail -5)"
fi
it_daemon_stop
# a stop is not a removal: the live streams' states stay retained
fresh_states "$D/fresh3.txt" 3 anomalyd/state/pumpA/pump1
if has anomalyd/state/pumpA/pump1 "$D/fresh3.txt"; then
    it_ok "a stop keeps the live streams' retained states"
else
    it_fail "a stop keeps the live streams' retained states" "$(cut -c1-120 "$D/fresh3.txt")"
fi
