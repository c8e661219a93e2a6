#!/usr/bin/python3
"""skab_search.py - the detection-settings search on the SKAB tuning split
(valve1, 16 files) ONLY, with every setting tried appended to the tuning
log. Run it through bench/skab_tune.sh, which trains the valve1 models.

A setting is a detector config object (the "detector" block of
bench/eval_settings.json with some keys changed: score, calibration,
alert, adapt...). For every setting the script writes a daemon config
with that detector and runs the real pipeline on each valve1 file:

  anomalyd replay -c SETTING.json -m WORK/valve1_N.safetensors -i N.csv
      --calibrate-rows 400 --exclude-calibration --label anomaly

(the windows ending in the 400 training rows calibrate; point metrics over
rows >= 400, pooled over the 16 files), two replays at a time.

The held-out folders are out of reach by construction: the script takes
the valve1 directory itself (--valve1, whose last path component must be
"valve1"), lists only that directory, and refuses model names of other
folders. There is no option to score anything else.

Stages (--stage, each a list of axes searched as a full product around a
base setting; the base is --base JSON or the committed detector block):

  accept   regime acceptance: accept_after x accept_spread x estimator x k
  prob     alert on probability: level x average x history (+ score runs)
  clear    smoothing and clear: smooth_alpha x m x clear_ratio
  fine     +-1 step around the base on accept_after, accept_spread, k,
           clear_ratio
  quality  the learned-range check: range_k x learn_samples (flagged
           windows are not scored, so a range flag can hide a fault)
  adapt    continual learning: enabled x every_windows x normal_windows x
           shadow_windows x min_gain (needs the adapt.* keys)
  features the later alert tests around the base: raise_ratio x level
           test (level_ms 0 = off, level_z) x burst test (burst_ms 0 =
           off; burst_n and burst_z at their defaults 3 and 5); SKAB rows
           are 1 s apart, so the durations are seconds to minutes
  level    the level test with its fence under the sigma threshold:
           level_ms (0 = off) x level_z {1, 1.5, 2}
  stepdown step-down acceptance: stepdown_ratio (0 = off) {0, 0.5, 0.67,
           0.8} x stepdown_windows {30, 60} x stepdown_after {30, 60}
  calib    threshold learning x estimator x calibration.k
  raise    the raise rule: alert.k (of alert.n 5) {1, 2, 3, 4} x
           calibration.k {2.5, 2.75, 3}

Selection rules (declared before the search). Coarse stages (accept,
prob, clear, adapt; steps too wide to be "one step" of a tolerance) only
locate the region: plain rule, the highest valve1 F1 with valve1 FAR <=
--far-max (15). The fine, features, level and stepdown stages decide: robust rule. For each setting, its neighbourhood is itself and every setting
of the stage one step away on one ordered axis (categorical axes such as
the estimator or alert.on are not steps). A setting qualifies when every
member of its neighbourhood has valve1 FAR <= --far-max (15); among those
the winner has the highest neighbourhood-minimum F1 (ties: own F1). So a
sharp optimum with a bad neighbour loses to a flat plateau.
--extend (robust stages): a winner on the edge of an ordered axis has a
one-sided neighbourhood there, so the rule cannot see a cliff just past
the grid. The grid is then extended one step past that edge (the fine
stage's steps: accept_after and accept_spread x or / 1.5, k +-0.25,
clear_ratio +-0.05, never past a key's range; other axes by their own
spacing), every new setting of the grown grid is run and logged, and the
rule is applied again over all of them, until the winner has a
neighbour on both sides of every ordered axis or an axis reaches its
limit (clear_ratio 1; accept_after 0; at most 6 extensions).

Log (--log, default bench/tuning_log.tsv; tab-separated, appended, never
rewritten): date, commit, settings, valve1_f1, valve1_far, valve1_mar,
note. settings = {"train": TRAIN ARGS, "detector": {...}} as JSON (older
rows: "train: ARGS | replay: ARGS").

  skab_search.py WORK --valve1 SKAB/valve1 --stage accept [--base JSON]
"""
import argparse
import concurrent.futures as cf
import copy
import datetime as dt
import glob
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_HEADER = "date\tcommit\tsettings\tvalve1_f1\tvalve1_far\tvalve1_mar\tnote\n"

# axis: (dotted key, values in order, ordered?)  Values of an ordered axis
# are one "step" apart from their neighbours in the list.
STAGES = {
    "accept": [("alert.accept_after", (0, 30, 60, 120, 240, 480), True),
               ("alert.accept_spread", (1.5, 3, 6), True),
               ("calibration.estimator", ("quantile", "mad"), False),
               ("calibration.k", (2.25, 2.75, 3.5), True)],
    "prob": [("alert.on", ("probability",), False),
             ("alert.probability_level", (0.99, 0.999, 0.9999), True),
             ("alert.probability_average", (5, 10, 30), True),
             ("alert.probability_history", (200, 500), True)],
    "clear": [("score.smooth_alpha", (1, 0.5, 0.3, 0.15), True),
              ("alert.m", (10, 20, 40), True),
              ("alert.clear_ratio", (0.8, 0.9, 1.0), True)],
    "quality": [("quality.range_k", (0, 10, 20, 40), True),
                ("quality.learn_samples", (100, 400), True)],
    "metric": [("score.metric", ("mae", "peak"), False),
               ("calibration.k", (2.25, 2.5, 2.75, 3.5), True)],
    "features": [("alert.raise_ratio", (1, 1.1, 1.2, 1.35), True),
                 ("alert.level_ms", (0, 60000, 180000), True),
                 ("alert.level_z", (3, 6), True),
                 ("alert.burst_ms", (0, 30000), True)],
    "level": [("alert.level_ms", (0, 60000, 180000), True),
              ("alert.level_z", (1, 1.5, 2), True)],
    "stepdown": [("alert.stepdown_ratio", (0, 0.5, 0.67, 0.8), True),
                 ("alert.stepdown_windows", (30, 60), True),
                 ("alert.stepdown_after", (30, 60), True)],
    "raise": [("alert.k", (1, 2, 3, 4), True),
              ("calibration.k", (2.5, 2.75, 3.0), True)],
    "calib": [("calibration.adapt", (False, True), False),
              ("calibration.estimator", ("quantile", "trimmed"), False),
              ("calibration.k", (2.25, 2.5, 2.75), True)],
    "adapt": [("adapt.enabled", (True,), False),
              ("adapt.every_windows", (150, 300), True),
              ("adapt.normal_windows", (200,), True),
              ("adapt.shadow_windows", (50, 100), True),
              ("adapt.min_gain", (0, 0.05), True)],
}
# fine: +-1 step around the base value on these axes (step = list spacing)
def step_past(key, values, side):
    """The value one step past the low (side -1) or high (+1) edge of an
    ordered axis, or None at a key's limit."""
    v = values[0] if side < 0 else values[-1]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if key in ("alert.accept_after", "alert.accept_spread"):
        n = v / 1.5 if side < 0 else v * 1.5
        n = round(n) if key == "alert.accept_after" else round(n, 3)
        return n if n > 0 and n not in values else None
    if key == "calibration.k":
        n = round(v + 0.25 * side, 2)
        return n if n > 0 else None
    if key == "alert.clear_ratio":
        n = round(v + 0.05 * side, 2)
        return n if 0 < n <= 1 else None
    if len(values) < 2:
        return None
    d = (values[1] - values[0]) if side < 0 else (values[-1] - values[-2])
    n = v + d * side
    if isinstance(v, int) and isinstance(d, int):
        n = int(n)
    return n if n >= 0 and n not in values else None


FINE = [("alert.accept_after", lambda v: sorted({max(0, round(v / 1.5)), v, round(v * 1.5)})),
        ("alert.accept_spread", lambda v: [round(v / 1.5, 3), v, round(v * 1.5, 3)]),
        ("calibration.k", lambda v: [round(v - 0.25, 2), v, round(v + 0.25, 2)]),
        ("alert.clear_ratio", lambda v: [x for x in (round(v - 0.05, 2), v, round(v + 0.05, 2))
                                         if x <= 1])]


def valve1_files(d):
    d = os.path.normpath(d)
    if os.path.basename(d) != "valve1":
        sys.exit("skab_search.py: --valve1 must be the SKAB valve1 folder (got %s); "
                 "the held-out folders are never searched" % d)
    fs = sorted(glob.glob(os.path.join(d, "*.csv")), key=lambda p: int(os.path.basename(p)[:-4]))
    if not fs:
        sys.exit("skab_search.py: no CSV files in %s" % d)
    return [(p, "valve1_%s" % os.path.basename(p)[:-4]) for p in fs]


def get(det, key):
    d = det
    for k in key.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def put(det, key, v):
    ks = key.split(".")
    d = det
    for k in ks[:-1]:
        d = d.setdefault(k, {})
    d[ks[-1]] = v


def tidy(det):
    """Drop keys that do nothing in det, so equal settings are written alike
    (and the committed setting as it is written)."""
    al = det.get("alert", {})
    if not al.get("accept_after"):      # spread has no effect without acceptance
        al.pop("accept_spread", None)
    if al.get("raise_ratio") == 1:      # the default
        al.pop("raise_ratio")
    if al.get("level_ms") == 0:         # level test off: level_z does nothing
        al.pop("level_ms")
        al.pop("level_z", None)
    if al.get("burst_ms") == 0:         # burst test off
        al.pop("burst_ms")
    if al.get("stepdown_ratio") == 0:   # step-down off: its spans do nothing
        al.pop("stepdown_ratio")
        al.pop("stepdown_windows", None)
        al.pop("stepdown_after", None)
    ca = det.get("calibration", {})
    if ca.get("adapt") is False:        # the default
        ca.pop("adapt")
    if ca.get("estimator") == "quantile":   # the default
        ca.pop("estimator")


def config_file(det, model, tmpdir, tag):
    """A daemon config holding one detector: det plus name/model/topics."""
    cfg = {"detectors": [dict(copy.deepcopy(det), name="skab", model=model, topics=["skab"])]}
    path = os.path.join(tmpdir, "setting_%s.json" % tag)
    with open(path, "w") as fh:
        json.dump(cfg, fh)
    return path


def replay(binary, cfg, model, csv, ncal):
    p = subprocess.run([binary, "replay", "-c", cfg, "-m", model, "-i", csv,
                        "--calibrate-rows", str(ncal), "--exclude-calibration",
                        "--label", "anomaly", "-o", "/dev/null"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("replay failed on %s: %s" % (csv, p.stderr.strip()[-400:]))
    line = [x for x in p.stderr.splitlines() if x.startswith("metrics:")][0]
    return [int(re.search(k + r"=(\d+)", line).group(1)) for k in ("TP", "FP", "FN", "TN")]


def metrics(c):
    tp, fp, fn, tn = c
    return tp / (tp + (fp + fn) / 2), 100 * fp / (fp + tn), 100 * fn / (fn + tp)


def commit():
    root = os.path.dirname(HERE)
    return subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def stage_axes(stage, base):
    if stage != "fine":
        return STAGES[stage]
    axes = []
    for key, f in FINE:
        v = get(base, key)
        if v is not None and v != 0:
            axes.append((key, tuple(f(v)), True))
    return axes


def robust_winner(results, axes, far_max, robust=True, base_vals=None):
    """results: {values tuple: (f1, far, mar)}; the declared rules. Exact
    ties (neighbourhood minimum and own F1) go to the setting with the
    fewest values changed from the base (base_vals), so an axis that
    changes no valve1 row keeps its committed value."""
    best = None
    if not robust:
        axes = [(k, v, False) for k, v, _ in axes]
    for vals, f in results.items():
        nb = [f]
        for i, (_, values, ordered) in enumerate(axes):
            if not ordered:
                continue
            j = values.index(vals[i])
            for jj in (j - 1, j + 1):
                if 0 <= jj < len(values):
                    other = vals[:i] + (values[jj],) + vals[i + 1:]
                    if other in results:
                        nb.append(results[other])
        if max(x[1] for x in nb) > far_max:
            continue
        same = sum(1 for v, b in zip(vals, base_vals or ()) if v == b)
        key = (min(x[0] for x in nb), f[0], same)
        if best is None or key > best[0]:
            best = (key, vals, len(nb))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work", help="directory with the valve1 models of bench/skab_tune.sh")
    ap.add_argument("--valve1", required=True, help="the SKAB valve1 folder")
    ap.add_argument("--bin", default=os.environ.get("AD_BIN", "build/anomalyd"))
    ap.add_argument("--stage", choices=tuple(STAGES) + ("fine", "base"), default="accept")
    ap.add_argument("--base", help="detector block JSON (default: bench/eval_settings.json skab.detector)")
    ap.add_argument("--far-max", type=float, default=15)
    ap.add_argument("--ncal", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--train-args", default="", help="how the models were trained (logged)")
    ap.add_argument("--extend", action="store_true",
                    help="robust stages: grow the grid past an edge the winner sits on (see above)")
    ap.add_argument("--winner-out", help="write the winner's detector block here (JSON)")
    ap.add_argument("--log", default=os.path.join(HERE, "tuning_log.tsv"))
    a = ap.parse_args()
    fl = valve1_files(a.valve1)
    for _, name in fl:
        if not os.path.exists(os.path.join(a.work, name + ".safetensors")):
            sys.exit("skab_search.py: no model %s in %s (run bench/skab_tune.sh)" % (name, a.work))
    if a.base:
        base = json.loads(open(a.base).read() if os.path.exists(a.base) else a.base)
    else:
        with open(os.path.join(HERE, "eval_settings.json")) as fh:
            base = json.load(fh)["skab"]["detector"]
    axes = [] if a.stage == "base" else stage_axes(a.stage, base)
    grid = list(itertools.product(*[v for _, v, _ in axes]))
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rev = commit()
    new = not os.path.exists(a.log)
    log = open(a.log, "a")
    if new:
        log.write(LOG_HEADER)
    results, seen = {}, {}
    tmp = tempfile.mkdtemp(prefix="skab_search.")
    pool = cf.ThreadPoolExecutor(a.jobs)
    note = "stage %s" % a.stage

    def run_grid(grid):
        for n, vals in enumerate(grid):
            if vals in results:
                continue
            det = copy.deepcopy(base)
            for (key, _, _), v in zip(axes, vals):
                put(det, key, v)
            tidy(det)
            sig = json.dumps(det, sort_keys=True)
            if sig in seen:
                results[vals] = seen[sig]
                continue
            cfgs = [(config_file(det, os.path.join(a.work, name + ".safetensors"), tmp,
                                 "%d_%s" % (len(seen), name)),
                     os.path.join(a.work, name + ".safetensors"), p) for p, name in fl]
            try:
                cs = list(pool.map(lambda x: replay(a.bin, x[0], x[1], x[2], a.ncal), cfgs))
            except RuntimeError as e:
                sys.exit("skab_search.py: %s\n  setting %s" % (e, sig))
            tot = [sum(c[i] for c in cs) for i in range(4)]
            f = metrics(tot)
            seen[sig] = results[vals] = f
            log.write("%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%s\n" % (
                date, rev, json.dumps({"train": a.train_args, "detector": det}, sort_keys=True),
                f[0], f[1], f[2], note))
            log.flush()
            print("%3d/%d F1 %.4f FAR %5.2f MAR %5.2f  %s" % (
                n + 1, len(grid), *f, " ".join("%s=%s" % (k.split(".")[-1], v)
                                               for (k, _, _), v in zip(axes, vals))), flush=True)

    base_vals = tuple(get(base, key) for key, _, _ in axes)
    grid = list(itertools.product(*[v for _, v, _ in axes]))
    run_grid(grid)
    robust = a.stage in ("fine", "features", "level", "stepdown", "calib", "raise")
    w = None if a.stage == "base" else robust_winner(results, axes, a.far_max, robust, base_vals)
    for _ in range(6 if a.extend and robust else 0):
        if w is None:
            break
        grown = False
        for i, (key, values, ordered) in enumerate(axes):
            j = values.index(w[1][i]) if ordered else -1
            for side, edge in ((-1, 0), (1, len(values) - 1)):
                if ordered and j == edge:
                    v = step_past(key, values, side)
                    if v is not None:
                        values = (v,) + values if side < 0 else values + (v,)
                        grown = True
                        print("winner on the %s edge of %s: grid extended to %s"
                              % ("low" if side < 0 else "high", key, list(values)), flush=True)
            axes[i] = (key, values, ordered)
        if not grown:
            break
        note = "stage %s (extended)" % a.stage
        grid = list(itertools.product(*[v for _, v, _ in axes]))
        run_grid(grid)
        w = robust_winner(results, axes, a.far_max, robust, base_vals)
    pool.shutdown()
    log.close()
    print("tried %d settings (%d distinct) on valve1 (%d files), logged to %s"
          % (len(grid), len(seen), len(fl), a.log))
    if a.stage == "base":
        return 0
    if w is None:
        print("no setting whose neighbourhood keeps valve1 FAR <= %g" % a.far_max)
        return 1
    det = copy.deepcopy(base)
    for (key, _, _), v in zip(axes, w[1]):
        put(det, key, v)
    tidy(det)
    f = results[w[1]]
    print("winner (%s, FAR <= %g): own F1 %.4f FAR %.2f MAR %.2f, neighbourhood (%d) min F1 "
          "%.4f\n  %s" % ("robust: max neighbourhood-min F1" if robust else "plain: max F1", a.far_max,
                           *f, w[2], w[0][0], json.dumps(det, sort_keys=True)))
    if a.winner_out:
        with open(a.winner_out, "w") as fh:
            json.dump(det, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
