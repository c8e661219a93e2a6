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
#include <stdio.h>
#include <stdlib.h>

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
            if (ad_detector_train_done(s->d, tt->out, 1, NULL) != 0) {
                ad_model_free(tt->out);
                dd->c.training_failures++;
            } else {
                dd->c.trainings++;
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
