/*
 * test_kept_change.c - KEPT CHANGE (lib/shift.h): a step of the process
 * raises at its onset and clears while the rows stay moved; when the
 * daily cycle later brings the load to where the model has not seen the
 * step, the score rises again. Those windows raise nothing while the rows
 * move the way the step moved them; a fault that moves them another way
 * raises, and so does a peak after a step that did not stay.
 *
 * Rows 1 s apart, a period of P = 1440 s (alert.accept_period_ms), one
 * window per row (T = 4). Model: one TimeDistributed Dense with zero
 * weights (t_model.h): a window's MAE score is the mean |value| of its
 * rows. The cycle: a = 1 + c, b = 1 - c with c = 0.8 at the "peak"
 * (phase 900-1020 s of each period), else 0: the score is 1 all day.
 * The step (from row 3180, phase 300 of the third period): a + 0.6,
 * b - 0.6, its first 10 rows with a + 3 (the onset's transient, raised).
 * Off the peak the score stays 1; at the peak b goes under 0 and the
 * score rises to 1.4: the same change, met at the peak.
 *   - the two peaks after the step raise nothing;
 *   - a fault on the second day after it (b + 1.5: another way) raises;
 *   - a step that goes back 5 rows after its alert cleared: the same
 *     move at the next peak raises (nothing kept).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cjson/cJSON.h>

#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"
#include "engine.h"
#include "shift.h"
#include <cjson/cJSON.h>

#define F 3
#define TW 4
#define P 1440
#define STEP 3180

static uint64_t rng;

/* uniform in [-1, 1) */
static double noise(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static ad_model *g_model;

static int g_accept = 1;        /* 0: alert.accept_after 0 (acceptance off) */
static int g_adapt;             /* continual learning on (no fine-tune) */
static int g_learned_peak;      /* normal-set windows on the kept peak */
static uint64_t g_kept;         /* windows kept */
static int g_level;             /* the level test on (alert.level_ms 600 s) */
static int g_like = -1;         /* its "like" count saved at row 3960 */
static int g_restore_at = -1;   /* a restart at that row: the saved state into a new detector */
static int g_damage;            /* ... with its "shift" damaged */
static int g_restored;          /* the restore succeeded */
static int g_saved_shift;       /* the saved state held the kept change */
static int g_said_damaged;      /* a warning named the damaged shift */
static double g_thr_before, g_thr_after;    /* the threshold saved and restored */
static uint64_t g_kept_seq;     /* ad_detector_kept_seq after the rows */
static int g_kept_at_restore;   /* a change was kept just after the restore */
static ad_kept_change g_kc;     /* ... and what it said */
static double g_kc_u[F];
static int g_back;              /* the restart with the clock stepped back by that many s */
static int g_damage_change;     /* ... with its kept change's end moved a year out */

static void log_sink(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= AD_LOG_WARNING && strstr(msg, "saved state: shift: "))
        g_said_damaged = 1;
}
static int g_rows = 5700;       /* rows a run lasts */
static int g_restore_said;      /* the restart from the state saved when kept_seq last moved */
static int64_t g_until_end;     /* the kept change's until after the rows, 0: none */

static ad_detector *mk(void)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    if (g_model == NULL && (g_model = t_zero_model(TW, F)) == NULL)
        return NULL;
    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.thr.margin = 1.2;
    c.alert.k = 1;
    c.alert.n = 1;
    c.alert.m = 2;
    c.alert.clear_ratio = 1;
    c.alert.accept_period_ms = (int64_t)P * 1000;
    c.alert.accept_after = 5000;    /* on, never reached here */
    if (g_adapt) {
        ad_adapt_cfg_default(&c.adapt);
        c.adapt.enabled = 1;
        c.adapt.every_windows = 100000;     /* no fine-tune */
        c.adapt.every_hours = 0;
        c.adapt.normal_windows = 8000;
        c.adapt.min_windows = 10;
        c.adapt.margin = 5;
    }
    if (g_level)
        c.alert.level_ms = 600 * 1000;
    if (!g_accept) {
        c.alert.accept_after = 0;
        c.alert.accept_after_ms = 0;
    }
    if (ad_detector_new(&d, &c, "pump", g_model, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "detector: %s", err);
    return d;
}

/* raises per row range */
typedef struct run {
    int raised;
    int at[64];                 /* the rows raised at */
} run;

static int g_off;               /* s the rows' times run behind i (a clock stepped back) */

static void step(ad_detector *d, int i, double a, double b, double g, run *r)
{
    double row[F] = { a, b, g };
    float in[TW * F], out[TW * F], share[F];
    ad_window_job job;
    ad_event ev;

    ad_detector_push_row(d, (int64_t)(i - g_off) * 1000, row, NULL);
    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev))
        if (ev.type == AD_EV_ALERT_RAISED && r->raised < 64)
            r->at[r->raised++] = (int)(ev.ts_ms / 1000) + g_off;
}

static int raised_in(const run *r, int from, int to)
{
    int n = 0;

    for (int i = 0; i < r->raised; i++)
        n += r->at[i] >= from && r->at[i] < to;
    return n;
}

/* stays: rows the step lasts (after it a and b are as before); fault:
 * b + 1.5 for 60 rows from that row (0: none); again: the step's move
 * (a + 0.6, b - 0.6) at the first peak after it, whatever stays */
static void run_rows(int stays, int fault, int again, run *r)
{
    ad_detector *d = mk();

    /* the state as the daemon saves it: when kept_seq moves (and at
     * alerts), so a kill -9 restarts from the last of them */
    char *said = NULL;
    uint64_t said_seq = 0;

    memset(r, 0, sizeof(*r));
    rng = 88172645463325252ull;
    for (int i = 0; d && i < g_rows; i++) {
        int ph = i % P, k = i - STEP;
        double c = ph >= 900 && ph < 1020 ? 0.4 : 0;
        double a = 1 + c, b = 1 - 2 * c, g = 1 + c;

        if ((k >= 0 && k < stays) || (again && i >= 2 * P + 900 && i < 2 * P + 1020)) {
            a += 0.3;
            g += 0.3;
            b -= 0.6;
            if (k >= 0 && k < 10) {     /* the onset's transient: 3 x the step */
                a += 0.6;
                g += 0.6;
                b -= 1.2;
            }
        }
        if (fault > 0 && i >= fault && i < fault + 60)
            b += 1.5;
        if (i == g_restore_at) {
            /* a restart: the saved state into a new detector */
            char *txt = g_restore_said ? said : ad_detector_save(d), err[300];
            ad_detector *d2 = mk();
            ad_detector_stats st;

            g_saved_shift = txt && strstr(txt, "\"shift\":{") && strstr(txt, "\"change\":{");
            if (txt && g_damage) {
                char *p = strstr(txt, "\"buckets\":[[");
                if (p)
                    memcpy(p + 12, "\"x\"", 3);   /* a bucket that is not one */
            }
            if (txt && (g_back || g_damage_change)) {
                cJSON *o = cJSON_Parse(txt), *x;

                if (g_back) {
                    /* as the daemon's restore after a step back of the
                     * clock: the last row now, less 1 ms; no window rows */
                    x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o,
                                                         "alert"), "last_ts");
                    cJSON_SetNumberValue(x, (double)((int64_t)(i - g_back) * 1000 - 1));
                    cJSON_DeleteItemFromObjectCaseSensitive(o, "window");
                    g_off = g_back;
                }
                if (g_damage_change) {
                    /* the change's end a year of periods out */
                    x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(o, "shift"), "change"), "expire");
                    cJSON_SetNumberValue(x, x->valuedouble + 365.0 * AD_SHIFT_BUCKETS);
                }
                free(txt);
                txt = cJSON_PrintUnformatted(o);
                cJSON_Delete(o);
            }
            ad_detector_get_stats(d, &st);
            g_thr_before = st.threshold;
            ad_log_set(log_sink, NULL);
            g_restored = txt && d2 && ad_detector_restore(d2, txt, err, sizeof(err)) == 0;
            ad_log_set(NULL, NULL);
            ad_detector_get_stats(d2, &st);
            g_thr_after = st.threshold;
            g_kept_at_restore = ad_detector_kept_change(d2, &g_kc);
            for (int f = 0; f < F && g_kept_at_restore; f++)
                g_kc_u[f] = g_kc.u[f];
            free(txt);
            said = NULL;
            ad_detector_free(d);
            d = d2;
        }
        step(d, i, a + 0.02 * noise(), b + 0.02 * noise(), g + 0.02 * noise(), r);
        if (g_restore_said && d && (ad_detector_kept_seq(d) != said_seq ||
                                    (r->raised > 0 && r->at[r->raised - 1] == i))) {
            said_seq = ad_detector_kept_seq(d);
            free(said);
            said = ad_detector_save(d);
        }
        if (g_level && i == 3960) {
            char *txt = ad_detector_save(d);
            const char *l = txt ? strstr(txt, "\"like\":") : NULL;
            g_like = l ? atoi(l + 7) : -1;
            free(txt);
        }
    }
    g_learned_peak = 0;
    g_kept = 0;
    if (d != NULL) {
        ad_detector_stats st;
        ad_adapt_stats as;
        ad_kept_change kc;

        ad_detector_get_stats(d, &st);
        g_kept = st.windows_kept;
        g_kept_seq = ad_detector_kept_seq(d);
        g_until_end = ad_detector_kept_change(d, &kc) ? kc.until_ms : 0;
        if (ad_detector_adapt(d) != NULL) {
            ad_adapt_get_stats(ad_detector_adapt(d), &as);
            for (size_t k = 0; k < as.normal_len; k++) {
                int64_t ts;
                if (ad_adapt_normal_window(ad_detector_adapt(d), k, &ts) &&
                    ts >= (int64_t)(2 * P + 910) * 1000 && ts < (int64_t)(2 * P + 1010) * 1000)
                    g_learned_peak++;
            }
        }
    }
    free(said);
    ad_detector_free(d);
    g_off = 0;
}

static void test_peaks_after_step(void)
{
    run r;

    run_rows(1 << 30, 5500, 0, &r);
    T_CHECK(raised_in(&r, STEP, STEP + 20) == 1, "the step's onset raised (%d)",
            raised_in(&r, STEP, STEP + 20));
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 0,
            "the first peak after the step raised nothing (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
    T_CHECK(raised_in(&r, 3 * P + 880, 3 * P + 1040) == 0,
            "the second peak after the step raised nothing (%d)",
            raised_in(&r, 3 * P + 880, 3 * P + 1040));
    T_CHECK(raised_in(&r, 5500, 5530) == 1, "a fault that moves the rows another way raised (%d)",
            raised_in(&r, 5500, 5530));
    T_CHECK(raised_in(&r, 0, STEP) == 0, "nothing raised before the step (%d)",
            raised_in(&r, 0, STEP));
}

static void test_step_gone(void)
{
    run r;

    /* the step goes back 5 rows after its alert cleared; the same move
     * at the peak is a change of its own */
    run_rows(20, 0, 1, &r);
    T_CHECK(raised_in(&r, STEP, STEP + 20) == 1, "the step's onset raised (%d)",
            raised_in(&r, STEP, STEP + 20));
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 1,
            "the peak with the move after the rows went back raised (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
}

/* RENEWED: the model never learns the kept peak (kept windows teach
 * nothing), so it scores it as high on every day after the step; the
 * change, met again at each peak, holds to the next one, past two
 * periods after its clear, and ends AD_SHIFT_MAX_PERIODS after it */
static void test_peaks_renewed(void)
{
    run r;
    int end = AD_SHIFT_MAX_PERIODS + 2;     /* the period whose peak is past the bound */

    g_rows = (end + 1) * P + 1100;
    run_rows(1 << 30, 0, 0, &r);
    g_rows = 5700;
    T_CHECK(raised_in(&r, STEP, STEP + 20) == 1, "the step's onset raised (%d)",
            raised_in(&r, STEP, STEP + 20));
    for (int k = 2; k < end; k++)
        T_CHECK(raised_in(&r, k * P + 880, k * P + 1040) == 0,
                "the peak %d day(s) after the step's day raised nothing (%d)",
                k - 2, raised_in(&r, k * P + 880, k * P + 1040));
    T_CHECK(raised_in(&r, end * P + 880, end * P + 1040) == 1,
            "%d periods after its clear the change has ended: the peak raised (%d)",
            AD_SHIFT_MAX_PERIODS, raised_in(&r, end * P + 880, end * P + 1040));
    T_CHECK(raised_in(&r, STEP + 20, end * P + 880) == 0, "nothing else raised (%d)",
            raised_in(&r, STEP + 20, end * P + 880));
}

/* RENEWED across a restart: the change, renewed past two periods after its
 * clear, is saved with its renewed end and its bound (expire_max); the
 * restored detector holds the later peaks and ends it at the bound */
static void test_renewed_across_restart(void)
{
    run r;
    int end = AD_SHIFT_MAX_PERIODS + 2;

    g_rows = (end + 1) * P + 1100;
    g_restore_at = 4 * P + 100;         /* past two periods after the clear */
    run_rows(1 << 30, 0, 0, &r);
    g_restore_at = -1;
    g_rows = 5700;
    T_CHECK(g_restored && g_saved_shift, "restored (%d), the saved state held the change (%d)",
            g_restored, g_saved_shift);
    T_CHECK(g_kept_at_restore && g_kc.until_ms > (int64_t)(4 * P + 900) * 1000,
            "the restored change is kept (%d) until %lld ms, past the next peak",
            g_kept_at_restore, (long long)g_kc.until_ms);
    for (int k = 4; k < end; k++)
        T_CHECK(raised_in(&r, k * P + 880, k * P + 1040) == 0,
                "after the restart, the peak %d day(s) after the step's day raised nothing (%d)",
                k - 2, raised_in(&r, k * P + 880, k * P + 1040));
    T_CHECK(raised_in(&r, end * P + 880, end * P + 1040) == 1,
            "after the restart the change still ends %d periods after its clear (%d)",
            AD_SHIFT_MAX_PERIODS, raised_in(&r, end * P + 880, end * P + 1040));
}

/* RENEWED, said: a renewal that moves the change's end is published and
 * saved again (kept_seq), so the retained state's until is the end in
 * force and a restart after kill -9 (from the state last saved) goes on
 * holding it: the peaks after the restart, past two periods after the
 * clear, raise nothing */
static void test_renewal_said(void)
{
    run r;

    g_rows = 5 * P + 1100;
    g_restore_said = 1;
    g_restore_at = 4 * P + 400;     /* past two periods after the clear */
    run_rows(1 << 30, 0, 0, &r);
    g_restore_at = -1;
    g_restore_said = 0;
    g_rows = 5700;
    T_CHECK(g_restored, "restored from the state last saved");
    T_CHECK(g_kept_at_restore && g_kc.until_ms > (int64_t)(4 * P + 900) * 1000,
            "the state last saved holds the renewed end (kept %d, until %lld ms, the "
            "peak after the restart at %d s)", g_kept_at_restore, (long long)g_kc.until_ms,
            4 * P + 900);
    for (int k = 4; k <= 5; k++)
        T_CHECK(raised_in(&r, k * P + 880, k * P + 1040) == 0,
                "after a restart the peak of period %d raised nothing (%d)", k,
                raised_in(&r, k * P + 880, k * P + 1040));
    T_CHECK(g_until_end > (int64_t)(6 * P + 900) * 1000,
            "the change's until is a period after its last peak (%lld ms)",
            (long long)g_until_end);
}

/* 4: kept windows never feed continual learning's normal set */
static void test_kept_not_learned(void)
{
    run r;

    g_adapt = 1;
    run_rows(1 << 30, 0, 0, &r);
    g_adapt = 0;
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 0,
            "with continual learning, the first peak after the step raised nothing (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
    T_CHECK(g_kept > 0, "windows kept (%llu)", (unsigned long long)g_kept);
    T_CHECK(g_learned_peak == 0, "no window of the kept peak in the normal set (%d)",
            g_learned_peak);
}

/* 5: kept windows stay out of the level test's mean without restarting
 * it: 60 s after the kept peak the test still judges (its "like" count,
 * the windows since one that restarts it, is not reset) */
static void test_kept_level_not_reset(void)
{
    run r;

    g_level = 1;
    g_like = -1;
    run_rows(1 << 30, 0, 0, &r);
    g_level = 0;
    T_CHECK(g_kept > 0, "windows kept (%llu)", (unsigned long long)g_kept);
    T_CHECK(g_like >= 300, "the level test was not restarted by the kept peak (like %d)",
            g_like);
}

/* acceptance off: no kept change either (it is an acceptance) */
static void test_acceptance_off(void)
{
    run r;

    g_accept = 0;
    run_rows(1 << 30, 0, 0, &r);
    g_accept = 1;
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 1,
            "acceptance off: the first peak after the step raised (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
}

/* --- the module alone: rows 1 s apart, P = 1440 s (buckets of 10 s,
 * an hour of 60 s). Features a, b with a cycle (c = 0.8 at phase
 * 900-1020 s), and a third one g(i) given per test; a step (a + 0.6,
 * b - 0.6) from SH, an alert [SH, SH + 30 s] cleared; the change is kept
 * once two hours (120 s) after the clear kept its way. --- */
#define SH 3180
#define PM ((int64_t)P * 1000)

typedef double (*third_fn)(int i, int stepped);

/* rows [g_less_from, g_less_to) show the step at a share g_less of it */
static int g_less_from = -1, g_less_to = -1;
static double g_less = 1;

static void shift_rows(ad_shift *s, int from, int to, double da, double db, third_fn g)
{
    for (int i = from; i < to; i++) {
        int ph = i % P;
        double c = ph >= 900 && ph < 1020 ? 0.8 : 0;
        double x[3];
        int st = i >= SH;
        double k = i >= g_less_from && i < g_less_to ? g_less : 1;

        x[0] = 1 + c + (st ? 0.6 * k + (i >= SH + 1500 ? da : 0) : 0) + 0.02 * noise();
        x[1] = 1 - c - (st ? 0.6 * k - (i >= SH + 1500 ? db : 0) : 0) + 0.02 * noise();
        x[2] = g(i, st);
        ad_shift_row(s, (int64_t)i * 1000, x);
    }
}

static int g_run;               /* held_share: the rows' windows over the threshold */
static int g_under_every;       /* ... but one row in that many under it (0: none) */
static int g_last_held;         /* held_share: the last row held, -1: none */

/* a share of the rows [from, to) that a held change holds (after the step
 * and its clear; from SH + 1500 a + da, b + db) */
static int g_shift_restart = -1;    /* held_share: saved and restored into a new one at that row */

static double held_share(third_fn g, double da, double db, int from, int to)
{
    ad_shift *s = ad_shift_new(3, PM);
    int n = 0;

    rng = 88172645463325252ull;
    if (s == NULL)
        return -1;
    shift_rows(s, 0, SH + 40, da, db, g);
    ad_shift_cleared(s, (int64_t)SH * 1000, (int64_t)(SH + 30) * 1000);
    shift_rows(s, SH + 40, from, da, db, g);
    g_last_held = -1;
    for (int i = from; i < to; i++) {
        int h;

        if (i == g_shift_restart) {
            /* a restart: the saved state into a new tracker */
            cJSON *o = ad_shift_save(s);
            ad_shift *s2 = ad_shift_new(3, PM);
            char err[200];

            T_CHECK(o && s2 && ad_shift_restore(s2, o, (int64_t)(i - 1) * 1000, err,
                                                sizeof err) == 0, "restored at %d", i);
            cJSON_Delete(o);
            ad_shift_free(s);
            s = s2;
        }
        shift_rows(s, i, i + 1, da, db, g);
        h = ad_shift_holds(s, (int64_t)i * 1000);
        if (g_run && g_under_every > 0 && i % g_under_every == 0)
            h = ad_shift_hold_run(s, (int64_t)i * 1000, 0);   /* a dip under it */
        else if (g_run)     /* every row a window over the threshold */
            h = ad_shift_hold_run(s, (int64_t)i * 1000, h);
        n += h;
        if (h)
            g_last_held = i;
    }
    ad_shift_free(s);
    return (double)n / (to - from);
}

static double g_noisy(int i, int st)
{
    (void)i;
    (void)st;
    return 1 + 0.02 * noise();
}

static double g_valve(int i, int st)
{
    (void)st;
    return i >= SH + 1500 ? 50 : 0;    /* a valve shut all along opens */
}

/* a constant with rounding noise, that the step moved by 1e-12: a swing
 * of nothing that must not decide the direction */
static double g_const(int i, int st)
{
    (void)i;
    return 0.1 * (1 + 4e-16 * noise()) + (st ? 1e-12 : 0);
}

/* a feature near 0 with noise of 1e-6 that the step moved by 1e-4: a
 * move of nothing worth a thousand of its spreads, that must not take
 * over the direction */
static double g_tiny(int i, int st)
{
    (void)i;
    return 1e-6 * noise() + (st ? 1e-4 : 0);
}

static void test_module_holds(void)
{
    /* the step's move at the peak after it holds */
    double h = held_share(g_noisy, 0, 0, 2 * P + 910, 2 * P + 1010);
    T_CHECK(h > 0.9, "the step holds at the peak (%.2f)", h);
    h = held_share(g_const, 0, 0, 2 * P + 910, 2 * P + 1010);
    T_CHECK(h > 0.9, "the step holds at the peak with a constant feature (%.2f)", h);
}

/* 1: a feature flat in the reference that moves vetoes the hold */
static void test_flat_feature_vetoes(void)
{
    double h = held_share(g_valve, 0, 0, SH + 1600, SH + 1800);

    T_CHECK(h == 0, "a flat valve that opened: nothing held (%.2f)", h);
}

/* 2: a constant's rounding noise does not take over the direction: a
 * fault the other way (a - 1.2, b + 1.2 from the step's level) holds
 * nothing */
static void test_rounding_noise_no_direction(void)
{
    double h = held_share(g_const, -1.2, 1.2, SH + 1600, SH + 1800);

    T_CHECK(h == 0, "a fault the other way with a constant feature: nothing held (%.2f)", h);
}

/* 2b: nor does a feature near 0 with tiny noise (flat under a spread of
 * 1e-4 of max(|level|, 1)): the fault the other way holds nothing */
static void test_tiny_feature_no_direction(void)
{
    double h = held_share(g_tiny, -1.2, 1.2, SH + 1600, SH + 1800);

    T_CHECK(h == 0, "a fault the other way with a tiny feature near 0: nothing held (%.2f)", h);
    h = held_share(g_tiny, 0, 0, 2 * P + 910, 2 * P + 1010);
    T_CHECK(h > 0.9, "the step holds at the peak with a tiny feature near 0 (%.2f)", h);
}

/* 3: fewer than 3 features: off; a displacement well past the change's
 * (the step doubled the same way) holds nothing */
static void test_same_way_bounded(void)
{
    ad_shift *s = ad_shift_new(2, PM);
    double h;

    T_CHECK(s == NULL, "2 features: no kept change");
    ad_shift_free(s);
    h = held_share(g_noisy, 0.6, -0.6, SH + 1600, SH + 1800);
    T_CHECK(h == 0, "the step doubled the same way: nothing held (%.2f)", h);
}

/* 6: a restart keeps the kept change: the peaks after it raise nothing
 * (restored 400 s after the step, before the first peak), the state says
 * what is kept, and a fault another way still raises */
static void test_kept_across_restart(void)
{
    run r;

    g_restore_at = STEP + 400;
    run_rows(1 << 30, 5500, 0, &r);
    g_restore_at = -1;
    T_CHECK(g_restored && g_saved_shift, "restored (%d), the saved state held the change (%d)",
            g_restored, g_saved_shift);
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 0,
            "after a restart the first peak after the step raised nothing (%d)",
            raised_in(&r, 2 * P + 880, 2 * P + 1040));
    T_CHECK(raised_in(&r, 3 * P + 880, 3 * P + 1040) == 0,
            "after a restart the second peak raised nothing (%d)",
            raised_in(&r, 3 * P + 880, 3 * P + 1040));
    T_CHECK(raised_in(&r, 5500, 5530) == 1, "after a restart a fault another way raised (%d)",
            raised_in(&r, 5500, 5530));
    T_CHECK(g_kept_at_restore, "the restored detector says a change is kept");
    T_CHECK(g_kc.since_ms > (int64_t)STEP * 1000 && g_kc.since_ms <= (int64_t)(STEP + 400) * 1000 &&
            g_kc.until_ms > (int64_t)(3 * P + 1040) * 1000 &&
            g_kc.until_ms <= (int64_t)(STEP + 2 * P + 100) * 1000,
            "kept since %lld until %lld ms (the step at %d s)", (long long)g_kc.since_ms,
            (long long)g_kc.until_ms, STEP);
    T_CHECK(g_kc_u[0] > 1 && g_kc_u[1] < -1 && g_kc_u[2] > 1 && g_kc.norm >= 1,
            "its features' moves: a %+.2f b %+.2f g %+.2f (norm %.2f)", g_kc_u[0], g_kc_u[1],
            g_kc_u[2], g_kc.norm);
    T_CHECK(g_kept > 0, "windows kept after the restart (%llu)", (unsigned long long)g_kept);
}

/* 6b: damaged saved shift data: said (naming it), the rest of the state
 * loads (the threshold), the change is lost: the peak raises as it did
 * before the change was saved */
static void test_kept_restore_damaged(void)
{
    run r;

    g_restore_at = STEP + 400;
    g_damage = 1;
    g_said_damaged = 0;
    run_rows(1 << 30, 0, 0, &r);
    g_restore_at = -1;
    g_damage = 0;
    T_CHECK(g_restored, "a state with damaged shift data restored");
    T_CHECK(g_said_damaged, "a warning named the damaged shift data");
    T_CHECK(g_thr_after == g_thr_before && g_thr_before > 0, "the threshold restored (%g, "
            "saved %g)", g_thr_after, g_thr_before);
    T_CHECK(!g_kept_at_restore, "no change kept from damaged data");
    T_CHECK(raised_in(&r, 2 * P + 880, 2 * P + 1040) == 1,
            "without it the first peak raised (%d)", raised_in(&r, 2 * P + 880, 2 * P + 1040));
}

/* 6c: a restart with the clock stepped back 300 s (the daemon's restore
 * moves the stream's last row to now): the kept change's buckets of the
 * times now met again hold the rows that came before the step back, not
 * these; a fault another way 100 s later raises, as it would have with
 * no kept change (nothing judges it on the old rows) */
static void test_kept_clock_back(void)
{
    run r;

    g_restore_at = STEP + 800;
    g_back = 300;
    g_said_damaged = 0;
    run_rows(1 << 30, STEP + 900, 0, &r);
    g_restore_at = -1;
    g_back = 0;
    T_CHECK(g_restored, "a state restored with the clock 300 s back");
    T_CHECK(raised_in(&r, STEP + 900, STEP + 930) == 1,
            "after the clock stepped back, a fault another way raised (%d)",
            raised_in(&r, STEP + 900, STEP + 930));
    T_CHECK(!g_kept_at_restore, "no change kept over rows of another clock");
}

/* 6d: a saved kept change whose end lies a year of periods out (damaged,
 * edited): refused, named; the rest of the state loads */
static void test_kept_restore_far_end(void)
{
    run r;

    g_restore_at = STEP + 400;
    g_damage_change = 1;
    g_said_damaged = 0;
    run_rows(1 << 30, 0, 0, &r);
    g_restore_at = -1;
    g_damage_change = 0;
    T_CHECK(g_restored, "a state with a kept change ending a year out restored");
    T_CHECK(!g_kept_at_restore, "no change kept from it (until %lld ms)",
            (long long)g_kc.until_ms);
    T_CHECK(g_said_damaged, "a warning named the kept change's data");
}

/* 6e: a saved change whose u is not the displacement of its norm (a
 * feature's move x 1000: any window would then be "the change's way"),
 * or a ring ending at a bucket index whose time overflows: refused; the
 * same state unchanged: restored, kept */
static void test_kept_restore_inconsistent(void)
{
    ad_shift *s = ad_shift_new(3, PM), *s2 = ad_shift_new(3, PM);
    cJSON *o;
    char err[200];
    int rc;

    rng = 88172645463325252ull;
    T_CHECK(s && s2, "trackers made");
    if (!s || !s2)
        return;
    shift_rows(s, 0, SH + 40, 0, 0, g_noisy);
    ad_shift_cleared(s, (int64_t)SH * 1000, (int64_t)(SH + 30) * 1000);
    shift_rows(s, SH + 40, SH + 400, 0, 0, g_noisy);
    T_CHECK(ad_shift_state(s) == 2, "a change kept (state %d)", ad_shift_state(s));
    o = ad_shift_save(s);
    rc = ad_shift_restore(s2, o, (int64_t)(SH + 399) * 1000, err, sizeof err);
    T_CHECK(rc == 0 && ad_shift_state(s2) == 2, "the state as saved: restored, kept (%d)", rc);
    ad_shift_free(s2);
    s2 = ad_shift_new(3, PM);
    {
        cJSON *u = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "change"), "u");
        cJSON *x = cJSON_GetArrayItem(u, 0);
        cJSON_SetNumberValue(x, x->valuedouble * 1000);
    }
    err[0] = 0;
    rc = ad_shift_restore(s2, o, (int64_t)(SH + 399) * 1000, err, sizeof err);
    T_CHECK(rc != 0 && ad_shift_state(s2) == 0 && strstr(err, "u "),
            "u x 1000 on one feature: refused (%d: %s)", rc, err);
    ad_shift_free(s2);
    cJSON_Delete(o);
    o = ad_shift_save(s);
    s2 = ad_shift_new(3, PM);
    /* an empty ring at 1e15 (x 10 s: past int64_t ms): its rows would all
     * be dropped as older, its times overflow */
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "cur"), 1e15);
    cJSON_ReplaceItemInObjectCaseSensitive(o, "buckets", cJSON_CreateArray());
    cJSON_DeleteItemFromObjectCaseSensitive(o, "change");
    rc = ad_shift_restore(s2, o, INT64_MIN, err, sizeof err);
    T_CHECK(rc != 0, "an empty ring at bucket 1e15: refused (%d: %s)", rc, err);
    cJSON_Delete(o);
    ad_shift_free(s2);
    ad_shift_free(s);
}

/* 7: a change kept, and one that did not stay, as a user reading the
 * state sees them: counted once kept and when a renewal moved its end
 * an hour (the retained state is published again), never for a step
 * that went back */
static void test_kept_seq(void)
{
    run r;

    run_rows(1 << 30, 0, 0, &r);
    /* kept, then renewed past its first end at the second peak (120 s:
     * its end said again when it moved an hour, 60 s, not at each window) */
    T_CHECK(g_kept_seq >= 2 && g_kept_seq <= 4, "a change kept and renewed: said when kept "
            "and when its end moved an hour (%llu)", (unsigned long long)g_kept_seq);
    run_rows(20, 0, 1, &r);
    T_CHECK(g_kept_seq == 0, "a step that went back: nothing kept (%llu)",
            (unsigned long long)g_kept_seq);
}

/* 8: a fault that moves the rows the change's way by less than twice as
 * far, over the threshold for longer than a daily peak (P / 4): held for
 * P / 4 at most, then the change ends (the windows raise) */
static void test_same_way_long_fault(void)
{
    double h;

    g_run = 1;
    h = held_share(g_noisy, 0.3, -0.3, SH + 1600, SH + 2100);
    g_run = 0;
    T_CHECK(h > 0 && g_last_held <= SH + 1600 + P / 4,
            "a same-way fault over the threshold for 500 s: held until %d s (P / 4 = %d s "
            "after %d)", g_last_held, P / 4, SH + 1600);
    /* a peak's 100 s stay held */
    g_run = 1;
    h = held_share(g_noisy, 0, 0, 2 * P + 910, 2 * P + 1010);
    g_run = 0;
    T_CHECK(h > 0.9, "the step's peak held (%.2f)", h);
    /* a restart 300 s into it (before P / 4) does not start the run
     * again: still held for P / 4 at most */
    g_run = 1;
    g_shift_restart = SH + 1900;
    h = held_share(g_noisy, 0.3, -0.3, SH + 1600, SH + 2300);
    g_shift_restart = -1;
    g_run = 0;
    T_CHECK(h > 0 && g_last_held <= SH + 1600 + P / 4,
            "a same-way fault with a restart 300 s into it: held until %d s (P / 4 = %d s "
            "after %d)", g_last_held, P / 4, SH + 1600);
}

/* 8b: a renewed end falls inside an hour (buckets of 10 s, hours of
 * 60 s): the change ends there, not at the next hour judged; windows
 * after it are not held (nor renew it) */
static void test_renewed_end_on_time(void)
{
    ad_shift *s = ad_shift_new(3, PM);
    ad_shift_info in;
    int held_before, held_after;

    rng = 88172645463325252ull;
    if (s == NULL)
        return;
    shift_rows(s, 0, SH + 40, 0, 0, g_noisy);
    ad_shift_cleared(s, (int64_t)SH * 1000, (int64_t)(SH + 30) * 1000);
    shift_rows(s, SH + 40, 5021, 0, 0, g_noisy);
    /* a window kept at 5020 s (bucket 502): the change holds to the end
     * of bucket 646, 50 s before the hour judged next (bucket 652) */
    ad_shift_renew(s, (int64_t)5020 * 1000);
    T_CHECK(ad_shift_kept(s, &in) && in.until_ms == (int64_t)6470 * 1000,
            "renewed until %lld ms", (long long)in.until_ms);
    shift_rows(s, 5021, 6466, 0, 0, g_noisy);
    held_before = ad_shift_holds(s, (int64_t)6465 * 1000);
    shift_rows(s, 6466, 6476, 0, 0, g_noisy);
    held_after = ad_shift_holds(s, (int64_t)6475 * 1000);
    T_CHECK(held_before == 1, "held before its end (%d)", held_before);
    T_CHECK(held_after == 0 && ad_shift_state(s) == 0 &&
            ad_shift_ended_why(s) == AD_SHIFT_END_EXPIRED,
            "ended at its renewed end: held %d, state %d, why %d", held_after,
            ad_shift_state(s), ad_shift_ended_why(s));
    ad_shift_free(s);
}

/* 8c: a saved end of renewals past the bound (expire_max more than five
 * periods after expire: no clear gives that) is damaged, not renewed for
 * ever */
static void test_renew_bound_restored(void)
{
    ad_shift *s = ad_shift_new(3, PM), *s2 = ad_shift_new(3, PM);
    cJSON *o, *c;
    char err[200] = "";
    int rc = -1, rc_ok = -1;

    rng = 88172645463325252ull;
    if (s == NULL || s2 == NULL)
        goto out;
    shift_rows(s, 0, SH + 40, 0, 0, g_noisy);
    ad_shift_cleared(s, (int64_t)SH * 1000, (int64_t)(SH + 30) * 1000);
    shift_rows(s, SH + 40, SH + 400, 0, 0, g_noisy);
    o = ad_shift_save(s);
    c = o ? cJSON_GetObjectItemCaseSensitive(o, "change") : NULL;
    if (c != NULL) {
        rc_ok = ad_shift_restore(s2, o, INT64_MIN, err, sizeof(err));
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "expire_max"), 1e12);
        rc = ad_shift_restore(s2, o, INT64_MIN, err, sizeof(err));
    }
    cJSON_Delete(o);
    T_CHECK(rc_ok == 0, "the saved change restored (%d)", rc_ok);
    T_CHECK(rc != 0 && strstr(err, "expire_max"), "an expire_max past the bound: damaged "
            "(%d: %s)", rc, rc ? err : "");
out:
    ad_shift_free(s);
    ad_shift_free(s2);
}

/* 10: a fault the change's way whose score dips under the threshold a
 * window now and then is held P / 4 at most all the same: only a stretch
 * under the threshold (P / AD_SHIFT_RUN_GAP_DIV) ends the run; after one
 * the next run is held again */
static void test_same_way_fault_dips(void)
{
    double h;

    g_run = 1;
    g_under_every = 50;
    h = held_share(g_noisy, 0.3, -0.3, SH + 1600, SH + 2300);
    g_under_every = 0;
    g_run = 0;
    T_CHECK(h > 0 && g_last_held <= SH + 1600 + P / 4,
            "a same-way fault over the threshold for 700 s, one window in 50 under it: held "
            "until %d s (P / 4 = %d s after %d)", g_last_held, P / 4, SH + 1600);
    /* the same with a restart 300 s into it: the run goes on from its
     * last window held, not anew */
    g_run = 1;
    g_under_every = 50;
    g_shift_restart = SH + 1900;
    h = held_share(g_noisy, 0.3, -0.3, SH + 1600, SH + 2300);
    g_shift_restart = -1;
    g_under_every = 0;
    g_run = 0;
    T_CHECK(h > 0 && g_last_held <= SH + 1600 + P / 4,
            "... with a restart 300 s into it: held until %d s (P / 4 = %d s after %d)",
            g_last_held, P / 4, SH + 1600);
    /* two peaks' worth (200 s each) 100 s apart under the threshold: two
     * runs, both held */
    g_run = 1;
    g_under_every = 0;
    {
        ad_shift *s = ad_shift_new(3, PM);
        int n = 0, m = 0;

        rng = 88172645463325252ull;
        T_CHECK(s != NULL, "tracker");
        if (s == NULL)
            return;
        shift_rows(s, 0, SH + 40, 0, 0, g_noisy);
        ad_shift_cleared(s, (int64_t)SH * 1000, (int64_t)(SH + 30) * 1000);
        shift_rows(s, SH + 40, SH + 1600, 0.3, -0.3, g_noisy);
        for (int i = SH + 1600; i < SH + 2100; i++) {
            int over = i < SH + 1800 || i >= SH + 1900;

            shift_rows(s, i, i + 1, 0.3, -0.3, g_noisy);
            if (over) {
                m++;
                n += ad_shift_hold_run(s, (int64_t)i * 1000, ad_shift_holds(s, (int64_t)i * 1000));
            } else {
                ad_shift_hold_run(s, (int64_t)i * 1000, 0);
            }
        }
        T_CHECK(n == m && ad_shift_state(s) == 2,
                "two runs of 200 s 100 s apart under the threshold: %d of %d windows held, "
                "the change still kept (%d)", n, m, ad_shift_state(s));
        ad_shift_free(s);
    }
    g_run = 0;
}

/* 11: a step shows less at some hours than at its clear: an hour moving
 * the rows its way by under half of |u| but by a change's worth
 * (AD_SHIFT_MIN) does not end it, and the next peak is still held; an
 * hour where the step went back (a tenth of it) ends it */
static void test_step_shows_less(void)
{
    double h;

    g_less_from = SH + 1000;            /* the hour [SH + 1000, SH + 1060) whole */
    g_less_to = SH + 1120;
    g_less = 0.4;
    h = held_share(g_noisy, 0, 0, 3 * P + 910, 3 * P + 1010);
    T_CHECK(h > 0.9, "an hour with the step at 0.4 of it: the next peak held (%.2f)", h);
    g_less = 0.1;
    h = held_share(g_noisy, 0, 0, 3 * P + 910, 3 * P + 1010);
    T_CHECK(h == 0, "an hour with the step at 0.1 of it (gone back): nothing held (%.2f)", h);
    g_less = 1;
    g_less_from = g_less_to = -1;
}

/* a constant 1e-4 (flat) that goes to 5e-4 after the clear */
static double g_small(int i, int st)
{
    (void)st;
    return i >= SH + 1500 ? 5e-4 : 1e-4;
}

/* a valve shut at exactly 0 that opens a crack */
static double g_crack(int i, int st)
{
    (void)st;
    return i >= SH + 1500 ? 1e-6 : 0;
}

/* a temperature of 300 K +- 0.02 that the step warmed by 0.2 K, cooled
 * back to 300 K after the clear when tc */
static int g_cool;
static double g_temp(int i, int st)
{
    return 300 + 0.02 * noise() + (st && !(g_cool && i >= SH + 1500) ? 0.2 : 0);
}

/* a sensor present in the reference that goes silent after the clear */
static double g_silent(int i, int st)
{
    (void)st;
    return i >= SH + 1500 ? NAN : 1 + 0.02 * noise();
}

/* 9: small features: a flat feature's veto relative to its own level
 * (1e-4 -> 5e-4, 0 -> 1e-6); a temperature with a large offset counts by
 * its move (the step's warming gone: another way); a silent feature
 * vetoes */
static void test_small_features(void)
{
    double h = held_share(g_small, 0, 0, SH + 1600, SH + 1800);

    T_CHECK(h == 0, "a flat 1e-4 that went to 5e-4: nothing held (%.2f)", h);
    h = held_share(g_crack, 0, 0, SH + 1600, SH + 1800);
    T_CHECK(h == 0, "a valve at 0 that opened to 1e-6: nothing held (%.2f)", h);
    h = held_share(g_small, 0, 0, 2 * P + 910, 2 * P + 1010);
    T_CHECK(h > 0.9, "the step holds at the peak with a flat 1e-4 (%.2f)", h);
    g_cool = 0;
    h = held_share(g_temp, 0, 0, 2 * P + 910, 2 * P + 1010);
    T_CHECK(h > 0.9, "the step holds at the peak with the warmed temperature (%.2f)", h);
    g_cool = 1;
    h = held_share(g_temp, 0, 0, SH + 1600, SH + 1800);
    g_cool = 0;
    T_CHECK(h == 0, "the temperature cooled back while the rest stayed: nothing held (%.2f)",
            h);
    h = held_share(g_silent, 0, 0, SH + 1600, SH + 1800);
    T_CHECK(h == 0, "a feature gone silent: nothing held (%.2f)", h);
}

int main(void)
{
    T_RUN(test_peaks_after_step);
    T_RUN(test_step_gone);
    T_RUN(test_peaks_renewed);
    T_RUN(test_renewed_across_restart);
    T_RUN(test_renewal_said);
    T_RUN(test_acceptance_off);
    T_RUN(test_kept_not_learned);
    T_RUN(test_kept_level_not_reset);
    T_RUN(test_module_holds);
    T_RUN(test_flat_feature_vetoes);
    T_RUN(test_rounding_noise_no_direction);
    T_RUN(test_tiny_feature_no_direction);
    T_RUN(test_same_way_bounded);
    T_RUN(test_kept_across_restart);
    T_RUN(test_kept_restore_damaged);
    T_RUN(test_kept_clock_back);
    T_RUN(test_kept_restore_far_end);
    T_RUN(test_kept_restore_inconsistent);
    T_RUN(test_kept_seq);
    T_RUN(test_same_way_long_fault);
    T_RUN(test_renewed_end_on_time);
    T_RUN(test_renew_bound_restored);
    T_RUN(test_small_features);
    T_RUN(test_same_way_fault_dips);
    T_RUN(test_step_shows_less);
    ad_model_free(g_model);
    return t_done();
}
