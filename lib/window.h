/*
 * window.h - the per-stream ring buffer of the last T rows and the hop that
 * decides when a window of shape (T, F) is due for scoring.
 *
 * Rows are stored raw (unscaled), oldest overwritten, and, when a model is
 * remembered (ad_window_set_model, or the last model passed to
 * ad_window_extract), also already scaled with that model's scaler: each
 * row is scaled once at push (ad_model_scale on that row, so the values are
 * bit-identical to scaling the extracted raw window), and extracting a
 * window for the remembered model is a plain copy. A model swap (finetune,
 * bootstrap, reload) rescales the held raw rows once; no re-buffering.
 * Raw rows are kept in double precision; scaled rows in float. Memory is
 * T*F doubles + 2*T*F floats + 10*T bytes per stream, one block fixed at
 * creation.
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

/* The same from double-precision raw values (kept in double until scaled).
 * A value whose scaled magnitude exceeds AD_SCALED_MAX makes its row
 * invalid (counted in ad_window_absurd). */
int ad_window_push_d(ad_window *w, int64_t ts_ms, const double *row, int valid);

/* Values rejected because their scaled magnitude was absurd. */
uint64_t ad_window_absurd(const ad_window *w);

/* Number of invalid rows among the T rows currently held. */
int ad_window_invalid(const ad_window *w);

/* Rows currently held (<= T) and rows pushed since creation/reset. */
int ad_window_fill(const ad_window *w);
uint64_t ad_window_pushed(const ad_window *w);

/*
 * Remember m (borrowed; NULL forgets) as the model whose scaler the rows are
 * kept scaled for, and rescale the rows held now from their raw values.
 * Later pushes scale their row for m. Call it whenever the model changes,
 * even for an object at the same address (it always rescales). m must stay
 * alive and unchanged (a loaded ad_model is immutable) while remembered.
 * Returns 0, or AD_EINVAL when m has a different feature count (nothing
 * changed then).
 */
int ad_window_set_model(ad_window *w, const ad_model *m);

/* The remembered model, or NULL. */
const ad_model *ad_window_model(const ad_window *w);

/*
 * Copy the current window into out (T*F floats, row-major (T,F), oldest row
 * first), scaled with m's scaler when m != NULL (raw when NULL). When m is
 * not the remembered model it becomes the remembered one first (held rows
 * rescaled once, as ad_window_set_model), so alternate models cost a rescale
 * each time. Requires a full ring and, for m != NULL, m's feature count
 * equal to F (returns AD_EINVAL otherwise). *first_ts and *last_ts (may be
 * NULL) receive the timestamps of the oldest and newest row.
 */
int ad_window_extract(ad_window *w, const ad_model *m, float *out,
                      int64_t *first_ts, int64_t *last_ts);

/* Forget all rows (fill 0, hop counter restarts); the model is kept. */
void ad_window_reset(ad_window *w);

/*
 * The held rows, for handing a stream over (detector save/restore):
 * ad_window_row gives row i (0 = oldest, < fill) as pushed: its timestamp,
 * raw values (F, borrowed) and validity. ad_window_since is the hop counter
 * (rows since the last due window). ad_window_resume, on a window just
 * refilled with those rows (ad_window_reset, then ad_window_push_d of each),
 * sets the counters back to what they were, so the next windows are due on
 * the same rows as they would have been without the hand-over.
 */
int ad_window_row(const ad_window *w, int i, int64_t *ts_ms, const double **row, int *valid);
int ad_window_since(const ad_window *w);
void ad_window_resume(ad_window *w, uint64_t pushed, int since);

int ad_window_T(const ad_window *w);
int ad_window_F(const ad_window *w);

#endif /* AD_WINDOW_H */
