#!/bin/sh
# it_daemon_overflow.sh - a long SenML pack loses no row, with a real broker.
# A gateway batching readings, or a device sending its backlog after an
# outage, completes far more rows in one message than a stream queues
# (AD_STREAM_QUEUE, 64); the daemon takes them into the windows as each
# sample completes them, so every row is scored (it used to take them only
# after the whole message: the oldest were lost, counted in rows_overflow).
#  - all mode (senml's default), a one-feature model trained here (T = 10):
#    one pack of 200 samples one second apart is 200 rows, 191 windows, all
#    scored; rows_overflow stays 0 in the stats (per detector and in total)
#    and in the metrics file (anomalyd_rows_overflow_total). Calibration
#    spans all 191 windows (sigma: mean + 3 std of every score), so its
#    threshold, and the score of the window that ended it, equal those of
#    `anomalyd replay` of the same 200 rows with the same config (1e-6).
#    max_batch 64: the pack's windows fill two batches and most of a
#    third, fed back in order (the last score is the 191st window's).
#  - period mode, the bundled 5-feature pump model: one pack of 250 records,
#    the 5 sensors every 4 s, is 196 grid rows (sample-and-hold between the
#    samples) in one message; calibration on the first 150 windows gives
#    the threshold and score replay gives on the same rows written out on
#    the 1 s grid.
#  - period mode with 100 s of lateness (rows.max_lateness_ms), the pump
#    model: the 5 sensors every second for 120 s, then nothing for 100 s
#    and every second again for 100 s. The first sample after the silence
#    moves the watermark past 101 grid rows at once (more than the stream
#    queues), in the daemon (one pack) and in `anomalyd replay` of the same
#    rows (one CSV line): calibration on 120 windows gives the same
#    threshold and score in both, and replay loses no row (its summary's
#    rows_overflow 0). Replay used to take the rows only after each CSV
#    line: 36 were lost at the silence (rows_overflow), so it scored other
#    windows than the daemon did and calibrated to another threshold.
# The payload format json is one object per message (one row): no pack.
. tests/lib.sh
it_setup it_overflow
PUMP=${AD_SRCDIR:-.}/conf/models/pump.safetensors

# the data: pumpsim; a one-feature model trained on its vibration
$PYTHON - "$D" "${AD_SRCDIR:-.}/tools/pumpsim.py" <<'PY'
import importlib.util, json, sys, time
d, path = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("pumpsim", path)
ps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ps)
sim = ps.PumpSim(1, 60.0, 0)
rows = [sim.step()[1] for _ in range(600)]
with open(d + "/train.csv", "w") as f:
    f.write("ts,vibration\n")
    for i in range(400):
        f.write("%d,%.6f\n" % (1577836800 + i, rows[i]["vibration"]))
bt = int(time.time()) - 3600
# all mode: 200 samples, t = 0..199 s
vib = [round(rows[400 + i]["vibration"], 6) for i in range(200)]
recs = [{"bn": "pump1:", "bt": bt, "n": "vibration", "t": 0, "v": vib[0]}]
recs += [{"n": "vibration", "t": i, "v": vib[i]} for i in range(1, 200)]
open(d + "/all.json", "w").write(json.dumps(recs))
with open(d + "/all.csv", "w") as f:
    f.write("ts,vibration\n")
    for i in range(200):
        f.write("%d,%.6f\n" % (bt + i, vib[i]))
# period mode: the 5 sensors at t = 0, 4, .., 196 s
names = ["vibration", "current", "pressure", "temperature", "flow"]
recs, held = [], []
for k in range(50):
    r = {n: round(rows[k][n], 6) for n in names}
    for j, n in enumerate(names):
        rec = {"n": n, "t": 4 * k, "v": r[n]}
        if k == 0 and j == 0:
            rec.update({"bn": "pump2:", "bt": bt})
        recs.append(rec)
    held += [r] * 4
open(d + "/period.json", "w").write(json.dumps(recs))
# period mode with lateness: the 5 sensors at t = 0..119 and 220..319 s
ts = list(range(120)) + list(range(220, 320))
recs = []
with open(d + "/late.csv", "w") as f:
    f.write("ts," + ",".join(names) + "\n")
    for k, t in enumerate(ts):
        r = {n: round(rows[k][n], 6) for n in names}
        for j, n in enumerate(names):
            rec = {"n": n, "t": t, "v": r[n]}
            if k == 0 and j == 0:
                rec.update({"bn": "pump3:", "bt": bt})
            recs.append(rec)
        f.write("%d,%s\n" % (bt + t, ",".join("%.6f" % r[n] for n in names)))
open(d + "/late.json", "w").write(json.dumps(recs, separators=(",", ":")))
with open(d + "/period.csv", "w") as f:        # the grid rows 0..196 s
    f.write("ts," + ",".join(names) + "\n")
    for g in range(197):
        f.write("%d,%s\n" % (bt + g, ",".join("%.6f" % held[g][n] for n in names)))
PY
"$AD_BIN" train -i "$D/train.csv" -o "$D/one.safetensors" --window 10 --arch lstm-ae:8 \
    --epochs 2 --seed 1 -q || { it_fail "a one-feature model trains"; exit 1; }
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-overflow", "stats_interval_s": 1,
            "reconnect_min_s": 0.2},
 "workers": 1, "max_batch": 64, "metrics": {"textfile": "$D/anomalyd.prom"},
 "detectors": [
  {"name": "all", "model": "$D/one.safetensors", "topics": ["all/+"],
   "payload": {"format": "senml"}, "quality": {"enabled": false},
   "calibration": {"method": "sigma", "k": 3, "windows": 191, "floor": 0, "model_guard": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "period", "model": "$PUMP", "topics": ["period/+"],
   "payload": {"format": "senml"}, "rows": {"mode": "period", "period_ms": 1000},
   "quality": {"enabled": false},
   "calibration": {"method": "sigma", "k": 3, "windows": 150, "floor": 0, "model_guard": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}},
  {"name": "late", "model": "$PUMP", "topics": ["late/+"],
   "payload": {"format": "senml"},
   "rows": {"mode": "period", "period_ms": 1000, "max_lateness_ms": 100000},
   "quality": {"enabled": false},
   "calibration": {"method": "sigma", "k": 3, "windows": 120, "floor": 0, "model_guard": 0},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
$H sub --port "$IT_PORT" --topic '#' --out "$D/sub.jsonl" & SPID=$!
"$AD_BIN" run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon online" "$(cat "$D/daemon.log")"

# the last stats message: "KEY KEY.." -> values (detectors[NAME].KEY for a
# detector's)
stats() {
    $PYTHON - "$D/sub.jsonl" "$@" <<'PY'
import json, sys
st = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        st = json.loads(m["payload"])
out = []
for k in sys.argv[2:]:
    if k.startswith("detectors["):
        name, key = k[len("detectors["):].split("].")
        v = [d for d in st["detectors"] if d["name"] == name][0].get(key, "missing")
    else:
        v = st
        for part in k.split("."):
            v = v.get(part, "missing") if isinstance(v, dict) else "none"
    out.append(str(v))
print(" ".join(out))
PY
}

# the first state of STREAM with a threshold, against the first replay row
# with one: "thr score" of each, and whether they agree within 1e-6
compare() {
    $PYTHON - "$D/sub.jsonl" "$1" "$2" <<'PY'
import csv, json, sys
st = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/" + sys.argv[2] and m["payload"]:
        j = json.loads(m["payload"])
        if j.get("threshold") is not None:
            st = j
            break
rep = None
for r in csv.reader(open(sys.argv[3])):
    if len(r) > 4 and r[4] not in ("", "threshold"):
        rep = (float(r[4]), float(r[2]))
        break
if st is None or rep is None:
    print("daemon %s replay %s: no threshold" % (st and st["threshold"], rep))
    sys.exit(1)
d = (st["threshold"], st["score"])
ok = all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(d, rep))
print("daemon threshold %.9g score %.9g, replay threshold %.9g score %.9g"
      % (d[0], d[1], rep[0], rep[1]))
sys.exit(0 if ok else 1)
PY
}

# all mode: one pack of 200 samples
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t all/pump1 -f "$D/all.json"
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=200 windows_scored=191 \
        --timeout 15 >/dev/null; then
    it_ok "all mode, a pack of 200 samples: 191 windows scored (every row)"
else
    it_fail "all mode, a pack of 200 samples: 191 windows scored (every row)" \
        "samples, windows_scored, rows_overflow: $(stats samples windows_scored rows_overflow)"
fi
set -- $(stats "detectors[all].rows_overflow" rows_overflow inference.batches)
[ "$1" = 0 ] && [ "$2" = 0 ] &&
    it_ok "all mode: rows_overflow 0, per detector and in total" ||
    it_fail "all mode: rows_overflow 0, per detector and in total" "got $*"
[ "$3" -ge 3 ] 2>/dev/null &&
    it_ok "all mode: the 191 windows went in $3 batches of at most 64 (max_batch)" ||
    it_fail "all mode: the 191 windows in 3 or more batches of at most 64" "got $3"
"$AD_BIN" replay -c "$D/ad.json" --detector all -i "$D/all.csv" -o "$D/all.out" 2> "$D/all.log" ||
    it_fail "replay of the all-mode rows" "$(cat "$D/all.log")"
it_wait_until 10 compare all/pump1 "$D/all.out" >/dev/null
got=$(compare all/pump1 "$D/all.out") &&
    it_ok "all mode: threshold over all 191 scores and the last score as replay's: $got" ||
    it_fail "all mode: threshold over all 191 scores and the last score as replay's" "$got"

# period mode: one pack of 250 records, 196 grid rows in the message
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t period/pump2 -f "$D/period.json"
"$AD_BIN" replay -c "$D/ad.json" --detector period -i "$D/period.csv" -o "$D/period.out" \
    2> "$D/period.log" || it_fail "replay of the period-mode rows" "$(cat "$D/period.log")"
it_wait_until 15 compare period/pump2 "$D/period.out" >/dev/null
got=$(compare period/pump2 "$D/period.out") &&
    it_ok "period mode, a pack of 250 samples: calibrated on 150 windows, threshold and score as replay's: $got" ||
    it_fail "period mode, a pack of 250 samples: calibrated on 150 windows, threshold and score as replay's" \
        "$got; stats samples, windows_scored, rows_overflow: $(stats samples windows_scored rows_overflow)"

# period mode with lateness: one pack, the watermark past 101 rows at once
mosquitto_pub -h 127.0.0.1 -p "$IT_PORT" -q 1 -t late/pump3 -f "$D/late.json"
"$AD_BIN" replay -c "$D/ad.json" --detector late -i "$D/late.csv" -o "$D/late.out" \
    --summary "$D/late.sum" 2> "$D/late.log" ||
    it_fail "replay of the late period-mode rows" "$(cat "$D/late.log")"
it_wait_until 15 compare late/pump3 "$D/late.out" >/dev/null
got=$(compare late/pump3 "$D/late.out") &&
    it_ok "period mode, 100 s lateness, 101 rows out at once: calibrated on 120 windows, threshold and score as replay's: $got" ||
    it_fail "period mode, 100 s lateness, 101 rows out at once: calibrated on 120 windows, threshold and score as replay's" \
        "$got; $(grep -h "rows lost" "$D/late.log")"
got=$($PYTHON -c 'import json, sys; j = json.load(open(sys.argv[1])); print(j.get("rows_overflow"), j["windows"])' "$D/late.sum")
set -- $got
[ "$1" = 0 ] && [ "$2" -ge 150 ] &&
    it_ok "replay, period mode, 100 s lateness: no row lost (rows_overflow 0), $2 windows" ||
    it_fail "replay, period mode, 100 s lateness: no row lost (rows_overflow 0)" \
        "rows_overflow, windows: $got; $(grep -h "rows lost" "$D/late.log")"

# the figures once more after a stats tick, and the metrics file
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples=1550 --timeout 10 >/dev/null
sleep 1.5
set -- $(stats "detectors[period].rows_overflow" rows_overflow windows_scored)
[ "$1" = 0 ] && [ "$2" = 0 ] && [ "$3" -ge $((191 + 167)) ] &&
    it_ok "period mode: rows_overflow 0, windows_scored $3 (191 + the pack's 167 and the grid's since)" ||
    it_fail "period mode: rows_overflow 0, windows_scored >= 358" "got $*"
P="$D/anomalyd.prom"
x=$(awk '$1 == "anomalyd_rows_overflow_total" { print $2 }' "$P")
grep -q '^# TYPE anomalyd_rows_overflow_total counter$' "$P" && [ "$x" = 0 ] &&
    it_ok "metrics file: anomalyd_rows_overflow_total 0, a counter" ||
    it_fail "metrics file: anomalyd_rows_overflow_total 0, a counter" \
        "got '$x': $(grep -c . "$P") lines"
it_daemon_stop
exit 0
