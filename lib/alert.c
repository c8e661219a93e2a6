/*
 * alert.c - k-of-n raise / m-below clear state machine with cooldown, and
 * the alert record (stable id, peak, severity, top contributing features).
 */
#include "alert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ad.h"
#include "model.h"
#include "noise.h"

struct ad_alerter {
    ad_alert_cfg cfg;
    char *key;
    int F;
    uint64_t hist;          /* bit 0 = last window exceeded */
    uint64_t rhist;         /* the same over raise_ratio x threshold (saved,
                             * like hist, with an open alert only) */
    int hist_len;
    int last_exceeded;
    int below;              /* consecutive windows below the clear level */
    int has_cooldown;
    int64_t cooldown_until;
    uint64_t seq;
    ad_alert cur;           /* valid when cur.active */
    double *share_sum;      /* F */
    uint64_t share_n;
};

void ad_alert_cfg_default(ad_alert_cfg *c)
{
    c->k = 3;
    c->n = 5;
    c->m = 10;
    c->clear_ratio = 0.8;
    c->raise_ratio = 1.0;
    c->band = AD_BAND_RAISE;
    c->cooldown_ms = 0;
    c->on = AD_ALERT_ON_SCORE;
    c->level = 0.9999;
    c->accept_after = 0;
    c->accept_spread = 3.0;
    c->accept_gap = 0;
    c->accept_period_ms = 0;
    c->accept_after_ms = 0;
    c->accept_gap_ms = 0;
    c->accept_trend = 0.25;
    c->accept_onset = 0;
    c->stepdown_ratio = 0;
    c->stepdown_windows = 30;
    c->stepdown_after = 30;
    c->level_ms = 0;
    c->level_z = 6.0;
    c->burst_ms = 0;
    c->burst_n = 3;
    c->burst_z = 5.0;
    c->noise_ms = 0;
    c->noise_ratio = 1.8;
}

const char *ad_close_reason_name(ad_close_reason r)
{
    switch (r) {
    case AD_CLOSE_NONE: return "none";
    case AD_CLOSE_CLEARED: return "cleared";
    case AD_CLOSE_ACCEPTED: return "accepted";
    case AD_CLOSE_RESTART: return "restart";
    case AD_CLOSE_RELOAD: return "reload";
    case AD_CLOSE_EVICTED: return "evicted";
    case AD_CLOSE_MODEL_CHANGED: return "model_changed";
    case AD_CLOSE_FALSE_ALARM: return "false_alarm";
    case AD_CLOSE_RECALIBRATE: return "recalibrate";
    case AD_CLOSE_DETECTOR_REMOVED: return "detector_removed";
    }
    return "?";
}

const char *ad_alert_on_name(ad_alert_on on)
{
    return on == AD_ALERT_ON_PROBABILITY ? "probability" : on == AD_ALERT_ON_SCORE ? "score" : "?";
}

int ad_alert_cfg_check(const ad_alert_cfg *c, char *err, size_t errlen)
{
    if (c->n < 1 || c->n > AD_ALERT_MAX_N)
        return ad_errf(err, errlen, AD_EINVAL, "alert.n: must be 1..%d (got %d)",
                       AD_ALERT_MAX_N, c->n);
    if (c->k < 1 || c->k > c->n)
        return ad_errf(err, errlen, AD_EINVAL, "alert.k: must be 1..n=%d (got %d)", c->n, c->k);
    if (c->m < 1)
        return ad_errf(err, errlen, AD_EINVAL, "alert.m: must be >= 1 (got %d)", c->m);
    if (!(c->clear_ratio > 0 && c->clear_ratio <= 1))
        return ad_errf(err, errlen, AD_EINVAL, "alert.clear_ratio: must be in (0,1] (got %g)",
                       c->clear_ratio);
    if (!(c->raise_ratio >= 1 && c->raise_ratio <= 100))
        return ad_errf(err, errlen, AD_EINVAL, "alert.raise_ratio: must be in [1,100] (got %g)",
                       c->raise_ratio);
    if (c->cooldown_ms < 0)
        return ad_errf(err, errlen, AD_EINVAL, "alert.cooldown_ms: must be >= 0");
    if ((unsigned)c->on > AD_ALERT_ON_PROBABILITY)
        return ad_errf(err, errlen, AD_EINVAL, "alert.on: unknown (%d)", (int)c->on);
    if (c->on == AD_ALERT_ON_PROBABILITY && c->raise_ratio != 1)
        return ad_errf(err, errlen, AD_EINVAL, "alert.raise_ratio %g: the raise level is "
                       "raise_ratio x the score's threshold and alert.on \"probability\" "
                       "raises on probability_level; set alert.raise_ratio 1 or alert.on "
                       "\"score\"", c->raise_ratio);
    if (!(c->level > 0 && c->level < 1))
        return ad_errf(err, errlen, AD_EINVAL,
                       "alert.probability_level: must be in (0,1) (got %g)", c->level);
    if (c->accept_after < 0 || c->accept_after > 1000000)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_after: must be 0..1000000 (got %d)",
                       c->accept_after);
    if (!(c->accept_trend >= 0 && c->accept_trend <= 100))
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_trend: must be 0..100 (got %g)",
                       c->accept_trend);
    if (c->accept_gap < 0 || c->accept_gap > 100000000)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_gap: must be 0..100000000 (got %d)",
                       c->accept_gap);
    if (c->accept_after_ms < 0 || c->accept_after_ms > 31622400000LL)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_after_ms: must be 0..31622400000 "
                       "(a year; got %lld)", (long long)c->accept_after_ms);
    if (c->accept_gap_ms < 0 || c->accept_gap_ms > 31622400000LL)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_gap_ms: must be 0..31622400000 "
                       "(a year; got %lld)", (long long)c->accept_gap_ms);
    if (c->accept_after_ms > 0 && c->accept_after > 0)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_after_ms (%lld) and "
                       "alert.accept_after (%d): set one of them", (long long)c->accept_after_ms,
                       c->accept_after);
    if (c->accept_gap_ms > 0 && c->accept_gap > 0)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_gap_ms (%lld) and "
                       "alert.accept_gap (%d): set one of them", (long long)c->accept_gap_ms,
                       c->accept_gap);
    if (c->accept_period_ms < 0 || c->accept_period_ms > 31622400000LL)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_period_ms: must be 0..31622400000 "
                       "(a year; got %lld)", (long long)c->accept_period_ms);
    if (c->accept_onset < 0 || c->accept_onset > 100)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_onset: must be 0..100 (got %d)",
                       c->accept_onset);
    if (c->level_ms < 0 || c->level_ms > 31622400000LL)
        return ad_errf(err, errlen, AD_EINVAL, "alert.level_ms: must be 0..31622400000 "
                       "(a year; got %lld)", (long long)c->level_ms);
    if (!(c->level_z > 0 && c->level_z <= 1000))
        return ad_errf(err, errlen, AD_EINVAL, "alert.level_z: must be > 0 and <= 1000 "
                       "(got %g)", c->level_z);
    if (c->burst_ms < 0 || c->burst_ms > 31622400000LL)
        return ad_errf(err, errlen, AD_EINVAL, "alert.burst_ms: must be 0..31622400000 "
                       "(a year; got %lld)", (long long)c->burst_ms);
    if (c->burst_n < 2 || c->burst_n > 1000)
        return ad_errf(err, errlen, AD_EINVAL, "alert.burst_n: must be 2..1000 (got %d)",
                       c->burst_n);
    if (!(c->burst_z > 0 && c->burst_z <= 1000))
        return ad_errf(err, errlen, AD_EINVAL, "alert.burst_z: must be > 0 and <= 1000 "
                       "(got %g)", c->burst_z);
    if (c->noise_ms < 0 || c->noise_ms > 31622400000LL ||
        (c->noise_ms > 0 && c->noise_ms < AD_NOISE_BLOCK_MS))
        return ad_errf(err, errlen, AD_EINVAL, "alert.noise_ms: must be 0 (off) or %d.."
                       "31622400000 (a block of an hour to a year; got %lld)",
                       AD_NOISE_BLOCK_MS, (long long)c->noise_ms);
    if (!(c->noise_ratio > 1 && c->noise_ratio <= 1000))
        return ad_errf(err, errlen, AD_EINVAL, "alert.noise_ratio: must be > 1 and <= 1000 "
                       "(got %g)", c->noise_ratio);
    if (!(c->stepdown_ratio >= 0 && c->stepdown_ratio < 1))
        return ad_errf(err, errlen, AD_EINVAL, "alert.stepdown_ratio: must be >= 0 and < 1 "
                       "(0: off; got %g)", c->stepdown_ratio);
    if (c->stepdown_windows < 1 || c->stepdown_windows > 100000)
        return ad_errf(err, errlen, AD_EINVAL, "alert.stepdown_windows: must be 1..100000 "
                       "(got %d)", c->stepdown_windows);
    if (c->stepdown_after < 1 || c->stepdown_after > 100000)
        return ad_errf(err, errlen, AD_EINVAL, "alert.stepdown_after: must be 1..100000 "
                       "(got %d)", c->stepdown_after);
    if (!(c->accept_spread > 0) || !isfinite(c->accept_spread))
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_spread: must be > 0 (got %g)",
                       c->accept_spread);
    return 0;
}

void ad_alerter_free(ad_alerter *a)
{
    if (a == NULL)
        return;
    free(a->key);
    free(a->share_sum);
    free(a);
}

int ad_alerter_new(ad_alerter **out, const ad_alert_cfg *cfg, const char *key,
                   int n_features, char *err, size_t errlen)
{
    ad_alerter *a;
    int rc;

    *out = NULL;
    rc = ad_alert_cfg_check(cfg, err, errlen);
    if (rc)
        return rc;
    if (n_features < 1 || n_features > AD_MAX_FEATURES)
        return ad_errf(err, errlen, AD_EINVAL, "alerter: bad feature count %d", n_features);
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "alerter: out of memory");
    a->cfg = *cfg;
    a->F = n_features;
    a->key = strdup(key ? key : "");
    a->share_sum = calloc((size_t)n_features, sizeof(double));
    if (a->key == NULL || a->share_sum == NULL) {
        ad_alerter_free(a);
        return ad_errf(err, errlen, AD_ENOMEM, "alerter: out of memory");
    }
    *out = a;
    return 0;
}

static int popcount64(uint64_t x)
{
    int c = 0;

    while (x) {
        x &= x - 1;
        c++;
    }
    return c;
}

/* Top AD_ALERT_TOP features by mean share over exceeding windows. */
static void update_top(ad_alerter *a)
{
    int i, j, f;

    a->cur.n_top = 0;
    if (a->share_n == 0)
        return;
    for (f = 0; f < a->F; f++) {
        double s = a->share_sum[f] / (double)a->share_n;
        if (!(s > 0))
            continue;
        /* insertion into the small sorted top list; ties keep lower index */
        for (i = 0; i < a->cur.n_top; i++)
            if (s > a->cur.top_share[i])
                break;
        if (i >= AD_ALERT_TOP)
            continue;
        if (a->cur.n_top < AD_ALERT_TOP)
            a->cur.n_top++;
        for (j = a->cur.n_top - 1; j > i; j--) {
            a->cur.top_share[j] = a->cur.top_share[j - 1];
            a->cur.top_feature[j] = a->cur.top_feature[j - 1];
        }
        a->cur.top_share[i] = s;
        a->cur.top_feature[i] = f;
    }
}

static void add_share(ad_alerter *a, const float *share)
{
    int f;

    if (share == NULL)
        return;
    for (f = 0; f < a->F; f++)
        if (isfinite(share[f]))
            a->share_sum[f] += share[f];
    a->share_n++;
}

/* Where the window stands for the rules: exceeds, exceeds the raise level,
 * and below the clear level. */
static void judge(const ad_alerter *a, const ad_alert_obs *o, int *exceed, int *rexceed,
                  int *below)
{
    if (a->cfg.on == AD_ALERT_ON_PROBABILITY) {
        double s_level = -log1p(-a->cfg.level), s;
        s = isfinite(o->log_lik) || o->log_lik == -INFINITY ? -o->log_lik :
            isfinite(o->prob) ? -log1p(-o->prob) : 0;
        *exceed = s > s_level;
        *rexceed = *exceed;
        *below = s < s_level * a->cfg.clear_ratio;
    } else {
        /* a persistent rise of the score's level under the threshold
         * (the detector's level test) counts as over it */
        *exceed = o->score > o->threshold || o->elevated;
        *rexceed = o->score > o->threshold * a->cfg.raise_ratio || o->elevated;
        *below = o->score < o->threshold * a->cfg.clear_ratio && !o->elevated;
    }
}

static void end_alert(ad_alerter *a, int64_t ts_ms, ad_close_reason reason)
{
    a->cur.active = 0;
    a->cur.end_ms = ts_ms;
    a->cur.reason = reason;
    a->below = 0;
}

int ad_alerter_step_obs(ad_alerter *a, int64_t ts_ms, const ad_alert_obs *o,
                        ad_alert *out)
{
    int exceed, rexceed, below;
    uint64_t mask = a->cfg.n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << a->cfg.n) - 1);
    double score = o->score, threshold = o->threshold;

    judge(a, o, &exceed, &rexceed, &below);
    a->hist = ((a->hist << 1) | (uint64_t)exceed) & mask;
    a->rhist = ((a->rhist << 1) | (uint64_t)rexceed) & mask;
    if (a->hist_len < a->cfg.n)
        a->hist_len++;
    a->last_exceeded = exceed;

    if (a->cur.active) {
        a->cur.windows++;
        if (score > a->cur.peak_score) {
            a->cur.peak_score = score;
            a->cur.peak_ms = ts_ms;
            a->cur.severity = score / a->cur.threshold;
        }
        if (o->prob > a->cur.peak_probability || (isnan(a->cur.peak_probability) &&
                                                 isfinite(o->prob)))
            a->cur.peak_probability = o->prob;
        if (exceed)
            add_share(a, o->share);
        update_top(a);
        if (below)
            a->below++;
        else
            a->below = 0;
        if (a->below >= a->cfg.m) {
            end_alert(a, ts_ms, AD_CLOSE_CLEARED);
            /* the next raise is k fresh windows, as after any other close
             * and after a restart (the history is saved only with an open
             * alert): with n > m the alert's own windows are still in the
             * last n, and one window over the threshold would raise again */
            a->hist = 0;
            a->rhist = 0;
            a->hist_len = 0;
            a->has_cooldown = a->cfg.cooldown_ms > 0;
            a->cooldown_until = ts_ms + a->cfg.cooldown_ms;
            if (out)
                *out = a->cur;
            return AD_ALERT_CLEARED;
        }
        return 0;
    }
    /* Idle: raise on a window over the raise level completing k of the
     * last n over it. */
    if (!o->band && !o->force && (!rexceed || popcount64(a->rhist) < a->cfg.k))
        return 0;
    if (a->has_cooldown && ts_ms < a->cooldown_until)
        return 0;
    a->has_cooldown = 0;
    memset(&a->cur, 0, sizeof(a->cur));
    a->seq++;
    a->cur.seq = a->seq;
    a->cur.active = 1;
    a->cur.start_ms = ts_ms;
    a->cur.end_ms = 0;
    a->cur.peak_ms = ts_ms;
    a->cur.peak_score = score;
    a->cur.threshold = threshold;
    a->cur.severity = score / threshold;
    a->cur.windows = 1;
    a->cur.probability = o->prob;
    a->cur.log_likelihood = o->log_lik;
    a->cur.peak_probability = o->prob;
    a->cur.reason = AD_CLOSE_NONE;
    a->cur.band = o->band != 0;
    /* raised by a test only when its hold decided the raise: on the score
     * (in probability mode the tests do not count), the score not over the
     * raise level */
    a->cur.by = !o->band && a->cfg.on != AD_ALERT_ON_PROBABILITY &&
                !(score > threshold * a->cfg.raise_ratio) && ad_alert_by_name(o->by) ?
                o->by : 0;
    if (o->force && o->since_ms > 0 && o->since_ms < ts_ms) {
        /* windows withheld until now: the alert is theirs, from the first */
        a->cur.start_ms = o->since_ms;
        if (o->since_thr > 0)
            a->cur.threshold = o->since_thr;
        if (o->since_peak > a->cur.peak_score) {
            a->cur.peak_score = o->since_peak;
            a->cur.peak_ms = o->since_peak_ms;
        }
        a->cur.severity = a->cur.peak_score / a->cur.threshold;
    }
    snprintf(a->cur.id, sizeof(a->cur.id), "%s-%lld-%llu", a->key,
             (long long)ts_ms, (unsigned long long)a->seq);
    memset(a->share_sum, 0, (size_t)a->F * sizeof(double));
    a->share_n = 0;
    add_share(a, o->share);
    update_top(a);
    a->below = 0;
    if (out)
        *out = a->cur;
    return AD_ALERT_RAISED;
}

const char *ad_alert_by_name(int by)
{
    return by == AD_BY_LEVEL ? "level" : by == AD_BY_BURST ? "burst" :
           by == AD_BY_NOISE ? "noise" : NULL;
}

const char *ad_alert_raised_by(const ad_alert *a)
{
    return a->band ? "band" : ad_alert_by_name(a->by);
}

int ad_alerter_step(ad_alerter *a, int64_t ts_ms, double score,
                    double threshold, const float *share, ad_alert *out)
{
    ad_alert_obs o = { score, threshold, NAN, NAN, share, 0, 0, 0, 0, 0, 0, 0, 0 };

    return ad_alerter_step_obs(a, ts_ms, &o, out);
}

int ad_alerter_close(ad_alerter *a, int64_t ts_ms, ad_close_reason reason,
                     ad_alert *out)
{
    if (!a->cur.active)
        return 0;
    end_alert(a, ts_ms, reason);
    a->hist = 0;
    a->rhist = 0;
    a->hist_len = 0;
    a->last_exceeded = 0;
    if (out)
        *out = a->cur;
    return AD_ALERT_CLEARED;
}

ad_close_reason ad_alerter_last_reason(const ad_alerter *a)
{
    return a->cur.active ? AD_CLOSE_NONE : a->cur.reason;
}

int ad_alerter_last_exceeded(const ad_alerter *a)
{
    return a->last_exceeded;
}

int ad_alerter_run_up(const ad_alerter *a)
{
    int j;

    for (j = a->hist_len - 1; j > 0; j--)
        if ((a->hist >> j) & 1)
            return j;
    return 0;
}

const ad_alert *ad_alerter_active(const ad_alerter *a)
{
    return a->cur.active ? &a->cur : NULL;
}

uint64_t ad_alerter_count(const ad_alerter *a)
{
    return a->seq;
}

void ad_alerter_reset(ad_alerter *a)
{
    a->hist = 0;
    a->rhist = 0;
    a->hist_len = 0;
    a->last_exceeded = 0;
    a->below = 0;
    a->has_cooldown = 0;
    a->cur.active = 0;
}

/* ---- save / restore ------------------------------------------------------ */

static cJSON *open_to_json(const ad_alerter *a)
{
    const ad_alert *c = &a->cur;
    cJSON *o = cJSON_CreateObject(), *tf, *ss;
    char hist[24], rhist[24];
    int i;

    if (o == NULL)
        return NULL;
    snprintf(hist, sizeof(hist), "%llx", (unsigned long long)a->hist);
    snprintf(rhist, sizeof(rhist), "%llx", (unsigned long long)a->rhist);
    if (!cJSON_AddStringToObject(o, "id", c->id) ||
        !cJSON_AddNumberToObject(o, "seq", (double)c->seq) ||
        !cJSON_AddNumberToObject(o, "start", (double)c->start_ms) ||
        !cJSON_AddNumberToObject(o, "peak_ts", (double)c->peak_ms) ||
        !ad_json_num(o, "peak_score", c->peak_score) ||
        !ad_json_num(o, "threshold", c->threshold) ||
        !ad_json_num(o, "severity", c->severity) ||
        !cJSON_AddNumberToObject(o, "windows", (double)c->windows) ||
        !ad_json_num(o, "probability", c->probability) ||
        !ad_json_num(o, "log_likelihood", c->log_likelihood) ||
        !ad_json_num(o, "peak_probability", c->peak_probability) ||
        !cJSON_AddStringToObject(o, "hist", hist) ||
        !cJSON_AddStringToObject(o, "rhist", rhist) ||
        !cJSON_AddNumberToObject(o, "hist_len", a->hist_len) ||
        !cJSON_AddNumberToObject(o, "below", a->below) ||
        !cJSON_AddNumberToObject(o, "share_n", (double)a->share_n) ||
        (c->band && !cJSON_AddTrueToObject(o, "band")) ||
        (ad_alert_by_name(c->by) &&
         !cJSON_AddStringToObject(o, "raised_by", ad_alert_by_name(c->by))) ||
        (tf = cJSON_AddArrayToObject(o, "top")) == NULL ||
        (ss = cJSON_AddArrayToObject(o, "share_sum")) == NULL)
        goto fail;
    for (i = 0; i < c->n_top; i++) {
        cJSON *t = cJSON_CreateIntArray((int[]){ c->top_feature[i] }, 1);
        if (t == NULL || !cJSON_AddItemToArray(tf, t) ||
            !cJSON_AddItemToArray(t, cJSON_CreateNumber(c->top_share[i])))
            goto fail;
    }
    for (i = 0; i < a->F; i++)
        if (!cJSON_AddItemToArray(ss, cJSON_CreateNumber(isfinite(a->share_sum[i]) ?
                                                         a->share_sum[i] : 0)))
            goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

cJSON *ad_alerter_save(const ad_alerter *a)
{
    cJSON *o = cJSON_CreateObject(), *op;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "seq", (double)a->seq))
        goto fail;
    if (a->has_cooldown) {
        if (!cJSON_AddNumberToObject(o, "cooldown_until", (double)a->cooldown_until))
            goto fail;
    } else if (!cJSON_AddNullToObject(o, "cooldown_until")) {
        goto fail;
    }
    if (!a->cur.active) {
        if (!cJSON_AddNullToObject(o, "open"))
            goto fail;
        return o;
    }
    if ((op = open_to_json(a)) == NULL)
        goto fail;
    cJSON_AddItemToObject(o, "open", op);
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* The largest saved count taken back (2^53: every whole number below is a
 * double). */
#define AD_ALERT_COUNT_MAX 9007199254740992.0
/* The largest saved time (ms, either sign) taken back: an int64_t holds it. */
#define AD_ALERT_TIME_MAX 9.2e18

/* Field k of o as a number (null -> NAN when nullable). */
static int get_num(const cJSON *o, const char *k, int nullable, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

    if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
        *v = x->valuedouble;
        return 0;
    }
    if (nullable && (x == NULL || cJSON_IsNull(x))) {
        *v = NAN;
        return 0;
    }
    return -1;
}

/* The open alert in o into *c and the clearing state into the out params.
 * resume 0 (the alert is only to be closed): a saved alert of another
 * feature count (the model changed while stopped) is read without its
 * feature shares, whose indices name the saved model's features. */
static int open_from_json(const ad_alerter *a, const cJSON *o, int resume, ad_alert *c,
                          uint64_t *hist, int *hist_len, int *below, uint64_t *share_n,
                          double *share_sum, char *err, size_t errlen)
{
    const cJSON *x, *t, *sums;
    double v[14];
    int i = 0;
    const char *bad = NULL;

    memset(c, 0, sizeof(*c));
    x = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(x) || strlen(x->valuestring) >= sizeof(c->id))
        return ad_errf(err, errlen, AD_EFORMAT, "alert.open.id: missing or too long");
    snprintf(c->id, sizeof(c->id), "%s", x->valuestring);
    if (get_num(o, bad = "seq", 0, &v[0]) || get_num(o, bad = "start", 0, &v[1]) ||
        get_num(o, bad = "peak_ts", 0, &v[2]) || get_num(o, bad = "peak_score", 1, &v[3]) ||
        get_num(o, bad = "threshold", 1, &v[4]) || get_num(o, bad = "severity", 1, &v[5]) ||
        get_num(o, bad = "windows", 0, &v[6]) || get_num(o, bad = "probability", 1, &v[7]) ||
        get_num(o, bad = "log_likelihood", 1, &v[8]) ||
        get_num(o, bad = "peak_probability", 1, &v[9]) ||
        get_num(o, bad = "hist_len", 0, &v[10]) || get_num(o, bad = "below", 0, &v[11]) ||
        get_num(o, bad = "share_n", 0, &v[12]))
        return ad_errf(err, errlen, AD_EFORMAT, "alert.open.%s: missing or not a number", bad);
    /* counts become integers: beyond AD_ALERT_COUNT_MAX a double no longer
     * holds every whole number, and a conversion out of range is undefined */
    if (v[0] < 1 || v[0] > AD_ALERT_COUNT_MAX || v[6] < 0 || v[6] > AD_ALERT_COUNT_MAX ||
        v[10] < 0 || v[10] > AD_ALERT_MAX_N || v[11] < 0 || v[11] > 1e9 ||
        v[12] < 0 || v[12] > AD_ALERT_COUNT_MAX)
        return ad_errf(err, errlen, AD_EFORMAT, "alert.open: a count is out of range");
    if (fabs(v[1]) > AD_ALERT_TIME_MAX || fabs(v[2]) > AD_ALERT_TIME_MAX)
        return ad_errf(err, errlen, AD_EFORMAT, "alert.open: a time is out of range");
    c->seq = (uint64_t)v[0];
    c->active = 1;
    c->start_ms = (int64_t)v[1];
    c->peak_ms = (int64_t)v[2];
    c->peak_score = v[3];
    c->threshold = v[4];
    c->severity = v[5];
    c->windows = (uint64_t)v[6];
    c->probability = v[7];
    c->log_likelihood = v[8];
    c->peak_probability = v[9];
    c->band = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "band"));
    /* what raised it: absent (its score; a state from before) or a name */
    x = cJSON_GetObjectItemCaseSensitive(o, "raised_by");
    c->by = 0;
    for (int b = AD_BY_LEVEL; b <= AD_BY_NOISE && cJSON_IsString(x); b++)
        if (strcmp(x->valuestring, ad_alert_by_name(b)) == 0)
            c->by = b;
    *hist_len = v[10] > a->cfg.n ? a->cfg.n : (int)v[10];   /* alert.n lowered since */
    *below = (int)v[11];
    *share_n = (uint64_t)v[12];
    x = cJSON_GetObjectItemCaseSensitive(o, "hist");
    if (!cJSON_IsString(x))
        return ad_errf(err, errlen, AD_EFORMAT, "alert.open.hist: missing");
    *hist = strtoull(x->valuestring, NULL, 16);
    sums = cJSON_GetObjectItemCaseSensitive(o, "share_sum");
    if (!resume && cJSON_IsArray(sums) && cJSON_GetArraySize(sums) != a->F)
        return 0;               /* c->n_top 0: no shares, nothing to continue */
    x = cJSON_GetObjectItemCaseSensitive(o, "top");
    cJSON_ArrayForEach(t, x) {
        const cJSON *f = cJSON_GetArrayItem(t, 0), *sh = cJSON_GetArrayItem(t, 1);
        if (i >= AD_ALERT_TOP || !cJSON_IsNumber(f) || !cJSON_IsNumber(sh) ||
            f->valuedouble < 0 || f->valuedouble >= a->F)
            return ad_errf(err, errlen, AD_EFORMAT, "alert.open.top[%d]: bad entry", i);
        c->top_feature[i] = (int)f->valuedouble;
        c->top_share[i] = sh->valuedouble;
        i++;
    }
    c->n_top = i;
    if (cJSON_GetArraySize(sums) != a->F)
        return ad_errf(err, errlen, AD_EFORMAT, "alert.open.share_sum: %d features expected",
                       a->F);
    i = 0;
    cJSON_ArrayForEach(t, sums)
        share_sum[i++] = cJSON_IsNumber(t) && isfinite(t->valuedouble) ? t->valuedouble : 0;
    return 0;
}

int ad_alerter_restore(ad_alerter *a, const cJSON *o, int resume, ad_alert *saved,
                       char *err, size_t errlen)
{
    const cJSON *op;
    double seq, cd;
    ad_alert c;
    uint64_t hist = 0, share_n = 0;
    int hist_len = 0, below = 0, rc;
    double *ss;

    if (saved)
        memset(saved, 0, sizeof(*saved));
    if (!cJSON_IsObject(o) || get_num(o, "seq", 0, &seq) || seq < 0 || seq > AD_ALERT_COUNT_MAX)
        return ad_errf(err, errlen, AD_EFORMAT, "alert.seq: missing or not a number in "
                       "0..%.0f", AD_ALERT_COUNT_MAX);
    if (get_num(o, "cooldown_until", 1, &cd) || fabs(cd) > AD_ALERT_TIME_MAX)
        return ad_errf(err, errlen, AD_EFORMAT, "alert.cooldown_until: not a number in "
                       "-%.3g..%.3g", AD_ALERT_TIME_MAX, AD_ALERT_TIME_MAX);
    op = cJSON_GetObjectItemCaseSensitive(o, "open");
    if (op != NULL && !cJSON_IsNull(op)) {
        if ((ss = calloc((size_t)a->F, sizeof(double))) == NULL)
            return ad_errf(err, errlen, AD_ENOMEM, "alerter: out of memory");
        rc = open_from_json(a, op, resume, &c, &hist, &hist_len, &below, &share_n, ss, err,
                            errlen);
        if (rc) {
            free(ss);
            return rc;
        }
        if (saved)
            *saved = c;
        if (resume) {
            uint64_t mask = a->cfg.n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << a->cfg.n) - 1);
            const cJSON *rh = cJSON_GetObjectItemCaseSensitive(op, "rhist");

            a->cur = c;
            a->hist = hist & mask;
            /* a state written before raise_ratio existed: its windows over
             * the threshold were its raise level */
            a->rhist = (cJSON_IsString(rh) ? strtoull(rh->valuestring, NULL, 16) : hist) & mask;
            a->hist_len = hist_len;
            a->last_exceeded = (int)(a->hist & 1);
            a->below = below;
            a->share_n = share_n;
            memcpy(a->share_sum, ss, (size_t)a->F * sizeof(double));
        }
        free(ss);
        if (c.seq > seq)
            seq = (double)c.seq;
    }
    if ((uint64_t)seq > a->seq)
        a->seq = (uint64_t)seq;
    if (resume && isfinite(cd)) {
        a->has_cooldown = 1;
        a->cooldown_until = (int64_t)cd;
    }
    return 0;
}

cJSON *ad_alert_to_json(const ad_alert *al, const char *stream,
                        const char *const *names)
{
    cJSON *o = cJSON_CreateObject(), *arr;
    char iso[96];
    int i;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddStringToObject(o, "id", al->id) ||
        !cJSON_AddStringToObject(o, "stream", stream ? stream : "") ||
        !cJSON_AddStringToObject(o, "state", al->active ? "raised" : "cleared") ||
        !cJSON_AddNumberToObject(o, "seq", (double)al->seq) ||
        !cJSON_AddNumberToObject(o, "start", (double)al->start_ms))
        goto fail;
    ad_iso_ms(al->start_ms, iso, sizeof(iso));
    if (!cJSON_AddStringToObject(o, "start_iso", iso))
        goto fail;
    if (al->active) {
        if (!cJSON_AddNullToObject(o, "end"))
            goto fail;
    } else {
        if (!cJSON_AddNumberToObject(o, "end", (double)al->end_ms))
            goto fail;
        ad_iso_ms(al->end_ms, iso, sizeof(iso));
        if (!cJSON_AddStringToObject(o, "end_iso", iso))
            goto fail;
    }
    if (!cJSON_AddNumberToObject(o, "peak_score", al->peak_score) ||
        !cJSON_AddNumberToObject(o, "peak_ts", (double)al->peak_ms) ||
        !cJSON_AddNumberToObject(o, "threshold", al->threshold) ||
        !cJSON_AddNumberToObject(o, "severity", al->severity) ||
        !cJSON_AddNumberToObject(o, "windows", (double)al->windows) ||
        !ad_json_num(o, "probability", al->probability) ||
        !ad_json_num(o, "log_likelihood", al->log_likelihood) ||
        !ad_json_num(o, "peak_probability", al->peak_probability))
        goto fail;
    /* raised by a lasting run between the threshold and the raise level,
     * or on a window under the threshold that a test held */
    if (ad_alert_raised_by(al) &&
        !cJSON_AddStringToObject(o, "raised_by", ad_alert_raised_by(al)))
        goto fail;
    if (!al->active &&
        !cJSON_AddStringToObject(o, "reason", ad_close_reason_name(al->reason ? al->reason :
                                                                   AD_CLOSE_CLEARED)))
        goto fail;
    arr = cJSON_AddArrayToObject(o, "top_features");
    if (arr == NULL)
        goto fail;
    for (i = 0; i < al->n_top; i++) {
        cJSON *t = cJSON_CreateObject();
        char nm[32];
        const char *name;
        if (t == NULL)
            goto fail;
        cJSON_AddItemToArray(arr, t);
        if (names) {
            name = names[al->top_feature[i]];
        } else {
            snprintf(nm, sizeof(nm), "f%d", al->top_feature[i]);
            name = nm;
        }
        if (!cJSON_AddStringToObject(t, "name", name) ||
            !cJSON_AddNumberToObject(t, "share", al->top_share[i]))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
