/*
 * metrics.h - the daemon's statistics as a Prometheus text file for
 * node_exporter's textfile collector (node_exporter
 * --collector.textfile.directory=DIR reads the DIR/NAME.prom files): with
 * "metrics": {"textfile": "/var/lib/node_exporter/textfile/anomalyd.prom"}
 * the file is rewritten atomically (temporary file, fsync, rename) at
 * every stats interval (broker.stats_interval_s) and at a clean stop,
 * off the loop thread.
 *
 * FORMAT: Prometheus text exposition format 0.0.4. Every family has one
 * # HELP and one # TYPE line; names start with anomalyd_; counters end in
 * _total; label values escape \, " and newline. Families:
 *   process-wide counters and gauges from the stats (messages, samples,
 *   windows, alerts, trainings, commands by result, MQTT, CPU, latency
 *   quantiles as gauges);
 *   per detector (label detector): streams by phase, alerts open, streams
 *   refused and evicted;
 *   per stream (labels detector, stream; only with metrics.per_stream, at
 *   most metrics.max_streams streams per detector, the rest counted in
 *   anomalyd_stream_series_omitted): score, threshold, alert open.
 *
 * Ownership: the writer state (ad_daemon.metrics) is created on first use
 * and freed by metrics_free() after the loop ran dry.
 */
#ifndef AD_METRICS_H
#define AD_METRICS_H

#include <cJSON.h>

struct ad_daemon;

/* Write the metrics file from the stats object `stats` (publish.c builds
 * it) and the daemon's streams; nothing when metrics.textfile is unset. A
 * write still in flight makes this one skip (logged once per run). */
void metrics_write(struct ad_daemon *dd, const cJSON *stats);

/* Free the writer (after the loop: no write in flight). NULL-safe. */
void metrics_free(struct ad_daemon *dd);

#endif /* AD_METRICS_H */
