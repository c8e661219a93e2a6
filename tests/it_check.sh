#!/bin/sh
# it_check.sh - `anomalyd check` warns about settings that would leave the
# daemon running without what the operator expects: a stream level past
# every level of a topic filter (each message dropped: no stream key), a
# state_dir or a metrics.textfile directory that cannot be written here, a
# topic the daemon publishes that its own filters would take as input, a
# retained state topic without {stream}, two kinds of message on one topic,
# with commands on a filter that overlaps commands.topic (its messages there
# are taken as commands) or matches commands.reply_topic.
# calibration.windows 0 without calibration.duration_ms is an error.
# alert.stepdown_ratio or alert.band "learn" that can do nothing (acceptance
# off; no band under raise_ratio 1) is warned about.
# A configuration without those says OK and warns about nothing. No broker.
. tests/lib.sh
D=$(mktemp -d /tmp/it_check.XXXXXX)
trap 'rm -rf "$D"' EXIT
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors

conf() { # conf NAME FILTER LEVELS STATE_DIR TEXTFILE
    cat > "$D/$1.json" <<EOC
{"broker": {"port": 1883}, "state_dir": "$4", "metrics": {"textfile": "$5"},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["$2"],
   "stream_levels": $3,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
}
conf good 'sensors/+/pump' '[1]' "$D/state/new" "$D/anomalyd.prom"
conf ends 'sensors/+/pump' '[-3]' "$D/state" "$D/anomalyd.prom"
conf deep 'sensors/#' '[5]' "$D/state" "$D/anomalyd.prom"
conf share '$share/g/sensors/+/pump' '[1]' "$D/state" "$D/anomalyd.prom"
conf bad 'sensors/+/pump' '[5]' "/proc/anomalyd-nonexistent/state" "$D/none/anomalyd.prom"
conf neg 'sensors/+/pump' '[-4]' "$D/state" "$D/anomalyd.prom"

for c in good ends deep share; do
    $AD_BIN check -c "$D/$c.json" > "$D/$c.out" 2>&1; rc=$?
    if [ $rc -eq 0 ] && grep -q ': OK$' "$D/$c.out" && ! grep -q warning "$D/$c.out"; then
        it_ok "check $c: OK, no warning"
    else
        it_fail "check $c: OK, no warning" "rc=$rc $(cat "$D/$c.out")"
    fi
done
[ -e "$D/state/new" ] && it_fail "check creates no state directory" ||
    it_ok "check creates no state directory"
# a relative state_dir the daemon would create in the current directory
conf rel 'sensors/+/pump' '[1]' "var/state" "anomalyd.prom"
BINA="$(cd "$(dirname "$AD_BIN")" && pwd)/$(basename "$AD_BIN")"
(cd "$D" && "$BINA" check -c rel.json) > "$D/rel.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && ! grep -q warning "$D/rel.out"; then
    it_ok "check rel: a relative state_dir to be made here, no warning"
else
    it_fail "check rel: a relative state_dir to be made here, no warning" "rc=$rc $(cat "$D/rel.out")"
fi
$AD_BIN check -c "$D/bad.json" > "$D/bad.out" 2>&1; rc=$?
if [ $rc -eq 0 ] &&
   grep -q 'warning: detector pump: stream_levels 5: topic filter "sensors/+/pump" has 3 level(s)' "$D/bad.out" &&
   grep -q 'warning: state_dir /proc/anomalyd-nonexistent/state: /proc is not writable here' "$D/bad.out" &&
   grep -q "warning: metrics.textfile $D/none/anomalyd.prom: $D/none is not writable here" "$D/bad.out"; then
    it_ok "check warns: a stream level past the filter's, an unwritable state_dir and metrics directory"
else
    it_fail "check warns: a stream level past the filter's, an unwritable state_dir and metrics directory" \
        "rc=$rc $(cat "$D/bad.out")"
fi
$AD_BIN check -c "$D/neg.json" > "$D/neg.out" 2>&1
grep -q 'warning: detector pump: stream_levels -4: topic filter "sensors/+/pump" has 3 level(s)' "$D/neg.out" &&
    it_ok "check warns: a level counted from the end past the filter's" ||
    it_fail "check warns: a level counted from the end past the filter's" "$(cat "$D/neg.out")"

# conf2 NAME BROKER_EXTRA DETECTOR_EXTRA: topics and calibration
conf2() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": 1883 $2},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "stream_levels": [1] $3,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
}
# check_warns NAME CONF FIXED-STRING: exit 0, OK, and the warning
check_warns() {
    $AD_BIN check -c "$D/$2.json" > "$D/$2.out" 2>&1; rc=$?
    if [ $rc -eq 0 ] && grep -q ': OK$' "$D/$2.out" && grep -qF -- "$3" "$D/$2.out"; then
        it_ok "$1"
    else
        it_fail "$1" "rc=$rc $(cat "$D/$2.out")"
    fi
}
conf2 calib0 '' ', "calibration": {"windows": 0}'
$AD_BIN check -c "$D/calib0.json" > "$D/calib0.out" 2>&1; rc=$?
if [ $rc -ne 0 ] && grep -q 'detectors\[0\].calibration.windows: 0 (no count limit) needs calibration.duration_ms' "$D/calib0.out"; then
    it_ok "check refuses calibration.windows 0 without calibration.duration_ms, naming the key"
else
    it_fail "check refuses calibration.windows 0 without calibration.duration_ms, naming the key" \
        "rc=$rc $(cat "$D/calib0.out")"
fi
conf2 calibdur '' ', "calibration": {"windows": 0, "duration_ms": 3600000}'
$AD_BIN check -c "$D/calibdur.json" > "$D/calibdur.out" 2>&1; rc=$?
[ $rc -eq 0 ] && ! grep -q warning "$D/calibdur.out" &&
    it_ok "check takes calibration.windows 0 with a duration_ms" ||
    it_fail "check takes calibration.windows 0 with a duration_ms" "rc=$rc $(cat "$D/calibdur.out")"
conf2 loop '' ', "alert": {"topic": "sensors/{stream}/pump"}'
check_warns "check warns: alert.topic matched by the detector's own topic filter, naming both" loop \
    'warning: detector pump: alert.topic "sensors/{stream}/pump" matches its own topic filter "sensors/+/pump"'
conf2 sloop '' ', "alert": {"state_topic": "sensors/{stream}/pump"}'
check_warns "check warns: alert.state_topic matched by the detector's own topic filter" sloop \
    'warning: detector pump: alert.state_topic "sensors/{stream}/pump" matches its own topic filter "sensors/+/pump"'
conf2 onestate '' ', "alert": {"state_topic": "anomalyd/state/pump"}'
check_warns "check warns: alert.state_topic without {stream}" onestate \
    'warning: detector pump: alert.state_topic "anomalyd/state/pump" has no {stream}'
conf2 same '' ', "alert": {"topic": "anomalyd/a/{stream}", "state_topic": "anomalyd/a/{stream}"}'
check_warns "check warns: alert.state_topic equal to alert.topic" same \
    'warning: detector pump: alert.state_topic and alert.topic are both "anomalyd/a/{stream}"'
conf2 stats ', "status_topic": "anomalyd/x", "stats_topic": "anomalyd/x"' ''
check_warns "check warns: broker.stats_topic equal to broker.status_topic" stats \
    'warning: broker.stats_topic and broker.status_topic are both "anomalyd/x"'
conf2 statusloop ', "status_topic": "sensors/anomalyd/pump"' ''
check_warns "check warns: broker.status_topic matched by a detector's topic filter" statusloop \
    'warning: broker.status_topic "sensors/anomalyd/pump" matches the topic filter "sensors/+/pump" of detector pump'
# conf3 NAME FILTER COMMANDS: commands enabled with the COMMANDS keys
conf3() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": 1883}, "commands": {"enabled": true $3},
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["$2"],
   "stream_levels": [1],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"}}]}
EOC
}
conf3 cmdok 'sensors/+/pump' ''
$AD_BIN check -c "$D/cmdok.json" > "$D/cmdok.out" 2>&1; rc=$?
[ $rc -eq 0 ] && ! grep -q warning "$D/cmdok.out" &&
    it_ok "check: commands on with the default topics and sensors/+/pump: no warning" ||
    it_fail "check: commands on with the default topics and sensors/+/pump: no warning" \
        "rc=$rc $(cat "$D/cmdok.out")"
conf3 cmdin 'sensors/#' ', "topic": "sensors/cmd/{detector}/{stream}"'
check_warns "check warns: a detector's filter overlapping commands.topic" cmdin \
    'warning: detector pump: topic filter "sensors/#" overlaps commands.topic "sensors/cmd/{detector}/{stream}": messages there are taken as operator commands'
conf3 cmdplus '+/cmd/+/pump' ''
check_warns "check warns: a filter with wildcards overlapping the default commands.topic" cmdplus \
    'warning: detector pump: topic filter "+/cmd/+/pump" overlaps commands.topic "anomalyd/cmd/{detector}/{stream}"'
conf3 cmdreply 'sensors/+/pump' ', "reply_topic": "sensors/{detector}/{stream}"'
check_warns "check warns: commands.reply_topic matched by a detector's filter" cmdreply \
    'warning: commands.reply_topic "sensors/{detector}/{stream}" matches the topic filter "sensors/+/pump" of detector pump'
# alert settings that can do nothing with the others: step-down and a
# band learned need acceptance; a band needs a raise ratio over 1
conf2 sdoff '' ', "alert": {"stepdown_ratio": 0.67}'
check_warns "check warns: alert.stepdown_ratio with acceptance off" sdoff \
    'warning: detector pump: alert.stepdown_ratio 0.67 does nothing with acceptance off'
conf2 bandr1 '' ', "alert": {"band": "learn", "accept_after": 480}'
check_warns "check warns: alert.band learn with raise_ratio 1" bandr1 \
    'warning: detector pump: alert.band "learn" does nothing with alert.raise_ratio 1'
conf2 bandoff '' ', "alert": {"band": "learn", "raise_ratio": 1.15}'
check_warns "check warns: alert.band learn with acceptance off" bandoff \
    'warning: detector pump: alert.band "learn" does nothing with acceptance off'
conf2 sdon '' ', "alert": {"stepdown_ratio": 0.67, "accept_after": 480, "band": "learn", "raise_ratio": 1.15}'
$AD_BIN check -c "$D/sdon.json" > "$D/sdon.out" 2>&1; rc=$?
[ $rc -eq 0 ] && ! grep -q warning "$D/sdon.out" &&
    it_ok "check: step-down and band learn with acceptance and a raise ratio: no warning" ||
    it_fail "check: step-down and band learn with acceptance and a raise ratio: no warning" \
        "rc=$rc $(cat "$D/sdon.out")"
exit 0
