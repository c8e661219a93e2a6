/*
 * homeassistant.c - Home Assistant MQTT discovery configs and entity states
 * of each stream (see homeassistant.h for the topics and payloads).
 *
 * Ownership: every JSON object is built and freed here; mqtt.c copies
 * topics and payloads.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "daemon_int.h"
#include "homeassistant.h"
#include "topic.h"

enum { ENT_PROBLEM, ENT_SCORE, ENT_SEVERITY, ENT_N };
static const char *const ent_kind[ENT_N] = { "binary_sensor", "sensor", "sensor" };
static const char *const ent_suffix[ENT_N] = { "", "_score", "_severity" };
static const char *const ent_name[ENT_N] = { "Anomaly", "Anomaly score", "Anomaly severity" };
static const char *const ent_value[ENT_N] = {
    "{{ value_json.problem }}", "{{ value_json.score }}", "{{ value_json.severity }}" };

/* s with every character outside [A-Za-z0-9_-] as '_'; 1 if any was. */
static int sanitize(const char *s, char *out, size_t len)
{
    size_t o = 0;
    int changed = 0;
    for (; *s && o + 1 < len; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        out[o++] = ok ? c : '_';
        changed |= !ok;
    }
    out[o] = '\0';
    return changed || *s;
}

/* 1 when another configured detector's name followed by '_' starts name:
 * "<detector>_<stream>" is then ambiguous (detector "line" with stream
 * "a_b", detector "line_a" with stream "b"), and name's object ids carry
 * the hash of the real names. Only the longer name is marked, so the ids
 * of a configuration without such a pair are those of <detector>_<stream>. */
int ha_name_shadowed(const ad_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_det; i++) {
        const char *o = cfg->det[i].name;
        size_t n = strlen(o);
        if (strncmp(name, o, n) == 0 && name[n] == '_')
            return 1;
    }
    return 0;
}

/* HA_IDS_PLAIN or HA_IDS_HASHED: the object ids of detector name under the
 * configuration now (only what name_shadowed decides; a name or key with
 * other characters than [A-Za-z0-9_-] is hashed either way). */
static int ids_now(const ad_daemon *dd, const char *name)
{
    return ha_name_shadowed(dd->g->cfg, name) ? HA_IDS_HASHED : HA_IDS_PLAIN;
}

/* node_id and object_id of stream key of detector name (see
 * homeassistant.h), under `form` (HA_IDS_PLAIN or HA_IDS_HASHED; 0: the
 * configuration now). */
static void key_ids(const ad_daemon *dd, const char *name, const char *key, int form,
                    char *node, size_t nl, char *obj, size_t ol)
{
    char both[KEY_MAX + 160], a[80], b[KEY_MAX];
    int ch;
    sanitize(dd->g->cfg->broker.client_id, node, nl);
    ch = sanitize(name, a, sizeof a);
    ch |= sanitize(key, b, sizeof b);
    if (!key[0]) {
        snprintf(b, sizeof b, "_");
        ch = 1;
    }
    if (!form)
        form = ids_now(dd, name);
    if (ch || form == HA_IDS_HASHED) {
        snprintf(both, sizeof both, "%s/%s", name, key);
        snprintf(obj, ol, "%s_%s_%08x", a, b, (unsigned)(ad_fnv1a64_str(both) & 0xffffffffu));
    } else {
        snprintf(obj, ol, "%s_%s", a, b);
    }
}

static void ids(const ad_daemon *dd, const stream_rec *s, char *node, size_t nl, char *obj,
                size_t ol)
{
    key_ids(dd, s->det->c->name, s->key, 0, node, nl, obj, ol);
}

static int key_config_topic(const ad_daemon *dd, const char *name, const char *key, int form,
                            int e, char *out, size_t len)
{
    char node[160], obj[KEY_MAX + 120];
    int n;
    key_ids(dd, name, key, form, node, sizeof node, obj, sizeof obj);
    n = snprintf(out, len, "%s/%s/%s/%s%s/config", dd->g->cfg->ha.discovery_prefix,
                 ent_kind[e], node, obj, ent_suffix[e]);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int key_state_topic(const ad_daemon *dd, const char *name, const char *key, char *out,
                           size_t len)
{
    return ad_topic_expand(dd->g->cfg->ha.state_topic, name, key, out, len) < 0 ? -1 : 0;
}

static int config_topic(const ad_daemon *dd, const stream_rec *s, int form, int e, char *out,
                        size_t len)
{
    return key_config_topic(dd, s->det->c->name, s->key, form, e, out, len);
}

static int state_topic(const ad_daemon *dd, const stream_rec *s, char *out, size_t len)
{
    return key_state_topic(dd, s->det->c->name, s->key, out, len);
}

/* The id of the model s runs, or "" (none yet: bootstrap). */
static const char *model_id(const stream_rec *s)
{
    const ad_model *m = s->d ? ad_detector_model(s->d) : NULL;
    return m ? m->id : "";
}

/* One entity's discovery config. */
static cJSON *entity_json(const ad_daemon *dd, const stream_rec *s, int e, const char *st)
{
    const char *status = dd->g->cfg->broker.status_topic;
    const char *mid = model_id(s);
    char node[160], obj[KEY_MAX + 120], uid[KEY_MAX + 320], name[KEY_MAX + 80], model[200];
    cJSON *o = cJSON_CreateObject(), *dev, *av, *a, *idents;
    if (!o)
        return NULL;
    ids(dd, s, node, sizeof node, obj, sizeof obj);
    snprintf(uid, sizeof uid, "anomalyd_%s_%s%s", node, obj, ent_suffix[e]);
    cJSON_AddStringToObject(o, "name", ent_name[e]);
    cJSON_AddStringToObject(o, "unique_id", uid);
    cJSON_AddStringToObject(o, "state_topic", st);
    cJSON_AddStringToObject(o, "value_template", ent_value[e]);
    cJSON_AddStringToObject(o, "json_attributes_topic", st);
    if (e == ENT_PROBLEM) {
        cJSON_AddStringToObject(o, "device_class", "problem");
        cJSON_AddStringToObject(o, "payload_on", "ON");
        cJSON_AddStringToObject(o, "payload_off", "OFF");
    } else {
        cJSON_AddStringToObject(o, "state_class", "measurement");
        cJSON_AddNumberToObject(o, "suggested_display_precision", e == ENT_SCORE ? 4 : 2);
        cJSON_AddStringToObject(o, "icon", e == ENT_SCORE ? "mdi:chart-bell-curve" :
                                "mdi:gauge");
    }
    if (status) {
        av = cJSON_AddArrayToObject(o, "availability");
        if ((a = cJSON_CreateObject())) {
            cJSON_AddStringToObject(a, "topic", status);
            cJSON_AddStringToObject(a, "value_template", "{{ value_json.state }}");
            cJSON_AddStringToObject(a, "payload_available", "online");
            cJSON_AddStringToObject(a, "payload_not_available", "offline");
            cJSON_AddItemToArray(av, a);
        }
    }
    dev = cJSON_AddObjectToObject(o, "device");
    snprintf(uid, sizeof uid, "anomalyd_%s_%s", node, obj);
    idents = cJSON_AddArrayToObject(dev, "identifiers");
    cJSON_AddItemToArray(idents, cJSON_CreateString(uid));
    snprintf(name, sizeof name, "%s %s", s->det->c->name, s->key);
    cJSON_AddStringToObject(dev, "name", name);
    snprintf(model, sizeof model, "anomaly detector %s%s%s", s->det->c->name,
             mid[0] ? ", model " : "", mid);
    cJSON_AddStringToObject(dev, "model", model);
    cJSON_AddStringToObject(dev, "manufacturer", "anomalyd");
    cJSON_AddStringToObject(dev, "sw_version", AD_VERSION);
    a = cJSON_AddObjectToObject(o, "origin");
    cJSON_AddStringToObject(a, "name", "anomalyd");
    cJSON_AddStringToObject(a, "sw_version", AD_VERSION);
    return o;
}

/* The discovery configs of s; returns how many were published. */
static int announce(ad_daemon *dd, stream_rec *s, const char *st)
{
    char topic[KEY_MAX + 600];
    int n = 0, now = ids_now(dd, s->det->c->name);
    /* announced under other object ids (a reload added or removed a
     * detector whose name makes this one's ambiguous): those entities go */
    if (s->ha_announced && s->ha_ids && s->ha_ids != now)
        for (int e = 0; e < ENT_N; e++)
            if (config_topic(dd, s, s->ha_ids, e, topic, sizeof topic) == 0) {
                ad_mqtt_publish(dd->mqtt, topic, "", 0, 1, 1);
                n++;
            }
    for (int e = 0; e < ENT_N; e++) {
        cJSON *o;
        if (config_topic(dd, s, now, e, topic, sizeof topic) < 0 || !(o = entity_json(dd, s, e, st)))
            continue;
        publish_json(dd, topic, o, 1, 1);
        cJSON_Delete(o);
        n++;
    }
    s->ha_announced = 1;
    s->ha_ids = now;
    s->ha_conn = dd->conns;
    snprintf(s->ha_model, sizeof s->ha_model, "%s", model_id(s));
    return n;
}

int ha_stream_unannounced(const ad_daemon *dd, const stream_rec *s)
{
    /* the device names the model: announced again when it changes (a
     * reload's new model file, a promotion, a model trained online) */
    return !s->ha_announced || s->ha_conn != dd->conns || strcmp(s->ha_model, model_id(s)) ||
           (s->det && s->ha_ids && s->ha_ids != ids_now(dd, s->det->c->name));
}

static void num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

int ha_stream_state(ad_daemon *dd, stream_rec *s)
{
    ad_detector_stats st;
    char topic[1024];
    cJSON *o;
    int n = 0;
    if (!dd->g->cfg->ha.enabled || !s->d || !s->det || state_topic(dd, s, topic, sizeof topic))
        return 0;
    /* new, or not yet announced on this connection (the sweep after a
     * connect has not got to it: its configs go first, here) */
    if (ha_stream_unannounced(dd, s))
        n = announce(dd, s, topic);
    ad_detector_get_stats(s->d, &st);
    if (!(o = cJSON_CreateObject()))
        return n;
    /* a model alert or a data-quality condition open */
    cJSON_AddStringToObject(o, "problem", st.alert_active || st.dq_active ? "ON" : "OFF");
    cJSON_AddBoolToObject(o, "model_alert", st.alert_active != 0);
    cJSON_AddNumberToObject(o, "data_quality", st.dq_active);
    if (st.alert_active) cJSON_AddStringToObject(o, "alert_id", st.alert_id);
    else cJSON_AddNullToObject(o, "alert_id");
    num_or_null(o, "score", st.last_smoothed);
    num_or_null(o, "threshold", st.threshold);
    num_or_null(o, "severity", st.threshold > 0 ? st.last_smoothed / st.threshold : NAN);
    cJSON_AddStringToObject(o, "phase", ad_phase_name(st.phase));
    command_state_json(s, &st, o);
    publish_json(dd, topic, o, 1, 1);
    cJSON_Delete(o);
    s->ha_ms = uv_now(dd->loop);
    return n + 1;
}

void ha_stream_tick(ad_daemon *dd, stream_rec *s)
{
    const ad_ha_cfg *c = &dd->g->cfg->ha;
    if (c->enabled && s->d && uv_now(dd->loop) - s->ha_ms >= (uint64_t)(c->update_interval * 1000))
        ha_stream_state(dd, s);
}

static cJSON *key_topics(const ad_daemon *dd, const char *name, const char *key, int form)
{
    char topic[KEY_MAX + 600];
    cJSON *a;

    if (!dd->g->cfg->ha.enabled || !(a = cJSON_CreateArray()))
        return NULL;
    for (int e = 0; e < ENT_N; e++)
        if (key_config_topic(dd, name, key, form, e, topic, sizeof topic) == 0)
            cJSON_AddItemToArray(a, cJSON_CreateString(topic));
    if (key_state_topic(dd, name, key, topic, sizeof topic) == 0)
        cJSON_AddItemToArray(a, cJSON_CreateString(topic));
    return a;
}

cJSON *ha_key_topics(const ad_daemon *dd, const char *name, const char *key)
{
    return key_topics(dd, name, key, 0);
}

cJSON *ha_stream_topics(const ad_daemon *dd, const stream_rec *s)
{
    /* those it announced (until it announces again after a reload) */
    return s->det ? key_topics(dd, s->det->c->name, s->key, s->ha_announced ? s->ha_ids : 0)
                  : NULL;
}

void ha_stream_removed(ad_daemon *dd, stream_rec *s)
{
    char topic[KEY_MAX + 600];
    if (!dd->g->cfg->ha.enabled || !s->det || !s->ha_announced)
        return;
    for (int e = 0; e < ENT_N; e++)
        if (config_topic(dd, s, s->ha_ids, e, topic, sizeof topic) == 0)
            ad_mqtt_publish(dd->mqtt, topic, "", 0, 1, 1);
    if (state_topic(dd, s, topic, sizeof topic) == 0)
        ad_mqtt_publish(dd->mqtt, topic, "", 0, 1, 1);
    s->ha_announced = 0;
    s->ha_ids = 0;
}
