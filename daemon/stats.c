/*
 * stats.c - the inference latency ring and its percentiles for the
 * periodic statistics (publish.c): the last LAT_RING window latencies,
 * p50/p90/p99 by selection (no sort) at every stats tick.
 *
 * Ownership: the ring is a plain value inside the daemon struct.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"

void stats_latency_add(lat_ring *r, double ms)
{
    r->ms[r->n++ % LAT_RING] = ms;
}

/* The k-th smallest of v[0..n-1] (0-based), partially reordering v:
 * Hoare's selection, O(n) on average. */
static double select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                double t = v[i]; v[i] = v[j]; v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return v[k];
}

int stats_latency_percentiles(const lat_ring *r, double *p50, double *p90, double *p99,
                              double *pmax)
{
    size_t nl = r->n < LAT_RING ? (size_t)r->n : LAT_RING;
    double *lat;
    *p50 = *p90 = *p99 = *pmax = 0;
    if (!nl)
        return 0;
    if (!(lat = malloc(nl * sizeof(double))))
        return AD_ENOMEM;
    memcpy(lat, r->ms, nl * sizeof(double));
    *p50 = select_kth(lat, nl, nl / 2);
    *p90 = select_kth(lat, nl, (size_t)((double)nl * 0.9));
    *p99 = select_kth(lat, nl, (size_t)((double)nl * 0.99));
    *pmax = lat[0];
    for (size_t i = 1; i < nl; i++)
        if (lat[i] > *pmax) *pmax = lat[i];
    free(lat);
    return 0;
}
