#!/bin/sh
# it_kafka_trained.sh - a stream running a model trained online (training
# finetune) keeps one settings hash in its state, whether the state is a
# file of state_dir or a record of the Kafka state topic: the configured
# one, so a restore tells by it whether the saved calibration still holds
# under the settings in force. Against librdkafka's mock cluster (3 brokers
# on 127.0.0.1) and a real mosquitto on 127.0.0.1 (stats).
# 2 pump streams on a 1-partition topic, one instance a with a state_dir:
#  1. a finetunes each stream's model on its first 60 windows, calibrates
#     on 40, stops (SIGTERM)
#  2. a restarts: reuses its trained models and their calibration, stops:
#     the state topic's record and the state file carry the same hash
#  3. a restarts with alert.clear_ratio changed (a setting the model and
#     the calibration do not depend on): both reused
#  4. a restarts with training.epochs changed: the trained models do not
#     hold under it (another tag); the streams train again, the saved
#     calibration is not reused
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_trained.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
CHECK="$PYTHON tests/it_kafka_check.py"
N=2
MPID= ; P= ; SUB=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_trained" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 || exit 1
mosquitto_sub -h 127.0.0.1 -p "$IT_PORT" -v -t 'anomalyd/stats/#' > "$D/stats" 2>/dev/null & SUB=$!

# run LOG EPOCHS CLEAR_RATIO: instance a (state_dir $D/state) until stopped
run() {
    cat > "$D/a.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-ktrain-a", "stats_interval_s": 1,
            "status_topic": "anomalyd/status/a", "stats_topic": "anomalyd/stats/a"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "300"}},
 "state_dir": "$D/state", "workers": 1,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"], "alerts_to": "kafka",
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 40}, "alert": {"clear_ratio": $3},
   "training": {"mode": "finetune", "windows": 60, "epochs": $2}}]}
EOC
    $AD_BIN run -c "$D/a.json" --log-level debug 2> "$D/$1.log" & P="$P $!"; A=$!
    it_wait_until 30 grep -q 'kafka: owns in\[0\]' "$D/$1.log"
}
stop() { kill -TERM "$A"; it_wait_gone "$A" 20; }
gen() { $PYTHON tests/it_kafka_gen.py $N "$@" | kcat -P -K'|' -b "$BOOT" -t in 2>> "$D/kcat.out"; }
consumed() { [ "$($CHECK consumed "$D/stats")" -ge "$1" ]; }
lines() { grep -c "$2" "$D/$1.log"; }

run a1 1 0.9
gen 0 100
it_wait_until 60 sh -c "[ \$(grep -c 'model trained online' $D/a1.log) -ge $N ]"
gen 100 200
it_check "1: both streams finetuned online and calibrated on their new models" \
    it_wait_until 60 sh -c "[ \$(grep -c 'calibrated (' $D/a1.log) -ge $N ]"
stop
: > "$D/stats"

run a2 1 0.9
gen 200 230
it_wait_until 30 consumed $((N * 30))
stop
: > "$D/stats"
if [ "$(lines a2 'reusing the model trained online')" -eq $N ] &&
   [ "$(lines a2 'calibration restored from')" -eq $N ] && [ "$(lines a2 'not reused')" -eq 0 ]; then
    it_ok "2: restart: the trained models and their calibration reused"
else
    it_fail "2: restart: the trained models and their calibration reused" \
        "$(grep -h 'reusing\|not reused\|calibration restored' "$D/a2.log")"
fi
kcat -C -b "$BOOT" -t st -e -q -K'|' > "$D/st.txt" 2>> "$D/kcat.out"
# the last record of each stream (its stop) against its state file
same=$($PYTHON - "$D/st.txt" "$D/state/pump" <<'PY'
import json, sys, os
last = {}
for ln in open(sys.argv[1], errors="replace"):
    k, _, v = ln.partition("|")
    try:
        o = json.loads(v)
    except ValueError:
        continue
    if isinstance(o.get("state"), dict):
        last[o["stream"]] = o["state"]["settings_hash"]
bad, out = [], []
for s, h in sorted(last.items()):
    f = json.load(open(os.path.join(sys.argv[2], s + ".state.json")))["settings_hash"]
    out.append("%s=%s" % (s, h))
    if f != h:
        bad.append("%s: state topic %s, state file %s" % (s, h, f))
print("; ".join(bad) if bad else "ok " + " ".join(out))
PY
)
case "$same" in
ok*) it_ok "2: the state topic and the state file carry one settings hash (${same#ok })" ;;
*) it_fail "2: the state topic and the state file carry one settings hash" "$same" ;;
esac

run a3 1 0.8
gen 230 260
it_wait_until 30 consumed $((N * 30))
stop
: > "$D/stats"
if [ "$(lines a3 'reusing the model trained online')" -eq $N ] &&
   [ "$(lines a3 'calibration restored from')" -eq $N ] && [ "$(lines a3 'not reused')" -eq 0 ] &&
   [ "$(lines a3 'training (finetune)')" -eq 0 ]; then
    it_ok "3: alert.clear_ratio changed: trained models and calibration still reused"
else
    it_fail "3: alert.clear_ratio changed: trained models and calibration still reused" \
        "$(grep -h 'reusing\|not reused\|calibration restored\|training (' "$D/a3.log")"
fi

run a4 2 0.8
gen 260 360
it_wait_until 60 sh -c "[ \$(grep -c 'training (finetune)' $D/a4.log) -ge $N ]"
stop
if [ "$(lines a4 'reusing the model trained online')" -eq 0 ] &&
   [ "$(lines a4 'saved calibration not reused')" -eq $N ] &&
   [ "$(lines a4 'training (finetune)')" -eq $N ]; then
    it_ok "4: training.epochs changed: the streams train again, saved calibration not reused ($(
        grep -h 'saved calibration not reused' "$D/a4.log" | head -1 | sed 's/.*not reused (\(.*\)); recal.*/\1/'))"
else
    it_fail "4: training.epochs changed: the streams train again, saved calibration not reused" \
        "$(grep -h 'reusing\|not reused\|training (' "$D/a4.log")"
fi
