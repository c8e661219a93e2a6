#!/usr/bin/python3
"""plot.py - a picture of what the detector saw: turns the per-row CSV of
`anomalyd replay` (and optionally its --events JSON lines and the input
CSV) into a PNG or a self-contained HTML page (the PNG embedded as base64,
with tables of the alerts and the labelled events).

Panels, top to bottom, sharing the time axis:
  - each feature of the input CSV (--input) over time,
  - the anomaly score (raw and smoothed) with the alert threshold, alert
    spans shaded and labelled with their top features,
  - the anomaly probability, when the replay output has a 'probability'
    column,
  - a strip with the ground truth (the input's 'anomaly' column, and the
    events of a scenario sidecar given with --truth: must alert red,
    absorb green, data quality purple), the detector's alerts (orange) and
    its data-quality flags (purple ticks, feature named).

  plot.py REPLAY_OUT.csv [--input DATA.csv] [--events EVENTS.jsonl]
          [--truth STREAM.events.json] [--title T] [--features a,b]
          -o OUT.png|OUT.html

The replay CSV's columns are read by name (row, ts_ms, score, smoothed,
threshold, anomaly, alert_id, phase; probability when present). The input
CSV's rows are matched by the replay's 'row' index; its separator is
detected; its time column and label columns (anomaly, changepoint) are not
plotted as features.
"""
import argparse
import base64
import csv
import datetime as dt
import html
import io
import json
import math
import os
import sys

LABEL_COLS = ("anomaly", "changepoint", "label")
TIME_COLS = ("time", "timestamp", "datetime", "ts", "date")


def fnum(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return math.nan
    return v


def read_replay(path):
    with open(path, newline="") as fh:
        rd = csv.DictReader(fh)
        cols = rd.fieldnames or []
        need = ("row", "ts_ms", "score", "threshold")
        miss = [c for c in need if c not in cols]
        if miss:
            raise ValueError("%s: not a replay output (missing column(s) %s; has %s)"
                             % (path, ", ".join(miss), ", ".join(cols)))
        out = {c: [] for c in cols}
        for r in rd:
            for c in cols:
                out[c].append(r[c])
    return out


def read_input(path):
    with open(path, newline="") as fh:
        head = fh.readline()
        sep = max((";", ",", "\t"), key=head.count)
        fh.seek(0)
        rd = csv.reader(fh, delimiter=sep)
        hdr = next(rd)
        rows = list(rd)
    cols = {h: [fnum(r[i]) if i < len(r) else math.nan for r in rows]
            for i, h in enumerate(hdr) if h.strip().lower() not in TIME_COLS}
    return cols


def read_events(path):
    alerts, dq = {}, []
    with open(path) as fh:
        for line in fh:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            kind = e.get("event")
            a = e.get("alert") or {}
            if kind == "data_quality" or a.get("kind") == "data_quality":
                if kind in ("data_quality", "alert_raised"):
                    dq.append((e["ts"], e.get("feature", a.get("feature", "?"))))
                continue
            if kind == "alert_raised":
                alerts[a.get("id")] = {"id": a.get("id"), "start": a.get("start", e["ts"]),
                                       "end": None, "peak": a.get("peak_score"),
                                       "top": [f.get("name") for f in a.get("top_features", [])],
                                       "reason": None}
            elif kind == "alert_cleared" and a.get("id") in alerts:
                x = alerts[a["id"]]
                x["end"] = a.get("end") or e["ts"]
                x["peak"] = a.get("peak_score", x["peak"])
                x["top"] = [f.get("name") for f in a.get("top_features", [])] or x["top"]
                x["reason"] = e.get("reason", a.get("reason"))
    return list(alerts.values()), dq


def to_dt(ms):
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.timezone.utc).replace(tzinfo=None)


def spans(flags, t):
    """[(t_start, t_end)] of the runs of true flags."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((t[start], t[i - 1]))
            start = None
    if start is not None:
        out.append((t[start], t[-1]))
    return out


def render(a, fmt_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.dates as mdates

    rep = read_replay(a.replay)
    n = len(rep["row"])
    if n == 0:
        raise ValueError("%s: no rows" % a.replay)
    ts = [to_dt(int(float(x))) for x in rep["ts_ms"]]
    rows = [int(x) for x in rep["row"]]
    score = [fnum(x) for x in rep["score"]]
    smooth = [fnum(x) for x in rep.get("smoothed", [])] or None
    thr = [fnum(x) for x in rep["threshold"]]
    prob = [fnum(x) for x in rep["probability"]] if "probability" in rep else None
    feats, truth = {}, None
    if a.input:
        cols = read_input(a.input)
        for lc in LABEL_COLS:
            if lc in cols:
                truth = [cols[lc][r] >= 0.5 if r < len(cols[lc]) else False for r in rows]
                break
        want = [f.strip() for f in a.features.split(",")] if a.features else \
            [c for c in cols if c.strip().lower() not in LABEL_COLS]
        for f in want:
            if f not in cols:
                raise ValueError("%s: no column '%s'" % (a.input, f))
            feats[f] = [cols[f][r] if r < len(cols[f]) else math.nan for r in rows]
    alerts, dq = read_events(a.events) if a.events else ([], [])
    side = None
    if a.truth:
        with open(a.truth) as fh:
            side = json.load(fh)
    t_end = ts[-1]

    nf = len(feats)
    ratios = [1.0] * nf + [2.2] + ([1.2] if prob else []) + [0.7]
    fig, axes = plt.subplots(len(ratios), 1, sharex=True,
                             figsize=(a.width, 0.75 * nf + 3.2 + (0.9 if prob else 0)),
                             gridspec_kw={"height_ratios": ratios, "hspace": 0.12})
    for ax, (name, v) in zip(axes, feats.items()):
        ax.plot(ts, v, lw=0.6, color="#1f4e79")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.25)
    sax = axes[nf]
    sax.plot(ts, score, lw=0.6, color="#555555", label="score")
    if smooth and any(not math.isnan(x) for x in smooth) and smooth != score:
        sax.plot(ts, smooth, lw=0.8, color="#000000", label="smoothed")
    sax.plot(ts, thr, lw=1.0, color="#c00000", ls="--", label="threshold")
    sax.set_ylabel("score", rotation=0, ha="right", va="center", fontsize=8)
    fin = [x for x in score + thr if not math.isnan(x)]
    if fin:
        fin.sort()
        top = max(fin[int(0.995 * (len(fin) - 1))] * 1.6, max(x for x in thr if not math.isnan(x)) * 1.6
                  if any(not math.isnan(x) for x in thr) else 0)
        sax.set_ylim(0, top if top > 0 else None)
    sax.tick_params(labelsize=6)
    sax.grid(alpha=0.25)
    labelled = sorted(alerts, key=lambda x: -((x["end"] or 0) - x["start"] if x["end"] else 1e18))
    labelled = {x["id"] for x in labelled[:a.max_labels]}
    for x in alerts:
        s0, s1 = to_dt(x["start"]), to_dt(x["end"]) if x["end"] else t_end
        for ax in axes[:-1]:
            ax.axvspan(s0, s1, color="#ff9900", alpha=0.18, lw=0)
        if x["id"] in labelled and x["top"]:
            sax.annotate(", ".join(x["top"][:2]), (s0, 1.0), xycoords=("data", "axes fraction"),
                         fontsize=6, rotation=90, va="top", ha="right", color="#8a4b00")
    sax.legend(fontsize=6, loc="upper left", ncol=3, framealpha=0.6)
    k = nf + 1
    if prob:
        pax = axes[k]
        pax.plot(ts, prob, lw=0.7, color="#5b2c83")
        pax.set_ylim(-0.02, 1.02)
        pax.set_ylabel("probability", rotation=0, ha="right", va="center", fontsize=7)
        pax.tick_params(labelsize=6)
        pax.grid(alpha=0.25)
        k += 1
    lax = axes[k]
    lax.set_ylim(0, 3)
    lax.set_yticks([0.5, 1.5, 2.5])
    lax.set_yticklabels(["dq flags", "alerts", "truth"], fontsize=6)
    if truth:
        for s0, s1 in spans(truth, ts):
            lax.axvspan(s0, s1, ymin=2 / 3, ymax=1, color="#d62728", alpha=0.8, lw=0)
            sax.axvspan(s0, s1, ymin=0, ymax=0.04, color="#d62728", alpha=0.9, lw=0)
    colors = {"alert": "#d62728", "absorb": "#2ca02c", "data_quality": "#7b3fa0"}
    if side:
        for e in side.get("events", []):
            s0 = to_dt(e["onset_ms"])
            s1 = to_dt(e["end_ms"]) if e.get("end_ms") else t_end
            if s1 <= s0:
                s1 = s0 + dt.timedelta(minutes=1)
            lax.axvspan(s0, s1, ymin=2 / 3 + 0.03, ymax=0.97, color=colors.get(e["expect"], "k"),
                        alpha=0.55, lw=0)
            lax.annotate("%s%s" % (e["kind"], "" if e.get("feature") in (None, "*") else ":" + e["feature"]),
                         (s0, 2.95), fontsize=5.5, va="top", color="k")
    for x in alerts:
        s0, s1 = to_dt(x["start"]), to_dt(x["end"]) if x["end"] else t_end
        lax.axvspan(s0, s1, ymin=1 / 3 + 0.03, ymax=2 / 3 - 0.03, color="#ff9900", alpha=0.9, lw=0)
    for t, f in dq:
        lax.axvline(to_dt(t), ymin=0.03, ymax=1 / 3 - 0.03, color="#7b3fa0", lw=1)
        lax.annotate(str(f), (to_dt(t), 0.1), fontsize=5.5, color="#7b3fa0")
    lax.tick_params(labelsize=6)
    loc = mdates.AutoDateLocator()
    lax.xaxis.set_major_locator(loc)
    lax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    title = a.title or os.path.basename(a.replay)
    sub = "%d alerts" % len(alerts) + (", %d data-quality flags" % len(dq) if dq else "")
    axes[0].set_title("%s  (%s)" % (title, sub), fontsize=9)
    fig.align_ylabels(axes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=a.dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue(), alerts, dq, side


def ms_iso(ms):
    return to_dt(ms).strftime("%Y-%m-%d %H:%M:%S") if ms else "open"


def page(title, png, alerts, dq, side, extra=""):
    b64 = base64.b64encode(png).decode()
    h = ["<!doctype html><html><head><meta charset='utf-8'><title>%s</title>" % html.escape(title),
         "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;"
         "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
         "<h2>%s</h2>" % html.escape(title), extra,
         "<img style='max-width:100%%' alt='%s' src='data:image/png;base64,%s'>" % (html.escape(title), b64)]
    if side:
        h.append("<h3>Labelled events</h3><table><tr><th>id</th><th>kind</th><th>expect</th>"
                 "<th>feature</th><th>onset</th><th>end</th><th>note</th></tr>")
        for e in side.get("events", []):
            h.append("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(str(x)) for x in (
                e["id"], e["kind"], e["expect"], e.get("feature"), ms_iso(e["onset_ms"]),
                ms_iso(e.get("end_ms")), e.get("note", ""))))
        h.append("</table>")
    h.append("<h3>Alerts (%d)</h3><table><tr><th>id</th><th>start</th><th>end</th><th>peak</th>"
             "<th>top features</th><th>reason</th></tr>" % len(alerts))
    for x in alerts:
        h.append("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(str(v)) for v in (
            x["id"], ms_iso(x["start"]), ms_iso(x["end"]),
            "%.4g" % x["peak"] if x["peak"] is not None else "", ", ".join(x["top"]),
            x["reason"] or "")))
    h.append("</table>")
    if dq:
        h.append("<h3>Data-quality flags (%d)</h3><ul>%s</ul>" % (len(dq), "".join(
            "<li>%s %s</li>" % (ms_iso(t), html.escape(str(f))) for t, f in dq)))
    h.append("</body></html>")
    return "\n".join(h)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("replay", help="per-row CSV written by anomalyd replay")
    ap.add_argument("-o", "--out", required=True, help="OUT.png or OUT.html")
    ap.add_argument("--input", help="the CSV that was replayed (features, labels)")
    ap.add_argument("--events", help="JSON lines from replay --events")
    ap.add_argument("--truth", help="scenario sidecar STREAM.events.json")
    ap.add_argument("--features", help="comma-separated features to plot (default all)")
    ap.add_argument("--title")
    ap.add_argument("--html-extra", default="", help="HTML inserted above the picture")
    ap.add_argument("--width", type=float, default=11.0, help="inches (11)")
    ap.add_argument("--dpi", type=int, default=90)
    ap.add_argument("--max-labels", type=int, default=12, help="alerts labelled (longest first)")
    a = ap.parse_args(argv)
    try:
        png, alerts, dq, side = render(a, True)
    except (OSError, ValueError, KeyError) as e:
        print("plot.py: %s" % e, file=sys.stderr)
        return 1
    if a.out.endswith(".html"):
        with open(a.out, "w") as fh:
            fh.write(page(a.title or os.path.basename(a.replay), png, alerts, dq, side, a.html_extra))
    else:
        with open(a.out, "wb") as fh:
            fh.write(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
