#!/usr/bin/python3
"""export_keras - export a Keras autoencoder to an anomalyd model file,
without TensorFlow (numpy only).

On the machine where the Keras model lives, save its weights and its
architecture:

    import json, numpy as np
    np.savez("weights.npz", *model.get_weights())      # arr_0, arr_1, ...
    open("model.json", "w").write(model.to_json())      # or a model.h spec
    x = np.random.randn(4, T, F).astype("float32")      # optional check
    np.savez("check.npz", x=x, y=model.predict(x))

then here:

    /usr/bin/python3 tools/export_keras.py --arch model.json \\
        --weights weights.npz --features a,b,c -o model.safetensors \\
        [--window T] [--scaler scaler.json] [--provenance JSON] \\
        [--check check.npz]

--arch is either Keras' model.to_json() (Sequential, or a Functional model
that is a single chain; InputLayer/batch_input_shape give the window), or
the anomalyd architecture array of lib/model.h, or an object with keys
"architecture", "window", "features", "scaler", "provenance".

Arrays are taken in get_weights() order, per layer with weights:
  LSTM   kernel (in,4H), recurrent_kernel (H,4H), bias (4H)  [gates i,f,c,o]
  Dense  kernel (in,U), bias (U)   (also inside TimeDistributed; a Dense on a
         sequence is applied per step like Keras does)
These are stored unchanged (Keras layout is the file's layout). use_bias=False
layers get zero biases. Layers without weights: RepeatVector, Flatten,
Dropout-like layers (ignored), Activation after a Dense (folded into it), a
final Reshape to (T,F) (ignored). The LSTM recurrent_activation must be
sigmoid (old Keras defaulted to hard_sigmoid: not supported).

Importable:  export(architecture, weights, path, window, features, ...)
where weights is the get_weights() list.
"""

import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adformat  # noqa: E402

IGNORED = {"Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
           "AlphaDropout", "ActivityRegularization", "Masking"}


class KerasError(ValueError):
    pass


def _act_name(a):
    """Keras activation config (string, or Keras 3 serialised dict)."""
    if a is None:
        return "linear"
    if isinstance(a, dict):
        a = a.get("config") if isinstance(a.get("config"), str) else a.get("class_name")
    if a in ("linear", None):
        return "linear"
    return a


def _layer_list(obj):
    """The layer configs of a to_json() model, in order."""
    if isinstance(obj, str):
        obj = json.loads(obj)
    cls = obj.get("class_name")
    cfg = obj.get("config")
    if cls not in ("Sequential", "Functional", "Model"):
        raise KerasError("keras model: class_name %r; expected Sequential or "
                         "Functional" % cls)
    layers = cfg if isinstance(cfg, list) else cfg.get("layers")
    if not isinstance(layers, list) or not layers:
        raise KerasError("keras model: no layers in config")
    if cls != "Sequential":
        # A Functional model must be one chain: each layer fed by the previous.
        for i, l in enumerate(layers[1:], 1):
            nodes = l.get("inbound_nodes") or []
            names = re.findall(r'"(?:name|keras_history)"\s*:\s*\[?\s*"([^"]+)"',
                               json.dumps(nodes))
            if not names:
                names = [n[0] for node in nodes for n in node
                         if isinstance(n, list) and n and isinstance(n[0], str)]
            prev = layers[i - 1].get("name") or layers[i - 1].get("config", {}).get("name")
            if names and prev not in names:
                raise KerasError("keras model: layer %r is not fed by the layer "
                                 "before it (%r); only a single chain of layers "
                                 "is supported" % (l.get("name"), prev))
    return layers


def _shape_from(cfg):
    for k in ("batch_input_shape", "batch_shape"):
        s = cfg.get(k)
        if s is not None:
            return list(s)
    return None


def from_keras_json(obj):
    """Keras model JSON -> (architecture, window or None, F or None,
    use_bias list per weighted layer in order)."""
    layers = _layer_list(obj)
    arch, biases = [], []
    window = nfeat = None
    for i, l in enumerate(layers):
        cls = l.get("class_name")
        cfg = l.get("config", {})
        where = "keras layer %d (%s %r)" % (i, cls, cfg.get("name"))
        shape = _shape_from(cfg)
        if shape is not None and window is None and not arch:
            if len(shape) != 3:
                raise KerasError("%s: input shape %s, expected (batch, T, F)"
                                 % (where, shape))
            window, nfeat = shape[1], shape[2]
        if cls == "InputLayer":
            continue
        if cls == "TimeDistributed":
            inner = cfg.get("layer", {})
            if inner.get("class_name") != "Dense":
                raise KerasError("%s: only TimeDistributed(Dense) is supported"
                                 % where)
            icfg = inner.get("config", {})
            arch.append({"type": "time_distributed_dense", "units": icfg.get("units"),
                         "activation": _act_name(icfg.get("activation"))})
            biases.append(icfg.get("use_bias", True))
        elif cls == "Dense":
            arch.append({"type": "dense", "units": cfg.get("units"),   # kind fixed below
                         "activation": _act_name(cfg.get("activation"))})
            biases.append(cfg.get("use_bias", True))
        elif cls == "LSTM":
            for k in ("go_backwards", "return_state", "time_major", "stateful"):
                if cfg.get(k):
                    raise KerasError("%s: %s=True is not supported" % (where, k))
            ra = _act_name(cfg.get("recurrent_activation", "sigmoid"))
            if ra != "sigmoid":
                raise KerasError("%s: recurrent_activation %r; only sigmoid is "
                                 "supported (Keras < 2.3 defaulted to "
                                 "hard_sigmoid: retrain or set it explicitly)"
                                 % (where, ra))
            act = _act_name(cfg.get("activation", "tanh"))
            if act not in ("tanh", "relu"):
                raise KerasError("%s: activation %r; the LSTM cell supports "
                                 "tanh or relu" % (where, act))
            arch.append({"type": "lstm", "units": cfg.get("units"),
                         "activation": _act_name(cfg.get("activation", "tanh")),
                         "recurrent_activation":
                             _act_name(cfg.get("recurrent_activation", "sigmoid")),
                         "return_sequences": bool(cfg.get("return_sequences", False))})
            biases.append(cfg.get("use_bias", True))
        elif cls == "RepeatVector":
            arch.append({"type": "repeat_vector", "n": cfg.get("n")})
        elif cls == "Flatten":
            arch.append({"type": "flatten"})
        elif cls == "Activation":
            prev = arch[-1] if arch else None
            if prev is None or prev["type"] not in ("dense", "time_distributed_dense") \
                    or prev["activation"] != "linear":
                raise KerasError("%s: an Activation layer must follow a linear "
                                 "Dense" % where)
            prev["activation"] = _act_name(cfg.get("activation"))
        elif cls == "Reshape" and i == len(layers) - 1:
            pass
        elif cls in IGNORED:
            pass
        else:
            raise KerasError("%s: not supported by the anomalyd format" % where)
    # A Dense on a sequence is per step in Keras: time_distributed_dense.
    t = 1
    for l in arch:
        if l["type"] == "lstm":
            t = t if l["return_sequences"] else 0
        elif l["type"] == "repeat_vector":
            t = 1
        elif l["type"] == "flatten":
            t = 0
        elif l["type"] == "dense" and t:
            l["type"] = "time_distributed_dense"
    return arch, window, nfeat, biases


def keras_weights_to_tensors(architecture, weights, window, n_features,
                             use_bias=None):
    """Map a get_weights() list onto layers.N.* tensors (shapes checked).
    use_bias: per weighted layer (default all True)."""
    arch, shapes = adformat.tensor_shapes(architecture, window, n_features)
    shape_of = dict(shapes)
    weights = [np.asarray(w) for w in weights]
    out, k, wl = {}, 0, 0
    for n, l in enumerate(arch):
        if l["type"] in ("repeat_vector", "flatten"):
            continue
        has_bias = True if use_bias is None else bool(use_bias[wl])
        wl += 1
        p = "layers.%d." % n
        names = ["kernel", "recurrent_kernel"] if l["type"] == "lstm" else ["kernel"]
        if has_bias:
            names.append("bias")
        for name in names:
            if k >= len(weights):
                raise KerasError("weights: %d arrays, but layer %d (%s) needs %s "
                                 "(get_weights() order)" % (len(weights), n,
                                                            l["type"], name))
            want = shape_of[p + name]
            if tuple(weights[k].shape) != tuple(want):
                raise KerasError("weights: array %d (layer %d %s %s) has shape %s, "
                                 "expected %s" % (k, n, l["type"], name,
                                                  list(weights[k].shape), list(want)))
            out[p + name] = weights[k]
            k += 1
        if not has_bias:
            out[p + "bias"] = np.zeros(shape_of[p + "bias"], np.float32)
    if k != len(weights):
        raise KerasError("weights: %d arrays, the architecture uses %d"
                         % (len(weights), k))
    return out


def export(architecture, weights, path, window, features, scaler=None,
           provenance=None, training=None, use_bias=None):
    """Write the model; weights is the get_weights() list (or a dict of
    layers.N.* arrays). Returns the model id."""
    if isinstance(features, int):
        features = ["f%d" % i for i in range(features)]
    if isinstance(weights, dict):
        tensors = weights
    else:
        tensors = keras_weights_to_tensors(architecture, weights, window,
                                           len(features), use_bias)
    return adformat.write_model(path, window, features, architecture, tensors,
                                scaler, provenance, training)


def load_npz(path):
    """get_weights() list from np.savez(path, *weights) (arr_0, arr_1, ...),
    or a dict if the keys are layers.N.* names, else file order."""
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if keys and all(re.fullmatch(r"arr_\d+", k) for k in keys):
            return [z[k] for k in sorted(keys, key=lambda s: int(s[4:]))]
        if keys and all(k.startswith("layers.") for k in keys):
            return {k: z[k] for k in keys}
        return [z[k] for k in keys]


def _json_arg(s, what):
    return adformat.json_arg(s, what, "export_keras")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Export Keras weights (np.savez of get_weights()) and "
                    "architecture (model.to_json() or a model.h spec) to an "
                    "anomalyd model file. No TensorFlow needed.")
    ap.add_argument("--arch", required=True,
                    help="model.to_json() file, or anomalyd architecture/spec JSON")
    ap.add_argument("--weights", required=True, help=".npz of get_weights()")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--window", type=int)
    ap.add_argument("--features", help="comma-separated feature names")
    ap.add_argument("--scaler", help="scaler JSON or file")
    ap.add_argument("--provenance", help="provenance JSON object or file "
                    "(default: exporter and weights file name)")
    ap.add_argument("--check", metavar="NPZ",
                    help="npz with x (B,T,F) and y = model.predict(x): fail "
                         "if the exported model's output differs by > 1e-4")
    a = ap.parse_args(argv)
    spec = _json_arg(a.arch, "--arch")
    use_bias = None
    try:
        if isinstance(spec, dict) and "class_name" in spec:
            arch, window, nf, use_bias = from_keras_json(spec)
            spec = {"architecture": arch, "window": window}
            if nf is not None and not a.features:
                spec["features"] = nf
        elif isinstance(spec, list):
            spec = {"architecture": spec}
        window = a.window or spec.get("window")
        features = a.features.split(",") if a.features else spec.get("features")
        if window is None or features is None:
            raise SystemExit("export_keras: window and features are needed "
                             "(--window/--features, the spec, or the Keras "
                             "input shape)")
        if isinstance(features, int):
            features = ["f%d" % i for i in range(features)]
        scaler = _json_arg(a.scaler, "--scaler") if a.scaler else spec.get("scaler")
        prov = dict(spec.get("provenance") or {})
        prov.update(_json_arg(a.provenance, "--provenance") or {})
        if not prov:
            prov = {"exporter": "anomalyd tools/export_keras.py",
                    "source": os.path.basename(a.weights)}
        weights = load_npz(a.weights)
        arch = [{k: v for k, v in l.items() if k != "torch"}
                for l in spec["architecture"]]
        data = adformat.model_bytes(
            int(window), features, arch,
            weights if isinstance(weights, dict) else
            keras_weights_to_tensors(arch, weights, int(window), len(features),
                                     use_bias),
            scaler, prov)
        if a.check:
            with np.load(a.check) as z:
                x, y = z["x"], z["y"]
            m = adformat.read_model(data)
            diff = float(np.max(np.abs(adformat.forward(m, x) -
                                       y.reshape(x.shape).astype(np.float64))))
            if not diff <= 1e-4:
                raise KerasError("--check: Keras' predictions and the exported "
                                 "model differ by %g (> 1e-4)" % diff)
            print("checked against Keras' predictions: max abs diff %.3g" % diff)
    except (KerasError, adformat.FormatError, OSError, KeyError) as e:
        raise SystemExit("export_keras: %s" % e)
    tmp = "%s.tmp.%d" % (a.output, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, a.output)
    print("%s: model %s, window %d, %d features, %d layers"
          % (a.output, adformat.model_id(data), int(window), len(features),
             len(arch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
