#!/bin/sh
# it_daemon_pack_size.sh - a message is taken whole, however many samples
# its bytes hold, with a real broker:
#  - a SenML pack of 1000 records (a device's backlog of 1000 seconds sent
#    at once after an outage): 1000 samples, 991 windows scored, no parse
#    error. A pack of more than 256 records used to be refused whole
#    ("SenML: more than 256 records").
#  - a JSON object of 300 features (a wide machine: one message per row):
#    every message's 300 samples taken, a window scored per row. Any object
#    of more than 256 fields used to be refused ("too many samples"), so a
#    model of more than 256 features fed by JSON never scored a window.
#  - the pack's windows, taken into batches of 16 (max_batch) as its
#    samples complete them, take some 60 batches at once; the spare ones
#    are freed once the next seconds use no more than one (stats
#    inference.spare_batches back to at most 1: the housekeeping pull
#    takes one a second). They used to stay allocated, a
#    burst's memory pinned until the daemon stopped.
. tests/lib.sh
it_setup it_pack_size

$PYTHON - "$D" <<'PY'
import json, math, random, sys, time
d = sys.argv[1]
random.seed(3)
with open(d + "/one.csv", "w") as f:
    f.write("ts,v\n")
    for i in range(300):
        f.write("%d,%.5f\n" % (1577836800 + i, math.sin(i / 7.0) + random.gauss(0, 0.05)))
bt = int(time.time()) - 7200
recs = [{"bn": "dev1:", "bt": bt, "n": "v", "t": 0, "v": 0.0}]
recs += [{"n": "v", "t": i, "v": round(math.sin(i / 7.0), 5)} for i in range(1, 1000)]
open(d + "/pack.json", "w").write(json.dumps(recs))
F = 300
names = ["f%03d" % j for j in range(F)]
with open(d + "/wide.csv", "w") as f:
    f.write("ts," + ",".join(names) + "\n")
    for i in range(40):
        f.write("%d,%s\n" % (1577836800 + i, ",".join("%.4f" % (math.sin(i / 5.0 + j) + random.gauss(0, 0.05)) for j in range(F))))
with open(d + "/wide.jsonl", "w") as f:
    for i in range(12):
        o = {"ts": (bt + i) * 1000}
        o.update({n: round(math.sin(i / 5.0 + j), 4) for j, n in enumerate(names)})
        f.write(json.dumps(o) + "\n")
PY
"$AD_BIN" train -i "$D/one.csv" -o "$D/one.safetensors" --window 10 --arch lstm-ae:4 \
    --epochs 1 --seed 1 -q || { it_fail "a one-feature model trains"; exit 1; }
"$AD_BIN" train -i "$D/wide.csv" -o "$D/wide.safetensors" --window 3 --arch lstm-ae:4 \
    --epochs 1 --seed 1 -q || { it_fail "a 300-feature model trains"; exit 1; }
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-pack-size", "stats_interval_s": 0.5,
            "reconnect_min_s": 0.2},
 "max_payload_bytes": 65536, "max_batch": 16,
 "detectors": [
  {"name": "pack", "model": "$D/one.safetensors", "topics": ["pack/+"],
   "payload": {"format": "senml"}, "quality": {"enabled": false},
   "calibration": {"method": "sigma", "k": 3, "windows": 50, "floor": 0, "model_guard": 0}},
  {"name": "wide", "model": "$D/wide.safetensors", "topics": ["wide/+"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "quality": {"enabled": false},
   "calibration": {"method": "sigma", "k": 3, "windows": 5, "floor": 0, "model_guard": 0}}]}
EOC
it_sub_start
"$AD_BIN" run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"

# "samples windows_scored parse_errors" of the daemon's last stats
st() {
    $PYTHON - "$D/sub.jsonl" <<'PY'
import json, sys
st = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        st = json.loads(m["payload"])
print(st.get("samples"), st.get("windows_scored"), st.get("parse_errors"))
PY
}
ok_wait() {
    i=0
    while [ $i -lt 50 ]; do
        [ "$(st)" = "$1" ] && return 0
        sleep 0.2; i=$((i + 1))
    done
    return 1
}
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t pack/dev1 -f "$D/pack.json"
if ok_wait "1000 991 0"; then
    it_ok "a SenML pack of 1000 records: 1000 samples, 991 windows scored, no parse error"
else
    it_fail "a SenML pack of 1000 records: 1000 samples, 991 windows scored, no parse error" \
        "samples windows parse_errors: $(st)" "$(grep -i senml "$D/daemon.log" | head -3)"
fi
# "max last" of the stats' inference.spare_batches
spare() {
    $PYTHON - "$D/sub.jsonl" <<'PY'
import json, sys
v = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        v.append(json.loads(m["payload"]).get("inference", {}).get("spare_batches"))
print(max((x for x in v if x is not None), default=None), v[-1] if v else None)
PY
}
i=0
while [ $i -lt 50 ]; do
    set -- $(spare)
    [ "$2" != None ] && [ "$2" -le 1 ] && [ "$1" -ge 10 ] && break
    sleep 0.2; i=$((i + 1))
done
if [ "$2" != None ] && [ "$2" -le 1 ] && [ "$1" -ge 10 ]; then
    it_ok "the pack's $1 spare batches are freed once unused: $2 left"
else
    it_fail "the pack's spare batches are freed once unused" \
        "inference.spare_batches: most $1, last $2 (want at least 10, then at most 1)"
fi
while read -r line; do
    mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t wide/m1 -m "$line"
done < "$D/wide.jsonl"
if ok_wait "4600 1001 0"; then
    it_ok "12 JSON objects of 300 features: 3600 samples, 10 windows scored (window 3)"
else
    it_fail "12 JSON objects of 300 features: 3600 samples, 10 windows scored (window 3)" \
        "samples windows parse_errors (with the pack's 1000 991): $(st)" \
        "$(grep -i "wide" "$D/daemon.log" | head -3)"
fi
kill "$DPID"; wait "$DPID"; rc=$?; DPID=
[ "$rc" = 0 ] && it_ok "daemon exits 0" || it_fail "daemon exits 0" "exit $rc"
exit 0
