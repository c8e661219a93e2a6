#!/bin/sh
# it_public_streams.sh - bench/public_streams.py on a folder of two
# generated univariate streams (five-minute rows, 4 days, a daily cycle
# with noise): one with a two-hour fault (x3) inside its labelled window,
# one without. The tool runs the README command on each, counts alerts
# after the training part and, with a labelled-windows file, the window
# hit and the alerts outside it; a folder without CSV is refused.
. tests/lib.sh
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
mkdir "$D/data" "$D/empty"

$PYTHON - "$D/data" <<'EOF'
import sys, math, random, datetime, json
random.seed(5)
t0 = datetime.datetime(2024, 5, 6)
wins = {}
for name, fault in (("with_fault", True), ("clean", False)):
    with open("%s/%s.csv" % (sys.argv[1], name), "w") as f:
        f.write("timestamp,value\n")
        for i in range(4 * 288):
            t = t0 + datetime.timedelta(minutes=5 * i)
            v = 50 + 20 * math.sin(2 * math.pi * i / 288) + random.gauss(0, 1)
            if fault and 3 * 288 <= i < 3 * 288 + 24:
                v *= 3
            f.write("%s,%.3f\n" % (t.strftime("%Y-%m-%d %H:%M:%S"), v))
    s = t0 + datetime.timedelta(days=3) - datetime.timedelta(hours=2)
    wins["some/dir/%s.csv" % name] = ([[str(s), str(s + datetime.timedelta(hours=6))]]
                                      if fault else [])
json.dump(wins, open(sys.argv[1] + "/../windows.json", "w"))
EOF

if $PYTHON bench/public_streams.py --build "$AD_BUILD" --data "$D/data" \
        --windows "$D/windows.json" --out "$D/out" > "$D/table" 2> "$D/err"; then
    it_ok "public_streams.py runs on two streams"
else
    it_fail "public_streams.py runs on two streams" "$(cat "$D/table" "$D/err")"
fi
if grep -q "^with_fault  *rows   1152  alerts  *[1-9][0-9]*  windows hit 1/1  false alerts 0$" "$D/table" &&
   grep -q "^clean  *rows   1152  alerts  *[0-9]*  windows hit 0/0" "$D/table" &&
   grep -q "^total: 2 streams, [0-9]* alerts, windows hit 1/1, false alerts [0-9]*$" "$D/table" &&
   [ -s "$D/out/with_fault.events.jsonl" ]; then
    it_ok "the fault's window is hit, no alert outside it on that stream, totals printed"
else
    it_fail "the fault's window is hit, totals printed" "$(cat "$D/table")"
fi
if $PYTHON bench/public_streams.py --build "$AD_BUILD" --data "$D/empty" > "$D/t2" 2>&1; then
    it_fail "an empty folder is refused" "$(cat "$D/t2")"
elif grep -q "no CSV file in" "$D/t2"; then
    it_ok "an empty folder is refused, naming it"
else
    it_fail "an empty folder is refused, naming it" "$(cat "$D/t2")"
fi
