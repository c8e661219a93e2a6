#!/bin/sh
# bench_soak.sh - the daemon over weeks of data time (bench/soak.py): a
# real local broker, the example configuration (conf/anomalyd.json:
# continual learning on, state directory kept) with only the broker port,
# the state directory (a temporary one), the model path and the statistics
# interval changed, and BENCH_SOAK_STREAMS simulated pumps publishing
# BENCH_SOAK_DAYS days of data with faults and a lasting demand change.
# Prints resident memory, descriptors, threads and the state directory per
# day of data, and their growth after the warm-up.
#   BENCH_SOAK_STREAMS=8 BENCH_SOAK_DAYS=28 sh bench/bench_soak.sh
. tests/lib.sh
S=${BENCH_SOAK_STREAMS:-8}
DAYS=${BENCH_SOAK_DAYS:-28}
D=$(mktemp -d /tmp/bench_soak.XXXXXX)
DPID=
cleanup() {
    if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; fi
    it_broker_stop
    [ -n "${KEEP:-}" ] || rm -rf "$D"
}
trap cleanup EXIT
it_broker_start "$D" "max_queued_messages 0" || exit 1
mkdir -p "$D/state"
$PYTHON - "$AD_SRCDIR/conf/anomalyd.json" "$D/ad.json" "$IT_PORT" "$D/state" <<'EOP' || exit 1
import json, os, sys
src, dst, port, state = sys.argv[1:]
c = json.load(open(src))
c["broker"].update(port=int(port), client_id="bench-soak", stats_interval_s=0.5)
c["state_dir"] = state
for d in c["detectors"]:
    d["model"] = os.path.join(os.path.dirname(os.path.abspath(src)), d["model"])
json.dump(c, open(dst, "w"), indent=1)
EOP
$AD_BIN run -c "$D/ad.json" --log-level info 2> "$D/daemon.log" & DPID=$!
sleep 0.5
if ! kill -0 "$DPID" 2>/dev/null; then
    echo "bench_soak: the daemon did not start:"; cat "$D/daemon.log"; exit 1
fi
$PYTHON bench/soak.py --port "$IT_PORT" --pid "$DPID" --state-dir "$D/state" \
    --streams "$S" --days "$DAYS"
rc=$?
if ! kill -0 "$DPID" 2>/dev/null; then
    echo "bench_soak: the daemon died:"; tail -20 "$D/daemon.log"; exit 1
fi
echo "bench_soak: daemon log: $(grep -c '^<4>' "$D/daemon.log") warnings, $(grep -c '^<[0-3]>' "$D/daemon.log") errors"
exit $rc
