/*
 * detector_train.c - a stream's training jobs (collected windows to a model
 * on a worker), model swaps (trained, promoted or set by a reload) and the
 * recalibration that follows. See detector.h TRAINING.
 */
#include "detector_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"

/* ---- training --------------------------------------------------------------- */

/* Mean and population std of column f of rows (n, F), in double. A column
 * whose std is at most COL_CONSTANT is constant: the bootstrap scaler
 * gives it a scale of 1 (as sklearn's StandardScaler does) and the
 * collection's warning names it. */
#define COL_CONSTANT 1e-12
static void col_stats(const float *rows, size_t n, size_t F, size_t f, double *mean,
                      double *sd)
{
    double s = 0, s2 = 0;
    size_t r;

    for (r = 0; r < n; r++)
        s += rows[r * F + f];
    s /= (double)n;
    for (r = 0; r < n; r++) {
        double dd = rows[r * F + f] - s;
        s2 += dd * dd;
    }
    *mean = s;
    *sd = sqrt(s2 / (double)n);
}

void det_train_note_constant(ad_detector *d, ad_event *e)
{
    ad_buf b = { 0 };
    size_t tl;
    int f, n = 0;

    if (d->coll_rows == 0)
        return;
    for (f = 0; f < d->F; f++) {
        double mean, sd;
        col_stats(d->coll, d->coll_rows, (size_t)d->F, (size_t)f, &mean, &sd);
        if (sd > COL_CONSTANT)
            continue;
        ad_buf_printf(&b, "%s'%s' (always %.6g)", n ? ", " : "",
                      d->features && d->features[f] ? d->features[f] : "?", mean);
        n++;
    }
    if (n == 0)
        return;
    /* a constant feature carries no information: the model learns to give
     * it back exactly (all of the training error is 0 when every feature
     * is); bootstrap's scaler also gives it a scale of 1, so a later change
     * of it is scored in raw units. Told once per training, when the
     * collection is complete (the offline anomalyd train says the same) */
    ad_log(AD_LOG_WARNING, "%s: training (%s) on %zu rows: %s %s %s constant in the "
           "training rows: %s no information%s%s",
           d->who, ad_train_mode_name(d->cfg.training), d->coll_rows,
           n == 1 ? "feature" : "features", b.s ? b.s : "", n == 1 ? "is" : "are",
           n == 1 ? "it carries" : "they carry",
           d->cfg.training == AD_TRAIN_BOOTSTRAP
               ? (n == 1 ? "; the model reproduces it exactly with a scale of 1, so a later "
                           "change of it is scored in raw units"
                         : "; the model reproduces them exactly with a scale of 1, so a "
                           "later change of them is scored in raw units")
               : "",
           n == d->F ? ". Every feature is constant: the model learns nothing to compare "
                       "live data with" : "");
    tl = strlen(e->text);
    if (tl + 1 < sizeof(e->text))
        snprintf(e->text + tl, sizeof(e->text) - tl, "; constant: %s", b.s ? b.s : "");
    ad_buf_free(&b);
}

void ad_train_job_free(ad_train_job *j)
{
    int f;

    if (j == NULL)
        return;
    free(j->rows);
    free(j->brk);
    if (j->features) {
        for (f = 0; f < j->F; f++)
            free(j->features[f]);
        free(j->features);
    }
    ad_model_free(j->init);
    free(j);
}

ad_train_job *ad_detector_take_train_job(ad_detector *d)
{
    ad_train_job *j;
    size_t bytes;
    int f;

    if (d->phase != AD_PHASE_TRAINING || d->job_taken)
        return NULL;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->mode = d->cfg.training;
    j->T = d->T;
    j->F = d->F;
    j->n_rows = d->coll_rows;
    bytes = d->coll_rows * (size_t)d->F * sizeof(float);
    j->rows = malloc(bytes ? bytes : 1);
    j->features = calloc((size_t)d->F, sizeof(char *));
    if (j->rows == NULL || j->features == NULL)
        goto fail;
    memcpy(j->rows, d->coll, bytes);
    j->brk = malloc(d->coll_rows ? d->coll_rows : 1);
    if (j->brk == NULL)
        goto fail;
    if (d->coll_rows)
        memcpy(j->brk, d->coll_brk, d->coll_rows);
    for (f = 0; f < d->F; f++)
        if ((j->features[f] = strdup(d->features[f])) == NULL)
            goto fail;
    if (j->mode == AD_TRAIN_FINETUNE && d->model) {
        j->init = ad_model_clone(d->model);
        if (j->init == NULL)
            goto fail;
    }
    j->metric = d->cfg.metric;
    j->epochs = d->cfg.train_epochs;
    j->boot_units = d->cfg.boot_units;
    j->seed = d->cfg.train_seed;
    j->gen = d->gen;
    d->job_taken = 1;
    return j;
fail:
    ad_train_job_free(j);
    return NULL;
}

/* Whether the window of job's rows starting at row i lies in one run (no
 * row after its first starts a run). */
static int job_window_whole(const ad_train_job *job, size_t i)
{
    size_t k;

    if (job->brk == NULL)
        return 1;
    for (k = i + 1; k < i + (size_t)job->T; k++)
        if (job->brk[k])
            return 0;
    return 1;
}

/* The windows of job's rows inside one run: their count; cut into win
 * (stride 1, from all's cut windows, in place) when win is not NULL. */
static size_t job_windows(const ad_train_job *job, size_t all, float *win)
{
    size_t i, n = 0, wsz = (size_t)job->T * (size_t)job->F;

    for (i = 0; i < all; i++) {
        if (!job_window_whole(job, i))
            continue;
        if (win != NULL && n != i)
            memmove(win + n * wsz, win + i * wsz, wsz * sizeof(float));
        n++;
    }
    return n;
}

int ad_train_job_run(const ad_train_job *job, ad_model **out,
                     const volatile int *cancel, char *err, size_t errlen)
{
    ad_model *m = NULL;
    float *scaled = NULL, *win = NULL, *mean = NULL, *sd = NULL;
    size_t n, all, F = (size_t)job->F, f, bytes;
    ad_train_opts o;
    ad_train_report rep;
    ad_error_stats es;
    char *meta;
    void *buf = NULL;
    size_t len;
    int rc;

    *out = NULL;
    all = ad_train_cut_windows(NULL, job->n_rows, job->F, job->T, 1, NULL);
    n = job_windows(job, all, NULL);
    if (n < 1)
        return ad_errf(err, errlen, AD_EINVAL, "training: %zu rows, no %d in a row",
                       job->n_rows, job->T);
    if (job->mode == AD_TRAIN_BOOTSTRAP) {
        ad_layer_spec L[4] = {
            { AD_LAYER_LSTM, job->boot_units, AD_ACT_TANH, 0 },
            { AD_LAYER_REPEAT_VECTOR, job->T, AD_ACT_LINEAR, 0 },
            { AD_LAYER_LSTM, job->boot_units, AD_ACT_TANH, 1 },
            { AD_LAYER_TD_DENSE, job->F, AD_ACT_LINEAR, 0 },
        };
        rc = ad_model_create(&m, job->T, job->F, L, 4, err, errlen);
        if (rc)
            goto fail;
        if ((rc = ad_model_set_features(m, (const char *const *)job->features, job->F)) != 0)
            goto fail;
        /* Standard scaler fitted on the collected rows (population std,
         * like sklearn's StandardScaler); a constant feature gets std 1. */
        mean = calloc(F, sizeof(float));
        sd = calloc(F, sizeof(float));
        if (!mean || !sd) {
            rc = AD_ENOMEM;
            goto fail;
        }
        for (f = 0; f < F; f++) {
            double s, s2;
            col_stats(job->rows, job->n_rows, F, f, &s, &s2);
            mean[f] = (float)s;
            sd[f] = s2 > COL_CONSTANT ? (float)s2 : 1.0f;
        }
        if ((rc = ad_model_set_scaler(m, AD_SCALER_STANDARD, mean, sd)) != 0)
            goto fail;
        ad_train_init_weights(m, job->seed);
    } else {
        if (job->init == NULL) {
            rc = ad_errf(err, errlen, AD_EINVAL, "training finetune: no initial model");
            goto fail;
        }
        m = ad_model_clone(job->init);
        if (m == NULL) {
            rc = AD_ENOMEM;
            goto fail;
        }
    }
    bytes = job->n_rows * F * sizeof(float);
    scaled = malloc(bytes);
    win = malloc(all * (size_t)job->T * F * sizeof(float));
    if (!scaled || !win) {
        rc = AD_ENOMEM;
        goto fail;
    }
    ad_model_scale(m, job->rows, scaled, job->n_rows);
    ad_train_cut_windows(scaled, job->n_rows, job->F, job->T, 1, win);
    job_windows(job, all, win);
    ad_train_opts_default(&o);
    o.epochs = job->epochs;
    o.loss = job->metric == AD_METRIC_MSE ? AD_LOSS_MSE : AD_LOSS_MAE;
    o.seed = job->seed;
    o.val_gap = job->T - 1;
    if (n < 20)
        o.val_frac = 0;
    rc = ad_train_fit(m, win, n, &o, &rep, NULL, NULL, cancel, err, errlen);
    if (rc)
        goto fail;
    if (rep.cancelled && cancel && *cancel) {
        rc = ad_errf(err, errlen, AD_EINVAL, "training cancelled");
        goto fail;
    }
    rc = ad_train_error_stats(m, win, n, job->metric, &es, NULL);
    if (rc) {
        ad_errf(err, errlen, rc, "training: error statistics failed");
        goto fail;
    }
    meta = ad_train_meta_json(&o, &rep, &es);
    if (meta == NULL) {
        rc = AD_ENOMEM;
        goto fail;
    }
    free(m->training);
    m->training = meta;
    /* Serialising gives the model its identity (saved calibration refers
     * to it). */
    if (ad_model_serialize(m, &buf, &len) == 0)
        free(buf);
    free(scaled);
    free(win);
    free(mean);
    free(sd);
    *out = m;
    return 0;
fail:
    if (rc == AD_ENOMEM)
        ad_errf(err, errlen, rc, "training: out of memory");
    free(scaled);
    free(win);
    free(mean);
    free(sd);
    ad_model_free(m);
    return rc;
}

static int model_matches(const ad_detector *d, const ad_model *m)
{
    return m->window == d->T && m->n_features == d->F;
}

/* A new model: new generation, fresh ring, recalibration. */
void det_swap_model(ad_detector *d, const ad_model *m, ad_model *owned)
{
    /* a batch in flight may still read the model it replaces */
    if (d->owned && d->owned != owned)
        det_retire(d, d->owned);
    d->owned = owned;
    /* any swap supersedes a reloaded model still waiting for its shadow */
    ad_model_free(d->reload_next);
    d->reload_next = NULL;
    d->model = m;
    ad_window_set_model(d->win, m);       /* held rows rescaled for m */
    d->gen++;
}

void det_restart_calibration(ad_detector *d, int64_t ts)
{
    /* an open alert ends with its cleared event, never silently */
    ad_detector_close_alert(d, AD_CLOSE_MODEL_CHANGED);
    ad_threshold_reset(d->thr);
    ad_alerter_reset(d->alert);
    det_level_reset(d);
    det_band_reset(d);
    ad_likelihood_reset(d->lik);     /* a new model scores on another scale */
    ad_likelihood_set_floor(d->lik, 0);
    det_acc_reset(d);
    /* levels of another model's scores; the same model recalibrated (an
     * operator's recalibrate, a failed retrain) keeps them */
    if (d->season && d->season_gen != d->gen)
        ad_season_reset(d->season);
    d->season_gen = d->gen;
    d->fail_reported = 0;
    d->fail_unreported = 0;
    d->has_smooth = 0;
    d->has_calib_start = 0;
    d->cq_len = 0;
    d->calib_guard = 0;              /* another model: another scale */
    det_norm_reset(d);               /* scales learned again */
    /* a wait under way ends, said: its "held" event is never left open */
    det_calib_hold(d, ts, "restarted");
    d->calib_model_out = 0;
    d->calib_held = 0;
    det_calib_dq_reset(d);
    d->mg_model = NULL;              /* guard taken again: a new model may reuse a freed address */
    det_set_phase(d, AD_PHASE_CALIBRATING, ts);
    if (det_fit_without_scores(d) > 0) {
        ad_event *e = det_ev_new(d, AD_EV_CALIBRATED, ts);
        e->threshold = ad_threshold_value(d->thr);
        det_set_phase(d, AD_PHASE_DETECTING, ts);
    }
}

int ad_detector_train_done(ad_detector *d, ad_model *m, int take, const char *why)
{
    int64_t ts = d->last_ts;

    if (d->phase != AD_PHASE_TRAINING)
        return AD_EINVAL;
    if (m != NULL && !model_matches(d, m))
        return AD_EINVAL;
    if (m != NULL && d->cfg.thr.method == AD_THR_MODEL &&
        det_check_model_metric(&d->cfg, m, NULL, 0) != 0)
        return AD_EINVAL;
    d->job_taken = 0;
    if (m == NULL) {
        ad_event *e = det_ev_new(d, AD_EV_TRAIN_FAILED, ts);
        snprintf(e->text, sizeof(e->text), "%s", why ? why : "training failed");
        d->st.train_failures++;
        ad_log(AD_LOG_WARNING, "%s: training failed: %s", d->who, e->text);
        if (d->cfg.training == AD_TRAIN_BOOTSTRAP || d->model == NULL) {
            d->coll_rows = 0;
            d->coll_run = 0;
            d->st.windows_collected = 0;
            det_set_phase(d, AD_PHASE_COLLECTING, ts);
            return 0;
        }
        ad_window_reset(d->win);
        det_restart_calibration(d, ts);
        return 0;
    }
    det_swap_model(d, m, take ? m : NULL);
    if (d->ad)                      /* trained on this stream: its reference */
        ad_adapt_set_reference(d->ad, m, 1);
    /* Calibrate on windows the model did not train on: start from an empty
     * ring, so every calibration window is made of rows that came after. */
    ad_window_reset(d->win);
    free(d->coll);
    d->coll = NULL;
    free(d->coll_ts);
    d->coll_ts = NULL;
    free(d->coll_brk);
    d->coll_brk = NULL;
    d->coll_cap = 0;
    d->coll_rows = 0;
    d->coll_run = 0;
    det_restart_calibration(d, ts);
    return 0;
}

int ad_detector_set_model(ad_detector *d, const ad_model *m, int keep_threshold,
                          char *err, size_t errlen)
{
    if (m == NULL || !model_matches(d, m))
        return ad_errf(err, errlen, AD_EINVAL,
                       "stream %s: model window/features differ (%d/%d expected)",
                       d->key, d->T, d->F);
    if (d->cfg.thr.method == AD_THR_MODEL) {
        int rc = det_check_model_metric(&d->cfg, m, err, errlen);
        if (rc)
            return rc;
    }
    if (d->ad && d->cfg.adapt.reload_shadow && d->phase == AD_PHASE_DETECTING &&
        d->model != NULL) {
        ad_model *c = ad_model_clone(m);

        if (c != NULL && (d->adapt_job_out || !ad_adapt_resolved(d->ad))) {
            /* a fine-tune is out on a worker, or the shadow span is data
             * time not known yet: the live model stays until then */
            const char *until = d->adapt_job_out ? "the fine-tune in flight"
                                : "the stream's window period (adapt settings in data time)";
            char why[200];
            ad_event *e;

            ad_model_free(d->reload_next);
            d->reload_next = c;
            ad_log(AD_LOG_INFO, "%s: new model %s waits for %s, then is evaluated in "
                   "shadow", d->who, m->id, until);
            snprintf(why, sizeof(why), "model file %s waits for %s, then is evaluated in "
                     "shadow; the live model runs on", m->id, until);
            e = det_ev_new(d, AD_EV_ADAPT, d->last_ts);
            ad_adapt_waiting_event(d->ad, &e->adapt, m->id, why, d->last_ts);
            snprintf(e->text, sizeof(e->text), "%.150s", why);
            return AD_DETECTOR_SHADOW;
        }
        if (c != NULL && det_reload_shadow(d, c) == 0) {
            ad_model_free(d->reload_next);      /* an older one waiting: this one */
            d->reload_next = NULL;
            return AD_DETECTOR_SHADOW;
        }
        ad_model_free(c);
        ad_log(AD_LOG_WARNING, "%s: shadow evaluation not possible%s: model swapped "
               "at once", d->who, c == NULL ? " (out of memory)" : "");
    }
    det_swap_now(d, m, NULL, keep_threshold);
    return 0;
}

void det_swap_now(ad_detector *d, const ad_model *m, ad_model *owned, int keep_threshold)
{
    int restart = (!keep_threshold || !ad_threshold_fitted(d->thr)) &&
                  (d->phase == AD_PHASE_CALIBRATING || d->phase == AD_PHASE_DETECTING);

    /* an open alert ends first: its cleared event names the model that
     * scored it */
    if (restart)
        ad_detector_close_alert(d, AD_CLOSE_MODEL_CHANGED);
    det_swap_model(d, m, owned);
    if (d->ad)                      /* the operator's model: the reference */
        ad_adapt_set_reference(d->ad, m, 1);
    d->pw_len = 0;
    if (restart)
        det_restart_calibration(d, d->last_ts);
}
