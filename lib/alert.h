/*
 * alert.h - the per-stream alert state machine and alert records.
 *
 * States: IDLE -> (raise) -> ACTIVE -> (clear) -> IDLE, plus an optional
 * cooldown after a clear during which no new alert is raised.
 *
 *   raise   when at least k of the last n scored windows (this one included)
 *           had score > threshold. While in cooldown (ts < clear_ts +
 *           cooldown_ms) no alert is raised (the window history is kept).
 *   clear   when the score stayed < threshold * clear_ratio for m
 *           consecutive windows. The alert's end time is that window's ts.
 *
 * An alert record carries a stable id "<stream>-<start unix ms>-<seq>"
 * (seq = 1, 2, ... per stream since creation), so replaying the same data
 * yields the same ids; start time (ts of the raising window), end time (0
 * while active), peak score and its ts, the threshold at raise, severity =
 * peak / threshold, and the top contributing features: feature indices with
 * their mean share of the error over the exceeding windows of the alert.
 *
 * Thread safety: one alerter is used by one thread at a time.
 */
#ifndef AD_ALERT_H
#define AD_ALERT_H

#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

#define AD_ALERT_MAX_N 64       /* max window history n */
#define AD_ALERT_TOP 3          /* top features reported */
#define AD_ALERT_ID_LEN 128     /* bytes of the id buffer, NUL included */

typedef struct ad_alert_cfg {
    int k;                /* windows over threshold ... default 3 */
    int n;                /* ... of the last n (1..AD_ALERT_MAX_N), default 5 */
    int m;                /* clear after m windows below, default 10 */
    double clear_ratio;   /* clear level = threshold * clear_ratio, (0,1], default 0.8 */
    int64_t cooldown_ms;  /* no raise within this time after a clear; default 0 */
} ad_alert_cfg;

typedef struct ad_alert {
    char id[AD_ALERT_ID_LEN];
    uint64_t seq;
    int active;
    int64_t start_ms;         /* ts of the raising window */
    int64_t end_ms;           /* ts of the clearing window; 0 while active */
    int64_t peak_ms;
    double peak_score;
    double threshold;         /* at raise */
    double severity;          /* peak_score / threshold */
    uint64_t windows;         /* windows since raise (exceeding or not) */
    int n_top;
    int top_feature[AD_ALERT_TOP];   /* feature indices, most first */
    double top_share[AD_ALERT_TOP];  /* mean share over exceeding windows */
} ad_alert;

/* Result bits of ad_alerter_step(). */
#define AD_ALERT_RAISED  1
#define AD_ALERT_CLEARED 2

typedef struct ad_alerter ad_alerter;

void ad_alert_cfg_default(ad_alert_cfg *c);
int ad_alert_cfg_check(const ad_alert_cfg *c, char *err, size_t errlen);

/* New alerter for stream `key` (copied; used in ids) with F features. */
int ad_alerter_new(ad_alerter **out, const ad_alert_cfg *cfg, const char *key,
                   int n_features, char *err, size_t errlen);
void ad_alerter_free(ad_alerter *a);       /* NULL-safe */

/*
 * One scored window: its ts, (smoothed) score, current threshold and the
 * per-feature share of its error (F floats; may be NULL). Returns a bit set
 * of AD_ALERT_RAISED / AD_ALERT_CLEARED (both when an alert clears and ...
 * never: a clear and a raise never happen on the same window). *out (may be
 * NULL) receives a copy of the raised or cleared alert.
 */
int ad_alerter_step(ad_alerter *a, int64_t ts_ms, double score,
                    double threshold, const float *share, ad_alert *out);

/* Was the last stepped window over the threshold? */
int ad_alerter_last_exceeded(const ad_alerter *a);

/* The active alert (NULL when idle); valid until the next step. */
const ad_alert *ad_alerter_active(const ad_alerter *a);

/* Alerts raised since creation (the last seq). */
uint64_t ad_alerter_count(const ad_alerter *a);

/* Forget the window history and end any active alert silently (no event);
 * the seq counter is kept so ids stay unique. */
void ad_alerter_reset(ad_alerter *a);

/*
 * An alert as JSON (new cJSON object; NULL on OOM):
 *   {"id":..,"stream":..,"state":"raised"|"cleared","start":ms,"end":ms|null,
 *    "start_iso":"..Z","peak_score":..,"threshold":..,"severity":..,
 *    "windows":..,"top_features":[{"name":..,"share":..},..]}
 * names (F strings) may be NULL (indices are printed as "f<i>").
 */
cJSON *ad_alert_to_json(const ad_alert *al, const char *stream,
                        const char *const *names);

#endif /* AD_ALERT_H */
