#!/bin/sh
# it_daemon_state_exact.sh - the numbers of a stream's state file read back
# bit for bit through the daemon: a stream with an open alert (its state
# carries the daemon's "alert_topic" besides the detector's state, so the
# daemon parses and prints it again) is restored at start and saved at
# stop. Its per-feature scales, threshold, Welford sums and probability
# history are set to doubles that 15 digits do not give back (0.1 + 0.2,
# 1/3, one ulp above 0.5 and 1, one ulp below 2 and 0.7): after a
# restart and stop the file holds the same doubles (compared as bytes),
# and a second restart and stop writes the same text. cJSON alone prints
# 15 digits whenever they come within about 1e-16 relative: 0.1 + 0.2
# came back as 0.3, 0.5 + 1 ulp as 0.5.
. tests/lib.sh
it_setup it_state_exact
it_broker_up

cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-exact", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "score": {"metric": "mae", "normalize": "feature"},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
F="$D/state/pump/pump1.state.json"

# start the daemon (log FILE) and wait until it is online
start() {
    : > "$D/sub.jsonl"
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$1" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
}
stop() {
    kill -TERM "$DPID"; wait "$DPID"; DPID=
}

it_sub_start

# a stream that calibrates, then raises an alert open at the stop
S=$(( $(date +%s) - 500 * 60 ))
start "$D/a.log"
$H pub --port "$IT_PORT" --devices 1 --rows 400 --start "$S" --fault 'cavitation@330m+80m'
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=371 \
    --timeout 60 >/dev/null || echo "# not all 371 windows scored"
stop
if [ -f "$F" ] && grep -q '"alert_topic"' "$F" && grep -q '"open":{' "$F"; then
    it_ok "a stream with an open alert: its state file carries the daemon's alert_topic"
else
    it_fail "a stream with an open alert: its state file carries the daemon's alert_topic" \
        "$(cat "$F" 2>/dev/null | head -c 300)"
    exit 0
fi

# the doubles 15 digits do not give back, put where the state keeps them;
# printed by Python's repr (the shortest text that reads back exactly)
$PYTHON - "$F" > "$D/want" <<'EOP' || { it_fail "state file edited"; exit 0; }
import json, math, struct, sys
p = sys.argv[1]
o = json.load(open(p))
odd = [0.1 + 0.2, 1 / 3, math.nextafter(0.5, 1), math.nextafter(1.0, 2),
       math.nextafter(2.0, 0), math.nextafter(0.7, 0)]
sc = o["scale"]
for i in range(len(sc)):
    sc[i] = odd[i % len(odd)] * (1 + i // len(odd))
thr = o["state"]
thr["value"] = math.nextafter(thr["value"], math.inf)
o["threshold"] = thr["value"]
thr["welford"]["mean"] = math.nextafter(0.3, 1)
pr = o["probability"]
for i, v in enumerate(odd):
    if i < len(pr["hist"]):
        pr["hist"][i] = v
    if i < len(pr["short"]):
        pr["short"][i] = v
pr["mean"] = 0.1 + 0.2
json.dump(o, open(p, "w"), separators=(",", ":"))
# what must come back, as bytes
for k, v in [("scale", sc), ("threshold", [thr["value"]]), ("welford.mean", [thr["welford"]["mean"]]),
             ("probability.hist", pr["hist"][:len(odd)]),
             ("probability.short", pr["short"][:len(odd)]), ("probability.mean", [pr["mean"]])]:
    print(k, " ".join(struct.pack("<d", x).hex() for x in v))
EOP

# the same fields of a state file, as bytes
fields() {
    $PYTHON - "$1" "$(awk '/^probability.hist /{print NF - 1}' "$D/want")" \
        "$(awk '/^probability.short /{print NF - 1}' "$D/want")" <<'EOP'
import json, struct, sys
o = json.load(open(sys.argv[1]))
nh, ns = int(sys.argv[2]), int(sys.argv[3])
thr, pr = o["state"], o["probability"]
for k, v in [("scale", o["scale"]), ("threshold", [thr["value"]]),
             ("welford.mean", [thr["welford"]["mean"]]),
             ("probability.hist", pr["hist"][:nh]), ("probability.short", pr["short"][:ns]),
             ("probability.mean", [pr["mean"]])]:
    print(k, " ".join(struct.pack("<d", float(x)).hex() for x in v))
EOP
}

# restored at start (its alert is open), saved at stop: the same doubles
start "$D/b.log"
it_wait_log "$D/b.log" "pump/pump1: calibration restored" 20 || echo "# pump1 not restored"
stop
fields "$F" > "$D/got" 2>&1
cp "$F" "$D/b.json"
if grep -q "pump/pump1: calibration restored" "$D/b.log" && grep -q '"alert_topic"' "$F" &&
   cmp -s "$D/want" "$D/got"; then
    it_ok "restart: scales, threshold, Welford mean and probability history saved again bit for bit ($(wc -w < "$D/want") words)"
else
    it_fail "restart: scales, threshold, Welford mean and probability history saved again bit for bit" \
        "$(diff "$D/want" "$D/got" | head -8) $(grep pump1 "$D/b.log" | head -3)"
fi

# and once more: the same text
start "$D/c.log"
it_wait_log "$D/c.log" "pump/pump1: calibration restored" 20 || echo "# pump1 not restored"
stop
if cmp -s "$D/b.json" "$F"; then
    it_ok "a second restart writes the same state text ($(wc -c < "$F") bytes)"
else
    it_fail "a second restart writes the same state text" \
        "$(cmp "$D/b.json" "$F") $(grep pump1 "$D/c.log" | head -3)"
fi
exit 0
