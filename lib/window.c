/*
 * window.c - ring buffer of the last T raw rows of a stream, the hop
 * counter, and extraction of the (T,F) window in time order, scaled.
 */
#include "window.h"

#include <stdlib.h>
#include <string.h>

#include "ad.h"

struct ad_window {
    int T, F, hop;
    float *rows;           /* T*F ring */
    int64_t *ts;           /* T */
    unsigned char *valid;  /* T */
    int head;              /* slot of the next write */
    int fill;
    int n_invalid;         /* invalid rows among those held */
    int since;             /* rows since the last due window */
    uint64_t pushed;
};

void ad_window_free(ad_window *w)
{
    if (w == NULL)
        return;
    free(w->rows);
    free(w->ts);
    free(w->valid);
    free(w);
}

int ad_window_new(ad_window **out, int T, int F, int hop)
{
    ad_window *w;
    size_t n;

    *out = NULL;
    if (T < 1 || T > AD_MAX_WINDOW || F < 1 || F > AD_MAX_FEATURES || hop < 1)
        return AD_EINVAL;
    if (ad_mul_size((size_t)T, (size_t)F, &n) || ad_mul_size(n, sizeof(float), &n))
        return AD_EINVAL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return AD_ENOMEM;
    w->T = T;
    w->F = F;
    w->hop = hop;
    w->rows = malloc(n);
    w->ts = calloc((size_t)T, sizeof(*w->ts));
    w->valid = calloc((size_t)T, 1);
    if (!w->rows || !w->ts || !w->valid) {
        ad_window_free(w);
        return AD_ENOMEM;
    }
    *out = w;
    return 0;
}

int ad_window_push(ad_window *w, int64_t ts_ms, const float *row, int valid)
{
    int slot = w->head;

    if (w->fill == w->T && !w->valid[slot])
        w->n_invalid--;               /* the evicted row was invalid */
    memcpy(w->rows + (size_t)slot * (size_t)w->F, row, (size_t)w->F * sizeof(float));
    w->ts[slot] = ts_ms;
    w->valid[slot] = valid ? 1 : 0;
    if (!valid)
        w->n_invalid++;
    w->head = (slot + 1) % w->T;
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

int ad_window_extract(const ad_window *w, const ad_model *m, float *out,
                      int64_t *first_ts, int64_t *last_ts)
{
    size_t F = (size_t)w->F, first, tail;

    if (w->fill < w->T)
        return AD_EINVAL;
    /* Oldest row is at head (the ring is full): copy head..T-1, 0..head-1. */
    first = (size_t)w->head;
    tail = (size_t)w->T - first;
    memcpy(out, w->rows + first * F, tail * F * sizeof(float));
    if (first > 0)
        memcpy(out + tail * F, w->rows, first * F * sizeof(float));
    if (m != NULL)
        ad_model_scale(m, out, out, (size_t)w->T);
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

int ad_window_T(const ad_window *w)
{
    return w->T;
}

int ad_window_F(const ad_window *w)
{
    return w->F;
}
