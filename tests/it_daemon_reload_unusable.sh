#!/bin/sh
# it_daemon_reload_unusable.sh - a reload meets a model file it cannot use;
# what the retained stream states and the Home Assistant entities say
# afterwards must be true: a stream they show is running, a stream that is
# not running is not shown, and an alert open at the reload is cleared.
#  A. the configured model file is broken (truncated): the reload fails as
#     a whole and the running configuration stays; the streams run on and
#     their states and entities stay
#  B. the model a stream would reuse from the state dir (a model trained
#     online, or promoted by continual learning) cannot be used with the
#     settings (calibration.method "model" and a training error in another
#     metric), and the reload rebuilds the stream (alert.k changed) with an
#     alert open
. tests/lib.sh
it_setup it_reload_unusable
cp "${AD_SRCDIR:-.}/conf/models/pump.safetensors" "$D/pump.safetensors"
it_broker_up

# conf K
conf() {
    cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-unusable", "qos_subscribe": 1,
            "stats_interval_s": 0.5},
 "workers": 1, "state_dir": "$D/state", "homeassistant": {"enabled": true},
 "detectors": [{"name": "pump", "model": "$D/pump.safetensors", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"method": "model"}, "adapt": {"enabled": true},
   "alert": {"k": $1, "state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
}
# truth TAG: a new subscriber's view (retained states and HA configs of
# pump1 and pump2) against the streams the daemon runs (its stats);
# prints "ok ..." or what is untrue
truth() {
    it_retained "$IT_PORT" "$D/fresh$1.txt" 'anomalyd/state/#' 'homeassistant/#' ||
        { echo "a new subscriber's retained messages: no answer from the broker within 10 s"; return; }
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/stats --timeout 5 >/dev/null
    $PYTHON - "$D/fresh$1.txt" "$D/sub.jsonl" "$D/state/pump" <<'EOP'
import json, sys, glob
fresh, sub = open(sys.argv[1]).read().splitlines(), sys.argv[2]
stats = None
for line in open(sub):
    m = json.loads(line)
    if m["topic"] == "anomalyd/stats":
        stats = json.loads(m["payload"])
running = {d["name"]: d["streams"] for d in stats["detectors"]} if stats else {}
bad = []
for s in ("pump1", "pump2"):
    st = [l for l in fresh if l.startswith("anomalyd/state/pump/%s {" % s)]
    ha = [l for l in fresh if l.startswith("homeassistant/binary_sensor/it-unusable/pump_%s/config {" % s)]
    shown = bool(st) or bool(ha)
    if shown and not st:
        bad.append("%s: HA entity without state" % s)
    if st:
        j = json.loads(st[-1].split(" ", 1)[1])
        shown_as = "%s/%s" % (j["phase"], j["state"])
    else:
        shown_as = "nothing"
    print("# %s shown: %s, HA %s" % (s, shown_as, "yes" if ha else "no"))
    if shown:
        shown_n = 1
    else:
        shown_n = 0
    running.setdefault("shown", 0)
    running["shown"] += shown_n
if running.get("shown", 0) != running.get("pump", -1):
    bad.append("the broker shows %d stream(s) of detector pump, the daemon runs %s" %
               (running.get("shown", 0), running.get("pump")))
print("; ".join(bad) if bad else "ok the broker shows the %d stream(s) the daemon runs" % running["pump"])
EOP
}
check_truth() {
    truth "$1" > "$D/truth$1.txt"
    grep '^#' "$D/truth$1.txt"
    if grep -q '^ok' "$D/truth$1.txt"; then
        it_ok "$2: $(grep '^ok' "$D/truth$1.txt" | cut -c4-)"
    else
        it_fail "$2" "$(grep -v '^#' "$D/truth$1.txt")"
    fi
}

conf 3
$H sub --port "$IT_PORT" --topic '#' --out "$D/sub.jsonl" & SPID=$!
sleep 0.3
$AD_BIN run -c "$D/ad.json" 2> "$D/daemon.log" & DPID=$!
it_wait_log "$D/daemon.log" 'mqtt: connected' 10 || { it_fail "daemon connects" "$(tail -5 "$D/daemon.log")"; exit 1; }
START=$(( $(date +%s) - 800 * 60 ))
F='cavitation@300m+100m'
$H pub --port "$IT_PORT" --devices 2 --rows 360 --start "$START" --fault "$F"
$H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=raised --timeout 20 >/dev/null ||
    it_fail "alert raised on pump1" "$(tail -5 "$D/daemon.log")"
check_truth 0 "before any reload"

# ---- A. the configured model file is broken -------------------------------------
cp "$D/pump.safetensors" "$D/pump.good"
head -c 3000 "$D/pump.good" > "$D/pump.safetensors"
kill -HUP "$DPID"
if it_wait_log "$D/daemon.log" 'reload failed, keeping the running configuration' 20; then
    it_ok "A: a broken model file: the reload fails, the running configuration stays"
else
    it_fail "A: a broken model file: the reload fails, the running configuration stays" "$(tail -3 "$D/daemon.log")"
fi
cp "$D/pump.good" "$D/pump.safetensors"
$H pub --port "$IT_PORT" --devices 2 --rows 370 --start-row 360 --start "$START" --fault "$F"
check_truth A "A: after the failed reload"

# ---- B. a model in the state dir the new settings cannot use -----------------------
# where pump1 would find a model of its own: <key>.<model id>.<settings hash>.safetensors
TRAINED=$($PYTHON - "$D/state/pump/pump1.state.json" "$D/pump.good" <<'EOP'
import json, struct, sys, os
st = json.load(open(sys.argv[1]))
b = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
tr = json.loads(h["__metadata__"]["training"])
tr["error"]["metric"] = "peak"          # the detector scores mae
h["__metadata__"]["training"] = json.dumps(tr)
hj = json.dumps(h, separators=(",", ":")).encode()
hj += b" " * (-len(hj) % 8)
out = os.path.join(os.path.dirname(sys.argv[1]),
                   "pump1.%s.%s.safetensors" % (st["model_id"], st["settings_hash"]))
open(out, "wb").write(struct.pack("<Q", len(hj)) + hj + b[8 + n:])
print(out)
EOP
)
[ -f "$TRAINED" ] || it_fail "B: model file placed in the state dir" "$TRAINED"
conf 2
kill -HUP "$DPID"
it_wait_log "$D/daemon.log" 'configuration reloaded' 20 ||
    it_fail "B: reload" "$(tail -3 "$D/daemon.log")"
grep -E 'pump1' "$D/daemon.log" | grep -iE 'trained online|dropped|not used' | sed 's/^/# /'
# the fault ends at row 400: pump1's alert clears
$H pub --port "$IT_PORT" --devices 2 --rows 520 --start-row 370 --start "$START" --fault "$F"
id=$($PYTHON - "$D/sub.jsonl" <<'EOP'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "anomalyd/alerts/pump/pump1":
        j = json.loads(m["payload"])
        if j["event"] == "raised":
            print(j["alert_id"]); break
EOP
)
if [ -n "$id" ] && $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event=cleared \
       alert_id="$id" --timeout 15 >/dev/null; then
    it_ok "B: the alert open at the reload is cleared ($id)"
else
    it_fail "B: the alert open at the reload is cleared" \
        "no cleared event for $id: subscribers hold it open; $(grep -c . "$D/sub.jsonl") messages"
fi
check_truth B "B: after the reload that met the unusable model"
kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=
