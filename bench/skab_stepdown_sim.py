#!/usr/bin/python3
"""skab_stepdown_sim.py - an offline estimate, on the SKAB tuning split
(valve1) ONLY, of closing an alert whose score stepped down to a lower
level and stayed there: the system left the fault but did not return to
its first state (SKAB's rig after a valve anomaly), so the alert of the
fault stays open over normal rows.

It replays every valve1 file once with a detector (the committed one by
default) through the daemon's pipeline, then, on the per-row output,
closes an alert from the window where the mean score over the last W
windows has stayed under r x the highest such mean the alert reached (its
plateau) for S windows, once the alert is at least L windows old; the rest
of that alert counts as not alerted. This is NOT the daemon: it does not
model the re-raise that would follow a plain clear (the score is still
over the threshold) nor the regime threshold an acceptance would set, so
the figures are an upper bound of what such a rule in the acceptance code
could give. Every (W, r, S, L) is appended to the tuning log with a note
saying so.

  skab_stepdown_sim.py WORK --valve1 SKAB/valve1 [--bin build/anomalyd]
"""
import argparse
import concurrent.futures as cf
import copy
import csv
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import skab_search  # noqa: E402  (valve1_files refuses other folders)

GRID = {"W": (30, 60), "r": (0.5, 0.67, 0.8), "S": (30, 60), "L": (100,)}


def replay_rows(binary, cfg, model, csv_path, ncal, out):
    p = subprocess.run([binary, "replay", "-c", cfg, "-m", model, "-i", csv_path,
                        "--calibrate-rows", str(ncal), "--exclude-calibration",
                        "--label", "anomaly", "-o", out], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("replay failed on %s: %s" % (csv_path, p.stderr.strip()[-400:]))
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    with open(csv_path) as fh:
        lab = [int(float(r["anomaly"])) for r in csv.DictReader(fh, delimiter=";")]
    score = [float(r["score"]) if r["score"] else float("nan") for r in rows]
    return lab, score, [r["alert_id"] for r in rows]


def simulate(data, ncal, W, r, S, L):
    tp = fp = fn = tn = 0
    for y, s, aid in data:
        pred = [1 if a else 0 for a in aid]
        n, t = len(y), 0
        while t < n:
            if not aid[t]:
                t += 1
                continue
            a, st, peak, held = aid[t], t, 0.0, 0
            while t < n and aid[t] == a:
                if t - st + 1 >= W:
                    m = sum(s[t - W + 1:t + 1]) / W
                    held = held + 1 if (t - st + 1 >= L and m < r * peak) else 0
                    peak = max(peak, m)
                    if held >= S:
                        t += 1
                        while t < n and aid[t] == a:
                            pred[t] = 0
                            t += 1
                        break
                t += 1
        for k in range(ncal, n):
            if y[k] and pred[k]:
                tp += 1
            elif y[k]:
                fn += 1
            elif pred[k]:
                fp += 1
            else:
                tn += 1
    return skab_search.metrics((tp, fp, fn, tn))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work", help="directory with the valve1 models of bench/skab_tune.sh")
    ap.add_argument("--valve1", required=True)
    ap.add_argument("--bin", default=os.environ.get("AD_BIN", "build/anomalyd"))
    ap.add_argument("--base", help="detector block JSON (default: the committed SKAB detector)")
    ap.add_argument("--ncal", type=int, default=400)
    ap.add_argument("--train-args", default="")
    ap.add_argument("--log", default=os.path.join(HERE, "tuning_log.tsv"))
    a = ap.parse_args()
    fl = skab_search.valve1_files(a.valve1)
    if a.base:
        base = json.loads(open(a.base).read() if os.path.exists(a.base) else a.base)
    else:
        with open(os.path.join(HERE, "eval_settings.json")) as fh:
            base = json.load(fh)["skab"]["detector"]
    tmp = tempfile.mkdtemp(prefix="skab_stepdown.")
    jobs = []
    for p, name in fl:
        model = os.path.join(a.work, name + ".safetensors")
        if not os.path.exists(model):
            sys.exit("skab_stepdown_sim.py: no model %s (run bench/skab_tune.sh)" % model)
        cfg = skab_search.config_file(copy.deepcopy(base), model, tmp, name)
        jobs.append((cfg, model, p, os.path.join(tmp, name + ".out.csv")))
    with cf.ThreadPoolExecutor(2) as pool:
        data = list(pool.map(lambda j: replay_rows(a.bin, j[0], j[1], j[2], a.ncal, j[3]), jobs))
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rev = skab_search.commit()
    with open(a.log, "a") as log:
        f = simulate(data, a.ncal, 10 ** 9, 0, 1, 0)
        print("off       F1 %.4f FAR %5.2f MAR %5.2f" % f)
        for W, r, S, L in itertools.product(*GRID.values()):
            f = simulate(data, a.ncal, W, r, S, L)
            sim = {"W": W, "r": r, "S": S, "L": L}
            log.write("%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%s\n" % (
                date, rev, json.dumps({"train": a.train_args, "detector": base,
                                       "offline_stepdown": sim}, sort_keys=True),
                f[0], f[1], f[2], "offline estimate (bench/skab_stepdown_sim.py), not the "
                "daemon: alert closed after S windows of its W-window mean under r x its "
                "highest; an upper bound (no re-raise, no regime threshold)"))
            print("W %2d r %.2f S %2d L %d  F1 %.4f FAR %5.2f MAR %5.2f" % (W, r, S, L, *f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
