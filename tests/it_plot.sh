#!/bin/sh
# it_plot.sh - tools/plot.py on a short replay: a PNG and an HTML page from
# `anomalyd replay` output of a simulated pump fault, checked as a user
# would: a valid PNG of sensible size, the alert spans drawn (orange pixels
# present with --events, absent without), the HTML page self-contained
# (its embedded image decodes to a PNG), and a clear error for an input
# that is not a replay output. Skipped (counted) without matplotlib.
. tests/lib.sh
D=$(mktemp -d /tmp/it_plot.XXXXXX)
trap 'rm -rf "$D"' EXIT
SRC=${AD_SRCDIR:-.}
MODEL=$SRC/conf/models/pump.safetensors

if ! $PYTHON -c 'import matplotlib' 2>/dev/null; then
    echo "ok - plot.py renders a replay # SKIP python3-matplotlib not installed"
    exit 0
fi

$PYTHON "$SRC/tools/pumpsim.py" --seed 7 --days 1 --fault blockage@12h+3h --label \
    --out "$D/in.csv" || { it_fail "pumpsim writes the input"; exit 1; }
$AD_BIN replay -m "$MODEL" -i "$D/in.csv" --calib-windows 200 --margin 1.5 \
    --alert-k 3 --alert-n 5 --alert-m 10 -o "$D/out.csv" -e "$D/ev.jsonl" 2> "$D/replay.log" \
    || { it_fail "replay runs" "$(cat "$D/replay.log")"; exit 1; }
grep -q '"alert_raised"' "$D/ev.jsonl" || it_fail "the replay raises an alert on the fault"

# PNG: signature, IHDR size, file size, orange alert spans present
check_png() {  # file, expect_orange (1/0)
    $PYTHON - "$1" "$2" <<'PY'
import struct, sys
import matplotlib.image as mi
p, want = sys.argv[1], sys.argv[2] == "1"
b = open(p, "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
w, h = struct.unpack(">II", b[16:24])
assert 600 <= w <= 3000 and 400 <= h <= 3000, "size %dx%d" % (w, h)
assert 10000 < len(b) < 1500000, "file size %d" % len(b)
im = mi.imread(p)[:, :, :3]
r, g, bl = im[:, :, 0], im[:, :, 1], im[:, :, 2]
orange = int(((r > 0.95) & (g > 0.55) & (g < 0.75) & (bl < 0.3)).sum())
assert (orange > 50) == want, "orange pixels %d, expected %s" % (orange, want)
print("%dx%d, %d bytes, %d orange pixels" % (w, h, len(b), orange))
PY
}
if $PYTHON "$SRC/tools/plot.py" "$D/out.csv" --input "$D/in.csv" --events "$D/ev.jsonl" \
        -o "$D/p.png" 2> "$D/plot.err" && msg=$(check_png "$D/p.png" 1 2>&1); then
    it_ok "plot.py writes a valid PNG with the alert spans ($msg)"
else
    it_fail "plot.py writes a valid PNG with the alert spans" "$(cat "$D/plot.err") $msg"
fi
if $PYTHON "$SRC/tools/plot.py" "$D/out.csv" --input "$D/in.csv" -o "$D/noev.png" 2> "$D/plot.err" \
        && msg=$(check_png "$D/noev.png" 0 2>&1); then
    it_ok "without --events no alert spans are drawn ($msg)"
else
    it_fail "without --events no alert spans are drawn" "$(cat "$D/plot.err") $msg"
fi

if $PYTHON "$SRC/tools/plot.py" "$D/out.csv" --input "$D/in.csv" --events "$D/ev.jsonl" \
        --title "pump blockage" -o "$D/p.html" 2> "$D/plot.err" &&
   $PYTHON - "$D/p.html" "$D/fromhtml.png" <<'PY'
import base64, re, sys
t = open(sys.argv[1]).read()
m = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", t)
assert m and "pump blockage" in t and "<table>" in t
assert "src='http" not in t and 'src="http' not in t
open(sys.argv[2], "wb").write(base64.b64decode(m.group(1)))
PY
then
    if msg=$(check_png "$D/fromhtml.png" 1 2>&1); then
        it_ok "plot.py writes a self-contained HTML page (embedded PNG, alert table)"
    else
        it_fail "plot.py writes a self-contained HTML page" "$msg"
    fi
else
    it_fail "plot.py writes a self-contained HTML page" "$(cat "$D/plot.err")"
fi

$PYTHON "$SRC/tools/plot.py" "$D/in.csv" -o "$D/bad.png" > "$D/bad.out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q "in.csv: not a replay output (missing column(s) row, ts_ms, score, threshold" "$D/bad.out" \
        && [ ! -e "$D/bad.png" ]; then
    it_ok "a CSV that is not a replay output: exit 1, the missing columns named"
else
    it_fail "a CSV that is not a replay output: exit 1, the missing columns named" "rc=$rc $(cat "$D/bad.out")"
fi
