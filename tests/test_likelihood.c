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
        if (isnan(rp) || isnan(p[i])) {     /* unknown: both, or a difference */
            if (!(isnan(rp) && isnan(p[i]) && isnan(rl) && isnan(L[i])) && bad++ < 5)
                fprintf(stderr, "  score %d: p %.17g ref %.17g (unknown in one only)\n",
                        i, p[i], rp);
            continue;
        }
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

/* HELD AVERAGES: held then committed, the history is the one learned
 * directly (same probabilities after); held then dropped, the history is
 * the one that never saw them; the short average follows held scores;
 * the held averages survive a save and restore; unknown (NAN) before
 * min_history; SCALE: r x the scores, the same probabilities. */
static void test_held_and_scale(void)
{
    ad_lik_cfg c;
    ad_likelihood *a = NULL, *b = NULL, *e = NULL, *g = NULL;
    char err[200];
    int i, unknown = 0;
    double pa, pb, L;
    cJSON *o;

    ad_lik_cfg_default(&c);
    c.history = 100;
    c.average = 5;
    c.min_history = 20;
    T_CHECK(ad_likelihood_new(&a, &c, err, sizeof err) == 0 &&
            ad_likelihood_new(&b, &c, err, sizeof err) == 0 &&
            ad_likelihood_new(&e, &c, err, sizeof err) == 0 &&
            ad_likelihood_new(&g, &c, err, sizeof err) == 0, "%s", err);
    if (!a || !b || !e || !g)
        goto out;
    rng = 7;
    for (i = 0; i < 300; i++) {
        double x = 1.0 + 0.1 * gauss();
        pa = ad_likelihood_update(a, x, 1, NULL);
        pb = ad_likelihood_update2(b, x, AD_LIK_HOLD, NULL);
        ad_likelihood_update2(e, x, i >= 150 && i < 170 ? AD_LIK_HOLD : AD_LIK_LEARN, NULL);
        if (i == 169)
            ad_likelihood_drop(e);          /* 20 averages never learned */
        ad_likelihood_update(g, i >= 150 && i < 170 ? x + 100 : x, 1, NULL);
        unknown += isnan(pb);
        (void)pa;
        ad_likelihood_commit(b, 3);         /* three held behind */
    }
    T_CHECK(unknown == 23, "unknown (NAN) until min_history averages joined: %d windows "
            "(want 23: 20 learned, 3 more held)", unknown);
    T_CHECK(ad_likelihood_held(b) == 3 && ad_likelihood_count(a) == 100 &&
            ad_likelihood_count(b) == 100, "held %zu, history %zu / %zu",
            ad_likelihood_held(b), ad_likelihood_count(a), ad_likelihood_count(b));
    ad_likelihood_commit(b, 0);
    pa = ad_likelihood_update(a, 1.3, 0, &L);
    pb = ad_likelihood_update(b, 1.3, 0, NULL);
    T_CHECK(fabs(pa - pb) < 1e-12, "committed: the history learned directly (p %.15f %.15f)",
            pa, pb);
    /* dropped: like never seen (g saw +100 there, outside the last 100
     * averages now: a second history without them must agree with e) */
    {
        ad_likelihood *h = NULL;
        double pe, ph;
        rng = 7;
        ad_likelihood_new(&h, &c, err, sizeof err);
        for (i = 0; h && i < 300; i++) {
            double x = 1.0 + 0.1 * gauss();
            ad_likelihood_update2(h, x, i >= 150 && i < 170 ? AD_LIK_NONE : AD_LIK_LEARN, NULL);
        }
        pe = ad_likelihood_update(e, 1.3, 0, NULL);
        ph = h ? ad_likelihood_update(h, 1.3, 0, NULL) : NAN;
        /* the short averages differ only within w of the span: equal now */
        T_CHECK(fabs(pe - ph) < 1e-9, "dropped: the history never saw them (p %.12f, without "
                "them %.12f)", pe, ph);
        ad_likelihood_free(h);
    }
    /* held averages kept over a save and restore */
    ad_likelihood_update2(b, 5.0, AD_LIK_HOLD, NULL);
    ad_likelihood_update2(b, 5.0, AD_LIK_HOLD, NULL);
    o = ad_likelihood_save(b);
    {                                   /* as a state file: text and back */
        char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        o = txt ? cJSON_Parse(txt) : NULL;
        free(txt);
    }
    ad_likelihood_reset(g);
    T_CHECK(o && ad_likelihood_restore(g, o, err, sizeof err) == 0 &&
            ad_likelihood_held(g) == 2, "restored with %zu held %s", ad_likelihood_held(g), err);
    ad_likelihood_commit(b, 0);
    ad_likelihood_commit(g, 0);
    T_CHECK(ad_likelihood_update(b, 1.7, 0, NULL) == ad_likelihood_update(g, 1.7, 0, NULL),
            "the same history after both commit");
    cJSON_Delete(o);
    /* SCALE */
    ad_likelihood_set_floor(a, 0);
    pa = ad_likelihood_update(a, 1.25, 0, NULL);
    ad_likelihood_scale(a, 0.25);
    pb = ad_likelihood_update(a, 1.25 * 0.25, 0, NULL);
    T_CHECK(fabs(pa - pb) < 1e-9, "scaled by 0.25: the same p for a score 0.25 x (%.12f %.12f)",
            pa, pb);
out:
    ad_likelihood_free(a);
    ad_likelihood_free(b);
    ad_likelihood_free(e);
    ad_likelihood_free(g);
}

int main(void)
{
    T_RUN(test_reference);
    T_RUN(test_spike_and_shift);
    T_RUN(test_constant_and_floor);
    T_RUN(test_held_and_scale);
    return t_done();
}
