#!/bin/sh
# it_daemon_adapt_pack.sh - continual learning sees every window of a long
# pack, with a real broker. A SenML pack of 2500 samples (a device's
# backlog) completes 2491 windows in one message; the daemon hands them
# all to the workers before the first score is back, so 2491 are in flight
# at once. The detector keeps a copy of each window out until its score
# is fed (continual learning is offered the window then): that copy used
# to be kept for the last 1024 only, so the 1467 oldest windows were never
# offered to the learner, and nothing said so. Now the copies follow the
# windows out (up to 64 MB a stream, freed once back): the learner is
# offered all 2491 (adapt.offered in the stream's state file, saved at
# stop), and none is counted as not offered (stats adapt_unoffered 0).
. tests/lib.sh
it_setup it_adapt_pack

$PYTHON - "$D" <<'PY'
import json, math, random, sys, time
d = sys.argv[1]
random.seed(5)
with open(d + "/one.csv", "w") as f:
    f.write("ts,v\n")
    for i in range(300):
        f.write("%d,%.5f\n" % (1577836800 + i, math.sin(i / 7.0) + random.gauss(0, 0.05)))
bt = int(time.time()) - 7200
recs = [{"bn": "dev1:", "bt": bt, "n": "v", "t": 0, "v": 0.0}]
recs += [{"n": "v", "t": i, "v": round(math.sin(i / 7.0), 4)} for i in range(1, 2500)]
open(d + "/pack.json", "w").write(json.dumps(recs, separators=(",", ":")))
PY
"$AD_BIN" train -i "$D/one.csv" -o "$D/one.safetensors" --window 10 --arch lstm-ae:4 \
    --epochs 1 --seed 1 -q || { it_fail "a one-feature model trains"; exit 1; }
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-adapt-pack", "stats_interval_s": 0.5,
            "reconnect_min_s": 0.2},
 "max_payload_bytes": 262144, "workers": 1, "state_dir": "$D/state",
 "detectors": [
  {"name": "pack", "model": "$D/one.safetensors", "topics": ["pack/+"],
   "payload": {"format": "senml"}, "quality": {"enabled": false},
   "calibration": {"method": "fixed", "fixed": 1000},
   "adapt": {"enabled": true, "every_windows": 1000000, "every_hours": 0}}]}
EOC
it_sub_start
"$AD_BIN" run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t pack/dev1 -f "$D/pack.json"
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=2500 windows_scored=2491 \
        --timeout 30 >/dev/null; then
    it_ok "a SenML pack of 2500 samples: 2491 windows scored"
else
    it_fail "a SenML pack of 2500 samples: 2491 windows scored" "$(tail -3 "$D/daemon.log")"
fi
un=$($PYTHON - "$D/sub.jsonl" <<'PY'
import json, sys
st = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        st = json.loads(m["payload"])
print(st.get("adapt_unoffered"), st["detectors"][0].get("adapt_unoffered"))
PY
)
[ "$un" = "0 0" ] &&
    it_ok "stats: adapt_unoffered 0, in total and for the detector" ||
    it_fail "stats: adapt_unoffered 0, in total and for the detector" "got $un"
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ "$rc" = 0 ] && it_ok "daemon exits 0" || it_fail "daemon exits 0" "exit $rc"
got=$($PYTHON -c 'import json, sys; print(json.load(open(sys.argv[1]))["adapt"]["offered"])' \
      "$D/state/pack/dev1.state.json" 2>&1)
[ "$got" = 2491 ] &&
    it_ok "continual learning was offered all 2491 windows of the pack (adapt.offered)" ||
    it_fail "continual learning was offered all 2491 windows of the pack (adapt.offered)" \
        "got $got; $(grep -i 'not offered' "$D/daemon.log" | head -2)"
exit 0
