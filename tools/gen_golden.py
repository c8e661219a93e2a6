#!/usr/bin/python3
"""gen_golden - write the golden reference files that tests/test_golden.c
checks the C engine against.

    /usr/bin/python3 tools/gen_golden.py tests/golden      (= make golden)

For every case: random weights and B random N(0,1) windows (fixed seeds),
the model built from PyTorch modules (nn.LSTM, nn.Linear, ... or the manual
KerasLSTM cell for relu LSTMs), float32 forward pass in PyTorch, and:
  NAME.safetensors     the model, written by tools/export_torch.py; the same
                       weights, converted to Keras get_weights() arrays and
                       written by tools/export_keras.py (through its command
                       line, from an .npz and a Keras model.to_json()-style
                       architecture), must give a byte-identical file
                       (asserted here).
  NAME.io.safetensors  tensors "input" (B,T,F) scaled windows, "raw" (B,T,F)
                       the same windows before the model's scaler,
                       "output" (B,T,F) PyTorch's reconstruction, "mse" (B),
                       "mae" (B), "share_mse" (B,F), "share_mae" (B,F): the
                       per-feature shares of the squared / absolute error.
                       Errors and raw are computed in float64 from the
                       float32 input/output, then stored as float32.
Also asserted here, so a broken reference cannot be committed:
  - the manual KerasLSTM cell with tanh equals nn.LSTM (same weights);
  - PyTorch float32 vs float64 forward agree (<= 1e-5);
  - the exported file run by adformat.forward (numpy, Keras semantics, float64)
    equals PyTorch float64 (<= 1e-9): layouts and gate order are right.
Deterministic: running it twice gives byte-identical files (one thread).
"""

import copy
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import adformat  # noqa: E402
import export_torch  # noqa: E402
from export_torch import KerasLSTM, LastStep, RepeatVector, Sequence  # noqa: E402

B = 4


def lstm(i, h):
    return nn.LSTM(i, h, batch_first=True)


# name, T, F, module builder, weight range a (uniform +-a), scaler kind,
# Keras to_json() class names per module for the Keras-path export.
CASES = [
    # 1. the reference stack (100,1)
    ("seed_stack", 100, 1,
     lambda: [lstm(1, 64), lstm(64, 32), lstm(32, 64), nn.Linear(64, 1)],
     0.5, "standard"),
    # 2. encoder -> RepeatVector -> decoder
    ("repeat_ae", 10, 8,
     lambda: [lstm(8, 100), LastStep(), RepeatVector(10), lstm(100, 100),
              nn.Linear(100, 8)],
     0.5, "standard"),
    # 3. dense autoencoder on flattened windows, every activation
    ("dense_ae", 10, 8,
     lambda: [nn.Flatten(), nn.Linear(80, 32), nn.ReLU(), nn.Linear(32, 8),
              nn.Tanh(), nn.Linear(8, 32), nn.Sigmoid(), nn.Linear(32, 80)],
     0.5, "minmax"),
    # 4. relu-cell LSTM autoencoder (the SKAB published LSTM-AE shape)
    ("relu_ae", 10, 8,
     lambda: [KerasLSTM(8, 100, "relu", return_sequences=False),
              RepeatVector(10), KerasLSTM(100, 100, "relu"), nn.Linear(100, 8)],
     0.2, "standard"),
    # 5. small odd sizes, H = 1
    ("odd_small", 7, 3,
     lambda: [lstm(3, 5), lstm(5, 1), nn.Linear(1, 3)],
     0.5, "minmax"),
    # 5b. a window of one step
    ("single_step", 1, 2,
     lambda: [lstm(2, 4), LastStep(), RepeatVector(1), lstm(4, 4),
              nn.Linear(4, 2)],
     0.5, "none"),
]


def init_uniform(mods, a, g):
    """Every parameter uniform in [-a, a], in module order (deterministic),
    rounded to multiples of 2^-16 so that bias_ih + bias_hh is exact in
    float32: the file then holds exactly the weights PyTorch ran with."""
    with torch.no_grad():
        for m in mods:
            for _, p in m.named_parameters():
                u = (torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * a
                p.copy_((torch.round(u * 65536) / 65536).to(torch.float32))


def make_scaler(kind, F, g):
    if kind == "standard":
        mean = (torch.randn(F, generator=g, dtype=torch.float64) * 3).numpy()
        std = (0.5 + torch.rand(F, generator=g, dtype=torch.float64) * 2).numpy()
        return {"type": "standard", "mean": mean.astype(np.float32).tolist(),
                "std": std.astype(np.float32).tolist()}
    if kind == "minmax":
        lo = (torch.randn(F, generator=g, dtype=torch.float64) * 3).numpy()
        span = (1 + torch.rand(F, generator=g, dtype=torch.float64) * 5).numpy()
        lo32 = lo.astype(np.float32)
        hi32 = (lo + span).astype(np.float32)
        return {"type": "minmax", "min": lo32.tolist(), "max": hi32.tolist()}
    return {"type": "none"}


def unscale(scaler, x):
    """Scaled windows -> raw values (float64), inverse of the model scaler."""
    x = np.asarray(x, dtype=np.float64)
    if scaler["type"] == "standard":
        return x * np.asarray(scaler["std"]) + np.asarray(scaler["mean"])
    if scaler["type"] == "minmax":
        lo, hi = np.asarray(scaler["min"]), np.asarray(scaler["max"])
        return x * (hi - lo) + lo
    return x


def keras_json(name, mods, T, F):
    """A Keras 2 style model.to_json() for the module list (what a Keras
    user would hand to export_keras.py)."""
    layers = [{"class_name": "InputLayer",
               "config": {"batch_input_shape": [None, T, F], "dtype": "float32",
                          "name": "input_1"}}]
    seq = True
    mods = export_torch.flatten_modules(mods)
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, (nn.LSTM, KerasLSTM)):
            rs = m.return_sequences if isinstance(m, KerasLSTM) else True
            if isinstance(nxt, LastStep):
                rs, i = False, i + 1
            act = m.activation if isinstance(m, KerasLSTM) else "tanh"
            layers.append({"class_name": "LSTM", "config": {
                "name": "lstm_%d" % i, "units": m.hidden_size, "activation": act,
                "recurrent_activation": "sigmoid", "use_bias": True,
                "return_sequences": rs, "return_state": False,
                "go_backwards": False, "stateful": False, "unroll": False,
                "time_major": False, "unit_forget_bias": True}})
            seq = rs
        elif isinstance(m, nn.Linear):
            act = "linear"
            if nxt is not None and type(nxt) in export_torch.ACT_MODULES:
                act, i = export_torch.ACT_MODULES[type(nxt)], i + 1
            dense = {"class_name": "Dense", "config": {
                "name": "dense_%d" % i, "units": m.out_features,
                "activation": act, "use_bias": True}}
            layers.append({"class_name": "TimeDistributed",
                           "config": {"name": "td_%d" % i, "layer": dense}}
                          if seq else dense)
        elif isinstance(m, RepeatVector):
            layers.append({"class_name": "RepeatVector",
                           "config": {"name": "rv_%d" % i, "n": m.n}})
            seq = True
        elif isinstance(m, nn.Flatten):
            layers.append({"class_name": "Flatten", "config": {"name": "fl_%d" % i}})
            seq = False
        else:
            raise AssertionError("keras_json: %r" % m)
        i += 1
    return {"class_name": "Sequential", "config": {"name": name, "layers": layers},
            "keras_version": "2.11.0", "backend": "tensorflow"}


def keras_get_weights(mods):
    """What Keras' model.get_weights() would return for these weights,
    written out directly from the PyTorch tensors (not via export_torch)."""
    out = []
    for m in export_torch.flatten_modules(mods):
        if isinstance(m, (nn.LSTM, KerasLSTM)):
            w_ih = m.weight_ih_l0.detach().numpy()
            w_hh = m.weight_hh_l0.detach().numpy()
            b = m.bias_ih_l0.detach().numpy() + m.bias_hh_l0.detach().numpy()
            out += [w_ih.T.copy(), w_hh.T.copy(), b.astype(np.float32)]
        elif isinstance(m, nn.Linear):
            out += [m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()]
    return out


def check_manual_cell(g):
    """KerasLSTM (manual cell, tanh) must equal nn.LSTM with the same weights:
    the relu case relies on the manual cell being right."""
    ref = lstm(8, 16)
    init_uniform([ref], 0.5, g)
    man = KerasLSTM(8, 16, "tanh")
    man.load_state_dict(ref.state_dict())
    x = torch.randn(3, 12, 8, generator=g)
    with torch.no_grad():
        d = (ref(x)[0] - man(x)).abs().max().item()
    assert d < 1e-6, "manual LSTM cell differs from nn.LSTM by %g" % d
    return d


def gen_case(outdir, tmp, idx, name, T, F, build, a, scaler_kind):
    seed = 1000 + idx
    g = torch.Generator().manual_seed(seed)
    mods = build()
    init_uniform(mods, a, g)
    scaler = make_scaler(scaler_kind, F, g)
    x = torch.randn(B, T, F, generator=g, dtype=torch.float64).to(torch.float32)
    seq = Sequence(mods).eval()
    with torch.no_grad():
        y = seq(x)
        y64 = copy.deepcopy(seq).double()(x.double())
    d32 = float((y.double() - y64).abs().max())
    assert d32 <= 1e-5, "%s: float32 vs float64 PyTorch differ by %g" % (name, d32)

    features = ["%s_%d" % (name.split("_")[0], f) for f in range(F)]
    prov = {"generator": "tools/gen_golden.py", "case": name, "seed": seed}
    path = os.path.join(outdir, name + ".safetensors")
    export_torch.export(mods, path, T, features, scaler, prov)
    with open(path, "rb") as f:
        model_data = f.read()

    # The numpy reading of the written file equals PyTorch (float64).
    model = adformat.read_model(model_data)
    dnp = float(np.max(np.abs(adformat.forward(model, x.numpy()) - y64.numpy())))
    assert dnp <= 1e-9, "%s: file (numpy) vs PyTorch float64 differ by %g" % (name, dnp)

    # The Keras path: get_weights() arrays + to_json() -> export_keras.py CLI.
    npz = os.path.join(tmp, name + ".npz")
    np.savez(npz, *keras_get_weights(mods))
    kj = os.path.join(tmp, name + ".json")
    with open(kj, "w") as f:
        json.dump(keras_json(name, mods, T, F), f)
    chk = os.path.join(tmp, name + ".check.npz")
    np.savez(chk, x=x.numpy(), y=y.numpy())
    kpath = os.path.join(tmp, name + ".keras.safetensors")
    subprocess.run([sys.executable, os.path.join(HERE, "export_keras.py"),
                    "--arch", kj, "--weights", npz, "-o", kpath,
                    "--features", ",".join(features),
                    "--scaler", json.dumps(scaler), "--provenance", json.dumps(prov),
                    "--check", chk], check=True, stdout=subprocess.DEVNULL)
    with open(kpath, "rb") as f:
        assert f.read() == model_data, \
            "%s: Keras-path export differs from the PyTorch-path export" % name

    xs = x.numpy()
    ys = y.numpy()
    mse, mae, sh_mse, sh_mae = adformat.recon_error(xs, ys)
    raw = unscale(scaler, xs)
    io = [("input", xs), ("raw", raw.astype(np.float32)), ("output", ys),
          ("mse", mse.astype(np.float32)), ("mae", mae.astype(np.float32)),
          ("share_mse", sh_mse.astype(np.float32)),
          ("share_mae", sh_mae.astype(np.float32))]
    meta = {"case": name, "generator": "tools/gen_golden.py", "seed": str(seed),
            "torch_version": torch.__version__,
            "max_abs_f32_vs_f64": "%.3g" % d32}
    with open(os.path.join(outdir, name + ".io.safetensors"), "wb") as f:
        f.write(adformat.safetensors_bytes(io, meta))
    print("%-12s T=%-3d F=%d B=%d  model %s  |y| max %.3f  mse %s  f32-f64 %.2g  "
          "keras path: identical" % (name, T, F, B, adformat.model_id(model_data),
                                     float(np.abs(ys).max()),
                                     " ".join("%.3f" % v for v in mse), d32))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: gen_golden.py OUTDIR")
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    d = check_manual_cell(torch.Generator().manual_seed(7))
    print("manual LSTM cell (tanh) vs nn.LSTM: max abs diff %.2g" % d)
    with tempfile.TemporaryDirectory() as tmp:
        for idx, case in enumerate(CASES):
            gen_case(outdir, tmp, idx, *case)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
