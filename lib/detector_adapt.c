/*
 * detector_adapt.c - continual learning inside a stream's detector: the
 * ad_adapt learner's jobs and events, promotion of a candidate (model swap,
 * threshold re-based) and retirement of replaced models. See detector.h
 * CONTINUAL LEARNING and adapt.h.
 */
#include "detector_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"

/* ---- continual learning ----------------------------------------------------- */

/* Retired models: see detector_int.h. A retired model is freed once no
 * window handed out in its epoch or before is out. */
void det_retire(ad_detector *d, ad_model *m)
{
    if (m == NULL)
        return;
    if (d->n_eps == 0) {                /* no window out reads it */
        ad_model_free(m);
        return;
    }
    if (d->n_retired == d->cap_retired) {
        int cap = d->cap_retired ? 2 * d->cap_retired : 4;
        struct retired *r = realloc(d->retired, (size_t)cap * sizeof(*r));

        if (r == NULL) {                /* leak rather than free under a reader */
            ad_log(AD_LOG_ERR, "%s: out of memory retiring model %s: kept", d->who,
                   m->id);
            return;
        }
        d->retired = r;
        d->cap_retired = cap;
    }
    d->retired[d->n_retired].m = m;
    d->retired[d->n_retired++].ep = d->ret_ep++;    /* later windows never read it */
}

int det_job_out(ad_detector *d, uint64_t *ep)
{
    *ep = d->ret_ep;
    if (d->n_eps > 0 && d->eps[d->n_eps - 1].ep == d->ret_ep) {
        d->eps[d->n_eps - 1].n++;
        return 0;
    }
    if (d->n_eps == d->cap_eps) {
        int cap = d->cap_eps ? 2 * d->cap_eps : 4;
        struct ep_out *e = realloc(d->eps, (size_t)cap * sizeof(*e));

        if (e == NULL)
            return AD_ENOMEM;
        d->eps = e;
        d->cap_eps = cap;
    }
    d->eps[d->n_eps].ep = d->ret_ep;
    d->eps[d->n_eps++].n = 1;
    return 0;
}

void det_job_back(ad_detector *d, uint64_t ep)
{
    int i, k, head = 0;
    uint64_t oldest;

    for (i = 0; i < d->n_eps; i++)
        if (d->eps[i].ep == ep) {
            if (d->eps[i].n > 0)
                d->eps[i].n--;
            break;
        }
    while (head < d->n_eps && d->eps[head].n == 0)
        head++;
    if (head > 0) {
        memmove(d->eps, d->eps + head, (size_t)(d->n_eps - head) * sizeof(d->eps[0]));
        d->n_eps -= head;
    }
    oldest = d->n_eps > 0 ? d->eps[0].ep : UINT64_MAX;
    for (i = 0, k = 0; i < d->n_retired; i++) {
        if (d->retired[i].ep < oldest)
            ad_model_free(d->retired[i].m);
        else
            d->retired[k++] = d->retired[i];
    }
    d->n_retired = k;
}

void ad_detector_job_dropped(ad_detector *d, const ad_window_job *job)
{
    if (d != NULL && job != NULL && job->det == d)
        det_job_back(d, job->ep);
}


/* ---- the probability --------------------------------------------------------
 *
 * PROBABILITY (likelihood.h). The history the probability measures a
 * window against learns from ordinary windows only: a window's average is
 * held aside (AD_LIK_HOLD) until the detector has judged it. Outside an
 * alert, the newest n + w - 2 are kept held (n: alert.n, w:
 * probability_average): they may yet be the run-up of an alert (a raise
 * takes k of the last n windows, and an average spans w scores), and the
 * older join the history. While an alert is open every average is held.
 * When it ends, its averages (with its run-up) join the history if the
 * change was ordinary after all (accepted as the new normal, or an
 * operator's false alarm) and are forgotten otherwise (cleared: a fault
 * that ended; or closed for a restart, a reload, a model change). So a
 * lasting fault is never its own baseline: its probability stays high
 * until it ends or regime acceptance takes it as the new normal (which is
 * what absorbs a lasting change, docs/alerts.md), where before the
 * fault's own averages filled the history and cleared a 12 h blockage
 * after ~75 min.
 *
 * A PROMOTION does not start the probability afresh. While a candidate is
 * in shadow its score on each window is known: it feeds a second history
 * (lik_sh) under the same rules, the candidate's own view of the span's
 * ordinary windows, which becomes the live history at the promotion when
 * it is long enough for a probability (min_history averages, the span is
 * usually longer). Else (a span that was mostly an alert, a restart during
 * the shadow: the shadow history is not saved) the live history is
 * rescaled by r, the median of candidate score / live score over the
 * span's normal windows (below the threshold, no alert, no regime,
 * trusted): a median ratio measures how the two models' scales relate on
 * the same ordinary data, robust to the windows where one of them fails;
 * and, with fewer than AD_LIK_RATIO_MIN such windows, by the decision's
 * error ratio. Before, the history was reset: p was 0.5 for 50 windows, and
 * a fault starting then became its own history and never alerted. */

#define AD_LIK_RATIOS 4096       /* ratios kept (every step-th beyond) */
#define AD_LIK_RATIO_MIN 10      /* fewest normal windows for a median */

double det_lik_update(ad_detector *d, double score, int trusted, double *L)
{
    ad_lik_how how = !trusted ? AD_LIK_NONE :
                     d->phase == AD_PHASE_DETECTING ? AD_LIK_HOLD : AD_LIK_LEARN;

    return ad_likelihood_update2(d->lik, score, how, L);
}

void det_lik_shadow_reset(ad_detector *d)
{
    if (d->lik_sh)
        ad_likelihood_reset(d->lik_sh);
    d->lik_rat_n = 0;
    d->lik_rat_step = 1;
    d->lik_rat_skip = 0;
}

void det_lik_shadow(ad_detector *d, double live, double cand, int trusted, int normal)
{
    double r;

    if (d->lik_sh == NULL || !isfinite(cand))
        return;
    ad_likelihood_update2(d->lik_sh, cand, trusted ? AD_LIK_HOLD : AD_LIK_NONE, NULL);
    if (!normal || !trusted || !(live > 0) || !(cand > 0) || !isfinite(r = cand / live))
        return;
    if (d->lik_rat == NULL &&
        (d->lik_rat = malloc(AD_LIK_RATIOS * sizeof(double))) == NULL)
        return;
    if (d->lik_rat_step < 1)
        d->lik_rat_step = 1;
    if (++d->lik_rat_skip < d->lik_rat_step)
        return;
    d->lik_rat_skip = 0;
    if (d->lik_rat_n == AD_LIK_RATIOS) {     /* every other one, twice the step */
        for (int i = 0; i < AD_LIK_RATIOS / 2; i++)
            d->lik_rat[i] = d->lik_rat[2 * i + 1];
        d->lik_rat_n = AD_LIK_RATIOS / 2;
        d->lik_rat_step *= 2;
    }
    d->lik_rat[d->lik_rat_n++] = r;
}

void det_lik_settle(ad_detector *d)
{
    size_t keep = (size_t)d->cfg.alert.n + (size_t)d->cfg.lik.average - 2;

    if (ad_alerter_active(d->alert) != NULL) {
        d->lik_alert = 1;           /* held until the alert ends */
        return;
    }
    if (d->lik_alert) {
        ad_close_reason r = ad_alerter_last_reason(d->alert);

        d->lik_alert = 0;
        if (r == AD_CLOSE_ACCEPTED || r == AD_CLOSE_FALSE_ALARM) {
            ad_likelihood_commit(d->lik, 0);
            if (d->lik_sh)
                ad_likelihood_commit(d->lik_sh, 0);
        } else {
            ad_likelihood_drop(d->lik);
            if (d->lik_sh)
                ad_likelihood_drop(d->lik_sh);
        }
    }
    ad_likelihood_commit(d->lik, keep);
    if (d->lik_sh)
        ad_likelihood_commit(d->lik_sh, keep);
}

/* The median candidate / live score ratio over the shadow span's normal
 * windows; NAN with fewer than AD_LIK_RATIO_MIN. */
static double shadow_ratio(const ad_detector *d)
{
    double *v, m;
    int n = d->lik_rat_n;

    if (n < AD_LIK_RATIO_MIN || d->lik_rat == NULL || (v = malloc((size_t)n * sizeof(double))) == NULL)
        return NAN;
    memcpy(v, d->lik_rat, (size_t)n * sizeof(double));
    m = ad_quantile(v, (size_t)n, 0.5);
    free(v);
    return m;
}

/* A promoted candidate becomes the live model; the threshold is rebased on
 * its (smoothed) shadow scores of normal windows, as its threshold in the
 * decision was fitted (ad_adapt_shadow_fit: without the windows judged
 * against an accepted regime while they are fewer than half), and held at
 * the decision's hold (the live threshold x the candidate/live error ratio)
 * or above until a normal set's worth of windows has been judged by the new
 * model: a shadow span shorter than the day has not seen the day's
 * high-error hours. */
static void promote(ad_detector *d, ad_event *e)
{
    ad_model *c = ad_adapt_take_candidate(d->ad);
    double *sm = NULL, old = ad_threshold_value(d->thr), last = NAN, rat;
    size_t n = 0;
    uint64_t held_left = 0;         /* an earlier promotion's hold (a rebase ends it) */
    int how = 0;
    char err[160];

    ad_threshold_held(d->thr, &held_left);
    if (c == NULL || c->window != d->T || c->n_features != d->F) {
        ad_log(AD_LOG_WARNING, "%s: promoted candidate unusable", d->who);
        det_retire(d, c);
        return;
    }
    sm = ad_adapt_shadow_fit(d->ad, d->cfg.smooth_alpha, &n, &last);
    /* the reference is kept apart once it is no longer the live model */
    if (ad_adapt_keep_reference(d->ad, d->model) != 0)
        ad_log(AD_LOG_WARNING, "%s: out of memory for the reference model: drift "
               "from it is no longer measured", d->who);
    /* the old live model may still be read by a batch in flight */
    det_retire(d, d->owned);
    d->owned = NULL;
    det_swap_model(d, c, c);
    ad_adapt_live_model(d->ad, c);
    if (e->adapt.origin == AD_ADAPT_RELOAD)  /* the operator's new model */
        ad_adapt_set_reference(d->ad, c, 1);
    d->pw_len = 0;                   /* windows scaled for the old model */
    /* An operator's false-alarm raise was a score of the old model: on the
     * new one's scale by the median score ratio over the shadow span's
     * normal windows (PROBABILITY), what the two models give on the same
     * ordinary data. Not by the decision's error ratio: over a span mostly
     * of an accepted regime's windows that measures how much better the
     * candidate learned the regime (0.19), and took a raise to under the
     * threshold. Without enough normal windows the raise stays as it is. */
    rat = shadow_ratio(d);
    if (isfinite(rat))
        ad_threshold_scale_raised(d->thr, rat);
    if (sm && ad_threshold_fitted(d->thr) &&
        ad_threshold_rebase(d->thr, sm, n, d->has_nscale ? NULL : c->training, &how, err,
                            sizeof(err)) == 0) {
        d->smooth = last;
        d->has_smooth = 1;
        const ad_adapt_cfg *ac = ad_adapt_get_cfg(d->ad);
        /* a hold lasts a normal set's worth of windows from the first
         * promotion that set it: a promotion during it holds for what is
         * left, not longer (promotions closer together than that would
         * otherwise keep the threshold held for good) */
        uint64_t hn = (uint64_t)ac->normal_windows * (uint64_t)ac->normal_stride;
        if (held_left > 0 && held_left < hn)
            hn = held_left;
        if (e->adapt.hold_threshold > 0 && isfinite(e->adapt.hold_threshold))
            ad_threshold_hold(d->thr, e->adapt.hold_threshold, hn);
    } else {
        ad_log(AD_LOG_WARNING, "%s: threshold kept after promotion%s%s", d->who,
               sm ? ": " : "", sm ? err : "");
        d->has_smooth = 0;
    }
    free(sm);
    {
        ad_thr_info in;
        ad_threshold_info(d->thr, &in);
        /* the new model scores on its own scale (PROBABILITY) */
        if (d->lik_sh != NULL && ad_likelihood_known(d->lik_sh)) {
            ad_likelihood *t = d->lik;
            d->lik = d->lik_sh;
            d->lik_sh = t;
        } else if (isfinite(rat)) {
            ad_likelihood_scale(d->lik, rat);
        } else if (e->adapt.live_error > 0 && e->adapt.cand_error > 0) {
            ad_likelihood_scale(d->lik, e->adapt.cand_error / e->adapt.live_error);
        } else {
            ad_likelihood_reset(d->lik);
        }
        det_lik_shadow_reset(d);
        ad_likelihood_set_floor(d->lik, in.floor);
        det_level_forget(d);            /* so does the level test's mean */
    }
    /* Accepted regimes were judged with the old model (det_acc_promoted):
     * each ends when the candidate learned it (its windows in the shadow
     * span under the new threshold) and stays on the candidate's scale
     * when it did not. */
    det_acc_promoted(d, e->adapt.live_error > 0 ? e->adapt.cand_error / e->adapt.live_error
                                                : NAN,
                     &e->adapt.regimes_kept, &e->adapt.regimes_ended);
    /* the seasonal maxima too; a wrong scale lasts until season_periods
     * periods of the new model's own scores have replaced it (too high:
     * a fault at that phase under margin x the level is missed meanwhile) */
    if (d->season) {
        ad_season_scale(d->season, e->adapt.live_error > 0 ?
                        e->adapt.cand_error / e->adapt.live_error : NAN);
        d->season_gen = d->gen;
    }
    d->st.adapt_promoted++;
    e->threshold = ad_threshold_value(d->thr);
    e->prev_threshold = old;
    {
        uint64_t left = 0;
        double held = ad_threshold_held(d->thr, &left);
        ad_log(AD_LOG_INFO, "%s: model %s promoted (error %.6g -> %.6g), threshold "
               "%.6g -> %.6g (shadow fit %.6g; held >= %.6g for %llu windows)", d->who, c->id,
               e->adapt.live_error, e->adapt.cand_error, old, e->threshold,
               e->adapt.cand_fit, held, (unsigned long long)left);
    }
}

/* Re-queue the continual learner's events as detector events. */
static void drain_adapt(ad_detector *d)
{
    ad_adapt_event ae;
    ad_event *e;

    while (ad_adapt_poll_event(d->ad, &ae)) {
        if (ae.type == AD_ADAPT_EV_TRAIN_READY) {
            e = det_ev_new(d, AD_EV_ADAPT_READY, ae.ts_ms);
            snprintf(e->text, sizeof(e->text), "fine-tune attempt %llu",
                     (unsigned long long)ae.attempt);
            continue;
        }
        e = det_ev_new(d, AD_EV_ADAPT, ae.ts_ms);
        e->adapt = ae;
        snprintf(e->text, sizeof(e->text), "%.150s", ae.reason);
        switch (ae.type) {
        case AD_ADAPT_EV_SHADOW:
            det_acc_shadow_reset(d);        /* a new candidate's span */
            det_lik_shadow_reset(d);
            break;
        case AD_ADAPT_EV_PROMOTED:
            promote(d, e);
            break;
        case AD_ADAPT_EV_REJECTED:
            d->st.adapt_rejected++;
            det_retire(d, ad_adapt_take_candidate(d->ad));
            det_acc_shadow_reset(d);
            det_lik_shadow_reset(d);
            ad_log(AD_LOG_INFO, "%s: candidate rejected: %s", d->who, ae.reason);
            break;
        case AD_ADAPT_EV_DRIFT:
            d->st.adapt_drift++;
            ad_log(AD_LOG_WARNING, "%s: drift from the reference model: %s (most: %s "
                   "%.3g x)", d->who, ae.reason,
                   ae.ref_feature >= 0 && ae.ref_feature < d->F && d->features &&
                   d->features[ae.ref_feature] ? d->features[ae.ref_feature] : "?",
                   ae.ref_feature_ratio);
            break;
        case AD_ADAPT_EV_TRAIN_FAILED:
            d->st.adapt_failed++;
            ad_log(AD_LOG_WARNING, "%s: fine-tune failed: %s", d->who, ae.reason);
            break;
        default:
            break;
        }
    }
}

int det_reload_shadow(ad_detector *d, ad_model *m)
{
    char why[96];
    int rc;

    snprintf(why, sizeof(why), "the reloaded model file %s replaces it", m->id);
    if (ad_adapt_abandon(d->ad, why, d->last_ts))
        drain_adapt(d);         /* the rejection retires it */
    if ((rc = ad_adapt_shadow_begin(d->ad, m, 1, d->last_ts)) != 0)
        return rc;
    ad_log(AD_LOG_INFO, "%s: new model %s evaluated in shadow", d->who, m->id);
    drain_adapt(d);
    return 0;
}

void det_pump_adapt(ad_detector *d)
{
    if (d->ad == NULL)
        return;
    drain_adapt(d);
    /* a reloaded model waited for the fine-tune in flight or the window
     * period: its shadow begins now (the fine-tune's candidate, just in
     * shadow, gives way) */
    if (d->reload_next && !d->adapt_job_out && ad_adapt_resolved(d->ad) &&
        d->phase == AD_PHASE_DETECTING && d->model != NULL) {
        ad_model *m = d->reload_next;

        d->reload_next = NULL;
        if (det_reload_shadow(d, m) != 0) {
            ad_log(AD_LOG_WARNING, "%s: shadow evaluation of new model %s not "
                   "possible: model swapped at once", d->who, m->id);
            det_swap_now(d, m, m, 0);
        }
    }
}

ad_adapt_job *ad_detector_take_adapt_job(ad_detector *d)
{
    ad_adapt_job *j;

    if (d->ad == NULL || d->model == NULL || d->adapt_job_out)
        return NULL;
    j = ad_adapt_take_job(d->ad, d->model);
    if (j)
        d->adapt_job_out = 1;
    return j;
}

int ad_detector_adapt_done(ad_detector *d, ad_model *m, const char *why)
{
    return ad_detector_adapt_done2(d, m, NULL, why);
}

int ad_detector_adapt_done2(ad_detector *d, ad_model *m, const ad_train_report *rep,
                            const char *why)
{
    int rc;

    if (d->ad == NULL || !d->adapt_job_out) {
        ad_model_free(m);
        return AD_EINVAL;
    }
    d->adapt_job_out = 0;
    rc = ad_adapt_train_done(d->ad, m, 1, m ? rep : NULL, why ? why : "fine-tune failed");
    if (rc != 0) {
        ad_model_free(m);
        if (m != NULL)
            ad_adapt_train_done(d->ad, NULL, 0, NULL, "candidate does not match");
    }
    det_pump_adapt(d);
    return rc == 0 || m != NULL ? 0 : rc;
}

int ad_detector_accept_drift(ad_detector *d, double *prev_ratio, char *err, size_t errlen)
{
    ad_adapt_stats as;

    *prev_ratio = NAN;
    if (d->ad == NULL || !d->cfg.adapt.enabled)
        return ad_errf(err, errlen, AD_EINVAL, "continual learning is off for this stream "
                       "(adapt.enabled)");
    if (d->model == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "the stream has no model yet");
    ad_adapt_get_stats(d->ad, &as);
    *prev_ratio = as.ref_ratio;
    ad_adapt_accept_drift(d->ad, d->model);
    return 0;
}

int ad_detector_set_reference(ad_detector *d, const ad_model *m)
{
    if (d->ad == NULL || m == NULL)
        return 0;
    return ad_adapt_set_reference(d->ad, m, d->model != NULL && strcmp(d->model->id, m->id) == 0);
}

int ad_detector_shadow_saved(const ad_detector *d, char *id, size_t len)
{
    return d && d->ad ? ad_adapt_shadow_saved(d->ad, id, len) : 0;
}

int ad_detector_shadow_resume(ad_detector *d, ad_model *m, char *err, size_t errlen)
{
    if (d == NULL || d->ad == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "continual learning is off");
    /* a fresh detector: its candidate-side figures (det_lik_shadow,
     * det_acc_shadow) start with the resumed span's next window */
    return ad_adapt_shadow_resume(d->ad, m, err, errlen);
}

const ad_dq *ad_detector_dq(const ad_detector *d) { return d->dq; }
const ad_adapt *ad_detector_adapt(const ad_detector *d) { return d->ad; }
