#!/bin/sh
# it_daemon_normalize.sh - score.normalize "feature" in the daemon (a real
# mosquitto): a stream calibrates, its state file carries the per-feature
# scales, and after a restart it detects at once with the saved threshold
# (the scales restored with it: a state without them would recalibrate).
# A detector with score.normalize "none" given that state recalibrates
# (settings changed).
. tests/lib.sh
it_setup it_normalize
it_broker_up

conf() { # conf FILE NORMALIZE
    cat > "$1" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-normalize", "stats_interval_s": 0.5,
            "qos_subscribe": 1, "reconnect_min_s": 0.2},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "score": {"metric": "mae", "normalize": "$2"},
   "calibration": {"windows": 100},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
conf "$D/ad.json" feature
conf "$D/none.json" none

# threshold of the last state message of pump1 in phase detecting
threshold() {
    $H last --file "$1" --topic anomalyd/state/pump/pump1 --match phase=detecting --key threshold
}

it_sub_start
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
# two days back: the rows after the restart (the last hour) come after
# the saved ones, as a live pump's do (rows at or before the saved last
# row are refused after a restore, as by the stream that ran on)
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start $(($(date +%s) - 172800))
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
        --timeout 30 >/dev/null &&
   grep -q "pump1: per-feature scales learned on 100 windows: vibration" "$D/daemon.log"; then
    it_ok "first run: pump1 calibrated, scales learned ($(sed -n 's/.*scales learned on 100 windows: //p' "$D/daemon.log"))"
else
    it_fail "first run: pump1 calibrated, scales learned" "$(tail -20 "$D/daemon.log")"
fi
t1=$(threshold "$D/sub.jsonl")
it_daemon_stop
S="$D/state/pump/pump1.state.json"
if $PYTHON - "$S" <<'EOP'
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j.get("normalize") == "feature" and len(j.get("scale", [])) == 5 and
         all(v > 0 for v in j["scale"]) else 1)
EOP
then
    it_ok "the state file carries normalize and 5 scales"
else
    it_fail "the state file carries normalize and 5 scales" "$(head -c 400 "$S" 2>&1)"
fi
cp "$S" "$D/saved.json"

: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 60
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1 phase=detecting \
        --timeout 20 >/dev/null; then
    t2=$(threshold "$D/sub.jsonl")
    if [ "$t1" != None ] && [ "$t1" = "$t2" ] && ! grep -q "scales learned" "$D/daemon2.log" &&
        grep -q "pump/pump1: calibration restored from $S" "$D/daemon2.log"; then
        it_ok "restart: pump1 detects at once with the saved threshold ($t2) and scales"
    else
        it_fail "restart: pump1 detects at once with the saved threshold and scales" \
            "before $t1 after $t2: $(grep pump1 "$D/daemon2.log" | head -5)"
    fi
else
    it_fail "restart: pump1 detects at once with the saved threshold" "$(tail -20 "$D/daemon2.log")"
fi
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=31 \
        --timeout 20 >/dev/null; then
    it_ok "restart: the 31 windows of 60 rows scored"
else
    it_fail "restart: the 31 windows of 60 rows scored" "$(grep anomalyd/stats "$D/sub.jsonl" | tail -1)"
fi
it_daemon_stop

# the same state under score.normalize none: not restored, recalibrates
cp "$D/saved.json" "$S"
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/none.json" --log-level debug 2> "$D/daemon3.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null
$H pub --port "$IT_PORT" --devices 1 --rows 60
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=31 --timeout 20 >/dev/null
if grep -q "pump1.*settings changed" "$D/daemon3.log" &&
   ! grep -q "pump/pump1: calibration restored" "$D/daemon3.log"; then
    it_ok "score.normalize none: the normalised calibration is not restored (settings changed)"
else
    it_fail "score.normalize none: the normalised calibration is not restored" \
        "$(grep pump1 "$D/daemon3.log" | head -5)"
fi
it_daemon_stop
exit 0
