#!/bin/sh
# it_daemon_train_queue.sh - trainings queued at once do not hold back the
# scoring of the other streams (a real mosquitto). Four streams of a
# fine-tuning detector finish collecting together: four trainings wait for
# the workers (2). Meanwhile a stream of another detector, detecting, is
# scored as its messages come: the stats' inference latency (message to
# score) stays under a second. Before, the workers took tasks in FIFO order
# only: the windows waited behind every training queued before them (the
# latency was the trainings' time, seconds, and no stream was scored
# meanwhile).
. tests/lib.sh
it_setup it_daemon_train_queue
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-train-queue", "stats_interval_s": 0.5},
 "workers": 2,
 "detectors": [{"name": "tr", "model": "$MODEL", "topics": ["tr/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100},
   "training": {"mode": "finetune", "windows": 3000, "epochs": 20}},
  {"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}}]}
EOC
it_daemon_up --log-level info
START=$(( $(date +%s) - 5000 * 60 ))
# the detecting stream calibrates first
$H pub --port "$IT_PORT" --devices 1 --rows 200 --start "$START" --rate 200
# four streams collect 3000 windows each; the last row of each at once
$H pub --port "$IT_PORT" --devices 4 --rows 3028 --start "$START" --topic 'tr/{device}/pump'
$H pub --port "$IT_PORT" --devices 4 --rows 3029 --start-row 3028 --start "$START" \
    --topic 'tr/{device}/pump'
# the detecting stream goes on, 50 rows a second, while they train
$H pub --port "$IT_PORT" --devices 1 --rows 600 --start-row 200 --start "$START" --rate 50
sleep 1.5
# the four trainings were handed to the workers before the detecting
# stream's rows came (a sanitizer build may not finish any meanwhile)
queued=$(grep -c "training (finetune) on" "$D/daemon.log")
trained=$(grep -c "model trained online" "$D/daemon.log")
$PYTHON - "$D/sub.jsonl" > "$D/check.out" <<'EOP'
import json, sys
last = None
for l in open(sys.argv[1]):
    m = json.loads(l)
    if m["topic"] == "anomalyd/stats":
        last = json.loads(m["payload"])
lat = last["inference"]["latency_ms"]["max"]
pump = [d for d in last["detectors"] if d["name"] == "pump"][0]
print("%s latency max %.0f ms, trainings %d" % ("ok" if lat < 1000 else "slow", lat,
                                                last["trainings"]))
EOP
if [ "$queued" -ge 4 ] && grep -q "^ok" "$D/check.out"; then
    it_ok "windows are scored while four trainings wait for the workers ($(cat "$D/check.out"); $queued queued, $trained trained by then)"
else
    it_fail "windows are scored while four trainings wait for the workers" \
        "$(cat "$D/check.out"); $queued queued, $trained trained"
fi
