/*
 * quality.h - the per-stream, per-feature data-quality monitor: learns how
 * each feature of a stream normally behaves (spread, typical step, longest
 * flat run, sampling period) and raises data-quality events, separate from
 * model alerts, when the data itself is suspect:
 *
 *   stuck     the value stays (nearly) constant for longer than configured
 *             while it normally varies;
 *   range     the value is outside its learned range or its configured
 *             physical range;
 *   dropout   no sample for longer than a multiple of the usual period
 *             (per feature, or for the whole stream);
 *   rejected  a burst of values the caller had to reject (non-numeric,
 *             non-finite, absurd magnitude).
 *   late      most of what the stream sends is dropped as late, over a
 *             span of time: a device clock that jumped ahead and left
 *             every following row behind it, or one that stepped back.
 *
 * Each condition raises once with an id and clears once (hysteresis), like
 * a model alert. Rows that carry a data-quality flag must never feed
 * calibration, threshold adaptation or training: the monitor says which.
 *
 * INTEGRATION CONTRACT (detector and daemon)
 *   1. One ad_dq per stream, created next to the stream's ad_detector with
 *      the detector's key, F and the feature names; free it with the stream.
 *      The config (ad_dq_cfg) is shared by all streams of a detector; the
 *      physical ranges (F pairs, NaN = none) come from the detector's config.
 *   2. Feed every ACCEPTED raw value, in data time, before row assembly:
 *        ad_detector_push_sample/_text(ts, f, v) returning 0
 *            -> ad_dq_sample(q, ts, f, v)
 *        ad_detector_push_row(ts, values, present) returning 0
 *            -> ad_dq_row(q, ts, values, present)
 *      Feed raw samples, never assembled rows of PERIOD mode: held values
 *      would look stuck and a silent sensor would never look silent.
 *   3. Count every REJECTED value (non-numeric text, NaN/Inf, absurd scaled
 *      magnitude, value of an unknown field) with ad_dq_rejected(q, f, n)
 *      (f = -1 when the feature is unknown, or for a whole row), and the
 *      samples refused for their time that say the device's clock is wrong:
 *      ahead of their arrival (future), or late by more than
 *      rows.max_lateness_ms + rows.max_gap_ms (a clock that jumped back).
 *      Duplicates and samples late by less (per-feature messages around a
 *      row, a redelivery) are the stream's business, not rejections: count
 *      the late ones with ad_dq_late (3b).
 *   3b. Tell ad_dq_late(q, late, accepted, clock) of every sample (or row,
 *      in ROWS mode) dropped as late by less than that, and of every one
 *      accepted, with the stream's arrival clock (the wall time it came;
 *      without one, a clock that moves by the forward steps of the pushed
 *      timestamps, so a late row still moves it).
 *   4. Call ad_dq_advance(q, now) from the daemon's tick (and in replay after
 *      each input line), `now` in the stream's DATA time: the last accepted
 *      data timestamp plus the wall time elapsed since it arrived. Without
 *      advance, a silent stream is never flagged (dropout needs a clock).
 *   5. Before a window [start_ms, ts_ms] is used for calibration, threshold
 *      adaptation or training (collected or kept for continual learning),
 *      ask ad_dq_flagged(q, start_ms, ts_ms); when it returns 1 the window
 *      is still scored and may alert, but never teaches. Stuck conditions
 *      are flagged back to the first sample of the flat run (`since`), so
 *      ask as late as possible (when the window is consumed), not when its
 *      rows are assembled.
 *   6. Events arrive through the callback given to ad_dq_new, during the
 *      call that caused them (sample, row, rejected, advance); the event is
 *      valid only during the callback. Publish ad_dq_event_to_json() on the
 *      detector's alert topic (its "kind" is "data_quality") and keep the
 *      open ones in the stream's state the same way as model alerts.
 *   7. ad_dq_save() next to ad_detector_save() in the state directory;
 *      ad_dq_restore() after creating the stream, so a restart does not
 *      relearn. Open conditions are not saved: after a restart they raise
 *      again if they still hold (the previous instance's open events should
 *      be closed with a reason by the alert-lifecycle code).
 *
 * LEARNING. Each feature learns from its first learn_samples accepted values
 * (values outside the physical range are flagged and not learned from). At
 * the end of its learning span it computes, once (O(L log L)):
 *   center   median of the values
 *   sigma    1.4826 * MAD (median absolute deviation); when 0, range/6
 *   step     median |x[i] - x[i-1]|; when 0, the median of the non-zero
 *            steps (quantised sensors); 0 when the value never moved
 *   run_max  longest run of samples within stuck_tol * step of the run's
 *            first value ("flat run")
 *   varies   at least 10% of the steps move by more than stuck_tol * step
 *   period   median inter-arrival time (data time, ms) and gap = its 95th
 *            percentile
 * The checks use the learned figures and the current settings, so a config
 * change applies without relearning.
 *
 * CHECKS (per feature once learned; physical range from the first sample)
 *   stuck    feature varies, step > 0, and the current flat run (values
 *            within stuck_tol * step of the run's first value) reaches
 *            max(stuck_samples, 2 * run_max) samples, or lasts
 *            max(stuck_ms, 2 * run_max * period) ms (each criterion only
 *            when its setting is > 0). Clears on the first value that moves.
 *   range    value outside [pmin, pmax] (configured), or, with range_k > 0
 *            and sigma > 0, |value - center| > range_k * sigma. Raises on
 *            the first such value; clears after range_clear_samples
 *            consecutive values inside.
 *   dropout  now - last sample > max(dropout_factor * period, 2 * gap,
 *            dropout_min_ms).
 *            The whole stream: now - last sample of any feature > the
 *            smallest limit of the learned features (one event, feature
 *            -1; per-feature dropouts are not raised while it is open).
 *            A feature not seen since this monitor began while others
 *            come: now - the first sample of any feature > its own
 *            learned limit (restored), else that smallest limit.
 *            Clears on the next sample (of the feature / of any feature).
 *   rejected a leaky bucket per feature (plus one for unknown features):
 *            each rejected value adds 1, it drains at reject_count per
 *            reject_window_ms and is capped at 2 * reject_count; raises
 *            when it reaches reject_count, clears when it is empty.
 *
 * FLAGS. ad_dq_sample/ad_dq_row return the AD_DQ_F_* bits of the conditions
 * open on that sample's feature or the whole stream after the sample was
 * processed (plus AD_DQ_F_RANGE for an out-of-range value itself). The
 * monitor also keeps the last AD_DQ_SPANS flagged data-time spans for
 * ad_dq_flagged(): a condition covers [since, clear time].
 *
 * MEMORY. sizeof(ad_dq) (760 bytes on x86-64, the AD_DQ_SPANS spans
 * included) + 184 bytes per feature once learned (+ 16 per feature with
 * physical ranges) + the key; ad_dq_memory() reports it. While a feature
 * learns it also holds a buffer of 8 * learn_samples + 32 bytes (values as
 * float offsets from the first value, inter-arrival times as float), freed
 * when its learning ends (F=5, learn_samples 100: 5.6 KB learning, 1.5 KB
 * learned). O(1) per sample outside the end of learning;
 * ad_dq_advance and ad_dq_row are O(F).
 *
 * STATE FORMAT (ad_dq_save / ad_dq_restore), JSON:
 *   {"version":1,"features":F,"seq":N,
 *    "learned":[null | {"center":x,"sigma":x,"step":x,"run_max":n,
 *                       "varies":bool,"period_ms":x,"gap_ms":x}, ...F]}
 *   null = that feature still learns. Numbers must be finite; sigma, step,
 *   period_ms, gap_ms >= 0; run_max an integer 0..2^31-1.
 *
 * Thread safety: one monitor is used by one thread at a time.
 */
#ifndef AD_QUALITY_H
#define AD_QUALITY_H

#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

#define AD_DQ_ID_LEN 128        /* bytes of an event id, NUL included */
#define AD_DQ_SPANS 8           /* flagged data-time spans remembered */

typedef enum {
    AD_DQ_STUCK = 0,
    AD_DQ_RANGE,
    AD_DQ_DROPOUT,
    AD_DQ_REJECTED,
    AD_DQ_LATE,
    AD_DQ_N_CHECKS
} ad_dq_check;

/* Flag bits returned per sample / row: 1 << ad_dq_check. */
#define AD_DQ_F_STUCK    (1 << AD_DQ_STUCK)
#define AD_DQ_F_RANGE    (1 << AD_DQ_RANGE)
#define AD_DQ_F_DROPOUT  (1 << AD_DQ_DROPOUT)
#define AD_DQ_F_REJECTED (1 << AD_DQ_REJECTED)
#define AD_DQ_F_LATE     (1 << AD_DQ_LATE)

/* Plain settings, shared by all streams of a detector. */
typedef struct ad_dq_cfg {
    int learn_samples;          /* values learned per feature, 16..1000000;
                                 * default 100 */
    int stuck_samples;          /* flat run length that is stuck; 0 = off,
                                 * else 2..1000000000; default 30 */
    int64_t stuck_ms;           /* flat run duration that is stuck; 0 = off,
                                 * else 1..1e12; default 0 */
    double stuck_tol;           /* "nearly constant": within stuck_tol *
                                 * learned step, 0..1; default 0.05 */
    double range_k;             /* learned range center +- range_k * sigma;
                                 * 0 = off, else 1..1e6; default 0 (a range
                                 * learned from the first values of a
                                 * drifting process flags its later normal
                                 * operating points) */
    int range_clear_samples;    /* in-range values that clear, 1..1000000;
                                 * default 5 */
    double dropout_factor;      /* dropout after factor * period; 0 = off,
                                 * else 1.5..1e6; default 5 */
    int64_t dropout_min_ms;     /* never a dropout before this silence,
                                 * 0..1e12; default 5000 (a 50 Hz stream's
                                 * network jitter is not a dropout) */
    int reject_count;           /* rejected values per window that raise;
                                 * 0 = off, else 1..1000000000; default 10 */
    int64_t reject_window_ms;   /* 1..1e12; default 60000 */
} ad_dq_cfg;

/* One data-quality event (plain value). */
typedef struct ad_dq_event {
    char id[AD_DQ_ID_LEN];      /* "<stream>-dq-<start ms>-<seq>" */
    uint64_t seq;               /* 1, 2, ... per stream (saved) */
    ad_dq_check check;
    int feature;                /* 0..F-1, or -1: the whole stream / an
                                 * unknown feature (rejected) */
    int active;                 /* 1 raised, 0 cleared */
    int64_t start_ms;           /* data time of the raise */
    int64_t end_ms;             /* data time of the clear; 0 while active */
    int64_t since_ms;           /* raised: data time the condition began
                                 * (stuck: first sample of the flat run;
                                 * dropout: the last sample before the
                                 * silence); cleared: the same as raised */
    double value;               /* stuck: the held value; range: the value;
                                 * dropout: silence so far (ms); rejected:
                                 * bucket level; late: the share of the
                                 * window's values dropped as late (0..1) */
    double lo, hi;              /* range: the limits that were crossed */
    double limit;               /* stuck: samples (or ms) that define it;
                                 * dropout: the silence limit (ms);
                                 * rejected: reject_count; late: the values
                                 * dropped as late the window needs
                                 * (reject_count, fewer for a slow stream:
                                 * ad_dq_late_per_row) */
    int physical;               /* range: 1 = configured physical range */
    int by_time;                /* stuck: 1 = limit is in ms (stuck_ms) */
    uint64_t count;             /* stuck: samples in the flat run; range:
                                 * out-of-range values; rejected: rejected
                                 * values while open; late: values dropped
                                 * as late from the raising window's start */
    int64_t window_ms;          /* late: the window (reject_window_ms, longer
                                 * for a slow stream) */
} ad_dq_event;

/* Event sink: ev valid only during the call. */
typedef void (*ad_dq_event_fn)(const ad_dq_event *ev, void *user);

/* What a feature learned (ad_dq_learned). */
typedef struct ad_dq_learned {
    int learned;                /* 0 while learning (other fields 0) */
    int varies;
    double center, sigma, step;
    uint32_t run_max;
    double period_ms, gap_ms;
    double lo, hi;              /* learned range now (+-inf when off) */
    double tol;                 /* stuck tolerance now (absolute) */
    double dropout_ms;          /* dropout limit now (0 = off) */
    uint64_t stuck_need;        /* stuck: samples now (0 = off) */
} ad_dq_learned;

typedef struct ad_dq_stats {
    uint64_t samples;           /* values fed */
    uint64_t samples_flagged;   /* values returned with a flag */
    uint64_t rows;              /* rows fed */
    uint64_t rows_flagged;
    uint64_t rejected;          /* rejected values counted */
    uint64_t raised[AD_DQ_N_CHECKS];
    uint64_t cleared[AD_DQ_N_CHECKS];
    int features_learned;
    int active;                 /* conditions open now */
} ad_dq_stats;

typedef struct ad_dq ad_dq;

/* Defaults as documented on each field. */
void ad_dq_cfg_default(ad_dq_cfg *c);

/* Validate every field; message names it ("quality.range_k: ..."). */
int ad_dq_cfg_check(const ad_dq_cfg *c, char *err, size_t errlen);

/*
 * New monitor for stream `key` (copied; used in ids) with F features
 * (1..AD_MAX_FEATURES). pmin/pmax: F physical limits each (copied; NaN =
 * no limit on that side; both may be NULL). fn/user: event sink (fn may be
 * NULL: events are only counted). Returns 0 and *out or a negative code
 * with a message in err.
 */
int ad_dq_new(ad_dq **out, const ad_dq_cfg *cfg, const char *key, int n_features,
              const double *pmin, const double *pmax, ad_dq_event_fn fn,
              void *user, char *err, size_t errlen);
void ad_dq_free(ad_dq *q);                  /* NULL-safe */

/* Replace the settings (reload); learned state and open conditions are
 * kept. Returns 0 or AD_EINVAL with a message. */
int ad_dq_set_cfg(ad_dq *q, const ad_dq_cfg *cfg, char *err, size_t errlen);

/*
 * One accepted value of feature f (0..F-1) at data time ts_ms. Returns the
 * AD_DQ_F_* flags of the sample (0 = clean), or AD_EINVAL for a bad feature
 * index or a non-finite value (not counted: the caller rejects those).
 */
int ad_dq_sample(ad_dq *q, int64_t ts_ms, int feature, double value);

/*
 * A whole row (present: F bytes or NULL = all present; non-finite values
 * are skipped: count them with ad_dq_rejected). Returns the OR of the
 * flags of its values and of the stream's open conditions.
 */
int ad_dq_row(ad_dq *q, int64_t ts_ms, const double *values,
              const unsigned char *present);

/* n values of feature f (-1 = unknown) were rejected by the caller, now
 * (the monitor's clock: latest data time or advance). */
void ad_dq_rejected(ad_dq *q, int feature, uint64_t n);

/* REFUSED HOLE: the stream sent only what was refused (messages or values
 * refused whole, samples refused for their time) from its last sample
 * until one at ts_ms; call before that sample. The stream had nothing
 * usable of that time, as in a silence, yet no dropout was raised (the
 * device talked). Longer than the stream's dropout limit, the hole is
 * flagged as a silence that long would be: [last sample, ts_ms] (so the
 * rows held through it, made up, are flagged); no event. Returns 1 when
 * flagged, else 0 (shorter, nothing learned yet, dropout off or open). */
int ad_dq_refused_hole(ad_dq *q, int64_t ts_ms);

/*
 * `late` values (samples, or rows in ROWS mode) were dropped as late and
 * `accepted` accepted, at clock_ms: the stream's arrival (wall) time, or
 * without one a clock moved by the forward steps of the pushed timestamps
 * (see CHECKS, late). The clock never moves backwards. The event is dated
 * in data time (the monitor's clock).
 */
void ad_dq_late(ad_dq *q, uint64_t late, uint64_t accepted, int64_t clock_ms);

/*
 * The values a row counts in ad_dq_late's units: 1 in ROWS mode (the
 * default), the samples a row in the others. With it the monitor knows the
 * stream's usual cadence, which it measures in the ad_dq_late clock (the
 * values accepted over blocks of at least 32 values and half
 * reject_window_ms, while `late` is not raised): its usual row interval
 * u. Then the late window lasts max(reject_window_ms, 2 AD_DQ_LATE_ROWS u),
 * needs min(reject_count, the rows half of it holds at u, at least
 * AD_DQ_LATE_ROWS, times the values a row) values dropped as late, and a
 * window in which at least half the usual cadence was accepted never holds
 * the condition (CHECKS, late). Call it before ad_dq_late when it may have
 * changed; it is taken when a window opens.
 */
#define AD_DQ_LATE_ROWS 3
void ad_dq_late_per_row(ad_dq *q, double per_row);

/* The clock moved to now_ms (data time): dropout and drained rejected
 * buckets are checked. Never moves the clock backwards. */
void ad_dq_advance(ad_dq *q, int64_t now_ms);

/* 1 when a data-quality flag covered any data time in [from_ms, to_ms]
 * (within the last AD_DQ_SPANS spans), else 0. */
int ad_dq_flagged(const ad_dq *q, int64_t from_ms, int64_t to_ms);

/* Open conditions now (0 = data looks clean). */
int ad_dq_active(const ad_dq *q);

/* The AD_DQ_F_* bits of the conditions open now on feature f (-1: the
 * whole stream's: dropout, rejected values of unknown features, late);
 * 0 for any other f. */
unsigned ad_dq_open_flags(const ad_dq *q, int f);

/* Events raised since creation or the restored state (the last seq). */
uint64_t ad_dq_seq(const ad_dq *q);

/* The learned figures of feature f (all 0 when f is out of range). */
void ad_dq_get_learned(const ad_dq *q, int f, ad_dq_learned *out);
void ad_dq_get_stats(const ad_dq *q, ad_dq_stats *st);

/* Bytes held now (struct, per-feature state, learning buffers, key). */
size_t ad_dq_memory(const ad_dq *q);

const char *ad_dq_check_name(ad_dq_check c);   /* "stuck", "range", ... */

/*
 * Learned state as JSON text (malloc'd; NULL on OOM), see STATE FORMAT.
 */
char *ad_dq_save(const ad_dq *q);

/*
 * Restore a saved state: the feature count must match. Features saved as
 * learned are learned afterwards (their learning buffers are freed);
 * the others keep learning. Malformed text: AD_EFORMAT with a message
 * naming the JSON path; nothing is changed on any error.
 */
int ad_dq_restore(ad_dq *q, const char *json, char *err, size_t errlen);

/*
 * An event as JSON (new cJSON object; NULL on OOM):
 *   {"kind":"data_quality","id":..,"stream":..,"state":"raised"|"cleared",
 *    "check":"stuck"|"range"|"dropout"|"rejected"|"late","feature":name|null,
 *    "seq":n,"start":ms,"start_iso":"..Z","end":ms|null[,"end_iso"],
 *    "since":ms,"value":x,"count":n,
 *    range: "range":"learned"|"physical","lo":x,"hi":x;
 *    stuck: "limit_samples"|"limit_ms"; dropout: "limit_ms";
 *    rejected: "limit":n; late: "limit":n,"window_ms":ms}
 * names (F strings) may be NULL ("f<i>" is printed).
 */
cJSON *ad_dq_event_to_json(const ad_dq_event *ev, const char *stream,
                           const char *const *names);

#endif /* AD_QUALITY_H */
