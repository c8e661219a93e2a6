/*
 * likelihood.c - anomaly probability: short average of scores against the
 * Gaussian of the long history of such averages (see likelihood.h).
 */
#include "likelihood.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"

struct ad_likelihood {
    ad_lik_cfg cfg;
    double abs_floor;
    double *shortv;          /* w raw scores, ring */
    size_t s_len, s_head;
    double *hist;            /* W averages, ring grown on demand */
    size_t h_cap, h_len, h_head;
    double mean, m2;         /* of the history */
    size_t since_exact;      /* insertions since the exact recomputation */
    double *held;            /* averages held aside (HELD AVERAGES), ring */
    size_t d_cap, d_len, d_head;
};

void ad_lik_cfg_default(ad_lik_cfg *c)
{
    c->history = 500;
    c->average = 10;
    c->min_history = 50;
    c->rel_floor = 0.01;
}

int ad_lik_cfg_check(const ad_lik_cfg *c, char *err, size_t errlen)
{
    if (c->history < 2 || c->history > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "alert.probability_history: must be 2..1000000 (got %d)", c->history);
    if (c->average < 1 || c->average > 1000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "alert.probability_average: must be 1..1000 (got %d)", c->average);
    if (c->min_history < 1)
        return ad_errf(err, errlen, AD_EINVAL,
                       "likelihood min_history: must be >= 1 (got %d)", c->min_history);
    if (!(c->rel_floor >= 0) || !isfinite(c->rel_floor))
        return ad_errf(err, errlen, AD_EINVAL, "likelihood rel_floor: must be >= 0");
    return 0;
}

int ad_likelihood_new(ad_likelihood **out, const ad_lik_cfg *cfg,
                      char *err, size_t errlen)
{
    ad_likelihood *l;
    int rc;

    *out = NULL;
    if ((rc = ad_lik_cfg_check(cfg, err, errlen)) != 0)
        return rc;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "likelihood: out of memory");
    l->cfg = *cfg;
    l->shortv = malloc((size_t)cfg->average * sizeof(double));
    if (l->shortv == NULL) {
        free(l);
        return ad_errf(err, errlen, AD_ENOMEM, "likelihood: out of memory");
    }
    *out = l;
    return 0;
}

void ad_likelihood_free(ad_likelihood *l)
{
    if (l == NULL)
        return;
    free(l->shortv);
    free(l->hist);
    free(l->held);
    free(l);
}

void ad_likelihood_set_floor(ad_likelihood *l, double abs_floor)
{
    l->abs_floor = isfinite(abs_floor) && abs_floor > 0 ? abs_floor : 0;
}

size_t ad_likelihood_count(const ad_likelihood *l)
{
    return l->h_len;
}

void ad_likelihood_reset(ad_likelihood *l)
{
    l->s_len = l->s_head = 0;
    l->h_len = l->h_head = 0;
    l->mean = l->m2 = 0;
    l->since_exact = 0;
    l->d_len = l->d_head = 0;
}

size_t ad_likelihood_held(const ad_likelihood *l)
{
    return l->d_len;
}

int ad_likelihood_known(const ad_likelihood *l)
{
    return !(l->h_len < (size_t)l->cfg.min_history && l->h_len < (size_t)l->cfg.history);
}

double ad_log_normal_tail(double z)
{
    if (z < 35)
        return log(0.5 * erfc(z / sqrt(2.0)));
    /* Q(z) = phi(z)/z * (1 - 1/z^2 + 3/z^4 - 15/z^6 ...); at z >= 35 the
     * terms kept are exact to ~1e-10 relative. */
    {
        double z2 = z * z;
        return -0.5 * z2 - log(z) - 0.5 * log(2 * M_PI) +
               log1p(-1 / z2 + 3 / (z2 * z2) - 15 / (z2 * z2 * z2));
    }
}

/* Exact two-pass mean and squared deviations of the history. */
static void hist_exact(ad_likelihood *l)
{
    double s = 0, q = 0;
    size_t i;

    for (i = 0; i < l->h_len; i++)
        s += l->hist[i];
    s /= (double)l->h_len;
    for (i = 0; i < l->h_len; i++) {
        double d = l->hist[i] - s;
        q += d * d;
    }
    l->mean = s;
    l->m2 = q;
    l->since_exact = 0;
}

static void hist_push(ad_likelihood *l, double a)
{
    size_t W = (size_t)l->cfg.history;

    if (l->h_len < W) {
        if (l->h_len == l->h_cap) {
            /* Not wrapped yet (wrapping starts only at W): head is 0. */
            size_t nc = l->h_cap < 32 ? 64 : l->h_cap * 2;
            double *nv;
            if (nc > W)
                nc = W;
            nv = realloc(l->hist, nc * sizeof(double));
            if (nv == NULL)
                return;                 /* out of memory: history stops growing */
            l->hist = nv;
            l->h_cap = nc;
        }
        l->hist[l->h_len++] = a;
        {   /* Welford add */
            double d = a - l->mean;
            l->mean += d / (double)l->h_len;
            l->m2 += d * (a - l->mean);
        }
    } else {
        /* Sliding update: a enters, the oldest o leaves (n fixed). */
        double o = l->hist[l->h_head], old_mean = l->mean;
        l->hist[l->h_head] = a;
        l->h_head = (l->h_head + 1) % W;
        l->mean += (a - o) / (double)W;
        l->m2 += (a - o) * (a - l->mean + o - old_mean);
        if (l->m2 < 0)
            l->m2 = 0;
    }
    if (++l->since_exact >= W)
        hist_exact(l);
}

/* a held aside; beyond W held the oldest goes (once W later averages
 * joined, it would have left the history). */
static void held_push(ad_likelihood *l, double a)
{
    size_t W = (size_t)l->cfg.history;

    if (l->d_len == l->d_cap && l->d_cap < W) {
        size_t nc = l->d_cap < 32 ? 64 : l->d_cap * 2, i;
        double *nv;
        if (nc > W)
            nc = W;
        nv = malloc(nc * sizeof(double));
        if (nv == NULL)
            return;                     /* out of memory: not held */
        for (i = 0; i < l->d_len; i++)  /* in order, from the head */
            nv[i] = l->held[(l->d_head + i) % l->d_cap];
        free(l->held);
        l->held = nv;
        l->d_cap = nc;
        l->d_head = 0;
    }
    if (l->d_len < l->d_cap) {
        l->held[(l->d_head + l->d_len++) % l->d_cap] = a;
    } else {                            /* W held: the oldest goes */
        l->held[l->d_head] = a;
        l->d_head = (l->d_head + 1) % l->d_cap;
    }
}

void ad_likelihood_commit(ad_likelihood *l, size_t keep)
{
    while (l->d_len > keep) {
        hist_push(l, l->held[l->d_head]);
        l->d_head = (l->d_head + 1) % l->d_cap;
        l->d_len--;
    }
    if (l->d_len == 0)
        l->d_head = 0;
}

void ad_likelihood_drop(ad_likelihood *l)
{
    l->d_len = l->d_head = 0;
}

void ad_likelihood_scale(ad_likelihood *l, double r)
{
    size_t i;

    if (!(r > 0) || !isfinite(r))
        return;
    for (i = 0; i < l->s_len; i++)
        l->shortv[(l->s_head + i) % (size_t)l->cfg.average] *= r;
    for (i = 0; i < l->h_len; i++)
        l->hist[i] *= r;
    for (i = 0; i < l->d_len; i++)
        l->held[(l->d_head + i) % l->d_cap] *= r;
    if (l->h_len > 0)
        hist_exact(l);
}

double ad_likelihood_update(ad_likelihood *l, double x, int learn, double *log_lik)
{
    return ad_likelihood_update2(l, x, learn ? AD_LIK_LEARN : AD_LIK_NONE, log_lik);
}

double ad_likelihood_update2(ad_likelihood *l, double x, ad_lik_how how, double *log_lik)
{
    size_t w = (size_t)l->cfg.average, i, n;
    double a = x, p, L;

    if (!isfinite(x)) {
        if (log_lik)
            *log_lik = NAN;
        return NAN;
    }
    /* Short average over the kept scores and x (x not kept unless learn). */
    n = l->s_len < w ? l->s_len : w - 1;
    for (i = 0; i < n; i++)
        a += l->shortv[(l->s_head + l->s_len - 1 - i) % w];
    a /= (double)(n + 1);
    if (!ad_likelihood_known(l)) {
        p = NAN;                    /* nothing is known yet */
        L = NAN;
    } else {
        double sd = sqrt(l->m2 / (double)l->h_len), s = sd, z;
        if (s < l->cfg.rel_floor * fabs(l->mean))
            s = l->cfg.rel_floor * fabs(l->mean);
        if (s < l->abs_floor)
            s = l->abs_floor;
        if (s > 0) {
            z = (a - l->mean) / s;
        } else {
            /* No spread and no floor: equal is ordinary, anything else is
             * infinitely unusual in its direction. */
            z = a > l->mean ? INFINITY : a < l->mean ? -INFINITY : 0;
        }
        p = 0.5 * erfc(-z / sqrt(2.0));
        L = isinf(z) ? (z > 0 ? -INFINITY : 0) : ad_log_normal_tail(z);
    }
    if (how != AD_LIK_NONE) {
        if (l->s_len < w) {
            l->shortv[(l->s_head + l->s_len) % w] = x;
            l->s_len++;
        } else {
            l->shortv[l->s_head] = x;
            l->s_head = (l->s_head + 1) % w;
        }
        if (how == AD_LIK_HOLD)
            held_push(l, a);
        else
            hist_push(l, a);
    }
    if (log_lik)
        *log_lik = L;
    return p;
}

/* ---- save / restore ---------------------------------------------------------- */

/* v printed so that it reads back bit for bit (cJSON's own printer may
 * drop the last digit), added to array a or under key k of object o. */
static int add_exact(cJSON *o, const char *k, double v)
{
    char buf[40];
    cJSON *r;

    if (isfinite(v))
        snprintf(buf, sizeof buf, "%.17g", v);
    else                            /* never from a restore's bounds; refused */
        snprintf(buf, sizeof buf, "null");
    if ((r = cJSON_CreateRaw(buf)) == NULL)
        return -1;
    if (k == NULL)
        cJSON_AddItemToArray(o, r);
    else
        cJSON_AddItemToObject(o, k, r);
    return 0;
}

cJSON *ad_likelihood_save(const ad_likelihood *l)
{
    size_t w = (size_t)l->cfg.average, i;
    cJSON *o = cJSON_CreateObject(), *a;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "history", l->cfg.history) ||
        !cJSON_AddNumberToObject(o, "average", l->cfg.average) ||
        add_exact(o, "floor", l->abs_floor) != 0 ||
        (a = cJSON_AddArrayToObject(o, "short")) == NULL)
        goto fail;
    for (i = 0; i < l->s_len; i++)
        if (add_exact(a, NULL, l->shortv[(l->s_head + i) % w]) != 0)
            goto fail;
    /* as stored, with the head: the exact recomputation sums in this order */
    if ((a = cJSON_AddArrayToObject(o, "hist")) == NULL)
        goto fail;
    for (i = 0; i < l->h_len; i++)
        if (add_exact(a, NULL, l->hist[i]) != 0)
            goto fail;
    /* held aside, oldest first; only when some are (a state without the
     * key holds none) */
    if (l->d_len > 0) {
        if ((a = cJSON_AddArrayToObject(o, "held")) == NULL)
            goto fail;
        for (i = 0; i < l->d_len; i++)
            if (add_exact(a, NULL, l->held[(l->d_head + i) % l->d_cap]) != 0)
                goto fail;
    }
    if (!cJSON_AddNumberToObject(o, "head", (double)l->h_head) ||
        add_exact(o, "mean", l->mean) != 0 || add_exact(o, "m2", l->m2) != 0 ||
        !cJSON_AddNumberToObject(o, "since_exact", (double)l->since_exact))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Bounds of restored numbers: scores are floats (below 3.5e38), so these
 * refuse only damaged states, and keep every later sum of squares finite
 * (W * (2 VAL_MAX)^2 and M2_MAX well below DBL_MAX). */
#define VAL_MAX 1e100
#define M2_MAX 1e300

/* A whole number of o under k in lo..hi; 0 or -1. */
static int get_whole(const cJSON *o, const char *k, double lo, double hi, size_t *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi) ||
        x->valuedouble != floor(x->valuedouble))
        return -1;
    *v = (size_t)x->valuedouble;
    return 0;
}

/* A number of o under k in lo..hi; 0 or -1. */
static int get_finite(const cJSON *o, const char *k, double lo, double hi, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi))
        return -1;
    *v = x->valuedouble;
    return 0;
}

/* The numbers of array a (at most max, each within +-VAL_MAX) into a new
 * array *out (NULL when empty); their count, or -1 (not such an array) /
 * -2 (OOM). */
static long get_values(const cJSON *a, size_t max, double **out)
{
    const cJSON *x;
    size_t n, i = 0;
    double *v;

    *out = NULL;
    if (!cJSON_IsArray(a) || (n = (size_t)cJSON_GetArraySize(a)) > max)
        return -1;
    if (n == 0)
        return 0;
    if ((v = malloc(n * sizeof(double))) == NULL)
        return -2;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= VAL_MAX)) {
            free(v);
            return -1;
        }
        v[i++] = x->valuedouble;
    }
    *out = v;
    return (long)n;
}

int ad_likelihood_restore(ad_likelihood *l, const cJSON *o, char *err, size_t errlen)
{
    size_t W = (size_t)l->cfg.history, w = (size_t)l->cfg.average, sw, sa, head, since;
    double fl, mean, m2, *sv = NULL, *hv = NULL, *dv = NULL;
    const cJSON *hd;
    long ns, nh, nd = 0;

    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EFORMAT, "probability state: not an object");
    if (get_whole(o, "history", 0, 1e9, &sw) != 0 || get_whole(o, "average", 0, 1e9, &sa) != 0)
        return ad_errf(err, errlen, AD_EFORMAT, "probability state: history/average malformed");
    if (sw != W)
        return ad_errf(err, errlen, AD_EINVAL, "alert.probability_history is %zu, the saved "
                       "history was kept with %zu", W, sw);
    if (sa != w)
        return ad_errf(err, errlen, AD_EINVAL, "alert.probability_average is %zu, the saved "
                       "history was kept with %zu", w, sa);
    if (get_finite(o, "floor", 0, VAL_MAX, &fl) != 0 ||
        get_finite(o, "mean", -VAL_MAX, VAL_MAX, &mean) != 0 ||
        get_finite(o, "m2", 0, M2_MAX, &m2) != 0 || get_whole(o, "since_exact", 0, (double)W - 1, &since) != 0)
        return ad_errf(err, errlen, AD_EFORMAT, "probability state: floor/mean/m2/since_exact "
                       "malformed");
    ns = get_values(cJSON_GetObjectItemCaseSensitive(o, "short"), w, &sv);
    nh = ns < 0 ? 0 : get_values(cJSON_GetObjectItemCaseSensitive(o, "hist"), W, &hv);
    hd = cJSON_GetObjectItemCaseSensitive(o, "held");
    if (ns >= 0 && nh >= 0 && hd != NULL)
        nd = get_values(hd, W, &dv);
    if (ns == -2 || nh == -2 || nd == -2) {
        free(sv);
        free(hv);
        return ad_errf(err, errlen, AD_ENOMEM, "probability state: out of memory");
    }
    if (nd < 0) {
        free(sv);
        free(hv);
        return ad_errf(err, errlen, AD_EFORMAT, "probability state: \"held\" is not an "
                       "array of at most %zu numbers within 1e100", W);
    }
    if (ns < 0 || nh < 0) {
        free(sv);
        return ad_errf(err, errlen, AD_EFORMAT, "probability state: \"%s\" is not an array "
                       "of at most %zu numbers within 1e100", ns < 0 ? "short" : "hist",
                       ns < 0 ? w : W);
    }
    /* the ring wraps only once full */
    if (get_whole(o, "head", 0, (size_t)nh < W ? 0 : (double)W - 1, &head) != 0) {
        free(sv);
        free(hv);
        free(dv);
        return ad_errf(err, errlen, AD_EFORMAT, "probability state: head malformed");
    }
    if (ns > 0)
        memcpy(l->shortv, sv, (size_t)ns * sizeof(double));
    free(sv);
    l->s_len = (size_t)ns;
    l->s_head = 0;
    free(l->hist);
    l->hist = hv;
    l->h_cap = l->h_len = (size_t)nh;
    l->h_head = head;
    l->mean = nh > 0 ? mean : 0;
    l->m2 = nh > 0 ? m2 : 0;
    l->since_exact = since;
    l->abs_floor = fl;
    free(l->held);
    l->held = dv;
    l->d_cap = l->d_len = (size_t)nd;
    l->d_head = 0;
    return 0;
}
