#!/usr/bin/python3
"""eval.py - `make eval`: the project's evaluation, end to end, with the
binary's own `train` and `replay`.

(a) SKAB, published protocol (/work/shared/data/README.md): per file, train
    on the first 400 rows, replay the file (windows ending in those rows
    calibrate), point metrics over rows >= 400, pooled. Reported per split:
    held-out = valve2 + other (18 files, the headline), tuning = valve1
    (16 files; settings are chosen there only, bench/skab_tune.sh), and all
    34 for comparison with the published leaderboard. Settings: the "skab"
    block of bench/eval_settings.json, the same for every file: its
    "detector" object is written as a daemon config and the replay is
    `anomalyd replay -c CONFIG -m MODEL` (the daemon's own pipeline).
(b) Scenario suite (tools/scenarios.py): week-long simulated pump streams
    with labelled events, replayed (1) with the pretrained model (the
    "scenarios.model" of the settings, the bundled pump model) and (2) in
    bootstrap mode (no model file: the stream trains its own model first),
    scored event by event (bench/eval_score.py).
    The scenario detection settings are the "detector" object of the
    "scenarios" block, also run through `replay -c`.
(c) Logs: a run that includes the held-out folders appends one line to
    bench/tuning_log.tsv (note "HELD-OUT run": valve1 figures in the
    columns, held-out figures in the note); every scenario run appends one
    line per mode to bench/scenario_log.tsv (its note names the seed base).
    EVAL_LOG=0: no log lines; EVAL_LOG_DIR=DIR: the logs in DIR instead of
    this checkout's bench/ (a run from a second checkout logs into the
    main one).
(d) OUT (default build/eval): summary.md, summary.json, index.html, one
    HTML picture page per SKAB file and per scenario and mode
    (tools/plot.py), and the raw replay outputs.

  /usr/bin/python3 bench/eval.py [--build build] [--out build/eval]
  EVAL_SETS="valve1 valve2 other"   SKAB folders to run ("none": skip SKAB)
  EVAL_SCENARIOS="a,b"              scenarios to run ("none": skip them)
  EVAL_MODES="pretrained,bootstrap" scenario modes
  EVAL_SEED_BASE=100                 scenario seeds + 100 (a check on other streams)
  EVAL_PLOTS=0                      no picture pages
  EVAL_LOG=0                        do not append to the logs
  EVAL_LOG_DIR=DIR                  append to DIR/tuning_log.tsv, DIR/scenario_log.tsv
  --scenario-detector JSON          try a candidate scenario detector (logged)
"""
import argparse
import datetime as dt
import glob
import html
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import eval_score  # noqa: E402
import scenarios  # noqa: E402

PUBLISHED = [("Conv-AE", 0.78, 13.55, 28.02), ("MSET", 0.78, 39.73, 14.13),
             ("LSTM-AE", 0.74, 29.96, 25.92)]
SPLITS = [("held-out (valve2 + other)", ("valve2", "other")),
          ("tuning (valve1)", ("valve1",)),
          ("all 34 files", ("valve1", "valve2", "other"))]


def write_config(det, model, path, name):
    """A daemon config holding one detector: det plus name/model/topics."""
    cfg = {"detectors": [dict(det, name=name, model=model, topics=[name])]}
    with open(path, "w") as fh:
        json.dump(cfg, fh, indent=1)
    return path


def run(cmd, log):
    with open(log, "w") as fh:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=fh)
    if p.returncode != 0:
        sys.stderr.write("eval.py: failed (%d): %s\n%s" % (p.returncode, shlex.join(cmd),
                                                           open(log).read()))
        sys.exit(1)


def metrics(c):
    tp, fp, fn, tn = c
    f1 = tp / (tp + (fp + fn) / 2) if tp + fp + fn else None
    far = 100.0 * fp / (fp + tn) if fp + tn else None
    mar = 100.0 * fn / (fn + tp) if fn + tp else None
    return f1, far, mar


def plot(argv):
    import plot as plotmod
    if plotmod.main(argv) != 0:
        sys.stderr.write("eval.py: plot failed: %s\n" % " ".join(argv))


def skab_part(a, st, out, sets, plots):
    s = st["skab"]
    d = os.path.join(out, "skab")
    os.makedirs(d, exist_ok=True)
    files = []
    for name in sets:
        fs = sorted(glob.glob(os.path.join(a.skab, name, "*.csv")),
                    key=lambda p: int(os.path.basename(p)[:-4]))
        files += [(name, p) for p in fs]
    if not files:
        sys.exit("eval.py: no SKAB files under %s for %s" % (a.skab, " ".join(sets)))
    res = []
    t0 = time.time()
    cfg = os.path.join(d, "detector.json")
    for k, (folder, path) in enumerate(files):
        name = "%s_%s" % (folder, os.path.basename(path)[:-4])
        base = os.path.join(d, name)
        t1 = time.time()
        run([a.bin, "train", "-i", path, "-o", base + ".safetensors", "--rows", str(s["train_rows"]),
             "--features", s["features"], "-q"] + shlex.split(s["train_args"]), base + ".train.log")
        t2 = time.time()
        write_config(s["detector"], base + ".safetensors", cfg, "skab")
        run([a.bin, "replay", "-c", cfg, "-m", base + ".safetensors", "-i", path,
             "--calibrate-rows", str(s["train_rows"]), "--exclude-calibration",
             "--label", "anomaly", "--stream", name] + shlex.split(s["replay_args"]) +
            ["-o", base + ".out.csv", "-e", base + ".events.jsonl", "--summary", base + ".summary.json"],
            base + ".replay.log")
        with open(base + ".summary.json") as fh:
            sm = json.load(fh)
        c = [sm["tp"], sm["fp"], sm["fn"], sm["tn"]]
        f1, far, mar = metrics(c)
        r = {"file": "%s/%s" % (folder, os.path.basename(path)), "name": name, "folder": folder,
             "counts": c, "f1": f1, "far": far, "mar": mar, "alerts": sm.get("alerts"),
             "train_s": round(t2 - t1, 2)}
        res.append(r)
        print("skab %2d/%d %-10s F1 %s FAR %s MAR %s alerts %s (train %.1f s)" % (
            k + 1, len(files), name, fmt(f1, 3), fmt(far, 1), fmt(mar, 1), r["alerts"], t2 - t1),
            flush=True)
        if plots:
            extra = ("<p>%s: F1 %s, FAR %s%%, MAR %s%% (rows &ge; %d; TP/FP/FN/TN %s). "
                     "Settings: <code>%s</code> / <code>%s</code></p>" % (
                         html.escape(r["file"]), fmt(f1, 3), fmt(far, 1), fmt(mar, 1),
                         s["train_rows"], "/".join(map(str, c)), html.escape(s["train_args"]),
                         html.escape(json.dumps(s["detector"]) + " " + s["replay_args"])))
            plot([base + ".out.csv", "--input", path, "--events", base + ".events.jsonl",
                  "--title", "SKAB " + r["file"], "--html-extra", extra, "-o", base + ".html"])
            r["page"] = "skab/%s.html" % name
    splits = []
    for label, folders in SPLITS:
        rs = [r for r in res if r["folder"] in folders]
        if not rs or set(folders) - set(sets):
            continue
        c = [sum(r["counts"][i] for r in rs) for i in range(4)]
        f1, far, mar = metrics(c)
        splits.append({"split": label, "files": len(rs), "counts": c, "f1": f1, "far": far, "mar": mar})
    return {"files": res, "splits": splits, "seconds": round(time.time() - t0, 1)}


def scenario_part(a, st, out, names, modes, plots):
    s = st["scenarios"]
    d = os.path.join(out, "scenarios")
    data = os.path.join(d, "data")
    os.makedirs(data, exist_ok=True)
    t0 = time.time()
    seed_base = int(os.environ.get("EVAL_SEED_BASE", "0"))
    sides = {n: scenarios.generate(n, data, seed_base=seed_base) for n in names}
    model = s["model"] if os.path.isabs(s["model"]) else os.path.join(ROOT, s["model"])
    per = {m: [] for m in modes}
    cfg = write_config(s["detector"], model, os.path.join(d, "detector.json"), "scenario")
    for n in names:
        for m in modes:
            base = os.path.join(d, "%s.%s" % (n, m))
            src = ["-m", model] if m == "pretrained" else shlex.split(s["bootstrap_args"])
            run([a.bin, "replay", "-c", cfg, "-i", os.path.join(data, n + ".csv"), "--stream", n,
                 "--label", "anomaly"] + src + shlex.split(s["replay_args"]) +
                ["-o", base + ".out.csv", "-e", base + ".events.jsonl",
                 "--summary", base + ".summary.json"], base + ".replay.log")
            r = eval_score.score(sides[n], eval_score.read_events(base + ".events.jsonl"))
            r["mode"] = m
            per[m].append(r)
            ev = r["events"]
            print("scenario %-16s %-10s alerts %3d false %3d faults %d/%d absorbed %d/%d" % (
                n, m, r["alerts"], r["false_alerts"],
                sum(1 for e in ev if e.get("detected")), sum(1 for e in ev if e["expect"] == "alert"),
                sum(1 for e in ev if e.get("absorbed")), sum(1 for e in ev if e["expect"] == "absorb")),
                flush=True)
            if plots:
                extra = "<p>%s, %s: %d alerts, %d false (%.2f stream-days scored); events: %s</p>" % (
                    html.escape(n), m, r["alerts"], r["false_alerts"], r["stream_days"],
                    html.escape("; ".join(
                        "%s %s%s" % (e["kind"], e["expect"],
                                     " detected" if e.get("detected") else
                                     " absorbed" if e.get("absorbed") else
                                     " missed" if e["expect"] == "alert" else
                                     " NOT absorbed" if e["expect"] == "absorb" else
                                     " dq %s" % ("n/a" if not r["dq_flags"] else
                                                 "flagged" if e.get("dq_flagged") else "missed"))
                        for e in ev) or "none"))
                plot([base + ".out.csv", "--input", os.path.join(data, n + ".csv"),
                      "--events", base + ".events.jsonl", "--truth", os.path.join(data, n + ".events.json"),
                      "--title", "scenario %s (%s)" % (n, m), "--html-extra", extra,
                      "-o", base + ".html"])
                r["page"] = "scenarios/%s.%s.html" % (n, m)
    agg = {m: eval_score.aggregate(per[m]) for m in modes}
    return {"streams": per, "aggregate": agg, "seconds": round(time.time() - t0, 1)}


SCEN_HEADER = ("date\tcommit\tsettings\tmode\tfaults_alerted\tfalse_alerts\tfalse_per_week\t"
               "absorbed\taccepted_clears\tdq_flagged\tnote\n")


def append(path, header, line):
    new = not os.path.exists(path)
    with open(path, "a") as fh:
        if new:
            fh.write(header)
        fh.write(line)


def log_runs(summary, sets, note):
    """The run in the logs: held-out in tuning_log.tsv, scenarios in
    scenario_log.tsv (one line per mode)."""
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    logdir = os.environ.get("EVAL_LOG_DIR") or HERE
    seed_base = int(os.environ.get("EVAL_SEED_BASE", "0"))
    st = summary["settings"]
    sk = summary.get("skab")
    if sk and {"valve2", "other"} <= set(sets):
        sp = {x["split"].split()[0]: x for x in sk["splits"]}
        v1, ho = sp.get("tuning"), sp["held-out"]
        s = st["skab"]
        append(os.path.join(logdir, "tuning_log.tsv"),
               "date\tcommit\tsettings\tvalve1_f1\tvalve1_far\tvalve1_mar\tnote\n",
               "%s\t%s\t%s\t%s\t%s\t%s\tHELD-OUT run (make eval): valve2+other F1 %.4f FAR %.2f "
               "MAR %.2f%s\n" % (
                   date, summary["commit"],
                   json.dumps({"train": s["train_args"] + " --features " + s["features"],
                               "detector": s["detector"], "replay": s["replay_args"]}, sort_keys=True),
                   fmt(v1 and v1["f1"], 4), fmt(v1 and v1["far"]), fmt(v1 and v1["mar"]),
                   ho["f1"], ho["far"], ho["mar"], "; " + note if note else ""))
    sc = summary.get("scenarios")
    if sc:
        s = st["scenarios"]
        for m, g in sc["aggregate"].items():
            append(os.path.join(logdir, "scenario_log.tsv"), SCEN_HEADER,
                   "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%d/%d\t%s\t%s\t%s\n" % (
                       date, summary["commit"],
                       json.dumps({"detector": s["detector"], "replay": s["replay_args"],
                                   "bootstrap": s["bootstrap_args"] if m == "bootstrap" else None},
                                  sort_keys=True),
                       m, g["fault_detected"], g["fault_events"], g["false_alerts"],
                       fmt(g["false_per_week"]), g["absorbed"], g["absorb_events"],
                       frac(g["accepted_clears"], g["absorb_events"]),
                       frac(g["dq_flagged"], g["dq_events"]),
                       "%d streams%s %s" % (g["streams"], ", seed base %d" % seed_base
                                            if seed_base else "", note)))


def fmt(x, nd=2, pct=False):
    if x is None:
        return "n/a"
    return ("%.*f" % (nd, x)) + ("%" if pct else "")


def frac(k, n):
    return "n/a" if k is None else "%d/%d" % (k, n)


def hms(s):
    if s is None:
        return "n/a"
    return "%d min" % round(s / 60) if s < 5400 else "%.1f h" % (s / 3600)


def markdown(summary):
    L = ["# anomalyd evaluation", "",
         "commit `%s`, %s, %s s wall time" % (summary["commit"], summary["date"], summary["seconds"]), ""]
    sk = summary.get("skab")
    if sk:
        s = summary["settings"]["skab"]
        L += ["## SKAB (published protocol; settings chosen on valve1 only)", "",
              "| split | files | F1 | FAR % | MAR % |", "|---|---|---|---|---|"]
        for x in sk["splits"]:
            b = "**" if x["split"].startswith("held-out") else ""
            L.append("| %s%s%s | %d | %s%s%s | %s%s%s | %s |" % (
                b, x["split"], b, x["files"], b, fmt(x["f1"], 3), b, b, fmt(x["far"], 2), b, fmt(x["mar"], 2)))
        for name, f1, far, mar in PUBLISHED:
            L.append("| %s (published, all 34) | 34 | %.2f | %.1f | %.1f |" % (name, f1, far, mar))
        L += ["", "train: `%s` on `%s`  " % (s["train_args"], s["features"]),
              "detector: `%s` (replay `%s`)" % (json.dumps(s["detector"], sort_keys=True),
                                                s["replay_args"]), "",
              "| file | F1 | FAR % | MAR % | alerts |", "|---|---|---|---|---|"]
        for r in sk["files"]:
            L.append("| %s | %s | %s | %s | %s |" % (r["file"], fmt(r["f1"]), fmt(r["far"], 1),
                                                     fmt(r["mar"], 1), r["alerts"]))
        L.append("")
    sc = summary.get("scenarios")
    if sc:
        agg = sc["aggregate"]
        modes = list(agg)
        L += ["## Scenario suite", "",
              "| | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
        rows = [("streams / stream-days scored", lambda g: "%d / %.1f" % (g["streams"], g["stream_days"])),
                ("fault events alerted (recall)", lambda g: "%s (%s)" % (frac(g["fault_detected"], g["fault_events"]), fmt(g["recall"]))),
                ("event precision", lambda g: fmt(g["precision"])),
                ("detection delay median / max", lambda g: "%s / %s" % (hms(g["delay_median_s"]), hms(g["delay_max_s"]))),
                ("false alerts (total)", lambda g: str(g["false_alerts"])),
                ("false alerts per stream-day", lambda g: fmt(g["false_per_day"])),
                ("false alerts per stream-week", lambda g: fmt(g["false_per_week"], 1)),
                ("absorb events absorbed", lambda g: frac(g["absorbed"], g["absorb_events"])),
                ("accepted clears (reason)", lambda g: frac(g["accepted_clears"], g["absorb_events"])),
                ("faults that end closed as accepted", lambda g: frac(g["fault_accepted"], g["fault_ending"])),
                ("stuck/dropout flagged as data quality", lambda g: frac(g["dq_flagged"], g["dq_events"])),
                ("model alerts on stuck/dropout", lambda g: str(g["alerts_on_dq"]))]
        for label, f in rows:
            L.append("| %s | %s |" % (label, " | ".join(f(agg[m]) for m in modes)))
        L += ["", "| scenario | mode | alerts | false | events |", "|---|---|---|---|---|"]
        for m in modes:
            for r in sc["streams"][m]:
                evs = "; ".join(
                    "%s: %s" % (e["kind"], ("alerted after %s" % hms(e["delay_s"]) if e.get("detected")
                                            else "MISSED" if e["expect"] == "alert"
                                            else "absorbed" if e.get("absorbed")
                                            else "%d false alert(s)" % e["false_alerts"] if e["expect"] == "absorb"
                                            else "dq %s, %d model alert(s)" % (
                                                "n/a" if not r["dq_flags"] else
                                                "flagged" if e.get("dq_flagged") else "missed", e["alerts"])))
                    for e in r["events"]) or "-"
                L.append("| %s | %s | %d | %d | %s |" % (r["stream"], m, r["alerts"], r["false_alerts"], evs))
        L.append("")
    return "\n".join(L)


def index_html(summary, md):
    h = ["<!doctype html><html><head><meta charset='utf-8'><title>anomalyd evaluation</title>",
         "<style>body{font-family:sans-serif;margin:1em;max-width:70em}pre{background:#f4f4f4;"
         "padding:.5em;overflow:auto}</style></head><body><h1>anomalyd evaluation</h1>",
         "<pre>%s</pre>" % html.escape(md)]
    sk = summary.get("skab")
    if sk:
        h.append("<h2>SKAB pages</h2><ul>")
        for r in sk["files"]:
            if "page" in r:
                h.append("<li><a href='%s'>%s</a> F1 %s FAR %s%%</li>" % (
                    r["page"], html.escape(r["file"]), fmt(r["f1"]), fmt(r["far"], 1)))
        h.append("</ul>")
    sc = summary.get("scenarios")
    if sc:
        h.append("<h2>Scenario pages</h2><ul>")
        for m, rs in sc["streams"].items():
            for r in rs:
                if "page" in r:
                    h.append("<li><a href='%s'>%s (%s)</a>: %d alerts, %d false</li>" % (
                        r["page"], html.escape(r["stream"]), m, r["alerts"], r["false_alerts"]))
        h.append("</ul>")
    h.append("</body></html>")
    return "\n".join(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("AD_BUILD", "build"))
    ap.add_argument("--out", default=None, help="output folder (default BUILD/eval)")
    ap.add_argument("--settings", default=os.path.join(HERE, "eval_settings.json"))
    ap.add_argument("--note", default="", help="a note for the log lines of this run")
    ap.add_argument("--scenario-detector", help="candidate scenario detector object (JSON text or "
                    "file) instead of the settings' (choosing settings on the scenario suite; logged)")
    ap.add_argument("--skab", default=os.environ.get("SKAB", os.path.join(ROOT, "..", "..", "shared", "data", "skab")))
    a = ap.parse_args()
    if not os.path.isdir(a.skab):
        a.skab = os.path.join(ROOT, "..", "shared", "data", "skab")
    a.bin = os.environ.get("AD_BIN", os.path.join(a.build, "anomalyd"))
    out = a.out or os.path.join(a.build, "eval")
    if not os.access(a.bin, os.X_OK):
        sys.exit("eval.py: %s not built (run make)" % a.bin)
    with open(a.settings) as fh:
        st = json.load(fh)
    if a.scenario_detector:
        sd = a.scenario_detector
        st["scenarios"]["detector"] = json.loads(open(sd).read() if os.path.exists(sd) else sd)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sets = os.environ.get("EVAL_SETS", "valve1 valve2 other").replace(",", " ").split()
    names = [x for x in os.environ.get("EVAL_SCENARIOS", ",".join(scenarios.SCENARIOS)).replace(" ", ",").split(",") if x]
    modes = [x for x in os.environ.get("EVAL_MODES", "pretrained,bootstrap").split(",") if x]
    plots = os.environ.get("EVAL_PLOTS", "1") != "0"
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("eval.py: python3-matplotlib missing: no picture pages", file=sys.stderr)
            plots = False
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    t0 = time.time()
    summary = {"commit": commit, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "settings": st}
    if sets != ["none"]:
        if not os.path.isdir(a.skab):
            sys.exit("eval.py: SKAB data not found at %s (set SKAB=, or EVAL_SETS=none)" % a.skab)
        bad = [x for x in sets if x not in ("valve1", "valve2", "other")]
        if bad:
            sys.exit("eval.py: EVAL_SETS: unknown folder(s) %s" % " ".join(bad))
        summary["skab"] = skab_part(a, st, out, sets, plots)
    if names != ["none"]:
        bad = [x for x in names if x not in scenarios.SCENARIOS]
        if bad:
            sys.exit("eval.py: EVAL_SCENARIOS: unknown scenario(s) %s (known: %s)"
                     % (" ".join(bad), ",".join(scenarios.SCENARIOS)))
        summary["scenarios"] = scenario_part(a, st, out, names, modes, plots)
    summary["seconds"] = round(time.time() - t0, 1)
    md = markdown(summary)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write(md)
    with open(os.path.join(out, "index.html"), "w") as fh:
        fh.write(index_html(summary, md))
    if os.environ.get("EVAL_LOG", "1") != "0":
        log_runs(summary, sets if sets != ["none"] else [], a.note)
    print()
    print(md)
    print("wrote %s/{summary.md,summary.json,index.html}" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
