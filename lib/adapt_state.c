/*
 * adapt_state.c - a continual learner as JSON: its events for publishing
 * and its state (counters, schedule position, true-alert peaks, last
 * decision) saved and restored across restarts. See adapt.h for the format.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "adapt_int.h"

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

cJSON *ad_adapt_event_to_json(const ad_adapt_event *ev, const char *stream)
{
    cJSON *o = cJSON_CreateObject(), *f;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddStringToObject(o, "event", ad_adapt_ev_name(ev->type)) ||
        (stream && !cJSON_AddStringToObject(o, "stream", stream)) ||
        !cJSON_AddNumberToObject(o, "ts", (double)ev->ts_ms) ||
        !cJSON_AddNumberToObject(o, "attempt", (double)ev->attempt) ||
        !cJSON_AddStringToObject(o, "origin",
                                 ev->origin == AD_ADAPT_RELOAD ? "reload" : "finetune") ||
        !cJSON_AddStringToObject(o, "model_id", ev->model_id) ||
        !cJSON_AddStringToObject(o, "reason", ev->reason) ||
        (f = cJSON_AddObjectToObject(o, "figures")) == NULL)
        goto fail;
    if (!cJSON_AddStringToObject(f, "compare", ad_adapt_stat_name(ev->compare)) ||
        !ad_json_num(f, "live_error", ev->live_error) ||
        !ad_json_num(f, "candidate_error", ev->cand_error) ||
        !ad_json_num(f, "gain", ev->gain) ||
        !ad_json_num(f, "min_gain", ev->min_gain) ||
        !ad_json_num(f, "candidate_threshold", ev->cand_threshold) ||
        !ad_json_num(f, "candidate_fit", ev->cand_fit) ||
        !ad_json_num(f, "hold_threshold", ev->hold_threshold) ||
        !ad_json_num(f, "shadow_windows", (double)ev->shadow_windows) ||
        !ad_json_num(f, "normal_windows", (double)ev->normal_windows) ||
        !ad_json_num(f, "regime_windows", (double)ev->regime_windows) ||
        !ad_json_num(f, "alerts_checked", ev->alerts_checked) ||
        !ad_json_num(f, "alerts_silenced", ev->alerts_silenced) ||
        !ad_json_num(f, "min_alert_ratio", ev->min_alert_ratio) ||
        !cJSON_AddStringToObject(f, "silenced_alert", ev->silenced_alert) ||
        !ad_json_num(f, "train_windows", (double)ev->train_windows) ||
        !ad_json_num(f, "epochs_run", ev->epochs_run) ||
        !ad_json_num(f, "train_loss", ev->train_loss) ||
        !ad_json_num(f, "train_seconds", ev->train_seconds) ||
        !ad_json_num(f, "regimes_kept", ev->regimes_kept >= 0 ? ev->regimes_kept : NAN) ||
        !ad_json_num(f, "regimes_ended", ev->regimes_ended >= 0 ? ev->regimes_ended : NAN) ||
        !ad_json_num(f, "reference_error", ev->ref_error) ||
        !ad_json_num(f, "reference_ratio", ev->ref_ratio) ||
        !ad_json_num(f, "reference_feature_index", ev->ref_feature >= 0 ? ev->ref_feature : NAN) ||
        !ad_json_num(f, "reference_feature_ratio", ev->ref_feature_ratio) ||
        !ad_json_num(f, "reference_since", isfinite(ev->ref_ratio) ? (double)ev->ref_since : NAN))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* A window of wsz floats as a JSON array, each printed with 9 digits
 * (enough for a float to read back bit for bit); NULL on OOM. */
static cJSON *window_json(const ad_adapt *a, const float *w)
{
    cJSON *arr = cJSON_CreateArray(), *n;
    char buf[32];
    size_t k;

    for (k = 0; arr != NULL && k < a->wsz; k++) {
        snprintf(buf, sizeof(buf), "%.9g", (double)w[k]);
        if (fabs(strtod(buf, NULL)) > FLT_MAX)  /* +-FLT_MAX rounded up: exactly */
            snprintf(buf, sizeof(buf), "%.17g", (double)w[k]);
        if ((n = cJSON_CreateRaw(buf)) == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, n);
    }
    return arr;
}

/* What the learner keeps of alerts besides the true ones: the open
 * alert's peak window so far ("alert"), the clear margin under way
 * ("post_clear", "cleared_at") and the recent windows inside alerts a
 * regime accepted later learns from ("alert_windows", oldest first, at
 * most min(alert.accept_after, normal_windows)). 0 or -1 (OOM). */
static int save_alerts_open(const ad_adapt *a, cJSON *o)
{
    cJSON *p, *arr, *t, *w;
    size_t i;

    if (a->in_alert && a->have_peak) {
        if ((p = cJSON_AddObjectToObject(o, "alert")) == NULL ||
            !cJSON_AddStringToObject(p, "id", a->cur_id) ||
            !cJSON_AddNumberToObject(p, "ts", (double)a->peak_ts) ||
            !ad_json_num(p, "score", a->peak_score) ||
            (w = window_json(a, a->peak)) == NULL)
            return -1;
        cJSON_AddItemToObject(p, "window", w);
    }
    if ((a->post_clear > 0 && !cJSON_AddNumberToObject(o, "post_clear", a->post_clear)) ||
        (a->cleared_at > 0 && !cJSON_AddNumberToObject(o, "cleared_at", (double)a->cleared_at)))
        return -1;
    if (a->alen == 0)
        return 0;
    if ((arr = cJSON_AddArrayToObject(o, "alert_windows")) == NULL)
        return -1;
    for (i = 0; i < a->alen; i++) {
        size_t slot = (a->ahead + i) % a->acap;

        if ((t = cJSON_CreateObject()) == NULL)
            return -1;
        cJSON_AddItemToArray(arr, t);
        if (!cJSON_AddNumberToObject(t, "ts", (double)a->ats[slot]) ||
            (w = window_json(a, a->awin + slot * a->wsz)) == NULL)
            return -1;
        cJSON_AddItemToObject(t, "window", w);
    }
    return 0;
}

/*
 * NORMAL SET ACROSS A RESTART. The fine-tune an acceptance makes due is
 * the one meant to learn the regime: its normal set holds the windows
 * from before the change and the regime's own. Lost at a restart, the
 * learner refilled it from the regime's windows alone, and that candidate
 * was rejected (docs/continual-learning.md). So while the acceptance's
 * fine-tune is due, out, or in shadow (not a scheduled one), the state of
 * a hand-over (ad_adapt_save_handover: a stop, an eviction, a partition
 * move; not the saves of events nor kafka.commit_states checkpoints, made
 * as often as every second: the set is megabytes of JSON) holds
 *   "normal":{"stride_count":n,"windows":[{"ts":ms,"window":[T*F]}..],
 *             "pending":[{"ago":k,"ts":ms,"window":[T*F]}..],
 *             "seen":[ms..],"seen_n":n}
 * (the normal set oldest first, the windows waiting for their margin,
 * offered k windows before the last, the times of the last windows judged
 * for an alert's run-up, AD_ADAPT_RUN_UP at most; T*F numbers a window,
 * about 10 bytes each: 360 KB for 500 windows of 12x6), and
 *   "accept_finetune":{"admitted":n,"need":n}   the acceptance's due one
 *   "finetune_lost":true                        a job out or a candidate
 *                                               in shadow of the acceptance's
 *                                               fine-tune
 *   "regime_last":n,"held_at":n                 (in any state, when not 0)
 *                                               the wait of a due fine-tune
 *                                               for a regime's occurrence
 *                                               (offer counts)
 * A restored learner trains the due fine-tune at the window it would have
 * without the restart, on the same windows; one whose job or candidate
 * was lost (neither is saved) trains again at once on the saved set. A
 * state without them (an older one) refills the set; a damaged "normal"
 * is ignored with a warning. Restored before the counts are known (data
 * time), the set is taken at the resolution (adapt_normal_take).
 */
/* A job out or a candidate in shadow of the acceptance's fine-tune (a
 * scheduled one, lost, goes on with its schedule) */
static int acc_lost(const ad_adapt *a)
{
    return a->acc_ft && (a->ready || a->job_out ||
                         (a->cand != NULL && a->origin == AD_ADAPT_FINETUNE));
}

static int want_normal(const ad_adapt *a)
{
    return a->resolved && a->ncap > 0 && (a->acc_pending || acc_lost(a));
}

/* with_normal: the set itself too (a hand-over's save, ad_adapt_save_handover) */
static int save_normal(const ad_adapt *a, cJSON *o, int with_normal)
{
    cJSON *n, *arr, *t, *w;
    size_t i, k;

    if (a->reg_last > 0 && !cJSON_AddNumberToObject(o, "regime_last", (double)a->reg_last))
        return -1;
    if (a->held_at > 0 && !cJSON_AddNumberToObject(o, "held_at", (double)a->held_at))
        return -1;
    if (a->acc_pending &&
        ((t = cJSON_AddObjectToObject(o, "accept_finetune")) == NULL ||
         !cJSON_AddNumberToObject(t, "admitted", (double)a->acc_admitted) ||
         !cJSON_AddNumberToObject(t, "need", (double)a->acc_need)))
        return -1;
    if (acc_lost(a) && !cJSON_AddBoolToObject(o, "finetune_lost", 1))
        return -1;
    if (!with_normal || !want_normal(a))
        return 0;
    if ((n = cJSON_AddObjectToObject(o, "normal")) == NULL ||
        !cJSON_AddNumberToObject(n, "stride_count", (double)a->stride_ctr) ||
        (arr = cJSON_AddArrayToObject(n, "windows")) == NULL)
        return -1;
    for (i = 0; i < a->nlen; i++) {
        size_t slot = (a->nhead + i) % a->ncap;

        if ((t = cJSON_CreateObject()) == NULL)
            return -1;
        cJSON_AddItemToArray(arr, t);
        if (!cJSON_AddNumberToObject(t, "ts", (double)a->nts[slot]) ||
            (w = window_json(a, a->nset + slot * a->wsz)) == NULL)
            return -1;
        cJSON_AddItemToObject(t, "window", w);
    }
    if ((arr = cJSON_AddArrayToObject(n, "pending")) == NULL)
        return -1;
    for (i = 0; i < a->plen; i++) {
        size_t slot = (a->phead + i) % a->pcap;
        const pend_ent *e = &a->pend[slot];

        if (e->nowin)           /* a restored shadow entry: no window kept */
            continue;
        if ((t = cJSON_CreateObject()) == NULL)
            return -1;
        cJSON_AddItemToArray(arr, t);
        if (!cJSON_AddNumberToObject(t, "ago", (double)(a->offered - e->seq)) ||
            !cJSON_AddNumberToObject(t, "ts", (double)e->ts) ||
            (w = window_json(a, a->pwin + slot * a->wsz)) == NULL)
            return -1;
        cJSON_AddItemToObject(t, "window", w);
    }
    k = a->seen < AD_ADAPT_RUN_UP ? (size_t)a->seen : AD_ADAPT_RUN_UP;
    if ((arr = cJSON_AddArrayToObject(n, "seen")) == NULL ||
        !cJSON_AddNumberToObject(n, "seen_n", (double)a->seen))
        return -1;
    for (i = 0; i < k; i++) {
        uint64_t j = a->seen - k + i;
        if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber(
                (double)a->seen_ts[j % AD_ADAPT_RUN_UP])))
            return -1;
    }
    return 0;
}

/*
 * CANDIDATE ACROSS A RESTART. A fine-tune's candidate in shadow is saved
 * with the state, its progress here and its model by the caller (a file
 * beside the state, docs/continual-learning.md): a save with
 * AD_ADAPT_SAVE_SPAN (not the frequent ones, nor a record that goes where
 * that file is not) holds
 *   "shadow":{"model_id":..,"attempt":n,"start_ms":ms,"windows":n,
 *             "train_windows":n,"accept":bool,
 *             "report":{"epochs_run":n,"train_loss":x,"seconds":x},
 *             "ts_steps":[ms,steps..],"live":[..],"cand":[..],"float":true,
 *             "regime":[0|1..],
 *             "pending":[{"ago":k,"ts":ms,"live":x,"cand":x,"regime":0|1}..]}
 * windows: the span's windows with a final verdict so far (the decision
 * comes at adapt.shadow_windows); ts_steps (the first time, then each
 * from the one before; "ts", the times themselves, in a state saved before
 * the steps)/live/cand/regime: the scores of those
 * judged normal, in order (the figures of the decision); pending: the
 * span's windows still waiting for their margin, offered k windows before
 * the last (their windows are not saved: once judged normal they count in
 * the span but do not enter the normal set, which a restart refills).
 * float: every score is a float (a window's is), printed with 9 digits
 * and read back as that float. About 33 bytes a window judged normal:
 * 1 MB for 30,000 (the arrays printed as text, not built as cJSON items:
 * 4 items a window made a long span's save slow; times and 17 digits a
 * score made it 1.8 MB). accept: the
 * acceptance's fine-tune (NORMAL SET ACROSS A RESTART). Not saved beyond
 * AD_ADAPT_SHADOW_SAVE_MAX windows judged normal (a restart then loses the
 * candidate) nor for a reloaded model file's candidate (the caller
 * evaluates it again from its file). ad_adapt_restore keeps it aside; the
 * candidate comes back with its model (ad_adapt_shadow_resume), which
 * must be the one saved (same id and shape): the span goes on where it
 * stopped, and the decision is the one the uninterrupted span makes on
 * the same windows.
 */
/* The span's figures of kind k as one raw JSON array (built as text:
 * 30,000 windows made 120,000 cJSON items each save): the times as steps
 * from the one before (the first as it is), the scores with 9 digits when
 * fl (every one a float: read back as a float, bit for bit), else the
 * shortest text read back bit for bit. NULL when out of memory, or with fl
 * a score that does not read back (the caller prints them all as doubles). */
enum { SPAN_TS, SPAN_LIVE, SPAN_CAND, SPAN_REGIME };
static cJSON *span_array(const ad_adapt *a, int k, int fl)
{
    ad_buf b = { 0 };
    char num[40];
    cJSON *r;
    size_t i;

    ad_buf_put(&b, "[", 1);
    for (i = 0; i < a->sh_n; i++) {
        double v = k == SPAN_LIVE ? a->sh_live[i] : k == SPAN_CAND ? a->sh_cand[i] : 0;

        if (i)
            ad_buf_put(&b, ",", 1);
        if (k == SPAN_TS) {     /* fl: as steps (every time within 2^53) */
            snprintf(num, sizeof num, "%" PRId64,
                     fl && i ? a->sh_ts[i] - a->sh_ts[i - 1] : a->sh_ts[i]);
        } else if (k == SPAN_REGIME) {
            num[0] = a->sh_reg[i] ? '1' : '0';
            num[1] = '\0';
        } else if (fl) {
            snprintf(num, sizeof num, "%.9g", v);
            if ((double)(float)strtod(num, NULL) != v) {
                ad_buf_free(&b);
                return NULL;
            }
        } else {
            ad_json_fmt_num(num, sizeof num, v);
        }
        ad_buf_puts(&b, num);
    }
    ad_buf_put(&b, "]", 1);
    if (b.oom) {
        ad_buf_free(&b);
        return NULL;
    }
    r = cJSON_CreateRaw(b.s);
    ad_buf_free(&b);
    return r;
}

/* every time of the span within 2^53 ms, as data times are: its steps
 * are exact as numbers read back (else the times themselves, "ts") */
static int span_steps(const ad_adapt *a)
{
    size_t i;

    for (i = 0; i < a->sh_n; i++)
        if (a->sh_ts[i] > 9007199254740992LL || a->sh_ts[i] < -9007199254740992LL)
            return 0;
    return 1;
}

/* every score of the span a float (a window's score is one; a scaled one
 * may not be) */
static int span_floats(const ad_adapt *a)
{
    size_t i;

    for (i = 0; i < a->sh_n; i++)
        if (!isfinite(a->sh_live[i]) || !isfinite(a->sh_cand[i]) ||
            (double)(float)a->sh_live[i] != a->sh_live[i] ||
            (double)(float)a->sh_cand[i] != a->sh_cand[i])
            return 0;
    return 1;
}

long ad_adapt_shadow_span(const ad_adapt *a)
{
    if (a == NULL || a->cand == NULL || a->origin != AD_ADAPT_FINETUNE)
        return -1;
    return a->sh_n > AD_ADAPT_SHADOW_SAVE_MAX ? -2 : (long)a->sh_n;
}

static int save_shadow(const ad_adapt *a, cJSON *o)
{
    static const char *const key[] = { "ts_steps", "live", "cand", "regime" };
    cJSON *sh, *pd, *t;
    size_t i;
    int fl, steps;

    if (ad_adapt_shadow_span(a) < 0)
        return 0;
    if ((sh = cJSON_AddObjectToObject(o, "shadow")) == NULL ||
        !cJSON_AddStringToObject(sh, "model_id", a->cand->id) ||
        !cJSON_AddNumberToObject(sh, "attempt", (double)a->attempt_cur) ||
        !cJSON_AddNumberToObject(sh, "start_ms", (double)a->sh_start) ||
        !cJSON_AddNumberToObject(sh, "windows", (double)a->sh_resolved) ||
        !cJSON_AddNumberToObject(sh, "train_windows", (double)a->train_windows) ||
        !cJSON_AddBoolToObject(sh, "accept", a->acc_ft))
        return -1;
    if (a->have_rep &&
        ((t = cJSON_AddObjectToObject(sh, "report")) == NULL ||
         !cJSON_AddNumberToObject(t, "epochs_run", a->rep.epochs_run) ||
         !ad_json_num(t, "train_loss", a->rep.train_loss) ||
         !ad_json_num(t, "seconds", a->rep.seconds)))
        return -1;
    steps = span_steps(a);
    if ((t = span_array(a, SPAN_TS, steps)) == NULL)
        return -1;
    cJSON_AddItemToObject(sh, steps ? "ts_steps" : "ts", t);
    fl = span_floats(a);
    for (i = 1; i < 4; i++) {
        if ((t = span_array(a, (int)i, fl)) == NULL && fl && (i == 1 || i == 2)) {
            /* not read back: all as doubles */
            cJSON_DeleteItemFromObjectCaseSensitive(sh, key[1]);
            fl = 0;
            i = 0;
            continue;
        }
        if (t == NULL)
            return -1;
        cJSON_AddItemToObject(sh, key[i], t);
    }
    if (fl && !cJSON_AddBoolToObject(sh, "float", 1))
        return -1;
    if ((pd = cJSON_AddArrayToObject(sh, "pending")) == NULL)
        return -1;
    for (i = 0; i < a->plen; i++) {
        const pend_ent *e = &a->pend[(a->phead + i) % a->pcap];

        if (!e->shadow || e->shadow != a->shadow_gen)
            continue;
        if ((t = cJSON_CreateObject()) == NULL)
            return -1;
        cJSON_AddItemToArray(pd, t);
        if (!cJSON_AddNumberToObject(t, "ago", (double)(a->offered - e->seq)) ||
            !cJSON_AddNumberToObject(t, "ts", (double)e->ts) ||
            !cJSON_AddNumberToObject(t, "live", e->live) ||
            !cJSON_AddNumberToObject(t, "cand", e->cand) ||
            !cJSON_AddNumberToObject(t, "regime", e->regime != 0))
            return -1;
    }
    return 0;
}

struct cJSON *ad_adapt_save_json(const ad_adapt *a, int parts)
{
    cJSON *o = cJSON_CreateObject(), *s, *arr, *t, *w, *last;
    size_t i;

    if (o == NULL)
        return NULL;
    if (!cJSON_AddNumberToObject(o, "version", 1) ||
        !cJSON_AddNumberToObject(o, "T", a->T) ||
        !cJSON_AddNumberToObject(o, "F", a->F) ||
        !cJSON_AddNumberToObject(o, "offered", (double)a->offered) ||
        !cJSON_AddNumberToObject(o, "admitted", (double)a->admitted) ||
        !cJSON_AddNumberToObject(o, "attempts", (double)a->attempts) ||
        !cJSON_AddNumberToObject(o, "promotions", (double)a->promotions) ||
        !cJSON_AddNumberToObject(o, "rejections", (double)a->rejections) ||
        !cJSON_AddNumberToObject(o, "failures", (double)a->failures) ||
        (s = cJSON_AddObjectToObject(o, "schedule")) == NULL ||
        !cJSON_AddNumberToObject(s, "windows", (double)a->sched_windows) ||
        !(a->sched_start == SCHED_UNSET
              ? cJSON_AddNullToObject(s, "start_ms")
              : cJSON_AddNumberToObject(s, "start_ms", (double)a->sched_start)))
        goto out;
    if (a->have_last) {
        if ((last = ad_adapt_event_to_json(&a->last, NULL)) == NULL)
            goto out;
        cJSON_AddItemToObject(o, "last", last);
    } else if (!cJSON_AddNullToObject(o, "last")) {
        goto out;
    }
    if (a->ref_id[0] && a->ref_base_f == NULL) {  /* a reference, no baseline yet */
        cJSON *r = cJSON_AddObjectToObject(o, "reference");

        if (r == NULL || !cJSON_AddStringToObject(r, "id", a->ref_id))
            goto out;
    } else if (a->ref_base_f != NULL) {    /* the reference drift's baseline */
        cJSON *r = cJSON_AddObjectToObject(o, "reference"), *bf;

        if (r == NULL || !cJSON_AddStringToObject(r, "id", a->ref_id) ||
            !ad_json_num(r, "base", a->ref_base) ||
            !cJSON_AddNumberToObject(r, "base_ts", (double)a->ref_base_ts) ||
            !ad_json_num(r, "error", a->ref_err) ||
            !cJSON_AddNumberToObject(r, "top", a->ref_top) ||
            !ad_json_num(r, "top_ratio", a->ref_top_ratio) ||
            !cJSON_AddBoolToObject(r, "warned", a->ref_warned) ||
            (bf = cJSON_AddArrayToObject(r, "base_features")) == NULL)
            goto out;
        for (i = 0; i < (size_t)a->F; i++) {
            cJSON *n = cJSON_CreateNumber(a->ref_base_f[i]);

            if (n == NULL)
                goto out;
            cJSON_AddItemToArray(bf, n);
        }
    }
    if ((arr = cJSON_AddArrayToObject(o, "true_alerts")) == NULL)
        goto out;
    for (i = 0; i < a->talen; i++) {
        if ((t = cJSON_CreateObject()) == NULL)
            goto out;
        cJSON_AddItemToArray(arr, t);
        if (!cJSON_AddStringToObject(t, "id", a->ta[i].id) ||
            !cJSON_AddNumberToObject(t, "ts", (double)a->ta[i].ts) ||
            !ad_json_num(t, "score", a->ta[i].score) ||
            (w = window_json(a, a->tawin + i * a->wsz)) == NULL)
            goto out;
        cJSON_AddItemToObject(t, "window", w);
    }
    if (save_alerts_open(a, o) != 0 || save_normal(a, o, (parts & AD_ADAPT_SAVE_NORMAL) != 0) != 0 ||
        ((parts & AD_ADAPT_SAVE_SPAN) && save_shadow(a, o) != 0))
        goto out;
    return o;
out:
    cJSON_Delete(o);
    return NULL;
}

char *ad_adapt_save_parts(const ad_adapt *a, int parts)
{
    cJSON *o = ad_adapt_save_json(a, parts);
    char *txt = o ? ad_json_print(o) : NULL;

    cJSON_Delete(o);
    return txt;
}

char *ad_adapt_save(const ad_adapt *a)
{
    return ad_adapt_save_parts(a, 0);
}

char *ad_adapt_save_handover(const ad_adapt *a)
{
    return ad_adapt_save_parts(a, AD_ADAPT_SAVE_NORMAL | AD_ADAPT_SAVE_SPAN);
}

/* A finite number at key (path for messages) in lo..hi. */
static int get_num(const cJSON *o, const char *path, const char *key,
                   double lo, double hi, double *v, char *err, size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) ||
        j->valuedouble < lo || j->valuedouble > hi)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "adapt state: %s%s: expected a number in %g..%g", path, key, lo, hi);
    *v = j->valuedouble;
    return 0;
}

/* A number or null (NAN) at key. */
static double opt_num(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

/* The reference drift's baseline (adapt.h REFERENCE), when it is for the
 * reference in use (or none is set yet: the first set_reference of
 * another id drops it). Damaged: left out, a new baseline is taken. */
static void restore_reference(ad_adapt *a, const cJSON *r)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(r, "base_features");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(r, "warned");
    double base = opt_num(r, "base"), e = opt_num(r, "error"), ts = opt_num(r, "base_ts"), top;
    double *f;
    int i;

    if (!cJSON_IsObject(r) || !cJSON_IsString(id) || strlen(id->valuestring) > AD_MODEL_ID_LEN ||
        id->valuestring[0] == '\0')
        return;
    /* the saved reference is the one set now (or none is set), or the
     * live model (an operator's accept_drift, a promoted model restored);
     * another one (a model trained on the stream, since replaced) is gone */
    if (a->ref_id[0] && strcmp(a->ref_id, id->valuestring) != 0) {
        if (a->live_id[0] == '\0' || strcmp(a->live_id, id->valuestring) != 0 ||
            !a->cfg.enabled)
            return;
        ad_model_free(a->ref);      /* the live model is the reference */
        a->ref = NULL;
        snprintf(a->ref_id, sizeof(a->ref_id), "%s", id->valuestring);
        free(a->ref_base_f);
        a->ref_base_f = NULL;
        a->ref_base_ts = INT64_MIN;
        a->ref_warned = 0;
        a->ref_top = -1;
    } else if (a->ref_id[0] == '\0') {
        snprintf(a->ref_id, sizeof(a->ref_id), "%s", id->valuestring);
    }
    if (!(base > 0) ||
        !isfinite(base) || !(e > 0) || !isfinite(e) || !isfinite(ts) || fabs(ts) > 9e18 ||
        !cJSON_IsArray(bf) || cJSON_GetArraySize(bf) != a->F ||
        (f = malloc((size_t)a->F * sizeof(double))) == NULL)
        return;                     /* no baseline yet (or damaged) */
    for (i = 0; i < a->F; i++) {
        const cJSON *v = cJSON_GetArrayItem(bf, i);

        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
            free(f);
            return;
        }
        f[i] = v->valuedouble;
    }
    free(a->ref_base_f);
    a->ref_base_f = f;
    snprintf(a->ref_id, sizeof(a->ref_id), "%s", id->valuestring);
    a->ref_base = base;
    a->ref_base_ts = (int64_t)ts;
    a->ref_err = e;
    a->ref_ratio = e / base;
    top = opt_num(r, "top");
    a->ref_top = isfinite(top) && top >= 0 && top < a->F ? (int)top : -1;
    a->ref_top_ratio = a->ref_top >= 0 ? opt_num(r, "top_ratio") : NAN;
    a->ref_warned = cJSON_IsTrue(w);
}

static int parse_event(const cJSON *j, ad_adapt_event *ev, char *err, size_t errlen)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "figures");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "event");
    const cJSON *s;
    double v;
    int t, rc;

    memset(ev, 0, sizeof(*ev));
    for (t = AD_ADAPT_EV_TRAIN_READY; t <= AD_ADAPT_EV_WAITING; t++)
        if (cJSON_IsString(n) && strcmp(n->valuestring, ad_adapt_ev_name(t)) == 0)
            break;
    if (t > AD_ADAPT_EV_WAITING || !cJSON_IsObject(f))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "adapt state: last: expected an adapt event with figures");
    ev->type = (ad_adapt_ev_type)t;
    if ((rc = get_num(j, "last.", "ts", -9.2e18, 9.2e18, &v, err, errlen)) != 0)
        return rc;
    ev->ts_ms = (int64_t)v;
    if ((rc = get_num(j, "last.", "attempt", 0, 9e15, &v, err, errlen)) != 0)
        return rc;
    ev->attempt = (uint64_t)v;
    s = cJSON_GetObjectItemCaseSensitive(j, "origin");
    ev->origin = cJSON_IsString(s) && strcmp(s->valuestring, "reload") == 0
                 ? AD_ADAPT_RELOAD : AD_ADAPT_FINETUNE;
    if (cJSON_IsString(s = cJSON_GetObjectItemCaseSensitive(j, "model_id")))
        snprintf(ev->model_id, sizeof(ev->model_id), "%s", s->valuestring);
    if (cJSON_IsString(s = cJSON_GetObjectItemCaseSensitive(j, "reason")))
        snprintf(ev->reason, sizeof(ev->reason), "%s", s->valuestring);
    s = cJSON_GetObjectItemCaseSensitive(f, "compare");
    ev->compare = cJSON_IsString(s) && strcmp(s->valuestring, "median") == 0
                  ? AD_ADAPT_MEDIAN : AD_ADAPT_MEAN;
    ev->ref_error = opt_num(f, "reference_error");
    ev->ref_ratio = opt_num(f, "reference_ratio");
    ev->ref_feature_ratio = opt_num(f, "reference_feature_ratio");
    v = opt_num(f, "reference_feature_index");
    ev->ref_feature = isfinite(v) && v >= 0 && v < 1e6 ? (int)v : -1;
    v = opt_num(f, "reference_since");
    ev->ref_since = isfinite(v) && fabs(v) < 9e18 ? (int64_t)v : 0;
    ev->live_error = opt_num(f, "live_error");
    ev->cand_error = opt_num(f, "candidate_error");
    ev->gain = opt_num(f, "gain");
    ev->min_gain = opt_num(f, "min_gain");
    ev->cand_threshold = opt_num(f, "candidate_threshold");
    ev->cand_fit = opt_num(f, "candidate_fit");
    ev->hold_threshold = opt_num(f, "hold_threshold");
    v = opt_num(f, "shadow_windows");
    ev->shadow_windows = v >= 0 && v < 9e15 ? (uint64_t)v : 0;
    v = opt_num(f, "normal_windows");
    ev->normal_windows = v >= 0 && v < 9e15 ? (uint64_t)v : 0;
    v = opt_num(f, "regime_windows");
    ev->regime_windows = v >= 0 && v < 9e15 ? (uint64_t)v : 0;
    v = opt_num(f, "alerts_checked");
    ev->alerts_checked = v >= 0 && v <= 64 ? (int)v : 0;
    v = opt_num(f, "alerts_silenced");
    ev->alerts_silenced = v >= 0 && v <= 64 ? (int)v : 0;
    ev->min_alert_ratio = opt_num(f, "min_alert_ratio");
    if (cJSON_IsString(s = cJSON_GetObjectItemCaseSensitive(f, "silenced_alert")))
        snprintf(ev->silenced_alert, sizeof(ev->silenced_alert), "%s", s->valuestring);
    v = opt_num(f, "train_windows");
    ev->train_windows = v >= 0 && v < 9e15 ? (uint64_t)v : 0;
    v = opt_num(f, "epochs_run");
    ev->epochs_run = v >= 0 && v <= 1e6 ? (int)v : 0;
    ev->train_loss = opt_num(f, "train_loss");
    ev->train_seconds = opt_num(f, "train_seconds");
    v = opt_num(f, "regimes_kept");
    ev->regimes_kept = v >= 0 && v <= 64 ? (int)v : -1;
    v = opt_num(f, "regimes_ended");
    ev->regimes_ended = v >= 0 && v <= 64 ? (int)v : -1;
    return 0;
}

/* A saved window (path names it in messages: "true_alerts[0].") into out
 * (wsz floats). 0 or AD_EFORMAT. */
static int parse_window(const ad_adapt *a, const cJSON *w, const char *path, float *out,
                        char *err, size_t errlen)
{
    const cJSON *x;
    size_t k = 0;

    if (!cJSON_IsArray(w) || (size_t)cJSON_GetArraySize(w) != a->wsz)
        return ad_errf(err, errlen, AD_EFORMAT, "adapt state: %swindow: expected %zu numbers",
                       path, a->wsz);
    cJSON_ArrayForEach(x, w) {
        if (!cJSON_IsNumber(x) || !(fabs(x->valuedouble) <= FLT_MAX))
            return ad_errf(err, errlen, AD_EFORMAT,
                           "adapt state: %swindow[%zu]: expected a finite number "
                           "within float range", path, k);
        out[k++] = (float)x->valuedouble;
    }
    return 0;
}

/* The true alerts array into ta/tawin (caller's scratch, tacap entries). */
static int parse_alerts(const ad_adapt *a, const cJSON *arr, true_alert *ta,
                        float *tawin, size_t *n, char *err, size_t errlen)
{
    const cJSON *t;
    size_t i = 0;

    if (!cJSON_IsArray(arr))
        return ad_errf(err, errlen, AD_EFORMAT, "adapt state: true_alerts: expected an array");
    cJSON_ArrayForEach(t, arr) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(t, "window");
        double v;
        char path[48];
        int rc;

        if (i == a->tacap)      /* fewer kept now (adapt.true_alerts): newest */
            break;
        snprintf(path, sizeof(path), "true_alerts[%zu].", i);
        if (!cJSON_IsString(id) || !cJSON_IsArray(w) ||
            (size_t)cJSON_GetArraySize(w) != a->wsz)
            return ad_errf(err, errlen, AD_EFORMAT,
                           "adapt state: %s: expected id and a window of %zu numbers",
                           path, a->wsz);
        if ((rc = get_num(t, path, "ts", -9.2e18, 9.2e18, &v, err, errlen)) != 0)
            return rc;
        snprintf(ta[i].id, sizeof(ta[i].id), "%s", id->valuestring);
        ta[i].ts = (int64_t)v;
        ta[i].score = opt_num(t, "score");
        if ((rc = parse_window(a, w, path, tawin + i * a->wsz, err, errlen)) != 0)
            return rc;
        i++;
    }
    *n = i;
    return 0;
}

/* save_alerts_open's members, parsed (nothing applied yet). */
typedef struct open_alerts {
    int have_peak;
    char id[AD_ALERT_ID_LEN];
    int64_t peak_ts;
    double peak_score;
    float *peak;                /* wsz */
    double post_clear, cleared_at;
    size_t naw;
    float *awin;                /* naw * wsz, oldest first */
    int64_t *ats;
} open_alerts;

static void open_alerts_free(open_alerts *p)
{
    free(p->peak);
    free(p->awin);
    free(p->ats);
}

/* An optional whole number of o under key in 0..hi (0 when absent). */
static int opt_count(const cJSON *o, const char *key, double hi, double *v, char *err,
                     size_t errlen)
{
    *v = 0;
    if (cJSON_GetObjectItemCaseSensitive(o, key) == NULL)
        return 0;
    return get_num(o, "", key, 0, hi, v, err, errlen);
}

/* Parse save_alerts_open's members of o into p (zeroed by the caller);
 * absent ones (a state saved before they were kept) are none. */
static int parse_open_alerts(const ad_adapt *a, const cJSON *o, open_alerts *p, char *err,
                             size_t errlen)
{
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(o, "alert");
    const cJSON *aw = cJSON_GetObjectItemCaseSensitive(o, "alert_windows"), *t;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(al, "id");
    double v;
    char path[48];
    int rc;

    if ((rc = opt_count(o, "post_clear", 1e6, &p->post_clear, err, errlen)) != 0 ||
        (rc = opt_count(o, "cleared_at", 9e15, &p->cleared_at, err, errlen)) != 0)
        return rc;
    if (al != NULL && !cJSON_IsNull(al)) {
        if (!cJSON_IsString(id) || strlen(id->valuestring) >= sizeof(p->id))
            return ad_errf(err, errlen, AD_EFORMAT, "adapt state: alert.id: expected the "
                           "open alert's id");
        if ((rc = get_num(al, "alert.", "ts", -9.2e18, 9.2e18, &v, err, errlen)) != 0)
            return rc;
        if ((p->peak = malloc(a->wsz * sizeof(float))) == NULL)
            return ad_errf(err, errlen, AD_ENOMEM, "adapt state: out of memory");
        if ((rc = parse_window(a, cJSON_GetObjectItemCaseSensitive(al, "window"), "alert.",
                               p->peak, err, errlen)) != 0)
            return rc;
        snprintf(p->id, sizeof(p->id), "%s", id->valuestring);
        p->peak_ts = (int64_t)v;
        p->peak_score = opt_num(al, "score");
        p->have_peak = 1;
    }
    if (aw == NULL)
        return 0;
    if (!cJSON_IsArray(aw))
        return ad_errf(err, errlen, AD_EFORMAT, "adapt state: alert_windows: expected an array");
    p->naw = (size_t)cJSON_GetArraySize(aw);
    if (p->naw == 0)
        return 0;
    p->awin = malloc(p->naw * a->wsz * sizeof(float));
    p->ats = malloc(p->naw * sizeof(int64_t));
    if (p->awin == NULL || p->ats == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "adapt state: out of memory");
    p->naw = 0;
    cJSON_ArrayForEach(t, aw) {
        snprintf(path, sizeof(path), "alert_windows[%zu].", p->naw);
        if ((rc = get_num(t, path, "ts", -9.2e18, 9.2e18, &v, err, errlen)) != 0 ||
            (rc = parse_window(a, cJSON_GetObjectItemCaseSensitive(t, "window"), path,
                               p->awin + p->naw * a->wsz, err, errlen)) != 0)
            return rc;
        p->ats[p->naw++] = (int64_t)v;
    }
    return 0;
}

/* Apply parse_open_alerts' p. The open alert's peak is kept for when the
 * detector continues that alert (ad_adapt_alert_raised with its id); the
 * windows inside alerts go into the ring (the newest it holds; one sized
 * for them while the counts are not known yet: the detector sizes it
 * when they are, keeping the newest). */
static void apply_open_alerts(ad_adapt *a, const open_alerts *p)
{
    size_t i, slot;

    a->resume_peak = p->have_peak;
    if (p->have_peak) {
        snprintf(a->cur_id, sizeof(a->cur_id), "%s", p->id);
        memcpy(a->peak, p->peak, a->wsz * sizeof(float));
        a->peak_ts = p->peak_ts;
        a->peak_score = p->peak_score;
    }
    a->post_clear = (int)p->post_clear;
    a->cleared_at = (uint64_t)p->cleared_at;
    a->alen = a->ahead = 0;
    if (!a->resolved && a->acap < p->naw)
        ad_adapt_keep_alert_windows(a, p->naw);     /* none: none kept */
    for (i = 0; i < p->naw && a->acap > 0; i++) {
        slot = (a->ahead + a->alen) % a->acap;
        if (a->alen == a->acap)
            a->ahead = (a->ahead + 1) % a->acap;
        else
            a->alen++;
        memcpy(a->awin + slot * a->wsz, p->awin + i * a->wsz, a->wsz * sizeof(float));
        a->ats[slot] = p->ats[i];
    }
}

/* The saved normal set n (save_normal) into the resolved learner a: the
 * newest windows the set and the pending queue hold now (counts changed
 * since: what fits), the stride's count and the windows seen; all of it
 * read before any is taken. 0, or an AD_E* code with err set (nothing
 * taken). */
static int normal_apply(ad_adapt *a, const cJSON *n, char *err, size_t errlen)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(n, "windows");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(n, "pending");
    const cJSON *sn = cJSON_GetObjectItemCaseSensitive(n, "seen"), *t;
    size_t nw, np, ns, skipw, skipp, i;
    float *win = NULL;
    int64_t *ts = NULL, seen[AD_ADAPT_RUN_UP];
    uint64_t *ago = NULL;
    double v, stride, seen_n;
    char path[48];
    int rc = 0;

    if (!cJSON_IsObject(n) || !cJSON_IsArray(ws) || !cJSON_IsArray(ps) || !cJSON_IsArray(sn))
        return ad_errf(err, errlen, AD_EFORMAT, "adapt state: normal: expected an object "
                       "with windows, pending and seen arrays");
    if ((rc = get_num(n, "normal.", "stride_count", 0, 9e15, &stride, err, errlen)) != 0 ||
        (rc = get_num(n, "normal.", "seen_n", 0, 9e15, &seen_n, err, errlen)) != 0)
        return rc;
    nw = (size_t)cJSON_GetArraySize(ws);
    np = (size_t)cJSON_GetArraySize(ps);
    ns = (size_t)cJSON_GetArraySize(sn);
    if (ns > AD_ADAPT_RUN_UP || (double)ns > seen_n)
        return ad_errf(err, errlen, AD_EFORMAT, "adapt state: normal.seen: at most %d times "
                       "and seen_n", AD_ADAPT_RUN_UP);
    skipw = nw > a->ncap ? nw - a->ncap : 0;
    skipp = np > a->pcap ? np - a->pcap : 0;
    win = malloc((nw - skipw + np - skipp + 1) * a->wsz * sizeof(float));
    ts = malloc((nw - skipw + np - skipp + 1) * sizeof(int64_t));
    ago = malloc((np - skipp + 1) * sizeof(uint64_t));
    if (win == NULL || ts == NULL || ago == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "adapt state: out of memory");
        goto out;
    }
    i = 0;
    cJSON_ArrayForEach(t, ws) {
        size_t k = i - skipw;
        snprintf(path, sizeof(path), "normal.windows[%zu].", i);
        if (i++ < skipw)
            continue;
        if ((rc = get_num(t, path, "ts", -9.2e18, 9.2e18, &v, err, errlen)) != 0 ||
            (rc = parse_window(a, cJSON_GetObjectItemCaseSensitive(t, "window"), path,
                               win + k * a->wsz, err, errlen)) != 0)
            goto out;
        ts[k] = (int64_t)v;
    }
    i = 0;
    cJSON_ArrayForEach(t, ps) {
        size_t k = nw - skipw + i - skipp;
        double g;
        snprintf(path, sizeof(path), "normal.pending[%zu].", i);
        if (i++ < skipp)
            continue;
        if ((rc = get_num(t, path, "ago", 0, (double)a->offered, &g, err, errlen)) != 0 ||
            (rc = get_num(t, path, "ts", -9.2e18, 9.2e18, &v, err, errlen)) != 0 ||
            (rc = parse_window(a, cJSON_GetObjectItemCaseSensitive(t, "window"), path,
                               win + k * a->wsz, err, errlen)) != 0)
            goto out;
        ts[k] = (int64_t)v;
        ago[k - (nw - skipw)] = (uint64_t)g;
    }
    i = 0;
    cJSON_ArrayForEach(t, sn) {
        if (!cJSON_IsNumber(t) || !(fabs(t->valuedouble) <= 9.2e18)) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: normal.seen[%zu]: expected "
                         "a time in ms", i);
            goto out;
        }
        seen[i++] = (int64_t)t->valuedouble;
    }
    /* all read: taken */
    a->nhead = 0;
    a->nlen = nw - skipw;
    for (i = 0; i < a->nlen; i++) {
        memcpy(a->nset + i * a->wsz, win + i * a->wsz, a->wsz * sizeof(float));
        a->nts[i] = ts[i];
    }
    a->phead = 0;
    a->plen = np - skipp;
    for (i = 0; i < a->plen; i++) {
        size_t k = a->nlen + i;
        memset(&a->pend[i], 0, sizeof(a->pend[i]));
        a->pend[i].seq = a->offered - ago[i];
        a->pend[i].ts = ts[k];
        a->pend[i].live = a->pend[i].cand = NAN;
        memcpy(a->pwin + i * a->wsz, win + k * a->wsz, a->wsz * sizeof(float));
    }
    a->stride_ctr = (uint64_t)stride;
    a->seen = (uint64_t)seen_n;
    for (i = 0; i < ns; i++)
        a->seen_ts[(a->seen - ns + i) % AD_ADAPT_RUN_UP] = seen[i];
out:
    free(win);
    free(ts);
    free(ago);
    return rc;
}

void adapt_normal_take(ad_adapt *a)
{
    char err[200];

    if (a->rest_normal == NULL)
        return;
    if (a->resolved && normal_apply(a, a->rest_normal, err, sizeof(err)) != 0)
        ad_log(AD_LOG_WARNING, "continual learning: saved normal set ignored (%s): it "
               "refills from the next windows", err);
    cJSON_Delete(a->rest_normal);
    a->rest_normal = NULL;
}

/* What save_normal wrote besides the set: the due fine-tunes and the wait
 * for a regime's occurrence (offer counts, after "offered" is taken); the
 * set itself now, or at the resolution. Damaged parts are ignored with a
 * warning. */
static void restore_normal(ad_adapt *a, const cJSON *o)
{
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(o, "accept_finetune");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "normal");
    double v[4] = { 0, 0, 0, 0 };
    char err[200];

    cJSON_Delete(a->rest_normal);
    a->rest_normal = NULL;
    if (opt_count(o, "regime_last", (double)a->offered, &v[0], err, sizeof(err)) != 0 ||
        opt_count(o, "held_at", (double)a->offered, &v[1], err, sizeof(err)) != 0) {
        ad_log(AD_LOG_WARNING, "continual learning: %s: ignored", err);
    } else {
        a->reg_last = (uint64_t)v[0];
        a->held_at = (uint64_t)v[1];
    }
    if (af != NULL) {
        if (get_num(af, "accept_finetune.", "admitted", 0, (double)a->admitted, &v[2], err,
                    sizeof(err)) != 0 ||
            get_num(af, "accept_finetune.", "need", 0, 9e15, &v[3], err, sizeof(err)) != 0) {
            ad_log(AD_LOG_WARNING, "continual learning: %s: the acceptance's fine-tune is "
                   "due at once", err);
            v[2] = (double)a->admitted;
            v[3] = 0;
        }
        a->acc_pending = 1;
        a->acc_admitted = (uint64_t)v[2];
        a->acc_need = (uint64_t)v[3];
    }
    /* as saved, for a candidate that comes back (ad_adapt_shadow_resume) */
    a->rest_acc_pending = af != NULL;
    a->rest_acc_admitted = (uint64_t)v[2];
    a->rest_acc_need = (uint64_t)v[3];
    /* a job out or a fine-tune's candidate in shadow is not saved: the
     * fine-tune is due again at once */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "finetune_lost"))) {
        a->acc_pending = 1;
        a->acc_admitted = a->admitted;
        a->acc_need = 0;
    }
    if (n == NULL)
        return;
    if (!a->resolved) {
        if ((a->rest_normal = cJSON_Duplicate(n, 1)) == NULL)
            ad_log(AD_LOG_WARNING, "continual learning: saved normal set ignored (out of "
                   "memory): it refills from the next windows");
        return;
    }
    if (normal_apply(a, n, err, sizeof(err)) != 0)
        ad_log(AD_LOG_WARNING, "continual learning: saved normal set ignored (%s): it "
               "refills from the next windows", err);
}

int ad_adapt_restore_counts(ad_adapt *a, const char *json)
{
    static const char *const key[4] = { "attempts", "promotions", "rejections", "failures" };
    cJSON *o = cJSON_Parse(json ? json : "");
    double v[4];
    int i, rc = cJSON_IsObject(o) ? 0 : AD_EFORMAT;

    for (i = 0; i < 4 && rc == 0; i++)
        rc = get_num(o, "", key[i], 0, 9e15, &v[i], NULL, 0);
    cJSON_Delete(o);
    if (rc != 0)
        return AD_EFORMAT;
    a->attempts = (uint64_t)v[0];
    a->promotions = (uint64_t)v[1];
    a->rejections = (uint64_t)v[2];
    a->failures = (uint64_t)v[3];
    return 0;
}

int ad_adapt_restore(ad_adapt *a, const char *json, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json ? json : "");
    const cJSON *s, *last;
    true_alert *ta = NULL;
    float *tawin = NULL;
    ad_adapt_event ev;
    open_alerts oa;
    double v[10];
    size_t nta = 0;
    int rc, have_last = 0;

    memset(&oa, 0, sizeof(oa));

    if (!cJSON_IsObject(o)) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: not a JSON object");
        goto out;
    }
    if ((rc = get_num(o, "", "version", 1, 1, &v[0], err, errlen)) != 0 ||
        (rc = get_num(o, "", "T", 1, AD_MAX_WINDOW, &v[1], err, errlen)) != 0 ||
        (rc = get_num(o, "", "F", 1, AD_MAX_FEATURES, &v[2], err, errlen)) != 0)
        goto out;
    if ((int)v[1] != a->T || (int)v[2] != a->F) {
        rc = ad_errf(err, errlen, AD_EINVAL,
                     "adapt state: window %dx%d, the model's is %dx%d",
                     (int)v[1], (int)v[2], a->T, a->F);
        goto out;
    }
    s = cJSON_GetObjectItemCaseSensitive(o, "schedule");
    if ((rc = get_num(o, "", "offered", 0, 9e15, &v[3], err, errlen)) != 0 ||
        (rc = get_num(o, "", "admitted", 0, 9e15, &v[4], err, errlen)) != 0 ||
        (rc = get_num(o, "", "attempts", 0, 9e15, &v[5], err, errlen)) != 0 ||
        (rc = get_num(o, "", "promotions", 0, 9e15, &v[6], err, errlen)) != 0 ||
        (rc = get_num(o, "", "rejections", 0, 9e15, &v[7], err, errlen)) != 0 ||
        (rc = get_num(o, "", "failures", 0, 9e15, &v[8], err, errlen)) != 0)
        goto out;
    if (!cJSON_IsObject(s)) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: schedule: expected an object");
        goto out;
    }
    if ((rc = get_num(s, "schedule.", "windows", 0, 9e15, &v[9], err, errlen)) != 0)
        goto out;
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(s, "start_ms");
        if (st && !cJSON_IsNull(st) &&
            !(cJSON_IsNumber(st) && fabs(st->valuedouble) <= 9.2e18)) {
            rc = ad_errf(err, errlen, AD_EFORMAT,
                         "adapt state: schedule.start_ms: expected null or a time in ms");
            goto out;
        }
    }
    last = cJSON_GetObjectItemCaseSensitive(o, "last");
    if (last && !cJSON_IsNull(last)) {
        if ((rc = parse_event(last, &ev, err, errlen)) != 0)
            goto out;
        have_last = 1;
    }
    ta = calloc(a->tacap ? a->tacap : 1, sizeof(true_alert));
    tawin = calloc((a->tacap ? a->tacap : 1) * a->wsz, sizeof(float));
    if (!ta || !tawin) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "adapt state: out of memory");
        goto out;
    }
    if ((rc = parse_alerts(a, cJSON_GetObjectItemCaseSensitive(o, "true_alerts"),
                           ta, tawin, &nta, err, errlen)) != 0 ||
        (rc = parse_open_alerts(a, o, &oa, err, errlen)) != 0)
        goto out;
    /* Everything valid: apply. */
    a->offered = (uint64_t)v[3];
    a->admitted = (uint64_t)v[4];
    a->attempts = (uint64_t)v[5];
    a->promotions = (uint64_t)v[6];
    a->rejections = (uint64_t)v[7];
    a->failures = (uint64_t)v[8];
    a->sched_windows = (uint64_t)v[9];
    s = cJSON_GetObjectItemCaseSensitive(s, "start_ms");
    a->sched_start = cJSON_IsNumber(s) && isfinite(s->valuedouble)
                     ? (int64_t)s->valuedouble : SCHED_UNSET;
    a->have_last = have_last;
    if (have_last)
        a->last = ev;
    memcpy(a->ta, ta, nta * sizeof(true_alert));
    memcpy(a->tawin, tawin, nta * a->wsz * sizeof(float));
    a->talen = nta;
    apply_open_alerts(a, &oa);
    restore_reference(a, cJSON_GetObjectItemCaseSensitive(o, "reference"));
    restore_normal(a, o);
    /* a saved candidate in shadow waits for its model (the caller's file);
     * not when this learner has one (a reload restores the calibration of
     * a running stream: its candidate goes on) */
    cJSON_Delete(a->rest_shadow);
    a->rest_shadow = NULL;
    s = cJSON_GetObjectItemCaseSensitive(o, "shadow");
    if (cJSON_IsObject(s) && a->cand == NULL && a->decided == NULL && !a->job_out &&
        (a->rest_shadow = cJSON_Duplicate(s, 1)) == NULL)
        ad_log(AD_LOG_WARNING, "continual learning: saved candidate in shadow dropped (out "
               "of memory)");
    rc = 0;
out:
    open_alerts_free(&oa);
    free(ta);
    free(tawin);
    cJSON_Delete(o);
    return rc;
}

int ad_adapt_shadow_saved(const ad_adapt *a, char *id, size_t len)
{
    const cJSON *m = a ? cJSON_GetObjectItemCaseSensitive(a->rest_shadow, "model_id") : NULL;

    if (a == NULL || a->rest_shadow == NULL)
        return 0;
    if (id && len)
        snprintf(id, len, "%s", cJSON_IsString(m) ? m->valuestring : "");
    return 1;
}

/* One array of the saved span: n finite numbers in lo..hi into out. */
static int shadow_array(const cJSON *sh, const char *key, size_t n, double lo, double hi,
                        double *out, char *err, size_t errlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(sh, key), *t;
    size_t i = 0;

    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != n)
        return ad_errf(err, errlen, AD_EFORMAT, "adapt state: shadow.%s: expected an array "
                       "of %zu numbers", key, n);
    cJSON_ArrayForEach(t, arr) {
        if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || t->valuedouble < lo ||
            t->valuedouble > hi)
            return ad_errf(err, errlen, AD_EFORMAT, "adapt state: shadow.%s[%zu]: expected "
                           "a number in %g..%g", key, i, lo, hi);
        out[i++] = t->valuedouble;
    }
    return 0;
}

int ad_adapt_shadow_resume(ad_adapt *a, ad_model *cand, char *err, size_t errlen)
{
    const cJSON *sh, *id, *pd, *t, *rep;
    double v[5], *ts = NULL, *lv = NULL, *cd = NULL, *rg = NULL, *pv = NULL;
    size_t n, np = 0, i, k;
    int rc, fl;
    const char *tkey;

    if (a == NULL || (sh = a->rest_shadow) == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "no candidate in shadow was saved");
    id = cJSON_GetObjectItemCaseSensitive(sh, "model_id");
    rep = cJSON_GetObjectItemCaseSensitive(sh, "report");
    pd = cJSON_GetObjectItemCaseSensitive(sh, "pending");
    if (a->cand != NULL || a->decided != NULL || a->job_out) {
        rc = ad_errf(err, errlen, AD_EINVAL, "another candidate is in shadow or decided");
        goto out;
    }
    if (!a->resolved) {
        rc = ad_errf(err, errlen, AD_EINVAL, "the stream's window period is not known yet");
        goto out;
    }
    if (cand == NULL) {
        rc = ad_errf(err, errlen, AD_EINVAL, "no candidate model");
        goto out;
    }
    if (cand->window != a->T || cand->n_features != a->F) {
        rc = ad_errf(err, errlen, AD_EINVAL, "its window is %dx%d, the stream's %dx%d",
                     cand->window, cand->n_features, a->T, a->F);
        goto out;
    }
    if (!cJSON_IsString(id) || strcmp(id->valuestring, cand->id) != 0) {
        rc = ad_errf(err, errlen, AD_EINVAL, "it holds model %s, the saved candidate is %s",
                     cand->id, cJSON_IsString(id) ? id->valuestring : "(none)");
        goto out;
    }
    if ((rc = get_num(sh, "shadow.", "attempt", 1, (double)a->attempts, &v[0], err,
                      errlen)) != 0 ||
        (rc = get_num(sh, "shadow.", "start_ms", -9.2e18, 9.2e18, &v[1], err, errlen)) != 0 ||
        (rc = get_num(sh, "shadow.", "windows", 0, (double)a->sh_cap, &v[2], err,
                      errlen)) != 0 ||
        (rc = get_num(sh, "shadow.", "train_windows", 0, 9e15, &v[3], err, errlen)) != 0)
        goto out;
    if (rep != NULL && (rc = get_num(rep, "shadow.report.", "epochs_run", 0, 1e9, &v[4], err,
                                     errlen)) != 0)
        goto out;
    /* the times as they are (a state saved before the steps), or steps */
    tkey = cJSON_GetObjectItemCaseSensitive(sh, "ts") ? "ts" : "ts_steps";
    fl = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sh, "float"));
    t = cJSON_GetObjectItemCaseSensitive(sh, tkey);
    n = cJSON_IsArray(t) ? (size_t)cJSON_GetArraySize(t) : 0;
    if (n > (size_t)v[2] || n > a->sh_cap) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: shadow.ts: more windows judged "
                     "normal than the span's %g (adapt.shadow_windows %zu)", v[2], a->sh_cap);
        goto out;
    }
    if (!cJSON_IsArray(pd) || (np = (size_t)cJSON_GetArraySize(pd)) > a->pcap) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: shadow.pending: expected an array "
                     "of at most %zu windows", a->pcap);
        goto out;
    }
    ts = malloc((n + 1) * sizeof(double));
    lv = malloc((n + 1) * sizeof(double));
    cd = malloc((n + 1) * sizeof(double));
    rg = malloc((n + 1) * sizeof(double));
    pv = malloc((np * 5 + 1) * sizeof(double));
    if (!ts || !lv || !cd || !rg || !pv) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = shadow_array(sh, tkey, n, -9.2e18, 9.2e18, ts, err, errlen)) != 0 ||
        (rc = shadow_array(sh, "live", n, fl ? -FLT_MAX : -DBL_MAX, fl ? FLT_MAX : DBL_MAX, lv,
                           err, errlen)) != 0 ||
        (rc = shadow_array(sh, "cand", n, fl ? -FLT_MAX : -DBL_MAX, fl ? FLT_MAX : DBL_MAX, cd,
                           err, errlen)) != 0 ||
        (rc = shadow_array(sh, "regime", n, 0, 1, rg, err, errlen)) != 0)
        goto out;
    for (i = 0; i < n; i++) {
        if (fl) {       /* 9 digits of a float: that float */
            lv[i] = (double)(float)lv[i];
            cd[i] = (double)(float)cd[i];
        }
        if (i && tkey[2] == '_' && fabs(ts[i] += ts[i - 1]) > 9.2e18) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: shadow.ts_steps[%zu]: the "
                         "time out of range", i);
            goto out;
        }
    }
    i = 0;
    cJSON_ArrayForEach(t, pd) {
        char path[48];
        double *p = pv + i * 5;

        snprintf(path, sizeof(path), "shadow.pending[%zu].", i);
        if ((rc = get_num(t, path, "ago", 0, (double)a->offered, &p[0], err, errlen)) != 0 ||
            (rc = get_num(t, path, "ts", -9.2e18, 9.2e18, &p[1], err, errlen)) != 0 ||
            (rc = get_num(t, path, "live", -DBL_MAX, DBL_MAX, &p[2], err, errlen)) != 0 ||
            (rc = get_num(t, path, "cand", -DBL_MAX, DBL_MAX, &p[3], err, errlen)) != 0 ||
            (rc = get_num(t, path, "regime", 0, 1, &p[4], err, errlen)) != 0)
            goto out;
        if (i > 0 && p[0] >= p[-5]) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "adapt state: %sago: expected the windows "
                         "oldest first", path);
            goto out;
        }
        i++;
    }
    /* all read: the candidate is back in shadow */
    a->cand = cand;
    a->origin = AD_ADAPT_FINETUNE;
    a->shadow_gen++;
    a->attempt_cur = (uint64_t)v[0];
    a->sh_start = (int64_t)v[1];
    a->sh_resolved = (uint64_t)v[2];
    a->train_windows = (uint64_t)v[3];
    a->have_rep = rep != NULL;
    memset(&a->rep, 0, sizeof(a->rep));
    if (rep != NULL) {
        a->rep.epochs_run = (int)v[4];
        a->rep.train_loss = opt_num(rep, "train_loss");
        a->rep.seconds = opt_num(rep, "seconds");
    }
    for (k = 0; k < n; k++) {
        a->sh_ts[k] = (int64_t)ts[k];
        a->sh_live[k] = lv[k];
        a->sh_cand[k] = cd[k];
        a->sh_reg[k] = rg[k] != 0;
    }
    a->sh_n = n;
    /* the span's windows waiting for their margin: the pending entries of
     * the same offers when a saved normal set brought them back, else
     * entries without a window (the queue is empty after a restore) */
    for (k = 0; k < np; k++) {
        const double *p = pv + k * 5;
        uint64_t seq = a->offered - (uint64_t)p[0];
        pend_ent *e = NULL;

        for (i = 0; i < a->plen; i++)
            if (a->pend[(a->phead + i) % a->pcap].seq == seq)
                e = &a->pend[(a->phead + i) % a->pcap];
        if (e == NULL && a->plen < a->pcap &&
            (a->plen == 0 || a->pend[(a->phead + a->plen - 1) % a->pcap].seq < seq)) {
            size_t slot = (a->phead + a->plen) % a->pcap;

            e = &a->pend[slot];
            memset(e, 0, sizeof(*e));
            memset(a->pwin + slot * a->wsz, 0, a->wsz * sizeof(float));
            e->seq = seq;
            e->nowin = 1;
            a->plen++;
        }
        if (e == NULL) {            /* cannot be placed: judged, not normal */
            a->sh_resolved++;
            continue;
        }
        e->ts = (int64_t)p[1];
        e->live = p[2];
        e->cand = p[3];
        e->regime = p[4] != 0;
        e->shadow = a->shadow_gen;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sh, "accept"))) {
        /* the acceptance's fine-tune is back: not due again (finetune_lost) */
        a->acc_ft = 1;
        a->acc_pending = a->rest_acc_pending;
        a->acc_admitted = a->rest_acc_admitted;
        a->acc_need = a->rest_acc_need;
    }
    a->ready = 0;
    rc = 0;
out:
    free(ts);
    free(lv);
    free(cd);
    free(rg);
    free(pv);
    cJSON_Delete(a->rest_shadow);
    a->rest_shadow = NULL;
    return rc;
}
