/*
 * stream.c - row assembly per stream in event time: samples or rows in,
 * validated rows of F values out, with the missing-value policies and the
 * watermark rules of stream.h.
 *
 * State per feature: the latest value applied to a row and its timestamp
 * ("cur"), the last value actually used in a row ("good", for HOLD) and how
 * many consecutive rows it has been held. What is not yet behind the
 * watermark waits in a mode-specific buffer: PERIOD keeps pending samples
 * sorted by time (only the newest per feature and grid cell), ALL keeps up
 * to AD_STREAM_OPEN rows open for alignment, ROWS with lateness keeps up to
 * AD_STREAM_REORDER rows for reordering. Emitted rows go to a fixed ring of
 * AD_STREAM_QUEUE rows. A stream is ONE allocation (struct, per-feature
 * arrays, buffers, queue): with a thousand streams a message touches a few
 * lines of one block rather than scattered heap objects.
 *
 * A full queue holds emission back rather than losing rows: a drain (the
 * rows the watermark has passed, in any mode) that finds no room stops
 * before the row, whose data is still in the mode's buffer, and notes its
 * watermark (backlog); each pop makes room and runs the drain on. Input
 * arriving while a backlog waits first finishes it (settle), the oldest
 * queued rows making room (overflow), so what a push sees (the last
 * emitted time, the pending samples) never depends on when rows were
 * popped. Emissions that cannot wait (a ROWS row without lateness, the
 * row that frees a full reorder buffer, open-row list or PERIOD pending
 * list) take the oldest queued row's place when the queue is full.
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

/* A sample waiting for its grid row (PERIOD). */
typedef struct pend {
    int64_t ts;
    double v;
    int f;
} pend;

struct ad_stream {
    ad_stream_cfg cfg;
    int F;
    /* event time */
    int has_max, has_arr, has_emit, has_grid, has_applied;
    int64_t max_ts;        /* newest accepted timestamp */
    int64_t arr_ms;        /* last arrival clock (ad_stream_arrival) */
    int64_t clk_ms;        /* the arrival of the last data accepted: the
                            * data clock runs from it (ad_stream_advance) */
    int64_t last_emit_ts;  /* last emitted row time */
    int has_resume;
    int64_t resume_ts;     /* the last row of the stream this one continues
                            * (ad_stream_resume): nothing at or before it */
    int has_resume_row;    /* ROWS: its values are in cur, cur_ts (those it
                            * carried at resume_ts; ad_stream_resume_row) */
    int64_t next_grid;     /* PERIOD: next grid point to emit */
    int64_t last_applied;  /* PERIOD: newest sample applied to a row */
    int gap_next;          /* PERIOD: flag the next row AD_ROW_GAP */
    int64_t iv[AD_STREAM_IV]; /* intervals between emitted rows (ring) */
    int iv_n, iv_head;
    int64_t iv_hint;       /* usual interval before one is known */
    /* queue */
    int q_head, q_len;
    int backlog;           /* a drain stopped at a full queue: resumes on pop */
    int forced;            /* drains may not stop: the oldest queued row goes */
    int64_t backlog_wm;    /* the watermark of that drain */
    /* PERIOD pending samples, ALL open rows, ROWS reorder buffer */
    int p_len, p_cap;
    int g_len;
    int r_len;
    ad_stream_stats st;
    /* Pointers into the same block, right after this struct. */
    double *cur;           /* F: latest applied value */
    int64_t *cur_ts;       /* F: its timestamp */
    double *good;          /* F: last value used in a row (HOLD) */
    int *held;             /* F: consecutive rows held */
    unsigned char *seen;   /* F: ever applied */
    unsigned char *has_good; /* F */
    unsigned char *miss;   /* F: scratch, missing in the row being built */
    pend *pend;            /* PERIOD: p_cap, sorted by ts */
    int64_t *g_ts0;        /* ALL: AD_STREAM_OPEN first sample time, sorted */
    int64_t *g_tsl;        /* ALL: newest sample time of the open row */
    int *g_n;              /* ALL: features present */
    double *g_vals;        /* ALL: OPEN * F */
    int64_t *g_fts;        /* ALL: OPEN * F sample times */
    unsigned char *g_has;  /* ALL: OPEN * F */
    int64_t *r_ts;         /* ROWS: AD_STREAM_REORDER, sorted */
    double *r_vals;        /* ROWS: REORDER * F */
    unsigned char *r_miss; /* ROWS: REORDER * F */
    int64_t *k_ts;         /* PERIOD/ALL: F * AD_STREAM_COPIES, the times of
                            * the last samples taken of each feature (a
                            * ring per feature), to tell their copies */
    double *k_v;           /* F * AD_STREAM_COPIES: their values */
    unsigned char *k_n;    /* F: samples in the feature's ring */
    unsigned char *k_head; /* F: its next slot */
    int64_t *q_ts;         /* AD_STREAM_QUEUE */
    double *q_vals;        /* AD_STREAM_QUEUE * F */
    unsigned char *q_flags; /* AD_STREAM_QUEUE: AD_ROW_* */
};

void ad_stream_cfg_default(ad_stream_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->mode = AD_ASM_ROWS;
    c->period_ms = 1000;
    c->max_age_ms = 0;
    c->missing = AD_MISS_HOLD;
    c->hold_limit = 0;
    c->max_lateness_ms = 0;
    c->max_future_ms = 600000;
    c->max_gap_ms = 3600000;
    c->max_gap_intervals = 5;
    c->align_ms = 500;
}

int ad_stream_cfg_check(const ad_stream_cfg *c, char *err, size_t errlen)
{
    /* A day is more lateness than any buffer here can hold usefully. */
    const int64_t day = 86400000;

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
    if (c->max_lateness_ms < 0 || c->max_lateness_ms > day)
        return ad_errf(err, errlen, AD_EINVAL, "max_lateness_ms: must be in [0, %lld] (got %lld)",
                       (long long)day, (long long)c->max_lateness_ms);
    if (c->max_future_ms < 0)
        return ad_errf(err, errlen, AD_EINVAL, "max_future_ms: must be >= 0 (got %lld)",
                       (long long)c->max_future_ms);
    if (c->max_gap_ms < 0)
        return ad_errf(err, errlen, AD_EINVAL, "max_gap_ms: must be >= 0 (got %lld)",
                       (long long)c->max_gap_ms);
    if (!(c->max_gap_intervals >= 0 && c->max_gap_intervals <= 1e6))
        return ad_errf(err, errlen, AD_EINVAL, "max_gap_intervals: must be in [0, 1e6] (got %g)",
                       c->max_gap_intervals);
    if (c->align_ms < 0 || c->align_ms > day)
        return ad_errf(err, errlen, AD_EINVAL, "align_ms: must be in [0, %lld] (got %lld)",
                       (long long)day, (long long)c->align_ms);
    return 0;
}

void ad_stream_free(ad_stream *s)
{
    /* One block: the per-feature arrays and the queue point into it. */
    ad_afree(s);
}

/* PERIOD: pending samples needed for the lateness: the newest sample per
 * feature and grid cell, for every cell the watermark may still reach. */
static size_t period_pending_cap(const ad_stream_cfg *c, size_t F)
{
    int64_t cells = c->max_lateness_ms / c->period_ms + 2;
    size_t cap;

    if (cells > 1024)
        cells = 1024;
    cap = F * (size_t)cells + 8;
    return cap > 65536 ? 65536 : cap;
}

int ad_stream_new(ad_stream **out, const ad_stream_cfg *cfg, int n_features,
                  char *err, size_t errlen)
{
    ad_stream *s;
    size_t F, off = sizeof(*s), pc = 0, G = 0, R = 0, K = 0;
    size_t o_cur, o_cur_ts, o_good, o_held, o_seen, o_has_good, o_miss, o_pend;
    size_t o_g_ts0, o_g_tsl, o_g_n, o_g_vals, o_g_fts, o_g_has, o_r_ts, o_r_vals, o_r_miss;
    size_t o_k_ts, o_k_v, o_k_n, o_k_head, o_q_ts, o_q, o_q_flags;
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
    if (cfg->mode == AD_ASM_PERIOD)
        pc = period_pending_cap(cfg, F);
    if (cfg->mode == AD_ASM_ALL)
        G = AD_STREAM_OPEN;
    if (cfg->mode == AD_ASM_ROWS && cfg->max_lateness_ms > 0)
        R = AD_STREAM_REORDER;
    if (cfg->mode != AD_ASM_ROWS)
        K = AD_STREAM_COPIES;
    /* One 64-byte aligned block: the struct, then the per-feature state
     * packed by element size (8-byte types first, bytes last), the mode's
     * buffer, then the row queue. */
    o_cur = ad_place(&off, F, sizeof(double), sizeof(double));
    o_cur_ts = ad_place(&off, F, sizeof(int64_t), sizeof(int64_t));
    o_good = ad_place(&off, F, sizeof(double), sizeof(double));
    o_held = ad_place(&off, F, sizeof(int), sizeof(int));
    o_seen = ad_place(&off, F, 1, 1);
    o_has_good = ad_place(&off, F, 1, 1);
    o_miss = ad_place(&off, F, 1, 1);
    o_pend = ad_place(&off, pc, sizeof(pend), sizeof(int64_t));
    o_g_ts0 = ad_place(&off, G, sizeof(int64_t), sizeof(int64_t));
    o_g_tsl = ad_place(&off, G, sizeof(int64_t), sizeof(int64_t));
    o_g_n = ad_place(&off, G, sizeof(int), sizeof(int));
    o_g_vals = ad_place(&off, G * F, sizeof(double), sizeof(double));
    o_g_fts = ad_place(&off, G * F, sizeof(int64_t), sizeof(int64_t));
    o_g_has = ad_place(&off, G * F, 1, 1);
    o_r_ts = ad_place(&off, R, sizeof(int64_t), sizeof(int64_t));
    o_r_vals = ad_place(&off, R * F, sizeof(double), sizeof(double));
    o_r_miss = ad_place(&off, R * F, 1, 1);
    o_k_ts = ad_place(&off, K * F, sizeof(int64_t), sizeof(int64_t));
    o_k_v = ad_place(&off, K * F, sizeof(double), sizeof(double));
    o_k_n = ad_place(&off, K ? F : 0, 1, 1);
    o_k_head = ad_place(&off, K ? F : 0, 1, 1);
    o_q_ts = ad_place(&off, AD_STREAM_QUEUE, sizeof(int64_t), 64);
    o_q = ad_place(&off, F * AD_STREAM_QUEUE, sizeof(double), 64);
    o_q_flags = ad_place(&off, AD_STREAM_QUEUE, 1, 1);
    base = off == SIZE_MAX ? NULL : ad_aalloc(off);
    if (base == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "stream: out of memory");
    memset(base, 0, off);
    s = (ad_stream *)base;
    s->cfg = *cfg;
    s->F = n_features;
    s->p_cap = (int)pc;
    s->cur = (double *)(base + o_cur);
    s->cur_ts = (int64_t *)(base + o_cur_ts);
    s->good = (double *)(base + o_good);
    s->held = (int *)(base + o_held);
    s->seen = base + o_seen;
    s->has_good = base + o_has_good;
    s->miss = base + o_miss;
    s->pend = (pend *)(base + o_pend);
    s->g_ts0 = (int64_t *)(base + o_g_ts0);
    s->g_tsl = (int64_t *)(base + o_g_tsl);
    s->g_n = (int *)(base + o_g_n);
    s->g_vals = (double *)(base + o_g_vals);
    s->g_fts = (int64_t *)(base + o_g_fts);
    s->g_has = base + o_g_has;
    s->r_ts = (int64_t *)(base + o_r_ts);
    s->r_vals = (double *)(base + o_r_vals);
    s->r_miss = base + o_r_miss;
    s->k_ts = (int64_t *)(base + o_k_ts);
    s->k_v = (double *)(base + o_k_v);
    s->k_n = base + o_k_n;
    s->k_head = base + o_k_head;
    s->q_ts = (int64_t *)(base + o_q_ts);
    s->q_vals = (double *)(base + o_q);
    s->q_flags = base + o_q_flags;
    *out = s;
    return 0;
}

/* ---- emission ---------------------------------------------------------------- */

int64_t ad_stream_usual_interval(const ad_stream *s)
{
    int64_t v[AD_STREAM_IV], x;
    int n = s->iv_n, i, j;

    if (n < 1)
        return s->iv_hint;
    for (i = 0; i < n; i++) {       /* insertion sort: at most 31 */
        x = s->iv[i];
        for (j = i; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    return v[(n - 1) / 2];
}

void ad_stream_hint_interval(ad_stream *s, int64_t ms)
{
    s->iv_hint = ms > 0 ? ms : 0;
}

void ad_stream_resume(ad_stream *s, int64_t last_ts)
{
    if (!s->has_resume || last_ts > s->resume_ts) {
        s->resume_ts = last_ts;
        s->has_resume_row = 0;      /* another row than the one given */
    }
    s->has_resume = 1;
}

void ad_stream_resume_row(ad_stream *s, int64_t ts, const double *values,
                          const unsigned char *present)
{
    /* before any row of its own: cur holds nothing yet, and seen[] stays
     * unset (the values are not held into the rows that follow) */
    if (s->cfg.mode != AD_ASM_ROWS || !s->has_resume || ts != s->resume_ts || s->has_emit)
        return;
    for (int f = 0; f < s->F; f++) {
        int in = present[f] && isfinite(values[f]);

        s->cur[f] = in ? values[f] : 0;
        s->cur_ts[f] = in ? ts : INT64_MIN;
    }
    s->has_resume_row = 1;
}

int ad_stream_last_row(const ad_stream *s, int64_t *ts, double *values, unsigned char *present)
{
    if (s->cfg.mode != AD_ASM_ROWS || !s->has_emit)
        return 0;
    for (int f = 0; f < s->F; f++) {
        present[f] = s->seen[f] && s->cur_ts[f] == s->last_emit_ts;
        values[f] = present[f] ? s->cur[f] : NAN;
    }
    *ts = s->last_emit_ts;
    return 1;
}

int ad_stream_last_sample(const ad_stream *s, int f, int64_t *ts, double *v)
{
    const int64_t *t;
    int64_t last;
    int best = -1;

    if (s->cfg.mode == AD_ASM_ROWS || f < 0 || f >= s->F || !(s->has_emit || s->has_resume))
        return 0;
    /* the last row: one emitted, or the one of the stream this continues */
    last = !s->has_emit ? s->resume_ts : !s->has_resume ? s->last_emit_ts :
           s->last_emit_ts > s->resume_ts ? s->last_emit_ts : s->resume_ts;
    t = s->k_ts + (size_t)f * AD_STREAM_COPIES;
    for (int i = 0; i < s->k_n[f]; i++)
        if (t[i] <= last && (best < 0 || t[i] > t[best]))
            best = i;
    if (best < 0)
        return 0;
    *ts = t[best];
    *v = s->k_v[(size_t)f * AD_STREAM_COPIES + (size_t)best];
    return 1;
}

static void note_taken(ad_stream *s, int64_t ts, int f, double v);

void ad_stream_resume_sample(ad_stream *s, int f, int64_t ts, double v)
{
    /* before any sample of its own (the ring holds what this stream took
     * then), and only of a row out: a sample after it was not in that
     * stream's rows, it is needed again */
    if (s->cfg.mode == AD_ASM_ROWS || f < 0 || f >= s->F || !s->has_resume ||
        ts > s->resume_ts || s->has_max || !isfinite(v))
        return;
    note_taken(s, ts, f, v);
}

/* Does a row at ts come after a hole: longer than max_gap_ms and than
 * max_gap_intervals usual intervals? Before an interval is known, the
 * first (a stale retained first message) is judged by max_gap_ms alone. */
static int gap_before(const ad_stream *s, int64_t ts)
{
    int64_t d, u;

    if (!s->has_emit || s->cfg.max_gap_ms <= 0)
        return 0;
    if (__builtin_sub_overflow(ts, s->last_emit_ts, &d))
        d = ts > s->last_emit_ts ? INT64_MAX : INT64_MIN;
    if (d <= s->cfg.max_gap_ms)
        return 0;
    if (s->cfg.max_gap_intervals > 0 && (u = ad_stream_usual_interval(s)) > 0 &&
        (double)d <= s->cfg.max_gap_intervals * (double)u)
        return 0;
    return 1;
}

/* Is ts at or before the stream's last row: one emitted, or the last one
 * of the stream it continues (ad_stream_resume)? Its row is out then. */
static int behind_last_row(const ad_stream *s, int64_t ts)
{
    return (s->has_emit && ts <= s->last_emit_ts) || (s->has_resume && ts <= s->resume_ts);
}

/* The time of the stream's last row (behind_last_row is true), for the
 * duplicate of it. */
static int64_t last_row_ts(const ad_stream *s)
{
    if (!s->has_emit)
        return s->resume_ts;
    if (!s->has_resume)
        return s->last_emit_ts;
    return s->last_emit_ts > s->resume_ts ? s->last_emit_ts : s->resume_ts;
}

/* May a drain with watermark wm emit its next row? Not into a full queue
 * (unless forced): it stops there, and the pops resume it (refill). */
static int drain_room(ad_stream *s, int64_t wm)
{
    if (s->q_len < AD_STREAM_QUEUE || s->forced)
        return 1;
    s->backlog = 1;
    s->backlog_wm = wm;
    return 0;
}

/* Build the row for time ts from the per-feature state, apply the missing
 * policy, and queue it. s->miss marks values missing from this very row
 * (rejected in ROWS mode, absent from an ALL row) when use_miss is set. */
static void emit(ad_stream *s, int64_t ts, int use_miss, int gap)
{
    int F = s->F, f, valid = 1, slot;
    double *v;

    if (s->q_len == AD_STREAM_QUEUE) {
        /* Full, and this row cannot wait (a buffer must be freed, or a
         * push came before the waiting rows were taken): the oldest row
         * is lost; the newest data matters more. */
        s->q_head = (s->q_head + 1) % AD_STREAM_QUEUE;
        s->q_len--;
        s->st.overflow++;
    }
    slot = (s->q_head + s->q_len) % AD_STREAM_QUEUE;
    v = s->q_vals + (size_t)slot * (size_t)F;
    for (f = 0; f < F; f++) {
        int missing = !s->seen[f] || (use_miss && s->miss[f]) ||
            (s->cfg.max_age_ms > 0 && ts - s->cur_ts[f] > s->cfg.max_age_ms);
        if (!missing) {
            v[f] = s->cur[f];
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
    s->q_flags[slot] = (unsigned char)((valid ? AD_ROW_VALID : 0) | (gap ? AD_ROW_GAP : 0));
    s->q_len++;
    s->st.rows++;
    if (!valid)
        s->st.rows_invalid++;
    if (gap)
        s->st.gaps++;
    if (s->has_emit && ts > s->last_emit_ts &&
        !__builtin_sub_overflow(ts, s->last_emit_ts, &s->iv[s->iv_head])) {
        s->iv_head = (s->iv_head + 1) % AD_STREAM_IV;
        if (s->iv_n < AD_STREAM_IV)
            s->iv_n++;
    }
    s->last_emit_ts = ts;
    s->has_emit = 1;
}

/* Floor division for possibly negative timestamps. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* The first grid point >= ts. */
static int64_t grid_ceil(const ad_stream *s, int64_t ts)
{
    int64_t P = s->cfg.period_ms, g = floor_div(ts, P) * P;

    return g < ts ? g + P : g;
}

/* ---- PERIOD ------------------------------------------------------------------ */

static void pend_remove(ad_stream *s, int i)
{
    memmove(s->pend + i, s->pend + i + 1, (size_t)(s->p_len - i - 1) * sizeof(pend));
    s->p_len--;
}

static void apply_head(ad_stream *s)
{
    pend p = s->pend[0];

    pend_remove(s, 0);
    s->cur[p.f] = p.v;
    s->cur_ts[p.f] = p.ts;
    s->seen[p.f] = 1;
    if (!s->has_applied || p.ts > s->last_applied)
        s->last_applied = p.ts;
    s->has_applied = 1;
}

/* Emit the grid rows g < wm: apply the samples each row covers first. A run
 * of rows without new data is held values: never across a hole longer than
 * max_gap_ms (skipped, and the row after it flagged), and at most
 * AD_STREAM_HELD_RUN rows of it (the rest counted in gap_rows). Stops at a
 * full queue (drain_room): every step before the emission is one a rerun
 * with the same wm repeats as a no-op. */
static void period_drain(ad_stream *s, int64_t wm)
{
    int64_t P = s->cfg.period_ms, gap = s->cfg.max_gap_ms;

    if (!s->has_grid)
        return;
    for (;;) {
        int64_t lim, n;
        if (s->p_len > 0 && s->pend[0].ts <= s->next_grid) {
            apply_head(s);
            continue;
        }
        if (s->next_grid >= wm)
            break;
        if (gap > 0 && s->has_applied && s->next_grid - s->last_applied > gap) {
            int64_t ng;
            if (s->p_len == 0)
                break;          /* a hole: no held rows across it */
            ng = grid_ceil(s, s->pend[0].ts);
            s->st.gap_rows += (uint64_t)((ng - s->next_grid) / P);
            s->next_grid = ng;
            s->gap_next = 1;
            continue;
        }
        lim = s->p_len > 0 && s->pend[0].ts < wm ? s->pend[0].ts : wm;
        if (gap > 0 && s->has_applied && lim > s->last_applied + gap + 1)
            lim = s->last_applied + gap + 1;    /* held rows end at the gap */
        n = floor_div(lim - 1 - s->next_grid, P) + 1;   /* held rows before lim */
        if (n > AD_STREAM_HELD_RUN) {
            s->st.gap_rows += (uint64_t)(n - AD_STREAM_HELD_RUN);
            s->next_grid += (n - AD_STREAM_HELD_RUN) * P;
        }
        if (!drain_room(s, wm))
            return;
        emit(s, s->next_grid, 0, s->gap_next);
        s->gap_next = 0;
        s->next_grid += P;
    }
}

/* Insert a sample into the sorted pending list. Only the newest sample of a
 * feature per grid cell matters for sample-and-hold: an older one in the
 * same cell is replaced. Returns 0, or 1 for a duplicate (its time held
 * already), 2 when its value is the same too (a copy). */
static int pend_insert(ad_stream *s, int64_t ts, int f, double v)
{
    int64_t cell = grid_ceil(s, ts);
    int i;

    for (i = 0; i < s->p_len; i++) {
        pend *p = &s->pend[i];
        if (p->f != f || grid_ceil(s, p->ts) != cell)
            continue;
        if (p->ts == ts)
            return p->v == v ? 2 : 1;
        if (p->ts > ts)
            return 0;   /* superseded in its cell: accepted, not needed */
        pend_remove(s, i);
        break;
    }
    if (s->p_len == s->p_cap) {
        /* Full (more lateness than planned): the oldest cell goes out, now
         * (its slot is needed), into a full queue too. */
        s->forced = 1;
        period_drain(s, grid_ceil(s, s->pend[0].ts) + 1);
        s->forced = 0;
        if (behind_last_row(s, ts))
            return -1;
    }
    for (i = s->p_len; i > 0 && s->pend[i - 1].ts > ts; i--)
        ;
    memmove(s->pend + i + 1, s->pend + i, (size_t)(s->p_len - i) * sizeof(pend));
    s->pend[i].ts = ts;
    s->pend[i].f = f;
    s->pend[i].v = v;
    s->p_len++;
    return 0;
}

/* A sample behind the last emitted row (PERIOD): the per-feature topics of
 * one device stamped a few ms apart put one feature's sample just behind
 * the row another's made complete. Newer than the value the feature holds
 * (and than any of its samples pending), it becomes that value for the next
 * row: counted in late_held, with how late it was (late_held_max_ms). A
 * clock that jumped back is behind the feature's own value and is dropped. */
static int period_hold_late(ad_stream *s, int64_t ts, int f, double v)
{
    int i;

    if (s->seen[f] && ts <= s->cur_ts[f])
        return 0;
    /* the stream this one continues held a value of every feature up to
     * its last row, newer than any sample at or before it (ad_stream_resume) */
    if (s->has_resume && ts <= s->resume_ts)
        return 0;
    for (i = 0; i < s->p_len; i++)
        if (s->pend[i].f == f)
            return 0;   /* a newer sample of it waits: this one is superseded */
    s->cur[f] = v;
    s->cur_ts[f] = ts;
    s->seen[f] = 1;
    if (!s->has_applied || ts > s->last_applied)
        s->last_applied = ts;
    s->has_applied = 1;
    s->st.samples++;
    s->st.late_held++;
    if ((uint64_t)(s->last_emit_ts - ts) > s->st.late_held_max_ms)
        s->st.late_held_max_ms = (uint64_t)(s->last_emit_ts - ts);
    return 1;
}

/* ---- ALL --------------------------------------------------------------------- */

static void group_remove(ad_stream *s, int g)
{
    size_t F = (size_t)s->F, n = (size_t)(s->g_len - g - 1);

    memmove(s->g_ts0 + g, s->g_ts0 + g + 1, n * sizeof(int64_t));
    memmove(s->g_tsl + g, s->g_tsl + g + 1, n * sizeof(int64_t));
    memmove(s->g_n + g, s->g_n + g + 1, n * sizeof(int));
    memmove(s->g_vals + g * F, s->g_vals + (g + 1) * F, n * F * sizeof(double));
    memmove(s->g_fts + g * F, s->g_fts + (g + 1) * F, n * F * sizeof(int64_t));
    memmove(s->g_has + g * F, s->g_has + (g + 1) * F, n * F);
    s->g_len--;
}

/* Emit the oldest open row (complete or not) and close it. */
static void group_emit(ad_stream *s)
{
    int64_t ts = s->g_tsl[0];
    int f;

    for (f = 0; f < s->F; f++) {
        s->miss[f] = !s->g_has[f];
        if (s->g_has[f]) {
            s->cur[f] = s->g_vals[f];
            s->cur_ts[f] = s->g_fts[f];
            s->seen[f] = 1;
        }
    }
    if (s->g_n[0] < s->F)
        s->st.unaligned++;
    /* Open rows overlap in time by up to align_ms: keep emission strictly
     * increasing. */
    if (s->has_emit && ts <= s->last_emit_ts)
        ts = s->last_emit_ts + 1;
    emit(s, ts, 1, gap_before(s, ts));
    group_remove(s, 0);
}

/* Emit the open rows, oldest first: complete ones, and incomplete ones the
 * watermark has passed by more than align_ms; up to a full queue. */
static void all_drain(ad_stream *s, int64_t wm)
{
    while (s->g_len > 0) {
        if (s->g_n[0] < s->F && !(s->g_ts0[0] + s->cfg.align_ms < wm))
            break;
        if (!drain_room(s, wm))
            return;
        group_emit(s);
    }
}

/* Put a sample into the open row nearest in time that lacks its feature.
 * Returns 0, or 1 for a duplicate (its time held already), 2 when its
 * value is the same too (a copy). */
static int all_insert(ad_stream *s, int64_t ts, int f, double v)
{
    size_t F = (size_t)s->F;
    int g, best = -1;
    int64_t bestd = 0;

    for (g = 0; g < s->g_len; g++) {
        int64_t d = ts > s->g_ts0[g] ? ts - s->g_ts0[g] : s->g_ts0[g] - ts;
        if (s->g_has[g * F + f]) {
            if (s->g_fts[g * F + f] == ts)
                return s->g_vals[g * F + f] == v ? 2 : 1;
            continue;
        }
        if (d <= s->cfg.align_ms && (best < 0 || d < bestd)) {
            best = g;
            bestd = d;
        }
    }
    if (best < 0) {
        if (s->g_len == AD_STREAM_OPEN)
            group_emit(s);      /* too many open rows: the oldest goes out */
        if (behind_last_row(s, ts))
            return -1;
        for (g = s->g_len; g > 0 && s->g_ts0[g - 1] > ts; g--)
            ;
        {
            size_t n = (size_t)(s->g_len - g);
            memmove(s->g_ts0 + g + 1, s->g_ts0 + g, n * sizeof(int64_t));
            memmove(s->g_tsl + g + 1, s->g_tsl + g, n * sizeof(int64_t));
            memmove(s->g_n + g + 1, s->g_n + g, n * sizeof(int));
            memmove(s->g_vals + (g + 1) * F, s->g_vals + g * F, n * F * sizeof(double));
            memmove(s->g_fts + (g + 1) * F, s->g_fts + g * F, n * F * sizeof(int64_t));
            memmove(s->g_has + (g + 1) * F, s->g_has + g * F, n * F);
        }
        s->g_len++;
        s->g_ts0[g] = ts;
        s->g_tsl[g] = ts;
        s->g_n[g] = 0;
        memset(s->g_has + g * F, 0, F);
        best = g;
    }
    s->g_vals[best * F + f] = v;
    s->g_fts[best * F + f] = ts;
    s->g_has[best * F + f] = 1;
    s->g_n[best]++;
    if (ts > s->g_tsl[best])
        s->g_tsl[best] = ts;
    return 0;
}

/* ---- ROWS -------------------------------------------------------------------- */

/* Emit the oldest reorder-buffer row. */
static void rows_emit_head(ad_stream *s)
{
    size_t F = (size_t)s->F;
    int64_t ts = s->r_ts[0];
    int f;

    for (f = 0; f < s->F; f++) {
        s->miss[f] = s->r_miss[f];
        if (!s->miss[f]) {
            s->cur[f] = s->r_vals[f];
            s->cur_ts[f] = ts;
            s->seen[f] = 1;
        }
    }
    emit(s, ts, 1, gap_before(s, ts));
    s->r_len--;
    memmove(s->r_ts, s->r_ts + 1, (size_t)s->r_len * sizeof(int64_t));
    memmove(s->r_vals, s->r_vals + F, (size_t)s->r_len * F * sizeof(double));
    memmove(s->r_miss, s->r_miss + F, (size_t)s->r_len * F);
}

/* Emit the reorder-buffer rows the watermark has passed; up to a full
 * queue. */
static void rows_drain(ad_stream *s, int64_t wm)
{
    while (s->r_len > 0 && s->r_ts[0] <= wm && drain_room(s, wm))
        rows_emit_head(s);
}

/* The mode's drain to watermark wm. */
static void drain(ad_stream *s, int64_t wm)
{
    switch (s->cfg.mode) {
    case AD_ASM_PERIOD: period_drain(s, wm); break;
    case AD_ASM_ALL:    all_drain(s, wm); break;
    default:            rows_drain(s, wm); break;
    }
}

/* New input (a push, a tick) with rows still waiting for room: they come
 * out first, the oldest queued rows making room for them (counted in
 * overflow: the caller did not take them), so the input meets the state it
 * would have met had they been taken. */
static void settle(ad_stream *s)
{
    if (!s->backlog)
        return;
    s->backlog = 0;
    s->forced = 1;
    drain(s, s->backlog_wm);
    s->forced = 0;
}

/* A row was taken: a drain that stopped at the full queue goes on. */
static void refill(ad_stream *s)
{
    if (!s->backlog)
        return;
    s->backlog = 0;
    drain(s, s->backlog_wm);
}

/* ---- input ------------------------------------------------------------------- */

/* A refusal for its time (dup, ooo, future) of what carried nv values:
 * one row in ROWS mode, one sample otherwise (stream.h, Counters). */
static void refused(uint64_t *count, uint64_t *values, uint64_t nv)
{
    (*count)++;
    *values += nv;
}

/* Future check against the arrival clock; counts (nv values). 1 = reject. */
static int is_future(ad_stream *s, int64_t ts, uint64_t nv)
{
    if (s->has_arr && s->cfg.max_future_ms > 0 && ts > s->arr_ms &&
        ts - s->arr_ms > s->cfg.max_future_ms) {
        refused(&s->st.future, &s->st.future_values, nv);
        return 1;
    }
    return 0;
}

static void saw(ad_stream *s, int64_t ts)
{
    if (!s->has_max || ts > s->max_ts)
        s->max_ts = ts;
    s->has_max = 1;
    s->clk_ms = s->arr_ms;
}

/* PERIOD/ALL: is (ts, v) one of the last AD_STREAM_COPIES samples taken of
 * feature f? Then it is a copy of that sample (the same message delivered
 * again), whether the sample still waits, was applied to the row still
 * open, was superseded in its cell or its row is already out: the rows and
 * the cells the stream keeps forget it sooner, and what they forgot would
 * tell a copy for a late sample or take it again. */
static int copy_of_taken(const ad_stream *s, int64_t ts, int f, double v)
{
    const int64_t *t = s->k_ts + (size_t)f * AD_STREAM_COPIES;
    const double *x = s->k_v + (size_t)f * AD_STREAM_COPIES;

    for (int i = 0; i < s->k_n[f]; i++)
        if (t[i] == ts && x[i] == v)
            return 1;
    return 0;
}

/* PERIOD/ALL: is ts the time of the newest sample taken of feature f (of
 * those its ring holds)? */
static int at_newest_taken(const ad_stream *s, int64_t ts, int f)
{
    const int64_t *t = s->k_ts + (size_t)f * AD_STREAM_COPIES;
    int64_t newest = INT64_MIN;

    for (int i = 0; i < s->k_n[f]; i++)
        if (t[i] > newest)
            newest = t[i];
    return s->k_n[f] > 0 && ts == newest;
}

/* PERIOD/ALL: sample (ts, v) of feature f taken: the newest in its ring. */
static void note_taken(ad_stream *s, int64_t ts, int f, double v)
{
    size_t i = (size_t)f * AD_STREAM_COPIES + s->k_head[f];

    s->k_ts[i] = ts;
    s->k_v[i] = v;
    s->k_head[f] = (unsigned char)((s->k_head[f] + 1) % AD_STREAM_COPIES);
    if (s->k_n[f] < AD_STREAM_COPIES)
        s->k_n[f]++;
}

/* Accept one value of feature f at ts (PERIOD/ALL); returns 0 or 1 (dropped). */
static int accept_sample(ad_stream *s, int64_t ts, int f, double v)
{
    int rc = 0;

    if (f < 0 || f >= s->F) {
        s->st.bad_feature++;
        return 1;
    }
    if (!isfinite(v)) {
        s->st.nonfinite++;
        return 1;
    }
    if (is_future(s, ts, 1))
        return 1;
    settle(s);
    if (copy_of_taken(s, ts, f, v)) {
        /* a copy (a duplicate of what the stream holds for that time), not
         * late even when its row is out: no clock is wrong, and taken again
         * it would count twice in samples and, applied after a newer value
         * of its feature, put the older one back into the open row */
        refused(&s->st.dup, &s->st.dup_values, 1);
        refused(&s->st.dup_copies, &s->st.dup_copy_values, 1);
        return 1;
    }
    if (behind_last_row(s, ts)) {
        /* Its row is already out: too late for it. In PERIOD mode a value
         * newer than the one its feature holds is still the feature's
         * latest value: it is held for the next row (sample-and-hold)
         * rather than lost. */
        if (s->cfg.mode == AD_ASM_PERIOD && period_hold_late(s, ts, f, v)) {
            s->clk_ms = s->arr_ms;          /* taken: the data clock runs */
            note_taken(s, ts, f, v);
            return 0;
        }
        /* At the time of its feature's newest sample, with another value
         * (a copy was told above): a duplicate, as ROWS tells a row at the
         * last row's time. A device clock that stopped stamps every sample
         * so: counted late, the log sent the operator to max_lateness_ms
         * once the row at that time was out, and the data-quality late
         * check took them at once rather than after the time has stood
         * still (detector_dq.c STALLED CLOCK). */
        if (at_newest_taken(s, ts, f)) {
            refused(&s->st.dup, &s->st.dup_values, 1);
            return 1;
        }
        refused(&s->st.ooo, &s->st.ooo_values, 1);
        return 1;
    }
    if (s->cfg.mode == AD_ASM_PERIOD && s->seen[f] && ts <= s->cur_ts[f]) {
        /* At or before the value its feature holds, applied already to the
         * row still open (pend_insert no longer sees it): at its time, a
         * duplicate, as of a pending sample; older, superseded in the row,
         * taken but not applied (applied, it would put the older value
         * back into the row, which carries the newest). */
        if (ts == s->cur_ts[f])
            rc = s->cur[f] == v ? 2 : 1;
    } else if (s->cfg.mode == AD_ASM_PERIOD) {
        if (!s->has_grid) {
            s->has_grid = 1;
            s->next_grid = grid_ceil(s, ts);
        }
        rc = pend_insert(s, ts, f, v);
    } else {
        rc = all_insert(s, ts, f, v);
    }
    if (rc != 0) {
        if (rc > 0) refused(&s->st.dup, &s->st.dup_values, 1);
        else refused(&s->st.ooo, &s->st.ooo_values, 1);
        if (rc == 2)
            refused(&s->st.dup_copies, &s->st.dup_copy_values, 1);
        return 1;
    }
    s->st.samples++;
    note_taken(s, ts, f, v);
    saw(s, ts);
    drain(s, s->max_ts - s->cfg.max_lateness_ms);
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

int ad_stream_refuse(ad_stream *s, int feature, int nonnumeric)
{
    if (feature < 0 || feature >= s->F)
        s->st.bad_feature++;
    else if (nonnumeric)
        s->st.nonnumeric++;
    else
        s->st.nonfinite++;
    return 1;
}

int ad_stream_refuse_message(ad_stream *s)
{
    s->st.malformed++;
    return 1;
}

/* ROWS mode: is a row at a time the stream holds already (values, present
 * as pushed) a copy of the one held (held, with miss flagging the values
 * it lacks)? The same values present, each equal. */
static int same_row(const ad_stream *s, const double *values, const unsigned char *present,
                    const double *held, const unsigned char *miss)
{
    for (int f = 0; f < s->F; f++) {
        int in = (present == NULL || present[f]) && isfinite(values[f]);

        if (in != !miss[f] || (in && values[f] != held[f]))
            return 0;
    }
    return 1;
}

/* A dup refusal in ROWS mode of the row at ts (nv values), a copy or not. */
static void refused_dup_row(ad_stream *s, uint64_t nv, int copy)
{
    refused(&s->st.dup, &s->st.dup_values, nv);
    if (copy)
        refused(&s->st.dup_copies, &s->st.dup_copy_values, nv);
}

/* ROWS mode: the row last emitted at ts, held whole (cur, where cur_ts is
 * ts), the same as the one pushed again; or, none emitted yet, the last row
 * of the stream it continues when its values were given (a retained
 * message delivered again at the resubscription after a restart, a QoS 1
 * redelivery: a copy, as the stream that was not interrupted tells it) */
static int same_as_last(ad_stream *s, int64_t ts, const double *values,
                        const unsigned char *present)
{
    if (!(s->has_emit && ts == s->last_emit_ts) &&
        !(!s->has_emit && s->has_resume_row && ts == s->resume_ts))
        return 0;       /* that row's values are not held */
    for (int f = 0; f < s->F; f++)
        s->miss[f] = s->cur_ts[f] != ts;
    return same_row(s, values, present, s->cur, s->miss);
}

/* ROWS mode: one whole row. */
static int push_whole_row(ad_stream *s, int64_t ts, const double *values,
                          const unsigned char *present)
{
    size_t F = (size_t)s->F;
    double *dst;
    unsigned char *miss;
    uint64_t nv = 0;            /* the values the row carries */
    int f, i;

    for (f = 0; f < s->F; f++)
        nv += present == NULL || present[f];
    if (is_future(s, ts, nv))
        return 1;
    settle(s);
    if (behind_last_row(s, ts)) {
        if (ts == last_row_ts(s))
            refused_dup_row(s, nv, same_as_last(s, ts, values, present));
        else
            refused(&s->st.ooo, &s->st.ooo_values, nv);
        return 1;
    }
    if (s->cfg.max_lateness_ms > 0) {
        for (i = 0; i < s->r_len; i++)
            if (s->r_ts[i] == ts) {
                refused_dup_row(s, nv, same_row(s, values, present, s->r_vals + (size_t)i * F,
                                                s->r_miss + (size_t)i * F));
                return 1;
            }
        if (s->r_len == AD_STREAM_REORDER)
            rows_emit_head(s);
        if (behind_last_row(s, ts)) {
            refused(&s->st.ooo, &s->st.ooo_values, nv);
            return 1;
        }
        for (i = s->r_len; i > 0 && s->r_ts[i - 1] > ts; i--)
            ;
        memmove(s->r_ts + i + 1, s->r_ts + i, (size_t)(s->r_len - i) * sizeof(int64_t));
        memmove(s->r_vals + (i + 1) * F, s->r_vals + i * F,
                (size_t)(s->r_len - i) * F * sizeof(double));
        memmove(s->r_miss + (i + 1) * F, s->r_miss + i * F, (size_t)(s->r_len - i) * F);
        s->r_len++;
        s->r_ts[i] = ts;
        dst = s->r_vals + (size_t)i * F;
        miss = s->r_miss + (size_t)i * F;
    } else {
        dst = s->cur;
        miss = s->miss;
    }
    for (f = 0; f < s->F; f++) {
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
        dst[f] = values[f];
        s->st.samples++;
        if (s->cfg.max_lateness_ms == 0) {
            s->cur_ts[f] = ts;
            s->seen[f] = 1;
        }
    }
    saw(s, ts);
    if (s->cfg.max_lateness_ms > 0)
        rows_drain(s, s->max_ts - s->cfg.max_lateness_ms);
    else
        emit(s, ts, 1, gap_before(s, ts));
    return 0;
}

int ad_stream_push_row(ad_stream *s, int64_t ts_ms, const double *values,
                       const unsigned char *present)
{
    int f, any = 0;

    if (s->cfg.mode == AD_ASM_ROWS)
        return push_whole_row(s, ts_ms, values, present);
    for (f = 0; f < s->F; f++) {
        if (present && !present[f])
            continue;
        if (accept_sample(s, ts_ms, f, values[f]) == 0)
            any = 1;
    }
    return any ? 0 : 1;
}

void ad_stream_arrival(ad_stream *s, int64_t now_ms)
{
    s->arr_ms = now_ms;
    if (!s->has_arr)
        s->clk_ms = now_ms;
    s->has_arr = 1;
}

/* PERIOD, the device's last message refused whole (arr_ms > clk_ms): the
 * data time run (from clk_ms) releases the rows up to the one that holds
 * the newest sample, behind the lateness; the grid rows after it would be
 * its values held across a time the device sent nothing usable, and the
 * data-quality monitor, whose clock runs from the last arrival, would not
 * see that hole (detector.h ad_detector_advance): they come only as that
 * clock (max_ts + the wall time since the last arrival) passes them, as
 * when the device is silent. */
static int64_t period_refused_clock(const ad_stream *s, int64_t data_now, int64_t now_ms)
{
    int64_t held = s->max_ts + (now_ms > s->arr_ms ? now_ms - s->arr_ms : 0);
    int64_t lim = grid_ceil(s, s->max_ts) + s->cfg.max_lateness_ms + 1;

    if (data_now > lim)
        data_now = lim;
    return data_now > held ? data_now : held;
}

void ad_stream_advance(ad_stream *s, int64_t now_ms)
{
    int64_t data_now;

    if (s->has_arr) {
        /* The stream's own clock: its newest time plus the wall time since
         * the device last sent it something it took. What it refused
         * (a message refused whole, a value, a time ahead, late or
         * repeated) says nothing of the device's clock: counted from its
         * arrival, a device sending only that would hold the rows that
         * wait behind the watermark for as long as it does. */
        if (!s->has_max)
            return;
        data_now = s->max_ts + (now_ms > s->clk_ms ? now_ms - s->clk_ms : 0);
        if (s->cfg.mode == AD_ASM_PERIOD && s->arr_ms > s->clk_ms)
            data_now = period_refused_clock(s, data_now, now_ms);
    } else {
        data_now = now_ms;
    }
    settle(s);
    drain(s, data_now - s->cfg.max_lateness_ms);
}

/* ---- output ------------------------------------------------------------------ */

/* Take the oldest queued row: returns its slot. */
static int pop_slot(ad_stream *s)
{
    int slot = s->q_head;

    s->q_head = (s->q_head + 1) % AD_STREAM_QUEUE;
    /* Emptied: restart at slot 0, so a stream whose rows are popped as
     * they come (the daemon) reuses one warm slot instead of walking the
     * whole queue through the cache. */
    if (--s->q_len == 0)
        s->q_head = 0;
    return slot;
}

int ad_stream_pop_row_d(ad_stream *s, double *values, int64_t *ts_ms, unsigned *flags)
{
    int slot;

    if (s->q_len == 0)
        return 0;
    slot = pop_slot(s);
    memcpy(values, s->q_vals + (size_t)slot * (size_t)s->F, (size_t)s->F * sizeof(double));
    *ts_ms = s->q_ts[slot];
    *flags = s->q_flags[slot];
    refill(s);                  /* after the copy: it may reuse the slot */
    return 1;
}

int ad_stream_pop_row(ad_stream *s, float *values, int64_t *ts_ms, int *valid)
{
    const double *v;
    int slot, f;

    if (s->q_len == 0)
        return 0;
    slot = pop_slot(s);
    v = s->q_vals + (size_t)slot * (size_t)s->F;
    for (f = 0; f < s->F; f++)
        values[f] = (float)v[f];
    *ts_ms = s->q_ts[slot];
    *valid = (s->q_flags[slot] & AD_ROW_VALID) != 0;
    refill(s);
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

uint64_t ad_stream_values_refused(const ad_stream_stats *st)
{
    return st->dup_values + st->ooo_values + st->future_values + st->nonfinite +
           st->nonnumeric + st->bad_feature;
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
