/*
 * test_alert.c - the alert state machine: k-of-n raise, m-below clear with
 * clear ratio (hysteresis), cooldown, stable unique ids, peak/severity and
 * top contributing features, JSON form; saved counts beyond what an
 * integer holds are refused by the restore (a damaged state file); an
 * alert saved with another feature count can be closed, not resumed;
 * every close reason has its own name; a raise ratio over 1 raises only on
 * windows clearly over the threshold while those just over it still count
 * as exceeding (not learned as normal); what raised an alert
 * ("raised_by": band over a test, a test, none for its score) is one
 * choice, the same in its JSON form.
 */
#include <stdint.h>
#include <string.h>

#include "t.h"
#include "ad.h"
#include "alert.h"

static ad_alerter *mk(int k, int n, int m, double ratio, int64_t cool, int F)
{
    ad_alert_cfg c;
    ad_alerter *a = NULL;
    char err[200];

    ad_alert_cfg_default(&c);
    c.k = k;
    c.n = n;
    c.m = m;
    c.clear_ratio = ratio;
    c.cooldown_ms = cool;
    if (ad_alerter_new(&a, &c, "pump7", F, err, sizeof(err)) != 0)
        fprintf(stderr, "alerter_new: %s\n", err);
    return a;
}

/* Run scores (threshold 1) from t = 1000 step 1000; returns result bits per
 * step in res. */
static void run(ad_alerter *a, const double *s, int n, int *res, ad_alert *last)
{
    int i;

    for (i = 0; i < n; i++) {
        ad_alert al;
        res[i] = ad_alerter_step(a, 1000 * (i + 1), s[i], 1.0, NULL, &al);
        if (res[i] && last)
            *last = al;
    }
}

static void test_k_of_n_raise(void)
{
    /* k=2 of n=3: a lone spike does not raise; two within three windows do */
    ad_alerter *a = mk(2, 3, 1, 1.0, 0, 2);
    double s[] = { 2, 0.5, 0.5, 2, 0.5, 2, 0.5 };
    int r[7];
    ad_alert al;

    run(a, s, 7, r, &al);
    T_CHECK(r[0] == 0 && r[3] == 0, "single exceedances do not raise");
    T_CHECK(r[5] == AD_ALERT_RAISED, "2 of the last 3 raise at window 6 (r=%d)", r[5]);
    T_CHECK(r[6] == AD_ALERT_CLEARED, "m=1 clears on the next window below (r=%d)", r[6]);
    T_CHECK(al.start_ms == 6000 && al.end_ms == 7000, "start %lld end %lld",
            (long long)al.start_ms, (long long)al.end_ms);
    T_CHECK(strcmp(al.id, "pump7-6000-1") == 0, "id %s", al.id);
    ad_alerter_free(a);
}

static void test_clear_hysteresis(void)
{
    /* clear after m=2 windows below 0.5 * threshold; 0.8 is not low enough */
    ad_alerter *a = mk(1, 1, 2, 0.5, 0, 1);
    double s[] = { 3, 0.8, 0.8, 0.4, 0.8, 0.4, 0.3, 5 };
    int r[8];
    ad_alert al;

    run(a, s, 8, r, &al);
    T_CHECK(r[0] == AD_ALERT_RAISED, "raise");
    T_CHECK(r[1] == 0 && r[2] == 0 && r[3] == 0 && r[4] == 0 && r[5] == 0,
            "no clear while between clear level and threshold / not m in a row");
    T_CHECK(r[6] == AD_ALERT_CLEARED, "clear after two consecutive windows below 0.5");
    T_CHECK(r[7] == AD_ALERT_RAISED, "new alert later");
    T_CHECK(al.seq == 2 && strcmp(al.id, "pump7-8000-2") == 0, "second id %s", al.id);
    ad_alerter_free(a);
}

static void test_clear_empties_history(void)
{
    /* k=3 of n=20 with m=10: the clear's ten windows leave the alert's own
     * windows in the last twenty. A raise after a clear is k fresh windows
     * over the threshold, as after a restart (the history is saved only
     * with an open alert) and after any other close: one window over it
     * right after the clear is not a new alert. */
    ad_alerter *a = mk(3, 20, 10, 0.8, 0, 1);
    double s[18];
    int r[18], i;

    for (i = 0; i < 5; i++)
        s[i] = 2;
    for (; i < 15; i++)
        s[i] = 0.5;
    s[15] = 2;
    s[16] = 2;
    s[17] = 2;
    run(a, s, 18, r, NULL);
    T_CHECK(r[2] == AD_ALERT_RAISED, "3 of 20 raise (r=%d)", r[2]);
    T_CHECK(r[14] == AD_ALERT_CLEARED, "10 windows below clear (r=%d)", r[14]);
    T_CHECK(r[15] == 0 && r[16] == 0, "one or two windows over the threshold after the "
            "clear do not raise (r=%d, %d)", r[15], r[16]);
    T_CHECK(r[17] == AD_ALERT_RAISED, "the third fresh one does (r=%d)", r[17]);
    ad_alerter_free(a);
}

static void test_cooldown(void)
{
    ad_alerter *a = mk(1, 1, 1, 1.0, 2500, 1);
    double s[] = { 2, 0.5, 2, 2, 2, 0.5 };
    int r[6];

    run(a, s, 6, r, NULL);
    /* cleared at t=2000; cooldown until 4500: windows at 3000, 4000 suppressed */
    T_CHECK(r[0] == AD_ALERT_RAISED && r[1] == AD_ALERT_CLEARED, "raise, clear");
    T_CHECK(r[2] == 0 && r[3] == 0, "suppressed in cooldown");
    T_CHECK(r[4] == AD_ALERT_RAISED, "raise after cooldown (r=%d)", r[4]);
    ad_alerter_free(a);
}

static void test_peak_severity_top(void)
{
    ad_alerter *a = mk(1, 1, 1, 1.0, 0, 3);
    float sh1[3] = { 0.1f, 0.7f, 0.2f }, sh2[3] = { 0.1f, 0.5f, 0.4f }, sh0[3] = { 1, 0, 0 };
    ad_alert al;
    const ad_alert *cur;
    cJSON *j;
    char *txt;
    const char *names[3] = { "flow", "pressure", "temp" };

    T_CHECK(ad_alerter_step(a, 100, 2.0, 1.0, sh1, &al) == AD_ALERT_RAISED, "raise");
    ad_alerter_step(a, 200, 4.0, 1.0, sh2, &al);
    cur = ad_alerter_active(a);
    T_CHECK(cur && cur->peak_score == 4.0 && cur->peak_ms == 200 && cur->severity == 4.0,
            "peak 4 at 200, severity 4");
    T_CHECK(cur && cur->n_top == 3 && cur->top_feature[0] == 1 && cur->top_feature[1] == 2 &&
            fabs(cur->top_share[0] - 0.6) < 1e-6 && fabs(cur->top_share[1] - 0.3) < 1e-6,
            "top = pressure 0.6, temp 0.3 (mean over exceeding windows)");
    /* a window below threshold does not change the contributions */
    T_CHECK(ad_alerter_step(a, 300, 0.5, 1.0, sh0, &al) == AD_ALERT_CLEARED, "clear");
    T_CHECK(al.top_feature[0] == 1 && fabs(al.top_share[0] - 0.6) < 1e-6,
            "contributions from exceeding windows only");
    T_CHECK(al.windows == 3 && al.end_ms == 300 && !al.active, "record at clear");
    j = ad_alert_to_json(&al, "pump7", names);
    txt = cJSON_PrintUnformatted(j);
    T_NOTE("%s", txt);
    T_CHECK(txt && strstr(txt, "\"id\":\"pump7-100-1\"") && strstr(txt, "\"name\":\"pressure\"") &&
            strstr(txt, "\"state\":\"cleared\"") && strstr(txt, "\"end\":300"), "JSON fields");
    free(txt);
    cJSON_Delete(j);
    ad_alerter_free(a);
}

static void test_ids_stable(void)
{
    /* the same score sequence twice: the same ids */
    double s[] = { 2, 0.1, 2, 0.1, 2, 0.1 };
    char ids[2][3][AD_ALERT_ID_LEN];
    int run_i, i, k;

    for (run_i = 0; run_i < 2; run_i++) {
        ad_alerter *a = mk(1, 1, 1, 1.0, 0, 1);
        k = 0;
        for (i = 0; i < 6; i++) {
            ad_alert al;
            if (ad_alerter_step(a, 1577836800000LL + i * 1000, s[i], 1.0, NULL, &al) ==
                AD_ALERT_RAISED)
                snprintf(ids[run_i][k++], AD_ALERT_ID_LEN, "%s", al.id);
        }
        T_CHECK(k == 3 && ad_alerter_count(a) == 3, "3 alerts");
        ad_alerter_free(a);
    }
    for (i = 0; i < 3; i++)
        T_CHECK(strcmp(ids[0][i], ids[1][i]) == 0, "stable id %s", ids[0][i]);
    T_CHECK(strcmp(ids[0][0], ids[0][1]) && strcmp(ids[0][1], ids[0][2]), "unique ids");
}

static void test_cfg_check(void)
{
    ad_alert_cfg c;
    char err[200];

    ad_alert_cfg_default(&c);
    c.k = 3;
    c.n = 2;
    T_CHECK(ad_alert_cfg_check(&c, err, sizeof(err)) == AD_EINVAL, "k > n refused: %s", err);
    ad_alert_cfg_default(&c);
    c.clear_ratio = 1.5;
    T_CHECK(ad_alert_cfg_check(&c, err, sizeof(err)) == AD_EINVAL, "ratio > 1 refused");
    ad_alert_cfg_default(&c);
    c.n = 65;
    c.k = 1;
    T_CHECK(ad_alert_cfg_check(&c, err, sizeof(err)) == AD_EINVAL, "n > 64 refused");
}

/* An open alert saved, then restored with one count replaced by v: the
 * restore's return code. */
static int restore_with(const char *path, double v)
{
    ad_alerter *a = mk(1, 1, 1, 1.0, 0, 1), *b = mk(1, 1, 1, 1.0, 0, 1);
    cJSON *o, *x;
    char err[200];
    int rc, top;

    ad_alerter_step(a, 1000, 2.0, 1.0, NULL, NULL);
    o = ad_alerter_save(a);
    top = strcmp(path, "seq") == 0 || strcmp(path, "cooldown_until") == 0;
    x = top ? o : cJSON_GetObjectItemCaseSensitive(o, "open");
    if (cJSON_GetObjectItemCaseSensitive(x, path))
        cJSON_ReplaceItemInObject(x, path, cJSON_CreateNumber(v));
    else
        cJSON_AddNumberToObject(x, path, v);
    rc = ad_alerter_restore(b, o, 1, NULL, err, sizeof(err));
    if (rc)
        T_NOTE("%s = %g: %s", path, v, err);
    cJSON_Delete(o);
    ad_alerter_free(a);
    ad_alerter_free(b);
    return rc;
}

static void test_restore_counts_bounded(void)
{
    static const char *const keys[] = { "seq", "windows", "below", "share_n" };
    int i;

    for (i = 0; i < 4; i++) {
        T_CHECK(restore_with(keys[i], 7) == 0, "%s 7 restored", keys[i]);
        T_CHECK(restore_with(keys[i], 6.7e78) == AD_EFORMAT, "%s 6.7e78 refused", keys[i]);
    }
}

/* Saved times become int64_t: beyond what one holds they are refused too. */
static void test_restore_times_bounded(void)
{
    static const char *const keys[] = { "start", "peak_ts", "cooldown_until" };
    int i;

    for (i = 0; i < 3; i++) {
        T_CHECK(restore_with(keys[i], 1.7e12) == 0, "%s 1.7e12 restored", keys[i]);
        T_CHECK(restore_with(keys[i], -7) == 0, "%s -7 restored", keys[i]);
        T_CHECK(restore_with(keys[i], 6.7e78) == AD_EFORMAT, "%s 6.7e78 refused", keys[i]);
        T_CHECK(restore_with(keys[i], -1e300) == AD_EFORMAT, "%s -1e300 refused", keys[i]);
    }
}

/* An open alert saved by an alerter of 5 features (top feature index 4),
 * read back by one of 4 (the model changed while stopped): refused for
 * resuming, read without its top features for closing (the saved indices
 * name the old model's features), the id, start and peak kept. */
static void test_restore_other_features(void)
{
    ad_alerter *a = mk(1, 1, 1, 1.0, 0, 5), *b = mk(1, 1, 1, 1.0, 0, 4);
    float sh[5] = { 0.05f, 0.05f, 0.1f, 0.1f, 0.7f };
    ad_alert al, saved;
    cJSON *o;
    char err[200] = "";
    int rc;

    T_CHECK(ad_alerter_step(a, 1000, 2.0, 1.0, sh, &al) == AD_ALERT_RAISED, "raise");
    o = ad_alerter_save(a);
    rc = ad_alerter_restore(b, o, 1, NULL, err, sizeof(err));
    T_CHECK(rc == AD_EFORMAT, "resume with 4 features refused (rc %d)", rc);
    T_NOTE("resume: %s", err);
    rc = ad_alerter_restore(b, o, 0, &saved, err, sizeof(err));
    T_CHECK(rc == 0 && saved.active && strcmp(saved.id, al.id) == 0 &&
            saved.start_ms == 1000 && saved.peak_score == 2.0 && saved.n_top == 0,
            "read to close: rc %d, active %d, id %s (raised %s), n_top %d", rc, saved.active,
            saved.id, al.id, saved.n_top);
    T_CHECK(ad_alerter_active(b) == NULL, "not resumed");
    cJSON_Delete(o);
    ad_alerter_free(a);
    ad_alerter_free(b);
}

/* RAISE RATIO: threshold 1, k 3 of n 5, m 2, clear ratio 0.8. A stretch of
 * 20 windows at 1.1 (over the threshold, under 1.25 x it) raises with
 * raise_ratio 1 (the old behaviour) and nothing with 1.25, yet each of its
 * windows still counts as exceeding (the detector does not learn it); a
 * later stretch at 1.5 raises under both, and clears as before. */
static int raise_ratio_run(double rr, int *raised_at, int *cleared_at, int *exceeded)
{
    ad_alert_cfg c;
    ad_alerter *a = NULL;
    char err[200];
    int i, raised = 0;

    ad_alert_cfg_default(&c);
    c.k = 3;
    c.n = 5;
    c.m = 2;
    c.raise_ratio = rr;
    *raised_at = *cleared_at = -1;
    *exceeded = 0;
    if (ad_alerter_new(&a, &c, "pump7", 1, err, sizeof(err)) != 0) {
        T_CHECK(0, "alerter_new: %s", err);
        return -1;
    }
    for (i = 0; i < 60; i++) {
        double s = i >= 10 && i < 30 ? 1.1 : i >= 40 && i < 45 ? 1.5 : 0.5;
        ad_alert al;
        int r = ad_alerter_step(a, 1000 * (i + 1), s, 1.0, NULL, &al);

        if (i >= 10 && i < 30)
            *exceeded += ad_alerter_last_exceeded(a);
        if (r == AD_ALERT_RAISED) {
            raised++;
            if (*raised_at < 0 || i >= 40)
                *raised_at = i;
        } else if (r == AD_ALERT_CLEARED) {
            *cleared_at = i;
        }
    }
    ad_alerter_free(a);
    return raised;
}

static void test_raise_ratio(void)
{
    int ra, ca, ex, n;
    ad_alert_cfg c;
    char err[200];

    n = raise_ratio_run(1.0, &ra, &ca, &ex);
    T_CHECK(n == 2 && ex == 20, "raise_ratio 1: %d alerts (want 2: the 1.1 stretch and the "
            "1.5 one), %d of 20 windows at 1.1 exceeding", n, ex);
    n = raise_ratio_run(1.25, &ra, &ca, &ex);
    T_CHECK(n == 1 && ra == 42 && ca == 46, "raise_ratio 1.25: %d alerts raised at window %d, "
            "cleared at %d (want 1, raised at 42, cleared at 46)", n, ra, ca);
    T_CHECK(ex == 20, "raise_ratio 1.25: %d of 20 windows at 1.1 x threshold count as exceeding "
            "(want 20: not learned as normal)", ex);
    ad_alert_cfg_default(&c);
    T_CHECK(c.raise_ratio == 1.0, "default raise_ratio %g (want 1)", c.raise_ratio);
    c.raise_ratio = 0.9;
    T_CHECK(ad_alert_cfg_check(&c, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "alert.raise_ratio") != NULL, "raise_ratio 0.9 refused: %s", err);
    /* alert.on "probability" raises on probability_level: a raise ratio
     * set there would be silently ignored */
    c.raise_ratio = 1.15;
    c.on = AD_ALERT_ON_PROBABILITY;
    T_CHECK(ad_alert_cfg_check(&c, err, sizeof(err)) == AD_EINVAL &&
            strstr(err, "alert.raise_ratio") != NULL && strstr(err, "probability") != NULL,
            "raise_ratio 1.15 with alert.on probability refused: %s", err);
    c.raise_ratio = 1;
    T_CHECK(ad_alert_cfg_check(&c, err, sizeof(err)) == 0,
            "raise_ratio 1 with alert.on probability taken: %s", err);
    T_NOTE("20 windows at 1.1 x threshold: raise_ratio 1 alerts, 1.25 does not (still "
           "exceeding); 1.5 x threshold raises at window 42 under both");
}

/* Each reason a cleared event can carry has a distinct public name. */
static void test_reason_names(void)
{
    const char *seen[AD_CLOSE_DETECTOR_REMOVED + 1];

    for (int r = AD_CLOSE_NONE; r <= AD_CLOSE_DETECTOR_REMOVED; r++) {
        seen[r] = ad_close_reason_name((ad_close_reason)r);
        T_CHECK(strcmp(seen[r], "?") != 0, "reason %d has a name", r);
        for (int q = 0; q < r; q++)
            T_CHECK(strcmp(seen[q], seen[r]) != 0, "reasons %d and %d: both %s", q, r, seen[r]);
    }
    T_CHECK(strcmp(ad_close_reason_name(AD_CLOSE_DETECTOR_REMOVED), "detector_removed") == 0,
            "detector_removed: %s", ad_close_reason_name(AD_CLOSE_DETECTOR_REMOVED));
}

/* raised_by: band when a band run raised it (whatever test held the
 * window), else the test, else absent (its score) */
static void test_raised_by(void)
{
    static const struct { int band, by; const char *want; } c[] = {
        { 0, 0, NULL }, { 1, 0, "band" }, { 1, AD_BY_NOISE, "band" },
        { 0, AD_BY_LEVEL, "level" }, { 0, AD_BY_BURST, "burst" }, { 0, AD_BY_NOISE, "noise" },
        { 0, 9, NULL },
    };
    const char *names[1] = { "flow" };

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        ad_alert al;
        const char *got;
        const cJSON *x;
        cJSON *j;

        memset(&al, 0, sizeof al);
        snprintf(al.id, sizeof al.id, "pump7-1-1");
        al.active = 1;
        al.start_ms = al.peak_ms = 1000;
        al.threshold = 1.0;
        al.band = c[i].band;
        al.by = c[i].by;
        got = ad_alert_raised_by(&al);
        T_CHECK(c[i].want ? got && strcmp(got, c[i].want) == 0 : got == NULL,
                "band %d by %d: raised_by %s (want %s)", c[i].band, c[i].by,
                got ? got : "absent", c[i].want ? c[i].want : "absent");
        j = ad_alert_to_json(&al, "pump7", names);
        x = cJSON_GetObjectItemCaseSensitive(j, "raised_by");
        T_CHECK(j && (c[i].want ? cJSON_IsString(x) && strcmp(x->valuestring, c[i].want) == 0 :
                      x == NULL), "band %d by %d: the JSON form's raised_by the same",
                c[i].band, c[i].by);
        cJSON_Delete(j);
    }
}

int main(void)
{
    T_RUN(test_k_of_n_raise);
    T_RUN(test_clear_hysteresis);
    T_RUN(test_clear_empties_history);
    T_RUN(test_cooldown);
    T_RUN(test_peak_severity_top);
    T_RUN(test_ids_stable);
    T_RUN(test_cfg_check);
    T_RUN(test_restore_counts_bounded);
    T_RUN(test_restore_times_bounded);
    T_RUN(test_restore_other_features);
    T_RUN(test_reason_names);
    T_RUN(test_raise_ratio);
    T_RUN(test_raised_by);
    return t_done();
}
