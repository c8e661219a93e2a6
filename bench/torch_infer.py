#!/usr/bin/python3
"""PyTorch reference for bench/bench_engine.c: the same two autoencoders
(seed: LSTM(64,seq) > LSTM(32,seq) > LSTM(64,seq) > TimeDistributed(Dense(1))
on (100,1) windows; encdec: LSTM(100) > RepeatVector(10) > LSTM(100,seq) >
TimeDistributed(Dense(8)) on (10,8) windows), one thread, inference_mode,
batch sizes 1, 16, 256. Prints "torch VERSION" and then one line per
configuration: "model batch windows_per_second" (best of ~20 ms
repetitions over ~1 s). Run with /usr/bin/python3 (Debian python3-torch)."""
import time

import torch
from torch import nn

torch.set_num_threads(1)
torch.manual_seed(0)


class Seed(nn.Module):
    def __init__(self, F=1):
        super().__init__()
        self.l1 = nn.LSTM(F, 64, batch_first=True)
        self.l2 = nn.LSTM(64, 32, batch_first=True)
        self.l3 = nn.LSTM(32, 64, batch_first=True)
        self.out = nn.Linear(64, F)

    def forward(self, x):
        h, _ = self.l1(x)
        h, _ = self.l2(h)
        h, _ = self.l3(h)
        return self.out(h)


class EncDec(nn.Module):
    def __init__(self, T=10, F=8, H=100):
        super().__init__()
        self.T = T
        self.enc = nn.LSTM(F, H, batch_first=True)
        self.dec = nn.LSTM(H, H, batch_first=True)
        self.out = nn.Linear(H, F)

    def forward(self, x):
        _, (h, _) = self.enc(x)
        z = h[-1].unsqueeze(1).repeat(1, self.T, 1)
        y, _ = self.dec(z)
        return self.out(y)


def bench(model, T, F, B, budget=1.0):
    """windows/s: best repetition of ~20 ms (at least one call; at least 3
    repetitions, about `budget` seconds), as bench_engine.c does."""
    x = torch.randn(B, T, F)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        model(x)
        t = time.perf_counter() - t0
        calls = int(0.02 / t) + 1 if 0 < t < 0.02 else 1
        best, reps, start = 0.0, 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - start < budget:
            t0 = time.perf_counter()
            for _ in range(calls):
                model(x)
            t = time.perf_counter() - t0
            best = max(best, calls * B / t)
            reps += 1
    return best


def main():
    print("torch", torch.__version__, flush=True)
    for name, model, T, F in (("seed", Seed(1), 100, 1),
                              ("encdec", EncDec(10, 8, 100), 10, 8)):
        model.eval()
        for B in (1, 16, 256):
            print(name, B, "%.1f" % bench(model, T, F, B), flush=True)


if __name__ == "__main__":
    main()
