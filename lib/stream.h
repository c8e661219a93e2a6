/*
 * stream.h - row assembly for one monitored unit (a device, a "stream"):
 * turns samples that arrive one feature at a time, or whole rows, into a
 * clean sequence of rows of F values with strictly increasing timestamps,
 * in EVENT TIME (the samples' own timestamps), never in arrival order.
 *
 * Input validation happens here, once, for every caller (daemon, replay,
 * tests): NaN/Inf and non-numeric values are rejected and counted and never
 * reach a row; duplicate, late and future timestamps are dropped and counted.
 *
 * EVENT TIME. The stream keeps the newest accepted timestamp (max_ts) and a
 * watermark wm = max_ts - max_lateness_ms. Data older than the watermark may
 * still arrive and is put in its place; a row is only emitted once the
 * watermark has passed it, so rows come out in timestamp order. A sample
 * whose row has already been emitted is LATE: dropped, counted in `ooo`
 * (PERIOD mode: unless it is newer than the value its feature holds; then
 * it is held for the next row, counted in `late_held`). A COPY is not
 * late: in PERIOD/ALL a sample with the time and value of one of the last
 * AD_STREAM_COPIES taken of its feature is refused as a dup (dup_copies),
 * whether its row is out, being built or the sample still waits; in ROWS
 * a row with the last row's time and values. Nor is, in PERIOD/ALL, one
 * at the time of its feature's newest sample with another value, its row
 * out: a dup (a device clock that stopped), as a row at the last row's time
 * in ROWS. In PERIOD a sample at or
 * before the value its feature holds in the row being built is never
 * applied over it: at that time a dup, older superseded (taken, unused).
 * With max_lateness_ms = 0 (default) rows come out as soon as newer data
 * shows they are complete, as before.
 *   Arrival clock. The caller may tell the stream the arrival (wall) time of
 *   what it pushes next (ad_stream_arrival). Then (1) a timestamp more than
 *   max_future_ms ahead of its arrival is rejected (counted in `future`) and
 *   never moves max_ts or the watermark, so one sample stamped in the year
 *   33658 cannot make every later sample late; (2) ad_stream_advance(now)
 *   estimates the stream's data time as max_ts + (now - A), A the arrival
 *   of the last sample or row it took, i.e. it advances in the device's
 *   own clock: a device clock behind the daemon or historic timestamps
 *   lose nothing. What it refused (a message refused whole, a value, a
 *   time ahead, late or repeated) does not move A: a device that sends
 *   only that never holds back the rows waiting behind the watermark.
 *   Yet in PERIOD mode, while its last message was refused, no grid row
 *   after the one holding max_ts is filled from A: those rows would hold
 *   its last values across a time it sent nothing usable, unseen by the
 *   data-quality monitor (whose clock runs from the last arrival: no
 *   dropout while it talks); they come as the time since the last
 *   arrival passes them, as when the device is silent.
 *   Without an arrival clock (replay, tests) advance(now) takes now as
 *   data time.
 *   Resumed. A stream created for a restored state is told the time of
 *   the last row of the stream it continues (ad_stream_resume): rows and
 *   samples at or before it are refused (dup / ooo) as they would have
 *   been without the restore.
 *   Gaps. When two consecutive rows are more than max_gap_ms apart, and
 *   (ROWS and ALL modes) more than max_gap_intervals times the stream's
 *   usual row interval (the median of its last AD_STREAM_IV intervals), the
 *   later one carries AD_ROW_GAP (the window ring restarts instead of
 *   windowing across the hole; counted in `gaps`). The relative part keeps
 *   a stream sampled every hour or day, or one missing a sample now and
 *   then, windowing: an absolute hour alone restarts such a stream's
 *   windows at every missed sample, or at every row. PERIOD mode then skips the empty
 *   grid rows of the hole (counted in gap_rows) instead of holding values
 *   across it.
 *
 * ASSEMBLY MODES (ad_stream_cfg.mode)
 *   AD_ASM_ROWS    whole rows arrive (ad_stream_push_row). With no lateness
 *                  each accepted row is emitted at once and a row whose
 *                  timestamp is <= the last one is dropped (dup / ooo); with
 *                  max_lateness_ms > 0 rows are reordered in a small buffer
 *                  (AD_STREAM_REORDER rows) and emitted behind the watermark.
 *   AD_ASM_PERIOD  samples arrive per feature; rows are emitted on a fixed
 *                  time grid g = k * period_ms (absolute, so two runs over
 *                  the same data agree). Row g carries the latest value of
 *                  each feature with timestamp <= g (sample-and-hold). Row g
 *                  is emitted once the watermark is past g, or when
 *                  ad_stream_advance() moves data time past it (the daemon
 *                  calls it from a timer so rows keep coming while a device
 *                  is briefly silent; never across a gap longer than
 *                  max_gap_ms). A silence longer than AD_STREAM_HELD_RUN
 *                  periods emits only its last AD_STREAM_HELD_RUN rows
 *                  (the skipped ones are counted in gap_rows).
 *   AD_ASM_ALL     samples arrive per feature and are ALIGNED BY TIMESTAMP:
 *                  a sample joins the open row whose first timestamp is
 *                  nearest to its own, within align_ms, and which lacks its
 *                  feature (else it opens a new row). A row is emitted when
 *                  every feature is in it (oldest first), or, incomplete,
 *                  once the watermark is more than align_ms past its first
 *                  sample (counted in `unaligned`; missing features follow
 *                  the missing policy). Its timestamp is that of its newest
 *                  sample. A feature reporting one row late is therefore
 *                  joined with its own row, never with the next one.
 *   ad_stream_push_row() works in every mode (in PERIOD/ALL it is split into
 *   samples with the row's timestamp); ad_stream_push_sample() is refused
 *   (AD_EINVAL) in ROWS mode.
 *
 * MISSING VALUES. At emission, feature f is missing when it has never been
 * seen, when its row value was rejected (NaN/Inf/non-numeric, ROWS mode) or
 * absent from its ALL row, or when max_age_ms > 0 and
 * row_ts - last_sample_ts(f) > max_age_ms.
 *   AD_MISS_HOLD     a missing feature keeps its last good value for at most
 *                    hold_limit consecutive rows (0: no limit); beyond that, or
 *                    when there is no last value, the row is invalid.
 *   AD_MISS_INVALID  any missing feature makes the row invalid.
 * Invalid rows are still emitted (valid = 0) so the window logic can mark
 * the windows that contain them invalid (not scored, counted).
 *
 * THE ROW QUEUE. Emitted rows wait in a queue of AD_STREAM_QUEUE rows
 * until the caller pops them. One push or tick can complete more rows than
 * that (a PERIOD watermark moving past many grid rows with lateness); then
 * the rest are held back, not lost: they stay in the mode's buffer and come
 * out as the caller pops (every pop makes room for the next). The next push
 * or tick first emits whatever still waits, making room by dropping the
 * oldest queued rows (counted in `overflow`): a caller that pops every row
 * after each push or tick (ad_stream_pop_row until it returns 0) loses
 * nothing, whatever a message holds. Only emissions that cannot wait take
 * the oldest queued row's place in a full queue: into a queue the caller
 * left full, a ROWS row pushed without lateness, the oldest row of a full
 * reorder buffer and the oldest open ALL row making room for a new one;
 * and, even with every row popped, a full PERIOD pending list (more than
 * about 1000 periods of lateness), whose oldest cell goes out at once with
 * up to AD_STREAM_HELD_RUN held rows before it: one row more than the
 * queue holds is lost then.
 *
 * PRECISION. Values stay in double precision until the model's scaler has
 * centred them (ad_stream_pop_row_d), so a pressure of 101325 +- 2 Pa or a
 * mean of 1e6 with std 0.01 keeps its variation.
 *
 * Memory per stream is O(F * (AD_STREAM_QUEUE + pending)), fixed at
 * creation: the row queue (AD_STREAM_QUEUE rows of F doubles), plus in
 * PERIOD/ALL the pending samples or open rows sized from F and the
 * lateness, plus in ROWS with lateness AD_STREAM_REORDER rows, plus in
 * PERIOD/ALL AD_STREAM_COPIES samples (16 bytes each) of each feature.
 * Thread safety: one stream is used by one thread at a time.
 */
#ifndef AD_STREAM_H
#define AD_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* Rows queued inside a stream until the caller pops them (THE ROW QUEUE). */
#define AD_STREAM_QUEUE 64
/* PERIOD: held rows emitted for one silence at most (the last ones). */
#define AD_STREAM_HELD_RUN 64
/* ROWS mode with lateness: rows held for reordering. */
#define AD_STREAM_REORDER 16
/* ALL mode: rows open for alignment at once. */
#define AD_STREAM_OPEN 8
/* PERIOD/ALL: the samples remembered of each feature (its last ones
 * taken), to tell a copy of one from a late sample once its row is out. */
#define AD_STREAM_COPIES 4
/* Row intervals kept for the usual interval (median) of a stream. */
#define AD_STREAM_IV 31

/* Row flags (ad_stream_pop_row_d). */
#define AD_ROW_VALID 1u     /* no missing value (after the missing policy) */
#define AD_ROW_GAP   2u     /* more than max_gap_ms after the previous row */

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
    int64_t max_lateness_ms;  /* event time: allowed lateness (default 0) */
    int64_t max_future_ms;    /* reject ts > arrival + this; 0 = no check
                               * (default 600000; needs ad_stream_arrival) */
    int64_t max_gap_ms;       /* rows further apart restart the windows;
                               * 0 = never (default 3600000) */
    double max_gap_intervals; /* ROWS/ALL: ... and further apart than this
                               * many usual intervals; 0 = max_gap_ms
                               * alone (default 5) */
    int64_t align_ms;         /* ALL: alignment tolerance (default 500) */
} ad_stream_cfg;

/* Counters (monotonic since creation). A value is one feature's value at
 * one time (a sample); a JSON row of 5 features pushed whole carries 5.
 * dup, ooo and future count refusals for a time: one per row in ROWS mode
 * (a whole row is refused), one per sample in PERIOD and ALL; their
 * *_values count the values those refusals carried (equal to them in
 * PERIOD and ALL), so values pushed = samples + the refused values
 * (ad_stream_values_refused). Counters named rows_, gap_rows, gaps,
 * unaligned and overflow count rows. */
typedef struct ad_stream_stats {
    uint64_t samples;         /* values accepted */
    uint64_t rows;            /* rows emitted (valid + invalid) */
    uint64_t rows_invalid;    /* rows emitted with valid = 0 */
    uint64_t values_held;     /* missing values filled by the HOLD policy */
    uint64_t dup;             /* dropped: timestamp equal to the previous */
    uint64_t ooo;             /* dropped: late (its row was already out) */
    uint64_t future;          /* rejected: more than max_future_ms ahead */
    uint64_t dup_values;      /* values of the dup refusals */
    uint64_t ooo_values;      /* values of the ooo refusals */
    uint64_t future_values;   /* values of the future refusals */
    uint64_t unaligned;       /* ALL: rows emitted incomplete */
    uint64_t gaps;            /* rows flagged AD_ROW_GAP */
    uint64_t nonfinite;       /* rejected values: NaN or +-Inf */
    uint64_t nonnumeric;      /* rejected values: text that is not a number */
    uint64_t bad_feature;     /* rejected values: feature index out of range */
    uint64_t gap_rows;        /* PERIOD: grid rows skipped in a long gap */
    uint64_t overflow;        /* rows dropped because the queue was full
                               * (assembled rows, not refused values): the
                               * caller pushed again before popping every
                               * row, or a full buffer (THE ROW QUEUE) */
    uint64_t late_held;       /* PERIOD: late for its row, held for the next */
    uint64_t late_held_max_ms; /* PERIOD: the most such a sample was behind its row */
    uint64_t malformed;       /* messages refused whole by the caller (no
                               * value: not in ad_stream_values_refused) */
    uint64_t dup_copies;      /* of the dup refusals, exact copies: the
                               * values the stream holds for that time, the
                               * same (a message delivered twice: two
                               * subscriptions, redundant gateways; PERIOD/
                               * ALL: of a sample it took lately, its row
                               * out or not); the others carry other values
                               * (a device clock that stopped) */
    uint64_t dup_copy_values; /* values of the dup_copies refusals */
} ad_stream_stats;

/* Values row assembly refused: dup_values + ooo_values + future_values +
 * nonfinite + nonnumeric + bad_feature (overflow counts rows: not in it). */
uint64_t ad_stream_values_refused(const ad_stream_stats *st);

typedef struct ad_stream ad_stream;

/* Defaults: ROWS mode, period 1000 ms, max age 0, HOLD, hold_limit 0,
 * lateness 0, future 600000, gap 3600000, align 500. */
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
 * A value of `feature` its caller refused before pushing it, in any mode (a
 * message's field whose text is not a number, nonnumeric = 1, or whose
 * number is not finite, nonnumeric = 0): counted as ad_stream_push_text or
 * ad_stream_push_sample would count it (nonnumeric, nonfinite; bad_feature
 * for an index out of range), nothing else changes: the rows assembled
 * without it have the feature missing (ad_miss_policy). Returns 1
 * (rejected).
 */
int ad_stream_refuse(ad_stream *s, int feature, int nonnumeric);

/*
 * A message of this stream its caller refused whole (malformed, or naming no
 * feature of the stream): counted in malformed, nothing else changes.
 * Returns 1 (rejected).
 */
int ad_stream_refuse_message(ad_stream *s);

/*
 * A whole row of F values (any mode). present (F bytes) may be NULL (all
 * present); a non-present or non-finite value is missing for this row.
 * Returns 0 when accepted, 1 when the whole row was dropped (dup/ooo).
 */
int ad_stream_push_row(ad_stream *s, int64_t ts_ms, const double *values,
                       const unsigned char *present);

/*
 * Arrival (wall-clock) time of what is pushed next: enables the future
 * check and makes ad_stream_advance() advance in the stream's own clock
 * (see EVENT TIME). Call it before the pushes of each message.
 */
void ad_stream_arrival(ad_stream *s, int64_t now_ms);

/*
 * Timer tick at wall time now_ms: data time moves on to the estimate of
 * EVENT TIME; PERIOD emits the grid rows before it (not across a gap), ALL
 * and ROWS emit the rows the watermark has passed (held for lateness or
 * alignment). Rows come out only behind max_lateness_ms.
 */
void ad_stream_advance(ad_stream *s, int64_t now_ms);

/*
 * Pop the oldest queued row: copies F floats into values (caller's buffer),
 * sets *ts_ms and *valid. Returns 1 when a row was popped, 0 when none.
 * Missing features of an invalid row are written as NaN. A row held back
 * by a full queue is emitted into the room the pop made (THE ROW QUEUE):
 * pop until 0 to take every row.
 */
int ad_stream_pop_row(ad_stream *s, float *values, int64_t *ts_ms, int *valid);

/* The same in double precision, with the row's AD_ROW_* flags. */
int ad_stream_pop_row_d(ad_stream *s, double *values, int64_t *ts_ms,
                        unsigned *flags);

/* Number of queued rows (more may be held back behind a full queue: they
 * come out as these are popped). */
int ad_stream_pending(const ad_stream *s);

int ad_stream_n_features(const ad_stream *s);

/* The usual row interval (ms): the median of the last AD_STREAM_IV
 * intervals between emitted rows (the lower one of an even count); before
 * the first, the hint (a restored window's spacing; 0: none). 0 when
 * unknown. */
int64_t ad_stream_usual_interval(const ad_stream *s);
void ad_stream_hint_interval(ad_stream *s, int64_t ms);

/*
 * This stream continues one whose last row was at last_ts (a restored
 * state: a restart, a reload's rebuild, a hand-over). What arrives at or
 * before that time is refused as that stream would have refused it: a
 * whole row at last_ts is a dup, one before it ooo (ROWS); a sample at or
 * before it is ooo (ALL, PERIOD: its feature held a value at least that
 * new then, so it is not held for the next row either). A copy delivered
 * again after the restore (MQTT QoS 1, a Kafka re-read) thus costs
 * nothing. Rows and samples after last_ts are taken as by a new stream
 * (no gap is judged against last_ts: the caller continues its windows
 * itself). Only moves forward: an earlier last_ts than one given before,
 * or than the rows emitted since, changes nothing.
 */
void ad_stream_resume(ad_stream *s, int64_t last_ts);
/*
 * ROWS mode: the values of that last row (present[f] 0: the row lacked
 * feature f), given after ad_stream_resume(s, ts) and before any row: the
 * row delivered again at ts is then told a copy (dup_copies) or not as
 * the stream that was not interrupted tells it; without them it counts as
 * a dup with other values. Ignored in other modes or for another time.
 */
void ad_stream_resume_row(ad_stream *s, int64_t ts, const double *values,
                          const unsigned char *present);
/*
 * ROWS mode: the last row emitted (its time, its values as pushed, present
 * 0 for a feature it lacked: NAN then), for a save that ad_stream_resume_row
 * gives back. Returns 0 when there is none (or another mode).
 */
int ad_stream_last_row(const ad_stream *s, int64_t *ts, double *values, unsigned char *present);
/*
 * PERIOD/ALL: the newest sample taken of feature f at or before the last
 * row emitted (its time and value), for a save that
 * ad_stream_resume_sample gives back. Returns 0 when there is none (or
 * another mode, or f out of range).
 */
int ad_stream_last_sample(const ad_stream *s, int f, int64_t *ts, double *v);
/*
 * PERIOD/ALL: that sample of feature f, given after ad_stream_resume(s, t)
 * (ts <= t) and before any sample: the same sample delivered again (a
 * retained message at the resubscription, a QoS 1 redelivery) is then
 * told a copy (dup_copies) as the stream that was not interrupted tells
 * it; without it, it counts as late (ooo). Ignored otherwise.
 */
void ad_stream_resume_sample(ad_stream *s, int f, int64_t ts, double v);
void ad_stream_get_stats(const ad_stream *s, ad_stream_stats *st);

const char *ad_asm_mode_name(ad_asm_mode m);
int ad_asm_mode_from_name(const char *s);          /* -1 when unknown */
const char *ad_miss_policy_name(ad_miss_policy p);
int ad_miss_policy_from_name(const char *s);       /* -1 when unknown */

#endif /* AD_STREAM_H */
