/*
 * alert.h - the per-stream alert state machine and alert records.
 *
 * States: IDLE -> (raise) -> ACTIVE -> (clear) -> IDLE, plus an optional
 * cooldown after a clear during which no new alert is raised.
 *
 *   raise   when at least k of the last n scored windows (this one included)
 *           had score > threshold * raise_ratio (raise_ratio 1, the
 *           default: over the threshold). While in cooldown (ts < clear_ts +
 *           cooldown_ms) no alert is raised (the window history is kept).
 *   clear   when the score stayed < threshold * clear_ratio for m
 *           consecutive windows. The alert's end time is that window's ts.
 *
 * ON (ad_alert_cfg.on). AD_ALERT_ON_SCORE: the above, on the (smoothed)
 * score against the threshold. AD_ALERT_ON_PROBABILITY: the same k-of-n /
 * m-below rules on the anomaly probability p of each window (likelihood.h)
 * against `level`, measured as surprise S = -ln(1 - p) (from the window's
 * log-likelihood, so it keeps its resolution where p rounds to 1): a window
 * exceeds when S > S_level = -ln(1 - level), and counts as below when
 * S < clear_ratio * S_level (level 0.9999, clear_ratio 0.8: p < 0.99937).
 *
 * RAISE RATIO (raise_ratio r > 1, score only: ad_alert_cfg_check refuses
 * r != 1 with AD_ALERT_ON_PROBABILITY). The threshold still says
 * which windows are normal (the detector learns only from windows under it,
 * ad_alerter_last_exceeded and the run-up count windows over it), but an
 * alert needs k of n windows over r x threshold: a hysteresis band on the
 * raising side as clear_ratio is on the clearing side. A score that wanders
 * a little over the threshold for a while (a stretch of the normal range
 * the model has not seen yet) is neither learned nor alerted; a fault that
 * goes clearly over it raises as before. The level and burst tests'
 * windows (ad_alert_obs.elevated) count as over r x threshold.
 * Such a run between the two (the band) is never learned, so a lasting one
 * would stay unlearned and silent forever: the detector ends it once it
 * lasted as long as a persistent change (alert.band, BAND RUN in
 * detector.h). ad_alert_obs.band asks for that raise: an idle alerter
 * raises on that window whatever its k-of-n history (cooldown aside), and
 * the alert is marked band (JSON "raised_by":"band").
 *
 * CLOSE REASON. An alert ends `cleared` (the rule above) or, through
 * ad_alerter_close, `accepted` (the caller accepted the change as the new
 * normal, see detector.h REGIME ACCEPTANCE), `false_alarm` (an operator
 * said so, see ad_detector_false_alarm), `restart` (the stream could not
 * continue it after a restart: its settings changed meanwhile), `reload`
 * (a configuration reload rebuilt the stream), `evicted` (the stream was
 * dropped: idle, stream limit, detector removed), `model_changed` (the
 * stream now runs another model, whose scores are on another scale),
 * `recalibrate` (an operator had the stream calibrate again) or
 * `detector_removed` (the daemon started without the stream's detector in
 * its configuration and closed the alert from the stream's state file).
 *
 * SAVE / RESTORE. ad_alerter_save writes the sequence counter and the open
 * alert with everything its clearing depends on (window history, windows
 * below, the feature shares so far); ad_alerter_restore continues it (same
 * id, same seq) or only hands it back so the caller can close it.
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

typedef enum {
    AD_ALERT_ON_SCORE = 0,
    AD_ALERT_ON_PROBABILITY
} ad_alert_on;

typedef enum {
    AD_CLOSE_NONE = 0,        /* still active */
    AD_CLOSE_CLEARED,         /* below the clear level for m windows */
    AD_CLOSE_ACCEPTED,        /* accepted as the new normal */
    AD_CLOSE_RESTART,         /* not continued after a restart */
    AD_CLOSE_RELOAD,          /* a reload rebuilt the stream */
    AD_CLOSE_EVICTED,         /* the stream was dropped */
    AD_CLOSE_MODEL_CHANGED,   /* the stream runs another model */
    AD_CLOSE_FALSE_ALARM,     /* an operator marked it a false alarm */
    AD_CLOSE_RECALIBRATE,     /* an operator had the stream recalibrate */
    AD_CLOSE_DETECTOR_REMOVED /* its detector was removed from the
                               * configuration while the daemon was stopped */
} ad_close_reason;

/* What a lasting band run does (alert.band; BAND RUN in detector.h). */
typedef enum {
    AD_BAND_OFF = 0,    /* nothing: never raised, never learned */
    AD_BAND_RAISE,      /* raised once as a persistent change (then acceptance) */
    AD_BAND_LEARN       /* learned as normal without an alert (an event says so) */
} ad_alert_band;

typedef struct ad_alert_cfg {
    int k;                /* windows over threshold ... default 3 */
    int n;                /* ... of the last n (1..AD_ALERT_MAX_N), default 5 */
    int m;                /* clear after m windows below, default 10 */
    double clear_ratio;   /* clear level = threshold * clear_ratio, (0,1], default 0.8 */
    double raise_ratio;   /* raise level = threshold * raise_ratio, [1,100],
                             default 1 (score only; RAISE RATIO) */
    ad_alert_band band;   /* detector: a band run of accept_after windows,
                             default AD_BAND_RAISE */
    int64_t cooldown_ms;  /* no raise within this time after a clear; default 0 */
    ad_alert_on on;       /* what raises and clears; default score */
    double level;         /* probability: raise level in (0,1), default 0.9999 */
    int accept_after;     /* detector: accept a persistent change after this
                           * many alert windows; 0 = never (default) */
    double accept_spread; /* detector: stability factor (> 0), default 3 */
    double accept_trend;  /* detector: stable also needs the rise within the
                             last A/2 windows <= this x the change's size
                             (0: no such check), default 0.25 */
    int accept_gap;       /* detector: alerts at most this many windows apart
                             pool their windows for acceptance (0: one alert) */
    int64_t accept_after_ms;  /* detector: accept_after as data time, turned
                                 into windows by the stream's window period
                                 (0: accept_after counts), default 0 */
    int64_t accept_gap_ms;    /* detector: accept_gap as data time, likewise */
    int64_t accept_period_ms; /* detector: a chain is accepted only when its
                                 latest occurrence starts at the phase of an
                                 earlier one in this period, within 1/12 of
                                 it (0: any recurrence), default 0 */
    int accept_onset;     /* detector: with accept_period_ms, a chain that
                             raised at least this many alerts is accepted at
                             the onset of a recurrence at the time of day of
                             an earlier one, instead of raising it (0: off,
                             the default) */
    double stepdown_ratio; /* detector: STEP-DOWN ACCEPTANCE (detector.h):
                              an open alert whose mean score over
                              stepdown_windows windows stayed under this x
                              the highest such mean of the alert for
                              stepdown_after windows is accepted at its
                              lower level; [0, 1), 0: off (the default) */
    int stepdown_windows; /* detector: the mean's span (windows), 1..100000,
                             default 30 */
    int stepdown_after;   /* detector: windows the mean must stay under,
                             1..100000, default 30 */
    int64_t level_ms;     /* detector: LEVEL TEST over this much data, turned
                             into windows by the stream's window period (0:
                             off, the default; see detector.h) */
    double level_z;       /* detector: the level test's fence in spreads of
                             the normal scores, > 0, default 6 */
    int64_t burst_ms;     /* detector: BURST TEST span of data (0: off, the
                             default; see burst.h) */
    int burst_n;          /* detector: outliers of one feature within
                             burst_ms that make a burst, 2..1000, default 3 */
    double burst_z;       /* detector: an outlier's distance from its
                             neighbours' median in spreads (1.4826 MAD),
                             > 0, default 5 */
    int64_t noise_ms;     /* detector: NOISE TEST: a feature's noise over
                             noise_ratio x its usual level for this much data
                             raises (0: off, the default; see noise.h) */
    double noise_ratio;   /* detector: the noise test's ratio, > 1,
                             default 1.8 */
} ad_alert_cfg;

/* One scored window as the alerter sees it. */
typedef struct ad_alert_obs {
    double score;             /* (smoothed) score */
    double threshold;         /* current threshold */
    double prob;              /* anomaly probability, NAN if unknown */
    double log_lik;           /* ln(1 - prob), NAN if unknown */
    const float *share;       /* F floats or NULL */
    int elevated;             /* the detector's level, burst or noise test holds this
                               * window (on = score: it exceeds, and is not
                               * below the clear level, whatever its score) */
    int band;                 /* raise on this window when idle (a lasting
                               * band run, RAISE RATIO); the alert is marked */
    int force;                /* raise on this window when idle: windows the
                               * detector withheld that would have raised
                               * (the detector's ONSET: not a recurrence) */
    int64_t since_ms;         /* with force, > 0: the alert started at the
                               * first withheld window (start_ms), */
    double since_thr;         /* > 0: the threshold they were over (the
                               * alert's threshold), */
    double since_peak;        /* their highest score and its time (the
                               * alert's peak when over this window's) */
    int64_t since_peak_ms;
    int by;                   /* the detector's test holding this window
                               * (AD_BY_*; 0: none): an alert raised on it
                               * while its score is not over the raise
                               * level (on = score only) is marked raised by
                               * it */
} ad_alert_obs;

/* What held the window an alert was raised on (ad_alert.by; JSON
 * "raised_by"; 0: its score, or a band run: band). */
#define AD_BY_LEVEL 1           /* the level test (alert.level_ms) */
#define AD_BY_BURST 2           /* the burst test (alert.burst_ms) */
#define AD_BY_NOISE 3           /* the noise test (alert.noise_ms) */

/* "level", "burst", "noise"; NULL for 0 or another */
const char *ad_alert_by_name(int by);

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
    double probability;       /* of the raising window (NAN: unknown) */
    double log_likelihood;    /* ln(1 - probability) of the raising window */
    double peak_probability;  /* highest over the alert */
    ad_close_reason reason;   /* why it ended (NONE while active) */
    int band;                 /* raised by a lasting band run (RAISE RATIO) */
    int by;                   /* raised on a window under the raise level
                               * that a test held, on = score (AD_BY_*), 0:
                               * not */
    int n_top;
    int top_feature[AD_ALERT_TOP];   /* feature indices, most first */
    double top_share[AD_ALERT_TOP];  /* mean share over exceeding windows */
} ad_alert;

/* What raised alert a, as its events' "raised_by" says: "band" (a lasting
 * band run, a->band), else the test that held its window (ad_alert_by_name
 * of a->by), else NULL (its score: the field is absent). The one choice of
 * every alert message (ad_alert_to_json, the daemon's alert events). */
const char *ad_alert_raised_by(const ad_alert *a);

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

/*
 * The same with the probability (needed for on = probability; recorded in
 * the alert either way). ad_alerter_step(..) is this with prob = NAN.
 */
int ad_alerter_step_obs(ad_alerter *a, int64_t ts_ms, const ad_alert_obs *o,
                        ad_alert *out);

/*
 * End the active alert now with `reason` (end time ts_ms) and forget the
 * window history, so the next raise needs k fresh exceeding windows.
 * Returns AD_ALERT_CLEARED with *out (may be NULL) the closed alert, or 0
 * when no alert is active.
 */
int ad_alerter_close(ad_alerter *a, int64_t ts_ms, ad_close_reason reason,
                     ad_alert *out);

const char *ad_close_reason_name(ad_close_reason r);   /* "cleared", ... */
const char *ad_alert_on_name(ad_alert_on on);           /* "score", ... */

/* Why the last alert ended (AD_CLOSE_NONE while one is active or before
 * any). */
ad_close_reason ad_alerter_last_reason(const ad_alerter *a);

/* Was the last stepped window over the threshold? */
int ad_alerter_last_exceeded(const ad_alerter *a);
/* Windows back from the last stepped one to the oldest window over the
 * threshold among the last n (0: the last one, or none over): at a raise,
 * the first window of its run-up. */
int ad_alerter_run_up(const ad_alerter *a);

/* The active alert (NULL when idle); valid until the next step. */
const ad_alert *ad_alerter_active(const ad_alerter *a);

/* Alerts raised since creation (the last seq). */
uint64_t ad_alerter_count(const ad_alerter *a);

/* Forget the window history and end any active alert silently (no event);
 * the seq counter is kept so ids stay unique. */
void ad_alerter_reset(ad_alerter *a);

/*
 * The alerter's persistent part as JSON (new object, NULL on OOM):
 *   {"seq":n,"cooldown_until":ms|null,"open":{alert}|null}
 * where {alert} holds the record (id, start, peak, threshold, windows,
 * probabilities, top features) and its clearing state ("hist", "hist_len",
 * "below", "share_sum", "share_n").
 */
cJSON *ad_alerter_save(const ad_alerter *a);

/*
 * Read what ad_alerter_save wrote. The seq counter becomes the larger of
 * the current and the saved one (ids stay unique). When an alert was open,
 * *saved (may be NULL) receives it (saved->active = 1; else active = 0);
 * with resume = 1 it also becomes the active alert again, so the next
 * windows continue and clear it. Feature indices >= F are refused; with
 * resume = 0 an open alert saved with another feature count (its
 * "share_sum" has not F entries: the model changed) is read without its
 * top features (saved->n_top 0), so that it can still be closed.
 * Returns 0, or AD_EFORMAT with a message naming the field.
 */
int ad_alerter_restore(ad_alerter *a, const cJSON *o, int resume, ad_alert *saved,
                       char *err, size_t errlen);

/*
 * An alert as JSON (new cJSON object; NULL on OOM):
 *   {"id":..,"stream":..,"state":"raised"|"cleared","start":ms,"end":ms|null,
 *    "start_iso":"..Z","peak_score":..,"threshold":..,"severity":..,
 *    "windows":..,"top_features":[{"name":..,"share":..},..],
 *    "probability":p|null,"log_likelihood":L|null,"peak_probability":..|null,
 *    "raised_by":"band" (an alert raised by a lasting band run),
 *      "level"|"burst"|"noise" (raised on a window under the threshold
 *      that test held; absent: raised by its score),
 *    "reason":"cleared"|"accepted"|"restart"|"reload"|"evicted"|
 *             "model_changed"|"false_alarm"|"recalibrate"|"detector_removed"
 *             (cleared alerts only)}
 * names (F strings) may be NULL (indices are printed as "f<i>").
 */
cJSON *ad_alert_to_json(const ad_alert *al, const char *stream,
                        const char *const *names);

#endif /* AD_ALERT_H */
