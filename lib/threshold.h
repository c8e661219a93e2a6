/*
 * threshold.h - the alert threshold of one stream: calibration from scores,
 * the five methods, optional adaptation, and save/restore.
 *
 * Life cycle: ad_threshold_add() collects calibration scores (smoothed
 * scores if the detector smooths); ad_threshold_fit() sets the threshold
 * from them by the configured method; afterwards ad_threshold_adapt() may
 * keep learning from scores the caller judged normal (never from anomalous
 * ones) unless adaptation is off or frozen.
 *
 * METHODS (ad_thr_cfg.method)
 *   quantile  thr = margin * Q_q(calibration scores); Q is the linearly
 *             interpolated empirical quantile (numpy's default). SKAB's
 *             published LSTM-AE: q = 0.99, margin = 1.5.
 *   sigma     thr = mean + k * std of the scores (Welford, population std).
 *   pot       peaks-over-threshold (SPOT, Siffer et al., KDD 2017): initial
 *             threshold t = Q_{pot_init}(scores), peaks y_i = x_i - t for the
 *             N_t scores above t, a generalized Pareto distribution fitted to
 *             the peaks by Grimshaw's method (maximum likelihood; the
 *             exponential gamma = 0 candidate is always compared), and
 *                 z_q = t + sigma/gamma * ((q * n / N_t)^-gamma - 1)
 *             for the target risk q = pot_risk (gamma ~ 0:
 *                 z_q = t - sigma * ln(q * n / N_t)).
 *             Adaptation (SPOT's update): a normal score above t becomes a
 *             new peak and the GPD is refitted; below t it only counts in n.
 *   fixed     thr = fixed.
 *   model     thr = margin * the value `model_key` (e.g. "q99") of the
 *             model's training metadata {"error": {"metric": .., "q99": ..}}.
 *             The error metric there must match the detector's metric
 *             (checked by the detector, which passes the JSON to fit).
 * Calibration scores are kept (at most max_samples, the most recent; the
 * quantile is over those) for quantile, sigma and pot, in buffers grown on
 * demand (a stream calibrated on 100 windows holds ~100 doubles).
 *
 * ESTIMATOR (ad_thr_cfg.estimator; score-based methods quantile, sigma, pot)
 *   A few outlier windows must not set the threshold: one wild reading sits
 *   in T consecutive windows (30 % of a 100-window calibration with T = 30),
 *   which moves any upper quantile. Over the kept scores x: med = median,
 *   s = 1.4826 * MAD (median absolute deviation from med; the factor makes
 *   s the standard deviation for Gaussian data; when MAD = 0, the
 *   population std instead).
 *   quantile  the method on every score (the plain estimate, as before).
 *   trimmed   scores above the fence med + fence * s are dropped (counted in
 *             trimmed), then the method runs on the rest: a trimmed
 *             quantile, trimmed mean + k std, or POT on the rest. The median
 *             and MAD have a 50 % breakdown point, so up to half the windows
 *             may be contaminated before the fence moves.
 *             With recur = E > 0 the scores over the fence form episodes
 *             (joined across fewer than recur_gap scores under it;
 *             recur_gap = the windows one sample sits in). An episode at least
 *             recur_gap / 2 long whose peak has E - 1 other such episodes
 *             peaking within a factor 2 of it recurs: a part of normal
 *             behaviour (a daily step, a load change), kept. A single bad
 *             sample (one episode), short blips and a one-off excursion
 *             stay trimmed.
 *   mad       thr = med + k * s (k as for sigma); methods quantile and sigma.
 *   med and s are kept after the fit (ad_threshold_info): the detector
 *   compares a new regime's spread with them.
 *
 * FLOOR (ad_thr_cfg.floor = r >= 0, score-based methods). A degenerate
 *   score distribution (a constant stream the model reconstructs exactly:
 *   every score 0) has no positive quantile; instead of refusing the fit
 *   (calibrating forever), the threshold is at least r * E, where E is the
 *   model's training error from its metadata ("training": {"error": {"q99"}}
 *   at most 2 x "q90", ad_thr_error_ref; else "mean"; recorded in mse for a detector scoring mae or peak: its
 *   square root, and the other way round: squared, ad_thr_cfg.metric), or 1
 *   when there is none: 1 is the unit of the model's
 *   scaled data (one standard deviation for a standard scaler, the
 *   calibration range for min-max). ad_threshold_info says whether the floor
 *   set the value. POT with fewer than 5 peaks over its initial threshold
 *   because the scores are degenerate (s = 0) uses max(max score, floor).
 *   r = 0 disables the floor (a zero result is refused as before).
 *
 * ADAPTATION (adapt = 1, not frozen): quantile: the normal score joins the
 * sample window (oldest dropped beyond max_samples), the quantile is
 * recomputed (with the estimator); sigma: Welford update (trimmed/mad:
 * re-estimated over the kept scores like quantile); pot: as above;
 * fixed/model: no-op. The floor holds throughout.
 *
 * REBASE (ad_threshold_rebase): a regime accepted as the new normal: the
 * kept scores are replaced by the new regime's and the method refits with
 * the estimator; when it cannot (too few scores or peaks, or methods fixed
 * and model) the threshold moves by the shift of the median:
 *   thr' = thr + median(new) - median(calibration).
 * ad_threshold_rebase_value() computes that value without changing the
 * threshold (the detector gives an accepted regime its own threshold).
 *
 * Save/restore: ad_threshold_save() returns a cJSON object with the method,
 * value, counts, Welford sums, POT fit and (quantile/pot) the kept samples;
 * ad_threshold_restore() validates it against the current settings.
 *
 * Thread safety: one threshold is used by one thread at a time.
 */
#ifndef AD_THRESHOLD_H
#define AD_THRESHOLD_H

#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

typedef enum {
    AD_THR_QUANTILE = 0,
    AD_THR_SIGMA,
    AD_THR_POT,
    AD_THR_FIXED,
    AD_THR_MODEL
} ad_thr_method;

/* Plain settings, shared by all streams of a detector. */
typedef enum {
    AD_EST_QUANTILE = 0,      /* the method on every score */
    AD_EST_TRIMMED,           /* scores over median + fence * MAD-sigma dropped */
    AD_EST_MAD                /* median + k * MAD-sigma */
} ad_thr_estimator;

typedef struct ad_thr_cfg {
    ad_thr_method method;     /* default quantile */
    double q;                 /* quantile level in (0,1), default 0.99 */
    double margin;            /* quantile/model multiplier > 0, default 1.5 */
    double k;                 /* sigma: mean + k*std, default 3 */
    double pot_risk;          /* pot: target risk in (0,1), default 1e-3 */
    double pot_init;          /* pot: initial quantile level, default 0.98 */
    double fixed;             /* fixed: the threshold, > 0 */
    char model_key[16];       /* model: key under "error", default "q99" */
    int adapt;                /* learn from normal scores after calibration */
    int max_samples;          /* kept scores, default 10000 */
    int min_samples;          /* fit refuses fewer, default 10 (pot: peaks >= 5) */
    ad_thr_estimator estimator; /* default quantile (plain) */
    double fence;             /* trimmed: fence in MAD-sigmas, > 0, default 6 */
    double floor;             /* floor ratio r >= 0 (see FLOOR), default 0.01 */
    int recur;                /* trimmed: keep episodes seen this often, 0 off */
    int recur_gap;            /* trimmed: scores one sample reaches (the window
                               * length / hop, set by the detector), default 1 */
    int metric;               /* the scores' metric (engine.h ad_metric, set by
                               * the detector; -1 unknown, the default): the
                               * floor's E converted from the model's */
} ad_thr_cfg;

/* Robust figures of the last fit or rebase. */
typedef struct ad_thr_info {
    double median;            /* of the kept scores (NAN: none) */
    double spread;            /* 1.4826 * MAD, or std when MAD = 0 (NAN: none) */
    double floor;             /* floor value r * E (0: none) */
    int floored;              /* the floor set the value */
    uint64_t trimmed;         /* scores dropped by the trimmed estimator */
} ad_thr_info;

/* Running mean and variance (Welford 1962). */
typedef struct ad_welford {
    uint64_t n;
    double mean;
    double m2;
} ad_welford;

typedef struct ad_threshold ad_threshold;

void ad_thr_cfg_default(ad_thr_cfg *c);
int ad_thr_cfg_check(const ad_thr_cfg *c, char *err, size_t errlen);
const char *ad_thr_method_name(ad_thr_method m);
int ad_thr_method_from_name(const char *s);       /* -1 when unknown */
const char *ad_thr_estimator_name(ad_thr_estimator e);
int ad_thr_estimator_from_name(const char *s);    /* -1 when unknown */

/* New, empty (not fitted) threshold; settings copied. */
int ad_threshold_new(ad_threshold **out, const ad_thr_cfg *cfg,
                     char *err, size_t errlen);
void ad_threshold_free(ad_threshold *t);          /* NULL-safe */

/* Add one calibration score. AD_ENONFINITE for NaN/Inf (not added). */
int ad_threshold_add(ad_threshold *t, double score);

/* Calibration scores added so far. */
uint64_t ad_threshold_count(const ad_threshold *t);

/*
 * End calibration: compute the threshold from the scores. training_json is
 * the model's "training" metadata (method model only; may be NULL
 * otherwise). Returns 0, AD_ERANGE when there are too few scores/peaks,
 * AD_EFORMAT when the metadata lacks the key, AD_ENONFINITE when the result
 * is not a finite positive number; message in err. On failure the threshold
 * stays unfitted and keeps its scores (more can be added, fit retried).
 */
int ad_threshold_fit(ad_threshold *t, const char *training_json,
                     char *err, size_t errlen);

/*
 * Fitted without calibration scores: the threshold is v (at least the
 * floor), the scores so far forgotten, median and spread (ad_thr_info;
 * NAN: unknown) those of normal scores known otherwise; adaptation then
 * learns from the normal scores that follow (from min_samples of them on).
 * For a calibration that saw no normal data (detector.h,
 * calibration.model_guard). Methods quantile and sigma (else AD_EINVAL);
 * AD_ENONFINITE when v is not a finite positive number.
 */
int ad_threshold_fit_value(ad_threshold *t, double v, double median, double spread,
                           const char *training_json);

/* The figure `key` of the model's training error ("training": {"error":
 * {"metric", key}}) when it was recorded in this score metric (engine.h
 * ad_metric), unconverted; 0 otherwise (no metadata, another metric: a
 * mae figure says nothing exact about peak scores). */
double ad_thr_model_stat(const char *training_json, const char *key, int metric);

/* The training error that stands for normal scores (the floor's E, the
 * calibration guard's reference): the windows' q99, at most
 * AD_THR_ERROR_BODY x their q90 (q90 <= 0: q99 as it is). A per-window
 * error is positive, and an exponential distribution from 0 (a tail far
 * heavier than a window's mean error over many values has) has q99 =
 * ln 100 / ln 10 = 2 x q90 exactly: a clean training keeps its q99 (the
 * bundled pump model q99 = 1.10 x q90, the scenario suite's bootstraps
 * 1.2 to 1.8 x). A q99 past it is the mark of a few training windows of
 * another state (a bootstrap whose rows end inside a new regime): up to
 * 10 % of the windows far above the rest lift q99 but not q90, and the
 * lifted figure would let that state calibrate the threshold. */
#define AD_THR_ERROR_BODY 2.0
/* squared: the figures are squared errors (mse): the bound is squared too */
double ad_thr_error_ref(double q90, double q99, int squared);

int ad_threshold_fitted(const ad_threshold *t);
double ad_threshold_value(const ad_threshold *t);   /* NAN until fitted */

/* After fit: learn from a score judged normal. No-op when adapt is off,
 * frozen or not fitted. Non-finite scores are ignored. */
void ad_threshold_adapt(ad_threshold *t, double score);
void ad_threshold_freeze(ad_threshold *t, int frozen);
int ad_threshold_frozen(const ad_threshold *t);

/* Figures of the last fit/rebase (see ad_thr_info). */
void ad_threshold_info(const ad_threshold *t, ad_thr_info *info);

/*
 * Accept a new regime (see REBASE): scores[0..n-1] (finite; copied) are the
 * new regime's recent scores, training_json as for fit. Requires a fitted
 * threshold (AD_EINVAL). Returns 0 (the value changed, stays fitted; *how
 * (may be NULL) = 0 refit, 1 median shift) or a negative code (nothing
 * changed). Not affected by freeze (the caller decides).
 */
int ad_threshold_rebase(ad_threshold *t, const double *scores, size_t n,
                        const char *training_json, int *how,
                        char *err, size_t errlen);
/* What ad_threshold_rebase would set, without changing t (*value). */
int ad_threshold_rebase_value(const ad_threshold *t, const double *scores, size_t n,
                              const char *training_json, double *value, int *how,
                              char *err, size_t errlen);

/*
 * RAISE (operator feedback, e.g. a false alarm): keep the threshold at v or
 * above from now on. v is a minimum that every later fit, adaptation and
 * rebase respects (like the floor), saved and restored with the state, and
 * forgotten by ad_threshold_reset (a recalibration starts over). Raising to
 * a lower v than an earlier raise keeps the earlier one. Requires a fitted
 * threshold and a finite v > 0 (else AD_EINVAL, nothing changed).
 */
int ad_threshold_raise(ad_threshold *t, double v);
/* The operator minimum moved to another model's scale (x f > 0; a
 * promotion: the candidate/live error ratio). The value follows at the
 * next fit, adaptation or rebase. */
void ad_threshold_scale_raised(ad_threshold *t, double f);
/* The operator minimum in force (0: none). */
double ad_threshold_raised(const ad_threshold *t);

/*
 * HOLD (a promoted model, detector_adapt.c): keep the threshold at v or
 * above for the next n scores adapted, then let adaptation decide again.
 * A candidate's threshold is fitted on its shadow span, which may be a part
 * of the day; the hold keeps the live threshold x the candidate/live error
 * ratio until the new model has been judged on n windows of its own. n = 0
 * ends a hold. It counts the scores adapted, not the windows judged: a
 * frozen threshold (or one with adapt off) learns none, and the count
 * waits, so that the estimate has learned n scores of the new model when
 * the hold ends (frozen, the value does not move anyway). Saved and
 * restored with the state; a later hold replaces it, a rebase or reset
 * ends it. AD_EINVAL when not fitted, v not finite > 0,
 * or the method is fixed or model (no scores to hold against).
 */
int ad_threshold_hold(ad_threshold *t, double v, uint64_t n);
/* The hold in force (0: none), its adapted scores left in *left (may be
 * NULL). */
double ad_threshold_held(const ad_threshold *t, uint64_t *left);
/* The value without the hold in force (the estimate under it; the value
 * when none). A promotion's hold is derived from it, so holds do not
 * compound from one promotion to the next. */
double ad_threshold_unheld(const ad_threshold *t);

/* Forget everything (back to calibration). */
void ad_threshold_reset(ad_threshold *t);

/* POT fit results (valid for method pot after fit): initial threshold t,
 * GPD gamma and sigma, peaks N_t, observations n. */
void ad_threshold_pot_info(const ad_threshold *t, double *init, double *gamma,
                           double *sigma, uint64_t *n_peaks, uint64_t *n);

/* State as a new cJSON object (caller frees with cJSON_Delete); NULL on OOM. */
cJSON *ad_threshold_save(const ad_threshold *t);

/* Restore from ad_threshold_save() output; the method must match the
 * settings (AD_EINVAL otherwise), malformed input AD_EFORMAT. */
int ad_threshold_restore(ad_threshold *t, const cJSON *j, char *err, size_t errlen);

/* --- building blocks, exported for tests --- */

void ad_welford_add(ad_welford *w, double x);
double ad_welford_std(const ad_welford *w);     /* population std; 0 if n<2 */

/* Linearly interpolated q-quantile of v[0..n-1] (reorders v). NAN if n==0. */
double ad_quantile(double *v, size_t n, double q);
/* The same q-quantile of n values of which only the highest m are known,
 * top[0..m-1] in descending order; when it lies below them, their lowest
 * (top[m-1]: an upper bound). NAN if n or m is 0. */
double ad_quantile_top(const double *top, size_t m, uint64_t n, double q);

/*
 * Fit a generalized Pareto distribution to peaks y[0..n-1] (> 0) by
 * Grimshaw's method (maximum likelihood), returning shape *gamma and scale
 * *sigma > 0. Returns 0, AD_ERANGE when n < 2 or the peaks are degenerate.
 */
int ad_gpd_fit(const double *y, size_t n, double *gamma, double *sigma);

/* z_q = t + sigma/gamma*((risk*n/n_peaks)^-gamma - 1), gamma ~ 0 handled. */
double ad_pot_quantile(double t, double gamma, double sigma, double risk,
                       uint64_t n, uint64_t n_peaks);

#endif /* AD_THRESHOLD_H */
