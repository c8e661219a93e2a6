/*
 * window.c - ring buffer of the last T raw rows of a stream, the hop
 * counter, and extraction of the (T,F) window in time order, scaled.
 *
 * Everything lives in ONE 64-byte aligned block (struct, timestamps, raw
 * ring, scaled ring, validity bytes), so a push touches a handful of cache
 * lines of one allocation instead of four separate heap objects.
 *
 * Scaling is paid once per row, not once per window: besides the raw ring
 * (kept because a model swap must rescale from raw values) the window holds
 * the same rows already scaled for the remembered model. The scaled ring is
 * mirrored: the row of slot s is written at s and at s + T, so the T rows
 * from the oldest (slot head) onwards are contiguous at head..head+T-1 and a
 * window is one memcpy. Scaled values always come from ad_model_scale() on
 * the raw row, so they are bit-identical to scaling the extracted raw window.
 */
#include "window.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"

struct ad_window {
    int T, F, hop;
    int head;              /* slot of the next write */
    int fill;
    int n_invalid;         /* invalid rows among those held */
    int since;             /* rows since the last due window */
    uint64_t pushed;
    const ad_model *model; /* model `scaled` belongs to, or NULL (borrowed) */
    int64_t *ts;           /* T */
    double *rows;          /* T*F raw ring (double: see ad_model_scale_d) */
    float *scaled;         /* 2*T*F mirrored ring, valid when model != NULL */
    unsigned char *valid;  /* T: row valid as pushed and scaled */
    unsigned char *rvalid; /* T: row valid as pushed */
    uint64_t absurd;       /* values whose scaled magnitude was absurd */
};

void ad_window_free(ad_window *w)
{
    /* One block: the arrays point into it. */
    ad_afree(w);
}

int ad_window_new(ad_window **out, int T, int F, int hop)
{
    ad_window *w;
    size_t n, off = sizeof(*w), o_ts, o_rows, o_scaled, o_valid, o_rvalid;
    unsigned char *base;

    *out = NULL;
    if (T < 1 || T > AD_MAX_WINDOW || F < 1 || F > AD_MAX_FEATURES || hop < 1)
        return AD_EINVAL;
    if (ad_mul_size((size_t)T, (size_t)F, &n))
        return AD_EINVAL;
    /* 8-byte types first, bytes last, each array on its own cache line. */
    o_ts = ad_place(&off, (size_t)T, sizeof(int64_t), 64);
    o_rows = ad_place(&off, n, sizeof(double), 64);
    o_scaled = ad_place(&off, n, 2 * sizeof(float), 64);
    o_valid = ad_place(&off, (size_t)T, 1, 64);
    o_rvalid = ad_place(&off, (size_t)T, 1, 1);
    if (off == SIZE_MAX)
        return AD_EINVAL;
    base = ad_aalloc(off);
    if (base == NULL)
        return AD_ENOMEM;
    memset(base, 0, off);
    w = (ad_window *)base;
    w->T = T;
    w->F = F;
    w->hop = hop;
    w->model = NULL;
    w->ts = (int64_t *)(base + o_ts);
    w->rows = (double *)(base + o_rows);
    w->scaled = (float *)(base + o_scaled);
    w->valid = base + o_valid;
    w->rvalid = base + o_rvalid;
    *out = w;
    return 0;
}

/* Scale one row into slot `slot` (and its mirror) for w->model; a value
 * whose scaled magnitude is absurd makes the row invalid. */
static void scale_slot(ad_window *w, int slot)
{
    size_t F = (size_t)w->F;
    float *s = w->scaled + (size_t)slot * F;
    int bad = ad_model_scale_d(w->model, w->rows + (size_t)slot * F, s, 1);
    int v = w->rvalid[slot] && bad == 0;

    memcpy(s + (size_t)w->T * F, s, F * sizeof(float));
    w->absurd += (uint64_t)bad;
    if (w->valid[slot] && !v)
        w->n_invalid++;
    else if (!w->valid[slot] && v)
        w->n_invalid--;
    w->valid[slot] = (unsigned char)v;
}

/* Scale the held rows (slots 0..fill-1: a partial ring always starts at
 * slot 0) for w->model and mirror them. */
static void rescale(ad_window *w)
{
    int i;

    for (i = 0; i < w->fill; i++) {
        if (w->model != NULL) {
            uint64_t before = w->absurd;
            scale_slot(w, i);
            w->absurd = before;         /* counted once, at push */
        } else if (w->valid[i] != w->rvalid[i]) {
            w->n_invalid += w->rvalid[i] ? -1 : 1;
            w->valid[i] = w->rvalid[i];
        }
    }
}

int ad_window_set_model(ad_window *w, const ad_model *m)
{
    if (m != NULL && m->n_features != w->F)
        return AD_EINVAL;
    w->model = m;
    rescale(w);
    return 0;
}

int ad_window_push_d(ad_window *w, int64_t ts_ms, const double *row, int valid)
{
    int slot = w->head;
    size_t F = (size_t)w->F;

    if (w->fill == w->T && !w->valid[slot])
        w->n_invalid--;               /* the evicted row was invalid */
    memcpy(w->rows + (size_t)slot * F, row, F * sizeof(double));
    w->ts[slot] = ts_ms;
    w->rvalid[slot] = valid ? 1 : 0;
    w->valid[slot] = 1;
    if (w->model != NULL)
        scale_slot(w, slot);
    if (!w->rvalid[slot] && w->valid[slot]) {
        w->valid[slot] = 0;
        w->n_invalid++;
    }
    w->head = slot + 1 == w->T ? 0 : slot + 1;
    if (w->fill < w->T)
        w->fill++;
    w->pushed++;
    if (w->fill < w->T)
        return 0;
    /* First full ring: due at once; then every hop rows. */
    if (w->pushed == (uint64_t)w->T) {
        w->since = 0;
        return 1;
    }
    if (++w->since >= w->hop) {
        w->since = 0;
        return 1;
    }
    return 0;
}

int ad_window_push(ad_window *w, int64_t ts_ms, const float *row, int valid)
{
    double d[256] = { 0 }, *dp = d;
    int f, due;

    if (w->F > 256 && (dp = malloc((size_t)w->F * sizeof(double))) == NULL)
        return 0;
    for (f = 0; f < w->F; f++)
        dp[f] = row[f];
    due = ad_window_push_d(w, ts_ms, dp, valid);
    if (dp != d)
        free(dp);
    return due;
}

uint64_t ad_window_absurd(const ad_window *w)
{
    return w->absurd;
}

int ad_window_invalid(const ad_window *w)
{
    return w->n_invalid;
}

int ad_window_fill(const ad_window *w)
{
    return w->fill;
}

uint64_t ad_window_pushed(const ad_window *w)
{
    return w->pushed;
}

int ad_window_extract(ad_window *w, const ad_model *m, float *out,
                      int64_t *first_ts, int64_t *last_ts)
{
    size_t F = (size_t)w->F, first, tail;

    if (w->fill < w->T)
        return AD_EINVAL;
    if (m != NULL && m->n_features != w->F)
        return AD_EINVAL;
    /* Oldest row is at head (the ring is full). */
    first = (size_t)w->head;
    if (m != NULL) {
        if (m != w->model)
            ad_window_set_model(w, m);
        memcpy(out, w->scaled + first * F, (size_t)w->T * F * sizeof(float));
    } else {
        /* Raw: head..T-1, then 0..head-1, rounded to float. */
        size_t i, n;
        tail = (size_t)w->T - first;
        for (i = 0, n = tail * F; i < n; i++)
            out[i] = (float)w->rows[first * F + i];
        for (i = 0, n = first * F; i < n; i++)
            out[tail * F + i] = (float)w->rows[i];
    }
    if (first_ts)
        *first_ts = w->ts[w->head];
    if (last_ts)
        *last_ts = w->ts[(w->head + w->T - 1) % w->T];
    return 0;
}

void ad_window_reset(ad_window *w)
{
    w->head = 0;
    w->fill = 0;
    w->n_invalid = 0;
    w->since = 0;
    w->pushed = 0;
}

int ad_window_row(const ad_window *w, int i, int64_t *ts_ms, const double **row, int *valid)
{
    int slot;

    if (i < 0 || i >= w->fill)
        return AD_EINVAL;
    /* the oldest row is at head once the ring is full, at 0 before */
    slot = (w->fill < w->T ? i : w->head + i) % w->T;
    if (ts_ms)
        *ts_ms = w->ts[slot];
    if (row)
        *row = w->rows + (size_t)slot * (size_t)w->F;
    if (valid)
        *valid = w->rvalid[slot];
    return 0;
}

int ad_window_since(const ad_window *w)
{
    return w->since;
}

void ad_window_resume(ad_window *w, uint64_t pushed, int since)
{
    if (pushed >= (uint64_t)w->fill)
        w->pushed = pushed;
    if (since >= 0 && since < w->hop)
        w->since = since;
}

const ad_model *ad_window_model(const ad_window *w)
{
    return w->model;
}

int ad_window_T(const ad_window *w)
{
    return w->T;
}

int ad_window_F(const ad_window *w)
{
    return w->F;
}
