#!/usr/bin/env python3
"""it_kafka_check.py - what it_kafka.sh asserts, read from the instances'
logs, their stats messages, the alert topic and the state topic.

  it_kafka_check.py consumed STATS          records consumed by all instances
                                            (less those skipped after a hand-over)
  it_kafka_check.py owners DIR KILLS        partitions owned now, per live instance
  it_kafka_check.py overlap DIR KILLS       ownership intervals never overlap
  it_kafka_check.py thresholds DIR STATE N  N streams calibrated once; state
                                            topic keeps each threshold
  it_kafka_check.py alerts ALERTS           each alert raised once, cleared once
  it_kafka_check.py once ALERTS STREAM...   no record twice, one alert at most per
                                            stream, exactly one for each STREAM
  it_kafka_check.py windows STATS LO HI     windows scored within [LO, HI]
  it_kafka_check.py same STATE REF N        the N streams' first thresholds in
                                            STATE equal REF's (1e-6), calibrated
                                            on as many windows
  it_kafka_check.py samealerts ALERTS REF   the same alerts raised (id, stream)
                                            as in REF

STATS: "topic payload" lines (mosquitto_sub -v); the last message of each
instance counts (a killed instance's last one is what it did). DIR holds
NAME.log per instance; KILLS a file of "NAME WALL_MS" lines (SIGKILL times).
Exit status 0 when the assertion holds, else 1 with a message on stdout.
"""
import glob, json, os, re, sys


def last_stats(path):
    last = {}
    for line in open(path, errors="replace"):
        topic, _, payload = line.partition(" ")
        try:
            last[topic] = json.loads(payload)
        except ValueError:
            pass
    return last


def logs(d):
    for p in sorted(glob.glob(os.path.join(d, "*.log"))):
        name = os.path.basename(p)[:-4]
        if name in ("mock", "kcat"):
            continue
        yield name, open(p, errors="replace").read().splitlines()


OWN = re.compile(r"kafka: owns (\S+)\[(\d+)\] from (\d+)")
REL = re.compile(r"kafka: released (\S+)\[(\d+)\] at (\d+)")


def intervals(d, kills):
    """(partition, instance, start, end) with end None while owned."""
    out = []
    for name, lines in logs(d):
        open_ = {}
        for ln in lines:
            m = OWN.search(ln)
            if m:
                open_[(m.group(1), int(m.group(2)))] = int(m.group(3))
                continue
            m = REL.search(ln)
            if m:
                tp = (m.group(1), int(m.group(2)))
                if tp in open_:
                    out.append((tp, name, open_.pop(tp), int(m.group(3))))
        for tp, t0 in open_.items():
            out.append((tp, name, t0, kills.get(name)))
    return out


def read_kills(path):
    kills = {}
    if os.path.exists(path):
        for ln in open(path):
            n, t = ln.split()
            kills[n] = int(t)
    return kills


def main():
    cmd = sys.argv[1]
    if cmd == "consumed":
        print(int(sum(s.get("messages_in", 0) - s.get("handover_skipped", 0)
                      for s in last_stats(sys.argv[2]).values())))
        return 0
    if cmd == "owners":
        own = {}
        for tp, name, t0, t1 in intervals(sys.argv[2], read_kills(sys.argv[3])):
            if t1 is None:
                own.setdefault(name, []).append(tp[1])
        print(" ".join("%s:%s" % (n, ",".join(map(str, sorted(v)))) for n, v in sorted(own.items())))
        return 0
    if cmd == "overlap":
        iv = intervals(sys.argv[2], read_kills(sys.argv[3]))
        bad = []
        for i, (tp, n, a0, a1) in enumerate(iv):
            for tq, m, b0, b1 in iv[i + 1:]:
                if tq != tp or m == n:
                    continue
                if a0 < (b1 if b1 is not None else 1 << 62) and b0 < (a1 if a1 is not None else 1 << 62):
                    bad.append("%s[%d]: %s %s..%s and %s %s..%s" % (tp[0], tp[1], n, a0, a1, m, b0, b1))
        moves = len(iv) - len({tp for tp, _, _, _ in iv})
        if bad:
            print("; ".join(bad))
            return 1
        print("%d ownership intervals, %d partition moves, none overlapping" % (len(iv), moves))
        return 0 if moves > 0 else 1
    if cmd == "thresholds":
        cal = {}
        pat = re.compile(r"stream (\S+?)/(\S+): threshold (\S+) from")
        for name, lines in logs(sys.argv[2]):
            for ln in lines:
                m = pat.search(ln)
                if m:
                    cal.setdefault(m.group(2), []).append((name, float(m.group(3))))
        want = int(sys.argv[4])
        twice = {k: v for k, v in cal.items() if len(v) != 1}
        if len(cal) != want or twice:
            print("calibrated %d of %d streams; more than once: %s" % (len(cal), want, twice))
            return 1
        state = {}
        for ln in open(sys.argv[3], errors="replace"):
            k, _, v = ln.partition("|")
            try:
                o = json.loads(v)
            except ValueError:
                continue                  # tombstone or partial line
            if isinstance(o.get("state"), dict):
                state[o["stream"]] = o["state"].get("threshold")
        wrong = {k: (v[0][1], state.get(k)) for k, v in cal.items()
                 if state.get(k) is None or abs(state[k] - v[0][1]) > 1e-5 * abs(v[0][1])}
        if wrong:
            print("state topic threshold differs from the calibration: %s" % wrong)
            return 1
        print("%d streams calibrated once each; state topic keeps every threshold" % len(cal))
        return 0
    if cmd == "alerts":
        ev = {}
        for ln in open(sys.argv[2], errors="replace"):
            k, _, v = ln.partition("|")
            try:
                o = json.loads(v)
            except ValueError:
                continue
            ev.setdefault(o["alert_id"], []).append(o["event"])
        bad = {a: e for a, e in ev.items() if sorted(set(e)) != ["cleared", "raised"]}
        dup = sum(len(e) - len(set(e)) for e in ev.values())
        if not ev or bad:
            print("alerts not raised and cleared once: %s" % (bad or "none"))
            return 1
        print("%d alert(s) raised and cleared (%d duplicate record(s), same id+event)"
              % (len(ev), dup))
        return 0
    if cmd == "once":
        ev, ids = {}, {}
        for ln in open(sys.argv[2], errors="replace"):
            k, _, v = ln.partition("|")
            try:
                o = json.loads(v)
            except ValueError:
                continue
            ev.setdefault(o["alert_id"], []).append(o["event"])
            ids.setdefault(o["stream"], set()).add(o["alert_id"])
        bad = {a: e for a, e in ev.items() if sorted(e) != ["cleared", "raised"]}
        many = {s: sorted(i) for s, i in ids.items() if len(i) > 1}
        miss = [s for s in sys.argv[3:] if s not in ids]
        if bad or many or miss:
            print("events per alert not one raised + one cleared: %s; streams with more than "
                  "one alert: %s; streams without their alert: %s" % (bad, many, miss))
            return 1
        print("%d alert(s), each raised once and cleared once, one per stream: %s"
              % (len(ev), " ".join("%s=%s" % (s, min(i)) for s, i in sorted(ids.items()))))
        return 0
    if cmd == "windows":
        n = int(sum(s.get("windows_scored", 0) for s in last_stats(sys.argv[2]).values()))
        lo, hi = int(sys.argv[3]), int(sys.argv[4])
        print("%d windows scored (expected %d..%d)" % (n, lo, hi))
        return 0 if lo <= n <= hi else 1
    if cmd == "same":
        def first(path):
            out = {}
            for ln in open(path, errors="replace"):
                k, _, v = ln.partition("|")
                try:
                    o = json.loads(v)
                except ValueError:
                    continue
                st = o.get("state")
                if isinstance(st, dict) and "threshold" in st and o["stream"] not in out:
                    out[o["stream"]] = (st["threshold"], st.get("calib_windows"))
            return out
        got, ref = first(sys.argv[2]), first(sys.argv[3])
        want = int(sys.argv[4])
        bad = {k: (got.get(k), v) for k, v in ref.items()
               if k not in got or abs(got[k][0] - v[0]) > 1e-6 * abs(v[0]) or got[k][1] != v[1]}
        if len(ref) != want or bad:
            print("%d of %d streams calibrated in the reference; threshold, windows differ "
                  "(got, single instance): %s" % (len(ref), want, bad))
            return 1
        print("%d streams: thresholds equal the single instance's (1e-6), on as many windows: %s"
              % (len(ref), " ".join("%s=%.6g/%s" % (k, v[0], v[1]) for k, v in sorted(got.items()))))
        return 0
    if cmd == "samealerts":
        def raised(path):
            out = set()
            for ln in open(path, errors="replace"):
                k, _, v = ln.partition("|")
                try:
                    o = json.loads(v)
                except ValueError:
                    continue
                if o.get("event") == "raised":
                    out.add((o["stream"], o["alert_id"]))
            return out
        got, ref = raised(sys.argv[2]), raised(sys.argv[3])
        if not ref or got != ref:
            print("alerts raised %s; single instance %s" % (sorted(got), sorted(ref)))
            return 1
        print("%d alert(s) raised, the single instance's (same ids): %s"
              % (len(got), " ".join(a for _, a in sorted(got))))
        return 0
    print("unknown command " + cmd)
    return 2


if __name__ == "__main__":
    sys.exit(main())
