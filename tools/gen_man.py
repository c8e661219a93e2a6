#!/usr/bin/python3
"""gen_config_man.py - write the KEYS section of docs/man/anomalyd.json.5
from the daemon's config key table.

The rows come from build/tools/config_doc (ad_config_doc() in
daemon/config.c: | `path` | type | default | range | reload | doc |), so the
man page documents exactly the keys the parser accepts. The section between
the lines '.\\" BEGIN KEYS' and '.\\" END KEYS' is replaced; the rest of the
page is hand-written.

  tools/gen_config_man.py [--doc build/tools/config_doc] [--page docs/man/anomalyd.json.5]
  tools/gen_config_man.py --rows FILE ...    rows from a file instead
"""
import argparse
import re
import subprocess
import sys
import textwrap

BEGIN = '.\\" BEGIN KEYS'
END = '.\\" END KEYS'

# Headings and one-line intros of the objects, in table order.
SECTIONS = {
    "": "Top level",
    "broker": "broker",
    "broker.tls": "broker.tls",
    "detectors[]": "detectors[]",
}


def parse_rows(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        # Split on " | " (cells may contain '|' inside enum lists like a|b).
        cells = [c.strip() for c in re.split(r"\s\|\s", line.strip("| ").rstrip("|"))]
        cells = [c.rstrip(" |") for c in cells]
        if len(cells) < 6:
            raise SystemExit("gen_config_man: bad row: " + line)
        path, typ, default, rng, reload = cells[:5]
        doc = " | ".join(cells[5:])
        rows.append(dict(path=path.strip("`"), type=typ, default=default,
                         range=rng, reload=reload, doc=doc))
    return rows


def esc(s):
    """Escape text for roff (not at a line start: see line())."""
    return s.replace("\\", "\\e")


def line(s):
    """Text lines (wrapped at 78 columns, as mandoc -Tlint wants) that are
    safe from being read as requests."""
    return "\n".join("\\&" + x if x[:1] in (".", "'") else x
                     for x in textwrap.wrap(s, 78, break_long_words=False,
                                            break_on_hyphens=False))


def num(s):
    """'1e+07' -> '10000000' when exact; other numbers unchanged."""
    try:
        v = float(s)
    except ValueError:
        return s
    if "e" in s and v == int(v) and len(s.split("e")[0].replace(".", "").lstrip("-")) < 6:
        return str(int(v))
    return s


def fmt_default(d):
    if d.startswith("`") and d.endswith("`"):
        return "Default \\fB" + esc(d[1:-1]) + "\\fR"
    if d == "required":
        return "Required"
    return "Default: unset"


def fmt_range(typ, r):
    if not r:
        return ""
    if " .. " in r:
        lo, hi = r.split(" .. ", 1)
        return "; range %s to %s" % (esc(num(lo)), esc(num(hi)))
    return "; one of " + ", ".join("\\fB%s\\fR" % esc(x) for x in r.split("|"))


def doc_text(d):
    # Backticks are markdown code: bold in the page.
    out = esc(d)
    out = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", out)
    return line(out + ("" if out.endswith(".") else ".")) if out else ""


def render(rows):
    out = []
    section = None
    for r in rows:
        parent, _, name = r["path"].rpartition(".")
        if parent != section:
            section = parent
            title = SECTIONS.get(parent, parent)
            out.append(".SS %s" % esc(title))
        out.append(".TP")
        out.append("\\fB%s\\fR (%s)" % (esc(r["path"]), esc(r["type"])))
        out.append(line("%s%s.  Reload: %s." % (
            fmt_default(r["default"]), fmt_range(r["type"], r["range"]),
            "\\fByes\\fR" if r["reload"] == "yes" else "no (restart)")))
        out.append(".br")
        out.append(doc_text(r["doc"]))
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--doc", default="build/tools/config_doc")
    p.add_argument("--rows", help="read rows from this file instead of running --doc")
    p.add_argument("--page", default="docs/man/anomalyd.json.5")
    p.add_argument("--stdout", action="store_true", help="print the section only")
    a = p.parse_args()
    text = open(a.rows).read() if a.rows else subprocess.run(
        [a.doc], capture_output=True, text=True, check=True).stdout
    rows = parse_rows(text)
    if not rows:
        raise SystemExit("gen_config_man: no rows")
    sec = render(rows)
    if a.stdout:
        sys.stdout.write(sec)
        return
    page = open(a.page).read()
    i, j = page.find(BEGIN), page.find(END)
    if i < 0 or j < i:
        raise SystemExit("gen_config_man: %s has no %s ... %s" % (a.page, BEGIN, END))
    page = page[:i] + BEGIN + "\n" + sec + page[j:]
    open(a.page, "w").write(page)
    print("gen_config_man: %d keys -> %s" % (len(rows), a.page))


if __name__ == "__main__":
    main()
