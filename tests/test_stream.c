/*
 * test_stream.c - row assembly policies (rows, period sample-and-hold, all
 * features reported), missing values (hold with limit, invalid), max age,
 * duplicate/out-of-order/NaN/non-numeric rejection, and the window ring
 * (hop, invalid rows, time order, scaling); every feature count through a
 * queue overflow in each mode (one-block layout of a stream); rows one push
 * completes beyond the queue held back, not lost, and what overflows when
 * the caller does not take them; a stream resumed after a restored one's
 * last row refuses what comes at or before it.
 */
#include <stdint.h>
#include <math.h>

#include "t.h"
#include "ad.h"
#include "stream.h"
#include "window.h"
#include "model.h"

static ad_stream *mk(ad_asm_mode mode, int64_t period, int64_t max_age,
                     ad_miss_policy pol, int hold, int F)
{
    ad_stream_cfg c;
    ad_stream *s = NULL;
    char err[200];

    ad_stream_cfg_default(&c);
    c.mode = mode;
    c.period_ms = period;
    c.max_age_ms = max_age;
    c.missing = pol;
    c.hold_limit = hold;
    if (ad_stream_new(&s, &c, F, err, sizeof(err)) != 0)
        fprintf(stderr, "ad_stream_new: %s\n", err);
    return s;
}

static void test_rows_mode_dup_ooo_nan(void)
{
    ad_stream *s = mk(AD_ASM_ROWS, 1000, 0, AD_MISS_INVALID, 0, 2);
    double r1[2] = { 1, 2 }, r2[2] = { 3, NAN }, r3[2] = { 5, 6 };
    float v[2];
    int64_t ts;
    int valid, n = 0;
    ad_stream_stats st;

    T_CHECK(ad_stream_push_row(s, 1000, r1, NULL) == 0, "first row accepted");
    T_CHECK(ad_stream_push_row(s, 1000, r3, NULL) == 1, "duplicate ts dropped");
    T_CHECK(ad_stream_push_row(s, 500, r3, NULL) == 1, "older ts dropped");
    T_CHECK(ad_stream_push_row(s, 2000, r2, NULL) == 0, "row with NaN accepted (value rejected)");
    T_CHECK(ad_stream_push_row(s, 3000, r3, NULL) == 0, "third row");
    T_CHECK(ad_stream_push_sample(s, 4000, 0, 1.0) == AD_EINVAL, "samples refused in rows mode");
    while (ad_stream_pop_row(s, v, &ts, &valid)) {
        n++;
        if (ts == 1000)
            T_CHECK(valid && v[0] == 1 && v[1] == 2, "row 1 values %g %g", v[0], v[1]);
        if (ts == 2000)
            T_CHECK(!valid && v[0] == 3 && isnan(v[1]), "NaN row invalid under policy invalid");
        if (ts == 3000)
            T_CHECK(valid && v[0] == 5, "row 3 valid");
    }
    T_CHECK(n == 3, "3 rows emitted, got %d", n);
    ad_stream_get_stats(s, &st);
    T_CHECK(st.dup == 1 && st.ooo == 1 && st.nonfinite == 1 && st.rows_invalid == 1,
            "counters dup=%llu ooo=%llu nonfinite=%llu invalid=%llu",
            (unsigned long long)st.dup, (unsigned long long)st.ooo,
            (unsigned long long)st.nonfinite, (unsigned long long)st.rows_invalid);
    ad_stream_free(s);
}

/* Units: a row refused for its time counts once in dup/ooo/future and
 * carries its values into *_values, so that values pushed = samples + the
 * refused values in every mode (the daemon's samples and dropped_samples
 * count values). */
static void test_refused_values(void)
{
    ad_asm_mode modes[3] = { AD_ASM_ROWS, AD_ASM_PERIOD, AD_ASM_ALL };

    for (int m = 0; m < 3; m++) {
        ad_stream *s = mk(modes[m], 1000, 0, AD_MISS_HOLD, 0, 5);
        double r[5] = { 1, 2, 3, 4, 5 };
        unsigned char three[5] = { 1, 1, 1, 0, 0 };
        int64_t t0 = 1800000000000LL;
        uint64_t pushed = 0;
        ad_stream_stats st;

        for (int t = 0; t < 20; t++) {
            ad_stream_arrival(s, t0 + t * 1000);
            ad_stream_push_row(s, t0 + t * 1000, r, NULL);
            pushed += 5;
        }
        ad_stream_push_row(s, t0 + 25 * 1000, r, NULL);   /* emits the rows before it */
        pushed += 5;
        for (int t = 0; t < 10; t++) {                     /* ten late rows */
            ad_stream_push_row(s, t0 + t * 1000 + 500, r, NULL);
            pushed += 5;
        }
        ad_stream_push_row(s, t0 + 5 * 1000, r, three);    /* 3 values, late */
        ad_stream_push_row(s, t0 + 3600 * 1000, r, NULL);  /* future */
        pushed += 3 + 5;
        ad_stream_get_stats(s, &st);
        T_NOTE("%s: samples %llu, ooo %llu (%llu values), dup %llu (%llu), future %llu (%llu)",
               ad_asm_mode_name(modes[m]), (unsigned long long)st.samples,
               (unsigned long long)st.ooo, (unsigned long long)st.ooo_values,
               (unsigned long long)st.dup, (unsigned long long)st.dup_values,
               (unsigned long long)st.future, (unsigned long long)st.future_values);
        T_CHECK(st.ooo_values == 53 && st.future_values == 5,
                "%s: the late and future rows' values: %llu of 53, %llu of 5",
                ad_asm_mode_name(modes[m]), (unsigned long long)st.ooo_values,
                (unsigned long long)st.future_values);
        if (modes[m] == AD_ASM_ROWS)
            T_CHECK(st.ooo == 11 && st.future == 1, "rows: 11 late rows (%llu), 1 future (%llu)",
                    (unsigned long long)st.ooo, (unsigned long long)st.future);
        else
            T_CHECK(st.ooo == st.ooo_values && st.future == st.future_values &&
                    st.dup == st.dup_values, "%s: a refusal is one sample",
                    ad_asm_mode_name(modes[m]));
        T_CHECK(st.samples + ad_stream_values_refused(&st) == pushed,
                "%s: samples %llu + refused %llu = pushed %llu", ad_asm_mode_name(modes[m]),
                (unsigned long long)st.samples,
                (unsigned long long)ad_stream_values_refused(&st), (unsigned long long)pushed);
        ad_stream_free(s);
    }
}

static void test_rows_mode_hold_limit(void)
{
    ad_stream *s = mk(AD_ASM_ROWS, 1000, 0, AD_MISS_HOLD, 2, 2);
    double r[2];
    unsigned char pres[2] = { 1, 0 };
    float v[2];
    int64_t ts;
    int valid, i, valids[5];

    r[0] = 1; r[1] = 10;
    ad_stream_push_row(s, 0, r, NULL);
    for (i = 1; i <= 4; i++) {
        r[0] = i + 1;
        ad_stream_push_row(s, i * 1000, r, pres);   /* feature 1 missing */
    }
    i = 0;
    while (ad_stream_pop_row(s, v, &ts, &valid)) {
        valids[i] = valid;
        if (ts == 1000 || ts == 2000)
            T_CHECK(v[1] == 10, "held value %g at %lld", v[1], (long long)ts);
        i++;
    }
    T_CHECK(i == 5, "5 rows");
    T_CHECK(valids[0] && valids[1] && valids[2] && !valids[3] && !valids[4],
            "hold limit 2: rows valid %d %d %d %d %d", valids[0], valids[1], valids[2],
            valids[3], valids[4]);
    ad_stream_free(s);
}

static void test_period_sample_and_hold(void)
{
    /* Two features, period 1 s, samples at odd times. */
    ad_stream *s = mk(AD_ASM_PERIOD, 1000, 0, AD_MISS_INVALID, 0, 2);
    float v[2];
    int64_t ts;
    int valid, n = 0;
    ad_stream_stats st;

    ad_stream_push_sample(s, 1000, 0, 1.0);   /* grid starts at 1000 */
    ad_stream_push_sample(s, 1200, 1, 2.0);
    ad_stream_push_sample(s, 1900, 0, 3.0);   /* row 1000 due (ts>1000) */
    T_CHECK(ad_stream_pending(s) == 1, "one row after a sample past the grid point, got %d",
            ad_stream_pending(s));
    T_CHECK(ad_stream_pop_row(s, v, &ts, &valid) == 1, "pop");
    /* At 1000 only feature 0 had reported: invalid under policy invalid. */
    T_CHECK(ts == 1000 && !valid, "row 1000 invalid (feature 1 unseen), ts=%lld valid=%d",
            (long long)ts, valid);
    ad_stream_push_sample(s, 2500, 1, 4.0);   /* row 2000 due: f0=3 (1900), f1=2 (1200) */
    T_CHECK(ad_stream_pop_row(s, v, &ts, &valid) == 1 && ts == 2000 && valid &&
            v[0] == 3 && v[1] == 2, "row 2000 = latest values 3,2 (got %g,%g valid %d)",
            v[0], v[1], valid);
    ad_stream_push_sample(s, 2400, 0, 9.0);   /* grid 2000 out already, but f0 last 1900 < 2400: ok */
    ad_stream_push_sample(s, 1500, 0, 9.0);   /* older than the emitted row: dropped */
    ad_stream_advance(s, 5001);               /* timer: rows 3000, 4000, 5000 */
    while (ad_stream_pop_row(s, v, &ts, &valid)) {
        n++;
        T_CHECK(valid && v[0] == 9 && v[1] == 4, "held row %lld = 9,4 (got %g,%g)",
                (long long)ts, v[0], v[1]);
    }
    T_CHECK(n == 3, "advance emitted 3 rows, got %d", n);
    ad_stream_get_stats(s, &st);
    T_CHECK(st.ooo == 1, "late sample counted ooo=%llu", (unsigned long long)st.ooo);
    ad_stream_free(s);
}

static void test_period_max_age(void)
{
    /* max age 1500 ms: a feature silent longer is missing. */
    ad_stream *hold = mk(AD_ASM_PERIOD, 1000, 1500, AD_MISS_HOLD, 1, 1);
    ad_stream *inv = mk(AD_ASM_PERIOD, 1000, 1500, AD_MISS_INVALID, 0, 1);
    ad_stream *both[2] = { hold, inv };
    int b, valid, vals[8], n;
    float v[1];
    int64_t ts;

    for (b = 0; b < 2; b++) {
        ad_stream_push_sample(both[b], 0, 0, 5.0);
        ad_stream_advance(both[b], 4001);     /* rows 0, 1000, 2000, 3000, 4000 */
        n = 0;
        while (ad_stream_pop_row(both[b], v, &ts, &valid) && n < 8)
            vals[n++] = valid;
        T_CHECK(n == 5, "5 rows, got %d", n);
        /* ages: 0, 1000 fresh; 2000 (2000 > 1500) missing; ... */
        if (b == 0)
            T_CHECK(vals[0] && vals[1] && vals[2] && !vals[3] && !vals[4],
                    "hold limit 1 after max age: %d %d %d %d %d", vals[0], vals[1], vals[2],
                    vals[3], vals[4]);
        else
            T_CHECK(vals[0] && vals[1] && !vals[2] && !vals[3] && !vals[4],
                    "invalid after max age: %d %d %d %d %d", vals[0], vals[1], vals[2],
                    vals[3], vals[4]);
    }
    ad_stream_free(hold);
    ad_stream_free(inv);
}

static void test_all_mode(void)
{
    ad_stream *s = mk(AD_ASM_ALL, 1000, 0, AD_MISS_INVALID, 0, 3);
    float v[3];
    int64_t ts;
    int valid;
    ad_stream_stats st;

    /* Features of one reading cycle stamped a few ms apart join one row. */
    ad_stream_push_sample(s, 10, 0, 1);
    ad_stream_push_sample(s, 20, 1, 2);
    T_CHECK(ad_stream_pending(s) == 0, "no row before all reported");
    ad_stream_push_sample(s, 30, 2, 3);
    T_CHECK(ad_stream_pop_row(s, v, &ts, &valid) == 1 && ts == 30 && valid &&
            v[0] == 1 && v[1] == 2 && v[2] == 3, "row at its newest sample: %g %g %g ts %lld",
            v[0], v[1], v[2], (long long)ts);
    T_CHECK(ad_stream_push_text(s, 40, 0, "abc") == 1, "non-numeric rejected");
    T_CHECK(ad_stream_push_text(s, 1040, 0, " 4.5 ") == 0, "numeric text accepted");
    T_CHECK(ad_stream_push_sample(s, 1041, 1, INFINITY) == 1, "Inf rejected");
    T_CHECK(ad_stream_push_sample(s, 1041, 7, 1.0) == 1, "bad feature index rejected");
    T_CHECK(ad_stream_push_sample(s, 1040, 0, 1.0) == 1, "duplicate per feature rejected");
    T_CHECK(ad_stream_push_sample(s, 30, 1, 1.0) == 1, "sample of an emitted row rejected");
    ad_stream_get_stats(s, &st);
    T_CHECK(st.nonnumeric == 1 && st.nonfinite == 1 && st.bad_feature == 1 && st.dup == 1 &&
            st.ooo == 1, "counters nonnumeric %llu nonfinite %llu bad %llu dup %llu late %llu",
            (unsigned long long)st.nonnumeric, (unsigned long long)st.nonfinite,
            (unsigned long long)st.bad_feature, (unsigned long long)st.dup,
            (unsigned long long)st.ooo);
    ad_stream_free(s);
}

/* One feature reports one row late: every row must still pair values of
 * the same instant, never f0(t+1) with f1(t). Without lateness the late
 * values are counted and their rows invalid; with max_lateness_ms of a row
 * they are all joined. */
static void test_all_mode_aligns_by_time(void)
{
    int64_t lat[2] = { 0, 1500 };
    int k;

    for (k = 0; k < 2; k++) {
        ad_stream_cfg c;
        ad_stream *s = NULL;
        char err[200];
        float v[2];
        int64_t ts;
        int valid, t, rows = 0, wrong = 0, invalid = 0;
        ad_stream_stats st;

        ad_stream_cfg_default(&c);
        c.mode = AD_ASM_ALL;
        c.missing = AD_MISS_INVALID;
        c.max_lateness_ms = lat[k];
        ad_stream_new(&s, &c, 2, err, sizeof err);
        for (t = 0; t < 50; t++) {
            ad_stream_push_sample(s, t * 1000, 0, t);                        /* f0(t) */
            if (t > 0)
                ad_stream_push_sample(s, (t - 1) * 1000, 1, 100 + (t - 1));  /* f1(t-1) */
            while (ad_stream_pop_row(s, v, &ts, &valid)) {
                rows++;
                if (!valid) { invalid++; continue; }
                if (v[1] != 100 + v[0] || ts != (int64_t)v[0] * 1000)
                    wrong++;
            }
        }
        ad_stream_get_stats(s, &st);
        T_CHECK(wrong == 0, "lateness %lld: rows pair values of the same time (%d of %d wrong)",
                (long long)lat[k], wrong, rows);
        if (lat[k] == 0)
            T_CHECK(invalid == rows && rows >= 48 && st.unaligned == (uint64_t)rows &&
                    st.ooo >= 48, "no lateness: %d rows invalid, unaligned %llu, late %llu",
                    invalid, (unsigned long long)st.unaligned, (unsigned long long)st.ooo);
        else
            T_CHECK(rows >= 48 && invalid == 0 && st.ooo == 0,
                    "lateness 1.5 s: %d rows, all valid (%d invalid, late %llu)", rows, invalid,
                    (unsigned long long)st.ooo);
        ad_stream_free(s);
    }
}

/* One sample stamped far in the future must not silence the stream. */
static void test_future_timestamp(void)
{
    ad_asm_mode modes[3] = { AD_ASM_ROWS, AD_ASM_PERIOD, AD_ASM_ALL };
    int m;

    for (m = 0; m < 3; m++) {
        ad_stream *s = mk(modes[m], 1000, 0, AD_MISS_HOLD, 0, 1);
        ad_stream_stats st;
        float v[1];
        int64_t ts, t0 = 1800000000000LL;
        int valid, t, rows = 0;
        double x;

        for (t = 0; t < 100; t++) {
            ad_stream_arrival(s, t0 + t * 1000 + 20);
            x = t;
            if (t == 10) {
                double bad = 5;
                ad_stream_push_row(s, (int64_t)1e15, &bad, NULL);
                ad_stream_push_row(s, t0 + 2 * 86400000LL, &bad, NULL);
            }
            ad_stream_push_row(s, t0 + t * 1000, &x, NULL);
            ad_stream_advance(s, t0 + t * 1000 + 30);
            while (ad_stream_pop_row(s, v, &ts, &valid))
                rows++;
        }
        ad_stream_get_stats(s, &st);
        T_CHECK(st.future == 2 && rows >= 98,
                "%s: future samples rejected (%llu), later rows kept (%d of 100)",
                ad_asm_mode_name(modes[m]), (unsigned long long)st.future, rows);
        ad_stream_free(s);
    }
}

/* PERIOD in the device's clock: a device 2.5 s behind the daemon, or
 * sending historic timestamps, loses nothing when the timer ticks. */
static void test_period_device_clock(void)
{
    int64_t skews[2] = { -2500, -86400000LL * 30 };
    int k;

    for (k = 0; k < 2; k++) {
        ad_stream *s = mk(AD_ASM_PERIOD, 100, 0, AD_MISS_HOLD, 0, 2);
        ad_stream_stats st;
        float v[2];
        int64_t ts, wall0 = 1800000000000LL;
        int valid, t, rows = 0, wrong = 0;

        for (t = 0; t < 1000; t++) {
            int64_t wall = wall0 + t * 100, dev = wall + skews[k];
            ad_stream_arrival(s, wall);
            ad_stream_push_sample(s, dev, 0, t);
            ad_stream_push_sample(s, dev, 1, -t);
            if (t % 3 == 0)
                ad_stream_advance(s, wall + 50);    /* timer between messages */
            while (ad_stream_pop_row(s, v, &ts, &valid)) {
                rows++;
                if (v[0] != -v[1])
                    wrong++;
            }
        }
        ad_stream_get_stats(s, &st);
        T_CHECK(st.ooo == 0 && rows >= 998 && wrong == 0,
                "device clock %+lld ms: late %llu, rows %d, mixed %d", (long long)skews[k],
                (unsigned long long)st.ooo, rows, wrong);
        ad_stream_free(s);
    }
}

/* Lateness: rows arriving out of order within max_lateness_ms are put back
 * in order; older ones are late. */
static void test_rows_lateness(void)
{
    ad_stream_cfg c;
    ad_stream *s = NULL;
    char err[200];
    int64_t order[8] = { 1000, 3000, 2000, 4000, 6000, 5000, 7000, 1500 };
    int64_t ts, prev = 0;
    double x;
    float v[1];
    int i, valid, rows = 0, sorted = 1;
    ad_stream_stats st;

    ad_stream_cfg_default(&c);
    c.max_lateness_ms = 1500;
    T_CHECK(ad_stream_new(&s, &c, 1, err, sizeof err) == 0, "new: %s", err);
    for (i = 0; i < 8; i++) {
        x = (double)order[i];
        ad_stream_push_row(s, order[i], &x, NULL);
    }
    ad_stream_advance(s, 100000);       /* idle: flush */
    while (ad_stream_pop_row(s, v, &ts, &valid)) {
        if (ts <= prev || v[0] != (float)ts)
            sorted = 0;
        prev = ts;
        rows++;
    }
    ad_stream_get_stats(s, &st);
    T_CHECK(sorted && rows == 7 && st.ooo == 1, "7 rows in time order, 1 late: rows %d late %llu",
            rows, (unsigned long long)st.ooo);
    ad_stream_free(s);
}

/* A hole longer than max_gap_ms: the next row is flagged, PERIOD does not
 * fill the hole with held rows. */
static void test_gap_flag(void)
{
    ad_stream_cfg c;
    ad_stream *s = NULL;
    char err[200];
    double x = 1, row[1];
    int64_t ts;
    unsigned fl;
    int gaps = 0, rows = 0;
    ad_stream_stats st;

    ad_stream_cfg_default(&c);
    c.max_gap_ms = 60000;
    ad_stream_new(&s, &c, 1, err, sizeof err);
    ad_stream_push_row(s, 1000, &x, NULL);
    ad_stream_push_row(s, 2000, &x, NULL);
    ad_stream_push_row(s, 2000 + 6 * 3600000LL, &x, NULL);
    while (ad_stream_pop_row_d(s, row, &ts, &fl))
        gaps += (fl & AD_ROW_GAP) != 0;
    T_CHECK(gaps == 1, "rows: a 6 h hole flags the row after it (%d)", gaps);
    ad_stream_free(s);

    c.mode = AD_ASM_PERIOD;
    c.period_ms = 1000;
    ad_stream_new(&s, &c, 1, err, sizeof err);
    ad_stream_push_sample(s, 0, 0, 1.0);
    ad_stream_push_sample(s, 1000, 0, 2.0);
    ad_stream_advance(s, 30000);            /* silence shorter than the gap: held rows */
    ad_stream_advance(s, 10 * 3600000LL);   /* much longer: no held rows past the gap */
    ad_stream_push_sample(s, 6 * 3600000LL, 0, 3.0);
    ad_stream_push_sample(s, 6 * 3600000LL + 1000, 0, 4.0);
    gaps = 0;
    while (ad_stream_pop_row_d(s, row, &ts, &fl)) {
        rows++;
        gaps += (fl & AD_ROW_GAP) != 0;
    }
    ad_stream_get_stats(s, &st);
    T_CHECK(gaps == 1 && rows <= 64 && st.gaps == 1,
            "period: hole skipped (rows %d, gap rows %llu), one row flagged (%d)", rows,
            (unsigned long long)st.gap_rows, gaps);
    ad_stream_free(s);
}

/* max_gap_intervals: a hole restarts the windows only when it is also
 * longer than that many usual intervals (the median of the last 31). */
static int count_gaps(ad_stream *s)
{
    double row[1];
    int64_t ts;
    unsigned fl;
    int gaps = 0;

    while (ad_stream_pop_row_d(s, row, &ts, &fl))
        gaps += (fl & AD_ROW_GAP) != 0;
    return gaps;
}

static void test_gap_relative(void)
{
    const int64_t H = 3600000LL, DAY = 24 * H;
    ad_stream_cfg c;
    ad_stream *s = NULL;
    char err[200];
    double x = 1;
    int64_t t = 0;
    int i, g;

    ad_stream_cfg_default(&c);
    T_CHECK(c.max_gap_intervals == 5 && c.max_gap_ms == H, "defaults: an hour and 5 intervals");
    /* hourly rows, a missed sample every 10th (a 2 h interval) and one
     * 3 h hole: none restarts; a 6 h hole does (> 5 h) */
    ad_stream_new(&s, &c, 1, err, sizeof err);
    for (i = 0; i < 100; i++) {
        t += (i % 10 == 9) ? 2 * H : i == 50 ? 3 * H : H;
        ad_stream_push_row(s, t, &x, NULL);
    }
    g = count_gaps(s);
    T_CHECK(g == 0, "hourly rows with 2 h and 3 h holes: no restart (%d)", g);
    ad_stream_push_row(s, t += 6 * H, &x, NULL);
    g = count_gaps(s);
    T_CHECK(g == 1 && ad_stream_usual_interval(s) == H, "a 6 h hole restarts (%d), usual %lld ms",
            g, (long long)ad_stream_usual_interval(s));
    ad_stream_free(s);
    /* daily rows: none restarts; at the absolute hour alone every one does */
    for (int k = 0; k < 2; k++) {
        c.max_gap_intervals = k ? 0 : 5;
        ad_stream_new(&s, &c, 1, err, sizeof err);
        for (i = 0, t = 0; i < 40; i++)
            ad_stream_push_row(s, t += DAY, &x, NULL);
        g = count_gaps(s);
        T_CHECK(g == (k ? 39 : 1), "daily rows, max_gap_intervals %g: %d restarts (the first "
                "interval judged by the hour alone)",
                c.max_gap_intervals, g);
        ad_stream_free(s);
    }
    /* a restored window's spacing stands in before the stream has its own */
    c.max_gap_intervals = 5;
    ad_stream_new(&s, &c, 1, err, sizeof err);
    ad_stream_hint_interval(s, DAY);
    ad_stream_push_row(s, 0, &x, NULL);
    ad_stream_push_row(s, 3 * DAY, &x, NULL);       /* judged by the hint: no hole */
    ad_stream_push_row(s, 4 * DAY, &x, NULL);
    ad_stream_push_row(s, 5 * DAY, &x, NULL);       /* usual: 3 d, 1 d -> 1 d (lower median) */
    ad_stream_push_row(s, 11 * DAY, &x, NULL);      /* 6 d > 5 x 1 d */
    g = count_gaps(s);
    T_CHECK(g == 1, "hint a day: a 3-day interval is no hole, then 6 days is (%d)", g);
    ad_stream_free(s);
    c.max_gap_intervals = -1;
    T_CHECK(ad_stream_cfg_check(&c, err, sizeof err) != 0 && strstr(err, "max_gap_intervals"),
            "max_gap_intervals -1 refused: %s", err);
    c.max_gap_intervals = NAN;
    T_CHECK(ad_stream_cfg_check(&c, err, sizeof err) != 0, "max_gap_intervals NaN refused");
}

/* Values keep double precision until scaling. */
static void test_double_precision(void)
{
    ad_stream *s = mk(AD_ASM_ROWS, 1000, 0, AD_MISS_HOLD, 0, 2);
    double in[2] = { 101325.37, 1e6 + 0.0123 }, out[2];
    int64_t ts;
    unsigned fl;

    ad_stream_push_row(s, 1, in, NULL);
    T_CHECK(ad_stream_pop_row_d(s, out, &ts, &fl) == 1 && out[0] == in[0] && out[1] == in[1] &&
            (fl & AD_ROW_VALID), "values exact in double: %.6f %.6f", out[0], out[1]);
    ad_stream_free(s);
}

static void test_period_gap_and_overflow(void)
{
    ad_stream *s = mk(AD_ASM_PERIOD, 10, 0, AD_MISS_HOLD, 0, 1);
    ad_stream_stats st;

    ad_stream_push_sample(s, 0, 0, 1.0);
    ad_stream_push_sample(s, 10000, 0, 2.0);   /* 1000 grid rows in the gap */
    ad_stream_get_stats(s, &st);
    T_CHECK(ad_stream_pending(s) == AD_STREAM_HELD_RUN && st.overflow == 0,
            "held rows bounded: %d (overflow %llu)", ad_stream_pending(s),
            (unsigned long long)st.overflow);
    T_CHECK(st.gap_rows == 1000 - AD_STREAM_HELD_RUN, "gap rows counted %llu",
            (unsigned long long)st.gap_rows);
    ad_stream_free(s);
}

static void test_window_ring_hop(void)
{
    ad_window *w = NULL;
    float row[2], out[6];
    int i, due[8];
    int64_t t0, t1;

    T_CHECK(ad_window_new(&w, 3, 2, 2) == 0, "new");
    for (i = 0; i < 8; i++) {
        row[0] = (float)i;
        row[1] = (float)(10 * i);
        due[i] = ad_window_push(w, i * 100, row, i != 5);
    }
    /* T=3 hop=2: due after rows 2, 4, 6 */
    T_CHECK(!due[0] && !due[1] && due[2] && !due[3] && due[4] && !due[5] && due[6] && !due[7],
            "hop pattern %d%d%d%d%d%d%d%d", due[0], due[1], due[2], due[3], due[4], due[5],
            due[6], due[7]);
    T_CHECK(ad_window_invalid(w) == 1, "row 5 invalid inside window (rows 5,6,7)");
    T_CHECK(ad_window_extract(w, NULL, out, &t0, &t1) == 0, "extract");
    T_CHECK(out[0] == 5 && out[2] == 6 && out[4] == 7 && out[5] == 70,
            "time order oldest first: %g %g %g", out[0], out[2], out[4]);
    T_CHECK(t0 == 500 && t1 == 700, "timestamps %lld..%lld", (long long)t0, (long long)t1);
    row[0] = 8;
    ad_window_push(w, 800, row, 1);
    row[0] = 9;
    ad_window_push(w, 900, row, 1);
    T_CHECK(ad_window_invalid(w) == 0, "invalid row evicted");
    ad_window_reset(w);
    T_CHECK(ad_window_extract(w, NULL, out, NULL, NULL) == AD_EINVAL, "extract needs full ring");
    ad_window_free(w);
}

static void test_window_scaling(void)
{
    ad_layer_spec L[1] = { { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 } };
    ad_model *m = NULL;
    ad_window *w = NULL;
    float mean[2] = { 1, 2 }, sd[2] = { 2, 4 }, row[2], out[4];
    char err[200];
    int i;

    if (ad_model_create(&m, 2, 2, L, 1, err, sizeof(err)) != 0) {
        T_CHECK(0, "model create: %s", err);
        return;
    }
    ad_model_set_scaler(m, AD_SCALER_STANDARD, mean, sd);
    ad_window_new(&w, 2, 2, 1);
    for (i = 0; i < 2; i++) {
        row[0] = 3 + i;
        row[1] = 10;
        ad_window_push(w, i, row, 1);
    }
    ad_window_extract(w, m, out, NULL, NULL);
    T_CHECK(fabsf(out[0] - 1.0f) < 1e-6 && fabsf(out[1] - 2.0f) < 1e-6 &&
            fabsf(out[2] - 1.5f) < 1e-6, "standard scaling (x-mean)/std: %g %g %g",
            out[0], out[1], out[2]);
    ad_window_free(w);
    ad_model_free(m);
}

/* A stream for the queue tests: F = 1, PERIOD on a 10 ms grid with 1 s of
 * lateness, or ALL. */
static ad_stream *mk_late(ad_asm_mode mode)
{
    ad_stream_cfg c;
    ad_stream *s = NULL;
    char err[200];

    ad_stream_cfg_default(&c);
    c.mode = mode;
    c.period_ms = 10;
    c.max_lateness_ms = mode == AD_ASM_PERIOD ? 1000 : 0;
    if (ad_stream_new(&s, &c, 1, err, sizeof err) != 0)
        fprintf(stderr, "ad_stream_new: %s\n", err);
    return s;
}

/* Pop every row; count them, and those not at 10 ms * value in time order
 * after prev (the caller's last ts). */
static int pop_all(ad_stream *s, int64_t *prev, int *bad)
{
    double v[1];
    int64_t ts;
    unsigned fl;
    int n = 0;

    while (ad_stream_pop_row_d(s, v, &ts, &fl)) {
        if (ts <= *prev || v[0] != (double)(ts / 10) || !(fl & AD_ROW_VALID))
            (*bad)++;
        *prev = ts;
        n++;
    }
    return n;
}

/* One push or tick that completes more rows than the queue holds (PERIOD
 * with lateness: 100 grid rows wait for the watermark, then it passes them
 * all at once) holds the rest back: a caller that pops until 0 gets all of
 * them, in order, none lost. */
static void test_queue_holds_back(void)
{
    int k;

    for (k = 0; k < 2; k++) {
        ad_stream *s = mk_late(AD_ASM_PERIOD);
        ad_stream_stats st;
        int64_t prev = -1;
        int i, n, bad = 0, q;

        for (i = 0; i < 100; i++)           /* 0..990 ms: all behind 1 s lateness */
            ad_stream_push_sample(s, 10 * (int64_t)i, 0, (double)i);
        T_CHECK(ad_stream_pending(s) == 0, "nothing out before the watermark");
        if (k == 0)
            ad_stream_advance(s, 2000);     /* a tick: data time 1 s on */
        else
            ad_stream_push_sample(s, 2000, 0, 200.0);   /* a sample 1 s on */
        q = ad_stream_pending(s);
        n = pop_all(s, &prev, &bad);
        ad_stream_get_stats(s, &st);
        T_CHECK(q == AD_STREAM_QUEUE && n == 100 && bad == 0 && st.overflow == 0 &&
                st.rows == 100,
                "%s completing 100 rows: %d queued, %d popped in order (%d wrong), "
                "overflow %llu", k ? "a push" : "a tick", q, n, bad,
                (unsigned long long)st.overflow);
        ad_stream_free(s);
    }
}

/* A caller that pushes again without taking the held-back rows: the push
 * first emits them, the oldest queued rows making room (overflow), so the
 * push meets the same stream state (last row time) as if they had been
 * taken, and every row is either popped or counted. */
static void test_queue_overflow_when_not_taken(void)
{
    ad_stream *s = mk_late(AD_ASM_PERIOD);
    ad_stream_stats st;
    int64_t prev = -1;
    int i, n, bad = 0, r;

    for (i = 0; i < 100; i++)
        ad_stream_push_sample(s, 10 * (int64_t)i, 0, (double)i);
    ad_stream_advance(s, 2000);             /* rows 0..99: 64 queued, 36 waiting */
    r = ad_stream_push_sample(s, 985, 0, -1.0);    /* behind row 99's value: late */
    n = pop_all(s, &prev, &bad);
    ad_stream_get_stats(s, &st);
    T_CHECK(r == 1 && st.ooo == 1, "the push meets row 99 out: its sample is late (%d)", r);
    T_CHECK(n == AD_STREAM_QUEUE && bad == 0 && prev == 990 && st.rows == 100 &&
            st.overflow == 36, "the newest %d rows popped (%d, %d wrong, last %lld), "
            "overflow %llu of %llu", AD_STREAM_QUEUE, n, bad, (long long)prev,
            (unsigned long long)st.overflow, (unsigned long long)st.rows);
    ad_stream_free(s);
}

/* A pack of 200 samples pushed one by one, rows taken after each push
 * (what the daemon does with a SenML pack): every row out, in order. */
static void test_queue_pack_taken(void)
{
    int mode;

    for (mode = AD_ASM_PERIOD; mode <= AD_ASM_ALL; mode++) {
        ad_stream *s = mk_late((ad_asm_mode)mode);
        ad_stream_stats st;
        int64_t prev = -1;
        int i, n = 0, bad = 0;

        for (i = 0; i < 200; i++) {
            ad_stream_push_sample(s, 10 * (int64_t)i, 0, (double)i);
            n += pop_all(s, &prev, &bad);
        }
        ad_stream_advance(s, 1990 + 1000 + 1);     /* the last row, 1990 */
        n += pop_all(s, &prev, &bad);
        ad_stream_get_stats(s, &st);
        T_CHECK(n == 200 && bad == 0 && st.overflow == 0,
                "%s: 200 samples, rows taken after each push: %d rows (%d wrong), "
                "overflow %llu", ad_asm_mode_name((ad_asm_mode)mode), n, bad,
                (unsigned long long)st.overflow);
        ad_stream_free(s);
    }
}

/* One allocation per stream: every feature count keeps its values apart
 * (per-feature state and the queue), through a queue overflow, in each
 * mode. Run under ASan by make check. */
static void test_feature_counts_layout(void)
{
    static const int Fs[5] = { 1, 3, 8, 13, 70 };
    int k;

    for (k = 0; k < 5; k++) {
        int F = Fs[k], i, f, n = 0, bad = 0, mode;
        int64_t last;
        double vals[70];
        float v[70];
        int64_t ts;
        int valid;
        ad_stream_stats st;

        for (mode = 0; mode < 3; mode++) {
            ad_stream *s = mk((ad_asm_mode)mode, 10, 0, AD_MISS_HOLD, 0, F);
            if (s == NULL) {
                T_CHECK(0, "new F=%d", F);
                return;
            }
            T_CHECK(ad_stream_n_features(s) == F, "F=%d", F);
            /* ROWS/ALL: one row per push; PERIOD (grid 10 ms): row g is
             * emitted by the next push. 70 rows > queue of 64, never
             * popped: the oldest are lost (the newest 64, and a last row
             * the full queue held back when it was the push's last
             * emission: THE ROW QUEUE). */
            for (i = 0; i < 70; i++) {
                for (f = 0; f < F; f++)
                    vals[f] = 1000.0 * i + f;
                ad_stream_push_row(s, 10 * (int64_t)i, vals, NULL);
            }
            n = 0;
            bad = 0;
            last = -1;
            while (ad_stream_pop_row(s, v, &ts, &valid)) {
                int row = (int)(ts / 10);
                if (row <= last)
                    bad++;
                last = row;
                n++;
                for (f = 0; f < F; f++)
                    if (!valid || v[f] != (float)(1000.0 * row + f))
                        bad++;
            }
            ad_stream_get_stats(s, &st);
            T_CHECK(bad == 0, "F=%d %s: every value back in its row and feature (%d wrong)",
                    F, ad_asm_mode_name((ad_asm_mode)mode), bad);
            T_CHECK((n == AD_STREAM_QUEUE || n == AD_STREAM_QUEUE + 1) &&
                    last == (int64_t)st.rows - 1 &&
                    st.overflow == (uint64_t)(st.rows - n),
                    "F=%d %s: the newest %d (+1 held back) rows popped, up to the "
                    "last (%d, last row %lld, overflow %llu)", F,
                    ad_asm_mode_name((ad_asm_mode)mode), AD_STREAM_QUEUE, n,
                    (long long)last, (unsigned long long)st.overflow);
            ad_stream_free(s);
        }
    }
    ad_stream_free(NULL);
}

/* Period mode, one topic per feature, stamped a few ms apart around each
 * second: feature 1's sample (t - 2) arrives after feature 0's (t + 3) has
 * already put the row at t out. It is newer than what feature 1 holds, so
 * it is that feature's value from the next row on, not lost (held 119 of
 * 120). Row t then carries both features' samples of second t - 1 s: the
 * pair of one instant stays in one row, a period late. A
 * sample behind the value its feature already holds (a clock gone back)
 * is still dropped as late. */
static void test_period_jitter_held(void)
{
    ad_stream *s = mk(AD_ASM_PERIOD, 1000, 0, AD_MISS_INVALID, 0, 2);
    ad_stream_stats st;
    float v[2];
    int64_t ts;
    int valid, i, rows = 0, lagged = 0;

    for (i = 0; i < 120; i++) {
        int64_t t = 1000000 + (int64_t)i * 1000;
        ad_stream_push_sample(s, t + 3, 0, 100.0 + i);
        ad_stream_push_sample(s, t - 2, 1, 200.0 + i);
        while (ad_stream_pop_row(s, v, &ts, &valid) == 1) {
            int k = (int)((ts - 1000000) / 1000);   /* the row at t of sample k */
            rows++;
            /* row k: f0's sample k-1 (k's is after the row), f1's k-1 (k's late) */
            if (valid && v[0] == 100.0f + (float)(k - 1) && v[1] == 200.0f + (float)(k - 1))
                lagged++;
        }
    }
    ad_stream_get_stats(s, &st);
    T_NOTE("period jitter: rows %d, f1 one period behind %d, held %llu (max %llu ms), ooo %llu",
           rows, lagged, (unsigned long long)st.late_held,
           (unsigned long long)st.late_held_max_ms, (unsigned long long)st.ooo);
    T_CHECK(st.ooo == 0, "no jittered sample dropped as late (ooo %llu)",
            (unsigned long long)st.ooo);
    T_CHECK(st.late_held == 119 && st.late_held_max_ms == 2,
            "119 held for the next row, 2 ms behind it (held %llu, max %llu)",
            (unsigned long long)st.late_held, (unsigned long long)st.late_held_max_ms);
    T_CHECK(rows == 119 && lagged == rows,
            "each row carries both features' samples of the second before (%d of %d)",
            lagged, rows);
    /* a sample behind feature 1's held value (t - 2 of the last second) */
    ad_stream_push_sample(s, 1000000 + 118 * 1000, 1, -1.0);
    ad_stream_get_stats(s, &st);
    T_CHECK(st.ooo == 1 && st.late_held == 119,
            "a sample behind its feature's held value is dropped (ooo %llu, held %llu)",
            (unsigned long long)st.ooo, (unsigned long long)st.late_held);
    ad_stream_free(s);
}

/* A stream resumed after the last row of the stream it continues (a
 * restored state, ad_stream_resume) refuses what comes at or before that
 * row as that stream would: a whole row at it dup, before it ooo; a sample
 * at or before it ooo in ALL and PERIOD (in PERIOD not held for the next
 * row: its feature held a value at least that new); and takes what comes
 * after it. An earlier resume time later changes nothing. */
static void test_resumed(void)
{
    static const ad_asm_mode modes[3] = { AD_ASM_ROWS, AD_ASM_ALL, AD_ASM_PERIOD };
    int k;

    for (k = 0; k < 3; k++) {
        ad_stream *s = mk(modes[k], 1000, 0, AD_MISS_INVALID, 0, 2);
        double r[2] = { 1, 2 }, v[2];
        int64_t ts;
        unsigned fl;
        int rows = 0;
        ad_stream_stats st;

        ad_stream_resume(s, 5000);
        ad_stream_resume(s, 3000);          /* never back */
        T_CHECK(ad_stream_push_row(s, 5000, r, NULL) == 1, "%s: the last row again refused",
                ad_asm_mode_name(modes[k]));
        T_CHECK(ad_stream_push_row(s, 4000, r, NULL) == 1, "%s: an earlier row refused",
                ad_asm_mode_name(modes[k]));
        if (modes[k] != AD_ASM_ROWS)
            T_CHECK(ad_stream_push_sample(s, 4500, 1, 3.0) == 1, "%s: an earlier sample "
                    "refused", ad_asm_mode_name(modes[k]));
        T_CHECK(ad_stream_push_row(s, 6000, r, NULL) == 0 &&
                ad_stream_push_row(s, 7000, r, NULL) == 0 &&
                ad_stream_push_row(s, 8000, r, NULL) == 0, "%s: later rows taken",
                ad_asm_mode_name(modes[k]));
        while (ad_stream_pop_row_d(s, v, &ts, &fl) == 1) {
            T_CHECK(ts > 5000 && (fl & AD_ROW_VALID) && v[0] == 1 && v[1] == 2,
                    "%s: row at %lld after the resumed one, valid, its values",
                    ad_asm_mode_name(modes[k]), (long long)ts);
            rows++;
        }
        ad_stream_get_stats(s, &st);
        T_NOTE("%s resumed at 5000: rows out %d, dup %llu (%llu values), ooo %llu "
               "(%llu values), late_held %llu", ad_asm_mode_name(modes[k]), rows,
               (unsigned long long)st.dup, (unsigned long long)st.dup_values,
               (unsigned long long)st.ooo, (unsigned long long)st.ooo_values,
               (unsigned long long)st.late_held);
        if (modes[k] == AD_ASM_ROWS)
            T_CHECK(rows == 3 && st.dup == 1 && st.dup_values == 2 && st.ooo == 1 &&
                    st.ooo_values == 2, "rows: dup 1 (2 values), ooo 1 (2 values), 3 rows out");
        else
            T_CHECK(rows >= 2 && st.dup == 0 && st.ooo == 5 && st.ooo_values == 5 &&
                    st.late_held == 0, "%s: 5 samples refused as ooo, none held",
                    ad_asm_mode_name(modes[k]));
        ad_stream_free(s);
    }
}

/* Copies: a refusal for a time the stream holds already is a copy when it
 * carries the same values (a message delivered twice: two subscriptions,
 * redundant gateways), else not (a device clock that stopped): counted
 * apart (dup_copies), in ROWS mode against the last row out and the
 * reorder buffer, in PERIOD and ALL against the pending sample. */
static void test_dup_copies(void)
{
    ad_stream_cfg c;
    ad_stream *s = mk(AD_ASM_ROWS, 1000, 0, AD_MISS_INVALID, 0, 3);
    double r1[3] = { 1, 2, 3 }, r1b[3] = { 1, 2, 3.5 }, r2[3] = { 4, NAN, 6 };
    unsigned char some[3] = { 1, 0, 1 };
    char err[256];
    ad_stream_stats st;

    ad_stream_push_row(s, 1000, r1, NULL);
    T_CHECK(ad_stream_push_row(s, 1000, r1, NULL) == 1, "rows: a copy dropped");
    ad_stream_push_row(s, 1000, r1b, NULL);
    ad_stream_push_row(s, 1000, r1, some);      /* a value less: not a copy */
    ad_stream_push_row(s, 2000, r2, NULL);
    ad_stream_push_row(s, 2000, r2, NULL);      /* its NaN too: a copy */
    ad_stream_push_row(s, 3000, r1, some);
    ad_stream_push_row(s, 3000, r1, some);      /* the same values present */
    ad_stream_push_row(s, 3000, r1, NULL);      /* one more: not */
    ad_stream_get_stats(s, &st);
    T_CHECK(st.dup == 6 && st.dup_copies == 3 && st.dup_copy_values == 8 &&
            st.dup_values == 3 + 3 + 2 + 3 + 2 + 3,
            "rows: dup %llu (%llu values), copies %llu (%llu values); want 6 (16), 3 (8)",
            (unsigned long long)st.dup, (unsigned long long)st.dup_values,
            (unsigned long long)st.dup_copies, (unsigned long long)st.dup_copy_values);
    ad_stream_free(s);

    /* with lateness: copies of rows still in the reorder buffer */
    ad_stream_cfg_default(&c);
    c.max_lateness_ms = 5000;
    s = NULL;
    T_CHECK(ad_stream_new(&s, &c, 3, err, sizeof err) == 0, "stream: %s", err);
    ad_stream_push_row(s, 1000, r1, NULL);
    ad_stream_push_row(s, 2000, r2, NULL);
    ad_stream_push_row(s, 1000, r1, NULL);
    ad_stream_push_row(s, 2000, r1, NULL);
    ad_stream_get_stats(s, &st);
    T_CHECK(st.dup == 2 && st.dup_copies == 1, "reorder buffer: dup %llu copies %llu; want 2, 1",
            (unsigned long long)st.dup, (unsigned long long)st.dup_copies);
    ad_stream_free(s);

    /* PERIOD with lateness: a sample of a cell after the next row's,
     * pending (one of the next row's is applied at once: its copy,
     * test_period_copy_applied) */
    for (int m = 0; m < 2; m++) {
        ad_stream_cfg_default(&c);
        c.mode = m ? AD_ASM_ALL : AD_ASM_PERIOD;
        c.max_lateness_ms = m ? 0 : 5000;
        s = NULL;
        T_CHECK(ad_stream_new(&s, &c, 3, err, sizeof err) == 0, "stream: %s", err);
        if (!m)
            ad_stream_push_sample(s, 10, 1, 1.0);
        ad_stream_push_sample(s, 1500, 0, 1.0);
        ad_stream_push_sample(s, 1500, 0, 1.0);
        ad_stream_push_sample(s, 1500, 0, 1.5);
        ad_stream_get_stats(s, &st);
        T_CHECK(st.dup == 2 && st.dup_copies == 1 && st.dup_copy_values == 1,
                "%s: dup %llu copies %llu; want 2, 1", m ? "all" : "period",
                (unsigned long long)st.dup, (unsigned long long)st.dup_copies);
        ad_stream_free(s);
    }
}

/* PERIOD, a copy of a sample already applied to the row still open (its
 * time is at or before the grid row being built, so it left the pending
 * list at once): refused as a copy, not applied again. Applied again, an
 * older copy put the older value back into the row (which carries each
 * feature's newest value), and every copy counted as a sample taken (the
 * data-quality monitor's samples a row, and the sample fed to it twice). */
static void test_period_copy_applied(void)
{
    ad_stream *s = mk(AD_ASM_PERIOD, 1000, 0, AD_MISS_INVALID, 0, 1);
    ad_stream_stats st;
    double v[1];
    int64_t ts;
    unsigned fl;
    int rows = 0;

    ad_stream_push_sample(s, 1100, 0, 1.0);
    ad_stream_push_sample(s, 1500, 0, 2.0);
    /* both applied to row 2000 (not out: no newer data yet) */
    T_CHECK(ad_stream_push_sample(s, 1100, 0, 1.0) == 1, "period: a copy of an applied "
            "sample (1100 ms, older than the feature's value) refused");
    T_CHECK(ad_stream_push_sample(s, 1500, 0, 2.0) == 1, "period: a copy of the applied "
            "sample the row carries (1500 ms) refused");
    ad_stream_push_sample(s, 1500, 0, 9.0);     /* a stopped clock: not a copy */
    ad_stream_push_sample(s, 1200, 0, 7.0);     /* older, other value: superseded */
    ad_stream_push_sample(s, 2100, 0, 3.0);     /* row 2000 out */
    while (ad_stream_pop_row_d(s, v, &ts, &fl)) {
        rows++;
        T_CHECK(ts == 2000 && v[0] == 2.0, "period: row %lld carries %g; want row 2000 with "
                "the newest value 2 (1500 ms)", (long long)ts, v[0]);
    }
    ad_stream_get_stats(s, &st);
    T_CHECK(rows == 1, "period: %d rows out; want 1", rows);
    T_CHECK(st.dup == 3 && st.dup_copies == 2 && st.dup_copy_values == 2 && st.ooo == 0 &&
            st.samples == 4, "period: dup %llu, copies %llu (%llu values), ooo %llu, samples "
            "%llu; want 3, 2 (2), 0, 4 (1100, 1500, 1200 superseded, 2100)",
            (unsigned long long)st.dup, (unsigned long long)st.dup_copies,
            (unsigned long long)st.dup_copy_values, (unsigned long long)st.ooo,
            (unsigned long long)st.samples);
    ad_stream_free(s);
}

/* ALL and PERIOD, a copy of a sample whose row is already out: a copy
 * (dup_copies), not late; the operator is not sent after a clock. One at
 * the time of its feature's newest sample with another value is a
 * duplicate (a device clock that stopped), as in ROWS a row at the last
 * row's time; a late sample at another time stays late (ooo), whatever its
 * value. The stream remembers the last AD_STREAM_COPIES samples of each
 * feature. */
static void test_copy_of_row_out(void)
{
    ad_stream_stats st;
    double r[2] = { 1, 2 }, v[2];
    int64_t ts;
    unsigned fl;
    ad_stream *s = mk(AD_ASM_ALL, 1000, 0, AD_MISS_INVALID, 0, 2);

    ad_stream_push_row(s, 1000, r, NULL);        /* complete: out at once */
    T_CHECK(ad_stream_pop_row_d(s, v, &ts, &fl) == 1, "all: the row out");
    ad_stream_push_row(s, 1000, r, NULL);        /* the message again */
    ad_stream_push_sample(s, 1000, 0, 5.0);      /* its time, other value: dup */
    ad_stream_push_sample(s, 900, 1, 2.0);       /* late, other time (its value) */
    ad_stream_get_stats(s, &st);
    T_CHECK(st.dup == 3 && st.dup_copies == 2 && st.dup_copy_values == 2 && st.ooo == 1 &&
            st.ooo_values == 1, "all: dup %llu, copies %llu (%llu values), late %llu; want "
            "3, 2 (2), 1", (unsigned long long)st.dup, (unsigned long long)st.dup_copies,
            (unsigned long long)st.dup_copy_values, (unsigned long long)st.ooo);
    ad_stream_free(s);

    s = mk(AD_ASM_PERIOD, 1000, 0, AD_MISS_INVALID, 0, 1);
    for (int k = 0; k < 6; k++)                  /* rows 2000.. 6000 out */
        ad_stream_push_sample(s, 1500 + 1000 * k, 0, 10.0 + k);
    while (ad_stream_pop_row_d(s, v, &ts, &fl))
        ;
    /* copies of the last AD_STREAM_COPIES samples: 6500 is applied to the
     * row still open, the rows of 5500, 4500 and 3500 are out; the one
     * before them is forgotten: its copy counts as late */
    for (int k = 5; k >= 6 - AD_STREAM_COPIES; k--)
        ad_stream_push_sample(s, 1500 + 1000 * k, 0, 10.0 + k);
    ad_stream_push_sample(s, 1500 + 1000 * (5 - AD_STREAM_COPIES), 0,
                          10.0 + 5 - AD_STREAM_COPIES);
    ad_stream_push_sample(s, 4500, 0, 99.0);    /* late, other value */
    ad_stream_get_stats(s, &st);
    T_CHECK(st.dup == AD_STREAM_COPIES && st.dup_copies == AD_STREAM_COPIES && st.ooo == 2 &&
            st.late_held == 0, "period: dup %llu, copies %llu, late %llu, late_held %llu; "
            "want %d, %d, 2, 0", (unsigned long long)st.dup,
            (unsigned long long)st.dup_copies, (unsigned long long)st.ooo,
            (unsigned long long)st.late_held, AD_STREAM_COPIES, AD_STREAM_COPIES);
    ad_stream_free(s);
}

int main(void)
{
    T_RUN(test_rows_mode_dup_ooo_nan);
    T_RUN(test_dup_copies);
    T_RUN(test_period_copy_applied);
    T_RUN(test_copy_of_row_out);
    T_RUN(test_resumed);
    T_RUN(test_refused_values);
    T_RUN(test_rows_mode_hold_limit);
    T_RUN(test_period_sample_and_hold);
    T_RUN(test_period_jitter_held);
    T_RUN(test_period_max_age);
    T_RUN(test_all_mode);
    T_RUN(test_period_gap_and_overflow);
    T_RUN(test_all_mode_aligns_by_time);
    T_RUN(test_future_timestamp);
    T_RUN(test_period_device_clock);
    T_RUN(test_rows_lateness);
    T_RUN(test_gap_flag);
    T_RUN(test_gap_relative);
    T_RUN(test_double_precision);
    T_RUN(test_window_ring_hop);
    T_RUN(test_window_scaling);
    T_RUN(test_queue_holds_back);
    T_RUN(test_queue_overflow_when_not_taken);
    T_RUN(test_queue_pack_taken);
    T_RUN(test_feature_counts_layout);
    return t_done();
}
