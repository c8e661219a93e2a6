#!/bin/sh
# it_daemon_reload_first_row.sh - a SIGHUP that rebuilds a stream whose
# window ring holds a single row (a new stream after its first message, or
# one whose window restarted at a gap) keeps that row: every window of the
# stream is scored, none is silently lost to the reload.
#  1. alert.k changed (a rebuild key that keeps the calibration) after the
#     first row of two new streams, one calibrating (calibration.windows)
#     and one with a fixed threshold: 31 rows give 2 windows each, as
#     without the reload
#  2. the same without a state directory (nothing read from a file)
. tests/lib.sh
it_setup it_daemon_reload_first_row
SRC=$(cd "${AD_SRCDIR:-.}" && pwd)
MODEL="$SRC/conf/models/pump.safetensors"
it_broker_up
it_sub_start
sleep 0.3
# rows carry their data time, one a minute
START=$(( $(date +%s) - 2000 * 60 ))
PUB="$H pub --port $IT_PORT --start $START --devices 1"

det() { # det NAME ALERT_K CALIBRATION
    echo "{\"name\": \"$1\", \"model\": \"$MODEL\", \"topics\": [\"sensors/+/pump\"],
      \"payload\": {\"format\": \"json\", \"timestamp\": \"ts\", \"timestamp_unit\": \"ms\"},
      \"quality\": {\"enabled\": false}, \"alert\": {\"k\": $2}, \"calibration\": {$3}}"
}
conf() { # conf CASE ALERT_K STATE_DIR
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-reload-first-row-$1", "stats_interval_s": 0.3,
            "stats_topic": "anomalyd/stats$1", "qos_subscribe": 1},
 "workers": 0, "state_dir": $3,
 "detectors": [$(det cal "$2" '"method": "sigma", "k": 3, "windows": 100'),
               $(det fix "$2" '"method": "fixed", "fixed": 100')]}
EOC
}
stat() { it_last_stat "$D/sub.jsonl" "anomalyd/stats$1" "$2"; }   # KEY of case CASE's last stats message
_stat_is() { [ "$(stat "$1" "$2")" = "$3" ]; }

# first_row CASE STATE_DIR WHAT
first_row() {
    c=$1
    conf "$c" 3 "$2"
    $AD_BIN run -c "$D/ad.json" --log-level debug 2> "$D/daemon$c.log" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 10 \
        --count "$c" >/dev/null || it_fail "case $c: daemon connects" "$(tail -3 "$D/daemon$c.log")"
    $PUB --rows 1
    it_wait_until 10 _stat_is "$c" messages_in 1 ||
        it_fail "case $c: the first row read" "messages_in $(stat "$c" messages_in)"
    conf "$c" 2 "$2"
    kill -HUP "$DPID"
    it_wait_log "$D/daemon$c.log" 'configuration reloaded' 10 ||
        it_fail "case $c: reloaded" "$(tail -3 "$D/daemon$c.log")"
    $PUB --rows 31 --start-row 1
    it_wait_until 10 _stat_is "$c" messages_in 31
    it_wait_until 3 _stat_is "$c" windows_scored 4
    sleep 0.7
    n=$(stat "$c" windows_scored)
    if [ "$n" = 4 ] && [ "$(stat "$c" windows_stale)" = 0 ]; then
        it_ok "case $c: a rebuild after a stream's first row$3 keeps it: 31 rows give 2 windows a stream"
    else
        it_fail "case $c: a rebuild after a stream's first row$3 keeps it: 31 rows give 2 windows a stream" \
            "windows_scored $n (4 expected), stale $(stat "$c" windows_stale); $(grep 'reload: detector\|window rows' "$D/daemon$c.log" | tail -3)"
    fi
    kill "$DPID"; it_wait_gone "$DPID" 20; DPID=
    if grep -q 'Sanitizer\|runtime error' "$D/daemon$c.log"; then
        it_fail "case $c: no memory error" "$(grep -A8 'Sanitizer\|runtime error' "$D/daemon$c.log" | head -20)"
    fi
}
first_row 1 "\"$D/state\"" ""
first_row 2 null " (no state_dir)"
