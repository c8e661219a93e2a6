/*
 * test_season.c - the seasonal score level (lib/season.c): against a
 * brute-force reference that keeps every score and applies the definition
 * of season.h directly (random periods, gaps of whole periods, bursts), and
 * the behaviour it exists for: a daily step gets a level after R of 2R - 1
 * days, a one-day burst never does, a quiet day does not drop it, the
 * scale and reset, save/restore and malformed saved state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cjson/cJSON.h>

#include "t.h"
#include "ad.h"
#include "season.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double uni(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

#define MAXS 20000

typedef struct { int64_t ts; double s; } sample;

/* season.h WHAT, from every score kept: a score at ts is in global bin
 * floor(ts * B / P); period j back from t covers the bins within HALF of
 * t's bin minus j B; the level is the R-th highest of the N = 2R - 1
 * per-period maxima that exist. */
static double ref_level(const sample *x, int n, int64_t P, int R, int H, int64_t t)
{
    int N = 2 * R - 1, j, i, have = 0;
    double m[64];
    int64_t gt = (int64_t)floor((double)t * AD_SEASON_BINS / (double)P);

    for (j = 1; j <= N; j++) {
        double mx = NAN;
        int64_t c = gt - (int64_t)j * AD_SEASON_BINS;
        for (i = 0; i < n; i++) {
            int64_t g = (int64_t)floor((double)x[i].ts * AD_SEASON_BINS / (double)P);
            if (g >= c - H && g <= c + H &&
                !((float)x[i].s <= mx))
                mx = (float)x[i].s;
        }
        if (!isnan(mx))
            m[have++] = mx;
    }
    if (have < R)
        return NAN;
    /* R-th highest */
    for (i = 0; i < R; i++) {
        int b = i;
        for (j = i + 1; j < have; j++)
            if (m[j] > m[b])
                b = j;
        double tmp = m[i];
        m[i] = m[b];
        m[b] = tmp;
    }
    return m[R - 1];
}

static void test_reference(void)
{
    static sample x[MAXS];
    int trial, checked = 0, bad = 0, defined = 0;
    char err[160];

    for (trial = 0; trial < 60; trial++) {
        int64_t P = 96 + (int64_t)(uni() * 200000);
        int R = 1 + (int)(uni() * 4), n = 0;
        int64_t ts = (int64_t)(uni() * 50 * P) + 1000 * P;
        int64_t step = 1 + (int64_t)(uni() * (double)P / 40);
        ad_season *s = NULL;
        int H;

        T_CHECK(ad_season_new(&s, P, R, err, sizeof(err)) == 0, "new: %s", err);
        if (s == NULL)
            return;
        if (trial % 2)          /* a window spanning up to a third of the period */
            ad_season_set_span(s, uni() * (double)P / 3);
        H = ad_season_half(s);
        T_CHECK(H >= AD_SEASON_HALF && H <= AD_SEASON_BINS / 4, "half %d", H);
        while (n < MAXS / 10) {
            double v = uni();
            if (uni() < 0.01)
                v *= 50;                       /* a burst */
            if (uni() < 0.002)
                ts += (int64_t)(uni() * 3 * P); /* a hole of up to 3 periods */
            x[n].ts = ts;
            x[n].s = v;
            n++;
            ad_season_add(s, ts, v);
            if (uni() < 0.2) {
                /* the level at now and a little later (before the next score) */
                int64_t q = ts + (int64_t)(uni() * step);
                double a = ad_season_level(s, q), b = ref_level(x, n, P, R, H, q);
                checked++;
                defined += !isnan(b);
                if (!((isnan(a) && isnan(b)) || a == b)) {
                    if (bad++ < 5)
                        T_CHECK(0, "P %lld R %d t %lld: level %.9g, reference %.9g",
                                (long long)P, R, (long long)q, a, b);
                }
            }
            ts += step;
        }
        ad_season_free(s);
    }
    T_CHECK(bad == 0 && checked > 5000 && defined > checked / 4,
            "%d of %d levels differ from the reference (%d defined)", bad, checked, defined);
}

#define DAY 86400000LL
#define MIN 60000LL

/* One score a minute: 0.1, or `step` from 09:00 to 09:30. */
static void feed_day(ad_season *s, int64_t day, double step, double burst_at_15)
{
    int64_t m;

    for (m = 0; m < 1440; m++) {
        double v = 0.1 + 0.01 * (double)(m % 7);
        if (m >= 540 && m < 570)
            v = step;
        if (burst_at_15 > 0 && m == 900)
            v = burst_at_15;
        ad_season_add(s, day * DAY + m * MIN, v);
    }
}

static void test_daily_step(void)
{
    ad_season *s = NULL;
    char err[160];
    int64_t d0 = 20000;             /* a day index in 2024 */
    double lv;

    T_CHECK(ad_season_new(&s, DAY, 3, err, sizeof(err)) == 0, "new: %s", err);
    if (s == NULL)
        return;
    T_CHECK(isnan(ad_season_level(s, d0 * DAY)), "empty: no level");
    feed_day(s, d0, 1.0, 5.0);      /* a burst at 15:00 on the first day only */
    feed_day(s, d0 + 1, 1.1, 0);
    lv = ad_season_level(s, (d0 + 2) * DAY + 550 * MIN);
    T_CHECK(isnan(lv), "two days: no level yet (%g)", lv);
    feed_day(s, d0 + 2, 0.9, 0);
    lv = ad_season_level(s, (d0 + 3) * DAY + 550 * MIN);
    T_CHECK(fabs(lv - 0.9) < 1e-6, "three days: the step's level is its lowest peak, %g", lv);
    /* 09:50 is within P/48 (two 15-min bins) of the step's last bin; 10:20
     * is not */
    lv = ad_season_level(s, (d0 + 3) * DAY + 590 * MIN);
    T_CHECK(fabs(lv - 0.9) < 1e-6, "09:50, near the step: %g", lv);
    lv = ad_season_level(s, (d0 + 3) * DAY + 620 * MIN);
    T_CHECK(lv < 0.2, "10:20, away from the step: the quiet level, %g", lv);
    lv = ad_season_level(s, (d0 + 3) * DAY + 900 * MIN);
    T_CHECK(lv < 0.2, "15:00: one day's burst does not count, %g", lv);
    /* a quiet day (no step) does not drop the level: 3 of the last 5 */
    feed_day(s, d0 + 3, 0.1, 0);
    lv = ad_season_level(s, (d0 + 4) * DAY + 550 * MIN);
    T_CHECK(fabs(lv - 0.9) < 1e-6, "after a quiet day: still %g", lv);
    feed_day(s, d0 + 4, 0.1, 0);
    feed_day(s, d0 + 5, 1.2, 0);
    lv = ad_season_level(s, (d0 + 6) * DAY + 550 * MIN);
    T_CHECK(fabs(lv - 0.9) < 1e-6, "days 2..6 (1.1, 0.9, quiet, quiet, 1.2): the third "
            "highest, %g", lv);
    feed_day(s, d0 + 6, 0.1, 0);
    lv = ad_season_level(s, (d0 + 7) * DAY + 550 * MIN);
    T_CHECK(lv < 0.2, "three quiet days of five: the step is no longer normal, %g", lv);
    T_CHECK(ad_season_phases(s, (d0 + 7) * DAY) == AD_SEASON_BINS, "every phase has a level");

    /* a hole of four days: no level until R of the last N periods again */
    ad_season_reset(s);
    feed_day(s, d0, 1.0, 0);
    feed_day(s, d0 + 1, 1.0, 0);
    feed_day(s, d0 + 2, 1.0, 0);
    feed_day(s, d0 + 6, 1.0, 0);
    lv = ad_season_level(s, (d0 + 7) * DAY + 550 * MIN);
    T_CHECK(isnan(lv), "after a 4-day hole only days 2 and 6 are in the last five: %g", lv);
    ad_season_free(s);
}

static void test_scale_save_restore(void)
{
    ad_season *s = NULL, *r = NULL;
    char err[200];
    cJSON *o;
    char *txt;
    int64_t d0 = 20000, t;
    int same = 1;

    T_CHECK(ad_season_new(&s, DAY, 2, err, sizeof(err)) == 0 &&
            ad_season_new(&r, DAY, 2, err, sizeof(err)) == 0, "new: %s", err);
    if (s == NULL || r == NULL)
        return;
    feed_day(s, d0, 1.0, 0);
    feed_day(s, d0 + 1, 2.0, 0);
    feed_day(s, d0 + 2, 3.0, 0);
    T_CHECK(fabs(ad_season_level(s, (d0 + 3) * DAY + 550 * MIN) - 2.0) < 1e-6,
            "2nd highest of 3: %g", ad_season_level(s, (d0 + 3) * DAY + 550 * MIN));
    ad_season_scale(s, 0.5);
    T_CHECK(fabs(ad_season_level(s, (d0 + 3) * DAY + 550 * MIN) - 1.0) < 1e-6,
            "scaled by 0.5: %g", ad_season_level(s, (d0 + 3) * DAY + 550 * MIN));

    o = ad_season_save(s);
    T_CHECK(o != NULL && ad_season_restore(r, o, err, sizeof(err)) == 0, "restore: %s", err);
    for (t = (d0 + 3) * DAY; t < (d0 + 4) * DAY; t += 7 * MIN) {
        double a = ad_season_level(s, t), b = ad_season_level(r, t);
        if (!((isnan(a) && isnan(b)) || a == b))
            same = 0;
    }
    T_CHECK(same, "restored levels equal the saved ones over a day");
    txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);

    /* another period: refused, nothing kept */
    {
        ad_season *w = NULL;
        cJSON *p = cJSON_Parse(txt);
        T_CHECK(ad_season_new(&w, DAY / 2, 2, err, sizeof(err)) == 0, "new");
        T_CHECK(w && ad_season_restore(w, p, err, sizeof(err)) != 0 &&
                strstr(err, "another period") != NULL, "other period: %s", err);
        T_CHECK(w && isnan(ad_season_level(w, (d0 + 3) * DAY + 550 * MIN)), "nothing kept");
        ad_season_free(w);
        cJSON_Delete(p);
    }
    /* damaged rows */
    {
        static const char *const bad[] = {
            "{\"period_ms\":86400000,\"bins\":95,\"rows\":[]}",
            "{\"period_ms\":86400000,\"bins\":96,\"rows\":{}}",
            "{\"period_ms\":86400000,\"bins\":96,\"rows\":[{\"k\":1.5,\"max\":[]}]}",
            "{\"period_ms\":86400000,\"bins\":96,\"rows\":[{\"k\":1,\"max\":[1,2]}]}",
            "{\"period_ms\":86400000,\"bins\":96,\"rows\":[{\"k\":1e300,\"max\":[]}]}",
            "[]",
        };
        size_t i;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            cJSON *p = cJSON_Parse(bad[i]);
            err[0] = '\0';
            T_CHECK(ad_season_restore(r, p, err, sizeof(err)) != 0 &&
                    strncmp(err, "season:", 7) == 0, "%s: refused (%s)", bad[i], err);
            T_CHECK(ad_season_phases(r, (d0 + 3) * DAY) == 0, "%s: nothing kept", bad[i]);
            cJSON_Delete(p);
        }
        /* a NaN in a row, as text the parser cannot give, and a string */
        cJSON *p = cJSON_Parse(txt);
        cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "rows"), 0);
        cJSON_ReplaceItemInArray(cJSON_GetObjectItem(row, "max"), 3, cJSON_CreateString("x"));
        T_CHECK(ad_season_restore(r, p, err, sizeof(err)) != 0 && strstr(err, "row 1"),
                "a string in a row: %s", err);
        cJSON_Delete(p);
    }
    /* saved with season_periods 2 (5 rows), restored with 1 (3 rows): the
     * newest periods are kept */
    {
        ad_season *one = NULL;
        cJSON *p = cJSON_Parse(txt);
        T_CHECK(ad_season_new(&one, DAY, 1, err, sizeof(err)) == 0 &&
                ad_season_restore(one, p, err, sizeof(err)) == 0, "fewer periods: %s", err);
        T_CHECK(one && fabs(ad_season_level(one, (d0 + 3) * DAY + 550 * MIN) - 1.5) < 1e-6,
                "R 1: the newest day's step (3 x 0.5 = 1.5): %g",
                one ? ad_season_level(one, (d0 + 3) * DAY + 550 * MIN) : NAN);
        ad_season_free(one);
        cJSON_Delete(p);
    }
    /* a saved period far in the future (a damaged file): the first score
     * resets it instead of being dropped as old forever */
    {
        cJSON *p = cJSON_Parse("{\"period_ms\":86400000,\"bins\":96,\"rows\":[{\"k\":11000000,"
                               "\"max\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
                               "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
                               "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}");
        T_CHECK(ad_season_restore(r, p, err, sizeof(err)) == 0, "far period restored: %s", err);
        feed_day(r, d0, 1.0, 0);
        feed_day(r, d0 + 1, 2.0, 0);
        T_CHECK(fabs(ad_season_level(r, (d0 + 2) * DAY + 550 * MIN) - 1.0) < 1e-6,
                "after it, two days of data make a level again: %g",
                ad_season_level(r, (d0 + 2) * DAY + 550 * MIN));
        cJSON_Delete(p);
    }
    /* timestamps beyond +-1e15 ms are ignored */
    ad_season_add(r, INT64_MIN + 5, 9.0);
    T_CHECK(isnan(ad_season_level(r, INT64_MIN + 5)) &&
            fabs(ad_season_level(r, (d0 + 2) * DAY + 550 * MIN) - 1.0) < 1e-6,
            "an absurd timestamp changes nothing");
    free(txt);
    ad_season_scale(s, NAN);
    T_CHECK(ad_season_phases(s, (d0 + 3) * DAY) == 0, "a scale that is not a number resets");
    ad_season_free(s);
    ad_season_free(r);
    {
        ad_season *x = NULL;
        T_CHECK(ad_season_new(&x, 50, 2, err, sizeof(err)) == AD_EINVAL && x == NULL &&
                strstr(err, "shorter"), "period 50 ms: %s", err);
        T_CHECK(ad_season_new(&x, DAY, 0, err, sizeof(err)) == AD_EINVAL && x == NULL &&
                strstr(err, "periods"), "0 periods: %s", err);
    }
}

int main(void)
{
    T_RUN(test_reference);
    T_RUN(test_daily_step);
    T_RUN(test_scale_save_restore);
    return t_done();
}
