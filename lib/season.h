/*
 * season.h - the score level a stream reaches at each phase of a period (a
 * day): what lets a detector stop alerting on a part of the cycle that is
 * hard to reconstruct but happens every day at the same time.
 *
 * WHY. A reconstruction error is not flat over a daily cycle: a step
 * between two levels at 09:00, a morning ramp or a shift change makes the
 * windows holding it score several times the quiet hours, every day. The
 * threshold (threshold.h) is one number for the whole day and its robust
 * estimators drop such a short excursion as an outlier, so it alerts; and
 * a window inside an alert never teaches the threshold or the continual
 * learner (adapt.h), so it alerts again the next day, and the next. What
 * tells it from a fault is that it comes back at the same time of day.
 *
 * WHAT. The period P is cut into AD_SEASON_BINS bins by absolute phase
 * (ts mod P: with P a day, midnight UTC starts bin 0; the detector passes
 * local time as ts for calibration.season_clock local). Each bin keeps the
 * highest score of every period (the current one and the N + 1 before it,
 * N = 2R - 1). With m_j(t) = max{ scores at t - j P +- h }, the level at
 * time t is
 *
 *   level(t) = the R-th highest of m_1(t) .. m_N(t)
 *
 * i.e. a height the scores reached near this phase in R of the last N
 * periods, a majority. A single burst, or a fault on one day, is one
 * period's maximum and does not count; a fault that recurs at the same time
 * on R days out of N is, by this rule, part of the cycle. A quiet period
 * or two (a weekend, a day the cycle did not run) does not drop the level.
 * The level is NAN (none) while fewer than R of the N periods have a score
 * near the phase.
 *
 * The tolerance h is P/48 (two bins), or the time one window spans when
 * that is longer (ad_season_set_span; at most P/4): a step at a fixed time
 * sits in every window that holds it, and where in that run the error
 * peaks depends on the model, which continual learning replaces.
 *
 * Every trusted score feeds it, those inside alerts included (that is the
 * point); the caller leaves out untrusted and flagged windows. A promotion
 * moves the kept maxima to the new model's scale with its error ratio
 * (ad_season_scale; a model reloaded through reload.shadow is promoted
 * too); a model swapped in otherwise (bootstrap training, a reload without
 * shadow) resets them, the same model recalibrated keeps them.
 *
 * COST. (2R + 1) x AD_SEASON_BINS floats per stream (2.7 kB at R = 3);
 * O(R (R + h) x rows) per level (h the tolerance in bins), O(rows) per
 * score, rows = 2R + 1 (about 200 operations at R = 3, h = 2).
 */
#ifndef AD_SEASON_H
#define AD_SEASON_H

#include <stdint.h>
#include <stddef.h>

#define AD_SEASON_BINS 96           /* 15 min of a day */
#define AD_SEASON_HALF 2            /* +- bins a phase looks at (P/48) */
#define AD_SEASON_MAX_PERIODS 30
#define AD_SEASON_TS_MAX 1000000000000000LL  /* |ts| beyond (year 33658): ignored */

typedef struct ad_season ad_season;
struct cJSON;

/* period_ms >= AD_SEASON_BINS, 1 <= periods <= AD_SEASON_MAX_PERIODS */
int ad_season_new(ad_season **out, int64_t period_ms, int periods, char *err, size_t errlen);
void ad_season_free(ad_season *s);
void ad_season_reset(ad_season *s);

/* A trusted score at ts. A score of a period already gone by that has no
 * row is ignored; one older than every kept period (time went back: a
 * clock set back, a damaged saved state) resets what is kept first. |ts|
 * beyond AD_SEASON_TS_MAX is ignored. */
void ad_season_add(ad_season *s, int64_t ts_ms, double score);

/* The tolerance: the data time one window spans (ms); h = that, rounded
 * up to whole bins, at least AD_SEASON_HALF bins, at most P/4. */
void ad_season_set_span(ad_season *s, double span_ms);
int ad_season_half(const ad_season *s);

/* The level at ts (see WHAT), NAN when there is none. */
double ad_season_level(const ad_season *s, int64_t ts_ms);

/* Every kept maximum times ratio (> 0, finite; otherwise a reset). */
void ad_season_scale(ad_season *s, double ratio);

/* How many of the period's bins have a level now (0..AD_SEASON_BINS). */
int ad_season_phases(const ad_season *s, int64_t ts_ms);

int64_t ad_season_period(const ad_season *s);
int ad_season_periods(const ad_season *s);

/* Save: {"period_ms":P,"bins":B,"rows":[{"k":period index,"max":[B numbers
 * or null]}...]}. Restore replaces the kept maxima; anything malformed, or
 * another period or bin count, is refused with a message and leaves s
 * empty. */
struct cJSON *ad_season_save(const ad_season *s);
int ad_season_restore(ad_season *s, const struct cJSON *o, char *err, size_t errlen);

#endif
