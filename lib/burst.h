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
 * with median and MAD over those AD_BURST_K samples; floor is a share
 * (AD_BURST_FLOOR) of the feature's learned spread (the model's scaler),
 * so a flat signal does not turn every wiggle into an outlier. The window
 * is centred: at a level shift the median is the new level from the first
 * sample of it on, so a step makes no outlier, while a lone spike among
 * ordinary neighbours does. A feature is in a burst while at least n of its
 * samples of the last span_ms of data (by timestamp) were outliers: one
 * spike is 1, absorbed; a train of them is a burst.
 *
 * The caller marks samples it does not trust (data-quality flags, invalid
 * rows) as NaN: they are neither judged nor a neighbour. A gap in the
 * timestamps (ad_burst_reset) starts the neighbourhood over; the outliers
 * already counted stay until they leave the span.
 *
 * The state is memory only: after a restart the neighbourhood refills in
 * AD_BURST_K rows and a burst in progress is counted from there on.
 */
#ifndef AD_BURST_H
#define AD_BURST_H

#include <stdint.h>

#define AD_BURST_K 11           /* neighbourhood: 5 samples either side */
#define AD_BURST_FLOOR 0.5      /* the MAD floor, in learned spreads */
#define AD_BURST_MAX_N 1000     /* most outliers one feature's span counts */

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

#endif
