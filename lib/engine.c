/*
 * engine.c - the batched inference engine: forward pass of B windows through
 * an autoencoder with OpenBLAS products and vectorised gate math.
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
 * LSTM layer, per the spec in model.h:
 *   1. G (t*B, 4H) = bias, then G += X K as ONE sgemm over all t*B rows
 *      (bias fused by initialising with it and beta = 1).
 *      After a repeat_vector the t input rows of a window are identical: the
 *      product is computed once on the vector (B rows) and reused each step.
 *   2. For each step s: G_s += h_{s-1} U (skipped at s = 0, h_{-1} = 0):
 *      cblas_sgemv when B == 1 (OpenBLAS runs a one-row sgemm several times
 *      slower than sgemv), cblas_sgemm otherwise.
 *   3. ad_lstm_cell(): sigmoid(i, f, o), act(g), c and h updates, one fused
 *      vectorised pass (vmath.c), h written straight into the output
 *      sequence (or into a two-row ping-pong when only the last h is kept).
 *
 * Memory: ad_engine_new() sizes everything for max_batch and allocates one
 * 64-byte aligned block carved into named buffers; ad_engine_forward()
 * never allocates. BLAS threading is left to the caller (the daemon and the
 * benchmarks run OpenBLAS with one thread; the engine never changes it).
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
    void *block;            /* the one allocation; everything below points in */
    float *act[2];          /* ping-pong activations, act_len floats each */
    float *gates;           /* LSTM pre-activations, gates_len floats */
    float *rec;             /* recurrent product of one step (B, 4Hmax) */
    float *cell;            /* LSTM cell state (B, Hmax) */
    float *hring[2];        /* last-h ping-pong for !return_sequences (B, Hmax) */
    size_t act_len, gates_len, state_len;
};

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
    B = (size_t)max_batch;
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

/* x (rows, d) -> y (rows, U) = x W + bias; W (d, U). */
static void linear(const float *x, size_t rows, int d, const float *W,
                   const float *bias, int U, float *y)
{
    ad_fill_rows(y, bias, rows, (size_t)U);
    if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, d, U, 1.0f, W, U, x, 1,
                    1.0f, y, 1);
    else if (U == 1)        /* a matrix-vector product; sgemm is slow at N=1 */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, d, 1.0f, x, d, W,
                    1, 1.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, U,
                    d, 1.0f, x, d, W, U, 1.0f, y, U);
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

/*
 * LSTM over t steps of B windows.
 * x time-major (t, B, d), or when bcast != 0 one vector (B, d) repeated t
 * times; out (t, B, H) when return_sequences, else (B, H).
 *
 * Memory traffic matters as much as flops at large B (one step's gates are
 * B*4H floats, 256 KB at B = 256, H = 64): G, the input products of all
 * steps, is written once by its sgemm and read once by the cell; the
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

        if (rows == 1)
            cblas_sgemv(CblasRowMajor, CblasTrans, d, H4, 1.0f, L->kernel, H4,
                        x, 1, 0.0f, G, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows,
                        H4, d, 1.0f, x, d, L->kernel, H4, 0.0f, G, H4);
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
        if (hprev != NULL) {
            if (B == 1)
                cblas_sgemv(CblasRowMajor, CblasTrans, H, H4, 1.0f,
                            L->recurrent, H4, hprev, 1, beta, R, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H4,
                            H, 1.0f, hprev, H, L->recurrent, H4, beta, R, H4);
        }
        if (seq)
            h = out + (size_t)s * BH;
        else
            h = s == t - 1 ? out : e->hring[s & 1];
        ad_lstm_cell(zx, zh, L->bias, c, h, B, H, relu);
        hprev = h;
    }
}

int ad_engine_forward(ad_engine *e, const float *in, float *out, int B)
{
    const ad_model *m;
    const float *cur;
    float *dst;
    int which = -1;         /* act buffer holding cur; -1: the caller's in */
    int tm = 0;             /* cur is a time-major sequence */
    int cur_t, i;

    if (e == NULL || in == NULL || out == NULL || B < 1 || B > e->max_batch)
        return AD_EINVAL;
    m = e->m;
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

            linear(cur, rows, L->in_d, L->kernel, L->bias, L->spec.units, dst);
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
            linear(cur, (size_t)B, L->in_d, L->kernel, L->bias,
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
