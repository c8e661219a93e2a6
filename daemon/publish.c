/*
 * publish.c - what the daemon publishes on MQTT: alerts (raised/cleared,
 * schema 1), each stream's retained state (again after every connect,
 * paced, with its Home Assistant discovery; emptied when the stream is
 * gone for good), the retained
 * online/offline status and the periodic statistics (also summarised to
 * systemd).
 *
 * Ownership: every JSON object is built and freed here; topics and
 * payloads are copied by mqtt.c (ad_mqtt_publish) before it returns.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#ifdef __GLIBC__                /* set by the headers above */
#include <malloc.h>
#endif

#include "command.h"
#include "daemon_int.h"
#include "homeassistant.h"
#include "metrics.h"
#include "kafka.h"
#include "notify.h"
#include "topic.h"

void publish_json(ad_daemon *dd, const char *topic, cJSON *o, int qos, int retain)
{
    char *txt = cJSON_PrintUnformatted(o);
    if (txt) {
        ad_mqtt_publish(dd->mqtt, topic, txt, strlen(txt), qos, retain);
        free(txt);
    }
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void publish_alert_json(ad_daemon *dd, stream_rec *s, const char *topic,
                               int to_kafka, const char *ktopic, cJSON *o, int defer);
static cJSON *dq_public(const cJSON *x);

/* The id of the model the stream runs, or NULL (none yet: bootstrap). */
static const char *model_id_of(stream_rec *s)
{
    const ad_model *m = s->d ? ad_detector_model(s->d) : NULL;
    return m && m->id[0] ? m->id : NULL;
}

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v) cJSON_AddStringToObject(o, k, v); else cJSON_AddNullToObject(o, k);
}

/* A data time as ISO 8601 when have, else null. */
static void add_time_or_null(cJSON *o, const char *k, int have, int64_t ms)
{
    char t[40];

    if (have) {
        ad_iso_ms(ms, t, sizeof t);
        cJSON_AddStringToObject(o, k, t);
    } else {
        cJSON_AddNullToObject(o, k);
    }
}

/* The stream runs a model trained online (bootstrap or finetune). */
static int trained_online(const stream_rec *s)
{
    const ad_model *m = ad_detector_model(s->d);
    return s->own_model != NULL || (m && (!s->det->mr || m != s->det->mr->m));
}

/* "model" of an alert event: the id of the model that scored it (the
 * stream's now, or another: an alert closed at a restart or a swap, raised
 * just before a promotion, or scored by the model a stream keeps while a
 * reloaded one is in shadow); its file when known: the configured file, or
 * for a model trained online (or promoted) the one in the state dir; else
 * null, with trained_online. */
static void add_model(cJSON *o, det_rt *d, stream_rec *s, const ad_event *ev)
{
    const ad_model *live = ad_detector_model(s->d);
    const char *cur = model_id_of(s);
    const char *id = ev->model_id[0] ? ev->model_id : cur;
    const char *file;
    cJSON *mo = cJSON_AddObjectToObject(o, "model");
    int conf = id && d->mr && d->mr->m && strcmp(d->mr->m->id, id) == 0;
    int trained = id && cur && strcmp(id, cur) == 0 && !conf &&
                  (s->own_model != NULL || live != (s->mr ? s->mr->m : NULL));

    if (mo == NULL)
        return;
    add_str_or_null(mo, "id", id);
    if (trained && d->state_dir[0]) {
        char tp[8192];
        state_trained_path(d, s->key, tp, sizeof tp);
        file = strrchr(tp, '/');
        cJSON_AddStringToObject(mo, "file", file ? file + 1 : tp);
        cJSON_AddTrueToObject(mo, "trained_online");
    } else if (conf || id == NULL) {
        file = d->c->model ? strrchr(d->c->model, '/') : NULL;
        add_str_or_null(mo, "file", file ? file + 1 : d->c->model);
        cJSON_AddBoolToObject(mo, "trained_online", id == NULL ? trained_online(s) : 0);
    } else {
        cJSON_AddNullToObject(mo, "file");
        if (trained)
            cJSON_AddTrueToObject(mo, "trained_online");
        else
            cJSON_AddNullToObject(mo, "trained_online");
    }
}

/* The kept change (alert.accept_period_ms; docs/alerts.md) as
 * "kept_change" of o: {"since","until","displacement","features":{name:
 * move in spreads}} (the features it moved, flat ones left out), null
 * while none is kept: windows over the threshold that move the rows that
 * way raise nothing until "until", and an operator sees why. */
static void kept_change_json(const stream_rec *s, cJSON *o)
{
    ad_kept_change k;
    cJSON *kc, *fe;
    char t[40];

    if (!ad_detector_kept_change(s->d, &k) || k.F != s->det->F ||
        (kc = cJSON_AddObjectToObject(o, "kept_change")) == NULL) {
        cJSON_AddNullToObject(o, "kept_change");
        return;
    }
    ad_iso_ms(k.since_ms, t, sizeof t);
    cJSON_AddStringToObject(kc, "since", t);
    ad_iso_ms(k.until_ms, t, sizeof t);
    cJSON_AddStringToObject(kc, "until", t);
    add_num_or_null(kc, "displacement", k.norm);
    if ((fe = cJSON_AddObjectToObject(kc, "features")) != NULL)
        for (int f = 0; f < k.F; f++)
            if (k.u[f] != 0)
                add_num_or_null(fe, s->det->features[f], k.u[f]);
}

/* The retained state topic of s (detectors[].alert.state_topic). */
static void publish_state_topic(ad_daemon *dd, stream_rec *s)
{
    det_rt *d = s->det;
    ad_detector_stats st;
    char topic[1024], iso[40];
    cJSON *o, *rj, *dq, *ad, *rg, *cb;
    if (!s->d || !d->c->state_topic)
        return;
    if (ad_topic_expand(d->c->state_topic, d->c->name, s->key, topic, sizeof topic) < 0)
        return;
    ad_detector_get_stats(s->d, &st);
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
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
    add_num_or_null(o, "probability", st.last_probability);
    add_num_or_null(o, "log_likelihood", st.last_log_likelihood);
    add_str_or_null(o, "model_id", model_id_of(s));
    rj = cJSON_AddObjectToObject(o, "rejected");
    cJSON_AddNumberToObject(rj, "future", (double)st.stream.future_values);
    cJSON_AddNumberToObject(rj, "late", (double)st.stream.ooo_values);
    cJSON_AddNumberToObject(rj, "duplicate", (double)st.stream.dup_values);
    /* of those, the values of exact copies (a message delivered twice) */
    cJSON_AddNumberToObject(rj, "copies", (double)st.stream.dup_copy_values);
    cJSON_AddNumberToObject(rj, "unaligned", (double)st.stream.unaligned);
    cJSON_AddNumberToObject(rj, "gaps", (double)st.stream.gaps);
    cJSON_AddNumberToObject(rj, "absurd", (double)st.windows_absurd);
    cJSON_AddNumberToObject(rj, "nonfinite", (double)st.stream.nonfinite);
    cJSON_AddNumberToObject(rj, "nonnumeric", (double)st.stream.nonnumeric);
    cJSON_AddNumberToObject(rj, "malformed", (double)st.stream.malformed);
    if ((dq = cJSON_CreateArray())) {
        for (const cJSON *x = s->dq_open ? s->dq_open->child : NULL; x; x = x->next)
            cJSON_AddItemToArray(dq, dq_public(x));
        cJSON_AddItemToObject(o, "data_quality", dq);
    }
    if (st.phase == AD_PHASE_COLLECTING) {
        /* training's progress, and whether it waits on flagged rows */
        cJSON *co = cJSON_AddObjectToObject(o, "collection");

        cJSON_AddNumberToObject(co, "windows", (double)st.windows_collected);
        add_num_or_null(co, "windows_needed", d->c->pipe.train_windows > 0 ?
                        (double)d->c->pipe.train_windows : NAN);
        cJSON_AddNumberToObject(co, "rows_flagged", (double)st.coll_flagged_total);
        cJSON_AddBoolToObject(co, "waiting_on_flagged_rows", st.coll_waiting != 0);
        cJSON_AddNumberToObject(co, "flagged_rows_in_a_row", (double)st.coll_flagged);
        add_time_or_null(co, "waiting_since", st.coll_waiting, st.coll_flagged_since);
        add_str_or_null(co, "flags", st.coll_waiting ? st.coll_flags : NULL);
    }
    ad = cJSON_AddObjectToObject(o, "adapt");
    cJSON_AddBoolToObject(ad, "shadow", st.adapt_shadow != 0);
    cJSON_AddNumberToObject(ad, "promoted", (double)st.adapt_promoted);
    cJSON_AddNumberToObject(ad, "rejected", (double)st.adapt_rejected);
    /* how far continual learning has moved from the reference model */
    add_num_or_null(ad, "reference_ratio", st.adapt_ref_ratio);
    if (st.adapt_ref_feature >= 0 && st.adapt_ref_feature < s->det->F)
        cJSON_AddStringToObject(ad, "reference_feature", s->det->features[st.adapt_ref_feature]);
    else
        cJSON_AddNullToObject(ad, "reference_feature");
    cJSON_AddBoolToObject(ad, "drift", st.adapt_drifted != 0);
    cJSON_AddNumberToObject(ad, "drift_notices", (double)st.adapt_drift);
    cJSON_AddNumberToObject(ad, "normal", (double)st.adapt_normal);
    cJSON_AddNumberToObject(ad, "normal_windows", (double)st.adapt_normal_windows);
    cJSON_AddNumberToObject(ad, "min_windows", (double)st.adapt_min_windows);
    cJSON_AddNumberToObject(ad, "margin", (double)st.adapt_margin);
    cJSON_AddNumberToObject(ad, "margin_clear", (double)st.adapt_margin_clear);
    /* reload.shadow: a model file waiting to go into shadow */
    if (st.reload_waiting[0])
        cJSON_AddStringToObject(ad, "reload_waiting", st.reload_waiting);
    else
        cJSON_AddNullToObject(ad, "reload_waiting");
    cJSON_AddNumberToObject(ad, "shadow_windows", (double)st.adapt_shadow_windows);
    cJSON_AddNumberToObject(ad, "excluded_early", (double)st.adapt_excluded_early);
    cb = cJSON_AddObjectToObject(o, "calibration");
    cJSON_AddNumberToObject(cb, "trimmed", (double)st.threshold_trimmed);
    cJSON_AddBoolToObject(cb, "floored", st.threshold_floored != 0);
    add_num_or_null(cb, "held", st.threshold_held > 0 ? st.threshold_held : NAN);
    cJSON_AddNumberToObject(cb, "held_windows", (double)st.threshold_held_windows);
    add_num_or_null(cb, "season_level", st.season_level);
    cJSON_AddNumberToObject(cb, "season_phases", (double)ad_detector_season_phases(s->d));
    cJSON_AddNumberToObject(cb, "season_windows", (double)st.windows_seasonal);
    cJSON_AddNumberToObject(cb, "windows_kept", (double)st.windows_kept);
    cJSON_AddNumberToObject(cb, "raise_windows", (double)st.windows_under_raise);
    kept_change_json(s, cb);
    /* a bootstrap's calibration held by windows above the guard: a fault
     * under way is not alerted on until the wait ends (calibrated on the
     * normal windows after it, or the model's threshold) */
    if (st.calib_held) {
        cJSON *cw = cJSON_AddObjectToObject(cb, "wait");
        char since[40];

        ad_iso_ms(st.calib_held_ms, since, sizeof since);
        cJSON_AddStringToObject(cw, "reason", "its windows score above "
                                "calibration.model_guard x the training error of the model "
                                "it trained (a state its training hardly saw, or a fault "
                                "under way): not alerted on until the wait ends");
        cJSON_AddStringToObject(cw, "since", since);
        cJSON_AddNumberToObject(cw, "windows_above_guard", (double)st.calib_out);
        /* flagged by data quality (or untrusted, or above the previous
         * threshold) while it waits: they count toward the fallback too (a
         * stuck sensor does not hold it for ever) */
        cJSON_AddNumberToObject(cw, "windows_flagged", (double)st.calib_flagged);
        add_num_or_null(cw, "guard", st.calib_guard);
        cJSON_AddNumberToObject(cw, "fallback_after_windows", (double)st.calib_out_need);
        cJSON_AddNumberToObject(cw, "windows_to_fallback",
                                st.calib_out_need > st.calib_out + st.calib_flagged ?
                                (double)(st.calib_out_need - st.calib_out - st.calib_flagged)
                                : 0);
    } else {
        cJSON_AddNullToObject(cb, "wait");
    }
    if (st.phase == AD_PHASE_CALIBRATING) {
        /* calibration's progress, and whether it waits on windows left out
         * (flagged by data quality, or untrusted): with no time limit a
         * stuck sensor holds it as long as it sticks */
        cJSON *pr = cJSON_AddObjectToObject(cb, "progress");

        cJSON_AddNumberToObject(pr, "windows", (double)st.calib_taken);
        add_num_or_null(pr, "windows_needed", d->c->pipe.calib_windows > 0 ?
                        (double)d->c->pipe.calib_windows : NAN);
        add_time_or_null(pr, "started", st.calib_start_ms != 0, st.calib_start_ms);
        add_time_or_null(pr, "ends_by", st.calib_start_ms != 0 &&
                         d->c->pipe.calib_duration_ms > 0,
                         st.calib_start_ms + d->c->pipe.calib_duration_ms);
        /* held until a stuck run starting in them would be recognised */
        cJSON_AddNumberToObject(pr, "windows_held", (double)st.calib_queued);
        cJSON_AddNumberToObject(pr, "windows_flagged", (double)st.calib_dq_out);
        cJSON_AddBoolToObject(pr, "waiting_on_flagged", st.calib_dq_waiting != 0);
        cJSON_AddNumberToObject(pr, "flagged_windows_in_a_row", (double)st.calib_dq_run);
        add_time_or_null(pr, "waiting_since", st.calib_dq_waiting, st.calib_dq_since);
        add_str_or_null(pr, "flags", st.calib_dq_waiting ? st.calib_dq_flags : NULL);
    }
    rg = cJSON_AddObjectToObject(o, "regime");
    add_num_or_null(rg, "threshold", st.regime_threshold);
    cJSON_AddNumberToObject(rg, "accepted", (double)st.accepted);
    cJSON_AddNumberToObject(rg, "windows", (double)st.windows_regime);
    cJSON_AddNumberToObject(rg, "remembered", (double)st.regimes);
    cJSON_AddNumberToObject(rg, "accept_after", (double)st.accept_after);
    cJSON_AddNumberToObject(rg, "accept_gap", (double)st.accept_gap);
    add_num_or_null(rg, "window_s", st.window_s);
    command_state_json(s, &st, o);
    cJSON_AddStringToObject(o, "updated", iso);
    publish_json(dd, topic, o, dd->g->cfg->broker.qos_alerts, 1);
    cJSON_Delete(o);
    s->state_conn = dd->conns;
}

void publish_state(ad_daemon *dd, stream_rec *s)
{
    ha_stream_state(dd, s);
    publish_state_topic(dd, s);
    /* the refreshes at most once a minute count from here, with a state
     * topic or Home Assistant alone (streams.c STATE_REFRESH_MS) */
    s->state_pub_ms = uv_now(dd->loop);
    s->coll_waiting = s->d && ad_detector_collect_waiting(s->d);
    s->calib_waiting = s->d && ad_detector_calib_waiting(s->d);
    s->kept_pub = s->d ? ad_detector_windows_kept(s->d) : 0;
}

/* Another live stream than s publishes its state on `topic`: a template
 * without {stream} (the detector's streams share it) or without
 * {detector} (a stream of the same key in another detector). s may belong
 * to a detector a reload is removing (not in dd->g any more). */
/* A live stream other than s that publishes on topic (s's state topic),
 * or NULL. */
static stream_rec *state_topic_sharer(ad_daemon *dd, const stream_rec *s, const char *topic)
{
    det_rt *own = s->det;
    char t[1024];

    if (!strstr(own->c->state_topic, "{stream}") && own->streams.n > 1) {
        MAP_FOREACH(&own->streams, x)
            if (x != s && x->d && !x->dead)
                return x;
    }
    for (int i = 0; i < dd->g->n; i++) {
        det_rt *o = &dd->g->dets[i];
        const char *tm = o->c->state_topic;
        stream_rec *x = NULL;

        if (o == own || !tm)
            continue;
        if (strstr(tm, "{stream}")) {
            if (!(x = streams_find(o, s->key)))
                continue;
        } else {
            MAP_FOREACH(&o->streams, y)
                if (y->d && !y->dead) { x = y; break; }
            if (!x)
                continue;
        }
        if (ad_topic_expand(tm, o->c->name, x->key, t, sizeof t) >= 0 && strcmp(t, topic) == 0)
            return x;
    }
    return NULL;
}

void publish_state_clear(ad_daemon *dd, stream_rec *s)
{
    det_rt *d = s->det;
    stream_rec *x;
    char topic[1024];

    /* also when the stream is still restoring: its topic may hold the
     * state it had before a restart */
    if (!d || !d->c->state_topic ||
        ad_topic_expand(d->c->state_topic, d->c->name, s->key, topic, sizeof topic) < 0)
        return;
    if ((x = state_topic_sharer(dd, s, topic)) != NULL) {
        /* the topic's retained message may be this stream's last state:
         * a live one that publishes there takes it over */
        ad_log(AD_LOG_DEBUG, "stream %s/%s gone: state topic %s kept (other streams "
               "publish there)", d->c->name, s->key, topic);
        publish_state_topic(dd, x);
        return;
    }
    /* QoS 1 whatever qos_alerts (like the Home Assistant removals): kept in
     * the queue while the broker is away, so a broker with persistence
     * loses the ghost too */
    ad_mqtt_publish(dd->mqtt, topic, "", 0, 1, 1);
}

void publish_state_moved(ad_daemon *dd, stream_rec *s, const char *old_template)
{
    char old[1024], now[1024];
    det_rt *d = s->det;

    if (!d || !old_template ||
        ad_topic_expand(old_template, d->c->name, s->key, old, sizeof old) < 0)
        return;
    if (d->c->state_topic &&
        ad_topic_expand(d->c->state_topic, d->c->name, s->key, now, sizeof now) >= 0 &&
        strcmp(old, now) == 0)
        return;
    ad_mqtt_publish(dd->mqtt, old, "", 0, 1, 1);     /* QoS 1: see publish_state_clear */
    if (s->d && !s->restoring && !s->dead)
        publish_state_topic(dd, s);
}

/* ---- retained states and discovery again after a connect ------------------------ */

/* Pacing of the sweep: at most RESEND_BATCH messages a tick (a few ms of
 * JSON), a tick every RESEND_TICK_MS, and none while more than
 * RESEND_BACKLOG messages wait for the broker's acknowledgement (QoS 1) or
 * in our queue: 100k streams take some seconds and never flood the
 * broker nor stall the loop, and what is published meanwhile (an alert, a
 * command's reply) waits behind at most that backlog. A stream's messages:
 * its retained state, and with Home Assistant its three discovery configs
 * and entity state. */
#define RESEND_BATCH 200
#define RESEND_TICK_MS 10
#define RESEND_BACKLOG 1000

static void resend_cb(uv_timer_t *t)
{
    ad_daemon *dd = t->data;
    gen *g = dd->g;
    ad_mqtt_stats ms;
    int n = 0, ha = g->cfg->ha.enabled;

    ad_mqtt_get_stats(dd->mqtt, &ms);
    if (!ms.connected) {
        uv_timer_stop(t);
        return;
    }
    if (ms.inflight + ms.queued > RESEND_BACKLOG)
        return;
    if (dd->resend_g != g) {        /* a reload swapped the detectors: again */
        dd->resend_g = g;
        dd->resend_det = 0;
        dd->resend_bucket = dd->resend_nb = 0;
    }
    /* a cursor over the buckets; stream_rec.state_conn and ha_conn say
     * which streams are done, so a map that grew (rehashed) is walked
     * again from its start without publishing any stream twice, and a
     * stream that published on its own meanwhile is skipped */
    for (; dd->resend_det < g->n; dd->resend_det++, dd->resend_bucket = dd->resend_nb = 0) {
        det_rt *d = &g->dets[dd->resend_det];
        stream_map *m = &d->streams;
        int st = d->c->state_topic != NULL;

        if (!st && !ha)
            continue;
        if (m->nb != dd->resend_nb) {
            dd->resend_nb = m->nb;
            dd->resend_bucket = 0;
        }
        for (; dd->resend_bucket < m->nb; dd->resend_bucket++) {
            if (n >= RESEND_BATCH)
                return;
            for (stream_rec *s = m->b[dd->resend_bucket]; s; s = s->hnext) {
                if (!s->d)
                    continue;       /* restoring: publishes when it lands */
                if (st && s->state_conn != dd->conns) {
                    publish_state_topic(dd, s);
                    n++;
                }
                if (ha && ha_stream_unannounced(dd, s))
                    n += ha_stream_state(dd, s);
            }
        }
    }
    uv_timer_stop(t);
    ad_log(AD_LOG_DEBUG, "retained stream states%s published again after the connect",
           ha ? " and Home Assistant discovery" : "");
}

void publish_resend_start(ad_daemon *dd)
{
    dd->resend_g = dd->g;
    dd->resend_det = 0;
    dd->resend_bucket = dd->resend_nb = 0;
    uv_timer_start(&dd->resend_timer, resend_cb, 0, RESEND_TICK_MS);
}

void publish_resend_stop(ad_daemon *dd)
{
    uv_timer_stop(&dd->resend_timer);
}

alert_at *publish_alert_at(const char *id, const char *topic, const char *kafka)
{
    size_t tl = strlen(topic) + 1, kl = kafka ? strlen(kafka) + 1 : 0;
    alert_at *at;

    if (strlen(id) >= sizeof at->id || !(at = malloc(sizeof *at + tl + kl)))
        return NULL;
    snprintf(at->id, sizeof at->id, "%s", id);
    memcpy(at->topic, topic, tl);
    at->kafka = NULL;
    if (kafka)
        at->kafka = memcpy(at->topic + tl, kafka, kl);
    return at;
}

/* The fields of a model alert event from "time" on (docs/alerts.md): a
 * at ts_ms, its scores in metric; names (F strings, may be NULL) name its
 * top features. */
static void add_alert_body(cJSON *o, const ad_alert *a, int64_t ts_ms, const char *metric,
                           double probability, double log_likelihood,
                           const char *const *names, int F)
{
    char iso[40];
    cJSON *tf;

    ad_iso_ms(ts_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddNumberToObject(o, "time_ms", (double)ts_ms);
    ad_iso_ms(a->start_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "start", iso);
    cJSON_AddNumberToObject(o, "start_ms", (double)a->start_ms);
    if (a->end_ms) {
        ad_iso_ms(a->end_ms, iso, sizeof iso);
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
    cJSON_AddStringToObject(o, "metric", metric);
    cJSON_AddNumberToObject(o, "windows", (double)a->windows);
    add_num_or_null(o, "probability", probability);
    add_num_or_null(o, "log_likelihood", log_likelihood);
    add_num_or_null(o, "peak_probability", a->peak_probability);
    /* raised by a band run or on a window a test held (alert.h); absent:
     * by its score */
    if (ad_alert_raised_by(a))
        cJSON_AddStringToObject(o, "raised_by", ad_alert_raised_by(a));
    tf = cJSON_AddArrayToObject(o, "top_features");
    for (int i = 0; i < a->n_top; i++) {
        cJSON *f = cJSON_CreateObject();
        int fi = a->top_feature[i];
        if (!f) break;
        cJSON_AddStringToObject(f, "name", names && fi >= 0 && fi < F ? names[fi] : "?");
        cJSON_AddNumberToObject(f, "share", round(a->top_share[i] * 10000.0) / 10000.0);
        cJSON_AddItemToArray(tf, f);
    }
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "published", iso);
}

void publish_alert(ad_daemon *dd, stream_rec *s, const ad_event *ev)
{
    det_rt *d = s->det;
    const ad_alert *a = &ev->alert;
    const char *const *names = ad_detector_features(s->d);
    char topic[1024], ktopic[1024];
    cJSON *o;
    int raised = ev->type == AD_EV_ALERT_RAISED;
    int mine = !raised && s->alert_at && strcmp(s->alert_at->id, a->id) == 0;
    int to_mqtt = d->c->alerts_to != AD_ALERTS_KAFKA, to_kafka = d->c->alerts_to != AD_ALERTS_MQTT;

    /* a clear goes where its alert was raised: the subscribers of that
     * topic hold it open (alert.topic, kafka.alert_topic or alerts_to may
     * have changed since, by a reload or a restart); and where alerts go
     * now, which is harmless to a consumer that never saw the raise, and
     * covers a state file that does not say where it went */
    ktopic[0] = '\0';
    if (mine && s->alert_at->kafka) {
        snprintf(ktopic, sizeof ktopic, "%s", s->alert_at->kafka);
        to_kafka = 1;
    }
    if (mine && s->alert_at->topic[0])
        to_mqtt = 1;
    if (mine && s->alert_at->topic[0])
        snprintf(topic, sizeof topic, "%s", s->alert_at->topic);
    else if (ad_topic_expand(d->c->alert_topic, d->c->name, s->key, topic, sizeof topic) < 0) {
        dd_bad_input(dd, "detector %s: alert topic too long for stream %s", d->c->name,
                     s->key);
        return;
    }
    free(s->alert_at);
    s->alert_at = NULL;
    /* where it goes: its clear goes there too, also by the scan at start
     * when the detector is gone by then (out of memory: as before) */
    if (raised)
        s->alert_at = publish_alert_at(a->id, d->c->alerts_to != AD_ALERTS_KAFKA ? topic : "",
                                       d->c->alerts_to != AD_ALERTS_MQTT ?
                                       dd->g->cfg->kafka.alert_topic : NULL);
    if (!(o = cJSON_CreateObject()))
        return;
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "kind", "model");
    cJSON_AddStringToObject(o, "alert_id", a->id);
    cJSON_AddStringToObject(o, "event", raised ? "raised" : "cleared");
    if (!raised)
        cJSON_AddStringToObject(o, "reason", ad_close_reason_name(a->reason ? a->reason :
                                                                  AD_CLOSE_CLEARED));
    cJSON_AddStringToObject(o, "detector", d->c->name);
    cJSON_AddStringToObject(o, "stream", s->key);
    add_model(o, d, s, ev);
    add_alert_body(o, a, ev->ts_ms, ad_detector_metric_name(ev->metric), ev->probability,
                   ev->log_likelihood, names, names ? ad_detector_F(s->d) : 0);
    publish_alert_json(dd, s, to_mqtt ? topic : NULL, to_kafka, ktopic[0] ? ktopic : NULL, o, 1);
    cJSON_Delete(o);
    ad_log(AD_LOG_NOTICE, "alert %s %s: detector %s stream %s peak score %.4g threshold %.4g%s%s",
           a->id, raised ? "raised" : "cleared", d->c->name, s->key, a->peak_score,
           a->threshold, raised ? "" : " reason ",
           raised ? "" : ad_close_reason_name(a->reason ? a->reason : AD_CLOSE_CLEARED));
    if (raised) dd->c.alerts_raised++; else dd->c.alerts_cleared++;
}

int publish_alert_removed(ad_daemon *dd, const char *detector, const char *key,
                          const char *topic, const char *kafka, const ad_alert *a,
                          const char *model_id, const char *metric,
                          const char *const *names, int F, char *err, size_t errlen)
{
    char what[256], *txt;
    const char *w;
    cJSON *o, *mo;
    int qos = dd->g->cfg->broker.qos_alerts, rc = 0;

    if (kafka && !dd->kafka)
        return ad_errf(err, errlen, AD_EINVAL, "it was raised on Kafka topic %s, and "
                       "kafka.bootstrap_servers is not configured now (nothing is published)",
                       kafka);
    if (!(o = cJSON_CreateObject()))
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "kind", "model");
    cJSON_AddStringToObject(o, "alert_id", a->id);
    cJSON_AddStringToObject(o, "event", "cleared");
    cJSON_AddStringToObject(o, "reason", ad_close_reason_name(a->reason));
    cJSON_AddStringToObject(o, "detector", detector);
    cJSON_AddStringToObject(o, "stream", key);
    /* the model that scored it, by its id: its file is not known (see
     * add_model for an alert closed under another model) */
    if ((mo = cJSON_AddObjectToObject(o, "model"))) {
        add_str_or_null(mo, "id", model_id && model_id[0] ? model_id : NULL);
        cJSON_AddNullToObject(mo, "file");
        cJSON_AddNullToObject(mo, "trained_online");
    }
    add_alert_body(o, a, a->end_ms, metric, NAN, NAN, names, F);
    w = publish_alert_what(o, what, sizeof what);
    if (!(txt = cJSON_PrintUnformatted(o))) {
        cJSON_Delete(o);
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    }
    /* Kafka first: when its producer refuses it, nothing went out and the
     * next start tries again */
    if (kafka && kafka_alert_to(dd, kafka, detector, key, txt) != 0)
        rc = ad_errf(err, errlen, AD_EINVAL, "its cleared event could not be produced to "
                     "Kafka topic %s (nothing is published)", kafka);
    /* at start, the broker perhaps not connected yet: QoS 0 would drop it, and
     * nothing publishes it again */
    else if (topic && ad_mqtt_publish_alert(dd->mqtt, topic, txt, strlen(txt),
                                            qos < 1 ? 1 : qos, 0, w) != 0)
        rc = ad_errf(err, errlen, kafka ? AD_EIO : AD_EINVAL, "its cleared event could not "
                     "be queued for MQTT topic %s%s", topic, kafka ? " (it went to Kafka)" : "");
    free(txt);
    cJSON_Delete(o);
    if (kafka)
        dd->outbox_due = 1;         /* kept until the cluster has it */
    if (rc != 0)
        return rc;
    ad_log(AD_LOG_NOTICE, "alert %s cleared: detector %s stream %s peak score %.4g threshold %.4g "
           "reason %s%s%s%s%s", a->id, detector, key, a->peak_score, a->threshold,
           ad_close_reason_name(a->reason), topic ? " on " : "", topic ? topic : "",
           kafka ? (topic ? " and Kafka topic " : " on Kafka topic ") : "", kafka ? kafka : "");
    dd->c.alerts_cleared++;
    return 0;
}

/* (see daemon_int.h) */
const char *publish_alert_what(const cJSON *o, char *buf, size_t len)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "alert_id");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "schema")) ||
        !cJSON_IsString(id) || !cJSON_IsString(ev))
        return NULL;
    snprintf(buf, len, "alert %.200s %.20s", id->valuestring, ev->valuestring);
    return buf;
}

/* An alert event (model or data quality) to MQTT (topic; NULL: not there)
 * and to Kafka when to_kafka (ktopic, NULL: kafka.alert_topic). On MQTT it
 * is marked as an alert message, so a refusal by the broker is logged as
 * an error naming the alert; with defer (a model alert, which the stream's
 * state file holds) it goes out once the state_save that follows it has
 * written that file. */
static void publish_alert_json(ad_daemon *dd, stream_rec *s, const char *topic,
                               int to_kafka, const char *ktopic, cJSON *o, int defer)
{
    if (topic) {
        char what[256], *txt = cJSON_PrintUnformatted(o);
        const char *w = publish_alert_what(o, what, sizeof what);
        if (txt && (!defer || state_defer_alert(dd, s, topic, txt,
                                                dd->g->cfg->broker.qos_alerts, w) != 0))
            ad_mqtt_publish_alert(dd->mqtt, topic, txt, strlen(txt),
                                  dd->g->cfg->broker.qos_alerts, 0, w);
        free(txt);
    }
    if (to_kafka) {
        char what[256], *txt = cJSON_PrintUnformatted(o);
        const char *w = publish_alert_what(o, what, sizeof what);
        if (txt && ktopic && !dd->kafka)    /* where it was raised, gone by a reload */
            ad_log(AD_LOG_WARNING, "detector %s stream %s: %s not produced to Kafka topic "
                   "%s, where its alert went: kafka.bootstrap_servers is not configured now",
                   s->det->c->name, s->key, w ? w : "alert event", ktopic);
        else if (txt && ktopic)
            kafka_alert_to(dd, ktopic, s->det->c->name, s->key, txt);
        else if (txt) {
            kafka_alert(dd, s->det->c->name, s->key, txt);
        }
        free(txt);
        dd->outbox_due = 1;         /* kept until the cluster has it */
    }
}

/* Keep the stream's open data-quality alerts (for its state topic), each
 * with the MQTT and Kafka topics it was raised on (NULL: not there), for
 * its clear. */
static void dq_track(stream_rec *s, const cJSON *o, int raised, const char *topic,
                     const char *ktopic)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "alert_id");
    if (!cJSON_IsString(id))
        return;
    if (s->dq_open) {
        int i = 0;
        for (cJSON *x = s->dq_open->child; x; x = x->next, i++) {
            const cJSON *xi = cJSON_GetObjectItemCaseSensitive(x, "alert_id");
            if (cJSON_IsString(xi) && strcmp(xi->valuestring, id->valuestring) == 0) {
                cJSON_DeleteItemFromArray(s->dq_open, i);
                break;
            }
        }
    }
    if (raised) {
        /* range, lo, hi, value: what a reload judges it by (publish_dq_carry) */
        static const char *keep[] = { "alert_id", "check", "feature", "start", "since",
                                      "range", "lo", "hi", "value" };
        cJSON *e = cJSON_CreateObject();
        if (!e || (!s->dq_open && !(s->dq_open = cJSON_CreateArray()))) {
            cJSON_Delete(e);
            return;
        }
        for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keep[k]);
            if (v) cJSON_AddItemToObject(e, keep[k], cJSON_Duplicate(v, 1));
        }
        if (topic)
            cJSON_AddStringToObject(e, "topic", topic);
        if (ktopic)
            cJSON_AddStringToObject(e, "kafka_topic", ktopic);
        cJSON_AddItemToArray(s->dq_open, e);
    } else if (s->dq_open && !s->dq_open->child) {
        cJSON_Delete(s->dq_open);
        s->dq_open = NULL;
    }
}

/* Rename key `from` of o to `to` (when present and `to` is not). */
static void rename_key(cJSON *o, const char *from, const char *to)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(o, from);
    if (v && !cJSON_GetObjectItemCaseSensitive(o, to))
        cJSON_AddItemToObject(o, to, v);
    else
        cJSON_Delete(v);
}

/* The entry of s->dq_open for the open data-quality alert id, or NULL. */
static const cJSON *dq_entry(const stream_rec *s, const char *id)
{
    for (const cJSON *x = s->dq_open ? s->dq_open->child : NULL; x; x = x->next) {
        const cJSON *xi = cJSON_GetObjectItemCaseSensitive(x, "alert_id");
        const cJSON *li = cJSON_GetObjectItemCaseSensitive(x, "lib_id");
        if ((cJSON_IsString(xi) && strcmp(xi->valuestring, id) == 0) ||
            (cJSON_IsString(li) && strcmp(li->valuestring, id) == 0))
            return x;
    }
    return NULL;
}

/* The entry of s->dq_open carried over a rebuild (publish_dq_carry) for
 * check chk on feature feat (a name, or null: the whole stream), or NULL. */
static cJSON *dq_carried(const stream_rec *s, const cJSON *chk, const cJSON *feat)
{
    for (cJSON *x = s->dq_open ? s->dq_open->child : NULL; x; x = x->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "check");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(x, "feature");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "carried")) ||
            !cJSON_IsString(c) || !cJSON_IsString(chk) || strcmp(c->valuestring, chk->valuestring))
            continue;
        if (cJSON_IsString(f) ? cJSON_IsString(feat) && !strcmp(f->valuestring, feat->valuestring)
                              : !cJSON_IsString(feat))
            return x;
    }
    return NULL;
}

/* Where a data-quality event goes: where alerts go now (MQTT topic, "" when
 * alerts_to kafka; *to_kafka), and where its alert was raised (x, an entry
 * of s->dq_open, or NULL), its MQTT topic replacing the one of now, as in
 * publish_alert. *ktopic: the Kafka topic it was raised on, or NULL. */
static void dq_sinks(const cJSON *x, char *topic, size_t len, int *to_kafka,
                     const char **ktopic)
{
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(x, "topic");
    const cJSON *kt = cJSON_GetObjectItemCaseSensitive(x, "kafka_topic");

    *ktopic = NULL;
    if (cJSON_IsString(at))
        snprintf(topic, len, "%s", at->valuestring);
    if (cJSON_IsString(kt)) {
        *to_kafka = 1;
        *ktopic = kt->valuestring;
    }
}


/* The fields a dq_cleared event adds to its open alert's public fields
 * (dq_public): closed at data time end with reason, as published. */
void publish_dq_cleared_fields(cJSON *o, const char *det, const char *key, const char *reason,
                               int64_t end)
{
    char iso[40];

    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "kind", "data_quality");
    cJSON_AddStringToObject(o, "event", "dq_cleared");
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddStringToObject(o, "detector", det);
    cJSON_AddStringToObject(o, "stream", key);
    cJSON_AddNumberToObject(o, "end", (double)end);
    ad_iso_ms(end, iso, sizeof iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddNumberToObject(o, "time_ms", (double)end);
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "published", iso);
}

/* A copy of an open data-quality alert of s->dq_open as published (without
 * the topic it was raised on), or NULL. */
static cJSON *dq_public(const cJSON *x)
{
    cJSON *o = cJSON_Duplicate(x, 1);
    if (o) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "topic");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "kafka_topic");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "carried");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "lib_id");
        /* what a reload judges a carried alert by (dq_track), not part of
         * the documented entry */
        cJSON_DeleteItemFromObjectCaseSensitive(o, "range");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "lo");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "hi");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "value");
    }
    return o;
}

void publish_dq(ad_daemon *dd, stream_rec *s, const ad_event *ev)
{
    det_rt *d = s->det;
    int raised = ev->type == AD_EV_DQ_RAISED;
    int to_mqtt = d->c->alerts_to != AD_ALERTS_KAFKA, to_kafka = d->c->alerts_to != AD_ALERTS_MQTT;
    char topic[1024], iso[40];
    const cJSON *id, *chk, *feat, *x = NULL;
    const char *ktopic = NULL;
    cJSON *o, *cx;

    if (!(o = ad_event_to_json(s->d, ev)))
        return;
    id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(id))
        id = cJSON_GetObjectItemCaseSensitive(o, "alert_id");
    if (!raised && cJSON_IsString(id))
        x = dq_entry(s, id->valuestring);
    if (raised && cJSON_IsString(id) &&
        (cx = dq_carried(s, cJSON_GetObjectItemCaseSensitive(o, "check"),
                         cJSON_GetObjectItemCaseSensitive(o, "feature")))) {
        /* the condition a reload's rebuild carried over holds under the
         * new settings: the alert raised before goes on (no second
         * dq_raised for an unchanged fact); this monitor's clear of it
         * is published under its id */
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(cx, "alert_id");
        cJSON_DeleteItemFromObjectCaseSensitive(cx, "carried");
        /* one lib_id, this monitor's: a second rebuild replaces the one
         * the monitor before it took over (dq_entry reads the first) */
        cJSON_DeleteItemFromObjectCaseSensitive(cx, "lib_id");
        cJSON_AddStringToObject(cx, "lib_id", id->valuestring);
        chk = cJSON_GetObjectItemCaseSensitive(o, "check");
        feat = cJSON_GetObjectItemCaseSensitive(o, "feature");
        ad_log(AD_LOG_NOTICE, "data quality %s still holds after the reload: detector %s "
               "stream %s check %s feature %s (kept open)",
               cJSON_IsString(cid) ? cid->valuestring : "?", d->c->name, s->key,
               cJSON_IsString(chk) ? chk->valuestring : "?",
               cJSON_IsString(feat) ? feat->valuestring : "(stream)");
        cJSON_Delete(o);
        return;
    }
    if (ad_topic_expand(d->c->alert_topic, d->c->name, s->key, topic, sizeof topic) < 0) {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "topic"))) {
            dd_bad_input(dd, "detector %s: alert topic too long for stream %s", d->c->name,
                         s->key);
            cJSON_Delete(o);
            return;
        }
    }
    /* a clear goes where its alert was raised, and where alerts go now
     * (see publish_alert) */
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "topic")))
        to_mqtt = 1;
    dq_sinks(x, topic, sizeof topic, &to_kafka, &ktopic);
    /* the alert message shape: schema, kind, alert_id; the event is
     * dq_raised / dq_cleared, so a consumer that acts on model alerts'
     * raised / cleared is not misled by the other kind on the topic */
    cJSON_DeleteItemFromObjectCaseSensitive(o, "event");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "kind");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "state");
    rename_key(o, "id", "alert_id");
    if (x && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "lib_id"))) {
        /* the clear of an alert carried over a rebuild: its id and start */
        static const char *orig[] = { "alert_id", "start", "since" };
        for (size_t k = 0; k < sizeof orig / sizeof orig[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, orig[k]);
            if (v)
                cJSON_ReplaceItemInObjectCaseSensitive(o, orig[k], cJSON_Duplicate(v, 1));
        }
    }
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "kind", "data_quality");
    cJSON_AddStringToObject(o, "event", raised ? "dq_raised" : "dq_cleared");
    if (!raised)
        cJSON_AddStringToObject(o, "reason", "cleared");
    if (!cJSON_GetObjectItemCaseSensitive(o, "detector"))
        cJSON_AddStringToObject(o, "detector", d->c->name);
    ad_iso_ms(ev->ts_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddNumberToObject(o, "time_ms", (double)ev->ts_ms);
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "published", iso);
    publish_alert_json(dd, s, to_mqtt ? topic : NULL, to_kafka, ktopic, o, 0);
    dq_track(s, o, raised, to_mqtt ? topic : NULL,      /* not in the state file */
             !to_kafka ? NULL : raised ? dd->g->cfg->kafka.alert_topic : ktopic);
    id = cJSON_GetObjectItemCaseSensitive(o, "alert_id");
    chk = cJSON_GetObjectItemCaseSensitive(o, "check");
    feat = cJSON_GetObjectItemCaseSensitive(o, "feature");
    ad_log(AD_LOG_NOTICE, "data quality %s %s: detector %s stream %s check %s feature %s",
           cJSON_IsString(id) ? id->valuestring : "?", raised ? "raised" : "cleared",
           d->c->name, s->key, cJSON_IsString(chk) ? chk->valuestring : "?",
           cJSON_IsString(feat) ? feat->valuestring : "(stream)");
    if (raised) dd->c.dq_raised++; else dd->c.dq_cleared++;
    cJSON_Delete(o);
}

/* Publish the clear of open data-quality alert x (an entry of s->dq_open,
 * left there) with reason, ending at data time end; now: the alert topic
 * as configured now ("" when it cannot be expanded). */
static void dq_close_entry(ad_daemon *dd, stream_rec *s, const cJSON *x, const char *reason,
                           int64_t end, const char *now)
{
    det_rt *d = s->det;
    char topic[1024];
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "alert_id");
    const cJSON *chk = cJSON_GetObjectItemCaseSensitive(x, "check");
    int to_mqtt = d->c->alerts_to != AD_ALERTS_KAFKA, to_kafka = d->c->alerts_to != AD_ALERTS_MQTT;
    const char *ktopic;
    cJSON *o;

    /* where it was raised, and where alerts go now (see publish_alert) */
    snprintf(topic, sizeof topic, "%s", now);
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "topic")))
        to_mqtt = 1;
    dq_sinks(x, topic, sizeof topic, &to_kafka, &ktopic);
    if (!topic[0])
        to_mqtt = 0;
    if (!(o = dq_public(x)))
        return;
    publish_dq_cleared_fields(o, d->c->name, s->key, reason, end);
    publish_alert_json(dd, s, to_mqtt ? topic : NULL, to_kafka, ktopic, o, 0);
    cJSON_Delete(o);
    ad_log(AD_LOG_NOTICE, "data quality %s cleared: detector %s stream %s check %s "
           "reason %s", cJSON_IsString(id) ? id->valuestring : "?", d->c->name, s->key,
           cJSON_IsString(chk) ? chk->valuestring : "?", reason);
    dd->c.dq_cleared++;
}

/* The data time a clear of s's open data-quality alerts ends at, and the
 * alert topic now in now ("" when it cannot be expanded). */
static int64_t dq_close_when(const stream_rec *s, char *now, size_t len)
{
    const det_rt *d = s->det;
    if (ad_topic_expand(d->c->alert_topic, d->c->name, s->key, now, len) < 0)
        now[0] = '\0';
    return s->d && ad_detector_last_ts(s->d) ? ad_detector_last_ts(s->d) : (int64_t)dd_wall_ms();
}

int publish_dq_close_all(ad_daemon *dd, stream_rec *s, const char *reason)
{
    char now[1024];
    int64_t end;
    int n = 0;

    if (!s->dq_open || !s->det)
        return 0;
    end = dq_close_when(s, now, sizeof now);
    for (const cJSON *x = s->dq_open->child; x; x = x->next) {
        dq_close_entry(dd, s, x, reason, end, now);
        n++;
    }
    cJSON_Delete(s->dq_open);
    s->dq_open = NULL;
    return n;
}

/* Feature name feat (a cJSON string) among names: its index, -1 for none
 * (null: the whole stream), -2 when it is not there. */
static int dq_feature(const cJSON *feat, char *const *names, int F)
{
    if (!cJSON_IsString(feat))
        return -1;
    for (int i = 0; i < F; i++)
        if (names && names[i] && strcmp(names[i], feat->valuestring) == 0)
            return i;
    return -2;
}

/* Whether open data-quality alert x of s still holds under the settings
 * of s->det (a reload's, s->d still the detector built under the old
 * ones): a range alert whose value is still outside the feature's new
 * range (the configured one for a physical range; the learned center +-
 * the new range_k x sigma for a learned one), and a dropout while the
 * new settings check dropouts (the silence goes on: its next sample ends
 * it). The other checks count over time
 * (a flat run, a bucket of rejected values, a window of late ones) that
 * a new monitor does not have: 0. */
static int dq_holds(const stream_rec *s, const cJSON *x)
{
    const ad_detconf *c = s->det->c;
    const cJSON *chk = cJSON_GetObjectItemCaseSensitive(x, "check");
    const cJSON *feat = cJSON_GetObjectItemCaseSensitive(x, "feature");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "value");
    const cJSON *rk = cJSON_GetObjectItemCaseSensitive(x, "range");
    int f;

    if (!c->pipe.dq_enabled || !cJSON_IsString(chk) ||
        dq_feature(feat, s->det->features, s->det->F) < -1)
        return 0;
    if (strcmp(chk->valuestring, "dropout") == 0)
        return c->pipe.dq.dropout_factor > 0;   /* not when the new settings turn it off */
    if (strcmp(chk->valuestring, "range") != 0 || !cJSON_IsNumber(v) || !cJSON_IsString(rk) ||
        !cJSON_IsString(feat))
        return 0;
    if (strcmp(rk->valuestring, "physical") == 0) {
        const ad_rangemap *r = &c->dq_ranges;
        for (int i = 0; i < r->n; i++)
            if (strcmp(r->name[i], feat->valuestring) == 0)
                return (!isnan(r->lo[i]) && v->valuedouble < r->lo[i]) ||
                       (!isnan(r->hi[i]) && v->valuedouble > r->hi[i]);
        return 0;
    }
    if (strcmp(rk->valuestring, "learned") == 0 && c->pipe.dq.range_k > 0 && s->d &&
        ad_detector_dq(s->d) &&
        (f = dq_feature(feat, (char *const *)ad_detector_features(s->d), s->det->F)) >= 0) {
        ad_dq_learned l;
        ad_dq_get_learned(ad_detector_dq(s->d), f, &l);
        return l.learned && l.sigma > 0 &&
               fabs(v->valuedouble - l.center) > c->pipe.dq.range_k * l.sigma;
    }
    return 0;
}

int publish_dq_carry(ad_daemon *dd, stream_rec *s, const char *reason)
{
    char now[1024];
    int64_t end;
    int n = 0;
    cJSON *x, *next;

    if (!s->dq_open || !s->det)
        return 0;
    end = dq_close_when(s, now, sizeof now);
    for (x = s->dq_open->child; x; x = next) {
        next = x->next;
        n++;
        if (dq_holds(s, x)) {
            /* the monitor that took it over (an earlier rebuild) goes:
             * its id no longer names it, the next one's will */
            cJSON_DeleteItemFromObjectCaseSensitive(x, "lib_id");
            if (!cJSON_GetObjectItemCaseSensitive(x, "carried"))
                cJSON_AddTrueToObject(x, "carried");
            s->dq_carried = 1;
            continue;
        }
        dq_close_entry(dd, s, x, reason, end, now);
        cJSON_Delete(cJSON_DetachItemViaPointer(s->dq_open, x));
    }
    if (!s->dq_open->child) {
        cJSON_Delete(s->dq_open);
        s->dq_open = NULL;
    }
    return n;
}

int publish_dq_settle(ad_daemon *dd, stream_rec *s, const unsigned char *seen, int any)
{
    char now[1024];
    int64_t end;
    int n = 0, f;
    cJSON *x, *next;

    if (!s->dq_open || !s->det || !any)
        return 0;
    end = -1;
    for (x = s->dq_open->child; x; x = next) {
        const cJSON *chk = cJSON_GetObjectItemCaseSensitive(x, "check");
        next = x->next;
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "carried")))
            continue;
        f = dq_feature(cJSON_GetObjectItemCaseSensitive(x, "feature"), s->det->features,
                       s->det->F);
        if (f < -1 || (f >= 0 && !seen[f]))
            continue;
        if (end < 0)
            end = dq_close_when(s, now, sizeof now);
        /* a dropout ends with a sample; a range alert the rebuilt monitor
         * did not raise again at the feature's value is not one the new
         * settings hold */
        dq_close_entry(dd, s, x, cJSON_IsString(chk) && !strcmp(chk->valuestring, "dropout") ?
                       "cleared" : "reload", end, now);
        cJSON_Delete(cJSON_DetachItemViaPointer(s->dq_open, x));
        n++;
    }
    if (!s->dq_open->child) {
        cJSON_Delete(s->dq_open);
        s->dq_open = NULL;
    }
    return n;
}

int publish_dq_carrying(const stream_rec *s)
{
    for (const cJSON *x = s->dq_open ? s->dq_open->child : NULL; x; x = x->next)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "carried")))
            return 1;
    return 0;
}

void publish_adapt(ad_daemon *dd, stream_rec *s, const ad_event *ev)
{
    det_rt *d = s->det;
    char topic[1024], iso[40];
    const cJSON *dec;
    size_t tl;
    cJSON *o = ad_event_to_json(s->d, ev);
    if (!o)
        return;
    if (!cJSON_GetObjectItemCaseSensitive(o, "detector"))
        cJSON_AddStringToObject(o, "detector", d->c->name);
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "published", iso);
    dec = cJSON_GetObjectItemCaseSensitive(o, "decision");
    if (ev->type == AD_EV_ACCEPTED)
        ad_log(AD_LOG_NOTICE, "stream %s/%s: regime accepted: %s", d->c->name, s->key,
               ev->text);
    else if (ev->type == AD_EV_REGIME_ENDED)
        ad_log(AD_LOG_NOTICE, "stream %s/%s: regime ended: %s", d->c->name, s->key, ev->text);
    else if (ev->type == AD_EV_CALIB_HELD)
        ;       /* the detector logged it */
    else
        ad_log(ev->adapt.type == AD_ADAPT_EV_PROMOTED ? AD_LOG_NOTICE : AD_LOG_INFO,
               "stream %s/%s: continual learning: %s%s%s", d->c->name, s->key,
               cJSON_IsString(dec) ? dec->valuestring : ad_event_type_name(ev->type),
               ev->adapt.reason[0] ? ": " : "", ev->adapt.reason);
    /* events of a stream go to <its state topic>/events, not retained */
    if (d->c->state_topic &&
        ad_topic_expand(d->c->state_topic, d->c->name, s->key, topic, sizeof topic - 8) >= 0 &&
        (tl = strlen(topic)) + 8 < sizeof topic) {
        memcpy(topic + tl, "/events", 8);
        publish_json(dd, topic, o, dd->g->cfg->broker.qos_alerts, 0);
    }
    cJSON_Delete(o);
}

void publish_count_stream(const ad_detector *det, det_counts *c)
{
    ad_detector_stats st;
    ad_detector_get_stats(det, &st);
    c->windows_invalid += st.windows_invalid;
    c->windows_absurd += st.windows_absurd;
    c->values_held += st.stream.values_held;
    c->gap_rows += st.stream.gap_rows;
    c->gaps += st.stream.gaps;
    c->late += st.stream.ooo_values;
    c->late_held += st.stream.late_held;
    c->future += st.stream.future_values;
    c->unaligned += st.stream.unaligned;
    c->overflow += st.stream.overflow;
    c->dropped += ad_stream_values_refused(&st.stream);
    c->dq_raised += st.dq_raised;
    c->dq_open += (uint64_t)st.dq_active;
    c->adapt_promoted += st.adapt_promoted;
    c->adapt_rejected += st.adapt_rejected;
    c->adapt_shadow += st.adapt_shadow != 0;
    c->adapt_drifted += st.adapt_drifted != 0;
    c->regimes_accepted += st.accepted;
    c->adapt_unoffered += st.adapt_unoffered;
    c->held_lost += st.held_lost;
}

char *publish_status_json(const ad_daemon *dd, const char *state)
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

/* Per-detector stream counts (array "detectors") and the totals over all
 * streams of every detector. */
typedef struct stream_totals {
    uint64_t dropped, overflow, calibrating, detecting, collecting, active, streams;
    uint64_t unoffered;
} stream_totals;

static void counts_json(cJSON *dj, const det_counts *c)
{
    cJSON_AddNumberToObject(dj, "windows_invalid", (double)c->windows_invalid);
    cJSON_AddNumberToObject(dj, "windows_absurd", (double)c->windows_absurd);
    cJSON_AddNumberToObject(dj, "values_held", (double)c->values_held);
    cJSON_AddNumberToObject(dj, "gap_rows", (double)c->gap_rows);
    cJSON_AddNumberToObject(dj, "gaps", (double)c->gaps);
    cJSON_AddNumberToObject(dj, "samples_late", (double)c->late);
    cJSON_AddNumberToObject(dj, "samples_late_held", (double)c->late_held);
    cJSON_AddNumberToObject(dj, "samples_future", (double)c->future);
    cJSON_AddNumberToObject(dj, "rows_unaligned", (double)c->unaligned);
    cJSON_AddNumberToObject(dj, "rows_overflow", (double)c->overflow);
    cJSON_AddNumberToObject(dj, "dropped_samples", (double)c->dropped);
    cJSON_AddNumberToObject(dj, "dq_open", (double)c->dq_open);
    cJSON_AddNumberToObject(dj, "dq_raised", (double)c->dq_raised);
    cJSON_AddNumberToObject(dj, "adapt_promoted", (double)c->adapt_promoted);
    cJSON_AddNumberToObject(dj, "adapt_rejected", (double)c->adapt_rejected);
    cJSON_AddNumberToObject(dj, "adapt_shadow", (double)c->adapt_shadow);
    cJSON_AddNumberToObject(dj, "adapt_drifted", (double)c->adapt_drifted);
    cJSON_AddNumberToObject(dj, "regimes_accepted", (double)c->regimes_accepted);
    cJSON_AddNumberToObject(dj, "adapt_unoffered", (double)c->adapt_unoffered);
    cJSON_AddNumberToObject(dj, "rows_held_lost", (double)c->held_lost);
}

static cJSON *detectors_json(ad_daemon *dd, stream_totals *t)
{
    gen *g = dd->g;
    cJSON *dets = cJSON_CreateArray();
    t->dropped = dd->c.retired_dropped;
    t->overflow = dd->c.retired_overflow;
    t->unoffered = dd->c.retired_unoffered;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        cJSON *dj = cJSON_CreateObject();
        det_counts c = d->retired;
        MAP_FOREACH(&d->streams, s) {
            ad_detector_summary st;
            if (!s->d)
                continue;       /* restoring: counted once it runs */
            ad_detector_summarize(s->d, &st);
            t->dropped += st.dropped;
            t->overflow += st.overflow;
            t->unoffered += ad_detector_adapt_unoffered(s->d);
            t->calibrating += st.phase == AD_PHASE_CALIBRATING;
            t->detecting += st.phase == AD_PHASE_DETECTING;
            t->collecting += st.phase == AD_PHASE_COLLECTING || st.phase == AD_PHASE_TRAINING;
            t->active += st.alert_active != 0;
            publish_count_stream(s->d, &c);
        }
        t->streams += d->streams.n;
        cJSON_AddStringToObject(dj, "name", d->c->name);
        cJSON_AddNumberToObject(dj, "streams", (double)d->streams.n);
        cJSON_AddNumberToObject(dj, "streams_refused", (double)d->refused);
        cJSON_AddNumberToObject(dj, "streams_evicted", (double)d->evicted);
        counts_json(dj, &c);
        cJSON_AddItemToArray(dets, dj);
    }
    return dets;
}

/* Resident memory now (VmRSS, kB), -1 when /proc cannot tell. */
static double rss_kb(void)
{
    char ln[128];
    double v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return -1;
    while (fgets(ln, sizeof ln, f))
        if (strncmp(ln, "VmRSS:", 6) == 0) {
            v = strtod(ln + 6, NULL);
            break;
        }
    fclose(f);
    return v;
}

/* The "memory" object: resident memory now and, with glibc, the heap the
 * allocator hands out (in use) and holds free in its arenas. A resident
 * memory that rises while the heap in use does not is the allocator
 * keeping freed memory (fine-tunes allocate and free megabytes on the
 * workers' arenas), not something the daemon keeps. */
static void memory_json(cJSON *o)
{
    cJSON *m = cJSON_AddObjectToObject(o, "memory");
    double rss = rss_kb();

    if (rss >= 0)
        cJSON_AddNumberToObject(m, "rss_kb", rss);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    {
        struct mallinfo2 mi = mallinfo2();  /* every arena, under its lock */

        /* an allocator that replaces glibc's (a sanitizer's, a preloaded
         * one) reports nothing here: then no heap figures, not zeros */
        if (mi.uordblks + mi.hblkhd > 0) {
            cJSON_AddNumberToObject(m, "heap_kb", (double)((mi.uordblks + mi.hblkhd) / 1024));
            cJSON_AddNumberToObject(m, "heap_free_kb", (double)(mi.fordblks / 1024));
        }
    }
#endif
}

/* "inference" and "cpu_s" objects, "max_rss_kb"; *p99 for the status line. */
static void inference_json(ad_daemon *dd, cJSON *o, double *p99)
{
    cJSON *inf, *cpu, *lj;
    struct rusage ru;
    double proc_cpu, p50, p90, pmax;

    inf = cJSON_AddObjectToObject(o, "inference");
    cJSON_AddNumberToObject(inf, "batches", (double)dd->c.batches);
    cJSON_AddNumberToObject(inf, "mean_batch", dd->c.batches ?
                            (double)dd->c.batch_windows / (double)dd->c.batches : 0);
    cJSON_AddNumberToObject(inf, "workers", ad_workers_count(dd->ws));
    cJSON_AddNumberToObject(inf, "spare_batches", dd->batches_spare);
    lj = cJSON_AddObjectToObject(inf, "latency_ms");
    stats_latency_percentiles(&dd->lat, &p50, &p90, p99, &pmax);
    cJSON_AddNumberToObject(lj, "p50", p50);
    cJSON_AddNumberToObject(lj, "p90", p90);
    cJSON_AddNumberToObject(lj, "p99", *p99);
    cJSON_AddNumberToObject(lj, "max", pmax);
    getrusage(RUSAGE_SELF, &ru);
    proc_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    cpu = cJSON_AddObjectToObject(o, "cpu_s");
    cJSON_AddNumberToObject(cpu, "process", proc_cpu);
    cJSON_AddNumberToObject(cpu, "workers", dd->model_cpu_s);
    cJSON_AddNumberToObject(cpu, "model_share", proc_cpu > 0 ? dd->model_cpu_s / proc_cpu : 0);
    cJSON_AddNumberToObject(o, "max_rss_kb", (double)ru.ru_maxrss);
    memory_json(o);
}

void publish_stats(ad_daemon *dd)
{
    gen *g = dd->g;
    ad_mqtt_stats ms;
    stream_totals t = {0};
    cJSON *o, *mq, *dets;
    double p99 = 0;
    char iso[40];

    if (!(o = cJSON_CreateObject()))
        return;
    dets = detectors_json(dd, &t);
    ad_mqtt_get_stats(dd->mqtt, &ms);
    ad_iso_ms((int64_t)dd_wall_ms(), iso, sizeof iso);
    cJSON_AddStringToObject(o, "time", iso);
    cJSON_AddNumberToObject(o, "uptime_s", (double)(uv_now(dd->loop) - dd->started_ms) / 1000.0);
    cJSON_AddNumberToObject(o, "messages_in", (double)dd->c.messages_in);
    cJSON_AddNumberToObject(o, "parse_errors", (double)dd->c.parse_errors);
    cJSON_AddNumberToObject(o, "status_messages", (double)dd->c.status_messages);
    cJSON_AddNumberToObject(o, "nonfinite", (double)dd->c.nonfinite);
    cJSON_AddNumberToObject(o, "nonnumeric", (double)dd->c.nonnumeric);
    cJSON_AddNumberToObject(o, "unknown_fields", (double)dd->c.unknown_fields);
    cJSON_AddNumberToObject(o, "oversized", (double)dd->c.oversized);
    cJSON_AddNumberToObject(o, "no_detector", (double)dd->c.no_detector);
    cJSON_AddNumberToObject(o, "no_stream_key", (double)dd->c.no_stream_key);
    cJSON_AddNumberToObject(o, "handover_skipped", (double)dd->c.handover_skipped);
    cJSON_AddNumberToObject(o, "samples", (double)dd->c.samples);
    cJSON_AddNumberToObject(o, "dropped_samples", (double)t.dropped);
    cJSON_AddNumberToObject(o, "rows_overflow", (double)t.overflow);
    cJSON_AddNumberToObject(o, "streams", (double)t.streams);
    cJSON_AddNumberToObject(o, "streams_refused", (double)dd->c.streams_refused);
    cJSON_AddNumberToObject(o, "streams_evicted", (double)dd->c.streams_evicted);
    cJSON_AddNumberToObject(o, "collecting_streams", (double)t.collecting);
    cJSON_AddNumberToObject(o, "calibrating_streams", (double)t.calibrating);
    cJSON_AddNumberToObject(o, "detecting_streams", (double)t.detecting);
    cJSON_AddNumberToObject(o, "windows_scored", (double)dd->c.windows_scored);
    cJSON_AddNumberToObject(o, "windows_stale", (double)dd->c.windows_stale);
    cJSON_AddNumberToObject(o, "alerts_raised", (double)dd->c.alerts_raised);
    cJSON_AddNumberToObject(o, "alerts_cleared", (double)dd->c.alerts_cleared);
    cJSON_AddNumberToObject(o, "alerts_active", (double)t.active);
    cJSON_AddNumberToObject(o, "trainings", (double)dd->c.trainings);
    cJSON_AddNumberToObject(o, "training_failures", (double)dd->c.training_failures);
    cJSON_AddNumberToObject(o, "dq_raised", (double)dd->c.dq_raised);
    cJSON_AddNumberToObject(o, "dq_cleared", (double)dd->c.dq_cleared);
    cJSON_AddNumberToObject(o, "adapt_jobs", (double)dd->c.adapt_jobs);
    cJSON_AddNumberToObject(o, "adapt_failures", (double)dd->c.adapt_failures);
    cJSON_AddNumberToObject(o, "adapt_running", training_adapt_running(dd));
    cJSON_AddNumberToObject(o, "windows_shadow", (double)dd->c.windows_shadow);
    cJSON_AddNumberToObject(o, "adapt_unoffered", (double)t.unoffered);
    cJSON_AddNumberToObject(o, "state_files_removed", (double)dd->c.state_files_removed);
    cJSON_AddNumberToObject(o, "state_bytes_removed", (double)dd->c.state_bytes_removed);
    cJSON_AddNumberToObject(o, "state_write_errors", (double)dd->c.state_write_errors);
    cJSON_AddNumberToObject(o, "state_files_unwritten", (double)dd->w_unwritten);
    cJSON_AddNumberToObject(o, "state_files_lost", (double)dd->c.state_files_lost);
    inference_json(dd, o, &p99);
    mq = cJSON_AddObjectToObject(o, "mqtt");
    cJSON_AddBoolToObject(mq, "connected", ms.connected);
    cJSON_AddNumberToObject(mq, "connects", (double)ms.connects);
    cJSON_AddNumberToObject(mq, "connect_failures", (double)ms.connect_failures);
    cJSON_AddNumberToObject(mq, "subscriptions_denied", (double)ms.subscriptions_denied);
    cJSON_AddNumberToObject(mq, "published", (double)ms.published);
    cJSON_AddNumberToObject(mq, "queued", (double)ms.queued);
    cJSON_AddNumberToObject(mq, "queue_dropped", (double)ms.queue_dropped);
    cJSON_AddNumberToObject(mq, "publish_refused", (double)ms.publish_refused);
    cJSON_AddNumberToObject(mq, "alerts_refused", (double)ms.alerts_refused);
    cJSON_AddItemToObject(o, "detectors", dets);
    command_stats_json(dd, o);
    if (g->cfg->broker.stats_topic)
        publish_json(dd, g->cfg->broker.stats_topic, o, 0, 0);
    if (dd->w_unwritten)
        ad_notify_status("%llu streams, %llu msgs, %llu windows scored, %llu alerts, p99 %.1f ms; "
                         "%u state file(s) not written (%llu failed writes)",
                         (unsigned long long)t.streams, (unsigned long long)dd->c.messages_in,
                         (unsigned long long)dd->c.windows_scored,
                         (unsigned long long)dd->c.alerts_raised, p99, dd->w_unwritten,
                         (unsigned long long)dd->c.state_write_errors);
    else
        ad_notify_status("%llu streams, %llu msgs, %llu windows scored, %llu alerts, p99 %.1f ms",
                         (unsigned long long)t.streams, (unsigned long long)dd->c.messages_in,
                         (unsigned long long)dd->c.windows_scored,
                         (unsigned long long)dd->c.alerts_raised, p99);
    metrics_write(dd, o);
    cJSON_Delete(o);
}
