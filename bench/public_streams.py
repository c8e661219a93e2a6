#!/usr/bin/python3
"""public_streams.py - the README's "CSV of your own" command on a folder of
univariate streams (e.g. a checkout of a public streaming benchmark; none
is shipped), counted the way an operator would read the alerts.

    bench/public_streams.py --data DIR [--windows FILE.json] [--build B]
        [--conf conf/anomalyd.json] [--train-frac 0.15] [--out DIR] [NAME ...]

For every DIR/*.csv (or the NAMEs given, without .csv): bootstrap training
on the first train-frac of the rows (in windows: that many rows - 29, the
window being 30), then `anomalyd replay -c CONF --training bootstrap
--window 30`. Counted from the replay's events, after the first
train-frac of the rows: model alerts raised; with --windows (a JSON object
mapping "any/prefix/NAME.csv" to [[start, end], ...] timestamps, the
layout of a labelled-windows file), the windows with at least one alert
raised inside (hit) and the alerts raised outside every window (false).
Data-quality alerts are not counted. Two replays run at a time.
Prints one line per stream and the totals; --out keeps the outputs.
"""
import argparse
import concurrent.futures
import csv
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile

WINDOW = 30


def ts_ms(text):
    t = datetime.datetime.fromisoformat(text.strip())
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(round(t.timestamp() * 1000))


def stamps(path):
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        next(r, None)
        return [ts_ms(row[0]) for row in r if row]


def run_one(a, name, out):
    path = os.path.join(a.data, name + ".csv")
    t = stamps(path)
    tw = int(len(t) * a.train_frac) - (WINDOW - 1)
    if tw < 1:
        return name, None, "too few rows (%d) for a %.0f%% training part" % (len(t), 100 * a.train_frac)
    ev = os.path.join(out, name + ".events.jsonl")
    cmd = [a.bin, "replay", "-c", a.conf, "--training", "bootstrap", "--window", str(WINDOW),
           "--train-windows", str(tw), "-i", path, "-o", os.path.join(out, name + ".out.csv"),
           "-e", ev, "--summary", os.path.join(out, name + ".summary.json")]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    with open(os.path.join(out, name + ".log"), "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=log, env=env)
    if rc != 0:
        return name, None, "replay failed (exit %d), see %s.log" % (rc, name)
    start = t[min(int(len(t) * a.train_frac), len(t) - 1)]
    raised = []
    with open(ev) as fh:
        for line in fh:
            e = json.loads(line)
            if e.get("event") == "alert_raised" and e["ts"] >= start:
                raised.append(e["ts"])
    return name, {"rows": len(t), "train_windows": tw, "raised": raised}, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder of CSV files (time column first)")
    ap.add_argument("--windows", help="labelled windows (JSON: name -> [[start, end], ...])")
    ap.add_argument("--build", default="build")
    ap.add_argument("--conf", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "conf", "anomalyd.json"))
    ap.add_argument("--train-frac", type=float, default=0.15)
    ap.add_argument("--out", help="keep the outputs here (default: a temporary folder)")
    ap.add_argument("names", nargs="*", help="streams (file names without .csv; default all)")
    a = ap.parse_args()
    a.bin = os.path.join(a.build, "anomalyd")
    if not os.access(a.bin, os.X_OK):
        sys.exit("public_streams.py: %s not built (run make)" % a.bin)
    if not 0 < a.train_frac < 1:
        sys.exit("public_streams.py: --train-frac must be in (0, 1)")
    names = a.names or sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(a.data, "*.csv")))
    if not names:
        sys.exit("public_streams.py: no CSV file in %s" % a.data)
    wins = {}
    if a.windows:
        with open(a.windows) as fh:
            raw = json.load(fh)
        for k, v in raw.items():
            wins[os.path.basename(k)[:-4] if k.endswith(".csv") else os.path.basename(k)] = \
                [(ts_ms(s), ts_ms(e)) for s, e in v]
    out = a.out or tempfile.mkdtemp(prefix="public_streams.")
    os.makedirs(out, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda n: run_one(a, n, out), names))
    tot = {"raised": 0, "hit": 0, "windows": 0, "false": 0}
    failed = 0
    for name, r, err in res:
        if err:
            print("%-44s %s" % (name, err))
            failed += 1
            continue
        line = "%-44s rows %6d  alerts %3d" % (name, r["rows"], len(r["raised"]))
        tot["raised"] += len(r["raised"])
        if a.windows:
            w = wins.get(name, [])
            hit = sum(1 for s, e in w if any(s <= x <= e for x in r["raised"]))
            false = sum(1 for x in r["raised"] if not any(s <= x <= e for s, e in w))
            line += "  windows hit %d/%d  false alerts %d" % (hit, len(w), false)
            tot["hit"] += hit
            tot["windows"] += len(w)
            tot["false"] += false
        print(line)
    print("total: %d streams, %d alerts" % (len(names) - failed, tot["raised"]) +
          (", windows hit %d/%d, false alerts %d" % (tot["hit"], tot["windows"], tot["false"])
           if a.windows else "") + (", %d failed" % failed if failed else ""))
    print("outputs: %s" % out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
