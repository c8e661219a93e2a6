/*
 * quality.c - per-stream data-quality monitor: learning of each feature's
 * spread, step, flat runs and period; stuck / range / dropout / rejected
 * checks with raise-once / clear-once events; flagged data-time spans;
 * save/restore of the learned state. See quality.h for the rules.
 */
#include "quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ad.h"
#include "model.h"

/* A feature "varies" when at least this share of its learned steps move. */
#define DQ_MIN_MOVING 0.10
/* Flat runs / gaps seen while learning are tolerated up to this factor. */
#define DQ_LEARNED_FACTOR 2

enum {
    FL_LEARNED = 1,
    FL_VARIES = 2,
    FL_SEEN = 4,        /* at least one sample */
    FL_RUN = 8          /* a flat run is being tracked (ref valid) */
};

/* Learning buffer of one feature, freed when its learning ends. */
typedef struct dq_learn {
    double x0;          /* first value; v[] are offsets from it */
    int n;
    float *v;           /* L values - x0 */
    float *dt;          /* L inter-arrival times (ms), dt[0] unused */
} dq_learn;

/* A slot (a feature, or the whole stream) keeps its open conditions in
 * arrays of the checks a feature can have; `late`, the whole stream's only,
 * takes the place of `stuck`, which the whole stream never has (a feature
 * saves 24 bytes). */
#define DQ_SLOT_CHECKS AD_DQ_LATE
static int slot_check(ad_dq_check c)
{
    return c == AD_DQ_LATE ? AD_DQ_STUCK : (int)c;
}

typedef struct dq_feat {
    /* learned */
    double center, sigma;
    float step, period, gap;
    uint32_t run_max;
    /* live */
    double ref;             /* first value of the current flat run */
    int64_t last_ts;        /* last sample */
    int64_t run_ts;         /* first sample of the flat run */
    uint32_t run_len;
    uint32_t in_range;      /* consecutive in-range values (range clear) */
    float rej_level;        /* rejected bucket */
    uint8_t flags;
    uint8_t active;         /* bit per check */
    int64_t rej_ts;
    /* open conditions, by slot_check(): the per-feature checks */
    int64_t act_start[DQ_SLOT_CHECKS];
    int64_t act_since[DQ_SLOT_CHECKS];  /* the condition's own start (<= act_start) */
    uint32_t act_seq[DQ_SLOT_CHECKS];
    uint32_t act_count[DQ_SLOT_CHECKS];
    dq_learn *learn;
} dq_feat;

typedef struct dq_span {
    int64_t from, to;
} dq_span;

struct ad_dq {
    ad_dq_cfg cfg;
    char *key;
    int F;
    ad_dq_event_fn fn;
    void *user;
    int64_t now;
    int has_now;
    int64_t last_any;       /* last sample of any feature */
    int64_t first_any;      /* ... and the first (since this monitor began) */
    int has_any;
    int rr;                 /* round-robin feature for per-sample dropout */
    uint64_t seq;
    int n_active;
    double stream_limit;    /* whole-stream dropout limit (ms), 0 = off */
    /* stream-level conditions: dropout (all features) and rejected values
     * of unknown features, kept in a dq_feat slot of their own */
    dq_feat whole;
    /* late: the current window of the ad_dq_late clock (see quality.h) */
    int64_t lt_clock;       /* the clock, never backwards */
    int64_t lt_w0;          /* start of the window; lt_open: one is open */
    int64_t lt_first, lt_last;  /* first and last late value in it */
    uint64_t lt_late, lt_ok;    /* values dropped as late / accepted in it */
    uint64_t lt_count;      /* dropped as late since the raising window began */
    int lt_has_clock, lt_open;
    double lt_iv, lt_per;   /* the window's cadence: usual row interval
                             * (ms of the clock, 0: unknown), values a row */
    double lt_per_new;      /* the last ad_dq_late_per_row */
    double rt_rate;         /* values accepted a ms of the clock, 0: unknown */
    int64_t rt_b0;          /* the block measuring it: its first call, */
    uint64_t rt_n;          /* values accepted after that call */
    int rt_has;
    dq_span spans[AD_DQ_SPANS];
    int n_spans, span_head;
    ad_dq_stats st;
    double *pmin, *pmax;    /* F each, NaN = none; NULL when none at all */
    dq_feat *feat;          /* F */
};

void ad_dq_cfg_default(ad_dq_cfg *c)
{
    c->learn_samples = 100;
    c->stuck_samples = 30;
    c->stuck_ms = 0;
    c->stuck_tol = 0.05;
    c->range_k = 0;
    c->range_clear_samples = 5;
    c->dropout_factor = 5;
    c->dropout_min_ms = 5000;
    c->reject_count = 10;
    c->reject_window_ms = 60000;
}

int ad_dq_cfg_check(const ad_dq_cfg *c, char *err, size_t errlen)
{
    if (c->learn_samples < 16 || c->learn_samples > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.learn_samples: must be 16..1000000 (got %d)", c->learn_samples);
    if (c->stuck_samples != 0 && (c->stuck_samples < 2 || c->stuck_samples > 1000000000))
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.stuck_samples: must be 0 (off) or 2..1000000000 (got %d)",
                       c->stuck_samples);
    if (c->stuck_ms < 0 || c->stuck_ms > (int64_t)1000000000000LL)
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.stuck_ms: must be 0 (off) or 1..1e12 (got %lld)",
                       (long long)c->stuck_ms);
    if (!(c->stuck_tol >= 0 && c->stuck_tol <= 1))
        return ad_errf(err, errlen, AD_EINVAL, "quality.stuck_tol: must be in [0,1] (got %g)",
                       c->stuck_tol);
    if (!(c->range_k == 0 || (c->range_k >= 1 && c->range_k <= 1e6)))
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.range_k: must be 0 (off) or in [1,1e6] (got %g)", c->range_k);
    if (c->range_clear_samples < 1 || c->range_clear_samples > 1000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.range_clear_samples: must be 1..1000000 (got %d)",
                       c->range_clear_samples);
    if (!(c->dropout_factor == 0 || (c->dropout_factor >= 1.5 && c->dropout_factor <= 1e6)))
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.dropout_factor: must be 0 (off) or in [1.5,1e6] (got %g)",
                       c->dropout_factor);
    if (c->dropout_min_ms < 0 || c->dropout_min_ms > (int64_t)1000000000000LL)
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.dropout_min_ms: must be 0..1e12 (got %lld)",
                       (long long)c->dropout_min_ms);
    if (c->reject_count < 0 || c->reject_count > 1000000000)
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.reject_count: must be 0 (off) or 1..1000000000 (got %d)",
                       c->reject_count);
    if (c->reject_window_ms < 1 || c->reject_window_ms > (int64_t)1000000000000LL)
        return ad_errf(err, errlen, AD_EINVAL,
                       "quality.reject_window_ms: must be 1..1e12 (got %lld)",
                       (long long)c->reject_window_ms);
    return 0;
}

const char *ad_dq_check_name(ad_dq_check c)
{
    switch (c) {
    case AD_DQ_STUCK: return "stuck";
    case AD_DQ_RANGE: return "range";
    case AD_DQ_DROPOUT: return "dropout";
    case AD_DQ_REJECTED: return "rejected";
    case AD_DQ_LATE: return "late";
    default: return "?";
    }
}

static void learn_free(dq_feat *f)
{
    free(f->learn);
    f->learn = NULL;
}

void ad_dq_free(ad_dq *q)
{
    int f;

    if (q == NULL)
        return;
    if (q->feat)
        for (f = 0; f < q->F; f++)
            learn_free(&q->feat[f]);
    free(q->feat);
    free(q->pmin);
    free(q->pmax);
    free(q->key);
    free(q);
}

static dq_learn *learn_new(int L)
{
    size_t bytes = sizeof(dq_learn) + (size_t)L * 2 * sizeof(float);
    dq_learn *l = malloc(bytes);

    if (l == NULL)
        return NULL;
    l->x0 = 0;
    l->n = 0;
    l->v = (float *)(l + 1);
    l->dt = l->v + L;
    return l;
}

int ad_dq_new(ad_dq **out, const ad_dq_cfg *cfg, const char *key, int n_features,
              const double *pmin, const double *pmax, ad_dq_event_fn fn,
              void *user, char *err, size_t errlen)
{
    ad_dq *q;
    int rc, f;

    *out = NULL;
    rc = ad_dq_cfg_check(cfg, err, errlen);
    if (rc)
        return rc;
    if (n_features < 1 || n_features > AD_MAX_FEATURES)
        return ad_errf(err, errlen, AD_EINVAL, "quality: bad feature count %d", n_features);
    for (f = 0; f < n_features; f++) {
        double lo = pmin ? pmin[f] : NAN, hi = pmax ? pmax[f] : NAN;
        if (isinf(lo) || isinf(hi) || (!isnan(lo) && !isnan(hi) && !(lo < hi)))
            return ad_errf(err, errlen, AD_EINVAL,
                           "quality: physical range of feature %d: need finite min < max "
                           "(got %g..%g)", f, lo, hi);
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "quality: out of memory");
    q->cfg = *cfg;
    q->F = n_features;
    q->fn = fn;
    q->user = user;
    q->key = strdup(key ? key : "");
    q->feat = calloc((size_t)n_features, sizeof(dq_feat));
    if (q->key == NULL || q->feat == NULL)
        goto oom;
    if (pmin || pmax) {
        q->pmin = malloc((size_t)n_features * sizeof(double));
        q->pmax = malloc((size_t)n_features * sizeof(double));
        if (q->pmin == NULL || q->pmax == NULL)
            goto oom;
        for (f = 0; f < n_features; f++) {
            q->pmin[f] = pmin ? pmin[f] : NAN;
            q->pmax[f] = pmax ? pmax[f] : NAN;
        }
    }
    for (f = 0; f < n_features; f++) {
        q->feat[f].learn = learn_new(cfg->learn_samples);
        if (q->feat[f].learn == NULL)
            goto oom;
    }
    *out = q;
    return 0;
oom:
    ad_dq_free(q);
    return ad_errf(err, errlen, AD_ENOMEM, "quality: out of memory");
}

int ad_dq_set_cfg(ad_dq *q, const ad_dq_cfg *cfg, char *err, size_t errlen)
{
    int rc = ad_dq_cfg_check(cfg, err, errlen), f;

    if (rc)
        return rc;
    /* A feature still learning keeps the buffer size it started with. */
    if (cfg->learn_samples != q->cfg.learn_samples)
        for (f = 0; f < q->F; f++)
            if (q->feat[f].learn && q->feat[f].learn->n > 0)
                return ad_errf(err, errlen, AD_EINVAL,
                               "quality.learn_samples: cannot change while features learn");
    for (f = 0; f < q->F && cfg->learn_samples != q->cfg.learn_samples; f++) {
        if (q->feat[f].learn) {
            dq_learn *l = learn_new(cfg->learn_samples);
            if (l == NULL)
                return ad_errf(err, errlen, AD_ENOMEM, "quality: out of memory");
            learn_free(&q->feat[f]);
            q->feat[f].learn = l;
        }
    }
    q->cfg = *cfg;
    return 0;
}

/* a - b in ms as a double: no int64 overflow for any pair of timestamps. */
static double ms_between(int64_t a, int64_t b)
{
    return (double)a - (double)b;
}

/* ---- derived limits ------------------------------------------------------ */

static double dropout_limit(const ad_dq *q, const dq_feat *ft)
{
    double a, b;

    if (!(ft->flags & FL_LEARNED) || q->cfg.dropout_factor <= 0 || !(ft->period > 0))
        return 0;
    a = q->cfg.dropout_factor * ft->period;
    b = DQ_LEARNED_FACTOR * (double)ft->gap;
    if (b > a)
        a = b;
    return a > (double)q->cfg.dropout_min_ms ? a : (double)q->cfg.dropout_min_ms;
}

static uint64_t stuck_need(const ad_dq *q, const dq_feat *ft)
{
    uint64_t l = (uint64_t)DQ_LEARNED_FACTOR * ft->run_max;

    if (q->cfg.stuck_samples <= 0)
        return 0;
    return (uint64_t)q->cfg.stuck_samples > l ? (uint64_t)q->cfg.stuck_samples : l;
}

static double stuck_need_ms(const ad_dq *q, const dq_feat *ft)
{
    double l = DQ_LEARNED_FACTOR * (double)ft->run_max * ft->period;

    if (q->cfg.stuck_ms <= 0)
        return 0;
    return (double)q->cfg.stuck_ms > l ? (double)q->cfg.stuck_ms : l;
}

static int stuck_enabled(const ad_dq *q, const dq_feat *ft)
{
    return (ft->flags & FL_LEARNED) && (ft->flags & FL_VARIES) && ft->step > 0 &&
           (q->cfg.stuck_samples > 0 || q->cfg.stuck_ms > 0);
}

static void recompute_stream_limit(ad_dq *q)
{
    double m = 0;
    int f;

    for (f = 0; f < q->F; f++) {
        double l = dropout_limit(q, &q->feat[f]);
        if (l > 0 && (m == 0 || l < m))
            m = l;
    }
    q->stream_limit = m;
}

/* ---- spans and events ---------------------------------------------------- */

static dq_span *span_last(ad_dq *q)
{
    if (q->n_spans == 0)
        return NULL;
    return &q->spans[(q->span_head + AD_DQ_SPANS - 1) % AD_DQ_SPANS];
}

static void span_add(ad_dq *q, int64_t from, int64_t to)
{
    dq_span *l = span_last(q);

    if (to < from)
        to = from;
    if (l && from <= l->to && to >= l->from) {
        if (from < l->from)
            l->from = from;
        if (to > l->to)
            l->to = to;
        return;
    }
    q->spans[q->span_head].from = from;
    q->spans[q->span_head].to = to;
    q->span_head = (q->span_head + 1) % AD_DQ_SPANS;
    if (q->n_spans < AD_DQ_SPANS)
        q->n_spans++;
}

int ad_dq_flagged(const ad_dq *q, int64_t from_ms, int64_t to_ms)
{
    int i;

    for (i = 0; i < q->n_spans; i++) {
        const dq_span *s = &q->spans[i];
        if (s->from <= to_ms && s->to >= from_ms)
            return 1;
    }
    return 0;
}

/* Open conditions extend the latest span to the clock. */
static void span_extend(ad_dq *q)
{
    dq_span *l = span_last(q);

    if (q->n_active > 0 && l && q->now > l->to)
        l->to = q->now;
}

static void emit(ad_dq *q, const ad_dq_event *ev)
{
    if (q->fn)
        q->fn(ev, q->user);
}

/* Raise check c on slot ft (feature index f, -1 for the stream). */
static void dq_raise(ad_dq *q, dq_feat *ft, int f, ad_dq_check c, int64_t ts,
                     ad_dq_event *ev)
{
    q->seq++;
    ft->active |= (uint8_t)(1u << c);
    ft->act_start[slot_check(c)] = ts;
    ft->act_since[slot_check(c)] = ev->since_ms;
    ft->act_seq[slot_check(c)] = (uint32_t)q->seq;
    q->n_active++;
    q->st.raised[c]++;
    ev->seq = q->seq;
    ev->check = c;
    ev->feature = f;
    ev->active = 1;
    ev->start_ms = ts;
    ev->end_ms = 0;
    snprintf(ev->id, sizeof(ev->id), "%s-dq-%lld-%llu", q->key, (long long)ts,
             (unsigned long long)q->seq);
    span_add(q, ev->since_ms, ts);
    emit(q, ev);
}

static void dq_clear(ad_dq *q, dq_feat *ft, int f, ad_dq_check c, int64_t ts,
                     ad_dq_event *ev)
{
    ft->active &= (uint8_t)~(1u << c);
    q->n_active--;
    q->st.cleared[c]++;
    ev->seq = ft->act_seq[slot_check(c)];
    ev->check = c;
    ev->feature = f;
    ev->active = 0;
    ev->start_ms = ft->act_start[slot_check(c)];
    ev->since_ms = ft->act_since[slot_check(c)];   /* as the raise said */
    ev->end_ms = ts;
    snprintf(ev->id, sizeof(ev->id), "%s-dq-%lld-%llu", q->key,
             (long long)ft->act_start[slot_check(c)],
             (unsigned long long)ft->act_seq[slot_check(c)]);
    span_add(q, ts, ts);
    span_extend(q);
    emit(q, ev);
}

static void ev_init(ad_dq_event *ev)
{
    memset(ev, 0, sizeof(*ev));
}

/* ---- learning ------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return (x > y) - (x < y);
}

/* q-quantile of sorted a[0..n) (nearest rank, lower). */
static float quant(const float *a, int n, double p)
{
    int i = (int)(p * (n - 1));

    return a[i];
}

/* End of a feature's learning span: the figures of quality.h LEARNING. */
static void learn_finish(ad_dq *q, dq_feat *ft)
{
    dq_learn *l = ft->learn;
    int n = l->n, i, m, moves = 0;
    float *v = l->v, *d = l->dt;
    double tol, ref, med, mad;
    uint32_t run = 1, run_max = 1;

    /* period: median and 95th percentile of the positive inter-arrivals */
    for (i = 1, m = 0; i < n; i++)
        if (d[i] > 0)
            d[m++] = d[i];
    if (m > 0) {
        qsort(d, (size_t)m, sizeof(float), cmp_float);
        ft->period = quant(d, m, 0.5);
        ft->gap = quant(d, m, 0.95);
    } else {
        ft->period = ft->gap = 0;
    }
    /* typical step: median |dx|, else the median of the non-zero steps */
    for (i = 1; i < n; i++)
        d[i - 1] = fabsf(v[i] - v[i - 1]);
    qsort(d, (size_t)(n - 1), sizeof(float), cmp_float);
    ft->step = quant(d, n - 1, 0.5);
    if (!(ft->step > 0)) {
        for (i = 0; i < n - 1 && !(d[i] > 0); i++)
            ;
        ft->step = i < n - 1 ? quant(d + i, n - 1 - i, 0.5) : 0;
    }
    /* flat runs and moving share, with the tolerance of the settings */
    tol = q->cfg.stuck_tol * ft->step;
    ref = v[0];
    for (i = 1; i < n; i++) {
        if (fabs(v[i] - ref) <= tol) {
            if (++run > run_max)
                run_max = run;
        } else {
            moves++;
            ref = v[i];
            run = 1;
        }
    }
    ft->run_max = run_max;
    if (ft->step > 0 && moves >= DQ_MIN_MOVING * (n - 1))
        ft->flags |= FL_VARIES;
    /* robust center and spread */
    qsort(v, (size_t)n, sizeof(float), cmp_float);
    med = quant(v, n, 0.5);
    for (i = 0; i < n; i++)
        d[i] = fabsf(v[i] - (float)med);
    qsort(d, (size_t)n, sizeof(float), cmp_float);
    mad = quant(d, n, 0.5);
    ft->center = l->x0 + med;
    ft->sigma = 1.4826 * mad;
    if (!(ft->sigma > 0))
        ft->sigma = ((double)v[n - 1] - (double)v[0]) / 6.0;
    ft->flags |= FL_LEARNED;
    learn_free(ft);
    q->st.features_learned++;
    recompute_stream_limit(q);
}

static void learn_add(ad_dq *q, dq_feat *ft, int64_t ts, double x)
{
    dq_learn *l = ft->learn;

    if (l->n == 0) {
        l->x0 = x;
        l->dt[0] = 0;
    } else {
        l->dt[l->n] = (float)ms_between(ts, ft->last_ts);
    }
    l->v[l->n++] = (float)(x - l->x0);
    if (l->n >= q->cfg.learn_samples)
        learn_finish(q, ft);
}

/* ---- checks -------------------------------------------------------------- */

/* Leaky bucket level of slot ft at the clock. */
static double rej_level(const ad_dq *q, const dq_feat *ft)
{
    double rate = (double)q->cfg.reject_count / (double)q->cfg.reject_window_ms;
    double l = ft->rej_level - ms_between(q->now, ft->rej_ts) * rate;

    return l > 0 ? l : 0;
}

static void rej_check_clear(ad_dq *q, dq_feat *ft, int f)
{
    ad_dq_event ev;

    if (!(ft->active & (1u << AD_DQ_REJECTED)) || rej_level(q, ft) > 0)
        return;
    ev_init(&ev);
    ev.limit = q->cfg.reject_count;
    ev.count = ft->act_count[AD_DQ_REJECTED];
    dq_clear(q, ft, f, AD_DQ_REJECTED, q->now, &ev);
}

static void dropout_check(ad_dq *q, dq_feat *ft, int f)
{
    double lim;
    ad_dq_event ev;

    if ((ft->active & (1u << AD_DQ_DROPOUT)) || (q->whole.active & (1u << AD_DQ_DROPOUT)))
        return;
    if (!(ft->flags & FL_SEEN)) {
        /* never seen while the stream's other features come (a misnamed
         * field): a dropout since the stream's first sample, once that is
         * longer than the stream's own dropout limit */
        lim = (ft->flags & FL_LEARNED) ? dropout_limit(q, ft) : q->stream_limit;
        if (!q->has_any || lim <= 0 || ms_between(q->now, q->first_any) <= lim)
            return;
        ft->last_ts = q->first_any;     /* the span it flags at its clear */
        ev_init(&ev);
        ev.since_ms = q->first_any;
        ev.value = ms_between(q->now, q->first_any);
        ev.limit = lim;
        dq_raise(q, ft, f, AD_DQ_DROPOUT, q->now, &ev);
        return;
    }
    lim = dropout_limit(q, ft);
    if (lim <= 0 || ms_between(q->now, ft->last_ts) <= lim)
        return;
    ev_init(&ev);
    ev.since_ms = ft->last_ts;
    ev.value = ms_between(q->now, ft->last_ts);
    ev.limit = lim;
    dq_raise(q, ft, f, AD_DQ_DROPOUT, q->now, &ev);
}

static void stream_dropout_check(ad_dq *q)
{
    ad_dq_event ev;

    if ((q->whole.active & (1u << AD_DQ_DROPOUT)) || !q->has_any || q->stream_limit <= 0 ||
        ms_between(q->now, q->last_any) <= q->stream_limit)
        return;
    ev_init(&ev);
    ev.since_ms = q->last_any;
    ev.value = ms_between(q->now, q->last_any);
    ev.limit = q->stream_limit;
    dq_raise(q, &q->whole, -1, AD_DQ_DROPOUT, q->now, &ev);
}

static int range_out(const ad_dq *q, const dq_feat *ft, int f, double x, double *lo,
                     double *hi, int *physical)
{
    if (q->pmin && ((!isnan(q->pmin[f]) && x < q->pmin[f]) ||
                    (!isnan(q->pmax[f]) && x > q->pmax[f]))) {
        *lo = isnan(q->pmin[f]) ? -INFINITY : q->pmin[f];
        *hi = isnan(q->pmax[f]) ? INFINITY : q->pmax[f];
        *physical = 1;
        return 1;
    }
    if ((ft->flags & FL_LEARNED) && q->cfg.range_k > 0 && ft->sigma > 0 &&
        fabs(x - ft->center) > q->cfg.range_k * ft->sigma) {
        *lo = ft->center - q->cfg.range_k * ft->sigma;
        *hi = ft->center + q->cfg.range_k * ft->sigma;
        *physical = 0;
        return 1;
    }
    return 0;
}

static void range_step(ad_dq *q, dq_feat *ft, int f, int64_t ts, double x, int out,
                       double lo, double hi, int physical)
{
    ad_dq_event ev;

    if (out) {
        ft->in_range = 0;
        if (ft->active & (1u << AD_DQ_RANGE)) {
            ft->act_count[AD_DQ_RANGE]++;
            return;
        }
        ev_init(&ev);
        ev.since_ms = ts;
        ev.value = x;
        ev.lo = lo;
        ev.hi = hi;
        ev.physical = physical;
        ev.count = 1;
        ft->act_count[AD_DQ_RANGE] = 1;
        dq_raise(q, ft, f, AD_DQ_RANGE, ts, &ev);
        return;
    }
    if (!(ft->active & (1u << AD_DQ_RANGE)))
        return;
    if (++ft->in_range < (uint32_t)q->cfg.range_clear_samples)
        return;
    ev_init(&ev);
    ev.value = x;
    ev.count = ft->act_count[AD_DQ_RANGE];
    dq_clear(q, ft, f, AD_DQ_RANGE, ts, &ev);
}

static void stuck_step(ad_dq *q, dq_feat *ft, int f, int64_t ts, double x)
{
    double tol = q->cfg.stuck_tol * ft->step, need_ms;
    uint64_t need;
    ad_dq_event ev;
    int by_time;

    if (!(ft->flags & FL_RUN) || fabs(x - ft->ref) > tol) {
        if (ft->active & (1u << AD_DQ_STUCK)) {
            ev_init(&ev);
            ev.value = ft->ref;
            ev.count = ft->run_len;
            dq_clear(q, ft, f, AD_DQ_STUCK, ts, &ev);
        }
        ft->flags |= FL_RUN;
        ft->ref = x;
        ft->run_ts = ts;
        ft->run_len = 1;
        return;
    }
    if (ft->run_len < UINT32_MAX)
        ft->run_len++;
    if ((ft->active & (1u << AD_DQ_STUCK)) || !stuck_enabled(q, ft))
        return;
    need = stuck_need(q, ft);
    need_ms = stuck_need_ms(q, ft);
    by_time = need_ms > 0 && ms_between(ts, ft->run_ts) >= need_ms;
    if (!(need > 0 && ft->run_len >= need) && !by_time)
        return;
    ev_init(&ev);
    ev.since_ms = ft->run_ts;
    ev.value = ft->ref;
    ev.count = ft->run_len;
    ev.by_time = !(need > 0 && ft->run_len >= need);
    ev.limit = ev.by_time ? need_ms : (double)need;
    dq_raise(q, ft, f, AD_DQ_STUCK, ts, &ev);
}

static int slot_flags(const dq_feat *ft)
{
    return ft->active;
}

/* One value; no stats, no span extension (callers do). */
static int sample_one(ad_dq *q, int64_t ts, int f, double x)
{
    dq_feat *ft = &q->feat[f];
    ad_dq_event ev;
    double lo = 0, hi = 0;
    int physical = 0, out, flags = 0;

    if (ft->active & (1u << AD_DQ_DROPOUT)) {
        ev_init(&ev);
        ev.value = ms_between(ts, ft->last_ts);
        dq_clear(q, ft, f, AD_DQ_DROPOUT, ts, &ev);
        span_add(q, ft->last_ts, ts);
        flags |= AD_DQ_F_DROPOUT;       /* the first value after a hole */
    }
    if (q->whole.active & (1u << AD_DQ_DROPOUT)) {
        ev_init(&ev);
        ev.value = ms_between(ts, q->last_any);
        dq_clear(q, &q->whole, -1, AD_DQ_DROPOUT, ts, &ev);
        span_add(q, q->last_any, ts);
        flags |= AD_DQ_F_DROPOUT;
    }
    out = range_out(q, ft, f, x, &lo, &hi, &physical);
    range_step(q, ft, f, ts, x, out, lo, hi, physical);
    if (out)
        flags |= AD_DQ_F_RANGE;
    if (ft->flags & FL_LEARNED)
        stuck_step(q, ft, f, ts, x);
    else if (!(out && physical))
        learn_add(q, ft, ts, x);
    if ((ft->flags & FL_LEARNED) && !(ft->flags & FL_RUN)) {
        /* learning just ended: the flat run starts here */
        ft->flags |= FL_RUN;
        ft->ref = x;
        ft->run_ts = ts;
        ft->run_len = 1;
    }
    ft->last_ts = ts;
    ft->flags |= FL_SEEN;
    if (!q->has_any)
        q->first_any = ts;
    if (!q->has_any || ts > q->last_any)
        q->last_any = ts;
    q->has_any = 1;
    rej_check_clear(q, ft, f);
    return flags | slot_flags(ft);
}

static void clock_to(ad_dq *q, int64_t ts)
{
    if (!q->has_now || ts > q->now)
        q->now = ts;
    q->has_now = 1;
}

int ad_dq_sample(ad_dq *q, int64_t ts_ms, int feature, double value)
{
    int flags, g;

    if (feature < 0 || feature >= q->F || !isfinite(value))
        return AD_EINVAL;
    clock_to(q, ts_ms);
    flags = sample_one(q, ts_ms, feature, value);
    /* one other feature per sample: a feature silent while the others
     * report is found without advance (amortised O(1)) */
    g = q->rr;
    q->rr = (q->rr + 1) % q->F;
    dropout_check(q, &q->feat[g], g);
    rej_check_clear(q, &q->whole, -1);
    flags |= slot_flags(&q->whole);
    span_extend(q);
    q->st.samples++;
    if (flags) {
        q->st.samples_flagged++;
        span_add(q, ts_ms, ts_ms);
    }
    return flags;
}

int ad_dq_row(ad_dq *q, int64_t ts_ms, const double *values,
              const unsigned char *present)
{
    int f, flags = 0, fl;

    clock_to(q, ts_ms);
    for (f = 0; f < q->F; f++) {
        if ((present && !present[f]) || !isfinite(values[f]))
            continue;
        fl = sample_one(q, ts_ms, f, values[f]);
        q->st.samples++;
        if (fl)
            q->st.samples_flagged++;
        flags |= fl;
    }
    for (f = 0; f < q->F; f++)
        dropout_check(q, &q->feat[f], f);
    rej_check_clear(q, &q->whole, -1);
    flags |= slot_flags(&q->whole);
    span_extend(q);
    q->st.rows++;
    if (flags) {
        q->st.rows_flagged++;
        span_add(q, ts_ms, ts_ms);
    }
    return flags;
}

void ad_dq_rejected(ad_dq *q, int feature, uint64_t n)
{
    dq_feat *ft = feature >= 0 && feature < q->F ? &q->feat[feature] : &q->whole;
    int f = feature >= 0 && feature < q->F ? feature : -1;
    double l, cap;
    ad_dq_event ev;

    q->st.rejected += n;
    if (q->cfg.reject_count <= 0 || n == 0)
        return;
    cap = 2.0 * q->cfg.reject_count;
    l = rej_level(q, ft) + (double)n;
    ft->rej_level = (float)(l < cap ? l : cap);
    ft->rej_ts = q->now;
    if (ft->active & (1u << AD_DQ_REJECTED)) {
        ft->act_count[AD_DQ_REJECTED] += (uint32_t)(n < UINT32_MAX ? n : UINT32_MAX);
        return;
    }
    if (l < q->cfg.reject_count)
        return;
    ft->act_count[AD_DQ_REJECTED] = (uint32_t)(l < UINT32_MAX ? l : UINT32_MAX);
    ev_init(&ev);
    ev.since_ms = q->now;
    ev.value = ft->rej_level;
    ev.limit = q->cfg.reject_count;
    ev.count = ft->act_count[AD_DQ_REJECTED];
    dq_raise(q, ft, f, AD_DQ_REJECTED, q->now, &ev);
}

int ad_dq_refused_hole(ad_dq *q, int64_t ts_ms)
{
    if (!q->has_any || q->stream_limit <= 0 || ts_ms <= q->last_any ||
        (q->whole.active & (1u << AD_DQ_DROPOUT)) ||
        ms_between(ts_ms, q->last_any) <= q->stream_limit)
        return 0;
    span_add(q, q->last_any, ts_ms);
    return 1;
}

#define AD_DQ_LATE_BLOCK 32

/* The late window's length: reject_window_ms, or for a stream slower than
 * a row each reject_window_ms / (2 AD_DQ_LATE_ROWS) ms, 2 AD_DQ_LATE_ROWS
 * of its usual intervals, so that its rows dropped as late can fill one. */
static double late_wlen(const ad_dq *q)
{
    double w = (double)q->cfg.reject_window_ms, s = 2.0 * AD_DQ_LATE_ROWS * q->lt_iv;

    return s > w ? s : w;
}

/* Values dropped as late a window needs: reject_count, or, when fewer,
 * the rows half the window holds at the stream's usual cadence (at least
 * AD_DQ_LATE_ROWS) times the values a row: a slow stream raises too. */
static double late_limit(const ad_dq *q)
{
    double c = (double)q->cfg.reject_count, n;

    if (q->lt_iv <= 0)
        return c;
    n = floor(late_wlen(q) / 2.0 / q->lt_iv);
    if (n < AD_DQ_LATE_ROWS)
        n = AD_DQ_LATE_ROWS;
    n *= q->lt_per;
    return n < c ? n : c;
}

/* The late window holds the condition: enough values dropped as late
 * (late_limit), more than were accepted, and, the cadence known, fewer
 * accepted than half the stream's usual cadence over `el` ms of the window
 * (a stream whose new rows keep coming is healthy: what is dropped then is
 * a copy, such as a slow redelivery). To raise, the late ones must also
 * span half the window: a burst (a redelivery) spans no time. */
static int late_holds(const ad_dq *q, int to_raise, double el)
{
    if ((double)q->lt_late < late_limit(q) || q->lt_late <= q->lt_ok)
        return 0;
    if (q->lt_iv > 0 && (double)q->lt_ok >= 0.5 * el / q->lt_iv * q->lt_per)
        return 0;
    return !to_raise || (double)(q->lt_last - q->lt_first) >= late_wlen(q) / 2.0;
}

/* A new window. Its cadence is the stream's latest unless the condition
 * is open: rows accepted only now and then (a clock that glitches ahead)
 * would soon make the stream's usual interval theirs. */
static void late_window(ad_dq *q, int64_t at, int open)
{
    if (!open) {
        q->lt_per = q->lt_per_new >= 1 ? q->lt_per_new : 1;
        q->lt_iv = q->rt_rate > 0 ? q->lt_per / q->rt_rate : 0;
    }
    q->lt_open = 1;
    q->lt_w0 = at;
    q->lt_late = q->lt_ok = 0;
}

static void late_event(const ad_dq *q, ad_dq_event *ev)
{
    uint64_t n = q->lt_late + q->lt_ok;
    double w = late_wlen(q);

    ev_init(ev);
    ev->limit = ceil(late_limit(q));
    ev->window_ms = w < 9e18 ? (int64_t)w : INT64_MAX;
    ev->value = n > 0 ? (double)q->lt_late / (double)n : 0;
    ev->count = q->lt_count;
}

static void late_clear(ad_dq *q)
{
    ad_dq_event ev;

    late_event(q, &ev);
    dq_clear(q, &q->whole, -1, AD_DQ_LATE, q->now, &ev);
}

void ad_dq_late_per_row(ad_dq *q, double per_row)
{
    q->lt_per_new = per_row;
}

/* The stream's usual cadence in the late clock: values accepted over a
 * block of at least AD_DQ_LATE_BLOCK values after its first call and half
 * reject_window_ms (a stream that sends in bursts is measured over more
 * than one). Not while the condition is open (the rows accepted then are
 * not the usual cadence). */
static void late_rate(ad_dq *q, uint64_t n, int64_t clock_ms)
{
    double el;

    if (!q->rt_has) {
        q->rt_has = 1;
        q->rt_b0 = clock_ms;
        q->rt_n = 0;
        return;
    }
    q->rt_n += n;
    el = ms_between(clock_ms, q->rt_b0);
    if (q->rt_n < AD_DQ_LATE_BLOCK || el < (double)q->cfg.reject_window_ms / 2.0 || el <= 0)
        return;
    q->rt_rate = (double)q->rt_n / el;
    q->rt_has = 0;
}

void ad_dq_late(ad_dq *q, uint64_t late, uint64_t accepted, int64_t clock_ms)
{
    dq_feat *w = &q->whole;
    int open = (w->active & (1u << AD_DQ_LATE)) != 0;
    ad_dq_event ev;

    if (q->lt_has_clock && clock_ms < q->lt_clock)
        clock_ms = q->lt_clock;
    q->lt_clock = clock_ms;
    q->lt_has_clock = 1;
    if (accepted > 0 && !open)
        late_rate(q, accepted, clock_ms);
    if (q->cfg.reject_count <= 0) {     /* off (a reload may turn it off) */
        if (open)
            late_clear(q);
        q->lt_open = 0;
        return;
    }
    if (q->lt_open && ms_between(clock_ms, q->lt_w0) >= late_wlen(q)) {
        /* the window ended: an open condition that it no longer shows
         * clears; one still shown goes on in the next window */
        if (open && !late_holds(q, 0, late_wlen(q))) {
            late_clear(q);
            open = 0;
        }
        q->lt_open = 0;
        if (open)
            late_window(q, clock_ms, 1);
    }
    if (!q->lt_open) {
        if (late == 0)
            return;
        late_window(q, clock_ms, open);
    }
    if (late > 0) {
        if (q->lt_late == 0)
            q->lt_first = clock_ms;
        q->lt_last = clock_ms;
    }
    q->lt_late += late;
    q->lt_ok += accepted;
    if (open) {
        q->lt_count += late;
        return;
    }
    if (!late_holds(q, 1, ms_between(clock_ms, q->lt_w0)))
        return;
    q->lt_count = q->lt_late;
    late_event(q, &ev);
    ev.since_ms = q->now;
    dq_raise(q, w, -1, AD_DQ_LATE, q->now, &ev);
}

void ad_dq_advance(ad_dq *q, int64_t now_ms)
{
    int f;

    clock_to(q, now_ms);
    stream_dropout_check(q);
    for (f = 0; f < q->F; f++) {
        dropout_check(q, &q->feat[f], f);
        rej_check_clear(q, &q->feat[f], f);
    }
    rej_check_clear(q, &q->whole, -1);
    span_extend(q);
}

int ad_dq_active(const ad_dq *q)
{
    return q->n_active;
}

unsigned ad_dq_open_flags(const ad_dq *q, int f)
{
    if (f == -1)
        return q->whole.active;
    return f >= 0 && f < q->F ? q->feat[f].active : 0;
}

uint64_t ad_dq_seq(const ad_dq *q)
{
    return q->seq;
}

void ad_dq_get_learned(const ad_dq *q, int f, ad_dq_learned *o)
{
    const dq_feat *ft;

    memset(o, 0, sizeof(*o));
    if (f < 0 || f >= q->F || !(q->feat[f].flags & FL_LEARNED))
        return;
    ft = &q->feat[f];
    o->learned = 1;
    o->varies = (ft->flags & FL_VARIES) != 0;
    o->center = ft->center;
    o->sigma = ft->sigma;
    o->step = ft->step;
    o->run_max = ft->run_max;
    o->period_ms = ft->period;
    o->gap_ms = ft->gap;
    if (q->cfg.range_k > 0 && ft->sigma > 0) {
        o->lo = ft->center - q->cfg.range_k * ft->sigma;
        o->hi = ft->center + q->cfg.range_k * ft->sigma;
    } else {
        o->lo = -INFINITY;
        o->hi = INFINITY;
    }
    o->tol = q->cfg.stuck_tol * ft->step;
    o->dropout_ms = dropout_limit(q, ft);
    o->stuck_need = stuck_enabled(q, ft) ? stuck_need(q, ft) : 0;
}

void ad_dq_get_stats(const ad_dq *q, ad_dq_stats *st)
{
    *st = q->st;
    st->active = q->n_active;
}

size_t ad_dq_memory(const ad_dq *q)
{
    size_t b = sizeof(*q) + (size_t)q->F * sizeof(dq_feat) + strlen(q->key) + 1;
    int f;

    if (q->pmin)
        b += 2 * (size_t)q->F * sizeof(double);
    for (f = 0; f < q->F; f++)
        if (q->feat[f].learn)
            b += sizeof(dq_learn) + (size_t)q->cfg.learn_samples * 2 * sizeof(float);
    return b;
}

/* ---- save / restore ------------------------------------------------------ */

/* A finite double, printed so that it reads back bit for bit (cJSON's own
 * printer may drop the last digit: a restart must not move the limits). */
static int add_exact(cJSON *o, const char *key, double v)
{
    char buf[40];

    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_AddRawToObject(o, key, buf) != NULL;
}

char *ad_dq_save(const ad_dq *q)
{
    cJSON *o = cJSON_CreateObject(), *arr;
    char *txt = NULL;
    int f;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "version", 1) ||
        !cJSON_AddNumberToObject(o, "features", q->F) ||
        !cJSON_AddNumberToObject(o, "seq", (double)q->seq))
        goto out;
    arr = cJSON_AddArrayToObject(o, "learned");
    if (arr == NULL)
        goto out;
    for (f = 0; f < q->F; f++) {
        const dq_feat *ft = &q->feat[f];
        cJSON *x;
        if (!(ft->flags & FL_LEARNED)) {
            x = cJSON_CreateNull();
            if (x == NULL)
                goto out;
            cJSON_AddItemToArray(arr, x);
            continue;
        }
        x = cJSON_CreateObject();
        if (x == NULL)
            goto out;
        cJSON_AddItemToArray(arr, x);
        if (!add_exact(x, "center", ft->center) ||
            !add_exact(x, "sigma", ft->sigma) ||
            !add_exact(x, "step", ft->step) ||
            !cJSON_AddNumberToObject(x, "run_max", ft->run_max) ||
            !cJSON_AddBoolToObject(x, "varies", (ft->flags & FL_VARIES) != 0) ||
            !add_exact(x, "period_ms", ft->period) ||
            !add_exact(x, "gap_ms", ft->gap))
            goto out;
    }
    txt = ad_json_print(o);
out:
    cJSON_Delete(o);
    return txt;
}

/* A finite number >= min at o[key] (path for messages: learned[f]). */
static int get_field(const cJSON *o, const char *key, int f, double min, double max,
                     double *v, char *err, size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < min ||
        x->valuedouble > max)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "quality state: learned[%d].%s: must be a number in [%g,%g]",
                       f, key, min, max);
    *v = x->valuedouble;
    return 0;
}

/* Parse learned[f] into ft (a scratch copy). */
static int restore_feat(const cJSON *x, int f, dq_feat *ft, char *err, size_t errlen)
{
    const cJSON *vb;
    double center, sigma, step, run, period, gap;
    int rc;

    if (!cJSON_IsObject(x))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "quality state: learned[%d]: must be null or an object", f);
    if ((rc = get_field(x, "center", f, -1e300, 1e300, &center, err, errlen)) ||
        (rc = get_field(x, "sigma", f, 0, 1e300, &sigma, err, errlen)) ||
        (rc = get_field(x, "step", f, 0, 3e38, &step, err, errlen)) ||
        (rc = get_field(x, "run_max", f, 0, 2147483647.0, &run, err, errlen)) ||
        (rc = get_field(x, "period_ms", f, 0, 3e38, &period, err, errlen)) ||
        (rc = get_field(x, "gap_ms", f, 0, 3e38, &gap, err, errlen)))
        return rc;
    if (run != floor(run))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "quality state: learned[%d].run_max: must be an integer", f);
    vb = cJSON_GetObjectItemCaseSensitive(x, "varies");
    if (!cJSON_IsBool(vb))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "quality state: learned[%d].varies: must be true or false", f);
    memset(ft, 0, sizeof(*ft));
    ft->center = center;
    ft->sigma = sigma;
    ft->step = (float)step;
    ft->run_max = (uint32_t)run;
    ft->period = (float)period;
    ft->gap = (float)gap;
    ft->flags = FL_LEARNED | (cJSON_IsTrue(vb) ? FL_VARIES : 0);
    return 0;
}

int ad_dq_restore(ad_dq *q, const char *json, char *err, size_t errlen)
{
    cJSON *o, *x, *arr, *it;
    dq_feat *tmp = NULL;
    double seq;
    int rc = 0, f;

    o = cJSON_Parse(json ? json : "");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ad_errf(err, errlen, AD_EFORMAT, "quality state: not a JSON object");
    }
    x = cJSON_GetObjectItemCaseSensitive(o, "version");
    if (!cJSON_IsNumber(x) || x->valuedouble != 1) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "quality state: version must be 1");
        goto out;
    }
    x = cJSON_GetObjectItemCaseSensitive(o, "features");
    if (!cJSON_IsNumber(x) || x->valuedouble != q->F) {
        rc = ad_errf(err, errlen, AD_EINVAL, "quality state: features must be %d", q->F);
        goto out;
    }
    x = cJSON_GetObjectItemCaseSensitive(o, "seq");
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble <= 4294967295.0) ||
        x->valuedouble != floor(x->valuedouble)) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "quality state: seq: must be an integer in [0,4294967295]");
        goto out;
    }
    seq = x->valuedouble;
    arr = cJSON_GetObjectItemCaseSensitive(o, "learned");
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != q->F) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "quality state: learned: must be an array of %d entries", q->F);
        goto out;
    }
    tmp = calloc((size_t)q->F, sizeof(*tmp));
    if (tmp == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "quality state: out of memory");
        goto out;
    }
    f = 0;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsNull(it) && (rc = restore_feat(it, f, &tmp[f], err, errlen)) != 0)
            goto out;
        f++;
    }
    /* all parsed: apply */
    for (f = 0; f < q->F; f++) {
        dq_feat *ft = &q->feat[f];
        if (!(tmp[f].flags & FL_LEARNED))
            continue;
        if (!(ft->flags & FL_LEARNED))
            q->st.features_learned++;
        learn_free(ft);
        ft->center = tmp[f].center;
        ft->sigma = tmp[f].sigma;
        ft->step = tmp[f].step;
        ft->run_max = tmp[f].run_max;
        ft->period = tmp[f].period;
        ft->gap = tmp[f].gap;
        ft->flags = (uint8_t)((ft->flags & FL_SEEN) | tmp[f].flags);
        ft->run_len = 0;
    }
    if (seq > (double)q->seq)
        q->seq = (uint64_t)seq;
    recompute_stream_limit(q);
out:
    free(tmp);
    cJSON_Delete(o);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static int add_check_fields(cJSON *o, const ad_dq_event *ev)
{
    switch (ev->check) {
    case AD_DQ_RANGE:
        if (!ev->active)
            return 1;
        return cJSON_AddStringToObject(o, "range", ev->physical ? "physical" : "learned") &&
               ad_json_num(o, "lo", ev->lo) && ad_json_num(o, "hi", ev->hi);
    case AD_DQ_STUCK:
        if (!ev->active)
            return 1;
        return ad_json_num(o, ev->by_time ? "limit_ms" : "limit_samples", ev->limit);
    case AD_DQ_DROPOUT:
        return !ev->active || ad_json_num(o, "limit_ms", ev->limit);
    case AD_DQ_REJECTED:
        return ad_json_num(o, "limit", ev->limit);
    case AD_DQ_LATE:
        return ad_json_num(o, "limit", ev->limit) &&
               cJSON_AddNumberToObject(o, "window_ms", (double)ev->window_ms);
    default:
        return 1;
    }
}

cJSON *ad_dq_event_to_json(const ad_dq_event *ev, const char *stream,
                           const char *const *names)
{
    cJSON *o = cJSON_CreateObject();
    char iso[96], nm[32];

    if (o == NULL)
        return NULL;
    if (!cJSON_AddStringToObject(o, "kind", "data_quality") ||
        !cJSON_AddStringToObject(o, "id", ev->id) ||
        !cJSON_AddStringToObject(o, "stream", stream ? stream : "") ||
        !cJSON_AddStringToObject(o, "state", ev->active ? "raised" : "cleared") ||
        !cJSON_AddStringToObject(o, "check", ad_dq_check_name(ev->check)))
        goto fail;
    if (ev->feature < 0) {
        if (!cJSON_AddNullToObject(o, "feature"))
            goto fail;
    } else {
        const char *name = names ? names[ev->feature] : NULL;
        if (name == NULL) {
            snprintf(nm, sizeof(nm), "f%d", ev->feature);
            name = nm;
        }
        if (!cJSON_AddStringToObject(o, "feature", name))
            goto fail;
    }
    if (!cJSON_AddNumberToObject(o, "seq", (double)ev->seq) ||
        !cJSON_AddNumberToObject(o, "start", (double)ev->start_ms))
        goto fail;
    ad_iso_ms(ev->start_ms, iso, sizeof(iso));
    if (!cJSON_AddStringToObject(o, "start_iso", iso))
        goto fail;
    if (ev->active) {
        if (!cJSON_AddNullToObject(o, "end"))
            goto fail;
    } else {
        ad_iso_ms(ev->end_ms, iso, sizeof(iso));
        if (!cJSON_AddNumberToObject(o, "end", (double)ev->end_ms) ||
            !cJSON_AddStringToObject(o, "end_iso", iso))
            goto fail;
    }
    if (!cJSON_AddNumberToObject(o, "since", (double)ev->since_ms) ||
        !ad_json_num(o, "value", ev->value) ||
        !cJSON_AddNumberToObject(o, "count", (double)ev->count) ||
        !add_check_fields(o, ev))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
