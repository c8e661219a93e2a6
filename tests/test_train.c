/*
 * test_train.c - the trainer (lib/train.c):
 *   - Keras-style initialisation (orthogonal recurrent kernels, Glorot
 *     bounds, forget bias 1, determinism per seed);
 *   - gradients by central finite differences for every layer kind, LSTM
 *     cell activation and loss;
 *   - golden files from PyTorch autograd (tools/gen_train_golden.py): loss,
 *     every gradient tensor, and weights after 3 Adam/AdamW steps;
 *   - fit: the loss falls, early stopping, same seed -> same weights,
 *     cancellation;
 *   - reconstruction-error statistics against values known in closed form;
 *   - window cutting and the metadata JSON;
 *   - `anomalyd train` end to end (ad_cmd_train): the model file it writes
 *     (features, scaler, window, training metadata) and its refusals of bad
 *     input with the row and column named.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include <unistd.h>

#include "ad.h"
#include "cmd.h"
#include "csv.h"
#include "model.h"
#include "safetensors.h"
#include "train.h"
#include "t.h"

static ad_model *mk(int T, int F, const ad_layer_spec *s, int n)
{
    ad_model *m = NULL;
    char err[256] = "";
    int rc = ad_model_create(&m, T, F, s, n, err, sizeof(err));
    T_CHECK(rc == 0 && m != NULL, "ad_model_create: %d %s", rc, err);
    return m;
}

static void fill_normal(float *x, size_t n, unsigned seed, float sd)
{
    size_t i;
    srand(seed);
    for (i = 0; i < n; i++) {
        double u1 = (rand() + 1.0) / ((double)RAND_MAX + 2.0);
        double u2 = (rand() + 1.0) / ((double)RAND_MAX + 2.0);
        x[i] = (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

/* ---- initialisation ------------------------------------------------------ */

static void test_init(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_LSTM, 16, AD_ACT_TANH, 0 },
        { AD_LAYER_REPEAT_VECTOR, 12, 0, 0 },
        { AD_LAYER_LSTM, 16, AD_ACT_TANH, 1 },
        { AD_LAYER_TD_DENSE, 5, AD_ACT_LINEAR, 0 },
    };
    ad_model *m = mk(12, 5, s, 4), *m2;
    const ad_layer *L;
    double maxdev = 0.0, lim, kmax = 0.0;
    int i, j, k, H = 16, G = 64, bad_bias = 0;

    if (m == NULL)
        return;
    ad_train_init_weights(m, 42);
    L = &m->layers[0];
    /* rows of U (H, 4H) orthonormal: U U^T = I */
    for (i = 0; i < H; i++)
        for (j = 0; j < H; j++) {
            double d = 0.0;
            for (k = 0; k < G; k++)
                d += (double)L->recurrent[i * G + k] * L->recurrent[j * G + k];
            d -= (i == j);
            if (fabs(d) > maxdev)
                maxdev = fabs(d);
        }
    T_CHECK(maxdev < 1e-5, "U U^T - I max %g", maxdev);
    lim = sqrt(6.0 / (5 + 64));
    for (i = 0; i < 5 * G; i++)
        if (fabs(L->kernel[i]) > kmax)
            kmax = fabs(L->kernel[i]);
    T_CHECK(kmax <= lim && kmax > 0.9 * lim, "glorot: max |k| %g, limit %g", kmax, lim);
    for (j = 0; j < G; j++)
        bad_bias += L->bias[j] != ((j >= H && j < 2 * H) ? 1.0f : 0.0f);
    T_CHECK(bad_bias == 0, "%d lstm biases not (0 | forget 1)", bad_bias);
    lim = sqrt(6.0 / (16 + 5));
    kmax = 0.0;
    for (i = 0; i < 16 * 5; i++)
        if (fabs(m->layers[3].kernel[i]) > kmax)
            kmax = fabs(m->layers[3].kernel[i]);
    T_CHECK(kmax <= lim && kmax > 0.7 * lim, "dense glorot max %g limit %g", kmax, lim);
    m2 = ad_model_clone(m);
    if (m2 != NULL) {
        ad_train_init_weights(m2, 42);
        T_CHECK(memcmp(m->params, m2->params, m->n_params * 4) == 0,
                "same seed gave different weights");
        ad_train_init_weights(m2, 43);
        T_CHECK(memcmp(m->params, m2->params, m->n_params * 4) != 0,
                "different seeds gave the same weights");
        ad_model_free(m2);
    }
    T_NOTE("orthogonality |U U^T - I| max %.2g", maxdev);
    ad_model_free(m);
}

/* ---- finite differences -------------------------------------------------- */

/*
 * Central differences of the loss w.r.t. every parameter of a small random
 * model, against the analytic gradient. Float forward passes, so eps = 2e-3
 * and the tolerance is relative to the largest gradient component:
 *   |fd - g| <= 2e-3 * max|g| + 1e-2 * |g|   for every parameter.
 * ReLU and |.| have kinks: when the one-sided differences (l+ - l0)/eps and
 * (l0 - l-)/eps disagree by more than that tolerance, a kink lies within
 * eps of the point and the central difference means nothing there; such
 * parameters are skipped and counted, and at most 5% may be skipped.
 */
static void fd_check(const char *name, int T, int F, int B,
                     const ad_layer_spec *s, int n, ad_loss loss, unsigned seed)
{
    ad_model *m = mk(T, F, s, n);
    ad_train_opts o;
    ad_trainer *t;
    float *x, *g;
    double l0, gmax = 0.0, worst = 0.0;
    size_t i, nbad = 0, nkink = 0;
    const float eps = 2e-3f;

    if (m == NULL)
        return;
    ad_train_init_weights(m, seed);
    /* perturb so biases and the forget gate are not at special values */
    {
        float *noise = malloc(sizeof(float) * m->n_params);
        fill_normal(noise, m->n_params, seed + 7, 0.1f);
        for (i = 0; i < m->n_params; i++)
            m->params[i] += noise[i];
        free(noise);
    }
    ad_train_opts_default(&o);
    o.loss = loss;
    o.batch_size = B;
    t = ad_trainer_new(m, &o);
    x = malloc(sizeof(float) * (size_t)B * T * F);
    g = malloc(sizeof(float) * m->n_params);
    T_CHECK(t != NULL && x != NULL && g != NULL, "alloc");
    fill_normal(x, (size_t)B * T * F, seed, 1.0f);
    T_CHECK(ad_trainer_loss_grad(t, x, B, &l0) == 0, "loss_grad");
    memcpy(g, ad_trainer_grad(t), sizeof(float) * m->n_params);
    for (i = 0; i < m->n_params; i++)
        if (fabs(g[i]) > gmax)
            gmax = fabs(g[i]);
    for (i = 0; i < m->n_params; i++) {
        float keep = m->params[i];
        double lp, lm, fd, e;
        m->params[i] = keep + eps;
        ad_trainer_forward(t, x, B, NULL, &lp);
        m->params[i] = keep - eps;
        ad_trainer_forward(t, x, B, NULL, &lm);
        m->params[i] = keep;
        fd = (lp - lm) / (2.0 * eps);
        e = fabs(fd - g[i]);
        if (fabs((lp - l0) - (l0 - lm)) / eps > 2e-3 * gmax + 1e-2 * fabs(g[i])) {
            nkink++;
            continue;
        }
        if (e > worst)
            worst = e;
        if (e > 2e-3 * gmax + 1e-2 * fabs(g[i])) {
            if (nbad < 5)
                fprintf(stderr, "  %s: param %zu: analytic %.6g fd %.6g\n",
                        name, i, g[i], fd);
            nbad++;
        }
    }
    T_CHECK(gmax > 0.0, "%s: gradient is all zero", name);
    T_CHECK(nbad == 0, "%s: %zu of %zu parameters off (max err %.3g, max |g| %.3g)",
            name, nbad, m->n_params, worst, gmax);
    T_CHECK(nkink * 100 <= 5 * m->n_params, "%s: %zu parameters at kinks",
            name, nkink);
    T_NOTE("%-26s %s %4zu params: max |fd - g| / max|g| = %.2g (%zu at kinks)",
           name, ad_loss_name(loss), m->n_params, worst / (gmax > 0 ? gmax : 1),
           nkink);
    ad_trainer_free(t);
    free(x);
    free(g);
    ad_model_free(m);
}

static void test_fd_seq2seq(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_LSTM, 5, AD_ACT_TANH, 0 },
        { AD_LAYER_REPEAT_VECTOR, 6, 0, 0 },
        { AD_LAYER_LSTM, 4, AD_ACT_TANH, 1 },
        { AD_LAYER_TD_DENSE, 3, AD_ACT_LINEAR, 0 },
    };
    fd_check("lstm>repeat>lstm(seq)>td", 6, 3, 4, s, 4, AD_LOSS_MSE, 1);
    fd_check("lstm>repeat>lstm(seq)>td", 6, 3, 4, s, 4, AD_LOSS_MAE, 2);
}

static void test_fd_stack(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_LSTM, 5, AD_ACT_TANH, 1 },
        { AD_LAYER_LSTM, 3, AD_ACT_TANH, 1 },
        { AD_LAYER_TD_DENSE, 4, AD_ACT_TANH, 0 },
        { AD_LAYER_TD_DENSE, 2, AD_ACT_SIGMOID, 0 },
    };
    fd_check("lstm(seq)x2>td(tanh,sig)", 5, 2, 3, s, 4, AD_LOSS_MSE, 3);
}

static void test_fd_relu_lstm(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_LSTM, 4, AD_ACT_RELU, 0 },
        { AD_LAYER_REPEAT_VECTOR, 5, 0, 0 },
        { AD_LAYER_LSTM, 4, AD_ACT_RELU, 1 },
        { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 },
    };
    fd_check("lstm(relu)>...", 5, 2, 3, s, 4, AD_LOSS_MSE, 4);
}

static void test_fd_dense(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_FLATTEN, 0, 0, 0 },
        { AD_LAYER_DENSE, 6, AD_ACT_TANH, 0 },
        { AD_LAYER_DENSE, 5, AD_ACT_RELU, 0 },
        { AD_LAYER_DENSE, 4, AD_ACT_SIGMOID, 0 },
        { AD_LAYER_DENSE, 12, AD_ACT_LINEAR, 0 },
    };
    fd_check("flatten>dense x4", 4, 3, 5, s, 5, AD_LOSS_MSE, 5);
    fd_check("flatten>dense x4", 4, 3, 5, s, 5, AD_LOSS_MAE, 6);
}

static void test_fd_lstm_flatten(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_LSTM, 3, AD_ACT_TANH, 1 },
        { AD_LAYER_FLATTEN, 0, 0, 0 },
        { AD_LAYER_DENSE, 4, AD_ACT_TANH, 0 },
        { AD_LAYER_REPEAT_VECTOR, 4, 0, 0 },
        { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 },
    };
    fd_check("lstm>flatten>dense>rep>td", 4, 2, 3, s, 5, AD_LOSS_MAE, 7);
}

/* ---- golden vs PyTorch --------------------------------------------------- */

static double meta_num(const ad_st *st, const char *k)
{
    const char *v = ad_st_meta(st, k);
    return v ? atof(v) : NAN;
}

static void golden(const char *name)
{
    char path[512], err[256] = "";
    const char *src = getenv("AD_SRCDIR");
    void *buf = NULL;
    size_t len = 0;
    ad_st *st = NULL;
    ad_layer_spec specs[AD_MAX_LAYERS];
    int nl = 0, T, F, B, li, step, rc;
    ad_model *m = NULL;
    ad_trainer *t = NULL;
    ad_train_opts o;
    const ad_st_tensor *tx, *tl, *tsl;
    double loss, worst_g = 0.0, worst_w = 0.0;

    snprintf(path, sizeof(path), "%s/tests/golden/train_%s.safetensors",
             src ? src : ".", name);
    rc = ad_read_file(path, 1 << 24, &buf, &len, err, sizeof(err));
    T_CHECK(rc == 0, "%s", err);
    if (rc != 0)
        return;
    rc = ad_st_parse(&st, buf, len, path, err, sizeof(err));
    T_CHECK(rc == 0, "%s", err);
    if (rc != 0)
        goto out;
    rc = ad_arch_parse(ad_st_meta(st, "architecture"), specs, AD_MAX_LAYERS,
                       &nl, err, sizeof(err));
    T_CHECK(rc == 0, "arch: %s", err);
    T = atoi(ad_st_meta(st, "window"));
    F = atoi(ad_st_meta(st, "n_features"));
    tx = ad_st_find(st, "x");
    tl = ad_st_find(st, "loss");
    tsl = ad_st_find(st, "step_losses");
    T_CHECK(tx && tl && tsl, "golden tensors missing");
    if (rc != 0 || !tx || !tl || !tsl)
        goto out;
    B = (int)tx->shape[0];
    m = mk(T, F, specs, nl);
    if (m == NULL)
        goto out;
    ad_train_opts_default(&o);
    o.loss = ad_loss_from_name(ad_st_meta(st, "loss"));
    o.batch_size = B;
    o.lr = (float)meta_num(st, "lr");
    o.beta1 = (float)meta_num(st, "beta1");
    o.beta2 = (float)meta_num(st, "beta2");
    o.eps = (float)meta_num(st, "eps");
    o.weight_decay = (float)meta_num(st, "weight_decay");
    o.clip_norm = (float)meta_num(st, "clip_norm");

    /* initial weights */
    for (li = 0; li < nl; li++) {
        const char *nm[3] = { "kernel", "recurrent_kernel", "bias" };
        float *dst[3];
        size_t cnt[3];
        int k;
        const ad_layer *L = &m->layers[li];
        dst[0] = L->kernel; dst[1] = L->recurrent; dst[2] = L->bias;
        cnt[0] = L->recurrent ? (size_t)L->in_d * 4 * L->spec.units
                              : (size_t)L->in_d * L->spec.units;
        cnt[1] = L->recurrent ? (size_t)L->spec.units * 4 * L->spec.units : 0;
        cnt[2] = L->recurrent ? 4 * (size_t)L->spec.units : (size_t)L->spec.units;
        for (k = 0; k < 3; k++) {
            char tn[64];
            const ad_st_tensor *ti;
            if (dst[k] == NULL)
                continue;
            snprintf(tn, sizeof(tn), "init.layers.%d.%s", li, nm[k]);
            ti = ad_st_find(st, tn);
            T_CHECK(ti && ti->count == cnt[k], "%s missing or wrong size", tn);
            if (ti && ti->count == cnt[k])
                memcpy(dst[k], ti->data, sizeof(float) * cnt[k]);
        }
    }
    t = ad_trainer_new(m, &o);
    T_CHECK(t != NULL, "trainer");
    if (t == NULL)
        goto out;
    rc = ad_trainer_loss_grad(t, tx->data, B, &loss);
    T_CHECK(rc == 0, "loss_grad %d", rc);
    T_CHECK(fabs(loss - tl->data[0]) <= 1e-5 * fabs(tl->data[0]),
            "%s: loss %.9g, torch %.9g", name, loss, tl->data[0]);
    /* gradients: per tensor, max abs err <= 1e-4 * max |torch grad| */
    for (li = 0; li < nl; li++) {
        const ad_layer *L = &m->layers[li];
        const char *nm[3] = { "kernel", "recurrent_kernel", "bias" };
        const float *p[3];
        int k;
        p[0] = L->kernel; p[1] = L->recurrent; p[2] = L->bias;
        for (k = 0; k < 3; k++) {
            char tn[64];
            const ad_st_tensor *tg;
            const float *g;
            double gmax = 0.0, e = 0.0;
            size_t i;
            if (p[k] == NULL)
                continue;
            snprintf(tn, sizeof(tn), "grad.layers.%d.%s", li, nm[k]);
            tg = ad_st_find(st, tn);
            T_CHECK(tg != NULL, "%s missing", tn);
            if (tg == NULL)
                continue;
            g = ad_trainer_grad(t) + (p[k] - m->params);
            for (i = 0; i < tg->count; i++) {
                if (fabs(tg->data[i]) > gmax)
                    gmax = fabs(tg->data[i]);
                if (fabs(g[i] - tg->data[i]) > e)
                    e = fabs(g[i] - tg->data[i]);
            }
            T_CHECK(e <= 1e-4 * gmax, "%s %s: max err %.3g, max |g| %.3g",
                    name, tn, e, gmax);
            if (gmax > 0 && e / gmax > worst_g)
                worst_g = e / gmax;
        }
    }
    /* 3 optimiser steps from the same start */
    ad_trainer_reset(t);
    for (step = 0; step < 3; step++) {
        rc = ad_trainer_step(t, tx->data, B, &loss);
        T_CHECK(rc == 0 && fabs(loss - tsl->data[step]) <= 1e-5 * fabs(tsl->data[step]),
                "%s step %d: loss %.9g torch %.9g", name, step + 1, loss,
                tsl->data[step]);
    }
    for (li = 0; li < nl; li++) {
        const ad_layer *L = &m->layers[li];
        const char *nm[3] = { "kernel", "recurrent_kernel", "bias" };
        const float *p[3];
        int k;
        p[0] = L->kernel; p[1] = L->recurrent; p[2] = L->bias;
        for (k = 0; k < 3; k++) {
            char tn[64];
            const ad_st_tensor *tw;
            double e = 0.0;
            size_t i;
            if (p[k] == NULL)
                continue;
            snprintf(tn, sizeof(tn), "step3.layers.%d.%s", li, nm[k]);
            tw = ad_st_find(st, tn);
            T_CHECK(tw != NULL, "%s missing", tn);
            if (tw == NULL)
                continue;
            for (i = 0; i < tw->count; i++)
                if (fabs(p[k][i] - tw->data[i]) > e)
                    e = fabs(p[k][i] - tw->data[i]);
            T_CHECK(e <= 1e-5, "%s %s: max |w - torch| %.3g", name, tn, e);
            if (e > worst_w)
                worst_w = e;
        }
    }
    T_NOTE("golden %-8s (%s, wd %g, clip %g): loss %.7g vs torch %.7g; "
           "grads max err/max|g| %.2g (tol 1e-4); weights after 3 steps max err "
           "%.2g (tol 1e-5)", name, ad_st_meta(st, "loss"), (double)o.weight_decay,
           (double)o.clip_norm, tl->data[0], tl->data[0], worst_g, worst_w);
out:
    ad_trainer_free(t);
    ad_model_free(m);
    ad_st_free(st);
    free(buf);
}

static void test_golden_seq2seq(void) { golden("seq2seq"); }
static void test_golden_stack(void) { golden("stack"); }
static void test_golden_dense(void) { golden("dense"); }

/* ---- fit ----------------------------------------------------------------- */

/* Windows of 2 noisy sines with random phases: (n, T, 2). */
static float *sine_windows(size_t n, int T, unsigned seed)
{
    float *x = malloc(sizeof(float) * n * (size_t)T * 2);
    size_t k;
    int s;
    srand(seed);
    for (k = 0; k < n; k++) {
        double ph = 6.283 * rand() / (double)RAND_MAX;
        for (s = 0; s < T; s++) {
            double noise = (rand() / (double)RAND_MAX - 0.5) * 0.05;
            x[(k * T + s) * 2] = (float)(sin(ph + 0.4 * s) + noise);
            x[(k * T + s) * 2 + 1] = (float)(0.5 * cos(ph + 0.4 * s) - noise);
        }
    }
    return x;
}

static int count_epochs(const ad_train_epoch *ep, void *ud)
{
    int *n = ud;
    (*n)++;
    (void)ep;
    return 0;
}

static const ad_layer_spec fit_arch[] = {
    { AD_LAYER_LSTM, 12, AD_ACT_TANH, 0 },
    { AD_LAYER_REPEAT_VECTOR, 10, 0, 0 },
    { AD_LAYER_LSTM, 12, AD_ACT_TANH, 1 },
    { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 },
};

static void test_fit(void)
{
    const int T = 10;
    const size_t n = 300;
    float *x = sine_windows(n, T, 11);
    ad_model *m = mk(T, 2, fit_arch, 4), *m2 = NULL;
    ad_train_opts o;
    ad_train_report r, r2;
    ad_trainer *t;
    double l_before = 0.0, l_after = 0.0;
    char err[256] = "";
    int rc, calls = 0;

    if (m == NULL)
        return;
    ad_train_init_weights(m, 5);
    m2 = ad_model_clone(m);
    ad_train_opts_default(&o);
    o.epochs = 15;
    o.lr = 1e-2f;
    o.batch_size = 16;
    o.patience = 0;
    t = ad_trainer_new(m, &o);
    ad_trainer_eval(t, x, n, &l_before);
    ad_trainer_free(t);
    rc = ad_train_fit(m, x, n, &o, &r, count_epochs, &calls, NULL, err, sizeof(err));
    T_CHECK(rc == 0, "fit: %d %s", rc, err);
    t = ad_trainer_new(m, &o);
    ad_trainer_eval(t, x, n, &l_after);
    ad_trainer_free(t);
    T_CHECK(l_after < 0.25 * l_before, "loss %.4g -> %.4g: not learning", l_before, l_after);
    T_CHECK(r.n_val == 30 && r.n_train == 270, "split %zu/%zu", r.n_train, r.n_val);
    T_CHECK(calls == r.epochs_run && r.epochs_run == 15, "progress called %d, epochs %d",
            calls, r.epochs_run);
    T_CHECK(isfinite(r.val_loss) && r.best_epoch >= 1, "val %g best %d", r.val_loss, r.best_epoch);
    T_NOTE("fit: loss %.4g -> %.4g in %d epochs (val %.4g, best epoch %d, %.0f windows/s)",
           l_before, l_after, r.epochs_run, r.val_loss, r.best_epoch, r.windows_per_s);
    /* same seed, same data -> same weights, bit for bit */
    if (m2 != NULL) {
        rc = ad_train_fit(m2, x, n, &o, &r2, NULL, NULL, NULL, err, sizeof(err));
        T_CHECK(rc == 0 && memcmp(m->params, m2->params, m->n_params * 4) == 0,
                "two fits with the same seed differ");
    }
    ad_model_free(m);
    ad_model_free(m2);
    free(x);
}

static int stop_at_3(const ad_train_epoch *ep, void *ud)
{
    (void)ud;
    return ep->epoch >= 3;
}

static void test_fit_stopping(void)
{
    const int T = 10;
    const size_t n = 120;
    float *x = sine_windows(n, T, 12);
    ad_model *m = mk(T, 2, fit_arch, 4);
    float *w0;
    ad_train_opts o;
    ad_train_report r;
    char err[256] = "";
    volatile int cancel = 1;
    int rc;

    if (m == NULL)
        return;
    ad_train_init_weights(m, 9);
    w0 = malloc(sizeof(float) * m->n_params);
    memcpy(w0, m->params, sizeof(float) * m->n_params);
    ad_train_opts_default(&o);
    o.epochs = 500;
    o.lr = 0.05f;          /* noisy: the val loss stops improving soon */
    o.patience = 2;
    o.val_frac = 0.3f;
    rc = ad_train_fit(m, x, n, &o, &r, NULL, NULL, NULL, err, sizeof(err));
    T_CHECK(rc == 0 && r.stopped_early && r.epochs_run < 500 &&
            r.epochs_run == r.best_epoch + 2,
            "early stopping: rc %d stopped %d epochs %d best %d", rc,
            r.stopped_early, r.epochs_run, r.best_epoch);
    T_NOTE("early stop after %d epochs, best %d (patience 2)", r.epochs_run, r.best_epoch);
    /* progress callback stops */
    o.patience = 0;
    rc = ad_train_fit(m, x, n, &o, &r, stop_at_3, NULL, NULL, err, sizeof(err));
    T_CHECK(rc == 0 && r.cancelled && r.epochs_run == 3, "callback stop: %d %d",
            r.cancelled, r.epochs_run);
    /* cancel flag set before the start: weights untouched */
    memcpy(m->params, w0, sizeof(float) * m->n_params);
    rc = ad_train_fit(m, x, n, &o, &r, NULL, NULL, &cancel, err, sizeof(err));
    T_CHECK(rc == 0 && r.cancelled && r.epochs_run == 0 &&
            memcmp(m->params, w0, sizeof(float) * m->n_params) == 0,
            "cancel: rc %d cancelled %d epochs %d", rc, r.cancelled, r.epochs_run);
    /* bad input */
    rc = ad_train_fit(m, x, 0, &o, &r, NULL, NULL, NULL, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strstr(err, "window") != NULL, "n=0: %d '%s'", rc, err);
    o.lr = -1.0f;
    rc = ad_train_fit(m, x, n, &o, &r, NULL, NULL, NULL, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL, "lr<0 accepted");
    free(w0);
    free(x);
    ad_model_free(m);
}

/* ---- error statistics ---------------------------------------------------- */

/* A dense model with all-zero weights reconstructs every window as zeros, so
 * the MSE of window k filled with sqrt(k) is k, and its MAE is sqrt(k). */
static void test_error_stats(void)
{
    ad_layer_spec s[] = {
        { AD_LAYER_FLATTEN, 0, 0, 0 },
        { AD_LAYER_DENSE, 6, AD_ACT_LINEAR, 0 },
    };
    const size_t n = 1001;
    ad_model *m = mk(3, 2, s, 2);
    float *x = malloc(sizeof(float) * n * 6), *e = malloc(sizeof(float) * n);
    ad_error_stats st;
    size_t k, i;
    int rc;

    if (m == NULL)
        return;
    for (k = 0; k < n; k++)
        for (i = 0; i < 6; i++)
            x[k * 6 + i] = (float)sqrt((double)k) * ((i & 1) ? -1.0f : 1.0f);
    rc = ad_train_error_stats(m, x, n, AD_METRIC_MSE, &st, e);
    T_CHECK(rc == 0, "rc %d", rc);
    T_CHECK(fabs(st.mean - 500.0) < 1e-3 && fabs(st.q90 - 900.0) < 1e-2 &&
            fabs(st.q95 - 950.0) < 1e-2 && fabs(st.q99 - 990.0) < 1e-2 &&
            fabs(st.q999 - 999.0) < 1e-2 && fabs(st.max - 1000.0) < 1e-2,
            "mse mean %g q90 %g q95 %g q99 %g q999 %g max %g", st.mean, st.q90,
            st.q95, st.q99, st.q999, st.max);
    /* population std of 0..1000 = sqrt((1001^2 - 1) / 12) */
    T_CHECK(fabs(st.std - sqrt((1001.0 * 1001.0 - 1.0) / 12.0)) < 1e-2, "std %g", st.std);
    T_CHECK(fabs(e[37] - 37.0f) < 1e-3, "errors[37] = %g", e[37]);
    rc = ad_train_error_stats(m, x, n, AD_METRIC_MAE, &st, NULL);
    T_CHECK(rc == 0 && fabs(st.max - sqrt(1000.0)) < 1e-4 &&
            fabs(st.q90 - sqrt(900.0)) < 1e-4, "mae max %g q90 %g", st.max, st.q90);
    free(x);
    free(e);
    ad_model_free(m);
}

/* ---- windows and metadata ------------------------------------------------ */

static void test_cut_windows(void)
{
    float d[20], w[5 * 8];
    size_t n, i;
    for (i = 0; i < 20; i++)
        d[i] = (float)i;
    n = ad_train_cut_windows(d, 10, 2, 4, 2, NULL);       /* 10 rows of F=2 */
    T_CHECK(n == 4, "n %zu", n);
    n = ad_train_cut_windows(d, 10, 2, 4, 2, w);
    T_CHECK(w[0] == 0.0f && w[8] == 4.0f && w[3 * 8 + 7] == 19.0f,
            "%g %g %g", w[0], w[8], w[3 * 8 + 7]);
    T_CHECK(ad_train_cut_windows(d, 3, 2, 4, 1, NULL) == 0, "rows < T");
}

static void test_meta_json(void)
{
    ad_train_opts o;
    ad_train_report r;
    ad_error_stats st;
    char *js;
    cJSON *j, *e;

    ad_train_opts_default(&o);
    memset(&r, 0, sizeof(r));
    memset(&st, 0, sizeof(st));
    r.epochs_run = 7;
    r.train_loss = 0.25;
    r.val_loss = NAN;
    st.metric = AD_METRIC_MAE;
    st.q99 = 1.5;
    js = ad_train_meta_json(&o, &r, &st);
    j = cJSON_Parse(js);
    T_CHECK(j != NULL, "not JSON: %s", js ? js : "(null)");
    if (j != NULL) {
        e = cJSON_GetObjectItem(j, "error");
        T_CHECK(e && cJSON_GetObjectItem(e, "q99") &&
                cJSON_GetObjectItem(e, "q99")->valuedouble == 1.5 &&
                strcmp(cJSON_GetObjectItem(e, "metric")->valuestring, "mae") == 0,
                "error object: %s", js);
        T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "val_loss")), "NaN not null");
        T_CHECK(cJSON_GetObjectItem(j, "epochs_run")->valueint == 7, "epochs_run");
        cJSON_Delete(j);
    }
    free(js);
}


/* ---- anomalyd train ------------------------------------------------------ */

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* Run ad_cmd_train with NULL-terminated args; stderr captured into msg. */
static int run_train(char *msg, size_t msglen, ...)
{
    char *argv[64];
    int argc = 0, rc, saved;
    const char *a;
    va_list ap;
    FILE *cap;
    size_t n;

    argv[argc++] = "train";
    va_start(ap, msglen);
    while ((a = va_arg(ap, const char *)) != NULL && argc < 63)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stderr);
    saved = dup(2);
    cap = fopen(tpath("stderr.txt"), "w+");
    if (cap == NULL || saved < 0)
        return -100;
    dup2(fileno(cap), 2);
    rc = ad_cmd_train(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(cap);
    n = fread(msg, 1, msglen - 1, cap);
    msg[n] = '\0';
    fclose(cap);
    return rc;
}

static void test_cmd_train(void)
{
    FILE *f = fopen(tpath("sine.csv"), "w");
    char msg[4096], err[256];
    ad_model *m = NULL;
    cJSON *tr = NULL, *e;
    int i, rc;

    T_CHECK(f != NULL, "cannot write %s", tpath("sine.csv"));
    if (f == NULL)
        return;
    /* ';' separated, datetime, two features and a label column */
    fprintf(f, "datetime;temp;press;anomaly\n");
    for (i = 0; i < 240; i++)
        fprintf(f, "2024-01-01 %02d:%02d:00;%.4f;%.4f;0\n", i / 60, i % 60,
                20.0 + 2.0 * sin(0.3 * i), 5.0 + 0.5 * cos(0.3 * i));
    fclose(f);
    rc = run_train(msg, sizeof(msg), "--input", tpath("sine.csv"), "--output",
                   tpath("m.safetensors"), "--window", "12", "--arch", "lstm-ae:8",
                   "--epochs", "4", "--rows", "200", "--quiet", (char *)NULL);
    T_CHECK(rc == 0, "train rc %d: %s", rc, msg);
    T_CHECK(msg[0] == '\0', "--quiet printed: %s", msg);
    rc = ad_model_load(&m, tpath("m.safetensors"), err, sizeof(err));
    T_CHECK(rc == 0, "load: %s", err);
    if (rc != 0)
        return;
    T_CHECK(m->window == 12 && m->n_features == 2 &&
            strcmp(m->features[0], "temp") == 0 && strcmp(m->features[1], "press") == 0,
            "window %d features %d", m->window, m->n_features);
    /* standard scaler fitted on the first 200 rows: mean near 20 and 5 */
    T_CHECK(m->scaler == AD_SCALER_STANDARD && fabs(m->scale_a[0] - 20.0) < 0.1 &&
            fabs(m->scale_b[0] - 1.41) < 0.1 && fabs(m->scale_a[1] - 5.0) < 0.05,
            "scaler %d mean %g std %g mean2 %g", m->scaler, m->scale_a[0],
            m->scale_b[0], m->scale_a[1]);
    T_CHECK(m->training != NULL && (tr = cJSON_Parse(m->training)) != NULL,
            "training metadata missing or not JSON");
    if (tr != NULL) {
        e = cJSON_GetObjectItem(tr, "error");
        T_CHECK(e != NULL && cJSON_IsNumber(cJSON_GetObjectItem(e, "q999")) &&
                cJSON_GetObjectItem(e, "n")->valueint == 200 - 12 + 1,
                "error distribution: %s", m->training);
        T_CHECK(cJSON_GetObjectItem(tr, "rows")->valueint == 200 &&
                cJSON_GetObjectItem(tr, "epochs_run")->valueint == 4 &&
                strcmp(cJSON_GetObjectItem(tr, "loss")->valuestring, "mse") == 0,
                "settings: %s", m->training);
        cJSON_Delete(tr);
    }
    ad_model_free(m);

    /* refusals */
    rc = run_train(msg, sizeof(msg), "-i", tpath("sine.csv"), "-o", tpath("x.st"),
                   "--features", "temp,nope", (char *)NULL);
    T_CHECK(rc == 1 && strstr(msg, "nope") != NULL, "unknown column: rc %d: %s", rc, msg);
    write_text(tpath("bad.csv"), "a,b\n1,2\n3,4\n5,x7\n6,7\n");
    rc = run_train(msg, sizeof(msg), "-i", tpath("bad.csv"), "-o", tpath("x.st"),
                   "--window", "2", (char *)NULL);
    T_CHECK(rc == 1 && strstr(msg, ":4") != NULL && strstr(msg, "'b'") != NULL &&
            strstr(msg, "x7") != NULL, "non-numeric cell: rc %d: %s", rc, msg);
    write_text(tpath("few.csv"), "a,b\n1,2\n3,4\n5,6\n");
    rc = run_train(msg, sizeof(msg), "-i", tpath("few.csv"), "-o", tpath("x.st"),
                   "--window", "5", (char *)NULL);
    T_CHECK(rc == 1 && strstr(msg, "too few") != NULL && strstr(msg, "3 data rows") != NULL,
            "too few rows: rc %d: %s", rc, msg);
    rc = run_train(msg, sizeof(msg), "-i", tpath("few.csv"), "-o", tpath("x.st"),
                   "--window", "2", "--arch", "lstm-xx:4", (char *)NULL);
    T_CHECK(rc == 1 && strstr(msg, "lstm-xx") != NULL, "bad arch: rc %d: %s", rc, msg);
    rc = run_train(msg, sizeof(msg), "-i", tpath("few.csv"), "-o", tpath("x.st"),
                   "--lr", "abc", (char *)NULL);
    T_CHECK(rc == 2 && strstr(msg, "--lr") != NULL, "bad --lr: rc %d: %s", rc, msg);
    T_CHECK(access(tpath("x.st"), F_OK) != 0, "a model was written despite errors");
    /* a JSON architecture, min-max scaler, MAE */
    rc = run_train(msg, sizeof(msg), "-i", tpath("sine.csv"), "-o", tpath("d.st"),
                   "--window", "6", "--scaler", "minmax", "--loss", "mae",
                   "--epochs", "2", "--arch",
                   "[{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":4,"
                   "\"activation\":\"tanh\"},{\"type\":\"dense\",\"units\":12,"
                   "\"activation\":\"linear\"}]", "-q", (char *)NULL);
    T_CHECK(rc == 0, "json arch: rc %d: %s", rc, msg);
    if (rc == 0 && ad_model_load(&m, tpath("d.st"), err, sizeof(err)) == 0) {
        T_CHECK(m->scaler == AD_SCALER_MINMAX && m->n_layers == 3 &&
                fabs(m->scale_a[0] - 18.0) < 0.01 && fabs(m->scale_b[0] - 22.0) < 0.01,
                "minmax %g..%g layers %d", m->scale_a[0], m->scale_b[0], m->n_layers);
        ad_model_free(m);
    }
}

/* ---- the bundled model on simulated pump data ---------------------------- */

/*
 * conf/models/pump.safetensors (tools/make_model.sh) on a pump it has not
 * seen (seed 11) with a blockage and with cavitation (tools/pumpsim.py):
 * windows ending inside the fault must have a clearly higher
 * reconstruction error (MAE) than normal ones, and the normal ones must
 * stay near the training distribution stored in the model. Also checks the
 * simulator's determinism: a fault does not change the rows before it.
 */
static void test_bundled_model(void)
{
    const char *src = getenv("AD_SRCDIR"), *py = getenv("PYTHON");
    const char *faults[2] = { "blockage@12h+4h", "cavitation@6h+3h" };
    char path[512], cmd[1024], err[256] = "";
    ad_model *m = NULL;
    int k;

    snprintf(path, sizeof(path), "%s/conf/models/pump.safetensors", src ? src : ".");
    if (ad_model_load(&m, path, err, sizeof(err)) != 0) {
        T_CHECK(0, "bundled model: %s", err);
        return;
    }
    for (k = 0; k < 2; k++) {
        ad_csv_opts co;
        ad_table *t = NULL, *tn = NULL;
        float *xs, *win, *e;
        size_t n, i, nn = 0, na = 0, same = 0, outside = 0;
        double sn = 0.0, sa = 0.0, train_mean = 0.0;
        const int T = m->window, F = m->n_features;
        cJSON *tr;

        snprintf(cmd, sizeof(cmd), "%s %s/tools/pumpsim.py --seed 11 --days 1 "
                 "--fault %s --label --out %s", py ? py : "/usr/bin/python3",
                 src ? src : ".", faults[k], tpath("fault.csv"));
        T_CHECK(system(cmd) == 0, "%s failed", cmd);
        snprintf(cmd, sizeof(cmd), "%s %s/tools/pumpsim.py --seed 11 --days 1 "
                 "--label --out %s", py ? py : "/usr/bin/python3",
                 src ? src : ".", tpath("normal.csv"));
        T_CHECK(system(cmd) == 0, "%s failed", cmd);
        memset(&co, 0, sizeof(co));
        co.features = (const char *const *)m->features;
        co.n_features = F;
        co.label_col = "anomaly";
        if (ad_csv_read(&t, tpath("fault.csv"), &co, err, sizeof(err)) != 0 ||
            ad_csv_read(&tn, tpath("normal.csv"), &co, err, sizeof(err)) != 0) {
            T_CHECK(0, "csv: %s", err);
            ad_table_free(t);
            ad_table_free(tn);
            break;
        }
        /* determinism: before the fault the two runs are the same rows
         * (after it, the winding temperature still carries its effect) */
        for (i = 0; i < t->n_rows && i < tn->n_rows && t->label[i] < 0.5f; i++) {
            outside++;
            same += memcmp(t->x + i * F, tn->x + i * F, sizeof(float) * F) == 0;
        }
        T_CHECK(same == outside && outside >= 360 && t->n_rows == 1440,
                "%zu of %zu rows before the fault differ from the normal run",
                outside - same, outside);
        n = t->n_rows - (size_t)T + 1;
        xs = malloc(sizeof(float) * t->n_rows * F);
        win = malloc(sizeof(float) * n * T * F);
        e = malloc(sizeof(float) * n);
        ad_model_scale(m, t->x, xs, t->n_rows);
        ad_train_cut_windows(xs, t->n_rows, F, T, 1, win);
        T_CHECK(ad_train_error_stats(m, win, n, AD_METRIC_MAE, &(ad_error_stats){0}, e) == 0,
                "error stats");
        for (i = 0; i < n; i++) {
            if (t->label[i + (size_t)T - 1] >= 0.5f) {
                sa += e[i];
                na++;
            } else {
                sn += e[i];
                nn++;
            }
        }
        sn /= nn ? (double)nn : 1.0;
        sa /= na ? (double)na : 1.0;
        tr = cJSON_Parse(m->training ? m->training : "{}");
        if (tr && cJSON_GetObjectItem(tr, "error"))
            train_mean = cJSON_GetObjectItem(cJSON_GetObjectItem(tr, "error"), "mean")->valuedouble;
        cJSON_Delete(tr);
        T_CHECK(na > 0 && nn > 0 && sa > 3.0 * sn, "%s: MAE normal %.4f fault %.4f",
                faults[k], sn, sa);
        T_CHECK(train_mean > 0 && sn < 1.5 * train_mean,
                "%s: normal MAE %.4f vs training mean %.4f", faults[k], sn, train_mean);
        T_NOTE("bundled model, unseen pump, %s: MAE normal %.4f (training %.4f), "
               "fault %.4f (%.1fx)", faults[k], sn, train_mean, sa, sa / sn);
        free(xs);
        free(win);
        free(e);
        ad_table_free(t);
        ad_table_free(tn);
    }
    ad_model_free(m);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_train.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    T_RUN(test_init);
    T_RUN(test_fd_seq2seq);
    T_RUN(test_fd_stack);
    T_RUN(test_fd_relu_lstm);
    T_RUN(test_fd_dense);
    T_RUN(test_fd_lstm_flatten);
    T_RUN(test_golden_seq2seq);
    T_RUN(test_golden_stack);
    T_RUN(test_golden_dense);
    T_RUN(test_fit);
    T_RUN(test_fit_stopping);
    T_RUN(test_error_stats);
    T_RUN(test_cut_windows);
    T_RUN(test_meta_json);
    T_RUN(test_cmd_train);
    T_RUN(test_bundled_model);
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return t_done();
}
