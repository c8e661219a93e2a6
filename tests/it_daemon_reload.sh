#!/bin/sh
# it_daemon_reload.sh - SIGHUP reloads: a changed threshold setting takes
# effect; a change outside the pipeline keeps streams calibrated; a corrupt
# model file, an invalid config or a non-reloadable change keep the running
# configuration (naming every key a reload cannot change), and alerts keep
# flowing afterwards.
. tests/lib.sh
it_setup it_daemon_reload
cp "${AD_SRCDIR:-.}/conf/models/pump.safetensors" "$D/pump.safetensors"
it_broker_up
# conf THRESHOLD [MODEL] [STATS_INTERVAL] [PORT] [WORKERS] [ALERT_K]
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": ${4:-$IT_PORT}, "client_id": "it-reload", "stats_interval_s": ${3:-1},
            "qos_subscribe": 1}, "workers": ${5:-0}, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "${2:-pump.safetensors}",
   "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "alert": {"k": ${6:-3}},
   "calibration": {"method": "fixed", "fixed": $1}}]}
EOC
}
# reload: SIGHUP, then wait for the outcome line ($1) to appear $2 times
reload() {
    kill -HUP "$DPID"
    i=0
    while [ $i -lt 50 ]; do
        [ "$(grep -c "$1" "$D/daemon.log")" -ge "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# model alerts of stream $1 (data-quality alerts share the topic)
nalerts() { grep "anomalyd/alerts/pump/$1" "$D/sub.jsonl" | grep -cF 'kind\":\"model'; }
F='cavitation@300m+100m'

conf 100
it_sub_start
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 >/dev/null ||
    it_fail "daemon connects" "$(cat "$D/daemon.log")"

# threshold 100: the fault goes unnoticed
$H pub --port "$IT_PORT" --no-ts --rows 600 --fault "$F" --fault-devices pump1
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats windows_scored=571 --timeout 10 >/dev/null
[ "$(nalerts pump1)" -eq 0 ] && it_ok "threshold 100: no alert" ||
    it_fail "threshold 100: no alert" "$(nalerts pump1) alert messages"

# SIGHUP with threshold 0.3: the same fault now raises an alert
conf 0.3
if reload "configuration reloaded" 1; then
    it_ok "SIGHUP: new threshold accepted"
else
    it_fail "SIGHUP: new threshold accepted" "$(cat "$D/daemon.log")"
fi
$H pub --port "$IT_PORT" --no-ts --rows 600 --fault "$F" --fault-devices pump1
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised threshold=0.3 --timeout 10; then
    it_ok "SIGHUP: changed threshold takes effect (alert at threshold 0.3)"
else
    it_fail "SIGHUP: changed threshold takes effect (alert at threshold 0.3)" "$(tail -5 "$D/daemon.log")"
fi

# a change outside the pipeline (stats interval): streams kept as they are
conf 0.3 pump.safetensors 2
if reload "configuration reloaded" 2 && grep -q "1 stream(s) kept" "$D/daemon.log"; then
    it_ok "SIGHUP: unchanged pipeline keeps the stream"
else
    it_fail "SIGHUP: unchanged pipeline keeps the stream" "$(grep reload "$D/daemon.log")"
fi

# corrupt model: the old configuration keeps running
head -c 2000 "$D/pump.safetensors" > "$D/broken.safetensors"
conf 0.3 broken.safetensors
if reload "reload failed, keeping the running configuration" 1; then
    it_ok "SIGHUP with a corrupt model: refused, error logged"
else
    it_fail "SIGHUP with a corrupt model: refused, error logged" "$(tail -3 "$D/daemon.log")"
fi
$H pub --port "$IT_PORT" --no-ts --rows 600 --devices 2 --fault "$F" --fault-devices pump2
if kill -0 "$DPID" 2>/dev/null &&
   $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump2 event=raised --timeout 10; then
    it_ok "after the corrupt model: still running, alerts keep flowing"
else
    it_fail "after the corrupt model: still running, alerts keep flowing"
fi

# invalid config: the same
echo '{"broker": {"port": "x"}' > "$D/ad.json"
if reload "reload failed, keeping the running configuration" 2; then
    it_ok "SIGHUP with an invalid config: refused, error logged"
else
    it_fail "SIGHUP with an invalid config: refused, error logged" "$(tail -3 "$D/daemon.log")"
fi
$H pub --port "$IT_PORT" --no-ts --rows 600 --devices 3 --fault "$F" --fault-devices pump3
if kill -0 "$DPID" 2>/dev/null &&
   $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump3 event=raised --timeout 10; then
    it_ok "after the invalid config: still running, alerts keep flowing"
else
    it_fail "after the invalid config: still running, alerts keep flowing"
fi

# an alert rule changed (alert.k) with an alert open: the rebuilt stream
# keeps its calibration and continues the alert, as a restart would; no
# cleared event, the same alert id clears later
$H pub --port "$IT_PORT" --no-ts --rows 600 --devices 5 --fault 'cavitation@300m+1000m' \
    --fault-devices pump5
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump5 event=raised --timeout 10 >/dev/null
conf 0.3 pump.safetensors 1 "" 0 2
reload "configuration reloaded" 3
$H pub --port "$IT_PORT" --no-ts --rows 60 --devices 5 --start-row 0
sleep 1
n5r=$(grep "anomalyd/alerts/pump/pump5" "$D/sub.jsonl" | grep -c 'event\\":\\"raised')
n5c=$(grep "anomalyd/alerts/pump/pump5" "$D/sub.jsonl" | grep -c 'reason\\":\\"reload')
if [ "$n5r" -eq 1 ] && [ "$n5c" -eq 0 ] &&
   grep -q "detector pump: 0 stream(s) kept, 0 with the new model, 0 evaluating it in shadow, 0 waiting to (a fine-tune out or no window period yet), 5 rebuilt" "$D/daemon.log"; then
    it_ok "SIGHUP changing alert.k with an alert open: the rebuilt stream continues it (1 raise, no reload clear)"
else
    it_fail "SIGHUP changing alert.k with an alert open: the rebuilt stream continues it" \
        "raised $n5r, cleared for reload $n5c" "$(grep reload "$D/daemon.log" | tail -2)"
fi
conf 0.3
reload "configuration reloaded" 4

# a new model file (same shape) with an alert open: the stream takes it at
# once and closes the alert first (model_changed); the cleared message
# names the model that scored the alert, not the new file
$PYTHON tools/pumpsim.py --seed 5 --days 1 --out "$D/p5.csv" &&
$AD_BIN train -i "$D/p5.csv" -o "$D/other.safetensors" --arch lstm-ae:8 --epochs 2 --hop 4 \
    --loss mae > "$D/train.log" 2>&1 || it_fail "second model trained" "$(tail -3 "$D/train.log")"
old_id=$($AD_BIN info "$D/pump.safetensors" | awk '/^id:/ { print $2 }')
$H pub --port "$IT_PORT" --no-ts --rows 600 --devices 4 --fault 'cavitation@300m+1000m' \
    --fault-devices pump4
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump4 event=raised --timeout 10 >/dev/null
conf 0.3 other.safetensors
reload "configuration reloaded" 5
if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump4 event=cleared \
       reason=model_changed model.id="$old_id" model.file=None model.trained_online=None \
       --timeout 10 >/dev/null; then
    it_ok "SIGHUP with another model file: the open alert is closed (model_changed), labelled with the model that scored it ($old_id), not the new file"
else
    it_fail "SIGHUP with another model file: the open alert is closed (model_changed), labelled with the model that scored it" \
        "$(grep 'pump4' "$D/sub.jsonl" | grep cleared | tail -2; grep reload "$D/daemon.log" | tail -3)"
fi

# keys a reload cannot change: all of them are named
conf 0.3 other.safetensors 1 1 2
if reload "reload refused, keeping the running configuration: broker.port, workers: changed, but a reload cannot change them" 1; then
    it_ok "SIGHUP changing broker.port and workers: refused with both keys named"
else
    it_fail "SIGHUP changing broker.port and workers: refused with both keys named" "$(tail -3 "$D/daemon.log")"
fi
grep -E "reload|SIGHUP" "$D/daemon.log" | sed 's/^/# /'
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] && it_ok "clean stop after the reloads" || it_fail "clean stop after the reloads" "rc=$rc"
exit 0
