/*
 * bench_engine.c - inference throughput of the engine against PyTorch, in
 * the same run, one thread each.
 *
 * Models (random weights, uniform +-0.5; inputs N(0,1)):
 *   seed    T=100 F=1: LSTM(64,seq) > LSTM(32,seq) > LSTM(64,seq) > TD(Dense(1))
 *   encdec  T=10 F=8:  LSTM(100) > RepeatVector(10) > LSTM(100,seq) > TD(Dense(8))
 * at batch sizes 1, 16, 256, plus the scalar reference (ad_forward_ref) at
 * batch 1 for scale. PyTorch figures come from bench/torch_infer.py (run via
 * $PYTHON, torch.set_num_threads(1), inference_mode, nn.LSTM stack), started
 * from here between two rounds of C measurements. Every figure is the best
 * of short repetitions (the machine's cores are shared), C the better of its
 * two rounds. GFLOP/s use
 * ad_model_flops() (the matrix products of the architecture as written) and
 * are shown beside this core's fp32 peak, measured here with a
 * register-blocked FMA loop (AVX-512 if the CPU has it, and AVX2+FMA, which
 * is what this OpenBLAS build's Haswell sgemm kernel can reach at best).
 *
 * The engine is measured as shipped (AVX-512 product kernels on CPUs that
 * have them) and with every product through OpenBLAS (last column).
 *
 *   build/bench/bench_engine          (OPENBLAS_NUM_THREADS=1 is forced)
 *   BENCH_NO_TORCH=1 build/bench/bench_engine    C figures only
 */
#include "engine.h"
#include "model.h"
#include "ad.h"
#include "vmath.h"      /* ad_engine_use_avx512_ */

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- fp32 peak: 12 independent FMA chains, 2 FMA pipes x latency 4-6 ---- */
#define NACC 12
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

__attribute__((target("avx512f"), noinline))
static float peak_avx512(long iters)
{
    v16 a[NACC], m, d;
    float s = 0;
    int k, i;
    long it;

    for (i = 0; i < 16; i++) {
        m[i] = 0.99999f;
        d[i] = 1e-5f;
    }
    for (k = 0; k < NACC; k++)
        for (i = 0; i < 16; i++)
            a[k][i] = (float)k + (float)i * 1e-3f;
    for (it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (k = 0; k < NACC; k++)
            a[k] = a[k] * m + d;
    }
    for (k = 0; k < NACC; k++)
        for (i = 0; i < 16; i++)
            s += a[k][i];
    return s;
}

__attribute__((target("avx2,fma"), noinline))
static float peak_avx2(long iters)
{
    v8 a[NACC], m, d;
    float s = 0;
    int k, i;
    long it;

    for (i = 0; i < 8; i++) {
        m[i] = 0.99999f;
        d[i] = 1e-5f;
    }
    for (k = 0; k < NACC; k++)
        for (i = 0; i < 8; i++)
            a[k][i] = (float)k + (float)i * 1e-3f;
    for (it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (k = 0; k < NACC; k++)
            a[k] = a[k] * m + d;
    }
    for (k = 0; k < NACC; k++)
        for (i = 0; i < 8; i++)
            s += a[k][i];
    return s;
}

static volatile float sink;

static double measure_peak(int avx512)
{
    const long iters = 2000000;
    double best = 1e30;
    int r;

    for (r = 0; r < 25; r++) {
        double t0 = now(), t;

        sink = avx512 ? peak_avx512(iters) : peak_avx2(iters);
        t = now() - t0;
        if (t < best)
            best = t;
    }
    return (double)iters * NACC * (avx512 ? 16 : 8) * 2 / best * 1e-9;
}

/* ---- models ---- */
static uint64_t rng = 0x243F6A8885A308D3ull;

static double u01(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static float normal(void)
{
    double a = u01(), b = u01();

    if (a < 1e-300)
        a = 1e-300;
    return (float)(sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b));
}

typedef struct {
    const char *name;
    int T, F, n;
    ad_layer_spec L[4];
} bench_model;

static const bench_model models[] = {
    { "seed", 100, 1, 4,
      { { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 }, { AD_LAYER_LSTM, 32, AD_ACT_TANH, 1 },
        { AD_LAYER_LSTM, 64, AD_ACT_TANH, 1 },
        { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } } },
    { "encdec", 10, 8, 4,
      { { AD_LAYER_LSTM, 100, AD_ACT_TANH, 0 },
        { AD_LAYER_REPEAT_VECTOR, 10, AD_ACT_LINEAR, 0 },
        { AD_LAYER_LSTM, 100, AD_ACT_TANH, 1 },
        { AD_LAYER_TD_DENSE, 8, AD_ACT_LINEAR, 0 } } },
};
#define N_MODELS 2
static const int batches[] = { 1, 16, 256 };
#define N_BATCH 3

/*
 * windows/s of the engine: repetitions of `calls` forward passes (enough for
 * ~20 ms, at least one call) until `budget` seconds are spent (at least 3),
 * and the best repetition counts. The cores are shared with other work, so
 * the best short run is the figure closest to what the code can do.
 */
static double time_engine(ad_engine *e, const float *x, float *y, int B,
                          double budget)
{
    double best = 0.0, t0, t, start = now();
    long calls = 1, c;
    int r;

    t0 = now();
    ad_engine_forward(e, x, y, B);      /* warm-up and calibration */
    t = now() - t0;
    if (t > 0 && t < 0.02)
        calls = (long)(0.02 / t) + 1;
    for (r = 0; r < 3 || now() - start < budget; r++) {
        t0 = now();
        for (c = 0; c < calls; c++)
            ad_engine_forward(e, x, y, B);
        t = now() - t0;
        if ((double)calls * B / t > best)
            best = (double)calls * B / t;
    }
    return best;
}

static double time_ref(const ad_model *m, const float *x, float *y, int reps)
{
    double best = 0.0, t0, t;
    int r;

    for (r = 0; r < reps; r++) {
        t0 = now();
        ad_forward_ref(m, x, y, 1);
        t = now() - t0;
        if (1.0 / t > best)
            best = 1.0 / t;
    }
    return best;
}

/* ad_model_flops() minus what the engine skips: after a repeat_vector the
 * LSTM input rows are equal, so their product is computed once. */
static double executed_flops(const ad_model *m)
{
    double fl = ad_model_flops(m);
    int i;

    for (i = 1; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];

        if (L->spec.type == AD_LAYER_LSTM &&
            m->layers[i - 1].spec.type == AD_LAYER_REPEAT_VECTOR)
            fl -= (L->in_t - 1) * 2.0 * L->in_d * 4.0 * L->spec.units;
    }
    return fl;
}

/* Run torch_infer.py and read lines "model B windows_per_s". */
static int run_torch(double torch_wps[N_MODELS][N_BATCH], char *ver, size_t vlen)
{
    const char *py = getenv("PYTHON"), *src = getenv("AD_SRCDIR");
    char cmd[1024], line[256], name[64];
    FILE *p;
    int got = 0, B, i, j;
    double w;

    if (py == NULL || *py == '\0')
        py = "/usr/bin/python3";
    if (src == NULL || *src == '\0')
        src = ".";
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 '%s' '%s/bench/torch_infer.py'",
             py, src);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (fgets(line, sizeof line, p) != NULL) {
        if (sscanf(line, "torch %63s", ver) == 1 && strncmp(line, "torch ", 6) == 0) {
            ver[vlen - 1] = '\0';
            continue;
        }
        if (sscanf(line, "%63s %d %lf", name, &B, &w) != 3)
            continue;
        for (i = 0; i < N_MODELS; i++)
            for (j = 0; j < N_BATCH; j++)
                if (strcmp(name, models[i].name) == 0 && B == batches[j]) {
                    torch_wps[i][j] = w;
                    got++;
                }
    }
    if (pclose(p) != 0 && got == 0)
        return -1;
    return got;
}

typedef struct {
    double c[N_BATCH], blas[N_BATCH], ref, fl, fx;
} model_result;

/* Measure one model: engine at every batch size (both back-ends), scalar
 * reference at batch 1. Returns 0 or -1. */
static int bench_model_run(const bench_model *bm, model_result *res,
                           int *has_k512)
{
    ad_model *m = NULL;
    ad_engine *e = NULL;
    char err[256];
    size_t n = (size_t)256 * bm->T * bm->F, k;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    int j, rc = -1;

    if (x == NULL || y == NULL ||
        ad_model_create(&m, bm->T, bm->F, bm->L, bm->n, err, sizeof err) != 0) {
        fprintf(stderr, "bench_engine: cannot build model %s\n", bm->name);
        goto done;
    }
    for (k = 0; k < m->n_params; k++)
        m->params[k] = (float)(u01() - 0.5);
    for (k = 0; k < n; k++)
        x[k] = normal();
    e = ad_engine_new(m, 256);
    if (e == NULL) {
        fprintf(stderr, "bench_engine: ad_engine_new failed\n");
        goto done;
    }
    *has_k512 = ad_engine_use_avx512_(e, 1);
    res->fl = ad_model_flops(m);
    res->fx = executed_flops(m);
    for (j = 0; j < N_BATCH; j++) {
        ad_engine_use_avx512_(e, 1);
        res->c[j] = time_engine(e, x, y, batches[j], 1.0);
        res->blas[j] = 0.0;
        if (*has_k512) {
            ad_engine_use_avx512_(e, 0);
            res->blas[j] = time_engine(e, x, y, batches[j], 0.5);
        }
    }
    res->ref = time_ref(m, x, y, 5);
    rc = 0;
done:
    ad_engine_free(e);
    ad_model_free(m);
    free(x);
    free(y);
    return rc;
}

int main(void)
{
    double torch_wps[N_MODELS][N_BATCH] = { { 0 } };
    model_result res[N_MODELS];
    double peak512 = 0.0, peak256, peak, t_start = now();
    char tver[64] = "?";
    int have_torch = 0, has_k512 = 0, avx512, i, j;
    const char *no_torch = getenv("BENCH_NO_TORCH");

    openblas_set_num_threads(1);
    printf("anomalyd engine benchmark: 1 thread, %s (core %s)\n",
           openblas_get_config(), openblas_get_corename());
    __builtin_cpu_init();
    avx512 = __builtin_cpu_supports("avx512f") != 0;
    if (avx512)
        peak512 = measure_peak(1);
    peak256 = measure_peak(0);
    /* C, then PyTorch, then C again keeping the better figure: the load
     * of whoever shares these cores changes over the run, and this way
     * both sides had the same chances. */
    for (i = 0; i < N_MODELS; i++)
        if (bench_model_run(&models[i], &res[i], &has_k512) < 0)
            return 1;
    if (no_torch == NULL || *no_torch == '\0') {
        have_torch = run_torch(torch_wps, tver, sizeof tver) > 0;
        if (!have_torch)
            printf("PyTorch reference unavailable (bench/torch_infer.py "
                   "failed); C figures only\n");
    }
    for (i = 0; i < N_MODELS; i++) {
        model_result again;

        if (bench_model_run(&models[i], &again, &has_k512) < 0)
            return 1;
        for (j = 0; j < N_BATCH; j++) {
            if (again.c[j] > res[i].c[j])
                res[i].c[j] = again.c[j];
            if (again.blas[j] > res[i].blas[j])
                res[i].blas[j] = again.blas[j];
        }
        if (again.ref > res[i].ref)
            res[i].ref = again.ref;
    }
    /* the peak again after the run, keep the better: the clock and the
     * neighbours' load vary */
    if (avx512) {
        double p2 = measure_peak(1);

        if (p2 > peak512)
            peak512 = p2;
    }
    peak = avx512 ? peak512 : peak256;
    printf("fp32 peak of this core (FMA loop, best before/after): AVX-512 "
           "%.1f GFLOP/s, AVX2+FMA %.1f GFLOP/s\n", peak512, peak256);
    if (have_torch)
        printf("PyTorch %s, torch.set_num_threads(1), inference_mode\n", tver);
    printf("\n%-7s %5s %10s %10s %8s %9s %6s %12s\n", "model", "batch",
           "C win/s", "torch", "C/torch", "C GFLOP/s", "%peak",
           "C(OpenBLAS)");
    for (i = 0; i < N_MODELS; i++) {
        const model_result *r = &res[i];

        for (j = 0; j < N_BATCH; j++) {
            double w = r->c[j], tw = torch_wps[i][j];

            printf("%-7s %5d %10.0f ", models[i].name, batches[j], w);
            if (tw > 0)
                printf("%10.0f %7.1fx ", tw, w / tw);
            else
                printf("%10s %8s ", "-", "-");
            printf("%9.1f %5.0f%% ", w * r->fl * 1e-9,
                   100.0 * w * r->fx * 1e-9 / peak);
            if (has_k512)
                printf("%12.0f\n", r->blas[j]);
            else
                printf("%12s\n", "(same)");
        }
        printf("%-7s %5d %10.0f %10s %8s %9.2f  (scalar reference "
               "ad_forward_ref)\n", models[i].name, 1, r->ref, "", "",
               r->ref * r->fl * 1e-9);
        printf("%-7s %.2f MFLOP per window (ad_model_flops)", models[i].name,
               r->fl * 1e-6);
        if (r->fx < r->fl)
            printf("; the engine executes %.2f (input product of an LSTM "
                   "after RepeatVector once per window, not per step)",
                   r->fx * 1e-6);
        printf("\n");
    }
    printf("\nC win/s: the engine as shipped (AVX-512 product kernels when "
           "the CPU has them);\nC(OpenBLAS): the same engine with every "
           "product through OpenBLAS.\nGFLOP/s: ad_model_flops() per window x "
           "windows/s; %%peak: the flops the engine executes\nagainst the %s "
           "FMA peak. bench time %.1f s\n", avx512 ? "AVX-512" : "AVX2",
           now() - t_start);
    return 0;
}
