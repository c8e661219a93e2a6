/*
 * test_normalize.c - score.normalize "feature" (detector.h PER-FEATURE
 * NORMALISATION) on the zero model of t_model.h: its reconstruction is 0,
 * so feature f's error in a window (mae) is the mean |value| of f over the
 * window's rows, and the test computes every figure it expects from the
 * rows it pushed, without asking the code under test.
 *
 * Four features: two with a large normal error (about 1), one with a small
 * one (about 0.2) and one reconstructed almost perfectly (about 0.001, the
 * floor's case). The fault: the small feature at 1.0 (5 x its normal).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

#include "t.h"
#include "t_model.h"
#include "ad.h"
#include "detector.h"
#include "engine.h"

#include <cJSON.h>

#define F 4
#define T 4
#define CALIB 200
#define MAXW 2000

static const char *const names[F] = { "a", "b", "small", "tiny" };

static uint64_t rng;

static double uni(void)        /* [-1, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / (double)(1ull << 52) - 1.0;
}

/* Row i: normal, or with the fault on feature 2, or a wiggle on the
 * near-perfect feature 3 (10 x its level: under the floor's reach). */
enum { NORMAL, FAULT, WIGGLE };
static void make_row(double *r, int kind)
{
    r[0] = 1.0 + 0.3 * uni();
    r[1] = 1.0 + 0.3 * uni();
    r[2] = (kind == FAULT ? 1.0 : 0.2) + 0.06 * uni();
    r[3] = (kind == WIGGLE ? 0.01 : 0.001) + 0.0003 * uni();
}

typedef struct run {
    ad_detector *d;
    double rows[MAXW + T][F];    /* every row pushed */
    int n_rows;
    int raised;                  /* alerts raised */
    int scored;
    double last_raw;             /* the last window's plain mae */
    double max_ratio;            /* max score / threshold while detecting */
} run;

static void cfg_init(ad_detector_cfg *c, ad_normalize norm)
{
    ad_detector_cfg_default(c);
    c->metric = AD_METRIC_MAE;
    c->normalize = norm;
    c->calib_windows = CALIB;
    c->thr.method = AD_THR_QUANTILE;
    c->thr.q = 0.99;
    c->thr.margin = 1.5;
    c->dq_enabled = 0;
}

static int open_run(run *r, ad_normalize norm, const ad_model *m)
{
    ad_detector_cfg c;
    char err[256] = "";

    memset(r, 0, sizeof(*r));
    cfg_init(&c, norm);
    if (ad_detector_new(&r->d, &c, "s", m, T, F, names, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        return -1;
    }
    return 0;
}

/* Push one row (its values r->rows[n]) and score the due windows. */
static void push(run *r, const double *row, int64_t ts)
{
    float in[T * F], out[T * F], share[F];
    ad_window_job job;
    ad_event ev;

    if (r->n_rows < MAXW + T)
        memcpy(r->rows[r->n_rows++], row, sizeof(double) * F);
    ad_detector_push_row(r->d, ts, row, NULL);
    while (ad_detector_next_window(r->d, in, &job)) {
        float mae;
        ad_detector_stats st;

        ad_forward_ref(job.model, in, out, 1);
        ad_recon_error(in, out, T, F, AD_METRIC_MAE, NULL, &mae, share);
        r->last_raw = mae;
        ad_detector_feed_score(r->d, &job, mae, share);
        r->scored++;
        ad_detector_get_stats(r->d, &st);
        if (st.phase == AD_PHASE_DETECTING && st.last_score / st.threshold > r->max_ratio)
            r->max_ratio = st.last_score / st.threshold;
    }
    while (ad_detector_poll_event(r->d, &ev))
        if (ev.type == AD_EV_ALERT_RAISED)
            r->raised++;
}

/* Feature f's error in the window ending at row `end` (inclusive). */
static double win_err(const run *r, int end, int f)
{
    double s = 0;
    int t;

    for (t = end - T + 1; t <= end; t++)
        s += fabs((double)(float)r->rows[t][f]);
    return s / T;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Both detectors see the same rows: calibration, normal, then the fault. */
static void test_fault_in_small_feature(void)
{
    static run none, feat;
    ad_model *m = t_zero_model(T, F);
    double row[F];
    int64_t ts = 1700000000000LL;
    int i, raised_none, raised_feat;
    double ratio_none, ratio_feat;

    if (!m || open_run(&none, AD_NORM_NONE, m) || open_run(&feat, AD_NORM_FEATURE, m))
        goto out;
    rng = 42;
    for (i = 0; i < CALIB + T - 1 + 300; i++, ts += 1000) {
        make_row(row, NORMAL);
        push(&none, row, ts);
        push(&feat, row, ts);
    }
    T_CHECK(ad_detector_phase(none.d) == AD_PHASE_DETECTING &&
            ad_detector_phase(feat.d) == AD_PHASE_DETECTING, "both calibrated");
    T_CHECK(none.raised == 0 && feat.raised == 0, "no alert on normal rows (none %d, "
            "feature %d)", none.raised, feat.raised);
    T_NOTE("normal: max score / threshold: none %.3f, feature %.3f", none.max_ratio,
           feat.max_ratio);
    /* the near-perfect feature at 10 x its level: the floor keeps it quiet */
    feat.max_ratio = none.max_ratio = 0;
    for (i = 0; i < 50; i++, ts += 1000) {
        make_row(row, WIGGLE);
        push(&none, row, ts);
        push(&feat, row, ts);
    }
    T_CHECK(feat.raised == 0, "a 10x wiggle of the near-perfect feature raised %d alert(s) "
            "(max score / threshold %.3f): the floor must hold it", feat.raised, feat.max_ratio);
    T_NOTE("wiggle of the near-perfect feature: max score / threshold: none %.3f, feature %.3f",
           none.max_ratio, feat.max_ratio);
    feat.max_ratio = none.max_ratio = 0;
    raised_none = none.raised;
    raised_feat = feat.raised;
    for (i = 0; i < 100; i++, ts += 1000) {
        make_row(row, FAULT);
        push(&none, row, ts);
        push(&feat, row, ts);
    }
    ratio_none = none.max_ratio;
    ratio_feat = feat.max_ratio;
    T_NOTE("fault in the small feature: max score / threshold: none %.3f, feature %.3f",
           ratio_none, ratio_feat);
    T_CHECK(none.raised == raised_none && ratio_none < 1.0,
            "plain mae: the fault stays under the threshold (ratio %.3f, alerts %d)",
            ratio_none, none.raised - raised_none);
    T_CHECK(feat.raised > raised_feat && ratio_feat > 2.0,
            "feature: the fault crosses the threshold (ratio %.3f, alerts %d)",
            ratio_feat, feat.raised - raised_feat);
out:
    ad_detector_free(none.d);
    ad_detector_free(feat.d);
    ad_model_free(m);
}

/* The scales are the medians of the calibration windows' per-feature
 * errors (floored), and a score is max_f(e_f / s_f), both recomputed here
 * from the rows pushed. Tolerance: 1e-5 relative (float errors and shares). */
static void test_score_recomputed(void)
{
    static run r;
    static double col[F][CALIB];
    ad_model *m = t_zero_model(T, F);
    double row[F], sc[F], want[F], med[F], floor_v, worst = 0;
    int64_t ts = 1700000000000LL;
    int i, f, k;

    if (!m || open_run(&r, AD_NORM_FEATURE, m))
        goto out;
    rng = 7;
    for (i = 0; i < CALIB + T - 1; i++, ts += 1000) {
        make_row(row, NORMAL);
        push(&r, row, ts);
    }
    T_CHECK(ad_detector_phase(r.d) == AD_PHASE_DETECTING, "calibrated after %d windows",
            r.scored);
    T_CHECK(ad_detector_scales(r.d, sc) == 1, "scales learned");
    /* the calibration windows end at rows T-1 .. T-2+CALIB */
    for (f = 0; f < F; f++) {
        for (k = 0; k < CALIB; k++)
            col[f][k] = win_err(&r, T - 1 + k, f);
        want[f] = median(col[f], CALIB);
    }
    memcpy(med, want, sizeof(med));
    floor_v = median(med, F) * AD_NORM_FLOOR;
    for (f = 0; f < F; f++) {
        if (want[f] < floor_v)
            want[f] = floor_v;
        T_CHECK(fabs(sc[f] - want[f]) <= 1e-5 * want[f], "scale[%d] %.9g, recomputed %.9g",
                f, sc[f], want[f]);
    }
    T_CHECK(want[3] == floor_v && want[2] > floor_v, "the near-perfect feature is floored "
            "(%.4g), the small one not (%.4g, floor %.4g)", want[3], want[2], floor_v);
    /* scores after calibration, normal and fault rows */
    for (i = 0; i < 60; i++, ts += 1000) {
        ad_detector_stats st;
        double s = 0;

        make_row(row, i < 30 ? NORMAL : FAULT);
        push(&r, row, ts);
        for (f = 0; f < F; f++) {
            double q = win_err(&r, r.n_rows - 1, f) / want[f];
            if (q > s)
                s = q;
        }
        ad_detector_get_stats(r.d, &st);
        if (fabs(st.last_score - s) / s > worst)
            worst = fabs(st.last_score - s) / s;
    }
    T_NOTE("largest relative difference of 60 scores from the recomputation: %.2g", worst);
    T_CHECK(worst <= 1e-5, "score differs from max_f(e_f / s_f) by %.3g relative", worst);
out:
    ad_detector_free(r.d);
    ad_model_free(m);
}

/* The scales go with the calibration: a save restored into a new detector
 * gives the same scales and the same scores; a state without them, or of
 * the other setting, is refused. */
static void test_state_round_trip(void)
{
    static run a, b, c;
    ad_model *m = t_zero_model(T, F);
    double row[F], sa[F], sb[F];
    int64_t ts = 1700000000000LL;
    char *txt = NULL, *bad = NULL, err[256] = "", *p;
    int i, f, rc;

    if (!m || open_run(&a, AD_NORM_FEATURE, m) || open_run(&b, AD_NORM_FEATURE, m) ||
        open_run(&c, AD_NORM_NONE, m))
        goto out;
    rng = 99;
    for (i = 0; i < CALIB + T - 1 + 20; i++, ts += 1000) {
        make_row(row, NORMAL);
        push(&a, row, ts);
    }
    txt = ad_detector_save_handover(a.d);
    T_CHECK(txt != NULL && strstr(txt, "\"scale\":[") && strstr(txt, "\"normalize\":\"feature\""),
            "saved with its scales: %.200s", txt ? txt : "(null)");
    if (!txt)
        goto out;
    rc = ad_detector_restore(b.d, txt, err, sizeof(err));
    T_CHECK(rc == 0, "restore: %s", err);
    T_CHECK(ad_detector_scales(a.d, sa) && ad_detector_scales(b.d, sb), "both have scales");
    for (f = 0; f < F; f++)
        T_CHECK(sa[f] == sb[f], "scale[%d]: saved %.17g, restored %.17g", f, sa[f], sb[f]);
    /* the same rows from here: the same scores */
    for (i = 0; i < 30; i++, ts += 1000) {
        ad_detector_stats x, y;

        make_row(row, i < 15 ? NORMAL : FAULT);
        push(&a, row, ts);
        push(&b, row, ts);
        ad_detector_get_stats(a.d, &x);
        ad_detector_get_stats(b.d, &y);
        T_CHECK(x.last_score == y.last_score && x.threshold == y.threshold,
                "row %d: score %.9g / %.9g, threshold %.9g / %.9g", i, x.last_score,
                y.last_score, x.threshold, y.threshold);
    }
    /* a detector without normalisation refuses the normalised calibration */
    rc = ad_detector_restore(c.d, txt, err, sizeof(err));
    T_CHECK(rc == AD_EINVAL && strstr(err, "settings changed"), "none restores feature: "
            "rc %d, %s", rc, err);
    /* the scales removed: refused, naming them */
    bad = strdup(txt);
    if (bad && (p = strstr(bad, "\"scale\":[")) != NULL) {
        memcpy(p, "\"scalx\"", 7);
        ad_detector_free(b.d);
        open_run(&b, AD_NORM_FEATURE, m);
        err[0] = '\0';
        rc = ad_detector_restore(b.d, bad, err, sizeof(err));
        T_CHECK(rc == AD_EINVAL && strstr(err, "no per-feature scales"),
                "without scales: rc %d, %s", rc, err);
        T_CHECK(ad_detector_phase(b.d) == AD_PHASE_CALIBRATING &&
                !ad_detector_scales(b.d, sb), "it calibrates afresh");
    } else {
        T_CHECK(0, "no \"scale\" in the saved state");
    }
out:
    free(txt);
    free(bad);
    ad_detector_free(a.d);
    ad_detector_free(b.d);
    ad_detector_free(c.d);
    ad_model_free(m);
}

/* Set o[k] (or element k of array o when k is NULL) to the raw text num. */
static void set_raw(cJSON *o, const char *k, int i, const char *num)
{
    cJSON *r = cJSON_CreateRaw(num);

    if (k)
        cJSON_ReplaceItemInObjectCaseSensitive(o, k, r);
    else
        cJSON_ReplaceItemInArray(o, i, r);
}

/* A saved state whose numbers 15 digits do not give back (0.1 + 0.2, one
 * ulp above 0.5, 1/3 + 1 ulp) restores and saves again bit for bit: the
 * scales, the threshold's Welford sums, the probability history. cJSON's
 * printer gave 0.3 and 0.5 back. */
static void test_state_exact(void)
{
    static run a, b;
    ad_model *m = t_zero_model(T, F);
    double row[F], sb[F];
    const double odd[3] = { 0.1 + 0.2, nextafter(0.5, 1), nextafter(1.0 / 3, 1) };
    int64_t ts = 1700000000000LL;
    char *txt = NULL, *ed = NULL, *again = NULL, err[256] = "", num[40];
    cJSON *o = NULL, *o2 = NULL, *w, *pr;
    int i, f, rc;

    if (!m || open_run(&a, AD_NORM_FEATURE, m) || open_run(&b, AD_NORM_FEATURE, m))
        goto out;
    rng = 7;
    for (i = 0; i < CALIB + T - 1 + 20; i++, ts += 1000) {
        make_row(row, NORMAL);
        push(&a, row, ts);
    }
    txt = ad_detector_save(a.d);
    o = txt ? cJSON_Parse(txt) : NULL;
    T_CHECK(o != NULL, "saved");
    if (o == NULL)
        goto out;
    w = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "state"), "welford");
    pr = cJSON_GetObjectItem(o, "probability");
    for (i = 0; i < 3; i++) {
        snprintf(num, sizeof num, "%.17g", odd[i]);
        set_raw(cJSON_GetObjectItem(o, "scale"), NULL, i, num);
        set_raw(cJSON_GetObjectItem(pr, "hist"), NULL, i, num);
    }
    snprintf(num, sizeof num, "%.17g", odd[0]);
    set_raw(w, "mean", 0, num);
    snprintf(num, sizeof num, "%.17g", odd[1]);
    set_raw(w, "m2", 0, num);
    ed = cJSON_PrintUnformatted(o);
    rc = ed ? ad_detector_restore(b.d, ed, err, sizeof(err)) : -1;
    T_CHECK(rc == 0, "edited state restored: %s", err);
    T_CHECK(ad_detector_scales(b.d, sb) && sb[0] == odd[0] && sb[1] == odd[1] &&
            sb[2] == odd[2], "scales restored exactly: %.17g %.17g %.17g", sb[0], sb[1], sb[2]);
    again = ad_detector_save(b.d);
    o2 = again ? cJSON_Parse(again) : NULL;
    T_CHECK(o2 != NULL, "saved again");
    if (o2 == NULL)
        goto out;
    w = cJSON_GetObjectItem(cJSON_GetObjectItem(o2, "state"), "welford");
    pr = cJSON_GetObjectItem(cJSON_GetObjectItem(o2, "probability"), "hist");
    for (f = 0; f < 3; f++) {
        double s = cJSON_GetArrayItem(cJSON_GetObjectItem(o2, "scale"), f)->valuedouble;
        double h = cJSON_GetArrayItem(pr, f)->valuedouble;

        T_CHECK(memcmp(&s, &odd[f], sizeof s) == 0 && memcmp(&h, &odd[f], sizeof h) == 0,
                "saved again: scale[%d] %.17g, hist[%d] %.17g, want %.17g", f, s, f, h, odd[f]);
    }
    T_CHECK(cJSON_GetObjectItem(w, "mean")->valuedouble == odd[0] &&
            cJSON_GetObjectItem(w, "m2")->valuedouble == odd[1],
            "saved again: welford mean %.17g m2 %.17g", cJSON_GetObjectItem(w, "mean")->valuedouble,
            cJSON_GetObjectItem(w, "m2")->valuedouble);
    /* and once more: the same text */
    free(txt);
    txt = NULL;
    ad_detector_free(a.d);
    a.d = NULL;
    if (open_run(&a, AD_NORM_FEATURE, m) == 0 &&
        ad_detector_restore(a.d, again, err, sizeof(err)) == 0)
        txt = ad_detector_save(a.d);
    T_CHECK(txt && strcmp(txt, again) == 0, "save, restore, save: the same text");
out:
    cJSON_Delete(o);
    cJSON_Delete(o2);
    free(txt);
    free(ed);
    free(again);
    ad_detector_free(a.d);
    ad_detector_free(b.d);
    ad_model_free(m);
}

/* Recalibration learns the scales again; none before its end. */
static void test_recalibrate(void)
{
    static run r;
    ad_model *m = t_zero_model(T, F);
    double row[F], s1[F], s2[F];
    int64_t ts = 1700000000000LL;
    char err[256] = "";
    int i;

    if (!m || open_run(&r, AD_NORM_FEATURE, m))
        goto out;
    T_CHECK(!ad_detector_scales(r.d, s1), "no scales before calibration");
    rng = 5;
    for (i = 0; i < CALIB + T - 1; i++, ts += 1000) {
        make_row(row, NORMAL);
        push(&r, row, ts);
    }
    T_CHECK(ad_detector_scales(r.d, s1), "learned");
    T_CHECK(ad_detector_recalibrate(r.d, err, sizeof(err)) == 0, "recalibrate: %s", err);
    T_CHECK(!ad_detector_scales(r.d, s2), "forgotten by recalibrate");
    for (i = 0; i < CALIB; i++, ts += 1000) {
        make_row(row, NORMAL);
        row[0] *= 3;                 /* a new normal for feature a */
        push(&r, row, ts);
    }
    T_CHECK(ad_detector_scales(r.d, s2) && s2[0] > 2.5 * s1[0],
            "learned again: scale[0] %.4g after, %.4g before", s2[0], s1[0]);
out:
    ad_detector_free(r.d);
    ad_model_free(m);
}

/* An operator's freeze during calibration holds once the scales are
 * learned: the normalised threshold is a new one (before, it started
 * unfrozen and adapted though the operator had frozen it). */
static void test_freeze_kept(void)
{
    static run r;
    ad_model *m = t_zero_model(T, F);
    double row[F];
    int64_t ts = 1700000000000LL;
    char *s = NULL;
    int i;

    if (!m || open_run(&r, AD_NORM_FEATURE, m))
        goto out;
    rng = 7;
    for (i = 0; i < CALIB + T - 1; i++, ts += 1000) {
        if (i == T + CALIB / 2)
            ad_detector_freeze(r.d, 1);
        make_row(row, NORMAL);
        push(&r, row, ts);
    }
    s = ad_detector_save(r.d);
    T_CHECK(s != NULL && strstr(s, "\"fitted\":true") != NULL &&
            strstr(s, "\"frozen\":true") != NULL,
            "calibrated with the scales learned, the threshold still frozen");
out:
    free(s);
    ad_detector_free(r.d);
    ad_model_free(m);
}

static void test_cfg_check(void)
{
    ad_detector_cfg c;
    char err[256] = "";

    cfg_init(&c, AD_NORM_FEATURE);
    T_CHECK(ad_detector_cfg_check(&c, err, sizeof(err)) == 0, "feature + quantile: %s", err);
    c.normalize = (ad_normalize)7;
    T_CHECK(ad_detector_cfg_check(&c, err, sizeof(err)) == AD_EINVAL &&
            strcmp(err, "score.normalize: must be none, feature or feature_rms") == 0,
            "bad value: %s", err);
    cfg_init(&c, AD_NORM_FEATURE);
    c.thr.method = AD_THR_FIXED;
    c.thr.fixed = 2;
    T_CHECK(ad_detector_cfg_check(&c, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "threshold method fixed"), "fixed: %s", err);
    T_CHECK(ad_detector_normalize_from_name("feature") == AD_NORM_FEATURE &&
            ad_detector_normalize_from_name("none") == AD_NORM_NONE &&
            ad_detector_normalize_from_name("max") == -1, "names");
    /* the default changes no settings hash (saved calibrations stay valid) */
    cfg_init(&c, AD_NORM_NONE);
    {
        uint64_t h0 = ad_detector_cfg_hash(&c);
        c.normalize = AD_NORM_FEATURE;
        T_CHECK(ad_detector_cfg_hash(&c) != h0, "feature changes the hash");
    }
}

/* ad_recon_normalize against a direct computation. */
static void test_recon_normalize(void)
{
    float x[3 * 2] = { 1, 2, 3, 4, 5, 6 }, y[3 * 2] = { 0, 0, 0, 0, 0, 0 }, sh[2], ns[2];
    double scale[2] = { 3.0, 0.5 }, s, want;

    s = ad_recon_score(x, y, 3, 2, AD_METRIC_MAE, sh);
    /* e_0 = (1+3+5)/3 = 3, e_1 = (2+4+6)/3 = 4: ratios 1 and 8 */
    want = 8.0;
    T_CHECK(fabs(ad_recon_normalize(s, sh, scale, 2, 1, NULL) - sqrt(32.5)) < 1e-6,
            "rms %.9g, want %.9g", ad_recon_normalize(s, sh, scale, 2, 1, NULL), sqrt(32.5));
    s = ad_recon_normalize(s, sh, scale, 2, 0, ns);
    T_CHECK(fabs(s - want) < 1e-6, "normalised %.9g, want %.9g", s, want);
    T_CHECK(fabs(ns[0] - 1.0 / 9) < 1e-6 && fabs(ns[1] - 8.0 / 9) < 1e-6,
            "shares %.6g %.6g", ns[0], ns[1]);
    sh[0] = NAN;
    T_CHECK(isnan(ad_recon_normalize(1.0, sh, scale, 2, 0, ns)) && isnan(ns[1]), "NaN share");
}

int main(void)
{
    T_RUN(test_recon_normalize);
    T_RUN(test_cfg_check);
    T_RUN(test_fault_in_small_feature);
    T_RUN(test_score_recomputed);
    T_RUN(test_state_round_trip);
    T_RUN(test_state_exact);
    T_RUN(test_recalibrate);
    T_RUN(test_freeze_kept);
    return t_done();
}
