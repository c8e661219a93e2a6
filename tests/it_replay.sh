#!/bin/sh
# it_replay.sh - `anomalyd replay` on generated data with an injected
# anomaly: per-row output, alert events at the right place naming the right
# sensor, point metrics, identical output on a second run (stable alert
# ids), a one-sample spike raised by --metric peak and not by mae, NaN cells rejected and counted,
# non-numeric cells read as missing and rows with times no stream can hold
# (1e300, before 1970) skipped, named and counted, a hole in the timestamps raised
# and cleared as a dropout, the pipeline of a config (-c, --detector,
# options overriding single settings), bootstrap training
# phases, the example configuration on a five-minute univariate CSV
# (README), usage errors naming the option, FIFOs refused without a hang.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

# 1200 rows at 1 s, three sensors (two sines and a noisy level), label
# column; rows 800..859: 'pressure' jumps by +6 standard deviations.
$PYTHON - "$D/data.csv" <<'EOF'
import sys, math, random
random.seed(7)
with open(sys.argv[1], "w") as f:
    f.write("datetime,flow,pressure,temp,anomaly\n")
    for i in range(1200):
        s = 1577836800 + i
        ts = "2020-01-01 %02d:%02d:%02d" % (i // 3600, (i // 60) % 60, i % 60)
        flow = math.sin(i / 15.0) + random.gauss(0, 0.05)
        pres = 0.5 * math.cos(i / 15.0) + random.gauss(0, 0.05)
        temp = 20 + random.gauss(0, 0.05)
        a = 1 if 800 <= i < 860 else 0
        if a:
            pres += 6 * 0.35
        cell = "nan" if i == 1000 else "%.5f" % temp
        f.write("%s,%.5f,%.5f,%s,%d\n" % (ts, flow, pres, cell, a))
EOF

if "$BIN" train -i "$D/data.csv" -o "$D/m.safetensors" --rows 400 --window 10 \
        --arch lstm-ae:16 --loss mae --epochs 15 --seed 1 -q > "$D/train.log" 2>&1; then
    it_ok "train a small model on the first 400 rows"
else
    it_fail "train a small model on the first 400 rows" "$(cat "$D/train.log")"
    exit 0
fi

run_replay() { # run_replay OUT EVENTS LOG [extra...]
    o=$1; e=$2; l=$3; shift 3
    "$BIN" replay -m "$D/m.safetensors" -i "$D/data.csv" --stream pump1 \
        --calibrate-rows 400 --exclude-calibration --label anomaly \
        -o "$o" -e "$e" "$@" 2> "$l"
}
if run_replay "$D/out1.csv" "$D/ev1.jsonl" "$D/log1"; then
    it_ok "replay runs"
else
    it_fail "replay runs" "$(cat "$D/log1")"
fi

# a CSV without one of the model's features: said to be missing, naming
# the file and the columns it has
cut -d, -f1,2,4,5 "$D/data.csv" > "$D/nopres.csv"
"$BIN" replay -m "$D/m.safetensors" -i "$D/nopres.csv" --stream pump1 \
    --calibrate-rows 400 -o "$D/nopres.out" 2> "$D/nopres.log"; rc=$?
if [ $rc -ne 0 ] &&
   grep -qF "$D/nopres.csv: column 'pressure' is missing (the file has columns: 'datetime', 'flow', 'temp', 'anomaly')" "$D/nopres.log"; then
    it_ok "replay: a feature column missing from the CSV is named as missing, with the file's columns"
else
    it_fail "replay: a feature column missing from the CSV is named as missing, with the file's columns" \
        "rc=$rc $(cat "$D/nopres.log")"
fi

n=$(wc -l < "$D/out1.csv")
if [ "$n" -eq 1201 ]; then it_ok "one output line per input row (1200 + header)"
else it_fail "one output line per input row" "got $n lines"; fi

if head -1 "$D/out1.csv" | grep -q '^row,ts_ms,score,smoothed,threshold,exceeded,anomaly,alert_id,phase,probability,log_likelihood,dq$'; then
    it_ok "output header"
else
    it_fail "output header" "$(head -1 "$D/out1.csv")"
fi

# Every scored row has a probability in [0,1] and ln(1-p) <= 0, once the
# probability's history is long enough (before, both are empty: unknown,
# and never again after the first known one); rows without a window have
# neither; dq is 0 or 1.
bad=$(awk -F, 'NR>1 { if ($3 != "" && $10 == "" && $11 == "" && !known) next;
                      if ($3 != "") known = 1;
                      if ($3 != "" && !($10 != "" && $10 >= 0 && $10 <= 1 && $11 <= 0)) print NR;
                      if ($3 == "" && ($10 != "" || $11 != "")) print NR;
                      if ($12 != 0 && $12 != 1) print NR }' "$D/out1.csv" | head -3)
np=$(awk -F, 'NR>1 && $10 != ""' "$D/out1.csv" | wc -l)
if [ -z "$bad" ] && [ "$np" -gt 0 ]; then it_ok "probability, log_likelihood and dq columns ($np rows with p)"
else it_fail "probability/dq columns" "bad rows: $bad, rows with p: $np"; fi

# A 2-minute hole in the file (rows 600.. shifted by 120 s): replay moves
# data time to each row before pushing it, so the silence is a dropout
# (data quality) raised and cleared by row 600, and its dq column is 1.
$PYTHON - "$D/data.csv" "$D/gap.csv" <<'EOF2'
import sys, datetime
rows = open(sys.argv[1]).read().splitlines()
with open(sys.argv[2], "w") as f:
    f.write(rows[0] + "\n")
    for i, line in enumerate(rows[1:]):
        ts, rest = line.split(",", 1)
        if i >= 600:
            t = datetime.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S") + datetime.timedelta(seconds=120)
            ts = t.strftime("%Y-%m-%d %H:%M:%S")
        f.write(ts + "," + rest + "\n")
EOF2
if "$BIN" replay -m "$D/m.safetensors" -i "$D/gap.csv" --stream pump1 --calibrate-rows 400 \
        --label anomaly -o "$D/gap_out.csv" -e "$D/gap_ev.jsonl" 2> "$D/loggap"; then
    nr=$(grep '"event":"dq_raised"' "$D/gap_ev.jsonl" | grep -c '"check":"dropout"')
    nc=$(grep '"event":"dq_cleared"' "$D/gap_ev.jsonl" | grep -c '"check":"dropout"')
    rid=$(grep '"event":"dq_raised"' "$D/gap_ev.jsonl" | grep '"check":"dropout"' | sed 's/.*"id":"\([^"]*\)".*/\1/')
    cid=$(grep '"event":"dq_cleared"' "$D/gap_ev.jsonl" | grep '"check":"dropout"' | sed 's/.*"id":"\([^"]*\)".*/\1/')
    dq600=$(sed -n '602p' "$D/gap_out.csv" | awk -F, '{print $12}')
    dq599=$(sed -n '601p' "$D/gap_out.csv" | awk -F, '{print $12}')
    dq601=$(sed -n '603p' "$D/gap_out.csv" | awk -F, '{print $12}')
    if [ "$nr" -eq 1 ] && [ "$nc" -eq 1 ] && [ -n "$rid" ] && [ "$rid" = "$cid" ] &&
       [ "$dq600" = 1 ] && [ "$dq599" = 0 ] && [ "$dq601" = 0 ]; then
        it_ok "a 2-minute hole in the CSV: dropout raised and cleared ($rid), dq column 1 on row 600 only"
    else
        it_fail "dropout in replay" "raised $nr cleared $nc ids '$rid'/'$cid' dq 599/600/601: $dq599/$dq600/$dq601; $(grep dq_ "$D/gap_ev.jsonl" | head -3)"
    fi
    # the file without the hole raises no dropout
    if grep -q '"check":"dropout"' "$D/ev1.jsonl"; then
        it_fail "no dropout without a hole" "$(grep dropout "$D/ev1.jsonl" | head -2)"
    else
        it_ok "no dropout without a hole"
    fi
else
    it_fail "replay of a CSV with a hole" "$(cat "$D/loggap")"
fi
# The same hole with --max-gap 60 (shorter than it): the windows restart
# there once and the replay says so, naming the setting; with the default
# (an hour) it says nothing.
if "$BIN" replay -m "$D/m.safetensors" -i "$D/gap.csv" --stream pump1 --calibrate-rows 400 \
        --max-gap 60 -o "$D/gap60.csv" --summary "$D/gap60.sum" 2> "$D/loggap60" &&
   grep -q "^gaps: the windows restarted 1 times after a hole in the timestamps longer than rows.max_gap_ms (60000 ms) and 5 usual row intervals (rows.max_gap_intervals), each time 9 rows before the next window" "$D/loggap60" &&
   $PYTHON -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["window_resets"] == 1 else 1)' "$D/gap60.sum" &&
   ! grep -q "^gaps:" "$D/loggap"; then
    it_ok "--max-gap 60: the windows restart at the 2-minute hole and replay says so"
else
    it_fail "--max-gap 60: the windows restart at the hole" "$(grep -v '^<' "$D/loggap60" | tail -3)"
fi

# The same rows a day apart, with a 20-day hole after row 700: every row is
# further apart than an hour, but not than 5 usual intervals (a day), so
# the windows restart at the hole only (and at the second row, before an
# interval is known: the hour alone judges the first); with --max-gap-intervals 0 (the
# absolute hour alone) every row restarts them and nothing is scored.
$PYTHON - "$D/data.csv" "$D/daily.csv" <<'EOF'
import sys, datetime
rows = open(sys.argv[1]).read().splitlines()
t0 = datetime.datetime(2000, 1, 1)
out = [rows[0]]
for i, r in enumerate(rows[1:]):
    t = t0 + datetime.timedelta(days=i + (20 if i > 700 else 0))
    out.append(t.strftime("%Y-%m-%d %H:%M:%S") + r[r.index(","):])
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
for g in 5 0; do
    "$BIN" replay -m "$D/m.safetensors" -i "$D/daily.csv" --stream pump1 --calibrate-rows 400 \
        --max-gap-intervals $g -o "$D/daily$g.csv" --summary "$D/daily$g.sum" 2> "$D/logdaily$g"
done
if $PYTHON -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["window_resets"] == 2 and s["windows_scored"] >= 1180 else 1)' "$D/daily5.sum" &&
   $PYTHON -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["window_resets"] == 1199 and s["windows_scored"] == 0 else 1)' "$D/daily0.sum" &&
   grep -q "^gaps: the windows restarted 1199 times" "$D/logdaily0"; then
    it_ok "daily rows: the windows restart at the 20-day hole (and the second row) only (at an absolute hour alone: every row)"
else
    it_fail "daily rows: the windows restart at the 20-day hole only" \
        "$(cat "$D/daily5.sum" "$D/daily0.sum" 2>&1 | tr -d '\n' | cut -c1-400)"
fi

# Phases: calibrating on the first 400 rows, detecting afterwards.
p399=$(sed -n '400p' "$D/out1.csv" | awk -F, '{print $9}')
p401=$(sed -n '402p' "$D/out1.csv" | awk -F, '{print $9}')
if [ "$p399" = calibrating ] && [ "$p401" = detecting ]; then
    it_ok "phase calibrating until row 400, then detecting"
else
    it_fail "phase switch at row 400" "row 398: $p399, row 400: $p401"
fi

# An alert raised within the anomaly, naming pressure as top contributor.
$PYTHON - "$D/ev1.jsonl" > "$D/check1" <<'EOF'
import sys, json
base = 1577836800000
raised = [json.loads(l) for l in open(sys.argv[1]) if '"alert_raised"' in l]
inside = [e for e in raised if 800 <= (e["alert"]["start"] - base) // 1000 < 870]
outside = [e for e in raised if not 790 <= (e["alert"]["start"] - base) // 1000 < 870]
ok = bool(inside) and inside[0]["alert"]["top_features"][0]["name"] == "pressure"
print("OK" if ok else "BAD", len(inside), len(outside),
      inside[0]["alert"]["id"] if inside else "-",
      inside[0]["alert"]["top_features"][0]["name"] if inside else "-")
EOF
if grep -q '^OK' "$D/check1"; then
    it_ok "alert raised in the anomaly, top feature pressure ($(cat "$D/check1"))"
else
    it_fail "alert raised in the anomaly with top feature pressure" "$(cat "$D/check1")"
fi
if grep -q '"alert_cleared"' "$D/ev1.jsonl"; then it_ok "alert cleared after the anomaly"
else it_fail "alert cleared after the anomaly"; fi

# Point metrics on this easy case.
m=$(grep '^metrics:' "$D/log1")
echo "# $m"
if echo "$m" | awk '{for (i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}
        r = v["recall"]; far = v["FAR"]; sub("%","",far);
        exit !(r > 0.6 && far < 5)}'; then
    it_ok "metrics: recall > 0.6, FAR < 5%"
else
    it_fail "metrics: recall > 0.6, FAR < 5%" "$m"
fi
if grep -q 'rejected 1 non-finite' "$D/log1"; then it_ok "NaN cell rejected and counted"
else it_fail "NaN cell rejected and counted" "$(cat "$D/log1")"; fi

# Same input, same output: alert ids are stable.
run_replay "$D/out2.csv" "$D/ev2.jsonl" "$D/log2"
if cmp -s "$D/out1.csv" "$D/out2.csv" && cmp -s "$D/ev1.jsonl" "$D/ev2.jsonl"; then
    it_ok "second run identical (stable alert ids)"
else
    it_fail "second run identical"
fi

# score.metric peak: one sample of pressure off by 2.5 (7 of its standard
# deviations, 50 noise widths) at row 1100 (the step at 800 left as it
# is). The window's mean error dilutes it 30-fold
# (10 rows x 3 features) and raises nothing there; the worst row's error
# raises an alert over it, naming pressure.
$PYTHON - "$D/data.csv" "$D/spike.csv" <<'EOF3'
import sys
rows = open(sys.argv[1]).read().splitlines()
c = rows[1101].split(",")
c[2] = "%.5f" % (float(c[2]) + 2.5)
rows[1101] = ",".join(c)
open(sys.argv[2], "w").write("\n".join(rows) + "\n")
EOF3
for mt in mae peak; do
    "$BIN" replay -m "$D/m.safetensors" -i "$D/spike.csv" --stream pump1 --calibrate-rows 400 \
        --metric $mt -o "$D/sp_$mt.csv" -e "$D/sp_$mt.ev" 2> "$D/sp_$mt.log" ||
        it_fail "replay --metric $mt" "$(tail -3 "$D/sp_$mt.log")"
done
spike_raises() { # rows of the raises from row 1095 on, with their top feature
    $PYTHON -c "
import json, sys
t0 = 1577836800000
print(' '.join('%d:%s' % ((e['alert']['start'] - t0) // 1000, e['alert']['top_features'][0]['name'])
               for e in map(json.loads, open(sys.argv[1]))
               if e['event'] == 'alert_raised' and e['alert']['start'] >= t0 + 1095000))" "$1"
}
r_mae=$(spike_raises "$D/sp_mae.ev"); r_peak=$(spike_raises "$D/sp_peak.ev")
case "$r_peak" in
    11[0-1][0-9]:pressure) ok=1 ;;
    *) ok=0 ;;
esac
if [ -z "$r_mae" ] && [ $ok -eq 1 ]; then
    it_ok "--metric peak raises on a one-sample spike at row 1100 ($r_peak), mae does not"
else
    it_fail "--metric peak raises on a one-sample spike at row 1100, mae does not" \
        "mae raises: ${r_mae:-none}; peak raises: ${r_peak:-none}"
fi

# -c: the pipeline of a daemon config. A config that states nothing but the
# model runs the same pipeline as replay's defaults (one set of defaults);
# one whose alert settings differ gives other alerts, and replay options
# override single settings of it.
cat > "$D/a.json" <<EOF
{"detectors":[{"name":"pump","model":"m.safetensors","topics":["s/+/p"],
  "payload":{"format":"json"}}]}
EOF
cat > "$D/b.json" <<EOF
{"detectors":[{"name":"other","model":"m.safetensors","topics":["x/#"]},
 {"name":"pump","model":"m.safetensors","topics":["s/+/p"],
  "alert":{"k":1,"n":1,"m":1,"clear_ratio":1}}]}
EOF
run_conf() { # run_conf CONFIG OUT EVENTS LOG [extra...]
    c=$1; o=$2; e=$3; l=$4; shift 4
    "$BIN" replay -c "$c" -i "$D/data.csv" --stream pump1 --calibrate-rows 400 \
        --exclude-calibration --label anomaly -o "$o" -e "$e" "$@" 2> "$l"
}
if run_conf "$D/a.json" "$D/outc.csv" "$D/evc.jsonl" "$D/logc" &&
        cmp -s "$D/out1.csv" "$D/outc.csv" && cmp -s "$D/ev1.jsonl" "$D/evc.jsonl"; then
    it_ok "replay -c with a config of defaults = replay with no settings"
else
    it_fail "replay -c with a config of defaults = replay with no settings" "$(cat "$D/logc")"
fi
run_conf "$D/b.json" "$D/outd.csv" "$D/evd.jsonl" "$D/logd" --detector pump
# 1 of 1 raises on the first window over the threshold: the alert starts
# earlier than with 3 of 5 (or more alerts are raised).
sd=$(grep '"alert_raised"' "$D/evd.jsonl" | head -1 | sed 's/.*"start":\([0-9]*\).*/\1/')
s1=$(grep '"alert_raised"' "$D/ev1.jsonl" | head -1 | sed 's/.*"start":\([0-9]*\).*/\1/')
nd=$(grep -c '"alert_raised"' "$D/evd.jsonl")
n1=$(grep -c '"alert_raised"' "$D/ev1.jsonl")
if [ -n "$sd" ] && [ -n "$s1" ] && { [ "$sd" -lt "$s1" ] || [ "$nd" -gt "$n1" ]; }; then
    it_ok "replay -c --detector takes that detector's alert settings (1 of 1: $nd alerts from $sd, 3 of 5: $n1 from $s1)"
else
    it_fail "replay -c --detector takes that detector's alert settings" "1 of 1: $nd from $sd, 3 of 5: $n1 from $s1"
fi
run_conf "$D/b.json" "$D/oute.csv" "$D/eve.jsonl" "$D/loge" --detector pump \
    --alert-k 3 --alert-n 5 --alert-m 10 --clear-ratio 0.8
if cmp -s "$D/out1.csv" "$D/oute.csv" && cmp -s "$D/ev1.jsonl" "$D/eve.jsonl"; then
    it_ok "replay options override single settings of the config"
else
    it_fail "replay options override single settings of the config" "$(cat "$D/loge")"
fi
# --raise-ratio: the raise level over the threshold (alert.raise_ratio);
# a ratio no window reaches raises nothing, and the "raise:" line counts
# the windows over the threshold it kept quiet
run_replay "$D/outr.csv" "$D/evr.jsonl" "$D/logr" --raise-ratio 100
nr=$(grep -c '"alert_raised"' "$D/evr.jsonl")
ur=$(sed -n 's/^raise: \([0-9]*\) windows over the threshold raised nothing under alert.raise_ratio 100 x it.*/\1/p' "$D/logr")
if [ "$nr" = 0 ] && [ -n "$ur" ] && [ "$ur" -gt 0 ] && [ "$n1" -gt 0 ]; then
    it_ok "--raise-ratio 100: no alert ($n1 with the default), $ur windows over the threshold counted under the raise level"
else
    it_fail "--raise-ratio 100: no alert, windows under the raise level counted" "$nr alerts, raise: '$ur'; $(cat "$D/logr")"
fi
"$BIN" replay -c "$D/b.json" -i "$D/data.csv" > /dev/null 2> "$D/logf"
rc=$?
exp="anomalyd replay: $D/b.json has 2 detectors: choose one with --detector (other, pump)"
if [ $rc -eq 1 ] && [ "$(cat "$D/logf")" = "$exp" ]; then
    it_ok "two detectors and no --detector: error naming them"
else
    it_fail "two detectors and no --detector: error naming them" "exit $rc: $(cat "$D/logf")"
fi
"$BIN" replay -c "$D/b.json" --detector nope -i "$D/data.csv" > /dev/null 2> "$D/logg"
exp="anomalyd replay: --detector: $D/b.json has no detector \"nope\" (it has: other, pump)"
if [ "$(cat "$D/logg")" = "$exp" ]; then it_ok "unknown --detector named"
else it_fail "unknown --detector named" "$(cat "$D/logg")"; fi

# Window-level row labels are at least as eager as alert-level ones.
run_replay "$D/out3.csv" "$D/ev3.jsonl" "$D/log3" --row-label window
a1=$(awk -F, 'NR>1 && $7==1' "$D/out1.csv" | wc -l)
a3=$(awk -F, 'NR>1 && $7==1' "$D/out3.csv" | wc -l)
if [ "$a3" -gt 0 ] && [ "$a1" -gt 0 ]; then it_ok "row-label window/alert both flag rows ($a3/$a1)"
else it_fail "row-label window/alert" "$a3/$a1"; fi

# Bootstrap: no model file, train on the first windows, then calibrate.
if "$BIN" replay -i "$D/data.csv" --training bootstrap --window 10 --train-windows 300 \
        --epochs 3 --units 8 --calib-windows 100 --label anomaly --stream boot \
        -o "$D/boot.csv" -e "$D/boot.jsonl" 2> "$D/logb"; then
    phases=$(awk -F, 'NR>1 {print $9}' "$D/boot.csv" | uniq | tr '\n' ' ')
    if [ "$phases" = "collecting training calibrating detecting " ]; then
        it_ok "bootstrap phases: $phases"
    else
        it_fail "bootstrap phases" "got: $phases"
    fi
    if grep -q '"train_ready"' "$D/boot.jsonl" && grep -q '"calibrated"' "$D/boot.jsonl"; then
        it_ok "bootstrap events train_ready, calibrated"
    else
        it_fail "bootstrap events" "$(cat "$D/boot.jsonl" | head -5)"
    fi
else
    it_fail "bootstrap replay" "$(cat "$D/logb")"
fi

# The README's command for a CSV of one's own: the example configuration
# with a model bootstrapped from the stream. Four days of one value every
# five minutes (a daily cycle), +25 for 2 h on day 4 from 08:20 (289200 s): the
# settings given in data time become this stream's windows (8 h of
# acceptance = 96 windows, two days of normal windows kept one in two = 288,
# logged as the 48 h they span), and the burst,
# not the cycle, raises the one alert.
$PYTHON - "$D/uni.csv" <<'EOF2'
import sys, math, random, datetime
random.seed(11)
t0 = datetime.datetime(2024, 3, 1)
with open(sys.argv[1], "w") as f:
    f.write("timestamp,value\n")
    for i in range(4 * 288):
        ts = t0 + datetime.timedelta(minutes=5 * i)
        v = 50 + 20 * math.sin(2 * math.pi * i / 288) + random.gauss(0, 1)
        if 3 * 288 + 100 <= i < 3 * 288 + 124:
            v += 25
        f.write("%s,%.4f\n" % (ts.strftime("%Y-%m-%d %H:%M:%S"), v))
EOF2
if "$BIN" replay -c "${AD_SRCDIR:-.}/conf/anomalyd.json" --training bootstrap --window 30 \
        --train-windows 288 -i "$D/uni.csv" -o "$D/uni.out" -e "$D/uni.ev" 2> "$D/logu"; then
    if grep -q "a window every 300 s of data: alert.accept_after 96 windows = 8 h, alert.accept_gap 288 = 24 h, adapt.normal_windows 288 (one in 2) = 48 h, adapt.min_windows 100 = 16.7 h" "$D/logu" &&
       [ "$(awk 'END {print NR}' "$D/uni.out")" -eq 1153 ]; then
        it_ok "example config on a 5-min univariate CSV: data-time settings at 300 s, 1152 rows out"
    else
        it_fail "example config on a 5-min univariate CSV: data-time settings at 300 s" \
            "$(grep "a window every" "$D/logu"; awk 'END {print NR " lines"}' "$D/uni.out")"
    fi
    # raises: start times (s from the first row); the burst is 289200..296400
    raises=$($PYTHON -c "
import json, sys
t0 = 1709251200000
print(' '.join(str((json.loads(l)['ts'] - t0) // 1000) for l in open(sys.argv[1])
               if json.loads(l)['event'] == 'alert_raised'))" "$D/uni.ev")
    if [ -n "$raises" ] && [ "$(echo "$raises" | wc -w)" -eq 1 ] &&
       [ "$raises" -ge 289200 ] && [ "$raises" -le 296400 ]; then
        it_ok "the burst raises the one alert (at ${raises} s; it starts at 289200 s)"
    else
        it_fail "the burst raises the one alert (it starts at 289200 s)" "raises at: ${raises:-none}"
    fi
else
    it_fail "example config on a 5-min univariate CSV" "$(tail -5 "$D/logu")"
fi

# training in data time: a day of rows (first to last), whatever the rate
if "$BIN" replay -c "${AD_SRCDIR:-.}/conf/anomalyd.json" --training bootstrap --window 30 \
        --train-windows 0 --train-duration 86400 -i "$D/uni.csv" -o "$D/unid.out" \
        -e "$D/unid.ev" 2> "$D/logd" &&
   grep -q '"train_ready".*"bootstrap on 289 rows (260 windows)"' "$D/unid.ev"; then
    it_ok "--train-duration 86400 at 300 s: bootstrap on a day of rows (289 rows, 260 windows)"
else
    it_fail "--train-duration 86400 at 300 s: bootstrap on a day of rows" \
        "$(grep train_ready "$D/unid.ev"; tail -3 "$D/logd")"
fi
if ! "$BIN" replay --training bootstrap --window 30 --train-windows 0 -i "$D/uni.csv" \
        -o "$D/unid2.out" 2> "$D/logd2" &&
   grep -q "training.windows 0 (no count limit) needs training.duration_ms" "$D/logd2"; then
    it_ok "--train-windows 0 without a duration: refused, naming training.duration_ms"
else
    it_fail "--train-windows 0 without a duration: refused, naming training.duration_ms" \
        "$(cat "$D/logd2")"
fi

# adapt.normal_ms a year at one row a second, windows of 100x3: a normal
# set beyond the memory limit. The stream learns that only once its period
# is known: an error names the key, the windows and the limit, continual
# learning is off for that stream, and detection goes on.
$PYTHON - "$D/fast.csv" <<'EOF2'
import sys, math, random
random.seed(5)
with open(sys.argv[1], "w") as f:
    f.write("ts,a,b,c\n")
    for i in range(600):
        f.write("%d,%.4f,%.4f,%.4f\n" % (1700000000 + i, math.sin(i / 10) + random.gauss(0, .05),
                                        math.cos(i / 10), random.gauss(0, 1)))
EOF2
cat > "$D/fast.json" <<EOF2
{"broker": {"port": 1883},
 "detectors": [{"name": "x", "topics": ["x/+"], "window": {"length": 100},
   "training": {"mode": "bootstrap", "windows": 60, "epochs": 1, "boot_units": 4,
                "features": ["a", "b", "c"]},
   "calibration": {"windows": 50},
   "adapt": {"enabled": true, "normal_ms": 31622400000, "min_ms": 60000}}]}
EOF2
if "$BIN" replay -c "$D/fast.json" -i "$D/fast.csv" -o "$D/fast.out" 2> "$D/logf" &&
   grep -q "continual learning off for this stream: adapt.normal_ms: 31622400000 ms are 1000000 windows (a window every 1 s) of 100x3, with the pending queue more than the limit" "$D/logf" &&
   [ "$(awk -F, 'NR > 1 && $9 == "detecting"' "$D/fast.out" | wc -l)" -gt 200 ]; then
    it_ok "adapt.normal_ms beyond the memory limit at this rate: named, learning off, detection goes on"
else
    it_fail "adapt.normal_ms beyond the memory limit at this rate: named, learning off, detection goes on" \
        "$(grep -v '^<7>' "$D/logf" | tail -4)"
fi

"$BIN" replay -i "$D/data.csv" > /dev/null 2>&1
rc=$?
if [ $rc -eq 2 ]; then it_ok "missing --model is a usage error (2)"
else it_fail "missing --model is a usage error" "exit $rc"; fi
"$BIN" replay -m "$D/m.safetensors" -i "$D/data.csv" --method bogus > /dev/null 2> "$D/logm"
rc=$?
exp="anomalyd replay: --method: expected quantile|sigma|pot|fixed|model, got 'bogus'"
if [ $rc -eq 2 ] && [ "$(cat "$D/logm")" = "$exp" ]; then it_ok "bad --method is a usage error (2) naming the option"
else it_fail "bad --method is a usage error naming the option" "exit $rc: $(cat "$D/logm")"; fi
"$BIN" replay -m "$D/m.safetensors" -i "$D/data.csv" --hop=0 > /dev/null 2> "$D/logh"
exp="anomalyd replay: --hop: expected an integer 1..1000000, got '0'"
if [ "$(cat "$D/logh")" = "$exp" ]; then it_ok "out-of-range --hop=0 named"
else it_fail "out-of-range --hop=0 named" "$(cat "$D/logh")"; fi
mkfifo "$D/fifo.csv"
timeout 10 "$BIN" replay -m "$D/m.safetensors" -i "$D/fifo.csv" > /dev/null 2> "$D/logi"
rc=$?
exp="anomalyd replay: $D/fifo.csv: not a regular file (a FIFO)"
if [ $rc -eq 1 ] && [ "$(cat "$D/logi")" = "$exp" ]; then it_ok "a FIFO as the CSV: error, no hang"
else it_fail "a FIFO as the CSV: error, no hang" "exit $rc: $(cat "$D/logi")"; fi
timeout 10 "$BIN" replay -m "$D/fifo.csv" -i "$D/data.csv" > /dev/null 2> "$D/logj"
rc=$?
if [ $rc -eq 1 ] && [ "$(cat "$D/logj")" = "$exp" ]; then it_ok "a FIFO as the model: error, no hang"
else it_fail "a FIFO as the model: error, no hang" "exit $rc: $(cat "$D/logj")"; fi
# Bad cells do not stop a replay. The same rows with unix-second times:
# 'abc' (flow, line 302) and '1.2.3' (temp, line 502) are missing values,
# the rows timed 1e300 and -1e300 (lines 652, 653; they would not convert
# to ms) are skipped; each is named (file, line, column, cell), counted in
# the summary, and every other cell and row is replayed as in the same CSV
# with those cells empty and those rows left out.
$PYTHON - "$D" <<'EOF'
import sys, csv, calendar, datetime
d = sys.argv[1]
rows = list(csv.reader(open(d + "/data.csv")))
def unix(ts):
    return str(calendar.timegm(datetime.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S").timetuple()))
nt = [["ts"] + rows[0][1:]] + [[unix(r[0])] + r[1:] for r in rows[1:]]
def write(name, rs):
    with open(d + "/" + name, "w") as f:
        f.write("".join(",".join(r) + "\n" for r in rs))
bad = [list(r) for r in nt]
ref = [list(r) for r in nt]
bad[301][1] = "abc"; ref[301][1] = ""      # line 302, flow
bad[501][3] = "1.2.3"; ref[501][3] = ""    # line 502, temp
bad[651][0] = "1e300"; bad[652][0] = "-1e300"
del ref[651:653]
write("ntbad.csv", bad)
write("ntref.csv", ref)
many = [list(r) for r in nt]               # 25 non-numeric cells
for i in range(100, 125):
    many[i + 1][2] = "n/a"
write("many.csv", many)
cal = [list(r) for r in nt]                # the row --calibrate-rows ends on
cal[400][0] = "x"
write("cal.csv", cal)
big = [list(r) for r in nt]                # only times too far out
big[651][0] = "1e300"; big[901][0] = "1e19"
write("ntbig.csv", big)
iso = [list(r) for r in rows]              # a date-time before 1970
iso[701][0] = "1969-12-31 23:59:59"
write("iso.csv", iso)
EOF
bad_replay() { # bad_replay NAME: replay $D/NAME.csv -> NAME.out, .ev, .sum, .log, .rc
    "$BIN" replay -m "$D/m.safetensors" -i "$D/$1.csv" --stream pump1 --calibrate-rows 400 \
        -o "$D/$1.out" -e "$D/$1.ev" --summary "$D/$1.sum" 2> "$D/$1.log"
    echo $? > "$D/$1.rc"
}
sumkey() { $PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
bad_replay ntbad
bad_replay ntref
exp="anomalyd replay: $D/ntbad.csv:302: column 'flow': not a number: 'abc' (read as a missing value)
anomalyd replay: $D/ntbad.csv:502: column 'temp': not a number: '1.2.3' (read as a missing value)
anomalyd replay: $D/ntbad.csv:652: column 'ts': time outside 1970-01-01 .. 9999-12-31: '1e300' (row skipped)
anomalyd replay: $D/ntbad.csv:653: column 'ts': time outside 1970-01-01 .. 9999-12-31: '-1e300' (row skipped)"
if [ "$(cat "$D/ntbad.rc")" = 0 ] && [ "$(grep '^anomalyd replay: ' "$D/ntbad.log")" = "$exp" ]; then
    it_ok "non-numeric cells and times of 1e300/-1e300: exit 0, each named (file, line, column, cell)"
else
    it_fail "non-numeric cells and times of 1e300/-1e300: exit 0, each named" \
        "exit $(cat "$D/ntbad.rc"): $(grep -v '^<' "$D/ntbad.log" | head -6)"
fi
if [ "$(sumkey "$D/ntbad.sum" nonnumeric)" = 2 ] && [ "$(sumkey "$D/ntbad.sum" bad_time)" = 2 ] &&
   [ "$(sumkey "$D/ntbad.sum" rows)" = 1200 ] &&
   grep -q "^replay: 2 non-numeric cells read as missing (named above; in the non-finite count too)$" "$D/ntbad.log" &&
   grep -q "^replay: 2 rows skipped for a time that is none or outside 1970-01-01 .. 9999-12-31 (named above)$" "$D/ntbad.log" &&
   grep -q "^replay: 1200 rows, .* rejected 3 non-finite values," "$D/ntbad.log"; then
    it_ok "the summary counts them: 2 non-numeric cells, 2 rows skipped for their time (stderr and --summary)"
else
    it_fail "the summary counts 2 non-numeric cells and 2 rows skipped" \
        "$(cat "$D/ntbad.sum" 2>&1 | cut -c1-300); $(grep '^replay:' "$D/ntbad.log")"
fi
# every other row has its line, the same as the CSV without the bad cells
# (row numbers are the input's: 650 and 651 have none)
miss=$(awk -F, 'NR > 1 { n[$1] = 1 } END { for (i = 0; i < 1200; i++) if (!(i in n)) printf "%d ", i }' "$D/ntbad.out" 2>/dev/null)
nsc=$(awk -F, 'NR > 1 && $3 != ""' "$D/ntbad.out" 2>/dev/null | wc -l)
if [ "$miss" = "650 651 " ] && [ "$nsc" -gt 1100 ] &&
   cut -d, -f2- "$D/ntbad.out" > "$D/ntbad.cut" 2>/dev/null && cut -d, -f2- "$D/ntref.out" > "$D/ntref.cut" &&
   cmp -s "$D/ntbad.cut" "$D/ntref.cut" && cmp -s "$D/ntbad.ev" "$D/ntref.ev"; then
    it_ok "the good rows are scored as in the CSV with those cells empty and those rows left out ($nsc rows scored; no line for rows 650, 651)"
else
    it_fail "the good rows are scored as in the CSV without the bad cells" \
        "rows without a line: ${miss:-none}; scored $nsc; $(diff "$D/ntbad.cut" "$D/ntref.cut" 2>&1 | head -3)"
fi
# times alone (no bad value): 1e300 and 1e19 s were pushed as a garbage
# ts_ms (llround out of range); now named, skipped, every ts_ms a real time
bad_replay ntbig
ts_bad=$(awk -F, 'NR > 1 && !($2 >= 1577836800000 && $2 < 1577836800000 + 1200000) {print $1 ":" $2}' \
         "$D/ntbig.out" 2>/dev/null | head -3)
if [ "$(cat "$D/ntbig.rc")" = 0 ] && [ -z "$ts_bad" ] && [ "$(awk 'END {print NR}' "$D/ntbig.out")" -eq 1199 ] &&
   grep -q "^anomalyd replay: $D/ntbig.csv:652: column 'ts': time outside 1970-01-01 .. 9999-12-31: '1e300' (row skipped)$" "$D/ntbig.log" &&
   grep -q "^anomalyd replay: $D/ntbig.csv:902: column 'ts': time outside 1970-01-01 .. 9999-12-31: '1e19' (row skipped)$" "$D/ntbig.log"; then
    it_ok "times of 1e300 and 1e19 s: named and skipped, no garbage ts_ms (1198 rows out)"
else
    it_fail "times of 1e300 and 1e19 s: named and skipped, no garbage ts_ms" \
        "exit $(cat "$D/ntbig.rc"), ts_ms out of the file's range: ${ts_bad:-none}; $(grep -v '^<' "$D/ntbig.log" | head -3)"
fi
# 25 bad cells: the first 10 named, then one line, the count in the summary
bad_replay many
nl=$(grep -c "^anomalyd replay: $D/many.csv:[0-9]*: column 'pressure': not a number: 'n/a' (read as a missing value)$" "$D/many.log")
if [ "$(cat "$D/many.rc")" = 0 ] && [ "$nl" -eq 10 ] &&
   grep -q "^anomalyd replay: more non-numeric cells: counted in the summary, not named$" "$D/many.log" &&
   grep -q "^replay: 25 non-numeric cells read as missing (the first 10 named above;" "$D/many.log" &&
   [ "$(sumkey "$D/many.sum" nonnumeric)" = 25 ]; then
    it_ok "25 non-numeric cells: the first 10 named, the rest counted (25)"
else
    it_fail "25 non-numeric cells: the first 10 named, the rest counted" \
        "exit $(cat "$D/many.rc"), $nl named: $(grep -v '^<' "$D/many.log" | tail -3)"
fi
# a time that is no time on the row --calibrate-rows ends on (row 399,
# line 401):
# skipped, and calibration still ends there
bad_replay cal
p400=$(awk -F, '$1 == 400 {print $9}' "$D/cal.out" 2>/dev/null)
if [ "$(cat "$D/cal.rc")" = 0 ] && [ "$p400" = detecting ] &&
   grep -q "^anomalyd replay: $D/cal.csv:401: column 'ts': not a time (date-time or number): 'x' (row skipped)$" "$D/cal.log" &&
   ! grep -q '^399,' "$D/cal.out"; then
    it_ok "a row that has no time at --calibrate-rows 400: skipped (named), calibration still ends there"
else
    it_fail "a row that has no time at --calibrate-rows 400: skipped, calibration ends there" \
        "exit $(cat "$D/cal.rc"), row 400: $p400; $(grep -v '^<' "$D/cal.log" | head -3)"
fi
# ISO 8601 date-times keep to the same range: 1969 is refused, not pushed
# as a negative time
bad_replay iso
if [ "$(cat "$D/iso.rc")" = 0 ] && ! grep -q '^700,' "$D/iso.out" &&
   grep -q "^anomalyd replay: $D/iso.csv:702: column 'datetime': time outside 1970-01-01 .. 9999-12-31: '1969-12-31 23:59:59' (row skipped)$" "$D/iso.log" &&
   [ "$(sumkey "$D/iso.sum" bad_time)" = 1 ] && [ "$(awk 'END {print NR}' "$D/iso.out")" -eq 1200 ]; then
    it_ok "a date-time before 1970: named and skipped (1199 rows out)"
else
    it_fail "a date-time before 1970: named and skipped" \
        "exit $(cat "$D/iso.rc"): $(grep '^700,' "$D/iso.out"); $(grep -v '^<' "$D/iso.log" | head -3)"
fi
# one row dated 2099 (line 702) drops every later row as out of order: the
# summary names it, and the first row dropped behind it
awk -F, 'NR == 702 { $1 = "2099-01-01 00:00:00" } { print }' OFS=, "$D/data.csv" > "$D/future.csv"
"$BIN" replay -m "$D/m.safetensors" -i "$D/future.csv" -o /dev/null 2> "$D/logf"
if grep -q ", 499 out-of-order" "$D/logf" &&
   grep -q "^replay: line 703 is the first row dropped for its time, at or before line 702.s (2099-01-01T00:00:00.000Z)" "$D/logf"; then
    it_ok "a row far in the future: the summary names it (line 702) and the first row dropped behind it"
else
    it_fail "a row far in the future: the summary names it" "$(grep replay: "$D/logf")"
fi
exit 0
