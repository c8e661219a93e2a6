/*
 * shift.c - a kept change (shift.h).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shift.h"
#include "ad.h"

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
    int64_t said_expire;        /* the end last said (kept, restored or renewed) */
    int hours_ok;
    int64_t kept_ms;            /* data time it was kept at (state 2) */
    int ended_why;              /* why the last kept change ended (AD_SHIFT_END_*) */
    int64_t run_ms;             /* first window of those held in a row, INT64_MIN: none */
    int64_t run_last_ms;        /* ... and the last (run_ms set) */
    int64_t last_run_ms;        /* how long the last run of them lasted, -1: none */
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
    s->run_ms = INT64_MIN;
    s->last_run_ms = -1;
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

/* 1 when a feature the reference had (a spread or flat) has no value in
 * any row of buckets [b0, b1) while others have: a sensor gone silent
 * says nothing of the way the rows moved, and the direction of the rest
 * would hold without it (it vetoes). */
static int ref_missing(const ad_shift *s, int64_t b0, int64_t b1)
{
    int any = 0, gone = 0;

    for (int f = 0; f < s->F; f++) {
        int have = 0;

        for (int64_t b = b0; b < b1 && !have; b++)
            have = !isnan(bucket_mean(s, b, f));
        any |= have;
        if (!have && (s->sd[f] > 0 || !isnan(s->tol[f])))
            gone = 1;
    }
    return any && gone;
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
    /* a renewed end (RENEWED) falls anywhere in an hour: ended there, not
     * at the next hour judged (else windows after it are kept, and renew) */
    if (s->state != 0 && b >= s->expire) {
        s->state = 0;
        s->ended_why = AD_SHIFT_END_EXPIRED;
        return;
    }
    while (s->state != 0 && b >= s->next_check) {
        double h;

        if (s->next_check >= s->expire) {
            s->state = 0;
            s->ended_why = AD_SHIFT_END_EXPIRED;
            return;
        }
        h = displacement(s, s->next_check - HOUR_BUCKETS, s->next_check, s->tmp);
        s->next_check += HOUR_BUCKETS;
        if (h < 0)
            continue;               /* no rows that hour: nothing to judge */
        /* went back: under half of |u| and under what makes a change at
         * all (AD_SHIFT_MIN); a step shows less at some hours of the cycle
         * than at its clear (in spreads of the reference's swing, against
         * a reference day's own noise at that hour), and an hour that
         * still moves the rows the change's way by a change's worth is
         * the change, not its end */
        if (!(cosine_u(s, s->tmp, h) >= AD_SHIFT_COS) ||
            !(h >= fmin(0.5 * s->unorm, AD_SHIFT_MIN)) ||
            !(h <= AD_SHIFT_MAX_RATIO * s->unorm) ||
            flat_moved(s, s->next_check - 2 * HOUR_BUCKETS, s->next_check - HOUR_BUCKETS)) {
            s->state = 0;           /* the rows went back, another way or further */
            s->ended_why = AD_SHIFT_END_MOVED;
            return;
        }
        if (++s->hours_ok >= AD_SHIFT_CONFIRM && s->state != 2) {
            s->state = 2;
            s->kept_ms = s->next_check * s->B;
            s->said_expire = s->expire;
        }
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
        /* FLAT: a spread of rounding only (at a level of exactly 0, none:
         * a valve shut, a status bit, a constant): left out of the
         * direction, and vetoes when it moves by more than
         * AD_SHIFT_FLAT_TOL of its level, any move at all at 0. Any
         * other feature counts, by its move against its spread floored
         * at AD_SHIFT_FLAT x max(|level|, 1): a feature near 0 with tiny
         * noise, or a temperature of 300 K +- 0.02, counts by how far it
         * moved without its tiny noise making any move of it worth
         * thousands of spreads and taking over the direction. */
        if (!(s->sd[f] > AD_SHIFT_ROUND * fabs(m))) {
            s->sd[f] = 0;
            s->tol[f] = AD_SHIFT_FLAT_TOL * fabs(m);
        } else {
            s->sd[f] = fmax(s->sd[f], AD_SHIFT_FLAT * fmax(fabs(m), 1.0));
        }
    }
    norm = displacement(s, e + 1 - AD_SHIFT_NOW, e + 1, s->u);
    if (!(norm >= AD_SHIFT_MIN) || flat_moved(s, e + 1 - AD_SHIFT_NOW, e + 1))
        return;
    s->unorm = norm;
    s->state = 1;
    s->hours_ok = 0;
    s->kept_ms = 0;
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
           h <= AD_SHIFT_MAX_RATIO * s->unorm && !flat_moved(s, b + 1 - AD_SHIFT_NOW, b + 1) &&
           !ref_missing(s, b + 1 - AD_SHIFT_NOW, b + 1);
}

/* The run under way ends: how long it lasted, from its first window held
 * to its last. */
static void run_over(ad_shift *s)
{
    if (s->run_ms != INT64_MIN)
        s->last_run_ms = s->run_last_ms - s->run_ms;
    s->run_ms = INT64_MIN;
}

int ad_shift_hold_run(ad_shift *s, int64_t ts, int held)
{
    int64_t gap;

    if (s == NULL)
        return 0;
    /* the stretch under the threshold that ends the run: a dip of a few
     * windows is the same fault scoring lower a while */
    gap = s->B * (AD_SHIFT_BUCKETS / AD_SHIFT_RUN_GAP_DIV);
    if (s->state != 2) {
        run_over(s);
        return 0;
    }
    if (!held) {
        if (s->run_ms != INT64_MIN && ts - s->run_last_ms >= gap)
            run_over(s);
        return 0;
    }
    if (s->run_ms != INT64_MIN && (ts < s->run_ms || ts - s->run_last_ms >= gap))
        run_over(s);            /* no window came for as long: a new run */
    if (s->run_ms == INT64_MIN)
        s->run_ms = ts;
    s->run_last_ms = ts;
    if (ts - s->run_ms > s->B * (AD_SHIFT_BUCKETS / AD_SHIFT_HOLD_DIV)) {
        run_over(s);
        ad_shift_end(s, AD_SHIFT_END_HELD);
        return 0;
    }
    return 1;
}

int64_t ad_shift_last_run(const ad_shift *s)
{
    return s == NULL ? -1 : s->last_run_ms;
}

void ad_shift_end(ad_shift *s, int why)
{
    if (s == NULL || s->state == 0)
        return;
    s->state = 0;
    s->ended_why = why;
}

int ad_shift_kept(const ad_shift *s, ad_shift_info *in)
{
    if (s == NULL || s->state != 2)
        return 0;
    if (in != NULL) {
        in->since_ms = s->kept_ms;
        in->until_ms = s->expire * s->B;
        in->norm = s->unorm;
        in->u = s->u;
        in->F = s->F;
    }
    return 1;
}

int ad_shift_ended_why(const ad_shift *s)
{
    return s == NULL ? 0 : s->ended_why;
}

int ad_shift_renew(ad_shift *s, int64_t ts)
{
    int64_t until;

    if (s == NULL || s->state != 2)
        return 0;
    /* to the end of the bucket a period on: the same phase's windows */
    until = bucket_of(s, ts) + 1 + AD_SHIFT_BUCKETS;
    if (until > s->expire_max)
        until = s->expire_max;
    if (until > s->expire)
        s->expire = until;
    /* said again (the retained state's end, the saved state a restart
     * holds it to) once it moved an hour: each kept window moves it a
     * bucket, and a restart from an end said at most an hour early still
     * meets the next period's windows from where the last ones began */
    if (s->expire - s->said_expire < HOUR_BUCKETS)
        return 0;
    s->said_expire = s->expire;
    return 1;
}

int ad_shift_state(const ad_shift *s)
{
    return s == NULL ? 0 : s->state;
}


/* ---- saved state (shift.h SAVED STATE) ---- */

static cJSON *num_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();

    for (int i = 0; a != NULL && i < n; i++) {
        cJSON *x = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
        if (x == NULL || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

cJSON *ad_shift_save(const ad_shift *s)
{
    cJSON *o, *bk, *c;

    if (s == NULL || s->cur == INT64_MIN)
        return NULL;
    if ((o = cJSON_CreateObject()) == NULL ||
        !cJSON_AddNumberToObject(o, "bucket_ms", (double)s->B) ||
        !cJSON_AddNumberToObject(o, "cur", (double)s->cur) ||
        (bk = cJSON_AddArrayToObject(o, "buckets")) == NULL)
        goto fail;
    /* oldest first, the buckets the ring still holds */
    for (int64_t b = s->cur - AD_SHIFT_RING + 1; b <= s->cur; b++) {
        int k = slot_of(b);
        cJSON *e, *x;

        if (s->idx[k] != b)
            continue;
        if ((e = cJSON_CreateArray()) == NULL || !cJSON_AddItemToArray(bk, e) ||
            (x = cJSON_CreateNumber((double)b)) == NULL || !cJSON_AddItemToArray(e, x) ||
            (x = num_array(s->sum + (size_t)k * s->F, s->F)) == NULL ||
            !cJSON_AddItemToArray(e, x) || (x = cJSON_CreateArray()) == NULL ||
            !cJSON_AddItemToArray(e, x))
            goto fail;
        for (int f = 0; f < s->F; f++) {
            cJSON *y = cJSON_CreateNumber(s->n[(size_t)k * s->F + f]);
            if (y == NULL || !cJSON_AddItemToArray(x, y))
                goto fail;
        }
    }
    if (s->state != 0) {
        cJSON *x;

        if ((c = cJSON_AddObjectToObject(o, "change")) == NULL ||
            !cJSON_AddNumberToObject(c, "state", s->state) ||
            !cJSON_AddNumberToObject(c, "ref_base", (double)s->ref_base) ||
            !cJSON_AddNumberToObject(c, "norm", s->unorm) ||
            !cJSON_AddNumberToObject(c, "next_check", (double)s->next_check) ||
            !cJSON_AddNumberToObject(c, "expire", (double)s->expire) ||
            !cJSON_AddNumberToObject(c, "expire_max", (double)s->expire_max) ||
            !cJSON_AddNumberToObject(c, "hours_ok", s->hours_ok) ||
            !cJSON_AddNumberToObject(c, "kept_ms", (double)s->kept_ms))
            goto fail;
        /* the run of windows held in a row: a restart in it goes on with
         * it (else a fault held for most of P / 4 would be held P / 4 more
         * at each restart) */
        if (s->state == 2 && s->run_ms != INT64_MIN &&
            (!cJSON_AddNumberToObject(c, "run_ms", (double)s->run_ms) ||
             !cJSON_AddNumberToObject(c, "run_last_ms", (double)s->run_last_ms)))
            goto fail;
        if ((x = num_array(s->sd, s->F)) == NULL || !cJSON_AddItemToObject(c, "sd", x) ||
            (x = num_array(s->tol, s->F)) == NULL || !cJSON_AddItemToObject(c, "tol", x) ||
            (x = num_array(s->u, s->F)) == NULL || !cJSON_AddItemToObject(c, "u", x) ||
            (x = num_array(s->ref, AD_SHIFT_BUCKETS * s->F)) == NULL ||
            !cJSON_AddItemToObject(c, "ref", x))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static int is_index(const cJSON *x)
{
    return cJSON_IsNumber(x) && fabs(x->valuedouble) <= 1e15 &&
           x->valuedouble == floor(x->valuedouble);
}

/* n numbers of array a into out (null: NaN when nan_ok); 0 or -1 */
static int read_nums(const cJSON *a, int n, double *out, int nan_ok, int pos)
{
    int i = 0;
    const cJSON *x;

    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return -1;
    cJSON_ArrayForEach(x, a) {
        if (cJSON_IsNull(x) && nan_ok)
            out[i] = NAN;
        else if (cJSON_IsNumber(x) && isfinite(x->valuedouble) && (!pos || x->valuedouble >= 0))
            out[i] = x->valuedouble;
        else
            return -1;
        i++;
    }
    return 0;
}

int ad_shift_restore(ad_shift *s, const cJSON *o, int64_t last_ts, char *err, size_t errlen)
{
    const cJSON *bm = cJSON_GetObjectItemCaseSensitive(o, "bucket_ms");
    const cJSON *cu = cJSON_GetObjectItemCaseSensitive(o, "cur");
    const cJSON *bk = cJSON_GetObjectItemCaseSensitive(o, "buckets");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "change"), *e;
    ad_shift *t;
    int i = 0, rc = 0;

    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EFORMAT, "shift: not an object");
    if (!is_index(bm) || (int64_t)bm->valuedouble != s->B)
        return ad_errf(err, errlen, AD_EINVAL, "shift: bucket_ms is not %lld (another "
                       "alert.accept_period_ms)", (long long)s->B);
    /* a bucket index whose times (index x B, a kept change's end 2 P on)
     * fit in an int64_t */
    if (!is_index(cu) || fabs(cu->valuedouble) > (double)(INT64_MAX / s->B / 2) ||
        !cJSON_IsArray(bk) || cJSON_GetArraySize(bk) > AD_SHIFT_RING)
        return ad_errf(err, errlen, AD_EFORMAT, "shift: cur, buckets: not a bucket index and "
                       "an array of at most %d buckets", AD_SHIFT_RING);
    /* the ring ends at the stream's last row; past it (the clock stepped
     * back and the stream starts its rows anew from now), its buckets
     * would be taken for those of the times met again, and the rows
     * until it was reached again dropped */
    if (last_ts != INT64_MIN && (int64_t)cu->valuedouble > bucket_of(s, last_ts))
        return ad_errf(err, errlen, AD_EINVAL, "shift: its rows end after the stream's last "
                       "row (the clock stepped back)");
    /* read whole into a scratch copy: a damaged part leaves s as it was */
    if ((t = ad_shift_new(s->F, s->B * AD_SHIFT_BUCKETS)) == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "shift: out of memory");
    t->cur = (int64_t)cu->valuedouble;
    cJSON_ArrayForEach(e, bk) {
        const cJSON *b = cJSON_GetArrayItem(e, 0), *cnt = cJSON_GetArrayItem(e, 2);
        double *cn = t->tmp;
        int64_t bi;
        int k;

        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 3 || !is_index(b) ||
            (bi = (int64_t)b->valuedouble) > t->cur || bi <= t->cur - AD_SHIFT_RING ||
            t->idx[k = slot_of(bi)] == bi ||
            read_nums(cJSON_GetArrayItem(e, 1), t->F, t->sum + (size_t)k * t->F, 0, 0) != 0 ||
            read_nums(cnt, t->F, cn, 0, 1) != 0) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "shift: buckets[%d]: not [index within the "
                         "%d before cur, %d sums, %d counts >= 0]", i, AD_SHIFT_RING, t->F,
                         t->F);
            goto out;
        }
        t->idx[k] = bi;
        for (int f = 0; f < t->F; f++) {
            if (cn[f] != floor(cn[f]) || cn[f] > 1e9) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "shift: buckets[%d]: count %d not a "
                             "whole number", i, f);
                goto out;
            }
            t->n[(size_t)k * t->F + f] = (int)cn[f];
        }
        i++;
    }
    if (c != NULL) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(c, "state");
        const cJSON *rb = cJSON_GetObjectItemCaseSensitive(c, "ref_base");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "norm");
        const cJSON *nc = cJSON_GetObjectItemCaseSensitive(c, "next_check");
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(c, "expire");
        /* absent in a state saved before RENEWED: no renewal past expire */
        const cJSON *em = cJSON_GetObjectItemCaseSensitive(c, "expire_max");
        const cJSON *ho = cJSON_GetObjectItemCaseSensitive(c, "hours_ok");
        const cJSON *km = cJSON_GetObjectItemCaseSensitive(c, "kept_ms");
        const cJSON *rm = cJSON_GetObjectItemCaseSensitive(c, "run_ms");
        /* absent in a state saved before the run outlasted a dip: its
         * last window not known, taken as the stream's last row (else its
         * first), so a restart does not start the run anew */
        const cJSON *rl = cJSON_GetObjectItemCaseSensitive(c, "run_last_ms");

        if (!cJSON_IsObject(c) || !cJSON_IsNumber(st) ||
            (st->valuedouble != 1 && st->valuedouble != 2) || !is_index(rb) ||
            !cJSON_IsNumber(nm) || !(nm->valuedouble >= AD_SHIFT_MIN) ||
            !isfinite(nm->valuedouble) || !is_index(nc) || !is_index(ex) ||
            !is_index(ho) || ho->valuedouble < 0 || ho->valuedouble > 1e6 || !is_index(km) ||
            /* expire starts 2 periods after the clear, expire_max 7 */
            (em != NULL && (!is_index(em) || em->valuedouble < ex->valuedouble ||
                            em->valuedouble - ex->valuedouble >
                                (double)(AD_SHIFT_MAX_PERIODS - 2) * AD_SHIFT_BUCKETS)) ||
            (rm != NULL && (!is_index(rm) || st->valuedouble != 2 ||
                            (last_ts != INT64_MIN && rm->valuedouble > (double)last_ts))) ||
            (rl != NULL && (rm == NULL || !is_index(rl) || rl->valuedouble < rm->valuedouble ||
                            (last_ts != INT64_MIN && rl->valuedouble > (double)last_ts)))) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "shift: change: state (1 or 2), ref_base, "
                         "norm (>= %g), next_check, expire, expire_max, hours_ok, kept_ms, "
                         "run_ms or run_last_ms missing or out of range", AD_SHIFT_MIN);
            goto out;
        }
        /* as ad_shift_cleared left them: the clear's bucket e at or before
         * cur, the reference the period before the alert's start in the
         * ring then, the end 2 P after e (later when RENEWED, never past
         * the bound AD_SHIFT_MAX_PERIODS P after e, saved as expire_max; a
         * state from before RENEWED has none: its end is 2 P after e), the
         * hours judged from e on, at most an hour past the end; so no
         * change ends later than AD_SHIFT_MAX_PERIODS P after the ring's
         * last bucket */
        {
            int64_t exi = (int64_t)ex->valuedouble;
            int64_t ei = em != NULL ?
                (int64_t)em->valuedouble - (int64_t)AD_SHIFT_MAX_PERIODS * AD_SHIFT_BUCKETS - 1 :
                exi - 2 * AD_SHIFT_BUCKETS - 1;
            int64_t rbi = (int64_t)rb->valuedouble, nci = (int64_t)nc->valuedouble;

            if (ei > t->cur || ei - rbi < AD_SHIFT_BUCKETS ||
                ei - rbi >= AD_SHIFT_BUCKETS + AD_SHIFT_RING || nci <= ei ||
                exi < ei + 2 * AD_SHIFT_BUCKETS + 1 || nci > exi + HOUR_BUCKETS ||
                (st->valuedouble == 2 && ho->valuedouble < AD_SHIFT_CONFIRM)) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "shift: change: ref_base %lld, "
                             "next_check %lld, expire %lld, hours_ok %d: not of a clear at "
                             "or before cur %lld", (long long)rbi, (long long)nci,
                             (long long)exi,
                             (int)ho->valuedouble, (long long)t->cur);
                goto out;
            }
        }
        if (read_nums(cJSON_GetObjectItemCaseSensitive(c, "sd"), t->F, t->sd, 0, 1) != 0 ||
            read_nums(cJSON_GetObjectItemCaseSensitive(c, "tol"), t->F, t->tol, 1, 1) != 0 ||
            read_nums(cJSON_GetObjectItemCaseSensitive(c, "u"), t->F, t->u, 0, 0) != 0 ||
            read_nums(cJSON_GetObjectItemCaseSensitive(c, "ref"), AD_SHIFT_BUCKETS * t->F,
                      t->ref, 1, 0) != 0) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "shift: change: sd, tol, u (%d numbers "
                         "each) or ref (%d) damaged", t->F, AD_SHIFT_BUCKETS * t->F);
            goto out;
        }
        /* u is the displacement of norm, over the features with a spread
         * (a flat one has a tolerance instead, and no move in u): another
         * u would turn the cosine with it into any number */
        {
            double nn = 0;

            for (int f = 0; f < t->F; f++) {
                if ((t->sd[f] > 0 && !isnan(t->tol[f])) || (!(t->sd[f] > 0) && t->u[f] != 0))
                    nn = INFINITY;
                nn += t->u[f] * t->u[f];
            }
            if (!(fabs(sqrt(nn) - nm->valuedouble) <= 1e-9 * nm->valuedouble)) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "shift: change: u is not a displacement "
                             "of norm %g over the features with a spread", nm->valuedouble);
                goto out;
            }
        }
        t->state = (int)st->valuedouble;
        t->ref_base = (int64_t)rb->valuedouble;
        t->unorm = nm->valuedouble;
        t->next_check = (int64_t)nc->valuedouble;
        t->expire = (int64_t)ex->valuedouble;
        t->expire_max = em != NULL ? (int64_t)em->valuedouble : t->expire;
        t->hours_ok = (int)ho->valuedouble;
        t->kept_ms = (int64_t)km->valuedouble;
        if (rm != NULL) {
            t->run_ms = (int64_t)rm->valuedouble;
            t->run_last_ms = rl != NULL ? (int64_t)rl->valuedouble :
                             last_ts != INT64_MIN && last_ts > t->run_ms ? last_ts : t->run_ms;
        }
    }
    /* taken: t's arrays into s */
#define SWAP(fld) do { void *p_ = (void *)s->fld; s->fld = t->fld; t->fld = p_; } while (0)
    SWAP(idx);
    SWAP(sum);
    SWAP(n);
    SWAP(ref);
    SWAP(sd);
    SWAP(tol);
    SWAP(u);
#undef SWAP
    s->cur = t->cur;
    s->state = t->state;
    s->ref_base = t->ref_base;
    s->unorm = t->unorm;
    s->next_check = t->next_check;
    s->expire = t->expire;
    s->expire_max = t->expire_max;
    s->said_expire = t->expire;
    s->hours_ok = t->hours_ok;
    s->kept_ms = t->kept_ms;
    s->run_ms = t->run_ms;
    s->run_last_ms = t->run_last_ms;
out:
    ad_shift_free(t);
    return rc;
}
