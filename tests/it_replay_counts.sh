#!/bin/sh
# it_replay_counts.sh - replay's counts of bad cells and its time unit:
#  - a row whose time is out of range and that has a non-numeric cell is
#    skipped whole: its cell is not counted as read (nonnumeric equals the
#    non-finite count);
#  - a numeric time column in milliseconds read as seconds: refused, naming
#    the unit and the date it would be; --time-unit ms replays it.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
$PYTHON - "$D" <<'PY'
import sys, math, random
d = sys.argv[1]
random.seed(7)
with open(d + "/data.csv", "w") as f:
    f.write("ts,flow,pressure,temp\n")
    for i in range(1200):
        ts = str(1577836800 + i)
        if i == 700: ts = "1e300"
        flow = "abc" if i in (700, 900) else "%.5f" % (math.sin(i / 15.0) + random.gauss(0, 0.05))
        f.write("%s,%s,%.5f,%.5f\n" % (ts, flow, 0.5 * math.cos(i / 15.0) + random.gauss(0, 0.05),
                                       20 + random.gauss(0, 0.05)))
PY
"$BIN" train -i "$D/data.csv" -o "$D/m.safetensors" --rows 400 --window 10 \
    --arch lstm-ae:8 --loss mae --epochs 2 --seed 1 -q > /dev/null 2>&1 ||
    { it_fail "train" ""; exit 0; }
"$BIN" replay -m "$D/m.safetensors" -i "$D/data.csv" --stream s --calibrate-rows 400 \
    -o "$D/out.csv" --summary "$D/sum.json" 2> "$D/log"
nn=$($PYTHON -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['nonnumeric'], j['nonfinite'])" "$D/sum.json")
if [ "$nn" = "1 1" ]; then
    it_ok "a non-numeric cell of a skipped row is not counted as read (nonnumeric nonfinite: $nn)"
else
    it_fail "a non-numeric cell of a skipped row is not counted as read" \
        "nonnumeric nonfinite: $nn; $(grep -v '^<' "$D/log" | tail -3)"
fi
# Times in unix milliseconds (a common export): read as seconds they are
# past 9999-12-31. Every row is refused: replay exits 1 naming the unit the
# numbers are a time in; with --time-unit ms the file replays.
$PYTHON - "$D" <<'PY'
import sys
d = sys.argv[1]
rows = [l.rstrip("\n").split(",") for l in open(d + "/data.csv")]
with open(d + "/ms.csv", "w") as f:
    f.write(",".join(rows[0]) + "\n")
    for r in rows[1:]:
        if r[0] == "1e300" or "abc" in r: continue
        f.write(",".join([str(int(r[0]) * 1000)] + r[1:]) + "\n")
PY
"$BIN" replay -m "$D/m.safetensors" -i "$D/ms.csv" --stream s -o "$D/ms.out" 2> "$D/logms"; rc=$?
if [ $rc -ne 0 ] && grep -q "in milliseconds it would be 2020-01-01T00:00:00" "$D/logms" &&
   grep -q "no row has a usable time" "$D/logms"; then
    it_ok "unix-ms times read as seconds: refused (exit $rc), naming milliseconds and the date"
else
    it_fail "unix-ms times read as seconds: refused, naming milliseconds and the date" \
        "rc $rc; $(grep -v '^<' "$D/logms" | head -2)"
fi
"$BIN" replay -m "$D/m.safetensors" -i "$D/ms.csv" --stream s --time-unit ms \
    -o "$D/ms2.out" 2> "$D/logms2"; rc=$?
"$BIN" replay -m "$D/m.safetensors" -i "$D/data.csv" --stream s -o "$D/s.out" 2> /dev/null
# the same rows, the same scores (ts_ms equal: ms x 1e-3 s x 1000)
if [ $rc -eq 0 ] && $PYTHON - "$D" <<'PY'
import csv, sys
d = sys.argv[1]
a = {r["ts_ms"]: r["score"] for r in csv.DictReader(open(d + "/ms2.out"))}
b = {r["ts_ms"]: r["score"] for r in csv.DictReader(open(d + "/s.out"))}
common = [k for k in a if k in b]
sys.exit(0 if len(a) > 1000 and len(common) > 1000 else 1)
PY
then
    it_ok "--time-unit ms: the file replays at the same times"
else
    it_fail "--time-unit ms: the file replays at the same times" "rc $rc; $(tail -2 "$D/logms2")"
fi
# calibration.windows 0 in a config: the daemon refuses it (nothing would
# end calibration), replay -c with --calibrate-rows ends it by rows
cat > "$D/w0.json" <<EOC
{"detectors": [{"name": "p", "model": "$D/m.safetensors", "topics": ["s/#"],
                "calibration": {"windows": 0}}]}
EOC
"$BIN" replay -c "$D/w0.json" -i "$D/data.csv" --stream s --calibrate-rows 400 \
    -o "$D/w0.out" 2> "$D/logw0"; rc=$?
"$BIN" check -c "$D/w0.json" > "$D/checkw0" 2>&1; rc2=$?
if [ $rc -eq 0 ] && [ "$(wc -l < "$D/w0.out")" -gt 1000 ] && [ $rc2 -ne 0 ] &&
   grep -q "calibration.windows: 0" "$D/checkw0"; then
    it_ok "calibration.windows 0: replay -c --calibrate-rows runs, check refuses it"
else
    it_fail "calibration.windows 0: replay -c --calibrate-rows runs, check refuses it" \
        "replay rc $rc: $(grep -v '^<' "$D/logw0" | tail -1); check rc $rc2: $(tail -1 "$D/checkw0")"
fi
exit 0
