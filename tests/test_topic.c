/* test_topic.c - MQTT filter matching (spec examples) and topic levels. */
#include "t.h"
#include "ad.h"
#include "topic.h"

static void test_match(void)
{
    static const struct { const char *f, *t; int m; } c[] = {
        { "sport/tennis/player1/#", "sport/tennis/player1", 1 },
        { "sport/tennis/player1/#", "sport/tennis/player1/ranking", 1 },
        { "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1 },
        { "sport/#", "sport", 1 },
        { "#", "a/b/c", 1 },
        { "sport/tennis/+", "sport/tennis/player1", 1 },
        { "sport/tennis/+", "sport/tennis/player1/ranking", 0 },
        { "sport/+", "sport", 0 },
        { "sport/+", "sport/", 1 },
        { "+/+", "/finance", 1 },
        { "/+", "/finance", 1 },
        { "+", "/finance", 0 },
        { "#", "$SYS/x", 0 },
        { "+/monitor/Clients", "$SYS/monitor/Clients", 0 },
        { "$SYS/#", "$SYS/x", 1 },
        { "sensors/+/data", "sensors/p1/data", 1 },
        { "sensors/+/data", "sensors/p1/dat", 0 },
        { "sensors/+/data", "sensors/p1/datax", 0 },
        { "a/b", "a/b/c", 0 },
        { "a/b/c", "a/b", 0 },
        { "+/#", "a", 1 },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        T_CHECK(ad_topic_match(c[i].f, c[i].t) == c[i].m, "filter %s topic %s: expected %d",
                c[i].f, c[i].t, c[i].m);
}

static void test_check(void)
{
    char err[128];
    T_CHECK(ad_topic_filter_check("a/+/#", err, sizeof err) == 0, "valid");
    T_CHECK(ad_topic_filter_check("a/b+/c", err, sizeof err) < 0, "+ inside a level");
    T_CHECK(ad_topic_filter_check("a/#/c", err, sizeof err) < 0, "# not last");
    T_CHECK(ad_topic_filter_check("a#", err, sizeof err) < 0, "# inside a level");
    T_CHECK(ad_topic_filter_check("", err, sizeof err) < 0, "empty");
}

static void test_levels(void)
{
    char b[64];
    int lv[2] = { 1, -1 };
    T_CHECK(ad_topic_level("sensors/p1/vib", 1, b, sizeof b) == 2 && strcmp(b, "p1") == 0, "%s", b);
    T_CHECK(ad_topic_level("sensors/p1/vib", -1, b, sizeof b) == 3 && strcmp(b, "vib") == 0, "%s", b);
    T_CHECK(ad_topic_level("sensors/p1/vib", 3, b, sizeof b) == -1, "no level 3");
    T_CHECK(ad_topic_level("sensors/p1/vib", -4, b, sizeof b) == -1, "no level -4");
    T_CHECK(ad_topic_level("a//b", 1, b, sizeof b) == 0 && b[0] == '\0', "empty level");
    T_CHECK(ad_topic_level("abcdef", 0, b, 4) == -1, "too long for buffer");
    T_CHECK(ad_topic_stream_key("site/7/pump/3/data", lv, 2, b, sizeof b) > 0 &&
            strcmp(b, "7/data") == 0, "key %s", b);
    T_CHECK(ad_topic_stream_key("x", lv, 0, b, sizeof b) == 0 && b[0] == '\0', "no levels");
    T_CHECK(ad_topic_expand("anomalyd/alerts/{detector}/{stream}", "pump", "p1", b, sizeof b) > 0 &&
            strcmp(b, "anomalyd/alerts/pump/p1") == 0, "expand %s", b);
    T_CHECK(ad_topic_expand("{stream}{stream}", "d", "0123456789abcdef0123456789abcdef", b, 40) == -1,
            "overflow detected");
}

int main(void)
{
    T_RUN(test_match);
    T_RUN(test_check);
    T_RUN(test_levels);
    return t_done();
}
