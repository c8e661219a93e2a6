/*
 * fuzz_model.c - libFuzzer target over the model loader: any byte string is
 * handed to ad_model_load_mem(), which must either load a model or fail with
 * a negative code and a message, never read out of bounds, leak or hang.
 * A model that loads is serialised again and reloaded: a file we accept must
 * survive our own writer (same id on the second round).
 *
 *   make fuzz && build/fuzz/fuzz_model -max_total_time=60 CORPUS_DIR
 *
 * Seed corpus: build/fuzz/fuzz_model -seed_corpus=DIR writes small valid
 * models of the three architectures into DIR (not committed).
 */
#include "ad.h"
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_seed(const char *dir, const char *name, int T, int F,
                       const ad_layer_spec *l, int n, ad_scaler_type sc)
{
    ad_model *m = NULL;
    char path[512], err[256];
    float a[8], b[8];
    size_t i;
    int f;

    if (ad_model_create(&m, T, F, l, n, err, sizeof(err)) < 0) {
        fprintf(stderr, "seed %s: %s\n", name, err);
        return;
    }
    for (i = 0; i < m->n_params; i++)
        m->params[i] = (float)((i * 37) % 101) / 100.0f - 0.5f;
    for (f = 0; f < F && f < 8; f++) {
        a[f] = (float)f;
        b[f] = (float)f + 2.0f;
    }
    ad_model_set_scaler(m, sc, a, b);
    m->provenance = strdup("{\"by\":\"fuzz seed\"}");
    snprintf(path, sizeof(path), "%s/%s.safetensors", dir, name);
    if (ad_model_save(m, path, err, sizeof(err)) < 0)
        fprintf(stderr, "seed %s: %s\n", name, err);
    ad_model_free(m);
}

static void seed_corpus(const char *dir)
{
    ad_layer_spec s1[] = { { AD_LAYER_LSTM, 4, AD_ACT_TANH, 1 },
                           { AD_LAYER_LSTM, 2, AD_ACT_TANH, 1 },
                           { AD_LAYER_TD_DENSE, 1, AD_ACT_LINEAR, 0 } };
    ad_layer_spec s2[] = { { AD_LAYER_LSTM, 3, AD_ACT_TANH, 0 },
                           { AD_LAYER_REPEAT_VECTOR, 4, 0, 0 },
                           { AD_LAYER_LSTM, 3, AD_ACT_RELU, 1 },
                           { AD_LAYER_TD_DENSE, 2, AD_ACT_LINEAR, 0 } };
    ad_layer_spec s3[] = { { AD_LAYER_FLATTEN, 0, 0, 0 },
                           { AD_LAYER_DENSE, 3, AD_ACT_RELU, 0 },
                           { AD_LAYER_DENSE, 8, AD_ACT_SIGMOID, 0 } };

    write_seed(dir, "stacked", 5, 1, s1, 3, AD_SCALER_STANDARD);
    write_seed(dir, "repeat", 4, 2, s2, 4, AD_SCALER_MINMAX);
    write_seed(dir, "dense", 4, 2, s3, 3, AD_SCALER_NONE);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int i;

    for (i = 1; i < *argc; i++)
        if (strncmp((*argv)[i], "-seed_corpus=", 13) == 0) {
            seed_corpus((*argv)[i] + 13);
            exit(0);
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_model *m = NULL, *m2 = NULL;
    char err[512];
    void *buf = NULL;
    size_t len = 0;
    int rc;

    err[0] = '\0';
    rc = ad_model_load_mem(&m, data, size, "fuzz", err, sizeof(err));
    if (rc < 0) {
        if (m != NULL || strncmp(err, "fuzz", 4) != 0)
            abort();   /* a failure must leave no model and explain itself */
        return 0;
    }
    if (ad_model_serialize(m, &buf, &len) < 0)
        abort();       /* everything we load, we can write */
    if (ad_model_load_mem(&m2, buf, len, "again", err, sizeof(err)) < 0)
        abort();       /* ... and read back */
    if (m2->n_params != m->n_params ||
        memcmp(m2->params, m->params, m->n_params * sizeof(float)) != 0)
        abort();
    free(buf);
    ad_model_free(m2);
    ad_model_free(m);
    return 0;
}
