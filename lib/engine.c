/*
 * engine.c - the batched inference engine: forward pass of B windows through
 * an autoencoder with blocked matrix products and vectorised gate math.
 *
 * Internal layout. Sequences inside the engine are TIME-MAJOR, (t, B, d):
 * the B rows of step s are contiguous, so each recurrent step works on
 * plain contiguous (B, 4H) / (B, H) matrices. Vectors are (B, d). The
 * caller's windows are batch-major (B, T, F); they are transposed on the way
 * in (only when a layer needs time-major input and B > 1; for B == 1 both
 * layouts are the same memory) and on the way out. Layers that treat every
 * row alike (time_distributed_dense) keep whatever layout they get; flatten
 * needs batch-major and converts if needed. So a dense autoencoder on
 * flattened windows never copies its input.
 *
 * Batches are processed in chunks of AD_ENGINE_CHUNK (16) windows, each
 * chunk through all layers: windows are independent, and a chunk's
 * activations stay in L2 where a batch of 256 streams tens of MB from DRAM
 * (measured: 2x faster at B = 256 on the seed model).
 *
 * LSTM layer, per the spec in model.h:
 *   1. G (t*B, 4H) = X K as ONE matrix product over all t*B rows of the
 *      chunk, before the recurrent loop. After a repeat_vector the t input
 *      rows of a window are identical: the product is computed once on the
 *      vector (B rows) and reused by every step. For tiny inputs
 *      (d <= SMALL_D, e.g. one sensor) see lstm_forward().
 *   2. For each step s: R = h_{s-1} U (skipped at s = 0, h_{-1} = 0) into a
 *      cache-resident scratch; a matrix-vector product when B == 1.
 *   3. ad_lstm_cell() (vmath.c): z = G_s + R + bias (bias fused here),
 *      sigmoid(i, f, o), act(g), c and h updates in one vectorised pass; h
 *      goes straight into the output sequence (or a two-row ping-pong when
 *      only the last h is kept).
 *
 * Products: matmul() below. On CPUs with AVX-512F, register-blocked AVX-512
 * kernels written here (2x what this OpenBLAS build reaches on Zen 5, see
 * the block comment there); otherwise, and for widths that are not a
 * multiple of 16, OpenBLAS: cblas_sgemm, or cblas_sgemv for a single row
 * (OpenBLAS runs a one-row sgemm several times slower than sgemv).
 *
 * Memory: ad_engine_new() sizes everything for min(max_batch, chunk) and
 * allocates one 64-byte aligned block carved into named buffers;
 * ad_engine_forward() never allocates. BLAS threading is left to the caller
 * (the daemon and the benchmarks run OpenBLAS with one thread; the engine
 * never changes it).
 */
#include "engine.h"
#include "ad.h"
#include "vmath.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ad_engine {
    const ad_model *m;
    int max_batch;
    int chunk;              /* windows per pass; buffers are sized for it */
    int k512;               /* use the AVX-512 kernels below */
    void *block;            /* the one allocation; everything below points in */
    float *act[2];          /* ping-pong activations, act_len floats each */
    float *gates;           /* LSTM pre-activations, gates_len floats */
    float *rec;             /* recurrent product of one step (B, 4Hmax) */
    float *cell;            /* LSTM cell state (B, Hmax) */
    float *hring[2];        /* last-h ping-pong for !return_sequences (B, Hmax) */
    size_t act_len, gates_len, state_len;
};

static int cpu_has_avx512(void);

/* Windows per pass through the layers (see ad_engine_forward). */
#ifndef AD_ENGINE_CHUNK
#define AD_ENGINE_CHUNK 16
#endif

/* LSTM inputs this narrow skip the all-steps input sgemm (lstm_forward). */
#define SMALL_D 4

/* Round a float count up to a multiple of 16 (64 bytes), checked. */
static int round16(size_t n, size_t *out)
{
    if (n > SIZE_MAX - 15)
        return -1;
    *out = (n + 15) & ~(size_t)15;
    return 0;
}

/* a * b * c with overflow check. */
static int mul3(size_t a, size_t b, size_t c, size_t *out)
{
    size_t t;

    if (ad_mul_size(a, b, &t) < 0 || ad_mul_size(t, c, out) < 0)
        return -1;
    return 0;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

ad_engine *ad_engine_new(const ad_model *m, int max_batch)
{
    ad_engine *e;
    size_t B, act = 0, gates = 0, state = 0, n, total, off;
    int i;

    if (m == NULL || max_batch < 1 || m->n_layers < 1 ||
        m->n_layers > AD_MAX_LAYERS || m->window < 1 || m->n_features < 1)
        return NULL;
    B = (size_t)(max_batch < AD_ENGINE_CHUNK ? max_batch : AD_ENGINE_CHUNK);
    /* The input converted to time-major. */
    if (mul3(B, (size_t)m->window, (size_t)m->n_features, &act) < 0)
        return NULL;
    for (i = 0; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];
        size_t ot = L->out_t > 0 ? (size_t)L->out_t : 1;

        if (L->out_d < 1 || L->out_t < 0 || L->in_d < 1 || L->in_t < 0)
            return NULL;
        if (mul3(B, ot, (size_t)L->out_d, &n) < 0)
            return NULL;
        act = max_sz(act, n);
        if (L->spec.type == AD_LAYER_LSTM) {
            size_t H4 = 4 * (size_t)L->spec.units;
            size_t steps = L->in_t > 0 ? (size_t)L->in_t : 1;
            int bcast = i > 0 &&
                        m->layers[i - 1].spec.type == AD_LAYER_REPEAT_VECTOR;

            if (L->spec.units < 1 || L->kernel == NULL ||
                L->recurrent == NULL || L->bias == NULL)
                return NULL;
            /* all steps' input products (one step's after repeat_vector,
             * none for tiny inputs) */
            if (bcast)
                steps = 1;
            else if (L->in_d <= SMALL_D)
                steps = 0;
            if (mul3(B, steps, H4, &n) < 0)
                return NULL;
            gates = max_sz(gates, n);
            state = max_sz(state, B * (size_t)L->spec.units);
        } else if (L->spec.type == AD_LAYER_DENSE ||
                   L->spec.type == AD_LAYER_TD_DENSE) {
            if (L->kernel == NULL || L->bias == NULL)
                return NULL;
        }
    }
    if (round16(act, &act) < 0 || round16(gates, &gates) < 0 ||
        round16(state, &state) < 0)
        return NULL;
    /* 2 act + gates + rec (4 state) + 3 state (cell, 2 h rows) */
    total = 0;
    if (ad_add_size(act, act, &total) < 0 ||
        ad_add_size(total, gates, &total) < 0 ||
        mul3(state, 7, 1, &n) < 0 || ad_add_size(total, n, &total) < 0 ||
        ad_mul_size(total, sizeof(float), &total) < 0)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->block = ad_aalloc(total);
    if (e->block == NULL) {
        free(e);
        return NULL;
    }
    e->m = m;
    e->max_batch = max_batch;
    e->chunk = (int)B;
    e->k512 = cpu_has_avx512();
    e->act_len = act;
    e->gates_len = gates;
    e->state_len = state;
    off = 0;
    e->act[0] = (float *)e->block + off;  off += act;
    e->act[1] = (float *)e->block + off;  off += act;
    e->gates = (float *)e->block + off;   off += gates;
    e->rec = (float *)e->block + off;     off += 4 * state;
    e->cell = (float *)e->block + off;    off += state;
    e->hring[0] = (float *)e->block + off; off += state;
    e->hring[1] = (float *)e->block + off;
    return e;
}

void ad_engine_free(ad_engine *e)
{
    if (e == NULL)
        return;
    ad_afree(e->block);
    free(e);
}

int ad_engine_max_batch(const ad_engine *e)
{
    return e != NULL ? e->max_batch : 0;
}

/* in (A, C, d) -> out (C, A, d): swap the two outer axes (batch <-> time). */
static void swap_outer(const float *in, float *out, int A, int C, int d)
{
    size_t ds = (size_t)d * sizeof(float);
    int a, c;

    if (d == 1) {           /* one feature: a plain transpose */
        for (a = 0; a < A; a++)
            for (c = 0; c < C; c++)
                out[(size_t)c * A + a] = in[(size_t)a * C + c];
        return;
    }
    for (a = 0; a < A; a++)
        for (c = 0; c < C; c++)
            memcpy(out + ((size_t)c * A + a) * d, in + ((size_t)a * C + c) * d,
                   ds);
}

/* y (n) = act(y), in place. */
static void activate(float *y, size_t n, ad_act a)
{
    switch (a) {
    case AD_ACT_RELU: ad_vrelu(y, n); break;
    case AD_ACT_SIGMOID: ad_vsigmoid(y, n); break;
    case AD_ACT_TANH: ad_vtanh(y, n); break;
    case AD_ACT_LINEAR: break;
    }
}

/* ------------------------------------------------------------------------
 * AVX-512 small matrix products for the recurrent step (and the input
 * products). This OpenBLAS (0.3.21, DYNAMIC_ARCH) drives Zen 4/5 with its
 * Haswell AVX2 kernels: ~100 GFLOP/s on the (256 x 64) x (64 x 256) product
 * of a step, ~80 at B = 16, against a 220 GFLOP/s AVX-512 FMA peak per core
 * here. These register-blocked kernels (8 rows x 32 columns of C in 16 zmm
 * accumulators, the B panel streamed from L1, A broadcast) measured 200-215
 * GFLOP/s on the same shapes, so the engine uses them when the CPU has
 * AVX-512F and N is a multiple of 16; OpenBLAS otherwise (other CPUs, odd
 * widths). GCC vector extensions, no intrinsics; the summation order over k
 * is the plain one.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define AD_HAVE_K512 1
typedef float ad_v16 __attribute__((vector_size(64)));
#define K512_INLINE static inline __attribute__((always_inline, target("avx512f")))

K512_INLINE ad_v16 k512_ld(const float *p)
{
    ad_v16 v;

    memcpy(&v, p, sizeof v);
    return v;
}

K512_INLINE void k512_st(float *p, ad_v16 v)
{
    memcpy(p, &v, sizeof v);
}

/* C (mr, 16 nv) (+)= A (mr, K) B (K, 16 nv); mr <= 8, nv <= 2, constants. */
K512_INLINE void k512_tile(int mr, int nv, int K, const float *A, size_t lda,
                           const float *B, size_t ldb, float *C, size_t ldc,
                           int acc)
{
    ad_v16 c[8][2], b[2];
    int r, v, k;

#pragma GCC unroll 8
    for (r = 0; r < 8; r++)
#pragma GCC unroll 2
        for (v = 0; v < 2; v++)
            if (r < mr && v < nv)
                c[r][v] = acc ? k512_ld(C + r * ldc + 16 * v) : (ad_v16){ 0 };
    for (k = 0; k < K; k++) {
#pragma GCC unroll 2
        for (v = 0; v < 2; v++)
            if (v < nv)
                b[v] = k512_ld(B + (size_t)k * ldb + 16 * v);
#pragma GCC unroll 8
        for (r = 0; r < 8; r++) {
            if (r < mr) {
                float a = A[r * lda + k];

#pragma GCC unroll 2
                for (v = 0; v < 2; v++)
                    if (v < nv)
                        c[r][v] += a * b[v];
            }
        }
    }
#pragma GCC unroll 8
    for (r = 0; r < 8; r++)
#pragma GCC unroll 2
        for (v = 0; v < 2; v++)
            if (r < mr && v < nv)
                k512_st(C + r * ldc + 16 * v, c[r][v]);
}

/* All M rows of one column panel (16 nv wide). */
K512_INLINE void k512_panel(int nv, int M, int K, const float *A, size_t lda,
                            const float *B, size_t ldb, float *C, size_t ldc,
                            int acc)
{
    int i = 0;

    for (; i + 8 <= M; i += 8)
        k512_tile(8, nv, K, A + i * lda, lda, B, ldb, C + i * ldc, ldc, acc);
    A += i * lda;
    C += i * ldc;
    switch (M - i) {
    case 7: k512_tile(7, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    case 6: k512_tile(6, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    case 5: k512_tile(5, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    case 4: k512_tile(4, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    case 3: k512_tile(3, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    case 2: k512_tile(2, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    case 1: k512_tile(1, nv, K, A, lda, B, ldb, C, ldc, acc); break;
    default: break;
    }
}

/*
 * C (M, N) = A (M, K) B (K, N) (+ C when acc), row-major, N % 16 == 0.
 * Rows in chunks of 128 (A chunk stays in L1/L2 while every column panel
 * of B, K x 32 floats, is swept over it).
 */
__attribute__((target("avx512f"), noinline))
static void k512_gemm(size_t M, int N, int K, const float *A, size_t lda,
                      const float *B, size_t ldb, float *C, size_t ldc,
                      int acc)
{
    size_t i0;
    int j, mb;

    for (i0 = 0; i0 < M; i0 += 128) {
        const float *Ai = A + i0 * lda;
        float *Ci = C + i0 * ldc;

        mb = M - i0 < 128 ? (int)(M - i0) : 128;
        for (j = 0; j + 32 <= N; j += 32)
            k512_panel(2, mb, K, Ai, lda, B + j, ldb, Ci + j, ldc, acc);
        if (j < N)
            k512_panel(1, mb, K, Ai, lda, B + j, ldb, Ci + j, ldc, acc);
    }
}

/* y (16 nv) (+)= x (K) B (K, 16 nv), nv <= 16 constant. */
K512_INLINE void k512_gemv_blk(int nv, int K, const float *x, const float *B,
                               size_t ldb, float *y, int acc)
{
    ad_v16 c[16];
    int v, k;

#pragma GCC unroll 16
    for (v = 0; v < 16; v++)
        if (v < nv)
            c[v] = acc ? k512_ld(y + 16 * v) : (ad_v16){ 0 };
    for (k = 0; k < K; k++) {
        float a = x[k];

#pragma GCC unroll 16
        for (v = 0; v < 16; v++)
            if (v < nv)
                c[v] += a * k512_ld(B + (size_t)k * ldb + 16 * v);
    }
#pragma GCC unroll 16
    for (v = 0; v < 16; v++)
        if (v < nv)
            k512_st(y + 16 * v, c[v]);
}

/*
 * y (N) = x (K) B (K, N) (+ y when acc), N % 16 == 0. Column blocks of up
 * to 256 (16 accumulators): for 4H <= 256 each row of B is read whole and
 * in order, a sequential stream the prefetchers follow (B does not fit in
 * L1; 64x256 measured 82 GFLOP/s this way, 60 with 128-wide blocks).
 */
__attribute__((target("avx512f"), noinline))
static void k512_gemv(int N, int K, const float *x, const float *B,
                      size_t ldb, float *y, int acc)
{
    int j = 0;

    for (; j + 256 <= N; j += 256)
        k512_gemv_blk(16, K, x, B + j, ldb, y + j, acc);
    B += j;
    y += j;
    switch ((N - j) / 16) {
    case 15: k512_gemv_blk(15, K, x, B, ldb, y, acc); break;
    case 14: k512_gemv_blk(14, K, x, B, ldb, y, acc); break;
    case 13: k512_gemv_blk(13, K, x, B, ldb, y, acc); break;
    case 12: k512_gemv_blk(12, K, x, B, ldb, y, acc); break;
    case 11: k512_gemv_blk(11, K, x, B, ldb, y, acc); break;
    case 10: k512_gemv_blk(10, K, x, B, ldb, y, acc); break;
    case 9: k512_gemv_blk(9, K, x, B, ldb, y, acc); break;
    case 8: k512_gemv_blk(8, K, x, B, ldb, y, acc); break;
    case 7: k512_gemv_blk(7, K, x, B, ldb, y, acc); break;
    case 6: k512_gemv_blk(6, K, x, B, ldb, y, acc); break;
    case 5: k512_gemv_blk(5, K, x, B, ldb, y, acc); break;
    case 4: k512_gemv_blk(4, K, x, B, ldb, y, acc); break;
    case 3: k512_gemv_blk(3, K, x, B, ldb, y, acc); break;
    case 2: k512_gemv_blk(2, K, x, B, ldb, y, acc); break;
    case 1: k512_gemv_blk(1, K, x, B, ldb, y, acc); break;
    default: break;
    }
}

static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
}
#else
static int cpu_has_avx512(void)
{
    return 0;
}
#endif

/*
 * C (M, N) = A (M, K) W (K, N) + beta C, all row-major and contiguous
 * (lda = K, ldc = N), beta 0 or 1: the AVX-512 kernels when the engine may
 * use them and N % 16 == 0, else OpenBLAS (sgemv for one row).
 */
static void matmul(const ad_engine *e, size_t M, int N, int K, const float *A,
                   const float *W, float beta, float *C)
{
#ifdef AD_HAVE_K512
    if (e->k512 && N % 16 == 0) {
        if (M == 1)
            k512_gemv(N, K, A, W, (size_t)N, C, beta != 0.0f);
        else
            k512_gemm(M, N, K, A, (size_t)K, W, (size_t)N, C, (size_t)N,
                      beta != 0.0f);
        return;
    }
#else
    (void)e;
#endif
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.0f, W, N, A, 1, beta,
                    C, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, N, K,
                    1.0f, A, K, W, N, beta, C, N);
}

/* x (rows, d) -> y (rows, U) = x W + bias; W (d, U). */
static void linear(const ad_engine *e, const float *x, size_t rows, int d,
                   const float *W, const float *bias, int U, float *y)
{
    ad_fill_rows(y, bias, rows, (size_t)U);
    if (U == 1 && rows > 1)     /* a matrix-vector product */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, d, 1.0f, x, d, W,
                    1, 1.0f, y, 1);
    else
        matmul(e, rows, U, d, x, W, 1.0f, y);
}

/*
 * LSTM over t steps of B windows.
 * x time-major (t, B, d), or when bcast != 0 one vector (B, d) repeated t
 * times; out (t, B, H) when return_sequences, else (B, H).
 *
 * Memory traffic matters as much as flops (one step's gates are B*4H
 * floats): G, the input products of all steps, is written once by its
 * product and read once by the cell; the
 * recurrent product of a step goes to a small scratch R that stays in cache;
 * the bias is added in the cell instead of being copied into G first.
 * Tiny inputs (d <= SMALL_D, e.g. one sensor) get no G at all: their product
 * is a rank-d update that a BLAS call does slowly (sgemm with K = 1 runs at a
 * tenth of its speed) and that would still write all of G; it is computed
 * per step into R instead, before the recurrent product is added to it.
 */
static void lstm_forward(ad_engine *e, const ad_layer *L, const float *x,
                         int bcast, int t, int B, float *out)
{
    const int H = L->spec.units, d = L->in_d, H4 = 4 * L->spec.units;
    const size_t BH = (size_t)B * H, BH4 = (size_t)B * H4;
    const int relu = L->spec.act == AD_ACT_RELU;
    const int seq = L->spec.return_sequences;
    const int tiny = d <= SMALL_D && !bcast;
    float *G = e->gates, *R = e->rec, *c = e->cell, *h;
    const float *hprev = NULL, *zx, *zh;
    int s;

    /* input products of all steps (or of the repeated vector), no bias */
    if (!tiny) {
        size_t rows = bcast ? (size_t)B : (size_t)t * B;

        matmul(e, rows, H4, d, x, L->kernel, 0.0f, G);
    }
    memset(c, 0, BH * sizeof(float));
    for (s = 0; s < t; s++) {
        float beta = 0.0f;

        zh = NULL;
        if (tiny) {
            ad_small_matmul(x + (size_t)s * B * d, (size_t)B, d, L->kernel,
                            (size_t)H4, R, 0);
            zx = R;
            beta = 1.0f;    /* the recurrent product adds to R */
        } else {
            zx = bcast ? G : G + (size_t)s * BH4;
            zh = hprev != NULL ? R : NULL;
        }
        if (hprev != NULL)
            matmul(e, (size_t)B, H4, H, hprev, L->recurrent, beta, R);
        if (seq)
            h = out + (size_t)s * BH;
        else
            h = s == t - 1 ? out : e->hring[s & 1];
        ad_lstm_cell(zx, zh, L->bias, c, h, B, H, relu);
        hprev = h;
    }
}

/* The forward pass of B <= e->chunk windows. */
static int forward_chunk(ad_engine *e, const float *in, float *out, int B)
{
    const ad_model *m = e->m;
    const float *cur;
    float *dst;
    int which = -1;         /* act buffer holding cur; -1: the caller's in */
    int tm = 0;             /* cur is a time-major sequence */
    int cur_t, i;

    cur = in;
    cur_t = m->window;      /* (B, T, F) batch-major */
    for (i = 0; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];
        const int next_is_lstm = i + 1 < m->n_layers &&
                                 m->layers[i + 1].spec.type == AD_LAYER_LSTM;

        dst = e->act[which == 0 ? 1 : 0];
        switch (L->spec.type) {
        case AD_LAYER_LSTM:
            if (cur_t > 0 && !tm && B > 1) {    /* needs time-major */
                swap_outer(cur, dst, B, cur_t, L->in_d);
                cur = dst;
                which = which == 0 ? 1 : 0;
                dst = e->act[which == 0 ? 1 : 0];
            }
            if (cur_t > 0)
                lstm_forward(e, L, cur, 0, cur_t, B, dst);
            else            /* a vector marked for broadcast (repeat_vector) */
                lstm_forward(e, L, cur, 1, L->in_t, B, dst);
            cur_t = L->spec.return_sequences ? L->out_t : 0;
            tm = 1;
            break;
        case AD_LAYER_REPEAT_VECTOR:
            if (next_is_lstm)
                continue;   /* cur stays the vector; the LSTM broadcasts it */
            {
                size_t row = (size_t)B * L->in_d;
                int s;

                for (s = 0; s < L->out_t; s++)
                    memcpy(dst + (size_t)s * row, cur, row * sizeof(float));
            }
            cur_t = L->out_t;
            tm = 1;
            break;
        case AD_LAYER_TD_DENSE: {
            size_t rows = (size_t)cur_t * B;

            linear(e, cur, rows, L->in_d, L->kernel, L->bias, L->spec.units, dst);
            activate(dst, rows * L->spec.units, L->spec.act);
            break;          /* layout unchanged */
        }
        case AD_LAYER_FLATTEN: {
            int was_tm = tm && B > 1;

            if (was_tm)
                swap_outer(cur, dst, cur_t, B, L->in_d);
            cur_t = 0;
            tm = 0;
            if (!was_tm)
                continue;   /* already (B, t*d) in memory */
            break;
        }
        case AD_LAYER_DENSE:
            linear(e, cur, (size_t)B, L->in_d, L->kernel, L->bias,
                   L->spec.units, dst);
            activate(dst, (size_t)B * L->spec.units, L->spec.act);
            cur_t = 0;
            tm = 0;
            break;
        default:
            return AD_EINVAL;
        }
        cur = dst;
        which = which == 0 ? 1 : 0;
    }
    /* cur: (T, F) sequence in cur layout, or the (T*F) vector */
    if (cur_t > 0 && tm && B > 1)
        swap_outer(cur, out, cur_t, B, m->n_features);
    else
        memcpy(out, cur, (size_t)B * m->window * m->n_features * sizeof(float));
    return 0;
}

/*
 * Large batches run as chunks of e->chunk windows: the windows are
 * independent, and a chunk's activations and input products stay in L2/L3
 * where a whole batch of 256 would stream them from DRAM (the seed model at
 * B = 256 keeps ~40 MB of them live).
 */
int ad_engine_forward(ad_engine *e, const float *in, float *out, int B)
{
    size_t win;
    int b, n, rc;

    if (e == NULL || in == NULL || out == NULL || B < 1 || B > e->max_batch)
        return AD_EINVAL;
    win = (size_t)e->m->window * e->m->n_features;
    for (b = 0; b < B; b += n) {
        n = B - b < e->chunk ? B - b : e->chunk;
        rc = forward_chunk(e, in + (size_t)b * win, out + (size_t)b * win, n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ad_engine_use_avx512_(ad_engine *e, int on)
{
    if (e == NULL)
        return 0;
    e->k512 = on && cpu_has_avx512();
    return e->k512;
}
