/*
 * burst.c - the burst test (see burst.h): a centred Hampel filter per
 * feature and a count of its outliers over a span of data.
 */
#include "burst.h"
#include "ad.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
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
    double *usual;      /* F: the usual local spread (USUAL SPREAD), 0: none yet */
    double *usual_n;    /* F: spreads it has seen, for its first steps */
    unsigned char *usual_chk;   /* F: restored, not yet checked against the
                                 * learned spread (none known then) */
    double *quant;      /* F: the quantum (QUANTUM), 0: none yet */
    double *qsize;      /* F x AD_BURST_QSLOTS: step sizes seen, 0: free */
    int *qweight;       /* F x AD_BURST_QSLOTS: their weights */
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
    b->usual = calloc((size_t)F, sizeof(double));
    b->usual_n = calloc((size_t)F, sizeof(double));
    b->usual_chk = calloc((size_t)F, 1);
    b->quant = calloc((size_t)F, sizeof(double));
    b->qsize = calloc((size_t)F * AD_BURST_QSLOTS, sizeof(double));
    b->qweight = calloc((size_t)F * AD_BURST_QSLOTS, sizeof(int));
    if (b->vals == NULL || b->vts == NULL || b->out == NULL || b->out_pos == NULL ||
        b->usual == NULL || b->usual_n == NULL || b->usual_chk == NULL || b->quant == NULL ||
        b->qsize == NULL || b->qweight == NULL) {
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
    free(b->usual);
    free(b->usual_n);
    free(b->usual_chk);
    free(b->quant);
    free(b->qsize);
    free(b->qweight);
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

/* The usual local spread follows s (USUAL SPREAD): the median of the
 * spreads seen, tracked in logs by steps of 1 / (spreads seen), at least
 * AD_BURST_USUAL_STEP. */
static void follow_usual(ad_burst *b, int f, double s)
{
    double step;

    if (!(s > 0) || !isfinite(s))
        return;
    if (!(b->usual[f] > 0)) {
        b->usual[f] = s;
        b->usual_n[f] = 1;
        return;
    }
    b->usual_n[f] += 1;
    step = fmax(AD_BURST_USUAL_STEP, 1.0 / b->usual_n[f]);
    if (s > b->usual[f])
        b->usual[f] *= exp(step);
    else if (s < b->usual[f])
        b->usual[f] *= exp(-step);
}

/* Are a and b the same level, next to a step of dx? */
static int same_level(double a, double b, double dx)
{
    return isfinite(a) && isfinite(b) && fabs(a - b) <= AD_BURST_QSAME * dx;
}

/* The quantum of feature f: the smallest step size of weight
 * AD_BURST_QSEEN or more (0: none). */
static void quant_update(ad_burst *b, int f)
{
    const double *sz = b->qsize + (size_t)f * AD_BURST_QSLOTS;
    const int *w = b->qweight + (size_t)f * AD_BURST_QSLOTS;
    double q = 0;

    for (int i = 0; i < AD_BURST_QSLOTS; i++)
        if (sz[i] > 0 && w[i] >= AD_BURST_QSEEN && (!(q > 0) || sz[i] < q))
            q = sz[i];
    b->quant[f] = q;
}

/* A step of dx of feature f, of weight wt, into its table (QUANTUM): onto
 * the size within AD_BURST_QSAME of it, else into a free slot or the one
 * of least weight (of them, the largest). */
static void quant_step(ad_burst *b, int f, double dx, int wt)
{
    double *sz = b->qsize + (size_t)f * AD_BURST_QSLOTS;
    int *w = b->qweight + (size_t)f * AD_BURST_QSLOTS, i, k = -1;

    for (i = 0; i < AD_BURST_QSLOTS; i++)
        if (sz[i] > 0 && fabs(sz[i] - dx) <= AD_BURST_QSAME * sz[i])
            break;
    if (i == AD_BURST_QSLOTS) {
        for (i = 0; i < AD_BURST_QSLOTS; i++) {
            if (!(sz[i] > 0)) {
                k = i;
                break;
            }
            if (k < 0 || w[i] < w[k] || (w[i] == w[k] && sz[i] > sz[k]))
                k = i;
        }
        i = k;
        sz[i] = dx;
        w[i] = 0;
    }
    if (w[i] < AD_BURST_QSEEN * 1000)
        w[i] += wt;
    if (w[i] >= AD_BURST_QSEEN)
        quant_update(b, f);
}

/* QUANTUM: the step of feature f into its sample k - 1 (the newest is
 * k), once the level after it is known: weighed AD_BURST_QHELD between two
 * held levels (a valve opening for two rows or more), 1 else (a lone
 * sample off its level, as a spike); a step under AD_BURST_QMIN learned
 * spreads (sp) is not counted. */
static void quant_seen(ad_burst *b, int f, double sp)
{
    const double *v = b->vals + (size_t)f * AD_BURST_K;
    int k = b->len - 1;
    double dx;

    if (k < 2 || !isfinite(v[k - 2]) || !isfinite(v[k - 1]))
        return;
    dx = fabs(v[k - 1] - v[k - 2]);
    if (!(dx > 0) || !isfinite(dx) || (sp > 0 && isfinite(sp) && dx < AD_BURST_QMIN * sp))
        return;
    quant_step(b, f, dx, k >= 3 && same_level(v[k - 3], v[k - 2], dx) &&
               same_level(v[k - 1], v[k], dx) ? AD_BURST_QHELD : 1);
}

/* Is feature f's middle sample an outlier among its neighbours? */
static int judge(ad_burst *b, int f, double spread)
{
    const double *v = b->vals + (size_t)f * AD_BURST_K;
    double x = v[AD_BURST_K / 2], tmp[AD_BURST_K], med, mad, sd, lo;
    int i, k = 0;

    if (!isfinite(x) || !(spread > 0) || !isfinite(spread))
        return 0;
    for (i = 0; i < AD_BURST_K; i++)
        if (isfinite(v[i]))
            tmp[k++] = v[i];
    /* a neighbourhood mostly of samples not to be judged says nothing */
    if (k < AD_BURST_K / 2 + 2)
        return 0;
    if (b->usual_chk[f]) {
        /* restored before the learned spread was known (SAVED STATE) */
        b->usual_chk[f] = 0;
        if (b->usual[f] > AD_BURST_USUAL_MAX * spread)
            b->usual[f] = b->usual_n[f] = 0;
    }
    med = median_sorted(tmp, k);
    for (i = 0; i < k; i++)
        tmp[i] = fabs(tmp[i] - med);
    mad = median_sorted(tmp, k);
    /* judged against the usual spread before this one joins it; a
     * quantised feature's MAD is 0 in most neighbourhoods (QUANTUM) */
    lo = fmax(fmax(AD_BURST_FLOOR * spread, AD_BURST_USUAL * b->usual[f]),
              AD_BURST_QUANT * b->quant[f]);
    follow_usual(b, f, 1.4826 * mad);
    sd = fmax(1.4826 * mad, lo);
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
    for (f = 0; f < b->F; f++)
        quant_seen(b, f, spread ? spread[f] : 0);
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

/* ---- saved state (burst.h SAVED STATE) -------------------------------------- */

/* Largest time or age taken back (ms). */
#define BURST_TIME_MAX 1e15

cJSON *ad_burst_save(const ad_burst *b, int64_t at_ms, int rows)
{
    cJSON *o = cJSON_CreateObject(), *out, *us, *qu, *a, *ts, *rw, *r;
    int f, i, k0;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "span_ms", (double)b->span) ||
        !cJSON_AddNumberToObject(o, "n", b->n) ||
        !cJSON_AddNumberToObject(o, "z", b->z) ||
        !cJSON_AddNumberToObject(o, "at_ms", (double)at_ms) ||
        (out = cJSON_AddArrayToObject(o, "out")) == NULL ||
        (us = cJSON_AddArrayToObject(o, "usual")) == NULL ||
        (qu = cJSON_AddArrayToObject(o, "quant")) == NULL)
        goto fail;
    for (f = 0; f < b->F; f++)
        if (!cJSON_AddItemToArray(us, b->usual[f] > 0 ? cJSON_CreateNumber(b->usual[f]) :
                                  cJSON_CreateNull()) ||
            !cJSON_AddItemToArray(qu, b->quant[f] > 0 ? cJSON_CreateNumber(b->quant[f]) :
                                  cJSON_CreateNull()))
            goto fail;
    for (f = 0; f < b->F; f++) {
        const int64_t *t = b->out + (size_t)f * b->n;

        if ((a = cJSON_CreateArray()) == NULL)
            goto fail;
        cJSON_AddItemToArray(out, a);
        /* oldest first: the ring's next slot holds the oldest; only those
         * a later row can still count */
        for (i = 0; i < b->n; i++) {
            int64_t v = t[(b->out_pos[f] + i) % b->n];
            if (v != INT64_MIN && v <= at_ms && v > at_ms - b->span &&
                !cJSON_AddItemToArray(a, cJSON_CreateNumber((double)(at_ms - v))))
                goto fail;
        }
    }
    if (!rows || b->len == 0)
        return o;
    /* the oldest of a full neighbourhood goes with the next row */
    k0 = b->len == AD_BURST_K ? 1 : 0;
    if ((ts = cJSON_AddArrayToObject(o, "ts")) == NULL ||
        (rw = cJSON_AddArrayToObject(o, "rows")) == NULL)
        goto fail;
    for (i = k0; i < b->len; i++) {
        if (!cJSON_AddItemToArray(ts, cJSON_CreateNumber((double)b->vts[i])) ||
            (r = cJSON_CreateArray()) == NULL)
            goto fail;
        cJSON_AddItemToArray(rw, r);
        for (f = 0; f < b->F; f++) {
            double v = b->vals[(size_t)f * AD_BURST_K + i];
            if (!cJSON_AddItemToArray(r, isfinite(v) ? cJSON_CreateNumber(v) :
                                      cJSON_CreateNull()))
                goto fail;
        }
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* A whole number within +-BURST_TIME_MAX. */
static int is_whole_time(const cJSON *x)
{
    return cJSON_IsNumber(x) && fabs(x->valuedouble) <= BURST_TIME_MAX &&
           x->valuedouble == floor(x->valuedouble);
}

/* Is x a usual spread to take for a feature of learned spread sp (<= 0 or
 * not finite: not known)? NULL, or why not. */
static const char *usual_bad(const cJSON *x, double sp, char *why, size_t n)
{
    if (!cJSON_IsNumber(x))
        return "not a number";
    if (!(x->valuedouble > 0) || !isfinite(x->valuedouble)) {
        snprintf(why, n, "%g is not a spread > 0", x->valuedouble);
        return why;
    }
    if (sp > 0 && isfinite(sp) && x->valuedouble > AD_BURST_USUAL_MAX * sp) {
        snprintf(why, n, "%g is over %g learned spreads (%g): a noise grown that much "
                 "since the model learned it, or a damaged state", x->valuedouble,
                 AD_BURST_USUAL_MAX, sp);
        return why;
    }
    return NULL;
}

int ad_burst_restore(ad_burst *b, const cJSON *o, int64_t last_ts, const double *spread,
                     int *rows_taken, int *usual_refused, char *err, size_t errlen)
{
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "span_ms");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "n");
    const cJSON *z = cJSON_GetObjectItemCaseSensitive(o, "z");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "at_ms");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "out");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(o, "rows");
    const cJSON *us = cJSON_GetObjectItemCaseSensitive(o, "usual");
    const cJSON *qu = cJSON_GetObjectItemCaseSensitive(o, "quant");
    const cJSON *a, *x, *r, *c;
    int64_t *nout = NULL, t0, prev = INT64_MIN, rts[AD_BURST_K];
    double *nvals = NULL, *nusual = NULL, *nquant = NULL;
    int *npos = NULL, f, i, nr = 0, rc, nbad = 0;
    char uwhy[200] = "", why[128];

    *rows_taken = 0;
    *usual_refused = 0;
    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EFORMAT, "burst: not an object");
    if (!is_whole_time(sp) || !(sp->valuedouble >= 1) || !cJSON_IsNumber(n) ||
        n->valuedouble != floor(n->valuedouble) || !(n->valuedouble >= 2 &&
        n->valuedouble <= AD_BURST_MAX_N) || !cJSON_IsNumber(z) || !(z->valuedouble > 0) ||
        !isfinite(z->valuedouble))
        return ad_errf(err, errlen, AD_EFORMAT, "burst: span_ms/n/z malformed");
    if ((int64_t)sp->valuedouble != b->span || (int)n->valuedouble != b->n ||
        z->valuedouble != b->z)
        return ad_errf(err, errlen, AD_EINVAL, "kept with alert.burst_ms %.0f, burst_n %d, "
                       "burst_z %g; now %lld, %d, %g", sp->valuedouble, (int)n->valuedouble,
                       z->valuedouble, (long long)b->span, b->n, b->z);
    if (!is_whole_time(at))
        return ad_errf(err, errlen, AD_EFORMAT, "burst: at_ms malformed");
    t0 = (int64_t)at->valuedouble;
    if (!cJSON_IsArray(out) || cJSON_GetArraySize(out) != b->F)
        return ad_errf(err, errlen, AD_EINVAL, "burst: out has %d features, the model %d",
                       cJSON_IsArray(out) ? cJSON_GetArraySize(out) : -1, b->F);
    nout = malloc((size_t)b->F * (size_t)b->n * sizeof(int64_t));
    npos = calloc((size_t)b->F, sizeof(int));
    nvals = calloc((size_t)b->F * AD_BURST_K, sizeof(double));
    nusual = calloc((size_t)b->F, sizeof(double));
    nquant = calloc((size_t)b->F, sizeof(double));
    if (nout == NULL || npos == NULL || nvals == NULL || nusual == NULL || nquant == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "burst: out of memory");
        goto out;
    }
    for (i = 0; i < b->F * b->n; i++)
        nout[i] = INT64_MIN;
    f = 0;
    cJSON_ArrayForEach(a, out) {
        int k = 0;
        int64_t last = INT64_MIN;

        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > b->n) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "burst: out[%d]: not an array of at most "
                         "%d ages", f, b->n);
            goto out;
        }
        cJSON_ArrayForEach(x, a) {
            int64_t t;
            if (!is_whole_time(x) || !(x->valuedouble >= 0) ||
                !((double)x->valuedouble < (double)b->span) ||
                (t = t0 - (int64_t)x->valuedouble) <= last) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "burst: out[%d][%d]: not an age in "
                             "[0, span_ms), oldest first", f, k);
                goto out;
            }
            last = t;
            nout[(size_t)f * b->n + k++] = t;
        }
        npos[f++] = k % b->n;
    }
    /* the usual spreads: absent in a state from before they were kept
     * (then they are learned afresh); one that is not a spread, or one
     * far beyond what the model learned of the feature, is refused alone
     * (learned afresh): a floor taken unbounded could blind the test */
    if (us != NULL) {
        if (!cJSON_IsArray(us) || cJSON_GetArraySize(us) != b->F) {
            nbad = b->F;
            snprintf(uwhy, sizeof(uwhy), "burst.usual: not an array of %d spreads", b->F);
        } else {
            f = 0;
            cJSON_ArrayForEach(x, us) {
                const char *w = cJSON_IsNull(x) ? NULL :
                                usual_bad(x, spread ? spread[f] : 0, why, sizeof(why));
                if (w != NULL && nbad++ == 0)
                    snprintf(uwhy, sizeof(uwhy), "burst.usual[%d]: %s", f, w);
                else if (w == NULL && !cJSON_IsNull(x))
                    nusual[f] = x->valuedouble;
                f++;
            }
        }
    }
    /* the quanta: absent in a state from before they were kept (learned
     * afresh then); each a step > 0, at most AD_BURST_USUAL_MAX learned
     * spreads when that is known, else that feature's is learned afresh */
    if (qu != NULL) {
        if (!cJSON_IsArray(qu) || cJSON_GetArraySize(qu) != b->F) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "burst: quant: not an array of %d steps",
                         b->F);
            goto out;
        }
        f = 0;
        cJSON_ArrayForEach(x, qu) {
            double sp1 = spread ? spread[f] : 0;
            if (cJSON_IsNumber(x) && x->valuedouble > 0 && isfinite(x->valuedouble) &&
                !(sp1 > 0 && isfinite(sp1) && x->valuedouble > AD_BURST_USUAL_MAX * sp1))
                nquant[f] = x->valuedouble;
            else if (!cJSON_IsNull(x)) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "burst: quant[%d]: not a step > 0 of "
                             "at most %g learned spreads", f, AD_BURST_USUAL_MAX);
                goto out;
            }
            f++;
        }
    }
    if (ts != NULL || rw != NULL) {
        nr = cJSON_GetArraySize(rw);
        if (!cJSON_IsArray(ts) || !cJSON_IsArray(rw) || cJSON_GetArraySize(ts) != nr ||
            nr < 1 || nr > AD_BURST_K - 1) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "burst: ts/rows: not two arrays of "
                         "1..%d rows alike", AD_BURST_K - 1);
            goto out;
        }
        for (i = 0, x = ts->child, r = rw->child; i < nr; i++, x = x->next, r = r->next) {
            if (!is_whole_time(x) || (int64_t)x->valuedouble <= prev || !cJSON_IsArray(r) ||
                cJSON_GetArraySize(r) != b->F) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "burst: rows[%d]: not %d values at a "
                             "time after the previous row's", i, b->F);
                goto out;
            }
            prev = rts[i] = (int64_t)x->valuedouble;
            for (f = 0, c = r->child; f < b->F; f++, c = c->next) {
                if (cJSON_IsNumber(c) && isfinite(c->valuedouble))
                    nvals[(size_t)f * AD_BURST_K + i] = c->valuedouble;
                else if (cJSON_IsNull(c))
                    nvals[(size_t)f * AD_BURST_K + i] = NAN;
                else {
                    rc = ad_errf(err, errlen, AD_EFORMAT, "burst: rows[%d][%d]: not a "
                                 "number or null", i, f);
                    goto out;
                }
            }
        }
        /* rows that do not end at the stream's last row are not the
         * neighbourhood of the next one */
        if (prev != last_ts)
            nr = 0;
    }
    memcpy(b->out, nout, (size_t)b->F * (size_t)b->n * sizeof(int64_t));
    memcpy(b->out_pos, npos, (size_t)b->F * sizeof(int));
    b->len = nr;
    if (nr > 0) {
        memcpy(b->vals, nvals, (size_t)b->F * AD_BURST_K * sizeof(double));
        memcpy(b->vts, rts, (size_t)nr * sizeof(int64_t));
    }
    if (us != NULL)
        for (f = 0; f < b->F; f++) {
            b->usual[f] = nusual[f];
            /* kept: tracked on at the settled step */
            b->usual_n[f] = nusual[f] > 0 ? 1.0 / AD_BURST_USUAL_STEP : 0;
            b->usual_chk[f] = nusual[f] > 0 && !(spread != NULL && spread[f] > 0 &&
                                                isfinite(spread[f]));
        }
    if (qu != NULL)
        for (f = 0; f < b->F; f++) {
            memset(b->qsize + (size_t)f * AD_BURST_QSLOTS, 0, AD_BURST_QSLOTS * sizeof(double));
            memset(b->qweight + (size_t)f * AD_BURST_QSLOTS, 0, AD_BURST_QSLOTS * sizeof(int));
            b->quant[f] = 0;
            if (nquant[f] > 0)
                quant_step(b, f, nquant[f], AD_BURST_QSEEN);
        }
    *rows_taken = nr;
    *usual_refused = nbad;
    if (nbad > 0)
        ad_errf(err, errlen, 0, "%s%s", uwhy, nbad > 1 && cJSON_IsArray(us) &&
                cJSON_GetArraySize(us) == b->F ? " (and others)" : "");
    rc = 0;
out:
    free(nout);
    free(npos);
    free(nvals);
    free(nusual);
    free(nquant);
    return rc;
}
