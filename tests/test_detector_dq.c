/*
 * test_detector_dq.c - data quality through the whole detector (push rows,
 * score windows, read events and stats):
 *   - a sensor stuck at its last value while calibrating: one stuck event
 *     naming that feature, within twice its defining run (30 samples); no
 *     window containing a stuck row feeds the calibration, including the
 *     windows scored before the run was long enough to be recognised; the
 *     event clears, with the same id, on the first value that moves;
 *   - the same while a bootstrap collects its training rows: no stuck row
 *     is collected, and no training window spans the run;
 *   - the same while detecting with continual learning on: no window
 *     containing a stuck row enters the normal set;
 *   - save / restore of a detector with learned data-quality state and
 *     continual-learning state (a kept true alert): the restored detector
 *     scores the next 200 rows like the original (same scores, smoothed
 *     scores, threshold, events and ids);
 *   - the event queue: 100 range events while nobody polls keep the
 *     newest AD_DETECTOR_EVENTS in order and count the rest as dropped;
 *     after polling, the queue takes events again.
 *
 * Model: one TimeDistributed Dense with zero weights and no scaler, so a
 * window's MAE score is the mean |value| over its rows and features.
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
#define MAXW 2048

static uint64_t rng = 88172645463325252ull;

static double noise(void)      /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

typedef struct wrec {           /* one scored window */
    int64_t start, ts;
    ad_phase phase;
    double score, smoothed, thr;
} wrec;

typedef struct run {
    int nw;
    wrec w[MAXW];
    int n;
    ad_event ev[256];           /* events other than phase */
} run;

static void step(ad_detector *d, int64_t ts, double a, double b, run *r)
{
    double row[F] = { a, b };
    float in[TW * F], out[TW * F], share[F];
    ad_window_job job;
    ad_event ev;

    ad_detector_push_row(d, ts, row, NULL);
    ad_detector_advance(d, ts);
    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_detector_stats st;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
        ad_detector_get_stats(d, &st);
        if (r->nw < MAXW) {
            wrec *w = &r->w[r->nw++];
            w->start = job.start_ms;
            w->ts = job.ts_ms;
            w->phase = job.phase;
            w->score = mae;
            w->smoothed = st.last_smoothed;
            w->thr = st.threshold;
        }
    }
    while (ad_detector_poll_event(d, &ev))
        if (ev.type != AD_EV_PHASE && r->n < 256)
            r->ev[r->n++] = ev;
}

static void base_cfg(ad_detector_cfg *c)
{
    ad_detector_cfg_default(c);
    c->calib_windows = 300;
    c->thr.margin = 1.2;
    c->alert.k = 1;
    c->alert.n = 1;
    c->alert.m = 2;
    c->alert.clear_ratio = 1;
    c->alert.accept_after = 0;
    c->dq_enabled = 1;
    ad_dq_cfg_default(&c->dq);          /* learn 100, stuck 30 samples */
}

static int64_t T0 = 1700000000000LL;
static int64_t tsof(int i) { return T0 + (int64_t)i * 1000; }

/* Windows (of r) whose rows include one of rows [a, b]. */
static int overlapping(const run *r, int a, int b, int calibrating_only)
{
    int i, n = 0;

    for (i = 0; i < r->nw; i++)
        if (r->w[i].ts >= tsof(a) && r->w[i].start <= tsof(b) &&
            (!calibrating_only || r->w[i].phase == AD_PHASE_CALIBRATING))
            n++;
    return n;
}

/* Check the stuck events of r: one raise naming feature 1 within 2 x 30
 * samples of the run's first sample (row s0 - 1 holds the value that
 * sticks), one clear at row s1 + 1 with the same id. */
static void check_stuck_events(const ad_detector *d, const run *r, int s0, int s1)
{
    int i, ir = -1, ic = -1;

    for (i = 0; i < r->n; i++) {
        if (r->ev[i].type == AD_EV_DQ_RAISED && r->ev[i].dq.check == AD_DQ_STUCK)
            ir = ir < 0 ? i : -2;
        if (r->ev[i].type == AD_EV_DQ_CLEARED && r->ev[i].dq.check == AD_DQ_STUCK)
            ic = ic < 0 ? i : -2;
    }
    T_CHECK(ir >= 0 && ic >= 0, "one stuck raise (%d) and one clear (%d)", ir, ic);
    if (ir < 0 || ic < 0)
        return;
    T_CHECK(r->ev[ir].dq.feature == 1, "raise names feature %d (want 1)", r->ev[ir].dq.feature);
    T_CHECK(r->ev[ir].dq.since_ms == tsof(s0 - 1), "stuck since row %lld (want %d)",
            (long long)((r->ev[ir].dq.since_ms - T0) / 1000), s0 - 1);
    T_CHECK(r->ev[ir].ts_ms - tsof(s0 - 1) <= 2 * 30 * 1000,
            "raised %lld s after the run began (limit 60)",
            (long long)((r->ev[ir].ts_ms - tsof(s0 - 1)) / 1000));
    T_CHECK(r->ev[ic].ts_ms == tsof(s1 + 1), "cleared at row %lld (want %d)",
            (long long)((r->ev[ic].ts_ms - T0) / 1000), s1 + 1);
    T_CHECK(strcmp(r->ev[ir].dq.id, r->ev[ic].dq.id) == 0, "same id: %s / %s",
            r->ev[ir].dq.id, r->ev[ic].dq.id);
    {
        cJSON *j = ad_event_to_json(d, &r->ev[ir]);
        const cJSON *fe = j ? cJSON_GetObjectItemCaseSensitive(j, "feature") : NULL;
        const cJSON *k = j ? cJSON_GetObjectItemCaseSensitive(j, "kind") : NULL;
        T_CHECK(cJSON_IsString(fe) && strcmp(fe->valuestring, ad_detector_features(d)[1]) == 0,
                "JSON names the feature (%s)", cJSON_IsString(fe) ? fe->valuestring : "-");
        T_CHECK(cJSON_IsString(k) && strcmp(k->valuestring, "data_quality") == 0,
                "JSON kind data_quality");
        cJSON_Delete(j);
    }
    T_NOTE("stuck run from row %d: raised at row %lld, cleared at row %lld, id %s", s0 - 1,
           (long long)((r->ev[ir].ts_ms - T0) / 1000), (long long)((r->ev[ic].ts_ms - T0) / 1000),
           r->ev[ir].dq.id);
}

static run R;

static void test_stuck_while_calibrating(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    int i, s0 = 150, s1 = 229, want;
    double held = 0;

    base_cfg(&c);
    if (!m || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        ad_model_free(m);
        return;
    }
    memset(&R, 0, sizeof(R));
    rng = 11;
    for (i = 0; i < 500; i++) {
        double a = 1 + 0.05 * noise(), b = 1 + 0.05 * noise();
        if (i == s0 - 1)
            held = b;
        if (i >= s0 && i <= s1)
            b = held;                   /* frozen at its last value */
        step(d, tsof(i), a, b, &R);
    }
    ad_detector_get_stats(d, &st);
    check_stuck_events(d, &R, s0, s1);
    want = overlapping(&R, s0, s1, 1);
    T_CHECK(want > 0 && st.calib_excluded >= (uint64_t)want,
            "calibration excluded %llu windows; %d calibrating windows contain a stuck row",
            (unsigned long long)st.calib_excluded, want);
    T_CHECK(st.phase == AD_PHASE_DETECTING && st.calib_windows == 300,
            "calibrated on 300 clean windows (%llu, phase %s)",
            (unsigned long long)st.calib_windows, ad_phase_name(st.phase));
    T_CHECK(st.dq_active == 0 && st.dq_raised == 1, "dq active %d raised %llu", st.dq_active,
            (unsigned long long)st.dq_raised);
    T_NOTE("calibration: %llu windows used, %llu excluded (%d contain a stuck row)",
           (unsigned long long)st.calib_windows, (unsigned long long)st.calib_excluded, want);
    ad_detector_free(d);
    ad_model_free(m);
}

/* The same stuck run while a bootstrap collects its training rows: once
 * recognised it takes the rows it already had out of the collection
 * (flagged back to its first sample), its later rows are never collected,
 * and no training window spans it (the job's next run starts after it). */
static void test_stuck_while_collecting(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    ad_train_job *job;
    char err[300];
    int i, s0 = 150, s1 = 229, held_rows = 0, runs = 0;
    double held = 0;

    base_cfg(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 300;
    if (ad_detector_new(&d, &c, "pump", NULL, TW, F, names, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        return;
    }
    memset(&R, 0, sizeof(R));
    rng = 11;
    for (i = 0; i < 500 && ad_detector_phase(d) == AD_PHASE_COLLECTING; i++) {
        double a = 1 + 0.05 * noise(), b = 1 + 0.05 * noise();
        if (i == s0 - 1)
            held = b;
        if (i >= s0 && i <= s1)
            b = held;
        step(d, tsof(i), a, b, &R);
    }
    job = ad_detector_take_train_job(d);
    T_CHECK(job != NULL, "train ready (row %d)", i - 1);
    for (size_t k = 0; job && k < job->n_rows; k++) {
        if (job->rows[k * F + 1] == (float)held)
            held_rows++;
        if (job->brk && job->brk[k])
            runs++;
    }
    T_CHECK(job && held_rows == 0, "no stuck row collected (%d)", held_rows);
    T_CHECK(job && runs == 2 && job->n_rows == 300 + 2 * (TW - 1),
            "two runs, 300 windows: %d runs, %zu rows", runs, job ? job->n_rows : 0);
    T_NOTE("collection ended at row %d: %zu rows in %d runs", i - 1, job ? job->n_rows : 0,
           runs);
    ad_train_job_free(job);
    ad_detector_free(d);
}

static void test_stuck_while_detecting_adapt(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_adapt_stats as;
    char err[300];
    int i, s0 = 500, s1 = 579, bad = 0;
    size_t k;
    double held = 0;

    base_cfg(&c);
    c.calib_windows = 100;
    ad_adapt_cfg_default(&c.adapt);
    c.adapt.enabled = 1;
    c.adapt.every_windows = 100000;     /* no fine-tune in this test */
    c.adapt.every_hours = 0;
    c.adapt.normal_windows = 1000;
    c.adapt.min_windows = 10;
    c.adapt.margin = 5;
    if (!m || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        ad_model_free(m);
        return;
    }
    memset(&R, 0, sizeof(R));
    rng = 12;
    for (i = 0; i < 800; i++) {
        double a = 1 + 0.05 * noise(), b = 1 + 0.05 * noise();
        if (i == s0 - 1)
            held = b;
        if (i >= s0 && i <= s1)
            b = held;
        step(d, tsof(i), a, b, &R);
    }
    check_stuck_events(d, &R, s0, s1);
    ad_adapt_get_stats(ad_detector_adapt(d), &as);
    for (k = 0; k < as.normal_len; k++) {
        int64_t ts;
        if (ad_adapt_normal_window(ad_detector_adapt(d), k, &ts) &&
            ts >= tsof(s0) && ts - (TW - 1) * 1000 <= tsof(s1))
            bad++;
    }
    T_CHECK(bad == 0, "%d windows with a stuck row in the normal set (of %llu)", bad,
            (unsigned long long)as.normal_len);
    T_CHECK(as.normal_len > 500, "normal set still filled with clean windows (%llu)",
            (unsigned long long)as.normal_len);
    T_NOTE("normal set %llu windows, excluded for data quality %llu, none with a stuck row",
           (unsigned long long)as.normal_len, (unsigned long long)as.excluded_dq);
    ad_detector_free(d);
    ad_model_free(m);
}

/* ---- save / restore ------------------------------------------------------- */

static run R2;

/* Alert ids "<stream>-<start ms>-<seq>" without the seq: the per-stream
 * sequence after a restart belongs to the alert-lifecycle state. */
static int same_alert_id(const char *x, const char *y)
{
    const char *px = strrchr(x, '-'), *py = strrchr(y, '-');

    return px && py && px - x == py - y && strncmp(x, y, (size_t)(px - x)) == 0;
}

static void same_runs(const run *a, const run *b, int skip_b_events_before)
{
    int i, j = 0, cmp = 0, diff = 0, ev_a = 0, ev_b = 0, ev_diff = 0;

    /* windows by timestamp: the restored detector starts its ring empty,
     * so its first T-1 rows form no window */
    for (i = 0; i < a->nw; i++) {
        while (j < b->nw && b->w[j].ts < a->w[i].ts)
            j++;
        if (j == b->nw || b->w[j].ts != a->w[i].ts)
            continue;
        cmp++;
        if (a->w[i].score != b->w[j].score || a->w[i].thr != b->w[j].thr ||
            fabs(a->w[i].smoothed - b->w[j].smoothed) > 1e-12) {
            if (diff++ < 3)
                T_CHECK(0, "window %lld: score %g/%g smoothed %.9g/%.9g thr %.9g/%.9g",
                        (long long)((a->w[i].ts - T0) / 1000), a->w[i].score, b->w[j].score,
                        a->w[i].smoothed, b->w[j].smoothed, a->w[i].thr, b->w[j].thr);
        }
    }
    T_CHECK(cmp >= a->nw - (TW - 1) && diff == 0, "%d of %d windows compared, %d differ", cmp,
            a->nw, diff);
    for (i = 0, j = 0; i < a->n; i++) {
        const ad_event *x = &a->ev[i], *y;
        if (x->ts_ms < skip_b_events_before)
            continue;
        ev_a++;
        while (j < b->n && b->ev[j].type != x->type)
            j++;
        if (j == b->n) {
            ev_diff++;
            T_CHECK(0, "event %s at %lld missing after restore", ad_event_type_name(x->type),
                    (long long)((x->ts_ms - T0) / 1000));
            continue;
        }
        y = &b->ev[j++];
        ev_b++;
        if (y->ts_ms != x->ts_ms ||
            ((x->type == AD_EV_ALERT_RAISED || x->type == AD_EV_ALERT_CLEARED) &&
             !same_alert_id(x->alert.id, y->alert.id)) ||
            ((x->type == AD_EV_DQ_RAISED || x->type == AD_EV_DQ_CLEARED) &&
             strcmp(x->dq.id, y->dq.id) != 0)) {
            ev_diff++;
            T_CHECK(0, "event %s: at %lld / %lld, ids %s / %s", ad_event_type_name(x->type),
                    (long long)((x->ts_ms - T0) / 1000), (long long)((y->ts_ms - T0) / 1000),
                    x->type >= AD_EV_DQ_RAISED ? x->dq.id : x->alert.id,
                    y->type >= AD_EV_DQ_RAISED ? y->dq.id : y->alert.id);
        }
    }
    T_CHECK(ev_diff == 0 && ev_b == b->n, "events: %d original, %d restored, %d differ",
            ev_a, b->n, ev_diff);
    T_NOTE("after restore: %d windows compared, %d events (%d alert/dq) identical", cmp, ev_a,
           ev_b);
}

static double row_at(int i, int f)
{
    double x = 1 + 0.05 * noise();
    if (f == 0 && ((i >= 330 && i < 340) || (i >= 620 && i < 630)))
        x = 20;                         /* faults: raised and cleared */
    if (f == 1 && i >= 700 && i < 704)
        x = 40;                         /* out of the learned range */
    return x;
}

static void test_save_restore_roundtrip(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL, *d2 = NULL;
    ad_adapt_stats as, as2;
    ad_dq_learned l1, l2;
    char err[300], *txt = NULL;
    double vals[800][F];
    int i, f, rc;

    base_cfg(&c);
    c.calib_windows = 200;
    c.dq.range_k = 10;          /* the out-of-range reading: learned range on */
    ad_adapt_cfg_default(&c.adapt);
    c.adapt.enabled = 1;
    c.adapt.every_windows = 100000;
    c.adapt.every_hours = 0;
    c.adapt.min_windows = 10;
    c.adapt.margin = 5;
    rng = 13;
    for (i = 0; i < 800; i++)
        for (f = 0; f < F; f++)
            vals[i][f] = row_at(i, f);
    if (!m || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0 ||
        ad_detector_new(&d2, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        goto out;
    }
    memset(&R, 0, sizeof(R));
    memset(&R2, 0, sizeof(R2));
    for (i = 0; i < 600; i++)
        step(d, tsof(i), vals[i][0], vals[i][1], &R);
    txt = ad_detector_save(d);
    T_CHECK(txt && strstr(txt, "\"dq\":{") && strstr(txt, "\"adapt\":{"),
            "saved with dq and adapt: %.200s", txt ? txt : "(null)");
    rc = txt ? ad_detector_restore(d2, txt, err, sizeof(err)) : -1;
    T_CHECK(rc == 0, "restore: %d %s", rc, err);
    ad_adapt_get_stats(ad_detector_adapt(d), &as);
    ad_adapt_get_stats(ad_detector_adapt(d2), &as2);
    T_CHECK(as.true_alerts == 1 && as2.true_alerts == 1 && as2.attempts == as.attempts &&
            as2.sched_windows == as.sched_windows,
            "adapt state: true alerts %d/%d, schedule %llu/%llu", as.true_alerts,
            as2.true_alerts, (unsigned long long)as.sched_windows,
            (unsigned long long)as2.sched_windows);
    for (f = 0; f < F; f++) {
        ad_dq_get_learned(ad_detector_dq(d), f, &l1);
        ad_dq_get_learned(ad_detector_dq(d2), f, &l2);
        T_CHECK(l1.learned && l2.learned && l1.center == l2.center && l1.sigma == l2.sigma &&
                l1.step == l2.step && l1.period_ms == l2.period_ms,
                "feature %d learned: center %g/%g sigma %g/%g", f, l1.center, l2.center,
                l1.sigma, l2.sigma);
    }
    /* the next 200 rows, to both: a fault and an out-of-range value */
    memset(&R, 0, sizeof(R));
    for (i = 600; i < 800; i++) {
        step(d, tsof(i), vals[i][0], vals[i][1], &R);
        step(d2, tsof(i), vals[i][0], vals[i][1], &R2);
    }
    same_runs(&R, &R2, 0);
    {
        int raised = 0, dq = 0;
        for (i = 0; i < R.n; i++) {
            raised += R.ev[i].type == AD_EV_ALERT_RAISED;
            dq += R.ev[i].type == AD_EV_DQ_RAISED;
        }
        T_CHECK(raised == 2 && dq >= 1, "the 200 rows raise the fault and the out-of-range "
                "reading (%d) and a range condition (%d)", raised, dq);
    }
out:
    free(txt);
    ad_detector_free(d);
    ad_detector_free(d2);
    ad_model_free(m);
}

static void test_event_queue(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    ad_event ev;
    const char *names[1] = { "f0" };
    double lo[1] = { -10 }, hi[1] = { 10 }, row[F];
    int i, n = 0, ordered = 1;
    int64_t last = 0;
    char err[300];

    base_cfg(&c);
    c.dq.range_clear_samples = 1;
    c.dq_n_ranges = 1;
    c.dq_range_names = names;
    c.dq_range_lo = lo;
    c.dq_range_hi = hi;
    if (!m || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        goto out;
    }
    /* 50 rows out of the physical range, each followed by one inside: a
     * range condition raised and cleared 50 times, nobody polling */
    for (i = 0; i < 100; i++) {
        row[0] = i % 2 == 0 ? 100 : 1;
        row[1] = 1;
        ad_detector_push_row(d, tsof(i), row, NULL);
    }
    ad_detector_get_stats(d, &st);
    while (ad_detector_poll_event(d, &ev)) {
        if (ev.type == AD_EV_PHASE)
            continue;
        ordered &= ev.ts_ms >= last;
        last = ev.ts_ms;
        n++;
    }
    T_CHECK(n + (int)st.events_dropped >= 100 && n <= AD_DETECTOR_EVENTS && ordered &&
            last == tsof(99),
            "100 events unpolled: %d kept in order (the newest at row %lld), %llu dropped",
            n, (long long)((last - tsof(0)) / 1000), (unsigned long long)st.events_dropped);
    row[0] = 100;
    ad_detector_push_row(d, tsof(100), row, NULL);
    T_CHECK(ad_detector_poll_event(d, &ev) && ev.type == AD_EV_DQ_RAISED,
            "after polling, a new event is queued (got %s)", ad_event_type_name(ev.type));
    printf("# event queue: %d kept, %llu dropped\n", n, (unsigned long long)st.events_dropped);
out:
    ad_detector_free(d);
    ad_model_free(m);
}

/* A reload's new model on a stream whose sensor is stuck (the daemon's
 * remodel: save, set the new model, restore what still applies): the open
 * stuck condition goes on, raised once and cleared once when the value
 * moves. Before, the restore put the saved monitor back over the live one
 * and ended its flat run: a clear ("the condition ended") while the sensor
 * still sat still, and a second raise. */
static void test_stuck_across_new_model(void)
{
    ad_model *m = t_zero_model(TW, F), *m2 = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300], *txt;
    void *buf;
    size_t len;
    int i, s0 = 350, s1 = 480;
    double held = 0;

    base_cfg(&c);
    c.calib_windows = 200;
    /* another model of the same shape: another id */
    m2->provenance = strdup("{\"note\":\"a retrained model\"}");
    if (ad_model_serialize(m2, &buf, &len) == 0)
        free(buf);
    if (!m || !m2 || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        ad_model_free(m); ad_model_free(m2);
        return;
    }
    memset(&R, 0, sizeof(R));
    rng = 5;
    for (i = 0; i < 600; i++) {
        double a = 1 + 0.05 * noise(), b = 1 + 0.05 * noise();
        if (i == s0 - 1)
            held = b;
        if (i >= s0 && i <= s1)
            b = held;
        if (i == 430) {                 /* the reload, while it is stuck */
            txt = ad_detector_save(d);
            T_CHECK(txt && ad_detector_set_model(d, m2, 0, err, sizeof(err)) == 0,
                    "set the new model: %s", err);
            T_CHECK(ad_detector_restore(d, txt, err, sizeof(err)) != 0,
                    "its calibration does not apply to the new model");
            ad_detector_restore_alert(d, txt, AD_CLOSE_RELOAD);
            free(txt);
        }
        step(d, tsof(i), a, b, &R);
    }
    check_stuck_events(d, &R, s0, s1);
    ad_detector_free(d);
    ad_model_free(m);
    ad_model_free(m2);
}

/* Runs too short for a window (a gap every 3 rows, T = 4) do not fill the
 * collection: their rows are dropped when the next run starts, and the
 * clean rows after them train (before, 2 x (W+T-1) rows of short runs
 * held the collection full and it never trained, silently). */
static void test_short_runs_dropped(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    char err[300];
    int i;
    ad_detector_stats st;

    base_cfg(&c);
    c.dq_enabled = 0;
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 10;
    if (ad_detector_new(&d, &c, "pump", NULL, TW, F, names, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        return;
    }
    memset(&R, 0, sizeof(R));
    for (i = 0; i < 2000; i++) {
        double a = 1 + 0.05 * noise(), b = 1 + 0.05 * noise();
        step(d, tsof(i) + (int64_t)(i < 200 ? i / 3 : 66) * 86400000LL, a, b, &R);
        if (ad_detector_phase(d) != AD_PHASE_COLLECTING)
            break;
    }
    ad_detector_get_stats(d, &st);
    T_CHECK(ad_detector_phase(d) != AD_PHASE_COLLECTING,
            "a collection after 200 rows of 3-row runs trains on the clean rows "
            "(phase %d after %d rows, %llu windows)", ad_detector_phase(d), i,
            (unsigned long long)st.windows_collected);
    T_CHECK(i >= 200 && i < 200 + 10 + TW + 5,
            "it trains once 10 windows of clean rows are in (row %d)", i);
    ad_detector_free(d);
}

/* Log lines kept for the checks (test_collect_waits). */
static char logbuf[8][512];
static int nlog, n_waits, n_again;
static void keep_log(int level, const char *msg, void *u)
{
    (void)u;
    if (strstr(msg, ") waits: "))
        n_waits++;
    if (strstr(msg, "collects again after"))
        n_again++;
    if (level <= AD_LOG_NOTICE && nlog < 8)
        snprintf(logbuf[nlog++], sizeof logbuf[0], "%s", msg);
}

/* A bootstrap whose feature b is out of its physical range for a while:
 * the collection skips every row (the data-quality flag covers them) and
 * waits. Once a window's rows went by it says so, in the stats (waiting,
 * the rows, the flag) and in one warning naming the stream, the feature
 * and the check; rows back in range resume it (a notice) and it trains.
 * Before, nothing but the range alert itself: the bootstrap waited
 * silently. */
static void test_collect_waits(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    const char *rn[1] = { "b" };
    double lo[1] = { 0 }, hi[1] = { 5 };
    char err[300];
    int i, warned = 0, w_at = -1, resumed = 0;
    ad_detector_stats st, st_mid;

    base_cfg(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 20;
    c.dq_range_names = rn;
    c.dq_range_lo = lo;
    c.dq_range_hi = hi;
    c.dq_n_ranges = 1;
    if (ad_detector_new(&d, &c, "pump", NULL, TW, F, names, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        return;
    }
    memset(&R, 0, sizeof(R));
    memset(&st_mid, 0, sizeof st_mid);
    nlog = 0;
    ad_log_set(keep_log, NULL);
    rng = 3;
    for (i = 0; i < 400 && ad_detector_phase(d) == AD_PHASE_COLLECTING; i++) {
        double a = 1 + 0.05 * noise(), b = (i < 300 ? 9 : 1) + 0.05 * noise();
        int before = nlog;
        step(d, tsof(i), a, b, &R);
        for (int k = before; k < nlog; k++) {
            if (strstr(logbuf[k], "training (bootstrap) waits")) {
                warned++;
                if (w_at < 0)
                    w_at = i;
            }
            if (strstr(logbuf[k], "collects again after"))
                resumed++;
        }
        if (i == 299)
            ad_detector_get_stats(d, &st_mid);
    }
    ad_log_set(NULL, NULL);
    ad_detector_get_stats(d, &st);
    T_CHECK(st_mid.coll_waiting && st_mid.coll_flagged == 300 && st_mid.windows_collected == 0 &&
            st_mid.coll_flagged_since == tsof(0),
            "after 300 rows out of range: waiting %d, %llu flagged rows in a row since %lld, "
            "%llu windows collected", st_mid.coll_waiting,
            (unsigned long long)st_mid.coll_flagged,
            (long long)((st_mid.coll_flagged_since - T0) / 1000),
            (unsigned long long)st_mid.windows_collected);
    T_CHECK(strcmp(st_mid.coll_flags, "range on 'b'") == 0, "the flag named: \"%s\"",
            st_mid.coll_flags);
    T_CHECK(warned == 1 && w_at == TW - 1, "one warning (%d), at the window's rows (row %d)",
            warned, w_at);
    if (warned)
        for (int k = 0; k < nlog; k++)
            if (strstr(logbuf[k], "waits")) {
                T_CHECK(strstr(logbuf[k], "stream pump") && strstr(logbuf[k], "range on 'b'"),
                        "it names the stream and the flag: %s", logbuf[k]);
                break;
            }
    T_CHECK(resumed == 1, "a notice when the collection takes rows again (%d)", resumed);
    T_CHECK(ad_detector_phase(d) != AD_PHASE_COLLECTING && !st.coll_waiting &&
            st.coll_flagged_total >= 300,
            "then it trains (phase %d at row %d), no longer waiting, %llu rows skipped",
            ad_detector_phase(d), i - 1, (unsigned long long)st.coll_flagged_total);
    ad_detector_free(d);
}

/* A flag that flaps while a bootstrap collects (T = 4, a row a second for
 * an hour: 4 rows out of range, 20 in range, again and again): each turn
 * begins a wait (a window's rows skipped), and the collection takes a
 * window's rows again. The warning's back-off spans the turns: one
 * warning in the hour and its notice, not one of each at every turn (150
 * of each before). */
static void test_collect_waits_flapping(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *names[F] = { "a", "b" };
    const char *rn[1] = { "b" };
    double lo[1] = { 0 }, hi[1] = { 5 };
    char err[300];
    int i, waited = 0;
    ad_detector_stats st;

    base_cfg(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 100000;
    c.dq_range_names = rn;
    c.dq_range_lo = lo;
    c.dq_range_hi = hi;
    c.dq_n_ranges = 1;
    if (ad_detector_new(&d, &c, "pump", NULL, TW, F, names, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        return;
    }
    memset(&R, 0, sizeof(R));
    nlog = n_waits = n_again = 0;
    ad_log_set(keep_log, NULL);
    rng = 5;
    for (i = 0; i < 3600; i++) {
        double a = 1 + 0.05 * noise(), b = (i % 24 < 4 ? 9 : 1) + 0.05 * noise();
        step(d, tsof(i), a, b, &R);
        if (i % 24 == 3)
            waited += ad_detector_collect_waiting(d);
    }
    ad_log_set(NULL, NULL);
    ad_detector_get_stats(d, &st);
    T_CHECK(ad_detector_phase(d) == AD_PHASE_COLLECTING && waited == 150 &&
            st.coll_flagged_total >= 600,
            "collecting (phase %d), waiting after each of the 150 flagged runs (%d), "
            "%llu rows skipped (the flag outlasts the values a few rows)", ad_detector_phase(d), waited,
            (unsigned long long)st.coll_flagged_total);
    T_CHECK(n_waits == 1 && n_again == 1,
            "one warning (%d) and one notice (%d) in the hour, not one at each turn",
            n_waits, n_again);
    ad_detector_free(d);
}

static int n_cal_waits, n_cal_on;
static char cal_wait_line[512];
static void keep_calib_log(int level, const char *msg, void *u)
{
    (void)level;
    (void)u;
    if (strstr(msg, "calibration waits on flagged windows")) {
        if (n_cal_waits++ == 0)
            snprintf(cal_wait_line, sizeof cal_wait_line, "%s", msg);
    }
    if (strstr(msg, "calibration goes on after"))
        n_cal_on++;
}

/* A pretrained stream whose feature b is out of its physical range from
 * the first row: every calibration window is flagged and left out, so it
 * stays calibrating. Its progress says so (CALIBRATION PROGRESS): no
 * window taken, the windows left out, a wait since the first of them on
 * the range of b, said in one log line; once b is back in range the wait
 * ends (one line), calibration takes its windows and detects. Before,
 * nothing in the stats or the log told the wait from a slow stream. */
static void test_calib_waits(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    const char *rn[1] = { "f1" };
    double lo[1] = { 0 }, hi[1] = { 5 };
    ad_detector_stats st, st_a, st_b;
    char err[300];
    int i;

    base_cfg(&c);
    c.calib_windows = 50;
    c.dq_range_names = rn;
    c.dq_range_lo = lo;
    c.dq_range_hi = hi;
    c.dq_n_ranges = 1;
    if (!m || ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        ad_model_free(m);
        return;
    }
    memset(&R, 0, sizeof(R));
    memset(&st_a, 0, sizeof st_a);
    memset(&st_b, 0, sizeof st_b);
    n_cal_waits = n_cal_on = 0;
    ad_log_set(keep_calib_log, NULL);
    rng = 5;
    for (i = 0; i < 400; i++) {
        double a = 1 + 0.05 * noise(), b = (i < 200 ? 9 : 1) + 0.05 * noise();
        step(d, tsof(i), a, b, &R);
        if (i == 149)
            ad_detector_get_stats(d, &st_a);
        if (i == 199)
            ad_detector_get_stats(d, &st_b);
    }
    ad_log_set(NULL, NULL);
    ad_detector_get_stats(d, &st);
    T_CHECK(st_b.phase == AD_PHASE_CALIBRATING && st_b.calib_taken == 0 && st_a.calib_taken == 0,
            "out of range: calibrating (phase %s), %llu then %llu windows taken",
            ad_phase_name(st_b.phase), (unsigned long long)st_a.calib_taken,
            (unsigned long long)st_b.calib_taken);
    T_CHECK(st_b.calib_start_ms == R.w[0].ts && st_b.calib_dq_waiting &&
            st_b.calib_dq_since == R.w[0].ts,
            "waiting %d since the first window (%lld s, want %lld)", st_b.calib_dq_waiting,
            (long long)((st_b.calib_dq_since - T0) / 1000), (long long)((R.w[0].ts - T0) / 1000));
    T_CHECK(st_b.calib_dq_out > st_a.calib_dq_out && st_a.calib_dq_out > 0 &&
            st_b.calib_dq_out + st_b.calib_queued == (uint64_t)(200 - TW + 1),
            "windows left out grow: %llu then %llu (+%llu held) of %d scored",
            (unsigned long long)st_a.calib_dq_out, (unsigned long long)st_b.calib_dq_out,
            (unsigned long long)st_b.calib_queued, 200 - TW + 1);
    T_CHECK(strcmp(st_b.calib_dq_flags, "range on 'f1'") == 0, "the flag named: \"%s\"",
            st_b.calib_dq_flags);
    T_CHECK(ad_detector_calib_waiting(d) == 0 && st.phase == AD_PHASE_DETECTING,
            "back in range: waiting %d, phase %s", ad_detector_calib_waiting(d),
            ad_phase_name(st.phase));
    T_CHECK(n_cal_waits == 1 && strstr(cal_wait_line, "stream pump") &&
            strstr(cal_wait_line, "range on 'f1'") && n_cal_on == 1,
            "one line for the wait (%d: %s), one when it goes on (%d)", n_cal_waits,
            cal_wait_line, n_cal_on);
    ad_detector_free(d);
    ad_model_free(m);
}

/* Well-formed UTF-8 (the flags text goes into the retained state's JSON:
 * a character cut in two makes the whole payload unreadable to a JSON
 * reader). */
static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 :
                (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0)
            return 0;
        for (p++; n > 0; n--, p++)
            if ((*p & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

/* Both features out of range, named long in UTF-8: the wait's flags text
 * is cut to its buffer, never inside a character. */
static void test_calib_waits_long_names(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg c;
    ad_detector *d = NULL;
    /* 49 and 60 bytes: the text's 119th byte falls inside an "é" */
    char n0[64] = "a", n1[64] = "";
    const char *names[2] = { n0, n1 };
    double lo[2] = { 0, 0 }, hi[2] = { 5, 5 };
    ad_detector_stats st;
    char err[300];
    int i;

    for (i = 0; i < 24; i++)
        strcat(n0, "\xc3\xa9");
    for (i = 0; i < 30; i++)
        strcat(n1, "\xc3\xa9");
    base_cfg(&c);
    c.calib_windows = 50;
    c.dq_range_names = names;
    c.dq_range_lo = lo;
    c.dq_range_hi = hi;
    c.dq_n_ranges = 2;
    if (!m || ad_model_set_features(m, names, 2) != 0 ||
        ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "new: %s", err);
        ad_model_free(m);
        return;
    }
    memset(&R, 0, sizeof(R));
    n_cal_waits = n_cal_on = 0;
    cal_wait_line[0] = '\0';
    ad_log_set(keep_calib_log, NULL);
    rng = 5;
    for (i = 0; i < 100; i++)
        step(d, tsof(i), 9 + 0.05 * noise(), 9 + 0.05 * noise(), &R);
    ad_log_set(NULL, NULL);
    ad_detector_get_stats(d, &st);
    T_CHECK(st.calib_dq_waiting && strlen(st.calib_dq_flags) > 100 &&
            utf8_ok(st.calib_dq_flags),
            "waiting %d, flags (%zu bytes) well-formed UTF-8: \"%s\"", st.calib_dq_waiting,
            strlen(st.calib_dq_flags), st.calib_dq_flags);
    T_CHECK(utf8_ok(cal_wait_line), "the log line well-formed UTF-8: \"%s\"", cal_wait_line);
    ad_detector_free(d);
    ad_model_free(m);
}

int main(void)
{
    T_RUN(test_stuck_while_calibrating);
    T_RUN(test_stuck_while_collecting);
    T_RUN(test_stuck_while_detecting_adapt);
    T_RUN(test_save_restore_roundtrip);
    T_RUN(test_stuck_across_new_model);
    T_RUN(test_event_queue);
    T_RUN(test_short_runs_dropped);
    T_RUN(test_collect_waits);
    T_RUN(test_collect_waits_flapping);
    T_RUN(test_calib_waits);
    T_RUN(test_calib_waits_long_names);
    return t_done();
}
