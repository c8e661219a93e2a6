/*
 * likelihood.h - the anomaly probability of a stream's scores: how unusual
 * the recent scores are against the stream's own longer score history.
 *
 * MATH (the anomaly likelihood of streaming detectors: Ahmad, Lavin, Purdy,
 * Agha, "Unsupervised real-time anomaly detection for streaming data",
 * Neurocomputing 2017, as in Numenta's HTM). For each score x_t:
 *
 *   a_t   = mean of the last w scores x_{t-w+1..t} (fewer at the start)
 *   H_t   = the previous min(W, t-1) averages a_{t-W..t-1}
 *   mu_t  = mean(H_t), sd_t = population std(H_t)
 *   s_t   = max(sd_t, rel_floor * |mu_t|, abs_floor)
 *   z_t   = (a_t - mu_t) / s_t
 *   p_t   = 1 - Q(z_t) = erfc(-z_t / sqrt 2) / 2        (the probability)
 *   L_t   = ln(1 - p_t) = ln Q(z_t)                     (log-likelihood)
 *
 * and then a_t joins the history (the oldest average beyond W leaves). Q is
 * the Gaussian upper tail. While H_t holds fewer than min_history averages
 * (and fewer than W), p and L are NAN: nothing is known yet, and a caller
 * reports the probability as unknown (a 0.5 would read as a measured
 * "ordinary"). L is computed directly
 * from erfc (no cancellation in 1 - p) and, beyond z = 35 where erfc
 * underflows, from the asymptotic series of the Mills ratio, so it keeps
 * ranking windows whose p rounds to 1.0 in double precision.
 *
 * WHY THIS AND NOT THE POT TAIL. The probability must adapt: after a
 * persistent level shift, the averages of the new level fill H, mu follows
 * and p returns to ordinary values while a frozen threshold stays exceeded.
 * A tail fitted once (the pot method) measures every later score against
 * the calibration regime forever; refitting a GPD per score is O(peaks).
 * The Gaussian on short averages is O(1) per score, needs no fit that can
 * fail, and averaging w scores makes the Gaussian a fair model of the
 * average even when raw scores are skewed (central limit), which is the
 * same reasoning the reference uses. The floors keep a constant history
 * (sd = 0, e.g. a stream the model reconstructs exactly) from turning any
 * rounding noise into p = 1: the caller sets abs_floor in score units (the
 * detector uses its calibration floor, see threshold.h).
 *
 * COST. O(w) per score (w is small: default 10) plus amortised O(1) for the
 * history: its mean and sum of squared deviations are updated as one value
 * enters and one leaves (Welford's sliding update), and recomputed exactly
 * by two passes every W insertions so rounding cannot accumulate. Memory:
 * W + w doubles, grown on demand up to that.
 *
 * HELD AVERAGES. A caller that learns only later whether a window was
 * ordinary (a detector: the windows of an open alert, and the run-up that
 * raised it) updates with AD_LIK_HOLD: the score joins the short average
 * (so a_t keeps following the scores) but a_t is held aside instead of
 * joining H. ad_likelihood_commit(l, keep) then lets all held averages but
 * the newest `keep` join H in order (as if learned late: H is then what it
 * would have been with AD_LIK_LEARN, minus the probabilities computed
 * meanwhile against the shorter H); ad_likelihood_drop forgets them (a
 * fault's averages never become the baseline its own later averages are
 * measured against). At most W are held (the oldest goes: once W later
 * averages joined H it would have left anyway).
 *
 * SCALE. ad_likelihood_scale(l, r) multiplies every kept score, average
 * and held average by r > 0 (mean by r, squared deviations by r^2): the
 * history another model would have produced on the same windows if its
 * scores were r times these. z, and so p, of a score r x as high is then
 * unchanged.
 *
 * Thread safety: one object is used by one thread at a time.
 */
#ifndef AD_LIKELIHOOD_H
#define AD_LIKELIHOOD_H

#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

typedef struct ad_lik_cfg {
    int history;          /* W: averages in the long-term history, 2..1e6,
                           * default 500 */
    int average;          /* w: scores per short average, 1..1000, default 10 */
    int min_history;      /* averages needed for a probability, >= 1
                           * (at most W are needed), default 50 */
    double rel_floor;     /* sd floor relative to |mu|, >= 0, default 0.01 */
} ad_lik_cfg;

typedef struct ad_likelihood ad_likelihood;

void ad_lik_cfg_default(ad_lik_cfg *c);
/* Message names the config key ("alert.probability_history: ..."). */
int ad_lik_cfg_check(const ad_lik_cfg *c, char *err, size_t errlen);

int ad_likelihood_new(ad_likelihood **out, const ad_lik_cfg *cfg,
                      char *err, size_t errlen);
void ad_likelihood_free(ad_likelihood *l);          /* NULL-safe */

/* Absolute sd floor in score units (>= 0; default 0). */
void ad_likelihood_set_floor(ad_likelihood *l, double abs_floor);

/*
 * One score: returns p_t in [0,1] and stores L_t in *log_lik (may be NULL).
 * learn = 0 computes p_t without letting a_t (or x_t) into the history or
 * the short average (for windows the caller does not trust, e.g. containing
 * rejected samples). Non-finite x: returns NAN, nothing changes.
 */
double ad_likelihood_update(ad_likelihood *l, double x, int learn, double *log_lik);

/* What an update does with x: nothing (AD_LIK_NONE, as learn = 0), joins
 * the short average and a_t the history (AD_LIK_LEARN, as learn = 1), or
 * joins the short average with a_t held aside (AD_LIK_HOLD, HELD
 * AVERAGES). */
typedef enum { AD_LIK_NONE = 0, AD_LIK_LEARN = 1, AD_LIK_HOLD = 2 } ad_lik_how;
double ad_likelihood_update2(ad_likelihood *l, double x, ad_lik_how how, double *log_lik);

/* Held averages (HELD AVERAGES): their count; all but the newest keep
 * join the history; all are forgotten. */
size_t ad_likelihood_held(const ad_likelihood *l);
void ad_likelihood_commit(ad_likelihood *l, size_t keep);
void ad_likelihood_drop(ad_likelihood *l);

/* Multiply the kept scores and averages by r > 0 (SCALE); else nothing. */
void ad_likelihood_scale(ad_likelihood *l, double r);

/* 1 when the history is long enough for a probability (else update gives
 * NAN). */
int ad_likelihood_known(const ad_likelihood *l);

/* Averages in the history now (<= W). */
size_t ad_likelihood_count(const ad_likelihood *l);

/* Forget everything (held averages too). */
void ad_likelihood_reset(ad_likelihood *l);

/*
 * SAVE / RESTORE. ad_likelihood_save returns a cJSON object that lets the
 * probability continue exactly where it was (NULL on OOM):
 *   {"history":W,"average":w,"floor":abs_floor,"short":[kept scores, oldest
 *    first],"hist":[averages as stored],"head":i,"mean":m,"m2":q,
 *    "since_exact":k,"held":[held averages, oldest first; absent when
 *    none]}
 * the numbers printed with 17 significant digits (they read back bit for
 * bit). Size: at most W + w numbers of ~24 characters (W = 500: ~12 KB;
 * the largest W, 1e6: ~24 MB). ad_likelihood_restore checks everything
 * before anything changes: W and w must be this object's (averages of
 * another length, or another history length, are not this history:
 * AD_EINVAL naming the key), the rest well formed (AD_EFORMAT). On error
 * l is unchanged.
 */
cJSON *ad_likelihood_save(const ad_likelihood *l);
int ad_likelihood_restore(ad_likelihood *l, const cJSON *o, char *err, size_t errlen);

/* ln Q(z), Q the standard normal upper tail; exported for tests. */
double ad_log_normal_tail(double z);

#endif /* AD_LIKELIHOOD_H */
