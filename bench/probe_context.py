#!/usr/bin/python3
"""Offline probe: could a span's mean score, compared with the same hours
of earlier days (A) or with the highest span mean of the last two days (B),
tell bootstrap mode's mild_long_fault from the suite's normal streams?

Reads the per-window scores of finished scenario runs (bench/eval.py's
OUT/scenarios/*.out.csv and data/*.events.json); writes nothing. For each
stream and mode it prints the highest ratio reached inside an event that
must alert ("in") and outside every such event and the day after it
("out"). A rule on the ratio separates the fault only if the fault's "in"
exceeds every other stream's "out" on every tuning seed set.

  probe_context.py A|B SPAN_H OUT_DIR...   (docs/evaluation.md)
"""
import bisect
import csv
import glob
import json
import os
import sys

H = 3600000
DAY = 24 * H
STEP = 1800000          # a span judged every 30 min


def load(f):
    ts, s = [], []
    for r in csv.DictReader(open(f)):
        if r["score"]:
            ts.append(int(r["ts_ms"]))
            s.append(float(r["score"]))
    return ts, s


def span_mean(ts, s, a, b):
    """Mean over [a, b), None when under 80% of its minutes have a score."""
    i, j = bisect.bisect_left(ts, a), bisect.bisect_left(ts, b)
    if j - i < 0.8 * (b - a) / 60000:
        return None
    return sum(s[i:j]) / (j - i)


def must_alert(ev):
    return [e for e in ev if e["expect"] == "alert"]


def inside(ev, t, L):
    return any(e["onset_ms"] <= t and t - L / 2 <= (e["end_ms"] or 1e18) for e in must_alert(ev))


def near(ev, t, L):
    return any(e["onset_ms"] <= t and t - L <= (e["end_ms"] or 1e18) + DAY for e in must_alert(ev))


def ratios_a(ts, s, ev, L):
    """A: the span's mean over the same span 1, 2, 3 days before (the
    median of the three once all exist, else the highest)."""
    t = ts[0] + DAY + L
    while t <= ts[-1]:
        m = span_mean(ts, s, t - L, t)
        refs = [r for r in (span_mean(ts, s, t - L - k * DAY, t - k * DAY) for k in (1, 2, 3)) if r]
        if m and refs:
            c = max(refs) if len(refs) < 3 else sorted(refs)[1]
            yield t, m / c
        t += STEP


def ratios_b(ts, s, ev, L, past=2 * DAY):
    """B: the span's mean over the highest span mean of the last two days
    (spans near an event that must alert left out)."""
    pts, t = [], ts[0] + L
    while t <= ts[-1]:
        m = span_mean(ts, s, t - L, t)
        if m:
            pts.append((t, m))
        t += STEP
    for t, m in pts:
        ref = [mm for tt, mm in pts if t - past <= tt <= t - L and not near(ev, tt, L)]
        if len(ref) >= 0.5 * past / STEP:
            yield t, m / max(ref)


def main():
    kind, L = sys.argv[1], int(float(sys.argv[2]) * H)
    for d in sys.argv[3:]:
        sc = os.path.join(d, "scenarios")
        for f in sorted(glob.glob(os.path.join(sc, "*.out.csv"))):
            name, mode = os.path.basename(f).split(".")[:2]
            ev = json.load(open(os.path.join(sc, "data", name + ".events.json")))["events"]
            ts, s = load(f)
            gen = ratios_a(ts, s, ev, L) if kind == "A" else ratios_b(ts, s, ev, L)
            rin = rout = 0.0
            at = None
            for t, r in gen:
                if inside(ev, t, L):
                    rin = max(rin, r)
                elif not near(ev, t, L) and r > rout:
                    rout, at = r, (t - ts[0]) / H
            print("%s %-18s %-10s in %.2f out %.2f%s" % (
                d, name, mode, rin, rout, "" if at is None else " (hour %g)" % at))


if __name__ == "__main__":
    main()
