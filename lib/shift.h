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
 * deviation of the reference's bucket means: the daily cycle's swing),
 * floored at AD_SHIFT_FLAT x max(|level|, 1): a feature near 0 with tiny
 * noise, or one with a large offset and a small swing (300 K +- 0.02),
 * counts by how far it moved, but no tiny noise makes a move of it worth
 * thousands of spreads and takes over the direction.
 * FLAT: a feature whose spread is rounding only (under AD_SHIFT_ROUND of
 * its level; at a level of exactly 0, none: a valve shut, a status bit,
 * a constant) is left out of the direction and VETOES (below) when its
 * mean moves by more than AD_SHIFT_FLAT_TOL of its own level: 1e-4 going
 * to 5e-4 vetoes, and at a level of 0 any move does (the valve opened).
 * MISSING: a feature the reference had that has no value in any row of a
 * displacement's buckets while others have VETOES too: the direction of
 * the rest says nothing of it.
 * "Hours" are P / 24 and a displacement spans P / 48 (30 min for a day).
 *
 * KEPT CHANGE. When an alert clears (not accepted: the caller calls after
 * acceptance), the reference is the
 * period before its start (it must be in the ring: else nothing), and u
 * the displacement at the clear. When |u| >= AD_SHIFT_MIN the change is a
 * candidate: every completed hour after the clear must keep the way of u
 * (the hour's displacement: cosine >= AD_SHIFT_COS with u, norm at least
 * half of |u| or at least AD_SHIFT_MIN (a change's worth: a step shows
 * less at some hours of the cycle than at its clear, in spreads of the
 * reference's swing), at most AD_SHIFT_MAX_RATIO x |u|, no flat feature moved;
 * a flat feature moved at the clear: no candidate),
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
 * x |u|, no flat feature moved and no feature went missing: the rows
 * moved the way the kept change moved them, not further.
 * A fault that moves the rows another way (less flow where the change
 * gave more) or much further does not hold. One that moves them the same
 * way by less than AD_SHIFT_MAX_RATIO x |u| would: the caller says of
 * each window over the threshold whether it held it (ad_shift_hold_run),
 * and windows held in a row for longer than P / AD_SHIFT_HOLD_DIV end the
 * change (a daily peak over the threshold does not last a quarter of the
 * day: the scenario suite's last about 3 h), so such a fault raises after
 * at most P / 4 (6 h for a day) when its windows stay over the threshold.
 * Windows under it (the caller passes held 0) end the run only when
 * they last P / AD_SHIFT_RUN_GAP_DIV (an hour for a day) from its last
 * window held: a fault whose score dips under the threshold now and then
 * is raised after P / 4 all the same, and a later peak is a new run.
 *
 * SAVED STATE (ad_shift_save / ad_shift_restore, "shift" of the
 * detector's saved state): {"bucket_ms":B,"cur":b,"buckets":[[b, [F
 * sums], [F counts]], ...],"change":{"state":1|2,"ref_base","norm",
 * "next_check","expire","expire_max","hours_ok","kept_ms","run_ms","sd",
 * "tol","u","ref"}} (expire_max absent in a state from before RENEWED: no
 * renewal past expire),
 * "change" only while a candidate or a kept change is under way (null in
 * tol and ref: NaN; "run_ms" and "run_last_ms", the first and the last
 * of the windows held in a row, only while they are; a state without
 * "run_last_ms": the last taken as the stream's last row). A restart, a reload or a rebuild that restores the
 * state goes on with the ring and the change as they were; a state from
 * before it was kept has none, and the ring fills again (a change is kept
 * from the next clear, once a period is in the ring). The run of windows
 * held in a row goes on too (a state without it: none under way). A
 * state whose ring ends after the stream's last row (the clock stepped
 * back: the stream starts its rows anew) is not restored.
 */
#ifndef AD_SHIFT_H
#define AD_SHIFT_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define AD_SHIFT_BUCKETS 144    /* buckets per period: 10 min of 24 h */
#define AD_SHIFT_RING 216       /* buckets kept: 1.5 periods */
#define AD_SHIFT_NOW 3          /* buckets a displacement is measured on */
#define AD_SHIFT_MIN 1.0        /* |u| for a change to be kept, in spreads */
#define AD_SHIFT_COS 0.8
#define AD_SHIFT_CONFIRM 2      /* hours after the clear that keep its way */
#define AD_SHIFT_MAX_RATIO 2.0  /* a displacement past it ends the hold */
#define AD_SHIFT_MIN_F 3        /* features at least: fewer, off */
#define AD_SHIFT_FLAT 1e-4      /* spreads floored at it x max(|level|, 1) */
#define AD_SHIFT_ROUND 1e-9     /* a spread under it x |level|: flat */
#define AD_SHIFT_FLAT_TOL 1e-3  /* a flat feature's move that vetoes, x |level| */
#define AD_SHIFT_HOLD_DIV 4     /* windows held in a row for over P / it: ended */
#define AD_SHIFT_RUN_GAP_DIV 24 /* P / it under the threshold ends such a run */
#define AD_SHIFT_MAX_PERIODS 7  /* a kept change ends at the latest this many periods after its clear */

/* why a kept change ended (ad_shift_ended_why) */
#define AD_SHIFT_END_MOVED 1    /* the rows went back, another way or further */
#define AD_SHIFT_END_EXPIRED 2  /* its time ran out (RENEWED) */
#define AD_SHIFT_END_HELD 3     /* windows held in a row for too long */

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
 * at least a period past it (RENEWED). Returns 1 when its end moved an
 * hour (P / 24) or more past the end last said (kept, restored or
 * returned 1 so): the caller says it again (the retained state, the saved
 * state a restart goes on from), else 0. */
int ad_shift_renew(ad_shift *s, int64_t ts);

/* 0 none, 1 candidate, 2 kept. */
int ad_shift_state(const ad_shift *s);

/* A window over the threshold at ts held (held 1: ad_shift_holds said
 * so and nothing else held it) or not (0: under the threshold, or it
 * raised). Returns 1 while the windows held in a row span at most P /
 * AD_SHIFT_HOLD_DIV; past it the change ends (AD_SHIFT_END_HELD) and 0:
 * the window is not held. Windows not held end the run once P /
 * AD_SHIFT_RUN_GAP_DIV passed since its last window held (at once when
 * no change is kept); a window held after as long starts a new run. */
int ad_shift_hold_run(ad_shift *s, int64_t ts, int held);

/* How long the last run of windows held in a row lasted (ms), -1: none. */
int64_t ad_shift_last_run(const ad_shift *s);

/* The kept change ends now (why: AD_SHIFT_END_*); none: nothing. */
void ad_shift_end(ad_shift *s, int why);

/* AD_SHIFT_END_* of the last change that ended, 0: none yet. */
int ad_shift_ended_why(const ad_shift *s);

typedef struct ad_shift_info {
    int64_t since_ms;           /* data time it was kept at */
    int64_t until_ms;           /* ... it ends at unless renewed (RENEWED) */
    double norm;                /* |u| in spreads */
    const double *u;            /* F: each feature's move in spreads (0: flat, left out) */
    int F;
} ad_shift_info;

/* 1 and in (may be NULL) filled while a change is kept, else 0; in->u
 * points into s (valid until the next call on s). */
int ad_shift_kept(const ad_shift *s, ad_shift_info *in);

/* SAVED STATE: NULL before any row, or on OOM. */
struct cJSON *ad_shift_save(const ad_shift *s);

/* A saved state o into s (same F and period) of a stream whose last row
 * was at last_ts (INT64_MIN: not known). 0, or an AD_E* code with err
 * naming the damaged part: s is left as it was. AD_EINVAL: another
 * period, or rows ending after last_ts (the clock stepped back: the
 * stream starts its rows anew, the ring with them). */
int ad_shift_restore(ad_shift *s, const struct cJSON *o, int64_t last_ts, char *err,
                     size_t errlen);

#endif
