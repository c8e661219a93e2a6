/*
 * workers.c - a fixed pool of pthreads fed from a mutex/condvar FIFO, with
 * completed tasks returned to the loop through an eventfd watched by a
 * uv_poll_t (see workers.h). A worker only signals when it puts a task on
 * an empty done list (the loop takes the whole list at once), and signals
 * outside the mutex: one write() per burst of completions, and the loop
 * never waits for a worker that is inside a system call (uv_async_t would
 * make the loop spin in its send handshake for that long).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <cblas.h>

#include "ad.h"
#include "workers.h"

#define ENGINES_PER_WORKER 16

struct ad_worker {
    ad_workers *ws;
    pthread_t th;
    /* an engine serves the model it was built from: the caller's key,
     * the address and the model's uid (a freed model's address may be
     * reused by another model; its uid is never reused) */
    struct { uint64_t key, uid; const ad_model *m; ad_engine *e; uint64_t used; } eng[ENGINES_PER_WORKER];
    uint64_t tick;
};

struct ad_workers {
    uv_loop_t *loop;
    uv_poll_t poll;     /* on efd: completions to deliver */
    int efd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ad_task *todo_head, *todo_tail;
    ad_task *bulk_head, *bulk_tail;     /* bulk tasks waiting (workers.h) */
    int bulk_busy, bulk_queued;         /* bulk tasks running, waiting */
    unsigned urgent_run;                /* tasks taken ahead of a waiting bulk one */
    ad_task *done_head;
    int quit;
    int n, busy, queued, pending;
    int max_batch;
    ad_worker *w;
};

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every so many tasks taken ahead of a waiting bulk task, the bulk one
 * goes first: batches queued without end (an overloaded instance) do not
 * keep a training waiting for good. */
#define BULK_PASS 256

/* The next task this worker may run (mutex held), or NULL: the other
 * tasks first; a bulk one when none waits (or BULK_PASS were taken ahead
 * of it), and only while another worker stays free for batches (one
 * worker: it runs them in turn). At quit, whatever waits. */
static ad_task *take_task(ad_workers *ws)
{
    ad_task *t;
    int bulk_ok = ws->bulk_head && (ws->quit || ws->n == 1 || ws->bulk_busy < ws->n - 1);

    if (ws->todo_head && !(bulk_ok && ws->urgent_run >= BULK_PASS)) {
        t = ws->todo_head;
        ws->todo_head = t->next;
        if (!ws->todo_head) ws->todo_tail = NULL;
        if (ws->bulk_head)
            ws->urgent_run++;
        return t;
    }
    if (!bulk_ok)
        return NULL;
    t = ws->bulk_head;
    ws->bulk_queued--;
    ws->bulk_head = t->next;
    if (!ws->bulk_head) ws->bulk_tail = NULL;
    ws->bulk_busy++;
    ws->urgent_run = 0;
    return t;
}

static void *worker_main(void *arg)
{
    ad_worker *w = arg;
    ad_workers *ws = w->ws;

    openblas_set_num_threads(1);
    pthread_mutex_lock(&ws->mu);
    for (;;) {
        ad_task *t;
        while (!(t = take_task(ws)) && !ws->quit)
            pthread_cond_wait(&ws->cv, &ws->mu);
        if (!t)
            break;              /* quit, nothing waits */
        ws->queued--;
        ws->busy++;
        pthread_mutex_unlock(&ws->mu);

        double c0 = thread_cpu();
        t->run(t, w);
        t->cpu_s = thread_cpu() - c0;

        pthread_mutex_lock(&ws->mu);
        ws->busy--;
        if (t->bulk) {
            ws->bulk_busy--;
            if (ws->bulk_head)
                pthread_cond_signal(&ws->cv);   /* the next bulk task may run now */
        }
        /* a non-empty done list has a wakeup pending already (done_cb
         * takes the whole list under the mutex); ad_workers_free() joins
         * us before it closes the eventfd */
        int wake = !ws->done_head && !ws->quit;
        t->next = ws->done_head;
        ws->done_head = t;
        if (wake) {
            uint64_t one = 1;
            ssize_t r;
            pthread_mutex_unlock(&ws->mu);
            do r = write(ws->efd, &one, sizeof one); while (r < 0 && errno == EINTR);
            pthread_mutex_lock(&ws->mu);
        }
    }
    pthread_mutex_unlock(&ws->mu);
    for (int i = 0; i < ENGINES_PER_WORKER; i++)
        ad_engine_free(w->eng[i].e);
    return NULL;
}

/* Run the done() of every completed task, in completion order. */
static void deliver(ad_workers *ws)
{
    ad_task *list, *rev = NULL;
    uint64_t v;
    ssize_t r;

    do r = read(ws->efd, &v, sizeof v); while (r < 0 && errno == EINTR);
    pthread_mutex_lock(&ws->mu);
    list = ws->done_head;
    ws->done_head = NULL;
    pthread_mutex_unlock(&ws->mu);
    while (list) {              /* restore completion order */
        ad_task *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        ad_task *n = rev->next;
        ws->pending--;
        rev->done(rev);
        rev = n;
    }
}

static void done_cb(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    deliver(h->data);
}

int ad_workers_wait(ad_workers *ws, int (*until)(void *arg), void *arg, int timeout_ms)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pf = { .fd = ws->efd, .events = POLLIN };
        int left;
        if (until(arg))
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        left = timeout_ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
                                  (t1.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || ws->pending == 0)
            return until(arg) ? 0 : -1;
        if (poll(&pf, 1, left) > 0)
            deliver(ws);
    }
}

int ad_workers_new(ad_workers **out, uv_loop_t *loop, int n, int max_batch)
{
    ad_workers *ws;
    *out = NULL;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (!(ws = calloc(1, sizeof *ws)) || !(ws->w = calloc((size_t)n, sizeof *ws->w))) {
        free(ws);
        return AD_ENOMEM;
    }
    ws->loop = loop;
    ws->max_batch = max_batch;
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->cv, NULL);
    if ((ws->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        uv_poll_init(loop, &ws->poll, ws->efd) != 0) {
        if (ws->efd >= 0) close(ws->efd);
        pthread_mutex_destroy(&ws->mu);
        pthread_cond_destroy(&ws->cv);
        free(ws->w);
        free(ws);
        return AD_EIO;
    }
    ws->poll.data = ws;
    uv_poll_start(&ws->poll, UV_READABLE, done_cb);
    for (int i = 0; i < n; i++) {
        ws->w[i].ws = ws;
        if (pthread_create(&ws->w[i].th, NULL, worker_main, &ws->w[i]) != 0) {
            ws->n = i;
            ad_workers_free(ws);
            return AD_ENOMEM;
        }
        ws->n = i + 1;
    }
    *out = ws;
    return 0;
}

void ad_workers_submit(ad_workers *ws, ad_task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&ws->mu);
    if (t->bulk) {
        if (ws->bulk_tail) ws->bulk_tail->next = t; else ws->bulk_head = t;
        ws->bulk_tail = t;
        ws->bulk_queued++;
    } else {
        if (ws->todo_tail) ws->todo_tail->next = t; else ws->todo_head = t;
        ws->todo_tail = t;
    }
    ws->queued++;
    ws->pending++;
    pthread_cond_signal(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
}

int ad_workers_count(const ad_workers *ws)
{
    return ws->n;
}

int ad_workers_idle(const ad_workers *ws)
{
    int r;
    pthread_mutex_lock((pthread_mutex_t *)&ws->mu);
    /* bulk tasks waiting take no worker a batch would get */
    r = ws->n - ws->busy - (ws->queued - ws->bulk_queued);
    pthread_mutex_unlock((pthread_mutex_t *)&ws->mu);
    return r > 0 ? r : 0;
}

int ad_workers_pending(const ad_workers *ws)
{
    return ws->pending;
}

int ad_batch_cap(const ad_model *m, int max_batch)
{
    double f = ad_model_flops(m);
    double cap = f > 0 ? AD_BATCH_FLOPS / f : (double)max_batch;
    if (cap < 8) cap = 8;
    return cap < (double)max_batch ? (int)cap : max_batch;
}

ad_engine *ad_workers_engine(ad_worker *w, const ad_model *m, uint64_t key)
{
    int lru = 0;
    w->tick++;
    for (int i = 0; i < ENGINES_PER_WORKER; i++) {
        if (w->eng[i].e && w->eng[i].key == key && w->eng[i].m == m &&
            w->eng[i].uid == m->uid) {
            w->eng[i].used = w->tick;
            return w->eng[i].e;
        }
        if (!w->eng[i].e || w->eng[i].used < w->eng[lru].used)
            lru = i;
        if (!w->eng[i].e) { lru = i; break; }
    }
    ad_engine_free(w->eng[lru].e);
    w->eng[lru].e = ad_engine_new(m, ad_batch_cap(m, w->ws->max_batch));
    w->eng[lru].m = m;
    w->eng[lru].uid = m->uid;
    w->eng[lru].key = key;
    w->eng[lru].used = w->tick;
    return w->eng[lru].e;
}

static void poll_closed(uv_handle_t *h)
{
    ad_workers *ws = h->data;
    close(ws->efd);
    free(ws);
}

void ad_workers_free(ad_workers *ws)
{
    if (!ws) return;
    pthread_mutex_lock(&ws->mu);
    ws->quit = 1;
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    for (int i = 0; i < ws->n; i++)
        pthread_join(ws->w[i].th, NULL);
    /* tasks finished but not delivered are dropped with the pool: the
     * caller only frees us after draining (ad_workers_pending() == 0) */
    uv_close((uv_handle_t *)&ws->poll, poll_closed);
    pthread_mutex_destroy(&ws->mu);
    pthread_cond_destroy(&ws->cv);
    free(ws->w);
    ws->w = NULL;
}
