/* test_mqttpkt.c - the QoS 0 PUBLISH fast path's framing helpers against
 * packets built here from the MQTT 3.1.1 / 5.0 wire format: complete
 * packets are recognised with the right topic, payload and length, every
 * shorter prefix is not, anything the fast path must leave to libmosquitto
 * is refused, and the frame follower finds every packet end of a stream
 * handed out in random pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "mqttpkt.h"

static uint32_t rs = 12345;
static uint32_t rnd(uint32_t n)
{
    rs = rs * 1103515245u + 12345u;
    return (rs >> 8) % n;
}

/* Encode one packet: fixed header byte, remaining length, body. Returns
 * the length written to out (cap must be large enough). */
static size_t encode(unsigned char *out, unsigned char cmd, const unsigned char *body, size_t bl)
{
    size_t o = 0, x = bl;
    out[o++] = cmd;
    do {
        unsigned char c = (unsigned char)(x % 128);
        x /= 128;
        out[o++] = (unsigned char)(c | (x ? 128 : 0));
    } while (x);
    if (bl) memcpy(out + o, body, bl);
    return o + bl;
}

/* A PUBLISH body: topic, packet id if qos, MQTT 5 properties, payload. */
static size_t publish_body(unsigned char *b, const char *topic, size_t tl, int qos, int v5,
                           const unsigned char *props, size_t pl, const unsigned char *pay,
                           size_t n)
{
    size_t o = 0;
    b[o++] = (unsigned char)(tl >> 8);
    b[o++] = (unsigned char)(tl & 255);
    if (tl) memcpy(b + o, topic, tl);
    o += tl;
    if (qos) { b[o++] = 0x12; b[o++] = 0x34; }
    if (v5) {
        b[o++] = (unsigned char)pl;         /* pl < 128 here */
        if (pl) memcpy(b + o, props, pl);
        o += pl;
    }
    if (n) memcpy(b + o, pay, n);
    return o + n;
}

static void test_publish_roundtrip(void)
{
    /* payload sizes around the remaining-length byte boundaries */
    static const size_t sizes[] = { 0, 1, 5, 100, 120, 121, 122, 127, 128, 300, 16370,
                                    16383, 16384, 70000, 2097140, 2097152 };
    size_t cap = 2100000 + 1024, checked = 0, prefixes = 0;
    unsigned char *pay = malloc(cap), *body = malloc(cap), *pkt = malloc(cap);
    char topic[600];
    int bad = 0;

    T_CHECK(pay && body && pkt, "memory");
    if (!pay || !body || !pkt) goto done;
    for (size_t i = 0; i < cap; i++) pay[i] = (unsigned char)rnd(256);
    for (int v5 = 0; v5 <= 1; v5++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int t = 0; t < 3; t++) {
                size_t tl = t == 0 ? 1 : t == 1 ? 1 + rnd(60) : AD_MQTT_FAST_TOPIC_MAX - 1;
                int retain = (int)rnd(2);
                ad_mqtt_pub p;
                size_t bl, n, k;
                for (size_t c = 0; c < tl; c++)
                    topic[c] = (char)(0x20 + rnd(0x5F));
                bl = publish_body(body, topic, tl, 0, v5, NULL, 0, pay, sizes[si]);
                n = encode(pkt, (unsigned char)(0x30 | retain), body, bl);
                memset(&p, 0, sizeof p);
                k = ad_mqtt_publish_peek(pkt, n, v5, &p);
                checked++;
                if (k != n || p.topic_len != tl || memcmp(p.topic, topic, tl) != 0 ||
                    p.payload_len != sizes[si] || memcmp(p.payload, pay, sizes[si]) != 0 ||
                    p.retain != retain) {
                    if (bad++ < 5)
                        T_NOTE("v5 %d payload %zu topic %zu: got %zu of %zu, topic %zu, payload %zu",
                               v5, sizes[si], tl, k, n, p.topic_len, p.payload_len);
                    continue;
                }
                /* a trailing next packet does not change the answer */
                pkt[n] = 0xD0;
                if (ad_mqtt_publish_peek(pkt, n + 1, v5, &p) != n)
                    bad++;
                /* every prefix is incomplete: all of them for small packets,
                 * around the header and a sample for big ones */
                for (size_t L = 0; L < n; L++) {
                    if (n > 4096 && L > 64 && L < n - 64 && rnd(2000) != 0)
                        continue;
                    prefixes++;
                    if (ad_mqtt_publish_peek(pkt, L, v5, &p) != 0 && bad++ < 5)
                        T_NOTE("v5 %d payload %zu: prefix %zu of %zu accepted", v5, sizes[si], L, n);
                }
            }
    T_CHECK(bad == 0, "%d of %zu packets or their prefixes misread", bad, checked);
    T_NOTE("%zu packets (payload 0 .. 2 MiB, remaining length of 1 to 4 bytes) and %zu "
           "prefixes", checked, prefixes);
done:
    free(pay);
    free(body);
    free(pkt);
}

/* Packets libmosquitto must read: each refused however much follows. */
static void test_publish_refused(void)
{
    unsigned char body[1200], pkt[1300];
    static const unsigned char prop[] = { 0x26, 0, 4, 's', 'i', 't', 'e', 0, 1, '7' };
    static const unsigned char alias[] = { 0x23, 0, 1 };
    ad_mqtt_pub p;
    char topic[600];
    size_t bl, n;
    struct { const char *what; int ok; } r[16];
    int k = 0;

    memset(topic, 'a', sizeof topic);
#define CASE(w, expr) do { r[k].what = (w); r[k].ok = (expr); k++; } while (0)
    bl = publish_body(body, "s/1/p", 5, 1, 0, NULL, 0, (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x32, body, bl);
    CASE("QoS 1", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    n = encode(pkt, 0x34, body, bl);
    CASE("QoS 2", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    n = encode(pkt, 0x36, body, bl);
    CASE("QoS 3 (malformed)", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    bl = publish_body(body, "s/1/p", 5, 0, 0, NULL, 0, (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x38, body, bl);
    CASE("DUP set on QoS 0 (malformed)", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    n = encode(pkt, 0x30, body, bl);
    CASE("the same packet, DUP clear: taken", ad_mqtt_publish_peek(pkt, n, 0, &p) == n);
    CASE("CONNACK", ad_mqtt_publish_peek((const unsigned char *)"\x20\x02\x00\x00", 4, 0, &p) == 0);
    CASE("PINGRESP", ad_mqtt_publish_peek((const unsigned char *)"\xd0\x00", 2, 0, &p) == 0);
    CASE("SUBACK", ad_mqtt_publish_peek((const unsigned char *)"\x90\x03\x00\x01\x01", 5, 0, &p) == 0);
    bl = publish_body(body, "s/1/p", 5, 0, 1, prop, sizeof prop, (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x30, body, bl);
    CASE("MQTT 5 user property", ad_mqtt_publish_peek(pkt, n, 1, &p) == 0);
    bl = publish_body(body, "", 0, 0, 1, alias, sizeof alias, (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x30, body, bl);
    CASE("MQTT 5 topic alias, empty topic", ad_mqtt_publish_peek(pkt, n, 1, &p) == 0);
    bl = publish_body(body, "s/\xc3\xbc/p", 6, 0, 0, NULL, 0, (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x30, body, bl);
    CASE("UTF-8 topic", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    bl = publish_body(body, "s/\x01/p", 5, 0, 0, NULL, 0, (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x30, body, bl);
    CASE("control byte in topic", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    bl = publish_body(body, topic, AD_MQTT_FAST_TOPIC_MAX, 0, 0, NULL, 0,
                      (const unsigned char *)"{}", 2);
    n = encode(pkt, 0x30, body, bl);
    CASE("topic of AD_MQTT_FAST_TOPIC_MAX bytes", ad_mqtt_publish_peek(pkt, n, 0, &p) == 0);
    CASE("topic length past the packet",
         ad_mqtt_publish_peek((const unsigned char *)"\x30\x04\x00\x09" "ab", 6, 0, &p) == 0);
    CASE("five remaining-length bytes", ad_mqtt_publish_peek(
         (const unsigned char *)"\x30\xff\xff\xff\xff\x01\x00\x01t", 9, 0, &p) == 0);
    CASE("MQTT 5 without its property length",
         ad_mqtt_publish_peek((const unsigned char *)"\x30\x03\x00\x01t", 5, 1, &p) == 0);
#undef CASE
    for (int i = 0; i < k; i++)
        T_CHECK(r[i].ok, "%s", r[i].what);
}

static void test_frame_follower(void)
{
    enum { NPKT = 3000 };
    size_t cap = NPKT * 400 + 200000, n = 0, ends = 0, wrong = 0, pieces = 0;
    unsigned char *s = malloc(cap), body[200000];
    char *end = calloc(cap + 1, 1);
    ad_mqtt_frame f;

    T_CHECK(s && end, "memory");
    if (!s || !end) goto done;
    for (size_t i = 0; i < sizeof body; i++) body[i] = (unsigned char)rnd(256);
    end[0] = 1;
    for (int i = 0; i < NPKT; i++) {
        static const unsigned char cmds[] = { 0x30, 0x31, 0x32, 0x20, 0x40, 0x90, 0xb0, 0xd0 };
        size_t bl = rnd(10) == 0 ? 0 : rnd(8) == 0 ? 100 + rnd(300) : rnd(60);
        if (i % 500 == 7) bl = 130000 + rnd(40000);     /* 3-byte remaining length */
        n += encode(s + n, cmds[rnd(sizeof cmds)], body, bl);
        end[n] = 1;
    }
    /* hand the stream out in pieces: up to the end of the current packet
     * or one of the next few (as libmosquitto's reads often stop), single
     * bytes (its header reads), 1 .. 300 bytes, now and then a big one */
    memset(&f, 0, sizeof f);
    for (size_t o = 0; o < n; ) {
        size_t k;
        switch (rnd(5)) {
        case 0: {
            uint32_t skip = rnd(3);
            for (k = 1; o + k < n && (!end[o + k] || skip--); k++) ;
            break;
        }
        case 1: k = 1; break;
        case 2: k = rnd(30) == 0 ? 5000 + rnd(100000) : 1 + rnd(300); break;
        default: k = 1 + rnd(8); break;
        }
        if (k > n - o) k = n - o;
        ad_mqtt_frame_feed(&f, s + o, k);
        o += k;
        pieces++;
        if (ad_mqtt_frame_at_boundary(&f) != end[o] && wrong++ < 5)
            T_NOTE("after %zu bytes: boundary %d, expected %d", o, ad_mqtt_frame_at_boundary(&f),
                   end[o]);
        ends += end[o];
    }
    T_CHECK(wrong == 0, "%zu of %zu pieces ended with the wrong boundary state", wrong, pieces);
    T_CHECK(ad_mqtt_frame_at_boundary(&f), "the stream ends at a boundary");
    T_NOTE("%d packets, %zu bytes in %zu pieces, %zu of them ending a packet", NPKT, n, pieces,
           ends);
done:
    free(s);
    free(end);
}

/* Streams libmosquitto drops the connection over, or reads differently
 * (a 0 command byte is read again): never a boundary again, so the fast
 * path stays out until the next connection. */
static void test_frame_malformed(void)
{
    static const unsigned char five[] = { 0x30, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00 };
    static const unsigned char zero[] = { 0x00 };
    static const unsigned char ping[] = { 0xd0, 0x00 };
    ad_mqtt_frame f;
    int ok5 = 1, ok0 = 1;

    memset(&f, 0, sizeof f);
    for (size_t i = 0; i < sizeof five; i++) {
        ad_mqtt_frame_feed(&f, five + i, 1);
        ok5 &= !ad_mqtt_frame_at_boundary(&f);
    }
    ad_mqtt_frame_feed(&f, ping, sizeof ping);
    ok5 &= !ad_mqtt_frame_at_boundary(&f);
    T_CHECK(ok5, "five remaining-length bytes: no boundary after any byte, nor after a PINGRESP");
    memset(&f, 0, sizeof f);
    ad_mqtt_frame_feed(&f, zero, 1);
    ok0 &= !ad_mqtt_frame_at_boundary(&f);
    ad_mqtt_frame_feed(&f, ping, sizeof ping);
    ok0 &= !ad_mqtt_frame_at_boundary(&f);
    T_CHECK(ok0, "a 0 command byte: no boundary after it, nor after a PINGRESP");
    memset(&f, 0, sizeof f);
    ad_mqtt_frame_feed(&f, five + 1, 3);        /* 0x80 0x80 0x80: a command, then length */
    ad_mqtt_frame_feed(&f, ping, 1);            /* 0xd0: 4th length byte, continues */
    T_CHECK(!ad_mqtt_frame_at_boundary(&f), "four length bytes, all continued: not a boundary");
}

int main(void)
{
    T_RUN(test_publish_roundtrip);
    T_RUN(test_publish_refused);
    T_RUN(test_frame_follower);
    T_RUN(test_frame_malformed);
    return t_done();
}
