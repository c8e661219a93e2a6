#!/usr/bin/python3
"""alertwatch.py - print anomalyd's alerts as they arrive, one readable line
per event (used by `make demo`; works against any broker and config: it
connects with the config's broker.username, password_file and tls settings).

  alertwatch.py [-c conf/anomalyd.json] [--host 127.0.0.1] [--port 1883]
                [--exit-on-offline] [--summary]
                [--faults TOPIC [--judge-s S] [--judge-ms MS]]

Subscribes to the topics the config names: each detector's alert topic and
state topic ({detector} filled in, {stream} as a wildcard) and the daemon
status topic, and prints (wall-clock time of arrival first):

  12:03:14  ONLINE     anomalyd 0.1.0 (pid 4242) is connected
  12:03:15  NEW        pump1  calibrating: learning its normal behaviour
  12:03:26  DETECTING  pump1  calibrated, threshold 0.187 (mae)
  12:04:02  RAISED     pump2  severity 2.1x warning  top: pressure 47%, vibration 38%, flow 7%  id pump2-...
  12:04:07  CLEARED    pump2  after 1h36m pump time (5.1 s here), peak 7.4x critical  top: ...  id pump2-...
  12:05:00  OFFLINE    anomalyd stopped

severity = anomaly score / the stream's threshold; top = the sensors with the
largest share of the reconstruction error; pump time = the data timestamps.
--exit-on-offline: exit 0 after the daemon's "offline" status (the last
message it publishes when it stops cleanly, so every alert before it has been
printed). --summary: a last line counting the events:

  12:05:00  SUMMARY    17 alerts raised, 17 cleared, 4 streams calibrated

--faults TOPIC: the injected faults too, as tools/demo_pumps.py publishes
them with --events-topic TOPIC; the summary then says how many were alerted
(an alert raised on the pump after the fault began, or open when it began),
how many ended more than --judge-s seconds (default 3: the time a window
needs to slide past a fault) before the simulator stopped without one, and
which were not yet judged at the stop (still running, or ended within
--judge-s):

  ... 4 streams calibrated; 18 faults injected: 17 alerted, 1 not yet judged
      at the stop (pump3 cavitation injected 2 s before the stop, still running)

When the events carry data times ("ts_ms": pump time of the fault's start,
end, or the stop), these judge instead of arrival times, with --judge-ms
(default 180000) in place of --judge-s: an alert whose window data time
("time_ms") falls within the fault or less than --judge-ms after its end
alerted it, however late the message came (a daemon draining its backlog
at the stop); a fault ended less than --judge-ms of pump time before the
stop is not yet judged. A "fault_end" ends the fault with its "id" (else
the oldest running one of that pump and kind), so faults overlapping on a
pump are told apart.

SIGTERM/SIGINT: exit 0.
"""
import argparse
import json
import os
import signal
import ssl
import sys
import time

import paho.mqtt.client as mqtt


def filt(template, detector):
    """Alert topic template -> subscription filter."""
    t = template.replace("{detector}", detector)
    parts = t.split("/")
    parts = [("#" if i == len(parts) - 1 else "+") if "{stream}" in p else p
             for i, p in enumerate(parts)]
    return "/".join(parts)


def dur(s):
    s = int(round(s))
    if s >= 86400:
        return "%dd%02dh" % (s // 86400, s % 86400 // 3600)
    if s >= 3600:
        return "%dh%02dm" % (s // 3600, s % 3600 // 60)
    if s >= 60:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%ds" % s


def top(feats):
    return ", ".join("%s %d%%" % (f.get("name"), round(100 * f.get("share", 0)))
                     for f in feats or [])


class Watch:
    def __init__(self, a, status_topic, alert_filters, state_filters):
        self.a = a
        self.status_topic = status_topic
        self.faults = []        # injected faults, in order: dicts (see fault())
        self.open = set()       # streams with an open alert
        self.stop_at = None     # when the simulator stopped (monotonic)
        self.stop_ms = None     # and its data time, when the event carries it
        self.alert_filters = alert_filters
        self.state_filters = state_filters
        self.phase = {}
        self.raised_at = {}
        self.n = {"raised": 0, "cleared": 0, "detecting": 0}
        self.done = False

    def say(self, kind, stream, text):
        sys.stdout.write("%s  %-9s  %-6s %s\n" % (time.strftime("%H:%M:%S"), kind, stream, text))
        sys.stdout.flush()

    def on_connect(self, c, ud, flags, rc):
        if rc != 0:
            sys.stderr.write("alertwatch: connection refused (%s)\n" % mqtt.connack_string(rc))
            return
        subs = [(self.status_topic, 1)] + [(f, 1) for f in self.alert_filters + self.state_filters]
        if self.a.faults:
            subs.append((self.a.faults, 1))
        c.subscribe(subs)

    def on_message(self, c, ud, msg):
        try:
            m = json.loads(msg.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(m, dict):
            return
        if msg.topic == self.status_topic:
            self.status(m)
        elif self.a.faults and msg.topic == self.a.faults:
            self.fault(m)
        elif "event" in m and "alert_id" in m:
            self.alert(m)
        elif "phase" in m:
            self.state(m)

    def status(self, m):
        if m.get("state") == "online":
            self.say("ONLINE", "", "anomalyd %s (pid %s) is connected"
                     % (m.get("version", "?"), m.get("pid", "?")))
        elif m.get("state") == "offline":
            self.say("OFFLINE", "", "anomalyd stopped")
            if self.a.exit_on_offline:
                self.done = True

    def fault(self, m):
        """A simulator event: a fault begins or ends, or the simulator stops."""
        ev, pump = m.get("event"), m.get("pump")
        now = time.monotonic()
        ts = m.get("ts_ms")
        ts = ts if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
        if ev == "fault":
            # an alert open on the pump when the fault begins covers it
            self.faults.append({"pump": pump, "kind": m.get("kind", "?"), "id": m.get("id"),
                                "start": now, "end": None, "start_ms": ts, "end_ms": None,
                                "alerted": pump in self.open})
        elif ev == "fault_end":
            running = [f for f in self.faults if f["pump"] == pump and f["end"] is None]
            f = (next((f for f in running if f["id"] == m.get("id")), None)
                 if m.get("id") is not None else None)
            f = f or next((f for f in running if f["kind"] == m.get("kind")), None)
            f = f or next(iter(running), None)
            if f is not None:
                f["end"], f["end_ms"] = now, ts
        elif ev == "stop":
            self.stop_at, self.stop_ms = now, ts

    def fault_summary(self):
        """'; N faults injected: ...' for the SUMMARY line."""
        stop = self.stop_at if self.stop_at is not None else time.monotonic()
        fs = [f for f in self.faults if f["start"] <= stop]
        if not fs:
            return "; no fault injected"
        alerted = sum(1 for f in fs if f["alerted"])
        missed, pending = 0, []
        for f in fs:
            if f["alerted"]:
                continue
            if f["end"] is None or f["end"] > stop:
                pending.append("%s %s injected %.0f s before the stop, still running"
                               % (f["pump"], f["kind"], stop - f["start"]))
            elif self.data_times(f) and self.stop_ms is not None:
                if self.stop_ms - f["end_ms"] < self.a.judge_ms:
                    pending.append("%s %s ended %.0f s before the stop"
                                   % (f["pump"], f["kind"], stop - f["end"]))
                else:
                    missed += 1
            elif stop - f["end"] < self.a.judge_s:
                pending.append("%s %s ended %.0f s before the stop"
                               % (f["pump"], f["kind"], stop - f["end"]))
            else:
                missed += 1
        parts = ["%d alerted" % alerted]
        if missed:
            parts.append("%d ended without an alert" % missed)
        if pending:
            parts.append("%d not yet judged at the stop (%s)" % (len(pending), "; ".join(pending)))
        return "; %d fault%s injected: %s" % (len(fs), "" if len(fs) == 1 else "s",
                                             ", ".join(parts))

    @staticmethod
    def data_times(f):
        return f["start_ms"] is not None and (f["end"] is None or f["end_ms"] is not None)

    def covers(self, f, m, now):
        """Alert message m (arrived at now) alerts fault f: by data times when
        both carry them, else by arrival."""
        t = m.get("time_ms")
        if self.data_times(f) and isinstance(t, (int, float)):
            return f["start_ms"] <= t and (f["end"] is None or t < f["end_ms"] + self.a.judge_ms)
        return f["end"] is None or now - f["end"] < self.a.judge_s

    def state(self, m):
        key = (m.get("detector"), m.get("stream"))
        ph = m.get("phase")
        prev = self.phase.get(key)
        if ph == prev:
            return
        self.phase[key] = ph
        s = m.get("stream", "?")
        if ph == "detecting":
            self.n["detecting"] += 1
            thr = m.get("threshold")
            self.say("DETECTING", s, "calibrated, threshold %s: alerts from now on"
                     % ("%.3g" % thr if isinstance(thr, (int, float)) else "?"))
        elif prev is None and ph in ("collecting", "calibrating"):
            self.say("NEW", s, "%s: learning its normal behaviour" % ph)
        elif ph == "training":
            self.say("TRAINING", s, "training a model on its first windows")

    def alert(self, m):
        ev = m.get("event")
        s = m.get("stream", "?")
        sev = m.get("severity")
        sev = "%.1fx %s" % (sev, m.get("level", "")) if isinstance(sev, (int, float)) else "?"
        aid = m.get("alert_id", "?")
        if ev == "raised":
            self.n["raised"] += 1
            self.open.add(s)
            # the faults of this pump running or ended within --judge-ms of
            # data time (--judge-s of arrival time without data times); an
            # older one without an alert was missed, and stays so
            now = time.monotonic()
            for f in self.faults:
                if f["pump"] == s and self.covers(f, m, now):
                    f["alerted"] = True
            self.raised_at[aid] = time.monotonic()
            self.say("RAISED", s, "severity %s  top: %s  id %s" % (sev, top(m.get("top_features")), aid))
        elif ev == "cleared":
            self.n["cleared"] += 1
            self.open.discard(s)
            d = m.get("duration_s")
            here = self.raised_at.pop(aid, None)
            here = " (%.1f s here)" % (time.monotonic() - here) if here is not None else ""
            self.say("CLEARED", s, "after %s pump time%s, peak %s  top: %s  id %s"
                     % (dur(d) if isinstance(d, (int, float)) else "?", here, sev,
                        top(m.get("top_features")), aid))


class Stop(BaseException):   # not swallowed by a library's "except Exception"
    pass


def on_signal(signum, frame):
    raise Stop()


def broker_auth(c, b, config):
    """The daemon's own broker credentials and TLS settings (broker.username,
    password_file: its first line, tls.*), paths relative to the config's
    directory as the daemon reads them."""
    cdir = os.path.dirname(os.path.abspath(config))

    def path(p):
        return p if not p or os.path.isabs(p) else os.path.join(cdir, p)
    if b.get("username"):
        pw = None
        if b.get("password_file"):
            with open(path(b["password_file"])) as f:
                pw = f.readline().rstrip("\r\n")
        c.username_pw_set(b["username"], pw)
    tls = b.get("tls") or {}
    if tls.get("enabled"):
        ctx = ssl.create_default_context(cafile=path(tls.get("ca_file")),
                                         capath=path(tls.get("ca_path")))
        if tls.get("cert_file"):
            ctx.load_cert_chain(path(tls["cert_file"]), path(tls.get("key_file")))
        if tls.get("verify_hostname") is False:
            ctx.check_hostname = False
        c.tls_set_context(ctx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-c", "--config", default="conf/anomalyd.json")
    ap.add_argument("--host", default=None, help="broker (default: the config's)")
    ap.add_argument("--port", type=int, default=None, help="broker port (default: the config's)")
    ap.add_argument("--exit-on-offline", action="store_true")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--faults", metavar="TOPIC", default=None,
                    help="injected faults (tools/demo_pumps.py --events-topic)")
    ap.add_argument("--judge-s", type=float, default=3.0,
                    help="a fault ended this recently at the stop is not yet judged")
    ap.add_argument("--judge-ms", type=float, default=180000.0,
                    help="the same in data time, for events that carry it (ts_ms)")
    a = ap.parse_args()
    try:
        with open(a.config) as f:
            conf = json.load(f)
    except (OSError, ValueError) as e:
        ap.error("%s: %s" % (a.config, e))
    b = conf.get("broker", {})
    host = a.host or b.get("host", "127.0.0.1")
    port = a.port or b.get("port", 1883)
    alerts, states = [], []
    for d in conf.get("detectors", []):
        al = d.get("alert", {})
        alerts.append(filt(al.get("topic", "anomalyd/alerts/{detector}/{stream}"), d["name"]))
        if al.get("state_topic"):
            states.append(filt(al["state_topic"], d["name"]))
    w = Watch(a, b.get("status_topic", "anomalyd/status"), alerts, states)

    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_signal)    # else: demo.sh stops us
    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="")
    except AttributeError:
        c = mqtt.Client(client_id="")
    c.on_connect = w.on_connect
    c.on_message = w.on_message
    try:
        broker_auth(c, b, a.config)
    except (OSError, ValueError, ssl.SSLError) as e:
        sys.stderr.write("alertwatch: %s: broker credentials or TLS: %s\n" % (a.config, e))
        return 1
    rc = 0
    try:
        c.connect(host, int(port), keepalive=30)
        while not w.done:
            if c.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                time.sleep(0.5)     # broker gone: retry until stopped
                try:
                    c.reconnect()
                except OSError:
                    pass
    except Stop:
        pass
    except OSError as e:
        sys.stderr.write("alertwatch: broker %s:%s: %s\n" % (host, port, e))
        rc = 1
    try:
        c.disconnect()
    except Exception:
        pass
    if a.summary:
        w.say("SUMMARY", "", "%d alerts raised, %d cleared, %d streams calibrated%s"
              % (w.n["raised"], w.n["cleared"], w.n["detecting"],
                 w.fault_summary() if a.faults else ""))
    return rc


if __name__ == "__main__":
    sys.exit(main())
