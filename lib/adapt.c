/*
 * adapt.c - continual learning with a shadow model: the normal set (ring of
 * raw windows judged normal, behind a pending queue that waits `margin`
 * windows for an alert), the true-alert peaks, the fine-tuning schedule and
 * job, the shadow accumulators and the promote/reject decision and events
 * (persistence and JSON: adapt_state.c). See adapt.h for the protocol.
 */
#include "adapt.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "adapt_int.h"

/* ------------------------------------------------------------------------ */
/* config                                                                    */

void ad_adapt_cfg_default(ad_adapt_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->enabled = 0;
    c->every_windows = 10000;
    c->every_hours = 24.0;
    c->normal_windows = 500;
    c->min_windows = 200;
    c->normal_stride = 1;
    c->margin = 50;
    c->shadow_windows = 500;
    c->min_gain = 0.0;
    c->compare = AD_ADAPT_MEAN;
    c->true_alerts = 8;
    c->epochs = 3;
    c->lr = 1e-3;
    c->batch_size = 32;
    c->max_seconds = 0.0;
    c->seed = 1;
    c->reload_shadow = 0;
    c->drift_ratio = 2.0;
}

static int check_ms(const char *key, int64_t v, char *err, size_t errlen)
{
    if (v < 0 || v > AD_ADAPT_MAX_MS)
        return ad_errf(err, errlen, AD_EINVAL, "%s: must be in 0..%lld (a year; got %lld)",
                       key, (long long)AD_ADAPT_MAX_MS, (long long)v);
    return 0;
}

int ad_adapt_cfg_check(const ad_adapt_cfg *c, char *err, size_t errlen)
{
    int rc;

    if (c->every_windows < 0 || c->every_windows > 1000000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.every_windows: must be in 0..1000000000 (got %d)",
                       c->every_windows);
    if (!(c->every_hours >= 0.0 && c->every_hours <= 8760.0))
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.every_hours: must be in 0..8760 (got %g)", c->every_hours);
    if (c->every_windows == 0 && c->every_hours == 0.0)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.every_windows and adapt.every_hours: both 0, the "
                       "schedule would never fire (set one > 0)");
    if (c->normal_windows < 1 || c->normal_windows > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.normal_windows: must be in 1..1000000 (got %d)",
                       c->normal_windows);
    if (c->min_windows < 1 || c->min_windows > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.min_windows: must be in 1..1000000 (got %d)", c->min_windows);
    if (c->normal_ms == 0 && c->min_ms == 0 && c->min_windows > c->normal_windows)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.min_windows: must be in 1..adapt.normal_windows (%d) (got %d)",
                       c->normal_windows, c->min_windows);
    if (c->normal_stride < 1 || c->normal_stride > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.normal_stride: must be in 1..1000000 (got %d)",
                       c->normal_stride);
    if (c->margin_min < 0 || c->margin_min > 100000)
        return ad_errf(err, errlen, AD_EINVAL, "adapt: margin floor %d out of 0..100000",
                       c->margin_min);
    if (c->margin < 0 || c->margin > 100000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.margin: must be in 0..100000 windows (got %d)", c->margin);
    if (c->shadow_windows < 1 || c->shadow_windows > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.shadow_windows: must be in 1..1000000 (got %d)",
                       c->shadow_windows);
    if ((rc = check_ms("adapt.normal_ms", c->normal_ms, err, errlen)) != 0 ||
        (rc = check_ms("adapt.min_ms", c->min_ms, err, errlen)) != 0 ||
        (rc = check_ms("adapt.margin_ms", c->margin_ms, err, errlen)) != 0 ||
        (rc = check_ms("adapt.shadow_ms", c->shadow_ms, err, errlen)) != 0)
        return rc;
    if (c->normal_ms > 0 && c->min_ms > c->normal_ms)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.min_ms: must be in 0..adapt.normal_ms (%lld) (got %lld)",
                       (long long)c->normal_ms, (long long)c->min_ms);
    if (!(c->min_gain >= 0.0 && c->min_gain < 1.0))
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.min_gain: must be in [0, 1) (got %g)", c->min_gain);
    if (c->compare != AD_ADAPT_MEAN && c->compare != AD_ADAPT_MEDIAN)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.compare: must be \"mean\" or \"median\"");
    if (c->true_alerts < 0 || c->true_alerts > 64)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.true_alerts: must be in 0..64 (got %d)", c->true_alerts);
    if (c->epochs < 1 || c->epochs > 1000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.epochs: must be in 1..1000 (got %d)", c->epochs);
    if (!(c->lr > 0.0 && c->lr <= 1.0))
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.lr: must be in (0, 1] (got %g)", c->lr);
    if (c->batch_size < 1 || c->batch_size > 4096)
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.batch_size: must be in 1..4096 (got %d)", c->batch_size);
    if (!(c->max_seconds >= 0.0 && c->max_seconds < 1e9))
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.max_seconds: must be >= 0 (got %g)", c->max_seconds);
    if (!(c->drift_ratio == 0.0 || (c->drift_ratio > 1.0 && c->drift_ratio <= 1e6)))
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt.drift_ratio: must be 0 (off) or in (1, 1e6] (got %g)",
                       c->drift_ratio);
    return 0;
}

int ad_adapt_margin_after(const ad_adapt_cfg *c)
{
    return c->margin > c->margin_min ? c->margin : c->margin_min;
}

int ad_adapt_cfg_in_data_time(const ad_adapt_cfg *c)
{
    return c->normal_ms > 0 || c->min_ms > 0 || c->margin_ms > 0 || c->shadow_ms > 0;
}

/* ms as a count of windows of w ms, rounded, within lo..hi; *clamped set
 * when above hi. */
static int ms_to_windows(int64_t ms, double w, int lo, int hi, int *clamped)
{
    double n = floor((double)ms / w + 0.5);

    if (n > hi) {
        *clamped = 1;
        return hi;
    }
    return n < lo ? lo : (int)n;
}

int ad_adapt_cfg_resolve(ad_adapt_cfg *c, double window_ms, char *note, size_t notelen)
{
    int hi_n = 0, hi_min = 0, hi_m = 0, hi_s = 0, fl = 0, len = 0, k;

    if (note && notelen)
        note[0] = '\0';
    if (!(window_ms > 0))
        return 0;
    /* the normal set keeps one window in normal_stride: it spans
     * normal_ms of data with normal_ms / (period x stride) windows */
    if (c->normal_ms > 0)
        c->normal_windows = ms_to_windows(c->normal_ms, window_ms * c->normal_stride, 1,
                                          1000000, &hi_n);
    if (c->min_ms > 0)
        c->min_windows = ms_to_windows(c->min_ms, window_ms * c->normal_stride, 1, 1000000,
                                       &hi_min);
    if (c->margin_ms > 0)
        c->margin = ms_to_windows(c->margin_ms, window_ms, 0, 100000, &hi_m);
    if (c->shadow_ms > 0)
        c->shadow_windows = ms_to_windows(c->shadow_ms, window_ms, 1, 1000000, &hi_s);
#define NOTE(...) do {                                                        \
        if (note && (size_t)len < notelen &&                                  \
            (k = snprintf(note + len, notelen - (size_t)len, __VA_ARGS__)) > 0) \
            len += k;                                                         \
    } while (0)
    if (hi_n)
        NOTE("adapt.normal_ms (%lld) is more than 1000000 windows: 1000000; ",
             (long long)c->normal_ms);
    if (hi_min)
        NOTE("adapt.min_ms (%lld) is more than 1000000 windows: 1000000; ",
             (long long)c->min_ms);
    if (hi_m)
        NOTE("adapt.margin_ms (%lld) is more than 100000 windows: 100000; ",
             (long long)c->margin_ms);
    if (hi_s)
        NOTE("adapt.shadow_ms (%lld) is more than 1000000 windows: 1000000; ",
             (long long)c->shadow_ms);
    /* A slow stream's day can be one window, and a fine-tune on one window
     * learns that window: in data time the set and its minimum are at
     * least AD_ADAPT_NORMAL_MIN windows (a count is as given). */
    if (c->normal_ms > 0 && c->normal_windows < AD_ADAPT_NORMAL_MIN) {
        NOTE("adapt.normal_ms (%lld ms) is %d windows at this stream's rate: a fine-tune "
             "would learn those few; %d used; ", (long long)c->normal_ms, c->normal_windows,
             AD_ADAPT_NORMAL_MIN);
        c->normal_windows = AD_ADAPT_NORMAL_MIN;
        fl = 1;
    }
    if (c->min_ms > 0 && c->min_windows < AD_ADAPT_NORMAL_MIN &&
        c->min_windows < c->normal_windows) {
        int mw = c->normal_windows < AD_ADAPT_NORMAL_MIN ? c->normal_windows
                                                          : AD_ADAPT_NORMAL_MIN;
        NOTE("adapt.min_ms (%lld ms) is %d windows: %d used; ", (long long)c->min_ms,
             c->min_windows, mw);
        c->min_windows = mw;
        fl = 1;
    }
    /* Both in the same form were checked with the config (and rounding
     * keeps min_ms <= normal_ms); one in data time, one a count can only
     * be compared now. A normal set smaller than min would never be due. */
    if (c->min_windows > c->normal_windows) {
        if (c->min_ms > 0)
            NOTE("adapt.min_ms (%lld ms = %d windows) is more than adapt.normal_windows "
                 "(%d): %d used; ", (long long)c->min_ms, c->min_windows, c->normal_windows,
                 c->normal_windows);
        else
            NOTE("adapt.min_windows (%d) is more than adapt.normal_ms (%lld ms = %d "
                 "windows): %d used; ", c->min_windows, (long long)c->normal_ms,
                 c->normal_windows, c->normal_windows);
        c->min_windows = c->normal_windows;
        hi_min = 1;
    }
#undef NOTE
    if (note && len >= 2 && (size_t)len < notelen)
        note[len - 2] = '\0';          /* the last "; " */
    return hi_n || hi_min || hi_m || hi_s || fl;
}

const char *ad_adapt_stat_name(ad_adapt_stat s)
{
    return s == AD_ADAPT_MEDIAN ? "median" : "mean";
}

int ad_adapt_stat_from_name(const char *s)
{
    if (s && strcmp(s, "mean") == 0)
        return AD_ADAPT_MEAN;
    if (s && strcmp(s, "median") == 0)
        return AD_ADAPT_MEDIAN;
    return -1;
}

const char *ad_adapt_ev_name(ad_adapt_ev_type t)
{
    switch (t) {
    case AD_ADAPT_EV_TRAIN_READY: return "adapt_train_ready";
    case AD_ADAPT_EV_SHADOW: return "adapt_shadow";
    case AD_ADAPT_EV_PROMOTED: return "adapt_promoted";
    case AD_ADAPT_EV_REJECTED: return "adapt_rejected";
    case AD_ADAPT_EV_TRAIN_FAILED: return "adapt_train_failed";
    case AD_ADAPT_EV_DRIFT: return "adapt_drift";
    case AD_ADAPT_EV_WAITING: return "adapt_waiting";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* life cycle                                                                */

/* The normal set of c's normal_windows windows of wsz values must stay
 * addressable and within AD_ADAPT_MAX_FLOATS; *bytes: its size. The
 * message names the key the count came from (in data time: the ms and the
 * window period too). */
static int nset_size(const ad_adapt_cfg *c, int T, int F, double window_ms, size_t *bytes,
                     char *err, size_t errlen)
{
    size_t wsz = (size_t)T * (size_t)F, pend;

    /* the pending queue (margin + 1 windows) counts towards the limit too */
    if (!ad_mul_size(wsz, (size_t)c->normal_windows, bytes) &&
        !ad_mul_size(wsz, (size_t)c->margin + 1, &pend) &&
        *bytes <= AD_ADAPT_MAX_FLOATS && pend <= AD_ADAPT_MAX_FLOATS - *bytes &&
        !ad_mul_size(*bytes, sizeof(float), bytes))
        return 0;
    if (c->normal_ms > 0)
        return ad_errf(err, errlen, AD_ERANGE,
                       "adapt.normal_ms: %lld ms are %d windows (a window every %.4g s) "
                       "of %dx%d, with the pending queue more than the limit of %lu "
                       "stored values",
                       (long long)c->normal_ms, c->normal_windows, window_ms / 1000.0, T, F,
                       (unsigned long)AD_ADAPT_MAX_FLOATS);
    return ad_errf(err, errlen, AD_ERANGE,
                   "adapt.normal_windows: %d windows of %dx%d exceed (with the pending "
                   "queue) the limit of %lu stored values", c->normal_windows, T, F,
                   (unsigned long)AD_ADAPT_MAX_FLOATS);
}

/* Allocate what the counts of c size (normal set, pending queue, shadow
 * accumulators) and make c the settings in effect; on failure nothing
 * changes. The learner is resolved from then on. */
static int alloc_counts(ad_adapt *a, const ad_adapt_cfg *c, double window_ms,
                        char *err, size_t errlen)
{
    size_t bytes, ncap = (size_t)c->normal_windows, pcap = (size_t)c->margin + 1;
    size_t scap = (size_t)c->shadow_windows;
    float *nset, *pwin;
    int64_t *nts;
    pend_ent *pend;
    double *sl, *sc;
    int64_t *st;
    unsigned char *sr;
    int rc;

    if ((rc = nset_size(c, a->T, a->F, window_ms, &bytes, err, errlen)) != 0)
        return rc;
    nset = malloc(bytes);
    nts = calloc(ncap, sizeof(int64_t));
    pend = calloc(pcap, sizeof(pend_ent));
    pwin = calloc(pcap * a->wsz, sizeof(float));
    sl = calloc(scap, sizeof(double));
    sc = calloc(scap, sizeof(double));
    sr = calloc(scap, 1);
    st = calloc(scap, sizeof(int64_t));
    if (!nset || !nts || !pend || !pwin || !sl || !sc || !sr || !st) {
        free(nset);
        free(nts);
        free(pend);
        free(pwin);
        free(sl);
        free(sc);
        free(sr);
        free(st);
        return ad_errf(err, errlen, AD_ENOMEM,
                       "adapt: out of memory (normal set of %d windows of %dx%d)",
                       c->normal_windows, a->T, a->F);
    }
    a->nset = nset;
    a->nts = nts;
    a->pend = pend;
    a->pwin = pwin;
    a->sh_live = sl;
    a->sh_cand = sc;
    a->sh_reg = sr;
    a->sh_ts = st;
    a->ncap = ncap;
    a->pcap = pcap;
    a->sh_cap = scap;
    a->cfg = *c;
    a->resolved = 1;
    return 0;
}

int ad_adapt_new(ad_adapt **out, const ad_adapt_cfg *cfg, int T, int F,
                 ad_metric metric, double smooth_alpha, const ad_thr_cfg *thr,
                 char *err, size_t errlen)
{
    ad_adapt *a;
    size_t wsz, bytes;
    int rc;

    *out = NULL;
    if ((rc = ad_adapt_cfg_check(cfg, err, errlen)) != 0)
        return rc;

    if (T < 1 || T > AD_MAX_WINDOW || F < 1 || F > AD_MAX_FEATURES)
        return ad_errf(err, errlen, AD_EINVAL, "adapt: window %dx%d out of range", T, F);
    if (!(smooth_alpha > 0.0 && smooth_alpha <= 1.0))
        return ad_errf(err, errlen, AD_EINVAL,
                       "adapt: smooth_alpha must be in (0, 1] (got %g)", smooth_alpha);
    if (thr == NULL || (rc = ad_thr_cfg_check(thr, err, errlen)) != 0)
        return thr ? rc : ad_errf(err, errlen, AD_EINVAL, "adapt: no threshold settings");
    wsz = (size_t)T * (size_t)F;
    /* The normal set is the large block: refuse what cannot be addressed
     * (a count in data time is checked when it is known). */
    if (cfg->normal_ms == 0 && (rc = nset_size(cfg, T, F, 0, &bytes, err, errlen)) != 0)
        return rc;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "adapt: out of memory");
    a->cfg = *cfg;
    a->thr = *thr;
    a->thr.adapt = 0;
    a->metric = metric;
    a->alpha = smooth_alpha;
    a->T = T;
    a->F = F;
    a->wsz = wsz;
    a->tacap = (size_t)cfg->true_alerts;
    a->sched_start = SCHED_UNSET;
    a->last_ts = SCHED_UNSET;
    a->ref_top = -1;
    a->ref_base_ts = INT64_MIN;
    a->tmp = calloc(wsz, sizeof(float));
    a->peak = calloc(wsz, sizeof(float));
    a->ta = calloc(a->tacap ? a->tacap : 1, sizeof(true_alert));
    a->tawin = calloc((a->tacap ? a->tacap : 1) * wsz, sizeof(float));
    if (!a->tmp || !a->peak || !a->ta || !a->tawin) {
        ad_adapt_free(a);
        return ad_errf(err, errlen, AD_ENOMEM, "adapt: out of memory");
    }
    if (ad_adapt_cfg_in_data_time(cfg)) {
        /* unresolved: the counts given in data time read 0 until known;
         * the clean windows offered until then are held (early_push) */
        if (cfg->normal_ms > 0)
            a->cfg.normal_windows = 0;
        if (cfg->min_ms > 0)
            a->cfg.min_windows = 0;
        if (cfg->margin_ms > 0)
            a->cfg.margin = 0;
        if (cfg->shadow_ms > 0)
            a->cfg.shadow_windows = 0;
    } else if ((rc = alloc_counts(a, cfg, 0, err, errlen)) != 0) {
        ad_adapt_free(a);
        return rc;
    }
    a->given = *cfg;
    *out = a;
    return 0;
}

static void early_release(ad_adapt *a);
static void early_free(ad_adapt *a, int off);

int ad_adapt_shadow_need(const ad_thr_cfg *thr)
{
    double n;

    if (thr->method == AD_THR_FIXED || thr->method == AD_THR_MODEL)
        return 0;
    n = thr->min_samples;
    /* pot: 5 peaks over the pot_init quantile (threshold.c) */
    if (thr->method == AD_THR_POT && thr->pot_init < 1 && ceil(5.0 / (1.0 - thr->pot_init)) > n)
        n = ceil(5.0 / (1.0 - thr->pot_init));
    return n > 1e7 ? 10000000 : (int)n;
}

int ad_adapt_resolve(ad_adapt *a, double window_ms, char *note, size_t notelen,
                     char *err, size_t errlen)
{
    ad_adapt_cfg c;
    uint64_t since;
    int64_t need;
    int rc;

    if (note && notelen)
        note[0] = '\0';
    if (a == NULL || !(window_ms > 0) || !isfinite(window_ms))
        return ad_errf(err, errlen, AD_EINVAL, "adapt: no window period to resolve with");
    if (a->resolved)
        return 0;
    c = a->given;
    ad_adapt_cfg_resolve(&c, window_ms, note, notelen);
    /* a slow stream's shadow span may be a few windows: the candidate's
     * threshold is fitted on the span's normal windows, and a decision
     * needs half of the span normal (decide), so twice that many */
    need = 2 * ad_adapt_shadow_need(&a->thr);
    if (need > 1000000)
        need = 1000000;
    if (c.shadow_ms > 0 && c.shadow_windows < need) {
        size_t l = note ? strlen(note) : 0;

        if (note && l + 2 < notelen)
            snprintf(note + l, notelen - l, "%sadapt.shadow_ms (%lld ms) is %d windows at this "
                     "stream's rate, fewer than twice the %d normal windows a candidate's "
                     "threshold is fitted on (calibration.min_samples%s): %d used",
                     l ? "; " : "", (long long)c.shadow_ms, c.shadow_windows, (int)(need / 2),
                     a->thr.method == AD_THR_POT ? ", pot_init" : "", (int)need);
        c.shadow_windows = (int)need;
    }
    if ((rc = alloc_counts(a, &c, window_ms, err, errlen)) != 0) {
        early_free(a, 1);           /* never resolved: nothing more is held */
        return rc;
    }
    /* a restored normal set: older than the windows held since */
    adapt_normal_take(a);
    /* an alert cleared fewer than margin windows ago still excludes the
     * windows up to its margin, as it would have with the count known */
    if (!a->in_alert && a->cleared_at > 0) {
        int after = ad_adapt_margin_after(&c);

        since = a->offered - (a->cleared_at - 1);
        a->post_clear = since < (uint64_t)after ? after - (int)since : 0;
    }
    early_release(a);
    return 0;
}

int ad_adapt_resolved(const ad_adapt *a)
{
    return a != NULL && a->resolved;
}

const ad_adapt_cfg *ad_adapt_get_cfg(const ad_adapt *a)
{
    return &a->cfg;
}

void ad_adapt_free(ad_adapt *a)
{
    if (a == NULL)
        return;
    free(a->early);
    free(a->ewin);
    free(a->nset);
    free(a->nts);
    free(a->pend);
    free(a->pwin);
    free(a->tmp);
    free(a->peak);
    free(a->ta);
    free(a->tawin);
    free(a->awin);
    free(a->ats);
    free(a->sh_live);
    free(a->sh_cand);
    free(a->sh_reg);
    free(a->sh_ts);
    ad_model_free(a->ref);
    free(a->ref_base_f);
    ad_model_free(a->cand);
    ad_model_free(a->decided);
    cJSON_Delete(a->rest_normal);
    cJSON_Delete(a->rest_shadow);
    free(a);
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

void ad_adapt_unscale(const ad_model *m, const float *scaled, float *raw,
                      size_t rows)
{
    size_t r, f, F = (size_t)m->n_features;

    switch (m->scaler) {
    case AD_SCALER_STANDARD:
        for (r = 0; r < rows; r++)
            for (f = 0; f < F; f++)
                raw[r * F + f] = scaled[r * F + f] * m->scale_b[f] + m->scale_a[f];
        break;
    case AD_SCALER_MINMAX:
        for (r = 0; r < rows; r++)
            for (f = 0; f < F; f++)
                raw[r * F + f] = scaled[r * F + f] *
                                 (m->scale_b[f] - m->scale_a[f]) + m->scale_a[f];
        break;
    default:
        if (raw != scaled)
            memmove(raw, scaled, rows * F * sizeof(float));
        break;
    }
}

static void queue_event(ad_adapt *a, const ad_adapt_event *ev)
{
    if (a->evn == AD_ADAPT_EVENTS) {    /* drop the oldest */
        a->evh = (a->evh + 1) % AD_ADAPT_EVENTS;
        a->evn--;
    }
    a->evq[(a->evh + a->evn) % AD_ADAPT_EVENTS] = *ev;
    a->evn++;
}

int ad_adapt_poll_event(ad_adapt *a, ad_adapt_event *ev)
{
    if (a == NULL || a->evn == 0)
        return 0;
    *ev = a->evq[a->evh];
    a->evh = (a->evh + 1) % AD_ADAPT_EVENTS;
    a->evn--;
    return 1;
}

static void event_init(const ad_adapt *a, ad_adapt_event *ev, ad_adapt_ev_type t,
                       int64_t ts)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = t;
    ev->ts_ms = ts;
    ev->attempt = a->attempt_cur;
    ev->origin = a->origin;
    ev->compare = a->cfg.compare;
    ev->live_error = ev->cand_error = ev->gain = NAN;
    ev->cand_threshold = ev->min_alert_ratio = NAN;
    ev->cand_fit = ev->hold_threshold = NAN;
    ev->regimes_kept = ev->regimes_ended = -1;
    ev->train_loss = ev->train_seconds = NAN;
    ev->min_gain = a->cfg.min_gain;
    if (a->cand)
        memcpy(ev->model_id, a->cand->id, sizeof(ev->model_id));
    ev->train_windows = a->train_windows;
    ev->ref_error = a->ref_base_f ? a->ref_err : NAN;
    ev->ref_ratio = a->ref_base_f ? a->ref_ratio : NAN;
    ev->ref_feature = a->ref_base_f ? a->ref_top : -1;
    ev->ref_feature_ratio = a->ref_base_f ? a->ref_top_ratio : NAN;
    ev->ref_since = a->ref_base_f ? a->ref_base_ts : 0;
    if (a->have_rep) {
        ev->epochs_run = a->rep.epochs_run;
        ev->train_loss = a->rep.train_loss;
        ev->train_seconds = a->rep.seconds;
    }
}

void ad_adapt_waiting_event(const ad_adapt *a, ad_adapt_event *ev, const char *model_id,
                            const char *why, int64_t ts)
{
    event_init(a, ev, AD_ADAPT_EV_WAITING, ts);
    ev->attempt = 0;                /* no fine-tune of its own */
    ev->origin = AD_ADAPT_RELOAD;
    ev->train_windows = 0;
    ev->epochs_run = 0;
    ev->train_loss = ev->train_seconds = NAN;
    snprintf(ev->model_id, sizeof(ev->model_id), "%s", model_id ? model_id : "");
    snprintf(ev->reason, sizeof(ev->reason), "%s", why ? why : "");
}

static void sched_reset(ad_adapt *a)
{
    a->sched_windows = 0;
    a->sched_start = SCHED_UNSET;
    a->ready = 0;
}

/* Mean or median of v[0..n-1] (n >= 1); work: n doubles of scratch. */
static double stat_of(const double *v, size_t n, ad_adapt_stat s, double *work)
{
    double sum = 0.0;
    size_t i;

    if (s == AD_ADAPT_MEDIAN) {
        memcpy(work, v, n * sizeof(double));
        return ad_quantile(work, n, 0.5);
    }
    for (i = 0; i < n; i++)
        sum += v[i];
    return sum / (double)n;
}

/* ------------------------------------------------------------------------ */
/* normal set and pending queue                                              */

static void nset_push(ad_adapt *a, const float *win, int64_t ts)
{
    size_t slot;

    if (a->ncap == 0)           /* unresolved: nothing is kept */
        return;
    if (a->nlen < a->ncap) {
        slot = (a->nhead + a->nlen) % a->ncap;
        a->nlen++;
    } else {
        slot = a->nhead;
        a->nhead = (a->nhead + 1) % a->ncap;
    }
    memcpy(a->nset + slot * a->wsz, win, a->wsz * sizeof(float));
    a->nts[slot] = ts;
}

static void admit(ad_adapt *a, const pend_ent *e, const float *win)
{
    a->admitted++;
    if (a->stride_ctr++ % (uint64_t)a->cfg.normal_stride == 0 && !e->nowin)
        nset_push(a, win, e->ts);
    if (e->shadow && e->shadow == a->shadow_gen && a->cand) {
        a->sh_resolved++;
        if (a->sh_n < a->sh_cap) {
            a->sh_live[a->sh_n] = e->live;
            a->sh_cand[a->sh_n] = e->cand;
            a->sh_reg[a->sh_n] = e->regime != 0;
            a->sh_ts[a->sh_n] = e->ts;
            a->sh_n++;
        }
    }
}

/* Admit the oldest pending entry. */
static void admit_oldest(ad_adapt *a)
{
    admit(a, &a->pend[a->phead], a->pwin + a->phead * a->wsz);
    a->phead = (a->phead + 1) % a->pcap;
    a->plen--;
}

static void push_pending(ad_adapt *a, const float *raw, const ad_adapt_obs *o,
                         uint64_t shadow)
{
    size_t slot;

    if (a->plen == a->pcap)     /* cannot happen with cap margin+1; stay safe */
        admit_oldest(a);
    slot = (a->phead + a->plen) % a->pcap;
    a->pend[slot].seq = a->offered;
    a->pend[slot].ts = o->ts_ms;
    a->pend[slot].live = o->live_score;
    a->pend[slot].cand = o->cand_score;
    a->pend[slot].shadow = shadow;
    a->pend[slot].regime = o->regime;
    a->pend[slot].nowin = 0;
    memcpy(a->pwin + slot * a->wsz, raw, a->wsz * sizeof(float));
    a->plen++;
}

/* The hold buffer is freed: after the release, or when nothing more is
 * held (early_off). */
static void early_free(ad_adapt *a, int off)
{
    free(a->early);
    free(a->ewin);
    a->early = NULL;
    a->ewin = NULL;
    a->elen = 0;
    a->early_off |= off;
}

/* Unresolved: hold a clean window (its offer number is a->offered); past
 * AD_ADAPT_EARLY it is counted in excluded_early and not kept. */
static void early_push(ad_adapt *a, const float *raw, const ad_adapt_obs *o)
{
    pend_ent *e;

    if (a->early == NULL && !a->early_off) {
        /* on the first: AD_ADAPT_EARLY windows, within the memory limit */
        a->ecap = AD_ADAPT_MAX_FLOATS / a->wsz < AD_ADAPT_EARLY ? AD_ADAPT_MAX_FLOATS / a->wsz
                                                                  : AD_ADAPT_EARLY;
        a->early = a->ecap ? calloc(a->ecap, sizeof(pend_ent)) : NULL;
        a->ewin = a->ecap ? calloc(a->ecap * a->wsz, sizeof(float)) : NULL;
        if (a->early == NULL || a->ewin == NULL)
            early_free(a, 1);
    }
    if (a->early == NULL || a->elen == a->ecap) {
        a->ex_early++;
        return;
    }
    e = &a->early[a->elen];
    e->seq = a->offered;
    e->ts = o->ts_ms;
    e->live = o->live_score;
    e->cand = o->cand_score;
    e->shadow = 0;              /* no shadow before the resolution */
    e->regime = o->regime;
    e->nowin = 0;
    memcpy(a->ewin + a->elen * a->wsz, raw, a->wsz * sizeof(float));
    a->elen++;
}

/* An alert was raised before the resolution: the held windows that had
 * waited out the margin by now would have entered the normal set; the
 * others preceded the raise by fewer than margin windows. With the margin
 * in data time (unknown yet) none is known to be clear of it: all go. */
static void early_raised(ad_adapt *a)
{
    size_t i, keep = 0;

    for (i = 0; i < a->elen; i++) {
        if (a->given.margin_ms == 0 && a->offered - a->early[i].seq >= (uint64_t)a->given.margin) {
            if (keep != i) {
                a->early[keep] = a->early[i];
                memcpy(a->ewin + keep * a->wsz, a->ewin + i * a->wsz, a->wsz * sizeof(float));
            }
            keep++;
        } else {
            a->ex_alert++;
        }
    }
    a->elen = keep;
}

/* The counts are known: the held windows go through the pending queue in
 * offer order, as if the counts had been known when they were offered
 * (those within the margin after an earlier clear are left out). */
static void early_release(ad_adapt *a)
{
    uint64_t c = a->cleared_at > 0 ? a->cleared_at - 1 : 0;
    size_t i, slot;

    for (i = 0; i < a->elen; i++) {
        pend_ent *e = &a->early[i];

        if (a->cleared_at > 0 && e->seq > c &&
            e->seq <= c + (uint64_t)ad_adapt_margin_after(&a->cfg)) {
            a->ex_alert++;
            continue;
        }
        if (a->plen == a->pcap)
            admit_oldest(a);
        slot = (a->phead + a->plen) % a->pcap;
        a->pend[slot] = *e;
        memcpy(a->pwin + slot * a->wsz, a->ewin + i * a->wsz, a->wsz * sizeof(float));
        a->plen++;
        while (a->plen > 0 && a->offered - a->pend[a->phead].seq >= (uint64_t)a->cfg.margin)
            admit_oldest(a);
    }
    early_free(a, 0);
}

const float *ad_adapt_normal_window(const ad_adapt *a, size_t i, int64_t *ts_ms)
{
    size_t slot;

    if (a == NULL || i >= a->nlen)
        return NULL;
    slot = (a->nhead + i) % a->ncap;
    if (ts_ms)
        *ts_ms = a->nts[slot];
    return a->nset + slot * a->wsz;
}

/* Windows ending at or after since_ms leave the held windows, the pending
 * queue and the normal set (in offer order: they are the newest); *ctr
 * counts them. */
static void drop_since(ad_adapt *a, int64_t since_ms, uint64_t *ctr)
{
    while (a->elen > 0 && a->early[a->elen - 1].ts >= since_ms) {
        a->elen--;
        (*ctr)++;
    }
    while (a->plen > 0) {
        size_t slot = (a->phead + a->plen - 1) % a->pcap;
        pend_ent *e = &a->pend[slot];

        if (e->ts < since_ms)
            break;
        (*ctr)++;
        if (e->shadow && e->shadow == a->shadow_gen && a->cand)
            a->sh_resolved++;
        a->plen--;
    }
    /* windows admitted before the condition was recognised: out of the
     * normal set, and of the shadow span's compared windows while it runs
     * (the same verdict as if they had waited in the pending queue) */
    while (a->nlen > 0 && a->nts[(a->nhead + a->nlen - 1) % a->ncap] >= since_ms) {
        a->nlen--;
        (*ctr)++;
    }
    while (a->cand && a->sh_n > 0 && a->sh_ts[a->sh_n - 1] >= since_ms)
        a->sh_n--;
}

void ad_adapt_dq_since(ad_adapt *a, int64_t since_ms)
{
    if (a != NULL)
        drop_since(a, since_ms, &a->ex_dq);
}

void ad_adapt_window_seen(ad_adapt *a, int64_t ts_ms)
{
    if (a != NULL)
        a->seen_ts[a->seen++ % AD_ADAPT_RUN_UP] = ts_ms;
}

void ad_adapt_alert_run_up(ad_adapt *a, int back)
{
    /* the raising window is the last seen; the ring holds back + 1 */
    if (a == NULL || back <= 0 || a->seen == 0)
        return;
    /* hist restored with an open alert reaches past the windows seen since:
     * from the oldest of those */
    if ((uint64_t)back >= a->seen)
        back = (int)(a->seen - 1);
    if (back <= 0 || back >= AD_ADAPT_RUN_UP)
        return;
    drop_since(a, a->seen_ts[(a->seen - 1 - (uint64_t)back) % AD_ADAPT_RUN_UP], &a->ex_alert);
}

/* ------------------------------------------------------------------------ */
/* alerts                                                                    */

void ad_adapt_alert_raised(ad_adapt *a, const char *id, int64_t ts_ms)
{
    (void)ts_ms;
    if (a == NULL)
        return;
    if (!a->resolved)
        early_raised(a);
    /* The pending windows preceded the raise by fewer than margin windows:
     * never normal. In shadow they now have their final verdict. */
    while (a->plen > 0) {
        pend_ent *e = &a->pend[a->phead];

        a->ex_alert++;
        if (e->shadow && e->shadow == a->shadow_gen && a->cand)
            a->sh_resolved++;
        a->phead = (a->phead + 1) % a->pcap;
        a->plen--;
    }
    a->in_alert = 1;
    /* the alert a restored state was saved in, continued: its peak so far
     * stays (ad_adapt_restore) */
    a->have_peak = a->resume_peak && id != NULL && strcmp(id, a->cur_id) == 0;
    a->resume_peak = 0;
    a->post_clear = 0;
    snprintf(a->cur_id, sizeof(a->cur_id), "%s", id ? id : "");
}

void ad_adapt_alert_cleared(ad_adapt *a, const char *id, int64_t ts_ms,
                            ad_adapt_clear how)
{
    (void)ts_ms;
    if (a == NULL || !a->in_alert)
        return;
    a->in_alert = 0;
    a->post_clear = ad_adapt_margin_after(&a->cfg);
    a->cleared_at = a->offered + 1;
    if (how != AD_ADAPT_CLEAR_TRUE || !a->have_peak || a->tacap == 0)
        return;
    if (a->talen == a->tacap) {     /* drop the oldest */
        memmove(a->ta, a->ta + 1, (a->tacap - 1) * sizeof(true_alert));
        memmove(a->tawin, a->tawin + a->wsz, (a->tacap - 1) * a->wsz * sizeof(float));
        a->talen--;
    }
    snprintf(a->ta[a->talen].id, sizeof(a->ta[a->talen].id), "%s",
             id && *id ? id : a->cur_id);
    a->ta[a->talen].ts = a->peak_ts;
    a->ta[a->talen].score = a->peak_score;
    memcpy(a->tawin + a->talen * a->wsz, a->peak, a->wsz * sizeof(float));
    a->talen++;
}

int ad_adapt_alert_false(ad_adapt *a, const char *id)
{
    size_t i;

    if (a == NULL || id == NULL)
        return 0;
    for (i = 0; i < a->talen; i++) {
        if (strcmp(a->ta[i].id, id) != 0)
            continue;
        memmove(a->ta + i, a->ta + i + 1, (a->talen - i - 1) * sizeof(true_alert));
        memmove(a->tawin + i * a->wsz, a->tawin + (i + 1) * a->wsz,
                (a->talen - i - 1) * a->wsz * sizeof(float));
        a->talen--;
        return 1;
    }
    return 0;
}

int ad_adapt_keep_alert_windows(ad_adapt *a, size_t n)
{
    float *w = NULL;
    int64_t *ts = NULL;
    size_t keep, i, slot;
    int rc = 0;

    if (a == NULL)
        return AD_EINVAL;
    if (n > 0) {
        w = malloc(n * a->wsz * sizeof(float));
        ts = malloc(n * sizeof(int64_t));
        if (w == NULL || ts == NULL) {
            free(w);
            free(ts);
            w = NULL;
            ts = NULL;
            n = 0;
            rc = AD_ENOMEM;
        }
    }
    /* the newest windows kept so far (restored before the counts were
     * known) stay, oldest first */
    keep = a->alen < n ? a->alen : n;
    for (i = 0; i < keep; i++) {
        slot = (a->ahead + a->alen - keep + i) % a->acap;
        memcpy(w + i * a->wsz, a->awin + slot * a->wsz, a->wsz * sizeof(float));
        ts[i] = a->ats[slot];
    }
    free(a->awin);
    free(a->ats);
    a->awin = w;
    a->ats = ts;
    a->acap = n;
    a->alen = keep;
    a->ahead = 0;
    return rc;
}

int ad_adapt_alerts_accepted(ad_adapt *a, int64_t since_ms, uint64_t need)
{
    size_t i = 0, k;
    int n = 0;

    if (a == NULL)
        return 0;
    /* the accepted regime's own windows teach the next fine-tune, which is
     * due at once; without them, once `need` windows were judged normal */
    for (i = 0, k = 0; i < a->alen; i++) {
        size_t slot = (a->ahead + i) % a->acap;
        if (a->ats[slot] >= since_ms) {
            nset_push(a, a->awin + slot * a->wsz, a->ats[slot]);
            k++;
        }
    }
    a->alen = a->ahead = 0;
    a->acc_pending = 1;
    a->acc_admitted = a->admitted;
    a->acc_need = k > 0 ? 0 : need;
    i = 0;
    while (i < a->talen) {
        if (a->ta[i].ts < since_ms) {
            i++;
            continue;
        }
        memmove(a->ta + i, a->ta + i + 1, (a->talen - i - 1) * sizeof(true_alert));
        memmove(a->tawin + i * a->wsz, a->tawin + (i + 1) * a->wsz,
                (a->talen - i - 1) * a->wsz * sizeof(float));
        a->talen--;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* decision                                                                  */

/* Candidate scores of the kept true-alert peak windows into sc (talen). */
static int score_alerts(ad_adapt *a, const ad_model *m, double *sc)
{
    ad_engine *e;
    float *x, *y, *sh;
    size_t i;
    int rc = 0;

    if (a->talen == 0)
        return 0;
    e = ad_engine_new(m, (int)a->talen);
    x = malloc(a->talen * a->wsz * sizeof(float));
    y = malloc(a->talen * a->wsz * sizeof(float));
    sh = malloc((size_t)a->F * sizeof(float));
    if (!e || !x || !y || !sh) {
        rc = AD_ENOMEM;
        goto out;
    }
    ad_model_scale(m, a->tawin, x, a->talen * (size_t)a->T);
    if ((rc = ad_engine_forward(e, x, y, (int)a->talen)) != 0)
        goto out;
    for (i = 0; i < a->talen; i++) {
        /* in the live scores' units (the detector's scales) */
        sc[i] = ad_recon_score(x + i * a->wsz, y + i * a->wsz, a->T, a->F, a->metric,
                               a->scale ? sh : NULL);
        if (a->scale)
            sc[i] = ad_recon_normalize(sc[i], sh, a->scale, a->F, a->scale_rms, NULL);
    }
out:
    ad_engine_free(e);
    free(x);
    free(y);
    free(sh);
    return rc;
}

void ad_adapt_set_live_threshold(ad_adapt *a, const ad_threshold *t)
{
    a->live_thr = t;
}

void ad_adapt_set_scale(ad_adapt *a, const double *scale, int rms)
{
    a->scale = scale;
    a->scale_rms = rms;
}

double *ad_adapt_shadow_fit(const ad_adapt *a, double alpha, size_t *n, double *last)
{
    double *out, s = 0.0, f = 0.0;
    size_t i, nreg = 0, k = 0;
    int skip;

    *n = 0;
    if (a == NULL || a->sh_n == 0 || (out = malloc(a->sh_n * sizeof(double))) == NULL)
        return NULL;
    for (i = 0; i < a->sh_n; i++)
        nreg += a->sh_reg[i];
    skip = nreg * 2 < a->sh_n;
    /* s: the detector's smoothing over every window (its state after the
     * last); f: over the fitted ones only, so that a left-out score does not
     * carry into the windows after it */
    for (i = 0; i < a->sh_n; i++) {
        s = i == 0 || alpha >= 1.0 ? a->sh_cand[i] : alpha * a->sh_cand[i] + (1.0 - alpha) * s;
        if (skip && a->sh_reg[i])
            continue;
        f = k == 0 || alpha >= 1.0 ? a->sh_cand[i] : alpha * a->sh_cand[i] + (1.0 - alpha) * f;
        out[k++] = f;
    }
    if (last)
        *last = s;
    *n = k;
    return out;
}

/* Fit the detector's threshold method on the candidate's (smoothed) shadow
 * scores (ad_adapt_shadow_fit). */
static int cand_threshold(ad_adapt *a, double *thr, char *err, size_t errlen)
{
    ad_threshold *t = NULL;
    double *sc;
    size_t i, n;
    int rc;

    if ((sc = ad_adapt_shadow_fit(a, a->alpha, &n, NULL)) == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    if ((rc = ad_threshold_new(&t, &a->thr, err, errlen)) != 0) {
        free(sc);
        return rc;
    }
    for (i = 0; i < n; i++)
        ad_threshold_add(t, sc[i]);
    free(sc);
    /* normalised scores: the floor is x 1, not the training error */
    rc = ad_threshold_fit(t, a->scale ? NULL : a->cand->training, err, errlen);
    if (rc == 0)
        *thr = ad_threshold_value(t);
    ad_threshold_free(t);
    return rc;
}

static void decide(ad_adapt *a, int64_t ts)
{
    ad_adapt_event ev;
    size_t need = (a->sh_cap + 1) / 2, i;
    double *work = NULL, sc[64], thr = NAN;
    char msg[160] = "";
    int ok_err, rc;

    event_init(a, &ev, AD_ADAPT_EV_REJECTED, ts);
    ev.shadow_windows = a->sh_resolved;
    ev.normal_windows = a->sh_n;
    for (i = 0; i < a->sh_n; i++)
        ev.regime_windows += a->sh_reg[i];
    if (a->sh_n < need) {
        snprintf(ev.reason, sizeof(ev.reason),
                 "too few windows judged normal in shadow: %zu of %" PRIu64
                 " (need %zu)", a->sh_n, a->sh_resolved, need);
        goto done;
    }
    work = malloc(a->sh_n * sizeof(double));
    if (work == NULL) {
        snprintf(ev.reason, sizeof(ev.reason), "out of memory");
        goto done;
    }
    ev.live_error = stat_of(a->sh_live, a->sh_n, a->cfg.compare, work);
    ev.cand_error = stat_of(a->sh_cand, a->sh_n, a->cfg.compare, work);
    if (ev.live_error > 0.0)
        ev.gain = 1.0 - ev.cand_error / ev.live_error;
    else
        ev.gain = ev.cand_error == 0.0 ? 0.0 : -INFINITY;
    rc = cand_threshold(a, &thr, msg, sizeof(msg));
    if (rc) {
        snprintf(ev.reason, sizeof(ev.reason), "candidate threshold: %s", msg);
        goto done;
    }
    /* The shadow span may be a part of the day: the candidate's threshold
     * is at least the live one scaled by the error ratio (the promotion
     * holds it there for a normal set's worth of windows). The live one as
     * its estimate gives it, not as an earlier promotion's hold keeps it:
     * a hold scaled from a hold compounds (a threshold still 1.5 x its
     * estimate a week after the change that inflated it). */
    ev.cand_fit = thr;
    if (a->live_thr != NULL && ad_threshold_fitted(a->live_thr) && ev.live_error > 0.0 &&
        isfinite(ev.cand_error) && a->thr.method != AD_THR_FIXED &&
        a->thr.method != AD_THR_MODEL)
        ev.hold_threshold = ad_threshold_unheld(a->live_thr) * ev.cand_error / ev.live_error;
    if (ev.hold_threshold > thr)
        thr = ev.hold_threshold;
    ev.cand_threshold = thr;
    if (score_alerts(a, a->cand, sc) != 0) {
        snprintf(ev.reason, sizeof(ev.reason), "scoring the true alerts failed");
        goto done;
    }
    for (i = 0; i < a->talen; i++) {
        double r = sc[i] / thr;

        ev.alerts_checked++;
        if (!(r >= ev.min_alert_ratio))     /* also replaces the initial NAN */
            ev.min_alert_ratio = r;
        if (!(sc[i] > thr)) {
            if (ev.alerts_silenced++ == 0)
                snprintf(ev.silenced_alert, sizeof(ev.silenced_alert), "%s",
                         a->ta[i].id);
        }
    }
    ok_err = isfinite(ev.cand_error) && isfinite(ev.live_error) &&
             ev.cand_error <= ev.live_error * (1.0 - a->cfg.min_gain);
    if (ok_err && ev.alerts_silenced == 0) {
        ev.type = AD_ADAPT_EV_PROMOTED;
        snprintf(ev.reason, sizeof(ev.reason),
                 "candidate %s error %.4g <= live %.4g * (1 - %.3g); %d true "
                 "alerts still over its threshold %.4g",
                 ad_adapt_stat_name(a->cfg.compare), ev.cand_error,
                 ev.live_error, a->cfg.min_gain, ev.alerts_checked, thr);
    } else if (!ok_err) {
        snprintf(ev.reason, sizeof(ev.reason),
                 "candidate %s error %.4g > live %.4g * (1 - %.3g)%s",
                 ad_adapt_stat_name(a->cfg.compare), ev.cand_error,
                 ev.live_error, a->cfg.min_gain,
                 ev.alerts_silenced ? "; and it silences true alerts" : "");
    } else {
        snprintf(ev.reason, sizeof(ev.reason),
                 "candidate would silence %d of %d true alerts (%.60s: score "
                 "<= candidate threshold %.4g)",
                 ev.alerts_silenced, ev.alerts_checked, ev.silenced_alert, thr);
    }
done:
    free(work);
    if (ev.type == AD_ADAPT_EV_PROMOTED)
        a->promotions++;
    else
        a->rejections++;
    a->decided = a->cand;           /* NULL before: no shadow starts while one waits */
    a->cand = NULL;
    a->last = ev;
    a->have_last = 1;
    queue_event(a, &ev);
    sched_reset(a);
}

/* ------------------------------------------------------------------------ */
/* offer and schedule                                                        */

/* A due fine-tune waits while an accepted regime's occurrence runs (a
 * window judged against a regime within the last margin windows): a
 * shadow span begun there would compare the models over the regime's
 * hours, where the live model's error is highest, and the promotion it
 * decides judges the regime on them. It waits at most shadow_windows
 * windows (a regime that shows all day does not stop learning). Returns 1
 * while held. */
static int regime_hold(ad_adapt *a)
{
    uint64_t m = (uint64_t)ad_adapt_margin_after(&a->cfg);

    if (a->reg_last == 0 || a->offered - a->reg_last > m) {
        a->held_at = 0;
        return 0;
    }
    if (a->held_at == 0)
        a->held_at = a->offered;
    if (a->offered - a->held_at < (uint64_t)a->cfg.shadow_windows)
        return 1;
    a->held_at = 0;
    return 0;
}

static void schedule_check(ad_adapt *a, int64_t ts)
{
    int due = 0;

    /* nothing new while a decided candidate waits to be taken: its
     * decision event stays the newest queued (DECIDED in adapt.h) */
    if (!a->cfg.enabled || !a->resolved || a->job_out || a->cand || a->ready || a->decided)
        return;
    if (a->cfg.every_windows > 0 && a->sched_windows >= (uint64_t)a->cfg.every_windows)
        due = 1;
    if (a->cfg.every_hours > 0.0 && a->sched_start != SCHED_UNSET &&
        (double)(ts - a->sched_start) >= a->cfg.every_hours * 3600e3)
        due = 1;
    if (a->acc_pending && a->admitted - a->acc_admitted >= a->acc_need)
        due = 1;
    if (due && a->nlen >= (size_t)a->cfg.min_windows) {
        ad_adapt_event ev;

        if (regime_hold(a))
            return;
        a->acc_ft = a->acc_pending;
        a->acc_pending = 0;

        event_init(a, &ev, AD_ADAPT_EV_TRAIN_READY, ts);
        ev.attempt = a->attempts + 1;
        ev.train_windows = a->nlen;
        snprintf(ev.reason, sizeof(ev.reason),
                 "%" PRIu64 " windows, %.3g h since the last decision; "
                 "%zu normal windows", a->sched_windows,
                 a->sched_start == SCHED_UNSET ? 0.0
                     : (double)(ts - a->sched_start) / 3600e3, a->nlen);
        queue_event(a, &ev);
        a->ready = 1;
    }
}

int ad_adapt_offer(ad_adapt *a, const float *win, const ad_model *scaled_by,
                   const ad_adapt_obs *o)
{
    const float *raw = win;
    uint64_t shadow = 0;

    if (a == NULL || win == NULL || o == NULL)
        return AD_EINVAL;
    if (scaled_by) {
        if (scaled_by->n_features != a->F || scaled_by->window != a->T)
            return AD_EINVAL;
        ad_adapt_unscale(scaled_by, win, a->tmp, (size_t)a->T);
        raw = a->tmp;
    }
    a->offered++;
    if (o->regime)
        a->reg_last = a->offered;
    a->last_ts = o->ts_ms;
    a->sched_windows++;
    if (a->sched_start == SCHED_UNSET)
        a->sched_start = o->ts_ms;
    if (a->cand && isfinite(o->cand_score))
        shadow = a->shadow_gen;

    a->resume_peak = 0;             /* the restored alert was not continued */
    if (a->in_alert) {
        if (!a->have_peak || o->live_score > a->peak_score) {
            memcpy(a->peak, raw, a->wsz * sizeof(float));
            a->peak_score = o->live_score;
            a->peak_ts = o->ts_ms;
            a->have_peak = 1;
        }
        if (a->acap > 0 && !o->dq && isfinite(o->live_score)) {
            size_t slot = (a->ahead + a->alen) % a->acap;
            if (a->alen == a->acap)
                a->ahead = (a->ahead + 1) % a->acap;
            else
                a->alen++;
            memcpy(a->awin + slot * a->wsz, raw, a->wsz * sizeof(float));
            a->ats[slot] = o->ts_ms;
        }
        a->ex_alert++;
    } else if (a->post_clear > 0) {
        a->post_clear--;
        a->ex_alert++;
    } else if (o->dq || !isfinite(o->live_score)) {
        a->ex_dq++;
    } else if (o->exceeded) {
        a->ex_exc++;
    } else if (!a->resolved) {
        /* the margin and the normal set's size are not known yet: held
         * until they are (early_release) */
        early_push(a, raw, o);
    } else {
        push_pending(a, raw, o, shadow);
        shadow = 0;     /* resolved when admitted or dropped */
    }
    if (shadow)
        a->sh_resolved++;
    while (a->plen > 0 && a->offered - a->pend[a->phead].seq >= (uint64_t)a->cfg.margin)
        admit_oldest(a);
    if (a->cand && a->sh_resolved >= a->sh_cap)
        decide(a, o->ts_ms);
    schedule_check(a, o->ts_ms);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* jobs and shadow                                                           */

/* ---- reference drift (adapt.h REFERENCE) ---------------------------------- */

/* The reference is now the model of id `id`; another one than before
 * starts a new baseline. */
static void ref_set_id(ad_adapt *a, const char *id)
{
    if (strcmp(a->ref_id, id) == 0)
        return;
    free(a->ref_base_f);
    a->ref_base_f = NULL;
    a->ref_base_ts = INT64_MIN;
    a->ref_warned = 0;
    a->ref_top = -1;
    snprintf(a->ref_id, sizeof(a->ref_id), "%s", id);
}

int ad_adapt_set_reference(ad_adapt *a, const ad_model *m, int is_live)
{
    ad_model *c = NULL;

    if (a == NULL || m == NULL || m->window != a->T || m->n_features != a->F)
        return AD_EINVAL;
    if (!a->cfg.enabled)            /* no fine-tune: nothing to measure */
        return 0;
    if (!is_live && !(a->ref && strcmp(a->ref->id, m->id) == 0) &&
        (c = ad_model_clone(m)) == NULL)
        return AD_ENOMEM;
    if (is_live || c != NULL) {
        ad_model_free(a->ref);      /* live: no copy while it is */
        a->ref = c;
    }
    if (is_live)
        snprintf(a->live_id, sizeof(a->live_id), "%s", m->id);
    ref_set_id(a, m->id);
    return 0;
}

void ad_adapt_live_model(ad_adapt *a, const ad_model *m)
{
    if (a && m)
        snprintf(a->live_id, sizeof(a->live_id), "%s", m->id);
}

void ad_adapt_accept_drift(ad_adapt *a, const ad_model *live)
{
    if (a == NULL || live == NULL)
        return;
    a->ref_id[0] = '\0';            /* a new baseline even for the same model */
    ad_adapt_set_reference(a, live, 1);
}

int ad_adapt_keep_reference(ad_adapt *a, const ad_model *live)
{
    if (a == NULL || live == NULL || a->ref != NULL || !a->cfg.enabled ||
        a->ref_id[0] == '\0' || strcmp(live->id, a->ref_id) != 0)
        return 0;
    return (a->ref = ad_model_clone(live)) != NULL ? 0 : AD_ENOMEM;
}

const ad_model *ad_adapt_reference(const ad_adapt *a)
{
    return a ? a->ref : NULL;
}

const char *ad_adapt_reference_id(const ad_adapt *a)
{
    return a ? a->ref_id : "";
}

/* The reference's mean error, in total and per feature (its share of each
 * window's error), over n raw windows: their scaled copy in x (n*T*F). */
static int ref_errors(const ad_model *ref, const float *raw, size_t n, ad_metric metric,
                      double *total, double *feat)
{
    ad_train_opts o;
    ad_trainer *t = NULL;
    const size_t T = (size_t)ref->window, F = (size_t)ref->n_features, wsz = T * F;
    float *x = malloc(n * wsz * sizeof(float)), *y = NULL, *share = malloc(F * sizeof(float));
    size_t i, f;
    int rc = AD_ENOMEM;

    *total = 0;
    for (f = 0; f < F; f++)
        feat[f] = 0;
    ad_train_opts_default(&o);
    o.batch_size = 64;
    y = malloc(wsz * (size_t)o.batch_size * sizeof(float));
    if (x == NULL || y == NULL || share == NULL ||
        (t = ad_trainer_new((ad_model *)ref, &o)) == NULL)
        goto done;
    ad_model_scale(ref, raw, x, n * T);
    for (i = 0; i < n; i += (size_t)o.batch_size) {
        int B = (int)(n - i < (size_t)o.batch_size ? n - i : (size_t)o.batch_size), b;

        rc = ad_trainer_forward(t, x + i * wsz, B, y, NULL);
        if (rc != 0 && rc != AD_ENONFINITE)
            goto done;
        for (b = 0; b < B; b++) {
            double s = ad_recon_score(x + (i + (size_t)b) * wsz, y + (size_t)b * wsz,
                                      (int)T, (int)F, metric, share);

            if (!isfinite(s)) {
                rc = AD_ENONFINITE;
                goto done;
            }
            *total += s;
            for (f = 0; f < F; f++)
                feat[f] += s * share[f];
        }
    }
    *total /= (double)n;
    for (f = 0; f < F; f++)
        feat[f] /= (double)n;
    rc = 0;
done:
    ad_trainer_free(t);
    free(x);
    free(y);
    free(share);
    return rc;
}

/* A candidate's "reference" metadata (ad_adapt_job_run): the reference's
 * error on its training windows against the baseline (the lowest so far);
 * a notice when the ratio reaches adapt.drift_ratio (again once it fell
 * under 0.8 x it). */
static int ref_update(ad_adapt *a, const ad_model *cand, int64_t ts)
{
    cJSON *root = cand->training ? cJSON_Parse(cand->training) : NULL;
    const cJSON *r = root ? cJSON_GetObjectItemCaseSensitive(root, "reference") : NULL;
    const cJSON *id = r ? cJSON_GetObjectItemCaseSensitive(r, "id") : NULL;
    const cJSON *e = r ? cJSON_GetObjectItemCaseSensitive(r, "error") : NULL;
    const cJSON *fe = r ? cJSON_GetObjectItemCaseSensitive(r, "features") : NULL;
    double err, *fv = malloc((size_t)a->F * sizeof(double));
    int f, F = a->F, notify = 0;

    if (fv == NULL || !cJSON_IsString(id) || strcmp(id->valuestring, a->ref_id) != 0 ||
        !cJSON_IsNumber(e) || !(e->valuedouble > 0) || !isfinite(e->valuedouble) ||
        !cJSON_IsArray(fe) || cJSON_GetArraySize(fe) != F)
        goto out;
    err = e->valuedouble;
    for (f = 0; f < F; f++) {
        const cJSON *v = cJSON_GetArrayItem(fe, f);

        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
            goto out;
        fv[f] = v->valuedouble;
    }
    /* the baseline is the quietest set so far: a first set that held a
     * slow fault's onset (judged normal while under the threshold) would
     * hide the drift it measures */
    if (a->ref_base_f == NULL &&
        (a->ref_base_f = malloc((size_t)F * sizeof(double))) == NULL)
        goto out;
    if (a->ref_base_ts == INT64_MIN || !(err >= a->ref_base)) {
        memcpy(a->ref_base_f, fv, (size_t)F * sizeof(double));
        a->ref_base = err;
        a->ref_base_ts = ts;
    }
    a->ref_err = err;
    a->ref_ratio = err / a->ref_base;
    a->ref_top = -1;
    a->ref_top_ratio = NAN;
    for (f = 0; f < F; f++) {
        /* a feature that held a tiny part of the baseline error is judged
         * against 1% of the total: its ratio would mean nothing */
        double b = fmax(a->ref_base_f[f], 0.01 * a->ref_base);
        double q = fv[f] / b;

        if (a->ref_top < 0 || q > a->ref_top_ratio) {
            a->ref_top = f;
            a->ref_top_ratio = q;
        }
    }
    if (a->cfg.drift_ratio > 0 && a->ref_ratio >= a->cfg.drift_ratio && !a->ref_warned) {
        a->ref_warned = 1;
        notify = 1;
    } else if (a->ref_warned && a->ref_ratio < 0.8 * a->cfg.drift_ratio) {
        a->ref_warned = 0;
    }
out:
    free(fv);
    cJSON_Delete(root);
    return notify;
}

/* The drift notice (after the candidate's shadow event: it names it). */
static void ref_notify(ad_adapt *a, int64_t ts)
{
    ad_adapt_event ev;

    event_init(a, &ev, AD_ADAPT_EV_DRIFT, ts);
    snprintf(ev.reason, sizeof(ev.reason), "the reference model's error on the normal "
             "windows is %.3g x the lowest so far (%.4g -> %.4g); continual learning has "
             "followed a change", a->ref_ratio, a->ref_base, a->ref_err);
    queue_event(a, &ev);
}

ad_adapt_job *ad_adapt_take_job(ad_adapt *a, const ad_model *live)
{
    ad_adapt_job *j;
    const ad_model *ref;
    size_t i;

    if (a == NULL || !a->ready || a->decided != NULL || live == NULL ||
        live->window != a->T || live->n_features != a->F || a->nlen == 0)
        return NULL;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    if (a->ref_id[0] == '\0')      /* the model the learner started from */
        ref_set_id(a, live->id);
    /* the reference: kept apart, or the live model while it is */
    ref = a->ref ? a->ref : strcmp(live->id, a->ref_id) == 0 ? live : NULL;
    j->windows = malloc(a->nlen * a->wsz * sizeof(float));
    j->init = ad_model_clone(live);
    j->ref = ref ? ad_model_clone(ref) : NULL;
    if (!j->windows || !j->init || (ref && !j->ref)) {
        ad_adapt_job_free(j);
        return NULL;
    }
    for (i = 0; i < a->nlen; i++)
        memcpy(j->windows + i * a->wsz, ad_adapt_normal_window(a, i, NULL),
               a->wsz * sizeof(float));
    j->T = a->T;
    j->F = a->F;
    j->n = a->nlen;
    j->metric = a->metric;
    j->epochs = a->cfg.epochs;
    j->batch_size = a->cfg.batch_size;
    j->lr = (float)a->cfg.lr;
    j->max_seconds = a->cfg.max_seconds;
    j->attempt = ++a->attempts;
    j->seed = a->cfg.seed + j->attempt;
    a->attempt_cur = j->attempt;
    a->train_windows = j->n;
    a->ready = 0;
    a->job_out = 1;
    return j;
}

void ad_adapt_job_free(ad_adapt_job *j)
{
    if (j == NULL)
        return;
    free(j->windows);
    ad_model_free(j->init);
    ad_model_free(j->ref);
    free(j);
}

/* The reference's errors on the job's windows, added to the candidate's
 * training metadata: "reference": {"id", "error", "features": [F]}. A
 * failure leaves meta as it was (no figure this time). */
static char *ref_meta(const ad_adapt_job *job, char *meta)
{
    double tot, *fv = malloc((size_t)job->F * sizeof(double));
    cJSON *root = NULL, *r, *arr;
    char *txt;
    int f;

    if (fv == NULL ||
        ref_errors(job->ref, job->windows, job->n, job->metric, &tot, fv) != 0 ||
        (root = cJSON_Parse(meta)) == NULL ||
        (r = cJSON_AddObjectToObject(root, "reference")) == NULL ||
        !cJSON_AddStringToObject(r, "id", job->ref->id) ||
        !ad_json_num(r, "error", tot) ||
        (arr = cJSON_AddArrayToObject(r, "features")) == NULL)
        goto out;
    for (f = 0; f < job->F; f++) {
        cJSON *n = cJSON_CreateNumber(fv[f]);
        if (n == NULL)
            goto out;
        cJSON_AddItemToArray(arr, n);
    }
    if ((txt = cJSON_PrintUnformatted(root)) != NULL) {
        free(meta);
        meta = txt;
    }
out:
    cJSON_Delete(root);
    free(fv);
    return meta;
}

int ad_adapt_job_run(const ad_adapt_job *job, ad_model **out,
                     ad_train_report *rep, const volatile int *cancel,
                     char *err, size_t errlen)
{
    ad_model *m = NULL;
    float *x = NULL;
    ad_train_opts o;
    ad_train_report r;
    ad_error_stats es;
    char *meta;
    void *buf = NULL;
    size_t len, rows;
    int rc;

    *out = NULL;
    if (job == NULL || job->init == NULL || job->n < 1 || job->windows == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "adapt job: no windows or no model");
    m = ad_model_clone(job->init);
    rows = job->n * (size_t)job->T;
    x = malloc(rows * (size_t)job->F * sizeof(float));
    if (!m || !x) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "adapt job: out of memory");
        goto fail;
    }
    /* The scaler stays the live model's: the weights were learnt for it. */
    ad_model_scale(m, job->windows, x, rows);
    ad_train_opts_default(&o);
    o.loss = job->metric == AD_METRIC_MSE ? AD_LOSS_MSE : AD_LOSS_MAE;
    o.epochs = job->epochs;
    o.lr = job->lr;
    o.batch_size = job->batch_size;
    o.seed = job->seed;
    o.max_seconds = job->max_seconds;
    /* No validation split: the shadow evaluation is the out-of-sample test
     * and the normal windows overlap, so a tail split would leak anyway. */
    o.val_frac = 0.0f;
    rc = ad_train_fit(m, x, job->n, &o, &r, NULL, NULL, cancel, err, errlen);
    if (rc)
        goto fail;
    if (r.cancelled && cancel && *cancel) {
        rc = ad_errf(err, errlen, AD_EINVAL, "adapt job: cancelled");
        goto fail;
    }
    if ((rc = ad_train_error_stats(m, x, job->n, job->metric, &es, NULL)) != 0) {
        ad_errf(err, errlen, rc, "adapt job: error statistics failed");
        goto fail;
    }
    meta = ad_train_meta_json(&o, &r, &es);
    if (meta == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "adapt job: out of memory");
        goto fail;
    }
    free(x);                        /* not held beside the reference's copy */
    x = NULL;
    if (job->ref != NULL)
        meta = ref_meta(job, meta);
    free(m->training);
    m->training = meta;
    if (ad_model_serialize(m, &buf, &len) == 0)     /* sets the model id */
        free(buf);
    if (rep)
        *rep = r;
    *out = m;
    return 0;
fail:
    free(x);
    ad_model_free(m);
    return rc;
}

static void shadow_start(ad_adapt *a, ad_model *m, ad_adapt_origin origin,
                         int64_t ts)
{
    ad_adapt_event ev;

    /* a->cand and a->decided are NULL: the callers refuse otherwise (a
     * decided candidate is the caller's to free, DECIDED in adapt.h) */
    a->cand = m;
    a->sh_start = ts;
    a->origin = origin;
    a->shadow_gen++;
    a->sh_resolved = 0;
    a->sh_n = 0;
    event_init(a, &ev, AD_ADAPT_EV_SHADOW, ts);
    snprintf(ev.reason, sizeof(ev.reason), "candidate %s in shadow for %d windows",
             m->id[0] ? m->id : "(unsaved)", a->cfg.shadow_windows);
    queue_event(a, &ev);
}

static int model_fits(const ad_adapt *a, const ad_model *m)
{
    return m && m->window == a->T && m->n_features == a->F;
}

int ad_adapt_train_done(ad_adapt *a, ad_model *cand, int take,
                        const ad_train_report *rep, const char *why)
{
    ad_model *m;
    int notify;

    if (a == NULL || !a->job_out)
        return AD_EINVAL;
    /* (no candidate in shadow or decided while a job is out: take_job
     * refuses while one is decided, shadow_begin while a job is out) */
    if (cand && (!model_fits(a, cand) || a->cand != NULL || a->decided != NULL))
        return AD_EINVAL;
    a->have_rep = rep != NULL;
    if (rep)
        a->rep = *rep;
    if (cand == NULL) {
        ad_adapt_event ev;

        event_init(a, &ev, AD_ADAPT_EV_TRAIN_FAILED,
                   a->last_ts == SCHED_UNSET ? 0 : a->last_ts);
        snprintf(ev.reason, sizeof(ev.reason), "%s", why ? why : "training failed");
        a->job_out = 0;
        a->failures++;
        a->last = ev;
        a->have_last = 1;
        queue_event(a, &ev);
        sched_reset(a);
        return 0;
    }
    m = take ? cand : ad_model_clone(cand);
    if (m == NULL)
        return AD_ENOMEM;
    a->job_out = 0;
    notify = ref_update(a, m, a->last_ts == SCHED_UNSET ? 0 : a->last_ts);
    shadow_start(a, m, AD_ADAPT_FINETUNE, a->last_ts == SCHED_UNSET ? 0 : a->last_ts);
    if (notify)
        ref_notify(a, a->last_ts == SCHED_UNSET ? 0 : a->last_ts);
    return 0;
}

int ad_adapt_abandon(ad_adapt *a, const char *why, int64_t ts_ms)
{
    ad_adapt_event ev;

    if (a == NULL || a->cand == NULL)
        return 0;
    event_init(a, &ev, AD_ADAPT_EV_REJECTED, ts_ms);
    ev.shadow_windows = a->sh_resolved;
    ev.normal_windows = a->sh_n;
    snprintf(ev.reason, sizeof(ev.reason), "abandoned in shadow after %" PRIu64 " windows: %s",
             a->sh_resolved, why ? why : "");
    a->rejections++;
    a->decided = a->cand;           /* taken (and kept for batches in flight) by the
                                     * caller; NULL before (DECIDED in adapt.h) */
    a->cand = NULL;
    a->shadow_gen++;
    a->sh_resolved = 0;
    a->sh_n = 0;
    a->last = ev;
    a->have_last = 1;
    queue_event(a, &ev);
    sched_reset(a);
    return 1;
}

int ad_adapt_shadow_begin(ad_adapt *a, ad_model *cand, int take, int64_t ts_ms)
{
    ad_model *m;

    if (a == NULL || a->job_out || !a->resolved || a->cand != NULL || a->decided != NULL ||
        !model_fits(a, cand))
        return AD_EINVAL;
    m = take ? cand : ad_model_clone(cand);
    if (m == NULL)
        return AD_ENOMEM;
    a->attempt_cur = ++a->attempts;
    a->have_rep = 0;
    a->train_windows = 0;
    a->ready = 0;
    shadow_start(a, m, AD_ADAPT_RELOAD, ts_ms);
    return 0;
}

const ad_model *ad_adapt_candidate(const ad_adapt *a)
{
    return a ? a->cand : NULL;
}

int ad_adapt_same_scaler(const ad_adapt *a, const ad_model *m)
{
    return a != NULL && a->cand != NULL && ad_model_same_scaler(a->cand, m);
}

ad_model *ad_adapt_take_candidate(ad_adapt *a)
{
    ad_model *m;

    if (a == NULL)
        return NULL;
    m = a->decided;
    a->decided = NULL;
    return m;
}

const double *ad_adapt_shadow_scores(const ad_adapt *a, size_t *n)
{
    *n = a ? a->sh_n : 0;
    return a ? a->sh_cand : NULL;
}

int ad_adapt_last(const ad_adapt *a, ad_adapt_event *ev)
{
    if (a == NULL || !a->have_last)
        return 0;
    *ev = a->last;
    return 1;
}

void ad_adapt_get_stats(const ad_adapt *a, ad_adapt_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->offered = a->offered;
    st->admitted = a->admitted;
    st->excluded_alert = a->ex_alert;
    st->excluded_exceeded = a->ex_exc;
    st->excluded_dq = a->ex_dq;
    st->excluded_early = a->ex_early;
    st->normal_len = a->nlen;
    st->pending = a->plen + a->elen;
    st->true_alerts = (int)a->talen;
    st->attempts = a->attempts;
    st->promotions = a->promotions;
    st->rejections = a->rejections;
    st->failures = a->failures;
    st->sched_windows = a->sched_windows;
    st->sched_start_ms = a->sched_start;
    st->due = a->ready;
    st->training = a->job_out;
    st->shadow = a->cand != NULL;
    st->ref_ratio = a->ref_base_f ? a->ref_ratio : NAN;
    st->ref_feature = a->ref_base_f ? a->ref_top : -1;
    st->drift = a->ref_warned;
}

