#!/usr/bin/python3
"""fake_broker.py - a minimal MQTT 3.1.1 broker on 127.0.0.1 for the MQTT
client's framing and stop tests (tests/it_daemon_mqtt.sh, and over TLS
tests/it_daemon_auth.sh): it writes packets in exactly the pieces it
chooses, which a real broker does not let a test do.

  fake_broker.py --port-file F --messages N --keepalive-s K
                 [--tls-cert CRT --tls-key KEY]

Waits for the daemon's CONNECT and SUBSCRIBE (CONNACK, SUBACK; PUBACK for
its QoS 1 publishes; PINGREQ is never answered, so a daemon that needs a
PINGRESP to stay connected loses the connection), then sends on
fp/d1/pump:
  - N QoS 0 PUBLISH packets whose payloads hold a complete, valid QoS 0
    PUBLISH for a subscribed topic at varying offsets, each packet written
    in two pieces split at a different offset (every offset of the packet
    in turn), 2 ms apart, so the daemon's reads end mid-packet everywhere;
  - then a burst of small packets, more than 64 KiB in one write, and
    one of more than 256 tiny packets in one write of at most 16 KiB
    (over TLS: one record, which the daemon's TLS library decrypts whole);
    after each burst the daemon must count everything within 2 s with
    nothing more sent (a reader that stops after a bounded number of
    packets and waits for the socket would stall on buffered data);
  - then one message a second (timestamps ascending) for 3 keepalive
    periods.
Meanwhile it reads the daemon's statistics. Prints the last one's
messages_in and mqtt.connects and the number of connections, and exits 0 when messages_in equals what was sent, nothing
stalled and the daemon connected once. With --tls-cert it speaks TLS.
"""
import argparse
import json
import ssl
import socket
import sys
import threading
import time


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(topic, payload, qos=0, pid=1):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (pid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


class Conn:
    puback_delay = 0.0                 # set for --stop-test before any connection

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.subscribed = threading.Event()
        self.stats = None
        self.closed = False
        self.lock = threading.Lock()   # an SSL object serves one thread at a time
        self.events = []               # (time, what) for --stop-test

    def send(self, data):
        with self.lock:
            self.s.settimeout(10)
            self.s.sendall(data)
            self.s.settimeout(0.01)

    def recv(self):
        while True:
            with self.lock:
                try:
                    return self.s.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    pass
            time.sleep(0.001)

    def read_packet(self):
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    n += (self.buf[i] & 127) * mult
                    mult *= 128
                    if not self.buf[i] & 128:
                        break
                    i += 1
                if i < len(self.buf) and len(self.buf) >= i + 1 + n:
                    pkt = self.buf[:i + 1 + n]
                    self.buf = self.buf[i + 1 + n:]
                    return pkt[0], pkt[i + 1:]
            d = self.recv()
            if not d:
                return None, None
            self.buf += d

    def serve(self):
        while True:
            cmd, body = self.read_packet()
            if cmd is None:
                self.closed = True
                return
            t = cmd & 0xF0
            if t == 0x10:                       # CONNECT
                self.send(b"\x20\x02\x00\x00")
            elif t == 0x80:                     # SUBSCRIBE
                pid = body[:2]
                n = 0
                i = 2
                while i < len(body):
                    ln = int.from_bytes(body[i:i + 2], "big")
                    i += 2 + ln + 1
                    n += 1
                self.send(bytes([0x90, 2 + n]) + pid + b"\x00" * n)
                self.subscribed.set()
            elif t == 0x30:                     # PUBLISH from the daemon
                qos = (cmd >> 1) & 3
                ln = int.from_bytes(body[:2], "big")
                topic = body[2:2 + ln].decode()
                off = 2 + ln
                if qos:
                    ack = b"\x40\x02" + body[off:off + 2]
                    self.events.append((time.monotonic(), "PUBLISH %s QoS %d" % (topic, qos)))
                    if self.puback_delay:
                        def late(ack=ack, topic=topic):
                            self.events.append((time.monotonic(), "PUBACK %s" % topic))
                            try:
                                self.send(ack)
                            except OSError:
                                pass
                        threading.Timer(self.puback_delay, late).start()
                    else:
                        self.send(ack)
                    off += 2
                if topic == "anomalyd/stats":
                    self.stats = json.loads(body[off:])
            elif t == 0xE0:                     # DISCONNECT
                self.events.append((time.monotonic(), "DISCONNECT"))
                self.closed = True
                return
            # PINGREQ (0xC0): deliberately not answered


def stop_test(c, ready):
    """A stop publishes the last statistics (QoS 0), the last alerts and the
    offline status (QoS 1): with every PUBACK 0.5 s late, the DISCONNECT
    must come after the last of them."""
    open(ready, "w").close()
    t = time.time() + 20
    while not c.closed and time.time() < t:
        time.sleep(0.02)
    time.sleep(0.7)                    # PUBACKs still due land after it
    ev = sorted(c.events)
    t0 = ev[0][0] if ev else 0
    for when, what in ev:
        print("fake broker: %+.3f s %s" % (when - t0, what))
    pubs = [w for _, w in ev if w.startswith("PUBLISH")]
    td = min([when for when, w in ev if w == "DISCONNECT"] or [float("inf")])
    acks = [w for when, w in ev if w.startswith("PUBACK") and when < td]
    off = any("status" in w for w in pubs[1:])
    ok = td < float("inf") and len(acks) == len(pubs) and off
    print("fake broker: %d QoS 1 publishes, %d acknowledged before the DISCONNECT%s" % (
        len(pubs), len(acks), "" if off else ", no offline status"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--keepalive-s", type=float, default=5)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--stop-test", metavar="READY_FILE",
                    help="delay every PUBACK 0.5 s, touch READY_FILE once subscribed, "
                    "then check the daemon's stop waits for them before DISCONNECT")
    a = ap.parse_args()
    ctx = None
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    conns = []
    if a.stop_test:
        Conn.puback_delay = 0.5

    def acceptor():
        while True:
            s, _ = ls.accept()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ctx:
                try:
                    s.settimeout(10)
                    s = ctx.wrap_socket(s, server_side=True)
                except (OSError, ssl.SSLError) as e:
                    print("fake broker: TLS handshake failed: %s" % e)
                    continue
            s.settimeout(0.01)
            c = Conn(s)
            conns.append(c)
            threading.Thread(target=c.serve, daemon=True).start()

    threading.Thread(target=acceptor, daemon=True).start()
    t0 = time.time()
    while not conns or not conns[0].subscribed.is_set():
        if time.time() - t0 > 20:
            print("fake broker: no SUBSCRIBE from the daemon")
            return 1
        time.sleep(0.05)
    c = conns[0]
    if a.stop_test:
        return stop_test(c, a.stop_test)
    topic = "fp/d1/pump"
    ts = [1700000000000]

    def row():
        ts[0] += 1000
        return ('{"ts":%d,"vibration":1.3,"current":32.7,"pressure":5.4,'
                '"temperature":28.5,"flow":61.5}' % ts[0]).encode()
    sent = 0
    inner = publish(topic, b'{"ts":1,"vibration":1}')
    for i in range(a.messages):
        # a JSON-looking payload with a whole PUBLISH inside, moving along
        payload = b'{"pad":"' + b"z" * (i % 13) + inner + b'"}'
        pkt = publish(topic, payload)
        cut = i % len(pkt)
        c.send(pkt[:cut] if cut else pkt)
        time.sleep(0.002)
        if cut:
            c.send(pkt[cut:])
        sent += 1
    stalls = []

    def settled(what):
        """the daemon counts all that was sent within 2 s, nothing more sent"""
        t = time.time() + 2.0
        while time.time() < t:
            if (c.stats or {}).get("messages_in") == sent:
                return
            time.sleep(0.05)
        stalls.append("%s: %s of %d counted" % (what, (c.stats or {}).get("messages_in"), sent))
    burst = b"".join(publish(topic, row()) for _ in range(900))
    c.send(burst)
    sent += 900
    settled("64 KiB burst")
    tiny = publish(topic, b"{}")
    n = 16384 // len(tiny)
    c.send(tiny * n)
    sent += n
    settled("%d packets in one %d-byte write" % (n, n * len(tiny)))
    t_end = time.time() + 3 * a.keepalive_s
    while time.time() < t_end:
        c.send(publish(topic, row()))
        sent += 1
        time.sleep(1.0)
    time.sleep(1.0)
    st = conns[-1].stats or {}
    got = st.get("messages_in")
    connects = st.get("mqtt", {}).get("connects")
    print("fake broker: sent %d, daemon counted %s, %s connects, "
          "%d TCP connections%s" % (sent, got, connects, len(conns),
                                    "".join("; stalled after the " + x for x in stalls)))
    ok = got == sent and connects == 1 and len(conns) == 1 and not stalls
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
