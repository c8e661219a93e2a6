/*
 * train_fit.c - the fit loop (shuffled mini-batches, a time-ordered
 * validation split, early stopping), the error statistics stored with a
 * model, its training metadata JSON, and cutting rows into windows
 * (train.h). The trainer itself (layers, backprop, Adam) is train.c.
 */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "train_int.h"

/* ---- fit ----------------------------------------------------------------- */

int ad_train_fit(ad_model *m, const float *windows, size_t n,
                 const ad_train_opts *o_in, ad_train_report *rep,
                 ad_train_progress_fn progress, void *ud,
                 const volatile int *cancel, char *err, size_t errlen)
{
    ad_train_opts o;
    ad_train_report r;
    ad_trainer *t = NULL;
    float *best = NULL, *batch = NULL;
    size_t *perm = NULL;
    size_t n_val = 0, n_train, gap, wsz, i;
    uint64_t rs;
    double t0 = 0.0, best_mon = INFINITY, best_train = NAN, best_val = NAN;
    double last_train = NAN, last_val = NAN, tot_windows = 0.0, tot_train_s = 0.0;
    int epoch, wait = 0, rc = 0, stop = 0;

    if (o_in != NULL)
        o = *o_in;
    else
        ad_train_opts_default(&o);
    memset(&r, 0, sizeof(r));
    r.val_loss = NAN;
    r.train_loss = NAN;
    if (m == NULL || windows == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "train: no model or no data");
    if (o.batch_size < 1 || o.epochs < 1 || !(o.lr > 0.0f) ||
        !(o.val_frac >= 0.0f && o.val_frac < 1.0f) || o.val_gap < 0 ||
        o.patience < 0 || !(o.beta1 >= 0.0f && o.beta1 < 1.0f) ||
        !(o.beta2 >= 0.0f && o.beta2 < 1.0f) || !(o.eps > 0.0f) ||
        !(o.weight_decay >= 0.0f) || !(o.clip_norm >= 0.0f))
        return ad_errf(err, errlen, AD_EINVAL,
                       "train: invalid options (batch %d, epochs %d, lr %g, "
                       "val_frac %g)", o.batch_size, o.epochs, (double)o.lr,
                       (double)o.val_frac);
    if (n < 1)
        return ad_errf(err, errlen, AD_EINVAL,
                       "train: no window to train on (need at least %d rows)",
                       m->window);
    gap = (size_t)o.val_gap;
    if (o.val_frac > 0.0f)
        n_val = (size_t)llround((double)o.val_frac * (double)n);
    if (n_val > 0 && n < n_val + gap + 1)
        gap = 0;
    if (n_val > 0 && n < n_val + 1)
        n_val = n - 1;
    n_train = n - n_val - (n_val > 0 ? gap : 0);
    r.n_train = n_train;
    r.n_val = n_val;
    if ((size_t)o.batch_size > n_train)
        o.batch_size = (int)n_train;

    wsz = (size_t)m->window * (size_t)m->n_features;
    t = ad_trainer_new(m, &o);
    best = malloc(sizeof(float) * (m->n_params ? m->n_params : 1));
    batch = malloc(sizeof(float) * wsz * (size_t)o.batch_size);
    perm = malloc(sizeof(size_t) * n_train);
    if (t == NULL || best == NULL || batch == NULL || perm == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "train: out of memory");
        goto done;
    }
    memcpy(best, m->params, sizeof(float) * m->n_params);
    for (i = 0; i < n_train; i++)
        perm[i] = i;
    rs = o.seed ^ 0xA0761D6478BD642Full;
    t0 = now_s();

    for (epoch = 1; epoch <= o.epochs && !stop; epoch++) {
        ad_train_epoch ep;
        double e0 = now_s(), sum = 0.0, mon, e_train_s;
        size_t done_w = 0;

        if (o.shuffle)
            for (i = n_train; i > 1; i--) {
                size_t j = rng_below(&rs, i), tmp = perm[i - 1];
                perm[i - 1] = perm[j];
                perm[j] = tmp;
            }
        for (i = 0; i < n_train; i += (size_t)o.batch_size) {
            int B = (int)(n_train - i < (size_t)o.batch_size ? n_train - i
                                                             : (size_t)o.batch_size);
            double l;
            int b;
            if ((cancel != NULL && *cancel) ||
                (o.max_seconds > 0.0 && now_s() - t0 > o.max_seconds)) {
                r.cancelled = 1;
                stop = 1;
                break;
            }
            for (b = 0; b < B; b++)
                memcpy(batch + (size_t)b * wsz, windows + perm[i + b] * wsz,
                       sizeof(float) * wsz);
            rc = ad_trainer_step(t, batch, B, &l);
            if (rc != 0) {
                ad_errf(err, errlen, rc, "train: loss is not finite at epoch %d "
                        "(diverged; try a lower learning rate)", epoch);
                goto restore;
            }
            sum += l * B;
            done_w += (size_t)B;
        }
        if (stop)
            break;
        e_train_s = now_s() - e0;
        last_train = sum / (double)n_train;
        last_val = NAN;
        if (n_val > 0) {
            rc = ad_trainer_eval(t, windows + (n - n_val) * wsz, n_val, &last_val);
            if (rc != 0) {
                ad_errf(err, errlen, rc, "train: validation loss is not finite "
                        "at epoch %d", epoch);
                goto restore;
            }
        }
        mon = n_val > 0 ? last_val : last_train;
        r.epochs_run = epoch;
        tot_windows += (double)done_w;
        tot_train_s += e_train_s;
        memset(&ep, 0, sizeof(ep));
        ep.epoch = epoch;
        ep.epochs = o.epochs;
        ep.loss = last_train;
        ep.val_loss = last_val;
        ep.improved = mon < best_mon - o.min_delta;
        if (ep.improved) {
            best_mon = mon;
            best_train = last_train;
            best_val = last_val;
            r.best_epoch = epoch;
            memcpy(best, m->params, sizeof(float) * m->n_params);
            wait = 0;
        } else {
            wait++;
        }
        ep.best_val_loss = best_mon;
        ep.seconds = now_s() - e0;
        ep.windows_per_s = e_train_s > 0.0 ? (double)done_w / e_train_s : 0.0;
        if (progress != NULL && progress(&ep, ud) != 0) {
            r.cancelled = 1;
            stop = 1;
        }
        if (o.patience > 0 && wait >= o.patience) {
            r.stopped_early = 1;
            stop = 1;
        }
    }
    if (o.restore_best && r.best_epoch > 0) {
        memcpy(m->params, best, sizeof(float) * m->n_params);
        r.train_loss = best_train;
        r.val_loss = best_val;
    } else {
        r.train_loss = last_train;
        r.val_loss = last_val;
        if (r.best_epoch == 0 && o.restore_best)   /* cancelled before 1 epoch */
            memcpy(m->params, best, sizeof(float) * m->n_params);
    }
    goto done;
restore:
    memcpy(m->params, best, sizeof(float) * m->n_params);
    r.train_loss = best_train;
    r.val_loss = best_val;
done:
    r.seconds = t0 > 0.0 ? now_s() - t0 : 0.0;
    r.windows_per_s = tot_train_s > 0.0 ? tot_windows / tot_train_s : 0.0;
    if (rep != NULL)
        *rep = r;
    ad_trainer_free(t);
    free(best);
    free(batch);
    free(perm);
    return rc;
}

/* ---- error statistics ---------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double quantile(const float *sorted, size_t n, double q)
{
    double pos = q * (double)(n - 1), frac;
    size_t lo = (size_t)floor(pos), hi;
    if (lo >= n - 1)
        return sorted[n - 1];
    hi = lo + 1;
    frac = pos - (double)lo;
    return (double)sorted[lo] + ((double)sorted[hi] - (double)sorted[lo]) * frac;
}

int ad_train_error_stats(const ad_model *m, const float *windows, size_t n,
                         ad_metric metric, ad_error_stats *out, float *errors)
{
    ad_train_opts o;
    ad_trainer *t;
    float *e = NULL, *y = NULL;
    const size_t wsz = (size_t)m->window * (size_t)m->n_features;
    double sum = 0.0, sq = 0.0, mean;
    size_t i;
    int rc = 0;

    if (m == NULL || windows == NULL || n == 0 || out == NULL)
        return AD_EINVAL;
    ad_train_opts_default(&o);
    o.batch_size = 64;
    /* The trainer only reads the model in a forward pass. */
    t = ad_trainer_new((ad_model *)m, &o);
    e = malloc(sizeof(float) * n);
    y = malloc(sizeof(float) * wsz * (size_t)o.batch_size);
    if (t == NULL || e == NULL || y == NULL) {
        rc = AD_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i += (size_t)o.batch_size) {
        int B = (int)(n - i < (size_t)o.batch_size ? n - i : (size_t)o.batch_size), b;
        rc = ad_trainer_forward(t, windows + i * wsz, B, y, NULL);
        if (rc != 0 && rc != AD_ENONFINITE)
            goto done;
        rc = 0;
        for (b = 0; b < B; b++) {
            const float *xr = windows + (i + (size_t)b) * wsz;
            const float *yr = y + (size_t)b * wsz;
            e[i + (size_t)b] = ad_recon_score(xr, yr, m->window, m->n_features,
                                              metric, NULL);
        }
    }
    for (i = 0; i < n; i++) {
        if (!isfinite(e[i])) {
            rc = AD_ENONFINITE;
            goto done;
        }
        sum += e[i];
    }
    mean = sum / (double)n;
    for (i = 0; i < n; i++)
        sq += ((double)e[i] - mean) * ((double)e[i] - mean);
    if (errors != NULL)
        memcpy(errors, e, sizeof(float) * n);
    qsort(e, n, sizeof(float), cmp_float);
    memset(out, 0, sizeof(*out));
    out->metric = metric;
    out->n = n;
    out->mean = mean;
    out->std = sqrt(sq / (double)n);
    out->q90 = quantile(e, n, 0.90);
    out->q95 = quantile(e, n, 0.95);
    out->q99 = quantile(e, n, 0.99);
    out->q999 = quantile(e, n, 0.999);
    out->max = e[n - 1];
done:
    ad_trainer_free(t);
    free(e);
    free(y);
    return rc;
}

/* ---- metadata JSON ------------------------------------------------------- */

/* A JSON number, or null when not finite. */
static void sb_num(ad_buf *s, const char *key, double v, int comma)
{
    if (isfinite(v))
        ad_buf_printf(s, "%s\"%s\":%.9g", comma ? "," : "", key, v);
    else
        ad_buf_printf(s, "%s\"%s\":null", comma ? "," : "", key);
}

/* A float setting: 7 significant digits, so 0.001f prints as 0.001. */
static void sb_fnum(ad_buf *s, const char *key, float v, int comma)
{
    if (isfinite(v))
        ad_buf_printf(s, "%s\"%s\":%.7g", comma ? "," : "", key, (double)v);
    else
        ad_buf_printf(s, "%s\"%s\":null", comma ? "," : "", key);
}

char *ad_train_meta_json(const ad_train_opts *o, const ad_train_report *rep,
                         const ad_error_stats *st)
{
    ad_buf s = { 0 };
    ad_train_opts def;

    if (o == NULL) {
        ad_train_opts_default(&def);
        o = &def;
    }
    ad_buf_printf(&s, "{\"loss\":\"%s\",\"optimizer\":{\"name\":\"%s\"",
                  ad_loss_name(o->loss) ? ad_loss_name(o->loss) : "?",
              o->weight_decay > 0.0f ? "adamw" : "adam");
    sb_fnum(&s, "lr", o->lr, 1);
    sb_fnum(&s, "beta1", o->beta1, 1);
    sb_fnum(&s, "beta2", o->beta2, 1);
    sb_fnum(&s, "eps", o->eps, 1);
    sb_fnum(&s, "weight_decay", o->weight_decay, 1);
    sb_fnum(&s, "clip_norm", o->clip_norm, 1);
    ad_buf_printf(&s, "},\"batch_size\":%d,\"max_epochs\":%d,\"patience\":%d",
              o->batch_size, o->epochs, o->patience);
    sb_fnum(&s, "val_frac", o->val_frac, 1);
    ad_buf_printf(&s, ",\"seed\":%llu", (unsigned long long)o->seed);
    if (rep != NULL) {
        ad_buf_printf(&s, ",\"n_train\":%zu,\"n_val\":%zu,\"epochs_run\":%d,"
                  "\"best_epoch\":%d,\"stopped_early\":%s", rep->n_train,
                  rep->n_val, rep->epochs_run, rep->best_epoch,
                  rep->stopped_early ? "true" : "false");
        sb_num(&s, "train_loss", rep->train_loss, 1);
        sb_num(&s, "val_loss", rep->val_loss, 1);
        sb_num(&s, "seconds", rep->seconds, 1);
    }
    if (st != NULL) {
        ad_buf_printf(&s, ",\"error\":{\"metric\":\"%s\",\"n\":%zu",
                  st->metric == AD_METRIC_PEAK ? "peak" : st->metric == AD_METRIC_MAE ? "mae" : "mse",
                  st->n);
        sb_num(&s, "mean", st->mean, 1);
        sb_num(&s, "std", st->std, 1);
        sb_num(&s, "q90", st->q90, 1);
        sb_num(&s, "q95", st->q95, 1);
        sb_num(&s, "q99", st->q99, 1);
        sb_num(&s, "q999", st->q999, 1);
        sb_num(&s, "max", st->max, 1);
        ad_buf_printf(&s, "}");
    }
    ad_buf_printf(&s, "}");
    if (s.oom) {
        ad_buf_free(&s);
        return NULL;
    }
    return s.s;
}

/* ---- windows ------------------------------------------------------------- */

size_t ad_train_cut_windows(const float *data, size_t rows, int F, int T,
                            int hop, float *out)
{
    size_t n, k, wsz;

    if (F < 1 || T < 1 || hop < 1 || rows < (size_t)T)
        return 0;
    n = (rows - (size_t)T) / (size_t)hop + 1;
    if (out == NULL || data == NULL)
        return n;
    wsz = (size_t)T * (size_t)F;
    for (k = 0; k < n; k++)
        memcpy(out + k * wsz, data + k * (size_t)hop * (size_t)F,
               sizeof(float) * wsz);
    return n;
}
