/*
 * payload.h - turn one MQTT message into samples (feature, value, time).
 *
 * Formats (config detectors[].payload.format):
 *   number  the payload is one number in text ("21.5", surrounding blanks
 *           allowed); the feature is named by a topic level (feature_level,
 *           default the last), optionally renamed through `fields`
 *           (feature -> level text).
 *   json    a JSON object; each feature is read at a dotted path (fields:
 *           feature -> "a.b.c", array elements by index "a.0"; default the
 *           feature's own name at top level). Numbers or numeric strings.
 *           An optional numeric timestamp field (unix epoch in s, ms or us).
 *           Features missing from a message are simply absent (the row
 *           assembler carries values); top-level members that map to no
 *           feature are counted as unknown fields.
 *   senml   SenML JSON (RFC 8428): an array of records with base fields
 *           (bn, bt, bv) applied to the records that follow; name = bn+n
 *           (minus the configured senml_base prefix) matched to a feature
 *           through `fields` (feature -> name) or by equal name, else the
 *           record's own n alone (bn usually names the device); time =
 *           bt+t, relative to now when below 2^28 (RFC 8428 section 4.5.3),
 *           arrival time when absent; value = bv+v. Records with no v
 *           (vs, vb, vd, s instead) are counted as unknown; a v that is
 *           not a number is refused (below).
 *
 * REFUSED VALUES. A message whose shape is right keeps its good values: a
 * feature's value that is not a number (text, a boolean, an object or an
 * array where a number belongs, "0x10", a SenML v that is not a number;
 * for `number`, the whole payload's text) or not finite (1e999, "NaN",
 * "inf", a SenML bv + v past DBL_MAX) is refused for that feature alone.
 * It comes out as a sample with `refused` set (AD_SAMPLE_NONNUMERIC,
 * AD_SAMPLE_NONFINITE) and value NaN, so that the caller counts it against
 * the feature (its row gets the feature as missing) and knows the device
 * is alive; on success, err then says which values were refused and why
 * (the first three, naming their fields; "" when none was). JSON null is
 * no value: the feature is absent, as when its field is missing.
 *
 * A message that yields no sample, good or refused, is an error, and so
 * is one whose shape is wrong: not JSON, text after the value, a JSON
 * root that is not an object (json) or an array of objects (senml), an
 * empty payload, a bad SenML base field, name or time, a timestamp that
 * is not a finite number or is outside the time a stream can hold.
 * Errors (AD_EFORMAT malformed, AD_ENONFINITE, AD_ERANGE, AD_ENOENT no
 * known feature) come with a short message for the rate-limited log.
 *
 * STATUS TEXT (json, senml). A presence word where a JSON object or array
 * belongs is a device's status, typically its MQTT last will or birth
 * message on the topic its data comes on, not malformed data:
 * AD_PAYLOAD_STATUS (positive, no sample, err says what it was). The
 * words, in any case, bare or as a JSON string ("offline"), blanks around
 * allowed: online, offline (Tasmota's LWT Online / Offline, Zigbee2MQTT's
 * and ESPHome's availability), connected, disconnected, lost, ready, init,
 * sleeping (Homie's $state), alive, dead. Homie's `alert` is left out: it
 * says the device needs help, which must not pass silently. Any other
 * text ("error", "ERR 5", "null", "true", "0", "1", a number bare or
 * quoted, "connection lost") is malformed as before: the stream's
 * `rejected` data-quality check, a device that talks. The number format
 * has no such case: its payload is a value.
 */
#ifndef AD_PAYLOAD_H
#define AD_PAYLOAD_H

#include <stddef.h>
#include "config.h"

enum {
    AD_SAMPLE_NONFINITE = 1,    /* a number that is not finite */
    AD_SAMPLE_NONNUMERIC = 2    /* not a number */
};

/* ad_payload_parse: a status text (STATUS TEXT), not data */
#define AD_PAYLOAD_STATUS 1
#define AD_PAYLOAD_STATUS_MAX 12     /* the longest presence word */

typedef struct ad_sample {
    int feature;       /* index in the model's features */
    int refused;       /* 0: a value; else AD_SAMPLE_*: refused, value NaN */
    double value;
    double time;       /* unix seconds; NAN: use the arrival time */
} ad_sample;

typedef struct ad_payload_parser ad_payload_parser;

/*
 * Compile a parser for a payload config and the model's feature names
 * (copied). Every key of cfg->fields must be a feature; errors say so with
 * `path` (e.g. "detectors[0].payload") as prefix.
 */
int ad_payload_parser_new(ad_payload_parser **out, const ad_payload_cfg *cfg,
                          const char *const *features, int n_features,
                          const char *path, char *err, size_t errlen);
void ad_payload_parser_free(ad_payload_parser *p);   /* NULL-safe */

/*
 * Parse one message. `topic` is the publish topic (number format reads the
 * feature from it), `now` the arrival time (unix seconds, for SenML relative
 * times). Writes up to `max` samples to out, their count to *n and the
 * count of unknown fields/records to *unknown (may be NULL).
 * Returns 0 (err: the values refused, or ""), AD_PAYLOAD_STATUS (a
 * status text, said in err; *n 0) or a negative code with a message in
 * err (*n 0). Thread-safe (the parser is read-only).
 */
int ad_payload_parse(const ad_payload_parser *p, const char *topic,
                     const void *buf, size_t len, double now,
                     ad_sample *out, int max, int *n, int *unknown,
                     char *err, size_t errlen);

/*
 * The same without the fast path for flat JSON objects (always through
 * cJSON): the reference the fast path is tested against. Same contract.
 */
int ad_payload_parse_ref(const ad_payload_parser *p, const char *topic,
                         const void *buf, size_t len, double now,
                         ad_sample *out, int max, int *n, int *unknown,
                         char *err, size_t errlen);

#endif /* AD_PAYLOAD_H */
