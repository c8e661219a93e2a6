/*
 * detector.c - one stream's pipeline: assembly -> window ring -> jobs for
 * the caller's inference -> scores -> smoothing -> phases (collecting,
 * training, calibrating, detecting) -> threshold -> alerts -> events.
 * See detector.h for the protocol and the thread rules.
 */
#include "detector.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ad.h"
#include "window.h"
#include "burst.h"
#include "shift.h"
#include "noise.h"
#include "train.h"

#include "detector_int.h"

/* ---- names, defaults, checks -------------------------------------------- */

static const char *const phase_names[] = { "collecting", "training", "calibrating", "detecting" };
static const char *const train_names[] = { "none", "finetune", "bootstrap" };

const char *ad_phase_name(ad_phase p)
{
    return (unsigned)p < 4 ? phase_names[p] : "?";
}

const char *ad_train_mode_name(ad_train_mode m)
{
    return (unsigned)m < 3 ? train_names[m] : "?";
}

int ad_train_mode_from_name(const char *s)
{
    int i;

    for (i = 0; i < 3; i++)
        if (s && strcmp(s, train_names[i]) == 0)
            return i;
    return -1;
}

const char *ad_detector_metric_name(ad_metric m)
{
    return m == AD_METRIC_MSE ? "mse" : m == AD_METRIC_MAE ? "mae" :
           m == AD_METRIC_PEAK ? "peak" : "?";
}

int ad_detector_metric_from_name(const char *s)
{
    if (s && strcmp(s, "mse") == 0)
        return AD_METRIC_MSE;
    if (s && strcmp(s, "mae") == 0)
        return AD_METRIC_MAE;
    if (s && strcmp(s, "peak") == 0)
        return AD_METRIC_PEAK;
    return -1;
}

const char *ad_detector_normalize_name(ad_normalize n)
{
    return n == AD_NORM_NONE ? "none" : n == AD_NORM_FEATURE ? "feature" :
           n == AD_NORM_FEATURE_RMS ? "feature_rms" : "?";
}

int ad_detector_normalize_from_name(const char *s)
{
    if (s && strcmp(s, "none") == 0)
        return AD_NORM_NONE;
    if (s && strcmp(s, "feature") == 0)
        return AD_NORM_FEATURE;
    if (s && strcmp(s, "feature_rms") == 0)
        return AD_NORM_FEATURE_RMS;
    return -1;
}

const char *ad_event_type_name(ad_event_type t)
{
    switch (t) {
    case AD_EV_PHASE: return "phase";
    case AD_EV_CALIBRATED: return "calibrated";
    case AD_EV_ALERT_RAISED: return "alert_raised";
    case AD_EV_ALERT_CLEARED: return "alert_cleared";
    case AD_EV_TRAIN_READY: return "train_ready";
    case AD_EV_TRAIN_FAILED: return "train_failed";
    case AD_EV_CALIB_FAILED: return "calibration_failed";
    case AD_EV_ACCEPTED: return "regime_accepted";
    case AD_EV_DQ_RAISED: return "dq_raised";
    case AD_EV_DQ_CLEARED: return "dq_cleared";
    case AD_EV_ADAPT_READY: return "adapt_ready";
    case AD_EV_ADAPT: return "adapt";
    case AD_EV_REGIME_ENDED: return "regime_ended";
    case AD_EV_CALIB_HELD: return "calibration_held";
    }
    return "?";
}

/* The defaults of the library are the defaults of the daemon's config
 * (daemon/config_keys.c takes every pipeline default from here) and of
 * `anomalyd replay`: one pipeline, one set of defaults. */
void ad_detector_cfg_default(ad_detector_cfg *c)
{
    memset(c, 0, sizeof(*c));
    ad_stream_cfg_default(&c->stream);
    c->hop = 1;
    c->metric = AD_METRIC_MAE;
    c->smooth_alpha = 1.0;
    c->calib_windows = 200;
    c->calib_duration_ms = 0;
    ad_thr_cfg_default(&c->thr);
    ad_alert_cfg_default(&c->alert);
    c->training = AD_TRAIN_NONE;
    c->train_windows = 500;
    c->train_epochs = 5;
    c->boot_units = 32;
    c->train_seed = 1;
    ad_lik_cfg_default(&c->lik);
    c->extreme = 50;
    c->calib_warn_every = 100;
    c->calib_model_guard = 3;
    c->season_ms = 0;
    c->season_periods = 3;
    c->season_margin = 1.5;
    c->season_clock = AD_SEASON_UTC;
    c->dq_enabled = 1;
    ad_dq_cfg_default(&c->dq);
    ad_adapt_cfg_default(&c->adapt);
}

int ad_detector_cfg_check(const ad_detector_cfg *c, char *err, size_t errlen)
{
    int rc;

    if ((rc = ad_stream_cfg_check(&c->stream, err, errlen)) != 0)
        return rc;
    if ((rc = ad_thr_cfg_check(&c->thr, err, errlen)) != 0)
        return rc;
    if ((rc = ad_alert_cfg_check(&c->alert, err, errlen)) != 0)
        return rc;
    if ((rc = ad_lik_cfg_check(&c->lik, err, errlen)) != 0)
        return rc;
    if (c->dq_enabled && (rc = ad_dq_cfg_check(&c->dq, err, errlen)) != 0)
        return rc;
    if ((c->adapt.enabled || c->adapt.reload_shadow) &&
        (rc = ad_adapt_cfg_check(&c->adapt, err, errlen)) != 0)
        return rc;
    /* a candidate's threshold is fitted on its normal shadow windows (in
     * data time the count is raised when resolved: ad_adapt_resolve) */
    if ((c->adapt.enabled || c->adapt.reload_shadow) && c->adapt.shadow_ms == 0 &&
        c->adapt.shadow_windows < ad_adapt_shadow_need(&c->thr))
        return ad_errf(err, errlen, AD_EINVAL, "adapt.shadow_windows (%d) is fewer than "
                       "the %d windows a candidate's threshold is fitted on "
                       "(calibration.min_samples%s)", c->adapt.shadow_windows,
                       ad_adapt_shadow_need(&c->thr),
                       c->thr.method == AD_THR_POT ? ", pot_init" : "");
    if (!(c->extreme >= 0) || !isfinite(c->extreme))
        return ad_errf(err, errlen, AD_EINVAL, "calibration.extreme: must be >= 0 (got %g)",
                       c->extreme);
    if (c->calib_warn_every < 1)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.warn_every: must be >= 1 (got %d)",
                       c->calib_warn_every);
    if (c->season_ms != 0 && (c->season_ms < AD_SEASON_BINS || c->season_ms > 1000000000000LL))
        return ad_errf(err, errlen, AD_EINVAL, "calibration.season_ms: must be 0 (off) or "
                       "%d .. 1e12 (got %lld)", AD_SEASON_BINS, (long long)c->season_ms);
    if (c->season_ms != 0 && c->alert.on == AD_ALERT_ON_PROBABILITY)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.season_ms: the seasonal level "
                       "is a score level and alert.on \"probability\" judges probabilities; "
                       "set calibration.season_ms 0 or alert.on \"score\"");
    if (c->season_periods < 1 || c->season_periods > AD_SEASON_MAX_PERIODS)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.season_periods: must be 1..%d "
                       "(got %d)", AD_SEASON_MAX_PERIODS, c->season_periods);
    if (c->season_clock != AD_SEASON_UTC && c->season_clock != AD_SEASON_LOCAL)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.season_clock: must be utc or local");
    if (!(c->season_margin >= 1) || !isfinite(c->season_margin))
        return ad_errf(err, errlen, AD_EINVAL, "calibration.season_margin: must be >= 1 "
                       "(got %g)", c->season_margin);
    if (c->hop < 1)
        return ad_errf(err, errlen, AD_EINVAL, "hop: must be >= 1 (got %d)", c->hop);
    if (c->metric != AD_METRIC_MSE && c->metric != AD_METRIC_MAE && c->metric != AD_METRIC_PEAK)
        return ad_errf(err, errlen, AD_EINVAL, "metric: must be mse, mae or peak");
    if (c->normalize != AD_NORM_NONE && c->normalize != AD_NORM_FEATURE &&
        c->normalize != AD_NORM_FEATURE_RMS)
        return ad_errf(err, errlen, AD_EINVAL, "score.normalize: must be none, feature or "
                       "feature_rms");
    if (c->normalize != AD_NORM_NONE &&
        (c->thr.method == AD_THR_FIXED || c->thr.method == AD_THR_MODEL))
        return ad_errf(err, errlen, AD_EINVAL, "score.normalize \"%s\": the per-feature "
                       "scales are learned in calibration, which threshold method %s does "
                       "not run; use quantile, sigma or pot, or score.normalize \"none\"",
                       ad_detector_normalize_name(c->normalize),
                       ad_thr_method_name(c->thr.method));
    if (!(c->smooth_alpha > 0 && c->smooth_alpha <= 1))
        return ad_errf(err, errlen, AD_EINVAL, "smoothing: alpha must be in (0,1] (got %g)",
                       c->smooth_alpha);
    if (c->calib_windows < 0)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.windows: must be >= 0");
    if (c->calib_duration_ms < 0)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.duration: must be >= 0");
    if ((unsigned)c->training > AD_TRAIN_BOOTSTRAP)
        return ad_errf(err, errlen, AD_EINVAL, "training: unknown mode %d", (int)c->training);
    if (c->training != AD_TRAIN_NONE) {
        if (c->train_windows < 0 || c->train_windows > 10000000)
            return ad_errf(err, errlen, AD_EINVAL, "training.windows: must be 0..1e7 (got %d)",
                           c->train_windows);
        if (c->train_duration_ms < 0)
            return ad_errf(err, errlen, AD_EINVAL, "training.duration_ms: must be >= 0");
        if (c->train_windows == 0 && c->train_duration_ms == 0)
            return ad_errf(err, errlen, AD_EINVAL, "training.windows 0 (no count limit) "
                           "needs training.duration_ms");
        if (c->train_epochs < 1 || c->train_epochs > 100000)
            return ad_errf(err, errlen, AD_EINVAL, "training.epochs: must be >= 1 (got %d)",
                           c->train_epochs);
        if (c->boot_units < 1 || c->boot_units > AD_MAX_UNITS)
            return ad_errf(err, errlen, AD_EINVAL, "training.units: must be 1..%d",
                           AD_MAX_UNITS);
    }
    return 0;
}

#define HV(h, x) do { __typeof__(x) v_ = (x); (h) = ad_fnv1a64((h), &v_, sizeof(v_)); } while (0)

uint64_t ad_detector_cfg_hash(const ad_detector_cfg *c)
{
    uint64_t h = 14695981039346656037ull;

    HV(h, (int)c->metric);
    HV(h, c->hop);
    HV(h, c->smooth_alpha);
    HV(h, c->calib_windows);
    HV(h, c->calib_duration_ms);
    HV(h, (int)c->thr.method);
    HV(h, c->thr.q);
    HV(h, c->thr.margin);
    HV(h, c->thr.k);
    HV(h, c->thr.pot_risk);
    HV(h, c->thr.pot_init);
    HV(h, c->thr.fixed);
    h = ad_fnv1a64(h, c->thr.model_key, strnlen(c->thr.model_key, sizeof(c->thr.model_key)));
    HV(h, c->thr.adapt);
    HV(h, c->thr.max_samples);
    HV(h, c->thr.min_samples);
    HV(h, (int)c->training);
    HV(h, c->train_windows);
    if (c->train_duration_ms != 0)
        HV(h, c->train_duration_ms);
    HV(h, c->train_epochs);
    HV(h, c->boot_units);
    HV(h, c->train_seed);
    /* Robust calibration settings: hashed only when not the defaults, so
     * calibration saved before they existed stays valid. */
    if (c->thr.estimator != AD_EST_QUANTILE || c->thr.fence != 6.0 || c->thr.floor != 0.01 ||
        c->extreme != 50) {
        HV(h, (int)c->thr.estimator);
        HV(h, c->thr.fence);
        HV(h, c->thr.floor);
        HV(h, c->extreme);
    }
    if (c->thr.recur != 0)
        HV(h, c->thr.recur);
    /* scores in other units: a calibration of the other kind never applies */
    if (c->normalize != AD_NORM_NONE)
        HV(h, (int)c->normalize);
    return h;
}

static int coll_grow(ad_detector *d);

/* ---- events --------------------------------------------------------------- */

/* Grow the event ring (oldest first in the new one). 0, or -1 when full or
 * out of memory. */
static int ev_grow(ad_detector *d)
{
    int cap = d->ev_cap ? d->ev_cap * 2 : 1, i;
    ad_event *n;

    if (d->ev_cap >= AD_DETECTOR_EVENTS)
        return -1;
    if (cap > AD_DETECTOR_EVENTS)
        cap = AD_DETECTOR_EVENTS;
    if ((n = malloc((size_t)cap * sizeof(*n))) == NULL)
        return -1;
    for (i = 0; i < d->ev_len; i++)
        n[i] = d->ev[(d->ev_head + i) % d->ev_cap];
    free(d->ev);
    d->ev = n;
    d->ev_cap = cap;
    d->ev_head = 0;
    return 0;
}

ad_event *det_ev_new(ad_detector *d, ad_event_type type, int64_t ts)
{
    ad_event *e;

    /* the ring exists from creation (ad_detector_new): full means drop the
     * oldest */
    if (d->ev_len == d->ev_cap && ev_grow(d) != 0) {
        d->ev_head = (d->ev_head + 1) % d->ev_cap;
        d->ev_len--;
        d->st.events_dropped++;
    }
    e = &d->ev[(d->ev_head + d->ev_len) % d->ev_cap];
    d->ev_len++;
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->ts_ms = ts;
    e->phase = d->phase;
    e->prev_phase = d->phase;
    e->threshold = ad_threshold_value(d->thr);
    e->prev_threshold = NAN;
    e->metric = d->cfg.metric;
    if (d->model)                   /* the model that scored what it reports */
        memcpy(e->model_id, d->model->id, sizeof(e->model_id));
    e->probability = NAN;
    e->log_likelihood = NAN;
    return e;
}

int ad_detector_poll_event(ad_detector *d, ad_event *ev)
{
    if (d->ev_len == 0)
        return 0;
    *ev = d->ev[d->ev_head];
    d->ev_head = (d->ev_head + 1) % d->ev_cap;
    d->ev_len--;
    return 1;
}

void det_set_phase(ad_detector *d, ad_phase p, int64_t ts)
{
    ad_event *e;

    if (p == d->phase)
        return;
    e = det_ev_new(d, AD_EV_PHASE, ts);
    e->prev_phase = d->phase;
    e->phase = p;
    d->phase = p;
    ad_log(AD_LOG_INFO, "%s: phase %s -> %s", d->who, ad_phase_name(e->prev_phase),
           ad_phase_name(p));
    if (p == AD_PHASE_COLLECTING) {
        /* a collection anew (a training failed): no wait carried over from
         * the last one (the warning's back-off is, COLLECTION) */
        d->st.coll_flagged = 0;
        d->st.coll_flagged_since = 0;
        d->st.coll_waiting = 0;
        d->st.coll_flags[0] = '\0';
        d->coll_taken = 0;
    }
}

/* ---- creation ------------------------------------------------------------- */

void ad_detector_free(ad_detector *d)
{
    int f;

    if (d == NULL)
        return;
    free(d->ev);
    ad_stream_free(d->stream);
    ad_window_free(d->win);
    ad_threshold_free(d->thr);
    ad_alerter_free(d->alert);
    ad_likelihood_free(d->lik);
    ad_likelihood_free(d->lik_sh);
    free(d->lik_rat);
    ad_season_free(d->season);
    ad_dq_free(d->dq);
    ad_adapt_free(d->ad);
    while (d->n_retired > 0)
        ad_model_free(d->retired[--d->n_retired].m);
    free(d->retired);
    free(d->eps);
    ad_model_free(d->reload_next);
    free(d->pw);
    free(d->pw_seq);
    free(d->rowd);
    free(d->pres);
    free(d->held_v);
    free(d->held_p);
    free(d->last_val);
    free(d->lr_open);
    free(d->cq);
    free(d->acc);
    free(d->reent_s);
    free(d->onset_s);
    free(d->sd);
    free(d->sd_fit);
    free(d->lvl);
    free(d->tpend);
    free(d->tpend_ts);
    ad_burst_free(d->burst);
    free(d->burst_sp);
    free(d->burst_row);
    free(d->bshare);
    ad_noise_free(d->noise);
    ad_shift_free(d->shift);
    free(d->shift_x);
    free(d->noise_on);
    free(d->noise_share);
    free(d->acc_prof);
    free(d->srow);
    free(d->nscale);
    free(d->nshare);
    free(d->cur_e);
    free(d->cq_e);
    free(d->nb_e);
    free(d->nb_ts);
    if (d->features) {
        for (f = 0; f < d->F; f++)
            free(d->features[f]);
        free(d->features);
    }
    ad_model_free(d->owned);
    free(d->coll);
    free(d->coll_ts);
    free(d->coll_brk);
    free(d->row);
    free(d->key);
    free(d->who);
    free(d);
}

/* Check that the model's training error metric matches ours (method model). */
int det_check_model_metric(const ad_detector_cfg *c, const ad_model *m,
                              char *err, size_t errlen)
{
    cJSON *root, *e, *mt;
    int rc = 0;

    if (c->thr.method != AD_THR_MODEL || m == NULL)
        return 0;
    if (m->training == NULL)
        return ad_errf(err, errlen, AD_EINVAL,
                       "threshold method model: the model has no \"training\" metadata");
    root = cJSON_Parse(m->training);
    e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    mt = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "metric") : NULL;
    if (!cJSON_IsString(mt))
        rc = ad_errf(err, errlen, AD_EINVAL,
                     "threshold method model: training.error.metric missing in the model");
    else if (ad_detector_metric_from_name(mt->valuestring) != (int)c->metric)
        rc = ad_errf(err, errlen, AD_EINVAL,
                     "threshold method model: model errors are %s, detector metric is %s",
                     mt->valuestring, ad_detector_metric_name(c->metric));
    cJSON_Delete(root);
    return rc;
}

/* Methods that need no scores are fitted at once. */
int det_fit_without_scores(ad_detector *d)
{
    char err[200];

    if (d->cfg.thr.method != AD_THR_FIXED && d->cfg.thr.method != AD_THR_MODEL)
        return 0;
    if (ad_threshold_fit(d->thr, d->model ? d->model->training : NULL, err, sizeof(err)) != 0) {
        ad_log(AD_LOG_WARNING, "%s: %s", d->who, err);
        return -1;
    }
    return 1;
}

/* With continual learning, the last min(A, adapt.normal_windows) windows
 * inside alerts are kept, so that a regime accepted after A windows
 * teaches the next fine-tune with its own windows. Both counts must be
 * known (the learner resolved). 0, or AD_ENOMEM. */
/* The step-down ring's size: the mean's span or the scores the new
 * level's threshold is fitted on, whichever is longer. */
static size_t sd_ring_cap(const ad_detector_cfg *cfg)
{
    int W = cfg->alert.stepdown_windows, S = cfg->alert.stepdown_after;

    return (size_t)(W > S ? W : S);
}

/* A step-down regime's threshold learns from up to this many scores: the
 * larger of accept_after and stepdown_after. */
static int sd_fit_cap(const ad_detector_cfg *cfg)
{
    int A = cfg->alert.accept_after, S = cfg->alert.stepdown_after;

    return A > S ? A : S;
}

static int keep_alert_windows(ad_detector *d, int A)
{
    int M = d->cfg.adapt.normal_windows;

    if (d->ad == NULL || !ad_adapt_resolved(d->ad))
        return 0;
    if (!d->cfg.adapt.enabled || A <= 0)    /* windows restored meanwhile go */
        return ad_adapt_keep_alert_windows(d->ad, 0);
    return ad_adapt_keep_alert_windows(d->ad, (size_t)(A < M ? A : M));
}

int ad_detector_new(ad_detector **out, const ad_detector_cfg *cfg,
                    const char *key, const ad_model *m, int T, int F,
                    const char *const *features, char *err, size_t errlen)
{
    ad_detector *d = NULL;
    ad_thr_cfg tc;
    int rc, f;

    *out = NULL;
    if ((rc = ad_detector_cfg_check(cfg, err, errlen)) != 0)
        return rc;
    if (m == NULL) {
        if (cfg->training != AD_TRAIN_BOOTSTRAP)
            return ad_errf(err, errlen, AD_EINVAL,
                           "detector: a model is required unless training is bootstrap");
        if (T < 1 || T > AD_MAX_WINDOW || F < 1 || F > AD_MAX_FEATURES || features == NULL)
            return ad_errf(err, errlen, AD_EINVAL,
                           "detector: bootstrap needs the window length, features and names");
    } else {
        if ((T && T != m->window) || (F && F != m->n_features))
            return ad_errf(err, errlen, AD_EINVAL,
                           "detector: window/features %d/%d differ from the model's %d/%d",
                           T, F, m->window, m->n_features);
        if (cfg->training == AD_TRAIN_BOOTSTRAP)
            return ad_errf(err, errlen, AD_EINVAL,
                           "detector: training bootstrap starts without a model");
        T = m->window;
        F = m->n_features;
        features = (const char *const *)m->features;
        if ((rc = det_check_model_metric(cfg, m, err, errlen)) != 0)
            return rc;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "detector: out of memory");
    d->cfg = *cfg;
    d->hash = ad_detector_cfg_hash(cfg);
    d->last_regime = -1;
    d->last_reent = -1;
    d->tail_i = -1;
    for (f = 0; f < AD_REGIMES; f++)
        d->tail_occ[f] = INT64_MIN;
    d->T = T;
    d->F = F;
    d->model = m;
    d->key = strdup(key ? key : "");
    d->cfg.name = NULL;         /* borrowed: only d->who keeps it */
    d->cfg.dq_n_ranges = 0;     /* borrowed: read once, by det_dq_create */
    d->cfg.dq_range_names = NULL;
    d->cfg.dq_range_lo = d->cfg.dq_range_hi = NULL;
    if (d->key) {
        size_t wl = strlen(d->key) + (cfg->name ? strlen(cfg->name) : 0) + 24;
        if ((d->who = malloc(wl)) != NULL)
            snprintf(d->who, wl, "%s%s%sstream %s", cfg->name ? "detector " : "",
                     cfg->name ? cfg->name : "", cfg->name ? ": " : "", d->key);
    }
    d->features = calloc((size_t)F, sizeof(char *));
    d->row = malloc((size_t)F * sizeof(float));
    d->srow = malloc((size_t)F * sizeof(float));
    if (cfg->alert.accept_after > 0)
        d->acc = malloc(4 * (size_t)cfg->alert.accept_after * sizeof(double));
    if (cfg->alert.accept_after > 0 || cfg->alert.accept_after_ms > 0)
        d->acc_prof = calloc((4 + AD_REGIMES) * (size_t)F, sizeof(double));
    if (d->acc_prof != NULL && cfg->alert.stepdown_ratio > 0)
        d->sd = calloc(sd_ring_cap(cfg) + (size_t)cfg->alert.stepdown_after + (size_t)F,
                       sizeof(double));
    if (d->sd != NULL)
        d->sd_fit = calloc((size_t)AD_REGIMES * (size_t)sd_fit_cap(cfg), sizeof(double));
    if (d->key == NULL || d->who == NULL || d->features == NULL || d->row == NULL ||
        d->srow == NULL ||
        (cfg->alert.accept_after > 0 && d->acc == NULL) ||
        ((cfg->alert.accept_after > 0 || cfg->alert.accept_after_ms > 0) && d->acc_prof == NULL) ||
        (d->acc_prof != NULL && cfg->alert.stepdown_ratio > 0 &&
         (d->sd == NULL || d->sd_fit == NULL)) ||
        ev_grow(d) != 0)
        goto oom;
    for (f = 0; f < F; f++)
        if ((d->features[f] = strdup(features[f] ? features[f] : "")) == NULL)
            goto oom;
    if ((rc = ad_stream_new(&d->stream, &cfg->stream, F, err, errlen)) != 0)
        goto fail;
    if ((rc = ad_window_new(&d->win, T, F, cfg->hop)) != 0) {
        ad_errf(err, errlen, rc, "detector: window buffer %dx%d", T, F);
        goto fail;
    }
    if (m != NULL)
        ad_window_set_model(d->win, m);   /* rows are kept scaled for m */
    tc = cfg->thr;
    tc.recur_gap = (T + cfg->hop - 1) / cfg->hop;   /* windows one sample sits in */
    tc.metric = (int)cfg->metric;                   /* the floor's units */
    if ((rc = ad_threshold_new(&d->thr, &tc, err, errlen)) != 0)
        goto fail;
    d->tc = tc;
    if (cfg->normalize != AD_NORM_NONE &&
        ((d->nscale = malloc((size_t)F * sizeof(double))) == NULL ||
         (d->nshare = malloc((size_t)F * sizeof(float))) == NULL ||
         (d->cur_e = malloc((size_t)F * sizeof(float))) == NULL))
        goto oom;
    if ((rc = ad_alerter_new(&d->alert, &cfg->alert, d->key, F, err, errlen)) != 0)
        goto fail;
    if ((rc = ad_likelihood_new(&d->lik, &cfg->lik, err, errlen)) != 0 ||
        (rc = ad_likelihood_new(&d->lik_sh, &cfg->lik, err, errlen)) != 0)
        goto fail;
    if (cfg->season_ms > 0 &&
        (rc = ad_season_new(&d->season, cfg->season_ms, cfg->season_periods, err, errlen)) != 0)
        goto fail;
    d->rowd = malloc((size_t)F * sizeof(double));
    d->pres = malloc((size_t)F);
    if (cfg->stream.mode == AD_ASM_ROWS) {
        d->held_v = malloc((size_t)F * sizeof(double));
        d->held_p = malloc((size_t)F);
        if (!d->held_v || !d->held_p)
            goto oom;
    }
    d->last_val = malloc((size_t)F * sizeof(double));
    d->lr_open = calloc((size_t)F, 1);
    if (!d->rowd || !d->pres || !d->last_val || !d->lr_open)
        goto oom;
    for (f = 0; f < F; f++)
        d->last_val[f] = NAN;
    d->max_ts = INT64_MIN;
    d->dq_stall_at = INT64_MIN;
    if (cfg->dq_enabled && (rc = det_dq_create(d, cfg, err, errlen)) != 0)
        goto fail;
    /* after a clear the learner's margin is at least the windows a sample
     * sits in, less one: those share samples with the alert's windows */
    d->cfg.adapt.margin_min = (T + cfg->hop - 1) / cfg->hop - 1;
    if (d->cfg.adapt.margin_min > 100000)         /* adapt.margin's range */
        d->cfg.adapt.margin_min = 100000;
    if ((cfg->adapt.enabled || cfg->adapt.reload_shadow) &&
        (rc = ad_adapt_new(&d->ad, &d->cfg.adapt, T, F, cfg->metric, cfg->smooth_alpha,
                           &tc, err, errlen)) != 0)
        goto fail;

    if (d->ad)
        ad_adapt_set_live_threshold(d->ad, d->thr);
    if (d->ad && m != NULL)
        ad_adapt_set_reference(d->ad, m, 1);
    /* an accepted regime teaches the model with its own windows (counts
     * in data time: once the window period is known, resolve_spans) */
    if (d->ad && ad_adapt_resolved(d->ad) && keep_alert_windows(d, cfg->alert.accept_after) != 0)
        goto oom;
    if (cfg->training != AD_TRAIN_NONE) {
        if (coll_grow(d) != 0)
            goto oom;
        d->phase = AD_PHASE_COLLECTING;
    } else {
        d->phase = AD_PHASE_CALIBRATING;
        if (det_fit_without_scores(d) > 0)
            d->phase = AD_PHASE_DETECTING;
    }
    d->gen = 1;
    d->season_gen = 1;
    d->st.last_score = NAN;
    d->st.last_smoothed = NAN;
    d->st.last_probability = NAN;
    d->st.last_log_likelihood = NAN;
    d->st.season_level = NAN;
    d->rows_since_bad = UINT64_MAX / 2;
    *out = d;
    return 0;
oom:
    rc = ad_errf(err, errlen, AD_ENOMEM, "detector: out of memory");
fail:
    ad_detector_free(d);
    return rc;
}

/* ---- input ------------------------------------------------------------------ */

int ad_detector_push_sample(ad_detector *d, int64_t ts_ms, int feature, double v)
{
    uint64_t rej0 = d->dq ? det_rejected_count(d) : 0;
    int rc = ad_stream_push_sample(d->stream, ts_ms, feature, v);

    if (rc >= 0)
        det_dq_after_sample(d, rc, rej0, ts_ms, feature, v);
    return rc;
}

int ad_detector_push_text(ad_detector *d, int64_t ts_ms, int feature, const char *text)
{
    uint64_t rej0 = d->dq ? det_rejected_count(d) : 0;
    int rc = ad_stream_push_text(d->stream, ts_ms, feature, text);

    if (rc == 0) {
        char *end;
        double v = strtod(text, &end);   /* accepted: the stream parsed it */
        det_dq_after_sample(d, rc, rej0, ts_ms, feature, v);
    } else if (rc > 0) {
        det_dq_after_sample(d, rc, rej0, ts_ms, feature, NAN);
    }
    return rc;
}

static int push_row_now(ad_detector *d, int64_t ts_ms, const double *values,
                        const unsigned char *present)
{
    uint64_t rej0 = d->dq ? det_rejected_count(d) : 0;
    int rc = ad_stream_push_row(d->stream, ts_ms, values, present);
    int f;

    if (rc != 0) {
        /* a row refused for its timestamp (future, far late): the whole row */
        det_dq_refused(d, rej0, ts_ms, -1);
        return rc;
    }
    det_note_accepted(d, ts_ms);
    if (d->has_arrival) {
        d->acc_arr = d->arrival_wall;
        d->acc_known = 1;
    }
    if (d->dq == NULL)
        return rc;
    ad_dq_late(d->dq, 0, 1, det_late_clock(d, ts_ms));
    for (f = 0; f < d->F; f++) {
        int p = present == NULL || present[f];
        d->pres[f] = 0;
        if (!p)
            continue;
        if (!isfinite(values[f]) || det_absurd_value(d, f, values[f]))
            ad_dq_rejected(d->dq, f, 1);
        else
            d->pres[f] = 1;
    }
    ad_dq_row(d->dq, ts_ms, values, d->pres);
    return rc;
}

/* A ROW AHEAD (detector.h): how far ahead of the newest row, and of the
 * arrival since the last accepted one, a row is held; 0: never. */
static int64_t ahead_limit(const ad_detector *d)
{
    int64_t u = ad_stream_usual_interval(d->stream), lim;

    if (u <= 0)
        return 0;
    lim = u > INT64_MAX / AD_AHEAD_INTERVALS ? INT64_MAX : u * AD_AHEAD_INTERVALS;
    if (lim < AD_AHEAD_MIN_MS)
        lim = AD_AHEAD_MIN_MS;
    if (lim < d->cfg.stream.max_lateness_ms)
        lim = d->cfg.stream.max_lateness_ms;
    return lim;
}

static int hold_row(ad_detector *d, int64_t ts_ms, const double *values,
                    const unsigned char *present)
{
    int64_t lim, jump, arr;

    if (d->held_v == NULL || !d->has_arrival || !d->acc_known || d->max_ts == INT64_MIN ||
        ts_ms <= d->max_ts)
        return 0;
    if (__builtin_sub_overflow(ts_ms, d->max_ts, &jump))
        jump = INT64_MAX;
    /* most rows: no jump worth the usual interval's median */
    if (jump <= AD_AHEAD_MIN_MS || (lim = ahead_limit(d)) <= 0)
        return 0;
    arr = d->arrival_wall > d->acc_arr ? d->arrival_wall - d->acc_arr : 0;
    if (jump <= lim || jump - arr <= lim)
        return 0;
    /* ahead of its arrival: the stream refuses it (future) */
    if (d->cfg.stream.max_future_ms > 0 &&
        (__builtin_sub_overflow(ts_ms, d->arrival_wall, &arr) ||
         arr > d->cfg.stream.max_future_ms))
        return 0;
    memcpy(d->held_v, values, (size_t)d->F * sizeof(double));
    if (present)
        memcpy(d->held_p, present, (size_t)d->F);
    d->held_all = present == NULL;
    d->held_ts = ts_ms;
    d->held_arr = d->arrival_wall;
    d->held = 1;
    return 1;
}

/* The held row: taken (the clock did jump) or dropped (it was wrong). */
static void held_release(ad_detector *d, int take)
{
    int f, n = 0;

    d->held = 0;
    if (take) {
        push_row_now(d, d->held_ts, d->held_v, d->held_all ? NULL : d->held_p);
        return;
    }
    for (f = 0; f < d->F; f++)
        n += d->held_all || d->held_p[f];
    d->rows_ahead++;
    d->values_ahead += (uint64_t)n;
    if (d->dq)
        ad_dq_rejected(d->dq, -1, 1);
    /* said at the 1st, 2nd, 4th, 8th, ... such row: a clock glitching at
     * every other row of a fast stream does not flood the log */
    if ((d->rows_ahead & (d->rows_ahead - 1)) == 0)
        ad_log(AD_LOG_WARNING, "%s: a row stamped %lld ms ahead of the stream's newest was "
               "dropped: the next row continued before it (a device clock that glitched; "
               "%llu such row(s) so far)", d->who, (long long)(d->held_ts - d->max_ts),
               (unsigned long long)d->rows_ahead);
}

int ad_detector_push_row(ad_detector *d, int64_t ts_ms, const double *values,
                         const unsigned char *present)
{
    if (d->held) {
        /* the clock did jump: a row at or after the held one, or one that
         * the stream reorders behind it (within max_lateness_ms: rows
         * swapped in transit right after a jump) and that is nearer to it
         * than to the newest row. A row on the old cadence right after a
         * glitch just past max_lateness_ms (the largest limit) is within
         * max_lateness_ms of it too, but it continues the newest row: the
         * held one was wrong */
        if (ts_ms >= d->held_ts || (d->cfg.stream.max_lateness_ms > 0 && ts_ms > d->max_ts &&
                                    d->held_ts - ts_ms <= d->cfg.stream.max_lateness_ms &&
                                    d->held_ts - ts_ms < ts_ms - d->max_ts))
            held_release(d, 1);
        else if (ts_ms > d->max_ts)
            held_release(d, 0);          /* the held row was wrong */
        /* else: a row late anyway; the next one decides */
    }
    if (!d->held && hold_row(d, ts_ms, values, present))
        return 0;
    return push_row_now(d, ts_ms, values, present);
}

int ad_detector_push_refused(ad_detector *d, int64_t ts_ms, int feature, int nonnumeric)
{
    uint64_t rej0 = d->dq ? det_rejected_count(d) : 0;
    int rc = ad_stream_refuse(d->stream, feature, nonnumeric);

    det_dq_refused(d, rej0, ts_ms, feature);
    return rc;
}

int ad_detector_push_malformed(ad_detector *d, int64_t ts_ms)
{
    uint64_t rej0 = d->dq ? det_rejected_count(d) : 0;
    int rc = ad_stream_refuse_message(d->stream);

    det_dq_refused(d, rej0, ts_ms, -1);
    return rc;
}

void ad_detector_arrival(ad_detector *d, int64_t wall_ms)
{
    ad_stream_arrival(d->stream, wall_ms);
    d->has_arrival = 1;
    d->arrival_wall = wall_ms;
}

/* The stream's data time at wall time now (stream.h EVENT TIME). */
static int64_t data_now(const ad_detector *d, int64_t now_ms)
{
    if (!d->has_arrival)
        return now_ms;
    if (d->max_ts == INT64_MIN)
        return INT64_MIN;
    return d->max_ts + (now_ms > d->arrival_wall ? now_ms - d->arrival_wall : 0);
}

void ad_detector_advance(ad_detector *d, int64_t now_ms)
{
    int64_t t;

    /* a held row that no next row decided: taken once the arrival clock
     * has moved five usual intervals (at least 5 s) past it: a next row
     * delayed a little (a slow hop, a lost QoS 0 message) must not let a
     * glitched row in, which would drop every row after it as late */
    if (d->held && d->has_arrival) {
        int64_t u = ad_stream_usual_interval(d->stream);
        if (now_ms - d->held_arr >= (5 * u > 5000 ? 5 * u : 5000))
            held_release(d, 1);
    }
    ad_stream_advance(d->stream, now_ms);
    if (d->dq && (t = data_now(d, now_ms)) != INT64_MIN)
        ad_dq_advance(d->dq, t);
    /* a stream silent for a window ends its late window (arrival clock) */
    if (d->dq && d->has_arrival && now_ms > d->arrival_wall)
        ad_dq_late(d->dq, 0, 0, now_ms);
}

/* Windows a collection ends at: train_windows (stride 1), or
 * AD_TRAIN_MAX_WINDOWS without a count limit. */
static size_t coll_windows(const ad_detector *d)
{
    return (size_t)(d->cfg.train_windows > 0 ? d->cfg.train_windows : AD_TRAIN_MAX_WINDOWS);
}

/* Rows a collection holds at most: twice the rows of coll_windows windows
 * in one run, room for runs cut by skipped rows. */
static size_t coll_max(const ad_detector *d)
{
    return 2 * (coll_windows(d) + (size_t)d->T - 1);
}

/* Make room for more collected rows (doubling from 1024, up to coll_max). */
static int coll_grow(ad_detector *d)
{
    size_t max = coll_max(d), cap = d->coll_cap ? d->coll_cap * 2 : 1024;
    float *p;
    int64_t *t;
    unsigned char *b;

    if (d->coll_cap >= max)
        return AD_ERANGE;
    if (cap > max)
        cap = max;
    p = realloc(d->coll, cap * (size_t)d->F * sizeof(float));
    if (p == NULL)
        return AD_ENOMEM;
    d->coll = p;
    t = realloc(d->coll_ts, cap * sizeof(int64_t));
    if (t == NULL)
        return AD_ENOMEM;
    d->coll_ts = t;
    b = realloc(d->coll_brk, cap);
    if (b == NULL)
        return AD_ENOMEM;
    d->coll_brk = b;
    d->coll_cap = cap;
    return 0;
}

/* COLLECTION. COLLECTING keeps the valid rows no data-quality flag covers
 * (ad_dq_flagged: a range limit, a refused hole's held rows, a stuck run
 * once recognised); a skipped row, an invalid one or a gap ends the run
 * under way, and a training window is cut only inside one run (never
 * across a skipped row: detector_train.c); a run that ends shorter than a
 * window is dropped when the next starts. A stuck run recognised later
 * drops the rows collected since its first sample (det_coll_drop_since);
 * one recognised after the collection ended was trained on. When enough
 * windows, or rows spanning train_duration_ms, move to TRAINING. */
/* "range on temp, dropout on the stream": the conditions open now (at
 * most len bytes), or a span closed since, for the stats and the log. */
static void coll_flags_text(const ad_detector *d, char *buf, size_t len)
{
    size_t n = 0;
    int f, c;

    buf[0] = '\0';
    for (f = -1; f < d->F && n < len; f++) {
        unsigned bits = ad_dq_open_flags(d->dq, f);
        for (c = 0; c < AD_DQ_N_CHECKS && n < len; c++)
            if (bits & (1u << c)) {
                int k = snprintf(buf + n, len - n, "%s%s on %s%s%s", n ? ", " : "",
                                 ad_dq_check_name((ad_dq_check)c), f < 0 ? "the stream" : "'",
                                 f < 0 ? "" : d->features[f], f < 0 ? "" : "'");
                n = k < 0 ? len : n + (size_t)k;
            }
    }
    if (!buf[0])
        snprintf(buf, len, "a closed data-quality span");
    if (n >= len && len > 0) {
        /* cut to len: never inside a feature name's UTF-8 character (the
         * text goes into the retained state's JSON, which one half
         * character makes unreadable) */
        size_t e = strlen(buf), p = e, need;

        while (p > 0 && ((unsigned char)buf[p - 1] & 0xc0) == 0x80)
            p--;
        if (p > 0 && ((unsigned char)buf[p - 1] & 0xc0) == 0xc0) {
            unsigned char b = (unsigned char)buf[p - 1];
            need = (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : 4;
            if (e - (p - 1) < need)
                buf[p - 1] = '\0';
        }
    }
}

/* A row the collection skips on a data-quality flag: counted; once a
 * window's rows were skipped with no window's rows taken in a row between
 * them, the stream waits (coll_waiting) until a window's rows are taken in
 * a row (coll_row_taken). A wait is said in a warning, and again after an
 * hour of data time, two, four... (a day at most) while it lasts (a
 * bootstrap waited silently otherwise: the data-quality alert was there,
 * not that training waits). The back-off spans waits: it starts over only
 * once the collection went without a wait for the data time it had
 * reached, so a flag that flaps (a window's rows flagged, a few clean,
 * again) is said once an hour, two, four..., not at every turn. */
static void coll_skip_flagged(ad_detector *d, int64_t ts)
{
    d->coll_taken = 0;
    if (d->st.coll_flagged++ == 0)
        d->st.coll_flagged_since = ts;
    d->st.coll_flagged_total++;
    if (d->st.coll_flagged < (uint64_t)d->T)
        return;
    if (!d->st.coll_waiting) {
        d->st.coll_waiting = 1;
        d->coll_wait_warned = 0;
        coll_flags_text(d, d->st.coll_flags, sizeof d->st.coll_flags);
        /* quiet for the back-off's data time since the last wait: anew */
        if (d->coll_warn_ts != 0 && d->coll_wait_end_ts != 0 &&
            ts - d->coll_wait_end_ts >= d->coll_warn_gap)
            d->coll_warn_ts = 0;
    }
    if (d->coll_warn_ts != 0 && ts - d->coll_warn_ts < d->coll_warn_gap)
        return;
    /* then an hour of data time, twice that after each warning, a day at
     * most: a long wait (a replay of a month) says so a few times */
    d->coll_warn_gap = d->coll_warn_ts == 0 ? 3600 * 1000 :
                       d->coll_warn_gap >= 12 * 3600 * 1000 ? 24 * 3600 * 1000 :
                       2 * d->coll_warn_gap;
    coll_flags_text(d, d->st.coll_flags, sizeof d->st.coll_flags);
    d->coll_warn_ts = ts;
    d->coll_wait_warned = 1;
    {
        char since[40];
        ad_iso_ms(d->st.coll_flagged_since, since, sizeof since);
        ad_log(AD_LOG_WARNING, "%s: training (%s) waits: the collection skips rows a "
               "data-quality flag covers (%s): %llu rows skipped since %s, no window's rows "
               "taken in a row since; %llu windows of %zu collected", d->who,
               ad_train_mode_name(d->cfg.training), d->st.coll_flags,
               (unsigned long long)d->st.coll_flagged, since,
               (unsigned long long)d->st.windows_collected, coll_windows(d));
    }
}

/* A row the collection takes, at ts: once a window's rows were taken in a
 * row the skipped rows before them are behind it (coll_flagged 0), and a
 * wait is over (a notice, when the wait was said in a warning). */
static void coll_row_taken(ad_detector *d, int64_t ts)
{
    if (d->st.coll_flagged == 0 || ++d->coll_taken < (size_t)d->T)
        return;
    if (d->st.coll_waiting) {
        if (d->coll_wait_warned)
            ad_log(AD_LOG_NOTICE, "%s: training (%s) collects again after %llu flagged "
                   "rows skipped", d->who, ad_train_mode_name(d->cfg.training),
                   (unsigned long long)d->st.coll_flagged);
        d->coll_wait_end_ts = ts;
    }
    d->st.coll_flagged = 0;
    d->st.coll_flagged_since = 0;
    d->st.coll_waiting = 0;
    d->st.coll_flags[0] = '\0';
}

static void collect(ad_detector *d, int64_t ts, unsigned flags)
{
    int room;

    if (flags & AD_ROW_GAP)
        d->coll_break = 1;
    if (!(flags & AD_ROW_VALID)) {
        d->coll_break = 1;
        return;
    }
    if (d->dq != NULL && ad_dq_flagged(d->dq, ts, ts)) {
        d->coll_break = 1;
        coll_skip_flagged(d, ts);
        return;
    }
    coll_row_taken(d, ts);
    /* a run that ended shorter than a window holds no window: its rows go
     * (runs of gaps would otherwise fill the collection for good) */
    if (d->coll_break && d->coll_run < (size_t)d->T && d->coll_run <= d->coll_rows) {
        d->coll_rows -= d->coll_run;
        d->coll_run = 0;
    }
    room = d->coll_rows < d->coll_cap || coll_grow(d) == 0;
    if (room) {
        if (d->coll_rows == 0) {
            d->coll_t0 = ts;
            d->coll_break = 1;
        }
        if (d->coll_break)
            d->coll_run = 0;
        memcpy(d->coll + d->coll_rows * (size_t)d->F, d->row, (size_t)d->F * sizeof(float));
        d->coll_ts[d->coll_rows] = ts;
        d->coll_brk[d->coll_rows] = (unsigned char)d->coll_break;
        d->coll_break = 0;
        d->coll_rows++;
        d->coll_run++;
        if (d->coll_run >= (size_t)d->T)
            d->st.windows_collected++;
    } else if (d->coll_cap < coll_max(d)) {
        ad_log(AD_LOG_WARNING, "%s: out of memory collecting training rows: "
               "training on the %zu rows collected", d->who, d->coll_rows);
    }
    if (d->st.windows_collected >= 1 &&
        (!room || d->st.windows_collected >= coll_windows(d) ||
         (d->cfg.train_duration_ms > 0 && ts - d->coll_t0 >= d->cfg.train_duration_ms))) {
        ad_event *e;
        det_set_phase(d, AD_PHASE_TRAINING, ts);
        d->job_taken = 0;
        e = det_ev_new(d, AD_EV_TRAIN_READY, ts);
        e->n = d->st.windows_collected;
        snprintf(e->text, sizeof(e->text), "%s on %zu rows (%llu windows)",
                 ad_train_mode_name(d->cfg.training), d->coll_rows,
                 (unsigned long long)d->st.windows_collected);
        det_train_note_constant(d, e);
    }
}

void det_coll_drop_since(ad_detector *d, int64_t since_ms)
{
    size_t n = d->coll_rows, i, run = 0;
    uint64_t w = 0;

    if (d->phase != AD_PHASE_COLLECTING || n == 0 || d->coll_ts[n - 1] < since_ms)
        return;
    while (n > 0 && d->coll_ts[n - 1] >= since_ms)
        n--;
    ad_log(AD_LOG_INFO, "%s: data quality: %zu collected rows from %lld on are not trained on",
           d->who, d->coll_rows - n, (long long)since_ms);
    d->coll_rows = n;
    d->coll_break = 1;
    for (i = 0; i < n; i++) {
        run = d->coll_brk[i] ? 1 : run + 1;
        if (run >= (size_t)d->T)
            w++;
    }
    d->coll_run = run;
    d->st.windows_collected = w;
}

/* See UNTRUSTED WINDOWS in detector.h. */
static int row_untrusted(ad_detector *d, int valid)
{
    ad_stream_stats ss;
    uint64_t rej;
    int bad = 0, f;

    ad_stream_get_stats(d->stream, &ss);
    rej = ss.nonfinite + ss.nonnumeric;
    if (rej != d->rejected_seen) {
        d->rejected_seen = rej;
        bad = 1;
    }
    if (!bad && valid && d->model != NULL && d->cfg.extreme > 0) {
        ad_model_scale(d->model, d->row, d->srow, 1);
        for (f = 0; f < d->F; f++)
            if (!isfinite(d->srow[f]) || fabsf(d->srow[f]) > d->cfg.extreme) {
                bad = 1;
                break;
            }
    }
    return bad;
}

/* Copies kept at most (AD_DETECTOR_PW_BYTES, at least PW_MIN), and the
 * ring's size beyond which an emptied ring is freed. */
#define PW_MIN 1024

static int pw_max(const ad_detector *d)
{
    size_t per = (size_t)d->T * (size_t)d->F * sizeof(float);
    size_t n = per ? AD_DETECTOR_PW_BYTES / per : PW_MIN;

    if (n < PW_MIN)
        n = PW_MIN;
    return n > INT_MAX / 2 ? INT_MAX / 2 : (int)n;
}

/* Keep a copy of a handed-out window until its score is fed (continual
 * learning offers it then): as many as are out, the daemon hands out every
 * window a message completes before the first score is back (a long pack:
 * thousands). Bounded (pw_max): past it the oldest copy goes, and its
 * window will not be offered (counted). */
static void pw_keep(ad_detector *d, const float *buf, uint64_t seq)
{
    size_t TF = (size_t)d->T * (size_t)d->F;
    int slot;

    if (d->pw_len == d->pw_cap) {
        int max = pw_max(d);
        int cap = d->pw_cap ? (d->pw_cap > max / 2 ? max : d->pw_cap * 2) : 4;
        float *nb;
        uint64_t *ns;
        int i;
        if (cap <= d->pw_cap) {     /* full at the bound: drop the oldest */
            d->pw_head = (d->pw_head + 1) % d->pw_cap;
            d->pw_len--;
            d->st.adapt_unoffered++;
            goto put;
        }
        nb = malloc((size_t)cap * TF * sizeof(float));
        ns = malloc((size_t)cap * sizeof(uint64_t));
        if (!nb || !ns) {
            free(nb);
            free(ns);
            d->st.adapt_unoffered++;    /* not kept: not offered */
            return;
        }
        for (i = 0; i < d->pw_len; i++) {
            int o = (d->pw_head + i) % d->pw_cap;
            memcpy(nb + (size_t)i * TF, d->pw + (size_t)o * TF, TF * sizeof(float));
            ns[i] = d->pw_seq[o];
        }
        free(d->pw);
        free(d->pw_seq);
        d->pw = nb;
        d->pw_seq = ns;
        d->pw_cap = cap;
        d->pw_head = 0;
    }
put:
    slot = (d->pw_head + d->pw_len) % d->pw_cap;
    memcpy(d->pw + (size_t)slot * TF, buf, TF * sizeof(float));
    d->pw_seq[slot] = seq;
    d->pw_len++;
}

/* The copy of job seq was offered: it goes, and a ring grown past PW_MIN
 * by a burst goes with the last copy (the next burst grows it again). */
static void pw_used(ad_detector *d, uint64_t seq)
{
    if (d->pw_len > 0 && d->pw_seq[d->pw_head] == seq) {
        d->pw_head = (d->pw_head + 1) % d->pw_cap;
        d->pw_len--;
    }
    if (d->pw_len == 0 && d->pw_cap > PW_MIN) {
        free(d->pw);
        free(d->pw_seq);
        d->pw = NULL;
        d->pw_seq = NULL;
        d->pw_cap = 0;
        d->pw_head = 0;
    }
}

/* The kept window of job seq (older ones are dropped), or NULL. */
static const float *pw_find(ad_detector *d, uint64_t seq)
{
    size_t TF = (size_t)d->T * (size_t)d->F;

    while (d->pw_len > 0) {
        int h = d->pw_head;
        if (d->pw_seq[h] == seq)
            return d->pw + (size_t)h * TF;
        if (d->pw_seq[h] > seq)
            return NULL;
        d->pw_head = (h + 1) % d->pw_cap;
        d->pw_len--;
    }
    return NULL;
}

/* The burst test in effect for alert.burst_* (made again when a reload
 * changed them, gone when turned off). 0, or -1 when off or out of memory. */
static int burst_ready(ad_detector *d)
{
    const ad_alert_cfg *c = &d->cfg.alert;

    if (c->burst_ms <= 0) {
        ad_burst_free(d->burst);
        d->burst = NULL;
        return -1;
    }
    if (d->burst != NULL && d->burst_ms == c->burst_ms && d->burst_n == c->burst_n &&
        d->burst_z == c->burst_z)
        return 0;
    ad_burst_free(d->burst);
    d->burst = ad_burst_new(d->F, c->burst_ms, c->burst_n, c->burst_z);
    if (d->burst_sp == NULL)
        d->burst_sp = malloc((size_t)d->F * sizeof(double));
    if (d->burst_row == NULL)
        d->burst_row = malloc((size_t)d->F * sizeof(double));
    if (d->bshare == NULL)
        d->bshare = malloc((size_t)d->F * sizeof(float));
    if (d->burst == NULL || d->burst_sp == NULL || d->burst_row == NULL || d->bshare == NULL) {
        if (d->burst_ms != -1)
            ad_log(AD_LOG_WARNING, "%s: burst test off: out of memory (alert.burst_ms %lld)",
                   d->who, (long long)c->burst_ms);
        ad_burst_free(d->burst);
        d->burst = NULL;
        d->burst_ms = -1;           /* said once */
        return -1;
    }
    d->burst_ms = c->burst_ms;
    d->burst_n = c->burst_n;
    d->burst_z = c->burst_z;
    return 0;
}

/* BURST TEST: one popped row into each feature's neighbourhood (burst.h).
 * A row under a data-quality flag, or a missing value, is neither judged
 * nor a neighbour; the floor on the spread is the model's scaler (none
 * before a model, or with scaler "none": nothing judged). */
/* Each feature's learned spread (the model's scaler) in d->burst_sp, the
 * burst test's floor; NULL before a model or with scaler "none". */
static const double *burst_spread(ad_detector *d)
{
    const ad_model *m = d->model;
    int f;

    if (m == NULL || m->scaler == AD_SCALER_NONE || d->burst_sp == NULL)
        return NULL;
    for (f = 0; f < d->F; f++)
        d->burst_sp[f] = m->scaler == AD_SCALER_STANDARD ?
                         (double)m->scale_b[f] :
                         (double)m->scale_b[f] - (double)m->scale_a[f];
    return d->burst_sp;
}

static void burst_row(ad_detector *d, int64_t ts, unsigned flags)
{
    int f, flagged;

    if (burst_ready(d) != 0)
        return;
    if (flags & AD_ROW_GAP)
        ad_burst_reset(d->burst);
    flagged = d->dq != NULL && ad_dq_flagged(d->dq, ts, ts);
    for (f = 0; f < d->F; f++)
        d->burst_row[f] = flagged ? NAN : d->rowd[f];
    ad_burst_push(d->burst, ts, d->burst_row, burst_spread(d));
}

/* The burst test's state ("burst" of the saved state; burst.h SAVED
 * STATE), rows: with its neighbourhood's rows (a hand-over). NULL when the
 * test is off or has seen no row, or on OOM. */
cJSON *det_burst_save(const ad_detector *d, int rows)
{
    if (d->burst == NULL || d->last_ts == 0)
        return NULL;
    return ad_burst_save(d->burst, d->last_ts, rows);
}

/* Continue the burst test from det_burst_save's object o (after the
 * stream's last row time is restored): its outliers count on by data time
 * (those of a span ago no longer do), its neighbourhood continues when its
 * rows end at the stream's last row and the next row follows them (else
 * it refills in AD_BURST_K rows, as after a gap). Kept under other
 * alert.burst_* settings: dropped with a line saying so; damaged: a
 * warning naming the field. A usual spread refused (burst.h SAVED STATE)
 * is named in a warning and learned afresh, the rest taken. */
void det_burst_restore(ad_detector *d, const cJSON *o)
{
    char err[200];
    int rows, rc, refused;

    if (o == NULL || burst_ready(d) != 0)
        return;
    rc = ad_burst_restore(d->burst, o, d->last_ts, burst_spread(d), &rows, &refused, err,
                          sizeof(err));
    if (rc == 0 && refused > 0)
        ad_log(AD_LOG_WARNING, "%s: saved state: %s: %d usual spread(s) of the burst test "
               "learned afresh from the next rows, the rest of it kept", d->who, err, refused);
    else if (rc == AD_EINVAL)
        ad_log(AD_LOG_INFO, "%s: saved burst test dropped (%s): it counts afresh", d->who,
               err);
    else if (rc != 0)
        ad_log(AD_LOG_WARNING, "%s: saved state: %s: the burst test counts afresh", d->who,
               err);
}

/* The noise test in effect for alert.noise_* (made again when a reload
 * changed them, gone when turned off). 0, or -1 when off or out of memory. */
static int noise_ready(ad_detector *d)
{
    const ad_alert_cfg *c = &d->cfg.alert;

    if (c->noise_ms <= 0) {
        ad_noise_free(d->noise);
        d->noise = NULL;
        return -1;
    }
    if (d->noise != NULL && d->noise_ms == c->noise_ms && d->noise_ratio == c->noise_ratio)
        return 0;
    ad_noise_free(d->noise);
    d->noise = ad_noise_new(d->F, c->noise_ms, c->noise_ratio);
    if (d->noise_on == NULL)
        d->noise_on = malloc((size_t)d->F);
    if (d->noise_share == NULL)
        d->noise_share = malloc((size_t)d->F * sizeof(float));
    if (d->burst_row == NULL)
        d->burst_row = malloc((size_t)d->F * sizeof(double));
    if (d->noise == NULL || d->noise_on == NULL || d->noise_share == NULL || d->burst_row == NULL) {
        if (d->noise_ms != -1)
            ad_log(AD_LOG_WARNING, "%s: noise test off: out of memory (alert.noise_ms %lld)",
                   d->who, (long long)c->noise_ms);
        ad_noise_free(d->noise);
        d->noise = NULL;
        d->noise_ms = -1;           /* said once */
        return -1;
    }
    d->noise_ms = c->noise_ms;
    d->noise_ratio = c->noise_ratio;
    return 0;
}

/* NOISE TEST: one popped row into each feature's noise level (noise.h); a
 * row under a data-quality flag, or a missing value, is not used. */
static void noise_row(ad_detector *d, int64_t ts, unsigned flags)
{
    int f, flagged;

    if (noise_ready(d) != 0)
        return;
    if (flags & AD_ROW_GAP)
        ad_noise_reset(d->noise);
    flagged = d->dq != NULL && ad_dq_flagged(d->dq, ts, ts);
    for (f = 0; f < d->F; f++)
        d->burst_row[f] = flagged ? NAN : d->rowd[f];
    ad_noise_push(d->noise, ts, d->burst_row);
}

/* KEPT CHANGE: a change kept or ended is said (info), and counted
 * (kept_seq: the daemon publishes the retained state again). */
static void shift_said(ad_detector *d, int64_t ts)
{
    int st = ad_shift_state(d->shift);

    if (st == 2 && d->shift_said != 2) {
        ad_log(AD_LOG_INFO, "%s: kept change: the rows keep the way an alert left them "
               "(at %lld ms): windows over the threshold that move that way raise nothing "
               "until a period after the last window it kept (at least two, at most seven "
               "after its clear)", d->who, (long long)ts);
        d->kept_seq++;
    } else if (st != 2 && d->shift_said == 2) {
        int why = ad_shift_ended_why(d->shift);
        ad_log(AD_LOG_INFO, "%s: kept change ended (at %lld ms): %s", d->who, (long long)ts,
               why == AD_SHIFT_END_EXPIRED ? "its time ran out (a period with no window "
                                             "kept, at least two after its clear, or seven "
                                             "after it)" :
               why == AD_SHIFT_END_HELD ? "windows over the threshold held in a row for "
                                          "longer than a daily peak lasts" :
               "the rows went back, another way or further");
        d->kept_seq++;
    }
    d->shift_said = st;
}

/* The kept change's tracker made for this stream (shift.h): 0, or -1
 * when it is off (no period, acceptance off, under 3 features, a short
 * period, out of memory: said once). */
static int shift_ready(ad_detector *d)
{
    int64_t P = d->cfg.alert.accept_period_ms;

    if (d->shift != NULL)
        return 0;
    if (P <= 0 || d->shift_off)
        return -1;
    /* an acceptance: off with acceptance off; too few features for a
     * direction to mean much, or a period too short for its buckets */
    if ((d->cfg.alert.accept_after <= 0 && d->cfg.alert.accept_after_ms <= 0) ||
        d->F < AD_SHIFT_MIN_F || P < AD_SHIFT_BUCKETS) {
        if (d->cfg.alert.accept_after > 0 || d->cfg.alert.accept_after_ms > 0)
            ad_log(AD_LOG_INFO, "%s: kept change off: %s", d->who,
                   d->F < AD_SHIFT_MIN_F ? "fewer than 3 features"
                                         : "alert.accept_period_ms under 144 ms");
        d->shift_off = 1;
        return -1;
    }
    d->shift = ad_shift_new(d->F, P);
    if (d->shift_x == NULL)
        d->shift_x = malloc((size_t)d->F * sizeof(double));
    if (d->shift == NULL || d->shift_x == NULL) {
        ad_log(AD_LOG_WARNING, "%s: kept change off: out of memory", d->who);
        ad_shift_free(d->shift);
        d->shift = NULL;
        d->shift_off = 1;
        return -1;
    }
    return 0;
}

/* KEPT CHANGE: one popped row into the rows' levels (shift.h), with the
 * stream's period (alert.accept_period_ms; none: off); a row under a
 * data-quality flag, or a missing value, is not used. */
static void shift_row(ad_detector *d, int64_t ts)
{
    int f, flagged;

    if (shift_ready(d) != 0)
        return;
    flagged = d->dq != NULL && ad_dq_flagged(d->dq, ts, ts);
    for (f = 0; f < d->F; f++)
        d->shift_x[f] = flagged ? NAN : d->rowd[f];
    ad_shift_row(d->shift, ts, d->shift_x);
    shift_said(d, ts);
}

/* KEPT CHANGE saved ("shift" of the saved state; shift.h SAVED STATE).
 * NULL when off, before any row, or on OOM. */
cJSON *det_shift_save(const ad_detector *d)
{
    return ad_shift_save(d->shift);
}

/* The kept change's ring and change from det_shift_save's o: a change
 * kept before a restart goes on holding. Damaged, or of another period:
 * a line naming the part, and the ring fills again (the rest of the state
 * is restored). */
void det_shift_restore(ad_detector *d, const cJSON *o)
{
    char err[200];
    int rc;

    if (o == NULL || shift_ready(d) != 0)
        return;
    rc = ad_shift_restore(d->shift, o, d->last_ts != 0 ? d->last_ts : INT64_MIN, err,
                          sizeof(err));
    if (rc == AD_EINVAL) {
        /* another period, the clock stepped back: nothing damaged */
        ad_log(AD_LOG_INFO, "%s: saved kept change dropped (%s): a change is kept from the "
               "next clear", d->who, err);
        return;
    }
    if (rc != 0) {
        ad_log(AD_LOG_WARNING, "%s: saved state: %s: the kept change starts afresh (a "
               "change is kept from the next clear)", d->who, err);
        return;
    }
    /* said as restored, not as kept anew (no second line, same count) */
    d->shift_said = ad_shift_state(d->shift);
    if (d->shift_said == 2)
        d->kept_seq++;
}

int ad_detector_kept_change(const ad_detector *d, ad_kept_change *k)
{
    ad_shift_info in;

    if (k != NULL)
        memset(k, 0, sizeof(*k));
    if (d == NULL || !ad_shift_kept(d->shift, &in))
        return 0;
    if (k != NULL) {
        k->since_ms = in.since_ms;
        k->until_ms = in.until_ms;
        k->norm = in.norm;
        k->u = in.u;
        k->F = in.F;
    }
    return 1;
}

uint64_t ad_detector_kept_seq(const ad_detector *d)
{
    return d == NULL ? 0 : d->kept_seq;
}

/* The raised features now into job (noise, noise_set). */
static void noise_job(ad_detector *d, ad_window_job *job)
{
    double best = -1;

    if (d->noise == NULL || ad_noise_raised(d->noise, d->noise_on) == 0)
        return;
    for (int f = 0; f < d->F; f++) {
        if (!d->noise_on[f])
            continue;
        if (f < 64)
            job->noise_set |= (uint64_t)1 << f;
        if (ad_noise_ratio(d->noise, f) > best) {
            best = ad_noise_ratio(d->noise, f);
            job->noise = f + 1;
        }
    }
}

/* The noise test's state ("noise" of the saved state; noise.h SAVED
 * STATE). NULL when the test is off, or on OOM. */
cJSON *det_noise_save(const ad_detector *d)
{
    return d->noise == NULL ? NULL : ad_noise_save(d->noise);
}

/* Continue the noise test from det_noise_save's object o: its usual levels
 * and runs go on, the block under way starts over. Damaged or of other
 * features: a line naming the field, and the test learns afresh. */
void det_noise_restore(ad_detector *d, const cJSON *o)
{
    char err[200];

    if (o == NULL || noise_ready(d) != 0)
        return;
    if (ad_noise_restore(d->noise, o, err, sizeof(err)) != 0)
        ad_log(AD_LOG_WARNING, "%s: saved state: %s: the noise test learns afresh", d->who,
               err);
}

int ad_detector_rows_queued(const ad_detector *d)
{
    return ad_stream_pending(d->stream);
}

uint64_t ad_detector_adapt_unoffered(const ad_detector *d)
{
    return d->st.adapt_unoffered;
}

int ad_detector_collect_waiting(const ad_detector *d)
{
    return d->phase == AD_PHASE_COLLECTING && d->st.coll_waiting;
}

int ad_detector_calib_waiting(const ad_detector *d)
{
    return d->phase == AD_PHASE_CALIBRATING && d->calib_dq_waiting;
}

int ad_detector_calib_held(const ad_detector *d)
{
    return d->phase == AD_PHASE_CALIBRATING && d->calib_held;
}

uint64_t ad_detector_windows_kept(const ad_detector *d)
{
    return d->st.windows_kept;
}

int ad_detector_next_window(ad_detector *d, float *buf, ad_window_job *job)
{
    int64_t ts;
    unsigned flags;

    while (ad_stream_pop_row_d(d->stream, d->rowd, &ts, &flags)) {
        int due, f, valid = (flags & AD_ROW_VALID) != 0;
        d->st.rows++;
        d->last_ts = ts;
        for (f = 0; f < d->F; f++) {
            d->row[f] = (float)d->rowd[f];
            if (isfinite(d->rowd[f]))
                d->last_val[f] = d->rowd[f];
        }
        if (d->resume_ts > 0) {
            /* the first row after a hand-over (restored window rows):
             * continue them only if it follows them (see window_restore) */
            int64_t gap = ts - d->resume_ts;
            if (gap <= 0 || gap > d->resume_gap)
                flags |= AD_ROW_GAP;
            d->resume_ts = 0;
        }
        if (flags & AD_ROW_GAP) {
            /* no window spans the hole: start a fresh ring */
            ad_window_reset(d->win);
            d->st.window_resets++;
        }
        burst_row(d, ts, flags);
        noise_row(d, ts, flags);
        shift_row(d, ts);
        if (row_untrusted(d, valid))
            d->rows_since_bad = 0;
        else if (d->rows_since_bad < UINT64_MAX / 2)
            d->rows_since_bad++;
        if (d->phase == AD_PHASE_COLLECTING)
            collect(d, ts, flags);
        due = ad_window_push_d(d->win, ts, d->rowd, valid);
        if (!due)
            continue;
        d->st.windows++;
        if (d->phase == AD_PHASE_COLLECTING)
            continue;
        if (d->phase == AD_PHASE_TRAINING || d->model == NULL) {
            d->st.windows_skipped++;
            continue;
        }
        if (ad_window_invalid(d->win) > 0) {
            d->st.windows_invalid++;
            continue;
        }
        memset(job, 0, sizeof(*job));
        ad_window_extract(d->win, d->model, buf, &job->start_ms, &job->ts_ms);
        if (det_job_out(d, &job->ep) != 0) {    /* no memory to track it */
            d->st.windows_skipped++;
            continue;
        }
        job->det = d;
        job->seq = ++d->seq_out;
        job->gen = d->gen;
        job->model = d->model;
        job->phase = d->phase;
        job->untrusted = d->rows_since_bad < (uint64_t)d->T;
        job->burst = d->burst ? ad_burst_feature(d->burst, ts) + 1 : 0;
        noise_job(d, job);
        if (d->ad && d->phase == AD_PHASE_DETECTING) {
            /* a candidate with another scaler (a model file changed on
             * reload) gets the window re-scaled: ad_model_rescale */
            job->shadow = ad_adapt_candidate(d->ad);
            pw_keep(d, buf, job->seq);
        }
        return 1;
    }
    return 0;
}

/* ---- scores --------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void acc_occ_push(ad_detector *d, int64_t ts);

/* The continual learner's counts given in data time (adapt.normal_ms,
 * min_ms, margin_ms, shadow_ms) become windows of w ms, and what they size
 * is allocated; the detector's copy of the settings takes the counts in
 * effect. A normal set beyond the memory limit turns continual learning
 * (and reload.shadow) off for this stream, with the reason: the learner
 * then keeps nothing and schedules nothing. */
static void resolve_adapt(ad_detector *d, double w)
{
    char note[512], err[300];
    const ad_adapt_cfg *ac;
    double mb;

    if (ad_adapt_resolve(d->ad, w, note, sizeof(note), err, sizeof(err)) != 0) {
        ad_log(AD_LOG_ERR, "%s: %s off for this stream: %s%s%s", d->who,
               d->cfg.adapt.enabled ? (d->cfg.adapt.reload_shadow ? "continual learning and "
                                       "reload.shadow" : "continual learning")
                                    : "reload.shadow", err, note[0] ? "; " : "", note);
        d->cfg.adapt.enabled = 0;
        d->cfg.adapt.reload_shadow = 0;
        ad_adapt_free(d->ad);           /* nothing more is offered or held */
        d->ad = NULL;
        if (d->reload_next != NULL) {   /* a reloaded model waited for the period */
            ad_model *m = d->reload_next;

            d->reload_next = NULL;
            ad_log(AD_LOG_WARNING, "%s: new model %s swapped in at once (no shadow "
                   "evaluation)", d->who, m->id);
            det_swap_now(d, m, m, 0);
        }
        return;
    }
    if (note[0])
        ad_log(AD_LOG_WARNING, "%s: %s", d->who, note);
    ac = ad_adapt_get_cfg(d->ad);
    d->cfg.adapt = *ac;
    /* data time at a fast rate: a day of one-second windows is 86400 */
    mb = (double)ac->normal_windows * d->T * d->F * sizeof(float) / 1048576.0;
    if (ac->normal_ms > 0 && mb > 16.0)
        ad_log(AD_LOG_WARNING, "%s: adapt.normal_ms (%lld ms) is %d windows at this "
               "stream's %.4g s: a normal set of %.0f MiB per stream, and each fine-tune "
               "trains on all of them; keep one window in n (adapt.normal_stride) or "
               "shorten adapt.normal_ms", d->who, (long long)ac->normal_ms,
               ac->normal_windows, w / 1000.0, mb);
}

/* ts on the seasonal level's clock: UTC as is, or local time (the offset
 * of TZ at ts, daylight saving included). A time localtime_r cannot place
 * and |ts| beyond AD_SEASON_TS_MAX (ignored by the level) stay as they
 * are. */
static int64_t season_ts(const ad_detector *d, int64_t ts)
{
    struct tm tm;
    time_t t;

    if (d->cfg.season_clock != AD_SEASON_LOCAL || ts > AD_SEASON_TS_MAX || ts < -AD_SEASON_TS_MAX)
        return ts;
    t = (time_t)(ts >= 0 ? ts / 1000 : -((-ts + 999) / 1000));
    if (localtime_r(&t, &tm) == NULL)
        return ts;
    return ts + (int64_t)tm.tm_gmtoff * 1000;
}

/* The fewest windows alert.accept_after_ms becomes: a change's median,
 * spread and halves (try_accept) mean nothing on one or two windows, and a
 * slow stream's 8 h can be one window (daily rows: an alert accepted on
 * the window after its raise). A count (alert.accept_after) is the
 * operator's own and is kept. */
#define AD_ACCEPT_MIN 10
/* The fewest windows a seasonal period holds for its phases to mean
 * anything (the tolerance is at most P/4: season.h). */
#define AD_SEASON_MIN_WINDOWS 4

/* accept_after became a count of windows (alert.accept_after_ms, the
 * window period now known): the step-down regimes' scores, allocated for
 * AD_REGIMES x sd_fit_cap() with accept_after still 0 (stepdown_after
 * alone, old_cap), to the new cap, each regime's kept: left at the old
 * size, a regime would learn past its old cap, into the next regime's
 * scores or past the buffer's end. Out of memory: step-down regimes learn
 * no more. */
static void sd_fit_resize(ad_detector *d, int old_cap)
{
    int cap = sd_fit_cap(&d->cfg), i, n;
    double *x;

    if (d->sd_fit == NULL || cap == old_cap)
        return;
    if ((x = calloc((size_t)AD_REGIMES * (size_t)cap, sizeof(double))) == NULL) {
        free(d->sd_fit);
        d->sd_fit = NULL;
        memset(d->sd_fit_n, 0, sizeof(d->sd_fit_n));
        ad_log(AD_LOG_WARNING, "%s: step-down regimes keep their thresholds: out of memory "
               "for %d scores each", d->who, cap);
        return;
    }
    for (i = 0; i < AD_REGIMES; i++) {
        n = d->sd_fit_n[i] < cap ? d->sd_fit_n[i] : cap;
        memcpy(x + (size_t)i * (size_t)cap, d->sd_fit + (size_t)i * (size_t)old_cap,
               (size_t)n * sizeof(double));
        d->sd_fit_n[i] = n;
    }
    free(d->sd_fit);
    d->sd_fit = x;
}

/* The stream's window period is known (the median of the first
 * intervals between scored windows, so a gap does not count: at the end of
 * calibration, or after AD_WP_N intervals, whichever comes first):
 * alert.accept_after_ms / accept_gap_ms become window counts (acceptance
 * starts then: its ring is sized now; at least AD_ACCEPT_MIN windows, with
 * a warning when that raised it), so do the continual learner's
 * settings in data time (resolve_adapt: its normal set, pending queue and
 * shadow are sized now; no window is kept before), and the settings that
 * count windows are logged once in data time, with a warning when
 * accept_after lasts longer than alert.accept_period_ms: counts chosen for
 * another sample rate (480 windows are 8 h of one-minute data, 40 h of
 * five-minute data), so one alert cannot be accepted within a period. */
static void resolve_spans(ad_detector *d)
{
    ad_alert_cfg *c = &d->cfg.alert;
    const ad_adapt_cfg *ac;
    int A, G, adapt_late, raised = 0;
    int64_t P = c->accept_period_ms, dt[AD_WP_N];
    char as[400] = "", ss[160] = "";
    double w;

    if (d->window_ms > 0 || d->wp_n < 1)
        return;
    memcpy(dt, d->wp_dt, (size_t)d->wp_n * sizeof(dt[0]));
    qsort(dt, (size_t)d->wp_n, sizeof(dt[0]), cmp_i64);
    w = (double)dt[d->wp_n / 2];                    /* ms */
    d->window_ms = w;
    if (d->season && w * AD_SEASON_MIN_WINDOWS > (double)d->cfg.season_ms) {
        /* a period of one or two windows has no phases to tell apart: the
         * level would be the scores of the last days, whatever the hour (a
         * fault on 3 of 5 daily rows would be "part of the cycle") */
        ad_log(AD_LOG_WARNING, "%s: calibration.season_ms (%.3g h) holds fewer than %d "
               "windows of this stream's data (a window every %.4g s): the seasonal level "
               "is off for this stream", d->who, (double)d->cfg.season_ms / 3600e3,
               AD_SEASON_MIN_WINDOWS, w / 1000.0);
        ad_season_free(d->season);
        d->season = NULL;
    }
    if (d->season)              /* a window spans T rows, hop rows a window */
        ad_season_set_span(d->season, (double)d->T * w / (double)d->cfg.hop);
    /* the learner first: its normal set bounds the alert windows kept */
    adapt_late = d->ad != NULL && !ad_adapt_resolved(d->ad);
    if (adapt_late)
        resolve_adapt(d, w);
    if (c->accept_gap_ms > 0) {
        double g = floor((double)c->accept_gap_ms / w + 0.5);
        c->accept_gap = g > 100000000 ? 100000000 : (int)g;
    }
    if (c->accept_after_ms > 0 && d->acc == NULL) {
        double a = floor((double)c->accept_after_ms / w + 0.5);
        A = a < AD_ACCEPT_MIN ? AD_ACCEPT_MIN : a > 1000000 ? 1000000 : (int)a;
        d->acc = malloc(4 * (size_t)A * sizeof(double));
        if (d->acc == NULL || d->acc_prof == NULL || keep_alert_windows(d, A) != 0) {
            free(d->acc);
            d->acc = NULL;
            ad_log(AD_LOG_WARNING, "%s: regime acceptance off: out of memory for %d "
                   "windows (alert.accept_after_ms %lld)", d->who, A,
                   (long long)c->accept_after_ms);
        } else {
            const ad_alert *act = ad_alerter_active(d->alert);
            int old_cap = sd_fit_cap(&d->cfg);

            c->accept_after = A;
            sd_fit_resize(d, old_cap);
            raised = a < AD_ACCEPT_MIN;
            if (act != NULL) {
                /* an alert already open (raised before the period was
                 * known): its change starts here, as at a raise */
                det_acc_chain_reset(d);
                d->acc_since = act->start_ms;
                acc_occ_push(d, act->start_ms);
                d->acc_alerts = 1;
            }
        }
    } else if (adapt_late && c->accept_after > 0 && keep_alert_windows(d, c->accept_after) != 0) {
        ad_log(AD_LOG_WARNING, "%s: out of memory for the last %d windows inside "
               "alerts: an accepted regime teaches the model only with the windows after it",
               d->who, c->accept_after);
    } else if (adapt_late && c->accept_after <= 0) {
        keep_alert_windows(d, 0);   /* none kept: those restored go */
    }
    if (c->level_ms > 0 && d->lvl == NULL) {
        double l = floor((double)c->level_ms / w + 0.5);

        d->lvl_cap = l < 2 ? 2 : l > 1000000 ? 1000000 : (int)l;
        d->lvl = calloc(2 * (size_t)d->lvl_cap, sizeof(double));
        if (d->lvl == NULL)
            ad_log(AD_LOG_WARNING, "%s: level test off: out of memory for %d windows "
                   "(alert.level_ms %lld)", d->who, d->lvl_cap, (long long)c->level_ms);
        else if (d->cfg.thr.adapt &&
                 ((d->tpend = calloc((size_t)d->lvl_cap, sizeof(double))) == NULL ||
                  (d->tpend_ts = calloc((size_t)d->lvl_cap, sizeof(int64_t))) == NULL)) {
            free(d->tpend);
            d->tpend = NULL;
            ad_log(AD_LOG_WARNING, "%s: out of memory for %d windows: the threshold learns "
                   "each window at once, not after the level span", d->who, d->lvl_cap);
        }
        det_level_reset(d);
    }
    A = c->accept_after;
    G = c->accept_gap;
    ac = d->ad ? ad_adapt_get_cfg(d->ad) : &d->cfg.adapt;     /* the counts in effect */
    w /= 3600e3;                                    /* h */
    if (d->ad && ad_adapt_resolved(d->ad) && ac->enabled) {
        char ma[64] = "";
        int after = ad_adapt_margin_after(ac);

        if (after > ac->margin)         /* the windows sharing samples with an alert's */
            snprintf(ma, sizeof(ma), " (%d = %.3g h after a clear)", after, after * w);
        char st[40] = "";
        double ws = w * ac->normal_stride;      /* a kept window's span of data */

        if (ac->normal_stride > 1)
            snprintf(st, sizeof(st), " (one in %d)", ac->normal_stride);
        snprintf(as, sizeof(as), ", adapt.normal_windows %d%s = %.3g h, adapt.min_windows %d = "
                 "%.3g h, adapt.margin %d = %.3g h%s, adapt.shadow_windows %d = %.3g h",
                 ac->normal_windows, st, ac->normal_windows * ws, ac->min_windows,
                 ac->min_windows * ws, ac->margin, ac->margin * w, ma, ac->shadow_windows,
                 ac->shadow_windows * w);
    }
    else if (d->ad && ad_adapt_resolved(d->ad) && ac->reload_shadow)
        snprintf(as, sizeof(as), ", adapt.shadow_windows %d = %.3g h (reload.shadow)",
                 ac->shadow_windows, ac->shadow_windows * w);
    if (d->season) {
        char ck[48] = "UTC time";

        /* the zone in effect (a misspelt TZ is UTC): its offset now */
        if (d->cfg.season_clock == AD_SEASON_LOCAL)
            snprintf(ck, sizeof(ck), "local time, UTC%+.4g h now",
                     (double)(season_ts(d, d->last_ts) - d->last_ts) / 3600e3);
        snprintf(ss, sizeof(ss), ", calibration.season_ms %.3g h: a phase's level from "
                 "+- %.3g h of it (%s)", (double)d->cfg.season_ms / 3600e3,
                 ad_season_half(d->season) * (double)d->cfg.season_ms / AD_SEASON_BINS / 3600e3,
                 ck);
    }
    if (A == 0 && as[0] == '\0' && ss[0] == '\0')
        return;
    ad_log(AD_LOG_INFO, "%s: a window every %.4g s of data: alert.accept_after %d "
           "windows = %.3g h, alert.accept_gap %d = %.3g h%s%s",
           d->who, w * 3600.0, A, A * w, G, G * w, as, ss);
    if (raised)
        ad_log(AD_LOG_WARNING, "%s: alert.accept_after_ms (%.3g h) is %.0f windows of "
               "this stream's data (a window every %.4g s): raised to %d windows (%.3g h), the "
               "fewest a change is judged stable on", d->who,
               (double)c->accept_after_ms / 3600e3, floor((double)c->accept_after_ms /
               (w * 3600e3) + 0.5), w * 3600.0, A, A * w);
    if (A > 0 && P > 0 && A * w * 3600e3 > (double)P)
        ad_log(AD_LOG_WARNING, "%s: alert.accept_after (%d windows) lasts %.3g h of "
               "this stream's data (a window every %.4g s), longer than "
               "alert.accept_period_ms (%.3g h): one alert is never accepted within a "
               "period; set the window counts for this sample rate (or alert.accept_after_ms)",
               d->who, A, A * w, w * 3600.0, (double)P / 3600e3);
}

/* A saved window period (state "window_ms", ms) is this stream's from the
 * restore on: acceptance in data time resumes at once instead of after
 * AD_WP_N windows. Damaged: named in a warning, measured again. */
void det_window_period_restore(ad_detector *d, const cJSON *x)
{
    if (x == NULL || d->window_ms > 0)
        return;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || !(x->valuedouble >= 1) ||
        x->valuedouble > 31622400000.0) {
        ad_log(AD_LOG_WARNING, "%s: saved state: window_ms is not a period in "
               "1..31622400000 ms: ignored, measured again", d->who);
        return;
    }
    d->wp_dt[0] = (int64_t)x->valuedouble;
    d->wp_n = 1;
    resolve_spans(d);
}

/* One more scored window at ts: its interval joins the period's sample
 * (before the window is judged: acceptance is resolved for it). */
static void window_period(ad_detector *d, int64_t ts)
{
    if (d->window_ms > 0)
        return;
    if (d->wp_prev != 0 && ts > d->wp_prev && d->wp_n < AD_WP_N)
        d->wp_dt[d->wp_n++] = ts - d->wp_prev;
    d->wp_prev = ts;
    if (d->wp_n == AD_WP_N)
        resolve_spans(d);
}

/* ---- per-feature normalisation (detector.h) ------------------------------ */

int ad_detector_scales(const ad_detector *d, double *out)
{
    if (!d->has_nscale)
        return 0;
    memcpy(out, d->nscale, (size_t)d->F * sizeof(double));
    return 1;
}

/* Forget the scales and the calibration windows' errors (calibration
 * starts over). */
void det_norm_reset(ad_detector *d)
{
    d->has_nscale = 0;
    d->nb_len = d->nb_head = 0;
    if (d->ad)
        ad_adapt_set_scale(d->ad, NULL, 0);
}

/* A counted calibration window's per-feature errors e (F), data time ts:
 * kept for the fit (the newest thr.max_samples, as the threshold keeps its
 * scores). */
static void nb_push(ad_detector *d, int64_t ts, const float *e)
{
    size_t F = (size_t)d->F, max = (size_t)d->cfg.thr.max_samples, at;

    if (d->nb_len == d->nb_cap && d->nb_cap < max) {
        /* grows only before it wraps: the ring is still in order */
        size_t cap = d->nb_cap ? d->nb_cap * 2 : 256;
        float *ne;
        int64_t *nt;

        if (cap > max)
            cap = max;
        if ((ne = realloc(d->nb_e, cap * F * sizeof(float))) == NULL)
            return;
        d->nb_e = ne;
        if ((nt = realloc(d->nb_ts, cap * sizeof(int64_t))) == NULL)
            return;
        d->nb_ts = nt;
        d->nb_cap = cap;
    }
    if (d->nb_cap == 0)
        return;
    if (d->nb_len < d->nb_cap) {
        at = (d->nb_head + d->nb_len++) % d->nb_cap;
    } else {
        at = d->nb_head;
        d->nb_head = (d->nb_head + 1) % d->nb_cap;
    }
    memcpy(d->nb_e + at * F, e, F * sizeof(float));
    d->nb_ts[at] = ts;
}

/* The end of a normalised calibration: the scales from the kept windows'
 * errors, then a new threshold fitted on their normalised scores (smoothed
 * among themselves), which replaces the plain one with the seasonal level
 * and the probability history refilled. 0, or the fit's error (nothing
 * changed: calibration goes on). */
static int norm_fit(ad_detector *d, char *err, size_t errlen)
{
    size_t n = d->nb_len, F = (size_t)d->F, i, f, used = 0, out = 0;
    double *sc = NULL, *ns = NULL, prev = 0, a = d->cfg.smooth_alpha;
    ad_threshold *tn = NULL;
    int rc;

    if (n == 0)
        return ad_errf(err, errlen, AD_ERANGE, "score.normalize %s: no calibration "
                       "window to learn the per-feature scales from",
                       ad_detector_normalize_name(d->cfg.normalize));
    sc = malloc(n * sizeof(double));
    ns = malloc(F * sizeof(double));
    if (sc == NULL || ns == NULL ||
        ad_recon_scales(d->nb_e, d->nb_cap, d->nb_head, n, d->F, ns) != 0) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "score.normalize: out of memory");
        goto done;
    }
    if ((rc = ad_threshold_new(&tn, &d->tc, err, errlen)) != 0)
        goto done;
    for (i = 0; i < n; i++) {
        const float *e = d->nb_e + ((d->nb_head + i) % d->nb_cap) * F;
        double r = 0, q = 0;

        for (f = 0; f < F; f++) {
            double x = (double)e[f] / ns[f];

            q += x * x;
            if (x > r)
                r = x;
        }
        if (d->cfg.normalize == AD_NORM_FEATURE_RMS)
            r = sqrt(q / (double)F);
        if (d->calib_guard > 0 && r > d->calib_guard) {
            sc[i] = NAN;            /* over the previous threshold: left out */
            out++;
            continue;
        }
        prev = used ? a * r + (1 - a) * prev : r;
        sc[i] = prev;
        used++;
        ad_threshold_add(tn, prev);
    }
    /* the threshold's floor in normalised units: x 1, not the model's
     * training error */
    if ((rc = ad_threshold_fit(tn, NULL, err, errlen)) != 0)
        goto done;
    if (out > 0) {
        d->st.calib_excluded += out;
        d->st.calib_windows -= d->st.calib_windows >= out ? out : d->st.calib_windows;
        ad_log(AD_LOG_INFO, "%s: %zu calibration windows scored above the previous "
               "threshold %g once normalised and were left out", d->who, out, d->calib_guard);
    }
    /* an operator's freeze (a command during calibration) holds */
    ad_threshold_freeze(tn, ad_threshold_frozen(d->thr));
    ad_threshold_free(d->thr);
    d->thr = tn;
    tn = NULL;
    if (d->ad)
        ad_adapt_set_live_threshold(d->ad, d->thr);
    memcpy(d->nscale, ns, F * sizeof(double));
    d->has_nscale = 1;
    if (d->ad)
        ad_adapt_set_scale(d->ad, d->nscale, d->cfg.normalize == AD_NORM_FEATURE_RMS);
    ad_likelihood_reset(d->lik);
    for (i = 0; i < n; i++) {
        double L;

        if (!isfinite(sc[i]))
            continue;
        if (d->season)
            ad_season_add(d->season, season_ts(d, d->nb_ts[(d->nb_head + i) % d->nb_cap]),
                          sc[i]);
        ad_likelihood_update(d->lik, sc[i], 1, &L);
    }
    if (used) {
        d->smooth = prev;
        d->has_smooth = 1;
    } else {
        d->has_smooth = 0;
    }
    {
        char buf[512];
        size_t len = 0;

        buf[0] = '\0';
        for (f = 0; f < F && len < sizeof(buf) - 64; f++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%.40s %.4g",
                                    f ? ", " : "", d->features[f], ns[f]);
        ad_log(AD_LOG_INFO, "%s: per-feature scales learned on %zu windows: %s%s", d->who, n,
               buf, f < F ? ", ..." : "");
    }
    /* the errors are not needed again until a new calibration */
    free(d->nb_e);
    free(d->nb_ts);
    d->nb_e = NULL;
    d->nb_ts = NULL;
    d->nb_len = d->nb_head = d->nb_cap = 0;
done:
    ad_threshold_free(tn);
    free(sc);
    free(ns);
    return rc;
}

static int fit_now(ad_detector *d, int64_t ts, char *err, size_t errlen)
{
    ad_event *e;
    int rc;

    if (d->cfg.normalize != AD_NORM_NONE)
        rc = norm_fit(d, err, errlen);
    else
        rc = ad_threshold_fit(d->thr, d->model ? d->model->training : NULL, err, errlen);
    if (rc != 0)
        return rc;
    {
        ad_thr_info in;
        ad_threshold_info(d->thr, &in);
        ad_likelihood_set_floor(d->lik, in.floor);
    }
    d->fail_reported = 0;
    d->fail_unreported = 0;
    d->calib_guard = 0;
    e = det_ev_new(d, AD_EV_CALIBRATED, ts);
    e->threshold = ad_threshold_value(d->thr);
    e->n = ad_threshold_count(d->thr);
    snprintf(e->text, sizeof(e->text), "%s", ad_thr_method_name(d->cfg.thr.method));
    ad_log(AD_LOG_INFO, "%s: calibrated (%s) threshold %g on %llu windows", d->who,
           ad_thr_method_name(d->cfg.thr.method), e->threshold, (unsigned long long)e->n);
    resolve_spans(d);
    det_set_phase(d, AD_PHASE_DETECTING, ts);
    return 0;
}

/* Windows a stuck run needs before it is recognised (it is then flagged
 * back to its first sample): a clean-looking calibration window waits that
 * long before it counts (at most CALQ_MAX, detector_int.h). 0 without data
 * quality or before learning. */
/* Alerts of one acceptance chain must have error profiles at least this
 * similar (cosine of the summed per-feature shares; ACCEPTANCE). */
#define AD_ACCEPT_SIMILAR 0.8
/* Pooled alerts (accept_gap) are accepted once at least this many recurred. */
#define AD_ACCEPT_RECUR 3
#define AD_ACCEPT_SWITCH_MIN 5    /* windows of an alert before its profile counts */
_Static_assert(AD_ACC_OCC_TS >= AD_ACCEPT_RECUR, "occurrence starts kept must cover a pattern");
static int calib_delay(const ad_detector *d)
{
    ad_dq_learned l;
    double need = 0;
    int f;

    if (d->dq == NULL)
        return 0;
    for (f = 0; f < d->F; f++) {
        ad_dq_get_learned(d->dq, f, &l);
        if (!l.learned || !l.varies)
            continue;
        if ((double)l.stuck_need > need)
            need = (double)l.stuck_need;
        if (d->cfg.dq.stuck_ms > 0 && l.period_ms > 0) {
            double n = (double)d->cfg.dq.stuck_ms / l.period_ms;
            if (l.run_max > 0 && 2.0 * l.run_max > n)
                n = 2.0 * l.run_max;
            if (n > need)
                need = n;
        }
    }
    need = need / d->cfg.hop + 1;
    return need > CALQ_MAX ? CALQ_MAX : (int)need;
}

/* CALIBRATION PROGRESS. Windows flagged by data quality or with an
 * untrusted row never feed calibration; with calibration.duration_ms 0 a
 * sensor stuck from the start held a pretrained stream "calibrating",
 * alerting on nothing, for as long as it stuck, and neither the state nor
 * the log said why. They are counted (calib_dq_out); a window's rows'
 * worth of them in a row (ceil(T / hop) windows) with none taken between
 * is a wait, said in an info line, and again after an hour of data time,
 * two, four... (a day at most) while it lasts, as the collection's wait
 * (coll_skip_flagged): the back-off spans waits and starts over only
 * after a quiet spell as long, so a flag that flaps is not said at every
 * turn. A window taken ends it (another line, when it was said). Counts
 * only: nothing here changes what calibration takes. */
static uint64_t calib_dq_wait_windows(const ad_detector *d)
{
    uint64_t hop = d->cfg.hop > 0 ? (uint64_t)d->cfg.hop : 1;
    uint64_t n = ((uint64_t)d->T + hop - 1) / hop;

    return n > 0 ? n : 1;
}

/* "stuck on 'pressure'", "untrusted rows": why the wait, for the stats and
 * the log (at most len bytes). */
static void calib_dq_flags_text(const ad_detector *d, char *buf, size_t len)
{
    if (d->dq == NULL) {        /* quality off: only untrusted rows leave windows out */
        snprintf(buf, len, "untrusted rows");
        return;
    }
    coll_flags_text(d, buf, len);
    if (d->calib_dq_untrusted && strcmp(buf, "a closed data-quality span") == 0)
        snprintf(buf, len, "untrusted rows");
}

void det_calib_dq_reset(ad_detector *d)
{
    if (d->calib_dq_waiting)
        d->calib_dq_end_ts = d->last_ts;
    d->calib_dq_out = 0;
    d->calib_dq_run = 0;
    d->calib_dq_since = 0;
    d->calib_dq_waiting = 0;
    d->calib_dq_said = 0;
}

/* A calibration window (ending at ts) left out on a flag or an untrusted
 * row. */
static void calib_dq_left_out(ad_detector *d, int64_t ts, int untrusted)
{
    char why[120];

    d->calib_dq_out++;
    d->calib_dq_untrusted = untrusted;
    if (d->calib_dq_run++ == 0)
        d->calib_dq_since = ts;
    if (d->calib_dq_run < calib_dq_wait_windows(d))
        return;
    if (!d->calib_dq_waiting) {
        d->calib_dq_waiting = 1;
        d->calib_dq_said = 0;
        if (d->calib_dq_say_ts != 0 && d->calib_dq_end_ts != 0 &&
            ts - d->calib_dq_end_ts >= d->calib_dq_say_gap)
            d->calib_dq_say_ts = 0;
    }
    if (d->calib_dq_say_ts != 0 && ts - d->calib_dq_say_ts < d->calib_dq_say_gap)
        return;
    d->calib_dq_say_gap = d->calib_dq_say_ts == 0 ? 3600 * 1000 :
                          d->calib_dq_say_gap >= 12 * 3600 * 1000 ? 24 * 3600 * 1000 :
                          2 * d->calib_dq_say_gap;
    d->calib_dq_say_ts = ts;
    d->calib_dq_said = 1;
    calib_dq_flags_text(d, why, sizeof why);
    {
        char since[40];
        ad_iso_ms(d->calib_dq_since, since, sizeof since);
        if (d->cfg.calib_windows > 0)
            ad_log(AD_LOG_INFO, "%s: calibration waits on flagged windows (%s): %llu left "
                   "out since %s, none taken since; %llu of %d windows taken", d->who, why,
                   (unsigned long long)d->calib_dq_run, since,
                   (unsigned long long)ad_threshold_count(d->thr), d->cfg.calib_windows);
        else
            ad_log(AD_LOG_INFO, "%s: calibration waits on flagged windows (%s): %llu left "
                   "out since %s, none taken since; %llu windows taken", d->who, why,
                   (unsigned long long)d->calib_dq_run, since,
                   (unsigned long long)ad_threshold_count(d->thr));
    }
}

/* A calibration window (ending at ts) fed the threshold. */
static void calib_dq_taken(ad_detector *d, int64_t ts)
{
    if (d->calib_dq_waiting) {
        if (d->calib_dq_said)
            ad_log(AD_LOG_INFO, "%s: calibration goes on after %llu flagged windows left "
                   "out", d->who, (unsigned long long)d->calib_dq_run);
        d->calib_dq_end_ts = ts;
    }
    d->calib_dq_run = 0;
    d->calib_dq_since = 0;
    d->calib_dq_waiting = 0;
    d->calib_dq_said = 0;
}

/* The oldest held calibration window: used unless a data-quality flag now
 * covers it. */
static void calq_pop(ad_detector *d)
{
    struct calq *q = &d->cq[d->cq_head];

    if (d->dq && ad_dq_flagged(d->dq, q->from, q->to)) {
        d->st.calib_excluded++;
        calib_dq_left_out(d, q->to, 0);
        if (d->calib_held)      /* toward a wait's fallback (calibrate) */
            d->calib_flagged++;
    } else {
        ad_threshold_add(d->thr, q->s);
        if (d->cfg.normalize != AD_NORM_NONE)
            nb_push(d, q->to, d->cq_e + (size_t)d->cq_head * (size_t)d->F);
        else if (d->season)
            ad_season_add(d->season, season_ts(d, q->to), q->s);
        d->st.calib_windows++;
        calib_dq_taken(d, q->to);
    }
    d->cq_head = (d->cq_head + 1) % d->cq_cap;
    d->cq_len--;
}

/* Hold a clean calibration window (see calib_delay); returns 0, or -1 when
 * it could not be held (then the caller uses it at once). */
static int calq_push(ad_detector *d, int64_t from, int64_t to, double s, int delay)
{
    int at;

    if (d->cfg.normalize != AD_NORM_NONE && d->cq_e == NULL &&
        (d->cq_e = malloc(CALQ_MAX * (size_t)d->F * sizeof(float))) == NULL)
        return -1;
    if (d->cq == NULL) {
        if ((d->cq = malloc(CALQ_MAX * sizeof(*d->cq))) == NULL)
            return -1;
        d->cq_cap = CALQ_MAX;
        d->cq_head = d->cq_len = 0;
    }
    if (d->cq_len == d->cq_cap)
        calq_pop(d);
    at = (d->cq_head + d->cq_len) % d->cq_cap;
    d->cq[at] = (struct calq){ from, to, s };
    if (d->cfg.normalize != AD_NORM_NONE)
        memcpy(d->cq_e + (size_t)at * (size_t)d->F, d->cur_e, (size_t)d->F * sizeof(float));
    d->cq_len++;
    while (d->cq_len > delay)
        calq_pop(d);
    return 0;
}

/* The training error E the guard multiplies (CALIBRATION AGAINST THE
 * MODEL): the q99 of the training windows' errors, at most
 * AD_THR_ERROR_BODY x their q90 (threshold.h ad_thr_error_ref: a q99
 * lifted by a few training windows of another state would let that state
 * calibrate the threshold). 0 without the figures. */
static double guard_error(const char *tj, int metric, int *capped)
{
    double q99 = ad_thr_model_stat(tj, "q99", metric);
    double e = ad_thr_error_ref(ad_thr_model_stat(tj, "q90", metric), q99,
                                metric == AD_METRIC_MSE);

    *capped = e < q99;
    return e;
}

/* g x the model's training error (guard_error), or 0; taken again when
 * the model changes. */
double det_model_guard(ad_detector *d)
{
    if (d->mg_model != d->model) {
        /* only a figure recorded in this metric: the guard is an upper
         * bound of normal scores (a mae q99 is far under peak scores) */
        int capped = 0;
        double e = d->model && d->cfg.calib_model_guard > 0 ?
                   guard_error(d->model->training, (int)d->cfg.metric, &capped) : 0;
        d->mg_model = d->model;
        d->model_guard = e > 0 ? d->cfg.calib_model_guard * e : 0;
        if (capped)
            ad_log(AD_LOG_INFO, "%s: the model's training error q99 %g is over %g x its "
                   "q90 %g (training windows of another state): the calibration guard is "
                   "%g x %g", d->who,
                   ad_thr_model_stat(d->model->training, "q99", (int)d->cfg.metric),
                   AD_THR_ERROR_BODY,
                   ad_thr_model_stat(d->model->training, "q90", (int)d->cfg.metric),
                   d->cfg.calib_model_guard, e);
        else if (e > 0)
            ad_log(AD_LOG_DEBUG, "%s: calibration guard %g x the training error q99 %g "
                   "(q90 %g, q95 %g)", d->who, d->cfg.calib_model_guard, e,
                   ad_thr_model_stat(d->model->training, "q90", (int)d->cfg.metric),
                   ad_thr_model_stat(d->model->training, "q95", (int)d->cfg.metric));
    }
    return d->model_guard;
}

uint64_t det_calib_need(const ad_detector *d)
{
    uint64_t need = (uint64_t)d->cfg.calib_windows;

    if ((d->cfg.training == AD_TRAIN_BOOTSTRAP || d->cfg.own_model) &&
        d->cfg.alert.accept_after > 0 &&
        (uint64_t)d->cfg.alert.accept_after > need)
        need = (uint64_t)d->cfg.alert.accept_after;
    return need;
}

/* The hold of a bootstrap's calibration (CALIBRATION AGAINST THE MODEL)
 * begins (how: "held") or ends ("calibrated", "fallback"; "restarted": the
 * calibration started over, an operator's recalibrate or another model): an event, as
 * the log line says it, so that the state topic shows a stream whose
 * fault under way is not alerted on while it waits (up to accept_after
 * windows: 8 h with a window a minute). */
void det_calib_hold(ad_detector *d, int64_t ts, const char *how)
{
    int start = strcmp(how, "held") == 0;
    ad_event *e;

    if (start == d->calib_held)
        return;
    d->calib_held = start;
    if (start) {
        d->calib_held_ms = ts;
        d->calib_flagged = 0;
    }
    e = det_ev_new(d, AD_EV_CALIB_HELD, ts);
    e->n = d->calib_model_out;
    e->calib_flagged = d->calib_flagged;
    if (!start)
        d->calib_flagged = 0;
    e->threshold = start ? NAN : ad_threshold_value(d->thr);
    e->prev_threshold = d->model_guard > 0 ? d->model_guard : NAN;
    snprintf(e->text, sizeof(e->text), "%s", how);
}

/* The calibration saw no normal data: the model's threshold, and detect. */
static int fit_model_value(ad_detector *d, int64_t ts)
{
    double e = d->model_guard / d->cfg.calib_model_guard, v = e * d->cfg.thr.margin;
    const char *tj = d->model->training;
    double mean = ad_thr_model_stat(tj, "mean", (int)d->cfg.metric);
    double sd = ad_thr_model_stat(tj, "std", (int)d->cfg.metric);
    ad_thr_info in;
    ad_event *e_ev;
    uint64_t flagged = d->calib_flagged;

    /* the spread of normal scores (regime acceptance compares with it):
     * the training error's, else from its mean and q99 as for a normal
     * distribution, else a tenth of the threshold */
    if (!(sd > 0))
        sd = mean > 0 && e > mean ? (e - mean) / 2.326 : 0.1 * v;
    if (ad_threshold_fit_value(d->thr, v, mean > 0 ? mean : NAN, sd, tj) != 0)
        return -1;              /* pot: calibration goes on */
    ad_threshold_info(d->thr, &in);
    ad_likelihood_set_floor(d->lik, in.floor);
    d->fail_reported = 0;
    d->fail_unreported = 0;
    d->calib_guard = 0;
    d->cq_len = 0;
    det_calib_hold(d, ts, "fallback");
    e_ev = det_ev_new(d, AD_EV_CALIBRATED, ts);
    e_ev->threshold = ad_threshold_value(d->thr);
    e_ev->n = 0;
    snprintf(e_ev->text, sizeof(e_ev->text), "model");
    if (flagged > 0)
        ad_log(AD_LOG_WARNING, "%s: calibration saw no normal data: %llu windows scored "
               "above calibration.model_guard %g x the model's training error %g, and %llu "
               "could not be used while it waited (flagged by data quality: a stuck or "
               "out-of-range sensor; untrusted: a rejected or extreme value; or above the "
               "previous threshold): they end the wait as windows above the guard do; "
               "threshold %g "
               "from the model (training error x calibration.margin %g), detecting",
               d->who, (unsigned long long)d->calib_model_out, d->cfg.calib_model_guard, e,
               (unsigned long long)flagged, e_ev->threshold, d->cfg.thr.margin);
    else
        ad_log(AD_LOG_WARNING, "%s: calibration saw no normal data: %llu windows scored "
               "above calibration.model_guard %g x the model's training error %g (an "
               "anomaly under way, or a model of another process); threshold %g from the "
               "model (training error x calibration.margin %g), detecting", d->who,
               (unsigned long long)d->calib_model_out, d->cfg.calib_model_guard, e,
               e_ev->threshold, d->cfg.thr.margin);
    d->calib_model_out = 0;
    resolve_spans(d);
    det_set_phase(d, AD_PHASE_DETECTING, ts);
    return 0;
}

/* CALIBRATING: one score (see CALIBRATION FAILURES for the reports). A
 * clean window is held until a stuck run starting in it would have been
 * recognised (calib_delay windows later) and left out if flagged by then;
 * at the end of calibration the held ones are checked at once. */
static void calibrate(ad_detector *d, int64_t from, int64_t ts, double s, int untrusted)
{
    /* untrusted: an untrusted row or a data-quality flag */
    int done = 0, delay = calib_delay(d), norm = d->cfg.normalize != AD_NORM_NONE;
    double mg = det_model_guard(d);
    char err[160];

    if (!d->has_calib_start) {
        d->has_calib_start = 1;
        d->calib_start = ts;
    }
    if (!untrusted && mg > 0 && s > mg) {
        /* a model the stream trained itself: a state its training hardly
         * saw waits up to alert.accept_after windows (it would be accepted
         * as a new normal by then) before the model's threshold is taken */
        uint64_t need = det_calib_need(d);

        d->st.calib_excluded++;
        if (++d->calib_model_out == (uint64_t)d->cfg.calib_windows &&
            need > (uint64_t)d->cfg.calib_windows && d->cfg.calib_windows > 0 && !norm) {
            ad_log(AD_LOG_WARNING, "%s: calibration waits: %llu windows scored above "
                   "calibration.model_guard %g x the training error %g (a state the stream's "
                   "own training hardly saw); the model's threshold after %llu", d->who,
                   (unsigned long long)d->calib_model_out, d->cfg.calib_model_guard,
                   mg / d->cfg.calib_model_guard, (unsigned long long)need);
            det_calib_hold(d, ts, "held");
        }
        if (d->calib_model_out + d->calib_flagged >= need && d->cfg.calib_windows > 0 &&
            !norm && fit_model_value(d, ts) == 0)
            return;
    } else if (untrusted || (!norm && d->calib_guard > 0 && s > d->calib_guard)) {
        d->st.calib_excluded++;
        if (untrusted)
            calib_dq_left_out(d, ts, !(d->dq && ad_dq_flagged(d->dq, from, ts)));
        /* while it waits, a window flagged by data quality (or with an
         * untrusted row, or above the previous threshold restored as a
         * guard) counts toward the fallback as one above the guard does:
         * none is normal data, and left out of both counts a sensor stuck
         * for days held the stream calibrating, alerting on nothing, for
         * days */
        if (d->calib_held) {
            d->calib_flagged++;
            if (d->calib_model_out + d->calib_flagged >= det_calib_need(d) &&
                d->cfg.calib_windows > 0 && !norm && fit_model_value(d, ts) == 0)
                return;
        }
    } else if ((delay == 0 && d->cq_len == 0) || calq_push(d, from, ts, s, delay) != 0) {
        ad_threshold_add(d->thr, s);
        if (norm)
            nb_push(d, ts, d->cur_e);
        else if (d->season)
            ad_season_add(d->season, season_ts(d, ts), s);
        d->st.calib_windows++;
        calib_dq_taken(d, ts);
    }
    /* the end comes when it would without holding (held windows count);
     * the held ones are checked once more then: a flagged one is left out
     * and calibration goes on until calib_windows clean ones */
    if (d->cfg.calib_windows > 0 &&
        ad_threshold_count(d->thr) + (uint64_t)d->cq_len >= (uint64_t)d->cfg.calib_windows) {
        while (d->cq_len > 0)
            calq_pop(d);
        done = ad_threshold_count(d->thr) >= (uint64_t)d->cfg.calib_windows;
    }
    if (d->cfg.calib_duration_ms > 0 && ts - d->calib_start >= d->cfg.calib_duration_ms) {
        uint64_t need = det_calib_need(d);
        /* the wait above (a stream that trained its own model) not over */
        int waits = need > (uint64_t)d->cfg.calib_windows &&
                    d->calib_model_out + d->calib_flagged < need;

        while (d->cq_len > 0)
            calq_pop(d);
        /* more of the span unlike the model's training data than like it:
         * the model's threshold; but a stream that trained its own model
         * waits for it, as above, up to accept_after windows above the
         * guard (before, the time limit took the model's threshold at once,
         * whatever the wait documented), and meanwhile the count of clean
         * windows ends calibration as without the time limit (done) */
        if (mg > 0 && d->calib_model_out > ad_threshold_count(d->thr) && !norm &&
            !(waits && done)) {
            if (waits) {
                if (!d->calib_held)
                    ad_log(AD_LOG_WARNING, "%s: calibration waits: calibration.duration_ms "
                           "is over with %llu windows scored above calibration.model_guard "
                           "%g x the training error %g (a state the stream's own training "
                           "hardly saw); the model's threshold after %llu", d->who,
                           (unsigned long long)d->calib_model_out, d->cfg.calib_model_guard,
                           mg / d->cfg.calib_model_guard, (unsigned long long)need);
                det_calib_hold(d, ts, "held");
                return;
            }
            if (fit_model_value(d, ts) == 0)
                return;
        }
        done = 1;
    }
    if (!done)
        return;
    {
        uint64_t out = d->calib_model_out;
        if (fit_now(d, ts, err, sizeof(err)) == 0) {
            det_calib_hold(d, ts, "calibrated");
            if (out > 0)
                ad_log(AD_LOG_INFO, "%s: %llu calibration windows scored above "
                       "calibration.model_guard %g x the model's training error (%g) and "
                       "were left out", d->who, (unsigned long long)out,
                       d->cfg.calib_model_guard, mg / d->cfg.calib_model_guard);
            d->calib_model_out = 0;
            return;
        }
    }
    d->st.calib_failures++;
    d->fail_unreported++;
    if (!d->fail_reported ||
        d->st.windows_scored - d->fail_report_at >= (uint64_t)d->cfg.calib_warn_every) {
        ad_event *e = det_ev_new(d, AD_EV_CALIB_FAILED, ts);
        snprintf(e->text, sizeof(e->text), "%s", err);
        e->n = d->fail_unreported;
        ad_log(AD_LOG_WARNING, "%s: calibration continues (%llu failed fits since "
               "the last report): %s", d->who, (unsigned long long)d->fail_unreported, err);
        d->fail_reported = 1;
        d->fail_report_at = d->st.windows_scored;
        d->fail_unreported = 0;
    }
}

/* A regime was accepted: a learned range still open on a feature was
 * learned on the old level; center it on the new one (DATA QUALITY). */
static void dq_recenter(ad_detector *d)
{
    cJSON *o = NULL, *arr, *it, *c;
    char *txt, err[160];
    int f, any = 0;

    if (d->dq == NULL)
        return;
    for (f = 0; f < d->F; f++)
        any |= d->lr_open[f] && isfinite(d->last_val[f]);
    if (!any || (txt = ad_dq_save(d->dq)) == NULL)
        return;
    o = cJSON_Parse(txt);
    free(txt);
    arr = o ? cJSON_GetObjectItemCaseSensitive(o, "learned") : NULL;
    for (f = 0; f < d->F && cJSON_IsArray(arr); f++) {
        if (!d->lr_open[f] || !isfinite(d->last_val[f]))
            continue;
        it = cJSON_GetArrayItem(arr, f);
        c = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "center") : NULL;
        if (cJSON_IsNumber(c)) {
            cJSON_SetNumberValue(c, d->last_val[f]);
            ad_log(AD_LOG_INFO, "%s: learned range of %s recentred on %g", d->who,
                   d->features[f], d->last_val[f]);
        }
    }
    txt = o ? ad_json_print(o) : NULL;
    if (txt && ad_dq_restore(d->dq, txt, err, sizeof(err)) != 0)
        ad_log(AD_LOG_WARNING, "%s: %s", d->who, err);
    free(txt);
    cJSON_Delete(o);
}

/* The reference spread of regime acceptance (see detector.h). */
static double accept_ref_spread(const ad_detector *d)
{
    ad_thr_info in;

    ad_threshold_info(d->thr, &in);
    if (isfinite(in.spread) && in.spread > 0)
        return in.spread;
    if (in.floor > 0)
        return in.floor;
    return 0.1 * ad_threshold_value(d->thr);
}

/* Forget the step-down progress (STEP-DOWN ACCEPTANCE): a new alert, a
 * clear, an acceptance, windows acceptance cannot trust. */
void det_sd_reset(ad_detector *d)
{
    d->sd_n = d->sd_pos = d->sd_held = 0;
    d->sd_peak = 0;
}

/* Forget the acceptance chain (ACCEPTANCE). */
void det_acc_chain_reset(ad_detector *d)
{
    det_sd_reset(d);
    d->acc_len = d->acc_head = d->acc_prev = d->acc_cur = d->acc_quiet = d->acc_alerts = 0;
    d->acc_occ_n = 0;
    d->acc_onset_run = 0;
    d->acc_span = d->acc_cur_span = 0;
    if (d->acc_prof)
        memset(d->acc_prof, 0, 2 * (size_t)d->F * sizeof(double));
}

/* Append score s to the acceptance ring; 1 when the oldest score left. */
static int acc_ring_push(ad_detector *d, double s)
{
    int A = d->cfg.alert.accept_after;

    if (d->acc_len < A) {
        d->acc[(d->acc_head + d->acc_len++) % A] = s;
        return 0;
    }
    d->acc[d->acc_head] = s;
    d->acc_head = (d->acc_head + 1) % A;
    return 1;
}

/* A new occurrence of the chain started at ts. */
static void acc_occ_push(ad_detector *d, int64_t ts)
{
    if (d->acc_occ_n == AD_ACC_OCC_TS) {
        memmove(d->acc_occ_ts, d->acc_occ_ts + 1, (AD_ACC_OCC_TS - 1) * sizeof(int64_t));
        d->acc_occ_n--;
    }
    d->acc_occ_ts[d->acc_occ_n++] = ts;
}

/* How far ts lies after at's time in period P > 0: (ts - at) mod P, in
 * [0, P). */
static int64_t phase_after(int64_t ts, int64_t at, int64_t P)
{
    int64_t r = (ts - at) % P;

    return r < 0 ? r + P : r;
}

/* Do ts and at fall at the same time in period P > 0 (within P/12, two
 * hours of a day)? An alert starts when a broad peak crosses the threshold:
 * the demand peaks of a shifted level raised at 17:08 and 18:12 on
 * consecutive days (scenario shift_then_fault, bootstrap). */
#define AD_SAME_TIME_DIV 12
static int same_time(int64_t ts, int64_t at, int64_t P)
{
    int64_t r = phase_after(ts, at, P);

    return r <= P / AD_SAME_TIME_DIV || P - r <= P / AD_SAME_TIME_DIV;
}

/* Does the chain's latest occurrence start at the phase of an earlier one
 * (alert.accept_period_ms P > 0, within P/12)? 1 without a period. */
static int acc_regular(const ad_detector *d)
{
    int64_t P = d->cfg.alert.accept_period_ms, last;
    int i;

    if (P <= 0)
        return 1;
    if (d->acc_occ_n < 2)
        return 0;
    last = d->acc_occ_ts[d->acc_occ_n - 1];
    for (i = 0; i < d->acc_occ_n - 1; i++)
        if (same_time(last, d->acc_occ_ts[i], P))
            return 1;
    return 0;
}

/* The model or its state changed: the chain, the usual error profile and
 * an accepted regime were measured with the old one. */
void det_acc_reset(ad_detector *d)
{
    int f;

    det_acc_chain_reset(d);
    d->pk_len = 0;
    d->acc_resume = 0;
    if (d->acc_prof)
        memset(d->acc_prof + 2 * d->F, 0, (1 + AD_REGIMES) * (size_t)d->F * sizeof(double));
    d->acc_norm_n = 0;
    memset(d->regime_thr, 0, sizeof(d->regime_thr));
    memset(d->regime_rec, 0, sizeof(d->regime_rec));
    memset(d->regime_once, 0, sizeof(d->regime_once));
    memset(d->regime_span, 0, sizeof(d->regime_span));
    memset(d->regime_len, 0, sizeof(d->regime_len));
    memset(d->regime_quiet, 0, sizeof(d->regime_quiet));
    memset(d->regime_lvl, 0, sizeof(d->regime_lvl));
    memset(d->sd_fit_n, 0, sizeof(d->sd_fit_n));
    d->reent_run = 0;
    for (f = 0; f < AD_REGIMES; f++)
        d->regime_last[f] = INT64_MIN;
    det_acc_shadow_reset(d);
}

/* Regime i, from one persistent change, applies at its time of day
 * (recurring): its schedule spans its length so far. Once that covers most
 * of the period it has no time of day: it is one persistent change again
 * (no schedule, not recurring, no more extending), which goes dormant and
 * ends once the process left it (regime_dormant, regime_left); recurring
 * all day it never did, and every promotion that did not see it kept it. */
static void regime_schedule(ad_detector *d, int i)
{
    int64_t P = d->cfg.alert.accept_period_ms;

    d->regime_span[i] = d->regime_len[i] < P - P / 12 ? d->regime_len[i] : 0;
    d->regime_rec[i] = d->regime_span[i] > 0;
    d->regime_once[i] = d->regime_rec[i];     /* it never recurred */
    if (d->regime_span[i] == 0)
        d->regime_last[i] = INT64_MIN;
}

/* Keep v among the highest AD_REGIME_SH of a descending list h of *n
 * values seen (*n counts them all). */
static void top_insert(double *h, int *cnt, double v)
{
    int n = *cnt < AD_REGIME_SH ? *cnt : AD_REGIME_SH, j;

    (*cnt)++;
    if (n == AD_REGIME_SH && !(v > h[n - 1]))
        return;
    j = n == AD_REGIME_SH ? n - 1 : n;
    for (; j > 0 && h[j - 1] < v; j--)
        h[j] = h[j - 1];
    h[j] = v;
}

/* The candidate in shadow (cm) scored cand on the last window (trusted:
 * no data-quality flag; normal: the live model judged it normal, not over
 * its threshold and no alert open); smoothed as the detector smooths, when
 * that window was judged against an accepted regime the score joins the
 * regime's highest (det_acc_promoted asks whether the candidate learned
 * it), and when normal also the highest its level is read from. Scores of
 * another candidate (one replaced or rejected, whose batches were in
 * flight) are not counted. */
void det_acc_shadow(ad_detector *d, const void *cm, double cand, int trusted, int normal)
{
    int i;
    double a = d->cfg.smooth_alpha;

    if (cm == NULL || d->ad == NULL || cm != (const void *)ad_adapt_candidate(d->ad) ||
        !isfinite(cand))
        return;
    if (cm != d->sh_cand) {
        det_acc_shadow_reset(d);
        d->sh_cand = cm;
    }
    if (a < 1 && d->sh_has_smooth)
        cand = a * cand + (1 - a) * d->sh_smooth;
    d->sh_smooth = cand;
    d->sh_has_smooth = 1;
    /* a window withheld as a dormant regime's re-entry is that regime's
     * too: the promotion judges the regime on it */
    i = d->last_regime >= 0 ? d->last_regime : d->last_reent;
    if (i < 0 || i >= AD_REGIMES || !trusted)
        return;
    top_insert(d->regime_sh[i], &d->regime_sh_n[i], cand);
    if (normal)
        top_insert(d->regime_shn[i], &d->regime_shn_n[i], cand);
}

/* A shadow span ended or began: forget the candidate's scores. */
void det_acc_shadow_reset(ad_detector *d)
{
    memset(d->regime_sh_n, 0, sizeof(d->regime_sh_n));
    memset(d->regime_shn_n, 0, sizeof(d->regime_shn_n));
    d->sh_cand = NULL;
    d->sh_has_smooth = 0;
}

/* Would the candidate just promoted (threshold t) still alert on the
 * windows judged against regime i during its shadow span? 1: at least
 * alert.k of them score above t; 0: fewer do (it learned the regime); -1:
 * fewer than alert.k such windows were seen (nothing to tell). alert.k
 * counts over the whole span, not within n windows as the alerter does:
 * a regime is rather kept than dropped. */
static int regime_still_alerts(const ad_detector *d, int i, double t)
{
    int k = d->cfg.alert.k < 1 ? 1 : d->cfg.alert.k;

    if (k > AD_REGIME_SH)
        k = AD_REGIME_SH;
    if (d->regime_sh_n[i] < k)
        return -1;
    return d->regime_sh[i][k - 1] > t;
}

/* The candidate's threshold level on regime i's windows of the shadow
 * span that the live model judged normal (not over the regime's threshold,
 * no alert open: a fault in the regime during the span must not lift it):
 * the quantile (calibration.q) of its scores there, read off the highest
 * AD_REGIME_SH kept (ad_quantile_top), times calibration.margin, whatever
 * the threshold method and estimator (0.99 x margin for the methods
 * without a quantile). NAN without such windows. */
static double regime_cand_level(const ad_detector *d, int i)
{
    double q = d->cfg.thr.method == AD_THR_QUANTILE ? d->cfg.thr.q : 0.99;
    int n = d->regime_shn_n[i];

    if (n <= 0)
        return NAN;
    return ad_quantile_top(d->regime_shn[i], n < AD_REGIME_SH ? (size_t)n : AD_REGIME_SH,
                           (uint64_t)n, q) * d->cfg.thr.margin;
}

/* A candidate whose error on the shadow windows judged normal is ratio
 * times the live model's was promoted (the threshold already rebased).
 * Each accepted regime is judged by what the candidate did on the windows
 * judged against it during the shadow span: when fewer than alert.k of
 * them score above the new threshold, the candidate learned the regime and
 * it is dropped; when at least alert.k do, it is kept. Without such
 * windows a regime accepted as recurrences (a daily speed change: brief,
 * mostly inside alerts, not learned) is kept, one accepted from a single
 * persistent change (its windows were judged normal and taught the
 * candidate) is dropped. A persistent one that is kept, with a period
 * (alert.accept_period_ms), applies from then on only at the time of day
 * of the alert it was accepted from: a night regime accepted at 22:00
 * after 8 h, whose transitions the candidate still does not reconstruct,
 * covers 21:00-07:00, not a fault at noon; one that lasted most of the
 * period stays a persistent change (it goes dormant and ends once left).
 * Kept regimes' thresholds and
 * the usual error move to the candidate's scale by ratio, and so do the
 * chains in progress (their scores and excess profiles, acc_chain_rescale):
 * a change that recurs at the same time each day keeps counting its
 * recurrences over a promotion (a daily fine-tune falls between two of
 * them; restarting the chain there kept a level shift's evening peaks from
 * ever being accepted at an onset). A candidate that learned the change
 * raises no more recurrences and the chain ends after accept_gap quiet
 * windows as before. *kept, *ended:
 * the regimes kept and ended (the promotion event's figures). */
static double *pk_prof(const ad_detector *d);

/* A promotion: the chains in progress (the active one's scores and excess
 * profiles, the parked one's) and the runs being judged (a recurrence's
 * onset, a dormant regime's re-entry: their scores, peak and threshold)
 * move to the candidate's scale by ratio. */
static void acc_chain_rescale(ad_detector *d, double ratio)
{
    int A = d->cfg.alert.accept_after, i, f;

    for (i = 0; i < d->acc_onset_run && i < d->onset_cap; i++)
        d->onset_s[i] *= ratio;
    d->acc_onset_max *= ratio;
    d->acc_onset_thr *= ratio;
    for (i = 0; i < d->reent_run && i < d->reent_cap; i++)
        d->reent_s[i] *= ratio;
    d->reent_max *= ratio;
    d->reent_thr *= ratio;
    if (d->acc == NULL || d->acc_prof == NULL || A <= 0)
        return;
    for (i = 0; i < d->acc_len; i++)
        d->acc[(d->acc_head + i) % A] *= ratio;
    for (i = 0; i < d->pk_len; i++)
        d->acc[3 * A + i] *= ratio;
    for (f = 0; f < 2 * d->F; f++)
        d->acc_prof[f] *= ratio;
    for (f = 0; f < d->F; f++)
        pk_prof(d)[f] *= ratio;
    if (d->sd != NULL) {            /* the step-down's scores and highest mean */
        int R = (int)sd_ring_cap(&d->cfg);

        for (i = 0; i < R; i++)
            d->sd[i] *= ratio;
        d->sd_peak *= ratio;
    }
}

void det_acc_promoted(ad_detector *d, double ratio, int *kept, int *ended)
{
    int64_t P = d->cfg.alert.accept_period_ms;
    double t = ad_threshold_value(d->thr);
    int i, f, still;

    *kept = *ended = 0;
    if (!(ratio > 0) || !isfinite(ratio)) {
        for (i = 0; i < AD_REGIMES; i++)
            *ended += d->regime_thr[i] > 0;
        det_acc_reset(d);
        return;
    }
    acc_chain_rescale(d, ratio);
    /* the scores a step-down regime learned from are the old model's */
    memset(d->sd_fit_n, 0, sizeof(d->sd_fit_n));
    for (i = 0; i < AD_REGIMES; i++) {
        if (!(d->regime_thr[i] > 0))
            continue;
        still = regime_still_alerts(d, i, t);
        if (still == 1 || (still < 0 && d->regime_rec[i])) {
            /* on the candidate's scale: its error on normal windows moved
             * by ratio, not necessarily on the regime's; the windows the
             * live model judged normal against the regime must not alert
             * under the candidate either */
            d->regime_thr[i] *= ratio;
            d->regime_lvl[i] *= ratio;
            if (still == 1 && regime_cand_level(d, i) > d->regime_thr[i])
                d->regime_thr[i] = regime_cand_level(d, i);
            /* from now on at its time of day (none when it lasted most of
             * the period: it stays one persistent change, regime_schedule) */
            if (!d->regime_rec[i] && P > 0 && d->regime_len[i] > 0)
                regime_schedule(d, i);
            ad_log(AD_LOG_INFO, "%s: regime %llu kept over the promotion (%s), "
                   "threshold %.6g (candidate's level on its %d normal windows %.6g)", d->who,
                   (unsigned long long)d->regime_seq[i],
                   still == 1 ? "the candidate still scores its windows over the threshold"
                              : "recurring, fewer than alert.k windows in the shadow span",
                   d->regime_thr[i], d->regime_shn_n[i], regime_cand_level(d, i));
            (*kept)++;
            continue;
        }
        (*ended)++;
        ad_log(AD_LOG_INFO, "%s: regime %llu ends with the promotion (%s)", d->who,
               (unsigned long long)d->regime_seq[i],
               still == 0 ? "the candidate learned it"
                          : "one change, fewer than alert.k windows in the shadow span");
        d->regime_thr[i] = 0;
        d->regime_rec[i] = 0;
        d->regime_once[i] = 0;
        d->regime_span[i] = 0;
        d->regime_len[i] = 0;
    }
    if (d->acc_prof)
        for (f = 0; f < d->F; f++)
            d->acc_prof[2 * d->F + f] *= ratio;
    det_acc_shadow_reset(d);
}

/* Regime i's profile (F). */
static double *regime_prof(const ad_detector *d, int i)
{
    return d->acc_prof + (size_t)(3 + i) * (size_t)d->F;
}

/* The usual error profile and the accepted regimes, for the state file:
 * {"usual":[F],"usual_n":n,"regimes":[{"threshold":t,"recurring":b,["at_ms":ts,
 * "span_ms":ms,|"since_ms":ts,"length_ms":ms,]["quiet":n,]"profile":[F]},..]}
 * (at/span: a regime on a schedule; since/length: one from a persistent
 * change, the alert it was accepted from; quiet: the windows under the
 * threshold since one was judged against it, regime_left) oldest regime
 * first (NULL when acceptance is off or nothing was learned). Scores fed
 * without error shares learn no usual error (usual_n 0, zeros) but may
 * accept regimes (judged by level): those are saved too. */

static int onset_wait(const ad_detector *d);

/* A re-entry run of regime r (reentry) as its "reentry": {"run":n,
 * "handover":true,"since_ms":first,"threshold":thr,"peak":x,"peak_ms":t,
 * "scores":[...]} (n -1: judged, not the regime back, the rest left out).
 * Only in a hand-over's or a checkpoint's save (reent_restore says why). */
static void reent_save(const ad_detector *d, cJSON *r)
{
    cJSON *o = cJSON_AddObjectToObject(r, "reentry"), *a;
    int n = d->reent_run < d->reent_cap ? d->reent_run : d->reent_cap, i;

    if (o == NULL || !cJSON_AddNumberToObject(o, "run", d->reent_run) ||
        !cJSON_AddBoolToObject(o, "handover", 1) || d->reent_run < 0)
        return;
    cJSON_AddNumberToObject(o, "since_ms", (double)d->reent_ts);
    cJSON_AddNumberToObject(o, "threshold", d->reent_thr);
    cJSON_AddNumberToObject(o, "peak", d->reent_max);
    cJSON_AddNumberToObject(o, "peak_ms", (double)d->reent_peak_ms);
    a = cJSON_AddArrayToObject(o, "scores");
    for (i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(d->reent_s[i]));
}

/* The saved re-entry run of the regime restored into slot k (reent_save;
 * none: none under way, or an older state). From a hand-over or a
 * checkpoint ("handover": nothing consumed after it) it goes on from the
 * windows withheld before the save: a stop, a partition move or a reload
 * rebuilding the detector inside it neither drops them (they raise, or the
 * regime wakes, as without it) nor starts the wait again. Not from a save
 * in the middle of the stream (kill -9, as for the onset run,
 * detector_state.c onset_restore): the windows since are lost, and whether
 * the run went on, ended or raised is not known; restored, it raised a
 * second alert for windows the first had already raised (its start the
 * same, another id). The wait starts again at the next window its way.
 * The run is at most the wait (2w - 1 windows, what a live run reaches);
 * scores fewer than the run (a save after running out of memory kept its
 * first ones) are filled with its highest, as onset_restore does. Damaged:
 * a warning naming the field, none. */
static void reent_restore(ad_detector *d, const cJSON *o, int i, int k)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "run"), *x;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "since_ms");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(o, "peak");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "peak_ms");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scores");
    int run, m = 0, w = onset_wait(d);

    if (o == NULL || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "handover")))
        return;
    if (!cJSON_IsNumber(n) || !(n->valuedouble >= -1 && n->valuedouble <= w) ||
        n->valuedouble != floor(n->valuedouble) || n->valuedouble == 0) {
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].reentry.run is not "
               "-1 or 1..%d (the wait): a run its way starts again at the next window",
               d->who, i, w);
        return;
    }
    if (n->valuedouble > 0 &&
        (!cJSON_IsNumber(t) || !(fabs(t->valuedouble) <= 1e15) ||
         !cJSON_IsNumber(pt) || !(fabs(pt->valuedouble) <= 1e15) ||
         !cJSON_IsNumber(thr) || !(thr->valuedouble > 0) || !isfinite(thr->valuedouble) ||
         !cJSON_IsNumber(pk) || !isfinite(pk->valuedouble) || !cJSON_IsArray(sc) ||
         cJSON_GetArraySize(sc) > n->valuedouble)) {
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].reentry is damaged "
               "(since_ms, peak_ms, threshold, peak or scores): a run its way starts again "
               "at the next window", d->who, i);
        return;
    }
    run = (int)n->valuedouble;
    if (run > 0) {
        cJSON_ArrayForEach(x, sc) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
                ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].reentry."
                       "scores holds a non-number: a run its way starts again at the next "
                       "window", d->who, i);
                return;
            }
            det_run_keep(d, &d->reent_s, &d->reent_cap, m++, x->valuedouble);
        }
        if (m < run)
            ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].reentry.scores "
                   "holds %d of the run's %d: the rest taken at its highest (peak)",
                   d->who, i, m, run);
        while (m < run)
            det_run_keep(d, &d->reent_s, &d->reent_cap, m++, pk->valuedouble);
        d->reent_ts = (int64_t)t->valuedouble;
        d->reent_thr = thr->valuedouble;
        d->reent_max = pk->valuedouble;
        d->reent_peak_ms = (int64_t)pt->valuedouble;
    }
    d->reent_run = run;
    d->reent_i = k;
}

cJSON *det_acc_save(const ad_detector *d, int handover)
{
    cJSON *o, *a, *rs;
    uint64_t last = 0;
    int f, k, any = 0;

    for (k = 0; k < AD_REGIMES; k++)
        any |= d->regime_thr[k] > 0;
    if (d->acc_prof == NULL || (d->acc_norm_n == 0 && !any) ||
        (o = cJSON_CreateObject()) == NULL)
        return NULL;
    a = cJSON_AddArrayToObject(o, "usual");
    for (f = 0; a && f < d->F; f++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(d->acc_prof[2 * d->F + f]));
    cJSON_AddNumberToObject(o, "usual_n", (double)d->acc_norm_n);
    rs = cJSON_AddArrayToObject(o, "regimes");
    for (k = 0; rs && k < AD_REGIMES; k++) {
        int i = -1, j;
        cJSON *r;
        for (j = 0; j < AD_REGIMES; j++)    /* the k-th oldest */
            if (d->regime_thr[j] > 0 && (i < 0 || d->regime_seq[j] < d->regime_seq[i]) &&
                (k == 0 || d->regime_seq[j] > last))
                i = j;
        if (i < 0)
            break;
        last = d->regime_seq[i];
        if ((r = cJSON_CreateObject()) == NULL)
            break;
        cJSON_AddItemToArray(rs, r);
        cJSON_AddNumberToObject(r, "threshold", d->regime_thr[i]);
        cJSON_AddBoolToObject(r, "recurring", d->regime_rec[i]);
        if (d->regime_once[i])
            cJSON_AddBoolToObject(r, "once", 1);
        if (d->regime_span[i] > 0) {
            cJSON_AddNumberToObject(r, "at_ms", (double)d->regime_at[i]);
            cJSON_AddNumberToObject(r, "span_ms", (double)d->regime_span[i]);
        } else if (!d->regime_rec[i] && d->regime_len[i] > 0) {
            cJSON_AddNumberToObject(r, "since_ms", (double)d->regime_at[i]);
            cJSON_AddNumberToObject(r, "length_ms", (double)d->regime_len[i]);
        }
        if (!d->regime_rec[i] && d->regime_span[i] == 0 && d->regime_quiet[i] > 0)
            cJSON_AddNumberToObject(r, "quiet", (double)d->regime_quiet[i]);
        if (d->regime_lvl[i] > 0)
            cJSON_AddNumberToObject(r, "level", d->regime_lvl[i]);
        if (handover && d->reent_run != 0 && d->reent_i == i)
            reent_save(d, r);
        a = cJSON_AddArrayToObject(r, "profile");
        for (f = 0; a && f < d->F; f++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(regime_prof(d, i)[f]));
        if (d->sd_fit != NULL && d->sd_fit_n[i] > 0) {
            const double *x = d->sd_fit + (size_t)i * (size_t)sd_fit_cap(&d->cfg);
            a = cJSON_AddArrayToObject(r, "stepdown_scores");
            for (f = 0; a && f < d->sd_fit_n[i]; f++)
                cJSON_AddItemToArray(a, cJSON_CreateNumber(x[f]));
        }
    }
    return o;
}

/* Saved regime i (into slot k, its profile read): the scores a step-down
 * regime's threshold learns from ("stepdown_scores", up to sd_fit_cap()
 * finite numbers >= 0: scores are errors); missing (not a step-down's, or
 * saved by an older version), it does not learn; damaged (not an array of
 * such numbers, or on a regime with an error profile: not a step-down's),
 * a warning naming it and it does not learn, keeping its threshold. More
 * than the cap (accept_after or stepdown_after lowered since): the first
 * ones, and it learns no more. */
static void read_sd_fit(ad_detector *d, const cJSON *r, int i, int k)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, "stepdown_scores"), *x;
    int cap, n = 0, f, any = 0;
    double *out;

    d->sd_fit_n[k] = 0;
    if (d->sd_fit == NULL || a == NULL)
        return;
    cap = sd_fit_cap(&d->cfg);
    out = d->sd_fit + (size_t)k * (size_t)cap;
    for (f = 0; f < d->F; f++)
        any |= regime_prof(d, k)[f] != 0;
    if (any) {
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].stepdown_scores is on "
               "a regime with an error profile (a step down's has none): ignored, the regime "
               "keeps its threshold", d->who, i);
        return;
    }
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < 1) {
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].stepdown_scores is "
               "not an array of numbers: the regime keeps its threshold", d->who, i);
        return;
    }
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || !(x->valuedouble >= 0)) {
            ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].stepdown_scores"
                   "[%d] is not a finite number >= 0: the regime keeps its threshold", d->who,
                   i, n);
            return;
        }
        if (n == cap) {             /* accept_after lowered: the first ones */
            ad_log(AD_LOG_INFO, "%s: saved state: acceptance.regimes[%d].stepdown_scores "
                   "holds %d scores, more than the %d it learns from now: the first %d kept, "
                   "it learns no more", d->who, i, cJSON_GetArraySize(a), cap, cap);
            break;
        }
        out[n++] = x->valuedouble;
    }
    d->sd_fit_n[k] = n;
}

/* Read F finite numbers of array a into out; 0 when it holds them. */
static int read_vec(const cJSON *a, int F, double *out)
{
    int f;

    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != F)
        return -1;
    for (f = 0; f < F; f++) {
        const cJSON *x = cJSON_GetArrayItem(a, f);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return -1;
        out[f] = x->valuedouble;
    }
    return 0;
}

/* Saved regime i's pair of times (a time and a length in ms) from r into
 * *at and *len when both are there, |time| <= 1e15, the length is 1..1e12
 * and the regime's "recurring" flag rec is the pair's (want); a damaged or
 * misplaced pair is named in a warning and ignored. */
static void read_time_pair(const ad_detector *d, const cJSON *r, int i, int rec, int want,
                           const char *tn, const char *ln, int64_t *at, int64_t *len)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, tn);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, ln);

    if (rec == want && cJSON_IsNumber(t) && cJSON_IsNumber(l) && fabs(t->valuedouble) <= 1e15 &&
        l->valuedouble >= 1 && l->valuedouble <= 1e12) {
        *at = (int64_t)t->valuedouble;
        *len = (int64_t)l->valuedouble;
    } else if (t != NULL || l != NULL) {
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d]: %s/%s need "
               "\"recurring\": %s, |%s| <= 1e15 and %s in 1..1e12: ignored", d->who, i, tn,
               ln, want ? "true" : "false", tn, ln);
    }
}

/* Restore what det_acc_save wrote (same model and settings: the caller
 * checked); anything malformed is ignored and relearned. usual_n 0: no
 * usual error learned (scores fed without shares), the regimes kept. */
void det_acc_restore(ad_detector *d, const cJSON *o)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "usual_n");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "regimes"), *r;
    double *u;
    int k = 0, i = 0;

    if (d->acc_prof == NULL || o == NULL)
        return;
    u = d->acc_prof + 2 * d->F;
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(n) || !(n->valuedouble >= 0) ||
        read_vec(cJSON_GetObjectItemCaseSensitive(o, "usual"), d->F, u) != 0) {
        memset(u, 0, (size_t)d->F * sizeof(double));
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.usual/usual_n not %d "
               "finite numbers and a count >= 0: ignored, relearned", d->who, d->F);
        return;
    }
    if (n->valuedouble < 1)
        memset(u, 0, (size_t)d->F * sizeof(double));   /* none learned */
    d->acc_norm_n = n->valuedouble > 1000 ? 1000 : (uint64_t)n->valuedouble;
    if (rs != NULL && !cJSON_IsArray(rs)) {
        ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes is not an array: "
               "ignored", d->who);
        return;
    }
    cJSON_ArrayForEach(r, rs) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "threshold");
        if (k == AD_REGIMES)
            break;
        if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || !(t->valuedouble > 0) ||
            read_vec(cJSON_GetObjectItemCaseSensitive(r, "profile"), d->F,
                     regime_prof(d, k)) != 0) {
            memset(regime_prof(d, k), 0, (size_t)d->F * sizeof(double));
            ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d] needs a "
                   "threshold > 0 and a profile of %d finite numbers: ignored", d->who, i,
                   d->F);
            i++;
            continue;
        }
        d->regime_thr[k] = t->valuedouble;
        d->regime_seq[k] = ++d->regime_n;
        d->regime_rec[k] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "recurring"));
        /* on a schedule from one change a promotion kept (none saved: an
         * older state, taken as recurring) */
        d->regime_once[k] = d->regime_rec[k] &&
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "once"));
        d->tail_occ[k] = INT64_MIN;
        d->tail_fresh = 1;      /* the current occurrence has had its tail */
        /* a schedule (recurring) or the alert it was accepted from (one
         * persistent change: its time of day, should a promotion keep it);
         * damaged, the regime is kept without it (at any time) */
        d->regime_span[k] = d->regime_len[k] = 0;
        d->regime_last[k] = INT64_MIN;      /* not extended after a restart */
        read_time_pair(d, r, i, d->regime_rec[k], 1, "at_ms", "span_ms", &d->regime_at[k],
                       &d->regime_span[k]);
        read_time_pair(d, r, i, d->regime_rec[k], 0, "since_ms", "length_ms", &d->regime_at[k],
                       &d->regime_len[k]);
        /* the windows since one was last judged against it (regime_left);
         * none saved (an older state) or damaged: counted from here */
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(r, "quiet");
        d->regime_quiet[k] = 0;
        if (cJSON_IsNumber(q) && q->valuedouble >= 0 && q->valuedouble <= 1e12)
            d->regime_quiet[k] = (int64_t)q->valuedouble;
        else if (q != NULL)
            ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].quiet is not a "
                   "count in 0..1e12: counted from here", d->who, i);
        /* recurring with no schedule while alert.accept_period_ms is set:
         * a regime kept all day by a promotion, saved before such a regime
         * stayed one persistent change (regime_schedule): it is one now,
         * so it goes dormant and ends once the process left it */
        if (d->regime_rec[k] && d->regime_span[k] == 0 && d->cfg.alert.accept_period_ms > 0) {
            d->regime_rec[k] = 0;
            d->regime_once[k] = 0;
            ad_log(AD_LOG_INFO, "%s: saved state: acceptance.regimes[%d] is recurring with no "
                   "time of day (kept all day): restored as one persistent change", d->who, i);
        }
        /* its level (regime_dormant); none saved (an older state) or
         * damaged: its threshold over calibration.margin (what the
         * threshold rule fitted on its scores, at or above the median they
         * sat at), so it goes dormant as a regime saved with it does */
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(r, "level");
        double mg = d->cfg.thr.margin > 1 ? d->cfg.thr.margin : 1;
        d->regime_lvl[k] = d->regime_thr[k] / mg;
        if (cJSON_IsNumber(lv) && isfinite(lv->valuedouble) && lv->valuedouble > 0)
            d->regime_lvl[k] = lv->valuedouble;
        else if (lv != NULL)
            ad_log(AD_LOG_WARNING, "%s: saved state: acceptance.regimes[%d].level is not a "
                   "positive number: its threshold / calibration.margin (%.6g) instead",
                   d->who, i, d->regime_lvl[k]);
        else if (!d->regime_rec[k] && d->regime_span[k] == 0)
            ad_log(AD_LOG_INFO, "%s: saved state: acceptance.regimes[%d] has no level (an "
                   "older state): its threshold / calibration.margin, %.6g", d->who, i,
                   d->regime_lvl[k]);
        read_sd_fit(d, r, i, k);
        reent_restore(d, cJSON_GetObjectItemCaseSensitive(r, "reentry"), i, k);
        k++;
        i++;
    }
}

static double cosine(const double *a, const double *b, int F)
{
    double ab = 0, aa = 0, bb = 0;
    int f;

    for (f = 0; f < F; f++) {
        ab += a[f] * b[f];
        aa += a[f] * a[f];
        bb += b[f] * b[f];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

/* Cosine of the chain's earlier alerts' error profile and the current
 * alert's (1 when unknown: no shares were given). */
static double acc_similarity(const ad_detector *d)
{
    const double *a = d->acc_prof, *b = d->acc_prof + d->F;
    int f, any = 0;

    for (f = 0; f < d->F; f++)
        any |= a[f] != 0 && b[f] != 0;
    return any ? cosine(a, b, d->F) : 1.0;
}

/* Does this window look like the accepted regime (ACCEPTANCE)? Its score is
 * at most the regime's threshold, and its excess error either points the
 * regime's way or, once the regime's part is taken away, leaves a score
 * within the threshold thr. With v = s * share (per-feature error, summing
 * to s), u the usual error, e = v - u and g the regime's profile (unit
 * vector): cos(e, g) >= AD_ACCEPT_SIMILAR (what decides far above the
 * threshold, where the direction is clear), or s - max(0, e.g) * sum(g) <=
 * thr (what decides near it, where a little noise turns the direction). A
 * fault on another feature fails both. Without error shares only the level
 * can tell. */
/* A DORMANT REGIME: one accepted from one persistent change (not
 * recurring, on no schedule; with continual learning, where regime_left
 * counts its quiet windows) that the process has left: no window judged
 * against it over accept_after / RECUR windows under the stream's
 * threshold, the quiet spell after which an alert is a new occurrence, not
 * the last one flapping (ACCEPTANCE). It is kept until regime_left ends it,
 * but no window is judged against it as it comes: a change its way is a
 * new onset, judged at the regime's level (reentry). Before, it silenced
 * any fault its way under its threshold until it ended, and each window
 * judged against it put its end off again. From the saved "quiet" and
 * "level" (an older state without it: its threshold / calibration.margin,
 * det_acc_restore). */
static int regime_dormant(const ad_detector *d, int i)
{
    int D = d->cfg.alert.accept_after / AD_ACCEPT_RECUR;

    return d->ad != NULL && d->cfg.adapt.enabled && !d->regime_rec[i] &&
           d->regime_span[i] == 0 && d->regime_lvl[i] > 0 &&
           d->regime_quiet[i] >= (D > 1 ? D : 1);
}

/* The same test against regime i; 1 when the window is like it. A regime
 * with no profile (a step-down's, STEP-DOWN ACCEPTANCE) is judged by its
 * level only. A dormant regime is like no window. */
static int like_one_any(const ad_detector *d, int i, int64_t ts, double s, double thr,
                        const float *share)
{
    const double *u = d->acc_prof + 2 * d->F, *g = regime_prof(d, i);
    double gg = 0, ee = 0, eg = 0, gs = 0, a, ef;
    int64_t P = d->cfg.alert.accept_period_ms;
    int f;

    if (!(d->regime_thr[i] > 0) || !(s <= d->regime_thr[i]))
        return 0;
    if (d->regime_span[i] > 0 && P > 0) {
        /* a regime on a schedule applies at its time: from P/24 before an
         * occurrence's start to P/24 after its longest occurrence's end */
        int64_t r = phase_after(ts, d->regime_at[i], P);
        if (!(r <= d->regime_span[i] + P / 24 || P - r <= P / 24))
            return 0;
    }
    for (f = 0; f < d->F; f++)
        gg += g[f] * g[f];
    if (share == NULL || !(gg > 0))
        return 1;
    for (f = 0; f < d->F; f++) {
        ef = s * share[f] - u[f];
        ee += ef * ef;
        gs += g[f];
        eg += ef * g[f];
    }
    if (ee > 0 && eg / sqrt(ee * gg) >= AD_ACCEPT_SIMILAR)
        return 1;
    a = eg > 0 ? eg / sqrt(gg) : 0;         /* along the unit profile */
    return s - a * gs / sqrt(gg) <= thr;
}

static int like_one(const ad_detector *d, int i, int64_t ts, double s, double thr,
                    const float *share)
{
    return !regime_dormant(d, i) && like_one_any(d, i, ts, s, thr, share);
}

/* REGIME TAIL. A window holds T rows: as the process enters a regime, the
 * windows holding rows of both states for a window's length have an error
 * profile of neither, and a slow feature (a temperature following the
 * load) lags the others. Judged against the threshold, their brief excess
 * raised an alert at each onset of a regime that recurs at a time of day.
 * For such a regime (accepted from recurrences, or on a schedule, one
 * change a promotion put on a schedule included; with
 * alert.accept_period_ms P), once per occurrence: in the first run of
 * windows over the threshold in which a window is like regime i by profile
 * near the occurrence's start (tail_gate: from a window's length before it
 * to onset_wait windows' time after), in the run's first onset_wait
 * windows (2T - 1 at a window a row: those holding a row of a transition
 * a window's length long), a window that is not like it is judged against
 * regime i (its threshold, its schedule) while under its threshold and
 * near the start. A window under the threshold ends the run and spends the
 * occurrence's tail: a fault inside the regime after a dip of its score
 * raises as before, the hiding bounded to onset_wait windows per
 * occurrence. Past them a window is judged as any other. Not while a
 * forced raise is pending (windows withheld by onset or re-entry judging
 * that would have raised: the raise is owed). Returns the regime the
 * window is judged against (-1: none); onset_held: withheld (the run
 * counts, nothing judged). */

/* The start of regime i's occurrence nearest ts; 1 if ts is near it (from
 * a window's length before it to onset_wait windows' time after). */
static int tail_gate(const ad_detector *d, int i, int64_t ts, int64_t *occ)
{
    int64_t P = d->cfg.alert.accept_period_ms, r = phase_after(ts, d->regime_at[i], P);
    double w = d->window_ms > 0 ? d->window_ms : 0;
    int h = d->cfg.hop > 0 ? d->cfg.hop : 1;

    *occ = r <= P / 2 ? ts - r : ts + (P - r);
    if (r <= P / 2)
        return (double)r <= onset_wait(d) * w;
    return (double)(P - r) <= (double)((d->T + h - 1) / h) * w;
}

static int regime_tail(ad_detector *d, int64_t ts, double s, double thr, int ri,
                       int cannot, int onset_held)
{
    int64_t P = d->cfg.alert.accept_period_ms, occ;
    int i = d->tail_i, j;

    if (d->tail_fresh) {            /* restored: the current occurrence's tail is had */
        d->tail_fresh = 0;
        for (j = 0; j < AD_REGIMES; j++)
            if (d->regime_thr[j] > 0 && P > 0 && tail_gate(d, j, ts, &occ))
                d->tail_occ[j] = occ;
    }
    if (!(s > thr) || cannot) {
        d->tail_run = 0;
        d->tail_i = -1;
        return ri;
    }
    d->tail_run++;
    if (onset_held)
        return ri;
    if (ri >= 0) {
        /* the occurrence's one tail, in the run's first windows near its start */
        if (i < 0 && d->tail_run <= onset_wait(d) && P > 0 && d->regime_thr[ri] > 0 &&
            (d->regime_rec[ri] || d->regime_span[ri] > 0) &&
            tail_gate(d, ri, ts, &occ) && occ != d->tail_occ[ri]) {
            d->tail_i = ri;
            d->tail_occ[ri] = occ;
        }
        return ri;
    }
    if (i < 0 || d->tail_run > onset_wait(d) || ad_alerter_active(d->alert) != NULL ||
        d->acc_onset_force || !(d->regime_thr[i] > 0) || regime_dormant(d, i) || P <= 0 ||
        !(d->regime_rec[i] || d->regime_span[i] > 0) ||
        !tail_gate(d, i, ts, &occ) || occ != d->tail_occ[i] ||
        !like_one_any(d, i, ts, s, thr, NULL)) {
        d->tail_i = -1;
        return -1;
    }
    return i;
}

/* The accepted regime this window is like, the most recent first; -1: none. */
static int like_regime(const ad_detector *d, int64_t ts, double s, double thr,
                       const float *share)
{
    int i, best = -1;

    for (i = 0; i < AD_REGIMES; i++)
        if (like_one(d, i, ts, s, thr, share) &&
            (best < 0 || d->regime_seq[i] > d->regime_seq[best]))
            best = i;
    return best;
}

/* The dormant regime this window is like, the most recent first; -1: none. */
static int like_dormant(const ad_detector *d, int64_t ts, double s, double thr,
                        const float *share)
{
    int i, best = -1;

    for (i = 0; i < AD_REGIMES; i++)
        if (regime_dormant(d, i) && like_one_any(d, i, ts, s, thr, share) &&
            (best < 0 || d->regime_seq[i] > d->regime_seq[best]))
            best = i;
    return best;
}

/* Keep only the current alert's scores in the acceptance ring: the chain's
 * earlier alerts looked different (ACCEPTANCE). */
static void acc_drop_prev(ad_detector *d)
{
    int A = d->cfg.alert.accept_after, keep = d->acc_cur < d->acc_len ? d->acc_cur : d->acc_len;

    d->acc_head = (d->acc_head + d->acc_len - keep) % A;
    d->acc_len = keep;
    d->acc_prev = 0;
    d->acc_alerts = 1;
    d->acc_span = 0;
    if (d->acc_occ_n > 1) {
        d->acc_occ_ts[0] = d->acc_occ_ts[d->acc_occ_n - 1];
        d->acc_occ_n = 1;
    }
    memset(d->acc_prof, 0, (size_t)d->F * sizeof(double));
}

/* The parked chain's earlier alerts' profile (F). */
static double *pk_prof(const ad_detector *d)
{
    return d->acc_prof + (size_t)(3 + AD_REGIMES) * (size_t)d->F;
}

/* The current alert is unlike the chain's earlier alerts (or the chain has
 * none). With a period (alert.accept_period_ms) two chains are kept: the
 * earlier alerts are parked, and the current alert continues the parked
 * chain when it is like that one's alerts, else starts its own. A change
 * at 22:00 and its return at 06:00 thus each count their own recurrences.
 * Without a period, or when nothing can be parked or joined, as
 * acc_drop_prev. */
static void acc_switch(ad_detector *d)
{
    int A = d->cfg.alert.accept_after, F = d->F, i, f, n;
    int keep = d->acc_cur < d->acc_len ? d->acc_cur : d->acc_len, ne = d->acc_len - keep;
    double *cur = d->acc + A, *ear = d->acc + 2 * A, *pk = d->acc + 3 * A, *pp = pk_prof(d);
    int join = d->pk_len > 0 && cosine(pp, d->acc_prof + F, F) >= AD_ACCEPT_SIMILAR;
    int64_t occ[AD_ACC_OCC_TS], since = d->acc_since, span = d->acc_span, cts;
    int occ_n = d->acc_occ_n, alerts = d->acc_alerts, quiet = d->acc_quiet;

    if (d->cfg.alert.accept_period_ms <= 0 || (ne == 0 && !join)) {
        if (ne > 0)
            acc_drop_prev(d);
        return;
    }
    cts = occ_n > 0 ? d->acc_occ_ts[occ_n - 1] : since;
    memcpy(occ, d->acc_occ_ts, sizeof(occ));
    for (i = 0; i < keep; i++)
        cur[i] = d->acc[(d->acc_head + ne + i) % A];
    for (i = 0; i < ne; i++)
        ear[i] = d->acc[(d->acc_head + i) % A];
    /* the new active chain: the parked one (when joined), then this alert */
    d->acc_head = 0;
    d->acc_len = 0;
    if (join) {
        memcpy(d->acc, pk, (size_t)d->pk_len * sizeof(double));
        d->acc_len = d->pk_len;
    }
    for (i = 0; i < keep; i++)
        acc_ring_push(d, cur[i]);
    d->acc_prev = d->acc_len - keep;
    d->acc_cur = keep;
    for (f = 0; f < F; f++) {           /* swap the earlier profiles */
        double t = d->acc_prof[f];
        d->acc_prof[f] = join ? pp[f] : 0.0;
        pp[f] = t;
    }
    if (join) {
        memcpy(d->acc_occ_ts, d->pk_occ_ts, sizeof(d->pk_occ_ts));
        d->acc_occ_n = d->pk_occ_n;
        d->acc_alerts = d->pk_alerts + 1;
        d->acc_since = d->pk_since;
        d->acc_span = d->pk_span;
    } else {
        d->acc_occ_n = 0;
        d->acc_alerts = 1;
        d->acc_since = cts;
        d->acc_span = 0;
    }
    acc_occ_push(d, cts);
    /* park the earlier alerts */
    memcpy(pk, ear, (size_t)ne * sizeof(double));
    d->pk_len = ne;
    n = occ_n > 0 ? occ_n - 1 : 0;
    memcpy(d->pk_occ_ts, occ, (size_t)n * sizeof(int64_t));
    d->pk_occ_n = n;
    d->pk_alerts = alerts > 0 ? alerts - 1 : 0;
    d->pk_since = since;
    d->pk_span = span;
    d->pk_quiet = quiet + keep;
}

/* The active alert cleared by itself. Without accept_gap the change ended;
 * with it the alert's windows stay in the ring for the next alert of the
 * same change, unless its error profile differs from the chain's. */
static void acc_alert_ended(ad_detector *d)
{
    int f;

    if (d->cfg.alert.accept_gap == 0) {
        det_acc_chain_reset(d);
        return;
    }
    if ((d->acc_prev > 0 && acc_similarity(d) < AD_ACCEPT_SIMILAR) ||
        (d->acc_prev == 0 && d->pk_len > 0))
        acc_switch(d);
    if (d->acc_cur_span > d->acc_span)
        d->acc_span = d->acc_cur_span;
    d->acc_cur_span = 0;
    for (f = 0; f < d->F; f++) {
        d->acc_prof[f] += d->acc_prof[d->F + f];
        d->acc_prof[d->F + f] = 0;
    }
    d->acc_prev = d->acc_len;
    d->acc_cur = 0;
    d->acc_quiet = 0;
}

/* ---- the acceptance chains across a restore ------------------------------ */

/* n numbers of a ring (oldest at head, capacity cap) as array k of o, a
 * non-finite one as 0 (a profile never seen); a plain vector is the ring
 * (v, 0, F, F). 0, or -1 out of memory. */
static int add_ring(cJSON *o, const char *k, const double *ring, int head, int n, int cap)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    int i;

    for (i = 0; a && i < n; i++) {
        double v = ring[(head + i) % cap];
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(isfinite(v) ? v : 0)))
            return -1;
    }
    return a ? 0 : -1;
}

/* n times (ms) as array k of o; 0, or -1 out of memory. */
static int add_times(cJSON *o, const char *k, const int64_t *t, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, k);
    int i;

    for (i = 0; a && i < n; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t[i])))
            return -1;
    return a ? 0 : -1;
}

/* {"after":A,"scores":[..],"earlier":n,"current":n,"quiet":n,"alerts":n,
 *  "since_ms":ts,"span_ms":ms,"cur_span_ms":ms,"starts":[ts..],
 *  "profile":[F],"cur_profile":[F],"handover":b
 *  [,"parked":{"scores":[..],"quiet":n,"alerts":n,"since_ms":ts,"span_ms":ms,
 *              "starts":[ts..],"profile":[F]}]
 *  [,"stepdown":{"peak":x,"held":n,"scores":[..]}]}
 * (detector.h ad_detector_save says what each is). */
cJSON *det_acc_chain_save(const ad_detector *d, int handover)
{
    int A = d->cfg.alert.accept_after, F = d->F;
    cJSON *o, *p;

    if (d->acc == NULL || d->acc_prof == NULL || A <= 0 ||
        (d->acc_len == 0 && d->pk_len == 0 && ad_alerter_active(d->alert) == NULL))
        return NULL;
    if ((o = cJSON_CreateObject()) == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "after", A) ||
        add_ring(o, "scores", d->acc, d->acc_head, d->acc_len, A) != 0 ||
        !cJSON_AddNumberToObject(o, "earlier", d->acc_prev) ||
        !cJSON_AddNumberToObject(o, "current", d->acc_cur) ||
        !cJSON_AddNumberToObject(o, "quiet", d->acc_quiet) ||
        !cJSON_AddNumberToObject(o, "alerts", d->acc_alerts) ||
        !cJSON_AddNumberToObject(o, "since_ms", (double)d->acc_since) ||
        !cJSON_AddNumberToObject(o, "span_ms", (double)d->acc_span) ||
        !cJSON_AddNumberToObject(o, "cur_span_ms", (double)d->acc_cur_span) ||
        add_times(o, "starts", d->acc_occ_ts, d->acc_occ_n) != 0 ||
        add_ring(o, "profile", d->acc_prof, 0, F, F) != 0 ||
        add_ring(o, "cur_profile", d->acc_prof + F, 0, F, F) != 0 ||
        !cJSON_AddBoolToObject(o, "handover", handover))
        goto fail;
    if (d->pk_len > 0 &&
        ((p = cJSON_AddObjectToObject(o, "parked")) == NULL ||
         add_ring(p, "scores", d->acc + 3 * (size_t)A, 0, d->pk_len, A) != 0 ||
         !cJSON_AddNumberToObject(p, "quiet", d->pk_quiet) ||
         !cJSON_AddNumberToObject(p, "alerts", d->pk_alerts) ||
         !cJSON_AddNumberToObject(p, "since_ms", (double)d->pk_since) ||
         !cJSON_AddNumberToObject(p, "span_ms", (double)d->pk_span) ||
         add_times(p, "starts", d->pk_occ_ts, d->pk_occ_n) != 0 ||
         add_ring(p, "profile", pk_prof(d), 0, F, F) != 0))
        goto fail;
    if (d->sd != NULL && d->sd_n > 0 && ad_alerter_active(d->alert) != NULL) {
        int R = (int)sd_ring_cap(&d->cfg);

        if ((p = cJSON_AddObjectToObject(o, "stepdown")) == NULL ||
            !cJSON_AddNumberToObject(p, "peak", d->sd_peak) ||
            !cJSON_AddNumberToObject(p, "held", d->sd_held) ||
            add_ring(p, "scores", d->sd, (d->sd_pos - d->sd_n + R) % R, d->sd_n, R) != 0)
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Largest saved count and time (ms) taken back. */
#define AD_ACC_COUNT_MAX 1e9
#define AD_ACC_TIME_MAX 1e15

/* Field k of o: a whole number in [lo, hi] into *v (int or int64_t by
 * which pointer is given); 0, or -1 naming the field in *bad. */
static int get_whole(const cJSON *o, const char *k, double lo, double hi, int *vi, int64_t *vl,
                     const char **bad)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi) ||
        x->valuedouble != floor(x->valuedouble)) {
        *bad = k;
        return -1;
    }
    if (vi)
        *vi = (int)x->valuedouble;
    if (vl)
        *vl = (int64_t)x->valuedouble;
    return 0;
}

/* Array k of o: at most max finite numbers; the newest cap of them (its
 * end) into out, their count in *kept, all of them in *n. 0, or -1 naming
 * the field in *bad. */
static int get_scores(const cJSON *o, const char *k, int max, int cap, double *out, int *n,
                      int *kept, const char **bad)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *x;
    int cnt = cJSON_GetArraySize(a), skip, i = 0;

    *bad = k;
    if (!cJSON_IsArray(a) || cnt > max)
        return -1;
    skip = cnt > cap ? cnt - cap : 0;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return -1;
        if (i >= skip)
            out[i - skip] = x->valuedouble;
        i++;
    }
    *n = cnt;
    *kept = cnt - skip;
    return 0;
}

/* Array k of o: at most AD_ACC_OCC_TS times into ts, their count in *n. */
static int get_times(const cJSON *o, const char *k, int64_t *ts, int *n, const char **bad)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *x;
    int i = 0;

    *bad = k;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > AD_ACC_OCC_TS)
        return -1;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= AD_ACC_TIME_MAX))
            return -1;
        ts[i++] = (int64_t)x->valuedouble;
    }
    *n = i;
    return 0;
}

/* One saved chain, read and checked before any of it is taken. */
typedef struct acc_saved {
    int after, n, kept, earlier, current, quiet, alerts, occ_n, handover;
    int64_t since, span, cur_span, occ[AD_ACC_OCC_TS];
    int pk_n, pk_kept, pk_quiet, pk_alerts, pk_occ_n;
    int64_t pk_since, pk_span, pk_occ[AD_ACC_OCC_TS];
} acc_saved;

/* Read o into *s, the newest scores into d's scratch (acc + A: the chain,
 * acc + 2A: the parked one) and the profiles into prof (3F: the chain's
 * earlier alerts, its current one, the parked chain's). 0, or -1 naming
 * the field in *bad. */
static int acc_chain_read(ad_detector *d, const cJSON *o, acc_saved *s, double *prof,
                          const char **bad)
{
    int A = d->cfg.alert.accept_after, F = d->F;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "parked");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "handover");

    memset(s, 0, sizeof(*s));
    *bad = "";
    if (!cJSON_IsObject(o) ||
        get_whole(o, "after", 1, 1000000, &s->after, NULL, bad) ||
        get_scores(o, "scores", s->after, A, d->acc + A, &s->n, &s->kept, bad) ||
        get_whole(o, "earlier", 0, s->n, &s->earlier, NULL, bad) ||
        get_whole(o, "current", 0, AD_ACC_COUNT_MAX, &s->current, NULL, bad) ||
        get_whole(o, "quiet", 0, AD_ACC_COUNT_MAX, &s->quiet, NULL, bad) ||
        get_whole(o, "alerts", 0, AD_ACC_COUNT_MAX, &s->alerts, NULL, bad) ||
        get_whole(o, "since_ms", -AD_ACC_TIME_MAX, AD_ACC_TIME_MAX, NULL, &s->since, bad) ||
        get_whole(o, "span_ms", 0, AD_ACC_TIME_MAX, NULL, &s->span, bad) ||
        get_whole(o, "cur_span_ms", 0, AD_ACC_TIME_MAX, NULL, &s->cur_span, bad) ||
        get_times(o, "starts", s->occ, &s->occ_n, bad) ||
        (*bad = "profile", read_vec(cJSON_GetObjectItemCaseSensitive(o, "profile"), F,
                                    prof) != 0) ||
        (*bad = "cur_profile", read_vec(cJSON_GetObjectItemCaseSensitive(o, "cur_profile"), F,
                                        prof + F) != 0) ||
        (*bad = "handover", h != NULL && !cJSON_IsBool(h)))
        return -1;
    /* the ring holds the earlier alerts' scores, then the current one's */
    *bad = "earlier";
    if (s->earlier + (s->current < s->n ? s->current : s->n) != s->n)
        return -1;
    s->handover = cJSON_IsTrue(h);
    if (p == NULL)
        return 0;
    *bad = "parked";
    if (!cJSON_IsObject(p) ||
        get_scores(p, "scores", s->after, A, d->acc + 2 * (size_t)A, &s->pk_n, &s->pk_kept,
                   bad) ||
        get_whole(p, "quiet", 0, AD_ACC_COUNT_MAX, &s->pk_quiet, NULL, bad) ||
        get_whole(p, "alerts", 0, AD_ACC_COUNT_MAX, &s->pk_alerts, NULL, bad) ||
        get_whole(p, "since_ms", -AD_ACC_TIME_MAX, AD_ACC_TIME_MAX, NULL, &s->pk_since, bad) ||
        get_whole(p, "span_ms", 0, AD_ACC_TIME_MAX, NULL, &s->pk_span, bad) ||
        get_times(p, "starts", s->pk_occ, &s->pk_occ_n, bad) ||
        (*bad = "parked.profile",
         read_vec(cJSON_GetObjectItemCaseSensitive(p, "profile"), F, prof + 2 * F) != 0))
        return -1;
    return 0;
}

/* Take saved chain o into d (its alert, when one is open, restored
 * before: act); 0, or -1 (logged) when it cannot be taken. */
static int acc_chain_take(ad_detector *d, const cJSON *o, const ad_alert *act)
{
    int A = d->cfg.alert.accept_after, F = d->F, drop;
    double *prof = malloc(3 * (size_t)F * sizeof(double));
    const char *bad = "";
    acc_saved s;

    if (prof == NULL) {
        ad_log(AD_LOG_WARNING, "%s: saved acceptance progress not restored: out of memory",
               d->who);
        return -1;
    }
    if (acc_chain_read(d, o, &s, prof, &bad) != 0) {
        ad_log(AD_LOG_WARNING, "%s: saved state: alert.accept.%s is damaged: the acceptance "
               "progress is dropped, counted again from here", d->who, bad);
        free(prof);
        return -1;
    }
    if (act == NULL && s.current > 0) {
        /* the saved alert part was not continued (damaged): these windows
         * belong to no open alert */
        ad_log(AD_LOG_WARNING, "%s: saved state: alert.accept counts %d windows of an alert "
               "not open now: the acceptance progress is dropped", d->who, s.current);
        free(prof);
        return -1;
    }
    /* the newest A of the chain's scores (the earlier alerts' come first) */
    drop = s.n - s.kept;
    memcpy(d->acc, d->acc + A, (size_t)s.kept * sizeof(double));
    d->acc_head = 0;
    d->acc_len = s.kept;
    d->acc_prev = s.earlier > drop ? s.earlier - drop : 0;
    d->acc_cur = s.current;
    d->acc_quiet = s.quiet;
    d->acc_alerts = s.alerts;
    d->acc_since = s.since;
    d->acc_span = s.span;
    d->acc_cur_span = s.cur_span;
    memcpy(d->acc_occ_ts, s.occ, sizeof(s.occ));
    d->acc_occ_n = s.occ_n;
    memcpy(d->acc_prof, prof, 2 * (size_t)F * sizeof(double));
    if (d->cfg.alert.accept_gap > 0 && d->cfg.alert.accept_period_ms > 0 && s.pk_kept > 0) {
        memcpy(d->acc + 3 * (size_t)A, d->acc + 2 * (size_t)A,
               (size_t)s.pk_kept * sizeof(double));
        d->pk_len = s.pk_kept;
        d->pk_quiet = s.pk_quiet;
        d->pk_alerts = s.pk_alerts;
        d->pk_since = s.pk_since;
        d->pk_span = s.pk_span;
        memcpy(d->pk_occ_ts, s.pk_occ, sizeof(s.pk_occ));
        d->pk_occ_n = s.pk_occ_n;
        memcpy(pk_prof(d), prof + 2 * F, (size_t)F * sizeof(double));
    }
    free(prof);
    if (d->cfg.alert.accept_gap == 0) {
        if (act == NULL)
            det_acc_chain_reset(d);         /* the chain ended with its alert */
        else if (d->acc_prev > 0)
            acc_drop_prev(d);
    }
    if (s.after != A)
        ad_log(AD_LOG_INFO, "%s: acceptance progress saved with accept_after %d, now %d: %s",
               d->who, s.after, A, s.n > s.kept || s.pk_n > s.pk_kept ?
               "its newest scores kept" : "all its scores kept");
    /* a save in the middle of the stream: what a killed daemon consumed
     * after it is lost, counted as quiet at the first window (acc_resumed) */
    if (!s.handover && act == NULL && (d->acc_len > 0 || d->pk_len > 0)) {
        d->acc_resume = 1;
        d->acc_resume_ts = d->last_ts;
    }
    return 0;
}

/*
 * Continue the acceptance chains det_acc_chain_save wrote, so that a
 * restart accepts a change where an uninterrupted run does. Settings
 * changed since (a restart or a reload with other alert.accept_* values;
 * they are not in the settings hash):
 *   - accept_after now A (a count, or from accept_after_ms and the
 *     restored window period): the newest A scores of each chain are kept
 *     (a lowered count judges them at once, a raised one waits for the
 *     rest, the saved scores counting towards it);
 *   - accept_gap now 0: the chain's earlier alerts and a parked chain are
 *     dropped (one alert must last A windows); a quiet count over a lowered
 *     gap ends the chain at the next window;
 *   - accept_period_ms now 0: a parked chain is dropped (only a period
 *     keeps one).
 * None saved (an older state file) or a damaged one (named in a warning):
 * acceptance counts again from here, an open alert's change from its
 * raise.
 */
static void sd_push(ad_detector *d, double s);

/* The open alert's step-down progress rebuilt from its scores the
 * acceptance chain holds (the current alert's part of the ring: its last
 * accept_after scores at most), each through sd_push as it came: the
 * ring, the highest mean and the windows held are those an uninterrupted
 * step down has, for an alert at most accept_after windows old (an older
 * one's highest mean is the highest over its last accept_after windows).
 * Used when the state holds no progress (saved with step-down off: a
 * reload or restart turned it on while the alert was open; or by a version
 * without it) or a damaged one. Returns the scores replayed. */
static int sd_from_chain(ad_detector *d)
{
    int A = d->cfg.alert.accept_after, n, i;

    det_sd_reset(d);
    if (d->sd == NULL || d->acc == NULL || A <= 0 || ad_alerter_active(d->alert) == NULL)
        return 0;
    n = d->acc_len - d->acc_prev;
    if (n > d->acc_cur)
        n = d->acc_cur;
    for (i = d->acc_len - n; i < d->acc_len; i++)
        sd_push(d, d->acc[(d->acc_head + i) % A]);
    return n;
}

/* The open alert's step-down progress o ("stepdown" of the saved chain;
 * NULL: none saved) into d: its newest scores the ring holds now (a
 * changed stepdown_windows/after keeps what fits), its highest mean, the
 * windows held (a "profile" saved by an earlier version is ignored). None
 * saved or damaged (logged): rebuilt from the alert's scores the chain
 * holds (sd_from_chain). */
static void sd_restore(ad_detector *d, const cJSON *o)
{
    int R = (int)sd_ring_cap(&d->cfg);
    int n = 0, kept = 0, held = 0;
    double *tmp;
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(o, "peak");
    const char *bad = "peak";

    det_sd_reset(d);
    if (ad_alerter_active(d->alert) == NULL)
        return;
    if (o == NULL) {
        if ((n = sd_from_chain(d)) > 0)
            ad_log(AD_LOG_INFO, "%s: saved state holds no step-down progress of the open "
                   "alert: rebuilt from its %d scores the acceptance progress keeps (highest "
                   "mean %.6g, %d windows under %.2g x it)", d->who, n, d->sd_peak,
                   d->sd_held, d->cfg.alert.stepdown_ratio);
        return;
    }
    if ((tmp = malloc((size_t)R * sizeof(double))) == NULL) {
        ad_log(AD_LOG_WARNING, "%s: saved step-down progress not restored: out of memory",
               d->who);
        return;
    }
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(pk) || !isfinite(pk->valuedouble) ||
        !(pk->valuedouble >= 0) ||
        get_whole(o, "held", 0, AD_ACC_COUNT_MAX, &held, NULL, &bad) ||
        get_scores(o, "scores", 1000000, R, tmp, &n, &kept, &bad)) {
        free(tmp);
        n = sd_from_chain(d);
        ad_log(AD_LOG_WARNING, "%s: saved state: alert.accept.stepdown.%s is damaged: the "
               "open alert's step down is rebuilt from its %d scores the acceptance "
               "progress keeps", d->who, bad, n);
        return;
    }
    memcpy(d->sd, tmp, (size_t)kept * sizeof(double));
    free(tmp);
    d->sd_n = kept;
    d->sd_pos = kept % R;
    d->sd_peak = pk->valuedouble;
    d->sd_held = held;
}

void det_acc_chain_restore(ad_detector *d, const cJSON *o)
{
    const ad_alert *act = ad_alerter_active(d->alert);

    if (d->acc == NULL || d->acc_prof == NULL || d->cfg.alert.accept_after <= 0)
        return;
    d->acc_resume = 0;
    det_acc_chain_reset(d);
    d->pk_len = 0;
    if (o != NULL && acc_chain_take(d, o, act) == 0) {
        if (d->sd != NULL)
            sd_restore(d, cJSON_GetObjectItemCaseSensitive(o, "stepdown"));
        return;
    }
    det_acc_chain_reset(d);
    d->pk_len = 0;
    if (act != NULL) {
        /* its change starts at its raise, as when acceptance starts with
         * an alert open (resolve_spans) */
        d->acc_since = act->start_ms;
        acc_occ_push(d, act->start_ms);
        d->acc_alerts = 1;
    }
}

/* The first window after det_acc_chain_restore from a save in the middle
 * of the stream (not a hand-over): the rows a killed daemon consumed after
 * that save are lost, and so are the windows the emptied window ring takes
 * to fill again. Outside an alert those were quiet windows (a raise is
 * saved when it happens): they count as quiet, by data time and the window
 * period, so a chain that ended meanwhile is not continued. (In a hand-over
 * nothing is lost: a silence of the stream does not count, as while it
 * runs.) */
static void acc_resumed(ad_detector *d, int64_t ts)
{
    int G = d->cfg.alert.accept_gap;
    double m;

    d->acc_resume = 0;
    if (!(d->window_ms > 0) || ad_alerter_active(d->alert) != NULL || ts <= d->acc_resume_ts)
        return;
    m = floor((double)(ts - d->acc_resume_ts) / d->window_ms + 0.5) - 1;
    if (!(m >= 1))
        return;
    if (m > AD_ACC_COUNT_MAX)
        m = AD_ACC_COUNT_MAX;
    if (d->acc_len > 0 && (d->acc_quiet = (int)fmin(d->acc_quiet + m, AD_ACC_COUNT_MAX)) > G)
        det_acc_chain_reset(d);
    if (d->pk_len > 0 && (d->pk_quiet = (int)fmin(d->pk_quiet + m, AD_ACC_COUNT_MAX)) > G)
        d->pk_len = 0;
}

/* Do a regime on a schedule starting at `at` and regime i (when it has a
 * schedule) recur at the same time of day? (Within P/12; 1 when either has
 * no schedule.) A change at 22:00 and its return at 06:00 can share an
 * error profile; they are two regimes. */
static int same_phase(const ad_detector *d, int i, int64_t at, int scheduled)
{
    int64_t P = d->cfg.alert.accept_period_ms;

    if (!scheduled || P <= 0 || d->regime_span[i] <= 0)
        return 1;
    return same_time(at, d->regime_at[i], P);
}

/* The slot for a regime being accepted (its profile prof, F; NULL: the
 * chain's, in acc_prof[0..2F)); at: the start of its latest occurrence when on a
 * schedule): one it resembles (at the same time of day), else a free one,
 * else the oldest. */
static int regime_slot(const ad_detector *d, const double *prof, int64_t at, int scheduled)
{
    double v[64] = { 0 }, *w = v;
    int i, f, slot = -1, oldest = 0;

    if (d->F > 64 && (w = malloc((size_t)d->F * sizeof(double))) == NULL)
        w = NULL;
    for (f = 0; w && f < d->F; f++)
        w[f] = prof ? prof[f] : d->acc_prof[f] + d->acc_prof[d->F + f];
    for (i = 0; w && slot < 0 && i < AD_REGIMES; i++)
        if (d->regime_thr[i] > 0 && cosine(w, regime_prof(d, i), d->F) >= AD_ACCEPT_SIMILAR &&
            same_phase(d, i, at, scheduled))
            slot = i;
    if (w != v)
        free(w);
    if (slot >= 0)
        return slot;
    for (i = 0; i < AD_REGIMES; i++)
        if (!(d->regime_thr[i] > 0))
            return i;
    for (i = 1; i < AD_REGIMES; i++)
        if (d->regime_seq[i] < d->regime_seq[oldest])
            oldest = i;
    return oldest;
}

/* Regime `slot`, accepted from the chain's recurrences on a schedule
 * (period P), applies at their time of day: from the earliest start among
 * the occurrences at the latest one's phase (within P/12) to the latest of
 * their ends, each taken as that start plus the chain's longest occurrence.
 * The latest start alone with the longest length left out the end of an
 * earlier occurrence that started later in the day: a night speed whose
 * first night alerted from 00:04 to 06:36 and whose next was accepted at
 * its 22:04 onset covered 21:04-05:36, and its 06:00 return raised. */
static void regime_occ_window(ad_detector *d, int slot)
{
    int64_t P = d->cfg.alert.accept_period_ms, at = d->acc_occ_ts[d->acc_occ_n - 1];
    int64_t len = d->acc_span > d->acc_cur_span ? d->acc_span : d->acc_cur_span;
    int64_t lo = 0, hi = len, off;
    int i;

    for (i = 0; i + 1 < d->acc_occ_n; i++) {
        if (!same_time(d->acc_occ_ts[i], at, P))
            continue;
        off = phase_after(d->acc_occ_ts[i], at, P);
        if (off > P / AD_SAME_TIME_DIV)
            off -= P;               /* it started earlier in the day */
        if (off < lo)
            lo = off;
        if (off + len > hi)
            hi = off + len;
    }
    d->regime_at[slot] = at + lo;
    d->regime_span[slot] = hi - lo;
    if (d->regime_span[slot] < 1)
        d->regime_span[slot] = 1;
}

#define AD_ACCEPT_TREND_MIN 30    /* windows per half to judge a trend */

/* Median of x (n > 0), computed in tmp (room for n). */
static double median_of(const double *x, int n, double *tmp)
{
    memcpy(tmp, x, (size_t)n * sizeof(double));
    return ad_quantile(tmp, (size_t)n, 0.5);
}

/* The active alert (or chain of recurrences) has enough scores (acc_ready):
 * accept the change when it is stable (see REGIME ACCEPTANCE). now: the
 * current window's score while the alert is active (the change must show
 * on it), NAN when judged at the alert's clear. Returns 1 when accepted. */
/* An acceptance's end: the level test takes the level reached as
 * accepted too (level_test), the open alert closes with reason accepted
 * (told to continual learning as how: accepted, or a true alert), and the
 * regime_accepted event (threshold nw, before old, over n windows) is
 * returned for its text. */
static ad_event *accept_close(ad_detector *d, int64_t ts, double nw, double old, uint64_t n,
                              double p, double L, ad_adapt_clear how)
{
    ad_alert al;
    ad_event *e;

    d->lvl_off = 1;
    /* a noise change under way is part of the change accepted (noise.h) */
    if (d->noise != NULL) {
        const ad_alert *act = ad_alerter_active(d->alert);
        ad_noise_accept(d->noise, act != NULL ? act->start_ms : INT64_MAX);
    }
    /* the accepted level (level_bounds) is the level test's mean a span
     * from now, over windows all after the acceptance: the span now may
     * still hold windows from before the change (a step-down's fault), or
     * from before it was complete (a span longer than accept_after) */
    if (d->lvl != NULL)
        d->lvl_acc_wait = d->lvl_cap;
    if (ad_alerter_close(d->alert, ts, AD_CLOSE_ACCEPTED, &al)) {
        if (d->ad)
            ad_adapt_alert_cleared(d->ad, al.id, ts, how);
        e = det_ev_new(d, AD_EV_ALERT_CLEARED, ts);
        e->alert = al;
        e->threshold = nw;
        e->probability = p;
        e->log_likelihood = L;
    }
    e = det_ev_new(d, AD_EV_ACCEPTED, ts);
    e->threshold = nw;
    e->prev_threshold = old;
    e->n = n;
    e->probability = p;
    e->log_likelihood = L;
    return e;
}

static int try_accept(ad_detector *d, int64_t ts, double now, double p, double L, int onset)
{
    /* cap: the ring's size (accept_after); A: the scores in it (cap, or
     * fewer for a chain of recurrences, see detect) */
    int cap = d->cfg.alert.accept_after, A = d->acc_len, h = A / 2, i, how = 0, slot;
    int c = d->acc_cur < A ? d->acc_cur : A;    /* the current alert's scores */
    int rec, sched;
    double *x = d->acc + cap, *tmp = d->acc + 2 * cap;
    double med, s_r, m1, m2, s_c, k = d->cfg.alert.accept_spread, old, nw;
    char err[160];
    ad_event *e;

    for (i = 0; i < A; i++)
        x[i] = d->acc[(d->acc_head + i) % cap];
    med = median_of(x, A, tmp);
    for (i = 0; i < A; i++)
        tmp[i] = fabs(x[i] - med);
    s_r = 1.4826 * ad_quantile(tmp, (size_t)A, 0.5);
    m1 = h > 0 ? median_of(x, h, tmp) : med;
    m2 = median_of(x + h, A - h, tmp);
    s_c = accept_ref_spread(d);
    if (!(s_r <= k * s_c) || !(m2 - m1 <= k * s_c))
        return 0;
    /* A change is accepted while it shows: on a window over the threshold
     * at the change's level. A passing fault whose scores are falling back
     * (its last windows lower the second half's median, so the trend test
     * passes) is not a new normal. */
    if (!isnan(now) && (!ad_alerter_last_exceeded(d->alert) || !(now >= med - k * s_c)))
        return 0;
    if (d->cfg.alert.accept_trend > 0 && d->acc_prev > 0) {
        /* a chain of recurrences: the halves of the ring mix alerts of
         * different levels; a ramp shows inside the current alert */
        int hc = c / 2;
        if (c >= 2 * AD_ACCEPT_TREND_MIN) {
            med = median_of(x + (A - c), c, tmp);
            m1 = median_of(x + (A - c), hc, tmp);
            m2 = median_of(x + (A - c) + hc, c - hc, tmp);
        } else {
            m1 = m2 = 0;            /* too short to rise */
        }
    }
    if (d->cfg.alert.accept_trend > 0) {
        ad_thr_info in;
        double base;
        ad_threshold_info(d->thr, &in);
        base = isfinite(in.median) ? in.median : 0.0;
        if (!(m2 - m1 <= d->cfg.alert.accept_trend * (med - base)))
            return 0;               /* still rising: a ramp, not a new level */
    }
    if (d->acc_prev > 0 && acc_similarity(d) < AD_ACCEPT_SIMILAR) {
        acc_switch(d);              /* another change: it starts its own count */
        return 0;
    }
    if (!onset && d->acc_prev > 0 && d->acc_alerts < AD_ACCEPT_RECUR)
        return 0;                   /* two alerts alike are not yet a pattern */
    if (!onset && d->acc_prev > 0 && !acc_regular(d))
        return 0;                   /* recurrences on no schedule: separate events */
    if (d->acc_prev > 0) {
        /* The latest recurrence is judged on enough of it (A / RECUR
         * windows, or all of it once it ended) and must sit at the level
         * of the chain's earlier alerts: different faults a day apart can
         * share an error profile (most raise every sensor's error), not
         * their level. */
        if (c < cap / AD_ACCEPT_RECUR && ad_alerter_active(d->alert) != NULL)
            return 0;
        if (c > 0 && c < A &&
            !(fabs(median_of(x + (A - c), c, tmp) - median_of(x, A - c, tmp)) <= k * s_c))
            return 0;               /* not at the earlier recurrences' level */
    }
    old = ad_threshold_value(d->thr);
    if (ad_threshold_rebase_value(d->thr, x, (size_t)A,
                                  d->model && !d->has_nscale ? d->model->training : NULL,
                                  &nw, &how, err, sizeof(err)) != 0) {
        ad_log(AD_LOG_WARNING, "%s: regime not accepted: %s", d->who, err);
        return 0;
    }
    /* The regime's profile and threshold: windows like it are judged
     * against nw, every other window still against the threshold. It takes
     * the place of a regime it resembles (on a schedule: at the same time of
     * day), else a free one, else the oldest. */
    /* accepted from recurrences: a chain of RECUR occurrences, or one
     * accepted at the onset of a recurrence at the phase of an earlier one
     * (with accept_onset 1 the second occurrence: a schedule all the same,
     * not one persistent change a promotion ends when it hardly showed) */
    rec = d->acc_prev > 0 && (onset || d->acc_occ_n >= AD_ACCEPT_RECUR);
    sched = rec && d->cfg.alert.accept_period_ms > 0 && d->acc_occ_n > 0;
    slot = regime_slot(d, NULL, sched ? d->acc_occ_ts[d->acc_occ_n - 1] : 0, sched);
    for (i = 0; i < d->F; i++)
        regime_prof(d, slot)[i] = d->acc_prof[i] + d->acc_prof[d->F + i];
    d->regime_thr[slot] = nw;
    d->regime_lvl[slot] = median_of(x, A, tmp);
    d->regime_seq[slot] = ++d->regime_n;
    d->regime_rec[slot] = (unsigned char)rec;
    d->regime_once[slot] = 0;
    d->tail_occ[slot] = INT64_MIN;
    d->sd_fit_n[slot] = 0;
    d->regime_span[slot] = 0;
    d->regime_sh_n[slot] = 0;
    d->regime_shn_n[slot] = 0;
    d->regime_at[slot] = d->acc_since;
    d->regime_len[slot] = rec ? 0 : ts - d->acc_since;
    d->regime_last[slot] = rec ? INT64_MIN : ts;
    d->regime_quiet[slot] = 0;
    if (sched)
        regime_occ_window(d, slot);  /* recurrences on a schedule: at their time */
    /* the chain's earlier alerts were this regime too: no longer true
     * alerts a candidate model must keep raising; and the model should
     * learn the regime once A windows of it were judged normal */
    if (d->ad)
        ad_adapt_alerts_accepted(d->ad, d->acc_since, (uint64_t)A);
    e = accept_close(d, ts, nw, old, (uint64_t)A, p, L, AD_ADAPT_CLEAR_ACCEPTED);
    if (onset)
        snprintf(e->text, sizeof(e->text), "at a recurrence's onset: windows like it judged "
                 "against %.6g (%s on %d windows), others against %.6g", nw,
                 how ? "median shift" : "refit", A, old);
    else
        snprintf(e->text, sizeof(e->text),
                 "windows like it judged against %.6g (%s on %d windows: spread %.3g, trend "
                 "%.3g, limit %.3g), others against %.6g", nw, how ? "median shift" : "refit",
                 A, s_r, m2 - m1, k * s_c, old);
    ad_log(AD_LOG_INFO, "%s: regime accepted: %s", d->who, e->text);
    d->st.accepted++;
    det_acc_chain_reset(d);
    dq_recenter(d);
    return 1;
}

/* Enough scores to judge acceptance: accept_after of them, or
 * accept_after / RECUR for a chain of at least RECUR recurrences (alerts
 * raised after at least accept_after / RECUR quiet windows; a flapping
 * alert of one fault is one occurrence). A regime that recurs shows itself
 * by recurring: a 30-window alert each midnight would otherwise need 16
 * days to pool accept_after windows. */
static int acc_ready(const ad_detector *d)
{
    int A = d->cfg.alert.accept_after;

    return d->acc_len == A || (d->acc_prev > 0 && d->acc_occ_n >= AD_ACCEPT_RECUR &&
                               d->acc_len >= A / AD_ACCEPT_RECUR);
}

/* STEP-DOWN ACCEPTANCE: the open alert's window scored s: its mean over
 * the last W windows (stepdown_windows, all of them in the alert) is
 * compared with ratio x the highest such mean before it; sd_held counts
 * the windows in a row under it (a step-down's regime is matched by level
 * only: no error profile is kept). */
static void sd_push(ad_detector *d, double s)
{
    const ad_alert_cfg *c = &d->cfg.alert;
    int R = (int)sd_ring_cap(&d->cfg), W = c->stepdown_windows, i;
    double sum = 0, m;

    if (!isfinite(s))
        return;
    d->sd[d->sd_pos] = s;
    d->sd_pos = (d->sd_pos + 1) % R;
    if (d->sd_n < R)
        d->sd_n++;
    if (d->sd_n < W)
        return;
    for (i = 1; i <= W; i++)
        sum += d->sd[(d->sd_pos - i + R) % R];
    m = sum / W;
    if (m < c->stepdown_ratio * d->sd_peak) {
        if (++d->sd_held > AD_ACC_COUNT_MAX)
            d->sd_held = AD_ACC_COUNT_MAX;
    } else {
        d->sd_held = 0;
    }
    if (m > d->sd_peak)
        d->sd_peak = m;
}

/* The regime of an earlier step down (a level-only one: no profile); -1:
 * none. */
static int sd_regime(const ad_detector *d)
{
    int i, f, any;

    for (i = 0; i < AD_REGIMES; i++) {
        for (f = 0, any = 0; f < d->F; f++)
            any |= regime_prof(d, i)[f] != 0;
        if (d->regime_thr[i] > 0 && !any)
            return i;
    }
    return -1;
}

/* The slot for a step-down's regime: an earlier step down's (the level
 * stepped down again), else a free one, else the oldest. prof: F doubles
 * of scratch, zeroed. */
static int sd_slot(const ad_detector *d, double *prof)
{
    int i = sd_regime(d);

    if (i >= 0)
        return i;
    memset(prof, 0, (size_t)d->F * sizeof(double));
    return regime_slot(d, prof, 0, 0);      /* like no regime: free or oldest */
}

/* A step down to a level the stream's threshold thr already judges normal:
 * none of the last stepdown_after scores x[0..S) over it, or a fitted
 * regime threshold nw not over it. A regime only judges windows over the
 * stream's threshold (like_regime), so the first would only lift the bar
 * for windows its level never reached (by the fit's margin: a new fault
 * on any feature between thr and nw hidden, a step-down regime being
 * matched by level only), and the second would judge no window at all
 * while it held one of the AD_REGIMES slots (and evicted the oldest
 * regime for it). */
static int sd_under(const double *x, int S, double nw, double thr)
{
    int i;

    if (!(nw > thr))
        return 1;
    for (i = 0; i < S; i++)
        if (x[i] > thr)
            return 0;
    return 1;
}

/* The alert stepped down to a level under the stream's threshold
 * (sd_under): it closes as accepted, and no regime is made: the level is
 * judged against the stream's threshold old, as every window before the
 * fault was. An earlier step down's regime ends (a later step down replaces
 * it: the process left that level). The AD_EV_ACCEPTED event's threshold
 * is the stream's (as a band run learned as normal: no regime of its own);
 * stats.accepted counts regimes, so not this. */
static void sd_accept_under(ad_detector *d, int64_t ts, double lvl, double peak, double nw,
                            double old, double p, double L)
{
    const ad_alert_cfg *c = &d->cfg.alert;
    int i = sd_regime(d);
    double ended = NAN;
    ad_event *e;

    if (i >= 0) {
        ended = d->regime_thr[i];
        d->regime_thr[i] = 0;
        d->regime_rec[i] = 0;
        d->regime_once[i] = 0;
        d->regime_span[i] = 0;
        d->regime_len[i] = 0;
        d->sd_fit_n[i] = 0;
    }
    e = accept_close(d, ts, old, old, (uint64_t)c->stepdown_after, p, L, AD_ADAPT_CLEAR_TRUE);
    snprintf(e->text, sizeof(e->text), "stepped down to %.4g (mean of %d under %.2g x %.4g "
             "for %d): under the threshold %.6g, no regime%s", lvl, c->stepdown_windows,
             c->stepdown_ratio, peak, c->stepdown_after, old,
             i >= 0 ? "; the earlier step down's ended" : "");
    ad_log(AD_LOG_INFO, "%s: step down accepted: %s (a regime fitted on it: %.6g; the "
           "earlier step down's: %.6g)", d->who, e->text, nw, ended);
}

/* The step-down's new level (the mean of the last stepdown_after scores)
 * is one the alert is clearing at (alert.on score: under clear_ratio x the
 * threshold it is judged against, thr, and this window below the clear
 * level too, so the alerter counts towards alert.m): a fault that ended,
 * the stream back to normal, not a new level. Nothing is accepted then:
 * the alert clears as ever, and no regime is made of normal scores. */
static int sd_clearing(const ad_detector *d, double thr, double s, int elevated)
{
    int R = (int)sd_ring_cap(&d->cfg), S = d->cfg.alert.stepdown_after, i;
    double lvl = 0, clear = thr * d->cfg.alert.clear_ratio;

    if (d->cfg.alert.on != AD_ALERT_ON_SCORE || d->sd_held < S || d->sd_n < S ||
        elevated || !(s < clear))
        return 0;
    for (i = 1; i <= S; i++)
        lvl += d->sd[(d->sd_pos - i + R) % R] / S;
    return lvl < clear;
}

/* The open alert's mean stayed under ratio x its highest for stepdown_after
 * windows: the lower level is accepted as the new normal (the fault ended,
 * the process did not go back to its first state). The alert closes with
 * reason accepted; windows up to that level (its threshold fitted on its
 * last stepdown_after scores) are judged against their own threshold, a
 * regime as an acceptance sets, but by level only: the regime has no
 * profile. A plant left at a lower level after a fault (a valve set
 * otherwise, a part replaced) runs at a new operating point whose small
 * excess error moves between features from window to window; the excess
 * summed over the held windows, a little over the threshold, is mostly
 * noise in direction, and windows at the accepted level but unlike it
 * raised again. A level under the stream's threshold closes the alert
 * with no regime (sd_under, sd_accept_under). Returns 1 when accepted. */
static int sd_accept(ad_detector *d, int64_t ts, double p, double L)
{
    const ad_alert_cfg *c = &d->cfg.alert;
    int R = (int)sd_ring_cap(&d->cfg), S = c->stepdown_after, W = c->stepdown_windows;
    int i, how = 0, slot;
    double *x = d->sd + R, *prof = d->sd + R + S, old, nw, peak = d->sd_peak, lvl = 0;
    char err[160];
    ad_event *e;

    if (d->sd_held < S || ad_alerter_active(d->alert) == NULL)
        return 0;
    for (i = 0; i < S; i++) {
        x[i] = d->sd[(d->sd_pos - S + i + R) % R];
        lvl += x[i] / S;
    }
    old = ad_threshold_value(d->thr);
    if (ad_threshold_rebase_value(d->thr, x, (size_t)S,
                                  d->model && !d->has_nscale ? d->model->training : NULL,
                                  &nw, &how, err, sizeof(err)) != 0) {
        ad_log(AD_LOG_WARNING, "%s: step down not accepted: %s", d->who, err);
        d->sd_held = 0;             /* judged again after stepdown_after more */
        return 0;
    }
    if (sd_under(x, S, nw, old)) {
        sd_accept_under(d, ts, lvl, peak, nw, old, p, L);
        det_acc_chain_reset(d);
        dq_recenter(d);
        return 1;
    }
    slot = sd_slot(d, prof);
    memset(regime_prof(d, slot), 0, (size_t)d->F * sizeof(double));
    d->regime_thr[slot] = nw;
    d->regime_lvl[slot] = lvl;
    d->regime_seq[slot] = ++d->regime_n;
    d->regime_rec[slot] = 0;
    d->regime_once[slot] = 0;
    d->sd_fit_n[slot] = 0;
    if (d->sd_fit != NULL) {        /* it keeps learning (sd_refit) */
        memcpy(d->sd_fit + (size_t)slot * (size_t)sd_fit_cap(&d->cfg), x,
               (size_t)S * sizeof(double));
        d->sd_fit_n[slot] = S;
    }
    d->regime_span[slot] = 0;
    d->regime_sh_n[slot] = 0;
    d->regime_shn_n[slot] = 0;
    /* the new level began at the step (about stepdown_after windows ago) */
    d->regime_at[slot] = d->window_ms > 0 ? ts - (int64_t)(S * d->window_ms) : ts;
    d->regime_len[slot] = ts - d->regime_at[slot];
    d->regime_last[slot] = ts;
    d->regime_quiet[slot] = 0;
    /* the fault before the step was real: a true alert to the learner */
    e = accept_close(d, ts, nw, old, (uint64_t)S, p, L, AD_ADAPT_CLEAR_TRUE);
    snprintf(e->text, sizeof(e->text), "stepped down to %.4g (mean of %d under %.2g x "
             "%.4g for %d): like it judged against %.6g (%s), others against %.6g", lvl, W,
             c->stepdown_ratio, peak, S, nw, how ? "shift" : "refit", old);
    ad_log(AD_LOG_INFO, "%s: regime accepted: %s", d->who, e->text);
    d->st.accepted++;
    det_acc_chain_reset(d);
    dq_recenter(d);
    return 1;
}

/* A window judged against step-down regime i scored s, under its
 * threshold, trusted, no alert open: the regime's threshold is fitted
 * again, as sd_accept fits it, on its scores so far and s, up to
 * sd_fit_cap() of them (then it stays). A level whose first
 * stepdown_after scores happened to be narrow otherwise raised again on
 * its own noise; a window over the threshold never teaches it (a new
 * fault is not its level). */
static void sd_refit(ad_detector *d, int i, double s)
{
    int cap = sd_fit_cap(&d->cfg), how = 0, n = d->sd_fit_n[i];
    double *x, nw;
    char err[160];

    if (d->sd_fit == NULL || n < 1 || n >= cap || !isfinite(s))
        return;
    x = d->sd_fit + (size_t)i * (size_t)cap;
    x[n] = s;
    if (ad_threshold_rebase_value(d->thr, x, (size_t)n + 1,
                                  d->model && !d->has_nscale ? d->model->training : NULL,
                                  &nw, &how, err, sizeof(err)) != 0) {
        ad_log(AD_LOG_WARNING, "%s: step-down regime %llu keeps its threshold %.6g: %s",
               d->who, (unsigned long long)d->regime_seq[i], d->regime_thr[i], err);
        d->sd_fit_n[i] = 0;         /* no more learning */
        return;
    }
    d->sd_fit_n[i] = n + 1;
    d->regime_thr[i] = nw;
}

/* A window at ts was judged against regime i, accepted from one persistent
 * change: while such windows follow each other (gaps up to P/24) within a
 * period of its start, the change lasts that long (regime_len; and the
 * span of its schedule, once a promotion put it on one: all day when it
 * covers most of the period). A night speed accepted after accept_after
 * windows keeps being judged against its regime until the morning. */
static void regime_extend(ad_detector *d, int i, int64_t ts)
{
    int64_t P = d->cfg.alert.accept_period_ms, len = ts - d->regime_at[i];

    if (P <= 0 || d->regime_last[i] == INT64_MIN)
        return;
    if (ts - d->regime_last[i] > P / 24 || len >= P || len <= 0) {
        d->regime_last[i] = INT64_MIN;  /* the occurrence ended */
        return;
    }
    d->regime_last[i] = ts;
    if (len <= d->regime_len[i])
        return;
    d->regime_len[i] = len;
    if (d->regime_span[i] > 0)
        regime_schedule(d, i);
}

/* A regime accepted from one persistent change (not recurring, on no
 * schedule) ends once the process left it, with continual learning on: it
 * was meant to end at the promotion whose candidate learned it, and when
 * that fine-tune is lost (a restart while it is due, out or in shadow) or
 * its candidate rejected it would stay for good, hiding a fault that points
 * its way under its threshold. Left: no window judged against it (ri, the
 * regime this window was judged against, -1 none) over Q windows under the
 * stream's threshold thr (windows over it judged otherwise neither count
 * nor reset; untrusted ones do not count), Q = the most of accept_after,
 * accept_gap, accept_period_ms and its own length (as windows): a change
 * that recurs within its chain's gap or at its time of day keeps it. While
 * a candidate is in shadow the end waits for its decision, which judges
 * the regime (det_acc_promoted). */
static void regime_left(ad_detector *d, int64_t ts, int ri, double s, double thr,
                        int untrusted)
{
    ad_event *e;
    double wm = d->window_ms > 0 ? d->window_ms : 0;
    int64_t q;
    int i;

    if (d->ad == NULL || !d->cfg.adapt.enabled)     /* reload.shadow alone: no fine-tune */
        return;
    for (i = 0; i < AD_REGIMES; i++) {
        if (!(d->regime_thr[i] > 0) || d->regime_rec[i] || d->regime_span[i] > 0)
            continue;
        if (i == ri) {
            d->regime_quiet[i] = 0;
            continue;
        }
        if (untrusted || !(s <= thr))
            continue;
        q = d->cfg.alert.accept_after > d->cfg.alert.accept_gap ? d->cfg.alert.accept_after
                                                                 : d->cfg.alert.accept_gap;
        if (wm > 0) {
            double p = (double)d->cfg.alert.accept_period_ms / wm;
            double l = (double)d->regime_len[i] / wm;
            if (p > (double)q)
                q = (int64_t)ceil(p);
            if (l > (double)q)
                q = (int64_t)ceil(l);
        }
        if (d->regime_quiet[i] < q) {
            d->regime_quiet[i]++;
            if (regime_dormant(d, i) && d->regime_quiet[i] == d->cfg.alert.accept_after /
                                                               AD_ACCEPT_RECUR)
                ad_log(AD_LOG_INFO, "%s: regime %llu dormant: no window judged against it "
                       "for %lld windows under the threshold %.6g; a window its way is a new "
                       "change, judged against the threshold", d->who,
                       (unsigned long long)d->regime_seq[i], (long long)d->regime_quiet[i],
                       thr);
        }
        /* a candidate in shadow judges the regime at its decision: left to
         * it (a rejection keeps the regime: it ends at the next window) */
        if (d->regime_quiet[i] < q || ad_adapt_candidate(d->ad) != NULL)
            continue;
        ad_log(AD_LOG_INFO, "%s: regime %llu ends: no window judged against it for %lld "
               "windows under the threshold %.6g (the change it was accepted from ended)",
               d->who, (unsigned long long)d->regime_seq[i], (long long)d->regime_quiet[i],
               thr);
        e = det_ev_new(d, AD_EV_REGIME_ENDED, ts);
        e->threshold = d->regime_thr[i];
        e->prev_threshold = thr;
        e->n = (uint64_t)d->regime_quiet[i];
        snprintf(e->text, sizeof(e->text), "no window judged against it (%.6g) for %lld "
                 "windows under the threshold %.6g: the change it was accepted from ended",
                 d->regime_thr[i], (long long)d->regime_quiet[i], thr);
        d->regime_thr[i] = 0;
        d->regime_len[i] = 0;
        d->regime_quiet[i] = 0;
        d->sd_fit_n[i] = 0;
        d->regime_last[i] = INT64_MIN;
    }
}

/* ACCEPTANCE AT A RECURRENCE'S ONSET (alert.accept_onset N > 0, with
 * accept_period_ms P): the chain ended quietly after at least N alerts alike
 * (pooling at least accept_after / RECUR windows) and windows over the
 * threshold, no alert open, start a new occurrence (after at least
 * accept_after / RECUR quiet windows) at the time of day of an earlier one
 * (within P/12) with their excess error pointing the chain's way (cosine >=
 * AD_ACCEPT_SIMILAR). Such an occurrence is judged once it lasted a
 * window's length of rows (onset_wait: twice the window's length in
 * windows, less one; at most accept_after / RECUR), over the threshold in
 * a row: its windows until then are withheld from the alert (neither
 * raising nor learned: return 2). The occurrence must sit at the chain's
 * level: within accept_spread x the reference spread of the median of the
 * chain's scores (the rule a current alert's scores meet against the
 * chain's earlier alerts in try_accept), or with its excess over the usual
 * error within a factor AD_ONSET_LEVEL of that median's, at the highest
 * score of its windows; an occurrence that falls under the threshold
 * before the wait ends is not a recurrence (acc_onset_ended: a spike
 * shorter than the window can average to the chain's level in every
 * window that holds it). Then the chain is judged as at a
 * clear and, when stable, accepted (return 1), so the recurrence is judged
 * against the regime instead of raising one more alert of a change already
 * seen N times: the level shift whose daily peaks alert at 17:00, 07:00
 * and 17:00 again is accepted at the second 17:00. Otherwise (return 0)
 * the windows raise as usual, the occurrence no longer judged until a
 * window under the threshold. The level matters: at the next day's hour
 * of a fault whose scores sat at 12 x the threshold, the return to normal
 * after another change, a mild wear, or a stronger fault on its way up,
 * can point the same way; they are not that fault recurring, and a regime
 * fitted on the fault's scores would silence the fault itself. The first
 * windows of any change are a ramp (partly old rows), hence the wait. */
#define AD_ONSET_LEVEL 2.0      /* a recurrence's excess error vs the chain's */

/* The wait: 2w - 1 windows, w the window's length in windows (at most
 * accept_after / RECUR). The w-th window of a run over the threshold holds
 * only rows from its onset, but a spike shorter than the window, stronger
 * than the chain's change, keeps every window that holds it over the
 * threshold and can average to the chain's level in each: its run lasts
 * from w (every window holding its strongest row) to 2w - 2 windows (w +
 * (its rows - 1) / hop). A change that lasts a window's length of rows
 * shows 2w - 1, the last of them holding its own rows only. A run that
 * ends before w windows had no row holding every window over the
 * threshold: a short change, judged at its highest score (onset_fill). */
static int onset_span(const ad_detector *d, int twice)
{
    int A = d->cfg.alert.accept_after, h = d->cfg.hop > 0 ? d->cfg.hop : 1;
    int w = (d->T + h - 1) / h, cap = A / AD_ACCEPT_RECUR;

    if (twice)
        w = 2 * w - 1;
    if (w > cap)
        w = cap;
    return w > 1 ? w : 1;
}

static int onset_wait(const ad_detector *d)
{
    return onset_span(d, 1);
}

static int onset_fill(const ad_detector *d)
{
    return onset_span(d, 0);
}

/* Keep score s as the n-th (from 0) of a run being judged (acc_onset,
 * reentry) in *buf, grown as the run does (its cap doubled: cap scores,
 * then as many of scratch, run_level's; detector_int.h). Out of memory, the run goes on
 * with the scores kept (logged once per run). */
void det_run_keep(ad_detector *d, double **buf, int *cap, int n, double s)
{
    if (n >= *cap) {
        int c = *cap > 0 ? *cap : 16;
        double *p;

        while (c <= n && c < INT_MAX / 4)
            c *= 2;
        if (c <= n || (p = realloc(*buf, 2 * (size_t)c * sizeof(double))) == NULL) {
            if (n == *cap)
                ad_log(AD_LOG_WARNING, "%s: out of memory keeping a run's scores: it is "
                       "judged on its first %d", d->who, *cap);
            return;
        }
        *buf = p;
        *cap = c;
    }
    (*buf)[n] = s;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* THE LEVEL OF A RUN (acc_onset, reentry): its n windows over the
 * threshold (x, up to cap kept) are judged at their k-th highest score,
 * k = n - w + 1 (w = onset_fill: the windows that hold only the run's
 * rows, from a window's length after its first), at least the second (and
 * at most n). A step to a level is a ramp of w windows then the level: the
 * k-th highest is the first window at it, as the highest was. No single
 * window carries it: a glitch at a regime's level inside a fault at half
 * of it was the run's highest, woke the regime and the fault was absorbed.
 * (One row strong enough to lift every window holding it still can: those
 * are w windows.) The run of the wait (2w - 1 windows) is judged at its
 * median. */
static double run_level(const double *x, int n, int cap, int w)
{
    double *tmp = (double *)x + cap;
    int k;

    if (n > cap)
        n = cap;
    if (n <= 0)
        return NAN;
    k = n - w + 1;
    if (k < 2)
        k = 2;
    if (k > n)
        k = n;
    memcpy(tmp, x, (size_t)n * sizeof(double));
    qsort(tmp, (size_t)n, sizeof(double), cmp_desc);
    return tmp[k - 1];
}

/* Windows of a run withheld (since: the first one's time, over threshold
 * thr, their highest score peak at peak_ms) raise on this window: an alert
 * that started at the first (detect, ad_alert_obs.since_ms). */
static void run_force(ad_detector *d, int64_t since, double thr, double peak, int64_t peak_ms)
{
    d->acc_onset_force = 1;
    d->force_since = since;
    d->force_thr = thr;
    d->force_peak = peak;
    d->force_peak_ms = peak_ms;
}

static void onset_force(ad_detector *d)
{
    run_force(d, d->acc_onset_ts, d->acc_onset_thr, d->acc_onset_max, d->acc_onset_peak_ms);
}

static void reent_force(ad_detector *d)
{
    run_force(d, d->reent_ts, d->reent_thr, d->reent_max, d->reent_peak_ms);
}

/* Is a score s at the level med (a chain's median, a regime's)? Within
 * accept_spread x the reference spread of it, or with its excess over the
 * usual error within a factor AD_ONSET_LEVEL of med's. */
static int at_level(const ad_detector *d, double s, double med)
{
    double usual = 0;
    int f;

    for (f = 0; f < d->F; f++)
        usual += d->acc_prof[2 * d->F + f];
    return fabs(s - med) <= d->cfg.alert.accept_spread * accept_ref_spread(d) ||
           (med > usual && s - usual >= (med - usual) / AD_ONSET_LEVEL &&
            s - usual <= (med - usual) * AD_ONSET_LEVEL);
}

/* The occurrence being judged (acc_onset) at its highest score so far:
 * at the chain's level, the chain is judged as at a clear and accepted when
 * stable (1); else (0) it is not a recurrence of the chain. */
static int acc_onset_judge(ad_detector *d, int64_t ts, double p, double L)
{
    const ad_alert_cfg *c = &d->cfg.alert;
    int A = c->accept_after, F = d->F, i, f, n = d->acc_occ_n, alerts = d->acc_alerts;
    int run = d->acc_onset_run, k = c->k > 1 ? c->k : 1;
    int64_t occ[AD_ACC_OCC_TS];
    double *x = d->acc + A, med, usual = 0;
    double s = d->onset_s ? run_level(d->onset_s, run, d->onset_cap, onset_fill(d))
                          : d->acc_onset_max;

    for (f = 0; f < F; f++)
        usual += d->acc_prof[2 * F + f];
    /* the chain's scores: the ring, all of earlier alerts */
    for (i = 0; i < d->acc_len; i++)
        x[i] = d->acc[(d->acc_head + i) % A];
    med = median_of(x, d->acc_len, d->acc + 2 * A);
    d->acc_onset_run = -1;
    if (!at_level(d, s, med)) {
        ad_log(AD_LOG_INFO, "%s: not a recurrence at its onset: score %.4g (highest %.4g), "
               "the chain's median %.4g (usual %.4g); %d window(s) withheld%s", d->who, s,
               d->acc_onset_max, med, usual, run, run >= k ? ": raised now" : "");
        if (run >= k)
            onset_force(d);
        return 0;
    }
    memcpy(occ, d->acc_occ_ts, sizeof(occ));
    acc_occ_push(d, d->acc_onset_ts);
    d->acc_alerts++;
    if (try_accept(d, ts, NAN, p, L, 1))
        return 1;                   /* (the chain reset: run 0) */
    memcpy(d->acc_occ_ts, occ, sizeof(occ));
    d->acc_occ_n = n;
    d->acc_alerts = alerts;
    /* at the chain's level but not accepted (not stable): the withheld
     * windows raise as they would have */
    ad_log(AD_LOG_INFO, "%s: a recurrence at its onset not accepted (the chain is not "
           "stable); %d window(s) withheld%s", d->who, run, run >= k ? ": raised now" : "");
    if (run >= k)
        onset_force(d);
    return 0;
}

static int acc_onset(ad_detector *d, int64_t ts, double s, double thr, const float *share,
                     double p, double L)
{
    const ad_alert_cfg *c = &d->cfg.alert;
    int A = c->accept_after, F = d->F, i, f, at = 0, n = d->acc_occ_n;
    int64_t P = c->accept_period_ms;
    const double *u, *g;
    double ee = 0, gg = 0, eg = 0, ef;

    if (d->acc_onset_run < 0)
        return 0;                   /* judged: not a recurrence */
    if (c->accept_onset <= 0 || P <= 0 || A <= 0 || d->acc == NULL || d->acc_prof == NULL ||
        share == NULL || ad_alerter_active(d->alert) != NULL)
        goto no;
    /* occurrences seen: accept_onset of them (the count the key names;
     * at most RECUR - 1, the ones a pattern needs besides this one) */
    if (d->acc_prev == 0 || d->acc_prev != d->acc_len || d->acc_alerts < c->accept_onset ||
        n < (c->accept_onset < AD_ACCEPT_RECUR - 1 ? c->accept_onset : AD_ACCEPT_RECUR - 1) ||
        d->acc_len < A / AD_ACCEPT_RECUR ||
        d->acc_quiet < A / AD_ACCEPT_RECUR)
        goto no;
    for (i = 0; i < n && !at; i++)
        at = same_time(d->acc_onset_run > 0 ? d->acc_onset_ts : ts, d->acc_occ_ts[i], P);
    if (!at)
        goto no;
    u = d->acc_prof + 2 * F;
    g = d->acc_prof;
    for (f = 0; f < F; f++) {
        ef = s * share[f] - u[f];
        ee += ef * ef;
        gg += g[f] * g[f];
        eg += ef * g[f];
    }
    if (!(ee > 0 && gg > 0) || !(eg / sqrt(ee * gg) >= AD_ACCEPT_SIMILAR))
        goto no;
    det_run_keep(d, &d->onset_s, &d->onset_cap, d->acc_onset_run, s);
    if (d->acc_onset_run++ == 0) {
        d->acc_onset_ts = ts;
        d->acc_onset_thr = thr;
        d->acc_onset_max = s;
        d->acc_onset_peak_ms = ts;
    } else if (s > d->acc_onset_max) {
        d->acc_onset_max = s;
        d->acc_onset_peak_ms = ts;
    }
    if (d->acc_onset_run < onset_wait(d))
        return 2;                   /* a ramp so far: wait */
    return acc_onset_judge(d, ts, p, L);
no:
    /* no longer at the chain's time or profile: windows withheld that
     * would have raised raise now */
    if (d->acc_onset_run >= (c->k > 1 ? c->k : 1))
        onset_force(d);
    d->acc_onset_run = 0;
    return 0;
}

/* A window under the threshold (trusted) after windows acc_onset withheld:
 * the occurrence ended before its wait did. Ended before onset_fill
 * windows, it is judged at its highest score (a recurrence shorter than
 * the wait; as a chain's alert shorter than accept_after / RECUR is judged
 * at its clear) when it lasted the alert.k windows that would have raised
 * an alert. Ended later, it is not a recurrence at its onset: a spike
 * shorter than the window, stronger than the chain's change, averaging to
 * its level in every window that holds it, lasts that long (onset_span);
 * the windows raise now when they were alert.k or more. */
static void acc_onset_ended(ad_detector *d, int64_t ts, double p, double L)
{
    int run = d->acc_onset_run, k = d->cfg.alert.k > 1 ? d->cfg.alert.k : 1;

    if (run >= k && run < onset_fill(d) && ad_alerter_active(d->alert) == NULL) {
        acc_onset_judge(d, ts, p, L);
    } else if (run >= k && ad_alerter_active(d->alert) == NULL) {
        ad_log(AD_LOG_INFO, "%s: not a recurrence at its onset: it ended after %d window(s) "
               "over the threshold, as a spike shorter than the window does; %d window(s) "
               "withheld: raised now", d->who, run, run);
        onset_force(d);             /* (fewer than alert.k would not have raised) */
    }
    d->acc_onset_run = 0;
}

/* A CHANGE THE WAY OF A DORMANT REGIME (regime_dormant): windows over the
 * threshold, no alert open, like a dormant regime (but for its dormancy)
 * are a new onset. They are withheld (neither raising nor learned: return
 * 2) until it lasted a window's length of rows (onset_wait), and judged at
 * their highest score against the regime's level (at_level, the onset
 * rule's test): at it, the process is back in the regime, which wakes
 * (its quiet count 0: this window and the next ones are judged against it,
 * return 1); else (or when the run ends or leaves the regime before it is
 * judged) it is not the regime back, and the withheld windows raise when
 * they were alert.k or more (as at an onset judged not a recurrence). The
 * blockage accepted for two days and left: a cavitation its way under its
 * threshold half a day later raised nothing until the regime ended, a day
 * after its last window judged against it; the daily load that came back
 * at its level a day later was absorbed, and is still. */
static int reentry(ad_detector *d, int64_t ts, double s, double thr, const float *share,
                   int cannot)
{
    int j = -1, k = d->cfg.alert.k > 1 ? d->cfg.alert.k : 1, run = d->reent_run;
    double lvl;

    if (s > thr && !cannot && ad_alerter_active(d->alert) == NULL &&
        like_regime(d, ts, s, thr, share) < 0)
        j = like_dormant(d, ts, s, thr, share);
    if (run < 0) {                  /* judged: not the regime back */
        if (j < 0)
            d->reent_run = 0;
        return 0;
    }
    if (run > 0 && d->regime_thr[d->reent_i] > 0 && !regime_dormant(d, d->reent_i)) {
        d->reent_run = 0;           /* it woke meanwhile (kept over a promotion,
                                       on a schedule): judged against it now */
        return 0;
    }
    lvl = run > 0 ? (d->reent_s ? run_level(d->reent_s, run, d->reent_cap, onset_fill(d))
                                : d->reent_max) : NAN;
    if (j < 0 && run > 0 && run < onset_fill(d) && !(s > thr) && !cannot &&
        at_level(d, lvl, d->regime_lvl[d->reent_i])) {
        /* a short return at its level, ended before a spike's span */
        ad_log(AD_LOG_INFO, "%s: regime %llu back at its level (score %.4g, its level %.4g) "
               "for %d window(s): judged against it again", d->who,
               (unsigned long long)d->regime_seq[d->reent_i], lvl,
               d->regime_lvl[d->reent_i], run);
        d->regime_quiet[d->reent_i] = 0;
        d->reent_run = 0;
        return 0;
    }
    if (j < 0 || (run > 0 && j != d->reent_i)) {
        if (run >= k && ad_alerter_active(d->alert) == NULL) {
            ad_log(AD_LOG_INFO, "%s: not regime %llu back: it ended or left it after %d "
                   "window(s)%s; %d window(s) withheld: raised now", d->who,
                   (unsigned long long)d->regime_seq[d->reent_i], run,
                   run < onset_fill(d) ? ", not at its level" :
                   ", before one held a window's length of its rows", run);
            reent_force(d);
        }
        d->reent_run = 0;
        return 0;
    }
    det_run_keep(d, &d->reent_s, &d->reent_cap, d->reent_run, s);
    if (d->reent_run++ == 0) {
        d->reent_i = j;
        d->reent_max = s;
        d->reent_ts = d->reent_peak_ms = ts;
        d->reent_thr = thr;
    } else if (s > d->reent_max) {
        d->reent_max = s;
        d->reent_peak_ms = ts;
    }
    if (d->reent_run < onset_wait(d)) {
        d->last_reent = j;
        return 2;
    }
    run = d->reent_run;
    lvl = d->reent_s ? run_level(d->reent_s, run, d->reent_cap, onset_fill(d)) : d->reent_max;
    if (at_level(d, lvl, d->regime_lvl[j])) {
        ad_log(AD_LOG_INFO, "%s: regime %llu back at its level (score %.4g, highest %.4g, its "
               "level %.4g): judged against it again", d->who,
               (unsigned long long)d->regime_seq[j], lvl, d->reent_max, d->regime_lvl[j]);
        d->regime_quiet[j] = 0;
        d->reent_run = 0;
        return 1;
    }
    ad_log(AD_LOG_INFO, "%s: a change the way of dormant regime %llu, not at its level "
           "(score %.4g, highest %.4g, its level %.4g): a new change; %d window(s) "
           "withheld%s", d->who, (unsigned long long)d->regime_seq[j], lvl, d->reent_max,
           d->regime_lvl[j], run, run >= k ? ": raised now" : "");
    if (run >= k)
        reent_force(d);
    d->reent_run = -1;
    return 0;
}

/* Forget the level test's scores (another model's scale). */
void det_level_reset(ad_detector *d)
{
    det_level_forget(d);
    d->lvl_off = 0;
    d->lvl_like = d->lvl_cap;
}

/* Start the level test's mean over (a promotion: the scores so far are
 * the old model's, against the new one's threshold and normal scores they
 * would read as a rise); whether it is armed stays. */
void det_level_forget(ad_detector *d)
{
    d->lvl_acc = NAN;                   /* a level of the old scores */
    d->lvl_acc_wait = 0;
    d->tpend_n = d->tpend_pos = 0;      /* nor are those waiting to teach */
    d->lvl_resume = 0;
    d->lvl_hold = 0;
    d->lvl_n = d->lvl_pos = d->lvl_exact = 0;
    d->lvl_sum = d->lvl_base = 0;
}

/* The level test's sums again from its ring (after a restore or a drop). */
static void level_sums(ad_detector *d)
{
    const double *bs = d->lvl + d->lvl_cap;
    int i;

    d->lvl_exact = 0;
    d->lvl_sum = d->lvl_base = 0;
    for (i = 0; i < d->lvl_n; i++) {
        d->lvl_sum += d->lvl[i];
        d->lvl_base += bs[i];
    }
}

/* Turn the level test's ring so that its oldest value is in slot 0 (as a
 * restore leaves it): a ring not yet full is already so. */
static void level_linear(ad_detector *d)
{
    double *tmp;
    int n = d->lvl_n, cap = d->lvl_cap, start = ((d->lvl_pos - n) % cap + cap) % cap;

    if (start == 0 || n == 0) {
        d->lvl_pos = n % cap;
        return;
    }
    tmp = malloc((size_t)n * sizeof(double));
    if (tmp == NULL) {          /* cannot turn it: start over instead */
        det_level_forget(d);
        return;
    }
    for (int h = 0; h < 2; h++) {
        double *v = d->lvl + (size_t)h * cap;

        for (int i = 0; i < n; i++)
            tmp[i] = v[(start + i) % cap];
        memcpy(v, tmp, (size_t)n * sizeof(double));
    }
    free(tmp);
    d->lvl_pos = n % cap;
}

/* The first window after det_level_restore, or after a silence of the
 * live stream, at ts: the windows the data time since the last window
 * judged (lvl_resume_ts) holds (over the window period) would have pushed
 * as many of the oldest ones out of the span; those go, and the test
 * judges once the ring is full again. A gap of the whole span or more (a
 * stream back days later) leaves nothing: the mean starts over, as
 * without the saved state. */
static void level_resumed(ad_detector *d, int64_t ts)
{
    double m, w = d->lvl_resume_dt > 0 ? d->lvl_resume_dt : d->window_ms;
    int k;

    d->lvl_resume = 0;
    d->lvl_resume_dt = 0;
    if (!(w > 0) || ts <= d->lvl_resume_ts || d->lvl_n == 0)
        return;
    m = floor((double)(ts - d->lvl_resume_ts) / w + 0.5) - 1;
    if (!(m >= 1))
        return;
    k = m >= d->lvl_n ? d->lvl_n : (int)m;
    /* restored in order: the oldest first, from slot 0 */
    memmove(d->lvl, d->lvl + k, (size_t)(d->lvl_n - k) * sizeof(double));
    memmove(d->lvl + d->lvl_cap, d->lvl + d->lvl_cap + k,
            (size_t)(d->lvl_n - k) * sizeof(double));
    d->lvl_n -= k;
    d->lvl_pos = d->lvl_n % d->lvl_cap;
    d->lvl_like = m >= d->lvl_cap - d->lvl_like ? d->lvl_cap : d->lvl_like + (int)m;
    level_sums(d);
    if (d->lvl_n == 0) {
        d->lvl_hold = 0;        /* nothing left from before: judged afresh */
        /* so are the windows waiting to teach the threshold: the test
         * never judged a span over them (taught now, a rise on both sides
         * of the silence lifted the fence over its own level), dropped as
         * at a restart */
        d->tpend_n = d->tpend_pos = 0;
        ad_log(AD_LOG_INFO, "%s: level test: %.4g h of data time since the last window "
               "it judged, more than alert.level_ms: the mean starts over", d->who,
               (double)(ts - d->lvl_resume_ts) / 3600e3);
    }
}

/* Most values of the level test's ring a state holds: a longer ring is
 * saved as the means of blocks of consecutive windows. */
#define AD_LEVEL_SAVE_MAX 360

/* The quantum the saved level values are whole multiples of: a power of
 * ten, 1e-5 of the decade of the threshold or of the largest value saved,
 * whichever is smaller, at the coarsest (the mean within 5e-6 of either
 * of the one saved: scores far under a threshold held up by its floor, as
 * under sigma or pot whose fence has no part of the threshold, keep their
 * digits), and fine enough for the largest value to stay within 1e15
 * quanta. */
static double level_quantum(const ad_detector *d, double maxabs)
{
    double thr = ad_threshold_value(d->thr), ref = isfinite(thr) && thr > 0 ? thr : maxabs;

    if (maxabs > 0 && maxabs < ref)
        ref = maxabs;
    double q = ref > 0 && isfinite(ref) ? pow(10, floor(log10(ref)) - 5) : 1e-9;

    if (isfinite(maxabs) && maxabs / q > 1e15)
        q = pow(10, ceil(log10(maxabs / 1e15)));
    return q > 0 && isfinite(q) ? q : 1e-9;
}

/* One array of the level's ring (v: lvl_n values from the oldest at
 * (lvl_pos - lvl_n) mod cap) as block means in quanta: blocks of per
 * windows from the newest, the oldest block holding the rest. */
static cJSON *level_values(const ad_detector *d, const double *v, int per, double q)
{
    cJSON *a = cJSON_CreateArray();
    int n = d->lvl_n, cap = d->lvl_cap, K = (n + per - 1) / per, k, j, first;
    int start = ((d->lvl_pos - n) % cap + cap) % cap;

    if (a == NULL)
        return NULL;
    first = n - (K - 1) * per;
    for (k = 0, j = 0; k < K; k++) {
        int len = k == 0 ? first : per, e;
        double sum = 0;

        for (e = 0; e < len; e++, j++)
            sum += v[(start + j) % cap];
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(floor(sum / len / q + 0.5)))) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* The level test's state ("level" of the saved state; detector.h
 * ad_detector_save): {"level_ms":L,"window_ms":w,"windows":cap,"at_ms":ts,
 * "n":n,"per":p,"q":q,"scores":[..],["bases":[..],]"off":b,"like":n[,"held":true]}
 * (held: the last window judged was held elevated). NULL
 * when the test is off or on OOM. */
cJSON *det_level_save(const ad_detector *d)
{
    const double *bs;
    double maxabs = 0, q;
    int per, i, any_base = 0;
    cJSON *o, *a;

    if (d->lvl == NULL || !(d->window_ms > 0) || (o = cJSON_CreateObject()) == NULL)
        return NULL;
    bs = d->lvl + d->lvl_cap;
    for (i = 0; i < d->lvl_n; i++) {
        int j = ((d->lvl_pos - d->lvl_n + i) % d->lvl_cap + d->lvl_cap) % d->lvl_cap;
        maxabs = fmax(maxabs, fmax(fabs(d->lvl[j]), fabs(bs[j])));
        any_base |= bs[j] != 0;
    }
    q = level_quantum(d, maxabs);
    per = (d->lvl_cap + AD_LEVEL_SAVE_MAX - 1) / AD_LEVEL_SAVE_MAX;
    if (!cJSON_AddNumberToObject(o, "level_ms", (double)d->cfg.alert.level_ms) ||
        !cJSON_AddNumberToObject(o, "window_ms", d->window_ms) ||
        !cJSON_AddNumberToObject(o, "windows", d->lvl_cap) ||
        !cJSON_AddNumberToObject(o, "at_ms", (double)d->lvl_ts) ||
        !cJSON_AddNumberToObject(o, "n", d->lvl_n) ||
        !cJSON_AddNumberToObject(o, "per", per) ||
        !cJSON_AddNumberToObject(o, "q", q) ||
        (a = level_values(d, d->lvl, per, q)) == NULL)
        goto fail;
    cJSON_AddItemToObject(o, "scores", a);
    if (any_base) {
        if ((a = level_values(d, bs, per, q)) == NULL)
            goto fail;
        cJSON_AddItemToObject(o, "bases", a);
    }
    if (!cJSON_AddBoolToObject(o, "off", d->lvl_off) ||
        !cJSON_AddNumberToObject(o, "like", d->lvl_like) ||
        (d->lvl_hold && !cJSON_AddTrueToObject(o, "held")) ||
        (isfinite(d->lvl_acc) && !cJSON_AddNumberToObject(o, "accepted", d->lvl_acc)) ||
        (d->lvl_acc_wait > 0 && !cJSON_AddNumberToObject(o, "accept_wait", d->lvl_acc_wait)))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Array k of o: K whole numbers within +-1e15 (quanta) into out as
 * values of q. 0 or -1. */
static int level_read(const cJSON *o, const char *k, int K, double q, double *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *x;
    int i = 0;

    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != K)
        return -1;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= 1e15) ||
            x->valuedouble != floor(x->valuedouble) || !isfinite(x->valuedouble * q))
            return -1;
        out[i++] = x->valuedouble * q;
    }
    return 0;
}

/*
 * Continue the level test from det_level_save's object o (called once the
 * window period is restored: the ring is sized then). Kept under another
 * alert.level_ms or window period (a ring of other windows), it is dropped
 * with a line saying so; damaged, with a warning naming the field; none
 * (an older state): the mean starts over, as before it was kept. The
 * first window after drops what the gap since the save put out of the
 * span (level_resumed).
 */
/* The saved accepted level ("accepted"; level_bounds), absent: none; a
 * damaged one is dropped with a warning. */
static void level_restore_accepted(ad_detector *d, const cJSON *o)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "accepted");

    if (cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble > 0)
        d->lvl_acc = x->valuedouble;
    else if (x != NULL)
        ad_log(AD_LOG_WARNING, "%s: saved state: level.accepted is damaged: the level test "
               "judges against the normal scores", d->who);
}

void det_level_restore(ad_detector *d, const cJSON *o)
{
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "off");
    const cJSON *x;
    const char *bad = "";
    double *v = NULL, q, lms, wms;
    int64_t at = 0;
    int cap = 0, n = 0, per = 0, like = 0, K, k, j, i;

    d->lvl_resume = 0;
    d->lvl_hold = 0;
    if (o == NULL || d->lvl == NULL)
        return;
    x = cJSON_GetObjectItemCaseSensitive(o, "level_ms");
    lms = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    x = cJSON_GetObjectItemCaseSensitive(o, "window_ms");
    wms = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    x = cJSON_GetObjectItemCaseSensitive(o, "q");
    q = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    if (!cJSON_IsObject(o) || (bad = "level_ms", !(lms >= 1 && lms <= 31622400000.0))) {
        if (!*bad)
            bad = "(not an object)";
        goto damaged;
    }
    if ((bad = "window_ms", !(wms >= 1 && wms <= 31622400000.0)))
        goto damaged;
    if ((int64_t)lms != d->cfg.alert.level_ms || wms != d->window_ms) {
        ad_log(AD_LOG_INFO, "%s: saved level test mean dropped: kept over alert.level_ms "
               "%.0f with a window every %.0f ms, now %lld with %.0f ms: the mean starts "
               "over", d->who, lms, wms, (long long)d->cfg.alert.level_ms, d->window_ms);
        /* the accepted level is a level of the same model's scores: kept
         * (else a level accepted before the change raised once more) */
        level_restore_accepted(d, o);
        return;
    }
    if (get_whole(o, "windows", d->lvl_cap, d->lvl_cap, &cap, NULL, &bad) ||
        get_whole(o, "at_ms", -AD_ACC_TIME_MAX, AD_ACC_TIME_MAX, NULL, &at, &bad) ||
        get_whole(o, "n", 0, cap, &n, NULL, &bad) ||
        get_whole(o, "per", 1, cap, &per, NULL, &bad) ||
        get_whole(o, "like", 0, cap, &like, NULL, &bad) ||
        (bad = "q", !(q > 0 && isfinite(q))) || (bad = "off", !cJSON_IsBool(off)))
        goto damaged;
    K = (n + per - 1) / per;
    if ((v = calloc(2 * (size_t)K + 1, sizeof(double))) == NULL) {
        ad_log(AD_LOG_WARNING, "%s: saved level test mean not restored: out of memory",
               d->who);
        return;
    }
    if ((bad = "scores", level_read(o, "scores", K, q, v) != 0) ||
        (bad = "bases", cJSON_GetObjectItemCaseSensitive(o, "bases") != NULL &&
         level_read(o, "bases", K, q, v + K) != 0))
        goto damaged;
    /* each window of a block takes its mean: the sum is the saved one, and
     * the mean stays within a block's spread of it as the block leaves */
    det_level_forget(d);
    for (k = 0, j = 0; k < K; k++) {
        int len = k == 0 ? n - (K - 1) * per : per;
        for (i = 0; i < len; i++, j++) {
            d->lvl[j] = v[k];
            d->lvl[d->lvl_cap + j] = v[K + k];
        }
    }
    d->lvl_n = n;
    d->lvl_pos = n % d->lvl_cap;
    d->lvl_off = cJSON_IsTrue(off);
    /* an alert it held stays held while the span refills (level_test) */
    d->lvl_hold = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "held"));
    d->lvl_like = like;
    /* the level an acceptance took as normal (absent: none; a damaged one
     * is dropped: the test judges against the normal scores) */
    level_restore_accepted(d, o);
    x = cJSON_GetObjectItemCaseSensitive(o, "accept_wait");
    if (cJSON_IsNumber(x) && x->valuedouble >= 1 && x->valuedouble <= d->lvl_cap)
        d->lvl_acc_wait = (int)x->valuedouble;
    else if (x != NULL)
        ad_log(AD_LOG_WARNING, "%s: saved state: level.accept_wait is damaged: the "
               "accepted level is not taken", d->who);
    d->lvl_ts = at;
    level_sums(d);
    d->lvl_resume = 1;
    d->lvl_resume_ts = at;
    d->lvl_resume_dt = 0;       /* the saved window period (checked above) */
    d->lvl_dt = 0;
    d->lvl_seen = 1;
    free(v);
    return;
damaged:
    free(v);
    ad_log(AD_LOG_WARNING, "%s: saved state: level.%s is damaged: the level test's mean "
           "starts over", d->who, bad);
}

/* The level test's fence: the median of the scores the threshold keeps +
 * level_z spreads, and at least the tail quantile the threshold is a
 * margin over; NAN when the threshold has no spread yet. Its hysteresis
 * (*low: the release of a held window and the re-arming) is half way
 * from that median up to the fence: the mean over a span wanders less
 * than a window's score, but a level sitting at the fence crossed 0.8 of
 * the way (the score alerts' clear_ratio) back and forth: a level just
 * under the fence, its mean over 20 windows wandering across it, raised
 * 42 alerts in 8,000 rows with no acceptance (half way: 3). After
 * an acceptance whose mean was over the median (lvl_acc), both are
 * lifted by that rise: the accepted level is the test's normal, a rise
 * over it raises again. *low0: the hysteresis without the lift. */
static double level_bounds(const ad_detector *d, double *low, double *low0)
{
    ad_thr_info ti;
    double fence, lift = 0;

    *low = *low0 = NAN;
    ad_threshold_info(d->thr, &ti);
    if (!isfinite(ti.median) || !(ti.spread > 0) || !isfinite(ti.spread))
        return NAN;
    fence = ti.median + d->cfg.alert.level_z * ti.spread;
    /* a mean over hours above the quantile of single normal windows */
    if (d->cfg.thr.method == AD_THR_QUANTILE || d->cfg.thr.method == AD_THR_MODEL)
        fence = fmax(fence, ad_threshold_value(d->thr) / d->cfg.thr.margin);
    *low0 = fence > ti.median ? ti.median + 0.5 * (fence - ti.median) : fence;
    if (isfinite(d->lvl_acc) && d->lvl_acc > ti.median)
        lift = d->lvl_acc - ti.median;
    *low = *low0 + lift;
    return fence + lift;
}

/* The end of the wait after an acceptance: the mean over the span, all of
 * it after the acceptance, is the accepted level when it is over the
 * median (else none: nothing to lift). */
static void level_take_accepted(ad_detector *d)
{
    ad_thr_info ti;
    double mean;

    d->lvl_acc = NAN;
    if (d->lvl_n == 0)
        return;
    mean = d->lvl_sum / d->lvl_n;
    ad_threshold_info(d->thr, &ti);
    if (isfinite(mean) && isfinite(ti.median) && mean > ti.median)
        d->lvl_acc = mean;
}

static double level_fence(const ad_detector *d)
{
    double low, low0;

    return level_bounds(d, &low, &low0);
}

/* LEVEL TEST (alert.level_ms = L windows, alert.level_z = z): the score of
 * a window can stay under the threshold (margin x a tail quantile) while
 * its level doubles for good: a fault that adds noise the model cannot
 * reconstruct lifts every window a little, and the threshold, learning
 * from windows judged normal, then absorbs it. The mean of the last L
 * trusted scores is compared with the median + z spreads (1.4826 MAD) of
 * the scores the threshold keeps (judged normal): above that fence the
 * window counts as over the threshold (ad_alert_obs.elevated), so the rise
 * raises as any alert (k of n), is not learned, and holds an alert open
 * until the level falls back; a persistent change is accepted as the
 * new normal the usual way, after which the test waits for the level to
 * fall under the fence before it judges again (lvl_off; so while an alert
 * the score raised is open: it clears as the score falls, and after its
 * clear the mean starts over, armed), and a mean over windows judged
 * against an accepted regime (like) judges nothing. The mean of many
 * windows moves little with one window's peak: spikes and a daily hour's
 * peak stay under the fence that an elevation of the whole level crosses.
 * With a seasonal level (calibration.season_ms), base is the level the
 * window's phase reached (NAN: none yet): the mean must also be above the
 * mean of those levels, so a span of the day whose scores are high every
 * day (a daily step the model reconstructs poorly) is not a rise.
 * Returns 1 when the window is held elevated. */
static int level_test(ad_detector *d, int64_t ts, double s, double base, int untrusted,
                      int like)
{
    double *bs;
    double fence, low, low0, dt, gap, k, mean;
    int i;

    if (d->lvl == NULL)
        return 0;
    bs = d->lvl + d->lvl_cap;
    /* a live stream silent for a twentieth of the span or more (at least
     * two of its usual intervals between windows; a late row or a window
     * left out is no silence, nor are rows that come slower than the
     * window period measured: lvl_dt follows them): what its silence put
     * out of the span goes, as after a restore */
    dt = d->lvl_dt > 0 ? d->lvl_dt : d->window_ms;
    gap = (double)(ts - d->lvl_ts);
    k = fmax(2, d->lvl_cap / 20);
    if (d->lvl_seen && !d->lvl_resume && d->lvl_n > 0 && dt > 0 && gap >= k * dt) {
        level_linear(d);
        d->lvl_resume = 1;
        d->lvl_resume_ts = d->lvl_ts;
        d->lvl_resume_dt = dt;
    }
    /* the usual interval, a silence counting as k of them at most */
    if (d->lvl_seen && dt > 0 && gap > 0)
        d->lvl_dt = dt + (fmin(gap, k * dt) - dt) / 8;
    d->lvl_seen = 1;
    if (d->lvl_resume)
        level_resumed(d, ts);
    d->lvl_ts = ts;
    if (like)
        d->lvl_like = 0;
    else if (d->lvl_like < d->lvl_cap)
        d->lvl_like++;
    if (!untrusted && isfinite(s)) {
        if (!isfinite(base) || base < 0)
            base = 0;
        if (d->lvl_n == d->lvl_cap) {
            d->lvl_sum -= d->lvl[d->lvl_pos];
            d->lvl_base -= bs[d->lvl_pos];
        } else {
            d->lvl_n++;
        }
        d->lvl[d->lvl_pos] = s;
        bs[d->lvl_pos] = base;
        d->lvl_sum += s;
        d->lvl_base += base;
        d->lvl_pos = (d->lvl_pos + 1) % d->lvl_cap;
        if (d->lvl_acc_wait > 0 && --d->lvl_acc_wait == 0)
            level_take_accepted(d);
        if (++d->lvl_exact >= d->lvl_cap) {     /* no rounding drift */
            d->lvl_exact = 0;
            d->lvl_sum = d->lvl_base = 0;
            for (i = 0; i < d->lvl_n; i++) {
                d->lvl_sum += d->lvl[i];
                d->lvl_base += bs[i];
            }
        }
    }
    /* a mean over windows of an accepted regime says nothing against the
     * normal scores: those windows have their own threshold */
    if (d->lvl_like < d->lvl_cap)
        return d->lvl_hold = 0;
    /* refilling after a silence that left part of the span: an alert the
     * test held stays held until it judges again (else a short outage of
     * the data closed it while the level it was raised for went on, and
     * the test, disarmed by that close, never raised it again) */
    if (d->lvl_n < d->lvl_cap)
        return d->lvl_hold = d->lvl_hold && !d->lvl_off &&
                             ad_alerter_active(d->alert) != NULL;
    fence = level_bounds(d, &low, &low0);
    if (!isfinite(fence))
        return d->lvl_hold = 0;
    mean = d->lvl_sum / d->lvl_n;
    if (d->lvl_acc_wait > 0)            /* disarmed until the level is taken */
        return d->lvl_hold = 0;
    /* an accepted level has gone once the mean is back nearer the
     * normal scores' median than that level (the process returned; a
     * mean at the level wanders across the hysteresis, not that far), or
     * once the threshold's median has reached it (learned: no lift) */
    if (isfinite(d->lvl_acc) && (!(low > low0) ||
                                 mean <= d->lvl_acc - (low - low0) / 2)) {
        ad_log(AD_LOG_INFO, "%s: level test: the accepted level %.4g has gone (mean %.4g): "
               "judged against the normal scores again", d->who, d->lvl_acc, mean);
        d->lvl_acc = NAN;
        fence = level_bounds(d, &low, &low0);
    }
    /* under the fence by the hysteresis (level_bounds): a held
     * window is released, and a test disarmed by an acceptance or a
     * score alert is armed again (only between alerts). Without it a
     * level that sits at the fence crossed it again and again: a raise,
     * a clear or an acceptance, then the next crossing raised once more */
    if (mean <= low || d->lvl_sum <= d->lvl_base) {
        if (ad_alerter_active(d->alert) == NULL)
            d->lvl_off = 0;     /* armed again only between alerts */
        return d->lvl_hold = 0;
    }
    if (d->lvl_hold && !d->lvl_off)
        return 1;               /* held until under the hysteresis */
    if (mean <= fence)
        return d->lvl_hold = 0;
    return d->lvl_hold = !d->lvl_off;
}

/* BAND RUN (alert.band, detector.h): follow a run of windows over the
 * threshold, under the raise level, while no alert is open. in_band: this
 * window is such a window; over: it is over the threshold at all. Once the
 * run lasted accept_after windows, AD_BAND_RAISE asks the alerter to raise
 * on its next band window (o->band); AD_BAND_LEARN has its band windows
 * learned as normal from then on (d->band_now) and queues an
 * AD_EV_ACCEPTED event saying so. A run ends at alert.m consecutive
 * windows not over the threshold, or when an alert is open. */
static void band_run(ad_detector *d, int64_t ts, int in_band, int over, ad_alert_obs *o,
                     int untrusted)
{
    int A = d->cfg.alert.accept_after;
    ad_event *e;

    d->band_now = 0;
    if (A <= 0 || d->cfg.alert.band == AD_BAND_OFF || ad_alerter_active(d->alert) != NULL) {
        d->band_n = d->band_below = d->band_learn = 0;
        return;
    }
    if (d->band_n == 0 && !in_band)
        return;
    d->band_n++;
    d->band_below = over ? 0 : d->band_below + 1;
    if (d->band_below >= d->cfg.alert.m) {
        d->band_n = d->band_below = d->band_learn = 0;  /* the run ended */
        return;
    }
    if (d->band_n < A || !in_band)
        return;
    if (d->cfg.alert.band == AD_BAND_RAISE) {
        o->band = 1;
        return;
    }
    if (!d->band_learn) {
        d->band_learn = 1;
        e = det_ev_new(d, AD_EV_ACCEPTED, ts);
        e->threshold = o->threshold;
        e->prev_threshold = o->threshold;
        e->n = (uint64_t)d->band_n;
        snprintf(e->text, sizeof(e->text), "a run of %d windows between the threshold %.6g "
                 "and alert.raise_ratio x it learned as normal (alert.band learn, no alert)",
                 d->band_n, o->threshold);
        ad_log(AD_LOG_INFO, "%s: band run accepted: %s", d->who, e->text);
    }
    d->band_now = !untrusted;
}

void det_band_reset(ad_detector *d)
{
    d->band_n = d->band_below = d->band_learn = d->band_now = 0;
}

int det_band_save(const ad_detector *d, cJSON *o)
{
    cJSON *b;

    if (d->band_n == 0)
        return 0;
    if ((b = cJSON_AddObjectToObject(o, "band")) == NULL ||
        !cJSON_AddNumberToObject(b, "n", d->band_n) ||
        !cJSON_AddNumberToObject(b, "below", d->band_below) ||
        !cJSON_AddBoolToObject(b, "learn", d->band_learn))
        return -1;
    return 0;
}

void det_band_restore(ad_detector *d, const cJSON *x)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(x, "n");
    const cJSON *below = cJSON_GetObjectItemCaseSensitive(x, "below");
    const cJSON *learn = cJSON_GetObjectItemCaseSensitive(x, "learn");

    det_band_reset(d);
    if (x == NULL)
        return;
    if (!cJSON_IsNumber(n) || !(n->valuedouble >= 1 && n->valuedouble <= 1e9) ||
        !cJSON_IsNumber(below) || !(below->valuedouble >= 0 && below->valuedouble <= 1e9) ||
        !cJSON_IsBool(learn)) {
        ad_log(AD_LOG_WARNING, "%s: state band: \"n\", \"below\" or \"learn\" missing or "
               "out of range: the band run starts over", d->who);
        return;
    }
    d->band_n = (int)n->valuedouble;
    d->band_below = (int)below->valuedouble;
    d->band_learn = cJSON_IsTrue(learn);
}

/* LEARNING WAITS FOR THE LEVEL TEST: a window judged normal but over the
 * level test's fence teaches the threshold (calibration.adapt) once the
 * level span (alert.level_ms) has passed over it with no alert raised;
 * one under the fence teaches it at once. A mild fault that sits under
 * the threshold for hours otherwise lifted it before the level test's
 * mean could show the rise: once more than 1 - q of the kept scores were
 * the fault's, the tail quantile was the fault's level, and the fence
 * (at least threshold / margin) with it. A raise drops the windows
 * waiting (what led to it). A slow drift, its windows under the fence,
 * is learned as it comes. */
static void thr_learn(ad_detector *d, int64_t ts, double s)
{
    double fence;

    if (d->tpend == NULL) {
        ad_threshold_adapt(d->thr, s);
        return;
    }
    while (d->tpend_n > 0) {            /* the oldest, when its span passed */
        int o = ((d->tpend_pos - d->tpend_n) % d->lvl_cap + d->lvl_cap) % d->lvl_cap;
        if (ts - d->tpend_ts[o] < d->cfg.alert.level_ms && d->tpend_n < d->lvl_cap)
            break;
        ad_threshold_adapt(d->thr, d->tpend[o]);
        d->tpend_n--;
    }
    fence = level_fence(d);
    if (!(s > fence)) {
        ad_threshold_adapt(d->thr, s);
        return;
    }
    d->tpend[d->tpend_pos] = s;
    d->tpend_ts[d->tpend_pos] = ts;
    d->tpend_pos = (d->tpend_pos + 1) % d->lvl_cap;
    d->tpend_n++;
}

/* DETECTING: one score through the alerter, acceptance and adaptation. */
static void detect(ad_detector *d, int64_t ts, double s, double p, double L,
                   const float *share, int untrusted, int hard, int burst, int noise,
                   uint64_t noise_set)
{
    /* untrusted: never teaches; hard: also stops regime acceptance */
    double thr = ad_threshold_value(d->thr), lv = NAN, eff = thr, base = NAN;
    int ri, like, seasonal;

    d->last_kept = 0;

    /* no alert raised under margin x the level this phase of the period
     * reached in R of the last 2R - 1 periods (season.h); an open one is
     * judged against the threshold. Only once the window period is known:
     * a period of fewer than AD_SEASON_MIN_WINDOWS windows turns the level
     * off then (resolve_spans), and until then it would judge a slow
     * stream's rows (a fixed threshold detects from the first window). */
    if (d->season) {
        int64_t sts = season_ts(d, ts);

        if (d->window_ms > 0)
            base = ad_season_level(d->season, sts);     /* for the level test */
        if (ad_alerter_active(d->alert) == NULL && d->window_ms > 0) {
            lv = ad_season_level(d->season, sts) * d->cfg.season_margin;
            if (lv > eff)
                eff = lv;
        }
        if (!untrusted)
            ad_season_add(d->season, sts, s);
    }
    d->st.season_level = lv;
    if (d->acc_resume)
        acc_resumed(d, ts);
    /* a recurrence of a change seen often enough is accepted at its onset */
    /* (withheld: its first windows, until it is judged) */
    int onset_held = 0;
    if (s > thr && !hard && !untrusted)
        onset_held = acc_onset(d, ts, s, thr, share, p, L) == 2;
    else if (!hard && !untrusted)
        acc_onset_ended(d, ts, p, L);   /* judged on windows in a row */
    else {
        /* a window that cannot be judged ends the run unjudged: windows
         * withheld that would have raised raise now */
        if (d->acc_onset_run >= (d->cfg.alert.k > 1 ? d->cfg.alert.k : 1))
            onset_force(d);
        d->acc_onset_run = 0;
    }
    /* a change the way of a dormant regime: withheld until judged at its
     * level (REENTRY) */
    if (!onset_held)
        onset_held = reentry(d, ts, s, thr, share, untrusted || hard) == 2;
    /* a window like an accepted regime is judged against its threshold */
    ri = s > thr ? like_regime(d, ts, s, thr, share) : -1;
    ri = regime_tail(d, ts, s, thr, ri, untrusted || hard, onset_held);
    like = ri >= 0;
    /* normal at this phase only: teaches the model, not the threshold */
    /* the rows moved the way a change an alert left behind moved them (a
     * new level met at an hour of the cycle not yet seen with it): normal
     * as a seasonal window is, teaching the model, not the threshold
     * (KEPT CHANGE, shift.h) */
    int kept_rows = ad_shift_holds(d->shift, ts);
    shift_said(d, ts);
    int kept = s > eff && !like && !onset_held && ad_alerter_active(d->alert) == NULL &&
               kept_rows;
    /* held in a row for longer than a daily peak lasts over the threshold
     * (P / AD_SHIFT_HOLD_DIV): no peak of the cycle, a fault that moved
     * the rows the change's way by less than twice as far; the change
     * ends and the window raises */
    if (kept && !ad_shift_hold_run(d->shift, ts, 1)) {
        ad_log(AD_LOG_WARNING, "%s: kept change ended: windows over the threshold held "
               "in a row for %lld s, longer than a daily peak lasts: they raise", d->who,
               (long long)(ad_shift_last_run(d->shift) / 1000));
        shift_said(d, ts);
        kept = 0;
    } else if (!kept && (!(s > thr) || ad_shift_state(d->shift) != 2)) {
        int64_t was = ad_shift_last_run(d->shift);
        ad_shift_hold_run(d->shift, ts, 0);
        if (ad_shift_last_run(d->shift) != was)
            ad_log(AD_LOG_INFO, "%s: kept change: windows over the threshold held in a row "
                   "for %lld s", d->who, (long long)(ad_shift_last_run(d->shift) / 1000));
    }
    if (kept) {
        eff = s;
        d->st.windows_kept++;
        /* met again: held a period on (RENEWED); an end moved an hour is
         * published and saved again, as a change kept is (kept_seq) */
        if (ad_shift_renew(d->shift, ts))
            d->kept_seq++;
    }
    seasonal = s > thr && s <= eff && !like && !onset_held;
    if (seasonal && !kept)
        d->st.windows_seasonal++;
    d->last_kept = kept;
    /* a kept window stays out of the level test's mean, without
     * restarting it as a regime's window does */
    int elevated = level_test(d, ts, s, base, untrusted || kept, like || onset_held);
    ad_alert_obs o = { s, like ? fmax(d->regime_thr[ri], eff) : eff, p, L, share, elevated, 0,
                       0, 0, 0, 0, 0, 0 };

    /* an onset judged not a recurrence after alert.k withheld windows or
     * more: they would have raised, so this window raises (ONSET) */
    if (d->acc_onset_force) {
        o.force = !like;
        o.since_ms = d->force_since;
        o.since_thr = d->force_thr;
        o.since_peak = d->force_peak;
        o.since_peak_ms = d->force_peak_ms;
        d->acc_onset_force = 0;
    }

    if (onset_held && !like && !(o.threshold >= s))
        o.threshold = s;            /* not over it: neither raising nor learned */

    /* the burst test: a window while a feature is in a burst counts as
     * over the threshold; under it by score, the alert sees that feature
     * as all of the window's error (its top feature) */
    if (elevated)
        o.by = AD_BY_LEVEL;
    if (burst > 0 && burst <= d->F && d->bshare != NULL) {
        o.elevated = 1;
        o.by = AD_BY_BURST;
        if (!(s > o.threshold)) {
            for (int f = 0; f < d->F; f++)
                d->bshare[f] = 0;
            d->bshare[burst - 1] = 1;
            o.share = d->bshare;
        }
        d->st.windows_burst++;
    }
    /* the noise test: likewise, its raised features sharing the window's
     * error when it is under the threshold and no burst names one */
    if (noise > 0 && noise <= d->F && d->noise_share != NULL) {
        o.elevated = 1;
        if (o.by != AD_BY_BURST)
            o.by = AD_BY_NOISE;         /* a burst names its feature first */
        if (!(s > o.threshold) && !(burst > 0 && burst <= d->F)) {
            int c = 0;
            for (int f = 0; f < d->F; f++) {
                d->noise_share[f] = f == noise - 1 || (f < 64 && (noise_set >> f & 1));
                c += d->noise_share[f] > 0;
            }
            for (int f = 0; f < d->F; f++)
                d->noise_share[f] /= (float)c;
            o.share = d->noise_share;
        }
    }
    ad_alert al;
    /* over the threshold, under the raise level (RAISE RATIO in alert.h):
     * nothing raised, nothing learned; counted so an operator sees why,
     * and ended once it lasted accept_after windows (BAND RUN) */
    int in_band = d->cfg.alert.on == AD_ALERT_ON_SCORE && !o.elevated && s > o.threshold &&
                  !(s > o.threshold * d->cfg.alert.raise_ratio) &&
                  ad_alerter_active(d->alert) == NULL;
    if (in_band)
        d->st.windows_under_raise++;
    band_run(d, ts, in_band, s > o.threshold || o.elevated, &o, untrusted);
    int r = ad_alerter_step_obs(d->alert, ts, &o, &al);
    /* a band window of a run learned as normal (AD_BAND_LEARN) is taught
     * like one under the threshold */
    int exceeded = ad_alerter_last_exceeded(d->alert) && !d->band_now;
    int A = d->cfg.alert.accept_after;
    int f;

    d->last_regime = ri;
    regime_left(d, ts, ri, s, thr, untrusted || hard);
    if (d->ad)
        ad_adapt_window_seen(d->ad, ts);
    if (like) {
        d->st.windows_regime++;
        regime_extend(d, ri, ts);
        if (!exceeded && !o.elevated && !untrusted && !hard &&
            ad_alerter_active(d->alert) == NULL)
            sd_refit(d, ri, s);
    }
    thr = o.threshold;

    if (exceeded)
        d->st.windows_exceeded++;
    /* the level test raises and holds its own alerts only: an alert the
     * score raised disarms it (it clears as the score falls, not when the
     * mean over the level span does, which trails the fault by that span).
     * After such an alert's clear the mean starts over (the alert's own
     * scores would lift it for a span after it cleared) and the test is
     * armed again: a level that is still over the fence once the span
     * has refilled with scores from after the clear raises again (the
     * fault's score fell under the clear level, the process did not
     * return to normal), and is accepted the usual way if it persists.
     * The test's own alert clears once its mean is under the hysteresis
     * (level_bounds): the mean goes on, armed. An acceptance (accept_close)
     * disarms it until the mean is under the hysteresis. */
    if ((r & AD_ALERT_CLEARED) && d->lvl_off) {  /* the mean starts over: not the alert's */
        d->lvl_off = 0;
        d->lvl_hold = 0;
        d->lvl_n = d->lvl_pos = d->lvl_exact = 0;
        d->lvl_sum = d->lvl_base = 0;
    }
    if ((r & AD_ALERT_RAISED) && s > thr)
        d->lvl_off = 1;
    if (r & (AD_ALERT_CLEARED | AD_ALERT_RAISED))
        det_sd_reset(d);            /* the step-down is of one alert */
    if (r & AD_ALERT_CLEARED) {
        ad_event *e = det_ev_new(d, AD_EV_ALERT_CLEARED, ts);
        if (d->ad)
            ad_adapt_alert_cleared(d->ad, al.id, ts, AD_ADAPT_CLEAR_TRUE);
        e->alert = al;
        e->threshold = thr;
        e->probability = p;
        e->log_likelihood = L;
        /* a recurrence shorter than A / RECUR windows is judged once it
         * ended (ACCEPTANCE) */
        d->acc_cur_span = al.end_ms > al.start_ms ? al.end_ms - al.start_ms : 0;
        if (A > 0 && d->acc_prev == 0 && d->pk_len > 0)
            acc_switch(d);          /* it may continue the parked chain */
        int accepted = A > 0 && d->acc_prev > 0 && acc_ready(d) && !hard &&
                       try_accept(d, ts, NAN, p, L, 0);
        if (A > 0 && !accepted)
            acc_alert_ended(d);
        if (!accepted)              /* an accepted alert is no kept change */
            ad_shift_cleared(d->shift, al.start_ms, al.end_ms);
    }
    if (r & AD_ALERT_RAISED) {
        ad_event *e = det_ev_new(d, AD_EV_ALERT_RAISED, ts);
        d->tpend_n = d->tpend_pos = 0;  /* never taught: what led to it */
        e->alert = al;
        /* raised from withheld windows: the threshold they were over */
        e->threshold = al.start_ms < ts && o.since_thr > 0 ? al.threshold : thr;
        e->probability = p;
        e->log_likelihood = L;
        d->st.alerts++;
        /* a new change, unless it continues the chain (ACCEPTANCE) */
        if (A > 0 && (d->acc_len == 0 || d->acc_quiet > d->cfg.alert.accept_gap)) {
            det_acc_chain_reset(d);
            d->acc_since = al.start_ms;
        }
        /* an alert after a short quiet spell continues the same
         * occurrence (a flapping alert), not a recurrence */
        if (A > 0 && (d->acc_alerts == 0 || d->acc_quiet >= A / AD_ACCEPT_RECUR))
            acc_occ_push(d, al.start_ms);
        d->acc_alerts++;
        if (d->ad) {
            ad_adapt_alert_raised(d->ad, al.id, ts);
            /* the windows from the first one over the threshold on hold
             * what raised it, those under it too */
            _Static_assert(AD_ADAPT_RUN_UP >= AD_ALERT_MAX_N, "a run-up fits the ring");
            ad_adapt_alert_run_up(d->ad, ad_alerter_run_up(d->alert));
        }
    }
    if (A > 0 && share != NULL && ad_alerter_active(d->alert) == NULL && !exceeded &&
        !like && !untrusted && !seasonal && !onset_held) {
        /* the usual error per feature: a running mean, then an EWMA over
         * the last ~1000 windows */
        double *u = d->acc_prof + 2 * d->F;
        if (d->acc_norm_n < 1000)
            d->acc_norm_n++;
        for (f = 0; f < d->F; f++)
            u[f] += (s * share[f] - u[f]) / (double)d->acc_norm_n;
    }
    if (A > 0 && ad_alerter_active(d->alert) == NULL && d->acc_len > 0 &&
        ++d->acc_quiet > d->cfg.alert.accept_gap)
        det_acc_chain_reset(d);                     /* the chain ended */
    if (A > 0 && ad_alerter_active(d->alert) == NULL && d->pk_len > 0 &&
        ++d->pk_quiet > d->cfg.alert.accept_gap)
        d->pk_len = 0;                              /* so did the parked one */
    if (A > 0 && ad_alerter_active(d->alert) != NULL) {
        d->acc_cur_span = ts - ad_alerter_active(d->alert)->start_ms;
        if (hard) {
            det_acc_chain_reset(d);                 /* stability needs trusted windows */
        } else {
            if (acc_ring_push(d, s) && d->acc_prev > 0)
                d->acc_prev--;              /* an earlier alert's score left */
            d->acc_cur++;
            if (share != NULL)      /* what this alert changes */
                for (f = 0; f < d->F; f++)
                    d->acc_prof[d->F + f] += s * share[f] - d->acc_prof[2 * d->F + f];
            /* on a schedule, once its profile shows, the alert goes to the
             * chain it is like (acc_switch) */
            if (d->cfg.alert.accept_period_ms > 0 && share != NULL &&
                d->acc_cur >= AD_ACCEPT_SWITCH_MIN &&
                ((d->acc_prev > 0 && acc_similarity(d) < AD_ACCEPT_SIMILAR) ||
                 (d->acc_prev == 0 && d->pk_len > 0 &&
                  cosine(pk_prof(d), d->acc_prof + d->F, d->F) >= AD_ACCEPT_SIMILAR)))
                acc_switch(d);
            if (d->sd != NULL)
                sd_push(d, s);
        }
        if (acc_ready(d) && try_accept(d, ts, s, p, L, 0))
            return;
        if (d->sd != NULL && !hard && !sd_clearing(d, thr, s, o.elevated) &&
            sd_accept(d, ts, p, L))
            return;
    }
    /* Learn only from windows judged normal: below the threshold and
     * outside any alert, and trusted. */
    /* nor while the rows are moved by a kept change: its shoulders under
     * the threshold are the change, not the normal the threshold judges */
    if (!exceeded && !like && !untrusted && !seasonal && !onset_held && !kept_rows &&
        ad_alerter_active(d->alert) == NULL && !(r & AD_ALERT_CLEARED))
        thr_learn(d, ts, s);
}

int ad_detector_feed_score(ad_detector *d, const ad_window_job *job,
                           double score, const float *share)
{
    return ad_detector_feed_score2(d, job, score, share, NAN);
}

int ad_detector_feed_score2(ad_detector *d, const ad_window_job *job,
                            double score, const float *share, double shadow_score)
{
    return ad_detector_feed_score3(d, job, score, share, shadow_score, NULL);
}

/* score.normalize: this window's per-feature errors into cur_e
 * (calibrating), or its normalised score and shares once the scales are
 * known; the shadow candidate's score with the same scales. 0, or -1 when
 * the score cannot be normalised (no shares). */
static int normalize_score(ad_detector *d, double *score, const float **share,
                           double *shadow_score, const float *shadow_share)
{
    int f, rms = d->cfg.normalize == AD_NORM_FEATURE_RMS;

    if (*share == NULL)
        return -1;
    if (!d->has_nscale) {
        if (d->phase != AD_PHASE_CALIBRATING)
            return -1;              /* no scales outside calibration: not a score */
        for (f = 0; f < d->F; f++)
            d->cur_e[f] = (float)(*score * (double)(*share)[f] * d->F);
        return 0;
    }
    *score = ad_recon_normalize(*score, *share, d->nscale, d->F, rms, d->nshare);
    *share = d->nshare;
    if (isfinite(*shadow_score))
        *shadow_score = shadow_share != NULL ?
                        ad_recon_normalize(*shadow_score, shadow_share, d->nscale, d->F, rms,
                                           NULL) :
                        NAN;
    return 0;
}

int ad_detector_feed_score3(ad_detector *d, const ad_window_job *job,
                            double score, const float *share, double shadow_score,
                            const float *shadow_share)
{
    double s, p, L;
    int64_t ts = job->ts_ms;
    int dq = 0, hard = 0, noteach;

    if (job->det == d)
        det_job_back(d, job->ep);   /* a retired model it read may go now */
    if (job->det != d || job->gen != d->gen || job->seq <= d->seq_fed) {
        d->st.scores_stale++;
        return 1;
    }
    d->seq_fed = job->seq;
    d->last_regime = -1;
    d->last_reent = -1;
    if (!isfinite(score) ||
        (d->cfg.normalize != AD_NORM_NONE &&
         (normalize_score(d, &score, &share, &shadow_score, shadow_share) != 0 ||
          !isfinite(score)))) {
        d->st.scores_nonfinite++;
        return 1;
    }
    d->st.windows_scored++;
    d->st.last_score = score;
    window_period(d, ts);
    if (job->untrusted)
        d->st.windows_untrusted++;
    /* asked now, not when the window was formed: a stuck run is flagged
     * back to its first sample once it is recognised */
    if (d->dq && ad_dq_flagged(d->dq, job->start_ms, ts)) {
        dq = 1;
        hard = det_hard_flagged(d, job->start_ms, ts);
        d->st.windows_dq++;
    }
    noteach = job->untrusted || dq;
    if (d->cfg.smooth_alpha < 1 && d->has_smooth)
        s = d->cfg.smooth_alpha * score + (1 - d->cfg.smooth_alpha) * d->smooth;
    else
        s = score;
    d->smooth = s;
    d->has_smooth = 1;
    d->st.last_smoothed = s;
    /* A learned-range flag alone (a level beyond what calibration saw) does
     * not stop the probability history from learning; its average joins
     * once the window is judged ordinary (det_lik_settle: not while an
     * alert is open, unless that alert is accepted; detector_adapt.c
     * PROBABILITY). */
    p = det_lik_update(d, score, !(job->untrusted || hard), &L);
    d->st.last_probability = p;
    d->st.last_log_likelihood = L;

    if (d->phase == AD_PHASE_CALIBRATING) {
        calibrate(d, job->start_ms, ts, s, noteach);
        return 0;
    }
    if (d->phase != AD_PHASE_DETECTING)
        return 0;
    detect(d, ts, s, p, L, share, noteach, job->untrusted || hard, job->burst, job->noise,
           job->noise_set);
    if (d->ad) {
        const float *w = pw_find(d, job->seq);
        if (w != NULL && job->gen == d->gen) {
            ad_adapt_obs o;
            o.ts_ms = ts;
            o.live_score = score;
            /* scored by the candidate in shadow now, not by one given up
             * since (a retired model's address is never a new one's while
             * a window that carries it is out) */
            o.cand_score = job->shadow != NULL && job->shadow == ad_adapt_candidate(d->ad)
                           ? shadow_score : NAN;
            /* a kept window is over the threshold: never learned */
            o.exceeded = (ad_alerter_last_exceeded(d->alert) && !d->band_now) || d->last_kept;
            det_acc_shadow(d, job->shadow, shadow_score, !noteach,
                           !o.exceeded && ad_alerter_active(d->alert) == NULL);
            o.dq = noteach;
            o.regime = d->last_regime >= 0;
            det_lik_shadow(d, score, o.cand_score, !(job->untrusted || hard),
                           !o.exceeded && !o.regime && !noteach &&
                           ad_alerter_active(d->alert) == NULL);
            ad_adapt_offer(d->ad, w, d->model, &o);
            pw_used(d, job->seq);
        }
        det_pump_adapt(d);
    }
    det_lik_settle(d);
    return 0;
}

int ad_detector_finish_calibration(ad_detector *d, char *err, size_t errlen)
{
    if (d->phase != AD_PHASE_CALIBRATING)
        return ad_errf(err, errlen, AD_EINVAL, "stream %s: not calibrating (phase %s)",
                       d->key, ad_phase_name(d->phase));
    while (d->cq_len > 0)
        calq_pop(d);                /* held windows count now */
    return fit_now(d, d->last_ts, err, errlen);
}

void ad_detector_freeze(ad_detector *d, int frozen)
{
    ad_threshold_freeze(d->thr, frozen);
}

/* ---- accessors ------------------------------------------------------------- */

const ad_model *ad_detector_model(const ad_detector *d) { return d->model; }
ad_metric ad_detector_metric(const ad_detector *d) { return d->cfg.metric; }
ad_phase ad_detector_phase(const ad_detector *d) { return d->phase; }
const char *ad_detector_key(const ad_detector *d) { return d->key; }
int64_t ad_detector_last_ts(const ad_detector *d) { return d->last_ts; }
uint64_t ad_detector_dropped(const ad_detector *d)
{
    ad_stream_stats ss;

    ad_stream_get_stats(d->stream, &ss);
    return ss.dup + ss.ooo;
}
void ad_detector_stream_stats(const ad_detector *d, ad_stream_stats *st)
{
    ad_stream_get_stats(d->stream, st);
}
int ad_detector_season_on(const ad_detector *d)
{
    return d->season != NULL;
}

int ad_detector_season_phases(const ad_detector *d)
{
    return d->season ? ad_season_phases(d->season, season_ts(d, d->last_ts)) : 0;
}
int ad_detector_T(const ad_detector *d) { return d->T; }
int ad_detector_F(const ad_detector *d) { return d->F; }
void ad_detector_set_user(ad_detector *d, void *user) { d->user = user; }
void *ad_detector_user(const ad_detector *d) { return d->user; }

const char *const *ad_detector_features(const ad_detector *d)
{
    return (const char *const *)d->features;
}

void ad_detector_get_stats(const ad_detector *d, ad_detector_stats *st)
{
    const ad_alert *a = ad_alerter_active(d->alert);
    uint64_t newest = 0;

    *st = d->st;
    st->phase = d->phase;
    ad_stream_get_stats(d->stream, &st->stream);
    /* rows held as far ahead and found wrong count as refused for a
     * future time (A ROW AHEAD) */
    st->stream.future += d->rows_ahead;
    st->stream.future_values += d->values_ahead;
    st->rows_ahead = d->rows_ahead;
    st->held_lost = d->held_lost;
    st->calib_held = ad_detector_calib_held(d);
    st->calib_held_ms = d->calib_held_ms;
    st->calib_out = d->calib_model_out;
    st->calib_flagged = d->calib_held ? d->calib_flagged : 0;
    st->calib_out_need = det_calib_need(d);
    st->calib_guard = d->model_guard > 0 ? d->model_guard : NAN;
    if (d->phase == AD_PHASE_CALIBRATING) {
        st->calib_taken = ad_threshold_count(d->thr);
        st->calib_queued = (uint64_t)d->cq_len;
        st->calib_start_ms = d->has_calib_start ? d->calib_start : 0;
        st->calib_dq_out = d->calib_dq_out;
        st->calib_dq_run = d->calib_dq_run;
        st->calib_dq_waiting = d->calib_dq_waiting;
        st->calib_dq_since = d->calib_dq_waiting ? d->calib_dq_since : 0;
        if (d->calib_dq_waiting)
            calib_dq_flags_text(d, st->calib_dq_flags, sizeof st->calib_dq_flags);
    }
    st->threshold = ad_threshold_value(d->thr);
    {
        ad_thr_info in;
        ad_threshold_info(d->thr, &in);
        st->threshold_floored = ad_threshold_fitted(d->thr) && in.floored;
        st->threshold_trimmed = in.trimmed;
        st->threshold_held = ad_threshold_held(d->thr, &st->threshold_held_windows);
    }
    st->exceeded = d->phase == AD_PHASE_DETECTING && d->st.windows_scored > 0 &&
        ad_alerter_last_exceeded(d->alert);
    st->alert_active = a != NULL;
    snprintf(st->alert_id, sizeof(st->alert_id), "%s", a ? a->id : "");
    st->windows_absurd = ad_window_absurd(d->win);
    st->dq_active = d->dq ? ad_dq_active(d->dq) : 0;
    st->adapt_ref_ratio = NAN;
    st->adapt_ref_feature = -1;
    st->adapt_drifted = 0;
    if (d->ad) {
        ad_adapt_stats as;
        ad_adapt_get_stats(d->ad, &as);
        st->adapt_shadow = as.shadow;
        st->adapt_normal = as.normal_len;
        st->adapt_ref_ratio = as.ref_ratio;
        st->adapt_ref_feature = as.ref_feature;
        st->adapt_drifted = as.drift;
        st->adapt_excluded_early = as.excluded_early;
        if (ad_adapt_resolved(d->ad) && (d->cfg.adapt.enabled || d->cfg.adapt.reload_shadow)) {
            const ad_adapt_cfg *ac = ad_adapt_get_cfg(d->ad);
            st->adapt_normal_windows = ac->normal_windows;
            st->adapt_min_windows = ac->min_windows;
            st->adapt_margin = ac->margin;
            st->adapt_margin_clear = ad_adapt_margin_after(ac);
            st->adapt_shadow_windows = ac->shadow_windows;
        }
    }
    st->model_gen = d->gen;
    st->models_retired = (uint64_t)d->n_retired;
    snprintf(st->model_id, sizeof(st->model_id), "%s", d->model ? d->model->id : "");
    snprintf(st->reload_waiting, sizeof(st->reload_waiting), "%s",
             d->reload_next ? d->reload_next->id : "");
    st->regime_threshold = NAN;
    st->regimes = 0;
    for (int i = 0; i < AD_REGIMES; i++) {
        if (!(d->regime_thr[i] > 0))
            continue;
        st->regimes++;
        if (!isfinite(st->regime_threshold) || d->regime_seq[i] > newest) {
            st->regime_threshold = d->regime_thr[i];
            newest = d->regime_seq[i];
        }
    }
    st->accept_after = d->cfg.alert.accept_after;
    st->accept_gap = d->cfg.alert.accept_gap;
    st->window_s = d->window_ms > 0 ? d->window_ms / 1000.0 : NAN;
}

void ad_detector_summarize(const ad_detector *d, ad_detector_summary *b)
{
    ad_stream_stats ss;

    ad_stream_get_stats(d->stream, &ss);
    b->phase = d->phase;
    b->dropped = ad_stream_values_refused(&ss) + d->values_ahead;   /* A ROW AHEAD */
    b->overflow = ss.overflow;
    b->alert_active = ad_alerter_active(d->alert) != NULL;
}
