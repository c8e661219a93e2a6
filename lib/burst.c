/*
 * burst.c - the burst test (see burst.h): a centred Hampel filter per
 * feature and a count of its outliers over a span of data.
 */
#include "burst.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ad_burst {
    int F, n;
    int64_t span;
    double z;
    double *vals;       /* F x AD_BURST_K: the last samples, oldest first */
    int64_t *vts;       /* AD_BURST_K: their timestamps */
    int len;            /* rows held (<= AD_BURST_K) */
    int64_t *out;       /* F x n: each feature's last n outlier timestamps */
    int *out_pos;       /* F: next slot */
};

ad_burst *ad_burst_new(int F, int64_t span_ms, int n, double z)
{
    ad_burst *b;

    if (F <= 0 || span_ms <= 0 || n < 2 || n > AD_BURST_MAX_N || !(z > 0))
        return NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->F = F;
    b->n = n;
    b->span = span_ms;
    b->z = z;
    b->vals = calloc((size_t)F * AD_BURST_K, sizeof(double));
    b->vts = calloc(AD_BURST_K, sizeof(int64_t));
    b->out = malloc((size_t)F * (size_t)n * sizeof(int64_t));
    b->out_pos = calloc((size_t)F, sizeof(int));
    if (b->vals == NULL || b->vts == NULL || b->out == NULL || b->out_pos == NULL) {
        ad_burst_free(b);
        return NULL;
    }
    for (int i = 0; i < F * n; i++)
        b->out[i] = INT64_MIN;
    return b;
}

void ad_burst_free(ad_burst *b)
{
    if (b == NULL)
        return;
    free(b->vals);
    free(b->vts);
    free(b->out);
    free(b->out_pos);
    free(b);
}

void ad_burst_reset(ad_burst *b)
{
    b->len = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median of the first k of x (sorted in place). */
static double median_sorted(double *x, int k)
{
    qsort(x, (size_t)k, sizeof(double), cmp_double);
    return k % 2 ? x[k / 2] : 0.5 * (x[k / 2 - 1] + x[k / 2]);
}

/* Is feature f's middle sample an outlier among its neighbours? */
static int judge(const ad_burst *b, int f, double spread)
{
    const double *v = b->vals + (size_t)f * AD_BURST_K;
    double x = v[AD_BURST_K / 2], tmp[AD_BURST_K], med, mad, sd;
    int i, k = 0;

    if (!isfinite(x) || !(spread > 0) || !isfinite(spread))
        return 0;
    for (i = 0; i < AD_BURST_K; i++)
        if (isfinite(v[i]))
            tmp[k++] = v[i];
    /* a neighbourhood mostly of samples not to be judged says nothing */
    if (k < AD_BURST_K / 2 + 2)
        return 0;
    med = median_sorted(tmp, k);
    for (i = 0; i < k; i++)
        tmp[i] = fabs(tmp[i] - med);
    mad = median_sorted(tmp, k);
    sd = fmax(1.4826 * mad, AD_BURST_FLOOR * spread);
    return fabs(x - med) > b->z * sd;
}

int ad_burst_push(ad_burst *b, int64_t ts, const double *values, const double *spread)
{
    int f, found = 0;

    if (b->len == AD_BURST_K) {     /* drop the oldest */
        for (f = 0; f < b->F; f++)
            memmove(b->vals + (size_t)f * AD_BURST_K, b->vals + (size_t)f * AD_BURST_K + 1,
                    (AD_BURST_K - 1) * sizeof(double));
        memmove(b->vts, b->vts + 1, (AD_BURST_K - 1) * sizeof(int64_t));
        b->len--;
    }
    for (f = 0; f < b->F; f++)
        b->vals[(size_t)f * AD_BURST_K + b->len] = values[f];
    b->vts[b->len++] = ts;
    if (b->len < AD_BURST_K || spread == NULL)
        return 0;
    for (f = 0; f < b->F; f++) {
        if (!judge(b, f, spread[f]))
            continue;
        b->out[(size_t)f * b->n + b->out_pos[f]] = b->vts[AD_BURST_K / 2];
        b->out_pos[f] = (b->out_pos[f] + 1) % b->n;
        found++;
    }
    return found;
}

int ad_burst_feature(const ad_burst *b, int64_t ts)
{
    int f, i, best = -1, best_c = 0;

    for (f = 0; f < b->F; f++) {
        const int64_t *o = b->out + (size_t)f * b->n;
        int c = 0;
        for (i = 0; i < b->n; i++)
            if (o[i] != INT64_MIN && o[i] <= ts && o[i] > ts - b->span)
                c++;
        if (c >= b->n && c > best_c) {
            best = f;
            best_c = c;
        }
    }
    return best;
}
