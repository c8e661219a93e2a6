/*
 * test_redelivery_restore.c - a row or sample delivered again after a
 * restore costs nothing. MQTT QoS 1 delivers at least once and a Kafka
 * consumer re-reads what it had not committed after a rebalance, so the
 * first messages a stream gets after a restart, a reload's rebuild or a
 * partition hand-over are often copies of the last ones it consumed before.
 * A stream that was never interrupted refuses such a copy (its timestamp is
 * at or before its last row: counted as dup / ooo) and scores on; a
 * restored stream must do the same: the same windows, with the same
 * scores, and the copies counted where the uninterrupted stream counts them,
 * never a restarted window ring.
 *
 * Each case streams N rows (or samples), saves the detector (the hand-over
 * save a stop, eviction or partition move writes, and the plain save a
 * kill -9 leaves), restores the state into a new detector, delivers the
 * last k of the consumed rows or samples again, then new ones; the same
 * input goes through a detector that was not interrupted:
 *   - rows.mode rows, k = 1, 2, 3 whole rows again, hand-over: the same
 *     windows (count, end times, scores to 1e-9) as uninterrupted, the
 *     copies counted in dup (the last row's time) and ooo (before it), the
 *     window ring not restarted;
 *   - the same with the plain save (no window rows: the ring refills in
 *     T - 1 rows either way): the same windows as the restored detector
 *     that got no copies, the copies counted as uninterrupted;
 *   - rows with rows.max_lateness_ms: the rows still held for reordering
 *     when saved are not in the state; their copies are taken (the same
 *     windows as uninterrupted), the copy of the last row out refused;
 *   - rows.mode all (one sample per feature and time, aligned into rows):
 *     samples of the last row again: copies (dup_copies) as for the
 *     uninterrupted stream (the state keeps each feature's last sample in
 *     a row out, alert.last_samples), not late;
 *   - rows.mode period: a sample whose grid row is out again (a copy, as
 *     the uninterrupted stream tells it), and the samples of the row not
 *     yet out when saved (taken again: not in the state; the uninterrupted
 *     stream, which holds them, refuses them as copies).
 * And a device clock that jumped back far after the save (rows, all): its
 * rows and samples refused as by the uninterrupted stream, which raises a
 * data-quality "rejected" event; the restored one raises it too.
 *
 * Model: one TimeDistributed Dense with zero weights (t_model.h): a
 * window's MAE score is the mean |value| of its rows. T = 4, hop 1.
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
#define MAXW 256

static ad_model *g_model;

/* Windows scored by one detector: end time and score. */
typedef struct scored {
    int n;
    int64_t ts[MAXW];
    double score[MAXW];
    int dq_rejected;            /* data-quality "rejected" events raised */
    int64_t dq_start;           /* the first one's start (data time), 0: none */
    int dq_cleared;             /* ... and cleared */
} scored;

static int64_t g_lateness;      /* rows.max_lateness_ms of the next detectors */
static int g_tick;              /* run: a tick a second after the last row before */

static ad_detector *mk(ad_asm_mode mode)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    if (g_model == NULL && (g_model = t_zero_model(TW, F)) == NULL)
        return NULL;
    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    c.stream.mode = mode;
    c.stream.period_ms = 1000;
    c.stream.max_lateness_ms = g_lateness;
    if (ad_detector_new(&d, &c, "pump", g_model, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "detector: %s", err);
    return d;
}

/* Score every window due (into w when not NULL). */
static void drain(ad_detector *d, scored *w)
{
    float in[TW * F], out[TW * F], share[F];
    ad_window_job job;
    ad_event ev;

    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        if (w != NULL && w->n < MAXW) {
            w->ts[w->n] = job.ts_ms;
            w->score[w->n] = mae;
            w->n++;
        }
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev)) {
        if (w == NULL || ev.dq.check != AD_DQ_REJECTED)
            continue;
        if (ev.type == AD_EV_DQ_RAISED && w->dq_rejected++ == 0)
            w->dq_start = ev.dq.start_ms;
        if (ev.type == AD_EV_DQ_CLEARED)
            w->dq_cleared++;
    }
}

/* Value of feature f at step i (the same for a copy). */
static double val(int i, int f)
{
    return 1.0 + 0.5 * sin(0.37 * i + f) + 0.01 * f;
}

/* What one input is: a whole row at step i, or the sample of feature f at
 * step i (PERIOD / ALL). */
typedef struct input {
    int i, f;       /* f < 0: a whole row */
} input;

static void push(ad_detector *d, ad_asm_mode mode, const input *x, scored *w)
{
    int64_t ts = 1000 * (int64_t)x->i;

    if (x->f < 0) {
        double row[F];
        int f;
        for (f = 0; f < F; f++)
            row[f] = val(x->i, f);
        ad_detector_push_row(d, ts, row, NULL);
    } else {
        ad_detector_push_sample(d, ts, x->f, val(x->i, x->f));
    }
    (void)mode;
    drain(d, w);
}

/* The input of steps [from, to): whole rows, or every feature's sample. */
static int steps(input *x, int from, int to, int per_feature)
{
    int n = 0, i, f;

    for (i = from; i < to; i++) {
        if (!per_feature) {
            x[n++] = (input){ i, -1 };
            continue;
        }
        for (f = 0; f < F; f++)
            x[n++] = (input){ i, f };
    }
    return n;
}

typedef struct outcome {
    scored w;                   /* windows scored after the save point */
    ad_stream_stats st;         /* the stream's counts after the save point */
    uint64_t resets;            /* window ring restarts after it */
} outcome;

/* before (n inputs) consumed; then: how = 0 no restore, 1 hand-over save,
 * 2 plain save; then after (m inputs). The counts are those since the save
 * point (a restored detector starts from zero). */
static void run(ad_asm_mode mode, const input *before, int n, int how, const input *after,
                int m, outcome *o)
{
    ad_detector *d = mk(mode);
    ad_detector_stats ds;
    ad_stream_stats s0;
    uint64_t r0;
    int k;

    memset(o, 0, sizeof(*o));
    if (d == NULL)
        return;
    for (k = 0; k < n; k++)
        push(d, mode, &before[k], NULL);
    ad_detector_get_stats(d, &ds);
    T_CHECK(ds.phase == AD_PHASE_DETECTING, "detecting before the save (phase %d)",
            (int)ds.phase);
    if (how > 0) {
        char *s = how == 1 ? ad_detector_save_handover(d) : ad_detector_save(d);
        char err[200];
        ad_detector *d2 = mk(mode);
        int rc = s && d2 ? ad_detector_restore(d2, s, err, sizeof(err)) : -1;

        T_CHECK(rc == 0, "restore: %s", rc == -1 ? "no state" : err);
        free(s);
        ad_detector_free(d);
        d = d2;
        if (d == NULL)
            return;
    }
    ad_detector_stream_stats(d, &s0);
    ad_detector_get_stats(d, &ds);
    r0 = ds.window_resets;
    for (k = 0; k < m; k++)
        push(d, mode, &after[k], &o->w);
    if (g_tick && n > 0) {      /* the daemon's next once-a-second tick */
        ad_detector_advance(d, 1000 * (int64_t)before[n - 1].i + 1000);
        drain(d, &o->w);
    }
    ad_detector_stream_stats(d, &o->st);
    ad_detector_get_stats(d, &ds);
    o->resets = ds.window_resets - r0;
    o->st.dup -= s0.dup;
    o->st.ooo -= s0.ooo;
    o->st.dup_values -= s0.dup_values;
    o->st.ooo_values -= s0.ooo_values;
    o->st.dup_copies -= s0.dup_copies;
    o->st.dup_copy_values -= s0.dup_copy_values;
    o->st.samples -= s0.samples;
    o->st.rows -= s0.rows;
    o->st.late_held -= s0.late_held;
    ad_detector_free(d);
}

/* The same windows, end times and scores (1e-9). */
static int same_windows(const scored *a, const scored *b, const char *what)
{
    int i;

    if (a->n != b->n) {
        T_CHECK(a->n == b->n, "%s: %d windows scored, uninterrupted %d (first at %lld s, "
                "uninterrupted %lld s)", what, a->n, b->n,
                a->n ? (long long)a->ts[0] / 1000 : -1LL,
                b->n ? (long long)b->ts[0] / 1000 : -1LL);
        return 0;
    }
    for (i = 0; i < a->n; i++)
        if (a->ts[i] != b->ts[i] || !(fabs(a->score[i] - b->score[i]) <= 1e-9)) {
            T_CHECK(0, "%s: window %d ends at %lld ms score %.12g, uninterrupted %lld ms "
                    "%.12g", what, i, (long long)a->ts[i], a->score[i], (long long)b->ts[i],
                    b->score[i]);
            return 0;
        }
    return 1;
}

static void same_refusals(const outcome *r, const outcome *u, const char *what)
{
    T_CHECK(r->st.dup == u->st.dup && r->st.ooo == u->st.ooo &&
            r->st.dup_values == u->st.dup_values && r->st.ooo_values == u->st.ooo_values &&
            r->st.late_held == u->st.late_held,
            "%s: refused dup %llu (%llu values) ooo %llu (%llu values) late_held %llu; "
            "uninterrupted dup %llu (%llu) ooo %llu (%llu) late_held %llu", what,
            (unsigned long long)r->st.dup, (unsigned long long)r->st.dup_values,
            (unsigned long long)r->st.ooo, (unsigned long long)r->st.ooo_values,
            (unsigned long long)r->st.late_held,
            (unsigned long long)u->st.dup, (unsigned long long)u->st.dup_values,
            (unsigned long long)u->st.ooo, (unsigned long long)u->st.ooo_values,
            (unsigned long long)u->st.late_held);
    /* a copy of the last row: the same message delivered again (a
     * retained one at the resubscription, a QoS 1 redelivery), not a
     * device clock that stopped; as the uninterrupted stream tells it */
    T_CHECK(r->st.dup_copies == u->st.dup_copies &&
            r->st.dup_copy_values == u->st.dup_copy_values,
            "%s: of the dup refusals, copies %llu (%llu values); uninterrupted %llu (%llu)",
            what, (unsigned long long)r->st.dup_copies,
            (unsigned long long)r->st.dup_copy_values,
            (unsigned long long)u->st.dup_copies, (unsigned long long)u->st.dup_copy_values);
    T_CHECK(r->resets == 0 && u->resets == 0, "%s: window ring restarts %llu (uninterrupted "
            "%llu)", what, (unsigned long long)r->resets, (unsigned long long)u->resets);
}

#define N_BEFORE 40
#define N_AFTER 12

/* Whole rows: the last k rows again after a restore, then new rows. */
static void test_rows_redelivered(void)
{
    input before[N_BEFORE], after[3 + N_AFTER];
    int n = steps(before, 0, N_BEFORE, 0), k;

    for (k = 1; k <= 3; k++) {
        outcome u, h, p, p0;
        char what[64];
        int m = steps(after, N_BEFORE - k, N_BEFORE, 0);

        m += steps(after + m, N_BEFORE, N_BEFORE + N_AFTER, 0);
        run(AD_ASM_ROWS, before, n, 0, after, m, &u);
        run(AD_ASM_ROWS, before, n, 1, after, m, &h);
        run(AD_ASM_ROWS, before, n, 2, after, m, &p);
        /* the plain save's ring refills: compared with its own run
         * without the copies */
        run(AD_ASM_ROWS, before, n, 2, after + k, m - k, &p0);
        T_NOTE("rows, the last %d rows again: uninterrupted %d windows from %lld s "
               "(dup %llu ooo %llu); hand-over %d from %lld s (dup %llu ooo %llu, ring "
               "restarts %llu); plain save %d (without the copies %d)", k, u.w.n,
               u.w.n ? (long long)u.w.ts[0] / 1000 : -1LL, (unsigned long long)u.st.dup,
               (unsigned long long)u.st.ooo, h.w.n,
               h.w.n ? (long long)h.w.ts[0] / 1000 : -1LL, (unsigned long long)h.st.dup,
               (unsigned long long)h.st.ooo, (unsigned long long)h.resets, p.w.n, p0.w.n);
        T_CHECK(u.w.n == N_AFTER && u.st.dup == 1 && u.st.ooo == (uint64_t)(k - 1) &&
                u.st.dup_values == F && u.st.ooo_values == (uint64_t)(k - 1) * F,
                "uninterrupted: %d windows (%d expected), dup %llu, ooo %llu", u.w.n,
                N_AFTER, (unsigned long long)u.st.dup, (unsigned long long)u.st.ooo);
        snprintf(what, sizeof(what), "hand-over, %d rows again", k);
        same_windows(&h.w, &u.w, what);
        same_refusals(&h, &u, what);
        snprintf(what, sizeof(what), "plain save, %d rows again", k);
        same_windows(&p.w, &p0.w, what);
        same_refusals(&p, &u, what);
        T_CHECK(p.w.n == N_AFTER - (TW - 1), "%s: %d windows (the ring refills: %d)", what,
                p.w.n, N_AFTER - (TW - 1));
    }
}

/* Rows with lateness: the newest rows wait in the reorder buffer and are
 * not in the saved state; delivered again they are taken (the stream that
 * was not interrupted has them, and refuses the copies as dup), and the
 * copy of the last row out is refused by both. */
static void test_rows_lateness_redelivered(void)
{
    input before[N_BEFORE], after[3 + N_AFTER];
    int n = steps(before, 0, N_BEFORE, 0), m;
    outcome u, h;

    g_lateness = 2000;
    m = steps(after, N_BEFORE - 3, N_BEFORE, 0);
    m += steps(after + m, N_BEFORE, N_BEFORE + N_AFTER, 0);
    run(AD_ASM_ROWS, before, n, 0, after, m, &u);
    run(AD_ASM_ROWS, before, n, 1, after, m, &h);
    g_lateness = 0;
    T_NOTE("rows, lateness 2 s, the last 3 rows again (2 of them not out when saved): "
           "hand-over %d windows from %lld s (dup %llu, rows %llu, ring restarts %llu); "
           "uninterrupted %d from %lld s (dup %llu)", h.w.n,
           h.w.n ? (long long)h.w.ts[0] / 1000 : -1LL, (unsigned long long)h.st.dup,
           (unsigned long long)h.st.rows, (unsigned long long)h.resets, u.w.n,
           u.w.n ? (long long)u.w.ts[0] / 1000 : -1LL, (unsigned long long)u.st.dup);
    same_windows(&h.w, &u.w, "lateness, hand-over");
    T_CHECK(u.st.dup == 3 && h.st.dup == 1 && h.st.ooo == 0 && h.resets == 0,
            "the copy of the last row out refused (dup %llu, ooo %llu), the two held "
            "rows taken again (uninterrupted dup %llu), ring restarts %llu",
            (unsigned long long)h.st.dup, (unsigned long long)h.st.ooo,
            (unsigned long long)u.st.dup, (unsigned long long)h.resets);
}

/* One feature's sample of the last row again (ALL: aligned rows). */
static void test_all_sample_redelivered(void)
{
    input before[N_BEFORE * F], after[2 + N_AFTER * F];
    int n = steps(before, 0, N_BEFORE, 1), m, how;
    outcome u, r;

    for (how = 1; how <= 2; how++) {
        char what[64];
        m = 0;
        after[m++] = (input){ N_BEFORE - 1, 1 };     /* the last sample */
        after[m++] = (input){ N_BEFORE - 1, 0 };     /* the one before it */
        m += steps(after + m, N_BEFORE, N_BEFORE + N_AFTER, 1);
        run(AD_ASM_ALL, before, n, 0, after, m, &u);
        run(AD_ASM_ALL, before, n, how, after, m, &r);
        snprintf(what, sizeof(what), "all, %s", how == 1 ? "hand-over" : "plain save");
        T_NOTE("%s, the last row's samples again: %d windows from %lld s (copies %llu, "
               "ooo %llu, ring restarts %llu); uninterrupted %d from %lld s (copies %llu, "
               "ooo %llu)", what, r.w.n, r.w.n ? (long long)r.w.ts[0] / 1000 : -1LL,
               (unsigned long long)r.st.dup_copies, (unsigned long long)r.st.ooo,
               (unsigned long long)r.resets, u.w.n,
               u.w.n ? (long long)u.w.ts[0] / 1000 : -1LL,
               (unsigned long long)u.st.dup_copies, (unsigned long long)u.st.ooo);
        T_CHECK(u.w.n == N_AFTER && u.st.dup_copies == 2 && u.st.ooo == 0,
                "uninterrupted: %d windows, copies %llu, ooo %llu", u.w.n,
                (unsigned long long)u.st.dup_copies, (unsigned long long)u.st.ooo);
        if (how == 1)
            same_windows(&r.w, &u.w, what);
        else
            T_CHECK(r.w.n == N_AFTER - (TW - 1), "%s: %d windows (the ring refills: %d)",
                    what, r.w.n, N_AFTER - (TW - 1));
        same_refusals(&r, &u, what);
    }
}

/* PERIOD: samples on the grid; the row of the last step is not out when
 * saved (its samples wait for a later one). */
static void test_period_sample_redelivered(void)
{
    input before[N_BEFORE * F], after[3 + N_AFTER * F];
    int n = steps(before, 0, N_BEFORE, 1), m = 0;
    outcome u, r;

    /* feature 1 of the last row out, then the samples of the row that was
     * still assembling */
    after[m++] = (input){ N_BEFORE - 2, 1 };
    after[m++] = (input){ N_BEFORE - 1, 0 };
    after[m++] = (input){ N_BEFORE - 1, 1 };
    m += steps(after + m, N_BEFORE, N_BEFORE + N_AFTER, 1);
    run(AD_ASM_PERIOD, before, n, 0, after, m, &u);
    run(AD_ASM_PERIOD, before, n, 1, after, m, &r);
    T_NOTE("period, hand-over, a sample of the last row out again (and the row still "
           "assembling): %d windows from %lld s (copies %llu, ooo %llu, late_held %llu, "
           "ring restarts %llu); uninterrupted %d from %lld s (copies %llu, ooo %llu, "
           "late_held %llu)", r.w.n, r.w.n ? (long long)r.w.ts[0] / 1000 : -1LL,
           (unsigned long long)r.st.dup_copies, (unsigned long long)r.st.ooo,
           (unsigned long long)r.st.late_held, (unsigned long long)r.resets, u.w.n,
           u.w.n ? (long long)u.w.ts[0] / 1000 : -1LL, (unsigned long long)u.st.dup_copies,
           (unsigned long long)u.st.ooo, (unsigned long long)u.st.late_held);
    /* the copy of the row out and of the two samples the row still
     * assembling holds: 3 copies, nothing late */
    T_CHECK(u.w.n == N_AFTER && u.st.dup == 3 && u.st.dup_copies == 3 && u.st.ooo == 0 &&
            u.st.late_held == 0, "uninterrupted: %d windows, dup %llu, copies %llu, ooo %llu",
            u.w.n, (unsigned long long)u.st.dup, (unsigned long long)u.st.dup_copies,
            (unsigned long long)u.st.ooo);
    same_windows(&r.w, &u.w, "period, hand-over");
    /* the restored one: the copy of the row out too; the row still
     * assembling was not saved, its samples are taken again */
    T_CHECK(r.st.dup == 1 && r.st.dup_copies == 1 && r.st.ooo == 0 && r.st.late_held == 0 &&
            r.resets == 0, "period, hand-over: dup %llu, copies %llu, ooo %llu, late_held "
            "%llu, ring restarts %llu", (unsigned long long)r.st.dup,
            (unsigned long long)r.st.dup_copies, (unsigned long long)r.st.ooo,
            (unsigned long long)r.st.late_held, (unsigned long long)r.resets);
}

/* A device clock that jumped back far (a reboot reset it, a daylight-saving
 * change on local time) after the save: every later row or sample is
 * refused, as by the stream that was not interrupted; that one raises a
 * data-quality "rejected" event for the whole stream (rows refused more
 * than rows.max_lateness_ms + rows.max_gap_ms behind its newest), and so
 * must the restored one: a stream silenced with no event says nothing. */
static void test_clock_back_raises(void)
{
    input before[N_BEFORE * F], after[30 * F];
    const ad_asm_mode modes[2] = { AD_ASM_ROWS, AD_ASM_ALL };
    int mi, how;

    for (mi = 0; mi < 2; mi++) {
        int pf = modes[mi] != AD_ASM_ROWS;
        /* before at 10000 s..., after 10000 s earlier (far beyond an hour) */
        int n = steps(before, 10000, 10000 + N_BEFORE, pf);
        int m = steps(after, 0, 30, pf);
        outcome u, r;

        g_tick = 1;
        run(modes[mi], before, n, 0, after, m, &u);
        T_CHECK(u.w.n == 0 && u.st.ooo_values == (uint64_t)(30 * F) && u.w.dq_rejected >= 1,
                "%s, uninterrupted: %d windows, %llu values refused, %d rejected events",
                ad_asm_mode_name(modes[mi]), u.w.n, (unsigned long long)u.st.ooo_values,
                u.w.dq_rejected);
        for (how = 1; how <= 2; how++) {
            run(modes[mi], before, n, how, after, m, &r);
            T_NOTE("%s, %s, the device clock 10000 s back: %d windows, %llu values refused, "
                   "%d rejected events (uninterrupted %d, %llu, %d)",
                   ad_asm_mode_name(modes[mi]), how == 1 ? "hand-over" : "plain save", r.w.n,
                   (unsigned long long)r.st.ooo_values, r.w.dq_rejected, u.w.n,
                   (unsigned long long)u.st.ooo_values, u.w.dq_rejected);
            /* stamped at the stream's data time, as uninterrupted, and
             * still open a tick later (before: the monitor's clock was
             * not moved by the restore, the event started at 0 (1970)
             * and the tick's jump of its clock cleared it) */
            T_CHECK(r.w.dq_start == u.w.dq_start && r.w.dq_start > 0 &&
                    r.w.dq_cleared == u.w.dq_cleared,
                    "%s, %s: the rejected event starts at %lld ms, cleared %d times by a "
                    "tick; uninterrupted %lld, %d", ad_asm_mode_name(modes[mi]),
                    how == 1 ? "hand-over" : "plain save", (long long)r.w.dq_start,
                    r.w.dq_cleared, (long long)u.w.dq_start, u.w.dq_cleared);
            T_CHECK(r.w.n == u.w.n && r.st.ooo_values == u.st.ooo_values &&
                    r.w.dq_rejected == u.w.dq_rejected,
                    "%s, %s: %d windows, %llu values refused, %d rejected events; "
                    "uninterrupted %d, %llu, %d", ad_asm_mode_name(modes[mi]),
                    how == 1 ? "hand-over" : "plain save", r.w.n,
                    (unsigned long long)r.st.ooo_values, r.w.dq_rejected, u.w.n,
                    (unsigned long long)u.st.ooo_values, u.w.dq_rejected);
        }
    }
    g_tick = 0;
}

int main(void)
{
    T_RUN(test_rows_redelivered);
    T_RUN(test_rows_lateness_redelivered);
    T_RUN(test_all_sample_redelivered);
    T_RUN(test_period_sample_redelivered);
    T_RUN(test_clock_back_raises);
    ad_model_free(g_model);
    return t_done();
}
