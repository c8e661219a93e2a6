/*
 * daemon.h - the anomalyd service: configuration generations, the streams of
 * every detector, message handling, batching windows to the workers, alert
 * publication, statistics, SIGHUP reload, graceful shutdown.
 *
 * One libuv loop owns all I/O and all pipeline state (lib/detector.h
 * objects are used only on the loop thread); inference and training run on
 * the worker threads (workers.h); MQTT is mqtt.h.
 *
 * Streams: a stream is one device of one detector, keyed by the topic levels
 * of detectors[].stream_levels. New streams beyond max_streams are refused
 * (counted); streams idle for idle_evict_s are saved and dropped.
 *
 * State directory layout:
 *   outbox.json                      messages the broker did not get yet:
 *                                    queued, and alert messages not
 *                                    acknowledged; alert events the Kafka
 *                                    cluster has not taken (docs/alerts.md)
 * and in state_dir/<detector>/:
 *   <stream>.state.json              calibration state and the open alert
 *                                    (ad_detector_save), the operator's
 *                                    feedback (command.h), where the open
 *                                    alert was raised ("alert_topic":
 *                                    {"alert_id", "topic" (MQTT),
 *                                    "kafka_topic", "features"}, state.c),
 *                                    the MQTT topics its messages
 *                                    came on ("topics": [...], "topics_more":
 *                                    true when there were more than were
 *                                    kept) and what it keeps retained on the
 *                                    broker ("published": {"detector",
 *                                    "state_topic", "ha_topics", "feed",
 *                                    "kafka", "alerts_to"},
 *                                    emptied at start when its detector is
 *                                    gone or no longer feeds it, or those
 *                                    topics moved)
 *   <stream>.<tag>.safetensors       model trained online for the stream;
 *                                    tag = base model id (or "boot") and
 *                                    settings hash, so it is reused only when
 *                                    both are unchanged
 *   <stream>.<tag>.reference.safetensors
 *                                    the reference of its drift measure
 *                                    when not the configured model
 * (<stream> is the stream key with every byte outside [A-Za-z0-9._-]
 * written as %XX; beyond 160 bytes it is cut and ends in "~" and the
 * FNV-1a 64 hash of the key. Files are replaced atomically through
 * temporary files "<name>.tmp~<pid>.<random>", removed at start when a
 * crash left them. The files of streams gone for state_retain_days, and
 * model files of another tag as old, are removed: retain.c.)
 */
#ifndef AD_DAEMON_H
#define AD_DAEMON_H

#include <stddef.h>
#include "config.h"

/*
 * Run the daemon with the config file at `path` until SIGTERM/SIGINT.
 * Returns the process exit status (0 after a clean stop, 1 when the config
 * or a model cannot be loaded at start, message logged).
 */
int ad_daemon_run(const char *path);

/*
 * `anomalyd check`: parse and validate the config, load every model, check
 * every detector's settings against its model (feature mapping, metric of
 * method model). No network. Returns 0 or a negative code with a message.
 * On success, writes a one-line summary per detector into out (may be NULL).
 */
int ad_daemon_check(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/*
 * `--state-dir DIR`: every configuration loaded from now on (at start and
 * on each reload) keeps its state in DIR instead of its `state_dir` (NULL:
 * the config's). Lets one config file serve several instances (the unit
 * template anomalyd@.service passes /var/lib/anomalyd/%i). Call before
 * ad_daemon_run / ad_daemon_check; the string must outlive them.
 */
void ad_daemon_set_state_dir(const char *dir);

#endif /* AD_DAEMON_H */
