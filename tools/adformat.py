"""adformat - write and read anomalyd model files (lib/model.h, version 1).

Pure Python (numpy, struct, json, hashlib): no torch, no tensorflow, so the
exporters, the golden generator and users' own scripts share one writer.

A model file is a safetensors file: u64 little-endian header length N, N
bytes of JSON header (padded with spaces so N is a multiple of 8), then the
raw little-endian float32 tensors. The header's "__metadata__" (strings to
strings) holds format, format_version, window, features, architecture,
scaler and the optional provenance/training JSON. Weights are named
layers.N.kernel / layers.N.recurrent_kernel / layers.N.bias in Keras layout:
LSTM kernel (d,4H), recurrent_kernel (H,4H), bias (4H) with gate order
i,f,c,o; Dense kernel (d,U), bias (U).

Output is deterministic: the same model always gives the same bytes (the
model id is the SHA-256 of the file). Metadata keys come in a fixed order,
JSON is compact, tensors follow the architecture (layer by layer: kernel,
recurrent_kernel, bias), provenance/training objects are written with sorted
keys.

    import adformat
    data = adformat.model_bytes(window=100, features=["p"], architecture=arch,
                                weights={"layers.0.kernel": k0, ...},
                                scaler={"type": "standard", "mean": [0.0],
                                        "std": [1.0]},
                                provenance={"source": "my training run"})
    adformat.write_model("model.safetensors", ...same arguments...)
    m = adformat.read_model("model.safetensors")   # dict, see read_model()
    y = adformat.forward(m, x)                     # numpy reference forward
"""

import hashlib
import json
import os
import struct

import numpy as np

FORMAT = "anomalyd-model"
FORMAT_VERSION = "1"
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")
LAYER_TYPES = ("lstm", "repeat_vector", "time_distributed_dense", "flatten",
               "dense")
MAX_LAYERS = 64
MAX_UNITS = 65536
MAX_WINDOW = 1000000
MAX_FEATURES = 4096


class FormatError(ValueError):
    """A model that the C loader would reject (message says what/where)."""


def _compact(obj, sort_keys=False):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, sort_keys=sort_keys)


def _int(v, what, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise FormatError("%s: expected an integer, got %r" % (what, v))
    v = int(v)
    if v < lo or v > hi:
        raise FormatError("%s: %d out of range %d..%d" % (what, v, lo, hi))
    return v


def canonical_layer(layer, i=0):
    """Return the layer dict in the canonical key order (the same bytes as
    the C side's ad_arch_to_json), validating types and values."""
    where = "architecture[%d]" % i
    if not isinstance(layer, dict):
        raise FormatError("%s: expected an object" % where)
    t = layer.get("type")
    if t not in LAYER_TYPES:
        raise FormatError("%s.type: expected one of %s, got %r"
                          % (where, ", ".join(LAYER_TYPES), t))
    if t == "lstm":
        act = layer.get("activation", "tanh")
        if act not in ("tanh", "relu"):
            raise FormatError("%s.activation: lstm supports tanh or relu, got %r"
                              % (where, act))
        ra = layer.get("recurrent_activation", "sigmoid")
        if ra != "sigmoid":
            raise FormatError("%s.recurrent_activation: only 'sigmoid' is "
                              "supported, got %r" % (where, ra))
        rs = layer.get("return_sequences", False)
        if not isinstance(rs, bool):
            raise FormatError("%s.return_sequences: expected true or false"
                              % where)
        return {"type": "lstm",
                "units": _int(layer.get("units"), where + ".units", 1, MAX_UNITS),
                "activation": act, "return_sequences": rs}
    if t == "repeat_vector":
        return {"type": t, "n": _int(layer.get("n"), where + ".n", 1, MAX_WINDOW)}
    if t == "flatten":
        return {"type": t}
    act = layer.get("activation", "linear")
    if act not in ACTIVATIONS:
        raise FormatError("%s.activation: expected one of %s, got %r"
                          % (where, ", ".join(ACTIVATIONS), act))
    return {"type": t,
            "units": _int(layer.get("units"), where + ".units", 1, MAX_UNITS),
            "activation": act}


def tensor_shapes(architecture, window, n_features):
    """Derive every layer's shapes. Returns (canonical architecture, list of
    (tensor name, shape) in file order). Raises FormatError on an
    inconsistent architecture, with the same rules as ad_model_create()."""
    if not isinstance(architecture, (list, tuple)) or not architecture:
        raise FormatError("architecture: expected a non-empty array of layers")
    if len(architecture) > MAX_LAYERS:
        raise FormatError("architecture: %d layers, at most %d"
                          % (len(architecture), MAX_LAYERS))
    window = _int(window, "window", 1, MAX_WINDOW)
    n_features = _int(n_features, "features (count)", 1, MAX_FEATURES)
    arch = [canonical_layer(l, i) for i, l in enumerate(architecture)]
    t, d = window, n_features          # t == 0: a vector of d
    shapes = []

    def shp(tt, dd):
        return "sequence (%d,%d)" % (tt, dd) if tt else "vector (%d)" % dd

    for i, l in enumerate(arch):
        p = "layers.%d." % i
        ty = l["type"]
        if ty == "lstm":
            if t == 0:
                raise FormatError("layer %d (lstm): input is %s; lstm needs a "
                                  "sequence (add a repeat_vector layer)"
                                  % (i, shp(t, d)))
            h = l["units"]
            shapes += [(p + "kernel", (d, 4 * h)),
                       (p + "recurrent_kernel", (h, 4 * h)),
                       (p + "bias", (4 * h,))]
            if not l["return_sequences"]:
                t = 0
            d = h
        elif ty == "repeat_vector":
            if t != 0:
                raise FormatError("layer %d (repeat_vector): input is %s; it "
                                  "needs a vector" % (i, shp(t, d)))
            t = l["n"]
        elif ty == "flatten":
            if t == 0:
                raise FormatError("layer %d (flatten): input is %s; flatten "
                                  "needs a sequence" % (i, shp(t, d)))
            t, d = 0, t * d
        else:
            if ty == "time_distributed_dense" and t == 0:
                raise FormatError("layer %d (time_distributed_dense): input is "
                                  "%s; it needs a sequence (use dense)"
                                  % (i, shp(t, d)))
            if ty == "dense" and t != 0:
                raise FormatError("layer %d (dense): input is %s; add a flatten "
                                  "layer or use time_distributed_dense"
                                  % (i, shp(t, d)))
            shapes += [(p + "kernel", (d, l["units"])), (p + "bias", (l["units"],))]
            d = l["units"]
    if not ((t == window and d == n_features) or
            (t == 0 and d == window * n_features)):
        raise FormatError("layer %d (%s): final output is %s; expected the input "
                          "window: sequence (%d,%d) or vector (%d)"
                          % (len(arch) - 1, arch[-1]["type"], shp(t, d), window,
                             n_features, window * n_features))
    return arch, shapes


def _float_list(v, n, what):
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size != n:
        raise FormatError("%s: %d values, expected %d (one per feature)"
                          % (what, a.size, n))
    a32 = a.astype(np.float32)
    if not np.all(np.isfinite(a32)):
        raise FormatError("%s: non-finite value" % what)
    # float32 values written as their exact shortest double repr: the C
    # loader parses a double and rounds to the same float32.
    return [float(x) for x in a32]


def canonical_scaler(scaler, n_features):
    """Validate a scaler dict and return it with float32-exact numbers."""
    if scaler is None:
        scaler = {"type": "none"}
    if not isinstance(scaler, dict):
        raise FormatError("scaler: expected an object")
    ty = scaler.get("type")
    if ty == "none":
        return {"type": "none"}
    if ty == "standard":
        mean = _float_list(scaler.get("mean"), n_features, "scaler.mean")
        std = _float_list(scaler.get("std"), n_features, "scaler.std")
        for f, s in enumerate(std):
            if not s > 0:
                raise FormatError("scaler.std[%d]: %r, expected > 0" % (f, s))
        return {"type": "standard", "mean": mean, "std": std}
    if ty == "minmax":
        lo = _float_list(scaler.get("min"), n_features, "scaler.min")
        hi = _float_list(scaler.get("max"), n_features, "scaler.max")
        for f in range(n_features):
            if not hi[f] > lo[f]:
                raise FormatError("scaler.max[%d]: %r, expected > min %r"
                                  % (f, hi[f], lo[f]))
        return {"type": "minmax", "min": lo, "max": hi}
    raise FormatError("scaler.type: expected standard, minmax or none, got %r" % ty)


def safetensors_bytes(tensors, metadata=None):
    """Serialise [(name, array)] (float32, C order, in the given order) and a
    str->str metadata dict into a safetensors image (bytes)."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise FormatError("metadata %r: keys and values must be strings" % k)
        header["__metadata__"] = dict(metadata)
    blobs, off = [], 0
    for name, a in tensors:
        if name == "__metadata__" or name in header:
            raise FormatError("tensor %r: duplicate or reserved name" % name)
        a = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": [int(s) for s in a.shape],
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = _compact(header).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def parse_safetensors(data, name="<buffer>"):
    """Parse a safetensors image (F32 only). Returns (metadata dict,
    dict name -> float32 array in file order)."""
    if len(data) < 8:
        raise FormatError("%s: %d bytes, too short" % (name, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise FormatError("%s: header length %d exceeds file size" % (name, n))
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError("%s: header is not JSON: %s" % (name, e))
    if not isinstance(header, dict):
        raise FormatError("%s: header is not a JSON object" % name)
    body = data[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors, pos = {}, 0
    for tname, info in items:
        if info.get("dtype") != "F32":
            raise FormatError("%s: tensor %s: dtype %r, only F32 supported"
                              % (name, tname, info.get("dtype")))
        shape = tuple(int(s) for s in info["shape"])
        b, e = info["data_offsets"]
        if b != pos or e - b != 4 * int(np.prod(shape, dtype=np.int64)) or e > len(body):
            raise FormatError("%s: tensor %s: bad data_offsets %r" % (name, tname, [b, e]))
        pos = e
        tensors[tname] = np.frombuffer(body[b:e], dtype="<f4").reshape(shape).copy()
    if pos != len(body):
        raise FormatError("%s: data section has %d bytes, tensors cover %d"
                          % (name, len(body), pos))
    # Keep the header's own order (as written) for the caller.
    order = list(header.keys())
    return meta, {k: tensors[k] for k in order}


def model_bytes(window, features, architecture, weights, scaler=None,
                provenance=None, training=None, extra_metadata=None):
    """Build a model file image (bytes).

    window: T; features: list of F unique non-empty names (or an int F for
    names f0..fF-1); architecture: list of layer dicts (model.h); weights:
    dict name -> array (Keras layout, shapes checked; any float dtype, stored
    as float32); scaler: dict or None ("none"); provenance, training: dicts
    (or JSON text) or None; extra_metadata: more str->str keys.
    """
    if isinstance(features, (int, np.integer)) and not isinstance(features, bool):
        features = ["f%d" % i for i in range(int(features))]
    features = list(features)
    for i, f in enumerate(features):
        if not isinstance(f, str) or not f:
            raise FormatError("features[%d]: expected a non-empty string" % i)
    if len(set(features)) != len(features):
        raise FormatError("features: names must be unique: %r" % features)
    arch, shapes = tensor_shapes(architecture, window, len(features))
    names = {n for n, _ in shapes}
    extra = sorted(set(weights) - names)
    if extra:
        raise FormatError("weights: unexpected tensors %s (expected %s)"
                          % (", ".join(extra), ", ".join(n for n, _ in shapes)))
    tensors = []
    for n, shape in shapes:
        if n not in weights:
            raise FormatError("weights: missing tensor %s, shape %s" % (n, list(shape)))
        a = np.asarray(weights[n])
        if tuple(a.shape) != tuple(shape):
            raise FormatError("tensor %s: shape %s, expected %s"
                              % (n, list(a.shape), list(shape)))
        a = a.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise FormatError("tensor %s: contains NaN or Inf" % n)
        tensors.append((n, a))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "window": str(int(window)), "features": _compact(features),
            "architecture": _compact(arch),
            "scaler": _compact(canonical_scaler(scaler, len(features)))}
    for key, val in (("provenance", provenance), ("training", training)):
        if val is None:
            continue
        if isinstance(val, str):
            if not isinstance(json.loads(val), dict):
                raise FormatError("%s: expected a JSON object" % key)
            meta[key] = val
        elif isinstance(val, dict):
            meta[key] = _compact(val, sort_keys=True)
        else:
            raise FormatError("%s: expected a dict or JSON text" % key)
    for k in sorted(extra_metadata or {}):
        if k in meta:
            raise FormatError("extra metadata key %r is reserved" % k)
        meta[k] = str(extra_metadata[k])
    return safetensors_bytes(tensors, meta)


def write_model(path, *args, **kwargs):
    """model_bytes(...) written atomically to path (temp file + rename).
    Returns the model id (16 hex digits)."""
    data = model_bytes(*args, **kwargs)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return model_id(data)


def model_id(data):
    """The model identity: first 16 hex digits of the file's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def read_model(path_or_bytes):
    """Read and validate a model file. Returns a dict with keys window,
    features, architecture, scaler, provenance (dict or None), training,
    weights (name -> float32 array), metadata (raw strings), id."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data, name = bytes(path_or_bytes), "<buffer>"
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
        name = str(path_or_bytes)
    meta, tensors = parse_safetensors(data, name)
    for k in ("format", "format_version", "window", "features", "architecture",
              "scaler"):
        if k not in meta:
            raise FormatError("%s: metadata %s missing" % (name, k))
    if meta["format"] != FORMAT or meta["format_version"] != FORMAT_VERSION:
        raise FormatError("%s: not an anomalyd model version %s" % (name, FORMAT_VERSION))
    window = int(meta["window"])
    features = json.loads(meta["features"])
    arch, shapes = tensor_shapes(json.loads(meta["architecture"]), window,
                                 len(features))
    for n, shape in shapes:
        if n not in tensors or tuple(tensors[n].shape) != tuple(shape):
            raise FormatError("%s: tensor %s: expected shape %s" % (name, n, list(shape)))
    if len(tensors) != len(shapes):
        raise FormatError("%s: unexpected tensors" % name)
    return {"window": window, "features": features, "architecture": arch,
            "scaler": canonical_scaler(json.loads(meta["scaler"]), len(features)),
            "provenance": json.loads(meta["provenance"]) if "provenance" in meta else None,
            "training": json.loads(meta["training"]) if "training" in meta else None,
            "weights": tensors, "metadata": meta, "id": model_id(data)}


def scale(model, raw):
    """Apply the model's scaler to raw (..., F) values (float64)."""
    s = model["scaler"]
    raw = np.asarray(raw, dtype=np.float64)
    if s["type"] == "standard":
        return (raw - np.asarray(s["mean"])) / np.asarray(s["std"])
    if s["type"] == "minmax":
        lo, hi = np.asarray(s["min"]), np.asarray(s["max"])
        return (raw - lo) / (hi - lo)
    return raw


def _act(name, x):
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    raise FormatError("unknown activation %r" % name)


def forward(model, x, dtype=np.float64):
    """Reference forward pass in numpy (Keras semantics), for checks.
    x: (B,T,F) scaled windows. Returns the reconstruction (B,T,F)."""
    x = np.asarray(x, dtype=dtype)
    B, T, F = x.shape
    w = model["weights"]
    h_in = x
    for i, l in enumerate(model["architecture"]):
        p = "layers.%d." % i
        ty = l["type"]
        if ty == "lstm":
            K = w[p + "kernel"].astype(dtype)
            U = w[p + "recurrent_kernel"].astype(dtype)
            b = w[p + "bias"].astype(dtype)
            H = l["units"]
            t = h_in.shape[1]
            h = np.zeros((B, H), dtype)
            c = np.zeros((B, H), dtype)
            xs = h_in @ K + b
            outs = []
            for s in range(t):
                z = xs[:, s] + h @ U
                ig = _act("sigmoid", z[:, :H])
                fg = _act("sigmoid", z[:, H:2 * H])
                g = _act(l["activation"], z[:, 2 * H:3 * H])
                og = _act("sigmoid", z[:, 3 * H:])
                c = fg * c + ig * g
                h = og * _act(l["activation"], c)
                outs.append(h)
            h_in = np.stack(outs, axis=1) if l["return_sequences"] else h
        elif ty == "repeat_vector":
            h_in = np.repeat(h_in[:, None, :], l["n"], axis=1)
        elif ty == "flatten":
            h_in = h_in.reshape(B, -1)
        else:
            h_in = _act(l["activation"], h_in @ w[p + "kernel"].astype(dtype)
                        + w[p + "bias"].astype(dtype))
    return h_in.reshape(B, T, F)


def recon_error(x, y):
    """Per-window mse (B), mae (B), share of squared error (B,F) and share
    of absolute error (B,F), computed in float64 (shares all 0 when the
    error is 0)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = x - y
    mse = np.mean(d * d, axis=(1, 2))
    mae = np.mean(np.abs(d), axis=(1, 2))

    def share(e):
        per_f = e.sum(axis=1)
        tot = per_f.sum(axis=1, keepdims=True)
        return np.where(tot > 0, per_f / np.where(tot > 0, tot, 1.0), 0.0)

    return mse, mae, share(d * d), share(np.abs(d))


if __name__ == "__main__":   # adformat.py MODEL: print a summary
    import sys
    if len(sys.argv) != 2:
        sys.exit("usage: adformat.py MODEL.safetensors")
    m = read_model(sys.argv[1])
    print("id %s window %d features %s" % (m["id"], m["window"], m["features"]))
    print("scaler %s" % m["scaler"]["type"])
    for i, l in enumerate(m["architecture"]):
        print("layer %d %s" % (i, _compact(l)))
    for n, a in m["weights"].items():
        print("%s %s" % (n, list(a.shape)))


def json_arg(s, what, prog):
    """A command-line JSON argument: JSON text, @file or a path to a JSON
    file. None stays None; a bad value exits naming `prog` and the option."""
    if s is None:
        return None
    if s.startswith("@"):
        s = s[1:]
    if os.path.exists(s):
        with open(s) as f:
            return json.load(f)
    try:
        return json.loads(s)
    except ValueError as e:
        raise SystemExit("%s: %s: neither a file nor JSON: %s" % (prog, what, e))
