/*
 * stream.c - row assembly per stream: samples or rows in, validated rows of
 * F values out, with the missing-value policies of stream.h.
 *
 * State per feature: the latest accepted value and its timestamp ("cur"),
 * whether it arrived since the last emitted row ("fresh"), the last value
 * actually used in a row ("good", for HOLD) and how many consecutive rows
 * it has been held. Emitted rows go to a fixed ring of AD_STREAM_QUEUE rows.
 * A stream is ONE allocation (struct, per-feature arrays, queue): with a
 * thousand streams a message touches a few lines of one block rather than
 * nine scattered heap objects.
 */
#include "stream.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "model.h"

struct ad_stream {
    ad_stream_cfg cfg;
    int F;
    /* ROWS mode */
    int has_row;
    int64_t last_row_ts;
    /* PERIOD mode */
    int has_grid;
    int has_emit;
    int64_t next_grid;     /* next grid point to emit */
    int64_t last_emit_ts;  /* last emitted row time (PERIOD, ALL) */
    /* queue */
    int q_head, q_len;
    ad_stream_stats st;
    /* Pointers into the same block, right after this struct (see
     * ad_stream_new): per feature, then the queue. */
    double *cur;           /* F: latest accepted value */
    int64_t *cur_ts;       /* F: its timestamp */
    float *good;           /* F: last value used in a row (HOLD) */
    int *held;             /* F: consecutive rows held */
    unsigned char *seen;   /* F: ever accepted */
    unsigned char *fresh;  /* F: accepted since the last row (ALL mode) */
    unsigned char *has_good; /* F */
    int64_t *q_ts;         /* AD_STREAM_QUEUE */
    float *q_vals;         /* AD_STREAM_QUEUE * F */
    unsigned char *q_valid; /* AD_STREAM_QUEUE */
};

void ad_stream_cfg_default(ad_stream_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->mode = AD_ASM_ROWS;
    c->period_ms = 1000;
    c->max_age_ms = 0;
    c->missing = AD_MISS_HOLD;
    c->hold_limit = 0;
}

int ad_stream_cfg_check(const ad_stream_cfg *c, char *err, size_t errlen)
{
    if (c->mode != AD_ASM_ROWS && c->mode != AD_ASM_PERIOD && c->mode != AD_ASM_ALL)
        return ad_errf(err, errlen, AD_EINVAL, "assembly: unknown mode %d", (int)c->mode);
    if (c->mode == AD_ASM_PERIOD && c->period_ms <= 0)
        return ad_errf(err, errlen, AD_EINVAL, "period_ms: must be > 0 (got %lld)",
                       (long long)c->period_ms);
    if (c->max_age_ms < 0)
        return ad_errf(err, errlen, AD_EINVAL, "max_age_ms: must be >= 0");
    if (c->missing != AD_MISS_HOLD && c->missing != AD_MISS_INVALID)
        return ad_errf(err, errlen, AD_EINVAL, "missing: unknown policy %d", (int)c->missing);
    if (c->hold_limit < 0)
        return ad_errf(err, errlen, AD_EINVAL, "hold_limit: must be >= 0");
    return 0;
}

void ad_stream_free(ad_stream *s)
{
    /* One block: the per-feature arrays and the queue point into it. */
    ad_afree(s);
}

int ad_stream_new(ad_stream **out, const ad_stream_cfg *cfg, int n_features,
                  char *err, size_t errlen)
{
    ad_stream *s;
    size_t F, off = sizeof(*s);
    size_t o_cur, o_cur_ts, o_good, o_held, o_seen, o_fresh, o_has_good;
    size_t o_q_ts, o_q, o_q_valid;
    unsigned char *base;
    int rc;

    *out = NULL;
    rc = ad_stream_cfg_check(cfg, err, errlen);
    if (rc)
        return rc;
    if (n_features < 1 || n_features > AD_MAX_FEATURES)
        return ad_errf(err, errlen, AD_EINVAL, "stream: features must be 1..%d (got %d)",
                       AD_MAX_FEATURES, n_features);
    F = (size_t)n_features;
    /* One 64-byte aligned block: the struct, then the per-feature state
     * packed by element size (8-byte types first, bytes last) so one message
     * touches a few neighbouring cache lines, then the row queue. */
    o_cur = ad_place(&off, F, sizeof(double), sizeof(double));
    o_cur_ts = ad_place(&off, F, sizeof(int64_t), sizeof(int64_t));
    o_good = ad_place(&off, F, sizeof(float), sizeof(float));
    o_held = ad_place(&off, F, sizeof(int), sizeof(int));
    o_seen = ad_place(&off, F, 1, 1);
    o_fresh = ad_place(&off, F, 1, 1);
    o_has_good = ad_place(&off, F, 1, 1);
    o_q_ts = ad_place(&off, AD_STREAM_QUEUE, sizeof(int64_t), 64);
    o_q = ad_place(&off, F * AD_STREAM_QUEUE, sizeof(float), 64);
    o_q_valid = ad_place(&off, AD_STREAM_QUEUE, 1, 1);
    base = off == SIZE_MAX ? NULL : ad_aalloc(off);
    if (base == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "stream: out of memory");
    memset(base, 0, off);
    s = (ad_stream *)base;
    s->cfg = *cfg;
    s->F = n_features;
    s->cur = (double *)(base + o_cur);
    s->cur_ts = (int64_t *)(base + o_cur_ts);
    s->good = (float *)(base + o_good);
    s->held = (int *)(base + o_held);
    s->seen = base + o_seen;
    s->fresh = base + o_fresh;
    s->has_good = base + o_has_good;
    s->q_ts = (int64_t *)(base + o_q_ts);
    s->q_vals = (float *)(base + o_q);
    s->q_valid = base + o_q_valid;
    *out = s;
    return 0;
}

/* Build the row for time ts from the per-feature state, apply the missing
 * policy, and queue it. `rowmiss` (F bytes, may be NULL) marks values that
 * were rejected in this very row (ROWS mode). */
static void emit(ad_stream *s, int64_t ts, const unsigned char *rowmiss)
{
    int F = s->F, f, valid = 1, slot;
    float *v;

    if (s->q_len == AD_STREAM_QUEUE) {
        /* Full: the oldest row is lost; the newest data matters more. */
        s->q_head = (s->q_head + 1) % AD_STREAM_QUEUE;
        s->q_len--;
        s->st.overflow++;
    }
    slot = (s->q_head + s->q_len) % AD_STREAM_QUEUE;
    v = s->q_vals + (size_t)slot * (size_t)F;
    for (f = 0; f < F; f++) {
        int missing = !s->seen[f] || (rowmiss && rowmiss[f]) ||
            (s->cfg.max_age_ms > 0 && ts - s->cur_ts[f] > s->cfg.max_age_ms);
        if (!missing) {
            v[f] = (float)s->cur[f];
            s->good[f] = v[f];
            s->has_good[f] = 1;
            s->held[f] = 0;
            continue;
        }
        if (s->cfg.missing == AD_MISS_HOLD && s->has_good[f] &&
            (s->cfg.hold_limit == 0 || s->held[f] < s->cfg.hold_limit)) {
            v[f] = s->good[f];
            s->held[f]++;
            s->st.values_held++;
            continue;
        }
        v[f] = NAN;
        valid = 0;
    }
    s->q_ts[slot] = ts;
    s->q_valid[slot] = (unsigned char)valid;
    s->q_len++;
    s->st.rows++;
    if (!valid)
        s->st.rows_invalid++;
    s->last_emit_ts = ts;
    s->has_emit = 1;
    memset(s->fresh, 0, (size_t)F);
}

/* Floor division for possibly negative timestamps. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* PERIOD: emit grid rows g with g < ts. */
static void period_until(ad_stream *s, int64_t ts)
{
    int64_t P = s->cfg.period_ms, n;

    if (!s->has_grid)
        return;
    if (ts <= s->next_grid)
        return;
    /* grid points next_grid, next_grid+P, ... < ts */
    n = floor_div(ts - 1 - s->next_grid, P) + 1;
    if (n > AD_STREAM_QUEUE) {
        s->st.gap_rows += (uint64_t)(n - AD_STREAM_QUEUE);
        s->next_grid += (n - AD_STREAM_QUEUE) * P;
        n = AD_STREAM_QUEUE;
    }
    while (n-- > 0) {
        emit(s, s->next_grid, NULL);
        s->next_grid += P;
    }
}

/* Accept one value of feature f at ts (PERIOD/ALL); returns 0 or 1 (dropped). */
static int accept_sample(ad_stream *s, int64_t ts, int f, double v)
{
    if (f < 0 || f >= s->F) {
        s->st.bad_feature++;
        return 1;
    }
    if (!isfinite(v)) {
        s->st.nonfinite++;
        return 1;
    }
    if (s->seen[f] && ts <= s->cur_ts[f]) {
        if (ts == s->cur_ts[f])
            s->st.dup++;
        else
            s->st.ooo++;
        return 1;
    }
    if (s->has_emit && ts <= s->last_emit_ts) {
        /* Its row is already out: too late. */
        if (ts == s->last_emit_ts && s->cfg.mode == AD_ASM_ALL)
            s->st.dup++;
        else
            s->st.ooo++;
        return 1;
    }
    if (s->cfg.mode == AD_ASM_PERIOD) {
        if (!s->has_grid) {
            s->has_grid = 1;
            s->next_grid = floor_div(ts, s->cfg.period_ms) * s->cfg.period_ms;
            if (s->next_grid < ts)
                s->next_grid += s->cfg.period_ms;
        }
        period_until(s, ts);
    }
    s->cur[f] = v;
    s->cur_ts[f] = ts;
    s->seen[f] = 1;
    s->fresh[f] = 1;
    s->st.samples++;
    if (s->cfg.mode == AD_ASM_ALL) {
        int g;
        for (g = 0; g < s->F; g++)
            if (!s->fresh[g])
                break;
        if (g == s->F)
            emit(s, ts, NULL);
    }
    return 0;
}

int ad_stream_push_sample(ad_stream *s, int64_t ts_ms, int feature, double value)
{
    if (s->cfg.mode == AD_ASM_ROWS)
        return AD_EINVAL;
    return accept_sample(s, ts_ms, feature, value);
}

/* Strict number parse: the whole text (blanks around allowed). */
static int parse_num(const char *t, double *v)
{
    char *end;

    if (t == NULL)
        return -1;
    while (isspace((unsigned char)*t))
        t++;
    if (*t == '\0')
        return -1;
    errno = 0;
    *v = strtod(t, &end);
    if (end == t)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return -1;
    return 0;
}

int ad_stream_push_text(ad_stream *s, int64_t ts_ms, int feature, const char *text)
{
    double v;

    if (s->cfg.mode == AD_ASM_ROWS)
        return AD_EINVAL;
    if (feature < 0 || feature >= s->F) {
        s->st.bad_feature++;
        return 1;
    }
    if (parse_num(text, &v) != 0) {
        s->st.nonnumeric++;
        return 1;
    }
    return accept_sample(s, ts_ms, feature, v);
}

int ad_stream_push_row(ad_stream *s, int64_t ts_ms, const double *values,
                       const unsigned char *present)
{
    int F = s->F, f, any = 0;
    unsigned char miss_stack[64] = { 0 };
    unsigned char *miss;

    if (s->cfg.mode != AD_ASM_ROWS) {
        for (f = 0; f < F; f++) {
            if (present && !present[f])
                continue;
            if (accept_sample(s, ts_ms, f, values[f]) == 0)
                any = 1;
        }
        return any ? 0 : 1;
    }
    if (s->has_row && ts_ms <= s->last_row_ts) {
        if (ts_ms == s->last_row_ts)
            s->st.dup++;
        else
            s->st.ooo++;
        return 1;
    }
    miss = F <= 64 ? miss_stack : malloc((size_t)F);
    if (miss == NULL) {
        s->st.overflow++;
        return 1;
    }
    for (f = 0; f < F; f++) {
        miss[f] = 0;
        if (present && !present[f]) {
            miss[f] = 1;
            continue;
        }
        if (!isfinite(values[f])) {
            s->st.nonfinite++;
            miss[f] = 1;
            continue;
        }
        s->cur[f] = values[f];
        s->cur_ts[f] = ts_ms;
        s->seen[f] = 1;
        s->st.samples++;
    }
    s->has_row = 1;
    s->last_row_ts = ts_ms;
    emit(s, ts_ms, miss);
    if (miss != miss_stack)
        free(miss);
    return 0;
}

void ad_stream_advance(ad_stream *s, int64_t now_ms)
{
    if (s->cfg.mode != AD_ASM_PERIOD)
        return;
    period_until(s, now_ms);
}

int ad_stream_pop_row(ad_stream *s, float *values, int64_t *ts_ms, int *valid)
{
    int slot;

    if (s->q_len == 0)
        return 0;
    slot = s->q_head;
    memcpy(values, s->q_vals + (size_t)slot * (size_t)s->F, (size_t)s->F * sizeof(float));
    *ts_ms = s->q_ts[slot];
    *valid = s->q_valid[slot];
    s->q_head = (s->q_head + 1) % AD_STREAM_QUEUE;
    /* Emptied: restart at slot 0, so a stream whose rows are popped as
     * they come (the daemon) reuses one warm slot instead of walking the
     * whole queue through the cache. */
    if (--s->q_len == 0)
        s->q_head = 0;
    return 1;
}

int ad_stream_pending(const ad_stream *s)
{
    return s->q_len;
}

int ad_stream_n_features(const ad_stream *s)
{
    return s->F;
}

void ad_stream_get_stats(const ad_stream *s, ad_stream_stats *st)
{
    *st = s->st;
}

static const char *const mode_names[] = { "rows", "period", "all" };
static const char *const miss_names[] = { "hold", "invalid" };

const char *ad_asm_mode_name(ad_asm_mode m)
{
    return (unsigned)m < 3 ? mode_names[m] : "?";
}

int ad_asm_mode_from_name(const char *s)
{
    int i;

    for (i = 0; i < 3; i++)
        if (s && strcmp(s, mode_names[i]) == 0)
            return i;
    return -1;
}

const char *ad_miss_policy_name(ad_miss_policy p)
{
    return (unsigned)p < 2 ? miss_names[p] : "?";
}

int ad_miss_policy_from_name(const char *s)
{
    int i;

    for (i = 0; i < 2; i++)
        if (s && strcmp(s, miss_names[i]) == 0)
            return i;
    return -1;
}
