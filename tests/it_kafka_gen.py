#!/usr/bin/env python3
"""it_kafka_gen.py - pump rows as Kafka records for kcat -P -K'|': one line
"pumpN|{json}" per row; rows FROM..TO of every device (the same simulation
on every call, so a later range continues an earlier one).

  it_kafka_gen.py [--rate R] [--faulty K] [--record-time] DEVICES FROM TO [FAULT...]

--rate R: R rows of every device a second (flushed as they go), else all
at once. --faulty K: the FAULTs on the first K devices (default 1).
--record-time: the row's time is the record's, not the payload's: lines
"TS|pumpN|{json without ts}" for tests/kafka_put (TS in ms)."""
import json, os, sys, time, importlib.util
HERE = os.path.dirname(os.path.abspath(__file__))
SENSORS = ["vibration", "current", "pressure", "temperature", "flow"]
spec = importlib.util.spec_from_file_location("pumpsim", os.path.join(HERE, "..", "tools", "pumpsim.py"))
ps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ps)
args = sys.argv[1:]
rate, faulty, rectime = 0.0, 1, False
while args[:1] in (["--rate"], ["--faulty"], ["--record-time"]):
    if args[0] == "--record-time":
        rectime = True
        args = args[1:]
        continue
    if args[0] == "--rate":
        rate = float(args[1])
    else:
        faulty = int(args[1])
    args = args[2:]
devices, r0, r1 = int(args[0]), int(args[1]), int(args[2])
faults = [ps.Fault(f) for f in args[3:]]
start = 1.7e9
sims = [ps.PumpSim(1 + 1000 * i, 60.0, start, faults if i < faulty else [])
        for i in range(devices)]
out = sys.stdout
for k in range(r1):
    for i, s in enumerate(sims):
        ts, row, _ = s.step()
        if k >= r0:
            m = {n: round(row[n], 4) for n in SENSORS}
            if rectime:
                out.write("%d|pump%d|%s\n" % (int(round(ts * 1000)), i + 1, json.dumps(m)))
            else:
                m["ts"] = int(round(ts * 1000))
                out.write("pump%d|%s\n" % (i + 1, json.dumps(m)))
    if rate > 0 and k >= r0:
        out.flush()
        time.sleep(1.0 / rate)
