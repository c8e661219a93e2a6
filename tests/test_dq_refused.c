/*
 * test_dq_refused.c - samples refused for their timestamps and the
 * data-quality monitor: a clock that jumped back (far behind the newest
 * row) or one ahead of its arrival raises a 'rejected' alert; the jitter of
 * per-feature messages around a row, the daemon's timer between two
 * messages of one instant and a QoS 1 redelivery do not (they are late by
 * less than rows.max_gap_ms); a new stream whose every sample is refused
 * dates its alert at the arrival, not 1970.
 */
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"

#define F 2
#define TW 4
static int64_t T0 = 1700000000000LL;

static ad_detector *mk(ad_asm_mode mode, ad_model **mp)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg_default(&c);
    c.dq_enabled = 1;
    ad_dq_cfg_default(&c.dq);
    c.stream.mode = mode;
    c.stream.period_ms = 1000;
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0) {
        T_CHECK(0, "new: %s", err);
    }
    *mp = m;
    return d;
}

static int drain(ad_detector *d, int *rej_raised)
{
    ad_event ev;
    float in[TW * F];
    ad_window_job job;
    while (ad_detector_next_window(d, in, &job))
        ad_detector_feed_score(d, &job, 0.1f, NULL);
    while (ad_detector_poll_event(d, &ev))
        if (ev.type == AD_EV_DQ_RAISED && ev.dq.check == AD_DQ_REJECTED)
            (*rej_raised)++;
    return 0;
}

/* PERIOD mode, one MQTT topic per feature, device stamps near whole seconds
 * with a few ms jitter: B's sample (stamped 2 ms before the second) arrives
 * just after A's (stamped 3 ms after). Every row is complete and on time. */
static void test_period_jitter(void)
{
    ad_model *m; ad_detector *d = mk(AD_ASM_PERIOD, &m);
    ad_detector_stats st;
    int raised = 0, i;
    for (i = 0; i < 120; i++) {
        int64_t t = T0 + (int64_t)i * 1000;
        int64_t ta = t + 3, tb = t - 2;
        ad_detector_arrival(d, ta + 20);
        ad_detector_push_sample(d, ta, 0, 1.0 + 0.01 * (i % 7));
        ad_detector_arrival(d, ta + 25);
        ad_detector_push_sample(d, tb, 1, 2.0 + 0.01 * (i % 5));
        drain(d, &raised);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("period jitter: ooo %llu, rejected raises %d, dq_active %d",
           (unsigned long long)st.stream.ooo, raised, st.dq_active);
    T_CHECK(raised == 0, "no rejected alert for on-time jittered samples (raised %d, ooo %llu)",
            raised, (unsigned long long)st.stream.ooo);
    ad_detector_free(d); ad_model_free(m);
}

/* PERIOD mode: the daemon's timer (ad_detector_advance) between the two
 * per-feature messages of the same instant. */
static void test_period_advance_between(void)
{
    ad_model *m; ad_detector *d = mk(AD_ASM_PERIOD, &m);
    ad_detector_stats st;
    int raised = 0, i;
    for (i = 0; i < 120; i++) {
        int64_t t = T0 + (int64_t)i * 1000 + 900;   /* stamped at .900 */
        int64_t w = t + 50;                          /* arrives 50 ms later */
        ad_detector_arrival(d, w);
        ad_detector_push_sample(d, t, 0, 1.0 + 0.01 * (i % 7));
        ad_detector_advance(d, w + 150);             /* tick: data time t+150 > grid */
        ad_detector_arrival(d, w + 160);
        ad_detector_push_sample(d, t, 1, 2.0 + 0.01 * (i % 5));
        drain(d, &raised);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("period advance: ooo %llu, rejected raises %d", (unsigned long long)st.stream.ooo, raised);
    T_CHECK(raised == 0, "no rejected alert (raised %d, ooo %llu)", raised,
            (unsigned long long)st.stream.ooo);
    ad_detector_free(d); ad_model_free(m);
}

/* Row i at time T0 + i s, arriving at `arrival`: one row (ROWS mode) or
 * one sample per feature. */
static void push_at(ad_detector *d, ad_asm_mode mode, int i, int64_t arrival)
{
    int64_t t = T0 + (int64_t)i * 1000;
    double row[F] = { 1.0 + 0.01 * (i % 7), 2.0 + 0.01 * (i % 5) };

    ad_detector_arrival(d, arrival);
    if (mode == AD_ASM_ROWS) {
        ad_detector_push_row(d, t, row, NULL);
        return;
    }
    for (int f = 0; f < F; f++)
        ad_detector_push_sample(d, t, f, row[f]);
}

/* A QoS 1 redelivery after a reconnect: the rows from `from` on come again
 * (one counted as a duplicate, the older ones as late: dropped, but late by
 * less than rows.max_gap_ms, so no rejected alert). */
static void redelivery(ad_asm_mode mode, int from)
{
    ad_model *m; ad_detector *d = mk(mode, &m);
    ad_detector_stats st;
    int raised = 0, i;

    for (i = 0; i < 30; i++) {
        push_at(d, mode, i, T0 + (int64_t)i * 1000 + 10);
        drain(d, &raised);
    }
    for (i = from; i < 30; i++) {
        push_at(d, mode, i, T0 + 30000);
        drain(d, &raised);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("%s redelivery: dup %llu ooo %llu, rejected raises %d",
           mode == AD_ASM_ROWS ? "rows" : "all", (unsigned long long)st.stream.dup,
           (unsigned long long)st.stream.ooo, raised);
    T_CHECK(st.stream.ooo > 0 && raised == 0, "a redelivery raises no rejected alert (raised %d)",
            raised);
    ad_detector_free(d); ad_model_free(m);
}

static void test_all_redelivery(void) { redelivery(AD_ASM_ALL, 24); }
static void test_rows_redelivery(void) { redelivery(AD_ASM_ROWS, 18); }

/* A new stream from a device whose clock is a day ahead: every sample is
 * refused as future; one rejected alert, dated at the arrival (was 1970). */
static void test_rejected_before_any_sample(void)
{
    ad_detector_cfg c; ad_detector *d = NULL; char err[300]; ad_event ev; int i, got = 0;
    ad_model *m = t_zero_model(TW, F);
    ad_detector_cfg_default(&c);
    c.dq_enabled = 1; ad_dq_cfg_default(&c.dq);
    c.stream.mode = AD_ASM_PERIOD;
    ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err);
    for (i = 0; i < 12; i++) {
        int64_t wall = T0 + (int64_t)i * 1000;
        ad_detector_arrival(d, wall);
        ad_detector_push_sample(d, wall + 86400000, 0, 1.0);
        ad_detector_advance(d, wall + 500);
    }
    while (ad_detector_poll_event(d, &ev))
        if (ev.type == AD_EV_DQ_RAISED) {
            got++;
            T_NOTE("dq raised: %s at ts %lld since %lld", ad_dq_check_name(ev.dq.check),
                   (long long)ev.ts_ms, (long long)ev.dq.since_ms);
            T_CHECK(ev.ts_ms > 946684800000LL && ev.dq.since_ms > 946684800000LL,
                    "the event is dated now, not 1970 (ts %lld since %lld)",
                    (long long)ev.ts_ms, (long long)ev.dq.since_ms);
        }
    T_CHECK(got == 1, "one rejected alert (%d)", got);
    ad_detector_free(d); ad_model_free(m);
}

/* ROWS mode: a device clock that jumps back a day after 60 good rows: its
 * rows are dropped as late, and that is one rejected alert on the whole
 * stream (feature -1). */
static void test_clock_jump_back(void)
{
    ad_model *m; ad_detector *d = mk(AD_ASM_ROWS, &m);
    ad_event ev;
    float in[TW * F];
    ad_window_job job;
    int got = 0, i;

    for (i = 0; i < 60; i++) {
        int64_t t = T0 + (int64_t)i * 1000;
        double row[F] = { 1.0 + 0.01 * (i % 7), 2.0 };
        ad_detector_arrival(d, t + 10);
        ad_detector_push_row(d, t, row, NULL);
    }
    for (i = 0; i < 30; i++) {
        int64_t t = T0 - 86400000 + (int64_t)i * 1000;
        double row[F] = { 1.0, 2.0 };
        ad_detector_arrival(d, T0 + 60000 + (int64_t)i * 1000);
        ad_detector_push_row(d, t, row, NULL);
    }
    while (ad_detector_next_window(d, in, &job))
        ad_detector_feed_score(d, &job, 0.1f, NULL);
    while (ad_detector_poll_event(d, &ev))
        if (ev.type == AD_EV_DQ_RAISED && ev.dq.check == AD_DQ_REJECTED) {
            got++;
            T_CHECK(ev.dq.feature == -1, "the whole stream (feature %d)", ev.dq.feature);
        }
    T_CHECK(got == 1, "a clock a day back: one rejected alert (%d)", got);
    ad_detector_free(d); ad_model_free(m);
}

int main(void)
{
    T_RUN(test_period_jitter);
    T_RUN(test_period_advance_between);
    T_RUN(test_all_redelivery);
    T_RUN(test_rows_redelivery);
    T_RUN(test_clock_jump_back);
    T_RUN(test_rejected_before_any_sample);
    return t_done();
}
