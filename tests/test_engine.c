/*
 * test_engine.c - the inference engine against the scalar reference, the
 * vectorised math against libm, and the reconstruction error by hand.
 *
 * Engine vs reference: random models (parameters uniform in +-0.5 from a
 * fixed-seed PRNG, inputs N(0,1)) for every architecture kind at several
 * sizes, batch sizes 1, 3 and 17. Tolerance: max |engine - reference| <=
 * 1e-5 over every output element (the reference accumulates in double; the
 * engine is float BLAS with polynomial gates), once with the AVX-512
 * product kernels and once with OpenBLAS only. Golden tests against
 * PyTorch live in test_golden.c.
 */
#include "t.h"
#include "engine.h"
#include "model.h"
#include "ad.h"
#include "vmath.h"      /* ad_engine_use_avx512_ */

#include <cblas.h>
#include <float.h>
#include <stdint.h>

#define TOL 1e-5

/* ---- deterministic random numbers (xorshift64*) ---- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static void rng_seed(uint64_t s)
{
    rng_state = s ? s : 1;
}

static double rng_u01(void)
{
    uint64_t x = rng_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static float rng_normal(void)
{
    double u1 = rng_u01(), u2 = rng_u01();

    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- models ---- */
typedef struct {
    const char *name;
    int T, F;
    int n;
    ad_layer_spec L[8];
} arch_case;

#define LSTM(h, a, seq) { AD_LAYER_LSTM, (h), (a), (seq) }
#define REPEAT(n) { AD_LAYER_REPEAT_VECTOR, (n), AD_ACT_LINEAR, 0 }
#define TDD(u, a) { AD_LAYER_TD_DENSE, (u), (a), 0 }
#define FLAT { AD_LAYER_FLATTEN, 0, AD_ACT_LINEAR, 0 }
#define DENSE(u, a) { AD_LAYER_DENSE, (u), (a), 0 }

static const arch_case cases[] = {
    { "seed T=100 F=1 lstm64/32/64 seq + td(1)", 100, 1, 4,
      { LSTM(64, AD_ACT_TANH, 1), LSTM(32, AD_ACT_TANH, 1),
        LSTM(64, AD_ACT_TANH, 1), TDD(1, AD_ACT_LINEAR) } },
    { "encdec T=10 F=8 lstm100 > repeat > lstm100 seq > td(8)", 10, 8, 4,
      { LSTM(100, AD_ACT_TANH, 0), REPEAT(10), LSTM(100, AD_ACT_TANH, 1),
        TDD(8, AD_ACT_LINEAR) } },
    { "relu lstm T=12 F=3 lstm16 relu seq > td(3)", 12, 3, 2,
      { LSTM(16, AD_ACT_RELU, 1), TDD(3, AD_ACT_LINEAR) } },
    { "relu encdec T=9 F=2 lstm7 relu > repeat > lstm5 relu seq > td(2) tanh",
      9, 2, 4,
      { LSTM(7, AD_ACT_RELU, 0), REPEAT(9), LSTM(5, AD_ACT_RELU, 1),
        TDD(2, AD_ACT_TANH) } },
    { "dense AE T=20 F=2 flatten > dense16 relu > dense8 tanh > dense40 sigmoid",
      20, 2, 4,
      { FLAT, DENSE(16, AD_ACT_RELU), DENSE(8, AD_ACT_TANH),
        DENSE(40, AD_ACT_SIGMOID) } },
    { "H=1 T=5 F=2 lstm1 seq > td(2)", 5, 2, 2,
      { LSTM(1, AD_ACT_TANH, 1), TDD(2, AD_ACT_LINEAR) } },
    { "H=3 T=6 F=4 lstm3 > repeat > lstm3 seq > td(4)", 6, 4, 4,
      { LSTM(3, AD_ACT_TANH, 0), REPEAT(6), LSTM(3, AD_ACT_TANH, 1),
        TDD(4, AD_ACT_LINEAR) } },
    { "T=1 F=4 lstm5 seq > td(4) relu", 1, 4, 2,
      { LSTM(5, AD_ACT_TANH, 1), TDD(4, AD_ACT_RELU) } },
    { "T=1 F=3 lstm2 > repeat(1) > lstm3 seq > td(3)", 1, 3, 4,
      { LSTM(2, AD_ACT_TANH, 0), REPEAT(1), LSTM(3, AD_ACT_TANH, 1),
        TDD(3, AD_ACT_LINEAR) } },
    { "lstm seq > flatten > dense T=7 F=3 lstm4 seq > flatten > dense21", 7, 3,
      3, { LSTM(4, AD_ACT_TANH, 1), FLAT, DENSE(21, AD_ACT_LINEAR) } },
    { "dense > repeat > td T=6 F=2 flatten > dense5 tanh > repeat(6) > td(2)",
      6, 2, 4,
      { FLAT, DENSE(5, AD_ACT_TANH), REPEAT(6), TDD(2, AD_ACT_LINEAR) } },
    { "td first T=4 F=3 td(6) relu > lstm(5, seq) > td(3)", 4, 3, 3,
      { TDD(6, AD_ACT_RELU), LSTM(5, AD_ACT_TANH, 1), TDD(3, AD_ACT_LINEAR) } },
};
#define N_CASES (int)(sizeof(cases) / sizeof(cases[0]))

static ad_model *make_model(const arch_case *c, uint64_t seed)
{
    ad_model *m = NULL;
    char err[256] = "";
    size_t i;
    int rc;

    rc = ad_model_create(&m, c->T, c->F, c->L, c->n, err, sizeof err);
    T_CHECK(rc == 0, "%s: ad_model_create: %s (%s)", c->name, ad_strerror(rc),
            err);
    if (rc != 0)
        return NULL;
    rng_seed(seed);
    for (i = 0; i < m->n_params; i++)
        m->params[i] = (float)(rng_u01() - 0.5);
    return m;
}

static float *rand_windows(int B, int T, int F)
{
    size_t n = (size_t)B * T * F, i;
    float *x = malloc(n * sizeof(float));

    if (x != NULL)
        for (i = 0; i < n; i++)
            x[i] = rng_normal();
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n, int *nan)
{
    double mx = 0.0;
    size_t i;

    *nan = 0;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);

        if (isnan(a[i]) || isnan(b[i]))
            (*nan)++;
        else if (d > mx)
            mx = d;
    }
    return mx;
}

/* ---- engine vs reference ---- */

/* Both product back-ends: the AVX-512 kernels (when the CPU has them) and
 * OpenBLAS everywhere. */
static void engine_vs_ref(int avx512)
{
    static const int batches[] = { 1, 3, 17 };
    int ci, bi;

    for (ci = 0; ci < N_CASES; ci++) {
        const arch_case *c = &cases[ci];
        ad_model *m = make_model(c, 1000 + (uint64_t)ci);
        ad_engine *e;
        double worst = 0.0;

        if (m == NULL)
            continue;
        e = ad_engine_new(m, 17);
        T_CHECK(e != NULL, "%s: ad_engine_new", c->name);
        if (e != NULL && ad_engine_use_avx512_(e, avx512) != avx512) {
            T_NOTE("no AVX-512 on this CPU: OpenBLAS path only");
            ad_engine_free(e);
            ad_model_free(m);
            return;
        }
        for (bi = 0; e != NULL && bi < 3; bi++) {
            int B = batches[bi], nan = 0;
            size_t n = (size_t)B * c->T * c->F;
            float *x = rand_windows(B, c->T, c->F);
            float *y = malloc(n * sizeof(float));
            float *r = malloc(n * sizeof(float));
            double d;
            int rc1, rc2;

            if (x == NULL || y == NULL || r == NULL) {
                T_CHECK(0, "out of memory");
                free(x); free(y); free(r);
                break;
            }
            rc1 = ad_engine_forward(e, x, y, B);
            rc2 = ad_forward_ref(m, x, r, B);
            T_CHECK(rc1 == 0 && rc2 == 0, "%s B=%d: rc %d %d", c->name, B,
                    rc1, rc2);
            d = max_abs_diff(y, r, n, &nan);
            T_CHECK(nan == 0, "%s B=%d: %d NaN outputs", c->name, B, nan);
            T_CHECK(d <= TOL, "%s B=%d: max |engine - ref| = %.3g > %g",
                    c->name, B, d, TOL);
            if (d > worst)
                worst = d;
            free(x); free(y); free(r);
        }
        T_NOTE("%-70s B=1,3,17 max|engine-ref| = %.2e (tol %g, %s)",
               c->name, worst, TOL, avx512 ? "AVX-512 kernels" : "OpenBLAS");
        ad_engine_free(e);
        ad_model_free(m);
    }
}

static void test_engine_vs_ref_avx512(void)
{
    engine_vs_ref(1);
}

static void test_engine_vs_ref_openblas(void)
{
    engine_vs_ref(0);
}

/* A window gives the same result alone (B = 1, the sgemv path) or inside a
 * batch of 17 (sgemm); a NaN window in a batch does not touch the others. */
static void test_no_cross_talk(void)
{
    const int B = 17;
    int ci;

    for (ci = 0; ci < N_CASES; ci++) {
        const arch_case *c = &cases[ci];
        ad_model *m = make_model(c, 2000 + (uint64_t)ci);
        size_t win = (size_t)c->T * c->F, n = (size_t)B * win;
        ad_engine *e = m ? ad_engine_new(m, B) : NULL;
        float *x = rand_windows(B, c->T, c->F);
        float *y = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
        float *one = malloc(win * sizeof(float));
        double worst = 0.0, d;
        int b, nan, changed = 0, nan_spread = 0;
        size_t k;

        if (m == NULL || e == NULL || x == NULL || y == NULL || y2 == NULL ||
            one == NULL) {
            T_CHECK(0, "%s: setup failed", c->name);
            goto next;
        }
        T_CHECK(ad_engine_forward(e, x, y, B) == 0, "forward");
        for (b = 0; b < B; b++) {
            T_CHECK(ad_engine_forward(e, x + b * win, one, 1) == 0, "forward");
            d = max_abs_diff(one, y + b * win, win, &nan);
            T_CHECK(nan == 0 && d <= TOL, "%s: window %d alone vs in batch: "
                    "max diff %.3g, %d NaN", c->name, b, d, nan);
            if (d > worst)
                worst = d;
        }
        /* poison window 5: only window 5 may change, and it must be NaN */
        x[5 * win + win / 2] = NAN;
        T_CHECK(ad_engine_forward(e, x, y2, B) == 0, "forward");
        for (b = 0; b < B; b++) {
            if (b == 5)
                continue;
            if (memcmp(y + b * win, y2 + b * win, win * sizeof(float)) != 0)
                changed++;
        }
        for (k = 0; k < win; k++)
            if (isnan(y2[5 * win + k]))
                nan_spread++;
        T_CHECK(changed == 0, "%s: %d other windows changed by a NaN window",
                c->name, changed);
        T_CHECK(nan_spread > 0, "%s: NaN input gave no NaN output", c->name);
        T_NOTE("%-70s alone vs batch max diff %.2e; NaN window: %d/%zu NaN "
               "outputs, %d other windows changed", c->name, worst,
               nan_spread, win, changed);
    next:
        free(x); free(y); free(y2); free(one);
        ad_engine_free(e);
        ad_model_free(m);
    }
}

/* Saturated gates: LSTM input kernels and biases +-25, inputs N(0, 100):
 * pre-activations reach several hundred, beyond +-88 where exp over- or
 * underflows, so every gate runs in its clamped/saturated range. The fused
 * cell must match the libm reference (sigmoid -> 0/1, tanh -> +-1, no NaN).
 * The recurrent kernels stay +-0.5: with large recurrent weights the
 * network is chaotic (the reference itself moves by 0.08 when the input
 * moves by 1e-7 relative), which would test nothing. */
static void test_saturated_gates(void)
{
    static const arch_case c = { "saturated T=20 F=3 lstm16 > repeat > "
                                 "lstm16 seq > td(3)", 20, 3, 4,
        { LSTM(16, AD_ACT_TANH, 0), REPEAT(20), LSTM(16, AD_ACT_TANH, 1),
          TDD(3, AD_ACT_LINEAR) } };
    static const arch_case c2 = { "saturated T=20 F=3 lstm32 seq > td(3)",
        20, 3, 2, { LSTM(32, AD_ACT_TANH, 1), TDD(3, AD_ACT_LINEAR) } };
    const arch_case *cs[2] = { &c, &c2 };
    int k;

    for (k = 0; k < 2; k++) {
        ad_model *m = make_model(cs[k], 5000 + (uint64_t)k);
        const int B = 5;
        size_t n = (size_t)B * cs[k]->T * cs[k]->F, i;
        ad_engine *e = m ? ad_engine_new(m, B) : NULL;
        float *x = rand_windows(B, cs[k]->T, cs[k]->F);
        float *y = malloc(n * sizeof(float)), *r = malloc(n * sizeof(float));
        double d, scale = 0.0;
        int nan = 0;

        if (e == NULL || x == NULL || y == NULL || r == NULL) {
            T_CHECK(0, "setup failed");
        } else {
            int l;
            double zmax = 0.0;

            for (l = 0; l < m->n_layers; l++) {
                ad_layer *L = &m->layers[l];
                size_t nk = (size_t)L->in_d * 4 * L->spec.units;

                if (L->spec.type != AD_LAYER_LSTM)
                    continue;
                for (i = 0; i < nk; i++)
                    L->kernel[i] *= 50.0f;
                for (i = 0; i < 4 * (size_t)L->spec.units; i++)
                    L->bias[i] *= 50.0f;
            }
            for (i = 0; i < n; i++)
                x[i] *= 10.0f;
            /* largest first-layer pre-activation x K + b over the input */
            for (i = 0; i < n / cs[k]->F; i++) {
                const ad_layer *L = &m->layers[0];
                size_t j2, f2, H4 = 4 * (size_t)L->spec.units;

                for (j2 = 0; j2 < H4; j2++) {
                    double z = L->bias[j2];

                    for (f2 = 0; f2 < (size_t)cs[k]->F; f2++)
                        z += x[i * cs[k]->F + f2] * L->kernel[f2 * H4 + j2];
                    if (fabs(z) > zmax)
                        zmax = fabs(z);
                }
            }
            T_CHECK(zmax > 100.0, "pre-activations only reach %.1f", zmax);
            T_CHECK(ad_engine_forward(e, x, y, B) == 0, "forward");
            T_CHECK(ad_forward_ref(m, x, r, B) == 0, "ref");
            d = max_abs_diff(y, r, n, &nan);
            for (i = 0; i < n; i++)
                if (fabs(r[i]) > scale)
                    scale = fabs(r[i]);
            T_CHECK(nan == 0 && d <= TOL, "%s: max diff %.3g, %d NaN",
                    cs[k]->name, d, nan);
            T_NOTE("%-50s |z| up to %.0f: max|engine-ref| = %.2e (tol %g), "
                   "max |output| %.2f", cs[k]->name, zmax, d, TOL, scale);
        }
        free(x); free(y); free(r);
        ad_engine_free(e);
        ad_model_free(m);
    }
}

/* NaN in the input must come out as NaN in both implementations, for the
 * last value of the reconstruction too (recurrent layers carry it on). */
static void test_nan_propagates(void)
{
    int ci;

    for (ci = 0; ci < N_CASES; ci++) {
        const arch_case *c = &cases[ci];
        ad_model *m = make_model(c, 3000 + (uint64_t)ci);
        size_t win = (size_t)c->T * c->F, k;
        ad_engine *e = m ? ad_engine_new(m, 1) : NULL;
        float *x = rand_windows(1, c->T, c->F);
        float *y = malloc(win * sizeof(float)), *r = malloc(win * sizeof(float));
        int ne = 0, nr = 0;

        if (e == NULL || x == NULL || y == NULL || r == NULL) {
            T_CHECK(0, "%s: setup failed", c->name);
        } else {
            x[0] = NAN;
            T_CHECK(ad_engine_forward(e, x, y, 1) == 0, "forward");
            T_CHECK(ad_forward_ref(m, x, r, 1) == 0, "ref");
            for (k = 0; k < win; k++) {
                ne += isnan(y[k]) != 0;
                nr += isnan(r[k]) != 0;
            }
            T_CHECK(ne > 0 && ne == nr, "%s: NaN outputs engine %d ref %d",
                    c->name, ne, nr);
        }
        free(x); free(y); free(r);
        ad_engine_free(e);
        ad_model_free(m);
    }
    T_NOTE("NaN at x[0] of a window -> NaN outputs in engine and reference, "
           "same count, all %d models", N_CASES);
}

static void test_engine_args(void)
{
    const arch_case *c = &cases[2];
    ad_model *m = make_model(c, 4000);
    ad_engine *e = m ? ad_engine_new(m, 4) : NULL;
    float x[12 * 3 * 5] = { 0 }, y[12 * 3 * 5];

    T_CHECK(e != NULL, "ad_engine_new");
    T_CHECK(ad_engine_max_batch(e) == 4, "max_batch %d",
            ad_engine_max_batch(e));
    T_CHECK(ad_engine_forward(e, x, y, 5) == AD_EINVAL, "B > max_batch");
    T_CHECK(ad_engine_forward(e, x, y, 0) == AD_EINVAL, "B = 0");
    T_CHECK(ad_engine_forward(e, NULL, y, 1) == AD_EINVAL, "in NULL");
    T_CHECK(ad_engine_new(NULL, 4) == NULL, "model NULL");
    T_CHECK(ad_engine_new(m, 0) == NULL, "max_batch 0");
    T_CHECK(ad_forward_ref(m, x, y, 0) == AD_EINVAL, "ref B = 0");
    ad_engine_free(NULL);
    ad_engine_free(e);
    ad_model_free(m);
}

/* ---- vectorised math vs libm ---- */

/* Distance in units in the last place between two floats (same sign
 * ordering trick; NaN handled by the caller). */
static double ulp_dist(float a, float b)
{
    int32_t ia, ib;

    if (a == b)
        return 0.0;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0)
        ia = INT32_MIN - ia;
    if (ib < 0)
        ib = INT32_MIN - ib;
    return fabs((double)ia - (double)ib);
}

typedef struct {
    const char *name;
    void (*vec)(float *, size_t);
    double (*ref)(double);      /* double-precision libm: the truth */
    float (*lib)(float);        /* what float code would call (libm) */
} vfun;

static double d_exp(double x) { return exp(x); }
static double d_sig(double x) { return 1.0 / (1.0 + exp(-x)); }
static double d_tanh(double x) { return tanh(x); }
static double d_relu(double x) { return x < 0 ? 0.0 : x; }
static float f_exp(float x) { return expf(x); }
static float f_sig(float x) { return 1.0f / (1.0f + expf(-x)); }
static float f_tanh(float x) { return tanhf(x); }
static float f_relu(float x) { return x < 0 ? 0.0f : x; }

/* Max ulp error of each function of fns (4 entries) over a dense sweep of
 * [-100, 100] and +-[1e-30, 1e30]; `isa` names the variant in the notes. */
static void vmath_accuracy(const vfun *fns, const char *isa)
{
    const size_t n_lin = 2000001;       /* [-100, 100] step 1e-4 */
    const size_t n_log = 2 * 60 * 1000; /* +-[1e-30, 1e30] log spaced */
    size_t n = n_lin + n_log, i;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    unsigned f;

    if (x == NULL || y == NULL) {
        T_CHECK(0, "out of memory");
        free(x); free(y);
        return;
    }
    for (i = 0; i < n_lin; i++)
        x[i] = (float)(-100.0 + 1e-4 * (double)i);
    for (i = 0; i < n_log / 2; i++) {
        float v = (float)pow(10.0, -30.0 + 60.0 * (double)i / (n_log / 2));

        x[n_lin + 2 * i] = v;
        x[n_lin + 2 * i + 1] = -v;
    }
    for (f = 0; f < 4; f++) {
        double worst = 0.0, worst_x = 0.0, abs_worst = 0.0, lib_worst = 0.0;

        memcpy(y, x, n * sizeof(float));
        fns[f].vec(y, n);
        for (i = 0; i < n; i++) {
            double r = fns[f].ref((double)x[i]);
            float rf = (float)r;
            double u;

            if (fabs(r) < FLT_MIN) {        /* subnormal result: absolute */
                double a = fabs((double)y[i] - r);

                if (a > abs_worst)
                    abs_worst = a;
                continue;
            }
            u = isnan(y[i]) ? 1e9 : ulp_dist(y[i], rf);
            if (u > worst) {
                worst = u;
                worst_x = x[i];
            }
            u = ulp_dist(fns[f].lib(x[i]), rf);     /* libm float, for scale */
            if (u > lib_worst)
                lib_worst = u;
        }
        T_CHECK(worst <= 4.0, "%s %s: %.0f ulp at x=%.9g", isa, fns[f].name,
                worst, worst_x);
        T_CHECK(abs_worst <= 4 * 1.4013e-45, "%s %s: subnormal error %.3g",
                isa, fns[f].name, abs_worst);
        T_NOTE("%-10s %-8s max error %.0f ulp (at x=%.7g) over %zu points in "
               "[-100,100] and +-[1e-30,1e30] (libm float: %.0f ulp); "
               "subnormal results abs err %.2g", isa, fns[f].name, worst,
               worst_x, n, lib_worst, abs_worst);
    }
    free(x);
    free(y);
}

/* The exported, dispatched functions (the clone the loader picked). */
static void test_vmath_accuracy(void)
{
    static const vfun fns[] = {
        { "exp", ad_vexp, d_exp, f_exp },
        { "sigmoid", ad_vsigmoid, d_sig, f_sig },
        { "tanh", ad_vtanh, d_tanh, f_tanh },
        { "relu", ad_vrelu, d_relu, f_relu },
    };

    vmath_accuracy(fns, "dispatched");
}

/*
 * Every ISA variant, whichever the loader picks on this machine: the same
 * inline math (vmath.h) compiled here for AVX-512, AVX2+FMA and baseline
 * x86-64, as the target_clones of vmath.c are, so a machine without
 * AVX-512 runs tested code too (FMA contraction differs between them).
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#ifdef __SANITIZE_ADDRESS__
#define ISA_FN(isa) __attribute__((target(isa), noinline))
#else
#define ISA_FN(isa) __attribute__((target(isa), noinline, \
        optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
#define DEF_ISA(sfx, isa)                                                   \
    ISA_FN(isa) static void exp_##sfx(float *x, size_t n)                   \
    { size_t i; for (i = 0; i < n; i++) x[i] = ad_vm_exp(x[i]); }          \
    ISA_FN(isa) static void sig_##sfx(float *x, size_t n)                   \
    { size_t i; for (i = 0; i < n; i++) x[i] = ad_vm_sigmoid(x[i]); }      \
    ISA_FN(isa) static void tanh_##sfx(float *x, size_t n)                  \
    { size_t i; for (i = 0; i < n; i++) x[i] = ad_vm_tanh(x[i]); }         \
    ISA_FN(isa) static void relu_##sfx(float *x, size_t n)                  \
    { size_t i; for (i = 0; i < n; i++) x[i] = ad_vm_relu(x[i]); }
DEF_ISA(v4, "arch=x86-64-v4")
DEF_ISA(v3, "arch=x86-64-v3")
DEF_ISA(base, "arch=x86-64")

static void test_vmath_accuracy_each_isa(void)
{
    static const vfun v4[] = {
        { "exp", exp_v4, d_exp, f_exp }, { "sigmoid", sig_v4, d_sig, f_sig },
        { "tanh", tanh_v4, d_tanh, f_tanh }, { "relu", relu_v4, d_relu, f_relu },
    };
    static const vfun v3[] = {
        { "exp", exp_v3, d_exp, f_exp }, { "sigmoid", sig_v3, d_sig, f_sig },
        { "tanh", tanh_v3, d_tanh, f_tanh }, { "relu", relu_v3, d_relu, f_relu },
    };
    static const vfun base[] = {
        { "exp", exp_base, d_exp, f_exp },
        { "sigmoid", sig_base, d_sig, f_sig },
        { "tanh", tanh_base, d_tanh, f_tanh },
        { "relu", relu_base, d_relu, f_relu },
    };

    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        vmath_accuracy(v4, "x86-64-v4");
    else
        T_NOTE("no AVX-512: x86-64-v4 variant not run");
    if (__builtin_cpu_supports("x86-64-v3"))
        vmath_accuracy(v3, "x86-64-v3");
    else
        T_NOTE("no AVX2/FMA: x86-64-v3 variant not run");
    vmath_accuracy(base, "x86-64");
}
#else
static void test_vmath_accuracy_each_isa(void)
{
    T_NOTE("not x86-64 GCC: no ISA variants to test");
}
#endif

static void test_vmath_specials(void)
{
    /* every length 1..40 so vector bodies and scalar tails are both hit */
    float in[] = { 0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 88.7f, 89.0f,
                   -87.0f, -104.5f, 1e-40f, -1e-40f };
    const int n = (int)(sizeof(in) / sizeof(in[0]));
    float a[40], b[40];
    int len, k, bad = 0;

    for (len = 1; len <= 40; len++) {
        for (k = 0; k < len; k++)
            a[k] = in[k % n];
        memcpy(b, a, sizeof a);
        ad_vsigmoid(a, (size_t)len);
        ad_vtanh(b, (size_t)len);
        for (k = 0; k < len; k++) {
            float v = in[k % n], s = a[k], t = b[k];

            if (isnan(v)) {
                bad += !isnan(s) || !isnan(t);
            } else if (isinf(v)) {
                bad += s != (v > 0 ? 1.0f : 0.0f);
                bad += t != (v > 0 ? 1.0f : -1.0f);
            } else if (v == 0.0f) {
                bad += s != 0.5f || t != 0.0f || signbit(t) != signbit(v);
            }
        }
    }
    T_CHECK(bad == 0, "%d special values wrong", bad);
    a[0] = NAN; a[1] = INFINITY; a[2] = -INFINITY; a[3] = 0.0f; a[4] = 89.0f;
    a[5] = -105.0f;
    ad_vexp(a, 6);
    T_CHECK(isnan(a[0]) && a[1] == INFINITY && a[2] == 0.0f && a[3] == 1.0f &&
            a[4] == INFINITY && a[5] == 0.0f,
            "exp specials: %g %g %g %g %g %g", a[0], a[1], a[2], a[3], a[4],
            a[5]);
    a[0] = NAN; a[1] = -1.0f; a[2] = 2.0f; a[3] = -0.0f; a[4] = -INFINITY;
    ad_vrelu(a, 5);
    T_CHECK(isnan(a[0]) && a[1] == 0.0f && a[2] == 2.0f && a[3] == 0.0f &&
            a[4] == 0.0f, "relu specials: %g %g %g %g %g", a[0], a[1], a[2],
            a[3], a[4]);
    T_NOTE("sigmoid/tanh: +-0 -> 0.5/+-0, +-inf -> 1,0/+-1, NaN -> NaN for "
           "lengths 1..40; exp(NaN,inf,-inf,0,89,-105) and relu specials");
}

/* ---- reconstruction error ---- */
static void test_recon_error_by_hand(void)
{
    /* x = [[1,2],[3,4]], y = [[0,0],[3,4]]: differences 1, 2, 0, 0 */
    const float x[4] = { 1, 2, 3, 4 }, y[4] = { 0, 0, 3, 4 };
    float mse = -1, mae = -1, sh[2] = { -1, -1 };

    ad_recon_error(x, y, 2, 2, AD_METRIC_MSE, &mse, &mae, sh);
    T_CHECK(fabsf(mse - 1.25f) < 1e-7f, "mse %g, expected 5/4", mse);
    T_CHECK(fabsf(mae - 0.75f) < 1e-7f, "mae %g, expected 3/4", mae);
    T_CHECK(fabsf(sh[0] - 0.2f) < 1e-7f && fabsf(sh[1] - 0.8f) < 1e-7f,
            "mse shares %g %g, expected 1/5 4/5", sh[0], sh[1]);
    ad_recon_error(x, y, 2, 2, AD_METRIC_MAE, NULL, NULL, sh);
    T_CHECK(fabsf(sh[0] - 1.0f / 3) < 1e-7f && fabsf(sh[1] - 2.0f / 3) < 1e-7f,
            "mae shares %g %g, expected 1/3 2/3", sh[0], sh[1]);
    ad_recon_error(x, x, 2, 2, AD_METRIC_MSE, &mse, &mae, sh);
    T_CHECK(mse == 0 && mae == 0 && sh[0] == 0 && sh[1] == 0,
            "perfect: mse %g mae %g shares %g %g", mse, mae, sh[0], sh[1]);
    T_NOTE("x=[[1,2],[3,4]] y=[[0,0],[3,4]]: mse 5/4, mae 3/4, shares mse "
           "1/5,4/5 mae 1/3,2/3; x=y gives 0 and shares 0");
}

static void test_recon_error_nan_and_share(void)
{
    float x[60], y[60], mse, mae, sh[6], s;
    int i, m;

    rng_seed(77);
    for (i = 0; i < 60; i++) {
        x[i] = rng_normal();
        y[i] = rng_normal();
    }
    for (m = 0; m < 2; m++) {
        ad_recon_error(x, y, 10, 6, (ad_metric)m, &mse, &mae, sh);
        for (s = 0, i = 0; i < 6; i++)
            s += sh[i];
        T_CHECK(fabsf(s - 1.0f) < 1e-6f, "metric %d: shares sum to %.9g", m, s);
    }
    y[17] = NAN;
    ad_recon_error(x, y, 10, 6, AD_METRIC_MAE, &mse, &mae, sh);
    T_CHECK(isnan(mse) && isnan(mae), "NaN in: mse %g mae %g", mse, mae);
    for (i = 0; i < 6; i++)
        T_CHECK(isnan(sh[i]), "NaN in: share[%d] = %g", i, sh[i]);
    T_NOTE("random (10,6) window: shares sum to 1 (mse and mae); one NaN -> "
           "mse, mae and all shares NaN");
}

/* peak: the worst row's mean absolute error, against a brute-force
 * reference; its shares are that row's; a one-row spike is not diluted. */
static void test_recon_score_peak(void)
{
    float x[60], y[60], sh[6], s, p, mae;
    double best = 0, r;
    int i, t, f, at = 0;

    rng_seed(78);
    for (i = 0; i < 60; i++) {
        x[i] = rng_normal();
        y[i] = x[i] + 0.1f * rng_normal();
    }
    for (t = 0; t < 10; t++) {
        for (r = 0, f = 0; f < 6; f++)
            r += fabs((double)x[t * 6 + f] - (double)y[t * 6 + f]);
        if (r / 6 > best) {
            best = r / 6;
            at = t;
        }
    }
    p = ad_recon_score(x, y, 10, 6, AD_METRIC_PEAK, sh);
    T_CHECK(fabs(p - best) < 1e-6 * best, "peak %.9g, reference %.9g", p, best);
    for (s = 0, f = 0; f < 6; f++) {
        s += sh[f];
        T_CHECK(fabs(sh[f] - fabs((double)x[at * 6 + f] - y[at * 6 + f]) / (6 * best)) < 1e-6,
                "peak share[%d] %g is not row %d's", f, sh[f], at);
    }
    T_CHECK(fabsf(s - 1.0f) < 1e-6f, "peak shares sum to %.9g", s);
    mae = ad_recon_score(x, y, 10, 6, AD_METRIC_MAE, NULL);
    T_CHECK(mae < p, "mae %g not below peak %g", mae, p);
    /* one feature of row 4 off by 60: peak rises by ~10, the mae by ~1 */
    y[4 * 6 + 2] = x[4 * 6 + 2] + 60.0f;
    p = ad_recon_score(x, y, 10, 6, AD_METRIC_PEAK, sh);
    s = ad_recon_score(x, y, 10, 6, AD_METRIC_MAE, NULL);
    T_CHECK(p > 10.0f && s < 1.2f && sh[2] > 0.95f,
            "spike: peak %g (> 10), mae %g (< 1.2), share of feature 2 %g", p, s, sh[2]);
    T_CHECK(ad_recon_score(x, x, 10, 6, AD_METRIC_PEAK, sh) == 0 && sh[0] == 0,
            "perfect window: peak and shares 0");
    sh[0] = sh[5] = -1;
    T_CHECK(ad_recon_score(x, y, 0, 6, AD_METRIC_PEAK, sh) == 0 && sh[0] == 0 && sh[5] == 0,
            "no row: peak 0, shares 0 (nothing read)");
    y[59] = NAN;
    p = ad_recon_score(x, y, 10, 6, AD_METRIC_PEAK, sh);
    T_CHECK(isnan(p) && isnan(sh[0]) && isnan(sh[5]), "NaN in the last row: peak %g share %g",
            p, sh[0]);
    T_NOTE("random (10,6) window: peak = brute-force worst row's MAE, shares that row's; "
           "a 60 spike in one element: peak > 10, mae < 1.2; NaN -> NaN");
}

static void test_flops(void)
{
    ad_model *m = make_model(&cases[0], 1);
    double f = m ? ad_model_flops(m) : 0;
    /* per step: 2*(1*256 + 64*256) + 2*(64*128 + 32*128)
     *         + 2*(32*256 + 64*256) + 2*64*1, times 100 steps */
    double want = 100.0 * (2 * (256 + 64 * 256) + 2 * (64 * 128 + 32 * 128) +
                           2 * (32 * 256 + 64 * 256) + 2 * 64);

    T_CHECK(f == want, "seed model flops %.0f, expected %.0f", f, want);
    T_NOTE("seed model: %.0f flops per window", f);
    ad_model_free(m);
}

int main(void)
{
    openblas_set_num_threads(1);
    T_RUN(test_vmath_accuracy);
    T_RUN(test_vmath_accuracy_each_isa);
    T_RUN(test_vmath_specials);
    T_RUN(test_engine_vs_ref_avx512);
    T_RUN(test_engine_vs_ref_openblas);
    T_RUN(test_saturated_gates);
    T_RUN(test_no_cross_talk);
    T_RUN(test_nan_propagates);
    T_RUN(test_engine_args);
    T_RUN(test_recon_error_by_hand);
    T_RUN(test_recon_error_nan_and_share);
    T_RUN(test_recon_score_peak);
    T_RUN(test_flops);
    return t_done();
}
