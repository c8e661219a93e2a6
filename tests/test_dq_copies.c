/*
 * test_dq_copies.c - copies of what a stream sends and a device clock that
 * stops (lib/detector_dq.c STALLED CLOCK). Every row (or sample) delivered
 * 2, 3 or 5 times (overlapping subscriptions, redundant gateways, QoS 1
 * redeliveries), from the start or after the stream's cadence is known,
 * in ROWS mode, with an arrival clock: no `late` alert over 3000 rows
 * (each copy is dropped as a duplicate). The same in ALL and PERIOD mode,
 * every sample of a row sent 2 or 3 times: each copy is a copy
 * (rejected.copies), none late, whether its row is out (ALL: the row goes
 * out with its last feature's first sample) or still being assembled
 * (PERIOD); before, ALL counted them late and raised `late`, PERIOD took a
 * copy of a sample applied to the open row again. A batch of ten samples
 * stamped with one ms, every ten seconds: none. A device whose clock
 * stops (every message stamped with the last time while messages keep
 * coming, a second apart): `late` is raised, within two late windows, in
 * every mode, and its samples are counted as duplicates, not late (period
 * and all mode counted them late once the row at the stopped time was out,
 * and the log sent the operator to rows.max_lateness_ms).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"

#define F 5
#define TW 4
static const int64_t T0 = 1700000000000LL;

/* at: the arrival time of the message being pushed; first_ms: the
 * arrival at which `late` was first raised */
typedef struct { int raised, open; int64_t at, first_ms; } late_seen;

static void drain(ad_detector *d, late_seen *ls)
{
    ad_event ev;
    float in[TW * F];
    ad_window_job job;
    static unsigned k;

    while (ad_detector_next_window(d, in, &job))
        ad_detector_feed_score(d, &job, 0.1 + 0.01 * (k++ % 7), NULL);
    while (ad_detector_poll_event(d, &ev)) {
        if ((ev.type != AD_EV_DQ_RAISED && ev.type != AD_EV_DQ_CLEARED) ||
            strcmp(ad_dq_check_name(ev.dq.check), "late") != 0)
            continue;
        if (ev.type == AD_EV_DQ_RAISED) {
            if (!ls->raised)
                ls->first_ms = ls->at;
            ls->raised++;
            ls->open = 1;
        } else {
            ls->open = 0;
        }
    }
}

static ad_detector *mk(ad_asm_mode mode, ad_model **m)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    *m = t_zero_model(TW, F);
    ad_detector_cfg_default(&c);
    c.dq_enabled = 1;
    ad_dq_cfg_default(&c.dq);
    c.stream.mode = mode;
    c.stream.period_ms = 1000;
    if (ad_detector_new(&d, &c, "dev", *m, 0, 0, NULL, err, sizeof err) != 0) {
        T_CHECK(0, "new: %s", err);
        return NULL;
    }
    return d;
}

static void push(ad_detector *d, ad_asm_mode mode, int64_t ts, int i)
{
    double row[F];
    int f;

    for (f = 0; f < F; f++)
        row[f] = 10.0 * (f + 1) + 0.1 * ((i * (f + 3)) % 11);
    if (mode == AD_ASM_ROWS)
        ad_detector_push_row(d, ts, row, NULL);
    else
        for (f = 0; f < F; f++)
            ad_detector_push_sample(d, ts, f, row[f]);
}

/* nrows 1 s rows, each sent `copies` times (from row `from`), arrivals 10
 * ms apart */
static void copies(ad_asm_mode mode, int n, int from)
{
    ad_model *m;
    ad_detector *d = mk(mode, &m);
    late_seen ls = {0};
    ad_detector_stats st;
    uint64_t want;
    int i, k;

    if (!d)
        return;
    for (i = 0; i < 3000; i++) {
        int64_t ts = T0 + (int64_t)i * 1000;
        for (k = 0; k < (i >= from ? n : 1); k++) {
            ad_detector_arrival(d, ts + 10 * k);
            push(d, mode, ts, i);
            drain(d, &ls);
        }
    }
    T_CHECK(ls.raised == 0, "mode %d, %d copies from row %d: late raised %d times",
            (int)mode, n, from, ls.raised);
    /* every copy dropped as one: a whole row in ROWS mode, else a sample */
    ad_detector_get_stats(d, &st);
    want = (uint64_t)(n - 1) * (uint64_t)(3000 - from) * (mode == AD_ASM_ROWS ? 1 : F);
    T_CHECK(st.stream.dup_copies == want && st.stream.dup == want && st.stream.ooo == 0,
            "mode %d, %d copies from row %d: copies %llu, duplicates %llu, late %llu; want "
            "%llu, %llu, 0", (int)mode, n, from, (unsigned long long)st.stream.dup_copies,
            (unsigned long long)st.stream.dup, (unsigned long long)st.stream.ooo,
            (unsigned long long)want, (unsigned long long)want);
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_rows_2(void) { copies(AD_ASM_ROWS, 2, 0); }
static void test_rows_3(void) { copies(AD_ASM_ROWS, 3, 0); }
static void test_rows_5_later(void) { copies(AD_ASM_ROWS, 5, 600); }
static void test_all_2(void) { copies(AD_ASM_ALL, 2, 0); }
static void test_all_3_later(void) { copies(AD_ASM_ALL, 3, 600); }
static void test_period_2(void) { copies(AD_ASM_PERIOD, 2, 0); }
static void test_period_3_later(void) { copies(AD_ASM_PERIOD, 3, 600); }

static void test_batch_one_ms(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    late_seen ls = {0};
    int i, k;

    if (!d)
        return;
    /* a gateway stamps each batch of ten samples with one time */
    for (i = 0; i < 600; i++) {
        int64_t ts = T0 + (int64_t)i * 10000;
        for (k = 0; k < 10; k++) {
            ad_detector_arrival(d, ts + 5 * k);
            push(d, AD_ASM_ROWS, ts, i * 10 + k);
            drain(d, &ls);
        }
    }
    T_CHECK(ls.raised == 0, "batches stamped with one ms: late raised %d times", ls.raised);
    ad_detector_free(d);
    ad_model_free(m);
}

static void clock_stops(ad_asm_mode mode)
{
    ad_model *m;
    ad_detector *d = mk(mode, &m);
    late_seen ls = {0};
    ad_detector_stats st;
    int64_t stop = T0 + 299 * 1000;
    int i;

    if (!d)
        return;
    for (i = 0; i < 900; i++) {
        int64_t at = T0 + (int64_t)i * 1000;
        ad_detector_arrival(d, at);
        ls.at = at;
        push(d, mode, i < 300 ? at : stop, i);
        if (mode != AD_ASM_ROWS)
            ad_detector_advance(d, at);     /* the daemon's tick: rows out */
        drain(d, &ls);
    }
    T_CHECK(ls.raised >= 1 && ls.open, "mode %d, a clock that stopped: late raised %d times, "
            "open %d", (int)mode, ls.raised, ls.open);
    T_NOTE("mode %d: late raised %lld s after the clock stopped", (int)mode,
           (long long)((ls.first_ms - stop) / 1000));
    T_CHECK(ls.raised >= 1 && ls.first_ms - stop <= 2 * 60000,
            "mode %d: raised %lld s after the clock stopped (want within two late windows, "
            "120 s)", (int)mode, (long long)((ls.first_ms - stop) / 1000));
    /* told for what it is: duplicates with other values (the log's "a
     * device clock that stopped"), not late samples (its advice: raise
     * rows.max_lateness_ms); per-feature modes counted them late once the
     * row at the stopped time was out */
    ad_detector_get_stats(d, &st);
    T_CHECK(st.stream.ooo == 0 && st.stream.dup > st.stream.dup_copy_values,
            "mode %d: a clock that stopped: late %llu, duplicates %llu (%llu values), of which "
            "copies %llu; want no late, duplicates with other values", (int)mode,
            (unsigned long long)st.stream.ooo, (unsigned long long)st.stream.dup,
            (unsigned long long)st.stream.dup_values,
            (unsigned long long)st.stream.dup_copy_values);
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_clock_stops(void) { clock_stops(AD_ASM_ROWS); }
static void test_clock_stops_period(void) { clock_stops(AD_ASM_PERIOD); }
static void test_clock_stops_all(void) { clock_stops(AD_ASM_ALL); }

int main(void)
{
    T_RUN(test_rows_2);
    T_RUN(test_rows_3);
    T_RUN(test_rows_5_later);
    T_RUN(test_all_2);
    T_RUN(test_all_3_later);
    T_RUN(test_period_2);
    T_RUN(test_period_3_later);
    T_RUN(test_batch_one_ms);
    T_RUN(test_clock_stops);
    T_RUN(test_clock_stops_period);
    T_RUN(test_clock_stops_all);
    return t_done();
}
