#!/usr/bin/python3
"""it_daemon_mqtt.py - MQTT helper for the daemon integration tests
(tests/it_daemon*.sh): publish simulated pump data in the three payload
formats, collect messages, wait for and check alerts.

  sub  --port P --topic T --out FILE [--client-id ID --persistent --qos Q]
       collect messages as JSON lines {"topic","payload","retain"} until
       killed (reconnects by itself when the broker goes away)
  pub  --port P --format json|number|senml --devices N --rows R
       [--topic sensors/{device}/pump] [--fault KIND@START+DUR[:SEV]]
       [--fault-devices pump1] [--rate HZ] [--no-ts] [--start-row K]
       [--const SENSOR=VALUE] [--ts-step S] [--bad SENSOR=TEXT]
       [--bad-from K] [--rate-from K]
       pumpsim rows, one message per row (json/senml) or per sensor (number);
       --ts-step: the published times S seconds apart from --start (the
       simulation keeps its minute); --bad: from row --bad-from on,
       SENSOR's value sent as the raw TEXT instead (json/senml: JSON text
       such as 1e999 or '"abc"'); --rate-from: rows before it go out at once
  wait --file FILE --match KEY=VALUE... [--timeout S] [--count N]
       wait until N collected payloads (JSON) have all KEY=VALUE fields
  mix  --port P --rows R --fault KIND@START+DUR[:SEV] [--topic mix/{device}/pump]
       one MQTT 5 publisher, JSON with timestamps, every delivery path of
       the daemon's reader: pump1 QoS 0, pump2 QoS 1, pump3 QoS 0 retained,
       pump4 QoS 0 with a user property, p\u00fcmp5 (UTF-8 topic) QoS 0,
       pump6 QoS 0 with every 7th message padded past 64 KiB (an unknown
       field); the fault on pump1, pump2 and pump6
  last --file FILE --topic T --key K [--match KEY=VALUE...]
       KEY (dotted: nested) of the last collected payload on topic T (that
       very topic) with all the KEY=VALUE fields; None when there is none
  alerts --file FILE   print a summary line per model alert event
  check-alert --file FILE --stream S
       validate the documented alert fields of the raised and cleared events
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
SENSORS = ["vibration", "current", "pressure", "temperature", "flow"]


def load_pumpsim():
    spec = importlib.util.spec_from_file_location(
        "pumpsim", os.path.join(HERE, "..", "tools", "pumpsim.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def client(cid=None, clean=True):
    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=cid or "",
                        clean_session=clean)
    except AttributeError:
        c = mqtt.Client(client_id=cid or "", clean_session=clean)
    return c


def connect(port, cid=None, clean=True):
    """A client connected to the broker on 127.0.0.1:port, its network
    loop running (publish, then wait_for_publish: loop_stop() drops what
    is still queued)."""
    c = client(cid, clean)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    return c


def last_states(path, prefix="anomalyd/state/pump/"):
    """The last retained state of each stream in a sub --out file: {stream:
    state} from the messages on PREFIX<stream> (not its /events), empty
    payloads (a state removed) left out."""
    res = {}
    for m in payloads(path):
        t = m["topic"]
        if t.startswith(prefix) and "/" not in t[len(prefix):] and isinstance(m["json"], dict):
            res[t[len(prefix):]] = m["json"]
    return res


def cmd_sub(a):
    out = open(a.out, "a", buffering=1)
    c = client(a.client_id, clean=not a.persistent)

    def on_connect(cl, ud, flags, rc):
        if rc == 0:
            cl.subscribe(a.topic, qos=a.qos)

    def on_message(cl, ud, msg):
        try:
            p = msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            p = repr(msg.payload)
        out.write(json.dumps({"topic": msg.topic, "payload": p,
                              "retain": bool(msg.retain)}) + "\n")

    c.on_connect = on_connect
    c.on_message = on_message
    c.reconnect_delay_set(0.2, 1)
    while True:
        try:
            c.connect("127.0.0.1", a.port, keepalive=10)
            break
        except OSError:
            time.sleep(0.2)
    c.loop_forever(retry_first_connection=True)


def cmd_pub(a):
    ps = load_pumpsim()
    faults = [ps.Fault(s) for s in (a.fault or [])]
    fault_devs = set(a.fault_devices.split(","))
    devices = ["pump%d" % (i + 1) for i in range(a.devices)]
    start = time.time() - a.rows * 60.0 if not a.start else a.start
    sims = {d: ps.PumpSim(a.seed + 1000 * i, 60.0, start, faults if d in fault_devs else [])
            for i, d in enumerate(devices)}
    const = {}
    for kv in a.const or []:
        k, v = kv.split("=")
        const[k] = float(v)
    shifts = []                 # (sensor, delta, first row, end row or None)
    for sp in a.shift or []:
        f = sp.split(":")
        shifts.append((f[0], float(f[1]), int(f[2]), int(f[3]) if len(f) > 3 else None))
    # --glitch N:S: every Nth row (json) stamped S seconds ahead (a device
    # clock that glitches)
    glitch = tuple(float(x) for x in a.glitch.split(":")) if a.glitch else None
    if glitch:
        glitch = (int(glitch[0]), glitch[1])
    bad = dict(b.split("=", 1) for b in a.bad or [])
    c = client()
    c.connect("127.0.0.1", a.port, keepalive=30)
    c.loop_start()
    t_next = time.monotonic()
    infos = []
    for k in range(a.rows):
        for d in devices:
            ts, row, anom = sims[d].step()
            if a.ts_step > 0:
                ts = start + k * a.ts_step
            if k < a.start_row:
                continue
            row.update(const)
            for sensor, delta, k0, k1 in shifts:
                if k >= k0 and (k1 is None or k < k1):
                    row[sensor] += delta
            topic = a.topic.replace("{device}", d)
            # a --bad sensor's raw text goes in place of its JSON number
            bad_k = bad if k >= a.bad_from else {}
            val = {s: bad_k.get(s, json.dumps(round(row[s], 4))) for s in SENSORS}
            if a.format == "json" and not bad_k:
                msg = {s: round(row[s], 4) for s in SENSORS}
                if not a.no_ts:
                    msg["ts"] = int(round(ts * 1000))
                    if glitch and k > 0 and k % glitch[0] == 0:
                        msg["ts"] += int(glitch[1] * 1000)
                infos.append(c.publish(topic, json.dumps(msg), qos=a.qos))
            elif a.format == "senml" and not bad_k:
                recs = [{"bn": "urn:dev:%s:" % d, "n": SENSORS[0],
                         "v": round(row[SENSORS[0]], 4), "u": "mm/s"}]
                if not a.no_ts:
                    recs[0]["bt"] = round(ts, 3)
                recs += [{"n": s, "v": round(row[s], 4)} for s in SENSORS[1:]]
                infos.append(c.publish(topic, json.dumps(recs), qos=a.qos))
            elif a.format == "json":
                body = ",".join('"%s":%s' % (s, val[s]) for s in SENSORS)
                if not a.no_ts:
                    body += ',"ts":%d' % int(round(ts * 1000))
                infos.append(c.publish(topic, "{" + body + "}", qos=a.qos))
            elif a.format == "senml":
                base = '"bn":"urn:dev:%s:",' % d
                if not a.no_ts:
                    base += '"bt":%s,' % json.dumps(round(ts, 3))
                recs = ['{%s"n":"%s","v":%s,"u":"mm/s"}' % (base, SENSORS[0], val[SENSORS[0]])]
                recs += ['{"n":"%s","v":%s}' % (s, val[s]) for s in SENSORS[1:]]
                infos.append(c.publish(topic, "[" + ",".join(recs) + "]", qos=a.qos))
            else:
                for s in SENSORS:
                    txt = bad_k[s] if s in bad_k else "%.4f" % row[s]
                    infos.append(c.publish(topic.replace("{sensor}", s), txt, qos=a.qos))
        if a.rate > 0 and k >= max(a.start_row, a.rate_from):   # the others at once
            t_next += 1.0 / a.rate
            dt = t_next - time.monotonic()
            if dt > 0:
                time.sleep(dt)
    # QoS 1 messages still queued in the client are lost by loop_stop(): wait
    # (then disconnect first: it wakes the network thread, which loop_stop()
    # would otherwise wait for, up to a second, at every publisher's end)
    for i in infos:
        i.wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


def cmd_mix(a):
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    ps = load_pumpsim()
    faults = [ps.Fault(s) for s in (a.fault or [])]
    kinds = [("pump1", 0, False, None, 0), ("pump2", 1, False, None, 0),
             ("pump3", 0, True, None, 0), ("pump4", 0, False, "user", 0),
             ("p\u00fcmp5", 0, False, None, 0), ("pump6", 0, False, None, 7)]
    faulty = {"pump1", "pump2", "pump6"}
    start = time.time() - a.rows * 60.0
    sims = {d: ps.PumpSim(1 + 1000 * i, 60.0, start, faults if d in faulty else [])
            for i, (d, _, _, _, _) in enumerate(kinds)}
    prop = Properties(PacketTypes.PUBLISH)
    prop.UserProperty = ("site", "bench-7")
    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, protocol=mqtt.MQTTv5)
    except AttributeError:
        c = mqtt.Client(protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", a.port, keepalive=30)
    c.loop_start()
    infos = []
    for k in range(a.rows):
        for d, qos, retain, up, pad in kinds:
            ts, row, anom = sims[d].step()
            msg = {s: round(row[s], 4) for s in SENSORS}
            msg["ts"] = int(round(ts * 1000))
            if pad and k % pad == 0:
                msg["pad"] = "x" * 70000
            infos.append(c.publish(a.topic.replace("{device}", d), json.dumps(msg), qos=qos,
                                   retain=retain, properties=prop if up else None))
    for i in infos:
        i.wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


def cmd_garbage(a):
    """Malformed payloads, non-finite values, an oversized message and a
    flood of new stream topics."""
    import random
    rnd = random.Random(7)
    c = client()
    c.connect("127.0.0.1", a.port, keepalive=30)
    c.loop_start()
    t = a.topic
    bad = ['{"pressure": ', "not json", '{"pressure": "abc"}', "[1,2,3]", '{"x": 1}',
           '{"pressure": 1e999}', '{"pressure": NaN}', "", "\x00\xff"]
    n = 0
    for i in range(a.count):
        if i % 3 == 0:
            p = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
        else:
            p = bad[i % len(bad)]
        c.publish(t.replace("{device}", "pump1"), p, qos=1).wait_for_publish()
        n += 1
    c.publish(t.replace("{device}", "pump1"), "{" + " " * (a.oversize) + "}", qos=1).wait_for_publish()
    for i in range(a.flood):
        m = c.publish(t.replace("{device}", "flood%d" % i),
                      json.dumps({"vibration": 1, "current": 2, "pressure": 3,
                                  "temperature": 4, "flow": 5}), qos=1)
    m.wait_for_publish()
    c.disconnect()
    c.loop_stop()


def payloads(path):
    res = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    m = json.loads(line)
                    m["json"] = json.loads(m["payload"])
                except (ValueError, KeyError):
                    continue
                res.append(m)
    except FileNotFoundError:
        pass
    return res


def matches(m, conds):
    j = m["json"]
    for c in conds:
        k, v = c.split("=", 1)
        if k == "topic":
            if not m["topic"].startswith(v):
                return False
            continue
        x = j
        for part in k.split("."):         # dotted: nested objects
            x = x.get(part) if isinstance(x, dict) else None
        if str(x) != v:
            return False
    return True


def cmd_wait(a):
    end = time.time() + a.timeout
    while True:
        n = sum(1 for m in payloads(a.file) if matches(m, a.match))
        if n >= a.count:
            return 0
        if time.time() > end:
            print("wait: %d of %d messages matching %s in %s" % (n, a.count, a.match, a.file))
            return 1
        time.sleep(0.1)


def cmd_last(a):
    v = None
    for m in payloads(a.file):
        if m["topic"] == a.topic and isinstance(m["json"], dict) and matches(m, a.match):
            v = m["json"]
            for part in a.key.split("."):
                v = v.get(part) if isinstance(v, dict) else None
    print(v)


def cmd_alerts(a):
    for m in payloads(a.file):
        j = m["json"]
        if isinstance(j, dict) and "alert_id" in j and "event" in j and \
                j.get("kind", "model") == "model":
            print(j["event"], j["stream"], j["alert_id"], j["score"], j["threshold"])


def cmd_check_alert(a):
    ev = [m["json"] for m in payloads(a.file)
          if isinstance(m["json"], dict) and m["json"].get("stream") == a.stream
          and "alert_id" in m["json"] and "event" in m["json"]
          and m["json"].get("kind", "model") == "model"
          and (not a.detector or m["json"].get("detector") == a.detector)]
    raised = [e for e in ev if e["event"] == "raised"]
    cleared = [e for e in ev if e["event"] == "cleared"]
    errs = []
    if not raised:
        errs.append("no raised event")
    if not cleared:
        errs.append("no cleared event")
    need = ["schema", "alert_id", "event", "detector", "stream", "model", "time", "time_ms",
            "start", "start_ms", "end", "end_ms", "score", "threshold", "severity", "level",
            "metric", "windows", "top_features", "published"]
    for e in raised[:1] + cleared[:1]:
        for k in need:
            if k not in e:
                errs.append("%s event lacks %s" % (e["event"], k))
        if not isinstance(e.get("model"), dict) or len(e["model"].get("id", "")) != 16:
            errs.append("model.id is not a 16-digit id: %r" % e.get("model"))
        tf = e.get("top_features") or []
        if not tf or any(set(t) != {"name", "share"} for t in tf):
            errs.append("top_features malformed: %r" % tf)
        elif any(t["name"] not in SENSORS for t in tf):
            errs.append("top feature not a sensor: %r" % tf)
        if not (e.get("score", 0) > e.get("threshold", 1) > 0):
            errs.append("score %r not above threshold %r" % (e.get("score"), e.get("threshold")))
    if raised and cleared:
        r, c = raised[0], cleared[0]
        if r["alert_id"] != c["alert_id"]:
            errs.append("first clear %s is not for the first raise %s" %
                        (c["alert_id"], r["alert_id"]))
        if r["end"] is not None or c["end"] is None or c["end_ms"] < c["start_ms"]:
            errs.append("end times wrong: raised end %r, cleared end %r" % (r["end"], c["end"]))
    # every key once (a JSON object with a repeated key means what the last
    # one says to some readers and the first to others)
    def pairs(kv):
        seen = [k for k, _ in kv]
        dup = sorted(set(k for k in seen if seen.count(k) > 1))
        if dup:
            errs.append("repeated keys %s" % dup)
        return dict(kv)
    for m in payloads(a.file):
        if m["json"] in raised[:1] + cleared[:1]:
            json.loads(m["payload"], object_pairs_hook=pairs)
    if errs:
        print("check-alert %s %s: %s" % (a.detector or "", a.stream, "; ".join(errs)))
        return 1
    print("check-alert %s %s: raised %s score %.4g thr %.4g top %s, cleared after %s s" % (
        a.detector or "", a.stream, raised[0]["alert_id"], raised[0]["score"], raised[0]["threshold"],
        raised[0]["top_features"][0]["name"], cleared[0]["duration_s"]))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("sub")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--client-id")
    s.add_argument("--persistent", action="store_true")
    s.add_argument("--qos", type=int, default=1)
    p = sp.add_parser("pub")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--format", default="json", choices=["json", "number", "senml"])
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--start-row", type=int, default=0)
    p.add_argument("--topic", default="sensors/{device}/pump")
    p.add_argument("--fault", action="append")
    p.add_argument("--fault-devices", default="pump1")
    p.add_argument("--rate", type=float, default=0)
    p.add_argument("--qos", type=int, default=1)
    p.add_argument("--no-ts", action="store_true")
    p.add_argument("--glitch", help="N:S: every Nth row (json) stamped S seconds ahead")
    p.add_argument("--start", type=float, default=0)
    p.add_argument("--const", action="append")
    p.add_argument("--seed", type=int, default=1, help="the first device's simulator seed")
    p.add_argument("--ts-step", type=float, default=0,
                   help="published times this many seconds apart (0: the simulation's minute)")
    p.add_argument("--bad", action="append",
                   help="SENSOR=TEXT: the sensor's value sent as this raw text")
    p.add_argument("--bad-from", type=int, default=0, help="the first row --bad applies to")
    p.add_argument("--rate-from", type=int, default=0, help="the first row --rate paces")
    p.add_argument("--shift", action="append",
                   help="SENSOR:DELTA:FROM[:TO]: add DELTA to SENSOR on rows FROM..TO-1 (to the end)")
    x = sp.add_parser("mix")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--rows", type=int, default=300)
    x.add_argument("--topic", default="mix/{device}/pump")
    x.add_argument("--fault", action="append")
    w = sp.add_parser("wait")
    w.add_argument("--file", required=True)
    w.add_argument("--match", nargs="+", required=True)
    w.add_argument("--timeout", type=float, default=20)
    w.add_argument("--count", type=int, default=1)
    g = sp.add_parser("garbage")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--topic", default="sensors/{device}/pump")
    g.add_argument("--count", type=int, default=300)
    g.add_argument("--oversize", type=int, default=5000)
    g.add_argument("--flood", type=int, default=2000)
    la = sp.add_parser("last")
    la.add_argument("--file", required=True)
    la.add_argument("--topic", required=True)
    la.add_argument("--match", nargs="*", default=[])
    la.add_argument("--key", required=True)
    al = sp.add_parser("alerts")
    al.add_argument("--file", required=True)
    c = sp.add_parser("check-alert")
    c.add_argument("--file", required=True)
    c.add_argument("--stream", required=True)
    c.add_argument("--detector")
    a = ap.parse_args()
    return {"sub": cmd_sub, "pub": cmd_pub, "wait": cmd_wait, "alerts": cmd_alerts,
            "check-alert": cmd_check_alert, "last": cmd_last, "garbage": cmd_garbage,
            "mix": cmd_mix}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
