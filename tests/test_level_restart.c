/*
 * test_level_restart.c - the level test (alert.level_ms) and the burst
 * test (alert.burst_ms) keep their state across a restore (the stream's
 * state: a stop, an eviction, a Kafka hand-over, a kill -9 after a
 * periodic save). Each case runs the same rows once without interruption
 * and once saved and restored into a fresh detector at the row given, and
 * compares the alerts raised (their data times):
 *   - a rise under the threshold whose mean crosses the level test's fence
 *     near the end of its span, saved at 5/6 of alert.level_ms: restored
 *     from a hand-over and from a save in the middle of the stream, it
 *     raises at the same window as the run without a restore (before the
 *     state kept the mean, the test was blind for level_ms after the
 *     restore and raised a span later); the same with a span of 1000
 *     windows, saved as block means;
 *   - the saved mean is dropped, with a line saying why, under another
 *     alert.level_ms, after a gap in the data longer than the span (the
 *     stream back days later) and under another model (the whole
 *     calibration is refused): the test judges again after a full span;
 *   - a damaged level part is named in a warning, the rest restored;
 *   - a spike train (an intermittent fault) saved after its second spike:
 *     a hand-over raises at the same row as the run without a restore (the
 *     outliers counted and the neighbourhood's rows go with the state;
 *     before, the count started over); a save in the middle of the stream
 *     (no rows) raises within the rows the neighbourhood takes to refill;
 *     under another alert.burst_n the count starts over, with a line.
 *
 * Model: one TimeDistributed Dense with zero weights (t_model.h): a
 * window's MAE score is the mean |value| of its rows. T = 4, rows 2 s apart.
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
#define DT 2000                 /* ms between rows */

static uint64_t rng;

/* uniform in [-1, 1) */
static double noise(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static int warnings, dropped, g_usual_warned;
static void count_log(int level, const char *msg, void *u)
{
    (void)u;
    if (level == AD_LOG_WARNING)
        warnings++;
    if (level == AD_LOG_WARNING && strstr(msg, "pump") && strstr(msg, "usual"))
        g_usual_warned++;
    if (strstr(msg, "dropped") || strstr(msg, "starts over") || strstr(msg, "model changed"))
        dropped++;
    if (level <= AD_LOG_WARNING || strstr(msg, "level test") || strstr(msg, "burst test"))
        fprintf(stderr, "  (log) %s\n", msg);
}

static ad_model *g_zero, *g_scaled, *g_other;
static int g_sigma;             /* threshold.method sigma */

/* The models: zero weights; the same with a standard scaler of spread 0.1
 * (the burst test's floor); the zero model with a scaler of spread 1 (the
 * same scores, another model id). */
static int models(void)
{
    const float m0[F] = { 0, 0 }, s01[F] = { 0.1f, 0.1f }, s1[F] = { 1, 1 };
    void *buf;
    size_t len;

    if (g_zero != NULL)
        return 0;
    g_zero = t_zero_model(TW, F);
    g_scaled = t_zero_model(TW, F);
    g_other = t_zero_model(TW, F);
    if (!g_zero || !g_scaled || !g_other ||
        ad_model_set_scaler(g_scaled, AD_SCALER_STANDARD, m0, s01) != 0 ||
        ad_model_set_scaler(g_other, AD_SCALER_STANDARD, m0, s1) != 0)
        return -1;
    if (ad_model_serialize(g_scaled, &buf, &len) == 0)    /* its own id */
        free(buf);
    if (ad_model_serialize(g_other, &buf, &len) == 0)
        free(buf);
    return 0;
}

/* A detector: calibration on 50 windows; level test over level_ms at z 6,
 * or the burst test over burst_ms (burst_n n, z 5) on the scaled model. */
static ad_detector *mk(const ad_model *m, int64_t level_ms, int64_t burst_ms, int n)
{
    ad_detector_cfg c;
    ad_detector *d = NULL;
    char err[300];

    if (models() != 0)
        return NULL;
    ad_detector_cfg_default(&c);
    c.calib_windows = 50;
    c.alert.level_ms = level_ms;
    c.alert.level_z = 6;
    c.alert.burst_ms = burst_ms;
    c.alert.burst_n = n;
    c.alert.burst_z = 5;
    if (g_sigma)
        c.thr.method = AD_THR_SIGMA;
    if (ad_detector_new(&d, &c, "pump", m, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "detector: %s", err);
        return NULL;
    }
    return d;
}

/* The alerts raised: their count, the first's row, the text of all. */
typedef struct run {
    int raised;
    long long first;            /* row of the first raise (-1: none) */
    char ev[512];
    size_t state_bytes;         /* the saved state's size */
    char *level_part, *burst_part;   /* the saved "level" / "burst", as text */
    int64_t gap_from, gap_ms;   /* rows from gap_from on were pushed gap_ms late */
    int64_t slow_dt;            /* SLOWER: rows from gap_from on slow_dt apart */
    int cleared;                /* alerts cleared */
    long long first_clear;      /* row of the first clear (-1: none) */
} run;

/* What a run holds (its saved parts), freed; the run can be used again. */
static void run_free(run *r)
{
    free(r->level_part);
    free(r->burst_part);
    r->level_part = r->burst_part = NULL;
}

static void step(ad_detector *d, int64_t ts, double a, double b, run *r)
{
    double row[F] = { a, b };
    float in[TW * F], out[TW * F], share[F];
    ad_window_job job;
    ad_event ev;

    ad_detector_push_row(d, ts, row, NULL);
    while (ad_detector_next_window(d, in, &job)) {
        float mae;
        const ad_model *m = job.model;
        /* the zero model's reconstruction, on the raw rows' scale: the
         * score is the mean |value| whatever the scaler */
        ad_forward_ref(m, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        if (m->scaler == AD_SCALER_STANDARD)
            mae *= m->scale_b[0];
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev)) {
        if (ev.type == AD_EV_ALERT_CLEARED && r->cleared++ == 0)
            r->first_clear = (ev.ts_ms >= r->gap_from + r->gap_ms ? ev.ts_ms - r->gap_ms :
                              ev.ts_ms) / DT;
        if (ev.type != AD_EV_ALERT_RAISED)
            continue;
        int64_t at_row = (ev.ts_ms >= r->gap_from + r->gap_ms ? ev.ts_ms - r->gap_ms :
                          ev.ts_ms) / DT;
        if (r->slow_dt > 0 && ev.ts_ms >= r->gap_from)
            at_row = (r->gap_from + (ev.ts_ms - r->gap_from) / r->slow_dt * DT) / DT;
        if (r->raised++ == 0)
            r->first = at_row;
        size_t n = strlen(r->ev);
        snprintf(r->ev + n, sizeof(r->ev) - n, " r%lld", (long long)at_row);
    }
}

/* How a run is restored at row `at` (before it is pushed): */
enum {
    NONE,           /* not restored */
    HANDOVER,       /* a hand-over save (a stop, an eviction) */
    MIDSTREAM,      /* a save in the middle of the stream (kill -9 after it) */
    NOPART,         /* a hand-over without the level/burst part (an older file) */
    DAMAGED,        /* a hand-over with level.n out of range */
    OTHER_LEVEL,    /* restored with alert.level_ms 3/4 of the saved */
    OTHER_MODEL,    /* restored under another model id */
    OTHER_N,        /* restored with alert.burst_n one more */
    LIVE,           /* not restored: the live stream silent before row at */
    SLOWER,         /* not restored: from row at on, rows gap_ms apart */
    USUAL_HUGE,     /* a hand-over whose burst.usual[0] is 1e12 */
    USUAL_NEG,      /* ... is -1 */
    USUAL_SHORT,    /* ... burst.usual holds one spread of two */
    USUAL_TEXT,     /* ... burst.usual[1] is "x" */
};

typedef void (*rows_fn)(int i, double *a, double *b);

/* Rows [0, n) of pattern rf through detector (m, level_ms, burst_ms,
 * burst_n), restored at row at; the rows from at on are pushed gap_ms
 * later. */
static void run_rows(const ad_model *m, int64_t level_ms, int64_t burst_ms, int bn, rows_fn rf,
                     int n, int at, int how, int64_t gap_ms, run *r)
{
    ad_detector *d = mk(m, level_ms, burst_ms, bn);
    int i;

    run_free(r);
    memset(r, 0, sizeof(*r));
    r->first = -1;
    r->first_clear = -1;
    r->gap_from = (int64_t)DT * at;
    r->gap_ms = how != NONE && how != SLOWER ? gap_ms : 0;
    r->slow_dt = how == SLOWER ? gap_ms : 0;
    rng = 88172645463325252ull;
    for (i = 0; d && i < n; i++) {
        double a, b;

        rf(i, &a, &b);
        if (how != NONE && how != LIVE && how != SLOWER && i == at) {
            char *s = how == MIDSTREAM ? ad_detector_save(d) : ad_detector_save_handover(d);
            cJSON *o = s ? cJSON_Parse(s) : NULL, *x;
            char err[300];
            ad_detector *d2;
            int rc;

            r->state_bytes = s ? strlen(s) : 0;
            if ((x = cJSON_GetObjectItemCaseSensitive(o, "level")) != NULL)
                r->level_part = cJSON_PrintUnformatted(x);
            if ((x = cJSON_GetObjectItemCaseSensitive(o, "burst")) != NULL)
                r->burst_part = cJSON_PrintUnformatted(x);
            if (o && how == NOPART) {
                cJSON_DeleteItemFromObject(o, "level");
                cJSON_DeleteItemFromObject(o, "burst");
            }
            x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "burst"),
                                                 "usual");
            if (x && (how == USUAL_HUGE || how == USUAL_NEG))
                cJSON_ReplaceItemInArray(x, 0, cJSON_CreateNumber(how == USUAL_HUGE ? 1e12 :
                                                                  -1));
            if (x && how == USUAL_SHORT)
                cJSON_DeleteItemFromArray(x, 1);
            if (x && how == USUAL_TEXT)
                cJSON_ReplaceItemInArray(x, 1, cJSON_CreateString("x"));
            if (o && how == DAMAGED)
                cJSON_ReplaceItemInObject(cJSON_GetObjectItemCaseSensitive(o, "level"), "n",
                                          cJSON_CreateNumber(1e9));
            free(s);
            s = o ? cJSON_PrintUnformatted(o) : NULL;
            cJSON_Delete(o);
            d2 = mk(how == OTHER_MODEL ? g_other : m,
                    how == OTHER_LEVEL ? level_ms * 3 / 4 : level_ms, burst_ms,
                    how == OTHER_N ? bn + 1 : bn);
            rc = s && d2 ? ad_detector_restore(d2, s, err, sizeof(err)) : -1;
            if (how == OTHER_MODEL)
                T_CHECK(rc == AD_EINVAL, "restore under another model refused (%d: %s)", rc,
                        rc == -1 ? "no state" : err);
            else
                T_CHECK(rc == 0, "restore at row %d: %s", i, rc == -1 ? "no state" : err);
            free(s);
            ad_detector_free(d);
            d = d2;
        }
        if (how == SLOWER)
            step(d, i < at ? (int64_t)DT * i : (int64_t)DT * at + (int64_t)(i - at) * gap_ms,
                 a, b, r);
        else
            step(d, (int64_t)DT * i + (how != NONE && i >= at ? gap_ms : 0), a, b, r);
    }
    ad_detector_free(d);
}

/* ---- the level test --------------------------------------------------------- */

/* Values ~1 +- 0.2 (score ~1, spread ~0.04, fence ~1.25, threshold ~1.65),
 * then from row 400 the level rises to 1.22 for good: the mean over a span
 * of L windows crosses the fence some 0.9 L windows into the rise. */
#define RISE 400
static double g_scale = 1;     /* the rows' (and the scores') scale */
#ifndef LIFT
#define LIFT 1.22
#endif
static void rise(int i, double *a, double *b)
{
    double lvl = i >= RISE ? LIFT : 1.0;

    *a = g_scale * (lvl + 0.2 * noise());
    *b = g_scale * (lvl + 0.2 * noise());
}

static void test_level_restored(void)
{
    static const int Ls[2] = { 60, 1000 };
    int k;

    for (k = 0; k < 2; k++) {
        int64_t L = (int64_t)Ls[k] * DT;
        int at = RISE + Ls[k] * 5 / 6, n = RISE + 2 * Ls[k] + 100;
        run base = { 0 }, ho = { 0 }, mid = { 0 };

        run_rows(g_zero, L, 0, 3, rise, n, 0, NONE, 0, &base);
        run_rows(g_zero, L, 0, 3, rise, n, at, HANDOVER, 0, &ho);
        run_rows(g_zero, L, 0, 3, rise, n, at, MIDSTREAM, 0, &mid);
        T_CHECK(base.raised >= 1 && base.first > at,
                "span %d windows: uninterrupted raised at row %lld (want after the save at "
                "row %d)", Ls[k], base.first, at);
        T_CHECK(ho.first == base.first,
                "hand-over at row %d (5/6 of the span into the rise): raised at row %lld, "
                "uninterrupted %lld", at, ho.first, base.first);
        /* no window rows: the ring refills in TW - 1 rows, those windows
         * are missing from the span (counted by data time, judged once it
         * is full again) */
        T_CHECK(mid.first >= base.first && mid.first <= base.first + 2 * TW,
                "save in the middle of the stream at row %d: raised at row %lld, "
                "uninterrupted %lld (want at most %d rows later)", at, mid.first, base.first,
                2 * TW);
        T_CHECK(ho.level_part != NULL, "the state holds the level test (\"level\")");
        T_NOTE("span %d windows (%lld s), rise at row %d: uninterrupted raised at row %lld; "
               "restored at row %d: hand-over %lld, mid-stream save %lld; state %zu bytes, "
               "its level part %zu", Ls[k], (long long)L / 1000, RISE, base.first, at, ho.first,
               mid.first, ho.state_bytes, ho.level_part ? strlen(ho.level_part) : 0);
        run_free(&base);
        run_free(&ho);
        run_free(&mid);
    }
}

/* The cases where the saved mean must not be continued: each raises a
 * full span after the restore at the earliest (the fence is crossed then
 * at once: the ring holds the rise alone). */
static void test_level_dropped(void)
{
    int Lw = 60, at = RISE + Lw * 5 / 6, n = RISE + 3 * Lw + 100;
    int64_t L = (int64_t)Lw * DT, day3 = 3 * 86400000LL;
    run base = { 0 }, r = { 0 };
    static const struct { int how; int64_t gap; int span; const char *what; } cs[] = {
        { NOPART, 0, 60, "a state without the level part (an older file)" },
        { OTHER_LEVEL, 0, 45, "alert.level_ms 3/4 of the saved" },
        { HANDOVER, 3 * 86400000LL, 60, "a gap of 3 days after the save" },
        { OTHER_MODEL, 0, 60, "another model (calibrates again)" },
    };
    int k;

    (void)day3;
    run_rows(g_zero, L, 0, 3, rise, n, 0, NONE, 0, &base);
    for (k = 0; k < (int)(sizeof(cs) / sizeof(cs[0])); k++) {
        dropped = 0;
        ad_log_set(count_log, NULL);
        run_rows(g_zero, L, 0, 3, rise, n, at, cs[k].how, cs[k].gap, &r);
        ad_log_set(NULL, NULL);
        T_CHECK(r.first >= at + cs[k].span || (cs[k].how == OTHER_MODEL && r.first < 0),
                "%s: raised at row %lld (want none or a span of %d windows after the restore at "
                "row %d or later; uninterrupted %lld)", cs[k].what, r.first, cs[k].span, at,
                base.first);
        T_CHECK(cs[k].how == NOPART || cs[k].how == OTHER_MODEL || dropped >= 1, "%s: a line says the mean is dropped",
                cs[k].what);
        T_NOTE("%s: raised at row %lld (uninterrupted %lld)", cs[k].what, r.first,
               base.first);
    }
    /* a short gap (10 windows of data missing): those go from the span,
     * the test judges once it is full again */
    run_rows(g_zero, L, 0, 3, rise, n, at, HANDOVER, 10 * DT, &r);
    T_CHECK(r.first >= base.first && r.first <= base.first + 12,
            "a gap of 10 rows: raised at row %lld (want %lld..%lld)", r.first, base.first,
            base.first + 12);
    T_NOTE("a gap of 10 rows after the save: raised at row %lld", r.first);
    /* the live stream silent as long: the same as after a restore (the
     * mean went on across the silence: 3 days later the rows before it
     * still made the mean, and the test raised as if there had been none) */
    dropped = 0;
    ad_log_set(count_log, NULL);
    run_rows(g_zero, L, 0, 3, rise, n, at, LIVE, day3, &r);
    ad_log_set(NULL, NULL);
    T_CHECK(r.first >= at + Lw && dropped >= 1,
            "live stream silent 3 days at row %d: raised at row %lld (want %d or later, a "
            "span after the silence; uninterrupted %lld), %d line saying the mean starts "
            "over (want 1)", at, r.first, at + Lw, base.first, dropped);
    T_NOTE("live stream silent 3 days: raised at row %lld", r.first);
    run_rows(g_zero, L, 0, 3, rise, n, at, LIVE, 10 * DT, &r);
    T_CHECK(r.first >= base.first && r.first <= base.first + 12,
            "live stream silent 10 rows: raised at row %lld (want %lld..%lld: the silence "
            "leaves the span, the test judges once it is full again)", r.first,
            base.first, base.first + 12);
    T_NOTE("live stream silent 10 rows: raised at row %lld", r.first);
    warnings = 0;
    ad_log_set(count_log, NULL);
    run_rows(g_zero, L, 0, 3, rise, n, at, DAMAGED, 0, &r);
    ad_log_set(NULL, NULL);
    T_CHECK(warnings == 1 && r.first >= at + Lw,
            "damaged level part: %d warning (want 1), raised at row %lld (want %d or later)",
            warnings, r.first, at + Lw);
    run_free(&base);
    run_free(&r);
}

/* A live stream whose rows come slower after calibration (a sensor set to
 * report every 6 s instead of 2 s): no silence, every window a few window
 * periods after the last. The level test still judges a rise (before, each
 * window was taken for a silence that put windows out of the span: the
 * ring never filled again and the test never judged, silently). */
static void test_level_slower(void)
{
    int Lw = 60, n = RISE + 3 * Lw + 100;
    int64_t L = (int64_t)Lw * DT;
    run base = { 0 }, r = { 0 };

    run_rows(g_zero, L, 0, 3, rise, n, 0, NONE, 0, &base);
    run_rows(g_zero, L, 0, 3, rise, n, 100, SLOWER, 3 * DT, &r);
    T_CHECK(base.raised >= 1 && r.raised >= 1 && r.first >= base.first &&
            r.first <= base.first + 12,
            "rows 3x slower from row 100: raised at row %lld (want %lld..%lld, as the "
            "stream at its first rate)", r.first, base.first, base.first + 12);
    T_NOTE("rows 3x slower from row 100: raised at row %lld (uninterrupted %lld)", r.first,
           base.first);
    run_free(&base);
    run_free(&r);
}

/* A level alert open (held by the level test: the scores under the
 * threshold) when the live stream goes silent for a few windows: the
 * fault goes on after the silence. */
static void test_level_alert_silence(void)
{
    int Lw = 60, n = RISE + 4 * Lw;
    int64_t L = (int64_t)Lw * DT;
    run base = { 0 }, r = { 0 };

    run_rows(g_zero, L, 0, 3, rise, n, 0, NONE, 0, &base);
    run_rows(g_zero, L, 0, 3, rise, n, base.first + 20, LIVE, 40 * DT, &r);
    T_NOTE("uninterrupted: raised %d (first at row %lld), cleared %d (first at row %lld); "
           "silent 40 rows at row %lld: raised %d (%s), cleared %d (first at row %lld)",
           base.raised, base.first, base.cleared, base.first_clear, base.first + 20, r.raised,
           r.ev, r.cleared, r.first_clear);
    /* the level stays up: held to the end (the mean never falls half way
     * back to the median), or at least past the silence */
    T_CHECK(base.raised == 1 && (base.first_clear < 0 || base.first_clear > base.first + 60) &&
            r.first == base.first && r.first_clear == base.first_clear,
            "silent 40 rows with the level alert open: cleared at row %lld (want %lld, as "
            "uninterrupted: the level goes on after the silence)", r.first_clear,
            base.first_clear);
    /* the same gap after a hand-over (a stop of 40 rows) */
    run_rows(g_zero, L, 0, 3, rise, n, base.first + 20, HANDOVER, 40 * DT, &r);
    T_NOTE("hand-over at row %lld, back 40 rows later: raised %d (%s), cleared %d (first at "
           "row %lld)", base.first + 20, r.raised, r.ev, r.cleared, r.first_clear);
    T_CHECK(r.first_clear == base.first_clear,
            "hand-over with a gap of 40 rows with the level alert open: cleared at row %lld "
            "(want %lld, as uninterrupted)", r.first_clear, base.first_clear);
    run_free(&base);
    run_free(&r);
}

/* ---- the burst test ----------------------------------------------------------- */

/* Values ~1 +- 0.05; a spike train on a (every 10th row x1.6 or x0.4)
 * over rows 400..499: each spike is judged 5 rows after it, the third
 * within burst_ms makes the burst. */
static void spikes(int i, double *a, double *b)
{
    *a = 1.0 + 0.05 * noise();
    *b = 1.0 + 0.05 * noise();
    if (i >= 400 && i < 500 && i % 10 == 3)
        *a *= i % 20 == 3 ? 1.6 : 0.4;
}

static void test_burst_restored(void)
{
    int64_t B = 100000;
    int at = 420, n = 700;      /* after the spikes of rows 403 and 413 were judged */
    run base = { 0 }, ho = { 0 }, mid = { 0 }, old = { 0 }, oth = { 0 };

    run_rows(g_scaled, 0, B, 3, spikes, n, 0, NONE, 0, &base);
    run_rows(g_scaled, 0, B, 3, spikes, n, at, HANDOVER, 0, &ho);
    run_rows(g_scaled, 0, B, 3, spikes, n, at, MIDSTREAM, 0, &mid);
    run_rows(g_scaled, 0, B, 3, spikes, n, at, NOPART, 0, &old);
    dropped = 0;
    ad_log_set(count_log, NULL);
    run_rows(g_scaled, 0, B, 3, spikes, n, at, OTHER_N, 0, &oth);
    ad_log_set(NULL, NULL);
    T_CHECK(base.raised == 1 && base.first > at && base.first <= at + 10,
            "uninterrupted: %d alert raised at row %lld (want 1, at the third spike)",
            base.raised, base.first);
    T_CHECK(ho.raised == 1 && ho.first == base.first,
            "hand-over at row %d: raised at row %lld, uninterrupted %lld", at, ho.first,
            base.first);
    T_CHECK(mid.raised == 1 && mid.first > base.first && mid.first <= base.first + 10,
            "save in the middle of the stream (no neighbourhood rows): raised at row %lld "
            "(want within the 10 rows after %lld: the outliers counted go on)", mid.first,
            base.first);
    T_CHECK(old.first >= base.first + 20,
            "a state without the burst part: raised at row %lld (counted afresh, 3 new "
            "spikes)", old.first);
    T_CHECK(oth.first >= base.first + 20 && dropped >= 1,
            "alert.burst_n changed: raised at row %lld, counted afresh, with a line (%d)",
            oth.first, dropped);
    T_CHECK(ho.burst_part != NULL, "the state holds the burst test (\"burst\")");
    T_NOTE("spike train from row 403, saved at row %d: uninterrupted raised at row %lld; "
           "hand-over %lld; mid-stream save %lld; without the part %lld; burst_n changed "
           "%lld; burst part %zu bytes: %s", at, base.first, ho.first, mid.first, old.first,
           oth.first, ho.burst_part ? strlen(ho.burst_part) : 0,
           ho.burst_part ? ho.burst_part : "");
    run_free(&base);
    run_free(&ho);
    run_free(&mid);
    run_free(&old);
    run_free(&oth);
}

/* A damaged or hostile saved usual local spread (burst.h USUAL SPREAD,
 * burst.usual) in a hand-over at row 420 of the spike train: 1e12 (it
 * would have been taken, the floor 0.8 x 1e12: no sample an outlier for
 * some 5,500 samples while it shrank, the train unseen), -1, one spread
 * of two, a text. Each is refused with a warning naming the stream and
 * the field, the usual spreads learned afresh, and the rest of the burst
 * test kept (the outliers counted, the neighbourhood's rows): raised at
 * the same row as without a restore. Before, 1e12 raised nothing and the
 * others dropped the whole burst test (the count started over). */
static void test_burst_usual_damaged(void)
{
    static const struct { int how; const char *what; } cs[] = {
        { USUAL_HUGE, "usual[0] 1e12" }, { USUAL_NEG, "usual[0] -1" },
        { USUAL_SHORT, "usual of 1 spread for 2 features" }, { USUAL_TEXT, "usual[1] \"x\"" },
    };
    int64_t B = 100000;
    int at = 420, n = 700, k;
    run base = { 0 }, r = { 0 };

    run_rows(g_scaled, 0, B, 3, spikes, n, 0, NONE, 0, &base);
    for (k = 0; k < 4; k++) {
        warnings = 0;
        g_usual_warned = 0;
        ad_log_set(count_log, NULL);
        run_rows(g_scaled, 0, B, 3, spikes, n, at, cs[k].how, 0, &r);
        ad_log_set(NULL, NULL);
        T_CHECK(r.raised == 1 && r.first == base.first,
                "%s: raised %d, at row %lld (want 1, at row %lld as without a restore: the "
                "outliers counted kept)", cs[k].what, r.raised, r.first, base.first);
        T_CHECK(g_usual_warned == 1, "%s: one warning naming the stream and burst.usual (%d)",
                cs[k].what, g_usual_warned);
        T_NOTE("%s: raised at row %lld (uninterrupted %lld), %d warning(s)", cs[k].what,
               r.first, base.first, warnings);
        run_free(&r);
    }
    run_free(&base);
}

/* Threshold method sigma (its fence is the normal scores' median + z
 * spreads, no part of the threshold) with the scores at 1e-3, 1e-6 and
 * 1e-9 of the usual while the threshold's floor (calibration.floor 0.01 x
 * the model's unit error) holds it at 0.01: a hand-over and a save in the
 * middle of the stream raise as the run without a restore. The saved
 * mean's quantum came from the threshold alone: 1e-7, the scores of 1e-9
 * saved as 0 and those of 1e-6 as 9..11 quanta (the hand-over raised a
 * full span late at 1e-9, at another row at 1e-6). */
static void test_level_small_scores(void)
{
    static const double sc[3] = { 1e-3, 1e-6, 1e-9 };
    int Lw = 60, at = RISE + Lw * 5 / 6, n = RISE + 2 * Lw + 100, k;
    int64_t L = (int64_t)Lw * DT;

    for (k = 0; k < 3; k++) {
        run base = { 0 }, ho = { 0 }, mid = { 0 };

        g_sigma = 1;
        g_scale = sc[k];
        run_rows(g_zero, L, 0, 3, rise, n, 0, NONE, 0, &base);
        run_rows(g_zero, L, 0, 3, rise, n, at, HANDOVER, 0, &ho);
        run_rows(g_zero, L, 0, 3, rise, n, at, MIDSTREAM, 0, &mid);
        g_scale = 1;
        g_sigma = 0;
        T_CHECK(base.raised >= 1 && base.first > at,
                "scores at %g: uninterrupted raised at row %lld (want after row %d)", sc[k],
                base.first, at);
        T_CHECK(ho.first == base.first, "scores at %g: hand-over at row %d raised at row "
                "%lld, uninterrupted %lld", sc[k], at, ho.first, base.first);
        T_CHECK(mid.first >= base.first && mid.first <= base.first + 2 * TW,
                "scores at %g: save in the middle of the stream at row %d: raised at row "
                "%lld, uninterrupted %lld", sc[k], at, mid.first, base.first);
        T_NOTE("scores at %g: raised at row %lld; hand-over %lld, mid-stream %lld; level "
               "part %.100s..", sc[k], base.first, ho.first, mid.first,
               ho.level_part ? ho.level_part : "(none)");
        run_free(&base);
        run_free(&ho);
        run_free(&mid);
    }
}

int main(void)
{
    if (models() != 0)
        return 1;
    T_RUN(test_level_restored);
    T_RUN(test_level_dropped);
    T_RUN(test_level_small_scores);
    T_RUN(test_level_slower);
    T_RUN(test_level_alert_silence);
    T_RUN(test_burst_restored);
    T_RUN(test_burst_usual_damaged);
    ad_model_free(g_zero);
    ad_model_free(g_scaled);
    ad_model_free(g_other);
    return t_done();
}
