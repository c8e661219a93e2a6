/*
 * mqttpkt.h - MQTT framing helpers for the QoS 0 PUBLISH fast path of
 * mqtt.c. libmosquitto reads every packet; on a plaintext connection the
 * loop can hand the common case (a complete QoS 0 PUBLISH without
 * properties, already in the read buffer) straight to the message callback
 * without libmosquitto's per-packet allocations and locks. Everything else
 * (QoS 1/2, MQTT 5 properties, topic aliases, other packet types, packets
 * split across reads, anything malformed) goes to libmosquitto unchanged.
 *
 * Both helpers are pure: they read only the bytes given and keep no hidden
 * state, so they are unit-tested and fuzzed on their own.
 */
#ifndef AD_MQTTPKT_H
#define AD_MQTTPKT_H

#include <stddef.h>
#include <stdint.h>

/* Topics longer than this take libmosquitto's path (the fast path copies
 * the topic to the stack to terminate it). */
#define AD_MQTT_FAST_TOPIC_MAX 512

/* Follows the packet boundaries of a byte stream handed out in arbitrary
 * pieces: at_boundary is 1 exactly when the bytes fed so far end with a
 * complete packet (or are empty). Zero-initialized = at a boundary. A
 * stream libmosquitto rejects (a 0 command byte, a fifth remaining-length
 * byte) is never at a boundary again. */
typedef struct {
    int state;          /* 0 boundary, 1 remaining length, 2 body, 3 malformed */
    int len_bytes;
    uint32_t mult, left;
} ad_mqtt_frame;

void ad_mqtt_frame_feed(ad_mqtt_frame *f, const unsigned char *p, size_t n);
static inline int ad_mqtt_frame_at_boundary(const ad_mqtt_frame *f) { return f->state == 0; }

typedef struct {
    const char *topic;          /* not terminated */
    size_t topic_len;
    const unsigned char *payload;
    size_t payload_len;
    int retain;
} ad_mqtt_pub;

/* b[0..n) starts at a packet boundary. If it begins with a complete QoS 0
 * PUBLISH the fast path may deliver (topic 1..AD_MQTT_FAST_TOPIC_MAX-1
 * printable ASCII bytes; for MQTT 5, v5 != 0, an empty property list),
 * fills *out and returns the packet's length in bytes; otherwise returns 0
 * (incomplete, another packet, or one for libmosquitto to judge). */
size_t ad_mqtt_publish_peek(const unsigned char *b, size_t n, int v5, ad_mqtt_pub *out);

#endif
