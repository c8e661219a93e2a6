#!/usr/bin/env python3
"""it_kafka_gen.py - pump rows as Kafka records for kcat -P -K'|': one line
"pumpN|{json}" per row; rows FROM..TO of every device (the same simulation
on every call, so a later range continues an earlier one)."""
import json, os, sys, importlib.util
HERE = os.path.dirname(os.path.abspath(__file__))
SENSORS = ["vibration", "current", "pressure", "temperature", "flow"]
spec = importlib.util.spec_from_file_location("pumpsim", os.path.join(HERE, "..", "tools", "pumpsim.py"))
ps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ps)
devices, r0, r1 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
faults = [ps.Fault(f) for f in sys.argv[4:]]
start = 1.7e9
sims = [ps.PumpSim(1 + 1000 * i, 60.0, start, faults if i == 0 else []) for i in range(devices)]
out = sys.stdout
for k in range(r1):
    for i, s in enumerate(sims):
        ts, row, _ = s.step()
        if k >= r0:
            m = {n: round(row[n], 4) for n in SENSORS}
            m["ts"] = int(round(ts * 1000))
            out.write("pump%d|%s\n" % (i + 1, json.dumps(m)))
