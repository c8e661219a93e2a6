/*
 * test_dq_late.c - rows dropped as late in bulk and the data-quality
 * monitor: a device whose clock glitches (every 50th row of 1 s data
 * stamped 9 minutes ahead) has almost every row dropped as late, each only
 * a few minutes behind: one `late` event on the whole stream, without an
 * arrival clock and, with one, in PERIOD and ALL modes; a clock that steps
 * back 10 minutes (under max_lateness_ms + max_gap_ms) likewise. A single
 * late row in a jittery network, a QoS 1 redelivery and a stream that
 * resumes after a silence raise nothing. The event clears once the rows
 * come on time again. In ROWS mode with an arrival clock the lone row ahead
 * is held and dropped (detector.h, A ROW AHEAD): every other row is kept;
 * a real gap, a backlog with a hole and a last row ahead are taken. A
 * 10 s stream whose clock steps back raises `late` within a few rows; a
 * slow redelivery to a stream whose new rows keep coming raises nothing.
 * A row held when the stream is saved goes with the state: the restored
 * stream's next row decides it; a state not continued counts it lost.
 * The first two rows after a real jump swapped in transit (within
 * rows.max_lateness_ms) are both kept; a row just past max_lateness_ms
 * ahead followed by rows on the old cadence is a glitch, dropped.
 * Messages refused whole never hold
 * back the rows waiting behind the watermark, nor fill held rows (PERIOD)
 * the data-quality monitor would not flag.
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
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    *mp = m;
    return d;
}

typedef struct {
    int late_raised, late_cleared, other_raised, dropout_raised, feature;
    double value;
    uint64_t count;
} seen;

static void drain(ad_detector *d, seen *s)
{
    ad_event ev;
    float in[TW * F];
    ad_window_job job;

    static unsigned k;

    /* scores that vary a little: a calibration can end on them */
    while (ad_detector_next_window(d, in, &job))
        ad_detector_feed_score(d, &job, 0.1 + 0.01 * (k++ % 7), NULL);
    while (ad_detector_poll_event(d, &ev)) {
        if (ev.type != AD_EV_DQ_RAISED && ev.type != AD_EV_DQ_CLEARED)
            continue;
        /* by name: the test builds against a monitor without the check */
        if (strcmp(ad_dq_check_name(ev.dq.check), "late") != 0) {
            if (ev.type == AD_EV_DQ_RAISED) {
                s->other_raised++;
                s->dropout_raised += strcmp(ad_dq_check_name(ev.dq.check), "dropout") == 0;
                T_NOTE("dq raised: %s", ad_dq_check_name(ev.dq.check));
            }
            continue;
        }
        if (ev.type == AD_EV_DQ_RAISED) {
            s->late_raised++;
            s->feature = ev.dq.feature;
            s->value = ev.dq.value;
            s->count = ev.dq.count;
        } else {
            s->late_cleared++;
        }
    }
}

/* Row i (values varying) stamped ts, arriving at wall (0: no arrival clock). */
static void push(ad_detector *d, ad_asm_mode mode, int i, int64_t ts, int64_t wall)
{
    double row[F];
    int f;

    for (f = 0; f < F; f++)
        row[f] = 10.0 * (f + 1) + 0.1 * ((i * (f + 3)) % 11);
    if (wall)
        ad_detector_arrival(d, wall);
    if (mode == AD_ASM_ROWS) {
        ad_detector_push_row(d, ts, row, NULL);
        return;
    }
    for (f = 0; f < F; f++)
        ad_detector_push_sample(d, ts, f, row[f]);
}

/* 2,600 rows 1 s apart, every 50th stamped 9 minutes ahead (under
 * rows.max_future_ms, so accepted), then 300 rows on time. */
static void glitch(ad_asm_mode mode, int arrival)
{
    ad_model *m;
    ad_detector *d = mk(mode, &m);
    ad_detector_stats st;
    seen s = { 0 };
    int i, raised_at = -1;
    const char *mn = mode == AD_ASM_ROWS ? "rows" : mode == AD_ASM_PERIOD ? "period" : "all";

    for (i = 0; i < 2600; i++) {
        int64_t t = T0 + (int64_t)i * 1000;
        if (i % 50 == 0 && i > 0)
            t += 540000;
        push(d, mode, i, t, arrival ? T0 + (int64_t)i * 1000 + 30 : 0);
        if (arrival)
            ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
        if (s.late_raised && raised_at < 0)
            raised_at = i;
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("%s, %s: %llu of %llu values dropped as late; late raised %d (row %d, feature %d, "
           "share %.3f, count %llu)",
           mn, arrival ? "arrival clock" : "no arrival clock",
           (unsigned long long)st.stream.ooo_values,
           (unsigned long long)(st.stream.samples + ad_stream_values_refused(&st.stream)),
           s.late_raised, raised_at, s.feature, s.value, (unsigned long long)s.count);
    T_CHECK(s.late_raised == 1, "one late event (%d)", s.late_raised);
    T_CHECK(s.feature == -1, "on the whole stream (feature %d)", s.feature);
    T_CHECK(raised_at > 0 && raised_at < 150, "raised within the first glitch (row %d)",
            raised_at);
    T_CHECK(s.value > 0.5, "the share dropped as late (%.3f)", s.value);
    T_CHECK(s.late_cleared == 0, "not cleared while the clock glitches (%d)", s.late_cleared);
    /* the device's clock is fixed: the rows after the last glitch's are
     * late for a while, then on time; the event clears */
    for (i = 2600; i < 3400; i++) {
        int64_t t = T0 + 540000 + (int64_t)i * 1000;
        push(d, mode, i, t, arrival ? T0 + (int64_t)i * 1000 + 30 : 0);
        if (arrival)
            ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    T_CHECK(s.late_cleared == 1 && s.late_raised == 1, "cleared once the rows come on time "
            "(raised %d cleared %d)", s.late_raised, s.late_cleared);
    ad_detector_free(d);
    ad_model_free(m);
}

/* ROWS mode with an arrival clock (the daemon): the lone row 9 minutes
 * ahead is held, the next row (back on the cadence) says it was wrong: it
 * is dropped, counted as refused for a future time, and the stream's other
 * rows are all kept. The clock fixed 9 minutes forward at the end (a real
 * jump, confirmed by the rows after it) is taken. */
static void test_glitch_rows_arrival(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    ad_detector_stats st;
    seen s = { 0 };
    int i;

    for (i = 0; i < 2600; i++) {
        int64_t t = T0 + (int64_t)i * 1000;
        if (i % 50 == 0 && i > 0)
            t += 540000;
        push(d, AD_ASM_ROWS, i, t, T0 + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("rows, arrival clock: %llu rows kept of 2600, %llu dropped as late, %llu glitch rows "
           "dropped (future %llu); windows scored %llu; late raised %d, other dq %d",
           (unsigned long long)st.stream.rows, (unsigned long long)st.stream.ooo,
           (unsigned long long)st.rows_ahead, (unsigned long long)st.stream.future,
           (unsigned long long)st.windows_scored, s.late_raised, s.other_raised);
    T_CHECK(st.stream.rows == 2600 - 51 && st.stream.ooo == 0,
            "every row kept but the 51 glitching ones (rows %llu, late %llu)",
            (unsigned long long)st.stream.rows, (unsigned long long)st.stream.ooo);
    T_CHECK(st.rows_ahead == 51 && st.stream.future == 51 && st.stream.future_values == 51 * F,
            "the glitching rows counted as refused for a future time (%llu, %llu values)",
            (unsigned long long)st.stream.future, (unsigned long long)st.stream.future_values);
    T_CHECK(s.late_raised == 0, "nothing dropped as late: no late event (%d)", s.late_raised);
    for (i = 2600; i < 2700; i++) {
        int64_t t = T0 + 540000 + (int64_t)i * 1000;
        push(d, AD_ASM_ROWS, i, t, T0 + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    T_CHECK(st.stream.rows == 2700 - 51 && st.rows_ahead == 51,
            "a clock that did jump: confirmed by the next row, nothing lost (rows %llu)",
            (unsigned long long)st.stream.rows);
    ad_detector_free(d);
    ad_model_free(m);
}

/* ROWS mode with an arrival clock: a silence of 20 minutes, then rows
 * again (a real gap: it arrives after the silence), is taken at once; a
 * backlog arriving fast whose times jump 2 hours (a device that was
 * offline) is held one row, then taken with everything after it; a row
 * far ahead that no row follows is taken by the clock after 2 intervals. */
static void test_real_jumps(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    ad_detector_stats st;
    seen s = { 0 };
    uint64_t before;
    int i;
    int64_t w;

    for (i = 0; i < 100; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, T0 + (int64_t)i * 1000 + 30);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    before = st.stream.rows;
    w = T0 + 100000 + 1200000;
    push(d, AD_ASM_ROWS, 100, T0 + 1300000, w + 30);      /* after 20 min of silence */
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    T_CHECK(st.stream.rows == before + 1, "a row after a silence is taken at once (%llu rows, "
            "was %llu)", (unsigned long long)st.stream.rows, (unsigned long long)before);
    /* a backlog sent after the device's 2 h outage: rows a second apart in
     * data time, 10 ms apart arriving, with the 2 h hole in its times */
    w = T0 + 1301000 + 7200000 + 300000;
    for (i = 0; i < 100; i++) {
        int64_t t = T0 + 1301000 + (int64_t)i * 1000 + (i >= 50 ? 7200000 : 0);
        push(d, AD_ASM_ROWS, i, t, w + (int64_t)i * 10);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    T_CHECK(st.stream.rows == before + 101 && st.rows_ahead == 0,
            "a backlog with a 2 h hole: every row taken (%llu rows, %llu ahead)",
            (unsigned long long)(st.stream.rows - before), (unsigned long long)st.rows_ahead);
    /* one last row far ahead, then nothing: taken by the clock */
    w += 100 * 10;
    push(d, AD_ASM_ROWS, 0, T0 + 1301000 + 7200000 + 100000 + 300000, w + 10);
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    T_CHECK(st.stream.rows == before + 101, "held (%llu rows)",
            (unsigned long long)(st.stream.rows - before));
    ad_detector_advance(d, w + 1500);
    ad_detector_advance(d, w + 2500);
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    /* a next row a little late (a slow hop, a lost QoS 0 message) can
     * still decide: not taken within 5 s */
    T_CHECK(st.stream.rows == before + 101, "still held 2.5 s later (%llu rows)",
            (unsigned long long)(st.stream.rows - before));
    ad_detector_advance(d, w + 4000);
    ad_detector_advance(d, w + 6000);
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    T_NOTE("real jumps: %llu rows of 102 taken, %llu dropped, late raised %d",
           (unsigned long long)(st.stream.rows - before), (unsigned long long)st.rows_ahead,
           s.late_raised);
    T_CHECK(st.stream.rows == before + 102 && st.rows_ahead == 0,
            "a last row far ahead is taken 5 s later (%llu rows)",
            (unsigned long long)(st.stream.rows - before));
    ad_detector_free(d);
    ad_model_free(m);
}
static void test_glitch_rows_replay(void) { glitch(AD_ASM_ROWS, 0); }
static void test_glitch_period_arrival(void) { glitch(AD_ASM_PERIOD, 1); }
static void test_glitch_all_arrival(void) { glitch(AD_ASM_ALL, 1); }

/* A device clock that steps back 10 minutes (under the hour after which a
 * late row counts as rejected): every row for 10 minutes is dropped. */
static void test_step_back(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    seen s = { 0 };
    int i;

    for (i = 0; i < 900; i++) {
        int64_t t = T0 + (int64_t)i * 1000 - (i >= 300 ? 600000 : 0);
        push(d, AD_ASM_ROWS, i, t, T0 + (int64_t)i * 1000 + 30);
        drain(d, &s);
    }
    T_NOTE("step back 10 min: late raised %d, other dq raised %d", s.late_raised,
           s.other_raised);
    T_CHECK(s.late_raised == 1 && s.feature == -1, "one late event on the whole stream "
            "(%d, feature %d)", s.late_raised, s.feature);
    ad_detector_free(d);
    ad_model_free(m);
}

/* One late row now and then (a jittery network: a row overtaken by the
 * next one), and a QoS 1 redelivery of the last 20 rows after a reconnect:
 * nothing raised. */
static void test_jitter_and_redelivery(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    ad_detector_stats st;
    seen s = { 0 };
    int i, j;

    for (i = 0; i < 1200; i++) {
        int k = i;
        if (i % 37 == 5)            /* rows i and i+1 swapped in transit */
            k = i + 1;
        else if (i % 37 == 6)
            k = i - 1;
        push(d, AD_ASM_ROWS, k, T0 + (int64_t)k * 1000, T0 + (int64_t)i * 1000 + 40);
        ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
        if (i == 600)               /* reconnect: the last 20 rows again */
            for (j = 581; j <= 600; j++) {
                push(d, AD_ASM_ROWS, j, T0 + (int64_t)j * 1000, T0 + 600000 + 300);
                drain(d, &s);
            }
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("jitter + redelivery: ooo %llu dup %llu; late raised %d", 
           (unsigned long long)st.stream.ooo, (unsigned long long)st.stream.dup, s.late_raised);
    T_CHECK(st.stream.ooo >= 40, "rows were dropped as late (%llu)",
            (unsigned long long)st.stream.ooo);
    T_CHECK(s.late_raised == 0, "no late event (%d)", s.late_raised);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A redelivery of the last 20 rows, then an hour of silence, then the
 * stream resumes; and a single late row: nothing raised. */
static void test_silence_after_redelivery(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    seen s = { 0 };
    int i;

    for (i = 0; i < 200; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, 0);
        drain(d, &s);
    }
    for (i = 180; i < 200; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, 0);
        drain(d, &s);
    }
    for (i = 3800; i < 4000; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, 0);
        drain(d, &s);
        if (i == 3900) {
            push(d, AD_ASM_ROWS, i, T0 + (int64_t)(i - 3) * 1000, 0);
            drain(d, &s);
        }
    }
    T_NOTE("redelivery, silence, resume, one late row: late raised %d", s.late_raised);
    T_CHECK(s.late_raised == 0, "no late event (%d)", s.late_raised);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A slow stream (a row every 10 s, or a minute) whose device clock steps
 * back 30 minutes (under the hour after which a late row counts as
 * rejected): every row after it is dropped as late, fewer than
 * reject_count a window. The condition scales to the stream's cadence:
 * `late` is raised within a few rows, not never; in ROWS, PERIOD and ALL
 * modes. */
static void slow_step_back(ad_asm_mode mode, int64_t iv)
{
    ad_detector_cfg c;
    ad_model *m = t_zero_model(TW, F);
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    seen s = { 0 };
    int i, raised_at = -1, n = (int)(3600000 / iv) + 200;
    const char *mn = mode == AD_ASM_ROWS ? "rows" : mode == AD_ASM_PERIOD ? "period" : "all";

    ad_detector_cfg_default(&c);
    c.dq_enabled = 1;
    ad_dq_cfg_default(&c.dq);
    c.stream.mode = mode;
    c.stream.period_ms = iv;
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    for (i = 0; i < n; i++) {
        int64_t w = T0 + (int64_t)i * iv;
        int64_t t = w - (i >= 200 ? 1800000 : 0);
        push(d, mode, i, t, w + 30);
        ad_detector_advance(d, w + iv / 2);
        drain(d, &s);
        if (s.late_raised && raised_at < 0)
            raised_at = i;
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("%s, a row every %lld s, clock 30 min back: %llu rows dropped as late; late raised %d "
           "at row %d (%d rows after the step), cleared %d", mn, (long long)(iv / 1000),
           (unsigned long long)st.stream.ooo, s.late_raised, raised_at, raised_at - 200,
           s.late_cleared);
    T_CHECK(st.stream.ooo >= (uint64_t)(1800000 / iv - 1), "the rows after the step dropped as "
            "late (%llu)", (unsigned long long)st.stream.ooo);
    T_CHECK(s.late_raised == 1 && s.feature == -1, "one late event on the whole stream "
            "(%d, feature %d)", s.late_raised, s.feature);
    T_CHECK(raised_at >= 200 && raised_at <= 206, "raised within 6 rows of the step (row %d)",
            raised_at);
    T_CHECK(s.late_cleared == 1, "cleared once the rows come on time (%d)", s.late_cleared);
    ad_detector_free(d);
    ad_model_free(m);
}
static void test_slow_step_back(void) { slow_step_back(AD_ASM_ROWS, 10000); }
static void test_slow_step_back_minute(void) { slow_step_back(AD_ASM_ROWS, 60000); }
static void test_slow_step_back_period(void) { slow_step_back(AD_ASM_PERIOD, 10000); }
static void test_slow_step_back_all(void) { slow_step_back(AD_ASM_ALL, 10000); }

/* A slow redelivery (a bridge re-sending the 600 rows already applied,
 * 10 a second for 60 s) to a 1 row/s stream whose new rows keep coming
 * and are accepted at its usual cadence: the stream is healthy, no
 * `late` event. */
static void test_slow_redelivery(void)
{
    ad_model *m;
    ad_detector *d = mk(AD_ASM_ROWS, &m);
    ad_detector_stats st;
    seen s = { 0 };
    int i, j, r = 0;

    for (i = 0; i < 1200; i++) {
        int64_t w = T0 + (int64_t)i * 1000;
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, w + 30);
        if (i >= 600 && i < 660)
            for (j = 0; j < 10; j++, r++)
                push(d, AD_ASM_ROWS, r, T0 + (int64_t)r * 1000, w + 40 + j * 90);
        ad_detector_advance(d, w + 950);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("1 row/s, 600 rows re-sent over 60 s: %llu rows kept, %llu dropped as late, "
           "%llu dup; late raised %d", (unsigned long long)st.stream.rows,
           (unsigned long long)st.stream.ooo, (unsigned long long)st.stream.dup, s.late_raised);
    T_CHECK(st.stream.ooo + st.stream.dup >= 599, "the re-sent rows dropped (%llu)",
            (unsigned long long)(st.stream.ooo + st.stream.dup));
    T_CHECK(st.stream.rows == 1200, "every new row kept (%llu)",
            (unsigned long long)st.stream.rows);
    T_CHECK(s.late_raised == 0, "no late event (%d)", s.late_raised);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A ROWS detector calibrated within 300 rows, for the save tests. */
static ad_detector *mk_cal(ad_model *m)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    ad_detector_cfg_default(&c);
    c.dq_enabled = 1;
    ad_dq_cfg_default(&c.dq);
    c.stream.mode = AD_ASM_ROWS;
    c.stream.period_ms = 1000;
    c.calib_windows = 20;
    c.extreme = 0;              /* the rows' values are far from the scaler's */
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    return d;
}

/* A row held as far ahead when the stream is saved (a stop, an eviction,
 * a reload's rebuild, a periodic save that a kill -9 leaves) goes with the
 * state: the restored stream holds it, and its next row decides as the
 * stream that was not saved decides: a row after it (the clock did jump)
 * takes it, a row on the old cadence drops it (counted in rows_ahead and
 * stream.future). Before, it was lost without a trace. */
#define AHEAD 7200000

static void held_across(int handover, int jump)
{
    ad_model *m = t_zero_model(TW, F);
    ad_detector *d = mk_cal(m), *d2 = mk_cal(m);
    ad_detector_stats st;
    seen s = { 0 };
    char err[300], *js;
    /* the rows' times 2 h behind their arrival: the row 2 h ahead is not
     * ahead of its arrival (else refused for a future time, not held) */
    int64_t w = T0 + 300 * 1000 + AHEAD, held_ts = T0 + 300 * 1000 + AHEAD;
    int i, rc;

    for (i = 0; i < 300; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, T0 + AHEAD + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + AHEAD + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    push(d, AD_ASM_ROWS, 300, held_ts, w + 30);     /* 2 h ahead: held */
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    T_NOTE("before the save: windows %llu scored %llu calib %llu excluded %llu dq %llu untrusted %llu",
           (unsigned long long)st.windows, (unsigned long long)st.windows_scored,
           (unsigned long long)st.calib_windows, (unsigned long long)st.calib_excluded,
           (unsigned long long)st.windows_dq, (unsigned long long)st.windows_untrusted);
    T_CHECK(st.stream.rows == 300 && st.phase == AD_PHASE_DETECTING,
            "the row ahead is held (%llu rows, phase %d)", (unsigned long long)st.stream.rows,
            (int)st.phase);
    js = handover ? ad_detector_save_handover(d) : ad_detector_save(d);
    T_CHECK(js != NULL && strstr(js, "\"held\"") != NULL, "the state holds the held row");
    rc = js ? ad_detector_restore(d2, js, err, sizeof err) : -1;
    T_CHECK(rc == 0, "restore (%s)", rc ? err : "ok");
    ad_detector_arrival(d2, w + 400);
    ad_detector_advance(d2, w + 400);
    drain(d2, &s);
    /* the next row: after the held one (a real jump) or on the old cadence */
    push(d2, AD_ASM_ROWS, 301, jump ? held_ts + 1000 : T0 + 301 * 1000, w + 1030);
    drain(d2, &s);
    ad_detector_get_stats(d2, &st);
    T_NOTE("%s, %s: after the restore %llu rows taken, %llu dropped as ahead, %llu lost",
           handover ? "hand-over" : "plain save", jump ? "a real jump" : "a glitch",
           (unsigned long long)st.stream.rows, (unsigned long long)st.rows_ahead,
           (unsigned long long)st.held_lost);
    if (jump)
        T_CHECK(st.stream.rows == 2 && st.rows_ahead == 0, "the held row and the next taken "
                "(%llu rows, %llu ahead)", (unsigned long long)st.stream.rows,
                (unsigned long long)st.rows_ahead);
    else
        T_CHECK(st.stream.rows == 1 && st.rows_ahead == 1 && st.stream.future == 1,
                "the held row dropped as a glitch, counted (%llu rows, %llu ahead, future %llu)",
                (unsigned long long)st.stream.rows, (unsigned long long)st.rows_ahead,
                (unsigned long long)st.stream.future);
    free(js);
    ad_detector_free(d);
    ad_detector_free(d2);
    ad_model_free(m);
}
static void test_held_handover_jump(void) { held_across(1, 1); }
static void test_held_handover_glitch(void) { held_across(1, 0); }
static void test_held_save_jump(void) { held_across(0, 1); }

/* A held row whose state cannot be continued (a model changed while the
 * stream was stopped: the stream recalibrates from scratch, its last rows
 * are not continued) is counted in held_lost. */
static void test_held_lost(void)
{
    ad_model *m = t_zero_model(TW, F), *m2 = t_zero_model(TW, F);
    ad_detector *d = mk_cal(m), *d2;
    ad_detector_stats st;
    seen s = { 0 };
    char err[300], *js;
    int i, rc;

    snprintf(m2->id, sizeof m2->id, "%s", "0123456789abcdef");
    d2 = mk_cal(m2);
    for (i = 0; i < 300; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, T0 + AHEAD + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + AHEAD + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    push(d, AD_ASM_ROWS, 300, T0 + 300 * 1000 + AHEAD, T0 + 300 * 1000 + AHEAD + 30);
    js = ad_detector_save_handover(d);
    rc = js ? ad_detector_restore(d2, js, err, sizeof err) : 0;
    T_CHECK(rc != 0, "not restored: another model");
    ad_detector_restore_alert(d2, js, AD_CLOSE_RESTART);
    ad_detector_get_stats(d2, &st);
    T_NOTE("another model: held row lost %llu", (unsigned long long)st.held_lost);
    T_CHECK(st.held_lost == 1, "the held row counted as lost (%llu)",
            (unsigned long long)st.held_lost);
    free(js);
    ad_detector_free(d);
    ad_detector_free(d2);
    ad_model_free(m);
    ad_model_free(m2);
}

/* Rows reordered within rows.max_lateness_ms right after a real jump (a
 * device clock 2 h behind, fixed: every row after it 2 h later, arriving
 * on the usual cadence): the first row after the jump arrives after the
 * second, is held, and the one that follows it by less than
 * max_lateness_ms (the stream reorders such a row) confirms the jump
 * rather than refuting it: no row is dropped. */
static void test_reorder_after_jump(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    seen s = { 0 };
    ad_model *m = t_zero_model(TW, F);
    int i;

    ad_detector_cfg_default(&c);
    c.dq_enabled = 1;
    ad_dq_cfg_default(&c.dq);
    c.stream.mode = AD_ASM_ROWS;
    c.stream.period_ms = 1000;
    c.stream.max_lateness_ms = 2000;
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    for (i = 0; i < 400; i++) {
        int k = i == 300 ? 301 : i == 301 ? 300 : i;   /* 300 and 301 swapped */
        int64_t t = T0 + (int64_t)k * 1000 + (k >= 300 ? AHEAD : 0);
        push(d, AD_ASM_ROWS, k, t, T0 + AHEAD + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + AHEAD + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    ad_detector_advance(d, T0 + AHEAD + 400 * 1000 + 3000);   /* the reordered rows out */
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    T_NOTE("a real jump, its first two rows swapped (lateness 2 s): %llu rows of 400 kept, "
           "%llu dropped as ahead, %llu late", (unsigned long long)st.stream.rows,
           (unsigned long long)st.rows_ahead, (unsigned long long)st.stream.ooo);
    T_CHECK(st.rows_ahead == 0 && st.stream.rows == 400, "every row kept (%llu rows, %llu "
            "dropped as ahead)", (unsigned long long)st.stream.rows,
            (unsigned long long)st.rows_ahead);
    ad_detector_free(d);
    /* the same lateness, a clock glitching 9 minutes ahead every 50th row:
     * the next row is far more than max_lateness_ms behind the held one,
     * which is still dropped */
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    for (i = 0; i < 1000; i++) {
        int64_t t = T0 + (int64_t)i * 1000 + (i % 50 == 0 && i > 0 ? 540000 : 0);
        push(d, AD_ASM_ROWS, i, t, T0 + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("lateness 2 s, a glitching clock: %llu glitch rows dropped, %llu late",
           (unsigned long long)st.rows_ahead, (unsigned long long)st.stream.ooo);
    T_CHECK(st.rows_ahead == 19 && st.stream.ooo == 0, "the 19 glitching rows dropped, none "
            "late (%llu, %llu)", (unsigned long long)st.rows_ahead,
            (unsigned long long)st.stream.ooo);
    ad_detector_free(d);
    /* lateness 60 s, the largest limit: one row 61.5 s ahead, then rows
     * on the old cadence. The next row is within max_lateness_ms of the
     * held one, yet it continues the newest row: a glitch, dropped. Before,
     * it confirmed the "jump" and the wrong row was taken */
    c.stream.max_lateness_ms = 60000;
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    for (i = 0; i < 300; i++) {
        int64_t t = T0 + (int64_t)i * 1000 + (i == 150 ? 60500 : 0);
        push(d, AD_ASM_ROWS, i, t, T0 + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    ad_detector_advance(d, T0 + 300 * 1000 + 70000);    /* the reordered rows out */
    drain(d, &s);
    ad_detector_get_stats(d, &st);
    T_NOTE("lateness 60 s, one row 61.5 s ahead of the newest: %llu rows kept of 300, "
           "%llu dropped as ahead, %llu late", (unsigned long long)st.stream.rows,
           (unsigned long long)st.rows_ahead, (unsigned long long)st.stream.ooo);
    T_CHECK(st.rows_ahead == 1 && st.stream.rows == 299 && st.stream.ooo == 0,
            "the glitching row dropped, every other kept (%llu ahead, %llu rows, %llu late)",
            (unsigned long long)st.rows_ahead, (unsigned long long)st.stream.rows,
            (unsigned long long)st.stream.ooo);
    ad_detector_free(d);
    ad_model_free(m);
}

/* A device that sends only messages refused whole (malformed JSON, a bad
 * timestamp) after its last good row, rows.max_lateness_ms 5 s: the rows
 * waiting behind the watermark come out within the lateness, as when the
 * device is silent; the refused messages keep the stream alive (no
 * dropout) and are counted. Before, each one's arrival restarted the
 * stream's data clock: the last rows waited for as long as they came. */
static void test_refused_no_delay(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    ad_detector_stats st;
    char err[300];
    seen s = { 0 };
    ad_model *m = t_zero_model(TW, F);
    uint64_t before;
    int i;

    ad_detector_cfg_default(&c);
    c.dq_enabled = 1;
    ad_dq_cfg_default(&c.dq);
    c.stream.mode = AD_ASM_ROWS;
    c.stream.period_ms = 1000;
    c.stream.max_lateness_ms = 5000;
    if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
        T_CHECK(0, "new: %s", err);
    for (i = 0; i < 100; i++) {
        push(d, AD_ASM_ROWS, i, T0 + (int64_t)i * 1000, T0 + (int64_t)i * 1000 + 30);
        ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
        drain(d, &s);
    }
    ad_detector_get_stats(d, &st);
    before = st.stream.rows;
    for (i = 100; i < 160; i++) {       /* a minute of refused messages */
        int64_t w = T0 + (int64_t)i * 1000 + 30;
        ad_detector_arrival(d, w);
        ad_detector_push_malformed(d, w);
        ad_detector_advance(d, w + 470);
        drain(d, &s);
        if (i == 108) {
            ad_detector_get_stats(d, &st);
            T_NOTE("lateness 5 s: %llu of 100 rows out at the last row, %llu 8 s later",
                   (unsigned long long)before, (unsigned long long)st.stream.rows);
            T_CHECK(st.stream.rows == 100, "the rows behind the watermark out 8 s after the "
                    "last good row, refused messages coming (%llu of 100)",
                    (unsigned long long)st.stream.rows);
        }
    }
    ad_detector_get_stats(d, &st);
    T_NOTE("a minute of refused messages: %llu counted malformed, dropout raised %d",
           (unsigned long long)st.stream.malformed, s.dropout_raised);
    T_CHECK(st.stream.malformed == 60, "counted (%llu)", (unsigned long long)st.stream.malformed);
    T_CHECK(s.dropout_raised == 0, "the stream kept alive: no dropout (%d)", s.dropout_raised);
    ad_detector_free(d);
    ad_model_free(m);
}

/* PERIOD mode, rows.max_lateness_ms 2 s: after ten minutes of good rows, a
 * device sends for ten minutes only messages refused whole, values refused
 * ("nan" text) or samples of a clock stepped back 100 s (late), one a
 * second. It talks: no dropout, so the data-quality monitor flags nothing
 * then; the rows waiting behind the watermark come out, but no grid row
 * after the newest sample: held copies of its last values would be scored
 * unflagged (feeding threshold adaptation, calibration and learning, and
 * able to raise a model alert). A device silent for those ten minutes
 * gets its held rows flagged (dropout). Once such messages stop, the time
 * since the last one fills the rows as a silence does, flagged. Before,
 * the stream's data clock ran from the last sample taken: 600 held rows,
 * 600 windows scored, none flagged. */
static void test_refused_no_fill(void)
{
    static const char *const kind[] = { "refused whole", "values refused",
                                        "clock stepped back", "silent" };
    int k;

    for (k = 0; k < 4; k++) {
        ad_detector_cfg c;
        ad_detector *d = NULL;
        ad_detector_stats st;
        char err[300];
        seen s = { 0 };
        ad_model *m = t_zero_model(TW, F);
        uint64_t r0, w0, q0;
        int i, f;

        ad_detector_cfg_default(&c);
        c.dq_enabled = 1;
        ad_dq_cfg_default(&c.dq);
        c.stream.mode = AD_ASM_PERIOD;
        c.stream.period_ms = 1000;
        c.stream.max_lateness_ms = 2000;
        if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
            T_CHECK(0, "new: %s", err);
        for (i = 0; i < 600; i++) {
            push(d, AD_ASM_PERIOD, i, T0 + (int64_t)i * 1000, T0 + (int64_t)i * 1000 + 30);
            ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
            drain(d, &s);
        }
        ad_detector_get_stats(d, &st);
        r0 = st.stream.rows;
        w0 = st.windows_scored;
        q0 = st.windows_dq;
        for (i = 600; i < 1200; i++) {
            int64_t w = T0 + (int64_t)i * 1000 + 30;
            if (k != 3)
                ad_detector_arrival(d, w);
            if (k == 0)
                ad_detector_push_malformed(d, w);
            for (f = 0; f < F && (k == 1 || k == 2); f++) {
                if (k == 1)
                    ad_detector_push_refused(d, w, f, 1);
                else
                    ad_detector_push_sample(d, T0 + (int64_t)(i - 700) * 1000, f, 1.0);
            }
            ad_detector_advance(d, w + 470);
            drain(d, &s);
        }
        ad_detector_get_stats(d, &st);
        T_NOTE("%s for 600 s: rows +%llu, windows scored +%llu (flagged +%llu), dropout %d",
               kind[k], (unsigned long long)(st.stream.rows - r0),
               (unsigned long long)(st.windows_scored - w0),
               (unsigned long long)(st.windows_dq - q0), s.dropout_raised);
        if (k < 3) {
            T_CHECK(st.stream.rows - r0 <= 3, "%s: only the rows behind the watermark "
                    "come out (+%llu)", kind[k], (unsigned long long)(st.stream.rows - r0));
            T_CHECK(st.windows_scored - w0 - (st.windows_dq - q0) <= 3,
                    "%s: no held row scored unflagged (+%llu scored, %llu flagged)", kind[k],
                    (unsigned long long)(st.windows_scored - w0),
                    (unsigned long long)(st.windows_dq - q0));
            T_CHECK(s.dropout_raised == 0, "%s: the stream kept alive: no dropout (%d)",
                    kind[k], s.dropout_raised);
            /* then silence: held rows from the last message on, flagged */
            r0 = st.stream.rows;
            w0 = st.windows_scored;
            q0 = st.windows_dq;
            for (i = 1200; i < 1300; i++) {
                ad_detector_advance(d, T0 + (int64_t)i * 1000 + 500);
                drain(d, &s);
            }
            ad_detector_get_stats(d, &st);
            T_NOTE("%s, then 100 s silent: rows +%llu, windows scored +%llu (flagged +%llu)",
                   kind[k], (unsigned long long)(st.stream.rows - r0),
                   (unsigned long long)(st.windows_scored - w0),
                   (unsigned long long)(st.windows_dq - q0));
            T_CHECK(st.stream.rows - r0 >= 64 && s.dropout_raised == 1 &&
                    st.windows_scored - w0 - (st.windows_dq - q0) <= 8,
                    "%s, then silent: held rows, flagged as a silence's (rows +%llu, "
                    "scored +%llu, flagged +%llu, dropout %d)", kind[k],
                    (unsigned long long)(st.stream.rows - r0),
                    (unsigned long long)(st.windows_scored - w0),
                    (unsigned long long)(st.windows_dq - q0), s.dropout_raised);
        } else {
            T_CHECK(st.windows_scored - w0 - (st.windows_dq - q0) <= 8 && s.dropout_raised == 1,
                    "silent: the held rows flagged (+%llu scored, %llu flagged, dropout %d)",
                    (unsigned long long)(st.windows_scored - w0),
                    (unsigned long long)(st.windows_dq - q0), s.dropout_raised);
        }
        ad_detector_free(d);
        ad_model_free(m);
    }
}

/* PERIOD mode, a device sending a row every 10 s: after 300 good rows, ten
 * minutes of messages refused whole (or of values all refused), one a
 * period (under rows.max_gap_ms; too few for the rejected check to raise;
 * longer than the dropout limit, max(5 periods, 5 s)), then good rows
 * again. The stream had nothing of those ten minutes: the rows the hole is
 * filled with when the data comes back (held copies of the last values
 * taken) are made up: flagged, as a silence of that length has its held
 * rows flagged (dropout), so they never feed calibration, threshold
 * adaptation or learning, nor raise a model alert. Before, 60 held rows
 * came out unflagged: scored and learned from as if real. A refused-only
 * stretch under the dropout limit (30 s) is filled as a short silence is:
 * held rows, not flagged. */
static void test_refused_hole_filled(void)
{
    static const char *const kind[] = { "refused whole", "values refused" };
    static const int secs[] = { 60, 3 };   /* messages refused, 10 s apart */
    const int64_t P = 10000;
    int k, h;

    for (h = 0; h < 2; h++)
        for (k = 0; k < 2; k++) {
            ad_detector_cfg c;
            ad_detector *d = NULL;
            ad_detector_stats st;
            char err[300];
            seen s = { 0 };
            ad_model *m = t_zero_model(TW, F);
            uint64_t r0, w0, q0, rows, scored, flagged;
            int i, f, n = secs[h];

            ad_detector_cfg_default(&c);
            c.dq_enabled = 1;
            ad_dq_cfg_default(&c.dq);
            c.stream.mode = AD_ASM_PERIOD;
            c.stream.period_ms = P;
            c.stream.max_lateness_ms = 2000;
            if (ad_detector_new(&d, &c, "dev", m, 0, 0, NULL, err, sizeof err) != 0)
                T_CHECK(0, "new: %s", err);
            for (i = 0; i < 300; i++) {
                push(d, AD_ASM_PERIOD, i, T0 + (int64_t)i * P, T0 + (int64_t)i * P + 30);
                ad_detector_advance(d, T0 + (int64_t)i * P + 5000);
                drain(d, &s);
            }
            ad_detector_get_stats(d, &st);
            r0 = st.stream.rows;
            w0 = st.windows_scored;
            q0 = st.windows_dq;
            for (i = 300; i < 300 + n; i++) {
                int64_t w = T0 + (int64_t)i * P + 30;
                ad_detector_arrival(d, w);
                if (k == 0)
                    ad_detector_push_malformed(d, w);
                for (f = 0; f < F && k == 1; f++)
                    ad_detector_push_refused(d, w, f, 1);
                ad_detector_advance(d, w + 4970);
                drain(d, &s);
            }
            for (i = 300 + n; i < 400 + n; i++) {
                push(d, AD_ASM_PERIOD, i, T0 + (int64_t)i * P, T0 + (int64_t)i * P + 30);
                ad_detector_advance(d, T0 + (int64_t)i * P + 5000);
                drain(d, &s);
            }
            ad_detector_get_stats(d, &st);
            rows = st.stream.rows - r0;
            scored = st.windows_scored - w0;
            flagged = st.windows_dq - q0;
            T_NOTE("%s for %d periods, then 100 good rows: rows +%llu, windows scored +%llu "
                   "(flagged +%llu)", kind[k], n, (unsigned long long)rows,
                   (unsigned long long)scored, (unsigned long long)flagged);
            if (h == 0)
                T_CHECK(scored - flagged <= 100,
                        "%s for %d periods: the made-up rows of the hole (%llu rows in all) not "
                        "scored unflagged (+%llu scored, %llu flagged; want at most the "
                        "100 good rows' windows unflagged)", kind[k], n,
                        (unsigned long long)rows, (unsigned long long)scored,
                        (unsigned long long)flagged);
            else
                T_CHECK(rows >= 100 + (uint64_t)n - 1 && flagged == 0,
                        "%s for %d periods: filled as a short silence (+%llu rows, %llu flagged)",
                        kind[k], n, (unsigned long long)rows, (unsigned long long)flagged);
            ad_detector_free(d);
            ad_model_free(m);
        }
}

int main(void)
{
    T_RUN(test_glitch_rows_arrival);
    T_RUN(test_real_jumps);
    T_RUN(test_glitch_rows_replay);
    T_RUN(test_glitch_period_arrival);
    T_RUN(test_glitch_all_arrival);
    T_RUN(test_step_back);
    T_RUN(test_jitter_and_redelivery);
    T_RUN(test_silence_after_redelivery);
    T_RUN(test_slow_step_back);
    T_RUN(test_slow_step_back_minute);
    T_RUN(test_slow_step_back_period);
    T_RUN(test_slow_step_back_all);
    T_RUN(test_slow_redelivery);
    T_RUN(test_held_handover_jump);
    T_RUN(test_held_handover_glitch);
    T_RUN(test_held_save_jump);
    T_RUN(test_held_lost);
    T_RUN(test_reorder_after_jump);
    T_RUN(test_refused_no_delay);
    T_RUN(test_refused_no_fill);
    T_RUN(test_refused_hole_filled);
    return t_done();
}
