#!/usr/bin/python3
"""gen_train_golden.py - golden files for the C trainer, from PyTorch autograd.

For a few small architectures this writes tests/golden/train_<name>.safetensors
holding: a batch x (B,T,F), initial weights in the anomalyd layout
(init.layers.N.kernel / recurrent_kernel / bias: Keras layout, see
lib/model.h), the loss of x under the reconstruction loss, the gradient of
every weight tensor (grad.layers.N.*), the losses of 3 optimiser steps
(step_losses) and the weights after those 3 steps (step3.layers.N.*).
Metadata: architecture (model.h JSON), window, n_features, loss, and the
optimiser settings (lr, beta1, beta2, eps, weight_decay, clip_norm).

The reference is independent of the C math: torch.nn.LSTM (weight_ih =
kernel^T, weight_hh = recurrent^T, bias_ih = bias, bias_hh frozen at 0),
explicit matmuls for dense layers, F.mse_loss / F.l1_loss,
torch.nn.utils.clip_grad_norm_ and torch.optim.Adam / AdamW.

Usage: /usr/bin/python3 tools/gen_train_golden.py [OUTDIR]   (tests/golden)
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

torch.set_num_threads(1)

CASES = [
    # name, T, F, B, architecture, loss, opt settings
    ("seq2seq", 10, 4, 8,
     [{"type": "lstm", "units": 8, "activation": "tanh", "return_sequences": False},
      {"type": "repeat_vector", "n": 10},
      {"type": "lstm", "units": 8, "activation": "tanh", "return_sequences": True},
      {"type": "time_distributed_dense", "units": 4, "activation": "linear"}],
     "mse", dict(lr=1e-2, weight_decay=0.0, clip_norm=1.0)),
    ("stack", 7, 3, 6,
     [{"type": "lstm", "units": 6, "activation": "tanh", "return_sequences": True},
      {"type": "lstm", "units": 4, "activation": "tanh", "return_sequences": True},
      {"type": "time_distributed_dense", "units": 5, "activation": "tanh"},
      {"type": "time_distributed_dense", "units": 3, "activation": "linear"}],
     "mae", dict(lr=1e-2, weight_decay=0.01, clip_norm=0.0)),
    ("dense", 6, 3, 5,
     [{"type": "flatten"},
      {"type": "dense", "units": 7, "activation": "relu"},
      {"type": "dense", "units": 5, "activation": "sigmoid"},
      {"type": "dense", "units": 18, "activation": "linear"}],
     "mse", dict(lr=1e-2, weight_decay=0.0, clip_norm=0.05)),
]


def act(name, x):
    return {"linear": lambda v: v, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "tanh": torch.tanh}[name](x)


def build(arch, T, F, rng):
    """Random initial weights in the anomalyd (Keras) layout, per layer."""
    weights = []
    d, t = F, T
    for L in arch:
        ty = L["type"]
        if ty == "lstm":
            H = L["units"]
            weights.append({
                "kernel": rng.uniform(-0.5, 0.5, (d, 4 * H)).astype(np.float32),
                "recurrent_kernel": rng.uniform(-0.5, 0.5, (H, 4 * H)).astype(np.float32),
                "bias": rng.uniform(-0.2, 0.2, (4 * H,)).astype(np.float32)})
            d = H
            t = t if L["return_sequences"] else 0
        elif ty in ("dense", "time_distributed_dense"):
            U = L["units"]
            weights.append({
                "kernel": rng.uniform(-0.6, 0.6, (d, U)).astype(np.float32),
                "bias": rng.uniform(-0.2, 0.2, (U,)).astype(np.float32)})
            d = U
        elif ty == "repeat_vector":
            weights.append({})
            t = L["n"]
        elif ty == "flatten":
            weights.append({})
            d, t = t * d, 0
        else:
            raise ValueError(ty)
    return weights


class Net(torch.nn.Module):
    def __init__(self, arch, weights):
        super().__init__()
        self.arch = arch
        self.mods = torch.nn.ModuleList()
        self.params = []     # (name, tensor getter) in anomalyd order
        for i, (L, W) in enumerate(zip(arch, weights)):
            mod = torch.nn.Module()
            if L["type"] == "lstm":
                d, G = W["kernel"].shape
                H = G // 4
                lstm = torch.nn.LSTM(d, H, batch_first=True)
                with torch.no_grad():
                    lstm.weight_ih_l0.copy_(torch.from_numpy(W["kernel"].T.copy()))
                    lstm.weight_hh_l0.copy_(torch.from_numpy(W["recurrent_kernel"].T.copy()))
                    lstm.bias_ih_l0.copy_(torch.from_numpy(W["bias"]))
                    lstm.bias_hh_l0.zero_()
                lstm.bias_hh_l0.requires_grad_(False)
                mod.lstm = lstm
            elif L["type"] in ("dense", "time_distributed_dense"):
                mod.kernel = torch.nn.Parameter(torch.from_numpy(W["kernel"].copy()))
                mod.bias = torch.nn.Parameter(torch.from_numpy(W["bias"].copy()))
            self.mods.append(mod)

    def forward(self, x):
        for L, mod in zip(self.arch, self.mods):
            ty = L["type"]
            if ty == "lstm":
                out, _ = mod.lstm(x)
                x = out if L["return_sequences"] else out[:, -1, :]
            elif ty == "repeat_vector":
                x = x.unsqueeze(1).repeat(1, L["n"], 1)
            elif ty == "flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                x = act(L["activation"], x @ mod.kernel + mod.bias)
        return x

    def tensors(self, which):
        """anomalyd-layout tensors: weights ("w") or gradients ("g")."""
        out = {}
        for i, (L, mod) in enumerate(zip(self.arch, self.mods)):
            if L["type"] == "lstm":
                ps = [("kernel", mod.lstm.weight_ih_l0, True),
                      ("recurrent_kernel", mod.lstm.weight_hh_l0, True),
                      ("bias", mod.lstm.bias_ih_l0, False)]
            elif L["type"] in ("dense", "time_distributed_dense"):
                ps = [("kernel", mod.kernel, False), ("bias", mod.bias, False)]
            else:
                ps = []
            for name, p, tr in ps:
                v = p.detach() if which == "w" else p.grad.detach()
                if name == "bias" and L["type"] == "lstm" and which == "w":
                    v = v + mod.lstm.bias_hh_l0.detach()
                v = v.numpy()
                out["layers.%d.%s" % (i, name)] = (v.T if tr else v).astype(np.float32).copy()
        return out


def loss_fn(kind, y, x):
    y = y.reshape(x.shape)
    return Fn.mse_loss(y, x) if kind == "mse" else Fn.l1_loss(y, x)


def write_st(path, tensors, meta):
    header = {"__metadata__": meta}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/golden"
    for ci, (name, T, F, B, arch, loss, opt) in enumerate(CASES):
        rng = np.random.default_rng(1234 + ci)
        x = rng.normal(0.0, 1.0, (B, T, F)).astype(np.float32)
        weights = build(arch, T, F, rng)
        net = Net(arch, weights)
        tensors = {"x": x}
        for k, v in net.tensors("w").items():
            tensors["init." + k] = v
        xt = torch.from_numpy(x)
        params = [p for p in net.parameters() if p.requires_grad]
        betas = (0.9, 0.999)
        eps = 1e-8
        if opt["weight_decay"] > 0:
            optim = torch.optim.AdamW(params, lr=opt["lr"], betas=betas, eps=eps,
                                      weight_decay=opt["weight_decay"])
        else:
            optim = torch.optim.Adam(params, lr=opt["lr"], betas=betas, eps=eps)
        step_losses = []
        for step in range(3):
            optim.zero_grad()
            lo = loss_fn(loss, net(xt), xt)
            lo.backward()
            if step == 0:
                tensors["loss"] = np.array([lo.item()], dtype=np.float32)
                for k, v in net.tensors("g").items():
                    tensors["grad." + k] = v
            if opt["clip_norm"] > 0:
                torch.nn.utils.clip_grad_norm_(params, opt["clip_norm"])
            optim.step()
            step_losses.append(lo.item())
        tensors["step_losses"] = np.array(step_losses, dtype=np.float32)
        for k, v in net.tensors("w").items():
            tensors["step3." + k] = v
        meta = {"architecture": json.dumps(arch), "window": str(T),
                "n_features": str(F), "loss": loss, "lr": repr(opt["lr"]),
                "beta1": "0.9", "beta2": "0.999", "eps": repr(eps),
                "weight_decay": repr(opt["weight_decay"]),
                "clip_norm": repr(opt["clip_norm"]),
                "generator": "tools/gen_train_golden.py, torch " + torch.__version__}
        path = "%s/train_%s.safetensors" % (outdir, name)
        write_st(path, tensors, meta)
        print("wrote %s: loss %.6g, step losses %s" % (path, tensors["loss"][0],
                                                       ["%.6g" % v for v in step_losses]))


if __name__ == "__main__":
    main()
