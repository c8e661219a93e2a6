/*
 * threshold.c - threshold calibration methods (quantile, sigma, POT/GPD,
 * fixed, model metadata), adaptation from normal scores, save/restore.
 *
 * Memory is bounded: calibration scores and POT peaks live in rings of at
 * most max_samples doubles (the most recent are kept), grown on demand,
 * plus one scratch array as large as the larger ring for quantiles/fits.
 */
#include "threshold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"

/* A bounded FIFO of doubles that grows on demand up to max (so a stream
 * calibrating on 100 windows holds 100 doubles, not max_samples). */
typedef struct ring {
    double *v;
    size_t cap, len, head;   /* head: index of the oldest */
    size_t max;              /* 0: this ring is not used */
} ring;

/* quantile adapt: re-estimate every len/ADAPT_STRIDE scores (see adapt) */
#define ADAPT_STRIDE 64

struct ad_threshold {
    ad_thr_cfg cfg;
    ring samples;            /* quantile/pot: calibration + adapted scores */
    ring peaks;              /* pot: excesses over init */
    double *scratch;         /* scratch_cap doubles, for quantiles and fits */
    size_t scratch_cap;
    ad_welford w;            /* every score added/adapted */
    uint64_t count;          /* calibration scores added */
    uint64_t n_obs;          /* pot: observations n (calibration + adapted) */
    size_t since_requantile; /* quantile adapt: scores since the last estimate */
    int fitted;
    int frozen;
    double value;
    double pot_init, gamma, sigma;
    ad_thr_info info;        /* robust figures of the last fit */
    double raised;           /* operator minimum (ad_threshold_raise); 0: none */
    double hold;             /* minimum for the next hold_left adapted scores */
    uint64_t hold_left;
    double unheld;           /* while held: the value the estimate gives under it */
};

static const char *const method_names[] = { "quantile", "sigma", "pot", "fixed", "model" };
static const char *const est_names[] = { "quantile", "trimmed", "mad" };

const char *ad_thr_estimator_name(ad_thr_estimator e)
{
    return (unsigned)e < 3 ? est_names[e] : "?";
}

int ad_thr_estimator_from_name(const char *s)
{
    int i;

    for (i = 0; i < 3; i++)
        if (s && strcmp(s, est_names[i]) == 0)
            return i;
    return -1;
}

const char *ad_thr_method_name(ad_thr_method m)
{
    return (unsigned)m < 5 ? method_names[m] : "?";
}

int ad_thr_method_from_name(const char *s)
{
    int i;

    for (i = 0; i < 5; i++)
        if (s && strcmp(s, method_names[i]) == 0)
            return i;
    return -1;
}

void ad_thr_cfg_default(ad_thr_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->method = AD_THR_QUANTILE;
    c->q = 0.99;
    c->margin = 1.5;
    c->k = 3.0;
    c->pot_risk = 1e-3;
    c->pot_init = 0.98;
    c->fixed = 0;
    strcpy(c->model_key, "q99");
    c->adapt = 0;
    c->max_samples = 10000;
    c->min_samples = 10;
    c->estimator = AD_EST_QUANTILE;
    c->fence = 6.0;
    c->floor = 0.01;
    c->recur = 0;
    c->recur_gap = 1;
    c->metric = -1;
}

int ad_thr_cfg_check(const ad_thr_cfg *c, char *err, size_t errlen)
{
    if ((unsigned)c->method > AD_THR_MODEL)
        return ad_errf(err, errlen, AD_EINVAL, "threshold.method: unknown (%d)", (int)c->method);
    if (!(c->q > 0 && c->q < 1))
        return ad_errf(err, errlen, AD_EINVAL, "threshold.q: must be in (0,1) (got %g)", c->q);
    if (!(c->margin > 0) || !isfinite(c->margin))
        return ad_errf(err, errlen, AD_EINVAL, "threshold.margin: must be > 0 (got %g)", c->margin);
    if (!isfinite(c->k))
        return ad_errf(err, errlen, AD_EINVAL, "threshold.k: must be finite");
    if (!(c->pot_risk > 0 && c->pot_risk < 1))
        return ad_errf(err, errlen, AD_EINVAL, "threshold.risk: must be in (0,1) (got %g)",
                       c->pot_risk);
    if (!(c->pot_init > 0 && c->pot_init < 1))
        return ad_errf(err, errlen, AD_EINVAL, "threshold.pot_init: must be in (0,1) (got %g)",
                       c->pot_init);
    if (c->method == AD_THR_FIXED && !(c->fixed > 0 && isfinite(c->fixed)))
        return ad_errf(err, errlen, AD_EINVAL, "threshold.value: fixed threshold must be > 0");
    if (c->method == AD_THR_MODEL && c->model_key[0] == '\0')
        return ad_errf(err, errlen, AD_EINVAL, "threshold.model_key: empty");
    if (memchr(c->model_key, '\0', sizeof(c->model_key)) == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "threshold.model_key: too long");
    if (c->max_samples < 2 || c->max_samples > 100000000)
        return ad_errf(err, errlen, AD_EINVAL, "threshold.max_samples: must be 2..1e8");
    if (c->min_samples < 1)
        return ad_errf(err, errlen, AD_EINVAL, "threshold.min_samples: must be >= 1");
    if ((unsigned)c->estimator > AD_EST_MAD)
        return ad_errf(err, errlen, AD_EINVAL, "calibration.estimator: unknown (%d)",
                       (int)c->estimator);
    if (c->estimator == AD_EST_MAD && c->method != AD_THR_QUANTILE &&
        c->method != AD_THR_SIGMA)
        return ad_errf(err, errlen, AD_EINVAL,
                       "calibration.estimator: mad works with method quantile or sigma, "
                       "not %s", ad_thr_method_name(c->method));
    if (!(c->fence > 0) || !isfinite(c->fence))
        return ad_errf(err, errlen, AD_EINVAL, "calibration.fence: must be > 0 (got %g)",
                       c->fence);
    if (!(c->floor >= 0) || !isfinite(c->floor))
        return ad_errf(err, errlen, AD_EINVAL, "calibration.floor: must be >= 0 (got %g)",
                       c->floor);
    if (c->recur != 0 && (c->recur < 2 || c->recur > 1000))
        return ad_errf(err, errlen, AD_EINVAL,
                       "calibration.recur: must be 0 (off) or 2..1000 (got %d)", c->recur);
    if (c->recur != 0 && c->estimator != AD_EST_TRIMMED)
        return ad_errf(err, errlen, AD_EINVAL,
                       "calibration.recur: works with estimator trimmed, not %s",
                       ad_thr_estimator_name(c->estimator));
    if (c->recur_gap < 1)
        return ad_errf(err, errlen, AD_EINVAL, "threshold.recur_gap: must be >= 1 (got %d)",
                       c->recur_gap);
    return 0;
}

/* ---- building blocks ----------------------------------------------------- */

void ad_welford_add(ad_welford *w, double x)
{
    double d;

    w->n++;
    d = x - w->mean;
    w->mean += d / (double)w->n;
    w->m2 += d * (x - w->mean);
}

double ad_welford_std(const ad_welford *w)
{
    if (w->n < 2)
        return 0;
    return sqrt(w->m2 / (double)w->n);
}

/* k-th smallest of v[0..n-1] (0-based), reorders v so that v[i] <= v[k]
 * for i < k and v[i] >= v[k] for i > k (Wirth's selection). */
static double select_k(double *v, size_t n, size_t k)
{
    ptrdiff_t l = 0, m = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;

    while (l < m) {
        double x = v[kk];
        ptrdiff_t i = l, j = m;
        do {
            while (v[i] < x)
                i++;
            while (x < v[j])
                j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < kk)
            l = i;
        if (kk < i)
            m = j;
    }
    return v[kk];
}

double ad_quantile_top(const double *top, size_t m, uint64_t n, double q)
{
    double j;
    size_t i;

    if (n == 0 || m == 0)
        return NAN;
    if (m > n)
        m = (size_t)n;
    if (q <= 0)
        q = 0;
    if (q >= 1)
        q = 1;
    j = (1.0 - q) * (double)(n - 1);    /* position counted from the highest */
    if (j >= (double)(m - 1))
        return top[m - 1];
    i = (size_t)floor(j);
    return top[i] - (j - (double)i) * (top[i] - top[i + 1]);
}

double ad_quantile(double *v, size_t n, double q)
{
    double pos, frac, a, b;
    size_t k, i;

    if (n == 0)
        return NAN;
    if (q <= 0)
        q = 0;
    if (q >= 1)
        q = 1;
    pos = q * (double)(n - 1);
    k = (size_t)floor(pos);
    frac = pos - (double)k;
    a = select_k(v, n, k);
    if (frac == 0 || k + 1 >= n)
        return a;
    /* After selection everything right of k is >= a: the next order
     * statistic is the minimum of that part. */
    b = v[k + 1];
    for (i = k + 2; i < n; i++)
        if (v[i] < b)
            b = v[i];
    return a + frac * (b - a);
}

/* GPD log-likelihood of peaks y under (gamma, sigma). */
static double gpd_ll(const double *y, size_t n, double gamma, double sigma)
{
    double s = 0;
    size_t i;

    if (!(sigma > 0))
        return -INFINITY;
    if (fabs(gamma) < 1e-12) {
        for (i = 0; i < n; i++)
            s += y[i];
        return -(double)n * log(sigma) - s / sigma;
    }
    for (i = 0; i < n; i++) {
        double u = 1 + gamma * y[i] / sigma;
        if (!(u > 0))
            return -INFINITY;
        s += log(u);
    }
    return -(double)n * log(sigma) - (1 + 1 / gamma) * s;
}

/* Grimshaw's w(t) = u(t) v(t) - 1 with u = 1 + mean(log(1+t y)),
 * v = mean(1/(1+t y)); its non-zero roots give the GPD MLE candidates. */
static double grim_w(const double *y, size_t n, double t)
{
    double su = 0, sv = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        double s = 1 + t * y[i];
        su += log(s);
        sv += 1 / s;
    }
    return (1 + su / (double)n) * (sv / (double)n) - 1;
}

/* Find sign changes of w(t) at the points t = t0 * x_i for a log-spaced x
 * from xlo to xhi and bisect each; roots go to out. Returns their count.
 * A log grid is needed because the roots can sit anywhere between ~1/ymax
 * and ~1/ymin scales (Grimshaw's bracket for positive roots alone can miss
 * them when the smallest peak is tiny). */
static int grim_roots(const double *y, size_t n, double t0, double xlo, double xhi,
                      double *out, int max_out)
{
    const int N = 400;
    int i, k = 0;
    double prev_t = 0, prev_w = NAN;

    for (i = 0; i <= N && k < max_out; i++) {
        double x = xlo * pow(xhi / xlo, (double)i / N);
        double t = t0 * x, wt = grim_w(y, n, t);
        if (i > 0 && isfinite(prev_w) && isfinite(wt) && ((prev_w < 0) != (wt < 0))) {
            double a = prev_t, b = t, wa = prev_w;
            int it;
            for (it = 0; it < 100; it++) {
                double mid = 0.5 * (a + b), wm = grim_w(y, n, mid);
                if (!isfinite(wm))
                    break;
                if ((wm < 0) == (wa < 0)) {
                    a = mid;
                    wa = wm;
                } else {
                    b = mid;
                }
            }
            out[k++] = 0.5 * (a + b);
        }
        prev_t = t;
        prev_w = wt;
    }
    return k;
}

int ad_gpd_fit(const double *y, size_t n, double *gamma, double *sigma)
{
    double ymin = INFINITY, ymax = -INFINITY, ymean = 0;
    double roots[64], best_g, best_s, best_ll;
    size_t i;
    int nr, r;

    if (n < 2)
        return AD_ERANGE;
    for (i = 0; i < n; i++) {
        if (!(y[i] > 0) || !isfinite(y[i]))
            return AD_ERANGE;
        if (y[i] < ymin)
            ymin = y[i];
        if (y[i] > ymax)
            ymax = y[i];
        ymean += y[i];
    }
    ymean /= (double)n;
    /* Exponential (gamma = 0) candidate: sigma = mean. */
    best_g = 0;
    best_s = ymean;
    best_ll = gpd_ll(y, n, 0, ymean);
    if (ymax - ymin <= 1e-12 * ymax) {
        *gamma = best_g;
        *sigma = best_s;
        return 0;
    }
    /* Negative t in (-1/ymax, 0) (gamma < 0, bounded tail): 1 + t*y > 0.
     * Positive t up to Grimshaw's bound 2(ymean - ymin)/ymin^2. */
    nr = grim_roots(y, n, -1 / ymax, 1e-8, 1 - 1e-9, roots, 32);
    {
        double c = 2 * (ymean - ymin) / (ymin * ymin), lo = 1e-8 / ymax;
        if (c > lo)
            nr += grim_roots(y, n, 1.0, lo, c, roots + nr, 32);
    }
    for (r = 0; r < nr; r++) {
        double t = roots[r], g = 0, s, ll;
        for (i = 0; i < n; i++)
            g += log(1 + t * y[i]);
        g /= (double)n;
        s = g / t;
        ll = gpd_ll(y, n, g, s);
        if (ll > best_ll && s > 0) {
            best_ll = ll;
            best_g = g;
            best_s = s;
        }
    }
    *gamma = best_g;
    *sigma = best_s;
    return 0;
}

double ad_pot_quantile(double t, double gamma, double sigma, double risk,
                       uint64_t n, uint64_t n_peaks)
{
    double r = risk * (double)n / (double)n_peaks;

    if (fabs(gamma) < 1e-8)
        return t - sigma * log(r);
    return t + sigma / gamma * (pow(r, -gamma) - 1);
}

/* ---- rings --------------------------------------------------------------- */

static void ring_push(ring *r, double x)
{
    if (r->len == r->cap && r->cap < r->max) {
        /* Not wrapped yet (wrapping starts only at max): head is 0. */
        size_t nc = r->cap < 32 ? 64 : r->cap * 2;
        double *nv;
        if (nc > r->max)
            nc = r->max;
        nv = realloc(r->v, nc * sizeof(double));
        if (nv != NULL) {
            r->v = nv;
            r->cap = nc;
        } else if (r->cap > 0) {
            r->max = r->cap;            /* out of memory: stop growing */
        } else {
            return;                     /* nothing can be kept */
        }
    }
    if (r->cap == 0)
        return;
    if (r->len < r->cap) {
        r->v[(r->head + r->len) % r->cap] = x;
        r->len++;
    } else {
        r->v[r->head] = x;
        r->head = (r->head + 1) % r->cap;
    }
}

/* Make t->scratch hold at least n doubles; 0 or AD_ENOMEM. */
static int scratch_ensure(ad_threshold *t, size_t n)
{
    double *p;

    if (n <= t->scratch_cap)
        return 0;
    p = realloc(t->scratch, n * sizeof(double));
    if (p == NULL)
        return AD_ENOMEM;
    t->scratch = p;
    t->scratch_cap = n;
    return 0;
}

/* Copy in time order into out (len doubles). */
static void ring_copy(const ring *r, double *out)
{
    size_t i;

    for (i = 0; i < r->len; i++)
        out[i] = r->v[(r->head + i) % r->cap];
}

/* ---- the threshold ------------------------------------------------------- */

void ad_threshold_free(ad_threshold *t)
{
    if (t == NULL)
        return;
    free(t->samples.v);
    free(t->peaks.v);
    free(t->scratch);
    free(t);
}

int ad_threshold_new(ad_threshold **out, const ad_thr_cfg *cfg,
                     char *err, size_t errlen)
{
    ad_threshold *t;
    size_t cap;
    int rc;

    *out = NULL;
    rc = ad_thr_cfg_check(cfg, err, errlen);
    if (rc)
        return rc;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "threshold: out of memory");
    t->cfg = *cfg;
    cap = (size_t)cfg->max_samples;
    if (cfg->method == AD_THR_QUANTILE || cfg->method == AD_THR_POT ||
        cfg->method == AD_THR_SIGMA)
        t->samples.max = cap;
    if (cfg->method == AD_THR_POT)
        t->peaks.max = cap;
    t->value = NAN;
    t->info.median = t->info.spread = NAN;
    *out = t;
    return 0;
}

void ad_threshold_reset(ad_threshold *t)
{
    t->samples.len = t->samples.head = 0;
    t->peaks.len = t->peaks.head = 0;
    memset(&t->w, 0, sizeof(t->w));
    t->count = 0;
    t->n_obs = 0;
    t->fitted = 0;
    t->value = NAN;
    t->pot_init = t->gamma = t->sigma = 0;
    memset(&t->info, 0, sizeof(t->info));
    t->info.median = t->info.spread = NAN;
    t->raised = 0;
    t->hold = 0;
    t->hold_left = 0;
}

int ad_threshold_add(ad_threshold *t, double score)
{
    if (!isfinite(score))
        return AD_ENONFINITE;
    t->count++;
    ad_welford_add(&t->w, score);
    if (t->samples.max)
        ring_push(&t->samples, score);
    return 0;
}

uint64_t ad_threshold_count(const ad_threshold *t)
{
    return t->count;
}

/* Refit the GPD to the current peaks and set value; 0 or AD_ERANGE. */
static int pot_refit(ad_threshold *t)
{
    double g, s, z;
    int rc;

    if (scratch_ensure(t, t->peaks.len) != 0)
        return AD_ENOMEM;
    ring_copy(&t->peaks, t->scratch);
    rc = ad_gpd_fit(t->scratch, t->peaks.len, &g, &s);
    if (rc)
        return rc;
    z = ad_pot_quantile(t->pot_init, g, s, t->cfg.pot_risk, t->n_obs, t->peaks.len);
    if (!isfinite(z))
        return AD_ENONFINITE;
    t->gamma = g;
    t->sigma = s;
    t->value = z;
    return 0;
}

/* The model method: margin * training.error.<key>. */
static int model_value(const ad_threshold *t, const char *json, double *out,
                       char *err, size_t errlen)
{
    cJSON *root, *e, *v;
    int rc = 0;

    if (json == NULL)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "threshold method model: the model has no \"training\" metadata");
    root = cJSON_Parse(json);
    if (root == NULL)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "threshold method model: \"training\" metadata is not JSON");
    e = cJSON_GetObjectItemCaseSensitive(root, "error");
    v = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, t->cfg.model_key) : NULL;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > 0))
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "threshold method model: training.error.%s missing or not a positive number",
                     t->cfg.model_key);
    else
        *out = v->valuedouble * t->cfg.margin;
    cJSON_Delete(root);
    return rc;
}

/* The floor value r * E from the model's training metadata (see FLOOR).
 * E is in the metric the model's errors were recorded in ("metric"): a
 * squared error (mse) against our absolute one (mae, peak) is put in our
 * units (sqrt), and the other way round (square); mae and peak share a
 * unit (peak >= mae: a mae floor is the lower, and is kept). */
static double model_error(const char *json, int metric)
{
    double ref = 0;
    cJSON *root, *e, *v, *mt;
    int found;

    root = json ? cJSON_Parse(json) : NULL;
    e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    if (cJSON_IsObject(e)) {
        const cJSON *q90 = cJSON_GetObjectItemCaseSensitive(e, "q90");
        int is99;

        v = cJSON_GetObjectItemCaseSensitive(e, "q99");
        is99 = cJSON_IsNumber(v) && v->valuedouble > 0 && isfinite(v->valuedouble);
        if (!is99)
            v = cJSON_GetObjectItemCaseSensitive(e, "mean");
        found = cJSON_IsNumber(v) && v->valuedouble > 0 && isfinite(v->valuedouble);
        if (found)
            ref = v->valuedouble;
        mt = cJSON_GetObjectItemCaseSensitive(e, "metric");
        if (is99 && cJSON_IsNumber(q90) && isfinite(q90->valuedouble))
            ref = ad_thr_error_ref(q90->valuedouble, ref,
                                   cJSON_IsString(mt) && strcmp(mt->valuestring, "mse") == 0);
        if (found && cJSON_IsString(mt) && metric >= 0) {
            int sq_model = strcmp(mt->valuestring, "mse") == 0;
            int abs_model = strcmp(mt->valuestring, "mae") == 0 ||
                            strcmp(mt->valuestring, "peak") == 0;
            int sq_ours = metric == 0;                  /* AD_METRIC_MSE */

            if (sq_model && !sq_ours)
                ref = sqrt(ref);
            else if (abs_model && sq_ours)
                ref = ref * ref;
        }
    }
    cJSON_Delete(root);
    return ref;
}

double ad_thr_error_ref(double q90, double q99, int squared)
{
    /* the body's bound is on absolute errors: squared ones (mse) square it */
    double b = squared ? AD_THR_ERROR_BODY * AD_THR_ERROR_BODY : AD_THR_ERROR_BODY;

    return q90 > 0 && q99 > b * q90 ? b * q90 : q99;
}

double ad_thr_model_stat(const char *json, const char *key, int metric)
{
    static const char *const names[] = { "mse", "mae", "peak" };
    cJSON *root = json ? cJSON_Parse(json) : NULL, *e, *v, *mt;
    double r = 0;

    e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    mt = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "metric") : NULL;
    v = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, key) : NULL;
    if (metric >= 0 && metric < 3 && cJSON_IsString(mt) &&
        strcmp(mt->valuestring, names[metric]) == 0 && cJSON_IsNumber(v) &&
        isfinite(v->valuedouble) && v->valuedouble > 0)
        r = v->valuedouble;
    cJSON_Delete(root);
    return r;
}

static double floor_value(const ad_threshold *t, const char *json)
{
    double e;

    if (!(t->cfg.floor > 0))
        return 0;
    e = model_error(json, t->cfg.metric);
    return t->cfg.floor * (e > 0 ? e : 1.0);
}

/* Median and MAD-sigma of x[0..n-1] (x reordered; dev: n doubles scratch). */
static void robust_stats(double *x, double *dev, size_t n, double *med, double *spread)
{
    double m, s, mean = 0, q = 0;
    size_t i;

    m = ad_quantile(x, n, 0.5);
    for (i = 0; i < n; i++)
        dev[i] = fabs(x[i] - m);
    s = 1.4826 * ad_quantile(dev, n, 0.5);
    if (!(s > 0)) {
        for (i = 0; i < n; i++)
            mean += x[i];
        mean /= (double)n;
        for (i = 0; i < n; i++)
            q += (x[i] - mean) * (x[i] - mean);
        s = sqrt(q / (double)n);
    }
    *med = m;
    *spread = s;
}

typedef struct episode {
    size_t start, end;          /* first and last score over the fence */
    double peak;
    int keep;
} episode;

static int ep_cmp_peak(const void *a, const void *b)
{
    double x = ((const episode *)a)->peak, y = ((const episode *)b)->peak;
    return (x > y) - (x < y);
}

static int ep_cmp_start(const void *a, const void *b)
{
    size_t x = ((const episode *)a)->start, y = ((const episode *)b)->start;
    return (x > y) - (x < y);
}

/* In ep[0..n-1] sorted by peak: the first with a peak > v (above = 1) or
 * >= v (above = 0). */
static size_t ep_bound(const episode *ep, size_t n, double v, int above)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ep[mid].peak < v || (above && ep[mid].peak == v))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * The trimmed estimator with recurrence (recur > 0): the scores over the
 * fence form episodes, joined across fewer than recur_gap scores under it. An
 * episode at least half of recur_gap long (one change sitting in every
 * window that holds it: a step, a load change, a bad sample) is kept when
 * at least recur - 1 other such episodes peak within RECUR_RATIO of its
 * peak: it recurs, so it is a part of normal behaviour, not an outlier. One
 * bad sample makes one episode and stays trimmed, as do short blips.
 * Compacts the kept scores of x[0..n-1] in time order; returns their number,
 * or (size_t)-1 when out of memory.
 */
#define RECUR_RATIO 2.0
static size_t trim_recurring(const ad_threshold *t, double *x, size_t n, double fence)
{
    size_t i, j, m, ne = 0, last = 0, gap, full, *cnt;
    episode *ep;
    int in = 0;

    gap = t->cfg.recur_gap > 0 ? (size_t)t->cfg.recur_gap : 1;
    full = (gap + 1) / 2;
    for (i = 0; i < n; i++)
        if (x[i] > fence && (i == 0 || !(x[i - 1] > fence)))
            ne++;
    ep = malloc((ne ? ne : 1) * sizeof(*ep));
    cnt = malloc((ne + 1) * sizeof(*cnt));
    if (ep == NULL || cnt == NULL) {
        free(ep);
        free(cnt);
        return (size_t)-1;
    }
    ne = 0;
    for (i = 0; i < n; i++) {
        if (!(x[i] > fence))
            continue;
        if (in && i - last <= gap) {        /* fewer than gap scores under */
            ep[ne - 1].end = i;
            if (x[i] > ep[ne - 1].peak)
                ep[ne - 1].peak = x[i];
        } else {
            ep[ne].start = ep[ne].end = i;
            ep[ne].peak = x[i];
            ep[ne].keep = 0;
            ne++;
            in = 1;
        }
        last = i;
    }
    /* peers: the other full episodes with peaks within a factor r (by peak:
     * cnt[k] full episodes among the k lowest, two binary searches each) */
    qsort(ep, ne, sizeof(*ep), ep_cmp_peak);
    cnt[0] = 0;
    for (i = 0; i < ne; i++)
        cnt[i + 1] = cnt[i] + (ep[i].end - ep[i].start + 1 >= full);
    for (i = 0; i < ne; i++) {
        double a = ep[i].peak / RECUR_RATIO, b = ep[i].peak * RECUR_RATIO;
        if (ep[i].end - ep[i].start + 1 < full)
            continue;
        if (a > b) {                        /* a negative peak */
            double c = a;
            a = b;
            b = c;
        }
        /* itself included */
        ep[i].keep = cnt[ep_bound(ep, ne, b, 1)] - cnt[ep_bound(ep, ne, a, 0)] >=
                     (size_t)t->cfg.recur;
    }
    qsort(ep, ne, sizeof(*ep), ep_cmp_start);
    for (i = m = j = 0; i < n; i++) {
        while (j < ne && ep[j].end < i)
            j++;
        if (!(x[i] > fence) || (j < ne && ep[j].start <= i && ep[j].keep))
            x[m++] = x[i];
    }
    free(ep);
    free(cnt);
    return m;
}

/*
 * Score-based methods: robust figures over the kept scores, the estimator's
 * selection, then the method. Leaves the kept (trimmed) scores in time order
 * in t->scratch[0..*kept-1] for POT. 0, AD_ERANGE (too few) or AD_ENOMEM.
 */
static int score_estimate(ad_threshold *t, double *out, size_t *kept,
                          char *err, size_t errlen)
{
    size_t n = t->samples.len, i, m;
    double *x, med, sp, cut;

    if (n < (size_t)t->cfg.min_samples || n < 1 ||
        (t->cfg.method == AD_THR_SIGMA && n < 2))
        return ad_errf(err, errlen, AD_ERANGE,
                       "threshold %s: %zu calibration scores, need >= %d",
                       ad_thr_method_name(t->cfg.method), n,
                       t->cfg.min_samples > 2 ? t->cfg.min_samples : 2);
    if (scratch_ensure(t, 2 * n) != 0)
        return ad_errf(err, errlen, AD_ENOMEM, "threshold: out of memory");
    x = t->scratch;
    ring_copy(&t->samples, x);
    robust_stats(x, x + n, n, &med, &sp);
    t->info.median = med;
    t->info.spread = sp;
    t->info.trimmed = 0;
    ring_copy(&t->samples, x);          /* time order again */
    m = n;
    if (t->cfg.estimator == AD_EST_TRIMMED) {
        cut = med + t->cfg.fence * sp;
        if (t->cfg.recur > 0) {
            m = trim_recurring(t, x, n, cut);
            if (m == (size_t)-1)
                return ad_errf(err, errlen, AD_ENOMEM, "threshold: out of memory");
        } else {
            for (i = m = 0; i < n; i++)
                if (x[i] <= cut)
                    x[m++] = x[i];
        }
        t->info.trimmed = n - m;
    }
    *kept = m;
    *out = NAN;
    if (t->cfg.estimator == AD_EST_MAD) {
        *out = med + t->cfg.k * sp;
        return 0;
    }
    if (t->cfg.method == AD_THR_QUANTILE) {
        memcpy(x + n, x, m * sizeof(double));
        *out = t->cfg.margin * ad_quantile(x + n, m, t->cfg.q);
    } else if (t->cfg.method == AD_THR_SIGMA) {
        if (t->cfg.estimator == AD_EST_QUANTILE) {
            *out = t->w.mean + t->cfg.k * ad_welford_std(&t->w);
        } else {
            ad_welford w = { 0, 0, 0 };
            for (i = 0; i < m; i++)
                ad_welford_add(&w, x[i]);
            *out = w.mean + t->cfg.k * ad_welford_std(&w);
        }
    }
    return 0;
}

/* POT on the kept scores x[0..n-1] (scratch). Sets pot_init, peaks, fit. */
static int pot_fit(ad_threshold *t, size_t n, double *v, char *err, size_t errlen)
{
    double *x = t->scratch, vmax = -INFINITY;
    size_t i;
    int rc;

    if (scratch_ensure(t, 2 * n) != 0)
        return ad_errf(err, errlen, AD_ENOMEM, "threshold pot: out of memory");
    x = t->scratch;
    memcpy(x + n, x, n * sizeof(double));
    t->pot_init = ad_quantile(x + n, n, t->cfg.pot_init);
    t->peaks.len = t->peaks.head = 0;
    for (i = 0; i < n; i++) {
        if (x[i] > t->pot_init)
            ring_push(&t->peaks, x[i] - t->pot_init);
        if (x[i] > vmax)
            vmax = x[i];
    }
    t->n_obs = n;
    if (t->peaks.len < 5) {
        if (t->cfg.floor > 0 && !(t->info.spread > 0)) {
            /* Degenerate scores: no tail to fit. */
            t->gamma = t->sigma = 0;
            *v = vmax;
            return 0;
        }
        return ad_errf(err, errlen, AD_ERANGE,
                       "threshold pot: %zu peaks over the initial threshold %g, need >= 5 "
                       "(more calibration windows or a lower pot_init)",
                       t->peaks.len, t->pot_init);
    }
    rc = pot_refit(t);
    if (rc)
        return ad_errf(err, errlen, rc, "threshold pot: GPD fit failed on %zu peaks",
                       t->peaks.len);
    *v = t->value;
    return 0;
}

/* v raised to the floor when below it, then to the operator's minimum and
 * a promotion's hold. */
static double apply_floor(ad_threshold *t, double v)
{
    if (t->info.floor > 0 && !(v >= t->info.floor)) {
        t->info.floored = 1;
        v = t->info.floor;
    } else if (isfinite(v)) {
        t->info.floored = 0;
    }
    if (t->raised > 0 && !(v >= t->raised))
        v = t->raised;
    if (isfinite(v) && v > 0)
        t->unheld = v;
    if (t->hold_left > 0 && !(v >= t->hold))
        v = t->hold;
    return v;
}

int ad_threshold_hold(ad_threshold *t, double v, uint64_t n)
{
    if (!t->fitted || !(v > 0) || !isfinite(v) || t->cfg.method == AD_THR_FIXED ||
        t->cfg.method == AD_THR_MODEL)
        return AD_EINVAL;
    if (t->hold_left == 0)
        t->unheld = t->value;       /* the estimate, before this hold */
    t->hold = n ? v : 0;
    t->hold_left = n;
    if (n && !(t->value >= v))
        t->value = v;
    return 0;
}

double ad_threshold_held(const ad_threshold *t, uint64_t *left)
{
    if (left)
        *left = t->hold_left;
    return t->hold_left ? t->hold : 0;
}

double ad_threshold_unheld(const ad_threshold *t)
{
    if (t->hold_left > 0 && isfinite(t->unheld) && t->unheld > 0 && t->unheld < t->value)
        return t->unheld;
    return t->value;
}

int ad_threshold_fit(ad_threshold *t, const char *training_json,
                     char *err, size_t errlen)
{
    double v = NAN;
    size_t kept;
    int rc;

    t->info.floor = 0;
    t->info.floored = 0;
    switch (t->cfg.method) {
    case AD_THR_FIXED:
        v = t->cfg.fixed;
        break;
    case AD_THR_MODEL:
        rc = model_value(t, training_json, &v, err, errlen);
        if (rc)
            return rc;
        break;
    case AD_THR_QUANTILE:
    case AD_THR_SIGMA:
    case AD_THR_POT:
        t->info.floor = floor_value(t, training_json);
        rc = score_estimate(t, &v, &kept, err, errlen);
        if (rc)
            return rc;
        if (t->cfg.method == AD_THR_POT) {
            rc = pot_fit(t, kept, &v, err, errlen);
            if (rc)
                return rc;
        }
        v = apply_floor(t, v);
        break;
    }
    if (!isfinite(v) || !(v > 0))
        return ad_errf(err, errlen, AD_ENONFINITE,
                       "threshold %s: result %g is not a positive number%s",
                       ad_thr_method_name(t->cfg.method), v,
                       t->info.floor > 0 ? "" : " (calibration.floor is 0)");
    t->value = v;
    t->fitted = 1;
    t->since_requantile = 0;
    return 0;
}

int ad_threshold_fit_value(ad_threshold *t, double v, double median, double spread,
                           const char *training_json)
{
    if (t->cfg.method != AD_THR_QUANTILE && t->cfg.method != AD_THR_SIGMA)
        return AD_EINVAL;
    ad_threshold_reset(t);
    t->info.floor = floor_value(t, training_json);
    v = apply_floor(t, v);
    if (!isfinite(v) || !(v > 0))
        return AD_ENONFINITE;
    t->info.median = median;
    t->info.spread = spread;
    t->value = v;
    t->fitted = 1;
    t->since_requantile = 0;
    return 0;
}

int ad_threshold_fitted(const ad_threshold *t)
{
    return t->fitted;
}

double ad_threshold_value(const ad_threshold *t)
{
    return t->fitted ? t->value : NAN;
}

void ad_threshold_info(const ad_threshold *t, ad_thr_info *info)
{
    *info = t->info;
}

/* quantile, and sigma with a robust estimator: re-estimate every
 * ADAPT_STRIDE-th of the ring. */
static void adapt_reestimate(ad_threshold *t, double score)
{
    double v;
    size_t kept;

    ring_push(&t->samples, score);
    ad_welford_add(&t->w, score);
    /* An exact estimate costs O(samples): re-estimate once per
     * ADAPT_STRIDE-th of the ring, so a score costs O(ADAPT_STRIDE) at
     * any max_samples (the estimate lags by under 1/ADAPT_STRIDE of
     * the window it is taken over). */
    if (++t->since_requantile < t->samples.len / ADAPT_STRIDE)
        return;
    t->since_requantile = 0;
    if (score_estimate(t, &v, &kept, NULL, 0) != 0)
        return;
    v = apply_floor(t, v);
    if (isfinite(v) && v > 0)
        t->value = v;
}

void ad_threshold_adapt(ad_threshold *t, double score)
{
    double v;

    if (!t->fitted || !t->cfg.adapt || t->frozen || !isfinite(score))
        return;
    if (t->hold_left > 0)
        t->hold_left--;
    switch (t->cfg.method) {
    case AD_THR_QUANTILE:
        adapt_reestimate(t, score);
        break;
    case AD_THR_SIGMA:
        if (t->cfg.estimator != AD_EST_QUANTILE) {
            adapt_reestimate(t, score);
            break;
        }
        ring_push(&t->samples, score);
        ad_welford_add(&t->w, score);
        if (t->w.n < (uint64_t)t->cfg.min_samples || t->w.n < 2)
            break;      /* fitted without scores (ad_threshold_fit_value) */
        v = apply_floor(t, t->w.mean + t->cfg.k * ad_welford_std(&t->w));
        if (isfinite(v) && v > 0)
            t->value = v;
        break;
    case AD_THR_POT: {
        double old = t->value, og = t->gamma, os = t->sigma;
        ad_welford_add(&t->w, score);
        t->n_obs++;
        if (score > t->pot_init) {
            ring_push(&t->peaks, score - t->pot_init);
            if (pot_refit(t) != 0 || !(t->value > 0)) {
                /* the estimate stays: the value as it was, floor and hold
                 * applied already (apply_floor again would take a held
                 * value for the estimate under the hold) */
                t->value = old;
                t->gamma = og;
                t->sigma = os;
            } else {
                t->value = apply_floor(t, t->value);
            }
        } else {
            /* n grows, so the same tail quantile moves: recompute. */
            v = apply_floor(t, ad_pot_quantile(t->pot_init, t->gamma, t->sigma,
                                               t->cfg.pot_risk, t->n_obs, t->peaks.len));
            if (isfinite(v) && v > 0)
                t->value = v;
        }
        break;
    }
    case AD_THR_FIXED:
    case AD_THR_MODEL:
        break;
    }
}

int ad_threshold_rebase(ad_threshold *t, const double *scores, size_t n,
                        const char *training_json, int *how,
                        char *err, size_t errlen)
{
    double old = t->value, old_med = t->info.median, new_med, new_sp, v;
    double *x;
    size_t i;
    int rc = AD_ERANGE;

    if (!t->fitted)
        return ad_errf(err, errlen, AD_EINVAL, "threshold rebase: not fitted");
    if (n < 1)
        return ad_errf(err, errlen, AD_ERANGE, "threshold rebase: no scores");
    for (i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return ad_errf(err, errlen, AD_ENONFINITE, "threshold rebase: score %zu not finite", i);
    if (scratch_ensure(t, 2 * n) != 0)
        return ad_errf(err, errlen, AD_ENOMEM, "threshold rebase: out of memory");
    x = t->scratch;
    memcpy(x, scores, n * sizeof(double));
    robust_stats(x, x + n, n, &new_med, &new_sp);
    if (t->cfg.method != AD_THR_FIXED && t->cfg.method != AD_THR_MODEL) {
        /* Refit a fresh threshold on the new scores; adopt it only when it
         * fits, so a failure leaves this one untouched. */
        ad_threshold *nt = NULL;
        if (ad_threshold_new(&nt, &t->cfg, NULL, 0) != 0)
            return ad_errf(err, errlen, AD_ENOMEM, "threshold rebase: out of memory");
        for (i = 0; i < n; i++)
            ad_threshold_add(nt, scores[i]);
        nt->raised = t->raised;         /* the operator's minimum stays */
        rc = ad_threshold_fit(nt, training_json, NULL, 0);
        if (rc == 0 && nt->samples.len == n) {
            ad_threshold tmp = *t;
            *t = *nt;
            t->frozen = tmp.frozen;
            *nt = tmp;                  /* the old buffers are freed with nt */
        } else {
            rc = AD_ERANGE;
        }
        ad_threshold_free(nt);
    }
    if (rc == 0) {
        if (how)
            *how = 0;
        return 0;
    }
    /* Median shift. */
    /* Without calibration scores (fixed, model) the old threshold is taken
     * as sitting on a level of 0. */
    v = old + (new_med - (isfinite(old_med) ? old_med : 0));
    {
        uint64_t hl = t->hold_left;

        t->hold_left = 0;               /* a rebase ends a hold */
        v = apply_floor(t, v);
        if (!isfinite(v) || !(v > 0)) {
            t->hold_left = hl;
            return ad_errf(err, errlen, AD_ENONFINITE, "threshold rebase: result %g", v);
        }
        t->hold = 0;
    }
    t->value = v;
    t->info.median = new_med;
    t->info.spread = new_sp;
    if (how)
        *how = 1;
    return 0;
}

int ad_threshold_rebase_value(const ad_threshold *t, const double *scores, size_t n,
                              const char *training_json, double *value, int *how,
                              char *err, size_t errlen)
{
    ad_threshold *c;
    int rc;

    if (!t->fitted)
        return ad_errf(err, errlen, AD_EINVAL, "threshold rebase: not fitted");
    if ((c = malloc(sizeof(*c))) == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "threshold rebase: out of memory");
    /* this fit without its buffers: a refit builds its own, the median
     * shift needs only the value, median and floor */
    *c = *t;
    memset(&c->samples, 0, sizeof(c->samples));
    memset(&c->peaks, 0, sizeof(c->peaks));
    c->samples.max = t->samples.max;
    c->peaks.max = t->peaks.max;
    c->scratch = NULL;
    c->scratch_cap = 0;
    rc = ad_threshold_rebase(c, scores, n, training_json, how, err, errlen);
    if (rc == 0)
        *value = c->value;
    ad_threshold_free(c);
    return rc;
}

void ad_threshold_freeze(ad_threshold *t, int frozen)
{
    t->frozen = frozen ? 1 : 0;
}

int ad_threshold_frozen(const ad_threshold *t)
{
    return t->frozen;
}

void ad_threshold_pot_info(const ad_threshold *t, double *init, double *gamma,
                           double *sigma, uint64_t *n_peaks, uint64_t *n)
{
    if (init)
        *init = t->pot_init;
    if (gamma)
        *gamma = t->gamma;
    if (sigma)
        *sigma = t->sigma;
    if (n_peaks)
        *n_peaks = t->peaks.len;
    if (n)
        *n = t->n_obs;
}

/* ---- save / restore ------------------------------------------------------ */

static cJSON *ring_json(const ring *r)
{
    cJSON *a = cJSON_CreateArray();
    size_t i;

    if (a == NULL)
        return NULL;
    for (i = 0; i < r->len; i++) {
        cJSON *n = cJSON_CreateNumber(r->v[(r->head + i) % r->cap]);
        if (n == NULL) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, n);
    }
    return a;
}

cJSON *ad_threshold_save(const ad_threshold *t)
{
    cJSON *o = cJSON_CreateObject(), *w, *a;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddStringToObject(o, "method", ad_thr_method_name(t->cfg.method)) ||
        !cJSON_AddBoolToObject(o, "fitted", t->fitted) ||
        !cJSON_AddBoolToObject(o, "frozen", t->frozen) ||
        !cJSON_AddNumberToObject(o, "value", t->fitted ? t->value : 0) ||
        !cJSON_AddNumberToObject(o, "count", (double)t->count) ||
        (t->raised > 0 && !cJSON_AddNumberToObject(o, "raised", t->raised)) ||
        (t->hold_left > 0 && (!cJSON_AddNumberToObject(o, "hold", t->hold) ||
                              !cJSON_AddNumberToObject(o, "hold_left", (double)t->hold_left) ||
                              !cJSON_AddNumberToObject(o, "unheld", ad_threshold_unheld(t)))))
        goto fail;
    w = cJSON_AddObjectToObject(o, "welford");
    if (w == NULL || !cJSON_AddNumberToObject(w, "n", (double)t->w.n) ||
        !cJSON_AddNumberToObject(w, "mean", t->w.mean) ||
        !cJSON_AddNumberToObject(w, "m2", t->w.m2))
        goto fail;
    if (t->fitted && isfinite(t->info.median)) {
        cJSON *r = cJSON_AddObjectToObject(o, "robust");
        if (r == NULL || !cJSON_AddNumberToObject(r, "median", t->info.median) ||
            !cJSON_AddNumberToObject(r, "spread", t->info.spread) ||
            !cJSON_AddNumberToObject(r, "floor", t->info.floor) ||
            !cJSON_AddBoolToObject(r, "floored", t->info.floored) ||
            !cJSON_AddNumberToObject(r, "trimmed", (double)t->info.trimmed))
            goto fail;
    }
    if (t->samples.max) {
        a = ring_json(&t->samples);
        if (a == NULL)
            goto fail;
        cJSON_AddItemToObject(o, "samples", a);
    }
    if (t->cfg.method == AD_THR_POT) {
        cJSON *p = cJSON_AddObjectToObject(o, "pot");
        if (p == NULL || !cJSON_AddNumberToObject(p, "init", t->pot_init) ||
            !cJSON_AddNumberToObject(p, "gamma", t->gamma) ||
            !cJSON_AddNumberToObject(p, "sigma", t->sigma) ||
            !cJSON_AddNumberToObject(p, "n", (double)t->n_obs))
            goto fail;
        a = ring_json(&t->peaks);
        if (a == NULL)
            goto fail;
        cJSON_AddItemToObject(p, "peaks", a);
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static int get_num(const cJSON *o, const char *key, double *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return -1;
    *v = x->valuedouble;
    return 0;
}

static int ring_from_json(ring *r, const cJSON *a)
{
    const cJSON *x;

    r->len = r->head = 0;
    if (a == NULL)
        return 0;
    if (!cJSON_IsArray(a))
        return -1;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return -1;
        ring_push(r, x->valuedouble);
    }
    return 0;
}

int ad_threshold_restore(ad_threshold *t, const cJSON *j, char *err, size_t errlen)
{
    const cJSON *m, *w, *fit, *p;
    double value, count, wn, wmean, wm2;

    if (!cJSON_IsObject(j))
        return ad_errf(err, errlen, AD_EFORMAT, "threshold state: not an object");
    m = cJSON_GetObjectItemCaseSensitive(j, "method");
    if (!cJSON_IsString(m))
        return ad_errf(err, errlen, AD_EFORMAT, "threshold state: method missing");
    if (ad_thr_method_from_name(m->valuestring) != (int)t->cfg.method)
        return ad_errf(err, errlen, AD_EINVAL,
                       "threshold state: method %s, settings say %s",
                       m->valuestring, ad_thr_method_name(t->cfg.method));
    fit = cJSON_GetObjectItemCaseSensitive(j, "fitted");
    w = cJSON_GetObjectItemCaseSensitive(j, "welford");
    if (!cJSON_IsBool(fit) || get_num(j, "value", &value) || get_num(j, "count", &count) ||
        !cJSON_IsObject(w) || get_num(w, "n", &wn) || get_num(w, "mean", &wmean) ||
        get_num(w, "m2", &wm2) || !(wn >= 0 && wn <= 1e18) || !(count >= 0 && count <= 1e18) ||
        wm2 < 0)
        return ad_errf(err, errlen, AD_EFORMAT, "threshold state: fitted/value/count/welford malformed");
    if (cJSON_IsTrue(fit) && !(value > 0))
        return ad_errf(err, errlen, AD_EFORMAT, "threshold state: value must be > 0");
    ad_threshold_reset(t);
    if (t->samples.max &&
        ring_from_json(&t->samples, cJSON_GetObjectItemCaseSensitive(j, "samples")))
        goto bad;
    if (t->cfg.method == AD_THR_POT) {
        double n_obs;
        p = cJSON_GetObjectItemCaseSensitive(j, "pot");
        if (!cJSON_IsObject(p) || get_num(p, "init", &t->pot_init) ||
            get_num(p, "gamma", &t->gamma) || get_num(p, "sigma", &t->sigma) ||
            get_num(p, "n", &n_obs) || !(n_obs >= 0 && n_obs <= 1e18) ||
            ring_from_json(&t->peaks, cJSON_GetObjectItemCaseSensitive(p, "peaks")))
            goto bad;
        t->n_obs = (uint64_t)n_obs;
    }
    t->w.n = (uint64_t)wn;
    t->w.mean = wmean;
    t->w.m2 = wm2;
    t->count = (uint64_t)count;
    t->fitted = cJSON_IsTrue(fit);
    t->value = t->fitted ? value : NAN;
    t->frozen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "frozen"));
    p = cJSON_GetObjectItemCaseSensitive(j, "raised");   /* optional */
    t->raised = cJSON_IsNumber(p) && isfinite(p->valuedouble) && p->valuedouble > 0 ?
                p->valuedouble : 0;
    p = cJSON_GetObjectItemCaseSensitive(j, "robust");
    if (cJSON_IsObject(p)) {             /* optional: older states lack it */
        double med, sp, fl, tr;
        if (get_num(p, "median", &med) || get_num(p, "spread", &sp) || sp < 0 ||
            get_num(p, "floor", &fl) || fl < 0 || get_num(p, "trimmed", &tr) || tr < 0)
            goto bad;
        t->info.median = med;
        t->info.spread = sp;
        t->info.floor = fl;
        t->info.floored = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "floored"));
        t->info.trimmed = (uint64_t)tr;
    }
    t->hold = 0;
    t->hold_left = 0;
    p = cJSON_GetObjectItemCaseSensitive(j, "hold");       /* optional */
    if (p != NULL) {
        double h, hl;
        if (get_num(j, "hold", &h) || !(h > 0) || get_num(j, "hold_left", &hl) ||
            !(hl >= 1 && hl <= 1e15)) {
            ad_threshold_reset(t);
            return ad_errf(err, errlen, AD_EFORMAT, "threshold state: hold/hold_left "
                           "malformed (a value > 0 and a count >= 1)");
        }
        if (t->fitted && t->cfg.method != AD_THR_FIXED && t->cfg.method != AD_THR_MODEL) {
            t->hold = h;            /* else ignored: nothing to hold */
            t->hold_left = (uint64_t)hl;
            /* optional (older states: the value, held) */
            if (get_num(j, "unheld", &t->unheld) || !(t->unheld > 0))
                t->unheld = t->value;
        }
    }
    return 0;
bad:
    ad_threshold_reset(t);
    return ad_errf(err, errlen, AD_EFORMAT, "threshold state: samples/pot malformed");
}

/* ---- operator feedback -------------------------------------------------- */

int ad_threshold_raise(ad_threshold *t, double v)
{
    if (!t->fitted || !isfinite(v) || !(v > 0))
        return AD_EINVAL;
    if (v > t->raised)
        t->raised = v;
    if (!(t->value >= t->raised))
        t->value = t->raised;
    return 0;
}

void ad_threshold_scale_raised(ad_threshold *t, double f)
{
    if (t->raised > 0 && f > 0 && isfinite(f))
        t->raised *= f;
}

double ad_threshold_raised(const ad_threshold *t)
{
    return t->raised;
}
