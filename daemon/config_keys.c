/*
 * config_keys.c - the daemon's config key tables and the documentation
 * generated from them.
 *
 * One table per JSON object lists its keys: type, offset in the C struct,
 * range, default, flags (required, reloadable, pipeline, library default)
 * and a line of documentation. Adding a key means adding a row here; the
 * parser (config.c), the reload comparison, docs/config.md and the man page
 * (build/tools/config_doc, make man) all follow from the row.
 * ad_config_doc() prints every key as a markdown table row.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ad.h"
#include "config.h"
#include "config_int.h"

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
      "first reconnect delay; doubles up to reconnect_max_s, with jitter (also across "
      "connections the broker closes within 10 s, e.g. a duplicate client_id)" },
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
      "and counted beyond it); also Kafka alert events waiting for room in a full "
      "producer queue" },
};
const table cfg_broker_table = TAB(broker_keys);

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
    { "max_gap_intervals", K_NUM, OPP(stream.max_gap_intervals), 0, 1e6, NULL, FL, NULL, NULL,
      "rows/all: ... when also further apart than this many of the stream's usual row "
      "intervals (the median of its last 31), so that a stream sampled hourly or daily, or "
      "missing a sample now and then, keeps its windows (0: max_gap_ms alone)" },
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
    { "metric", K_ENUM, OPP(metric), 0, 0, NULL, FL, "mse|mae|peak", NULL,
      "reconstruction error of a window: mean squared or absolute error, or peak: the worst row's mean absolute error (one bad row is not diluted by the window's length)" },
    { "smooth_alpha", K_NUM, OPP(smooth_alpha), 0.0001, 1, NULL, FL, NULL, NULL,
      "EWMA weight of the newest score (1: no smoothing)" },
    { "normalize", K_ENUM, OPP(normalize), 0, 0, NULL, FL, "none|feature|feature_rms", NULL,
      "feature: the score is the largest over features of a feature's error (in metric) "
      "divided by its median over the calibration windows (floored at 0.1 x the median of "
      "those medians), so a fault in one feature whose normal error is small is not diluted "
      "by the others; feature_rms: the root mean square of those ratios (softer); the "
      "scales are saved with the calibration and kept over promotions (threshold methods fitted on scores only; docs/pipeline.md; worse than none on the "
      "scenario suite and SKAB: docs/evaluation.md)" },
};
static const table score_table = TAB(score_keys);

static const key calib_keys[] = {
    { "windows", K_INT, OPP(calib_windows), 0, 100000000, NULL, FL, NULL, NULL,
      "calibration ends after this many scored windows (0: no count limit, with "
      "duration_ms; fixed and model thresholds need no calibration)" },
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
      "keep learning the threshold from normal windows (with estimator trimmed: with "
      "quantile a slowly rising fault carries it up)" },
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
    { "recur", K_INT, OPP(thr.recur), 0, 1000, "0", FP, NULL, NULL,
      "trimmed: keep an excursion over the fence (half a window long or more) that recurs "
      "this many times at a similar height, e.g. a daily step (0: off; 2 or more)" },
    { "season_ms", K_I64, OPP(season_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "a seasonal level, its period (86400000: a day; 0: off): no alert is raised under "
      "season_margin x a score reached near the same phase (+- period/48, or a window's "
      "span) in season_periods of the last 2 x season_periods - 1 periods, e.g. a daily "
      "step the model reconstructs badly (an open alert is judged against the threshold; "
      "alert.on score only; off, with a warning, for a stream whose period holds fewer than "
      "4 windows: daily rows have no time of day)" },
    { "season_periods", K_INT, OPP(season_periods), 1, 30, NULL, FL, NULL, NULL,
      "season_ms: in how many of the last 2n - 1 periods the level was reached" },
    { "season_margin", K_NUM, OPP(season_margin), 1, 1e6, NULL, FL, NULL, NULL,
      "season_ms: the level's multiplier" },
    { "season_clock", K_ENUM, OPP(season_clock), 0, 0, "utc", FL, "utc|local", NULL,
      "season_ms: phases of UTC, or of the daemon's local time (TZ; a schedule in local "
      "time keeps its phase over a daylight-saving change)" },
    { "floor", K_NUM, OPP(thr.floor), 0, 1e6, "0.01", FP, NULL, NULL,
      "the threshold is at least floor x the model's training error (q99 at most 2 x q90, 4 x for mse, in this "
      "detector's score metric: an mse error is square-rooted for mae and peak, and the "
      "other way round; 1 without metadata), so degenerate scores still calibrate (0: off)" },
    { "extreme", K_NUM, OPP(extreme), 0, 1e30, "50", FP, NULL, NULL,
      "windows with a scaled absolute value above this, or a rejected sample, never feed "
      "calibration, adaptation or the probability history (0: no limit)" },
    { "warn_every", K_INT, OPP(calib_warn_every), 1, 100000000, "100", FP, NULL, NULL,
      "a failed calibration is reported at most once per this many windows" },
    { "model_guard", K_NUM, OPP(calib_model_guard), 0, 1e6, "3", FP, NULL, NULL,
      "calibration leaves out windows scoring above this many times the model's training "
      "error (q99 in the model file, at most 2 x its q90, 4 x for mse: docs/alerts.md), so an anomaly "
      "under way is not learned as normal; when as many are left out as calibration needs "
      "(a bootstrap stream's own model: as many as `alert.accept_after` windows, when "
      "more), the threshold is the model's "
      "(training error x margin) and the stream detects, with a warning (0: off; a model "
      "without the figure: no guard)" },
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
    { "raise_ratio", K_NUM, OPP(alert.raise_ratio), 1, 100, NULL, FL, NULL, NULL,
      "on score: raise only when k of the last n windows exceed raise_ratio x threshold; "
      "windows over the threshold are still not learned as normal (a lasting run of them: "
      "alert.band; 1: the threshold; alert.on probability takes 1 only)" },
    { "band", K_ENUM, OPP(alert.band), 0, 0, "raise", FL, "off|raise|learn", NULL,
      "a run over the threshold and under raise_ratio x it (no alert open) that lasts "
      "accept_after windows: raise it once as a persistent change, learn it as normal "
      "with an event and no alert, or neither (off); nothing with accept_after 0" },
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
      "an alert whose last accept_after windows are stable is closed as accepted; windows "
      "like that regime are judged against its own threshold from then on (0: never)" },
    { "accept_spread", K_NUM, OPP(alert.accept_spread), 0.01, 1000, "3", FP, NULL, NULL,
      "stable: spread and upward trend of those windows within this many calibration spreads" },
    { "accept_trend", K_NUM, OPP(alert.accept_trend), 0, 100, "0.25", FP, NULL, NULL,
      "stable also needs the rise of the median over those windows (second half against "
      "first) within this fraction of the change's size: a slow ramp (wear) is not accepted "
      "(0: no such check)" },
    { "accept_gap", K_INT, OPP(alert.accept_gap), 0, 100000000, "0", FP, NULL, NULL,
      "alerts at most accept_gap windows apart count as one change: acceptance pools their "
      "windows (a regime that alerts part of every day; 0: one alert must last accept_after)" },
    { "accept_after_ms", K_I64, OPP(alert.accept_after_ms), 0, 31622400000.0, "0", FP, NULL,
      NULL, "accept_after as data time (28800000: 8 h), turned into windows by each stream's "
      "window period (the median interval of its first windows), at least 10 windows (a "
      "warning says when that raises it); set this or accept_after" },
    { "accept_gap_ms", K_I64, OPP(alert.accept_gap_ms), 0, 31622400000.0, "0", FP, NULL, NULL,
      "accept_gap as data time, likewise; set this or accept_gap" },
    { "accept_period_ms", K_I64, OPP(alert.accept_period_ms), 0, 31622400000.0, "0", FP, NULL,
      NULL, "pooled alerts are accepted only when the latest starts at the time of day (of "
      "this period) of an earlier one, within 1/12 of it: a regime recurs on a schedule, "
      "different faults a day apart do not (0: any recurrence; 86400000: daily); also the "
      "period of the kept change (docs/pipeline.md: peaks after a level shift that move the "
      "rows the way it did raise nothing for two periods, and while they recur until a "
      "period after the last, seven at most), which needs acceptance on "
      "(accept_after or accept_after_ms), 3 features or more and a period of at least 144 ms" },
    { "accept_onset", K_INT, OPP(alert.accept_onset), 0, 100, "0", FP, NULL, NULL,
      "with accept_period_ms: a change whose pooled alerts already number this many is "
      "accepted at the onset of its next recurrence at the time of day of an earlier one "
      "whose excess error points the change's way and sits at its level (judged once it "
      "lasted 2w-1 windows, w the window's length in windows, at most accept_after/3: "
      "withheld until then; one that ends after w to 2w-2 windows, a spike shorter than "
      "the window, is not a recurrence; not accepted, they raise), instead of alerting "
      "once more (0: never)" },
    { "stepdown_ratio", K_NUM, OPP(alert.stepdown_ratio), 0, 0.99, "0", FP, NULL, NULL,
      "step-down acceptance, with accept_after (or accept_after_ms) > 0: an open alert at "
      "least stepdown_windows + stepdown_after windows old whose mean score over the last "
      "stepdown_windows windows stayed under stepdown_ratio x the highest such mean of the "
      "alert for stepdown_after windows in a row (a fault that ended, the process at a lower "
      "new level) closes as accepted, that level's windows judged against their own "
      "threshold from then on (a level under the threshold: against it, no regime); counts "
      "of windows only, no _ms form (0: off)" },
    { "stepdown_windows", K_INT, OPP(alert.stepdown_windows), 1, 100000, "30", FP, NULL,
      NULL, "the windows the step-down's mean score is taken over" },
    { "stepdown_after", K_INT, OPP(alert.stepdown_after), 1, 100000, "30", FP, NULL, NULL,
      "windows in a row the step-down's mean must stay under stepdown_ratio x its highest; "
      "the new level's threshold is fitted on that many last scores" },
    { "level_ms", K_I64, OPP(alert.level_ms), 0, 31622400000.0, "0", FP, NULL, NULL,
      "level test: a window also counts as over the threshold while the mean score over "
      "this much data (windows by the stream's window period) is above the median of the "
      "scores judged normal + level_z spreads, so a persistent rise under the threshold "
      "alerts and its alert holds until the mean falls back; it waits for that after any "
      "alert and judges no mean over windows of an accepted regime (0: off)" },
    { "level_z", K_NUM, OPP(alert.level_z), 0.001, 1000, "6", FP, NULL, NULL,
      "the level test's fence, in spreads (1.4826 MAD) of the scores judged normal" },
    { "burst_ms", K_I64, OPP(alert.burst_ms), 0, 31622400000.0, "0", FP, NULL, NULL,
      "burst test: each feature's raw samples are compared with their neighbours (the "
      "median and MAD of 11 valid rows centred on the sample, the spread at least half "
      "the feature's learned spread); while burst_n of one feature's samples of this much "
      "data were outliers, each window counts as over the threshold with that feature on "
      "top, so an intermittent fault alerts; a single spike or a level shift does not, and "
      "rows under a data-quality flag do not count (0: off)" },
    { "burst_n", K_INT, OPP(alert.burst_n), 2, 1000, "3", FP, NULL, NULL,
      "the burst test's outliers of one feature within burst_ms that make a burst" },
    { "burst_z", K_NUM, OPP(alert.burst_z), 0.001, 1000, "5", FP, NULL, NULL,
      "the burst test's outlier distance from the neighbours' median, in spreads "
      "(1.4826 MAD)" },
    { "noise_ms", K_I64, OPP(alert.noise_ms), 0, 31622400000.0, "0", FP, NULL, NULL,
      "noise test: each feature's noise level (the spread, 1.4826 MAD, of its successive "
      "differences over a block: an hour of data or 1024 differences, whichever ends "
      "first) is compared with its usual level (the larger of the median of its last 24 "
      "usual blocks and the median of the same hour of day, +-1 h, over the last 7 days; "
      "over |median|^p when its noise follows its level); while it stays over noise_ratio "
      "x the usual level for this much data (judged blocks only: a gap ends the run), each "
      "window counts as over the threshold with that feature on top, so a noisier signal "
      "alerts; an accepted change takes the raised features' noise as usual, and rows "
      "under a data-quality flag do not count (0: off, else at least 3600000, one block)" },
    { "noise_ratio", K_NUM, OPP(alert.noise_ratio), 1.000001, 1000, "1.8", FP, NULL, NULL,
      "the noise test's ratio of a block's noise level to the usual level" },
};
static const table alert_table = TAB(alert_keys);

static const key train_keys[] = {
    { "mode", K_ENUM, OPP(training), 0, 0, NULL, FL, "none|finetune|bootstrap", NULL,
      "online training: finetune the model on each stream's first windows, or "
      "bootstrap a model from scratch (no model file)" },
    { "windows", K_INT, OPP(train_windows), 0, 10000000, NULL, FL, NULL, NULL,
      "windows collected before training (0: no count limit, with duration_ms)" },
    { "duration_ms", K_I64, OPP(train_duration_ms), 0, 1e12, "0", FL, NULL, NULL,
      "... or until the rows collected span this much data time, whichever comes first "
      "(0: no time limit; at most 1e6 windows)" },
    { "epochs", K_INT, OPP(train_epochs), 1, 10000, NULL, FL, NULL, NULL,
      "training epochs" },
    { "boot_units", K_INT, OPP(boot_units), 1, 4096, NULL, FL, NULL, NULL,
      "bootstrap: LSTM units of the trained autoencoder" },
    { "features", K_STRLIST, OD(features), 0, 0, NULL, FP, NULL, NULL,
      "bootstrap: feature names" },
};
static const table train_table = TAB(train_keys);

#define OK_(f) offsetof(ad_kafka_cfg, f)
static const key kafka_keys[] = {
    { "bootstrap_servers", K_STR, OK_(bootstrap_servers), 0, 0, NULL, 0, NULL, NULL,
      "Kafka brokers \"host:port,...\" (null: no Kafka)" },
    { "group_id", K_STR, OK_(group_id), 0, 0, "anomalyd", 0, NULL, NULL,
      "consumer group shared by every instance" },
    { "state_topic", K_STR, OK_(state_topic), 0, 0, NULL, 0, NULL, NULL,
      "compacted topic the state of a stream moves through when its partition "
      "moves (null: streams recalibrate after a move)" },
    { "alert_topic", K_STR, OK_(alert_topic), 0, 0, "anomalyd.alerts", 0, NULL, NULL,
      "alerts of detectors with alerts_to kafka|both (key detector/stream)" },
    { "properties", K_STRMAP, OK_(properties), 0, 0, NULL, 0, NULL, NULL,
      "librdkafka properties passed through (security.protocol, sasl.mechanism, "
      "ssl.ca.location, ...)" },
    { "property_files", K_STRMAP, OK_(property_files), 0, 0, NULL, 0, NULL, NULL,
      "property -> file whose first line is its value (secrets: sasl.password, "
      "ssl.key.password); relative to the config file" },
    { "commit_interval_s", K_NUM, OK_(commit_interval), 0.05, 3600, "1", 0, NULL, NULL,
      "offsets are committed this often, once the windows they complete are scored (not while the group rebalances: docs/scaling.md)" },
    { "commit_states", K_BOOL, OK_(commit_states), 0, 1, "false", 0, NULL, NULL,
      "each commit first writes to state_topic the state of every stream that took records "
      "since the last, with its window rows and the offset it continues at: after a crash "
      "its next owner scores every window and calibrates on (docs/scaling.md; one state "
      "record, 2 to 14 KB for the pump model, per active stream per commit: with 1000 "
      "streams of 1 row/s about 8 times the CPU at commit_interval_s 1, 1.8 times at 10)" },
    { "row_time", K_ENUM, OK_(row_time), 0, 0, "record", 0, "record|arrival", NULL,
      "time of payload samples without one: the record's timestamp (CreateTime or "
      "LogAppendTime; the arrival time for a record without one), so that records read "
      "again after a crash are not applied twice; or the arrival time (docs/scaling.md)" },
};
static const table kafka_table = TAB(kafka_keys);

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
      "learned range: center +- range_k x sigma (0: off; learn_samples should span "
      "every normal operating point)" },
    { "range_clear_samples", K_INT, OPP(dq.range_clear_samples), 1, 1000000, NULL, FL,
      NULL, NULL, "in-range values in a row that clear a range event" },
    { "ranges", K_RANGES, OD(dq_ranges), 0, 0, NULL, FP, NULL, NULL,
      "physical ranges by feature name (the model's features): {\"pressure\": [0, 16], "
      "\"temperature\": [-40, null]}, min < max, null: no limit on that side; a value "
      "outside raises a range event (\"range\": \"physical\", lo, hi) from the first "
      "sample, learning or not, and its rows never teach" },
    { "dropout_factor", K_NUM, OPP(dq.dropout_factor), 0, 1e6, NULL, FL, NULL, NULL,
      "dropout after this many usual periods without a sample (0: off)" },
    { "dropout_min_ms", K_I64, OPP(dq.dropout_min_ms), 0, 1e12, NULL, FL, NULL, NULL,
      "never a dropout before this silence (fast streams' jitter is not a dropout)" },
    { "reject_count", K_INT, OPP(dq.reject_count), 0, 1000000000, NULL, FL, NULL, NULL,
      "rejected values per reject_window_ms that raise; also the late check's count "
      "(0: both off)" },
    { "reject_window_ms", K_I64, OPP(dq.reject_window_ms), 1, 1e12, NULL, FL, NULL, NULL,
      "see reject_count; also the late check's window" },
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
    { "normal_ms", K_I64, OPP(adapt.normal_ms), 0, 31622400000.0, NULL, FL, NULL, NULL,
      "normal_windows as data time (86400000: a day), turned into windows by each stream's "
      "window period (the median interval of its first windows) and normal_stride: the set "
      "spans this much data, at least 20 windows (a warning says when that raises it); set "
      "this or normal_windows (0: unset)" },
    { "min_windows", K_INT, OPP(adapt.min_windows), 1, 1000000, NULL, FL, NULL, NULL,
      "fewer normal windows: no fine-tune yet" },
    { "min_ms", K_I64, OPP(adapt.min_ms), 0, 31622400000.0, NULL, FL, NULL, NULL,
      "min_windows as data time, likewise (at least 20 windows, up to the set); set this or "
      "min_windows" },
    { "normal_stride", K_INT, OPP(adapt.normal_stride), 1, 1000000, NULL, FL, NULL, NULL,
      "keep one of every this many normal windows" },
    { "margin", K_INT, OPP(adapt.margin), 0, 100000, NULL, FL, NULL, NULL,
      "windows before a raise and after a clear that are not normal (after a clear at "
      "least the windows that share a sample with one: ceil(window / hop) - 1; before a "
      "raise at least those from the first window over the threshold that led to it)" },
    { "margin_ms", K_I64, OPP(adapt.margin_ms), 0, 31622400000.0, NULL, FL, NULL, NULL,
      "margin as data time, likewise; set this or margin" },
    { "shadow_windows", K_INT, OPP(adapt.shadow_windows), 1, 1000000, NULL, FL, NULL, NULL,
      "windows the candidate runs in shadow before the decision (at least "
      "calibration.min_samples, with pot 5 / (1 - pot_init): its threshold is fitted on them)" },
    { "shadow_ms", K_I64, OPP(adapt.shadow_ms), 0, 31622400000.0, NULL, FL, NULL, NULL,
      "shadow_windows as data time, likewise (also for reload.shadow), at least twice the "
      "windows a candidate's threshold is fitted on; set this or shadow_windows" },
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
    { "drift_ratio", K_NUM, OPP(adapt.drift_ratio), 0, 1e6, NULL, FL, NULL, NULL,
      "a drift notice (an adapt event, decision drift, on the stream's events topic; a "
      "warning) when the "
      "reference model (the one the stream started from) scores the windows of a fine-tune "
      "this many times worse than those of the quietest one so far: continual learning has "
      "followed a change, a new normal or a slow fault (0: never; else more than 1)" },
};
static const table adapt_table = TAB(adapt_keys);

const cfg_alt cfg_detector_alts[] = {
    { "adapt", "normal_windows", "normal_ms" },
    { "adapt", "min_windows", "min_ms" },
    { "adapt", "margin", "margin_ms" },
    { "adapt", "shadow_windows", "shadow_ms" },
};
const int cfg_detector_n_alts = (int)(sizeof(cfg_detector_alts) / sizeof(cfg_detector_alts[0]));

static const key reload_keys[] = {
    { "shadow", K_BOOL, OPP(adapt.reload_shadow), 0, 1, NULL, FL, NULL, NULL,
      "a model file changed on reload is evaluated in shadow by each detecting stream "
      "(adapt.shadow_windows or shadow_ms, min_gain) and promoted like a fine-tuned candidate instead "
      "of replacing the model at once; adapt.enabled not needed; a file rejected, or in shadow at "
      "a stop, does not go live at a restart (the live model is kept in state_dir)" },
};
static const table reload_table = TAB(reload_keys);

static const key detector_keys[] = {
    { "name", K_STR, OD(name), 0, 0, NULL, F_REQ | F_RELOAD, NULL, NULL,
      "detector name ([A-Za-z0-9_-], unique)" },
    { "model", K_PATH, OD(model), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "model file (.safetensors); required unless training.mode is bootstrap" },
    { "topics", K_STRLIST, OD(topics), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "MQTT subscription topic filters (+ and # allowed; $share/<group>/<filter> for "
      "a shared subscription); required unless kafka_topics is given" },
    { "kafka_topics", K_STRLIST, OD(kafka_topics), 0, 0, NULL, 0, NULL, NULL,
      "Kafka topics consumed (kafka.bootstrap_servers set): the record key is the "
      "stream key, the value a payload (a reload may move a topic to another detector, "
      "not change the set consumed)" },
    { "alerts_to", K_ENUM, OD(alerts_to), 0, 0, "mqtt", F_RELOAD, "mqtt|kafka|both", NULL,
      "where alerts go: MQTT alert topic, kafka.alert_topic, or both" },
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
      "streams kept; at the limit a new stream evicts the one still collecting or "
      "calibrating that has been silent longest, for at least idle_evict_s / 10 (a notice "
      "names it; counted in streams_evicted); without such a stream each message of the "
      "new stream is refused (counted in streams_refused, per message)" },
    { "idle_evict_s", K_NUM, OD(idle_evict), 0, 1e9, "3600", F_RELOAD, NULL, NULL,
      "streams without messages for this long are dropped (a message whose every value "
      "is refused counts: the device is alive; 0: never)" },
};
const table cfg_detector_table = TAB(detector_keys);

#define OHA(f) offsetof(ad_ha_cfg, f)
static const key ha_keys[] = {
    { "enabled", K_BOOL, OHA(enabled), 0, 1, "false", 0, NULL, NULL,
      "publish Home Assistant MQTT discovery configs and entity states per stream" },
    { "discovery_prefix", K_STR, OHA(discovery_prefix), 0, 0, "homeassistant", 0, NULL, NULL,
      "Home Assistant's discovery prefix" },
    { "state_topic", K_STR, OHA(state_topic), 0, 0, "anomalyd/ha/{detector}/{stream}", 0,
      NULL, NULL, "retained entity state per stream (JSON)" },
    { "update_interval_s", K_NUM, OHA(update_interval), 0, 86400, "10", 0, NULL, NULL,
      "score updates of a stream at most this often (state changes at once)" },
};
static const table ha_table = TAB(ha_keys);

#define OCM(f) offsetof(ad_cmd_cfg, f)
static const key cmd_keys[] = {
    { "enabled", K_BOOL, OCM(enabled), 0, 1, "false", F_RELOAD, NULL, NULL,
      "accept operator commands (ack, false_alarm, recalibrate, freeze, unfreeze, "
      "accept_drift)" },
    { "topic", K_STR, OCM(topic), 0, 0, "anomalyd/cmd/{detector}/{stream}", F_RELOAD, NULL,
      NULL, "command topic: one {detector} level, then {stream} last" },
    { "reply_topic", K_STR, OCM(reply_topic), 0, 0, "anomalyd/reply/{detector}/{stream}",
      F_RELOAD, NULL, NULL, "replies when the command has no MQTT 5 response topic" },
};
static const table cmd_table = TAB(cmd_keys);

#define OMT(f) offsetof(ad_metrics_cfg, f)
static const key metrics_keys[] = {
    { "textfile", K_PATH, OMT(textfile), 0, 0, NULL, F_RELOAD, NULL, NULL,
      "Prometheus text file written every stats interval (null: off)" },
    { "per_stream", K_BOOL, OMT(per_stream), 0, 1, "false", F_RELOAD, NULL, NULL,
      "also per-stream series (score, threshold, alert)" },
    { "max_streams", K_INT, OMT(max_streams), 0, 100000, "100", F_RELOAD, NULL, NULL,
      "per-stream series for at most this many streams per detector" },
};
static const table metrics_table = TAB(metrics_keys);

static const key root_keys[] = {
    { "broker", K_OBJ, OC(broker), 0, 0, NULL, 0, NULL, &cfg_broker_table, "MQTT broker" },
    { "kafka", K_OBJ, OC(kafka), 0, 0, NULL, 0, NULL, &kafka_table,
      "Kafka consumer group input, state topic and alerts (docs/scaling.md)" },
    { "state_dir", K_PATH, OC(state_dir), 0, 0, NULL, 0, NULL, NULL,
      "calibration state and online-trained models (null: not kept)" },
    { "state_retain_days", K_NUM, OC(state_retain_days), 0, 36500, "90", F_RELOAD, NULL, NULL,
      "the files in state_dir of a stream not live and not written for this many days are "
      "removed, and its model files under another model id or settings hash as old; never "
      "those of an open alert (swept at start, after a reload, daily; 0: keep every file)" },
    { "max_payload_bytes", K_INT, OC(max_payload), 16, 268435455, "65536", F_RELOAD,
      NULL, NULL, "larger messages are dropped and counted" },
    { "workers", K_INT, OC(workers), 0, 256, "0", 0, NULL, NULL,
      "inference/training threads (0: one per core); trainings and fine-tunes run after the "
      "windows waiting, and with 2 or more workers at most workers - 1 of them at once, so a "
      "fleet's trainings do not hold back the other streams' scoring" },
    { "max_batch", K_INT, OC(max_batch), 1, 4096, "256", 0, NULL, NULL,
      "windows per forward pass at most (fewer for large models: a pass holds at most "
      "~200 MFLOP, about 2 ms of one core)" },
    { "log_rate_per_min", K_INT, OC(log_rate), 0, 100000, "10", F_RELOAD, NULL, NULL,
      "bad-input log lines per minute for each kind (malformed, oversized, late, ...; "
      "the rest are only counted)" },
    { "homeassistant", K_OBJ, OC(ha), 0, 0, NULL, 0, NULL, &ha_table,
      "Home Assistant MQTT discovery" },
    { "commands", K_OBJ, OC(cmd), 0, 0, NULL, 0, NULL, &cmd_table,
      "operator feedback over MQTT" },
    { "metrics", K_OBJ, OC(metrics), 0, 0, NULL, 0, NULL, &metrics_table,
      "Prometheus metrics for node_exporter's textfile collector" },
    /* "detectors" is handled by ad_config_parse() (config.c): an array of
       detector objects, each parsed against cfg_detector_table */
};
const table cfg_root_table = TAB(root_keys);

/* ---- documentation ---------------------------------------------------- */

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
    case K_RANGES: return "object of [min, max]";
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
 * (a detector config after its defaults were set). base is NULL for the
 * tables outside a detector, which have no F_LIB key: base + off is formed
 * only for F_LIB keys (NULL + 0 is undefined behaviour). */
static void default_text(const key *k, const char *base, char *out, size_t len)
{
    const void *p;
    if (!(k->flags & F_LIB) || !base) {
        snprintf(out, len, "%s", k->def ? k->def : "");
        return;
    }
    p = base + k->off;
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

/* A Markdown table cell: '|' escaped so it does not end the cell. */
static void put_cell(ad_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            ad_buf_puts(b, "\\|");
        else
            ad_buf_printf(b, "%c", *s);
    }
}

static void doc_table(const table *t, const char *path, const char *base, ad_buf *b)
{
    char sub[256], range[96], def[64];
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        cfg_join_path(sub, sizeof sub, path, k->name);
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
        ad_buf_printf(b, "| `%s` | %s | %s%s%s | ", sub, type_name(k), def[0] ? "`" : "",
                      def[0] ? def : (k->flags & F_REQ) ? "required" : "none",
                      def[0] ? "`" : "");
        put_cell(b, range);
        ad_buf_printf(b, " | %s | ", (k->flags & F_RELOAD) ? "yes" : "no");
        put_cell(b, k->doc);
        ad_buf_puts(b, " |\n");
    }
}

char *ad_config_doc(void)
{
    ad_buf b = { 0 };
    ad_detconf d;

    memset(&d, 0, sizeof d);
    ad_detector_cfg_default(&d.pipe);
    doc_table(&cfg_root_table, "", NULL, &b);
    doc_table(&cfg_detector_table, "detectors[]", (const char *)&d, &b);
    if (b.oom) {
        ad_buf_free(&b);
        return NULL;
    }
    return b.s;
}
