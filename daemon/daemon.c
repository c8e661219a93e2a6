/*
 * daemon.c - the anomalyd service (see daemon.h).
 *
 * Data path, all on the loop thread except the forward pass:
 *   MQTT message -> topic match (each detector's filters) -> stream key ->
 *   payload parser -> samples -> ad_detector_push_* -> ad_detector_next_window
 *   copies each due window straight into the open batch of its model ->
 *   the uv_check_t callback (after every poll phase, i.e. after a burst of
 *   messages) submits open batches to the workers when one is idle or the
 *   batch is full; under load batches grow up to max_batch ->
 *   worker: ad_engine_forward + ad_recon_error -> back on the loop, batches
 *   are fed in submission order (so every stream sees its scores in order)
 *   -> ad_detector_feed_score -> events -> alerts published.
 *   When too many batches are in flight the MQTT socket is not read
 *   (backpressure to the broker) until workers catch up.
 *
 * Lifetimes: models are shared through refcounted model_ref (detector
 * generation, each stream, each batch in flight hold a reference). A
 * stream with windows in flight or a training job is never freed: it is
 * marked dead and freed when the last result comes back. Replaced
 * ad_detector objects of a live stream wait in its graveyard likewise,
 * because they may own a model a batch still reads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <cJSON.h>

#include "ad.h"
#include "config.h"
#include "daemon.h"
#include "detector.h"
#include "engine.h"
#include "model.h"
#include "mqtt.h"
#include "notify.h"
#include "payload.h"
#include "topic.h"
#include "workers.h"

#define MAX_SAMPLES 256          /* samples per message */
#define LAT_RING 4096            /* latency samples kept for percentiles */
#define KEY_MAX 256              /* stream key bytes */

typedef struct model_ref {
    ad_model *m;
    int refs;
    uint64_t key;                /* engine cache key, unique per process */
    struct batch *open;          /* open batch for this model */
} model_ref;

typedef struct old_det {
    ad_detector *d;
    ad_model *own;
    struct old_det *next;
} old_det;

struct det_rt;

typedef struct stream_rec {
    uint64_t hash;               /* lookup fields first: one cache line */
    struct stream_rec *hnext;
    struct det_rt *det;          /* NULL once dead */
    ad_detector *d;
    ad_model *own_model;         /* model loaded from the state dir (owned) */
    model_ref *mr;               /* shared model reference (or NULL) */
    uint64_t serial;
    uint32_t epoch;              /* bumps when d is replaced */
    int inflight;                /* windows in open/submitted batches */
    int training;
    int dead;
    uint64_t last_ms;            /* uv_now of the last sample */
    int64_t last_arrival_ms;     /* arrival time given to the last message */
    struct batch *open;          /* open batch for a stream-owned model */
    old_det *grave;
    struct stream_rec *dnext;    /* dead list */
    char key[];                  /* allocated with the record */
} stream_rec;

typedef struct stream_map {
    stream_rec **b;
    size_t nb, n;
} stream_map;

typedef struct det_rt {
    ad_detconf *c;
    model_ref *mr;               /* NULL for bootstrap */
    ad_payload_parser *parser;
    int T, F;
    char **features;             /* F names (borrowed from model or config) */
    stream_map streams;
    char state_dir[4096];        /* "" if no persistence */
    uint64_t refused, evicted;
} det_rt;

typedef struct gen {
    ad_config *cfg;
    det_rt *dets;
    int n;
} gen;

typedef struct batch {
    ad_task task;                /* first: the task pointer is the batch */
    struct ad_daemon *dd;
    const ad_model *model;
    model_ref *mr;               /* ref held, or NULL (stream-owned model) */
    struct batch **slot;         /* where the open batch is registered */
    uint64_t key;
    int metric;
    int T, F, n, cap;
    int limit;                  /* windows this model takes: ad_batch_cap() */
    float *in, *out, *share;
    double *score;
    ad_window_job *jobs;
    stream_rec **streams;
    uint32_t *epochs;
    uint64_t *t0;                /* uv_hrtime when the window was ready */
    int done;
    struct batch *next;          /* open list / flight FIFO / free list */
} batch;

typedef struct train_task {
    ad_task task;
    struct ad_daemon *dd;
    stream_rec *s;
    uint32_t epoch;
    ad_train_job *job;
    ad_model *out;
    int rc;
    char err[256];
    char save[8192];
} train_task;

typedef struct counters {
    uint64_t messages_in, parse_errors, unknown_fields, nonfinite, oversized;
    uint64_t no_detector, no_stream_key, samples, streams_refused, streams_evicted;
    uint64_t windows_scored, windows_stale, alerts_raised, alerts_cleared;
    uint64_t batches, batch_windows, trainings, training_failures, ignored_stopping;
    uint64_t retired_dropped;    /* dropped samples of freed streams */
} counters;

/* A state file to write off the loop thread (see the state writer). */
typedef struct wjob {
    struct wjob *next;
    char *path, *data;
    size_t len;
    int err;                     /* errno of a failed write, else 0 */
} wjob;

typedef struct ad_daemon {
    uv_loop_t *loop;
    char *path;
    gen *g;
    ad_mqtt *mqtt;
    ad_workers *ws;
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t stats_timer, house_timer, drain_timer;
    uv_check_t check;
    uv_prepare_t prepare;
    /* arrival time of what a loop phase reads: one clock reading per phase,
     * not per message (prepare_cb and check_cb, around the poll phase,
     * start a new one) */
    uint64_t arr_wall_ms, arr_hr_ns;
    int arr_valid;
    int max_batch;
    int stopping, reloading, ready_sent, paused, exit_code;
    volatile int cancel;
    batch *open_list, *fifo_head, *fifo_tail, *free_batches;
    int in_flight_batches;
    stream_rec *dead;
    uint64_t serial;
    counters c;
    double lat_ms[LAT_RING];
    uint64_t lat_n;
    double model_cpu_s;
    double fwd_cpu_s;
    uint64_t started_ms, stop_ms;
    char started_iso[40];
    int log_tokens;
    uint64_t log_refill_ms, log_suppressed;
    /* state writer: queued files, the batch being written, its request */
    wjob *wq_head, *wq_tail, *w_batch;
    uv_work_t w_req;
    int w_busy;
} ad_daemon;

/* ---- small helpers ----------------------------------------------------- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void arrival_clock(struct ad_daemon *dd);

static void iso_ms(int64_t ms, char *out, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char b[32];
    gmtime_r(&s, &tm);
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%03dZ", b, (int)(ms % 1000 + 1000) % 1000);
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

/* Rate-limited warning for bad input: log_rate lines per minute. */
static void bad_input(ad_daemon *dd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bad_input(ad_daemon *dd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    uint64_t now = uv_now(dd->loop);
    if (now >= dd->log_refill_ms) {
        if (dd->log_suppressed)
            ad_log(AD_LOG_WARNING, "%llu more bad-input messages were not logged "
                   "(see stats)", (unsigned long long)dd->log_suppressed);
        dd->log_suppressed = 0;
        dd->log_tokens = dd->g ? dd->g->cfg->log_rate : 10;
        dd->log_refill_ms = now + 60000;
    }
    if (dd->log_tokens <= 0) {
        dd->log_suppressed++;
        return;
    }
    dd->log_tokens--;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ad_log(AD_LOG_WARNING, "%s", msg);
}

static void escape_key(const char *k, char *out, size_t len)
{
    size_t o = 0;
    for (; *k && o + 4 < len; k++) {
        unsigned char ch = (unsigned char)*k;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || (ch == '.' && o > 0))
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", ch);
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, len, "%%");          /* the empty key */
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) return -1;
    return access(tmp, W_OK) == 0 ? 0 : -1;
}

static int write_atomic(const char *path, const char *data, size_t len)
{
    char tmp[8300];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb")))
        return -1;
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || n > (64 << 20) || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return NULL;
    }
    if ((buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* ---- state writer ----------------------------------------------------------
 * Calibration state files are written (fsync'd, renamed into place) on the
 * libuv thread pool, never on the loop thread: a thousand streams that
 * calibrate together, evictions and the final save at stop would otherwise
 * hold the loop for as many fsyncs. One batch is written at a time, in
 * queue order, so a newer state of a stream never loses to an older one; a
 * queued file of the same path is replaced rather than written twice. A
 * state that is queued or being written is what state_pending() returns. */

static void writer_kick(ad_daemon *dd);

static void wjob_free(wjob *j)
{
    free(j->path);
    free(j->data);
    free(j);
}

static void writer_work(uv_work_t *r)
{
    ad_daemon *dd = r->data;
    for (wjob *j = dd->w_batch; j; j = j->next)
        j->err = write_atomic(j->path, j->data, j->len) != 0 ? (errno ? errno : EIO) : 0;
}

static void writer_after(uv_work_t *r, int status)
{
    ad_daemon *dd = r->data;
    wjob *j = dd->w_batch, *n;
    dd->w_batch = NULL;
    dd->w_busy = 0;
    for (; j; j = n) {
        n = j->next;
        if (status != 0 || j->err)
            ad_log(AD_LOG_WARNING, "state: cannot write %s: %s", j->path,
                   status ? uv_strerror(status) : strerror(j->err));
        wjob_free(j);
    }
    writer_kick(dd);
}

static void writer_kick(ad_daemon *dd)
{
    if (dd->w_busy || !dd->wq_head)
        return;
    dd->w_batch = dd->wq_head;
    dd->wq_head = dd->wq_tail = NULL;
    dd->w_busy = 1;
    dd->w_req.data = dd;
    if (uv_queue_work(dd->loop, &dd->w_req, writer_work, writer_after) != 0) {
        writer_work(&dd->w_req);        /* no thread pool: write here */
        writer_after(&dd->w_req, 0);
    }
}

/* Queue data (taken over) for path; 0 or -1 (out of memory, data freed). */
static int state_write(ad_daemon *dd, const char *path, char *data)
{
    wjob *j;
    for (j = dd->wq_head; j; j = j->next)
        if (strcmp(j->path, path) == 0) {
            free(j->data);
            j->data = data;
            j->len = strlen(data);
            return 0;
        }
    if (!(j = calloc(1, sizeof *j)) || !(j->path = strdup(path))) {
        free(j);
        free(data);
        return -1;
    }
    j->data = data;
    j->len = strlen(data);
    if (dd->wq_tail) dd->wq_tail->next = j; else dd->wq_head = j;
    dd->wq_tail = j;
    writer_kick(dd);
    return 0;
}

/* The newest not yet written state for path (a copy), or NULL. */
static char *state_pending(const ad_daemon *dd, const char *path)
{
    const wjob *hit = NULL;
    for (const wjob *j = dd->w_batch; j; j = j->next)
        if (strcmp(j->path, path) == 0) hit = j;
    for (const wjob *j = dd->wq_head; j; j = j->next)
        if (strcmp(j->path, path) == 0) hit = j;
    return hit ? strdup(hit->data) : NULL;
}

/* ---- models ------------------------------------------------------------- */

static uint64_t next_key = 1;

static model_ref *mr_new(ad_model *m)
{
    model_ref *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->m = m;
    r->refs = 1;
    r->key = __atomic_fetch_add(&next_key, 1, __ATOMIC_RELAXED);
    return r;
}

static model_ref *mr_get(model_ref *r)
{
    if (r) r->refs++;
    return r;
}

static void mr_put(model_ref *r)
{
    if (r && --r->refs == 0) {
        ad_model_free(r->m);
        free(r);
    }
}

/* ---- generations (config + models), built off the loop on reload --------- */

static void gen_free(gen *g)
{
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        mr_put(d->mr);
        ad_payload_parser_free(d->parser);
        free(d->streams.b);
    }
    free(g->dets);
    ad_config_free(g->cfg);
    free(g);
}

static int gen_load(gen **out, const char *path, char *err, size_t errlen)
{
    gen *g = calloc(1, sizeof *g);
    char e2[512], pp[64];
    int rc;

    *out = NULL;
    if (!g)
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    if ((rc = ad_config_load(&g->cfg, path, err, errlen)))
        goto fail;
    if (!(g->dets = calloc((size_t)g->cfg->n_det, sizeof *g->dets))) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
        goto fail;
    }
    g->n = g->cfg->n_det;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        ad_detector *probe = NULL;
        d->c = &g->cfg->det[i];
        if (d->c->model) {
            ad_model *m = NULL;
            if ((rc = ad_model_load(&m, d->c->model, e2, sizeof e2))) {
                rc = ad_errf(err, errlen, rc, "%s: detectors[%d].model: %s", path, i, e2);
                goto fail;
            }
            if (!(d->mr = mr_new(m))) {
                ad_model_free(m);
                rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
                goto fail;
            }
            d->T = m->window;
            d->F = m->n_features;
            d->features = m->features;
            for (int f = 0; d->c->features.n && f < d->F; f++)
                if (d->c->features.n != d->F || strcmp(d->c->features.v[f], d->features[f])) {
                    rc = ad_errf(err, errlen, AD_EINVAL, "%s: detectors[%d].training."
                                 "features: differ from the model's", path, i);
                    goto fail;
                }
        } else {
            d->T = d->c->window_length;
            d->F = d->c->features.n;
            d->features = d->c->features.v;
        }
        snprintf(pp, sizeof pp, "detectors[%d].payload", i);
        if ((rc = ad_payload_parser_new(&d->parser, &d->c->payload,
                                        (const char *const *)d->features, d->F, pp,
                                        e2, sizeof e2))) {
            rc = ad_errf(err, errlen, rc, "%s: %s", path, e2);
            goto fail;
        }
        /* the detector settings against the model (metric of method model...) */
        if ((rc = ad_detector_new(&probe, &d->c->pipe, "check", d->mr ? d->mr->m : NULL,
                                  d->T, d->F, (const char *const *)d->features,
                                  e2, sizeof e2))) {
            rc = ad_errf(err, errlen, rc, "%s: detectors[%d]: %s", path, i, e2);
            goto fail;
        }
        ad_detector_free(probe);
        if (g->cfg->state_dir)
            snprintf(d->state_dir, sizeof d->state_dir, "%s/%s", g->cfg->state_dir, d->c->name);
    }
    *out = g;
    return 0;
fail:
    gen_free(g);
    return rc;
}

int ad_daemon_check(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    gen *g = NULL;
    int rc = gen_load(&g, path, err, errlen);
    size_t o = 0;
    if (rc)
        return rc;
    if (out && outlen) {
        out[0] = '\0';
        for (int i = 0; i < g->n && o < outlen; i++) {
            det_rt *d = &g->dets[i];
            o += (size_t)snprintf(out + o, outlen - o,
                                  "detector %s: model %s (id %s), window %d, %d features, "
                                  "%d topic filter(s), payload %s\n", d->c->name,
                                  d->c->model ? d->c->model : "(bootstrap)",
                                  d->mr ? d->mr->m->id : "-", d->T, d->F, d->c->topics.n,
                                  d->c->payload.format == AD_FMT_NUMBER ? "number" :
                                  d->c->payload.format == AD_FMT_JSON ? "json" : "senml");
        }
    }
    gen_free(g);
    return 0;
}

/* ---- stream map ------------------------------------------------------------ */

static stream_rec *map_find(stream_map *m, const char *key, uint64_t h)
{
    if (!m->nb) return NULL;
    for (stream_rec *s = m->b[h & (m->nb - 1)]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

static int map_add(stream_map *m, stream_rec *s)
{
    if (m->n + 1 > m->nb / 2 * 1 + m->nb / 4 || !m->nb) {   /* load <= 0.75 */
        size_t nb = m->nb ? m->nb * 2 : 64;
        stream_rec **b = calloc(nb, sizeof *b);
        if (!b) return AD_ENOMEM;
        for (size_t i = 0; i < m->nb; i++)
            for (stream_rec *x = m->b[i], *n; x; x = n) {
                n = x->hnext;
                x->hnext = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
            }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    s->hnext = m->b[s->hash & (m->nb - 1)];
    m->b[s->hash & (m->nb - 1)] = s;
    m->n++;
    return 0;
}

static void map_del(stream_map *m, stream_rec *s)
{
    stream_rec **pp = &m->b[s->hash & (m->nb - 1)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        m->n--;
    }
}

#define MAP_FOREACH(m, s) \
    for (size_t _i = 0; _i < (m)->nb; _i++) \
        for (stream_rec *s = (m)->b[_i], *_n = s ? s->hnext : NULL; s; \
             s = _n, _n = s ? s->hnext : NULL)

/* ---- state files -------------------------------------------------------------- */

static void state_path(const det_rt *d, const char *key, const char *suffix, char *out, size_t len)
{
    char esc[3 * KEY_MAX + 8];
    escape_key(key, esc, sizeof esc);
    snprintf(out, len, "%s/%s%s", d->state_dir, esc, suffix);
}

static void trained_path(const det_rt *d, const char *key, char *out, size_t len)
{
    char suffix[96];
    snprintf(suffix, sizeof suffix, ".%s.%016llx.safetensors",
             d->mr ? d->mr->m->id : "boot",
             (unsigned long long)ad_detector_cfg_hash(&d->c->pipe));
    state_path(d, key, suffix, out, len);
}

/* A stream running a model trained online (reused from the state dir) runs
 * with training "none", so its detector's settings hash differs from the
 * configured one. State files always carry the configured hash: swap it on
 * the way out and back in. Returns a malloc'd string or NULL (then use js). */
static char *swap_hash(const char *js, uint64_t from, uint64_t to)
{
    cJSON *o = cJSON_Parse(js);
    cJSON *h = o ? cJSON_GetObjectItemCaseSensitive(o, "settings_hash") : NULL;
    char want[32], repl[32], *out = NULL;
    snprintf(want, sizeof want, "%016llx", (unsigned long long)from);
    snprintf(repl, sizeof repl, "%016llx", (unsigned long long)to);
    if (cJSON_IsString(h) && strcmp(h->valuestring, want) == 0 &&
        cJSON_SetValuestring(h, repl))
        out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

static uint64_t trained_cfg_hash(const det_rt *d)
{
    ad_detector_cfg c = d->c->pipe;
    c.training = AD_TRAIN_NONE;
    return ad_detector_cfg_hash(&c);
}

static void save_state(ad_daemon *dd, stream_rec *s)
{
    char path[8192], *js;
    if (!s->det || !s->det->state_dir[0] || !s->d)
        return;
    if (!(js = ad_detector_save(s->d)))
        return;                     /* not calibrated yet */
    if (s->own_model) {
        char *sw = swap_hash(js, trained_cfg_hash(s->det), ad_detector_cfg_hash(&s->det->c->pipe));
        if (sw) { free(js); js = sw; }
    }
    state_path(s->det, s->key, ".state.json", path, sizeof path);
    if (state_write(dd, path, js) != 0)
        ad_log(AD_LOG_WARNING, "state: cannot write %s: out of memory", path);
}

static void restore_state(ad_daemon *dd, stream_rec *s)
{
    char path[8192], err[256], *js;
    if (!s->det->state_dir[0])
        return;
    state_path(s->det, s->key, ".state.json", path, sizeof path);
    if (!(js = state_pending(dd, path)) && !(js = read_file(path)))
        return;
    if (s->own_model) {
        char *sw = swap_hash(js, ad_detector_cfg_hash(&s->det->c->pipe), trained_cfg_hash(s->det));
        if (sw) { free(js); js = sw; }
    }
    if (ad_detector_restore(s->d, js, err, sizeof err) == 0)
        ad_log(AD_LOG_DEBUG, "stream %s/%s: calibration restored from %s", s->det->c->name,
               s->key, path);
    else
        ad_log(AD_LOG_INFO, "stream %s/%s: saved calibration not reused (%s); recalibrating",
               s->det->c->name, s->key, err);
    free(js);
}

/* ---- publishing ------------------------------------------------------------------ */

static void publish_json(ad_daemon *dd, const char *topic, cJSON *o, int qos, int retain)
{
    char *txt = cJSON_PrintUnformatted(o);
    if (txt) {
        ad_mqtt_publish(dd->mqtt, topic, txt, strlen(txt), qos, retain);
        free(txt);
    }
}

static const char *model_id_of(stream_rec *s)
{
    const ad_model *m = s->d ? ad_detector_model(s->d) : NULL;
    return m && m->id[0] ? m->id : "";
}

static void publish_state(ad_daemon *dd, stream_rec *s)
{
    det_rt *d = s->det;
    ad_detector_stats st;
    char topic[1024], iso[40];
    cJSON *o;
    if (!s->d || !d->c->state_topic)
        return;
    if (ad_topic_expand(d->c->state_topic, d->c->name, s->key, topic, sizeof topic) < 0)
        return;
    ad_detector_get_stats(s->d, &st);
    iso_ms((int64_t)wall_ms(), iso, sizeof iso);
    if (!(o = cJSON_CreateObject()))
        return;
    cJSON_AddStringToObject(o, "detector", d->c->name);
    cJSON_AddStringToObject(o, "stream", s->key);
    cJSON_AddStringToObject(o, "phase", ad_phase_name(st.phase));
    cJSON_AddStringToObject(o, "state", st.alert_active ? "alert" : "normal");
    if (st.alert_active)
        cJSON_AddStringToObject(o, "alert_id", st.alert_id);
    else
        cJSON_AddNullToObject(o, "alert_id");
    if (isfinite(st.threshold))
        cJSON_AddNumberToObject(o, "threshold", st.threshold);
    else
        cJSON_AddNullToObject(o, "threshold");
    if (isfinite(st.last_smoothed))
        cJSON_AddNumberToObject(o, "score", st.last_smoothed);
    else
        cJSON_AddNullToObject(o, "score");
    cJSON_AddStringToObject(o, "model_id", model_id_of(s));
    cJSON_AddStringToObject(o, "updated", iso);
    publish_json(dd, topic, o, dd->g->cfg->broker.qos_alerts, 1);
    cJSON_Delete(o);
}

static void publish_alert(ad_daemon *dd, stream_rec *s, const ad_event *ev)
{
    det_rt *d = s->det;
    const ad_alert *a = &ev->alert;
    const char *const *names = ad_detector_features(s->d);
    char topic[1024], iso[40];
    const char *file;
    cJSON *o, *mo, *tf;
    int raised = ev->type == AD_EV_ALERT_RAISED;

    if (ad_topic_expand(d->c->alert_topic, d->c->name, s->key, topic, sizeof topic) < 0) {
        bad_input(dd, "detector %s: alert topic too long for stream %s", d->c->name, s->key);
        return;
    }
    if (!(o = cJSON_CreateObject()))
        return;
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "alert_id", a->id);
    cJSON_AddStringToObject(o, "event", raised ? "raised" : "cleared");
    cJSON_AddStringToObject(o, "detector", d->c->name);
    cJSON_AddStringToObject(o, "stream", s->key);
    mo = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(mo, "id", model_id_of(s));
    file = d->c->model ? strrchr(d->c->model, '/') : NULL;
    cJSON_AddStringToObject(mo, "file", file ? file + 1 : d->c->model ? d->c->model : "");
    cJSON_AddBoolToObject(mo, "trained_online", s->own_model != NULL ||
                          (ad_detector_model(s->d) && d->mr &&
                           ad_detector_model(s->d) != d->mr->m));
    iso_ms(ev->ts_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddNumberToObject(o, "time_ms", (double)ev->ts_ms);
    iso_ms(a->start_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "start", iso);
    cJSON_AddNumberToObject(o, "start_ms", (double)a->start_ms);
    if (a->end_ms) {
        iso_ms(a->end_ms, iso, sizeof iso);
        cJSON_AddStringToObject(o, "end", iso);
        cJSON_AddNumberToObject(o, "end_ms", (double)a->end_ms);
        cJSON_AddNumberToObject(o, "duration_s", (double)(a->end_ms - a->start_ms) / 1000.0);
    } else {
        cJSON_AddNullToObject(o, "end");
        cJSON_AddNullToObject(o, "end_ms");
        cJSON_AddNullToObject(o, "duration_s");
    }
    cJSON_AddNumberToObject(o, "score", a->peak_score);
    cJSON_AddNumberToObject(o, "threshold", a->threshold);
    cJSON_AddNumberToObject(o, "severity", a->severity);
    cJSON_AddStringToObject(o, "level", a->severity >= 2.0 ? "critical" : "warning");
    cJSON_AddStringToObject(o, "metric", ad_detector_metric_name(ad_detector_metric(s->d)));
    cJSON_AddNumberToObject(o, "windows", (double)a->windows);
    tf = cJSON_AddArrayToObject(o, "top_features");
    for (int i = 0; i < a->n_top; i++) {
        cJSON *f = cJSON_CreateObject();
        int fi = a->top_feature[i];
        if (!f) break;
        cJSON_AddStringToObject(f, "name", names && fi >= 0 && fi < ad_detector_F(s->d) ?
                                names[fi] : "?");
        cJSON_AddNumberToObject(f, "share", round(a->top_share[i] * 10000.0) / 10000.0);
        cJSON_AddItemToArray(tf, f);
    }
    iso_ms((int64_t)wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "published", iso);
    publish_json(dd, topic, o, dd->g->cfg->broker.qos_alerts, 0);
    cJSON_Delete(o);
    ad_log(AD_LOG_NOTICE, "alert %s %s: detector %s stream %s score %.4g threshold %.4g",
           a->id, raised ? "raised" : "cleared", d->c->name, s->key, a->peak_score,
           a->threshold);
    if (raised) dd->c.alerts_raised++; else dd->c.alerts_cleared++;
}

/* ---- batches -------------------------------------------------------------------- */

static void batch_run(ad_task *t, ad_worker *w);
static void batch_done(ad_task *t);

static void batch_release(ad_daemon *dd, batch *b)
{
    mr_put(b->mr);
    b->mr = NULL;
    b->next = dd->free_batches;
    dd->free_batches = b;
}

static void batch_destroy(batch *b)
{
    ad_afree(b->in);
    ad_afree(b->out);
    free(b->share);
    free(b->score);
    free(b->jobs);
    free(b->streams);
    free(b->epochs);
    free(b->t0);
    free(b);
}

static batch *batch_get(ad_daemon *dd, const ad_model *m, int metric)
{
    batch *b = NULL, **pp = &dd->free_batches;
    size_t tf = (size_t)m->window * (size_t)m->n_features;
    while (*pp) {
        if ((size_t)(*pp)->T * (size_t)(*pp)->F >= tf && (*pp)->F >= m->n_features) {
            b = *pp;
            *pp = b->next;
            break;
        }
        pp = &(*pp)->next;
    }
    if (!b) {
        int cap = dd->max_batch;     /* any model may reuse it later */
        if (!(b = calloc(1, sizeof *b)))
            return NULL;
        b->cap = cap;
        b->in = ad_aalloc(tf * (size_t)cap * sizeof(float));
        b->out = ad_aalloc(tf * (size_t)cap * sizeof(float));
        b->share = malloc((size_t)m->n_features * (size_t)cap * sizeof(float));
        b->score = malloc((size_t)cap * sizeof(double));
        b->jobs = malloc((size_t)cap * sizeof(ad_window_job));
        b->streams = malloc((size_t)cap * sizeof(stream_rec *));
        b->epochs = malloc((size_t)cap * sizeof(uint32_t));
        b->t0 = malloc((size_t)cap * sizeof(uint64_t));
        if (!b->in || !b->out || !b->share || !b->score || !b->jobs || !b->streams ||
            !b->epochs || !b->t0) {
            batch_destroy(b);
            return NULL;
        }
        b->T = m->window;
        b->F = m->n_features;
    }
    b->task.run = batch_run;
    b->task.done = batch_done;
    b->dd = dd;
    b->model = m;
    b->T = m->window;
    b->F = m->n_features;
    b->metric = metric;
    b->limit = ad_batch_cap(m, b->cap);
    b->n = 0;
    b->done = 0;
    b->next = NULL;
    b->slot = NULL;
    return b;
}

static void batch_run(ad_task *t, ad_worker *w)
{
    batch *b = (batch *)t;
    size_t tf = (size_t)b->T * (size_t)b->F;
    ad_engine *e = ad_workers_engine(w, b->model, b->key);
    if (!e || ad_engine_forward(e, b->in, b->out, b->n) != 0) {
        for (int i = 0; i < b->n; i++)
            b->score[i] = NAN;
        return;
    }
    for (int i = 0; i < b->n; i++) {
        float mse, mae;
        ad_recon_error(b->in + tf * (size_t)i, b->out + tf * (size_t)i, b->T, b->F,
                       (ad_metric)b->metric, &mse, &mae, b->share + (size_t)b->F * (size_t)i);
        b->score[i] = b->metric == AD_METRIC_MSE ? mse : mae;
    }
}

static void submit_batch(ad_daemon *dd, batch *b)
{
    /* unlink from the open list and its owner */
    batch **pp = &dd->open_list;
    while (*pp && *pp != b) pp = &(*pp)->next;
    if (*pp) *pp = b->next;
    if (b->slot && *b->slot == b) *b->slot = NULL;
    b->slot = NULL;
    b->next = NULL;
    if (dd->fifo_tail) dd->fifo_tail->next = b; else dd->fifo_head = b;
    dd->fifo_tail = b;
    dd->in_flight_batches++;
    dd->c.batches++;
    dd->c.batch_windows += (uint64_t)b->n;
    ad_workers_submit(dd->ws, &b->task);
}

static void dispatch(ad_daemon *dd, int force)
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

static int handle_events(ad_daemon *dd, stream_rec *s);
static void stream_maybe_free(ad_daemon *dd, stream_rec *s);

/* Pull every due window of s into the open batch of its model. */
static void pull_windows(ad_daemon *dd, stream_rec *s)
{
    static float *scratch;
    static size_t scratch_len;
    for (;;) {
        const ad_model *m = ad_detector_model(s->d);
        batch *b, **slot;
        ad_window_job job;
        float *buf;
        int r;

        if (!m) {
            size_t need = (size_t)ad_detector_T(s->d) * (size_t)ad_detector_F(s->d);
            if (scratch_len < need) {
                free(scratch);
                scratch = malloc(need * sizeof(float));
                scratch_len = scratch ? need : 0;
                if (!scratch) return;
            }
            if (!ad_detector_next_window(s->d, scratch, &job))
                break;
            continue;       /* bootstrap collecting: nothing to score */
        }
        slot = (s->det && s->det->mr && m == s->det->mr->m) ? &s->det->mr->open : &s->open;
        b = *slot;
        if (b && b->n >= b->limit) {
            submit_batch(dd, b);
            b = NULL;
        }
        if (!b) {
            if (!(b = batch_get(dd, m, ad_detector_metric(s->d)))) {
                ad_log(AD_LOG_ERR, "out of memory for a batch");
                return;
            }
            if (slot == &s->open) {
                b->mr = NULL;
                b->key = (1ull << 63) | (s->serial << 20) | (job.gen & 0xFFFFF);
            } else {
                b->mr = mr_get(s->det->mr);
                b->key = b->mr->key;
            }
            b->slot = slot;
            *slot = b;
            b->next = dd->open_list;
            dd->open_list = b;
        }
        buf = b->in + (size_t)b->n * (size_t)b->T * (size_t)b->F;
        r = ad_detector_next_window(s->d, buf, &job);
        if (!r)
            break;
        if (slot == &s->open)
            b->key = (1ull << 63) | (s->serial << 20) | (job.gen & 0xFFFFF);
        b->jobs[b->n] = job;
        b->streams[b->n] = s;
        b->epochs[b->n] = s->epoch;
        arrival_clock(dd);
        b->t0[b->n] = dd->arr_hr_ns;
        b->n++;
        s->inflight++;
    }
    handle_events(dd, s);
}

static void feed_batch(ad_daemon *dd, batch *b)
{
    uint64_t now = uv_hrtime();
    for (int i = 0; i < b->n; i++) {
        stream_rec *s = b->streams[i];
        s->inflight--;
        if (s->dead || !s->d || s->epoch != b->epochs[i]) {
            dd->c.windows_stale++;
            stream_maybe_free(dd, s);
            continue;
        }
        if (ad_detector_feed_score(s->d, &b->jobs[i], b->score[i],
                                   b->share + (size_t)b->F * (size_t)i) == 0)
            dd->c.windows_scored++;
        else
            dd->c.windows_stale++;
        dd->lat_ms[dd->lat_n++ % LAT_RING] = (double)(now - b->t0[i]) / 1e6;
        handle_events(dd, s);
        stream_maybe_free(dd, s);
    }
}

static void batch_done(ad_task *t)
{
    batch *b = (batch *)t;
    ad_daemon *dd = b->dd;
    dd->model_cpu_s += t->cpu_s;
    b->done = 1;
    /* feed in submission order */
    while (dd->fifo_head && dd->fifo_head->done) {
        batch *h = dd->fifo_head;
        dd->fifo_head = h->next;
        if (!dd->fifo_head) dd->fifo_tail = NULL;
        dd->in_flight_batches--;
        feed_batch(dd, h);
        batch_release(dd, h);
    }
}

/* ---- training ---------------------------------------------------------------------- */

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
        handle_events(dd, s);
    } else {
        ad_model_free(tt->out);
    }
    ad_train_job_free(tt->job);
    stream_maybe_free(dd, s);
    free(tt);
}

static void start_training(ad_daemon *dd, stream_rec *s)
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
        trained_path(s->det, s->key, tt->save, sizeof tt->save);
    s->training = 1;
    ad_log(AD_LOG_INFO, "stream %s/%s: training (%s) on %zu rows", s->det->c->name, s->key,
           ad_train_mode_name(job->mode), job->n_rows);
    ad_workers_submit(dd->ws, &tt->task);
}

static int handle_events(ad_daemon *dd, stream_rec *s)
{
    ad_event ev;
    int state_changed = 0;
    if (!s->d || !s->det)
        return 0;
    while (ad_detector_poll_event(s->d, &ev)) {
        switch (ev.type) {
        case AD_EV_ALERT_RAISED:
        case AD_EV_ALERT_CLEARED:
            publish_alert(dd, s, &ev);
            state_changed = 1;
            break;
        case AD_EV_PHASE:
            ad_log(AD_LOG_DEBUG, "stream %s/%s: phase %s -> %s", s->det->c->name, s->key,
                   ad_phase_name(ev.prev_phase), ad_phase_name(ev.phase));
            state_changed = 1;
            break;
        case AD_EV_CALIBRATED:
            ad_log(AD_LOG_DEBUG, "stream %s/%s: threshold %.6g from %llu windows",
                   s->det->c->name, s->key, ev.threshold, (unsigned long long)ev.n);
            save_state(dd, s);
            state_changed = 1;
            break;
        case AD_EV_TRAIN_READY:
            start_training(dd, s);
            break;
        case AD_EV_TRAIN_FAILED:
            ad_log(AD_LOG_WARNING, "stream %s/%s: training failed: %s", s->det->c->name,
                   s->key, ev.text);
            break;
        case AD_EV_CALIB_FAILED:        /* logged (rate-limited) by the detector */
            break;
        case AD_EV_ACCEPTED:            /* the threshold moved: keep it */
            save_state(dd, s);
            state_changed = 1;
            break;
        }
    }
    if (state_changed)
        publish_state(dd, s);
    return state_changed;
}

/* ---- streams ------------------------------------------------------------------------- */

static void stream_retire_stats(ad_daemon *dd, stream_rec *s)
{
    ad_detector_stats st;
    if (!s->d) return;
    ad_detector_get_stats(s->d, &st);
    dd->c.retired_dropped += st.stream.dup + st.stream.ooo + st.stream.nonfinite +
                             st.stream.nonnumeric + st.stream.bad_feature + st.stream.overflow;
}

static void stream_free_now(ad_daemon *dd, stream_rec *s)
{
    stream_retire_stats(dd, s);
    ad_detector_free(s->d);
    while (s->grave) {
        old_det *o = s->grave;
        s->grave = o->next;
        ad_detector_free(o->d);
        ad_model_free(o->own);
        free(o);
    }
    ad_model_free(s->own_model);
    mr_put(s->mr);
    free(s);
}

/* Free a dead stream once nothing refers to it any more; also empties the
 * graveyard of a live one. */
static void stream_maybe_free(ad_daemon *dd, stream_rec *s)
{
    if (s->inflight || s->training)
        return;
    if (s->dead) {
        stream_rec **pp = &dd->dead;
        while (*pp && *pp != s) pp = &(*pp)->dnext;
        if (*pp) *pp = s->dnext;
        stream_free_now(dd, s);
        return;
    }
    while (s->grave) {
        old_det *o = s->grave;
        s->grave = o->next;
        ad_detector_free(o->d);
        ad_model_free(o->own);
        free(o);
    }
}

/* Remove from its detector (state saved first) and free when possible. */
static void stream_kill(ad_daemon *dd, stream_rec *s, int save)
{
    if (save)
        save_state(dd, s);
    if (s->det)
        map_del(&s->det->streams, s);
    s->det = NULL;
    s->dead = 1;
    s->epoch++;
    s->dnext = dd->dead;
    dd->dead = s;
    stream_maybe_free(dd, s);
}

/* A detector for s under the settings of s->det (reusing a model trained
 * online earlier when the state dir has one for the same base and settings). */
static int stream_make_detector(ad_daemon *dd, stream_rec *s, ad_detector **out,
                                ad_model **own, char *err, size_t errlen)
{
    det_rt *d = s->det;
    ad_detector_cfg cfg = d->c->pipe;
    const ad_model *m = d->mr ? d->mr->m : NULL;
    int rc;
    (void)dd;
    *own = NULL;
    if (cfg.training != AD_TRAIN_NONE && d->state_dir[0]) {
        char path[8192], e2[256];
        ad_model *tm = NULL;
        trained_path(d, s->key, path, sizeof path);
        if (access(path, R_OK) == 0) {
            if (ad_model_load(&tm, path, e2, sizeof e2) == 0 && tm->window == d->T &&
                tm->n_features == d->F) {
                cfg.training = AD_TRAIN_NONE;
                *own = tm;
                m = tm;
                ad_log(AD_LOG_INFO, "stream %s/%s: reusing the model trained online in %s",
                       d->c->name, s->key, path);
            } else {
                ad_model_free(tm);
            }
        }
    }
    rc = ad_detector_new(out, &cfg, s->key, m, d->T, d->F,
                         (const char *const *)d->features, err, errlen);
    if (rc) {
        ad_model_free(*own);
        *own = NULL;
        return rc;
    }
    ad_detector_set_user(*out, s);
    return 0;
}

static stream_rec *stream_get(ad_daemon *dd, det_rt *d, const char *key)
{
    uint64_t h = fnv(key);
    stream_rec *s = map_find(&d->streams, key, h);
    char err[256];
    if (s)
        return s;
    if (d->streams.n >= (size_t)d->c->max_streams) {
        d->refused++;
        dd->c.streams_refused++;
        bad_input(dd, "detector %s: stream limit %d reached, refusing new stream \"%.64s\"",
                  d->c->name, d->c->max_streams, key);
        return NULL;
    }
    {
        size_t kl = strlen(key) + 1;
        if (!(s = calloc(1, sizeof *s + kl)))
            return NULL;
        memcpy(s->key, key, kl);
    }
    s->hash = h;
    s->det = d;
    s->serial = ++dd->serial;
    s->mr = mr_get(d->mr);
    if (stream_make_detector(dd, s, &s->d, &s->own_model, err, sizeof err) != 0 ||
        map_add(&d->streams, s) != 0) {
        bad_input(dd, "detector %s: stream %s not created: %s", d->c->name, key, err);
        ad_detector_free(s->d);
        ad_model_free(s->own_model);
        mr_put(s->mr);
        free(s);
        return NULL;
    }
    restore_state(dd, s);
    ad_log(AD_LOG_DEBUG, "detector %s: new stream %s (%zu)", d->c->name, key, d->streams.n);
    /* A new stream is announced on its state topic right away (phase
     * collecting or calibrating), not only once it has calibrated. */
    if (!handle_events(dd, s))
        publish_state(dd, s);
    return s;
}

/* ---- messages ---------------------------------------------------------------------------- */

static void handle_for_detector(ad_daemon *dd, det_rt *d, const char *topic,
                                const void *payload, size_t len, double now_s)
{
    ad_sample smp[MAX_SAMPLES];
    char key[KEY_MAX], err[256];
    int n = 0, unk = 0, rc;
    stream_rec *s;

    if (ad_topic_stream_key(topic, d->c->stream_levels.v, d->c->stream_levels.n,
                            key, sizeof key) < 0) {
        dd->c.no_stream_key++;
        bad_input(dd, "detector %s: topic %.128s: no stream key at the configured levels",
                  d->c->name, topic);
        return;
    }
    rc = ad_payload_parse(d->parser, topic, payload, len, now_s, smp, MAX_SAMPLES, &n, &unk,
                          err, sizeof err);
    dd->c.unknown_fields += (uint64_t)unk;
    if (rc) {
        if (rc == AD_ENONFINITE) dd->c.nonfinite++; else dd->c.parse_errors++;
        bad_input(dd, "detector %s: topic %.128s: %s", d->c->name, topic, err);
        return;
    }
    if (!(s = stream_get(dd, d, key)))
        return;
    s->last_ms = uv_now(dd->loop);
    /* samples without a time take the arrival time, strictly increasing per
     * stream (1 ms steps within a burst) so none is dropped as a duplicate */
    {
        int64_t a = (int64_t)llround(now_s * 1000.0);
        if (a <= s->last_arrival_ms)
            a = s->last_arrival_ms + 1;
        s->last_arrival_ms = a;
        now_s = (double)a / 1000.0;
    }
    dd->c.samples += (uint64_t)n;
    if (d->c->pipe.stream.mode == AD_ASM_ROWS) {
        double vals[AD_MAX_FEATURES > 4096 ? 4096 : AD_MAX_FEATURES];
        unsigned char present[sizeof vals / sizeof vals[0]];
        double t = isnan(smp[0].time) ? now_s : smp[0].time;
        memset(present, 0, (size_t)d->F);
        for (int i = 0; i < n; i++) {
            vals[smp[i].feature] = smp[i].value;
            present[smp[i].feature] = 1;
        }
        ad_detector_push_row(s->d, (int64_t)llround(t * 1000.0), vals, present);
    } else {
        for (int i = 0; i < n; i++) {
            double t = isnan(smp[i].time) ? now_s : smp[i].time;
            ad_detector_push_sample(s->d, (int64_t)llround(t * 1000.0), smp[i].feature,
                                    smp[i].value);
        }
    }
    pull_windows(dd, s);
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len)
{
    ad_daemon *dd = ud;
    gen *g = dd->g;
    int matched = 0;
    double now_s;

    dd->c.messages_in++;
    if (dd->stopping) {
        dd->c.ignored_stopping++;
        return;
    }
    if (len > (size_t)g->cfg->max_payload) {
        dd->c.oversized++;
        bad_input(dd, "topic %.128s: %zu-byte payload over max_payload_bytes %d, dropped",
                  topic, len, g->cfg->max_payload);
        return;
    }
    arrival_clock(dd);
    now_s = (double)dd->arr_wall_ms / 1000.0;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        for (int j = 0; j < d->c->topics.n; j++) {
            if (ad_topic_match(d->c->topics.v[j], topic)) {
                matched = 1;
                handle_for_detector(dd, d, topic, payload, len, now_s);
                break;
            }
        }
    }
    if (!matched) {
        dd->c.no_detector++;
        bad_input(dd, "topic %.128s matches no detector", topic);
    }
}

/* ---- status and stats ----------------------------------------------------------------------- */

static char *status_json(ad_daemon *dd, const char *state)
{
    cJSON *o = cJSON_CreateObject();
    char *s;
    char host[256] = "";
    if (!o) return NULL;
    gethostname(host, sizeof host - 1);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddStringToObject(o, "version", AD_VERSION);
    cJSON_AddStringToObject(o, "started", dd->started_iso);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "host", host);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The k-th smallest of v[0..n-1] (0-based), partially reordering v:
 * Hoare's selection, O(n) on average (percentiles of the latency ring at
 * every stats tick without sorting it). */
static double select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                double t = v[i]; v[i] = v[j]; v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return v[k];
}

static void publish_stats(ad_daemon *dd)
{
    gen *g = dd->g;
    ad_mqtt_stats ms;
    cJSON *o, *inf, *cpu, *mq, *dets, *lj;
    uint64_t dropped = dd->c.retired_dropped, calibrating = 0, detecting = 0, collecting = 0;
    uint64_t active = 0, streams = 0;
    double *lat = malloc(LAT_RING * sizeof(double));
    size_t nl = dd->lat_n < LAT_RING ? (size_t)dd->lat_n : LAT_RING;
    struct rusage ru;
    double proc_cpu, p50 = 0, p90 = 0, p99 = 0, pmax = 0;
    char iso[40];

    if (!lat || !(o = cJSON_CreateObject())) {
        free(lat);
        return;
    }
    dets = cJSON_CreateArray();
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        cJSON *dj = cJSON_CreateObject();
        MAP_FOREACH(&d->streams, s) {
            ad_detector_summary st;
            ad_detector_summarize(s->d, &st);
            dropped += st.dropped;
            calibrating += st.phase == AD_PHASE_CALIBRATING;
            detecting += st.phase == AD_PHASE_DETECTING;
            collecting += st.phase == AD_PHASE_COLLECTING || st.phase == AD_PHASE_TRAINING;
            active += st.alert_active != 0;
        }
        streams += d->streams.n;
        cJSON_AddStringToObject(dj, "name", d->c->name);
        cJSON_AddNumberToObject(dj, "streams", (double)d->streams.n);
        cJSON_AddNumberToObject(dj, "streams_refused", (double)d->refused);
        cJSON_AddNumberToObject(dj, "streams_evicted", (double)d->evicted);
        cJSON_AddItemToArray(dets, dj);
    }
    ad_mqtt_get_stats(dd->mqtt, &ms);
    iso_ms((int64_t)wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddNumberToObject(o, "uptime_s", (double)(uv_now(dd->loop) - dd->started_ms) / 1000.0);
    cJSON_AddNumberToObject(o, "messages_in", (double)dd->c.messages_in);
    cJSON_AddNumberToObject(o, "parse_errors", (double)dd->c.parse_errors);
    cJSON_AddNumberToObject(o, "nonfinite", (double)dd->c.nonfinite);
    cJSON_AddNumberToObject(o, "unknown_fields", (double)dd->c.unknown_fields);
    cJSON_AddNumberToObject(o, "oversized", (double)dd->c.oversized);
    cJSON_AddNumberToObject(o, "no_detector", (double)dd->c.no_detector);
    cJSON_AddNumberToObject(o, "no_stream_key", (double)dd->c.no_stream_key);
    cJSON_AddNumberToObject(o, "samples", (double)dd->c.samples);
    cJSON_AddNumberToObject(o, "dropped_samples", (double)dropped);
    cJSON_AddNumberToObject(o, "streams", (double)streams);
    cJSON_AddNumberToObject(o, "streams_refused", (double)dd->c.streams_refused);
    cJSON_AddNumberToObject(o, "streams_evicted", (double)dd->c.streams_evicted);
    cJSON_AddNumberToObject(o, "collecting_streams", (double)collecting);
    cJSON_AddNumberToObject(o, "calibrating_streams", (double)calibrating);
    cJSON_AddNumberToObject(o, "detecting_streams", (double)detecting);
    cJSON_AddNumberToObject(o, "windows_scored", (double)dd->c.windows_scored);
    cJSON_AddNumberToObject(o, "windows_stale", (double)dd->c.windows_stale);
    cJSON_AddNumberToObject(o, "alerts_raised", (double)dd->c.alerts_raised);
    cJSON_AddNumberToObject(o, "alerts_cleared", (double)dd->c.alerts_cleared);
    cJSON_AddNumberToObject(o, "alerts_active", (double)active);
    cJSON_AddNumberToObject(o, "trainings", (double)dd->c.trainings);
    cJSON_AddNumberToObject(o, "training_failures", (double)dd->c.training_failures);
    inf = cJSON_AddObjectToObject(o, "inference");
    cJSON_AddNumberToObject(inf, "batches", (double)dd->c.batches);
    cJSON_AddNumberToObject(inf, "mean_batch", dd->c.batches ?
                            (double)dd->c.batch_windows / (double)dd->c.batches : 0);
    cJSON_AddNumberToObject(inf, "workers", ad_workers_count(dd->ws));
    lj = cJSON_AddObjectToObject(inf, "latency_ms");
    if (nl) {
        memcpy(lat, dd->lat_ms, nl * sizeof(double));
        p50 = select_kth(lat, nl, nl / 2);
        p90 = select_kth(lat, nl, (size_t)((double)nl * 0.9));
        p99 = select_kth(lat, nl, (size_t)((double)nl * 0.99));
        pmax = lat[0];
        for (size_t i = 1; i < nl; i++)
            if (lat[i] > pmax) pmax = lat[i];
    }
    cJSON_AddNumberToObject(lj, "p50", p50);
    cJSON_AddNumberToObject(lj, "p90", p90);
    cJSON_AddNumberToObject(lj, "p99", p99);
    cJSON_AddNumberToObject(lj, "max", pmax);
    getrusage(RUSAGE_SELF, &ru);
    proc_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    cpu = cJSON_AddObjectToObject(o, "cpu_s");
    cJSON_AddNumberToObject(cpu, "process", proc_cpu);
    cJSON_AddNumberToObject(cpu, "workers", dd->model_cpu_s);
    cJSON_AddNumberToObject(cpu, "model_share", proc_cpu > 0 ? dd->model_cpu_s / proc_cpu : 0);
    cJSON_AddNumberToObject(o, "max_rss_kb", (double)ru.ru_maxrss);
    mq = cJSON_AddObjectToObject(o, "mqtt");
    cJSON_AddBoolToObject(mq, "connected", ms.connected);
    cJSON_AddNumberToObject(mq, "connects", (double)ms.connects);
    cJSON_AddNumberToObject(mq, "connect_failures", (double)ms.connect_failures);
    cJSON_AddNumberToObject(mq, "fast_path", (double)ms.fast_path);
    cJSON_AddNumberToObject(mq, "published", (double)ms.published);
    cJSON_AddNumberToObject(mq, "queued", (double)ms.queued);
    cJSON_AddNumberToObject(mq, "queue_dropped", (double)ms.queue_dropped);
    cJSON_AddItemToObject(o, "detectors", dets);
    if (g->cfg->broker.stats_topic)
        publish_json(dd, g->cfg->broker.stats_topic, o, 0, 0);
    ad_notify_status("%llu streams, %llu msgs, %llu windows scored, %llu alerts, p99 %.1f ms",
                     (unsigned long long)streams, (unsigned long long)dd->c.messages_in,
                     (unsigned long long)dd->c.windows_scored,
                     (unsigned long long)dd->c.alerts_raised, p99);
    cJSON_Delete(o);
    free(lat);
}

static void stats_cb(uv_timer_t *t)
{
    publish_stats(t->data);
}

static void arm_stats(ad_daemon *dd)
{
    double iv = dd->g->cfg->broker.stats_interval;
    uv_timer_stop(&dd->stats_timer);
    if (iv > 0)
        uv_timer_start(&dd->stats_timer, stats_cb, (uint64_t)(iv * 1000), (uint64_t)(iv * 1000));
}

/* Housekeeping every 250 ms: period-mode rows, idle eviction, backpressure. */
static void house_cb(uv_timer_t *t)
{
    ad_daemon *dd = t->data;
    gen *g = dd->g;
    uint64_t now = uv_now(dd->loop);
    int64_t wall = (int64_t)wall_ms();
    static uint64_t last_evict;
    int evict = now - last_evict >= 1000;

    if (dd->stopping)
        return;
    if (evict) last_evict = now;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        int period = d->c->pipe.stream.mode == AD_ASM_PERIOD;
        uint64_t idle_ms = (uint64_t)(d->c->idle_evict * 1000);
        if (!period && !(evict && idle_ms))
            continue;
        MAP_FOREACH(&d->streams, s) {
            if (evict && idle_ms && now - s->last_ms > idle_ms && !s->training) {
                d->evicted++;
                dd->c.streams_evicted++;
                ad_log(AD_LOG_INFO, "detector %s: stream %s idle for %.0f s, evicted",
                       d->c->name, s->key, d->c->idle_evict);
                stream_kill(dd, s, 1);
                continue;
            }
            if (period) {
                ad_detector_advance(s->d, wall);
                pull_windows(dd, s);
            }
        }
    }
}

/* Messages read in one loop iteration arrived together: they share one
 * arrival time (wall clock for samples without a timestamp, monotonic for
 * the inference latency), like uv_now() is one time per iteration. */
static void arrival_clock(ad_daemon *dd)
{
    if (!dd->arr_valid) {
        dd->arr_wall_ms = wall_ms();
        dd->arr_hr_ns = uv_hrtime();
        dd->arr_valid = 1;
    }
}

static void prepare_cb(uv_prepare_t *p)
{
    ((ad_daemon *)p->data)->arr_valid = 0;
}

static void check_cb(uv_check_t *c)
{
    ad_daemon *dd = c->data;
    int nw = ad_workers_count(dd->ws);
    dd->arr_valid = 0;
    dispatch(dd, 0);
    /* backpressure: stop reading MQTT while the workers are far behind */
    if (!dd->paused && dd->in_flight_batches > 4 * nw) {
        dd->paused = 1;
        ad_mqtt_pause(dd->mqtt, 1);
    } else if (dd->paused && dd->in_flight_batches <= 2 * nw) {
        dd->paused = 0;
        ad_mqtt_pause(dd->mqtt, 0);
    }
}

/* ---- MQTT callbacks ---------------------------------------------------------------------------- */

static void update_subscriptions(ad_daemon *dd)
{
    gen *g = dd->g;
    char **v;
    int n = 0, cap = 0;
    for (int i = 0; i < g->n; i++) cap += g->dets[i].c->topics.n;
    if (!(v = calloc((size_t)cap + 1, sizeof *v)))
        return;
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->dets[i].c->topics.n; j++) {
            int dup = 0;
            for (int k = 0; k < n; k++) dup |= strcmp(v[k], g->dets[i].c->topics.v[j]) == 0;
            if (!dup) v[n++] = g->dets[i].c->topics.v[j];
        }
    ad_mqtt_set_subscriptions(dd->mqtt, v, n, g->cfg->broker.qos_subscribe);
    free(v);
}

static void on_connected(void *ud, int session_present)
{
    ad_daemon *dd = ud;
    (void)session_present;
    if (!dd->ready_sent) {
        dd->ready_sent = 1;
        ad_notify_ready();
        ad_log(AD_LOG_NOTICE, "anomalyd %s running: %d detector(s), %d worker(s)",
               AD_VERSION, dd->g->n, ad_workers_count(dd->ws));
    }
    ad_notify_status("connected to %s:%d", dd->g->cfg->broker.host, dd->g->cfg->broker.port);
}

static void on_disconnected(void *ud, const char *why)
{
    (void)ud;
    ad_notify_status("disconnected from the broker: %s; reconnecting", why);
}

/* ---- reload --------------------------------------------------------------------------------------- */

typedef struct reload_req {
    uv_work_t w;
    ad_daemon *dd;
    gen *g;
    char path[4096];
    int rc;
    char err[1024];
} reload_req;

static void reload_work(uv_work_t *w)
{
    reload_req *r = w->data;
    r->rc = gen_load(&r->g, r->path, r->err, sizeof r->err);
}

static int same_model(const det_rt *a, const det_rt *b)
{
    if (!a->mr || !b->mr)
        return !a->mr && !b->mr;
    return strcmp(a->mr->m->id, b->mr->m->id) == 0;
}

static int same_shape(const det_rt *a, const det_rt *b)
{
    if (a->T != b->T || a->F != b->F) return 0;
    for (int f = 0; f < a->F; f++)
        if (strcmp(a->features[f], b->features[f])) return 0;
    return 1;
}

/* Move the streams of old detector o into n, adapting them to n's settings. */
static void adopt_streams(ad_daemon *dd, det_rt *o, det_rt *n)
{
    int same_pipe = ad_detconf_same_pipeline(o->c, n->c);
    int same_m = same_model(o, n);
    int shape = same_shape(o, n);
    int kept = 0, remodel = 0, rebuilt = 0, lost = 0;
    char err[256];

    if (same_m && o->mr && n->mr) {
        /* identical file: keep the loaded model (streams and batches use it) */
        mr_put(n->mr);
        n->mr = mr_get(o->mr);
        n->features = n->mr->m->features;
    }
    n->streams = o->streams;
    memset(&o->streams, 0, sizeof o->streams);
    MAP_FOREACH(&n->streams, s) {
        s->det = n;
        if (same_pipe && same_m) {
            kept++;
            continue;
        }
        save_state(dd, s);
        if (same_pipe && shape && n->mr && n->c->pipe.training == AD_TRAIN_NONE &&
            !s->own_model && ad_detector_set_model(s->d, n->mr->m, 0, err, sizeof err) == 0) {
            mr_put(s->mr);
            s->mr = mr_get(n->mr);
            restore_state(dd, s);
            remodel++;
            handle_events(dd, s);
            continue;
        }
        {
            ad_detector *nd = NULL;
            ad_model *own = NULL;
            if (stream_make_detector(dd, s, &nd, &own, err, sizeof err) != 0) {
                ad_log(AD_LOG_ERR, "reload: detector %s stream %s: %s; stream dropped",
                       n->c->name, s->key, err);
                stream_kill(dd, s, 0);
                lost++;
                continue;
            }
            old_det *od = calloc(1, sizeof *od);
            if (od) {
                od->d = s->d;
                od->own = s->own_model;
                od->next = s->grave;
                s->grave = od;
            } else {
                /* cannot defer: only safe when nothing is in flight */
                ad_detector_free(s->d);
                ad_model_free(s->own_model);
            }
            s->d = nd;
            s->own_model = own;
            s->epoch++;
            mr_put(s->mr);
            s->mr = mr_get(n->mr);
            restore_state(dd, s);
            rebuilt++;
            handle_events(dd, s);
            stream_maybe_free(dd, s);
        }
    }
    if (kept + remodel + rebuilt + lost)
        ad_log(AD_LOG_INFO, "reload: detector %s: %d stream(s) kept, %d with the new model, "
               "%d rebuilt for new settings, %d dropped", n->c->name, kept, remodel, rebuilt,
               lost);
}

static void apply_gen(ad_daemon *dd, gen *ng)
{
    gen *og = dd->g;
    /* windows of the open batches were taken under the old settings */
    dispatch(dd, 1);
    for (int i = 0; i < ng->n; i++) {
        det_rt *n = &ng->dets[i];
        if (n->state_dir[0] && mkdir_p(n->state_dir) != 0) {
            ad_log(AD_LOG_WARNING, "state directory %s: %s; state not kept", n->state_dir,
                   strerror(errno));
            n->state_dir[0] = '\0';
        }
        for (int j = 0; j < og->n; j++)
            if (strcmp(og->dets[j].c->name, n->c->name) == 0)
                adopt_streams(dd, &og->dets[j], n);
    }
    for (int j = 0; j < og->n; j++) {
        det_rt *o = &og->dets[j];
        if (o->streams.n)
            ad_log(AD_LOG_INFO, "reload: detector %s removed, %zu stream(s) dropped",
                   o->c->name, o->streams.n);
        MAP_FOREACH(&o->streams, s)
            stream_kill(dd, s, 1);
    }
    dd->g = ng;
    gen_free(og);
    update_subscriptions(dd);
    arm_stats(dd);
}

static void reload_after(uv_work_t *w, int status)
{
    reload_req *r = w->data;
    ad_daemon *dd = r->dd;
    char err[512];
    dd->reloading = 0;
    if (status == 0 && r->rc == 0 && dd->stopping) {
        gen_free(r->g);
    } else if (status != 0 || r->rc != 0) {
        ad_log(AD_LOG_ERR, "reload failed, keeping the running configuration: %s",
               r->rc ? r->err : uv_strerror(status));
    } else if (ad_config_reload_ok(dd->g->cfg, r->g->cfg, err, sizeof err) != 0) {
        ad_log(AD_LOG_ERR, "reload refused, keeping the running configuration: %s", err);
        gen_free(r->g);
    } else {
        apply_gen(dd, r->g);
        ad_log(AD_LOG_NOTICE, "configuration reloaded from %s", dd->path);
    }
    ad_notify_ready();
    free(r);
}

static void on_sighup(uv_signal_t *h, int sig)
{
    ad_daemon *dd = h->data;
    reload_req *r;
    (void)sig;
    if (dd->stopping)
        return;
    if (dd->reloading) {
        ad_log(AD_LOG_WARNING, "SIGHUP: a reload is already running");
        return;
    }
    if (!(r = calloc(1, sizeof *r)))
        return;
    r->dd = dd;
    r->w.data = r;
    snprintf(r->path, sizeof r->path, "%s", dd->path);
    ad_notify_reloading();
    ad_log(AD_LOG_NOTICE, "SIGHUP: reloading %s", dd->path);
    dd->reloading = 1;
    if (uv_queue_work(dd->loop, &r->w, reload_work, reload_after) != 0) {
        dd->reloading = 0;
        free(r);
        ad_notify_ready();
    }
}

/* ---- shutdown ------------------------------------------------------------------------------------- */

static void close_cb_noop(uv_handle_t *h) { (void)h; }

static void on_mqtt_stopped(void *ud)
{
    ad_daemon *dd = ud;
    uv_close((uv_handle_t *)&dd->sig_hup, close_cb_noop);
    uv_close((uv_handle_t *)&dd->sig_term, close_cb_noop);
    uv_close((uv_handle_t *)&dd->sig_int, close_cb_noop);
    uv_close((uv_handle_t *)&dd->stats_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->house_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->drain_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->check, close_cb_noop);
    uv_close((uv_handle_t *)&dd->prepare, close_cb_noop);
    ad_workers_free(dd->ws);        /* nothing pending: drained before the stop */
    dd->ws = NULL;
    ad_notify_close();
    ad_log(AD_LOG_NOTICE, "stopped");
}

static int open_windows(const ad_daemon *dd)
{
    for (const batch *b = dd->open_list; b; b = b->next)
        if (b->n > 0)
            return 1;
    return 0;
}

static void drain_cb(uv_timer_t *t)
{
    ad_daemon *dd = t->data;
    gen *g = dd->g;
    dispatch(dd, 1);
    if (ad_workers_pending(dd->ws) > 0 || open_windows(dd) || dd->reloading) {
        if (uv_now(dd->loop) - dd->stop_ms < 30000)
            return;
        ad_log(AD_LOG_WARNING, "stop: work still pending after 30 s, stopping anyway");
    }
    uv_timer_stop(t);
    for (int i = 0; i < g->n; i++)
        MAP_FOREACH(&g->dets[i].streams, s)
            save_state(dd, s);
    publish_stats(dd);
    ad_mqtt_stop(dd->mqtt, 5000);
}

static void on_sigterm(uv_signal_t *h, int sig)
{
    ad_daemon *dd = h->data;
    if (dd->stopping) {
        ad_log(AD_LOG_WARNING, "second signal %d: exiting now", sig);
        exit(1);
    }
    dd->stopping = 1;
    dd->stop_ms = uv_now(dd->loop);
    dd->cancel = 1;
    ad_notify_stopping();
    ad_log(AD_LOG_NOTICE, "signal %d: finishing in-flight windows and stopping", sig);
    uv_timer_start(&dd->drain_timer, drain_cb, 0, 20);
}

/* ---- run -------------------------------------------------------------------------------------------- */

int ad_daemon_run(const char *path)
{
    ad_daemon *dd;
    uv_loop_t loop;
    char err[1024], *pw = NULL, *online = NULL, *offline = NULL;
    ad_mqtt_cb cb = { on_connected, on_disconnected, on_message, on_mqtt_stopped };
    int rc, status = 1;

    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)(wall_ms() ^ (uint64_t)getpid()));
    if (!(dd = calloc(1, sizeof *dd)))
        return 1;
    dd->path = realpath(path, NULL);
    if (!dd->path)
        dd->path = strdup(path);
    if ((rc = gen_load(&dd->g, dd->path, err, sizeof err)) != 0) {
        ad_log(AD_LOG_ERR, "%s", err);
        free(dd->path);
        free(dd);
        return 1;
    }
    dd->max_batch = dd->g->cfg->max_batch;
    uv_loop_init(&loop);
    dd->loop = &loop;
    dd->started_ms = uv_now(&loop);
    iso_ms((int64_t)wall_ms(), dd->started_iso, sizeof dd->started_iso);
    for (int i = 0; i < dd->g->n; i++) {
        det_rt *d = &dd->g->dets[i];
        if (d->state_dir[0] && mkdir_p(d->state_dir) != 0) {
            ad_log(AD_LOG_WARNING, "state directory %s: %s; calibration state will not be kept",
                   d->state_dir, strerror(errno));
            d->state_dir[0] = '\0';
        }
    }
    if (dd->g->cfg->broker.password_file &&
        ad_config_read_password(dd->g->cfg->broker.password_file, &pw, err, sizeof err)) {
        ad_log(AD_LOG_ERR, "broker.password_file: %s", err);
        goto out;
    }
    if ((rc = ad_workers_new(&dd->ws, &loop, dd->g->cfg->workers, dd->max_batch)) != 0) {
        ad_log(AD_LOG_ERR, "cannot start workers: %s", ad_strerror(rc));
        goto out;
    }
    if ((rc = ad_mqtt_new(&dd->mqtt, &loop, &dd->g->cfg->broker, pw, &cb, dd, err, sizeof err))) {
        ad_log(AD_LOG_ERR, "mqtt: %s", err);
        goto out;
    }
    online = status_json(dd, "online");
    offline = status_json(dd, "offline");
    if (dd->g->cfg->broker.status_topic)
        ad_mqtt_set_status(dd->mqtt, dd->g->cfg->broker.status_topic, online, offline);
    update_subscriptions(dd);

    uv_signal_init(&loop, &dd->sig_hup);
    uv_signal_init(&loop, &dd->sig_term);
    uv_signal_init(&loop, &dd->sig_int);
    dd->sig_hup.data = dd->sig_term.data = dd->sig_int.data = dd;
    uv_signal_start(&dd->sig_hup, on_sighup, SIGHUP);
    uv_signal_start(&dd->sig_term, on_sigterm, SIGTERM);
    uv_signal_start(&dd->sig_int, on_sigterm, SIGINT);
    uv_timer_init(&loop, &dd->stats_timer);
    uv_timer_init(&loop, &dd->house_timer);
    uv_timer_init(&loop, &dd->drain_timer);
    dd->stats_timer.data = dd->house_timer.data = dd->drain_timer.data = dd;
    uv_check_init(&loop, &dd->check);
    dd->check.data = dd;
    uv_check_start(&dd->check, check_cb);
    uv_prepare_init(&loop, &dd->prepare);
    dd->prepare.data = dd;
    uv_prepare_start(&dd->prepare, prepare_cb);
    arm_stats(dd);
    uv_timer_start(&dd->house_timer, house_cb, 250, 250);
    ad_notify_init(&loop);
    ad_log(AD_LOG_INFO, "connecting to %s:%d", dd->g->cfg->broker.host, dd->g->cfg->broker.port);
    ad_notify_status("connecting to %s:%d", dd->g->cfg->broker.host, dd->g->cfg->broker.port);
    ad_mqtt_start(dd->mqtt);

    uv_run(&loop, UV_RUN_DEFAULT);
    status = 0;
out:
    if (pw) { memset(pw, 0, strlen(pw)); free(pw); }
    free(online);
    free(offline);
    if (dd->ws) ad_workers_free(dd->ws);
    uv_run(&loop, UV_RUN_NOWAIT);       /* close callbacks */
    /* free everything still held (streams, batches, models) */
    for (int i = 0; i < dd->g->n; i++)
        MAP_FOREACH(&dd->g->dets[i].streams, s) {
            s->inflight = 0;
            s->training = 0;
            stream_kill(dd, s, 0);
        }
    while (dd->open_list) {
        batch *b = dd->open_list;
        dd->open_list = b->next;
        for (int i = 0; i < b->n; i++) b->streams[i]->inflight--;
        mr_put(b->mr);
        batch_destroy(b);
    }
    while (dd->free_batches) {
        batch *b = dd->free_batches;
        dd->free_batches = b->next;
        batch_destroy(b);
    }
    while (dd->dead) {
        stream_rec *s = dd->dead;
        dd->dead = s->dnext;
        stream_free_now(dd, s);
    }
    ad_mqtt_free(dd->mqtt);
    gen_free(dd->g);
    if (uv_loop_close(&loop) != 0)
        ad_log(AD_LOG_DEBUG, "loop closed with open handles");
    free(dd->path);
    free(dd);
    return status;
}
