/*
 * detector_int.h - what the detector's translation units share: the
 * ad_detector record and the internal helpers one part calls in another.
 *   detector.c        names, defaults, creation, input, scores, phases,
 *                     accessors
 *   detector_dq.c     data quality (the monitor's events and flags)
 *   detector_adapt.c  continual learning (jobs, promotion)
 *   detector_train.c  training jobs, model swaps, recalibration
 *   detector_state.c  save / restore, alert closing, events as JSON,
 *                     operator feedback
 * Not part of the public API (detector.h).
 */
#ifndef AD_DETECTOR_INT_H
#define AD_DETECTOR_INT_H

#include "detector.h"
#include "train.h"
#include "window.h"
#include "season.h"

/* Calibration windows held at most for the data-quality check (calib_delay). */
#define CALQ_MAX 1024
/* Accepted regimes a detector remembers (ACCEPTANCE). */
#define AD_REGIMES 4
#define AD_WP_N 31           /* window intervals the period is the median of */
#define AD_REGIME_SH 16      /* candidate scores kept per regime in a shadow span */
#define AD_ACC_OCC_TS 16   /* occurrence starts kept per chain */

struct ad_detector {
    ad_detector_cfg cfg;
    uint64_t hash;
    char *key;
    char *who;                   /* log prefix: "detector NAME: stream KEY"
                                  * (cfg.name set) or "stream KEY" */
    int T, F;
    char **features;             /* F owned */
    const ad_model *model;       /* current (borrowed or owned) */
    ad_model *owned;             /* == model when owned */
    uint64_t gen;
    ad_stream *stream;
    ad_window *win;
    ad_threshold *thr;
    ad_thr_cfg tc;               /* its settings (a normalised fit builds
                                  * another, det_norm_fit) */
    ad_alerter *alert;
    ad_likelihood *lik;
    /* the probability (detector_adapt.c PROBABILITY): the candidate's
     * history over its shadow span, its score / the live score on the
     * span's normal windows (every lik_rat_step-th, at most AD_LIK_RATIOS),
     * and whether an alert was open at the last window */
    ad_likelihood *lik_sh;
    double *lik_rat;
    int lik_rat_n, lik_rat_step, lik_rat_skip;
    int lik_alert;
    ad_season *season;           /* NULL: calibration.season_ms 0 */
    uint64_t season_gen;         /* model generation its maxima are scores of */
    float *row;                  /* F scratch */
    float *srow;                 /* F scratch: the row scaled */
    ad_phase phase;
    /* per-feature normalisation (detector.h PER-FEATURE NORMALISATION) */
    double *nscale;              /* F: the scales once learned */
    int has_nscale;
    float *nshare;               /* F scratch: shares of the normalised ratios */
    float *cur_e;                /* F: this window's per-feature errors */
    float *cq_e;                 /* (CALQ_MAX, F): held calibration windows' */
    float *nb_e;                 /* (nb_cap, F): counted calibration windows'
                                  * per-feature errors, ring (oldest at nb_head) */
    int64_t *nb_ts;              /* ... and their times */
    size_t nb_len, nb_head, nb_cap;
    /* collecting */
    float *coll;                 /* (coll_cap, F) raw rows */
    size_t coll_rows, coll_cap;
    int64_t coll_t0;             /* data time of the first collected row */
    int64_t *coll_ts;            /* (coll_cap) their data times */
    unsigned char *coll_brk;     /* (coll_cap) 1: the row starts a run (no
                                  * training window reaches back over it) */
    size_t coll_run;             /* rows in the run under way */
    int coll_break;              /* a row was skipped: the next starts a run */
    int64_t coll_warn_ts;        /* data time of the last "training waits"
                                  * warning (0: none in this wait) */
    int64_t coll_warn_gap;       /* data time to the next one (ms) */
    int64_t coll_wait_end_ts;    /* data time the last wait ended (0: none) */
    size_t coll_taken;           /* rows taken in a row since the last skipped
                                  * on a flag (the wait ends at T) */
    int coll_wait_warned;        /* the wait under way was said in a warning */
    int job_taken;
    /* scoring */
    uint64_t seq_out, seq_fed;
    int has_smooth;
    double smooth;
    int has_calib_start;
    /* the first intervals between scored windows (ms): the stream's window
     * period is their median (det_resolve_spans) */
    int64_t wp_prev;
    int64_t wp_dt[AD_WP_N];
    int wp_n;
    double window_ms;            /* that period (ms, >= 1) once known and the
                                    spans resolved; 0 before */
    int64_t calib_start;
    double calib_guard;          /* > 0: calibration skips scores above it */
    const ad_model *mg_model;    /* the model model_guard was taken from */
    double model_guard;          /* > 0: g x its training error (CALIBRATION
                                  * AGAINST THE MODEL) */
    uint64_t calib_model_out;    /* calibration windows left out by it */
    int calib_held;              /* a bootstrap's calibration waits on them
                                  * (det_calib_need), since calib_held_ms */
    int64_t calib_held_ms;
    uint64_t calib_flagged;      /* windows left out while it waits for
                                  * another reason (a data-quality flag, an
                                  * untrusted row, a score above calib_guard):
                                  * they count toward the fallback too
                                  * (detector.c calibrate) */
    /* CALIBRATION PROGRESS (detector.c): windows this calibration left
     * out on a data-quality flag or an untrusted row; a run of a window's
     * rows' worth of them with none taken between is a wait (said in the
     * log and the state: a stuck sensor holds calibration, with no time
     * limit for ever, and nothing else showed it) */
    uint64_t calib_dq_out;       /* ... since calibration began */
    uint64_t calib_dq_run;       /* ... since a window last fed it */
    int64_t calib_dq_since;      /* data time of the first of that run */
    int calib_dq_waiting;        /* the run is a wait */
    int calib_dq_untrusted;      /* the last left out had an untrusted row */
    int calib_dq_said;           /* the wait under way was said in the log */
    int64_t calib_dq_say_ts;     /* data time of the last "waits" line (0: none) */
    int64_t calib_dq_say_gap;    /* data time to the next one (ms) */
    int64_t calib_dq_end_ts;     /* data time the last wait ended (0: none) */
    int64_t last_ts;             /* last row consumed (event times) */
    int64_t resume_ts;           /* > 0: window rows restored up to this
                                  * time; the next row continues them only
                                  * if it follows within resume_gap */
    int64_t resume_gap;
    /* untrusted rows */
    uint64_t rejected_seen;      /* stream rejections at the last row */
    uint64_t rows_since_bad;     /* rows since the last untrusted one */
    /* calibration failure reports */
    uint64_t fail_report_at;     /* windows_scored at the last report */
    uint64_t fail_unreported;
    int fail_reported;
    /* regime acceptance: the last A scores of the active alert, or of the
     * alerts of one chain (accept_gap), in a ring */
    double *acc;                 /* A, then 2A scratch */
    /* level test (alert.level_ms): the last lvl_cap trusted scores in a
     * ring, their sum; lvl_off after an acceptance until the level falls
     * back under the fence (the accepted change is the new normal) */
    double *lvl;                 /* lvl_cap scores, then their seasonal levels */
    int lvl_cap, lvl_n, lvl_pos, lvl_exact, lvl_off;
    int lvl_like;                /* windows since one judged against a regime */
    double lvl_acc;              /* the mean an acceptance took as normal
                                  * (level_bounds), NAN: none */
    int lvl_acc_wait;            /* windows until it is taken: a span after
                                  * the acceptance, its ring all after it */
    /* LEARNING WAITS FOR THE LEVEL TEST (calibration.adapt with the level
     * test on): the scores of windows judged normal but over the level
     * test's fence, and their times, in a ring of lvl_cap, taught to the
     * threshold once the level span has passed over them with no alert
     * raised; dropped at a raise, a promotion, a new model, a silence
     * that starts the level test's mean over */
    double *tpend;
    int64_t *tpend_ts;
    int tpend_n, tpend_pos;
    /* BAND RUN (alert.band): windows since a run over the threshold and
     * under the raise level began with no alert open (0: none), consecutive
     * windows of it not over the threshold (alert.m of them end it), and
     * whether it is being learned (AD_BAND_LEARN, once it lasted
     * accept_after windows; band_now: the last window was learned so) */
    int band_n, band_below, band_learn, band_now;
    double lvl_sum, lvl_base;    /* the sums of both */
    int64_t lvl_ts;              /* data time of the last window judged */
    int lvl_resume;              /* restored (det_level_restore): the first
                                  * window drops what the gap since
                                  * lvl_resume_ts put out of its span */
    int64_t lvl_resume_ts;
    double lvl_resume_dt;        /* the period it counts those windows in
                                  * (0: the window period) */
    double lvl_dt;               /* the live stream's usual interval between
                                  * windows judged (ms; 0: not known yet) */
    int lvl_seen;                /* lvl_ts is a window's (or a restore's) */
    int lvl_hold;                /* the last window judged was held elevated */
    /* burst test (alert.burst_ms): its state and the settings it was made
     * with (a reload may change them); burst_sp F learned spreads,
     * burst_row F values judged; bshare F: the share an alert sees */
    struct ad_burst *burst;
    int64_t burst_ms;
    int burst_n;
    double burst_z;
    double *burst_sp, *burst_row;
    /* noise test (alert.noise_ms): its state and the settings it was made
     * with; noise_on F: raised features; noise_share F: the share an alert sees */
    struct ad_noise *noise;
    /* kept change (shift.h; with alert.accept_period_ms): rows' levels, the
     * change an alert left behind; not saved */
    struct ad_shift *shift;
    double *shift_x;            /* F scratch: the row given to it */
    int shift_off;              /* off: out of memory, or not for this stream (said once) */
    int shift_said;             /* the state last said (shift_said) */
    uint64_t kept_seq;          /* changes kept, renewed or ended (the state published again) */
    int last_kept;              /* the last window was kept (not learned) */
    int64_t noise_ms;
    double noise_ratio;
    unsigned char *noise_on;
    float *noise_share;
    float *bshare;
    int acc_len, acc_head;
    int acc_quiet;               /* windows without an alert since the chain's last */
    int64_t acc_since;           /* start of the chain's first alert */
    double *acc_prof;            /* (3 + AD_REGIMES) F: [0,F) excess error
                                    profile summed over the chain's earlier
                                    alerts, [F,2F) over the current one,
                                    [2F,3F) the usual per-feature error, then
                                    the accepted regimes' profiles */
    uint64_t acc_norm_n;         /* windows in the usual error (capped) */
    double regime_thr[AD_REGIMES];   /* > 0: threshold for windows like
                                        accepted regime i */
    uint64_t regime_seq[AD_REGIMES]; /* acceptance order (the oldest goes) */
    uint64_t regime_n;               /* acceptances so far (the order) */
    unsigned char regime_rec[AD_REGIMES];  /* 1: accepted as a chain of recurrences,
                                              or kept over a promotion on a schedule
                                              (a promotion that does not see it
                                              keeps it) */
    unsigned char regime_once[AD_REGIMES]; /* 1: accepted from one persistent change,
                                              on a schedule since a promotion kept it
                                              (regime_rec set, it never recurred);
                                              saved as "once" for what it tells an
                                              operator reading the state: no
                                              decision reads it (the REGIME TAIL
                                              takes such a regime as scheduled) */
    int64_t regime_at[AD_REGIMES];   /* on a schedule (accept_period_ms): the start
                                        of an occurrence; one persistent change:
                                        the start of its alert */
    int64_t regime_span[AD_REGIMES]; /* ... and its longest occurrence (ms); 0: no
                                        schedule, the regime applies at any time */
    int64_t regime_len[AD_REGIMES];  /* accepted from one persistent change
                                        (not recurring): how long it has lasted
                                        since regime_at (its alert's length at
                                        acceptance, extended while windows
                                        keep being judged against it) */
    int64_t regime_last[AD_REGIMES]; /* the last such window (ms); INT64_MIN:
                                        the occurrence ended, no more extending */
    int64_t regime_quiet[AD_REGIMES]; /* one persistent change (not recurring,
                                        with continual learning): windows under
                                        the threshold since the last one judged
                                        against it (regime_left) */
    double regime_lvl[AD_REGIMES];   /* the median score it was accepted on (its
                                        level; restored from a state saved
                                        without it: threshold / margin); 0:
                                        unknown, never dormant (regime_dormant) */
    /* a change the way of a dormant regime being judged (reentry): its
     * windows so far in a row over the threshold (-1: judged, not at the
     * regime's level, until a window not like it), the regime, their
     * highest score and its time, the first window's time and the
     * threshold it was over; their scores (run_keep: reent_cap of them,
     * then as many of scratch) */
    int reent_run, reent_i;
    double reent_max;
    int64_t reent_ts, reent_peak_ms;
    double reent_thr;
    double *reent_s;
    int reent_cap;
    int last_reent;              /* the regime this window was withheld as a
                                    re-entry of; -1: none (det_acc_shadow
                                    judges the candidate on it too) */
    /* the candidate in shadow on windows judged against regime i: how many,
     * and their highest candidate scores, descending (det_acc_promoted) */
    int regime_sh_n[AD_REGIMES];
    double regime_sh[AD_REGIMES][AD_REGIME_SH];
    /* the same over the windows the live model judged normal against it
     * (not over its threshold, no alert open): the regime's level */
    int regime_shn_n[AD_REGIMES];
    double regime_shn[AD_REGIMES][AD_REGIME_SH];
    /* a step-down regime's threshold keeps learning: the scores it was
     * fitted on and those of the windows since judged against it and under
     * it (trusted, no alert open), up to sd_fit_cap(); sd_fit_n[i] 0: regime
     * i does not learn (not a step-down's, or it went through a promotion) */
    double *sd_fit;              /* AD_REGIMES x cap */
    int sd_fit_n[AD_REGIMES];
    int last_regime;             /* the regime the last window was judged
                                    against, -1: none */
    /* a regime's onset in windows whose profile left it (REGIME TAIL):
     * the regime a window of the run over the threshold was like by
     * profile (-1: none) and the run's windows so far; per regime, the
     * start of the occurrence whose tail was given (one per occurrence;
     * INT64_MIN: none); tail_fresh: restored, the occurrence of the first
     * window judged has had its tail */
    int tail_i, tail_run;
    int64_t tail_occ[AD_REGIMES];
    int tail_fresh;
    const void *sh_cand;         /* the candidate the regime_sh scores are of */
    int sh_has_smooth;           /* its scores smoothed as the detector's */
    double sh_smooth;
    int64_t acc_span;            /* the chain's longest ended alert (ms) */
    int64_t acc_cur_span;        /* the current alert's length so far (ms) */
    /* a second chain, parked while alerts unlike it continue the other (a
     * change at 22:00 and its return at 06:00 alternate): its scores in
     * acc + 3A, its earlier alerts' profile after the regimes' in acc_prof */
    int pk_len, pk_quiet, pk_alerts, pk_occ_n;
    int64_t pk_since, pk_span;
    int64_t pk_occ_ts[AD_ACC_OCC_TS];
    int acc_prev, acc_cur;       /* ring entries of earlier alerts / current */
    int acc_alerts;              /* alerts in the chain (the current one too) */
    /* a recurrence's onset being judged (acc_onset): its windows so far in
     * a row over the threshold at the chain's time and profile (-1: judged,
     * not one, until a window under the threshold), the first one's time */
    int acc_onset_run;
    int64_t acc_onset_ts;
    double acc_onset_max;        /* ... and their highest score, its time, */
    int64_t acc_onset_peak_ms;
    double acc_onset_thr;        /* the threshold the first one was over, */
    double *onset_s;             /* their scores (as reent_s) */
    int onset_cap;
    int acc_onset_force;         /* judged not one after at least alert.k
                                  * withheld windows: raise on this window,
                                  * an alert that started at the first of
                                  * them (force_*: run_force) */
    int64_t force_since, force_peak_ms;
    double force_thr, force_peak;
    /* the chain's occurrences (alerts raised after at least accept_after/3
     * quiet windows: a flapping alert is one), the latest starts, oldest
     * first; acc_occ_n counts them up to AD_ACC_OCC_TS */
    int64_t acc_occ_ts[AD_ACC_OCC_TS];
    int acc_occ_n;
    /* restored from a save made in the middle of the stream (not a
     * hand-over): the rows consumed after it are lost; the first window
     * counts the windows since acc_resume_ts as quiet (det_acc_chain_restore) */
    int acc_resume;
    int64_t acc_resume_ts;
    /* STEP-DOWN ACCEPTANCE (alert.stepdown_ratio > 0, detector.h): the
     * open alert's last R = max(stepdown_windows, stepdown_after) scores
     * (sd[0..R), sd_n of them, the next at sd_pos), scratch for
     * stepdown_after scores (sd + R) and for F values (sd + R +
     * stepdown_after: the zero profile sd_slot gives regime_slot); the highest mean over
     * stepdown_windows windows the alert reached and the windows in a row
     * its mean has been under ratio x that; NULL when off */
    double *sd;
    int sd_n, sd_pos, sd_held;
    double sd_peak;
    /* event time */
    double *rowd;                /* F scratch: the row in double */
    unsigned char *pres;         /* F scratch: present mask */
    int has_arrival;
    int64_t arrival_wall;        /* wall time of the last arrival */
    int64_t max_ts;              /* newest accepted timestamp */
    uint64_t dq_ooo;             /* late and counted duplicate samples the
                                  * monitor has looked at */
    uint64_t dq_ooo_only;        /* of them, late (ooo) */
    uint64_t dq_dup_seen;        /* duplicates looked at (counted or not) */
    uint64_t dq_dup_counted;     /* of them, counted as late (STALLED CLOCK) */
    int64_t dq_stall_at;         /* late clock at the first duplicate since the
                                  * newest accepted time last moved, or
                                  * INT64_MIN */
    int dq_refused_only;         /* something refused since the last sample
                                  * taken (ad_dq_refused_hole) */
    int64_t lt_clock, lt_ts;     /* without an arrival clock, the late check's
                                  * clock: the forward steps of the pushed
                                  * timestamps (lt_ts the last one) */
    int lt_has;
    /* ROWS mode: a row far ahead of the stream's cadence and of its
     * arrival, held until the next row says whether the clock jumped
     * (detector.h, A ROW AHEAD) */
    double *held_v;              /* F values */
    unsigned char *held_p;       /* F present */
    int64_t held_ts, held_arr;
    int held, held_all;          /* held_all: present was NULL */
    int64_t acc_arr;             /* arrival of the last row accepted ... */
    int acc_known;               /* ... in this run (not before a restore) */
    uint64_t rows_ahead, values_ahead;   /* held rows found wrong */
    uint64_t held_lost;          /* saved held rows not continued */
    int held_lost_pend;          /* restore_alert counted one (restore_window
                                  * may still take it) */
    double *last_val;            /* F: last raw value per feature (NaN) */
    /* data quality */
    ad_dq *dq;
    struct { uint64_t seq; int64_t from, to; } hard[AD_DQ_SPANS];
    int hard_n;                  /* spans of conditions other than a learned
                                  * range (ring, newest last) */
    unsigned char *lr_open;      /* F: learned-range condition open */
    /* calibration windows held until a stuck run that began in them would
     * have been recognised (ring of CALQ_MAX, oldest at cq_head) */
    struct calq { int64_t from, to; double s; } *cq;
    int cq_cap, cq_head, cq_len;
    /* continual learning */
    ad_adapt *ad;
    int adapt_job_out;
    /* Replaced models (decided candidates, live models swapped out) that
     * a window handed out may still read. Retirement epochs: a window
     * carries the epoch it was handed out in (job->ep); a model retired
     * in epoch e (then the epoch moves on) is freed once no window of
     * epoch <= e is out. */
    struct retired { ad_model *m; uint64_t ep; } *retired;
    int n_retired, cap_retired;
    uint64_t ret_ep;
    struct ep_out { uint64_t ep, n; } *eps;     /* windows out per epoch,
                                                 * oldest first */
    int n_eps, cap_eps;
    ad_model *reload_next;       /* reload.shadow: an operator's model that
                                  * waits for the fine-tune in flight or the
                                  * window period, then goes into shadow */
    float *pw;                   /* pending windows of handed-out jobs */
    uint64_t *pw_seq;
    int pw_cap, pw_head, pw_len;
    /* events (ring, oldest at ev_head): a detector usually has none
     * waiting, so the ring starts at 1 and doubles on demand up to
     * AD_DETECTOR_EVENTS (an ad_event is ~500 bytes) */
    ad_event *ev;
    int ev_cap, ev_head, ev_len;
    ad_detector_stats st;
    void *user;
};

int det_check_model_metric(const ad_detector_cfg *c, const ad_model *m, char *err,
                           size_t errlen);
ad_event *det_ev_new(ad_detector *d, ad_event_type type, int64_t ts);
int det_fit_without_scores(ad_detector *d);
void det_pump_adapt(ad_detector *d);
/* m (owned) may still be read by a window handed out (a batch in
 * flight): freed once every window handed out before came back
 * (det_job_back), at once when none is out */
void det_retire(ad_detector *d, ad_model *m);
int det_job_out(ad_detector *d, uint64_t *ep);       /* 0 or AD_ENOMEM */
void det_job_back(ad_detector *d, uint64_t ep);
/* reload.shadow: the operator's model m (owned: taken on success; the
 * caller's still on failure) goes into shadow, replacing a candidate in
 * shadow (abandoned, retired); the learner must be resolved with no job
 * out. 0 or an AD_E* code. */
int det_reload_shadow(ad_detector *d, ad_model *m);
/* The probability of a window's score (ad_likelihood_update2; trusted:
 * may be learned), and once the window is judged what its average
 * becomes (det_lik_settle); the candidate's score on it in shadow
 * (det_lik_shadow: NAN when not scored; normal: judged normal).
 * detector_adapt.c PROBABILITY. */
double det_lik_update(ad_detector *d, double score, int trusted, double *L);
void det_lik_shadow(ad_detector *d, double live, double cand, int trusted, int normal);
void det_lik_settle(ad_detector *d);
void det_lik_shadow_reset(ad_detector *d);
/* m replaces the live model now (owned: the detector's, else borrowed): an
 * open alert is closed first (model_changed), the operator's model is the
 * drift reference, and calibration restarts unless keep_threshold and a
 * threshold is fitted. */
void det_swap_now(ad_detector *d, const ad_model *m, ad_model *owned, int keep_threshold);
void det_set_phase(ad_detector *d, ad_phase p, int64_t ts);
void det_swap_model(ad_detector *d, const ad_model *m, ad_model *owned);
void det_restart_calibration(ad_detector *d, int64_t ts);
/* a bootstrap's calibration hold begins ("held") or ends (any other how):
 * an AD_EV_CALIB_HELD event, once per change */
void det_calib_hold(ad_detector *d, int64_t ts, const char *how);
/* A calibration starts over: its progress counts too (CALIBRATION
 * PROGRESS in detector.c); a wait under way ends unsaid. */
void det_calib_dq_reset(ad_detector *d);
/* Forget the per-feature scales and the calibration windows' errors. */
void det_norm_reset(ad_detector *d);
/* A condition recognised late (stuck, flagged back to since_ms): collected
 * rows from since_ms on leave the collection (detector.c COLLECTION). */
void det_coll_drop_since(ad_detector *d, int64_t since_ms);

/* The collection is complete (e: its AD_EV_TRAIN_READY, text set): warn
 * once of features that never vary in the collected rows, naming them, and
 * append them to e's text. */
void det_train_note_constant(ad_detector *d, ad_event *e);

int det_absurd_value(const ad_detector *d, int f, double x);
void det_dq_after_sample(ad_detector *d, int rc, uint64_t rej0, int64_t ts, int f, double v);
int det_dq_create(ad_detector *d, const ad_detector_cfg *cfg, char *err, size_t errlen);
int det_hard_flagged(const ad_detector *d, int64_t from, int64_t to);
void det_note_accepted(ad_detector *d, int64_t ts);
/* The late check's clock after a push at ts (quality.h, ad_dq_late). */
int64_t det_late_clock(ad_detector *d, int64_t ts);
void det_acc_reset(ad_detector *d);
void det_level_reset(ad_detector *d);
void det_level_forget(ad_detector *d);
void det_acc_promoted(ad_detector *d, double ratio, int *kept, int *ended);
void det_acc_shadow(ad_detector *d, const void *cand_model, double cand_score, int trusted,
                    int normal);
void det_acc_shadow_reset(ad_detector *d);
void det_acc_chain_reset(ad_detector *d);
/* Forget the open alert's step-down progress (STEP-DOWN ACCEPTANCE). */
void det_sd_reset(ad_detector *d);
void det_window_period_restore(ad_detector *d, const cJSON *x);
/* BAND RUN (detector.c band_run): forget the run; its state as
 * {"n":windows,"below":windows,"learn":bool} added to o as "band" (none
 * when no run is under way), and read back (absent or damaged: no run,
 * with a warning naming the field when damaged). */
void det_band_reset(ad_detector *d);
int det_band_save(const ad_detector *d, cJSON *o);
void det_band_restore(ad_detector *d, const cJSON *x);
cJSON *det_level_save(const ad_detector *d);
void det_level_restore(ad_detector *d, const cJSON *o);
cJSON *det_burst_save(const ad_detector *d, int rows);
void det_burst_restore(ad_detector *d, const cJSON *o);
cJSON *det_noise_save(const ad_detector *d);
cJSON *det_shift_save(const ad_detector *d);
void det_shift_restore(ad_detector *d, const cJSON *o);
void det_noise_restore(ad_detector *d, const cJSON *o);
/* score s as the n-th (from 0) of a run judged on its scores (acc_onset's
 * onset_s, reentry's reent_s; *cap grown as needed) */
void det_run_keep(ad_detector *d, double **buf, int *cap, int n, double s);
/* handover: a hand-over's or a checkpoint's save (a re-entry run goes
 * with it, detector.c reent_restore) */
cJSON *det_acc_save(const ad_detector *d, int handover);
void det_acc_restore(ad_detector *d, const cJSON *o);
/* The acceptance chains in progress (the "accept" part of the state's
 * "alert", detector.h ad_detector_save), NULL when there is none;
 * handover: nothing is consumed after this save (a stop, an eviction). */
cJSON *det_acc_chain_save(const ad_detector *d, int handover);
/* Continue what det_acc_chain_save wrote (o NULL: none saved, an older
 * state file), after the alert and the window period were restored. */
void det_acc_chain_restore(ad_detector *d, const cJSON *o);
uint64_t det_rejected_count(const ad_detector *d);
/* A push refused (rc > 0; rej0: det_rejected_count before it): the values
 * refused and the samples far behind the newest time (a clock that jumped
 * back) count in the data-quality monitor's rejected bucket. */
void det_dq_refused(ad_detector *d, uint64_t rej0, int64_t ts, int f);

/* The windows above the calibration guard after which calibration takes
 * the model's threshold: calibration.windows, or alert.accept_after when
 * more for a model the stream trained itself (detector.c calibrate). */
uint64_t det_calib_need(const ad_detector *d);
/* g x the model's training error (calibration.model_guard), or 0; taken
 * again when the model changes (cached in model_guard). */
double det_model_guard(ad_detector *d);

#endif
