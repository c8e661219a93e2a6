#!/usr/bin/python3
"""pumpsim.py - a simulator of a multi-sensor centrifugal pump, for training
data, tests and the demo.

Sensors (one row per sample period):
  vibration    mm/s RMS at the bearing housing
  current      A, motor current
  pressure     bar, discharge pressure
  temperature  degC, motor winding temperature
  flow         m3/h, discharge flow

Normal behaviour: the demand (load, 0..1) follows a daily cycle (low at
night, morning and evening peaks, weekday/weekend difference) plus a slow
random walk; flow follows the load, pressure follows the pump curve
(head falls with flow squared), current follows hydraulic power, vibration
grows with speed, and the temperature lags the electrical losses (first
order, 40 min) on top of a daily ambient cycle. Every sensor has
measurement noise.

Faults (--fault KIND@START+DURATION[:SEVERITY], START/DURATION like 3d,
6h, 90m, 45s or plain seconds, measured from the first sample; SEVERITY
scales the effect, default 1):
  bearing     bearing wear: vibration rises progressively (x3 at the end),
              slightly warmer
  cavitation  suction-side cavitation: pressure drops 25% and gets noisy,
              vibration noise, flow drops a little
  blockage    discharge blockage: flow drops by 60%, pressure above the pump
              curve, recirculation (current and vibration higher than the
              low flow would give)
  overheat    cooling failure: temperature ramps up to +25 degC
  stuck       a sensor (SENSOR, default pressure) freezes at its last value:
              stuck@2d+6h:1:pressure
  spike       isolated spikes on a sensor (default vibration), about one
              every 10 samples during the interval
The same --seed gives the same output, byte for byte; faults do not change
the random stream of the normal behaviour (they use their own generator),
so a faulty run equals the normal run up to the first fault (after a fault,
state such as the winding temperature relaxes back over an hour or so).

Output:
  CSV (default, to --out or stdout): header
  "time,vibration,current,pressure,temperature,flow[,anomaly]" with time in
  ISO 8601 UTC; --label adds the 0/1 anomaly column (1 inside a fault).
  MQTT (--mqtt HOST:PORT, paho): for each of --devices pumps (pump1..pumpN,
  independent seeds), one JSON message per sample to
  TOPIC (default "sensors/{device}/pump"):
      {"ts": <unix ms>, "vibration": .., "current": .., ...}
  paced at --speed samples per second per device (0 = as fast as possible);
  "ts" is the publish time (--clock wall, default) or the simulated time
  (--clock sim); fault times count in samples x --period either way.
  Faults apply to the devices listed by --fault-devices (default pump1);
  --label adds "anomaly": 0/1 to each message (ground truth for the demo).

Examples:
  pumpsim.py --seed 1 --days 14 --out normal.csv
  pumpsim.py --seed 2 --days 2 --fault bearing@1d+12h --label --out bearing.csv
  pumpsim.py --mqtt 127.0.0.1:1883 --devices 3 --speed 10 --fault cavitation@10m+5m
"""
import argparse
import datetime as dt
import json
import math
import random
import sys
import time

SENSORS = ["vibration", "current", "pressure", "temperature", "flow"]
FAULTS = ["bearing", "cavitation", "blockage", "overheat", "stuck", "spike"]


def parse_duration(s):
    s = s.strip()
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if s and s[-1] in mult:
        return float(s[:-1]) * mult[s[-1]]
    return float(s)


class Fault:
    """KIND@START+DURATION[:SEVERITY[:SENSOR]]"""

    def __init__(self, spec):
        try:
            kind, rest = spec.split("@", 1)
            parts = rest.split(":")
            start, dur = parts[0].split("+", 1)
            self.kind = kind.strip()
            self.start = parse_duration(start)
            self.duration = parse_duration(dur)
            self.severity = float(parts[1]) if len(parts) > 1 and parts[1] else 1.0
            default_sensor = "vibration" if self.kind == "spike" else "pressure"
            self.sensor = parts[2] if len(parts) > 2 else default_sensor
        except (ValueError, IndexError):
            raise ValueError("--fault '%s': expected KIND@START+DURATION[:SEVERITY[:SENSOR]]"
                             % spec)
        if self.kind not in FAULTS:
            raise ValueError("--fault '%s': unknown kind '%s' (%s)"
                             % (spec, self.kind, ", ".join(FAULTS)))
        if self.sensor not in SENSORS:
            raise ValueError("--fault '%s': unknown sensor '%s' (%s)"
                             % (spec, self.sensor, ", ".join(SENSORS)))
        if self.duration <= 0:
            raise ValueError("--fault '%s': duration must be positive" % spec)

    def progress(self, t):
        """None outside the fault, else 0..1 through it."""
        if t < self.start or t >= self.start + self.duration:
            return None
        return (t - self.start) / self.duration


class PumpSim:
    """One pump. step() returns (time_s, {sensor: value}, anomalous)."""

    def __init__(self, seed=1, period=60.0, start=0.0, faults=()):
        self.rng = random.Random(seed)
        self.frng = random.Random(seed * 7919 + 17)   # faults only
        self.period = float(period)
        self.t0 = float(start)
        self.k = 0
        self.faults = list(faults)
        # per-pump constants (manufacturing spread)
        r = self.rng
        self.q_nom = 120.0 * r.uniform(0.97, 1.03)      # m3/h
        self.p_shut = 6.0 * r.uniform(0.97, 1.03)       # bar at zero flow
        self.i0 = 18.0 * r.uniform(0.97, 1.03)          # A, no-load current
        self.v0 = 1.6 * r.uniform(0.95, 1.05)           # mm/s
        self.walk = 0.0
        self.temp = None
        self.stuck = {}
        # operating point, changed by callers (tools/scenarios.py) to model
        # benign process changes: demand offset added to the load (a new
        # consumer), and pump speed as a fraction of nominal (a variable
        # speed drive; affinity laws: flow ~ n, head ~ n^2). The defaults
        # leave every value bit for bit as without them.
        self.load_offset = 0.0
        self.speed = 1.0

    def load(self, t):
        """Demand 0..1: daily cycle, weekend, slow random walk."""
        hour = (t / 3600.0) % 24.0
        day = int(t // 86400.0) % 7

        def bump(c, w):
            # distance on the 24 h circle: the cycle joins at midnight
            dh = (hour - c + 12.0) % 24.0 - 12.0
            return math.exp(-(dh * dh) / w)
        base = 0.45 + 0.25 * bump(8.0, 6.0) + 0.3 * bump(19.0, 8.0) - 0.2 * bump(3.0, 10.0)
        if day >= 5:
            base *= 0.8
        self.walk += self.rng.gauss(0.0, 0.004) - 0.01 * self.walk
        return min(1.0, max(0.15, base + self.walk + self.load_offset))

    def step(self):
        r = self.rng
        t = self.k * self.period
        self.k += 1
        L = self.load(t)
        hour = (t / 3600.0) % 24.0
        ambient = 22.0 + 4.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
        n = self.speed
        flow = self.q_nom * L * n
        pressure = self.p_shut * n * n * (1.0 - 0.35 * (flow / (self.q_nom * n)) ** 2)
        current = self.i0 + 0.045 * flow * pressure
        vib = self.v0 * (0.6 + 0.5 * L) * n
        vib_noise = 0.06
        p_noise = 0.03
        temp_extra = 0.0
        anomalous = False
        for f in self.faults:
            p = f.progress(t)
            if p is None:
                continue
            anomalous = True
            s = f.severity
            if f.kind == "bearing":
                vib *= 1.0 + 2.0 * s * p
                vib_noise *= 1.0 + 2.0 * s * p
                temp_extra += 3.0 * s * p
            elif f.kind == "cavitation":
                pressure *= 1.0 - 0.25 * s
                p_noise += 0.25 * s
                vib_noise += 0.5 * s
                flow *= 1.0 - 0.08 * s
            elif f.kind == "blockage":
                # far left of the best efficiency point: less flow at a
                # higher head than the curve, recirculation losses (current,
                # vibration) instead of the saving a low demand would give
                flow *= 1.0 - 0.6 * s
                pressure = self.p_shut * (1.0 - 0.35 * (flow / self.q_nom) ** 2) * (1.0 + 0.12 * s)
                current = self.i0 + 0.045 * flow * pressure + 4.0 * s
                vib *= 1.0 + 0.8 * s
            elif f.kind == "overheat":
                temp_extra += 25.0 * s * min(1.0, 3.0 * p)
        # thermal lag of the winding temperature (tau 40 min)
        target = ambient + 0.035 * current ** 1.5 + temp_extra
        a = 1.0 - math.exp(-self.period / 2400.0)
        self.temp = target if self.temp is None else self.temp + a * (target - self.temp)
        row = {
            "vibration": vib + r.gauss(0.0, vib_noise) + 0.1 * math.sin(t / 300.0),
            "current": current + r.gauss(0.0, 0.25),
            "pressure": pressure + r.gauss(0.0, p_noise),
            "temperature": self.temp + r.gauss(0.0, 0.15),
            "flow": flow + r.gauss(0.0, 1.2),
        }
        # sensor faults act on the measured values
        for f in self.faults:
            p = f.progress(t)
            if f.kind == "stuck":
                if p is None:
                    self.stuck.pop(id(f), None)
                else:
                    if id(f) not in self.stuck:
                        self.stuck[id(f)] = row[f.sensor]
                    row[f.sensor] = self.stuck[id(f)]
            elif f.kind == "spike" and p is not None:
                if self.frng.random() < 0.1:
                    row[f.sensor] *= 1.0 + self.frng.choice((-1, 1)) * 0.6 * f.severity
        return self.t0 + t, row, anomalous


def iso(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(args, faults):
    sim = PumpSim(args.seed, args.period, args.start_ts, faults)
    n = args.rows if args.rows else int(round(args.days * 86400.0 / args.period))
    out = open(args.out, "w", newline="") if args.out and args.out != "-" else sys.stdout
    hdr = ["time"] + SENSORS + (["anomaly"] if args.label else [])
    out.write(",".join(hdr) + "\n")
    for _ in range(n):
        ts, row, anom = sim.step()
        vals = ["%.4f" % row[s] for s in SENSORS]
        line = [iso(ts)] + vals + (["1" if anom else "0"] if args.label else [])
        out.write(",".join(line) + "\n")
    if out is not sys.stdout:
        out.close()


def run_mqtt(args, faults):
    import paho.mqtt.client as mqtt
    host, _, port = args.mqtt.rpartition(":")
    if not host:
        host, port = args.mqtt, "1883"
    client = mqtt.Client(client_id="pumpsim-%d" % args.seed)
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    fault_devs = set(args.fault_devices.split(",")) if args.fault_devices else {"pump1"}
    devices = ["pump%d" % (i + 1) for i in range(args.devices)]
    start = args.start_ts if args.start_given else time.time()
    sims = {d: PumpSim(args.seed + 1000 * i, args.period, start,
                       faults if d in fault_devs else [])
            for i, d in enumerate(devices)}
    n = args.rows if args.rows else (int(round(args.days * 86400.0 / args.period))
                                     if args.days else 0)
    k = 0
    t_wall = time.monotonic()
    try:
        while n == 0 or k < n:
            for d in devices:
                ts, row, anom = sims[d].step()
                if args.clock == "wall":
                    ts = time.time()
                msg = {"ts": int(round(ts * 1000))}
                msg.update({s: round(row[s], 4) for s in SENSORS})
                if args.label:
                    msg["anomaly"] = int(anom)
                client.publish(args.topic.replace("{device}", d), json.dumps(msg),
                               qos=args.qos)
            k += 1
            if args.speed > 0:
                t_wall += 1.0 / args.speed
                delay = t_wall - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    except KeyboardInterrupt:
        pass
    client.loop_stop()
    client.disconnect()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="see the module docstring for details")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--period", type=float, default=60.0, help="seconds per sample (60)")
    ap.add_argument("--days", type=float, default=14.0, help="length in days (14)")
    ap.add_argument("--rows", type=int, default=0, help="length in samples (overrides --days)")
    ap.add_argument("--start", default="2026-01-05T00:00:00Z",
                    help="time of the first sample, ISO 8601 UTC")
    ap.add_argument("--fault", action="append", default=[],
                    help="KIND@START+DURATION[:SEVERITY[:SENSOR]] (repeatable)")
    ap.add_argument("--label", action="store_true", help="add the 0/1 anomaly column")
    ap.add_argument("--out", default="-", help="CSV file (default stdout)")
    ap.add_argument("--mqtt", help="publish to HOST:PORT instead of writing CSV")
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--fault-devices", default="", help="devices with the faults (pump1)")
    ap.add_argument("--topic", default="sensors/{device}/pump")
    ap.add_argument("--speed", type=float, default=1.0,
                    help="MQTT: samples per second per device (0 = flat out)")
    ap.add_argument("--qos", type=int, default=0, choices=(0, 1))
    ap.add_argument("--clock", default="wall", choices=("wall", "sim"),
                    help="MQTT timestamps: publish time (wall, default) or the "
                         "simulated time (sim: starts at --start or now and "
                         "advances --period per sample)")
    args = ap.parse_args()
    try:
        faults = [Fault(s) for s in args.fault]
        args.start_given = "--start" in sys.argv
        st = args.start.replace("Z", "+00:00")
        args.start_ts = dt.datetime.fromisoformat(st).timestamp()
    except ValueError as e:
        ap.error(str(e))
    if args.period <= 0 or args.rows < 0 or args.days < 0:
        ap.error("--period, --rows and --days must be positive")
    if args.mqtt:
        run_mqtt(args, faults)
    else:
        write_csv(args, faults)


if __name__ == "__main__":
    main()
