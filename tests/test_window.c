/*
 * test_window.c - the window ring keeps rows already scaled for the current
 * model: what the model sees must be exactly (bit for bit) what scaling the
 * raw rows with ad_model_scale() gives, whatever the scaler, the hop, the
 * ring position, invalid (NaN) rows, and model swaps in between.
 *
 * The reference is independent of the ring: the test keeps its own copy of
 * every pushed row and, for each due window, scales the last T of them
 * itself with ad_model_scale(), then compares with memcmp (NaN included).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

#include "t.h"
#include "ad.h"
#include "model.h"
#include "window.h"
#include "detector.h"

#define TT 5
#define FF 3
#define NROWS 64

static ad_model *mk_model(int T, ad_scaler_type sc, float shift)
{
    ad_layer_spec L[1] = { { AD_LAYER_TD_DENSE, FF, AD_ACT_LINEAR, 0 } };
    /* Awkward constants so the division rounds (an exact power of two
     * would hide a different formula). */
    float a[FF] = { 0.3f + shift, -7.25f, 1e3f / 3.0f }, b[FF] = { 1.7f, 3.1f + shift, 999.9f };
    ad_model *m = NULL;
    char err[200];
    void *buf;
    size_t len;

    if (ad_model_create(&m, T, FF, L, 1, err, sizeof(err)) != 0) {
        fprintf(stderr, "model: %s\n", err);
        return NULL;
    }
    if (sc == AD_SCALER_MINMAX) {        /* min a < max a + b */
        int f;
        for (f = 0; f < FF; f++)
            b[f] = a[f] + b[f];
    }
    if (ad_model_set_scaler(m, sc, a, b) != 0) {
        fprintf(stderr, "scaler refused\n");
        ad_model_free(m);
        return NULL;
    }
    if (ad_model_serialize(m, &buf, &len) == 0)  /* gives it an id */
        free(buf);
    return m;
}

/* Row i of the test signal; rows listed in bad[] get a NaN feature. */
static void signal_row(int i, float *row)
{
    int f;

    for (f = 0; f < FF; f++)
        row[f] = (float)(100.0 * sin(0.37 * i + f) + 0.01 * i * (f + 1));
}

static int is_bad(int i)
{
    return i == 9 || i == 23 || i == 24;
}

/* The last T rows pushed (from the test's own log), scaled by m. */
static void reference(const float *log, int n_pushed, const ad_model *m, float *out)
{
    memcpy(out, log + (size_t)(n_pushed - TT) * FF, TT * FF * sizeof(float));
    if (m != NULL)
        ad_model_scale(m, out, out, TT);
}

static const char *scaler_name(ad_scaler_type s)
{
    return s == AD_SCALER_STANDARD ? "standard" : s == AD_SCALER_MINMAX ? "minmax" : "none";
}

/* Every scaler, hop 1 and 3, many wrap-arounds, invalid rows: the scaled
 * window equals raw window + ad_model_scale and the independent reference. */
static void test_scaled_equals_raw_scaled(void)
{
    static const ad_scaler_type sc[3] = { AD_SCALER_STANDARD, AD_SCALER_MINMAX,
                                          AD_SCALER_NONE };
    static const int hops[2] = { 1, 3 };
    float log[NROWS * FF];
    int si, hi;

    for (si = 0; si < 3; si++) {
        for (hi = 0; hi < 2; hi++) {
            ad_model *m = mk_model(TT, sc[si], 0);
            ad_window *w = NULL;
            float raw[TT * FF], got[TT * FF], ref[TT * FF];
            int i, due, n_due = 0, raw_eq = 0, ref_eq = 0, n_invalid_win = 0;
            int first_ok = 1, inv_ok = 1, ts_ok = 1;

            if (m == NULL || ad_window_new(&w, TT, FF, hops[hi]) != 0) {
                T_CHECK(0, "setup %s hop %d", scaler_name(sc[si]), hops[hi]);
                ad_model_free(m);
                return;
            }
            T_CHECK(ad_window_set_model(w, m) == 0, "set model");
            for (i = 0; i < NROWS; i++) {
                int64_t t0, t1, k, n_bad = 0;
                signal_row(i, log + i * FF);
                if (is_bad(i))
                    log[i * FF + 1] = NAN;
                due = ad_window_push(w, 1000 * (int64_t)i, log + i * FF, !is_bad(i));
                if (!due)
                    continue;
                n_due++;
                for (k = i - TT + 1; k <= i; k++)
                    n_bad += is_bad((int)k);
                if (ad_window_invalid(w) != n_bad)
                    inv_ok = 0;
                if (n_bad)
                    n_invalid_win++;
                if (ad_window_extract(w, NULL, raw, NULL, NULL) != 0 ||
                    ad_window_extract(w, m, got, &t0, &t1) != 0) {
                    first_ok = 0;
                    continue;
                }
                if (t0 != 1000 * (int64_t)(i - TT + 1) || t1 != 1000 * (int64_t)i)
                    ts_ok = 0;
                ad_model_scale(m, raw, raw, TT);
                reference(log, i + 1, m, ref);
                if (memcmp(raw, got, sizeof(got)) == 0)
                    raw_eq++;
                if (memcmp(ref, got, sizeof(got)) == 0)
                    ref_eq++;
            }
            T_CHECK(first_ok, "%s hop %d: extract succeeded", scaler_name(sc[si]), hops[hi]);
            T_CHECK(ts_ok, "%s hop %d: timestamps of oldest/newest rows",
                    scaler_name(sc[si]), hops[hi]);
            T_CHECK(n_due == 1 + (NROWS - TT) / hops[hi], "%s hop %d: %d windows due",
                    scaler_name(sc[si]), hops[hi], n_due);
            T_CHECK(raw_eq == n_due, "%s hop %d: scaled == scale(raw) bit for bit in %d/%d",
                    scaler_name(sc[si]), hops[hi], raw_eq, n_due);
            T_CHECK(ref_eq == n_due, "%s hop %d: scaled == scale(reference) in %d/%d",
                    scaler_name(sc[si]), hops[hi], ref_eq, n_due);
            T_CHECK(inv_ok && n_invalid_win > 0, "%s hop %d: invalid rows counted (%d windows)",
                    scaler_name(sc[si]), hops[hi], n_invalid_win);
            T_NOTE("%s hop %d: %d windows over %d rows (ring of %d wrapped %d times), "
                   "%d with invalid rows, all bit-identical", scaler_name(sc[si]), hops[hi],
                   n_due, NROWS, TT, NROWS / TT, n_invalid_win);
            ad_window_free(w);
            ad_model_free(m);
        }
    }
}

/* Push k more rows of the test signal (logged in log) into w. */
static void push_rows(ad_window *w, float *log, int *n, int k)
{
    for (int i = 0; i < k; i++, (*n)++) {
        signal_row(*n, log + *n * FF);
        ad_window_push(w, *n, log + *n * FF, 1);
    }
}

/* w's window extracted for m is bit-identical to the reference. */
static int extract_matches(ad_window *w, const ad_model *m, const float *log, int n)
{
    float got[TT * FF], ref[TT * FF];

    if (ad_window_extract(w, m, got, NULL, NULL) != 0)
        return 0;
    reference(log, n, m, ref);
    return memcmp(got, ref, sizeof(got)) == 0;
}

/* Model swaps: explicit (set_model) with a full ring, implicit (extract
 * with another model), back to the first, during a partial fill, and a
 * model changed in place then set again. */
static void test_model_swap(void)
{
    ad_model *a = mk_model(TT, AD_SCALER_STANDARD, 0);
    ad_model *b = mk_model(TT, AD_SCALER_MINMAX, 0.5f);
    ad_model *c = mk_model(TT, AD_SCALER_STANDARD, 2.0f);
    ad_window *w = NULL;
    float log[NROWS * FF], got[TT * FF];
    float a2[FF] = { 5, 6, 7 }, b2[FF] = { 0.3f, 0.7f, 1.1f };
    int n = 0;

    if (!a || !b || !c || ad_window_new(&w, TT, FF, 1) != 0) {
        T_CHECK(0, "setup");
        goto out;
    }
    ad_window_set_model(w, a);
    push_rows(w, log, &n, 7);                 /* full, wrapped once */
    T_CHECK(extract_matches(w, a, log, n), "model a before the swap");

    T_CHECK(ad_window_set_model(w, b) == 0 && ad_window_model(w) == b, "swap to b");
    T_CHECK(extract_matches(w, b, log, n), "held rows rescaled for b at the swap");
    push_rows(w, log, &n, 3);
    T_CHECK(extract_matches(w, b, log, n), "rows pushed after the swap scaled for b");

    /* Extraction with a model the window does not remember: rescaled. */
    T_CHECK(extract_matches(w, c, log, n) && ad_window_model(w) == c,
            "extract with another model c scales for c and remembers it");
    T_CHECK(extract_matches(w, a, log, n), "back to a");
    T_CHECK(extract_matches(w, NULL, log, n) && ad_window_model(w) == a,
            "raw extraction unchanged, model kept");

    /* Swap while the ring fills again after a reset. */
    ad_window_reset(w);
    push_rows(w, log, &n, 2);
    ad_window_set_model(w, b);
    push_rows(w, log, &n, TT - 2);
    T_CHECK(ad_window_extract(w, b, got, NULL, NULL) == 0, "full again");
    T_CHECK(extract_matches(w, b, log, n), "rows pushed before a mid-fill swap rescaled");

    /* Same object, new scaler, announced with set_model: rescaled. */
    ad_model_set_scaler(b, AD_SCALER_STANDARD, a2, b2);
    ad_window_set_model(w, b);
    T_CHECK(extract_matches(w, b, log, n), "set_model on the same object rescales");

    /* Feature count mismatch refused, nothing changed. */
    {
        ad_layer_spec L[1] = { { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 } };
        ad_model *m2 = NULL;
        char err[200];
        if (ad_model_create(&m2, TT, 2, L, 1, err, sizeof(err)) == 0) {
            T_CHECK(ad_window_set_model(w, m2) == AD_EINVAL && ad_window_model(w) == b,
                    "model with 2 features refused for a 3-feature window");
            T_CHECK(ad_window_extract(w, m2, got, NULL, NULL) == AD_EINVAL,
                    "extract refuses it too");
            ad_model_free(m2);
        }
    }
out:
    ad_window_free(w);
    ad_model_free(a);
    ad_model_free(b);
    ad_model_free(c);
}

/* Through the detector, as the daemon drives it: the windows handed to the
 * model after ad_detector_set_model (a reload) are the raw rows scaled by
 * the new model, the ones before by the old. */
static void test_detector_reload(void)
{
    ad_model *a = mk_model(TT, AD_SCALER_STANDARD, 0);
    ad_model *b = mk_model(TT, AD_SCALER_MINMAX, 1.0f);
    ad_detector_cfg cfg;
    ad_detector *d = NULL;
    float log[NROWS * FF], buf[TT * FF], ref[TT * FF];
    double row[FF];
    char err[300];
    int i, f, jobs_a = 0, ok_a = 0, jobs_b = 0, ok_b = 0;

    if (!a || !b) {
        T_CHECK(0, "models");
        goto out;
    }
    ad_detector_cfg_default(&cfg);
    cfg.calib_windows = 1000;                 /* stays calibrating */
    if (ad_detector_new(&d, &cfg, "s1", a, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "detector: %s", err);
        goto out;
    }
    for (i = 0; i < 40; i++) {
        ad_window_job job;
        const ad_model *cur;
        if (i == 17)
            T_CHECK(ad_detector_set_model(d, b, 1, err, sizeof(err)) == 0, "reload: %s", err);
        cur = i < 17 ? a : b;
        signal_row(i, log + i * FF);
        for (f = 0; f < FF; f++)
            row[f] = log[i * FF + f];
        /* What the stream emits is the float of the double pushed. */
        ad_detector_push_row(d, 1000 * (int64_t)(i + 1), row, NULL);
        while (ad_detector_next_window(d, buf, &job)) {
            reference(log, i + 1, cur, ref);
            if (cur == a) {
                jobs_a++;
                ok_a += job.model == a && memcmp(buf, ref, sizeof(buf)) == 0;
            } else {
                jobs_b++;
                ok_b += job.model == b && memcmp(buf, ref, sizeof(buf)) == 0;
            }
        }
    }
    T_CHECK(jobs_a > 0 && ok_a == jobs_a, "windows before the reload scaled by the old model "
            "(%d/%d)", ok_a, jobs_a);
    T_CHECK(jobs_b > 0 && ok_b == jobs_b, "windows after the reload scaled by the new model "
            "(%d/%d)", ok_b, jobs_b);
    T_NOTE("detector: %d windows with model a, %d after reloading model b", jobs_a, jobs_b);
out:
    ad_detector_free(d);
    ad_model_free(a);
    ad_model_free(b);
}

int main(void)
{
    T_RUN(test_scaled_equals_raw_scaled);
    T_RUN(test_model_swap);
    T_RUN(test_detector_reload);
    return t_done();
}
