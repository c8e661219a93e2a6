#!/usr/bin/python3
"""bench_e2e.py - end-to-end benchmark of the daemon through a real broker
(driven by bench/bench_e2e.sh, which starts the broker and the daemon).

  bench_e2e.py broker --port P --streams S --rows R
      bare broker throughput: this publisher -> broker -> mosquitto_sub
      (a plain C subscriber), messages/s
  bench_e2e.py summary FILE
      the end-to-end targets from the RESULT lines in FILE, PASS or MISS:
      capacity at hop 1 through a backlog >= 3x the bare relay, and CPU
      outside the model <= 2 us per message at hop 1 (the worse of flood
      and backlog)
  bench_e2e.py daemon --port P --streams S --rows R --hop H --window T
      [--warm ROWS] [--inject N] [--pid PID --capacity-rows C]
      warm-up rows (calibration), then three phases:
      flood: R rows per stream as fast as publisher and broker go, N streams
        get one anomalous sample each at a row that completes a window;
        samples/s processed by the daemon (from its stats), sample-to-alert
        latency p50/p99 and the CPU split of the daemon (model vs the rest)
      paced: a few rows at a fixed rate well below capacity, anomalies on
        other streams: sample-to-alert latency without queueing
      capacity (with --pid): the daemon is stopped (SIGSTOP) while C rows per
        stream are published, so the broker holds them; then it is resumed
        and works through the backlog at its own speed: the daemon's
        capacity in samples/s and its CPU split when busy (the flood is
        limited by publisher and broker: there the daemon idles between
        reads and pays a wake-up per burst)

One JSON message per row per stream with all 5 pump features and a data
timestamp (1 s per row), QoS 0. The publisher writes pre-built MQTT packets
on a plain socket in 64 KB chunks (paho's one send per message made the
publisher, not the broker, the limit).
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt


def client(cid=""):
    try:
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=cid)
    except AttributeError:
        return mqtt.Client(client_id=cid)


NORMAL = ('{"ts":%d,"vibration":%.3f,"current":%.2f,"pressure":%.3f,'
          '"temperature":%.2f,"flow":%.2f}')


def row_vals(s, r):
    # a plausible operating point of the bundled pump model, small variation
    # (means of tools/pumpsim.py's normal data, +-0.25 std, flow/pressure/
    # current following the load as in the simulator)
    w = ((s * 7 + r * 13) % 17) / 17.0 - 0.5
    return (1.32 + 0.03 * w, 32.5 + 0.8 * w, 5.57 - 0.07 * w, 27.7 + 0.8 * w, 57.7 + 4.0 * w)


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class RawPub:
    """MQTT 3.1.1 publisher (QoS 0) on a plain socket: packets are built here
    and written in chunks of about 64 KB."""

    def __init__(self, port, cid="bench-pub"):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = cid.encode()
        vh = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack(">H", len(c)) + c  # clean, no keepalive
        self.s.sendall(b"\x10" + _varint(len(vh)) + vh)
        ack = self._recv(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError("broker refused the publisher: CONNACK %r" % ack)
        self.buf, self.nbuf = [], 0

    def _recv(self, n):
        b = b""
        while len(b) < n:
            r = self.s.recv(n - len(b))
            if not r:
                raise RuntimeError("broker closed the publisher's connection")
            b += r
        return b

    def publish(self, topic, payload):
        t, p = topic.encode(), payload.encode()
        body = struct.pack(">H", len(t)) + t + p
        self.buf.append(b"\x30" + _varint(len(body)) + body)
        self.nbuf += len(body) + 5
        if self.nbuf >= 65536:
            self.flush()

    def flush(self):
        if self.buf:
            self.s.sendall(b"".join(self.buf))
            self.buf, self.nbuf = [], 0

    def sync(self):
        """Flush and wait until the broker has read everything sent so far
        (it answers a PINGREQ in order)."""
        self.flush()
        self.s.sendall(b"\xc0\x00")
        if self._recv(2) != b"\xd0\x00":
            raise RuntimeError("unexpected reply to PINGREQ")

    def close(self):
        self.flush()
        self.s.sendall(b"\xe0\x00")
        self.s.close()


def publish_rows(c, prefix, streams, r0, r1, base_ms, inject=None, sent=None, rate=0):
    n = 0
    topics = ["%s/s%d/pump" % (prefix, s) for s in range(streams)]
    t_next = time.monotonic()
    for r in range(r0, r1):
        if rate > 0:
            c.flush()
            t_next += 1.0 / rate
            dt = t_next - time.monotonic()
            if dt > 0:
                time.sleep(dt)
        ts = base_ms + r * 1000
        for s in range(streams):
            if inject and inject.get(s) == r:
                c.publish(topics[s], NORMAL % (ts, 6.0, 45.0, 2.0, 60.0, 5.0))
                c.flush()
                sent[s] = time.time()
            else:
                c.publish(topics[s], NORMAL % ((ts,) + row_vals(s, r)))
            n += 1
    c.flush()
    return n


def cmd_broker(a):
    total = a.streams * a.rows
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(a.port), "-t", "bench/#", "-C",
                            str(total)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    c = RawPub(a.port)
    t0 = time.time()
    publish_rows(c, "bench", a.streams, 0, a.rows, 1700000000000)
    tp = time.time()
    try:
        sub.wait(timeout=120)
    except subprocess.TimeoutExpired:
        sub.kill()
        print("broker: subscriber did not receive all %d messages" % total)
    t1 = time.time()
    c.close()
    print("broker bare: %d msgs in %.2f s = %.0f msgs/s (publisher alone %.0f msgs/s)" %
          (total, t1 - t0, total / (t1 - t0), total / (tp - t0)))
    print("RESULT broker_msgs_per_s %.0f" % (total / (t1 - t0)))


class Stats:
    def __init__(self):
        self.last = None
        self.lock = threading.Lock()
        self.alerts = {}

    def on_message(self, cl, ud, msg):
        now = time.time()
        if msg.topic == "anomalyd/stats":
            with self.lock:
                self.last = (now, json.loads(msg.payload))
        elif msg.topic.startswith("anomalyd/alerts/"):
            j = json.loads(msg.payload)
            if j.get("event") == "raised":
                s = int(j["stream"][1:])
                with self.lock:
                    self.alerts.setdefault(s, now)

    def wait(self, pred, timeout):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if self.last and pred(self.last[1]):
                    return self.last
            time.sleep(0.05)
        return None


def cmd_daemon(a):
    st = Stats()
    sc = client("bench-reader")
    sc.on_message = st.on_message
    sc.connect("127.0.0.1", a.port)
    sc.subscribe([("anomalyd/stats", 0), ("anomalyd/alerts/#", 1)])
    sc.loop_start()
    c = RawPub(a.port)
    base = 1700000000000
    warm = a.warm
    # warm-up: fill windows and calibrate every stream
    n = publish_rows(c, "bench", a.streams, 0, warm, base)
    if not st.wait(lambda s: s["samples"] >= n * 5 and s["detecting_streams"] >= a.streams, 300):
        print("daemon: warm-up did not finish: %s" % (st.last[1] if st.last else None))
        return 1
    t_ready, s0 = st.wait(lambda s: True, 5)
    # measured run; anomalies at rows completing a window: (r+1-T) % hop == 0
    inject, sent = {}, {}
    step = max(1, a.streams // max(1, a.inject))
    rows = [r for r in range(warm, warm + a.rows) if (r + 1 - a.window) % a.hop == 0]
    for i, s in enumerate(range(0, a.streams, step)):
        if len(inject) >= a.inject:
            break
        inject[s] = rows[(len(rows) // 2 + i) % len(rows)]
    t0 = time.time()
    n2 = publish_rows(c, "bench", a.streams, warm, warm + a.rows, base, inject, sent)
    tp = time.time()
    total = (n + n2) * 5
    res = st.wait(lambda s: s["samples"] >= total, 300)
    if not res:
        print("daemon: not all samples processed: %s" % st.last[1])
        return 1
    # the stats message that first showed completion is up to one stats
    # interval late: take the time from the daemon's own uptime instead
    t_end = res[0]
    s1 = res[1]
    time.sleep(1.0)
    with st.lock:
        lat = sorted((st.alerts[x] - sent[x]) * 1000.0 for x in sent if x in st.alerts)
        missed = len([x for x in sent if x not in st.alerts])
    # paced phase: rate rows/s per stream, well below the broker's capacity,
    # anomalies on other streams: latency without queueing
    r0 = warm + a.rows
    inject2, sent2 = {}, {}
    rows2 = [r for r in range(r0, r0 + a.paced_rows) if (r + 1 - a.window) % a.hop == 0]
    for i, s_ in enumerate(range(step // 2, a.streams, step)):
        if len(inject2) >= a.inject or not rows2:
            break
        inject2[s_] = rows2[i % len(rows2)]
    with st.lock:
        st.alerts = {}
    publish_rows(c, "bench", a.streams, r0, r0 + a.paced_rows, base, inject2, sent2,
                 rate=a.paced_rate)
    time.sleep(1.5)
    with st.lock:
        lat2 = sorted((st.alerts[x] - sent2[x]) * 1000.0 for x in sent2 if x in st.alerts)
    cap = None
    if a.pid and a.capacity_rows > 0:
        cap = capacity(a, c, st, r0 + a.paced_rows, base)
        if cap is None:
            return 1
    c.close()
    sc.loop_stop()
    dt = (s1["uptime_s"] - s0["uptime_s"])
    samples = s1["samples"] - s0["samples"]
    cpu_p = s1["cpu_s"]["process"] - s0["cpu_s"]["process"]
    cpu_m = s1["cpu_s"]["workers"] - s0["cpu_s"]["workers"]

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    print("daemon hop %d, %d streams: %d samples in %.2f s = %.0f samples/s "
          "(%.0f msgs/s; publisher %.0f msgs/s)" % (a.hop, a.streams, samples, dt, samples / dt,
                                                    samples / 5 / dt, n2 / (tp - t0)))
    print("  windows scored %d, mean batch %.1f, daemon CPU %.2f s (%.0f%% of one core), "
          "model %.2f s = %.1f%% of daemon CPU, MQTT+parsing+bookkeeping %.1f%%" % (
              s1["windows_scored"] - s0["windows_scored"], mean_batch(s0, s1),
              cpu_p, 100 * cpu_p / dt, cpu_m, 100 * cpu_m / cpu_p,
              100 * (cpu_p - cpu_m) / cpu_p))
    print("  flood (publisher flat out, broker-bound): sample-to-alert latency p50 %.1f ms, "
          "p99 %.1f ms over %d alerts (%d missed)" % (
        pct(0.5), pct(0.99), len(lat), missed))
    print("  flood: %d alerts raised (%d injected)" % (
        s1["alerts_raised"] - s0["alerts_raised"], len(sent)))
    print("  CPU per sample: %.1f us (capacity ~%.0f samples/s per core)" % (
        1e6 * cpu_p / samples, samples / cpu_p))
    def pct2(p):
        return lat2[min(len(lat2) - 1, int(p * len(lat2)))] if lat2 else float("nan")
    print("  paced at %d msgs/s (%.0f rows/s per stream): sample-to-alert latency p50 %.1f ms, "
          "p99 %.1f ms over %d alerts (%d missed)" % (
              a.streams * a.paced_rate, a.paced_rate, pct2(0.5), pct2(0.99), len(lat2),
              len(sent2) - len(lat2)))
    res = ("RESULT hop%d samples_per_s %.0f flood_p50_ms %.1f flood_p99_ms %.1f paced_p50_ms %.1f "
           "paced_p99_ms %.1f model_share %.3f nonmodel_us_per_msg %.3f" % (
               a.hop, samples / dt, pct(0.5), pct(0.99), pct2(0.5), pct2(0.99), cpu_m / cpu_p,
               1e6 * (cpu_p - cpu_m) / (samples / 5)))
    if cap:
        n3, dt3, cpu3, m3, batch3 = cap
        print("  capacity (backlog of %d msgs, daemon busy): %d samples in %.2f s = %.0f samples/s, "
              "daemon CPU %.2f s, model %.2f s = %.1f%% of daemon CPU, MQTT+parsing+bookkeeping "
              "%.1f%%, CPU per sample %.2f us, mean batch %.0f" % (
                  n3, n3 * 5, dt3, n3 * 5 / dt3, cpu3, m3, 100 * m3 / cpu3,
                  100 * (cpu3 - m3) / cpu3, 1e6 * cpu3 / (n3 * 5), batch3))
        res += (" capacity_samples_per_s %.0f capacity_msgs_per_s %.0f capacity_model_share %.3f "
                "capacity_nonmodel_us_per_msg %.3f" % (n3 * 5 / dt3, n3 / dt3, m3 / cpu3,
                                                       1e6 * (cpu3 - m3) / n3))
    print(res)
    return 0


def cmd_summary(a):
    """The two end-to-end targets, from the RESULT lines of one run (file)."""
    r = {}
    for line in open(a.file):
        if line.startswith("RESULT "):
            w = line.split()
            pre = w[1] + "_" if w[1].startswith("hop") else ""
            start = 2 if pre else 1
            for k, v in zip(w[start::2], w[start + 1::2]):
                r[pre + k] = float(v)
    need = ["broker_msgs_per_s", "hop1_capacity_msgs_per_s", "hop1_nonmodel_us_per_msg",
            "hop1_capacity_nonmodel_us_per_msg"]
    if any(k not in r for k in need):
        print("summary: missing figures: %s" % [k for k in need if k not in r])
        return 1
    ratio = r["hop1_capacity_msgs_per_s"] / r["broker_msgs_per_s"]
    flood, backlog = r["hop1_nonmodel_us_per_msg"], r["hop1_capacity_nonmodel_us_per_msg"]
    worst = max(flood, backlog)
    print("target 1, capacity vs bare relay: %.2fx (daemon through a backlog %.0f msgs/s at hop 1, "
          "broker to a plain subscriber %.0f msgs/s; target >= 3x): %s" % (
              ratio, r["hop1_capacity_msgs_per_s"], r["broker_msgs_per_s"],
              "PASS" if ratio >= 3 else "MISS"))
    print("target 2, non-model CPU per message at hop 1: %.2f us (worst of flood %.2f and "
          "backlog %.2f; target <= 2 us): %s" % (worst, flood, backlog,
                                               "PASS" if worst <= 2 else "MISS"))
    return 0


def mean_batch(s0, s1):
    nb = s1["inference"]["batches"] - s0["inference"]["batches"]
    return (s1["windows_scored"] - s0["windows_scored"]) / nb if nb else float("nan")


def capacity(a, c, st, r0, base):
    """Stop the daemon, let the broker queue capacity_rows rows per stream,
    resume it and time it through the backlog. Returns (messages, seconds,
    process CPU s, model CPU s, mean batch) or None."""
    done = st.wait(lambda s: True, 5)[1]["samples"]
    os.kill(a.pid, signal.SIGSTOP)
    try:
        n = publish_rows(c, "bench", a.streams, r0, r0 + a.capacity_rows, base)
        c.sync()            # the broker has read all of it
        time.sleep(0.2)
        with st.lock:
            s0 = st.last[1]     # the last stats before the stop
    finally:
        os.kill(a.pid, signal.SIGCONT)
    t0 = time.time()
    res = st.wait(lambda s: s["samples"] >= done + n * 5, 300)
    if not res:
        print("daemon: backlog not processed: %s" % st.last[1])
        return None
    s1 = res[1]
    # the stats message showing completion is up to one stats interval late
    dt = res[0] - t0
    print("  capacity phase: %d alerts raised, %d cleared (normal data only)" % (
        s1["alerts_raised"] - s0["alerts_raised"], s1["alerts_cleared"] - s0["alerts_cleared"]))
    return (n, dt, s1["cpu_s"]["process"] - s0["cpu_s"]["process"],
            s1["cpu_s"]["workers"] - s0["cpu_s"]["workers"], mean_batch(s0, s1))


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    b = sp.add_parser("broker")
    d = sp.add_parser("daemon")
    sm = sp.add_parser("summary")
    sm.add_argument("file")
    for p in (b, d):
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--streams", type=int, default=1000)
        p.add_argument("--rows", type=int, default=50)
    d.add_argument("--hop", type=int, default=1)
    d.add_argument("--window", type=int, default=30)
    d.add_argument("--warm", type=int, default=60)
    d.add_argument("--inject", type=int, default=100)
    d.add_argument("--paced-rate", type=float, default=5)
    d.add_argument("--paced-rows", type=int, default=20)
    d.add_argument("--pid", type=int, default=0)
    d.add_argument("--capacity-rows", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "summary":
        return cmd_summary(a)
    return cmd_broker(a) if a.cmd == "broker" else cmd_daemon(a)


if __name__ == "__main__":
    sys.exit(main() or 0)
