#!/bin/sh
# it_train_cli.sh - what `anomalyd train` tells about its output and input:
#  - an output in a directory that does not exist is refused before any
#    training (exit 1), naming the path given and the missing directory
#    (and its first missing level), never a temporary file name; so is one
#    whose directory, or a level above it, is a regular file (naming it),
#    and one in a directory the user cannot write to (with the reason);
#  - constant columns are trained on (exit 0) and named in one warning after
#    the result (no information; reproduced exactly with a training error of
#    0; a later change scored in raw units), with a second one when every
#    column is constant (the model learned nothing); none otherwise.
. tests/lib.sh
BIN=${AD_BIN:-build/anomalyd}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
$PYTHON - "$D" <<'PY'
import sys, math, random
d = sys.argv[1]
random.seed(5)
with open(d + "/data.csv", "w") as f:
    f.write("ts,flow,pressure,temp\n")
    for i in range(300):
        f.write("%d,%.5f,%.5f,%.5f\n" % (1577836800 + i, math.sin(i / 15.0) + random.gauss(0, 0.05),
                                        0.5 * math.cos(i / 15.0) + random.gauss(0, 0.05),
                                        20 + random.gauss(0, 0.05)))
PY
T="--window 10 --arch lstm-ae:8 --epochs 2 --seed 1"

"$BIN" train -i "$D/data.csv" -o "$D/missing/sub/m.safetensors" $T -q 2> "$D/miss.log"; rc=$?
want="anomalyd train: $D/missing/sub/m.safetensors: directory $D/missing/sub does not exist ($D/missing is missing)"
if [ $rc -eq 1 ] && [ "$(cat "$D/miss.log")" = "$want" ]; then
    it_ok "output in a missing directory: exit 1, naming the path and the missing directory"
else
    it_fail "output in a missing directory: exit 1, naming the path and the missing directory" \
        "rc $rc: $(cat "$D/miss.log")"
fi
"$BIN" train -i "$D/data.csv" -o "$D/missing/m.safetensors" $T -v 2> "$D/miss2.log"; rc=$?
if [ $rc -eq 1 ] && ! grep -q "epoch" "$D/miss2.log" && ! grep -q "tmp~" "$D/miss2.log" &&
   grep -q "^anomalyd train: $D/missing/m.safetensors: directory $D/missing does not exist$" "$D/miss2.log"; then
    it_ok "refused before training: no epoch run, no temporary name"
else
    it_fail "refused before training: no epoch run, no temporary name" "rc $rc: $(tail -3 "$D/miss2.log")"
fi
# a regular file where the output's directory should be, or above it
echo x > "$D/file"
for o in "$D/file/m.safetensors" "$D/file/sub/m.safetensors"; do
    "$BIN" train -i "$D/data.csv" -o "$o" $T -v 2> "$D/notdir.log"; rc=$?
    if [ $rc -eq 1 ] && ! grep -q "epoch" "$D/notdir.log" &&
       [ "$(cat "$D/notdir.log")" = "anomalyd train: $o: $D/file is not a directory" ]; then
        it_ok "output under a regular file (${o#$D/}): exit 1 before training, naming the path and the file"
    else
        it_fail "output under a regular file (${o#$D/}): exit 1 before training, naming the path and the file" \
            "rc $rc: $(tail -3 "$D/notdir.log")"
    fi
done
# a directory the user cannot write to: refused before training too, with
# the system's reason, and nothing left in it (root writes anywhere: the
# command runs as nobody then)
mkdir "$D/ro" && chmod 755 "$D/ro" && chmod 755 "$D"
as=""
[ "$(id -u)" = 0 ] && as="setpriv --reuid=65534 --regid=65534 --clear-groups"
[ -n "$as" ] || chmod 555 "$D/ro"
if [ -n "$as" ] && ! $as "$BIN" --version > /dev/null 2>&1; then
    it_skip "output in a directory without write permission" "nobody cannot run $BIN here"
else
$as "$BIN" train -i "$D/data.csv" -o "$D/ro/m.safetensors" $T -v 2> "$D/ro.log"; rc=$?
if [ $rc -eq 1 ] && ! grep -q "epoch" "$D/ro.log" && [ -z "$(ls -A "$D/ro")" ] &&
   [ "$(cat "$D/ro.log")" = "anomalyd train: $D/ro/m.safetensors: Permission denied" ]; then
    it_ok "output in a directory without write permission: exit 1 before training, with the reason"
else
    it_fail "output in a directory without write permission: exit 1 before training, with the reason" \
        "rc $rc: $(tail -3 "$D/ro.log")"
fi
fi
chmod 755 "$D/ro"
"$BIN" train -i "$D/data.csv" -o "$D/m.safetensors" $T -q 2> "$D/ok.log" && [ -s "$D/m.safetensors" ] &&
    it_ok "an existing directory: the model is written" ||
    it_fail "an existing directory: the model is written" "$(cat "$D/ok.log")"

# constant columns: trained (exit 0), and said after the result, by name
$PYTHON - "$D" <<'PY2'
import sys, math, random
d = sys.argv[1]
random.seed(6)
with open(d + "/const.csv", "w") as f:
    f.write("ts,flow,pressure,temp,valve\n")
    for i in range(300):
        f.write("%d,%.5f,%.5f,20,1\n" % (1577836800 + i, math.sin(i / 15.0) + random.gauss(0, 0.05),
                                         0.5 * math.cos(i / 15.0) + random.gauss(0, 0.05)))
PY2
"$BIN" train -i "$D/const.csv" -o "$D/c.safetensors" $T -v 2> "$D/const.log"; rc=$?
last=$(tail -1 "$D/const.log")
case "$rc|$last" in
    "0|anomalyd train: warning: columns 'temp' (always 20), 'valve' (always 1) are constant in the training rows: they carry no information;"*)
        it_ok "constant columns: trained, then one warning naming them: ${last#anomalyd train: warning: }" ;;
    *) it_fail "constant columns: trained, then one warning naming them" "rc $rc: $(tail -3 "$D/const.log")" ;;
esac
"$BIN" train -i "$D/const.csv" -o "$D/c1.safetensors" --features temp $T 2> "$D/const1.log"; rc=$?
if [ $rc -eq 0 ] &&
   grep -q "^anomalyd train: warning: column 'temp' (always 20) is constant in the training rows: it carries no information; the model reproduces it exactly" "$D/const1.log" &&
   grep -q "^anomalyd train: warning: every feature is constant: the training error is 0 and the model has learned nothing" "$D/const1.log"; then
    it_ok "only a constant column: trained, warned that the training error is 0 and nothing was learned"
else
    it_fail "only a constant column: trained, warned that the training error is 0 and nothing was learned" \
        "rc $rc: $(cat "$D/const1.log")"
fi
"$BIN" train -i "$D/data.csv" -o "$D/m2.safetensors" $T 2> "$D/var.log"
grep -q constant "$D/var.log" && it_fail "no warning without a constant column" "$(cat "$D/var.log")" ||
    it_ok "no warning without a constant column"
exit 0
