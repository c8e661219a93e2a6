#!/usr/bin/python3
"""it_ops.py - helper of tests/it_daemon_ops.sh: operator commands over MQTT
(3.1.1, and MQTT 5 with a response topic and correlation data), Home
Assistant discovery checks, and a Prometheus text-format validator.

  cmd  --port P --topic T --payload TEXT [--v5 --corr HEX] [--reply-topic R]
       [--timeout S]
       publish one command and print its reply (JSON) on one line; with --v5
       the command names a private response topic and correlation data and
       the reply must carry the same correlation data
  ha-config --file SUBFILE --topic T
       validate the last retained discovery config on T (valid JSON, the
       fields Home Assistant needs); print it
  last --file SUBFILE --topic T       print the last payload on T
  stat-ge --file SUBFILE --key K --value V [--ticks N] [--timeout S]
       wait until a stats message has K >= V and N more followed it
  prom FILE    validate FILE against the Prometheus text exposition format
               0.0.4 (names, HELP/TYPE, one TYPE per family before its
               samples, samples of a family together, label syntax and
               escapes, counters ending in _total, no duplicate series,
               float values); exit 1 with the line and the reason
"""
import argparse
import json
import re
import sys
import time
import uuid

import paho.mqtt.client as mqtt


def cmd_cmd(a):
    v5 = a.v5
    c = mqtt.Client(client_id="it-ops-%s" % uuid.uuid4().hex[:8],
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    got = []
    resp = a.reply_topic or "it/resp/%s" % uuid.uuid4().hex[:8]

    def on_message(cl, ud, msg):
        corr = None
        if v5 and hasattr(msg.properties, "CorrelationData"):
            corr = msg.properties.CorrelationData.hex()
        got.append((msg.payload.decode(), corr))

    c.on_message = on_message
    c.connect("127.0.0.1", a.port, keepalive=10)
    c.subscribe(resp, qos=1)
    c.loop_start()
    time.sleep(0.3)     # SUBACK before the command (loop thread)
    props = None
    if v5:
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        props = Properties(PacketTypes.PUBLISH)
        if not a.reply_topic:
            props.ResponseTopic = resp
        if a.corr:
            props.CorrelationData = bytes.fromhex(a.corr)
    c.publish(a.topic, a.payload, qos=1, properties=props).wait_for_publish(5)
    end = time.time() + a.timeout
    while not got and time.time() < end:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    if not got:
        print("no reply on %s within %.0f s" % (resp, a.timeout))
        return 1
    payload, corr = got[0]
    if v5 and a.corr and corr != a.corr:
        print("correlation data %r, expected %r: %s" % (corr, a.corr, payload))
        return 1
    print(payload)
    return 0


def messages(path, topic):
    out = []
    with open(path) as f:
        for line in f:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if m["topic"] == topic:
                out.append(m)
    return out


def cmd_last(a):
    ms = messages(a.file, a.topic)
    if not ms:
        print("nothing on %s" % a.topic)
        return 1
    print(ms[-1]["payload"])
    return 0


def cmd_stat_ge(a):
    end = time.time() + a.timeout
    while time.time() < end:
        ms = [json.loads(m["payload"]) for m in messages(a.file, "anomalyd/stats")]
        hit = [i for i, m in enumerate(ms) if m.get(a.key, 0) >= a.value]
        if hit and len(ms) - hit[0] > a.ticks:
            return 0
        time.sleep(0.1)
    print("stats %s never >= %g plus %d ticks" % (a.key, a.value, a.ticks))
    return 1


def cmd_ha_config(a):
    ms = [m for m in messages(a.file, a.topic) if m["payload"]]
    if not ms:
        print("no discovery config on %s" % a.topic)
        return 1
    try:
        c = json.loads(ms[-1]["payload"])
    except ValueError as e:
        print("not JSON: %s" % e)
        return 1
    need = ["name", "unique_id", "state_topic", "value_template", "availability", "device"]
    miss = [k for k in need if k not in c]
    if miss:
        print("missing %s: %s" % (miss, c))
        return 1
    dev = c["device"]
    if not dev.get("identifiers") or not dev.get("name") or not dev.get("model") or \
            dev.get("manufacturer") != "anomalyd":
        print("device incomplete: %s" % dev)
        return 1
    av = c["availability"][0]
    if not av.get("topic") or "value_json" not in av.get("value_template", ""):
        print("availability without topic/value template: %s" % av)
        return 1
    print(json.dumps(c, sort_keys=True))
    return 0


NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LNAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_labels(s, i, where):
    """Parse {a="x",...} from s[i] == '{'; return (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LNAME.match(s, i)
        if not m:
            raise ValueError("%s: bad label name at %r" % (where, s[i:i + 20]))
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ValueError("%s: expected =\" after label %s" % (where, name))
        i += 2
        v = []
        while s[i] != '"':
            if s[i] == "\\":
                if s[i + 1] not in '\\"n':
                    raise ValueError("%s: bad escape \\%s" % (where, s[i + 1]))
                v.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
                i += 2
            elif s[i] == "\n":
                raise ValueError("%s: raw newline in a label value" % where)
            else:
                v.append(s[i])
                i += 1
        i += 1
        if name in labels:
            raise ValueError("%s: label %s twice" % (where, name))
        labels[name] = "".join(v)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise ValueError("%s: expected , or } after a label" % where)


def validate(text):
    if not text.endswith("\n"):
        raise ValueError("the file does not end with a newline")
    types, helps, done, series = {}, set(), set(), set()
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d" % n
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    raise ValueError("%s: bad metric name %r" % (where, name))
                if parts[1] == "TYPE":
                    t = parts[3] if len(parts) > 3 else ""
                    if t not in TYPES:
                        raise ValueError("%s: bad type %r" % (where, t))
                    if name in types:
                        raise ValueError("%s: second TYPE for %s" % (where, name))
                    if name in done or name == current:
                        raise ValueError("%s: TYPE of %s after its samples" % (where, name))
                    if t == "counter" and not name.endswith("_total"):
                        raise ValueError("%s: counter %s does not end in _total" % (where, name))
                    types[name] = t
                else:
                    if name in helps:
                        raise ValueError("%s: second HELP for %s" % (where, name))
                    helps.add(name)
            continue
        if not line.strip():
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise ValueError("%s: bad sample %r" % (where, line))
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line + "\n", i, where)
        rest = line[i:].split()
        if line[i:i + 1] != " " or len(rest) not in (1, 2):
            raise ValueError("%s: expected ' value [timestamp]' in %r" % (where, line))
        if rest[0] not in ("NaN", "+Inf", "-Inf"):
            try:
                float(rest[0])
            except ValueError:
                raise ValueError("%s: bad value %r" % (where, rest[0]))
        if name not in types:
            raise ValueError("%s: sample of %s without a TYPE line" % (where, name))
        if name != current:
            if name in done:
                raise ValueError("%s: samples of %s are not together" % (where, name))
            if current:
                done.add(current)
            current = name
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ValueError("%s: duplicate series %s%s" % (where, name, labels))
        series.add(key)
    return types, series


def cmd_prom(a):
    text = open(a.file, encoding="utf-8").read()
    try:
        types, series = validate(text)
    except ValueError as e:
        print("%s: %s" % (a.file, e))
        return 1
    print("%d families, %d series" % (len(types), len(series)))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    c = sp.add_parser("cmd")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--payload", required=True)
    c.add_argument("--v5", action="store_true")
    c.add_argument("--corr")
    c.add_argument("--reply-topic")
    c.add_argument("--timeout", type=float, default=10)
    h = sp.add_parser("ha-config")
    h.add_argument("--file", required=True)
    h.add_argument("--topic", required=True)
    l = sp.add_parser("last")
    l.add_argument("--file", required=True)
    l.add_argument("--topic", required=True)
    g = sp.add_parser("stat-ge")
    g.add_argument("--file", required=True)
    g.add_argument("--key", required=True)
    g.add_argument("--value", type=float, required=True)
    g.add_argument("--ticks", type=int, default=0)
    g.add_argument("--timeout", type=float, default=20)
    p = sp.add_parser("prom")
    p.add_argument("file")
    a = ap.parse_args()
    return {"cmd": cmd_cmd, "ha-config": cmd_ha_config, "last": cmd_last,
            "prom": cmd_prom, "stat-ge": cmd_stat_ge}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
