/*
 * bench_streams.c - memory and time per stream for the bundled model
 * (conf/models/pump.safetensors, T=30, F=5): creates N detectors (one per
 * stream, default 200000, argv[1] to change), as the daemon does for each
 * new device, then frees them all (mass eviction) and gives the heap back
 * (malloc_trim). Prints bytes/stream (heap in use, mallinfo2), us/stream,
 * and the RSS before the flood, at its peak and after the eviction, against
 * the targets (<= 4 KB and <= 10 us per stream, RSS within 20% of the
 * pre-flood level after eviction), PASS or MISS. Reference in the same run:
 * one malloc + memset of the same number of bytes per stream (the floor any
 * allocation of that size costs). The daemon adds its stream record
 * (daemon_int.h stream_rec, ~500 bytes + the key) per stream.
 *
 * Then continual learning's share (adapt.enabled with the example
 * configuration's day of one-minute windows, adapt.normal_windows 1440,
 * margin 50, shadow 500): argv[2] streams (default 200) created with it,
 * heap in use per stream against the sizing docs/continual-learning.md
 * gives (M.T.F floats for the normal set plus (margin+1).T.F for the
 * pending queue), at creation and once every normal set is full (each
 * stream fed windows until its set holds M), and the RSS. No target: it
 * is what an operator sizes a host by.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ad.h"
#include "detector.h"
#include "model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rss_mb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

/* Continual learning's memory per stream (see the header); frees m. */
static int adapt_part(ad_model *m, long n)
{
    const int M = 1440, margin = 50;
    ad_detector **d = calloc((size_t)(n > 0 ? n : 1), sizeof *d);
    ad_detector_cfg c;
    struct mallinfo2 mi0, mi1, mi2;
    char err[512], key[32];
    float *x = NULL;
    double r0, r1, bytes, full, doc, t0;
    int64_t ts = 0;
    long i, k;
    int T = m->window, F = m->n_features, rc = 1;

    if (d == NULL || n < 1)
        goto out;
    ad_detector_cfg_default(&c);
    c.calib_windows = 20;
    /* the scores fed below are made up (1.0), not the model's: its
     * training error (0.13) would take them for an anomaly */
    c.calib_model_guard = 0;
    c.adapt.enabled = 1;
    c.adapt.normal_windows = M;
    c.adapt.min_windows = M;
    c.adapt.margin = margin;
    c.adapt.shadow_windows = 500;
    c.adapt.every_windows = 1000000000;     /* no fine-tune: memory only */
    c.adapt.every_hours = 0;
    if ((x = malloc((size_t)T * F * sizeof *x)) == NULL)
        goto out;
    malloc_trim(0);
    r0 = rss_mb();
    mi0 = mallinfo2();
    for (i = 0; i < n; i++) {
        snprintf(key, sizeof key, "pump%ld", i);
        if (ad_detector_new(&d[i], &c, key, m, 0, 0, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench_streams: adapt stream %ld: %s\n", i, err);
            goto out;
        }
    }
    mi1 = mallinfo2();
    /* large blocks (a normal set) are mmap'd: hblkhd */
    bytes = ((double)mi1.uordblks + (double)mi1.hblkhd - (double)mi0.uordblks -
             (double)mi0.hblkhd) / (double)n;
    doc = ((double)M + margin + 1) * T * F * sizeof(float);
    /* fill every normal set: rows of one constant-ish signal, each window
     * scored 1 (under the threshold calibrated on the same) */
    t0 = now_s();
    for (i = 0; i < n; i++) {
        ad_window_job job;
        double row[64];

        for (k = 0; k < c.calib_windows + M + margin + T + 1 && F <= 64; k++) {
            for (int f = 0; f < F; f++)
                row[f] = 1.0 + 0.01 * (double)((k * 7 + f * 3) % 11);
            ad_detector_push_row(d[i], ts += 60000, row, NULL);
            while (ad_detector_next_window(d[i], x, &job))
                ad_detector_feed_score2(d[i], &job, 1.0 + 0.001 * (double)(k % 7), NULL, NAN);
        }
    }
    r1 = rss_mb();
    mi2 = mallinfo2();
    full = ((double)mi2.uordblks + (double)mi2.hblkhd - (double)mi0.uordblks -
            (double)mi0.hblkhd) / (double)n;
    {
        ad_detector_stats st;

        ad_detector_get_stats(d[0], &st);
        printf("continual learning: %ld streams, adapt.normal_windows %d, margin %d (T=%d, "
               "F=%d; %llu windows in stream 0's normal set, %.1f s to fill them all)\n", n, M,
               margin, T, F, (unsigned long long)st.adapt_normal, now_s() - t0);
        printf("  heap in use per stream: %.0f bytes at creation, %.0f with the normal set "
               "full; the sizing (M + margin + 1) x T x F floats = %.0f (full / sizing %.3f)\n",
               bytes, full, doc, full / doc);
        printf("  RSS: %.1f MB -> %.1f MB (%.0f bytes per stream)\n", r0, r1,
               (r1 - r0) * 1048576.0 / (double)n);
    }
    rc = 0;
out:
    for (i = 0; d && i < n; i++)
        ad_detector_free(d[i]);
    free(d);
    free(x);
    ad_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    const char *src = getenv("AD_SRCDIR");
    char path[4096], err[512], key[32];
    long n = argc > 1 ? atol(argv[1]) : 200000;
    ad_model *m = NULL;
    ad_detector **d;
    void **ref;
    ad_detector_cfg c;
    struct mallinfo2 mi0, mi1;
    double t0, t_det, t_ref, r0, r1, r2, bytes;
    int ok;

    snprintf(path, sizeof path, "%s/conf/models/pump.safetensors", src ? src : ".");
    if (ad_model_load(&m, path, err, sizeof err) != 0) {
        fprintf(stderr, "bench_streams: %s\n", err);
        return 1;
    }
    ad_detector_cfg_default(&c);
    d = calloc((size_t)n, sizeof *d);
    ref = calloc((size_t)n, sizeof *ref);
    if (!d || !ref || n < 1)
        return 1;
    malloc_trim(0);
    r0 = rss_mb();
    mi0 = mallinfo2();
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        snprintf(key, sizeof key, "pump%ld", i);
        if (ad_detector_new(&d[i], &c, key, m, 0, 0, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench_streams: stream %ld: %s\n", i, err);
            return 1;
        }
    }
    t_det = (now_s() - t0) / (double)n;
    mi1 = mallinfo2();
    r1 = rss_mb();
    bytes = (double)(mi1.uordblks - mi0.uordblks) / (double)n;
    for (long i = 0; i < n; i++)
        ad_detector_free(d[i]);
    malloc_trim(0);
    r2 = rss_mb();
    /* reference: the same bytes in one block per stream */
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        ref[i] = malloc((size_t)bytes);
        if (ref[i]) memset(ref[i], 0, (size_t)bytes);
    }
    t_ref = (now_s() - t0) / (double)n;
    for (long i = 0; i < n; i++)
        free(ref[i]);
    malloc_trim(0);
    printf("streams: %ld detectors of %s (T=%d, F=%d)\n", n, path, m->window, m->n_features);
    printf("memory per stream: %.0f bytes (heap in use); the event queue starts at 1 x "
           "sizeof(ad_event) = %zu bytes and grows to %d only while events wait\n", bytes,
           sizeof(ad_event), AD_DETECTOR_EVENTS);
    printf("creation per stream: %.2f us; reference malloc+memset of %.0f bytes: %.3f us "
           "(ratio %.1fx)\n", t_det * 1e6, bytes, t_ref * 1e6, t_det / (t_ref > 0 ? t_ref : 1e-12));
    printf("RSS: %.1f MB before, %.1f MB with %ld streams, %.1f MB after evicting all "
           "(%+.1f%% of before)\n", r0, r1, n, r2, 100.0 * (r2 - r0) / r0);
    ok = bytes <= 4096;
    printf("target <= 4 KB per stream: %s\n", ok ? "PASS" : "MISS");
    printf("target <= 10 us per stream: %s\n", t_det * 1e6 <= 10 ? "PASS" : "MISS");
    printf("target RSS within 20%% after eviction: %s\n", r2 <= 1.2 * r0 ? "PASS" : "MISS");
    free(d);
    free(ref);
    return adapt_part(m, argc > 2 ? atol(argv[2]) : 200);
}
