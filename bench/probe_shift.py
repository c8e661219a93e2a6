#!/usr/bin/python3
"""probe_shift.py - an offline probe: is an alert after a level shift the
same change as the shift's own alert, met at another hour of the daily
cycle (docs/evaluation.md, "Re-raises at the daily peaks after a level
shift")?

  probe_shift.py [--all] OUT...   OUT: a bench/eval.py output directory
                                  (OUT/scenarios/STREAM.MODE.events.jsonl
                                  and OUT/scenarios/data/STREAM.csv)

Per alert of each stream and mode: its displacement, the mean of each
feature over the alert's first 30 min less the mean over the same 30 min
one day earlier, in units of the feature's standard deviation over the
stream's first day; its cosine with each earlier alert's; and the verdict
of rule R (not in the detector):

  R: alert B is "the same change" as an earlier alert A when B is raised
     within 24 h of A's clear, at least 2 h after it; the displacement over
     A's last 30 min has a norm of at least 1; every hour between A's clear
     and B's raise keeps a displacement of norm at least half that with
     cosine >= 0.8 with it (the change stayed while the score was quiet);
     and B's first 30 min have cosine >= 0.8 with it.

Without --all only the streams with a level shift and those with faults
after a change are read.
"""
import csv
import json
import math
import os
import sys

FEAT = ["vibration", "current", "pressure", "temperature", "flow"]
MODES = ["pretrained", "bootstrap"]
SOME = ["level_shift", "shift_then_fault", "faults", "faults_mild",
        "persistent_fault", "regime_then_fault"]
DAY_MIN = 1440
COS = 0.8


def rows(path):
    out, last = [], [0.0] * len(FEAT)
    with open(path) as fh:
        for r in csv.DictReader(fh):
            # an empty cell (dropout) holds the last value
            last = [float(r[f]) if r[f] != "" else last[j] for j, f in enumerate(FEAT)]
            out.append(last)
    return out


def mean(X, a, b):
    a, b = max(0, a), min(len(X), b)
    if b <= a:
        return None
    return [sum(X[i][j] for i in range(a, b)) / (b - a) for j in range(len(FEAT))]


def first_day_sd(X):
    out = []
    for j in range(len(FEAT)):
        v = [X[i][j] for i in range(min(DAY_MIN, len(X)))]
        m = sum(v) / len(v)
        out.append(math.sqrt(sum((x - m) ** 2 for x in v) / len(v)) or 1.0)
    return out


def disp(X, sd, a, b):
    """Displacement of rows [a, b) (minutes) from the same span a day before."""
    cur, ref = mean(X, a, b), mean(X, a - DAY_MIN, b - DAY_MIN)
    if cur is None or ref is None or a - DAY_MIN < 0:
        return None
    return [(c - r) / s for c, r, s in zip(cur, ref, sd)]


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def cos(u, v):
    nu, nv = norm(u), norm(v)
    return sum(x * y for x, y in zip(u, v)) / (nu * nv) if nu > 0 and nv > 0 else float("nan")


def fmt(v):
    return "[" + " ".join("%+5.1f" % x for x in v) + "]" if v else "-"


def alerts(path, t0):
    out = []
    with open(path) as fh:
        for line in fh:
            e = json.loads(line)
            if e.get("event") == "alert_cleared":
                a = e["alert"]
                out.append(((a["start"] - t0) // 60000, (a["end"] - t0) // 60000,
                            a.get("reason", "")))
    return out


def rule(X, sd, A, B):
    """R for alert B after alert A ((start, end) in minutes): a reason or ''."""
    a_end, b_start = A[1], B[0]
    if not (120 <= b_start - a_end <= DAY_MIN):
        return ""
    u = disp(X, sd, a_end - 30, a_end)
    if u is None or norm(u) < 1.0:
        return ""
    t = a_end
    while t + 60 <= b_start:
        h = disp(X, sd, t, t + 60)
        if h is None or norm(h) < 0.5 * norm(u) or not cos(h, u) >= COS:
            return ""
        t += 60
    b = disp(X, sd, b_start, b_start + 30)
    if b is None or not cos(b, u) >= COS:
        return ""
    return "R(%d)" % A[3]


def main(argv):
    everything = "--all" in argv
    outs = [a for a in argv if a != "--all"]
    if not outs:
        sys.stderr.write(__doc__)
        return 2
    for out in outs:
        data = os.path.join(out, "scenarios", "data")
        streams = sorted(f[:-4] for f in os.listdir(data) if f.endswith(".csv"))
        for st in streams:
            if not everything and st not in SOME:
                continue
            with open(os.path.join(data, st + ".events.json")) as fh:
                side = json.load(fh)
            t0 = side["start_ms"]
            X = rows(os.path.join(data, st + ".csv"))
            sd = first_day_sd(X)
            must = [((e["onset_ms"] - t0) // 60000,
                     (e["end_ms"] - t0) // 60000 + 60 if e["end_ms"] else len(X))
                    for e in side["events"] if e["expect"] == "alert"]
            for mode in MODES:
                ev = os.path.join(out, "scenarios", "%s.%s.events.jsonl" % (st, mode))
                if not os.path.exists(ev):
                    continue
                al = [a + (k,) for k, a in enumerate(alerts(ev, t0))]
                print("== %s %s %s (vib/cur/pres/temp/flow, sd of day 1)" % (out, st, mode))
                ds = []
                for k, B in enumerate(al):
                    d = disp(X, sd, B[0], B[0] + 30)
                    ds.append(d)
                    on_fault = any(a <= B[1] and B[0] <= b for a, b in must)
                    verdict = " ".join(v for v in (rule(X, sd, A, B) for A in al[:k]) if v)
                    print("  %d %.3fd %5.1fh %-8s %s %s cos %s %s" % (
                        k, B[0] / DAY_MIN, (B[1] - B[0]) / 60.0, B[2],
                        "FAULT" if on_fault else "     ", fmt(d),
                        " ".join("%d:%+.2f" % (i, cos(d, ds[i]))
                                 for i in range(k) if d and ds[i]) or "-",
                        verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
