/*
 * shift.c - a kept change (shift.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shift.h"

#define HOUR_BUCKETS (AD_SHIFT_BUCKETS / 24)
_Static_assert(AD_SHIFT_BUCKETS % 24 == 0, "whole hours of buckets");
_Static_assert(AD_SHIFT_RING > AD_SHIFT_BUCKETS, "the ring holds a period and an alert");

struct ad_shift {
    int F;
    int64_t B;                  /* bucket length, ms */
    int64_t cur;                /* latest bucket index, INT64_MIN: none */
    int64_t *idx;               /* RING: the bucket index each slot holds */
    double *sum;                /* RING x F */
    int *n;                     /* RING x F */
    /* the kept change */
    int state;                  /* 0 none, 1 candidate, 2 kept */
    int64_t ref_base;           /* bucket index of ref[0] */
    double *ref;                /* AD_SHIFT_BUCKETS x F means, NaN: none */
    double *sd;                 /* F: the reference's spread, 0: left out */
    double *tol;                /* F: a flat feature's tolerance, NaN: not flat */
    double *u;                  /* F: the change's displacement */
    double unorm;
    int64_t next_check;         /* bucket index ending the next hour judged */
    int64_t expire;             /* bucket index it ends at */
    int64_t expire_max;         /* and at the latest (RENEWED) */
    int hours_ok;
    double *tmp;                /* F scratch */
};

ad_shift *ad_shift_new(int F, int64_t period_ms)
{
    ad_shift *s;

    if (F < AD_SHIFT_MIN_F || F > 4096 || period_ms < AD_SHIFT_BUCKETS)
        return NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->F = F;
    s->B = period_ms / AD_SHIFT_BUCKETS;
    s->cur = INT64_MIN;
    s->idx = malloc(AD_SHIFT_RING * sizeof(int64_t));
    s->sum = calloc((size_t)AD_SHIFT_RING * (size_t)F, sizeof(double));
    s->n = calloc((size_t)AD_SHIFT_RING * (size_t)F, sizeof(int));
    s->ref = calloc((size_t)AD_SHIFT_BUCKETS * (size_t)F, sizeof(double));
    s->sd = calloc((size_t)F, sizeof(double));
    s->tol = calloc((size_t)F, sizeof(double));
    s->u = calloc((size_t)F, sizeof(double));
    s->tmp = calloc((size_t)F, sizeof(double));
    if (s->idx == NULL || s->sum == NULL || s->n == NULL || s->ref == NULL || s->sd == NULL ||
        s->tol == NULL ||
        s->u == NULL || s->tmp == NULL) {
        ad_shift_free(s);
        return NULL;
    }
    for (int i = 0; i < AD_SHIFT_RING; i++)
        s->idx[i] = INT64_MIN;
    return s;
}

void ad_shift_free(ad_shift *s)
{
    if (s == NULL)
        return;
    free(s->idx);
    free(s->sum);
    free(s->n);
    free(s->ref);
    free(s->sd);
    free(s->tol);
    free(s->u);
    free(s->tmp);
    free(s);
}

static int64_t bucket_of(const ad_shift *s, int64_t ts)
{
    int64_t b = ts / s->B;

    return ts < 0 && ts % s->B != 0 ? b - 1 : b;
}

static int slot_of(int64_t b)
{
    return (int)(((b % AD_SHIFT_RING) + AD_SHIFT_RING) % AD_SHIFT_RING);
}

/* Mean of feature f in bucket b, NaN when not held or empty. */
static double bucket_mean(const ad_shift *s, int64_t b, int f)
{
    int k = slot_of(b);

    if (s->idx[k] != b || s->n[(size_t)k * s->F + f] == 0)
        return NAN;
    return s->sum[(size_t)k * s->F + f] / s->n[(size_t)k * s->F + f];
}

static double ref_mean(const ad_shift *s, int64_t b, int f)
{
    int64_t j = ((b - s->ref_base) % AD_SHIFT_BUCKETS + AD_SHIFT_BUCKETS) % AD_SHIFT_BUCKETS;

    return s->ref[(size_t)j * s->F + f];
}

/* Displacement of buckets [b0, b1) from the reference into out (F).
 * Returns its norm, or -1 when no feature has data on both sides. */
static double displacement(const ad_shift *s, int64_t b0, int64_t b1, double *out)
{
    double nn = 0;
    int any = 0;

    for (int f = 0; f < s->F; f++) {
        double c = 0, r = 0;
        int k = 0;

        out[f] = 0;
        if (!(s->sd[f] > 0))
            continue;
        for (int64_t b = b0; b < b1; b++) {
            double x = bucket_mean(s, b, f), y = ref_mean(s, b, f);
            if (isnan(x) || isnan(y))
                continue;
            c += x;
            r += y;
            k++;
        }
        if (k == 0)
            continue;
        out[f] = (c - r) / k / s->sd[f];
        nn += out[f] * out[f];
        any = 1;
    }
    return any ? sqrt(nn) : -1;
}

/* 1 when a flat feature (left out of the displacement) moved over
 * buckets [b0, b1) from the reference by more than its tolerance: a
 * valve or a status bit that never varied in the reference moved, which
 * no direction of the others says anything about (it vetoes). */
static int flat_moved(const ad_shift *s, int64_t b0, int64_t b1)
{
    for (int f = 0; f < s->F; f++) {
        double c = 0, r = 0;
        int k = 0;

        if (isnan(s->tol[f]))
            continue;
        for (int64_t b = b0; b < b1; b++) {
            double x = bucket_mean(s, b, f), y = ref_mean(s, b, f);
            if (isnan(x) || isnan(y))
                continue;
            c += x;
            r += y;
            k++;
        }
        if (k > 0 && fabs(c - r) / k > s->tol[f])
            return 1;
    }
    return 0;
}

static double cosine_u(const ad_shift *s, const double *v, double vnorm)
{
    double dot = 0;

    if (!(vnorm > 0) || !(s->unorm > 0))
        return NAN;
    for (int f = 0; f < s->F; f++)
        dot += v[f] * s->u[f];
    return dot / (vnorm * s->unorm);
}

/* The hours completed before bucket b judged (KEPT CHANGE). */
static void judge_hours(ad_shift *s, int64_t b)
{
    while (s->state != 0 && b >= s->next_check) {
        double h;

        if (s->next_check >= s->expire) {
            s->state = 0;
            return;
        }
        h = displacement(s, s->next_check - HOUR_BUCKETS, s->next_check, s->tmp);
        s->next_check += HOUR_BUCKETS;
        if (h < 0)
            continue;               /* no rows that hour: nothing to judge */
        if (!(cosine_u(s, s->tmp, h) >= AD_SHIFT_COS) || !(h >= 0.5 * s->unorm) ||
            !(h <= AD_SHIFT_MAX_RATIO * s->unorm) ||
            flat_moved(s, s->next_check - 2 * HOUR_BUCKETS, s->next_check - HOUR_BUCKETS)) {
            s->state = 0;           /* the rows went back, another way or further */
            return;
        }
        if (++s->hours_ok >= AD_SHIFT_CONFIRM)
            s->state = 2;
    }
}

void ad_shift_row(ad_shift *s, int64_t ts, const double *x)
{
    int64_t b;
    int k;

    if (s == NULL)
        return;
    b = bucket_of(s, ts);
    if (s->cur != INT64_MIN && b < s->cur)
        return;
    k = slot_of(b);
    if (s->idx[k] != b) {
        s->idx[k] = b;
        memset(s->sum + (size_t)k * s->F, 0, (size_t)s->F * sizeof(double));
        memset(s->n + (size_t)k * s->F, 0, (size_t)s->F * sizeof(int));
    }
    s->cur = b;
    judge_hours(s, b);
    for (int f = 0; f < s->F; f++)
        if (isfinite(x[f])) {
            s->sum[(size_t)k * s->F + f] += x[f];
            s->n[(size_t)k * s->F + f]++;
        }
}

void ad_shift_cleared(ad_shift *s, int64_t start_ms, int64_t end_ms)
{
    int64_t a, e;
    double norm;

    if (s == NULL || s->cur == INT64_MIN)
        return;
    a = bucket_of(s, start_ms);
    e = bucket_of(s, end_ms);
    s->state = 0;
    /* the period before the alert's start, all in the ring */
    if (a - AD_SHIFT_BUCKETS <= s->cur - AD_SHIFT_RING || e < a)
        return;
    s->ref_base = a - AD_SHIFT_BUCKETS;
    for (int f = 0; f < s->F; f++) {
        double m = 0, v = 0;
        int k = 0;

        for (int j = 0; j < AD_SHIFT_BUCKETS; j++) {
            double y = bucket_mean(s, s->ref_base + j, f);
            s->ref[(size_t)j * s->F + f] = y;
            if (!isnan(y)) {
                m += y;
                k++;
            }
        }
        s->sd[f] = 0;
        s->tol[f] = NAN;
        if (k < AD_SHIFT_BUCKETS / 2)
            continue;               /* too little of the period to judge */
        m /= k;
        for (int j = 0; j < AD_SHIFT_BUCKETS; j++) {
            double y = s->ref[(size_t)j * s->F + f];
            if (!isnan(y))
                v += (y - m) * (y - m);
        }
        s->sd[f] = sqrt(v / k);
        /* a spread under AD_SHIFT_FLAT of the level, or of 1 for a level
         * under 1 (rounding noise of a constant; a feature near 0 whose
         * tiny noise would make any move of it worth thousands of spreads
         * and take over the direction) is none: the feature is flat, left
         * out of the direction, and vetoes when it moves by more than
         * AD_SHIFT_FLAT_TOL of its level (of 1 at level 0: a valve, a
         * status bit) */
        if (!(s->sd[f] > AD_SHIFT_FLAT * fmax(fabs(m), 1.0))) {
            s->sd[f] = 0;
            s->tol[f] = AD_SHIFT_FLAT_TOL * fmax(fabs(m), 1.0);
        }
    }
    norm = displacement(s, e + 1 - AD_SHIFT_NOW, e + 1, s->u);
    if (!(norm >= AD_SHIFT_MIN) || flat_moved(s, e + 1 - AD_SHIFT_NOW, e + 1))
        return;
    s->unorm = norm;
    s->state = 1;
    s->hours_ok = 0;
    s->next_check = e + 1 + HOUR_BUCKETS;
    s->expire = e + 1 + 2 * AD_SHIFT_BUCKETS;
    s->expire_max = e + 1 + (int64_t)AD_SHIFT_MAX_PERIODS * AD_SHIFT_BUCKETS;
}

int ad_shift_holds(ad_shift *s, int64_t ts)
{
    int64_t b;
    double h;

    if (s == NULL || s->state != 2)
        return 0;
    b = bucket_of(s, ts);
    judge_hours(s, b);
    if (s->state != 2)
        return 0;
    h = displacement(s, b + 1 - AD_SHIFT_NOW, b + 1, s->tmp);
    return h >= 0 && cosine_u(s, s->tmp, h) >= AD_SHIFT_COS &&
           h <= AD_SHIFT_MAX_RATIO * s->unorm && !flat_moved(s, b + 1 - AD_SHIFT_NOW, b + 1);
}

void ad_shift_kept(ad_shift *s, int64_t ts)
{
    int64_t until;

    if (s == NULL || s->state != 2)
        return;
    /* to the end of the bucket a period on: the same phase's windows */
    until = bucket_of(s, ts) + 1 + AD_SHIFT_BUCKETS;
    if (until > s->expire_max)
        until = s->expire_max;
    if (until > s->expire)
        s->expire = until;
}

int ad_shift_state(const ad_shift *s)
{
    return s == NULL ? 0 : s->state;
}
