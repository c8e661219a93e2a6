#!/bin/sh
# it_install.sh - `make install` / `make uninstall` and the man pages.
#
#  - install into a temporary DESTDIR with PREFIX=/usr: every file where the
#    man pages say, the unit's ExecStart= rewritten to /usr/bin, the config's
#    model paths pointing at the installed models;
#  - the installed unit passes `systemd-analyze verify` (binary path mapped
#    into DESTDIR, man pages found in DESTDIR);
#  - the instance template anomalyd@.service differs from the unit only in
#    the instance's config (/etc/anomalyd/%i.json), state directory
#    (anomalyd/%i, given to the daemon with --state-dir) and wording; an instance of it verifies and keeps the
#    unit's sandbox (same `systemd-analyze security` exposure);
#  - the installed binary's `check -c` accepts the installed config (model
#    paths mapped into DESTDIR), and, installed for real under a temporary
#    PREFIX and SYSCONFDIR, the installed config as it is;
#  - a second install keeps a config the user edited (new one as .new);
#  - uninstall removes everything but the config; PURGE=1 removes it too;
#  - the man pages render without warnings (groff -ww, mandoc -Tlint when
#    installed), and anomalyd.json(5) documents every key of the parser's
#    table (build/tools/config_doc) with its type, default and reload flag.
. tests/lib.sh
BUILD=${AD_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
D=$tmp/root
MAKE="make --no-print-directory -s BUILD=$BUILD"

# --- install into DESTDIR -----------------------------------------------------
if ! $MAKE install PREFIX=/usr DESTDIR="$D" > "$tmp/install.log" 2>&1; then
    it_fail "install: make install PREFIX=/usr DESTDIR=..." "$(cat "$tmp/install.log")"
    exit 0
fi
it_ok "install: make install PREFIX=/usr DESTDIR=... succeeds"

missing=
for f in usr/bin/anomalyd usr/lib/systemd/system/anomalyd.service \
         usr/lib/systemd/system/anomalyd@.service \
         etc/anomalyd/anomalyd.json usr/share/man/man8/anomalyd.8 \
         usr/share/man/man5/anomalyd.json.5; do
    [ -f "$D/$f" ] || missing="$missing $f"
done
[ -x "$D/usr/bin/anomalyd" ] || missing="$missing (usr/bin/anomalyd not executable)"
for m in conf/models/*.safetensors; do
    [ -f "$m" ] || continue
    cmp -s "$m" "$D/usr/share/anomalyd/models/$(basename "$m")" ||
        missing="$missing usr/share/anomalyd/models/$(basename "$m")"
done
if [ -z "$missing" ]; then it_ok "install: binary, unit, config, models, man pages in place"
else it_fail "install: binary, unit, config, models, man pages in place" "missing:$missing"; fi

es=$(sed -n 's/^ExecStart=//p' "$D/usr/lib/systemd/system/anomalyd.service")
if [ "$es" = "/usr/bin/anomalyd run -c /etc/anomalyd/anomalyd.json" ]; then
    it_ok "install: unit runs /usr/bin/anomalyd run -c /etc/anomalyd/anomalyd.json"
else
    it_fail "install: unit ExecStart= follows PREFIX" "ExecStart=$es"
fi

# Every model the installed config names exists under DESTDIR, by absolute path.
bad=$($PYTHON - "$D" <<'EOF'
import json, os, sys
d = sys.argv[1]
c = json.load(open(d + "/etc/anomalyd/anomalyd.json"))
for det in c.get("detectors", []):
    m = det.get("model")
    if m is None:
        continue
    if not m.startswith("/usr/share/anomalyd/models/") or not os.path.isfile(d + m):
        print("%s: %s" % (det.get("name"), m))
EOF
)
if [ -z "$bad" ]; then it_ok "install: config's models point at /usr/share/anomalyd/models"
else it_fail "install: config's models point at /usr/share/anomalyd/models" "$bad"; fi

# The installed unit is valid (ExecStart= mapped into DESTDIR; installed man pages).
mkdir -p "$tmp/unit"
sed "s|^ExecStart=/usr/bin/anomalyd |ExecStart=$D/usr/bin/anomalyd |" \
    "$D/usr/lib/systemd/system/anomalyd.service" > "$tmp/unit/anomalyd.service"
out=$(MANPATH="$D/usr/share/man" systemd-analyze verify "$tmp/unit/anomalyd.service" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then it_ok "install: installed unit passes systemd-analyze verify"
else it_fail "install: installed unit passes systemd-analyze verify" "rc=$rc: $out"; fi

# --- the instance template -------------------------------------------------------
# Every directive but Description=, ExecStart= and StateDirectory= is the
# unit's: the template cannot drift from the unit's sandbox.
U=$D/usr/lib/systemd/system
dirs=$(grep -v '^#' "$U/anomalyd@.service" | grep -v -e '^Description=' -e '^ExecStart=' -e '^StateDirectory=')
same=$(grep -v '^#' "$U/anomalyd.service" | grep -v -e '^Description=' -e '^ExecStart=' -e '^StateDirectory=')
tes=$(sed -n 's/^ExecStart=//p' "$U/anomalyd@.service")
tsd=$(sed -n 's/^StateDirectory=//p' "$U/anomalyd@.service")
if [ "$dirs" = "$same" ] && [ "$tes" = "/usr/bin/anomalyd run -c /etc/anomalyd/%i.json --state-dir /var/lib/anomalyd/%i" ] &&
   [ "$tsd" = "anomalyd/%i" ]; then
    it_ok "install: template anomalyd@.service = the unit with config /etc/anomalyd/%i.json, state anomalyd/%i"
else
    it_fail "install: template anomalyd@.service = the unit with its own config and state" \
        "ExecStart=$tes StateDirectory=$tsd; other directives: $(printf '%s\n' "$dirs" > "$tmp/t.d"; printf '%s\n' "$same" | diff - "$tmp/t.d")"
fi
sed "s|^ExecStart=/usr/bin/anomalyd |ExecStart=$D/usr/bin/anomalyd |" \
    "$U/anomalyd@.service" > "$tmp/unit/anomalyd@.service"
out=$(cd "$tmp/unit" && MANPATH="$D/usr/share/man" systemd-analyze verify anomalyd@line3.service 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then it_ok "install: instance anomalyd@line3 passes systemd-analyze verify"
else it_fail "install: instance anomalyd@line3 passes systemd-analyze verify" "rc=$rc: $out"; fi
exp() { systemd-analyze security --offline=yes "$1" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
e1=$(cd "$tmp/unit" && exp anomalyd.service); e2=$(cd "$tmp/unit" && exp anomalyd@line3.service)
if [ -n "$e1" ] && [ "$e1" = "$e2" ]; then it_ok "install: instance keeps the unit's sandbox (exposure $e2)"
else it_fail "install: instance keeps the unit's sandbox" "unit ${e1:-?}, instance ${e2:-?}"; fi

# --- the installed binary checks the installed config --------------------------
help=$("$D/usr/bin/anomalyd" check --help 2>&1)
case "$help" in
*"coming next"*|*"not available"*)
    it_skip "install: installed 'anomalyd check' accepts the installed config" \
        "this anomalyd has no check command" ;;
*)
    sed "s|\"/usr/share/anomalyd/|\"$D/usr/share/anomalyd/|g" \
        "$D/etc/anomalyd/anomalyd.json" > "$tmp/mapped.json"
    out=$("$D/usr/bin/anomalyd" check -c "$tmp/mapped.json" 2>&1); rc=$?
    if [ $rc -eq 0 ]; then it_ok "install: installed 'anomalyd check' accepts the installed config (models mapped into DESTDIR)"
    else it_fail "install: installed 'anomalyd check' accepts the installed config" "rc=$rc: $out"; fi
    # Installed for real (no DESTDIR) under a temporary prefix: no mapping.
    P=$tmp/prefix
    if $MAKE install PREFIX="$P" SYSCONFDIR="$tmp/etc" > "$tmp/install2.log" 2>&1; then
        out=$("$P/bin/anomalyd" check -c "$tmp/etc/anomalyd/anomalyd.json" 2>&1); rc=$?
        if [ $rc -eq 0 ]; then it_ok "install: PREFIX=tmp SYSCONFDIR=tmp: installed check accepts installed config as is"
        else it_fail "install: PREFIX=tmp SYSCONFDIR=tmp: installed check accepts installed config as is" "rc=$rc: $out"; fi
    else
        it_fail "install: make install PREFIX=tmp SYSCONFDIR=tmp" "$(cat "$tmp/install2.log")"
    fi
    # A broken config is refused by the same binary (the check can fail).
    echo '{"detectors": [{"name": "x", "topics": ["a/#"], "model": "nope.safetensors", "bogus": 1}]}' \
        > "$tmp/broken.json"
    out=$("$D/usr/bin/anomalyd" check -c "$tmp/broken.json" 2>&1); rc=$?
    if [ $rc -ne 0 ] && [ -n "$out" ]; then it_ok "install: installed 'anomalyd check' refuses a broken config (status $rc)"
    else it_fail "install: installed 'anomalyd check' refuses a broken config" "rc=$rc: $out"; fi ;;
esac

# --- reinstall keeps the user's config ------------------------------------------
echo '{"edited": "by the user"}' > "$D/etc/anomalyd/anomalyd.json"
$MAKE install PREFIX=/usr DESTDIR="$D" > "$tmp/install3.log" 2>&1
if grep -q '"edited"' "$D/etc/anomalyd/anomalyd.json" && [ -f "$D/etc/anomalyd/anomalyd.json.new" ]; then
    it_ok "install: reinstall keeps an edited config, puts the new one in anomalyd.json.new"
else
    it_fail "install: reinstall keeps an edited config" "$(cat "$tmp/install3.log")"
fi

# --- uninstall ------------------------------------------------------------------
$MAKE uninstall PREFIX=/usr DESTDIR="$D" > "$tmp/uninstall.log" 2>&1
left=$(cd "$D" && find . ! -type d | sort | tr '\n' ' ')
if [ "$left" = "./etc/anomalyd/anomalyd.json " ]; then
    it_ok "uninstall: removes everything but the user's config"
else
    it_fail "uninstall: removes everything but the user's config" "left: $left"
fi
$MAKE uninstall PREFIX=/usr DESTDIR="$D" PURGE=1 > "$tmp/uninstall.log" 2>&1
left=$(cd "$D" && find . ! -type d | sort | tr '\n' ' ')
if [ -z "$left" ] && [ ! -d "$D/etc/anomalyd" ] && [ ! -d "$D/usr/share/anomalyd" ]; then
    it_ok "uninstall PURGE=1: nothing left (config and its directory removed)"
else
    it_fail "uninstall PURGE=1: nothing left" "left: $left $(cd "$D" && find . -type d -name '*anomalyd*')"
fi

# --- man pages --------------------------------------------------------------------
for p in docs/man/anomalyd.8 docs/man/anomalyd.json.5; do
    out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$p" 2>&1)
    if command -v mandoc >/dev/null 2>&1; then
        out="$out$(mandoc -Tlint "$p" 2>&1)"
    fi
    if [ -z "$out" ] && [ "$(MANWIDTH=80 man -l "$p" 2>/dev/null | wc -l)" -gt 50 ]; then
        it_ok "man: $p renders without warnings"
    else
        it_fail "man: $p renders without warnings" "$out"
    fi
done

# anomalyd.json(5) against the parser's key table.
if [ -x "$BUILD/tools/config_doc" ]; then
    "$BUILD/tools/config_doc" > "$tmp/keys.md"
    out=$($PYTHON - "$tmp/keys.md" docs/man/anomalyd.json.5 <<'EOF'
import re, subprocess, sys
sys.path.insert(0, "tools")
import gen_man as g
rows = g.parse_rows(open(sys.argv[1]).read())
# The page as a reader sees it, one entry per key.
text = subprocess.run(["man", "-l", sys.argv[2]], capture_output=True, text=True,
                      env={"MANWIDTH": "200", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}).stdout
text = re.sub(r".\x08", "", text)
entries = {}
for m in re.finditer(r"^ {7}(\S+) \(([^)]*)\)\n((?: {14}.*\n)+)", text, re.M):
    entries[m.group(1)] = (m.group(2), " ".join(m.group(3).split()))
bad = []
for r in rows:
    e = entries.get(r["path"])
    if e is None:
        bad.append("%s: not documented" % r["path"]); continue
    typ, body = e
    d = r["default"]
    want = ("Default %s" % d.strip("`")) if d.startswith("`") else ("Required" if d == "required" else "Default: unset")
    rel = "Reload: yes" if r["reload"] == "yes" else "Reload: no"
    if typ != r["type"] or want not in body or rel not in body:
        bad.append("%s: page says (%s) %s; table: %s %s reload %s" % (r["path"], typ, body[:120], r["type"], d, r["reload"]))
extra = sorted(set(entries) - {r["path"] for r in rows})
if extra:
    bad.append("documented but not in the table: " + " ".join(extra))
print("%d keys" % len(rows) if not bad else "\n".join(bad))
EOF
)
    case "$out" in
    *" keys") it_ok "man: anomalyd.json(5) documents every config key, type, default, reload ($out)" ;;
    *) it_fail "man: anomalyd.json(5) matches the config key table (run tools/gen_man.py)" "$out" ;;
    esac
else
    it_fail "man: anomalyd.json(5) matches the config key table" "$BUILD/tools/config_doc not built"
fi

# anomalyd(8) against every command's --help: each option is documented.
out=$($PYTHON - "$AD_BIN" docs/man/anomalyd.8 <<'EOF'
import re, subprocess, sys
sys.path.insert(0, "tools")
import gen_man as g
page = subprocess.run(["man", "-l", sys.argv[2]], capture_output=True, text=True,
                      env={"MANWIDTH": "200", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}).stdout
page = re.sub(r".\x08", "", page)
sect = {}
for m in re.finditer(r"^   (\S.*)\n((?:(?!   \S).*\n)+)", page.split("\nOPTIONS\n", 1)[-1].split("\nSIGNALS\n")[0] + "\n", re.M):
    for c in m.group(1).split(", "):
        sect[c] = m.group(2)
bad, n = [], 0
for c in g.COMMANDS:
    h = subprocess.run([sys.argv[1], c, "--help"], capture_output=True, text=True)
    opts = set(re.findall(r"^ {2,6}(?:-\w, )?(--[\w-]+)", h.stdout + h.stderr, re.M))
    body = sect.get(c)
    if body is None:
        bad.append("%s: no OPTIONS subsection" % c); continue
    for o in sorted(opts):
        n += 1
        if not re.search(r"(^|\s)%s\b" % re.escape(o), body):
            bad.append("%s %s: not documented" % (c, o))
print("%d options" % n if not bad else "\n".join(bad))
EOF
)
case "$out" in
*" options") it_ok "man: anomalyd(8) documents every option of every command's --help ($out)" ;;
*) it_fail "man: anomalyd(8) documents every option of every command's --help (run tools/gen_man.py)" "$out" ;;
esac

# docs/config.md's "All keys" table is the key table, row for row
"$AD_BUILD/tools/config_doc" > "$tmp/keys.md"
awk '/^\| key \| type /{ getline; p = 1; next } p && /^\|/ { print; next } p { exit }' \
    docs/config.md > "$tmp/keys.doc"
if [ -s "$tmp/keys.md" ] && cmp -s "$tmp/keys.md" "$tmp/keys.doc"; then
    it_ok "docs/config.md: the key table is the code's ($(wc -l < "$tmp/keys.md") keys)"
else
    it_fail "docs/config.md: the key table is the code's (paste build/tools/config_doc)" \
        "$(diff "$tmp/keys.doc" "$tmp/keys.md" | head -6)"
fi
exit 0
