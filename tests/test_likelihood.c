/*
 * test_likelihood.c - the anomaly probability (lib/likelihood.c): against
 * an independent float64 reference (tests/likelihood_ref.py: numpy window
 * statistics recomputed from scratch at every step, scipy's Gaussian tail)
 * on a generated series with noise, a spike, a level shift and untrusted
 * (not learned) windows; then the behaviour a user relies on: a spike gives
 * a high probability, a persistent level shift gives a high probability
 * that decays back to ordinary values while the raw scores stay above any
 * threshold set before the shift.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include "t.h"
#include "ad.h"
#include "likelihood.h"

static uint64_t rng = 88172645463325252ull;

static double uni(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
    return sqrt(-2 * log(uni())) * cos(2 * M_PI * uni());
}

#define N 3000

static void test_reference(void)
{
    static double x[N], p[N], L[N];
    static int learn[N];
    ad_lik_cfg c;
    ad_likelihood *l = NULL;
    char err[200], path[] = "/tmp/ad_lik_XXXXXX", cmd[1024];
    const char *py = getenv("PYTHON"), *src = getenv("AD_SRCDIR");
    FILE *f;
    int i, fd, n = 0, bad = 0;
    double maxdp = 0, maxdl = 0;

    for (i = 0; i < N; i++) {
        x[i] = 1.0 + 0.1 * gauss();
        if (i >= 1200 && i < 1203)
            x[i] = 5.0;                        /* spike */
        if (i >= 2000)
            x[i] += 1.0;                       /* level shift */
        learn[i] = !(i % 97 == 13);            /* some untrusted windows */
    }
    ad_lik_cfg_default(&c);
    c.history = 200;
    c.average = 10;
    c.min_history = 30;
    c.rel_floor = 0.01;
    T_CHECK(ad_likelihood_new(&l, &c, err, sizeof(err)) == 0, "%s", err);
    if (l == NULL)
        return;
    ad_likelihood_set_floor(l, 0.001);
    for (i = 0; i < N; i++)
        p[i] = ad_likelihood_update(l, x[i], learn[i], &L[i]);
    ad_likelihood_free(l);

    fd = mkstemp(path);
    T_CHECK(fd >= 0, "temp file");
    if (fd < 0)
        return;
    f = fdopen(fd, "w");
    for (i = 0; i < N; i++)
        fprintf(f, "%.17g %d\n", x[i], learn[i]);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s %s/tests/likelihood_ref.py %s 200 10 30 0.01 0.001",
             py ? py : "/usr/bin/python3", src ? src : ".", path);
    f = popen(cmd, "r");
    T_CHECK(f != NULL, "run %s", cmd);
    if (f == NULL) {
        unlink(path);
        return;
    }
    for (i = 0; i < N; i++) {
        double rp, rl, dp, dl;
        if (fscanf(f, "%lf %lf", &rp, &rl) != 2)
            break;
        n++;
        dp = fabs(rp - p[i]);
        dl = fabs(rl - L[i]) / (1 + fabs(rl));
        if (dp > maxdp)
            maxdp = dp;
        if (dl > maxdl)
            maxdl = dl;
        if (dp > 1e-9 || dl > 1e-9) {
            if (bad++ < 5)
                fprintf(stderr, "  score %d: p %.17g ref %.17g, L %.17g ref %.17g\n",
                        i, p[i], rp, L[i], rl);
        }
    }
    pclose(f);
    unlink(path);
    T_CHECK(n == N, "reference gave %d of %d values (%s)", n, N, cmd);
    T_CHECK(bad == 0, "%d values differ by more than 1e-9", bad);
    T_NOTE("likelihood vs numpy/scipy on %d scores: max |dp| %.3g, max rel |dL| %.3g "
           "(tolerance 1e-9); p at spike %.12g, L %.4g", n, maxdp, maxdl, p[1201], L[1201]);
}

static void test_spike_and_shift(void)
{
    ad_lik_cfg c;
    ad_likelihood *l = NULL;
    char err[200];
    int i, back = -1, max_normal_at = 0;
    double p, L, pmax_normal = 0, p_spike = 0, L_spike = 0, p_shift = 0;
    const double level = 0.9999;

    ad_lik_cfg_default(&c);            /* W 500, w 10 */
    T_CHECK(ad_likelihood_new(&l, &c, err, sizeof(err)) == 0, "%s", err);
    if (l == NULL)
        return;
    rng = 12345;
    for (i = 0; i < 6000; i++) {
        double x = 1.0 + 0.1 * gauss();
        if (i == 1500)
            x = 6.0;                           /* one spiking window */
        if (i >= 3000)
            x += 1.0;                          /* persistent level shift */
        p = ad_likelihood_update(l, x, 1, &L);
        if (i >= 600 && i < 1500 && p > pmax_normal) {
            pmax_normal = p;
            max_normal_at = i;
        }
        if (i == 1500) {
            p_spike = p;
            L_spike = L;
        }
        if (i == 3005)
            p_shift = p;
        if (i > 3005 && back < 0 && p < 0.99)
            back = i - 3000;
    }
    /* After the shift settles, the probability is ordinary again. */
    {
        int over = 0;
        for (i = 0; i < 1000; i++) {
            double x = 2.0 + 0.1 * gauss();
            p = ad_likelihood_update(l, x, 1, NULL);
            over += p >= level;
        }
        T_CHECK(over == 0, "%d of 1000 windows at the settled new level reach %g", over, level);
    }
    T_CHECK(pmax_normal < level, "normal data: max p %.6f (at %d)", pmax_normal, max_normal_at);
    T_CHECK(p_spike >= level, "spike: p %.12f", p_spike);
    T_CHECK(p_shift >= level, "level shift: p %.12f 5 windows after", p_shift);
    T_CHECK(back > 0 && back < 500, "p back under 0.99 %d windows after the shift", back);
    T_NOTE("normal max p %.6f; spike p %.10f (log-likelihood %.2f); shift p %.10f, "
           "back under 0.99 after %d windows while every score stays ~2x the old level",
           pmax_normal, p_spike, L_spike, p_shift, back);
    ad_likelihood_free(l);
}

static void test_constant_and_floor(void)
{
    ad_lik_cfg c;
    ad_likelihood *l = NULL;
    char err[200];
    int i;
    double p, L;

    ad_lik_cfg_default(&c);
    T_CHECK(ad_likelihood_new(&l, &c, err, sizeof(err)) == 0, "%s", err);
    if (l == NULL)
        return;
    /* A constant zero history: equal scores are ordinary. */
    for (i = 0; i < 100; i++)
        p = ad_likelihood_update(l, 0.0, 1, &L);
    T_CHECK(p == 0.5, "constant history, same score: p %g", p);
    /* With an absolute floor, a deviation of 10 floors is unusual but finite. */
    ad_likelihood_set_floor(l, 0.01);
    p = ad_likelihood_update(l, 1.0, 0, &L);   /* average 0.1 = 10 floors */
    T_CHECK(p > 0.9999 && isfinite(L) && fabs(L - ad_log_normal_tail(10.0)) < 1e-12,
            "floor: p %.12f L %g (ln Q(10) = %g)", p, L, ad_log_normal_tail(10.0));
    /* Not learned: the history is unchanged, the same score gives the same p. */
    T_CHECK(ad_likelihood_update(l, 1.0, 0, NULL) == p, "learn 0 changes nothing");
    T_CHECK(isnan(ad_likelihood_update(l, NAN, 1, &L)) && isnan(L), "NaN score: NaN");
    T_CHECK(ad_likelihood_count(l) == 100, "history %zu", ad_likelihood_count(l));
    /* ln Q far in the tail: continuous across the switch at 35, and
     * matches the known ln Q(40) = -804.608442013754 */
    T_CHECK(fabs(ad_log_normal_tail(35 - 1e-9) - ad_log_normal_tail(35)) < 1e-6,
            "ln Q continuous at 35: %.12g %.12g", ad_log_normal_tail(35 - 1e-9),
            ad_log_normal_tail(35));
    T_CHECK(fabs(ad_log_normal_tail(40) - (-804.608442013754)) < 1e-8, "ln Q(40) %.15g",
            ad_log_normal_tail(40));
    ad_likelihood_free(l);
    c.history = 1;
    T_CHECK(ad_likelihood_new(&l, &c, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "alert.probability_history"), "bad config: %s", err);
}

int main(void)
{
    T_RUN(test_reference);
    T_RUN(test_spike_and_shift);
    T_RUN(test_constant_and_floor);
    return t_done();
}
