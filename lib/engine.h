/*
 * engine.h - inference: the batched forward pass of an autoencoder and its
 * reconstruction error.
 *
 * Two implementations of the same math:
 *   - ad_engine_forward(): batched over B windows (time-major inside, in
 *     chunks of 16 windows so the working set stays in cache), a layer's
 *     input products for all time steps as one matrix product before the
 *     recurrent loop, fused bias and vectorised gate math; all workspace
 *     preallocated in ad_engine_new(). No allocation per call. Products use
 *     register-blocked AVX-512 kernels where the CPU has them and widths are
 *     multiples of 16 (measured ~2x OpenBLAS 0.3.21 on these shapes, whose
 *     Zen kernels are AVX2), and OpenBLAS (cblas_sgemm, cblas_sgemv at
 *     B == 1) everywhere else; tests run both paths.
 *   - ad_forward_ref(): plain scalar loops with libm expf/tanhf, no BLAS.
 *     Slow and obvious; tests compare the two.
 *
 * Layouts: windows are row-major (B, T, F) floats, already scaled
 * (ad_model_scale). The output has the same layout: the reconstruction.
 *
 * Thread safety: an engine is used by one thread at a time. Several engines
 * may share one (read-only) model. The model is borrowed and must outlive
 * the engine.
 */
#ifndef AD_ENGINE_H
#define AD_ENGINE_H

#include <stddef.h>
#include "model.h"

typedef struct ad_engine ad_engine;

/* Workspace for batches of up to max_batch windows. NULL on OOM/bad args. */
ad_engine *ad_engine_new(const ad_model *m, int max_batch);
void ad_engine_free(ad_engine *e);   /* NULL-safe */
int ad_engine_max_batch(const ad_engine *e);

/* in (B,T,F) -> out (B,T,F); 1 <= B <= max_batch. Returns 0 or AD_EINVAL. */
int ad_engine_forward(ad_engine *e, const float *in, float *out, int B);

/* Scalar reference forward pass; allocates its own scratch. */
int ad_forward_ref(const ad_model *m, const float *in, float *out, int B);

/* Floating point operations of one window's forward pass (for benchmarks). */
double ad_model_flops(const ad_model *m);

/* A window's score: the mean squared or absolute error of its T x F
 * elements, or (peak) the largest over its rows of a row's mean absolute
 * error, so that one bad row is not diluted T-fold. */
typedef enum { AD_METRIC_MSE = 0, AD_METRIC_MAE = 1, AD_METRIC_PEAK = 2 } ad_metric;

/*
 * Reconstruction error of one window, x and y (T,F): mse and mae (either
 * pointer may be NULL), and if share != NULL the per-feature share (F floats,
 * summing to 1, or all 0 when the error is 0) of the error under `metric`
 * (mse or mae; peak gives the mae shares): which sensor contributed most.
 * A window's score is ad_recon_score's.
 */
void ad_recon_error(const float *x, const float *y, int T, int F,
                    ad_metric metric, float *mse, float *mae, float *share);

/* The window's score under `metric` (see ad_metric), and if share != NULL
 * the per-feature share of it (for peak: of the worst row's error). NaN
 * anywhere in x or y gives NaN. */
float ad_recon_score(const float *x, const float *y, int T, int F,
                     ad_metric metric, float *share);

/*
 * Per-feature normalised score (detector score.normalize "feature",
 * "feature_rms"): from a window's score under its metric and its shares
 * (ad_recon_score), each feature's error e_f = score x share[f] x F (mse,
 * mae: the feature's mean error over the window; peak: its error in the
 * worst row) divided by scale[f] (> 0), and the largest of those ratios
 * returned (rms 0), or their root mean square (rms 1). nshare (may be
 * NULL) receives the ratios' shares (summing to 1, all 0 when every ratio
 * is 0): which feature set the score. NaN when the score or a share is.
 */
double ad_recon_normalize(double score, const float *share, const double *scale, int F,
                          int rms, float *nshare);

/*
 * The per-feature scales of ad_recon_normalize from n windows' per-feature
 * errors (row i, F floats, at e + ((head + i) % cap) * F: a ring of cap
 * rows, or head 0 and cap n for a plain array): each feature's median,
 * floored at AD_RECON_NORM_FLOOR x the median over features of those
 * medians, and at 1e-12. 0, AD_ERANGE (n == 0) or AD_ENOMEM.
 */
#define AD_RECON_NORM_FLOOR 0.1
int ad_recon_scales(const float *e, size_t cap, size_t head, size_t n, int F, double *scale);

/* Vectorised elementwise math used by the engine (exported for tests and
 * the trainer). Accurate to a few ulp; NaN in -> NaN out. n any size. */
void ad_vsigmoid(float *x, size_t n);
void ad_vtanh(float *x, size_t n);
void ad_vrelu(float *x, size_t n);
void ad_vexp(float *x, size_t n);

#endif /* AD_ENGINE_H */
