#!/usr/bin/python3
"""export_torch - export a PyTorch autoencoder to an anomalyd model file.

Importable:

    import torch.nn as nn
    from export_torch import RepeatVector, LastStep, export
    modules = [nn.LSTM(1, 64, batch_first=True), nn.LSTM(64, 32, batch_first=True),
               nn.LSTM(32, 64, batch_first=True), nn.Linear(64, 1)]
    export(modules, "model.safetensors", window=100, features=["pressure"],
           scaler={"type": "standard", "mean": [3.1], "std": [0.4]},
           provenance={"source": "my run"})

The model is a plain list of modules applied in order to a (B,T,F) window
(nn.Sequential and export_torch.Sequence are flattened):
  nn.LSTM        batch_first=True, 1 layer, unidirectional, no projection;
                 sequence in, sequence out (Keras return_sequences=True).
                 Follow it with LastStep() to keep only the last hidden state
                 (return_sequences=False). Weights: kernel = weight_ih_l0.T,
                 recurrent_kernel = weight_hh_l0.T, bias = bias_ih_l0 +
                 bias_hh_l0; PyTorch's gate order i,f,g,o is Keras' i,f,c,o.
  KerasLSTM      (this module) the same cell with activation "tanh" or "relu"
                 and its own return_sequences flag; nn.LSTM only has tanh.
  nn.Linear      on a sequence: applied per step (time_distributed_dense); on a
                 vector: dense. An nn.ReLU/nn.Sigmoid/nn.Tanh/nn.Identity right
                 after it is its activation. Dense (this module) carries its
                 activation itself.
  RepeatVector(n)  vector (d) -> sequence (n, d)
  nn.Flatten()   sequence (t, d) -> vector (t*d)
  nn.Dropout     ignored (identity at inference); a trailing nn.Unflatten is
                 ignored too (the format reads a (T*F) vector as (T,F)).

Command line (a state_dict, a pickled module, or TorchScript, plus a JSON
spec naming the architecture in the model.h format):

    /usr/bin/python3 tools/export_torch.py --spec spec.json --weights model.pt \\
        -o model.safetensors [--window T] [--features a,b,c] \\
        [--scaler scaler.json] [--provenance '{"k":"v"}'] [--no-check]

spec.json is either the architecture array or an object with keys
"architecture" (required), "window", "features", "scaler", "provenance".
Each layer may name the state_dict prefix of its parameters with "torch"
(default "layers.N."), e.g. {"type":"lstm","units":64,"return_sequences":true,
"torch":"encoder.lstm1."} reads encoder.lstm1.weight_ih_l0 etc.; dense layers
read PREFIX.weight and PREFIX.bias. After writing, the exporter runs the
PyTorch model and the file (numpy, Keras semantics) on random windows and
fails if they differ (--no-check skips this).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adformat  # noqa: E402

ACT_MODULES = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
               nn.Identity: "linear"}


class RepeatVector(nn.Module):
    """(B, d) -> (B, n, d), like keras.layers.RepeatVector(n)."""

    def __init__(self, n):
        super().__init__()
        self.n = int(n)

    def forward(self, x):
        return x.unsqueeze(1).expand(-1, self.n, -1)


class LastStep(nn.Module):
    """(B, t, d) -> (B, d): the last hidden state of the LSTM before it."""

    def forward(self, x):
        return x[:, -1, :]


class KerasLSTM(nn.Module):
    """One LSTM layer with Keras semantics and a choice of cell activation.

    Parameters have nn.LSTM's names and shapes (weight_ih_l0 (4H,in),
    weight_hh_l0 (4H,H), bias_ih_l0, bias_hh_l0, gates i,f,g,o) and nn.LSTM's
    default initialisation, so a state_dict of either loads into the other.
    The cell is written out step by step:
        z = x W_ih^T + b_ih + h W_hh^T + b_hh; i,f,o = sigmoid; g = act(z_g)
        c = f c + i g;  h = o act(c)
    """

    def __init__(self, input_size, hidden_size, activation="tanh",
                 return_sequences=True):
        super().__init__()
        if activation not in ("tanh", "relu"):
            raise ValueError("KerasLSTM: activation must be tanh or relu")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.activation = activation
        self.return_sequences = bool(return_sequences)
        self.batch_first = True
        H = self.hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * H, self.input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * H))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * H))
        k = 1.0 / float(H) ** 0.5
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-k, k)

    def forward(self, x):
        B, T, _ = x.shape
        H = self.hidden_size
        act = torch.tanh if self.activation == "tanh" else torch.relu
        h = x.new_zeros(B, H)
        c = x.new_zeros(B, H)
        xs = x @ self.weight_ih_l0.t() + self.bias_ih_l0
        outs = []
        for t in range(T):
            z = xs[:, t] + h @ self.weight_hh_l0.t() + self.bias_hh_l0
            i = torch.sigmoid(z[:, :H])
            f = torch.sigmoid(z[:, H:2 * H])
            g = act(z[:, 2 * H:3 * H])
            o = torch.sigmoid(z[:, 3 * H:])
            c = f * c + i * g
            h = o * act(c)
            outs.append(h)
        return torch.stack(outs, dim=1) if self.return_sequences else h


class Dense(nn.Linear):
    """nn.Linear followed by an activation (linear, relu, sigmoid, tanh)."""

    def __init__(self, in_features, out_features, activation="linear"):
        super().__init__(in_features, out_features)
        if activation not in adformat.ACTIVATIONS:
            raise ValueError("Dense: unknown activation %r" % activation)
        self.activation = activation

    def forward(self, x):
        y = super().forward(x)
        if self.activation == "relu":
            return torch.relu(y)
        if self.activation == "sigmoid":
            return torch.sigmoid(y)
        if self.activation == "tanh":
            return torch.tanh(y)
        return y


class Sequence(nn.Module):
    """Runs a list of modules in order on (B,T,F) windows (nn.LSTM's tuple
    output reduced to the sequence) and returns the reconstruction (B,T,F).
    Its state_dict keys are layers.K.<param>."""

    def __init__(self, modules):
        super().__init__()
        self.layers = nn.ModuleList(modules)

    def forward(self, x):
        y = x
        for m in self.layers:
            y = m(y)
            if isinstance(y, tuple):
                y = y[0]
        return y.reshape(x.shape)


def flatten_modules(modules):
    """nn.Sequential / Sequence / ModuleList / lists -> flat module list."""
    out = []
    if isinstance(modules, Sequence):
        modules = list(modules.layers)
    elif isinstance(modules, (nn.Sequential, nn.ModuleList)):
        modules = list(modules)
    elif isinstance(modules, nn.Module):
        modules = [modules]
    for m in modules:
        if isinstance(m, (nn.Sequential, nn.ModuleList, Sequence, list, tuple)):
            out.extend(flatten_modules(m))
        else:
            out.append(m)
    return out


def _np(t):
    return t.detach().to(torch.float32).cpu().numpy()


def lstm_keras_weights(w_ih, w_hh, b_ih=None, b_hh=None):
    """PyTorch LSTM tensors -> Keras arrays [kernel (in,4H), recurrent_kernel
    (H,4H), bias (4H)] as float32 numpy. Gate order i,f,g,o is kept: it is
    Keras' i,f,c,o."""
    k = np.ascontiguousarray(_np(w_ih).T)
    r = np.ascontiguousarray(_np(w_hh).T)
    H = r.shape[0]
    if w_ih.shape[0] != 4 * H or tuple(w_hh.shape) != (4 * H, H):
        raise ValueError("LSTM weights: weight_ih %s, weight_hh %s are not "
                         "(4H,in), (4H,H)" % (list(w_ih.shape), list(w_hh.shape)))
    b = np.zeros(4 * H, np.float32)
    if b_ih is not None:
        b = b + _np(b_ih)
    if b_hh is not None:
        b = b + _np(b_hh)
    return [k, r, b.astype(np.float32)]


def dense_keras_weights(weight, bias=None):
    """nn.Linear weight (U,in), bias (U) -> Keras [kernel (in,U), bias (U)]."""
    k = np.ascontiguousarray(_np(weight).T)
    b = _np(bias) if bias is not None else np.zeros(k.shape[1], np.float32)
    return [k, b]


def convert(modules, window, n_features):
    """Walk the modules. Returns (architecture list, weights dict in Keras
    layout). Raises ValueError naming the module that cannot be expressed."""
    mods = flatten_modules(modules)
    arch, weights = [], {}
    t, d = int(window), int(n_features)   # t == 0: vector of d
    i = 0
    while i < len(mods):
        m = mods[i]
        where = "module %d (%s)" % (i, type(m).__name__)
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        n = len(arch)
        p = "layers.%d." % n
        if isinstance(m, (nn.LSTM, KerasLSTM)):
            if isinstance(m, nn.LSTM):
                if m.num_layers != 1 or m.bidirectional or \
                        getattr(m, "proj_size", 0) or not m.batch_first:
                    raise ValueError("%s: need batch_first=True, num_layers=1, "
                                     "unidirectional, no proj_size (stack "
                                     "several nn.LSTM instead)" % where)
                act, rs = "tanh", True
                b_ih = m.bias_ih_l0 if m.bias else None
                b_hh = m.bias_hh_l0 if m.bias else None
            else:
                act, rs = m.activation, m.return_sequences
                b_ih, b_hh = m.bias_ih_l0, m.bias_hh_l0
            if t == 0:
                raise ValueError("%s: input is a vector (%d); an LSTM needs a "
                                 "sequence (add RepeatVector)" % (where, d))
            if m.input_size != d:
                raise ValueError("%s: input_size %d, but its input has %d "
                                 "features" % (where, m.input_size, d))
            if rs and isinstance(nxt, LastStep):
                rs = False
                i += 1
            k, r, b = lstm_keras_weights(m.weight_ih_l0, m.weight_hh_l0, b_ih, b_hh)
            weights.update({p + "kernel": k, p + "recurrent_kernel": r, p + "bias": b})
            arch.append({"type": "lstm", "units": m.hidden_size,
                         "activation": act, "return_sequences": rs})
            if not rs:
                t = 0
            d = m.hidden_size
        elif isinstance(m, nn.Linear):
            if m.in_features != d:
                raise ValueError("%s: in_features %d, but its input has %d"
                                 % (where, m.in_features, d))
            act = getattr(m, "activation", "linear")
            if act == "linear" and nxt is not None and type(nxt) in ACT_MODULES:
                act = ACT_MODULES[type(nxt)]
                i += 1
            k, b = dense_keras_weights(m.weight, m.bias)
            weights.update({p + "kernel": k, p + "bias": b})
            arch.append({"type": "time_distributed_dense" if t else "dense",
                         "units": m.out_features, "activation": act})
            d = m.out_features
        elif isinstance(m, RepeatVector):
            if t != 0:
                raise ValueError("%s: input is a sequence; RepeatVector needs "
                                 "a vector (LSTM + LastStep, or Linear on a "
                                 "vector)" % where)
            arch.append({"type": "repeat_vector", "n": m.n})
            t = m.n
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1 or t == 0:
                raise ValueError("%s: only Flatten(start_dim=1) of a sequence "
                                 "is supported" % where)
            arch.append({"type": "flatten"})
            t, d = 0, t * d
        elif isinstance(m, nn.Dropout):
            pass
        elif isinstance(m, nn.Unflatten) and nxt is None:
            pass
        elif isinstance(m, LastStep):
            raise ValueError("%s: LastStep must follow an LSTM that returns "
                             "sequences" % where)
        elif type(m) in ACT_MODULES:
            raise ValueError("%s: an activation must follow an nn.Linear "
                             "(LSTM activations are fixed: use KerasLSTM)" % where)
        else:
            raise ValueError("%s: not supported by the anomalyd format" % where)
        i += 1
    adformat.tensor_shapes(arch, window, n_features)   # final shape check
    return arch, weights


def check_export(modules, model, n=3, seed=0):
    """Run the PyTorch modules and the exported model (numpy float64, Keras
    semantics) on n random N(0,1) windows; return the max abs difference."""
    T, F = model["window"], len(model["features"])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, F, generator=g)
    mods = flatten_modules(modules)
    modes = [m.training for m in mods]
    seq = Sequence(mods).eval()        # dropout off; restored below
    try:
        with torch.no_grad():
            y = seq(x).double().numpy()
    finally:
        for m, t in zip(mods, modes):
            m.train(t)
    return float(np.max(np.abs(adformat.forward(model, x.numpy()) - y)))


def export(modules, path, window, features, scaler=None, provenance=None,
           training=None, check=True, tol=1e-4):
    """Export the modules to `path`. Returns the model id. With check, the
    written file is read back and run against PyTorch (max abs diff <= tol,
    else ValueError)."""
    if isinstance(features, int):
        features = ["f%d" % k for k in range(features)]
    arch, weights = convert(modules, window, len(features))
    data = adformat.model_bytes(window, features, arch, weights, scaler,
                                provenance, training)
    if check:
        diff = check_export(modules, adformat.read_model(data))
        if not diff <= tol:
            raise ValueError("export check: PyTorch and the exported model "
                             "differ by %g (> %g)" % (diff, tol))
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return adformat.model_id(data)


def build_modules(architecture, window, n_features):
    """Modules (one per anomalyd layer: KerasLSTM, Dense, RepeatVector,
    nn.Flatten) for a model.h architecture; PyTorch default init."""
    arch, _ = adformat.tensor_shapes(architecture, window, n_features)
    mods, t, d = [], int(window), int(n_features)
    for l in arch:
        ty = l["type"]
        if ty == "lstm":
            mods.append(KerasLSTM(d, l["units"], l["activation"], l["return_sequences"]))
            d = l["units"]
            t = t if l["return_sequences"] else 0
        elif ty == "repeat_vector":
            mods.append(RepeatVector(l["n"]))
            t = l["n"]
        elif ty == "flatten":
            mods.append(nn.Flatten())
            t, d = 0, t * d
        else:
            mods.append(Dense(d, l["units"], l["activation"]))
            d = l["units"]
    return mods


def load_weights(path):
    """Returns (state_dict, module or None) from a TorchScript archive, a
    pickled module, or a (possibly wrapped) state_dict saved with
    torch.save. The module, when there is one, lets the exporter compare the
    user's own forward() with the written file."""
    try:
        mod = torch.jit.load(path, map_location="cpu")
        return dict(mod.state_dict()), mod
    except Exception:   # not TorchScript: fall back to torch.load
        pass
    try:
        obj = torch.load(path, map_location="cpu")
    except (AttributeError, ModuleNotFoundError) as e:
        raise ValueError("%s: a pickled module whose class cannot be imported "
                         "here (%s); save model.state_dict() or TorchScript "
                         "(torch.jit.script(model).save(path)) instead" % (path, e))
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return dict(obj[key]), None
            if key in obj and isinstance(obj[key], nn.Module):
                return dict(obj[key].state_dict()), obj[key]
        return dict(obj), None
    raise ValueError("%s: neither a state_dict, a module nor TorchScript" % path)


def check_module(module, path, n=3, seed=1):
    """Run the user's own module (TorchScript or pickled) and the written
    file on n random windows; max abs difference."""
    model = adformat.read_model(path)
    T, F = model["window"], len(model["features"])
    x = torch.randn(n, T, F, generator=torch.Generator().manual_seed(seed))
    module.eval()
    with torch.no_grad():
        y = module(x)
    if isinstance(y, tuple):
        y = y[0]
    y = y.double().numpy().reshape(n, T, F)
    return float(np.max(np.abs(adformat.forward(model, x.numpy()) - y)))


def modules_from_state_dict(spec_arch, state, window, n_features):
    """Build modules from the spec and copy the state_dict's tensors in, using
    each layer's "torch" prefix (default "layers.N."). Returns (modules,
    unused state_dict keys)."""
    mods = build_modules([{k: v for k, v in l.items() if k != "torch"}
                          for l in spec_arch], window, n_features)
    used = set()
    for n, (l, m) in enumerate(zip(spec_arch, mods)):
        prefix = l.get("torch", "layers.%d." % n)
        params = dict(m.named_parameters())
        optional = set()
        if isinstance(m, KerasLSTM):
            optional = {"bias_ih_l0", "bias_hh_l0"}
        elif isinstance(m, Dense):
            optional = {"bias"}
        for pname, p in params.items():
            key = prefix + pname
            if key not in state:
                if pname in optional:
                    with torch.no_grad():
                        p.zero_()
                    continue
                raise ValueError("layer %d (%s): state_dict has no %s (set the "
                                 "layer's \"torch\" prefix; keys are e.g. %s)"
                                 % (n, l["type"], key, ", ".join(sorted(state)[:6])))
            v = state[key]
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError("layer %d (%s): %s has shape %s, expected %s"
                                 % (n, l["type"], key, list(v.shape), list(p.shape)))
            with torch.no_grad():
                p.copy_(v.to(torch.float32))
            used.add(key)
    return mods, sorted(set(state) - used)


def _json_arg(s, what):
    return adformat.json_arg(s, what, "export_torch")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Export a PyTorch autoencoder (state_dict/module/TorchScript "
                    "+ architecture spec) to an anomalyd model file.")
    ap.add_argument("--spec", required=True,
                    help="architecture JSON file (array, or object with "
                         "architecture/window/features/scaler/provenance)")
    ap.add_argument("--weights", required=True,
                    help="torch.save'd state_dict or module, or TorchScript")
    ap.add_argument("-o", "--output", required=True, help="model file to write")
    ap.add_argument("--window", type=int, help="window length T")
    ap.add_argument("--features", help="comma-separated feature names")
    ap.add_argument("--scaler", help="scaler JSON or file (default: spec's, else none)")
    ap.add_argument("--provenance", help="provenance JSON object or file "
                    "(default: exporter, weights file name, torch version)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip running PyTorch against the written file")
    a = ap.parse_args(argv)
    spec = _json_arg(a.spec, "--spec")
    if isinstance(spec, list):
        spec = {"architecture": spec}
    window = a.window or spec.get("window")
    features = a.features.split(",") if a.features else spec.get("features")
    if window is None or features is None:
        raise SystemExit("export_torch: window and features are needed "
                         "(--window/--features or in the spec)")
    if isinstance(features, int):
        features = ["f%d" % k for k in range(features)]
    scaler = _json_arg(a.scaler, "--scaler") if a.scaler else spec.get("scaler")
    # Default provenance unless the spec or --provenance give one (then it
    # is exactly theirs, so the same inputs give the same bytes).
    prov = dict(spec.get("provenance") or {})
    prov.update(_json_arg(a.provenance, "--provenance") or {})
    if not prov:
        prov = {"exporter": "anomalyd tools/export_torch.py",
                "source": os.path.basename(a.weights), "torch": torch.__version__}
    try:
        state, module = load_weights(a.weights)
        mods, unused = modules_from_state_dict(spec["architecture"], state,
                                               int(window), len(features))
        if unused:
            print("export_torch: warning: state_dict keys not used: %s"
                  % ", ".join(unused), file=sys.stderr)
        mid = export(mods, a.output, int(window), features, scaler, prov,
                     check=not a.no_check)
        if module is not None and not a.no_check:
            try:
                diff = check_module(module, a.output)
            except Exception as e:   # its forward may want other inputs
                print("export_torch: warning: could not run the module's own "
                      "forward() to check the export: %s" % e, file=sys.stderr)
            else:
                if not diff <= 1e-4:
                    os.unlink(a.output)
                    raise ValueError("the module's own forward() differs from "
                                     "the exported model by %g: does the spec "
                                     "describe it?" % diff)
                print("checked against the module's own forward(): max abs "
                      "diff %.3g" % diff)
    except (ValueError, OSError, RuntimeError, adformat.FormatError) as e:
        raise SystemExit("export_torch: %s" % e)
    print("%s: model %s, window %d, %d features, %d layers"
          % (a.output, mid, int(window), len(features), len(spec["architecture"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
