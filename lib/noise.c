/*
 * noise.c - the noise test (see noise.h): per feature, the robust spread
 * of successive differences over blocks of data against its usual level.
 */
#include "noise.h"
#include "ad.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ad_noise {
    int F;
    int64_t span;
    double ratio;
    float *diff;        /* F x AD_NOISE_MAX_N: the block's differences */
    float *vals;        /* F x AD_NOISE_MAX_N: the block's values (its median) */
    int *nv;            /* F: values in the block */
    int *nd;            /* F: differences in the block */
    int64_t *bstart;    /* F: the block's first sample's time, INT64_MIN: none */
    int64_t *blast;     /* F: the block's last sample's time */
    double *prev;       /* F: the last trusted sample, NaN: none (a gap) */
    double *usual;      /* F x AD_NOISE_KEEP: usual levels, a ring */
    double *umid;       /* F x AD_NOISE_KEEP: their blocks' |median|, 0: none */
    int *un, *upos;     /* F: levels held, next slot */
    unsigned char *judging; /* F: warmed up (or accepted once) */
    int64_t *run;       /* F: the run's start, INT64_MIN: none */
    int64_t *run_end;   /* F: the end of its last block */
    double *run_level;  /* F: the level of its last block */
    int *run_k;         /* F: the levels of the run (the last ones an
                         * acceptance takes) */
    int64_t *rlast;     /* F: the end of the last block it was raised at,
                         * INT64_MIN: none (not saved) */
    double *recent;     /* F x AD_NOISE_RECENT: the last levels judged or
                         * learned, a ring (what an acceptance takes) */
    double *rmid;       /* F x AD_NOISE_RECENT: their blocks' |median| */
    int *rn, *rpos;     /* F: levels held, next slot */
    double *hlev;       /* F x AD_NOISE_HOURS: a level by hour of the week */
    double *hmid;       /* F x AD_NOISE_HOURS: its block's |median|, 0: none */
    int64_t *hat;       /* F x AD_NOISE_HOURS: its hour (ms / 1 h), INT64_MIN: none */
    int64_t *hlast;     /* F: the last hour written, INT64_MIN: none */
    unsigned char *hheld; /* F x AD_NOISE_HOURS: its block held out (HELD
                         * OUT, noise.h): 0 no, 1 by the run under way, 2 by
                         * a raised run that ended */
    double *run_p;      /* F: the exponent p the run is judged with, NaN:
                         * the next block's (a run saved before it was kept) */
    int64_t *quiet;     /* F: data time of the blocks under the clear ratio
                         * since a raised run's last block over it (the run
                         * paused, FAULT GOES ON, noise.h), 0: none */
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
    n->vals = malloc((size_t)F * AD_NOISE_MAX_N * sizeof(float));
    n->nv = calloc((size_t)F, sizeof(int));
    n->umid = calloc((size_t)F * AD_NOISE_KEEP, sizeof(double));
    n->rmid = calloc((size_t)F * AD_NOISE_RECENT, sizeof(double));
    n->hlev = calloc((size_t)F * AD_NOISE_HOURS, sizeof(double));
    n->hmid = calloc((size_t)F * AD_NOISE_HOURS, sizeof(double));
    n->hat = malloc((size_t)F * AD_NOISE_HOURS * sizeof(int64_t));
    n->hlast = malloc((size_t)F * sizeof(int64_t));
    n->hheld = calloc((size_t)F * AD_NOISE_HOURS, 1);
    n->run_p = calloc((size_t)F, sizeof(double));
    n->quiet = calloc((size_t)F, sizeof(int64_t));
    n->nd = calloc((size_t)F, sizeof(int));
    n->bstart = malloc((size_t)F * sizeof(int64_t));
    n->blast = calloc((size_t)F, sizeof(int64_t));
    n->run_k = calloc((size_t)F, sizeof(int));
    n->rlast = malloc((size_t)F * sizeof(int64_t));
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
        n->run_level == NULL || n->recent == NULL || n->rn == NULL || n->rpos == NULL ||
        n->vals == NULL || n->nv == NULL || n->umid == NULL || n->rmid == NULL ||
        n->hlev == NULL || n->hmid == NULL || n->hat == NULL || n->hlast == NULL ||
        n->blast == NULL || n->run_k == NULL || n->rlast == NULL || n->hheld == NULL ||
        n->run_p == NULL || n->quiet == NULL) {
        ad_noise_free(n);
        return NULL;
    }
    for (int f = 0; f < F; f++) {
        n->bstart[f] = INT64_MIN;
        n->prev[f] = NAN;
        n->run[f] = n->run_end[f] = INT64_MIN;
        n->last[f] = NAN;
        n->hlast[f] = INT64_MIN;
        n->rlast[f] = INT64_MIN;
        for (int h = 0; h < AD_NOISE_HOURS; h++)
            n->hat[(size_t)f * AD_NOISE_HOURS + h] = INT64_MIN;
    }
    return n;
}

void ad_noise_free(ad_noise *n)
{
    if (n == NULL)
        return;
    free(n->diff);
    free(n->vals);
    free(n->nv);
    free(n->umid);
    free(n->rmid);
    free(n->hlev);
    free(n->hmid);
    free(n->hat);
    free(n->hlast);
    free(n->hheld);
    free(n->run_p);
    free(n->quiet);
    free(n->nd);
    free(n->bstart);
    free(n->blast);
    free(n->run_k);
    free(n->rlast);
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

/* the median of x[0..k) (k >= 1, sorting x) with its ties spread over a
 * class of width q about it (noise.h QUANTUM): the median of grouped data,
 * lo + q (k/2 - below) / in, lo = M - q/2; M itself when q is 0 */
static double median_q(double *x, int k, double q)
{
    double M = median(x, k), lo = M - 0.5 * q, hi = M + 0.5 * q, r;
    int below = 0, in = 0;

    if (!(q > 0))
        return M;
    for (int i = 0; i < k; i++) {
        if (x[i] < lo)
            below++;
        else if (x[i] < hi)
            in++;
    }
    if (in == 0)
        return M;
    r = lo + q * (0.5 * k - below) / in;
    return r > 0 ? r : 0;
}

static void learn(ad_noise *n, int f, double level, double mid)
{
    n->usual[(size_t)f * AD_NOISE_KEEP + n->upos[f]] = level;
    n->umid[(size_t)f * AD_NOISE_KEEP + n->upos[f]] = mid;
    n->upos[f] = (n->upos[f] + 1) % AD_NOISE_KEEP;
    if (n->un[f] < AD_NOISE_KEEP)
        n->un[f]++;
    if (n->un[f] >= AD_NOISE_WARM)
        n->judging[f] = 1;
}

/* the median of the k levels x[0..k) over 0 (0: none); NaN when fewer
 * than least; the lower middle one when lower */
static double median_of(ad_noise *n, const double *x, int k, int least, int lower)
{
    int c = 0;

    for (int i = 0; i < k; i++)
        if (x[i] > 0)
            n->tmp[c++] = x[i];
    if (c < least || c == 0)
        return NAN;
    if (!lower)
        return median(n->tmp, c);
    qsort(n->tmp, (size_t)c, sizeof(double), cmp_double);
    return n->tmp[(c - 1) / 2];
}

/* a level over its block's |median| ^ p (noise.h NOISE THAT FOLLOWS THE
 * LEVEL); 0 (none) when p > 0 and the median is not clear of 0 */
static double norm(double level, double mid, double p)
{
    return p == 0 ? level : mid > 0 ? level / pow(mid, p) : 0;
}

/* the exponent p of feature f's noise in its level: the slope of log
 * level on log |median| over the hours kept, in [0, 1]; 0 when fewer than
 * AD_NOISE_WARM blocks clear of 0 or their medians spread less than
 * AD_NOISE_P_SPREAD (in log) */
static double exponent(const ad_noise *n, int f, int64_t hour)
{
    const double *lv = n->hlev + (size_t)f * AD_NOISE_HOURS;
    const double *md = n->hmid + (size_t)f * AD_NOISE_HOURS;
    const int64_t *at = n->hat + (size_t)f * AD_NOISE_HOURS;
    const unsigned char *held = n->hheld + (size_t)f * AD_NOISE_HOURS;
    double sx = 0, sy = 0, sxx = 0, sxy = 0, vx, p;
    int k = 0;

    for (int s = 0; s < AD_NOISE_HOURS; s++) {
        /* the last week's hours only, none held out (HELD OUT) */
        if (at[s] == INT64_MIN || held[s] || at[s] > hour || hour - at[s] >= AD_NOISE_HOURS ||
            !(lv[s] > 0) || !(md[s] > 0))
            continue;
        double x = log(md[s]), y = log(lv[s]);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        k++;
    }
    if (k < AD_NOISE_WARM)
        return 0;
    vx = sxx / k - (sx / k) * (sx / k);
    if (!(vx >= AD_NOISE_P_SPREAD * AD_NOISE_P_SPREAD))
        return 0;
    p = (sxy / k - (sx / k) * (sy / k)) / vx;
    return p > 1 ? 1 : p > 0 ? p : 0;
}

/* the levels of feature f (normed by p) at the same hour of the day as
 * hour (+- 1 h) on the last days (noise.h HOUR OF THE DAY): the lower
 * median, NaN when fewer than AD_NOISE_HOUR_MIN */
static double hour_of(ad_noise *n, int f, int64_t hour, double p)
{
    const double *lv = n->hlev + (size_t)f * AD_NOISE_HOURS;
    const double *md = n->hmid + (size_t)f * AD_NOISE_HOURS;
    const int64_t *at = n->hat + (size_t)f * AD_NOISE_HOURS;
    const unsigned char *held = n->hheld + (size_t)f * AD_NOISE_HOURS;
    double x[3 * AD_NOISE_HOURS / 24];
    int k = 0;

    for (int s = 0; s < AD_NOISE_HOURS; s++) {
        int64_t d;

        if (at[s] == INT64_MIN || held[s])
            continue;
        d = hour - at[s];
        if (d < 23 || d > AD_NOISE_HOURS + 1)
            continue;
        if (d % 24 == 0 || d % 24 == 1 || d % 24 == 23)
            x[k++] = norm(lv[s], md[s], p);
    }
    return median_of(n, x, k, AD_NOISE_HOUR_MIN, 1);
}

/* the usual level (normed by p) of feature f for a block at hour: the
 * larger of the last usual levels' median and the hour's */
static double usual_of(ad_noise *n, int f, int64_t hour, double p)
{
    double x[AD_NOISE_KEEP], u, h;
    int k = n->un[f];

    for (int i = 0; i < k; i++)
        x[i] = norm(n->usual[(size_t)f * AD_NOISE_KEEP + i],
                    n->umid[(size_t)f * AD_NOISE_KEEP + i], p);
    u = median_of(n, x, k, p > 0 ? AD_NOISE_WARM / 2 : 1, 0);
    h = hour_of(n, f, hour, p);
    return isnan(u) || h > u ? h : u;
}

/* feature f's run has lasted the span: raised, or paused (FAULT GOES ON) */
static int long_run(const ad_noise *n, int f)
{
    return n->run[f] != INT64_MIN && n->run_end[f] - n->run[f] >= n->span;
}

/* raised: a run that lasted the span, not paused */
static int raised(const ad_noise *n, int f)
{
    return long_run(n, f) && n->quiet[f] == 0;
}

/* every block's level into its hour of the week, held out (1) while its
 * run goes on; an hour ahead of the data's (a restored state's from a
 * clock ahead) is dropped: the data's time is the one kept */
static void put_hour(ad_noise *n, int f, int64_t hour, int slot, double level, double mid,
                     int held)
{
    size_t i = (size_t)f * AD_NOISE_HOURS + (size_t)slot;

    if (n->hlast[f] != INT64_MIN && n->hlast[f] > hour) {
        for (int s = 0; s < AD_NOISE_HOURS; s++) {
            size_t j = (size_t)f * AD_NOISE_HOURS + (size_t)s;
            if (n->hat[j] != INT64_MIN && n->hat[j] > hour) {
                n->hat[j] = INT64_MIN;
                n->hlev[j] = n->hmid[j] = 0;
                n->hheld[j] = 0;
            }
        }
    }
    n->hlev[i] = level;
    n->hmid[i] = mid;
    n->hat[i] = hour;
    n->hheld[i] = (unsigned char)held;
    n->hlast[f] = hour;
}

/* feature f's run ends: the hours it held out are learned when it was
 * not raised, kept out (2) when it was (HELD OUT) */
static void run_over(ad_noise *n, int f)
{
    unsigned char to = long_run(n, f) ? 2 : 0;

    for (int s = 0; s < AD_NOISE_HOURS; s++)
        if (n->hheld[(size_t)f * AD_NOISE_HOURS + s] == 1)
            n->hheld[(size_t)f * AD_NOISE_HOURS + s] = to;
    n->run[f] = n->run_end[f] = INT64_MIN;
    n->run_k[f] = 0;
    n->quiet[f] = 0;
}

/* a level held out by a raised run that ended recurs: a block at hour with
 * (normed by p) level x, over the ratio, finds one at the same hour of the
 * day (+- 1 h) on a day before within the ratio of it; then each hour held
 * out within the ratio of x is learned. Returns the hours learned. */
static int recurred(ad_noise *n, int f, int64_t hour, double x, double p)
{
    const double *lv = n->hlev + (size_t)f * AD_NOISE_HOURS;
    const double *md = n->hmid + (size_t)f * AD_NOISE_HOURS;
    const int64_t *at = n->hat + (size_t)f * AD_NOISE_HOURS;
    unsigned char *held = n->hheld + (size_t)f * AD_NOISE_HOURS;
    int found = 0, c = 0;

    if (!(x > 0))
        return 0;
    for (int s = 0; s < AD_NOISE_HOURS && !found; s++) {
        int64_t d = hour - at[s];
        double y;

        if (held[s] != 2 || at[s] == INT64_MIN || d < 23 || d > AD_NOISE_HOURS + 1 ||
            !(d % 24 == 0 || d % 24 == 1 || d % 24 == 23))
            continue;
        y = norm(lv[s], md[s], p);
        found = y > 0 && y < x * n->ratio && x < y * n->ratio;
    }
    if (!found)
        return 0;
    for (int s = 0; s < AD_NOISE_HOURS; s++) {
        double y;

        if (held[s] != 2)
            continue;
        y = norm(lv[s], md[s], p);
        if (y > 0 && y < x * n->ratio && x < y * n->ratio) {
            held[s] = 0;
            c++;
        }
    }
    return c;
}

/* the block of feature f ends at ts: its level judged, then learned or run */
static void close_block(ad_noise *n, int f, int64_t ts)
{
    int k = n->nd[f], i;
    const float *d = n->diff + (size_t)f * AD_NOISE_MAX_N;
    const float *v = n->vals + (size_t)f * AD_NOISE_MAX_N;
    double m, level, u, r, mid, p, clear;
    int64_t start = n->bstart[f];
    /* the hour of the block's middle (ms / 1 h, floored) */
    int64_t t = start + (ts - start) / 2;
    int64_t hour = t / 3600000 - (t % 3600000 < 0);
    int slot = (int)(((hour % AD_NOISE_HOURS) + AD_NOISE_HOURS) % AD_NOISE_HOURS);

    double q = 0;

    /* QUANTUM: the smallest step between two samples of the block */
    for (i = 0; i < k; i++) {
        double a = fabs((double)d[i]);
        if (a > 0 && (q == 0 || a < q))
            q = a;
    }
    for (i = 0; i < k; i++)
        n->tmp[i] = d[i];
    m = median_q(n->tmp, k, q);
    for (i = 0; i < k; i++)
        n->tmp[i] = fabs((double)d[i] - m);
    level = 1.4826 * median_q(n->tmp, k, q) / sqrt(2.0);
    for (i = 0; i < n->nv[f]; i++)
        n->tmp[i] = v[i];
    mid = n->nv[f] > 0 ? fabs(median(n->tmp, n->nv[f])) : 0;
    /* kept only clear of 0 */
    if (!isfinite(mid) || mid < AD_NOISE_MID_CLEAR * level)
        mid = 0;
    n->nd[f] = n->nv[f] = 0;
    n->bstart[f] = INT64_MIN;
    if (!(level > 0) || !isfinite(level))
        return;                 /* frozen or coarse: neither judged nor learned */
    n->recent[(size_t)f * AD_NOISE_RECENT + n->rpos[f]] = level;
    n->rmid[(size_t)f * AD_NOISE_RECENT + n->rpos[f]] = mid;
    n->rpos[f] = (n->rpos[f] + 1) % AD_NOISE_RECENT;
    if (n->rn[f] < AD_NOISE_RECENT)
        n->rn[f]++;
    if (!n->judging[f]) {
        learn(n, f, level, mid);
        put_hour(n, f, hour, slot, level, mid, 0);
        return;
    }
    /* SPAN: more than a block of time without a judged block (silence,
     * untrusted or frozen data, a restart) ends a run not raised yet; a
     * raised one is judged again by this block (FAULT GOES ON) */
    if (n->run[f] != INT64_MIN &&
        ((start - n->run_end[f] > AD_NOISE_BLOCK_MS && !long_run(n, f)) ||
         start < n->run_end[f]))
        run_over(n, f);
    /* noise that follows the level (noise.h): judged over |median| ^ p,
     * the p of its start while a run goes on (HELD OUT; a run saved
     * without its p: the p of its first block after the restore) */
    if (n->run[f] != INT64_MIN && isnan(n->run_p[f]))
        n->run_p[f] = exponent(n, f, hour);
    p = n->run[f] != INT64_MIN ? n->run_p[f] : exponent(n, f, hour);
    for (int again = 0; again < 2; again++) {
        double pm = mid > 0 ? p : 0;

        u = usual_of(n, f, hour, pm);
        r = norm(level, mid, pm) / u;
        if (!(r > 0) || !isfinite(r))
            r = level / usual_of(n, f, hour, 0);
        /* over the ratio with no run: a level a raised run held out that
         * recurs at this hour of the day is learned, and judged again */
        if (again || n->run[f] != INT64_MIN || !(r > n->ratio) ||
            recurred(n, f, hour, norm(level, mid, pm), pm) == 0)
            break;
        p = exponent(n, f, hour);
    }
    n->last[f] = r;
    clear = 1.0 + (n->ratio - 1.0) * AD_NOISE_CLEAR;
    /* paused (FAULT GOES ON): a block between the clear ratio and the
     * ratio is not the run's again: held out, not learned, but a quarter
     * of its time counts toward the pause's end (a fault that ends at a
     * level just under the ratio is learned after 10 h of it, not held
     * out for weeks; one measured low for a few hours goes on) */
    if (n->quiet[f] > 0 && long_run(n, f) && r > clear && !(r > n->ratio)) {
        put_hour(n, f, hour, slot, level, mid, 1);
        n->quiet[f] += (ts - start) / 4 > 0 ? (ts - start) / 4 : 1;
        if (n->quiet[f] >= AD_NOISE_QUIET_MS)
            run_over(n, f);
        return;
    }
    /* a raised run goes on while its blocks stay over the clear ratio,
     * and from a pause over the ratio (FAULT GOES ON) */
    if (r > (raised(n, f) ? clear : n->ratio)) {
        put_hour(n, f, hour, slot, level, mid, 1);
        /* SPAN: the run counts its blocks' data time only */
        if (n->run[f] == INT64_MIN) {
            n->run[f] = start;
            n->run_k[f] = 0;
            n->run_p[f] = p;
        } else {
            n->run[f] += start - n->run_end[f];
        }
        n->quiet[f] = 0;
        n->run_end[f] = ts;
        n->run_level[f] = level;
        if (n->run_k[f] < AD_NOISE_RECENT)
            n->run_k[f]++;
        if (raised(n, f))
            n->rlast[f] = ts;
        return;
    }
    put_hour(n, f, hour, slot, level, mid, 0);
    /* a raised run pauses (not raised) until its quiet blocks span
     * AD_NOISE_QUIET_MS: a fault that goes on after a quieter hour is the
     * same raised run, not a level to learn as it recurs (FAULT GOES ON) */
    if (long_run(n, f)) {
        n->quiet[f] += ts - start > 0 ? ts - start : 1;    /* > 0: paused */
        if (n->quiet[f] >= AD_NOISE_QUIET_MS)
            run_over(n, f);
    } else if (n->run[f] != INT64_MIN) {
        run_over(n, f);
    }
    learn(n, f, level, mid);
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
        /* SPAN: more than a block of time since the block's last trusted
         * sample ends it there (closed when it has enough differences) */
        if (n->bstart[f] != INT64_MIN && ts - n->blast[f] > AD_NOISE_BLOCK_MS) {
            if (n->nd[f] >= AD_NOISE_MIN_N) {
                close_block(n, f, n->blast[f]);
                closed++;
            }
            n->bstart[f] = INT64_MIN;
            n->prev[f] = NAN;
        }
        if (n->bstart[f] == INT64_MIN) {
            n->bstart[f] = ts;
            n->nd[f] = n->nv[f] = 0;
        }
        n->blast[f] = ts;
        if (isfinite(n->prev[f]) && n->nd[f] < AD_NOISE_MAX_N)
            n->diff[(size_t)f * AD_NOISE_MAX_N + n->nd[f]++] = (float)(x - n->prev[f]);
        if (n->nv[f] < AD_NOISE_MAX_N)
            n->vals[(size_t)f * AD_NOISE_MAX_N + n->nv[f]++] = (float)x;
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

int ad_noise_accept(ad_noise *n, int64_t since)
{
    int c = 0;

    for (int f = 0; f < n->F; f++) {
        int k = n->rn[f];

        /* only a raised feature's noise is part of the change accepted;
         * the others keep their usual level and their run (an accepted
         * change elsewhere does not absorb a noise change under way) */
        if (k == 0 || !(raised(n, f) || (n->rlast[f] != INT64_MIN && n->rlast[f] >= since)))
            continue;
        /* the levels of the run only (not the ones before the change):
         * they start the ring over */
        if (n->run_k[f] > 0 && n->run_k[f] < k)
            k = n->run_k[f];
        c++;
        n->un[f] = n->upos[f] = 0;
        for (int i = 0; i < k; i++) {
            size_t slot = (size_t)f * AD_NOISE_RECENT +
                          (size_t)((n->rpos[f] - k + i + 2 * AD_NOISE_RECENT) % AD_NOISE_RECENT);
            learn(n, f, n->recent[slot], n->rmid[slot]);
        }
        n->judging[f] = 1;
        n->run[f] = n->run_end[f] = INT64_MIN;
        n->run_k[f] = 0;
        n->quiet[f] = 0;
        n->rlast[f] = INT64_MIN;
        /* the hours its raised runs held out are its noise now */
        memset(n->hheld + (size_t)f * AD_NOISE_HOURS, 0, AD_NOISE_HOURS);
    }
    return c;
}

/* an array of k numbers into o as name */
static int add_numbers(cJSON *parent, const double *x, int k)
{
    cJSON *a = cJSON_CreateArray(), *v;

    if (a == NULL)
        return -1;
    cJSON_AddItemToArray(parent, a);
    for (int i = 0; i < k; i++) {
        if ((v = cJSON_CreateNumber(x[i])) == NULL)
            return -1;
        cJSON_AddItemToArray(a, v);
    }
    return 0;
}

/* the blocks' medians and the hours of the week (noise.h SAVED STATE) */
static int save_more(const ad_noise *n, cJSON *o)
{
    cJSON *ur, *rr, *ha, *hl, *hr, *hh, *x;
    double *buf = n->tmp;       /* AD_NOISE_MAX_N >= AD_NOISE_HOURS */

    if ((ur = cJSON_AddArrayToObject(o, "usual_mid")) == NULL ||
        (rr = cJSON_AddArrayToObject(o, "recent_mid")) == NULL ||
        (ha = cJSON_AddArrayToObject(o, "hour_at")) == NULL ||
        (hl = cJSON_AddArrayToObject(o, "hours")) == NULL ||
        (hr = cJSON_AddArrayToObject(o, "hours_mid")) == NULL ||
        (hh = cJSON_AddArrayToObject(o, "hours_held")) == NULL)
        return -1;
    for (int f = 0; f < n->F; f++) {
        int k = n->un[f];
        int64_t c = n->hlast[f];

        for (int i = 0; i < k; i++)     /* oldest first, as "usual" */
            buf[i] = n->umid[(size_t)f * AD_NOISE_KEEP +
                             (size_t)((n->upos[f] - k + i + 2 * AD_NOISE_KEEP) % AD_NOISE_KEEP)];
        if (add_numbers(ur, buf, k) != 0)
            return -1;
        k = n->rn[f];
        for (int i = 0; i < k; i++)
            buf[i] = n->rmid[(size_t)f * AD_NOISE_RECENT +
                             (size_t)((n->rpos[f] - k + i + 2 * AD_NOISE_RECENT) %
                                      AD_NOISE_RECENT)];
        if (add_numbers(rr, buf, k) != 0)
            return -1;
        x = c == INT64_MIN ? cJSON_CreateNull() : cJSON_CreateNumber((double)c);
        if (x == NULL)
            return -1;
        cJSON_AddItemToArray(ha, x);
        /* a slot's hour is the one of the last week up to c it stands
         * for: a slot older than that is none (0) */
        k = c == INT64_MIN ? 0 : AD_NOISE_HOURS;
        for (int rel = 0; rel < 3; rel++) {
            for (int i = 0; i < k; i++) {
                size_t j = (size_t)f * AD_NOISE_HOURS + (size_t)i;
                int64_t at = n->hat[j];
                buf[i] = at != INT64_MIN && c - at < AD_NOISE_HOURS ?
                         (rel == 2 ? n->hheld[j] : rel ? n->hmid[j] : n->hlev[j]) : 0;
            }
            if (add_numbers(rel == 2 ? hh : rel ? hr : hl, buf, k) != 0)
                return -1;
        }
    }
    return 0;
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
            /* a run restored without its p and not judged since: as it came */
            int whole = !isnan(n->run_p[f]);

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
            if (whole && (x = cJSON_CreateNumber(n->run_k[f])) == NULL)
                goto fail;
            if (whole)
                cJSON_AddItemToArray(r, x);
            if (whole && (x = cJSON_CreateNumber(n->run_p[f])) == NULL)
                goto fail;
            if (whole)
                cJSON_AddItemToArray(r, x);
            if (whole && (x = cJSON_CreateNumber((double)n->quiet[f])) == NULL)
                goto fail;
            if (whole)
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
    if (save_more(n, o) != 0)
        goto fail;
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

/* a level: finite, at least DBL_MIN (a subnormal level makes every
 * ratio over it infinite) */
static int is_level(const cJSON *x)
{
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble >= DBL_MIN;
}

/* a level or 0 (none) */
static int is_level0(const cJSON *x)
{
    return cJSON_IsNumber(x) && isfinite(x->valuedouble) &&
           (x->valuedouble == 0 || x->valuedouble >= DBL_MIN);
}

/* o's array name: absent (NULL, fine: a state from before it was kept),
 * or F arrays of levels or 0, each of len(f) numbers (len NULL: at most
 * max); *out the array; 0 or the error */
static int check_levels(const ad_noise *n, const cJSON *o, const char *name, int max,
                        const cJSON *same, const cJSON **out, char *err, size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name), *x, *e;
    int f = 0;

    *out = a;
    if (a == NULL)
        return 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n->F)
        return ad_errf(err, errlen, AD_EFORMAT, "noise: %s: not an array of %d arrays", name,
                       n->F);
    e = same ? same->child : NULL;
    cJSON_ArrayForEach(x, a) {
        const cJSON *v;
        int i = 0, want = e ? cJSON_GetArraySize(e) : -1;

        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) > max ||
            (want >= 0 && cJSON_GetArraySize(x) != want))
            return ad_errf(err, errlen, AD_EFORMAT, "noise: %s[%d]: not an array of %s%d "
                           "levels", name, f, want >= 0 ? "" : "at most ", want >= 0 ? want : max);
        cJSON_ArrayForEach(v, x) {
            if (!is_level0(v))
                return ad_errf(err, errlen, AD_EFORMAT, "noise: %s[%d][%d]: not a level >= 0",
                               name, f, i);
            i++;
        }
        f++;
        e = e ? e->next : NULL;
    }
    return 0;
}

int ad_noise_restore(ad_noise *n, const cJSON *o, char *err, size_t errlen)
{
    const cJSON *us = cJSON_GetObjectItemCaseSensitive(o, "usual");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(o, "run");
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(o, "judging");
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(o, "recent");
    const cJSON *ha = cJSON_GetObjectItemCaseSensitive(o, "hour_at");
    const cJSON *hh = cJSON_GetObjectItemCaseSensitive(o, "hours_held");
    const cJSON *a, *x, *ur, *rr, *hl, *hr;
    int f, e;

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
        /* [start, end, level] in a state from before the run kept its
         * blocks and p, [.., blocks, p] before it kept its quiet time */
        const cJSON *k = cJSON_GetArrayItem(a, 3), *p = cJSON_GetArrayItem(a, 4);
        const cJSON *q = cJSON_GetArrayItem(a, 5);
        int sz = cJSON_GetArraySize(a);

        if (!cJSON_IsNull(a) && !(cJSON_IsArray(a) && (sz == 3 || sz == 5 || sz == 6) &&
                                  (sz < 6 || (is_time(q) && q->valuedouble >= 0)) &&
                                  is_time(a->child) && is_time(a->child->next) &&
                                  a->child->next->valuedouble >= a->child->valuedouble &&
                                  is_level(a->child->next->next) &&
                                  (sz == 3 || (cJSON_IsNumber(k) && k->valuedouble >= 0 &&
                                               k->valuedouble <= AD_NOISE_RECENT &&
                                               k->valuedouble == floor(k->valuedouble) &&
                                               cJSON_IsNumber(p) && p->valuedouble >= 0 &&
                                               p->valuedouble <= 1))))
            return ad_errf(err, errlen, AD_EFORMAT, "noise: run[%d]: not null nor [start ms, "
                           "end ms, level(, blocks 0..%d, p 0..1(, quiet ms >= 0))]", f, AD_NOISE_RECENT);
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
    /* the medians and the hours: absent in a state from before */
    if ((e = check_levels(n, o, "usual_mid", AD_NOISE_KEEP, us, &ur, err, errlen)) != 0 ||
        (rc != NULL &&
         (e = check_levels(n, o, "recent_mid", AD_NOISE_RECENT, rc, &rr, err, errlen)) != 0) ||
        (rc == NULL && (rr = NULL, 0)) ||
        (e = check_levels(n, o, "hours", AD_NOISE_HOURS, NULL, &hl, err, errlen)) != 0 ||
        (e = check_levels(n, o, "hours_mid", AD_NOISE_HOURS, hl, &hr, err, errlen)) != 0)
        return e;
    if ((hl != NULL) != (ha != NULL) || (hl != NULL) != (hr != NULL) ||
        (ha != NULL && (!cJSON_IsArray(ha) || cJSON_GetArraySize(ha) != n->F)))
        return ad_errf(err, errlen, AD_EFORMAT, "noise: hour_at, hours, hours_mid: not %d "
                       "each, or not all three", n->F);
    /* the hours held out: absent in a state from before (none), else as
     * "hours", each 0, 1 (by the run: only with one) or 2 */
    if (hh != NULL && (hl == NULL || !cJSON_IsArray(hh) || cJSON_GetArraySize(hh) != n->F))
        return ad_errf(err, errlen, AD_EFORMAT, "noise: hours_held: not %d arrays with "
                       "hours", n->F);
    f = 0;
    cJSON_ArrayForEach(a, hh) {
        const cJSON *rf = cJSON_GetArrayItem(run, f);
        int i = 0;

        if (!cJSON_IsArray(a) ||
            cJSON_GetArraySize(a) != cJSON_GetArraySize(cJSON_GetArrayItem(hl, f)))
            return ad_errf(err, errlen, AD_EFORMAT, "noise: hours_held[%d]: not as many as "
                           "hours[%d]", f, f);
        cJSON_ArrayForEach(x, a) {
            if (!cJSON_IsNumber(x) || !(x->valuedouble == 0 || x->valuedouble == 2 ||
                                        (x->valuedouble == 1 && !cJSON_IsNull(rf))))
                return ad_errf(err, errlen, AD_EFORMAT, "noise: hours_held[%d][%d]: not 0, "
                               "2 or 1 (with a run)", f, i);
            i++;
        }
        f++;
    }
    f = 0;
    cJSON_ArrayForEach(x, ha) {
        int k = cJSON_GetArraySize(cJSON_GetArrayItem(hl, f));
        if (!(cJSON_IsNull(x) ? k == 0 : is_time(x) && k == AD_NOISE_HOURS))
            return ad_errf(err, errlen, AD_EFORMAT, "noise: hour_at[%d]: not null (no hours) "
                           "nor an hour (%d hours)", f, AD_NOISE_HOURS);
        f++;
    }
    /* taken; the block under way starts over */
    for (f = 0, a = us->child; f < n->F; f++, a = a->next) {
        int i = 0;
        cJSON_ArrayForEach(x, a)
            n->usual[(size_t)f * AD_NOISE_KEEP + i++] = x->valuedouble;
        n->un[f] = i;
        n->upos[f] = i % AD_NOISE_KEEP;
        n->nd[f] = n->nv[f] = 0;
        n->bstart[f] = INT64_MIN;
        n->prev[f] = NAN;
        n->last[f] = NAN;
    }
    for (f = 0, a = run->child; f < n->F; f++, a = a->next) {
        int sz = cJSON_GetArraySize(a);

        n->quiet[f] = 0;
        if (cJSON_IsNull(a)) {
            n->run[f] = n->run_end[f] = INT64_MIN;
        } else {
            n->run[f] = (int64_t)a->child->valuedouble;
            n->run_end[f] = (int64_t)a->child->next->valuedouble;
            n->run_level[f] = a->child->next->next->valuedouble;
            n->run_k[f] = sz >= 5 ? (int)cJSON_GetArrayItem(a, 3)->valuedouble : 0;
            /* no p kept: the one of its next block (HELD OUT) */
            n->run_p[f] = sz >= 5 ? cJSON_GetArrayItem(a, 4)->valuedouble : NAN;
            n->quiet[f] = sz == 6 ? (int64_t)cJSON_GetArrayItem(a, 5)->valuedouble : 0;
        }
        /* a paused run was raised too (an acceptance takes it) */
        n->rlast[f] = long_run(n, f) ? n->run_end[f] : INT64_MIN;
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
    for (f = 0; f < n->F; f++) {
        const cJSON *u = ur ? cJSON_GetArrayItem(ur, f) : NULL;
        const cJSON *r = rr ? cJSON_GetArrayItem(rr, f) : NULL;
        const cJSON *l = hl ? cJSON_GetArrayItem(hl, f) : NULL;
        const cJSON *q = hr ? cJSON_GetArrayItem(hr, f) : NULL;
        const cJSON *c = ha ? cJSON_GetArrayItem(ha, f) : NULL;
        const cJSON *h = hh ? cJSON_GetArrayItem(hh, f) : NULL;
        int i = 0;

        /* a state without them: no median (0) until learned */
        for (i = 0; i < AD_NOISE_KEEP; i++)
            n->umid[(size_t)f * AD_NOISE_KEEP + i] = 0;
        for (i = 0; i < AD_NOISE_RECENT; i++)
            n->rmid[(size_t)f * AD_NOISE_RECENT + i] = 0;
        i = 0;
        cJSON_ArrayForEach(x, u)
            n->umid[(size_t)f * AD_NOISE_KEEP + i++] = x->valuedouble;
        i = 0;
        cJSON_ArrayForEach(x, r)
            n->rmid[(size_t)f * AD_NOISE_RECENT + i++] = x->valuedouble;
        n->hlast[f] = c && cJSON_IsNumber(c) ? (int64_t)c->valuedouble : INT64_MIN;
        for (i = 0; i < AD_NOISE_HOURS; i++) {
            size_t j = (size_t)f * AD_NOISE_HOURS + (size_t)i;
            const cJSON *lv = n->hlast[f] != INT64_MIN ? cJSON_GetArrayItem(l, i) : NULL;
            const cJSON *qv = n->hlast[f] != INT64_MIN ? cJSON_GetArrayItem(q, i) : NULL;
            const cJSON *hv = n->hlast[f] != INT64_MIN ? cJSON_GetArrayItem(h, i) : NULL;
            int64_t c0 = n->hlast[f];

            n->hlev[j] = lv ? lv->valuedouble : 0;
            n->hmid[j] = qv ? qv->valuedouble : 0;
            /* the hour of the last week up to hour_at this slot stands for */
            n->hat[j] = lv && lv->valuedouble > 0 ?
                        c0 - ((c0 - i) % AD_NOISE_HOURS + AD_NOISE_HOURS) % AD_NOISE_HOURS :
                        INT64_MIN;
            n->hheld[j] = hv && n->hat[j] != INT64_MIN ? (unsigned char)hv->valuedouble : 0;
        }
    }
    return 0;
}
