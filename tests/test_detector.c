/*
 * test_detector.c - one stream's pipeline end to end, driven the way the
 * daemon and replay drive it: push rows, take window jobs, run the model
 * (ad_forward_ref), feed scores, read events.
 *
 * The model used is a single TimeDistributed Dense with zero weights and no
 * scaler: its reconstruction is 0, so a window's MAE score is simply the
 * mean |value| of the window, which lets each test know the scores it
 * should see without asking the code under test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"
#include "engine.h"

#define F 2

typedef struct run {
    int n_events;
    ad_event ev[64];
    int scored;
} run;

/* Score every due window. With ts_out/sc_out/n: append each scored
 * window's end time and score (room for 64); with r: count them and keep
 * the events there. */
static void score_due(ad_detector *d, int64_t *ts_out, float *sc_out, int *n, run *r)
{
    int T = ad_detector_T(d);
    float in[64 * F], out[64 * F], share[F];
    ad_window_job job;
    ad_event ev;

    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, T, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
        if (n && *n < 64) {
            ts_out[*n] = job.ts_ms;
            sc_out[*n] = mae;
            (*n)++;
        }
        if (r)
            r->scored++;
    }
    while (ad_detector_poll_event(d, &ev))
        if (r && r->n_events < 64)
            r->ev[r->n_events++] = ev;
}

/* Push one row with both features = v at ts; score every due window
 * (score_due). */
static void step_rec(ad_detector *d, int64_t ts, double v, int64_t *ts_out, float *sc_out,
                     int *n, run *r)
{
    double row[F] = { v, v };

    ad_detector_push_row(d, ts, row, NULL);
    score_due(d, ts_out, sc_out, n, r);
}

static void step(ad_detector *d, int64_t ts, double v, run *r)
{
    step_rec(d, ts, v, NULL, NULL, NULL, r);
}

static int find_ev(const run *r, ad_event_type t, int from)
{
    int i;

    for (i = from; i < r->n_events; i++)
        if (r->ev[i].type == t)
            return i;
    return -1;
}

static void test_calibrate_detect_alert(void)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    run r;
    int i, ic, ir, icl;
    ad_detector_stats st;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.thr.margin = 1.2;            /* constant scores 1 -> threshold 1.2 */
    c.alert.k = 2;
    c.alert.n = 3;
    c.alert.m = 2;
    c.alert.clear_ratio = 1.0;     /* clear level = threshold */
    T_CHECK(ad_detector_new(&d, &c, "pump1", m, 0, 0, NULL, err, sizeof(err)) == 0, "%s", err);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_CALIBRATING, "starts calibrating");
    for (i = 0; i < 30; i++)                     /* 27 windows: 20 calibrate */
        step(d, 1000 * i, 1.0, &r);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_DETECTING, "detecting after 20 windows");
    ic = find_ev(&r, AD_EV_CALIBRATED, 0);
    T_CHECK(ic >= 0 && fabs(r.ev[ic].threshold - 1.2) < 1e-9 && r.ev[ic].n == 20,
            "calibrated event threshold 1.2 on 20 windows");
    T_CHECK(ic >= 0 && r.ev[ic].ts_ms == 1000 * 22, "calibrated at the 20th window (row 22)");
    T_CHECK(find_ev(&r, AD_EV_ALERT_RAISED, 0) < 0, "no alert on normal data");
    /* anomaly: value 3 from t=30s; window mean crosses 1.2 at the first
     * such row (mean (1+1+1+3)/4 = 1.5), 2 of 3 at the second */
    for (i = 30; i < 40; i++)
        step(d, 1000 * i, 3.0, &r);
    ir = find_ev(&r, AD_EV_ALERT_RAISED, 0);
    T_CHECK(ir >= 0 && r.ev[ir].alert.start_ms == 31000, "raised at 31 s (2 of 3), got %lld",
            ir >= 0 ? (long long)r.ev[ir].alert.start_ms : -1LL);
    T_CHECK(ir >= 0 && strcmp(r.ev[ir].alert.id, "pump1-31000-1") == 0, "id %s",
            ir >= 0 ? r.ev[ir].alert.id : "");
    ad_detector_get_stats(d, &st);
    T_CHECK(st.alert_active && strcmp(st.alert_id, "pump1-31000-1") == 0, "stats show alert");
    /* back to normal: windows fully normal from t=43; m=2 below -> clear at 44 */
    for (i = 40; i < 50; i++)
        step(d, 1000 * i, 1.0, &r);
    icl = find_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(icl >= 0 && r.ev[icl].alert.end_ms == 44000, "cleared at 44 s, got %lld",
            icl >= 0 ? (long long)r.ev[icl].alert.end_ms : -1LL);
    T_CHECK(icl >= 0 && fabs(r.ev[icl].alert.peak_score - 3.0) < 1e-6 &&
            fabs(r.ev[icl].alert.severity - 2.5) < 1e-6, "peak 3, severity 3/1.2 = 2.5");
    T_CHECK(icl >= 0 && r.ev[icl].alert.n_top == 2, "top features reported");
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_invalid_windows_and_rejects(void)
{
    ad_model *m = t_zero_model(3, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    run r;
    int i;
    ad_detector_stats st;
    double bad[F] = { NAN, 1.0 };

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.stream.missing = AD_MISS_INVALID;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < 5; i++)
        step(d, 1000 * i, 1.0, &r);
    ad_detector_push_row(d, 5000, bad, NULL);   /* invalid row */
    for (i = 6; i < 12; i++)
        step(d, 1000 * i, 1.0, &r);
    step(d, 11000, 1.0, &r);                    /* duplicate ts: dropped */
    ad_detector_get_stats(d, &st);
    /* 12 rows, T=3: 10 windows; the 3 containing row 5 are not scored */
    T_CHECK(st.windows == 10 && st.windows_invalid == 3 && st.windows_scored == 7,
            "windows %llu invalid %llu scored %llu", (unsigned long long)st.windows,
            (unsigned long long)st.windows_invalid, (unsigned long long)st.windows_scored);
    T_CHECK(st.stream.nonfinite == 1 && st.stream.dup == 1, "NaN and duplicate counted");
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_smoothing_and_stale(void)
{
    ad_model *m = t_zero_model(1, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    float in[F];
    ad_window_job j1, j2;
    double row[F];
    ad_detector_stats st;

    ad_detector_cfg_default(&c);
    c.smooth_alpha = 0.5;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    row[0] = row[1] = 1;
    ad_detector_push_row(d, 0, row, NULL);
    row[0] = row[1] = 3;
    ad_detector_push_row(d, 1, row, NULL);
    T_CHECK(ad_detector_next_window(d, in, &j1) == 1 && in[0] == 1, "first job");
    T_CHECK(ad_detector_next_window(d, in, &j2) == 1 && in[0] == 3, "second job");
    ad_detector_feed_score(d, &j1, 1.0, NULL);
    ad_detector_feed_score(d, &j2, 3.0, NULL);
    ad_detector_get_stats(d, &st);
    T_CHECK(st.last_score == 3.0 && st.last_smoothed == 2.0, "EWMA 0.5: 1, 3 -> %g",
            st.last_smoothed);
    T_CHECK(ad_detector_feed_score(d, &j1, 9.0, NULL) == 1, "older job ignored");
    T_CHECK(ad_detector_feed_score(d, &j2, NAN, NULL) == 1, "repeat ignored");
    ad_detector_get_stats(d, &st);
    T_CHECK(st.scores_stale == 2 && st.last_smoothed == 2.0, "stale counted, state unchanged");
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_save_restore(void)
{
    ad_model *m = t_zero_model(2, F), *m2 = t_zero_model(2, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *txt;
    run r;
    int i;
    ad_detector_stats st;
    ad_event ev;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.calib_windows = 10;
    c.thr.method = AD_THR_SIGMA;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_save(d) == NULL, "nothing to save before calibration");
    for (i = 0; i < 12; i++)
        step(d, 1000 * i, 1.0 + 0.1 * (i % 3), &r);
    txt = ad_detector_save(d);
    T_CHECK(txt != NULL, "saved");
    T_NOTE("%s", txt ? txt : "");
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, txt, err, sizeof(err)) == 0, "restore: %s", err);
    T_CHECK(ad_detector_phase(e) == AD_PHASE_DETECTING, "restored detector detects at once");
    T_CHECK(ad_detector_poll_event(e, &ev) == 1 && ev.type == AD_EV_PHASE &&
            ev.phase == AD_PHASE_DETECTING, "phase event on restore");
    ad_detector_get_stats(d, &st);
    {
        ad_detector_stats st2;
        ad_detector_get_stats(e, &st2);
        T_CHECK(st.threshold == st2.threshold, "same threshold %g %g", st.threshold,
                st2.threshold);
    }
    ad_detector_free(e);
    /* another model (different weights -> different id) */
    m2->params[0] = 0.5f;
    {
        void *b;
        size_t l;
        if (ad_model_serialize(m2, &b, &l) == 0)
            free(b);
    }
    ad_detector_new(&e, &c, "s", m2, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, txt, err, sizeof(err)) == AD_EINVAL &&
            ad_detector_phase(e) == AD_PHASE_CALIBRATING, "other model refused: %s", err);
    ad_detector_free(e);
    /* other settings */
    c.thr.k = 4;
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, txt, err, sizeof(err)) == AD_EINVAL, "other settings "
            "refused: %s", err);
    T_CHECK(ad_detector_restore(e, "{oops", err, sizeof(err)) == AD_EFORMAT, "garbage refused");
    ad_detector_free(e);
    free(txt);
    ad_detector_free(d);
    ad_model_free(m);
    ad_model_free(m2);
}

/* The anomaly probability's history is part of the state: a stream saved
 * (hand-over, as at a clean stop or a partition move) and restored
 * mid-stream gives, on every following window, the probability the
 * uninterrupted stream gives; without it (a state from before it was
 * kept, or one kept with another alert.probability_history) the restored
 * stream starts from an empty history and says 0.5 for min_history
 * windows. One row a second, T = 4: one window a row from the 4th. */
#define PN 400

static double prob_row(int i)
{
    uint32_t h = (uint32_t)i * 2654435761u;

    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return 1.0 + 0.3 * ((double)(h & 0xffff) / 65536.0) + (i >= 330 && i < 336 ? 0.6 : 0);
}

static int prob_short_alert;    /* alert k 2, n 3, m 2: it clears at row 340 */

static void prob_cfg(ad_detector_cfg *c, int history)
{
    ad_detector_cfg_default(c);
    if (prob_short_alert) {
        c->alert.k = 2;
        c->alert.n = 3;
        c->alert.m = 2;
        c->alert.clear_ratio = 1.0;
    }
    c->calib_windows = 30;
    c->thr.method = AD_THR_SIGMA;
    c->lik.history = history;
    c->lik.average = 5;
    c->lik.min_history = 20;
}

/* Rows 0..PN-1 into a detector of model m; at row cut (0: never) the
 * state is saved (as it is, or edited by edit) and the rest goes to a new
 * detector restored from it (cfg history hist2). p[i]: the probability
 * after row i. Returns the restore's code. */
static int prob_run(ad_model *m, int cut, int hist2, void (*edit)(cJSON *), double *p)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    int i, rc = 0;

    prob_cfg(&c, 40);
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < PN; i++) {
        if (cut > 0 && i == cut) {
            char *txt = ad_detector_save_handover(d);
            cJSON *o = txt ? cJSON_Parse(txt) : NULL;

            if (o && edit) {
                free(txt);
                edit(o);
                txt = cJSON_PrintUnformatted(o);
            }
            cJSON_Delete(o);
            ad_detector_free(d);
            d = NULL;
            prob_cfg(&c, hist2);
            ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
            rc = ad_detector_restore(d, txt, err, sizeof(err));
            if (rc != 0)
                T_NOTE("restore at row %d: %s", cut, err);
            free(txt);
        }
        step(d, 1000 * (int64_t)i, prob_row(i), NULL);
        ad_detector_get_stats(d, &st);
        p[i] = st.last_probability;
    }
    ad_detector_free(d);
    return rc;
}

static void drop_probability(cJSON *o)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, "probability");
}

static void test_save_restore_probability(void)
{
    static double base[PN], p[PN];
    ad_model *m = t_zero_model(4, F);
    int cuts[] = { 17, 200, 329 }, k, i, same, half, rc;
    double maxd;

    prob_run(m, 0, 40, NULL, base);
    T_CHECK(base[333] > 0.999, "the step at row 330 is improbable: p %.6f", base[333]);
    /* mid-calibration (row 17), detecting, just before the step */
    for (k = 0; k < 3; k++) {
        rc = prob_run(m, cuts[k], 40, NULL, p);
        maxd = 0;
        same = 1;
        for (i = cuts[k]; i < PN; i++) {
            if (p[i] != base[i] && !(isnan(p[i]) && isnan(base[i])))
                same = 0;
            if (fabs(p[i] - base[i]) > maxd)
                maxd = fabs(p[i] - base[i]);
        }
        T_CHECK(rc == 0 && same, "restored at row %d: the next %d probabilities are the "
                "uninterrupted stream's (max difference %.3g)", cuts[k], PN - cuts[k], maxd);
    }
    /* a state without the history (saved before it was kept) loads; the
     * probability starts from nothing: unknown until min_history averages
     * joined the history, each n + w - 2 windows after its window (the
     * newest are held: they may be an alert's run-up, detector_adapt.c
     * PROBABILITY) */
    rc = prob_run(m, 200, 40, drop_probability, p);
    for (i = 200, half = 0; i < PN && isnan(p[i]); i++)
        half++;
    {
        ad_detector_cfg c;
        int want;
        prob_cfg(&c, 40);
        want = c.lik.min_history + c.alert.n + c.lik.average - 2;
        T_CHECK(rc == 0 && half == want, "old state: loads (%d), then %d windows unknown "
                "(want %d)", rc, half, want);
    }
    /* kept with alert.probability_history 40, restored under 41: the
     * threshold is restored, the history is not */
    rc = prob_run(m, 329, 41, NULL, p);
    T_CHECK(rc == 0 && isnan(p[329]) && isnan(p[333]), "other probability_history: "
            "restored (%d), history refused: p %.3f at the step (%.6f uninterrupted)",
            rc, p[333], base[333]);
    ad_model_free(m);
}

/* An alert that clears soon after a restore (rows 330-335 high; alert k 2
 * n 3 m 2: raised at 333, cleared at 340): restored inside it, its held
 * averages are dropped at the clear as they would have been, not added to
 * the history (the fault would become the baseline, and the same fault
 * later improbable no more). Restored at every row from 333 to 345: the
 * probabilities are the uninterrupted stream's. */
static void test_restore_in_alert_probability(void)
{
    static double base[PN], p[PN];
    ad_model *m = t_zero_model(4, F);
    int cut, i, same, rc;
    double maxd;

    prob_short_alert = 1;
    prob_run(m, 0, 40, NULL, base);
    for (cut = 333; cut <= 345; cut++) {
        rc = prob_run(m, cut, 40, NULL, p);
        maxd = 0;
        same = 1;
        for (i = cut; i < PN; i++) {
            if (p[i] != base[i] && !(isnan(p[i]) && isnan(base[i])))
                same = 0;
            if (fabs(p[i] - base[i]) > maxd)
                maxd = fabs(p[i] - base[i]);
        }
        T_CHECK(rc == 0 && same, "short alert, restored at row %d: the next %d probabilities "
                "are the uninterrupted stream's (max difference %.3g)", cut, PN - cut, maxd);
    }
    prob_short_alert = 0;
    ad_model_free(m);
}

/* alert.raise_ratio 1.25 (threshold 1.2, raise level 1.5): a stretch of
 * rows at 1.35 puts its windows over the threshold and under the raise
 * level: nothing is raised, and the stream's stats count each such window
 * (windows_under_raise; the replay's "raise:" line and the stream state's
 * calibration.raise_windows), so an operator sees why a score over the
 * threshold raised no alert; a later stretch at 4 raises, and its windows
 * inside the alert are not counted. With raise_ratio 1 the 1.35 stretch
 * raises and nothing is counted. */
static int raise_band_run(double rr, uint64_t *under, int *band, int64_t *first_raise)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    run r;
    int i, k, n, raised = 0;
    int64_t ts[64];
    float sc[64];

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.thr.margin = 1.2;            /* constant scores 1 -> threshold 1.2 */
    c.alert.k = 2;
    c.alert.n = 3;
    c.alert.m = 2;
    c.alert.clear_ratio = 1.0;
    c.alert.raise_ratio = rr;
    *under = 0;
    *band = 0;
    *first_raise = -1;
    if (ad_detector_new(&d, &c, "pump1", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        ad_model_free(m);
        return -1;
    }
    for (i = 0; i < 30; i++)
        step(d, 1000 * i, 1.0, &r);
    n = 0;                          /* the 1.35 stretch and the rows after it */
    for (i = 30; i < 70; i++)
        step_rec(d, 1000 * i, i < 60 ? 1.35 : 1.0, ts, sc, &n, &r);
    for (k = 0; k < n; k++)
        *band += sc[k] > 1.2 * (1 + 1e-6) && sc[k] < 1.2 * rr * (1 - 1e-6);
    for (i = 70; i < 90; i++)
        step(d, 1000 * i, 4.0, &r);
    for (k = 0; k < r.n_events; k++)
        if (r.ev[k].type == AD_EV_ALERT_RAISED) {
            if (*first_raise < 0)
                *first_raise = r.ev[k].alert.start_ms;
            raised++;
        }
    ad_detector_get_stats(d, &st);
    *under = st.windows_under_raise;
    ad_detector_free(d);
    ad_model_free(m);
    return raised;
}

static void test_raise_ratio_counted(void)
{
    uint64_t under;
    int band, n;
    int64_t first;

    n = raise_band_run(1.25, &under, &band, &first);
    T_CHECK(band >= 25, "%d windows of the 1.35 stretch between threshold and raise level", band);
    T_CHECK(n == 1 && first >= 70000, "raise_ratio 1.25: %d alert(s), the first at %lld "
            "(want 1, at the stretch at 4 from 70 s)", n, (long long)first);
    T_CHECK(under == (uint64_t)band, "raise_ratio 1.25: %llu windows counted under the raise "
            "level (want the %d between threshold and raise level)",
            (unsigned long long)under, band);
    n = raise_band_run(1.0, &under, &band, &first);
    T_CHECK(n == 2 && first < 70000 && under == 0, "raise_ratio 1: %d alerts, the first at "
            "%lld (want 2, the first in the 1.35 stretch), %llu windows counted (want 0)",
            n, (long long)first, (unsigned long long)under);
}

/* BAND RUN (alert.band): threshold 1.2, raise_ratio 1.25 (raise level
 * 1.5), accept_after 40 windows, threshold adaptation on. 120 rows at 1.35
 * put 120 windows (one a row) over the threshold and under the raise level, then the
 * stream goes back to 1. alert.band off (the old behaviour): nothing is
 * raised and nothing learned, the threshold stays 1.2 however long the run
 * lasts. raise: one alert, marked band, raised when the run lasted 40
 * windows, then accepted like any persistent change. learn: no alert, an
 * AD_EV_ACCEPTED event naming the band run when it lasted 40 windows, and
 * its windows learned (the threshold rises). raise_ratio 1 and
 * accept_after 0 behave as before whatever alert.band says. */
typedef struct band_res {
    int raised, raised_band, accepted, band_event;
    int64_t first_raise, band_event_ts, accepted_ts;
    int reason_accepted;
    uint64_t under;
    double threshold;
} band_res;

static int64_t band_after_ms;     /* band_case: accept_after as data time instead */

static void band_case(ad_alert_band band, double rr, int A, int cut, band_res *res)
{
    ad_model *m = t_zero_model(1, F);    /* window = row: no ramp */
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    run r;
    int i, k;

    memset(&r, 0, sizeof(r));
    memset(res, 0, sizeof(*res));
    res->first_raise = res->band_event_ts = res->accepted_ts = -1;
    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.thr.margin = 1.2;            /* constant scores 1 -> threshold 1.2 */
    c.thr.adapt = 1;
    c.alert.k = 2;
    c.alert.n = 3;
    c.alert.m = 2;
    c.alert.clear_ratio = 1.0;
    c.alert.raise_ratio = rr;
    c.alert.accept_after = A;
    c.alert.band = band;
    if (band_after_ms > 0) {
        c.alert.accept_after = 0;
        c.alert.accept_after_ms = band_after_ms;
    }
    if (ad_detector_new(&d, &c, "pump1", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        ad_model_free(m);
        return;
    }
    for (i = 0; i < 170; i++) {
        if (i == cut) {             /* a restart: the state saved and restored */
            char *txt = ad_detector_save(d);

            ad_detector_free(d);
            d = NULL;
            if (ad_detector_new(&d, &c, "pump1", m, 0, 0, NULL, err, sizeof(err)) != 0 ||
                txt == NULL || ad_detector_restore(d, txt, err, sizeof(err)) != 0)
                T_CHECK(0, "restore at row %d: %s", cut, err);
            free(txt);
        }
        step(d, 1000 * i, i >= 30 && i < 150 ? 1.35 : 1.0, &r);
        for (k = 0; k < r.n_events; k++) {
            const ad_event *e = &r.ev[k];
            if (e->type == AD_EV_ALERT_RAISED) {
                if (res->first_raise < 0)
                    res->first_raise = e->alert.start_ms;
                res->raised++;
                res->raised_band += e->alert.band;
            } else if (e->type == AD_EV_ALERT_CLEARED) {
                res->reason_accepted += e->alert.reason == AD_CLOSE_ACCEPTED;
            } else if (e->type == AD_EV_ACCEPTED && strstr(e->text, "band") != NULL) {
                res->band_event++;
                res->band_event_ts = e->ts_ms;
            } else if (e->type == AD_EV_ACCEPTED) {
                res->accepted++;
                res->accepted_ts = e->ts_ms;
            }
        }
        r.n_events = 0;
    }
    ad_detector_get_stats(d, &st);
    res->under = st.windows_under_raise;
    res->threshold = st.threshold;
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_band_run(void)
{
    band_res o, a, b, one, zero, cut;

    band_case(AD_BAND_OFF, 1.25, 40, -1, &o);
    T_CHECK(o.raised == 0 && o.accepted == 0 && o.band_event == 0 && o.under == 120 &&
            fabs(o.threshold - 1.2) < 1e-9, "band off (before): %d alerts, %d acceptances, "
            "%llu windows under the raise level, threshold %.4g (want 0, 0, 120, 1.2: "
            "never raised, never learned)", o.raised, o.accepted,
            (unsigned long long)o.under, o.threshold);
    band_case(AD_BAND_RAISE, 1.25, 40, -1, &a);
    T_CHECK(a.raised == 1 && a.raised_band == 1 && a.first_raise == 69000,
            "band raise: %d alert(s) (%d marked band), raised at %lld (want 1, band, at 69 s: "
            "the run's 40th window)", a.raised, a.raised_band, (long long)a.first_raise);
    T_CHECK(a.accepted == 1 && a.reason_accepted == 1 && a.accepted_ts > a.first_raise &&
            a.accepted_ts < 150000, "band raise: accepted as a persistent change at %lld "
            "(%d acceptance(s), alert closed accepted %d)", (long long)a.accepted_ts,
            a.accepted, a.reason_accepted);
    band_case(AD_BAND_RAISE, 1.25, 40, 50, &cut);
    T_CHECK(cut.raised == 1 && cut.raised_band == 1 && cut.first_raise == 69000,
            "band raise, restarted at row 50 (20 windows into the run): %d alert(s), raised "
            "at %lld (want 1 at 69 s: the run's count survives the restart)", cut.raised,
            (long long)cut.first_raise);
    band_case(AD_BAND_LEARN, 1.25, 40, -1, &b);
    T_CHECK(b.raised == 0 && b.band_event == 1 && b.band_event_ts == 69000 &&
            b.threshold > 1.2 + 1e-6, "band learn: %d alerts, %d band event(s) at %lld, "
            "threshold %.4g (want 0, 1 at 69 s, over 1.2: learned)", b.raised, b.band_event,
            (long long)b.band_event_ts, b.threshold);
    band_case(AD_BAND_RAISE, 1.0, 40, -1, &one);
    T_CHECK(one.raised == 1 && one.raised_band == 0 && one.first_raise == 31000 &&
            one.under == 0, "raise_ratio 1, band raise: %d alert(s) at %lld, %d band, %llu "
            "under (want 1 at 31 s by k of n, none band, 0: unchanged)", one.raised,
            (long long)one.first_raise, one.raised_band, (unsigned long long)one.under);
    band_case(AD_BAND_RAISE, 1.25, 0, -1, &zero);
    T_CHECK(zero.raised == 0 && zero.band_event == 0 && zero.under == o.under &&
            fabs(zero.threshold - 1.2) < 1e-9, "accept_after 0, band raise: %d alerts, %d "
            "band events, %llu under, threshold %.4g (want as band off: nothing accepts a "
            "change, nothing is learned)", zero.raised, zero.band_event,
            (unsigned long long)zero.under, zero.threshold);
    T_NOTE("120 windows at 1.125 x the threshold: off %d alerts, threshold %.3g; raise: "
           "alert at %.0f s, accepted at %.0f s; learn: event at %.0f s, threshold %.3g; "
           "raise_ratio 1: alert at %.0f s", o.raised, o.threshold, a.first_raise / 1e3,
           a.accepted_ts / 1e3, b.band_event_ts / 1e3, b.threshold, one.first_raise / 1e3);
    /* accept_after_ms 40 s: 40 windows of this one-row-a-second stream */
    band_after_ms = 40000;
    band_case(AD_BAND_RAISE, 1.25, 0, -1, &cut);
    band_after_ms = 0;
    T_CHECK(cut.raised == 1 && cut.raised_band == 1 && cut.first_raise == 69000,
            "band raise, accept_after_ms 40 s: %d alert(s) (%d band), raised at %lld (want "
            "1, band, at 69 s as accept_after 40)", cut.raised, cut.raised_band,
            (long long)cut.first_raise);
    band_case(AD_BAND_LEARN, 1.25, 0, -1, &zero);
    T_CHECK(zero.raised == 0 && zero.band_event == 0 && fabs(zero.threshold - 1.2) < 1e-9,
            "accept_after 0, band learn: %d alerts, %d band events, threshold %.4g (want 0, "
            "0, 1.2: never silently learned)", zero.raised, zero.band_event, zero.threshold);
}

/* calibration.season_ms: a step at the same phase of every 96 s period
 * alerts until it has shown in 2 of the last 3 periods, then raises
 * nothing; a step at another phase still alerts; the level survives a
 * save and restore. One row a second (value 1, 10 at the step), T = 2. */
static int raises_len(ad_detector *d, int64_t from, int64_t to, double step_at, int len,
                      double height, int64_t P, uint64_t *seasonal)
{
    run r;
    int64_t t;
    int i, n = 0;
    ad_detector_stats st;

    memset(&r, 0, sizeof(r));
    for (t = from; t < to; t += 1000) {
        int64_t ph = (t % P) / 1000;
        double v = 1.0 + 0.1 * (double)((t / 1000) % 3);
        if (ph >= step_at && ph < step_at + len)
            v = height;
        step(d, t, v, &r);
    }
    for (i = 0; i < r.n_events; i++)
        n += r.ev[i].type == AD_EV_ALERT_RAISED;
    ad_detector_get_stats(d, &st);
    if (seasonal)
        *seasonal = st.windows_seasonal;
    return n;
}

static int raises_in(ad_detector *d, int64_t from, int64_t to, double step_at, int64_t P,
                     uint64_t *seasonal)
{
    return raises_len(d, from, to, step_at, 5, 10, P, seasonal);
}

/* A seasonal period that holds fewer than 4 windows (here a row every
 * 96 s against a 96 s period: daily rows against a day) has no phases to
 * tell apart: the level is off for that stream, with one warning. On, it
 * would be the scores of the last periods whatever the hour: an excursion
 * on every third row (20x) would raise twice and then be "part of the
 * cycle"; off, they keep raising. */
static int season_warns;
static void season_log(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level == AD_LOG_WARNING && strstr(msg, "calibration.season_ms") &&
        strstr(msg, "the seasonal level is off for this stream"))
        season_warns++;
}

static void test_season_slow(void)
{
    ad_model *m = t_zero_model(2, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300], *txt;
    run r;
    int64_t t, t0 = 96000 * 1000;
    int i, n = 0, k = 0;

    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.thr.method = AD_THR_SIGMA;
    c.alert.k = 1;
    c.alert.n = 1;
    c.alert.m = 1;
    c.alert.clear_ratio = 1;        /* the quiet scores sit just under it */
    c.season_ms = 96000;
    c.season_periods = 2;
    T_CHECK(ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err)) == 0, "new: %s", err);
    if (d == NULL) {
        ad_model_free(m);
        return;
    }
    memset(&r, 0, sizeof(r));
    season_warns = 0;
    ad_log_set(season_log, NULL);
    for (t = t0; t < t0 + 200 * 96000; t += 96000, k++)
        step(d, t, k >= 60 && k % 3 == 0 ? 20.0 : 1.0 + 0.1 * (double)(k % 5), &r);
    ad_log_set(NULL, NULL);
    for (i = 0; i < r.n_events; i++)
        n += r.ev[i].type == AD_EV_ALERT_RAISED;
    txt = ad_detector_save(d);
    T_NOTE("a window every 96 s, season_ms 96 s: %d warning(s), %d phases, %d raises",
           season_warns, ad_detector_season_phases(d), n);
    T_CHECK(season_warns == 1 && ad_detector_season_phases(d) == 0 && txt != NULL &&
            strstr(txt, "\"season\"") == NULL,
            "season off: %d warnings, %d phases with a level, saved level: %s", season_warns,
            ad_detector_season_phases(d), txt && strstr(txt, "\"season\"") ? "yes" : "no");
    T_CHECK(n >= 25, "the excursions keep raising (%d raises for 47; an alert open across "
            "two of them is one)", n);
    free(txt);
    ad_detector_free(d);
    /* A fixed threshold detects from the first window, before the window
     * period is known (31 intervals): the level judges nothing until then
     * (the same excursions from the 4th row, 30 rows: 9 raises) */
    c.thr.method = AD_THR_FIXED;
    c.thr.fixed = 5;
    d = NULL;
    T_CHECK(ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err)) == 0, "new: %s", err);
    if (d != NULL) {
        memset(&r, 0, sizeof(r));
        for (k = 0, t = t0; k < 30; t += 96000, k++)
            step(d, t, k >= 3 && k % 3 == 0 ? 20.0 : 1.0 + 0.1 * (double)(k % 5), &r);
        for (i = 0, n = 0; i < r.n_events; i++)
            n += r.ev[i].type == AD_EV_ALERT_RAISED;
        T_CHECK(n == 9, "fixed threshold, before the period is known: %d raises (want 9)", n);
        ad_detector_free(d);
    }
    ad_model_free(m);
}

static void test_season(void)
{
    ad_model *m = t_zero_model(2, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *txt;
    const int64_t P = 96000, t0 = 96000 * 1000;
    int k, n, early = 0, late = 0;
    uint64_t seas = 0;

    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.thr.method = AD_THR_SIGMA;
    c.alert.clear_ratio = 1;        /* the quiet scores sit just under it */
    c.alert.m = 3;                  /* clears soon: an alert judged against the level
                                     * would clear inside the step's phase */
    c.season_ms = P;
    c.season_periods = 2;
    T_CHECK(ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err)) == 0, "new: %s", err);
    if (d == NULL)
        return;
    /* calibration (no step), then six periods with the step at 40 s */
    raises_in(d, t0, t0 + 30000, -100, P, NULL);
    for (k = 0; k < 6; k++) {
        n = raises_in(d, t0 + 30000 + k * P, t0 + 30000 + (k + 1) * P, 40, P, &seas);
        if (k < 2)
            early += n;
        else if (k >= 3)
            late += n;
    }
    T_CHECK(early == 2, "the first two periods: the step alerts each time (%d raises)", early);
    T_CHECK(late == 0 && seas > 0, "after 2 of 3 periods: no raise (%d), %llu windows under "
            "the seasonal level", late, (unsigned long long)seas);
    T_CHECK(ad_detector_season_phases(d) == 96, "every phase has a level (%d)",
            ad_detector_season_phases(d));
    /* the same step at 70 s: not the cycle */
    n = raises_in(d, t0 + 30000 + 6 * P, t0 + 30000 + 7 * P, 70, P, NULL);
    T_CHECK(n == 1, "a step at another phase alerts (%d raises)", n);
    /* a fault from 30 s to 55 s, through the step's phase: one alert, open
     * through it (an open alert is judged against the threshold) */
    {
        ad_detector_stats st;
        int64_t a = t0 + 30000 + 7 * P;
        n = raises_len(d, a, a + 21000, 30, 25, 10, P, NULL);     /* 30 s .. 50 s */
        ad_detector_get_stats(d, &st);
        T_CHECK(n == 1 && st.alert_active, "a fault through the step's phase: %d raise(s), "
                "open at 50 s: %d", n, st.alert_active);
        raises_len(d, a + 21000, a + P - 30000, 30, 25, 10, P, NULL);  /* it ends, clears */
        ad_detector_get_stats(d, &st);
        T_CHECK(!st.alert_active, "the fault's alert cleared after it");
    }

    /* saved and restored: the restored stream knows the step's phase */
    txt = ad_detector_save(d);
    T_CHECK(txt != NULL && strstr(txt, "\"season\"") != NULL, "the level is saved");
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(e && ad_detector_restore(e, txt, err, sizeof(err)) == 0, "restore: %s", err);
    if (e) {
        T_CHECK(ad_detector_season_phases(e) == ad_detector_season_phases(d),
                "restored phases %d, saved %d", ad_detector_season_phases(e),
                ad_detector_season_phases(d));
        n = raises_in(e, t0 + 8 * P, t0 + 9 * P, 40, P, NULL);
        T_CHECK(n == 0, "restored: the step raises nothing (%d)", n);
    }
    ad_detector_free(e);
    e = NULL;
    /* kept on UTC days, restored under calibration.season_clock local:
     * the periods are other days, the level is left out (the rest kept) */
    {
        ad_detector_cfg cl = c;
        cl.season_clock = AD_SEASON_LOCAL;
        ad_detector_new(&e, &cl, "s", m, 0, 0, NULL, err, sizeof(err));
        T_CHECK(e && ad_detector_restore(e, txt, err, sizeof(err)) == 0 &&
                ad_detector_season_phases(e) == 0 && ad_detector_phase(e) == AD_PHASE_DETECTING,
                "restored on another clock: %d phases, phase %d (%s)",
                e ? ad_detector_season_phases(e) : -1, e ? (int)ad_detector_phase(e) : -1, err);
        ad_detector_free(e);
    }
    /* kept on local days in one time zone: restored in the same zone it
     * is kept, in another the level is left out (a zone 48 s = half a
     * period east finds the same periods, at phases half a period off) */
    {
        ad_detector_cfg cl = c;
        ad_detector *dl = NULL, *el = NULL;
        const char *tz0 = getenv("TZ");
        char tzsave[128] = "", *tl = NULL;
        int pl = -1, pa = -1, pb = -1;

        if (tz0)
            snprintf(tzsave, sizeof(tzsave), "%s", tz0);
        cl.season_clock = AD_SEASON_LOCAL;
        setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
        tzset();                    /* localtime_r follows TZ after tzset */
        if (ad_detector_new(&dl, &cl, "s", m, 0, 0, NULL, err, sizeof(err)) == 0) {
            raises_in(dl, t0, t0 + 30000, -100, P, NULL);
            for (k = 0; k < 3; k++)
                raises_in(dl, t0 + 30000 + k * P, t0 + 30000 + (k + 1) * P, 40, P, NULL);
            pl = ad_detector_season_phases(dl);
            tl = ad_detector_save(dl);
        }
        if (tl && ad_detector_new(&el, &cl, "s", m, 0, 0, NULL, err, sizeof(err)) == 0 &&
            ad_detector_restore(el, tl, err, sizeof(err)) == 0)
            pa = ad_detector_season_phases(el);
        ad_detector_free(el);
        el = NULL;
        setenv("TZ", "BBB-1:00:48", 1);   /* half a period later: same periods */
        tzset();
        if (tl && ad_detector_new(&el, &cl, "s", m, 0, 0, NULL, err, sizeof(err)) == 0 &&
            ad_detector_restore(el, tl, err, sizeof(err)) == 0)
            pb = ad_detector_season_phases(el);
        T_CHECK(pl > 0 && pa == pl && pb == 0 && tl && strstr(tl, "\"zone\":\"CET-1CEST,M3.5.0,M10.5.0/3 +3600 +7200\""),
                "local level of %d phases: restored in its zone %d, in another %d", pl, pa, pb);
        ad_detector_free(el);
        ad_detector_free(dl);
        free(tl);
        if (tz0)
            setenv("TZ", tzsave, 1);
        else
            unsetenv("TZ");
        tzset();
    }
    /* the same model recalibrated keeps the level; another model drops it */
    {
        ad_model *m2 = t_zero_model(2, F);
        void *b;
        size_t l;
        int before = ad_detector_season_phases(d);
        T_CHECK(ad_detector_recalibrate(d, err, sizeof(err)) == 0, "recalibrate: %s", err);
        T_CHECK(before == 96 && ad_detector_season_phases(d) == before,
                "recalibrated: %d phases kept of %d", ad_detector_season_phases(d), before);
        m2->params[0] = 0.5f;
        if (ad_model_serialize(m2, &b, &l) == 0)
            free(b);
        T_CHECK(ad_detector_set_model(d, m2, 0, err, sizeof(err)) == 0 &&
                ad_detector_season_phases(d) == 0, "another model: %d phases left (%s)",
                ad_detector_season_phases(d), err);
        ad_detector_free(d);
        d = NULL;
        ad_model_free(m2);
    }
    /* untrusted windows (a value beyond calibration.extreme) teach no level:
     * a step of 60 at the same phase alerts every period */
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    raises_in(d, t0, t0 + 30000, -100, P, NULL);
    for (k = 0, late = 0; k < 5; k++)
        late += raises_len(d, t0 + 30000 + k * P, t0 + 30000 + (k + 1) * P, 40, 5, 60, P, NULL);
    T_CHECK(late == 5, "untrusted steps: all five alert (%d)", late);
    ad_detector_free(d);
    /* a calibration two periods long teaches the level already */
    c.calib_windows = 2 * 96 + 10;
    c.thr.method = AD_THR_QUANTILE;
    c.thr.q = 0.5;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    raises_in(d, t0, t0 + 2 * P + 20000, 40, P, NULL);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_DETECTING, "calibrated");
    n = raises_in(d, t0 + 2 * P + 20000, t0 + 3 * P + 20000, 40, P, &seas);
    T_CHECK(n == 0 && seas > 0, "the first period after it: the step raises nothing (%d)", n);
    ad_detector_free(d);
    d = NULL;
    c.thr.method = AD_THR_SIGMA;
    c.calib_windows = 20;
    /* without the level: every step alerts */
    c.season_ms = 0;
    ad_detector_free(d);
    d = NULL;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    raises_in(d, t0, t0 + 30000, -100, P, NULL);
    for (k = 0, late = 0; k < 6; k++)
        late += raises_in(d, t0 + 30000 + k * P, t0 + 30000 + (k + 1) * P, 40, P, NULL);
    T_CHECK(late == 6, "season off: all six steps alert (%d)", late);
    free(txt);
    ad_detector_free(d);
    ad_model_free(m);
}

/* PERIOD mode keeps the absolute rule (max_gap_ms): a handed-over stream
 * restarts its window at a hole wherever the live one does (45-minute
 * grid, a 110-minute hole, max_gap_ms an hour). */
static uint64_t period_resets(ad_detector *d, int64_t from, int64_t P)
{
    ad_detector_stats st;
    int64_t ts[64];
    float sc[64];
    int n = 0, k;

    for (k = 0; k < 4; k++)
        step_rec(d, from + k * P, 1.0, ts, sc, &n, NULL);
    ad_detector_get_stats(d, &st);
    return st.window_resets;
}

static void test_handover_period(void)
{
    const int64_t M = 60000, P = 45 * M;
    ad_model *m = t_zero_model(6, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *hand = NULL;
    int64_t ts[64];
    float sc[64];
    int n = 0, k;
    uint64_t live, resumed;

    ad_detector_cfg_default(&c);
    c.stream.mode = AD_ASM_PERIOD;
    c.stream.period_ms = P;
    c.stream.max_gap_ms = 60 * M;
    c.calib_windows = 8;
    c.thr.method = AD_THR_SIGMA;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    if (d && e) {
        for (k = 0; k <= 20; k++)
            step_rec(d, k * P, 1.0, ts, sc, &n, NULL);
        ad_detector_advance(d, 20 * P + 1);
        score_due(d, ts, sc, &n, NULL);     /* the grid rows the advance emitted */
        hand = ad_detector_save_handover(d);
        T_CHECK(hand && ad_detector_restore(e, hand, err, sizeof(err)) == 0, "restore: %s", err);
        live = period_resets(d, 20 * P + 110 * M, P);
        resumed = period_resets(e, 20 * P + 110 * M, P);
        T_CHECK(live == 1 && resumed == 1, "period grid, a 110-minute hole: live %llu restart(s), "
                "handed over %llu", (unsigned long long)live, (unsigned long long)resumed);
    }
    free(hand);
    ad_detector_free(d);
    ad_detector_free(e);
    ad_model_free(m);
}

/* Daily rows handed over: the next row a day later continues the saved
 * rows (a day is more than max_gap_ms but not a hole for this stream);
 * six days later is one. */
static void test_handover_daily(void)
{
    enum { TW = 6 };
    const int64_t DAY = 86400000LL;
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *hand;
    int64_t ts[64];
    float sc[64];
    int n = 0, i, k;

    ad_detector_cfg_default(&c);
    c.calib_windows = 8;
    c.thr.method = AD_THR_SIGMA;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < 30; i++)
        step_rec(d, DAY * i, 1.0 + 0.1 * (i % 5), ts, sc, &n, NULL);
    /* the first interval is judged by max_gap_ms alone (no usual one yet):
     * the ring restarts at the second row, then a window per row */
    T_CHECK(n == 30 - TW, "daily rows: a window per row from the second on (%d)", n);
    hand = ad_detector_save_handover(d);
    for (k = 0; k < 2; k++) {
        int64_t next = DAY * (29 + (k ? 7 : 1));
        n = 0;
        ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
        T_CHECK(e && ad_detector_restore(e, hand, err, sizeof(err)) == 0, "restore: %s", err);
        step_rec(e, next, 1.0, ts, sc, &n, NULL);
        T_CHECK(n == (k ? 0 : 1), "handed over, the next row %d day(s) later: %d window(s)",
                k ? 7 : 1, n);
        ad_detector_free(e);
        e = NULL;
    }
    free(hand);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A detector restored from `state` given `rows` rows (value 1) from
 * `first` on, 1 s apart: windows scored, the first one's end in *t0. */
static int resumed(const ad_detector_cfg *c, ad_model *m, const char *state, int64_t first,
                   int rows, int64_t *t0)
{
    ad_detector *e = NULL;
    char err[300];
    int64_t ts[64];
    float sc[64];
    int n = 0, i;

    ad_detector_new(&e, c, "s", m, 0, 0, NULL, err, sizeof(err));
    ad_detector_restore(e, state, err, sizeof(err));
    for (i = 0; i < rows; i++)
        step_rec(e, first + 1000 * i, 1.0, ts, sc, &n, NULL);
    *t0 = n ? ts[0] : -1;
    ad_detector_free(e);
    return n;
}

/* A stream handed over (ad_detector_save_handover -> restore) scores the
 * same windows, on the same rows, as one that was not: its window ring and
 * hop phase move with it. A plain save does not carry them; a first row
 * that does not follow the saved rows (after a hole longer than
 * max_gap_ms) starts a fresh ring; rows at or before the last saved one
 * (delivered again) are refused and the saved rows continue; a damaged
 * window part is ignored. */
static void test_handover_window(void)
{
    enum { TW = 6, HOP = 2, CUT = 31, END = 60 };
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *hand, *plain, *bad;
    int64_t ta[64], tb[64];
    float sa[64], sb[64];
    int na = 0, nb = 0, i, same;
    int64_t gap_at, t0, t1;

    ad_detector_cfg_default(&c);
    c.calib_windows = 8;
    c.thr.method = AD_THR_SIGMA;
    c.hop = HOP;
    c.stream.max_gap_ms = 10000;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < CUT; i++)
        step_rec(d, 1000 * i, 1.0 + 0.1 * (i % 5), ta, sa, &na, NULL);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_DETECTING, "calibrated before the hand-over");
    hand = ad_detector_save_handover(d);
    plain = ad_detector_save(d);
    T_CHECK(hand && strstr(hand, "\"window\"") && plain && !strstr(plain, "\"window\""),
            "the hand-over save carries the window rows, the plain one does not");
    na = 0;
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, hand, err, sizeof(err)) == 0, "restore: %s", err);
    for (i = CUT; i < END; i++) {
        double v = 1.0 + 0.1 * (i % 5) + (i > 45 ? 2.0 : 0.0);
        step_rec(d, 1000 * i, v, ta, sa, &na, NULL);
        step_rec(e, 1000 * i, v, tb, sb, &nb, NULL);
    }
    same = na == nb && na > 0;
    for (i = 0; same && i < na; i++)
        same = ta[i] == tb[i] && sa[i] == sb[i];
    T_CHECK(same, "handed-over stream scores the same %d windows as the original (%d), "
            "first at %lld (original %lld)", nb, na, (long long)(nb ? tb[0] : -1),
            (long long)(na ? ta[0] : -1));
    T_CHECK(na >= (END - CUT) / HOP && na <= (END - CUT + HOP - 1) / HOP,
            "one window every %d rows from the first row on: %d", HOP, na);
    ad_detector_free(e);

    /* plain save: a fresh ring, the first window only after T rows */
    nb = 0;
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, plain, err, sizeof(err)) == 0, "plain restore: %s", err);
    for (i = CUT; i < END; i++)
        step_rec(e, 1000 * i, 1.0, tb, sb, &nb, NULL);
    T_CHECK(nb > 0 && tb[0] == 1000 * (CUT + TW - 1), "without the rows: first window after "
            "T rows (at %lld)", (long long)(nb ? tb[0] : -1));
    ad_detector_free(e);

    /* a hole longer than max_gap_ms after the saved rows: fresh ring */
    gap_at = 1000 * (CUT - 1) + c.stream.max_gap_ms + 1;
    nb = resumed(&c, m, hand, gap_at, TW, &t0);
    T_CHECK(nb == 1 && t0 == gap_at + 1000 * (TW - 1), "after a hole: first window after T "
            "rows (%d windows)", nb);
    /* a hole of 5 row spacings (a state file reused after rows went past
     * it): fresh ring, though within max_gap_ms */
    gap_at = 1000 * (CUT - 1) + 5000;
    nb = resumed(&c, m, hand, gap_at, TW, &t0);
    T_CHECK(nb == 1 && t0 == gap_at + 1000 * (TW - 1), "after 5 row spacings: first window "
            "after T rows (%d windows)", nb);
    /* one missed row (2 spacings) continues the rows, as in a live stream */
    nb = resumed(&c, m, hand, 1000 * (CUT - 1) + 2000, TW, &t0);
    T_CHECK(nb >= TW / HOP, "after one missed row: windows continue (%d)", nb);
    /* the last saved rows again (a re-read: MQTT QoS 1, a Kafka
     * rebalance): refused as the stream that was not interrupted refuses
     * them, and the saved rows continue with the new ones */
    nb = resumed(&c, m, hand, 1000 * (CUT - 3), TW, &t0);
    na = resumed(&c, m, hand, 1000 * CUT, TW - 3, &t1);
    T_CHECK(nb == na && nb > 0 && t0 == t1, "re-read rows: the windows of the new rows "
            "alone (%d windows from %lld, without the re-read %d from %lld)", nb,
            (long long)t0, na, (long long)t1);

    /* a damaged window part: ignored, the calibration still restored */
    bad = strdup(hand);
    if (bad && strstr(bad, "\"since\":"))
        memcpy(strstr(bad, "\"since\":"), "\"sinxe\":", 8);
    nb = 0;
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, bad, err, sizeof(err)) == 0 &&
            ad_detector_phase(e) == AD_PHASE_DETECTING, "damaged window part: calibration "
            "restored (%s)", err);
    for (i = CUT; i < CUT + TW; i++)
        step_rec(e, 1000 * i, 1.0, tb, sb, &nb, NULL);
    T_CHECK(nb == 1, "damaged window part: fresh ring (%d windows)", nb);
    ad_detector_free(e);
    free(bad);
    free(hand);
    free(plain);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A reload's rebuild under other calibration settings: ad_detector_restore
 * refuses the state, ad_detector_restore_window still refills the ring
 * from its rows, so the new detector (a fixed threshold: detecting at once)
 * scores the next row, on the same window the old detector would have, and
 * a shorter hop than the one the rows were saved under (since >= hop)
 * makes the next row's window due. Without the rows, the first window
 * comes T rows later; once rows were consumed, the call does nothing. */
static void test_restore_window_rebuild(void)
{
    enum { TW = 6, CUT = 31 };
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c, c2;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *hand;
    int64_t ta[8], tb[8];
    float sa[8], sb[8];
    int na = 0, nb = 0, i;

    ad_detector_cfg_default(&c);
    c.calib_windows = 8;
    c.thr.method = AD_THR_SIGMA;
    c.hop = 3;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < CUT; i++)
        step_rec(d, 1000 * i, 1.0 + 0.1 * (i % 5), NULL, NULL, NULL, NULL);
    hand = ad_detector_save_handover(d);
    T_CHECK(hand && strstr(hand, "\"window\""), "hand-over state with rows");
    c2 = c;
    c2.thr.method = AD_THR_FIXED;
    c2.thr.fixed = 100;
    c2.hop = 1;
    ad_detector_new(&e, &c2, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, hand, err, sizeof(err)) != 0, "other settings: refused");
    ad_detector_restore_alert(e, hand, AD_CLOSE_RELOAD);
    T_CHECK(ad_detector_restore_window(e, hand) == 1, "rows restored");
    T_CHECK(ad_detector_last_ts(e) == 1000 * (CUT - 1), "last data time is the rows' last");
    step_rec(d, 1000 * CUT, 1.3, ta, sa, &na, NULL);
    step_rec(e, 1000 * CUT, 1.3, tb, sb, &nb, NULL);
    T_CHECK(nb == 1 && tb[0] == 1000 * CUT, "the next row is scored (%d windows)", nb);
    T_CHECK(na == 0 || (ta[0] == tb[0] && sa[0] == sb[0]), "on the window the old detector "
            "scores");
    T_CHECK(ad_detector_restore_window(e, hand) == 0, "rows consumed: nothing restored");
    ad_detector_free(e);

    /* without the rows: T rows later */
    nb = 0;
    ad_detector_new(&e, &c2, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = CUT; i < CUT + TW; i++)
        step_rec(e, 1000 * i, 1.0, tb, sb, &nb, NULL);
    T_CHECK(nb == 1 && tb[0] == 1000 * (CUT + TW - 1), "without the rows: first window after "
            "T rows (at %lld)", (long long)(nb ? tb[0] : -1));
    ad_detector_free(e);
    free(hand);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A stream handed over after its first row (a reload's rebuild of a new
 * stream, calibrating or with a fixed threshold) keeps that row: its
 * first window is at its T-th row, as without the move (the row was lost,
 * the first window a row late). With one row there is no spacing: the
 * next row continues it within max_gap_ms, as the stream judges its second
 * row, and a later one starts a fresh ring. */
static void test_handover_first_row(void)
{
    enum { TW = 6, B = 1000000 };   /* data times from B ms */
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *hand;
    int64_t ta[16], tb[16], t0;
    float sa[16], sb[16];
    int na, nb, i, k, same;

    for (k = 0; k < 2; k++) {
        ad_detector_cfg_default(&c);
        c.stream.max_gap_ms = 10000;
        if (k == 0) {
            c.calib_windows = 8;
            c.thr.method = AD_THR_SIGMA;
        } else {
            c.thr.method = AD_THR_FIXED;
            c.thr.fixed = 100;
        }
        na = nb = 0;
        ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
        step_rec(d, B, 1.0, ta, sa, &na, NULL);
        hand = ad_detector_save_handover(d);
        T_CHECK(hand && strstr(hand, "\"window\""), "%s: the hand-over after one row carries "
                "it", k ? "fixed" : "calibrating");
        ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
        T_CHECK(ad_detector_restore(e, hand, err, sizeof(err)) == 0, "restore: %s", err);
        for (i = 1; i < TW + 3; i++) {
            step_rec(d, B + 1000 * i, 1.0 + 0.1 * i, ta, sa, &na, NULL);
            step_rec(e, B + 1000 * i, 1.0 + 0.1 * i, tb, sb, &nb, NULL);
        }
        same = na == nb && na == 4 && ta[0] == B + 1000 * (TW - 1);
        for (i = 0; same && i < na; i++)
            same = ta[i] == tb[i] && sa[i] == sb[i];
        T_CHECK(same, "%s: the same %d windows as without the move (%d), first at %lld",
                k ? "fixed" : "calibrating", na, nb, (long long)(nb ? tb[0] : -1));
        ad_detector_free(e);
        ad_detector_free(d);
        /* the next row within max_gap_ms continues the row, after it not */
        nb = resumed(&c, m, hand, B + c.stream.max_gap_ms, TW, &t0);
        T_CHECK(nb == 2 && t0 == B + c.stream.max_gap_ms + 1000 * (TW - 2), "within max_gap_ms: "
                "continued (%d windows, first at %lld)", nb, (long long)(t0 - B));
        nb = resumed(&c, m, hand, B + c.stream.max_gap_ms + 1, TW, &t0);
        T_CHECK(nb == 1 && t0 == B + c.stream.max_gap_ms + 1 + 1000 * (TW - 1), "after a hole "
                "longer than max_gap_ms: fresh ring (%d windows)", nb);
        free(hand);
    }
    ad_model_free(m);
}

/* The value of row i of a calibration test: a varied, repeatable level. */
static double calib_row(int i)
{
    return 1.0 + 0.05 * (double)((i * 7) % 11) + 0.02 * (double)((i * 3) % 5);
}

/* A stream handed over in the middle of calibration (a Kafka partition
 * moving, a stop) continues it on the new detector: the scores collected
 * so far, the smoothing, the window rows and period go along, so it ends
 * calibration at the same window with the same threshold as the one that
 * did not move. A plain save still keeps nothing; other calibration
 * settings (another settings hash) recalibrate. */
static void test_handover_calibrating(void)
{
    enum { TW = 6, CUT = 31, END = 90 };
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c, c2;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *hand, *plain;
    run ra, rb;
    int i, ia, ib;

    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    ad_detector_cfg_default(&c);
    c.calib_windows = 40;
    c.smooth_alpha = 0.5;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < CUT; i++)
        step(d, 1000 * i, calib_row(i), &ra);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_CALIBRATING, "still calibrating at the hand-over "
            "(%d windows scored)", ra.scored);
    hand = ad_detector_save_handover(d);
    plain = ad_detector_save(d);
    T_CHECK(hand && strstr(hand, "\"calibrating\"") && strstr(hand, "\"window\"") && !plain,
            "the hand-over save carries the calibration so far and the window rows, a plain "
            "save nothing (%zu bytes)", hand ? strlen(hand) : 0);
    ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, hand, err, sizeof(err)) == 0 &&
            ad_detector_phase(e) == AD_PHASE_CALIBRATING, "restored, calibrating: %s", err);
    while (ad_detector_poll_event(e, &rb.ev[0])) {}
    for (i = CUT; i < END; i++) {
        step(d, 1000 * i, calib_row(i), &ra);
        step(e, 1000 * i, calib_row(i), &rb);
    }
    ia = find_ev(&ra, AD_EV_CALIBRATED, 0);
    ib = find_ev(&rb, AD_EV_CALIBRATED, 0);
    T_CHECK(ia >= 0 && ib >= 0 && ra.ev[ia].ts_ms == rb.ev[ib].ts_ms &&
            fabs(ra.ev[ia].threshold - rb.ev[ib].threshold) <=
            1e-9 * fabs(ra.ev[ia].threshold) && ra.ev[ia].n == rb.ev[ib].n,
            "calibration ends at the same window with the same threshold: at %lld with %.9g "
            "on %llu windows (without the move: at %lld with %.9g on %llu)",
            ib >= 0 ? (long long)rb.ev[ib].ts_ms : -1LL, ib >= 0 ? rb.ev[ib].threshold : NAN,
            ib >= 0 ? (unsigned long long)rb.ev[ib].n : 0ULL,
            ia >= 0 ? (long long)ra.ev[ia].ts_ms : -1LL, ia >= 0 ? ra.ev[ia].threshold : NAN,
            ia >= 0 ? (unsigned long long)ra.ev[ia].n : 0ULL);
    ad_detector_free(e);

    /* another calibration.windows: another settings hash, calibrated anew */
    c2 = c;
    c2.calib_windows = 50;
    ad_detector_new(&e, &c2, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, hand, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "settings changed"), "other calibration settings: refused (%s)", err);
    ad_detector_free(e);

    /* a damaged calibration part: refused, nothing half restored */
    {
        char *bad = strdup(hand), *at = bad ? strstr(bad, "\"model_out\":") : NULL;
        if (at)
            memcpy(at + 12, "-", 1);
        ad_detector_new(&e, &c, "s", m, 0, 0, NULL, err, sizeof(err));
        T_CHECK(at && ad_detector_restore(e, bad, err, sizeof(err)) == AD_EFORMAT &&
                ad_detector_phase(e) == AD_PHASE_CALIBRATING, "damaged: refused (%s)", err);
        ad_detector_free(e);
        free(bad);
    }
    free(hand);
    free(plain);
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_forced_calibration_and_fixed(void)
{
    ad_model *m = t_zero_model(2, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    run r;
    int i;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.calib_windows = 0;              /* only the caller ends calibration */
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < 6; i++)
        step(d, 1000 * i, 1.0, &r);
    T_CHECK(ad_detector_finish_calibration(d, err, sizeof(err)) == AD_ERANGE &&
            ad_detector_phase(d) == AD_PHASE_CALIBRATING, "5 windows < min 10: continues (%s)",
            err);
    for (i = 6; i < 100; i++)
        step(d, 1000 * i, 1.0, &r);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_CALIBRATING, "no count limit: still calibrating");
    T_CHECK(ad_detector_finish_calibration(d, err, sizeof(err)) == 0 &&
            ad_detector_phase(d) == AD_PHASE_DETECTING, "forced end");
    ad_detector_free(d);

    ad_detector_cfg_default(&c);
    c.thr.method = AD_THR_FIXED;
    c.thr.fixed = 2.0;
    c.alert.k = 1;                    /* raise on the first window over */
    c.alert.n = 1;
    ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_phase(d) == AD_PHASE_DETECTING, "fixed threshold: detecting at once");
    step(d, 0, 5.0, &r);
    step(d, 1000, 5.0, &r);
    T_CHECK(find_ev(&r, AD_EV_ALERT_RAISED, 0) >= 0, "alert on first window over 2");
    ad_detector_free(d);

    /* method model needs matching metadata */
    ad_detector_cfg_default(&c);
    c.thr.method = AD_THR_MODEL;
    T_CHECK(ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err)) == AD_EINVAL,
            "model without training metadata refused: %s", err);
    m->training = strdup("{\"error\":{\"metric\":\"mse\",\"q99\":0.5}}");
    T_CHECK(ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err)) == AD_EINVAL,
            "metric mismatch refused: %s", err);
    c.metric = AD_METRIC_MSE;
    c.thr.margin = 2;
    T_CHECK(ad_detector_new(&d, &c, "s", m, 0, 0, NULL, err, sizeof(err)) == 0 &&
            ad_detector_phase(d) == AD_PHASE_DETECTING, "model q99 x 2");
    {
        ad_detector_stats st;
        ad_detector_get_stats(d, &st);
        T_CHECK(st.threshold == 1.0, "threshold %g", st.threshold);
    }
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_bootstrap_training(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    char err[300];
    run r;
    int i, it;
    ad_train_job *job;
    ad_model *nm = NULL;
    float in[4 * F];
    ad_window_job wj;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 20;
    c.train_epochs = 2;
    c.boot_units = 4;
    c.calib_windows = 10;
    T_CHECK(ad_detector_new(&d, &c, "s", NULL, 0, 0, NULL, err, sizeof(err)) == AD_EINVAL,
            "bootstrap needs T and features");
    T_CHECK(ad_detector_new(&d, &c, "s", NULL, 4, F, names, err, sizeof(err)) == 0, "%s", err);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_COLLECTING, "collecting");
    for (i = 0; i < 22; i++)
        step(d, 1000 * i, sin(i * 0.3), &r);
    T_CHECK(r.scored == 0, "nothing scored while collecting");
    T_CHECK(ad_detector_phase(d) == AD_PHASE_COLLECTING, "22 rows < 23 needed");
    step(d, 22000, sin(22 * 0.3), &r);
    it = find_ev(&r, AD_EV_TRAIN_READY, 0);
    T_CHECK(it >= 0 && ad_detector_phase(d) == AD_PHASE_TRAINING, "train ready after 23 rows");
    /* rows keep arriving during training: dropped, not scored */
    step(d, 23000, 0.1, &r);
    T_CHECK(r.scored == 0 && ad_detector_next_window(d, in, &wj) == 0, "no jobs while training");
    job = ad_detector_take_train_job(d);
    T_CHECK(job && job->n_rows == 23 && job->T == 4 && job->init == NULL, "job: 23 raw rows");
    T_CHECK(ad_detector_take_train_job(d) == NULL, "one job only");
    T_CHECK(job && ad_train_job_run(job, &nm, NULL, err, sizeof(err)) == 0, "train: %s", err);
    T_CHECK(nm && nm->training && strstr(nm->training, "\"error\"") && nm->id[0],
            "trained model has error stats and an id");
    T_CHECK(ad_detector_train_done(d, nm, 1, NULL) == 0, "train done");
    T_CHECK(ad_detector_phase(d) == AD_PHASE_CALIBRATING && ad_detector_model(d) == nm,
            "calibrating with the new model");
    /* ring restarted: the first calibration window is made of new rows */
    for (i = 24; i < 40; i++)
        step(d, 1000 * i, sin(i * 0.3), &r);
    T_CHECK(r.scored == 13, "13 windows from 16 new rows (T=4), got %d", r.scored);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_DETECTING, "detecting after 10");
    ad_train_job_free(job);
    ad_detector_free(d);
}

/* Training rows under a data-quality flag are not collected: rows outside
 * a configured physical range (quality.ranges) are skipped, and no
 * training window spans a skipped row (the job marks where a run starts;
 * the training cuts windows inside runs only). */
static void test_bootstrap_dq_rows(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    const char *rn[1] = { "a" };
    double lo[1] = { -2 }, hi[1] = { 2 };
    char err[300];
    run r;
    int i, it, bad = 0, brk = 0;
    ad_train_job *job;
    ad_model *nm = NULL;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 20;
    c.train_epochs = 1;
    c.boot_units = 4;
    c.dq_n_ranges = 1;
    c.dq_range_names = rn;
    c.dq_range_lo = lo;
    c.dq_range_hi = hi;
    T_CHECK(ad_detector_new(&d, &c, "s", NULL, 4, F, names, err, sizeof(err)) == 0, "%s", err);
    if (d == NULL)
        return;
    /* rows 0-9 beyond the range (a = 5), then in range; row 30 beyond. A
     * range condition clears on the 5th row in range (range_clear_samples):
     * flagged 0-14 and 30-35 */
    for (i = 0; i < 80 && ad_detector_phase(d) == AD_PHASE_COLLECTING; i++)
        step(d, 1000 * i, i < 10 || i == 30 ? 5.0 : sin(i * 0.3), &r);
    T_CHECK(i == 47, "collection ends at row 46 (%d)", i - 1);
    it = find_ev(&r, AD_EV_TRAIN_READY, 0);
    job = ad_detector_take_train_job(d);
    T_CHECK(it >= 0 && job != NULL, "train ready");
    if (job == NULL) {
        ad_detector_free(d);
        return;
    }
    /* 15..29 (15 rows: 12 windows), 36..46 (11 rows: 8 windows) */
    T_NOTE("event: %s, rows %zu", r.ev[it].text, job->n_rows);
    for (i = 0; i < (int)job->n_rows; i++) {
        if (job->rows[(size_t)i * F] > 2)
            bad++;
        if (job->brk && job->brk[i] && i > 0)
            brk = i;
    }
    T_CHECK(bad == 0, "no flagged row collected (%d)", bad);
    T_CHECK(job->n_rows == 26 && brk == 15, "26 rows, a run starts at the 16th (row 36): %zu, %d",
            job->n_rows, brk);
    T_CHECK(strstr(r.ev[it].text, "26 rows (20 windows)"), "20 windows: %s", r.ev[it].text);
    T_CHECK(ad_train_job_run(job, &nm, NULL, err, sizeof(err)) == 0 && nm && nm->training,
            "train: %s", err);
    if (nm && nm->training) {
        const char *p = strstr(nm->training, "\"n_train\":");
        unsigned long nt = 0, nv = 0;
        T_CHECK(p && sscanf(p, "\"n_train\":%lu,\"n_val\":%lu", &nt, &nv) == 2 &&
                nt + nv + 3 == 20, "20 windows (gap 3 before validation): %s", nm->training);
    }
    ad_model_free(nm);
    ad_train_job_free(job);
    ad_detector_free(d);
}

static char train_log[1024];
static int train_warns;
static void keep_train_log(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level == AD_LOG_WARNING && strstr(msg, "constant")) {
        train_warns++;
        snprintf(train_log, sizeof(train_log), "%s", msg);
    }
}

/* Online training warns of a feature that never varies in the collected
 * rows, as the offline anomalyd train does: once, when the collection is
 * complete, naming the stream and the feature (with its value), and the
 * training event's text says it too. Rows whose features all vary: no
 * warning. */
static void test_bootstrap_constant_feature(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "flow", "pressure" };
    char err[300];
    run r;
    int i, it, flat;

    ad_detector_cfg_default(&c);
    c.name = "pump";
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 20;
    for (flat = 1; flat >= 0; flat--) {
        memset(&r, 0, sizeof(r));
        train_warns = 0;
        train_log[0] = '\0';
        T_CHECK(ad_detector_new(&d, &c, "pump1", NULL, 4, F, names, err, sizeof(err)) == 0,
                "%s", err);
        if (d == NULL)
            return;
        ad_log_set(keep_train_log, NULL);
        for (i = 0; i < 30; i++) {     /* 23 rows complete it; 7 more while training */
            double row[F] = { sin(i * 0.3), flat ? 5.0 : 5.0 + 0.01 * i };
            ad_detector_push_row(d, 1000 * i, row, NULL);
            score_due(d, NULL, NULL, NULL, &r);
        }
        ad_log_set(NULL, NULL);
        it = find_ev(&r, AD_EV_TRAIN_READY, 0);
        T_CHECK(it >= 0, "train ready");
        if (flat) {
            T_NOTE("log: %s", train_log);
            T_NOTE("event: %s", it >= 0 ? r.ev[it].text : "");
            T_CHECK(train_warns == 1 && strstr(train_log, "detector pump: stream pump1: "
                                               "training (bootstrap) on 23 rows: feature "
                                               "'pressure' (always 5) is constant") &&
                    !strstr(train_log, "'flow'"),
                    "one warning naming stream and feature: %d, %s", train_warns, train_log);
            T_CHECK(it >= 0 && strstr(r.ev[it].text, "constant: 'pressure' (always 5)"),
                    "in the training event: %s", it >= 0 ? r.ev[it].text : "");
        } else {
            T_CHECK(train_warns == 0 && it >= 0 && !strstr(r.ev[it].text, "constant"),
                    "varying features: no warning (%d: %s)", train_warns, train_log);
        }
        ad_detector_free(d);
        d = NULL;
    }
}

/* training.duration_ms: the collection ends when its rows span the
 * duration of data time (first row to last), or at train_windows, whichever
 * comes first; windows 0 means no count limit and the buffer grows as rows
 * come (2,500 rows here: past its first 1,024). */
static void test_training_duration(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    char err[300];
    run r;
    int i, it;
    ad_train_job *job;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 0;
    c.train_duration_ms = 0;
    T_CHECK(ad_detector_new(&d, &c, "s", NULL, 4, F, names, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "training.duration_ms"), "windows 0 without a duration refused: %s",
            err);
    /* rows every 2 s; 5000 s of data = rows 0 .. 2500 */
    c.train_duration_ms = 5000 * 1000LL;
    T_CHECK(ad_detector_new(&d, &c, "s", NULL, 4, F, names, err, sizeof(err)) == 0, "%s", err);
    for (i = 0; i < 2500; i++)
        step(d, 2000LL * i, sin(i * 0.3), &r);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_COLLECTING && find_ev(&r, AD_EV_TRAIN_READY, 0) < 0,
            "2500 rows = 4998 s: still collecting");
    step(d, 2000LL * 2500, sin(2500 * 0.3), &r);
    it = find_ev(&r, AD_EV_TRAIN_READY, 0);
    job = ad_detector_take_train_job(d);
    T_CHECK(it >= 0 && job && job->n_rows == 2501, "5000 s of data: train ready on %zu rows",
            job ? job->n_rows : 0);
    for (i = 0; job && i < (int)job->n_rows; i++)
        if (fabsf(job->rows[(size_t)i * F] - (float)sin(i * 0.3)) > 1e-6f)
            break;
    T_CHECK(job && i == (int)job->n_rows, "rows kept in order across the buffer's growth "
            "(first difference at %d)", i);
    ad_train_job_free(job);
    ad_detector_free(d);
    /* a count that comes first ends it */
    memset(&r, 0, sizeof(r));
    c.train_windows = 50;
    T_CHECK(ad_detector_new(&d, &c, "s", NULL, 4, F, names, err, sizeof(err)) == 0, "%s", err);
    for (i = 0; i < 53; i++)
        step(d, 2000LL * i, sin(i * 0.3), &r);
    job = ad_detector_take_train_job(d);
    T_CHECK(job && job->n_rows == 53, "50 windows before 5000 s: %zu rows", job ? job->n_rows : 0);
    ad_train_job_free(job);
    ad_detector_free(d);
}

/* An alert open when saved continues after a restore (same id, clears by
 * the rule, next alert seq 2); with other settings it is closed with the
 * reason and the old threshold guards the new calibration. */
static void test_alert_lifecycle(void)
{
    ad_model *m = t_zero_model(4, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *e = NULL;
    char err[300], *txt;
    run r;
    int i, k;
    ad_detector_stats st;

    memset(&r, 0, sizeof(r));
    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.thr.margin = 1.2;
    c.alert.k = 2;
    c.alert.n = 3;
    c.alert.m = 2;
    c.alert.clear_ratio = 1.0;
    ad_detector_new(&d, &c, "pump1", m, 0, 0, NULL, err, sizeof(err));
    for (i = 0; i < 30; i++)
        step(d, 1000 * i, 1.0, &r);
    for (i = 30; i < 40; i++)
        step(d, 1000 * i, 3.0, &r);
    txt = ad_detector_save(d);
    T_CHECK(txt && strstr(txt, "\"open\":{\"id\":\"pump1-31000-1\""), "open alert saved");
    /* same settings: continues */
    memset(&r, 0, sizeof(r));
    ad_detector_new(&e, &c, "pump1", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, txt, err, sizeof(err)) == 0, "restore: %s", err);
    ad_detector_get_stats(e, &st);
    T_CHECK(st.alert_active && strcmp(st.alert_id, "pump1-31000-1") == 0,
            "restored alert active with its id (%s)", st.alert_id);
    for (i = 40; i < 50; i++)
        step(e, 1000 * i, 1.0, &r);
    k = find_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(k >= 0 && strcmp(r.ev[k].alert.id, "pump1-31000-1") == 0 &&
            r.ev[k].alert.reason == AD_CLOSE_CLEARED && r.ev[k].alert.windows > 10,
            "the same id clears by the rule, windows counted across (%llu)",
            k >= 0 ? (unsigned long long)r.ev[k].alert.windows : 0ULL);
    for (i = 50; i < 60; i++)
        step(e, 1000 * i, 3.0, &r);
    k = find_ev(&r, AD_EV_ALERT_RAISED, 0);
    T_CHECK(k >= 0 && r.ev[k].alert.seq == 2, "the next alert is seq 2 (%llu)",
            k >= 0 ? (unsigned long long)r.ev[k].alert.seq : 0ULL);
    ad_detector_free(e);
    /* other settings: closed with reason, guard on the old threshold */
    memset(&r, 0, sizeof(r));
    c.calib_windows = 10;
    ad_detector_new(&e, &c, "pump1", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore(e, txt, err, sizeof(err)) == AD_EINVAL, "settings differ");
    T_CHECK(ad_detector_restore_alert(e, txt, AD_CLOSE_RELOAD) == 1, "closed");
    T_CHECK(ad_detector_restore_alert(e, NULL, AD_CLOSE_RELOAD) == 0, "NULL text: nothing");
    for (i = 40; i < 70; i++)                   /* the fault goes on: never calibrates */
        step(e, 1000 * i, 3.0, &r);
    k = find_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(k >= 0 && strcmp(r.ev[k].alert.id, "pump1-31000-1") == 0 &&
            r.ev[k].alert.reason == AD_CLOSE_RELOAD && r.ev[k].alert.end_ms == 39000,
            "cleared with reason reload at the last row seen (end %lld)",
            k >= 0 ? (long long)r.ev[k].alert.end_ms : -1LL);
    T_CHECK(ad_detector_phase(e) == AD_PHASE_CALIBRATING, "no calibration on the fault");
    for (i = 70; i < 90; i++)
        step(e, 1000 * i, 1.0, &r);
    ad_detector_get_stats(e, &st);
    T_CHECK(ad_detector_phase(e) == AD_PHASE_DETECTING && fabs(st.threshold - 1.2) < 1e-9,
            "calibrates once normal (threshold %g)", st.threshold);
    for (i = 90; i < 100; i++)
        step(e, 1000 * i, 3.0, &r);
    k = find_ev(&r, AD_EV_ALERT_RAISED, 0);
    T_CHECK(k >= 0 && r.ev[k].alert.seq == 2, "seq continues after the close (%llu)",
            k >= 0 ? (unsigned long long)r.ev[k].alert.seq : 0ULL);
    ad_detector_free(e);
    /* another metric: the close keeps the saved scores' metric and model */
    memset(&r, 0, sizeof(r));
    c.metric = AD_METRIC_MSE;
    ad_detector_new(&e, &c, "pump1", m, 0, 0, NULL, err, sizeof(err));
    T_CHECK(ad_detector_restore_alert(e, txt, AD_CLOSE_RELOAD) == 1, "closed (metric mse)");
    step(e, 100000, 1.0, &r);
    k = find_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(k >= 0 && r.ev[k].metric == AD_METRIC_MAE && strcmp(r.ev[k].model_id, m->id) == 0 &&
            r.ev[k].alert.peak_score > 2.0, "closed with the saved metric %d (want mae %d), "
            "model '%s' (want %s)", k >= 0 ? (int)r.ev[k].metric : -1, (int)AD_METRIC_MAE,
            k >= 0 ? r.ev[k].model_id : "", m->id);
    ad_detector_free(e);
    /* an operator's recalibrate closes the open alert for that reason: the
     * model did not change (it read model_changed) */
    memset(&r, 0, sizeof(r));
    ad_detector_get_stats(d, &st);
    T_CHECK(st.alert_active, "d's alert still open");
    T_CHECK(ad_detector_recalibrate(d, err, sizeof(err)) == 0, "recalibrate: %s", err);
    score_due(d, NULL, NULL, NULL, &r);
    k = find_ev(&r, AD_EV_ALERT_CLEARED, 0);
    T_CHECK(k >= 0 && strcmp(r.ev[k].alert.id, "pump1-31000-1") == 0 &&
            r.ev[k].alert.reason == AD_CLOSE_RECALIBRATE &&
            strcmp(ad_close_reason_name(r.ev[k].alert.reason), "recalibrate") == 0,
            "recalibrate closes the open alert with reason recalibrate (got %s)",
            k >= 0 ? ad_close_reason_name(r.ev[k].alert.reason) : "no clear");
    T_CHECK(ad_detector_phase(d) == AD_PHASE_CALIBRATING, "calibrating again");
    free(txt);
    ad_detector_free(d);
    ad_model_free(m);
}

int main(void)
{
    T_RUN(test_calibrate_detect_alert);
    T_RUN(test_raise_ratio_counted);
    T_RUN(test_band_run);
    T_RUN(test_invalid_windows_and_rejects);
    T_RUN(test_smoothing_and_stale);
    T_RUN(test_save_restore);
    T_RUN(test_save_restore_probability);
    T_RUN(test_restore_in_alert_probability);
    T_RUN(test_handover_window);
    T_RUN(test_handover_daily);
    T_RUN(test_handover_period);
    T_RUN(test_handover_calibrating);
    T_RUN(test_restore_window_rebuild);
    T_RUN(test_handover_first_row);
    T_RUN(test_alert_lifecycle);
    T_RUN(test_forced_calibration_and_fixed);
    T_RUN(test_bootstrap_training);
    T_RUN(test_bootstrap_dq_rows);
    T_RUN(test_bootstrap_constant_feature);
    T_RUN(test_training_duration);
    T_RUN(test_season);
    T_RUN(test_season_slow);
    return t_done();
}
