#!/usr/bin/python3
"""skab_train_search.py - the model-training search on the SKAB tuning
split (valve1, 16 files) ONLY: which window, architecture, scaler, loss,
learning rate and early-stopping patience
the per-file models are trained with. Every (training setting, seed,
detector setting) tried is appended to the tuning log (bench/tuning_log.tsv)
with its valve1 F1/FAR/MAR, note "stage train".

For each training setting and each seed in --seeds the script trains the
16 valve1 models (`anomalyd train --rows 400`, two at a time) and replays
them with skab_search.py's pipeline under each calibration.k in --ks (the
threshold scale depends on the model, so each model family gets its own
k). The held-out folders are out of reach as in skab_search.py.

Selection rule (declared before the search ran):
  * a (training setting, k) pair qualifies when valve1 FAR <= --far-max
    (15) for EVERY seed;
  * its figure is the seed-mean valve1 F1 and, to break near ties, the
    seed-minimum F1; the winner has the highest seed-mean F1 among pairs
    whose seed-minimum F1 is within 0.01 of the best seed-minimum;
  * coordinate stages: "axes" varies one axis at a time around the base
    (the committed training arguments); "combine" crosses the values that
    beat the base on each axis. A setting is taken only if it beats the
    base's seed-mean F1 by more than the seed spread of the base (max -
    min over seeds): a gain inside the seed noise is not a gain.

  skab_train_search.py --valve1 SKAB/valve1 --stage axes [--seeds 1,2,3]
"""
import argparse
import concurrent.futures as cf
import copy
import datetime as dt
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import skab_search as ss  # noqa: E402

# axis: (option, values); the base value comes from the committed train_args
AXES = [("--window", ("5", "10", "20", "30")),
        ("--arch", ("lstm-ae:32", "lstm-ae:100", "lstm-seq:64,32,64", "dense-ae:64,16")),
        ("--scaler", ("minmax", "standard")),
        ("--loss", ("mae", "mse")),
        ("--lr", ("0.0003", "0.001", "0.003")),
        ("--patience", ("5", "20"))]
# `anomalyd train` defaults of options the committed arguments may omit
DEFAULTS = {"--lr": "0.001"}


def parse_args_str(s):
    toks = shlex.split(s)
    out, i = {}, 0
    while i < len(toks):
        out[toks[i]] = toks[i + 1]
        i += 2
    return out


def args_str(d):
    return " ".join("%s %s" % (k, v) for k, v in d.items())


def seed_dir(work, train, seed):
    """The folder in WORK of the models trained with TRAIN (a dict of
    anomalyd train options) and SEED: its name is the options, made safe."""
    return os.path.join(work, "%s_%s" % (args_str(train).replace(" ", "_").replace("-", "")
                                         .replace(":", "").replace(",", "."), seed))


def seed_configs(work, train, seed, fl, det, tmp, who):
    """For each (path, name) of FL: (path, name, model, config), the model
    of seed_dir(WORK, TRAIN, SEED) for that file and a config for it with
    the detector block DET in TMP; WHO (the script) ends saying which
    model is missing when one is."""
    out = []
    for p, name in fl:
        model = os.path.join(seed_dir(work, train, seed), name + ".safetensors")
        if not os.path.exists(model):
            sys.exit("%s: no model %s" % (who, model))
        out.append((p, name, model, ss.config_file(det, model, tmp, "s%d_%s" % (seed, name))))
    return out


def train_all(binary, fl, train, features, rows, seed, outdir, jobs):
    os.makedirs(outdir, exist_ok=True)

    def one(x):
        p, name = x
        m = os.path.join(outdir, name + ".safetensors")
        if os.path.exists(m):
            return
        cmd = [binary, "train", "-i", p, "-o", m, "--rows", str(rows), "--features", features,
               "-q", "--seed", str(seed)] + shlex.split(args_str(train))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("train failed on %s: %s" % (p, r.stderr.strip()[-300:]))
    with cf.ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, fl))


def score(binary, fl, work, det, tmp, tag, ncal, jobs):
    cfgs = [(ss.config_file(det, os.path.join(work, name + ".safetensors"), tmp, "%s_%s" % (tag, name)),
             os.path.join(work, name + ".safetensors"), p) for p, name in fl]
    with cf.ThreadPoolExecutor(jobs) as pool:
        cs = list(pool.map(lambda x: ss.replay(binary, x[0], x[1], x[2], ncal), cfgs))
    return ss.metrics([sum(c[i] for c in cs) for i in range(4)])


DET_GRID = {"calibration.k": [2.5, 2.75, 3.0], "alert.k": [3, 4, 5],
            "alert.clear_ratio": [0.75, 0.8, 0.85]}


def seed_rule(table, far_max):
    """table: {key: [f per seed]} -> (winner key, its figures) or None."""
    ok = {x: fs for x, fs in table.items() if max(f[1] for f in fs) <= far_max}
    if not ok:
        return None
    best_min = max(min(f[0] for f in fs) for fs in ok.values())
    cand = [x for x, fs in ok.items() if min(f[0] for f in fs) >= best_min - 0.01]
    w = max(cand, key=lambda x: sum(f[0] for f in ok[x]) / len(ok[x]))
    return w, ok[w]


def grow(key, values, side, kmax=5):
    """One step past an edge of a detector axis, or None at its limit
    (alert.k: 1 .. kmax, the largest alert.n of the grid)."""
    v = values[0] if side < 0 else values[-1]
    if key == "alert.k":
        n = v + side
        return n if 1 <= n <= kmax else None
    step = 0.25 if key == "calibration.k" else 0.05 if key == "alert.clear_ratio" else \
        (values[1] - values[0] if len(values) > 1 else None)
    if step is None:
        return None
    n = round(v + side * step, 3)
    if key == "alert.n":
        n = int(n)
        return n if 1 <= n <= 64 else None
    if n <= 0 or (key == "alert.clear_ratio" and n > 1):
        return None
    return n


def valid(keys, vals, base_det):
    """False for a raise rule of more windows than it looks at (alert.k >
    alert.n), which the config refuses."""
    d = dict(zip(keys, vals))
    return d.get("alert.k", ss.get(base_det, "alert.k") or 3) <= \
        d.get("alert.n", ss.get(base_det, "alert.n") or 5)


def stage_detector(a, fl, sk, base_train, base_det, seeds):
    grid = json.loads(a.grid) if a.grid else copy.deepcopy(DET_GRID)
    keys = list(grid)
    work = a.work or tempfile.mkdtemp(prefix="skab_train.")
    tmp = tempfile.mkdtemp(prefix="skab_train_cfg.")
    dirs = {}
    for seed in seeds:
        d = seed_dir(work, base_train, seed)
        train_all(a.bin, fl, base_train, sk["features"], sk["train_rows"], seed, d, a.jobs)
        dirs[seed] = d
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rev = ss.commit()
    table = {}
    note = "stage %s" % a.note
    with open(a.log, "a") as log:
        for rnd in range(4):
            for vals in itertools.product(*[grid[k] for k in keys]):
                if vals in table or not valid(keys, vals, base_det):
                    continue
                det = copy.deepcopy(base_det)
                for k, v in zip(keys, vals):
                    ss.put(det, k, v)
                fs = []
                for seed in seeds:
                    tag = "d%d_s%d" % (len(table), seed)
                    f = score(a.bin, fl, dirs[seed], det, tmp, tag, 400, a.jobs)
                    fs.append(f)
                    ta = "%s --seed %d --features %s" % (args_str(base_train), seed, sk["features"])
                    log.write("%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%s\n" % (
                        date, rev, json.dumps({"train": ta, "detector": det}, sort_keys=True),
                        f[0], f[1], f[2], note))
                    log.flush()
                table[vals] = fs
                print("%-40s F1 mean %.4f min %.4f max %.4f  FAR max %5.2f mean %5.2f  [%s]" % (
                    " ".join("%s=%s" % (k.split(".")[-1], v) for k, v in zip(keys, vals)),
                    sum(f[0] for f in fs) / len(fs), min(f[0] for f in fs), max(f[0] for f in fs),
                    max(f[1] for f in fs), sum(f[1] for f in fs) / len(fs),
                    " ".join("%.4f/%.2f" % (f[0], f[1]) for f in fs)), flush=True)
            r = seed_rule(table, a.far_max)
            if r is None or rnd == 3:
                break
            grown = False
            for i, k in enumerate(keys):
                for side, edge in ((-1, 0), (1, len(grid[k]) - 1)):
                    if r[0][i] == grid[k][edge]:
                        n = grow(k, grid[k], side, max(grid.get("alert.n", [5])))
                        if n is not None and n not in grid[k]:
                            grid[k] = [n] + grid[k] if side < 0 else grid[k] + [n]
                            grown = True
                            print("winner on an edge of %s: grid grown to %s" % (k, grid[k]), flush=True)
            if not grown:
                break
            note = "stage %s (extended)" % a.note
    if r is None:
        print("no setting with valve1 FAR <= %g on every seed" % a.far_max)
        return 1
    w, fs = r
    print("winner: %s: seed-mean F1 %.4f (min %.4f, max %.4f), FAR max %.2f" % (
        " ".join("%s=%s" % (k, v) for k, v in zip(keys, w)), sum(f[0] for f in fs) / len(fs),
        min(f[0] for f in fs), max(f[0] for f in fs), max(f[1] for f in fs)))
    cur = tuple(ss.get(base_det, k) for k in keys)
    if cur in table:
        fs = table[cur]
        print("committed: %s: seed-mean F1 %.4f (min %.4f, max %.4f), FAR max %.2f" % (
            " ".join("%s=%s" % (k, v) for k, v in zip(keys, cur)), sum(f[0] for f in fs) / len(fs),
            min(f[0] for f in fs), max(f[0] for f in fs), max(f[1] for f in fs)))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--valve1", required=True, help="the SKAB valve1 folder")
    ap.add_argument("--bin", default=os.environ.get("AD_BIN", "build/anomalyd"))
    ap.add_argument("--stage", choices=("axes", "combine", "base", "detector"), default="axes")
    ap.add_argument("--grid", help="for --stage detector: JSON {dotted detector key: [values]}")
    ap.add_argument("--note", default="seeds", help="for --stage detector: the stage name logged")
    ap.add_argument("--combine", help="for --stage combine: JSON {option: [values]} to cross")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--ks", default="2,2.5,3,3.5", help="calibration.k values tried per model family")
    ap.add_argument("--far-max", type=float, default=15)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", help="keep the models here (default: a temporary folder)")
    ap.add_argument("--log", default=os.path.join(HERE, "tuning_log.tsv"))
    a = ap.parse_args()
    fl = ss.valve1_files(a.valve1)
    with open(os.path.join(HERE, "eval_settings.json")) as fh:
        sk = json.load(fh)["skab"]
    base_train = parse_args_str(sk["train_args"])
    base_train.pop("--seed", None)
    base_det = sk["detector"]
    seeds = [int(x) for x in a.seeds.split(",")]
    ks = [float(x) for x in a.ks.split(",")]

    if a.stage == "detector":
        return stage_detector(a, fl, sk, base_train, base_det, seeds)
    settings = [dict(base_train)]
    if a.stage == "axes":
        for opt, vals in AXES:
            for v in vals:
                if base_train.get(opt, DEFAULTS.get(opt)) == v:
                    continue
                t = dict(base_train)
                t[opt] = v
                settings.append(t)
    elif a.stage == "combine":
        comb = json.loads(a.combine)
        opts = list(comb)
        for vals in itertools.product(*[comb[o] for o in opts]):
            t = dict(base_train)
            t.update(dict(zip(opts, vals)))
            if t not in settings:
                settings.append(t)

    work = a.work or tempfile.mkdtemp(prefix="skab_train.")
    tmp = tempfile.mkdtemp(prefix="skab_train_cfg.")
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    rev = ss.commit()
    log = open(a.log, "a")
    table = []  # (train, k, [f per seed])
    for si, t in enumerate(settings):
        per_k = {k: [] for k in ks}
        for seed in seeds:
            tag = "t%d_s%d" % (si, seed)
            d = seed_dir(work, t, seed)
            try:
                train_all(a.bin, fl, t, sk["features"], sk["train_rows"], seed, d, a.jobs)
            except RuntimeError as e:
                print("  %s seed %d: %s" % (args_str(t), seed, e), flush=True)
                per_k = None
                break
            for k in ks:
                det = copy.deepcopy(base_det)
                ss.put(det, "calibration.k", k)
                f = score(a.bin, fl, d, det, tmp, "%s_k%g" % (tag, k), 400, a.jobs)
                per_k[k].append(f)
                ta = "%s --seed %d --features %s" % (args_str(t), seed, sk["features"])
                log.write("%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%s\n" % (
                    date, rev, json.dumps({"train": ta, "detector": det}, sort_keys=True),
                    f[0], f[1], f[2], "stage train (%s)" % a.stage))
                log.flush()
        if per_k is None:
            continue
        for k in ks:
            fs = per_k[k]
            mean = sum(f[0] for f in fs) / len(fs)
            table.append((t, k, fs))
            print("%-60s k %-4g F1 mean %.4f min %.4f max %.4f  FAR max %5.2f mean %5.2f" % (
                args_str(t), k, mean, min(f[0] for f in fs), max(f[0] for f in fs),
                max(f[1] for f in fs), sum(f[1] for f in fs) / len(fs)), flush=True)
    log.close()
    ok = [(t, k, fs) for t, k, fs in table if max(f[1] for f in fs) <= a.far_max]
    if not ok:
        print("no (training, k) pair with valve1 FAR <= %g on every seed" % a.far_max)
        return 1
    best_min = max(min(f[0] for f in fs) for _, _, fs in ok)
    cand = [x for x in ok if min(f[0] for f in x[2]) >= best_min - 0.01]
    w = max(cand, key=lambda x: sum(f[0] for f in x[2]) / len(x[2]))
    base = [x for x in ok if x[0] == settings[0]]
    print("winner: %s k %g: seed-mean F1 %.4f (min %.4f)" % (
        args_str(w[0]), w[1], sum(f[0] for f in w[2]) / len(w[2]), min(f[0] for f in w[2])))
    if base:
        b = max(base, key=lambda x: sum(f[0] for f in x[2]))
        bm = sum(f[0] for f in b[2]) / len(b[2])
        spread = max(f[0] for f in b[2]) - min(f[0] for f in b[2])
        print("base: %s k %g: seed-mean F1 %.4f, seed spread %.4f -> winner %s the base by more "
              "than the spread" % (args_str(b[0]), b[1], bm, spread,
                                   "beats" if sum(f[0] for f in w[2]) / len(w[2]) > bm + spread
                                   else "does NOT beat"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
