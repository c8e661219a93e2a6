/*
 * vmath.h - internal: scalar building blocks of the vectorised elementwise
 * math (exp, sigmoid, tanh, relu) and the fused LSTM cell kernel.
 *
 * The inline functions below are plain C written so that GCC/Clang can
 * if-convert and auto-vectorise the loops that call them: no branches (only
 * selects), no libm calls, no float->int conversions (the exponent of 2^n is
 * taken from the bits of a float rounded with the 1.5*2^23 magic number, so a
 * NaN lane never reaches a conversion with undefined behaviour), and NaN
 * propagates through every function (clamps are written as comparisons that
 * are false for NaN, never fminf/fmaxf which would drop it).
 *
 * They are compiled into several ISA variants by AD_VEC_FN (GCC function
 * multiversioning, target_clones): x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA)
 * and the baseline; the loader picks one at start-up (ifunc). No -ffast-math
 * is needed or used: the polynomials are Cephes' single precision ones
 * (expf, tanhf), accurate to a few ulp (tests/test_engine.c: <= 2 ulp).
 *
 * Included by lib/vmath.c, lib/engine.c and the engine's test and benchmark
 * (which use ad_engine_use_avx512_ below).
 */
#ifndef AD_VMATH_H
#define AD_VMATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Multiversioned, vectorised function. GCC's -O2 uses the "very cheap"
 * vectoriser cost model, which refuses loops needing a scalar tail or an
 * alias check; ask for the normal (dynamic) model on these functions only.
 * Clang (used by `make fuzz`): no clones. Clang 14 names the dispatcher of a
 * target_clones function "f.ifunc", so calls from other files do not link;
 * its default -O2 vectoriser handles the loops for the baseline ISA. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define AD_VEC_FN __attribute__((target_clones("arch=x86-64-v4", \
        "arch=x86-64-v3", "default"), \
        optimize("tree-vectorize", "vect-cost-model=dynamic")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
/* Sanitizer builds: keep the clones (so they are tested) but not the
 * optimize attribute, which would override -O1 debug settings. */
#define AD_VEC_FN __attribute__((target_clones("arch=x86-64-v4", \
        "arch=x86-64-v3", "default")))
#else
#define AD_VEC_FN
#endif

#define AD_INLINE static inline __attribute__((always_inline))

AD_INLINE uint32_t ad_vm_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

AD_INLINE float ad_vm_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* cond ? a : b as bit operations. Written this way, not with ?:, so that
 * GCC never turns the select into a branch: branches inside a nested loop
 * stop its if-conversion and with it the AVX2 vectorisation. */
AD_INLINE float ad_vm_sel(int cond, float a, float b)
{
    uint32_t m = 0u - (uint32_t)cond;

    return ad_vm_float((ad_vm_bits(a) & m) | (ad_vm_bits(b) & ~m));
}

/*
 * exp(x), Cephes expf: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree 6
 * polynomial, times 2^n built from exponent bits. 2^n is applied as two
 * factors 2^(n/2) 2^(n-n/2) so that n in [-150, 128] covers overflow to +inf
 * and gradual underflow to 0 with a single rounding. NaN -> NaN,
 * +inf -> +inf, -inf -> 0. lo/hi: clamp only where the caller's range needs
 * it (the sigmoid and tanh below only pass x <= 0).
 */
AD_INLINE float ad_vm_exp_core(float x, int clamp_hi)
{
    const float magic = 12582912.0f;            /* 1.5 * 2^23 */
    float t, n, r, p;
    uint32_t nb, n1, n2;

    if (clamp_hi)                               /* exp(88.8) = +inf anyway */
        x = ad_vm_sel(x > 88.8f, 88.8f, x);
    x = ad_vm_sel(x < -104.0f, -104.0f, x);     /* exp(-104) rounds to 0 */
    t = x * 1.44269504088896341f + magic;       /* round(x/ln2) + magic */
    n = t - magic;
    r = x - n * 0.693359375f;                   /* Cody-Waite, exact */
    r = r - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    /* n from the low mantissa bits of t, in unsigned (wrapping, no UB). */
    nb = ad_vm_bits(t) - ad_vm_bits(magic);
    n1 = (uint32_t)((int32_t)nb >> 1);          /* floor(n/2) */
    n2 = nb - n1;
    return p * ad_vm_float((n1 + 127u) << 23) * ad_vm_float((n2 + 127u) << 23);
}

/*
 * exp(x) for x <= 0 (or NaN) where results below FLT_MIN may flush to
 * FLT_MIN-ish values: clamps x at -87.3 (exp = 1.18e-38) and scales by one
 * factor 2^n. For the LSTM cell, whose gates only need absolute accuracy
 * near 0 (an error of 1e-38 in a gate is invisible); a few ops cheaper.
 */
AD_INLINE float ad_vm_exp_neg_fast(float x)
{
    const float magic = 12582912.0f;
    float t, n, r, p;

    x = ad_vm_sel(x < -87.33654f, -87.33654f, x);
    t = x * 1.44269504088896341f + magic;
    n = t - magic;
    r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return p * ad_vm_float((ad_vm_bits(t) - ad_vm_bits(magic) + 127u) << 23);
}

AD_INLINE float ad_vm_exp(float x)
{
    return ad_vm_exp_core(x, 1);
}

/*
 * 1 / (1 + exp(-x)), computed as n / (1 + e) with e = exp(-|x|) <= 1 and
 * n = 1 (x >= 0) or e (x < 0): never overflows, so results down to the
 * subnormal range (x < -87) stay accurate instead of flushing to 0.
 * +-0 -> 0.5, +inf -> 1, -inf -> 0, NaN -> NaN.
 */
AD_INLINE float ad_vm_sigmoid(float x)
{
    float e = ad_vm_exp_core(-__builtin_fabsf(x), 0);

    return ad_vm_sel(x < 0.0f, e, 1.0f) / (1.0f + e);
}

/*
 * tanh(x), after Cephes tanhf: odd polynomial for |x| < 0.625, else
 * sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) in (0, 0.29] (no
 * cancellation, no overflow). NaN fails the comparison and takes the second
 * branch, which propagates it.
 */
AD_INLINE float ad_vm_tanh(float x)
{
    float ax = __builtin_fabsf(x);
    float z = x * x;
    float p, e, l;

    p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    p = p * z * x + x;
    e = ad_vm_exp_core(-2.0f * ax, 0);
    l = (1.0f - e) / (1.0f + e);
    return __builtin_copysignf(ad_vm_sel(ax < 0.625f, p, l), x);
}

/* max(x, 0), NaN -> NaN (a comparison, not fmaxf, which would drop it). */
AD_INLINE float ad_vm_relu(float x)
{
    return ad_vm_sel(x < 0.0f, 0.0f, x);
}

/*
 * Fused LSTM cell for one time step of B windows.
 *   pre-activations z = zx + zh + bias, each (B, 4H) with rows [i|f|c|o]:
 *   zx the input product of this step, zh the recurrent product or NULL
 *   (first step: h_{-1} = 0), bias (4H).
 *   c (B, H) cell state in/out, h (B, H) out.
 *   i, f, o = sigmoid; g = act(z_c); c = f c + i g; h = o act(c), act = tanh
 *   or relu (relu != 0). The buffers must not overlap.
 */
void ad_lstm_cell(const float *zx, const float *zh, const float *bias,
                  float *c, float *h, int B, int H, int relu);

/* y (rows, n) = x (rows, d) W (d, n), or += when accumulate, for small d
 * (d >= 1), row by row. */
void ad_small_matmul(const float *x, size_t rows, int d, const float *W,
                     size_t n, float *y, int accumulate);

/* y (rows, n): every row = bias (n). */
void ad_fill_rows(float *y, const float *bias, size_t rows, size_t n);

/*
 * Engine internals for tests and benchmarks (not part of the API): switch
 * the engine's AVX-512 product kernels off (0) or back on (1, only if the
 * CPU has AVX-512F; OpenBLAS is used otherwise). Returns the new setting.
 */
struct ad_engine;
int ad_engine_use_avx512_(struct ad_engine *e, int on);

#endif /* AD_VMATH_H */
