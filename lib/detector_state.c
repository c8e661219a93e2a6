/*
 * detector_state.c - a stream's state as JSON (save / restore, also the
 * open alert across a restart or a partition move), closing an alert for a
 * reason, events as JSON and operator feedback (false alarm, recalibrate).
 */
#include "detector_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ad.h"

/* The daemon's time zone for the seasonal level's local clock: where it
 * comes from (TZ, or the /etc/localtime link) and its UTC offsets in
 * mid-January and mid-July 2025 (so a zone with daylight saving differs
 * from one without; tzname and timezone would depend on the last time
 * converted, and name several zones alike). */
static void zone_id(char *buf, size_t n)
{
    static const time_t at[2] = { 1736942400, 1752580800 };   /* 2025-01-15, 07-15 */
    const char *tz = getenv("TZ");
    char link[256] = "";
    long off[2] = { 0, 0 };
    struct tm tm;
    ssize_t l;
    int i;

    tzset();
    if (tz == NULL && (l = readlink("/etc/localtime", link, sizeof(link) - 1)) > 0)
        link[l] = '\0';
    for (i = 0; i < 2; i++)
        if (localtime_r(&at[i], &tm) != NULL)
            off[i] = (long)tm.tm_gmtoff;
    snprintf(buf, n, "%.60s %+ld %+ld", tz ? tz : link, off[0], off[1]);
}

/* ---- save / restore ---------------------------------------------------------- */

/* A recurrence's onset being judged (alert.accept_onset, detector.c
 * acc_onset) as "onset" of the saved chain acc: {"run":n,"since_ms":ts,
 * "max":x,"max_ms":t,"threshold":thr,"scores":[...]}, the windows withheld
 * so far in a row (-1: judged, not a recurrence, until a window under the
 * threshold), the first one's time, their highest score and its time, the
 * threshold the first was over and their scores; nothing when no run is
 * under way. 0, or -1 out of memory. */
static int onset_save(const ad_detector *d, cJSON *acc)
{
    cJSON *o, *a = NULL;
    int i, n = d->acc_onset_run < d->onset_cap ? d->acc_onset_run : d->onset_cap;

    if (d->acc_onset_run == 0)
        return 0;
    if ((o = cJSON_AddObjectToObject(acc, "onset")) == NULL ||
        !cJSON_AddNumberToObject(o, "run", d->acc_onset_run) ||
        (d->acc_onset_run > 0 &&
         (!cJSON_AddNumberToObject(o, "since_ms", (double)d->acc_onset_ts) ||
          !cJSON_AddNumberToObject(o, "max", d->acc_onset_max) ||
          !cJSON_AddNumberToObject(o, "max_ms", (double)d->acc_onset_peak_ms) ||
          !cJSON_AddNumberToObject(o, "threshold", d->acc_onset_thr) ||
          (a = cJSON_AddArrayToObject(o, "scores")) == NULL)))
        return -1;
    for (i = 0; d->acc_onset_run > 0 && i < n; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(d->onset_s[i])))
            return -1;
    return 0;
}

/* The saved onset run (onset_save; o NULL: none, or a state from before
 * it was kept) continued after the chain it belongs to was restored: the
 * wait goes on from the windows withheld before the save, the occurrence
 * judged at the window it would have been without the restart. Only from
 * a hand-over (handover: a stop, an eviction, a partition move: nothing
 * consumed after it): after a save in the middle of the stream (kill -9)
 * the windows since are lost, and whether the run went on, ended or was
 * judged is not known; the wait starts again, as before the run was kept.
 * A chain not restored (damaged) has no run; a damaged run is dropped with
 * a warning (the wait starts again at the next window over the
 * threshold). */
static void onset_restore(ad_detector *d, const cJSON *o, int handover)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "run");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "since_ms");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "max");

    d->acc_onset_run = 0;
    if (o == NULL || d->acc_len == 0 || !handover)
        return;
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(r) || !(r->valuedouble >= -1) ||
        !(r->valuedouble <= 1e6) || r->valuedouble != floor(r->valuedouble) ||
        (r->valuedouble > 0 &&
         (!cJSON_IsNumber(t) || !(fabs(t->valuedouble) <= 1e15) ||
          !cJSON_IsNumber(m) || !isfinite(m->valuedouble)))) {
        ad_log(AD_LOG_WARNING, "%s: saved state: alert.accept.onset is damaged: the "
               "recurrence's onset is judged again from the next window", d->who);
        return;
    }
    d->acc_onset_run = (int)r->valuedouble;
    if (d->acc_onset_run > 0) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scores"), *x;
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "threshold");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "max_ms");
        int n = 0, bad = sc != NULL && (!cJSON_IsArray(sc) ||
                                        cJSON_GetArraySize(sc) > d->acc_onset_run);

        d->acc_onset_ts = (int64_t)t->valuedouble;
        d->acc_onset_max = m->valuedouble;
        /* the threshold and the peak's time (an alert raised from the
         * windows: since the first, over it); none (an older state): the
         * threshold now, the first window's */
        d->acc_onset_thr = cJSON_IsNumber(th) && th->valuedouble > 0 &&
                           isfinite(th->valuedouble) ? th->valuedouble
                                                     : ad_threshold_value(d->thr);
        d->acc_onset_peak_ms = cJSON_IsNumber(mt) && fabs(mt->valuedouble) <= 1e15 ?
                               (int64_t)mt->valuedouble : d->acc_onset_ts;
        if (!bad && sc != NULL)
            cJSON_ArrayForEach(x, sc)
                if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
                    bad = 1;
        if (bad)
            ad_log(AD_LOG_WARNING, "%s: saved state: alert.accept.onset.scores is damaged: "
                   "the run is judged at its highest score", d->who);
        /* the run's scores (its level, detector.c run_level); none (an
         * older state) or damaged: its highest, as it was judged then */
        if (sc != NULL && !bad) {
            cJSON_ArrayForEach(x, sc)
                det_run_keep(d, &d->onset_s, &d->onset_cap, n++, x->valuedouble);
        }
        while (n < d->acc_onset_run)
            det_run_keep(d, &d->onset_s, &d->onset_cap, n++, d->acc_onset_max);
    }
}

/* The "alert" sub-object: the alerter (alert.h ad_alerter_save), the data
 * time of the last row, the calibration guard and how far acceptance has
 * got ("accept", when a chain is in progress, with a recurrence's onset
 * being judged; handover: nothing is consumed after this save). */
/* ROWS mode: the values of the last row ("last_row": a number a feature,
 * null for one it lacked) when it is the one consumed last: the restored
 * stream tells a copy of it delivered again (a retained message at the
 * resubscription) from a device clock that stopped (stream_resume). */
static int last_row_save(const ad_detector *d, cJSON *a)
{
    double v[AD_MAX_FEATURES];
    unsigned char in[AD_MAX_FEATURES];
    int64_t ts;
    cJSON *r;

    if (d->last_ts == 0 || d->F > AD_MAX_FEATURES ||
        !ad_stream_last_row(d->stream, &ts, v, in) || ts != d->last_ts)
        return 0;
    if ((r = cJSON_AddArrayToObject(a, "last_row")) == NULL)
        return -1;
    for (int f = 0; f < d->F; f++) {
        cJSON *x = in[f] ? cJSON_CreateNumber(v[f]) : cJSON_CreateNull();

        if (x == NULL || !cJSON_AddItemToArray(r, x)) {
            cJSON_Delete(x);
            return -1;
        }
    }
    return 0;
}

/* PERIOD/ALL: each feature's last sample in a row out ("last_samples": a
 * [time, value] pair a feature, null for one without): the restored stream
 * tells a copy of it delivered again from a late sample (stream_resume).
 * Nothing when no feature has one. */
static int last_samples_save(const ad_detector *d, cJSON *a)
{
    cJSON *r = NULL;
    int64_t ts;
    double v;
    int any = 0;

    if (d->last_ts == 0 || d->cfg.stream.mode == AD_ASM_ROWS)
        return 0;
    for (int f = 0; f < d->F && !any; f++)
        any = ad_stream_last_sample(d->stream, f, &ts, &v);
    if (!any)
        return 0;
    if ((r = cJSON_AddArrayToObject(a, "last_samples")) == NULL)
        return -1;
    for (int f = 0; f < d->F; f++) {
        cJSON *x;

        if (!ad_stream_last_sample(d->stream, f, &ts, &v))
            x = cJSON_CreateNull();
        else if ((x = cJSON_CreateArray()) != NULL) {
            cJSON *t = cJSON_CreateNumber((double)ts), *y = cJSON_CreateNumber(v);

            if (!cJSON_AddItemToArray(x, t)) {
                cJSON_Delete(t);
                cJSON_Delete(y);
                y = NULL;
            }
            if (y != NULL && !cJSON_AddItemToArray(x, y)) {
                cJSON_Delete(y);
                y = NULL;
            }
            if (y == NULL) {
                cJSON_Delete(x);
                x = NULL;
            }
        }
        if (x == NULL || !cJSON_AddItemToArray(r, x)) {
            cJSON_Delete(x);
            return -1;
        }
    }
    return 0;
}

static cJSON *alert_save(const ad_detector *d, int handover)
{
    cJSON *a = ad_alerter_save(d->alert), *acc = NULL;

    if (a == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(a, "last_ts", (double)d->last_ts) ||
        last_row_save(d, a) != 0 || last_samples_save(d, a) != 0 ||
        (d->calib_guard > 0 && !cJSON_AddNumberToObject(a, "calib_guard", d->calib_guard)) ||
        (ad_threshold_fitted(d->thr) && (acc = det_acc_chain_save(d, handover)) != NULL &&
         (onset_save(d, acc) != 0 || !cJSON_AddItemToObject(a, "accept", acc)))) {
        cJSON_Delete(acc);
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

/* Add saved sub-state text (taken) as a JSON object under key. */
static int add_sub(cJSON *o, const char *key, char *txt, int want)
{
    cJSON *j;

    if (!want)
        return 0;
    j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (j == NULL)
        return -1;
    cJSON_AddItemToObject(o, key, j);
    return 0;
}

/* Restore the "dq" / "adapt" sub-states (optional; errors are logged). */
static void restore_subs(ad_detector *d, const cJSON *o)
{
    const cJSON *x;
    char *txt, err[200];

    x = cJSON_GetObjectItemCaseSensitive(o, "dq");
    if (d->dq && cJSON_IsObject(x) && (txt = ad_json_print(x)) != NULL) {
        if (ad_dq_restore(d->dq, txt, err, sizeof(err)) != 0)
            ad_log(AD_LOG_WARNING, "%s: saved data-quality state ignored: %s",
                   d->who, err);
        free(txt);
    }
    x = cJSON_GetObjectItemCaseSensitive(o, "adapt");
    if (d->ad && cJSON_IsObject(x) && (txt = ad_json_print(x)) != NULL) {
        /* the stream's decisions go on from the learner's saved counts
         * (stats adapt_promoted / adapt_rejected, the state topic's
         * adapt.promoted / rejected), not from 0 at a restart or a
         * rebuild; also when the rest of its state is refused (a model
         * of another window shape) */
        int rc = ad_adapt_restore(d->ad, txt, err, sizeof(err)), counts = rc == 0;

        if (rc != 0) {
            counts = ad_adapt_restore_counts(d->ad, txt) == 0;
            ad_log(AD_LOG_WARNING, "%s: saved continual-learning state ignored: %s%s",
                   d->who, err, counts ? " (its counts of decisions go on)" : "");
        }
        if (counts) {
            ad_adapt_stats as;
            ad_adapt_get_stats(d->ad, &as);
            d->st.adapt_promoted = as.promotions;
            d->st.adapt_rejected = as.rejections;
        }
        free(txt);
    }
}

/* The window's newest rows (at most T - 1: the rows a later window can
 * still hold) for a hand-over: {"ts":[..],"rows":[[F values, null for
 * NaN]..],"valid":[0|1..],"pushed":n,"since":k,"since_bad":n}. NULL with
 * no row or on OOM. A single row is kept too (a new stream after its
 * first row, a ring restarted at a gap): without it the stream's next
 * window came a row late, one window never scored (window_restore judges
 * the next row by the stream's own rule then). */
static cJSON *window_save(const ad_detector *d)
{
    int fill = ad_window_fill(d->win), n = fill < d->T - 1 ? fill : d->T - 1, i, f, v;
    cJSON *o, *ts, *rows, *val, *r;
    const double *row;
    int64_t t;

    if (n < 1 || (o = cJSON_CreateObject()) == NULL)
        return NULL;
    ts = cJSON_AddArrayToObject(o, "ts");
    rows = cJSON_AddArrayToObject(o, "rows");
    val = cJSON_AddArrayToObject(o, "valid");
    if (!ts || !rows || !val)
        goto fail;
    for (i = fill - n; i < fill; i++) {
        if (ad_window_row(d->win, i, &t, &row, &v) != 0 || (r = cJSON_CreateArray()) == NULL)
            goto fail;
        cJSON_AddItemToArray(rows, r);
        for (f = 0; f < d->F; f++)
            if (!cJSON_AddItemToArray(r, isfinite(row[f]) ? cJSON_CreateNumber(row[f]) :
                                      cJSON_CreateNull()))
                goto fail;
        if (!cJSON_AddItemToArray(ts, cJSON_CreateNumber((double)t)) ||
            !cJSON_AddItemToArray(val, cJSON_CreateNumber(v)))
            goto fail;
    }
    if (!cJSON_AddNumberToObject(o, "pushed", (double)ad_window_pushed(d->win)) ||
        !cJSON_AddNumberToObject(o, "since", ad_window_since(d->win)) ||
        !cJSON_AddNumberToObject(o, "since_bad", (double)(d->rows_since_bad < (uint64_t)d->T ?
                                                          d->rows_since_bad : (uint64_t)d->T)))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Refill the window from window_save's object, when it is consistent with
 * the stream's last row (its last ts is last_ts); else leave it empty. */
static void window_restore(ad_detector *d, const cJSON *o)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(o, "rows");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "valid");
    const cJSON *pu = cJSON_GetObjectItemCaseSensitive(o, "pushed");
    const cJSON *si = cJSON_GetObjectItemCaseSensitive(o, "since");
    const cJSON *sb = cJSON_GetObjectItemCaseSensitive(o, "since_bad");
    const cJSON *x, *r, *vl, *c;
    double *v = d->rowd, *sp = NULL, g;
    int n, i, f;
    int64_t t, prev = INT64_MIN, mg = d->cfg.stream.max_gap_ms;
    const char *why = "malformed";

    if (o == NULL)
        return;                     /* none saved: the ring is as it was */
    ad_window_reset(d->win);
    n = cJSON_GetArraySize(rows);
    if (!cJSON_IsArray(ts) || !cJSON_IsArray(rows) || !cJSON_IsArray(val) ||
        cJSON_GetArraySize(ts) != n || cJSON_GetArraySize(val) != n || n < 1 || n > d->T - 1 ||
        !cJSON_IsNumber(pu) || !(pu->valuedouble >= n && pu->valuedouble <= 1e18) ||
        !cJSON_IsNumber(si) || !(si->valuedouble >= 0 && si->valuedouble <= 1e9) ||
        !cJSON_IsNumber(sb) || !(sb->valuedouble >= 0 && sb->valuedouble <= 1e18))
        goto bad;
    if (n > 1 && (sp = malloc((size_t)(n - 1) * sizeof(*sp))) == NULL) {
        why = "out of memory";
        goto bad;
    }
    for (i = 0, x = ts->child, r = rows->child, vl = val->child; i < n;
         i++, x = x->next, r = r->next, vl = vl->next) {
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= 1e15) || !cJSON_IsArray(r) ||
            cJSON_GetArraySize(r) != d->F || !cJSON_IsNumber(vl)) {
            why = "malformed row";
            goto bad;
        }
        t = (int64_t)x->valuedouble;
        if (t <= prev) {
            why = "rows out of order";
            goto bad;
        }
        if (i > 0)
            sp[i - 1] = (double)(t - prev);
        prev = t;
        for (f = 0, c = r->child; f < d->F; f++, c = c->next) {
            if (cJSON_IsNumber(c))
                v[f] = c->valuedouble;
            else if (cJSON_IsNull(c))
                v[f] = NAN;
            else {
                why = "malformed value";
                goto bad;
            }
        }
        ad_window_push_d(d->win, t, v, vl->valuedouble != 0);
    }
    if (prev != d->last_ts) {
        why = "its last row is not the stream's last";
        goto bad;
    }
    /* saved under a longer hop (a reload's rebuild with a new window.hop):
     * the next row's window is due */
    ad_window_resume(d->win, (uint64_t)pu->valuedouble,
                     si->valuedouble < d->cfg.hop ? (int)si->valuedouble : d->cfg.hop - 1);
    d->rows_since_bad = (uint64_t)sb->valuedouble;
    if (n == 1) {
        /* one row, no spacing: the next row continues it unless the stream
         * would restart at the hole before it, as it judges its second
         * row (rows.max_gap_ms alone before an interval is known:
         * stream.c gap_before; no limit with 0) */
        d->resume_ts = prev;
        d->resume_gap = mg > 0 ? mg : INT64_MAX;
        return;
    }
    /* The next row continues these when it follows them as they followed
     * each other: within 3 x their median spacing (a missed row or two),
     * and never across a hole the stream would restart at (max_gap_ms and
     * max_gap_intervals of that spacing). A state file reused after rows
     * were consumed past it (a crash after the hand-over) fails this: its
     * rows are older than the stream by those rows' span. The stream
     * takes that spacing as its usual interval until it has its own. */
    g = ad_quantile(sp, (size_t)(n - 1), 0.5);
    free(sp);
    ad_stream_hint_interval(d->stream, (int64_t)g);
    if (d->cfg.stream.mode != AD_ASM_PERIOD &&  /* the grid restarts at max_gap_ms */
        mg > 0 && d->cfg.stream.max_gap_intervals * g > (double)mg)
        mg = (int64_t)fmin(d->cfg.stream.max_gap_intervals * g, 1e15);
    g *= 3;
    d->resume_ts = prev;
    d->resume_gap = mg > 0 && g > (double)mg ? mg : (int64_t)g;
    return;
bad:
    free(sp);
    ad_window_reset(d->win);
    ad_log(AD_LOG_WARNING, "%s: saved window rows ignored (%s): the next window "
           "starts afresh", d->who, why);
}

/* The row held as far ahead (detector.h A ROW AHEAD) when saved:
 * {"ts":ms,"arrival":ms,"values":[F values, null for NaN]
 * [,"present":[0|1..]]} (present: absent when the row had every feature).
 * NULL when none is held or on OOM. */
static cJSON *held_save(const ad_detector *d)
{
    cJSON *o, *a;
    int f;

    if (!d->held || (o = cJSON_CreateObject()) == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "ts", (double)d->held_ts) ||
        !cJSON_AddNumberToObject(o, "arrival", (double)d->held_arr) ||
        (a = cJSON_AddArrayToObject(o, "values")) == NULL)
        goto fail;
    for (f = 0; f < d->F; f++)
        if (!cJSON_AddItemToArray(a, isfinite(d->held_v[f]) ? cJSON_CreateNumber(d->held_v[f]) :
                                  cJSON_CreateNull()))
            goto fail;
    if (!d->held_all) {
        if ((a = cJSON_AddArrayToObject(o, "present")) == NULL)
            goto fail;
        for (f = 0; f < d->F; f++)
            if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(d->held_p[f] ? 1 : 0)))
                goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Hold the saved held row (held_save's object) again, once the stream's
 * newest row is known (after stream_resume / window_restore): the next row
 * decides, as it would have without the save. Returns 1 when held; 0 with
 * none saved, a detector that does not hold rows (not ROWS mode), or a row
 * not after the newest (a warning when malformed). */
static int held_restore(ad_detector *d, const cJSON *o)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(o, "arrival");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(o, "values");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "present");
    const cJSON *x;
    int f;

    if (o == NULL || d->held_v == NULL || d->held || d->max_ts == INT64_MIN)
        return 0;
    if (!cJSON_IsNumber(ts) || !(fabs(ts->valuedouble) <= 1e15) || !cJSON_IsNumber(ar) ||
        !(fabs(ar->valuedouble) <= 1e15) || !cJSON_IsArray(vs) ||
        cJSON_GetArraySize(vs) != d->F ||
        (ps != NULL && (!cJSON_IsArray(ps) || cJSON_GetArraySize(ps) != d->F)))
        goto bad;
    f = 0;
    cJSON_ArrayForEach(x, vs) {
        if (!cJSON_IsNumber(x) && !cJSON_IsNull(x))
            goto bad;
        d->held_v[f++] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    }
    f = 0;
    cJSON_ArrayForEach(x, ps) {
        if (!cJSON_IsNumber(x))
            goto bad;
        d->held_p[f++] = x->valuedouble != 0;
    }
    if ((int64_t)ts->valuedouble <= d->max_ts)
        return 0;
    d->held_ts = (int64_t)ts->valuedouble;
    d->held_arr = (int64_t)ar->valuedouble;
    d->held_all = ps == NULL;
    d->held = 1;
    return 1;
bad:
    ad_log(AD_LOG_WARNING, "%s: saved held row malformed: not taken", d->who);
    return 0;
}

/* The seasonal level under "season" of o, with the clock it keeps
 * (calibrated or calibrating: the level learns from calibration windows). */
static void season_save(const ad_detector *d, cJSON *o)
{
    cJSON *t;

    if (d->season == NULL || (t = ad_season_save(d->season)) == NULL)
        return;
    /* the kept periods are of this clock's days */
    if (d->cfg.season_clock == AD_SEASON_LOCAL) {
        char z[128];

        zone_id(z, sizeof(z));
        cJSON_AddStringToObject(t, "clock", "local");
        cJSON_AddStringToObject(t, "zone", z);
    }
    cJSON_AddItemToObject(o, "season", t);
}

/* The other way: a saved level kept on another clock or zone, or damaged,
 * is named in a warning and learnt again. */
static void season_restore(ad_detector *d, const cJSON *x)
{
    char serr[160], z[128];
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(x, "clock");
    const cJSON *zn = cJSON_GetObjectItemCaseSensitive(x, "zone");
    int local = cJSON_IsString(ck) && strcmp(ck->valuestring, "local") == 0;

    if (d->season == NULL || x == NULL)
        return;
    if (local)
        zone_id(z, sizeof(z));
    if (local != (d->cfg.season_clock == AD_SEASON_LOCAL))
        ad_log(AD_LOG_WARNING, "%s: saved seasonal level ignored: it was kept on "
               "%s time, calibration.season_clock is now %s", d->who,
               local ? "local" : "UTC", local ? "utc" : "local");
    else if (local && cJSON_IsString(zn) && strcmp(zn->valuestring, z) != 0)
        /* its phases are another zone's hours (a state without the
         * zone, from before it was kept, is taken as it is) */
        ad_log(AD_LOG_WARNING, "%s: saved seasonal level ignored: it was kept on "
               "local time in zone \"%.80s\", the daemon's zone is now \"%s\"", d->who,
               zn->valuestring, z);
    else if (ad_season_restore(d->season, x, serr, sizeof(serr)) != 0)
        ad_log(AD_LOG_WARNING, "%s: saved seasonal level ignored: %s", d->who, serr);
}

/* Add a number (an int64 time or a count) to array a; 0 or -1 (OOM). */
static int add_num(cJSON *a, double v)
{
    return cJSON_AddItemToArray(a, cJSON_CreateNumber(v)) ? 0 : -1;
}

/* How far calibration has got, for a hand-over in phase calibrating (the
 * "calibrating" object of the state, detector.h ad_detector_save_handover):
 * {"thr":{threshold state: the scores kept so far, at most
 * calibration.max_samples, Welford sums, count},"windows":n,"excluded":n,
 * "model_out":n[,"start_ms":ts][,"held":[[from,to,score]..]]
 * [,"wp_prev":ts,"wp_dt":[ms..]]}. held: the clean windows waiting for the
 * data-quality check (calib_delay, at most CALQ_MAX), oldest first; wp_*:
 * the intervals the window period is the median of, until it is known
 * ("window_ms" then). NULL on OOM. */
static cJSON *calib_save(const ad_detector *d)
{
    cJSON *o = cJSON_CreateObject(), *t, *a, *r;
    int i;

    if (o == NULL)
        return NULL;
    if ((t = ad_threshold_save(d->thr)) == NULL)
        goto fail;
    cJSON_AddItemToObject(o, "thr", t);
    if (!cJSON_AddNumberToObject(o, "windows", (double)d->st.calib_windows) ||
        !cJSON_AddNumberToObject(o, "excluded", (double)d->st.calib_excluded) ||
        !cJSON_AddNumberToObject(o, "model_out", (double)d->calib_model_out) ||
        (d->has_calib_start && !cJSON_AddNumberToObject(o, "start_ms", (double)d->calib_start)) ||
        (d->calib_held && !cJSON_AddNumberToObject(o, "held_ms", (double)d->calib_held_ms)) ||
        (d->calib_held && !cJSON_AddNumberToObject(o, "held_flagged", (double)d->calib_flagged)))
        goto fail;
    if (d->cq_len > 0) {
        if ((a = cJSON_AddArrayToObject(o, "held")) == NULL)
            goto fail;
        for (i = 0; i < d->cq_len; i++) {
            const struct calq *q = &d->cq[(d->cq_head + i) % d->cq_cap];

            if ((r = cJSON_CreateArray()) == NULL)
                goto fail;
            cJSON_AddItemToArray(a, r);
            if (add_num(r, (double)q->from) || add_num(r, (double)q->to) || add_num(r, q->s))
                goto fail;
        }
    }
    if (d->window_ms <= 0 && d->wp_prev != 0) {
        if (!cJSON_AddNumberToObject(o, "wp_prev", (double)d->wp_prev) ||
            (a = cJSON_AddArrayToObject(o, "wp_dt")) == NULL)
            goto fail;
        for (i = 0; i < d->wp_n; i++)
            if (add_num(a, (double)d->wp_dt[i]))
                goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* A count of c under k: 0..1e18, whole. 0 or -1. */
static int get_count(const cJSON *c, const char *k, uint64_t *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, k);

    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble <= 1e18) ||
        x->valuedouble != floor(x->valuedouble))
        return -1;
    *v = (uint64_t)x->valuedouble;
    return 0;
}

/* A data time (ms): within +-1e15, whole. */
static int is_time(const cJSON *x)
{
    return cJSON_IsNumber(x) && fabs(x->valuedouble) <= 1e15 &&
           x->valuedouble == floor(x->valuedouble);
}

/* Continue calib_save's object c: everything is checked before anything
 * changes, so a malformed one leaves the detector calibrating afresh.
 * 0, or AD_EINVAL (not calibrating now) / AD_EFORMAT with err set. */
static int calib_restore(ad_detector *d, const cJSON *c, char *err, size_t errlen)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(c, "held");
    const cJSON *sm = cJSON_GetObjectItemCaseSensitive(c, "start_ms");
    const cJSON *hm = cJSON_GetObjectItemCaseSensitive(c, "held_ms");
    const cJSON *wpp = cJSON_GetObjectItemCaseSensitive(c, "wp_prev");
    const cJSON *wpd = cJSON_GetObjectItemCaseSensitive(c, "wp_dt");
    const cJSON *x, *e;
    struct calq held[CALQ_MAX];
    int64_t dt[AD_WP_N];
    uint64_t win, exc, out, flagged = 0;
    int nh = 0, nw = 0, rc;

    if (d->phase != AD_PHASE_CALIBRATING)
        return ad_errf(err, errlen, AD_EINVAL, "calibration state: saved while calibrating, "
                       "the stream is %s", ad_phase_name(d->phase));
    if (get_count(c, "windows", &win) || get_count(c, "excluded", &exc) ||
        get_count(c, "model_out", &out) || (sm != NULL && !is_time(sm)) ||
        (hm != NULL && !is_time(hm)))
        return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating: "
                       "windows/excluded/model_out/start_ms/held_ms malformed");
    /* held_flagged: absent from a state saved before it was counted */
    if (cJSON_GetObjectItemCaseSensitive(c, "held_flagged") != NULL &&
        get_count(c, "held_flagged", &flagged))
        return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating: "
                       "held_flagged malformed (a count)");
    if (h != NULL && (!cJSON_IsArray(h) || cJSON_GetArraySize(h) > CALQ_MAX))
        return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating.held: "
                       "not an array of at most %d windows", CALQ_MAX);
    cJSON_ArrayForEach(x, h) {
        const cJSON *f = cJSON_GetArrayItem(x, 0), *t = cJSON_GetArrayItem(x, 1);

        e = cJSON_GetArrayItem(x, 2);
        if (cJSON_GetArraySize(x) != 3 || !is_time(f) || !is_time(t) || !cJSON_IsNumber(e) ||
            !isfinite(e->valuedouble))
            return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating.held[%d]: "
                           "not [from, to, score]", nh);
        held[nh++] = (struct calq){ (int64_t)f->valuedouble, (int64_t)t->valuedouble,
                                    e->valuedouble };
    }
    if (wpp != NULL || wpd != NULL) {
        if (!is_time(wpp) || !cJSON_IsArray(wpd) || cJSON_GetArraySize(wpd) > AD_WP_N)
            return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating: "
                           "wp_prev/wp_dt malformed");
        cJSON_ArrayForEach(e, wpd) {
            if (!is_time(e) || !(e->valuedouble >= 1))
                return ad_errf(err, errlen, AD_EFORMAT, "calibration state: "
                               "calibrating.wp_dt[%d]: not an interval >= 1 ms", nw);
            dt[nw++] = (int64_t)e->valuedouble;
        }
    }
    if (nh > 0 && d->cq == NULL) {
        if ((d->cq = malloc(CALQ_MAX * sizeof(*d->cq))) == NULL)
            return ad_errf(err, errlen, AD_ENOMEM, "calibration state: out of memory");
        d->cq_cap = CALQ_MAX;
    }
    rc = ad_threshold_restore(d->thr, cJSON_GetObjectItemCaseSensitive(c, "thr"), err, errlen);
    if (rc)
        return rc;
    if (ad_threshold_fitted(d->thr)) {
        ad_threshold_reset(d->thr);
        return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating, yet its "
                       "threshold is fitted");
    }
    if (nh > 0)
        memcpy(d->cq, held, (size_t)nh * sizeof(*held));
    d->cq_head = 0;
    d->cq_len = nh;
    d->st.calib_windows = win;
    d->st.calib_excluded = exc;
    d->calib_model_out = out;
    d->has_calib_start = sm != NULL;
    d->calib_start = sm != NULL ? (int64_t)sm->valuedouble : 0;
    /* its wait on windows above the guard goes on (the state topic says
     * since when) */
    d->calib_held = hm != NULL;
    d->calib_held_ms = hm != NULL ? (int64_t)hm->valuedouble : 0;
    d->calib_flagged = hm != NULL ? flagged : 0;
    /* its guard too, at once: the state published before the first
     * calibration window after a restart said "guard": null */
    if (d->calib_held)
        det_model_guard(d);
    if (wpp != NULL) {
        memcpy(d->wp_dt, dt, (size_t)nw * sizeof(dt[0]));
        d->wp_n = nw;
        d->wp_prev = (int64_t)wpp->valuedouble;
    }
    return 0;
}

/* The per-feature scales as "scale":[F], printed so that they read back
 * bit for bit (cJSON's printer may drop the last digit: a hand-over must
 * score as if the stream had not moved). 0 or -1 (out of memory). */
static int scales_save(const ad_detector *d, cJSON *o)
{
    cJSON *a = cJSON_AddArrayToObject(o, "scale");
    char buf[40];
    int f;

    if (a == NULL)
        return -1;
    for (f = 0; f < d->F; f++) {
        cJSON *v;

        snprintf(buf, sizeof buf, "%.17g", d->nscale[f]);
        if ((v = cJSON_CreateRaw(buf)) == NULL)
            return -1;
        cJSON_AddItemToArray(a, v);
    }
    return 0;
}

/* parts: AD_DET_SAVE_* (detector.h ad_detector_save_parts) */
char *ad_detector_save_parts(const ad_detector *d, int parts)
{
    int with_window = (parts & AD_DET_SAVE_WINDOW) != 0;
    cJSON *o, *t;
    char hash[24];
    char *txt = NULL;
    int fitted = ad_threshold_fitted(d->thr);
    /* a hand-over in the middle of calibration: how far it has got goes
     * along, so the stream ends it where it would have without the move */
    int calibrating = with_window && !fitted && d->phase == AD_PHASE_CALIBRATING &&
                      (d->last_ts != 0 || ad_threshold_count(d->thr) > 0 || d->cq_len > 0 ||
                       d->has_calib_start);

    /* Not calibrated: still kept when the alert part matters (the seq
     * counters, model and data quality, a calibration guard), so a restart
     * neither reuses ids nor closes an alert twice. */
    if (!fitted && !calibrating && ad_alerter_count(d->alert) == 0 && !(d->calib_guard > 0) &&
        !(d->dq && ad_dq_seq(d->dq) > 0))
        return NULL;
    o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)d->hash);
    if (!cJSON_AddNumberToObject(o, "version", 1) ||
        !cJSON_AddStringToObject(o, "stream", d->key) ||
        !cJSON_AddStringToObject(o, "model_id", d->model ? d->model->id : "") ||
        !cJSON_AddStringToObject(o, "settings_hash", hash) ||
        !cJSON_AddStringToObject(o, "metric", ad_detector_metric_name(d->cfg.metric)) ||
        !cJSON_AddStringToObject(o, "method", ad_thr_method_name(d->cfg.thr.method)) ||
        !cJSON_AddNumberToObject(o, "alerts", (double)ad_alerter_count(d->alert)) ||
        (d->cfg.normalize != AD_NORM_NONE &&
         !cJSON_AddStringToObject(o, "normalize", ad_detector_normalize_name(d->cfg.normalize))))
        goto out;
    t = alert_save(d, with_window);
    if (t == NULL)
        goto out;
    cJSON_AddItemToObject(o, "alert", t);
    if (fitted) {
        if (!cJSON_AddNumberToObject(o, "threshold", ad_threshold_value(d->thr)) ||
            !cJSON_AddNumberToObject(o, "calib_windows", (double)ad_threshold_count(d->thr)))
            goto out;
        if (d->has_smooth && !cJSON_AddNumberToObject(o, "smoothed", d->smooth))
            goto out;
        if (d->has_nscale && scales_save(d, o) != 0)
            goto out;
        t = ad_threshold_save(d->thr);
        if (t == NULL)
            goto out;
        cJSON_AddItemToObject(o, "state", t);
        if ((t = det_acc_save(d, with_window)) != NULL)
            cJSON_AddItemToObject(o, "acceptance", t);
        if ((t = det_level_save(d)) != NULL)
            cJSON_AddItemToObject(o, "level", t);
        if (det_band_save(d, o) != 0)
            goto out;
    } else if (calibrating) {
        if ((t = calib_save(d)) == NULL)
            goto out;
        cJSON_AddItemToObject(o, "calibrating", t);
        if (d->has_smooth && !cJSON_AddNumberToObject(o, "smoothed", d->smooth))
            goto out;
    }
    if (fitted || calibrating) {
        season_save(d, o);
        /* the anomaly probability's history goes on with the scores */
        if ((t = ad_likelihood_save(d->lik)) == NULL)
            goto out;
        cJSON_AddItemToObject(o, "probability", t);
        if (d->window_ms > 0 && !cJSON_AddNumberToObject(o, "window_ms", d->window_ms))
            goto out;
        if ((t = det_burst_save(d, with_window)) != NULL)
            cJSON_AddItemToObject(o, "burst", t);
        if ((t = det_noise_save(d)) != NULL)
            cJSON_AddItemToObject(o, "noise", t);
        /* the kept change's ring and change: a restart goes on holding */
        if ((t = det_shift_save(d)) != NULL)
            cJSON_AddItemToObject(o, "shift", t);
    }
    if (add_sub(o, "dq", d->dq ? ad_dq_save(d->dq) : NULL, d->dq != NULL) != 0)
        goto out;
    if (d->ad) {
        if ((t = ad_adapt_save_json(d->ad, ((parts & AD_DET_SAVE_NORMAL) ? AD_ADAPT_SAVE_NORMAL : 0) |
                                                ((parts & AD_DET_SAVE_SPAN) ? AD_ADAPT_SAVE_SPAN : 0))) == NULL)
            goto out;
        cJSON_AddItemToObject(o, "adapt", t);
    }
    if (with_window && (fitted || calibrating) && (t = window_save(d)) != NULL)
        cJSON_AddItemToObject(o, "window", t);
    if ((t = held_save(d)) != NULL)
        cJSON_AddItemToObject(o, "held", t);
    txt = ad_json_print(o);     /* every number bit for bit */
out:
    cJSON_Delete(o);
    return txt;
}

char *ad_detector_save(const ad_detector *d)
{
    return ad_detector_save_parts(d, 0);
}

char *ad_detector_save_handover(const ad_detector *d)
{
    return ad_detector_save_parts(d, AD_DET_SAVE_WINDOW | AD_DET_SAVE_NORMAL | AD_DET_SAVE_SPAN);
}

char *ad_detector_save_checkpoint(const ad_detector *d)
{
    return ad_detector_save_parts(d, AD_DET_SAVE_WINDOW);
}

/* The saved alert part of o: "alert", or for files written before it
 * existed {"seq": alerts}. Returns a new object or NULL. */
static cJSON *saved_alert(const cJSON *o)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "alert");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "alerts");
    cJSON *r;

    if (cJSON_IsObject(a))
        return cJSON_Duplicate(a, 1);
    if ((r = cJSON_CreateObject()) != NULL &&
        !cJSON_AddNumberToObject(r, "seq", cJSON_IsNumber(n) && n->valuedouble > 0 ?
                                 n->valuedouble : 0)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

/* The stream continues the saved one from its last row: a copy of a row
 * or sample it consumed, delivered again after the restore (MQTT QoS 1, a
 * Kafka re-read after a rebalance), is refused and counted as the stream
 * that was not interrupted refuses it, rather than taken for a new row
 * (which restarted the restored window ring: windows lost). The newest
 * accepted time is at least that row's, as it was for that stream: what
 * is refused far behind it (a device clock that jumped back) fills the
 * data-quality "rejected" bucket as it did there, and the monitor's clock
 * runs on from it (silence counts from the restore: the arrival clock
 * starts at the detector's creation), rather than a stream whose every
 * row is refused saying nothing at all. Nothing when no last row is known
 * (a state without "alert"."last_ts"). */
static void stream_resume(ad_detector *d, const cJSON *a)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(a, "last_row"), *x;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(a, "last_ts");

    if (d->last_ts == 0)
        return;
    ad_stream_resume(d->stream, d->last_ts);
    /* the last row's values, when saved with that row's time (ROWS): an
     * aid to tell a copy of it; one malformed is left out (the copy then
     * counts as a dup with other values, as without it) */
    if (cJSON_IsArray(r) && cJSON_GetArraySize(r) == d->F && d->F <= AD_MAX_FEATURES &&
        cJSON_IsNumber(lt) && (int64_t)lt->valuedouble == d->last_ts) {
        double v[AD_MAX_FEATURES];
        unsigned char in[AD_MAX_FEATURES];
        int f = 0;

        cJSON_ArrayForEach(x, r) {
            in[f] = cJSON_IsNumber(x) && isfinite(x->valuedouble);
            v[f] = in[f] ? x->valuedouble : 0;
            if (!in[f] && !cJSON_IsNull(x))
                break;
            f++;
        }
        if (f == d->F)
            ad_stream_resume_row(d->stream, d->last_ts, v, in);
    }
    /* PERIOD/ALL: each feature's last sample in a row out, an aid to tell a
     * copy of it; a malformed pair is left out (its copy then counts as
     * late, as without it) */
    r = cJSON_GetObjectItemCaseSensitive(a, "last_samples");
    if (cJSON_IsArray(r) && cJSON_GetArraySize(r) == d->F) {
        int f = 0;

        cJSON_ArrayForEach(x, r) {
            const cJSON *t = cJSON_GetArrayItem(x, 0), *y = cJSON_GetArrayItem(x, 1);

            if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsNumber(t) &&
                cJSON_IsNumber(y) && t->valuedouble >= -9.2e18 && t->valuedouble <= 9.2e18)
                ad_stream_resume_sample(d->stream, f, (int64_t)t->valuedouble, y->valuedouble);
            f++;
        }
    }
    if (d->max_ts == INT64_MIN)     /* not one that has taken rows (a reload's) */
        d->max_ts = d->last_ts;
    /* the monitor's clock too: else the first values refused stamped
     * their event at data time 0 (1970), and the next tick's jump of the
     * clock to the stream's time emptied the bucket and cleared it while
     * values were still refused */
    if (d->dq)
        ad_dq_advance(d->dq, d->max_ts);
}

/* Continue the saved alert part after a successful restore. */
static void alert_resume(ad_detector *d, const cJSON *o)
{
    cJSON *a = saved_alert(o);
    const cJSON *x;
    char err[160];

    ad_alerter_reset(d->alert);
    d->lik_alert = 0;
    if (a == NULL)
        return;
    if (ad_alerter_restore(d->alert, a, 1, NULL, err, sizeof(err)) != 0) {
        ad_alerter_reset(d->alert);
        ad_log(AD_LOG_WARNING, "%s: saved alert not continued: %s", d->who, err);
    }
    x = cJSON_GetObjectItemCaseSensitive(a, "last_ts");
    if (d->last_ts == 0 && cJSON_IsNumber(x) && fabs(x->valuedouble) <= 1e15)
        d->last_ts = (int64_t)x->valuedouble;
    stream_resume(d, a);
    cJSON_Delete(a);
    /* the probability's averages of the continued alert are held aside
     * until it ends, as if it had run through (det_lik_settle) */
    d->lik_alert = ad_alerter_active(d->alert) != NULL;
    /* the continual learner (restored before) is told too: the windows of
     * the continued alert, and its clear margin, stay out of its normal set */
    if (d->ad && ad_alerter_active(d->alert))
        ad_adapt_alert_raised(d->ad, ad_alerter_active(d->alert)->id, d->last_ts);
}

/* The anomaly probability's saved history ("probability" of o), restored
 * with the threshold or the calibration it was saved with. A state from
 * before it was kept has none: the probability starts afresh, as does one
 * kept with another alert.probability_history / probability_average (the
 * stream says so). */
static void lik_restore(ad_detector *d, const cJSON *o)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "probability");
    char lerr[200];

    if (x == NULL)
        return;
    if (ad_likelihood_restore(d->lik, x, lerr, sizeof(lerr)) != 0)
        ad_log(AD_LOG_WARNING, "%s: saved probability history ignored: %s: the "
               "probability starts afresh", d->who, lerr);
}

/* A hand-over state saved while calibrating (o, its "calibrating" c): the
 * calibration goes on from the scores collected so far, with the alert
 * part, the smoothing, the seasonal level, the window period and the
 * window rows, in phase calibrating. 0 or an AD_E* code (err set). */
static int calib_continue(ad_detector *d, const cJSON *o, const cJSON *c, char *err,
                          size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "alert"), *x;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "thr"),
                                                      "count");
    int rc;

    /* what detector_save would not save again (no row consumed, nothing
     * collected) is no calibration to continue */
    x = cJSON_GetObjectItemCaseSensitive(a, "last_ts");
    if (!(cJSON_IsNumber(x) && fabs(x->valuedouble) >= 1 && fabs(x->valuedouble) <= 1e15) &&
        !(cJSON_IsNumber(n) && n->valuedouble >= 1) &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "held")) == 0 &&
        !cJSON_GetObjectItemCaseSensitive(c, "start_ms"))
        return ad_errf(err, errlen, AD_EINVAL, "calibration state: calibrating, nothing "
                       "collected yet");
    /* the per-feature errors a normalised fit needs at the end are not
     * carried: such a stream calibrates afresh */
    if (d->cfg.normalize != AD_NORM_NONE)
        return ad_errf(err, errlen, AD_EINVAL, "calibration state: calibrating; with "
                       "score.normalize %s calibration starts afresh",
                       ad_detector_normalize_name(d->cfg.normalize));
    /* no alert is raised before calibration ends (a recalibration closes
     * the open one) */
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(a, "open")))
        return ad_errf(err, errlen, AD_EFORMAT, "calibration state: calibrating with an "
                       "open alert");
    if ((rc = calib_restore(d, c, err, errlen)) != 0)
        return rc;
    x = cJSON_GetObjectItemCaseSensitive(o, "smoothed");
    if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
        d->smooth = x->valuedouble;
        d->has_smooth = 1;
    }
    season_restore(d, cJSON_GetObjectItemCaseSensitive(o, "season"));
    alert_resume(d, o);
    a = cJSON_GetObjectItemCaseSensitive(o, "alert");
    x = cJSON_GetObjectItemCaseSensitive(a, "calib_guard");
    if (cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble > 0)
        d->calib_guard = x->valuedouble;
    det_window_period_restore(d, cJSON_GetObjectItemCaseSensitive(o, "window_ms"));
    window_restore(d, cJSON_GetObjectItemCaseSensitive(o, "window"));
    held_restore(d, cJSON_GetObjectItemCaseSensitive(o, "held"));
    det_burst_restore(d, cJSON_GetObjectItemCaseSensitive(o, "burst"));
    det_noise_restore(d, cJSON_GetObjectItemCaseSensitive(o, "noise"));
    det_shift_restore(d, cJSON_GetObjectItemCaseSensitive(o, "shift"));
    lik_restore(d, o);
    ad_log(AD_LOG_INFO, "%s: calibration continues from the saved state: %llu of %d "
           "windows%s", d->who, (unsigned long long)(ad_threshold_count(d->thr) +
           (uint64_t)d->cq_len), d->cfg.calib_windows,
           d->cfg.calib_windows > 0 ? "" : " (calibration.duration)");
    return 0;
}

/* The saved per-feature scales ("scale": F finite numbers > 0) into out;
 * 0, or AD_EINVAL with a message. */
static int scales_read(const ad_detector *d, const cJSON *o, double *out, char *err,
                       size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "scale"), *v;
    int f = 0;

    if (!cJSON_IsArray(x))
        return ad_errf(err, errlen, AD_EINVAL, "calibration state: no per-feature "
                       "scales (\"scale\"; score.normalize %s)",
                       ad_detector_normalize_name(d->cfg.normalize));
    if (cJSON_GetArraySize(x) != d->F)
        return ad_errf(err, errlen, AD_EINVAL, "calibration state: \"scale\" has %d "
                       "values, the model %d features", cJSON_GetArraySize(x), d->F);
    cJSON_ArrayForEach(v, x) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > 0))
            return ad_errf(err, errlen, AD_EINVAL, "calibration state: \"scale\"[%d] "
                           "must be a finite number > 0", f);
        out[f++] = v->valuedouble;
    }
    return 0;
}

int ad_detector_restore(ad_detector *d, const char *json, char *err, size_t errlen)
{
    cJSON *o, *x;
    char hash[24];
    const char *cur_id = d->model ? d->model->id : "";
    double *sc = NULL;
    int rc;

    if (d->model == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "stream %s: no model yet, nothing to restore",
                       d->key);
    o = cJSON_Parse(json ? json : "");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ad_errf(err, errlen, AD_EFORMAT, "calibration state: not a JSON object");
    }
    /* the data-quality monitor and the learner of a detector that has
     * consumed rows (a reload's new model) are live: the saved copies are
     * older, and restoring one would end a flat run under way (a stuck
     * sensor cleared and raised again) or undo the learner's new reference */
    if (d->last_ts == 0)
        restore_subs(d, o);
    x = cJSON_GetObjectItemCaseSensitive(o, "version");
    if (!cJSON_IsNumber(x) || x->valuedouble != 1) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "calibration state: version must be 1");
        goto out;
    }
    x = cJSON_GetObjectItemCaseSensitive(o, "model_id");
    if (!cJSON_IsString(x)) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "calibration state: model_id missing");
        goto out;
    }
    if (cur_id[0] == '\0' || strcmp(x->valuestring, cur_id) != 0) {
        rc = ad_errf(err, errlen, AD_EINVAL,
                     "calibration state: model changed (saved %s, current %s)",
                     x->valuestring, cur_id[0] ? cur_id : "(unidentified)");
        goto out;
    }
    snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)d->hash);
    x = cJSON_GetObjectItemCaseSensitive(o, "settings_hash");
    if (!cJSON_IsString(x) || strcmp(x->valuestring, hash) != 0) {
        rc = ad_errf(err, errlen, AD_EINVAL,
                     "calibration state: settings changed (saved %s, current %s)",
                     cJSON_IsString(x) ? x->valuestring : "?", hash);
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "state") == NULL) {
        x = cJSON_GetObjectItemCaseSensitive(o, "calibrating");
        if (!cJSON_IsObject(x)) {
            rc = ad_errf(err, errlen, AD_EINVAL, "calibration state: not calibrated when saved");
            goto out;
        }
        rc = calib_continue(d, o, x, err, errlen);
        goto out;
    }
    /* the threshold is in normalised units: the scales come with it */
    if (d->cfg.normalize != AD_NORM_NONE) {
        if ((sc = malloc((size_t)d->F * sizeof(double))) == NULL) {
            rc = ad_errf(err, errlen, AD_ENOMEM, "calibration state: out of memory");
            goto out;
        }
        if ((rc = scales_read(d, o, sc, err, errlen)) != 0)
            goto out;
    }
    rc = ad_threshold_restore(d->thr, cJSON_GetObjectItemCaseSensitive(o, "state"), err, errlen);
    if (rc)
        goto out;
    if (!ad_threshold_fitted(d->thr)) {
        ad_threshold_reset(d->thr);
        rc = ad_errf(err, errlen, AD_EFORMAT, "calibration state: threshold not fitted");
        goto out;
    }
    if (sc != NULL) {
        memcpy(d->nscale, sc, (size_t)d->F * sizeof(double));
        d->has_nscale = 1;
        d->nb_len = d->nb_head = 0;
        if (d->ad)
            ad_adapt_set_scale(d->ad, d->nscale, d->cfg.normalize == AD_NORM_FEATURE_RMS);
    }
    x = cJSON_GetObjectItemCaseSensitive(o, "smoothed");
    if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
        d->smooth = x->valuedouble;
        d->has_smooth = 1;
    }
    season_restore(d, cJSON_GetObjectItemCaseSensitive(o, "season"));
    {   /* the probability's sd floor is the threshold's (detector.h); a
         * saved history brings the one it was computed with */
        ad_thr_info in;
        ad_threshold_info(d->thr, &in);
        ad_likelihood_set_floor(d->lik, in.floor);
    }
    lik_restore(d, o);
    alert_resume(d, o);
    /* after the alert: one open across the restore starts its change now */
    det_window_period_restore(d, cJSON_GetObjectItemCaseSensitive(o, "window_ms"));
    /* ... unless the state says how far its acceptance had got (sized now:
     * accept_after_ms by the window period) */
    x = cJSON_GetObjectItemCaseSensitive(o, "alert");
    x = cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, "accept") : NULL;
    det_acc_chain_restore(d, x);
    onset_restore(d, cJSON_GetObjectItemCaseSensitive(x, "onset"),
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "handover")));
    /* the regimes once accept_after_ms is a count of windows too: a
     * step-down regime learns from up to max(accept_after, stepdown_after)
     * scores */
    det_acc_restore(d, cJSON_GetObjectItemCaseSensitive(o, "acceptance"));
    window_restore(d, cJSON_GetObjectItemCaseSensitive(o, "window"));
    held_restore(d, cJSON_GetObjectItemCaseSensitive(o, "held"));
    /* the level test's ring is sized by the window period (restored
     * above); the burst test's rows continue the window's */
    det_level_restore(d, cJSON_GetObjectItemCaseSensitive(o, "level"));
    det_band_restore(d, cJSON_GetObjectItemCaseSensitive(o, "band"));
    det_burst_restore(d, cJSON_GetObjectItemCaseSensitive(o, "burst"));
    det_noise_restore(d, cJSON_GetObjectItemCaseSensitive(o, "noise"));
    det_shift_restore(d, cJSON_GetObjectItemCaseSensitive(o, "shift"));
    /* said before the phase line, which reads as a calibration's end */
    ad_log(AD_LOG_INFO, "%s: threshold %.6g restored from the saved state: detecting at "
           "once, no new calibration", d->who, ad_threshold_value(d->thr));
    det_set_phase(d, AD_PHASE_DETECTING, d->last_ts);
    rc = 0;
out:
    free(sc);
    cJSON_Delete(o);
    return rc;
}

int ad_detector_restore_window(ad_detector *d, const char *json)
{
    cJSON *o;
    const cJSON *w, *x;
    int64_t keep = d->last_ts;
    int ok = 0;

    /* a ring of its own already (rows consumed, a restore that took its
     * rows), or no windows to score yet (collecting rows to train on) */
    if ((d->phase != AD_PHASE_CALIBRATING && d->phase != AD_PHASE_DETECTING) ||
        d->model == NULL || d->st.rows > 0 || ad_window_fill(d->win) > 0)
        return 0;
    o = cJSON_Parse(json ? json : "");
    w = cJSON_GetObjectItemCaseSensitive(o, "window");
    x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "alert"),
                                         "last_ts");
    if (cJSON_IsObject(w) && cJSON_IsNumber(x) && fabs(x->valuedouble) >= 1 &&
        fabs(x->valuedouble) <= 1e15) {
        /* the rows end at the stream's last row */
        if (d->last_ts == 0)
            d->last_ts = (int64_t)x->valuedouble;
        window_restore(d, w);
        ok = ad_window_fill(d->win) > 0;
        if (!ok) {
            d->last_ts = keep;
        } else {
            stream_resume(d, cJSON_GetObjectItemCaseSensitive(o, "alert"));
            /* its held row too: restore_alert counted it as lost */
            if (held_restore(d, cJSON_GetObjectItemCaseSensitive(o, "held")) &&
                d->held_lost_pend) {
                d->held_lost--;
                d->held_lost_pend = 0;
            }
        }
    }
    cJSON_Delete(o);
    return ok;
}

/* Queue the cleared event of alert al, closed now with reason r at ts. */
static ad_event *queue_closed(ad_detector *d, ad_alert *al, ad_close_reason r, int64_t ts)
{
    ad_event *e;

    al->active = 0;
    al->reason = r;
    al->end_ms = ts > al->start_ms ? ts : al->start_ms;
    e = det_ev_new(d, AD_EV_ALERT_CLEARED, al->end_ms);
    e->alert = *al;
    e->threshold = al->threshold;
    ad_log(AD_LOG_INFO, "%s: alert %s closed (%s)", d->who, al->id,
           ad_close_reason_name(r));
    return e;
}

int ad_detector_restore_alert(ad_detector *d, const char *json, ad_close_reason reason)
{
    cJSON *o = cJSON_Parse(json ? json : ""), *a;
    const cJSON *mid, *met, *thr, *x, *nm;
    const char *cur_id = d->model ? d->model->id : "";
    int same_model, closed = 0, same_norm;
    ad_alert al;
    char err[160];

    if (!cJSON_IsObject(o) || (a = saved_alert(o)) == NULL) {
        cJSON_Delete(o);
        return 0;
    }
    /* the saved stream's held row goes with the rest of its last rows
     * (counted; ad_detector_restore_window takes it with them) */
    if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "held")) && !d->held &&
        !d->held_lost_pend) {
        d->held_lost++;
        d->held_lost_pend = 1;
    }
    mid = cJSON_GetObjectItemCaseSensitive(o, "model_id");
    met = cJSON_GetObjectItemCaseSensitive(o, "metric");
    same_model = cJSON_IsString(mid) && cur_id[0] && strcmp(mid->valuestring, cur_id) == 0;
    if (ad_alerter_restore(d->alert, a, 0, &al, err, sizeof(err)) != 0) {
        ad_log(AD_LOG_WARNING, "%s: saved alert unreadable: %s", d->who, err);
    } else if (al.active) {
        ad_event *e;
        int sm;

        x = cJSON_GetObjectItemCaseSensitive(a, "last_ts");
        e = queue_closed(d, &al, same_model ? reason : AD_CLOSE_MODEL_CHANGED,
                         cJSON_IsNumber(x) && fabs(x->valuedouble) <= 1e15 ?
                         (int64_t)x->valuedouble : al.start_ms);
        /* its scores are the saved model's, in the saved metric */
        sm = cJSON_IsString(met) ? ad_detector_metric_from_name(met->valuestring) : -1;
        if (sm >= 0)
            e->metric = (ad_metric)sm;
        if (cJSON_IsString(mid) && strlen(mid->valuestring) <= AD_MODEL_ID_LEN)
            snprintf(e->model_id, sizeof(e->model_id), "%s", mid->valuestring);
        closed = 1;
    }
    /* The old threshold guards the new calibration when scores are on the
     * same scale (same model, same metric, same normalisation: with
     * "feature" it is applied to the normalised scores at the end of
     * calibration). */
    thr = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    if (!cJSON_IsNumber(thr))
        thr = cJSON_GetObjectItemCaseSensitive(a, "calib_guard");
    nm = cJSON_GetObjectItemCaseSensitive(o, "normalize");
    same_norm = (cJSON_IsString(nm) ? ad_detector_normalize_from_name(nm->valuestring)
                                    : AD_NORM_NONE) == (int)d->cfg.normalize;
    if (same_model && same_norm && d->phase != AD_PHASE_DETECTING && cJSON_IsString(met) &&
        ad_detector_metric_from_name(met->valuestring) == (int)d->cfg.metric &&
        cJSON_IsNumber(thr) && isfinite(thr->valuedouble) && thr->valuedouble > 0) {
        d->calib_guard = thr->valuedouble;
        ad_log(AD_LOG_INFO, "%s: calibration skips scores above the previous "
               "threshold %g", d->who, d->calib_guard);
    }
    cJSON_Delete(a);
    cJSON_Delete(o);
    return closed;
}

int ad_detector_close_alert(ad_detector *d, ad_close_reason reason)
{
    const ad_alert *cur = ad_alerter_active(d->alert);
    ad_alert al;

    if (cur == NULL)
        return 0;
    al = *cur;
    ad_alerter_close(d->alert, d->last_ts, reason, NULL);
    det_acc_chain_reset(d);
    queue_closed(d, &al, reason, d->last_ts);
    return 1;
}

/* ---- events as JSON ---------------------------------------------------------- */

/* A finite number, or null (JSON has no NaN or Inf). */
static int num_or_null(cJSON *o, const char *k, double v)
{
    return isfinite(v) ? cJSON_AddNumberToObject(o, k, v) != NULL :
                         cJSON_AddNullToObject(o, k) != NULL;
}

/* Move the members of src that dst lacks into dst; frees src. */
static int merge_into(cJSON *dst, cJSON *src)
{
    cJSON *it;

    while ((it = src->child) != NULL) {
        cJSON_DetachItemViaPointer(src, it);
        if (cJSON_HasObjectItem(dst, it->string)) {
            cJSON_Delete(it);
            continue;
        }
        cJSON_AddItemToObject(dst, it->string, it);
    }
    cJSON_Delete(src);
    return 0;
}

static const char *adapt_decision(ad_adapt_ev_type t)
{
    switch (t) {
    case AD_ADAPT_EV_PROMOTED: return "promoted";
    case AD_ADAPT_EV_REJECTED: return "rejected";
    case AD_ADAPT_EV_SHADOW: return "shadow";
    case AD_ADAPT_EV_TRAIN_FAILED: return "train_failed";
    case AD_ADAPT_EV_DRIFT: return "drift";
    case AD_ADAPT_EV_WAITING: return "waiting";
    default: return "train_ready";
    }
}

/* The name of the feature whose reference error grew most, in "figures"
 * (adapt.h REFERENCE), or null. */
static int add_ref_feature(const ad_detector *d, cJSON *o, int f)
{
    cJSON *fig = cJSON_GetObjectItemCaseSensitive(o, "figures");

    if (fig == NULL)
        return 1;
    if (f >= 0 && f < d->F && d->features && d->features[f])
        return cJSON_AddStringToObject(fig, "reference_feature", d->features[f]) != NULL;
    return cJSON_AddNullToObject(fig, "reference_feature") != NULL;
}

/* Why a bootstrap's calibration wait began or ended (its event's text:
 * detector.c det_calib_hold). */
static const char *calib_held_reason(const ad_event *ev)
{
    if (strcmp(ev->text, "held") == 0)
        return "its windows score above calibration.model_guard x the training error of "
               "the model it trained: it waits for normal windows";
    if (strcmp(ev->text, "calibrated") == 0)
        return "enough clean windows: the threshold is fitted on them";
    if (strcmp(ev->text, "restarted") == 0)
        return "the calibration started over (a recalibrate, or another model)";
    if (ev->calib_flagged > 0)
        return "its windows scored above the guard or could not be used (flagged by data "
               "quality: a stuck or out-of-range feature; untrusted: a rejected or extreme "
               "value; or above the previous threshold) for as long as the wait lasts: the "
               "model's threshold";
    return "its windows scored above the guard for as long as the wait lasts: the "
           "model's threshold";
}

cJSON *ad_event_to_json(const ad_detector *d, const ad_event *ev)
{
    cJSON *o = cJSON_CreateObject(), *a;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddStringToObject(o, "event", ad_event_type_name(ev->type)) ||
        !cJSON_AddStringToObject(o, "stream", d->key) ||
        !cJSON_AddNumberToObject(o, "ts", (double)ev->ts_ms))
        goto fail;
    switch (ev->type) {
    case AD_EV_ALERT_RAISED:
    case AD_EV_ALERT_CLEARED:
        a = ad_alert_to_json(&ev->alert, d->key, (const char *const *)d->features);
        if (a == NULL)
            goto fail;
        cJSON_AddItemToObject(o, "alert", a);
        if (!num_or_null(o, "probability", ev->probability) ||
            !num_or_null(o, "log_likelihood", ev->log_likelihood))
            goto fail;
        break;
    case AD_EV_CALIB_HELD:
        /* the wait begins ("held") or ends ("calibrated", "fallback") */
        if (!cJSON_AddStringToObject(o, "calibration", ev->text) ||
            !cJSON_AddStringToObject(o, "reason", calib_held_reason(ev)) ||
            !cJSON_AddNumberToObject(o, "windows_above_guard", (double)ev->n) ||
            !cJSON_AddNumberToObject(o, "windows_flagged", (double)ev->calib_flagged) ||
            !cJSON_AddNumberToObject(o, "fallback_after_windows",
                                     (double)det_calib_need(d)) ||
            !num_or_null(o, "guard", ev->prev_threshold) ||
            !num_or_null(o, "threshold", ev->threshold))
            goto fail;
        break;
    case AD_EV_CALIB_FAILED:
        if (!cJSON_AddStringToObject(o, "text", ev->text) ||
            !cJSON_AddNumberToObject(o, "failures", (double)ev->n))
            goto fail;
        break;
    case AD_EV_ACCEPTED:
    case AD_EV_REGIME_ENDED:
        if (!cJSON_AddNumberToObject(o, "threshold", ev->threshold) ||
            !num_or_null(o, "prev_threshold", ev->prev_threshold) ||
            !cJSON_AddNumberToObject(o, "windows", (double)ev->n) ||
            !cJSON_AddStringToObject(o, "text", ev->text))
            goto fail;
        break;
    case AD_EV_PHASE:
        if (!cJSON_AddStringToObject(o, "phase", ad_phase_name(ev->phase)) ||
            !cJSON_AddStringToObject(o, "prev", ad_phase_name(ev->prev_phase)))
            goto fail;
        break;
    case AD_EV_CALIBRATED:
        if (!cJSON_AddNumberToObject(o, "threshold", ev->threshold) ||
            !cJSON_AddNumberToObject(o, "windows", (double)ev->n) ||
            !cJSON_AddStringToObject(o, "method", ad_thr_method_name(d->cfg.thr.method)))
            goto fail;
        break;
    case AD_EV_TRAIN_READY:
    case AD_EV_TRAIN_FAILED:
    case AD_EV_ADAPT_READY:
        if (!cJSON_AddStringToObject(o, "text", ev->text))
            goto fail;
        break;
    case AD_EV_DQ_RAISED:
    case AD_EV_DQ_CLEARED:
        a = ad_dq_event_to_json(&ev->dq, d->key, (const char *const *)d->features);
        if (a == NULL || merge_into(o, a) != 0)
            goto fail;
        break;
    case AD_EV_ADAPT:
        a = ad_adapt_event_to_json(&ev->adapt, d->key);
        if (a == NULL || merge_into(o, a) != 0 ||
            !cJSON_AddStringToObject(o, "decision", adapt_decision(ev->adapt.type)) ||
            !add_ref_feature(d, o, ev->adapt.ref_feature) ||
            !num_or_null(o, "threshold", ev->threshold) ||
            !num_or_null(o, "prev_threshold", ev->prev_threshold))
            goto fail;
        break;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* ---- operator feedback ------------------------------------------------------ */

int ad_detector_false_alarm(ad_detector *d, const char *alert_id, double peak,
                            ad_detector_feedback *out, char *err, size_t errlen)
{
    const ad_alert *a = ad_alerter_active(d->alert);
    double before = ad_threshold_value(d->thr), v;
    ad_alert al;

    memset(out, 0, sizeof(*out));
    if (d->phase != AD_PHASE_DETECTING || !ad_threshold_fitted(d->thr))
        return ad_errf(err, errlen, AD_EINVAL, "stream %s: not detecting (phase %s)",
                       d->key, ad_phase_name(d->phase));
    if (a && (!alert_id || !alert_id[0] || strcmp(alert_id, a->id) == 0)) {
        peak = a->peak_score;
        snprintf(out->alert_id, sizeof(out->alert_id), "%s", a->id);
    } else if (alert_id && alert_id[0] && isfinite(peak)) {
        snprintf(out->alert_id, sizeof(out->alert_id), "%s", alert_id);
    } else {
        return ad_errf(err, errlen, AD_EINVAL, alert_id && alert_id[0] ?
                       "stream %s: alert %.64s is not the open alert" :
                       "stream %s: no open alert%.0s", d->key, alert_id ? alert_id : "");
    }
    if (!isfinite(peak) || !(peak > 0))
        return ad_errf(err, errlen, AD_EINVAL, "stream %s: alert %s has no usable peak score",
                       d->key, out->alert_id);
    /* just above the peak: the same windows stay at or below it */
    v = peak * (1.0 + 1e-9);
    out->prev_threshold = before;
    if (v > before && ad_threshold_raise(d->thr, v) != 0)
        return ad_errf(err, errlen, AD_EINVAL, "stream %s: threshold not fitted", d->key);
    out->threshold = ad_threshold_value(d->thr);
    out->raised = out->threshold > before;
    if (a && strcmp(a->id, out->alert_id) == 0 &&
        ad_alerter_close(d->alert, d->last_ts, AD_CLOSE_FALSE_ALARM, &al)) {
        ad_event *e = det_ev_new(d, AD_EV_ALERT_CLEARED, d->last_ts);
        if (d->ad)      /* continual learning: not a true alert to keep */
            ad_adapt_alert_cleared(d->ad, al.id, d->last_ts, AD_ADAPT_CLEAR_FALSE);
        e->alert = al;
        e->threshold = out->threshold;
        out->closed = 1;
        det_acc_chain_reset(d);
    } else if (d->ad) {
        ad_adapt_alert_false(d->ad, out->alert_id);   /* withdrawn if kept */
    }
    return 0;
}

int ad_detector_recalibrate(ad_detector *d, char *err, size_t errlen)
{
    if (d->phase != AD_PHASE_CALIBRATING && d->phase != AD_PHASE_DETECTING)
        return ad_errf(err, errlen, AD_EINVAL, "stream %s: cannot recalibrate in phase %s",
                       d->key, ad_phase_name(d->phase));
    /* the same model: an open alert ends for the operator's request, not
     * for a model change (det_restart_calibration's close finds none) */
    ad_detector_close_alert(d, AD_CLOSE_RECALIBRATE);
    det_restart_calibration(d, d->last_ts);
    return 0;
}
