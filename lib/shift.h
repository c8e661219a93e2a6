/*
 * shift.h - a kept change: a level change of the rows that an alert
 * showed at its onset, that stayed after the alert cleared, and that the
 * daily cycle may show again at hours the model has not yet seen it at.
 *
 * A step of the process (a new consumer: more demand at every hour) can
 * raise an alert at its onset and clear once the model judges the new
 * level normal at that hour; hours later, when the daily cycle brings the
 * load to a point the model never saw with the step added (the evening
 * peak), the score rises again: the same change, judged against the old
 * normal. This module tells those windows from others by the way the rows
 * moved, not by their score.
 *
 * ROWS. Each row's finite values go into buckets of P / AD_SHIFT_BUCKETS
 * data time (P the period, 24 h: alert.accept_period_ms), per-feature
 * means, for the last AD_SHIFT_RING buckets (one and a half periods).
 *
 * DISPLACEMENT at time t: the means of the last AD_SHIFT_NOW completed
 * buckets less the means of the same buckets of the reference (below),
 * each feature in units of its spread over the reference (the standard
 * deviation of the reference's bucket means: the daily cycle's swing; a
 * feature that does not vary there, a spread under AD_SHIFT_FLAT of its
 * level, is flat: left out, and it VETOES (below) when its mean moves by
 * more than AD_SHIFT_FLAT_TOL x max(|level|, 1): no tiny swing decides).
 * "Hours" are P / 24 and a displacement spans P / 48 (30 min for a day).
 *
 * KEPT CHANGE. When an alert clears (not accepted: the caller calls after
 * acceptance), the reference is the
 * period before its start (it must be in the ring: else nothing), and u
 * the displacement at the clear. When |u| >= AD_SHIFT_MIN the change is a
 * candidate: every completed hour after the clear must keep the way of u
 * (the hour's displacement: cosine >= AD_SHIFT_COS with u, norm at least
 * half of |u|, at most AD_SHIFT_MAX_RATIO x |u|, no flat feature moved),
 * else the candidate or the kept change is dropped; after AD_SHIFT_CONFIRM
 * such hours it is kept, until 2 P after the clear or P after the last
 * window it kept (RENEWED), whichever is later, and never past
 * AD_SHIFT_MAX_PERIODS x P after the clear. A later clear replaces it.
 *
 * RENEWED. Kept windows teach neither the model nor the threshold (a
 * fault held would be learned), so a model that does not generalise to
 * the new level at the cycle's peaks (a stream's own model, trained on a
 * day) scores them as high on the third day as on the first: a fixed end
 * only moved their alert there. A window kept at a phase of the cycle
 * says the change is still met there; the hold lasts until the same
 * phase a period later. When a whole period passes with no window kept
 * (the model now judges those hours normal, or the load no longer goes
 * there), the change ends as before. The bound caps how long a fault
 * that moves the rows the change's way, no further, can go unraised.
 *
 * HOLDS (ad_shift_holds): a change is kept and the displacement now has
 * cosine >= AD_SHIFT_COS with u and a norm of at most AD_SHIFT_MAX_RATIO
 * x |u| and no flat feature moved: the rows moved the way the kept change
 * moved them, not further.
 * A fault that moves the rows another way (less flow where the change
 * gave more) or much further does not hold.
 *
 * Not saved: after a restore the ring fills again and a change is kept
 * only from the next clear a period later.
 */
#ifndef AD_SHIFT_H
#define AD_SHIFT_H

#include <stdint.h>

#define AD_SHIFT_BUCKETS 144    /* buckets per period: 10 min of 24 h */
#define AD_SHIFT_RING 216       /* buckets kept: 1.5 periods */
#define AD_SHIFT_NOW 3          /* buckets a displacement is measured on */
#define AD_SHIFT_MIN 1.0        /* |u| for a change to be kept, in spreads */
#define AD_SHIFT_COS 0.8
#define AD_SHIFT_CONFIRM 2      /* hours after the clear that keep its way */
#define AD_SHIFT_MAX_RATIO 2.0  /* a displacement past it ends the hold */
#define AD_SHIFT_MIN_F 3        /* features at least: fewer, off */
#define AD_SHIFT_FLAT 1e-4      /* a spread under it x |level|: flat */
#define AD_SHIFT_FLAT_TOL 1e-3  /* a flat feature's move that vetoes, x max(|level|, 1) */
#define AD_SHIFT_MAX_PERIODS 7 /* a kept change ends at the latest this many periods after its clear */

typedef struct ad_shift ad_shift;

/* F features (>= AD_SHIFT_MIN_F), period P ms (>= AD_SHIFT_BUCKETS).
 * NULL on OOM or bad arguments. */
ad_shift *ad_shift_new(int F, int64_t period_ms);
void ad_shift_free(ad_shift *s);           /* NULL accepted */

/* One row at ts (data time, not decreasing; earlier rows are ignored);
 * x: F values, NaN for none. */
void ad_shift_row(ad_shift *s, int64_t ts, const double *x);

/* An alert [start, end] cleared (not accepted): maybe a candidate. */
void ad_shift_cleared(ad_shift *s, int64_t start_ms, int64_t end_ms);

/* 1 when a kept change holds at ts (see HOLDS), else 0. */
int ad_shift_holds(ad_shift *s, int64_t ts);

/* A window at ts was kept (it held and raised nothing): the change lasts
 * at least a period past it (RENEWED). */
void ad_shift_kept(ad_shift *s, int64_t ts);

/* 0 none, 1 candidate, 2 kept. */
int ad_shift_state(const ad_shift *s);

#endif
