#!/bin/sh
# it_kafka_reload.sh - SIGHUP reloads of daemons whose detectors read Kafka
# topics, with a state topic (librdkafka's mock cluster, the state topic
# led by a broker answering 0.5 s late so that reading it takes a while, and
# a real mosquitto for the stats; all on 127.0.0.1). Detectors a and b both
# read topic in (2 partitions, 2 pumps, pump1 faulty at rows 300-400 and
# 550-650).
#  1. a reload while the partitions' states are read and their records
#     held: applied once the read is done, under the new configuration.
#  2. a reload rebuilding both detectors' streams with alerts open: a's
#     (alert.m changed: its calibration holds) continues its alert, cleared
#     once when the fault ends; b's (window.hop changed) is cleared with
#     reason reload, once; the state topic gets b's new settings.
#  3. a reload removing b (a still reads in), then one moving topic in to
#     detector c (a renamed): their open alerts cleared once (reload), c
#     reads on, every record read once.
#  4. 30 reloads in 3 s (rebuilding c's streams) while a backlog is
#     scored: every window scored once (none discarded as stale), also
#     when a rebuild lands while new streams hold their first row
#     (it_daemon_reload_first_row.sh does that deterministically).
#  5. a stops, handing its streams' states over on the state topic; b2
#     (another state directory) restores them while reloads rebuild the
#     streams: each goes on from its state (calibrated); its stats
#     messages go on through the reloads.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_reload.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
DPID= ; SUB= ; MPID= ; P2=
cleanup() {
    for p in $DPID $P2; do kill "$p" 2>/dev/null; done
    for p in $DPID $P2; do it_wait_gone "$p" 20; done
    DPID=
    [ -n "$SUB" ] && kill "$SUB" 2>/dev/null
    it_kafka_cleanup
}
trap cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_reload" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start --slow st:500:it-kreload in:2 st:1 al:1 || exit 1   # FAST, broker 1: the instances bootstrap off the slow one
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null & SUB=$!

# c calibrates on its first 100 windows: a stream that loses its state
# calibrates again
cal() { if [ "$1" = c ]; then echo '{"windows": 100}'; else echo '{"method": "fixed", "fixed": 0.3}'; fi; }
det() { # det NAME [EXTRA]
    echo "{\"name\": \"$1\", \"model\": \"$MODEL\", \"kafka_topics\": [\"in\"],
   \"alerts_to\": \"kafka\",
   \"payload\": {\"format\": \"json\", \"timestamp\": \"ts\", \"timestamp_unit\": \"ms\"},
   \"calibration\": $(cal "$1")$2}"
}
conf() { # conf INSTANCE DETECTOR...
    n=$1; shift
    dets=
    for x in "$@"; do dets="$dets${dets:+, }$x"; done
    sdj=
    if [ "$n" = b2 ]; then      # b2 keeps states on disk; its reloads load 151 models
        sdj=" \"state_dir\": \"$D/sb\","
        j=0
        while [ $j -lt 150 ]; do
            dets="$dets, {\"name\": \"m$j\", \"model\": \"$MODEL\", \"topics\": [\"m$j/+\"]}"
            j=$((j + 1))
        done
    fi
    cat > "$D/$n.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kreload-$n", "stats_interval_s": 1,
            "stats_topic": "anomalyd/stats/$n"},
 "kafka": {"bootstrap_servers": "$FAST", "group_id": "it-kreload", "alert_topic": "al",
           "state_topic": "st", "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "workers": 1,$sdj
 "detectors": [$dets]}
EOC
}
produce() { # produce FROM TO [RATE]: rows FROM..TO of pump1 and pump2
    $PYTHON tests/it_kafka_gen.py ${3:+--rate $3} 2 "$1" "$2" \
        'cavitation@300m+100m' 'cavitation@550m+100m' |
        kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
}
# events DET/STREAM: "event alert_id reason" of its alert events on topic al
events() {
    kcat -C -b "$BOOT" -t al -e -q -f '%k|%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import json, sys
for line in sys.stdin:
    k, _, v = line.rstrip("\n").partition("|")
    try:
        j = json.loads(v)
    except ValueError:
        continue
    if k == sys.argv[1]:
        print(j["event"], j["alert_id"], j.get("reason", "-"))' "$1"
}
n_ev() { [ "$(events "$1" | grep -c "^$2 ")" -ge "$3" ]; }     # n_ev DET/STREAM EVENT N
# cleared_once DET/STREAM REASON WHAT: every alert raised was cleared
# exactly once, the last one with REASON
cleared_once() {
    ev=$(events "$1")
    bad=$(echo "$ev" | awk '$1 == "raised" { r[$2]++ } $1 == "cleared" { c[$2]++ }
        END { for (i in r) if (c[i] != 1) print i; for (i in c) if (!(i in r)) print i }')
    if [ -n "$ev" ] && [ -z "$bad" ] && [ "$(echo "$ev" | tail -1 | cut -d' ' -f1,3)" = "cleared $2" ]; then
        it_ok "$3"
    else
        it_fail "$3" "$1: $(echo "$ev" | tr '\n' ';')"
    fi
}
# state DET/STREAM FIELD: FIELD of the state of the stream's last record on
# the state topic
state() {
    kcat -C -b "$BOOT" -t st -e -q -f '%k|%s\n' 2>> "$D/kcat.out" | $PYTHON -c '
import json, sys
last = None
for line in sys.stdin:
    k, _, v = line.rstrip("\n").partition("|")
    if k == sys.argv[1]:
        last = v
print(json.loads(last)["state"][sys.argv[2]] if last else "-")' "$1" "$2"
}
stv() { # stv INSTANCE NAME: NAME in the instance's last stats message
    grep "^anomalyd/stats/$1 " "$D/stats" | tail -1 | cut -d' ' -f2- |
        $PYTHON -c 'import json, sys; print(int(json.load(sys.stdin)[sys.argv[1]]))' "$2"
}
stv_is() { [ "$(stv "$1" "$2")" "$3" "$4" ]; }   # stv_is INSTANCE NAME OP VALUE
reloads() { grep -c 'configuration reloaded\|reload refused\|reload failed' "$D/$1.log"; }
reload() { # reload INSTANCE: SIGHUP, until it is done
    _n=$(reloads "$1")
    kill -HUP "$(eval echo \$PID_$1)"
    it_wait_until 30 sh -c "[ \$(grep -c 'configuration reloaded\|reload refused\|reload failed' $D/$1.log) -gt $_n ]"
}
start() { # start INSTANCE
    env ${UVP:+UV_THREADPOOL_SIZE=$UVP} $AD_BIN run -c "$D/$1.json" --log-level debug \
        2> "$D/$1.log" &
    eval "PID_$1=\$!"
}

# 1. records waiting: the reload lands while their states are read
produce 0 380
conf a "$(det a ', "alert": {"m": 7}')" "$(det b)"
start a; DPID=$PID_a
it_wait_log "$D/a.log" 'records held until its state is read' 30 ||
    { it_fail "a holds the records while the state topic is read" "$(tail -3 "$D/a.log")"; exit 1; }
conf a "$(det a)" "$(det b)"
reload a
if grep -q 'configuration reloaded' "$D/a.log" && ! grep -q 'owns in.*(state read)' "$D/a.log" &&
   it_wait_until 40 n_ev a/pump1 raised 1 && it_wait_until 20 n_ev b/pump1 raised 1 &&
   it_wait_until 20 stv_is a messages_in -eq 760; then
    it_ok "a reload while the states are read: the held records are applied after it, once"
else
    it_fail "a reload while the states are read: the held records are applied after it, once" \
        "$(grep 'reload\|owns' "$D/a.log" | tail -3) messages_in $(stv a messages_in)"
fi

# 2. rebuilt with alerts open
HASH_B=$(state b/pump1 settings_hash)
conf a "$(det a ', "alert": {"m": 7}')" "$(det b ', "window": {"hop": 2}')"
reload a
it_wait_until 10 n_ev b/pump1 cleared 1
produce 380 500
it_wait_until 30 n_ev a/pump1 cleared 1
it_wait_until 30 stv_is a messages_in -eq 1000
sleep 1
cleared_once a/pump1 cleared "a rebuilt (alert.m) with its alert open: the alert goes on, cleared once when the fault ends"
ev=$(events b/pump1)
if [ "$(echo "$ev" | head -2 | cut -d' ' -f1,3 | tr '\n' ';')" = "raised -;cleared reload;" ]; then
    cleared_once b/pump1 cleared "b rebuilt (window.hop) with its alert open: cleared once (reason reload), the next one when the fault ends"
else
    it_fail "b rebuilt (window.hop) with its alert open: cleared once (reason reload)" "$(echo "$ev" | tr '\n' ';')"
fi
h=$(state b/pump1 settings_hash)
if [ "$h" != "$HASH_B" ] && [ "$h" != - ]; then
    it_ok "the state topic holds b's state under its new settings ($HASH_B -> $h)"
else
    it_fail "the state topic holds b's state under its new settings" "$HASH_B -> $h"
fi

# 3. b removed (a still reads in), then a renamed c, alerts open (row 550)
produce 500 600
it_wait_until 30 n_ev a/pump1 raised 2
it_wait_until 30 n_ev b/pump1 raised 3
conf a "$(det a ', "alert": {"m": 7}')"
reload a
conf a "$(det c ', "alert": {"m": 7}')"
reload a
produce 600 700
it_wait_until 30 stv_is a messages_in -eq 1400
cleared_once a/pump1 reload "a renamed c: a's open alert cleared once, reason reload"
cleared_once b/pump1 reload "b removed: its open alert cleared once, reason reload"
if [ "$(stv a streams)" -eq 2 ]; then
    it_ok "c reads topic in on (streams pump1 and pump2)"
else
    it_fail "c reads topic in on (streams pump1 and pump2)" "$(stv a streams) streams"
fi

# 4. 30 reloads in 3 s while a backlog of 300 rows of 40 pumps (pump3
# to pump40 new) is scored: every window once, none discarded as stale
sleep 2
W0=$(stv a windows_scored)
$PYTHON tests/it_kafka_gen.py 40 700 1000 'cavitation@300m+100m' 'cavitation@550m+100m' |
    kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out" &
GEN=$!
i=0
while [ $i -lt 30 ]; do
    if [ $((i % 2)) = 0 ]; then conf a "$(det c)"; else conf a "$(det c ', "alert": {"m": 7}')"; fi
    kill -HUP "$PID_a"
    sleep 0.1
    i=$((i + 1))
done
wait "$GEN"
# 300 windows of pump1 and pump2, 300 - 29 of each new pump (30-row windows)
WX=$((2 * 300 + 38 * 271))
it_wait_until 30 stv_is a messages_in -eq 13400
it_wait_until 30 stv_is a windows_scored -ge $((W0 + WX))
sleep 1.5
W1=$(stv a windows_scored); ST=$(stv a windows_stale)
if [ $((W1 - W0)) -eq $WX ] && [ "$ST" -eq 0 ] && [ "$(reloads a)" -ge 12 ]; then
    it_ok "30 reloads in 3 s: every window of the backlog scored once ($WX), none stale"
else
    it_fail "30 reloads in 3 s: every window of the backlog scored once ($WX), none stale" \
        "windows scored $((W1 - W0)), stale $ST, $(reloads a) reloads"
fi

# 5. a stops (its streams' states handed over on the state topic); b2 (a
# state directory, one thread-pool thread, 150 more detectors: each of its
# reloads keeps the pool busy loading models, and restores queue behind)
# starts with records waiting and restores those states while reloads
# rebuild the streams: each goes on from its state, calibrated
kill "$PID_a"; it_wait_gone "$PID_a" 30; DPID=
$PYTHON tests/it_kafka_gen.py 20 1000 1100 | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"
for m in 3 4 5 6 7; do
    conf b2 "$(det c ", \"alert\": {\"m\": $m}")"; mv "$D/b2.json" "$D/b2-$m.json"
done
cp "$D/b2-7.json" "$D/b2.json"
UVP=1 start b2; P2=$PID_b2
it_wait_log "$D/b2.log" 'running:' 20      # its SIGHUP handler set
hup() { # a SIGHUP, the configuration changed (alert.m: the streams rebuilt)
    cp "$D/b2-$(($1 % 5 + 3)).json" "$D/b2.tmp" && mv "$D/b2.tmp" "$D/b2.json"
    kill -HUP "$PID_b2"
    sleep 0.02
}
S0=$(grep -c '^anomalyd/stats/b2 ' "$D/stats"); T0=$(date +%s)
i=0
while [ $i -lt 1500 ] && [ "$(grep -c 'kafka: owns in\[.*(state read)' "$D/b2.log")" -lt 2 ]; do
    hup $i
    i=$((i + 1))
done
i=0
while [ $i -lt 100 ]; do
    hup $i
    i=$((i + 1))
done
T1=$(date +%s); S1=$(grep -c '^anomalyd/stats/b2 ' "$D/stats")
if [ $((T1 - T0)) -ge 3 ] && [ $((S1 - S0)) -ge $(((T1 - T0) / 2)) ]; then
    it_ok "b2's stats (every 1 s) go on through reloads every few ms: $((S1 - S0)) in $((T1 - T0)) s"
else
    it_fail "b2's stats (every 1 s) go on through reloads every few ms" "$((S1 - S0)) in $((T1 - T0)) s"
fi
sleep 1.5
if it_wait_until 20 stv_is b2 messages_in -eq 2000 && [ "$(stv b2 streams)" -eq 20 ] &&
   [ "$(stv b2 calibrating_streams)" -eq 0 ] && [ "$(stv b2 collecting_streams)" -eq 0 ]; then
    it_ok "b2 restores the 20 streams a handed over while reloads rebuild them: each goes on calibrated"
else
    it_fail "b2 restores the 20 streams a handed over while reloads rebuild them: each goes on calibrated" \
        "$(stv b2 messages_in) records, $(stv b2 streams) streams, $(stv b2 collecting_streams) collecting, $(stv b2 calibrating_streams) calibrating; $(grep -c 'SIGHUP: reloading' "$D/b2.log") reloads"
fi
kill "$P2"; it_wait_gone "$P2" 30; P2=
if grep -q 'Sanitizer\|runtime error' "$D/a.log" "$D/b2.log"; then
    it_fail "no memory error" "$(grep -h -A8 'Sanitizer\|runtime error' "$D/a.log" "$D/b2.log" | head -20)"
else
    it_ok "no memory error"
fi
