/*
 * training.c - online training tasks (training finetune/bootstrap): when a
 * stream's detector has collected its training windows, its self-contained
 * job runs on a worker thread (and the model is saved to the state dir
 * there); the result is handed back to the detector on the loop thread.
 *
 * Ownership: a train_task owns its job and, until handed to the detector,
 * the trained model. It points at its stream without owning it: the stream
 * is not freed while s->training is set (streams_maybe_free).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__                /* set by the headers above */
#include <malloc.h>
#endif

#include "daemon_int.h"

typedef struct train_task {
    ad_task task;                /* first: the task pointer is the train_task */
    ad_daemon *dd;
    stream_rec *s;
    uint32_t epoch;              /* of s when the job was taken */
    ad_train_job *job;
    ad_model *out;
    int rc;
    char err[256];
    char save[8192];             /* where to save the model, or "" */
} train_task;

/* Worker thread: train, then save the model next to the stream's state. */
static void train_run(ad_task *t, ad_worker *w)
{
    train_task *tt = (train_task *)t;
    (void)w;
    tt->rc = ad_train_job_run(tt->job, &tt->out, &tt->dd->cancel, tt->err, sizeof tt->err);
    if (tt->rc == 0 && tt->save[0]) {
        char e2[256];
        if (ad_model_save(tt->out, tt->save, e2, sizeof e2) != 0)
            snprintf(tt->err, sizeof tt->err, "trained, but not saved: %.200s", e2);
    }
}

/* Loop thread: give the model to the detector it was trained for, unless
 * that detector was replaced or the stream died meanwhile. */
static void train_done(ad_task *t)
{
    train_task *tt = (train_task *)t;
    ad_daemon *dd = tt->dd;
    stream_rec *s = tt->s;
    s->training = 0;
    if (!s->dead && s->d && s->epoch == tt->epoch) {
        if (tt->rc == 0) {
            char id[sizeof s->disk_model];
            /* saved in the state dir (train_run): a rebuild finds it */
            snprintf(id, sizeof id, "%s", tt->save[0] && !tt->err[0] ? tt->out->id : "");
            if (ad_detector_train_done(s->d, tt->out, 1, NULL) != 0) {
                /* refused (window, features or the threshold method's
                 * metric check): said, and the detector leaves training as
                 * for a failed one; before, it stayed in training for good */
                const char *why = "the trained model was refused by the stream's detector "
                                  "(window, features or calibration.method model's metric)";
                ad_model_free(tt->out);
                dd->c.training_failures++;
                ad_log(AD_LOG_WARNING, "stream %s/%s: training failed: %s", s->det->c->name,
                       s->key, why);
                ad_detector_train_done(s->d, NULL, 0, why);
            } else {
                dd->c.trainings++;
                memcpy(s->disk_model, id, sizeof id);
                ad_log(AD_LOG_NOTICE, "stream %s/%s: model trained online%s%s",
                       s->det->c->name, s->key, tt->err[0] ? "; " : "", tt->err);
            }
        } else {
            dd->c.training_failures++;
            ad_log(AD_LOG_WARNING, "stream %s/%s: training failed: %s", s->det->c->name,
                   s->key, tt->err);
            ad_detector_train_done(s->d, NULL, 0, tt->err);
        }
        streams_events(dd, s);
    } else {
        ad_model_free(tt->out);
        /* a rebuilt detector (reload, clock step) that became ready while
         * this stale training was out: its one AD_EV_TRAIN_READY found
         * s->training set and was dropped; start its training now, or it
         * would wait in training for good */
        if (!s->dead && s->d)
            training_start(dd, s);
    }
    ad_train_job_free(tt->job);
    streams_maybe_free(dd, s);
    free(tt);
}

void training_start(ad_daemon *dd, stream_rec *s)
{
    train_task *tt;
    ad_train_job *job;
    if (s->training || dd->stopping)
        return;
    if (!(job = ad_detector_take_train_job(s->d)))
        return;
    if (!(tt = calloc(1, sizeof *tt))) {
        ad_train_job_free(job);
        return;
    }
    tt->task.run = train_run;
    tt->task.done = train_done;
    tt->task.bulk = 1;          /* behind the batches (workers.h) */
    tt->dd = dd;
    tt->s = s;
    tt->epoch = s->epoch;
    tt->job = job;
    if (s->det->state_dir[0])
        state_trained_path(s->det, s->key, tt->save, sizeof tt->save);
    s->training = 1;
    ad_log(AD_LOG_INFO, "stream %s/%s: training (%s) on %zu rows", s->det->c->name, s->key,
           ad_train_mode_name(job->mode), job->n_rows);
    ad_workers_submit(dd->ws, &tt->task);
}

/* ---- continual learning ------------------------------------------------- */

/* A fine-tuning job of the stream's continual learner (lib/adapt.h). The
 * task is on dd->adapt_tasks while out; s->adapt points at it until the
 * stream is rebuilt or killed (then cancelled, its result dropped). */
typedef struct adapt_task {
    ad_task task;                /* first: the task pointer is the adapt_task */
    ad_daemon *dd;
    stream_rec *s;               /* not owned; kept alive by s->adapt */
    uint32_t epoch;
    ad_adapt_job *job;
    ad_model *out;
    volatile int cancel;         /* set on the loop, read by the worker */
    int rc;
    char err[256];
    struct adapt_task *next;     /* dd->adapt_tasks */
} adapt_task;

static void adapt_run(ad_task *t, ad_worker *w)
{
    adapt_task *at = (adapt_task *)t;
    (void)w;
    at->rc = ad_adapt_job_run(at->job, &at->out, NULL, &at->cancel, at->err, sizeof at->err);
}

static void adapt_unlink(ad_daemon *dd, adapt_task *at)
{
    adapt_task **pp = &dd->adapt_tasks;
    while (*pp && *pp != at) pp = &(*pp)->next;
    if (*pp) *pp = at->next;
}

static void adapt_done(ad_task *t)
{
    adapt_task *at = (adapt_task *)t;
    ad_daemon *dd = at->dd;
    stream_rec *s = at->s;
    adapt_unlink(dd, at);
    if (s->adapt == at)
        s->adapt = NULL;
    if (!at->cancel && !s->dead && s->d && s->epoch == at->epoch) {
        if (at->rc != 0) {
            dd->c.adapt_failures++;
            ad_log(AD_LOG_WARNING, "stream %s/%s: continual-learning job failed: %s",
                   s->det->c->name, s->key, at->err);
            ad_detector_adapt_done(s->d, NULL, at->err);
        } else if (ad_detector_adapt_done(s->d, at->out, NULL) != 0) {
            dd->c.adapt_failures++;
        } else {
            dd->c.adapt_jobs++;
            ad_log(AD_LOG_INFO, "stream %s/%s: candidate model fine-tuned, in shadow",
                   s->det->c->name, s->key);
        }
        at->out = NULL;                 /* the detector took it (or freed it) */
        streams_events(dd, s);
    }
    ad_model_free(at->out);
    ad_adapt_job_free(at->job);
    streams_maybe_free(dd, s);
    free(at);
#ifdef __GLIBC__
    /* A fine-tune allocates and frees megabytes (its copy of the normal
     * set, the optimizer's state, activations) in the worker's arena,
     * which glibc keeps: give the free pages back (all arenas; a few ms at
     * most, a few times a day a stream), so that the resident memory
     * follows the heap in use rather than the largest fine-tunes so far. */
    if (!dd->adapt_tasks)
        malloc_trim(0);
#endif
}

int training_adapt_running(const ad_daemon *dd)
{
    int n = 0;
    for (const adapt_task *at = dd->adapt_tasks; at; at = at->next)
        n++;
    return n;
}

void training_adapt_start(ad_daemon *dd, stream_rec *s)
{
    adapt_task *at;
    ad_adapt_job *job;
    if (s->adapt || dd->stopping || !s->d)
        return;
    if (!(job = ad_detector_take_adapt_job(s->d)))
        return;
    if (!(at = calloc(1, sizeof *at))) {
        ad_detector_adapt_done(s->d, NULL, "out of memory");
        ad_adapt_job_free(job);
        return;
    }
    at->task.run = adapt_run;
    at->task.done = adapt_done;
    at->task.bulk = 1;
    at->dd = dd;
    at->s = s;
    at->epoch = s->epoch;
    at->job = job;
    at->next = dd->adapt_tasks;
    dd->adapt_tasks = at;
    s->adapt = at;
    ad_log(AD_LOG_INFO, "stream %s/%s: continual learning: fine-tuning on %zu normal windows",
           s->det->c->name, s->key, job->n);
    ad_workers_submit(dd->ws, &at->task);
}

void training_adapt_cancel(ad_daemon *dd, stream_rec *s)
{
    if (s) {
        if (s->adapt)
            s->adapt->cancel = 1;
        return;
    }
    for (adapt_task *at = dd->adapt_tasks; at; at = at->next)
        at->cancel = 1;
}

/* ---- promoted models ------------------------------------------------------ */

/* Saving a copy of a promoted model in the state dir (worker thread), then
 * the stream's state (loop): the two files a restart reads back. */
typedef struct save_task {
    ad_task task;
    ad_daemon *dd;
    stream_rec *s;
    uint32_t epoch;
    ad_model *m;                 /* owned copy */
    ad_model *ref;               /* the drift reference the stream trained
                                  * itself (owned copy), or NULL */
    int rc, ref_rc;
    int kept;                    /* the live model kept for a file
                                  * reload.shadow has not promoted */
    int cand;                    /* a fine-tune's candidate in shadow */
    char err[256], ref_err[256];
    char path[8192], ref_path[8192];
} save_task;

static void save_run(ad_task *t, ad_worker *w)
{
    save_task *st = (save_task *)t;
    (void)w;
    /* the reference first: a restart between the two then finds the old
     * trained model with its (new) reference, not the reverse */
    if (st->ref)
        st->ref_rc = ad_model_save(st->ref, st->ref_path, st->ref_err, sizeof st->ref_err);
    st->rc = ad_model_save(st->m, st->path, st->err, sizeof st->err);
}

static void candidate_submit(ad_daemon *dd, stream_rec *s, const ad_model *c);

static void save_done(ad_task *t)
{
    save_task *st = (save_task *)t;
    ad_daemon *dd = st->dd;
    stream_rec *s = st->s;
    s->saving--;
    if (st->cand) {
        const ad_model *c = !s->dead && s->d ? ad_adapt_candidate(ad_detector_adapt(s->d)) : NULL;
        int mine = c && strcmp(c->id, st->m->id) == 0;

        s->cand_saving--;
        /* the state may name it now (span_part), when it is still the one
         * in shadow (a rebuild meanwhile carried it over: state.c
         * restore_candidate); not when the save failed */
        if (st->rc == 0 && mine)
            s->cand_nofile = 0;
        if (strcmp(s->cand_id, st->m->id) == 0) {   /* not a newer one's */
            free(s->cand_err);
            /* out of memory: NULL, and a rebuild looks for its file (not there) */
            s->cand_err = st->rc != 0 ? strdup(st->err) : NULL;
        }
        if (st->rc != 0)
            ad_log(AD_LOG_WARNING, "stream %s/%s: candidate model not saved: %s (a restart "
                   "loses the candidate and its shadow span)", s->det ? s->det->c->name : "-",
                   s->key, st->err);
        else
            ad_log(AD_LOG_DEBUG, "stream %s/%s: candidate model %s saved in %s",
                   s->det ? s->det->c->name : "-", s->key, st->m->id, st->path);
        /* written for a candidate no detector of the stream runs any more
         * (a rebuild meanwhile that could not resume it, decided): no
         * state names it, removed with the state written next (below),
         * else it stayed until a restart or the next candidate */
        if (st->rc == 0 && !mine && !s->dead && s->d && !s->restoring && !s->cand_saving &&
            ad_adapt_shadow_span(ad_detector_adapt(s->d)) == -1)
            training_drop_candidate(dd, s);
        /* its span, with the model on disk; or, decided meanwhile, the
         * state that no longer names it, then its removal (cand_drop);
         * also when a rebuild since then carried it over, or left it */
        if (!s->dead && s->d && !s->restoring && (s->epoch == st->epoch || mine || s->cand_drop))
            state_save(dd, s);
        /* a newer candidate waited for this save to end (candidate_write) */
        training_candidate_flush(dd, s);
        ad_model_free(st->m);
        streams_maybe_free(dd, s);
        free(st);
        return;
    }
    if (st->rc != 0)
        ad_log(AD_LOG_WARNING, "stream %s/%s: %s model not saved: %s",
               s->det ? s->det->c->name : "-", s->key, st->kept ? "live" : "promoted",
               st->err);
    else
        ad_log(AD_LOG_INFO, "stream %s/%s: %s model %s saved in %s",
               s->det ? s->det->c->name : "-", s->key, st->kept ? "live" : "promoted",
               st->m->id, st->path);
    if (!s->dead)   /* the copy in the state dir now (state_trained_path) */
        snprintf(s->disk_model, sizeof s->disk_model, "%s", st->rc == 0 ? st->m->id : "");
    if (st->ref && st->ref_rc != 0)
        ad_log(AD_LOG_WARNING, "stream %s/%s: reference model not saved (a restart measures "
               "the drift from the restored model): %s", s->det ? s->det->c->name : "-",
               s->key, st->ref_err);
    ad_model_free(st->ref);
    if (!s->dead && s->d && s->epoch == st->epoch)
        state_save(dd, s);
    ad_model_free(st->m);
    streams_maybe_free(dd, s);
    free(st);
}

static void save_model(ad_daemon *dd, stream_rec *s, int kept)
{
    const ad_model *m = s->d ? ad_detector_model(s->d) : NULL;
    save_task *st;
    if (!m || !s->det || !s->det->state_dir[0])
        return;
    if (!(st = calloc(1, sizeof *st)) || !(st->m = ad_model_clone(m))) {
        ad_log(AD_LOG_WARNING, "stream %s/%s: %s model not saved: out of memory",
               s->det->c->name, s->key, kept ? "live" : "promoted");
        free(st);
        if (kept)       /* the state still says which file does not run */
            state_save(dd, s);
        return;
    }
    st->kept = kept;
    st->task.run = save_run;
    st->task.done = save_done;
    st->dd = dd;
    st->s = s;
    st->epoch = s->epoch;
    state_trained_path(s->det, s->key, st->path, sizeof st->path);
    /* the reference of the drift measure, when it is not the configured
     * model (one the stream trained, the live model an operator accepted),
     * is kept beside: the promoted model overwrites its file */
    {
        const ad_model *ref = ad_adapt_reference(ad_detector_adapt(s->d));
        if (ref && !(s->det->mr && strcmp(ref->id, s->det->mr->m->id) == 0)) {
            if ((st->ref = ad_model_clone(ref)) != NULL)
                state_reference_path(s->det, s->key, st->ref_path, sizeof st->ref_path);
            else
                ad_log(AD_LOG_WARNING, "stream %s/%s: reference model not saved (out of "
                       "memory): a restart measures the drift from the restored model",
                       s->det->c->name, s->key);
        }
    }
    s->saving++;
    ad_workers_submit(dd->ws, &st->task);
}

void training_save_promoted(ad_daemon *dd, stream_rec *s)
{
    save_model(dd, s, 0);
}

void training_save_kept(ad_daemon *dd, stream_rec *s, int why)
{
    const ad_model *file = s->det && s->det->mr ? s->det->mr->m : NULL;

    if (!file) {
        s->kept_why = KEPT_NONE;
        return;
    }
    if (s->kept_why == why && strcmp(s->kept_file, file->id) == 0) {
        state_save(dd, s);      /* saved already (a shadow begun again) */
        return;
    }
    s->kept_why = why;
    snprintf(s->kept_file, sizeof s->kept_file, "%s", file->id);
    save_model(dd, s, 1);
}

/* ---- a fine-tune's candidate in shadow ------------------------------------ */

/* The candidate's model file, written on a worker; the state follows it
 * (save_done). id: the candidate the event was of: another in shadow now
 * (a reloaded model file that waited for the fine-tune, reload.shadow) is
 * not that one, its file not written (it is evaluated again from its own
 * file). */
static void candidate_write(ad_daemon *dd, stream_rec *s, const char *id)
{
    const ad_model *c = s->d ? ad_adapt_candidate(ad_detector_adapt(s->d)) : NULL;

    if (c && strcmp(c->id, id) != 0)
        c = NULL;
    if (!s->det || !s->det->state_dir[0] || !c) {
        state_save(dd, s);      /* the shadow start's figures, as before */
        return;
    }
    /* a new span; the file a decided one left for removal is this one's
     * now (the same name): kept */
    s->span_saved_ms = 0;
    s->span_stale = 0;
    state_candidate_kept(dd, s);
    s->cand_nofile = 1;         /* until its file is written (save_done) */
    snprintf(s->cand_id, sizeof s->cand_id, "%s", c->id);
    free(s->cand_err);
    s->cand_err = NULL;
    /* An earlier candidate's save still on a worker writes the same file:
     * this one's waits for it (save_done submits it). Two at once, on two
     * workers, each renamed its temporary file into place when done, and
     * the older one, slower (a slow disk, a busy worker), could land last:
     * the state then named this candidate over the older one's model, and
     * a restart dropped it ("it holds model ..."). Only the newest waits:
     * one decided meanwhile is never written. */
    if (s->cand_saving > 0) {
        s->cand_queued = 1;
        return;
    }
    candidate_submit(dd, s, c);
}

void training_candidate_flush(ad_daemon *dd, stream_rec *s)
{
    const ad_model *c;

    if (!s->cand_queued || s->cand_saving > 0 || s->restoring)
        return;
    s->cand_queued = 0;
    c = !s->dead && s->d ? ad_adapt_candidate(ad_detector_adapt(s->d)) : NULL;
    /* decided meanwhile, or not resumed by a rebuild: nothing to write */
    if (c && s->cand_nofile && strcmp(c->id, s->cand_id) == 0)
        candidate_submit(dd, s, c);
}

/* The save of candidate c (the one cand_id names) on a worker. */
static void candidate_submit(ad_daemon *dd, stream_rec *s, const ad_model *c)
{
    save_task *st;

    if (!(st = calloc(1, sizeof *st)) || !(st->m = ad_model_clone(c))) {
        ad_log(AD_LOG_WARNING, "stream %s/%s: candidate model not saved (a restart loses "
               "it): out of memory", s->det->c->name, s->key);
        free(st);
        free(s->cand_err);
        s->cand_err = strdup("out of memory");
        state_save(dd, s);
        return;
    }
    st->cand = 1;
    st->task.run = save_run;
    st->task.done = save_done;
    st->dd = dd;
    st->s = s;
    st->epoch = s->epoch;
    state_candidate_path(s->det, s->key, st->path, sizeof st->path);
    s->saving++;
    s->cand_saving++;
    ad_workers_submit(dd->ws, &st->task);
}

void training_save_candidate(ad_daemon *dd, stream_rec *s, const char *id)
{
    candidate_write(dd, s, id);
}

/* Removed once the state that no longer names it is written (state.c
 * save): after its own write when that is still on a worker, after the
 * promoted model's when it is promoted (a kill -9 in between finds the
 * state naming the candidate with its file: in shadow again, decided
 * again), never before. */
void training_drop_candidate(ad_daemon *dd, stream_rec *s)
{
    (void)dd;
    if (s->det && s->det->state_dir[0])
        s->cand_drop = 1;
}
