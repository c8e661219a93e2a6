/*
 * season.c - the score level of each phase of a period (see season.h).
 */
#include "season.h"
#include "ad.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B AD_SEASON_BINS
#define NO_ROW INT64_MIN

typedef struct {
    int64_t k;                  /* period index, NO_ROW when unused */
    float max[B];               /* NAN: no score in the bin */
} row;

struct ad_season {
    int64_t P;
    int R, N, nr;               /* R of the last N = 2R - 1 periods; nr = N + 2 rows */
    int half;                   /* +- bins a phase looks at */
    int64_t newest;             /* highest k seen, NO_ROW before any */
    row *rows;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void clear_row(row *r)
{
    int i;

    r->k = NO_ROW;
    for (i = 0; i < B; i++)
        r->max[i] = NAN;
}

int ad_season_new(ad_season **out, int64_t period_ms, int periods, char *err, size_t errlen)
{
    ad_season *s;

    *out = NULL;
    if (period_ms < B)
        return ad_errf(err, errlen, AD_EINVAL, "season: period %lld ms is shorter than %d ms",
                       (long long)period_ms, B);
    if (periods < 1 || periods > AD_SEASON_MAX_PERIODS)
        return ad_errf(err, errlen, AD_EINVAL, "season: periods must be 1..%d (got %d)",
                       AD_SEASON_MAX_PERIODS, periods);
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->rows = calloc(2 * (size_t)periods + 1, sizeof(row))) == NULL) {
        free(s);
        return ad_errf(err, errlen, AD_ENOMEM, "season: out of memory");
    }
    s->P = period_ms;
    s->R = periods;
    s->N = 2 * periods - 1;
    s->nr = s->N + 2;
    s->half = AD_SEASON_HALF;
    ad_season_reset(s);
    *out = s;
    return 0;
}

void ad_season_free(ad_season *s)
{
    if (s == NULL)
        return;
    free(s->rows);
    free(s);
}

void ad_season_reset(ad_season *s)
{
    int i;

    for (i = 0; i < s->nr; i++)
        clear_row(&s->rows[i]);
    s->newest = NO_ROW;
}

static row *find(const ad_season *s, int64_t k)
{
    int i;

    for (i = 0; i < s->nr; i++)
        if (s->rows[i].k == k)
            return &s->rows[i];
    return NULL;
}

/* Start period k, newer than every kept one: rows older than k - N - 1
 * are never looked at again and are freed; the others lie in k - N - 1 ..
 * k - 1, at most N + 1 of the N + 2 rows, so one is free (and clear). */
static row *start(ad_season *s, int64_t k)
{
    row *fr = NULL;
    int i;

    for (i = 0; i < s->nr; i++) {
        row *r = &s->rows[i];
        if (r->k != NO_ROW && r->k < k - s->N - 1)
            clear_row(r);
        if (r->k == NO_ROW && fr == NULL)
            fr = r;
    }
    fr->k = k;
    s->newest = k;
    return fr;
}

static void locate(const ad_season *s, int64_t ts, int64_t *k, int *bin)
{
    int64_t ph = ts % s->P;

    if (ph < 0)
        ph += s->P;                               /* 0 .. P-1 */
    *k = floor_div(ts, s->P);
    *bin = (int)((double)ph * B / (double)s->P);
    if (*bin >= B)
        *bin = B - 1;
}

void ad_season_add(ad_season *s, int64_t ts_ms, double score)
{
    int64_t k;
    int b;
    row *r;

    if (!isfinite(score) || ts_ms > AD_SEASON_TS_MAX || ts_ms < -AD_SEASON_TS_MAX)
        return;
    locate(s, ts_ms, &k, &b);
    if (s->newest != NO_ROW && k < s->newest - s->N - 1)
        ad_season_reset(s);     /* time went back beyond every kept period
                                 * (a clock set back, a damaged saved state):
                                 * what is kept says nothing of now */
    r = find(s, k);
    if (r == NULL) {
        if (s->newest != NO_ROW && k < s->newest)
            return;                               /* a period gone by unseen */
        r = start(s, k);
    }
    if (!(r->max[b] >= (float)score))             /* also replaces NAN */
        r->max[b] = (float)score;
}

/* The highest score near bin b of period k shifted back j periods: bins
 * b - half .. b + half, crossing into the neighbouring period at the
 * ends. NAN when none. */
static double near_max(const ad_season *s, int64_t k, int b, int j)
{
    int64_t g0 = (k - j) * (int64_t)B + b, g;
    double m = NAN;

    for (g = g0 - s->half; g <= g0 + s->half; g++) {
        int64_t kk = floor_div(g, B);
        const row *r = find(s, kk);
        float v;

        if (r == NULL)
            continue;
        v = r->max[g - kk * B];
        if (v == v && !(m >= v))
            m = v;
    }
    return m;
}

/* The R-th highest of the N periods' maxima near the phase (NAN when
 * fewer than R have one). */
static double level_at(const ad_season *s, int64_t k, int b)
{
    double top[AD_SEASON_MAX_PERIODS], m;
    int j, n = 0, i;

    for (j = 1; j <= s->N; j++) {
        m = near_max(s, k, b, j);
        if (isnan(m))
            continue;
        /* insert into the descending top R */
        for (i = n < s->R ? n++ : s->R; i > 0 && top[i - 1] < m; i--)
            if (i < s->R)
                top[i] = top[i - 1];
        if (i < s->R)
            top[i] = m;
    }
    return n < s->R ? NAN : top[s->R - 1];
}

double ad_season_level(const ad_season *s, int64_t ts_ms)
{
    int64_t k;
    int b;

    if (s == NULL || s->newest == NO_ROW || ts_ms > AD_SEASON_TS_MAX ||
        ts_ms < -AD_SEASON_TS_MAX)
        return NAN;
    locate(s, ts_ms, &k, &b);
    return level_at(s, k, b);
}

int ad_season_phases(const ad_season *s, int64_t ts_ms)
{
    int64_t k;
    int b, n = 0;

    if (s == NULL || s->newest == NO_ROW || ts_ms > AD_SEASON_TS_MAX ||
        ts_ms < -AD_SEASON_TS_MAX)
        return 0;
    locate(s, ts_ms, &k, &b);
    for (b = 0; b < B; b++)
        n += !isnan(level_at(s, k, b));
    return n;
}

void ad_season_scale(ad_season *s, double ratio)
{
    int i, b;

    if (!(ratio > 0) || !isfinite(ratio)) {
        ad_season_reset(s);
        return;
    }
    for (i = 0; i < s->nr; i++)
        for (b = 0; b < B; b++) {
            float v = (float)(s->rows[i].max[b] * ratio);
            if (isinf(v)) {                     /* beyond float: unusable */
                ad_season_reset(s);
                return;
            }
            s->rows[i].max[b] = v;
        }
}

void ad_season_set_span(ad_season *s, double span_ms)
{
    double h = ceil(span_ms * B / (double)s->P);

    s->half = !(h > AD_SEASON_HALF) ? AD_SEASON_HALF : h > B / 4 ? B / 4 : (int)h;
}

int ad_season_half(const ad_season *s) { return s->half; }

int64_t ad_season_period(const ad_season *s) { return s->P; }
int ad_season_periods(const ad_season *s) { return s->R; }

cJSON *ad_season_save(const ad_season *s)
{
    cJSON *o = cJSON_CreateObject(), *rows, *r, *m;
    int i, b;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "period_ms", (double)s->P) ||
        !cJSON_AddNumberToObject(o, "bins", B) ||
        (rows = cJSON_AddArrayToObject(o, "rows")) == NULL)
        goto fail;
    for (i = 0; i < s->nr; i++) {
        if (s->rows[i].k == NO_ROW)
            continue;
        if ((r = cJSON_CreateObject()) == NULL)
            goto fail;
        cJSON_AddItemToArray(rows, r);
        if (!cJSON_AddNumberToObject(r, "k", (double)s->rows[i].k) ||
            (m = cJSON_AddArrayToObject(r, "max")) == NULL)
            goto fail;
        for (b = 0; b < B; b++) {
            float v = s->rows[i].max[b];
            cJSON *x = v == v ? cJSON_CreateNumber(v) : cJSON_CreateNull();
            if (x == NULL)
                goto fail;
            cJSON_AddItemToArray(m, x);
        }
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* One saved row: k an integer period index within the timestamps kept
 * (|k| <= AD_SEASON_TS_MAX / P), max B finite numbers or null. */
static int row_ok(const ad_season *s, const cJSON *r, int64_t *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, "k");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "max"), *v;

    if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= (double)(AD_SEASON_TS_MAX / s->P)) ||
        x->valuedouble != floor(x->valuedouble) || !cJSON_IsArray(m) ||
        cJSON_GetArraySize(m) != B)
        return 0;
    cJSON_ArrayForEach(v, m)
        if (!cJSON_IsNull(v) && !(cJSON_IsNumber(v) && fabs(v->valuedouble) <= 3e38))
            return 0;
    *k = (int64_t)x->valuedouble;
    return 1;
}

int ad_season_restore(ad_season *s, const cJSON *o, char *err, size_t errlen)
{
    const cJSON *x, *rows, *r, *v;
    int n = 0, b, used = 0;
    int64_t k, newest = NO_ROW;

    ad_season_reset(s);
    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EFORMAT, "season: not an object");
    x = cJSON_GetObjectItemCaseSensitive(o, "period_ms");
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)s->P)
        return ad_errf(err, errlen, AD_EINVAL, "season: saved for another period (now %lld ms)",
                       (long long)s->P);
    x = cJSON_GetObjectItemCaseSensitive(o, "bins");
    if (!cJSON_IsNumber(x) || x->valuedouble != B)
        return ad_errf(err, errlen, AD_EFORMAT, "season: bins must be %d", B);
    rows = cJSON_GetObjectItemCaseSensitive(o, "rows");
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) > 2 * AD_SEASON_MAX_PERIODS + 1)
        return ad_errf(err, errlen, AD_EFORMAT, "season: rows must be an array of at most %d",
                       2 * AD_SEASON_MAX_PERIODS + 1);
    /* all rows checked first; the newest N + 2 periods are kept (fewer
     * than saved when season_periods was lowered) */
    cJSON_ArrayForEach(r, rows) {
        n++;
        if (!row_ok(s, r, &k))
            return ad_errf(err, errlen, AD_EFORMAT,
                           "season: row %d needs an integer k (|k| <= %lld) and max: %d "
                           "finite numbers or null", n, (long long)(AD_SEASON_TS_MAX / s->P), B);
        if (newest == NO_ROW || k > newest)
            newest = k;
    }
    cJSON_ArrayForEach(r, rows) {
        row *dst;

        row_ok(s, r, &k);
        if (k < newest - s->N - 1)
            continue;
        if (find(s, k) != NULL) {
            ad_season_reset(s);
            return ad_errf(err, errlen, AD_EFORMAT, "season: period %lld saved twice",
                           (long long)k);
        }
        dst = &s->rows[used++];         /* distinct k in N + 2 values: fits */
        dst->k = k;
        b = 0;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r, "max"))
            dst->max[b++] = cJSON_IsNull(v) ? NAN : (float)v->valuedouble;
    }
    s->newest = newest;
    return 0;
}
