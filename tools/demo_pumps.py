#!/usr/bin/python3
"""demo_pumps.py - the pump fleet of `make demo` (tools/demo.sh): several
simulated pumps (tools/pumpsim.py's PumpSim, one sample per simulated minute)
published on MQTT in accelerated real time, with faults injected at random
moments, each announced on stdout when it starts and ends.

  demo_pumps.py --mqtt HOST:PORT [--pumps 4] [--speed 20] [--seed S]
                [--faults-after N] [--no-faults] [--topic sensors/{device}/pump]
                [--events-topic TOPIC]

--speed is samples per second per pump, i.e. simulated minutes per real
second. Messages are the pumpsim JSON rows {"ts": unix ms, "vibration": ...}
with "ts" the simulated time: it starts a year before the wall clock and
advances one minute per sample, so data times (and alert durations) are
pump time. It starts in the past because it runs faster than the wall clock:
anomalyd rejects timestamps more than rows.max_future_ms (10 min) ahead of
their arrival, and a year of pump time lasts over 7 hours of demo.

Fault schedule (from --seed; the normal behaviour of each pump does not
depend on it): no fault before sample --faults-after (the daemon's
calibration window count plus a margin: a fault during calibration would be
learnt as normal). One pump picked at random gets its first fault within the
first 60 samples after that, the other pumps within the next 15 simulated
hours; after each fault a pump stays healthy 5 to 15 simulated hours. Kinds
are the faults the bundled model detects well (bearing, cavitation, blockage,
overheat), 30 to 90 simulated minutes long. --no-faults: healthy pumps only.

Lines on stdout (flushed one by one):
  HH:MM:SS  START             pump1, pump2 publishing on sensors/<pump>/pump, ...
  HH:MM:SS  FAULT      pump3  cavitation injected, lasts 45 min (pump time)
  HH:MM:SS  FAULT END  pump3  cavitation over, the pump is healthy again
--events-topic TOPIC: each of these events also published on TOPIC (QoS 1,
not retained), as {"event": "fault"|"fault_end", "id": "pump3-2", "pump": ...,
"kind": ..., "minutes": ..., "ts_ms": ...}, and {"event": "stop", "ts_ms":
...} when it stops, so a subscriber (tools/alertwatch.py --faults TOPIC) can
tell which faults were alerted; "ts_ms" is the pump time (unix ms) of the
fault's first sample, of its first healthy sample after it, and of the
first sample not sent.
SIGTERM/SIGINT stop it cleanly (disconnect, exit 0).
"""
import argparse
import importlib.util
import json
import os
import random
import signal
import sys
import time

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ["bearing", "cavitation", "blockage", "overheat"]
PERIOD = 60.0


def load_pumpsim():
    spec = importlib.util.spec_from_file_location("pumpsim", os.path.join(HERE, "pumpsim.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def schedule(rng, pumps, first, horizon):
    """{pump: [(start_sample, duration_samples, kind), ...]} up to horizon."""
    out = {p: [] for p in pumps}
    lead = rng.choice(pumps)
    for p in pumps:
        s = first + (rng.randint(0, 60) if p == lead else rng.randint(60, 900))
        while s < horizon:
            d = rng.randint(30, 90)
            out[p].append((s, d, rng.choice(KINDS)))
            s += d + rng.randint(300, 900)
    return out


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop()


def say(kind, pump, text):
    sys.stdout.write("%s  %-9s  %-6s %s\n" % (time.strftime("%H:%M:%S"), kind, pump, text))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mqtt", required=True, help="broker HOST:PORT")
    ap.add_argument("--pumps", type=int, default=4)
    ap.add_argument("--speed", type=float, default=20.0,
                    help="samples (simulated minutes) per second per pump")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults-after", type=int, default=260,
                    help="first sample at which a fault may start")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--topic", default="sensors/{device}/pump")
    ap.add_argument("--events-topic", default=None,
                    help="also publish fault starts, ends and the stop here (JSON)")
    a = ap.parse_args()
    if a.pumps < 1 or a.speed <= 0:
        ap.error("--pumps and --speed must be positive")

    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_signal)    # else: demo.sh stops us
    ps = load_pumpsim()
    pumps = ["pump%d" % (i + 1) for i in range(a.pumps)]
    # 30 simulated days of schedule: far more than anyone watches
    plan = {} if a.no_faults else schedule(random.Random(a.seed), pumps,
                                           a.faults_after, 30 * 1440)
    start = time.time() - 365 * 86400     # pump time stays behind the wall clock
    sims = {}
    for i, p in enumerate(pumps):
        faults = [ps.Fault("%s@%ds+%ds" % (kind, s * PERIOD, d * PERIOD))
                  for s, d, kind in plan.get(p, [])]
        sims[p] = ps.PumpSim(a.seed * 100 + i, PERIOD, start, faults)
    events = {}  # sample -> [(line kind, pump, text, event message), ...]
    def ts_ms(k):   # pump time of sample k (PumpSim: start + k periods)
        return int(round((start + k * PERIOD) * 1000))
    for p, fl in plan.items():
        for i, (s, d, kind) in enumerate(fl):
            ev = {"id": "%s-%d" % (p, i + 1), "pump": p, "kind": kind, "minutes": d}
            events.setdefault(s, []).append(("FAULT", p, "%s injected, lasts %d min (pump time)"
                                             % (kind, d), dict(ev, event="fault", ts_ms=ts_ms(s))))
            events.setdefault(s + d, []).append(("FAULT END", p, "%s over, the pump is healthy"
                                                 " again" % kind,
                                                 dict(ev, event="fault_end", ts_ms=ts_ms(s + d))))

    k = 0           # samples sent per pump
    host, _, port = a.mqtt.rpartition(":")
    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="demo-pumps")
    except AttributeError:
        c = mqtt.Client(client_id="demo-pumps")
    try:
        c.connect(host or "127.0.0.1", int(port), keepalive=30)
        c.loop_start()
        say("START", "", "%s publishing on %s, one sample per pump-minute"
            % (", ".join(pumps) if len(pumps) <= 4 else "%s..%s" % (pumps[0], pumps[-1]),
               a.topic.replace("{device}", "<pump>")))
        t_next = time.monotonic()
        while True:
            for kind, p, text, ev in events.pop(k, []):
                say(kind, p, text)
                if a.events_topic:
                    c.publish(a.events_topic, json.dumps(ev), qos=1)
            for p in pumps:
                ts, row, _ = sims[p].step()
                msg = {"ts": int(round(ts * 1000))}
                msg.update({s: round(row[s], 4) for s in ps.SENSORS})
                c.publish(a.topic.replace("{device}", p), json.dumps(msg), qos=0)
            k += 1
            t_next += 1.0 / a.speed
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except Stop:
        pass
    except OSError as e:
        sys.stderr.write("demo_pumps: broker %s: %s\n" % (a.mqtt, e))
        return 1
    if a.events_topic:
        # sent before the disconnect (the network thread still runs), waited
        # for up to 2 s by polling: paho-mqtt 1.5's wait_for_publish() takes
        # no timeout, and without one it could wait for ever
        try:
            info = c.publish(a.events_topic, json.dumps({"event": "stop", "ts_ms": ts_ms(k)}),
                             qos=1)
            end = time.monotonic() + 2
            while not info.is_published() and time.monotonic() < end:
                time.sleep(0.02)
        except (RuntimeError, ValueError):
            pass
    c.loop_stop()
    c.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
