/*
 * noise.c - the noise test (see noise.h): per feature, the robust spread
 * of successive differences over blocks of data against its usual level.
 */
#include "noise.h"
#include "ad.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ad_noise {
    int F;
    int64_t span;
    double ratio;
    float *diff;        /* F x AD_NOISE_MAX_N: the block's differences */
    int *nd;            /* F: differences in the block */
    int64_t *bstart;    /* F: the block's first sample's time, INT64_MIN: none */
    double *prev;       /* F: the last trusted sample, NaN: none (a gap) */
    double *usual;      /* F x AD_NOISE_KEEP: usual levels, a ring */
    int *un, *upos;     /* F: levels held, next slot */
    unsigned char *judging; /* F: warmed up (or accepted once) */
    int64_t *run;       /* F: the run's start, INT64_MIN: none */
    int64_t *run_end;   /* F: the end of its last block */
    double *run_level;  /* F: the level of its last block */
    double *recent;     /* F x AD_NOISE_RECENT: the last levels judged or
                         * learned, a ring (what an acceptance takes) */
    int *rn, *rpos;     /* F: levels held, next slot */
    double *last;       /* F: the last judged ratio, NaN: none */
    double *tmp;        /* AD_NOISE_MAX_N: scratch for medians */
};

ad_noise *ad_noise_new(int F, int64_t span_ms, double ratio)
{
    ad_noise *n;

    if (F <= 0 || span_ms <= 0 || !(ratio > 1) || !isfinite(ratio))
        return NULL;
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->F = F;
    n->span = span_ms;
    n->ratio = ratio;
    n->diff = malloc((size_t)F * AD_NOISE_MAX_N * sizeof(float));
    n->nd = calloc((size_t)F, sizeof(int));
    n->bstart = malloc((size_t)F * sizeof(int64_t));
    n->prev = malloc((size_t)F * sizeof(double));
    n->usual = calloc((size_t)F * AD_NOISE_KEEP, sizeof(double));
    n->un = calloc((size_t)F, sizeof(int));
    n->upos = calloc((size_t)F, sizeof(int));
    n->judging = calloc((size_t)F, 1);
    n->run = malloc((size_t)F * sizeof(int64_t));
    n->run_end = malloc((size_t)F * sizeof(int64_t));
    n->last = malloc((size_t)F * sizeof(double));
    n->run_level = calloc((size_t)F, sizeof(double));
    n->recent = calloc((size_t)F * AD_NOISE_RECENT, sizeof(double));
    n->rn = calloc((size_t)F, sizeof(int));
    n->rpos = calloc((size_t)F, sizeof(int));
    n->tmp = malloc(AD_NOISE_MAX_N * sizeof(double));
    if (n->diff == NULL || n->nd == NULL || n->bstart == NULL || n->prev == NULL ||
        n->usual == NULL || n->un == NULL || n->upos == NULL || n->judging == NULL ||
        n->run == NULL || n->run_end == NULL || n->last == NULL || n->tmp == NULL ||
        n->run_level == NULL || n->recent == NULL || n->rn == NULL || n->rpos == NULL) {
        ad_noise_free(n);
        return NULL;
    }
    for (int f = 0; f < F; f++) {
        n->bstart[f] = INT64_MIN;
        n->prev[f] = NAN;
        n->run[f] = n->run_end[f] = INT64_MIN;
        n->last[f] = NAN;
    }
    return n;
}

void ad_noise_free(ad_noise *n)
{
    if (n == NULL)
        return;
    free(n->diff);
    free(n->nd);
    free(n->bstart);
    free(n->prev);
    free(n->usual);
    free(n->un);
    free(n->upos);
    free(n->judging);
    free(n->run);
    free(n->run_end);
    free(n->last);
    free(n->run_level);
    free(n->recent);
    free(n->rn);
    free(n->rpos);
    free(n->tmp);
    free(n);
}

void ad_noise_reset(ad_noise *n)
{
    for (int f = 0; f < n->F; f++)
        n->prev[f] = NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the median of x[0..k) (k >= 1), sorting x */
static double median(double *x, int k)
{
    qsort(x, (size_t)k, sizeof(double), cmp_double);
    return k % 2 ? x[k / 2] : 0.5 * (x[k / 2 - 1] + x[k / 2]);
}

static void learn(ad_noise *n, int f, double level)
{
    n->usual[(size_t)f * AD_NOISE_KEEP + n->upos[f]] = level;
    n->upos[f] = (n->upos[f] + 1) % AD_NOISE_KEEP;
    if (n->un[f] < AD_NOISE_KEEP)
        n->un[f]++;
    if (n->un[f] >= AD_NOISE_WARM)
        n->judging[f] = 1;
}

static double usual_of(ad_noise *n, int f)
{
    int k = n->un[f];

    if (k == 0)
        return NAN;
    memcpy(n->tmp, n->usual + (size_t)f * AD_NOISE_KEEP, (size_t)k * sizeof(double));
    return median(n->tmp, k);
}

static int raised(const ad_noise *n, int f)
{
    return n->run[f] != INT64_MIN && n->run_end[f] - n->run[f] >= n->span;
}

/* the block of feature f ends at ts: its level judged, then learned or run */
static void close_block(ad_noise *n, int f, int64_t ts)
{
    int k = n->nd[f], i;
    const float *d = n->diff + (size_t)f * AD_NOISE_MAX_N;
    double m, level, u, r;
    int64_t start = n->bstart[f];

    for (i = 0; i < k; i++)
        n->tmp[i] = d[i];
    m = median(n->tmp, k);
    for (i = 0; i < k; i++)
        n->tmp[i] = fabs((double)d[i] - m);
    level = 1.4826 * median(n->tmp, k) / sqrt(2.0);
    n->nd[f] = 0;
    n->bstart[f] = INT64_MIN;
    if (!(level > 0) || !isfinite(level))
        return;                 /* frozen or coarse: neither judged nor learned */
    n->recent[(size_t)f * AD_NOISE_RECENT + n->rpos[f]] = level;
    n->rpos[f] = (n->rpos[f] + 1) % AD_NOISE_RECENT;
    if (n->rn[f] < AD_NOISE_RECENT)
        n->rn[f]++;
    if (!n->judging[f]) {
        learn(n, f, level);
        return;
    }
    u = usual_of(n, f);
    r = level / u;
    n->last[f] = r;
    /* a raised run goes on while its blocks stay over the clear ratio */
    if (r > (raised(n, f) ? 1.0 + (n->ratio - 1.0) * AD_NOISE_CLEAR : n->ratio)) {
        if (n->run[f] == INT64_MIN)
            n->run[f] = start;
        n->run_end[f] = ts;
        n->run_level[f] = level;    /* what an acceptance takes */
        return;
    }
    n->run[f] = n->run_end[f] = INT64_MIN;
    learn(n, f, level);
}

int ad_noise_push(ad_noise *n, int64_t ts, const double *values)
{
    int closed = 0;

    for (int f = 0; f < n->F; f++) {
        double x = values[f];

        if (!isfinite(x)) {
            n->prev[f] = NAN;
            continue;
        }
        if (n->bstart[f] == INT64_MIN) {
            n->bstart[f] = ts;
            n->nd[f] = 0;
        }
        if (isfinite(n->prev[f]) && n->nd[f] < AD_NOISE_MAX_N)
            n->diff[(size_t)f * AD_NOISE_MAX_N + n->nd[f]++] = (float)(x - n->prev[f]);
        n->prev[f] = x;
        if (n->nd[f] >= AD_NOISE_MAX_N ||
            (ts - n->bstart[f] >= AD_NOISE_BLOCK_MS && n->nd[f] >= AD_NOISE_MIN_N)) {
            close_block(n, f, ts);
            closed++;
        }
    }
    return closed;
}

int ad_noise_raised(const ad_noise *n, unsigned char *on)
{
    int c = 0;

    for (int f = 0; f < n->F; f++) {
        int r = raised(n, f);
        if (on)
            on[f] = (unsigned char)r;
        c += r;
    }
    return c;
}

double ad_noise_ratio(const ad_noise *n, int f)
{
    return f >= 0 && f < n->F ? n->last[f] : NAN;
}

int ad_noise_accept(ad_noise *n)
{
    int c = 0;

    for (int f = 0; f < n->F; f++) {
        int k = n->rn[f];

        if (k == 0)
            continue;
        /* the last levels are the usual ones now, whether the change
         * moved this feature's noise or not (then they are its usual
         * level anyway): they start the ring over */
        c += n->run[f] != INT64_MIN;
        n->un[f] = n->upos[f] = 0;
        for (int i = 0; i < k; i++)
            learn(n, f, n->recent[(size_t)f * AD_NOISE_RECENT +
                                  (n->rpos[f] - k + i + 2 * AD_NOISE_RECENT) % AD_NOISE_RECENT]);
        n->judging[f] = 1;
        n->run[f] = n->run_end[f] = INT64_MIN;
    }
    return c;
}

cJSON *ad_noise_save(const ad_noise *n)
{
    cJSON *o = cJSON_CreateObject(), *us, *run, *jd, *rc;

    if (o == NULL || !cJSON_AddNumberToObject(o, "span_ms", (double)n->span) ||
        !cJSON_AddNumberToObject(o, "ratio", n->ratio) ||
        (us = cJSON_AddArrayToObject(o, "usual")) == NULL ||
        (run = cJSON_AddArrayToObject(o, "run")) == NULL ||
        (jd = cJSON_AddArrayToObject(o, "judging")) == NULL ||
        (rc = cJSON_AddArrayToObject(o, "recent")) == NULL)
        goto fail;
    for (int f = 0; f < n->F; f++) {
        cJSON *a = cJSON_CreateArray(), *x;
        int k = n->un[f];

        if (a == NULL)
            goto fail;
        cJSON_AddItemToArray(us, a);
        for (int i = 0; i < k; i++) {
            /* oldest first */
            int slot = (n->upos[f] - k + i + 2 * AD_NOISE_KEEP) % AD_NOISE_KEEP;
            if ((x = cJSON_CreateNumber(n->usual[(size_t)f * AD_NOISE_KEEP + slot])) == NULL)
                goto fail;
            cJSON_AddItemToArray(a, x);
        }
        if (n->run[f] != INT64_MIN) {
            cJSON *r = cJSON_CreateArray();
            if (r == NULL)
                goto fail;
            cJSON_AddItemToArray(run, r);
            if ((x = cJSON_CreateNumber((double)n->run[f])) == NULL)
                goto fail;
            cJSON_AddItemToArray(r, x);
            if ((x = cJSON_CreateNumber((double)n->run_end[f])) == NULL)
                goto fail;
            cJSON_AddItemToArray(r, x);
            if ((x = cJSON_CreateNumber(n->run_level[f])) == NULL)
                goto fail;
            cJSON_AddItemToArray(r, x);
        } else if ((x = cJSON_CreateNull()) == NULL) {
            goto fail;
        } else {
            cJSON_AddItemToArray(run, x);
        }
        if ((x = cJSON_CreateBool(n->judging[f])) == NULL)
            goto fail;
        cJSON_AddItemToArray(jd, x);
        if ((a = cJSON_CreateArray()) == NULL)
            goto fail;
        cJSON_AddItemToArray(rc, a);
        for (int i = 0; i < n->rn[f]; i++) {
            int slot = (n->rpos[f] - n->rn[f] + i + 2 * AD_NOISE_RECENT) % AD_NOISE_RECENT;
            if ((x = cJSON_CreateNumber(n->recent[(size_t)f * AD_NOISE_RECENT + slot])) == NULL)
                goto fail;
            cJSON_AddItemToArray(a, x);
        }
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static int is_time(const cJSON *x)
{
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) && fabs(x->valuedouble) < 9.0e15 &&
           x->valuedouble == floor(x->valuedouble);
}

static int is_level(const cJSON *x)
{
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble > 0;
}

int ad_noise_restore(ad_noise *n, const cJSON *o, char *err, size_t errlen)
{
    const cJSON *us = cJSON_GetObjectItemCaseSensitive(o, "usual");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run");
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(o, "judging");
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(o, "recent");
    const cJSON *a, *x;
    int f;

    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EFORMAT, "noise: not an object");
    if (!cJSON_IsArray(us) || !cJSON_IsArray(run) || !cJSON_IsArray(jd))
        return ad_errf(err, errlen, AD_EFORMAT, "noise: usual, run, judging: not arrays");
    if (cJSON_GetArraySize(us) != n->F || cJSON_GetArraySize(run) != n->F ||
        cJSON_GetArraySize(jd) != n->F)
        return ad_errf(err, errlen, AD_EINVAL, "noise: %d features, the model %d",
                       cJSON_GetArraySize(us), n->F);
    /* checked whole first */
    f = 0;
    cJSON_ArrayForEach(a, us) {
        int i = 0;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > AD_NOISE_KEEP)
            return ad_errf(err, errlen, AD_EFORMAT, "noise: usual[%d]: not an array of at "
                           "most %d levels", f, AD_NOISE_KEEP);
        cJSON_ArrayForEach(x, a) {
            if (!is_level(x))
                return ad_errf(err, errlen, AD_EFORMAT, "noise: usual[%d][%d]: not a level "
                               "> 0", f, i);
            i++;
        }
        f++;
    }
    f = 0;
    cJSON_ArrayForEach(a, run) {
        if (!cJSON_IsNull(a) && !(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3 &&
                                  is_time(a->child) && is_time(a->child->next) &&
                                  a->child->next->valuedouble >= a->child->valuedouble &&
                                  is_level(a->child->next->next)))
            return ad_errf(err, errlen, AD_EFORMAT, "noise: run[%d]: not null nor [start ms, "
                           "end ms, level]", f);
        f++;
    }
    /* the recent levels: absent in a state from before they were kept */
    if (rc != NULL && (!cJSON_IsArray(rc) || cJSON_GetArraySize(rc) != n->F))
        return ad_errf(err, errlen, AD_EFORMAT, "noise: recent: not an array of %d arrays",
                       n->F);
    f = 0;
    cJSON_ArrayForEach(a, rc) {
        int i = 0;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > AD_NOISE_RECENT)
            return ad_errf(err, errlen, AD_EFORMAT, "noise: recent[%d]: not an array of at "
                           "most %d levels", f, AD_NOISE_RECENT);
        cJSON_ArrayForEach(x, a) {
            if (!is_level(x))
                return ad_errf(err, errlen, AD_EFORMAT, "noise: recent[%d][%d]: not a level "
                               "> 0", f, i);
            i++;
        }
        f++;
    }
    f = 0;
    cJSON_ArrayForEach(x, jd) {
        if (!cJSON_IsBool(x))
            return ad_errf(err, errlen, AD_EFORMAT, "noise: judging[%d]: not a boolean", f);
        f++;
    }
    /* taken; the block under way starts over */
    for (f = 0, a = us->child; f < n->F; f++, a = a->next) {
        int i = 0;
        cJSON_ArrayForEach(x, a)
            n->usual[(size_t)f * AD_NOISE_KEEP + i++] = x->valuedouble;
        n->un[f] = i;
        n->upos[f] = i % AD_NOISE_KEEP;
        n->nd[f] = 0;
        n->bstart[f] = INT64_MIN;
        n->prev[f] = NAN;
        n->last[f] = NAN;
    }
    for (f = 0, a = run->child; f < n->F; f++, a = a->next) {
        if (cJSON_IsNull(a)) {
            n->run[f] = n->run_end[f] = INT64_MIN;
        } else {
            n->run[f] = (int64_t)a->child->valuedouble;
            n->run_end[f] = (int64_t)a->child->next->valuedouble;
            n->run_level[f] = a->child->next->next->valuedouble;
        }
    }
    for (f = 0, x = jd->child; f < n->F; f++, x = x->next)
        n->judging[f] = cJSON_IsTrue(x) && n->un[f] > 0;
    for (f = 0, a = rc ? rc->child : NULL; f < n->F; f++, a = a ? a->next : NULL) {
        int i = 0;
        if (a != NULL)
            cJSON_ArrayForEach(x, a)
                n->recent[(size_t)f * AD_NOISE_RECENT + i++] = x->valuedouble;
        n->rn[f] = i;
        n->rpos[f] = i % AD_NOISE_RECENT;
    }
    return 0;
}
