/*
 * reload.c - SIGHUP: build a new generation (config and models) on the
 * thread pool, check that a reload may change what changed, then between
 * two messages adopt every stream of a detector that is still configured
 * (kept as is, given the new model, or rebuilt for new settings from its
 * state at the reload: its calibration, or how far it has got, when that
 * still applies, and its window rows when the new detector would have
 * made the same rows: rows_unfit), drop the streams of removed
 * detectors and those that new stream_levels or topics leave without data,
 * and swap the generation. On any failure the running
 * configuration stays and the reason is logged (nginx ngx_init_cycle).
 * A SIGHUP during a reload is coalesced: one more reload runs after it.
 *
 * Alerts: a stream kept as is continues its open alert, and so does one
 * rebuilt for settings its calibration does not depend on (same model and
 * calibration settings hash: it restores both, as a restart would). A
 * stream given a new model or rebuilt for new calibration settings closes
 * it first (a cleared event with reason model_changed or reload); a
 * stream of a removed detector
 * closes it with reason reload. A rebuilt stream's new calibration skips
 * scores above its old threshold (detector.h ad_detector_restore_alert).
 * A stream of a removed detector is gone: its Home Assistant entities are
 * deleted and its retained state topic emptied (streams_evict). So is a
 * stream that a change of stream_levels or topics leaves without data: no
 * topic its messages came on both gives its key and is subscribed any
 * more (drop_unfed). Whatever
 * alert.topic the new configuration has, an alert open across the reload
 * is cleared on the topic it was raised on (publish.c).
 *
 * Ownership: a reload_req owns the generation it loaded until apply_gen
 * hands it to the daemon (which frees the old one); streams move from the
 * old det_rt's map to the new one's.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"
#include "kafka.h"
#include "notify.h"
#include "topic.h"

#define RELOAD_SCORE_WAIT_MS 10000  /* windows in flight at a reload */

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

static void join_names(char *const *v, int n, char *out, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (int i = 0; i < n && o + 8 < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "," : "", v[i]);
    if (o >= len - 1)
        snprintf(out + len - 4, 4, "...");
}

/* Why the window rows of o's streams are not the rows n's detectors would
 * have made (why filled), or NULL when they are. Rows are kept raw, in
 * feature order (each model scales them as it takes a window: another
 * model file, scaler or set of weights does not matter); what does is the
 * features and their order, the window length T and the row assembly
 * settings (rows.*). Settings of scores, calibration, alerts, data quality
 * or learning do not change a row. */
static const char *rows_unfit(const det_rt *o, const det_rt *n, char *why, size_t len)
{
    char a[160], b[160], keys[256];
    int f = o->F == n->F;

    for (int i = 0; f && i < o->F; i++)
        f = strcmp(o->features[i], n->features[i]) == 0;
    if (!f) {
        join_names(o->features, o->F, a, sizeof a);
        join_names(n->features, n->F, b, sizeof b);
        snprintf(why, len, "the features changed (%s -> %s)", a, b);
        return why;
    }
    if (o->T != n->T) {
        snprintf(why, len, "the window length changed (%d -> %d rows)", o->T, n->T);
        return why;
    }
    if (ad_detconf_rows_diff(o->c, n->c, keys, sizeof keys)) {
        snprintf(why, len, "row assembly changed (%s)", keys);
        return why;
    }
    return NULL;
}

/* The state a rebuilt stream goes on from (state_restore_live): its
 * detector's hand-over state, which holds how far a calibration has got
 * (the state file may hold an older one) and the window rows, these taken
 * out when unfit says they do not fit the new detector (*dropped counts
 * such streams). NULL when there is nothing to save or no memory: the
 * stream restores from its state file, as before. */
static char *rebuild_text(const stream_rec *s, const char *unfit, int *dropped)
{
    /* a candidate in shadow goes on from its span and its file of the
     * state dir (without one, there is no file: not built) */
    char *js = state_text(s, SAVE_HANDOVER | (s->det && s->det->state_dir[0] ? SAVE_SPAN : 0));
    char *out = NULL;
    cJSON *o;

    if (!js || !unfit || !strstr(js, "\"window\""))
        return js;
    o = cJSON_Parse(js);
    free(js);
    if (o && cJSON_GetObjectItemCaseSensitive(o, "window")) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "window");
        if ((out = ad_json_print(o)))   /* its numbers bit for bit */
            (*dropped)++;
    }
    cJSON_Delete(o);
    return out;
}

/* Move the streams of old detector o into n, adapting them to n's settings. */
static void adopt_streams(ad_daemon *dd, det_rt *o, det_rt *n)
{
    int same_pipe = ad_detconf_same_pipeline(o->c, n->c);
    int same_m = same_model(o, n);
    int shape = same_shape(o, n);
    int kept = 0, remodel = 0, rebuilt = 0, lost = 0, shadowed = 0, waiting = 0, unfit_n = 0;
    char why[512];
    const char *unfit = rows_unfit(o, n, why, sizeof why);
    /* the state topic template changed: no ghosts left on the old one */
    int moved = o->c->state_topic && (!n->c->state_topic ||
                                      strcmp(o->c->state_topic, n->c->state_topic) != 0);
    char err[256];

    if (same_m && o->mr && n->mr) {
        /* identical file: keep the loaded model (streams and batches use it) */
        mr_put(n->mr);
        n->mr = mr_get(o->mr);
        n->features = n->mr->m->features;
    }
    n->streams = o->streams;
    memset(&o->streams, 0, sizeof o->streams);
    /* the detector's figures go on (stats, metrics: counters never go
     * back at a reload), and what it told once stays told */
    n->refused = o->refused;
    n->evicted = o->evicted;
    n->retired = o->retired;
    n->warned_unit = o->warned_unit;
    n->warned_late_held = o->warned_late_held;
    MAP_FOREACH(&n->streams, s) {
        char *live;
        int gone, hold, kept_model;

        s->det = n;
        if (moved)
            publish_state_moved(dd, s, o->c->state_topic);
        if (same_pipe && same_m) {
            kept++;
            continue;
        }
        /* another file: the one the live model was kept for is gone (a
         * shadow of the new one says so again, streams.c); the same file
         * with other settings: still the one it was kept for, and the
         * rebuilt stream restores the kept model (with the same tag) */
        kept_model = s->kept_why != KEPT_NONE;
        if (!same_m)
            s->kept_why = KEPT_NONE;
        /* reload.shadow: a detecting stream evaluates the new model file in
         * shadow; its live model, calibration and open alert continue until
         * the candidate is promoted or rejected (AD_EV_ADAPT) */
        if (same_pipe && shape && n->mr && n->c->pipe.adapt.reload_shadow && s->d &&
            n->c->pipe.training == AD_TRAIN_NONE && (!s->own_model || kept_model) &&
            ad_detector_phase(s->d) == AD_PHASE_DETECTING) {
            int rc = ad_detector_set_model(s->d, n->mr->m, 0, err, sizeof err);
            if (rc == AD_DETECTOR_SHADOW) {
                ad_detector_stats st;

                ad_detector_get_stats(s->d, &st);
                if (st.reload_waiting[0])   /* a fine-tune out, or no period yet */
                    waiting++;
                else
                    shadowed++;
                streams_events(dd, s);      /* waiting, or in shadow: said now */
                continue;
            }
            if (rc == 0) {              /* swapped after all: as below */
                if (ad_detector_close_alert(s->d, AD_CLOSE_MODEL_CHANGED))
                    streams_events(dd, s);
                mr_put(s->mr);
                s->mr = mr_get(n->mr);
                state_save(dd, s);
                remodel++;
                continue;
            }
        }
        /* the stream cannot continue its open alert: close it (cleared,
         * with the reason) before its state is saved, so neither this
         * process nor a restart closes it twice. Unless its calibration
         * still holds (the same model and calibration settings: alert
         * rules, row assembly or data quality changed): then the rebuilt
         * detector restores it and continues the alert, as a restart with
         * the same change does */
        gone = 0;
        live = NULL;
        hold = s->d && same_m && !s->own_model &&
               ad_detector_cfg_hash(&o->c->pipe) == ad_detector_cfg_hash(&n->c->pipe);
        /* what the stream goes on from: its state now, not its file
         * (without either, its alert cannot be continued) */
        if (hold && !(live = rebuild_text(s, unfit, &gone)) && !n->state_dir[0])
            hold = 0;
        if (s->d && !hold &&
            ad_detector_close_alert(s->d, same_m ? AD_CLOSE_RELOAD : AD_CLOSE_MODEL_CHANGED))
            streams_events(dd, s);
        state_save(dd, s);
        if (s->d && !hold)          /* taken once the alert is closed */
            live = rebuild_text(s, unfit, &gone);
        if (same_pipe && shape && n->mr && n->c->pipe.training == AD_TRAIN_NONE && s->d &&
            !s->own_model && ad_detector_set_model(s->d, n->mr->m, 0, err, sizeof err) == 0) {
            /* the same detector: its window rows stay in its ring */
            mr_put(s->mr);
            s->mr = mr_get(n->mr);
            state_restore_live(dd, s, RESTORE_CALIBRATION, live, err, sizeof err);
            remodel++;
            continue;
        }
        /* new settings: a new detector; the old one waits in the graveyard
         * while batches in flight may read its model */
        /* a new monitor too: the open data-quality alerts the new settings
         * still hold go on (taken over when it raises them again), the
         * others are closed; the state saved above listed them open */
        if (publish_dq_carry(dd, s, "reload") > 0)
            state_save(dd, s);
        if (streams_bury(dd, s) != 0) {
            /* its state is saved: a message brings it back from there;
             * the old detector goes with the stream, once no window of
             * it is in flight */
            ad_log(AD_LOG_ERR, "reload: detector %s: stream %s: out of memory setting "
                   "its old detector aside: stream dropped", n->c->name, s->key);
            free(live);
            streams_kill(dd, s, 0);
            lost++;
            continue;
        }
        /* without a state dir a candidate in shadow has no file to come
         * back from: the new detector goes on without it (said once) */
        if (!n->state_dir[0] && s->d &&
            ad_adapt_shadow_span(ad_detector_adapt(s->d)) != -1)
            ad_log(AD_LOG_NOTICE, "reload: detector %s: stream %s: its candidate in shadow "
                   "is dropped by the rebuild (no state_dir to keep its model in): a "
                   "fine-tune comes again at its schedule", n->c->name, s->key);
        s->epoch++;
        /* a new detector's model generations start again at 1: a new
         * serial keeps its engine keys apart from the old one's (a freed
         * model's address may be reused by the new one's) */
        s->serial = ++dd->serial;
        mr_put(s->mr);
        s->mr = mr_get(n->mr);
        if (state_restore_live(dd, s, RESTORE_REBUILD, live, err, sizeof err) != 0) {
            lost++;                 /* logged, stream killed */
        } else {
            rebuilt++;
            unfit_n += gone;
        }
    }
    if (unfit_n)
        ad_log(AD_LOG_NOTICE, "reload: detector %s: %s: the window rows of %d rebuilt "
               "stream(s) are not kept; each scores again once it has %d new rows",
               n->c->name, unfit, unfit_n, n->T);
    if (kept + remodel + rebuilt + lost + shadowed + waiting)
        ad_log(AD_LOG_INFO, "reload: detector %s: %d stream(s) kept, %d with the new model, "
               "%d evaluating it in shadow, %d waiting to (a fine-tune out or no window "
               "period yet), %d rebuilt for new settings, %d dropped",
               n->c->name, kept, remodel, shadowed, waiting, rebuilt, lost);
}

const char *reload_topics_unfed(const det_rt *d, const char *key, char *const *topics,
                                int n_topics, int topics_more)
{
    char k[KEY_MAX];
    int keyed = 0;

    /* each topic on its own: a stream fed on one topic a feature still
     * gets the features whose topics match */
    for (int i = 0; i < n_topics; i++) {
        if (ad_topic_stream_key(topics[i], d->c->stream_levels.v, d->c->stream_levels.n,
                                k, sizeof k) < 0 || strcmp(k, key) != 0)
            continue;
        keyed = 1;
        for (int j = 0; j < d->c->topics.n; j++)
            if (ad_topic_match(d->c->topics.v[j], topics[i]))
                return NULL;
    }
    if (topics_more)
        return NULL;            /* fed by topics it did not keep, perhaps */
    if (!n_topics)
        return "its topics are unknown (restored from a state file that does not name "
               "them, no message since)";
    return keyed ? "no topic its messages came on matches the new topics" :
                   "no topic its messages came on gives its key under the new stream_levels";
}

const char *reload_stream_unfed(const det_rt *d, const stream_rec *s)
{
    if (s->record_keyed)
        return NULL;
    return reload_topics_unfed(d, s->key, s->topics, s->n_topics, s->topics_more);
}

static int same_levels(const ad_detconf *a, const ad_detconf *b)
{
    return a->stream_levels.n == b->stream_levels.n &&
           (a->stream_levels.n == 0 ||
            memcmp(a->stream_levels.v, b->stream_levels.v,
                   (size_t)a->stream_levels.n * sizeof a->stream_levels.v[0]) == 0);
}

static int same_strlist(const ad_strlist *a, const ad_strlist *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return 0;
    return 1;
}

static int same_topics(const ad_detconf *a, const ad_detconf *b)
{
    return same_strlist(&a->topics, &b->topics);
}

/* A stream of o fed by Kafka whose topic n no longer consumes (the topic
 * moved to another detector: a reload keeps the set consumed, see
 * ad_config_reload_ok): why it gets no more data, or NULL. */
static const char *kafka_unfed(ad_daemon *dd, const det_rt *o, const det_rt *n,
                               const stream_rec *s)
{
    const char *t;
    if (!s->record_keyed || !(t = kafka_stream_topic(dd, o->c->name, s->key)))
        return NULL;
    for (int i = 0; i < n->c->kafka_topics.n; i++)
        if (strcmp(n->c->kafka_topics.v[i], t) == 0)
            return NULL;
    return "its Kafka topic is no longer one of the detector's kafka_topics";
}

/* stream_levels or topics of o change to n's: a stream whose key no
 * longer exists, or whose device's topics are no longer subscribed, would
 * get no more data, and its retained state and Home Assistant entities
 * would show a device that is not there until idle eviction (or for ever,
 * with idle_evict_s 0), its open alert with them. It is removed as a
 * removed detector's streams are: its open alerts cleared (reason reload),
 * its state saved, its entities deleted and its state topic emptied. The
 * device's data makes a stream under its new key, or again once its topic
 * is subscribed again. A stream whose restore is in flight (restored at
 * start for its open alert, created by a message just before, or rebuilt
 * by the reload before) has no
 * detector yet to close that alert with, and its state file may name
 * topics that still feed it: it is decided once its restore is installed
 * (state.c restore_apply); removed here, its alert stayed open until the
 * next start, and its entities (announced before a restart) stayed.
 * Before the adoption, while dd->g is still o's generation (the
 * shared-topic check of publish_state_clear sees every stream). */
static void drop_unfed(ad_daemon *dd, det_rt *o, const det_rt *n)
{
    int levels = !same_levels(o->c, n->c), topics = !same_topics(o->c, n->c);
    int kafka = !same_strlist(&o->c->kafka_topics, &n->c->kafka_topics);
    int dropped = 0, waiting = 0;
    const char *why;

    if (!levels && !topics && !kafka)
        return;
    MAP_FOREACH(&o->streams, s) {
        if (!(why = reload_stream_unfed(n, s)) && !(kafka && (why = kafka_unfed(dd, o, n, s))))
            continue;
        if (s->restoring && !s->d) {
            s->reload_check = RELOAD_CHECK_RELOAD;
            waiting++;
            continue;
        }
        ad_log(AD_LOG_INFO, "reload: detector %s: stream %s: %s, removed", o->c->name,
               s->key, why);
        streams_evict(dd, s, AD_CLOSE_RELOAD);
        dropped++;
    }
    ad_log(AD_LOG_NOTICE, "reload: detector %s: %s changed: %d stream(s) removed, "
           "%d to decide once restored, %zu kept", o->c->name,
           levels && topics ? "stream_levels and topics" : levels ? "stream_levels" :
           topics ? "topics" : "kafka_topics",
           dropped, waiting, o->streams.n - (size_t)waiting);
}

/* ad_workers_wait() predicate: every window taken so far is scored and
 * its score fed back to the detector that took it. */
static int all_scored(void *arg)
{
    ad_daemon *dd = arg;
    batch_dispatch(dd, 1);
    return dd->in_flight_batches == 0 && !batch_open_windows(dd);
}

static void apply_gen(ad_daemon *dd, gen *ng)
{
    gen *og = dd->g;
    /* windows of the open batches were taken under the old settings: they
     * are scored by the detectors that took them before any is rebuilt or
     * given a new model, which would discard their scores (windows_stale):
     * their rows are not in the new detector's window, and with Kafka
     * their offsets are committed, so they would never be scored */
    if (ad_workers_wait(dd->ws, all_scored, dd, RELOAD_SCORE_WAIT_MS) != 0)
        ad_log(AD_LOG_WARNING, "reload: windows still in flight after %d s: the scores of "
               "those of rebuilt streams are discarded (windows_stale)",
               RELOAD_SCORE_WAIT_MS / 1000);
    gen_make_state_dirs(ng);
    for (int i = 0; i < ng->n; i++)
        for (int j = 0; j < og->n; j++)
            if (strcmp(og->dets[j].c->name, ng->dets[i].c->name) == 0)
                drop_unfed(dd, &og->dets[j], &ng->dets[i]);
    for (int i = 0; i < ng->n; i++) {
        det_rt *n = &ng->dets[i];
        for (int j = 0; j < og->n; j++)
            if (strcmp(og->dets[j].c->name, n->c->name) == 0)
                adopt_streams(dd, &og->dets[j], n);
    }
    /* the new generation first: a removed detector's stream clears its
     * retained state unless a stream of the new one shares the topic */
    dd->g = ng;
    for (int j = 0; j < og->n; j++) {
        det_rt *o = &og->dets[j];
        if (o->streams.n)
            ad_log(AD_LOG_INFO, "reload: detector %s removed, %zu stream(s) dropped",
                   o->c->name, o->streams.n);
        MAP_FOREACH(&o->streams, s)
            streams_evict(dd, s, AD_CLOSE_RELOAD);
    }
    gen_free(og);
    dd_update_subscriptions(dd);
    dd_arm_stats(dd);
    ad_mqtt_set_max_queued(dd->mqtt, (size_t)ng->cfg->broker.max_queued_alerts);
    retain_reload(dd);
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
    free(r);
    if (dd->reload_again && !dd->stopping) {
        dd->reload_again = 0;
        ad_log(AD_LOG_NOTICE, "SIGHUP arrived during the reload: reloading once more");
        reload_start(dd);
        return;
    }
    dd->reload_again = 0;
    ad_notify_ready();
}

void reload_start(ad_daemon *dd)
{
    reload_req *r;
    if (dd->scan) {
        /* the scan at start restores streams of this generation */
        if (!dd->reload_again)
            ad_log(AD_LOG_NOTICE, "SIGHUP during the state scan at start: reloading after it");
        dd->reload_again = 1;
        return;
    }
    if (dd->reloading) {
        /* coalesced: the file may have changed after this reload read it */
        if (!dd->reload_again)
            ad_log(AD_LOG_NOTICE, "SIGHUP during a reload: reloading once more after it");
        dd->reload_again = 1;
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
