#!/usr/bin/python3
"""eval_score.py - event-level scoring of one replay of a scenario stream
(tools/scenarios.py) against its labelled events.

Inputs: the stream's sidecar STREAM.events.json and the JSON lines written
by `anomalyd replay --events`. Used lines:
  {"event":"phase", "phase":"detecting", "ts":..}   start of detection
  {"event":"alert_raised"|"alert_cleared", "ts":.., "alert":{"id":..,
   "start":.., "end":.., "top_features":[..], "kind":.. (optional)},
   "reason":.. (optional, on clears; also read from alert.reason)}
  {"event":"data_quality"|"dq_raised", "ts":.., "feature":..}   (or an alert whose
   kind is "data_quality" with a "feature")
Kinds the replay does not write are reported as n/a, not as failures.

Rules (declared here, applied to every stream and mode alike):
- Only events whose onset is at or after the start of detection count;
  stream-days run from the start of detection to the end of the stream.
- A model alert matches an event when the alert's span [start, end] (end =
  end of stream while open) overlaps [onset, end + GRACE] (GRACE 1 h: the
  windows and the k-of-n rule lag the data). Priority when several match:
  must-alert, then data-quality, then absorb events.
- must-alert event: detected if any alert matches; delay = first matching
  alert start - onset (0 if the alert was already open).
- data-quality event: a model alert on it is neither true nor false
  (reported as "alerts on dq events"); it is flagged if a data-quality flag
  naming its feature (any feature for "*") arrives within
  [onset, onset + 2 x defining_s].
- absorb event, transient (it has an end: spike, noise burst): any alert
  on it is a false alert. Persistent (new normal: level shift, drift,
  regime): one alert is allowed (raise once, then accept) if it has ended
  within ACCEPT_S (12 h) of the onset; every further alert, and that one
  if it lasts longer, is false. Absorbed = no false alert on it.
- Any other alert is a false alert.
- Event precision = alerts matching must-alert events / (those + false).
- Faults accepted: must-alert events with an end whose alert was closed
  as an accepted new normal (regime acceptance took a passing fault for a
  regime). A fault that lasts to the end of the stream (persistent) may be
  accepted by design and is not counted.

  eval_score.py SIDECAR.json EVENTS.jsonl   prints the stream's JSON
"""
import json
import sys

GRACE_MS = 3600 * 1000
ACCEPT_MS = 12 * 3600 * 1000


def read_events(path):
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def parse(lines, end_ms):
    """(detect_start_ms, alerts, dq_flags, reasons_seen)"""
    detect = None
    alerts, order, dq = {}, [], []
    reasons = False
    for e in lines:
        kind = e.get("event")
        if kind == "phase" and e.get("phase") == "detecting" and detect is None:
            detect = e["ts"]
        elif kind == "data_quality" or kind == "dq_raised":
            # replay --events writes a raised condition as "dq_raised" with
            # the monitor's fields (check, feature, since)
            dq.append({"ts": e["ts"], "feature": e.get("feature")})
        elif kind in ("alert_raised", "alert_cleared"):
            a = e.get("alert", {})
            if a.get("kind") == "data_quality" or e.get("kind") == "data_quality":
                if kind == "alert_raised":
                    dq.append({"ts": e["ts"], "feature": a.get("feature", e.get("feature"))})
                continue
            aid = a.get("id")
            if kind == "alert_raised" and aid not in alerts:
                alerts[aid] = {"id": aid, "start": a.get("start", e["ts"]), "end": None,
                               "top": [f.get("name") for f in a.get("top_features", [])],
                               "reason": None}
                order.append(aid)
            elif kind == "alert_cleared" and aid in alerts:
                alerts[aid]["end"] = a.get("end") or e["ts"]
                r = e.get("reason", a.get("reason"))
                if r is not None:
                    alerts[aid]["reason"] = r
                    reasons = True
    res = []
    for aid in order:
        a = alerts[aid]
        a["open"] = a["end"] is None
        if a["end"] is None:
            a["end"] = end_ms
        res.append(a)
    return detect, res, dq, reasons


def overlaps(a, lo, hi):
    return a["start"] <= hi and a["end"] >= lo


def score(side, lines):
    end_ms = side["end_ms"]
    detect, alerts, dq, reasons = parse(lines, end_ms)
    r = {"stream": side["stream"], "detect_start_ms": detect, "alerts": len(alerts),
         "dq_flags": len(dq), "reasons_seen": reasons, "events": []}
    if detect is None:
        r.update(stream_days=0.0, false_alerts=0, note="never reached detection")
        return r
    r["stream_days"] = (end_ms - detect) / 86400000.0
    evs = [dict(e) for e in side["events"] if e["onset_ms"] >= detect]
    r["events_before_detection"] = len(side["events"]) - len(evs)
    for e in evs:
        e["hi"] = (e["end_ms"] if e["end_ms"] is not None else end_ms) + GRACE_MS
        e["alerts"] = []
    prio = {"alert": 0, "data_quality": 1, "absorb": 2}
    false = []
    for a in alerts:
        # a fault is detected by an alert raised for it: one already open
        # since long before the onset (a shift not yet accepted) says nothing
        hit = [e for e in evs if overlaps(a, e["onset_ms"], e["hi"]) and
               (e["expect"] != "alert" or a["start"] >= e["onset_ms"] - GRACE_MS)]
        if not hit:
            false.append(a)
            continue
        hit.sort(key=lambda e: prio[e["expect"]])
        best = hit[0]
        best["alerts"].append(a)
    for e in evs:
        out = {"id": e["id"], "kind": e["kind"], "expect": e["expect"],
               "feature": e["feature"], "alerts": len(e["alerts"])}
        if e["expect"] == "alert":
            out["detected"] = bool(e["alerts"])
            if e["alerts"]:
                out["delay_s"] = max(0, min(a["start"] for a in e["alerts"]) - e["onset_ms"]) / 1000.0
                out["top_features"] = e["alerts"][0]["top"]
            # a fault that ends, closed as an accepted new normal: the
            # detector now takes it (and faults like it) for a regime
            out["ends"] = e["end_ms"] is not None
            out["accepted"] = (e["end_ms"] is not None and
                               any(a["reason"] == "accepted" for a in e["alerts"]))
        elif e["expect"] == "data_quality":
            lo, hi = e["onset_ms"], e["onset_ms"] + 2000 * (e["defining_s"] or 0)
            ok = [f for f in dq if lo <= f["ts"] <= hi
                  and (e["feature"] == "*" or f["feature"] == e["feature"])]
            out["dq_flagged"] = bool(ok)
            if ok:
                out["dq_delay_s"] = (min(f["ts"] for f in ok) - lo) / 1000.0
        else:
            bad = list(e["alerts"])
            if e["end_ms"] is None and bad:
                first = bad[0]
                if not first["open"] and first["end"] - e["onset_ms"] <= ACCEPT_MS:
                    bad = bad[1:]
                # accepted at some point (the first alert, or a recurrence)
                out["accepted_reason"] = ("accepted" if any(a["reason"] == "accepted"
                                                           for a in e["alerts"])
                                          else first["reason"])
            out["false_alerts"] = len(bad)
            out["absorbed"] = not bad
            false += bad
        r["events"].append(out)
    r["false_alerts"] = len(false)
    r["false_alert_starts_ms"] = [a["start"] for a in false]
    r["alerts_on_dq"] = sum(len(e["alerts"]) for e in evs if e["expect"] == "data_quality")
    r["tp_alerts"] = sum(len(e["alerts"]) for e in evs if e["expect"] == "alert")
    return r


def _med(v):
    v = sorted(v)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def aggregate(results):
    """Pooled figures over the streams of one mode."""
    ev = [e for r in results for e in r["events"]]
    faults = [e for e in ev if e["expect"] == "alert"]
    det = [e for e in faults if e["detected"]]
    absorb = [e for e in ev if e["expect"] == "absorb"]
    dqe = [e for e in ev if e["expect"] == "data_quality"]
    dq_seen = any(r["dq_flags"] for r in results)
    reasons_seen = any(r["reasons_seen"] for r in results)
    tp = sum(r.get("tp_alerts", 0) for r in results)
    fa = sum(r["false_alerts"] for r in results)
    days = sum(r["stream_days"] for r in results)
    delays = [e["delay_s"] for e in det]
    agg = {
        "streams": len(results), "stream_days": round(days, 3),
        "fault_events": len(faults), "fault_detected": len(det),
        "fault_ending": sum(1 for e in faults if e.get("ends")),
        "fault_accepted": sum(1 for e in faults if e.get("accepted")),
        "recall": len(det) / len(faults) if faults else None,
        "precision": tp / (tp + fa) if tp + fa else None,
        "alerts": sum(r["alerts"] for r in results), "false_alerts": fa,
        "false_per_day": fa / days if days else None,
        "false_per_week": 7 * fa / days if days else None,
        "delay_median_s": _med(delays), "delay_max_s": max(delays) if delays else None,
        "absorb_events": len(absorb), "absorbed": sum(e["absorbed"] for e in absorb),
        "dq_events": len(dqe),
        "dq_flagged": sum(e["dq_flagged"] for e in dqe) if dq_seen else None,
        "alerts_on_dq": sum(r.get("alerts_on_dq", 0) for r in results),
        "accepted_clears": (sum(1 for e in absorb if e.get("accepted_reason") == "accepted")
                            if reasons_seen else None),
        "events_before_detection": sum(r.get("events_before_detection", 0) for r in results),
    }
    return agg


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as fh:
        side = json.load(fh)
    print(json.dumps(score(side, read_events(sys.argv[2])), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
