#!/bin/sh
# it_daemon_state_write_fail.sh - state files that cannot be written (a
# full disk, a state_dir gone: here a plain file where the detector's
# directory was, which fails for root too) are written again once they can
# be: the failures are counted (stats state_write_errors, and
# state_files_unwritten while some wait), said in one log line, not one a
# try, and once the directory is back the waiting states are written, so
# that after a restart a cleared alert does not come back and alert ids do
# not repeat. Before, a failed write was a warning and the state was lost:
# an alert raised while writes failed had its sequence number reused after
# a restart, and one cleared while they failed came back open (retained
# state "alert", alerts_active 1).
. tests/lib.sh
it_setup it_daemon_state_write_fail
it_broker_up
cat > "$D/ad.json" <<EOC
{"broker": {"port": $IT_PORT, "client_id": "it-state-write-fail", "stats_interval_s": 0.5},
 "state_dir": "$D/state", "workers": 2,
 "detectors": [{"name": "pump", "model": "$MODEL", "topics": ["sensors/+/pump"],
   "payload": {"format": "json", "timestamp": "ts", "timestamp_unit": "ms"},
   "calibration": {"windows": 100}, "quality": {"enabled": false},
   "alert": {"state_topic": "anomalyd/state/{detector}/{stream}"}}]}
EOC
S=$(( $(date +%s) - 1300 * 60 ))
F="--fault blockage@200m+60m --fault blockage@500m+60m --fault blockage@900m+60m"
# pub FROM TO: pump1's rows FROM..TO-1 (three blockages, the same run)
pub() { $H pub --port "$IT_PORT" --devices 1 --rows "$2" --start-row "$1" --start $S $F; }
# break_dir / mend_dir: a file where state/pump was, and the directory back
# a plain file in the directory's place, swapped in one step (the daemon
# makes a missing directory again: a move then a create raced it)
break_dir() { : > "$D/pump.away" && it_swap_paths "$D/state/pump" "$D/pump.away"; }
mend_dir() { it_swap_paths "$D/state/pump" "$D/pump.away" && rm -f "$D/pump.away"; }
stat_of() { it_last_stat "$D/sub.jsonl" anomalyd/stats "$1"; }
stat_ge() { v=$(stat_of "$1"); [ "$v" != None ] && [ "${v%.*}" -ge "$2" ]; }
stat_is() { v=$(stat_of "$1"); [ "${v%.*}" = "$2" ]; }
start_daemon() {
    $AD_BIN run -c "$D/ad.json" 2> "$D/$1" & DPID=$!
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/status state=online --timeout 20 \
        >/dev/null || { it_fail "daemon starts" "$(cat "$D/$1")"; exit 1; }
}
wait_ev() { # wait_ev EVENT COUNT: COUNT model alert events EVENT of pump1 in all
    $H wait --file "$D/sub.jsonl" --match topic=anomalyd/alerts/pump/pump1 event="$1" \
        --count "$2" --timeout 40 >/dev/null
}

it_sub_start
start_daemon daemon.log
pub 0 200
it_wait_file "$D/state/pump/pump1.state.json" 30 ||
    { it_fail "calibrated, its state written" "$(tail -5 "$D/daemon.log")"; exit 1; }
sleep 1

# 1. writes fail from before the first alert's raise to after its clear
break_dir
pub 200 400
if wait_ev raised 1 && wait_ev cleared 1; then
    it_ok "writes failing: the alert is raised and cleared all the same"
else
    it_fail "writes failing: the alert is raised and cleared all the same" \
        "$(tail -5 "$D/daemon.log")"
fi
sleep 4                                 # tries at 1, 2 (and 4) s
if it_wait_until 10 stat_ge state_write_errors 3 && stat_ge state_files_unwritten 1; then
    it_ok "stats: state_write_errors $(stat_of state_write_errors), state_files_unwritten $(stat_of state_files_unwritten)"
else
    it_fail "stats: state_write_errors counts the failed writes, state_files_unwritten the files waiting" \
        "state_write_errors $(stat_of state_write_errors) state_files_unwritten $(stat_of state_files_unwritten)"
fi
n=$(grep -c "state: cannot write" "$D/daemon.log")
if [ "$n" = 1 ]; then
    it_ok "one log line for $(stat_of state_write_errors) failed writes"
else
    it_fail "one log line for the failed writes" "$n lines: $(grep 'cannot write' "$D/daemon.log" | head -3)"
fi
mend_dir
if it_wait_log "$D/daemon.log" "every state file is written again" 40 &&
   it_wait_until 10 stat_is state_files_unwritten 0; then
    it_ok "the directory back: the waiting states are written (state_files_unwritten 0)"
else
    it_fail "the directory back: the waiting states are written" \
        "$(grep 'state:' "$D/daemon.log" | tail -3); unwritten $(stat_of state_files_unwritten)"
fi

# a kill -9 now: the restart goes on from the states written since
sleep 1
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon daemon1.log

# 2. the second alert is raised with writes working, cleared while they
#    fail; they work again, then kill -9
pub 400 530
wait_ev raised 2
sleep 1
break_dir
pub 530 800
wait_ev cleared 2
it_wait_log "$D/daemon1.log" "state: cannot write" 10
sleep 2
mend_dir
it_wait_log "$D/daemon1.log" "every state file is written again" 40 ||
    it_wait_until 40 stat_is state_files_unwritten 0
sleep 1
kill -9 "$DPID"; wait "$DPID" 2>/dev/null; DPID=
cat "$D/sub.jsonl" >> "$D/before.jsonl"; : > "$D/sub.jsonl"
start_daemon daemon2.log
sleep 3                                 # the scan at start, stats
it_retained "$IT_PORT" "$D/ret.txt" anomalyd/state/pump/pump1
if grep -q '"state":"normal"' "$D/ret.txt" && it_wait_until 10 stat_is alerts_active 0; then
    it_ok "kill -9, restart: the alert cleared while writes failed stays cleared (state normal, alerts_active 0)"
else
    it_fail "kill -9, restart: the alert cleared while writes failed stays cleared" \
        "$(cut -c1-160 "$D/ret.txt"), alerts_active $(stat_of alerts_active)"
fi

# 3. a third alert after the restart: its id and sequence are new
pub 800 1100
wait_ev raised 1
cat "$D/sub.jsonl" >> "$D/before.jsonl"
$PYTHON - "$D/before.jsonl" > "$D/ids.out" <<'EOP'
import json, sys
ids = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] != "anomalyd/alerts/pump/pump1":
        continue
    j = json.loads(m["payload"])
    ids.setdefault(j["alert_id"], []).append(j["event"])
raised = [i for i, e in ids.items() if "raised" in e]
seqs = [i.rsplit("-", 1)[1] for i in raised]
bad = [i for i, e in ids.items() if e.count("raised") > 1 or e.count("cleared") > 1]
if len(set(seqs)) != len(seqs) or bad or len(raised) < 3:
    print("repeated: %s" % " ".join("%s:%s" % (i, ",".join(e)) for i, e in ids.items()))
else:
    print("ok %s" % " ".join(raised))
EOP
if grep -q "^ok" "$D/ids.out"; then
    it_ok "alert ids and sequence numbers never repeat ($(cat "$D/ids.out"))"
else
    it_fail "alert ids and sequence numbers never repeat" "$(cat "$D/ids.out")"
fi
it_daemon_stop

# 4. bounded: while writes fail, each evicted stream leaves a state that
#    nothing replaces; over 256 the oldest are dropped (stats
#    state_files_lost, one log line), not kept without limit
sed 's/"topics": \["sensors\/+\/pump"\],/"topics": ["sensors\/+\/pump"], "idle_evict_s": 1,/' \
    "$D/ad.json" > "$D/ad4.json" && mv "$D/ad4.json" "$D/ad.json"
: > "$D/sub.jsonl"
start_daemon daemon4.log
break_dir
$H pub --port "$IT_PORT" --devices 320 --rows 3 --topic 'sensors/{device}m/pump' --start $S >/dev/null
if it_wait_until 60 stat_ge state_files_lost 40 && stat_ge state_files_unwritten 200 &&
   ! stat_ge state_files_unwritten 257; then
    it_ok "320 streams evicted while writes fail: $(stat_of state_files_unwritten) states kept, $(stat_of state_files_lost) dropped (state_files_lost)"
else
    it_fail "320 streams evicted while writes fail: at most 256 states kept, the others dropped" \
        "unwritten $(stat_of state_files_unwritten) lost $(stat_of state_files_lost) streams $(stat_of streams)"
fi
n=$(grep -c "wait to be written: the oldest" "$D/daemon4.log")
if [ "$n" = 1 ]; then
    it_ok "one log line for the dropped states"
else
    it_fail "one log line for the dropped states" "$n lines: $(grep 'state:' "$D/daemon4.log" | tail -3)"
fi
mend_dir
if it_wait_log "$D/daemon4.log" "every state file is written again .*dropped over the limit" 60 &&
   it_wait_until 10 stat_is state_files_unwritten 0; then
    it_ok "the directory back: the states kept are written, the dropped ones said"
else
    it_fail "the directory back: the states kept are written, the dropped ones said" \
        "$(grep 'state:' "$D/daemon4.log" | tail -3); unwritten $(stat_of state_files_unwritten)"
fi
it_daemon_stop
exit 0
