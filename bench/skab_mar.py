#!/usr/bin/python3
"""skab_mar.py - where the missed anomaly rows of the SKAB tuning split
(valve1, 16 files) ONLY come from, file by file, for the committed
detector (or --base JSON) and the models of skab_train_search.py's seed
folders. Each file is replayed through the daemon's pipeline
(`anomalyd replay -c`, as skab_search.py) with its per-row output and its
events, and every anomaly row (label 1, row >= 400) that no alert covers
is put in one cause:

  unscored    the row's window has no score (held, invalid) or is
              flagged by a data-quality check (dq)
  onset       before the first alerted row of its anomaly, the anomaly
              alerted later: split into "under threshold" (the window's
              score at or under the threshold: the calibration) and "over
              threshold" (the window over it but the raise rule, alert.k
              of alert.n, not met yet); the rows whose window still holds
              rows from before the anomaly (the first window-length rows)
              are counted apart
  never       an anomaly no alert covers at any row (under / over
              threshold as above)
  after close after an alerted row of its anomaly, the alert closed:
              by the reason of the last close before the row (cleared:
              m windows under clear_ratio x threshold; accepted: regime
              acceptance after accept_after windows; stepped down:
              step-down acceptance), and under / over the threshold

Nothing is logged: it changes no setting (skab_search.py logs settings).

  skab_mar.py --valve1 SKAB/valve1 --work DIR [--seeds 1,2,3] [--base JSON]
"""
import argparse
import collections
import concurrent.futures as cf
import copy
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import skab_search as ss  # noqa: E402  (valve1_files refuses other folders)
import skab_train_search as ts  # noqa: E402


def replay(binary, cfg, model, path, out, ev, extra):
    p = subprocess.run([binary, "replay", "-c", cfg, "-m", model, "-i", path,
                        "--calibrate-rows", "400", "--exclude-calibration",
                        "--label", "anomaly", "-o", out, "-e", ev] + extra,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("replay failed on %s: %s" % (path, p.stderr.strip()[-400:]))
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    with open(path) as fh:
        lab = [int(float(r["anomaly"])) for r in csv.DictReader(fh, delimiter=";")]
    closes = []   # (ts_ms, reason)
    with open(ev) as fh:
        evs = [json.loads(x) for x in fh if x.strip()]
    for i, e in enumerate(evs):
        if e["event"] == "alert_cleared":
            reason = e["alert"].get("reason", "cleared")
            if reason == "accepted":
                nxt = [x for x in evs[i + 1:i + 3] if x["event"] == "regime_accepted"]
                if nxt and "stepped down" in json.dumps(nxt[0]):
                    reason = "stepped down"
            closes.append((e["ts"], reason))
    return lab, rows, closes


def segments(lab, start):
    segs, i = [], start
    while i < len(lab):
        if lab[i]:
            j = i
            while j < len(lab) and lab[j]:
                j += 1
            segs.append((i, j))
            i = j
        else:
            i += 1
    return segs


def classify(lab, rows, closes, win):
    """-> Counter of cause -> missed rows, and the anomaly rows in all."""
    c = collections.Counter()
    total = 0
    for a, b in segments(lab, 400):
        total += b - a
        pred = [rows[i]["anomaly"] == "1" for i in range(a, b)]
        first = next((i for i, p in enumerate(pred) if p), None)
        for k in range(b - a):
            if pred[k]:
                continue
            r = rows[a + k]
            if r["score"] == "" or r.get("dq", "0") not in ("0", ""):
                c["unscored"] += 1
                continue
            over = "over" if r["exceeded"] == "1" else "under"
            if first is None:
                c["never, %s" % over] += 1
            elif k < first:
                part = "first %d rows" % (win - 1) if k < win - 1 else "later"
                c["onset, %s, %s" % (over, part)] += 1
            else:
                ts_ms = int(r["ts_ms"])
                why = [x[1] for x in closes if x[0] <= ts_ms]
                c["after close (%s), %s" % (why[-1] if why else "?", over)] += 1
    return c, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--valve1", required=True)
    ap.add_argument("--work", required=True, help="skab_train_search.py's seed folders")
    ap.add_argument("--bin", default=os.environ.get("AD_BIN", "build/anomalyd"))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--base", help="detector block JSON (default: the committed one)")
    ap.add_argument("--window", type=int, default=10, help="the models' window length in rows")
    ap.add_argument("--json", help="write the per-seed, per-file counts here")
    a = ap.parse_args()
    fl = ss.valve1_files(a.valve1)
    with open(os.path.join(HERE, "eval_settings.json")) as fh:
        sk = json.load(fh)["skab"]
    det = json.loads(open(a.base).read() if a.base and os.path.exists(a.base) else a.base) \
        if a.base else copy.deepcopy(sk["detector"])
    bt = ts.parse_args_str(sk["train_args"])
    bt.pop("--seed", None)
    extra = sk.get("replay_args", "").split()
    tmp = tempfile.mkdtemp(prefix="skab_mar.")
    out = {}
    for seed in [int(x) for x in a.seeds.split(",")]:
        jobs = []
        for p, name, model, cfg in ts.seed_configs(a.work, bt, seed, fl, det, tmp, "skab_mar.py"):
            jobs.append((cfg, model, p, os.path.join(tmp, "s%d_%s.csv" % (seed, name)),
                         os.path.join(tmp, "s%d_%s.ev" % (seed, name)), extra))
        with cf.ThreadPoolExecutor(2) as pool:
            res = list(pool.map(lambda x: replay(a.bin, *x), jobs))
        per = {}
        for (p, name), (lab, rows, closes) in zip(fl, res):
            c, total = classify(lab, rows, closes, a.window)
            per[name] = {"anomaly_rows": total, "missed": dict(c)}
        out[seed] = per
        tot = collections.Counter()
        n = 0
        for name, v in per.items():
            tot.update(v["missed"])
            n += v["anomaly_rows"]
        print("seed %d: %d anomaly rows, %d missed (MAR %.2f%%)" % (
            seed, n, sum(tot.values()), 100 * sum(tot.values()) / n))
        for k, v in sorted(tot.items(), key=lambda x: -x[1]):
            print("  %-45s %5d  (%.2f points of MAR)" % (k, v, 100 * v / n))
        for name, v in per.items():
            print("  %-10s %4d of %4d: %s" % (name, sum(v["missed"].values()), v["anomaly_rows"],
                                               ", ".join("%s %d" % kv for kv in sorted(v["missed"].items()))))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
