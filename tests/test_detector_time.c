/*
 * test_detector_time.c - event time through the whole detector (push rows,
 * score windows, read events and stats):
 *   - a 6 h hole in the timestamps (rows mode, max_gap_ms 1 h) restarts the
 *     window ring: no window handed out spans the hole (every window covers
 *     exactly T-1 periods), the first window after it needs T fresh rows,
 *     and the restart is counted (window_resets, stream gaps);
 *   - one far-future timestamp (1e15 ms, then +2 days, with the arrival
 *     clock set as the daemon sets it) is rejected and counted as future
 *     and does not silence the stream: a later fault still raises an alert.
 *
 * Model: one TimeDistributed Dense with zero weights and no scaler, so a
 * window's MAE score is the mean |value| over its rows and features.
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"
#include "engine.h"

#define F 2
#define TW 4

static uint64_t rng = 88172645463325252ull;

static double noise(void)      /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

typedef struct run {
    int count[16];
    int windows, spans_bad;
    int64_t first_after;        /* start_ms of the first window >= mark */
    int64_t mark;
    int64_t raised_ts;          /* first alert raise */
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
        r->windows++;
        /* rows are 1 s apart: a window that spans no hole covers T-1 s */
        if (job.ts_ms - job.start_ms != (TW - 1) * 1000)
            r->spans_bad++;
        if (job.start_ms >= r->mark && r->first_after == INT64_MIN)
            r->first_after = job.start_ms;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev)) {
        if ((unsigned)ev.type < 16)
            r->count[ev.type]++;
        if (ev.type == AD_EV_ALERT_RAISED && r->raised_ts == INT64_MIN)
            r->raised_ts = ev.alert.start_ms;
    }
}

static ad_detector *mk(ad_model *m)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.thr.margin = 1.2;
    c.alert.k = 1;
    c.alert.n = 1;
    c.alert.m = 2;
    c.alert.clear_ratio = 1;
    c.alert.accept_after = 0;
    c.stream.max_gap_ms = 3600000;
    c.stream.max_future_ms = 600000;
    if (ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "ad_detector_new: %s", err);
    return d;
}

static void test_gap_restarts_windows(void)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector *d = m ? mk(m) : NULL;
    ad_detector_stats st;
    run r;
    int64_t t0 = 1700000000000LL, hole = 6 * 3600 * 1000LL, tg;
    int i;

    if (!d) {
        ad_model_free(m);
        return;
    }
    memset(&r, 0, sizeof(r));
    r.raised_ts = INT64_MIN;
    r.first_after = INT64_MIN;
    tg = t0 + 200 * 1000 + hole;        /* first row after the hole */
    r.mark = t0 + 199 * 1000 + 1;       /* windows starting after row 199 */
    for (i = 0; i < 400; i++) {
        int64_t ts = t0 + (int64_t)i * 1000 + (i >= 200 ? hole : 0);
        step(d, ts, 1 + 0.05 * noise(), 1 + 0.05 * noise(), &r);
    }
    ad_detector_get_stats(d, &st);
    T_CHECK(r.spans_bad == 0, "%d of %d windows span more than T-1 periods", r.spans_bad,
            r.windows);
    T_CHECK(r.first_after == tg, "first window after the hole starts at its first row "
            "(%lld, want %lld)", (long long)r.first_after, (long long)tg);
    /* windows: rows 3..199 (197) before, rows 203..399 (197) after */
    T_CHECK(r.windows == 2 * (200 - TW + 1), "windows %d (want %d)", r.windows,
            2 * (200 - TW + 1));
    T_CHECK(st.window_resets == 1 && st.stream.gaps == 1, "window_resets %llu gaps %llu",
            (unsigned long long)st.window_resets, (unsigned long long)st.stream.gaps);
    T_CHECK(r.count[AD_EV_ALERT_RAISED] == 0, "no alert on clean data across the hole (%d)",
            r.count[AD_EV_ALERT_RAISED]);
    T_NOTE("6 h hole: %d windows, none across it; resets %llu, gaps %llu", r.windows,
           (unsigned long long)st.window_resets, (unsigned long long)st.stream.gaps);
    ad_detector_free(d);
    ad_model_free(m);
}

/* Rows at 1 s stamped with the arrival clock; at row `bad` one row stamped
 * `bad_ts` arrives; rows 300..309 are a fault (level 20). */
static void future_case(int64_t bad_ts_off, int64_t bad_abs, run *r, ad_detector_stats *st)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector *d = m ? mk(m) : NULL;
    int64_t t0 = 1700000000000LL;
    int i;

    memset(r, 0, sizeof(*r));
    r->raised_ts = INT64_MIN;
    r->first_after = INT64_MIN;
    r->mark = INT64_MAX;
    if (!d) {
        ad_model_free(m);
        return;
    }
    for (i = 0; i < 400; i++) {
        int64_t ts = t0 + (int64_t)i * 1000;
        double lvl = (i >= 300 && i < 310) ? 20 : 1;
        ad_detector_arrival(d, ts);
        if (i == 150) {
            double row[F] = { 1, 1 };
            int rc = ad_detector_push_row(d, bad_abs ? bad_abs : ts + bad_ts_off, row, NULL);
            T_CHECK(rc == 1, "future row rejected (rc %d)", rc);
        }
        step(d, ts, lvl + 0.05 * noise(), lvl + 0.05 * noise(), r);
        ad_detector_advance(d, ts + 500);
    }
    ad_detector_get_stats(d, st);
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_future_timestamp_does_not_silence(void)
{
    int64_t t0 = 1700000000000LL;
    ad_detector_stats st;
    run r;

    future_case(0, (int64_t)1e15, &r, &st);
    T_CHECK(st.stream.future == 1, "1e15: counted as future %llu",
            (unsigned long long)st.stream.future);
    T_CHECK(st.stream.ooo == 0 && st.rows == 400, "1e15: later rows not late (ooo %llu, "
            "rows %llu)", (unsigned long long)st.stream.ooo, (unsigned long long)st.rows);
    T_CHECK(r.raised_ts == t0 + 300 * 1000, "1e15: fault at row 300 raised (at %lld)",
            r.raised_ts == INT64_MIN ? -1LL : (long long)(r.raised_ts - t0));
    future_case(2 * 86400000LL, 0, &r, &st);
    T_CHECK(st.stream.future == 1, "+2 days: counted as future %llu",
            (unsigned long long)st.stream.future);
    T_CHECK(st.stream.ooo == 0 && st.rows == 400, "+2 days: later rows not late (ooo %llu, "
            "rows %llu)", (unsigned long long)st.stream.ooo, (unsigned long long)st.rows);
    T_CHECK(r.raised_ts == t0 + 300 * 1000, "+2 days: fault at row 300 raised (at %lld)",
            r.raised_ts == INT64_MIN ? -1LL : (long long)(r.raised_ts - t0));
    T_CHECK(st.dq_active == 0, "no data-quality condition left open (%d)", st.dq_active);
}

int main(void)
{
    T_RUN(test_gap_restarts_windows);
    T_RUN(test_future_timestamp_does_not_silence);
    return t_done();
}
