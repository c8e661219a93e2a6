#!/usr/bin/python3
"""skab_ensemble_sim.py - an offline estimate, on the SKAB tuning split
(valve1) ONLY, of scoring each window with the mean reconstruction error
of several models trained with different seeds (an ensemble), against one
model. `anomalyd replay` and the daemon hold one model per detector, so
this is NOT the daemon's pipeline: each seed's models are replayed through
it (the committed detector, for the per-row scores only), and a simplified
detector is then applied in Python to each seed's scores and to their mean:
threshold = mean + k x std of the scores of the windows ending in the 400
training rows; raise when alert.k of the last alert.n windows exceed it;
clear after alert.m windows under clear_ratio x the threshold; no
acceptance, no step-down. The figures compare one model with the ensemble
under that same simplified rule; they are not the committed detector's.
--check replays with acceptance and step-down off and prints the daemon's
pooled counts beside the simplified rule's for seed models (fidelity).
Every (variant, k) is appended to the tuning log, note "ensemble
estimate (offline, simplified detector)".

  skab_ensemble_sim.py --valve1 SKAB/valve1 --work DIR [--seeds 1,2,3]
  (DIR holds skab_train_search.py's seed folders of the committed training)
"""
import argparse
import concurrent.futures as cf
import copy
import csv
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import skab_search as ss  # noqa: E402  (valve1_files refuses other folders)
import skab_train_search as ts  # noqa: E402

KS = [2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5]


def replay_rows(binary, cfg, model, path, out):
    p = subprocess.run([binary, "replay", "-c", cfg, "-m", model, "-i", path,
                        "--calibrate-rows", "400", "--exclude-calibration",
                        "--label", "anomaly", "-o", out], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("replay failed on %s: %s" % (path, p.stderr.strip()[-400:]))
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    with open(path) as fh:
        lab = [int(float(r["anomaly"])) for r in csv.DictReader(fh, delimiter=";")]
    line = [x for x in p.stderr.splitlines() if x.startswith("metrics:")][0]
    counts = [int(x.split("=")[1]) for x in line.split()[1:5]]
    sc = [float(r["score"]) if r["score"] else None for r in rows]
    return lab, sc, counts


def simulate(lab, sc, k, ak, an, m, clear, ncal=400):
    cal = [s for s in sc[:ncal] if s is not None]
    mu = sum(cal) / len(cal)
    sd = math.sqrt(sum((s - mu) ** 2 for s in cal) / len(cal))
    thr = mu + k * sd
    tp = fp = fn = tn = 0
    last, on, below = [], False, 0
    for i, s in enumerate(sc):
        if i >= ncal and s is not None:
            last = (last + [s > thr])[-an:]
            if not on and sum(last) >= ak:
                on, below = True, 0
            elif on:
                below = below + 1 if s < clear * thr else 0
                if below >= m:
                    on, last = False, []
        if i < ncal:
            continue
        if on:
            tp, fp = tp + lab[i], fp + (1 - lab[i])
        else:
            fn, tn = fn + lab[i], tn + (1 - lab[i])
    return tp, fp, fn, tn


def pooled(data, k, al):
    c = [0, 0, 0, 0]
    for lab, sc in data:
        for i, x in enumerate(simulate(lab, sc, k, al["k"], al["n"], al["m"], al["clear_ratio"])):
            c[i] += x
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--valve1", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", default=os.environ.get("AD_BIN", "build/anomalyd"))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--far-max", type=float, default=15)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--log", default=os.path.join(HERE, "tuning_log.tsv"))
    a = ap.parse_args()
    fl = ss.valve1_files(a.valve1)
    with open(os.path.join(HERE, "eval_settings.json")) as fh:
        sk = json.load(fh)["skab"]
    bt = ts.parse_args_str(sk["train_args"])
    bt.pop("--seed", None)
    seeds = [int(x) for x in a.seeds.split(",")]
    det = copy.deepcopy(sk["detector"])
    al = det["alert"]
    if a.check:
        for key in ("accept_after", "accept_spread", "stepdown_ratio", "stepdown_windows",
                    "stepdown_after"):
            al.pop(key, None)
    tmp = tempfile.mkdtemp(prefix="skab_ens.")
    per_seed = {}
    for seed in seeds:
        jobs = []
        for p, name, model, cfg in ts.seed_configs(a.work, bt, seed, fl, det, tmp,
                                                   "skab_ensemble_sim.py"):
            jobs.append((cfg, model, p, os.path.join(tmp, "s%d_%s.csv" % (seed, name))))
        with cf.ThreadPoolExecutor(2) as pool:
            per_seed[seed] = list(pool.map(lambda x: replay_rows(a.bin, *x), jobs))
        if a.check:
            dc = [sum(r[2][i] for r in per_seed[seed]) for i in range(4)]
            sc = pooled([(r[0], r[1]) for r in per_seed[seed]], det["calibration"]["k"], al)
            print("seed %d check (no acceptance, no step-down): daemon TP FP FN TN %s, "
                  "simplified %s" % (seed, dc, sc), flush=True)
    if a.check:
        return 0
    variants = {"seed %d" % s: [(r[0], r[1]) for r in per_seed[s]] for s in seeds}
    ens = []
    for j in range(len(fl)):
        lab = per_seed[seeds[0]][j][0]
        cols = [per_seed[s][j][1] for s in seeds]
        ens.append((lab, [None if any(c[i] is None for c in cols) else sum(c[i] for c in cols) / len(cols)
                          for i in range(len(lab))]))
    variants["mean of seeds %s" % a.seeds] = ens
    # how alike the seeds' scores are (test rows, pooled)
    for s in seeds[1:]:
        xs, ys = [], []
        for j in range(len(fl)):
            for x, y in zip(per_seed[seeds[0]][j][1][400:], per_seed[s][j][1][400:]):
                if x is not None and y is not None:
                    xs.append(x)
                    ys.append(y)
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        r = cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))
        print("correlation of test-row scores, seed %d vs seed %d: %.3f" % (seeds[0], s, r))
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rev = ss.commit()
    with open(a.log, "a") as log:
        for v, data in variants.items():
            best = None
            line = []
            for k in KS:
                f = ss.metrics(pooled(data, k, al))
                line.append("k %.2f %.4f/%5.2f" % (k, f[0], f[1]))
                log.write("%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%s\n" % (
                    date, rev, json.dumps({"train": "%s --seed(s) %s" % (sk["train_args"], v),
                                           "detector": "simplified: sigma k %g, alert %d of %d, m %d, "
                                           "clear_ratio %g" % (k, al["k"], al["n"], al["m"],
                                                               al["clear_ratio"])}),
                    f[0], f[1], f[2], "ensemble estimate (offline, simplified detector): %s" % v))
                if f[1] <= a.far_max and (best is None or f[0] > best[1][0]):
                    best = (k, f)
            print("%-20s best (FAR <= %g): %s | %s" % (
                v, a.far_max, "k %.2f F1 %.4f FAR %.2f MAR %.2f" % (best[0], *best[1]) if best else "none",
                "  ".join(line)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
