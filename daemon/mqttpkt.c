/*
 * mqttpkt.c - MQTT framing helpers for the QoS 0 PUBLISH fast path (see
 * mqttpkt.h). MQTT 3.1.1 section 2.2 and MQTT 5.0 section 2.1: a fixed
 * header byte (type in the high nibble; for PUBLISH DUP, QoS and RETAIN in
 * the low one), the remaining length as a variable byte integer of at most
 * four bytes, then that many bytes. A PUBLISH body is the topic name (two
 * length bytes, then UTF-8), a packet identifier when QoS > 0, for MQTT 5
 * the properties (their length as a variable byte integer first), and the
 * payload: the rest.
 */
#include "mqttpkt.h"

void ad_mqtt_frame_feed(ad_mqtt_frame *f, const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        switch (f->state) {
        case 3:                         /* malformed: wait for a new connection */
            return;
        case 0:                         /* fixed header byte */
            if (p[i++] == 0) {          /* libmosquitto rereads a 0 command byte */
                f->state = 3;
                return;
            }
            f->state = 1;
            f->len_bytes = 0;
            f->mult = 1;
            f->left = 0;
            break;
        case 1:                         /* remaining length */
            f->left += (uint32_t)(p[i] & 127) * f->mult;
            f->mult *= 128;
            f->len_bytes++;
            if (p[i++] & 128) {
                if (f->len_bytes < 4)
                    break;
                /* a fifth length byte is malformed: libmosquitto drops
                 * the connection, a new one starts a new frame */
                f->state = 3;
                return;
            }
            f->state = f->left ? 2 : 0;
            break;
        default:                        /* body */
            if ((size_t)f->left <= n - i) {
                i += f->left;
                f->left = 0;
                f->state = 0;
            } else {
                f->left -= (uint32_t)(n - i);
                i = n;
            }
            break;
        }
    }
}

size_t ad_mqtt_publish_peek(const unsigned char *b, size_t n, int v5, ad_mqtt_pub *out)
{
    size_t rl = 0, h, tl, k;
    int i;

    /* PUBLISH, DUP 0, QoS 0; RETAIN either way */
    if (n < 2 || (b[0] & 0xFE) != 0x30)
        return 0;
    for (i = 0; i < 4; i++) {
        if ((size_t)(1 + i) >= n)
            return 0;
        rl |= (size_t)(b[1 + i] & 127) << (7 * i);
        if (!(b[1 + i] & 128))
            break;
    }
    if (i == 4)
        return 0;                       /* malformed: libmosquitto's call */
    h = 2 + (size_t)i;                  /* fixed header length */
    if (rl > n - h)
        return 0;                       /* not all here yet */
    if (rl < 2)
        return 0;
    tl = (size_t)b[h] << 8 | b[h + 1];
    if (tl == 0 || tl >= AD_MQTT_FAST_TOPIC_MAX || tl > rl - 2)
        return 0;
    for (k = 0; k < tl; k++)
        if (b[h + 2 + k] < 0x20 || b[h + 2 + k] > 0x7E)
            return 0;                   /* UTF-8 and controls: libmosquitto checks */
    k = h + 2 + tl;
    if (v5) {
        if (k >= h + rl || b[k] != 0)
            return 0;                   /* properties (aliases, ...) */
        k++;
    }
    out->topic = (const char *)b + h + 2;
    out->topic_len = tl;
    out->payload = b + k;
    out->payload_len = h + rl - k;
    out->retain = b[0] & 1;
    return h + rl;
}
