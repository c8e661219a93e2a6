/*
 * train.h - training an autoencoder in C: Keras-style initialisation, a
 * training forward pass that caches what the backward pass needs,
 * backpropagation through time for every layer the engine runs, MSE / MAE
 * reconstruction losses, Adam (optionally decoupled weight decay, AdamW),
 * global gradient-norm clipping, mini-batches, a time-ordered validation
 * split and early stopping, and the distribution of reconstruction errors a
 * model makes on its training data.
 *
 * The target of every window is the window itself (autoencoder): windows are
 * row-major (N, T, F) floats, already scaled (ad_model_scale), with T and F
 * the model's window and n_features.
 *
 * Layers: lstm (tanh or relu cell activation, with or without
 * return_sequences), repeat_vector, time_distributed_dense, flatten, dense,
 * with the semantics and weight layout of model.h. Gradients use the same
 * layout as m->params: one float per parameter, layer by layer, kernel,
 * recurrent kernel, bias.
 *
 * Losses (y = reconstruction, x = input, over all B*T*F elements of a batch):
 *   MSE = mean((y - x)^2)      MAE = mean(|y - x|)    (d|u|/du at 0 is 0)
 *
 * Adam as in PyTorch (torch.optim.Adam / AdamW with the same settings):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= wd * lr * p   (only when weight_decay > 0; decoupled, AdamW)
 *   p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * Clipping as torch.nn.utils.clip_grad_norm_: when clip_norm > 0 and the
 * global L2 norm n of all gradients exceeds it, every gradient is scaled by
 * clip_norm / (n + 1e-6).
 *
 * Determinism: everything random (initial weights, shuffling) comes from a
 * small PRNG (splitmix64) seeded by the caller; the same seed, data and options
 * give the same weights bit for bit on the same machine and BLAS.
 *
 * Threads: no globals. A trainer (and ad_train_fit) may run on any thread;
 * one trainer is used by one thread at a time. The model is borrowed and
 * modified in place (its params); nothing else of the model is touched.
 * Cancellation: pass a pointer to an int another thread sets to non-zero;
 * it is polled between mini-batches.
 */
#ifndef AD_TRAIN_H
#define AD_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "engine.h"   /* ad_metric */

typedef enum { AD_LOSS_MSE = 0, AD_LOSS_MAE = 1 } ad_loss;

typedef struct ad_train_opts {
    ad_loss loss;           /* default AD_LOSS_MSE */
    int batch_size;         /* windows per mini-batch; default 32 */
    int epochs;             /* maximum epochs; default 50 */
    float lr;               /* default 1e-3 */
    float beta1, beta2;     /* default 0.9, 0.999 */
    float eps;              /* default 1e-8 */
    float weight_decay;     /* decoupled (AdamW); default 0 = plain Adam */
    float clip_norm;        /* global grad-norm clip; default 1.0; 0 = off */
    float val_frac;         /* last fraction of the windows (time order)
                             * held out for validation; default 0.1; 0 = none */
    int val_gap;            /* windows skipped between the train and the
                             * validation part, so overlapping windows do not
                             * leak (ceil(T/hop)-1 for hop-cut windows);
                             * default 0 */
    int patience;           /* early stopping: epochs without improvement of
                             * the validation loss (train loss when there is
                             * no validation part); default 5; 0 = never */
    float min_delta;        /* improvement below this does not count; 0 */
    int restore_best;       /* end with the best epoch's weights; default 1 */
    int shuffle;            /* shuffle training windows each epoch; 1 */
    double max_seconds;     /* stop after this wall time; 0 = no limit */
    uint64_t seed;          /* shuffling (and nothing else); default 1 */
} ad_train_opts;

/* Fill *o with the defaults above. */
void ad_train_opts_default(ad_train_opts *o);

/* Names "mse"/"mae" and back (-1 when unknown). */
const char *ad_loss_name(ad_loss l);
int ad_loss_from_name(const char *s);

/*
 * Keras default initialisation of every weight of m, from `seed`:
 * Glorot-uniform kernels (limit sqrt(6 / (fan_in + fan_out))), orthogonal
 * recurrent kernels (Keras' Orthogonal, gain 1), zero biases except the LSTM
 * forget-gate bias = 1 (unit_forget_bias). Deterministic for a seed.
 */
void ad_train_init_weights(ad_model *m, uint64_t seed);

/* ---- low level: one trainer = workspace + optimiser state ---------------- */

typedef struct ad_trainer ad_trainer;

/*
 * Allocate a trainer for m: activation caches and gradient buffers for
 * mini-batches of up to o->batch_size windows (all preallocated: no
 * allocation per step), Adam state (zero, step 0). `o` is copied (NULL:
 * defaults). m is borrowed, must outlive the trainer, and its params are
 * updated in place by ad_trainer_step(). NULL on OOM or bad arguments.
 */
ad_trainer *ad_trainer_new(ad_model *m, const ad_train_opts *o);
void ad_trainer_free(ad_trainer *t);   /* NULL-safe */

/*
 * Loss of the batch x (B,T,F) (1 <= B <= batch_size) under the trainer's
 * loss, and its gradient w.r.t. every parameter into the trainer's gradient
 * buffer (ad_trainer_grad; m->n_params floats, layout of m->params). The
 * weights are not changed. Returns 0, AD_EINVAL (bad B),
 * AD_ENONFINITE (loss not finite).
 */
int ad_trainer_loss_grad(ad_trainer *t, const float *x, int B, double *loss);

/* The gradient buffer of the last ad_trainer_loss_grad (borrowed). */
const float *ad_trainer_grad(const ad_trainer *t);

/* Global L2 norm of the current gradient. */
double ad_trainer_grad_norm(const ad_trainer *t);

/*
 * One optimisation step on the batch x (B,T,F): loss and gradients, clipping,
 * Adam update of m->params. *loss (may be NULL) gets the loss before the
 * update. Returns as ad_trainer_loss_grad; on AD_ENONFINITE the weights are
 * left unchanged.
 */
int ad_trainer_step(ad_trainer *t, const float *x, int B, double *loss);

/* Forward pass only: y (B,T,F) reconstruction of x (B,T,F), and the batch
 * loss in *loss (may be NULL). y may be NULL. */
int ad_trainer_forward(ad_trainer *t, const float *x, int B, float *y,
                       double *loss);

/* Mean loss over n windows (forward only, in mini-batches), weighting every
 * window equally. 0 or AD_EINVAL / AD_ENONFINITE. */
int ad_trainer_eval(ad_trainer *t, const float *x, size_t n, double *loss);

/* Reset the Adam state (moments, step count) to zero. */
void ad_trainer_reset(ad_trainer *t);

/* ---- high level: fit with validation and early stopping ----------------- */

typedef struct ad_train_epoch {
    int epoch;              /* 1-based */
    int epochs;             /* maximum */
    double loss;            /* mean training loss over the epoch's batches */
    double val_loss;        /* validation loss, NAN when there is none */
    double best_val_loss;   /* best so far (train loss when no val part) */
    double seconds;         /* wall time of this epoch (train + val) */
    double windows_per_s;   /* training windows per second this epoch */
    int improved;           /* this epoch is the best so far */
} ad_train_epoch;

/* Called after every epoch; `ep` valid only during the call. Return non-zero
 * to stop training (the result is then as for early stopping). */
typedef int (*ad_train_progress_fn)(const ad_train_epoch *ep, void *ud);

typedef struct ad_train_report {
    size_t n_train, n_val;  /* windows in each part */
    int epochs_run;
    int best_epoch;         /* 1-based; weights of this epoch when
                             * restore_best */
    double train_loss;      /* training loss of the final weights' epoch */
    double val_loss;        /* validation loss of the final weights (NAN if
                             * no validation part) */
    double seconds;         /* total wall time */
    double windows_per_s;   /* mean training throughput */
    int stopped_early;      /* patience exhausted */
    int cancelled;          /* *cancel was set, or progress returned != 0,
                             * or max_seconds reached */
} ad_train_report;

/*
 * Train m on n windows (N,T,F), scaled, in time order. The last
 * round(val_frac * n) windows form the validation part (after skipping
 * val_gap windows); the rest are shuffled each epoch and fed in mini-batches.
 * Stops after o->epochs, or when the monitored loss has not improved for
 * o->patience epochs, or on cancel. With restore_best, m ends with the best
 * epoch's weights. m's weights are used as they are (call
 * ad_train_init_weights first for a fresh model; a trained model is
 * fine-tuned). progress, ud, cancel and rep may be NULL.
 * Returns 0 (also when cancelled: see rep->cancelled), AD_EINVAL (bad
 * arguments, fewer than 1 training window: message in err), AD_ENOMEM,
 * AD_ENONFINITE (the loss diverged; m is restored to the best weights seen).
 */
int ad_train_fit(ad_model *m, const float *windows, size_t n,
                 const ad_train_opts *o, ad_train_report *rep,
                 ad_train_progress_fn progress, void *ud,
                 const volatile int *cancel, char *err, size_t errlen);

/* ---- reconstruction-error distribution ---------------------------------- */

typedef struct ad_error_stats {
    ad_metric metric;       /* per-window error under this metric, as
                             * ad_recon_score */
    size_t n;               /* windows */
    double mean, std;       /* population std */
    double q90, q95, q99, q999, max;   /* quantiles, linear interpolation
                                        * (numpy's default) */
} ad_error_stats;

/*
 * Per-window reconstruction errors of m on n windows (N,T,F) and their
 * distribution. errors (may be NULL) receives the n per-window values.
 * Returns 0, AD_EINVAL (n == 0), AD_ENOMEM, AD_ENONFINITE.
 */
int ad_train_error_stats(const ad_model *m, const float *windows, size_t n,
                         ad_metric metric, ad_error_stats *out, float *errors);

/*
 * The "training" metadata JSON (model.h) for a trained model: settings,
 * final losses and the error distribution, e.g.
 *   {"loss":"mse","optimizer":{"name":"adam","lr":0.001,...},
 *    "batch_size":32,"epochs_run":17,"best_epoch":12,"n_train":..,
 *    "n_val":..,"train_loss":..,"val_loss":..,"seconds":..,
 *    "error":{"metric":"mae","n":..,"mean":..,"std":..,"q90":..,"q95":..,
 *             "q99":..,"q999":..,"max":..}}
 * rep and st may be NULL (keys omitted). malloc'd string, NULL on OOM.
 */
char *ad_train_meta_json(const ad_train_opts *o, const ad_train_report *rep,
                         const ad_error_stats *st);

/*
 * Cut windows of length T with hop `hop` from `rows` consecutive rows of F
 * values (row-major): window k covers rows k*hop .. k*hop+T-1. Returns the
 * window count ((rows - T) / hop + 1, 0 when rows < T); when out != NULL it
 * receives them as (N,T,F).
 */
size_t ad_train_cut_windows(const float *data, size_t rows, int F, int T,
                            int hop, float *out);

#endif /* AD_TRAIN_H */
