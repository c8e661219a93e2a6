#!/usr/bin/python3
"""skab_search.py - the replay-settings search on the SKAB tuning split
(valve1, 16 files) ONLY, with every setting tried appended to the tuning
log. Run it through bench/skab_tune.sh, which trains the valve1 models.

The models trained on each valve1 file (WORK/valve1_N.safetensors) are
scored once per file with `anomalyd score`, and the replay pipeline (EWMA
smoothing, calibration on the windows ending in rows < 400, sigma /
quantile threshold, k-of-n raise, m-below clear with a clear ratio, row
label 'alert' or 'window', point metrics over rows >= 400) is re-computed
in numpy for every candidate. The winner is then run through the real
`anomalyd replay` on the same files, and that result is logged too (a
mismatch is reported).

The held-out folders are out of reach by construction: the script takes
the valve1 directory itself (--valve1, whose last path component must be
"valve1"), lists only that directory, and refuses model names of other
folders. There is no option to score anything else.

Selection rule (declared before the search): the highest pooled valve1 F1
among the settings with valve1 FAR below --far-max (15).

Log (--log, default bench/tuning_log.tsv; tab-separated, appended, never
rewritten): date, commit, settings, valve1_f1, valve1_far, valve1_mar,
note. settings = "train: ARGS | replay: ARGS", the replay arguments as
`anomalyd replay` takes them.

  skab_search.py WORK --valve1 SKAB/valve1 [--grid small|full] [--far-max 15]
"""
import argparse
import csv
import datetime as dt
import glob
import os
import shlex
import subprocess
import sys

import numpy as np

ALERTS = {"3/5/5": (3, 5, 5, "alert"), "1/1/20": (1, 1, 20, "alert"),
          "3/5/20": (3, 5, 20, "alert"), "3/5/10": (3, 5, 10, "alert"),
          "window": (1, 1, 1, "window")}
GRIDS = {
    "small": {"smooth": (1.0, 0.3), "alerts": ("3/5/10", "3/5/20"), "clear": (1.0, 0.9, 0.8),
              "sigma": np.round(np.arange(2.0, 4.01, 0.25), 2),
              "quantile": np.round(np.arange(1.0, 2.01, 0.1), 2)},
    "full": {"smooth": (1.0, 0.3), "alerts": tuple(ALERTS), "clear": (1.0, 0.9, 0.8),
             "sigma": np.round(np.arange(1, 16.01, 0.25), 2),
             "quantile": np.round(np.arange(0.8, 3.01, 0.05), 2)},
}
LOG_HEADER = "date\tcommit\tsettings\tvalve1_f1\tvalve1_far\tvalve1_mar\tnote\n"


def valve1_files(d):
    d = os.path.normpath(d)
    if os.path.basename(d) != "valve1":
        sys.exit("skab_search.py: --valve1 must be the SKAB valve1 folder (got %s); "
                 "the held-out folders are never searched" % d)
    fs = sorted(glob.glob(os.path.join(d, "*.csv")), key=lambda p: int(os.path.basename(p)[:-4]))
    if not fs:
        sys.exit("skab_search.py: no CSV files in %s" % d)
    return [(p, "valve1_%s" % os.path.basename(p)[:-4]) for p in fs]


def labels(path):
    with open(path) as fh:
        return np.array([float(r["anomaly"]) >= 0.5 for r in csv.DictReader(fh, delimiter=";")])


def scores(binary, model, path):
    """(end rows, MAE per window) from `anomalyd score`."""
    txt = subprocess.run([binary, "score", "-m", model, "-i", path, "--metric", "mae"],
                         check=True, capture_output=True, text=True).stdout
    a = np.array([[float(x) for x in line.split()[:2]] for line in txt.splitlines()])
    return a[:, 0].astype(int), a[:, 1]


def ewma(x, a):
    s = np.empty_like(x)
    prev = None
    for i, v in enumerate(x):
        prev = v if prev is None or a >= 1 else a * v + (1 - a) * prev
        s[i] = prev
    return s


def counts(rows, s, lab, ncal, thr, alert, clear_ratio):
    """TP, FP, FN, TN over rows >= ncal, as anomalyd replay counts them."""
    k, n, m, row_label = alert
    pred = np.zeros(len(lab), bool)
    hist, active, below = [], False, 0
    for r, x in zip(rows, s):
        if r < ncal:
            continue
        ex = x > thr
        hist = (hist + [ex])[-n:]
        if active:
            below = below + 1 if x < thr * clear_ratio else 0
            if below >= m:
                active, below = False, 0
        elif ex and sum(hist) >= k:
            active, below = True, 0
        pred[r] = active if row_label == "alert" else ex
    t = np.arange(len(lab)) >= ncal
    p, lb = pred[t], lab[t]
    return np.array([np.sum(p & lb), np.sum(p & ~lb), np.sum(~p & lb), np.sum(~p & ~lb)])


def metrics(c):
    tp, fp, fn, tn = c
    return tp / (tp + (fp + fn) / 2), 100 * fp / (fp + tn), 100 * fn / (fn + tp)


def replay_args(sm, an, cr, method, x):
    k, n, m, rl = ALERTS[an]
    thr = ("--method sigma --k-sigma %g" % x if method == "sigma"
           else "--method quantile --q 0.99 --margin %g" % x)
    return ("--metric mae --smooth %g %s --row-label %s --alert-k %d --alert-n %d --alert-m %d "
            "--clear-ratio %g" % (sm, thr, rl, k, n, m, cr))


def commit():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work", help="directory with the valve1 models of bench/skab_tune.sh")
    ap.add_argument("--valve1", required=True, help="the SKAB valve1 folder")
    ap.add_argument("--bin", default=os.environ.get("AD_BIN", "build/anomalyd"))
    ap.add_argument("--far-max", type=float, default=15)
    ap.add_argument("--ncal", type=int, default=400)
    ap.add_argument("--grid", choices=tuple(GRIDS), default="small")
    ap.add_argument("--train-args", default="", help="how the models were trained (logged)")
    ap.add_argument("--log", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "tuning_log.tsv"))
    a = ap.parse_args()
    fl = valve1_files(a.valve1)
    g = GRIDS[a.grid]
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rev = commit()
    new = not os.path.exists(a.log)
    log = open(a.log, "a")
    if new:
        log.write(LOG_HEADER)

    def write(settings, f, note=""):
        log.write("%s\t%s\ttrain: %s | replay: %s\t%.4f\t%.2f\t%.2f\t%s\n"
                  % (date, rev, a.train_args, settings, f[0], f[1], f[2], note))

    data = []
    for p, name in fl:
        rows, sc = scores(a.bin, os.path.join(a.work, name + ".safetensors"), p)
        data.append((p, name, rows, sc, labels(p)))
    best = None
    tried = 0
    for sm in g["smooth"]:
        sm_data = [(rows, ewma(sc, sm), lab) for _, _, rows, sc, lab in data]
        for an in g["alerts"]:
            for cr in (g["clear"] if ALERTS[an][3] == "alert" else (1.0,)):
                for method in ("sigma", "quantile"):
                    for x in g[method]:
                        tot = np.zeros(4, int)
                        for rows, ss, lab in sm_data:
                            cal = ss[rows < a.ncal]
                            thr = (cal.mean() + x * cal.std() if method == "sigma"
                                   else x * np.quantile(cal, 0.99))
                            tot += counts(rows, ss, lab, a.ncal, thr, ALERTS[an], cr)
                        f = metrics(tot)
                        ra = replay_args(sm, an, cr, method, x)
                        write(ra, f)
                        tried += 1
                        if f[1] < a.far_max and (best is None or f[0] > best[0][0]):
                            best = (f, ra)
    log.flush()
    print("tried %d settings on valve1 (%d files), logged to %s" % (tried, len(fl), a.log))
    if best is None:
        print("no setting with valve1 FAR < %g" % a.far_max)
        return 1
    print("winner (max valve1 F1 with FAR < %g): F1 %.4f FAR %.2f MAR %.2f\n  replay %s"
          % (a.far_max, *best[0], best[1]))
    # the winner through the real replay, on valve1 only
    tot = np.zeros(4, int)
    for p, name, *_ in data:
        out = subprocess.run([a.bin, "replay", "-m", os.path.join(a.work, name + ".safetensors"),
                              "-i", p, "--calibrate-rows", str(a.ncal), "--exclude-calibration",
                              "--label", "anomaly", "-o", "/dev/null"] + shlex.split(best[1]),
                             capture_output=True, text=True, check=True).stderr
        line = [x for x in out.splitlines() if x.startswith("metrics:")][0]
        tot += np.array([int(line.split(k + "=")[1].split()[0]) for k in ("TP", "FP", "FN", "TN")])
    f = metrics(tot)
    same = np.allclose(f, best[0], atol=1e-9)
    write(best[1], f, "winner, anomalyd replay" + ("" if same else " (differs from the numpy replica)"))
    log.close()
    print("anomalyd replay on valve1: F1 %.4f FAR %.2f MAR %.2f%s"
          % (*f, "" if same else "  (differs from the numpy replica!)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
