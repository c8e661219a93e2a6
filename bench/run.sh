#!/bin/sh
# Benchmark runner: runs every benchmark binary BUILD/bench/bench_* and every
# script bench/bench_*.sh. Each prints its own figures and ratios against a
# reference measured in the same run. Single-threaded BLAS throughout.
BUILD=${1:-build}
export AD_BUILD="$BUILD" AD_BIN="$BUILD/anomalyd" AD_SRCDIR="$(pwd)"
export PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
rc=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$(basename "$b")" in *${BENCH:-}*) ;; *) continue ;; esac
    echo "== $(basename "$b")"
    "$b" || rc=1
done
for b in bench/bench_*.sh; do
    [ -f "$b" ] || continue
    case "$(basename "$b")" in *${BENCH:-}*) ;; *) continue ;; esac
    echo "== $(basename "$b")"
    sh "$b" || rc=1
done
exit $rc
