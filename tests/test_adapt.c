/*
 * test_adapt.c - continual learning with a shadow model (lib/adapt.h):
 * which windows enter the normal set, the schedule, a real fine-tune of a
 * small autoencoder after a persistent regime change and its promotion, the
 * rejection of a candidate that would silence a known true alert, a decided
 * candidate handed over to the caller (never freed by the learner), save /
 * restore, the window counts given as data time (resolved to the same
 * behaviour as the counts; nothing kept before; the memory limit named),
 * and configuration errors.
 *
 * Data: three sensors from a deterministic multi-sine with noise (regime A);
 * regime B shifts sensor 0 by +1.5 and changes sensor 1's period (a
 * persistent new normal); the "blockage" fault adds +1.2 to sensor 2.
 */
#include "t.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <cJSON.h>

#include "ad.h"
#include "adapt.h"
#include "model.h"
#include "engine.h"
#include "train.h"

#define T 12
#define F 3
#define W (T * F)

enum { REG_A = 0, REG_B = 1 };

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Deterministic noise in [-1, 1] from the row index. */
static double noise(uint64_t i, int f)
{
    uint64_t z = i * 0x9E3779B97F4A7C15ull + (uint64_t)f * 0xBF58476D1CE4E5B9ull;

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / (double)(1ull << 52) - 1.0;
}

static void gen_row(uint64_t t, int regime, int blockage, float *r)
{
    double p = 6.283185307179586 * (double)t;

    r[0] = (float)(5.0 + sin(p / 20.0) + 0.05 * noise(t, 0) + (regime == REG_B ? 1.5 : 0.0));
    r[1] = (float)(2.0 + 0.5 * cos(p / (regime == REG_B ? 9.0 : 13.0)) + 0.05 * noise(t, 1));
    r[2] = (float)(1.0 + 0.3 * sin(p / 7.0) + 0.2 * sin(p / 20.0) + 0.05 * noise(t, 2) +
                   (blockage ? 1.2 : 0.0));
}

/* The raw window whose last row is row t. */
static void gen_window(uint64_t t, int regime, int blockage, float *w)
{
    int i;

    for (i = 0; i < T; i++)
        gen_row(t - (uint64_t)(T - 1 - i), regime, blockage, w + i * F);
}

/* MAE score of a raw window under m (engine path, batch 1). */
static double score(const ad_model *m, const float *raw)
{
    float x[W], y[W], mae;
    ad_engine *e = ad_engine_new(m, 1);

    ad_model_scale(m, raw, x, T);
    ad_engine_forward(e, x, y, 1);
    ad_engine_free(e);
    ad_recon_error(x, y, T, F, AD_METRIC_MAE, NULL, &mae, NULL);
    return mae;
}

/* The live model: dense autoencoder flatten -> dense(6, tanh) -> dense(T*F),
 * standard scaler and weights fitted on 600 rows of regime A. */
static ad_model *train_live(void)
{
    ad_layer_spec L[3] = {
        { AD_LAYER_FLATTEN, 0, AD_ACT_LINEAR, 0 },
        { AD_LAYER_DENSE, 6, AD_ACT_TANH, 0 },
        { AD_LAYER_DENSE, W, AD_ACT_LINEAR, 0 },
    };
    enum { ROWS = 600 };
    static float rows[ROWS * F], sc[ROWS * F], win[ROWS * W];
    float mean[F], sd[F];
    ad_model *m = NULL;
    ad_train_opts o;
    ad_train_report rep;
    char err[200];
    size_t n, r;
    int f;

    if (ad_model_create(&m, T, F, L, 3, err, sizeof(err)) != 0) {
        fprintf(stderr, "model: %s\n", err);
        return NULL;
    }
    for (r = 0; r < ROWS; r++)
        gen_row(r + 1000, REG_A, 0, rows + r * F);
    for (f = 0; f < F; f++) {
        double s = 0, s2 = 0;
        for (r = 0; r < ROWS; r++)
            s += rows[r * F + f];
        s /= ROWS;
        for (r = 0; r < ROWS; r++)
            s2 += (rows[r * F + f] - s) * (rows[r * F + f] - s);
        mean[f] = (float)s;
        sd[f] = (float)sqrt(s2 / ROWS);
    }
    ad_model_set_scaler(m, AD_SCALER_STANDARD, mean, sd);
    ad_train_init_weights(m, 7);
    ad_model_scale(m, rows, sc, ROWS);
    n = ad_train_cut_windows(sc, ROWS, F, T, 1, win);
    ad_train_opts_default(&o);
    o.loss = AD_LOSS_MAE;
    o.epochs = 60;
    o.lr = 3e-3f;
    o.val_frac = 0;
    o.patience = 0;
    if (ad_train_fit(m, win, n, &o, &rep, NULL, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "train: %s\n", err);
        ad_model_free(m);
        return NULL;
    }
    {
        void *buf;
        size_t len;
        if (ad_model_serialize(m, &buf, &len) == 0)
            free(buf);
    }
    T_NOTE("live model: %zu windows, %d epochs, train MAE %.4f, %.2f s",
           n, rep.epochs_run, rep.train_loss, rep.seconds);
    return m;
}

static ad_model *g_live;

static void cfg_small(ad_adapt_cfg *c)
{
    ad_adapt_cfg_default(c);
    c->enabled = 1;
    c->every_windows = 300;
    c->every_hours = 0;
    c->normal_windows = 300;
    c->min_windows = 200;
    c->margin = 5;
    c->shadow_windows = 150;
    c->epochs = 30;
    c->lr = 3e-3;
    c->true_alerts = 4;
}

static ad_adapt *new_adapt(const ad_adapt_cfg *c)
{
    ad_thr_cfg thr;
    ad_adapt *a = NULL;
    char err[200];

    ad_thr_cfg_default(&thr);      /* quantile 0.99, margin 1 */
    if (ad_adapt_new(&a, c, T, F, AD_METRIC_MAE, 1.0, &thr, err, sizeof(err)) != 0)
        fprintf(stderr, "ad_adapt_new: %s\n", err);
    return a;
}

/* Drain events; return the count of type t (the last one into *ev). */
static int drain(ad_adapt *a, ad_adapt_ev_type t, ad_adapt_event *ev)
{
    ad_adapt_event e;
    int n = 0;

    while (ad_adapt_poll_event(a, &e))
        if (e.type == t) {
            n++;
            if (ev)
                *ev = e;
        }
    return n;
}

/* ---- (a) the normal set -------------------------------------------------- */

/* Offer window k (ts = k): the value k (+ 0.01 per feature) everywhere,
 * scaled with the live model, so the module must invert the scaler. */
static void offer_k(ad_adapt *a, int k, ad_adapt_obs *o)
{
    float w[W], sc[W];
    size_t i;

    for (i = 0; i < W; i++)
        w[i] = (float)k + 0.01f * (float)(i % F);
    ad_model_scale(g_live, w, sc, T);
    ad_adapt_offer(a, sc, g_live, o);
}

static void test_normal_set_excludes_alerts_and_margins(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_stats st;
    int64_t ts, seen[200];
    size_t i, n;
    int k, bad = 0, want_n = 0, maxdiff_ok = 1;

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.margin = 3;
    c.normal_windows = 100;
    c.min_windows = 1;
    c.true_alerts = 2;
    a = new_adapt(&c);
    T_CHECK(a != NULL, "new");
    if (!a)
        return;
    /* Window k (ts = k) holds the value k everywhere; it is offered scaled
     * with the live model, so the module must invert the scaler. */
    for (k = 1; k <= 60; k++) {
        ad_adapt_obs o = { .ts_ms = k, .live_score = 0.1, .cand_score = NAN };

        if (k == 20)
            ad_adapt_alert_raised(a, "s/1", k);
        if (k == 30)
            ad_adapt_alert_cleared(a, "s/1", k, AD_ADAPT_CLEAR_TRUE);
        if (k == 50)
            ad_adapt_alert_raised(a, "s/2", k);
        if (k == 52)
            ad_adapt_alert_cleared(a, "s/2", k, AD_ADAPT_CLEAR_FALSE);
        if (k >= 20 && k < 30)
            o.live_score = k == 25 ? 9.0 : 1.0;     /* peak at 25 */
        o.dq = k == 40;
        o.exceeded = k == 45;
        offer_k(a, k, &o);
    }
    /* Expected: 1..16 (17-19 precede the raise at 20 within the margin),
     * 20-29 in the alert, 30-32 the margin after its clear, 40 dq, 45 over
     * the threshold, 47-49 before the second raise, 50-51 in it, 52-54
     * after its clear; 58-60 still pending. */
    n = 0;
    for (i = 0; (ad_adapt_normal_window(a, i, &ts)) != NULL; i++) {
        const float *x = ad_adapt_normal_window(a, i, NULL);
        if (fabsf(x[0] - (float)ts) > 1e-4f * (float)ts ||
            fabsf(x[W - 1] - ((float)ts + 0.02f)) > 1e-4f * (float)ts)
            maxdiff_ok = 0;
        seen[n++] = ts;
    }
    for (k = 1; k <= 57; k++) {
        int want = !((k >= 17 && k <= 32) || k == 40 || k == 45 ||
                     (k >= 47 && k <= 54));
        int found = 0;
        for (i = 0; i < n; i++)
            found |= seen[i] == k;
        if (found != want) {
            bad++;
            fprintf(stderr, "  window %d: in set %d, expected %d\n", k, found, want);
        }
        want_n += want;
    }
    T_CHECK(bad == 0, "%d windows misjudged", bad);
    T_CHECK((int)n == want_n, "normal set %zu, expected %d", n, want_n);
    T_CHECK(maxdiff_ok, "raw values recovered from the scaled windows");
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.pending == 3, "pending %" PRIu64 " (the last margin windows)", st.pending);
    T_CHECK(st.excluded_dq == 1 && st.excluded_exceeded == 1,
            "dq %" PRIu64 " exceeded %" PRIu64, st.excluded_dq, st.excluded_exceeded);
    T_CHECK(st.true_alerts == 1, "true alerts kept %d (the false alarm is not)", st.true_alerts);
    T_CHECK(ad_adapt_alert_false(a, "s/2") == 0 && ad_adapt_alert_false(a, "s/1") == 1,
            "withdraw by id");
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.true_alerts == 0, "after withdraw %d", st.true_alerts);
    T_NOTE("normal set %zu windows of 60 offered; excluded alert/margins %" PRIu64
           ", dq %" PRIu64 ", exceeded %" PRIu64, n, st.excluded_alert,
           st.excluded_dq, st.excluded_exceeded);
    ad_adapt_free(a);
}

/* After a clear the margin is at least margin_min windows (set by the
 * detector: the windows that share a sample with a given one): with margin
 * 3 and margin_min 5, the 3 windows before a raise and the 5 after a clear
 * stay out; 3 wait in the pending queue. */
static void test_margin_floor(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_stats st;
    int64_t ts;
    size_t i, n = 0;
    int k, bad = 0;

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.margin = 3;
    c.margin_min = 5;
    c.normal_windows = 100;
    c.min_windows = 1;
    T_CHECK(ad_adapt_margin_after(&c) == 5, "after a clear: %d (want 5)",
            ad_adapt_margin_after(&c));
    a = new_adapt(&c);
    T_CHECK(a != NULL, "new");
    if (!a)
        return;
    for (k = 1; k <= 40; k++) {
        ad_adapt_obs o = { .ts_ms = k, .live_score = 0.1, .cand_score = NAN };

        if (k == 20)
            ad_adapt_alert_raised(a, "s/1", k);
        if (k == 30)
            ad_adapt_alert_cleared(a, "s/1", k, AD_ADAPT_CLEAR_TRUE);
        offer_k(a, k, &o);
    }
    /* 1..16 in the set, 17-19 before the raise, 20-29 in the alert, 30-34
     * after its clear; 35-37 admitted, 38-40 pending */
    for (i = 0; ad_adapt_normal_window(a, i, &ts) != NULL; i++, n++)
        if (!(ts <= 16 || (ts >= 35 && ts <= 37))) {
            bad++;
            fprintf(stderr, "  window %lld in the normal set\n", (long long)ts);
        }
    ad_adapt_get_stats(a, &st);
    T_CHECK(bad == 0 && n == 19 && st.pending == 3, "normal set %zu (want 19), %d misjudged, "
            "pending %" PRIu64 " (want 3)", n, bad, st.pending);
    ad_adapt_free(a);
    c.margin = 8;
    T_CHECK(ad_adapt_margin_after(&c) == 8, "a margin over the floor: %d",
            ad_adapt_margin_after(&c));
}

/* A regime accepted after three recurring alerts: the chain's kept true
 * alerts are withdrawn, the kept alert windows from the chain's start join
 * the normal set (not those before it), and a fine-tune is due at once. */
static void test_accepted_regime_teaches(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_stats st;
    ad_adapt_event ev;
    float w[W];
    int64_t ts;
    size_t i, n0, n1, in_alert = 0;
    int k, due = 0;

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.margin = 2;
    c.normal_windows = 200;
    c.min_windows = 10;
    c.every_windows = 0;
    c.every_hours = 1000;
    c.true_alerts = 4;
    a = new_adapt(&c);
    T_CHECK(a != NULL, "new");
    if (!a || ad_adapt_keep_alert_windows(a, 20) != 0)
        return;
    /* alerts: 10-14 (before the chain), 30-34, 50-54, 70-74 (the chain,
     * accepted at 74) */
    for (k = 1; k <= 74; k++) {
        ad_adapt_obs o = { .ts_ms = k, .live_score = 0.1, .cand_score = NAN };
        int on = (k >= 10 && k < 15) || (k >= 30 && k < 35) || (k >= 50 && k < 55) ||
                 (k >= 70 && k < 75);
        char id[16];

        snprintf(id, sizeof(id), "s/%d", k / 20);
        if (on && (k % 20 == 10 || k == 30 || k == 50 || k == 70))
            ad_adapt_alert_raised(a, id, k);
        if (!on && (k == 15 || k == 35 || k == 55))
            ad_adapt_alert_cleared(a, id, k, AD_ADAPT_CLEAR_TRUE);
        if (on)
            o.live_score = 2.0;
        for (i = 0; i < W; i++)
            w[i] = (float)k;
        ad_adapt_offer(a, w, NULL, &o);
    }
    ad_adapt_get_stats(a, &st);
    n0 = (size_t)st.normal_len;
    T_CHECK(st.true_alerts == 3, "true alerts kept before acceptance: %d", st.true_alerts);
    while (ad_adapt_poll_event(a, &ev))
        due |= ev.type == AD_ADAPT_EV_TRAIN_READY;
    T_CHECK(!due, "no fine-tune due before acceptance (schedule: 1000 h)");
    /* the chain started with the alert at 30; the current one (70-74) is
     * closed as accepted */
    T_CHECK(ad_adapt_alerts_accepted(a, 30, 500) == 2, "withdrawn: the chain's 2 cleared alerts");
    ad_adapt_alert_cleared(a, "s/3", 75, AD_ADAPT_CLEAR_ACCEPTED);
    ad_adapt_get_stats(a, &st);
    n1 = (size_t)st.normal_len;
    T_CHECK(st.true_alerts == 1, "the alert before the chain stays a true alert (%d)",
            st.true_alerts);
    for (i = 0; i < n1; i++) {
        ad_adapt_normal_window(a, i, &ts);
        in_alert += (ts >= 30 && ts < 35) || (ts >= 50 && ts < 55) || (ts >= 70 && ts < 75);
        T_CHECK(!(ts >= 10 && ts < 15), "window %lld (before the chain) not admitted",
                (long long)ts);
    }
    T_CHECK(n1 == n0 + 15 && in_alert == 15, "normal set %zu -> %zu, %zu of the chain's "
            "alert windows", n0, n1, in_alert);
    {
        ad_adapt_obs o = { .ts_ms = 81, .live_score = 0.1, .cand_score = NAN };
        for (i = 0; i < W; i++)
            w[i] = 81.0f;
        ad_adapt_offer(a, w, NULL, &o);
    }
    while (ad_adapt_poll_event(a, &ev))
        due |= ev.type == AD_ADAPT_EV_TRAIN_READY;
    T_CHECK(due, "a fine-tune is due right after the acceptance");
    T_NOTE("normal set %zu -> %zu after the acceptance", n0, n1);
    /* the acceptance's fine-tune, lost at a restart, is due again at once
     * on the saved set: a hand-over's save holds both; an event's save
     * (as often as every second) not the set, megabytes of JSON */
    {
        char *hs = ad_adapt_save_handover(a), *es = ad_adapt_save(a);
        T_CHECK(hs && strstr(hs, "\"finetune_lost\":true") && strstr(hs, "\"normal\":{"),
                "hand-over save: the acceptance's fine-tune and the normal set");
        T_CHECK(es && strstr(es, "\"finetune_lost\":true") && !strstr(es, "\"normal\":"),
                "event save: the acceptance's fine-tune, not the normal set (%zu bytes, "
                "%zu with it)", es ? strlen(es) : 0, hs ? strlen(hs) : 0);
        free(hs);
        free(es);
    }
    ad_adapt_free(a);
}

/* ---- the fine-tune worker ------------------------------------------------ */

typedef struct worker {
    ad_adapt_job *job;
    ad_model *out;
    ad_train_report rep;
    int rc;
    char err[200];
} worker;

static void *worker_main(void *p)
{
    worker *w = p;

    w->rc = ad_adapt_job_run(w->job, &w->out, &w->rep, NULL, w->err, sizeof(w->err));
    return NULL;
}

/* Take the job and run it on a thread (as the daemon's worker pool does);
 * give the result back. Returns 0 on success. */
static int run_job(ad_adapt *a)
{
    worker w;
    pthread_t th;

    memset(&w, 0, sizeof(w));
    w.job = ad_adapt_take_job(a, g_live);
    if (w.job == NULL)
        return -1;
    pthread_create(&th, NULL, worker_main, &w);
    pthread_join(th, NULL);
    T_NOTE("fine-tune: %zu windows, %d epochs, loss %.4f, %.2f s (rc %d %s)",
           w.job->n, w.rep.epochs_run, w.rep.train_loss, w.rep.seconds, w.rc, w.err);
    ad_adapt_job_free(w.job);
    if (w.rc != 0) {
        ad_adapt_train_done(a, NULL, 1, NULL, w.err);
        return w.rc;
    }
    return ad_adapt_train_done(a, w.out, 1, &w.rep, NULL);
}

/* Offer row t as a window of the given regime: live and candidate scored. */
static void offer_row(ad_adapt *a, uint64_t t, int regime, int blockage,
                      int exceeded)
{
    float w[W];
    const ad_model *cand = ad_adapt_candidate(a);
    ad_adapt_obs o;

    gen_window(t, regime, blockage, w);
    o.ts_ms = (int64_t)t * 1000;
    o.live_score = score(g_live, w);
    o.cand_score = cand ? score(cand, w) : NAN;
    o.exceeded = exceeded;
    o.dq = 0;
    o.regime = 0;
    ad_adapt_offer(a, w, NULL, &o);
}

static void note_event(const char *what, const ad_adapt_event *ev)
{
    cJSON *j = ad_adapt_event_to_json(ev, "pump1");
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;

    T_NOTE("%s: %s", what, s ? s : "(oom)");
    free(s);
    cJSON_Delete(j);
}

/* ---- (b) a persistent new regime: fine-tuned and promoted ---------------- */

static void test_new_regime_promoted(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_event ev;
    ad_model *won;
    double t0 = now_s();
    uint64_t t = 5000;
    int i, ready = 0;
    size_t ns;
    const double *shs;

    cfg_small(&c);
    c.min_gain = 0.2;
    a = new_adapt(&c);
    T_CHECK(a != NULL, "new");
    if (!a)
        return;
    /* Regime A, with one blockage fault that is a true alert. */
    for (i = 0; i < 100; i++)
        offer_row(a, t++, REG_A, 0, 0);
    ad_adapt_alert_raised(a, "pump1/1", (int64_t)t * 1000);
    for (i = 0; i < 20; i++)
        offer_row(a, t++, REG_A, 1, 1);
    ad_adapt_alert_cleared(a, "pump1/1", (int64_t)t * 1000, AD_ADAPT_CLEAR_TRUE);
    for (i = 0; i < 50; i++)
        offer_row(a, t++, REG_A, 0, 0);
    /* The shift: raised, then accepted as the new normal (regime acceptance
     * re-baselines the threshold: later windows are not over it). */
    ad_adapt_alert_raised(a, "pump1/2", (int64_t)t * 1000);
    for (i = 0; i < 30; i++)
        offer_row(a, t++, REG_B, 0, 1);
    ad_adapt_alert_cleared(a, "pump1/2", (int64_t)t * 1000, AD_ADAPT_CLEAR_ACCEPTED);
    for (i = 0; i < 400 && !ready; i++) {
        offer_row(a, t++, REG_B, 0, 0);
        ready = drain(a, AD_ADAPT_EV_TRAIN_READY, NULL);
    }
    T_CHECK(ready == 1, "schedule fired after %d windows of B", i);
    T_CHECK(run_job(a) == 0, "job ran");
    T_CHECK(drain(a, AD_ADAPT_EV_SHADOW, NULL) == 1, "shadow started");
    T_CHECK(ad_adapt_candidate(a) != NULL, "candidate in shadow");
    for (i = 0; i < 400 && ad_adapt_candidate(a); i++)
        offer_row(a, t++, REG_B, 0, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_PROMOTED, &ev) == 1, "promoted");
    note_event("promoted", &ev);
    T_NOTE("regime B: live %s error %.4f, candidate %.4f, gain %.1f%% (min %.0f%%); "
           "%d true alert checked, min ratio %.2f; %" PRIu64 " shadow windows",
           ad_adapt_stat_name(ev.compare), ev.live_error, ev.cand_error,
           100 * ev.gain, 100 * ev.min_gain, ev.alerts_checked,
           ev.min_alert_ratio, ev.shadow_windows);
    T_CHECK(ev.type == AD_ADAPT_EV_PROMOTED && ev.cand_error < 0.8 * ev.live_error,
            "candidate %.4f vs live %.4f", ev.cand_error, ev.live_error);
    T_CHECK(ev.alerts_checked == 1 && ev.alerts_silenced == 0 && ev.min_alert_ratio > 1.0,
            "true alert still raised: checked %d silenced %d ratio %.3f",
            ev.alerts_checked, ev.alerts_silenced, ev.min_alert_ratio);
    T_CHECK(ev.shadow_windows == 150 && ev.normal_windows == 150,
            "shadow %" PRIu64 " normal %" PRIu64, ev.shadow_windows, ev.normal_windows);
    shs = ad_adapt_shadow_scores(a, &ns);
    T_CHECK(ns == 150 && shs != NULL, "shadow scores %zu", ns);
    T_CHECK(isfinite(ev.cand_threshold) && ev.cand_threshold > ev.cand_error,
            "re-baseline threshold %.4f above the candidate error %.4f",
            ev.cand_threshold, ev.cand_error);
    won = ad_adapt_take_candidate(a);
    T_CHECK(won != NULL && strcmp(won->id, ev.model_id) == 0, "candidate handed over");
    /* The candidate really is the better model of the new normal: a fresh
     * B window, never seen, scored by both. */
    if (won) {
        float w[W];
        double sl, scn;
        gen_window(t + 500, REG_B, 0, w);
        sl = score(g_live, w);
        scn = score(won, w);
        T_CHECK(scn < sl, "fresh B window: candidate %.4f, live %.4f", scn, sl);
    }
    ad_model_free(won);
    T_NOTE("promotion scenario: %.2f s", now_s() - t0);
    ad_adapt_free(a);
}

/* ---- a slow change followed: drift from the reference model ------------- */

/* Offer windows of regime A (blockage: a fault judged normal, as a slow one
 * is while under the threshold) until a fine-tune is due, run it, then run
 * the candidate through its shadow. The events of the job (from train_done
 * on) are left queued. */
static uint64_t job_cycle(ad_adapt *a, uint64_t t, int blockage)
{
    int i, ready = 0;

    /* the last shadow's decided candidate is the caller's (adapt.h
     * DECIDED): until it is taken no fine-tune is due */
    ad_model_free(ad_adapt_take_candidate(a));
    for (i = 0; i < 2000 && !ready; i++) {
        offer_row(a, t++, REG_A, blockage, 0);
        ready = drain(a, AD_ADAPT_EV_TRAIN_READY, NULL);
    }
    T_CHECK(ready == 1 && run_job(a) == 0, "a fine-tune due and run (%d windows)", i);
    return t;
}

static void test_reference_drift(void)
{
    ad_adapt_cfg c;
    ad_adapt *a, *b;
    ad_adapt_event ev;
    ad_adapt_stats st;
    char *txt, err[200];
    uint64_t t = 5000;
    int i;

    cfg_small(&c);
    c.epochs = 3;
    a = new_adapt(&c);
    T_CHECK(a != NULL && ad_adapt_set_reference(a, g_live, 1) == 0, "new, reference set");
    if (!a)
        return;
    /* regime A: the baseline; its ratio is 1 */
    t = job_cycle(a, t, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_SHADOW, &ev) == 1 && fabs(ev.ref_ratio - 1.0) < 1e-9 &&
            ev.ref_error > 0 && ev.ref_feature >= 0,
            "first fine-tune: reference error %g, ratio %g", ev.ref_error, ev.ref_ratio);
    for (i = 0; i < 400 && ad_adapt_candidate(a); i++)
        offer_row(a, t++, REG_A, 0, 0);
    /* the blockage judged normal (a slow fault the live model followed):
     * the reference scores the new normal set far worse, on feature 2 */
    t = job_cycle(a, t, 1);
    T_CHECK(drain(a, AD_ADAPT_EV_DRIFT, &ev) == 1, "a drift notice");
    note_event("drift", &ev);
    T_CHECK(ev.ref_ratio >= 2.0 && ev.ref_feature == 2 && ev.ref_feature_ratio > ev.ref_ratio &&
            strstr(ev.reason, "continual learning has followed a change") != NULL,
            "ratio %g (>= adapt.drift_ratio 2), feature %d (want 2, the blockage's) at %g x",
            ev.ref_ratio, ev.ref_feature, ev.ref_feature_ratio);
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.drift == 1 && st.ref_ratio == ev.ref_ratio && st.ref_feature == 2,
            "stats: drift %d, ratio %g, feature %d", st.drift, st.ref_ratio, st.ref_feature);
    /* once only while it lasts; a promotion replaced the live model (the
     * reference is kept apart): the next job, fine-tuning another live
     * model, is still measured against the same reference and baseline */
    for (i = 0; i < 400 && ad_adapt_candidate(a); i++)
        offer_row(a, t++, REG_A, 1, 0);
    {
        ad_model *nl = ad_model_clone(g_live), *keep = g_live;

        T_CHECK(nl && ad_adapt_keep_reference(a, g_live) == 0 &&
                strcmp(ad_adapt_reference_id(a), g_live->id) == 0, "reference kept apart");
        if (nl) {
            nl->id[0] = nl->id[0] == 'f' ? 'e' : 'f';
            g_live = nl;                /* run_job fine-tunes the new live model */
            t = job_cycle(a, t, 1);
            g_live = keep;
            ad_model_free(nl);
        }
    }
    T_CHECK(drain(a, AD_ADAPT_EV_DRIFT, NULL) == 0, "no second notice while it lasts");
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.ref_ratio >= 2.0 && strcmp(ad_adapt_reference_id(a), g_live->id) == 0,
            "after the promotion: ratio %g against the same reference", st.ref_ratio);
    /* saved and restored with the same reference: the baseline goes on */
    txt = ad_adapt_save(a);
    b = new_adapt(&c);
    T_CHECK(txt && b && ad_adapt_set_reference(b, g_live, 1) == 0 &&
            ad_adapt_restore(b, txt, err, sizeof(err)) == 0, "restored: %s", err);
    if (b) {
        ad_adapt_stats sb;
        ad_adapt_get_stats(a, &st);
        ad_adapt_get_stats(b, &sb);
        T_CHECK(sb.drift == 1 && fabs(sb.ref_ratio - st.ref_ratio) < 1e-9,
                "restored: drift %d, ratio %g (saved %g)", sb.drift, sb.ref_ratio, st.ref_ratio);
        /* another reference (the operator's new model): a new baseline */
        {
            ad_model *m2 = ad_model_clone(g_live);
            if (m2) {
                m2->id[0] = m2->id[0] == 'f' ? 'e' : 'f';
                T_CHECK(ad_adapt_set_reference(b, m2, 0) == 0, "set another reference");
                ad_adapt_get_stats(b, &sb);
                T_CHECK(isnan(sb.ref_ratio) && sb.drift == 0 && sb.ref_feature == -1,
                        "another reference: no baseline (ratio %g, drift %d)", sb.ref_ratio,
                        sb.drift);
                ad_model_free(m2);
            }
        }
    }
    free(txt);
    ad_adapt_free(b);
    /* the operator accepts the drift (command accept_drift): the live model
     * is the reference, the notice withdrawn, no baseline until the next
     * fine-tune; a restart restores that reference although the daemon
     * offers the configured model (another id) before the restore */
    ad_adapt_accept_drift(a, g_live);
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.drift == 0 && isnan(st.ref_ratio) &&
            strcmp(ad_adapt_reference_id(a), g_live->id) == 0,
            "accept_drift: drift %d, ratio %g, reference %s", st.drift, st.ref_ratio,
            ad_adapt_reference_id(a));
    txt = ad_adapt_save(a);
    b = new_adapt(&c);
    {
        ad_model *cf = ad_model_clone(g_live);

        if (cf)
            cf->id[0] = cf->id[0] == 'f' ? 'e' : 'f';
        T_CHECK(txt && b && cf && ad_adapt_set_reference(b, g_live, 1) == 0 &&
                ad_adapt_set_reference(b, cf, 0) == 0 &&
                ad_adapt_restore(b, txt, err, sizeof(err)) == 0 &&
                strcmp(ad_adapt_reference_id(b), g_live->id) == 0 && ad_adapt_reference(b) == NULL,
                "restored: the accepted reference %s (want the live %s)",
                b ? ad_adapt_reference_id(b) : "-", g_live->id);
        ad_model_free(cf);
    }
    free(txt);
    ad_adapt_free(b);
    ad_adapt_free(a);
}

/* ---- (c) a candidate that would silence a true alert is rejected --------- */

/* After a true blockage alert: regime A judged normal, or (poison) A with
 * recurring blockage stretches that the detector no longer flags and the
 * caller therefore judges normal (a fault leaking into the normal set);
 * train, shadow on the same kind of data, decide. */
static int blockage_case_at(int poison, int epochs, int restart, ad_adapt_event *out)
{
    ad_adapt_cfg c;
    ad_adapt *a, *b;
    uint64_t t = 20000;
    int i, got;
    char *txt, err[200] = "";

    cfg_small(&c);
    c.min_gain = 0.0;
    c.epochs = epochs;
    a = new_adapt(&c);
    if (!a)
        return -1;
    ad_adapt_alert_raised(a, "pump1/7", (int64_t)t * 1000);
    for (i = 0; i < 20; i++)
        offer_row(a, t++, REG_A, 1, 1);
    if (restart) {
        /* a restart with the alert open: saved, restored into a new
         * learner, the alert continued (as the detector's restore does)
         * and cleared at the next window */
        txt = ad_adapt_save(a);
        b = new_adapt(&c);
        ad_adapt_free(a);
        a = b;
        if (!a || !txt || ad_adapt_restore(a, txt, err, sizeof(err)) != 0) {
            T_CHECK(0, "restart: %s", err);
            free(txt);
            ad_adapt_free(a);
            return -1;
        }
        free(txt);
        ad_adapt_alert_raised(a, "pump1/7", (int64_t)t * 1000);
    }
    ad_adapt_alert_cleared(a, "pump1/7", (int64_t)t * 1000, AD_ADAPT_CLEAR_TRUE);
    for (i = 0; i < 400 && !drain(a, AD_ADAPT_EV_TRAIN_READY, NULL); i++)
        offer_row(a, t++, REG_A, poison && (i / 40) % 2 == 1, 0);
    if (run_job(a) != 0) {
        ad_adapt_free(a);
        return -1;
    }
    for (i = 0; i < 400 && ad_adapt_candidate(a); i++)
        offer_row(a, t++, REG_A, poison && (i / 40) % 2 == 1, 0);
    got = ad_adapt_last(a, out);
    ad_adapt_free(a);
    return got ? 0 : -1;
}

static int blockage_case(int poison, int epochs, ad_adapt_event *out)
{
    return blockage_case_at(poison, epochs, 0, out);
}

static void test_silencing_candidate_rejected(void)
{
    ad_adapt_event ev, ctl;
    double t0 = now_s();

    T_CHECK(blockage_case(1, 150, &ev) == 0, "poisoned case decided");
    note_event("poisoned", &ev);
    T_CHECK(ev.type == AD_ADAPT_EV_REJECTED, "rejected (%s)", ad_adapt_ev_name(ev.type));
    /* On that data the candidate does reconstruct "normal" better: only the
     * true-alert guard stops it. */
    T_CHECK(ev.cand_error < ev.live_error, "error alone would promote: candidate %.4f, "
            "live %.4f", ev.cand_error, ev.live_error);
    T_CHECK(ev.alerts_checked == 1 && ev.alerts_silenced == 1 &&
            strcmp(ev.silenced_alert, "pump1/7") == 0 && ev.min_alert_ratio <= 1.0,
            "silenced %d of %d (%s), ratio %.3f", ev.alerts_silenced,
            ev.alerts_checked, ev.silenced_alert, ev.min_alert_ratio);
    T_CHECK(strstr(ev.reason, "would silence 1 of 1") != NULL, "reason: %s", ev.reason);
    /* Control: the same schedule on clean normal data keeps the alert. */
    T_CHECK(blockage_case(0, 150, &ctl) == 0, "control decided");
    note_event("control", &ctl);
    T_CHECK(ctl.alerts_silenced == 0 && ctl.min_alert_ratio > 1.0,
            "control: silenced %d, ratio %.3f", ctl.alerts_silenced, ctl.min_alert_ratio);
    T_NOTE("blockage alert: candidate score / threshold %.2f when trained on poisoned "
           "windows, %.2f on clean ones (%.2f s)", ev.min_alert_ratio,
           ctl.min_alert_ratio, now_s() - t0);
}

/* The same with a restart while the alert is open: its peak window so far
 * is saved with the learner, so the alert it clears as a true one after
 * the restart guards the decision as without the restart (the restored
 * learner had no peak: no true alert kept, the candidate promoted). */
static void test_silencing_after_restart(void)
{
    ad_adapt_event ev, ref;

    T_CHECK(blockage_case_at(1, 150, 1, &ev) == 0, "decided after the restart");
    note_event("restarted", &ev);
    T_CHECK(ev.type == AD_ADAPT_EV_REJECTED && ev.alerts_checked == 1 &&
            ev.alerts_silenced == 1 && strcmp(ev.silenced_alert, "pump1/7") == 0,
            "%s: silenced %d of %d (%s)", ad_adapt_ev_name(ev.type), ev.alerts_silenced,
            ev.alerts_checked, ev.silenced_alert);
    T_CHECK(blockage_case_at(1, 150, 0, &ref) == 0, "decided without a restart");
    T_CHECK(ev.type == ref.type && ev.min_alert_ratio == ref.min_alert_ratio &&
            ev.cand_error == ref.cand_error,
            "as without the restart: ratio %.9g / %.9g, candidate error %.9g / %.9g",
            ev.min_alert_ratio, ref.min_alert_ratio, ev.cand_error, ref.cand_error);
}

/* The windows inside alerts kept for an accepted regime survive a restart
 * (and a state without them, from before they were saved, loads). */
static void test_alert_windows_restored(void)
{
    ad_adapt_cfg c;
    ad_adapt *a = NULL, *b = NULL;
    ad_adapt_stats sa, sb;
    char *txt = NULL, *old = NULL, err[200] = "";
    cJSON *j;
    int k;

    cfg_small(&c);
    a = new_adapt(&c);
    b = new_adapt(&c);
    if (!a || !b || ad_adapt_keep_alert_windows(a, 8) || ad_adapt_keep_alert_windows(b, 8))
        goto out;
    ad_adapt_alert_raised(a, "x/1", 1000);
    for (k = 1; k <= 12; k++)
        offer_row(a, (uint64_t)k, REG_A, 1, 1);
    txt = ad_adapt_save(a);
    T_CHECK(txt && strstr(txt, "\"alert_windows\":[{\"ts\":5000,") &&
            strstr(txt, "\"alert\":{\"id\":\"x/1\""), "saved: %.300s", txt ? txt : "");
    T_CHECK(txt && ad_adapt_restore(b, txt, err, sizeof(err)) == 0, "restored: %s", err);
    ad_adapt_alert_raised(b, "x/1", 12000);
    /* accepted: the windows from 7 s on teach at once */
    ad_adapt_alerts_accepted(a, 7000, 100);
    ad_adapt_alerts_accepted(b, 7000, 100);
    ad_adapt_get_stats(a, &sa);
    ad_adapt_get_stats(b, &sb);
    T_CHECK(sa.normal_len == 6 && sb.normal_len == sa.normal_len,
            "normal set after acceptance: %zu restored, %zu without restart",
            (size_t)sb.normal_len, (size_t)sa.normal_len);
    /* a state saved before they were kept */
    j = txt ? cJSON_Parse(txt) : NULL;
    cJSON_DeleteItemFromObject(j, "alert_windows");
    cJSON_DeleteItemFromObject(j, "alert");
    old = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    ad_adapt_free(b);
    b = new_adapt(&c);
    T_CHECK(old && b && ad_adapt_restore(b, old, err, sizeof(err)) == 0,
            "an older state loads: %s", err);
out:
    free(txt);
    free(old);
    ad_adapt_free(a);
    ad_adapt_free(b);
}

/* ---- reload.shadow: an external model file in shadow --------------------- */

static void test_reload_shadow(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_event ev;
    ad_model *copy, *back;
    uint64_t t = 40000;
    int i;

    cfg_small(&c);
    c.enabled = 0;              /* reload.shadow works without adapt.enabled */
    c.reload_shadow = 1;
    c.shadow_windows = 40;
    c.min_gain = 0.05;
    a = new_adapt(&c);
    T_CHECK(a != NULL, "new");
    if (!a)
        return;
    for (i = 0; i < 30; i++)
        offer_row(a, t++, REG_A, 0, 0);
    /* The "new" file is the same weights: no 5% gain, rejected by error. */
    copy = ad_model_clone(g_live);
    T_CHECK(ad_adapt_shadow_begin(a, copy, 1, (int64_t)t * 1000) == 0, "shadow begin");
    T_CHECK(ad_adapt_same_scaler(a, g_live) == 1, "same scaler: the scaled buffer is valid");
    for (i = 0; i < 100 && ad_adapt_candidate(a); i++)
        offer_row(a, t++, REG_A, 0, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_REJECTED, &ev) == 1, "decided");
    T_CHECK(ev.origin == AD_ADAPT_RELOAD && ev.gain == 0.0 && ev.normal_windows == 40 &&
            strstr(ev.reason, "> live"), "reload: gain %.3f, %s", ev.gain, ev.reason);
    note_event("reload, identical model", &ev);
    back = ad_adapt_take_candidate(a);
    T_CHECK(back == copy, "the caller gets the rejected candidate back to free");
    ad_model_free(back);
    T_CHECK(ad_adapt_take_candidate(a) == NULL, "only once");

    /* A shadow span spent mostly inside an alert: too few normal windows. */
    T_CHECK(ad_adapt_shadow_begin(a, g_live, 0, (int64_t)t * 1000) == 0, "shadow (cloned)");
    ad_adapt_alert_raised(a, "pump1/9", (int64_t)t * 1000);
    for (i = 0; i < 30; i++)
        offer_row(a, t++, REG_A, 1, 1);
    ad_adapt_alert_cleared(a, "pump1/9", (int64_t)t * 1000, AD_ADAPT_CLEAR_TRUE);
    for (i = 0; i < 100 && ad_adapt_candidate(a); i++)
        offer_row(a, t++, REG_A, 0, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_REJECTED, &ev) == 1 && ev.shadow_windows == 40 &&
            ev.normal_windows < 20 && strstr(ev.reason, "too few"),
            "%" PRIu64 " normal of %" PRIu64 ": %s", ev.normal_windows,
            ev.shadow_windows, ev.reason);
    T_NOTE("too few: %s", ev.reason);
    T_CHECK(drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) == 0, "adapt.enabled off: no schedule");
    ad_adapt_free(a);
}

/* ---- decided candidates are handed over, never freed by the learner ------ */

/* A decided candidate (here abandoned for the next model file) may still be
 * scored by worker batches in flight: the caller takes it when it polls the
 * decision event and frees it once none reads it. A caller that goes on
 * without polling (reloads, each abandoning a shadow for the next: two
 * events each, more than AD_ADAPT_EVENTS in all) must still get the first
 * decided candidate and its event. The batch that still holds it reads it
 * at the end: under the sanitizer build a freed one fails outright. */
static void test_decided_handed_over(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_event ev;
    ad_model *first, *back;
    const ad_model *inflight;
    int k, refused = 0, started = 0, polled = 0, first_seen = 0;

    cfg_small(&c);
    c.enabled = 0;
    c.reload_shadow = 1;
    a = new_adapt(&c);
    first = ad_model_clone(g_live);
    if (!a || !first || ad_adapt_shadow_begin(a, first, 1, 1000) != 0) {
        T_CHECK(0, "setup");
        ad_model_free(first);
        ad_adapt_free(a);
        return;
    }
    inflight = first;                   /* a worker batch scores it */
    T_CHECK(ad_adapt_abandon(a, "the next model file replaces it", 1000) == 1, "abandoned");
    for (k = 1; k <= AD_ADAPT_EVENTS; k++) {
        ad_model *m = ad_model_clone(g_live);

        if (m == NULL)
            break;
        if (ad_adapt_shadow_begin(a, m, 1, 1000 + k) != 0) {
            ad_model_free(m);
            refused++;
            continue;
        }
        started++;
        ad_adapt_abandon(a, "the next model file replaces it", 1000 + k);
    }
    while (ad_adapt_poll_event(a, &ev)) {
        polled++;
        if (ev.type == AD_ADAPT_EV_REJECTED && ev.ts_ms == 1000)
            first_seen = 1;
    }
    T_CHECK(refused == AD_ADAPT_EVENTS && started == 0,
            "no shadow begins while a decided candidate waits: %d refused, %d started",
            refused, started);
    T_CHECK(first_seen, "the first decision's event was dropped (%d events polled)", polled);
    back = ad_adapt_take_candidate(a);
    T_CHECK(back == first, "the first decided candidate is not handed over (%p, want %p)",
            (void *)back, (void *)first);
    T_CHECK(inflight->window == T && inflight->n_features == F,
            "the batch's candidate: window %d, features %d", inflight->window,
            inflight->n_features);
    T_NOTE("%d shadow begins refused while a decided candidate waited; %d event(s) polled, "
           "the decision's among them: %s; handed over: %s", refused, polled,
           first_seen ? "yes" : "no", back == first ? "yes" : "no");
    if (back == first)
        ad_model_free(back);
    T_CHECK(ad_adapt_shadow_begin(a, g_live, 0, 2000) == 0, "taken: the next shadow begins");
    ad_adapt_free(a);
}

/* ---- (c2) windows judged against an accepted regime ---------------------- */

/* A shadow span of 150 windows judged normal, every `every`-th one judged
 * against an accepted regime (over the live threshold, under the
 * regime's): the candidate scores those 1.0, the others 0.10-0.16; scores
 * smoothed with alpha (1: none). *fmax: the highest score fitted. */
static void regime_span(int every, double alpha, ad_adapt_event *ev, size_t *nfit,
                        double *fmax)
{
    ad_adapt_cfg c;
    ad_adapt *a = NULL;
    ad_thr_cfg thr;
    float w[W] = { 0 };
    double *fit;
    char err[200];
    size_t k;
    int i;

    cfg_small(&c);
    c.enabled = 0;
    ad_thr_cfg_default(&thr);
    if (ad_adapt_new(&a, &c, T, F, AD_METRIC_MAE, alpha, &thr, err, sizeof(err)) != 0)
        fprintf(stderr, "ad_adapt_new: %s\n", err);
    *fmax = NAN;
    memset(ev, 0, sizeof(*ev));
    *nfit = 0;
    if (a == NULL || ad_adapt_shadow_begin(a, g_live, 0, 1000) != 0) {
        T_CHECK(0, "adapt and shadow");
        ad_adapt_free(a);
        return;
    }
    for (i = 0; i < 400 && ad_adapt_candidate(a); i++) {
        int reg = i % every == every - 1;
        ad_adapt_obs o = { .ts_ms = 1000 + i, .live_score = reg ? 1.2 : 0.3,
                           .cand_score = reg ? 1.0 : 0.10 + 0.01 * (i % 7),
                           .regime = reg };
        ad_adapt_offer(a, w, NULL, &o);
    }
    T_CHECK(drain(a, AD_ADAPT_EV_PROMOTED, ev) == 1, "promoted (1 in %d regime windows): %s",
            every, ev->reason);
    fit = ad_adapt_shadow_fit(a, alpha, nfit, NULL);
    for (k = 0; fit && k < *nfit; k++)
        if (!(fit[k] <= *fmax))
            *fmax = fit[k];
    free(fit);
    ad_model_free(ad_adapt_take_candidate(a));
    ad_adapt_free(a);
}

/* Windows judged against an accepted regime scored over the live threshold;
 * the candidate's threshold (and the detector's rebase at a promotion) is
 * fitted without them, or a regime that the candidate did not learn lifts
 * it to the regime's level: the regime then looks learned and faults under
 * that level go unseen. When they are half or more of the span, the
 * process stayed in the regime and they count. */
static void test_regime_windows_left_out(void)
{
    ad_adapt_event ev;
    size_t n;
    double fmax;

    regime_span(10, 1.0, &ev, &n, &fmax);
    T_NOTE("1 in 10 regime windows: %s; threshold %.4f", ev.reason, ev.cand_threshold);
    T_CHECK(ev.normal_windows == 150 && ev.regime_windows == 15 && n == 135,
            "normal %" PRIu64 ", regime %" PRIu64 ", fitted on %zu", ev.normal_windows,
            ev.regime_windows, n);
    T_CHECK(ev.cand_threshold >= 0.16 && ev.cand_threshold < 0.5,
            "threshold %.4f from the other windows (0.10-0.16), not the regime's 1.0",
            ev.cand_threshold);
    /* smoothed (alpha 0.5): a left-out score does not carry into the next */
    regime_span(10, 0.5, &ev, &n, &fmax);
    T_NOTE("1 in 10, alpha 0.5: threshold %.4f, highest fitted %.4f", ev.cand_threshold, fmax);
    T_CHECK(n == 135 && fmax <= 0.16 + 1e-9 && ev.cand_threshold < 0.5,
            "alpha 0.5: fitted on %zu, highest %.4f (the others' range 0.10-0.16), "
            "threshold %.4f", n, fmax, ev.cand_threshold);
    regime_span(2, 1.0, &ev, &n, &fmax);
    T_NOTE("1 in 2 regime windows: threshold %.4f", ev.cand_threshold);
    T_CHECK(ev.regime_windows == 75 && n == 150, "regime %" PRIu64 ", fitted on %zu",
            ev.regime_windows, n);
    T_CHECK(ev.cand_threshold >= 1.0, "half the span in the regime: its windows count (%.4f)",
            ev.cand_threshold);
}

/* ---- (d) schedule by window count and by data time ----------------------- */

static void offer_plain(ad_adapt *a, int64_t ts, int exceeded)
{
    float w[W] = { 0 };
    ad_adapt_obs o = { .ts_ms = ts, .live_score = 0.1, .cand_score = NAN,
                       .exceeded = exceeded };
    ad_adapt_offer(a, w, NULL, &o);
}

static void test_schedule(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_job *j;
    ad_adapt_event ev;
    int k, fired = 0;

    /* Count: every 50 windows, min 10 normal windows. */
    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.every_windows = 50;
    c.every_hours = 0;
    c.margin = 0;
    c.min_windows = 10;
    c.normal_windows = 20;
    a = new_adapt(&c);
    for (k = 1; k <= 49; k++)
        offer_plain(a, k, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) == 0, "not before 50");
    offer_plain(a, 50, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_TRAIN_READY, &ev) == 1, "fires at window 50");
    T_CHECK(ev.train_windows == 20, "job over %" PRIu64 " windows (ring of 20)", ev.train_windows);
    /* a scheduled fine-tune, lost at a restart, is not an acceptance's:
     * neither marked lost (its restore made it an acceptance's, due at
     * once and waiting for a regime's occurrence) nor with the normal set;
     * the restored learner goes on with its schedule */
    {
        char *hs = ad_adapt_save_handover(a);
        ad_adapt *b = new_adapt(&c);
        ad_adapt_stats sb;
        char err[200] = "";
        int rk = 0, got = 0;

        T_CHECK(hs && !strstr(hs, "finetune_lost") && !strstr(hs, "\"normal\":") &&
                !strstr(hs, "accept_finetune"), "scheduled fine-tune due: not saved as lost "
                "(%.80s)", hs && strstr(hs, "finetune_lost") ? strstr(hs, "finetune_lost") : "");
        T_CHECK(b && hs && ad_adapt_restore(b, hs, err, sizeof(err)) == 0, "restored: %s", err);
        /* due by its schedule once the set holds min_windows again */
        for (k = 51; b && !got && k <= 80; k++) {
            offer_plain(b, k, 0);
            got = drain(b, AD_ADAPT_EV_TRAIN_READY, NULL) ? k : 0;
            rk = k;
        }
        ad_adapt_get_stats(b, &sb);
        T_CHECK(got == 60, "restored: its schedule due at window %d once 10 normal windows "
                "were back (%" PRIu64 " at %d)", got, sb.normal_len, rk);
        free(hs);
        ad_adapt_free(b);
    }
    j = ad_adapt_take_job(a, g_live);
    T_CHECK(j && j->n == 20 && j->init && j->init != g_live && j->seed == c.seed + 1,
            "job: copies and seed");
    T_CHECK(ad_adapt_take_job(a, g_live) == NULL, "one job at a time");
    ad_adapt_job_free(j);
    T_CHECK(ad_adapt_train_done(a, NULL, 1, NULL, "disk full") == 0, "failure reported");
    T_CHECK(drain(a, AD_ADAPT_EV_TRAIN_FAILED, &ev) == 1 &&
            strstr(ev.reason, "disk full"), "train failed event");
    for (k = 51; k <= 99; k++)
        offer_plain(a, k, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) == 0, "restarts after the failure");
    offer_plain(a, 100, 0);
    T_CHECK(drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) == 1, "fires again at +50");
    ad_adapt_free(a);

    /* Due, but too few normal windows: waits for min_windows. */
    c.normal_windows = 100;
    c.min_windows = 60;
    a = new_adapt(&c);
    for (k = 1; k <= 50; k++)
        offer_plain(a, k, 0);
    for (k = 51; fired == 0 && k <= 200; k++) {
        offer_plain(a, k, 0);
        fired = drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) ? k : 0;
    }
    T_CHECK(fired == 60, "waited for 60 normal windows: fired at %d", fired);
    ad_adapt_free(a);

    /* Data time: every hour, windows one minute apart. */
    c.every_windows = 0;
    c.every_hours = 1.0;
    c.min_windows = 10;
    a = new_adapt(&c);
    fired = 0;
    for (k = 0; fired == 0 && k < 200; k++) {
        offer_plain(a, (int64_t)k * 60000, 0);
        fired = drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) ? k : 0;
    }
    T_CHECK(fired == 60, "fired at minute %d (expected 60)", fired);
    T_NOTE("schedule: count trigger at 50, waits for min_windows (60), data time at 60 min");
    ad_adapt_free(a);
}

/* A fine-tune that falls due while an accepted regime's occurrence runs
 * (windows judged against the regime: a daily peak accepted at its onset)
 * waits until margin windows passed without one, so the candidate's shadow
 * span does not compare the models over the regime's hours; a regime that
 * never ends holds it at most shadow_windows windows. */
static int regime_due_at(int reg_from, int reg_to)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    int k, fired = 0;

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.every_windows = 50;
    c.every_hours = 0;
    c.margin = 5;
    c.min_windows = 10;
    c.normal_windows = 100;
    c.shadow_windows = 40;
    a = new_adapt(&c);
    for (k = 1; a && fired == 0 && k <= 300; k++) {
        float w[W] = { 0 };
        ad_adapt_obs o = { .ts_ms = k, .live_score = 0.1, .cand_score = NAN,
                           .regime = k >= reg_from && k <= reg_to };
        ad_adapt_offer(a, w, NULL, &o);
        fired = drain(a, AD_ADAPT_EV_TRAIN_READY, NULL) ? k : 0;
    }
    ad_adapt_free(a);
    return fired;
}

static void test_regime_occurrence_holds(void)
{
    int none = regime_due_at(0, -1), peak = regime_due_at(46, 70), all = regime_due_at(46, 300);

    T_NOTE("due at window 50: fired at %d without a regime, %d with one at 46-70, %d with "
           "one from 46 on", none, peak, all);
    T_CHECK(none == 50, "no regime: fires when due (%d)", none);
    T_CHECK(peak == 76, "regime windows 46-70: fires after 5 quiet windows, at 76 (%d)", peak);
    T_CHECK(all == 90, "a regime that does not end holds 40 windows: fires at 90 (%d)", all);
}

/* ---- (e) save / restore -------------------------------------------------- */

static void test_save_restore(void)
{
    ad_adapt_cfg c;
    ad_adapt *a, *b, *o;
    ad_adapt_stats sa, sb;
    ad_adapt_event ea, eb;
    ad_thr_cfg thr;
    char *s1, *s2, err[200], *bad;
    int k, rc;

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.every_windows = 30;
    c.every_hours = 0;
    c.margin = 2;
    c.min_windows = 5;
    a = new_adapt(&c);
    for (k = 1; k <= 40; k++) {
        if (k == 10)
            ad_adapt_alert_raised(a, "x/1", k);
        if (k == 15)
            ad_adapt_alert_cleared(a, "x/1", k, AD_ADAPT_CLEAR_TRUE);
        offer_plain(a, k * 1000, 0);
        if (k == 30) {
            ad_adapt_job_free(ad_adapt_take_job(a, g_live));
            ad_adapt_train_done(a, NULL, 1, NULL, "no space");
        }
    }
    s1 = ad_adapt_save(a);
    T_CHECK(s1 != NULL, "saved");
    b = new_adapt(&c);
    rc = ad_adapt_restore(b, s1, err, sizeof(err));
    T_CHECK(rc == 0, "restore: %s", err);
    s2 = ad_adapt_save(b);
    T_CHECK(s1 && s2 && strcmp(s1, s2) == 0, "roundtrip identical (%zu bytes)",
            s1 ? strlen(s1) : 0);
    ad_adapt_get_stats(a, &sa);
    ad_adapt_get_stats(b, &sb);
    T_CHECK(sb.sched_windows == sa.sched_windows && sb.sched_windows == 10 &&
            sb.failures == 1 && sb.attempts == 1 && sb.true_alerts == 1,
            "schedule %" PRIu64 " failures %" PRIu64 " true alerts %d",
            sb.sched_windows, sb.failures, sb.true_alerts);
    T_CHECK(ad_adapt_last(b, &eb) && ad_adapt_last(a, &ea) &&
            eb.type == AD_ADAPT_EV_TRAIN_FAILED && strcmp(eb.reason, ea.reason) == 0,
            "last decision restored");
    /* The restored schedule resumes: 20 more windows reach 30. */
    for (k = 41; k <= 59; k++)
        offer_plain(b, k * 1000, 0);
    T_CHECK(drain(b, AD_ADAPT_EV_TRAIN_READY, NULL) == 0, "not yet");
    offer_plain(b, 60000, 0);
    T_CHECK(drain(b, AD_ADAPT_EV_TRAIN_READY, NULL) == 1, "resumes at its position");

    /* Another window shape, malformed text. */
    ad_thr_cfg_default(&thr);
    ad_adapt_new(&o, &c, T + 1, F, AD_METRIC_MAE, 1.0, &thr, err, sizeof(err));
    rc = ad_adapt_restore(o, s1, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strstr(err, "window 12x3"), "%d %s", rc, err);
    /* ... its decisions still count on, and are saved on */
    {
        ad_adapt_stats so;
        char *s3;

        T_CHECK(ad_adapt_restore_counts(o, "{\"attempts\":1}") == AD_EFORMAT &&
                ad_adapt_restore_counts(o, "[") == AD_EFORMAT, "counts of malformed text refused");
        ad_adapt_get_stats(o, &so);
        T_CHECK(so.attempts == 0 && so.failures == 0, "nothing changed by a refusal");
        T_CHECK(ad_adapt_restore_counts(o, s1) == 0, "counts of another window shape taken");
        ad_adapt_get_stats(o, &so);
        T_CHECK(so.attempts == sa.attempts && so.failures == sa.failures &&
                so.promotions == sa.promotions && so.rejections == sa.rejections &&
                so.true_alerts == 0 && so.sched_windows == 0,
                "counts only: attempts %" PRIu64 " failures %" PRIu64 " true alerts %d",
                so.attempts, so.failures, so.true_alerts);
        s3 = ad_adapt_save(o);
        T_CHECK(s3 && strstr(s3, "\"attempts\":1,\"promotions\":0,\"rejections\":0,"
                             "\"failures\":1,"), "saved on: %.160s", s3 ? s3 : "(null)");
        free(s3);
    }
    rc = ad_adapt_restore(b, "{\"version\":1", err, sizeof(err));
    T_CHECK(rc == AD_EFORMAT && strstr(err, "not a JSON object"), "%s", err);
    bad = NULL;
    {
        cJSON *j = s1 ? cJSON_Parse(s1) : NULL;
        cJSON *ta = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "true_alerts"), 0);
        cJSON *w = cJSON_GetObjectItem(ta, "window");

        if (w && cJSON_ReplaceItemInArray(w, 3, cJSON_CreateString("x")))
            bad = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    T_CHECK(bad != NULL, "mutated state");
    if (bad) {
        rc = ad_adapt_restore(b, bad, err, sizeof(err));
        T_CHECK(rc == AD_EFORMAT && strstr(err, "true_alerts[0].window[3]"), "%d %s", rc, err);
        free(bad);
    }
    rc = ad_adapt_restore(b, "{\"version\":1,\"T\":12,\"F\":3,\"offered\":-4}", err, sizeof(err));
    T_CHECK(rc == AD_EFORMAT && strstr(err, "offered"), "%s", err);
    T_NOTE("state: %.120s...", s1 ? s1 : "");
    free(s1);
    free(s2);
    ad_adapt_free(a);
    ad_adapt_free(b);
    ad_adapt_free(o);
}

/* ---- (e2) window counts in data time ------------------------------------- */

/* Settings in data time become windows of the stream's period: rounded,
 * margin may round to 0; min against normal is refused with the config
 * when both are in one form, clamped (with a note) when the forms mix. */
static void test_data_time_resolve(void)
{
    ad_adapt_cfg c;
    char note[300], err[200];
    int rc;

    ad_adapt_cfg_default(&c);
    c.normal_ms = 3600000;          /* 1 h */
    c.min_ms = 1800000;
    c.margin_ms = 2000;             /* less than half a window */
    c.shadow_ms = 7200000;
    T_CHECK(ad_adapt_cfg_check(&c, err, sizeof(err)) == 0, "valid: %s", err);
    rc = ad_adapt_cfg_resolve(&c, 5000, note, sizeof(note));
    T_CHECK(rc == 0 && c.normal_windows == 720 && c.min_windows == 360 && c.margin == 0 &&
            c.shadow_windows == 1440 && note[0] == '\0' && c.normal_ms == 3600000,
            "5 s windows: normal %d, min %d, margin %d, shadow %d (want 720, 360, 0, "
            "1440) '%s'", c.normal_windows, c.min_windows, c.margin, c.shadow_windows, note);
    /* normal 1 h of one-minute windows, min the default count 200 */
    ad_adapt_cfg_default(&c);
    c.normal_ms = 3600000;
    T_CHECK(ad_adapt_cfg_check(&c, err, sizeof(err)) == 0, "mixed forms pass the config: %s",
            err);
    rc = ad_adapt_cfg_resolve(&c, 60000, note, sizeof(note));
    T_CHECK(rc == 1 && c.normal_windows == 60 && c.min_windows == 60 &&
            strcmp(note, "adapt.min_windows (200) is more than adapt.normal_ms (3600000 ms "
                   "= 60 windows): 60 used") == 0,
            "rc %d, normal %d, min %d: '%s'", rc, c.normal_windows, c.min_windows, note);
    T_NOTE("clamped: %s", note);
    ad_adapt_cfg_default(&c);
    c.min_ms = 7200000;
    rc = ad_adapt_cfg_resolve(&c, 60000, note, sizeof(note));
    T_CHECK(rc == 0 && c.min_windows == 120 && note[0] == '\0',
            "min 2 h = 120 windows within normal 500: rc %d, min %d '%s'", rc,
            c.min_windows, note);
    c.normal_windows = 100;
    rc = ad_adapt_cfg_resolve(&c, 60000, note, sizeof(note));
    T_CHECK(rc == 1 && c.min_windows == 100 &&
            strcmp(note, "adapt.min_ms (7200000 ms = 120 windows) is more than "
                   "adapt.normal_windows (100): 100 used") == 0,
            "min 2 h over normal 100 windows: min %d '%s'", c.min_windows, note);
    /* both in data time: checked with the config */
    ad_adapt_cfg_default(&c);
    c.normal_ms = 3600000;
    c.min_ms = 7200000;
    rc = ad_adapt_cfg_check(&c, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strcmp(err, "adapt.min_ms: must be in 0..adapt.normal_ms "
                                      "(3600000) (got 7200000)") == 0, "%d '%s'", rc, err);
    /* both counts: as before */
    ad_adapt_cfg_default(&c);
    c.min_windows = 600;
    rc = ad_adapt_cfg_check(&c, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strstr(err, "adapt.min_windows: must be in 1..adapt.normal_windows "
                                      "(500) (got 600)"), "%d '%s'", rc, err);
    ad_adapt_cfg_default(&c);
    c.shadow_ms = -1;
    rc = ad_adapt_cfg_check(&c, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strcmp(err, "adapt.shadow_ms: must be in 0..31622400000 (a "
                                      "year; got -1)") == 0, "'%s'", err);
    ad_adapt_cfg_default(&c);
    c.margin_ms = AD_ADAPT_MAX_MS + 1;
    rc = ad_adapt_cfg_check(&c, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strstr(err, "adapt.margin_ms: must be in 0..31622400000"),
            "'%s'", err);
    /* beyond the count's range: the largest count, noted */
    ad_adapt_cfg_default(&c);
    c.shadow_ms = AD_ADAPT_MAX_MS;
    rc = ad_adapt_cfg_resolve(&c, 1000, note, sizeof(note));
    T_CHECK(rc == 1 && c.shadow_windows == 1000000 && strstr(note, "adapt.shadow_ms"),
            "a year of 1 s windows: shadow %d '%s'", c.shadow_windows, note);
}

/* Offer window k (ts k * step ms) the same way to a and b; alerts and
 * over-threshold windows on a fixed pattern, real scores (candidate too). */
static void offer_both(ad_adapt *a, ad_adapt *b, uint64_t k, int64_t step)
{
    ad_adapt *x[2] = { a, b };
    int i;

    for (i = 0; i < 2; i++) {
        float w[W];
        const ad_model *cand = ad_adapt_candidate(x[i]);
        ad_adapt_obs o;

        if (k % 100 == 60)
            ad_adapt_alert_raised(x[i], "s/1", (int64_t)k * step);
        if (k % 100 == 70)
            ad_adapt_alert_cleared(x[i], "s/1", (int64_t)k * step, AD_ADAPT_CLEAR_TRUE);
        gen_window(k, REG_A, k % 100 >= 60 && k % 100 < 70, w);
        o.ts_ms = (int64_t)k * step;
        o.live_score = score(g_live, w);
        o.cand_score = cand ? score(cand, w) : NAN;
        o.exceeded = k % 100 >= 60 && k % 100 < 70;
        o.dq = k % 37 == 0;
        o.regime = 0;
        ad_adapt_offer(x[i], w, NULL, &o);
    }
}

/* The same learner with its counts as data time (a window every 5 s)
 * behaves exactly as with the counts: same normal set, same events with
 * the same figures, the decision after shadow_ms of data, also when the
 * period becomes known only after 49 windows (they are held and then go
 * through the pending queue). Before the period is known it schedules
 * nothing and refuses a shadow; past AD_ADAPT_EARLY held windows the rest
 * are not kept; an alert's margin cleared before then still applies
 * after; a raise before then drops the held windows (the margin is not
 * known), or with the margin a count only those within it. */
static void test_data_time_learner(void)
{
    ad_adapt_cfg c, cm;
    ad_adapt *a, *b;
    ad_adapt_stats sa, sb;
    ad_adapt_event ea, eb;
    const ad_adapt_cfg *eff;
    ad_model *m;
    char note[300], err[300];
    int k, rc, n_ev = 0, same = 1, decided = 0;
    int64_t shadow_ts = -1, decide_ts = -1;
    size_t i;

    cfg_small(&c);
    c.every_windows = 120;
    c.normal_windows = 80;
    c.min_windows = 40;
    c.margin = 3;
    c.shadow_windows = 60;
    c.reload_shadow = 1;
    cm = c;
    cm.normal_ms = 80 * 5000;
    cm.min_ms = 40 * 5000;
    cm.margin_ms = 3 * 5000;
    cm.shadow_ms = 60 * 5000;
    a = new_adapt(&c);
    b = new_adapt(&cm);
    T_CHECK(a && b, "new");
    if (!a || !b) {
        ad_adapt_free(a);
        ad_adapt_free(b);
        return;
    }
    T_CHECK(ad_adapt_resolved(a) && !ad_adapt_resolved(b) &&
            ad_adapt_get_cfg(b)->normal_windows == 0, "counts: resolved at once; data "
            "time: not before the period (normal %d)", ad_adapt_get_cfg(b)->normal_windows);
    /* unresolved: 20 clean windows, due every 5, min 1 - held, no
     * fine-tune until the counts are known */
    {
        ad_adapt_cfg e = cm;
        ad_adapt *u;
        e.every_windows = 5;
        e.min_ms = 5000;
        u = new_adapt(&e);
        for (k = 1; k <= 20; k++)
            offer_plain(u, (int64_t)k * 5000, 0);
        ad_adapt_get_stats(u, &sa);
        rc = ad_adapt_shadow_begin(u, g_live, 0, 100000);
        T_CHECK(sa.normal_len == 0 && sa.pending == 20 && sa.excluded_early == 0 &&
                drain(u, AD_ADAPT_EV_TRAIN_READY, NULL) == 0 && rc == AD_EINVAL &&
                ad_adapt_candidate(u) == NULL,
                "before the period: normal %" PRIu64 ", held %" PRIu64 ", no fine-tune, "
                "shadow refused (%d)", sa.normal_len, sa.pending, rc);
        rc = ad_adapt_resolve(u, 5000, note, sizeof(note), err, sizeof(err));
        for (k = 21; k <= 26; k++)
            offer_plain(u, (int64_t)k * 5000, 0);
        ad_adapt_get_stats(u, &sa);
        T_CHECK(rc == 0 && sa.normal_len == 26 - 3 && sa.pending == 3 &&
                drain(u, AD_ADAPT_EV_TRAIN_READY, NULL) == 1,
                "after it: normal %" PRIu64 " of 26 (3 pending), a fine-tune due",
                sa.normal_len);
        ad_adapt_free(u);
        /* more than AD_ADAPT_EARLY before the period: the rest not kept */
        u = new_adapt(&e);
        for (k = 1; k <= 70; k++)
            offer_plain(u, (int64_t)k * 5000, 0);
        ad_adapt_resolve(u, 5000, note, sizeof(note), err, sizeof(err));
        ad_adapt_get_stats(u, &sa);
        T_CHECK(sa.normal_len == 64 && sa.excluded_early == 6,
                "70 before the period: %" PRIu64 " in the set, %" PRIu64 " not kept",
                sa.normal_len, sa.excluded_early);
        ad_adapt_free(u);
        /* a shadow span of 3 windows at this rate (a slow stream): raised
         * to twice the 10 calibration.min_samples a candidate's threshold
         * is fitted on (half the span must be normal) */
        e.shadow_ms = 3 * 5000;
        u = new_adapt(&e);
        rc = u ? ad_adapt_resolve(u, 5000, note, sizeof(note), err, sizeof(err)) : -1;
        T_CHECK(rc == 0 && ad_adapt_get_cfg(u)->shadow_windows == 20 &&
                strstr(note, "twice the 10 normal windows") != NULL,
                "shadow_ms of 3 windows: %d used (%s)", u ? ad_adapt_get_cfg(u)->shadow_windows : -1,
                note);
        ad_adapt_free(u);
        /* a normal set of 2 windows and a minimum of 1 (a day of daily
         * rows is one window): a fine-tune would learn those alone; both
         * raised to 20 (AD_ADAPT_NORMAL_MIN, the shadow need being 20) */
        {
            ad_adapt_cfg e2 = e;

            e2.normal_ms = 2 * 5000;
            e2.min_ms = 1 * 5000;
            e2.shadow_ms = 0;
            u = new_adapt(&e2);
            rc = u ? ad_adapt_resolve(u, 5000, note, sizeof(note), err, sizeof(err)) : -1;
            T_CHECK(rc == 0 && ad_adapt_get_cfg(u)->normal_windows == 20 &&
                    ad_adapt_get_cfg(u)->min_windows == 20 &&
                    strstr(note, "adapt.normal_ms (10000 ms) is 2 windows") != NULL &&
                    strstr(note, "adapt.min_ms (5000 ms) is 1 windows: 20 used") != NULL,
                    "normal_ms of 2 windows: %d/%d used (%s)",
                    u ? ad_adapt_get_cfg(u)->normal_windows : -1,
                    u ? ad_adapt_get_cfg(u)->min_windows : -1, note);
            ad_adapt_free(u);
            /* a minimum given as a count (7) against that set: kept, not
             * lowered to the unfloored set's 2 windows */
            e2.min_ms = 0;
            e2.min_windows = 7;
            u = new_adapt(&e2);
            rc = u ? ad_adapt_resolve(u, 5000, note, sizeof(note), err, sizeof(err)) : -1;
            T_CHECK(rc == 0 && ad_adapt_get_cfg(u)->normal_windows == 20 &&
                    ad_adapt_get_cfg(u)->min_windows == 7,
                    "normal_ms of 2 windows, min_windows 7: %d/%d used (%s)",
                    u ? ad_adapt_get_cfg(u)->normal_windows : -1,
                    u ? ad_adapt_get_cfg(u)->min_windows : -1, note);
            ad_adapt_free(u);
        }
    }
    for (k = 1; k <= 400; k++) {
        if (k == 50) {          /* the period known after 49 windows */
            rc = ad_adapt_resolve(b, 5000, note, sizeof(note), err, sizeof(err));
            eff = ad_adapt_get_cfg(b);
            T_CHECK(rc == 0 && ad_adapt_resolved(b) && eff->normal_windows == 80 &&
                    eff->min_windows == 40 && eff->margin == 3 && eff->shadow_windows == 60 &&
                    note[0] == '\0', "resolved at 5 s: %d/%d/%d/%d %s", eff->normal_windows,
                    eff->min_windows, eff->margin, eff->shadow_windows, rc ? err : note);
            T_CHECK(ad_adapt_resolve(b, 1000, note, sizeof(note), err, sizeof(err)) == 0 &&
                    ad_adapt_get_cfg(b)->normal_windows == 80, "resolved once");
        }
        if (k == 49) {
            ad_adapt_get_stats(a, &sa);
            ad_adapt_get_stats(b, &sb);
            T_CHECK(sb.normal_len == 0 && sb.pending == 47 && sa.normal_len == 47 - 3,
                    "before the period: %" PRIu64 " held (48 offered, one flagged; counts: "
                    "%" PRIu64 " in the set)",
                    sb.pending, sa.normal_len);
        }
        if (k == 230) {         /* a reloaded model file in shadow */
            m = ad_model_clone(g_live);
            T_CHECK(ad_adapt_shadow_begin(a, m, 1, (int64_t)k * 5000) == 0 &&
                    ad_adapt_shadow_begin(b, g_live, 0, (int64_t)k * 5000) == 0, "shadow");
        }
        offer_both(a, b, (uint64_t)k, 5000);
        for (;;) {
            int ha = ad_adapt_poll_event(a, &ea), hb = ad_adapt_poll_event(b, &eb);
            if (!ha && !hb)
                break;
            n_ev++;
            if (ha != hb || ea.type != eb.type || ea.ts_ms != eb.ts_ms ||
                ea.shadow_windows != eb.shadow_windows ||
                ea.normal_windows != eb.normal_windows ||
                ea.train_windows != eb.train_windows ||
                !(ea.live_error == eb.live_error || (isnan(ea.live_error) && isnan(eb.live_error))) ||
                !(ea.cand_error == eb.cand_error || (isnan(ea.cand_error) && isnan(eb.cand_error))) ||
                strcmp(ea.reason, eb.reason) != 0) {
                same = 0;
                fprintf(stderr, "  window %d: %s '%s' / %s '%s'\n", k,
                        ha ? ad_adapt_ev_name(ea.type) : "-", ha ? ea.reason : "",
                        hb ? ad_adapt_ev_name(eb.type) : "-", hb ? eb.reason : "");
            }
            if (hb && eb.type == AD_ADAPT_EV_SHADOW)
                shadow_ts = eb.ts_ms;
            if (hb && (eb.type == AD_ADAPT_EV_PROMOTED || eb.type == AD_ADAPT_EV_REJECTED)) {
                decided++;
                decide_ts = eb.ts_ms;
                T_NOTE("decision: %s", eb.reason);
            }
        }
    }
    ad_adapt_get_stats(a, &sa);
    ad_adapt_get_stats(b, &sb);
    T_CHECK(same && n_ev >= 3 && decided == 1, "%d events, the same (decisions %d)", n_ev,
            decided);
    T_CHECK(sa.normal_len == sb.normal_len && sa.admitted == sb.admitted &&
            sa.excluded_alert == sb.excluded_alert && sa.excluded_dq == sb.excluded_dq &&
            sa.pending == sb.pending && sb.excluded_early == 0,
            "normal set %" PRIu64 "/%" PRIu64 ", admitted %" PRIu64 "/%" PRIu64,
            sa.normal_len, sb.normal_len, sa.admitted, sb.admitted);
    for (i = 0; i < sa.normal_len; i++) {
        int64_t t1, t2;
        const float *x1 = ad_adapt_normal_window(a, i, &t1), *x2 = ad_adapt_normal_window(b, i, &t2);
        if (!x1 || !x2 || t1 != t2 || memcmp(x1, x2, W * sizeof(float)) != 0)
            same = 0;
    }
    T_CHECK(same, "the same windows in the normal sets");
    /* 60 windows of 5 s with a final verdict (the last 3 wait out the margin) */
    T_CHECK(shadow_ts >= 0 && decide_ts - shadow_ts >= 60 * 5000 &&
            decide_ts - shadow_ts <= (60 + 3) * 5000,
            "decided %lld ms after the shadow began (shadow_ms %lld)",
            (long long)(decide_ts - shadow_ts), (long long)cm.shadow_ms);
    ad_adapt_free(a);
    ad_adapt_free(b);

    /* An alert cleared before the period is known: its margin (3 windows
     * of 5 s) still keeps the windows after the clear out of the set. */
    b = new_adapt(&cm);
    ad_adapt_alert_raised(b, "s/2", 5000);
    offer_plain(b, 5000, 1);
    offer_plain(b, 10000, 1);
    ad_adapt_alert_cleared(b, "s/2", 15000, AD_ADAPT_CLEAR_TRUE);
    offer_plain(b, 15000, 0);
    offer_plain(b, 20000, 0);
    ad_adapt_resolve(b, 5000, note, sizeof(note), err, sizeof(err));
    for (k = 5; k <= 12; k++)
        offer_plain(b, (int64_t)k * 5000, 0);
    {
        int64_t first = -1;
        ad_adapt_normal_window(b, 0, &first);
        ad_adapt_get_stats(b, &sb);
        T_CHECK(first == 30000 && sb.normal_len == 4 && sb.excluded_early == 0 &&
                sb.excluded_alert == 2 + 3,
                "first normal window at %lld ms (want 30000: 15, 20 and 25 s are the "
                "margin), %" PRIu64 " in the set", (long long)first, sb.normal_len);
    }
    ad_adapt_free(b);

    /* A raise before the period is known: with the margin in data time no
     * held window is known to be clear of it, all go; with the margin a
     * count (3) those offered 3 or more windows before the raise stay. */
    for (k = 0; k < 2; k++) {
        ad_adapt_cfg e = cm;
        int64_t first = -1;
        int j;
        if (k == 1) {
            e.margin_ms = 0;
            e.margin = 3;
        }
        b = new_adapt(&e);
        for (j = 1; j <= 10; j++)
            offer_plain(b, (int64_t)j * 5000, 0);
        ad_adapt_alert_raised(b, "s/3", 55000);
        offer_plain(b, 55000, 1);
        ad_adapt_alert_cleared(b, "s/3", 60000, AD_ADAPT_CLEAR_TRUE);
        ad_adapt_resolve(b, 5000, note, sizeof(note), err, sizeof(err));
        for (j = 12; j <= 20; j++)
            offer_plain(b, (int64_t)j * 5000, 0);
        ad_adapt_get_stats(b, &sb);
        ad_adapt_normal_window(b, 0, &first);
        if (k == 0)
            T_CHECK(sb.normal_len == 9 - 3 - 3 && first == 75000,
                    "margin in data time: %" PRIu64 " in the set, the first at %lld ms "
                    "(want 3 from 75 s)", sb.normal_len, (long long)first);
        else
            T_CHECK(sb.normal_len == 7 + 3 && first == 5000,
                    "margin a count: %" PRIu64 " in the set, the first at %lld ms "
                    "(want 10 from 5 s)", sb.normal_len, (long long)first);
        ad_adapt_free(b);
    }
}

/* The normal set's memory limit, with the count known only at the
 * resolution: the error names the key, the ms and the windows; the
 * learner stays unresolved and holds nothing from then on. The pending
 * queue (margin + 1 windows) counts towards the limit. With normal_stride
 * the set spans normal_ms of data: normal_ms / (period x stride). */
static void test_data_time_memory_limit(void)
{
    ad_adapt_cfg c;
    ad_adapt *a = NULL;
    ad_adapt_stats st;
    ad_thr_cfg thr;
    char note[200], err[300];
    int rc;

    ad_adapt_cfg_default(&c);
    c.enabled = 1;
    c.normal_ms = 10000000;         /* 10000 windows of 1 s, 1000x30 values each */
    ad_thr_cfg_default(&thr);
    rc = ad_adapt_new(&a, &c, 1000, 30, AD_METRIC_MAE, 1.0, &thr, err, sizeof(err));
    T_CHECK(rc == 0 && a != NULL, "new: the count is not known yet: %s", rc ? err : "ok");
    if (a == NULL)
        return;
    rc = ad_adapt_resolve(a, 1000, note, sizeof(note), err, sizeof(err));
    T_CHECK(rc == AD_ERANGE && strcmp(err, "adapt.normal_ms: 10000000 ms are 10000 windows (a "
                                      "window every 1 s) of 1000x30, with the pending queue "
                                      "more than the limit of 268435456 stored values") == 0 &&
            !ad_adapt_resolved(a), "rc %d: '%s'", rc, err);
    T_NOTE("%s", err);
    {
        float *w = calloc(1000 * 30, sizeof(float));
        ad_adapt_obs o = { .ts_ms = 1000, .live_score = 0.1, .cand_score = NAN };
        if (w)
            ad_adapt_offer(a, w, NULL, &o);
        free(w);
    }
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.offered == 1 && st.normal_len == 0 && st.pending == 0 && st.excluded_early == 1,
            "nothing in the set, nothing held (%" PRIu64 " held, %" PRIu64 " not kept)",
            st.pending, st.excluded_early);
    ad_adapt_free(a);
    /* 260 windows of 1000x1000 fit the limit (268), with a margin of 10
     * windows the pending queue does not */
    c.normal_ms = 260000;
    c.margin_ms = 10000;
    rc = ad_adapt_new(&a, &c, 1000, 1000, AD_METRIC_MAE, 1.0, &thr, err, sizeof(err));
    if (a != NULL)
        rc = ad_adapt_resolve(a, 1000, note, sizeof(note), err, sizeof(err));
    T_CHECK(a != NULL && rc == AD_ERANGE && strstr(err, "260 windows") &&
            strstr(err, "with the pending queue"), "margin counted: '%s'", err);
    ad_adapt_free(a);
    c.margin_ms = 0;
    c.margin = 0;
    {
        ad_adapt_cfg r = c;
        r.normal_ms = 600000;           /* 10 min at 5 s: 120 windows, one in 3 kept */
        r.min_ms = 300000;
        r.normal_stride = 3;
        ad_adapt_cfg_resolve(&r, 5000, note, sizeof(note));
        T_CHECK(r.normal_windows == 40 && r.min_windows == 20,
                "normal_stride 3: normal %d, min %d (want 40, 20: the set spans 10 min)",
                r.normal_windows, r.min_windows);
    }
    /* the same as a count: refused when made */
    c.normal_ms = 0;
    c.normal_windows = 10000;
    rc = ad_adapt_new(&a, &c, 1000, 30, AD_METRIC_MAE, 1.0, &thr, err, sizeof(err));
    T_CHECK(rc == AD_ERANGE && a == NULL && strstr(err, "adapt.normal_windows: 10000 windows"),
            "count: '%s'", err);
}

/* ---- (f) configuration errors -------------------------------------------- */

/* Make field i of c invalid (order of keys[] below). */
static void spoil(ad_adapt_cfg *c, int i)
{
    switch (i) {
    case 0: c->every_windows = -1; break;
    case 1: c->every_hours = -2; break;
    case 2: c->every_windows = 0; c->every_hours = 0; break;
    case 3: c->normal_windows = 0; break;
    case 4: c->min_windows = c->normal_windows + 1; break;
    case 5: c->normal_stride = 0; break;
    case 6: c->margin = -1; break;
    case 7: c->shadow_windows = 0; break;
    case 8: c->min_gain = 1.0; break;
    case 9: c->min_gain = NAN; break;
    case 10: c->compare = (ad_adapt_stat)7; break;
    case 11: c->true_alerts = 65; break;
    case 12: c->epochs = 0; break;
    case 13: c->lr = 0; break;
    case 14: c->batch_size = 0; break;
    default: c->max_seconds = -1; break;
    }
}

static void test_bad_config(void)
{
    static const char *const keys[] = {
        "adapt.every_windows", "adapt.every_hours", "both 0",
        "adapt.normal_windows", "adapt.min_windows", "adapt.normal_stride",
        "adapt.margin", "adapt.shadow_windows", "adapt.min_gain",
        "adapt.min_gain", "adapt.compare", "adapt.true_alerts", "adapt.epochs",
        "adapt.lr", "adapt.batch_size", "adapt.max_seconds",
    };
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_thr_cfg thr;
    char err[200];
    size_t i;
    int rc;

    ad_adapt_cfg_default(&c);
    T_CHECK(ad_adapt_cfg_check(&c, err, sizeof(err)) == 0, "defaults valid: %s", err);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ad_adapt_cfg_default(&c);
        spoil(&c, (int)i);
        err[0] = 0;
        rc = ad_adapt_cfg_check(&c, err, sizeof(err));
        T_CHECK(rc == AD_EINVAL && strstr(err, keys[i]), "%s: rc %d, '%s'",
                keys[i], rc, err);
    }
    T_NOTE("e.g. '%s'", err);
    ad_adapt_cfg_default(&c);
    ad_thr_cfg_default(&thr);
    rc = ad_adapt_new(&a, &c, T, F, AD_METRIC_MAE, 0.0, &thr, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && a == NULL && strstr(err, "smooth_alpha"), "%s", err);
    c.normal_windows = 1000000;
    rc = ad_adapt_new(&a, &c, 1000, 3, AD_METRIC_MAE, 1.0, &thr, err, sizeof(err));
    T_CHECK(rc != 0 && a == NULL && strstr(err, "adapt.normal_windows"), "%s", err);
    T_CHECK(ad_adapt_stat_from_name("median") == AD_ADAPT_MEDIAN &&
            ad_adapt_stat_from_name("avg") == -1, "compare names");
}

/* An alert's run-up in a shadow span: with no margin its windows were
 * admitted; the raise takes them out of the normal set and of the span's
 * compared windows (live/candidate error, the candidate's threshold), as
 * a margin that kept them pending would have. */
static size_t run_up_shadow_case(int margin, size_t *nlen_before, size_t *nlen_after,
                             double *maxc)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_stats st;
    float w[W] = { 0 };
    const double *sc;
    size_t n, i;
    int64_t ts = 1000;
    int k;

    cfg_small(&c);
    c.margin = margin;
    c.shadow_windows = 150;
    a = new_adapt(&c);
    if (a == NULL)
        return 0;
    T_CHECK(ad_adapt_shadow_begin(a, g_live, 0, ts) == 0, "shadow");
    for (k = 0; k < 20; k++, ts += 1000) {
        ad_adapt_obs o = { .ts_ms = ts, .live_score = 0.1, .cand_score = 0.1 };
        ad_adapt_offer(a, w, NULL, &o);
    }
    {   /* run-up: one over the threshold, two under it (candidate 9) */
        ad_adapt_obs o = { .ts_ms = ts, .live_score = 5, .cand_score = 9, .exceeded = 1 };

        ad_adapt_window_seen(a, ts);
        ad_adapt_offer(a, w, NULL, &o);
        ts += 1000;
        ad_adapt_get_stats(a, &st);
        *nlen_before = st.normal_len;
        for (k = 0; k < 2; k++, ts += 1000) {
            ad_adapt_obs u = { .ts_ms = ts, .live_score = 0.5, .cand_score = 9 };
            ad_adapt_window_seen(a, ts);
            ad_adapt_offer(a, w, NULL, &u);
        }
        ad_adapt_window_seen(a, ts);        /* the raising window */
        ad_adapt_alert_raised(a, "x", ts);
        ad_adapt_alert_run_up(a, 3);
    }
    ad_adapt_get_stats(a, &st);
    *nlen_after = st.normal_len;
    sc = ad_adapt_shadow_scores(a, &n);
    *maxc = 0;
    for (i = 0; i < n; i++)
        if (sc[i] > *maxc)
            *maxc = sc[i];
    ad_adapt_free(a);
    return n;
}

static void test_run_up_shadow(void)
{
    size_t b0, a0, b5, a5, n0, n5;
    double m0, m5;

    n0 = run_up_shadow_case(0, &b0, &a0, &m0);
    n5 = run_up_shadow_case(5, &b5, &a5, &m5);
    T_NOTE("margin 0: normal %zu -> %zu, shadow normal windows %zu, max candidate %g", b0, a0,
           n0, m0);
    T_NOTE("margin 5: normal %zu -> %zu, shadow normal windows %zu, max candidate %g", b5, a5,
           n5, m5);
    T_CHECK(a0 == b0 && n0 == 20 && m0 < 1,
            "margin 0: the run-up leaves the normal set and the shadow's compared windows "
            "(%zu, max %g; want 20, under 1)", n0, m0);
    T_CHECK(n5 == 18 && m5 < 1, "margin 5: %zu compared, max %g (want 18: two still pending)", n5,
            m5);
}

/* Counts not known yet (normal_ms), no margin: the held run-up windows go
 * at the raise, the earlier ones stay for the release. */
static void test_run_up_held(void)
{
    ad_adapt_cfg c;
    ad_adapt *a;
    ad_adapt_stats st;
    float w[W] = { 0 };
    char note[300], err[300];
    int64_t ts = 1000;
    int k;

    cfg_small(&c);
    c.margin = 0;
    c.normal_ms = 300000;
    c.min_ms = 100000;
    a = new_adapt(&c);
    T_CHECK(a && !ad_adapt_resolved(a), "unresolved");
    if (!a)
        return;
    for (k = 0; k < 10; k++, ts += 1000) {
        ad_adapt_obs o = { .ts_ms = ts, .live_score = 0.1, .cand_score = NAN };
        ad_adapt_offer(a, w, NULL, &o);
    }
    {
        ad_adapt_obs o = { .ts_ms = ts, .live_score = 5, .cand_score = NAN, .exceeded = 1 };
        ad_adapt_window_seen(a, ts);
        ad_adapt_offer(a, w, NULL, &o);
        ts += 1000;
    }
    for (k = 0; k < 2; k++, ts += 1000) {
        ad_adapt_obs o = { .ts_ms = ts, .live_score = 0.5, .cand_score = NAN };
        ad_adapt_window_seen(a, ts);
        ad_adapt_offer(a, w, NULL, &o);
    }
    ad_adapt_window_seen(a, ts);
    ad_adapt_get_stats(a, &st);
    T_NOTE("held before the raise: %llu", (unsigned long long)st.pending);
    ad_adapt_alert_raised(a, "x", ts);
    ad_adapt_alert_run_up(a, 3);
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.pending == 10, "held after the raise: %llu (want 10)",
            (unsigned long long)st.pending);
    ad_adapt_alert_cleared(a, "x", ts, AD_ADAPT_CLEAR_TRUE);
    T_CHECK(ad_adapt_resolve(a, 1000, note, sizeof(note), err, sizeof(err)) == 0, "resolve %s",
            err);
    ad_adapt_get_stats(a, &st);
    T_CHECK(st.normal_len == 10, "normal after the release: %zu", (size_t)st.normal_len);
    ad_adapt_free(a);
}

/* ---- a candidate in shadow across a restart ------------------------------ */

/* Offer row t to both learners (each scores its own candidate); an alert
 * on rows [araise, aclear) in both. */
static void offer_pair(ad_adapt *a, ad_adapt *b, uint64_t t, uint64_t araise, uint64_t aclear)
{
    int in = t >= araise && t < aclear;

    if (t == araise) {
        ad_adapt_alert_raised(a, "pump1/7", (int64_t)t * 1000);
        ad_adapt_alert_raised(b, "pump1/7", (int64_t)t * 1000);
    }
    if (t == aclear) {
        ad_adapt_alert_cleared(a, "pump1/7", (int64_t)t * 1000, AD_ADAPT_CLEAR_TRUE);
        ad_adapt_alert_cleared(b, "pump1/7", (int64_t)t * 1000, AD_ADAPT_CLEAR_TRUE);
    }
    offer_row(a, t, REG_B, in, in);
    offer_row(b, t, REG_B, in, in);
}

/* equal, or both NaN (a figure not made) */
static int same_num(double x, double y)
{
    return x == y || (isnan(x) && isnan(y));
}

/* 1 when a decision came (into *ev). */
static int decided(ad_adapt *a, ad_adapt_event *ev)
{
    ad_adapt_event e;
    int got = 0;

    while (ad_adapt_poll_event(a, &e))
        if (e.type == AD_ADAPT_EV_PROMOTED || e.type == AD_ADAPT_EV_REJECTED) {
            *ev = e;
            got = 1;
        }
    return got;
}

#define SAVE_SPAN(a) ad_adapt_save_parts((a), AD_ADAPT_SAVE_SPAN)
static double probe_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The cost of a candidate's span of 30,000 windows judged normal
 * (adapt.shadow_ms 8.3 h at a window a second): the plain save (events,
 * checkpoints) leaves it out, the save with it prints it as text. */
static void test_shadow_span_cost(void)
{
    ad_adapt_cfg c;
    ad_adapt *a, *x, *y;
    ad_model *cand;
    cJSON *o, *sh, *arr;
    char err[200], *txt, *big, *plain, *full = NULL, *again;
    uint64_t t = 60000;
    double t0, t_plain, t_full, t_rest;
    int i, k;
    const int n = 30000;
    static const char *const keys[] = { "ts", "live", "cand", "regime" };

    cfg_small(&c);
    c.epochs = 5;
    c.every_windows = 250;
    c.shadow_windows = 40000;
    a = new_adapt(&c);
    for (i = 0; a && i < 260 && !drain(a, AD_ADAPT_EV_TRAIN_READY, NULL); i++)
        offer_row(a, t++, REG_B, 0, 0);
    T_CHECK(a && run_job(a) == 0 && ad_adapt_candidate(a) != NULL, "candidate in shadow");
    if (!a || !ad_adapt_candidate(a)) {
        ad_adapt_free(a);
        return;
    }
    drain(a, 0, NULL);
    txt = SAVE_SPAN(a);
    o = txt ? cJSON_Parse(txt) : NULL;
    sh = cJSON_GetObjectItemCaseSensitive(o, "shadow");
    T_CHECK(sh != NULL, "a save with the span");
    if (!sh) {
        free(txt);
        cJSON_Delete(o);
        ad_adapt_free(a);
        return;
    }
    /* a span of n windows judged normal, full-precision scores */
    cJSON_ReplaceItemInObjectCaseSensitive(sh, "windows", cJSON_CreateNumber(n));
    cJSON_ReplaceItemInObjectCaseSensitive(sh, "pending", cJSON_CreateArray());
    /* as a state saved before the times were steps and the scores floats
     * read it: the times as they are, the scores (a window's, floats) with
     * 17 digits */
    cJSON_DeleteItemFromObjectCaseSensitive(sh, "ts_steps");
    cJSON_DeleteItemFromObjectCaseSensitive(sh, "float");
    for (k = 0; k < 4; k++) {
        arr = cJSON_CreateArray();
        for (i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(
                k == 0 ? 1.7e12 + 1000.0 * i : k == 3 ? 0 :
                (double)(float)((k == 1 ? 0.0123456789 : 0.0111111111) * (1.0 + i * 1.37e-7))));
        cJSON_DeleteItemFromObjectCaseSensitive(sh, keys[k]);
        cJSON_AddItemToObject(sh, keys[k], arr);
    }
    big = ad_json_print(o);
    cJSON_Delete(o);
    free(txt);
    x = new_adapt(&c);
    cand = ad_model_clone(ad_adapt_candidate(a));
    t0 = probe_ms();
    T_CHECK(x && big && ad_adapt_restore(x, big, err, sizeof(err)) == 0 &&
            ad_adapt_shadow_resume(x, cand, err, sizeof(err)) == 0, "span of %d resumed: %s",
            n, err);
    t_rest = probe_ms() - t0;
    t0 = probe_ms();
    plain = ad_adapt_save(x);
    t_plain = probe_ms() - t0;
    t0 = probe_ms();
    for (i = 0; i < 3; i++) {
        free(full);
        full = SAVE_SPAN(x);
    }
    t_full = (probe_ms() - t0) / 3;
    T_NOTE("span of %d windows: save with it %.1f ms, %zu bytes; plain save %.2f ms, %zu "
           "bytes; restore+resume %.1f ms", n, t_full, full ? strlen(full) : (size_t)0, t_plain,
           plain ? strlen(plain) : (size_t)0, t_rest);
    T_CHECK(plain && !strstr(plain, "\"shadow\"") && strlen(plain) < 20000,
            "the plain save (events, checkpoints) leaves the span out: %zu bytes",
            plain ? strlen(plain) : (size_t)0);
    T_CHECK(full && strstr(full, "\"shadow\""), "the save with it holds it");
    /* and reads back to the same span: saved again, the same text */
    y = new_adapt(&c);
    cand = ad_model_clone(ad_adapt_candidate(a));
    again = NULL;
    T_CHECK(y && full && ad_adapt_restore(y, full, err, sizeof(err)) == 0 &&
            ad_adapt_shadow_resume(y, cand, err, sizeof(err)) == 0 &&
            (again = SAVE_SPAN(y)) != NULL && strcmp(again, full) == 0,
            "read back bit for bit (times as steps, scores as floats): %s", err);
    free(again);
    if (y && ad_adapt_candidate(y))
        ad_model_free(ad_adapt_take_candidate(y));
    ad_adapt_free(y);
    free(plain);
    free(full);
    free(big);
    ad_model_free(ad_adapt_take_candidate(x));
    ad_adapt_free(x);
    ad_adapt_free(a);
}

/* A fine-tune's candidate in shadow, saved with the state mid-span (windows
 * waiting for their margin among them) and restored with its model into a
 * new learner, goes on where it stopped: the decision and every figure are
 * those of the uninterrupted learner on the same windows. The wrong model,
 * a damaged span and a state without a candidate are refused with a
 * message, and the learner goes on without one. */
static void test_shadow_restart(void)
{
    ad_adapt_cfg c;
    ad_adapt *a, *b, *x;
    ad_adapt_event ea, eb;
    ad_adapt_stats sa, sb;
    ad_model *cand, *m;
    char err[200], id[AD_MODEL_ID_LEN + 1], *txt, *bad;
    uint64_t t = 60000, stop, araise;
    int i, da = 0, db = 0;

    cfg_small(&c);
    c.epochs = 5;
    c.every_windows = 250;
    c.min_gain = 0.0;
    a = new_adapt(&c);
    T_CHECK(a != NULL, "new");
    if (!a)
        return;
    /* a new regime (B): the candidate fine-tuned on it is promoted */
    for (i = 0; i < 260 && !drain(a, AD_ADAPT_EV_TRAIN_READY, NULL); i++)
        offer_row(a, t++, REG_B, 0, 0);
    T_CHECK(run_job(a) == 0 && ad_adapt_candidate(a) != NULL, "candidate in shadow");
    if (!ad_adapt_candidate(a)) {
        ad_adapt_free(a);
        return;
    }
    drain(a, 0, NULL);
    for (i = 0; i < 70; i++)
        offer_row(a, t++, REG_B, 0, 0);
    /* saved at the stop: its progress, its model (the caller's file) */
    txt = ad_adapt_save(a);
    T_CHECK(txt && !strstr(txt, "\"shadow\":"), "the plain save leaves the span out");
    free(txt);
    txt = ad_adapt_save_parts(a, AD_ADAPT_SAVE_SPAN);
    cand = ad_model_clone(ad_adapt_candidate(a));
    T_CHECK(txt && strstr(txt, "\"shadow\":") && strstr(txt, "\"pending\":[{"),
            "the state holds the span and the windows waiting for their margin");
    T_NOTE("state with the span: %zu bytes", txt ? strlen(txt) : (size_t)0);
    b = new_adapt(&c);
    T_CHECK(b && txt && ad_adapt_restore(b, txt, err, sizeof(err)) == 0, "restored: %s", err);
    T_CHECK(ad_adapt_shadow_saved(b, id, sizeof(id)) == 1 && strcmp(id, cand->id) == 0,
            "the restored state asks for candidate %s", id);
    T_CHECK(ad_adapt_shadow_resume(b, cand, err, sizeof(err)) == 0, "resumed: %s", err);
    T_CHECK(ad_adapt_candidate(b) == cand && !ad_adapt_shadow_saved(b, NULL, 0) &&
            drain(b, 0, NULL) == 0, "in shadow again, no new event");
    ad_adapt_get_stats(a, &sa);
    ad_adapt_get_stats(b, &sb);
    T_CHECK(sb.shadow && sb.attempts == sa.attempts, "attempt %" PRIu64 " goes on",
            (uint64_t)sb.attempts);
    /* the same windows to both, a true alert among them, until both decide */
    araise = t + 30;
    stop = t + 400;
    for (; t < stop && (!da || !db); t++) {
        offer_pair(a, b, t, araise, araise + 15);
        da = da || decided(a, &ea);
        db = db || decided(b, &eb);
    }
    T_CHECK(da && db, "both decided");
    if (da && db) {
        note_event("uninterrupted", &ea);
        note_event("restarted mid-span", &eb);
        T_CHECK(ea.type == eb.type && ea.ts_ms == eb.ts_ms && ea.attempt == eb.attempt &&
                ea.shadow_windows == eb.shadow_windows &&
                ea.normal_windows == eb.normal_windows &&
                ea.live_error == eb.live_error && ea.cand_error == eb.cand_error &&
                ea.gain == eb.gain && ea.cand_threshold == eb.cand_threshold &&
                ea.cand_fit == eb.cand_fit && same_num(ea.hold_threshold, eb.hold_threshold) &&
                ea.train_windows == eb.train_windows && ea.epochs_run == eb.epochs_run &&
                ea.train_loss == eb.train_loss && strcmp(ea.model_id, eb.model_id) == 0,
                "the same decision (%s at %" PRId64 ", %" PRIu64 " windows, %" PRIu64
                " normal, error %.6g -> %.6g) as without the restart",
                ad_adapt_ev_name(eb.type), eb.ts_ms, eb.shadow_windows, eb.normal_windows,
                eb.live_error, eb.cand_error);
    }
    ad_model_free(ad_adapt_take_candidate(a));
    ad_model_free(ad_adapt_take_candidate(b));

    /* another model (another id), a damaged span: refused, learner goes on */
    x = new_adapt(&c);
    m = ad_model_clone(g_live);
    T_CHECK(x && ad_adapt_restore(x, txt, err, sizeof(err)) == 0 &&
            ad_adapt_shadow_resume(x, m, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "saved candidate is"), "another model refused: %s", err);
    ad_model_free(m);           /* still the caller's */
    T_CHECK(ad_adapt_candidate(x) == NULL && !ad_adapt_shadow_saved(x, NULL, 0),
            "no candidate, nothing waits");
    for (i = 0; i < 20; i++)
        offer_row(x, t++, REG_B, 0, 0);
    ad_adapt_free(x);
    bad = txt ? strdup(txt) : NULL;
    free(txt);
    if (bad && (txt = strstr(bad, "\"cand\":[")) != NULL)
        memcpy(txt + 4, "e", 1);       /* "cane": the candidate scores gone */
    x = new_adapt(&c);
    cand = ad_model_clone(ad_adapt_candidate(b) ? ad_adapt_candidate(b) : g_live);
    if (cand && bad && (txt = strstr(bad, "\"model_id\":\"")) != NULL) {
        /* the id the damaged span names */
        char *e = strchr(txt + 12, '"');
        if (e && (size_t)(e - txt - 12) < sizeof(cand->id)) {
            memcpy(cand->id, txt + 12, (size_t)(e - txt - 12));
            cand->id[e - txt - 12] = '\0';
        }
    }
    T_CHECK(x && bad && ad_adapt_restore(x, bad, err, sizeof(err)) == 0 &&
            ad_adapt_shadow_resume(x, cand, err, sizeof(err)) == AD_EFORMAT &&
            strstr(err, "shadow.cand"), "damaged span refused: %s", err);
    T_CHECK(ad_adapt_candidate(x) == NULL, "no candidate");
    ad_model_free(cand);
    T_CHECK(ad_adapt_shadow_resume(x, NULL, err, sizeof(err)) == AD_EINVAL,
            "nothing saved: %s", err);
    free(bad);
    ad_adapt_free(x);
    ad_adapt_free(a);
    ad_adapt_free(b);
}

int main(void)
{
    double t0 = now_s();

    g_live = train_live();
    if (g_live == NULL) {
        printf("not ok - live model could not be trained\n");
        return 1;
    }
    T_RUN(test_normal_set_excludes_alerts_and_margins);
    T_RUN(test_margin_floor);
    T_RUN(test_accepted_regime_teaches);
    T_RUN(test_new_regime_promoted);
    T_RUN(test_reference_drift);
    T_RUN(test_silencing_candidate_rejected);
    T_RUN(test_silencing_after_restart);
    T_RUN(test_alert_windows_restored);
    T_RUN(test_reload_shadow);
    T_RUN(test_decided_handed_over);
    T_RUN(test_run_up_shadow);
    T_RUN(test_run_up_held);
    T_RUN(test_regime_windows_left_out);
    T_RUN(test_schedule);
    T_RUN(test_regime_occurrence_holds);
    T_RUN(test_save_restore);
    T_RUN(test_shadow_restart);
    T_RUN(test_shadow_span_cost);
    T_RUN(test_data_time_resolve);
    T_RUN(test_data_time_learner);
    T_RUN(test_data_time_memory_limit);
    T_RUN(test_bad_config);
    ad_model_free(g_live);
    T_NOTE("total %.2f s", now_s() - t0);
    return t_done();
}
