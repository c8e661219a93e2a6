/*
 * batch.c - batching windows and dispatching them to the workers.
 *
 * ad_detector_next_window copies each due window of a stream straight into
 * the open batch of its model (one per shared model, one per stream-owned
 * model). batch_dispatch (after every poll phase, i.e. after a burst of
 * messages) submits open batches when a worker is idle or a batch is full;
 * under load batches grow up to their limit (ad_batch_cap). A worker runs
 * the forward pass and the reconstruction error; back on the loop, batches
 * are fed in submission order (a FIFO), so every stream sees its scores in
 * order, and the detector's events are handled.
 *
 * Ownership: the daemon owns every batch (open list, flight FIFO, free
 * list for reuse). The free list is trimmed once a second (batch_trim) to
 * the most batches in use over the last second: a burst (a long pack, a
 * backlog) that took many does not pin them, max_batch windows of input
 * and output each, until the daemon stops. A batch holds a reference to its shared model, or none
 * for a stream-owned model, and counts in the inflight of each stream it
 * carries a window of. A stream-owned model (trained online, promoted, a
 * shadow candidate) is kept alive by those windows alone: the detector
 * frees a model it replaced once no window handed out before is back
 * (det_retire), the stream's graveyard once no window is in flight. So a
 * batch is open only while it carries a window: one left empty by a pull
 * that found nothing due goes back to the free list (batch_pull), never to
 * a worker with a model that may be freed by then.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"
#include "engine.h"

static void batch_run(ad_task *t, ad_worker *w);
static void batch_done(ad_task *t);

static void batch_release(ad_daemon *dd, batch *b)
{
    mr_put(b->mr);
    b->mr = NULL;
    b->next = dd->free_batches;
    dd->free_batches = b;
    dd->batches_spare++;
}

/* An open batch off the open list and its owner's slot. */
static void batch_unlink(ad_daemon *dd, batch *b)
{
    batch **pp = &dd->open_list;
    while (*pp && *pp != b) pp = &(*pp)->next;
    if (*pp) *pp = b->next;
    if (b->slot && *b->slot == b) *b->slot = NULL;
    b->slot = NULL;
}

/* An open batch that took no window: back to the free list. */
static void batch_unopen(ad_daemon *dd, batch *b)
{
    batch_unlink(dd, b);
    batch_release(dd, b);
}

static void batch_destroy(batch *b)
{
    ad_afree(b->in);
    ad_afree(b->out);
    free(b->share);
    free(b->sh_share);
    free(b->score);
    free(b->shadow);
    free(b->shadow_key);
    free(b->jobs);
    free(b->streams);
    free(b->epochs);
    free(b->t0);
    free(b);
}

/* A batch taken into use: the peak batch_trim keeps spare. */
static void batch_in_use(ad_daemon *dd)
{
    int used = dd->batches_live - dd->batches_spare;
    if (used > dd->batches_peak)
        dd->batches_peak = used;
}

static batch *batch_alloc(ad_daemon *dd, const ad_model *m)
{
    size_t tf = (size_t)m->window * (size_t)m->n_features;
    int cap = dd->max_batch;     /* any model may reuse it later */
    batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cap = cap;
    b->in = ad_aalloc(tf * (size_t)cap * sizeof(float));
    b->out = ad_aalloc(tf * (size_t)cap * sizeof(float));
    b->share = malloc((size_t)m->n_features * (size_t)cap * sizeof(float));
    b->sh_share = malloc((size_t)m->n_features * (size_t)cap * sizeof(float));
    b->score = malloc((size_t)cap * sizeof(double));
    b->shadow = malloc((size_t)cap * sizeof(double));
    b->shadow_key = malloc((size_t)cap * sizeof(uint64_t));
    b->jobs = malloc((size_t)cap * sizeof(ad_window_job));
    b->streams = malloc((size_t)cap * sizeof(stream_rec *));
    b->epochs = malloc((size_t)cap * sizeof(uint32_t));
    b->t0 = malloc((size_t)cap * sizeof(uint64_t));
    if (!b->in || !b->out || !b->share || !b->sh_share || !b->score || !b->shadow ||
        !b->shadow_key || !b->jobs || !b->streams ||
        !b->epochs || !b->t0) {
        batch_destroy(b);
        return NULL;
    }
    dd->batches_live++;
    return b;
}

/* A batch for model m: a spare one large enough, or a new one. */
static batch *batch_get(ad_daemon *dd, const ad_model *m, int metric)
{
    batch *b = NULL, **pp = &dd->free_batches;
    size_t tf = (size_t)m->window * (size_t)m->n_features;
    while (*pp) {
        if ((size_t)(*pp)->T * (size_t)(*pp)->F >= tf && (*pp)->F >= m->n_features) {
            b = *pp;
            *pp = b->next;
            dd->batches_spare--;
            break;
        }
        pp = &(*pp)->next;
    }
    if (!b && !(b = batch_alloc(dd, m)))
        return NULL;
    batch_in_use(dd);
    b->task.run = batch_run;
    b->task.done = batch_done;
    b->dd = dd;
    b->model = m;
    b->T = m->window;
    b->F = m->n_features;
    b->metric = metric;
    b->limit = ad_batch_cap(m, b->cap);
    b->n = 0;
    b->n_shadow = 0;
    b->done = 0;
    b->next = NULL;
    b->slot = NULL;
    return b;
}

/* Worker thread: the windows [i, j) of b, all carrying the same shadow
 * model, through that model; their outputs overwrite b->out (the live
 * errors were taken already). */
static void shadow_run(batch *b, ad_worker *w, int i, int j)
{
    const ad_model *m = b->jobs[i].shadow;
    size_t tf = (size_t)b->T * (size_t)b->F;
    ad_engine *e = ad_workers_engine(w, m, b->shadow_key[i]);
    int cap = ad_batch_cap(m, b->cap);
    /* a candidate with another scaler (a model file changed on reload):
     * its input is the window re-scaled, in place (the live errors were
     * taken already) */
    for (int q = i; q < j; q++)
        if (!ad_model_same_scaler(b->jobs[q].model, m))
            ad_model_rescale(b->jobs[q].model, m, b->in + tf * (size_t)q,
                             b->in + tf * (size_t)q, (size_t)b->T);
    for (int k = i; k < j; k += cap) {
        int n = j - k < cap ? j - k : cap;
        float *in = b->in + tf * (size_t)k, *out = b->out + tf * (size_t)k;
        if (!e || ad_engine_forward(e, in, out, n) != 0) {
            for (int q = k; q < k + n; q++) b->shadow[q] = NAN;
            continue;
        }
        for (int q = 0; q < n; q++)
            b->shadow[k + q] = ad_recon_score(in + tf * (size_t)q, out + tf * (size_t)q,
                                              b->T, b->F, (ad_metric)b->metric,
                                              b->sh_share + (size_t)b->F * (size_t)(k + q));
    }
}

/* Worker thread: forward pass and per-window error; then the shadow
 * models (continual-learning candidates) on the same scaled windows. */
static void batch_run(ad_task *t, ad_worker *w)
{
    batch *b = (batch *)t;
    size_t tf = (size_t)b->T * (size_t)b->F;
    ad_engine *e = ad_workers_engine(w, b->model, b->key);
    if (!e || ad_engine_forward(e, b->in, b->out, b->n) != 0) {
        for (int i = 0; i < b->n; i++)
            b->score[i] = NAN;
    } else {
        for (int i = 0; i < b->n; i++)
            b->score[i] = ad_recon_score(b->in + tf * (size_t)i, b->out + tf * (size_t)i,
                                         b->T, b->F, (ad_metric)b->metric,
                                         b->share + (size_t)b->F * (size_t)i);
    }
    if (!b->n_shadow)
        return;                 /* the live path: nothing more */
    for (int i = 0, j; i < b->n; i = j) {
        for (j = i + 1; j < b->n && b->jobs[j].shadow == b->jobs[i].shadow; j++)
            ;
        if (b->jobs[i].shadow)
            shadow_run(b, w, i, j);
        else
            for (int q = i; q < j; q++) b->shadow[q] = NAN;
    }
}

static void submit_batch(ad_daemon *dd, batch *b)
{
    batch_unlink(dd, b);
    b->next = NULL;
    if (dd->fifo_tail) dd->fifo_tail->next = b; else dd->fifo_head = b;
    dd->fifo_tail = b;
    dd->in_flight_batches++;
    dd->c.batches++;
    dd->c.batch_windows += (uint64_t)b->n;
    ad_workers_submit(dd->ws, &b->task);
}

void batch_dispatch(ad_daemon *dd, int force)
{
    int idle = ad_workers_idle(dd->ws);
    batch *b = dd->open_list, *n;
    for (; b; b = n) {
        n = b->next;
        if (b->n == 0)
            continue;
        if (force || b->n >= b->limit || idle > 0) {
            submit_batch(dd, b);
            if (idle > 0) idle--;
        }
    }
}

int batch_open_windows(const ad_daemon *dd)
{
    for (const batch *b = dd->open_list; b; b = b->next)
        if (b->n > 0)
            return 1;
    return 0;
}

/* Bootstrap collecting: windows go to training, nothing to score; consume
 * them into the daemon's scratch buffer. */
static void drain_unscored(ad_daemon *dd, stream_rec *s)
{
    size_t need = (size_t)ad_detector_T(s->d) * (size_t)ad_detector_F(s->d);
    ad_window_job job;
    if (dd->scratch_len < need) {
        free(dd->scratch);
        dd->scratch = malloc(need * sizeof(float));
        dd->scratch_len = dd->scratch ? need : 0;
        if (!dd->scratch) return;
    }
    while (ad_detector_next_window(s->d, dd->scratch, &job))
        ;
}

/* The open batch for the model of s (a new one when full or none). */
static batch *open_batch(ad_daemon *dd, stream_rec *s, const ad_model *m)
{
    batch *b, **slot;
    slot = (s->det && s->det->mr && m == s->det->mr->m) ? &s->det->mr->open : &s->open;
    b = *slot;
    /* an open batch carries a window (batch_pull): one opened under
     * another score.metric (a model kept over a reload) goes first; so
     * does one of the stream's own slot whose model changed (a promotion,
     * a model kept over a reload): windows of the new one never join a
     * batch of the old */
    if (b && (b->n >= b->limit || b->metric != (int)ad_detector_metric(s->d) ||
              b->model != m)) {
        submit_batch(dd, b);
        b = NULL;
    }
    if (b)
        return b;
    if (!(b = batch_get(dd, m, ad_detector_metric(s->d)))) {
        ad_log(AD_LOG_ERR, "out of memory for a batch");
        return NULL;
    }
    if (slot == &s->open) {
        /* a shared model no longer the detector's (kept over a reload with
         * reload.shadow) lives by the stream's reference alone, which the
         * next reload may drop while this batch is in flight: hold one;
         * NULL for a stream-owned model (the graveyard keeps it) */
        b->mr = s->mr && s->mr->m == m ? mr_get(s->mr) : NULL;
    } else {
        b->mr = mr_get(s->det->mr);
        b->key = b->mr->key;
    }
    b->slot = slot;
    *slot = b;
    b->next = dd->open_list;
    dd->open_list = b;
    return b;
}

/* Windows of s that continual learning will not be offered (more out at
 * once than the detector keeps copies of, AD_DETECTOR_PW_BYTES): said,
 * rate-limited, naming the stream; counted in stats adapt_unoffered. */
static void note_unoffered(ad_daemon *dd, stream_rec *s)
{
    uint64_t n = ad_detector_adapt_unoffered(s->d);

    if (n == s->seen_unoffered)
        return;
    dd_bad_input(dd, "detector %s: stream %s: %llu window(s) will not be offered to continual "
                 "learning: more were out at once (a message of that many rows) than %zu MB "
                 "of copies hold (stats adapt_unoffered)", s->det->c->name, s->key,
                 (unsigned long long)(n - s->seen_unoffered), AD_DETECTOR_PW_BYTES >> 20);
    s->seen_unoffered = n;
}

/* Every due window of s into open batches; 0, or -1 when no batch could
 * be had (out of memory: the rows stay queued). */
static int take_windows(ad_daemon *dd, stream_rec *s)
{
    batch *b = NULL;

    for (;;) {
        const ad_model *m = ad_detector_model(s->d);
        ad_window_job job;
        float *buf;

        if (!m) {
            drain_unscored(dd, s);
            break;
        }
        if (!(b = open_batch(dd, s, m)))
            return -1;
        buf = b->in + (size_t)b->n * (size_t)b->T * (size_t)b->F;
        if (!ad_detector_next_window(s->d, buf, &job))
            break;
        if (b->slot == &s->open)
            b->key = (1ull << 63) | (s->serial << 20) | (job.gen & 0xFFFFF);
        if (job.shadow) {
            /* the candidate's engine (workers match key, address and uid):
             * its content id, so a new candidate at a freed one's address
             * never reuses the old engine */
            b->shadow_key[b->n] = (3ull << 62) ^ (ad_fnv1a64_str(job.shadow->id) >> 2) ^
                                  (uint64_t)(uintptr_t)job.shadow;
            b->n_shadow++;
        }
        b->jobs[b->n] = job;
        b->streams[b->n] = s;
        b->epochs[b->n] = s->epoch;
        dd_arrival_clock(dd);
        b->t0[b->n] = dd->arr_hr_ns;
        b->n++;
        s->inflight++;
    }
    /* nothing was due (a housekeeping tick, a message that completed no
     * row, the last batch just filled): no window keeps its model alive
     * (a promotion may retire it before the next one comes), so it is not
     * kept open */
    if (b && b->n == 0)
        batch_unopen(dd, b);
    note_unoffered(dd, s);
    return 0;
}

void batch_take(ad_daemon *dd, stream_rec *s)
{
    if (s->d && !s->restoring)
        take_windows(dd, s);
}

void batch_pull(ad_daemon *dd, stream_rec *s)
{
    if (!s->d || s->restoring || take_windows(dd, s) != 0)
        return;
    streams_events(dd, s);
}

static void feed_batch(ad_daemon *dd, batch *b)
{
    uint64_t now = uv_hrtime();
    for (int i = 0; i < b->n; i++) {
        stream_rec *s = b->streams[i];
        s->inflight--;
        if (s->dead || !s->d || s->epoch != b->epochs[i]) {
            dd->c.windows_stale++;
            streams_maybe_free(dd, s);
            continue;
        }
        if (b->jobs[i].shadow && isfinite(b->shadow[i]))
            dd->c.windows_shadow++;
        if (ad_detector_feed_score3(s->d, &b->jobs[i], b->score[i],
                                    b->share + (size_t)b->F * (size_t)i,
                                    b->jobs[i].shadow ? b->shadow[i] : NAN,
                                    b->sh_share + (size_t)b->F * (size_t)i) == 0)
            dd->c.windows_scored++;
        else
            dd->c.windows_stale++;
        stats_latency_add(&dd->lat, (double)(now - b->t0[i]) / 1e6);
        streams_events(dd, s);
        streams_maybe_free(dd, s);
    }
}

/* Loop thread: a batch came back; feed every finished one at the head of
 * the FIFO (submission order). */
static void batch_done(ad_task *t)
{
    batch *b = (batch *)t;
    ad_daemon *dd = b->dd;
    dd->model_cpu_s += t->cpu_s;
    b->done = 1;
    while (dd->fifo_head && dd->fifo_head->done) {
        batch *h = dd->fifo_head;
        dd->fifo_head = h->next;
        if (!dd->fifo_head) dd->fifo_tail = NULL;
        dd->in_flight_batches--;
        feed_batch(dd, h);
        batch_release(dd, h);
    }
}

void batch_trim(ad_daemon *dd)
{
    batch **pp = &dd->free_batches;
    int keep = dd->batches_peak;

    /* the most recently released first: they stay, the rest go */
    for (int i = 0; *pp && i < keep; i++)
        pp = &(*pp)->next;
    while (*pp) {
        batch *b = *pp;
        *pp = b->next;
        batch_destroy(b);
        dd->batches_spare--;
        dd->batches_live--;
    }
    dd->batches_peak = dd->batches_live - dd->batches_spare;
}

void batch_free_all(ad_daemon *dd)
{
    while (dd->open_list) {
        batch *b = dd->open_list;
        dd->open_list = b->next;
        for (int i = 0; i < b->n; i++) b->streams[i]->inflight--;
        mr_put(b->mr);
        batch_destroy(b);
        dd->batches_live--;
    }
    while (dd->free_batches) {
        batch *b = dd->free_batches;
        dd->free_batches = b->next;
        batch_destroy(b);
        dd->batches_live--;
    }
    dd->batches_spare = 0;
    dd->batches_peak = 0;
    free(dd->scratch);
    dd->scratch = NULL;
    dd->scratch_len = 0;
}
