/*
 * generation.c - a generation: one loaded configuration with its models,
 * payload parsers and per-detector runtime (det_rt), built off the loop at
 * start and on SIGHUP (reload.c swaps it in), and the refcounted shared
 * model references (model_ref) that streams and batches hold.
 *
 * Ownership: gen_load returns a gen owning its config and det_rt array;
 * each det_rt holds one model_ref reference and owns its parser. The
 * streams of a det_rt are moved out (reload.c) or killed before gen_free.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "daemon_int.h"
#include "topic.h"

/* Engine cache keys: unique per process; gen_load may run on the thread
 * pool (reload), hence the atomic counter. */
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

model_ref *mr_get(model_ref *r)
{
    if (r) r->refs++;
    return r;
}

void mr_put(model_ref *r)
{
    if (r && --r->refs == 0) {
        ad_model_free(r->m);
        free(r);
    }
}

void gen_free(gen *g)
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

/* The model of detector i (if any): loaded, its shape and features. */
static int det_load_model(det_rt *d, int i, const char *path, char *err, size_t errlen)
{
    ad_model *m = NULL;
    char e2[512];
    int rc;

    if (!d->c->model) {
        d->T = d->c->window_length;
        d->F = d->c->features.n;
        d->features = d->c->features.v;
        return 0;
    }
    if ((rc = ad_model_load(&m, d->c->model, e2, sizeof e2)))
        return ad_errf(err, errlen, rc, "%s: detectors[%d].model: %s", path, i, e2);
    if (!(d->mr = mr_new(m))) {
        ad_model_free(m);
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    }
    d->T = m->window;
    d->F = m->n_features;
    d->features = m->features;
    for (int f = 0; d->c->features.n && f < d->F; f++)
        if (d->c->features.n != d->F || strcmp(d->c->features.v[f], d->features[f]))
            return ad_errf(err, errlen, AD_EINVAL, "%s: detectors[%d].training."
                           "features: differ from the model's", path, i);
    return 0;
}

/* quality.ranges names features of the model (or training.features),
 * also with quality.enabled false: a typo is not kept for later. */
static int det_check_ranges(const det_rt *d, int i, const char *path, char *err,
                            size_t errlen)
{
    const ad_rangemap *r = &d->c->dq_ranges;
    ad_buf names = { 0 };
    int j, f, rc;

    for (j = 0; j < r->n; j++) {
        for (f = 0; f < d->F; f++)
            if (strcmp(r->name[j], d->features[f]) == 0)
                break;
        if (f < d->F)
            continue;
        for (f = 0; f < d->F; f++)
            ad_buf_printf(&names, "%s%s", f ? ", " : "", d->features[f]);
        rc = ad_errf(err, errlen, AD_EINVAL, "%s: detectors[%d].quality.ranges.%.128s: not a "
                     "feature of %s (its features: %.300s)", path, i, r->name[j],
                     d->c->model ? "the model" : "training.features",
                     names.s ? names.s : "");
        ad_buf_free(&names);
        return rc;
    }
    return 0;
}

static const char *state_dir_override;     /* --state-dir */

void ad_daemon_set_state_dir(const char *dir)
{
    state_dir_override = dir;
}

static void log_topic_warnings(const ad_config *cfg);

/* gen_load; log_warnings: log what check_topics() finds (not for `check`,
 * which prints it). */
static int gen_load_ex(gen **out, const char *path, int log_warnings, char *err, size_t errlen)
{
    gen *g = calloc(1, sizeof *g);
    char e2[512], pp[64];
    int rc;

    *out = NULL;
    if (!g)
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    if ((rc = ad_config_load(&g->cfg, path, err, errlen)) ||
        (rc = ad_config_check_run(g->cfg, err, errlen)))
        goto fail;
    if (state_dir_override) {
        char *sd = strdup(state_dir_override);
        if (!sd) {
            rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
            goto fail;
        }
        free(g->cfg->state_dir);
        g->cfg->state_dir = sd;
    }
    if (!(g->dets = calloc((size_t)g->cfg->n_det, sizeof *g->dets))) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
        goto fail;
    }
    g->n = g->cfg->n_det;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        ad_detector *probe = NULL;
        d->c = &g->cfg->det[i];
        if ((rc = det_load_model(d, i, path, err, errlen)))
            goto fail;
        snprintf(pp, sizeof pp, "detectors[%d].payload", i);
        if ((rc = ad_payload_parser_new(&d->parser, &d->c->payload,
                                        (const char *const *)d->features, d->F, pp,
                                        e2, sizeof e2))) {
            rc = ad_errf(err, errlen, rc, "%s: %s", path, e2);
            goto fail;
        }
        if ((rc = det_check_ranges(d, i, path, err, errlen)))
            goto fail;
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
    if (log_warnings)
        log_topic_warnings(g->cfg);
    *out = g;
    return 0;
fail:
    gen_free(g);
    return rc;
}

int gen_load(gen **out, const char *path, char *err, size_t errlen)
{
    return gen_load_ex(out, path, 1, err, errlen);
}

void gen_make_state_dirs(gen *g)
{
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        char err[4400];
        int rc;
        if (!d->state_dir[0])
            continue;
        rc = ad_mkdir_p(d->state_dir, 0750, err, sizeof err);
        if (rc == 0 && access(d->state_dir, W_OK) != 0) {
            snprintf(err, sizeof err, "%s: %s", d->state_dir, strerror(errno));
            rc = AD_EIO;
        }
        /* kept all the same: the writes fail and are tried again (stats
         * state_write_errors, state_files_unwritten), and the directory is
         * made by the first one after the trouble ends (a state_dir
         * read-only or not mounted yet at start). Before, the detector ran
         * without persistence until a reload or restart: nothing written,
         * not even at the stop, and its open alerts lost with it. */
        if (rc)
            ad_log(AD_LOG_WARNING, "state directory %s; the state files are written once it can "
                   "be made (tried again with each write)", err);
    }
}

/* `anomalyd check`: warn when a shared subscription can split a stream. */
static size_t check_share(const ad_detconf *c, char *out, size_t outlen, size_t o)
{
    char w[768];
    if (o < outlen && ad_topic_share_warning(c->topics.v, c->topics.n, c->stream_levels.v,
                                             c->stream_levels.n, w, sizeof w))
        o += (size_t)snprintf(out + o, outlen - o, "warning: detector %s: %s\n", c->name, w);
    return o;
}

/* `anomalyd check`: warn when the threshold learns from normal windows with
 * the plain quantile estimator: every window under the threshold is
 * learned, so a fault that rises slowly beneath it carries it up (the
 * trimmed estimator's fence bounds that; docs/evaluation.md). */
static size_t check_adapt(const ad_detconf *c, char *out, size_t outlen, size_t o)
{
    const ad_thr_cfg *t = &c->pipe.thr;
    if (o < outlen && t->adapt && t->estimator == AD_EST_QUANTILE &&
        (t->method == AD_THR_QUANTILE || t->method == AD_THR_SIGMA))
        o += (size_t)snprintf(out + o, outlen - o,
                              "warning: detector %s: calibration.adapt with estimator "
                              "\"quantile\": a fault that rises slowly below the threshold "
                              "carries it up; estimator \"trimmed\" bounds the threshold by "
                              "the median + fence x MAD\n", c->name);
    return o;
}

/* `anomalyd check`: warn when an alert setting is taken but can do nothing
 * with the others: step-down acceptance and a band run learned as normal
 * both accept a change, and accept nothing with acceptance off; there is
 * no band under a raise ratio of 1. */
static size_t check_alert(const ad_detconf *c, char *out, size_t outlen, size_t o)
{
    const ad_alert_cfg *a = &c->pipe.alert;
    int accept_off = a->accept_after == 0 && a->accept_after_ms == 0;

    if (o < outlen && a->stepdown_ratio > 0 && accept_off)
        o += (size_t)snprintf(out + o, outlen - o,
                              "warning: detector %s: alert.stepdown_ratio %g does nothing "
                              "with acceptance off (alert.accept_after and accept_after_ms "
                              "0): an alert whose level stepped down stays open\n", c->name,
                              a->stepdown_ratio);
    if (o < outlen && a->band == AD_BAND_LEARN && (accept_off || a->raise_ratio == 1))
        o += (size_t)snprintf(out + o, outlen - o,
                              "warning: detector %s: alert.band \"learn\" does nothing %s\n",
                              c->name, a->raise_ratio == 1 ?
                              "with alert.raise_ratio 1 (no windows between the threshold and "
                              "the raise level)" :
                              "with acceptance off (alert.accept_after and accept_after_ms 0): "
                              "a lasting run under the raise level is neither raised nor "
                              "learned");
    return o;
}

/* `anomalyd check`: warn when physical ranges are given to a monitor that
 * is off (quality.enabled false): no value is checked against them. */
static size_t check_quality(const ad_detconf *c, char *out, size_t outlen, size_t o)
{
    if (o < outlen && c->dq_ranges.n > 0 && !c->pipe.dq_enabled)
        o += (size_t)snprintf(out + o, outlen - o,
                              "warning: detector %s: quality.ranges does nothing with "
                              "quality.enabled false: no value is checked against them\n",
                              c->name);
    return o;
}

/* `anomalyd check`: warn when a stream level is past every level a topic
 * filter has (no message on it names a stream: each would be dropped). */
static size_t check_levels(const ad_detconf *c, char *out, size_t outlen, size_t o)
{
    for (int t = 0; t < c->topics.n; t++) {
        const char *f = ad_topic_share_strip(c->topics.v[t]);   /* the topics it matches */
        size_t len = strlen(f);
        int levels = 1;

        if (strcmp(f, "#") == 0 || (len >= 2 && strcmp(f + len - 2, "/#") == 0))
            continue;               /* "#": any depth */
        for (const char *p = f; *p; p++)
            levels += *p == '/';
        for (int i = 0; i < c->stream_levels.n && o < outlen; i++) {
            int l = c->stream_levels.v[i];

            if (l >= levels || -l > levels) {
                o += (size_t)snprintf(out + o, outlen - o, "warning: detector %s: "
                                      "stream_levels %d: topic filter \"%s\" has %d level(s) "
                                      "(0..%d, or -1..-%d from the end): no message on it has a "
                                      "stream key, every one is dropped\n", c->name, l, f,
                                      levels, levels - 1, levels);
                break;
            }
        }
    }
    return o;
}

/* A topic the daemon publishes: a template, whose detector (NULL: none,
 * no {stream}) and the key it has in the config. */
typedef struct pub_topic {
    const char *tmpl, *key;
    const ad_detconf *c;
    int events;                 /* <state topic>/events */
} pub_topic;

static size_t warn_line(char *out, size_t outlen, size_t o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t warn_line(char *out, size_t outlen, size_t o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o >= outlen)
        return o;
    va_start(ap, fmt);
    n = vsnprintf(out + o, outlen - o, fmt, ap);
    va_end(ap);
    return n < 0 ? o : o + (size_t)n;
}

/* 1 if a topic of the command template tmpl (any detector, a stream key of
 * any depth, or none: a topic that stops after {detector} is taken as a
 * command too) could match filter f. */
static int cmd_overlap(const char *f, const char *tmpl)
{
    char head[512];
    const char *det = strstr(tmpl, "{detector}");
    int nlev = 1;

    for (const char *q = f; *q; q++)
        nlev += *q == '/';
    for (int n = 1; n <= nlev; n++)
        if (ad_topic_template_overlap(f, tmpl, NULL, n))
            return 1;
    if (!det || (size_t)(det - tmpl) + 10 >= sizeof head)
        return 0;
    snprintf(head, sizeof head, "%.*s", (int)(det - tmpl) + 10, tmpl);
    return ad_topic_template_overlap(f, head, NULL, 0);
}

/* The topic warnings of commands (commands.enabled): a detector's filter
 * that overlaps commands.topic (its messages there are taken as commands,
 * never as data), and commands.reply_topic matched by a detector's filter
 * (the daemon would take its replies as input), like the other published
 * topics in check_topics. */
static size_t check_cmd_topics(const ad_config *cfg, char *out, size_t outlen, size_t o)
{
    const ad_cmd_cfg *cmd = &cfg->cmd;

    if (!cmd->enabled)
        return o;
    for (int i = 0; i < cfg->n_det; i++) {
        const ad_detconf *c = &cfg->det[i];
        for (int f = 0; f < c->topics.n; f++) {
            if (cmd->topic && cmd_overlap(c->topics.v[f], cmd->topic)) {
                o = warn_line(out, outlen, o, "warning: detector %s: topic filter \"%s\" "
                              "overlaps commands.topic \"%s\": messages there are taken as "
                              "operator commands, never as the detector's data\n", c->name,
                              c->topics.v[f], cmd->topic);
                break;
            }
        }
        for (int f = 0; f < c->topics.n; f++) {
            if (cmd->reply_topic && cmd_overlap(c->topics.v[f], cmd->reply_topic)) {
                o = warn_line(out, outlen, o, "warning: commands.reply_topic \"%s\" matches "
                              "the topic filter \"%s\" of detector %s: the daemon would take "
                              "what it publishes there as input\n", cmd->reply_topic,
                              c->topics.v[f], c->name);
                break;
            }
        }
    }
    return o;
}

/* `anomalyd check` (and the log at start and reload): warn about topics
 * the daemon publishes that it would receive itself through a detector's
 * topic filter (it would consume its own alerts or states as input), a
 * retained state topic without {stream} (every stream overwrites one
 * message) and two kinds of message on one topic. */
static size_t check_topics(const ad_config *cfg, char *out, size_t outlen, size_t o)
{
    pub_topic *p = malloc((3 * (size_t)cfg->n_det + 2) * sizeof *p);
    int n = 0;

    if (!p)
        return o;
    for (int i = 0; i < cfg->n_det; i++) {
        const ad_detconf *c = &cfg->det[i];
        if (c->alert_topic && c->alerts_to != AD_ALERTS_KAFKA)
            p[n++] = (pub_topic){ c->alert_topic, "alert.topic", c, 0 };
        if (c->state_topic) {
            p[n++] = (pub_topic){ c->state_topic, "alert.state_topic", c, 0 };
            p[n++] = (pub_topic){ c->state_topic, "alert.state_topic's events topic", c, 1 };
            if (!strstr(c->state_topic, "{stream}") && c->stream_levels.n > 0)
                o = warn_line(out, outlen, o, "warning: detector %s: alert.state_topic "
                              "\"%s\" has no {stream}: every stream overwrites one retained "
                              "state\n", c->name, c->state_topic);
            if (c->alert_topic && c->alerts_to != AD_ALERTS_KAFKA &&
                strcmp(c->state_topic, c->alert_topic) == 0)
                o = warn_line(out, outlen, o, "warning: detector %s: alert.state_topic and "
                              "alert.topic are both \"%s\": retained states and alert "
                              "events mix on one topic\n", c->name, c->state_topic);
        }
    }
    if (cfg->broker.status_topic)
        p[n++] = (pub_topic){ cfg->broker.status_topic, "broker.status_topic", NULL, 0 };
    if (cfg->broker.stats_topic && cfg->broker.stats_interval > 0)
        p[n++] = (pub_topic){ cfg->broker.stats_topic, "broker.stats_topic", NULL, 0 };
    if (cfg->broker.status_topic && cfg->broker.stats_topic && cfg->broker.stats_interval > 0 &&
        strcmp(cfg->broker.status_topic, cfg->broker.stats_topic) == 0)
        o = warn_line(out, outlen, o, "warning: broker.stats_topic and broker.status_topic "
                      "are both \"%s\": each stats message replaces the retained "
                      "online/offline status\n", cfg->broker.status_topic);
    for (int k = 0; k < n; k++) {
        char t[600];
        const char *dn = p[k].c ? p[k].c->name : NULL;
        int nlev = p[k].c ? p[k].c->stream_levels.n : 0;

        snprintf(t, sizeof t, "%s%s", p[k].tmpl, p[k].events ? "/events" : "");
        for (int i = 0; i < cfg->n_det; i++) {
            const ad_detconf *c = &cfg->det[i];
            for (int f = 0; f < c->topics.n; f++) {
                if (!ad_topic_template_overlap(c->topics.v[f], t, dn, nlev))
                    continue;
                if (p[k].c == c)
                    o = warn_line(out, outlen, o, "warning: detector %s: %s \"%s\" matches "
                                  "its own topic filter \"%s\": the daemon would take what it "
                                  "publishes there as input\n", dn, p[k].key, t,
                                  c->topics.v[f]);
                else if (dn)
                    o = warn_line(out, outlen, o, "warning: detector %s: %s \"%s\" matches "
                                  "the topic filter \"%s\" of detector %s: the daemon would "
                                  "take what it publishes there as input\n", dn, p[k].key, t,
                                  c->topics.v[f], c->name);
                else
                    o = warn_line(out, outlen, o, "warning: %s \"%s\" matches the topic "
                                  "filter \"%s\" of detector %s: the daemon would take what "
                                  "it publishes there as input\n", p[k].key, t,
                                  c->topics.v[f], c->name);
                break;
            }
        }
    }
    free(p);
    return check_cmd_topics(cfg, out, outlen, o);
}

/* Log each line of check_topics() as a warning (start and reload). */
static void log_topic_warnings(const ad_config *cfg)
{
    char buf[8192], *line, *save = NULL;

    buf[0] = '\0';
    check_topics(cfg, buf, sizeof buf, 0);
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        ad_log(AD_LOG_WARNING, "%s: %s", cfg->path ? cfg->path : "config",
               strncmp(line, "warning: ", 9) == 0 ? line + 9 : line);
}

/* `anomalyd check`: warn when a directory the daemon writes to is not
 * writable here (it would run on, without what it keeps there). */
static size_t check_dir(const char *what, const char *path, int is_file, const char *loss,
                        char *out, size_t outlen, size_t o)
{
    char dir[4096], *slash;

    if (path == NULL || o >= outlen)
        return o;
    snprintf(dir, sizeof dir, "%s", path);
    if (is_file) {
        slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    /* a directory the daemon creates: its nearest existing parent counts */
    while (!is_file && access(dir, F_OK) != 0 && (slash = strrchr(dir, '/')) != NULL)
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    if (!is_file && access(dir, F_OK) != 0 && strchr(dir, '/') == NULL)
        snprintf(dir, sizeof dir, ".");     /* relative, no existing part */
    /* by making a directory there (access() says yes to root on /proc) */
    {
        char t[4200];
        int e;

        snprintf(t, sizeof t, "%s/.anomalyd-check-XXXXXX", dir);
        if (mkdtemp(t) != NULL) {
            rmdir(t);
            return o;
        }
        e = errno;
        o += (size_t)snprintf(out + o, outlen - o, "warning: %s %s: %s is not writable here "
                              "(%s): %s\n", what, path, dir, strerror(e), loss);
    }
    return o;
}

int ad_daemon_check(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    gen *g = NULL;
    int rc = gen_load_ex(&g, path, 0, err, errlen);
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
            o = check_share(d->c, out, outlen, o);
            o = check_adapt(d->c, out, outlen, o);
            o = check_levels(d->c, out, outlen, o);
            o = check_alert(d->c, out, outlen, o);
            o = check_quality(d->c, out, outlen, o);
        }
        o = check_topics(g->cfg, out, outlen, o);
        o = check_dir("state_dir", g->cfg->state_dir, 0, "calibration, open alerts and "
                      "learned models would not be kept across restarts", out, outlen, o);
        o = check_dir("metrics.textfile", g->cfg->metrics.textfile, 1, "no metrics would be "
                      "written", out, outlen, o);
    }
    gen_free(g);
    return 0;
}
