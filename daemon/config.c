/*
 * config.c - table-driven parsing and validation of the daemon's JSON config.
 *
 * One table per JSON object lists its keys: type, offset in the C struct,
 * range, default, flags (required, reloadable) and a line of documentation.
 * parse_object() walks a cJSON object against a table: unknown keys are
 * errors, every value is type- and range-checked, absent keys get their
 * default. Checks that span keys (cert without key, duplicate detector
 * names, invalid topic filters) follow in validate(). Error messages carry
 * the JSON path built while descending.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cJSON.h>

#include "ad.h"
#include "config.h"
#include "topic.h"

typedef enum {
    K_STR, K_PATH, K_INT, K_I64, K_NUM, K_BOOL, K_ENUM, K_CBUF,
    K_STRLIST, K_INTLIST, K_STRMAP, K_OBJ
} ktype;

#define F_REQ    1u   /* must be present */
#define F_RELOAD 2u   /* a SIGHUP reload may change it */
#define F_PIPE   4u   /* shapes a stream's windows/thresholds */
#define F_LIB    8u   /* default: ad_detector_cfg_default() (lib/detector.c),
                         the one source of pipeline defaults */

struct table;
typedef struct key {
    const char *name;
    ktype type;
    size_t off;
    double min, max;
    const char *def;         /* default in JSON-ish text; NULL: none/null
                                (F_LIB keys: NULL, the library's default) */
    unsigned flags;
    const char *enums;       /* K_ENUM: "a|b|c", stored as index */
    const struct table *sub; /* K_OBJ: keys relative to the same base */
    const char *doc;
} key;

typedef struct table {
    const key *keys;
    int n;
} table;

#define TAB(k) { k, (int)(sizeof(k) / sizeof(k[0])) }
#define OB(f) offsetof(ad_broker_cfg, f)
#define OT(f) offsetof(ad_broker_cfg, tls.f)
#define OD(f) offsetof(ad_detconf, f)
#define OC(f) offsetof(ad_config, f)

static const key tls_keys[] = {
    { "enabled", K_BOOL, OT(enabled), 0, 1, "false", 0, NULL, NULL,
      "connect with TLS" },
    { "ca_file", K_PATH, OT(ca_file), 0, 0, NULL, 0, NULL, NULL,
      "PEM file of trusted CAs" },
    { "ca_path", K_PATH, OT(ca_path), 0, 0, NULL, 0, NULL, NULL,
      "directory of trusted CAs (c_rehash)" },
    { "cert_file", K_PATH, OT(cert_file), 0, 0, NULL, 0, NULL, NULL,
      "client certificate (PEM), with key_file" },
    { "key_file", K_PATH, OT(key_file), 0, 0, NULL, 0, NULL, NULL,
      "client private key (PEM, unencrypted)" },
    { "verify_hostname", K_BOOL, OT(verify_hostname), 0, 1, "true", 0, NULL, NULL,
      "check the broker certificate's name against host" },
};
static const table tls_table = TAB(tls_keys);

static const key broker_keys[] = {
    { "host", K_STR, OB(host), 0, 0, "127.0.0.1", 0, NULL, NULL, "broker address" },
    { "port", K_INT, OB(port), 1, 65535, "1883", 0, NULL, NULL, "broker TCP port" },
    { "client_id", K_STR, OB(client_id), 0, 0, "anomalyd", 0, NULL, NULL,
      "MQTT client id (must be stable for a persistent session)" },
    { "keepalive", K_INT, OB(keepalive), 5, 3600, "30", 0, NULL, NULL,
      "keepalive interval, seconds" },
    { "protocol", K_ENUM, OB(protocol), 0, 0, "3.1.1", 0, "3.1.1|5", NULL,
      "MQTT protocol version" },
    { "clean_session", K_BOOL, OB(clean_session), 0, 1, "false", 0, NULL, NULL,
      "false: persistent session, the broker keeps subscriptions and QoS>0 "
      "messages while the daemon is away" },
    { "qos_subscribe", K_INT, OB(qos_subscribe), 0, 2, "0", 0, NULL, NULL,
      "QoS of the sensor subscriptions" },
    { "qos_alerts", K_INT, OB(qos_alerts), 0, 2, "1", 0, NULL, NULL,
      "QoS of alert and state publications" },
    { "username", K_STR, OB(username), 0, 0, NULL, 0, NULL, NULL, "MQTT user name" },
    { "password_file", K_PATH, OB(password_file), 0, 0, NULL, 0, NULL, NULL,
      "file whose first line is the MQTT password (never put the password "
      "itself in the config)" },
    { "tls", K_OBJ, 0, 0, 0, NULL, 0, NULL, &tls_table, "TLS settings" },
    { "reconnect_min_s", K_NUM, OB(reconnect_min), 0.05, 3600, "0.5", 0, NULL, NULL,
      "first reconnect delay; doubles up to reconnect_max_s, with jitter" },
    { "reconnect_max_s", K_NUM, OB(reconnect_max), 0.05, 3600, "30", 0, NULL, NULL,
      "longest reconnect delay" },
    { "status_topic", K_STR, OB(status_topic), 0, 0, "anomalyd/status", 0, NULL, NULL,
      "retained online/offline status (also the last will)" },
    { "stats_topic", K_STR, OB(stats_topic), 0, 0, "anomalyd/stats", 0, NULL, NULL,
      "periodic statistics" },
    { "stats_interval_s", K_NUM, OB(stats_interval), 0, 86400, "60", F_RELOAD, NULL, NULL,
      "seconds between statistics messages; 0 disables" },
    { "max_queued_alerts", K_INT, OB(max_queued_alerts), 1, 10000000, "10000", F_RELOAD,
      NULL, NULL, "alerts kept while the broker is unreachable (oldest dropped "
      "and counted beyond it)" },
};
static const table broker_table = TAB(broker_keys);

#define OP(f) offsetof(ad_detconf, payload.f)
static const key payload_keys[] = {
    { "format", K_ENUM, OP(format), 0, 0, "json", F_RELOAD, "number|json|senml", NULL,
      "number: bare number, feature named by a topic level; json: object with "
      "a field per feature; senml: SenML JSON (RFC 8428)" },
    { "feature_level", K_INT, OP(feature_level), -64, 63, "-1", F_RELOAD, NULL, NULL,
      "number: topic level naming the feature (0-based; negative counts "
      "from the end)" },
    { "fields", K_STRMAP, OP(fields), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "json: feature -> dotted path (default: the feature name); senml: "
      "feature -> record name (default: the feature name)" },
    { "timestamp", K_STR, OP(timestamp), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "json: dotted path of a numeric time field (default: arrival time)" },
    { "timestamp_unit", K_ENUM, OP(timestamp_unit), 0, 0, "s", F_RELOAD, "s|ms|us", NULL,
      "json: unit of the time field (unix epoch)" },
    { "senml_base", K_STR, OP(senml_base), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "senml: prefix removed from bn+n before matching feature names" },
};
static const table payload_table = TAB(payload_keys);

#define OPP(f) offsetof(ad_detconf, pipe.f)
#define FP (F_RELOAD | F_PIPE)
#define FL (F_RELOAD | F_PIPE | F_LIB)
static const key rows_keys[] = {
    { "mode", K_ENUM, OD(asm_mode), 0, 0, "auto", FP, "rows|period|all|auto", NULL,
      "rows: each message is a whole row (json); period: one row per period_ms "
      "(sample and hold); all: a row when every feature has reported; auto: "
      "rows for json, all otherwise" },
    { "period_ms", K_I64, OPP(stream.period_ms), 1, 86400000, NULL, FL, NULL, NULL,
      "period mode: row grid step" },
    { "max_age_ms", K_I64, OPP(stream.max_age_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "a feature value older than this is missing (0: never)" },
    { "missing", K_ENUM, OPP(stream.missing), 0, 0, NULL, FL, "hold|invalid", NULL,
      "hold: carry the last value of a missing feature; invalid: the row is "
      "invalid and windows containing it are not scored" },
    { "hold_limit", K_INT, OPP(stream.hold_limit), 0, 1000000, NULL, FL, NULL, NULL,
      "hold: at most this many consecutive held rows (0: no limit)" },
    { "max_lateness_ms", K_I64, OPP(stream.max_lateness_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "event time: a sample up to this much older than the newest one is still put in "
      "its place (rows come out this much later)" },
    { "max_future_ms", K_I64, OPP(stream.max_future_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "a timestamp this far ahead of its arrival is rejected (0: no check)" },
    { "max_gap_ms", K_I64, OPP(stream.max_gap_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "rows further apart restart the windows (0: never)" },
    { "align_ms", K_I64, OPP(stream.align_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "all: samples this close in time form one row" },
};
static const table rows_table = TAB(rows_keys);

static const key window_keys[] = {
    { "hop", K_INT, OPP(hop), 1, 1000000, NULL, FL, NULL, NULL,
      "rows between scored windows (the length comes from the model)" },
    { "length", K_INT, OD(window_length), 0, 100000, "0", FP, NULL, NULL,
      "training bootstrap only: window length T of the model to train" },
};
static const table window_table = TAB(window_keys);

static const key score_keys[] = {
    { "metric", K_ENUM, OPP(metric), 0, 0, NULL, FL, "mse|mae", NULL,
      "reconstruction error of a window" },
    { "smooth_alpha", K_NUM, OPP(smooth_alpha), 0.0001, 1, NULL, FL, NULL, NULL,
      "EWMA weight of the newest score (1: no smoothing)" },
};
static const table score_table = TAB(score_keys);

static const key calib_keys[] = {
    { "windows", K_INT, OPP(calib_windows), 0, 100000000, NULL, FL, NULL, NULL,
      "calibration ends after this many scored windows (0: no count limit)" },
    { "duration_ms", K_I64, OPP(calib_duration_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "... or after this much data time (0: no time limit)" },
    { "method", K_ENUM, OPP(thr.method), 0, 0, NULL, FL,
      "quantile|sigma|pot|fixed|model", NULL,
      "threshold method (see lib/threshold.h)" },
    { "q", K_NUM, OPP(thr.q), 1e-9, 0.999999999, NULL, FL, NULL, NULL,
      "quantile level" },
    { "margin", K_NUM, OPP(thr.margin), 1e-6, 1e6, NULL, FL, NULL, NULL,
      "quantile/model: threshold multiplier" },
    { "k", K_NUM, OPP(thr.k), 0, 1000, NULL, FL, NULL, NULL,
      "sigma: mean + k std" },
    { "pot_risk", K_NUM, OPP(thr.pot_risk), 1e-12, 0.5, NULL, FL, NULL, NULL,
      "pot: target risk" },
    { "pot_init", K_NUM, OPP(thr.pot_init), 0.5, 0.9999, NULL, FL, NULL, NULL,
      "pot: initial quantile level" },
    { "fixed", K_NUM, OPP(thr.fixed), 0, 1e30, NULL, FL, NULL, NULL,
      "fixed: the threshold (> 0)" },
    { "model_key", K_CBUF, OPP(thr.model_key), 0, 16, NULL, FL, NULL, NULL,
      "model: key of the model's training error distribution" },
    { "adapt", K_BOOL, OPP(thr.adapt), 0, 1, NULL, FL, NULL, NULL,
      "keep learning the threshold from normal windows" },
    { "max_samples", K_INT, OPP(thr.max_samples), 10, 10000000, NULL, FL, NULL, NULL,
      "calibration scores kept" },
    { "min_samples", K_INT, OPP(thr.min_samples), 1, 10000000, NULL, FL, NULL, NULL,
      "fewer calibration scores cannot be fitted" },
    { "estimator", K_ENUM, OPP(thr.estimator), 0, 0, "quantile", FP, "quantile|trimmed|mad",
      NULL, "quantile: the method on every calibration score; trimmed: scores above "
      "median + fence x MAD-sigma dropped first; mad: median + k x MAD-sigma (methods "
      "quantile, sigma)" },
    { "fence", K_NUM, OPP(thr.fence), 0.1, 1000, "6", FP, NULL, NULL,
      "trimmed: the fence in MAD-sigmas" },
    { "floor", K_NUM, OPP(thr.floor), 0, 1e6, "0.01", FP, NULL, NULL,
      "the threshold is at least floor x the model's training error (q99; 1 without "
      "metadata), so degenerate scores still calibrate (0: off)" },
    { "extreme", K_NUM, OPP(extreme), 0, 1e30, "50", FP, NULL, NULL,
      "windows with a scaled absolute value above this, or a rejected sample, never feed "
      "calibration, adaptation or the probability history (0: no limit)" },
    { "warn_every", K_INT, OPP(calib_warn_every), 1, 100000000, "100", FP, NULL, NULL,
      "a failed calibration is reported at most once per this many windows" },
};
static const table calib_table = TAB(calib_keys);

static const key alert_keys[] = {
    { "topic", K_STR, OD(alert_topic), 0, 0, "anomalyd/alerts/{detector}/{stream}",
      F_RELOAD, NULL, NULL, "alert topic template ({detector}, {stream})" },
    { "state_topic", K_STR, OD(state_topic), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "optional retained per-stream state topic template" },
    { "k", K_INT, OPP(alert.k), 1, 64, NULL, FL, NULL, NULL,
      "raise when k of the last n windows exceed the threshold" },
    { "n", K_INT, OPP(alert.n), 1, 64, NULL, FL, NULL, NULL, "see k" },
    { "m", K_INT, OPP(alert.m), 1, 1000000, NULL, FL, NULL, NULL,
      "clear after m consecutive windows below clear_ratio x threshold" },
    { "clear_ratio", K_NUM, OPP(alert.clear_ratio), 0.001, 1, NULL, FL, NULL, NULL,
      "hysteresis of the clear level" },
    { "cooldown_ms", K_I64, OPP(alert.cooldown_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "no new alert this long after a clear" },
    { "on", K_ENUM, OPP(alert.on), 0, 0, "score", FP, "score|probability", NULL,
      "what k/n/m apply to: the score against the threshold, or the anomaly probability "
      "against probability_level" },
    { "probability_level", K_NUM, OPP(alert.level), 1e-9, 0.999999999999, "0.9999", FP,
      NULL, NULL, "on probability: a window exceeds when its probability is above this" },
    { "probability_history", K_INT, OPP(lik.history), 2, 1000000, "500", FP, NULL, NULL,
      "short averages of scores in the probability's long-term history" },
    { "probability_average", K_INT, OPP(lik.average), 1, 1000, "10", FP, NULL, NULL,
      "scores in each short average" },
    { "accept_after", K_INT, OPP(alert.accept_after), 0, 1000000, "0", FP, NULL, NULL,
      "an alert whose last accept_after windows are stable is closed as accepted and the "
      "threshold rebased on them (0: never)" },
    { "accept_spread", K_NUM, OPP(alert.accept_spread), 0.01, 1000, "3", FP, NULL, NULL,
      "stable: spread and upward trend of those windows within this many calibration spreads" },
};
static const table alert_table = TAB(alert_keys);

static const key train_keys[] = {
    { "mode", K_ENUM, OPP(training), 0, 0, NULL, FL, "none|finetune|bootstrap", NULL,
      "online training: finetune the model on each stream's first windows, or "
      "bootstrap a model from scratch (no model file)" },
    { "windows", K_INT, OPP(train_windows), 1, 10000000, NULL, FL, NULL, NULL,
      "windows collected before training" },
    { "epochs", K_INT, OPP(train_epochs), 1, 10000, NULL, FL, NULL, NULL,
      "training epochs" },
    { "boot_units", K_INT, OPP(boot_units), 1, 4096, NULL, FL, NULL, NULL,
      "bootstrap: LSTM units of the trained autoencoder" },
    { "features", K_STRLIST, OD(features), 0, 0, NULL, FP, NULL, NULL,
      "bootstrap: feature names" },
};
static const table train_table = TAB(train_keys);

static const key quality_keys[] = {
    { "enabled", K_BOOL, OPP(dq_enabled), 0, 1, NULL, FL, NULL, NULL,
      "data-quality monitor: stuck, range, dropout and rejected-value events; flagged "
      "windows never teach" },
    { "learn_samples", K_INT, OPP(dq.learn_samples), 16, 1000000, NULL, FL, NULL, NULL,
      "values each feature learns from" },
    { "stuck_samples", K_INT, OPP(dq.stuck_samples), 0, 1000000000, NULL, FL, NULL, NULL,
      "a flat run this long is stuck (0: off)" },
    { "stuck_ms", K_I64, OPP(dq.stuck_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "a flat run lasting this long is stuck (0: off)" },
    { "stuck_tol", K_NUM, OPP(dq.stuck_tol), 0, 1, NULL, FL, NULL, NULL,
      "nearly constant: within this fraction of the learned step" },
    { "range_k", K_NUM, OPP(dq.range_k), 0, 1e6, NULL, FL, NULL, NULL,
      "learned range: center +- range_k x sigma (0: off)" },
    { "range_clear_samples", K_INT, OPP(dq.range_clear_samples), 1, 1000000, NULL, FL,
      NULL, NULL, "in-range values in a row that clear a range event" },
    { "dropout_factor", K_NUM, OPP(dq.dropout_factor), 0, 1e6, NULL, FL, NULL, NULL,
      "dropout after this many usual periods without a sample (0: off)" },
    { "reject_count", K_INT, OPP(dq.reject_count), 0, 1000000000, NULL, FL, NULL, NULL,
      "rejected values per reject_window_ms that raise (0: off)" },
    { "reject_window_ms", K_I64, OPP(dq.reject_window_ms), 1, 1e12, NULL, FL, NULL, NULL,
      "see reject_count" },
};
static const table quality_table = TAB(quality_keys);

static const key adapt_keys[] = {
    { "enabled", K_BOOL, OPP(adapt.enabled), 0, 1, NULL, FL, NULL, NULL,
      "continual learning: fine-tune on recent normal windows, evaluate the candidate in "
      "shadow, promote it only when it is better and silences no true alert" },
    { "every_windows", K_INT, OPP(adapt.every_windows), 0, 1000000000, NULL, FL, NULL, NULL,
      "a fine-tune after this many windows (0: off)" },
    { "every_hours", K_NUM, OPP(adapt.every_hours), 0, 8760, NULL, FL, NULL, NULL,
      "... or this much data time (0: off)" },
    { "normal_windows", K_INT, OPP(adapt.normal_windows), 1, 1000000, NULL, FL, NULL, NULL,
      "recent normal windows kept for fine-tuning" },
    { "min_windows", K_INT, OPP(adapt.min_windows), 1, 1000000, NULL, FL, NULL, NULL,
      "fewer normal windows: no fine-tune yet" },
    { "normal_stride", K_INT, OPP(adapt.normal_stride), 1, 1000000, NULL, FL, NULL, NULL,
      "keep one of every this many normal windows" },
    { "margin", K_INT, OPP(adapt.margin), 0, 100000, NULL, FL, NULL, NULL,
      "windows before a raise and after a clear that are not normal" },
    { "shadow_windows", K_INT, OPP(adapt.shadow_windows), 1, 1000000, NULL, FL, NULL, NULL,
      "windows the candidate runs in shadow before the decision" },
    { "min_gain", K_NUM, OPP(adapt.min_gain), 0, 0.999999, NULL, FL, NULL, NULL,
      "promote when the candidate's error is at most (1 - min_gain) x the live one" },
    { "compare", K_ENUM, OPP(adapt.compare), 0, 0, NULL, FL, "mean|median", NULL,
      "statistic of the errors compared" },
    { "true_alerts", K_INT, OPP(adapt.true_alerts), 0, 64, NULL, FL, NULL, NULL,
      "true alerts kept: a candidate that silences one is rejected" },
    { "epochs", K_INT, OPP(adapt.epochs), 1, 1000, NULL, FL, NULL, NULL,
      "fine-tune epochs" },
    { "lr", K_NUM, OPP(adapt.lr), 1e-9, 1, NULL, FL, NULL, NULL, "fine-tune learning rate" },
    { "batch_size", K_INT, OPP(adapt.batch_size), 1, 4096, NULL, FL, NULL, NULL,
      "fine-tune batch size" },
    { "max_seconds", K_NUM, OPP(adapt.max_seconds), 0, 1e9, NULL, FL, NULL, NULL,
      "a fine-tune stops after this long (0: no limit)" },
};
static const table adapt_table = TAB(adapt_keys);

static const key reload_keys[] = {
    { "shadow", K_BOOL, OPP(adapt.reload_shadow), 0, 1, NULL, FL, NULL, NULL,
      "with adapt.enabled: a model file changed on reload is evaluated in shadow and "
      "promoted like a fine-tuned candidate instead of replacing the model at once" },
};
static const table reload_table = TAB(reload_keys);

static const key detector_keys[] = {
    { "name", K_STR, OD(name), 0, 0, NULL, F_REQ | F_RELOAD, NULL, NULL,
      "detector name ([A-Za-z0-9_-], unique)" },
    { "model", K_PATH, OD(model), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "model file (.safetensors); required unless training.mode is bootstrap" },
    { "topics", K_STRLIST, OD(topics), 0, 0, NULL, F_REQ | F_RELOAD, NULL, NULL,
      "subscription topic filters (+ and # allowed)" },
    { "stream_levels", K_INTLIST, OD(stream_levels), -64, 63, "1", F_RELOAD, NULL, NULL,
      "topic levels joined with / form the stream key ([]: one stream)" },
    { "payload", K_OBJ, 0, 0, 0, NULL, 0, NULL, &payload_table, "payload format" },
    { "rows", K_OBJ, 0, 0, 0, NULL, 0, NULL, &rows_table, "row assembly" },
    { "window", K_OBJ, 0, 0, 0, NULL, 0, NULL, &window_table, "windowing" },
    { "score", K_OBJ, 0, 0, 0, NULL, 0, NULL, &score_table, "scoring" },
    { "calibration", K_OBJ, 0, 0, 0, NULL, 0, NULL, &calib_table, "threshold calibration" },
    { "alert", K_OBJ, 0, 0, 0, NULL, 0, NULL, &alert_table, "alerts" },
    { "training", K_OBJ, 0, 0, 0, NULL, 0, NULL, &train_table, "online training" },
    { "quality", K_OBJ, 0, 0, 0, NULL, 0, NULL, &quality_table, "data-quality monitor" },
    { "adapt", K_OBJ, 0, 0, 0, NULL, 0, NULL, &adapt_table, "continual learning" },
    { "reload", K_OBJ, 0, 0, 0, NULL, 0, NULL, &reload_table, "model reload" },
    { "max_streams", K_INT, OD(max_streams), 1, 10000000, "10000", F_RELOAD, NULL, NULL,
      "streams kept; new ones beyond are refused and counted" },
    { "idle_evict_s", K_NUM, OD(idle_evict), 0, 1e9, "3600", F_RELOAD, NULL, NULL,
      "streams without samples for this long are dropped (0: never)" },
};
static const table detector_table = TAB(detector_keys);

static const key root_keys[] = {
    { "broker", K_OBJ, OC(broker), 0, 0, NULL, 0, NULL, &broker_table, "MQTT broker" },
    { "state_dir", K_PATH, OC(state_dir), 0, 0, NULL, 0, NULL, NULL,
      "calibration state and online-trained models (null: not kept)" },
    { "max_payload_bytes", K_INT, OC(max_payload), 16, 268435455, "65536", F_RELOAD,
      NULL, NULL, "larger messages are dropped and counted" },
    { "workers", K_INT, OC(workers), 0, 256, "0", 0, NULL, NULL,
      "inference/training threads (0: one per core)" },
    { "max_batch", K_INT, OC(max_batch), 1, 4096, "256", 0, NULL, NULL,
      "windows per forward pass at most (fewer for large models: a pass holds at most "
      "~200 MFLOP, about 2 ms of one core)" },
    { "log_rate_per_min", K_INT, OC(log_rate), 0, 100000, "10", F_RELOAD, NULL, NULL,
      "bad-input log lines per minute (the rest are only counted)" },
    /* "detectors" is handled by parse_root(): an array of detector objects */
};
static const table root_table = TAB(root_keys);

/* ---- helpers ---------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_value(const key *k, char *base)
{
    void *p = base + k->off;
    switch (k->type) {
    case K_STR: case K_PATH:
        free(*(char **)p); *(char **)p = NULL; break;
    case K_STRLIST: {
        ad_strlist *l = p;
        for (int i = 0; i < l->n; i++) free(l->v[i]);
        free(l->v); l->v = NULL; l->n = 0; break;
    }
    case K_INTLIST: {
        ad_intlist *l = p;
        free(l->v); l->v = NULL; l->n = 0; break;
    }
    case K_STRMAP: {
        ad_strmap *m = p;
        for (int i = 0; i < m->n; i++) { free(m->key[i]); free(m->val[i]); }
        free(m->key); free(m->val); m->key = m->val = NULL; m->n = 0; break;
    }
    default: break;
    }
}

static void free_table(const table *t, char *base)
{
    for (int i = 0; i < t->n; i++) {
        if (t->keys[i].type == K_OBJ)
            free_table(t->keys[i].sub, base + t->keys[i].off);
        else
            free_value(&t->keys[i], base);
    }
}

static int enum_index(const char *list, const char *s)
{
    size_t n = strlen(s);
    int i = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, s, n) == 0)
            return i;
        if (!e) break;
        p = e + 1;
        i++;
    }
    return -1;
}

static int set_default(const key *k, char *base)
{
    void *p = base + k->off;
    if (k->flags & F_LIB)
        return 0;       /* set by ad_detector_cfg_default() before */
    switch (k->type) {
    case K_STR: case K_PATH:
        *(char **)p = xstrdup(k->def);
        return (k->def && !*(char **)p) ? AD_ENOMEM : 0;
    case K_INT:
        *(int *)p = k->def ? atoi(k->def) : 0; return 0;
    case K_I64:
        *(int64_t *)p = k->def ? strtoll(k->def, NULL, 10) : 0; return 0;
    case K_CBUF:
        snprintf((char *)p, (size_t)k->max, "%s", k->def ? k->def : ""); return 0;
    case K_NUM:
        *(double *)p = k->def ? strtod(k->def, NULL) : 0; return 0;
    case K_BOOL:
        *(int *)p = k->def && strcmp(k->def, "true") == 0; return 0;
    case K_ENUM:
        *(int *)p = k->def ? enum_index(k->enums, k->def) : 0; return 0;
    case K_INTLIST: {
        ad_intlist *l = p;
        if (!k->def) return 0;
        l->v = malloc(sizeof(int));
        if (!l->v) return AD_ENOMEM;
        l->v[0] = atoi(k->def); l->n = 1;   /* single-value defaults only */
        return 0;
    }
    default:
        return 0;
    }
}

static const char *jtype(const cJSON *j)
{
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

static void key_list(const table *t, char *out, size_t len, int with_detectors)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < t->n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "|" : "", t->keys[i].name);
    if (with_detectors && o < len)
        snprintf(out + o, len - o, "|detectors");
}

/* A JSON number that is an integer within the key's range, as a double
 * (exact for the ranges the table allows). */
static int parse_integer(const cJSON *j, const key *k, const char *path, double *out,
                         char *err, size_t errlen)
{
    double v;
    if (!cJSON_IsNumber(j))
        return ad_errf(err, errlen, AD_EINVAL, "%s: expected an integer, got %s",
                       path, jtype(j));
    v = j->valuedouble;
    if (!isfinite(v) || v != floor(v))
        return ad_errf(err, errlen, AD_EINVAL, "%s: expected an integer, got %.15g", path, v);
    if (v < k->min || v > k->max)
        return ad_errf(err, errlen, AD_ERANGE, "%s: %.15g out of range [%.15g, %.15g]",
                       path, v, k->min, k->max);
    *out = v;
    return 0;
}

static int parse_int(const cJSON *j, const key *k, const char *path, int *out,
                     char *err, size_t errlen)
{
    double v;
    int rc = parse_integer(j, k, path, &v, err, errlen);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static int parse_table(const table *t, const cJSON *obj, char *base,
                       const char *path, char *err, size_t errlen);

/* Parse one value into base+k->off (the default was set before). */
static int parse_value(const key *k, const cJSON *j, char *base, const char *path,
                       char *err, size_t errlen)
{
    void *p = base + k->off;
    int rc;

    switch (k->type) {
    case K_STR: case K_PATH:
        if (cJSON_IsNull(j) && !(k->flags & F_REQ)) {
            free_value(k, base);
            return 0;
        }
        if (!cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a string, got %s",
                           path, jtype(j));
        if (j->valuestring[0] == '\0' && k->type == K_PATH)
            return ad_errf(err, errlen, AD_EINVAL, "%s: empty path", path);
        free_value(k, base);
        *(char **)p = strdup(j->valuestring);
        return *(char **)p ? 0 : AD_ENOMEM;
    case K_INT:
        return parse_int(j, k, path, p, err, errlen);
    case K_I64: {
        double v;
        if ((rc = parse_integer(j, k, path, &v, err, errlen)) != 0)
            return rc;
        *(int64_t *)p = (int64_t)v;
        return 0;
    }
    case K_CBUF:
        if (!cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a string, got %s",
                           path, jtype(j));
        if (strlen(j->valuestring) + 1 > (size_t)k->max || !j->valuestring[0])
            return ad_errf(err, errlen, AD_ERANGE, "%s: 1 to %d characters", path,
                           (int)k->max - 1);
        snprintf((char *)p, (size_t)k->max, "%s", j->valuestring);
        return 0;
    case K_NUM:
        if (!cJSON_IsNumber(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a number, got %s",
                           path, jtype(j));
        if (!isfinite(j->valuedouble) || j->valuedouble < k->min || j->valuedouble > k->max)
            return ad_errf(err, errlen, AD_ERANGE, "%s: %.15g out of range [%.15g, %.15g]",
                           path, j->valuedouble, k->min, k->max);
        *(double *)p = j->valuedouble;
        return 0;
    case K_BOOL:
        if (!cJSON_IsBool(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected true or false, got %s",
                           path, jtype(j));
        *(int *)p = cJSON_IsTrue(j);
        return 0;
    case K_ENUM: {
        int idx;
        if (cJSON_IsNumber(j) && strchr(k->enums, '5')) {
            /* let "protocol": 5 be written as a number too */
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%g", j->valuedouble);
            idx = enum_index(k->enums, tmp);
            if (idx >= 0) { *(int *)p = idx; return 0; }
        }
        if (!cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a string (%s), got %s",
                           path, k->enums, jtype(j));
        idx = enum_index(k->enums, j->valuestring);
        if (idx < 0)
            return ad_errf(err, errlen, AD_EINVAL, "%s: unknown value \"%.64s\" (expected %s)",
                           path, j->valuestring, k->enums);
        *(int *)p = idx;
        return 0;
    }
    case K_STRLIST: {
        ad_strlist *l = p;
        int n;
        if (cJSON_IsString(j)) {      /* a single string is a list of one */
            free_value(k, base);
            l->v = calloc(1, sizeof(char *));
            if (!l->v || !(l->v[0] = strdup(j->valuestring))) return AD_ENOMEM;
            l->n = 1;
            return 0;
        }
        if (!cJSON_IsArray(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an array of strings, got %s",
                           path, jtype(j));
        free_value(k, base);
        n = cJSON_GetArraySize(j);
        l->v = calloc((size_t)n + 1, sizeof(char *));
        if (!l->v) return AD_ENOMEM;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(j, i);
            if (!cJSON_IsString(e))
                return ad_errf(err, errlen, AD_EINVAL, "%s[%d]: expected a string, got %s",
                               path, i, jtype(e));
            if (!(l->v[i] = strdup(e->valuestring))) return AD_ENOMEM;
            l->n = i + 1;
        }
        return 0;
    }
    case K_INTLIST: {
        ad_intlist *l = p;
        int n;
        if (!cJSON_IsArray(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an array of integers, got %s",
                           path, jtype(j));
        free_value(k, base);
        n = cJSON_GetArraySize(j);
        l->v = calloc((size_t)n + 1, sizeof(int));
        if (!l->v) return AD_ENOMEM;
        for (int i = 0; i < n; i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%.480s[%d]", path, i);
            if ((rc = parse_int(cJSON_GetArrayItem(j, i), k, sub, &l->v[i], err, errlen)))
                return rc;
            l->n = i + 1;
        }
        return 0;
    }
    case K_STRMAP: {
        ad_strmap *m = p;
        int n;
        if (!cJSON_IsObject(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an object, got %s",
                           path, jtype(j));
        free_value(k, base);
        n = cJSON_GetArraySize(j);
        m->key = calloc((size_t)n + 1, sizeof(char *));
        m->val = calloc((size_t)n + 1, sizeof(char *));
        if (!m->key || !m->val) return AD_ENOMEM;
        for (const cJSON *e = j->child; e; e = e->next) {
            for (int i = 0; i < m->n; i++)
                if (strcmp(m->key[i], e->string) == 0)
                    return ad_errf(err, errlen, AD_EINVAL, "%s.%s: duplicate key",
                                   path, e->string);
            if (!cJSON_IsString(e) || e->valuestring[0] == '\0')
                return ad_errf(err, errlen, AD_EINVAL, "%s.%s: expected a non-empty string, got %s",
                               path, e->string, jtype(e));
            m->key[m->n] = strdup(e->string);
            m->val[m->n] = strdup(e->valuestring);
            m->n++;
            if (!m->key[m->n - 1] || !m->val[m->n - 1]) return AD_ENOMEM;
        }
        return 0;
    }
    case K_OBJ:
        if (!cJSON_IsObject(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an object, got %s",
                           path, jtype(j));
        return parse_table(k->sub, j, base + k->off, path, err, errlen);
    }
    return AD_EINVAL;
}

static int set_defaults(const table *t, char *base)
{
    int rc;
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        rc = k->type == K_OBJ ? set_defaults(k->sub, base + k->off) : set_default(k, base);
        if (rc) return rc;
    }
    return 0;
}

static void join_path(char *out, size_t len, const char *path, const char *name)
{
    if (path[0])
        snprintf(out, len, "%s.%s", path, name);
    else
        snprintf(out, len, "%s", name);
}

/* Walk obj's members against t (defaults must already be set). */
static int parse_table(const table *t, const cJSON *obj, char *base,
                       const char *path, char *err, size_t errlen)
{
    char sub[512];
    int rc;

    for (const cJSON *e = obj->child; e; e = e->next) {
        const key *k = NULL;
        for (int i = 0; i < t->n; i++)
            if (strcmp(t->keys[i].name, e->string) == 0) { k = &t->keys[i]; break; }
        join_path(sub, sizeof sub, path, e->string);
        for (const cJSON *d = obj->child; d != e; d = d->next)
            if (strcmp(d->string, e->string) == 0)
                return ad_errf(err, errlen, AD_EINVAL, "%s: duplicate key", sub);
        if (!k) {
            char list[512];
            if (strcmp(e->string, "password") == 0 && t == &broker_table)
                return ad_errf(err, errlen, AD_EINVAL, "%s: not allowed: put the "
                               "password in a file and name it in password_file", sub);
            key_list(t, list, sizeof list, t == &root_table);
            return ad_errf(err, errlen, AD_EINVAL, "%s: unknown key (expected %s)", sub, list);
        }
        if ((rc = parse_value(k, e, base, sub, err, errlen)))
            return rc;
    }
    for (int i = 0; i < t->n; i++) {
        if ((t->keys[i].flags & F_REQ) && !cJSON_GetObjectItemCaseSensitive(obj, t->keys[i].name)) {
            join_path(sub, sizeof sub, path, t->keys[i].name);
            return ad_errf(err, errlen, AD_EINVAL, "%s: missing (required)", sub);
        }
    }
    return 0;
}

/* ---- paths ------------------------------------------------------------ */

static int resolve(char **p, const char *dir)
{
    char *n;
    size_t l;
    if (!*p || (*p)[0] == '/' || !dir || !dir[0])
        return 0;
    l = strlen(dir) + strlen(*p) + 2;
    if (!(n = malloc(l))) return AD_ENOMEM;
    snprintf(n, l, "%s/%s", dir, *p);
    free(*p);
    *p = n;
    return 0;
}

static int resolve_table(const table *t, char *base, const char *dir)
{
    int rc;
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        if (k->type == K_OBJ)
            rc = resolve_table(k->sub, base + k->off, dir);
        else if (k->type == K_PATH)
            rc = resolve((char **)(base + k->off), dir);
        else
            rc = 0;
        if (rc) return rc;
    }
    return 0;
}

/* ---- cross-key validation -------------------------------------------- */

static int check_template(const char *t, const char *path, char *err, size_t errlen)
{
    const char *p = t;
    if (!t[0])
        return ad_errf(err, errlen, AD_EINVAL, "%s: empty topic", path);
    if (strpbrk(t, "+#"))
        return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": wildcards not allowed in a "
                       "publish topic", path, t);
    while ((p = strchr(p, '{'))) {
        if (strncmp(p, "{detector}", 10) == 0) p += 10;
        else if (strncmp(p, "{stream}", 8) == 0) p += 8;
        else
            return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": unknown placeholder "
                           "(expected {detector} or {stream})", path, t);
    }
    return 0;
}

static int readable(const char *f, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (f && stat(f, &st) != 0)
        return ad_errf(err, errlen, AD_ENOENT, "%s: %s: %s", path, f, strerror(errno));
    return 0;
}

static int validate(ad_config *c, char *err, size_t errlen)
{
    ad_broker_cfg *b = &c->broker;
    char path[256];
    int rc;

    if (!b->host || !b->host[0])
        return ad_errf(err, errlen, AD_EINVAL, "broker.host: empty");
    if (!b->client_id || !b->client_id[0] || strlen(b->client_id) > 65535)
        return ad_errf(err, errlen, AD_EINVAL, "broker.client_id: empty or too long");
    if (b->reconnect_min > b->reconnect_max)
        return ad_errf(err, errlen, AD_ERANGE, "broker.reconnect_min_s: %g is more "
                       "than reconnect_max_s %g", b->reconnect_min, b->reconnect_max);
    if (!b->tls.cert_file != !b->tls.key_file)
        return ad_errf(err, errlen, AD_EINVAL, "broker.tls.%s: missing (cert_file and "
                       "key_file go together)", b->tls.cert_file ? "key_file" : "cert_file");
    if (b->password_file && !b->username)
        return ad_errf(err, errlen, AD_EINVAL, "broker.username: missing (password_file "
                       "needs a user name)");
    if ((rc = readable(b->password_file, "broker.password_file", err, errlen)) ||
        (rc = readable(b->tls.ca_file, "broker.tls.ca_file", err, errlen)) ||
        (rc = readable(b->tls.cert_file, "broker.tls.cert_file", err, errlen)) ||
        (rc = readable(b->tls.key_file, "broker.tls.key_file", err, errlen)))
        return rc;
    if (b->status_topic && (rc = check_template(b->status_topic, "broker.status_topic", err, errlen)))
        return rc;
    if (b->stats_topic && (rc = check_template(b->stats_topic, "broker.stats_topic", err, errlen)))
        return rc;
    if (c->n_det == 0)
        return ad_errf(err, errlen, AD_EINVAL, "detectors: at least one detector is needed");
    for (int i = 0; i < c->n_det; i++) {
        ad_detconf *d = &c->det[i];
        const char *s;
        for (s = d->name; *s; s++)
            if (!(( *s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
                break;
        if (!d->name[0] || *s || strlen(d->name) > 64)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].name: \"%.64s\": use 1-64 "
                           "characters A-Z a-z 0-9 _ -", i, d->name);
        for (int j = 0; j < i; j++)
            if (strcmp(c->det[j].name, d->name) == 0)
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].name: \"%s\" already "
                               "used by detectors[%d]", i, d->name, j);
        if (d->topics.n == 0)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].topics: empty", i);
        for (int j = 0; j < d->topics.n; j++) {
            char terr[128];
            if (ad_topic_filter_check(d->topics.v[j], terr, sizeof terr))
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].topics[%d]: \"%.200s\": %s",
                               i, j, d->topics.v[j], terr);
        }
        snprintf(path, sizeof path, "detectors[%d].alert.topic", i);
        if ((rc = check_template(d->alert_topic ? d->alert_topic : "", path, err, errlen)))
            return rc;
        if (d->state_topic) {
            snprintf(path, sizeof path, "detectors[%d].alert.state_topic", i);
            if ((rc = check_template(d->state_topic, path, err, errlen)))
                return rc;
        }
        if (d->payload.format == AD_FMT_JSON || d->payload.format == AD_FMT_SENML) {
            for (int j = 0; j < d->payload.fields.n; j++) {
                const char *v = d->payload.fields.val[j];
                if (d->payload.format == AD_FMT_JSON &&
                    (v[0] == '.' || v[strlen(v) - 1] == '.' || strstr(v, "..")))
                    return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].payload.fields.%s: "
                                   "\"%s\": empty path component", i,
                                   d->payload.fields.key[j], v);
            }
        }
        if (d->payload.timestamp && d->payload.format != AD_FMT_JSON)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].payload.timestamp: only "
                           "for format json", i);
        if (d->asm_mode == AD_ASM_CFG_AUTO)
            d->pipe.stream.mode = d->payload.format == AD_FMT_JSON ? AD_ASM_ROWS : AD_ASM_ALL;
        else
            d->pipe.stream.mode = (ad_asm_mode)d->asm_mode;
        if (d->pipe.stream.mode == AD_ASM_ROWS && d->payload.format != AD_FMT_JSON)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].rows.mode: \"rows\" needs "
                           "payload.format json (a message per row)", i);
        if (d->pipe.thr.method == AD_THR_FIXED && !(d->pipe.thr.fixed > 0))
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].calibration.fixed: "
                           "must be > 0 with method fixed", i);
        if (d->pipe.alert.k > d->pipe.alert.n)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].alert.k: %d is more than "
                           "alert.n %d", i, d->pipe.alert.k, d->pipe.alert.n);
        if (d->pipe.training == AD_TRAIN_BOOTSTRAP) {
            if (d->features.n < 1 || d->window_length < 1)
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].training: bootstrap "
                               "needs training.features and window.length", i);
        } else if (!d->model) {
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].model: missing (required "
                           "unless training.mode is bootstrap)", i);
        }
        {
            char e2[200];
            if (ad_detector_cfg_check(&d->pipe, e2, sizeof e2))
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d]: %s", i, e2);
        }
    }
    return 0;
}

/* ---- entry points ----------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *s;
    if (!path || !(s = strrchr(path, '/')))
        return strdup("");
    if (s == path)
        return strdup("/");
    return strndup(path, (size_t)(s - path));
}

int ad_config_parse(ad_config **out, const char *json, size_t len,
                    const char *path, char *err, size_t errlen)
{
    ad_config *c = NULL;
    cJSON *root = NULL;
    const cJSON *dets;
    char *dir = NULL;
    const char *ep;
    int rc;

    *out = NULL;
    root = cJSON_ParseWithLengthOpts(json, len, &ep, 0);
    if (!root) {
        size_t line = 1, col = 1;
        if (!ep) ep = json;
        for (const char *p = json; p < ep && p < json + len; p++) {
            if (*p == '\n') { line++; col = 1; } else col++;
        }
        return ad_errf(err, errlen, AD_EFORMAT, "invalid JSON at line %zu column %zu",
                       line, col);
    }
    if (!cJSON_IsObject(root)) {
        rc = ad_errf(err, errlen, AD_EINVAL, "(root): expected an object");
        goto fail;
    }
    if (!(c = calloc(1, sizeof *c)) || !(c->path = strdup(path ? path : "(config)"))) {
        rc = AD_ENOMEM;
        goto fail;
    }
    if ((rc = set_defaults(&root_table, (char *)c)))
        goto fail;
    /* parse_table would call "detectors" unknown: detach it first */
    dets = cJSON_DetachItemFromObjectCaseSensitive(root, "detectors");
    rc = parse_table(&root_table, root, (char *)c, "", err, errlen);
    if (rc) {
        cJSON_Delete((cJSON *)dets);
        goto fail;
    }
    if (!dets) {
        rc = ad_errf(err, errlen, AD_EINVAL, "detectors: missing (required)");
        goto fail;
    }
    cJSON_AddItemToObject(root, "detectors", (cJSON *)dets);  /* freed with root */
    if (!cJSON_IsArray(dets)) {
        rc = ad_errf(err, errlen, AD_EINVAL, "detectors: expected an array, got %s", jtype(dets));
        goto fail;
    }
    c->n_det = 0;
    c->det = calloc((size_t)cJSON_GetArraySize(dets) + 1, sizeof *c->det);
    if (!c->det) { rc = AD_ENOMEM; goto fail; }
    for (const cJSON *d = dets->child; d; d = d->next) {
        char p[64];
        snprintf(p, sizeof p, "detectors[%d]", c->n_det);
        if (!cJSON_IsObject(d)) {
            rc = ad_errf(err, errlen, AD_EINVAL, "%s: expected an object, got %s", p, jtype(d));
            goto fail;
        }
        ad_detector_cfg_default(&c->det[c->n_det].pipe);
        if ((rc = set_defaults(&detector_table, (char *)&c->det[c->n_det])))
            goto fail;
        c->n_det++;
        if ((rc = parse_table(&detector_table, d, (char *)&c->det[c->n_det - 1], p, err, errlen)))
            goto fail;
    }
    if (!(dir = dir_of(path))) { rc = AD_ENOMEM; goto fail; }
    if ((rc = resolve_table(&root_table, (char *)c, dir)))
        goto fail;
    for (int i = 0; i < c->n_det; i++)
        if ((rc = resolve_table(&detector_table, (char *)&c->det[i], dir)))
            goto fail;
    if ((rc = validate(c, err, errlen)))
        goto fail;
    free(dir);
    cJSON_Delete(root);
    *out = c;
    return 0;
fail:
    if (rc == AD_ENOMEM)
        ad_errf(err, errlen, rc, "out of memory");
    free(dir);
    cJSON_Delete(root);
    ad_config_free(c);
    return rc;
}

int ad_config_load(ad_config **out, const char *path, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t n;
    char e2[512];
    int rc;

    *out = NULL;
    if ((rc = ad_read_file(path, 16u << 20, &buf, &n, err, errlen)) != 0)
        return rc;      /* message names the file */
    rc = ad_config_parse(out, buf, n, path, e2, sizeof e2);
    free(buf);
    if (rc)
        ad_errf(err, errlen, rc, "%s: %s", path, e2);
    return rc;
}

void ad_config_free(ad_config *c)
{
    if (!c) return;
    free_table(&root_table, (char *)c);
    for (int i = 0; i < c->n_det; i++)
        free_table(&detector_table, (char *)&c->det[i]);
    free(c->det);
    free(c->path);
    free(c);
}

/* ---- comparison ------------------------------------------------------- */

static int value_eq(const key *k, const char *a, const char *b)
{
    const void *pa = a + k->off, *pb = b + k->off;
    switch (k->type) {
    case K_STR: case K_PATH: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
    }
    case K_INT: case K_BOOL: case K_ENUM:
        return *(const int *)pa == *(const int *)pb;
    case K_I64:
        return *(const int64_t *)pa == *(const int64_t *)pb;
    case K_CBUF:
        return strcmp((const char *)pa, (const char *)pb) == 0;
    case K_NUM:
        return *(const double *)pa == *(const double *)pb;
    case K_STRLIST: {
        const ad_strlist *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++) if (strcmp(x->v[i], y->v[i])) return 0;
        return 1;
    }
    case K_INTLIST: {
        const ad_intlist *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++) if (x->v[i] != y->v[i]) return 0;
        return 1;
    }
    case K_STRMAP: {
        const ad_strmap *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++)
            if (strcmp(x->key[i], y->key[i]) || strcmp(x->val[i], y->val[i])) return 0;
        return 1;
    }
    case K_OBJ:
        return 1;
    }
    return 0;
}

/* First key (with all of `need` flags, or lacking F_RELOAD when need == 0)
 * whose value differs; its JSON path goes to out. */
static int diff_table(const table *t, const char *a, const char *b, unsigned need,
                      const char *path, char *out, size_t len)
{
    char sub[256];
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        join_path(sub, sizeof sub, path, k->name);
        if (k->type == K_OBJ) {
            if (diff_table(k->sub, a + k->off, b + k->off, need, sub, out, len))
                return 1;
            continue;
        }
        if (need ? (k->flags & need) != need : (k->flags & F_RELOAD) != 0)
            continue;
        if (!value_eq(k, a, b)) {
            snprintf(out, len, "%s", sub);
            return 1;
        }
    }
    return 0;
}

int ad_config_reload_ok(const ad_config *a, const ad_config *b, char *err, size_t errlen)
{
    char p[256];
    if (diff_table(&root_table, (const char *)a, (const char *)b, 0, "", p, sizeof p))
        return ad_errf(err, errlen, AD_EINVAL, "%s: changed, but a reload cannot change "
                       "it (restart the daemon)", p);
    return 0;
}

int ad_detconf_same_pipeline(const ad_detconf *a, const ad_detconf *b)
{
    char p[256];
    return !diff_table(&detector_table, (const char *)a, (const char *)b, F_PIPE, "",
                       p, sizeof p);
}

/* ---- docs and secrets -------------------------------------------------- */

static const char *type_name(const key *k)
{
    switch (k->type) {
    case K_STR: return "string";
    case K_PATH: return "path";
    case K_INT: case K_I64: return "integer";
    case K_CBUF: return "string";
    case K_NUM: return "number";
    case K_BOOL: return "boolean";
    case K_ENUM: return "string";
    case K_STRLIST: return "array of strings";
    case K_INTLIST: return "array of integers";
    case K_STRMAP: return "object of strings";
    case K_OBJ: return "object";
    }
    return "?";
}

/* The n-th name of an enum list "a|b|c" into out. */
static void enum_name(const char *list, int n, char *out, size_t len)
{
    const char *p = list, *e;
    for (; n > 0 && (e = strchr(p, '|')); n--)
        p = e + 1;
    e = strchr(p, '|');
    snprintf(out, len, "%.*s", (int)(e ? (size_t)(e - p) : strlen(p)), p);
}

/* The default of a key as documentation text: the table's text, or for
 * F_LIB keys the value ad_detector_cfg_default() sets, read from `base`
 * (a detector config after its defaults were set). */
static void default_text(const key *k, const char *base, char *out, size_t len)
{
    const void *p = base + k->off;
    if (!(k->flags & F_LIB)) {
        snprintf(out, len, "%s", k->def ? k->def : "");
        return;
    }
    switch (k->type) {
    case K_INT: snprintf(out, len, "%d", *(const int *)p); break;
    case K_I64: snprintf(out, len, "%lld", (long long)*(const int64_t *)p); break;
    case K_NUM: snprintf(out, len, "%.15g", *(const double *)p); break;
    case K_BOOL: snprintf(out, len, "%s", *(const int *)p ? "true" : "false"); break;
    case K_ENUM: enum_name(k->enums, *(const int *)p, out, len); break;
    case K_CBUF: snprintf(out, len, "%s", (const char *)p); break;
    default: out[0] = '\0'; break;
    }
}

static void doc_table(const table *t, const char *path, const char *base, ad_buf *b)
{
    char sub[256], range[96], def[64];
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        join_path(sub, sizeof sub, path, k->name);
        if (k->type == K_OBJ) {
            doc_table(k->sub, sub, base ? base + k->off : NULL, b);
            continue;
        }
        range[0] = '\0';
        if (k->type == K_ENUM)
            snprintf(range, sizeof range, "%s", k->enums);
        else if (k->type == K_INT || k->type == K_I64 || k->type == K_NUM ||
                 k->type == K_INTLIST)
            snprintf(range, sizeof range, "%.15g .. %.15g", k->min, k->max);
        default_text(k, base, def, sizeof def);
        ad_buf_printf(b, "| `%s` | %s | %s%s%s | %s | %s | %s |\n",
                      sub, type_name(k), def[0] ? "`" : "", def[0] ? def :
                      (k->flags & F_REQ) ? "required" : "none", def[0] ? "`" : "",
                      range, (k->flags & F_RELOAD) ? "yes" : "no", k->doc);
    }
}

char *ad_config_doc(void)
{
    ad_buf b = { 0 };
    ad_detconf d;

    memset(&d, 0, sizeof d);
    ad_detector_cfg_default(&d.pipe);
    doc_table(&root_table, "", NULL, &b);
    doc_table(&detector_table, "detectors[]", (const char *)&d, &b);
    if (b.oom) {
        ad_buf_free(&b);
        return NULL;
    }
    return b.s;
}

int ad_config_read_password(const char *path, char **out, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t n;
    int rc;

    *out = NULL;
    if ((rc = ad_read_file(path, 64u << 10, &buf, &n, err, errlen)) != 0)
        return rc;
    ((char *)buf)[strcspn(buf, "\r\n")] = '\0';     /* the first line */
    *out = buf;
    return 0;
}
