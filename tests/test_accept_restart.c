/*
 * test_accept_restart.c - regime acceptance keeps its progress across a
 * restore (the stream's state file: a restart, a kill -9, an eviction, a
 * reload that rebuilds the stream). Each case runs the same rows once
 * without interruption and once saved and restored into a fresh detector
 * at the rows given, and compares the alert events (raise, clear and its
 * reason, regime accepted: their data times):
 *   - a persistent level shift, saved 16 windows into its alert: a
 *     hand-over (a stop) accepts it at the same window as the run without
 *     a restart; a save in the middle of the stream (a kill -9: no window
 *     rows) within the windows the empty window ring takes to refill;
 *   - an older state file without the acceptance progress still restores,
 *     and acceptance counts again from the restore (as before it was kept);
 *   - accept_after changed across the restore: lowered, the newest of the
 *     saved scores are judged at once; raised, the saved scores count
 *     towards it (accepted where a run with the new count accepts);
 *   - recurrences pooled by accept_gap, restored while quiet between two
 *     of them and inside one: accepted at the same recurrence;
 *   - two alternating changes with a period (a parked second chain):
 *     restored every 50 rows, the same raises and acceptances;
 *   - a kill -9 while a chain is quiet, with rows consumed after the last
 *     save that the restored detector never sees: they count as quiet
 *     windows (by data time), so a chain that ended is not continued;
 *   - a damaged acceptance part is named in a warning and dropped, the
 *     rest restored.
 *
 * Model: one TimeDistributed Dense with zero weights (t_model.h): a
 * window's MAE score is the mean |value| of its rows, so the test knows the
 * scores. T = 4, rows one second apart.
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

static uint64_t rng;

/* uniform in [-1, 1) */
static double noise(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static int warnings;
static void count_log(int level, const char *msg, void *u)
{
    (void)u;
    if (level == AD_LOG_WARNING) {
        warnings++;
        fprintf(stderr, "  (warning) %s\n", msg);
    }
}

static ad_model *g_model;

/* The detector of every case: calibration on 50 windows, raise on one
 * window over, clear after 2 below; acceptance A, G, period P. */
static ad_detector *mk(int A, int G, int64_t P)
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
    c.alert.accept_after = A;
    c.alert.accept_gap = G;
    c.alert.accept_spread = 3;
    c.alert.accept_trend = 0.25;
    c.alert.accept_period_ms = P;
    if (ad_detector_new(&d, &c, "pump", g_model, 0, 0, NULL, err, sizeof(err)) != 0)
        T_CHECK(0, "detector: %s", err);
    return d;
}

/* The events that matter here, as text: "r<s>" raised, "c<s>:<reason>"
 * cleared, "A<s>" regime accepted (s: data time in seconds). */
typedef struct run {
    char ev[4096];
    int raised, accepted;
    long long accepted_ms;        /* the first acceptance (-1: none) */
    unsigned long long windows;   /* its alert's windows */
    int saved_parked;             /* restores whose state held a parked chain */
} run;

static void note(run *r, const ad_event *ev)
{
    char one[64] = "";
    size_t n = strlen(r->ev);

    if (ev->type == AD_EV_ALERT_RAISED) {
        snprintf(one, sizeof(one), " r%lld", (long long)ev->ts_ms / 1000);
        r->raised++;
    } else if (ev->type == AD_EV_ALERT_CLEARED) {
        snprintf(one, sizeof(one), " c%lld:%s", (long long)ev->ts_ms / 1000,
                 ad_close_reason_name(ev->alert.reason));
        if (ev->alert.reason == AD_CLOSE_ACCEPTED && r->accepted_ms < 0) {
            r->accepted_ms = ev->ts_ms;
            r->windows = ev->alert.windows;
        }
    } else if (ev->type == AD_EV_ACCEPTED) {
        snprintf(one, sizeof(one), " A%lld", (long long)ev->ts_ms / 1000);
        r->accepted++;
    }
    if (n + strlen(one) < sizeof(r->ev))
        memcpy(r->ev + n, one, strlen(one) + 1);
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
        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, TW, F, AD_METRIC_MAE, NULL, &mae, share);
        ad_detector_feed_score(d, &job, mae, share);
    }
    while (ad_detector_poll_event(d, &ev))
        note(r, &ev);
}

/* Row i's levels of the patterns (noise added by the caller). */
typedef void (*levels_fn)(int i, double *a, double *b);

static void shift(int i, double *a, double *b)          /* a: 1, then 3 from row 100 */
{
    *a = i >= 100 ? 3 : 1;
    *b = 1;
}

static void recurring(int i, double *a, double *b)      /* a = 3 for 15 rows of every 60 */
{
    *a = i >= 100 && (i - 100) % 60 < 15 ? 3 : 1;
    *b = 1;
}

static void alternating(int i, double *a, double *b)    /* a at the minute, b 30 s later */
{
    int ph = (i - 100) % 60;

    *a = i >= 100 && ph < 12 ? 3 : 1;
    *b = i >= 100 && ph >= 30 && ph < 42 ? 3 : 1;
}

static void two_then_later(int i, double *a, double *b)
{
    /* a = 3 on rows 100-114 and 160-174 (a chain), quiet until 330, then
     * every 60 rows again: the chain ended in the quiet (> accept_gap) */
    *a = (i >= 100 && i < 115) || (i >= 160 && i < 175) ||
         (i >= 330 && (i - 330) % 60 < 15) ? 3 : 1;
    *b = 1;
}

/* A restore before row `at`: how = 0 a hand-over (a stop), 1 a save in the
 * middle of the stream (the periodic or event save a kill -9 leaves), 2 as
 * 1 but without the acceptance progress (a state file written before it
 * was kept), 3 as 0 with the progress damaged; `lost` rows after it are
 * never seen by the restored detector (consumed after the save by a
 * daemon then killed); A2 > 0: the restored detector's accept_after. */
typedef struct restart {
    int at, how, lost, A2;
} restart;

/* Strip or damage "accept" in the "alert" part of state text s (taken);
 * returns new text. */
static char *edit_state(char *s, int damage)
{
    cJSON *o = cJSON_Parse(s), *a, *x;
    char *t;

    free(s);
    a = o ? cJSON_GetObjectItemCaseSensitive(o, "alert") : NULL;
    x = a ? cJSON_GetObjectItemCaseSensitive(a, "accept") : NULL;
    T_CHECK(x != NULL, "the state holds the acceptance progress (alert.accept)");
    if (x && damage)
        cJSON_ReplaceItemInObject(x, "earlier", cJSON_CreateNumber(-3));
    else if (x)
        cJSON_DeleteItemFromObject(a, "accept");
    t = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return t;
}

/* Rows [0, n) of pattern lv through a detector (A, G, P), restored at the
 * given restarts. */
static void run_rows(int A, int G, int64_t P, levels_fn lv, int n, const restart *rs, int nrs,
                     run *r)
{
    ad_detector *d = mk(A, G, P);
    int i, k = 0, skip_to = -1;

    memset(r, 0, sizeof(*r));
    r->accepted_ms = -1;
    rng = 88172645463325252ull;
    for (i = 0; d && i < n; i++) {
        double a, b, na, nb;
        lv(i, &a, &b);
        na = 0.05 * noise();        /* drawn for every row: the same rows either way */
        nb = 0.05 * noise();
        if (k < nrs && rs[k].at == i) {
            char *s = rs[k].how == 0 || rs[k].how == 3 ? ad_detector_save_handover(d)
                                                       : ad_detector_save(d);
            char err[200];
            ad_detector *d2;
            int rc;

            if (s && strstr(s, "\"parked\":{"))
                r->saved_parked++;
            if (s && rs[k].how >= 2)
                s = edit_state(s, rs[k].how == 3);
            d2 = mk(rs[k].A2 > 0 ? rs[k].A2 : A, G, P);
            rc = s && d2 ? ad_detector_restore(d2, s, err, sizeof(err)) : -1;
            T_CHECK(rc == 0, "restore at row %d: %s", i, rc == -1 ? "no state" : err);
            free(s);
            ad_detector_free(d);
            d = d2;
            skip_to = i + rs[k].lost;
            k++;
        }
        if (i >= skip_to)
            step(d, 1000 * (int64_t)i, a + na, b + nb, r);
    }
    ad_detector_free(d);
}

static void test_shift_restored(void)
{
    run base, hand, kill, old, base10, low, base45, high;
    restart rh = { 116, 0, 0, 0 }, rk = { 116, 1, 0, 0 }, ro = { 116, 2, 0, 0 };
    restart rl = { 116, 0, 0, 10 }, rr = { 116, 0, 0, 45 };

    run_rows(30, 0, 0, shift, 250, NULL, 0, &base);
    run_rows(30, 0, 0, shift, 250, &rh, 1, &hand);
    T_NOTE("uninterrupted:%s", base.ev);
    T_NOTE("stopped at row 116 (16 windows into the alert):%s", hand.ev);
    T_CHECK(base.accepted == 1 && base.accepted_ms == 129000,
            "uninterrupted: accepted at 129 s, 30 windows (got %lld)", base.accepted_ms);
    T_CHECK(strcmp(base.ev, hand.ev) == 0, "a hand-over: the same events");

    /* a mid-stream save has no window rows: the first TW - 1 rows after
     * it form no window, the alert's windows go on after them */
    run_rows(30, 0, 0, shift, 250, &rk, 1, &kill);
    T_NOTE("killed at row 116:%s (alert of %llu windows; uninterrupted %llu)", kill.ev,
           kill.windows, base.windows);
    T_CHECK(kill.accepted == 1 && kill.raised == base.raised &&
            kill.accepted_ms >= base.accepted_ms &&
            kill.accepted_ms <= base.accepted_ms + 1000 * (TW - 1 + 2) &&
            llabs((long long)kill.windows - (long long)base.windows) <= 2,
            "a mid-stream save: accepted at %lld ms after %llu windows (uninterrupted %lld, "
            "%llu)", kill.accepted_ms, kill.windows, base.accepted_ms, base.windows);

    /* an older state file: restored, acceptance counts again from there */
    run_rows(30, 0, 0, shift, 250, &ro, 1, &old);
    T_NOTE("older state file at row 116:%s", old.ev);
    T_CHECK(old.accepted == 1 && old.raised == 1 && old.accepted_ms >= 116000 + 29000 &&
            old.accepted_ms <= 116000 + 29000 + 1000 * (TW - 1 + 2),
            "without the saved progress: accepted at %lld ms, 30 windows after the restore",
            old.accepted_ms);

    /* accept_after lowered across the restore: the newest 10 saved scores
     * are judged at once (a run with 10 from the start accepted earlier) */
    run_rows(10, 0, 0, shift, 250, NULL, 0, &base10);
    run_rows(30, 0, 0, shift, 250, &rl, 1, &low);
    T_NOTE("accept_after 30 -> 10 at row 116:%s (10 from the start:%s)", low.ev, base10.ev);
    T_CHECK(low.accepted == 1 && low.raised == 1 && low.accepted_ms == 116000,
            "lowered: accepted on the first window after the restore (%lld ms)",
            low.accepted_ms);
    /* raised: the saved scores count towards the new count */
    run_rows(45, 0, 0, shift, 250, NULL, 0, &base45);
    run_rows(30, 0, 0, shift, 250, &rr, 1, &high);
    T_NOTE("accept_after 30 -> 45 at row 116:%s (45 from the start:%s)", high.ev, base45.ev);
    T_CHECK(high.accepted == 1 && strcmp(high.ev, base45.ev) == 0,
            "raised: accepted where a run with 45 from the start is (%lld, %lld ms)",
            high.accepted_ms, base45.accepted_ms);
}

static void test_recurring_restored(void)
{
    run base, rest, rest2;
    /* quiet after the first, inside the second, quiet after it, inside
     * the third (its clear pools the chain) */
    restart rs[] = { { 130, 0, 0, 0 }, { 168, 0, 0, 0 }, { 200, 0, 0, 0 },
                     { 225, 0, 0, 0 } };
    restart rk[] = { { 130, 1, 0, 0 }, { 200, 1, 0, 0 } };

    run_rows(30, 60, 0, recurring, 460, NULL, 0, &base);
    run_rows(30, 60, 0, recurring, 460, rs, 4, &rest);
    T_NOTE("uninterrupted:%s", base.ev);
    T_NOTE("restored at rows 130, 168, 200, 225:%s", rest.ev);
    T_CHECK(base.accepted == 1 && base.raised == 3, "uninterrupted: accepted at the third "
            "recurrence (raises %d, accepted %d)", base.raised, base.accepted);
    T_CHECK(strcmp(base.ev, rest.ev) == 0, "restored: the same events");
    /* saved mid-stream while quiet: the rows the empty window ring takes
     * are quiet windows missed, counted by their data time */
    run_rows(30, 60, 0, recurring, 460, rk, 2, &rest2);
    T_NOTE("mid-stream saves at rows 130, 200:%s", rest2.ev);
    T_CHECK(strcmp(base.ev, rest2.ev) == 0, "mid-stream saves while quiet: the same events");
}

static void test_alternating_restored(void)
{
    run base, rest;
    restart rs[16];
    int k;

    for (k = 0; k < 11; k++)
        rs[k] = (restart){ 120 + 50 * k, 0, 0, 0 };
    run_rows(30, 60, 60000, alternating, 700, NULL, 0, &base);
    run_rows(30, 60, 60000, alternating, 700, rs, 11, &rest);
    T_NOTE("uninterrupted:%s", base.ev);
    T_NOTE("restored every 50 rows from row 120:%s", rest.ev);
    T_CHECK(base.accepted == 2, "uninterrupted: both changes accepted (%d)", base.accepted);
    T_CHECK(rest.saved_parked >= 2, "%d of the 11 states saved held a parked chain",
            rest.saved_parked);
    T_CHECK(strcmp(base.ev, rest.ev) == 0, "restored: the same events");
}

static void test_kill_while_quiet(void)
{
    run base, kill;
    restart rk = { 180, 1, 120, 0 };

    run_rows(30, 60, 0, two_then_later, 520, NULL, 0, &base);
    run_rows(30, 60, 0, two_then_later, 520, &rk, 1, &kill);
    T_NOTE("uninterrupted:%s", base.ev);
    T_NOTE("saved at row 180, killed at 300 (rows 180-299 lost):%s", kill.ev);
    T_CHECK(strcmp(base.ev, kill.ev) == 0, "the lost rows count as quiet: the chain of "
            "rows 100-175 ended, the same events");
}

static void test_damaged_progress(void)
{
    run base, dmg;
    restart rd = { 116, 3, 0, 0 };

    run_rows(30, 0, 0, shift, 250, NULL, 0, &base);
    warnings = 0;
    ad_log_set(count_log, NULL);
    run_rows(30, 0, 0, shift, 250, &rd, 1, &dmg);
    ad_log_set(NULL, NULL);
    T_NOTE("damaged progress at row 116:%s", dmg.ev);
    T_CHECK(warnings == 1 && dmg.accepted == 1 && dmg.raised == 1 &&
            dmg.accepted_ms >= 116000 + 29000,
            "one warning (%d), the alert continued, acceptance counted again (%lld ms)",
            warnings, dmg.accepted_ms);
}

/* What the progress costs in the state file: saved 30 windows into an
 * alert with accept_after 30, and with 480 (the example configuration's
 * 8 h of one-minute windows) 480 windows in. */
static void test_progress_size(void)
{
    static const int As[2] = { 30, 480 };
    int k, i;

    for (k = 0; k < 2; k++) {
        ad_detector *d = mk(As[k], 0, 0);
        cJSON *o, *a;
        char *s, *t;
        run r;

        memset(&r, 0, sizeof(r));
        rng = 3;
        for (i = 0; d && i < 100 + As[k] - 1; i++) {
            double lv = i >= 100 ? 3 + 0.5 * noise() : 1;    /* never stable */
            step(d, 1000 * (int64_t)i, lv + 0.05 * noise(), 1 + 0.05 * noise(), &r);
        }
        s = d ? ad_detector_save(d) : NULL;
        o = s ? cJSON_Parse(s) : NULL;
        a = o ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "alert"),
                                                 "accept") : NULL;
        t = a ? cJSON_PrintUnformatted(a) : NULL;
        T_CHECK(t && r.raised == 1 && r.accepted == 0, "saved in the alert, %d windows in",
                As[k]);
        if (t)
            T_NOTE("accept_after %d: progress %zu bytes of the %zu-byte state (%.1f per "
                   "window)", As[k], strlen(t), strlen(s), (double)strlen(t) / As[k]);
        free(t);
        free(s);
        cJSON_Delete(o);
        ad_detector_free(d);
    }
}

int main(void)
{
    T_RUN(test_shift_restored);
    T_RUN(test_recurring_restored);
    T_RUN(test_alternating_restored);
    T_RUN(test_kill_while_quiet);
    T_RUN(test_damaged_progress);
    T_RUN(test_progress_size);
    ad_model_free(g_model);
    return t_done();
}
