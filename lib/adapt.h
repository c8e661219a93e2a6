/*
 * adapt.h - continual learning of one stream's model with a shadow
 * evaluation: a bounded set of recent windows judged normal, a schedule that
 * turns it into a fine-tuning job, a candidate model that runs beside the
 * live one, and the decision (promote / reject) with the figures behind it.
 *
 * The module is pure: it never runs the caller's inference and never does
 * I/O. The detector and the daemon drive it:
 *
 *   offer     after each scored window (detecting phase), the caller offers
 *             the window (raw rows, or scaled with the model given, which the
 *             module inverts), the live model's score, the candidate's score
 *             on the same window while a candidate is in shadow, and the
 *             verdict flags (over the threshold, data-quality flag).
 *   alerts    ad_adapt_alert_raised() / _cleared() are called for the
 *             detector's alert events BEFORE the window that caused them is
 *             offered (so that window counts as inside the alert).
 *             ad_adapt_alert_false() withdraws a true alert later (operator
 *             marked it a false alarm).
 *   train     when the schedule is due, AD_ADAPT_EV_TRAIN_READY is queued;
 *             ad_adapt_take_job(live model) hands out a self-contained job
 *             (owns copies of the normal windows and a clone of the live
 *             model); ad_adapt_job_run() runs on any thread;
 *             ad_adapt_train_done() gives the candidate back (loop thread).
 *   shadow    while ad_adapt_candidate() is not NULL the caller runs it on
 *             the same windows as the live model (same worker batch) and
 *             passes its score in the offer. After shadow_windows windows
 *             have a final verdict, the decision is made inside the offer:
 *             AD_ADAPT_EV_PROMOTED or AD_ADAPT_EV_REJECTED, with the figures.
 *   swap      on promotion the caller takes the candidate
 *             (ad_adapt_take_candidate), installs it as the live model and
 *             re-baselines the threshold with ev.cand_threshold (or refits
 *             its own threshold from ad_adapt_shadow_fit()). On rejection
 *             it takes it too and frees it once no batch uses it.
 *   reload    `reload.shadow`: a model file changed on SIGHUP is evaluated
 *             the same way: ad_adapt_shadow_begin(model) instead of a job.
 *
 * NORMAL SET. A ring of the last M = normal_windows windows judged normal,
 * stored RAW (unscaled) with their timestamps. Raw because the scaler belongs
 * to the model: a reload or bootstrap may change it, and raw windows stay
 * valid training data for any model (the job scales them with the model it
 * fine-tunes; a fine-tune keeps the scaler). Memory: M*T*F floats (500
 * windows of 30x5: 300 kB) plus (margin+1)*T*F for the pending queue;
 * normal_stride keeps one of every s normal windows so M covers more data
 * time when hop is small.
 *
 * VERDICT. A window is judged normal when no alert is active, it is not
 * over the threshold (exceeded), it carries no data-quality flag, and no
 * alert is raised within the next `margin` windows offered, and it is not
 * one of the `margin` windows after an alert cleared. Recent windows wait in
 * a pending queue until `margin` newer windows were offered; a raise drops
 * the whole queue (those windows preceded the alert). After a clear the
 * margin is at least cfg.margin_min, which the detector sets to the
 * windows that share a sample with a given window: a window holding an
 * alert's samples is inside the alert. (Before a raise a window holds the
 * older samples of the raising window, not the newest that raised it; a
 * larger margin there would only delay every window's entry.)
 *
 * TRUE ALERTS. While an alert is active the module keeps a copy of its peak
 * window (highest live score). When the alert clears as a true alert
 * (AD_ADAPT_CLEAR_TRUE) the peak joins a ring of the last K = true_alerts;
 * alerts cleared as false alarms or as an accepted new regime are not kept.
 *
 * SCHEDULE. Due after every_windows windows offered or every_hours of data
 * time (window timestamps) since the last decision (or start), whichever
 * first (0 disables a trigger), and only when the normal set holds at least
 * min_windows; a due schedule waits for that. No new job while a job runs or
 * a candidate is in shadow. A due schedule also waits while a window judged
 * against an accepted regime (ad_adapt_obs.regime) was offered within the
 * last margin windows (the regime's occurrence runs; its hours would make
 * the shadow comparison), at most shadow_windows windows.
 *
 * DECISION, after shadow_windows shadow windows have a final verdict
 * (normal, or dropped as inside/near an alert, exceeded, data quality):
 *   live_error, cand_error = mean (or median, `compare`) of the live and
 *       candidate scores over the shadow windows judged normal (at least
 *       half of shadow_windows must be, else rejected);
 *   gain = 1 - cand_error / live_error;
 *   cand_threshold = the detector's threshold method (thr cfg) fitted on
 *       the candidate's scores of those windows, EWMA-smoothed with
 *       smooth_alpha as the detector smooths (method `model` uses the
 *       candidate's training metadata);
 *   every kept true alert's peak window is scored with the candidate (K
 *       forward passes on the caller's thread, once per decision): silenced
 *       when its score <= cand_threshold;
 *   PROMOTE iff cand_error <= live_error * (1 - min_gain) and no true alert
 *       is silenced (and the threshold fit succeeded).
 *
 * CONFIG KEYS (proposed; type, range, default; reload may change all):
 *   adapt.enabled          bool                   false
 *   adapt.every_windows    int   0..1e9           10000  (0 = off)
 *   adapt.every_hours      number 0..8760         24     (0 = off; not both 0)
 *   adapt.normal_windows   int   1..1e6           500    (M)
 *   adapt.min_windows      int   1..normal_windows 200
 *   adapt.normal_stride    int   1..1e6           1
 *   adapt.margin           int   0..100000        50     (windows)
 *   adapt.shadow_windows   int   1..1e6           500    (S)
 *   adapt.normal_ms, min_ms, margin_ms, shadow_ms
 *                          int   0..31622400000   0      (ms; 0 = unset)
 *   adapt.min_gain         number 0..<1           0.0
 *   adapt.compare          "mean"|"median"        "mean"
 *   adapt.true_alerts      int   0..64            8      (K)
 *   adapt.epochs           int   1..1000          3
 *   adapt.lr               number (0,1]           0.001
 *   adapt.batch_size       int   1..4096          32
 *   adapt.max_seconds      number >= 0            0      (per job; 0 = none)
 *   adapt.seed             int   >= 0             1      (attempt k: seed+k)
 *   reload.shadow          bool                   false
 *
 * INTEGRATION CONTRACT (detector + daemon; all ad_adapt_* calls on the
 * stream's loop thread except ad_adapt_job_run):
 *   - the detector owns one ad_adapt per stream (NULL when disabled), made
 *     with its T, F, metric, smooth_alpha and thr cfg;
 *   - in ad_detector_feed_score (detecting phase only): after the alerter
 *     step, forward raise/clear (clear reason TRUE unless accepted), then
 *     ad_adapt_offer() with the window (the daemon keeps the scaled buffer
 *     until the score is fed; pass it with job.model), the raw score, the
 *     exceeded flag and the data-quality flag; poll adapt events and
 *     re-queue them as detector events;
 *   - the daemon runs ad_adapt_candidate() on the same batch as the live
 *     model (the scaled buffer is valid for it when ad_adapt_same_scaler();
 *     otherwise unscale with the live model and scale with the candidate),
 *     runs ad_adapt_job_run on its worker pool, calls ad_adapt_train_done on
 *     the loop, publishes adapt events on the state topic, and on promotion
 *     saves the model in the state directory (ad_model_save) and the adapt
 *     state (ad_adapt_save) next to the calibration state;
 *   - a candidate in flight in a worker batch must not be freed: the module
 *     hands every decided candidate over (DECIDED below) and the caller
 *     frees it once no batch reads it.
 *
 * DECIDED. A decision (AD_ADAPT_EV_PROMOTED / _REJECTED, from an offer or
 * ad_adapt_abandon) moves the candidate to the decided slot, where it waits
 * for ad_adapt_take_candidate(); the learner never frees it (but in
 * ad_adapt_free), since batches in flight on other threads may still score
 * it. While it waits nothing new begins: no fine-tune is scheduled
 * (ad_adapt_take_job: NULL), ad_adapt_shadow_begin refuses (AD_EINVAL). So
 * there is never more than one decided candidate, and no event is queued
 * after its decision event, which the event queue (AD_ADAPT_EVENTS, the
 * oldest dropped when full) therefore never drops before the caller has
 * seen it. The detector takes the candidate when it polls that event.
 *
 * DATA TIME. normal_windows, min_windows, margin and shadow_windows count
 * windows, so what they mean depends on the stream's sample rate. Each may
 * be given as data time instead (normal_ms, min_ms, margin_ms, shadow_ms;
 * 0 = unset, the count is used; the caller refuses both forms of one
 * setting, as ad_adapt_cfg_check cannot tell a count left at its default
 * from one set to it). They become window counts once the stream's window
 * period is known: ad_adapt_resolve(), which also allocates what those
 * counts size (normal set, pending queue, shadow accumulators; normal_ms
 * and min_ms are divided by normal_stride too: the set spans normal_ms of
 * data). A failed resolution (the memory limit, the pending queue counted)
 * leaves the learner unresolved, holding nothing more. Until then
 * the learner is "unresolved": the clean windows offered are held (up to
 * AD_ADAPT_EARLY = 64, allocated on the first; beyond, stats excluded_early, not kept; stats
 * pending counts the held ones) and at the resolution go through the
 * pending queue in offer order, so the normal set is the one the counts
 * would have given (an alert raised while unresolved drops the held
 * windows within the margin, all of them when the margin is in data
 * time; the margin of a clear applies to the held windows after it). No
 * fine-tune is scheduled and no shadow can begin (ad_adapt_shadow_begin:
 * AD_EINVAL) until then. The detector resolves at the end of calibration
 * or after its first AD_WP_N windows, and at once on a restore with a
 * saved window period. With counts only the learner is resolved from
 * ad_adapt_new on.
 *
 * THREAD RULES. One ad_adapt is used by one thread at a time. An
 * ad_adapt_job is self-contained (ad_adapt_job_run is pure). Models passed
 * in are borrowed unless said otherwise.
 */
#ifndef AD_ADAPT_H
#define AD_ADAPT_H

#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

#include "model.h"
#include "engine.h"
#include "threshold.h"
#include "train.h"
#include "alert.h"

typedef enum { AD_ADAPT_MEAN = 0, AD_ADAPT_MEDIAN = 1 } ad_adapt_stat;

typedef struct ad_adapt_cfg {
    int enabled;            /* adapt.enabled */
    int every_windows;      /* adapt.every_windows */
    double every_hours;     /* adapt.every_hours */
    int normal_windows;     /* adapt.normal_windows (M) */
    int min_windows;        /* adapt.min_windows */
    int normal_stride;      /* adapt.normal_stride */
    int margin;             /* adapt.margin */
    int shadow_windows;     /* adapt.shadow_windows (S) */
    /* The same four as data time (ms; 0 = unset: the count above is
     * used), turned into counts by ad_adapt_cfg_resolve (DATA TIME) */
    int64_t normal_ms;      /* adapt.normal_ms */
    int64_t min_ms;         /* adapt.min_ms */
    int64_t margin_ms;      /* adapt.margin_ms */
    int64_t shadow_ms;      /* adapt.shadow_ms */
    double min_gain;        /* adapt.min_gain */
    ad_adapt_stat compare;  /* adapt.compare */
    int true_alerts;        /* adapt.true_alerts (K) */
    int epochs;             /* adapt.epochs */
    double lr;              /* adapt.lr */
    int batch_size;         /* adapt.batch_size */
    double max_seconds;     /* adapt.max_seconds */
    uint64_t seed;          /* adapt.seed */
    int reload_shadow;      /* reload.shadow */
    double drift_ratio;     /* adapt.drift_ratio (REFERENCE; 0: no notice) */
    /* Not a key: the windows that share a sample with a given window,
     * ceil(T / hop) - 1, set by the detector. After a clear the margin is
     * at least this many windows (ad_adapt_margin_after): a window holding
     * a sample of an alert's window is inside the alert, not beside it
     * (0: no floor). Before a raise the margin is as given. */
    int margin_min;
} ad_adapt_cfg;

void ad_adapt_cfg_default(ad_adapt_cfg *c);
/* Every field; the message names the key ("adapt.min_gain: ..."). min
 * against normal is checked when both are in the same form (counts, or
 * data time); mixed, once resolved (ad_adapt_cfg_resolve). */
int ad_adapt_cfg_check(const ad_adapt_cfg *c, char *err, size_t errlen);
/* 1 when a setting is given in data time (the learner starts unresolved). */
int ad_adapt_cfg_in_data_time(const ad_adapt_cfg *c);
/* Windows left out after an alert cleared: max(margin, margin_min). */
int ad_adapt_margin_after(const ad_adapt_cfg *c);
/* Largest data-time setting, in ms (a year). */
#define AD_ADAPT_MAX_MS 31622400000LL

/*
 * The data-time settings of c as window counts for a stream with a window
 * every window_ms (> 0) of data: round(ms / window_ms), at least 1 (margin:
 * 0) and at most the count's range (normal, min, shadow 1e6; margin 1e5);
 * normal_ms and min_ms at least AD_ADAPT_NORMAL_MIN (min_ms: up to the
 * set; a slow stream's day can be one window, and a fine-tune would learn
 * that window alone). The ms fields stay. When only the data-time forms make min_windows more
 * than normal_windows (one of them in data time, the other a count), min
 * becomes normal_windows. Returns 0, or 1 when a value was clamped (note,
 * may be NULL, says which and why, for a log line).
 */
int ad_adapt_cfg_resolve(ad_adapt_cfg *c, double window_ms, char *note, size_t notelen);
#define AD_ADAPT_NORMAL_MIN 20
const char *ad_adapt_stat_name(ad_adapt_stat s);      /* "mean"/"median" */
int ad_adapt_stat_from_name(const char *s);           /* -1 when unknown */

/* How an alert ended, for the true-alert set. */
typedef enum {
    AD_ADAPT_CLEAR_TRUE = 0,    /* a real fault: kept as a true alert */
    AD_ADAPT_CLEAR_FALSE,       /* false alarm: not kept */
    AD_ADAPT_CLEAR_ACCEPTED     /* accepted as the new normal: not kept */
} ad_adapt_clear;

typedef enum {
    AD_ADAPT_EV_TRAIN_READY = 1,   /* call ad_adapt_take_job() */
    AD_ADAPT_EV_SHADOW,            /* a candidate entered shadow */
    AD_ADAPT_EV_PROMOTED,
    AD_ADAPT_EV_REJECTED,
    AD_ADAPT_EV_TRAIN_FAILED,
    AD_ADAPT_EV_DRIFT,             /* the reference drift reached
                                    * adapt.drift_ratio (REFERENCE) */
    AD_ADAPT_EV_WAITING            /* not queued by the learner: a reloaded
                                    * model file waits to go into shadow
                                    * (ad_adapt_waiting_event) */
} ad_adapt_ev_type;

typedef enum { AD_ADAPT_FINETUNE = 0, AD_ADAPT_RELOAD = 1 } ad_adapt_origin;

/* An event with the figures that decided it (fields not relevant to the
 * type are NAN / 0). */
typedef struct ad_adapt_event {
    ad_adapt_ev_type type;
    int64_t ts_ms;              /* data time of the window that caused it */
    uint64_t attempt;           /* 1, 2, ... */
    ad_adapt_origin origin;
    char model_id[AD_MODEL_ID_LEN + 1];   /* candidate's id ("" unknown) */
    ad_adapt_stat compare;
    double live_error;          /* compare-statistic of live scores */
    double cand_error;          /* ... of candidate scores */
    double gain;                /* 1 - cand/live */
    double min_gain;
    double cand_threshold;      /* candidate threshold (re-baseline value):
                                 * max(cand_fit, hold_threshold) */
    double cand_fit;            /* ... fitted on its shadow scores alone */
    double hold_threshold;      /* live threshold x cand/live error ratio
                                 * (NAN: none known) */
    uint64_t shadow_windows;    /* windows with a final verdict in shadow */
    uint64_t normal_windows;    /* of those, judged normal (compared) */
    uint64_t regime_windows;    /* of those, judged against an accepted
                                 * regime (left out of the threshold fit
                                 * while fewer than half) */
    int alerts_checked;
    int alerts_silenced;
    double min_alert_ratio;     /* min over alerts of cand score / threshold */
    char silenced_alert[AD_ALERT_ID_LEN];  /* first silenced alert id */
    uint64_t train_windows;     /* windows the candidate was trained on */
    int epochs_run;
    double train_loss;
    double train_seconds;
    int regimes_kept;           /* promoted: accepted regimes kept over it / */
    int regimes_ended;          /* ... ended with it (the caller's; -1: n/a) */
    double ref_error;           /* REFERENCE: the reference model's error on
                                 * the latest fine-tune's windows (NAN: none) */
    double ref_ratio;           /* ... / the lowest so far (the baseline) */
    int ref_feature;            /* the feature whose error grew most (-1) */
    double ref_feature_ratio;   /* ... its ratio */
    int64_t ref_since;          /* data time of the baseline */
    char reason[200];
} ad_adapt_event;

#define AD_ADAPT_EVENTS 16
#define AD_ADAPT_RUN_UP 64     /* alert.n's limit (AD_ALERT_MAX_N) */
/* Largest normal set, in stored values (M*T*F floats: 1 GiB). */
#define AD_ADAPT_MAX_FLOATS (1ul << 28)

typedef struct ad_adapt_stats {
    uint64_t offered;           /* windows offered */
    uint64_t admitted;          /* windows that entered the normal set */
    uint64_t excluded_alert;    /* inside an alert or its margins */
    uint64_t excluded_exceeded; /* over the threshold */
    uint64_t excluded_dq;       /* data-quality flag */
    uint64_t excluded_early;    /* clean, but offered before the counts
                                 * were known (DATA TIME) beyond the
                                 * AD_ADAPT_EARLY held: not kept */
    uint64_t normal_len;        /* windows in the normal set now */
    uint64_t pending;           /* windows waiting in the pending queue
                                 * (or held until the counts are known) */
    int true_alerts;            /* kept true alerts */
    uint64_t attempts, promotions, rejections, failures;
    uint64_t sched_windows;     /* schedule position: windows since last */
    int64_t sched_start_ms;     /* data time it started; INT64_MIN unset */
    int due, training, shadow;  /* state */
    double ref_ratio;           /* REFERENCE: the latest ratio (NAN: none) */
    int ref_feature;            /* ... the feature whose error grew most (-1) */
    int drift;                  /* a drift notice is out */
} ad_adapt_stats;

typedef struct ad_adapt ad_adapt;

/*
 * New continual learner for windows (T, F), the detector's error metric,
 * smoothing (smooth_alpha in (0,1], 1 = none) and threshold settings
 * (copied; adapt is ignored). Returns 0 and *out or a negative code with a
 * message (bad config names the key).
 */
int ad_adapt_new(ad_adapt **out, const ad_adapt_cfg *cfg, int T, int F,
                 ad_metric metric, double smooth_alpha, const ad_thr_cfg *thr,
                 char *err, size_t errlen);
void ad_adapt_free(ad_adapt *a);    /* NULL-safe */

/*
 * The stream's window period is known (window_ms > 0, the interval between
 * scored windows): the data-time settings become window counts
 * (ad_adapt_cfg_resolve; note as there) and the normal set, pending queue
 * and shadow accumulators are allocated for them. Returns 0 (also when
 * already resolved: nothing changes), or AD_ERANGE when the normal set
 * would exceed AD_ADAPT_MAX_FLOATS (the message names the key, the ms and
 * the windows), AD_ENOMEM, AD_EINVAL; on failure the learner stays
 * unresolved (keeps no window, schedules nothing).
 */
int ad_adapt_resolve(ad_adapt *a, double window_ms, char *note, size_t notelen,
                     char *err, size_t errlen);
/* The fewest normal shadow windows a candidate's threshold can be fitted
 * on under thr: calibration.min_samples, for pot also 5 / (1 - pot_init)
 * (five peaks); 0 for fixed and model. A shadow span in data time is
 * raised to twice it when resolved (half the span must be normal). */
int ad_adapt_shadow_need(const ad_thr_cfg *thr);

/* 1 when the counts are known (ad_adapt_resolve done, or counts only). */
int ad_adapt_resolved(const ad_adapt *a);
/* The settings in effect (borrowed): counts resolved; before resolution
 * the counts given in data time are 0. */
const ad_adapt_cfg *ad_adapt_get_cfg(const ad_adapt *a);

/* Verdict and scores of one offered window. */
typedef struct ad_adapt_obs {
    int64_t ts_ms;              /* timestamp of the window's last row */
    double live_score;          /* live model's raw score */
    double cand_score;          /* candidate's raw score; NAN when none */
    int exceeded;               /* over the live threshold */
    int dq;                     /* carries a data-quality flag */
    int regime;                 /* judged against an accepted regime's
                                 * threshold (over the live one) */
} ad_adapt_obs;

/*
 * Offer a scored window: win (T*F floats, row-major), raw when scaled_by is
 * NULL, else scaled with scaled_by's scaler (inverted here). Copies what it
 * keeps. May queue events (decision, schedule due). Returns 0, or AD_EINVAL
 * (NULL arguments or a scaled_by with another feature count).
 */
int ad_adapt_offer(ad_adapt *a, const float *win, const ad_model *scaled_by,
                   const ad_adapt_obs *o);

/* Alert events of the detector (id copied; ts = data time). */
void ad_adapt_alert_raised(ad_adapt *a, const char *id, int64_t ts_ms);
void ad_adapt_alert_cleared(ad_adapt *a, const char *id, int64_t ts_ms,
                            ad_adapt_clear how);
/* A data-quality condition recognised late (stuck: flagged back to the
 * first sample of the flat run) covers data time from since_ms on: windows
 * ending at or after it leave the pending queue and the normal set (they
 * were offered as clean before the condition was known; counted in
 * excluded_dq), and the shadow span's compared windows while it runs. */
void ad_adapt_dq_since(ad_adapt *a, int64_t since_ms);
/* Every window judged while detecting, offered or not (its data time):
 * the last AD_ADAPT_RUN_UP are kept for ad_adapt_alert_run_up. */
void ad_adapt_window_seen(ad_adapt *a, int64_t ts_ms);
/* An alert's run-up, called after ad_adapt_alert_raised with the windows
 * back from the raising one to the first over the threshold that led to
 * it (ad_alerter_run_up; reaching before the windows seen since a
 * restore: from the oldest seen): the windows from that one on leave the
 * normal set and the shadow span's compared windows like a data-quality
 * span (those between it and the raise were under the threshold, admitted
 * when the margin is shorter than the run-up); counted in excluded_alert. */
void ad_adapt_alert_run_up(ad_adapt *a, int back);

/* Withdraw a kept true alert (now known to be a false alarm). Returns 1 when
 * it was kept, 0 when not found. */
int ad_adapt_alert_false(ad_adapt *a, const char *id);
/* Keep the last n windows offered inside alerts (raw, without data-quality
 * flags; n * T * F floats; 0 frees them), so that a regime accepted as the
 * new normal can teach the model at once. The detector calls it when regime
 * acceptance is on, with n = min(accept_after, normal_windows), once both
 * counts are known (with 0 when it is off). The newest n of those kept so
 * far (restored by ad_adapt_restore) stay. */
int ad_adapt_keep_alert_windows(ad_adapt *a, size_t n);
/* A regime that alerted since since_ms was accepted as the new normal: the
 * kept true alerts whose peak is at or after since_ms are withdrawn (a
 * candidate that learned the regime may silence them); the kept alert
 * windows from since_ms on join the normal set and a fine-tune is due at
 * once (without kept windows: as soon as `need` more windows joined the
 * normal set), so the model learns the regime without waiting for the
 * schedule. Returns how many alerts were withdrawn. */
int ad_adapt_alerts_accepted(ad_adapt *a, int64_t since_ms, uint64_t need);

/* Pop the oldest event; 1 when *ev was filled, 0 if none. */
int ad_adapt_poll_event(ad_adapt *a, ad_adapt_event *ev);
/* Fill *ev as an AD_ADAPT_EV_WAITING event (origin reload): the model
 * file model_id waits, for the reason why, before its shadow begins. */
void ad_adapt_waiting_event(const ad_adapt *a, ad_adapt_event *ev, const char *model_id,
                            const char *why, int64_t ts);

/* Fine-tuning job: self-contained, runs on any thread. */
typedef struct ad_adapt_job {
    int T, F;
    size_t n;                   /* windows */
    float *windows;             /* (n, T, F) raw, oldest first, owned */
    ad_model *init;             /* clone of the live model, owned */
    ad_model *ref;              /* clone of the reference model, owned
                                 * (REFERENCE; NULL: none) */
    ad_metric metric;
    int epochs, batch_size;
    float lr;
    double max_seconds;
    uint64_t seed;              /* cfg.seed + attempt */
    uint64_t attempt;
} ad_adapt_job;

/*
 * When the schedule is due (AD_ADAPT_EV_TRAIN_READY): a new job fine-tuning
 * a clone of `live` (borrowed; window and feature count must match) on a
 * copy of the normal set. NULL when not due, already taken, mismatch, a
 * decided candidate not taken yet (DECIDED) or OOM.
 */
ad_adapt_job *ad_adapt_take_job(ad_adapt *a, const ad_model *live);

/*
 * REFERENCE. Continual learning follows a slow change: a bearing that wears
 * over days is learned a little at each fine-tune and never alerts. What
 * it cannot hide is the distance from the model the stream started from,
 * the reference: each fine-tune job also scores its windows (the recent
 * normal set) with the reference (ad_adapt_job_run, on the worker) and the
 * candidate carries the mean error, in total and per feature, in its
 * training metadata ("reference": {"id", "error", "features"}). The lowest
 * such figure so far is the baseline (a first set that held a slow fault's
 * onset would otherwise hide the drift); each one gives ref_ratio = error /
 * baseline and the feature whose error grew most (each feature's error
 * against max(its baseline, 1% of the baseline total)), reported on every
 * adapt event (ref_* fields) and saved with the state. When ref_ratio
 * reaches adapt.drift_ratio (default 2; 0: never) an AD_ADAPT_EV_DRIFT
 * event is queued once (again after it fell under 0.8 x that): a notice,
 * not an alert; the change may be a new normal (a recalibrated sensor, a
 * new consumer) or a slow fault, and only the operator can tell.
 * ad_adapt_set_reference sets it (the caller sets the model a stream is
 * created with, bootstrap-trained or reloaded by the operator, and the
 * daemon the copy it kept beside a promoted model, docs/config.md "State
 * directory"; by default the live model at the first job);
 * ad_adapt_accept_drift makes the live model the reference (the operator's
 * accept_drift). A reference of another id starts a new baseline.
 * Promotions do not change it. Memory: while the reference is
 * the live model (is_live) no copy is kept; ad_adapt_keep_reference clones
 * it when a promotion replaces it, and a reference that is not the live
 * model is cloned at once; each job clones it for the worker. Nothing is
 * kept or measured without adapt.enabled (reload.shadow alone).
 */
int ad_adapt_set_reference(ad_adapt *a, const ad_model *m, int is_live);
/* The operator accepted the drift: `live` becomes the reference (a new
 * baseline at the next fine-tune, even when it already was: a notice out
 * is withdrawn). */
void ad_adapt_accept_drift(ad_adapt *a, const ad_model *live);
/* The live model is now m (a promotion): a saved reference of its id is
 * restored as the live one (ad_adapt_restore). */
void ad_adapt_live_model(ad_adapt *a, const ad_model *m);
/* Before a promotion replaces the live model: when it is the reference,
 * keep a copy of it. 0, or AD_ENOMEM. */
int ad_adapt_keep_reference(ad_adapt *a, const ad_model *live);
const char *ad_adapt_reference_id(const ad_adapt *a);   /* "" when none */
/* The reference kept apart (borrowed; NULL while it is the live model or
 * there is none). */
const ad_model *ad_adapt_reference(const ad_adapt *a);
void ad_adapt_job_free(ad_adapt_job *j);    /* NULL-safe */

/*
 * Run a job (any thread, pure; cancel may be NULL): clone job->init, scale
 * the windows with its scaler (kept), ad_train_fit job->epochs epochs with
 * job->lr, loss = the metric, seed job->seed, no validation split (the
 * shadow is the out-of-sample test), then set the "training" metadata
 * (error distribution on the windows) and the model id. Returns 0 and *out
 * (caller owns) with *rep (may be NULL), or a negative code and a message.
 */
int ad_adapt_job_run(const ad_adapt_job *job, ad_model **out,
                     ad_train_report *rep, const volatile int *cancel,
                     char *err, size_t errlen);

/*
 * Training finished: cand = the candidate (take = 1 transfers ownership;
 * else it is cloned) or NULL when training failed (why: message;
 * AD_ADAPT_EV_TRAIN_FAILED, the schedule restarts). rep may be NULL.
 * Starts the shadow (AD_ADAPT_EV_SHADOW). Returns 0, AD_EINVAL when no job
 * was out or cand does not match (ownership not taken), AD_ENOMEM.
 */
int ad_adapt_train_done(ad_adapt *a, ad_model *cand, int take,
                        const ad_train_report *rep, const char *why);

/*
 * Start a shadow evaluation of an external candidate (reload.shadow):
 * take = 1 transfers ownership, else it is cloned. Not while a candidate
 * is in shadow (ad_adapt_abandon it first: batches in flight may still
 * score it) or decided and not taken yet (DECIDED), a job is out, or
 * before the learner is resolved (its shadow span is not known yet):
 * AD_EINVAL. Returns 0 / AD_EINVAL / AD_ENOMEM
 * (with take = 1 the caller still owns cand on failure).
 */
int ad_adapt_shadow_begin(ad_adapt *a, ad_model *cand, int take, int64_t ts_ms);

/* The candidate in shadow (borrowed; NULL when none): score it on every
 * window offered. */
/* The candidate in shadow, if any, is given up before its decision (an
 * operator's model file replaces it): an AD_ADAPT_EV_REJECTED event whose
 * reason says so and names `why`; the candidate waits in
 * ad_adapt_take_candidate like a rejected one (batches in flight may still
 * score it). Returns 1 when there was one. */
int ad_adapt_abandon(ad_adapt *a, const char *why, int64_t ts_ms);
const ad_model *ad_adapt_candidate(const ad_adapt *a);

/* 1 when the candidate in shadow scales like m (same scaler and values):
 * the buffer scaled for m is valid input for the candidate. */
int ad_adapt_same_scaler(const ad_adapt *a, const ad_model *m);

/* After a decision: the decided candidate (caller owns it and frees it once
 * no batch in flight scores it; NULL if none). Until it is taken no new
 * shadow or fine-tune begins (DECIDED). */
ad_model *ad_adapt_take_candidate(ad_adapt *a);

/* The candidate's raw scores on the shadow windows judged normal, in order,
 * of the last decision (borrowed, valid until the next shadow begins). */
const double *ad_adapt_shadow_scores(const ad_adapt *a, size_t *n);

/* The candidate's shadow scores its threshold is fitted on (the decision's
 * candidate_threshold, the caller's re-baseline): the windows judged
 * normal, smoothed in order with alpha (1: none), without the ones judged
 * against an accepted regime (they scored over the live threshold and
 * would lift the candidate's; the smoothing then runs over the others
 * only) unless those are half or more of them (a regime the process
 * stayed in is what the candidate is judged on). Returns a new array of
 * *n values (NULL when none or out of memory); *last: the smoothed score
 * (over all of them) of the last window judged normal, NULL allowed. */
double *ad_adapt_shadow_fit(const ad_adapt *a, double alpha, size_t *n, double *last);
/* The live threshold the decision's hold is taken from (the detector's; may
 * be NULL: no hold). Not owned; must outlive a. */
void ad_adapt_set_live_threshold(ad_adapt *a, const ad_threshold *t);
/* The detector's per-feature scales (F; detector.h PER-FEATURE
 * NORMALISATION), or NULL: the candidate's scores of kept alert windows are
 * then normalised as the live scores are (rms: ad_recon_normalize's). Not owned; must outlive a (or be
 * set again). */
void ad_adapt_set_scale(ad_adapt *a, const double *scale, int rms);

/* The last decision (promoted / rejected / train failed); 0 when none. */
int ad_adapt_last(const ad_adapt *a, ad_adapt_event *ev);

void ad_adapt_get_stats(const ad_adapt *a, ad_adapt_stats *st);

/* The normal set, oldest first: window i (raw T*F floats, borrowed until the
 * next offer) and its timestamp. NULL when out of range. */
const float *ad_adapt_normal_window(const ad_adapt *a, size_t i, int64_t *ts_ms);

/* Inverse of ad_model_scale: raw = scaled * std + mean (standard), etc. */
void ad_adapt_unscale(const ad_model *m, const float *scaled, float *raw,
                      size_t rows);

/*
 * Persistent state as JSON text (malloc'd; NULL on OOM):
 *   {"version":1,"T":..,"F":..,"offered":..,"admitted":..,"attempts":..,
 *    "promotions":..,"rejections":..,"failures":..,
 *    "schedule":{"windows":..,"start_ms":ms|null},
 *    "last":{event}|null,
 *    "true_alerts":[{"id":..,"ts":ms,"score":..,"window":[T*F numbers]}]
 *    [,"alert":{"id":..,"ts":ms,"score":..,"window":[T*F]}]  open alert's peak
 *    [,"post_clear":n][,"cleared_at":n]                     clear margin
 *    [,"alert_windows":[{"ts":ms,"window":[T*F]}..]]        windows inside
 *                         alerts kept for an accepted regime, oldest first
 *    [,"regime_last":n][,"held_at":n]        a due fine-tune's wait for a
 *                                            regime's occurrence
 *    [,"accept_finetune":{"admitted":n,"need":n}]  an acceptance's, due
 *    [,"finetune_lost":true]     a job or a fine-tune's candidate in flight
 *    [,"normal":{"stride_count":n,"windows":[{"ts":ms,"window":[T*F]}..],
 *                "pending":[{"ago":n,"ts":ms,"window":[T*F]}..],
 *                "seen":[ms..],"seen_n":n}]
 *    [,"shadow":{"model_id":..,"attempt":n,"start_ms":ms,"windows":n,
 *                "train_windows":n,"accept":bool,"report":{..},
 *                "ts_steps":[ms,steps..],"live":[..],"cand":[..],
 *                "float":true,"regime":[0|1..],
 *                "pending":[{"ago":n,"ts":ms,"live":..,"cand":..,
 *                            "regime":0|1}..]}]   a fine-tune's candidate
 *                         in shadow: its span so far (its model is the
 *                         caller's file; ad_adapt_shadow_resume)}
 * (windows printed with 9 digits: floats, read back bit for bit; the
 * optional members are absent from states saved before they were kept).
 * The normal set is saved only by ad_adapt_save_handover, and only while
 * the acceptance's fine-tune is due, out or in shadow (adapt_state.c
 * NORMAL SET ACROSS A RESTART): a restart then trains the due fine-tune at
 * the same window on the same windows, a lost one (a job or candidate in
 * flight is never saved) again at once on the saved set; otherwise a
 * restart refills the set and the schedule resumes at its position.
 */
char *ad_adapt_save(const ad_adapt *a);
/* The parts of the state left out of ad_adapt_save (flags):
 * AD_ADAPT_SAVE_NORMAL the normal set when it is kept (megabytes: for a
 * stop, an eviction, a partition move; not for the frequent saves);
 * AD_ADAPT_SAVE_SPAN the span of a fine-tune's candidate in shadow
 * ("shadow": about 33 bytes a window judged normal, 1 MB for 30,000:
 * for the saves beside the candidate's file, a stop, an eviction, a
 * rebuild, now and then in between; never in a record that goes where its
 * file is not). */
enum { AD_ADAPT_SAVE_NORMAL = 1, AD_ADAPT_SAVE_SPAN = 2 };
char *ad_adapt_save_parts(const ad_adapt *a, int parts);
/* ad_adapt_save_parts with both. */
char *ad_adapt_save_handover(const ad_adapt *a);
/* The same as a cJSON object, for a caller that puts it in its own (the
 * detector's state: not printed and parsed again); parts: as
 * ad_adapt_save_parts. The caller owns it; NULL when out of memory. */
struct cJSON;
struct cJSON *ad_adapt_save_json(const ad_adapt *a, int parts);
/* The span AD_ADAPT_SAVE_SPAN saves: its windows judged normal so far;
 * -1 no fine-tune's candidate in shadow (nothing to save), -2 more than
 * AD_ADAPT_SHADOW_SAVE_MAX of them (not saved: a restart loses it). */
long ad_adapt_shadow_span(const ad_adapt *a);

/* Restore ad_adapt_save() text: AD_EFORMAT with the JSON path for malformed
 * text, AD_EINVAL when T/F differ. On failure nothing is changed. */
int ad_adapt_restore(ad_adapt *a, const char *json, char *err, size_t errlen);
/* Of an ad_adapt_save() text ad_adapt_restore refused (a model of another
 * window shape since), the decisions made (attempts, promotions,
 * rejections, failures): the stream's counts go on from them, not from 0.
 * 0, or AD_EFORMAT (not such a text: nothing changed). */
int ad_adapt_restore_counts(ad_adapt *a, const char *json);

/*
 * A fine-tune's candidate in shadow is saved with the state (its progress:
 * "shadow", adapt_state.c CANDIDATE ACROSS A RESTART); its model is the
 * caller's to save (a file: megabytes) and to give back after
 * ad_adapt_restore. ad_adapt_shadow_saved: 1 when a restored state holds
 * one waiting for its model (id, may be NULL: the candidate's model id).
 * ad_adapt_shadow_resume: cand (taken on success; the caller keeps it on
 * failure) must be that model (same id, the learner's window shape), the
 * learner resolved and without a candidate or job: the span goes on where
 * it stopped (windows with a verdict, the scores of those judged normal,
 * the windows still waiting for their margin, attempt, start time) and no
 * new event is queued. Returns 0, or AD_EINVAL / AD_EFORMAT / AD_ENOMEM
 * with a message. Either way the saved span is consumed; cand NULL just
 * drops it (the model could not be read: the fine-tune is lost, as before
 * these were saved).
 */
int ad_adapt_shadow_saved(const ad_adapt *a, char *id, size_t len);
int ad_adapt_shadow_resume(ad_adapt *a, ad_model *cand, char *err, size_t errlen);
/* windows judged normal a saved span holds at most (beyond: not saved) */
#define AD_ADAPT_SHADOW_SAVE_MAX 200000

const char *ad_adapt_ev_name(ad_adapt_ev_type t);   /* "adapt_promoted", .. */

/* An event as JSON (new object, NULL on OOM); stream may be NULL:
 *   {"event":"adapt_promoted","stream":..,"ts":ms,"attempt":..,
 *    "origin":"finetune"|"reload","model_id":..,"reason":..,
 *    "figures":{"compare":"mean","live_error":..,"candidate_error":..,
 *      "gain":..,"min_gain":..,"candidate_threshold":..,
 *      "shadow_windows":..,"normal_windows":..,"regime_windows":..,
 *      "alerts_checked":..,
 *      "alerts_silenced":..,"min_alert_ratio":..,"silenced_alert":..,
 *      "train_windows":..,"epochs_run":..,"train_loss":..,
 *      "train_seconds":..,"regimes_kept":..,"regimes_ended":..}}
 *   (non-finite figures and regime counts of -1 are null) */
cJSON *ad_adapt_event_to_json(const ad_adapt_event *ev, const char *stream);

#endif /* AD_ADAPT_H */
