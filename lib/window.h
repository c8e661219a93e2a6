/*
 * window.h - the per-stream ring buffer of the last T rows and the hop that
 * decides when a window of shape (T, F) is due for scoring.
 *
 * Rows are stored raw (unscaled), oldest overwritten: memory is T*F floats
 * per stream, fixed at creation. Scaling happens at extraction with the
 * model's scaler (ad_model_scale), so a model swap (finetune, bootstrap)
 * needs no re-buffering.
 *
 * Hop: the first window is due when T rows have been pushed; after that one
 * window every `hop` rows (hop 1 = every row, hop T = non-overlapping).
 * Invalid rows (see stream.h) are stored too; a window that contains at least
 * one invalid row is "invalid": the detector does not score it (counts it).
 * ad_window_reset() forgets the rows (used after a long gap, or tests).
 *
 * Thread safety: one window buffer is used by one thread at a time.
 */
#ifndef AD_WINDOW_H
#define AD_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct ad_window ad_window;

/* T (1..AD_MAX_WINDOW) rows of F (1..AD_MAX_FEATURES) values, hop >= 1.
 * Returns 0 and *out, AD_EINVAL or AD_ENOMEM. */
int ad_window_new(ad_window **out, int T, int F, int hop);
void ad_window_free(ad_window *w);     /* NULL-safe */

/*
 * Append one row (F raw floats, copied) with its timestamp and validity.
 * Returns 1 when a window is due after this row (ring full and hop reached),
 * else 0.
 */
int ad_window_push(ad_window *w, int64_t ts_ms, const float *row, int valid);

/* Number of invalid rows among the T rows currently held. */
int ad_window_invalid(const ad_window *w);

/* Rows currently held (<= T) and rows pushed since creation/reset. */
int ad_window_fill(const ad_window *w);
uint64_t ad_window_pushed(const ad_window *w);

/*
 * Copy the current window into out (T*F floats, row-major (T,F), oldest row
 * first), scaled with m's scaler when m != NULL (raw when NULL). Requires a
 * full ring (returns AD_EINVAL otherwise). *first_ts and *last_ts (may be NULL)
 * receive the timestamps of the oldest and newest row.
 */
int ad_window_extract(const ad_window *w, const ad_model *m, float *out,
                      int64_t *first_ts, int64_t *last_ts);

/* Forget all rows (fill 0, hop counter restarts). */
void ad_window_reset(ad_window *w);

int ad_window_T(const ad_window *w);
int ad_window_F(const ad_window *w);

#endif /* AD_WINDOW_H */
