#!/usr/bin/python3
"""scenarios.py - the scenario suite: generated pump streams with labelled
events, for `make eval` (bench/eval.py) and by hand.

Every stream is a week of one simulated pump (tools/pumpsim.py: the same
five sensors, physics and 1-minute period as the bundled model
conf/models/pump.safetensors, which was trained on pumps with seeds 1..4;
the suite uses seeds from 21 up), with what real plants do laid over it:

  normal_week    daily seasonality and the weekend dip only (the baseline
                 for false alerts per stream-week)
  level_shift    demand rises by 0.2 for good (a new consumer): absorb
  drift          temperature sensor ageing, +0.6 degC/day: absorb
  load_regimes   from day 2 the drive runs the pump at 80% speed every
                 night (22:00-06:00): absorb
  spikes         isolated one-sample spikes (absorb) and a one-hour spike
                 train on vibration: six one-sample spikes x(1 +- 0.6) at
                 minutes drawn at random within the hour (alert). The
                 count is fixed, not drawn: pumpsim's 'spike' fault (one
                 sample in ten on average) drew one spike in 60 on one
                 seed set, a "train" the same as the single spikes that
                 must be absorbed
  stuck          pressure frozen 6 h, flow frozen 3 h: data quality
  dropout        no samples for 2 h (a gap in the timestamps), flow cells
                 empty for 1 h: data quality
  variance       vibration noise x4 for good from day 3 (looseness):
                 alert; a 20-minute burst of electrical noise on current:
                 absorb
  faults         bearing wear, cavitation, blockage, overheating
                 (pumpsim faults, severity 1): alert
  faults_mild    the same four at severity 0.5: alert
  persistent_fault  a blockage from day 3 to the end: alert
  shift_then_fault  demand +0.2 for good from day 1.5 (absorb), then a mild
                 blockage (severity 0.5) on day 5: alert. Accepting the new
                 level must not blind the detector.
  regime_then_fault the night speed regime from day 1 (absorb), then mild
                 cavitation (severity 0.5) on day 5.4 during the day: alert.
  mild_long_fault  mild cavitation (severity 0.16) for 24 h from day 2.5
                 (Wednesday noon): alert. Its score sits just over the
                 threshold for hours, mostly under the raise level
                 (alert.raise_ratio 1.15): a fault that the raise ratio
                 could leave silent and continual learning could learn.

Each stream is STREAM.csv (time,vibration,current,pressure,temperature,
flow,anomaly; anomaly = 1 inside events that must alert) and
STREAM.events.json:

  {"stream": .., "seed": .., "period_s": 60, "start_ms": .., "end_ms": ..,
   "events": [{"id": .., "kind": .., "expect": "alert"|"absorb"|
               "data_quality", "onset_ms": .., "end_ms": .. (null: lasts
               to the end of the stream), "feature": .. (the sensor, "*"
               for all), "defining_s": .. (data quality: the duration that
               defines the condition; it must be flagged within twice
               that), "note": ..}]}

Same --seed-base, same bytes. Files only: nothing is published.

  scenarios.py --out DIR [--only a,b] [--days 7] [--list]
"""
import argparse
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pumpsim  # noqa: E402

DAY = 86400.0
HOUR = 3600.0


def ev(kind, expect, onset, end, feature=None, defining=None, note=""):
    """One event; onset/end in seconds from the first sample (end None =
    to the end of the stream)."""
    return {"kind": kind, "expect": expect, "onset": onset, "end": end,
            "feature": feature, "defining_s": defining, "note": note}


def spec_normal_week():
    return {"events": []}


def spec_level_shift():
    return {"events": [ev("level_shift", "absorb", 2.5 * DAY, None, "*",
                          note="demand +0.2 for good (new consumer)")],
            "load_offset": (2.5 * DAY, 0.2)}


def spec_drift():
    return {"events": [ev("drift", "absorb", 1.5 * DAY, None, "temperature",
                          note="sensor ageing +0.6 degC/day")],
            "drift": ("temperature", 1.5 * DAY, 0.6 / DAY)}


def spec_load_regimes():
    return {"events": [ev("load_regime", "absorb", 2 * DAY, None, "*",
                          note="80% speed 22:00-06:00 every night from day 2")],
            "night_speed": (2 * DAY, 0.8)}


def spec_spikes():
    singles = [1.6 * DAY, 2.3 * DAY + 7 * HOUR, 5.2 * DAY + 3 * HOUR]
    evs = [ev("spike", "absorb", t, t + 60, "vibration", note="one-sample spike x1.6")
           for t in singles]
    evs.append(ev("spike_train", "alert", 4 * DAY, 4 * DAY + HOUR, "vibration",
                  note="6 of the hour's 60 samples x(1 +- 0.6), at random minutes"))
    return {"events": evs, "single_spikes": [(t, "vibration", 1.6) for t in singles],
            "spike_train": (4 * DAY, HOUR, 6, "vibration", 0.6)}


def spec_stuck():
    return {"events": [
        ev("stuck", "data_quality", 2 * DAY, 2 * DAY + 6 * HOUR, "pressure", 1800,
           "pressure frozen at its last value; defining duration 30 min flat"),
        ev("stuck", "data_quality", 4.5 * DAY, 4.5 * DAY + 3 * HOUR, "flow", 1800,
           "flow frozen at its last value; defining duration 30 min flat")],
        "faults": ["stuck@%ds+%d:1:pressure" % (2 * DAY, 6 * HOUR),
                   "stuck@%ds+%d:1:flow" % (4.5 * DAY, 3 * HOUR)]}


def spec_dropout():
    return {"events": [
        ev("dropout", "data_quality", 2 * DAY, 2 * DAY + 2 * HOUR, "*", 2 * HOUR,
           "no samples for 2 h (gap in the timestamps)"),
        ev("dropout", "data_quality", 4.5 * DAY, 4.5 * DAY + HOUR, "flow", HOUR,
           "flow cells empty for 1 h")],
        "gap": (2 * DAY, 2 * DAY + 2 * HOUR), "blank": ("flow", 4.5 * DAY, 4.5 * DAY + HOUR)}


def spec_variance():
    return {"events": [
        ev("variance", "alert", 3 * DAY, None, "vibration",
           note="vibration noise x4 for good (looseness)"),
        ev("noise_burst", "absorb", 5.5 * DAY, 5.5 * DAY + 1200, "current",
           note="20 min electrical noise on current (sd 3 A)")],
        "noise": [("vibration", 3 * DAY, None, 0.24), ("current", 5.5 * DAY, 5.5 * DAY + 1200, 3.0)]}


def _faults(sev):
    plan = [("bearing", 1.5 * DAY, 12 * HOUR), ("cavitation", 3 * DAY, 6 * HOUR),
            ("blockage", 4.2 * DAY, 6 * HOUR), ("overheat", 5.5 * DAY, 6 * HOUR)]
    return {"events": [ev(k, "alert", t, t + d, "*", note="pumpsim %s, severity %g" % (k, sev))
                       for k, t, d in plan],
            "faults": ["%s@%ds+%d:%g" % (k, t, d, sev) for k, t, d in plan]}


def spec_faults():
    return _faults(1.0)


def spec_faults_mild():
    return _faults(0.5)


def spec_persistent_fault(days=7):
    return {"events": [ev("blockage", "alert", 3 * DAY, None, "*",
                          note="pumpsim blockage to the end of the stream")],
            "faults": ["blockage@%ds+%d:1" % (3 * DAY, days * DAY)]}


def spec_shift_then_fault():
    t = 5 * DAY
    return {"events": [ev("level_shift", "absorb", 1.5 * DAY, None, "*",
                          note="demand +0.2 for good (new consumer)"),
                       ev("blockage", "alert", t, t + 6 * HOUR, "*",
                          note="pumpsim blockage, severity 0.5, after the accepted shift")],
            "load_offset": (1.5 * DAY, 0.2),
            "faults": ["blockage@%ds+%d:0.5" % (t, 6 * HOUR)]}


def spec_regime_then_fault():
    t = 5.4 * DAY
    return {"events": [ev("load_regime", "absorb", 1 * DAY, None, "*",
                          note="80% speed 22:00-06:00 every night from day 1"),
                       ev("cavitation", "alert", t, t + 6 * HOUR, "*",
                          note="pumpsim cavitation, severity 0.5, after the accepted regime")],
            "night_speed": (1 * DAY, 0.8),
            "faults": ["cavitation@%ds+%d:0.5" % (t, 6 * HOUR)]}


def spec_mild_long_fault():
    # a step to a score just over the threshold, held for a day: its
    # severity was chosen (on seed bases 0 and 300 only) so that the bundled
    # model's windows sit mostly between 1.0 and 1.15 x the threshold
    # (alert.raise_ratio in the example configuration): docs/evaluation.md
    t = 2.5 * DAY
    return {"events": [ev("cavitation", "alert", t, t + 24 * HOUR, "*",
                          note="pumpsim cavitation, severity 0.16, for 24 h")],
            "faults": ["cavitation@%ds+%d:0.16" % (t, 24 * HOUR)]}


SCENARIOS = {
    "normal_week": (21, spec_normal_week),
    "level_shift": (22, spec_level_shift),
    "drift": (23, spec_drift),
    "load_regimes": (24, spec_load_regimes),
    "spikes": (25, spec_spikes),
    "stuck": (26, spec_stuck),
    "dropout": (27, spec_dropout),
    "variance": (28, spec_variance),
    "faults": (29, spec_faults),
    "faults_mild": (30, spec_faults_mild),
    "persistent_fault": (31, spec_persistent_fault),
    "shift_then_fault": (32, spec_shift_then_fault),
    "regime_then_fault": (33, spec_regime_then_fault),
    "mild_long_fault": (34, spec_mild_long_fault),
}


def generate(name, out_dir, days=7.0, seed_base=0, start="2026-01-05T00:00:00Z"):
    """Write DIR/NAME.csv and DIR/NAME.events.json; return the sidecar."""
    import datetime as dt
    seed, fn = SCENARIOS[name]
    seed += seed_base
    spec = fn()
    period = 60.0
    t0 = dt.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    faults = [pumpsim.Fault(f) for f in spec.get("faults", [])]
    sim = pumpsim.PumpSim(seed, period, t0, faults)
    nrg = random.Random(seed * 104729 + 3)      # scenario effects only
    n = int(round(days * DAY / period))
    must_alert = [e for e in spec["events"] if e["expect"] == "alert"]
    singles = {int(round(t / period)): (s, f) for t, s, f in spec.get("single_spikes", [])}
    if "spike_train" in spec:
        # its own generator: the other streams' draws stay as they were
        a, d, count, s, amp = spec["spike_train"]
        trng = random.Random(seed * 7919 + 17)
        k0 = int(round(a / period))
        for k in sorted(trng.sample(range(int(round(d / period))), count)):
            singles[k0 + k] = (s, 1.0 + trng.choice((-1, 1)) * amp)
    path = os.path.join(out_dir, name + ".csv")
    with open(path, "w", newline="") as out:
        out.write(",".join(["time"] + pumpsim.SENSORS + ["anomaly"]) + "\n")
        for k in range(n):
            t = k * period
            if "load_offset" in spec:
                sim.load_offset = spec["load_offset"][1] if t >= spec["load_offset"][0] else 0.0
            if "night_speed" in spec:
                hour = (t / HOUR) % 24.0
                night = hour >= 22.0 or hour < 6.0
                sim.speed = spec["night_speed"][1] if t >= spec["night_speed"][0] and night else 1.0
            ts, row, _ = sim.step()
            if "drift" in spec:
                s, since, rate = spec["drift"]
                if t >= since:
                    row[s] += rate * (t - since)
            for s, a, b, sd in spec.get("noise", []):
                if t >= a and (b is None or t < b):
                    row[s] += nrg.gauss(0.0, sd)
            if k in singles:
                s, f = singles[k]
                row[s] *= f
            if "gap" in spec and spec["gap"][0] <= t < spec["gap"][1]:
                continue
            cells = ["%.4f" % row[s] for s in pumpsim.SENSORS]
            if "blank" in spec:
                s, a, b = spec["blank"]
                if a <= t < b:
                    cells[pumpsim.SENSORS.index(s)] = ""
            lab = any(e["onset"] <= t < (e["end"] if e["end"] is not None else math.inf)
                      for e in must_alert)
            out.write(",".join([pumpsim.iso(ts)] + cells + ["1" if lab else "0"]) + "\n")
    side = {"stream": name, "seed": seed, "period_s": period, "days": days,
            "start_ms": int(t0 * 1000), "end_ms": int((t0 + n * period) * 1000),
            "events": []}
    for i, e in enumerate(spec["events"]):
        end = e["end"]
        if end is not None and end > n * period:
            end = None
        side["events"].append({
            "id": "%s-%d" % (name, i + 1), "kind": e["kind"], "expect": e["expect"],
            "onset_ms": int((t0 + e["onset"]) * 1000),
            "end_ms": None if end is None else int((t0 + end) * 1000),
            "feature": e["feature"], "defining_s": e["defining_s"], "note": e["note"]})
    with open(os.path.join(out_dir, name + ".events.json"), "w") as fh:
        json.dump(side, fh, indent=1)
        fh.write("\n")
    return side


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output directory")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--seed-base", type=int, default=0, help="added to every seed")
    ap.add_argument("--list", action="store_true", help="print the scenario names")
    a = ap.parse_args()
    if a.list:
        print("\n".join(SCENARIOS))
        return 0
    if not a.out:
        ap.error("--out DIR is required")
    names = [s for s in a.only.split(",") if s] or list(SCENARIOS)
    bad = [s for s in names if s not in SCENARIOS]
    if bad:
        ap.error("unknown scenario(s) %s (known: %s)" % (", ".join(bad), ", ".join(SCENARIOS)))
    if a.days < 6:
        ap.error("--days must be at least 6 (events are placed up to day 5.5)")
    os.makedirs(a.out, exist_ok=True)
    for s in names:
        side = generate(s, a.out, a.days, a.seed_base)
        print("%s: %d events -> %s" % (s, len(side["events"]), os.path.join(a.out, s + ".csv")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
