#!/bin/sh
# it_kafka_state_shift.sh - a wide stream's kept-change ring (alert.
# accept_period_ms; about 6 KB per feature once 1.5 periods of rows are in
# it) can make its state record outgrow message.max.bytes on its own. The
# record must still go out, without the ring and with a warning, so that
# the hand-over reaches the next owner: before, the record was not sent
# and the next owner restored an older state. librdkafka's mock cluster,
# a real mosquitto, on 127.0.0.1.
#   A zero model of 40 features (a window's score: the mean |value|), a
#   fixed threshold no row reaches, a period of 1440 s, 2300 rows 1 s apart
#   (the ring full: about 250 KB), message.max.bytes 150000; a stop
#   (SIGTERM): its hand-over record is under the limit, names the offset,
#   holds no "shift"; a warning says the kept change was left out.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_state_shift.XXXXXX)
MPID= ; P=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_state_shift" "kcat not installed"; exit 0; }
NF=40
# the zero model: one TimeDistributed Dense of zeros, no scaler
$PYTHON - "$D/zero.safetensors" "$NF" <<'EOP'
import json, struct, sys
path, nf = sys.argv[1], int(sys.argv[2])
feats = ["f%d" % i for i in range(nf)]
meta = {"format": "anomalyd-model", "format_version": "1", "window": "4",
        "features": json.dumps(feats),
        "architecture": json.dumps([{"type": "time_distributed_dense", "units": nf,
                                     "activation": "linear"}]),
        "scaler": json.dumps({"type": "none"})}
h = {"__metadata__": meta,
     "layers.0.kernel": {"dtype": "F32", "shape": [nf, nf], "data_offsets": [0, 4 * nf * nf]},
     "layers.0.bias": {"dtype": "F32", "shape": [nf],
                       "data_offsets": [4 * nf * nf, 4 * nf * nf + 4 * nf]}}
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(hb)) + hb + bytes(4 * (nf * nf + nf)))
EOP
it_broker_up
it_kafka_start in:1 st:1 al:1 || exit 1
cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kshift",
            "status_topic": "anomalyd/status/a", "stats_topic": "anomalyd/stats/a"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "alert_topic": "al", "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300",
                          "message.max.bytes": "150000"}},
 "workers": 1,
 "detectors": [{"name": "w", "model": "$D/zero.safetensors", "kafka_topics": ["in"],
   "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "fixed", "fixed": 1000000},
   "alert": {"accept_after": 5000, "accept_period_ms": 1440000}}]}
EOC
$AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/a.log" & P="$P $!"; APID=$!
it_wait_log "$D/a.log" 'kafka: owns in\[0\]' 20 || it_fail "a owns in[0]" "$(tail -3 "$D/a.log")"
$PYTHON - "$NF" <<'EOP' | kcat -P -K'|' -b "$BOOT" -t in -p 0 2>> "$D/kcat.out"
import json, random, sys
nf = int(sys.argv[1])
random.seed(1)
t0 = 1700000000000 // 1440000 * 1440000
for i in range(2300):
    m = {"ts": t0 + 1000 * i}
    for f in range(nf):
        m["f%d" % f] = 100 + f + random.uniform(-1, 1)
    print("s1|" + json.dumps(m))
EOP
consumed() { kcat -C -b "$BOOT" -t st -e -q -f '%k\n' 2>/dev/null | grep -q 'w/s1'; }
it_wait_until 60 consumed
sleep 5
kill -TERM "$APID"; it_wait_gone "$APID" 30
# the last state record of w/s1: "bytes has_offset has_shift rows"
ls=$(it_kafka_last st w/s1 | $PYTHON -c '
import json, sys
last = sys.stdin.read().strip()
if not last:
    print("none"); sys.exit()
o = json.loads(last)
st = o.get("state") or {}
print(len(last), "offset" in o, "shift" in st, (st.get("alert") or {}).get("last_ts", 0))')
set -- $ls
w=$(grep -c "kept change is left out" "$D/a.log")
if [ "$#" -eq 4 ] && [ "$1" -le 150000 ] && [ "$2" = True ] && [ "$3" = False ] && [ "$w" -ge 1 ] &&
   [ "$4" = "$((1700000000000 / 1440000 * 1440000 + 2299000))" ]; then
    it_ok "the hand-over record ($1 bytes) is under message.max.bytes 150000 with the last row: offset, no kept-change ring; a warning says so"
else
    it_fail "the hand-over record is under message.max.bytes with the last row: offset, no kept-change ring; a warning says so" \
        "last record: $ls; warnings $w; $(grep -i 'kafka.*\(produce\|over the\)' "$D/a.log" | tail -2)"
fi
