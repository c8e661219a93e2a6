/*
 * test_robust.c - detection that stays right as the data misbehaves or the
 * process changes, through the whole detector (push rows, score windows
 * with a model, read events):
 *   - a constant stream (scores all 0): refused before the floor existed
 *     (calibrating forever, a report per window); now calibrates on the
 *     floor and still alerts on a fault; failure reports are rate-limited;
 *   - one wild reading (50, 1e37) during calibration: the plain quantile is
 *     poisoned, the trimmed and MAD estimators are not, extreme rows are
 *     excluded from calibration;
 *   - a persistent level shift: one raise, closed as accepted, the new
 *     level judged against its own threshold, a later spike on it alerts
 *     again; with
 *     accept_after 0 the alert stays open;
 *   - after an accepted regime (feature a on a new level) the regime's
 *     windows are judged against its own threshold, a different fault
 *     (feature b) below that level still alerts against the threshold;
 *   - a regime that alerts part of the time and clears (accept_gap): the
 *     recurrences are pooled and accepted at the third, later ones stay
 *     quiet; without accept_gap every recurrence alerts; alerts that look
 *     different are not pooled;
 *   - a ramp is not accepted while it still rises (accept_trend);
 *   - two regimes accepted one after the other are both remembered;
 *   - step-down acceptance (alert.stepdown_ratio): a fault plateau, then a
 *     lower level still over the threshold: closed as accepted once the
 *     mean stayed under ratio x its highest, not raised again on that
 *     level; the fault back or a further rise raises; ratio 0 and
 *     accept_after 0 keep the alert open; a restore in the middle of the
 *     step down accepts at the same window;
 *   - alerts on the anomaly probability: a spike alerts, a level shift
 *     alerts and then clears by itself while the raw threshold stays
 *     exceeded; probability and log-likelihood in events and JSON.
 *
 * Model: one TimeDistributed Dense with zero weights and no scaler, so a
 * window's MAE score is the mean |value| over its T rows and F features
 * (the test knows every score without asking the code under test).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cjson/cJSON.h>

#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"
#include "engine.h"
#include "burst.h"

#define F 2

static uint64_t rng = 88172645463325252ull;

/* uniform in [-1, 1) */
static double noise(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

typedef struct run {
    int count[16];            /* events by type */
    int n;
    ad_event ev[256];         /* the first 256 events other than phase */
} run;

static void step2(ad_detector *d, int64_t ts, double a, double b, run *r)
{
    double row[F] = { a, b };
    int T = ad_detector_T(d);
    float in[64 * F], out[64 * F], share[F];
    ad_window_job job;
    ad_event ev;

    ad_detector_push_row(d, ts, row, NULL);
    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, T, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev)) {
        if ((unsigned)ev.type < 16)
            r->count[ev.type]++;
        if (ev.type != AD_EV_PHASE && r->n < 256)
            r->ev[r->n++] = ev;
    }
}

static int nth_ev(const run *r, ad_event_type t, int nth)
{
    int i;

    for (i = 0; i < r->n; i++)
        if (r->ev[i].type == t && nth-- == 0)
            return i;
    return -1;
}

static int warnings;
static void count_log(int level, const char *msg, void *u)
{
    (void)msg;
    (void)u;
    if (level == AD_LOG_WARNING)
        warnings++;
}

static void test_constant_stream(void)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    run r;
    int i, ir;

    /* The finding: no floor -> threshold 0 refused, calibrating forever. */
    ad_detector_cfg_default(&c);
    c.alert.k = 1;          /* the first exceeding window raises */
    c.alert.n = 1;
    c.dq_enabled = 0;    /* estimators in isolation */
    c.calib_windows = 20;
    c.thr.floor = 0;
    ad_log_set(count_log, NULL);
    warnings = 0;
    memset(&r, 0, sizeof(r));
    T_CHECK(ad_detector_new(&d, &c, "flat", m, 0, 0, NULL, err, sizeof(err)) == 0, "%s", err);
    for (i = 0; i < 323; i++)
        step2(d, 1000 * i, 0, 0, &r);
    ad_detector_get_stats(d, &st);
    T_CHECK(st.phase == AD_PHASE_CALIBRATING, "floor 0: still calibrating");
    T_CHECK(st.calib_failures == 301, "failed fits %llu", (unsigned long long)st.calib_failures);
    T_CHECK(r.count[AD_EV_CALIB_FAILED] == 4 && warnings == 4,
            "reports: %d events, %d warnings for 301 failed fits (1 per 100 windows)",
            r.count[AD_EV_CALIB_FAILED], warnings);
    i = nth_ev(&r, AD_EV_CALIB_FAILED, 1);
    T_CHECK(i >= 0 && r.ev[i].n == 100 && strstr(r.ev[i].text, "not a positive number"),
            "second report covers 100 failures: n %llu text %s",
            i >= 0 ? (unsigned long long)r.ev[i].n : 0ULL, i >= 0 ? r.ev[i].text : "");
    T_NOTE("floor 0: %llu failed fits, %d reports: %s", (unsigned long long)st.calib_failures,
           r.count[AD_EV_CALIB_FAILED], r.ev[0].text);
    ad_detector_free(d);
    ad_log_set(NULL, NULL);

    /* With the default floor (0.01 x 1 without training metadata). */
    c.thr.floor = 0.01;
    memset(&r, 0, sizeof(r));
    T_CHECK(ad_detector_new(&d, &c, "flat", m, 0, 0, NULL, err, sizeof(err)) == 0, "%s", err);
    for (i = 0; i < 40; i++)
        step2(d, 1000 * i, 0, 0, &r);
    ad_detector_get_stats(d, &st);
    T_CHECK(st.phase == AD_PHASE_DETECTING && fabs(st.threshold - 0.01) < 1e-12 &&
            st.threshold_floored, "floored threshold %g (floored %d)", st.threshold,
            st.threshold_floored);
    T_CHECK(r.count[AD_EV_CALIB_FAILED] == 0 && r.count[AD_EV_ALERT_RAISED] == 0,
            "no failure, no alert on the flat stream");
    /* a fault: one feature goes to 0.2 -> score 0.025 on the first window */
    for (i = 40; i < 45; i++)
        step2(d, 1000 * i, 0.2, 0, &r);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 0);
    T_CHECK(ir >= 0 && r.ev[ir].alert.start_ms == 40000, "fault alerted at 40 s (got %lld)",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms : -1LL);
    ad_detector_free(d);

    /* The floor follows the model's training error when the model has it,
     * in the stream's units: a mae q99 of 0.5 for an mse stream is 0.25 in
     * squared units; an mse q99 of 0.25 for a mae stream is 0.5 (before,
     * both took the number as recorded: 0.005 and 0.0025) */
    {
        static const struct { const char *meta; ad_metric metric; double want; } fc[] = {
            { "{\"error\":{\"metric\":\"mae\",\"q99\":0.5,\"mean\":0.2}}", AD_METRIC_MAE, 0.005 },
            { "{\"error\":{\"metric\":\"mae\",\"q99\":0.5,\"mean\":0.2}}", AD_METRIC_MSE, 0.0025 },
            { "{\"error\":{\"metric\":\"mse\",\"q99\":0.25,\"mean\":0.04}}", AD_METRIC_MAE, 0.005 },
        };
        for (size_t k = 0; k < sizeof(fc) / sizeof(fc[0]); k++) {
            free(m->training);
            m->training = strdup(fc[k].meta);
            c.metric = fc[k].metric;
            T_CHECK(ad_detector_new(&d, &c, "flat", m, 0, 0, NULL, err, sizeof(err)) == 0,
                    "%s", err);
            for (i = 0; i < 40; i++)
                step2(d, 1000 * i, 0, 0, &r);
            ad_detector_get_stats(d, &st);
            T_CHECK(fabs(st.threshold - fc[k].want) < 1e-12, "%s stream, training error %s: "
                    "floor %g (want %g)", ad_detector_metric_name(fc[k].metric), fc[k].meta,
                    st.threshold, fc[k].want);
            ad_detector_free(d);
        }
    }
    ad_model_free(m);
}

/* Calibrate on 100 windows of ~1 with one reading v at row 50; threshold. */
static double calib_thr(ad_thr_estimator est, double v, double extreme, uint64_t *excluded)
{
    ad_model *m = t_zero_model(10, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    run r;
    int i;

    ad_detector_cfg_default(&c);
    c.dq_enabled = 0;    /* estimators in isolation */
    c.calib_windows = 100;
    c.thr.q = 0.99;
    c.thr.margin = 1.5;
    c.thr.estimator = est;
    c.extreme = extreme;
    memset(&r, 0, sizeof(r));
    rng = 42;
    if (ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        ad_model_free(m);
        return NAN;
    }
    for (i = 0; i < 119; i++)
        step2(d, 1000 * i, i == 50 ? v : 1 + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    ad_detector_get_stats(d, &st);
    if (excluded)   /* kept out of calibration, or not scored at all (absurd) */
        *excluded = st.calib_excluded + st.windows_invalid;
    ad_detector_free(d);
    ad_model_free(m);
    return st.phase == AD_PHASE_DETECTING ? st.threshold : NAN;
}

static void test_poisoned_calibration(void)
{
    const ad_thr_estimator est[3] = { AD_EST_QUANTILE, AD_EST_TRIMMED, AD_EST_MAD };
    const char *nm[3] = { "quantile", "trimmed", "mad" };
    int e;
    uint64_t excl = 0;

    for (e = 0; e < 3; e++) {
        double base = calib_thr(est[e], 1.0, 0, NULL);
        double t50 = calib_thr(est[e], 50, 0, NULL);
        double t37 = calib_thr(est[e], 1e37, 0, NULL);
        double r50 = t50 / base - 1, r37 = t37 / base - 1;
        T_NOTE("estimator %s: clean %.4g, one reading of 50 %.4g (%+.1f%%), of 1e37 %.4g "
               "(%+.3g%%)", nm[e], base, t50, 100 * r50, t37, 100 * r37);
        if (est[e] == AD_EST_QUANTILE) {
            /* the finding: the plain quantile is poisoned by a plausible
             * outlier; an absurd one (1e37: scaled beyond AD_SCALED_MAX)
             * never reaches a scored window, whatever the estimator */
            T_CHECK(r50 > 1.0, "quantile poisoned by a reading of 50: %+.3g", r50);
            T_CHECK(fabs(r37) <= 0.2, "quantile: 1e37 rejected as absurd, threshold %+.3g%%",
                    100 * r37);
        } else {
            T_CHECK(fabs(r50) <= 0.2, "%s: 50 moves the threshold %+.1f%%", nm[e], 100 * r50);
            T_CHECK(fabs(r37) <= 0.2, "%s: 1e37 moves the threshold %+.1f%%", nm[e], 100 * r37);
        }
    }
    /* Extreme rows (scaled |x| > 50, the default) never reach calibration,
     * whatever the estimator: the T = 10 windows holding 1e37 are excluded
     * (1e37 is even beyond AD_SCALED_MAX: those windows are invalid). */
    {
        double base = calib_thr(AD_EST_QUANTILE, 1.0, 50, NULL);
        double t37 = calib_thr(AD_EST_QUANTILE, 1e37, 50, &excl);
        T_CHECK(excl == 10 && fabs(t37 / base - 1) <= 0.2,
                "extreme: %llu windows excluded, threshold %g vs %g",
                (unsigned long long)excl, t37, base);
        T_NOTE("quantile with extreme 50: 1e37 -> %llu windows excluded, threshold %.4g "
               "(clean %.4g)", (unsigned long long)excl, t37, base);
    }
}

static ad_model *g_models[16];
static int g_nmodels;

static void free_models(void)
{
    while (g_nmodels > 0)
        ad_model_free(g_models[--g_nmodels]);
}

/* alert.accept_period_ms of the detectors accept_detector_m makes */
static int64_t acc_period_ms;
static int64_t acc_after_ms;      /* accept_detector: accept_after as data time */
static int acc_onset;             /* alert.accept_onset of those detectors */
static double sd_ratio;           /* alert.stepdown_ratio of those detectors */
static double acc_margin;         /* calibration.margin of those (0: 1.2) */
static double acc_clear;          /* alert.clear_ratio of those (0: 1) */
static int acc_onset_k;                /* alert.k of those (0: 1; n is k + 2 when > 1) */
static int acc_window;                 /* the model's window length (0: 4) */

static ad_detector *accept_detector_m(int accept_after, int gap, double spread, double trend,
                                     int m_clear)
{
    ad_model *m = t_zero_model(acc_window > 0 ? acc_window : 4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.thr.margin = acc_margin > 0 ? acc_margin : 1.2;
    c.alert.k = acc_onset_k > 1 ? acc_onset_k : 1;
    c.alert.n = acc_onset_k > 1 ? acc_onset_k + 2 : 1;
    c.alert.m = m_clear;
    c.alert.clear_ratio = acc_clear > 0 ? acc_clear : 1;
    c.alert.accept_after = accept_after;
    c.alert.accept_gap = gap;
    c.alert.accept_spread = spread;
    c.alert.accept_trend = trend;
    c.alert.accept_period_ms = acc_period_ms;
    c.alert.accept_onset = acc_onset;
    c.alert.stepdown_ratio = sd_ratio;
    c.alert.stepdown_windows = 20;
    c.alert.stepdown_after = 20;
    if (acc_after_ms > 0) {
        c.alert.accept_after = 0;
        c.alert.accept_after_ms = acc_after_ms;
    }
    /* the detector borrows the model: kept until free_models() */
    if (m != NULL && g_nmodels < 16)
        g_models[g_nmodels++] = m;
    if (ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "%s", err);
    return d;
}

static ad_detector *accept_detector(int accept_after, int gap, double spread, double trend)
{
    return accept_detector_m(accept_after, gap, spread, trend, 2);
}

/* Restore state with the number after key made negative (a damaged field)
 * into a fresh accept_detector(30, gap, 3, 0.25): its rc (-2: no such key),
 * the warnings it logged (in `warnings`) and its stats. */
static int restore_damaged(const char *state, const char *key, int gap, ad_detector_stats *st)
{
    const char *p = state ? strstr(state, key) : NULL;
    char *bad, err[200];
    size_t at;
    ad_detector *d;
    int rc;

    memset(st, 0, sizeof(*st));
    if (p == NULL || (bad = malloc(strlen(state) + 2)) == NULL)
        return -2;
    at = (size_t)(p - state) + strlen(key);
    memcpy(bad, state, at);
    bad[at] = '-';
    strcpy(bad + at + 1, state + at);
    d = accept_detector(30, gap, 3, 0.25);
    warnings = 0;
    ad_log_set(count_log, NULL);
    rc = d ? ad_detector_restore(d, bad, err, sizeof(err)) : -1;
    ad_log_set(NULL, NULL);
    if (d)
        ad_detector_get_stats(d, st);
    ad_detector_free(d);
    free(bad);
    return rc;
}

/* Calibrate on ~1, then level 3 from row `shift`, spike 20 at row `spike`. */
static void shift_run(int accept_after, run *r, ad_detector_stats *st, double *thr_after)
{
    ad_detector *d = accept_detector(accept_after, 0, 3, 0.25);
    int i;

    memset(r, 0, sizeof(*r));
    rng = 7;
    *thr_after = NAN;
    if (d == NULL) {
        free_models();
        return;
    }
    for (i = 0; i < 400; i++) {
        double lvl = i >= 100 ? 3.0 : 1.0;
        double a = lvl + 0.05 * noise(), b = lvl + 0.05 * noise();
        if (i == 300)
            a = 20;                         /* a real spike on the new level */
        step2(d, 1000 * i, a, b, r);
        if (i == 299)
        { ad_detector_get_stats(d, st); *thr_after = st->threshold; }
    }
    ad_detector_get_stats(d, st);
    ad_detector_free(d);
    free_models();
}

static void test_regime_acceptance(void)
{
    run r;
    ad_detector_stats st;
    double thr299;
    int ir0, ic0, ia, ir1, ic1;

    shift_run(30, &r, &st, &thr299);
    ir0 = nth_ev(&r, AD_EV_ALERT_RAISED, 0);
    ic0 = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    ir1 = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    ic1 = nth_ev(&r, AD_EV_ALERT_CLEARED, 1);
    T_CHECK(ir0 >= 0 && r.ev[ir0].alert.start_ms == 100000, "shift raised at 100 s");
    T_CHECK(ic0 >= 0 && r.ev[ic0].alert.reason == AD_CLOSE_ACCEPTED &&
            r.ev[ic0].alert.end_ms == 129000, "closed as accepted at 129 s (30 windows): %s %lld",
            ic0 >= 0 ? ad_close_reason_name(r.ev[ic0].alert.reason) : "-",
            ic0 >= 0 ? (long long)r.ev[ic0].alert.end_ms : -1LL);
    T_CHECK(ia >= 0 && r.ev[ia].threshold > 3.0 && r.ev[ia].prev_threshold < 1.5,
            "accepted event: threshold %g -> %g", ia >= 0 ? r.ev[ia].prev_threshold : NAN,
            ia >= 0 ? r.ev[ia].threshold : NAN);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 2 && r.count[AD_EV_ACCEPTED] == 1,
            "raises %d (shift + spike), accepted %d", r.count[AD_EV_ALERT_RAISED],
            r.count[AD_EV_ACCEPTED]);
    T_CHECK(ir1 >= 0 && r.ev[ir1].alert.start_ms == 300000, "spike on the new level at 300 s "
            "alerts (got %lld)", ir1 >= 0 ? (long long)r.ev[ir1].alert.start_ms : -1LL);
    T_CHECK(ic1 >= 0 && r.ev[ic1].alert.reason == AD_CLOSE_CLEARED, "spike alert cleared");
    T_CHECK(st.accepted == 1 && !st.alert_active, "stats: accepted %llu, active %d",
            (unsigned long long)st.accepted, st.alert_active);
    if (ia >= 0)
        T_NOTE("accepted: %s", r.ev[ia].text);
    if (ic0 >= 0) {
        cJSON *j = ad_alert_to_json(&r.ev[ic0].alert, "pump", NULL);
        char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
        T_CHECK(txt && strstr(txt, "\"reason\":\"accepted\""), "JSON: %s", txt ? txt : "");
        free(txt);
        cJSON_Delete(j);
    }

    /* Off switch: the alert stays open to the end. */
    shift_run(0, &r, &st, &thr299);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 1 && r.count[AD_EV_ALERT_CLEARED] == 0 &&
            r.count[AD_EV_ACCEPTED] == 0 && st.alert_active,
            "accept_after 0: raises %d clears %d, still active %d",
            r.count[AD_EV_ALERT_RAISED], r.count[AD_EV_ALERT_CLEARED], st.alert_active);
    T_NOTE("accept_after 0: one alert open for 300 windows, threshold stays %.4g", thr299);
}

/* Window counts are data-rate bound: at calibration the detector logs them
 * in data time and warns once when accept_after windows last longer than
 * the period (settings written for another sample rate). A gap of gap_ms
 * after row 20 (in calibration) does not count as the rate. */
static int spans_warnings(int64_t step_ms, int64_t gap_ms)
{
    ad_detector *d;
    run r;
    int i;

    acc_period_ms = 60000;
    d = accept_detector(30, 0, 3, 0.25);
    acc_period_ms = 0;
    if (d == NULL)
        return -1;
    memset(&r, 0, sizeof(r));
    ad_log_set(count_log, NULL);
    warnings = 0;
    for (i = 0; i < 120; i++)
        step2(d, step_ms * i + (i >= 20 ? gap_ms : 0), 1.0 + 0.01 * (i % 3), 0, &r);
    ad_log_set(NULL, NULL);
    T_CHECK(r.count[AD_EV_CALIBRATED] == 1, "calibrated (step %lld ms)", (long long)step_ms);
    ad_detector_free(d);
    return warnings;
}

static void test_spans_in_data_time(void)
{
    int w1 = spans_warnings(1000, 0), w5 = spans_warnings(5000, 0);
    int wg = spans_warnings(1000, 200000);

    T_CHECK(w1 == 0, "30 windows of 1 s within a 60 s period: %d warnings", w1);
    T_CHECK(wg == 0, "the same with a 200 s gap in calibration: %d warnings", wg);
    T_CHECK(w5 == 1, "30 windows of 5 s = 150 s, longer than the 60 s period: %d warnings "
            "(want 1)", w5);
}

/* Rows from..to-1 two seconds apart: level 1, from row 100 on 3 (a shift
 * that persists), with noise. */
static void shift_rows_2s(ad_detector *d, int from, int to, run *r)
{
    int i;

    for (i = from; i < to; i++) {
        double lvl = i >= 100 ? 3.0 : 1.0;
        step2(d, 2000 * i, lvl + 0.05 * noise(), lvl + 0.05 * noise(), r);
    }
}

/* alert.accept_after_ms across a restore with the shift's alert open: 110
 * rows of 2 s, saved, restored into a fresh detector, 150 more rows of the
 * new level. damage: the saved window period made negative. *closed: when
 * the alert closed as accepted (-1: not), *len: the regime's length_ms,
 * *warns: warnings logged by the restore and after. */
static void restored_accept(int damage, long long *closed, long long *len, int *warns)
{
    ad_detector *d, *d2;
    run r;
    char *state, err[200], *p;
    int rc, ic;

    *closed = *len = -1;
    *warns = -1;
    acc_after_ms = 60000;
    d = accept_detector(0, 0, 3, 0.25);
    d2 = accept_detector(0, 0, 3, 0.25);
    acc_after_ms = 0;
    if (d == NULL || d2 == NULL) {
        ad_detector_free(d);
        ad_detector_free(d2);
        return;
    }
    memset(&r, 0, sizeof(r));
    rng = 7;
    shift_rows_2s(d, 0, 110, &r);
    state = ad_detector_save(d);
    p = state ? strstr(state, "\"window_ms\":") : NULL;
    T_CHECK(p && atoll(p + strlen("\"window_ms\":")) == 2000 &&
            r.count[AD_EV_ALERT_RAISED] == 1 && r.count[AD_EV_ACCEPTED] == 0,
            "saved with the window period (%.20s) and the shift's alert open (raises %d)",
            p ? p : "none", r.count[AD_EV_ALERT_RAISED]);
    if (damage && p)
        p[strlen("\"window_ms\":")] = '-';
    ad_log_set(count_log, NULL);
    warnings = 0;
    rc = state ? ad_detector_restore(d2, state, err, sizeof(err)) : -1;
    T_CHECK(rc == 0, "restore: %s", rc ? err : "ok");
    memset(&r, 0, sizeof(r));
    if (rc == 0)
        shift_rows_2s(d2, 110, 260, &r);
    ad_log_set(NULL, NULL);
    *warns = warnings;
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    if (ic >= 0 && r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED && r.count[AD_EV_ACCEPTED] == 1)
        *closed = r.ev[ic].alert.end_ms;
    free(state);
    state = ad_detector_save(d2);
    p = state ? strstr(state, "\"length_ms\":") : NULL;
    if (p)
        *len = atoll(p + strlen("\"length_ms\":"));
    free(state);
    ad_detector_free(d);
    ad_detector_free(d2);
    free_models();
}

/* The window period is saved with the state: after a restore, acceptance
 * in data time resumes at once, and an alert open across the restore
 * continues its count (the 10 windows before it count: 30 windows of
 * 2 s, the restore's empty window ring skipping 3 rows, accepted at
 * 264 s; the regime it becomes is as long as the alert, not measured from
 * time 0). A damaged period is named in a warning and measured again (31
 * intervals); the acceptance progress, which needs the period, counts
 * again from then. */
static void test_accept_after_ms_restored(void)
{
    long long closed, len, closed2, len2;
    int w, w2;

    restored_accept(0, &closed, &len, &w);
    T_NOTE("after the restore: accepted at %lld, regime length %lld ms", closed, len);
    T_CHECK(closed >= 258000 && closed <= 268000 && len > 0 && len <= closed - 200000 && w == 0,
            "accepted at %lld (the alert's 10 windows before the restore count), regime "
            "length %lld ms (at most the alert's, from 200 s), %d warnings", closed, len, w);
    restored_accept(1, &closed2, &len2, &w2);
    T_NOTE("damaged period: accepted at %lld, regime length %lld ms, %d warning(s)", closed2,
           len2, w2);
    T_CHECK(closed2 > 282000 && len2 > 0 && len2 <= closed2 - 200000 && w2 == 1,
            "damaged window_ms: one warning (%d), measured again (31 intervals from 220 s), "
            "accepted at %lld, regime length %lld", w2, closed2, len2);
}

/* alert.accept_after_ms shorter than a few windows (a slow stream: 8 h of
 * daily rows is one window): acceptance is judged on at least 10 windows,
 * with one warning naming the key. 4 s of 2 s windows are 2 windows, raised
 * to 10: the shift's alert (from 200 s) is accepted 9 intervals after its
 * start (218 s, one window later with the noise), not on the window after
 * it. */
static void test_accept_after_ms_floor(void)
{
    ad_detector *d;
    ad_detector_stats st;
    run r;
    int ic;

    acc_after_ms = 4000;
    d = accept_detector(0, 0, 3, 0.25);
    acc_after_ms = 0;
    if (d == NULL)
        return;
    memset(&r, 0, sizeof(r));
    rng = 7;
    warnings = 0;
    ad_log_set(count_log, NULL);
    shift_rows_2s(d, 0, 300, &r);
    ad_log_set(NULL, NULL);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    ad_detector_get_stats(d, &st);
    T_NOTE("accept_after_ms 4 s at 2 s windows: %d windows, closed (%s) at %lld",
           st.accept_after, ic >= 0 ? ad_close_reason_name(r.ev[ic].alert.reason) : "-",
           ic >= 0 ? (long long)r.ev[ic].alert.end_ms : -1LL);
    T_CHECK(ic >= 0 && r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED &&
            r.ev[ic].alert.end_ms >= 218000 && r.ev[ic].alert.end_ms <= 222000 && st.accept_after == 10 && warnings == 1,
            "accepted at %lld (want 218000-222000: 10 windows, not 2), accept_after %d, %d warnings",
            ic >= 0 ? (long long)r.ev[ic].alert.end_ms : -1LL, st.accept_after, warnings);
    ad_detector_free(d);
    free_models();
}

/* alert.accept_after_ms: the same acceptance as accept_after windows, in
 * data time: 60 s of 2 s windows are 30 windows, accepted 29 intervals
 * (58 s) after the shift's alert starts. */
static void test_accept_after_ms(void)
{
    ad_detector *d;
    run r;
    int ir, ic;

    acc_after_ms = 60000;
    d = accept_detector(0, 0, 3, 0.25);
    acc_after_ms = 0;
    if (d == NULL)
        return;
    memset(&r, 0, sizeof(r));
    rng = 7;
    shift_rows_2s(d, 0, 300, &r);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 0);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(ir >= 0 && ic >= 0 && r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED &&
            r.ev[ir].alert.start_ms == 200000 && r.ev[ic].alert.end_ms == 258000,
            "raised at %lld, closed (%s) at %lld (want 200000, accepted, 258000)",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms : -1LL,
            ic >= 0 ? ad_close_reason_name(r.ev[ic].alert.reason) : "-",
            ic >= 0 ? (long long)r.ev[ic].alert.end_ms : -1LL);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 1 && r.count[AD_EV_ACCEPTED] == 1,
            "raises %d, accepted %d", r.count[AD_EV_ALERT_RAISED], r.count[AD_EV_ACCEPTED]);
    {
        ad_detector_stats st;
        ad_detector_get_stats(d, &st);
        T_CHECK(st.accept_after == 30 && st.window_s == 2.0,
                "stats: accept_after %d windows of %g s", st.accept_after, st.window_s);
    }
    ad_detector_free(d);
    free_models();
    test_accept_after_ms_restored();
    test_accept_after_ms_floor();
}

static void test_regime_keeps_sensitivity(void)
{
    ad_detector *d = accept_detector(30, 0, 3, 0.25);
    ad_detector_stats st;
    run r;
    int i, raised_regime, ia, ifault;

    memset(&r, 0, sizeof(r));
    rng = 11;
    for (i = 0; d && i < 300; i++) {
        double a = 1, b = 1;
        if (i >= 100 && i < 250)
            a = 5;                          /* the regime: a on a new level */
        if (i >= 250 && i < 270)
            b = 3.5;                        /* a fault on b, a back at 1 */
        step2(d, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), &r);
        if (i == 249) {
            ad_detector_get_stats(d, &st);
            raised_regime = r.count[AD_EV_ALERT_RAISED];
            T_CHECK(raised_regime == 1 && st.accepted == 1 && st.windows_regime > 100,
                    "regime: raised %d, accepted %llu, %llu windows judged as the regime",
                    raised_regime, (unsigned long long)st.accepted,
                    (unsigned long long)st.windows_regime);
        }
    }
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    ifault = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(ia >= 0 && r.ev[ia].threshold > 3.0 && r.ev[ia].prev_threshold < 1.5,
            "accepted: regime threshold %g, threshold %g", ia >= 0 ? r.ev[ia].threshold : NAN,
            ia >= 0 ? r.ev[ia].prev_threshold : NAN);
    /* the fault scores ~2.25: under the regime's threshold (> 3), over the
     * threshold (~1.25); with the old rebased threshold it went unseen */
    T_CHECK(ifault >= 0 && r.ev[ifault].alert.start_ms >= 250000 &&
            r.ev[ifault].alert.start_ms <= 253000 && r.ev[ifault].threshold < 1.5,
            "fault on b after the regime alerted at %lld against %g",
            ifault >= 0 ? (long long)r.ev[ifault].alert.start_ms : -1LL,
            ifault >= 0 ? r.ev[ifault].threshold : NAN);
    if (ia >= 0)
        T_NOTE("accepted: %s", r.ev[ia].text);
    ad_detector_free(d);
    free_models();
}

/* Two regimes, a on 5 (rows 100-199) then b on 5 (rows 250-349), each
 * accepted; both are remembered: a on 5 again (rows 400-449) and b on 5
 * again (rows 500-549) raise nothing. */
static void test_two_regimes(void)
{
    ad_detector *d = accept_detector(30, 0, 3, 0.25);
    ad_detector_stats st;
    run r;
    int i;

    memset(&r, 0, sizeof(r));
    rng = 17;
    for (i = 0; d && i < 600; i++) {
        int ra = (i >= 100 && i < 200) || (i >= 400 && i < 450);
        int rb = (i >= 250 && i < 350) || (i >= 500 && i < 550);
        step2(d, 1000 * i, (ra ? 5 : 1) + 0.05 * noise(), (rb ? 5 : 1) + 0.05 * noise(), &r);
    }
    if (d)
        ad_detector_get_stats(d, &st);
    T_CHECK(d && r.count[AD_EV_ACCEPTED] == 2 && r.count[AD_EV_ALERT_RAISED] == 2 &&
            st.regimes == 2,
            "two regimes: accepted %d, raised %d, remembered %d", r.count[AD_EV_ACCEPTED],
            r.count[AD_EV_ALERT_RAISED], d ? st.regimes : -1);
    ad_detector_free(d);
    free_models();
}

/* The accepted regime survives a restart (the state file): a detector
 * restored at row 200 judges the regime's windows against its threshold
 * and still alerts on the fault on b. */
static void test_regime_restored(void)
{
    ad_detector *d = accept_detector(30, 0, 3, 0.25), *d2;
    ad_detector_stats st;
    char *state = NULL, err[200];
    run r;
    int i, rc;

    memset(&r, 0, sizeof(r));
    rng = 11;
    for (i = 0; d && i < 200; i++)
        step2(d, 1000 * i, (i >= 100 ? 5 : 1) + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    state = d ? ad_detector_save(d) : NULL;
    T_CHECK(state && strstr(state, "\"regimes\":[{\"threshold\"") &&
            strstr(state, "\"recurring\":false"), "state holds the regime (one change, not "
            "recurring): %.200s", state ? state : "(none)");
    d2 = accept_detector(30, 0, 3, 0.25);
    rc = d2 && state ? ad_detector_restore(d2, state, err, sizeof(err)) : -1;
    T_CHECK(rc == 0, "restore: %s", rc ? err : "ok");
    {
        /* the alert it was accepted from (its time of day, should a
         * promotion keep it) survives the restore; damaged, it is named in
         * a warning and the regime kept */
        char *s2 = rc == 0 ? ad_detector_save(d2) : NULL, *a1, *a2;
        int rc4;
        a1 = state ? strstr(state, "\"since_ms\":") : NULL;
        a2 = s2 ? strstr(s2, "\"since_ms\":") : NULL;
        T_CHECK(a1 && a2 && strncmp(a1, a2, strcspn(a1, "p")) == 0,
                "since_ms/length_ms saved and restored: %.60s / %.60s", a1 ? a1 : "-",
                a2 ? a2 : "-");
        if (a1 && (rc4 = restore_damaged(state, "\"length_ms\":", 0, &st)) != -2)
            T_CHECK(rc4 == 0 && warnings == 1 && st.regimes == 1,
                    "damaged since/length: restore %d, %d warning(s), %d regime(s)", rc4,
                    warnings, st.regimes);
        free(s2);
    }
    memset(&r, 0, sizeof(r));
    for (i = 200; d2 && rc == 0 && i < 300; i++) {
        double a = i < 250 ? 5 : 1, b = i >= 250 && i < 270 ? 3.5 : 1;
        step2(d2, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), &r);
    }
    if (d2)
        ad_detector_get_stats(d2, &st);
    T_CHECK(d2 && r.count[AD_EV_ALERT_RAISED] == 1 && st.windows_regime >= 45 &&
            nth_ev(&r, AD_EV_ALERT_RAISED, 0) >= 0 &&
            r.ev[nth_ev(&r, AD_EV_ALERT_RAISED, 0)].alert.start_ms >= 250000,
            "after the restore: %d raises (the fault only), %llu windows judged as the regime",
            r.count[AD_EV_ALERT_RAISED], d2 ? (unsigned long long)st.windows_regime : 0ULL);
    /* a damaged regime in the state file: named in a warning, dropped; the
     * rest of the state is restored */
    if ((rc = restore_damaged(state, "\"regimes\":[{\"threshold\":", 0, &st)) != -2)
        T_CHECK(rc == 0 && warnings == 1 && st.regimes == 0 && st.phase == AD_PHASE_DETECTING,
                "damaged regime: restore %d, %d warning(s), %d regimes, detecting %d", rc,
                warnings, st.regimes, st.phase == AD_PHASE_DETECTING);
    free(state);
    ad_detector_free(d);
    ad_detector_free(d2);
    free_models();
}

/* A regime accepted from one persistent change, with a period: while
 * windows keep being judged against it its length grows, so the time of day
 * a promotion may keep it at covers the whole change (rows 100-350 here),
 * not only the alert up to its acceptance; saved as length_ms. */
static void test_regime_length_extends(void)
{
    ad_detector *d;
    run r;
    char *s1 = NULL, *s2 = NULL, *p;
    double l1 = -1, l2 = -1;
    int i;

    acc_period_ms = 600000;
    d = accept_detector(30, 0, 3, 0.25);
    memset(&r, 0, sizeof(r));
    rng = 17;
    for (i = 0; d && i < 420; i++) {
        step2(d, 1000 * i, (i >= 100 && i < 350 ? 5 : 1) + 0.05 * noise(),
              1 + 0.05 * noise(), &r);
        if (r.count[AD_EV_ACCEPTED] == 1 && s1 == NULL)
            s1 = ad_detector_save(d);
    }
    s2 = d ? ad_detector_save(d) : NULL;
    if (s1 && (p = strstr(s1, "\"length_ms\":")) != NULL)
        l1 = strtod(p + 12, NULL);
    if (s2 && (p = strstr(s2, "\"length_ms\":")) != NULL)
        l2 = strtod(p + 12, NULL);
    T_NOTE("length at acceptance %.0f ms, at the end %.0f ms", l1, l2);
    T_CHECK(r.count[AD_EV_ACCEPTED] == 1 && l1 > 0 && l1 < 150000 && l2 >= 230000 &&
            l2 <= 256000, "regime length: %.0f ms at acceptance, %.0f ms after the change "
            "(250 s long)", l1, l2);
    acc_period_ms = 0;
    free(s1);
    free(s2);
    ad_detector_free(d);
    free_models();
}

/* a = 3 for 15 rows of every 60 from row 100 (a regime that comes and goes) */
static void recurring_run(ad_detector *d, run *r, int b_instead_at)
{
    int i;

    memset(r, 0, sizeof(*r));
    rng = 5;
    for (i = 0; d && i < 460; i++) {
        double a = 1, b = 1;
        int on = i >= 100 && (i - 100) % 60 < 15;
        int k = (i - 100) / 60;
        if (on && k == b_instead_at)
            b = 3;                          /* this time b: another change */
        else if (on)
            a = 3;
        step2(d, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), r);
    }
}

/* recurring_run on a fresh detector (accept_after A, accept_gap G): its
 * events in *r and final stats in *st. */
static void recurring_stats(int A, int G, int b_instead_at, run *r, ad_detector_stats *st)
{
    ad_detector *d = accept_detector(A, G, 3, 0.25);

    recurring_run(d, r, b_instead_at);
    memset(st, 0, sizeof(*st));
    if (d)
        ad_detector_get_stats(d, st);
    ad_detector_free(d);
}

static void test_recurring_regime(void)
{
    ad_detector *d;
    ad_detector_stats st;
    run r;
    int ic, k, accepted_at = -1;

    recurring_stats(30, 60, -1, &r, &st);
    for (k = 0; (ic = nth_ev(&r, AD_EV_ALERT_CLEARED, k)) >= 0; k++)
        if (r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED)
            accepted_at = k;
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 3 && st.accepted == 1 && accepted_at == 2,
            "accept_gap 60: %d raises of 6 recurrences, accepted %llu (clear %d)",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted, accepted_at);
    T_CHECK(st.windows_regime > 30, "%llu later windows judged as the regime",
            (unsigned long long)st.windows_regime);

    /* the regime accepted from recurrences is marked so in the state (it
     * outlives a promotion) and keeps the mark over a restore; on a
     * schedule (a period) it saves at_ms/span_ms */
    acc_period_ms = 60000;
    d = accept_detector(30, 60, 3, 0.25);
    recurring_run(d, &r, -1);
    {
        char *s1 = d ? ad_detector_save(d) : NULL, *s2 = NULL, err[200];
        ad_detector *d2 = accept_detector(30, 60, 3, 0.25);
        int rc = d2 && s1 ? ad_detector_restore(d2, s1, err, sizeof(err)) : -1;
        if (rc == 0)
            s2 = ad_detector_save(d2);
        /* a damaged schedule: named in a warning, the regime kept */
        {
            ad_detector_stats st3;
            int rc3 = restore_damaged(s1, "\"span_ms\":", 60, &st3);
            T_CHECK(rc3 == 0 && warnings == 1 && st3.regimes == 1,
                    "damaged schedule: restore %d (-2: no span_ms saved), %d warning(s), "
                    "%d regime(s)", rc3, warnings, st3.regimes);
        }
        T_CHECK(s1 && strstr(s1, "\"recurring\":true") && s2 &&
                strstr(s2, "\"recurring\":true"),
                "state: the recurring regime marked, also after a restore (%d): %.120s", rc,
                s1 && strstr(s1, "\"regimes\"") ? strstr(s1, "\"regimes\"") : "(none)");
        free(s1);
        free(s2);
        ad_detector_free(d2);
    }
    ad_detector_free(d);
    acc_period_ms = 0;

    recurring_stats(30, 0, -1, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 6 && st.accepted == 0,
            "accept_gap 0: %d raises of 6 recurrences, accepted %llu",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted);

    /* accept_after 60 with recurrences of 15 windows: a chain of three
     * recurrences needs 60 / 3 pooled windows, not 60 (four recurrences) */
    recurring_stats(60, 60, -1, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 3 && st.accepted == 1,
            "accept_after 60, recurrences of 15: %d raises, accepted %llu",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted);

    /* a flapping alert (15 on, 5 off) is one occurrence, not recurrences:
     * it needs accept_after (60) pooled windows, four alerts, not 60 / 3 */
    {
        int i, raised_before = -1;
        d = accept_detector(60, 60, 3, 0.25);
        memset(&r, 0, sizeof(r));
        rng = 5;
        for (i = 0; d && i < 300; i++) {
            int on = i >= 100 && i < 220 && (i - 100) % 20 < 15;
            step2(d, 1000 * i, (on ? 3 : 1) + 0.05 * noise(), 1 + 0.05 * noise(), &r);
            if (raised_before < 0 && r.count[AD_EV_ACCEPTED] > 0)
                raised_before = r.count[AD_EV_ALERT_RAISED];
        }
        T_CHECK(raised_before >= 4, "flapping: accepted after %d raises (not at the third)",
                raised_before);
        ad_detector_free(d);
    }

    /* accept_period_ms: recurrences every 60 s are on a 60 s schedule (the
     * same as without it), not on a 47 s one (no start within 47/12 s of
     * an earlier one's phase: 60, 120, 180, 240 s are 13, 26, 39, 5 s off) */
    acc_period_ms = 60000;
    recurring_stats(30, 60, -1, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 3 && st.accepted == 1,
            "accept_period_ms 60000: %d raises, accepted %llu", r.count[AD_EV_ALERT_RAISED],
            (unsigned long long)st.accepted);
    /* ... and the regime it accepts applies at its time: the same change
     * at its phase stays quiet, off its phase (45 s into the minute) it
     * alerts */
    d = accept_detector(30, 60, 3, 0.25);
    recurring_run(d, &r, -1);
    {
        int i, raised0 = r.count[AD_EV_ALERT_RAISED], raised_on = -1;
        char *st_json = d ? ad_detector_save(d) : NULL;
        for (i = 460; d && i < 580; i++) {
            int on = (i - 100) % 60 < 15 || (i >= 505 && i < 515);
            step2(d, 1000 * i, (on ? 3 : 1) + 0.05 * noise(), 1 + 0.05 * noise(), &r);
            if (i == 504)
                raised_on = r.count[AD_EV_ALERT_RAISED];
        }
        T_CHECK(d && st_json && strstr(st_json, "\"at_ms\"") && raised_on == raised0 &&
                r.count[AD_EV_ALERT_RAISED] == raised0 + 1,
                "schedule: at its phase %d raises, off it %d (state: %.140s)",
                raised_on - raised0, r.count[AD_EV_ALERT_RAISED] - raised_on,
                st_json && strstr(st_json, "\"regimes\"") ? strstr(st_json, "\"regimes\"") : "-");
        free(st_json);
    }
    ad_detector_free(d);
    /* two changes on one schedule, alternating (a at the minute, b half a
     * minute later: a speed change and its return): each counts its own
     * recurrences and both are accepted; without a period they break each
     * other's chain and every one alerts */
    {
        int per, i;
        for (per = 1; per >= 0; per--) {
            acc_period_ms = per ? 60000 : 0;
            d = accept_detector(30, 60, 3, 0.25);
            memset(&r, 0, sizeof(r));
            rng = 9;
            for (i = 0; d && i < 700; i++) {
                int ph = (i - 100) % 60, on = i >= 100;
                double a = on && ph < 12 ? 3 : 1, b = on && ph >= 30 && ph < 42 ? 3 : 1;
                step2(d, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), &r);
            }
            if (d)
                ad_detector_get_stats(d, &st);
            T_NOTE("alternating, period %lld: %d raises of 20 recurrences, accepted %llu, "
                   "regimes %d", (long long)acc_period_ms, r.count[AD_EV_ALERT_RAISED],
                   d ? (unsigned long long)st.accepted : 0ULL, d ? st.regimes : -1);
            if (per)
                T_CHECK(d && st.accepted == 2 && st.regimes == 2 &&
                        r.count[AD_EV_ALERT_RAISED] <= 6,
                        "alternating on a schedule: %d raises, accepted %llu",
                        r.count[AD_EV_ALERT_RAISED], d ? (unsigned long long)st.accepted : 0ULL);
            else
                T_CHECK(d && r.count[AD_EV_ALERT_RAISED] >= 16,
                        "alternating, no period: %d raises", r.count[AD_EV_ALERT_RAISED]);
            ad_detector_free(d);
        }
        acc_period_ms = 60000;
    }
    /* the same change at two times of day (a raised at the minute and half
     * a minute later: a speed drop and its return can share an error
     * profile): two regimes on the schedule, one for each time; the second
     * accepted does not take the first one's place (which then alerts
     * again and is accepted again, in turn) */
    {
        int i, raised_late = -1;
        acc_period_ms = 60000;
        d = accept_detector(30, 60, 3, 0.25);
        memset(&r, 0, sizeof(r));
        rng = 13;
        for (i = 0; d && i < 1300; i++) {
            int ph = (i - 100) % 60, on = i >= 100 && (ph < 12 || (ph >= 30 && ph < 42));
            step2(d, 1000 * i, (on ? 3 : 1) + 0.05 * noise(), 1 + 0.05 * noise(), &r);
            if (i == 700)
                raised_late = r.count[AD_EV_ALERT_RAISED];
        }
        if (d)
            ad_detector_get_stats(d, &st);
        T_NOTE("one profile at two times: %d raises by row 700, %d after it, %d regimes",
               raised_late, r.count[AD_EV_ALERT_RAISED] - raised_late, d ? st.regimes : -1);
        T_CHECK(d && st.regimes == 2 && raised_late >= 0 &&
                r.count[AD_EV_ALERT_RAISED] == raised_late,
                "one profile at two times: %d raises by row 700, %d after it (of 20), "
                "%d regimes, accepted %llu", raised_late,
                r.count[AD_EV_ALERT_RAISED] - raised_late, d ? st.regimes : -1,
                d ? (unsigned long long)st.accepted : 0ULL);
        ad_detector_free(d);
    }
    /* starts that wander (an alert starts when a broad peak crosses the
     * threshold): +4 s, -3 s off the minute, within 60/12 s, are on the
     * schedule: accepted at the third (with 60/24 s, at the fifth); +11 s,
     * -9 s are not: never. (The regime then applies from 60/24 s before
     * the third's start, so the fourth, 7 s later, alerts at its end.) */
    {
        static const int jit[2][5] = { { 0, 4, -3, 4, 0 }, { 0, 11, -9, 11, -9 } };
        int w, i, c;
        for (w = 0; w < 2; w++) {
            acc_period_ms = 60000;
            d = accept_detector(30, 60, 3, 0.25);
            memset(&r, 0, sizeof(r));
            rng = 17;
            for (i = 0; d && i < 420; i++) {
                int on = 0;
                for (c = 0; c < 5; c++)
                    on |= i >= 100 + 60 * c + jit[w][c] && i < 115 + 60 * c + jit[w][c];
                step2(d, 1000 * i, (on ? 3 : 1) + 0.05 * noise(), 1 + 0.05 * noise(), &r);
            }
            if (d)
                ad_detector_get_stats(d, &st);
            c = nth_ev(&r, AD_EV_ALERT_CLEARED, 2);
            T_CHECK(d && (w == 0 ? st.accepted == 1 && c >= 0 &&
                                   r.ev[c].alert.reason == AD_CLOSE_ACCEPTED
                                 : st.accepted == 0 && r.count[AD_EV_ALERT_RAISED] == 5),
                    "starts %+d %+d %+d %+d s off the minute: %d raises, accepted %llu "
                    "(the third closed as %s)", jit[w][1], jit[w][2], jit[w][3], jit[w][4],
                    r.count[AD_EV_ALERT_RAISED], d ? (unsigned long long)st.accepted : 0ULL,
                    c >= 0 ? ad_close_reason_name(r.ev[c].alert.reason) : "-");
            ad_detector_free(d);
        }
    }
    acc_period_ms = 47000;
    recurring_stats(30, 60, -1, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 6 && st.accepted == 0,
            "accept_period_ms 47000: %d raises of 6 recurrences, accepted %llu",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted);
    acc_period_ms = 0;

    /* the second recurrence is on b: it does not continue a's chain, so
     * a's alerts reach three only at the fourth recurrence */
    recurring_stats(30, 60, 1, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] >= 4 && st.accepted <= 1,
            "a, b, a, a..: %d raises, accepted %llu", r.count[AD_EV_ALERT_RAISED],
            (unsigned long long)st.accepted);
    free_models();
}

/* A change on a (15 rows at 3) starting at rows 100, 140, 180 and then at
 * row `last`, on feature b instead when on_b; a period of 120 rows (one a
 * second, alert.accept_period_ms 120 s): the first three start at phases
 * 100, 20 and 60, on no schedule (a level shift's daily peaks at 12:00,
 * 17:00 and 07:00); a fourth at row 220 starts at the first one's phase
 * (the next day's 12:00). Events in *r, stats in *st. */
static void onset_run(int onset, int last, int on_b, run *r, ad_detector_stats *st)
{
    static const int start[3] = { 100, 140, 180 };
    ad_detector *d;
    int i, c;

    acc_period_ms = 120000;
    acc_onset = onset;
    d = accept_detector(30, 60, 3, 0.25);
    memset(r, 0, sizeof(*r));
    memset(st, 0, sizeof(*st));
    rng = 21;
    for (i = 0; d && i < 300; i++) {
        double a = 1, b = 1;
        for (c = 0; c < 3; c++)
            if (i >= start[c] && i < start[c] + 15)
                a = 3;
        if (i >= last && i < last + 15) {
            if (on_b)
                b = 3;
            else
                a = 3;
        }
        step2(d, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), r);
    }
    if (d)
        ad_detector_get_stats(d, st);
    ad_detector_free(d);
    acc_period_ms = 0;
    acc_onset = 0;
}

/* A change on a (15 rows at 3) at rows 100 and 220 only (the next day's
 * same hour, period 120 s, accept_gap 120 windows), with
 * alert.accept_onset 1; the second at level `second` instead of 3 when
 * > 0. */
static void onset1_run_at(double second, run *r, ad_detector_stats *st)
{
    ad_detector *d;
    int i;

    acc_period_ms = 120000;
    acc_onset = 1;
    d = accept_detector(30, 120, 3, 0.25);  /* a gap of a period: the chain waits a day */
    memset(r, 0, sizeof(*r));
    memset(st, 0, sizeof(*st));
    rng = 21;
    for (i = 0; d && i < 300; i++) {
        double a = (i >= 100 && i < 115) || (i >= 220 && i < 235) ? 3 : 1;
        if (second > 0 && i >= 220 && i < 235)
            a = second;
        step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), r);
    }
    if (d)
        ad_detector_get_stats(d, st);
    ad_detector_free(d);
    acc_period_ms = 0;
    acc_onset = 0;
}

static void onset1_run(run *r, ad_detector_stats *st)
{
    onset1_run_at(0, r, st);
}

/* A change on a (level 3) for len[c] rows from row start[c], c < n; a
 * period of 240 rows (one a second), accept_after 60, accept_gap 240 and
 * alert.accept_onset `onset`. Events in *r, stats in *st, the detector's
 * saved state in *state (the caller frees it). */
static int sched_rows = 720;    /* rows onset_sched_run pushes */

static void onset_sched_run(int onset, const int *start, const int *len, int n, run *r,
                            ad_detector_stats *st, char **state)
{
    ad_detector *d;
    int i, c;

    acc_period_ms = 240000;
    acc_onset = onset;
    d = accept_detector(60, 240, 3, 0.25);
    memset(r, 0, sizeof(*r));
    memset(st, 0, sizeof(*st));
    *state = NULL;
    rng = 23;
    for (i = 0; d && i < sched_rows; i++) {
        double a = 1;
        for (c = 0; c < n; c++)
            if (i >= start[c] && i < start[c] + len[c])
                a = 3;
        step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), r);
    }
    if (d) {
        ad_detector_get_stats(d, st);
        *state = ad_detector_save(d);
    }
    ad_detector_free(d);
    acc_period_ms = 0;
    acc_onset = 0;
}

/* A regime accepted at a recurrence's onset is a regime of recurrences on
 * a schedule, whatever accept_onset's count: it applies at the time of its
 * occurrences only (and, being recurring, a promotion that hardly sees it
 * keeps it), and its time covers every occurrence at that phase, up to the
 * end of an earlier one that started later in the day than the onset. */
static void test_accept_onset_schedule(void)
{
    /* accept_onset 1: rows 100-139 (phase 100), accepted at the onset of
     * rows 322-379 (phase 82); the change at phase 210 (rows 450-464) is
     * off its time and raises; rows 562-619 are the regime's */
    static const int s1[4] = { 100, 322, 450, 562 }, l1[4] = { 40, 58, 15, 58 };
    /* accept_onset 2: rows 100-139 and 340-379 (phase 100), accepted at the
     * onset of rows 562-619 (phase 82), which end at the earlier ones'
     * phase: their end is the regime's time too */
    static const int s2[3] = { 100, 340, 562 }, l2[3] = { 40, 40, 58 };
    ad_detector_stats st;
    char *state = NULL;
    run r;
    int ia, ir;

    onset_sched_run(1, s1, l1, 4, &r, &st, &state);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(st.accepted == 1 && ia >= 0 && r.ev[ia].ts_ms >= 322000 && r.ev[ia].ts_ms < 330000 &&
            strstr(r.ev[ia].text, "onset") != NULL && r.count[AD_EV_ALERT_RAISED] == 2 &&
            ir >= 0 && r.ev[ir].ts_ms >= 450000 && r.ev[ir].ts_ms < 470000,
            "accept_onset 1: accepted %llu at row %lld; %d raises, the second at row %lld "
            "(the change off the regime's time)", (unsigned long long)st.accepted,
            ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL, r.count[AD_EV_ALERT_RAISED],
            ir >= 0 ? (long long)r.ev[ir].ts_ms / 1000 : -1LL);
    T_CHECK(state != NULL && strstr(state, "\"recurring\":true") != NULL &&
            strstr(state, "\"span_ms\"") != NULL,
            "accept_onset 1: the regime is saved as recurring on a schedule: %.300s",
            state && strstr(state, "\"regimes\"") ? strstr(state, "\"regimes\"") : "-");
    free(state);

    onset_sched_run(2, s2, l2, 3, &r, &st, &state);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 2);
    T_CHECK(st.accepted == 1 && ia >= 0 && r.ev[ia].ts_ms >= 562000 && r.ev[ia].ts_ms < 570000 &&
            strstr(r.ev[ia].text, "onset") != NULL && r.count[AD_EV_ALERT_RAISED] == 2,
            "accept_onset 2: accepted %llu at row %lld; %d raises (a third at row %lld: "
            "the end of the accepted occurrence off the regime's time)",
            (unsigned long long)st.accepted, ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL,
            r.count[AD_EV_ALERT_RAISED], ir >= 0 ? (long long)r.ev[ir].ts_ms / 1000 : -1LL);
    free(state);
    free_models();
}

/* The same across the period's wrap (a night from 22:00 to 06:00): rows
 * 250-289 (phase 10-49) alert; the next occurrence's onset at row 470
 * (phase 230, 20 rows before the wrap, within P/12) is accepted; its
 * schedule runs from phase 230 over the wrap to the earlier occurrence's
 * end (phase 50): rows 710-749 (phase 230-29) and 730-769 raise nothing. */
static void test_accept_onset_wrap(void)
{
    static const int s1[3] = { 250, 470, 720 }, l1[3] = { 40, 40, 50 };
    ad_detector_stats st;
    char *state = NULL;
    run r;
    int ia;

    sched_rows = 840;
    onset_sched_run(1, s1, l1, 3, &r, &st, &state);
    sched_rows = 720;
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    T_NOTE("onset across the wrap: %.160s", state && strstr(state, "\"regimes\"") ?
           strstr(state, "\"regimes\"") : "-");
    T_CHECK(st.accepted == 1 && ia >= 0 && r.ev[ia].ts_ms >= 470000 && r.ev[ia].ts_ms < 478000 &&
            r.count[AD_EV_ALERT_RAISED] == 1,
            "onset across the wrap: accepted %llu at row %lld; %d raises (want 1: rows "
            "720-769, phase 0-49, are the regime's); %.200s", (unsigned long long)st.accepted,
            ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL, r.count[AD_EV_ALERT_RAISED],
            state && strstr(state, "\"regimes\"") ? strstr(state, "\"regimes\"") : "-");
    free(state);
    free_models();
}

/* alert.accept_onset: a change that already alerted twice alike is
 * accepted at the onset of a recurrence at the time of an earlier one
 * (judged at the 7th window over the threshold: twice the window of 4
 * less one),
 * instead of raising it and accepting it later; a recurrence off the
 * schedule, or another change at that time, still raises. */
static void test_accept_onset(void)
{
    ad_detector_stats st;
    run r;
    int ia, ic;

    onset_run(0, 220, 0, &r, &st);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 3);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 4 && st.accepted == 1 && ic >= 0 &&
            r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED,
            "accept_onset 0: %d raises, accepted %llu, the fourth closed as %s",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted,
            ic >= 0 ? ad_close_reason_name(r.ev[ic].alert.reason) : "-");

    onset_run(2, 220, 0, &r, &st);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 3 && st.accepted == 1 && ia >= 0 &&
            r.ev[ia].ts_ms >= 220000 && r.ev[ia].ts_ms < 227000 &&
            strstr(r.ev[ia].text, "onset") != NULL && st.windows_regime >= 8,
            "accept_onset 2: %d raises, accepted %llu at row %lld (%s), %llu windows of "
            "the regime", r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted,
            ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL, ia >= 0 ? r.ev[ia].text : "-",
            (unsigned long long)st.windows_regime);

    /* the same time, another change (on b): raised */
    onset_run(2, 220, 1, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 4 && st.accepted == 0,
            "accept_onset 2, b at the first one's time: %d raises, accepted %llu",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted);

    /* accept_onset 1: the change alerted once (row 100); at its next
     * occurrence at that phase (row 220) it is accepted at the onset; the
     * two between (rows 140, 180) are off the phase and raise */
    onset_run(1, 220, 0, &r, &st);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    T_CHECK(st.accepted >= 1 && ia >= 0 && r.ev[ia].ts_ms >= 220000 && r.ev[ia].ts_ms < 227000 &&
            strstr(r.ev[ia].text, "onset") != NULL && r.count[AD_EV_ALERT_RAISED] == 3,
            "accept_onset 1: %d raises, accepted %llu at row %lld (%s)",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted,
            ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL, ia >= 0 ? r.ev[ia].text : "-");
    onset1_run(&r, &st);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 1 && ia >= 0 && r.ev[ia].ts_ms >= 220000 &&
            r.ev[ia].ts_ms < 227000 && strstr(r.ev[ia].text, "onset") != NULL,
            "accept_onset 1, one earlier occurrence at the phase: %d raises, accepted %llu "
            "at row %lld", r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted,
            ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL);

    /* a change of a at the phase of the first but at another level: a
     * mild one just over the threshold (a wear, a return to normal after
     * another change), or a fault three times as strong, is not the first
     * recurring: raised, never accepted (the regime would be fitted on the
     * first's scores) */
    {
        static const double lv[2] = { 1.7, 7 };
        for (int j = 0; j < 2; j++) {
            onset1_run_at(lv[j], &r, &st);
            T_CHECK(r.count[AD_EV_ALERT_RAISED] == 2 && st.accepted == 0,
                    "accept_onset 1, the next occurrence at level %g (the first at 3): "
                    "%d raises, accepted %llu", lv[j], r.count[AD_EV_ALERT_RAISED],
                    (unsigned long long)st.accepted);
        }
    }

    /* the same change off the schedule (phase 5): raised */
    onset_run(2, 245, 0, &r, &st);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 4 && nth_ev(&r, AD_EV_ACCEPTED, 0) < 0,
            "accept_onset 2, a at phase 5: %d raises, accepted %llu",
            r.count[AD_EV_ALERT_RAISED], (unsigned long long)st.accepted);
    free_models();
}

/* Recurrences on a as in recurring_run, the third at level 6 instead of 3:
 * another fault of the same sensor a recurrence apart. The chain's profile
 * cannot tell it (both raise a's error); its level can: it must not be
 * accepted, and the regime accepted later is the level-3 one. */
static void test_recurrence_other_level(void)
{
    ad_detector *d = accept_detector(30, 60, 3, 0.25);
    run r;
    int i, k, ic, acc_k = -1;
    double acc_peak = 0;

    memset(&r, 0, sizeof(r));
    rng = 5;
    for (i = 0; d && i < 460; i++) {
        int on = i >= 100 && (i - 100) % 60 < 15, n = (i - 100) / 60;
        double a = on ? (n == 2 ? 6 : 3) : 1;
        step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    }
    for (k = 0; (ic = nth_ev(&r, AD_EV_ALERT_CLEARED, k)) >= 0; k++)
        if (r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED && acc_k < 0) {
            acc_k = k;
            acc_peak = r.ev[ic].alert.peak_score;
        }
    T_CHECK(acc_k != 2, "the level-6 recurrence is not closed as accepted (accepted at "
            "alert %d)", acc_k);
    T_CHECK(acc_k > 2 && acc_peak < 4.5, "a later level-3 recurrence is (alert %d, peak %.3g)",
            acc_k, acc_peak);
    ad_detector_free(d);
    free_models();
}

/* a ramps from 1 by 0.1 per row from row 100 to row 160, then stays */
static int ramp_accepted_at(double trend)
{
    ad_detector *d = accept_detector(30, 0, 1000, trend);
    run r;
    int i, ic = -1;

    memset(&r, 0, sizeof(r));
    rng = 3;
    for (i = 0; d && i < 300; i++) {
        double a = i < 100 ? 1 : i < 160 ? 1 + 0.1 * (i - 100) : 7;
        step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    }
    for (i = 0; (ic = nth_ev(&r, AD_EV_ALERT_CLEARED, i)) >= 0; i++)
        if (r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED)
            break;
    ad_detector_free(d);
    free_models();
    return ic >= 0 ? (int)(r.ev[ic].alert.end_ms / 1000) : -1;
}

static void test_ramp_not_accepted(void)
{
    int off = ramp_accepted_at(0), on = ramp_accepted_at(0.25);

    T_CHECK(off > 100 && off < 160, "without the trend check the ramp is accepted while it "
            "rises (row %d)", off);
    T_CHECK(on >= 160, "with accept_trend 0.25 only once it stopped rising (row %d)", on);
    T_NOTE("ramp accepted at row %d (accept_trend 0), %d (0.25)", off, on);
}

/* a: 1, rises by 0.1 per row from row 100 to 7 at row 160, then falls by
 * `fall` per row to `end` and stays there (end 1: a passing fault ends,
 * e.g. repaired; end 4: the change settles lower). Alerts clear after 10
 * windows below the threshold, as by default. The row an alert closed as
 * accepted, -1 if none; *acc the regimes accepted. */
static int fall_accepted_at(double fall, double end, int *acc)
{
    ad_detector *d = accept_detector_m(30, 0, 1000, 0.25, 10);
    ad_detector_stats st;
    run r;
    int i, ic = -1;

    memset(&r, 0, sizeof(r));
    rng = 5;
    for (i = 0; d && i < 400; i++) {
        double a = i < 100 ? 1 : i < 160 ? 1 + 0.1 * (i - 100) : 7 - fall * (i - 160);
        if (i >= 160 && a < end)
            a = end;
        step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    }
    for (i = 0; (ic = nth_ev(&r, AD_EV_ALERT_CLEARED, i)) >= 0; i++)
        if (r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED)
            break;
    *acc = 0;
    if (d) {
        ad_detector_get_stats(d, &st);
        *acc = (int)st.accepted;
    }
    ad_detector_free(d);
    free_models();
    return ic >= 0 ? (int)(r.ev[ic].alert.end_ms / 1000) : -1;
}

static void test_passing_fault_not_accepted(void)
{
    int acc_back, acc_lower;
    int back = fall_accepted_at(6, 1, &acc_back), lower = fall_accepted_at(6, 4, &acc_lower);

    /* The rise fails the trend test until the fault ends; its last windows,
     * back under the threshold before the alert clears, then pull the
     * second half's median down and the trend test passes: the change is
     * accepted only while it shows, on a window over the threshold at its
     * level. */
    T_CHECK(back < 0 && acc_back == 0, "a wear fault that ends at its peak is not accepted "
            "as a regime (accepted at row %d, %d regimes)", back, acc_back);
    T_CHECK(lower > 160 && acc_lower == 1, "one that steps down to a level and stays there "
            "is (row %d, %d regimes)", lower, acc_lower);
    T_NOTE("ended at its peak: %d regimes; stepped down and stayed: accepted at row %d",
           acc_back, lower);
}

/* Calibrate on 1; a fault on feature a (score 5) from row 100, stepping
 * down at row 200 to score 2 (over the threshold, under 0.67 x 5) and
 * staying there; from row `again` (when > 0) a at level `again_a` (9: the
 * fault back; 4.5: a rise above the new level). accept_after A (400: longer
 * than the test part, so plain acceptance does not close it first),
 * stepdown_windows 20, stepdown_after 20. With save_at > 0 the detector is
 * saved after that row and the run continues in a fresh one restored from
 * it. Returns the row the first alert closed as accepted (-1: none). */
#define WIDEN_TO 1.5
static int sd_other;                /* from `again`: the level on b, a back to 1 */

/* The scores of the newest regime's "stepdown_scores" in saved state js
 * (-1: none). */
static int sd_scores_in(const char *js)
{
    cJSON *o = js ? cJSON_Parse(js) : NULL, *rs;
    int n = -1;

    rs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "acceptance"),
                                          "regimes");
    if (cJSON_GetArraySize(rs) > 0) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(rs, cJSON_GetArraySize(rs) - 1), "stepdown_scores");
        n = a ? cJSON_GetArraySize(a) : -1;
    }
    cJSON_Delete(o);
    return n;
}

/* The end of a step-down run: d's stats into st, d freed; the row the
 * first alert closed as accepted (-1: none). */
static int sd_finish(ad_detector *d, run *r, ad_detector_stats *st)
{
    int i, ic;

    sd_ratio = 0;
    if (d)
        ad_detector_get_stats(d, st);
    ad_detector_free(d);
    free_models();
    for (i = 0; (ic = nth_ev(r, AD_EV_ALERT_CLEARED, i)) >= 0; i++)
        if (r->ev[ic].alert.reason == AD_CLOSE_ACCEPTED)
            return (int)(r->ev[ic].alert.end_ms / 1000);
    return -1;
}

static int sd_moved_n[2];       /* sd_moved: stepdown_scores saved, restored */

/* d saved at row i and restored into a fresh step-down detector (accept_after
 * A), which takes its place; the state must hold want. */
static ad_detector *sd_moved(ad_detector *d, int A, int i, const char *want, const char *what)
{
    char *state = ad_detector_save(d), *again, err[200];
    ad_detector *d2 = accept_detector_m(A, 0, 3, 0.25, 2);
    int rc = state && d2 ? ad_detector_restore(d2, state, err, sizeof(err)) : -1;

    T_CHECK(rc == 0 && strstr(state, want), "saved at row %d %s and restored: %s", i, what,
            rc ? err : "ok");
    again = rc == 0 ? ad_detector_save(d2) : NULL;
    sd_moved_n[0] = sd_scores_in(state);
    sd_moved_n[1] = sd_scores_in(again);
    free(again);
    free(state);
    ad_detector_free(d);
    return d2;
}

static int stepdown_run(double ratio, int A, int again, double again_a, int save_at, run *r,
                        ad_detector_stats *st)
{
    ad_detector *d;
    int i;

    sd_ratio = ratio;
    d = accept_detector_m(A, 0, 3, 0.25, 2);
    memset(r, 0, sizeof(*r));
    memset(st, 0, sizeof(*st));
    rng = 21;
    for (i = 0; d && i < 450; i++) {
        double a = i < 100 ? 1 : i < 200 ? 9 : 3, b = 1;
        if (again > 0 && i >= again && sd_other) {
            a = 1;
            b = again_a;
        } else if (again > 0 && i >= again) {
            a = again_a;
        }
        step2(d, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), r);
        if (save_at > 0 && i == save_at) {
            d = sd_moved(d, A, i, "\"stepdown\":{\"peak\":", "in the step down");
        }
    }
    return sd_finish(d, r, st);
}

static void test_stepdown(void)
{
    run r;
    ad_detector_stats st;
    int at, at_off, at_a0, at_back, at_rise, at_oth, at_sv, ia, ir;

    /* ratio 0 (the default): the alert stays open over the new level */
    at_off = stepdown_run(0, 400, 0, 0, 0, &r, &st);
    T_CHECK(at_off < 0 && r.count[AD_EV_ALERT_RAISED] == 1 && st.alert_active,
            "stepdown_ratio 0: one alert open to the end (accepted at %d, %d raises, active "
            "%d)", at_off, r.count[AD_EV_ALERT_RAISED], st.alert_active);
    /* on: closed as accepted after the mean stayed under 0.67 x 5 for 20
     * windows (the 20-window mean is under 3.35 from about row 212) */
    at = stepdown_run(0.67, 400, 0, 0, 0, &r, &st);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    T_CHECK(at >= 220 && at <= 250 && r.count[AD_EV_ALERT_RAISED] == 1 &&
            r.count[AD_EV_ACCEPTED] == 1 && !st.alert_active && st.accepted == 1,
            "stepdown_ratio 0.67: closed as accepted at row %d (want 220..250), %d raises, "
            "%d accepted, active %d", at, r.count[AD_EV_ALERT_RAISED],
            r.count[AD_EV_ACCEPTED], st.alert_active);
    T_CHECK(ia >= 0 && r.ev[ia].threshold > 2.0 && r.ev[ia].prev_threshold < 1.5 &&
            strstr(r.ev[ia].text, "stepped down"), "regime threshold %g (stream's %g): %s",
            ia >= 0 ? r.ev[ia].threshold : NAN, ia >= 0 ? r.ev[ia].prev_threshold : NAN,
            ia >= 0 ? r.ev[ia].text : "-");
    T_CHECK(st.windows_regime >= 180, "the new level judged against its own threshold: "
            "%llu windows", (unsigned long long)st.windows_regime);
    /* the fault back, or a rise above the new level: raised again */
    at_back = stepdown_run(0.67, 400, 350, 9, 0, &r, &st);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(at_back == at && ir >= 0 && r.ev[ir].alert.start_ms == 350000,
            "the fault back at row 350 raises (at %lld)",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms / 1000 : -1LL);
    at_rise = stepdown_run(0.67, 400, 350, 4.5, 0, &r, &st);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(at_rise == at && ir >= 0 && r.ev[ir].alert.start_ms >= 350000 &&
            r.ev[ir].alert.start_ms <= 353000,
            "a rise above the new level at row 350 raises (at %lld, the window filling)",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms / 1000 : -1LL);
    /* the same level from row 350 with its error on b instead of a (the
     * plant's new operating point): judged by level, not by the error
     * profile of the held windows (all on a), it stays quiet; a fault on b
     * over the new level still raises */
    sd_other = 1;
    at_oth = stepdown_run(0.67, 400, 350, 3, 0, &r, &st);
    T_CHECK(at_oth == at && r.count[AD_EV_ALERT_RAISED] == 1 && !st.alert_active,
            "the accepted level on another feature from row 350: no new alert (%d raises, "
            "active %d)", r.count[AD_EV_ALERT_RAISED], st.alert_active);
    stepdown_run(0.67, 400, 350, 9, 0, &r, &st);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(ir >= 0 && r.ev[ir].alert.start_ms == 350000,
            "a fault on b over the new level at row 350 raises (at %lld)",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms / 1000 : -1LL);
    sd_other = 0;
    /* accept_after 0: no acceptance of any kind */
    at_a0 = stepdown_run(0.67, 0, 0, 0, 0, &r, &st);
    T_CHECK(at_a0 < 0 && r.count[AD_EV_ALERT_RAISED] == 1 && st.alert_active &&
            r.count[AD_EV_ACCEPTED] == 0, "accept_after 0: the alert stays open (accepted at "
            "%d, active %d)", at_a0, st.alert_active);
    /* saved at row 225 (in the step down) and restored: the same window,
     * but for the T - 1 = 3 rows the emptied window ring takes to fill
     * again; without the saved progress the highest mean would start over
     * at the new level and never step down */
    at_sv = stepdown_run(0.67, 400, 0, 0, 225, &r, &st);
    T_CHECK(at_sv >= at && at_sv <= at + 3 && r.count[AD_EV_ALERT_RAISED] == 1 &&
            !st.alert_active,
            "restored in the step down: accepted at row %d (uninterrupted %d), %d raises",
            at_sv, at, r.count[AD_EV_ALERT_RAISED]);
    T_NOTE("fault 5 -> level 2: ratio 0 open to the end; 0.67 accepted at row %d, the fault "
           "back and a rise raise at 350; accept_after 0 open; restored at row 225: row %d",
           at, at_sv);
}

static char last_warning[400];     /* keep_log: the last warning logged */
static void keep_log(int level, const char *msg, void *u)
{
    (void)u;
    if (level == AD_LOG_WARNING) {
        warnings++;
        snprintf(last_warning, sizeof(last_warning), "%s", msg);
    }
}

/* The step-down run (fault 5 from row 100, level 2 from row 200) with
 * alert.stepdown_ratio `before` and accept_after A_before until row `at`,
 * then saved and restored into
 * a detector with 0.67 and accept_after 400 (a reload that changes alert rules only rebuilds
 * the stream from its state with the new settings, its open alert
 * continued). With damage, the saved progress' peak is made negative
 * first. Returns the row the alert closed as accepted (-1: none). */
static int stepdown_reload_run(double before, int A_before, int at, int damage, run *r,
                               ad_detector_stats *st)
{
    ad_detector *d, *d2;
    char *state, *bad, *p, err[200];
    int i, rc = -1;

    sd_ratio = before;
    d = accept_detector_m(A_before, 0, 3, 0.25, 2);
    memset(r, 0, sizeof(*r));
    memset(st, 0, sizeof(*st));
    rng = 21;
    for (i = 0; d && i < 450; i++) {
        step2(d, 1000 * i, (i < 100 ? 1 : i < 200 ? 9 : 3) + 0.05 * noise(),
              1 + 0.05 * noise(), r);
        if (i != at)
            continue;
        state = ad_detector_save(d);
        bad = state ? malloc(strlen(state) + 2) : NULL;
        if (bad) {
            strcpy(bad, state);
            if (damage && (p = strstr(bad, "\"stepdown\":{\"peak\":")) != NULL) {
                p += strlen("\"stepdown\":{\"peak\":");
                memmove(p + 1, p, strlen(p) + 1);
                *p = '-';
            }
        }
        sd_ratio = 0.67;
        d2 = accept_detector_m(400, 0, 3, 0.25, 2);
        warnings = 0;
        last_warning[0] = '\0';
        ad_log_set(keep_log, NULL);
        rc = bad && d2 ? ad_detector_restore(d2, bad, err, sizeof(err)) : -1;
        ad_log_set(NULL, NULL);
        T_CHECK(rc == 0 && (before > 0) == (strstr(state, "\"stepdown\":{") != NULL),
                "saved at row %d (step-down %s) and restored with it on: %s", at,
                before > 0 ? "on" : "off", rc ? err : "ok");
        free(state);
        free(bad);
        ad_detector_free(d);
        d = d2;
    }
    return sd_finish(d, r, st);
}

/* Step-down turned on while the alert is open (a reload, or a restart
 * with the new configuration): its progress is rebuilt from the alert's
 * scores the acceptance progress keeps, so a step down that happened
 * before it is seen (the highest mean is the fault's, not the level the
 * alert is at when it is turned on); so is progress saved damaged. */
static void test_stepdown_turned_on(void)
{
    run r;
    ad_detector_stats st;
    int at, on_late, on_mid, dmg, off;

    at = stepdown_run(0.67, 400, 0, 0, 0, &r, &st);     /* on throughout */
    /* on at row 260, the step down held since about row 231 */
    on_late = stepdown_reload_run(0, 400, 260, 0, &r, &st);
    T_CHECK(on_late >= 261 && on_late <= 264 && r.count[AD_EV_ALERT_RAISED] == 1 &&
            !st.alert_active && st.regimes == 1,
            "turned on at row 260, after the step down: accepted at row %d (want 261..264: "
            "the first window after it), %d raises, active %d, %d regimes", on_late,
            r.count[AD_EV_ALERT_RAISED], st.alert_active, st.regimes);
    /* on at row 215, in the step down: the same row as on throughout */
    on_mid = stepdown_reload_run(0, 400, 215, 0, &r, &st);
    T_CHECK(on_mid >= at && on_mid <= at + 3 && !st.alert_active,
            "turned on at row 215, in the step down: accepted at row %d (on throughout %d)",
            on_mid, at);
    /* on throughout, the progress saved at row 225 damaged */
    dmg = stepdown_reload_run(0.67, 400, 225, 1, &r, &st);
    T_CHECK(dmg >= at && dmg <= at + 3 && warnings == 1 &&
            strstr(last_warning, "alert.accept.stepdown.peak") &&
            strstr(last_warning, "rebuilt"),
            "saved progress damaged at row 225: accepted at row %d (on throughout %d), "
            "%d warnings: %s", dmg, at, warnings, last_warning);
    /* acceptance off before (accept_after 0: no scores kept), both turned
     * on at row 260: the highest mean starts at the level the alert is at
     * then, and the step down that happened before is not seen: the alert
     * stays open (a plain acceptance would need 400 windows) */
    off = stepdown_reload_run(0, 0, 260, 0, &r, &st);
    T_CHECK(off < 0 && st.alert_active && r.count[AD_EV_ACCEPTED] == 0,
            "acceptance and step-down turned on together at row 260: not accepted (row %d), "
            "the alert open (%d)", off, st.alert_active);
    T_NOTE("step-down turned on by a reload at row 260: accepted at row %d; at row 215: row "
           "%d; damaged progress: row %d (on throughout: %d); with acceptance turned on at "
           "the same reload: still open", on_late, on_mid, dmg, at);
}

/* State `state` (a step-down regime at acceptance.regimes[0]) with that
 * regime's "stepdown_scores" set to the JSON `val` (NULL: as saved) and,
 * with `profile`, an error profile [1, 0] given to it, restored into a
 * fresh step-down detector (accept_after 400, stepdown_after 20: it learns
 * from up to 400 scores): its rc, the warnings (last_warning), its stats,
 * and the regime's scores when saved again (-1: none saved). */
static int sd_scores_restore(const char *state, const char *val, int profile,
                             ad_detector_stats *st, int *resaved)
{
    cJSON *o = cJSON_Parse(state), *acc, *r0, *a;
    char *txt = NULL, *again = NULL, err[200];
    ad_detector *d;
    int rc = -1;

    memset(st, 0, sizeof(*st));
    *resaved = -1;
    acc = cJSON_GetObjectItemCaseSensitive(o, "acceptance");
    r0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(acc, "regimes"), 0);
    if (r0 == NULL) {
        cJSON_Delete(o);
        return -2;
    }
    if (val != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(r0, "stepdown_scores", cJSON_Parse(val));
    if (profile) {
        double pr[F] = { 1, 0 };
        cJSON_ReplaceItemInObjectCaseSensitive(r0, "profile", cJSON_CreateDoubleArray(pr, F));
    }
    txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    sd_ratio = 0.67;
    d = accept_detector_m(400, 0, 3, 0.25, 2);
    sd_ratio = 0;
    warnings = 0;
    last_warning[0] = '\0';
    ad_log_set(keep_log, NULL);
    rc = d && txt ? ad_detector_restore(d, txt, err, sizeof(err)) : -1;
    ad_log_set(NULL, NULL);
    if (d)
        ad_detector_get_stats(d, st);
    if (rc == 0 && (again = ad_detector_save(d)) != NULL && (o = cJSON_Parse(again)) != NULL) {
        acc = cJSON_GetObjectItemCaseSensitive(o, "acceptance");
        r0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(acc, "regimes"), 0);
        a = cJSON_GetObjectItemCaseSensitive(r0, "stepdown_scores");
        *resaved = a ? cJSON_GetArraySize(a) : -1;
        cJSON_Delete(o);
    }
    free(again);
    free(txt);
    ad_detector_free(d);
    free_models();
    return rc;
}

/* A saved step-down regime's scores ("stepdown_scores") damaged: the state
 * restores, a warning names the field, the regime keeps its threshold and
 * learns no more (none saved again); more scores than it learns from (a
 * lowered accept_after) keeps the first ones without a warning. */
static void test_stepdown_scores_damaged(void)
{
    static const struct { const char *val, *why, *field; } bad[] = {
        { "\"2.9\"", "a string", "stepdown_scores is not an array" },
        { "{\"0\":2.9}", "an object", "stepdown_scores is not an array" },
        { "[]", "empty", "stepdown_scores is not an array" },
        { "[2.9,null]", "NaN (saved as null)", "stepdown_scores[1] is not a finite number" },
        { "[2.9,1e999]", "inf", "stepdown_scores[1] is not a finite number" },
        { "[2.9,-2.9]", "negative", "stepdown_scores[1] is not a finite number >= 0" },
        { "[2.9,[2.9]]", "a nested array", "stepdown_scores[1] is not a finite number" },
    };
    ad_detector *d;
    ad_detector_stats st, st0;
    run r;
    char *state = NULL, many[450 * 4 + 2];
    int i, rc, n0, n, ok = 0;
    double thr0;

    /* the step-down run to row 300: a regime accepted at about row 231
     * that has learned from the windows since */
    sd_ratio = 0.67;
    d = accept_detector_m(400, 0, 3, 0.25, 2);
    sd_ratio = 0;
    memset(&r, 0, sizeof(r));
    rng = 21;
    for (i = 0; d && i < 300; i++)
        step2(d, 1000 * i, (i < 100 ? 1 : i < 200 ? 9 : 3) + 0.05 * noise(),
              1 + 0.05 * noise(), &r);
    state = d ? ad_detector_save(d) : NULL;
    ad_detector_free(d);
    free_models();
    rc = sd_scores_restore(state, NULL, 0, &st0, &n0);
    thr0 = st0.regime_threshold;
    T_CHECK(rc == 0 && warnings == 0 && st0.regimes == 1 && n0 > 20 && n0 < 400,
            "intact: restored (rc %d, %d warnings), 1 regime (%d), threshold %g, %d scores "
            "saved again", rc, warnings, st0.regimes, thr0, n0);
    for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
        rc = sd_scores_restore(state, bad[i].val, 0, &st, &n);
        T_CHECK(rc == 0 && warnings == 1 && strstr(last_warning, "acceptance.regimes[0].") &&
                strstr(last_warning, bad[i].field) && st.regimes == 1 &&
                st.regime_threshold == thr0 && n == -1,
                "stepdown_scores %s (%s): restored (rc %d), %d warnings, %d regimes, "
                "threshold %g (saved %g), learning scores saved again %d: %s", bad[i].val,
                bad[i].why, rc, warnings, st.regimes, st.regime_threshold, thr0, n,
                last_warning);
        ok += rc == 0 && warnings == 1;
    }
    /* on a regime with an error profile: not a step down's */
    rc = sd_scores_restore(state, NULL, 1, &st, &n);
    T_CHECK(rc == 0 && warnings == 1 && strstr(last_warning, "with an error profile") &&
            st.regimes == 1 && n == -1, "stepdown_scores on a regime with a profile: ignored "
            "(rc %d, %d warnings, %d scores saved again): %s", rc, warnings, n, last_warning);
    /* 450 scores, 400 learned from now: the first 400, no warning */
    for (i = 0, many[0] = '['; i < 450; i++)
        memcpy(many + 1 + 4 * i, i < 449 ? "2.0," : "2.0]", 5);
    rc = sd_scores_restore(state, many, 0, &st, &n);
    T_CHECK(rc == 0 && warnings == 0 && st.regimes == 1 && n == 400,
            "450 stepdown_scores, 400 learned from: restored (rc %d, %d warnings), %d saved "
            "again", rc, warnings, n);
    free(state);
    T_NOTE("stepdown_scores damaged %d ways: each restored with a warning naming it, the "
           "regime kept at %g, not learning", ok, thr0);
}

/* A fault on a (9) from row 100 stepping down at row 200 to 3, whose
 * noise is narrow (0.01) over the rows the regime is fitted on and then
 * widens (from row 260 to `wide` at row 500, the level still stable): the
 * regime's threshold keeps learning from its windows under it, so the
 * wider noise raises nothing; from row `rise` (> 0) a at 7, a rise over
 * the new level. Returns the raises; *thr: the regime's threshold at the
 * end (stats.regime_threshold), *last: the row the last alert was raised
 * at (-1: none). */
static int stepdown_widen_run(double wide, int rise, double *thr, int *last, int save_at)
{
    ad_detector *d;
    ad_detector_stats st;
    run r;
    int i;

    sd_ratio = 0.67;
    d = accept_detector_m(400, 0, 3, 0.25, 2);
    memset(&r, 0, sizeof(r));
    memset(&st, 0, sizeof(st));
    rng = 21;
    for (i = 0; d && i < 560; i++) {
        double amp = i < 260 ? 0.01 : 0.01 + (wide - 0.01) * (i > 500 ? 1 : (i - 260) / 240.0);
        double a = i < 100 ? 1 + 0.05 * noise() : i < 200 ? 9 + 0.05 * noise()
                                                            : 3 + amp * noise();
        if (rise > 0 && i >= rise)
            a = 7 + 0.05 * noise();
        step2(d, 1000 * i, a, 1 + 0.05 * noise(), &r);
        if (save_at > 0 && i == save_at) {
            d = sd_moved(d, 400, i, "\"stepdown_scores\":[",
                         "with the step-down regime's scores");
        }
    }
    sd_ratio = 0;
    if (d)
        ad_detector_get_stats(d, &st);
    ad_detector_free(d);
    free_models();
    *thr = st.regime_threshold;
    i = nth_ev(&r, AD_EV_ALERT_RAISED, r.count[AD_EV_ALERT_RAISED] - 1);
    *last = i >= 0 ? (int)(r.ev[i].alert.start_ms / 1000) : -1;
    return r.count[AD_EV_ALERT_RAISED];
}

static void test_stepdown_widens(void)
{
    double t_narrow, t_wide, t_rise, t_sv, t_ms;
    int n_narrow, n_wide, n_rise, n_sv, n_ms, last, l_ms;

    n_narrow = stepdown_widen_run(0.01, 0, &t_narrow, &last, 0);
    T_CHECK(n_narrow == 1, "the new level staying narrow: no new alert (%d raises, regime "
            "threshold %g)", n_narrow, t_narrow);
    n_wide = stepdown_widen_run(WIDEN_TO, 0, &t_wide, &last, 0);
    T_CHECK(n_wide == 1 && t_wide > t_narrow, "its noise widening slowly: no new alert, the "
            "regime's threshold learned (%d raises, threshold %g, narrow %g)", n_wide, t_wide,
            t_narrow);
    n_sv = stepdown_widen_run(WIDEN_TO, 0, &t_sv, &last, 380);
    T_CHECK(n_sv == 1 && fabs(t_sv - t_wide) < 0.01 * t_wide, "saved at row 380 and "
            "restored: the same but for the rows the window takes to fill (%d raises, threshold %g, uninterrupted %g)", n_sv, t_sv, t_wide);
    n_rise = stepdown_widen_run(WIDEN_TO, 530, &t_rise, &last, 0);
    T_CHECK(last >= 530 && last <= 533, "a rise to 7 at row 530 still raises (at row %d, "
            "%d raises, threshold %g)", last, n_rise, t_rise);
    /* accept_after from accept_after_ms (400 s of rows 1 s apart: 400
     * windows, known once the window period is): the regime learns up to
     * 400 scores as well, within its own (it was allocated for
     * stepdown_after's 20 while accept_after was 0), and a restore keeps
     * all it learned (it was read before accept_after was known: 20) */
    acc_after_ms = 400000;
    n_ms = stepdown_widen_run(WIDEN_TO, 0, &t_ms, &l_ms, 0);
    T_CHECK(n_ms == 1 && fabs(t_ms - t_wide) < 0.01 * t_wide, "accept_after_ms 400 s: the "
            "same (%d raises, threshold %g, accept_after 400: %g)", n_ms, t_ms, t_wide);
    n_ms = stepdown_widen_run(WIDEN_TO, 0, &t_ms, &l_ms, 380);
    T_CHECK(n_ms == 1 && sd_moved_n[0] > 100 && sd_moved_n[1] == sd_moved_n[0] &&
            fabs(t_ms - t_wide) < 0.01 * t_wide, "accept_after_ms, saved at row 380 and "
            "restored: %d of its %d scores kept, %d raises, threshold %g", sd_moved_n[1],
            sd_moved_n[0], n_ms, t_ms);
    acc_after_ms = 0;
    T_NOTE("step-down level widening to %g: %d raises (threshold %g, narrow %g), a rise "
           "raised at row %d; accept_after_ms: threshold %g, %d of %d scores restored",
           WIDEN_TO, n_wide, t_wide, t_narrow, last, t_ms, sd_moved_n[1], sd_moved_n[0]);
}

/* A fault (score 9 on feature a) from row 100 that ends at row 200, the
 * stream back under the threshold (1), with alert.m 40 (a clear takes 40
 * windows under the clear level): the alert clears as ever; the step down
 * (stepdown_windows 20, stepdown_after 20, its mean under 0.67 x 9 from
 * about row 208) is no new level to accept, and no regime is made of the
 * stream's normal scores. */
static void test_stepdown_below_clear(void)
{
    ad_detector *d;
    ad_detector_stats st;
    run r;
    int i, ic, cleared = -1, reason = -1;

    sd_ratio = 0.67;
    d = accept_detector_m(400, 0, 3, 0.25, 40);
    sd_ratio = 0;
    memset(&r, 0, sizeof(r));
    memset(&st, 0, sizeof(st));
    rng = 21;
    for (i = 0; d && i < 300; i++)
        step2(d, 1000 * i, (i >= 100 && i < 200 ? 9 : 1) + 0.05 * noise(),
              1 + 0.05 * noise(), &r);
    if (d)
        ad_detector_get_stats(d, &st);
    ad_detector_free(d);
    free_models();
    if ((ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0)) >= 0) {
        cleared = (int)(r.ev[ic].alert.end_ms / 1000);
        reason = (int)r.ev[ic].alert.reason;
    }
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 1 && cleared >= 235 && cleared <= 245 &&
            reason == AD_CLOSE_CLEARED && r.count[AD_EV_ACCEPTED] == 0 && st.accepted == 0,
            "a fault that ended under the clear level clears (row %d, want 235..245, reason "
            "%s), no step down accepted (%d accepted events, %llu accepted)", cleared,
            reason >= 0 ? ad_close_reason_name((ad_close_reason)reason) : "-",
            r.count[AD_EV_ACCEPTED], (unsigned long long)st.accepted);
}

/* Calibrate on 1 (calibration.margin `margin`, alert.clear_ratio `clear`);
 * a fault on a (9) from row 100 steps down at row 200 to `lvl`, a level
 * between the clear level and the threshold (or, with `first` > 0, first
 * to 3, a level over the threshold accepted as a step-down regime, then
 * the fault again from row 300 and the step down to `lvl` at row 400); from
 * row `b_from` (> 0) b at `b_lvl`. stepdown_ratio 0.67, windows 20, after
 * 20, accept_after 400. Returns the row the last alert closed as accepted
 * (-1: none); *ia: the index of the last AD_EV_ACCEPTED event in r. */
static int sd_under_run(double margin, double clear, double lvl, int first, int b_from,
                        double b_lvl, run *r, ad_detector_stats *st, int *ia)
{
    ad_detector *d;
    int i, ic, at = -1, end = first ? 560 : 450;

    sd_ratio = 0.67;
    acc_margin = margin;
    acc_clear = clear;
    d = accept_detector_m(400, 0, 3, 0.25, 2);
    sd_ratio = acc_margin = acc_clear = 0;
    memset(r, 0, sizeof(*r));
    memset(st, 0, sizeof(*st));
    rng = 21;
    for (i = 0; d && i < end; i++) {
        double a, b = b_from > 0 && i >= b_from ? b_lvl : 1;
        if (!first)
            a = i < 100 ? 1 : i < 200 ? 9 : lvl;
        else
            a = i < 100 ? 1 : i < 200 ? 9 : i < 300 ? 3 : i < 400 ? 9 : lvl;
        step2(d, 1000 * i, a + 0.05 * noise(), b + 0.05 * noise(), r);
    }
    if (d)
        ad_detector_get_stats(d, st);
    ad_detector_free(d);
    free_models();
    for (i = 0; (ic = nth_ev(r, AD_EV_ALERT_CLEARED, i)) >= 0; i++)
        if (r->ev[ic].alert.reason == AD_CLOSE_ACCEPTED)
            at = (int)(r->ev[ic].alert.end_ms / 1000);
    *ia = nth_ev(r, AD_EV_ACCEPTED, r->count[AD_EV_ACCEPTED] - 1);
    return at;
}

/* A step down to a level under the stream's threshold (over the clear
 * level, so the alert does not clear) closes the alert as accepted with no
 * regime: the stream's threshold already judges the level normal. With the
 * default margin (1.5) a regime fitted on it would sit over the stream's
 * threshold and hide a later fault between the two (on any feature: a
 * step-down regime is matched by level only); with a small margin under a
 * low clear_ratio it would sit under it, judge nothing and hold a regime
 * slot. An earlier step down's regime ends (a later step down replaces
 * it). */
static void test_stepdown_under_threshold(void)
{
    run r;
    ad_detector_stats st;
    int at, ia, ir;

    /* margin 1.5, clear_ratio 0.8: threshold ~1.53, clear level ~1.22; a
     * at 1.7 is a level of ~1.35 */
    at = sd_under_run(1.5, 0.8, 1.7, 0, 0, 0, &r, &st, &ia);
    T_CHECK(at >= 220 && at <= 250 && r.count[AD_EV_ALERT_RAISED] == 1 && !st.alert_active,
            "stepped down under the threshold: closed as accepted at row %d (want 220..250), "
            "%d raises, active %d", at, r.count[AD_EV_ALERT_RAISED], st.alert_active);
    T_CHECK(st.regimes == 0 && st.accepted == 0 && st.windows_regime == 0,
            "no regime made (%d regimes, %llu accepted, %llu windows judged against one)",
            st.regimes, (unsigned long long)st.accepted,
            (unsigned long long)st.windows_regime);
    T_CHECK(ia >= 0 && r.ev[ia].threshold == r.ev[ia].prev_threshold &&
            strstr(r.ev[ia].text, "stepped down to") && strstr(r.ev[ia].text, "no regime"),
            "the event: threshold %g (stream's %g): %s", ia >= 0 ? r.ev[ia].threshold : NAN,
            ia >= 0 ? r.ev[ia].prev_threshold : NAN, ia >= 0 ? r.ev[ia].text : "-");
    /* b up to 1.9 from row 350: a score of ~1.8, over the stream's
     * threshold, under the ~2.03 a regime fitted on the level would have */
    sd_under_run(1.5, 0.8, 1.7, 0, 350, 1.9, &r, &st, &ia);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(ir >= 0 && r.ev[ir].alert.start_ms >= 350000 && r.ev[ir].alert.start_ms <= 353000,
            "a fault on b to a score of ~1.8 at row 350 raises (at row %lld)",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms / 1000 : -1LL);
    /* margin 1.2, clear_ratio 0.5: threshold ~1.22, clear level ~0.61; a
     * at 0.7, a level of ~0.85, fits ~1.03: under the stream's threshold */
    at = sd_under_run(1.2, 0.5, 0.7, 0, 0, 0, &r, &st, &ia);
    T_CHECK(at >= 220 && at <= 250 && st.regimes == 0 && !st.alert_active,
            "a fit under the threshold: closed as accepted at row %d, %d regimes", at,
            st.regimes);
    /* first a step down to 3 (a regime), then the fault again and a step
     * down under the threshold: the earlier regime ends */
    at = sd_under_run(1.5, 0.8, 1.7, 1, 0, 0, &r, &st, &ia);
    T_CHECK(at >= 420 && at <= 450 && r.count[AD_EV_ACCEPTED] == 2 && st.regimes == 0 &&
            ia >= 0 && strstr(r.ev[ia].text, "earlier step down's ended"),
            "after a step-down regime, a step down under the threshold at row %d: %d "
            "accepted events, %d regimes: %s", at, r.count[AD_EV_ACCEPTED], st.regimes,
            ia >= 0 ? r.ev[ia].text : "-");
    T_NOTE("step down under the threshold: no regime (%d), a fault over the threshold on "
           "b at row 350 raised, an earlier step-down regime ended", st.regimes);
}

/* alert.on probability: a spike raises and clears; a persistent level
 * shift raises and stays open (its windows, in an alert, do not join the
 * probability's history: a lasting fault is not its own baseline); with
 * alert.accept_after the shift is accepted, its windows join the history
 * and the probability returns to ordinary values, nothing raised again. */
static void prob_alerts_run(int accept_after, run *r, ad_detector_stats *st)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    int i;

    ad_detector_cfg_default(&c);
    c.calib_windows = 100;
    c.thr.margin = 1.2;
    c.alert.on = AD_ALERT_ON_PROBABILITY;
    c.alert.level = 0.9999;
    c.alert.k = 1;
    c.alert.n = 1;
    c.alert.m = 5;
    c.alert.accept_after = accept_after;
    c.lik.history = 200;
    memset(r, 0, sizeof(*r));
    rng = 3;
    T_CHECK(ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) == 0, "%s", err);
    for (i = 0; d != NULL && i < 900; i++) {
        double lvl = i >= 500 ? 3.0 : 1.0;
        double a = lvl + 0.05 * noise(), b = lvl + 0.05 * noise();
        if (i == 300)
            a = 30;                         /* spike */
        step2(d, 1000 * i, a, b, r);
    }
    if (d != NULL)
        ad_detector_get_stats(d, st);
    if (accept_after == 0) {
        int ir = nth_ev(r, AD_EV_ALERT_RAISED, 0);
        cJSON *j;
        char *txt;
        if (ir >= 0) {
            j = ad_event_to_json(d, &r->ev[ir]);
            txt = j ? cJSON_PrintUnformatted(j) : NULL;
            T_CHECK(txt && strstr(txt, "\"probability\":") &&
                    strstr(txt, "\"log_likelihood\":-") &&
                    strstr(txt, "\"peak_probability\":"), "event JSON: %s", txt ? txt : "");
            T_NOTE("%s", txt ? txt : "");
            free(txt);
            cJSON_Delete(j);
        }
    }
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_probability_alerts(void)
{
    ad_detector_stats st;
    static run r;
    int ir, ic, ir1, ia;

    prob_alerts_run(0, &r, &st);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 0);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    ir1 = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    T_CHECK(ir >= 0 && r.ev[ir].alert.start_ms == 300000 && r.ev[ir].probability >= 0.9999 &&
            r.ev[ir].alert.probability == r.ev[ir].probability,
            "spike raised at 300 s with p %.10f", ir >= 0 ? r.ev[ir].probability : NAN);
    T_CHECK(ic >= 0 && r.ev[ic].alert.reason == AD_CLOSE_CLEARED, "spike alert cleared");
    /* The spike's own averages never joined the history (its alert
     * cleared: a fault that ended), so the shift raises at once. */
    T_CHECK(ir1 >= 0 && r.ev[ir1].alert.start_ms >= 500000 && r.ev[ir1].alert.start_ms <= 510000,
            "level shift raised within 10 windows of 500 s: %lld",
            ir1 >= 0 ? (long long)r.ev[ir1].alert.start_ms : -1LL);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 2 && r.count[AD_EV_ALERT_CLEARED] == 1 &&
            st.alert_active, "raises %d clears %d: the shift alert stays open (%d) for its "
            "400 windows", r.count[AD_EV_ALERT_RAISED], r.count[AD_EV_ALERT_CLEARED],
            st.alert_active);
    T_CHECK(isfinite(st.last_probability) && st.last_probability >= 0.9999 &&
            isfinite(st.last_log_likelihood), "stats: p %g L %g at the end of the shift",
            st.last_probability, st.last_log_likelihood);
    T_NOTE("probability alerts: spike p %.10f; shift raised at %lld s, still open at 900 s "
           "(p %.6f)", ir >= 0 ? r.ev[ir].probability : NAN,
           ir1 >= 0 ? (long long)r.ev[ir1].alert.start_ms / 1000 : -1LL, st.last_probability);

    /* regime acceptance absorbs the lasting change */
    prob_alerts_run(100, &r, &st);
    ia = nth_ev(&r, AD_EV_ACCEPTED, 0);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 1);
    T_CHECK(ia >= 0 && ic >= 0 && r.ev[ic].alert.reason == AD_CLOSE_ACCEPTED &&
            r.count[AD_EV_ALERT_RAISED] == 2 && !st.alert_active,
            "accept_after 100: the shift accepted (%lld s), raises %d, open %d",
            ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL, r.count[AD_EV_ALERT_RAISED],
            st.alert_active);
    T_CHECK(isfinite(st.last_probability) && st.last_probability < 0.9999,
            "after the acceptance the probability is ordinary again: p %g",
            st.last_probability);
    T_NOTE("accept_after 100: shift accepted at %lld s, p %.6f at 900 s",
           ia >= 0 ? (long long)r.ev[ia].ts_ms / 1000 : -1LL, st.last_probability);
}

/* Calibrate (300 windows, T = 10) on ~1 with n_steps steps of feature a to
 * 3 for 10 rows (every window holding one scores up to 2), trimmed with
 * calibration.recur = recur; threshold, scores trimmed in *trimmed. */
static double steps_thr(int recur, int n_steps, uint64_t *trimmed)
{
    ad_model *m = t_zero_model(10, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    run r;
    int i, k;

    ad_detector_cfg_default(&c);
    c.dq_enabled = 0;
    c.calib_windows = 300;
    c.thr.q = 0.99;
    c.thr.margin = 1.5;
    c.thr.estimator = AD_EST_TRIMMED;
    c.thr.recur = recur;
    memset(&r, 0, sizeof(r));
    rng = 42;
    if (ad_detector_new(&d, &c, "steps", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "%s", err);
        ad_model_free(m);
        return NAN;
    }
    for (i = 0; i < 309; i++) {
        double a = 1 + 0.05 * noise();
        for (k = 0; k < n_steps; k++)
            if (i >= 50 + 80 * k && i < 60 + 80 * k)
                a = 3;
        step2(d, 1000 * i, a, 1 + 0.05 * noise(), &r);
    }
    ad_detector_get_stats(d, &st);
    *trimmed = st.threshold_trimmed;
    ad_detector_free(d);
    ad_model_free(m);
    return st.phase == AD_PHASE_DETECTING ? st.threshold : NAN;
}

/* A step that recurs (three times in the calibration: a daily load change)
 * is a part of normal behaviour: with calibration.recur 3 the threshold is
 * set over the steps; with 0, or when the step came once or twice, the
 * steps are trimmed as outliers (the windows holding one step are an
 * episode: T = 10 windows of one change, the window length the detector
 * passes to the threshold). */
static void test_recurring_steps_kept(void)
{
    uint64_t tr0, tr3, tr2;
    double v0 = steps_thr(0, 3, &tr0), v3 = steps_thr(3, 3, &tr3), v2 = steps_thr(3, 2, &tr2);

    T_NOTE("three steps: recur 0 threshold %.4f (%llu trimmed), recur 3 %.4f (%llu); two "
           "steps, recur 3: %.4f (%llu)", v0, (unsigned long long)tr0, v3,
           (unsigned long long)tr3, v2, (unsigned long long)tr2);
    T_CHECK(v0 < 1.7 && tr0 >= 40, "recur 0: steps trimmed, threshold %.4f under the step "
            "scores (2)", v0);
    T_CHECK(v3 > 2.0 && tr3 == 0, "recur 3: three steps kept, threshold %.4f over them", v3);
    T_CHECK(v2 < 1.7 && tr2 >= 30, "recur 3, two steps: trimmed, threshold %.4f", v2);
}

/* CALIBRATION AGAINST THE MODEL. The zero model says its training error
 * (mae q99) is 1.05; normal rows score about 1. A fault (rows of 5, scores
 * about 5) under way while a stream calibrates on 60 windows:
 *   guard 3 (default): the fault's windows are left out; 60 of them, and
 *     the threshold is the model's (1.05 x margin 1.5), the stream detects
 *     and the fault alerts before it ends, with one warning; after it, the
 *     threshold adapts to the normal rows;
 *   guard 0 (before): the fault is learned as normal (threshold ~7.5), the
 *     fault never alerts;
 *   a fault over part of the calibration: left out, the threshold is the
 *     normal rows' own;
 *   normal rows alone: the same threshold with the guard on and off. */
static ad_detector *guard_detector(double guard, ad_model **mp)
{
    ad_model *m = t_zero_model(10, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    m->training = strdup("{\"error\":{\"metric\":\"mae\",\"mean\":1.0,\"q99\":1.05}}");
    ad_detector_cfg_default(&c);
    c.dq_enabled = 0;
    c.calib_windows = 60;
    c.thr.q = 0.99;
    c.thr.margin = 1.5;
    c.thr.adapt = 1;
    c.calib_model_guard = guard;
    if (ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "detector: %s", err);
    *mp = m;
    return d;
}

/* rows [0, n): the fault (level 5) on rows [f0, f1); the first raise's row
 * (-1: none) and the threshold when calibration ended (first CALIBRATED). */
static void guard_run(double guard, int n, int f0, int f1, int *raise_row, double *thr,
                      double *thr_end, int *warns)
{
    ad_model *m;
    ad_detector *d = guard_detector(guard, &m);
    ad_detector_stats st;
    run r;
    int i, j;

    memset(&r, 0, sizeof(r));
    rng = 7;
    *raise_row = -1;
    warnings = 0;
    ad_log_set(count_log, NULL);
    for (i = 0; i < n; i++) {
        double lv = i >= f0 && i < f1 ? 5 : 1;
        int before = r.count[AD_EV_ALERT_RAISED];
        step2(d, 1000 * (int64_t)i, lv + 0.05 * noise(), lv + 0.05 * noise(), &r);
        if (*raise_row < 0 && r.count[AD_EV_ALERT_RAISED] > before)
            *raise_row = i;
    }
    ad_log_set(NULL, NULL);
    *warns = warnings;
    j = nth_ev(&r, AD_EV_CALIBRATED, 0);
    *thr = j >= 0 ? r.ev[j].threshold : NAN;
    ad_detector_get_stats(d, &st);
    *thr_end = st.phase == AD_PHASE_DETECTING ? st.threshold : NAN;
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_calibration_model_guard(void)
{
    int raise, raise0, rp, rn, w, w0, wp, wn;
    double thr, thr0, thrp, thrp0, thrn, thrn0, end, end0, endp, endn;

    /* a fault from row 0 to row 300, then 300 normal rows */
    guard_run(3, 600, 0, 300, &raise, &thr, &end, &w);
    guard_run(0, 600, 0, 300, &raise0, &thr0, &end0, &w0);
    T_NOTE("fault under way at calibration: guard 3 -> threshold %.3f, raise at row %d, "
           "%d warning(s), threshold after 300 normal rows %.3f; guard 0 -> threshold %.3f, "
           "raise at row %d", thr, raise, w, end, thr0, raise0);
    T_CHECK(thr0 > 5 && raise0 < 0, "guard 0: the fault is learned as normal (threshold "
            "%.3f) and never alerts (raise %d)", thr0, raise0);
    T_CHECK(fabs(thr - 1.05 * 1.5) < 1e-6, "guard 3: the model's threshold 1.575 (got %.6f)",
            thr);
    T_CHECK(raise >= 60 && raise < 300, "guard 3: the fault alerts before it ends (row %d)",
            raise);
    T_CHECK(w == 1, "one warning names it (%d)", w);
    T_CHECK(end > 1.0 && end < 1.575, "the threshold adapts to the normal rows after "
            "(%.3f)", end);
    /* a fault over rows 20..50 of the calibration: its windows left out,
     * those on its edges (partly in it, under 3 x E) kept */
    guard_run(3, 300, 20, 50, &rp, &thrp, &endp, &wp);
    guard_run(0, 300, 20, 50, &rp, &thrp0, &endp, &wp);
    /* normal rows alone, guard on and off */
    guard_run(3, 300, -1, -1, &rn, &thrn, &endn, &wn);
    guard_run(0, 300, -1, -1, &rn, &thrn0, &endn, &wn);
    T_NOTE("fault over 30 calibration rows: threshold %.3f, guard off %.3f (normal rows "
           "alone %.3f, guard off %.3f)", thrp, thrp0, thrn, thrn0);
    T_CHECK(thrp < 0.65 * thrp0, "a fault over part of the calibration: its windows left "
            "out (threshold %.3f, guard off %.3f)", thrp, thrp0);
    T_CHECK(thrn == thrn0, "normal rows: the guard changes nothing (%.6f vs %.6f)",
            thrn, thrn0);
    /* the model's threshold is saved and restored like a calibrated one */
    {
        ad_model *m1, *m2;
        ad_detector *d = guard_detector(3, &m1), *d2 = guard_detector(3, &m2);
        ad_detector_stats st, st2;
        char err[200], *txt;
        run r;
        int i;

        memset(&r, 0, sizeof(r));
        for (i = 0; i < 100; i++)
            step2(d, 1000 * (int64_t)i, 5 + 0.05 * noise(), 5 + 0.05 * noise(), &r);
        ad_detector_get_stats(d, &st);
        txt = ad_detector_save(d);
        T_CHECK(st.phase == AD_PHASE_DETECTING && txt &&
                ad_detector_restore(d2, txt, err, sizeof(err)) == 0,
                "saved and restored after the model's threshold: %s", txt ? err : "no text");
        ad_detector_get_stats(d2, &st2);
        T_CHECK(st2.phase == AD_PHASE_DETECTING && fabs(st2.threshold / st.threshold - 1) < 1e-12,
                "restored: %s at %.17g (saved %.17g)", ad_phase_name(st2.phase), st2.threshold, st.threshold);
        free(txt);
        ad_detector_free(d);
        ad_detector_free(d2);
        ad_model_free(m1);
        ad_model_free(m2);
    }
}

/* LEVEL TEST (alert.level_ms, level_z): values ~1 +- 0.2 calibrate (score
 * ~1, threshold 1.5 x q99 ~1.65), then the level rises to 1.45 for 200
 * rows (every score under the threshold) and falls back. With the test over
 * 20 windows (40 s of 2 s rows) at 6 spreads: one alert, raised within 20
 * rows of the rise, no window over the threshold, cleared after the level
 * falls back; off (the old behaviour): no alert. */
static void level_rise_run(int64_t level_ms, run *r, double *thr)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    int i;

    memset(r, 0, sizeof(*r));
    *thr = NAN;
    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.alert.level_ms = level_ms;
    c.alert.level_z = 6;
    if (m != NULL && g_nmodels < 16)
        g_models[g_nmodels++] = m;
    if (m == NULL || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "detector: %s", m ? err : "no model");
        free_models();
        return;
    }
    rng = 11;
    for (i = 0; i < 800; i++) {
        double lvl = i >= 400 && i < 600 ? 1.45 : 1.0;
        double a = lvl + 0.2 * noise(), b = lvl + 0.2 * noise();

        step2(d, 2000 * (int64_t)i, a, b, r);
        if (i == 399)
            { ad_detector_stats st; ad_detector_get_stats(d, &st); *thr = st.threshold; }
    }
    ad_detector_free(d);
    free_models();
}

static void test_level_rise(void)
{
    run r;
    double thr;
    int ir, ic;

    level_rise_run(0, &r, &thr);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 0,
            "level test off: %d alerts on a rise under the threshold %.3f (want 0)",
            r.count[AD_EV_ALERT_RAISED], thr);
    level_rise_run(40000, &r, &thr);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 0);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 1 && ir >= 0 && ic >= 0,
            "level test on: %d alerts (want 1)", r.count[AD_EV_ALERT_RAISED]);
    if (ir < 0 || ic < 0)
        return;
    T_CHECK(r.ev[ir].alert.start_ms >= 400 * 2000 && r.ev[ir].alert.start_ms <= 420 * 2000,
            "raised at row %lld (want 400..420)", (long long)r.ev[ir].alert.start_ms / 2000);
    T_CHECK(r.ev[ic].alert.peak_score < thr,
            "every score under the threshold: peak %.3f, threshold %.3f",
            r.ev[ic].alert.peak_score, thr);
    T_CHECK(r.ev[ic].alert.reason == AD_CLOSE_CLEARED && r.ev[ic].alert.end_ms >= 600 * 2000 &&
            r.ev[ic].alert.end_ms <= 640 * 2000,
            "closed (%s) at row %lld (want cleared, 600..640)",
            ad_close_reason_name(r.ev[ic].alert.reason), (long long)r.ev[ic].alert.end_ms / 2000);
    T_NOTE("level rise to 1.45 at row 400 under the threshold %.3f: off 0 alerts; on raised at "
           "row %lld, peak %.3f, %s at row %lld", thr, (long long)r.ev[ir].alert.start_ms / 2000,
           r.ev[ic].alert.peak_score, ad_close_reason_name(r.ev[ic].alert.reason),
           (long long)r.ev[ic].alert.end_ms / 2000);
}

/* A detector for the level tests below: a zero model of window 4 on F
 * features (kept in g_models), 50 calibration windows, the level test over
 * level_ms at z 6, accept_after A, step-down 0.6 over 20 windows when sd.
 * *cfg and *model (when not NULL) get its settings and model; NULL (a
 * failed check) when it cannot be made. */
static ad_detector *lvl_det(int64_t level_ms, int A, int sd, ad_detector_cfg *cfg,
                            ad_model **model)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.alert.level_ms = level_ms;
    c.alert.level_z = 6;
    c.alert.accept_after = A;
    if (sd) {
        c.alert.stepdown_ratio = 0.6;
        c.alert.stepdown_windows = 20;
        c.alert.stepdown_after = 20;
    }
    if (m != NULL && g_nmodels < 16)
        g_models[g_nmodels++] = m;
    if (m == NULL || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "detector: %s", m ? err : "no model");
        free_models();
        return NULL;
    }
    if (cfg)
        *cfg = c;
    if (model)
        *model = m;
    return d;
}

/* LEVEL TEST AFTER A CLEAR: values ~1 +- 0.2 calibrate as in level_rise;
 * a fault at rows 400..409 (level 3, over the threshold) raises and clears;
 * from the row after its clear the level rises to 1.45 (every score under
 * the threshold) until row 700. The mean starts over at the clear; the
 * rise, in it from its first row, must raise a second alert once the span
 * (20 windows) has refilled, and it clears after the level falls back.
 * Before, the test stayed disarmed after the clear until the mean fell
 * under its fence, so a rise that began before the span refilled was
 * never raised. */
static void test_level_after_clear(void)
{
    ad_detector *d = lvl_det(40000, 0, 0, NULL, NULL);
    double thr = NAN;
    run r;
    int i, rise = -1, ir, ic;

    memset(&r, 0, sizeof(r));
    if (d == NULL)
        return;
    rng = 23;
    for (i = 0; i < 800; i++) {
        double lvl = i >= 400 && i < 410 ? 3.0 : rise >= 0 && i < 700 ? 1.45 : 1.0;
        double a = lvl + 0.2 * noise(), b = lvl + 0.2 * noise();

        step2(d, 2000 * (int64_t)i, a, b, &r);
        if (i == 399)
            { ad_detector_stats st; ad_detector_get_stats(d, &st); thr = st.threshold; }
        if (rise < 0 && r.count[AD_EV_ALERT_CLEARED] == 1)
            rise = i + 1;
    }
    ad_detector_free(d);
    free_models();
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 1);
    T_CHECK(rise > 410 && rise < 460, "the fault's alert cleared before row 460 (rise from "
            "row %d)", rise);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 2 && ir >= 0 && ic >= 0,
            "a rise right after a clear: %d alerts (want 2: the fault, the rise)",
            r.count[AD_EV_ALERT_RAISED]);
    if (ir < 0 || ic < 0 || rise < 0)
        return;
    T_CHECK(r.ev[ir].alert.start_ms >= (int64_t)rise * 2000 &&
            r.ev[ir].alert.start_ms <= (int64_t)(rise + 40) * 2000,
            "the rise raised at row %lld (want %d..%d)",
            (long long)r.ev[ir].alert.start_ms / 2000, rise, rise + 40);
    T_CHECK(r.ev[ic].alert.peak_score < thr && r.ev[ic].alert.reason == AD_CLOSE_CLEARED &&
            r.ev[ic].alert.end_ms >= 700 * 2000 && r.ev[ic].alert.end_ms <= 740 * 2000,
            "the rise's alert: peak %.3f under the threshold %.3f, %s at row %lld (want "
            "cleared, 700..740)", r.ev[ic].alert.peak_score, thr,
            ad_close_reason_name(r.ev[ic].alert.reason), (long long)r.ev[ic].alert.end_ms / 2000);
    T_NOTE("fault cleared, rise to 1.45 from row %d: raised at row %lld, cleared at row %lld",
           rise, (long long)r.ev[ir].alert.start_ms / 2000,
           (long long)r.ev[ic].alert.end_ms / 2000);
}

/* A LEVEL AT THE LEVEL TEST'S FENCE: values ~1 calibrate as in
 * level_rise (fence ~1.18-1.28 over 20 windows), then the level moves to
 * 1.15, 1.2 or 1.25 for good (8,000 rows) and its mean over the span
 * wanders across the fence. The test must raise it once and hold it, or
 * accept it (accept_after 50) and stay quiet at that level, not raise
 * alert after alert: at most 3 raises a run. Before, the mean crossing
 * the fence again re-armed the test (no hysteresis) and an acceptance
 * did not move the fence: up to 42 raises a run, 11 acceptances of the
 * same level. Runs: 3 levels x 3 seeds x acceptance off and on. */
static int level_marginal_run(double lvl, uint64_t seed, int accept_after, int *accepted)
{
    ad_detector *d = lvl_det(40000, accept_after, 0, NULL, NULL);
    run r;
    int i;

    memset(&r, 0, sizeof(r));
    *accepted = 0;
    if (d == NULL)
        return -1;
    rng = seed;
    for (i = 0; i < 8000; i++) {
        double l = i >= 400 ? lvl : 1.0;
        double a = l + 0.2 * noise(), b = l + 0.2 * noise();

        step2(d, 2000 * (int64_t)i, a, b, &r);
    }
    ad_detector_free(d);
    free_models();
    *accepted = r.count[AD_EV_ACCEPTED];
    return r.count[AD_EV_ALERT_RAISED];
}

static void test_level_marginal(void)
{
    static const double lv[] = { 1.15, 1.2, 1.25 };
    int k, sd, acc, worst = 0, total = 0, runs = 0, accs = 0;

    for (k = 0; k < 3; k++)
        for (sd = 1; sd <= 3; sd++)
            for (acc = 0; acc <= 50; acc += 50) {
                int a, n = level_marginal_run(lv[k], (uint64_t)sd * 7919, acc, &a);

                T_CHECK(n >= 0 && n <= 3, "level %.2f seed %d accept_after %d: %d raises, %d "
                        "acceptances (want at most 3 raises)", lv[k], sd, acc, n, a);
                worst = n > worst ? n : worst;
                total += n;
                accs += a;
                runs++;
            }
    T_NOTE("a level at the fence, %d runs of 8,000 rows: %d raises in all, at most %d in a "
           "run; %d acceptances", runs, total, worst, accs);
}

/* The accepted level is in the saved state: a level at 1.25 raised and
 * accepted (accept_after 50), the detector saved at row 3000 and restored
 * into a new one, 5,000 rows more at the same level: no raise after the
 * restore (without "accepted" in the state the test judged the level
 * against the normal scores again and raised it anew), also when the new
 * one has another alert.level_ms (the saved mean is dropped then). */
static void accepted_restore_run(int64_t level_ms2, int *before, int *acc, int *after)
{
    ad_model *m = NULL;
    ad_detector_cfg c;
    ad_detector *d = lvl_det(40000, 50, 0, &c, &m), *d2 = NULL;
    char err[300], *txt = NULL;
    run r;
    int i;

    memset(&r, 0, sizeof(r));
    *before = *acc = *after = -1;
    if (d == NULL)
        return;
    c.alert.level_ms = level_ms2;
    rng = 3 * 7919;
    for (i = 0; i < 8000; i++) {
        double l = i >= 400 ? 1.25 : 1.0;
        double a = l + 0.2 * noise(), b = l + 0.2 * noise();

        step2(d, 2000 * (int64_t)i, a, b, &r);
        if (i == 3000) {
            *before = r.count[AD_EV_ALERT_RAISED];
            *acc = r.count[AD_EV_ACCEPTED];
            txt = ad_detector_save(d);
            T_CHECK(txt != NULL && strstr(txt, "\"accepted\":") != NULL,
                    "the saved level test holds the accepted level");
            if (txt == NULL || ad_detector_new(&d2, &c, "pump", m, 0, 0, NULL, err,
                                               sizeof(err)) != 0 ||
                ad_detector_restore(d2, txt, err, sizeof(err)) != 0) {
                T_CHECK(0, "restore: %s", txt ? err : "no state");
                break;
            }
            ad_detector_free(d);
            d = d2;
        }
    }
    free(txt);
    ad_detector_free(d);
    free_models();
    *after = r.count[AD_EV_ALERT_RAISED] - *before;
}

static void test_level_accepted_restored(void)
{
    int before, acc, after;

    accepted_restore_run(40000, &before, &acc, &after);
    T_CHECK(before >= 1 && acc >= 1, "the level raised (%d) and was accepted (%d) before the "
            "restore", before, acc);
    T_CHECK(after == 0, "no raise at the accepted level after the restore (%d raises after it)",
            after);
    /* restored under another alert.level_ms (a reload): the saved mean is
     * dropped, the accepted level (of the same model's scores) kept */
    accepted_restore_run(60000, &before, &acc, &after);
    T_CHECK(after == 0, "restored under alert.level_ms 60 s (the mean dropped): %d raises at "
            "the accepted level after it (want 0)", after);
}

/* The level an acceptance takes, with a level span longer than what was
 * accepted. run_span: values ~1 calibrate, then lvl(i); level span
 * level_ms, accept_after A, step-down (0.6 over 20 windows) when sd.
 * Counts raises before and from row `after`, and acceptances. */
static void span_run(int64_t level_ms, int A, int sd, double (*lvl)(int), int after,
                     int *before, int *from, int *acc)
{
    ad_detector *d = lvl_det(level_ms, A, sd, NULL, NULL);
    run r;
    int i, raised_before = 0;

    memset(&r, 0, sizeof(r));
    *before = *from = *acc = -1;
    if (d == NULL)
        return;
    rng = 7919;
    for (i = 0; i < 6000; i++) {
        double l = lvl(i);

        if (i == after)
            raised_before = r.count[AD_EV_ALERT_RAISED];
        step2(d, 2000 * (int64_t)i, l + 0.2 * noise(), l + 0.2 * noise(), &r);
    }
    ad_detector_free(d);
    free_models();
    *before = after < 6000 ? raised_before : r.count[AD_EV_ALERT_RAISED];
    *from = r.count[AD_EV_ALERT_RAISED] - *before;
    *acc = r.count[AD_EV_ACCEPTED];
}

static double lvl_stepdown_fault(int i)
{
    return i >= 4000 ? 1.80 : i >= 500 ? 1.45 : i >= 400 ? 3.0 : 1.0;
}

static double lvl_step(int i)
{
    return i >= 400 ? 1.5 : 1.0;
}

/* A fault (3.0, over the threshold ~1.59) for 100 rows steps down to 1.45
 * for good (under the threshold): accepted as a step down, no regime. The
 * level span (100 windows) still holds the fault's scores at that
 * acceptance: taken as the accepted level then, the lifted hysteresis
 * re-armed the test at once, the level was forgotten as the fault's scores
 * left the span, and 1.45 raised again and was accepted as a regime whose
 * threshold (2.31, a margin over scores under the threshold) hid a fault
 * at 1.80 from row 4000 for good. And one step to 1.5 under a span of 200
 * windows with accept_after 30: one raise, one acceptance (taken at once,
 * the level was the span's mean still partly before the step: raised and
 * accepted twice). */
static void test_level_accepted_span(void)
{
    int before, from, acc;

    span_run(200000, 500, 1, lvl_stepdown_fault, 4000, &before, &from, &acc);
    T_CHECK(before == 1, "fault, step down to 1.45: %d raises before row 4000 (want 1: the "
            "fault; the accepted level raised again)", before);
    T_CHECK(from >= 1, "a fault at 1.80 over the threshold from row 4000: %d raises (want >= 1)",
            from);
    T_NOTE("step down accepted under a span of 100 windows: %d raise(s) before the fault, %d "
           "from it", before, from);
    span_run(400000, 30, 0, lvl_step, 6000, &before, &from, &acc);
    T_CHECK(before == 1 && acc == 1, "one step to 1.5 under a span of 200 windows, accept_after "
            "30: %d raises, %d acceptances (want 1, 1)", before, acc);
}

/* BURST TEST (alert.burst_ms, burst_n, burst_z): values ~1 +- 0.05 on a
 * model whose scaler gives each feature a learned spread of 1 (score as
 * without one); one-sample spikes x1.6 on a at rows 150, 250 and 350
 * (100 rows apart), a spike train on a (every 10th row x1.6 or x0.4) over
 * rows 400..499, a level shift of a to 1.3 for good from row 600; every
 * score stays under the threshold (a window of 4 rows x 2 features holds
 * at most one spike). With the test over 100 s (50 rows of 2 s) at 3
 * outliers: one alert, raised in the train with a on top, none for the
 * single spikes nor the shift; off (the old behaviour): no alert. */
static void burst_run(int64_t burst_ms, run *r, double *thr)
{
    ad_model *m = t_zero_model(4, F);
    const float mean[F] = { 0, 0 }, sd[F] = { 0.1f, 0.1f };
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    int i;

    memset(r, 0, sizeof(*r));
    *thr = NAN;
    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.alert.burst_ms = burst_ms;
    c.alert.burst_n = 3;
    c.alert.burst_z = 5;
    if (m != NULL && g_nmodels < 16)
        g_models[g_nmodels++] = m;
    if (m == NULL || ad_model_set_scaler(m, AD_SCALER_STANDARD, mean, sd) != 0 ||
        ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "detector: %s", m ? err : "no model");
        free_models();
        return;
    }
    rng = 17;
    for (i = 0; i < 800; i++) {
        double a = (i >= 600 ? 1.3 : 1.0) + 0.05 * noise(), b = 1.0 + 0.05 * noise();

        if (i == 150 || i == 250 || i == 350)
            a *= 1.6;
        if (i >= 400 && i < 500 && i % 10 == 3)
            a *= i % 20 == 3 ? 1.6 : 0.4;
        step2(d, 2000 * (int64_t)i, a, b, r);
        if (i == 399)
            { ad_detector_stats st; ad_detector_get_stats(d, &st); *thr = st.threshold; }
    }
    ad_detector_free(d);
    free_models();
}

static void test_burst(void)
{
    run r;
    double thr;
    int ir, ic;

    burst_run(0, &r, &thr);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 0,
            "burst test off: %d alerts on a spike train under the threshold %.3f (want 0)",
            r.count[AD_EV_ALERT_RAISED], thr);
    burst_run(100000, &r, &thr);
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 0);
    ic = nth_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 1 && ir >= 0 && ic >= 0,
            "burst test on: %d alerts (want 1: the train; not the single spikes nor the "
            "level shift)", r.count[AD_EV_ALERT_RAISED]);
    if (ir < 0 || ic < 0)
        return;
    T_CHECK(r.ev[ir].alert.start_ms >= 400 * 2000 && r.ev[ir].alert.start_ms <= 440 * 2000,
            "raised at row %lld (want 400..440)", (long long)r.ev[ir].alert.start_ms / 2000);
    T_CHECK(r.ev[ic].alert.n_top > 0 && r.ev[ic].alert.top_feature[0] == 0,
            "feature a on top (top %d of %d)", r.ev[ic].alert.n_top > 0 ?
            r.ev[ic].alert.top_feature[0] : -1, r.ev[ic].alert.n_top);
    T_CHECK(r.ev[ic].alert.peak_score < thr,
            "every score under the threshold: peak %.3f, threshold %.3f",
            r.ev[ic].alert.peak_score, thr);
    T_CHECK(r.ev[ic].alert.end_ms >= 500 * 2000 && r.ev[ic].alert.end_ms <= 600 * 2000,
            "cleared at row %lld (want 500..600, before the level shift)",
            (long long)r.ev[ic].alert.end_ms / 2000);
    T_NOTE("spike train on a at rows 400..499 under the threshold %.3f: off 0 alerts; on "
           "1 alert raised at row %lld, a on top, peak %.3f, cleared at row %lld; 3 single "
           "spikes and a level shift raised nothing", thr,
           (long long)r.ev[ir].alert.start_ms / 2000, r.ev[ic].alert.peak_score,
           (long long)r.ev[ic].alert.end_ms / 2000);
}

/* BURST FLOOR (burst.h USUAL SPREAD): the burst test alone on one feature
 * whose learned spread is 0.1 (a floor of 0.05), over 60 rows at 3
 * outliers, z 5. Gaussian noise of 0.05 for 3000 rows, then 0.2 for good
 * (a noise change accepted as the new normal): the MAD of 11 samples of
 * it is small now and then, under the old floor; before, such draws made
 * bursts again and again for as long as the new noise lasted. Now the
 * floor follows the usual local spread: no burst after the first 2000 rows
 * of the new noise; a train of six spikes of 1.6 (8 of its sd), one every
 * 10 rows, is still a burst on it. The usual spread is saved and
 * restored in the middle (a state without it restores too). */
static double gauss(void)
{
    double u = 0.5 * (noise() + 1.0), v = 0.5 * (noise() + 1.0);

    return sqrt(-2.0 * log(u > 1e-300 ? u : 1e-300)) * cos(6.283185307179586 * v);
}

static void test_burst_floor(void)
{
    ad_burst *b = ad_burst_new(1, 60000, 3, 5);
    const double sp = 0.1;
    int i, old = 0, late = 0, train = 0;
    int64_t ts = 0;

    T_CHECK(b != NULL, "ad_burst_new");
    if (b == NULL)
        return;
    rng = 4242;
    for (i = 0; i < 40000; i++) {
        double x = 1.0 + (i < 3000 ? 0.05 : 0.2) * gauss();

        if (i == 20000) {       /* a restart: the usual spread is kept */
            cJSON *o = ad_burst_save(b, ts, 1), *u;
            ad_burst *b2 = ad_burst_new(1, 60000, 3, 5), *b3 = ad_burst_new(1, 60000, 3, 5);
            ad_burst *b4 = ad_burst_new(1, 60000, 3, 5);
            char err[200];
            int rows = 0, rc = -1, rc3 = -1, rc4 = -1, refused = -1, ref4 = -1;
            double u4 = NAN, kept = NAN;

            u = o ? cJSON_GetObjectItemCaseSensitive(o, "usual") : NULL;
            T_CHECK(cJSON_IsArray(u) && cJSON_GetArraySize(u) == 1 &&
                    cJSON_IsNumber(cJSON_GetArrayItem(u, 0)), "saved state with \"usual\"");
            if (o != NULL && b2 != NULL && b3 != NULL && b4 != NULL && cJSON_IsArray(u)) {
                kept = cJSON_GetArrayItem(u, 0)->valuedouble;
                rc = ad_burst_restore(b2, o, ts, &sp, &rows, &refused, err, sizeof(err));
                /* 1e12 restored before the learned spread is known (no
                 * model yet): checked against it at the first judgement */
                cJSON_ReplaceItemInArray(u, 0, cJSON_CreateNumber(1e12));
                rc4 = ad_burst_restore(b4, o, ts, NULL, &rows, &ref4, err, sizeof(err));
                for (int j = 1; j <= 3; j++) {
                    double y = 1.0 + 0.2 * gauss();
                    ad_burst_push(b4, ts + 1000 * j, &y, &sp);
                }
                cJSON *o4 = ad_burst_save(b4, ts + 3000, 0);
                cJSON *v4 = o4 ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o4,
                                                                       "usual"), 0) : NULL;
                u4 = cJSON_IsNumber(v4) ? v4->valuedouble : NAN;
                cJSON_Delete(o4);
                cJSON_DeleteItemFromObjectCaseSensitive(o, "usual");
                rc3 = ad_burst_restore(b3, o, ts, &sp, &rows, &refused, err, sizeof(err));
            }
            T_CHECK(rc == 0 && rows == AD_BURST_K - 1, "restored: %d (%d rows)", rc, rows);
            T_CHECK(rc3 == 0, "a state without \"usual\" (kept before it was) restores: %d",
                    rc3);
            T_CHECK(rc4 == 0 && ref4 == 0 && u4 < AD_BURST_USUAL_MAX * sp,
                    "usual 1e12 restored with no learned spread known (%d, %d refused): "
                    "dropped at the first judgement against one (%g; kept %g)", rc4, ref4,
                    u4, kept);
            cJSON_Delete(o);
            ad_burst_free(b3);
            ad_burst_free(b4);
            if (rc == 0) {
                ad_burst_free(b);
                b = b2;
            } else
                ad_burst_free(b2);
        }

        if (i >= 30000 && i < 30060 && i % 10 == 3)
            x += 1.6;
        ts = 1000 * (int64_t)i;
        ad_burst_push(b, ts, &x, &sp);
        if (ad_burst_feature(b, ts) < 0)
            continue;
        if (i < 3000)
            old++;
        else if (i >= 5000 && i < 30000)
            late++;
        else if (i >= 30000 && i < 30100)
            train++;
    }
    ad_burst_free(b);
    T_CHECK(old == 0, "%d rows in a burst on the learned noise (want 0)", old);
    T_CHECK(late == 0, "%d rows in a burst on four times the noise, 2000 rows after it began "
            "(want 0: the floor follows the usual local spread)", late);
    T_CHECK(train > 0, "a train of six spikes on it: %d rows in a burst (want some)", train);
    T_NOTE("burst floor: rows in a burst: %d on the learned noise, %d on four times it "
           "(after 2000 rows), %d in the spike train on it", old, late, train);
}

/* BURST QUANTUM (burst.h QUANTUM): quantised features, whose neighbourhoods'
 * MAD is 0 (more than half of 11 samples alike), through the burst test
 * alone over 60 rows at 3 outliers, z 5, each with the learned spread of
 * its own values (the model's scaler would have it):
 *   - a valve, 0 or 1: open for 3 rows every 100 rows (learned spread
 *     0.17); before, each opening was 3 outliers of 1 against a floor of
 *     0.085 (z x 0.085 = 0.43): a burst at every opening;
 *   - a temperature read in 0.5-degree steps, 20.1 +- 0.1 (mostly 20.0,
 *     20.5 one time in 15; learned spread 0.125): each 20.5 among 20.0s was an
 *     outlier (0.5 > z x 0.0625) and a few within 60 rows a burst.
 * Now the floor is at least the feature's quantum (its smallest step
 * between two samples): within z quanta of its neighbours' median a sample
 * is no outlier; none of them is a burst, while a train of six spikes of
 * +3 degrees (6 quanta) on the temperature, one every 10 rows, still is. */
static void test_burst_quantum(void)
{
    ad_burst *b = ad_burst_new(2, 60000, 3, 5);
    const double sp[2] = { 0.17, 0.125 };
    int i, valve = 0, temp = 0, train = 0;

    T_CHECK(b != NULL, "ad_burst_new");
    if (b == NULL)
        return;
    rng = 777;
    for (i = 0; i < 6000; i++) {
        double x[2];
        int64_t ts = 1000 * (int64_t)i;
        int f;

        x[0] = i % 100 >= 50 && i % 100 < 53 ? 1.0 : 0.0;
        x[1] = floor(2.0 * (20.1 + 0.1 * gauss()) + 0.5) / 2.0;
        if (i >= 5000 && i < 5060 && i % 10 == 3)
            x[1] += 3.0;
        ad_burst_push(b, ts, x, sp);
        f = ad_burst_feature(b, ts);
        if (f == 0)
            valve++;
        else if (f == 1 && i >= 5000 && i < 5100)
            train++;
        else if (f == 1)
            temp++;
    }
    ad_burst_free(b);
    T_CHECK(valve == 0, "a valve opening for 3 rows every 100: %d rows in a burst (want 0)",
            valve);
    T_CHECK(temp == 0, "a temperature in 0.5-degree steps: %d rows in a burst (want 0)", temp);
    T_CHECK(train > 0, "six spikes of 3 degrees on it: %d rows in a burst (want some)", train);
    T_NOTE("quantised features: rows in a burst: valve %d, temperature %d, spike train on "
           "the temperature %d", valve, temp, train);
}

/* Rows of a 0/1 valve (open 3 rows in 100; flicker: a temperature at 20
 * read 20.5 one row in 7, from the 11th row of a thousand) in a burst over rows [from, to) of b; jitter:
 * the row read 1.0000001 once (-1: none). */
static int valve_bursts(ad_burst *b, int from, int to, int jitter, int flicker)
{
    const double sp[1] = { flicker ? 0.125 : 0.17 };
    int i, n = 0;

    for (i = from; i < to; i++) {
        double x[1] = { i % 100 >= 50 && i % 100 < 53 ? 1.0 : 0.0 };
        if (flicker)
            x[0] = i % 7 == 3 && i % 1000 >= 10 ? 20.5 : 20.0;
        if (i == jitter)
            x[0] = 1.0000001;
        ad_burst_push(b, 1000 * (int64_t)i, x, sp);
        if (ad_burst_feature(b, 1000 * (int64_t)i) == 0)
            n++;
    }
    return n;
}

/* QUANTUM made robust: a step size counts once it recurs, a lone sample's
 * steps weighing less than steps between held levels, and steps under a
 * hundredth of the learned spread not at all. One jittery valve reading
 * (1.0000001 once, at row 251, open) leaves the valve's quantum 1: no
 * burst (it made the smallest step 1e-7 the quantum: a burst at every
 * opening after it). One early set-point step of 4 on a flat feature is no
 * quantum: spikes of +8 on it later are still a burst (the quantum 4 made
 * the floor 5 x 4 = 20). The quantum is saved with the burst state: a
 * temperature's 0.5-degree flickers (lone samples, a quantum only after 4
 * of them) are no burst after a restart; a state without it (kept before
 * it was) loads and learns it afresh, its first flickers a burst. */
static void test_burst_quantum_robust(void)
{
    ad_burst *b = ad_burst_new(1, 60000, 3, 5), *b2;
    const double sp[1] = { 1.0 };
    cJSON *o;
    char err[200];
    int i, n, train = 0, rows, refused;

    T_CHECK(b != NULL, "ad_burst_new");
    if (b == NULL)
        return;
    n = valve_bursts(b, 0, 6000, 251, 0);
    T_CHECK(n == 0, "a valve read 1.0000001 once: %d rows in a burst (want 0)", n);
    ad_burst_free(b);

    b = ad_burst_new(1, 60000, 3, 5);
    for (i = 0; b && i < 2000; i++) {
        double x[1] = { i >= 100 ? 14.0 : 10.0 };
        int64_t ts = 1000 * (int64_t)i;
        if (i >= 1000 && i < 1060 && i % 10 == 3)
            x[0] += 8.0;
        ad_burst_push(b, ts, x, sp);
        if (ad_burst_feature(b, ts) == 0)
            train++;
    }
    ad_burst_free(b);
    T_CHECK(train > 0, "spikes of +8 on a flat feature after one step of 4: %d rows in a "
            "burst (want some)", train);

    b = ad_burst_new(1, 60000, 3, 5);
    b2 = ad_burst_new(1, 60000, 3, 5);
    T_CHECK(b && b2, "ad_burst_new");
    if (b == NULL || b2 == NULL) {
        ad_burst_free(b);
        ad_burst_free(b2);
        return;
    }
    n = valve_bursts(b, 0, 300, -1, 1);
    T_NOTE("flickers: %d rows in a burst while the quantum is learned", n);
    o = ad_burst_save(b, 299000, 0);
    T_CHECK(o && cJSON_GetArrayItem(cJSON_GetObjectItem(o, "quant"), 0) &&
            cJSON_GetArrayItem(cJSON_GetObjectItem(o, "quant"), 0)->valuedouble == 0.5,
            "the temperature's quantum 0.5 saved");
    T_CHECK(ad_burst_restore(b2, o, 299000, (const double[]){ 0.125 }, &rows, &refused, err,
                             sizeof(err)) == 0, "restore: %s", err);
    n = valve_bursts(b2, 1000, 1300, -1, 1);
    T_CHECK(n == 0, "after a restart the flickers: %d rows in a burst (want 0)", n);
    ad_burst_free(b2);
    /* a state kept before the quantum was: loads, learns it afresh */
    b2 = ad_burst_new(1, 60000, 3, 5);
    cJSON_DeleteItemFromObject(o, "quant");
    T_CHECK(b2 && ad_burst_restore(b2, o, 299000, (const double[]){ 0.125 }, &rows, &refused,
                                   err, sizeof(err)) == 0, "an older state loads: %s", err);
    n = b2 ? valve_bursts(b2, 1000, 1300, -1, 1) : -1;
    T_CHECK(n > 0, "an older state (no quantum): %d rows in a burst at the first flickers "
            "(learned afresh)", n);
    cJSON_Delete(o);
    ad_burst_free(b);
    ad_burst_free(b2);
}

/* ONSET (detector.c): a spike shorter than the window (window 4, k 1),
 * stronger than the chain's change, at the time of day of a level-3 alert
 * (rows 100-114, period 120 s): each window that holds it scores the
 * chain's level (mae: `len` rows at (8 + len) / len average to the chain's
 * 3 over 4 rows), so judged by window scores it passed as a recurrence,
 * was accepted and raised nothing. It lasts fewer windows than a change of
 * a window's length of rows (2 x 4 - 1): not a recurrence, raised. The
 * chain's change itself (15 rows at 3) is still accepted at its onset. */
static void test_onset_spike_not_recurrence(void)
{
    static const int lens[] = { 1, 2, 3, 15 };

    for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
        int len = lens[j], spike = len < 4, i;
        double level = spike ? (8.0 + len) / len : 3;
        ad_detector *d;
        ad_detector_stats st;
        run r;

        acc_period_ms = 120000;
        acc_onset = 1;
        d = accept_detector(30, 120, 3, 0.25);
        memset(&r, 0, sizeof(r));
        memset(&st, 0, sizeof(st));
        rng = 21;
        for (i = 0; d && i < 300; i++) {
            double a = (i >= 100 && i < 115) ? 3 : 1;
            if (i >= 220 && i < 220 + len)
                a = level;
            step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), &r);
        }
        if (d)
            ad_detector_get_stats(d, &st);
        ad_detector_free(d);
        acc_period_ms = 0;
        acc_onset = 0;
        if (spike)
            T_CHECK(d && st.accepted == 0 && r.count[AD_EV_ALERT_RAISED] == 2,
                    "a %d-row spike at %.2f at the chain's hour: raised (%d alerts, want 2), "
                    "accepted %llu (want 0)", len, level, r.count[AD_EV_ALERT_RAISED],
                    (unsigned long long)st.accepted);
        else
            T_CHECK(d && st.accepted == 1 && r.count[AD_EV_ALERT_RAISED] == 1,
                    "the change again (%d rows at 3): accepted at its onset (%llu), %d "
                    "alert(s) (want 1)", len, (unsigned long long)st.accepted,
                    r.count[AD_EV_ALERT_RAISED]);
    }
    free_models();
}

/* ONSET (detector.c): windows withheld while a recurrence is judged raise
 * when it is judged not one, as they would have without accept_onset. A
 * level-3 alert (15 rows) at row 100, then at the same time of day (rows
 * 220..) a change of another length or level; window 10, k 3 of 5,
 * accept_after 30 (a wait of 10 windows). Before, each of these raised
 * nothing with accept_onset 1 (and raised with 0): a mild one rejected
 * before the wait ended (16 rows at 1.5), a short strong one rejected at
 * the wait with fewer than k windows after it (2 rows at 17.5), one at
 * the chain's level that the chain's stability refused (4 rows at 4.6);
 * a long one (15 rows at 7) raised a wait late. */
static int withheld_run(int onset, int len, double level, int64_t *second, int *accepted)
{
    ad_detector *d;
    ad_detector_stats st;
    run r;
    int i, ir, n;

    acc_period_ms = 120000;
    acc_onset = onset;
    acc_onset_k = 3;
    acc_window = 10;
    d = accept_detector(30, 120, 3, 0.25);
    memset(&r, 0, sizeof(r));
    rng = 21;
    for (i = 0; d && i < 400; i++) {
        double a = (i >= 100 && i < 115) ? 3 : 1;
        if (i >= 220 && i < 220 + len)
            a = level;
        step2(d, 1000 * i, a + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    }
    ad_detector_get_stats(d, &st);
    *accepted = (int)st.accepted;
    ir = nth_ev(&r, AD_EV_ALERT_RAISED, 1);
    *second = ir >= 0 ? r.ev[ir].ts_ms / 1000 : -1;
    n = r.count[AD_EV_ALERT_RAISED];
    ad_detector_free(d);
    acc_period_ms = 0;
    acc_onset = 0;
    acc_onset_k = 0;
    acc_window = 0;
    free_models();
    return n;
}

static void test_onset_withheld_raise(void)
{
    static const struct { int len; double level; } cs[] = {
        { 16, 1.5 }, { 2, 17.5 }, { 4, 4.6 }, { 15, 7 } };

    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int64_t at0, at1;
        int acc0, acc1;
        int n0 = withheld_run(0, cs[i].len, cs[i].level, &at0, &acc0);
        int n1 = withheld_run(1, cs[i].len, cs[i].level, &at1, &acc1);

        T_CHECK(n0 == 2 && n1 == 2 && acc1 == 0 && at1 >= 220 && at1 <= 220 + 10 + cs[i].len,
                "%d rows at %.1f at the hour of a level-3 alert: raised with accept_onset "
                "1 (%d alerts, the second at row %lld; accepted %d) as with 0 (%d, row %lld)",
                cs[i].len, cs[i].level, n1, (long long)at1, acc1, n0, (long long)at0);
    }
}

int main(void)
{
    T_RUN(test_constant_stream);
    T_RUN(test_poisoned_calibration);
    T_RUN(test_calibration_model_guard);
    T_RUN(test_recurring_steps_kept);
    T_RUN(test_regime_acceptance);
    T_RUN(test_spans_in_data_time);
    T_RUN(test_accept_after_ms);
    T_RUN(test_regime_keeps_sensitivity);
    T_RUN(test_regime_restored);
    T_RUN(test_regime_length_extends);
    T_RUN(test_two_regimes);
    T_RUN(test_recurring_regime);
    T_RUN(test_recurrence_other_level);
    T_RUN(test_accept_onset);
    T_RUN(test_onset_withheld_raise);
    T_RUN(test_accept_onset_schedule);
    T_RUN(test_accept_onset_wrap);
    T_RUN(test_onset_spike_not_recurrence);
    T_RUN(test_ramp_not_accepted);
    T_RUN(test_passing_fault_not_accepted);
    T_RUN(test_stepdown);
    T_RUN(test_stepdown_below_clear);
    T_RUN(test_stepdown_under_threshold);
    T_RUN(test_stepdown_turned_on);
    T_RUN(test_stepdown_scores_damaged);
    T_RUN(test_stepdown_widens);
    T_RUN(test_probability_alerts);
    T_RUN(test_level_rise);
    T_RUN(test_level_after_clear);
    T_RUN(test_level_marginal);
    T_RUN(test_level_accepted_restored);
    T_RUN(test_level_accepted_span);
    T_RUN(test_burst);
    T_RUN(test_burst_floor);
    T_RUN(test_burst_quantum);
    T_RUN(test_burst_quantum_robust);
    return t_done();
}
