#!/usr/bin/python3
"""soak.py - the daemon over weeks of data time: does anything grow? (driven
by bench/bench_soak.sh, which starts the broker and the daemon).

  soak.py --port P --pid PID --state-dir DIR [--streams S] [--days D]

S simulated pumps (tools/pumpsim.py, the bundled model's plant) publish D
days of data, one sample per simulated minute, day by day: each day's rows
(1440 per stream) go out at full speed, then the publisher waits until the
daemon's statistics count every sample (feature value) of them and no
window is left to score (windows_scored the same in two statistics in a
row), and then until no continual-learning fine-tune is running on the
workers (stats "adapt_running" 0, at most 300 s): the daemon is never more
than a day behind and each reading is taken at a known point in data time,
with no backlog held and no fine-tune's buffers in the heap. The
pumps carry what a plant does over weeks: faults (bearing wear, cavitation,
blockage, overheating, a spike train; one every 2.5 days on a rotating pump)
and, from day 9 on one pump, a lasting rise in demand that continual
learning and regime acceptance have to absorb. The daemon runs the example
configuration (conf/anomalyd.json): continual learning on, state
directory kept.

After each day it reads from /proc: resident memory (VmRSS), open file
descriptors, threads; the state directory's size; and from the daemon's
statistics the heap in use and the heap the allocator holds free (glibc,
"memory"), the alerts, trainings and continual-learning jobs so far. The
heap in use is what the daemon keeps; the resident memory adds what the
allocator keeps after freeing (arenas of the worker threads) and moves by
megabytes from day to day. It
prints one line per day and a summary: growth of each from the end of the
warm-up (day W = D/4, when every stream has calibrated and been through a
first fine-tune) to the end, as a ratio and per week of data time, the
least-squares trend of memory, heap and state over the second half, and
the samples per second the daemon kept up with (ratio to its first day).
Nothing here is a pass/fail test: the figures are the result; a resident
memory that keeps rising after warm-up, or descriptors or threads that
change at all, are the findings to look for.
"""
import argparse
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import pumpsim  # noqa: E402

DAY_ROWS = 1440
START_S = 1767571200.0          # 2026-01-05T00:00:00Z, a Monday


def client(cid=""):
    try:
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=cid)
    except AttributeError:
        return mqtt.Client(client_id=cid)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


def dir_bytes(d):
    n = files = 0
    for root, _, names in os.walk(d):
        for x in names:
            try:
                n += os.path.getsize(os.path.join(root, x))
                files += 1
            except OSError:
                pass
    return n, files


def faults_for(dev, days):
    """One fault every 2.5 days, on pump (k mod S); severity 1, 1-3 h."""
    kinds = ["bearing", "cavitation", "blockage", "overheat", "spike"]
    out, k, t = [], 0, 1.6
    while t < days - 0.5:
        if k % dev[1] == dev[0]:
            kind = kinds[k % len(kinds)]
            sensor = ":vibration" if kind == "spike" else ""
            out.append(pumpsim.Fault("%s@%dh+%dh:1%s" % (kind, int(t * 24), 1 + k % 3, sensor)))
        k += 1
        t += 2.5
    return out


class Stats:
    def __init__(self):
        self.last = None
        self.prev = None
        self.seq = 0
        self.cv = threading.Condition()

    def on_message(self, cl, ud, msg):
        if msg.topic == "anomalyd/stats":
            with self.cv:
                self.prev = self.last
                self.last = json.loads(msg.payload)
                self.seq += 1
                self.cv.notify_all()

    def wait_idle(self, timeout):
        """The statistics once no fine-tune is out (adapt_running 0 in a
        statistics newer than the call), or the newest at the timeout."""
        end = time.time() + timeout
        with self.cv:
            seq = self.seq
            while not (self.seq > seq and self.last.get("adapt_running", 0) == 0):
                left = end - time.time()
                if left <= 0:
                    break
                self.cv.wait(left)
            return self.last

    def wait_samples(self, n, timeout):
        """The statistics once the daemon has parsed n samples (feature
        values: a message of the simulated pump carries len(SENSORS)) and
        scored every window they made: two statistics in a row with the
        same windows_scored after the last sample was counted."""
        end = time.time() + timeout
        with self.cv:
            while not (self.last and self.last.get("samples", 0) >= n):
                left = end - time.time()
                if left <= 0:
                    return None
                self.cv.wait(left)
            seq = self.seq
            while not (self.seq > seq and self.prev and
                       self.prev.get("windows_scored") == self.last.get("windows_scored")):
                left = end - time.time()
                if left <= 0:
                    return None
                self.cv.wait(left)
            return self.last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--days", type=int, default=28)
    a = ap.parse_args()
    S, D = a.streams, a.days
    W = max(2, D // 4)

    st = Stats()
    sub = client("soak-stats")
    sub.on_message = st.on_message
    sub.connect("127.0.0.1", a.port)
    sub.subscribe("anomalyd/stats", 0)
    sub.loop_start()
    pub = client("soak-pub")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", a.port)
    pub.loop_start()

    sims = []
    for i in range(S):
        f = faults_for((i, S), D)
        sims.append(pumpsim.PumpSim(1000 + 7 * i, 60.0, START_S, f))
    shift_from = 9 * DAY_ROWS
    topics = ["sensors/soak%d/pump" % (i + 1) for i in range(S)]
    print("soak: %d pumps, %d days of data (%d samples each), warm-up %d days, "
          "daemon pid %d" % (S, D, D * DAY_ROWS, W, a.pid))
    print("%4s %9s %9s %9s %9s %5s %7s %6s %9s %6s %6s %5s %8s" %
          ("day", "rss_kb", "hwm_kb", "heap_kb", "hfree_kb", "fds", "threads", "files",
           "state_kb", "alerts", "active", "jobs", "smp/s"))
    rows, sent, t_all = [], 0, time.time()
    for day in range(D):
        t0 = time.time()
        infos = []
        for r in range(DAY_ROWS):
            k = day * DAY_ROWS + r
            for i, sim in enumerate(sims):
                if i == 0 and k == shift_from:       # demand +0.2 for good
                    sim.load_offset = 0.2
                ts, row, _ = sim.step()
                msg = {"ts": int(round(ts * 1000))}
                msg.update({s: round(row[s], 4) for s in pumpsim.SENSORS})
                infos.append(pub.publish(topics[i], json.dumps(msg), qos=1))
                sent += 1
            if len(infos) > 4000:
                for x in infos:
                    x.wait_for_publish(60)
                infos = []
        for x in infos:
            x.wait_for_publish(60)
        s = st.wait_samples(sent * len(pumpsim.SENSORS), 600)
        if s is None:
            print("soak: the daemon did not count %d samples within 600 s (stats: %s)" %
                  (sent * len(pumpsim.SENSORS), st.last and st.last.get("samples")))
            return 1
        dt = time.time() - t0
        s = st.wait_idle(300)
        try:
            p = proc_status(a.pid)
        except OSError:
            print("soak: the daemon (pid %d) is gone on day %d" % (a.pid, day + 1))
            return 1
        b, nfiles = dir_bytes(a.state_dir)
        mem = s.get("memory", {})
        r = dict(day=day + 1, rss=p["VmRSS"], hwm=p["VmHWM"], fds=p["fds"],
                 heap=mem.get("heap_kb", -1), hfree=mem.get("heap_free_kb", -1),
                 threads=p["Threads"], files=nfiles, state_kb=b / 1024.0,
                 alerts=s.get("alerts_raised", 0), active=s.get("alerts_active", 0),
                 jobs=s.get("adapt_jobs", 0), rate=S * DAY_ROWS / dt)
        rows.append(r)
        print("%4d %9d %9d %9d %9d %5d %7d %6d %9.0f %6d %6d %5d %8.0f" %
              (r["day"], r["rss"], r["hwm"], r["heap"], r["hfree"], r["fds"],
               r["threads"], r["files"],
               r["state_kb"], r["alerts"], r["active"], r["jobs"], r["rate"]), flush=True)
    pub.loop_stop()
    pub.disconnect()
    sub.loop_stop()
    sub.disconnect()

    w, e = rows[W - 1], rows[-1]
    weeks = (e["day"] - w["day"]) / 7.0
    print("soak: %d samples in %.0f s" % (sent, time.time() - t_all))
    for k, name in (("rss", "resident memory (kB)"), ("heap", "heap in use (kB)"),
                    ("fds", "open descriptors"),
                    ("threads", "threads"), ("state_kb", "state directory (kB)"),
                    ("files", "state directory files")):
        ratio = e[k] / w[k] if w[k] else float("nan")
        print("soak: %-24s day %2d %10.0f -> day %2d %10.0f: ratio %.3f, %+.0f per week" %
              (name, w["day"], w[k], e["day"], e[k], ratio, (e[k] - w[k]) / weeks))
    # the trend over the second half (least squares; the ends alone are
    # noisy: the allocator's arenas move by megabytes between two days)
    half = rows[len(rows) // 2:]
    if len(half) >= 3:
        xs = [r["day"] for r in half]
        mx = sum(xs) / len(xs)
        for k, name in (("rss", "resident memory"), ("heap", "heap in use"),
                        ("state_kb", "state directory")):
            ys = [r[k] for r in half]
            my = sum(ys) / len(ys)
            b = (sum((x - mx) * (y - my) for x, y in zip(xs, ys)) /
                 sum((x - mx) ** 2 for x in xs))
            print("soak: %-24s trend over days %d-%d: %+.0f kB per week of data "
                  "(%+.2f%% of its mean per week)" % (name, xs[0], xs[-1], 7 * b,
                                                      700 * b / my if my else 0))
    rate0 = rows[0]["rate"]
    print("soak: samples/s kept up with: day 1 %.0f, last day %.0f (ratio %.2f; "
          "includes the publisher)" % (rate0, e["rate"], e["rate"] / rate0))
    print("soak: alerts raised %d, open at the end %d, continual-learning jobs %d" %
          (e["alerts"], e["active"], e["jobs"]))
    print("RESULT soak_rss_ratio %.3f" % (e["rss"] / w["rss"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
