/*
 * test_batch.c - the daemon's batches (daemon/batch.c) and the models they
 * name, through the daemon's own code on a real worker thread: a batch's
 * model is kept alive by the windows it carries (a shared model by the
 * batch's reference, a stream's own model by the detector's retirement
 * epochs or the stream's graveyard), so a pull that finds no window due
 * (the housekeeping tick, a message that completes no row) must not leave
 * an empty batch open. Such a batch, submitted once the stream's model
 * changed, sent a worker to build an engine from a freed model:
 *   - a model the detector owns, retired at once because no window reads
 *     it (as a promotion retires the stream's previous promoted model);
 *   - a stream's own model freed with the graveyard once a reload rebuilt
 *     the stream's detector.
 * Each case checks that the one window due is the only one sent to the
 * workers (stats "batches" and "batch_windows"); under the sanitizer build
 * the worker's read of the freed model fails the case outright. And a
 * killed stream leaves no batch open behind it, and the spare batches a
 * burst took are trimmed once a second.
 *
 * A reload that rebuilds a stream's detector while a window of its own
 * model is in flight, and cannot make the graveyard entry (out of memory):
 * the stream keeps its detector and model, the window comes back scored,
 * and the reload drops the stream, freed once nothing is in flight. The
 * failure is injected by linking this test with -Wl,--wrap=calloc
 * (Makefile): __wrap_calloc below refuses while fail_calloc is set.
 */
#include "t.h"
#include "t_model.h"

#include <errno.h>
#include <pthread.h>

#include "daemon_int.h"

#define TW 4
#define F 2

/* Every calloc() of the linked code comes here (-Wl,--wrap=calloc). */
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
static int fail_calloc, calloc_refused;

void *__wrap_calloc(size_t n, size_t size)
{
    if (fail_calloc) {
        calloc_refused++;
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

typedef struct fix {
    uv_loop_t loop;
    ad_daemon *dd;
    stream_rec *s;
} fix;

static int fix_init(fix *x)
{
    memset(x, 0, sizeof(*x));
    if (uv_loop_init(&x->loop) != 0)
        return -1;
    x->dd = calloc(1, sizeof(*x->dd));
    x->s = calloc(1, sizeof(*x->s) + sizeof("pump1"));
    if (!x->dd || !x->s)
        return -1;
    x->dd->loop = &x->loop;
    x->dd->max_batch = 16;
    if (ad_workers_new(&x->dd->ws, &x->loop, 1, x->dd->max_batch) != 0)
        return -1;
    memcpy(x->s->key, "pump1", sizeof("pump1"));
    x->s->hash = ad_fnv1a64_str(x->s->key);
    x->s->serial = ++x->dd->serial;
    return 0;
}

/* Every batch submitted comes back and is fed. */
static void fix_drain(fix *x)
{
    batch_dispatch(x->dd, 1);
    while (x->dd->in_flight_batches > 0)
        uv_run(&x->loop, UV_RUN_ONCE);
}

static void fix_free(fix *x)
{
    if (x->dd && x->dd->ws) {
        fix_drain(x);
        batch_free_all(x->dd);
        ad_workers_free(x->dd->ws);
        uv_run(&x->loop, UV_RUN_DEFAULT);   /* the workers' poll handle closes */
    }
    if (x->s && x->dd)
        streams_free_now(x->dd, x->s);
    free(x->dd);
    uv_loop_close(&x->loop);
}

/* Row i into the stream, then its due windows into the batches (as a
 * message does, streams.c push_samples). */
static void row(fix *x, int i)
{
    double v[F] = { 0.5 + 0.1 * (i % 3), 1.0 };

    ad_detector_push_row(x->s->d, 1000LL * i, v, NULL);
    batch_pull(x->dd, x->s);
}

/* The stream's model changed with no window of its own model out; then
 * TW rows make one window due: one batch of one window goes out. */
static void check_one_batch(fix *x, int i0, const char *what)
{
    int i;

    for (i = i0; i < i0 + TW; i++)
        row(x, i);
    fix_drain(x);
    T_CHECK(x->dd->c.batches == 1 && x->dd->c.batch_windows == 1 &&
            x->dd->c.windows_scored + x->dd->c.windows_stale == 1,
            "%s: %llu batch(es) sent with %llu window(s), want 1 with 1", what,
            (unsigned long long)x->dd->c.batches, (unsigned long long)x->dd->c.batch_windows);
    T_NOTE("%s: %llu batch sent, %llu window", what, (unsigned long long)x->dd->c.batches,
           (unsigned long long)x->dd->c.batch_windows);
}

/* The detector's own model (trained online here; a promoted candidate
 * alike) is replaced while nothing is in flight: det_retire frees it at
 * once. A housekeeping pull just before found no window due. */
static void test_retired_model_not_sent(void)
{
    const char *names[F] = { "a", "b" };
    ad_detector_cfg c;
    ad_train_job *job;
    ad_model *trained = t_zero_model(TW, F), *other = t_zero_model(TW, F);
    char err[300];
    fix x;
    int i;

    if (fix_init(&x) != 0 || !trained || !other) {
        T_CHECK(0, "setup");
        goto out;
    }
    ad_detector_cfg_default(&c);
    c.training = AD_TRAIN_BOOTSTRAP;
    c.train_windows = 20;
    c.calib_windows = 10;
    if (ad_detector_new(&x.s->d, &c, "pump1", NULL, TW, F, names, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        goto out;
    }
    for (i = 0; i < 23; i++)            /* collected: train ready */
        row(&x, i);
    job = ad_detector_take_train_job(x.s->d);
    T_CHECK(job != NULL, "a training job after 23 rows");
    ad_train_job_free(job);
    T_CHECK(ad_detector_train_done(x.s->d, trained, 1, NULL) == 0, "trained model taken");
    if (ad_detector_model(x.s->d) != trained)
        goto out;
    trained = NULL;                     /* the detector's now */
    batch_pull(x.dd, x.s);              /* a housekeeping tick: nothing due */
    T_CHECK(ad_detector_set_model(x.s->d, other, 0, err, sizeof(err)) == 0 &&
            ad_detector_model(x.s->d) == other, "model replaced: %s", err);
    check_one_batch(&x, 23, "after the detector freed its model");
out:
    fix_free(&x);
    ad_model_free(trained);
    ad_model_free(other);
}

/* A reload rebuilds the stream's detector (reload.c): the old one and the
 * stream's own model go to the graveyard, emptied at once since no window
 * is in flight. A housekeeping pull just before found no window due. */
static void test_buried_model_not_sent(void)
{
    ad_detector_cfg c;
    ad_model *own = t_zero_model(TW, F), *shared = t_zero_model(TW, F);
    char err[300];
    fix x;

    if (fix_init(&x) != 0 || !own || !shared) {
        T_CHECK(0, "setup");
        ad_model_free(own);
        goto out;
    }
    ad_detector_cfg_default(&c);
    c.calib_windows = 10;
    if (ad_detector_new(&x.s->d, &c, "pump1", own, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        ad_model_free(own);
        goto out;
    }
    x.s->own_model = own;               /* restored from the state dir */
    batch_pull(x.dd, x.s);              /* a housekeeping tick: nothing due */
    streams_bury(x.dd, x.s);
    x.s->epoch++;
    x.s->serial = ++x.dd->serial;
    if (ad_detector_new(&x.s->d, &c, "pump1", shared, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        goto out;
    }
    streams_maybe_free(x.dd, x.s);      /* nothing in flight: the graveyard goes */
    T_CHECK(x.s->grave == NULL, "graveyard emptied");
    check_one_batch(&x, 0, "after the graveyard freed the stream's model");
out:
    fix_free(&x);
    ad_model_free(shared);
}

/* A stream killed (evicted, dropped by a reload) with nothing in flight is
 * freed at once, and no batch of it stays open: an empty one held max_batch
 * windows' worth of buffers, and its slot in the freed stream, until the
 * daemon stopped. */
static void test_dead_stream_leaves_no_batch(void)
{
    ad_detector_cfg c;
    ad_model *own = t_zero_model(TW, F);
    char err[300];
    fix x;

    if (fix_init(&x) != 0 || !own) {
        T_CHECK(0, "setup");
        ad_model_free(own);
        goto out;
    }
    ad_detector_cfg_default(&c);
    if (ad_detector_new(&x.s->d, &c, "pump1", own, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        ad_model_free(own);
        goto out;
    }
    x.s->own_model = own;
    batch_pull(x.dd, x.s);              /* a housekeeping tick: nothing due */
    streams_kill(x.dd, x.s, 0);         /* nothing in flight: freed now */
    x.s = NULL;
    T_CHECK(x.dd->dead == NULL && x.dd->open_list == NULL,
            "killed stream freed (%d), no batch left open (%d)", x.dd->dead == NULL,
            x.dd->open_list == NULL);
out:
    fix_free(&x);
}

/* A task that holds the one worker until released: what is submitted
 * after it stays in flight meanwhile. */
typedef struct gate {
    ad_task t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, done;
} gate;

static void gate_run(ad_task *t, ad_worker *w)
{
    gate *g = (gate *)t;

    (void)w;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_done(ad_task *t)
{
    ((gate *)t)->done = 1;
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A reload rebuilds the stream's detector (reload.c) while a window of its
 * own model is in flight, and the graveyard entry cannot be allocated: the
 * old detector and model must stay until that window is back. The stream
 * keeps them (the window is scored), and is dropped as the reload drops it
 * (streams_kill), freed once nothing is in flight. */
static void test_bury_out_of_memory(void)
{
    ad_detector_cfg c;
    ad_model *own = t_zero_model(TW, F);
    ad_detector *d0;
    char err[300];
    gate g;
    fix x;
    int i, inflight, kept;

    memset(&g, 0, sizeof(g));
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    g.t.run = gate_run;
    g.t.done = gate_done;
    if (fix_init(&x) != 0 || !own) {
        T_CHECK(0, "setup");
        ad_model_free(own);
        goto out;
    }
    ad_detector_cfg_default(&c);
    c.calib_windows = 10;
    if (ad_detector_new(&x.s->d, &c, "pump1", own, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        ad_model_free(own);
        goto out;
    }
    x.s->own_model = own;               /* restored from the state dir */
    d0 = x.s->d;
    ad_workers_submit(x.dd->ws, &g.t);  /* the worker is busy */
    for (i = 0; i < TW; i++)            /* one window due */
        row(&x, i);
    batch_dispatch(x.dd, 1);
    inflight = x.s->inflight;
    T_CHECK(inflight == 1 && x.dd->in_flight_batches == 1, "one window in flight (%d)",
            inflight);
    fail_calloc = 1;
    streams_bury(x.dd, x.s);
    fail_calloc = 0;
    kept = x.s->d == d0 && x.s->own_model == own && x.s->grave == NULL;
    T_CHECK(calloc_refused > 0, "the graveyard entry was refused");
    T_CHECK(kept, "without a graveyard entry the stream keeps its detector and model "
            "(detector %s, model %s)", x.s->d == d0 ? "kept" : "gone",
            x.s->own_model == own ? "kept" : "gone");
    if (!kept) {                        /* buried anyway: the reload goes on */
        x.s->epoch++;
        x.s->serial = ++x.dd->serial;
        if (ad_detector_new(&x.s->d, &c, "pump1", t_zero_model(TW, F), 0, 0, NULL, err,
                            sizeof(err)) != 0)
            T_CHECK(0, "ad_detector_new: %s", err);
    }
    gate_open(&g);                      /* the window runs on the worker now */
    fix_drain(&x);
    T_CHECK(g.done, "the worker was released");
    if (kept) {
        T_CHECK(x.dd->c.windows_scored == 1, "the window in flight scored: %llu",
                (unsigned long long)x.dd->c.windows_scored);
        streams_kill(x.dd, x.s, 0);     /* as the reload drops it */
        x.s = NULL;
        T_CHECK(x.dd->dead == NULL, "the dropped stream is freed (nothing in flight)");
    }
    T_NOTE("graveyard entry refused with %d window in flight: detector and model %s, "
           "%llu window scored", inflight, kept ? "kept" : "freed at once",
           (unsigned long long)x.dd->c.windows_scored);
out:
    fix_free(&x);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* A burst of windows (a long pack: every row taken as it completes, no
 * batch back before the loop runs) takes many batches; back, they are
 * spare. The once-a-second trim keeps no more spares than were in use
 * over the last second: one tick after the burst all of them (it was the
 * burst's second), the next one what the quiet second used. Before, every
 * spare stayed allocated until the daemon stopped. */
static void test_burst_spares_trimmed(void)
{
    ad_detector_cfg c;
    ad_model *own = t_zero_model(TW, F);
    char err[300];
    fix x;
    int i, burst;

    if (fix_init(&x) != 0 || !own) {
        T_CHECK(0, "setup");
        ad_model_free(own);
        goto out;
    }
    ad_detector_cfg_default(&c);
    if (ad_detector_new(&x.s->d, &c, "pump1", own, 0, 0, NULL, err, sizeof(err)) != 0) {
        T_CHECK(0, "ad_detector_new: %s", err);
        ad_model_free(own);
        goto out;
    }
    x.s->own_model = own;
    for (i = 0; i < 20 * 16 + TW - 1; i++)      /* 20 full batches of 16 */
        row(&x, i);
    fix_drain(&x);
    burst = x.dd->batches_spare;
    T_CHECK(burst >= 20, "the burst took %d batches, want at least 20", burst);
    batch_trim(x.dd);                           /* the burst's second */
    T_CHECK(x.dd->batches_spare == burst, "%d spare after the burst's second, want %d",
            x.dd->batches_spare, burst);
    for (i = 20 * 16 + TW - 1; i < 20 * 16 + TW - 1 + 3; i++) {   /* a quiet second */
        row(&x, i);
        fix_drain(&x);
    }
    batch_trim(x.dd);
    T_CHECK(x.dd->batches_spare == 1 && x.dd->batches_live == 1,
            "%d spare of %d allocated after a quiet second, want 1 of 1",
            x.dd->batches_spare, x.dd->batches_live);
    batch_trim(x.dd);                           /* an idle second */
    T_CHECK(x.dd->batches_spare == 0 && x.dd->batches_live == 0,
            "%d spare of %d allocated after an idle second, want none",
            x.dd->batches_spare, x.dd->batches_live);
    row(&x, i);                                 /* one window: a batch again */
    fix_drain(&x);
    T_CHECK(x.dd->c.windows_scored + x.dd->c.windows_stale == 20 * 16 + 4 &&
            x.dd->batches_live == 1, "%llu windows back, want %d; %d batch(es) allocated",
            (unsigned long long)(x.dd->c.windows_scored + x.dd->c.windows_stale),
            20 * 16 + 4, x.dd->batches_live);
    T_NOTE("a burst of %d batches, 1 spare after a quiet second, none after an idle one",
           burst);
out:
    fix_free(&x);
}

int main(void)
{
    T_RUN(test_retired_model_not_sent);
    T_RUN(test_buried_model_not_sent);
    T_RUN(test_dead_stream_leaves_no_batch);
    T_RUN(test_bury_out_of_memory);
    T_RUN(test_burst_spares_trimmed);
    return t_done();
}
