#!/bin/sh
# it_check.sh - `anomalyd check` warns about settings that would leave the
# daemon running without what the operator expects: a stream level past
# every level of a topic filter (each message dropped: no stream key), a
# state_dir or a metrics.textfile directory that cannot be written here.
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
exit 0
