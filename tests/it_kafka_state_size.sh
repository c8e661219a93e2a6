#!/bin/sh
# it_kafka_state_size.sh - a stream with continual learning keeps the
# windows of an open alert for regime acceptance (up to
# adapt.normal_windows, about 3 KB each); in a long alert its state record
# outgrows message.max.bytes. The record must still go out, without those
# windows and with a warning, so that the hand-over reaches the next owner:
# before, the producer refused it and the next owner restored an older
# state. librdkafka's mock cluster and a real mosquitto, on 127.0.0.1.
#  a: message.max.bytes 150000, a blockage from row 200 of 400 (about 190
#     alert windows, about 0.5 MB), stops (SIGTERM): its hand-over record
#     is under the limit, names the offset, holds the open alert and the
#     learner without alert_windows; a warning says they were left out;
#     its probability history (about 7 KB here) stays:
#     the record fits without the windows alone
#  b: takes the partition, restores the open alert and goes on with it (the
#     fault goes on to row 450: no second alert raised), and clears it when
#     the rows turn normal
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_state_size.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
MPID= ; P=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_state_size" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 al:1 || exit 1

conf() {
    cat > "$D/$1.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-ksize-$1",
            "status_topic": "anomalyd/status/$1", "stats_topic": "anomalyd/stats/$1"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "alert_topic": "al", "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300",
                          "message.max.bytes": "150000"}},
 "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 0.3},
   "alert": {"accept_after": 1000},
   "adapt": {"enabled": true}}]}
EOC
}
start() {
    conf "$1"
    $AD_BIN run -c "$D/$1.json" --log-level debug 2> "$D/$1.log" & P="$P $!"
    eval "PID_$1=\$!"
}
pid() { eval "echo \$PID_$1"; }
produce() { # FROM TO [FAULT]
    $PYTHON tests/it_kafka_gen.py 1 "$1" "$2" "${3:-blockage@200m+1000m}" |
        kcat -P -K'|' -b "$BOOT" -t in -p 0 2>> "$D/kcat.out"
}
# alerts EVENT: how many EVENT events of pump1 on al
alerts() {
    kcat -C -b "$BOOT" -t al -e -q -f '%s\n' 2>> "$D/kcat.out" |
        grep -c "\"event\":\"$1\".*\"stream\":\"pump1\"\|\"stream\":\"pump1\".*\"event\":\"$1\""
}
# last state record of pump/pump1: "bytes has_offset alert_open adapt alert_windows
# probability"
last_state() {
    it_kafka_last st pump/pump1 | $PYTHON -c '
import json, sys
last = sys.stdin.read().strip()
if not last:
    print("none"); sys.exit()
o = json.loads(last)
st = o.get("state") or {}
al = st.get("alert") or {}
ad = st.get("adapt")
print(len(last), "offset" in o, bool(al.get("open")), ad is not None,
      bool(ad and "alert_windows" in ad), "probability" in st)'
}

start a
it_wait_log "$D/a.log" 'kafka: owns in\[0\]' 20 || it_fail "a owns in[0]" "$(tail -3 "$D/a.log")"
produce 0 400
raised() { [ "$(alerts raised)" -ge 1 ]; }
it_wait_until 30 raised
sleep 3
kill -TERM "$(pid a)"; it_wait_gone "$(pid a)" 20
ls=$(last_state)
set -- $ls
w=$(grep -c "learner's windows of the open alert are left out" "$D/a.log")
if [ "$#" -eq 6 ] && [ "$1" -le 150000 ] && [ "$2" = True ] && [ "$3" = True ] && [ "$4" = True ] &&
   [ "$5" = False ] && [ "$w" -ge 1 ]; then
    it_ok "a's hand-over record ($1 bytes) is under message.max.bytes 150000: offset, open alert, learner without its alert windows; a warning says so"
else
    it_fail "a's hand-over record is under message.max.bytes: offset, open alert, learner without its alert windows; a warning says so" \
        "last record: $ls; warnings $w; $(grep -i 'kafka.*\(produce\|over the\)' "$D/a.log" | tail -2)"
fi
# leaving out the windows alone makes it fit: the probability history stays
p=$(grep -c "probability history is left out" "$D/a.log")
if [ "$#" -eq 6 ] && [ "$6" = True ] && [ "$p" -eq 0 ]; then
    it_ok "a's hand-over record keeps the probability history (the alert windows alone were over the limit)"
else
    it_fail "a's hand-over record keeps the probability history (the alert windows alone were over the limit)" \
        "last record: $ls; $(grep 'probability history is left out' "$D/a.log" | head -1)"
fi

start b
produce 400 560 'blockage@200m+250m'
cleared() { [ "$(alerts cleared)" -ge 1 ]; }
it_wait_until 30 cleared
n=$(alerts raised); c=$(alerts cleared)
if [ "$n" -eq 1 ] && [ "$c" -eq 1 ]; then
    it_ok "b restores the open alert from the hand-over, goes on with it and clears it (1 raised, 1 cleared)"
else
    it_fail "b restores the open alert from the hand-over, goes on with it and clears it (1 raised, 1 cleared)" \
        "raised $n, cleared $c; $(grep -v '^<7>' "$D/b.log" | grep -i 'alert' | tail -3)"
fi
kill -TERM "$(pid b)"; it_wait_gone "$(pid b)" 20
