/*
 * test_threshold.c - every threshold method against values known
 * independently of the code: hand-computed quantiles and moments, POT on
 * exponential and generalized Pareto samples whose tail quantiles are known
 * in closed form, the model-metadata method, adaptation (and freezing) and
 * save/restore.
 */
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "ad.h"
#include "threshold.h"

/* xorshift64* uniform in (0,1): deterministic test data. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double unif(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return ((double)((rng * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
}

static ad_threshold *mk(ad_thr_cfg *c)
{
    ad_threshold *t = NULL;
    char err[200];

    if (ad_threshold_new(&t, c, err, sizeof(err)) != 0)
        fprintf(stderr, "threshold_new: %s\n", err);
    return t;
}

/* ad_quantile_top against ad_quantile on the whole sample: equal while the
 * quantile lies among the highest m values, their lowest (an upper bound)
 * below them. Sizes 1..600, q 0.9..1, m 16. */
static void test_quantile_top(void)
{
    enum { N = 600, M = 16 };
    static double v[N], all[N], top[M];
    uint64_t z = 88172645463325252ull;
    int n, bad = 0, exact = 0, bounded = 0;
    double q;

    for (n = 1; n <= N; n += (n < 40 ? 1 : 37)) {
        for (q = 0.9; q <= 1.0 + 1e-12; q += 0.0125) {
            int i, j, m = n < M ? n : M;
            double want, got, lim;

            for (i = 0; i < n; i++) {
                z ^= z << 13, z ^= z >> 7, z ^= z << 17;
                v[i] = (double)(z >> 11) / 9007199254740992.0;
            }
            memcpy(all, v, n * sizeof(double));
            /* the m highest, descending (insertion as the detector keeps them) */
            for (i = 0; i < m; i++)
                top[i] = -1;
            for (i = 0; i < n; i++)
                for (j = 0; j < m; j++)
                    if (v[i] > top[j]) {
                        memmove(top + j + 1, top + j, (m - j - 1) * sizeof(double));
                        top[j] = v[i];
                        break;
                    }
            want = ad_quantile(all, (size_t)n, q > 1 ? 1 : q);
            got = ad_quantile_top(top, (size_t)m, (uint64_t)n, q > 1 ? 1 : q);
            lim = top[m - 1];
            if ((1 - (q > 1 ? 1 : q)) * (n - 1) < m - 1) {
                exact++;
                bad += !(fabs(got - want) < 1e-12);
            } else {
                bounded++;
                bad += !(got == lim && got >= want);
            }
        }
    }
    T_CHECK(bad == 0 && exact > 100 && bounded > 20,
            "%d mismatches (%d exact cases, %d bounded)", bad, exact, bounded);
    T_CHECK(isnan(ad_quantile_top(top, 0, 5, 0.99)) && isnan(ad_quantile_top(top, 3, 0, 0.99)),
            "empty: NAN");
}

static void test_quantile_method(void)
{
    ad_thr_cfg c;
    ad_threshold *t;
    double v[5] = { 5, 1, 4, 2, 3 };
    char err[200];
    int i;

    /* numpy: np.quantile([1..5], 0.3) = 2.2, 0.5 = 3, 1.0 = 5 */
    T_CHECK(fabs(ad_quantile(v, 5, 0.3) - 2.2) < 1e-12, "q0.3 %g", ad_quantile(v, 5, 0.3));
    T_CHECK(fabs(ad_quantile(v, 5, 0.5) - 3) < 1e-12, "median");
    T_CHECK(fabs(ad_quantile(v, 5, 1.0) - 5) < 1e-12, "max");
    ad_thr_cfg_default(&c);
    c.q = 0.99;
    c.margin = 1.5;
    t = mk(&c);
    for (i = 100; i >= 1; i--)
        ad_threshold_add(t, i);
    T_CHECK(ad_threshold_add(t, NAN) == AD_ENONFINITE, "NaN refused");
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == 0, "fit: %s", err);
    /* np.quantile(1..100, .99) = 99.01; x 1.5 */
    T_CHECK(fabs(ad_threshold_value(t) - 1.5 * 99.01) < 1e-9, "1.5 x q99 = %.6f",
            ad_threshold_value(t));
    ad_threshold_free(t);

    c.min_samples = 10;
    t = mk(&c);
    for (i = 0; i < 5; i++)
        ad_threshold_add(t, i);
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == AD_ERANGE, "too few scores refused");
    T_CHECK(!ad_threshold_fitted(t) && isnan(ad_threshold_value(t)), "not fitted");
    T_NOTE("%s", err);
    ad_threshold_free(t);
}

static void test_sigma_method(void)
{
    ad_thr_cfg c;
    ad_threshold *t;
    double d[8] = { 2, 4, 4, 4, 5, 5, 7, 9 };   /* mean 5, population std 2 */
    char err[200];
    int i;

    ad_thr_cfg_default(&c);
    c.method = AD_THR_SIGMA;
    c.k = 3;
    c.min_samples = 8;
    t = mk(&c);
    for (i = 0; i < 8; i++)
        ad_threshold_add(t, d[i]);
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == 0, "fit %s", err);
    T_CHECK(fabs(ad_threshold_value(t) - 11.0) < 1e-12, "mean + 3 std = 11, got %.12g",
            ad_threshold_value(t));
    ad_threshold_free(t);
}

static void test_pot_exponential(void)
{
    ad_thr_cfg c;
    ad_threshold *t;
    char err[200];
    double init, g, s, want = -log(1e-3);
    uint64_t np, n;
    int i;

    ad_thr_cfg_default(&c);
    c.method = AD_THR_POT;
    c.pot_risk = 1e-3;
    c.pot_init = 0.98;
    c.max_samples = 20000;
    t = mk(&c);
    for (i = 0; i < 20000; i++)
        ad_threshold_add(t, -log(unif()));
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == 0, "fit %s", err);
    ad_threshold_pot_info(t, &init, &g, &s, &np, &n);
    T_NOTE("Exp(1): init %.3f (true %.3f) gamma %.3f sigma %.3f peaks %llu, z %.3f, true 1e-3 "
           "quantile %.3f", init, -log(0.02), g, s, (unsigned long long)np,
           ad_threshold_value(t), want);
    T_CHECK(fabs(g) < 0.15, "exponential tail: gamma %.3f near 0", g);
    T_CHECK(fabs(s - 1) < 0.2, "scale %.3f near 1", s);
    /* 400 peaks extrapolated to 1e-3: sampling error ~ +-10% */
    T_CHECK(fabs(ad_threshold_value(t) - want) / want < 0.12, "z_q %.3f vs %.3f",
            ad_threshold_value(t), want);
    ad_threshold_free(t);
}

static void test_pot_pareto(void)
{
    /* GPD(gamma=0.5, sigma=1): X = (U^-0.5 - 1)/0.5; P(X > x) = (1+0.5x)^-2.
     * The 1e-4 risk quantile is 2*(1e-4^-0.5 - 1) = 198. */
    ad_thr_cfg c;
    ad_threshold *t;
    char err[200];
    double g, s, want = 2 * (pow(1e-4, -0.5) - 1), y[4000];
    uint64_t np;
    int i, rc;

    for (i = 0; i < 4000; i++)
        y[i] = (pow(unif(), -0.5) - 1) / 0.5;
    rc = ad_gpd_fit(y, 4000, &g, &s);
    T_CHECK(rc == 0 && fabs(g - 0.5) < 0.1 && fabs(s - 1) < 0.15,
            "Grimshaw on GPD(0.5,1) samples: gamma %.3f sigma %.3f", g, s);

    ad_thr_cfg_default(&c);
    c.method = AD_THR_POT;
    c.pot_risk = 1e-4;
    c.pot_init = 0.95;
    c.max_samples = 50000;
    t = mk(&c);
    for (i = 0; i < 50000; i++)
        ad_threshold_add(t, (pow(unif(), -0.5) - 1) / 0.5);
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == 0, "fit %s", err);
    ad_threshold_pot_info(t, NULL, &g, &s, &np, NULL);
    T_NOTE("GPD(0.5): gamma %.3f sigma %.3f peaks %llu z %.2f true %.2f", g, s,
           (unsigned long long)np, ad_threshold_value(t), want);
    T_CHECK(fabs(ad_threshold_value(t) - want) / want < 0.25, "z_q %.2f vs %.2f",
            ad_threshold_value(t), want);
    /* the empirical quantile cannot even reach it: max of 50000 samples */
    ad_threshold_free(t);

    /* gamma ~ 0 branch of the formula equals the limit of the general one */
    T_CHECK(fabs(ad_pot_quantile(1, 0, 2, 0.01, 1000, 100) -
                 ad_pot_quantile(1, 1e-7, 2, 0.01, 1000, 100)) < 1e-5,
            "gamma->0 continuity");
    T_CHECK(fabs(ad_pot_quantile(1, 0, 2, 0.01, 1000, 100) - (1 - 2 * log(0.1))) < 1e-12,
            "exponential z = t - sigma ln(q n/Nt)");
}

static void test_fixed_and_model(void)
{
    ad_thr_cfg c;
    ad_threshold *t;
    char err[200];

    ad_thr_cfg_default(&c);
    c.method = AD_THR_FIXED;
    c.fixed = 0.25;
    t = mk(&c);
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == 0 && ad_threshold_value(t) == 0.25,
            "fixed needs no scores");
    ad_threshold_free(t);

    ad_thr_cfg_default(&c);
    c.method = AD_THR_MODEL;
    c.margin = 1.5;
    t = mk(&c);
    T_CHECK(ad_threshold_fit(t, "{\"error\":{\"metric\":\"mae\",\"q95\":0.1}}", err,
                             sizeof(err)) == AD_EFORMAT, "missing q99 refused");
    T_NOTE("%s", err);
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == AD_EFORMAT, "no metadata refused");
    T_CHECK(ad_threshold_fit(t, "{\"error\":{\"metric\":\"mae\",\"q99\":0.2}}", err,
                             sizeof(err)) == 0 && fabs(ad_threshold_value(t) - 0.3) < 1e-12,
            "model q99 x 1.5 = 0.3, got %g", ad_threshold_value(t));
    ad_threshold_free(t);
}

static void test_adaptation_and_freeze(void)
{
    ad_thr_cfg c;
    ad_threshold *t;
    char err[200];
    double v0, v1, v2;
    int i;

    ad_thr_cfg_default(&c);
    c.method = AD_THR_SIGMA;
    c.k = 2;
    c.adapt = 1;
    t = mk(&c);
    for (i = 0; i < 100; i++)
        ad_threshold_add(t, 1.0 + 0.1 * (i % 2));
    ad_threshold_fit(t, NULL, err, sizeof(err));
    v0 = ad_threshold_value(t);
    for (i = 0; i < 100; i++)
        ad_threshold_adapt(t, 2.0 + 0.1 * (i % 2));   /* normal level moved up */
    v1 = ad_threshold_value(t);
    T_CHECK(v1 > v0 + 0.3, "threshold followed the normal level: %g -> %g", v0, v1);
    ad_threshold_freeze(t, 1);
    for (i = 0; i < 100; i++)
        ad_threshold_adapt(t, 5.0);
    v2 = ad_threshold_value(t);
    T_CHECK(v2 == v1, "frozen threshold unchanged: %g vs %g", v2, v1);
    ad_threshold_free(t);

    /* quantile method adapts over its bounded sample window */
    ad_thr_cfg_default(&c);
    c.adapt = 1;
    c.max_samples = 100;
    c.q = 0.5;
    c.margin = 1.0;
    t = mk(&c);
    for (i = 0; i < 100; i++)
        ad_threshold_add(t, 1.0);
    ad_threshold_fit(t, NULL, err, sizeof(err));
    for (i = 0; i < 100; i++)
        ad_threshold_adapt(t, 3.0);
    T_CHECK(ad_threshold_value(t) == 3.0, "median of the last 100 = 3, got %g",
            ad_threshold_value(t));
    ad_threshold_free(t);

    /* no adaptation unless asked */
    ad_thr_cfg_default(&c);
    c.margin = 1.0;
    t = mk(&c);
    for (i = 0; i < 100; i++)
        ad_threshold_add(t, 1.0);
    ad_threshold_fit(t, NULL, err, sizeof(err));
    ad_threshold_adapt(t, 100.0);
    T_CHECK(ad_threshold_value(t) == 1.0, "adapt off: unchanged");
    ad_threshold_free(t);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Quantile adaptation over a large ring re-estimates once every
 * len/64 scores (bounded work per score), and each estimate is the exact
 * quantile of the last max_samples scores: checked against a sort of a
 * copy kept here, with the R-7 interpolation written out. */
static void test_adapt_quantile_stride(void)
{
    enum { N = 6400, STRIDE = N / 64 };
    static double hist[N], tmp[N];
    ad_thr_cfg c;
    ad_threshold *t;
    char err[200];
    double fitted;
    int i, checked = 0, bad = 0, moved = 0;
    size_t head = 0;

    ad_thr_cfg_default(&c);
    c.adapt = 1;
    c.max_samples = N;
    c.q = 0.99;
    c.margin = 1.0;
    t = mk(&c);
    for (i = 0; i < N; i++) {
        hist[i] = unif();
        ad_threshold_add(t, hist[i]);
    }
    T_CHECK(ad_threshold_fit(t, NULL, err, sizeof(err)) == 0, "fit: %s", err);
    fitted = ad_threshold_value(t);
    for (i = 0; i < STRIDE - 1; i++) {
        hist[head] = 5.0 + unif();      /* the level moved up */
        head = (head + 1) % N;
        ad_threshold_adapt(t, hist[(head + N - 1) % N]);
    }
    T_CHECK(ad_threshold_value(t) == fitted, "no re-estimate before %d scores: %g vs %g",
            STRIDE, ad_threshold_value(t), fitted);
    for (i = STRIDE - 1; i < 3 * N; i++) {
        double x = (i < N ? 5.0 : 2.0) + unif(), pos, frac, want;
        size_t k;
        hist[head] = x;
        head = (head + 1) % N;
        ad_threshold_adapt(t, x);
        if ((i + 1) % STRIDE)
            continue;
        memcpy(tmp, hist, sizeof tmp);
        qsort(tmp, N, sizeof tmp[0], cmp_double);
        pos = c.q * (N - 1);
        k = (size_t)pos;
        frac = pos - (double)k;
        want = tmp[k] + frac * (tmp[k + 1] - tmp[k]);
        checked++;
        if (fabs(ad_threshold_value(t) - want) > 1e-12 * want)
            bad++;
        if (ad_threshold_value(t) != fitted)
            moved++;
    }
    T_CHECK(checked == 3 * N / STRIDE && bad == 0 && moved == checked,
            "%d re-estimates, %d differ from the sorted reference", checked, bad);
    ad_threshold_free(t);
}

static void test_save_restore(void)
{
    ad_thr_cfg c;
    ad_threshold *t, *u;
    char err[200];
    cJSON *j;
    char *txt;
    int i;

    ad_thr_cfg_default(&c);
    c.method = AD_THR_POT;
    c.adapt = 1;
    t = mk(&c);
    for (i = 0; i < 2000; i++)
        ad_threshold_add(t, -log(unif()));
    ad_threshold_fit(t, NULL, err, sizeof(err));
    j = ad_threshold_save(t);
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    u = mk(&c);
    j = cJSON_Parse(txt);
    T_CHECK(ad_threshold_restore(u, j, err, sizeof(err)) == 0, "restore: %s", err);
    T_CHECK(ad_threshold_fitted(u) && fabs(ad_threshold_value(u) - ad_threshold_value(t)) <
            1e-9 * ad_threshold_value(t), "same threshold %g vs %g", ad_threshold_value(u),
            ad_threshold_value(t));
    /* both adapt the same way afterwards */
    for (i = 0; i < 50; i++) {
        double x = 3.0 + 0.05 * i;
        ad_threshold_adapt(t, x);
        ad_threshold_adapt(u, x);
    }
    T_CHECK(fabs(ad_threshold_value(u) - ad_threshold_value(t)) < 1e-6 * ad_threshold_value(t),
            "same after adaptation %g vs %g", ad_threshold_value(u), ad_threshold_value(t));
    ad_threshold_free(u);
    c.method = AD_THR_SIGMA;
    u = mk(&c);
    T_CHECK(ad_threshold_restore(u, j, err, sizeof(err)) == AD_EINVAL, "method mismatch refused");
    T_NOTE("%s", err);
    ad_threshold_free(u);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"method\":\"sigma\",\"fitted\":true}");
    u = mk(&c);
    T_CHECK(ad_threshold_restore(u, j, err, sizeof(err)) == AD_EFORMAT, "malformed refused");
    ad_threshold_free(u);
    cJSON_Delete(j);
    free(txt);
    ad_threshold_free(t);
}

/*
 * Trimmed estimator with recurrence. 300 calibration scores of 1 +- 0.01
 * (MAD-sigma about 0.009: the fence is near 1.05) with excursions of
 * height h over L scores placed at 40, 120, 200, 280 (recur_gap 10: an
 * excursion counts when at least 5 long). Returns the scores trimmed and
 * the threshold (q 0.99 x 1).
 */
static uint64_t recur_fit(int recur, int n_exc, const double *h, const int *L, double *thr)
{
    static const int at[4] = { 40, 120, 200, 280 };
    ad_thr_cfg c;
    ad_threshold *t;
    ad_thr_info in;
    char err[200];
    int i, e;

    ad_thr_cfg_default(&c);
    c.estimator = AD_EST_TRIMMED;
    c.margin = 1.0;
    c.recur = recur;
    c.recur_gap = 10;
    t = mk(&c);
    rng = 7;
    for (i = 0; i < 300; i++) {
        double x = 1.0 + 0.02 * (unif() - 0.5);
        for (e = 0; e < n_exc; e++)
            if (i >= at[e] && i < at[e] + L[e])
                x = h[e];
        ad_threshold_add(t, x);
    }
    if (ad_threshold_fit(t, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "fit: %s", err);
    ad_threshold_info(t, &in);
    *thr = ad_threshold_value(t);
    ad_threshold_free(t);
    return in.trimmed;
}

static void test_trimmed_recurring(void)
{
    const double h3[4] = { 3, 3.5, 2.5, 3 }, hx[4] = { 3, 3.5, 9, 3 };
    const int L10[4] = { 10, 10, 10, 10 }, Lshort[4] = { 10, 10, 4, 4 };
    ad_thr_cfg c;
    char err[200];
    double v, v0;
    uint64_t tr;

    /* off: every excursion is trimmed, the threshold stays near 1 */
    tr = recur_fit(0, 3, h3, L10, &v0);
    T_CHECK(tr == 30 && v0 < 1.05, "recur 0: 30 trimmed (%llu), threshold %g",
            (unsigned long long)tr, v0);
    /* three excursions within 2x of each other: a part of normal */
    tr = recur_fit(3, 3, h3, L10, &v);
    T_CHECK(tr == 0 && v > 2.5, "recur 3, three alike: kept (%llu trimmed), threshold %g",
            (unsigned long long)tr, v);
    /* two are not enough for 3; they are for 2 */
    tr = recur_fit(3, 2, h3, L10, &v);
    T_CHECK(tr == 20 && v < 1.05, "recur 3, two: trimmed (%llu), %g", (unsigned long long)tr, v);
    tr = recur_fit(2, 2, h3, L10, &v);
    T_CHECK(tr == 0 && v > 2.5, "recur 2, two: kept (%llu trimmed), %g",
            (unsigned long long)tr, v);
    /* one (a single bad sample sits in T windows): always trimmed */
    tr = recur_fit(2, 1, h3, L10, &v);
    T_CHECK(tr == 10 && v < 1.05, "recur 2, one: trimmed (%llu), %g", (unsigned long long)tr, v);
    /* an excursion 3x higher than the others has no peer: trimmed alone */
    tr = recur_fit(3, 4, hx, L10, &v);
    T_CHECK(tr == 10 && v > 2.5 && v < 9, "recur 3, 3 alike + one at 9: the 9 trimmed (%llu), "
            "threshold %g", (unsigned long long)tr, v);
    /* excursions shorter than half a window's reach are blips: they
     * neither recur nor make the long ones recur */
    tr = recur_fit(3, 4, h3, Lshort, &v);
    T_CHECK(tr == 28 && v < 1.05, "recur 3, two long + two short: all trimmed (%llu), %g",
            (unsigned long long)tr, v);
    /* joining: an excursion of 4 + a dip + 4 is one full episode (8 >= 5)
     * when the dip is shorter than recur_gap (9 scores under the fence),
     * two blips when it is not (10) */
    {
        int dip, k;
        for (dip = 9; dip <= 10; dip++) {
            ad_threshold *t;
            ad_thr_info in;
            ad_thr_cfg_default(&c);
            c.estimator = AD_EST_TRIMMED;
            c.margin = 1.0;
            c.recur = 3;
            c.recur_gap = 10;
            t = mk(&c);
            rng = 7;
            for (k = 0; k < 300; k++) {
                double x = 1.0 + 0.02 * (unif() - 0.5);
                int e, o;
                for (e = 0; e < 3; e++) {
                    o = k - (40 + 80 * e);
                    if ((o >= 0 && o < 4) || (o >= 4 + dip && o < 8 + dip))
                        x = 3.0;
                }
                ad_threshold_add(t, x);
            }
            ad_threshold_fit(t, NULL, err, sizeof(err));
            ad_threshold_info(t, &in);
            T_CHECK(dip == 9 ? in.trimmed == 0 : in.trimmed == 24,
                    "dip of %d under the fence (recur_gap 10): %llu trimmed", dip,
                    (unsigned long long)in.trimmed);
            ad_threshold_free(t);
        }
    }
    /* settings */
    ad_thr_cfg_default(&c);
    c.recur = 1;
    c.estimator = AD_EST_TRIMMED;
    T_CHECK(ad_thr_cfg_check(&c, err, sizeof(err)) == AD_EINVAL && strstr(err, "recur"),
            "recur 1 refused: %s", err);
    c.recur = 3;
    c.estimator = AD_EST_QUANTILE;
    T_CHECK(ad_thr_cfg_check(&c, err, sizeof(err)) == AD_EINVAL && strstr(err, "trimmed"),
            "recur without trimmed refused: %s", err);
}

/* A promotion's hold: the value stays at v or above for n adapted scores,
 * then adaptation decides again; saved and restored; a rebase keeps an
 * operator's raise. */
static void test_hold_and_raise(void)
{
    ad_thr_cfg c;
    ad_threshold *t, *u;
    char err[200];
    double sc[200];
    uint64_t left = 0;
    cJSON *j;
    int i;

    ad_thr_cfg_default(&c);
    c.adapt = 1;
    c.margin = 1.0;
    c.q = 0.5;
    t = mk(&c);
    for (i = 0; i < 128; i++)
        ad_threshold_add(t, 1.0);
    ad_threshold_fit(t, NULL, err, sizeof(err));
    T_CHECK(ad_threshold_hold(t, 4.0, 10) == 0 && ad_threshold_value(t) == 4.0,
            "held at 4: %g", ad_threshold_value(t));
    for (i = 0; i < 5; i++)
        ad_threshold_adapt(t, 1.0);     /* re-estimates every 2 scores: median 1 */
    T_CHECK(ad_threshold_value(t) == 4.0 && ad_threshold_held(t, &left) == 4.0 && left == 5,
            "5 scores in: still 4 (%g), %llu left", ad_threshold_value(t),
            (unsigned long long)left);
    j = ad_threshold_save(t);
    u = mk(&c);
    T_CHECK(ad_threshold_restore(u, j, err, sizeof(err)) == 0 &&
            ad_threshold_held(u, &left) == 4.0 && left == 5, "hold restored: %llu left %s",
            (unsigned long long)left, err);
    cJSON_Delete(j);
    for (i = 0; i < 8; i++) {
        ad_threshold_adapt(t, 1.0);
        ad_threshold_adapt(u, 1.0);
    }
    T_CHECK(ad_threshold_value(t) == 1.0 && ad_threshold_value(u) == 1.0 &&
            ad_threshold_held(t, NULL) == 0, "after 10 scores adaptation decides: %g, %g",
            ad_threshold_value(t), ad_threshold_value(u));
    ad_threshold_free(u);
    T_CHECK(ad_threshold_hold(t, NAN, 3) == AD_EINVAL, "hold of NAN refused");
    /* a hold over an operator's raise and the floor: the highest wins */
    T_CHECK(ad_threshold_raise(t, 2.0) == 0 && ad_threshold_hold(t, 4.0, 50) == 0, "raise, hold");
    for (i = 0; i < 8; i++)
        ad_threshold_adapt(t, 1.0);
    T_CHECK(ad_threshold_value(t) == 4.0, "hold 4 over raise 2 after 8 scores: %g",
            ad_threshold_value(t));
    /* a rebase ends the hold, also when it falls back to a median shift
     * (5 scores: too few to refit): the value moves by the medians' shift
     * (1 -> 2) from where it was */
    for (i = 0; i < 5; i++)
        sc[i] = 2.0;
    T_CHECK(ad_threshold_rebase(t, sc, 5, NULL, NULL, err, sizeof(err)) == 0 &&
            ad_threshold_held(t, NULL) == 0 && ad_threshold_value(t) == 5.0,
            "median-shift rebase: hold ended, value 4 + 1: %g (held %g) %s",
            ad_threshold_value(t), ad_threshold_held(t, NULL), err);
    /* a state that holds but is not fitted: the hold is ignored */
    u = mk(&c);
    j = cJSON_Parse("{\"method\":\"quantile\",\"fitted\":false,\"frozen\":false,"
                    "\"value\":0,\"count\":0,\"welford\":{\"n\":0,\"mean\":0,\"m2\":0},"
                    "\"samples\":[],\"hold\":7,\"hold_left\":5}");
    T_CHECK(ad_threshold_restore(u, j, err, sizeof(err)) == 0 &&
            ad_threshold_held(u, NULL) == 0, "unfitted state: hold ignored (%s)", err);
    cJSON_Delete(j);
    ad_threshold_free(u);
    j = cJSON_Parse("{\"method\":\"quantile\",\"fitted\":true,\"frozen\":false,"
                    "\"value\":1,\"count\":1,\"welford\":{\"n\":1,\"mean\":1,\"m2\":0},"
                    "\"samples\":[1],\"hold\":7,\"hold_left\":0}");
    u = mk(&c);
    T_CHECK(ad_threshold_restore(u, j, err, sizeof(err)) == AD_EFORMAT && strstr(err, "hold"),
            "hold_left 0 refused, naming it: %s", err);
    cJSON_Delete(j);
    ad_threshold_free(u);
    /* methods without scores have nothing to hold against */
    {
        ad_thr_cfg f;
        ad_threshold *x;
        ad_thr_cfg_default(&f);
        f.method = AD_THR_FIXED;
        f.fixed = 1.0;
        x = mk(&f);
        ad_threshold_fit(x, NULL, err, sizeof(err));
        T_CHECK(ad_threshold_fitted(x) && ad_threshold_hold(x, 3.0, 10) == AD_EINVAL &&
                ad_threshold_value(x) == 1.0, "fixed: hold refused, value %g",
                ad_threshold_value(x));
        ad_threshold_free(x);
    }
    /* an operator's raise survives a rebase (a promotion) */
    T_CHECK(ad_threshold_raise(t, 2.5) == 0, "raise");
    for (i = 0; i < 200; i++)
        sc[i] = 0.5;
    T_CHECK(ad_threshold_rebase(t, sc, 200, NULL, NULL, err, sizeof(err)) == 0, "rebase: %s",
            err);
    T_CHECK(ad_threshold_value(t) == 2.5 && ad_threshold_raised(t) == 2.5,
            "raise kept over the rebase: %g (raised %g)", ad_threshold_value(t),
            ad_threshold_raised(t));
    /* a promotion moves it to the new model's scale first */
    ad_threshold_scale_raised(t, 0.4);
    T_CHECK(ad_threshold_rebase(t, sc, 200, NULL, NULL, err, sizeof(err)) == 0 &&
            fabs(ad_threshold_value(t) - 1.0) < 1e-12 && fabs(ad_threshold_raised(t) - 1.0) < 1e-12,
            "raise x 0.4 over the next rebase: %g (raised %g)", ad_threshold_value(t),
            ad_threshold_raised(t));
    ad_threshold_free(t);
}

int main(void)
{
    T_RUN(test_quantile_method);
    T_RUN(test_quantile_top);
    T_RUN(test_sigma_method);
    T_RUN(test_pot_exponential);
    T_RUN(test_pot_pareto);
    T_RUN(test_fixed_and_model);
    T_RUN(test_adaptation_and_freeze);
    T_RUN(test_adapt_quantile_stride);
    T_RUN(test_save_restore);
    T_RUN(test_trimmed_recurring);
    T_RUN(test_hold_and_raise);
    return t_done();
}
