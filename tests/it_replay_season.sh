#!/bin/sh
# it_replay_season.sh - the README's "CSV of your own" command on a daily
# cycle that steps sharply between two levels (20 at night, 80 from 09:00
# to 18:00, noise +-5, a row every five minutes, 12 days): with the example
# configuration's seasonal level (calibration.season_ms a day) the steps
# stop alerting once they have shown on 3 of 5 days, while a fault during
# the day (+40 for two hours on day 9) and a fault at the step's own time
# (the 09:00 step to 200 instead of 80 on day 10) still alert. The same
# run without the seasonal level alerts at the steps on most days, at
# least 4 raises on days 3-8 (the problem is real in this data). Both runs
# have continual learning off (see below). With calibration.season_clock local, a
# schedule in local time keeps its level over a daylight-saving change.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

$PYTHON - "$D/d.csv" <<'EOF'
import sys, random, datetime
random.seed(11)
t0 = datetime.datetime(2024, 3, 4)
with open(sys.argv[1], "w") as f:
    f.write("timestamp,value\n")
    for i in range(12 * 288):
        t = t0 + datetime.timedelta(minutes=5 * i)
        day, m = divmod(i * 5, 1440)
        v = (80 if 540 <= m < 1080 else 20) + random.uniform(-5, 5)
        if day == 9 and 840 <= m < 960:
            v += 40
        if day == 10 and 540 <= m < 600:
            v = 200 + random.uniform(-5, 5)
        f.write("%s,%.3f\n" % (t.strftime("%Y-%m-%d %H:%M:%S"), v))
EOF
# the example configuration as shipped, and the same without the level
$PYTHON - "${AD_SRCDIR:-.}/conf/anomalyd.json" "$D" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["detectors"][0]["calibration"]
assert c.get("season_ms") == 86400000, "the example configuration sets calibration.season_ms to a day"
# continual learning off in both: on these twelve days the promotion on
# day 6 is decided by under 1% of error (0.0796 against 0.0802) and flips
# with the rounding of another build (the sanitizer's); whether the model
# is renewed that day is not what this test is about
d["detectors"][0].setdefault("adapt", {})["enabled"] = False
json.dump(d, open(sys.argv[2] + "/on.json", "w"))
c["season_ms"] = 0
# the control run without acceptance at a recurrence's onset too: the
# example configuration's alert.accept_onset accepts the daily steps at the
# onset of a later day without the level (fewer raises on days 3-8)
d["detectors"][0]["alert"]["accept_onset"] = 0
json.dump(d, open(sys.argv[2] + "/off.json", "w"))
EOF
[ -f "$D/on.json" ] || { it_fail "example configuration has calibration.season_ms a day"; exit 0; }

for k in on off; do
    OPENBLAS_NUM_THREADS=1 "$BIN" replay -c "$D/$k.json" --training bootstrap --window 30 \
        --train-windows 288 -i "$D/d.csv" -o "$D/$k.csv" -e "$D/$k.jsonl" \
        --summary "$D/$k.sum" 2> "$D/$k.log" &
done
wait
for k in on off; do
    if [ -s "$D/$k.sum" ]; then it_ok "replay ($k) runs"
    else it_fail "replay ($k) runs" "$(tail -5 "$D/$k.log")"; exit 0; fi
done

# raises per kind: steps (09:00-11:30, 18:00-20:30) on days 6..8, the two faults
count() { # count FILE -> "steps6_8 fault9 fault10 steps_off5_8"
    $PYTHON - "$1" <<'EOF'
import json, sys, datetime
t0 = datetime.datetime(2024, 3, 4, tzinfo=datetime.timezone.utc).timestamp() * 1000
steps, f9, f10, s38 = 0, 0, 0, 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") != "alert_raised":
        continue
    day, m = divmod((e["ts"] - t0) / 60000.0, 1440)
    at_step = 540 <= m < 690 or 1080 <= m < 1230
    steps += at_step and 6 <= day <= 8
    s38 += at_step and 3 <= day <= 8
    f9 += day == 9 and 840 <= m < 960
    f10 += day == 10 and 540 <= m < 600
print(steps, f9, f10, s38)
EOF
}
set -- $(count "$D/on.jsonl"); on_steps=$1; on_f9=$2; on_f10=$3
set -- $(count "$D/off.jsonl"); off_s38=$4

if [ "$off_s38" -ge 4 ]; then it_ok "without the seasonal level the steps alert ($off_s38 raises on days 3-8)"
else it_fail "without the seasonal level the steps alert" "$off_s38 raises on days 3-8"; fi
if [ "$on_steps" -eq 0 ]; then it_ok "with it, no step alerts on days 6-8"
else it_fail "with it, no step alerts on days 6-8" "$on_steps raises: $(grep alert_raised "$D/on.jsonl" | head -20)"; fi
if [ "$on_f9" -ge 1 ]; then it_ok "a fault during the day still alerts (day 9, 14:00)"
else it_fail "a fault during the day still alerts" "$(grep alert_raised "$D/on.jsonl")"; fi
if [ "$on_f10" -ge 1 ]; then it_ok "a fault at the step's own time still alerts (day 10, 09:00)"
else it_fail "a fault at the step's own time still alerts" "$(grep alert_raised "$D/on.jsonl")"; fi
if $PYTHON -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["windows_seasonal"] > 0 else 1)' "$D/on.sum" &&
   grep -q "^season: [0-9]* windows over the threshold raised nothing under the seasonal level; 96 of 96 phases" "$D/on.log"; then
    it_ok "replay reports the windows the seasonal level kept quiet"
else
    it_fail "replay reports the windows the seasonal level kept quiet" "$(tail -3 "$D/on.log")"
fi

# calibration.season_clock local over a daylight-saving change: one row a
# minute (a window spans 30 min, the level's tolerance), a plant in Central
# European time (TZ as a POSIX rule: no zone files needed) whose day steps
# at 09:00 and 18:00 local, 11 days from 22 March 2024; on 31 March the
# clocks go forward and the steps come an hour earlier in UTC. On UTC
# phases they alert again on 31 March and 1 April; on local ones they
# do not.
$PYTHON - "$D/dst.csv" <<'EOF2'
import sys, random, datetime
random.seed(5)
t0 = datetime.datetime(2024, 3, 21, 23, 0)   # UTC: 22 March 00:00 CET
dst = datetime.datetime(2024, 3, 31, 1, 0)   # UTC: 02:00 CET -> 03:00 CEST
with open(sys.argv[1], "w") as f:
    f.write("timestamp,value\n")
    for i in range(11 * 1440):
        t = t0 + datetime.timedelta(minutes=i)
        m = (t + datetime.timedelta(hours=2 if t >= dst else 1)).hour * 60 + t.minute
        f.write("%s,%.3f\n" % (t.strftime("%Y-%m-%d %H:%M:%S"),
                               (80 if 540 <= m < 1080 else 20) + random.uniform(-5, 5)))
EOF2
$PYTHON - "$D/on.json" "$D/local.json" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
d["detectors"][0]["calibration"]["season_clock"] = "local"
json.dump(d, open(sys.argv[2], "w"))
EOF2
for k in on local; do
    TZ="CET-1CEST,M3.5.0,M10.5.0/3" OPENBLAS_NUM_THREADS=1 "$BIN" replay -c "$D/$k.json" \
        --training bootstrap --window 30 --train-windows 1440 -i "$D/dst.csv" \
        -o "$D/dst_$k.csv" -e "$D/dst_$k.jsonl" 2> "$D/dst_$k.log" &
done
wait
after_dst() { # raises from 31 March on
    $PYTHON -c "
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get('event') == 'alert_raised'
          and json.loads(l)['ts'] >= 1711843200000))" "$1"
}
n_utc=$(after_dst "$D/dst_on.jsonl" 2>/dev/null); n_loc=$(after_dst "$D/dst_local.jsonl" 2>/dev/null)
if [ "${n_utc:-0}" -ge 2 ]; then it_ok "on UTC phases the local steps alert again after the clock change ($n_utc raises)"
else it_fail "on UTC phases the local steps alert again after the clock change" "${n_utc:-no} raises: $(tail -3 "$D/dst_on.log")"; fi
if [ "${n_loc:-x}" = 0 ] && grep -q "^season: " "$D/dst_local.log"; then
    it_ok "calibration.season_clock local: no alert after the clock change"
else
    it_fail "calibration.season_clock local: no alert after the clock change" \
        "${n_loc:-no} raises: $(grep alert_raised "$D/dst_local.jsonl" | head -5; tail -3 "$D/dst_local.log")"
fi
