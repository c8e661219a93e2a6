/*
 * mqtt.c - libmosquitto on libuv (see mqtt.h for the behaviour).
 *
 * Connection life cycle:
 *   start -> attempt(): the connect call runs on a connect thread (struct
 *   cjob); its result comes back to the loop through m->async ->
 *   connect_done(), which gives the new socket a fresh uv_poll_t (struct
 *   conn). CONNACK -> on_connect(): subscribe, online status, flush our
 *   queue. Any error from loop_read / loop_write / loop_misc, or
 *   libmosquitto's on_disconnect, -> lost(): the poll handle is stopped and
 *   closed at once (libmosquitto has already closed the fd; uv_close removes
 *   it from epoll before any new socket can reuse the number) and a retry
 *   timer is armed with backoff and jitter.
 *
 * Why a thread: mosquitto_connect_async() / mosquitto_reconnect_async()
 * resolve the broker's host name with a blocking getaddrinfo(), and MQTT 5
 * CONNECT properties (Maximum Packet Size; Session Expiry Interval for a
 * persistent session) go only through the blocking mosquitto_connect_bind_v5()
 * (first attempt only; later reconnects reuse the stored properties through
 * mosquitto_reconnect_async()). On the loop thread a slow DNS server or an
 * unreachable host would freeze the daemon (no stats, no watchdog, no
 * signals) for seconds. While a connect is in flight (m->job set) the loop
 * thread does not touch m->mosq: m->conn is NULL and m->connected 0, which
 * every path into libmosquitto checks (publish queues, misc timer, pause,
 * subscription changes and the stop's DISCONNECT wait). The hand-off both
 * ways goes through the job's mutex, so libmosquitto's state written by one
 * thread is seen by the other.
 *
 * Not uv_queue_work(): a running work item cannot be cancelled and uv_run()
 * does not return while one is pending, so a stop during a 2-minute TCP
 * connect timeout would hang for 2 minutes. A stop abandons the job instead:
 * the connect thread owns the mosquitto handle from then on and destroys it
 * when the call returns (or the process exits first).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "ad.h"
#include "mqtt.h"

typedef struct qmsg {
    struct qmsg *next;
    char *topic;
    char *what;                 /* alert messages: "alert <id> <event>", else NULL */
    void *payload;
    size_t len;
    int qos, retain;
    uint64_t hold;              /* the hold (ad_mqtt_hold) it is part of, or 0 */
} qmsg;

/* What was published under a message id, kept until the broker answers it
 * (PUBACK / PUBREC), so that a refusal can name the topic and, for an alert
 * message, the alert. One per unacknowledged QoS>0 message, freed with its
 * acknowledgement: no more than libmosquitto itself holds (it keeps the
 * whole message until then). QoS 0 publishes are never answered and are
 * not kept. An alert message keeps its payload too, in publish order on
 * the alert list (ad_mqtt_queue_foreach: the outbox holds it until the
 * broker has it, so that a crash before then does not lose it). */
typedef struct pubrec {
    struct pubrec *next;
    struct pubrec *anext, **aprev;  /* alert list (payload kept), or NULL */
    int mid;
    const char *what;           /* into topic[]'s allocation, or NULL */
    void *payload;              /* alert messages: a copy, else NULL */
    size_t len;
    int qos, retain;
    uint64_t hold;              /* the hold (ad_mqtt_hold) it is part of, or 0 */
    char topic[];
} pubrec;

#define PUBREC_BUCKETS 256

/* Refused publishes in the log: alert messages each (at most
 * REFUSED_ALERT_LINES a minute), other topics once a minute per topic (the
 * last REFUSED_TOPICS topics remembered); the rest are counted and told in
 * one line when the minute is over. */
#define REFUSED_ALERT_LINES 30
#define REFUSED_TOPICS 16
#define REFUSED_PERIOD_MS 60000

/* One connection attempt on a connect thread. The loop thread fills it and
 * does not touch it (nor m->mosq) until state is JOB_DONE; under mu, the
 * loop may set JOB_ABANDONED instead, and the thread then frees it. */
enum { JOB_RUNNING, JOB_DONE, JOB_ABANDONED };

typedef struct cjob {
    pthread_mutex_t mu;
    int state;
    struct mosquitto *mosq;
    struct ad_mqtt *m;          /* only for uv_async_send, under mu, not abandoned */
    char *host;
    int port, keepalive, first, v5, clean;
    uint32_t max_packet;
    int rc, err_no;
    char detail[200];           /* first libmosquitto error/warning log line */
} cjob;

/* A SUBSCRIBE waiting for its SUBACK (one filter per SUBSCRIBE). */
typedef struct subreq {
    struct subreq *next;
    int mid;
    char filter[];
} subreq;

typedef struct strlist {
    char **v;
    int n;
} strlist;

typedef struct conn {
    uv_poll_t poll;
    struct ad_mqtt *m;
    int active;
    int events;
} conn;

struct ad_mqtt {
    uv_loop_t *loop;
    struct mosquitto *mosq;
    ad_mqtt_cb cb;
    void *ud;
    char *host;
    int port, keepalive, protocol, clean;
    double backoff, backoff_min, backoff_max;
    /* connections the broker closed within BRIEF_MS of the CONNACK, each
     * reconnect succeeding at once: the backoff keeps growing over them
     * (another client with our client_id takes the session from us, and we
     * from it); a failed connect (the broker away) ends the run */
    uint64_t connected_at, brief_hint_at;
    int brief;
    char client_id[128];        /* for the hint (cut) */
    conn *conn;
    cjob *job;                  /* connect in flight */
    uv_timer_t misc_timer, retry_timer, stop_timer;
    uv_async_t async;           /* a connect thread finished */
    int open_handles;
    int paused, handled_loss;
    uint32_t max_packet;        /* announced to MQTT 5 brokers; 0: none */
    int started, connected, stopping, disconnect_sent, finished, attempts;
    uint64_t stop_deadline, disconnect_at;
    char refused[160];
    char detail[200];
    char **subs;
    int n_subs, sub_qos;
    subreq *pending;            /* SUBSCRIBEs of this connection not yet acknowledged */
    strlist denied;             /* filters the broker refused (last SUBACK of each) */
    char *status_topic, *online, *offline;
    qmsg *qhead, *qtail;
    size_t qlen, qmax;
    uint64_t q_lost;            /* dropped from the queue since it last emptied */
    ad_mqtt_stats st;
    pubrec *pubrecs[PUBREC_BUCKETS];    /* by mid: what an unacknowledged mid carried */
    pubrec *ahead, **atail;     /* of them, alert messages, oldest first */
    /* the current hold (ad_mqtt_hold): its number, whether publishes join
     * it, and how many of its messages are handed over, not acknowledged */
    uint64_t hold;
    int holding;
    uint64_t held_inflight;
    struct {
        uint64_t period_end;            /* uv_now() end of the current minute */
        int alert_lines;                /* alert refusals logged in it */
        uint64_t suppressed;            /* refusals not logged in it */
        uint64_t suppressed_alerts;     /* of them, alert messages */
        struct { uint64_t hash, logged_ms; } topic[REFUSED_TOPICS];
    } refusals;
    /* message ids of QoS>0 publishes not yet acknowledged: libmosquitto
     * calls on_publish for QoS 0 publishes too (once written), which must
     * not count against these */
    uint64_t unacked[65536 / 64];
    const mosquitto_property *msg_props;   /* of the message being delivered */
};

static void attempt(ad_mqtt *m);
static void update_poll(ad_mqtt *m);

static void unacked_add(ad_mqtt *m, int mid)
{
    unsigned u = (unsigned)mid & 0xffff;
    uint64_t bit = (uint64_t)1 << (u & 63);
    if (!(m->unacked[u >> 6] & bit)) {
        m->unacked[u >> 6] |= bit;
        m->st.inflight++;
    }
}

static void unacked_done(ad_mqtt *m, int mid)
{
    unsigned u = (unsigned)mid & 0xffff;
    uint64_t bit = (uint64_t)1 << (u & 63);
    if (m->unacked[u >> 6] & bit) {
        m->unacked[u >> 6] &= ~bit;
        m->st.inflight--;
    }
}

/* The record of mid, unlinked (the caller frees it with pubrec_free), or
 * NULL. */
static pubrec *pubrec_take(ad_mqtt *m, int mid)
{
    pubrec **pp = &m->pubrecs[(unsigned)mid % PUBREC_BUCKETS], *r;
    while (*pp && (*pp)->mid != mid) pp = &(*pp)->next;
    if ((r = *pp)) {
        *pp = r->next;
        if (r->hold && r->hold == m->hold)
            m->held_inflight--;
        if (r->aprev) {             /* off the alert list */
            *r->aprev = r->anext;
            if (r->anext) r->anext->aprev = r->aprev;
            else m->atail = r->aprev;
            m->st.inflight_alerts--;
        }
    }
    return r;
}

static void pubrec_free(pubrec *r)
{
    if (r) free(r->payload);
    free(r);
}

/* A QoS>0 message went to libmosquitto as mid: count it in flight and keep
 * its topic (and `what`) for its acknowledgement; an alert message (what)
 * keeps its payload too, on the alert list. Out of memory, a refusal of it
 * cannot name the topic, or the outbox does not get it; nothing else
 * changes. */
static void track(ad_mqtt *m, int mid, const char *topic, const char *what,
                  const void *payload, size_t len, int qos, int retain, uint64_t hold)
{
    size_t tl = strlen(topic) + 1, wl = what ? strlen(what) + 1 : 0;
    pubrec *r;
    unacked_add(m, mid);
    pubrec_free(pubrec_take(m, mid));   /* a reused mid: the old one is gone */
    if (!(r = malloc(sizeof *r + tl + wl)))
        return;
    r->mid = mid;
    memcpy(r->topic, topic, tl);
    r->what = NULL;
    r->payload = NULL;
    r->anext = NULL;
    r->aprev = NULL;
    r->len = len;
    r->qos = qos;
    r->retain = retain;
    r->hold = hold == m->hold ? hold : 0;
    if (r->hold)
        m->held_inflight++;
    if (what) {
        memcpy(r->topic + tl, what, wl);
        r->what = r->topic + tl;
        if ((r->payload = malloc(len ? len : 1)) != NULL) {
            memcpy(r->payload, payload, len);
            r->aprev = m->atail;
            *m->atail = r;
            m->atail = &r->anext;
            m->st.inflight_alerts++;
        }
    }
    r->next = m->pubrecs[(unsigned)mid % PUBREC_BUCKETS];
    m->pubrecs[(unsigned)mid % PUBREC_BUCKETS] = r;
}

static void pubrecs_clear(ad_mqtt *m)
{
    for (int i = 0; i < PUBREC_BUCKETS; i++)
        while (m->pubrecs[i]) {
            pubrec *r = m->pubrecs[i];
            m->pubrecs[i] = r->next;
            pubrec_free(r);
        }
    m->ahead = NULL;
    m->atail = &m->ahead;
    m->st.inflight_alerts = 0;
    m->held_inflight = 0;
}

/* ---- subscriptions and their SUBACKs ------------------------------------ */

static void strlist_clear(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int strlist_find(const strlist *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0) return i;
    return -1;
}

static int strlist_add(strlist *l, const char *s)
{
    char **nv, *c;
    if (strlist_find(l, s) >= 0) return 0;
    if (!(c = strdup(s))) return AD_ENOMEM;
    if (!(nv = realloc(l->v, ((size_t)l->n + 1) * sizeof *nv))) {
        free(c);
        return AD_ENOMEM;
    }
    l->v = nv;
    l->v[l->n++] = c;
    return 0;
}

static void strlist_remove(strlist *l, const char *s)
{
    int i = strlist_find(l, s);
    if (i < 0) return;
    free(l->v[i]);
    l->v[i] = l->v[--l->n];
}

static void pending_clear(ad_mqtt *m)
{
    while (m->pending) {
        subreq *r = m->pending;
        m->pending = r->next;
        free(r);
    }
}

/* One SUBSCRIBE per filter, so that each SUBACK names one filter. */
static void subscribe_one(ad_mqtt *m, const char *filter, int qos)
{
    size_t n = strlen(filter) + 1;
    subreq *r = malloc(sizeof *r + n);
    int mid = 0, rc = mosquitto_subscribe(m->mosq, &mid, filter, qos);
    if (rc != MOSQ_ERR_SUCCESS) {
        ad_log(AD_LOG_ERR, "mqtt: subscribe %s: %s", filter, mosquitto_strerror(rc));
        free(r);
        return;
    }
    if (!r) return;             /* its result is not tracked then */
    r->mid = mid;
    memcpy(r->filter, filter, n);
    r->next = m->pending;
    m->pending = r;
}

/*
 * The status payload: `base` (the caller's JSON object) with
 * "subscriptions": {"granted": [...], "denied": [...]} added once the broker
 * has answered every SUBSCRIBE of this connection. Returns a new string
 * (free it), or NULL to publish `base` as it is.
 */
static char *status_with_subs(ad_mqtt *m, const char *base)
{
    cJSON *o = cJSON_Parse(base), *sj, *g, *d;
    char *out = NULL;
    if (!o || !cJSON_IsObject(o) || !(sj = cJSON_AddObjectToObject(o, "subscriptions")) ||
        !(g = cJSON_AddArrayToObject(sj, "granted")) ||
        !(d = cJSON_AddArrayToObject(sj, "denied")))
        goto out;
    for (int i = 0; i < m->n_subs; i++)
        if (strlist_find(&m->denied, m->subs[i]) < 0)
            cJSON_AddItemToArray(g, cJSON_CreateString(m->subs[i]));
    for (int i = 0; i < m->denied.n; i++)
        cJSON_AddItemToArray(d, cJSON_CreateString(m->denied.v[i]));
    out = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return out;
}

/* Every SUBACK in: say on the status topic what the broker granted. */
static void publish_subs_status(ad_mqtt *m)
{
    char *st;
    const char *pl;
    if (!m->connected || m->stopping || !m->status_topic || !m->online)
        return;
    st = status_with_subs(m, m->online);
    pl = st ? st : m->online;
    ad_mqtt_publish(m, m->status_topic, pl, strlen(pl), 1, 1);
    free(st);
}

static void on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *p)
{
    ad_mqtt *m = ud;
    subreq **pp = &m->pending, *r;
    (void)mosq; (void)p;
    while (*pp && (*pp)->mid != mid) pp = &(*pp)->next;
    if (!(r = *pp)) return;
    *pp = r->next;
    if (n >= 1 && granted[0] >= 128) {
        /* MQTT 3.1.1: 0x80 failure; MQTT 5: a reason code (0x87 not authorized, ...) */
        ad_log(AD_LOG_ERR, "mqtt: the broker refused the subscription to %s (%s): "
               "nothing published there will be received", r->filter,
               m->protocol == AD_PROTO_5 ? mosquitto_reason_string(granted[0])
                                         : "failure, 0x80");
        strlist_add(&m->denied, r->filter);
    } else {
        strlist_remove(&m->denied, r->filter);
    }
    free(r);
    if (!m->pending)
        publish_subs_status(m);
}

/* ---- queue ---------------------------------------------------------- */

static void qmsg_free(qmsg *q)
{
    if (!q) return;
    free(q->topic);
    free(q->what);
    free(q->payload);
    free(q);
}

/* Drop the oldest queued messages (counted) until at most n are left.
 * The first drop since the queue last emptied is said in a warning naming
 * what was lost (an alert event, a retained state): the stats that count
 * it cannot reach the broker while the queue fills, so without the log an
 * outage lost alerts unseen; the count is said when the queue empties. */
static void trim_queue(ad_mqtt *m, size_t n)
{
    while (m->qlen > n && m->qhead) {
        qmsg *old = m->qhead;
        m->qhead = old->next;
        if (!m->qhead) m->qtail = NULL;
        m->qlen--;
        if (m->q_lost++ == 0)
            ad_log(AD_LOG_WARNING, "mqtt: the queue kept while the broker is unreachable is "
                   "full (broker.max_queued_alerts %zu): the oldest messages are dropped, "
                   "the first: %s to %s (counted in stats mqtt.queue_dropped)", m->qmax,
                   old->what ? old->what : "a message", old->topic);
        qmsg_free(old);
        m->st.queue_dropped++;
    }
}

void ad_mqtt_set_max_queued(ad_mqtt *m, size_t n)
{
    m->qmax = n ? n : 1;
    trim_queue(m, m->qmax);
}

static int enqueue(ad_mqtt *m, const char *topic, const void *p, size_t len, int qos, int retain,
                   const char *what)
{
    qmsg *q = calloc(1, sizeof *q);
    if (!q || !(q->topic = strdup(topic)) || !(q->payload = malloc(len ? len : 1)) ||
        (what && !(q->what = strdup(what)))) {
        qmsg_free(q);
        return AD_ENOMEM;
    }
    memcpy(q->payload, p, len);
    q->len = len;
    q->qos = qos;
    q->retain = retain;
    q->hold = m->holding ? m->hold : 0;
    trim_queue(m, m->qmax - 1);         /* drop the oldest */
    if (m->qtail) m->qtail->next = q; else m->qhead = q;
    m->qtail = q;
    m->qlen++;
    return 0;
}

/* ---- poll handling ---------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void lost(ad_mqtt *m, const char *why);

/*
 * What ended a connection, in words, from libmosquitto's return code (or the
 * rc of on_disconnect) and the errno saved right after the call: the real
 * cause (ECONNRESET, EPIPE, a reason code in the broker's DISCONNECT), not
 * whatever errno says after libmosquitto has closed the socket. Static or
 * per-thread strings, or `buf`.
 */
static const char *why_lost(ad_mqtt *m, int rc, int err_no, char *buf, size_t len)
{
    if (rc == MOSQ_ERR_CONN_REFUSED && m->refused[0])
        return m->refused;
    if (rc >= 128) {            /* MQTT 5 DISCONNECT from the broker: its reason code */
        snprintf(buf, len, "the broker disconnected us: %s", mosquitto_reason_string(rc));
        return buf;
    }
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        return "connection closed";
    case MOSQ_ERR_ERRNO:
        return err_no ? strerror(err_no) : "socket error";
    case MOSQ_ERR_CONN_LOST:    /* libmosquitto: end of stream, or ECONNRESET */
        return err_no == ECONNRESET ? "connection reset by the broker"
                                    : "the broker closed the connection";
    case MOSQ_ERR_KEEPALIVE:
        return "keepalive timeout (no answer to PINGREQ)";
    default:
        snprintf(buf, len, "%s", mosquitto_strerror(rc));
        return buf;
    }
}

/*
 * Read what is there. mosquitto_loop_read() reads one packet at QoS 0 (its
 * own bound is the QoS>0 queue length) and returns with errno EAGAIN once the
 * socket is empty: call it up to a burst per wake-up instead of one packet
 * per epoll round trip; the bound keeps the loop fair, and epoll (level
 * triggered) wakes the loop again for what is left. libmosquitto itself
 * reads on while its TLS library holds decrypted data (SSL_DATA_PENDING),
 * which epoll cannot see. Returns -1 when the connection was lost (handled),
 * else 0.
 */
static int drain(ad_mqtt *m)
{
    conn *c = m->conn;
    char buf[200];
    int rc, err_no;
    for (int i = 0; i < 256 && !m->paused && c && c->active; i++) {
        errno = 0;
        rc = mosquitto_loop_read(m->mosq, 1);
        err_no = errno;
        if (rc != MOSQ_ERR_SUCCESS || !c->active) {
            lost(m, why_lost(m, rc, err_no, buf, sizeof buf));
            return -1;
        }
        if (err_no == EAGAIN || err_no == EWOULDBLOCK)
            break;
    }
    return 0;
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    conn *c = h->data;
    ad_mqtt *m = c->m;
    char buf[200];
    int rc, err_no;

    if (!c->active)
        return;
    if (status < 0) {
        lost(m, uv_strerror(status));
        return;
    }
    if ((events & UV_READABLE) && drain(m) != 0)
        return;
    if (events & UV_WRITABLE) {
        errno = 0;
        rc = mosquitto_loop_write(m->mosq, 1);
        err_no = errno;
        if (rc != MOSQ_ERR_SUCCESS || !c->active) {
            lost(m, why_lost(m, rc, err_no, buf, sizeof buf));
            return;
        }
    }
    update_poll(m);
}

static void update_poll(ad_mqtt *m)
{
    conn *c = m->conn;
    int ev;
    if (!c || !c->active)
        return;
    ev = (m->paused ? 0 : UV_READABLE) | (mosquitto_want_write(m->mosq) ? UV_WRITABLE : 0);
    if (ev != c->events) {
        c->events = ev;
        if (ev)
            uv_poll_start(&c->poll, ev, poll_cb);
        else
            uv_poll_stop(&c->poll);
    }
}

static void close_conn(ad_mqtt *m)
{
    conn *c = m->conn;
    if (!c) return;
    m->conn = NULL;
    c->active = 0;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, conn_closed);
}

/* ---- stop ------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    ad_mqtt *m = h->data;
    if (--m->open_handles == 0 && m->cb.stopped)
        m->cb.stopped(m->ud);
}

static void abandon_job(ad_mqtt *m);

static void finish_stop(ad_mqtt *m)
{
    if (m->finished) return;
    m->finished = 1;
    abandon_job(m);
    close_conn(m);
    if (m->qlen || m->st.inflight || m->q_lost)
        ad_log(AD_LOG_WARNING, "mqtt: stopping with %zu queued and %llu unacknowledged "
               "messages (%llu dropped from the full queue since the broker was last "
               "reached)", m->qlen, (unsigned long long)m->st.inflight,
               (unsigned long long)m->q_lost);
    uv_close((uv_handle_t *)&m->misc_timer, handle_closed);
    uv_close((uv_handle_t *)&m->retry_timer, handle_closed);
    uv_close((uv_handle_t *)&m->stop_timer, handle_closed);
    uv_close((uv_handle_t *)&m->async, handle_closed);
}

static void stop_tick(uv_timer_t *t)
{
    ad_mqtt *m = t->data;
    uint64_t now = uv_now(m->loop);

    if (m->finished) return;
    if (m->disconnect_sent) {
        if (!m->conn || now >= m->disconnect_at + 1000)
            finish_stop(m);
        return;
    }
    if (m->connected && (ad_mqtt_idle(m) || now >= m->stop_deadline)) {
        m->disconnect_sent = 1;
        m->disconnect_at = now;
        mosquitto_disconnect(m->mosq);
        update_poll(m);
        return;
    }
    if (!m->connected && (ad_mqtt_idle(m) || now >= m->stop_deadline))
        finish_stop(m);
}

/* ---- connection ------------------------------------------------------- */

static void retry_cb(uv_timer_t *t)
{
    attempt(t->data);
}

/* A connection shorter than this did not prove the broker takes us: the
 * reconnect backoff is not reset by it. */
#define BRIEF_MS 10000

static void lost(ad_mqtt *m, const char *why)
{
    int was = m->connected;
    char buf[420], hint[256] = "";

    if (m->handled_loss)
        return;                 /* already handled (on_disconnect, then rc) */
    m->handled_loss = 1;

    if (!was && m->detail[0])
        snprintf(buf, sizeof buf, "%s (%s)", why ? why : "connection lost", m->detail);
    else
        snprintf(buf, sizeof buf, "%s", why ? why : "connection lost");
    close_conn(m);
    m->connected = 0;
    if (was) {
        uint64_t now = uv_now(m->loop), up = now - m->connected_at;
        if (up >= BRIEF_MS) {
            m->brief = 0;
            m->backoff = m->backoff_min;
        } else if (!m->disconnect_sent && !m->stopping && ++m->brief >= 2 &&
                   (!m->brief_hint_at || now - m->brief_hint_at >= 60000)) {
            m->brief_hint_at = now;
            snprintf(hint, sizeof hint, " (%d connections in a row ended within %d s: another "
                     "client with client_id \"%s\" may be connected)", m->brief,
                     BRIEF_MS / 1000, m->client_id);
        }
        ad_log(m->disconnect_sent ? AD_LOG_INFO : AD_LOG_WARNING,
               "mqtt: disconnected from %s:%d: %s%s", m->host, m->port, buf, hint);
        if (m->cb.disconnected)
            m->cb.disconnected(m->ud, buf);
    }
    if (m->stopping && (m->disconnect_sent || m->finished)) {
        finish_stop(m);
        return;
    }
    if (m->finished) return;
    if (!uv_is_active((uv_handle_t *)&m->retry_timer)) {
        double d = m->backoff * (0.5 + 0.5 * ((double)rand() / RAND_MAX));
        if (!was) {
            m->brief = 0;       /* an outage, not a session taken over */
            m->st.connect_failures++;
            ad_log(m->attempts <= 1 || m->refused[0] ? AD_LOG_ERR : AD_LOG_INFO,
                   "mqtt: cannot connect to %s:%d: %s; retrying in %.1f s",
                   m->host, m->port, buf, d);
        }
        m->backoff = m->backoff * 2 > m->backoff_max ? m->backoff_max : m->backoff * 2;
        uv_timer_start(&m->retry_timer, retry_cb, (uint64_t)(d * 1000), 0);
    }
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
    ad_mqtt *m = ud;
    const char *st;
    (void)mosq; (void)props;

    if (rc != 0) {
        snprintf(m->refused, sizeof m->refused, "broker refused the connection: %s",
                 m->protocol == AD_PROTO_5 ? mosquitto_reason_string(rc)
                                           : mosquitto_connack_string(rc));
        return;     /* libmosquitto closes the socket: lost() follows */
    }
    m->refused[0] = '\0';
    m->connected = 1;
    /* libmosquitto formats a log line for every packet when a log callback
     * is set (printf per message): only listen while connecting */
    mosquitto_log_callback_set(m->mosq, NULL);
    m->attempts = 0;
    m->connected_at = uv_now(m->loop);
    if (!m->brief)              /* else lost() resets it once a connection lasts */
        m->backoff = m->backoff_min;
    m->st.connects++;
    ad_log(AD_LOG_NOTICE, "mqtt: connected to %s:%d (session %s)",
           m->host, m->port, (flags & 1) ? "resumed" : "new");
    pending_clear(m);
    strlist_clear(&m->denied);
    for (int i = 0; i < m->n_subs; i++)
        subscribe_one(m, m->subs[i], m->sub_qos);
    /* connected during a stop (queued alerts still to send): the status
     * stays offline */
    st = m->stopping ? m->offline : m->online;
    if (m->status_topic && st)
        ad_mqtt_publish(m, m->status_topic, st, strlen(st), 1, 1);
    while (m->qhead && m->connected) {
        qmsg *q = m->qhead;
        int mid, r = mosquitto_publish(m->mosq, &mid, q->topic, (int)q->len, q->payload,
                                       q->qos, q->retain);
        if (r != MOSQ_ERR_SUCCESS)
            break;
        m->st.published++;
        if (q->qos > 0)
            track(m, mid, q->topic, q->what, q->payload, q->len, q->qos, q->retain, q->hold);
        m->qhead = q->next;
        if (!m->qhead) m->qtail = NULL;
        m->qlen--;
        qmsg_free(q);
    }
    /* said at the reconnect, also when the flush stopped short (its rest
     * stays queued): the next outage's first drop is said again, and its
     * count is its own */
    if (m->q_lost) {
        ad_log(AD_LOG_WARNING, "mqtt: %llu queued message(s) were dropped while the broker "
               "was unreachable (broker.max_queued_alerts %zu); the rest %s",
               (unsigned long long)m->q_lost, m->qmax,
               m->qhead ? "are being sent" : "are sent");
        m->q_lost = 0;
    }
    if (m->cb.connected)
        m->cb.connected(m->ud, flags & 1);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *p)
{
    ad_mqtt *m = ud;
    int err_no = errno;         /* of the failed call; close() leaves it */
    char buf[200];
    (void)mosq; (void)p;
    /* libmosquitto has closed the fd: drop the poll handle now (poll_cb sees
     * the conn inactive and returns) */
    if (m->refused[0])
        lost(m, m->refused);
    else
        lost(m, rc == 0 ? "disconnected" : why_lost(m, rc, err_no, buf, sizeof buf));
}

/* The minute of the refusal budget is over: say what it did not log. */
static void refusals_period(ad_mqtt *m, uint64_t now)
{
    if (now < m->refusals.period_end)
        return;
    if (m->refusals.suppressed)
        ad_log(m->refusals.suppressed_alerts ? AD_LOG_ERR : AD_LOG_WARNING,
               "mqtt: %llu more publish(es) refused by the broker and dropped in the last "
               "minute were not logged, %llu of them alert messages (stats: "
               "mqtt.publish_refused, mqtt.alerts_refused)",
               (unsigned long long)m->refusals.suppressed,
               (unsigned long long)m->refusals.suppressed_alerts);
    m->refusals.suppressed = 0;
    m->refusals.suppressed_alerts = 0;
    m->refusals.alert_lines = 0;
    m->refusals.period_end = now + REFUSED_PERIOD_MS;
}

/* May a refusal on topic (not an alert message) be logged now? Once a
 * minute per topic, for the last REFUSED_TOPICS topics. */
static int refusal_topic_due(ad_mqtt *m, const char *topic, uint64_t now)
{
    uint64_t h = 1469598103934665603ull;        /* FNV-1a */
    int slot = -1;
    for (const unsigned char *c = (const unsigned char *)topic; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    for (int i = 0; i < REFUSED_TOPICS; i++) {
        if (m->refusals.topic[i].logged_ms && m->refusals.topic[i].hash == h) {
            if (now - m->refusals.topic[i].logged_ms < REFUSED_PERIOD_MS)
                return 0;
            slot = i;
            break;
        }
        if (slot < 0 && (!m->refusals.topic[i].logged_ms ||
                         now - m->refusals.topic[i].logged_ms >= REFUSED_PERIOD_MS))
            slot = i;
    }
    if (slot < 0)
        return 0;               /* more topics refused this minute than remembered */
    m->refusals.topic[slot].hash = h;
    m->refusals.topic[slot].logged_ms = now ? now : 1;
    return 1;
}

/*
 * PUBACK (QoS 1) or PUBREC (QoS 2) came back, or a QoS 0 message was
 * written. A reason code >= 0x80 (MQTT 5 only; e.g. 0x87 Not authorized
 * from an ACL) means the broker refused the message: it is not delivered,
 * and libmosquitto has already forgotten it. It is not sent again (the
 * broker would refuse it the same way; keeping it would hold the outbox
 * forever): counted, and logged with its topic, an alert message at error
 * level with its alert id and event.
 */
static void on_publish(struct mosquitto *mosq, void *ud, int mid, int reason,
                       const mosquitto_property *p)
{
    ad_mqtt *m = ud;
    pubrec *r;
    uint64_t now;
    int kept;
    (void)mosq; (void)p;
    unacked_done(m, mid);
    r = pubrec_take(m, mid);
    kept = r && (r->aprev || (r->hold && r->hold == m->hold));
    if (reason >= 128) {
        now = uv_now(m->loop);
        m->st.publish_refused++;
        if (r && r->what)
            m->st.alerts_refused++;
        refusals_period(m, now);
        if (r && r->what) {
            if (m->refusals.alert_lines < REFUSED_ALERT_LINES) {
                m->refusals.alert_lines++;
                ad_log(AD_LOG_ERR, "mqtt: the broker refused %s on %s (%s): not delivered, "
                       "dropped (not sent again: it would be refused again)", r->what,
                       r->topic, mosquitto_reason_string(reason));
            } else {
                m->refusals.suppressed++;
                m->refusals.suppressed_alerts++;
            }
        } else if (refusal_topic_due(m, r ? r->topic : "", now)) {
            ad_log(AD_LOG_WARNING, "mqtt: the broker refused a publish on %s (%s): dropped; "
                   "further refusals on this topic are logged at most once a minute",
                   r ? r->topic : "(topic unknown: out of memory)",
                   mosquitto_reason_string(reason));
        } else {
            m->refusals.suppressed++;
        }
    }
    pubrec_free(r);
    if (kept && !m->st.inflight_alerts && !m->held_inflight && m->cb.kept_done)
        m->cb.kept_done(m->ud);
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
    ad_mqtt *m = ud;
    (void)mosq; (void)p;
    m->st.messages_in++;
    m->msg_props = p;
    if (m->cb.message)
        m->cb.message(m->ud, msg->topic, msg->payload, (size_t)msg->payloadlen);
    m->msg_props = NULL;
}

/* the job of the connect thread we are on (NULL on the loop thread) */
static __thread cjob *tl_job;

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *s)
{
    ad_mqtt *m = ud;
    (void)mosq;
    if (tl_job) {       /* connect thread: m is the loop's (may even be gone) */
        if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) && !tl_job->detail[0])
            snprintf(tl_job->detail, sizeof tl_job->detail, "%s", s);
        return;
    }
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
        ad_log(AD_LOG_DEBUG, "libmosquitto: %s", s);
        /* keep the first detail (e.g. OpenSSL's "certificate verify failed")
         * for the connection error line */
        if (!m->detail[0])
            snprintf(m->detail, sizeof m->detail, "%s", s);
    }
}

static void job_free(cjob *j)
{
    if (!j) return;
    pthread_mutex_destroy(&j->mu);
    free(j->host);
    free(j);
}

/* The connect thread: the one blocking call, then hand the result back (or,
 * abandoned by a stop, destroy the mosquitto handle it now owns). */
static void *connect_thread(void *arg)
{
    cjob *j = arg;
    int rc;

    tl_job = j;
    errno = 0;
    if (j->first && j->v5) {
        mosquitto_property *props = NULL;
        if (!j->clean)
            mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                         7 * 86400);
        /* libmosquitto keeps these properties for every reconnect */
        if (j->max_packet)
            mosquitto_property_add_int32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE, j->max_packet);
        rc = mosquitto_connect_bind_v5(j->mosq, j->host, j->port, j->keepalive, NULL, props);
        mosquitto_property_free_all(&props);
    } else if (j->first) {
        rc = mosquitto_connect_async(j->mosq, j->host, j->port, j->keepalive);
    } else {
        rc = mosquitto_reconnect_async(j->mosq);
    }
    j->rc = rc;
    j->err_no = errno;
    pthread_mutex_lock(&j->mu);
    if (j->state == JOB_ABANDONED) {
        pthread_mutex_unlock(&j->mu);
        mosquitto_destroy(j->mosq);     /* closes the socket: the broker sends the will */
        tl_job = NULL;
        job_free(j);
        return NULL;
    }
    j->state = JOB_DONE;
    uv_async_send(&j->m->async);
    pthread_mutex_unlock(&j->mu);
    tl_job = NULL;
    return NULL;
}

/* Stop waiting for the connect thread (stop or free). Still running: it gets
 * m->mosq and frees itself; already done: the result is dropped here. */
static void abandon_job(ad_mqtt *m)
{
    cjob *j = m->job;
    if (!j) return;
    m->job = NULL;
    pthread_mutex_lock(&j->mu);
    if (j->state == JOB_RUNNING) {
        j->state = JOB_ABANDONED;
        m->mosq = NULL;
        pthread_mutex_unlock(&j->mu);
        ad_log(AD_LOG_INFO, "mqtt: stopping during the connection attempt to %s:%d; "
               "abandoned", m->host, m->port);
        return;
    }
    pthread_mutex_unlock(&j->mu);
    job_free(j);
}

static void attempt(ad_mqtt *m)
{
    cjob *j;
    pthread_attr_t attr;
    pthread_t th;
    int rc;

    if (m->finished || m->conn || m->job)
        return;
    m->attempts++;
    m->refused[0] = '\0';
    m->detail[0] = '\0';
    m->handled_loss = 0;
    mosquitto_log_callback_set(m->mosq, on_log);
    if (!(j = calloc(1, sizeof *j)) || !(j->host = strdup(m->host))) {
        free(j);
        lost(m, "out of memory");
        return;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->state = JOB_RUNNING;
    j->mosq = m->mosq;
    j->m = m;
    j->port = m->port;
    j->keepalive = m->keepalive;
    j->first = m->attempts == 1 && m->st.connects == 0 && m->st.connect_failures == 0;
    j->v5 = m->protocol == AD_PROTO_5;
    j->clean = m->clean;
    j->max_packet = m->max_packet;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    m->job = j;
    rc = pthread_create(&th, &attr, connect_thread, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        m->job = NULL;
        job_free(j);
        lost(m, strerror(rc));
    }
}

/* On the loop: the connect thread has returned; take the socket. */
static void connect_done(uv_async_t *h)
{
    ad_mqtt *m = h->data;
    cjob *j = m->job;
    int rc, err_no, done;
    conn *c;

    if (!j) return;
    pthread_mutex_lock(&j->mu);
    done = j->state == JOB_DONE;
    pthread_mutex_unlock(&j->mu);
    if (!done) return;
    m->job = NULL;
    rc = j->rc;
    err_no = j->err_no;
    if (j->detail[0]) {
        ad_log(AD_LOG_DEBUG, "libmosquitto: %s", j->detail);
        if (!m->detail[0])
            snprintf(m->detail, sizeof m->detail, "%s", j->detail);
    }
    job_free(j);
    if (m->finished)
        return;
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(m->mosq) < 0) {
        lost(m, rc == MOSQ_ERR_ERRNO ? strerror(err_no) : mosquitto_strerror(rc));
        return;
    }
    if (!(c = calloc(1, sizeof *c))) {
        lost(m, "out of memory");
        return;
    }
    c->m = m;
    c->active = 1;
    c->poll.data = c;
    if ((rc = uv_poll_init_socket(m->loop, &c->poll, mosquitto_socket(m->mosq))) != 0) {
        free(c);
        mosquitto_disconnect(m->mosq);
        lost(m, uv_strerror(rc));
        return;
    }
    m->conn = c;
    update_poll(m);
}

static void misc_cb(uv_timer_t *t)
{
    ad_mqtt *m = t->data;
    char buf[200];
    int rc, err_no;
    if (m->refusals.suppressed)
        refusals_period(m, uv_now(m->loop));
    if (!m->conn)
        return;
    errno = 0;
    rc = mosquitto_loop_misc(m->mosq);
    err_no = errno;
    if (rc != MOSQ_ERR_SUCCESS || (m->conn && !m->conn->active)) {
        lost(m, rc == MOSQ_ERR_NO_CONN ? "connection closed"
                                       : why_lost(m, rc, err_no, buf, sizeof buf));
        return;
    }
    update_poll(m);
}

/* ---- public ----------------------------------------------------------- */

int ad_mqtt_new(ad_mqtt **out, uv_loop_t *loop, const ad_broker_cfg *b,
                const char *password, const ad_mqtt_cb *cb, void *ud,
                char *err, size_t errlen)
{
    ad_mqtt *m;
    int rc;

    *out = NULL;
    mosquitto_lib_init();
    if (!(m = calloc(1, sizeof *m)) || !(m->host = strdup(b->host)))
        goto oom;
    m->loop = loop;
    m->atail = &m->ahead;
    m->cb = *cb;
    m->ud = ud;
    m->port = b->port;
    m->keepalive = b->keepalive;
    m->protocol = b->protocol;
    m->clean = b->clean_session;
    m->backoff = m->backoff_min = b->reconnect_min;
    m->backoff_max = b->reconnect_max;
    snprintf(m->client_id, sizeof m->client_id, "%s", b->client_id ? b->client_id : "");
    m->qmax = (size_t)b->max_queued_alerts;
    if (!(m->mosq = mosquitto_new(b->client_id, b->clean_session, m)))
        goto oom;
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                         b->protocol == AD_PROTO_5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_with_flags_callback_set(m->mosq, NULL);
    mosquitto_connect_v5_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(m->mosq, on_publish);
    mosquitto_message_v5_callback_set(m->mosq, on_message);
    mosquitto_subscribe_v5_callback_set(m->mosq, on_subscribe);
    mosquitto_log_callback_set(m->mosq, on_log);
    if (b->username &&
        (rc = mosquitto_username_pw_set(m->mosq, b->username, password)) != MOSQ_ERR_SUCCESS) {
        ad_errf(err, errlen, AD_EINVAL, "broker.username: %s", mosquitto_strerror(rc));
        goto fail;
    }
    if (b->tls.enabled) {
        if (!b->tls.ca_file && !b->tls.ca_path)
            mosquitto_int_option(m->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        else if ((rc = mosquitto_tls_set(m->mosq, b->tls.ca_file, b->tls.ca_path,
                                         b->tls.cert_file, b->tls.key_file, NULL))
                 != MOSQ_ERR_SUCCESS) {
            ad_errf(err, errlen, AD_EINVAL, "broker.tls: %s", mosquitto_strerror(rc));
            goto fail;
        }
        mosquitto_tls_insecure_set(m->mosq, !b->tls.verify_hostname);
    }
    uv_timer_init(loop, &m->misc_timer);
    uv_timer_init(loop, &m->retry_timer);
    uv_timer_init(loop, &m->stop_timer);
    uv_async_init(loop, &m->async, connect_done);
    m->misc_timer.data = m->retry_timer.data = m->stop_timer.data = m;
    m->async.data = m;
    m->open_handles = 4;
    *out = m;
    return 0;
oom:
    rc = ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    goto out;
fail:
    rc = AD_EINVAL;
out:
    if (m) {
        mosquitto_destroy(m->mosq);
        free(m->host);
        free(m);
    }
    return rc;
}

int ad_mqtt_set_status(ad_mqtt *m, const char *topic, const char *online,
                       const char *offline)
{
    free(m->status_topic);
    free(m->online);
    free(m->offline);
    m->status_topic = topic ? strdup(topic) : NULL;
    m->online = online ? strdup(online) : NULL;
    m->offline = offline ? strdup(offline) : NULL;
    if ((topic && !m->status_topic) || (online && !m->online) || (offline && !m->offline))
        return AD_ENOMEM;
    if (m->status_topic && m->offline &&
        mosquitto_will_set(m->mosq, m->status_topic, (int)strlen(m->offline), m->offline, 1,
                           true) != MOSQ_ERR_SUCCESS)
        return AD_EINVAL;
    return 0;
}

static void swap_subs(ad_mqtt *m, char **nv, int n, int qos)
{
    for (int i = 0; i < m->n_subs; i++) free(m->subs[i]);
    free(m->subs);
    m->subs = nv;
    m->n_subs = n;
    m->sub_qos = qos;
}

int ad_mqtt_set_max_payload(ad_mqtt *m, size_t max_payload)
{
    uint64_t n = (uint64_t)max_payload + AD_MQTT_PACKET_HEADROOM;
    if (m->started)
        return AD_EINVAL;
    m->max_packet = n > 268435460u ? 0 : (uint32_t)n;   /* MQTT's own limit: announce none */
    return 0;
}

int ad_mqtt_set_subscriptions(ad_mqtt *m, char *const *filters, int n, int qos)
{
    char **nv = calloc((size_t)n + 1, sizeof(char *));
    if (!nv) return AD_ENOMEM;
    for (int i = 0; i < n; i++)
        if (!(nv[i] = strdup(filters[i]))) {
            for (int j = 0; j < i; j++) free(nv[j]);
            free(nv);
            return AD_ENOMEM;
        }
    if (m->connected) {
        int removed_denied = 0;
        for (int i = 0; i < m->n_subs; i++) {
            int keep = 0;
            for (int j = 0; j < n; j++) keep |= strcmp(m->subs[i], nv[j]) == 0;
            if (!keep) {
                mosquitto_unsubscribe(m->mosq, NULL, m->subs[i]);
                removed_denied |= strlist_find(&m->denied, m->subs[i]) >= 0;
                strlist_remove(&m->denied, m->subs[i]);
            }
        }
        for (int j = 0; j < n; j++) {
            int had = 0;
            for (int i = 0; i < m->n_subs; i++) had |= strcmp(m->subs[i], nv[j]) == 0;
            if (!had) subscribe_one(m, nv[j], qos);
        }
        update_poll(m);
        swap_subs(m, nv, n, qos);
        if (removed_denied && !m->pending)
            publish_subs_status(m);     /* no SUBACK will come to say it */
        return 0;
    }
    swap_subs(m, nv, n, qos);
    return 0;
}

int ad_mqtt_start(ad_mqtt *m)
{
    m->started = 1;
    uv_timer_start(&m->misc_timer, misc_cb, 1000, 1000);
    attempt(m);
    return 0;
}

int ad_mqtt_publish(ad_mqtt *m, const char *topic, const void *payload, size_t len,
                    int qos, int retain)
{
    return ad_mqtt_publish_alert(m, topic, payload, len, qos, retain, NULL);
}

int ad_mqtt_publish_alert(ad_mqtt *m, const char *topic, const void *payload, size_t len,
                          int qos, int retain, const char *what)
{
    if (m->finished) {
        m->st.queue_dropped++;
        return 1;
    }
    if (m->connected) {
        int mid, rc = mosquitto_publish(m->mosq, &mid, topic, (int)len, payload, qos, retain);
        if (rc == MOSQ_ERR_SUCCESS) {
            m->st.published++;
            if (qos > 0)
                track(m, mid, topic, what, payload, len, qos, retain,
                      m->holding ? m->hold : 0);
            update_poll(m);
            return 0;
        }
        if (rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST) {
            ad_log(AD_LOG_ERR, "mqtt: publish to %s: %s", topic, mosquitto_strerror(rc));
            return AD_EINVAL;
        }
    }
    if (qos == 0) {
        m->st.queue_dropped++;
        return 1;
    }
    return enqueue(m, topic, payload, len, qos, retain, what);
}

int ad_mqtt_message_response(const ad_mqtt *m, char **topic, void **corr, size_t *corr_len)
{
    uint16_t n = 0;
    *topic = NULL;
    *corr = NULL;
    *corr_len = 0;
    if (!m->msg_props)
        return 0;
    mosquitto_property_read_string(m->msg_props, MQTT_PROP_RESPONSE_TOPIC, topic, false);
    if (mosquitto_property_read_binary(m->msg_props, MQTT_PROP_CORRELATION_DATA, corr, &n,
                                       false))
        *corr_len = n;
    return *topic != NULL;
}

int ad_mqtt_publish_reply(ad_mqtt *m, const char *topic, const void *payload, size_t len,
                          const void *corr, size_t corr_len)
{
    mosquitto_property *props = NULL;
    int mid, rc;
    if (!corr_len || m->protocol != AD_PROTO_5)
        return ad_mqtt_publish(m, topic, payload, len, 1, 0);
    if (!m->connected || m->finished) {
        m->st.queue_dropped++;          /* a reply is only useful now */
        return 1;
    }
    if (corr_len > 65535 ||
        mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
                                      (uint16_t)corr_len) != MOSQ_ERR_SUCCESS)
        return AD_EINVAL;
    rc = mosquitto_publish_v5(m->mosq, &mid, topic, (int)len, payload, 1, false, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        ad_log(AD_LOG_WARNING, "mqtt: reply to %s: %s", topic, mosquitto_strerror(rc));
        return AD_EINVAL;
    }
    m->st.published++;
    track(m, mid, topic, NULL, NULL, 0, 1, 0, 0);
    update_poll(m);
    return 0;
}

void ad_mqtt_pause(ad_mqtt *m, int paused)
{
    m->paused = paused != 0;
    update_poll(m);
}

int ad_mqtt_idle(const ad_mqtt *m)
{
    return m->qlen == 0 && m->st.inflight == 0;
}

void ad_mqtt_stop(ad_mqtt *m, uint64_t timeout_ms)
{
    if (m->stopping) return;
    m->stopping = 1;
    m->stop_deadline = uv_now(m->loop) + timeout_ms;
    /* not connected: the broker has published the will already (or never
     * saw us), and on a connect during the stop on_connect() sends offline */
    if (m->connected && m->status_topic && m->offline)
        ad_mqtt_publish(m, m->status_topic, m->offline, strlen(m->offline), 1, 1);
    uv_timer_start(&m->stop_timer, stop_tick, 0, 20);
}

void ad_mqtt_get_stats(const ad_mqtt *m, ad_mqtt_stats *st)
{
    *st = m->st;
    st->connected = m->connected;
    st->subscriptions_denied = (uint64_t)m->denied.n;
    st->queued = m->qlen;
}

void ad_mqtt_hold(ad_mqtt *m)
{
    m->hold++;
    m->held_inflight = 0;
    for (qmsg *q = m->qhead; q; q = q->next)
        q->hold = m->hold;
}

void ad_mqtt_hold_publishes(ad_mqtt *m, int on)
{
    m->holding = on != 0;
}

uint64_t ad_mqtt_held_inflight(const ad_mqtt *m)
{
    return m->held_inflight;
}

void ad_mqtt_queue_foreach(const ad_mqtt *m,
                           void (*fn)(void *ud, const char *topic, const void *payload,
                                      size_t len, int qos, int retain),
                           void *ud)
{
    for (const pubrec *r = m->ahead; r; r = r->anext)
        fn(ud, r->topic, r->payload, r->len, r->qos, r->retain);
    for (const qmsg *q = m->qhead; q; q = q->next)
        fn(ud, q->topic, q->payload, q->len, q->qos, q->retain);
}

void ad_mqtt_free(ad_mqtt *m)
{
    if (!m) return;
    abandon_job(m);             /* only if freed without a stop */
    pending_clear(m);
    pubrecs_clear(m);
    strlist_clear(&m->denied);
    while (m->qhead) {
        qmsg *q = m->qhead;
        m->qhead = q->next;
        qmsg_free(q);
    }
    for (int i = 0; i < m->n_subs; i++) free(m->subs[i]);
    free(m->subs);
    mosquitto_destroy(m->mosq);
    free(m->host);
    free(m->status_topic);
    free(m->online);
    free(m->offline);
    free(m);
}
