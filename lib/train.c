/*
 * train.c - the trainer: Keras-style initialisation, a training forward pass
 * that caches gates, cell states and hidden states, backpropagation through
 * time, MSE/MAE losses, Adam(W) with gradient-norm clipping, and the fit
 * loop with a time-ordered validation split and early stopping (train.h).
 *
 * Layout. Inside the trainer every sequence is TIME-MAJOR, (t, B, d): the
 * rows of one time step are contiguous, so a step of the recurrence is one
 * sgemm on a contiguous (B, .) block, and the products that do not depend on
 * the recurrence (input projections, weight gradients, input gradients) are
 * one sgemm over all t*B rows. Vectors are (B, d). The batch (B, T, F)
 * arrives batch-major and is transposed once on entry; the loss reads the
 * output in either layout.
 *
 * LSTM backward (per step s, from t-1 down to 0; dh_next = dz_{s+1} U^T):
 *   dh = dH_s + dh_next
 *   dc = dc_next + dh * o * act'(c_s)        dc_next = dc * f
 *   dz_i = dc*g * i(1-i)   dz_f = dc*c_{s-1} * f(1-f)
 *   dz_g = dc*i * act'(g)  dz_o = dh*act(c_s) * o(1-o)
 * then, after the loop, over all steps at once:
 *   dK = X^T dZ,  dU = H_{0..t-2}^T dZ_{1..t-1},  db = colsum(dZ),
 *   dX = dZ K^T.
 *
 * Workspaces are sized for batch_size windows in ad_trainer_new(); a step
 * allocates nothing.
 */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ad.h"
#include "train_int.h"

/* ---- small helpers: train_int.h ------------------------------------------ */

static double rng_normal(uint64_t *s)
{
    double u1, u2;
    do {
        u1 = rng_unif(s);
    } while (u1 <= 0.0);
    u2 = rng_unif(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Elementwise activations (in place). The engine's vectorised versions. */
static void act_sigmoid(float *x, size_t n) { ad_vsigmoid(x, n); }
static void act_tanh(float *x, size_t n) { ad_vtanh(x, n); }
static void act_relu(float *x, size_t n) { ad_vrelu(x, n); }

static void act_apply(ad_act a, float *x, size_t n)
{
    switch (a) {
    case AD_ACT_RELU: act_relu(x, n); break;
    case AD_ACT_SIGMOID: act_sigmoid(x, n); break;
    case AD_ACT_TANH: act_tanh(x, n); break;
    case AD_ACT_LINEAR: default: break;
    }
}

/* dz = dy * act'(.) expressed through the activation's output y. */
static void act_backward(ad_act a, const float *y, float *dy, size_t n)
{
    size_t i;
    switch (a) {
    case AD_ACT_RELU:
        for (i = 0; i < n; i++)
            dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case AD_ACT_SIGMOID:
        for (i = 0; i < n; i++)
            dy[i] *= y[i] * (1.0f - y[i]);
        break;
    case AD_ACT_TANH:
        for (i = 0; i < n; i++)
            dy[i] *= 1.0f - y[i] * y[i];
        break;
    case AD_ACT_LINEAR: default:
        break;
    }
}

/* ---- options ------------------------------------------------------------- */

void ad_train_opts_default(ad_train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->loss = AD_LOSS_MSE;
    o->batch_size = 32;
    o->epochs = 50;
    o->lr = 1e-3f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = 0.0f;
    o->clip_norm = 1.0f;
    o->val_frac = 0.1f;
    o->val_gap = 0;
    o->patience = 5;
    o->min_delta = 0.0f;
    o->restore_best = 1;
    o->shuffle = 1;
    o->max_seconds = 0.0;
    o->seed = 1;
}

const char *ad_loss_name(ad_loss l)
{
    switch (l) {
    case AD_LOSS_MSE: return "mse";
    case AD_LOSS_MAE: return "mae";
    default: return NULL;
    }
}

int ad_loss_from_name(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "mse") == 0)
        return AD_LOSS_MSE;
    if (strcmp(s, "mae") == 0)
        return AD_LOSS_MAE;
    return -1;
}

/* ---- initialisation ------------------------------------------------------ */

/* Glorot uniform: w (rows, cols), fan_in = rows, fan_out = cols. */
static void init_glorot(float *w, int rows, int cols, uint64_t *rs)
{
    double lim = sqrt(6.0 / (double)(rows + cols));
    size_t i, n = (size_t)rows * (size_t)cols;
    for (i = 0; i < n; i++)
        w[i] = (float)((2.0 * rng_unif(rs) - 1.0) * lim);
}

/*
 * Keras Orthogonal (gain 1) for w (H, G) with G = 4H >= H: a (G, H) standard
 * normal matrix, its QR factorisation with R's diagonal made positive
 * (modified Gram-Schmidt gives exactly that), and w = Q^T, whose rows are
 * orthonormal. Returns -1 on OOM (w then left zero).
 */
static int init_orthogonal(float *w, int H, int G, uint64_t *rs)
{
    int r = G > H ? G : H, c = G > H ? H : G;   /* a is (r, c), r >= c */
    double *a = malloc(sizeof(double) * (size_t)r * (size_t)c);
    int i, j, k;

    if (a == NULL)
        return -1;
    for (i = 0; i < r * c; i++)
        a[i] = rng_normal(rs);
    for (j = 0; j < c; j++) {           /* columns of a, MGS */
        double nrm = 0.0;
        for (k = 0; k < j; k++) {
            double dot = 0.0;
            for (i = 0; i < r; i++)
                dot += a[i * c + k] * a[i * c + j];
            for (i = 0; i < r; i++)
                a[i * c + j] -= dot * a[i * c + k];
        }
        for (i = 0; i < r; i++)
            nrm += a[i * c + j] * a[i * c + j];
        nrm = sqrt(nrm);
        if (nrm < 1e-12)
            nrm = 1e-12;
        for (i = 0; i < r; i++)
            a[i * c + j] /= nrm;
    }
    /* q is (r, c). Keras transposes when rows < cols: w (H, G) = q^T. */
    if (H <= G) {
        for (i = 0; i < H; i++)
            for (j = 0; j < G; j++)
                w[(size_t)i * G + j] = (float)a[(size_t)j * c + i];
    } else {
        for (i = 0; i < H; i++)
            for (j = 0; j < G; j++)
                w[(size_t)i * G + j] = (float)a[(size_t)i * c + j];
    }
    free(a);
    return 0;
}

void ad_train_init_weights(ad_model *m, uint64_t seed)
{
    uint64_t rs = seed ^ 0x5DEECE66Dull;
    int li;

    memset(m->params, 0, m->n_params * sizeof(float));
    for (li = 0; li < m->n_layers; li++) {
        ad_layer *L = &m->layers[li];
        switch (L->spec.type) {
        case AD_LAYER_LSTM: {
            int H = L->spec.units, G = 4 * H, j;
            init_glorot(L->kernel, L->in_d, G, &rs);
            if (init_orthogonal(L->recurrent, H, G, &rs) != 0)
                init_glorot(L->recurrent, H, G, &rs);
            for (j = 0; j < H; j++)
                L->bias[H + j] = 1.0f;
            break;
        }
        case AD_LAYER_TD_DENSE:
        case AD_LAYER_DENSE:
            init_glorot(L->kernel, L->in_d, L->spec.units, &rs);
            break;
        default:
            break;
        }
    }
}

/* ---- the trainer --------------------------------------------------------- */

typedef struct lws {
    float *out;     /* seq (t,B,d) time-major or vector (B,d) */
    float *dout;    /* gradient w.r.t. out, same shape */
    /* lstm only */
    float *gates;   /* (t,B,4H) activated i,f,g,o */
    float *dz;      /* (t,B,4H) gradient w.r.t. pre-activations */
    float *c;       /* (t,B,H) cell states */
    float *ac;      /* (t,B,H) act(c) */
    float *h;       /* (t,B,H) hidden states */
    float *dh, *dc; /* (B,H) carries of the backward recurrence */
    float *zero;    /* (B,H) zeros: c_{-1}, and dH of steps without output */
} lws;

struct ad_trainer {
    ad_model *m;
    ad_train_opts o;
    int maxB;
    int T, F;
    float *xt;              /* (T,B,F) time-major input */
    lws ws[AD_MAX_LAYERS];
    float *grad;            /* n_params */
    float *am, *av;         /* Adam moments, n_params */
    long step;
};

static size_t lay_steps(int t)
{
    return t > 0 ? (size_t)t : 1;
}

void ad_trainer_free(ad_trainer *t)
{
    int i;
    if (t == NULL)
        return;
    ad_afree(t->xt);
    for (i = 0; i < AD_MAX_LAYERS; i++) {
        lws *w = &t->ws[i];
        ad_afree(w->out); ad_afree(w->dout); ad_afree(w->gates);
        ad_afree(w->dz); ad_afree(w->c); ad_afree(w->ac); ad_afree(w->h);
        ad_afree(w->dh); ad_afree(w->dc); ad_afree(w->zero);
    }
    ad_afree(t->grad);
    ad_afree(t->am);
    ad_afree(t->av);
    free(t);
}

static float *falloc(size_t n)
{
    float *p;
    if (n == 0)
        n = 1;
    if (n > ((size_t)-1) / sizeof(float))
        return NULL;
    p = ad_aalloc(n * sizeof(float));
    if (p != NULL)
        memset(p, 0, n * sizeof(float));
    return p;
}

ad_trainer *ad_trainer_new(ad_model *m, const ad_train_opts *o)
{
    ad_trainer *t;
    int i, B;

    if (m == NULL || m->n_layers < 1 || m->params == NULL)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (o != NULL)
        t->o = *o;
    else
        ad_train_opts_default(&t->o);
    if (t->o.batch_size < 1 || t->o.batch_size > 1 << 20)
        goto fail;
    t->m = m;
    t->maxB = B = t->o.batch_size;
    t->T = m->window;
    t->F = m->n_features;
    if ((t->xt = falloc((size_t)t->T * B * t->F)) == NULL)
        goto fail;
    for (i = 0; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];
        lws *w = &t->ws[i];
        size_t on = lay_steps(L->out_t) * (size_t)B * (size_t)L->out_d;
        if ((w->out = falloc(on)) == NULL || (w->dout = falloc(on)) == NULL)
            goto fail;
        if (L->spec.type == AD_LAYER_LSTM) {
            size_t H = (size_t)L->spec.units, steps = (size_t)L->in_t;
            size_t nh = steps * (size_t)B * H;
            if ((w->gates = falloc(4 * nh)) == NULL ||
                (w->dz = falloc(4 * nh)) == NULL ||
                (w->c = falloc(nh)) == NULL ||
                (w->ac = falloc(nh)) == NULL ||
                (w->h = falloc(nh)) == NULL ||
                (w->dh = falloc((size_t)B * H)) == NULL ||
                (w->dc = falloc((size_t)B * H)) == NULL ||
                (w->zero = falloc((size_t)B * H)) == NULL)
                goto fail;
        }
    }
    if ((t->grad = falloc(m->n_params)) == NULL ||
        (t->am = falloc(m->n_params)) == NULL ||
        (t->av = falloc(m->n_params)) == NULL)
        goto fail;
    return t;
fail:
    ad_trainer_free(t);
    return NULL;
}

void ad_trainer_reset(ad_trainer *t)
{
    memset(t->am, 0, t->m->n_params * sizeof(float));
    memset(t->av, 0, t->m->n_params * sizeof(float));
    t->step = 0;
}

const float *ad_trainer_grad(const ad_trainer *t)
{
    return t->grad;
}

double ad_trainer_grad_norm(const ad_trainer *t)
{
    /* four partial sums in double: vectorisable, and accurate enough */
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    const float *g = t->grad;
    size_t i, n = t->m->n_params;
    for (i = 0; i + 4 <= n; i += 4) {
        s0 += (double)g[i] * g[i];
        s1 += (double)g[i + 1] * g[i + 1];
        s2 += (double)g[i + 2] * g[i + 2];
        s3 += (double)g[i + 3] * g[i + 3];
    }
    for (; i < n; i++)
        s0 += (double)g[i] * g[i];
    return sqrt((s0 + s1) + (s2 + s3));
}

/* ---- layers: forward ----------------------------------------------------- */

/* lstm: in (t,B,d), K (d,4H), U (H,4H), b (4H) -> h (t,B,H); out is h
 * (return_sequences) or h_{t-1} (B,H). Caches gates, c, act(c), h. */
static void lstm_forward(const ad_layer *L, lws *w, const float *in, int B)
{
    const int t = L->in_t, d = L->in_d, H = L->spec.units, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    const int relu = L->spec.act == AD_ACT_RELU;
    int s, b;
    size_t r, j;

    /* Z = X K + b for all steps at once */
    for (r = 0; r < (size_t)t * B; r++)
        memcpy(w->gates + r * G, L->bias, sizeof(float) * G);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t * B, G, d,
                1.0f, in, d, L->kernel, G, 1.0f, w->gates, G);
    for (s = 0; s < t; s++) {
        float *z = w->gates + s * BG;
        float *c = w->c + s * BH, *ac = w->ac + s * BH, *h = w->h + s * BH;
        const float *cp = s > 0 ? w->c + (s - 1) * BH : NULL;
        if (s > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, G, H,
                        1.0f, w->h + (s - 1) * BH, H, L->recurrent, G,
                        1.0f, z, G);
        for (b = 0; b < B; b++) {
            float *zr = z + (size_t)b * G;
            act_sigmoid(zr, 2 * (size_t)H);
            if (relu)
                act_relu(zr + 2 * H, H);
            else
                act_tanh(zr + 2 * H, H);
            act_sigmoid(zr + 3 * H, H);
            for (j = 0; j < (size_t)H; j++) {
                float cv = zr[j] * zr[2 * H + j];
                if (cp != NULL)
                    cv += zr[H + j] * cp[(size_t)b * H + j];
                c[(size_t)b * H + j] = cv;
                ac[(size_t)b * H + j] = cv;
            }
        }
        if (relu)
            act_relu(ac, BH);
        else
            act_tanh(ac, BH);
        for (b = 0; b < B; b++) {
            const float *o = z + (size_t)b * G + 3 * H;
            for (j = 0; j < (size_t)H; j++)
                h[(size_t)b * H + j] = o[j] * ac[(size_t)b * H + j];
        }
    }
    if (L->spec.return_sequences)
        memcpy(w->out, w->h, sizeof(float) * (size_t)t * BH);
    else
        memcpy(w->out, w->h + (size_t)(t - 1) * BH, sizeof(float) * BH);
}

/* dense / td_dense: in (rows,d), W (d,U), b (U) -> out (rows,U), rows = t*B
 * (time-distributed) or B. */
static void dense_forward(const ad_layer *L, lws *w, const float *in, int B)
{
    const int rows = (int)lay_steps(L->in_t) * B, d = L->in_d, U = L->spec.units;
    int r;
    for (r = 0; r < rows; r++)
        memcpy(w->out + (size_t)r * U, L->bias, sizeof(float) * U);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, U, d,
                1.0f, in, d, L->kernel, U, 1.0f, w->out, U);
    act_apply(L->spec.act, w->out, (size_t)rows * U);
}

/* repeat_vector: in (B,d) -> out (n,B,d) */
static void repeat_forward(const ad_layer *L, lws *w, const float *in, int B)
{
    const size_t blk = (size_t)B * L->in_d;
    int s;
    for (s = 0; s < L->out_t; s++)
        memcpy(w->out + s * blk, in, sizeof(float) * blk);
}

/* flatten: in (t,B,d) time-major -> out (B, t*d) */
static void flatten_forward(const ad_layer *L, lws *w, const float *in, int B)
{
    const int t = L->in_t, d = L->in_d;
    int s, b;
    for (s = 0; s < t; s++)
        for (b = 0; b < B; b++)
            memcpy(w->out + ((size_t)b * t + s) * d,
                   in + ((size_t)s * B + b) * d, sizeof(float) * d);
}

/* ---- layers: backward ---------------------------------------------------- */

/* GCC's -O2 vectoriser uses the "very cheap" cost model, which gives up on
 * loops needing a scalar tail; the per-step cell loops below are hot, so
 * ask for the normal model on them (no fast-math: same results). */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TR_VEC __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define TR_VEC
#endif

/*
 * One row of the LSTM backward step: z (4H) activated gates i,f,g,o, ac (H)
 * act(c_s), c (H) c_s, cp (H) c_{s-1} (zeros at s = 0), dH (H) gradient
 * from the layer's output (zeros when none), dh (H) in: dh_next, dc (H)
 * in/out: dc_next -> dc * f, dz (4H) out: gradient of the pre-activations.
 */
static TR_VEC void cell_bwd_tanh(int H, const float *restrict z,
                                 const float *restrict ac,
                                 const float *restrict cp,
                                 const float *restrict dH,
                                 const float *restrict dh_in,
                                 float *restrict dc, float *restrict dz)
{
    int j;
    for (j = 0; j < H; j++) {
        float iv = z[j], fv = z[H + j], gv = z[2 * H + j], ov = z[3 * H + j];
        float a = ac[j];
        float dh = dh_in[j] + dH[j];
        float dcv = dc[j] + dh * ov * (1.0f - a * a);
        dz[j] = dcv * gv * iv * (1.0f - iv);
        dz[H + j] = dcv * cp[j] * fv * (1.0f - fv);
        dz[2 * H + j] = dcv * iv * (1.0f - gv * gv);
        dz[3 * H + j] = dh * a * ov * (1.0f - ov);
        dc[j] = dcv * fv;
    }
}

static TR_VEC void cell_bwd_relu(int H, const float *restrict z,
                                 const float *restrict ac,
                                 const float *restrict c,
                                 const float *restrict cp,
                                 const float *restrict dH,
                                 const float *restrict dh_in,
                                 float *restrict dc, float *restrict dz)
{
    int j;
    for (j = 0; j < H; j++) {
        float iv = z[j], fv = z[H + j], gv = z[2 * H + j], ov = z[3 * H + j];
        float a = ac[j];
        float dh = dh_in[j] + dH[j];
        float dcv = dc[j] + (c[j] > 0.0f ? dh * ov : 0.0f);
        dz[j] = dcv * gv * iv * (1.0f - iv);
        dz[H + j] = dcv * cp[j] * fv * (1.0f - fv);
        dz[2 * H + j] = gv > 0.0f ? dcv * iv : 0.0f;
        dz[3 * H + j] = dh * a * ov * (1.0f - ov);
        dc[j] = dcv * fv;
    }
}

/* lstm backward: dout (t,B,H) or (B,H) -> din (t,B,d) (NULL: skip), and
 * gK (d,4H), gU (H,4H), gb (4H) (overwritten). */
static void lstm_backward(const ad_layer *L, lws *w, const float *in,
                          float *din, int B, float *gK, float *gU, float *gb)
{
    const int t = L->in_t, d = L->in_d, H = L->spec.units, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    const int relu = L->spec.act == AD_ACT_RELU;
    const int rs = L->spec.return_sequences;
    int s, b;
    size_t j, r;

    memset(w->dh, 0, sizeof(float) * BH);
    memset(w->dc, 0, sizeof(float) * BH);
    for (s = t - 1; s >= 0; s--) {
        const float *z = w->gates + s * BG;
        const float *ac = w->ac + s * BH, *c = w->c + s * BH;
        const float *cp = s > 0 ? w->c + (s - 1) * BH : NULL;
        const float *dH = rs ? w->dout + s * BH
                             : (s == t - 1 ? w->dout : NULL);
        float *dz = w->dz + s * BG;
        for (b = 0; b < B; b++) {
            const size_t oh = (size_t)b * H;
            const float *dHr = dH != NULL ? dH + oh : w->zero;
            const float *cpr = cp != NULL ? cp + oh : w->zero;
            if (relu)
                cell_bwd_relu(H, z + (size_t)b * G, ac + oh, c + oh, cpr, dHr,
                              w->dh + oh, w->dc + oh, dz + (size_t)b * G);
            else
                cell_bwd_tanh(H, z + (size_t)b * G, ac + oh, cpr, dHr,
                              w->dh + oh, w->dc + oh, dz + (size_t)b * G);
        }
        if (s > 0)   /* dh_{s-1} = dz_s U^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, H, G,
                        1.0f, dz, G, L->recurrent, G, 0.0f, w->dh, H);
    }
    /* weight gradients over all steps at once */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, G, t * B,
                1.0f, in, d, w->dz, G, 0.0f, gK, G);
    if (t > 1)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, G, (t - 1) * B,
                    1.0f, w->h, H, w->dz + BG, G, 0.0f, gU, G);
    else
        memset(gU, 0, sizeof(float) * (size_t)H * G);
    memset(gb, 0, sizeof(float) * G);
    for (r = 0; r < (size_t)t * B; r++) {
        const float *dzr = w->dz + r * G;
        for (j = 0; j < (size_t)G; j++)
            gb[j] += dzr[j];
    }
    if (din != NULL)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t * B, d, G,
                    1.0f, w->dz, G, L->kernel, G, 0.0f, din, d);
}

static void dense_backward(const ad_layer *L, lws *w, const float *in,
                           float *din, int B, float *gW, float *gb)
{
    const int rows = (int)lay_steps(L->in_t) * B, d = L->in_d, U = L->spec.units;
    int r, j;

    act_backward(L->spec.act, w->out, w->dout, (size_t)rows * U);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, U, rows,
                1.0f, in, d, w->dout, U, 0.0f, gW, U);
    memset(gb, 0, sizeof(float) * U);
    for (r = 0; r < rows; r++)
        for (j = 0; j < U; j++)
            gb[j] += w->dout[(size_t)r * U + j];
    if (din != NULL)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, d, U,
                    1.0f, w->dout, U, L->kernel, U, 0.0f, din, d);
}

static void repeat_backward(const ad_layer *L, lws *w, float *din, int B)
{
    const size_t blk = (size_t)B * L->in_d;
    size_t i;
    int s;
    if (din == NULL)
        return;
    memcpy(din, w->dout, sizeof(float) * blk);
    for (s = 1; s < L->out_t; s++)
        for (i = 0; i < blk; i++)
            din[i] += w->dout[s * blk + i];
}

static void flatten_backward(const ad_layer *L, lws *w, float *din, int B)
{
    const int t = L->in_t, d = L->in_d;
    int s, b;
    if (din == NULL)
        return;
    for (s = 0; s < t; s++)
        for (b = 0; b < B; b++)
            memcpy(din + ((size_t)s * B + b) * d,
                   w->dout + ((size_t)b * t + s) * d, sizeof(float) * d);
}

/* ---- whole model --------------------------------------------------------- */

static void model_forward(ad_trainer *t, const float *x, int B)
{
    const ad_model *m = t->m;
    const int T = t->T, F = t->F;
    const float *in;
    int s, b, li;

    for (s = 0; s < T; s++)          /* (B,T,F) -> (T,B,F) */
        for (b = 0; b < B; b++)
            memcpy(t->xt + ((size_t)s * B + b) * F,
                   x + ((size_t)b * T + s) * F, sizeof(float) * F);
    in = t->xt;
    for (li = 0; li < m->n_layers; li++) {
        const ad_layer *L = &m->layers[li];
        lws *w = &t->ws[li];
        switch (L->spec.type) {
        case AD_LAYER_LSTM: lstm_forward(L, w, in, B); break;
        case AD_LAYER_TD_DENSE:
        case AD_LAYER_DENSE: dense_forward(L, w, in, B); break;
        case AD_LAYER_REPEAT_VECTOR: repeat_forward(L, w, in, B); break;
        case AD_LAYER_FLATTEN: flatten_forward(L, w, in, B); break;
        }
        in = w->out;
    }
}

/* Index of element (b, s, f) of the reconstruction in the last layer's
 * output: a time-major sequence (T,B,F) or a vector (B, T*F). */
static inline size_t out_index(int seq, int B, int T, int F, int b, int s, int f)
{
    return seq ? ((size_t)s * B + b) * F + f : ((size_t)b * T + s) * F + f;
}

/* Loss of the last forward pass against x; when dy != NULL also dL/dy. */
static double model_loss(const ad_trainer *t, const float *x, int B, float *dy)
{
    const ad_layer *L = &t->m->layers[t->m->n_layers - 1];
    const float *y = t->ws[t->m->n_layers - 1].out;
    const int T = t->T, F = t->F, seq = L->out_t > 0;
    const double scale = 1.0 / ((double)B * T * F);
    const int mae = t->o.loss == AD_LOSS_MAE;
    double sum = 0.0;
    int b, s, f;

    for (b = 0; b < B; b++)
        for (s = 0; s < T; s++) {
            const float *xr = x + ((size_t)b * T + s) * F;
            for (f = 0; f < F; f++) {
                size_t k = out_index(seq, B, T, F, b, s, f);
                float e = y[k] - xr[f];
                if (mae) {
                    sum += fabsf(e);
                    if (dy != NULL)
                        dy[k] = (float)((e > 0.0f ? 1.0 : e < 0.0f ? -1.0 : 0.0)
                                        * scale);
                } else {
                    sum += (double)e * e;
                    if (dy != NULL)
                        dy[k] = (float)(2.0 * e * scale);
                }
            }
        }
    return sum * scale;
}

static void model_backward(ad_trainer *t, int B)
{
    ad_model *m = t->m;
    int li;

    for (li = m->n_layers - 1; li >= 0; li--) {
        const ad_layer *L = &m->layers[li];
        lws *w = &t->ws[li];
        const float *in = li > 0 ? t->ws[li - 1].out : t->xt;
        float *din = li > 0 ? t->ws[li - 1].dout : NULL;
        float *gK = L->kernel ? t->grad + (L->kernel - m->params) : NULL;
        float *gU = L->recurrent ? t->grad + (L->recurrent - m->params) : NULL;
        float *gb = L->bias ? t->grad + (L->bias - m->params) : NULL;
        switch (L->spec.type) {
        case AD_LAYER_LSTM: lstm_backward(L, w, in, din, B, gK, gU, gb); break;
        case AD_LAYER_TD_DENSE:
        case AD_LAYER_DENSE: dense_backward(L, w, in, din, B, gK, gb); break;
        case AD_LAYER_REPEAT_VECTOR: repeat_backward(L, w, din, B); break;
        case AD_LAYER_FLATTEN: flatten_backward(L, w, din, B); break;
        }
    }
}

int ad_trainer_forward(ad_trainer *t, const float *x, int B, float *y,
                       double *loss)
{
    double l;

    if (t == NULL || x == NULL || B < 1 || B > t->maxB)
        return AD_EINVAL;
    model_forward(t, x, B);
    l = model_loss(t, x, B, NULL);
    if (loss != NULL)
        *loss = l;
    if (y != NULL) {
        const ad_layer *L = &t->m->layers[t->m->n_layers - 1];
        const float *o = t->ws[t->m->n_layers - 1].out;
        const int T = t->T, F = t->F, seq = L->out_t > 0;
        int b, s, f;
        for (b = 0; b < B; b++)
            for (s = 0; s < T; s++)
                for (f = 0; f < F; f++)
                    y[((size_t)b * T + s) * F + f] =
                        o[out_index(seq, B, T, F, b, s, f)];
    }
    return isfinite(l) ? 0 : AD_ENONFINITE;
}

int ad_trainer_loss_grad(ad_trainer *t, const float *x, int B, double *loss)
{
    double l;

    if (t == NULL || x == NULL || B < 1 || B > t->maxB)
        return AD_EINVAL;
    model_forward(t, x, B);
    l = model_loss(t, x, B, t->ws[t->m->n_layers - 1].dout);
    if (loss != NULL)
        *loss = l;
    if (!isfinite(l))
        return AD_ENONFINITE;
    model_backward(t, B);
    return 0;
}

/*
 * The Adam(W) update of n parameters (PyTorch's formula, see train.h).
 * sqrt and division are correctly rounded in IEEE arithmetic, so the SSE
 * path (4 lanes; GCC will not vectorise sqrtf under -fmath-errno) gives the
 * same bits as the scalar tail.
 */
static void adam_update(size_t n, float *restrict p, const float *restrict g,
                        float *restrict am, float *restrict av, float clip,
                        float b1, float b2, float eps, float step_size,
                        float sq_bc2, float decay)
{
    size_t i = 0;
    if (decay != 1.0f)
        for (i = 0; i < n; i++)
            p[i] *= decay;
    i = 0;
#if defined(__SSE2__)
    {
        const __m128 vclip = _mm_set1_ps(clip), vb1 = _mm_set1_ps(b1);
        const __m128 vb2 = _mm_set1_ps(b2), v1b1 = _mm_set1_ps(1.0f - b1);
        const __m128 v1b2 = _mm_set1_ps(1.0f - b2), veps = _mm_set1_ps(eps);
        const __m128 vss = _mm_set1_ps(step_size), vsq = _mm_set1_ps(sq_bc2);
        for (; i + 4 <= n; i += 4) {
            __m128 gi = _mm_mul_ps(_mm_loadu_ps(g + i), vclip);
            __m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(am + i)),
                                   _mm_mul_ps(v1b1, gi));
            __m128 vi = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(av + i)),
                                   _mm_mul_ps(_mm_mul_ps(v1b2, gi), gi));
            __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vsq), veps);
            __m128 up = _mm_mul_ps(vss, _mm_div_ps(mi, den));
            _mm_storeu_ps(am + i, mi);
            _mm_storeu_ps(av + i, vi);
            _mm_storeu_ps(p + i, _mm_sub_ps(_mm_loadu_ps(p + i), up));
        }
    }
#endif
    for (; i < n; i++) {
        float gi = g[i] * clip;
        float mi = b1 * am[i] + (1.0f - b1) * gi;
        float vi = b2 * av[i] + ((1.0f - b2) * gi) * gi;
        am[i] = mi;
        av[i] = vi;
        p[i] -= step_size * (mi / (sqrtf(vi) / sq_bc2 + eps));
    }
}

int ad_trainer_step(ad_trainer *t, const float *x, int B, double *loss)
{
    const ad_train_opts *o;
    float *p, *g, *am, *av;
    double gn, bc1, bc2, step_size, sq_bc2;
    float clip = 1.0f, b1, b2, eps, decay;
    size_t n;
    int rc;

    rc = ad_trainer_loss_grad(t, x, B, loss);
    if (rc != 0)
        return rc;
    o = &t->o;
    n = t->m->n_params;
    p = t->m->params; g = t->grad; am = t->am; av = t->av;
    gn = ad_trainer_grad_norm(t);
    if (!isfinite(gn))
        return AD_ENONFINITE;
    if (o->clip_norm > 0.0f && gn > o->clip_norm)
        clip = (float)(o->clip_norm / (gn + 1e-6));
    t->step++;
    b1 = o->beta1; b2 = o->beta2; eps = o->eps;
    bc1 = 1.0 - pow(o->beta1, (double)t->step);
    bc2 = 1.0 - pow(o->beta2, (double)t->step);
    step_size = o->lr / bc1;
    sq_bc2 = sqrt(bc2);
    decay = o->weight_decay > 0.0f ? 1.0f - o->lr * o->weight_decay : 1.0f;
    adam_update(n, p, g, am, av, clip, b1, b2, eps, (float)step_size,
                (float)sq_bc2, decay);
    return 0;
}

int ad_trainer_eval(ad_trainer *t, const float *x, size_t n, double *loss)
{
    const size_t wsz = (size_t)t->T * t->F;
    double sum = 0.0;
    size_t i;
    int rc;

    if (t == NULL || x == NULL || n == 0)
        return AD_EINVAL;
    for (i = 0; i < n; i += (size_t)t->maxB) {
        int B = (int)(n - i < (size_t)t->maxB ? n - i : (size_t)t->maxB);
        double l;
        rc = ad_trainer_forward(t, x + i * wsz, B, NULL, &l);
        if (rc != 0)
            return rc;
        sum += l * B;
    }
    if (loss != NULL)
        *loss = sum / (double)n;
    return 0;
}

