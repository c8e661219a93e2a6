#!/bin/sh
# it_kafka_adapt_shadow.sh - a fine-tune's candidate in shadow on a Kafka
# stream with a state directory (librdkafka's mock cluster, a real
# mosquitto, on 127.0.0.1). A state record on the Kafka state topic never
# holds the candidate's span (its file is in this node's state directory,
# not where the record goes); a restart restores from the record and takes
# the span from the stream's state file when that file is of the same
# point of the stream (the learner's same offered count: a stop writes
# both), state.c span_from_file:
#  a: in shadow, stopped (SIGTERM): its record holds no span, its file
#     does; restarted (b), candidate X goes on in shadow from its file, no
#     new fine-tune, and it is decided over the whole span (120 windows).
#  c: the next candidate in shadow, stopped; the state file's offered count
#     made other than the record's (a file of another point of the stream):
#     restarted (d), the span is not taken, the candidate not resumed, its
#     file removed (no state asks for it) with the next state written.
. tests/lib.sh
D=$(mktemp -d /tmp/it_kafka_adapt_shadow.XXXXXX)
MODEL=$(cd "${AD_SRCDIR:-.}" && pwd)/conf/models/pump.safetensors
P=
trap it_kafka_cleanup EXIT
command -v kcat > /dev/null || { it_skip "kafka_adapt_shadow" "kcat not installed"; exit 0; }
it_broker_up
it_kafka_start in:1 st:1 || exit 1
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-kadapt"},
 "kafka": {"bootstrap_servers": "$BOOT", "group_id": "ad", "state_topic": "st",
           "commit_interval_s": 0.2,
           "properties": {"session.timeout.ms": "4000", "heartbeat.interval.ms": "300"}},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "kafka_topics": ["in"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "adapt": {"enabled": true, "every_windows": 60, "every_hours": 0,
             "normal_windows": 80, "min_windows": 40, "margin": 5,
             "shadow_windows": 120, "epochs": 6, "lr": 0.003, "min_gain": 0},
   "alert": {"k": 3}}]}
EOC
N=0
start() { # start NAME: a daemon (log NAME.log), until it owns in[0]
    $AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/$1.log" & P="$P $!"
    DPID=$!
    it_wait_log "$D/$1.log" 'kafka: owns in\[0\]' 30 ||
        { it_fail "$1 owns in[0]" "$(tail -3 "$D/$1.log")"; exit 1; }
}
stop() { kill -TERM "$DPID"; it_wait_gone "$DPID" 30; }
# produce FROM TO: pump1's rows FROM..TO-1, one a minute, from a pump whose
# current reads 15% high and pressure 0.6 bar low (as tests/adapt_lib.sh:
# fine-tuning pays off there)
produce() {
    $PYTHON - "$1" "$2" <<'EOP' | kcat -P -K'|' -b "$BOOT" -t in -p 0 2>> "$D/kcat.out"
import json, sys, importlib.util, os
spec = importlib.util.spec_from_file_location("pumpsim", os.path.join("tools", "pumpsim.py"))
ps = importlib.util.module_from_spec(spec); spec.loader.exec_module(ps)
k0, k1 = int(sys.argv[1]), int(sys.argv[2])
sim = ps.PumpSim(1, 60.0, 1.7e9, [])
for k in range(k1):
    ts, row, _ = sim.step()
    if k < k0:
        continue
    row["current"] *= 1.15
    row["pressure"] -= 0.6
    msg = {s: round(v, 4) for s, v in row.items()}
    msg["ts"] = int(round(ts * 1000))
    print("pump1|" + json.dumps(msg))
EOP
}
# feed_until LOG PATTERN: 40 rows at a time (up to row 1300) until LOG has PATTERN
feed_until() {
    while [ $N -lt 1300 ]; do
        produce $N $((N + 40)); N=$((N + 40))
        it_wait_log "$1" "$2" 4 && return 0
    done
    return 1
}
shadow_id() { # shadow_id LOG: the id of the last candidate LOG put in shadow
    grep -o "continual learning: shadow: candidate [0-9a-f]*" "$1" | tail -1 | awk '{print $NF}'
}
cand_file() { ls "$D"/state/pump/pump1.*.candidate.safetensors 2>/dev/null | head -1; }
# record_shadow: the last state record of pump/pump1 on st: "offered has_shadow"
record_shadow() {
    it_kafka_last st pump/pump1 | $PYTHON -c '
import json, sys
last = sys.stdin.read().strip()
if not last:
    print("none"); sys.exit()
ad = (json.loads(last).get("state") or {}).get("adapt") or {}
print(ad.get("offered"), "shadow" in ad)'
}
file_shadow() { # the state file of pump1: "offered has_shadow"
    $PYTHON -c '
import json, sys
ad = json.load(open(sys.argv[1])).get("adapt") or {}
print(ad.get("offered"), "shadow" in ad)' "$D/state/pump/pump1.state.json"
}

# a/b: in shadow, stopped, restarted: resumed from the file
start a
produce 0 160; N=160
feed_until "$D/a.log" "continual learning: shadow: candidate" ||
    { it_fail "a: a fine-tuned candidate goes into shadow" "$(tail -5 "$D/a.log")"; exit 1; }
MID=$(shadow_id "$D/a.log")
produce $N $((N + 30)); N=$((N + 30))
sleep 2
stop
rs=$(record_shadow); fs=$(file_shadow)
set -- $rs $fs
if [ "$#" = 4 ] && [ "$2" = False ] && [ "$4" = True ] && [ "$1" = "$3" ] && [ -n "$(cand_file)" ]; then
    it_ok "a: stopped in shadow: the state record holds no span, the state file ($(basename "$(cand_file)") beside it) holds it, the same offered count $1"
else
    it_fail "a: stopped in shadow: the record holds no span, the file holds it, the same offered count" \
        "record: $rs; file: $fs; candidate file: $(cand_file)"
fi
start b
produce $N $((N + 2)); N=$((N + 2))
if it_wait_log "$D/b.log" "candidate $MID goes on in shadow" 20; then
    it_ok "b: restored from the record, candidate $MID goes on in shadow (its span from the state file)"
else
    it_fail "b: restored from the record, candidate $MID goes on in shadow" \
        "$(grep -iE 'candidate|restor' "$D/b.log" | tail -5)"
fi
K0=$N
decided() { grep -qE "continual learning: (promoted|rejected)" "$D/b.log"; }
while [ $N -lt 1300 ] && ! decided; do
    produce $N $((N + 10)); N=$((N + 10)); it_wait_until 3 decided
done
if decided && [ $((N - K0)) -lt 120 ] && ! grep -q "continual learning: shadow" "$D/b.log"; then
    it_ok "b: decided $((N - K0)) rows after the restart (the span is 120 windows, 30+ before the stop), no new shadow: $(grep -oE 'continual learning: (promoted|rejected)' "$D/b.log" | head -1)"
else
    it_fail "b: decided over the whole span, no new shadow" \
        "$((N - K0)) rows; $(grep -E 'continual learning' "$D/b.log" | tail -3)"
fi
no_cand() { [ -z "$(cand_file)" ]; }
it_wait_until 10 no_cand && it_ok "b: the decided candidate's file is removed" ||
    it_fail "b: the decided candidate's file is removed" "$(ls "$D/state/pump")"

# c/d: the next candidate, the state file of another point: not taken
n0=$(grep -c "continual learning: shadow: candidate" "$D/b.log")
more() { [ "$(grep -c "continual learning: shadow: candidate" "$D/b.log")" -gt "$n0" ]; }
while [ $N -lt 1300 ] && ! more; do
    produce $N $((N + 40)); N=$((N + 40)); it_wait_until 4 more
done
if more; then
    MID2=$(shadow_id "$D/b.log")
    produce $N $((N + 20)); N=$((N + 20))
    sleep 2
    stop
    $PYTHON -c '
import json, sys
p = sys.argv[1]
o = json.load(open(p))
o["adapt"]["offered"] += 7
json.dump(o, open(p, "w"))' "$D/state/pump/pump1.state.json"
    start d
    produce $N $((N + 2)); N=$((N + 2))
    sleep 3
    restored() { grep -q "stream pump1: threshold .* restored from the saved state" "$D/d.log"; }
    it_wait_until 10 restored
    if restored && ! grep -q "candidate $MID2 goes on in shadow" "$D/d.log"; then
        it_ok "d: restored from the record, a state file of another point (offered count changed): its span not taken, candidate $MID2 not resumed"
    else
        it_fail "d: restored from the record, a state file of another point: its span not taken" \
            "$(grep -iE 'candidate|threshold' "$D/d.log" | tail -3)"
    fi
    stop
    # its file goes with the next state written (the stop's), which does
    # not name it
    set -- $(file_shadow)
    if [ -z "$(cand_file)" ] && [ "$2" = False ]; then
        it_ok "d: its file removed with the next state written, which does not name it"
    else
        it_fail "d: its file removed with the next state written" "file: $(cand_file); state: $*"
    fi
else
    echo "# no second candidate within 1300 rows: part c/d not run"
    stop
fi
exit 0
