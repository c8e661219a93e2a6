/*
 * streams.c - the stream table of each detector: lookup by key (a hash
 * map), the max_streams limit, idle eviction, a stream's lifecycle (create,
 * kill, free when nothing refers to it any more), the samples of a message
 * into its stream's detector and the detector's events out (alerts and
 * state published, calibration saved, training started).
 *
 * Ownership: a live stream belongs to the map of its det_rt; a killed one
 * to the daemon's dead list until its last window in flight, training job
 * and restore came back (streams_maybe_free). The stream owns its detector,
 * the model it trained online, a reference to the shared model, the
 * graveyard of detectors replaced while batches could still read their
 * model, and the messages held while its restore is in flight (state.c).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "daemon_int.h"
#include "homeassistant.h"
#include "kafka.h"
#include "topic.h"

/* ---- the map ------------------------------------------------------------ */

static stream_rec *map_find(stream_map *m, const char *key, uint64_t h)
{
    if (!m->nb) return NULL;
    for (stream_rec *s = m->b[h & (m->nb - 1)]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

static int map_add(stream_map *m, stream_rec *s)
{
    if (m->n + 1 > m->nb / 2 * 1 + m->nb / 4 || !m->nb) {   /* load <= 0.75 */
        size_t nb = m->nb ? m->nb * 2 : 64;
        stream_rec **b = calloc(nb, sizeof *b);
        if (!b) return AD_ENOMEM;
        for (size_t i = 0; i < m->nb; i++)
            for (stream_rec *x = m->b[i], *n; x; x = n) {
                n = x->hnext;
                x->hnext = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
            }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    s->hnext = m->b[s->hash & (m->nb - 1)];
    m->b[s->hash & (m->nb - 1)] = s;
    m->n++;
    return 0;
}

static void map_del(stream_map *m, stream_rec *s)
{
    stream_rec **pp = &m->b[s->hash & (m->nb - 1)];
    while (*pp && *pp != s) pp = &(*pp)->hnext;
    if (*pp) {
        *pp = s->hnext;
        m->n--;
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

/* Keep the figures of a stream leaving its detector (stats per detector). */
static void retire_counts(stream_rec *s)
{
    det_rt *d = s->det;
    uint64_t open, shadow;
    if (!s->d || !d)
        return;
    open = d->retired.dq_open;
    shadow = d->retired.adapt_shadow;
    publish_count_stream(s->d, &d->retired);
    d->retired.dq_open = open;          /* gauges: gone with the stream */
    d->retired.adapt_shadow = shadow;
}

static void retire_stats(ad_daemon *dd, stream_rec *s)
{
    ad_detector_stats st;
    if (!s->d) return;
    ad_detector_get_stats(s->d, &st);
    dd->c.retired_dropped += ad_stream_values_refused(&st.stream);
    dd->c.retired_overflow += st.stream.overflow;
    dd->c.retired_unoffered += st.adapt_unoffered;
}

static void empty_grave(stream_rec *s)
{
    while (s->grave) {
        old_det *o = s->grave;
        s->grave = o->next;
        ad_detector_free(o->d);
        ad_model_free(o->own);
        free(o);
    }
}

static void free_held(stream_rec *s)
{
    while (s->held) {
        held_msg *h = s->held;
        s->held = h->next;
        free(h->origin);
        free(h);
    }
    s->held_tail = NULL;
}

stream_rec *streams_find(det_rt *d, const char *key)
{
    return map_find(&d->streams, key, ad_fnv1a64_str(key));
}

void streams_note_topic(stream_rec *s, const char *topic)
{
    char **v;

    /* every message: mostly one topic a stream, or one a feature */
    for (int i = 0; i < s->n_topics; i++)
        if (strcmp(s->topics[i], topic) == 0)
            return;
    if (s->n_topics >= STREAM_TOPICS ||
        !(v = realloc(s->topics, (size_t)(s->n_topics + 1) * sizeof *v))) {
        s->topics_more = 1;     /* a reload cannot tell it is not fed */
        return;
    }
    s->topics = v;
    if (!(v[s->n_topics] = strdup(topic)))
        s->topics_more = 1;
    else
        s->n_topics++;
}

void streams_free_now(ad_daemon *dd, stream_rec *s)
{
    retire_stats(dd, s);
    free(s->fb);
    free(s->alert_at);
    for (int i = 0; i < s->n_topics; i++)
        free(s->topics[i]);
    free(s->topics);
    free(s->cand_err);
    ad_detector_free(s->d);
    empty_grave(s);
    free_held(s);
    ad_model_free(s->own_model);
    mr_put(s->mr);
    cJSON_Delete(s->dq_open);
    free(s);
}

void streams_maybe_free(ad_daemon *dd, stream_rec *s)
{
    if (s->inflight || s->training || s->restores || s->adapt || s->saving)
        return;
    if (s->dead) {
        stream_rec **pp = &dd->dead;
        while (*pp && *pp != s) pp = &(*pp)->dnext;
        if (*pp) *pp = s->dnext;
        streams_free_now(dd, s);
        return;
    }
    empty_grave(s);
}

int streams_bury(ad_daemon *dd, stream_rec *s)
{
    det_rt *d = s->det;
    old_det *od;
    if (!s->d)
        return 0;
    /* the graveyard entry before anything changes: without one the old
     * detector could only be freed at once, under the batches in flight
     * that read its model */
    if (!(od = calloc(1, sizeof *od)))
        return AD_ENOMEM;
    /* its counts stay in the detector's and the daemon's figures: the new
     * detector starts from 0, but for the learner's decisions, which its
     * state file carries over when the new settings have a learner to
     * restore them into (d->c is already the new configuration) */
    if (d) {
        uint64_t promoted = d->retired.adapt_promoted, rejected = d->retired.adapt_rejected;
        retire_counts(s);
        if (d->state_dir[0] && (d->c->pipe.adapt.enabled || d->c->pipe.adapt.reload_shadow)) {
            d->retired.adapt_promoted = promoted;
            d->retired.adapt_rejected = rejected;
        }
    }
    retire_stats(dd, s);
    /* the new detector starts its own monitors and learner: what the old
     * one had open or running ends with it, but for the data-quality
     * alerts the reload carried over (publish_dq_carry, which closed the
     * others): the new monitor takes them over, or they are closed when
     * it does not (publish_dq_settle) */
    training_adapt_cancel(NULL, s);
    if (!publish_dq_carrying(s)) {
        cJSON_Delete(s->dq_open);
        s->dq_open = NULL;
    }
    od->d = s->d;
    od->own = s->own_model;
    od->next = s->grave;
    s->grave = od;
    s->d = NULL;
    s->own_model = NULL;
    return 0;
}

void streams_kill(ad_daemon *dd, stream_rec *s, int save)
{
    if (save)
        state_save_handover(dd, s);
    training_adapt_cancel(NULL, s);
    retire_counts(s);
    if (s->det)
        map_del(&s->det->streams, s);
    s->det = NULL;
    s->dead = 1;
    s->epoch++;
    s->dnext = dd->dead;
    dd->dead = s;
    streams_maybe_free(dd, s);
}

void streams_evict(ad_daemon *dd, stream_rec *s, ad_close_reason reason)
{
    if (s->d && s->det && ad_detector_close_alert(s->d, reason))
        streams_events(dd, s);
    /* its state record on kafka.state_topic, as its alert's clear above:
     * the last one still lists the data-quality alerts closed here, and
     * the stream's next owner would clear them again */
    if (publish_dq_close_all(dd, s, ad_close_reason_name(reason)) > 0)
        kafka_state_changed(dd, s);
    ha_stream_removed(dd, s);
    publish_state_clear(dd, s);     /* gone for good: no ghost on the broker */
    streams_kill(dd, s, 1);
}

/* At the stream limit: the least recently seen stream still collecting or
 * calibrating (it has not cost a calibration yet) and silent for at least
 * a tenth of idle_evict_s (so a flood of new keys, each seen just now,
 * cannot push out each other nor a device that is calibrating), or NULL. */
static stream_rec *limit_victim(ad_daemon *dd, det_rt *d)
{
    stream_rec *v = NULL;
    uint64_t now = uv_now(dd->loop), quiet = (uint64_t)(d->c->idle_evict * 100);
    if (!quiet)
        return NULL;
    MAP_FOREACH(&d->streams, s) {
        ad_phase p;
        if (!s->d || s->restoring || s->training || now - s->last_ms < quiet)
            continue;
        p = ad_detector_phase(s->d);
        if ((p == AD_PHASE_COLLECTING || p == AD_PHASE_CALIBRATING) &&
            (!v || s->last_ms < v->last_ms))
            v = s;
    }
    return v;
}

stream_rec *streams_open(ad_daemon *dd, det_rt *d, const char *key)
{
    uint64_t h = ad_fnv1a64_str(key);
    stream_rec *s = map_find(&d->streams, key, h);
    size_t kl = strlen(key) + 1;
    char err[256];
    if (s)
        return s;
    if (d->streams.n >= (size_t)d->c->max_streams && (s = limit_victim(dd, d)) != NULL) {
        d->evicted++;
        dd->c.streams_evicted++;
        dd_limit_evicted(dd, d->c->name, d->c->max_streams, s->key,
                         ad_phase_name(ad_detector_phase(s->d)), key);
        streams_evict(dd, s, AD_CLOSE_EVICTED);
        s = NULL;
    }
    if (d->streams.n >= (size_t)d->c->max_streams) {
        d->refused++;
        dd->c.streams_refused++;
        dd_bad_input(dd, "detector %s: stream limit %d reached, refusing new stream \"%.64s\"",
                     d->c->name, d->c->max_streams, key);
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s + kl)))
        return NULL;
    memcpy(s->key, key, kl);
    s->hash = h;
    s->det = d;
    s->serial = ++dd->serial;
    s->mr = mr_get(d->mr);
    if (map_add(&d->streams, s) != 0) {
        dd_bad_input(dd, "detector %s: stream %s not created: out of memory", d->c->name, key);
        mr_put(s->mr);
        free(s);
        return NULL;
    }
    s->last_ms = uv_now(dd->loop);
    if (state_restore(dd, s, RESTORE_NEW, err, sizeof err) != 0)
        return NULL;                /* logged, stream killed */
    ad_log(AD_LOG_DEBUG, "detector %s: new stream %s (%zu)", d->c->name, key, d->streams.n);
    return s;
}

/* ---- samples in ------------------------------------------------------------ */

#define STATE_REFRESH_MS 60000

/* Rejections by row assembly since the last look: logged (bounded rate,
 * dd_bad_input) naming the detector, the stream and what was wrong, and
 * the Kafka record (origin, or NULL) whose samples they were; rec_ms: the
 * time its record timestamp gave them (kafka.row_time record), or
 * INT64_MIN. */
static void note_rejections(ad_daemon *dd, stream_rec *s, int64_t arrival_ms, int64_t ts_ms,
                            const char *origin, int64_t rec_ms)
{
    ad_detector_stats st;
    uint64_t fut, late, dup, copies, copy_values;
    char rec[400] = "";
    int by_rec = origin && ts_ms == rec_ms;
    ad_detector_get_stats(s->d, &st);
    /* a count under the one seen: the detector was rebuilt (reload, clock
     * step), its counts start at 0 */
#define SINCE(v, seen) ((v) >= (seen) ? (v) - (seen) : (v))
    fut = SINCE(st.stream.future_values, s->seen_future);
    late = SINCE(st.stream.ooo_values, s->seen_late);
    dup = SINCE(st.stream.dup_values, s->seen_dup);
    copies = SINCE(st.stream.dup_copies, s->seen_copies);
    copy_values = SINCE(st.stream.dup_copy_values, s->seen_copy_values);
#undef SINCE
    s->seen_future = st.stream.future_values;
    s->seen_late = st.stream.ooo_values;
    s->seen_dup = st.stream.dup_values;
    s->seen_copies = st.stream.dup_copies;
    s->seen_copy_values = st.stream.dup_copy_values;
    /* exact copies of what the stream holds (the same time, the same
     * values): the same message delivered twice, by two subscriptions
     * that match its topic or by redundant gateways. Harmless (each copy
     * is dropped, counted in the stats and the retained state's
     * rejected.duplicate), and at such a site every message has one: said
     * once per stream, not every minute at the bad-input rate, where the
     * copies drowned the bad input it is there for */
    if (copies && !s->copies_said) {
        s->copies_said = 1;
        ad_log(AD_LOG_WARNING, "detector %s: stream %s receives copies of its messages "
               "(%llu so far: the same time, the same values, each dropped): two "
               "subscriptions or gateways deliver it; said once, counted in its retained "
               "state (rejected.duplicate, rejected.copies)", s->det->c->name, s->key,
               (unsigned long long)st.stream.dup_copies);
    }
    dup = dup > copy_values ? dup - copy_values : 0;
    if (origin)
        snprintf(rec, sizeof rec, "kafka %s: ", origin);
    if (fut)
        dd_bad_input(dd, "%sdetector %s: stream %s: %llu sample(s) rejected as future "
                     "(%stimestamp %lld ms is %lld ms after its arrival; "
                     "rows.max_future_ms %lld)%s", rec, s->det->c->name, s->key,
                     (unsigned long long)fut, by_rec ? "record " : "", (long long)ts_ms,
                     (long long)(ts_ms - arrival_ms),
                     (long long)s->det->c->pipe.stream.max_future_ms,
                     by_rec ? ": the producer's clock is ahead of this instance's "
                     "(kafka.row_time \"arrival\" would stamp such records on arrival)" : "");
    if (late)
        dd_bad_input(dd, "%sdetector %s: stream %s: %llu sample(s) dropped as late "
                     "(%stimestamp %lld ms is behind rows already assembled; "
                     "rows.max_lateness_ms %lld)%s", rec, s->det->c->name, s->key,
                     (unsigned long long)late, by_rec ? "record " : "", (long long)ts_ms,
                     (long long)s->det->c->pipe.stream.max_lateness_ms,
                     by_rec ? ": a record time behind the stream's newest (a record read "
                     "again after a crash, records of one key reordered or from two producers, "
                     "a producer clock set back) is dropped so" : "");
    /* a time equal to the newest row's with other values: a device clock
     * that stopped (every message stamped alike: the stream is no longer
     * scored; the late check raises once that lasts) */
    if (dup)
        dd_bad_input(dd, "%sdetector %s: stream %s: %llu sample(s) dropped as duplicates "
                     "(%stimestamp %lld ms is the newest row's, with other values: a device "
                     "clock that stopped)", rec, s->det->c->name, s->key,
                     (unsigned long long)dup, by_rec ? "record " : "", (long long)ts_ms);
    /* the retained state's counts follow, at most once a minute: a stream
     * whose every sample is refused changes nothing else */
    if ((fut || late || dup || copies) && uv_now(dd->loop) - s->state_pub_ms >= STATE_REFRESH_MS)
        publish_state(dd, s);
}

/* Period mode: a sample behind the row at its time, held for the next row
 * (ad_stream_stats.late_held). Not an error: said once per detector, with
 * the lateness that would put such samples in their own rows. */
static void note_late_held(stream_rec *s)
{
    ad_stream_stats ss;
    det_rt *d = s->det;

    ad_detector_stream_stats(s->d, &ss);
    if (ss.late_held == 0)
        return;
    d->warned_late_held = 1;
    ad_log(AD_LOG_WARNING, "detector %s: stream %s: a sample arrived %llu ms behind the "
           "row at its time, already assembled from the stream's other samples; it is "
           "held for the next row (a period late). Samples of one instant arriving on "
           "several topics do this: rows.max_lateness_ms %llu or more puts each in its "
           "own row (now %lld; told once per detector, counted in stats samples_late_held)",
           d->c->name, s->key, (unsigned long long)ss.late_held_max_ms,
           (unsigned long long)ss.late_held_max_ms * 2,
           (long long)d->c->pipe.stream.max_lateness_ms);
}

/* A sample time before 2000 from a payload time in ms or us: most likely
 * seconds sent under the wrong unit (the stream would run in 1970, its
 * window period a thousand times too short). Warned once per detector. */
#define TS_UNIT_HINT_S 946684800.0
static void check_unit(det_rt *d, const stream_rec *s, double t)
{
    const char *unit;
    char iso[40];

    if (d->warned_unit || !d->c->payload.timestamp || d->c->payload.timestamp_unit == AD_TS_S ||
        !isfinite(t) || t >= TS_UNIT_HINT_S)
        return;
    d->warned_unit = 1;
    ad_iso_ms((int64_t)llround(t * 1000.0), iso, sizeof iso);
    /* the unit that puts this value after 2000: seconds, or ms under us */
    unit = d->c->payload.timestamp_unit == AD_TS_US && t * 1e3 >= TS_UNIT_HINT_S ? "ms" : "s";
    ad_log(AD_LOG_WARNING, "detector %s: stream %s: sample time %s from payload field \"%s\" "
           "in %s: if the devices send %s, set payload.timestamp_unit \"%s\" (warned once)",
           d->c->name, s->key, iso, d->c->payload.timestamp,
           d->c->payload.timestamp_unit == AD_TS_MS ? "ms" : "us",
           unit[0] == 's' ? "seconds" : "milliseconds", unit);
}

/* The arrival time of a message whose samples carry no time, for a stream
 * restored from a state whose last row is at or after it (the wall clock
 * set back across a restart, a hand-over from an instance whose clock is
 * ahead): 1 ms after the last one given, as a running stream stamps the
 * messages after its clock was set back (streams.c message), so that none
 * is refused as at or before the restored last row. Once the clock passes
 * that row the stream's own rule goes on. now_s otherwise. */
static double arrival_after_restore(stream_rec *s, const ad_sample *smp, int n, double now_s)
{
    int64_t a;
    int i;

    if (s->arrival_floor_ms == 0)
        return now_s;
    for (i = 0; i < n && !isnan(smp[i].time); i++)
        ;
    if (i == n)
        return now_s;               /* every sample has its own time */
    a = (int64_t)llround(now_s * 1000.0);
    if (a > s->arrival_floor_ms) {
        s->arrival_floor_ms = 0;
        return now_s;
    }
    a = s->arrival_floor_ms + 1;
    s->arrival_floor_ms = a;
    if (a > s->last_arrival_ms)
        s->last_arrival_ms = a;
    return (double)a / 1000.0;
}

/* The values of a message its parser refused (payload.h REFUSED VALUES):
 * each counted against its feature (the stream's rejected counts, the
 * data-quality rejected check naming the feature), after its good values.
 * Returns how many there were. */
static int push_refused(stream_rec *s, const ad_sample *smp, int n, double now_s)
{
    int k = 0;

    for (int i = 0; i < n; i++) {
        double t = isnan(smp[i].time) ? now_s : smp[i].time;
        if (!smp[i].refused)
            continue;
        ad_detector_push_refused(s->d, (int64_t)llround(t * 1000.0), smp[i].feature,
                                 smp[i].refused == AD_SAMPLE_NONNUMERIC);
        k++;
    }
    return k;
}

/* The data-quality alerts a reload carried over (publish_dq_carry) that
 * the rebuilt monitor did not raise again at this message's values: its
 * events first (a raise takes one over), then those closed. */
static void settle_carried(ad_daemon *dd, stream_rec *s, const ad_sample *smp, int n)
{
    unsigned char seen[AD_MAX_FEATURES];    /* F <= AD_MAX_FEATURES (model.h) */
    int any = 0;

    memset(seen, 0, (size_t)s->det->F);
    for (int i = 0; i < n; i++)
        if (!smp[i].refused && smp[i].feature >= 0 && smp[i].feature < s->det->F)
            seen[smp[i].feature] = any = 1;
    streams_events(dd, s);
    if (publish_dq_settle(dd, s, seen, any) > 0)
        state_save(dd, s);
}

static void push_samples(ad_daemon *dd, stream_rec *s, const ad_sample *smp, int n,
                         double now_s, const char *origin, int64_t rec_ms)
{
    det_rt *d = s->det;
    int64_t arrival, bad_ts = 0;
    int bad = 0, refused;

    now_s = arrival_after_restore(s, smp, n, now_s);
    arrival = (int64_t)llround(now_s * 1000.0);
    check_unit(d, s, smp[0].time);
    /* the arrival clock of this message: the future check and event time */
    ad_detector_arrival(s->d, arrival);
    if (d->c->pipe.stream.mode == AD_ASM_ROWS) {
        double vals[AD_MAX_FEATURES > 4096 ? 4096 : AD_MAX_FEATURES];
        unsigned char present[sizeof vals / sizeof vals[0]];
        double t = isnan(smp[0].time) ? now_s : smp[0].time;
        int good = 0;
        memset(present, 0, (size_t)d->F);
        for (int i = 0; i < n; i++) {
            if (smp[i].refused)
                continue;       /* missing from the row: rows.missing */
            vals[smp[i].feature] = smp[i].value;
            present[smp[i].feature] = 1;
            good++;
        }
        /* a message whose every value was refused makes no row (it would
         * be all held values, or invalid): its refusals are counted */
        if (good) {
            bad_ts = (int64_t)llround(t * 1000.0);
            bad = ad_detector_push_row(s->d, bad_ts, vals, present) > 0;
        }
    } else {
        for (int i = 0; i < n; i++) {
            double t = isnan(smp[i].time) ? now_s : smp[i].time;
            int64_t ts = (int64_t)llround(t * 1000.0);
            if (smp[i].refused)
                continue;
            if (ad_detector_push_sample(s->d, ts, smp[i].feature, smp[i].value) > 0 &&
                !bad++)
                bad_ts = ts;
            /* the rows this sample completed go into the windows now: a
             * pack (a gateway's batch, a backlog after an outage) completes
             * more rows than a stream queues, and waiting for the end of
             * the message would lose the oldest (stream.h THE ROW QUEUE) */
            if (ad_detector_rows_queued(s->d) > 0)
                batch_take(dd, s);
        }
    }
    refused = push_refused(s, smp, n, now_s);
    if (bad)
        note_rejections(dd, s, arrival, bad_ts, origin, rec_ms);
    else if (refused && uv_now(dd->loop) - s->state_pub_ms >= STATE_REFRESH_MS)
        publish_state(dd, s);   /* its rejected counts, at most once a minute */
    if (d->c->pipe.stream.mode == AD_ASM_PERIOD && !d->warned_late_held)
        note_late_held(s);
    batch_pull(dd, s);
    /* a flag on every message, the walk over its open data-quality alerts
     * only while one may be carried (before: the walk on every message
     * with any open, a calloc of F bytes while one was carried) */
    if (s->dq_carried && (s->dq_carried = publish_dq_carrying(s)) != 0)
        settle_carried(dd, s, smp, n);
}

/* Keep a message's samples until the stream's restore is installed. */
static void hold_samples(ad_daemon *dd, stream_rec *s, const ad_sample *smp, int n,
                         double now_s, const char *origin, int64_t rec_ms, int handover)
{
    held_msg *h = malloc(sizeof *h + (size_t)n * sizeof *smp);
    if (!h || (origin && !(h->origin = strdup(origin)))) {
        free(h);
        dd_bad_input(dd, "detector %s: stream %s: out of memory, %d sample(s) dropped",
                     s->det->c->name, s->key, n);
        return;
    }
    if (!origin)
        h->origin = NULL;
    h->next = NULL;
    h->now_s = now_s;
    h->rec_ms = rec_ms;
    h->handover = handover;
    h->n = n;
    memcpy(h->smp, smp, (size_t)n * sizeof *smp);
    if (s->held_tail) s->held_tail->next = h; else s->held = h;
    s->held_tail = h;
}

void streams_release_held(ad_daemon *dd, stream_rec *s)
{
    int n = 0;
    while (s->held && !s->dead && !s->restoring) {
        held_msg *h = s->held;
        s->held = h->next;
        if (!s->held) s->held_tail = NULL;
        /* a record before the offset of the hand-over state the restore
         * took is in that state; of a state not taken it is applied */
        if (!h->handover || !kafka_handover_taken(dd, s->det->c->name, s->key))
            push_samples(dd, s, h->smp, h->n, h->now_s, h->origin, h->rec_ms);
        else
            dd->c.samples -= (uint64_t)h->n;    /* counted when held */
        free(h->origin);
        free(h);
        n++;
    }
    if (n)
        ad_log(AD_LOG_DEBUG, "stream %s/%s: %d message(s) held during the restore pushed",
               s->det ? s->det->c->name : "-", s->key, n);
}

static void message(ad_daemon *dd, det_rt *d, const char *key, int by_topic,
                    const char *topic, const void *payload, size_t len, double now_s,
                    const kafka_rec *rec);

void streams_message(ad_daemon *dd, det_rt *d, const char *topic, const void *payload,
                     size_t len, double now_s)
{
    char key[KEY_MAX];
    if (ad_topic_stream_key(topic, d->c->stream_levels.v, d->c->stream_levels.n,
                            key, sizeof key) < 0) {
        dd->c.no_stream_key++;
        dd_bad_input(dd, "detector %s: topic %.128s: no stream key at the configured levels",
                     d->c->name, topic);
        return;
    }
    message(dd, d, key, 1, topic, payload, len, now_s, NULL);
}

void streams_message_key(ad_daemon *dd, det_rt *d, const char *key, const char *topic,
                         const void *payload, size_t len, double now_s,
                         const kafka_rec *rec)
{
    message(dd, d, key, 0, topic, payload, len, now_s, rec);
}

/* The time (ms) a Kafka record's timestamp rec_ms gives the samples of its
 * payload without one, on stream s. Records of one millisecond (a batch
 * stamped LogAppendTime, a producer's burst) are 1 ms apart, in partition
 * order, as arrival times are, so none is dropped as a duplicate. A
 * timestamp behind the last one taken is the record's own: a record read
 * again is at or behind the rows it gave, and the stream drops it as
 * late, as it does a payload time behind its rows. */
static int64_t record_time(stream_rec *s, int64_t rec_ms)
{
    int64_t t = rec_ms;
    /* the same millisecond, or one a burst before it already ran into */
    if (s->last_rec_raw > 0 && rec_ms >= s->last_rec_raw && rec_ms <= s->last_rec_ms)
        t = s->last_rec_ms + 1;
    s->last_rec_raw = rec_ms;
    s->last_rec_ms = t;
    return t;
}

/* A message of a stream refused whole (malformed, a bad timestamp: rc of
 * ad_payload_parse). The device is alive but what it sends is unusable:
 * that is the stream's whole-stream `rejected` data-quality check, not a
 * silence (no dropout, no idle eviction closing its alerts as `evicted`).
 * Only a stream that exists (garbage opens none), and not a payload naming
 * no known feature (a status message on a shared topic), an empty one
 * (what clears a retained message) nor a presence word (a last will:
 * AD_PAYLOAD_STATUS, taken before). */
static void refused_whole(ad_daemon *dd, det_rt *d, const char *key, const void *payload,
                          size_t len, double now_s, int rc)
{
    stream_rec *s;
    int64_t a;
    size_t k;

    if (rc != AD_EFORMAT && rc != AD_ENONFINITE && rc != AD_ERANGE)
        return;
    for (k = 0; k < len && strchr(" \t\r\n", ((const char *)payload)[k]) != NULL &&
                ((const char *)payload)[k] != '\0'; k++)
        ;
    if (k == len || !(s = streams_find(d, key)) || !s->d || s->restoring || s->held)
        return;
    s->last_ms = uv_now(dd->loop);
    a = (int64_t)llround(now_s * 1000.0) + s->arrival_lead_ms;
    if (a < s->last_arrival_ms)
        a = s->last_arrival_ms;
    if (a < s->arrival_floor_ms)
        a = s->arrival_floor_ms;
    ad_detector_arrival(s->d, a);
    ad_detector_push_malformed(s->d, a);
    if (uv_now(dd->loop) - s->state_pub_ms >= STATE_REFRESH_MS)
        publish_state(dd, s);   /* its rejected counts, at most once a minute */
    streams_events(dd, s);
}

/* A message for stream `key` of d, keyed by its MQTT topic's levels
 * (by_topic) or by a Kafka record key (rec: the record). */
static void message(ad_daemon *dd, det_rt *d, const char *key, int by_topic,
                    const char *topic, const void *payload, size_t len, double now_s,
                    const kafka_rec *rec)
{
    ad_sample *smp;
    char err[512], origin[300];
    int n = 0, unk = 0, rc, untimed = 0, nonfinite = 0, nonnumeric = 0;
    int64_t rec_ms = INT64_MIN;
    /* the record's time is a time for the samples without one: a SenML
     * relative time counts from it too */
    int has_rec = rec && rec->ts_ms != -1;
    int use_rec = has_rec && ad_time_ok((double)rec->ts_ms / 1000.0);
    double base_s = use_rec ? (double)rec->ts_ms / 1000.0 : now_s;
    stream_rec *s;
    /* as many samples as the message's bytes can hold: a gateway's pack of
     * a device's backlog is taken whole (a model's features are fewer
     * than 5 bytes each can name) */
    size_t need = len / 5 + 2;

    if (need > INT_MAX)
        need = INT_MAX;
    if (need > dd->smp_cap) {
        ad_sample *p = realloc(dd->smp, need * sizeof *p);
        if (!p) {
            dd->c.parse_errors++;
            dd_bad_input(dd, "detector %s: topic %.128s: out of memory for %zu samples",
                         d->c->name, topic, need);
            return;
        }
        dd->smp = p;
        dd->smp_cap = need;
    }
    smp = dd->smp;
    if (rec)
        snprintf(origin, sizeof origin, "%.200s[%d]@%lld", rec->topic, (int)rec->partition,
                 (long long)rec->offset);
    rc = ad_payload_parse(d->parser, topic, payload, len, base_s, smp, (int)need, &n, &unk,
                          err, sizeof err);
    dd->c.unknown_fields += (uint64_t)unk;
    if (rc == AD_PAYLOAD_STATUS) {
        /* a device's presence word (its last will, say: payload.h
         * STATUS TEXT): no data, and not malformed data either. Counted
         * only, as a status object naming no feature or an empty payload:
         * it does not keep the stream alive, so a device gone offline
         * gets its dropout on time. Only those words: an error text is
         * the device talking, malformed (refused_whole) */
        dd->c.status_messages++;
        ad_log(AD_LOG_DEBUG, "detector %s: topic %.128s: %s", d->c->name, topic, err);
        goto out;
    }
    if (rc) {
        if (rc == AD_ENONFINITE) dd->c.nonfinite++; else dd->c.parse_errors++;
        if (rec)
            dd_bad_input(dd, "kafka %s: detector %s: %s", origin, d->c->name, err);
        else
            dd_bad_input(dd, "detector %s: topic %.128s: %s", d->c->name, topic, err);
        refused_whole(dd, d, key, payload, len, now_s, rc);
        goto out;
    }
    for (int i = 0; i < n; i++)
        untimed += isnan(smp[i].time) != 0;
    if (untimed && has_rec && !use_rec) {
        /* a time no stream can hold (a payload time out of range is
         * refused the same way) */
        dd->c.parse_errors++;
        dd_bad_input(dd, "kafka %s: detector %s: record timestamp %lld ms (%s) is not a time "
                     "(%s): the record is dropped (kafka.row_time \"arrival\" stamps records "
                     "on arrival)", origin, d->c->name, (long long)rec->ts_ms, rec->ts_type,
                     AD_TIME_RANGE);
        goto out;
    }
    if (untimed && use_rec && base_s < TS_UNIT_HINT_S && !d->warned_rec_time) {
        char iso[40];
        d->warned_rec_time = 1;
        ad_iso_ms(rec->ts_ms, iso, sizeof iso);
        ad_log(AD_LOG_WARNING, "kafka %s: detector %s: record timestamp %s (%s) is before "
               "2000: the producer's clock looks unset, and the rows of its samples without "
               "a time take it; set its clock, or kafka.row_time \"arrival\" to stamp "
               "records on arrival (warned once per detector)", origin, d->c->name, iso,
               rec->ts_type);
    }
    /* values refused one by one: the message and its good values are
     * taken, and it says the device is alive (no idle eviction, no
     * dropout of the whole stream) */
    for (int i = 0; i < n; i++) {
        nonfinite |= smp[i].refused == AD_SAMPLE_NONFINITE;
        nonnumeric |= smp[i].refused == AD_SAMPLE_NONNUMERIC;
    }
    dd->c.nonfinite += (uint64_t)nonfinite;
    dd->c.nonnumeric += (uint64_t)nonnumeric;
    if ((nonfinite || nonnumeric) && rec)
        dd_bad_input(dd, "kafka %s: detector %s: stream %s: %s", origin, d->c->name, key, err);
    else if (nonfinite || nonnumeric)
        dd_bad_input(dd, "detector %s: stream %s: topic %.128s: %s", d->c->name, key, topic,
                     err);
    if (!(s = streams_open(dd, d, key)))
        goto out;
    /* a record before the offset of its hand-over state, whose restore
     * was in flight when it was read (kafka.c on_record): the restore
     * done (here, when it ran at once), skipped if it took the state */
    if (rec && rec->handover && !s->restoring && !s->held &&
        kafka_handover_taken(dd, d->c->name, key))
        goto out;
    if (!by_topic)
        s->record_keyed = 1;
    else
        streams_note_topic(s, topic);
    s->last_ms = uv_now(dd->loop);
    if (untimed && use_rec) {
        /* samples without a time take the record's (kafka.row_time record):
         * a record read again after a crash has the time it had, at or
         * before the last row of the state restored, not a new one after it */
        rec_ms = record_time(s, rec->ts_ms);
        for (int i = 0; i < n; i++)
            if (isnan(smp[i].time))
                smp[i].time = (double)rec_ms / 1000.0;
    } else {
        /* samples without a time take the arrival time, strictly increasing
         * per stream (1 ms steps within a burst) so none is dropped as a
         * duplicate */
        int64_t a = (int64_t)llround(now_s * 1000.0) + s->arrival_lead_ms;
        if (a <= s->last_arrival_ms)
            a = s->last_arrival_ms + 1;
        s->last_arrival_ms = a;
        now_s = (double)a / 1000.0;
    }
    dd->c.samples += (uint64_t)n;
    if (s->restoring || s->held)
        hold_samples(dd, s, smp, n, now_s, rec ? origin : NULL, rec_ms,
                     rec && rec->handover);
    else
        push_samples(dd, s, smp, n, now_s, rec ? origin : NULL, rec_ms);
out:
    /* a buffer beyond SMP_KEEP samples goes with its message */
    if (dd->smp_cap > SMP_KEEP) {
        free(dd->smp);
        dd->smp = NULL;
        dd->smp_cap = 0;
    }
}

/* ---- events out ------------------------------------------------------------- */

int streams_events(ad_daemon *dd, stream_rec *s)
{
    ad_event ev;
    int state_changed = 0;
    if (!s->d || !s->det)
        return 0;
    while (ad_detector_poll_event(s->d, &ev)) {
        switch (ev.type) {
        case AD_EV_ALERT_RAISED:
        case AD_EV_ALERT_CLEARED:
            command_note_alert(s, &ev);
            publish_alert(dd, s, &ev);
            state_outbox_sync(dd, 0);   /* kept if the broker is away */
            state_save(dd, s);          /* the open alert survives kill -9 */
            state_changed = 1;
            break;
        case AD_EV_DQ_RAISED:
        case AD_EV_DQ_CLEARED:
            publish_dq(dd, s, &ev);
            /* its open data-quality alerts are in its state (state_text):
             * a restart after kill -9 closes the ones still open. The
             * event goes at once, not after the write (docs/alerts.md) */
            state_save(dd, s);
            state_changed = 1;
            break;
        case AD_EV_PHASE:
            ad_log(AD_LOG_DEBUG, "stream %s/%s: phase %s -> %s", s->det->c->name, s->key,
                   ad_phase_name(ev.prev_phase), ad_phase_name(ev.phase));
            state_changed = 1;
            break;
        case AD_EV_CALIBRATED:
            ad_log(AD_LOG_DEBUG, "stream %s/%s: threshold %.6g from %llu windows",
                   s->det->c->name, s->key, ev.threshold, (unsigned long long)ev.n);
            state_save(dd, s);
            state_changed = 1;
            break;
        case AD_EV_TRAIN_READY:
            training_start(dd, s);
            break;
        case AD_EV_TRAIN_FAILED:
            ad_log(AD_LOG_WARNING, "stream %s/%s: training failed: %s", s->det->c->name,
                   s->key, ev.text);
            break;
        case AD_EV_CALIB_FAILED:        /* logged (rate-limited) by the detector */
            break;
        case AD_EV_CALIB_HELD:
            /* a bootstrap's calibration waits on windows above the guard,
             * or its wait ended (logged by the detector): on the events
             * topic, and the retained state says it (its "calibration") */
            publish_adapt(dd, s, &ev);
            state_save(dd, s);
            state_changed = 1;
            break;
        case AD_EV_ACCEPTED:            /* a regime with its own threshold: keep it */
        case AD_EV_REGIME_ENDED:        /* ... or one the process left */
            publish_adapt(dd, s, &ev);
            state_save(dd, s);
            state_changed = 1;
            break;
        case AD_EV_ADAPT_READY:
            training_adapt_start(dd, s);
            break;
        case AD_EV_ADAPT:
            publish_adapt(dd, s, &ev);
            /* a fine-tune's candidate: its model beside the state while in
             * shadow (a restart resumes it), removed once decided */
            if (ev.adapt.origin == AD_ADAPT_FINETUNE &&
                (ev.adapt.type == AD_ADAPT_EV_PROMOTED ||
                 ev.adapt.type == AD_ADAPT_EV_REJECTED))
                training_drop_candidate(dd, s);
            if (ev.adapt.type == AD_ADAPT_EV_SHADOW && ev.adapt.origin == AD_ADAPT_FINETUNE &&
                ad_adapt_candidate(ad_detector_adapt(s->d)) != NULL) {
                /* the state follows the model (that candidate's only) */
                training_save_candidate(dd, s, ev.adapt.model_id);
            } else if (ev.adapt.type == AD_ADAPT_EV_PROMOTED) {
                if (ev.adapt.origin == AD_ADAPT_RELOAD)
                    s->kept_why = KEPT_NONE;    /* the file runs */
                training_save_promoted(dd, s);  /* the state follows the model */
            } else if (ev.adapt.origin == AD_ADAPT_RELOAD &&
                       (ev.adapt.type == AD_ADAPT_EV_REJECTED ||
                        ev.adapt.type == AD_ADAPT_EV_SHADOW ||
                        ev.adapt.type == AD_ADAPT_EV_WAITING))
                /* the live model goes on, not the file: a restart too */
                training_save_kept(dd, s, ev.adapt.type == AD_ADAPT_EV_REJECTED ?
                                   KEPT_REJECTED : KEPT_SHADOW);
            else
                /* a shadow start carries the fine-tune's drift baseline,
                 * a decision the counts and the schedule, a notice that it
                 * is out: kept for a kill -9 too, not only at a stop */
                state_save(dd, s);
            state_changed = 1;
            break;
        }
    }
    /* a change kept, renewed (its end moved an hour) or ended
     * (alert.accept_period_ms): the retained state says so at once, and
     * the saved state keeps it (a kill -9 then goes on holding) */
    if (ad_detector_kept_seq(s->d) != s->kept_seq) {
        s->kept_seq = ad_detector_kept_seq(s->d);
        state_save(dd, s);
        state_changed = 1;
    }
    /* training began or stopped waiting on flagged rows: the retained
     * state says so (its "collection"), at once, then at most once a
     * minute (a flag that flaps would publish at every turn, Home
     * Assistant too); and while it waits its counts follow, at most once
     * a minute, as the rejected counts */
    if (!state_changed) {
        /* so does a calibration that began or stopped waiting on flagged
         * windows (its "calibration.progress") */
        int w = ad_detector_collect_waiting(s->d), cw = ad_detector_calib_waiting(s->d);
        uint64_t now = uv_now(dd->loop);
        if (((w != s->coll_waiting || cw != s->calib_waiting) &&
             (s->coll_pub_ms == 0 || now - s->coll_pub_ms >= STATE_REFRESH_MS)) ||
            ((w || cw) && now - s->state_pub_ms >= STATE_REFRESH_MS)) {
            publish_state(dd, s);
            s->coll_pub_ms = now;
        } else if (now - s->state_pub_ms >= STATE_REFRESH_MS &&
                   (ad_detector_phase(s->d) == AD_PHASE_CALIBRATING ||
                    ad_detector_windows_kept(s->d) != s->kept_pub)) {
            /* a calibration's progress (calibration.progress, and when
             * held by windows above the guard its count toward the
             * fallback) follows, at most once a minute (else the state
             * published when calibration began said 0 windows until it
             * ended); so do
             * the windows a kept change held (calibration.windows_kept:
             * else the state published when the change was kept, or at a
             * restart, said 0 while its windows were held for hours).
             * Both asked without copying the stats: this runs at every
             * message of a stream not published for a minute, nearly all
             * of them */
            publish_state(dd, s);
        }
    }
    if (state_changed) {
        publish_state(dd, s);
        kafka_state_changed(dd, s);
    } else {
        ha_stream_tick(dd, s);
    }
    return state_changed;
}

/* ---- housekeeping -------------------------------------------------------------- */

/* Rebuild stream s from its hand-over state at a step back of the clock
 * taken at once (streams_clock_anew), as a reload rebuilds it for new
 * settings (reload.c adopt_streams), its settings the same: the restore
 * (state.c restore_clock) finds its last row more than an hour ahead and
 * starts its rows anew from now. Returns 1 when rebuilt. */
static int clock_rebuild(ad_daemon *dd, stream_rec *s)
{
    char err[256];
    /* with a candidate in shadow's span, as a reload's rebuild (its file
     * stays: the rebuilt detector resumes it) */
    char *live = state_text(s, SAVE_HANDOVER | (s->det && s->det->state_dir[0] ? SAVE_SPAN : 0));

    if (!live)
        return 0;
    /* its data-quality monitor is new too: what holds goes on */
    publish_dq_carry(dd, s, "restart");
    state_save(dd, s);
    if (streams_bury(dd, s) != 0) {
        free(live);
        return 0;
    }
    s->epoch++;
    s->serial = ++dd->serial;
    /* its arrival times from now: they were the clock's before the step */
    s->last_arrival_ms = 0;
    s->arrival_floor_ms = 0;
    s->arrival_lead_ms = 0;
    state_restore_live(dd, s, RESTORE_REBUILD, live, err, sizeof err);  /* logged */
    return 1;
}

/* Why stream s must not be rebuilt from its hand-over state now, or NULL:
 * what that state does not hold would be lost (rows collected for
 * training, a training or fine-tuning job in flight, a live model whose
 * copy is not in the state directory: trained or promoted with no state
 * directory, its save failed or still running). */
static const char *clock_keep(const stream_rec *s)
{
    const det_rt *d = s->det;
    const ad_model *m = ad_detector_model(s->d);
    ad_phase ph = ad_detector_phase(s->d);

    if (s->training || ph == AD_PHASE_COLLECTING || ph == AD_PHASE_TRAINING)
        return "collecting or training: its rows are in no state";
    if (s->adapt)
        return "a fine-tune of its model is running";
    if (s->saving)
        return "a save of its model is running";
    if (m && !(d->mr && d->mr->m && strcmp(m->id, d->mr->m->id) == 0) &&
        strcmp(m->id, s->disk_model) != 0)
        return d->state_dir[0] ? "its model is not saved in the state directory" :
                                 "its model, trained here, has no state directory";
    return NULL;
}

/* A stream stamped on arrival that the step could not rebuild (why): its
 * arrival times go on after its last row at the messages' own spacing,
 * running ahead of the clock by as much (s->arrival_lead_ms), until it
 * can be rebuilt (clock_retry). Taken from the clock as it is, they were
 * behind its last row: stamped 1 ms apart (strictly increasing) for the
 * whole step, no window of real spacing, no dropout, no period row. */
static int clock_lead(ad_daemon *dd, stream_rec *s, int64_t wall, const char *why)
{
    int64_t lead = s->last_arrival_ms + 1 - wall;

    if (s->arrival_floor_ms > s->last_arrival_ms && s->arrival_floor_ms + 1 - wall > lead)
        lead = s->arrival_floor_ms + 1 - wall;
    if (lead <= 0) {
        /* silent since before the clock's new time: nothing ahead */
        ad_detector_arrival(s->d, wall);
        return 0;
    }
    if (!s->arrival_lead_ms)
        dd->clock_leads++;
    s->arrival_lead_ms = lead;
    ad_detector_arrival(s->d, wall + lead);
    ad_log(AD_LOG_WARNING, "clock: stream %s/%s not started anew (%s): its arrival times "
           "run %.3f s ahead of the clock, after its last row, until it can be",
           s->det->c->name, s->key, why, (double)lead / 1000.0);
    return 1;
}

/* The streams left with an arrival lead (clock_lead) that can be rebuilt
 * now (their training done, their model saved): rebuilt. Once a second
 * from streams_house while any is left. */
static void clock_retry(ad_daemon *dd)
{
    gen *g = dd->g;
    int n = 0;

    for (int i = 0; i < g->n; i++) {
        MAP_FOREACH(&g->dets[i].streams, s) {
            if (!s->arrival_lead_ms)
                continue;
            if (s->restoring || !s->d || s->dead || clock_keep(s) || !clock_rebuild(dd, s)) {
                n++;
                continue;
            }
            ad_log(AD_LOG_NOTICE, "clock: stream %s/%s starts its rows anew (the step back "
                   "it ran ahead of)", s->det->c->name, s->key);
        }
    }
    dd->clock_leads = n;
}

void streams_clock_landed(ad_daemon *dd, stream_rec *s)
{
    int64_t wall = (int64_t)dd_data_wall_ms(dd), c = s->arrival_floor_ms;

    s->clock_anew = 0;
    if (s->arrival_lead_ms)
        s->arrival_lead_ms = 0;
    /* held: stamped on the clock before the step (or 1 ms after those):
     * after the restored last row now, in their order, and no later than
     * now when they can */
    for (held_msg *h = s->held; h; h = h->next) {
        int64_t t = (int64_t)llround(h->now_s * 1000.0);
        if (t > wall)
            t = wall;
        if (t <= c)
            t = c + 1;
        c = t;
        h->now_s = (double)t / 1000.0;
    }
    s->last_arrival_ms = c;
}

void streams_clock_anew(ad_daemon *dd)
{
    gen *g = dd->g;
    int64_t wall = (int64_t)dd_data_wall_ms(dd);
    int rebuilt = 0, left = 0, timed = 0, later = 0;
    const char *why;

    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        /* as restore_clock: samples that carry their time keep it */
        int stamped = !(d->c->payload.format == AD_FMT_JSON && d->c->payload.timestamp) &&
                      !(dd->kafka && g->cfg->kafka.row_time == AD_KROW_RECORD);
        MAP_FOREACH(&d->streams, s) {
            if (s->restoring || !s->d) {
                /* its restore judges the lead of its last row; its arrival
                 * clock starts anew when it lands (streams_clock_landed) */
                s->clock_anew = 1;
                later++;
                continue;
            }
            if (!stamped) {
                /* its rows stay; its arrival clock (data time of a silence,
                 * the future check) starts now */
                ad_detector_arrival(s->d, wall);
                timed++;
                continue;
            }
            if ((why = clock_keep(s)) != NULL) {
                left += clock_lead(dd, s, wall, why);
                continue;
            }
            if (clock_rebuild(dd, s)) {
                rebuilt++;
                continue;
            }
            left += clock_lead(dd, s, wall, "its state could not be written out");
        }
    }
    ad_log(AD_LOG_NOTICE, "clock: after the step back: %d stream(s) start their rows anew, "
           "%d with their own times go on, %d restoring start when restored%s", rebuilt,
           timed, later, left ? "; some could not be started anew yet: their arrival times "
           "run ahead of the clock until they can (warned)" : "");
}

void streams_house(ad_daemon *dd, int evict)
{
    gen *g = dd->g;
    uint64_t now = uv_now(dd->loop);
    int64_t wall = (int64_t)dd_data_wall_ms(dd);

    dd_clock_anew(dd);
    if (evict && dd->clock_leads > 0)
        clock_retry(dd);

    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        int period = d->c->pipe.stream.mode == AD_ASM_PERIOD;
        uint64_t idle_ms = (uint64_t)(d->c->idle_evict * 1000);
        /* every mode moves event time once a second (rows held for
         * lateness or alignment, data-quality dropouts); period mode
         * every tick, so its grid rows come out on time */
        if (!period && !evict)
            continue;
        MAP_FOREACH(&d->streams, s) {
            if (s->restoring || !s->d)
                continue;       /* its samples wait for the restore */
            if (evict && idle_ms && now - s->last_ms > idle_ms && !s->training) {
                d->evicted++;
                dd->c.streams_evicted++;
                ad_log(AD_LOG_INFO, "detector %s: stream %s idle for %.0f s, evicted",
                       d->c->name, s->key, d->c->idle_evict);
                streams_evict(dd, s, AD_CLOSE_EVICTED);
                continue;
            }
            ad_detector_advance(s->d, wall + s->arrival_lead_ms);
            batch_pull(dd, s);
        }
    }
}
