#!/bin/sh
# it_deb.sh - the Debian package (debian/): build it and check what it ships.
#
#  - `dpkg-buildpackage -us -uc -b` on a copy of the source tree (the tree
#    itself stays clean) builds anomalyd_<version>_<arch>.deb and its -dbgsym,
#    with <version> the one `anomalyd --version` prints;
#  - `dpkg-deb -c`: binary, unit and instance template with their user
#    drop-ins, conffile, every bundled
#    model, both man pages; `dpkg-deb -I`: the conffiles list and Depends
#    (adduser and the shared libraries found by dh_shlibdeps);
#  - the binary is stripped and its debug file is in -dbgsym (by build id);
#  - unpacked with `dpkg-deb -x`: the binary runs, `check -c` accepts the
#    installed config with its model paths (mapped into the scratch root),
#    the unit with the package's drop-in passes `systemd-analyze verify` and
#    runs /usr/bin/anomalyd as the user postinst creates, keeping its state
#    where the config says;
#  - lintian reports no errors.
# Skips (counted) when dpkg-buildpackage or debhelper is not installed
# (`make deps-dev` installs them), the lintian case alone without lintian.
. tests/lib.sh
# The package is a release build from a copy of the tree whatever the
# binary under test: under `make check` this would be make test's run again.
if ldd "${AD_BIN:-build/anomalyd}" 2>/dev/null | grep -q 'libasan\|libubsan'; then
    it_skip "deb: package build and contents" "sanitizer run: the package is a release build, checked by make test"
    exit 0
fi
for t in dpkg-buildpackage dh; do
    if ! command -v $t >/dev/null 2>&1; then
        it_skip "deb: package build and contents" "$t not installed (make deps-dev)"
        exit 0
    fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# --- build on a copy ------------------------------------------------------------
ver=$(sed -n 's/^#define AD_VERSION "\(.*\)"$/\1/p' lib/ad.h)
dver=$(dpkg-parsechangelog -S Version)
if [ -n "$ver" ] && [ "$dver" = "$ver" ]; then
    it_ok "deb: debian/changelog version $dver is the daemon's AD_VERSION"
else
    it_fail "deb: debian/changelog version is the daemon's AD_VERSION" "changelog $dver, lib/ad.h '$ver'"
fi
arch=$(dpkg --print-architecture)
S=$tmp/src/anomalyd-$dver
mkdir -p "$S"
tar --exclude=./build --exclude=./.git -cf - . | tar -C "$S" -xf -
t0=$(date +%s)
# The package is built as a user builds it: not with the variables of the make
# that runs the tests (under `make check`, MAKEFLAGS carries BUILD=build/san
# SAN=1 CFLAGS=..., which would turn debian/rules into a sanitizer build).
if ! (cd "$S" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
        -u BUILD -u SAN -u CFLAGS DEB_BUILD_OPTIONS="parallel=2" \
        dpkg-buildpackage -us -uc -b) \
        > "$tmp/build.log" 2>&1; then
    it_fail "deb: dpkg-buildpackage -us -uc -b" "$(tail -40 "$tmp/build.log")"
    exit 0
fi
deb=$tmp/src/anomalyd_${dver}_$arch.deb
dbg=$tmp/src/anomalyd-dbgsym_${dver}_$arch.deb
if [ -f "$deb" ] && [ -f "$dbg" ]; then
    it_ok "deb: dpkg-buildpackage builds $(basename "$deb") ($(wc -c < "$deb") bytes) and -dbgsym in $(( $(date +%s) - t0 ))s"
else
    it_fail "deb: dpkg-buildpackage builds anomalyd_${dver}_$arch.deb and -dbgsym" \
        "built: $(ls "$tmp/src")"
    exit 0
fi

# --- contents -------------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' > "$tmp/files"
want="/usr/bin/anomalyd /lib/systemd/system/anomalyd.service
/lib/systemd/system/anomalyd.service.d/user.conf /etc/anomalyd/anomalyd.json
/lib/systemd/system/anomalyd@.service /lib/systemd/system/anomalyd@.service.d/user.conf
/usr/share/man/man8/anomalyd.8.gz /usr/share/man/man5/anomalyd.json.5.gz
/usr/share/doc/anomalyd/copyright"
for m in conf/models/*.safetensors; do
    [ -f "$m" ] && want="$want /usr/share/anomalyd/models/$(basename "$m")"
done
missing=
for f in $want; do grep -qx -- "$f" "$tmp/files" || missing="$missing $f"; done
if [ -z "$missing" ]; then it_ok "deb: contents: binary, unit and template with drop-ins, config, models, man pages"
else it_fail "deb: contents: binary, unit and template with drop-ins, config, models, man pages" "missing:$missing"; fi

conff=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles 2>/dev/null)
if [ "$(echo "$conff" | sed '/^$/d')" = "/etc/anomalyd/anomalyd.json" ]; then
    it_ok "deb: /etc/anomalyd/anomalyd.json is the one conffile"
else
    it_fail "deb: /etc/anomalyd/anomalyd.json is the one conffile" "conffiles: $conff"
fi
dep=$(dpkg-deb -f "$deb" Depends)
bad=
for p in adduser libc6 libuv1 libmosquitto1 libcjson1 libsystemd0 libopenblas0; do
    echo "$dep" | grep -Eq "(^|, )$p( |,|$)" || bad="$bad $p"
done
if [ -z "$bad" ]; then it_ok "deb: Depends: adduser and the shared libraries ($dep)"
else it_fail "deb: Depends: adduser and the shared libraries" "missing:$bad in: $dep"; fi

# --- unpacked: stripped binary, debug symbols, it runs ----------------------------
R=$tmp/root
dpkg-deb -x "$deb" "$R"
dpkg-deb -x "$dbg" "$tmp/dbg"
bid=$(readelf -n "$R/usr/bin/anomalyd" | sed -n 's/.*Build ID: *//p')
dfile=$tmp/dbg/usr/lib/debug/.build-id/$(echo "$bid" | cut -c1-2)/$(echo "$bid" | cut -c3-).debug
if [ -n "$bid" ] && ! readelf -S "$R/usr/bin/anomalyd" | grep -q -e '\.symtab' -e '\.debug_info' &&
   [ -f "$dfile" ] && readelf -S "$dfile" 2>/dev/null | grep -q '\.debug_info'; then
    it_ok "deb: binary stripped, its debug info in -dbgsym (build id $bid)"
else
    it_fail "deb: binary stripped, its debug info in -dbgsym" \
        "build id '$bid'; binary sections: $(readelf -S "$R/usr/bin/anomalyd" | grep -o '\.symtab\|\.debug_[a-z]*' | tr '\n' ' '); debug file $dfile"
fi

out=$("$R/usr/bin/anomalyd" --version 2>&1)
if [ "$out" = "anomalyd $dver" ]; then it_ok "deb: installed binary runs: --version says '$out'"
else it_fail "deb: installed binary prints 'anomalyd $dver'" "got: $out"; fi

bad=$($PYTHON - "$R" <<'EOF'
import json, os, sys
r = sys.argv[1]
c = json.load(open(r + "/etc/anomalyd/anomalyd.json"))
n = 0
for det in c.get("detectors", []):
    m = det.get("model")
    if m is None:
        continue
    n += 1
    if not m.startswith("/usr/share/anomalyd/models/") or not os.path.isfile(r + m):
        print("%s: %s" % (det.get("name"), m))
if n == 0:
    print("no detector names a model")
EOF
)
if [ -z "$bad" ]; then it_ok "deb: config's models are the packaged ones under /usr/share/anomalyd/models"
else it_fail "deb: config's models are the packaged ones under /usr/share/anomalyd/models" "$bad"; fi
sed "s|\"/usr/share/anomalyd/|\"$R/usr/share/anomalyd/|g" "$R/etc/anomalyd/anomalyd.json" > "$tmp/mapped.json"
out=$("$R/usr/bin/anomalyd" check -c "$tmp/mapped.json" 2>&1); rc=$?
if [ $rc -eq 0 ]; then it_ok "deb: installed 'anomalyd check' accepts the installed config (models mapped into the root)"
else it_fail "deb: installed 'anomalyd check' accepts the installed config" "rc=$rc: $out"; fi

# --- the service: unit + drop-in, user and state directory -----------------------
U=$R/lib/systemd/system
es=$(sed -n 's/^ExecStart=//p' "$U/anomalyd.service")
mkdir -p "$tmp/unit"
cp -r "$U/anomalyd.service.d" "$tmp/unit/"
sed "s|^ExecStart=/usr/bin/anomalyd |ExecStart=$R/usr/bin/anomalyd |" "$U/anomalyd.service" \
    > "$tmp/unit/anomalyd.service"
out=$(SYSTEMD_UNIT_PATH="$tmp/unit:" MANPATH="$R/usr/share/man" \
      systemd-analyze verify anomalyd.service 2>&1); rc=$?
if [ "$es" = "/usr/bin/anomalyd run -c /etc/anomalyd/anomalyd.json" ] && [ $rc -eq 0 ] && [ -z "$out" ]; then
    it_ok "deb: unit runs /usr/bin/anomalyd with /etc/anomalyd/anomalyd.json; with its drop-in it passes systemd-analyze verify"
else
    it_fail "deb: unit ExecStart= and systemd-analyze verify (with drop-in)" "ExecStart=$es; rc=$rc: $out"
fi
# The instance template with its drop-in: an instance verifies and runs as
# the same user, state in /var/lib/anomalyd/<instance> (what --state-dir gets).
cp -r "$U/anomalyd@.service.d" "$tmp/unit/"
sed "s|^ExecStart=/usr/bin/anomalyd |ExecStart=$R/usr/bin/anomalyd |" "$U/anomalyd@.service" \
    > "$tmp/unit/anomalyd@.service"
out=$(SYSTEMD_UNIT_PATH="$tmp/unit:" MANPATH="$R/usr/share/man" \
      systemd-analyze verify anomalyd@line3.service 2>&1); rc=$?
tu=$(sed -n "s/^User=//p" "$U/anomalyd@.service.d/"*.conf | tail -1)
tes=$(sed -n 's/^ExecStart=//p' "$U/anomalyd@.service")
tsd=$(sed -n 's/^StateDirectory=//p' "$U/anomalyd@.service")
if [ $rc -eq 0 ] && [ -z "$out" ] && [ "$tu" = anomalyd ] && [ "$tsd" = "anomalyd/%i" ] &&
   [ "$tes" = "/usr/bin/anomalyd run -c /etc/anomalyd/%i.json --state-dir /var/lib/anomalyd/%i" ]; then
    it_ok "deb: template instance anomalyd@line3 passes systemd-analyze verify, runs as anomalyd, state in /var/lib/anomalyd/line3"
else
    it_fail "deb: template instance with its drop-in" "User=$tu ExecStart=$tes StateDirectory=$tsd; rc=$rc: $out"
fi
# The service's user is the one postinst creates; its state directory is
# where postinst creates it and where the config keeps state.
get() { sed -n "s/^$1=//p" "$U/anomalyd.service" "$U/anomalyd.service.d/"*.conf | tail -1; }
post=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst)
sd=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1])).get("state_dir",""))' "$R/etc/anomalyd/anomalyd.json")
u=$(get User); dyn=$(get DynamicUser); st=$(get StateDirectory)
au=$(echo "$post" | grep -n 'adduser --system' | cut -d: -f1)
en=$(echo "$post" | grep -n "deb-systemd-helper enable 'anomalyd.service'" | cut -d: -f1)
if [ "$u" = anomalyd ] && [ "$dyn" = no ] && [ "$st" = anomalyd ] &&
   [ "$sd" = /var/lib/anomalyd ] && echo "$post" | grep -q -- '--home /var/lib/anomalyd' &&
   echo "$post" | grep -q 'install -d -m 0700 -o anomalyd -g anomalyd /var/lib/anomalyd' &&
   [ -n "$au" ] && [ -n "$en" ] && [ "$au" -lt "$en" ]; then
    it_ok "deb: service runs as system user anomalyd (postinst adduser before enable), state in /var/lib/anomalyd"
else
    it_fail "deb: service user and state directory consistent" \
        "User=$u DynamicUser=$dyn StateDirectory=$st config state_dir=$sd; adduser line $au, enable line $en"
fi
if dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst | grep -q 'deb-systemd-invoke start'; then
    it_fail "deb: service enabled, not started on install" "postinst starts it"
else
    it_ok "deb: service enabled, not started on install (waits for a configured broker)"
fi

# --- lintian ------------------------------------------------------------------------
if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on none "$tmp/src/anomalyd_${dver}_$arch.changes" > "$tmp/lintian.log" 2>&1; rc=$?
    e=$(grep -c '^E: ' "$tmp/lintian.log"); w=$(grep -c '^W: ' "$tmp/lintian.log")
    if [ $rc -eq 0 ] && [ "$e" -eq 0 ]; then
        it_ok "deb: lintian: no errors ($w warnings)"
        grep '^W: ' "$tmp/lintian.log" | sed 's/^/  /'
    else
        it_fail "deb: lintian: no errors" "rc=$rc: $(cat "$tmp/lintian.log")"
    fi
else
    it_skip "deb: lintian reports no errors" "lintian not installed (make deps-dev)"
fi
exit 0
