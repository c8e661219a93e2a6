#!/bin/sh
# it_daemon_restart_arrival.sh - a stream whose messages carry no time (rows
# stamped with their arrival time, the default) is never refused for its
# time: arrival times are made strictly increasing per stream, so a wall
# clock set back under a running daemon stamps the next rows after the
# last one. A restart must keep that: here the state the stop left says
# its last row is an hour ahead of the wall clock (written under a clock an
# hour fast, set right before the restart; or by another instance an hour
# ahead, on a Kafka hand-over). The rows after the restart are taken and
# scored, the window rows go on; none is refused as late (real mosquitto
# on 127.0.0.1). Before, the restored stream refused every row until the
# wall clock passed the saved last row: an hour without a score.
. tests/lib.sh
it_setup it_restart_arrival
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-restart-arrival", "qos_subscribe": 1,
            "stats_interval_s": 0.2},
 "workers": 1, "state_dir": "$D/state",
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "quality": {"enabled": false},
   "calibration": {"method": "fixed", "fixed": 0.3}}]}
EOC
# the stats reach samples=$1, windows_scored=$2 with none refused: ok $3
expect_stats() {
    if $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats samples="$1" dropped_samples=0 \
            windows_scored="$2" --timeout 20 >/dev/null; then
        it_ok "$3"
    else
        it_fail "$3" "samples $(it_last_stat "$D/sub.jsonl" anomalyd/stats samples), dropped_samples $(it_last_stat "$D/sub.jsonl" anomalyd/stats dropped_samples), windows_scored $(it_last_stat "$D/sub.jsonl" anomalyd/stats windows_scored)"
    fi
}
it_daemon_up
$H pub --port "$IT_PORT" --devices 1 --rows 40 --no-ts --rate 100 >/dev/null
expect_stats 200 11 "40 rows stamped on arrival: 11 windows scored, none refused"
kill -TERM "$DPID"; it_wait_gone "$DPID" 30; DPID=
# the saved times an hour ahead of the wall clock
r=$($PYTHON -c '
import json, sys
p = sys.argv[1]
o = json.load(open(p))
o["alert"]["last_ts"] += 3600000
w = o.get("window", {})
w["ts"] = [t + 3600000 for t in w.get("ts", [])]
json.dump(o, open(p, "w"))
print(len(w["ts"]))' "$D/state/pump/pump1.state.json" 2>&1)
[ "$r" = 29 ] || { it_fail "the stop leaves pump1's hand-over with 29 window rows" "$r"; exit 1; }
: > "$D/sub.jsonl"
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon2.log" & DPID=$!
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 >/dev/null ||
    { it_fail "daemon restarts" "$(cat "$D/daemon2.log")"; exit 1; }
$H pub --port "$IT_PORT" --devices 1 --rows 10 --no-ts --rate 100 >/dev/null
expect_stats 50 10 "after a restart with the wall clock behind the saved last row: each of the next 10 rows is taken and scored"
kill -TERM "$DPID"; it_wait_gone "$DPID" 20; DPID=
