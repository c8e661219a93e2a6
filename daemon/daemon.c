/*
 * daemon.c - the anomalyd service's event loop and wiring (see daemon.h):
 * start-up, the MQTT callbacks, the per-iteration arrival clock and
 * dispatch, housekeeping and stats timers, signals, drain and shutdown.
 *
 * Data path, all on the loop thread except the forward pass, training and
 * the state files:
 *   MQTT message -> topic match (each detector's filters) -> stream key
 *   (streams.c) -> payload parser -> samples -> ad_detector_push_* -> due
 *   windows copied into the open batch of their model (batch.c) -> the
 *   uv_check_t callback (after every poll phase, i.e. after a burst of
 *   messages) submits open batches to the workers when one is idle or the
 *   batch is full -> worker: forward pass + reconstruction error -> back on
 *   the loop, batches fed in submission order -> events -> alerts and state
 *   published (publish.c), calibration saved (state.c).
 *   When too many batches are in flight the MQTT socket is not read
 *   (backpressure to the broker) until workers catch up.
 *
 * Lifetimes: models are shared through refcounted model_ref (generation.c);
 * streams are freed only when no window, training job or restore refers to
 * them any more (streams.c). The daemon struct (daemon_int.h) owns all.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "command.h"
#include "daemon_int.h"
#include "homeassistant.h"
#include "metrics.h"
#include "kafka.h"
#include "notify.h"
#include "topic.h"

/* ---- small helpers ----------------------------------------------------- */

/* dd_data_wall_ms: a difference between the wall and the monotonic clock
 * of more than this between two readings is a step of the wall clock */
#define DW_STEP_US 5000
/* and the offset a step back leaves runs out at 1/DW_SLEW of the time:
 * arrival times spaced 9/10 of the time between the messages meanwhile */
#define DW_SLEW 10
/* a lead over the wall clock a restored stream's rows may have for the
 * data clock to catch up with it (dd_data_clock_lead); a larger one is
 * taken at once (docs/config.md "Clock"). An hour, and a second for the
 * time a step of an hour takes to be seen */
#define DW_CATCHUP_MAX_US (3601LL * 1000000)

uint64_t dd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* (see daemon_int.h) */
uint64_t dd_data_wall_ms(ad_daemon *dd)
{
    struct timespec ts;
    int64_t wall, mono, exp, dm;

    clock_gettime(CLOCK_REALTIME, &ts);
    wall = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    mono = (int64_t)(uv_hrtime() / 1000u);
    if (dd->dw_mono_us) {
        /* both clocks run at one rate (NTP slews both): only a step sets
         * the wall clock apart from where the monotonic one puts it; one
         * back is added to the offset, one forward taken off it */
        dm = mono - dd->dw_mono_us;
        exp = dd->dw_wall_us + dm;
        if (wall < exp - DW_CATCHUP_MAX_US) {
            /* a step of more than an hour: taken at once (with what an
             * earlier step left to catch up), as a restart takes a restored
             * stream's lead of more than an hour (dd_data_clock_lead);
             * caught up at a tenth of the time, a day's step stamped
             * arrival times 0.9 times their spacing for ten days */
            ad_log(AD_LOG_WARNING, "clock: the wall clock was set back %.3f s%s: more than "
                   "an hour, taken at once: arrival times follow it, the streams' rows start "
                   "anew (their windows refill)", (double)(exp - wall) / 1e6,
                   dd->dw_off_us ? " (on a lead not caught up yet)" : "");
            dd->dw_off_us = 0;
            dd->dw_last_us = wall;
            dd->dw_anew = 1;
        } else if (wall < exp - DW_STEP_US) {
            dd->dw_off_us += exp - wall;
            ad_log(AD_LOG_INFO, "clock: the wall clock was set back %.3f s; arrival times "
                   "run %.3f s ahead of it and catch up in %.0f s", (double)(exp - wall) / 1e6,
                   (double)dd->dw_off_us / 1e6, (double)dd->dw_off_us * DW_SLEW / 1e6);
        } else if (wall > exp + DW_STEP_US) {
            ad_log(AD_LOG_INFO, "clock: the wall clock was set forward %.3f s%s",
                   (double)(wall - exp) / 1e6, dd->dw_off_us ? "; arrival times follow it" : "");
            dd->dw_off_us = wall - exp >= dd->dw_off_us ? 0 : dd->dw_off_us - (wall - exp);
        }
        /* the offset runs out at 1/DW_SLEW of the time that passes */
        dd->dw_off_us = dm / DW_SLEW >= dd->dw_off_us ? 0 : dd->dw_off_us - dm / DW_SLEW;
    }
    dd->dw_wall_us = wall;
    dd->dw_mono_us = mono ? mono : 1;
    /* never behind a value given before (readings jitter by a microsecond) */
    if (wall + dd->dw_off_us < dd->dw_last_us)
        return (uint64_t)(dd->dw_last_us / 1000);
    dd->dw_last_us = wall + dd->dw_off_us;
    return (uint64_t)(dd->dw_last_us / 1000);
}

/* (see daemon_int.h) */
int dd_data_clock_lead(ad_daemon *dd, int64_t last_ms, const char *who)
{
    int64_t now = (int64_t)dd_data_wall_ms(dd), lead = last_ms - now;

    if (last_ms <= 0 || lead < 0)
        return 0;
    if ((lead + 1) * 1000 > DW_CATCHUP_MAX_US) {
        ad_log(AD_LOG_WARNING, "clock: %s: its last row is %.3f s ahead of the clock (a "
               "clock set back since it was written, or ahead where it was): more than an "
               "hour, taken at once: its windows start anew", who, (double)lead / 1e3);
        return 1;
    }
    /* the data clock goes on ahead, catching up at 1/DW_SLEW as the
     * process that wrote the rows did, from just after them */
    dd->dw_off_us += (lead + 1) * 1000;
    dd->dw_last_us += (lead + 1) * 1000;
    ad_log(AD_LOG_INFO, "clock: %s: its last row is %.3f s ahead of the clock: arrival "
           "times run %.3f s ahead and catch up in %.0f s", who, (double)lead / 1e3,
           (double)dd->dw_off_us / 1e6, (double)dd->dw_off_us * DW_SLEW / 1e6);
    return 0;
}

/* (see daemon_int.h) */
void dd_bad_input(ad_daemon *dd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    uint64_t now = uv_now(dd->loop);
    int rate = dd->g ? dd->g->cfg->log_rate : 10, k;

    if (now >= dd->log_refill_ms) {
        if (dd->log_suppressed)
            ad_log(AD_LOG_WARNING, "%llu more bad-input messages were not logged "
                   "(see stats)", (unsigned long long)dd->log_suppressed);
        dd->log_suppressed = 0;
        for (k = 0; k < dd->log_kinds; k++)
            dd->log_kind[k].tokens = rate;
        dd->log_refill_ms = now + 60000;
    }
    /* the kind: the call site's format (a late sample, a malformed payload,
     * an oversized one, ...); past BAD_KINDS the last slot is shared */
    for (k = 0; k < dd->log_kinds && dd->log_kind[k].fmt != fmt; k++)
        ;
    if (k == dd->log_kinds) {
        if (k < BAD_KINDS) {
            dd->log_kinds++;
            dd->log_kind[k].tokens = rate;      /* a new kind: its own budget */
        } else {
            k = BAD_KINDS - 1;
        }
        dd->log_kind[k].fmt = fmt;
    }
    if (dd->log_kind[k].tokens <= 0) {
        dd->log_suppressed++;
        return;
    }
    dd->log_kind[k].tokens--;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ad_log(AD_LOG_WARNING, "%s", msg);
}

/* (see daemon_int.h) */
void dd_limit_evicted(ad_daemon *dd, const char *det, int limit, const char *key,
                      const char *phase, const char *for_key)
{
    uint64_t now = uv_now(dd->loop);

    dd_limit_evict_flush(dd, now);
    if (!dd->lev_refill_ms) {
        dd->lev_refill_ms = now + 60000;
        dd->lev_tokens = LIMIT_EVICT_LINES;
    }
    if (dd->lev_tokens > 0) {
        dd->lev_tokens--;
        ad_log(AD_LOG_NOTICE, "detector %s: stream limit %d reached, evicting stream \"%.64s\" "
               "(still %s, silent longest) for new stream \"%.64s\"", det, limit, key, phase,
               for_key);
        return;
    }
    dd->lev_quiet++;
    snprintf(dd->lev_last, sizeof dd->lev_last, "detector %.64s: stream \"%.64s\" for new "
             "stream \"%.64s\"", det, key, for_key);
}

/* (see daemon_int.h) */
void dd_limit_evict_flush(ad_daemon *dd, uint64_t now)
{
    if (!dd->lev_refill_ms || now < dd->lev_refill_ms)
        return;
    if (dd->lev_quiet)
        ad_log(AD_LOG_NOTICE, "%llu more stream(s) evicted at the stream limit in the last "
               "minute (%d logged one by one), latest: %s", (unsigned long long)dd->lev_quiet,
               LIMIT_EVICT_LINES, dd->lev_last);
    dd->lev_quiet = 0;
    dd->lev_refill_ms = 0;          /* the next eviction starts a minute */
}

/* ---- messages ------------------------------------------------------------ */

/* Kept messages of a stop beyond this many bytes: MQTT reading pauses. */
#define INBOX_MAX_BYTES (64u << 20)

static int for_detectors(const ad_daemon *dd, const char *topic)
{
    const gen *g = dd->g;
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->dets[i].c->topics.n; j++)
            if (ad_topic_match(g->dets[i].c->topics.v[j], topic))
                return 1;
    return 0;
}

/*
 * A message during a stop. libmosquitto has acknowledged it already (QoS
 * 1 and 2 on receipt), so with a persistent session the broker does not
 * send it again (unless the acknowledgement is lost with the connection:
 * QoS 1 is at least once, and the stream refuses the second copy's rows
 * as duplicates by their timestamps): a sensor message is kept, not
 * applied (the windows in flight are being finished and the states handed
 * over), and written to state_dir/inbox.dat once the MQTT stop is over;
 * the next start applies it first. Until the DISCONNECT the broker keeps sending: past
 * INBOX_MAX_BYTES kept, reading stops (what follows stays with the broker,
 * unacknowledged, for the session; acknowledgements of our own publishes
 * are not read either then: the MQTT stop waits its bound, and outbox.json
 * keeps the alert messages). Commands, and everything without a
 * state_dir, are dropped (counted).
 */
static void stop_message(ad_daemon *dd, const char *topic, const void *payload, size_t len)
{
    if (!dd->g->cfg->state_dir || !for_detectors(dd, topic)) {
        dd->c.ignored_stopping++;
        return;
    }
    if (state_inbox_keep(dd, topic, payload, len) != 0) {
        dd->c.ignored_stopping++;
        dd_bad_input(dd, "topic %.128s: out of memory to keep a message received during "
                     "the stop: dropped", topic);
        return;
    }
    if (dd->inbox_bytes > INBOX_MAX_BYTES && !dd->inbox_full) {
        dd->inbox_full = 1;
        dd->paused = 1;
        ad_mqtt_pause(dd->mqtt, 1);
        ad_log(AD_LOG_WARNING, "stop: %llu messages (%zu bytes) received during the stop kept "
               "for the next start; reading no more of them (the broker keeps them for a "
               "persistent session)", (unsigned long long)dd->inbox_n, dd->inbox_bytes);
    }
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len)
{
    ad_daemon *dd = ud;

    dd->c.messages_in++;
    if (dd->stopping)
        stop_message(dd, topic, payload, len);
    else
        dd_message(dd, topic, payload, len);
}

/* (see daemon_int.h) */
void dd_message(ad_daemon *dd, const char *topic, const void *payload, size_t len)
{
    gen *g = dd->g;
    int matched = 0;
    double now_s;

    if (len > (size_t)g->cfg->max_payload) {
        if (command_oversized(dd, topic, len))
            return;
        dd->c.oversized++;
        dd_bad_input(dd, "topic %.128s: %zu-byte payload over max_payload_bytes %d, dropped",
                     topic, len, g->cfg->max_payload);
        return;
    }
    if (command_message(dd, topic, payload, len))
        return;
    dd_arrival_clock(dd);
    dd_clock_anew(dd);          /* before this message is stamped for a stream */
    now_s = (double)dd->arr_wall_ms / 1000.0;
    for (int i = 0; i < g->n; i++) {
        det_rt *d = &g->dets[i];
        for (int j = 0; j < d->c->topics.n; j++) {
            if (ad_topic_match(d->c->topics.v[j], topic)) {
                matched = 1;
                streams_message(dd, d, topic, payload, len, now_s);
                break;
            }
        }
    }
    if (!matched) {
        dd->c.no_detector++;
        dd_bad_input(dd, "topic %.128s matches no detector", topic);
    }
}

/* ---- timers and loop phases ----------------------------------------------- */

/* Stop budget (systemd/anomalyd.service TimeoutStopSec= must exceed their
 * sum plus the state writes): windows in flight STOP_DRAIN_MS, then the
 * MQTT stop (queued alerts, offline status) STOP_MQTT_MS; what is still
 * queued then is written to state_dir/outbox.json, and the sensor messages
 * received since the signal to state_dir/inbox.dat (stop_message). */
#define STOP_DRAIN_MS 15000
#define STOP_MQTT_MS 5000

static void stats_cb(uv_timer_t *t)
{
    ad_daemon *dd = t->data;
    publish_stats(dd);
    /* open alerts and waiting messages on disk every interval: a kill -9
     * loses at most one interval of an alert's progress (its raise and
     * clear are written when they happen) */
    state_save_alerts(dd);
    state_outbox_sync(dd, 0);
}

void dd_arm_stats(ad_daemon *dd)
{
    double iv = dd->g->cfg->broker.stats_interval;
    uint64_t ms = iv > 0 ? (uint64_t)(iv * 1000) : 0;
    /* a reload that keeps the interval keeps the schedule: reloads more
     * often than the interval must not put every stats message off */
    if (ms && uv_is_active((uv_handle_t *)&dd->stats_timer) &&
        uv_timer_get_repeat(&dd->stats_timer) == ms)
        return;
    uv_timer_stop(&dd->stats_timer);
    if (ms)
        uv_timer_start(&dd->stats_timer, stats_cb, ms, ms);
}

/* Housekeeping every 250 ms: period-mode rows; idle eviction and the
 * trim of spare batches every second. */
static void house_cb(uv_timer_t *t)
{
    ad_daemon *dd = t->data;
    uint64_t now = uv_now(dd->loop);
    int evict = now - dd->last_evict_ms >= 1000;

    if (dd->stopping)
        return;
    if (evict) {
        dd->last_evict_ms = now;
        batch_trim(dd);         /* a burst's spare batches go */
    }
    streams_house(dd, evict);
    dd_limit_evict_flush(dd, now);
    state_writer_retry(dd, 0);  /* files whose write failed, when due */
}

/* (see daemon_int.h) */
void dd_clock_anew(ad_daemon *dd)
{
    if (!dd->dw_anew)
        return;
    dd->dw_anew = 0;
    if (!dd->stopping)
        streams_clock_anew(dd);
}

/* Messages read in one loop iteration arrived together: they share one
 * arrival time (wall clock for samples without a timestamp, monotonic for
 * the inference latency), like uv_now() is one time per iteration. */
void dd_arrival_clock(ad_daemon *dd)
{
    if (!dd->arr_valid) {
        dd->arr_wall_ms = dd_data_wall_ms(dd);
        dd->arr_hr_ns = uv_hrtime();
        dd->arr_valid = 1;
    }
}

static void prepare_cb(uv_prepare_t *p)
{
    ((ad_daemon *)p->data)->arr_valid = 0;
}

static void check_cb(uv_check_t *c)
{
    ad_daemon *dd = c->data;
    int nw = ad_workers_count(dd->ws);
    dd->arr_valid = 0;
    batch_dispatch(dd, 0);
    if (dd->outbox_due) {           /* once for the events of this iteration */
        dd->outbox_due = 0;
        state_outbox_sync(dd, 0);
    }
    /* backpressure: stop reading MQTT while the workers are far behind */
    if (!dd->paused && dd->in_flight_batches > 4 * nw) {
        dd->paused = 1;
        ad_mqtt_pause(dd->mqtt, 1);
        kafka_pause(dd, 1);
    } else if (dd->paused && dd->in_flight_batches <= 2 * nw && !dd->inbox_full) {
        dd->paused = 0;
        ad_mqtt_pause(dd->mqtt, 0);
        kafka_pause(dd, 0);
    }
}

/* ---- MQTT callbacks ---------------------------------------------------------------------------- */

void dd_update_subscriptions(ad_daemon *dd)
{
    gen *g = dd->g;
    char **v, cmd[1024];
    int n = 0, cap = 0;
    for (int i = 0; i < g->n; i++) cap += g->dets[i].c->topics.n;
    if (!(v = calloc((size_t)cap + 1, sizeof *v)))
        return;
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->dets[i].c->topics.n; j++) {
            int dup = 0;
            for (int k = 0; k < n; k++) dup |= strcmp(v[k], g->dets[i].c->topics.v[j]) == 0;
            if (!dup) v[n++] = g->dets[i].c->topics.v[j];
        }
    if (command_filter(&g->cfg->cmd, cmd, sizeof cmd) > 0)
        v[n++] = cmd;               /* the calloc left room for it */
    ad_mqtt_set_subscriptions(dd->mqtt, v, n, g->cfg->broker.qos_subscribe);
    free(v);
}

static void on_connected(void *ud, int session_present)
{
    ad_daemon *dd = ud;
    /* every connect, not only a new session: a session says nothing of
     * the retained messages (a broker restarted without persistence lost
     * them; one with persistence may still expire them); a state published
     * again is the same state, only "updated" moves */
    (void)session_present;
    dd->conns++;
    if (!dd->ready_sent) {
        dd->ready_sent = 1;
        ad_notify_ready();
        ad_log(AD_LOG_NOTICE, "anomalyd %s running: %d detector(s), %d worker(s)",
               AD_VERSION, dd->g->n, ad_workers_count(dd->ws));
    }
    ad_notify_status("connected to %s:%d", dd->g->cfg->broker.host, dd->g->cfg->broker.port);
    if (!dd->stopping)
        publish_resend_start(dd);   /* retained states, Home Assistant discovery */
}

static void on_disconnected(void *ud, const char *why)
{
    ad_daemon *dd = ud;
    publish_resend_stop(dd);
    ad_notify_status("disconnected from the broker: %s; reconnecting", why);
}

/* What outbox.json holds for the broker is acknowledged: the file is
 * emptied (or rewritten with the Kafka events it still holds) at the end
 * of this loop iteration. */
static void on_mqtt_kept_done(void *ud)
{
    ad_daemon *dd = ud;
    if (dd->outbox_dirty)
        dd->outbox_due = 1;
}

/* ---- signals ------------------------------------------------------------- */

static void on_sighup(uv_signal_t *h, int sig)
{
    ad_daemon *dd = h->data;
    (void)sig;
    if (dd->stopping)
        return;
    reload_start(dd);
}

/* ---- shutdown ------------------------------------------------------------------------------------- */

static void close_cb_noop(uv_handle_t *h) { (void)h; }

static void on_mqtt_stopped(void *ud)
{
    ad_daemon *dd = ud;
    uv_close((uv_handle_t *)&dd->sig_hup, close_cb_noop);
    uv_close((uv_handle_t *)&dd->sig_term, close_cb_noop);
    uv_close((uv_handle_t *)&dd->sig_int, close_cb_noop);
    uv_close((uv_handle_t *)&dd->stats_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->house_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->drain_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->resend_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->retain_timer, close_cb_noop);
    uv_close((uv_handle_t *)&dd->check, close_cb_noop);
    uv_close((uv_handle_t *)&dd->prepare, close_cb_noop);
    state_outbox_sync(dd, 1);       /* what the broker did not get */
    state_inbox_save(dd);           /* what it sent during the stop */
    ad_workers_free(dd->ws);        /* nothing pending: drained before the stop */
    dd->ws = NULL;
    ad_notify_close();
    ad_log(AD_LOG_NOTICE, "stopped");
}

static void drain_cb(uv_timer_t *t)
{
    ad_daemon *dd = t->data;
    gen *g = dd->g;
    batch_dispatch(dd, 1);
    if (ad_workers_pending(dd->ws) > 0 || batch_open_windows(dd) ||
        dd->reloading || dd->restores || dd->w_msgs || dd->scan) {
        if (uv_now(dd->loop) - dd->stop_ms < STOP_DRAIN_MS)
            return;
        ad_log(AD_LOG_WARNING, "stop: work still pending after %d s, stopping anyway",
               STOP_DRAIN_MS / 1000);
    }
    uv_timer_stop(t);
    for (int i = 0; i < g->n; i++)
        MAP_FOREACH(&g->dets[i].streams, s) {
            int open = s->dq_open != NULL;

            publish_dq_close_all(dd, s, "restart");   /* conditions are not saved */
            if (open)               /* the retained state says so too */
                publish_state(dd, s);
            state_save_handover(dd, s);
        }
    /* the files whose write failed that these saves did not replace (the
     * states of streams gone since, outbox.json): one last try */
    state_writer_retry(dd, 1);
    kafka_stop(dd);
    publish_stats(dd);
    ad_mqtt_stop(dd->mqtt, STOP_MQTT_MS);
}

/* (see daemon_int.h) */
void dd_stop(ad_daemon *dd, int exit_code)
{
    if (dd->stopping)
        return;
    dd->stopping = 1;
    dd->exit_code = exit_code;
    dd->stop_ms = uv_now(dd->loop);
    dd->cancel = 1;
    training_adapt_cancel(dd, NULL);
    publish_resend_stop(dd);
    kafka_drain(dd);                /* records read from now on are the next owner's */
    ad_notify_stopping();
    uv_timer_start(&dd->drain_timer, drain_cb, 0, 20);
}

static void on_sigterm(uv_signal_t *h, int sig)
{
    ad_daemon *dd = h->data;
    if (dd->stopping) {
        ad_log(AD_LOG_WARNING, "second signal %d: exiting now", sig);
        exit(1);
    }
    ad_log(AD_LOG_NOTICE, "signal %d: finishing in-flight windows and stopping", sig);
    dd_stop(dd, 0);
}

/* ---- run --------------------------------------------------------------- */

/* Signal handlers, timers and loop-phase callbacks (all data = dd). */
static void start_handles(ad_daemon *dd, uv_loop_t *loop)
{
    uv_signal_init(loop, &dd->sig_hup);
    uv_signal_init(loop, &dd->sig_term);
    uv_signal_init(loop, &dd->sig_int);
    dd->sig_hup.data = dd->sig_term.data = dd->sig_int.data = dd;
    uv_signal_start(&dd->sig_hup, on_sighup, SIGHUP);
    uv_signal_start(&dd->sig_term, on_sigterm, SIGTERM);
    uv_signal_start(&dd->sig_int, on_sigterm, SIGINT);
    uv_timer_init(loop, &dd->stats_timer);
    uv_timer_init(loop, &dd->house_timer);
    uv_timer_init(loop, &dd->drain_timer);
    uv_timer_init(loop, &dd->resend_timer);
    dd->stats_timer.data = dd->house_timer.data = dd->drain_timer.data = dd;
    dd->resend_timer.data = dd;
    uv_check_init(loop, &dd->check);
    dd->check.data = dd;
    uv_check_start(&dd->check, check_cb);
    uv_prepare_init(loop, &dd->prepare);
    dd->prepare.data = dd;
    uv_prepare_start(&dd->prepare, prepare_cb);
    dd_arm_stats(dd);
    uv_timer_start(&dd->house_timer, house_cb, 250, 250);
}

/* After the loop: free everything still held (streams, batches, models). */
static void free_all(ad_daemon *dd)
{
    for (int i = 0; i < dd->g->n; i++)
        MAP_FOREACH(&dd->g->dets[i].streams, s) {
            s->inflight = 0;
            s->training = 0;
            s->restores = 0;
            streams_kill(dd, s, 0);
        }
    batch_free_all(dd);
    free(dd->smp);
    dd->smp = NULL;
    dd->smp_cap = 0;
    while (dd->dead) {
        stream_rec *s = dd->dead;
        dd->dead = s->dnext;
        streams_free_now(dd, s);
    }
    state_writer_free(dd);
    metrics_free(dd);
    kafka_free(dd);
    ad_mqtt_free(dd->mqtt);
    gen_free(dd->g);
}

int ad_daemon_run(const char *path)
{
    ad_daemon *dd;
    uv_loop_t loop;
    char err[1024], *pw = NULL, *online = NULL, *offline = NULL;
    ad_mqtt_cb cb = { on_connected, on_disconnected, on_message, on_mqtt_stopped,
                      on_mqtt_kept_done };
    int rc, status = 1;

    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (ulimit -f, systemd LimitFSIZE=) reached by a state
     * file, the outbox or a model must fail that write (EFBIG), which is
     * retried and counted like a full disk, not kill the daemon: the
     * default action of SIGXFSZ ends the process without a word, and a
     * restart dies again at the same write */
    signal(SIGXFSZ, SIG_IGN);
    srand((unsigned)(dd_wall_ms() ^ (uint64_t)getpid()));
    if (!(dd = calloc(1, sizeof *dd)))
        return 1;
    dd->path = realpath(path, NULL);
    if (!dd->path)
        dd->path = strdup(path);
    if ((rc = gen_load(&dd->g, dd->path, err, sizeof err)) != 0) {
        ad_log(AD_LOG_ERR, "%s", err);
        free(dd->path);
        free(dd);
        return 1;
    }
    dd->max_batch = dd->g->cfg->max_batch;
    uv_loop_init(&loop);
    dd->loop = &loop;
    dd->started_ms = uv_now(&loop);
    ad_iso_ms((int64_t)dd_wall_ms(), dd->started_iso, sizeof dd->started_iso);
    gen_make_state_dirs(dd->g);
    if (dd->g->cfg->broker.password_file &&
        ad_config_read_password(dd->g->cfg->broker.password_file, &pw, err, sizeof err)) {
        ad_log(AD_LOG_ERR, "broker.password_file: %s", err);
        goto out;
    }
    if ((rc = ad_workers_new(&dd->ws, &loop, dd->g->cfg->workers, dd->max_batch)) != 0) {
        ad_log(AD_LOG_ERR, "cannot start workers: %s", ad_strerror(rc));
        goto out;
    }
    if ((rc = ad_mqtt_new(&dd->mqtt, &loop, &dd->g->cfg->broker, pw, &cb, dd, err, sizeof err))) {
        ad_log(AD_LOG_ERR, "mqtt: %s", err);
        goto out;
    }
    ad_mqtt_set_max_payload(dd->mqtt, (size_t)dd->g->cfg->max_payload);
    online = publish_status_json(dd, "online");
    offline = publish_status_json(dd, "offline");
    if (dd->g->cfg->broker.status_topic)
        ad_mqtt_set_status(dd->mqtt, dd->g->cfg->broker.status_topic, online, offline);
    dd_update_subscriptions(dd);
    if ((rc = kafka_start(dd, err, sizeof err)) != 0) {
        ad_log(AD_LOG_ERR, "%s", err);
        goto out;
    }
    state_outbox_load(dd);          /* undelivered before the last stop: first */
    state_scan(dd);                 /* open alerts continue; after kafka_start: the
                                     * clears of removed detectors' alerts raised on
                                     * Kafka go there */
    start_handles(dd, &loop);
    state_inbox_load(dd);           /* received during the last stop: first */
    retain_start(dd);               /* after state_scan: its streams are live */
    ad_notify_init(&loop);
    ad_log(AD_LOG_INFO, "connecting to %s:%d", dd->g->cfg->broker.host, dd->g->cfg->broker.port);
    ad_notify_status("connecting to %s:%d", dd->g->cfg->broker.host, dd->g->cfg->broker.port);
    ad_mqtt_start(dd->mqtt);

    uv_run(&loop, UV_RUN_DEFAULT);
    status = dd->exit_code;
out:
    state_scan_abandon(dd);         /* its thread must not outlive the loop */
    if (pw) { memset(pw, 0, strlen(pw)); free(pw); }
    free(online);
    free(offline);
    if (dd->ws) ad_workers_free(dd->ws);
    uv_run(&loop, UV_RUN_NOWAIT);       /* close callbacks */
    free_all(dd);
    if (uv_loop_close(&loop) != 0)
        ad_log(AD_LOG_DEBUG, "loop closed with open handles");
    free(dd->path);
    free(dd);
    return status;
}
