/*
 * forward_ref.c - the scalar reference forward pass (ad_forward_ref): the
 * same math as the engine written as the most obvious loops, one window at
 * a time, with libm expf/tanhf and double accumulators, no BLAS and none of
 * the engine's vectorised helpers. Slow on purpose; it is the oracle the
 * engine is tested against (tests/test_engine.c) and the scale the
 * benchmark compares with.
 */
#include "engine.h"
#include "ad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float ref_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static float ref_act(float x, ad_act a)
{
    switch (a) {
    case AD_ACT_RELU: return x < 0.0f ? 0.0f : x;   /* NaN stays NaN */
    case AD_ACT_SIGMOID: return ref_sigmoid(x);
    case AD_ACT_TANH: return tanhf(x);
    case AD_ACT_LINEAR: break;
    }
    return x;
}

/* y (U) = act(x (d) W (d, U) + b (U)) */
static void ref_dense(const float *x, int d, const float *W, const float *b,
                      int U, ad_act a, float *y)
{
    int j, k;

    for (j = 0; j < U; j++) {
        double s = b[j];

        for (k = 0; k < d; k++)
            s += (double)x[k] * W[(size_t)k * U + j];
        y[j] = ref_act((float)s, a);
    }
}

/* x (t, d) -> y (t, H) or (H); z (4H), h (H), c (H) scratch. */
static void ref_lstm(const ad_layer *L, const float *x, int t, float *y,
                     float *z, float *h, float *c)
{
    const int H = L->spec.units, d = L->in_d;
    const size_t H4 = 4 * (size_t)H;
    const ad_act act = L->spec.act == AD_ACT_RELU ? AD_ACT_RELU : AD_ACT_TANH;
    int s, j, k;

    for (j = 0; j < H; j++)
        h[j] = c[j] = 0.0f;
    for (s = 0; s < t; s++) {
        const float *xs = x + (size_t)s * d;

        for (j = 0; j < (int)H4; j++) {
            double acc = L->bias[j];

            for (k = 0; k < d; k++)
                acc += (double)xs[k] * L->kernel[(size_t)k * H4 + j];
            for (k = 0; k < H; k++)
                acc += (double)h[k] * L->recurrent[(size_t)k * H4 + j];
            z[j] = (float)acc;
        }
        for (j = 0; j < H; j++) {
            float ig = ref_sigmoid(z[j]);
            float fg = ref_sigmoid(z[H + j]);
            float gg = ref_act(z[2 * H + j], act);
            float og = ref_sigmoid(z[3 * H + j]);

            c[j] = fg * c[j] + ig * gg;
            h[j] = og * ref_act(c[j], act);
        }
        if (L->spec.return_sequences)
            memcpy(y + (size_t)s * H, h, (size_t)H * sizeof(float));
    }
    if (!L->spec.return_sequences)
        memcpy(y, h, (size_t)H * sizeof(float));
}

int ad_forward_ref(const ad_model *m, const float *in, float *out, int B)
{
    size_t win, maxn, maxh = 1;
    float *a = NULL, *b = NULL, *z = NULL, *h = NULL, *c = NULL;
    int rc = AD_ENOMEM, w, i;

    if (m == NULL || in == NULL || out == NULL || B < 1 || m->n_layers < 1)
        return AD_EINVAL;
    win = (size_t)m->window * m->n_features;
    maxn = win;
    for (i = 0; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];
        size_t n = (size_t)(L->out_t > 0 ? L->out_t : 1) * L->out_d;

        if (n > maxn)
            maxn = n;
        if (L->spec.type == AD_LAYER_LSTM && (size_t)L->spec.units > maxh)
            maxh = (size_t)L->spec.units;
    }
    a = malloc(maxn * sizeof(float));
    b = malloc(maxn * sizeof(float));
    z = malloc(4 * maxh * sizeof(float));
    h = malloc(maxh * sizeof(float));
    c = malloc(maxh * sizeof(float));
    if (a == NULL || b == NULL || z == NULL || h == NULL || c == NULL)
        goto fail;
    for (w = 0; w < B; w++) {
        float *cur = a, *nxt = b, *tmp;
        int t = m->window, s, k;

        memcpy(cur, in + (size_t)w * win, win * sizeof(float));
        for (i = 0; i < m->n_layers; i++) {
            const ad_layer *L = &m->layers[i];

            switch (L->spec.type) {
            case AD_LAYER_LSTM:
                ref_lstm(L, cur, t, nxt, z, h, c);
                t = L->spec.return_sequences ? t : 0;
                break;
            case AD_LAYER_REPEAT_VECTOR:
                t = L->spec.units;
                for (s = 0; s < t; s++)
                    for (k = 0; k < L->in_d; k++)
                        nxt[(size_t)s * L->in_d + k] = cur[k];
                break;
            case AD_LAYER_TD_DENSE:
                for (s = 0; s < t; s++)
                    ref_dense(cur + (size_t)s * L->in_d, L->in_d, L->kernel,
                              L->bias, L->spec.units, L->spec.act,
                              nxt + (size_t)s * L->spec.units);
                break;
            case AD_LAYER_FLATTEN:
                t = 0;      /* (t, d) row-major is already the vector */
                continue;
            case AD_LAYER_DENSE:
                ref_dense(cur, L->in_d, L->kernel, L->bias, L->spec.units,
                          L->spec.act, nxt);
                break;
            default:
                rc = AD_EINVAL;
                goto fail;
            }
            tmp = cur;
            cur = nxt;
            nxt = tmp;
        }
        memcpy(out + (size_t)w * win, cur, win * sizeof(float));
    }
    rc = 0;
fail:
    free(a);
    free(b);
    free(z);
    free(h);
    free(c);
    return rc;
}
