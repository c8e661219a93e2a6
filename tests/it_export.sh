#!/bin/sh
# it_export.sh - the exporters end to end: a tiny PyTorch autoencoder is
# exported by tools/export_torch.py (from a state_dict and from TorchScript)
# and by tools/export_keras.py (from Keras get_weights() arrays with a Keras 2
# Sequential and a Keras 3 Functional to_json()); all four files must be
# byte-identical, `anomalyd info` must load them, and `anomalyd score` on a
# CSV must give PyTorch's per-window reconstruction errors (rel 1e-4). Also:
# the exporters refuse a spec that does not describe the model, and a weight
# list that does not fit the architecture.
# Needs PyTorch (python3-torch, `make deps`): without it every case is
# reported as a skip, with the reason.
. "$(dirname "$0")/lib.sh"
SRC=${AD_SRCDIR:-.}
TOOLS=$SRC/tools

if ! $PYTHON -c 'import torch, numpy' 2>/dev/null; then
    why="$PYTHON cannot import torch and numpy (Debian python3-torch, make deps)"
    for c in "export_torch from a state_dict" \
        "export_torch from TorchScript (checked against its own forward)" \
        "export_keras from get_weights() + Keras 2 Sequential JSON" \
        "export_keras from get_weights() + Keras 3 Functional JSON" \
        "all four exports are byte-identical" "anomalyd info loads the exported model" \
        "anomalyd score on the exported model matches PyTorch" \
        "export_torch refuses a spec that does not match the module's forward" \
        "export_keras refuses a weight list that does not fit" \
        "export_torch refuses modules the format cannot express"; do
        it_skip "$c" "$why"
    done
    exit 0
fi
if [ ! -x "$AD_BIN" ]; then
    it_fail "export" "$AD_BIN not built"
    exit 1
fi

D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

# A tiny model (own module names, as a user would have), its weights in
# every form the exporters take, a CSV of raw samples and PyTorch's scores.
cat > "$D/make.py" <<'EOF'
import json, sys
import numpy as np
import torch, torch.nn as nn
d = sys.argv[1]
T, F, H = 6, 2, 5
torch.manual_seed(3)

class AE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.LSTM(F, H, batch_first=True)
        self.dec = nn.LSTM(H, H, batch_first=True)
        self.head = nn.Linear(H, F)

    def forward(self, x):
        z = self.enc(x)[0][:, -1:, :].expand(-1, x.shape[1], -1)
        return torch.sigmoid(self.head(self.dec(z)[0]))

m = AE().eval()
torch.save(m.state_dict(), d + "/state.pt")
torch.jit.script(m).save(d + "/scripted.pt")
scaler = {"type": "standard", "mean": [10.0, -2.0], "std": [2.0, 0.5]}
spec = {"window": T, "features": ["temp", "flow"], "scaler": scaler,
        "provenance": {"run": "it_export"},
        "architecture": [
            {"type": "lstm", "units": H, "return_sequences": False, "torch": "enc."},
            {"type": "repeat_vector", "n": T},
            {"type": "lstm", "units": H, "return_sequences": True, "torch": "dec."},
            {"type": "time_distributed_dense", "units": F, "activation": "sigmoid",
             "torch": "head."}]}
json.dump(spec, open(d + "/spec.json", "w"))
bad = json.loads(json.dumps(spec))
bad["architecture"][3]["activation"] = "tanh"
json.dump(bad, open(d + "/bad_spec.json", "w"))

# Keras get_weights() order, written out from the PyTorch tensors.
sd = m.state_dict()
w = []
for p in ("enc.", "dec."):
    w += [sd[p + "weight_ih_l0"].numpy().T, sd[p + "weight_hh_l0"].numpy().T,
          (sd[p + "bias_ih_l0"] + sd[p + "bias_hh_l0"]).numpy()]
w += [sd["head.weight"].numpy().T, sd["head.bias"].numpy()]
np.savez(d + "/weights.npz", *w)
np.savez(d + "/short.npz", *w[:-1])
k2 = {"class_name": "Sequential", "config": {"name": "ae", "layers": [
    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, T, F]}},
    {"class_name": "LSTM", "config": {"name": "l1", "units": H, "activation": "tanh",
     "recurrent_activation": "sigmoid", "return_sequences": False, "use_bias": True}},
    {"class_name": "Dropout", "config": {"name": "dr", "rate": 0.2}},
    {"class_name": "RepeatVector", "config": {"name": "rv", "n": T}},
    {"class_name": "LSTM", "config": {"name": "l2", "units": H, "activation": "tanh",
     "recurrent_activation": "sigmoid", "return_sequences": True}},
    {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
     "class_name": "Dense", "config": {"units": F, "activation": "sigmoid"}}}}]}}
json.dump(k2, open(d + "/keras2.json", "w"))

def hist(n):
    return [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None], "dtype": "float32", "keras_history": [n, 0, 0]}}],
        "kwargs": {}}]
k3 = {"module": "keras", "class_name": "Functional", "config": {"name": "ae", "layers": [
    {"module": "keras.layers", "class_name": "InputLayer", "name": "inp",
     "config": {"batch_shape": [None, T, F], "name": "inp"}, "inbound_nodes": []},
    {"module": "keras.layers", "class_name": "LSTM", "name": "l1",
     "config": {"name": "l1", "units": H, "activation": "tanh",
                "recurrent_activation": "sigmoid", "return_sequences": False},
     "inbound_nodes": hist("inp")},
    {"module": "keras.layers", "class_name": "RepeatVector", "name": "rv",
     "config": {"name": "rv", "n": T}, "inbound_nodes": hist("l1")},
    {"module": "keras.layers", "class_name": "LSTM", "name": "l2",
     "config": {"name": "l2", "units": H, "activation": "tanh",
                "recurrent_activation": "sigmoid", "return_sequences": True},
     "inbound_nodes": hist("rv")},
    {"module": "keras.layers", "class_name": "Dense", "name": "out",
     "config": {"name": "out", "units": F, "activation": "linear"},
     "inbound_nodes": hist("l2")},
    {"module": "keras.layers", "class_name": "Activation", "name": "act",
     "config": {"name": "act", "activation": "sigmoid"},
     "inbound_nodes": hist("out")}]}}
json.dump(k3, open(d + "/keras3.json", "w"))

# Raw samples, and PyTorch's mse per window (hop 1) on the scaled data.
rng = np.random.RandomState(5)
N = 40
raw = np.stack([10 + 2 * rng.randn(N), -2 + 0.5 * rng.randn(N)], axis=1).astype(np.float32)
raw[25] += [6.0, 2.0]                      # something to reconstruct badly
with open(d + "/data.csv", "w") as f:
    f.write("time,temp,flow\n")
    for i, r in enumerate(raw):
        f.write("%d,%.9g,%.9g\n" % (i, r[0], r[1]))
xs = ((raw - np.float32([10, -2])) / np.float32([2, 0.5])).astype(np.float32)
win = np.stack([xs[i:i + T] for i in range(N - T + 1)])
with torch.no_grad():
    y = m(torch.from_numpy(win)).numpy()
mse = ((win.astype(np.float64) - y) ** 2).mean(axis=(1, 2))
with open(d + "/expected.txt", "w") as f:
    for i, v in enumerate(mse):
        f.write("%d %.9g\n" % (i + T - 1, v))
EOF

if ! $PYTHON "$D/make.py" "$D" > "$D/make.log" 2>&1; then
    it_fail "export: build the tiny PyTorch model" "$(cat "$D/make.log")"
    exit 1
fi

run() { # run NAME CMD...: ok when CMD succeeds, output shown on failure
    n=$1; shift
    if "$@" > "$D/out.log" 2>&1; then it_ok "$n"; else it_fail "$n" "$(cat "$D/out.log")"; fi
}

run "export_torch from a state_dict" \
    $PYTHON "$TOOLS/export_torch.py" --spec "$D/spec.json" --weights "$D/state.pt" -o "$D/a.safetensors"
run "export_torch from TorchScript (checked against its own forward)" \
    $PYTHON "$TOOLS/export_torch.py" --spec "$D/spec.json" --weights "$D/scripted.pt" -o "$D/b.safetensors"
run "export_keras from get_weights() + Keras 2 Sequential JSON" \
    $PYTHON "$TOOLS/export_keras.py" --arch "$D/keras2.json" --weights "$D/weights.npz" \
        --features temp,flow --scaler '{"type":"standard","mean":[10,-2],"std":[2,0.5]}' \
        --provenance '{"run":"it_export"}' -o "$D/c.safetensors"
run "export_keras from get_weights() + Keras 3 Functional JSON" \
    $PYTHON "$TOOLS/export_keras.py" --arch "$D/keras3.json" --weights "$D/weights.npz" \
        --features temp,flow --scaler '{"type":"standard","mean":[10,-2],"std":[2,0.5]}' \
        --provenance '{"run":"it_export"}' -o "$D/d.safetensors"

same=1
for f in b c d; do
    cmp -s "$D/a.safetensors" "$D/$f.safetensors" || same=0
done
if [ $same = 1 ]; then it_ok "all four exports are byte-identical"
else it_fail "all four exports are byte-identical" "$(ls -l "$D"/*.safetensors)"; fi

if "$AD_BIN" info "$D/a.safetensors" > "$D/info.txt" 2>&1 &&
   grep -q "window: *6" "$D/info.txt" && grep -q "temp flow" "$D/info.txt"; then
    it_ok "anomalyd info loads the exported model"
else
    it_fail "anomalyd info loads the exported model" "$(cat "$D/info.txt")"
fi

if "$AD_BIN" score --model "$D/a.safetensors" --input "$D/data.csv" > "$D/scores.txt" 2> "$D/score.err"; then
    if $PYTHON - "$D/expected.txt" "$D/scores.txt" > "$D/cmp.txt" 2>&1 <<'EOF'
import sys
exp = [l.split() for l in open(sys.argv[1])]
got = [l.split() for l in open(sys.argv[2])]
assert len(exp) == len(got), "%d windows, expected %d" % (len(got), len(exp))
worst = 0.0
for e, g in zip(exp, got):
    assert e[0] == g[0], "window index %s, expected %s" % (g[0], e[0])
    rel = abs(float(g[1]) - float(e[1])) / max(abs(float(e[1])), 1e-6)
    worst = max(worst, rel)
print("%d windows, worst relative error of mse vs PyTorch %.2e" % (len(exp), worst))
assert worst <= 1e-4, "worst relative error %g > 1e-4" % worst
EOF
    then
        it_ok "anomalyd score on the exported model matches PyTorch"
        echo "# $(cat "$D/cmp.txt")"
    else
        it_fail "anomalyd score on the exported model matches PyTorch" "$(cat "$D/cmp.txt")"
    fi
else
    it_fail "anomalyd score on the exported model matches PyTorch" "$(cat "$D/score.err")"
fi

if $PYTHON "$TOOLS/export_torch.py" --spec "$D/bad_spec.json" --weights "$D/scripted.pt" \
        -o "$D/bad.safetensors" > "$D/bad.log" 2>&1; then
    it_fail "export_torch refuses a spec that does not match the module's forward" \
        "exit 0: $(cat "$D/bad.log")"
elif [ -e "$D/bad.safetensors" ]; then
    it_fail "export_torch refuses a spec that does not match the module's forward" \
        "left a file behind"
elif grep -q "differs from the exported model" "$D/bad.log"; then
    it_ok "export_torch refuses a spec that does not match the module's forward"
else
    it_fail "export_torch refuses a spec that does not match the module's forward" "$(cat "$D/bad.log")"
fi

if $PYTHON "$TOOLS/export_keras.py" --arch "$D/keras2.json" --weights "$D/short.npz" \
        --features temp,flow -o "$D/short.safetensors" > "$D/short.log" 2>&1; then
    it_fail "export_keras refuses a weight list that does not fit" "exit 0"
elif grep -q "needs bias" "$D/short.log" && [ ! -e "$D/short.safetensors" ]; then
    it_ok "export_keras refuses a weight list that does not fit"
else
    it_fail "export_keras refuses a weight list that does not fit" "$(cat "$D/short.log")"
fi

# What cannot be expressed in the format is refused with the module named.
if $PYTHON - "$TOOLS" > "$D/refuse.log" 2>&1 <<'EOF2'
import sys
sys.path.insert(0, sys.argv[1])
import torch.nn as nn
import adformat
from export_torch import convert, LastStep, RepeatVector
bad = {
    "bidirectional": ([nn.LSTM(2, 3, batch_first=True, bidirectional=True),
                       nn.Linear(6, 2)], "unidirectional"),
    "two layers": ([nn.LSTM(2, 3, num_layers=2, batch_first=True),
                    nn.Linear(3, 2)], "num_layers=1"),
    "not batch_first": ([nn.LSTM(2, 3), nn.Linear(3, 2)], "batch_first"),
    "activation after lstm": ([nn.LSTM(2, 3, batch_first=True), nn.ReLU(),
                               nn.Linear(3, 2)], "must follow an nn.Linear"),
    "repeat of a sequence": ([nn.LSTM(2, 3, batch_first=True), RepeatVector(4),
                              nn.Linear(3, 2)], "needs a vector"),
    "wrong input size": ([nn.LSTM(5, 3, batch_first=True), nn.Linear(3, 2)],
                         "input_size 5"),
    "wrong output": ([nn.LSTM(2, 3, batch_first=True), nn.Linear(3, 3)],
                     "final output"),
    "gru": ([nn.GRU(2, 3, batch_first=True), nn.Linear(3, 2)], "not supported"),
}
for name, (mods, want) in bad.items():
    try:
        convert(mods, 4, 2)
    except (ValueError, adformat.FormatError) as e:
        assert want in str(e), "%s: message %r lacks %r" % (name, str(e), want)
        print("%s: refused: %s" % (name, e))
    else:
        raise AssertionError("%s: accepted" % name)
EOF2
then it_ok "export_torch refuses modules the format cannot express"
else it_fail "export_torch refuses modules the format cannot express" "$(cat "$D/refuse.log")"; fi
