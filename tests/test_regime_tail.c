/*
 * test_regime_tail.c - REGIME TAIL (lib/detector.c): the windows that
 * hold a transition out of an accepted regime have an error profile of
 * neither state (a slow feature lags the others). Judged against the
 * threshold, their brief excess on another feature raised an alert at
 * each transition; they are judged against the regime for a window's
 * length after its last window like it, and a change that lasts longer
 * than that still raises.
 *
 * A regime (sensor a high) is accepted after accept_after windows; the
 * process goes back to normal, then returns to the regime. It leaves the
 * regime through a few rows with sensor b high instead (the lag):
 *   - a lag shorter than a window's length raises nothing;
 *   - the same excess on b for many windows raises (later than with
 *     no regime before it, by at most a window's length);
 *   - without a regime before it the short lag raises as before.
 *
 * Model: one TimeDistributed Dense with zero weights (t_model.h): a
 * window's MAE score is the mean |value| of its rows. T = 4, rows one
 * second apart, one window per row.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"
#include "engine.h"

#define F 2
#define TW 4

static uint64_t rng;

/* uniform in [-1, 1) */
static double noise(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static ad_model *g_model;

/* calibration on 50 windows, raise on one window over, clear after 2
 * below; a persistent change accepted after 30 windows */
static ad_detector *mk(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    if (g_model == NULL && (g_model = t_zero_model(TW, F)) == NULL)
        return NULL;
    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.thr.margin = 1.2;
    c.alert.k = 1;
    c.alert.n = 1;
    c.alert.m = 2;
    c.alert.clear_ratio = 1;
    c.alert.accept_after = 30;
    c.alert.accept_gap = 60;
    c.alert.accept_spread = 3;
    c.alert.accept_trend = 0.25;
    if (ad_detector_new(&d, &c, "pump", g_model, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "detector: %s", err);
    return d;
}

typedef struct run {
    int raised, accepted;
    long long raised_s[8];        /* data times of the first raises */
} run;

static void step(ad_detector *d, int64_t ts, double a, double b, run *r)
{
    double row[F] = { a, b };
    float in[TW * F], out[TW * F], share[F];
    ad_window_job job;
    ad_event ev;

    ad_detector_push_row(d, ts, row, NULL);
    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev)) {
        if (ev.type == AD_EV_ALERT_RAISED) {
            if (r->raised < 8)
                r->raised_s[r->raised] = (long long)ev.ts_ms / 1000;
            r->raised++;
        } else if (ev.type == AD_EV_ACCEPTED) {
            r->accepted++;
        }
    }
}

/* Rows: normal (a = b = 1) to row 100; with `regime`, a = 3 on rows
 * 100-179 (raised, accepted) and again on 260-299; then `lag` rows with
 * b = 1.9 instead (a back to 1), then normal to row 400. Without
 * `regime` the lag rows follow normal rows at 300. Returns the raises
 * from row 250 on in *late. */
static void run_rows(int regime, int lag, run *r, int *late)
{
    ad_detector *d = mk();
    int i, before = 0;

    memset(r, 0, sizeof(*r));
    rng = 88172645463325252ull;
    for (i = 0; d && i < 400 + lag; i++) {
        int in_reg = regime && ((i >= 100 && i < 180) || (i >= 260 && i < 300));
        int in_lag = i >= 300 && i < 300 + lag;
        double a = in_reg ? 3 : 1, b = in_lag ? 1.9 : 1;

        if (i == 250)
            before = r->raised;
        step(d, (int64_t)i * 1000, a + 0.05 * noise(), b + 0.05 * noise(), r);
    }
    *late = r->raised - before;
    ad_detector_free(d);
}

static void test_short_lag_absorbed(void)
{
    run r;
    int late;

    run_rows(1, 3, &r, &late);
    T_CHECK(r.accepted == 1, "the regime accepted once (%d)", r.accepted);
    T_CHECK(late == 0, "leaving the regime through a 3-row lag on b (windows of 4 rows): "
            "%d alert(s) raised (want 0; first at %lld s)", late, late ? r.raised_s[r.raised -
            late < 8 ? r.raised - late : 7] : -1LL);
}

static void test_long_change_raises(void)
{
    run r, plain;
    int late, plate;

    run_rows(1, 40, &r, &late);
    run_rows(0, 40, &plain, &plate);
    T_CHECK(late == 1, "b high for 40 rows after the regime: %d alert(s) (want 1)", late);
    T_CHECK(plate == 1, "b high for 40 rows, no regime: %d alert(s) (want 1)", plate);
    if (late == 1 && plate == 1) {
        long long t = r.raised_s[r.raised - 1], t0 = plain.raised_s[plain.raised - 1];
        T_CHECK(t >= t0 && t - t0 <= TW + 1, "raised at %lld s, %lld s after the run without "
                "a regime (at most a window's length)", t, t - t0);
    }
}

static void test_no_regime_short_lag_raises(void)
{
    run r;
    int late;

    run_rows(0, 3, &r, &late);
    T_CHECK(late == 1, "the 3-row lag with no regime before it: %d alert(s) (want 1)", late);
}

int main(void)
{
    T_RUN(test_short_lag_absorbed);
    T_RUN(test_long_change_raises);
    T_RUN(test_no_regime_short_lag_raises);
    ad_model_free(g_model);
    return t_done();
}
