/*
 * test_dq_refused_value.c - values the caller refused before pushing them
 * (a message's field that is not a number or not finite), through the
 * whole detector (ad_detector_push_refused), one row a second:
 *   - rows mode, one feature of three refused in 30 rows (15 non-finite,
 *     15 non-numeric) while the other two come: the stream counts them
 *     (nonfinite 15, nonnumeric 15), a data-quality rejected event names
 *     that feature (none for the whole stream, no whole-stream dropout),
 *     every row still makes a window (the feature held), the windows with
 *     a refused value are untrusted (they never teach);
 *   - the same in period mode (samples): the counts and the event;
 *   - messages whose every value is refused, arriving every 500 ms for
 *     60 s with the daemon's tick between them: a rejected event on each
 *     feature, and no whole-stream dropout (the device is alive).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"

#define F 3
#define TW 4
static const int64_t T0 = 1700000000000LL;

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
    c.calib_windows = 50;
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    *mp = m;
    return d;
}

typedef struct seen {
    int windows;
    int rejected[F + 1];        /* rejected raised per feature; [F]: whole */
    int dropout_whole;
} seen;

static void drain(ad_detector *d, seen *s)
{
    ad_event ev;
    float in[TW * F];
    ad_window_job job;

    while (ad_detector_next_window(d, in, &job)) {
        ad_detector_feed_score(d, &job, 0.1f, NULL);
        s->windows++;
    }
    while (ad_detector_poll_event(d, &ev)) {
        if (ev.type != AD_EV_DQ_RAISED)
            continue;
        if (ev.dq.check == AD_DQ_REJECTED)
            s->rejected[ev.dq.feature >= 0 && ev.dq.feature < F ? ev.dq.feature : F]++;
        if (ev.dq.check == AD_DQ_DROPOUT && ev.dq.feature < 0)
            s->dropout_whole++;
    }
}

static double val(int i, int f)
{
    return 1.0 + f + 0.1 * sin(i * 0.7 + f);
}

/* Row i (time T0 + i s, arriving 20 ms later): feature 2 refused from row
 * 150 to 179 (non-finite, then non-numeric). */
static void push(ad_detector *d, ad_asm_mode mode, int i, seen *s)
{
    int64_t t = T0 + (int64_t)i * 1000;
    int bad = i >= 150 && i < 180;
    double row[F];
    unsigned char present[F];

    ad_detector_arrival(d, t + 20);
    for (int f = 0; f < F; f++) {
        row[f] = val(i, f);
        present[f] = !(bad && f == 2);
    }
    if (mode == AD_ASM_ROWS) {
        ad_detector_push_row(d, t, row, present);
    } else {
        for (int f = 0; f < F; f++)
            if (present[f])
                ad_detector_push_sample(d, t, f, row[f]);
    }
    if (bad)
        T_CHECK(ad_detector_push_refused(d, t, 2, i >= 165) == 1, "refused: 1");
    ad_detector_advance(d, t + 500);
    drain(d, s);
}

static void test_one_feature(ad_asm_mode mode)
{
    ad_model *m;
    ad_detector *d = mk(mode, &m);
    ad_detector_stats st;
    seen s;
    int w150 = 0;

    memset(&s, 0, sizeof s);
    for (int i = 0; i < 200; i++) {
        if (i == 150)
            w150 = s.windows;
        push(d, mode, i, &s);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("%s: windows %d (%d from row 150), untrusted %llu, rejected %d/%d/%d whole %d, "
           "whole dropout %d", ad_asm_mode_name(mode), s.windows, s.windows - w150,
           (unsigned long long)st.windows_untrusted, s.rejected[0], s.rejected[1],
           s.rejected[2], s.rejected[F], s.dropout_whole);
    T_CHECK(st.stream.nonfinite == 15 && st.stream.nonnumeric == 15,
            "%s: the stream counts nonfinite 15, nonnumeric 15 (%llu, %llu)",
            ad_asm_mode_name(mode), (unsigned long long)st.stream.nonfinite,
            (unsigned long long)st.stream.nonnumeric);
    T_CHECK(s.rejected[2] == 1 && s.rejected[0] == 0 && s.rejected[1] == 0 && s.rejected[F] == 0,
            "%s: one rejected event, naming feature 2", ad_asm_mode_name(mode));
    T_CHECK(s.dropout_whole == 0, "%s: no whole-stream dropout", ad_asm_mode_name(mode));
    if (mode == AD_ASM_ROWS) {
        T_CHECK(s.windows - w150 == 50, "rows: a window for each of the 50 rows from row 150 "
                "(the refused feature held): %d", s.windows - w150);
        T_CHECK(st.windows_untrusted >= 30, "rows: the windows with a refused value are "
                "untrusted: %llu", (unsigned long long)st.windows_untrusted);
    }
    ad_detector_free(d);
    ad_model_free(m);
}

static void test_rows(void)
{
    test_one_feature(AD_ASM_ROWS);
}

static void test_period(void)
{
    test_one_feature(AD_ASM_PERIOD);
}

/* Every value refused, a message every 500 ms for 60 s after 150 good rows,
 * with the daemon's tick (advance at wall time) between messages. */
static void test_all_refused(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    seen s;
    int64_t wall = 0;

    memset(&s, 0, sizeof s);
    for (int i = 0; i < 150; i++)
        push(d, AD_ASM_ROWS, i, &s);
    wall = T0 + 150 * 1000;
    for (int k = 0; k < 120; k++, wall += 500) {
        ad_detector_arrival(d, wall);
        for (int f = 0; f < F; f++)
            ad_detector_push_refused(d, wall, f, f == 1);
        ad_detector_advance(d, wall + 250);
        drain(d, &s);
    }
    T_NOTE("all refused: rejected %d/%d/%d whole %d, whole dropout %d", s.rejected[0],
           s.rejected[1], s.rejected[2], s.rejected[F], s.dropout_whole);
    T_CHECK(s.rejected[0] == 1 && s.rejected[1] == 1 && s.rejected[2] == 1,
            "a rejected event on each feature");
    T_CHECK(s.dropout_whole == 0, "no whole-stream dropout while messages come");
    /* and once they stop, the silence is a dropout (the monitor works) */
    for (int k = 0; k < 20; k++, wall += 500) {
        ad_detector_advance(d, wall);
        drain(d, &s);
    }
    T_CHECK(s.dropout_whole == 1, "10 s of silence after them: a whole-stream dropout (%d)",
            s.dropout_whole);
    ad_detector_free(d);
    ad_model_free(m);
}

int main(void)
{
    T_RUN(test_rows);
    T_RUN(test_period);
    T_RUN(test_all_refused);
    return t_done();
}
