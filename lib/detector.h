/*
 * detector.h - the streaming detection pipeline of ONE stream (device):
 * row assembly (stream.h) -> ring buffer and hop (window.h) -> scaled window
 * handed to the caller for inference -> score fed back -> smoothing ->
 * online training / calibration / threshold (threshold.h) -> alert state
 * machine (alert.h) -> events for the caller to publish.
 *
 * The same code runs in the daemon (many streams, batched inference on a
 * worker thread), in `anomalyd replay` (one stream, synchronous) and in the
 * tests. The detector never runs inference itself:
 *
 *   push      ad_detector_push_sample / _push_text / _push_row / _advance
 *             queue assembled rows inside the detector (bounded: take
 *             them with next_window after every push or advance that
 *             queued any, ad_detector_rows_queued, and none is lost, however
 *             many rows one message completes; stream.h THE ROW QUEUE).
 *   window    ad_detector_next_window(d, buf, &job) consumes queued rows one
 *             by one (ring buffer, hop, validity) and returns 1 with the next
 *             due window copied, scaled, into the caller's buf (T*F floats)
 *             and a job describing it (stream handle, timestamps, seq, the
 *             model to run). Loop until it returns 0.
 *   infer     the caller runs ad_engine_forward(job.model's engine) on a
 *             batch of such buffers (any thread) and ad_recon_score() with
 *             the detector's metric (ad_detector_metric) to get the score and
 *             the per-feature share.
 *   feed      ad_detector_feed_score(d, &job, score, share) on the detector's
 *             thread updates smoothing, phase, threshold and alert state.
 *   events    ad_detector_poll_event(d, &ev) returns the queued events
 *             (phase changed, calibrated, alert raised/cleared, training job
 *             ready) until it returns 0.
 *   train     in phase TRAINING, ad_detector_take_train_job() hands out a
 *             self-contained job (owns copies of its data); the caller runs
 *             ad_train_job_run() on any thread and gives the result back with
 *             ad_detector_train_done() on the detector's thread.
 *
 * PHASES
 *   collecting   (training finetune/bootstrap) windows are collected for
 *                training, not handed out for scoring. After train_windows
 *                windows (stride 1 over the collected valid rows no
 *                data-quality flag covers, never across a skipped row or a
 *                gap: detector.c COLLECTION), or when
 *                the rows collected span train_duration_ms of data time
 *                (first row to last), whichever comes first, phase becomes
 *                training and AD_EV_TRAIN_READY is queued. The buffer
 *                grows as rows come (AD_TRAIN_MAX_WINDOWS windows at most;
 *                out of memory ends the collection with what it holds).
 *   training     waiting for ad_detector_train_done(); windows formed now are
 *                dropped (counted in windows_skipped).
 *   calibrating  windows are scored but never alert; their (smoothed) scores
 *                feed the threshold. Ends after calib_windows scored windows,
 *                or when calib_duration_ms has elapsed since the first
 *                calibration window (data time), whichever comes first, or
 *                when the caller calls ad_detector_finish_calibration().
 *                Then the threshold is fitted (AD_EV_CALIBRATED). If the fit
 *                fails (too few scores), calibration continues.
 *                With data quality on, a clean window is held for as many
 *                windows as a stuck run needs to be recognised (quality.h:
 *                it is then flagged back to its first sample) and left out
 *                when flagged by then; held windows count toward the end
 *                and are checked once more at the end.
 *   detecting    windows are scored, thresholded and drive the alerts; with
 *                thr.adapt the threshold learns from windows that did not
 *                exceed it while no alert is active (never from anomalous
 *                ones); ad_detector_freeze() stops that.
 *   Start phase: training none -> calibrating; finetune/bootstrap ->
 *   collecting; a successful ad_detector_restore() -> detecting.
 *   Bootstrap calibrates on windows after the training ones (never on
 *   windows it trained on).
 *
 * SCORES. score = the reconstruction error under cfg.metric (MSE or MAE).
 * With smooth_alpha in (0,1) an EWMA s = a*score + (1-a)*s_prev (s starts at
 * the first score) is what calibrates the threshold and drives alerts;
 * smooth_alpha = 1 means no smoothing.
 *
 * INVALID WINDOWS. A window containing an invalid row (stream.h missing
 * policy) is not scored: counted in windows_invalid.
 *
 * UNTRUSTED WINDOWS. A row is untrusted when a sample was rejected by row
 * assembly (NaN/Inf/non-numeric) since the previous row was taken (in hold
 * mode such a row carries a held value in its place), or when a value of
 * the row, scaled by the model's scaler, is non-finite or |x| > extreme
 * (cfg.extreme; 0 = no limit). A window with an untrusted row among its T
 * rows is scored and may alert, but never feeds calibration (counted in
 * calib_excluded), threshold adaptation, regime acceptance or the anomaly
 * probability's history (windows_untrusted counts them all).
 *
 * ANOMALY PROBABILITY. Every scored window also gets p in [0,1] and its
 * log-likelihood ln(1 - p) from the raw scores' history (likelihood.h;
 * cfg.lik), in every phase; the history restarts with a new model. With
 * alert.on = probability, p against alert.level drives the alerts instead
 * of the score against the threshold (alert.h). The sd floor of the
 * probability is the threshold's floor (threshold.h FLOOR).
 *
 * REGIME ACCEPTANCE (alert.accept_after = A > 0; or alert.accept_after_ms,
 * and accept_gap_ms for G, as data time: turned into window counts once
 * the stream's window period is known, the median of its first 31
 * intervals between scored windows or of those seen when calibration ends,
 * whichever comes first; acceptance starts then; the period is saved with
 * the state ("window_ms") and a restore resumes with it; the continual
 * learner's counts given in data time, adapt.normal_ms etc., resolve at
 * the same moment: adapt.h DATA TIME).
 * While an alert is active
 * the detector keeps the (smoothed) scores of its last A windows. Once the
 * alert has lasted A windows, at each window it tests whether the change
 * is stable: with s_r = 1.4826 * MAD of those A scores, m1, m2 the medians
 * of their first and second halves, s_c the calibration spread
 * (threshold.h ad_thr_info.spread; if unknown or 0, the floor; else 0.1 *
 * threshold) and m_c the calibration median, the change is stable when
 *     s_r <= accept_spread * s_c       (no wilder than calibration),
 *     m2 - m1 <= accept_spread * s_c   (no upward trend) and, with
 *     accept_trend r > 0, m2 - m1 <= r * (median - m_c) (not a ramp),
 * and it is accepted only while it shows: on a window over the threshold
 * scoring at least median - accept_spread * s_c (a fault that ends lets
 * the trend test pass as its scores fall; that is no new normal).
 * A stable change is accepted as the new normal: the alert closes with
 * reason accepted (AD_EV_ALERT_CLEARED); the regime gets its own threshold
 * (ad_threshold_rebase_value on those A scores: refit with the estimator,
 * else the median shift) and its own excess error profile (per-feature
 * error s * share[f] minus the usual per-feature error, a running mean over
 * the last ~1000 windows judged normal, summed over its alerts);
 * AD_EV_ACCEPTED reports the regime's threshold (threshold) and the
 * stream's (prev_threshold). Up to AD_REGIMES (4) regimes are remembered
 * (one resembling the new one is replaced - on a schedule, only one at the
 * same time of day - else a free slot, else the oldest). Afterwards a window above the threshold but at most a regime's
 * is judged against the most recent such regime's threshold (stats
 * windows_regime) when its excess error e has cosine >= 0.8 with the
 * regime's profile g, or its score less the regime's part (max(0, e.g)
 * along the unit g) is within the threshold; others against the
 * threshold. Without shares the level alone decides. With continual learning the regime's kept alert windows
 * join the normal set and a fine-tune is due at once
 * (ad_adapt_alerts_accepted). At a promotion a regime ends when the
 * candidate learned it (at least alert.k trusted windows judged against it
 * in the shadow span, fewer than alert.k of them above the new threshold)
 * and stays when at least alert.k are above; one seen on fewer windows
 * ends when accepted from one persistent change (its windows taught the
 * candidate) and stays when accepted from recurrences (brief, mostly
 * inside alerts). With continual learning a regime accepted from one
 * persistent change, not recurring and on no schedule, also ends once no
 * window was judged against it over Q windows under the threshold (Q the
 * most of accept_after, accept_gap, accept_period_ms and its length, as
 * windows; state: "quiet"; while a candidate is in shadow the end waits
 * for its decision; AD_EV_REGIME_ENDED): its fine-tune may never come (a
 * restart lost it, its candidate was rejected). With accept_period_ms a persistent regime that stays
 * applies from then on at the time of day of its change (from its alert's
 * start for as long as windows kept being judged against it) and counts
 * as recurring. Regimes that stay move to the candidate's scale (threshold
 * and usual error times the candidate/live error ratio of the shadow
 * decision), and so does a chain of recurrences in progress (RECURRING
 * REGIMES: its scores and excess profiles times the ratio; a daily
 * fine-tune between two occurrences does not restart the count). An
 * alert raised later needs k
 * fresh exceeding windows. With A = 0 every alert stays open until its
 * scores clear.
 *
 * RECURRING REGIMES (alert.accept_gap = G > 0). An alert raised at most G
 * windows after the previous one cleared continues its chain: the ring
 * keeps the chain's alert scores, the test above runs on them, and it needs
 * at least 3 alerts in the chain and A of their windows, or A/3 when at
 * least 3 are recurrences (raised after A/3 or more quiet windows; a
 * flapping alert is one occurrence), or one alert of A windows. An alert
 * whose excess profile has cosine < 0.8 with the chain's starts a chain of
 * its own. With alert.accept_period_ms P > 0 the latest occurrence must
 * start within P/12 of an earlier one's phase in P (a regime recurs on a
 * schedule; faults a day apart do not), and two chains are kept: an alert
 * unlike the active chain's (once AD_ACCEPT_SWITCH_MIN = 5 windows show its
 * profile, or when it clears) parks the chain's earlier alerts and joins
 * the parked chain when like it, so a change at 22:00 and its return at
 * 06:00 each count their own recurrences; a parked chain ends after G
 * quiet windows too. A regime accepted from such a chain (or at a
 * recurrence's onset, whatever accept_onset's count) applies at its time
 * only: from P/24 before the earliest start among the occurrences at the
 * latest one's phase (within P/12) to P/24 after the latest of their ends,
 * each that start plus the longest occurrence (state: at_ms, span_ms); off
 * that time the same change is judged against the threshold. The latest alert is judged once
 * it lasted A/3 windows (or when
 * it clears, if shorter): its median score within accept_spread * s_c of
 * the median of the chain's earlier alerts, and the trend test on its own
 * scores (halves of at least 30 windows; shorter: no trend). Acceptance withdraws the chain's earlier true alerts from the
 * learner (a candidate may silence them).
 *
 * KEPT CHANGE (alert.accept_period_ms P >= 144 ms, acceptance on, F >= 3;
 * shift.h). A window over the
 * threshold, unlike an accepted regime, with no alert open, whose rows
 * moved the way of a change an earlier alert left behind (within two
 * periods of its clear) raises nothing and is taken as a seasonal window
 * (teaches neither the model nor the threshold; stats windows_kept;
 * never offered to continual learning, out of the level test's mean); while the
 * rows move that way no window teaches the threshold. Not saved.
 *
 * STEP-DOWN ACCEPTANCE (alert.stepdown_ratio r > 0, with A > 0; off by
 * default). While an alert is open, m_t is the mean of its last W =
 * stepdown_windows scores (all in the alert) and peak the highest m before
 * it; once m_t < r * peak for S = stepdown_after windows in a row the lower
 * level is accepted as the new normal (a fault that ended, leaving the
 * process at a new level under the fault's, over the clear level): the
 * alert closes with reason accepted, a regime gets the threshold
 * ad_threshold_rebase_value gives on the last S scores and the excess
 * error profile summed over the windows since m_t went under, and
 * AD_EV_ACCEPTED says "stepped down" (n = S). Unlike a plain acceptance
 * the alert stays a true alert to the continual learner. A plain
 * acceptance due at the same window goes first; a level under the clear
 * level (the mean of the last S scores and the window, alert.on score) is
 * not accepted: the alert clears as ever. A level under the threshold (none
 * of the S scores over it, or the fitted threshold not over it) closes the
 * alert as accepted with no regime (AD_EV_ACCEPTED threshold ==
 * prev_threshold, "no regime"; an earlier step down's regime ends; not in
 * stats.accepted): the threshold judges it already, and a regime over it
 * would hide faults its level never reached, one under it judge
 * nothing. A = 0: nothing. Saved with
 * the chain ("stepdown": peak, held, the last max(W, S) scores); none
 * saved (step-down was off: a reload turning it on while the alert is
 * open) or damaged, rebuilt from the alert's scores in the chain (its last
 * A), as if it had been on since the raise.
 * The regime's threshold keeps learning: a window judged against it under
 * it (trusted, no alert open) joins its scores and it is fitted again the
 * same way, up to max(A, S) scores; never a window over it; a promotion
 * ends it. Its scores are saved with the regime ("stepdown_scores").
 *
 * ACROSS A RESTORE. The state keeps the chains (ad_detector_save
 * "accept"), so a stream restored from a hand-over (a stop, an eviction)
 * accepts a change at the window it would have without the restore. A
 * save made in the middle of the stream (an alert event, the periodic save
 * of an open alert) misses what was consumed after it when the daemon is
 * then killed: inside an alert those windows are lost from the count;
 * outside one they were quiet windows, and at the first window after the
 * restore the windows since the saved last row (data time over the window
 * period) count as quiet, so a chain that ended meanwhile is not
 * continued. Acceptance settings are not in the settings hash; changed
 * since the save: with accept_after now A the newest A scores of each
 * chain are kept (lowered: they are judged at once; raised: they count
 * towards it), accept_gap 0 drops the chain's earlier alerts and the
 * parked chain, accept_period_ms 0 the parked chain, a lowered accept_gap
 * ends a chain whose quiet windows exceed it at the next window.
 *
 * BAND RUN (alert.raise_ratio r > 1 with alert.accept_after A > 0;
 * alert.band, default raise). A window over the threshold and under r x
 * it, with no alert open and not held by the level, burst or noise test, is in
 * the band: it raises nothing and is not learned (alert.h RAISE RATIO). A
 * run of them starts at such a window and lasts, in windows (A is
 * accept_after_ms by the window period), until alert.m consecutive
 * windows are not over the threshold or an alert opens. Once a run lasted
 * A windows, at its next band window: raise: an alert is raised whatever
 * its k-of-n history (ad_alert.band, JSON "raised_by":"band"), and as any
 * persistent change it is then accepted (REGIME ACCEPTANCE) after A
 * windows of it that pass the stability test, or stays open; learn: no
 * alert; an AD_EV_ACCEPTED event (text naming the band run, threshold
 * unchanged) and from then on the run's band windows are learned as normal
 * (the threshold's adaptation, the continual learner's normal set) until
 * the run ends; off: nothing (windows_under_raise counts them, as ever).
 * With r = 1 there is no band and with A = 0 nothing accepts a change, so
 * nothing is raised or learned either way. The run's count is in the
 * state ("band") and survives a restore.
 *
 * CALIBRATION AGAINST THE MODEL (calib_model_guard = g > 0, default 3). A
 * model file that records its training error E (training.error q99, at
 * most 2 x its q90: threshold.h ad_thr_error_ref; in this detector's
 * metric, ad_thr_model_stat) says what normal data scores: a calibration
 * window scoring above g * E is left out of
 * calibration (counted in calib_excluded), so an anomaly under way when a
 * stream starts or recalibrates (a new model by reload or restart, a new
 * stream key) is not learned as normal. When as many windows are left out
 * this way as calibration needs (calib_windows; with calib_duration_ms
 * alone: more than were kept when it ends), the calibration saw no normal
 * data: the threshold is the model's, E * thr.margin (quantile and sigma;
 * ad_threshold_fit_value, adapting from the normal scores that follow), the
 * stream detects, and a warning names the figures: an anomaly that outlasts
 * calibration alerts rather than going silent. Normal data scores about E
 * (the bundled pump model: median 0.8 E, at most 1.2 E over a week).
 * The cap at 2 x q90 is for a bootstrap whose training rows end inside a
 * new state (a regime starting in its last minutes): those few windows lift
 * q99 far over the rest, and g x that q99 would admit the new state's
 * windows, which would then set the threshold (blind for hours); capped,
 * they are left out. A model the stream trained itself (bootstrap) waits
 * longer before the fallback: up to alert.accept_after windows when that
 * is more than calib_windows (a warning says so when calib_windows were
 * left out): a state that lasts that long would be accepted as a new
 * normal anyway, and one that ends sooner (the rest of a night regime
 * its training caught the start of) is waited out rather than alerted on
 * with the model's threshold; a fault under way then alerts when the wait
 * ends, or at the end of calibration if it ended sooner. A window left out
 * while it waits for a data-quality flag, an untrusted row or a score above
 * the previous threshold (restored as a guard) counts toward that fallback
 * too (calib_flagged): a sensor stuck during the wait would
 * otherwise hold it for as long as the flag lasts. A model the stream
 * trained itself and restored from its state with training off
 * (cfg.own_model) waits the same way.
 * g = 0, or a model without the metadata: no such guard.
 *
 * CALIBRATION FAILURES. When a fit fails (too few scores, POT peaks) the
 * stream keeps calibrating; AD_EV_CALIB_FAILED (and a warning log) is
 * queued for the first failure and then at most once per calib_warn_every
 * scored windows, with the number of failures in between.
 *
 * ORDER. Feed scores in the order the jobs were handed out (job.seq). A
 * score for a job older than the last fed one, or from another model
 * generation (after a model swap), is ignored and counted (scores_stale).
 *
 * THREAD RULES. A detector is used by one thread (the daemon's loop)
 * at a time: all ad_detector_* calls on the same detector must be serialised.
 * What may cross threads: the caller's window buffers, the job structs
 * (plain values; job.model is borrowed and stays valid until the model is
 * replaced by train_done/set_model AND the caller dropped its jobs, i.e. the
 * caller must not free a model while a batch using it is in flight), and
 * ad_train_job objects (self-contained; ad_train_job_run is pure).
 *
 * MODELS. The model passed to ad_detector_new is borrowed (caller keeps it
 * alive, may share it between detectors). A model given to train_done with
 * take = 1 is owned by the detector afterwards and freed by it (when
 * replaced or on ad_detector_free; see the in-flight rule above).
 */
#ifndef AD_DETECTOR_H
#define AD_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "engine.h"
#include "stream.h"
#include "threshold.h"
#include "alert.h"
#include "likelihood.h"
#include "quality.h"
#include "adapt.h"

typedef enum {
    AD_PHASE_COLLECTING = 0,
    AD_PHASE_TRAINING,
    AD_PHASE_CALIBRATING,
    AD_PHASE_DETECTING
} ad_phase;

typedef enum {
    AD_TRAIN_NONE = 0,      /* pretrained model as is */
    AD_TRAIN_FINETUNE,      /* a few epochs on collected windows */
    AD_TRAIN_BOOTSTRAP      /* no model file: train from scratch */
} ad_train_mode;

/* Windows a collection holds at most (training.windows 0 with a duration). */
#define AD_TRAIN_MAX_WINDOWS 1000000

/*
 * PER-FEATURE NORMALISATION (score.normalize "feature"). A window's score is
 * then max_f(e_f / s_f) ("feature_rms": sqrt(mean_f (e_f / s_f)^2), softer:
 * one feature's excursion counts less, several together more): e_f is feature f's error in the detector's metric
 * (ad_recon_normalize: score x share[f] x F), s_f its scale, the median of
 * e_f over the calibration windows, floored at AD_NORM_FLOOR x the median
 * of the F medians (and at 1e-12; ad_recon_scales), so that a feature reconstructed almost
 * perfectly cannot blow the score up. A fault in one feature whose normal
 * error is small is not diluted by the others' larger normal errors.
 *   Calibration works on the plain metric (guards: model_guard compares
 *   the plain score with the model's training error) and keeps every
 *   counted window's e_f; at its end the scales are learned and the
 *   threshold, the seasonal level and the probability history are fitted
 *   on those windows' normalised scores (smoothed among themselves), so
 *   the threshold is in normalised units (its floor: calibration.floor x 1,
 *   the median's normalised error, not the model's training error). A
 *   previous threshold guarding the calibration (ad_detector_restore_alert)
 *   leaves out, then, the windows whose normalised score exceeds it; the
 *   model-value fallback of calibration.model_guard is not taken (its
 *   threshold is in plain units): calibration goes on. Until calibration
 *   ends the stats' last_score is the plain score; from then on every score
 *   fed is normalised with the scales, and so are the shadow candidate's
 *   (ad_detector_feed_score3, with its shares) and the candidate's scores of
 *   kept alerts: a candidate and the live model are compared in the same
 *   units. A promotion or an accepted regime keeps the scales (the
 *   threshold moves on scores in those units); a restart of calibration
 *   (another model, recalibrate) learns them again. The scales are saved
 *   with the calibration ("scale"). The shares passed on (alerts' top
 *   features, regime profiles) are those of the normalised ratios. A score
 *   fed without shares cannot be normalised and is ignored (counted as
 *   non-finite). Needs a threshold fitted on scores (not fixed, model).
 */
typedef enum { AD_NORM_NONE = 0, AD_NORM_FEATURE = 1, AD_NORM_FEATURE_RMS = 2 } ad_normalize;
#define AD_NORM_FLOOR AD_RECON_NORM_FLOOR     /* engine.h ad_recon_scales */

/* Plain settings shared by all streams of a detector. */
typedef struct ad_detector_cfg {
    ad_stream_cfg stream;       /* row assembly */
    int hop;                    /* rows between windows, >= 1; default 1 */
    ad_metric metric;           /* default AD_METRIC_MAE */
    double smooth_alpha;        /* EWMA weight in (0,1]; 1 = off (default) */
    ad_normalize normalize;     /* AD_NORM_NONE (default), AD_NORM_FEATURE or
                                 * AD_NORM_FEATURE_RMS (PER-FEATURE
                                 * NORMALISATION) */
    int calib_windows;          /* 0 = no count limit; default 200 */
    int64_t calib_duration_ms;  /* 0 = no time limit; default 0 */
    ad_thr_cfg thr;             /* method and parameters, adapt */
    ad_alert_cfg alert;         /* k, n, m, clear_ratio, cooldown */
    ad_train_mode training;     /* default none */
    int own_model;              /* the model given was trained by this
                                 * stream itself (a bootstrap's, restored
                                 * with training none so as not to train
                                 * again): calibration waits as a
                                 * bootstrap's (CALIBRATION AGAINST THE
                                 * MODEL); default 0 */
    int train_windows;          /* finetune/bootstrap: windows to collect
                                 * (0 = no count limit: needs the duration);
                                 * default 500 */
    int64_t train_duration_ms;  /* ... or until the rows collected span this
                                 * much data time (0 = no time limit, the
                                 * default); at most AD_TRAIN_MAX_WINDOWS */
    int train_epochs;           /* default 5 (finetune), bootstrap uses it too */
    int boot_units;             /* bootstrap architecture: LSTM(u) ->
                                 * RepeatVector(T) -> LSTM(u, seq) ->
                                 * TimeDistributed(Dense(F)); default 32 */
    uint64_t train_seed;        /* default 1 */
    ad_lik_cfg lik;             /* anomaly probability (likelihood.h) */
    double extreme;             /* scaled |value| limit of a trusted row;
                                 * 0 = none; default 50 */
    int calib_warn_every;       /* calibration failure reports at most once
                                 * per this many windows, >= 1; default 100 */
    double calib_model_guard;   /* calibration leaves out windows above this
                                 * x the model's training error (CALIBRATION
                                 * AGAINST THE MODEL); 0 = off; default 3 */
    int64_t season_ms;          /* seasonal level (season.h): its period,
                                 * 0 = off (default); off for a stream
                                 * whose period holds fewer than 4 windows
                                 * (warning, when its window period is
                                 * known) */
    int season_periods;         /* ... reached in this many (R) of the last
                                 * 2R - 1 periods, 1..30; default 3 */
    double season_margin;       /* ... times this, >= 1; default 1.5: a
                                 * window under it raises no alert (alert.on
                                 * score only) */
    int season_clock;           /* AD_SEASON_UTC (default): phase = ts mod
                                 * period; AD_SEASON_LOCAL: of the local
                                 * time (TZ), which daylight saving moves */
    int dq_enabled;             /* data-quality monitor (quality.enabled);
                                 * default 1 */
    ad_dq_cfg dq;               /* its settings (quality.h) */
    /* Physical ranges by feature name (quality.ranges): n entries, NaN = no
     * limit on that side. Borrowed: read by ad_detector_new only, NULL in
     * its copy (a name that is not a feature of the stream: AD_EINVAL,
     * "quality.ranges.NAME: not a feature ..."). */
    int dq_n_ranges;
    const char *const *dq_range_names;
    const double *dq_range_lo, *dq_range_hi;
    const char *name;           /* detector name for log lines ("detector
                                 * NAME: stream KEY: ..."), or NULL ("stream
                                 * KEY: ..."). Borrowed: copied by
                                 * ad_detector_new, NULL in its copy */
    ad_adapt_cfg adapt;         /* continual learning (adapt.h); enabled
                                 * default 0; reload_shadow: set_model goes
                                 * through the shadow evaluation; counts
                                 * in data time (normal_ms, ...) resolve
                                 * with the window period, as
                                 * accept_after_ms (adapt.h DATA TIME) */
} ad_detector_cfg;

/* What the caller needs to score one window. Plain values. */
typedef struct ad_window_job {
    struct ad_detector *det;    /* the stream this window belongs to */
    uint64_t seq;               /* 1, 2, ... per detector */
    uint64_t gen;               /* model generation the window was scaled for */
    int64_t ts_ms;              /* timestamp of the window's last row */
    int64_t start_ms;           /* timestamp of its first row */
    const ad_model *model;      /* run this model (borrowed, see THREAD RULES) */
    ad_phase phase;             /* phase when handed out */
    int untrusted;              /* contains an untrusted row (see above) */
    const ad_model *shadow;     /* continual-learning candidate in shadow
                                 * (borrowed like model; NULL normally): run
                                 * it on the same window too (re-scaled with
                                 * ad_model_rescale(model, shadow, ...) when
                                 * !ad_model_same_scaler(model, shadow)) and
                                 * pass its score to ad_detector_feed_score2 */
    uint64_t ep;                /* the detector's: retired models it may read */
    int burst;                  /* the burst test: 1 + the feature in a burst
                                 * at ts_ms, 0 none (burst.h) */
    int noise;                  /* the noise test: 1 + the raised feature of
                                 * the highest ratio at ts_ms, 0 none (noise.h) */
    uint64_t noise_set;         /* its raised features (bit f: feature f, the
                                 * first 64) */
} ad_window_job;

typedef enum {
    AD_EV_PHASE = 1,            /* phase changed: prev_phase -> phase */
    AD_EV_CALIBRATED,           /* threshold fitted (threshold, n = windows) */
    AD_EV_ALERT_RAISED,         /* alert (copy) */
    AD_EV_ALERT_CLEARED,        /* alert (copy, end_ms set) */
    AD_EV_TRAIN_READY,          /* call ad_detector_take_train_job() */
    AD_EV_TRAIN_FAILED,         /* train_done got no model (message in text) */
    AD_EV_CALIB_FAILED,         /* fit failed (text; n = failures since the
                                 * last report) */
    AD_EV_ACCEPTED,             /* regime accepted: threshold (new),
                                 * prev_threshold, n = windows, text */
    AD_EV_DQ_RAISED,            /* data-quality condition raised (dq) */
    AD_EV_DQ_CLEARED,           /* ... cleared (dq) */
    AD_EV_ADAPT_READY,          /* call ad_detector_take_adapt_job() */
    AD_EV_ADAPT,                /* continual-learning decision or step:
                                 * promoted / rejected / shadow started /
                                 * training failed (adapt) */
    AD_EV_REGIME_ENDED,         /* a persistent regime ended, the process
                                 * left it (not at a promotion): threshold
                                 * (the regime's), prev_threshold (the
                                 * stream's), n = quiet windows, text */
    AD_EV_CALIB_HELD            /* a bootstrap stream's calibration held
                                 * (text "held": its windows score above
                                 * the training-error guard, it waits up to
                                 * alert.accept_after windows), or its wait
                                 * over (text "calibrated" or "fallback":
                                 * the model's threshold); n = windows above
                                 * the guard so far, calib_flagged = windows
                                 * flagged while it waited (they count
                                 * toward the fallback too), threshold (at
                                 * the end), prev_threshold = the guard */
} ad_event_type;

typedef struct ad_event {
    ad_event_type type;
    int64_t ts_ms;              /* data time of the window/row that caused it */
    ad_phase phase, prev_phase;
    double threshold;
    double prev_threshold;      /* AD_EV_ACCEPTED: before */
    double probability;         /* of the window that caused it (NAN: none) */
    double log_likelihood;      /* ln(1 - probability) */
    uint64_t n;
    ad_metric metric;           /* the metric its scores are in */
    char model_id[AD_MODEL_ID_LEN + 1]; /* the model that scored them ("":
                                 * the stream's current one) */
    union {                     /* by type: */
        ad_alert alert;         /* AD_EV_ALERT_* */
        ad_dq_event dq;         /* AD_EV_DQ_* */
        ad_adapt_event adapt;   /* AD_EV_ADAPT */
    };
    uint64_t calib_flagged;     /* AD_EV_CALIB_HELD: see there */
    char text[160];
} ad_event;

/* Events queued inside a detector before the oldest is dropped. */
#define AD_DETECTOR_EVENTS 32

typedef struct ad_detector_stats {
    ad_phase phase;
    ad_stream_stats stream;
    uint64_t rows;              /* rows consumed into the window ring */
    uint64_t windows;           /* windows formed (hop reached) */
    uint64_t windows_invalid;   /* not scored: contained an invalid row */
    uint64_t windows_skipped;   /* not scored: phase training */
    uint64_t windows_collected; /* collected for training */
    /* collecting (COLLECTION in detector.c): rows the collection skipped on a
     * data-quality flag (ad_dq_flagged) */
    uint64_t coll_flagged_total;/* ... since the detector began */
    uint64_t coll_flagged;      /* ... since it last took a window's rows
                                 * (T) in a row: the collection waits on
                                 * them (no window taken between them) */
    int64_t coll_flagged_since; /* data time of the first of those (0: none) */
    int coll_waiting;           /* collecting and coll_flagged >= T: the
                                 * collection has stood still for a
                                 * window's rows; it ends once a window's
                                 * rows are taken in a row
                                 * (ad_detector_collect_waiting) */
    char coll_flags[120];       /* the conditions open at the last skip, as
                                 * "range on temp, dropout on the stream"
                                 * ("" none; a flag on a span closed since:
                                 * "a closed data-quality span") */
    uint64_t windows_scored;    /* scores fed */
    uint64_t windows_exceeded;  /* detecting: score > threshold */
    uint64_t calib_windows;     /* scores used for calibration */
    uint64_t scores_stale;      /* ignored feeds (order/generation) */
    uint64_t models_retired;    /* replaced models kept while windows out
                                 * (handed out before) may still read them */
    uint64_t scores_nonfinite;  /* ignored feeds with NaN/Inf score */
    uint64_t events_dropped;    /* event queue overflow */
    uint64_t alerts;            /* alerts raised */
    uint64_t train_failures;
    uint64_t windows_untrusted; /* scored windows with an untrusted row */
    uint64_t calib_excluded;    /* ... of them while calibrating (not used) */
    uint64_t calib_failures;    /* failed fits (reported or not) */
    uint64_t accepted;          /* regimes accepted */
    uint64_t windows_regime;    /* windows judged against an accepted regime's threshold */
    double regime_threshold;    /* the newest accepted regime's threshold; NAN: none */
    int regimes;                /* accepted regimes remembered (at most 4) */
    int accept_after;           /* acceptance windows in effect (0: off, or
                                   alert.accept_after_ms not yet resolved) */
    int accept_gap;             /* recurrence gap windows in effect */
    double window_s;            /* the stream's window period (median of its
                                   first intervals); NAN until known */
    uint64_t windows_absurd;    /* values rejected at windowing: scaled
                                 * magnitude > AD_SCALED_MAX (window.h) */
    uint64_t window_resets;     /* window ring restarted after a gap row */
    uint64_t rows_ahead;        /* rows held as far ahead and found wrong
                                 * (A ROW AHEAD; also in stream.future) */
    uint64_t held_lost;         /* a held row of a saved state that was not
                                 * continued (ad_detector_restore_alert:
                                 * the stream starts afresh) */
    uint64_t windows_dq;        /* scored windows overlapping a data-quality
                                 * flag (never teach) */
    uint64_t dq_raised;         /* data-quality conditions raised */
    int dq_active;              /* ... open now */
    uint64_t adapt_promoted;    /* continual-learning candidates promoted */
    uint64_t adapt_rejected;    /* ... rejected */
    uint64_t adapt_failed;      /* fine-tune jobs that failed */
    uint64_t adapt_drift;       /* drift notices (adapt.h REFERENCE) */
    double adapt_ref_ratio;     /* the reference's error ratio (NAN: none) */
    int adapt_ref_feature;      /* ... the feature it grew most on (-1) */
    int adapt_drifted;          /* a drift notice is out (ratio not yet
                                 * back under 0.8 x adapt.drift_ratio) */
    int adapt_shadow;           /* a candidate is in shadow now */
    uint64_t adapt_normal;      /* windows in the normal set now */
    int adapt_normal_windows;   /* continual learning's counts in effect: */
    int adapt_min_windows;      /* from adapt.normal_ms etc. once the */
    int adapt_margin;           /* window period is known, 0 before (and */
    int adapt_shadow_windows;   /* with neither adapt nor reload.shadow) */
    int adapt_margin_clear;     /* the margin after a clear: at least the
                                 * windows sharing a sample with one */
    uint64_t adapt_excluded_early; /* clean windows offered before those counts
                                 * were known, beyond the 64 held: not kept */
    uint64_t adapt_unoffered;   /* windows scored in the detecting phase and
                                 * never offered to continual learning: more
                                 * were out at once (handed out, score not
                                 * yet fed) than AD_DETECTOR_PW_BYTES of
                                 * their copies hold, or no memory for one */
    int threshold_floored;      /* the floor set the threshold */
    uint64_t threshold_trimmed; /* scores the trimmed estimator left out of
                                 * the last estimate */
    double threshold_held;      /* a promotion's hold in force (0: none) */
    uint64_t threshold_held_windows;  /* ... adapted windows it lasts */
    double season_level;        /* seasonal level x margin at the last window
                                 * judged (NAN: none, off, or an alert open) */
    uint64_t windows_seasonal;  /* windows over the threshold (and unlike an
                                 * accepted regime) under the seasonal level:
                                 * they raised nothing */
    uint64_t windows_kept;      /* windows over the threshold, no alert open,
                                 * whose rows moved the way of a change an
                                 * alert left behind (shift.h KEPT CHANGE):
                                 * they raised nothing, taught the model */
    uint64_t windows_under_raise; /* windows over the threshold, no alert
                                 * open, under alert.raise_ratio x it (and
                                 * not held by the level or burst test):
                                 * they raised nothing and were not learned
                                 * (until a band run lasted accept_after:
                                 * BAND RUN) */
    uint64_t windows_burst;     /* windows judged while a feature was in a
                                 * burst (alert.burst_ms) */
    double last_probability;    /* NAN before the first */
    double last_log_likelihood; /* ln(1 - last_probability) */
    double last_score;          /* raw, NAN before the first */
    double last_smoothed;       /* NAN before the first */
    double threshold;           /* NAN until calibrated */
    int exceeded;               /* last window over threshold (detecting) */
    int alert_active;
    char alert_id[AD_ALERT_ID_LEN];   /* active alert id or "" */
    uint64_t model_gen;
    char model_id[AD_MODEL_ID_LEN + 1];
    char reload_waiting[AD_MODEL_ID_LEN + 1];  /* reload.shadow: a model file
                                 * waiting for the fine-tune in flight or
                                 * the window period ("": none) */
    /* CALIBRATION AGAINST THE MODEL: a stream that trained its own model
     * (bootstrap) whose calibration windows score above the guard waits
     * up to alert.accept_after windows before it takes the model's
     * threshold. calib_held: it waits now (since calib_held_ms, data
     * time); calib_out: windows above the guard so far; calib_flagged:
     * windows flagged by data quality (or with an untrusted row, or above
     * the previous threshold restored as a guard) since it began; calib_out_need: the fallback comes when the two together are
     * that many; calib_guard: the guard (NAN none) */
    int calib_held;
    int64_t calib_held_ms;
    uint64_t calib_out, calib_flagged, calib_out_need;
    double calib_guard;
    /* CALIBRATION PROGRESS: calib_taken windows fed the threshold so far
     * in this calibration (calibration.windows needed), since calib_start_ms
     * (data time; 0: no window yet); calib_dq_out windows it left out on a
     * data-quality flag or an untrusted row; calib_dq_waiting: a window's
     * rows' worth of them in a row with none taken between, since
     * calib_dq_since, with calib_dq_flags the conditions open then (as
     * coll_flags; "untrusted rows" when no flag is open and the last was
     * untrusted) */
    uint64_t calib_taken, calib_dq_out, calib_dq_run;
    uint64_t calib_queued;      /* clean windows held until a stuck run
                                 * starting in them would be recognised
                                 * (taken or left out then) */
    int64_t calib_start_ms, calib_dq_since;
    int calib_dq_waiting;
    char calib_dq_flags[120];
} ad_detector_stats;

typedef struct ad_detector ad_detector;

/* Train job: self-contained, may be run on any thread. */
typedef struct ad_train_job {
    ad_train_mode mode;
    int T, F;
    size_t n_rows;              /* collected valid rows, raw (unscaled) */
    float *rows;                /* (n_rows, F), owned */
    unsigned char *brk;         /* n_rows, owned, or NULL: 1 where a row
                                 * starts a run (rows were skipped before
                                 * it); no window spans a run's start */
    char **features;            /* F names, owned */
    ad_model *init;             /* finetune: clone of the current model
                                 * (owned); bootstrap: NULL */
    ad_metric metric;           /* error statistics metric */
    int epochs;
    int boot_units;
    uint64_t seed;
    uint64_t gen;               /* detector model generation it was made for */
} ad_train_job;

/* Defaults as documented on each field (and in stream/threshold/alert). */
void ad_detector_cfg_default(ad_detector_cfg *c);

/* Validate every field; message names it ("hop: must be >= 1"). */
int ad_detector_cfg_check(const ad_detector_cfg *c, char *err, size_t errlen);

/* FNV-1a 64 of the settings that affect calibration and scoring (metric,
 * hop, smoothing, calibration limits, threshold method and parameters,
 * training mode), so saved calibration is only reused under them. */
uint64_t ad_detector_cfg_hash(const ad_detector_cfg *c);

const char *ad_phase_name(ad_phase p);              /* "collecting", ... */
const char *ad_train_mode_name(ad_train_mode m);    /* "none", ... */
int ad_train_mode_from_name(const char *s);         /* -1 when unknown */
enum { AD_SEASON_UTC = 0, AD_SEASON_LOCAL = 1 };

const char *ad_detector_metric_name(ad_metric m);   /* "mse" / "mae" / "peak" */
int ad_detector_metric_from_name(const char *s);   /* -1 when unknown */
const char *ad_detector_normalize_name(ad_normalize n);   /* "none" / "feature" /
                                                             "feature_rms" */
int ad_detector_normalize_from_name(const char *s);       /* -1 when unknown */
const char *ad_event_type_name(ad_event_type t);

/*
 * New detector for the stream `key` (copied; used in alert ids). m is the
 * model (borrowed) or NULL for training bootstrap; then T (window), F and
 * features (F names, copied) are required; with a model they must be 0/NULL
 * or equal to the model's. Method `model` requires m with a "training"
 * metadata error distribution whose metric matches cfg->metric.
 * Returns 0 and *out or a negative code with a message in err.
 */
int ad_detector_new(ad_detector **out, const ad_detector_cfg *cfg,
                    const char *key, const ad_model *m, int T, int F,
                    const char *const *features, char *err, size_t errlen);
void ad_detector_free(ad_detector *d);      /* NULL-safe */

/* Input: as ad_stream_push_* / ad_stream_advance (same return values).
 *
 * A ROW AHEAD (ROWS mode, with an arrival clock). A row stamped more than
 * L = max(AD_AHEAD_INTERVALS usual row intervals, AD_AHEAD_MIN_MS,
 * max_lateness_ms) after the stream's newest row, while it arrived less
 * than its jump - L after the last row accepted in this run, says either
 * that the device's clock jumped or that this one row's time is wrong.
 * Taken, it would leave every following row of a clock that only glitched
 * behind it, dropped as late. So it is held (push_row returns 0) until the
 * next row decides: one at or after it, or after the newest row, at
 * most max_lateness_ms before it and nearer to it than to the newest row
 * (rows swapped in transit right after a jump, which the stream
 * reorders), confirms the jump (the held row, then it, go in); any other
 * one after the newest row (the old cadence: also right after a glitch
 * just past max_lateness_ms) says the held row was wrong: it is dropped
 * and counted as refused for a future time (stats stream.future and
 * rows_ahead; a `rejected` value of the whole stream for data quality);
 * a row late anyway decides nothing. With no next row, advance() takes
 * it once the arrival clock is five usual intervals (at least 5 s) past
 * its arrival. A real gap after a silence arrives after the silence and is never held; nor is the first
 * row after a restore, or any row without an arrival clock (replay). A
 * row held when the stream is saved goes with the state ("held", see
 * ad_detector_save): a restore (or ad_detector_restore_window) holds it
 * again and the next row decides as above (advance() takes it once the
 * arrival clock is five intervals past its saved arrival, so a restart
 * that takes longer takes it at the first tick). A state that cannot be
 * continued (ad_detector_restore_alert: the stream starts afresh) loses
 * it with the rest of its last rows; counted in stats held_lost. */
#define AD_AHEAD_INTERVALS 10
#define AD_AHEAD_MIN_MS 10000
int ad_detector_push_sample(ad_detector *d, int64_t ts_ms, int feature, double v);
int ad_detector_push_text(ad_detector *d, int64_t ts_ms, int feature, const char *text);
int ad_detector_push_row(ad_detector *d, int64_t ts_ms, const double *values,
                         const unsigned char *present);
/*
 * A value of `feature` the caller refused before pushing it (a message's
 * field that is not a number, nonnumeric = 1, or not finite, 0), in any
 * mode: counted by the stream (ad_stream_refuse), the next row taken is
 * untrusted (UNTRUSTED WINDOWS) and, with data quality on, it counts in
 * the feature's rejected bucket (quality.h: an event names the feature).
 * It is no sample: the feature is missing from the rows assembled without
 * it, and its dropout check goes on. ts_ms is the message's time. Push the
 * message's good values first, then its refused ones. Returns 1.
 */
int ad_detector_push_refused(ad_detector *d, int64_t ts_ms, int feature, int nonnumeric);

/*
 * A message of this stream the caller refused whole (malformed, or naming no
 * feature the stream knows): counted by the stream (ad_stream_refuse_message)
 * and, with data quality on, in the whole stream's rejected bucket (an event
 * with no feature). Tell the detector its arrival first: like a message
 * whose every value is refused, it says the device is alive (no
 * whole-stream dropout while such messages come), yet it does not hold
 * back the stream's data clock: rows waiting behind the watermark come
 * out as if it had not come (stream.h EVENT TIME). ts_ms is the arrival
 * time. Returns 1.
 */
int ad_detector_push_malformed(ad_detector *d, int64_t ts_ms);

/*
 * Arrival (wall) clock of what is pushed next: the stream's future check
 * and event-time estimate (stream.h EVENT TIME). Call it once per message
 * before its pushes. Without it (replay, tests) advance() takes its
 * argument as data time.
 */
void ad_detector_arrival(ad_detector *d, int64_t wall_ms);

/*
 * Timer tick (every assembly mode; the daemon calls it about once a second
 * per stream, replay after each input line): moves event time, flushes rows
 * held for lateness/alignment, and runs the data-quality dropout and
 * rejected-burst checks at the stream's data-time estimate (last accepted
 * timestamp + wall time since its arrival; without an arrival clock, now_ms).
 */
void ad_detector_advance(ad_detector *d, int64_t now_ms);

/* Rows queued by the pushes and not yet consumed by next_window (some may
 * still wait behind them: stream.h THE ROW QUEUE). */
int ad_detector_rows_queued(const ad_detector *d);

/* With continual learning, a copy of each window handed out in the
 * detecting phase is kept until its score is fed (the window is offered
 * then): as many as are out, up to this many bytes of copies a stream (at
 * least 1024 windows), freed once they are back; past it the oldest copy
 * goes and its window is not offered (adapt_unoffered). */
#define AD_DETECTOR_PW_BYTES ((size_t)64 << 20)
/* ad_detector_stats.adapt_unoffered, without copying the stats. */
uint64_t ad_detector_adapt_unoffered(const ad_detector *d);
/* ad_detector_stats.coll_waiting, without copying the stats: the stream
 * collects for training and has skipped a window's rows in a row on
 * data-quality flags (said in a warning; the caller may publish it). */
int ad_detector_collect_waiting(const ad_detector *d);
/* ad_detector_stats.calib_held, without copying the stats (the daemon asks
 * at every message of a stream not published for a minute). */
int ad_detector_calib_held(const ad_detector *d);
/* ad_detector_stats.calib_dq_waiting, without copying the stats: the
 * stream calibrates and its last windows were all left out on data-quality
 * flags or untrusted rows (the caller may publish it). */
int ad_detector_calib_waiting(const ad_detector *d);
/* Windows a kept change held so far (stats windows_kept), without copying
 * the stats. */
uint64_t ad_detector_windows_kept(const ad_detector *d);

/*
 * Consume queued rows until a window is due for scoring: copy it scaled into
 * buf (T*F floats, caller-owned), fill *job, return 1. Return 0 when no
 * queued row is left (windows collected for training, skipped or invalid are
 * consumed silently and counted).
 */
int ad_detector_next_window(ad_detector *d, float *buf, ad_window_job *job);

/*
 * Feed the score of a job handed out by next_window. share: F floats (the
 * per-feature share from ad_recon_score; may be NULL). Returns 0, or 1 when
 * the score was ignored (stale job, non-finite score; counted).
 */
int ad_detector_feed_score(ad_detector *d, const ad_window_job *job,
                           double score, const float *share);

/* The same with the shadow candidate's score on the same window (job.shadow;
 * NAN when it was not run). */
int ad_detector_feed_score2(ad_detector *d, const ad_window_job *job,
                            double score, const float *share, double shadow_score);
/* The same with the shadow candidate's shares too (needed to normalise its
 * score with score.normalize "feature"; may be NULL otherwise). */
int ad_detector_feed_score3(ad_detector *d, const ad_window_job *job,
                            double score, const float *share, double shadow_score,
                            const float *shadow_share);
/* The per-feature scales (PER-FEATURE NORMALISATION) into out (F doubles):
 * 1 when learned, else 0 (out untouched). */
int ad_detector_scales(const ad_detector *d, double *out);
/* A window handed out that will never be fed (a caller that skips it):
 * its models may be freed once no other window holds them. Every window
 * handed out is fed or dropped exactly once. */
void ad_detector_job_dropped(ad_detector *d, const ad_window_job *job);

/* Pop the oldest queued event. Returns 1 when *ev was filled, 0 if none. */
int ad_detector_poll_event(ad_detector *d, ad_event *ev);

/* Force the end of calibration now (replay --calibrate-rows). Returns 0 when
 * the threshold was fitted, AD_EINVAL when not calibrating, or the fit's
 * error (calibration then continues). */
int ad_detector_finish_calibration(ad_detector *d, char *err, size_t errlen);

/* Stop / resume threshold adaptation. */
void ad_detector_freeze(ad_detector *d, int frozen);

/*
 * Phase TRAINING: a new job (caller frees with ad_train_job_free) or NULL
 * when there is none (other phase, job already taken, OOM).
 */
ad_train_job *ad_detector_take_train_job(ad_detector *d);
void ad_train_job_free(ad_train_job *j);    /* NULL-safe */

/*
 * Run a training job (any thread, pure; cancel may be NULL): bootstrap fits
 * a standard scaler on the rows, builds the bootstrap architecture, Keras
 * init from the seed; finetune starts from job->init. Windows: stride 1.
 * Trains job->epochs epochs (ad_train_fit, MSE loss, early stopping), then
 * sets the model's "training" metadata (error distribution under
 * job->metric). Returns 0 and *out (caller owns; pass to train_done) or a
 * negative code with a message.
 */
int ad_train_job_run(const ad_train_job *job, ad_model **out,
                     const volatile int *cancel, char *err, size_t errlen);

/*
 * Training finished. m: the new model (window and features must match), or
 * NULL when training failed (finetune: keeps the pretrained model;
 * bootstrap: collects again). take = 1 transfers ownership of m. The phase
 * becomes calibrating; the model generation increases, so scores of jobs
 * handed out before are ignored. Returns 0, AD_EINVAL when not training or
 * m does not match (ownership then NOT taken).
 */
int ad_detector_train_done(ad_detector *d, ad_model *m, int take,
                           const char *why);

/* Replace the model outside training (e.g. daemon reload with a new model
 * file): borrowed; window and features must match. Calibration restarts
 * (phase calibrating) unless keep_threshold. Returns 0.
 * With adapt.reload_shadow and continual learning enabled, in phase
 * detecting (and once the learner's counts are known, adapt.h DATA TIME;
 * before, the model is swapped with a warning), the model is NOT swapped: a clone of it enters the shadow
 * evaluation (AD_EV_ADAPT) and the function returns AD_DETECTOR_SHADOW; the
 * caller keeps its current model alive and may free m. The swap happens on
 * promotion (AD_EV_ADAPT, the detector then owns the model). */
#define AD_DETECTOR_SHADOW 1
/* The model continual learning measures its drift from (adapt.h
 * REFERENCE): by default the model the stream was created with, a model
 * it trained (bootstrap) or one set by ad_detector_set_model or promoted
 * from reload.shadow. A stream restored with its adapted model sets the
 * operator's model file here before ad_detector_restore, so that the
 * saved baseline still applies. 0 without continual learning. */
int ad_detector_set_reference(ad_detector *d, const ad_model *m);
/* A fine-tune's candidate that was in shadow when the state restored by
 * ad_detector_restore was saved (adapt.h ad_adapt_shadow_resume): m, its
 * model read back by the caller (taken on success; the caller keeps it on
 * failure; NULL: could not be read, the saved span is dropped), goes on in
 * shadow where it stopped. 0, or an AD_E* code with a message (wrong model,
 * shape, damaged span). ad_detector_shadow_saved: 1 when a restored state
 * waits for such a candidate (id: its model id, may be NULL). */
int ad_detector_shadow_resume(ad_detector *d, ad_model *m, char *err, size_t errlen);
int ad_detector_shadow_saved(const ad_detector *d, char *id, size_t len);
int ad_detector_set_model(ad_detector *d, const ad_model *m, int keep_threshold,
                          char *err, size_t errlen);

/*
 * Continual learning (adapt.h; see CONTINUAL LEARNING). After
 * AD_EV_ADAPT_READY: a self-contained job (caller frees it with
 * ad_adapt_job_free after adapt_done) or NULL (not due, taken, disabled).
 * Run it with ad_adapt_job_run() on any thread, then on the detector's
 * thread ad_detector_adapt_done(d, candidate or NULL, why): takes ownership
 * of m (freed on error too). Returns 0 or AD_EINVAL (no job was out).
 */
ad_adapt_job *ad_detector_take_adapt_job(ad_detector *d);
int ad_detector_adapt_done(ad_detector *d, ad_model *m, const char *why);
/* The same with the fine-tune's report (ad_adapt_job_run's rep; may be
 * NULL): its epochs, loss and seconds go into the decision's figures
 * (train_loss, train_seconds, epochs_run of AD_EV_ADAPT). */
int ad_detector_adapt_done2(ad_detector *d, ad_model *m, const ad_train_report *rep,
                            const char *why);

/* The stream's monitors (NULL when disabled); borrowed, for stats. */
const ad_dq *ad_detector_dq(const ad_detector *d);
const ad_adapt *ad_detector_adapt(const ad_detector *d);

/* KEPT CHANGE (shift.h) kept now: since (data time it was kept), until
 * (when it ends unless a window kept renews it: two periods after its
 * clear or a period after the last window kept, seven after the clear at
 * most; RENEWED), norm (|u| in spreads)
 * and u (F: each feature's move in spreads; 0: flat, left out), owned by
 * the detector and valid until its next call. */
typedef struct ad_kept_change {
    int64_t since_ms;
    int64_t until_ms;
    double norm;
    const double *u;
    int F;
} ad_kept_change;

/* 1 and k (may be NULL) filled while a change is kept, else 0 (k zeroed). */
int ad_detector_kept_change(const ad_detector *d, ad_kept_change *k);

/* Counts a change kept, renewed by an hour or more, or ended (restored
 * too): when it moved, the state a user reads is out of date. */
uint64_t ad_detector_kept_seq(const ad_detector *d);

/* Current model (NULL during bootstrap before training) and metric. */
const ad_model *ad_detector_model(const ad_detector *d);
ad_metric ad_detector_metric(const ad_detector *d);
ad_phase ad_detector_phase(const ad_detector *d);
const char *ad_detector_key(const ad_detector *d);
/* Data time (unix ms) of the last row the detector consumed; 0 before any. */
int64_t ad_detector_last_ts(const ad_detector *d);
/* Samples (or rows) row assembly dropped for their timestamps so far:
 * duplicates and late ones (stats stream.dup + stream.ooo), cheaply. */
uint64_t ad_detector_dropped(const ad_detector *d);
/* Row assembly's counters alone (stats.stream), cheaply. */
void ad_detector_stream_stats(const ad_detector *d, ad_stream_stats *st);
/* Phases (of AD_SEASON_BINS) of the period with a seasonal level now
 * (calibration.season_ms; 0 when off). O(bins x periods^2): for a state
 * report, not per window. */
int ad_detector_season_phases(const ad_detector *d);
/* 1 while the stream has a seasonal level (calibration.season_ms set, and
 * not turned off for a period of fewer than 4 windows). */
int ad_detector_season_on(const ad_detector *d);
int ad_detector_T(const ad_detector *d);
int ad_detector_F(const ad_detector *d);
const char *const *ad_detector_features(const ad_detector *d);
void ad_detector_get_stats(const ad_detector *d, ad_detector_stats *st);
/* The few figures a periodic summary over many streams needs, without the
 * string formatting of ad_detector_get_stats(): phase, values (samples)
 * row assembly refused (ad_stream_values_refused: duplicate, late, future,
 * non-finite, non-numeric, unknown feature; a refused row counts its
 * values), rows lost to a full row queue (ad_stream_stats.overflow, in
 * rows) and whether an alert is active. */
typedef struct ad_detector_summary {
    ad_phase phase;
    uint64_t dropped;
    uint64_t overflow;
    int alert_active;
} ad_detector_summary;
void ad_detector_summarize(const ad_detector *d, ad_detector_summary *b);

/* Caller's pointer (e.g. the daemon's stream record). */
void ad_detector_set_user(ad_detector *d, void *user);
void *ad_detector_user(const ad_detector *d);

/*
 * Calibration state as JSON text (malloc'd; NULL on OOM, or when neither
 * calibrated nor carrying an alert part worth keeping):
 * {"version":1,"stream":..,"model_id":..,"settings_hash":..,"metric":..,
 *  "method":..,"alerts":seq,"alert":{ad_alerter_save + "last_ts":ms
 *  [,"calib_guard":thr][,"accept":{..}]}, and once calibrated "threshold":..,
 *  "calib_windows":..,"smoothed":..,"state":{threshold state},
 *  "acceptance":{usual error profile, accepted regimes; "usual_n" 0:
 *  scores fed without shares, regimes accepted by level; a regime's
 *  "level" (missing: its threshold / calibration.margin) and, while a run
 *  its way is judged against its level (dormant, detector.c reentry),
 *  "reentry":{"run":n,"handover":true[,"since_ms":ts,"threshold":x,
 *  "peak":x,"peak_ms":ts,"scores":[s..]]} (run -1: judged, not the regime
 *  back; in a hand-over's or a checkpoint's save only, restored only with
 *  "handover" true: the withheld windows go on; a run over the wait is
 *  damaged, scores fewer than run are filled with peak; missing: none)},
 *  "window_ms":..,
 *  "level":{..} (the level test, alert.level_ms, below),"burst":{..} (the
 *  burst test, alert.burst_ms: burst.h SAVED STATE; the neighbourhood's
 *  rows in a hand-over only),"noise":{..} (the noise test, alert.noise_ms:
 *  noise.h SAVED STATE); plus "dq":{ad_dq_save state},
 *  "adapt":{ad_adapt_save state} (only when enabled), and, while a row is
 *  held as far ahead (A ROW AHEAD), "held":{"ts":ms,"arrival":wall ms,
 *  "values":[F, null for NaN][,"present":[F 0|1], absent: every feature]}
 *  (in every save; a state without it holds nothing: older files load).
 *
 * "level" is the level test's ring of the last L = level_ms / window_ms
 * trusted windows: {"level_ms":..,"window_ms":..,"windows":L,"at_ms":ts of
 * the last window judged,"n":windows held,"per":p,"q":quantum,
 * "scores":[..],"bases":[..],"off":b,"like":n[,"held":true][,"accepted":x]
 * [,"accept_wait":n]}:
 * scores (and bases, the
 * seasonal levels, when any is not 0) oldest first as means of blocks of
 * p windows (p = ceil(L / 360); the oldest block holds the rest) in whole
 * quanta (a power of ten, at most 1e-5 of the decade of the threshold or
 * of the largest value, whichever is smaller); off:
 * the test waits for the mean to fall under its hysteresis (half way from
 * the fence to the median); accepted: the mean an acceptance took as the
 * test's normal (its fence lifted by its rise; missing: none); accept_wait:
 * windows until the test takes the accepted level (a span after the
 * acceptance; missing: none); like: windows since
 * one judged against an accepted regime; held: the last window judged was
 * held elevated (an alert it held stays held while the ring refills after
 * the restore; missing: not held). Restored only under the same
 * level_ms and window period (else dropped with a log line, as a damaged
 * one with a warning naming the field); at the first window after the
 * restore the windows the data time since at_ms holds (over the window
 * period) push as many of the oldest out (all of them after a gap of L or
 * more), and the test judges once the ring is full again.
 * New fields are only ever added (version stays 1); a reader takes what it
 * knows and a missing field means what it meant before the field existed.
 *
 * "accept" is how far REGIME ACCEPTANCE has got, present while an alert is
 * open or a chain waits for its next recurrence (A = accept_after in
 * effect; a chain and a parked chain hold at most A scores each):
 *   {"after":A,"scores":[s..],"earlier":n,"current":n,"quiet":n,
 *    "alerts":n,"since_ms":ts,"span_ms":ms,"cur_span_ms":ms,"starts":[ts..],
 *    "profile":[F],"cur_profile":[F],"handover":b
 *    [,"parked":{"scores":[s..],"quiet":n,"alerts":n,"since_ms":ts,
 *                "span_ms":ms,"starts":[ts..],"profile":[F]}]
 *    [,"onset":{"run":n[,"since_ms":ts,"max":x,"max_ms":ts,"threshold":x,
 *               "scores":[s..]]}]}
 * scores: the chain's (smoothed) scores, oldest first, the first `earlier`
 * of them from its earlier alerts, the others from the open one (of which
 * `current` were counted); quiet: windows without an alert since the
 * chain's last; alerts: alerts in the chain; since_ms: the start of its
 * first; span_ms: its longest ended alert; cur_span_ms: the open one's
 * length so far; starts: the starts of its occurrences (at most 16);
 * profile / cur_profile: the excess error profile summed over the earlier
 * alerts / the open one; handover: written by ad_detector_save_handover
 * (nothing consumed after it); parked: the second chain kept with
 * alert.accept_period_ms; onset: a recurrence's onset being judged
 * (alert.accept_onset): run windows withheld so far in a row, the first at
 * since_ms, their highest score max at max_ms, the threshold the first was
 * over, their scores (judged at their level, not their highest; an older
 * file's run without them: at max) (run -1: judged not a recurrence,
 * until a window under the threshold), so the wait goes on across the
 * restore and the occurrence is judged at the window, with the start, it
 * would have been without it (taken from a hand-over only: after a save in
 * the middle of the stream the windows since are lost, the wait starts
 * again; missing: no run under way; an older file's wait starts again at
 * the next window over the threshold). About 20
 * bytes of JSON per score: 3 KB at A = 150, 9 KB at 480 (twice that with
 * a parked chain).
 */
char *ad_detector_save(const ad_detector *d);

/*
 * The same for a hand-over (the stream stops here and continues elsewhere
 * or after a restart: stop, eviction, a Kafka partition moving), plus
 * "window": the newest T - 1 rows of the window ring as pushed, its hop
 * counter and untrusted-row count. ad_detector_restore refills the ring from
 * it (when its last row is the saved last_ts); the first row pushed after
 * the restore continues those rows when it follows them (later, within 3 x
 * their median spacing and rows.max_gap_ms; a single row saved, within
 * rows.max_gap_ms alone, as the stream judges its second row), else the
 * ring starts afresh. A row or sample at or before the saved last row (a
 * copy delivered again: MQTT QoS 1, a Kafka re-read) is refused and
 * counted (dup / ooo) as the stream that did not move refuses it
 * (ad_stream_resume; after a plain save too), never a new row. So a
 * stream that moves scores the same windows as one that did not. Not for saves in the middle
 * of a stream: rows consumed after such a save would be missing from the
 * ring.
 * A stream still calibrating (phase calibrating, rows consumed) is saved
 * too, without "threshold"/"state" but with "calibrating": how far its
 * calibration has got, {"thr":{threshold state, fitted false: the scores
 * so far, at most calibration.max_samples, about 20 bytes each},
 * "windows":n,"excluded":n,"model_out":n[,"start_ms":ts]
 * [,"held":[[from,to,score]..]][,"wp_prev":ts,"wp_dt":[ms..]]} (held: the
 * clean windows waiting for the data-quality check; wp_*: the window
 * period's sample until it is known), with "smoothed", "season",
 * "window_ms" and "window" as for a calibrated stream. A reader without
 * "calibrating" takes such a state as not calibrated (the alert part
 * still counts).
 * Only this save holds the learner's normal set ("adapt"."normal", while
 * an acceptance's fine-tune is due, out or in shadow: megabytes of JSON)
 * and the span of a fine-tune's candidate in shadow ("adapt"."shadow",
 * ad_adapt_save_parts); ad_detector_save_parts chooses.
 */
char *ad_detector_save_handover(const ad_detector *d);

/*
 * ad_detector_save with the parts chosen (flags): AD_DET_SAVE_WINDOW the
 * window rows and the calibration so far (a hand-over's or a
 * checkpoint's), AD_DET_SAVE_NORMAL the learner's normal set,
 * AD_DET_SAVE_SPAN the span of a fine-tune's candidate in shadow (for a
 * save the candidate's model file is beside: a restore resumes it from
 * that file, ad_adapt_shadow_resume). ad_detector_save is none of them,
 * ad_detector_save_checkpoint the window, ad_detector_save_handover all.
 */
enum { AD_DET_SAVE_WINDOW = 1, AD_DET_SAVE_NORMAL = 2, AD_DET_SAVE_SPAN = 4 };
char *ad_detector_save_parts(const ad_detector *d, int parts);

/*
 * ad_detector_save_handover without the learner's normal set: for a
 * checkpoint the stream goes on from (kafka.commit_states, as often as
 * every commit): the rows and the calibration so far go with it, the
 * normal set of a due fine-tune is refilled after a crash.
 */
char *ad_detector_save_checkpoint(const ad_detector *d);

/*
 * Restore a saved state: the model id and settings hash must equal the
 * current ones (AD_EINVAL with a message naming which differs: the caller
 * then calls ad_detector_restore_alert and recalibrates), malformed text
 * AD_EFORMAT. On success the phase becomes detecting (AD_EV_PHASE queued)
 * and the saved alert part continues: an alert open when saved is active
 * again with the same id and clears by the usual rule; the seq continues;
 * the stream's row assembly continues from the saved last row (alert
 * "last_ts"): a row or sample at or before it is refused and counted
 * (dup / ooo; ad_stream_resume), as by the stream that was not restored;
 * regime acceptance continues from the saved "accept" (a change is
 * accepted at the window it would have been without the restore; see
 * REGIME ACCEPTANCE for settings changed since, and for a save in the
 * middle of the stream). Without it (an older file), or damaged (a
 * warning), acceptance counts again from the restore, an open alert's
 * change from its raise. The level test's mean ("level") and the burst
 * test's outliers and rows ("burst") continue too, as do the noise test's
 * usual levels and runs ("noise") (see ad_detector_save
 * for what drops them); without them, or dropped, those tests start over.
 * The "dq" and "adapt" sub-objects (optional: older state files have none)
 * are restored too, even when the calibration is refused (they do not
 * depend on the model); a malformed sub-object is logged and ignored.
 * A state saved while calibrating ("calibrating", ad_detector_save_handover)
 * continues that calibration instead, in phase calibrating (AD_EINVAL when
 * the detector is not calibrating, AD_EFORMAT when the part is malformed:
 * nothing of it is taken then): calibration ends at the window, and with
 * the threshold, it would have without the save.
 */
int ad_detector_restore(ad_detector *d, const char *json, char *err, size_t errlen);

/*
 * After ad_detector_restore failed (or was not tried): take what can be
 * taken from the saved state. The alert seq continues; an alert open when
 * saved is closed with `reason` (AD_CLOSE_MODEL_CHANGED instead when the
 * saved model id differs), end time the last row's data time then, and
 * queued as AD_EV_ALERT_CLEARED; also when it was saved with another
 * feature count (a model of other features: the event then has no top
 * features, whose saved indices name the old model's). CALIBRATION GUARD: when the saved model
 * id and metric equal the current ones and the detector calibrates, the
 * saved threshold guards the new calibration: scores above it are left out
 * (counted in calib_excluded) until the new threshold is fitted, so a
 * stream rebuilt during a fault never calibrates on the fault. Returns 1
 * when a cleared event was queued, else 0 (also for unreadable text).
 */
int ad_detector_restore_alert(ad_detector *d, const char *json, ad_close_reason reason);

/*
 * After ad_detector_restore failed (a reload rebuilt the stream under
 * another model or calibration settings): refill the window ring from the
 * "window" rows of a hand-over state (ad_detector_save_handover) of the
 * same stream, so that it scores again with its next row instead of T - 1
 * rows later. Only the caller can tell that those rows are what this
 * detector would have assembled (the same features in the same order, the
 * same T and row assembly settings; rows are kept raw, so another model or
 * scaler does not matter): this checks their count and F only. Taken as
 * ad_detector_restore takes them (the next row must follow them), for a
 * detector in phase calibrating or detecting that has consumed no row; the
 * stream's last data time becomes the rows' last (and rows at or before
 * it are refused, as after ad_detector_restore). Returns 1 when rows were
 * restored, else 0 (none saved, another phase, rows consumed, or rejected:
 * a warning names why).
 */
int ad_detector_restore_window(ad_detector *d, const char *json);

/* Close the active alert now with `reason` (end time: the last row's data
 * time) and queue AD_EV_ALERT_CLEARED. Returns 1, or 0 when none is open. */
int ad_detector_close_alert(ad_detector *d, ad_close_reason reason);

/* An event as JSON (new cJSON object, NULL on OOM), the format the daemon
 * publishes and `replay --events` writes (one per line):
 *   {"event":"alert_raised","stream":..,"ts":ms, "alert":{ad_alert_to_json}}
 *   {"event":"phase","stream":..,"ts":ms,"phase":..,"prev":..}
 *   {"event":"calibrated","stream":..,"ts":ms,"threshold":..,"windows":..,
 *    "method":..}
 *   {"event":"train_ready"|"train_failed","stream":..,"ts":ms,"text":..}
 *   {"event":"calibration_failed","stream":..,"ts":ms,"text":..,"failures":n}
 *   {"event":"regime_accepted","stream":..,"ts":ms,"threshold":new,
 *    "prev_threshold":old,"windows":A,"text":..}
 *   {"event":"regime_ended","stream":..,"ts":ms,"threshold":the regime's,
 *    "prev_threshold":the stream's,"windows":quiet windows,"text":..}
 *   {"event":"dq_raised"|"dq_cleared","stream":..,"ts":ms,
 *    ad_dq_event_to_json fields ("kind":"data_quality","id","check",
 *    "feature",...)}
 *   {"event":"adapt","stream":..,"ts":ms,"decision":"promoted"|"rejected"|
 *    "shadow"|"train_failed", ad_adapt_event_to_json fields ("attempt",
 *    "origin","model_id","reason","figures":{..})}
 *   {"event":"adapt_ready","stream":..,"ts":ms,"text":..}
 * Alert events also carry the window's "probability" and "log_likelihood"
 * (null when unknown). */
cJSON *ad_event_to_json(const ad_detector *d, const ad_event *ev);

/*
 * OPERATOR FEEDBACK.
 * ad_detector_false_alarm: the alert alert_id was a false alarm. Its windows
 * count as normal: the threshold is raised to just above its peak
 * (smoothed) score, 1e-9 relative, so the same windows would not exceed it
 * (ad_threshold_raise: a minimum kept by adaptation, saved with the state),
 * and when it is the open alert (alert_id NULL or "" = the open one) it is
 * closed now with reason false_alarm (AD_EV_ALERT_CLEARED queued); with
 * continual learning it is not kept as a true alert (an alert that already
 * cleared is withdrawn: ad_adapt_alert_false). For an
 * alert that has already cleared the caller passes its peak score (the
 * detector keeps only the open alert). Detecting phase only. Returns 0 and
 * *out, or AD_EINVAL with a message (no open alert, unknown id, not
 * detecting); nothing changes then. With alert.on = probability the
 * threshold still moves, but alerts follow the probability.
 * ad_detector_recalibrate: start calibration over (threshold, operator
 * minimum, alert and probability history forgotten; the phase becomes
 * calibrating); an open alert is closed first with reason recalibrate
 * (AD_EV_ALERT_CLEARED queued). Calibrating or detecting phase only, else
 * AD_EINVAL.
 */
typedef struct ad_detector_feedback {
    char alert_id[AD_ALERT_ID_LEN];
    double prev_threshold, threshold;
    int raised;                 /* the threshold moved */
    int closed;                 /* the open alert was closed */
} ad_detector_feedback;
int ad_detector_false_alarm(ad_detector *d, const char *alert_id, double peak,
                            ad_detector_feedback *out, char *err, size_t errlen);
int ad_detector_recalibrate(ad_detector *d, char *err, size_t errlen);
/* ad_detector_accept_drift: the operator accepts the change continual
 * learning followed (adapt.h REFERENCE): the live model becomes the
 * reference, its baseline is taken at the next fine-tune, and a drift
 * notice out is withdrawn. *prev_ratio: the ratio before (NAN: none).
 * AD_EINVAL with a message without continual learning or a live model. */
int ad_detector_accept_drift(ad_detector *d, double *prev_ratio, char *err, size_t errlen);

#endif /* AD_DETECTOR_H */
