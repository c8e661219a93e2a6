/*
 * test_kept_change.c - KEPT CHANGE (lib/shift.h): a step of the process
 * raises at its onset and clears while the rows stay moved; when the
 * daily cycle later brings the load to where the model has not seen the
 * step, the score rises again. Those windows raise nothing while the rows
 * move the way the step moved them; a fault that moves them another way
 * raises, and so does a peak after a step that did not stay.
 *
 * Rows 1 s apart, a period of P = 1440 s (alert.accept_period_ms), one
 * window per row (T = 4). Model: one TimeDistributed Dense with zero
 * weights (t_model.h): a window's MAE score is the mean |value| of its
 * rows. The cycle: a = 1 + c, b = 1 - c with c = 0.8 at the "peak"
 * (phase 900-1020 s of each period), else 0: the score is 1 all day.
 * The step (from row 3180, phase 300 of the third period): a + 0.6,
 * b - 0.6, its first 10 rows with a + 3 (the onset's transient, raised).
 * Off the peak the score stays 1; at the peak b goes under 0 and the
 * score rises to 1.4: the same change, met at the peak.
 *   - the two peaks after the step raise nothing;
 *   - a fault on the second day after it (b + 1.5: another way) raises;
 *   - a step that goes back 5 rows after its alert cleared: the same
 *     move at the next peak raises (nothing kept).
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
#define P 1440
#define STEP 3180

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
    c.alert.accept_period_ms = (int64_t)P * 1000;
    if (ad_detector_new(&d, &c, "pump", g_model, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "detector: %s", err);
    return d;
}

/* raises per row range */
typedef struct run {
    int raised;
    int at[64];                 /* the rows raised at */
} run;

static void step(ad_detector *d, int i, double a, double b, run *r)
{
    double row[F] = { a, b };
    float in[TW * F], out[TW * F], share[F];
    ad_window_job job;
    ad_event ev;

    ad_detector_push_row(d, (int64_t)i * 1000, row, NULL);
    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev))
        if (ev.type == AD_EV_ALERT_RAISED && r->raised < 64)
            r->at[r->raised++] = (int)(ev.ts_ms / 1000);
}

static int raised_in(const run *r, int from, int to)
{
    int n = 0;

    for (int i = 0; i < r->raised; i++)
        n += r->at[i] >= from && r->at[i] < to;
    return n;
}

/* stays: rows the step lasts (after it a and b are as before); fault:
 * b + 1.5 for 60 rows from that row (0: none); again: the step's move
 * (a + 0.6, b - 0.6) at the first peak after it, whatever stays */
static void run_rows(int stays, int fault, int again, run *r)
{
    ad_detector *d = mk();

    memset(r, 0, sizeof(*r));
    rng = 88172645463325252ull;
    for (int i = 0; d && i < 5700; i++) {
        int ph = i % P, k = i - STEP;
        double c = ph >= 900 && ph < 1020 ? 0.8 : 0;
        double a = 1 + c, b = 1 - c;

        if ((k >= 0 && k < stays) || (again && i >= 2 * P + 900 && i < 2 * P + 1020)) {
            a += 0.6;
            b -= 0.6;
            if (k >= 0 && k < 10)
                a += 3;
        }
        if (fault > 0 && i >= fault && i < fault + 60)
            b += 1.5;
        step(d, i, a + 0.02 * noise(), b + 0.02 * noise(), r);
    }
    ad_detector_free(d);
}

static void test_peaks_after_step(void)
{
    run r;

    run_rows(1 << 30, 5500, 0, &r);
    T_CHECK(raised_in(&r, STEP, STEP + 20) == 1, "the step's onset raised (%d)",
            raised_in(&r, STEP, STEP + 20));
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 0,
            "the first peak after the step raised nothing (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
    T_CHECK(raised_in(&r, 3 * P + 880, 3 * P + 1040) == 0,
            "the second peak after the step raised nothing (%d)",
            raised_in(&r, 3 * P + 880, 3 * P + 1040));
    T_CHECK(raised_in(&r, 5500, 5530) == 1, "a fault that moves the rows another way raised (%d)",
            raised_in(&r, 5500, 5530));
    T_CHECK(raised_in(&r, 0, STEP) == 0, "nothing raised before the step (%d)",
            raised_in(&r, 0, STEP));
}

static void test_step_gone(void)
{
    run r;

    /* the step goes back 5 rows after its alert cleared; the same move
     * at the peak is a change of its own */
    run_rows(20, 0, 1, &r);
    T_CHECK(raised_in(&r, STEP, STEP + 20) == 1, "the step's onset raised (%d)",
            raised_in(&r, STEP, STEP + 20));
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 1,
            "the peak with the move after the rows went back raised (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
}

int main(void)
{
    T_RUN(test_peaks_after_step);
    T_RUN(test_step_gone);
    ad_model_free(g_model);
    return t_done();
}
