/*
 * kafka.c - Kafka consumer group input, offset commits at scoring
 * barriers, the state topic and Kafka alerts (see kafka.h).
 *
 * Ownership: the ad_kafka is the daemon's (dd->kafka). It owns the three
 * librdkafka handles (group consumer, producer, state reader), their queue
 * watchers, the table of which partition each stream's records came from
 * (smap; for a stream restored from a hand-over also the offset its
 * records count from), the states read from the state topic not yet
 * installed (tmap) and, while it is read, the latest record of each of
 * its keys (rmap). Everything runs on the loop thread; librdkafka's own
 * threads only write to the watchers' pipes, and its broker threads the
 * two atomics of the consumer's rebalance interceptors (rebalancing()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>

#include "daemon_int.h"
#include "kafka.h"

#define POLL_BUDGET 4096           /* records per loop turn before yielding */
#define BAR_DELIVERY_MS 1000       /* a commit barrier waits this long for deliveries */
#define BAR_RETRY_MS 10000         /* after that, the next tries this much later */
#define NBUCKET 4096

/* One entry of a small string-keyed table ("detector\x1fstream"). */
typedef struct kent {
    struct kent *next;
    char *val;                     /* tmap: state JSON */
    int32_t part;                  /* smap: partition */
    int topic;                     /* smap: index in k->topics */
    int64_t skip;                  /* smap: the stream's records of part below
                                    * this offset are in the hand-over state
                                    * it is restored from (0: none) */
    int verdict;                   /* smap: that state's restore: 0 not
                                    * known yet (its records below skip are
                                    * held with the stream's samples, then
                                    * skipped or applied), 1 taken (skipped),
                                    * -1 refused (skip 0: applied) */
    int split;                     /* smap: its records came from two partitions
                                    * (warned of) */
    int took;                      /* smap: records applied since the stream's
                                    * last checkpoint (kafka.commit_states) */
    int64_t rec_raw, rec_ms;       /* smap: the record-time steps that state
                                    * left off at (stream_rec's last_rec_*),
                                    * for its first record from skip on (0: none) */
    char key[];
} kent;

/* The latest record of one key of the state topic in this read (rmap):
 * its value's bytes, decoded at the read's end (state_apply). */
typedef struct srec {
    struct srec *hnext;            /* bucket chain */
    struct srec *prev, *next;      /* in the order each key's latest came */
    char *val;
    size_t len, klen;
    char key[];
} srec;

typedef struct qwatch {
    uv_poll_t poll;
    int fd[2];
    rd_kafka_queue_t *q;
    int on;
} qwatch;

typedef struct ad_kafka {
    ad_daemon *dd;
    rd_kafka_t *c, *p, *sr;
    qwatch cw, pw, sw;
    uv_idle_t more;
    uv_timer_t commit_timer, bar_timer, state_timer;
    int paused, barrier, stopping, closed;
    int checkpointed;              /* this barrier's states are produced (checkpoint) */
    uint64_t bar_t0;               /* uv_now at the barrier's start */
    int undelivered;               /* a barrier ended waiting for deliveries (bar_cb) */
    /* states and alert events the cluster refused for good (dr_cb), and
     * that count when a commit last went by them: a commit in between
     * would name positions whose only trace was such a state */
    unsigned dr_failed, dr_failed_seen;
    int dr_warned;                 /* warned of a commit skipped for them */
    /* rebalances (see rebalancing()): joining and syncs are written by
     * the consumer's interceptors on librdkafka's broker threads */
    int joining;                   /* a JoinGroup sent, its SyncGroup not answered */
    unsigned syncs;                /* SyncGroup responses */
    int watching;                  /* the interceptors are installed */
    int rejoining;                 /* revoked, no SyncGroup answered since */
    unsigned revoke_syncs;         /* syncs at that revoke */
    rd_kafka_topic_partition_list_t *restoring;
    int state_parts, eof_left, reading;
    uint64_t read_t0, read_recs, read_bytes;   /* this read of the state topic (t0: ns) */
    /* this read's latest record of each key (state_keep): the topic is
     * compacted, only the latest record of a key lasts in it */
    srec *rmap[NBUCKET], *rhead, *rtail;
    size_t rkeys;
    /* records of partitions whose states are being read (restoring), held
     * in arrival order until every read is done, then applied before
     * anything else is read (hold(), consume()); each such partition is
     * paused once its first record is held (holdp) and resumed when its
     * records are applied */
    rd_kafka_message_t **held;
    size_t nheld, held_next, held_cap;
    rd_kafka_topic_partition_list_t *holdp;
    size_t max_bytes;              /* the producer's message.max.bytes */
    int warned_no_ts;              /* a record without a timestamp was warned of */
    /* alert events handed to the producer and not delivered yet, in the
     * order produced (the outbox keeps them across a crash) */
    struct kmsg *pend_head, *pend_tail;
    size_t npend;
    int overflow;                  /* more waiting for room than max_queued_alerts */
    size_t nunq;                   /* of those, not in the producer's queue: it was
                                    * full (pend_retry) */
    char **topics;                 /* distinct kafka topics, for smap (copies: a
                                    * reload frees the configuration they came from) */
    int ntopics;
    kent *smap[NBUCKET], *tmap[NBUCKET];
} ad_kafka;

/* The kafka settings: those of the running configuration, which a reload
 * replaces (it cannot change them: ad_config_reload_ok). */
static const ad_kafka_cfg *kcfg(const ad_kafka *k)
{
    return &k->dd->g->cfg->kafka;
}

/* ---- tables ---------------------------------------------------------------- */

static void mkkey(char *out, size_t len, const char *det, const char *key)
{
    snprintf(out, len, "%s\x1f%s", det, key);
}

static kent **tfind(kent **tab, const char *k)
{
    kent **pp = &tab[ad_fnv1a64_str(k) & (NBUCKET - 1)];
    while (*pp && strcmp((*pp)->key, k) != 0) pp = &(*pp)->next;
    return pp;
}

static kent *tget(kent **tab, const char *k)
{
    kent **pp = tfind(tab, k);
    size_t l = strlen(k) + 1;
    if (*pp) return *pp;
    if (!(*pp = calloc(1, sizeof **pp + l))) return NULL;
    memcpy((*pp)->key, k, l);
    return *pp;
}

static void tdel(kent **tab, const char *k)
{
    kent **pp = tfind(tab, k), *e = *pp;
    if (!e) return;
    *pp = e->next;
    free(e->val);
    free(e);
}

static void tclear(kent **tab)
{
    for (int i = 0; i < NBUCKET; i++)
        while (tab[i]) {
            kent *e = tab[i];
            tab[i] = e->next;
            free(e->val);
            free(e);
        }
}

static int topic_index(ad_kafka *k, const char *t)
{
    for (int i = 0; i < k->ntopics; i++)
        if (strcmp(k->topics[i], t) == 0) return i;
    return -1;
}

/* ---- queue watchers --------------------------------------------------------- */

static void on_readable(uv_poll_t *h, int status, int events);

static int qwatch_start(ad_kafka *k, qwatch *w, rd_kafka_queue_t *q)
{
    if (pipe2(w->fd, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    w->q = q;
    rd_kafka_queue_io_event_enable(q, w->fd[1], "1", 1);
    uv_poll_init(k->dd->loop, &w->poll, w->fd[0]);
    w->poll.data = k;
    uv_poll_start(&w->poll, UV_READABLE, on_readable);
    w->on = 1;
    return 0;
}

static void close_noop(uv_handle_t *h) { (void)h; }

static void qwatch_stop(qwatch *w)
{
    if (!w->on) return;
    rd_kafka_queue_io_event_enable(w->q, -1, NULL, 0);
    uv_close((uv_handle_t *)&w->poll, close_noop);
    rd_kafka_queue_destroy(w->q);
    close(w->fd[0]);
    close(w->fd[1]);
    w->on = 0;
}

/* ---- records in ------------------------------------------------------------- */

/* Is m, a record of the stream of e (topic index ti), one its hand-over
 * state already holds? The old owner wrote the partition's position with
 * that state (state_put); when it could not commit it (an assignment
 * librdkafka reported lost, see revoke_parts), the records up to there
 * come again from the last commit and are not processed twice. */
static int handed_over(ad_kafka *k, kent *e, const char *topic, int ti,
                       const rd_kafka_message_t *m, const char *det, const char *key)
{
    int64_t lo, hi;
    if (e->skip <= 0)
        return 0;
    if (e->topic != ti || e->part != m->partition) {
        e->skip = e->rec_raw = 0;   /* the stream's records come from elsewhere now */
        return 0;
    }
    if (m->offset >= e->skip) {
        ad_log(AD_LOG_DEBUG, "kafka %s[%d]: stream %s/%s continues at %lld, where its "
               "hand-over left it", topic, (int)m->partition, det, key, (long long)m->offset);
        e->skip = 0;
        return 0;
    }
    /* the high watermark (of the fetch that brought m) below the saved
     * position: the partition is not the one the state was taken from */
    if (rd_kafka_get_watermark_offsets(k->c, topic, m->partition, &lo, &hi) ==
            RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0 && hi < e->skip) {
        ad_log(AD_LOG_WARNING, "kafka %s[%d]: stream %s/%s was handed over at offset %lld, "
               "past the partition's end %lld (topic re-created?): its records are not "
               "skipped", topic, (int)m->partition, det, key, (long long)e->skip,
               (long long)hi);
        e->skip = e->rec_raw = 0;
        return 0;
    }
    return 1;
}

/* The record of m for the streams: named in what is logged of it, and
 * with kafka.row_time "record" its timestamp (CreateTime, or LogAppendTime
 * when the topic has the broker stamp records) the time of the samples
 * without one. A record without a timestamp (a message format older than
 * Kafka 0.10, kept by the topic or written by an old client) leaves them
 * the arrival time: warned of once, since such records read again after a
 * crash are applied again. */
static void record_of(ad_kafka *k, const rd_kafka_message_t *m, const char *topic,
                      kafka_rec *r)
{
    rd_kafka_timestamp_type_t tt = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);

    r->topic = topic;
    r->partition = m->partition;
    r->offset = m->offset;
    r->handover = 0;
    r->ts_type = tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "CreateTime";
    r->ts_ms = -1;
    if (kcfg(k)->row_time != AD_KROW_RECORD)
        return;
    if (tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts == -1) {
        if (!k->warned_no_ts) {
            k->warned_no_ts = 1;
            ad_log(AD_LOG_WARNING, "kafka %s[%d]@%lld: record without a timestamp: the "
                   "samples of such records without a time of their own take the arrival "
                   "time, and are applied again if read again after a crash (warned once)",
                   topic, (int)m->partition, (long long)m->offset);
        }
        return;
    }
    r->ts_ms = ts;
}

/* The first record of a stream after its hand-over (e: its entry, with
 * the steps its state left off at): its records of one millisecond go on
 * 1 ms apart from where the old owner's steps stopped (record_time in
 * streams.c), after the rows the state holds. Stepped afresh from the
 * record's own time, the rest of a batch stamped in one millisecond (a
 * topic with LogAppendTime, a producer's burst) would be behind those rows
 * and dropped as late. The records before the hand-over's position are
 * skipped by offset (handed_over), not by time, so no record the state
 * holds is stepped past its rows here. */
static void resume_steps(ad_daemon *dd, det_rt *d, const char *key, kent *e)
{
    stream_rec *s = streams_open(dd, d, key);   /* restores the state */
    if (s && !s->last_rec_raw) {
        s->last_rec_raw = e->rec_raw;
        s->last_rec_ms = e->rec_ms;
    }
    e->rec_raw = e->rec_ms = 0;
}

static void on_record(ad_kafka *k, const rd_kafka_message_t *m)
{
    ad_daemon *dd = k->dd;
    gen *g = dd->g;
    const char *topic = rd_kafka_topic_name(m->rkt);
    char key[KEY_MAX], tk[KEY_MAX + 80];
    int matched = 0, skipped = 0, ti = topic_index(k, topic);
    kafka_rec rec;

    dd->c.messages_in++;
    if (dd->stopping) { dd->c.ignored_stopping++; return; }
    if (m->len > (size_t)g->cfg->max_payload) {
        dd->c.oversized++;
        dd_bad_input(dd, "kafka %s[%d]@%lld: %zu-byte value over max_payload_bytes %d, dropped",
                     topic, (int)m->partition, (long long)m->offset, m->len, g->cfg->max_payload);
        return;
    }
    if (!m->key || m->key_len == 0 || m->key_len >= sizeof key ||
        memchr(m->key, '\0', m->key_len)) {
        dd->c.no_stream_key++;
        dd_bad_input(dd, "kafka %s[%d]@%lld: record key missing or not a stream key",
                     topic, (int)m->partition, (long long)m->offset);
        return;
    }
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    dd_arrival_clock(dd);
    dd_clock_anew(dd);          /* before this record is stamped for a stream */
    record_of(k, m, topic, &rec);
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        for (int j = 0; j < d->c->kafka_topics.n; j++)
            if (strcmp(d->c->kafka_topics.v[j], topic) == 0) {
                kent *e;
                matched = 1;
                mkkey(tk, sizeof tk, d->c->name, key);
                if ((e = tget(k->smap, tk))) {
                    if (handed_over(k, e, topic, ti, m, d->c->name, key)) {
                        if (e->verdict > 0) {
                            skipped = 1;
                            break;
                        }
                        /* its restore not done yet: the stream holds it
                         * and asks then (kafka_handover_taken) */
                        rec.handover = 1;
                    }
                    if ((e->topic != ti || e->part != m->partition) && !e->split &&
                        e->topic >= 0 && e->topic < k->ntopics && streams_find(d, key)) {
                        /* the group keeps a stream whole only when all its
                         * records are in one partition */
                        e->split = 1;
                        ad_log(AD_LOG_WARNING, "kafka %s[%d]@%lld: stream %s/%s had its "
                               "records from %s[%d]: a stream's records must all be in one "
                               "partition (the record key is the stream key). Split between "
                               "partitions (partitions added to the topic, a key in two "
                               "topics of the detector), it runs on each of their owners, "
                               "its state goes with the partition of its latest record and "
                               "their next owners may restore an older state of it, or "
                               "none (warned once per stream)", topic, (int)m->partition,
                               (long long)m->offset, d->c->name, key, k->topics[e->topic],
                               (int)e->part);
                    }
                    e->part = m->partition;
                    e->topic = ti;
                    e->took = 1;
                    /* the steps go on from the first record after the
                     * state's offset (one before it is in the state) */
                    if (e->rec_raw > 0 && !rec.handover)
                        resume_steps(dd, d, key, e);
                }
                streams_message_key(dd, d, key, topic, m->payload, m->len,
                                    (double)dd->arr_wall_ms / 1000.0, &rec);
                break;
            }
    }
    if (skipped)
        dd->c.handover_skipped++;
    if (!matched) {
        dd->c.no_detector++;
        dd_bad_input(dd, "kafka topic %.128s feeds no detector", topic);
    }
}

static void kick(ad_kafka *k);

static int in_list(const rd_kafka_topic_partition_list_t *l, const char *t, int32_t p);

/* Keep m (a record of a partition whose state is being read) for when the
 * read is done. Its partition is paused at its first held record: pausing
 * a partition whose fetch has started is safe, while a pause right after
 * the assignment can void the assignment's start of fetching
 * (confluentinc/librdkafka#2190): the partition then never delivers a
 * record. 0, or -1 when out of memory (m is not kept). */
static int hold(ad_kafka *k, rd_kafka_message_t *m)
{
    const char *t = rd_kafka_topic_name(m->rkt);
    if (k->nheld == k->held_cap) {
        size_t cap = k->held_cap ? 2 * k->held_cap : 256;
        rd_kafka_message_t **h = realloc(k->held, cap * sizeof *h);
        if (!h)
            return -1;
        k->held = h;
        k->held_cap = cap;
    }
    if (!k->holdp && !(k->holdp = rd_kafka_topic_partition_list_new(4)))
        return -1;
    if (!in_list(k->holdp, t, m->partition)) {
        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
        if (!one)
            return -1;
        rd_kafka_topic_partition_list_add(one, t, m->partition);
        rd_kafka_pause_partitions(k->c, one);
        rd_kafka_topic_partition_list_destroy(one);
        rd_kafka_topic_partition_list_add(k->holdp, t, m->partition);
        ad_log(AD_LOG_DEBUG, "kafka: %s[%d]: records held %s", t, (int)m->partition,
               k->dd->stopping ? "and not applied (stopping): their offsets are its next "
               "owner's" : "until its state is read");
    }
    k->held[k->nheld++] = m;
    return 0;
}

/* Every held record applied: their partitions read on. */
static void held_done(ad_kafka *k)
{
    k->nheld = k->held_next = 0;
    if (k->holdp) {
        rd_kafka_resume_partitions(k->c, k->holdp);
        rd_kafka_topic_partition_list_destroy(k->holdp);
        k->holdp = NULL;
    }
}

/* Records of partition (t, p) held and not applied: the offset of the
 * first of them (-1: none), and with drop they are let go. */
static int64_t held_unapplied(ad_kafka *k, const char *t, int32_t p, int drop)
{
    int64_t first = -1;
    size_t o = k->held_next;
    for (size_t i = k->held_next; i < k->nheld; i++) {
        rd_kafka_message_t *m = k->held[i];
        if (m->partition == p && strcmp(rd_kafka_topic_name(m->rkt), t) == 0) {
            if (first < 0)
                first = m->offset;
            if (drop) {
                rd_kafka_message_destroy(m);
                continue;
            }
        }
        k->held[o++] = m;
    }
    if (drop) {
        k->nheld = o;
        if (in_list(k->holdp, t, p)) {
            /* librdkafka keeps a partition's pause across its revoke and
             * a later assignment: resumed here, else it would never read
             * again when it comes back */
            rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
            if (one) {
                rd_kafka_topic_partition_list_add(one, t, p);
                rd_kafka_resume_partitions(k->c, one);
                rd_kafka_topic_partition_list_destroy(one);
            }
            rd_kafka_topic_partition_list_del(k->holdp, t, p);
        }
    }
    return first;
}

/* Let every held record go (stop). */
static void held_free(ad_kafka *k)
{
    for (size_t i = k->held_next; i < k->nheld; i++)
        rd_kafka_message_destroy(k->held[i]);
    k->nheld = k->held_next = 0;
    if (k->holdp) {
        rd_kafka_topic_partition_list_destroy(k->holdp);
        k->holdp = NULL;
    }
}

/* Read what the consumer queue holds, at most POLL_BUDGET records a turn:
 * the records held while partitions' states were read first, once every
 * read is done. While the daemon stops (kafka_drain) every record is held
 * and none applied: a stop commits the offset of the first of them. */
static void consume(ad_kafka *k)
{
    int n = 0, stopping = k->dd->stopping;
    rd_kafka_message_t *m;
    while (!k->restoring && !stopping && k->held_next < k->nheld && !k->paused &&
           !k->barrier && !k->closed && n < POLL_BUDGET) {
        m = k->held[k->held_next++];
        on_record(k, m);
        rd_kafka_message_destroy(m);
        n++;
    }
    if (!k->restoring && !stopping && k->held_next == k->nheld && (k->nheld || k->holdp))
        held_done(k);
    while (!k->paused && !k->barrier && !k->closed && n < POLL_BUDGET &&
           (!k->nheld || k->restoring || stopping) && (m = rd_kafka_consumer_poll(k->c, 0))) {
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && (stopping || (k->restoring &&
            in_list(k->restoring, rd_kafka_topic_name(m->rkt), m->partition)))) {
            n++;
            if (hold(k, m) == 0)
                continue;
            ad_log(AD_LOG_ERR, "kafka %s[%d]@%lld: out of memory holding the record while "
                   "%s: dropped", rd_kafka_topic_name(m->rkt), (int)m->partition,
                   (long long)m->offset, stopping ? "stopping" : "the partition's state is read");
        } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            on_record(k, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            ad_log(AD_LOG_WARNING, "kafka: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        n++;
    }
    if (n == POLL_BUDGET && !k->paused && !k->barrier)
        kick(k);                    /* more may wait: no new pipe event for it */
    else if (!k->restoring && !stopping && k->nheld && !k->paused && !k->barrier)
        kick(k);
}

static void more_cb(uv_idle_t *h)
{
    ad_kafka *k = h->data;
    uv_idle_stop(h);
    consume(k);
}

/* (re)start reading on the next loop turn */
static void kick(ad_kafka *k)
{
    if (!k->closed)
        uv_idle_start(&k->more, more_cb);
}

/* ---- state topic ------------------------------------------------------------- */

static int in_list(const rd_kafka_topic_partition_list_t *l, const char *t, int32_t p)
{
    return l && rd_kafka_topic_partition_list_find(l, t, p) != NULL;
}

/* A state record: {"topic","partition","detector","stream","state"}, and
 * "offset" when written at a hand-over: the partition's position then
 * (the stream's records before it are in the state), with "rec_time"
 * [raw, ms]: the last record timestamp taken as a time and the time its
 * samples were given (1 ms steps within a millisecond: resume_steps). Kept when its
 * partition is being restored here. Only the latest record of each key
 * of the topic comes here (state_keep); one that does not parse is
 * ignored. The state itself is scanned, not parsed, here: its restore
 * parses it on the thread pool, and its "offset" skips the records
 * before it only once that restore took it (kafka_restore_result); a
 * state that does not parse, or that the restore refuses (other
 * features, a broken calibration), skips nothing, and the stream
 * calibrates afresh (not from the instance's own state file). */
/* A state record's members but its state, parsed (the state cut out,
 * "0" in its place: it is kept as the text it is, which its restore
 * parses): the object, or NULL when the record does not parse; [*vs, *ve)
 * the state's text (empty: none). *restored: the record is of a stream of
 * a partition being restored here. */
static cJSON *state_header(ad_kafka *k, const char *val, size_t len, size_t *vs, size_t *ve,
                           int *restored)
{
    cJSON *o, *t, *p, *de, *st;
    char *rest;
    int rc = ad_json_member_span(val, len, "state", vs, ve);
    *restored = 0;
    if (rc == AD_EINVAL)
        return NULL;
    if (rc == 0) {
        if (!(rest = malloc(len - (*ve - *vs) + 1)))
            return NULL;
        memcpy(rest, val, *vs);
        rest[*vs] = '0';
        memcpy(rest + *vs + 1, val + *ve, len - *ve);
        o = cJSON_ParseWithLength(rest, len - (*ve - *vs) + 1);
        free(rest);
    } else {
        *vs = *ve = 0;
        o = cJSON_ParseWithLength(val, len);
    }
    if (!o)
        return NULL;
    t = cJSON_GetObjectItemCaseSensitive(o, "topic");
    p = cJSON_GetObjectItemCaseSensitive(o, "partition");
    de = cJSON_GetObjectItemCaseSensitive(o, "detector");
    st = cJSON_GetObjectItemCaseSensitive(o, "stream");
    *restored = cJSON_IsString(t) && cJSON_IsNumber(p) && cJSON_IsString(de) &&
                cJSON_IsString(st) && in_list(k->restoring, t->valuestring,
                                              (int32_t)p->valuedouble);
    return o;
}

static void on_state_record(ad_kafka *k, const char *val, size_t len)
{
    cJSON *o, *t, *p, *de, *st;
    char tk[KEY_MAX + 80];
    size_t vs = 0, ve = 0;
    int restored, live;
    if (!(o = state_header(k, val, len, &vs, &ve, &restored)))
        return;
    live = ve > vs && !(ve - vs == 4 && memcmp(val + vs, "null", 4) == 0);
    t = cJSON_GetObjectItemCaseSensitive(o, "topic");
    p = cJSON_GetObjectItemCaseSensitive(o, "partition");
    de = cJSON_GetObjectItemCaseSensitive(o, "detector");
    st = cJSON_GetObjectItemCaseSensitive(o, "stream");
    if (restored) {
        cJSON *of = cJSON_GetObjectItemCaseSensitive(o, "offset");
        int ti = topic_index(k, t->valuestring);
        int32_t part = (int32_t)p->valuedouble;
        kent *e;
        mkkey(tk, sizeof tk, de->valuestring, st->valuestring);
        if (!live) {
            tdel(k->tmap, tk);
        } else if ((e = tget(k->tmap, tk))) {
            free(e->val);
            e->val = strndup(val + vs, ve - vs);
        }
        /* where the stream's records start to count (handed_over) */
        if (ti >= 0) {
            if (!(e = *tfind(k->smap, tk)) && (e = tget(k->smap, tk))) {
                e->topic = ti;
                e->part = part;
            }
            if (e && e->topic == ti && e->part == part) {
                cJSON *rt = cJSON_GetObjectItemCaseSensitive(o, "rec_time");
                cJSON *r0 = cJSON_GetArrayItem(rt, 0), *r1 = cJSON_GetArrayItem(rt, 1);
                e->skip = live && cJSON_IsNumber(of) && of->valuedouble > 0 &&
                          of->valuedouble < 9e18 ? (int64_t)of->valuedouble : 0;
                e->verdict = 0;     /* its restore says (kafka_restore_result) */
                e->rec_raw = e->rec_ms = 0;
                if (e->skip && cJSON_IsArray(rt) && cJSON_IsNumber(r0) && cJSON_IsNumber(r1) &&
                    r0->valuedouble > 0 && r1->valuedouble >= r0->valuedouble &&
                    r1->valuedouble < 9e15) {
                    e->rec_raw = (int64_t)r0->valuedouble;
                    e->rec_ms = (int64_t)r1->valuedouble;
                }
            }
        }
    }
    cJSON_Delete(o);
}

static void srec_unlink(ad_kafka *k, srec *e)
{
    if (e->prev) e->prev->next = e->next; else k->rhead = e->next;
    if (e->next) e->next->prev = e->prev; else k->rtail = e->prev;
    e->prev = e->next = NULL;
}

/* Forget this read's records (a read restarted, or at exit). */
static void state_forget(ad_kafka *k)
{
    srec *e, *n;
    for (e = k->rhead; e; e = n) {
        n = e->next;
        free(e->val);
        free(e);
    }
    memset(k->rmap, 0, sizeof k->rmap);
    k->rhead = k->rtail = NULL;
    k->rkeys = 0;
}

/* A record read from the state topic: its bytes replace those of its
 * key's earlier record, a tombstone (no value) drops them, as compaction
 * leaves the topic; so does a record that does not parse or is not of a
 * partition being restored (only those are kept: what the read holds is
 * bounded by them). A record without a key is ignored. The state in it
 * is only scanned here, and taken at the read's end (state_apply): a
 * stream written many times (an uncompacted segment,
 * kafka.commit_states) is parsed once, by its restore. */
static void state_keep(ad_kafka *k, const rd_kafka_message_t *m)
{
    srec **pp, *e;
    cJSON *o = NULL;
    size_t vs, ve;
    int restored = 0;
    if (!m->key)
        return;
    if (m->payload && m->len)
        o = state_header(k, m->payload, m->len, &vs, &ve, &restored);
    cJSON_Delete(o);
    pp = &k->rmap[ad_fnv1a64(AD_FNV_INIT, m->key, m->key_len) & (NBUCKET - 1)];
    while (*pp && ((*pp)->klen != m->key_len || memcmp((*pp)->key, m->key, m->key_len) != 0))
        pp = &(*pp)->hnext;
    if ((e = *pp)) {
        srec_unlink(k, e);
        free(e->val);
        e->val = NULL;
    }
    if (restored) {
        if (!e && (e = calloc(1, sizeof *e + m->key_len))) {
            memcpy(e->key, m->key, m->key_len);
            e->klen = m->key_len;
            *pp = e;
            k->rkeys++;
        }
        if (e && (e->val = malloc(m->len))) {
            memcpy(e->val, m->payload, m->len);
            e->len = m->len;
            /* last: the keys' latest records decode in the order they came */
            e->prev = k->rtail;
            if (k->rtail) k->rtail->next = e; else k->rhead = e;
            k->rtail = e;
            return;
        }
        if (e)
            ad_log(AD_LOG_WARNING, "kafka state topic: out of memory keeping a %zu-byte record",
                   m->len);
    }
    if (e) {                        /* a tombstone, not kept, or no memory for it */
        *pp = e->hnext;
        free(e);
        k->rkeys--;
    }
}

/* The read is at its end: each key's latest record, in the order they
 * came, as if they alone had been read. */
static void state_apply(ad_kafka *k)
{
    for (srec *e = k->rhead; e; e = e->next)
        on_state_record(k, e->val, e->len);
    state_forget(k);
}

/* The state topic is read to its end: the restored partitions' records
 * held meanwhile are applied, then they read on (consume()). */
static void restore_done(ad_kafka *k)
{
    rd_kafka_topic_partition_list_t *l;
    uint64_t t1 = uv_hrtime();
    size_t keys = k->rkeys;
    state_apply(k);
    l = k->restoring;
    k->restoring = NULL;
    k->reading = 0;
    uv_timer_stop(&k->state_timer);
    rd_kafka_assign(k->sr, NULL);
    if (!l) return;
    ad_log(AD_LOG_INFO, "kafka: state topic read: %llu record(s), %.1f MB in %.2f s "
           "(%zu key(s) decoded in %.2f s)", (unsigned long long)k->read_recs,
           k->read_bytes / 1048576.0, (uv_hrtime() - k->read_t0) / 1e9, keys,
           (uv_hrtime() - t1) / 1e9);
    for (int i = 0; i < l->cnt; i++)
        ad_log(AD_LOG_INFO, "kafka: owns %s[%d] from %llu (state read)", l->elems[i].topic,
               (int)l->elems[i].partition, (unsigned long long)dd_wall_ms());
    rd_kafka_topic_partition_list_destroy(l);
    kick(k);
}

/* Read the state topic (a budget a turn). Records left over from an
 * earlier read are discarded, so the queue empties and its watcher fires
 * again; the state timer reads on while the watcher is silent. */
static void state_read(ad_kafka *k)
{
    rd_kafka_message_t *m;
    int n = 0;
    if (!k->reading) {
        while ((m = rd_kafka_consumer_poll(k->sr, 0)))
            rd_kafka_message_destroy(m);
        return;
    }
    while (k->reading && n < POLL_BUDGET && (m = rd_kafka_consumer_poll(k->sr, 0))) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (--k->eof_left == 0) {
                rd_kafka_message_destroy(m);
                restore_done(k);
                return;
            }
        } else if (m->err) {
            ad_log(AD_LOG_WARNING, "kafka state topic: %s", rd_kafka_message_errstr(m));
        } else {
            k->read_recs++;
            k->read_bytes += m->len + m->key_len;
            state_keep(k, m);
        }
        rd_kafka_message_destroy(m);
        n++;
    }
}

static void state_timer_cb(uv_timer_t *t)
{
    state_read(t->data);
}

/* Read the state topic from its beginning (again). */
static void state_read_start(ad_kafka *k)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->state_parts);
    for (int i = 0; i < k->state_parts; i++)
        rd_kafka_topic_partition_list_add(l, kcfg(k)->state_topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    k->eof_left = k->state_parts;
    k->reading = 1;
    k->read_t0 = uv_hrtime();
    k->read_recs = k->read_bytes = 0;
    state_forget(k);
    rd_kafka_assign(k->sr, l);
    rd_kafka_topic_partition_list_destroy(l);
    uv_timer_start(&k->state_timer, state_timer_cb, 20, 20);
}

/* An alert event until it is delivered (the msg_opaque of its message). */
typedef struct kmsg {
    struct kmsg *prev, *next;
    char *topic, *key, *val;
    int unqueued;                  /* refused with a full queue: pend_retry */
} kmsg;

/* A state record (alert events: produce_alert). 0, or -1 (said in a warning). */
static int produce(ad_kafka *k, const char *topic, const char *key, const char *val)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(k->p, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)val, val ? strlen(val) : 0), RD_KAFKA_V_END);
    if (e) {
        ad_log(AD_LOG_WARNING, "kafka: cannot produce to %s: %s", topic, rd_kafka_err2str(e));
        k->dr_failed++;             /* a state lost as one refused (dr_failures) */
    }
    return e ? -1 : 0;
}

static void pend_unlink(ad_kafka *k, kmsg *m)
{
    if (m->prev) m->prev->next = m->next; else k->pend_head = m->next;
    if (m->next) m->next->prev = m->prev; else k->pend_tail = m->prev;
    k->npend--;
    if (m->unqueued)
        k->nunq--;
    free(m->topic);
    free(m->key);
    free(m->val);
    free(m);
}

/* Hand the pending alert event m to the producer: 0, 1 (its queue is
 * full, queue.buffering.max.messages or .kbytes: m is kept, unqueued, for
 * pend_retry), 2 (the producer had a fatal error: m is kept for the
 * outbox), or -1 (refused otherwise, said in a warning: the caller lets
 * it go). */
static int pend_produce(ad_kafka *k, kmsg *m)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(k->p, RD_KAFKA_V_TOPIC(m->topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(m->key, strlen(m->key)),
        RD_KAFKA_V_VALUE(m->val, strlen(m->val)),
        RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__FATAL)  /* the producer is done for (error_cb stops the */
        return 2;                       /* daemon): m is kept, for the outbox */
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (!k->nunq)
            ad_log(AD_LOG_WARNING, "kafka: the producer's queue is full (the cluster or "
                   "the alert topic's leader away; queue.buffering.max.messages): alert "
                   "events kept, in order, and produced as it empties");
        if (!m->unqueued)
            k->nunq++;
        m->unqueued = 1;
        return 1;
    }
    if (m->unqueued && --k->nunq == 0)
        k->overflow = 0;            /* the next overflow is said again */
    m->unqueued = 0;
    if (e)
        ad_log(AD_LOG_WARNING, "kafka: cannot produce to %s: %s", m->topic,
               rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/* The alert events the producer's full queue refused, in order, as long
 * as it takes them (the loop, after delivery reports made room). */
static void pend_retry(ad_kafka *k)
{
    for (kmsg *m = k->pend_head, *nx; m && k->nunq; m = nx) {
        nx = m->next;
        if (!m->unqueued)
            continue;
        int rc = pend_produce(k, m);
        if (rc > 0)
            return;
        if (rc < 0)
            pend_unlink(k, m);
    }
}

/* Those waiting for room are bounded as the MQTT queue is
 * (broker.max_queued_alerts): the oldest beyond it dropped, said once per
 * overflow (outbox.json holds the rest). */
static void pend_bound(ad_kafka *k)
{
    size_t cap = (size_t)k->dd->g->cfg->broker.max_queued_alerts;
    while (k->nunq > cap) {
        kmsg *m = k->pend_head;
        while (m && !m->unqueued)
            m = m->next;
        if (!m)
            return;
        if (!k->overflow)
            ad_log(AD_LOG_WARNING, "kafka: more than %zu alert events wait for room in the "
                   "producer's queue (broker.max_queued_alerts): the oldest dropped, the "
                   "first of them to %s key %s", cap, m->topic, m->key);
        k->overflow = 1;
        pend_unlink(k, m);
    }
}

/* An alert event: kept until delivered (dr_cb). 0, or -1 (not taken:
 * said in a warning). Behind events a full queue refused, it waits too. */
static int produce_alert(ad_kafka *k, const char *topic, const char *key, const char *val)
{
    kmsg *m = calloc(1, sizeof *m);
    if (!m || !(m->topic = strdup(topic)) || !(m->key = strdup(key)) ||
        !(m->val = strdup(val))) {
        if (m) { free(m->topic); free(m->key); free(m); }
        ad_log(AD_LOG_WARNING, "kafka: cannot produce to %s: out of memory", topic);
        return -1;
    }
    m->prev = k->pend_tail;
    if (k->pend_tail) k->pend_tail->next = m; else k->pend_head = m;
    k->pend_tail = m;
    k->npend++;
    if (k->nunq) {                  /* after those waiting for room */
        m->unqueued = 1;
        k->nunq++;
        pend_bound(k);
        pend_retry(k);
        return 0;
    }
    if (pend_produce(k, m) < 0) {
        pend_unlink(k, m);
        return -1;
    }
    return 0;
}

size_t kafka_pending(const ad_daemon *dd)
{
    return dd->kafka ? dd->kafka->npend : 0;
}

void kafka_pending_foreach(const ad_daemon *dd, void (*cb)(void *ud, const char *topic,
                           const char *key, const char *json), void *ud)
{
    for (const kmsg *m = dd->kafka ? dd->kafka->pend_head : NULL; m; m = m->next)
        cb(ud, m->topic, m->key, m->val);
}

int kafka_alert_again(ad_daemon *dd, const char *topic, const char *key, const char *json)
{
    if (!dd->kafka || dd->kafka->closed) return -1;
    return produce_alert(dd->kafka, topic, key, json);
}

/* A state record txt (o printed; st its "state", or an object within it)
 * over what message.max.bytes leaves for it: without st's member, said in
 * a warning (what follows from leaving it out). The record to send, or
 * NULL (OOM). */
static char *shed(const ad_kafka *k, const stream_rec *s, cJSON *o, cJSON *st, char *txt,
                  const char *member, const char *what)
{
    size_t was;

    if (!txt || strlen(txt) <= k->max_bytes || !st ||
        !cJSON_GetObjectItemCaseSensitive(st, member))
        return txt;
    was = strlen(txt);
    cJSON_DeleteItemFromObjectCaseSensitive(st, member);
    free(txt);
    ad_log(AD_LOG_WARNING, "kafka: stream %s/%s: its %zu-byte state is over the %zu bytes "
           "message.max.bytes leaves for it: %s", s->det->c->name, s->key, was, k->max_bytes,
           what);
    return ad_json_print(o);
}

/* The state of s (NULL state: not calibrated yet) for the state topic;
 * handover (SAVE_HANDOVER, or SAVE_CHECKPOINT: state_text): the stream
 * stops here or may go on from here (its window rows go with it), and
 * offset >= 0 is its partition's position: every record of the stream
 * before it is in this state (the next owner skips them if they come
 * again: handed_over). */
static size_t state_put(ad_kafka *k, stream_rec *s, int handover, int64_t offset)
{
    char tk[KEY_MAX + 80], pk[KEY_MAX + 80], *js, *txt;
    kent *e;
    cJSON *o, *st = NULL;
    size_t len = 0;
    if (!kcfg(k)->state_topic || !s->det || !s->d)
        return 0;
    mkkey(tk, sizeof tk, s->det->c->name, s->key);
    if (!(e = *tfind(k->smap, tk)) || e->topic < 0)
        return 0;                   /* not a stream of a Kafka partition */
    if (!(o = cJSON_CreateObject()))
        return 0;
    cJSON_AddStringToObject(o, "topic", k->topics[e->topic]);
    cJSON_AddNumberToObject(o, "partition", e->part);
    cJSON_AddStringToObject(o, "detector", s->det->c->name);
    cJSON_AddStringToObject(o, "stream", s->key);
    if (handover && offset >= 0) {
        cJSON_AddNumberToObject(o, "offset", (double)offset);
        /* where its record times' 1 ms steps stopped (resume_steps) */
        if (s->last_rec_raw > 0) {
            double rt[2] = { (double)s->last_rec_raw, (double)s->last_rec_ms };
            cJSON_AddItemToObject(o, "rec_time", cJSON_CreateDoubleArray(rt, 2));
        }
    }
    /* what a state file holds (the open alert's topic, whose clear goes
     * there on the next owner, operator feedback, the configured settings
     * hash), as the text it is (its numbers read back bit for bit):
     * parsed only when the record is too large and parts of it must be
     * left out */
    /* never the span of a fine-tune's candidate in shadow (up to
     * megabytes, at every checkpoint): its model is a file of the state
     * dir, never in a record; only the state file holds both (state.c):
     * a stream restored from its record takes the span from the state
     * file of the same point (a restart, a shared state dir), else goes
     * on without the candidate (expected: a notice, not a warning) */
    js = state_text(s, handover);
    if (handover == SAVE_HANDOVER && offset >= 0 &&
        ad_adapt_shadow_span(ad_detector_adapt(s->d)) != -1)
        ad_log(AD_LOG_NOTICE, "kafka: stream %s/%s: its candidate in shadow is not in its "
               "state record: resumed only where its state file and model file are (a "
               "restart, a shared state directory), else the stream goes on without it (a "
               "fine-tune at its schedule)", s->det->c->name, s->key);
    if (!js || !cJSON_AddRawToObject(o, "state", js))
        cJSON_AddNullToObject(o, "state");
    snprintf(pk, sizeof pk, "%s/%s", s->det->c->name, s->key);
    txt = ad_json_print(o);
    if (txt && js && strlen(txt) > k->max_bytes) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "state");
        if ((st = cJSON_Parse(js)))
            cJSON_AddItemToObject(o, "state", st);
        else
            cJSON_AddNullToObject(o, "state");
        free(txt);
        txt = ad_json_print(o);
    }
    free(js);
    /* what can be left out, the least missed first. The windows of a long
     * alert the learner keeps for an accepted regime (up to
     * adapt.normal_windows, about 3 KB each: 1.5 MB at the default 500):
     * the next owner goes on with the alert; only a regime accepted there
     * fine-tunes without them. They go before the probability history,
     * which every score after the move reads (at the default
     * alert.probability_history 500 it is 12 KB: it alone seldom is what
     * makes a record too large) */
    txt = shed(k, s, o, cJSON_GetObjectItemCaseSensitive(st, "adapt"), txt, "alert_windows",
               "its learner's windows of the open alert are left out, a regime accepted "
               "on its next owner is learned from the windows after the move");
    /* the learner's normal set, saved while an acceptance's fine-tune is
     * due, out or in shadow (adapt.normal_windows windows: 2.4 MB for
     * 1440 windows of 30 x 5): the next owner fills it again from the
     * windows after the move, as a state written before it was kept */
    txt = shed(k, s, o, cJSON_GetObjectItemCaseSensitive(st, "adapt"), txt, "normal",
               "its learner's normal set is left out, the next owner fills it again from "
               "the windows after the move");
    /* the kept change's ring (alert.accept_period_ms: 1.5 periods of
     * bucket sums, about 6 KB a feature, and while a change is under way
     * its reference, about 3 KB a feature): a wide stream's alone can
     * outgrow a record. The next owner's ring fills again: a change under
     * way is lost (the next daily peak may raise, as before it was kept),
     * one is kept from a clear a period later */
    txt = shed(k, s, o, st, txt, "shift", "its kept change is left out, its next owner keeps "
               "a change from a clear once its ring holds a period again");
    /* a long probability history (alert.probability_history, up to 1e6
     * averages): the next owner's probability starts afresh, its
     * threshold and alert go on */
    txt = shed(k, s, o, st, txt, "probability", "its probability history is left out, "
               "its next owner's anomaly probability starts afresh");
    /* the scores of a long calibration (calibration.max_samples) can
     * outgrow a record: the next owner calibrates afresh rather than the
     * state being lost with its alert part */
    txt = shed(k, s, o, st, txt, "calibrating", "its calibration so far is left out, its "
               "next owner calibrates it afresh");
    if (txt && strlen(txt) > k->max_bytes)
        ad_log(AD_LOG_WARNING, "kafka: stream %s/%s: its %zu-byte state is over the %zu bytes "
               "message.max.bytes leaves for it, with all that can be left out left out: "
               "not sent, its next owner restores an older state (raise message.max.bytes "
               "in kafka.properties, on the broker and on the state topic)", s->det->c->name,
               s->key, strlen(txt), k->max_bytes);
    if (txt && strlen(txt) > k->max_bytes)
        k->dr_failed++;             /* as one the cluster refused (dr_failures) */
    else if (txt && produce(k, kcfg(k)->state_topic, pk, txt) == 0)
        len = strlen(pk) + strlen(txt);
    free(txt);
    cJSON_Delete(o);
    return len;
}

void kafka_state_changed(ad_daemon *dd, stream_rec *s)
{
    if (dd->kafka)
        state_put(dd->kafka, s, 0, -1);
}

void kafka_restore_result(ad_daemon *dd, const char *det, const char *key, int taken)
{
    ad_kafka *k = dd->kafka;
    char tk[KEY_MAX + 80];
    kent *e;
    if (!k) return;
    mkkey(tk, sizeof tk, det, key);
    if (!(e = *tfind(k->smap, tk)) || e->verdict != 0)
        return;
    e->verdict = taken ? 1 : -1;
    if (!taken && e->skip > 0) {
        ad_log(AD_LOG_NOTICE, "kafka: stream %s/%s: its hand-over state was not restored: "
               "its records are applied from the partition's committed offset (none of those "
               "before the hand-over's offset %lld skipped)", det, key, (long long)e->skip);
        e->skip = e->rec_raw = e->rec_ms = 0;
    }
}

int kafka_handover_taken(ad_daemon *dd, const char *det, const char *key)
{
    ad_kafka *k = dd->kafka;
    char tk[KEY_MAX + 80];
    kent *e;
    if (!k) return 0;
    mkkey(tk, sizeof tk, det, key);
    if (!(e = *tfind(k->smap, tk)) || e->verdict <= 0)
        return 0;
    dd->c.handover_skipped++;
    return 1;
}

char *kafka_state_take(ad_daemon *dd, const char *det, const char *key)
{
    ad_kafka *k = dd->kafka;
    char tk[KEY_MAX + 80], *v;
    kent **pp, *e;
    if (!k) return NULL;
    mkkey(tk, sizeof tk, det, key);
    if (!(e = *(pp = tfind(k->tmap, tk))))
        return NULL;
    *pp = e->next;
    v = e->val;
    free(e);
    return v;
}

const char *kafka_stream_topic(ad_daemon *dd, const char *det, const char *key)
{
    ad_kafka *k = dd->kafka;
    char tk[KEY_MAX + 80];
    kent *e;
    if (!k) return NULL;
    mkkey(tk, sizeof tk, det, key);
    if (!(e = *tfind(k->smap, tk)) || e->topic < 0 || e->topic >= k->ntopics)
        return NULL;
    return k->topics[e->topic];
}

void kafka_alert(ad_daemon *dd, const char *det, const char *key, const char *json)
{
    char pk[KEY_MAX + 80];
    if (!dd->kafka || dd->kafka->closed) return;
    snprintf(pk, sizeof pk, "%s/%s", det, key);
    produce_alert(dd->kafka, kcfg(dd->kafka)->alert_topic, pk, json);
}

int kafka_alert_to(ad_daemon *dd, const char *topic, const char *det, const char *key,
                   const char *json)
{
    char pk[KEY_MAX + 80];
    if (!dd->kafka || dd->kafka->closed) return -1;
    snprintf(pk, sizeof pk, "%s/%s", det, key);
    return produce_alert(dd->kafka, topic, pk, json);
}

/* ---- rebalances ------------------------------------------------------------------ */

/* Kafka protocol request types (ApiKey) */
#define API_JOIN_GROUP 11
#define API_SYNC_GROUP 14

/* A rebalance of the consumer's group runs: JoinGroup (every member
 * rejoins, the generation moves on when the last one has), then SyncGroup
 * (the leader's assignment), then this member's rebalance callback. An
 * offset commit sent in the first step carries the generation that the
 * JoinGroup ends and is refused; librdkafka 2.0 takes that refusal for a
 * lost assignment (confluentinc/librdkafka#4059, see revoke_parts): commits
 * wait while the consumer's JoinGroup is on the wire or its SyncGroup not
 * answered, and after a revoke until the rejoin that follows every revoke
 * has been answered. librdkafka tells the application neither step; its
 * interceptors see the requests go out and the responses come in (on its
 * broker threads: only the two atomics are written there). */
static rd_kafka_resp_err_t on_request_sent(rd_kafka_t *rk, int sockfd, const char *brokername,
                                           int32_t brokerid, int16_t api, int16_t ver,
                                           int32_t corr, size_t size, void *opaque)
{
    ad_kafka *k = opaque;
    (void)rk; (void)sockfd; (void)brokername; (void)brokerid; (void)ver; (void)corr;
    (void)size;
    if (api == API_JOIN_GROUP)
        __atomic_store_n(&k->joining, 1, __ATOMIC_SEQ_CST);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_response_received(rd_kafka_t *rk, int sockfd,
                                                const char *brokername, int32_t brokerid,
                                                int16_t api, int16_t ver, int32_t corr,
                                                size_t size, int64_t rtt,
                                                rd_kafka_resp_err_t err, void *opaque)
{
    ad_kafka *k = opaque;
    (void)rk; (void)sockfd; (void)brokername; (void)brokerid; (void)ver; (void)corr;
    (void)size; (void)rtt; (void)err;
    if (api == API_SYNC_GROUP) {
        __atomic_store_n(&k->joining, 0, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&k->syncs, 1, __ATOMIC_SEQ_CST);
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* The group consumer is created: watch its requests. */
static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque,
                                  char *errstr, size_t errlen)
{
    ad_kafka *k = opaque;
    (void)conf;
    if (rd_kafka_interceptor_add_on_request_sent(rk, "anomalyd-rebalance", on_request_sent,
                                                 k) ||
        rd_kafka_interceptor_add_on_response_received(rk, "anomalyd-rebalance",
                                                      on_response_received, k)) {
        snprintf(errstr, errlen, "cannot add the rebalance interceptors");
        return RD_KAFKA_RESP_ERR__FAIL;
    }
    k->watching = 1;
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int rebalancing(ad_kafka *k)
{
    if (k->rejoining && __atomic_load_n(&k->syncs, __ATOMIC_SEQ_CST) != k->revoke_syncs)
        k->rejoining = 0;
    return k->rejoining || __atomic_load_n(&k->joining, __ATOMIC_SEQ_CST);
}

/* ---- barriers: commit, revoke ---------------------------------------------------- */

/* Every window handed to the workers is scored, its events handed on. */
static int all_scored(ad_kafka *k)
{
    ad_daemon *dd = k->dd;
    return dd->in_flight_batches == 0 && !batch_open_windows(dd) && !dd->restores;
}

/* ... and the producer has delivered them, and the states. */
static int quiet(ad_kafka *k)
{
    return all_scored(k) && rd_kafka_outq_len(k->p) == 0 && !k->nunq;
}

/* ad_workers_wait() predicate: every window of the daemon scored. */
static int scored(void *arg)
{
    ad_kafka *k = arg;
    batch_dispatch(k->dd, 1);
    return k->dd->in_flight_batches == 0 && !batch_open_windows(k->dd);
}

/* The offset at which s's records continue after a hand-over: its
 * partition's position in pos (a list of positions, may be NULL), or -1
 * when not known or when s holds records it has not applied yet (a
 * restore in flight: those must be read again). */
static int64_t stream_position(ad_kafka *k, stream_rec *s, const kent *e,
                               const rd_kafka_topic_partition_list_t *pos)
{
    rd_kafka_topic_partition_t *tp;
    if (!pos || s->restores || s->held || !s->d ||
        !(tp = rd_kafka_topic_partition_list_find(pos, k->topics[e->topic], e->part)))
        return -1;
    return tp->offset >= 0 ? tp->offset : -1;
}

/* The streams of the partitions in l: with handover, their states are
 * written to the state topic with the position each continues at (pos,
 * may be NULL: none), else (lost to another member) nothing is written;
 * then they are dropped here. bad[i] is set when a stream of partition i
 * still restores (its held samples are not scored: that partition's
 * offsets are not committed), n[i] counts partition i's streams. */
static void drop_streams(ad_kafka *k, const rd_kafka_topic_partition_list_t *l, int handover,
                         const rd_kafka_topic_partition_list_t *pos, char *bad, int *n)
{
    ad_daemon *dd = k->dd;
    char tk[KEY_MAX + 80];
    for (int i = 0; i < dd->g->n; i++)
        MAP_FOREACH(&dd->g->dets[i].streams, s) {
            kent *en;
            rd_kafka_topic_partition_t *tp;
            mkkey(tk, sizeof tk, s->det->c->name, s->key);
            en = *tfind(k->smap, tk);
            if (!en || en->topic < 0 ||
                !(tp = rd_kafka_topic_partition_list_find(l, k->topics[en->topic], en->part)))
                continue;
            if (s->restores || s->held)
                bad[tp - l->elems] = 1;
            n[tp - l->elems]++;
            /* closed before its state is handed over. Without a hand-over
             * they stay open, as its alert does: the next owner restores
             * the last state record, which lists them, and closes them
             * (reason restart, state.c); closed here too, they would be
             * cleared twice */
            if (handover) {
                publish_dq_close_all(dd, s, "moved");
                state_put(k, s, 1, stream_position(k, s, en, pos));
            }
            streams_kill(dd, s, 1);
            tdel(k->smap, tk);
        }
}

/* Does the group still count this consumer as a member? librdkafka clears
 * the member id when the member is gone from the group (left at
 * max.poll.interval.ms, expelled after session.timeout.ms, an unknown
 * member); a member's partitions go to no other member before it rejoins
 * without them (cooperative protocol), and it rejoins only after the
 * rebalance callback returns. */
static int still_member(ad_kafka *k)
{
    char *id = rd_kafka_memberid(k->c);
    int r = id && id[0];
    if (id) rd_kafka_mem_free(k->c, id);
    return r;
}

/* Partitions revoked (inside the rebalance callback: librdkafka's
 * cooperative protocol expects rd_kafka_incremental_unassign() before the
 * callback returns, else the member never rejoins). Bounded: wait up to
 * 10 s for the windows in flight to be scored, flush the states of the
 * partitions' streams (with the position each continues at) and the
 * alerts, commit those positions, release.
 *
 * Lost: librdkafka 2.0 also reports the assignment lost when an offset
 * commit sent while the group was rebalancing is refused for its
 * generation (confluentinc/librdkafka#4059, fixed in later releases): an
 * ordinary scale-out with records flowing runs into it. The instance is
 * then still a member and nobody else has the partitions yet: they are
 * handed over as on a revoke, except that no offset can be committed (the
 * generation is gone); the next owner skips what the states already hold
 * (handed_over). Only a consumer that is no longer a member (its
 * partitions may already be read elsewhere) drops them without a hand-over:
 * their next owner goes on from the state records of their last changes
 * and the last commit, as after a crash. */
static void revoke_parts(ad_kafka *k, rd_kafka_topic_partition_list_t *l)
{
    ad_daemon *dd = k->dd;
    int lost = rd_kafka_assignment_lost(k->c), handover = !lost || still_member(k);
    int ok = 1, ncommit = 0, *n = calloc((size_t)l->cnt + 1, sizeof *n);
    char *bad = calloc((size_t)l->cnt + 1, 1);
    rd_kafka_topic_partition_list_t *pos = NULL;
    rd_kafka_resp_err_t e;
    rd_kafka_error_t *er;

    if (lost)
        ad_log(handover ? AD_LOG_NOTICE : AD_LOG_WARNING, handover ?
               "kafka: librdkafka reports the assignment lost (a commit refused during "
               "the rebalance); still a group member: handing over, offsets not committed" :
               "kafka: assignment lost and no longer a group member (session timed out?): "
               "streams dropped without hand-over, their next owner re-reads since the "
               "last commit");
    if (handover && ad_workers_wait(dd->ws, scored, k, 10000) != 0) {
        ad_log(AD_LOG_WARNING, "kafka: windows still in flight at revoke after 10 s: "
               "offsets of the revoked partitions not committed (their records are read again)");
        ok = 0;
    }
    if (handover && ok && (pos = rd_kafka_topic_partition_list_copy(l)))
        rd_kafka_position(k->c, pos);
    /* records held and not applied (hold()) go: the partition continues
     * at the first of them */
    for (int i = 0; i < l->cnt; i++) {
        int64_t first = held_unapplied(k, l->elems[i].topic, l->elems[i].partition, 1);
        if (first >= 0 && pos)
            pos->elems[i].offset = first;
    }
    if (bad && n)
        drop_streams(k, l, handover, pos, bad, n);
    if (handover && rd_kafka_flush(k->p, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ad_log(AD_LOG_WARNING, "kafka: states/alerts not all delivered within 10 s at revoke: "
               "offsets not committed");
        ok = 0;
    }
    for (int i = 0; pos && bad && i < pos->cnt; i++) {
        if (bad[i] || pos->elems[i].offset < 0)
            pos->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        else
            ncommit++;
    }
    if (!lost && ok && ncommit && (e = rd_kafka_commit(k->c, pos, 0)) &&
        e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        ad_log(AD_LOG_WARNING, "kafka: commit at revoke: %s", rd_kafka_err2str(e));
    for (int i = 0; i < l->cnt; i++) {
        ad_log(AD_LOG_INFO, "kafka: released %s[%d] at %llu (offset %lld, %d stream(s) %s)",
               l->elems[i].topic, (int)l->elems[i].partition,
               (unsigned long long)dd_wall_ms(),
               pos ? (long long)pos->elems[i].offset : -1LL, n ? n[i] : 0,
               !handover ? "lost" : lost ? "handed over, offset not committed" :
               "handed over");
        if (k->restoring) {
            rd_kafka_topic_partition_t *r = rd_kafka_topic_partition_list_find(
                k->restoring, l->elems[i].topic, l->elems[i].partition);
            if (r) rd_kafka_topic_partition_list_del(k->restoring, r->topic, r->partition);
        }
    }
    if ((er = rd_kafka_incremental_unassign(k->c, l))) {
        ad_log(AD_LOG_WARNING, "kafka: unassign: %s", rd_kafka_error_string(er));
        rd_kafka_error_destroy(er);
    }
    if (pos) rd_kafka_topic_partition_list_destroy(pos);
    free(bad);
    free(n);
}

/* kafka.commit_states: at a commit's barrier (every window scored, no
 * record held, none read until the commit), the state of every stream
 * that took records since its last one is written as at a hand-over: its
 * window rows, its calibration so far, and its partition's position, which
 * the commit then names. After a crash the next owner reads on from that
 * commit with these states: the rows continue its windows (none lost),
 * a calibration goes on where it was, and records a refused commit leaves
 * to read again are skipped by offset (handed_over). Without it a crash
 * restores the state of the stream's last change, with no rows: T - 1
 * samples unscored, and a calibration started again. A stream whose state
 * changes after the checkpoint (an alert, written at once, without rows)
 * goes on from that state as without it. The number of states produced. */
static int checkpoint(ad_kafka *k)
{
    ad_daemon *dd = k->dd;
    rd_kafka_topic_partition_list_t *pos = NULL;
    char tk[KEY_MAX + 80];
    size_t bytes = 0;
    int n = 0;

    if (!kcfg(k)->state_topic ||
        rd_kafka_assignment(k->c, &pos) != RD_KAFKA_RESP_ERR_NO_ERROR || !pos)
        return 0;
    if (pos->cnt && rd_kafka_position(k->c, pos) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < dd->g->n; i++)
            MAP_FOREACH(&dd->g->dets[i].streams, s) {
                kent *en;
                int64_t at;
                mkkey(tk, sizeof tk, s->det->c->name, s->key);
                if (!(en = *tfind(k->smap, tk)) || en->topic < 0 || !en->took ||
                    (at = stream_position(k, s, en, pos)) < 0)
                    continue;
                bytes += state_put(k, s, SAVE_CHECKPOINT, at);
                en->took = 0;
                n++;
            }
    if (n)
        ad_log(AD_LOG_DEBUG, "kafka: checkpoint: %d state(s), %zu bytes (commit_states)", n,
               bytes);
    if (n)
        for (int i = 0; i < pos->cnt; i++)
            if (pos->elems[i].offset >= 0)
                ad_log(AD_LOG_DEBUG, "kafka: %s[%d]: states of its streams written at "
                       "offset %lld, committed once delivered (commit_states)", pos->elems[i].topic,
                       (int)pos->elems[i].partition, (long long)pos->elems[i].offset);
    rd_kafka_topic_partition_list_destroy(pos);
    return n;
}

/* States or alert events refused for good (dr_cb) since a commit last
 * went by: warned of once (what: what follows), and every stream of a
 * partition writes its state at the next checkpoint. 1, or 0 when none. */
static int dr_failures(ad_kafka *k, const char *what)
{
    ad_daemon *dd = k->dd;
    char tk[KEY_MAX + 80];
    unsigned n = k->dr_failed - k->dr_failed_seen;

    if (n == 0) {
        if (k->dr_warned)
            ad_log(AD_LOG_NOTICE, "kafka: states and alert events delivered again: offsets "
                   "committed");
        k->dr_warned = 0;
        return 0;
    }
    k->dr_failed_seen = k->dr_failed;
    if (!k->dr_warned)
        ad_log(AD_LOG_WARNING, "kafka: %u state(s) or alert event(s) refused by the cluster "
               "(see above): %s", n, what);
    k->dr_warned = 1;
    for (int i = 0; i < dd->g->n; i++)
        MAP_FOREACH(&dd->g->dets[i].streams, s) {
            kent *en;
            mkkey(tk, sizeof tk, s->det->c->name, s->key);
            if ((en = *tfind(k->smap, tk)) && en->topic >= 0)
                en->took = 1;
        }
    return 1;
}

/* The commit barrier ends without a commit: records read on. */
static void bar_release(ad_kafka *k)
{
    uv_timer_stop(&k->bar_timer);
    k->checkpointed = 0;
    k->barrier = 0;
    kick(k);
}

static void bar_cb(uv_timer_t *t)
{
    ad_kafka *k = t->data;
    rd_kafka_resp_err_t e;
    batch_dispatch(k->dd, 1);
    if (!quiet(k)) {
        /* every window scored, only deliveries outstanding for
         * BAR_DELIVERY_MS: the alert or the state topic's leader is away.
         * The offsets wait for them (a crash reads those records again
         * and raises the alerts again, with their ids), reading does not:
         * held here until they were delivered, the instance scored
         * nothing for as long, on any topic, its MQTT alerts too */
        if (all_scored(k) && uv_now(k->dd->loop) - k->bar_t0 >= BAR_DELIVERY_MS) {
            if (!k->undelivered)
                ad_log(AD_LOG_WARNING, "kafka: %d message(s) not delivered after %d ms (the "
                       "alert or state topic's leader away?): offsets not committed until "
                       "they are, records read on", rd_kafka_outq_len(k->p) + (int)k->nunq,
                       BAR_DELIVERY_MS);
            k->undelivered = 1;
            bar_release(k);
        }
        return;
    }
    if (k->undelivered)
        ad_log(AD_LOG_NOTICE, "kafka: messages delivered again: offsets committed");
    k->undelivered = 0;
    /* the states first, delivered (quiet) before the commit names their
     * positions */
    if (kcfg(k)->commit_states && !k->checkpointed && !rebalancing(k)) {
        k->checkpointed = 1;
        if (checkpoint(k) > 0)
            return;
    }
    k->checkpointed = 0;
    uv_timer_stop(t);
    /* a state or alert event refused for good (too large, not allowed)
     * empties the queue too: the commit would pass records whose only
     * trace it was (a crash then restores an older state and reads on
     * past them: rows unscored, a calibration started again, an alert
     * lost). Not committed: the next checkpoint writes fresh states and
     * commits once they arrive */
    if (dr_failures(k, "offsets not committed until the states and alert events written "
                    "for them are delivered; written again at the next commit")) {
        k->barrier = 0;
        kick(k);
        return;
    }
    if (!rebalancing(k) && (e = rd_kafka_commit(k->c, NULL, 1)) &&
        e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        ad_log(AD_LOG_WARNING, "kafka: commit: %s", rd_kafka_err2str(e));
    k->barrier = 0;
    kick(k);
}

/* Every commit_interval_s, unless a rebalance is under way. */
static void commit_cb(uv_timer_t *t)
{
    ad_kafka *k = t->data;
    /* not while records are held: their offsets are stored as read; nor,
     * for BAR_RETRY_MS, while something is undelivered after a barrier
     * waited in vain for it (bar_cb): this one would most likely wait in
     * vain too, reading nothing meanwhile */
    if (k->undelivered && (rd_kafka_outq_len(k->p) > 0 || k->nunq) &&
        uv_now(k->dd->loop) - k->bar_t0 < BAR_RETRY_MS)
        return;
    if (!k->barrier && !k->stopping && !rebalancing(k) && !k->restoring && !k->nheld) {
        k->barrier = 1;
        k->bar_t0 = uv_now(k->dd->loop);
        uv_timer_start(&k->bar_timer, bar_cb, 0, 2);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ad_kafka *k = opaque;
    rd_kafka_error_t *er = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (!parts->cnt)
            ad_log(AD_LOG_DEBUG, "kafka: rebalance done, no partition added");
        /* a SyncGroup answered (in case its response went unseen) */
        __atomic_store_n(&k->joining, 0, __ATOMIC_SEQ_CST);
        if ((er = rd_kafka_incremental_assign(rk, parts))) {
            ad_log(AD_LOG_WARNING, "kafka: assign: %s", rd_kafka_error_string(er));
            rd_kafka_error_destroy(er);
            return;
        }
        if (!kcfg(k)->state_topic || k->stopping) {
            for (int i = 0; i < parts->cnt; i++)
                ad_log(AD_LOG_INFO, "kafka: owns %s[%d] from %llu", parts->elems[i].topic,
                       (int)parts->elems[i].partition, (unsigned long long)dd_wall_ms());
            return;
        }
        /* not paused here (hold()): their records wait until it is read */
        if (!parts->cnt)
            return;
        if (!k->restoring)
            k->restoring = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            rd_kafka_topic_partition_list_add(k->restoring, parts->elems[i].topic,
                                              parts->elems[i].partition);
        state_read_start(k);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (k->stopping) {          /* at close: states flushed by kafka_stop */
            for (int i = 0; i < parts->cnt; i++)
                ad_log(AD_LOG_INFO, "kafka: released %s[%d] at %llu (stopping)",
                       parts->elems[i].topic, (int)parts->elems[i].partition,
                       (unsigned long long)dd_wall_ms());
            if ((er = rd_kafka_incremental_unassign(rk, parts)))
                rd_kafka_error_destroy(er);
            return;
        }
        revoke_parts(k, parts);
        k->rejoining = 1;           /* librdkafka rejoins after every revoke */
        k->revoke_syncs = __atomic_load_n(&k->syncs, __ATOMIC_SEQ_CST);
    } else {
        ad_log(AD_LOG_WARNING, "kafka: rebalance failed: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- watchers' callback ------------------------------------------------------ */

static void on_readable(uv_poll_t *h, int status, int events)
{
    ad_kafka *k = h->data;
    qwatch *w = h == &k->cw.poll ? &k->cw : h == &k->sw.poll ? &k->sw : &k->pw;
    char buf[256];
    (void)status; (void)events;
    while (read(w->fd[0], buf, sizeof buf) > 0) {}
    if (h == &k->cw.poll)
        consume(k);
    else if (h == &k->sw.poll)
        state_read(k);
    else {
        rd_kafka_poll(k->p, 0);     /* delivery reports, errors */
        pend_retry(k);              /* they made room */
    }
}

/* ---- set-up ---------------------------------------------------------------------- */

/* Delivery reports (on the loop: rd_kafka_poll of the producer). An alert
 * event the cluster did not take within message.timeout.ms (ERR__MSG_TIMED_OUT;
 * one refused otherwise is dropped with a warning) (set in
 * kafka.properties: by default messages wait as long as the cluster is
 * away) is produced again: its subscribers hold the alert open, or never
 * heard of it, otherwise (it goes behind what was queued meanwhile, so a
 * later event of the stream may arrive first). A state record is not: a
 * newer one of the stream may be on its way, which an old one must not
 * follow. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ad_kafka *k = opaque;
    kmsg *am = m->_private;
    char fatal[256];

    if (am && m->err && rd_kafka_fatal_error(rk, fatal, sizeof fatal)) {
        /* the producer is done for (error_cb stops the daemon): kept, for
         * the outbox; the next start produces it */
        ad_log(AD_LOG_WARNING, "kafka: alert event to %s not delivered (%s): kept for the "
               "next start", am->topic, rd_kafka_err2str(m->err));
    } else if (am && (!m->err || k->closed)) {
        if (m->err)
            ad_log(AD_LOG_WARNING, "kafka: alert event to %s not delivered at stop: %s",
                   am->topic, rd_kafka_err2str(m->err));
        pend_unlink(k, am);
    } else if (am && m->err != RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
        /* refused for good (too large for the topic, an invalid record;
         * librdkafka retries what a retry may cure): producing it again
         * would be refused again at once, in a loop */
        ad_log(AD_LOG_WARNING, "kafka: alert event to %s refused (%s): dropped",
               am->topic, rd_kafka_err2str(m->err));
        pend_unlink(k, am);
        k->dr_failed++;
    } else if (am) {
        ad_log(AD_LOG_WARNING, "kafka: alert event to %s not delivered (%s): produced again",
               am->topic, rd_kafka_err2str(m->err));
        if (pend_produce(k, am) < 0)    /* a full queue: pend_retry */
            pend_unlink(k, am);
    } else if (m->err) {
        ad_log(AD_LOG_WARNING, "kafka: delivery to %s failed: %s",
               rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        k->dr_failed++;
    }
}

/* librdkafka's log lines into the daemon's log (called from librdkafka's
 * threads). syslog levels as ours; at most LOG_BURST lines per facility in
 * LOG_PERIOD_MS, then one line saying how many were left out. */
#define LOG_SLOTS 32
#define LOG_BURST 5
#define LOG_PERIOD_MS 10000
static struct { char fac[32]; uint64_t t0; int n; long dropped; } log_slot[LOG_SLOTS];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    uint64_t now = dd_wall_ms();
    int i, pass = 1, slot = -1, old = 0;
    long dropped = 0;
    if (level > AD_LOG_DEBUG) level = AD_LOG_DEBUG;
    if (level < AD_LOG_ERR) level = AD_LOG_ERR;
    pthread_mutex_lock(&log_mu);
    for (i = 0; i < LOG_SLOTS; i++) {
        if (strcmp(log_slot[i].fac, fac) == 0) { slot = i; break; }
        if (log_slot[i].t0 < log_slot[old].t0) old = i;
    }
    if (slot < 0) {                 /* new facility: take the oldest slot */
        slot = old;
        snprintf(log_slot[slot].fac, sizeof log_slot[slot].fac, "%s", fac);
        log_slot[slot].t0 = now;
        log_slot[slot].n = 0;
        log_slot[slot].dropped = 0;
    }
    if (now - log_slot[slot].t0 >= LOG_PERIOD_MS) {
        dropped = log_slot[slot].dropped;
        log_slot[slot].t0 = now;
        log_slot[slot].n = 0;
        log_slot[slot].dropped = 0;
    }
    if (++log_slot[slot].n > LOG_BURST) {
        log_slot[slot].dropped++;
        pass = 0;
    }
    pthread_mutex_unlock(&log_mu);
    if (dropped)
        ad_log(level, "kafka %s: %ld similar line(s) left out in %d s", fac, dropped,
               LOG_PERIOD_MS / 1000);
    if (pass)
        ad_log(level, "kafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

/* Errors of the producer and the consumers (served on the loop by their
 * polls). librdkafka recovers from all but a fatal one: an idempotent
 * producer that lost its sequence (after a broker outage, say) refuses
 * every message from then on, so alert events would be dropped for good
 * while the daemon runs on. The daemon stops instead (the events not
 * delivered go to outbox.json) and exits for a restart. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ad_kafka *k = opaque;
    char why[512];

    if (err != RD_KAFKA_RESP_ERR__FATAL) {  /* recovered by librdkafka: logged as before */
        log_cb(rk, AD_LOG_ERR, "ERROR", reason);
        return;
    }
    rd_kafka_fatal_error(rk, why, sizeof why);
    ad_log(AD_LOG_ERR, "kafka: %s: fatal error: %s (%s): stopping, exit status %d for a "
           "restart (alert events not delivered are kept in outbox.json with a state_dir)",
           rd_kafka_name(rk), why, reason, AD_EXIT_RESTART);
    if (k && k->dd)
        dd_stop(k->dd, AD_EXIT_RESTART);
}


static int set(rd_kafka_conf_t *c, const char *n, const char *v, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(c, n, v, e, sizeof e) != RD_KAFKA_CONF_OK)
        return ad_errf(err, errlen, AD_EINVAL, "kafka property %s: %s", n, e);
    return 0;
}

/* Common settings: servers, passed-through properties and secret files. */
static rd_kafka_conf_t *base_conf(ad_kafka *k, const ad_config *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    const ad_kafka_cfg *kc = &cfg->kafka;
    char dir[4096], path[8192], *v = NULL;
    const char *sl = cfg->path ? strrchr(cfg->path, '/') : NULL;
    snprintf(dir, sizeof dir, "%.*s", sl ? (int)(sl - cfg->path) : 1, sl ? cfg->path : ".");
    rd_kafka_conf_set_opaque(c, k);
    rd_kafka_conf_set_log_cb(c, log_cb);
    if (set(c, "bootstrap.servers", kc->bootstrap_servers, err, errlen))
        goto fail;
    for (int i = 0; i < kc->properties.n; i++)
        if (set(c, kc->properties.key[i], kc->properties.val[i], err, errlen))
            goto fail;
    for (int i = 0; i < kc->property_files.n; i++) {
        const char *f = kc->property_files.val[i];
        char e2[512];
        int rc;
        if (f[0] == '/') snprintf(path, sizeof path, "%s", f);
        else snprintf(path, sizeof path, "%s/%s", dir, f);
        if (ad_config_read_password(path, &v, e2, sizeof e2)) {
            ad_errf(err, errlen, AD_EINVAL, "kafka.property_files.%s: %s",
                    kc->property_files.key[i], e2);
            goto fail;
        }
        rc = set(c, kc->property_files.key[i], v, err, errlen);
        memset(v, 0, strlen(v));
        free(v);
        if (rc) goto fail;
    }
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

static rd_kafka_t *make(ad_kafka *k, const ad_config *cfg, rd_kafka_type_t type,
                        const char *const *kv, int group, char *err, size_t errlen)
{
    rd_kafka_conf_t *c = base_conf(k, cfg, err, errlen);
    rd_kafka_t *rk;
    char e[512];
    if (!c) return NULL;
    for (; kv && kv[0]; kv += 2)
        if (set(c, kv[0], kv[1], err, errlen)) { rd_kafka_conf_destroy(c); return NULL; }
    if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rd_kafka_conf_set_error_cb(c, error_cb);
    if (group) {
        rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
        if (rd_kafka_conf_interceptor_add_on_new(c, "anomalyd-rebalance", on_new, k)) {
            rd_kafka_conf_destroy(c);
            ad_errf(err, errlen, AD_EINVAL, "kafka: cannot add the rebalance interceptor");
            return NULL;
        }
    }
    if (!(rk = rd_kafka_new(type, c, e, sizeof e))) {
        ad_errf(err, errlen, AD_EINVAL, "kafka: %s", e);
        return NULL;
    }
    if (group && !k->watching) {    /* on_new failed: librdkafka only logs it */
        rd_kafka_destroy(rk);
        ad_errf(err, errlen, AD_EINVAL, "kafka: cannot watch the consumer group's "
                "rebalances (librdkafka interceptors)");
        return NULL;
    }
    return rk;
}

/* The partition count of the state topic (metadata, at start only). */
static int state_partitions(ad_kafka *k, char *err, size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(k->sr, kcfg(k)->state_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e;
    int n = -1;
    for (int tries = 0; tries < 10 && n <= 0; tries++) {
        e = rd_kafka_metadata(k->sr, 0, t, &md, 2000);
        if (!e && md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        if (md) rd_kafka_metadata_destroy(md);
        md = NULL;
        if (n <= 0) usleep(200000);
    }
    rd_kafka_topic_destroy(t);
    if (n <= 0)
        return ad_errf(err, errlen, AD_EINVAL, "kafka.state_topic %s: not found on %s "
                       "(create it with cleanup.policy=compact)", kcfg(k)->state_topic,
                       kcfg(k)->bootstrap_servers);
    return n;
}

/* The largest state text the producer sends (its message.max.bytes, as
 * kafka.properties may set it), less room for the record's key and
 * framing. */
static size_t producer_max_bytes(rd_kafka_t *p)
{
    char v[32];
    size_t n = sizeof v;
    long m = 1000000;               /* librdkafka's default */
    if (rd_kafka_conf_get(rd_kafka_conf(p), "message.max.bytes", v, &n) == RD_KAFKA_CONF_OK &&
        atol(v) > 0)
        m = atol(v);
    return m > 2048 ? (size_t)m - 1024 : (size_t)m / 2;
}

static int subscribe(ad_kafka *k, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->ntopics);
    rd_kafka_resp_err_t e;
    for (int i = 0; i < k->ntopics; i++)
        rd_kafka_topic_partition_list_add(l, k->topics[i], RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(k->c, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ad_errf(err, errlen, AD_EINVAL, "kafka: subscribe: %s", rd_kafka_err2str(e));
    return 0;
}

/* Whether kafka.properties (or property_files) sets librdkafka property name. */
static int has_property(const ad_kafka_cfg *kc, const char *name)
{
    for (int i = 0; i < kc->properties.n; i++)
        if (strcmp(kc->properties.key[i], name) == 0)
            return 1;
    for (int i = 0; i < kc->property_files.n; i++)
        if (strcmp(kc->property_files.key[i], name) == 0)
            return 1;
    return 0;
}

int kafka_start(ad_daemon *dd, char *err, size_t errlen)
{
    const ad_config *cfg = dd->g->cfg;
    ad_kafka *k;
    char rid[64];
    const char *ckv[] = { "group.id", cfg->kafka.group_id,
                          "partition.assignment.strategy", "cooperative-sticky",
                          "enable.auto.commit", "false",
                          "auto.offset.reset", "earliest", NULL };
    /* alert events and states wait for the cluster however long it is
     * away (librdkafka drops a message after 300 s by default), unless
     * kafka.properties says otherwise; see dr_cb */
    int own_timeout = has_property(&cfg->kafka, "message.timeout.ms") ||
                      has_property(&cfg->kafka, "delivery.timeout.ms");   /* its alias */
    const char *pkv[] = { "enable.idempotence", "true", "linger.ms", "5",
                          own_timeout ? NULL : "message.timeout.ms", "0", NULL };
    const char *skv[] = { "group.id", rid, "enable.auto.commit", "false",
                          "enable.partition.eof", "true", NULL };
    int rc = 0;

    if (!cfg->kafka.bootstrap_servers)
        return 0;
    if (!(k = calloc(1, sizeof *k)))
        return ad_errf(err, errlen, AD_ENOMEM, "kafka: out of memory");
    dd->kafka = k;
    k->dd = dd;
    snprintf(rid, sizeof rid, "%s.state-reader", cfg->kafka.group_id);
    for (int i = 0; i < dd->g->n; i++)
        for (int j = 0; j < dd->g->dets[i].c->kafka_topics.n; j++) {
            char *t = dd->g->dets[i].c->kafka_topics.v[j];
            char **v;
            if (topic_index(k, t) >= 0) continue;
            if (!(v = realloc(k->topics, (size_t)(k->ntopics + 1) * sizeof *v)) ||
                !(v[k->ntopics] = strdup(t))) {
                if (v) k->topics = v;
                return ad_errf(err, errlen, AD_ENOMEM, "kafka: out of memory");
            }
            k->topics = v;
            k->ntopics++;
        }
    if (!(k->c = make(k, cfg, RD_KAFKA_CONSUMER, ckv, 1, err, errlen)) ||
        !(k->p = make(k, cfg, RD_KAFKA_PRODUCER, pkv, 0, err, errlen)) ||
        !(k->sr = make(k, cfg, RD_KAFKA_CONSUMER, skv, 0, err, errlen)))
        return AD_EINVAL;
    if (cfg->kafka.state_topic && (rc = state_partitions(k, err, errlen)) < 0)
        return rc;
    k->max_bytes = producer_max_bytes(k->p);
    k->state_parts = cfg->kafka.state_topic ? rc : 0;
    rd_kafka_poll_set_consumer(k->c);
    rd_kafka_poll_set_consumer(k->sr);
    uv_idle_init(dd->loop, &k->more);
    k->more.data = k;
    uv_timer_init(dd->loop, &k->commit_timer);
    uv_timer_init(dd->loop, &k->bar_timer);
    uv_timer_init(dd->loop, &k->state_timer);
    k->commit_timer.data = k->bar_timer.data = k->state_timer.data = k;
    if ((rc = qwatch_start(k, &k->cw, rd_kafka_queue_get_consumer(k->c))) ||
        (rc = qwatch_start(k, &k->pw, rd_kafka_queue_get_main(k->p))) ||
        (rc = qwatch_start(k, &k->sw, rd_kafka_queue_get_consumer(k->sr))))
        return ad_errf(err, errlen, rc, "kafka: pipe: %s", strerror(-rc));
    if (k->ntopics && (rc = subscribe(k, err, errlen)))
        return rc;
    uv_timer_start(&k->commit_timer, commit_cb, (uint64_t)(cfg->kafka.commit_interval * 1000),
                   (uint64_t)(cfg->kafka.commit_interval * 1000));
    ad_log(AD_LOG_INFO, "kafka: %s, group %s, %d topic(s)%s%s", cfg->kafka.bootstrap_servers,
           cfg->kafka.group_id, k->ntopics, cfg->kafka.state_topic ? ", state topic " : "",
           cfg->kafka.state_topic ? cfg->kafka.state_topic : "");
    kick(k);
    return 0;
}

void kafka_pause(ad_daemon *dd, int pause)
{
    ad_kafka *k = dd->kafka;
    if (!k) return;
    k->paused = pause;
    if (!pause) kick(k);
}

void kafka_drain(ad_daemon *dd)
{
    ad_kafka *k = dd->kafka;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!k || k->closed)
        return;
    /* librdkafka drops what it fetched of a paused partition and returns
     * none of its records until resumed: the position of each stays at
     * the first record not applied. A record that comes all the same (a
     * partition assigned meanwhile) is held, not applied (consume()). */
    if (rd_kafka_assignment(k->c, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l->cnt)
        rd_kafka_pause_partitions(k->c, l);
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
}

void kafka_stop(ad_daemon *dd)
{
    ad_kafka *k = dd->kafka;
    rd_kafka_topic_partition_list_t *pos = NULL;
    rd_kafka_resp_err_t e, fe;
    uint64_t t0;
    int held, left, undelivered;
    if (!k || k->closed) return;
    k->stopping = 1;
    /* the position each stream continues at goes with its state, as at a
     * revoke: the commit below may be refused (a rebalance under way) */
    if (!dd->in_flight_batches && !batch_open_windows(dd) &&
        rd_kafka_assignment(k->c, &pos) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_position(k->c, pos);
    else
        pos = NULL;
    /* records held and not applied: their partitions continue at the
     * first of them (and the commit below names every position) */
    held = k->held_next < k->nheld;
    for (int i = 0; held && pos && i < pos->cnt; i++) {
        int64_t first = held_unapplied(k, pos->elems[i].topic, pos->elems[i].partition, 0);
        if (first >= 0) {
            pos->elems[i].offset = first;
            ad_log(AD_LOG_INFO, "kafka: %s[%d] continues at %lld, its first record not "
                   "applied (held)", pos->elems[i].topic, (int)pos->elems[i].partition,
                   (long long)first);
        }
    }
    for (int i = 0; i < dd->g->n; i++)
        MAP_FOREACH(&dd->g->dets[i].streams, s) {
            char tk[KEY_MAX + 80];
            kent *en;
            mkkey(tk, sizeof tk, s->det->c->name, s->key);
            en = *tfind(k->smap, tk);
            state_put(k, s, 1, en && en->topic >= 0 ? stream_position(k, s, en, pos) : -1);
        }
    /* alert events a full queue refused go as it empties, within the 10 s */
    t0 = dd_wall_ms();
    do {
        pend_retry(k);
        left = 10000 - (int)(dd_wall_ms() - t0);
        fe = rd_kafka_flush(k->p, left > 0 ? left : 0);
    } while (fe == RD_KAFKA_RESP_ERR_NO_ERROR && k->nunq && dd_wall_ms() - t0 < 10000);
    /* the commit names positions whose records only the states hold: with
     * a state not delivered, its stream's next owner would restore an
     * older state (or none) and read on past those records, their rows
     * lost and a calibration started again. Not committed, it reads them
     * again from the last commit, and what a state that did arrive holds
     * is skipped (handed_over) or dropped as late */
    undelivered = fe != RD_KAFKA_RESP_ERR_NO_ERROR || k->nunq;
    if (!undelivered && k->dr_failed != k->dr_failed_seen) {
        /* delivered, but some refused for good (dr_cb): as not delivered */
        k->dr_warned = 0;
        dr_failures(k, "offsets not committed at stop, the next owner reads again from the "
                    "last commit");
    } else if (undelivered)
        ad_log(AD_LOG_WARNING, "kafka: %zu message(s) not delivered within 10 s at stop: "
               "%zu alert event(s)%s, the rest states (perhaps lost); offsets not committed, the "
               "next owner reads again from the last commit",
               (size_t)rd_kafka_outq_len(k->p) + k->nunq, k->npend,
               k->dd->g->cfg->state_dir ? " kept in outbox.json" : " lost");
    else if (rebalancing(k))        /* it would be refused */
        ad_log(AD_LOG_INFO, "kafka: rebalance under way at stop: offsets not committed "
               "(the states hold the positions)");
    else if (held && !pos)
        ad_log(AD_LOG_INFO, "kafka: records held at stop and windows in flight: offsets not "
               "committed (the states hold the positions)");
    else if ((e = rd_kafka_commit(k->c, held ? pos : NULL, 0)) &&
             e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        ad_log(AD_LOG_WARNING, "kafka: commit at stop: %s", rd_kafka_err2str(e));
    else
        for (int i = 0; !e && pos && i < pos->cnt; i++)
            if (pos->elems[i].offset >= 0)
                ad_log(AD_LOG_INFO, "kafka: %s[%d] committed at %lld (stop)",
                       pos->elems[i].topic, (int)pos->elems[i].partition,
                       (long long)pos->elems[i].offset);
    if (pos) rd_kafka_topic_partition_list_destroy(pos);
    held_free(k);
    rd_kafka_consumer_close(k->c);
    rd_kafka_consumer_close(k->sr);
    k->closed = 1;
    uv_timer_stop(&k->bar_timer);
    uv_close((uv_handle_t *)&k->more, close_noop);
    uv_close((uv_handle_t *)&k->state_timer, close_noop);
    uv_close((uv_handle_t *)&k->commit_timer, close_noop);
    uv_close((uv_handle_t *)&k->bar_timer, close_noop);
    qwatch_stop(&k->cw);
    qwatch_stop(&k->pw);
    qwatch_stop(&k->sw);
    ad_log(AD_LOG_INFO, "kafka: left group %s", kcfg(k)->group_id);
}

void kafka_free(ad_daemon *dd)
{
    ad_kafka *k = dd->kafka;
    if (!k) return;
    if (k->restoring) rd_kafka_topic_partition_list_destroy(k->restoring);
    held_free(k);
    free(k->held);
    if (k->c) rd_kafka_destroy(k->c);
    if (k->sr) rd_kafka_destroy(k->sr);
    if (k->p) rd_kafka_destroy(k->p);   /* its last delivery reports first */
    while (k->pend_head)
        pend_unlink(k, k->pend_head);
    tclear(k->smap);
    tclear(k->tmap);
    state_forget(k);
    for (int i = 0; i < k->ntopics; i++)
        free(k->topics[i]);
    free(k->topics);
    free(k);
    dd->kafka = NULL;
}
