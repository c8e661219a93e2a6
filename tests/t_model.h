/*
 * t_model.h - models the detector tests share.
 *
 * t_zero_model(T, F): one TimeDistributed Dense with zero weights and no
 * scaler, so a window's reconstruction is all zeros and its MAE score is
 * the mean |value| over its rows and features; serialised once so it has a
 * model id (as a loaded model does). NULL (message on stderr) on error.
 */
#ifndef AD_T_MODEL_H
#define AD_T_MODEL_H

#include <stdio.h>
#include <stdlib.h>

#include "model.h"

static inline ad_model *t_zero_model(int T, int F)
{
    ad_layer_spec L[1] = { { AD_LAYER_TD_DENSE, F, AD_ACT_LINEAR, 0 } };
    ad_model *m = NULL;
    char err[200];
    void *buf;
    size_t len;

    if (ad_model_create(&m, T, F, L, 1, err, sizeof(err)) != 0) {
        fprintf(stderr, "model: %s\n", err);
        return NULL;
    }
    if (ad_model_serialize(m, &buf, &len) == 0)   /* sets the model id */
        free(buf);
    return m;
}

#endif
