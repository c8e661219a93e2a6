/*
 * mqtt.h - the MQTT client of the daemon: libmosquitto driven from the libuv
 * loop, with reconnection, subscriptions, a status topic and an alert queue.
 *
 * libmosquitto's external-loop API: no thread of libmosquitto's own (no
 * mosquitto_loop_start) and no busy polling. libmosquitto owns its socket
 * and does all reading and writing on it; the socket (mosquitto_socket())
 * sits in a uv_poll_t: readable -> mosquitto_loop_read, writable (only
 * watched while mosquitto_want_write()) -> mosquitto_loop_write, and a 1 s
 * uv_timer_t runs mosquitto_loop_misc (keepalive). A lost connection is retried with exponential backoff and
 * jitter (reconnect_min_s doubling up to reconnect_max_s, x 0.5..1.0; a
 * connect resets it, unless it follows a connection the broker closed
 * within 10 s while every reconnect succeeds at once: another client with
 * our client_id taking the session, which the log then hints at); the
 * subscriptions are sent again on every (re)connect, the retained "online"
 * status is published, and the retained "offline" status is the last will.
 *
 * Subscriptions: one SUBSCRIBE per filter; each SUBACK is checked. A filter
 * the broker refuses (an ACL, a quota) is logged with its reason, counted in
 * the stats (subscriptions_denied) and, once every SUBACK of a connection is
 * in, the status is published again with "subscriptions": {"granted": [..],
 * "denied": [..]}.
 *
 * Maximum packet size: over MQTT 5 the CONNECT announces max_payload_bytes +
 * AD_MQTT_PACKET_HEADROOM, so the broker drops larger messages instead of
 * sending them. MQTT 3.1.1 has no way to announce it: there a larger
 * message is read whole by libmosquitto and then refused by the daemon.
 *
 * Publishing: while connected, messages go straight to libmosquitto (which
 * keeps QoS>0 messages in flight until acknowledged and resends them after
 * a reconnect). While disconnected, QoS>0 messages are kept in our own FIFO
 * (bounded by max_queued_alerts, the oldest dropped and counted beyond it)
 * and handed over right after the next CONNACK; QoS 0 messages are dropped
 * and counted. So alerts raised while the broker is away are delivered.
 *
 * Refused publishes: over MQTT 5 the broker answers a QoS>0 PUBLISH with a
 * reason code; one >= 0x80 (0x87 Not authorized from an ACL, a quota, a
 * bad topic) means it did not take the message. The message is then
 * dropped, not sent again (the broker would refuse it again, and an
 * outbox that never empties helps nobody), counted (publish_refused, and
 * alerts_refused for messages published with ad_mqtt_publish_alert) and
 * logged with its topic: an alert message at error level with what it was
 * (at most 30 such lines a minute), other topics at warning level once a
 * minute per topic; what was not logged is told in one line a minute. For
 * this the topic (and the alert) of each unacknowledged QoS>0 message is
 * kept by message id until its acknowledgement. QoS 0 publishes get no
 * answer, so their refusal is never seen; over MQTT 3.1.1 a broker drops an
 * unauthorized PUBLISH silently and acknowledges it as if delivered.
 *
 * Connecting (host name lookup, TCP connect, and for MQTT 5 with a
 * persistent session the blocking first CONNECT) runs on a short-lived
 * thread of its own, so a slow DNS server or an unreachable broker never
 * stalls the loop; the socket is taken over on the loop when it returns.
 *
 * All functions must be called on the loop thread.
 */
#ifndef AD_MQTT_H
#define AD_MQTT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "config.h"

typedef struct ad_mqtt ad_mqtt;

/* Bytes of a PUBLISH besides its payload allowed for in the announced
 * maximum packet size: the longest topic MQTT allows (2 + 65535), the
 * packet id, properties and the fixed header (4 KiB). */
#define AD_MQTT_PACKET_HEADROOM (2 + 65535 + 4096)

typedef struct ad_mqtt_cb {
    /* CONNACK accepted; subscriptions and the online status were sent. */
    void (*connected)(void *ud, int session_present);
    /* Connection lost or refused (why: text, valid during the call). */
    void (*disconnected)(void *ud, const char *why);
    /* A message; topic and payload valid only during the call. */
    void (*message)(void *ud, const char *topic, const void *payload, size_t len);
    /* ad_mqtt_stop() finished: handles closed, ad_mqtt_free() may follow. */
    void (*stopped)(void *ud);
    /* The broker acknowledged the last alert message in flight and the
     * last message of the hold (ad_mqtt_hold) in flight: nothing a copy
     * on disk keeps is unacknowledged now (ad_mqtt_idle may still be 0). */
    void (*kept_done)(void *ud);
} ad_mqtt_cb;

typedef struct ad_mqtt_stats {
    int connected;
    uint64_t connects;          /* successful CONNACKs */
    uint64_t connect_failures;  /* refused or failed attempts */
    uint64_t messages_in;
    uint64_t subscriptions_denied;  /* filters the broker refused (now) */
    uint64_t published;         /* handed to libmosquitto */
    uint64_t queued;            /* now in our own queue */
    uint64_t queue_dropped;     /* dropped: queue full, or QoS 0 while away */
    uint64_t inflight;          /* QoS>0 published, not yet acknowledged */
    uint64_t inflight_alerts;   /* of them, alert messages (kept for the outbox) */
    uint64_t publish_refused;   /* refused by the broker (MQTT 5 reason code >= 0x80) */
    uint64_t alerts_refused;    /* of them, published with ad_mqtt_publish_alert */
} ad_mqtt_stats;

/*
 * Create the client (nothing is sent yet). `b` is copied as needed;
 * password may be NULL (read by the caller from broker.password_file).
 * Returns 0 and *out, or a negative code with a message.
 */
int ad_mqtt_new(ad_mqtt **out, uv_loop_t *loop, const ad_broker_cfg *b,
                const char *password, const ad_mqtt_cb *cb, void *ud,
                char *err, size_t errlen);

/* Retained status on `topic`: `online` published on every connect,
 * `offline` registered as the last will and published by ad_mqtt_stop().
 * Copied. Call before ad_mqtt_start() (the will is part of CONNECT). */
int ad_mqtt_set_status(ad_mqtt *m, const char *topic, const char *online,
                       const char *offline);

/* Announce max_payload + AD_MQTT_PACKET_HEADROOM as the maximum packet size
 * in CONNECT (MQTT 5 only; kept for every reconnect, so a reload that
 * changes max_payload_bytes reaches the broker only after a restart). Call
 * before ad_mqtt_start(); AD_EINVAL after it. */
int ad_mqtt_set_max_payload(ad_mqtt *m, size_t max_payload);

/* The most alert messages kept while the broker is unreachable
 * (broker.max_queued_alerts; a reload may change it): beyond it the oldest
 * are dropped and counted (queue_dropped), also at once when the queue
 * already holds more. */
void ad_mqtt_set_max_queued(ad_mqtt *m, size_t n);

/* Replace the subscription list (copied). When connected, removed filters
 * are unsubscribed and new ones subscribed at once; all are resubscribed on
 * every reconnect. */
int ad_mqtt_set_subscriptions(ad_mqtt *m, char *const *filters, int n, int qos);

/* Start connecting (asynchronously). */
int ad_mqtt_start(ad_mqtt *m);

/*
 * Publish (see the queueing rules above). Returns 0 when sent or queued,
 * 1 when dropped (counted), a negative code on error.
 */
int ad_mqtt_publish(ad_mqtt *m, const char *topic, const void *payload, size_t len,
                    int qos, int retain);

/*
 * ad_mqtt_publish for an alert message: `what` (e.g. "alert pump1-17..-1
 * raised"; NULL: as ad_mqtt_publish) is copied and kept with the message
 * while it is queued or unacknowledged, so that a refusal by the broker is
 * logged at error level naming it and counted in alerts_refused.
 */
int ad_mqtt_publish_alert(ad_mqtt *m, const char *topic, const void *payload, size_t len,
                          int qos, int retain, const char *what);

/*
 * During the message callback only: the MQTT 5 response topic and
 * correlation data of the message being delivered. *topic and *corr are
 * malloc'd copies (caller frees; NULL when absent). Returns 1 when the
 * message named a response topic, else 0.
 */
int ad_mqtt_message_response(const ad_mqtt *m, char **topic, void **corr, size_t *corr_len);

/*
 * A reply to a request: QoS 1, not retained; over MQTT 5 with the request's
 * correlation data (corr, corr_len bytes; none when corr_len is 0). A
 * reply with correlation data is not queued while disconnected (dropped
 * and counted). Returns as ad_mqtt_publish.
 */
int ad_mqtt_publish_reply(ad_mqtt *m, const char *topic, const void *payload, size_t len,
                          const void *corr, size_t corr_len);

/* Stop (1) or resume (0) reading the socket: backpressure while the
 * workers are behind. Writing and keepalive timers continue. */
void ad_mqtt_pause(ad_mqtt *m, int paused);

/* Nothing waiting: our queue is empty and no QoS>0 message is unacknowledged. */
int ad_mqtt_idle(const ad_mqtt *m);

/*
 * Graceful stop: publish the offline status, wait until ad_mqtt_idle() or
 * timeout_ms, send DISCONNECT (no last will then), close the handles, then
 * call cb->stopped. If the broker is unreachable meanwhile, reconnection
 * continues until the timeout so queued alerts still get out. While not
 * connected the offline status is not queued (the broker has published the
 * last will, or never saw this client; a connect during the stop sends
 * offline instead of online), so with nothing queued the stop completes at
 * once; a connection attempt still in progress is then abandoned (its
 * thread closes the socket when the blocking call returns).
 */
void ad_mqtt_stop(ad_mqtt *m, uint64_t timeout_ms);

void ad_mqtt_get_stats(const ad_mqtt *m, ad_mqtt_stats *st);

/* A copy of what ad_mqtt_queue_foreach gives is being kept (on disk):
 * the messages queued now are its hold, and once one of them is handed to
 * libmosquitto it counts in ad_mqtt_held_inflight until the broker
 * acknowledges it. The alert messages in flight are in the copy and
 * counted already (inflight_alerts); other messages in flight are not in
 * it. A new hold replaces the previous one (its copy is replaced too). */
void ad_mqtt_hold(ad_mqtt *m);

/* While on, publishes join the current hold (messages from a copy on disk
 * published again: the copy keeps them until they are acknowledged). */
void ad_mqtt_hold_publishes(ad_mqtt *m, int on);

/* Messages of the current hold handed to libmosquitto, not acknowledged. */
uint64_t ad_mqtt_held_inflight(const ad_mqtt *m);

/* Call fn for every alert message (ad_mqtt_publish_alert with a `what`)
 * handed to libmosquitto and not acknowledged yet, then every message in
 * our own queue, each oldest first; topic and payload are valid during the
 * call. To keep them across a stop or a crash (outbox.json): a message
 * the broker has not acknowledged may not have reached it. */
void ad_mqtt_queue_foreach(const ad_mqtt *m,
                           void (*fn)(void *ud, const char *topic, const void *payload,
                                      size_t len, int qos, int retain),
                           void *ud);

/* Free after cb->stopped (or before ad_mqtt_start). NULL-safe. */
void ad_mqtt_free(ad_mqtt *m);

#endif /* AD_MQTT_H */
