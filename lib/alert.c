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

struct ad_alerter {
    ad_alert_cfg cfg;
    char *key;
    int F;
    uint64_t hist;          /* bit 0 = last window exceeded */
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
    c->cooldown_ms = 0;
    c->on = AD_ALERT_ON_SCORE;
    c->level = 0.9999;
    c->accept_after = 0;
    c->accept_spread = 3.0;
}

const char *ad_close_reason_name(ad_close_reason r)
{
    switch (r) {
    case AD_CLOSE_NONE: return "none";
    case AD_CLOSE_CLEARED: return "cleared";
    case AD_CLOSE_ACCEPTED: return "accepted";
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
    if (c->cooldown_ms < 0)
        return ad_errf(err, errlen, AD_EINVAL, "alert.cooldown_ms: must be >= 0");
    if ((unsigned)c->on > AD_ALERT_ON_PROBABILITY)
        return ad_errf(err, errlen, AD_EINVAL, "alert.on: unknown (%d)", (int)c->on);
    if (!(c->level > 0 && c->level < 1))
        return ad_errf(err, errlen, AD_EINVAL,
                       "alert.probability_level: must be in (0,1) (got %g)", c->level);
    if (c->accept_after < 0 || c->accept_after > 1000000)
        return ad_errf(err, errlen, AD_EINVAL, "alert.accept_after: must be 0..1000000 (got %d)",
                       c->accept_after);
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

/* Where the window stands for the rules: exceeds, and below the clear level. */
static void judge(const ad_alerter *a, const ad_alert_obs *o, int *exceed, int *below)
{
    if (a->cfg.on == AD_ALERT_ON_PROBABILITY) {
        double s_level = -log1p(-a->cfg.level), s;
        s = isfinite(o->log_lik) || o->log_lik == -INFINITY ? -o->log_lik :
            isfinite(o->prob) ? -log1p(-o->prob) : 0;
        *exceed = s > s_level;
        *below = s < s_level * a->cfg.clear_ratio;
    } else {
        *exceed = o->score > o->threshold;
        *below = o->score < o->threshold * a->cfg.clear_ratio;
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
    int exceed, below;
    uint64_t mask = a->cfg.n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << a->cfg.n) - 1);
    double score = o->score, threshold = o->threshold;

    judge(a, o, &exceed, &below);
    a->hist = ((a->hist << 1) | (uint64_t)exceed) & mask;
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
            a->has_cooldown = a->cfg.cooldown_ms > 0;
            a->cooldown_until = ts_ms + a->cfg.cooldown_ms;
            if (out)
                *out = a->cur;
            return AD_ALERT_CLEARED;
        }
        return 0;
    }
    /* Idle: raise on an exceeding window completing k of the last n. */
    if (!exceed || popcount64(a->hist) < a->cfg.k)
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

int ad_alerter_step(ad_alerter *a, int64_t ts_ms, double score,
                    double threshold, const float *share, ad_alert *out)
{
    ad_alert_obs o = { score, threshold, NAN, NAN, share };

    return ad_alerter_step_obs(a, ts_ms, &o, out);
}

int ad_alerter_close(ad_alerter *a, int64_t ts_ms, ad_close_reason reason,
                     ad_alert *out)
{
    if (!a->cur.active)
        return 0;
    end_alert(a, ts_ms, reason);
    a->hist = 0;
    a->hist_len = 0;
    a->last_exceeded = 0;
    if (out)
        *out = a->cur;
    return AD_ALERT_CLEARED;
}

int ad_alerter_last_exceeded(const ad_alerter *a)
{
    return a->last_exceeded;
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
    a->hist_len = 0;
    a->last_exceeded = 0;
    a->below = 0;
    a->has_cooldown = 0;
    a->cur.active = 0;
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

/* ---- state that moves with a stream --------------------------------------- */

static void put_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static double get_num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : cJSON_IsNull(x) ? NAN : dflt;
}

cJSON *ad_alerter_save(const ad_alerter *a)
{
    cJSON *o = cJSON_CreateObject(), *c, *tf;
    const ad_alert *al = &a->cur;
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "seq", (double)a->seq);
    cJSON_AddNumberToObject(o, "hist", (double)(a->hist & ((1ULL << 52) - 1)));
    cJSON_AddNumberToObject(o, "hist_len", a->hist_len < 52 ? a->hist_len : 52);
    cJSON_AddNumberToObject(o, "last_exceeded", a->last_exceeded);
    cJSON_AddNumberToObject(o, "below", a->below);
    if (a->has_cooldown)
        cJSON_AddNumberToObject(o, "cooldown_until", (double)a->cooldown_until);
    if (!al->active)
        return o;
    c = cJSON_AddObjectToObject(o, "active");
    if (!c) { cJSON_Delete(o); return NULL; }
    cJSON_AddStringToObject(c, "id", al->id);
    cJSON_AddNumberToObject(c, "seq", (double)al->seq);
    cJSON_AddNumberToObject(c, "start_ms", (double)al->start_ms);
    cJSON_AddNumberToObject(c, "peak_ms", (double)al->peak_ms);
    put_num(c, "peak_score", al->peak_score);
    put_num(c, "threshold", al->threshold);
    put_num(c, "severity", al->severity);
    cJSON_AddNumberToObject(c, "windows", (double)al->windows);
    put_num(c, "probability", al->probability);
    put_num(c, "log_likelihood", al->log_likelihood);
    put_num(c, "peak_probability", al->peak_probability);
    tf = cJSON_AddArrayToObject(c, "share_sum");
    for (int i = 0; tf && i < a->F; i++)
        cJSON_AddItemToArray(tf, cJSON_CreateNumber(a->share_sum[i]));
    cJSON_AddNumberToObject(c, "share_n", (double)a->share_n);
    return o;
}

int ad_alerter_restore(ad_alerter *a, const cJSON *o, char *err, size_t errlen)
{
    const cJSON *c, *x, *ss;
    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EFORMAT, "alert state: not an object");
    ad_alerter_reset(a);
    a->seq = (uint64_t)get_num(o, "seq", 0);
    a->hist = (uint64_t)get_num(o, "hist", 0);
    a->hist_len = (int)get_num(o, "hist_len", 0);
    a->last_exceeded = (int)get_num(o, "last_exceeded", 0);
    a->below = (int)get_num(o, "below", 0);
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "cooldown_until"))) {
        a->has_cooldown = 1;
        a->cooldown_until = (int64_t)get_num(o, "cooldown_until", 0);
    }
    if (!(c = cJSON_GetObjectItemCaseSensitive(o, "active")))
        return 0;
    x = cJSON_GetObjectItemCaseSensitive(c, "id");
    ss = cJSON_GetObjectItemCaseSensitive(c, "share_sum");
    if (!cJSON_IsString(x) || strlen(x->valuestring) >= sizeof a->cur.id ||
        !cJSON_IsArray(ss) || cJSON_GetArraySize(ss) != a->F) {
        ad_alerter_reset(a);
        return ad_errf(err, errlen, AD_EFORMAT, "alert state: open alert malformed");
    }
    memset(&a->cur, 0, sizeof a->cur);
    snprintf(a->cur.id, sizeof a->cur.id, "%s", x->valuestring);
    a->cur.seq = (uint64_t)get_num(c, "seq", 0);
    a->cur.start_ms = (int64_t)get_num(c, "start_ms", 0);
    a->cur.peak_ms = (int64_t)get_num(c, "peak_ms", 0);
    a->cur.peak_score = get_num(c, "peak_score", NAN);
    a->cur.threshold = get_num(c, "threshold", NAN);
    a->cur.severity = get_num(c, "severity", NAN);
    a->cur.windows = (uint64_t)get_num(c, "windows", 0);
    a->cur.probability = get_num(c, "probability", NAN);
    a->cur.log_likelihood = get_num(c, "log_likelihood", NAN);
    a->cur.peak_probability = get_num(c, "peak_probability", NAN);
    for (int i = 0; i < a->F; i++)
        a->share_sum[i] = cJSON_GetArrayItem(ss, i)->valuedouble;
    a->share_n = (uint64_t)get_num(c, "share_n", 0);
    update_top(a);
    a->cur.active = 1;
    return 0;
}
