/*
 * train_int.h - private to lib/train.c and lib/train_fit.c: the clock and
 * the deterministic random numbers training uses.
 */
#ifndef AD_TRAIN_INT_H
#define AD_TRAIN_INT_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64: tiny, well mixed, and a pure function of its state. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 bits */
static inline double rng_unif(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [0, n) */
static inline size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_unif(s) * (double)n) % n;
}

#endif /* AD_TRAIN_INT_H */
