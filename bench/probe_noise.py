#!/usr/bin/python3
"""probe_noise.py - an offline probe: does a per-feature noise level tell a
noise change from what the scenario suite must absorb (docs/evaluation.md,
"A change of noise level: the noise test")?

  probe_noise.py ratios KIND OUT.json DIR...   hourly ratios of each stream
                                               of DIR (scenarios.py output)
  probe_noise.py table KIND H[,H..] SET=OUT.json...
                                               per set: mild_long_fault's and
                                               variance's highest sustained
                                               ratio, the highest outside
                                               events that must alert

KIND: A hourly median of 1.4826 MAD of 11-sample neighbourhoods; B the
same of their successive differences / sqrt 2; C 1.4826 MAD of the hour's
successive differences / sqrt 2 (the noise test's level). Usual: the
median of the last 24 hourly levels not over 1.5 x it, from the 7th hour.
"""
import csv
import datetime as dt
import json
import os
import sys

K = 11
FEAT = ["vibration", "current", "pressure", "temperature", "flow"]


def med(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def mad_sd(v):
    m = med(v)
    return 1.4826 * med([abs(x - m) for x in v])


def local(win, kind):
    if kind == "A":
        return mad_sd(win)
    return mad_sd([win[i + 1] - win[i] for i in range(len(win) - 1)]) / 2 ** 0.5


def levels(path, kind):
    ts, rows = [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            ts.append(dt.datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp())
            rows.append([float(row[c]) if row[c] else None for c in FEAT])
    t0 = ts[0]
    out = {}
    for j, fname in enumerate(FEAT):
        hours, buf, last = {}, [], None
        for i in range(len(ts)):
            x = rows[i][j]
            if last is not None and ts[i] - last > 120:
                buf = []
            last = ts[i]
            if x is None:
                buf = []
                continue
            buf.append((ts[i], x))
            if len(buf) > K:
                buf.pop(0)
            if kind == "C":
                if len(buf) >= 2:
                    hours.setdefault(int((buf[-1][0] - t0) // 3600), []).append(buf[-1][1] - buf[-2][1])
                continue
            if len(buf) < K:
                continue
            s = local([b[1] for b in buf], kind)
            if s > 0:
                hours.setdefault(int((buf[K // 2][0] - t0) // 3600), []).append(s)
        if kind == "C":
            lv = [(h, mad_sd(v) / 2 ** 0.5) for h, v in sorted(hours.items()) if len(v) >= 20]
        else:
            lv = [(h, med(v)) for h, v in sorted(hours.items()) if len(v) >= 20]
        out[fname] = [(h, v) for h, v in lv if v > 0]
    return out


def ratios(hv, freeze=1.5, warm=6, keep=24):
    fed, res = [], []
    for h, v in hv:
        r = v / med(fed[-keep:]) if len(fed) >= warm else None
        res.append((h, r))
        if r is None or r <= freeze:
            fed.append(v)
    return res


def cmd_ratios(kind, outp, dirs):
    res = {}
    for d in dirs:
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".csv"):
                continue
            name = fn[:-4]
            hv = levels(os.path.join(d, fn), kind)
            ev = json.load(open(os.path.join(d, name + ".events.json")))
            res[d + "/" + name] = {"ev": ev["events"], "start_ms": ev["start_ms"],
                                   "r": {f: ratios(hv[f]) for f in FEAT}}
    json.dump(res, open(outp, "w"))


def cmd_table(kind, Hs, sets):
    for H in Hs:
        print("== %s, H = %d h (sustained: the lowest of H hourly ratios in a row)" % (kind, H))
        for spec in sets:
            name_set, path = spec.split("=", 1)
            res = json.load(open(path))
            worst, line = (0, ""), []
            for key, st in sorted(res.items()):
                name = key.split("/")[-1]
                t0 = st["start_ms"] / 1000.0
                evs = [e for e in st["ev"] if e["expect"] == "alert"]
                for f in FEAT:
                    rr = st["r"][f]
                    best_in, best_out = 0, (0, None)
                    for j in range(H - 1, len(rr)):
                        span = rr[j - H + 1:j + 1]
                        h = rr[j][0]
                        if span[0][0] != h - H + 1 or any(r is None for _, r in span):
                            continue
                        m = min(r for _, r in span)
                        a, b = t0 + (h - H + 1) * 3600, t0 + (h + 1) * 3600
                        inside = [e for e in evs if e["feature"] in ("*", f) and
                                  a < (e["end_ms"] / 1000.0 + 3600 * H if e["end_ms"] else 1e18)
                                  and b > e["onset_ms"] / 1000.0]
                        if inside:
                            best_in = max(best_in, m)
                        elif m > best_out[0]:
                            best_out = (m, h)
                    if name == "mild_long_fault" and f in ("pressure", "vibration"):
                        line.append("mild_long_fault %s %.2f" % (f, best_in))
                    if name == "variance" and f == "vibration":
                        line.append("variance %.2f" % best_in)
                    if best_out[0] > worst[0]:
                        worst = (best_out[0], "%s/%s, hour %s" % (name, f, best_out[1]))
            print(" set %s: %s; normal up to %.2f (%s)" % (name_set, ", ".join(line), worst[0],
                                                           worst[1]))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "ratios":
        cmd_ratios(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "table":
        cmd_table(sys.argv[2], [int(x) for x in sys.argv[3].split(",")], sys.argv[4:])
    else:
        sys.exit(__doc__)
