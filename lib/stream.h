/*
 * stream.h - row assembly for one monitored unit (a device, a "stream"):
 * turns samples that arrive one feature at a time, or whole rows, into a
 * clean sequence of rows of F values with strictly increasing timestamps.
 *
 * Input validation happens here, once, for every caller (daemon, replay,
 * tests): NaN/Inf and non-numeric values are rejected and counted and never
 * reach a row; duplicate and out-of-order timestamps are dropped and counted.
 *
 * ASSEMBLY MODES (ad_stream_cfg.mode)
 *   AD_ASM_ROWS    whole rows arrive (ad_stream_push_row); each accepted row
 *                  is emitted at once. A row whose timestamp is <= the last
 *                  accepted row's is dropped (dup / ooo).
 *   AD_ASM_PERIOD  samples arrive per feature; rows are emitted on a fixed
 *                  time grid g = k * period_ms (absolute, so two runs over
 *                  the same data agree). Row g carries the latest value of
 *                  each feature with timestamp <= g (sample-and-hold). Row g
 *                  is emitted as soon as a sample with timestamp > g arrives,
 *                  or when the caller calls ad_stream_advance(now) with
 *                  now > g (the daemon does so from a timer so rows keep
 *                  coming when a device goes silent). A sample with
 *                  timestamp <= the last emitted row time is too late: dropped
 *                  (counted as ooo). A gap longer than AD_STREAM_QUEUE
 *                  periods emits only the last AD_STREAM_QUEUE rows (the
 *                  skipped ones are counted in gap_rows).
 *   AD_ASM_ALL     samples arrive per feature; a row is emitted when every
 *                  feature has reported at least once since the last row;
 *                  its timestamp is that of the completing sample. A newer
 *                  sample of a feature replaces an older one not yet emitted.
 *   In PERIOD and ALL modes, per feature, a sample whose timestamp is <= the
 *   previous accepted sample of that feature is dropped (dup / ooo).
 *   ad_stream_push_row() works in every mode (in PERIOD/ALL it is split into
 *   samples with the row's timestamp); ad_stream_push_sample() is refused
 *   (AD_EINVAL) in ROWS mode.
 *
 * MISSING VALUES. At emission, feature f is missing when it has never been
 * seen, when its row value was rejected (NaN/Inf/non-numeric, ROWS mode), or
 * when max_age_ms > 0 and row_ts - last_sample_ts(f) > max_age_ms.
 *   AD_MISS_HOLD     a missing feature keeps its last good value for at most
 *                    hold_limit consecutive rows (0: no limit); beyond that, or
 *                    when there is no last value, the row is invalid.
 *   AD_MISS_INVALID  any missing feature makes the row invalid.
 * Invalid rows are still emitted (valid = 0) so the window logic can mark
 * the windows that contain them invalid (not scored, counted).
 *
 * Memory per stream is O(F + AD_STREAM_QUEUE * F), fixed at creation.
 * Thread safety: one stream is used by one thread at a time.
 */
#ifndef AD_STREAM_H
#define AD_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* Rows queued inside a stream until the caller pops them. */
#define AD_STREAM_QUEUE 64

typedef enum {
    AD_ASM_ROWS = 0,
    AD_ASM_PERIOD,
    AD_ASM_ALL
} ad_asm_mode;

typedef enum {
    AD_MISS_HOLD = 0,
    AD_MISS_INVALID
} ad_miss_policy;

/* Plain settings, shared by all streams of a detector. */
typedef struct ad_stream_cfg {
    ad_asm_mode mode;
    int64_t period_ms;        /* PERIOD: grid step, > 0 (default 1000) */
    int64_t max_age_ms;       /* a value older than this is missing; 0 = never */
    ad_miss_policy missing;   /* default AD_MISS_HOLD */
    int hold_limit;           /* HOLD: max consecutive held rows; 0 = no limit */
} ad_stream_cfg;

/* Counters (monotonic since creation). */
typedef struct ad_stream_stats {
    uint64_t samples;         /* values accepted */
    uint64_t rows;            /* rows emitted (valid + invalid) */
    uint64_t rows_invalid;    /* rows emitted with valid = 0 */
    uint64_t values_held;     /* missing values filled by the HOLD policy */
    uint64_t dup;             /* dropped: timestamp equal to the previous */
    uint64_t ooo;             /* dropped: timestamp older than the previous */
    uint64_t nonfinite;       /* rejected: NaN or +-Inf */
    uint64_t nonnumeric;      /* rejected: text that is not a number */
    uint64_t bad_feature;     /* rejected: feature index out of range */
    uint64_t gap_rows;        /* PERIOD: grid rows skipped in a long gap */
    uint64_t overflow;        /* rows dropped because the queue was full */
} ad_stream_stats;

typedef struct ad_stream ad_stream;

/* Defaults: ROWS mode, period 1000 ms, max age 0, HOLD, hold_limit 0. */
void ad_stream_cfg_default(ad_stream_cfg *c);

/* Validate settings; message names the field. */
int ad_stream_cfg_check(const ad_stream_cfg *c, char *err, size_t errlen);

/*
 * New stream of F features (1..AD_MAX_FEATURES). The settings are copied.
 * Returns 0 and *out, AD_EINVAL (message in err) or AD_ENOMEM.
 */
int ad_stream_new(ad_stream **out, const ad_stream_cfg *cfg, int n_features,
                  char *err, size_t errlen);
void ad_stream_free(ad_stream *s);     /* NULL-safe */

/*
 * One sample (PERIOD/ALL modes). `feature` is the 0-based index (the caller
 * maps names). Returns 0 when accepted, 1 when rejected or dropped (counted
 * in stats; not an error: bad data never fails the caller), AD_EINVAL in
 * ROWS mode. Completed rows are queued; read them with ad_stream_pop_row().
 */
int ad_stream_push_sample(ad_stream *s, int64_t ts_ms, int feature, double value);

/*
 * The same for a value still in text form (MQTT payload, CSV cell): parsed
 * strictly (whole string, leading/trailing blanks allowed); non-numeric text
 * is counted as nonnumeric and rejected.
 */
int ad_stream_push_text(ad_stream *s, int64_t ts_ms, int feature, const char *text);

/*
 * A whole row of F values (any mode). present (F bytes) may be NULL (all
 * present); a non-present or non-finite value is missing for this row.
 * Returns 0 when accepted, 1 when the whole row was dropped (dup/ooo).
 */
int ad_stream_push_row(ad_stream *s, int64_t ts_ms, const double *values,
                       const unsigned char *present);

/* PERIOD mode: emit the grid rows g < now_ms not emitted yet (timer tick).
 * No-op in other modes. */
void ad_stream_advance(ad_stream *s, int64_t now_ms);

/*
 * Pop the oldest queued row: copies F floats into values (caller's buffer),
 * sets *ts_ms and *valid. Returns 1 when a row was popped, 0 when none.
 * Missing features of an invalid row are written as NaN.
 */
int ad_stream_pop_row(ad_stream *s, float *values, int64_t *ts_ms, int *valid);

/* Number of queued rows. */
int ad_stream_pending(const ad_stream *s);

int ad_stream_n_features(const ad_stream *s);
void ad_stream_get_stats(const ad_stream *s, ad_stream_stats *st);

const char *ad_asm_mode_name(ad_asm_mode m);
int ad_asm_mode_from_name(const char *s);          /* -1 when unknown */
const char *ad_miss_policy_name(ad_miss_policy p);
int ad_miss_policy_from_name(const char *s);       /* -1 when unknown */

#endif /* AD_STREAM_H */
