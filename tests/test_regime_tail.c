/*
 * test_regime_tail.c - REGIME TAIL (lib/detector.c): as the process
 * enters an accepted regime, the windows holding rows of both states have
 * an error profile of neither (a slow feature lags the others). Judged
 * against the threshold, their brief excess on another feature raised an
 * alert at each onset of a regime that recurs at a time of day; in the
 * run's first 2T - 1 windows
 * (those holding a row of its first window's length) they are judged
 * against the regime. A change that lasts
 * longer still raises, and so does one inside the regime, at once.
 *
 * A regime (sensor a high for 20 rows every 120, a period of 120 s) is
 * accepted at a recurrence. At a later occurrence (row 460) the process
 * enters it through two rows of it, then rows with sensor b high instead
 * (the lag), then the regime:
 *   - a 3-row lag raises nothing;
 *   - the same excess on b for 40 rows raises once past the run's first
 *     2T - 1 windows;
 *   - the same 3 rows inside the regime, 12 rows after its onset, raise
 *     at once.
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
static int g_once;              /* run_pat's restart marks the regime "once" */

/* calibration on 50 windows, raise on one window over, clear after 2
 * below; acceptance after 30 windows, recurrences 150 windows apart at
 * most, at the time of a period of 120 s */
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
    c.alert.accept_gap = 150;
    c.alert.accept_period_ms = 120000;
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

/* Rows: normal (a = b = 1) but a = 3 for 20 rows every 120 from row 100
 * (the regime: raised, accepted at a recurrence), to row 600; `lag` rows
 * from row `at` have a = 1, b = 2.2 instead. Returns the raises from
 * row 450 on in *late, the first one's data time (s) in *first. */
static void run_rows(int at, int lag, run *r, int *late, long long *first)
{
    ad_detector *d = mk();
    int i, before = 0;

    memset(r, 0, sizeof(*r));
    rng = 88172645463325252ull;
    for (i = 0; d && i < 600; i++) {
        int in_reg = i >= 100 && (i - 100) % 120 < 20;
        int in_lag = i >= at && i < at + lag;
        double a = in_reg && !in_lag ? 3 : 1, b = in_lag ? 2.2 : 1;

        if (i == 450)
            before = r->raised;
        step(d, (int64_t)i * 1000, a + 0.05 * noise(), b + 0.05 * noise(), r);
    }
    *late = r->raised - before;
    *first = *late > 0 && before < 8 ? r->raised_s[before] : -1;
    ad_detector_free(d);
}

/* The same regime, but from row `from` the rows follow pat: 'A' the
 * regime (a = 3), 'B' the lag's excess (b = 2.2), else normal; from row
 * 450 on a restart (save and restore) at row `restart` (0: none). */
static void run_pat(const char *pat, int from, int restart, run *r, int *late, long long *first)
{
    ad_detector *d = mk();
    int i, before = 0, n = (int)strlen(pat);

    memset(r, 0, sizeof(*r));
    rng = 88172645463325252ull;
    for (i = 0; d && i < 600; i++) {
        int in_reg = i >= 100 && (i - 100) % 120 < 20, k = i - from;
        double a = in_reg ? 3 : 1, b = 1;

        if (k >= 0 && k < n) {
            a = pat[k] == 'A' ? 3 : 1;
            b = pat[k] == 'B' ? 2.2 : 1;
        }
        if (i == 450)
            before = r->raised;
        if (restart > 0 && i == restart) {
            char *js = ad_detector_save(d);
            ad_detector *d2 = mk();
            char err[200] = "";

            T_CHECK(js != NULL, "state saved");
            if (js != NULL && g_once) {
                /* the regime as one change a promotion put on a schedule */
                const char *key = "\"recurring\":true";
                char *at = strstr(js, key), *o = malloc(strlen(js) + 16);

                T_CHECK(at != NULL && o != NULL, "a recurring regime saved");
                if (at != NULL && o != NULL) {
                    size_t m = (size_t)(at - js) + strlen(key);
                    memcpy(o, js, m);
                    strcpy(o + m, ",\"once\":true");
                    strcat(o, js + m);
                    free(js);
                    js = o;
                } else {
                    free(o);
                }
            }
            T_CHECK(d2 != NULL && ad_detector_restore(d2, js, err, sizeof(err)) == 0,
                    "state restored: %s", err);
            free(js);
            ad_detector_free(d);
            d = d2;
        }
        step(d, (int64_t)i * 1000, a + 0.05 * noise(), b + 0.05 * noise(), r);
    }
    *late = r->raised - before;
    *first = *late > 0 && before < 8 ? r->raised_s[before] : -1;
    ad_detector_free(d);
}

static void test_onset_lag_absorbed(void)
{
    run r;
    int late;
    long long t;

    run_rows(462, 3, &r, &late, &t);
    T_CHECK(r.accepted >= 1, "the regime accepted (%d)", r.accepted);
    T_CHECK(late == 0, "a 3-row lag on b at the regime's onset (windows of 4 rows): %d "
            "alert(s) raised (want 0; first at %lld s)", late, t);
}

static void test_long_change_raises(void)
{
    run r;
    int late;
    long long t;

    run_rows(462, 40, &r, &late, &t);
    T_CHECK(late >= 1 && t >= 462 && t <= 460 + 2 * TW, "b high for 40 rows from the "
            "regime's onset: %d alert(s), the first at %lld s (want one by %d s: the run's "
            "first 2T - 1 windows)", late, t, 460 + 2 * TW);
}

static void test_inside_regime_raises(void)
{
    run r;
    int late;
    long long t;

    run_rows(472, 3, &r, &late, &t);
    T_CHECK(late >= 1 && t >= 472 && t <= 472 + TW, "the 3-row change 12 rows into the "
            "regime: %d alert(s), the first at %lld s (want by %d s: no later than without "
            "the rule)", late, t, 472 + TW);
}

/* Two rows of the regime, a dip of 4 rows (the score under the
 * threshold), the regime again, then the 3-row change 7 rows into it: the
 * dip spent the occurrence's tail, so the change raises at once. */
static void test_fault_after_dip_raises(void)
{
    run r;
    int late;
    long long t;

    run_pat("AAnnnnABBBAAAAAAAAAA", 460, 0, &r, &late, &t);
    T_CHECK(late >= 1 && t >= 467 && t <= 467 + TW, "the 3-row change 7 rows into the "
            "regime after a dip of its score: %d alert(s), the first at %lld s (want by "
            "%d s: one tail per occurrence)", late, t, 467 + TW);
}

/* The occurrence starts 5 s late (P/12 is 10 s): the lag's windows are
 * not near the regime's start (from a window's length before it to
 * 2T - 1 windows' time after, 7 s), so the lag raises. */
static void test_late_onset_not_tail(void)
{
    run r;
    int late;
    long long t;

    run_pat("nnnnnAABBBAAAAAAAAAAAAAA", 460, 0, &r, &late, &t);
    T_CHECK(late >= 1 && t >= 467 && t <= 467 + TW, "a 3-row lag at an onset 5 s after "
            "the regime's start: %d alert(s), the first at %lld s (want by %d s: the tail "
            "only near the start)", late, t, 467 + TW);
}

/* Restored just before the occurrence's onset: the tail is taken as had
 * for the current occurrence (not saved), so the lag raises. */
static void test_restore_spends_tail(void)
{
    run r;
    int late;
    long long t;

    run_pat("AABBBAAAAAAAAAAAAAAA", 460, 458, &r, &late, &t);
    T_CHECK(late >= 1 && t >= 462 && t <= 462 + TW, "a 3-row lag at the onset just after "
            "a restart: %d alert(s), the first at %lld s (want by %d s: the tail counted "
            "as had over a restart)", late, t, 462 + TW);
}

/* A regime accepted from one change that a promotion kept and put on a
 * schedule is a scheduled regime: its onset's lag is absorbed as any
 * scheduled regime's (restored at row 400 marked "once", and unmarked),
 * and the tail stays bounded: the same pattern with the lag going on
 * past the run's first windows raises. */
static void test_once_regime_tail(void)
{
    run r;
    int late;
    long long t;

    run_pat("AABBBAAAAAAAAAAAAAAA", 460, 400, &r, &late, &t);
    T_CHECK(late == 0, "the lag at the onset of a recurring regime restored at row 400: "
            "%d alert(s), the first at %lld s (want 0)", late, t);
    g_once = 1;
    run_pat("AABBBAAAAAAAAAAAAAAA", 460, 400, &r, &late, &t);
    T_CHECK(late == 0, "the lag at the onset of a regime accepted once, on a schedule "
            "since a promotion: %d alert(s), the first at %lld s (want 0)", late, t);
    run_pat("AABBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", 460, 400, &r, &late, &t);
    g_once = 0;
    T_CHECK(late >= 1 && t >= 462 && t <= 460 + 2 * TW, "a lasting change at the onset of "
            "a regime accepted once: %d alert(s), the first at %lld s (want one by %d s: "
            "the tail bounded to the run's first 2T - 1 windows)", late, t, 460 + 2 * TW);
}

int main(void)
{
    T_RUN(test_onset_lag_absorbed);
    T_RUN(test_long_change_raises);
    T_RUN(test_inside_regime_raises);
    T_RUN(test_fault_after_dip_raises);
    T_RUN(test_late_onset_not_tail);
    T_RUN(test_restore_spends_tail);
    T_RUN(test_once_regime_tail);
    ad_model_free(g_model);
    return t_done();
}
