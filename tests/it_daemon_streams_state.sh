#!/bin/sh
# it_daemon_streams_state.sh - smaller lifecycle defects, real mosquitto:
#  - at max_streams a new device evicts the stream still calibrating that
#    has been silent longest (at least idle_evict_s / 10) instead of being
#    refused (a notice names the evicted stream); without such a stream it
#    is refused; the evicted stream's retained state is emptied;
#  - a stream key whose escaped name passes 255 bytes gets a state file
#    (cut, with the key's hash: at most 255 bytes) at stop;
#  - leftover temporary state files are removed at start;
#  - a SIGHUP while a reload runs is coalesced into one more reload.
. tests/lib.sh
it_setup it_streams_state
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-ss", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "max_streams": 2, "idle_evict_s": 20,
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
mkdir -p "$D/state/pump"
echo junk > "$D/state/pump/x.state.json.tmp~99.1"
it_sub_start
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
[ ! -e "$D/state/pump/x.state.json.tmp~99.1" ] && grep -q "leftover temporary" "$D/daemon.log" &&
    it_ok "leftover temporary state file removed at start" ||
    it_fail "leftover temporary state file removed at start" "$(ls -a "$D/state/pump")"

# two calibrating streams fill the limit; a third device arrives
# (a stream silent for idle_evict_s / 10 = 2 s may make room; before, the
# new device is refused)
$H pub --port "$IT_PORT" --devices 2 --rows 20 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 5 --topic 'sensors/early{device}/pump' >/dev/null
it_wait_log "$D/daemon.log" 'refusing new stream "earlypump1"' 10 &&
    it_ok "stream limit: a new device is refused while the others are not silent" ||
    it_fail "stream limit: a new device is refused while the others are not silent"
sleep 2.5
$H pub --port "$IT_PORT" --devices 1 --rows 20 --topic 'sensors/new{device}/pump' >/dev/null
if it_wait_log "$D/daemon.log" 'evicting stream "pump[12]" \(still calibrating, silent longest\) for new stream "newpump1"' 10 &&
   ! grep -q 'refusing new stream "newpump1"' "$D/daemon.log"; then
    it_ok "stream limit: the longest silent calibrating stream makes room"
else
    it_fail "stream limit: the longest silent calibrating stream makes room" \
        "$(grep -E 'limit|evict' "$D/daemon.log" | tail -5)"
fi
# an eviction is an operational notice (<5>), not a rate-limited bad-input
# warning
grep -q '^<5>detector pump: stream limit 2 reached, evicting stream "pump[12]"' "$D/daemon.log" &&
    it_ok "stream limit: the eviction is logged as a notice naming the stream" ||
    it_fail "stream limit: the eviction is logged as a notice naming the stream" \
        "$(grep -E 'evicting' "$D/daemon.log" | tail -2)"
# the evicted stream's retained state is emptied: a new subscriber gets none
ev=$(grep -o 'evicting stream "pump[12]"' "$D/daemon.log" | head -1 | grep -o 'pump[12]')
if [ -n "$ev" ] &&
   it_wait_log "$D/sub.jsonl" "\"topic\": \"anomalyd/state/pump/$ev\", \"payload\": \"\"" 10 &&
   it_retained "$IT_PORT" "$D/fresh.txt" "anomalyd/state/pump/$ev" && [ ! -s "$D/fresh.txt" ]; then
    it_ok "stream limit: the evicted stream's retained state is emptied"
else
    it_fail "stream limit: the evicted stream's retained state is emptied" \
        "$(grep "state/pump/$ev" "$D/sub.jsonl" | tail -2 | cut -c1-160)"
fi

# a 250-byte key ('%' escapes to 3 bytes: 750-byte name before hashing)
LONG=$(printf '%%%.0s' $(seq 1 250))
$H pub --port "$IT_PORT" --devices 1 --rows 200 --topic "sensors/$LONG/pump" >/dev/null
it_wait_log "$D/daemon.log" 'calibrated' 30 >/dev/null
# a line of the library about one stream names its detector too (two
# detectors may watch one stream)
grep -Eq '^<6>detector pump: stream [^ ]+: calibrated \(quantile\) threshold' "$D/daemon.log" &&
    it_ok "a stream's calibration log line names its detector" ||
    it_fail "a stream's calibration log line names its detector" \
        "$(grep 'calibrated' "$D/daemon.log" | head -2)"
# a SIGHUP while a reload runs: the new config has 40 more detectors (each
# loads its model on the reload's worker), so the reload takes long enough
# for a second SIGHUP 5 ms after the first to land during it. It must be
# followed by one more reload, and every reload must finish.
$PYTHON - "$D/ad.json" "$MODEL" <<'EOP'
import json, sys
c = json.load(open(sys.argv[1]))
for i in range(40):
    c["detectors"].append({"name": "extra%d" % i, "model": sys.argv[2],
                           "topics": ["extra/%d/+/pump" % i]})
json.dump(c, open(sys.argv[1], "w"))
EOP
i=0
while [ $i -lt 10 ] && ! grep -q "SIGHUP during a reload" "$D/daemon.log"; do
    $PYTHON -c 'import os, sys, time
os.kill(int(sys.argv[1]), 1); time.sleep(0.005); os.kill(int(sys.argv[1]), 1)' "$DPID"
    sleep 1; i=$((i + 1))
done
it_wait_log "$D/daemon.log" 'arrived during the reload: reloading once more' 20 >/dev/null
n=$(grep -c "SIGHUP: reloading" "$D/daemon.log")
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 "$n" >/dev/null
started=$(grep -c "SIGHUP: reloading" "$D/daemon.log")
done_=$(grep -c "configuration reloaded" "$D/daemon.log")
if grep -q "SIGHUP during a reload" "$D/daemon.log" && grep -q "reloading once more" "$D/daemon.log" &&
   [ "$started" -eq "$done_" ] && ! grep -q "already running" "$D/daemon.log"; then
    it_ok "SIGHUP during a reload: coalesced, reloaded once more after it ($started reloads)"
else
    it_fail "SIGHUP during a reload: coalesced" "started $started done $done_ $(grep -E 'SIGHUP|reload' "$D/daemon.log" | tail -5)"
fi
it_daemon_stop
f=$(ls "$D/state/pump" | grep '~.*\.state\.json$')
if [ -n "$f" ] && [ "${#f}" -le 255 ] && grep -q "\"stream\":\"$LONG\"" "$D/state/pump/$f"; then
    it_ok "long stream key: state file $f (${#f} bytes)"
else
    it_fail "long stream key: state file" "$(ls "$D/state/pump"; grep -i 'cannot write' "$D/daemon.log")"
fi
