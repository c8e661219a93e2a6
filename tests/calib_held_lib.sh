# calib_held_lib.sh - helpers of the calibration-wait daemon tests
# (it_daemon_calib_held*.sh), sourced after tests/lib.sh; they use H, D,
# IT_PORT and START (the first row's time, s; set by calib_held_train).
# calib_held_conf CLIENT_ID [STATE_DIR]: $D/ad.json for a stream that
# trains its own model (training bootstrap, 100 windows of 20 rows), then
# calibrates on 30 windows and waits up to alert.accept_after (150)
# windows for normal ones; its state on anomalyd/state/pump/<stream>; the
# state directory STATE_DIR when given
calib_held_conf() {
    _sd=
    [ -n "${2:-}" ] && _sd="\"state_dir\": \"$2\","
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "$1", "stats_interval_s": 0.5},
 "workers": 2, $_sd
 "detectors": [{"name": "pump", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "window": {"length": 20}, "calibration": {"windows": 30},
   "quality": {"enabled": false},
   "alert": {"accept_after": 150, "state_topic": "anomalyd/state/{detector}/{stream}"},
   "training": {"mode": "bootstrap", "windows": 100, "epochs": 3, "boot_units": 16,
     "features": ["vibration", "current", "pressure", "temperature", "flow"]}}]}
EOC
}
pubrows() {    # pubrows FROM TO [--shift ...]: rows FROM..TO-1 of pump1
    _f=$1 _t=$2; shift 2
    $H pub --port "$IT_PORT" --devices 1 --rows "$_t" --start-row "$_f" --start "$START" \
        --rate 400 "$@"
}
# calib_held_train: rows 0..124 of pump1 from START (set here: 1000
# minutes ago), and the stream's model trained on them (120 s at most:
# else the case "the stream trains its model" fails and the test ends)
calib_held_train() {
    START=$(( $(date +%s) - 1000 * 60 ))
    pubrows 0 125
    it_wait_log "$D/daemon.log" "model trained online" 120 ||
        { it_fail "the stream trains its model" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
# calib_held_begin: the current 60 % up (a level the training never saw),
# rows 125..214: the wait begins (its event on the state topic's events,
# 15 s at most) and the rows are in (30 s at most); else the case fails
# and the test ends
calib_held_begin() {
    pubrows 125 215 --shift current:30:0
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/state/pump/pump1/events \
        event=calibration_held calibration=held --timeout 15 > /dev/null ||
        { it_fail "the wait begins" "$(grep -i calibration "$D/daemon.log" | tail -3)"; exit 1; }
    calib_held_in 215
}
# calib_held_in N [CASE]: until the daemon's stats (in $D/sub.jsonl) count
# N messages in (30 s at most: else the case CASE, default "the rows are
# in", fails and the test ends), then 1 s for the retained states they bring
calib_held_in() {
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats messages_in="$1" --timeout 30 \
        > /dev/null || { it_fail "${2:-the rows are in}" "$(tail -3 "$D/daemon.log")"; exit 1; }
    sleep 1
}
# wait_of FILE: pump1's live retained states in the subscriber's FILE (not
# those the broker hands a new subscriber), as [phase, calibration.wait]:
# the first and the last
wait_of() {
    $PYTHON - "$1" <<'EOP'
import json, sys
c = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/state/pump/pump1" and m["payload"] and not m["retain"]:
        p = json.loads(m["payload"])
        c.append((p.get("phase"), p.get("calibration", {}).get("wait", "absent")))
print(json.dumps([c[0], c[-1]] if c else None))
EOP
}
# calib_held_reload: alert.k added to $D/ad.json (an alert rule changed:
# the stream is rebuilt) and SIGHUP; the reload awaited in the daemon's
# log (20 s at most: else the case fails and the test ends)
calib_held_reload() {
    sed 's/"accept_after": 150,/"accept_after": 150, "k": 4,/' "$D/ad.json" > "$D/ad.json.new" &&
        mv "$D/ad.json.new" "$D/ad.json"
    kill -HUP "$DPID"
    it_wait_log "$D/daemon.log" "configuration reloaded" 20 ||
        { it_fail "the configuration reloads" "$(tail -5 "$D/daemon.log")"; exit 1; }
}
