/*
 * config.h - the daemon's configuration file (JSON, parsed with cJSON).
 *
 * Every key lives in one table per JSON object (config_keys.c: broker_keys,
 * tls_keys, detector_keys, payload_keys, ...) with its type, range, default
 * and whether a SIGHUP reload may change it (redis static_configs style).
 * The tables drive parsing, defaults, validation, the "unknown key" check,
 * the reload comparison and docs/config.md.
 *
 * Errors name the JSON path of the offending value, e.g.
 *   detectors[1].payload.format: unknown value "xml" (expected number|json|senml)
 *   broker.prot: unknown key (expected host|port|client_id|...)
 * Parsing stops at the first error.
 *
 * Relative file paths (models, TLS files, password file, state directory) are
 * resolved against the directory of the config file, so the daemon may run
 * from any working directory (systemd starts it in /).
 *
 * Ownership: ad_config_load() returns a tree owned by the caller, freed with
 * ad_config_free(). Strings and arrays inside are owned by the tree.
 */
#ifndef AD_CONFIG_H
#define AD_CONFIG_H

#include <stddef.h>
#include "detector.h"

typedef struct ad_strlist { char **v; int n; } ad_strlist;
typedef struct ad_intlist { int *v; int n; } ad_intlist;
typedef struct ad_strmap { char **key; char **val; int n; } ad_strmap;
/* "quality.ranges": feature name -> [min, max], NaN = no limit that side. */
typedef struct ad_rangemap { char **name; double *lo, *hi; int n; } ad_rangemap;

enum { AD_PROTO_311 = 0, AD_PROTO_5 = 1 };
enum { AD_FMT_NUMBER = 0, AD_FMT_JSON = 1, AD_FMT_SENML = 2 };
enum { AD_TS_S = 0, AD_TS_MS = 1, AD_TS_US = 2 };
enum { AD_ASM_CFG_AUTO = 3 };   /* after lib/stream.h ad_asm_mode values */

typedef struct ad_tls_cfg {
    int enabled;
    char *ca_file;              /* PEM CA bundle; NULL: system default path */
    char *ca_path;              /* directory of hashed CAs */
    char *cert_file, *key_file; /* client certificate (both or neither) */
    int verify_hostname;        /* default true */
} ad_tls_cfg;

typedef struct ad_broker_cfg {
    char *host;
    int port;
    char *client_id;
    int keepalive;              /* seconds */
    int protocol;               /* AD_PROTO_* */
    int clean_session;
    int qos_subscribe, qos_alerts;
    char *username;
    char *password_file;        /* first line is the password */
    ad_tls_cfg tls;
    double reconnect_min, reconnect_max;   /* seconds, exponential backoff */
    char *status_topic;         /* retained online/offline + last will */
    char *stats_topic;
    double stats_interval;      /* seconds; 0 disables stats */
    int max_queued_alerts;      /* own bounded queue while disconnected */
} ad_broker_cfg;

typedef struct ad_payload_cfg {
    int format;                 /* AD_FMT_* */
    int feature_level;          /* number: topic level naming the feature
                                   (negative: from the end, -1 = last) */
    ad_strmap fields;           /* json: feature -> dotted path;
                                   senml: feature -> record name */
    char *timestamp;            /* json: dotted path of the time, or NULL */
    int timestamp_unit;         /* AD_TS_* for json numeric times */
    char *senml_base;           /* senml: strip this prefix from bn+n */
} ad_payload_cfg;

/* Kafka input/output (daemon/kafka.h); off while bootstrap_servers is NULL. */
typedef struct ad_kafka_cfg {
    char *bootstrap_servers;    /* "host:port,..." */
    char *group_id;             /* consumer group of all instances */
    char *state_topic;          /* compacted topic of stream states, or NULL */
    char *alert_topic;          /* alerts of detectors with alerts_to kafka|both */
    ad_strmap properties;       /* librdkafka properties passed through */
    ad_strmap property_files;   /* property -> file whose first line is its value */
    double commit_interval;     /* seconds between offset commits */
    int commit_states;          /* each commit first writes the states of the
                                 * streams that took records, with their rows
                                 * and the position (kafka.c checkpoint) */
    int row_time;               /* AD_KROW_*: the time of samples without one */
} ad_kafka_cfg;

/* kafka.row_time: a Kafka payload's samples without a time of their own
 * take the record's timestamp (the arrival time when it has none), or the
 * arrival time. */
enum { AD_KROW_RECORD = 0, AD_KROW_ARRIVAL = 1 };

enum { AD_ALERTS_MQTT = 0, AD_ALERTS_KAFKA = 1, AD_ALERTS_BOTH = 2 };

/* One detector of the config. `pipe` is lib/detector.h's settings, filled
 * directly from the rows/window/score/calibration/alert/training objects. */
typedef struct ad_detconf {
    char *name;
    char *model;                /* resolved path; NULL with training bootstrap */
    ad_strlist features;        /* bootstrap: feature names */
    int window_length;          /* bootstrap: T */
    ad_strlist topics;          /* MQTT filters */
    ad_strlist kafka_topics;    /* Kafka topics (record key = stream key) */
    int alerts_to;              /* AD_ALERTS_* */
    ad_intlist stream_levels;   /* topic levels joined by '/' -> stream key */
    ad_payload_cfg payload;
    int asm_mode;               /* rows|period|all|auto (auto: rows for json,
                                   all otherwise) */
    ad_detector_cfg pipe;       /* its dq_range_* point into dq_ranges */
    ad_rangemap dq_ranges;      /* quality.ranges: physical ranges by feature */
    char *alert_topic;          /* template, {detector} {stream} */
    char *state_topic;          /* template or NULL: retained stream state */
    int max_streams;
    double idle_evict;          /* seconds; 0 = never */
} ad_detconf;

/* "homeassistant": MQTT discovery (homeassistant.h). */
typedef struct ad_ha_cfg {
    int enabled;
    char *discovery_prefix;     /* default "homeassistant" */
    char *state_topic;          /* template {detector} {stream} */
    double update_interval;     /* seconds between score-only updates */
} ad_ha_cfg;

/* "commands": operator feedback over MQTT (command.h). */
typedef struct ad_cmd_cfg {
    int enabled;
    char *topic;                /* template ending in {stream} */
    char *reply_topic;          /* template; replies without a response topic */
} ad_cmd_cfg;

/* "metrics": Prometheus text exposition file (metrics.h). */
typedef struct ad_metrics_cfg {
    char *textfile;             /* NULL: off */
    int per_stream;
    int max_streams;
} ad_metrics_cfg;

typedef struct ad_config {
    char *path;                 /* the file it came from */
    ad_broker_cfg broker;
    ad_kafka_cfg kafka;
    char *state_dir;            /* NULL: no persistence */
    double state_retain_days;   /* files of absent streams kept; 0 = for ever */
    int max_payload;            /* bytes */
    int workers;                /* 0 = one per core */
    int max_batch;
    int log_rate;               /* bad-input log lines per minute */
    ad_ha_cfg ha;
    ad_cmd_cfg cmd;
    ad_metrics_cfg metrics;
    ad_detconf *det;
    int n_det;
} ad_config;

/*
 * Parse and validate a config from JSON text. `path` is used for messages
 * and to resolve relative paths (may be NULL: cwd). Returns 0 and *out, or a
 * negative code with "JSONPATH: message" in err.
 */
int ad_config_parse(ad_config **out, const char *json, size_t len,
                    const char *path, char *err, size_t errlen);

/* Read the file and ad_config_parse() it; errors start with the file name. */
int ad_config_load(ad_config **out, const char *path, char *err, size_t errlen);
/* What the daemon (run, check, a reload) needs beyond a valid config: a
 * detector whose threshold is learned from scores has an end to
 * calibration (replay may end it by rows). 0, or AD_EINVAL naming it. */
int ad_config_check_run(const ad_config *c, char *err, size_t errlen);

void ad_config_free(ad_config *c);      /* NULL-safe */

/*
 * Reload check: 0 if `b` differs from `a` only in keys a reload may change;
 * otherwise AD_EINVAL with the JSON paths of all such keys in err.
 */
int ad_config_reload_ok(const ad_config *a, const ad_config *b,
                        char *err, size_t errlen);

/* 1 if the detector settings that shape a stream's windows and thresholds
 * (model path excluded) are equal, else 0. */
int ad_detconf_same_pipeline(const ad_detconf *a, const ad_detconf *b);

/* The row assembly keys ("rows", and the mode "auto" resolves to) that
 * differ between a and b: how many, their JSON paths joined with ", " in
 * out ('\0'-terminated; out[0] = '\0' when none). */
int ad_detconf_rows_diff(const ad_detconf *a, const ad_detconf *b, char *out, size_t len);

/* Write docs for every key (markdown table rows) to a malloc'd string. */
char *ad_config_doc(void);

/* Read the first line of a password file (malloc'd, no newline). */
int ad_config_read_password(const char *path, char **out,
                            char *err, size_t errlen);

#endif /* AD_CONFIG_H */
