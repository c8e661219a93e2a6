/* fuzz_mqttpkt.c - libFuzzer target for the QoS 0 PUBLISH fast path's
 * framing helpers (daemon/mqttpkt.c). The input is a byte stream as read
 * from the broker: it is walked the way the MQTT reader walks its buffer
 * (fast path at packet boundaries, otherwise a piece of 1..8 bytes to the
 * frame follower), for MQTT 3.1.1 and 5. Checked: a recognised packet lies
 * within the input, its topic and payload within the packet, the payload
 * ends where the packet ends, the topic is printable ASCII, and the frame
 * follower, fed the packet byte by byte, reaches a boundary exactly at its
 * end. Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "mqttpkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int v5 = 0; v5 <= 1; v5++) {
        ad_mqtt_frame f = { 0 };
        size_t o = 0;
        while (o < size) {
            ad_mqtt_pub p;
            size_t k = ad_mqtt_frame_at_boundary(&f) ?
                       ad_mqtt_publish_peek(data + o, size - o, v5, &p) : 0;
            if (k) {
                if (k > size - o || p.topic < (const char *)data + o ||
                    p.topic + p.topic_len > (const char *)data + o + k ||
                    p.payload + p.payload_len != data + o + k ||
                    p.topic_len == 0 || p.topic_len >= AD_MQTT_FAST_TOPIC_MAX)
                    abort();
                for (size_t i = 0; i < p.topic_len; i++)
                    if (p.topic[i] < 0x20 || p.topic[i] > 0x7E)
                        abort();
                {   /* the follower agrees: the packet ends exactly at k */
                    ad_mqtt_frame g = { 0 };
                    for (size_t i = 0; i < k; i++) {
                        ad_mqtt_frame_feed(&g, data + o + i, 1);
                        if (ad_mqtt_frame_at_boundary(&g) != (i + 1 == k))
                            abort();
                    }
                }
                o += k;
                continue;
            }
            k = 1 + (data[o] & 7);
            if (k > size - o)
                k = size - o;
            ad_mqtt_frame_feed(&f, data + o, k);
            o += k;
        }
    }
    return 0;
}
