#!/usr/bin/python3
"""Independent float64 reference for lib/likelihood.c (used by
tests/test_likelihood.c): numpy for the window statistics (two-pass mean and
population std over each history window, recomputed from scratch at every
step) and scipy's norm.sf / norm.logsf for the Gaussian tail.

usage: likelihood_ref.py SERIES W w MIN_HISTORY REL_FLOOR ABS_FLOOR
SERIES: one "score learn" pair per line. Prints "p logL" per line (repr)."""
import sys

import numpy as np
from scipy.stats import norm


def main():
    path, W, w, min_h, rel, absf = sys.argv[1:7]
    W, w, min_h, rel, absf = int(W), int(w), int(min_h), float(rel), float(absf)
    kept = []      # learned raw scores
    hist = []      # learned short averages
    out = []
    for line in open(path):
        xs, ls = line.split()
        x, learn = float(xs), int(ls)
        prev = np.array(kept[-(w - 1):] if w > 1 else [], dtype=np.float64)
        a = float(np.mean(np.concatenate([prev, [x]])))
        h = np.array(hist[-W:], dtype=np.float64)
        if len(h) < min_h:
            p, L = float('nan'), float('nan')   # unknown
        else:
            mu = float(np.mean(h))
            sd = float(np.std(h))
            s = max(sd, rel * abs(mu), absf)
            z = (a - mu) / s
            p = float(norm.cdf(z))
            L = float(norm.logsf(z))
        if learn:
            kept.append(x)
            hist.append(a)
        out.append("%r %r" % (p, L))
    sys.stdout.write("\n".join(out) + "\n")


main()
