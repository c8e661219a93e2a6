/*
 * model.h - the autoencoder model: architecture, weights, input scaler and
 * metadata, and the model file that stores them.
 *
 * MODEL FILE FORMAT (version 1)
 * =============================
 * A model is one file in the safetensors format
 * (https://github.com/huggingface/safetensors):
 *
 *   bytes 0..7      N, unsigned 64-bit little-endian: length of the header
 *   bytes 8..8+N-1  header: UTF-8 JSON object (may be padded with trailing
 *                   spaces, 0x20)
 *   bytes 8+N..     data section: raw little-endian tensor bytes
 *
 * The header maps each tensor name to
 *   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * where offsets are relative to the start of the data section, end - begin ==
 * 4 * prod(shape), tensors do not overlap, and together they cover the data
 * section exactly. Only dtype F32 is accepted. Tensors are row-major (C order).
 *
 * The reserved key "__metadata__" maps strings to strings (as safetensors
 * requires). anomalyd reads these keys; structured values are JSON text
 * encoded in the string:
 *
 *   "format"          "anomalyd-model"                       (required)
 *   "format_version"  "1"                                    (required)
 *   "window"          "100"           window length T >= 1   (required)
 *   "features"        "[\"pressure\",\"flow\"]"  F unique non-empty names
 *                                                            (required)
 *   "architecture"    JSON array of layers, in order         (required)
 *   "scaler"          JSON object                            (required)
 *   "provenance"      JSON object, free form: who/what/when made it (optional)
 *   "training"        JSON object written by `anomalyd train` (optional):
 *                     settings, final losses and the distribution of training
 *                     reconstruction errors, e.g.
 *                     {"error": {"metric": "mae", "mean": .., "std": ..,
 *                      "q90": .., "q95": .., "q99": .., "q999": .., "max": ..}}
 *   Unknown metadata keys are kept and ignored.
 *
 * Layers (architecture entries). The model input is a window of shape (T, F),
 * already scaled; a layer takes a sequence (t, d) or a vector (d):
 *
 *   {"type": "lstm", "units": H, "activation": "tanh"|"relu",
 *    "recurrent_activation": "sigmoid" (optional, only value),
 *    "return_sequences": true|false}
 *        sequence (t, d) -> sequence (t, H) or, without return_sequences, the
 *        last hidden state as vector (H). Keras semantics, gate order
 *        i, f, c (candidate), o; zero initial state:
 *          z  = x_t K + h_{t-1} U + b          (1 x 4H)
 *          i = sig(z_i)  f = sig(z_f)  g = act(z_c)  o = sig(z_o)
 *          c_t = f*c_{t-1} + i*g      h_t = o * act(c_t)
 *        tensors: layers.N.kernel (d, 4H), layers.N.recurrent_kernel (H, 4H),
 *                 layers.N.bias (4H)   -- exactly Keras' get_weights() layout.
 *        (PyTorch: kernel = weight_ih.T, recurrent_kernel = weight_hh.T,
 *         bias = bias_ih + bias_hh; same gate order.)
 *   {"type": "repeat_vector", "n": n}
 *        vector (d) -> sequence (n, d). No tensors.
 *   {"type": "time_distributed_dense", "units": U, "activation": A}
 *        sequence (t, d) -> sequence (t, U), the same Dense at every step.
 *        tensors: layers.N.kernel (d, U), layers.N.bias (U).
 *   {"type": "flatten"}
 *        sequence (t, d) -> vector (t*d), row-major. No tensors.
 *   {"type": "dense", "units": U, "activation": A}
 *        vector (d) -> vector (U). tensors: layers.N.kernel (d, U),
 *        layers.N.bias (U).
 *   A is one of "linear", "relu", "sigmoid", "tanh".
 *   N is the layer's 0-based index in the architecture array.
 *
 * The last layer's output must be the sequence (T, F) or the vector (T*F)
 * (read as (T, F) row-major): the reconstruction of the input window.
 *
 * Scaler (applied per feature before the model; errors are computed in
 * scaled units):
 *   {"type": "standard", "mean": [F numbers], "std": [F numbers > 0]}
 *        x' = (x - mean) / std
 *   {"type": "minmax", "min": [F], "max": [F], max > min}
 *        x' = (x - min) / (max - min)
 *   {"type": "none"}
 *
 * Model identity: the first 16 hex digits of the SHA-256 of the whole file,
 * so `sha256sum model.safetensors` shows it too.
 */
#ifndef AD_MODEL_H
#define AD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define AD_MODEL_FORMAT "anomalyd-model"
#define AD_MODEL_FORMAT_VERSION 1
#define AD_MAX_LAYERS 64
#define AD_MAX_UNITS 65536
#define AD_MAX_WINDOW 1000000
#define AD_MAX_FEATURES 4096
#define AD_MODEL_ID_LEN 16

typedef enum {
    AD_LAYER_LSTM = 1,
    AD_LAYER_REPEAT_VECTOR,
    AD_LAYER_TD_DENSE,      /* time_distributed_dense */
    AD_LAYER_FLATTEN,
    AD_LAYER_DENSE
} ad_layer_type;

typedef enum {
    AD_ACT_LINEAR = 0,
    AD_ACT_RELU,
    AD_ACT_SIGMOID,
    AD_ACT_TANH
} ad_act;

typedef enum {
    AD_SCALER_NONE = 0,
    AD_SCALER_STANDARD,
    AD_SCALER_MINMAX
} ad_scaler_type;

/* What a caller specifies to build a model (trainer, bootstrap, tests). */
typedef struct ad_layer_spec {
    ad_layer_type type;
    int units;              /* lstm/dense/td_dense: output width; repeat: n */
    ad_act act;             /* lstm: cell activation (tanh|relu); dense: A */
    int return_sequences;   /* lstm only */
} ad_layer_spec;

/* A layer with derived shapes and pointers into the model's parameters. */
typedef struct ad_layer {
    ad_layer_spec spec;
    int in_t, in_d;         /* input: sequence (in_t, in_d); in_t == 0: vector */
    int out_t, out_d;       /* output, same convention */
    float *kernel;          /* lstm (in_d, 4H); dense kinds (in_d, units); or NULL */
    float *recurrent;       /* lstm (H, 4H); else NULL */
    float *bias;            /* lstm (4H); dense kinds (units); or NULL */
    size_t n_params;        /* floats owned by this layer */
} ad_layer;

typedef struct ad_model {
    int window;             /* T */
    int n_features;         /* F */
    char **features;        /* F owned, NUL-terminated names */
    ad_scaler_type scaler;
    float *scale_a;         /* F: standard mean, or minmax min */
    float *scale_b;         /* F: standard std, or minmax max */
    int n_layers;
    ad_layer layers[AD_MAX_LAYERS];
    float *params;          /* one 64-byte aligned block, all weights */
                            /* layout: per layer in order, kernel, recurrent, bias */
    size_t n_params;
    char *provenance;       /* JSON text or NULL, owned */
    char *training;         /* JSON text or NULL, owned */
    char id[AD_MODEL_ID_LEN + 1]; /* hex identity; "" until loaded/saved */
    uint64_t uid;           /* this allocation's serial, unique in the process
                             * (ad_model_create, ad_model_clone; never 0): a
                             * later model at a freed one's address has
                             * another, so per-model state cached by address
                             * (the workers' engines) cannot serve it */
} ad_model;

/*
 * Build an empty model (all weights zero, scaler "none", features named
 * "f0".."fN-1") from an architecture. Derives and checks every shape.
 * Returns 0 and *out, or a negative code with a message in err.
 */
int ad_model_create(ad_model **out, int window, int n_features,
                    const ad_layer_spec *layers, int n_layers,
                    char *err, size_t errlen);

/* Parse an architecture JSON array (the "architecture" metadata value) into
 * specs; *n_layers receives the count. Errors name the JSON path
 * ("architecture[2].units: ..."). */
int ad_arch_parse(const char *json, ad_layer_spec *layers, int max_layers,
                  int *n_layers, char *err, size_t errlen);

/* Serialise specs to the architecture JSON (malloc'd string; NULL on OOM). */
char *ad_arch_to_json(const ad_layer_spec *layers, int n_layers);

/* Replace feature names (copied). */
int ad_model_set_features(ad_model *m, const char *const *names, int n);

/* Set the scaler; a and b are copied (F floats each; ignored for NONE). */
int ad_model_set_scaler(ad_model *m, ad_scaler_type type,
                        const float *a, const float *b);

/* Deep copy (weights, metadata); NULL on OOM. */
ad_model *ad_model_clone(const ad_model *m);

void ad_model_free(ad_model *m);  /* NULL-safe */

/*
 * Load a model file. Validates everything before use (see the format above);
 * a hostile file never causes an out-of-bounds read. Errors name the file,
 * the tensor or metadata key, and what was expected, e.g.
 *   "model.safetensors: tensor layers.1.kernel: shape [32,128], expected [64,128]"
 */
int ad_model_load(ad_model **out, const char *path, char *err, size_t errlen);

/* The same from memory; `name` is used in messages (fuzzing, tests). */
int ad_model_load_mem(ad_model **out, const void *buf, size_t len,
                      const char *name, char *err, size_t errlen);

/* Serialise to a malloc'd buffer (*buf, *len); sets m->id. */
int ad_model_serialize(ad_model *m, void **buf, size_t *len);

/* Write atomically (temporary file + rename); sets m->id. */
int ad_model_save(ad_model *m, const char *path, char *err, size_t errlen);

/* Scale `rows` raw rows of F values into `out` (may alias `raw`). The
 * arithmetic is double precision; only the result is rounded to float. */
void ad_model_scale(const ad_model *m, const float *raw, float *out, size_t rows);

/* Largest scaled magnitude taken as data: a value a million scales away
 * from the training mean is a broken reading, not a measurement. */
#define AD_SCALED_MAX 1e6

/*
 * The same from double-precision raw values. A finite value whose scaled
 * magnitude exceeds AD_SCALED_MAX (1e308, or anything that would overflow
 * float) is written as NaN and counted: returns how many there were.
 */
int ad_model_scale_d(const ad_model *m, const double *raw, float *out, size_t rows);

/* 1 when a and b scale their inputs alike (same scaler type and values, same
 * feature count): a window scaled for a is valid input for b. */
int ad_model_same_scaler(const ad_model *a, const ad_model *b);

/* Rows scaled for `from` re-scaled for `to` (same features): the value
 * `from`'s scaler came from, then `to`'s scaler; computed in double, NaN
 * stays NaN. in and out may be the same buffer. */
void ad_model_rescale(const ad_model *from, const ad_model *to, const float *in, float *out,
                      size_t rows);

/* Names for enums, and back (NULL / -1 when unknown). */
const char *ad_act_name(ad_act a);
int ad_act_from_name(const char *s);
const char *ad_layer_type_name(ad_layer_type t);
int ad_layer_type_from_name(const char *s);

#endif /* AD_MODEL_H */
