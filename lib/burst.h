/*
 * burst.h - the burst test: intermittent faults seen in the raw samples.
 *
 * A fault that spoils one sample in ten (a loose connector, a failing
 * sensor) can leave every window's reconstruction error under the
 * threshold: a window of many rows averages one bad row away. The burst
 * test looks at each feature's samples instead, each against its local
 * neighbourhood (a centred Hampel filter): the sample in the middle of the
 * last AD_BURST_K valid rows is an outlier when
 *
 *     |x - median| > z * max(1.4826 * MAD, floor)
 *
 * with median and MAD over those AD_BURST_K samples; floor is the largest
 * of a share (AD_BURST_FLOOR) of the feature's learned spread (the model's
 * scaler), so a flat signal does not turn every wiggle into an outlier,
 * a share (AD_BURST_USUAL) of its usual local spread (USUAL SPREAD) and
 * its quantum (QUANTUM).
 * The window
 * is centred: at a level shift the median is the new level from the first
 * sample of it on, so a step makes no outlier, while a lone spike among
 * ordinary neighbours does. A feature is in a burst while at least n of its
 * samples of the last span_ms of data (by timestamp) were outliers: one
 * spike is 1, absorbed; a train of them is a burst.
 *
 * USUAL SPREAD: the median of the feature's local spreads (1.4826 MAD of
 * each neighbourhood judged), tracked in logs: a step of 1 / (spreads seen)
 * up or down, at least AD_BURST_USUAL_STEP, each neighbourhood judged
 * against the usual spread before its own. The learned spread is the
 * model's, from before a change: the MAD of 11 samples of a noisier
 * normal accepted since is small now and then, under that floor, and a
 * sample of that noise would be an outlier; the usual spread follows the
 * noise as the threshold follows an accepted regime (over ~280 samples
 * for a factor 4), while a spike train, a sample in several, moves the
 * neighbourhoods' MADs, and so the usual spread, hardly at all.
 *
 * QUANTUM: a quantised feature (a 0/1 valve state, a counter, a
 * temperature read in 0.5-degree steps) has a MAD of 0 in every
 * neighbourhood where more than half its samples are alike, and no
 * usual spread then (a spread of 0 is not followed): every sample off
 * the majority was an outlier against the learned-spread floor alone (a
 * valve opening for 3 rows: 3 outliers, a burst; a 0.5-degree flicker
 * one time in 15: bursts all along). The floor is also at least
 * AD_BURST_QUANT x the feature's quantum: within z quanta of its
 * neighbours' median a sample is no outlier (a valve's 0/1 never is: its
 * changes are the model's to judge). The quantum is the smallest step
 * size between consecutive samples that RECURS: each step of a size adds
 * to its weight, AD_BURST_QHELD when it goes from a held level to a held
 * level (the samples either side of it alike: a valve opening for two
 * rows or more), 1 when a lone sample leaves or rejoins its level (a
 * flicker, a spike); a size of weight AD_BURST_QSEEN is a quantum (two
 * held steps, eight lone ones: four flickers). A step under AD_BURST_QMIN
 * learned spreads is not counted (a valve read 1.0000001 once is no
 * quantum of 1e-7), and one step alone is none (an early set-point step
 * of 4 on a flat feature does not make 20 its floor). A train of spikes
 * all of one size on a feature that never moves otherwise makes that size
 * its quantum after four of them (a burst of three is seen first). Sizes
 * alike within AD_BURST_QSAME are one; AD_BURST_QSLOTS sizes are tracked
 * per feature, a new one taking the place of the lightest (of them, the
 * largest). The quantum is saved with the state (SAVED STATE).
 *
 * The caller marks samples it does not trust (data-quality flags, invalid
 * rows) as NaN: they are neither judged nor a neighbour. A gap in the
 * timestamps (ad_burst_reset) starts the neighbourhood over; the outliers
 * already counted stay until they leave the span.
 *
 * SAVED STATE (ad_burst_save / ad_burst_restore; the detector's state
 * "burst", detector.h): the settings it was kept with, the data time it
 * was saved at and, per feature, the outliers still inside the span then,
 * as ages before that time, and its usual spread (null: none yet); with
 * rows, also the newest AD_BURST_K - 1 rows
 * of the neighbourhood (a hand-over: nothing is consumed after it):
 *   {"span_ms":B,"n":n,"z":z,"at_ms":ts,"out":[[age ms, oldest first]..F],
 *    "usual":[spread..F],"quant":[quantum or null..F],
 *    ["ts":[ts..],"rows":[[F values, null for NaN]..]]}
 * At most F x (n + AD_BURST_K + 2) numbers; a state without "usual" or
 * "quant" (kept before they were) restores with them learned afresh. A
 * quantum not > 0, or over AD_BURST_USUAL_MAX learned spreads when that is
 * known, makes the state damaged (refused whole). A usual
 * spread that is not one (negative, zero, not a number, not finite, a
 * "usual" not of F) or beyond AD_BURST_USUAL_MAX learned spreads is
 * refused alone, named, and learned afresh from the next neighbourhoods
 * (its first spread taken whole), the rest of the state taken. Beyond
 * that bound it is either damaged (1e12 would be a floor no sample passes
 * for ~5,500 samples while it shrinks) or a noise grown that much since
 * the model learned the spread (an accepted change): the two cannot be
 * told apart, and the line says so; one restored before the learned
 * spread is known (no model yet) is checked against it when it is.
 * Restored
 * under other settings (span, n or z) it is refused with a message naming them: the test starts
 * afresh then, as after a restart before the state was kept.
 */
#ifndef AD_BURST_H
#define AD_BURST_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define AD_BURST_K 11           /* neighbourhood: 5 samples either side */
#define AD_BURST_FLOOR 0.5      /* the MAD floor, in learned spreads */
#define AD_BURST_USUAL 0.8       /* the MAD floor, in usual local spreads */
#define AD_BURST_USUAL_STEP 0.005 /* its tracking step (logs, per sample) */
#define AD_BURST_MAX_N 1000     /* most outliers one feature's span counts */
#define AD_BURST_USUAL_MAX 20.0 /* most usual spread restored, in learned spreads */
#define AD_BURST_QUANT 1.0      /* the MAD floor, in quanta (QUANTUM) */
#define AD_BURST_QSEEN 8        /* weight that makes a step size the quantum */
#define AD_BURST_QHELD 4        /* weight of a step between held levels */
#define AD_BURST_QMIN 0.01      /* steps under this many learned spreads: none */
#define AD_BURST_QSAME 1e-3     /* sizes alike within this share */
#define AD_BURST_QSLOTS 8       /* step sizes tracked per feature */

typedef struct ad_burst ad_burst;

/* A test on F features: a burst is n outliers (2..AD_BURST_MAX_N) within
 * span_ms (> 0) of data, an outlier z (> 0) spreads from its neighbourhood.
 * NULL when out of memory. */
ad_burst *ad_burst_new(int F, int64_t span_ms, int n, double z);
void ad_burst_free(ad_burst *b);

/* One row at ts: values (F; NaN = not to be judged nor used), spread (F:
 * each feature's learned spread, > 0; a feature with none is not judged;
 * NULL: no floor known, nothing judged). Judges the sample AD_BURST_K / 2
 * rows back. Returns the number of outliers found (0 or more). */
int ad_burst_push(ad_burst *b, int64_t ts, const double *values, const double *spread);

/* Forget the neighbourhood (a gap in the data); counted outliers stay. */
void ad_burst_reset(ad_burst *b);

/* The feature in a burst at ts (outliers of (ts - span_ms, ts] counted;
 * with several, the one with the most), or -1. */
int ad_burst_feature(const ad_burst *b, int64_t ts);

/* The state at data time at_ms (the stream's last row), rows: with the
 * neighbourhood's rows. A new object, NULL on OOM. */
struct cJSON *ad_burst_save(const ad_burst *b, int64_t at_ms, int rows);

/* Take a saved state o (ad_burst_save) into b, made with the same F: all
 * of it is checked before any of it is taken. The neighbourhood's rows are
 * taken when their last timestamp is last_ts (the stream's last row), else
 * left out (*rows_taken 0). spread: each feature's learned spread (F, as
 * for ad_burst_push; NULL: not known yet), the bound on the usual spreads
 * (SAVED STATE). 0, with *usual_refused the usual spreads refused (learned
 * afresh; err then names the first and why), or AD_EINVAL (other
 * settings, other F) / AD_EFORMAT (damaged; the field named) with err
 * set; b is unchanged then. */
int ad_burst_restore(ad_burst *b, const struct cJSON *o, int64_t last_ts, const double *spread,
                     int *rows_taken, int *usual_refused, char *err, size_t errlen);

#endif
