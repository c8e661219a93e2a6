#!/usr/bin/python3
"""torch_train.py - PyTorch reference for bench_train: training throughput of
the same autoencoder on the same windows, 1 thread.

  torch_train.py WINDOWS.f32 N T F ARCH_JSON BATCH EPOCHS

WINDOWS.f32 holds N*T*F little-endian float32 (the C bench writes it).
ARCH_JSON is the anomalyd architecture array (lib/model.h). Trains with the
same recipe as the C trainer: shuffle each epoch, mini-batches, MSE loss,
Adam(lr 1e-3), clip_grad_norm_(1.0). One warm-up epoch, then EPOCHS timed
epochs; prints "windows_per_s <best epoch>" (the epoch least disturbed by
other processes; the C side reports its best epoch too).
"""
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)


class Net(torch.nn.Module):
    def __init__(self, arch, T, F):
        super().__init__()
        self.arch = arch
        self.mods = torch.nn.ModuleList()
        d, t = F, T
        for L in arch:
            ty = L["type"]
            if ty == "lstm":
                self.mods.append(torch.nn.LSTM(d, L["units"], batch_first=True))
                d = L["units"]
                t = t if L["return_sequences"] else 0
            elif ty in ("dense", "time_distributed_dense"):
                self.mods.append(torch.nn.Linear(d, L["units"]))
                d = L["units"]
            elif ty == "repeat_vector":
                self.mods.append(torch.nn.Identity())
                t = L["n"]
            elif ty == "flatten":
                self.mods.append(torch.nn.Identity())
                d, t = d * t, 0

    def forward(self, x):
        for L, mod in zip(self.arch, self.mods):
            ty = L["type"]
            if ty == "lstm":
                out, _ = mod(x)
                x = out if L["return_sequences"] else out[:, -1, :]
            elif ty == "repeat_vector":
                x = x.unsqueeze(1).expand(-1, L["n"], -1)
            elif ty == "flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                x = mod(x)
                a = L.get("activation", "linear")
                if a == "relu":
                    x = torch.relu(x)
                elif a == "tanh":
                    x = torch.tanh(x)
                elif a == "sigmoid":
                    x = torch.sigmoid(x)
        return x


def main():
    path, n, T, F, arch, batch, epochs = sys.argv[1:8]
    n, T, F, batch, epochs = int(n), int(T), int(F), int(batch), int(epochs)
    arch = json.loads(arch)
    x = torch.from_numpy(np.fromfile(path, dtype="<f4").reshape(n, T, F).copy())
    torch.manual_seed(1)
    net = Net(arch, T, F)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    params = list(net.parameters())
    lossf = torch.nn.MSELoss()
    g = torch.Generator().manual_seed(1)
    rates = []
    for ep in range(epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            xb = x[perm[i:i + batch]]
            opt.zero_grad()
            y = net(xb).reshape(xb.shape)
            loss = lossf(y, xb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        dt = time.perf_counter() - t0
        if ep > 0:
            rates.append(n / dt)
    print("windows_per_s %.1f loss %.6f" % (max(rates), loss.item()))


if __name__ == "__main__":
    main()
