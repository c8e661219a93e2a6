/*
 * command.c - operator commands over MQTT (see command.h): the command
 * topic template, parsing a command, applying it to the stream's detector,
 * the reply, and the feedback record kept in the stream's state.
 *
 * Ownership: replies are built and freed here; the MQTT 5 response topic
 * and correlation data are copies freed before returning. A stream's
 * feedback record is allocated on first use and owned by the stream.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "daemon_int.h"
#include "kafka.h"
#include "topic.h"

/* ---- topic template --------------------------------------------------------- */

int ad_cmd_topic_check(const char *t, const char *path, char *err, size_t errlen)
{
    const char *det, *str;
    size_t n;
    if (!t || !t[0])
        return ad_errf(err, errlen, AD_EINVAL, "%s: empty topic", path);
    if (strpbrk(t, "+#"))
        return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": wildcards not allowed", path, t);
    det = strstr(t, "{detector}");
    str = strstr(t, "{stream}");
    n = strlen(t);
    if (!det || !str || strstr(det + 1, "{detector}") || strstr(str + 1, "{stream}") ||
        str != t + n - 8 || det > str)
        return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": needs one {detector} and, last, "
                       "one {stream}", path, t);
    if ((det != t && det[-1] != '/') || det[10] != '/' || (str != t && str[-1] != '/'))
        return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": {detector} and {stream} must be "
                       "whole topic levels", path, t);
    for (const char *p = t; (p = strchr(p, '{')); p++)
        if (p != det && p != str)
            return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": unknown placeholder", path, t);
    return 0;
}

int command_filter(const ad_cmd_cfg *c, char *out, size_t len)
{
    const char *t = c->topic, *det, *str;
    int n;
    if (!c->enabled || !t)
        return 0;
    det = strstr(t, "{detector}");
    str = strstr(t, "{stream}");
    n = snprintf(out, len, "%.*s+%.*s#", (int)(det - t), t, (int)(str - det - 10), det + 10);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Split topic against the template: detector and stream names. 1 when it
 * is a command topic (det may still be empty), 0 when not. */
static int split_topic(const char *t, const char *topic, char *det, size_t dl, char *stream,
                       size_t sl)
{
    const char *pd = strstr(t, "{detector}"), *ps = strstr(t, "{stream}");
    size_t pre = (size_t)(pd - t), mid = (size_t)(ps - pd - 10);
    const char *p = topic, *e;
    det[0] = stream[0] = '\0';
    if (strncmp(p, t, pre) != 0)
        return 0;
    p += pre;
    e = strchr(p, '/');
    if (!e)
        e = p + strlen(p);
    snprintf(det, dl, "%.*s", (int)(e - p), p);
    if (strncmp(e, pd + 10, mid) != 0) {
        /* the prefix matched; "anomalyd/cmd/x" is still a command topic */
        return *e == '\0' || mid == 0 || strncmp(e, pd + 10, strlen(e)) == 0;
    }
    snprintf(stream, sl, "%s", e + mid);
    return 1;
}

/* ---- replies ------------------------------------------------------------------ */

typedef struct request {
    ad_daemon *dd;
    char det[128], stream[KEY_MAX];
    const char *command;         /* NULL until known */
    cJSON *request_id;           /* borrowed from the parsed command */
    char *resp_topic;
    void *corr;
    size_t corr_len;
} request;

static void reply(request *r, cJSON *result, const char *error)
{
    ad_daemon *dd = r->dd;
    cJSON *o = cJSON_CreateObject();
    char topic[1024], *txt;
    if (!o) {
        cJSON_Delete(result);
        return;
    }
    cJSON_AddBoolToObject(o, "ok", error == NULL);
    if (r->command) cJSON_AddStringToObject(o, "command", r->command);
    else cJSON_AddNullToObject(o, "command");
    cJSON_AddStringToObject(o, "detector", r->det);
    cJSON_AddStringToObject(o, "stream", r->stream);
    if (r->request_id)
        cJSON_AddItemToObject(o, "request_id", cJSON_Duplicate(r->request_id, 1));
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    if (result)
        cJSON_AddItemToObject(o, "result", result);
    txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt)
        return;
    if (r->resp_topic && r->resp_topic[0] && !strpbrk(r->resp_topic, "+#"))
        ad_mqtt_publish_reply(dd->mqtt, r->resp_topic, txt, strlen(txt), r->corr, r->corr_len);
    else if (ad_topic_expand(dd->g->cfg->cmd.reply_topic, r->det[0] ? r->det : "-",
                             r->stream[0] ? r->stream : "-", topic, sizeof topic) >= 0)
        ad_mqtt_publish_reply(dd->mqtt, topic, txt, strlen(txt), NULL, 0);
    free(txt);
}

/* An error reply, counted under *counter and logged (rate-limited). */
static void refuse(request *r, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(request *r, uint64_t *counter, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (*counter)++;
    dd_bad_input(r->dd, "command %s for %s/%s refused: %s", r->command ? r->command : "?",
                 r->det, r->stream, msg);
    reply(r, NULL, msg);
}

/* ---- the commands --------------------------------------------------------------- */

static feedback *fb_of(stream_rec *s)
{
    if (!s->fb && (s->fb = calloc(1, sizeof *s->fb)))
        s->fb->last_peak = NAN;
    return s->fb;
}

static const char *str_arg(const cJSON *c, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, name);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Save and announce a changed stream: events (an alert closed, a phase
 * changed) published, the state topic refreshed, the state file queued and
 * the Kafka state topic written (a stream of a Kafka partition: its next
 * owner gets the feedback too, also after a crash). */
static void stream_changed(ad_daemon *dd, stream_rec *s)
{
    if (!streams_events(dd, s)) {       /* else both done there */
        publish_state(dd, s);
        kafka_state_changed(dd, s);
    }
    state_save(dd, s);
}

static void cmd_ack(request *r, stream_rec *s, const cJSON *c)
{
    ad_detector_stats st;
    const char *id = str_arg(c, "alert_id"), *by = str_arg(c, "by");
    feedback *fb;
    cJSON *res;
    ad_detector_get_stats(s->d, &st);
    if (!st.alert_active)
        return refuse(r, &r->dd->c.cmd_failed, "no open alert to acknowledge");
    if (id && strcmp(id, st.alert_id) != 0)
        return refuse(r, &r->dd->c.cmd_failed, "alert %.128s is not the open alert (%s)",
                      id, st.alert_id);
    if (!(fb = fb_of(s)))
        return refuse(r, &r->dd->c.cmd_failed, "out of memory");
    snprintf(fb->ack_id, sizeof fb->ack_id, "%s", st.alert_id);
    snprintf(fb->ack_by, sizeof fb->ack_by, "%s", by ? by : "");
    ad_iso_ms((int64_t)dd_wall_ms(), fb->ack_at, sizeof fb->ack_at);
    stream_changed(r->dd, s);
    res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "alert_id", fb->ack_id);
    cJSON_AddStringToObject(res, "acknowledged_by", fb->ack_by);
    cJSON_AddStringToObject(res, "acknowledged_at", fb->ack_at);
    r->dd->c.cmd_ok++;
    reply(r, res, NULL);
}

static void cmd_false_alarm(request *r, stream_rec *s, const cJSON *c)
{
    const char *id = str_arg(c, "alert_id"), *by = str_arg(c, "by");
    feedback *fb = fb_of(s);
    ad_detector_feedback out;
    double peak = NAN;
    char err[256];
    cJSON *res;
    if (!fb)
        return refuse(r, &r->dd->c.cmd_failed, "out of memory");
    if ((!id || !id[0]) && fb->last_id[0]) {
        /* no id: the open alert, else the last one after it cleared (an
         * operator often judges an alert once it is over) */
        ad_detector_stats st;
        ad_detector_get_stats(s->d, &st);
        if (!st.alert_active) {
            if (strcmp(fb->fa_id, fb->last_id) == 0)
                return refuse(r, &r->dd->c.cmd_failed, "stream %s: its last alert %s is "
                              "already marked a false alarm", s->key, fb->last_id);
            id = fb->last_id;
        }
    }
    if (id && strcmp(id, fb->last_id) == 0)
        peak = fb->last_peak;          /* an alert that may have cleared already */
    if (ad_detector_false_alarm(s->d, id, peak, &out, err, sizeof err) != 0)
        return refuse(r, &r->dd->c.cmd_failed, "%s", err);
    fb->false_alarms++;
    snprintf(fb->fa_id, sizeof fb->fa_id, "%s", out.alert_id);
    snprintf(fb->fa_by, sizeof fb->fa_by, "%s", by ? by : "");
    ad_iso_ms((int64_t)dd_wall_ms(), fb->fa_at, sizeof fb->fa_at);
    fb->fa_threshold = out.threshold;
    ad_log(AD_LOG_NOTICE, "stream %s/%s: alert %s marked a false alarm%s%s: threshold "
           "%.6g -> %.6g", r->det, r->stream, out.alert_id, fb->fa_by[0] ? " by " : "",
           fb->fa_by, out.prev_threshold, out.threshold);
    stream_changed(r->dd, s);
    res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "alert_id", out.alert_id);
    cJSON_AddBoolToObject(res, "closed", out.closed);
    cJSON_AddNumberToObject(res, "previous_threshold", out.prev_threshold);
    cJSON_AddNumberToObject(res, "threshold", out.threshold);
    cJSON_AddBoolToObject(res, "threshold_raised", out.raised);
    r->dd->c.cmd_ok++;
    reply(r, res, NULL);
}

static void cmd_recalibrate(request *r, stream_rec *s)
{
    char err[256];
    cJSON *res;
    if (ad_detector_recalibrate(s->d, err, sizeof err) != 0)
        return refuse(r, &r->dd->c.cmd_failed, "%s", err);
    if (s->fb)
        s->fb->ack_id[0] = '\0';
    ad_log(AD_LOG_NOTICE, "stream %s/%s: recalibrating on request", r->det, r->stream);
    stream_changed(r->dd, s);
    res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "phase", ad_phase_name(ad_detector_phase(s->d)));
    r->dd->c.cmd_ok++;
    reply(r, res, NULL);
}

/* The change continual learning followed is the new normal: the live
 * model becomes the reference of the drift measure (a new baseline). */
static void cmd_accept_drift(request *r, stream_rec *s, const cJSON *c)
{
    const char *by = str_arg(c, "by");
    double prev;
    char err[256];
    cJSON *res;
    if (ad_detector_accept_drift(s->d, &prev, err, sizeof err) != 0)
        return refuse(r, &r->dd->c.cmd_failed, "%s", err);
    ad_log(AD_LOG_NOTICE, "stream %s/%s: drift accepted%s%.64s (reference ratio %.3g): model "
           "%s is the reference now", r->det, r->stream, by ? " by " : "", by ? by : "", prev,
           (ad_detector_model(s->d) ? ad_detector_model(s->d)->id : ""));
    stream_changed(r->dd, s);
    res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "reference", (ad_detector_model(s->d) ? ad_detector_model(s->d)->id : ""));
    if (isfinite(prev))
        cJSON_AddNumberToObject(res, "previous_ratio", prev);
    else
        cJSON_AddNullToObject(res, "previous_ratio");
    r->dd->c.cmd_ok++;
    reply(r, res, NULL);
}

static void cmd_freeze(request *r, stream_rec *s, int frozen)
{
    feedback *fb = fb_of(s);
    cJSON *res;
    if (!fb)
        return refuse(r, &r->dd->c.cmd_failed, "out of memory");
    ad_detector_freeze(s->d, frozen);
    fb->frozen = frozen;
    stream_changed(r->dd, s);
    res = cJSON_CreateObject();
    cJSON_AddBoolToObject(res, "frozen", frozen);
    r->dd->c.cmd_ok++;
    reply(r, res, NULL);
}

/* The parsed command c for r (detector and stream names known). */
static void dispatch(request *r, const cJSON *c)
{
    static const char *const names[] = { "ack", "false_alarm", "recalibrate", "freeze",
                                         "unfreeze", "accept_drift" };
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, "command");
    det_rt *d = NULL;
    stream_rec *s;
    int k = -1;
    if (!cJSON_IsString(x))
        return refuse(r, &r->dd->c.cmd_bad_json, "\"command\": missing or not a string");
    for (int i = 0; i < 6; i++)
        if (strcmp(x->valuestring, names[i]) == 0) k = i;
    if (k < 0)
        return refuse(r, &r->dd->c.cmd_unknown_command, "unknown command \"%.64s\" (expected "
                      "ack|false_alarm|recalibrate|freeze|unfreeze|accept_drift)",
                      x->valuestring);
    r->command = names[k];
    for (int i = 0; i < r->dd->g->n; i++)
        if (strcmp(r->dd->g->dets[i].c->name, r->det) == 0) d = &r->dd->g->dets[i];
    if (!d)
        return refuse(r, &r->dd->c.cmd_unknown_stream, "unknown detector \"%.64s\"", r->det);
    if (!(s = streams_find(d, r->stream)))
        return refuse(r, &r->dd->c.cmd_unknown_stream, "unknown stream \"%.128s\" of "
                      "detector %s", r->stream, d->c->name);
    if (!s->d || s->restoring)
        return refuse(r, &r->dd->c.cmd_failed, "stream is being restored; try again");
    switch (k) {
    case 0: cmd_ack(r, s, c); break;
    case 1: cmd_false_alarm(r, s, c); break;
    case 2: cmd_recalibrate(r, s); break;
    case 5: cmd_accept_drift(r, s, c); break;
    default: cmd_freeze(r, s, k == 3); break;
    }
}

/* r for a message on topic: 1 when it is a command topic (names split,
 * MQTT 5 response topic and correlation data copied: free them), else 0. */
static int request_of(ad_daemon *dd, const char *topic, request *r)
{
    const ad_cmd_cfg *cfg = &dd->g->cfg->cmd;
    memset(r, 0, sizeof *r);
    r->dd = dd;
    if (!cfg->enabled || !cfg->topic ||
        !split_topic(cfg->topic, topic, r->det, sizeof r->det, r->stream, sizeof r->stream))
        return 0;
    ad_mqtt_message_response(dd->mqtt, &r->resp_topic, &r->corr, &r->corr_len);
    return 1;
}

int command_oversized(ad_daemon *dd, const char *topic, size_t len)
{
    int max = dd->g->cfg->max_payload;
    char msg[160];
    request r;
    if (!request_of(dd, topic, &r))
        return 0;
    /* the reply topic comes from the topic and the MQTT 5 properties: the
     * payload is never read */
    dd->c.oversized++;
    dd_bad_input(dd, "topic %.128s: %zu-byte command payload over max_payload_bytes %d, "
                 "refused", topic, len, max);
    snprintf(msg, sizeof msg, "payload of %zu bytes is over max_payload_bytes %d", len, max);
    reply(&r, NULL, msg);
    free(r.resp_topic);
    free(r.corr);
    return 1;
}

int command_message(ad_daemon *dd, const char *topic, const void *payload, size_t len)
{
    request r;
    cJSON *c;
    char err[160];
    if (!request_of(dd, topic, &r))
        return 0;
    c = ad_json_parse_whole(payload, len, "command object", err, sizeof err);
    if (!r.det[0] || !r.stream[0])
        refuse(&r, &dd->c.cmd_unknown_stream, "topic %.200s names no %s", topic,
               r.det[0] ? "stream" : "detector");
    else if (!c)
        refuse(&r, &dd->c.cmd_bad_json, "payload is not a JSON object: %s", err);
    else if (!cJSON_IsObject(c))
        refuse(&r, &dd->c.cmd_bad_json, "payload is not a JSON object");
    else {
        r.request_id = cJSON_GetObjectItemCaseSensitive(c, "request_id");
        dispatch(&r, c);
    }
    cJSON_Delete(c);
    free(r.resp_topic);
    free(r.corr);
    return 1;
}

/* ---- state ------------------------------------------------------------------------ */

void command_note_alert(stream_rec *s, const ad_event *ev)
{
    feedback *fb = fb_of(s);
    if (!fb)
        return;
    snprintf(fb->last_id, sizeof fb->last_id, "%s", ev->alert.id);
    fb->last_peak = ev->alert.peak_score;
}

void command_state_json(const stream_rec *s, const ad_detector_stats *st, cJSON *o)
{
    const feedback *fb = s->fb;
    int acked = fb && st->alert_active && fb->ack_id[0] && strcmp(fb->ack_id, st->alert_id) == 0;
    cJSON_AddBoolToObject(o, "acknowledged", acked);
    if (acked) {
        cJSON_AddStringToObject(o, "acknowledged_by", fb->ack_by);
        cJSON_AddStringToObject(o, "acknowledged_at", fb->ack_at);
    }
    cJSON_AddBoolToObject(o, "frozen", fb && fb->frozen);
    cJSON_AddNumberToObject(o, "false_alarms", fb ? (double)fb->false_alarms : 0);
    if (fb && fb->fa_id[0]) {
        cJSON *f = cJSON_AddObjectToObject(o, "last_false_alarm");
        cJSON_AddStringToObject(f, "alert_id", fb->fa_id);
        cJSON_AddStringToObject(f, "by", fb->fa_by);
        cJSON_AddStringToObject(f, "at", fb->fa_at);
        cJSON_AddNumberToObject(f, "threshold", fb->fa_threshold);
    }
}

void command_state_add(const stream_rec *s, cJSON *o)
{
    const feedback *fb = s->fb;
    cJSON *f;
    if (!fb || !(f = cJSON_AddObjectToObject(o, "feedback")))
        return;
    cJSON_AddStringToObject(f, "ack_id", fb->ack_id);
    cJSON_AddStringToObject(f, "ack_by", fb->ack_by);
    cJSON_AddStringToObject(f, "ack_at", fb->ack_at);
    cJSON_AddStringToObject(f, "false_alarm_id", fb->fa_id);
    cJSON_AddStringToObject(f, "false_alarm_by", fb->fa_by);
    cJSON_AddStringToObject(f, "false_alarm_at", fb->fa_at);
    cJSON_AddNumberToObject(f, "false_alarm_threshold",
                            isfinite(fb->fa_threshold) ? fb->fa_threshold : 0);
    cJSON_AddNumberToObject(f, "false_alarms", (double)fb->false_alarms);
    cJSON_AddBoolToObject(f, "frozen", fb->frozen);
}

static void copy_str(const cJSON *f, const char *name, char *out, size_t len)
{
    const char *v = str_arg(f, name);
    snprintf(out, len, "%s", v ? v : "");
}

int command_state_restore(stream_rec *s, const char *js)
{
    cJSON *o = cJSON_Parse(js), *f = cJSON_GetObjectItemCaseSensitive(o, "feedback"), *x;
    feedback *fb;
    if (!cJSON_IsObject(f)) {
        cJSON_Delete(o);
        return 0;
    }
    if (!(fb = fb_of(s))) {
        cJSON_Delete(o);
        return AD_ENOMEM;
    }
    copy_str(f, "ack_id", fb->ack_id, sizeof fb->ack_id);
    copy_str(f, "ack_by", fb->ack_by, sizeof fb->ack_by);
    copy_str(f, "ack_at", fb->ack_at, sizeof fb->ack_at);
    copy_str(f, "false_alarm_id", fb->fa_id, sizeof fb->fa_id);
    copy_str(f, "false_alarm_by", fb->fa_by, sizeof fb->fa_by);
    copy_str(f, "false_alarm_at", fb->fa_at, sizeof fb->fa_at);
    x = cJSON_GetObjectItemCaseSensitive(f, "false_alarm_threshold");
    fb->fa_threshold = cJSON_IsNumber(x) ? x->valuedouble : 0;
    x = cJSON_GetObjectItemCaseSensitive(f, "false_alarms");
    fb->false_alarms = cJSON_IsNumber(x) && x->valuedouble >= 0 ?
                       (unsigned long long)x->valuedouble : 0;
    fb->frozen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "frozen"));
    /* the calibration restored the threshold's frozen flag; keep them one */
    ad_detector_freeze(s->d, fb->frozen);
    cJSON_Delete(o);
    return 0;
}

void command_stats_json(const ad_daemon *dd, cJSON *o)
{
    cJSON *c = cJSON_AddObjectToObject(o, "commands");
    cJSON_AddNumberToObject(c, "ok", (double)dd->c.cmd_ok);
    cJSON_AddNumberToObject(c, "bad_json", (double)dd->c.cmd_bad_json);
    cJSON_AddNumberToObject(c, "unknown_stream", (double)dd->c.cmd_unknown_stream);
    cJSON_AddNumberToObject(c, "unknown_command", (double)dd->c.cmd_unknown_command);
    cJSON_AddNumberToObject(c, "refused", (double)dd->c.cmd_failed);
}
