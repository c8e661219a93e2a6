/*
 * metrics.c - the Prometheus text file (see metrics.h): exposition text
 * built on the loop from the stats object and the stream tables, written
 * by ad_write_file_atomic on the libuv thread pool.
 *
 * Ownership: struct metrics_w is the daemon's; the text and path of a write
 * in flight are owned by it until the after-callback.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"
#include "metrics.h"

typedef struct metrics_w {
    uv_work_t w;
    int busy, warned_busy, failed;
    char *path, *text;
    size_t len;
    char err[320];
} metrics_w;

/* One value of the stats object as a metric family. */
typedef struct fam {
    const char *path;           /* "messages_in", "mqtt.published" */
    const char *name;           /* without the anomalyd_ prefix */
    const char *type;           /* counter | gauge */
    const char *help;
    double scale;               /* 0: 1 */
} fam;

static const fam fams[] = {
    { "uptime_s", "uptime_seconds", "gauge", "Seconds since the daemon started.", 0 },
    { "messages_in", "messages_received_total", "counter", "MQTT messages received.", 0 },
    { "parse_errors", "parse_errors_total", "counter", "Messages whose payload could not be parsed.", 0 },
    { "status_messages", "status_messages_total", "counter", "Messages carrying a device's presence word (a last will such as \"offline\") where data belongs: no data, not counted as parse errors.", 0 },
    { "nonfinite", "nonfinite_messages_total", "counter", "Messages carrying a NaN or Inf value (refused, the message's other values taken).", 0 },
    { "nonnumeric", "nonnumeric_messages_total", "counter", "Messages carrying a value that is not a number (refused, the message's other values taken).", 0 },
    { "unknown_fields", "unknown_fields_total", "counter", "Payload fields no feature maps.", 0 },
    { "oversized", "oversized_messages_total", "counter", "Messages over max_payload_bytes.", 0 },
    { "no_detector", "unmatched_messages_total", "counter", "Messages whose topic matches no detector.", 0 },
    { "no_stream_key", "no_stream_key_total", "counter", "Messages without the stream key levels.", 0 },
    { "handover_skipped", "kafka_handover_skipped_total", "counter", "Kafka records read again after a hand-over and skipped: the stream's hand-over state held them.", 0 },
    { "samples", "samples_total", "counter", "Samples (feature values) parsed from payloads; a JSON row of 5 features is 5.", 0 },
    { "dropped_samples", "dropped_samples_total", "counter", "Samples (feature values) refused by row assembly; a refused row counts its values.", 0 },
    { "rows_overflow", "rows_overflow_total", "counter", "Assembled rows lost because a stream's row queue was full.", 0 },
    { "streams", "streams", "gauge", "Live streams.", 0 },
    { "streams_refused", "streams_refused_total", "counter", "Messages of new streams refused at max_streams.", 0 },
    { "streams_evicted", "streams_evicted_total", "counter", "Streams evicted when idle or at max_streams.", 0 },
    { "windows_scored", "windows_scored_total", "counter", "Windows scored.", 0 },
    { "windows_stale", "windows_stale_total", "counter", "Scores ignored as stale.", 0 },
    { "alerts_raised", "alerts_raised_total", "counter", "Alerts raised.", 0 },
    { "alerts_cleared", "alerts_cleared_total", "counter", "Alerts cleared or closed.", 0 },
    { "alerts_active", "alerts_open", "gauge", "Alerts open now.", 0 },
    { "trainings", "trainings_total", "counter", "Online trainings finished.", 0 },
    { "training_failures", "training_failures_total", "counter", "Online trainings failed.", 0 },
    { "adapt_running", "adapt_jobs_running", "gauge", "Continual-learning fine-tunes on the workers now.", 0 },
    { "adapt_unoffered", "adapt_unoffered_windows_total", "counter", "Windows scored that continual learning never saw: more out at once than a stream keeps copies of.", 0 },
    { "state_files_removed", "state_files_removed_total", "counter", "State files removed by retention (state_retain_days).", 0 },
    { "state_bytes_removed", "state_removed_bytes_total", "counter", "Bytes of the state files removed by retention.", 0 },
    { "state_write_errors", "state_write_errors_total", "counter", "Failed writes of state_dir files (each attempt; a file is tried again until written).", 0 },
    { "state_files_unwritten", "state_files_unwritten", "gauge", "State files behind a state whose write failed: not on disk yet (counted until a write of the file succeeds, also while a retry is in flight).", 0 },
    { "state_files_lost", "state_files_lost_total", "counter", "Unwritten states dropped (the oldest) over the limit of files kept for a retry.", 0 },
    { "inference.batches", "inference_batches_total", "counter", "Forward-pass batches.", 0 },
    { "inference.workers", "inference_workers", "gauge", "Inference worker threads.", 0 },
    { "inference.spare_batches", "inference_spare_batches", "gauge", "Window batches allocated and not in use (kept for reuse).", 0 },
    { "cpu_s.process", "process_cpu_seconds_total", "counter", "CPU seconds of the process.", 0 },
    { "cpu_s.workers", "model_cpu_seconds_total", "counter", "CPU seconds in the model on workers.", 0 },
    { "max_rss_kb", "max_resident_memory_bytes", "gauge", "Peak resident memory.", 1024 },
    { "memory.rss_kb", "resident_memory_bytes", "gauge", "Resident memory now.", 1024 },
    { "memory.heap_kb", "heap_in_use_bytes", "gauge", "Heap handed out by the allocator (glibc), in use.", 1024 },
    { "memory.heap_free_kb", "heap_free_bytes", "gauge", "Heap the allocator holds free in its arenas (glibc).", 1024 },
    { "mqtt.connected", "mqtt_connected", "gauge", "1 while connected to the broker.", 0 },
    { "mqtt.connects", "mqtt_connects_total", "counter", "Successful broker connections.", 0 },
    { "mqtt.connect_failures", "mqtt_connect_failures_total", "counter", "Failed broker connection attempts.", 0 },
    { "mqtt.subscriptions_denied", "mqtt_subscriptions_denied", "gauge", "Subscriptions the broker refused.", 0 },
    { "mqtt.published", "mqtt_published_total", "counter", "Messages handed to the MQTT client.", 0 },
    { "mqtt.queued", "mqtt_queued", "gauge", "Messages queued while disconnected.", 0 },
    { "mqtt.queue_dropped", "mqtt_dropped_total", "counter", "Messages dropped: queue full or QoS 0 while away.", 0 },
    { "mqtt.publish_refused", "mqtt_publish_refused_total", "counter", "QoS>0 messages the broker refused (MQTT 5 reason code), dropped.", 0 },
    { "mqtt.alerts_refused", "mqtt_alerts_refused_total", "counter", "Alert messages the broker refused (MQTT 5 reason code), dropped.", 0 },
};

static const cJSON *at_path(const cJSON *o, const char *path)
{
    char key[64];
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path = dot + 1;
    }
    return cJSON_GetObjectItemCaseSensitive(o, path);
}

static void head(ad_buf *b, const char *name, const char *type, const char *help)
{
    ad_buf_printf(b, "# HELP anomalyd_%s %s\n# TYPE anomalyd_%s %s\n", name, help, name, type);
}

/* v in the exposition format (Go's ParseFloat spellings for the specials). */
static void value(ad_buf *b, double v)
{
    if (isnan(v)) ad_buf_puts(b, "NaN");
    else if (isinf(v)) ad_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else ad_buf_printf(b, "%.17g", v);
}

/* A label value with \, " and newline escaped. */
static void label(ad_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\') ad_buf_puts(b, "\\\\");
        else if (*s == '"') ad_buf_puts(b, "\\\"");
        else if (*s == '\n') ad_buf_puts(b, "\\n");
        else ad_buf_put(b, s, 1);
    }
}

static void global_fams(ad_buf *b, const cJSON *stats)
{
    static const char *const lq[] = { "p50", "0.5", "p90", "0.9", "p99", "0.99" };
    static const char *const cmd[] = { "ok", "bad_json", "unknown_stream", "unknown_command",
                                       "refused" };
    const cJSON *x;
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        x = at_path(stats, fams[i].path);
        if (!x)
            continue;
        head(b, fams[i].name, fams[i].type, fams[i].help);
        ad_buf_printf(b, "anomalyd_%s ", fams[i].name);
        value(b, (cJSON_IsBool(x) ? (double)cJSON_IsTrue(x) : x->valuedouble) *
              (fams[i].scale > 0 ? fams[i].scale : 1));
        ad_buf_puts(b, "\n");
    }
    head(b, "inference_latency_seconds", "gauge",
         "Inference latency quantiles over the last 4096 windows.");
    for (int i = 0; i < 3; i++) {
        x = at_path(stats, "inference.latency_ms");
        x = cJSON_GetObjectItemCaseSensitive(x, lq[2 * i]);
        ad_buf_printf(b, "anomalyd_inference_latency_seconds{quantile=\"%s\"} ", lq[2 * i + 1]);
        value(b, cJSON_IsNumber(x) ? x->valuedouble / 1000.0 : NAN);
        ad_buf_puts(b, "\n");
    }
    head(b, "commands_total", "counter", "Operator commands by result.");
    for (int i = 0; i < 5; i++) {
        x = cJSON_GetObjectItemCaseSensitive(at_path(stats, "commands"), cmd[i]);
        ad_buf_printf(b, "anomalyd_commands_total{result=\"%s\"} ", cmd[i]);
        value(b, cJSON_IsNumber(x) ? x->valuedouble : 0);
        ad_buf_puts(b, "\n");
    }
}

static void detector_fams(ad_buf *b, ad_daemon *dd)
{
    static const char *const ph[] = { "collecting", "training", "calibrating", "detecting" };
    gen *g = dd->g;
    head(b, "detector_streams", "gauge", "Live streams of a detector by phase.");
    for (int i = 0; i < g->n; i++) {
        uint64_t n[5] = {0};
        MAP_FOREACH(&g->dets[i].streams, s) {
            ad_detector_summary su;
            if (!s->d) { n[4]++; continue; }
            ad_detector_summarize(s->d, &su);
            n[(unsigned)su.phase < 4 ? su.phase : 4]++;
        }
        for (int p = 0; p < 5; p++) {
            ad_buf_puts(b, "anomalyd_detector_streams{detector=\"");
            label(b, g->dets[i].c->name);
            ad_buf_printf(b, "\",phase=\"%s\"} %llu\n", p < 4 ? ph[p] : "restoring",
                          (unsigned long long)n[p]);
        }
    }
    head(b, "detector_alerts_open", "gauge", "Open alerts of a detector.");
    for (int i = 0; i < g->n; i++) {
        uint64_t n = 0;
        MAP_FOREACH(&g->dets[i].streams, s) {
            ad_detector_summary su;
            if (!s->d) continue;
            ad_detector_summarize(s->d, &su);
            n += su.alert_active != 0;
        }
        ad_buf_puts(b, "anomalyd_detector_alerts_open{detector=\"");
        label(b, g->dets[i].c->name);
        ad_buf_printf(b, "\"} %llu\n", (unsigned long long)n);
    }
    /* what continual learning, regime acceptance and data quality did:
     * sums over the detector's live streams (gauges: an evicted stream's
     * part leaves with it), one pass over the streams */
    {
        enum { NSF = 11 };
        static const struct { const char *name, *help; } sf[NSF] = {
            { "detector_regimes_remembered", "Accepted regimes the live streams remember." },
            { "detector_regimes_accepted", "Regimes accepted by the live streams." },
            { "detector_windows_regime", "Windows judged against an accepted regime's threshold." },
            { "detector_dq_open", "Open data-quality conditions of the live streams." },
            { "detector_models_promoted", "Candidate models promoted by the live streams." },
            { "detector_models_rejected", "Candidate models rejected by the live streams." },
            { "detector_candidates_in_shadow", "Streams with a candidate model in shadow." },
            { "detector_streams_drifted", "Streams whose continual learning has drifted from "
              "the reference model (adapt.drift_ratio)." },
            { "detector_reloads_waiting", "Streams with a reloaded model file waiting to go "
              "into shadow (reload.shadow)." },
            { "detector_models_retired", "Replaced models kept while windows in flight may "
              "still read them." },
            { "detector_windows_kept", "Windows over the threshold that raised nothing: "
              "they moved the way a change an alert left behind moved the rows." },
        };
        uint64_t *sum = calloc((size_t)g->n * NSF + 1, sizeof *sum);
        if (!sum) {
            b->oom = 1;
            return;
        }
        for (int i = 0; i < g->n; i++) {
            uint64_t *v = sum + (size_t)i * NSF;
            MAP_FOREACH(&g->dets[i].streams, s) {
                ad_detector_stats st;
                if (!s->d) continue;
                ad_detector_get_stats(s->d, &st);
                v[0] += (uint64_t)st.regimes;
                v[1] += st.accepted;
                v[2] += st.windows_regime;
                v[3] += (uint64_t)st.dq_active;
                v[4] += st.adapt_promoted;
                v[5] += st.adapt_rejected;
                v[6] += st.adapt_shadow != 0;
                v[7] += st.adapt_drifted != 0;
                v[8] += st.reload_waiting[0] != '\0';
                v[9] += st.models_retired;
                v[10] += st.windows_kept;
            }
        }
        for (int f = 0; f < NSF; f++) {
            head(b, sf[f].name, "gauge", sf[f].help);
            for (int i = 0; i < g->n; i++) {
                ad_buf_printf(b, "anomalyd_%s{detector=\"", sf[f].name);
                label(b, g->dets[i].c->name);
                ad_buf_printf(b, "\"} %llu\n", (unsigned long long)sum[(size_t)i * NSF + f]);
            }
        }
        free(sum);
    }
    head(b, "detector_streams_refused_total", "counter", "Messages of new streams refused at max_streams.");
    for (int i = 0; i < g->n; i++) {
        ad_buf_puts(b, "anomalyd_detector_streams_refused_total{detector=\"");
        label(b, g->dets[i].c->name);
        ad_buf_printf(b, "\"} %llu\n", (unsigned long long)g->dets[i].refused);
    }
    head(b, "detector_streams_evicted_total", "counter", "Streams evicted when idle or at max_streams.");
    for (int i = 0; i < g->n; i++) {
        ad_buf_puts(b, "anomalyd_detector_streams_evicted_total{detector=\"");
        label(b, g->dets[i].c->name);
        ad_buf_printf(b, "\"} %llu\n", (unsigned long long)g->dets[i].evicted);
    }
}

/* One per-stream family: which 0 score, 1 threshold, 2 alert open. */
static void stream_fam(ad_buf *b, ad_daemon *dd, int which, uint64_t *omitted)
{
    static const char *const nm[] = { "stream_score", "stream_threshold", "stream_alert_open" };
    static const char *const hp[] = { "Last (smoothed) anomaly score of a stream.",
                                      "Alert threshold of a stream (NaN until calibrated).",
                                      "1 while the stream's alert is open." };
    gen *g = dd->g;
    int cap = g->cfg->metrics.max_streams;
    head(b, nm[which], "gauge", hp[which]);
    for (int i = 0; i < g->n; i++) {
        int k = 0;
        MAP_FOREACH(&g->dets[i].streams, s) {
            ad_detector_stats st;
            if (!s->d)
                continue;
            if (k++ >= cap) {
                if (which == 0) omitted[i]++;
                continue;
            }
            ad_detector_get_stats(s->d, &st);
            ad_buf_printf(b, "anomalyd_%s{detector=\"", nm[which]);
            label(b, g->dets[i].c->name);
            ad_buf_puts(b, "\",stream=\"");
            label(b, s->key);
            ad_buf_puts(b, "\"} ");
            value(b, which == 0 ? st.last_smoothed : which == 1 ? st.threshold :
                  (double)(st.alert_active != 0));
            ad_buf_puts(b, "\n");
        }
    }
}

static void stream_fams(ad_buf *b, ad_daemon *dd)
{
    gen *g = dd->g;
    uint64_t *omitted = calloc((size_t)g->n + 1, sizeof *omitted);
    if (!omitted) {
        b->oom = 1;
        return;
    }
    for (int w = 0; w < 3; w++)
        stream_fam(b, dd, w, omitted);
    head(b, "stream_series_omitted", "gauge",
         "Streams without per-stream series (over metrics.max_streams).");
    for (int i = 0; i < g->n; i++) {
        ad_buf_puts(b, "anomalyd_stream_series_omitted{detector=\"");
        label(b, g->dets[i].c->name);
        ad_buf_printf(b, "\"} %llu\n", (unsigned long long)omitted[i]);
    }
    free(omitted);
}

static void write_work(uv_work_t *w)
{
    metrics_w *m = w->data;
    /* read by node_exporter, another user: world-readable (statistics only) */
    m->failed = ad_write_file_atomic_mode(m->path, m->text, m->len, 0644, m->err,
                                          sizeof m->err) != 0;
}

static void write_after(uv_work_t *w, int status)
{
    metrics_w *m = w->data;
    if (status || m->failed)
        ad_log(AD_LOG_WARNING, "metrics: cannot write %s: %s", m->path,
               status ? uv_strerror(status) : m->err);
    free(m->text);
    free(m->path);
    m->text = m->path = NULL;
    m->busy = 0;
}

void metrics_write(ad_daemon *dd, const cJSON *stats)
{
    const ad_metrics_cfg *c = &dd->g->cfg->metrics;
    metrics_w *m = dd->metrics;
    ad_buf b = { 0 };
    if (!c->textfile)
        return;
    if (!m && !(m = dd->metrics = calloc(1, sizeof *m)))
        return;
    if (m->busy) {
        if (!m->warned_busy++)
            ad_log(AD_LOG_WARNING, "metrics: %s still being written, one update skipped",
                   c->textfile);
        return;
    }
    global_fams(&b, stats);
    detector_fams(&b, dd);
    if (c->per_stream)
        stream_fams(&b, dd);
    if (b.oom || !b.s || !(m->path = strdup(c->textfile))) {
        ad_buf_free(&b);
        ad_log(AD_LOG_WARNING, "metrics: out of memory");
        return;
    }
    m->text = b.s;
    m->len = b.len;
    m->busy = 1;
    m->w.data = m;
    if (uv_queue_work(dd->loop, &m->w, write_work, write_after) != 0) {
        write_work(&m->w);          /* no thread pool: write here */
        write_after(&m->w, 0);
    }
}

void metrics_free(ad_daemon *dd)
{
    if (!dd->metrics)
        return;
    free(dd->metrics->text);
    free(dd->metrics->path);
    free(dd->metrics);
    dd->metrics = NULL;
}
