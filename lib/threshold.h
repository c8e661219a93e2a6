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
 * quantile is over those) for quantile and pot, in buffers grown on demand
 * (a stream calibrated on 100 windows holds ~100 doubles); sigma keeps only
 * Welford sums.
 *
 * ADAPTATION (adapt = 1, not frozen): quantile: the normal score joins the
 * sample window (oldest dropped beyond max_samples), the quantile is
 * recomputed; sigma: Welford update; pot: as above; fixed/model: no-op.
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
} ad_thr_cfg;

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

int ad_threshold_fitted(const ad_threshold *t);
double ad_threshold_value(const ad_threshold *t);   /* NAN until fitted */

/* After fit: learn from a score judged normal. No-op when adapt is off,
 * frozen or not fitted. Non-finite scores are ignored. */
void ad_threshold_adapt(ad_threshold *t, double score);
void ad_threshold_freeze(ad_threshold *t, int frozen);
int ad_threshold_frozen(const ad_threshold *t);

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
