/*
 * adapt_int.h - private to lib/adapt.c and lib/adapt_state.c: the state of
 * one continual learner (see adapt.h for the protocol).
 */
#ifndef AD_ADAPT_INT_H
#define AD_ADAPT_INT_H

#include "adapt.h"

#define SCHED_UNSET INT64_MIN

typedef struct pend_ent {
    uint64_t seq;               /* offer number */
    int64_t ts;
    double live, cand;
    uint64_t shadow;            /* shadow generation, 0 = none */
    int regime;                 /* judged against an accepted regime */
    int nowin;                  /* restored shadow entry whose window was not
                                 * saved: counted, not put in the normal set */
} pend_ent;

/* windows an unresolved learner holds (the detector resolves after
 * AD_WP_N = 31 scored windows at the latest; a few more when windows share
 * a timestamp) */
#define AD_ADAPT_EARLY 64

typedef struct true_alert {
    char id[AD_ALERT_ID_LEN];
    int64_t ts;                 /* peak window */
    double score;               /* live score of the peak */
} true_alert;

struct ad_adapt {
    ad_adapt_cfg cfg;           /* counts in effect (0 while unresolved) */
    ad_adapt_cfg given;         /* as given (data time unresolved) */
    int resolved;               /* counts known, buffers below allocated */
    ad_thr_cfg thr;
    ad_metric metric;
    double alpha;
    int T, F;
    size_t wsz;                 /* T*F */
    /* normal set: ring, nhead = oldest */
    float *nset;
    int64_t *nts;
    size_t ncap, nlen, nhead;
    const ad_threshold *live_thr;   /* for the decision's hold (not owned) */
    const double *scale;            /* F per-feature scales, or NULL (not owned) */
    int scale_rms;                  /* ... combined by root mean square */
    uint64_t stride_ctr;
    /* pending queue: ring, phead = oldest */
    pend_ent *pend;
    float *pwin;
    size_t pcap, plen, phead;
    /* unresolved (DATA TIME): the clean windows offered so far, in offer
     * order, until the counts are known (then they go through the pending
     * queue as if offered with the counts known) */
    pend_ent *early;            /* allocated on the first held window */
    float *ewin;
    size_t elen, ecap;
    int early_off;              /* a resolution failed: nothing more held */
    float *tmp;                 /* one unscaled window */
    /* alerts */
    int in_alert;
    char cur_id[AD_ALERT_ID_LEN];
    float *peak;
    double peak_score;
    int64_t peak_ts;
    int have_peak;
    int resume_peak;            /* peak restored for alert cur_id: kept when
                                 * the detector continues it (raised again) */
    int post_clear;
    uint64_t cleared_at;        /* offered at the last clear + 1 (0: none):
                                 * post_clear when the margin is resolved */
    float *awin;                /* recent windows inside alerts: ring, */
    int64_t *ats;               /* ahead = oldest (regime acceptance) */
    size_t acap, alen, ahead;
    true_alert *ta;             /* oldest first */
    float *tawin;
    size_t tacap, talen;
    /* counters */
    uint64_t offered, admitted, ex_alert, ex_exc, ex_dq, ex_early;
    int64_t seen_ts[AD_ADAPT_RUN_UP];   /* the last windows judged (ring) */
    uint64_t seen;
    uint64_t attempts, promotions, rejections, failures;
    /* schedule */
    uint64_t sched_windows;
    int acc_pending;              /* a regime was accepted: fine-tune soon */
    uint64_t acc_admitted, acc_need;  /* admitted at acceptance; windows to wait */
    uint64_t reg_last;          /* offered at the last window judged against an
                                 * accepted regime (0: none since start) */
    uint64_t held_at;           /* offered when a due schedule was first held
                                 * for a regime's occurrence (0: not held) */
    int64_t sched_start;
    int64_t last_ts;
    int ready;                  /* TRAIN_READY sent, job not taken */
    int acc_ft;                 /* that fine-tune (ready, its job out, its
                                 * candidate in shadow) is an acceptance's */
    int job_out;
    /* shadow */
    ad_model *cand;
    int64_t sh_start;           /* data time the shadow span began */
    ad_adapt_origin origin;
    uint64_t attempt_cur, shadow_gen, sh_resolved, train_windows;
    ad_train_report rep;
    int have_rep;
    double *sh_live, *sh_cand;
    unsigned char *sh_reg;      /* judged against an accepted regime */
    int64_t *sh_ts;             /* the window's data time */
    size_t sh_n, sh_cap;
    ad_model *decided;
    ad_adapt_event last;
    int have_last;
    ad_adapt_event evq[AD_ADAPT_EVENTS];
    int evh, evn;
    /* reference drift (REFERENCE): the model the stream started from, its
     * lowest error on a fine-tune's windows (the baseline, per feature)
     * and the latest */
    ad_model *ref;                      /* a copy; NULL while it is the live
                                         * model (or none) */
    char ref_id[AD_MODEL_ID_LEN + 1];   /* the reference's id ("": none) */
    char live_id[AD_MODEL_ID_LEN + 1];  /* the live model's, as last told */
    double ref_base, ref_err, ref_ratio, ref_top_ratio;
    double *ref_base_f;                 /* F; NULL until a baseline */
    int64_t ref_base_ts;
    int ref_top;                        /* -1: none */
    int ref_warned;                     /* a drift notice is out */
    /* a saved normal set (adapt_state.c NORMAL SET ACROSS A RESTART) read
     * before the counts were known: taken at the resolution */
    struct cJSON *rest_normal;
    /* a saved candidate's shadow span (adapt_state.c CANDIDATE ACROSS A
     * RESTART), waiting for its model (ad_adapt_shadow_resume), and the
     * acceptance's due fine-tune as saved (finetune_lost overrides it
     * until the candidate is back) */
    struct cJSON *rest_shadow;
    int rest_acc_pending;
    uint64_t rest_acc_admitted, rest_acc_need;
};

/* Take the saved normal set kept in a->rest_normal (if any) into the
 * resolved learner, and free it (adapt_state.c). */
void adapt_normal_take(ad_adapt *a);

#endif /* AD_ADAPT_INT_H */
