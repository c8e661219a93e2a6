/*
 * detector_dq.c - data quality inside a stream's detector: the ad_dq
 * monitor's events as detector events, the spans they flag (windows that
 * must not teach), absurd and rejected values, the monitor's creation with
 * the detector's physical ranges. See detector.h and quality.h.
 */
#include "detector_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"

/* ---- data quality ---------------------------------------------------------- */

/* Spans of conditions other than a learned range: they also stop regime
 * acceptance (a level shift raises learned-range flags that acceptance
 * must be able to see through; see DATA QUALITY in detector.h). */
static void hard_span(ad_detector *d, const ad_dq_event *ev)
{
    int i;

    if (ev->active) {
        if (d->hard_n == AD_DQ_SPANS) {
            memmove(d->hard, d->hard + 1, (AD_DQ_SPANS - 1) * sizeof(d->hard[0]));
            d->hard_n--;
        }
        d->hard[d->hard_n].seq = ev->seq;
        d->hard[d->hard_n].from = ev->since_ms < ev->start_ms ? ev->since_ms : ev->start_ms;
        d->hard[d->hard_n].to = INT64_MAX;
        d->hard_n++;
        return;
    }
    for (i = d->hard_n - 1; i >= 0; i--)
        if (d->hard[i].seq == ev->seq && d->hard[i].to == INT64_MAX) {
            d->hard[i].to = ev->end_ms;
            return;
        }
}

int det_hard_flagged(const ad_detector *d, int64_t from, int64_t to)
{
    int i;

    for (i = 0; i < d->hard_n; i++)
        if (d->hard[i].from <= to && d->hard[i].to >= from)
            return 1;
    return 0;
}

static void dq_event_cb(const ad_dq_event *ev, void *user)
{
    ad_detector *d = user;
    ad_event *e = det_ev_new(d, ev->active ? AD_EV_DQ_RAISED : AD_EV_DQ_CLEARED,
                         ev->active ? ev->start_ms : ev->end_ms);
    int learned_range = ev->check == AD_DQ_RANGE && !ev->physical;

    e->dq = *ev;
    if (ev->active)
        d->st.dq_raised++;
    if (learned_range && ev->feature >= 0 && ev->feature < d->F)
        d->lr_open[ev->feature] = (unsigned char)ev->active;
    else if (!learned_range)
        hard_span(d, ev);
    /* a condition recognised late (stuck: flagged back to `since`): the
     * windows offered as clean since then leave the normal set */
    if (ev->active && !learned_range && d->ad)
        ad_adapt_dq_since(d->ad, ev->since_ms < ev->start_ms ? ev->since_ms : ev->start_ms);
    if (ev->active && !learned_range)
        det_coll_drop_since(d, ev->since_ms < ev->start_ms ? ev->since_ms : ev->start_ms);
    ad_log(ev->active ? AD_LOG_WARNING : AD_LOG_INFO, "%s: data quality %s %s%s%s",
           d->who, ad_dq_check_name(ev->check), ev->active ? "raised" : "cleared",
           ev->feature >= 0 && ev->feature < d->F ? " on " : "",
           ev->feature >= 0 && ev->feature < d->F ? d->features[ev->feature] : "");
}

/* "its features: a, b, c" for a message (the first ~200 characters). */
static const char *det_feature_list(const ad_detector *d, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "its features:");
    int f;

    for (f = 0; f < d->F && o < len; f++)
        o += (size_t)snprintf(buf + o, len - o, "%s %s", f ? "," : "", d->features[f]);
    if (o >= len)
        snprintf(buf + len - 5, 5, "...");
    return buf;
}

int det_dq_create(ad_detector *d, const ad_detector_cfg *cfg, char *err, size_t errlen)
{
    double *lo = NULL, *hi = NULL;
    char fl[256];
    int rc, i, f;

    if (cfg->dq_n_ranges > 0 && cfg->dq_range_names) {
        lo = malloc((size_t)d->F * sizeof(double));
        hi = malloc((size_t)d->F * sizeof(double));
        if (!lo || !hi) {
            rc = ad_errf(err, errlen, AD_ENOMEM, "detector: out of memory");
            goto out;
        }
        for (f = 0; f < d->F; f++)
            lo[f] = hi[f] = NAN;
        for (i = 0; i < cfg->dq_n_ranges; i++) {
            const char *n = cfg->dq_range_names[i];
            for (f = 0; n && f < d->F; f++)
                if (strcmp(n, d->features[f]) == 0)
                    break;
            if (n && f == d->F) {
                rc = ad_errf(err, errlen, AD_EINVAL, "quality.ranges.%.128s: not a feature "
                             "of the model (%s)", n, det_feature_list(d, fl, sizeof fl));
                goto out;
            }
            if (n) {
                lo[f] = cfg->dq_range_lo ? cfg->dq_range_lo[i] : NAN;
                hi[f] = cfg->dq_range_hi ? cfg->dq_range_hi[i] : NAN;
            }
        }
    }
    rc = ad_dq_new(&d->dq, &cfg->dq, d->key, d->F, lo, hi, dq_event_cb, d, err, errlen);
out:
    free(lo);
    free(hi);
    return rc;
}

/* Would this value be rejected at windowing (scaled magnitude beyond
 * AD_SCALED_MAX)? Same arithmetic as ad_model_scale_d. */
int det_absurd_value(const ad_detector *d, int f, double x)
{
    const ad_model *m = d->model;
    double y;

    if (m == NULL || !isfinite(x))
        return 0;
    switch (m->scaler) {
    case AD_SCALER_STANDARD:
        y = (x - (double)m->scale_a[f]) / (double)m->scale_b[f];
        break;
    case AD_SCALER_MINMAX:
        y = (x - (double)m->scale_a[f]) / ((double)m->scale_b[f] - (double)m->scale_a[f]);
        break;
    default:
        y = x;
    }
    return !(fabs(y) <= AD_SCALED_MAX);
}

uint64_t det_rejected_count(const ad_detector *d)
{
    ad_stream_stats ss;

    ad_stream_get_stats(d->stream, &ss);
    /* future timestamps too (a clock ahead); late ones: det_dq_refused */
    return ss.nonfinite + ss.nonnumeric + ss.bad_feature + ss.future + ss.malformed;
}

/* Late by more than this behind the newest accepted time: a clock that
 * jumped back, not the jitter of per-feature messages around a row or a
 * redelivery (rows.max_lateness_ms + rows.max_gap_ms, or an hour). */
static int64_t late_far_ms(const ad_detector *d)
{
    int64_t g = d->cfg.stream.max_gap_ms > 0 ? d->cfg.stream.max_gap_ms : 3600000;

    return d->cfg.stream.max_lateness_ms + g;
}

int64_t det_late_clock(ad_detector *d, int64_t ts)
{
    if (d->has_arrival)
        return d->arrival_wall;
    /* no arrival clock (replay, tests): the device's own clock, moved by
     * every forward step of what it sends, late rows included, so a run
     * of late rows behind a timestamp that jumped ahead still takes time */
    if (!d->lt_has) {
        d->lt_has = 1;
        d->lt_clock = ts;
    } else if (ts > d->lt_ts) {
        d->lt_clock += ts - d->lt_ts;
    }
    d->lt_ts = ts;
    return d->lt_clock;
}

void det_dq_refused(ad_detector *d, uint64_t rej0, int64_t ts, int f)
{
    ad_stream_stats ss;
    uint64_t rej, late = 0, behind;

    if (d->dq == NULL)
        return;
    ad_stream_get_stats(d->stream, &ss);
    /* STALLED CLOCK. A duplicate (stamped at a time the stream holds) is
     * late by nothing: redeliveries, copies from overlapping
     * subscriptions or redundant gateways, a batch stamped with one ms
     * never feed the late check while the stream's newest time moves on.
     * Once it has stood still for a late window (reject_window_ms of the
     * late check's clock) with duplicates still coming, the device's
     * clock has stopped (every message stamped with one time): from then
     * on they are a late run, not silence. */
    if (ss.dup > d->dq_dup_seen) {
        int64_t now = det_late_clock(d, ts);

        if (d->dq_stall_at == INT64_MIN)
            d->dq_stall_at = now;
        else if (now - d->dq_stall_at >= d->cfg.dq.reject_window_ms)
            d->dq_dup_counted += ss.dup - d->dq_dup_seen;
        d->dq_dup_seen = ss.dup;
    }
    behind = ss.ooo + d->dq_dup_counted;
    if (ss.ooo > d->dq_ooo_only && d->max_ts != INT64_MIN && ts < d->max_ts - late_far_ms(d))
        late = ss.ooo - d->dq_ooo_only;
    /* late by less: the `late` check, which raises only when most of
     * what the stream sends is dropped so over a span of time, judged
     * against the stream's usual cadence (of rows, of samples a row) */
    if (behind > d->dq_ooo && !late)
        ad_dq_late_per_row(d->dq, d->cfg.stream.mode == AD_ASM_ROWS || ss.rows == 0 ? 1.0 :
                           (double)ss.samples / (double)ss.rows);
    ad_dq_late(d->dq, late || behind <= d->dq_ooo ? 0 : behind - d->dq_ooo, 0,
               det_late_clock(d, ts));
    if (behind > d->dq_ooo)
        d->dq_refused_only = 1;
    d->dq_ooo = behind;
    d->dq_ooo_only = ss.ooo;
    rej = det_rejected_count(d) - rej0 + late;
    if (rej > 0)
        d->dq_refused_only = 1;
    if (rej == 0)
        return;
    /* nothing accepted yet (every sample ahead of its arrival): the
     * monitor's clock is the arrival's, not 1970 */
    if (d->max_ts == INT64_MIN && d->has_arrival)
        ad_dq_advance(d->dq, d->arrival_wall);
    ad_dq_rejected(d->dq, f >= 0 && f < d->F ? f : -1, rej);
}

void det_note_accepted(ad_detector *d, int64_t ts)
{
    if (ts > d->max_ts) {
        d->max_ts = ts;
        d->dq_stall_at = INT64_MIN;      /* STALLED CLOCK: it moved */
    }
    /* REFUSED HOLE (quality.h): data again after nothing but refused
     * messages; the rows the stream holds through them (PERIOD) are made
     * up: flagged when that lasted longer than a silence may */
    if (d->dq_refused_only && d->dq != NULL && ad_dq_refused_hole(d->dq, ts))
        ad_log(AD_LOG_INFO, "%s: data again at %lld after only refused messages: the time "
               "before it flagged as a silence (no row of it feeds learning)", d->who,
               (long long)ts);
    d->dq_refused_only = 0;
}

/* A pushed sample: accepted ones feed the monitor, rejected ones count. */
void det_dq_after_sample(ad_detector *d, int rc, uint64_t rej0, int64_t ts, int f,
                            double v)
{
    if (rc == 0) {
        det_note_accepted(d, ts);
        if (d->dq == NULL)
            return;
        ad_dq_late(d->dq, 0, 1, det_late_clock(d, ts));
        if (det_absurd_value(d, f, v))
            ad_dq_rejected(d->dq, f, 1);
        else
            ad_dq_sample(d->dq, ts, f, v);
        return;
    }
    det_dq_refused(d, rej0, ts, f);
}
