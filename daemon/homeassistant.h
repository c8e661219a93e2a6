/*
 * homeassistant.h - Home Assistant MQTT discovery: with
 * "homeassistant": {"enabled": true} every stream announces three entities
 * grouped as one device, and keeps their state on a retained topic.
 *
 * DISCOVERY (retained), per stream, node_id = broker.client_id and
 * object_id = <detector>_<stream> (characters outside [A-Za-z0-9_-] as '_',
 * then an 8-hex hash of the real names when anything was replaced, or when
 * another configured detector's name plus '_' starts <detector>: "line_a"
 * beside "line", whose stream "a_b" would otherwise share the ids of
 * "line_a"'s stream "b"; a reload that adds or removes such a detector
 * announces the other's streams again under their new ids and empties the
 * old configs):
 *   <prefix>/binary_sensor/<node_id>/<object_id>/config
 *       "Anomaly", device_class problem: ON while the stream's model alert
 *       or a data-quality condition is open
 *   <prefix>/sensor/<node_id>/<object_id>_score/config
 *       "Anomaly score": the (smoothed) reconstruction error
 *   <prefix>/sensor/<node_id>/<object_id>_severity/config
 *       "Anomaly severity": score / threshold (above 1: over the threshold)
 * Each has name, unique_id (anomalyd_<node_id>_<object_id>[_score|
 * _severity]), state_topic with a value_template, json_attributes_topic,
 * availability on broker.status_topic with value_template
 * "{{ value_json.state }}" (online/offline: the daemon's last will makes
 * them unavailable) and device {identifiers, name "<detector> <stream>",
 * model ("anomaly detector <detector>, model <id>": published again when
 * the stream's model changes), manufacturer "anomalyd", sw_version}.
 *
 * STATE (retained) on homeassistant.state_topic (default
 * anomalyd/ha/{detector}/{stream}): {"problem":"ON"|"OFF","model_alert":
 * bool,"data_quality":open conditions,"alert_id":..,
 * "score":..,"threshold":..,"severity":..,"phase":..,"acknowledged":..}
 * (null where unknown), published with every change of the stream's state
 * and with new scores at most every update_interval_s.
 *
 * REMOVAL. An evicted stream publishes empty retained configs (Home
 * Assistant deletes the entities) and clears its retained state.
 * On every (re)connect all live streams announce themselves again, paced
 * with their retained states (publish_resend_start in daemon_int.h).
 *
 * Ownership: nothing is kept here; per-stream flags live in stream_rec.
 */
#ifndef AD_HOMEASSISTANT_H
#define AD_HOMEASSISTANT_H

#include <cJSON.h>

/* stream_rec.ha_ids: the object ids a stream was announced under */
enum { HA_IDS_PLAIN = 1, HA_IDS_HASHED = 2 };

struct ad_daemon;
struct stream_rec;

/* The stream's state changed: announce it when new (or not yet on this
 * connection), publish its state. Returns the messages published (0 when
 * Home Assistant is off or the stream has no detector yet). */
int ha_stream_state(struct ad_daemon *dd, struct stream_rec *s);
/* The stream's discovery configs are not yet published on this connection,
 * or name another model than the one it runs. */
int ha_stream_unannounced(const struct ad_daemon *dd, const struct stream_rec *s);
/* New scores: publish the state when update_interval_s has passed. */
void ha_stream_tick(struct ad_daemon *dd, struct stream_rec *s);
/* The stream is evicted: remove its entities. */
void ha_stream_removed(struct ad_daemon *dd, struct stream_rec *s);
/* The retained topics of the stream's entities (its three discovery
 * configs, then its entity state), which ha_stream_removed empties: a new
 * array, or NULL when Home Assistant is off (or out of memory). Kept in the
 * stream's state file, so that they can be emptied without the stream
 * (its detector removed while the daemon was stopped). */
cJSON *ha_stream_topics(const struct ad_daemon *dd, const struct stream_rec *s);
/* The same for stream key of detector name, without the stream (the
 * start-up state scan, on the thread pool: it reads only the
 * configuration). */
cJSON *ha_key_topics(const struct ad_daemon *dd, const char *name, const char *key);
/* 1 when detector name's object ids carry a hash because another configured
 * detector's name followed by '_' starts it (see DISCOVERY above). */
struct ad_config;
int ha_name_shadowed(const struct ad_config *cfg, const char *name);

#endif /* AD_HOMEASSISTANT_H */
