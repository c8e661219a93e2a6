/*
 * noise.h - the noise test: a lasting change in a feature's noise level.
 *
 * Bearing wear, cavitation, a loose mounting or a failing sensor can make
 * a signal noisier while its level, and so a loose model's reconstruction
 * error, hardly moves. The noise test looks at each feature's raw samples:
 * its noise level over a block of data is the robust spread of the
 * successive differences,
 *
 *     level = 1.4826 * MAD(x[i] - x[i-1]) / sqrt 2
 *
 * (a slow signal, a daily cycle or a level step hardly moves it: a step is
 * one difference of many), over a block of AD_NOISE_BLOCK_MS of data with
 * at least AD_NOISE_MIN_N differences, or of AD_NOISE_MAX_N differences if
 * that comes first (a fast stream: 17 min at 1 Hz). The medians are those
 * of grouped data (QUANTUM). Each block's level is compared with
 * the feature's usual level, the median of its last AD_NOISE_KEEP levels
 * judged usual (the first AD_NOISE_WARM blocks are learned, not judged). A
 * block over ratio x the usual level starts or continues the feature's
 * run, and is not learned; a block under it ends the run and is learned,
 * except that a raised run goes on while its blocks stay over
 * 1 + AD_NOISE_CLEAR x (ratio - 1) (a hysteresis, as an alert's clear
 * level: one quieter hour does not end a change).
 *
 * HOUR OF THE DAY: every block's level is also kept by the hour of the
 * week of its middle (AD_NOISE_HOURS slots, the last 7 days; a run's
 * blocks held out, HELD OUT below). The usual level is the larger of the median above and the
 * lower median of the levels at the same hour of the day +- 1 h on the
 * days before (at least AD_NOISE_HOUR_MIN of them): a noise that is higher
 * every day from 08:00 to 18:00 is judged against the day hours before;
 * the lower median of 7 days holds 5 weekdays after a quiet weekend, and a
 * fault of one day is 3 of 21 levels the next week.
 *
 * NOISE THAT FOLLOWS THE LEVEL: a noise s x m^p (m the feature's level,
 * s what a fault changes) is judged on level / m^p, m the block's |median|
 * (kept only when over AD_NOISE_MID_CLEAR x the level: a signal about 0
 * has no level to scale by) and p the least-squares slope of log level on
 * log m over the hours kept of the last week (not held out), clamped to [0, 1] (p 1: a noise in percent of
 * the level; 1/2: counts' Poisson noise; 0: additive, judged as is). p is
 * 0 while fewer than AD_NOISE_WARM hours have an m or their log m spread
 * less than AD_NOISE_P_SPREAD (a level that hardly moves tells nothing of
 * p). A change of the level alone, under any such p, moves level / m^p by
 * nothing; a noise change at an unchanged level moves it as the level.
 * HELD OUT: a fault that moves a feature's level and its noise together
 * would teach p (and the hours) that its noise follows its level, and
 * hide. So a run is judged whole with the p of its start, and its blocks'
 * hours are held out of p and of the hours of the day while it goes on;
 * when it ends not raised they are learned; when it ended raised they stay
 * out (a raised run's hours never teach, so a lasting fault with no
 * acceptance stays raised) until that level recurs: a block over the
 * ratio with no run, within the ratio of one held out at the same hour
 * of the day (+- 1 h) on a day before, makes each hour held out within
 * the ratio of it learned, and is judged again (a daily noise cycle alerts
 * on its first day only). An acceptance of the feature learns them. Hours
 * ahead of a block's (a restored clock ahead) are dropped.
 * FAULT GOES ON: a level recurs after usual hours between, as a daily
 * cycle's; a fault that goes on after a quieter hour, a gap or a restart
 * has none. So a raised run does not end at once: a block under the clear
 * ratio pauses it (not raised, learned: the change clears as soon), a
 * block between the clear ratio and the ratio in a pause is held out
 * (not learned), a block over the ratio goes on with it (raised again at
 * once, its hours still held out); it ends (its hours held out as above)
 * only once its quiet blocks since its last one over the ratio span
 * AD_NOISE_QUIET_MS of data, a held-out block counting for a quarter of
 * its time (a fault that ends just under the ratio is learned after 10 h
 * of it, not held out for weeks). A gap or a restart, however long, does not end a raised run: its
 * next block judges it (with the clear ratio, or the ratio when paused).
 * A feature whose run has lasted span_ms of data, counting only its
 * blocks (from the start of each to its end), is raised: the detector counts each
 * window as over the threshold with that feature on top while it lasts
 * (detector.h), so the change alerts and clears once the noise is back.
 * A drop in the noise is learned, never raised.
 *
 * QUANTUM: a feature read in steps (a counter, a temperature in 0.5-degree
 * steps) has differences and deviations that are whole numbers of steps;
 * their plain median jumps from 1 step to 2 with no change in the noise
 * (x2, over the ratio: false raises). Each median of a block is the
 * median of grouped data: with q the block's smallest nonzero step and M
 * the plain median, lo + q (k/2 - below) / in, lo = M - q/2, below and in
 * the values under lo and in [lo, lo + q). On a continuous feature q is
 * tiny and it is M.
 *
 * SPAN: more than AD_NOISE_BLOCK_MS of data time after the block's last
 * trusted sample (silence, NaN rows, a stop) ends the block there (closed
 * when it holds AD_NOISE_MIN_N differences, else dropped); a run counts
 * the time of its blocks only, and more than AD_NOISE_BLOCK_MS between
 * two of its blocks (a gap, frozen blocks, a restart) ends it.
 *
 * ACCEPTANCE: a change the detector accepts as a new normal (a regime,
 * detector.h) takes the noise with it: ad_noise_accept makes each feature
 * raised in the accepted alert take its run's levels (at most the last
 * AD_NOISE_RECENT; the last AD_NOISE_RECENT when its run was broken) as
 * its usual levels and ends its run, so a noise change that persists
 * alerts once, is accepted as the other changes are and does not alert
 * again; the other features keep their usual levels and runs (a noise
 * change under way elsewhere is not absorbed). The saved run's start is
 * its end less the time counted.
 *
 * The caller marks samples it does not trust (data-quality flags, invalid
 * rows) as NaN: no difference is taken across them, as across a gap
 * (ad_noise_reset). A block whose level is 0 (a frozen or coarse signal)
 * is neither judged nor learned.
 *
 * SAVED STATE (ad_noise_save / ad_noise_restore; the detector's state
 * "noise", detector.h): per feature its usual levels (oldest first), its
 * run (null: none; else its start, the end of its last block and that
 * block's level) and whether it judges; the block under way is not kept (a
 * restart starts a block):
 *   {"span_ms":S,"ratio":R,"usual":[[level..]..F],
 *    "run":[null|[start ms,end ms,level,blocks,p,quiet ms]..F],"judging":[bool..F],
 *    "recent":[[level..]..F],"usual_mid":[[m..]..F],"recent_mid":[[m..]..F],
 *    "hour_at":[null|hour..F],"hours":[[level..]..F],"hours_mid":[[m..]..F],
 *    "hours_held":[[0|1|2..]..F]}
 * ("usual_mid", "recent_mid": the medians of "usual", "recent", 0: none;
 * "hours": AD_NOISE_HOURS levels by hour of the week, 0: none, slot s
 * standing for the hour (ms / 1 h) of the last week up to "hour_at" equal
 * to s modulo AD_NOISE_HOURS; "hours_held": as "hours", 1 held by the run
 * under way, 2 by a raised run that ended; a run is [start ms, end ms,
 * level, blocks, p, quiet ms], the blocks it counted (at most
 * AD_NOISE_RECENT, what an acceptance takes), the p it is judged with and
 * its quiet data time (FAULT GOES ON, 0: not paused); [start, end, level,
 * blocks, p] in a state from before: not paused; [start, end, level] (or
 * a run restored so and not judged since): 0 blocks, the p of its next
 * block.) At most F x (2 x (AD_NOISE_KEEP + AD_NOISE_RECENT +
 * AD_NOISE_HOURS) + AD_NOISE_HOURS + 8) numbers; a state without
 * "recent" or the medians and hours or "hours_held" (kept before they
 * were) restores with none. Kept under other settings
 * (span, ratio) it is taken all the same: the usual levels are the
 * stream's, and a run is judged again by the next block.
 */
#ifndef AD_NOISE_H
#define AD_NOISE_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define AD_NOISE_BLOCK_MS 3600000  /* a block of data: an hour */
#define AD_NOISE_MIN_N 30          /* fewest differences a block needs */
#define AD_NOISE_MAX_N 1024        /* most differences in a block */
#define AD_NOISE_KEEP 24           /* usual levels kept (the median of) */
#define AD_NOISE_WARM 6            /* blocks learned before any is judged */
#define AD_NOISE_RECENT 6          /* last levels an acceptance takes */
#define AD_NOISE_CLEAR 0.5         /* a raised run's level, in (ratio - 1) */
#define AD_NOISE_HOURS 168         /* hours of the week kept (7 days) */
#define AD_NOISE_HOUR_MIN 3        /* fewest levels of an hour of the day */
#define AD_NOISE_MID_CLEAR 3.0     /* a block's |median| kept: over 3 x its level */
#define AD_NOISE_P_SPREAD 0.1      /* least spread of log |median| for p */
#define AD_NOISE_QUIET_MS 9000000  /* quiet data time that ends a raised run: 2.5 h */

typedef struct ad_noise ad_noise;

/* A test on F features: a run over ratio (> 1) x the usual level that
 * lasts span_ms (> 0) of data raises. NULL when out of memory or bad
 * arguments. */
ad_noise *ad_noise_new(int F, int64_t span_ms, double ratio);
void ad_noise_free(ad_noise *n);

/* One row at ts: values (F; NaN = not trusted, no difference across it).
 * Returns the number of blocks closed (0 or more). */
int ad_noise_push(ad_noise *n, int64_t ts, const double *values);

/* A gap in the data: no difference across it; the block goes on. */
void ad_noise_reset(ad_noise *n);

/* The raised features: on[f] = 1 for each (on may be NULL); returns how
 * many. */
int ad_noise_raised(const ad_noise *n, unsigned char *on);

/* The last judged block's level over the usual level of feature f (NAN:
 * none judged yet). */
double ad_noise_ratio(const ad_noise *n, int f);

/* A change accepted: each feature raised now or since `since` (the
 * accepted alert's start; INT64_MAX: now only) takes the levels of its run
 * (at most AD_NOISE_RECENT; its last AD_NOISE_RECENT levels when its run
 * has ended) as its usual levels, and its run ends; the other features
 * keep theirs. Returns the features taken. */
int ad_noise_accept(ad_noise *n, int64_t since);

/* The state (SAVED STATE). A new object, NULL on OOM. */
struct cJSON *ad_noise_save(const ad_noise *n);

/* Take a saved state o (ad_noise_save) into n, made with the same F: all
 * of it is checked before any of it is taken. 0, or AD_EINVAL (other F) /
 * AD_EFORMAT (damaged; the field named) with err set; n is unchanged then. */
int ad_noise_restore(ad_noise *n, const struct cJSON *o, char *err, size_t errlen);

#endif
