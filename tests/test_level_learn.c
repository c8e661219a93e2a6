/*
 * test_level_learn.c - a threshold that keeps learning (calibration.adapt)
 * waits for the level test (alert.level_ms) before it learns a window.
 *
 * A mild fault that lifts the score for hours, under the threshold (a
 * quantile x margin 1.5) but well over the normal scores, is what the
 * level test is for: its mean over the span crosses median + z spreads.
 * A threshold that learned every window under it at once took in the
 * fault's windows as they came: once more than 1 % of its kept scores
 * were the fault's, its tail quantile was the fault's level, so the level
 * test's fence (at least threshold / margin) rose to the fault's level
 * before the mean over the span could cross it, and nothing was raised
 * (the scenario suite's mild_long_fault in bootstrap mode, missed on every
 * seed set). Now a window over the level test's fence teaches the
 * threshold once the span has passed over it with no alert raised (one
 * under the fence teaches it at once).
 *
 * Cases (rows 2 s apart, a span of 100 windows):
 *   - the fault: 600 normal rows, then the rise for 400 rows: an alert is
 *     raised within the rise, by the level test (its peak under the
 *     threshold), and the threshold at the raise is within 1 % of the
 *     one at the rise's onset (the fault's windows taught it nothing);
 *   - no fault: 1000 normal rows raise nothing, and the threshold still
 *     learns (it moves from its calibrated value once the span passed);
 *   - the fault's first windows waiting when the stream falls silent for
 *     longer than the span, the fault going on after it: raised after the
 *     silence, the threshold at the raise within 1 % of the one at the
 *     onset (the windows waiting were dropped with the level test's mean);
 *   - the same fault with calibration.adapt off raises as well (a control:
 *     the fixed threshold's fence stays where the calibration put it).
 *
 * Model: one TimeDistributed Dense with zero weights (t_model.h): a
 * window's MAE score is the mean |value| of its rows. T = 4, F = 2.
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
#define DT 2000                 /* ms between rows */
#define SPAN 100                /* level span in windows */

static uint64_t rng;

/* uniform in [-1, 1) */
static double noise(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static ad_model *g_zero;

static double thr_now(const ad_detector *d)
{
    ad_detector_stats st;

    ad_detector_get_stats(d, &st);
    return st.threshold;
}

static ad_detector *mk(int adapt)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    if (g_zero == NULL && (g_zero = t_zero_model(TW, F)) == NULL)
        return NULL;
    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.thr.method = AD_THR_QUANTILE;
    c.thr.q = 0.99;
    c.thr.margin = 1.5;
    c.thr.adapt = adapt;
    c.thr.estimator = AD_EST_TRIMMED;
    c.alert.level_ms = (int64_t)SPAN * DT;
    c.alert.level_z = 3;
    if (ad_detector_new(&d, &c, "pump", g_zero, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "detector: %s", err);
        return NULL;
    }
    return d;
}

typedef struct run {
    int raised;
    long long first;            /* row of the first raise (-1: none) */
    double peak, thr_raise;     /* the first alert's peak and threshold */
    double thr_onset;           /* the threshold at the rise's onset */
    double thr_end;             /* the threshold after the last row */
} run;

/* rows [0, n): normal (|1 + 0.2 u|), from row `from` on lifted by `lift`;
 * from row `gap_at` on (0: none) each row comes `gap` rows of data time
 * later (the stream silent that long) */
static void run_gap(int adapt, int n, int from, double lift, int gap_at, int gap, run *r)
{
    ad_detector *d = mk(adapt);
    int i;

    memset(r, 0, sizeof(*r));
    r->first = -1;
    if (d == NULL)
        return;
    rng = 0x9e3779b97f4a7c15ULL;
    for (i = 0; i < n; i++) {
        double row[F];
        float in[TW * F], out[TW * F], share[F];
        ad_window_job job;
        ad_event ev;
        int f;

        for (f = 0; f < F; f++)
            row[f] = 1.0 + 0.2 * noise() + (i >= from ? lift : 0.0);
        if (i == from)
            r->thr_onset = thr_now(d);
        ad_detector_push_row(d, (int64_t)(i + (gap_at > 0 && i >= gap_at ? gap : 0)) * DT,
                             row, NULL);
        while (ad_detector_next_window(d, in, &job)) {
            float mae;
            ad_forward_ref(job.model, in, out, 1);
            ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
            ad_detector_feed_score(d, &job, mae, share);
        }
        while (ad_detector_poll_event(d, &ev)) {
            if (ev.type != AD_EV_ALERT_RAISED || r->raised++ > 0)
                continue;
            r->first = ev.ts_ms / DT;
            r->peak = ev.alert.peak_score;
            r->thr_raise = ev.threshold;
        }
    }
    r->thr_end = thr_now(d);
    ad_detector_free(d);
}

static void run_rows(int adapt, int n, int from, double lift, run *r)
{
    run_gap(adapt, n, from, lift, 0, 0, r);
}

static void test_fault(void)
{
    run r;

    run_rows(1, 1000, 600, 0.2, &r);
    T_CHECK(r.raised >= 1 && r.first >= 600 && r.first < 1000,
            "a mild rise under the threshold raises within it (raised %d, first at row %lld)",
            r.raised, r.first);
    T_CHECK(r.raised == 0 || r.peak < r.thr_raise,
            "raised by the level test: its peak %.4f under the threshold %.4f", r.peak,
            r.thr_raise);
    /* the windows before the onset still teach it as they leave the span */
    T_CHECK(r.raised == 0 || fabs(r.thr_raise - r.thr_onset) < 0.01 * r.thr_onset,
            "the rise's windows taught the threshold nothing (%.4f at the onset, %.4f at the "
            "raise)", r.thr_onset, r.thr_raise);
}

static void test_normal(void)
{
    run r, c;

    run_rows(1, 1000, 1000, 0, &r);
    T_CHECK(r.raised == 0, "a normal stream raises nothing (raised %d, first at row %lld)",
            r.raised, r.first);
    run_rows(0, 1000, 1000, 0, &c);
    T_CHECK(fabs(r.thr_end - c.thr_end) > 1e-9,
            "the threshold still learns once the span passed (%.6f, fixed %.6f)", r.thr_end,
            c.thr_end);
}

/* The rise begins, the stream falls silent for more than the span (a
 * network outage) with the rise's first windows waiting, and comes back
 * with the rise still on: the level test's mean starts over after the
 * silence (it never judged a full span over those windows), and so do the
 * windows waiting, as at a restart; taught at the first window after the
 * silence, they lifted the threshold's tail quantile, and the fence with
 * it, to the rise's level, and the rise after the silence raised nothing. */
static void test_silence(void)
{
    run r;

    run_gap(1, 1000, 600, 0.2, 640, 3 * SPAN, &r);
    T_CHECK(r.raised >= 1 && r.first >= 600 + 3 * SPAN,
            "a rise on both sides of a silence longer than the span raises after it "
            "(raised %d, first at row %lld)", r.raised, r.first);
    T_CHECK(r.raised == 0 || fabs(r.thr_raise - r.thr_onset) < 0.01 * r.thr_onset,
            "the windows waiting at the silence taught the threshold nothing (%.4f at the "
            "onset, %.4f at the raise)", r.thr_onset, r.thr_raise);
}

static void test_fixed(void)
{
    run r;

    run_rows(0, 1000, 600, 0.2, &r);
    T_CHECK(r.raised >= 1 && r.first >= 600 && r.first < 1000,
            "control: a fixed threshold's level test raises within the rise (raised %d, first "
            "at row %lld)", r.raised, r.first);
}

int main(void)
{
    T_RUN(test_fault);
    T_RUN(test_normal);
    T_RUN(test_silence);
    T_RUN(test_fixed);
    ad_model_free(g_zero);
    return t_done();
}
