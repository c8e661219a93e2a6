/*
 * workers.h - the daemon's worker threads: inference batches and training
 * jobs run here, never on the loop thread.
 *
 * A task is submitted from the loop thread; a worker runs task->run() (any
 * blocking or CPU-heavy work: forward pass, training, file writes), then the
 * task is handed back to the loop thread, where task->done() runs (from a
 * uv_async_t callback). Tasks run in FIFO order of submission but complete
 * in any order; callers that need order restore it themselves. A bulk task
 * (a training, a fine-tune: seconds to minutes, no window waits on it) runs
 * after every other task waiting, in FIFO order among bulk tasks, and with
 * more than one worker at most n - 1 of them run at once: one worker stays
 * free for the inference batches, so a fleet's trainings queued at once do
 * not hold every stream's scoring back for their total time.
 *
 * Each worker owns its engines: ad_workers_engine() returns, for the calling
 * worker, an ad_engine for a model identified by a caller-chosen 64-bit key
 * (unique for the model's lifetime), creating it on first use and keeping the
 * most recent few. Workers call openblas_set_num_threads(1) at start: one
 * worker per core, single-threaded BLAS each.
 */
#ifndef AD_WORKERS_H
#define AD_WORKERS_H

#include <stdint.h>
#include <uv.h>
#include "engine.h"

typedef struct ad_workers ad_workers;
typedef struct ad_worker ad_worker;

typedef struct ad_task {
    void (*run)(struct ad_task *t, ad_worker *w);   /* worker thread */
    void (*done)(struct ad_task *t);                /* loop thread */
    struct ad_task *next;                           /* internal */
    double cpu_s;                                   /* CPU time of run() */
    int bulk;                                       /* set before submit: see top */
} ad_task;

/* n threads (n <= 0: one per online CPU); max_batch sizes the engines. */
int ad_workers_new(ad_workers **out, uv_loop_t *loop, int n, int max_batch);

/* Work bound of one forward pass, in flops (about 2 ms on one core). */
#define AD_BATCH_FLOPS 200e6

/* Windows per forward pass for model m: max_batch, but no more than fit in
 * AD_BATCH_FLOPS (at least 8), so a large model gets smaller batches (and
 * engines with smaller workspaces) and a batch never holds a core for long. */
int ad_batch_cap(const ad_model *m, int max_batch);

/* Queue a task (loop thread). */
void ad_workers_submit(ad_workers *ws, ad_task *t);

int ad_workers_count(const ad_workers *ws);
/* Workers not running a task and no task waiting (loop thread view); bulk
 * tasks waiting do not count: they run after any other task. */
int ad_workers_idle(const ad_workers *ws);
/* Tasks submitted and not yet done()-ed. */
int ad_workers_pending(const ad_workers *ws);

/* Engine for `model` in the calling worker (NULL on OOM). An engine is
 * found again by key, address and the model's uid (ad_model.uid): a model
 * made at a freed one's address never gets its engine, even under the
 * same key. key must change when the model's weights change in place. */
ad_engine *ad_workers_engine(ad_worker *w, const ad_model *model, uint64_t key);

/* Loop thread, for callers that must finish work before returning (a
 * Kafka partition revoked inside librdkafka's rebalance callback): block,
 * running the done() of completed tasks as they come, until until(arg) is
 * true (0) or timeout_ms passed or nothing is pending while until() is
 * still false (-1). until() may submit tasks. */
int ad_workers_wait(ad_workers *ws, int (*until)(void *arg), void *arg, int timeout_ms);

/* Stop the threads after the queued tasks ran (their done() callbacks are
 * NOT called after this), close the async handle and free. */
void ad_workers_free(ad_workers *ws);

#endif /* AD_WORKERS_H */
