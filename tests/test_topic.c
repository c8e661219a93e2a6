/* test_topic.c - MQTT filter matching (spec examples), topic levels, shared
 * subscriptions and the overlap of a publish template with a filter. */
#include <string.h>
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

static void test_share(void)
{
    char err[128], w[512];
    char *one[] = { "$share/ad/sensors/+/pump" };
    char *feat[] = { "$share/ad/plant/+/+" };
    char *two[] = { "$share/ad/a/+/x", "b/+/x" };
    char *hash[] = { "$share/ad/a/#" };
    char *plain[] = { "sensors/+/+" };
    int lv1[] = { 1 }, lvneg[] = { -2 };
    T_CHECK(ad_topic_match("$share/ad/sensors/+/pump", "sensors/p1/pump") == 1, "share stripped");
    T_CHECK(ad_topic_match("$share/ad/sensors/+/pump", "sensors/p1/fan") == 0, "share: no match");
    T_CHECK(ad_topic_match("$share/ad/#", "$SYS/x") == 0, "share: # and $ topics");
    T_CHECK(strcmp(ad_topic_share_strip("$share/g/a/b"), "a/b") == 0, "strip");
    T_CHECK(strcmp(ad_topic_share_strip("a/b"), "a/b") == 0, "strip: not shared");
    T_CHECK(ad_topic_filter_check("$share/g/a/+", err, sizeof err) == 0, "valid share");
    T_CHECK(ad_topic_filter_check("$share//a", err, sizeof err) < 0, "empty group");
    T_CHECK(ad_topic_filter_check("$share/g", err, sizeof err) < 0, "no filter");
    T_CHECK(ad_topic_filter_check("$share/g+/a", err, sizeof err) < 0, "wildcard group");
    T_CHECK(ad_topic_filter_check("$share/g/a/b+", err, sizeof err) < 0, "bad inner filter");
    T_CHECK(ad_topic_share_warning(one, 1, lv1, 1, w, sizeof w) == 0, "one topic per stream");
    T_CHECK(ad_topic_share_warning(feat, 1, lv1, 1, w, sizeof w) == 1 &&
            strstr(w, "level 2") != NULL, "feature level outside the key: %s", w);
    T_CHECK(ad_topic_share_warning(feat, 1, lvneg, 1, w, sizeof w) == 1, "-2 is level 1 only");
    T_CHECK(ad_topic_share_warning(two, 2, lv1, 1, w, sizeof w) == 1, "two filters");
    T_CHECK(ad_topic_share_warning(hash, 1, lv1, 1, w, sizeof w) == 1, "#");
    T_CHECK(ad_topic_share_warning(plain, 1, lv1, 1, w, sizeof w) == 0, "not shared");
}

/* ad_topic_template_overlap: {detector} given, or NULL for any name. */
static void test_template_overlap(void)
{
    const char *cmd = "anomalyd/cmd/{detector}/{stream}";

    T_CHECK(ad_topic_template_overlap("+/cmd/+/pump", cmd, NULL, 1) == 1,
            "any detector: +/cmd/+/pump takes anomalyd/cmd/<any>/pump");
    T_CHECK(ad_topic_template_overlap("anomalyd/cmd/boiler/#", cmd, NULL, 1) == 1,
            "any detector: a named one too");
    T_CHECK(ad_topic_template_overlap("anomalyd/cmd/boiler/#", cmd, "pump", 1) == 0,
            "detector pump: not boiler's topics");
    T_CHECK(ad_topic_template_overlap("sensors/+/pump", cmd, NULL, 1) == 0,
            "sensors/+/pump: no command topic");
    T_CHECK(ad_topic_template_overlap("anomalyd/cmd/+", "anomalyd/cmd/{detector}", NULL, 0) == 1,
            "a topic that stops at {detector}");
}

int main(void)
{
    T_RUN(test_match);
    T_RUN(test_check);
    T_RUN(test_levels);
    T_RUN(test_share);
    T_RUN(test_template_overlap);
    return t_done();
}
