/*
 * test_workers.c - the workers' engine cache (daemon/workers.c). A worker
 * keeps the engines (per-model inference state) it built, found again by
 * the caller's key and the model's address. A model freed and another made
 * at the same address under the same key (a stream's model replaced while
 * its generation counter came back to the same value) must get an engine
 * of its own: the cached one was built from the freed model and reads it.
 * The case below puts a second, wider model at the first one's address
 * (its contents moved into the first one's struct, the first one's
 * buffers freed, as malloc would do given the same block) and checks the
 * worker builds it an engine of its own and its output is the second
 * model's reconstruction (the scalar reference). The first one's engine
 * has workspace for the narrow model only: under the sanitizer build its
 * use for the wide one fails the case outright (heap overflow).
 */
#include "t.h"
#include "t_model.h"

#include <uv.h>

#include "engine.h"
#include "workers.h"

#define TW 4
#define F 3

typedef struct run_task {
    ad_task t;
    const ad_model *m;
    uint64_t key;
    const float *in;
    float out[TW * F];
    ad_engine *e;
    int rc, done;
} run_task;

static void run_cb(ad_task *t, ad_worker *w)
{
    run_task *r = (run_task *)t;

    r->e = ad_workers_engine(w, r->m, r->key);
    r->rc = r->e ? ad_engine_forward(r->e, r->in, r->out, 1) : -1;
}

static void done_cb(ad_task *t)
{
    ((run_task *)t)->done = 1;
}

/* One window through m on the worker, under key: 0, or -1. */
static int run_on_worker(uv_loop_t *loop, ad_workers *ws, const ad_model *m, uint64_t key,
                         const float *in, run_task *r)
{
    memset(r, 0, sizeof(*r));
    r->t.run = run_cb;
    r->t.done = done_cb;
    r->m = m;
    r->key = key;
    r->in = in;
    ad_workers_submit(ws, &r->t);
    while (!r->done)
        uv_run(loop, UV_RUN_ONCE);
    return r->rc == 0 ? 0 : -1;
}

/* A wider model than t_zero_model's (an LSTM of 32 units): an engine
 * built for the narrow one has too little workspace for it. */
static ad_model *wide_model(void)
{
    ad_layer_spec L[2] = { { AD_LAYER_LSTM, 32, AD_ACT_TANH, 1 },
                           { AD_LAYER_TD_DENSE, F, AD_ACT_LINEAR, 0 } };
    ad_model *m = NULL;
    char err[200];

    if (ad_model_create(&m, TW, F, L, 2, err, sizeof(err)) != 0)
        fprintf(stderr, "model: %s\n", err);
    return m;
}

static void fill(ad_model *m, float v)
{
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = v * (float)(1 + i % 5);
}

static void test_model_at_freed_address(void)
{
    uv_loop_t loop;
    ad_workers *ws = NULL;
    ad_model *m = t_zero_model(TW, F), *n = wide_model(), tmp;
    float in[TW * F], want[TW * F];
    run_task r1, r2;
    const uint64_t key = 42;
    double diff = 0, moved = 0;
    int i;

    if (uv_loop_init(&loop) != 0 || !m || !n ||
        ad_workers_new(&ws, &loop, 1, 8) != 0) {
        T_CHECK(0, "setup");
        ad_model_free(m);
        ad_model_free(n);
        return;
    }
    for (i = 0; i < TW * F; i++)
        in[i] = 0.25f * (float)(i % 7) - 0.5f;
    fill(m, 0.1f);
    T_CHECK(run_on_worker(&loop, ws, m, key, in, &r1) == 0, "first model on the worker");
    /* the first model freed, a second (wider) one made at its address */
    fill(n, -0.03f);
    tmp = *m;
    *m = *n;
    *n = tmp;
    ad_model_free(n);
    n = NULL;
    T_CHECK(ad_forward_ref(m, in, want, 1) == 0, "reference pass");
    T_CHECK(run_on_worker(&loop, ws, m, key, in, &r2) == 0, "second model on the worker");
    for (i = 0; i < TW * F; i++) {
        diff = fmax(diff, fabs((double)r2.out[i] - want[i]));
        moved = fmax(moved, fabs((double)r1.out[i] - want[i]));
    }
    T_CHECK(moved > 0.1, "the two models differ (%g)", moved);
    T_CHECK(r2.e != r1.e, "the second model got the first one's engine");
    T_CHECK(diff < 1e-4, "worker output is not the second model's: max |diff| %g", diff);
    T_NOTE("same key and address: second model's engine %s the first's, max |out - its "
           "reference| %.3g (first model's output %.3g away)",
           r2.e != r1.e ? "is not" : "IS", diff, moved);
    ad_workers_free(ws);
    uv_run(&loop, UV_RUN_DEFAULT);      /* the workers' poll handle closes */
    uv_loop_close(&loop);
    ad_model_free(m);
}

int main(void)
{
    T_RUN(test_model_at_freed_address);
    return t_done();
}
