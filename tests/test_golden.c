/*
 * test_golden.c - the C engine against PyTorch, on committed golden files.
 *
 * tools/gen_golden.py (make golden) wrote, for each case of the table
 * below, tests/golden/NAME.safetensors (a model file written by the
 * PyTorch exporter; the Keras exporter gives the same bytes) and
 * NAME.io.safetensors with B windows: "input" (B,T,F, scaled), "raw" (the
 * same before the scaler), "output" (PyTorch float32 reconstruction),
 * "mse", "mae" (B) and "share_mse", "share_mae" (B,F), errors computed in
 * float64 from PyTorch's input/output.
 *
 * For each case the model is loaded with ad_model_load() (the real loader)
 * and checked:
 *   - ad_model_scale(raw) == input               abs <= TOL_SCALE
 *   - ad_engine_forward, batch B                 max abs err <= TOL_OUT
 *   - ad_engine_forward, B=1 windows one by one (same engine, after the
 *     batch call, and a fresh max_batch=1 engine: the sgemv path)
 *   - ad_forward_ref (scalar reference)          max abs err <= TOL_OUT
 *   - ad_recon_error on PyTorch's output and on the engine's output:
 *     mse, mae relative err <= TOL_ERR; shares abs err <= TOL_SHARE
 * The measured errors are printed with T_NOTE. Also: ad_model_serialize()
 * reproduces the exporter's bytes exactly (same model id), and the
 * comparison is sensitive: one weight changed by 0.01 must be noticed.
 *
 * Golden files are looked up in $AD_SRCDIR/tests/golden (run.sh sets it),
 * else ./tests/golden.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "engine.h"
#include "model.h"
#include "safetensors.h"
#include "t.h"

#define TOL_OUT   1e-4   /* max abs error of reconstructions vs PyTorch */
#define TOL_ERR   1e-4   /* relative error of mse / mae */
#define TOL_SHARE 1e-4   /* abs error of per-feature shares (fractions of 1) */
#define TOL_SCALE 1e-5   /* abs error of scaled values, raw -> input */

static const char *const cases[] = {
    "seed_stack",   /* T=100 F=1: LSTM(64,seq) LSTM(32,seq) LSTM(64,seq) TDDense(1) */
    "repeat_ae",    /* T=10 F=8: LSTM(100) RepeatVector(10) LSTM(100,seq) TDDense(8) */
    "dense_ae",     /* T=10 F=8: flatten Dense(32 relu,8 tanh,32 sigmoid,80) */
    "relu_ae",      /* T=10 F=8: relu-cell LSTM(100) RV LSTM(100,seq) TDDense(8) */
    "odd_small",    /* T=7 F=3: LSTM(5,seq) LSTM(1,seq) TDDense(3), minmax */
    "single_step",  /* T=1 F=2: LSTM(4) RV(1) LSTM(4,seq) TDDense(2), no scaler */
};
#define N_CASES ((int)(sizeof(cases) / sizeof(cases[0])))

typedef struct golden {
    ad_model *m;
    int B, T, F;
    /* owned copies of the io tensors (the reader's data may be unaligned) */
    float *input, *raw, *output, *mse, *mae, *share_mse, *share_mae;
} golden;

static const char *golden_dir(void)
{
    static char dir[4096];
    const char *src = getenv("AD_SRCDIR");

    snprintf(dir, sizeof(dir), "%s/tests/golden", src && *src ? src : ".");
    return dir;
}

static void golden_free(golden *g)
{
    ad_model_free(g->m);
    free(g->input);
    free(g->raw);
    free(g->output);
    free(g->mse);
    free(g->mae);
    free(g->share_mse);
    free(g->share_mae);
    memset(g, 0, sizeof(*g));
}

/* Copy tensor `name` of shape (d0[,d1[,d2]]) (ndim dims) out of st. */
static float *take(const ad_st *st, const char *file, const char *name,
                   int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    const ad_st_tensor *t = ad_st_find(st, name);
    const int64_t want[3] = { d0, d1, d2 };
    float *p;

    if (t == NULL) {
        T_CHECK(0, "%s: no tensor \"%s\"", file, name);
        return NULL;
    }
    if (t->ndim != ndim) {
        T_CHECK(0, "%s: tensor %s has %d dims, expected %d", file, name,
                t->ndim, ndim);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != want[i]) {
            T_CHECK(0, "%s: tensor %s dim %d is %lld, expected %lld", file, name,
                    i, (long long)t->shape[i], (long long)want[i]);
            return NULL;
        }
    p = malloc(t->count * sizeof(float) + 1);
    if (p != NULL)
        memcpy(p, t->data, t->count * sizeof(float));
    return p;
}

/* Load NAME.safetensors with the real loader and NAME.io.safetensors. */
static int golden_open(golden *g, const char *name)
{
    char mpath[4200], iopath[4200], err[1024];
    void *buf = NULL;
    size_t len = 0;
    ad_st *st = NULL;
    const ad_st_tensor *in;
    int rc;

    memset(g, 0, sizeof(*g));
    snprintf(mpath, sizeof(mpath), "%s/%s.safetensors", golden_dir(), name);
    snprintf(iopath, sizeof(iopath), "%s/%s.io.safetensors", golden_dir(), name);
    err[0] = '\0';
    rc = ad_model_load(&g->m, mpath, err, sizeof(err));
    T_CHECK(rc == 0, "ad_model_load(%s): %d %s: %s (missing? run `make golden`)",
            mpath, rc, ad_strerror(rc), err);
    if (rc != 0)
        return -1;
    err[0] = '\0';
    rc = ad_read_file(iopath, 64u << 20, &buf, &len, err, sizeof(err));
    T_CHECK(rc == 0, "ad_read_file(%s): %s", iopath, err);
    if (rc != 0)
        goto fail;
    rc = ad_st_parse(&st, buf, len, iopath, err, sizeof(err));
    T_CHECK(rc == 0, "ad_st_parse(%s): %s", iopath, err);
    if (rc != 0)
        goto fail;
    in = ad_st_find(st, "input");
    T_CHECK(in != NULL && in->ndim == 3, "%s: no 3-d tensor \"input\"", iopath);
    if (in == NULL || in->ndim != 3)
        goto fail;
    g->B = (int)in->shape[0];
    g->T = (int)in->shape[1];
    g->F = (int)in->shape[2];
    T_CHECK(g->T == g->m->window && g->F == g->m->n_features,
            "%s: input (%d,%d,%d) but the model has window %d, %d features",
            iopath, g->B, g->T, g->F, g->m->window, g->m->n_features);
    if (g->B < 1 || g->T != g->m->window || g->F != g->m->n_features)
        goto fail;
    g->input = take(st, iopath, "input", 3, g->B, g->T, g->F);
    g->raw = take(st, iopath, "raw", 3, g->B, g->T, g->F);
    g->output = take(st, iopath, "output", 3, g->B, g->T, g->F);
    g->mse = take(st, iopath, "mse", 1, g->B, 0, 0);
    g->mae = take(st, iopath, "mae", 1, g->B, 0, 0);
    g->share_mse = take(st, iopath, "share_mse", 2, g->B, g->F, 0);
    g->share_mae = take(st, iopath, "share_mae", 2, g->B, g->F, 0);
    if (!g->input || !g->raw || !g->output || !g->mse || !g->mae ||
        !g->share_mse || !g->share_mae)
        goto fail;
    ad_st_free(st);
    free(buf);
    return 0;
fail:
    ad_st_free(st);
    free(buf);
    golden_free(g);
    return -1;
}

/* Max abs difference over n floats; NaN anywhere gives +inf. */
static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;

    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d)
            return INFINITY;
        if (d > m)
            m = d;
    }
    return m;
}

static double rel_err(double got, double want)
{
    double d = fabs(got - want), s = fabs(want);

    if (d != d)
        return INFINITY;
    return s > 1e-12 ? d / s : d;
}

/* Recon errors of y (B windows) against the golden mse/mae/shares; returns
 * the worst relative mse/mae error and worst share error in *rel, *sh. */
static void check_errors(const golden *g, const float *y, const char *what,
                         double *rel, double *sh)
{
    const size_t win = (size_t)g->T * (size_t)g->F;
    float *share = malloc((size_t)g->F * sizeof(float));

    *rel = *sh = 0;
    if (share == NULL) {
        T_CHECK(0, "out of memory");
        return;
    }
    for (int b = 0; b < g->B; b++) {
        const float *x = g->input + (size_t)b * win, *yb = y + (size_t)b * win;
        float mse = NAN, mae = NAN;
        double e;

        ad_recon_error(x, yb, g->T, g->F, AD_METRIC_MSE, &mse, &mae, share);
        e = rel_err(mse, g->mse[b]);
        T_CHECK(e <= TOL_ERR, "%s window %d: mse %.9g, PyTorch %.9g (rel %.3g)",
                what, b, mse, g->mse[b], e);
        *rel = fmax(*rel, e);
        e = rel_err(mae, g->mae[b]);
        T_CHECK(e <= TOL_ERR, "%s window %d: mae %.9g, PyTorch %.9g (rel %.3g)",
                what, b, mae, g->mae[b], e);
        *rel = fmax(*rel, e);
        e = max_abs_diff(share, g->share_mse + (size_t)b * g->F, (size_t)g->F);
        T_CHECK(e <= TOL_SHARE, "%s window %d: share (mse) off by %.3g",
                what, b, e);
        *sh = fmax(*sh, e);
        ad_recon_error(x, yb, g->T, g->F, AD_METRIC_MAE, NULL, NULL, share);
        e = max_abs_diff(share, g->share_mae + (size_t)b * g->F, (size_t)g->F);
        T_CHECK(e <= TOL_SHARE, "%s window %d: share (mae) off by %.3g",
                what, b, e);
        *sh = fmax(*sh, e);
    }
    free(share);
}

static int cur_case;

static void test_case(void)
{
    const char *name = cases[cur_case];
    golden g;
    ad_engine *e = NULL, *e1 = NULL;
    float *scaled = NULL, *out = NULL, *out1 = NULL, *out1f = NULL, *ref = NULL;
    size_t win, n;
    double d_scale, d_batch, d_one, d_fresh, d_ref, rel_t, sh_t, rel_e, sh_e;
    int rc;

    if (golden_open(&g, name) < 0)
        return;
    win = (size_t)g.T * (size_t)g.F;
    n = (size_t)g.B * win;
    scaled = malloc(n * sizeof(float));
    out = malloc(n * sizeof(float));
    out1 = malloc(n * sizeof(float));
    out1f = malloc(n * sizeof(float));
    ref = malloc(n * sizeof(float));
    e = ad_engine_new(g.m, g.B);
    e1 = ad_engine_new(g.m, 1);
    T_CHECK(scaled && out && out1 && out1f && ref && e && e1,
            "allocation / ad_engine_new failed");
    if (!(scaled && out && out1 && out1f && ref && e && e1))
        goto done;

    /* The model's scaler (loaded from the file) maps raw to input. */
    ad_model_scale(g.m, g.raw, scaled, (size_t)g.B * (size_t)g.T);
    d_scale = max_abs_diff(scaled, g.input, n);
    T_CHECK(d_scale <= TOL_SCALE, "%s: scaler: raw -> input off by %.3g", name,
            d_scale);

    for (size_t i = 0; i < n; i++)
        out[i] = out1[i] = out1f[i] = ref[i] = NAN;
    rc = ad_engine_forward(e, g.input, out, g.B);
    T_CHECK(rc == 0, "%s: ad_engine_forward(B=%d): %d", name, g.B, rc);
    d_batch = max_abs_diff(out, g.output, n);
    T_CHECK(d_batch <= TOL_OUT, "%s: engine B=%d: max abs err %.3g > %g",
            name, g.B, d_batch, TOL_OUT);

    for (int b = 0; b < g.B; b++) {
        rc = ad_engine_forward(e, g.input + (size_t)b * win, out1 + (size_t)b * win, 1);
        T_CHECK(rc == 0, "%s: ad_engine_forward(B=1) window %d: %d", name, b, rc);
        rc = ad_engine_forward(e1, g.input + (size_t)b * win, out1f + (size_t)b * win, 1);
        T_CHECK(rc == 0, "%s: fresh engine ad_engine_forward(B=1) window %d: %d",
                name, b, rc);
    }
    d_one = max_abs_diff(out1, g.output, n);
    T_CHECK(d_one <= TOL_OUT, "%s: engine B=1 one by one: max abs err %.3g > %g",
            name, d_one, TOL_OUT);
    d_fresh = max_abs_diff(out1f, g.output, n);
    T_CHECK(d_fresh <= TOL_OUT, "%s: engine max_batch=1: max abs err %.3g > %g",
            name, d_fresh, TOL_OUT);

    rc = ad_forward_ref(g.m, g.input, ref, g.B);
    T_CHECK(rc == 0, "%s: ad_forward_ref: %d", name, rc);
    d_ref = max_abs_diff(ref, g.output, n);
    T_CHECK(d_ref <= TOL_OUT, "%s: reference forward: max abs err %.3g > %g",
            name, d_ref, TOL_OUT);

    check_errors(&g, g.output, "recon_error(PyTorch output)", &rel_t, &sh_t);
    check_errors(&g, out, "recon_error(engine output)", &rel_e, &sh_e);

    T_NOTE("%s B=%d T=%d F=%d: max abs err vs PyTorch (tol %g): engine B=%d %.2e, "
           "B=1 %.2e, max_batch=1 %.2e, ref %.2e; scaler %.1e", name, g.B, g.T,
           g.F, TOL_OUT, g.B, d_batch, d_one, d_fresh, d_ref, d_scale);
    T_NOTE("%s: mse/mae rel err (tol %g): on PyTorch output %.1e, on engine "
           "output %.1e; share abs err (tol %g): %.1e, %.1e", name, TOL_ERR,
           rel_t, rel_e, TOL_SHARE, sh_t, sh_e);
done:
    ad_engine_free(e);
    ad_engine_free(e1);
    free(scaled);
    free(out);
    free(out1);
    free(out1f);
    free(ref);
    golden_free(&g);
}

/* Every NAME.io.safetensors in the golden directory is in the table (a
 * case added to gen_golden.py but not here would silently go unchecked). */
static void test_every_golden_file_is_checked(void)
{
    DIR *d = opendir(golden_dir());
    struct dirent *de;
    int n_io = 0;

    T_CHECK(d != NULL, "cannot open %s", golden_dir());
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        const char *suffix = ".io.safetensors";
        size_t len = strlen(de->d_name), sl = strlen(suffix);
        int found = 0;

        if (len <= sl || strcmp(de->d_name + len - sl, suffix) != 0)
            continue;
        n_io++;
        for (int i = 0; i < N_CASES; i++)
            if (strlen(cases[i]) == len - sl &&
                strncmp(cases[i], de->d_name, len - sl) == 0)
                found = 1;
        T_CHECK(found, "%s/%s is not in the cases[] table of test_golden.c",
                golden_dir(), de->d_name);
    }
    closedir(d);
    T_CHECK(n_io == N_CASES, "%d io files for %d cases", n_io, N_CASES);
    T_NOTE("%d golden io files, all in the table", n_io);
}

/* Python (tools/adformat.py) and C (ad_model_serialize) write the same
 * canonical bytes: a model loaded and saved again by anomalyd keeps the id
 * the exporter gave it. */
static void test_c_serializer_matches_exporter(void)
{
    for (int i = 0; i < N_CASES; i++) {
        char path[4200], err[1024], hex[65];
        ad_model *m = NULL;
        void *file = NULL, *ser = NULL;
        size_t flen = 0, slen = 0;
        int rc;

        snprintf(path, sizeof(path), "%s/%s.safetensors", golden_dir(), cases[i]);
        err[0] = '\0';
        rc = ad_model_load(&m, path, err, sizeof(err));
        T_CHECK(rc == 0, "ad_model_load(%s): %s", path, err);
        if (rc == 0)
            rc = ad_read_file(path, 64u << 20, &file, &flen, err, sizeof(err));
        if (rc == 0) {
            ad_sha256_hex(file, flen, hex);
            T_CHECK(strncmp(m->id, hex, AD_MODEL_ID_LEN) == 0,
                    "%s: loaded id %s, sha256 of the file %.16s", cases[i], m->id, hex);
            rc = ad_model_serialize(m, &ser, &slen);
            T_CHECK(rc == 0, "%s: ad_model_serialize: %d", cases[i], rc);
        }
        if (rc == 0)
            T_CHECK(slen == flen && memcmp(ser, file, flen) == 0,
                    "%s: C serialisation (%zu bytes) differs from the exporter's "
                    "file (%zu bytes)", cases[i], slen, flen);
        free(ser);
        free(file);
        ad_model_free(m);
    }
    T_NOTE("%d golden models: ad_model_serialize() reproduces the Python exporter's "
           "bytes and the model id is the file's sha256 prefix", N_CASES);
}

/* The comparison must be able to fail: nudge one weight of the last layer
 * (which every output depends on) by 0.01 and the engine must move away
 * from PyTorch by more than the tolerance. */
static void test_golden_detects_weight_change(void)
{
    golden g;
    ad_engine *e = NULL;
    float *out = NULL;
    size_t n;
    double d;
    ad_layer *last;

    if (golden_open(&g, "repeat_ae") < 0)
        return;
    n = (size_t)g.B * (size_t)g.T * (size_t)g.F;
    last = &g.m->layers[g.m->n_layers - 1];
    T_CHECK(last->bias != NULL, "repeat_ae: last layer has no bias");
    if (last->bias == NULL)
        goto done;
    last->bias[0] += 0.01f;
    e = ad_engine_new(g.m, g.B);
    out = malloc(n * sizeof(float));
    T_CHECK(e && out, "allocation failed");
    if (!(e && out))
        goto done;
    T_CHECK(ad_engine_forward(e, g.input, out, g.B) == 0, "forward failed");
    d = max_abs_diff(out, g.output, n);
    T_CHECK(d > TOL_OUT, "a bias changed by 0.01 went unnoticed: max abs err %.3g", d);
    T_NOTE("bias[0] of the last layer + 0.01: max abs err %.3g (> tol %g)", d, TOL_OUT);
done:
    ad_engine_free(e);
    free(out);
    golden_free(&g);
}

int main(void)
{
    char label[128];

    for (cur_case = 0; cur_case < N_CASES; cur_case++) {
        snprintf(label, sizeof(label), "golden %s", cases[cur_case]);
        t_run(label, test_case);
    }
    T_RUN(test_every_golden_file_is_checked);
    T_RUN(test_c_serializer_matches_exporter);
    T_RUN(test_golden_detects_weight_change);
    return t_done();
}
