#!/bin/sh
# it_daemon_reload_keepalert.sh - a reload that rebuilds a stream for alert
# settings (calibration hash unchanged) with an alert open: the alert must
# either continue (and clear later under its own id) or be closed with a
# cleared event; never vanish without one.
#  1. no state_dir: the rebuilt stream goes on from its state at the reload
#     (in memory) and continues the alert
#  2. state_dir, alert.n lowered below the open alert's hist_len: the saved
#     alert is refused by the new alerter ("saved alert not continued")
#  3. (control) state_dir, alert.k changed: continued, then cleared
. tests/lib.sh
it_setup it_daemon_reload_keepalert
cp "${AD_SRCDIR:-.}/conf/models/pump.safetensors" "$D/pump.safetensors"
it_broker_up

# conf STATE_DIR_JSON K N
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-keepalert", "stats_interval_s": 1,
            "qos_subscribe": 1}, "workers": 0, "state_dir": $1,
 "detectors": [{"name": "pump", "model": "pump.safetensors",
   "topics": ["sensors/+/pump"], "payload": {"format": "json"},
   "alert": {"k": $2, "n": $3},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
}
reload() {
    kill -HUP "$DPID"
    i=0
    while [ $i -lt 50 ]; do
        [ "$(grep -c "$1" "$D/daemon.log")" -ge "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# run CASE DEV STATE_DIR_JSON K0 N0 K1 N1
run() {
    dev=pump$2
    conf "$3" "$4" "$5"
    $AD_BIN run -c "$D/ad.json" 2> "$D/daemon$1.log" & DPID=$!
    ln -sf "$D/daemon$1.log" "$D/daemon.log"
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 --count "$1" >/dev/null ||
        it_fail "daemon connects" "$(cat "$D/daemon.log")"
    $H pub --port "$IT_PORT" --no-ts --rows 600 --devices "$2" --fault 'cavitation@300m+1000m' \
        --fault-devices "$dev"
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/$dev event=raised --timeout 10 >/dev/null ||
        it_fail "case $1: alert raised" "$(tail -3 "$D/daemon.log")"
    conf "$3" "$6" "$7"
    reload "configuration reloaded" 1 || it_fail "case $1: reload" "$(tail -3 "$D/daemon.log")"
    # normal data: the continued alert clears (or it was closed at the reload)
    $H pub --port "$IT_PORT" --no-ts --rows 300 --devices "$2" --start-row 0
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/$dev event=cleared --timeout 10 >/dev/null; then
        it_ok "case $1: the alert open at the reload is cleared (continued or closed)"
    else
        it_fail "case $1: the alert open at the reload is never cleared (it vanished: consumers see it open for ever)" \
            "$(grep "$dev" "$D/sub.jsonl" | grep -o 'event[^,]*,' | tr '\n' ' '; grep -i 'rebuilt\|not continued' "$D/daemon.log")"
    fi
    kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
}

it_sub_start
sleep 0.3
run 1 1 null 3 5 2 5
mkdir -p "$D/state"
run 2 2 "\"$D/state\"" 3 5 3 3
# control: state_dir, alert.k changed only (the alert is continued)
run 3 3 "\"$D/state\"" 3 5 2 5
