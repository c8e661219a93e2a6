/*
 * recon.c - reconstruction error of a window (the anomaly score) and the
 * flop count of a model's forward pass (for benchmarks).
 */
#include "engine.h"

#include <math.h>
#include <stdlib.h>

#include "ad.h"
#include "threshold.h"

/*
 * Sums are taken in double over the element differences (computed in
 * double too, so x - y cannot overflow). A NaN anywhere in x or y makes mse,
 * mae and every share NaN: a broken input must never look like a perfect
 * reconstruction.
 */
void ad_recon_error(const float *x, const float *y, int T, int F,
                    ad_metric metric, float *mse, float *mae, float *share)
{
    double se = 0.0, ae = 0.0, tot;
    size_t n = (size_t)(T > 0 ? T : 0) * (size_t)(F > 0 ? F : 0), k;
    int t, f;

    for (k = 0; k < n; k++) {
        double dd = (double)x[k] - (double)y[k];

        se += dd * dd;
        ae += fabs(dd);
    }
    if (mse != NULL)
        *mse = n ? (float)(se / (double)n) : 0.0f;
    if (mae != NULL)
        *mae = n ? (float)(ae / (double)n) : 0.0f;
    if (share == NULL)
        return;
    /* Second pass per feature, so the shares are ratios of double sums. */
    tot = metric == AD_METRIC_MSE ? se : ae;
    for (f = 0; f < F; f++) {
        double sf = 0.0;

        for (t = 0; t < T; t++) {
            double dd = (double)x[(size_t)t * F + f] - (double)y[(size_t)t * F + f];

            sf += metric == AD_METRIC_MSE ? dd * dd : fabs(dd);
        }
        /* tot == 0: perfect reconstruction, no feature to blame. NaN tot
         * fails the comparison and gives NaN shares. */
        share[f] = tot == 0.0 ? 0.0f : (float)(sf / tot);
    }
}

/* The worst row of a window: its index and mean absolute error (NaN when
 * any element is NaN). */
static double worst_row(const float *x, const float *y, int T, int F, int *at)
{
    double best = -1.0;
    int t, f;

    *at = 0;
    for (t = 0; t < T; t++) {
        double s = 0.0;

        for (f = 0; f < F; f++)
            s += fabs((double)x[(size_t)t * F + f] - (double)y[(size_t)t * F + f]);
        if (s != s)
            return NAN;
        if (s > best) {
            best = s;
            *at = t;
        }
    }
    return T > 0 && F > 0 ? best / (double)F : 0.0;
}

float ad_recon_score(const float *x, const float *y, int T, int F,
                     ad_metric metric, float *share)
{
    float mse, mae;
    double e;
    int t, f;

    if (metric != AD_METRIC_PEAK) {
        ad_recon_error(x, y, T, F, metric, &mse, &mae, share);
        return metric == AD_METRIC_MSE ? mse : mae;
    }
    e = worst_row(x, y, T, F, &t);
    if (share != NULL)
        for (f = 0; f < F; f++) {
            /* e == 0 (or no row): nobody to blame; NaN e: NaN shares */
            if (e == 0.0 || T <= 0) {
                share[f] = 0.0f;
            } else {
                double d = fabs((double)x[(size_t)t * F + f] - (double)y[(size_t)t * F + f]);

                share[f] = e != e ? NAN : (float)(d / (e * F));
            }
        }
    return (float)e;
}

double ad_model_flops(const ad_model *m)
{
    double fl = 0.0;
    int i;

    if (m == NULL)
        return 0.0;
    for (i = 0; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];
        double u = L->spec.units, d = L->in_d;
        double t = L->in_t > 0 ? L->in_t : 1;

        switch (L->spec.type) {
        case AD_LAYER_LSTM:     /* x K + h U per step, 2 flops per MAC */
            fl += t * 2.0 * (d * 4.0 * u + u * 4.0 * u);
            break;
        case AD_LAYER_TD_DENSE:
            fl += t * 2.0 * d * u;
            break;
        case AD_LAYER_DENSE:
            fl += 2.0 * d * u;
            break;
        default:
            break;
        }
    }
    return fl;
}

double ad_recon_normalize(double score, const float *share, const double *scale, int F,
                          int rms, float *nshare)
{
    double best = 0.0, sum = 0.0, sq = 0.0;
    int f;

    for (f = 0; f < F; f++) {
        double r = score * (double)share[f] * F / scale[f];

        if (r != r) {
            best = NAN;
            break;
        }
        sum += r;
        sq += r * r;
        if (r > best)
            best = r;
    }
    if (rms && best == best && F > 0)
        best = sqrt(sq / F);
    if (nshare != NULL)
        for (f = 0; f < F; f++)
            nshare[f] = best != best ? NAN : sum > 0.0 ?
                        (float)(score * (double)share[f] * F / scale[f] / sum) : 0.0f;
    return best;
}

int ad_recon_scales(const float *e, size_t cap, size_t head, size_t n, int F, double *scale)
{
    double *v, mf;
    size_t i;
    int f;

    if (n == 0 || F <= 0)
        return AD_ERANGE;
    if ((v = malloc((n > (size_t)F ? n : (size_t)F) * sizeof(double))) == NULL)
        return AD_ENOMEM;
    for (f = 0; f < F; f++) {
        for (i = 0; i < n; i++)
            v[i] = e[((head + i) % cap) * (size_t)F + (size_t)f];
        scale[f] = ad_quantile(v, n, 0.5);
    }
    for (f = 0; f < F; f++)
        v[f] = scale[f];
    mf = ad_quantile(v, (size_t)F, 0.5) * AD_RECON_NORM_FLOOR;
    for (f = 0; f < F; f++) {
        if (!(scale[f] >= mf))
            scale[f] = mf;
        if (!(scale[f] >= 1e-12))
            scale[f] = 1e-12;
    }
    free(v);
    return 0;
}
