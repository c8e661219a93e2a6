/*
 * bench_dq_path.c - what a stream's open data-quality alerts cost each
 * message (daemon/streams.c push_samples): the check for alerts carried
 * over a rebuild (a reload, a clock step) and, while one is carried, the
 * per-message settling buffer of F bytes. Before: publish_dq_carrying's
 * walk over every open alert (a key lookup in each) on every message with
 * any open, and a calloc(F) + free on every message while one was carried.
 * Now: a flag (stream_rec.dq_carried) on every message, the walk only
 * while one may be carried, the buffer on the stack.
 *
 * Figures in ns per message, and as a share of the reference measured in
 * the same run: parsing and freeing the pump's JSON payload (cJSON), which
 * every message costs. Cases: 0, 1 and 4 open alerts none carried (a
 * stream with a stuck sensor, a long dropout), and 1 carried (the messages
 * after a rebuild until the rebuilt monitor settles it; the walk stays
 * there). argv[1]: messages per case (default 2000000).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "daemon_int.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile unsigned long sink;

/* an open alert as publish_dq keeps it (publish.c dq_track) */
static cJSON *entry(int i, int carried)
{
    cJSON *e = cJSON_CreateObject();
    char id[64];

    snprintf(id, sizeof id, "pump1-dq-%d-1700000000000", i);
    cJSON_AddStringToObject(e, "alert_id", id);
    cJSON_AddStringToObject(e, "check", i % 2 ? "stuck" : "dropout");
    cJSON_AddStringToObject(e, "feature", "pressure");
    cJSON_AddNumberToObject(e, "start", 1.7e12);
    cJSON_AddNumberToObject(e, "since", 1.7e12);
    cJSON_AddStringToObject(e, "topic", "anomalyd/alerts/pump/pump1");
    if (carried)
        cJSON_AddTrueToObject(e, "carried");
    return e;
}

/* before: the walk on every message, calloc(F) while carried */
static double run_old(stream_rec *s, long n, int F)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (publish_dq_carrying(s)) {
            unsigned char *seen = calloc((size_t)F, 1);
            if (seen) {
                seen[i % F] = 1;
                sink += seen[0];
            }
            free(seen);
        }
    }
    return (now_s() - t0) * 1e9 / (double)n;
}

/* now: the flag, the walk while it is set, the buffer on the stack */
static double run_new(stream_rec *s, long n, int F)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (s->dq_carried && (s->dq_carried = publish_dq_carrying(s)) != 0) {
            unsigned char seen[AD_MAX_FEATURES];
            memset(seen, 0, (size_t)F);
            seen[i % F] = 1;
            sink += seen[0];
        }
    }
    return (now_s() - t0) * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    const char *payload = "{\"vibration\": 2.1734, \"current\": 13.0921, \"pressure\": 4.4102, "
                          "\"temperature\": 61.2045, \"flow\": 118.337, \"ts\": 1700000060000}";
    const int F = 5;
    static const struct { int open, carried; const char *what; } cs[] = {
        { 0, 0, "no open alert" }, { 1, 0, "1 open, none carried" },
        { 4, 0, "4 open, none carried" }, { 1, 1, "1 open, carried" },
    };
    double ref, t0;

    if (n <= 0)
        n = 2000000;
    t0 = now_s();
    for (long i = 0; i < n / 10; i++) {
        cJSON *o = cJSON_Parse(payload);
        sink += o != NULL;
        cJSON_Delete(o);
    }
    ref = (now_s() - t0) * 1e9 / (double)(n / 10);
    printf("reference: the payload's parse and free (cJSON): %.1f ns/message\n", ref);
    printf("%-22s %12s %12s %10s %10s\n", "case", "before ns", "now ns", "before/ref",
           "now/ref");
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        stream_rec s;
        double a, b;

        memset(&s, 0, sizeof s);
        if (cs[c].open) {
            s.dq_open = cJSON_CreateArray();
            for (int i = 0; i < cs[c].open; i++)
                cJSON_AddItemToArray(s.dq_open, entry(i, cs[c].carried && i == 0));
        }
        a = run_old(&s, n, F);
        s.dq_carried = cs[c].carried;   /* publish_dq_carry sets it */
        b = run_new(&s, n, F);
        printf("%-22s %12.2f %12.2f %9.2f%% %9.2f%%\n", cs[c].what, a, b, 100.0 * a / ref,
               100.0 * b / ref);
        cJSON_Delete(s.dq_open);
    }
    return 0;
}
