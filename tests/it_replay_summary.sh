#!/bin/sh
# it_replay_summary.sh - replay --summary when no threshold was ever set:
# "threshold" is null (not 0, which reads as a threshold every score
# exceeds), "calibration": {"finished": false, "reason": ..} says why, and
# stderr says so in words:
#  - --calibrate-rows past the end of the file;
#  - every row after the first in descending time (dropped): the end of
#    calibration at --calibrate-rows fails for want of scores;
#  - a file too short for the calibration windows;
# and a calibrated replay has its threshold and "finished": true.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
$PYTHON - "$D" <<'PY'
import sys, math, random
d = sys.argv[1]
random.seed(3)
rows = [(1577836800 + i, math.sin(i / 15.0) + random.gauss(0, 0.05),
         0.5 * math.cos(i / 15.0) + random.gauss(0, 0.05), 20 + random.gauss(0, 0.05))
        for i in range(600)]
for name, rs in (("data", rows), ("desc", [(2 * rows[-1][0] - r[0],) + r[1:] for r in rows])):
    with open("%s/%s.csv" % (d, name), "w") as f:
        f.write("ts,flow,pressure,temp\n")
        for r in rs:
            f.write("%d,%.5f,%.5f,%.5f\n" % r)
PY
"$BIN" train -i "$D/data.csv" -o "$D/m.safetensors" --rows 400 --window 10 \
    --arch lstm-ae:8 --epochs 2 --seed 1 -q > /dev/null 2>&1 || { it_fail "train" ""; exit 0; }
# summ NAME ARGS...: replay into $D/NAME.json, stderr $D/NAME.log; prints
# "threshold finished | reason"
summ() {
    n=$1; shift
    "$BIN" replay -m "$D/m.safetensors" --stream s -o /dev/null --summary "$D/$n.json" "$@" \
        2> "$D/$n.log"
    $PYTHON -c 'import json,sys
j = json.load(open(sys.argv[1])); c = j.get("calibration") or {}
print("%s %s | %s" % (json.dumps(j["threshold"]), json.dumps(c.get("finished")), c.get("reason")))' "$D/$n.json"
}
# check NAME DESCRIPTION EXPECTED-REASON-PREFIX
check() {
    got=$(cat "$D/$1.out")
    case "$got" in
        "null false | $3"*)
            if grep -q "replay: calibration never finished, no threshold and no alerts: $3" "$D/$1.log"; then
                it_ok "$2: threshold null, reason: ${got#*| }"
            else
                it_fail "$2: said on stderr" "$(grep -v '^<' "$D/$1.log" | head -3)"
            fi ;;
        *) it_fail "$2: threshold null with the reason" "$got" ;;
    esac
}
summ past -i "$D/data.csv" --calibrate-rows 5000 > "$D/past.out"
check past "--calibrate-rows 5000 of 600 rows" "the input has 600 rows, fewer than --calibrate-rows 5000"
summ desc -i "$D/desc.csv" --calibrate-rows 100 > "$D/desc.out"
check desc "rows in descending time" \
    "ending it at row 100 (--calibrate-rows) failed: threshold quantile: 0 calibration scores"
summ short -i "$D/data.csv" --calib-windows 1000 > "$D/short.out"
check short "--calib-windows 1000, 591 windows in the file" "the input ended after 560 of the 1000 calibration windows"
summ ok -i "$D/data.csv" --calibrate-rows 300 > "$D/ok.out"
case "$(cat "$D/ok.out")" in
    "null"*|"0 "*|*" false "*) it_fail "calibrated replay: a threshold, finished" "$(cat "$D/ok.out")" ;;
    *" true | None") it_ok "calibrated replay: threshold $(cut -d' ' -f1 "$D/ok.out"), finished" ;;
    *) it_fail "calibrated replay: a threshold, finished" "$(cat "$D/ok.out")" ;;
esac
exit 0
