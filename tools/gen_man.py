#!/usr/bin/python3
"""gen_man.py - write the generated parts of the man pages from the code,
so that the pages document exactly what the program accepts:

  KEYS of docs/man/anomalyd.json.5, from the daemon's config key table:
  build/tools/config_doc prints ad_config_doc() (daemon/config_keys.c) as rows
  | `path` | type | default | range | reload | doc |;

  OPTIONS of docs/man/anomalyd.8, from `anomalyd COMMAND --help` of every
  command.

Each generated part sits between '.\\" BEGIN NAME' and '.\\" END NAME' lines;
the rest of each page is hand-written. tests/it_install.sh checks that the
pages match the code.

  tools/gen_man.py [--bin build/anomalyd] [--doc build/tools/config_doc]
  tools/gen_man.py --rows FILE ...    config rows from a file instead
"""
import argparse
import re
import subprocess
import sys
import textwrap

COMMANDS = ["run", "check", "score", "train", "replay", "info"]

# Headings and one-line intros of the objects, in table order.
SECTIONS = {
    "": "Top level",
    "broker": "broker",
    "broker.tls": "broker.tls",
    "homeassistant": "homeassistant",
    "commands": "commands",
    "metrics": "metrics",
    "detectors[]": "detectors[]",
}


def parse_rows(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        # Split on " | " (cells may contain '|' inside enum lists like a|b).
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"\s\|\s", line.strip("| ").rstrip("|"))]
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


def split_option(ln):
    """'  -m, --model FILE    text' -> ('-m, --model FILE', 'text', column of
    text), or None. An option takes at most one argument word; what follows
    is the description (some help lines use a single space before it)."""
    if not re.match(r"^ {2,6}-", ln):
        return None
    toks = [(m.group(), m.start()) for m in re.finditer(r"\S+", ln)]
    spec, i = [], 0
    while i < len(toks) and toks[i][0].startswith("-"):
        spec.append(toks[i][0])
        i += 1
        if toks[i - 1][0].endswith(","):
            continue                      # "-m," then "--model"
        if i < len(toks) and not toks[i][0].startswith("-") and \
                (ln[toks[i][1] - 2:toks[i][1]] != "  ") and \
                re.fullmatch(r"[A-Z][A-Z0-9_,.]*|[a-z]+(\|[a-z]+)+|[A-Z]", toks[i][0]):
            spec.append(toks[i][0])
            i += 1
    if i < len(toks):
        return " ".join(spec), ln[toks[i][1]:], toks[i][1]
    return " ".join(spec), "", 26


def parse_help(text):
    """`--help` text -> [(group or None, [(spec, [desc lines], desc column)])]."""
    groups, cur, opt = [], None, None
    for ln in text.splitlines():
        if not ln.strip():
            continue
        m = split_option(ln)
        if m:
            if cur is None:
                cur = (None, [])
                groups.append(cur)
            opt = [m[0], [m[1]] if m[1] else [], m[2]]
            cur[1].append(opt)
        elif re.match(r"^[a-z][\w /-]*:$", ln):
            cur = (ln[:-1], [])
            groups.append(cur)
            opt = None
        elif opt is not None and ln.startswith(" " * 12):
            opt[1].append(ln)          # continuation, raw (indentation kept)
        else:
            opt = None                 # prose before or after the options
    return groups


def spec_roff(spec):
    """'-m, --model FILE' -> bold options, italic arguments."""
    out = []
    for w in spec.split(" "):
        if w.startswith("-"):
            out.append("\\fB" + esc(w).replace("-", "\\-") + "\\fR")
        else:
            out.append("\\fI" + esc(w) + "\\fR")
    return " ".join(out)


def desc_roff(lines, col):
    if not lines:
        return []
    first, rest = lines[0], lines[1:]
    deeper = [x for x in rest if len(x) - len(x.lstrip()) > col]
    if deeper:
        # A little table inside the description: keep its layout.
        body = [first] + [x[col:] if len(x) > col else x.strip() for x in rest]
        return [".nf"] + [line(esc(x)) or "\\&" for x in body] + [".fi"]
    text = " ".join([first] + [x.strip() for x in rest])
    return [line(esc(text))]


def render_options(binary):
    out = []
    helps = {}
    for c in COMMANDS:
        r = subprocess.run([binary, c, "--help"], capture_output=True, text=True)
        helps[c] = r.stdout + r.stderr
    done = set()
    for c in COMMANDS:
        if c in done:
            continue
        groups = parse_help(helps[c])
        same = [d for d in COMMANDS if d not in done and parse_help(helps[d]) == groups]
        done |= set(same)
        out.append(".SS %s" % ", ".join(same))
        if not groups:
            # No option list: the usage line and its explanation.
            lines = [x.strip() for x in helps[c].splitlines() if x.strip()]
            usage = lines[0].replace("usage: ", "") if lines else c
            out.append(spec_roff(usage.split(" ", 2)[2]) if usage.count(" ") >= 2 else "")
            out.append(".br")
            out.append(line(esc(" ".join(lines[1:]))))
            continue
        for group, opts in groups:
            if group:
                if not out[-1].startswith(".SS"):
                    out.append(".PP")
                out.append("\\fI%s:\\fR" % esc(group))
            for spec, desc, col in opts:
                out.append(".TP")
                out.append(spec_roff(spec))
                d = desc_roff(desc, col)
                out.extend(d if d else ["Show the options and exit."
                                        if "--help" in spec else ""])
    return "\n".join(out) + "\n"


def splice(path, name, section):
    begin, end = '.\\" BEGIN %s' % name, '.\\" END %s' % name
    page = open(path).read()
    i, j = page.find(begin), page.find(end)
    if i < 0 or j < i:
        raise SystemExit("gen_man: %s has no %s ... %s" % (path, begin, end))
    open(path, "w").write(page[:i] + begin + "\n" + section + page[j:])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--doc", default="build/tools/config_doc")
    p.add_argument("--rows", help="read config rows from this file instead of running --doc")
    p.add_argument("--bin", default="build/anomalyd")
    p.add_argument("--page5", default="docs/man/anomalyd.json.5")
    p.add_argument("--page8", default="docs/man/anomalyd.8")
    p.add_argument("--stdout", choices=["keys", "options"], help="print one section only")
    a = p.parse_args()
    if a.stdout != "options":
        text = open(a.rows).read() if a.rows else subprocess.run(
            [a.doc], capture_output=True, text=True, check=True).stdout
        rows = parse_rows(text)
        if not rows:
            raise SystemExit("gen_man: no config rows")
        keys = render(rows)
    if a.stdout == "keys":
        sys.stdout.write(keys)
        return
    opts = render_options(a.bin)
    if a.stdout == "options":
        sys.stdout.write(opts)
        return
    splice(a.page5, "KEYS", keys)
    splice(a.page8, "OPTIONS", opts)
    print("gen_man: %d config keys -> %s; options of %d commands -> %s"
          % (len(rows), a.page5, len(COMMANDS), a.page8))


if __name__ == "__main__":
    main()
