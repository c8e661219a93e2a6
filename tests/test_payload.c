/* test_payload.c - number, JSON (dotted paths, timestamps) and SenML
 * parsers: samples produced, unknown fields counted, errors; a bad value
 * refuses its feature alone (the message's good values kept, the bad one
 * named), a payload of the wrong shape is refused whole; a presence word
 * where JSON belongs (a last will: "Offline", "\"offline\"") is a status. */
#include <stdint.h>
#include "t.h"
#include "ad.h"
#include "payload.h"

static const char *FEAT[] = { "vibration", "current", "pressure" };

static ad_payload_parser *mk(int format, const char *const *keys, const char *const *vals,
                             int n, const char *ts, int unit)
{
    ad_payload_cfg c;
    ad_payload_parser *p = NULL;
    char err[256];
    memset(&c, 0, sizeof c);
    c.format = format;
    c.feature_level = -1;
    c.fields.key = (char **)keys;
    c.fields.val = (char **)vals;
    c.fields.n = n;
    c.timestamp = (char *)ts;
    c.timestamp_unit = unit;
    if (ad_payload_parser_new(&p, &c, FEAT, 3, "detectors[0].payload", err, sizeof err))
        fprintf(stderr, "parser: %s\n", err);
    return p;
}

static int parse(ad_payload_parser *p, const char *topic, const char *msg, ad_sample *s,
                 int *n, int *unk, char *err)
{
    *unk = 0;
    return ad_payload_parse(p, topic, msg, strlen(msg), 1000.0, s, 16, n, unk, err, 256);
}

static void test_number(void)
{
    ad_payload_parser *p = mk(AD_FMT_NUMBER, NULL, NULL, 0, NULL, 0);
    ad_sample s[16];
    int n, u, rc;
    char err[256];
    T_CHECK(p != NULL, "parser");
    if (!p) return;
    rc = parse(p, "sensors/p1/current", " 12.5\n", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].feature == 1 && s[0].value == 12.5 && isnan(s[0].time),
            "rc %d n %d f %d v %g", rc, n, s[0].feature, s[0].value);
    T_CHECK(rc == 0 && s[0].refused == 0 && err[0] == '\0', "a good value: nothing refused");
    T_CHECK(parse(p, "sensors/p1/rpm", "1", s, &n, &u, err) == AD_ENOENT && strstr(err, "rpm"),
            "unknown feature: %s", err);
    /* a bad value is the message's one value, refused for its feature:
     * the device sent it (it is alive), the feature gets no value */
    rc = parse(p, "sensors/p1/current", "abc", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].feature == 1 && s[0].refused == AD_SAMPLE_NONNUMERIC &&
            isnan(s[0].value) && strstr(err, "feature current: not a number: \"abc\""),
            "text: rc %d n %d refused %d: %s", rc, n, s[0].refused, err);
    rc = parse(p, "sensors/p1/current", "nan", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONFINITE &&
            strstr(err, "not finite: \"nan\""), "nan: rc %d %s", rc, err);
    rc = parse(p, "sensors/p1/current", "1e999", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONFINITE, "inf: rc %d %s", rc, err);
    rc = parse(p, "sensors/p1/current", "0x10", s, &n, &u, err);
    T_CHECK(rc == 0 && s[0].refused == AD_SAMPLE_NONNUMERIC, "hex refused: rc %d %s", rc, err);
    rc = parse(p, "sensors/p1/current", "1.5\x01\xff", s, &n, &u, err);
    T_CHECK(rc == 0 && s[0].refused == AD_SAMPLE_NONNUMERIC && strstr(err, "\"1.5??\""),
            "control bytes logged as '?': %s", err);
    T_CHECK(parse(p, "sensors/p1/current", "", s, &n, &u, err) == AD_EFORMAT && n == 0 &&
            strstr(err, "empty payload"), "empty: no value at all: %s", err);
    T_CHECK(parse(p, "sensors/p1/current", " \n", s, &n, &u, err) == AD_EFORMAT && n == 0,
            "blank: no value at all: %s", err);
    ad_payload_parser_free(p);
}

static void test_json(void)
{
    const char *k[] = { "vibration" }, *v[] = { "acc.rms" };
    ad_payload_parser *p = mk(AD_FMT_JSON, k, v, 1, "ts", AD_TS_MS);
    ad_sample s[16];
    int n, u, rc;
    char err[256];
    T_CHECK(p != NULL, "parser");
    if (!p) return;
    rc = parse(p, "t", "{\"ts\":1700000000500,\"acc\":{\"rms\":0.25},\"current\":\"3.5\","
               "\"pressure\":7,\"rssi\":-40,\"fw\":\"1.2\"}", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 3, "rc %d n %d %s", rc, n, err);
    T_CHECK(s[0].feature == 0 && s[0].value == 0.25, "dotted path: f%d %g", s[0].feature, s[0].value);
    T_CHECK(s[1].feature == 1 && s[1].value == 3.5, "numeric string");
    T_CHECK(fabs(s[2].time - 1700000000.5) < 1e-6, "ms timestamp -> %f", s[2].time);
    T_CHECK(u == 2, "unknown fields rssi, fw counted: %d", u);
    rc = parse(p, "t", "{\"current\":1}", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && isnan(s[0].time), "partial message, no ts");
    T_CHECK(parse(p, "t", "{\"current\":1", s, &n, &u, err) == AD_EFORMAT, "malformed");
    /* text after the object: refused, naming where (was: first object taken) */
    T_CHECK(parse(p, "t", "{\"current\":1}{\"current\":2}", s, &n, &u, err) == AD_EFORMAT &&
            n == 0 && strstr(err, "text after the end of the payload") &&
            strstr(err, "column 14"), "two glued objects refused: %s", err);
    T_CHECK(parse(p, "t", "{\"current\":1} \r\n", s, &n, &u, err) == 0 && n == 1,
            "trailing white space is fine: %s", err);
    T_CHECK(parse(p, "t", "[1,2]", s, &n, &u, err) == AD_EFORMAT, "array");
    T_CHECK(parse(p, "t", "{\"x\":1}", s, &n, &u, err) == AD_ENOENT, "no feature: %s", err);
    rc = parse(p, "t", "{\"current\":true}", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONNUMERIC &&
            strstr(err, "field \"current\": not a number: true"), "bool: rc %d %s", rc, err);
    rc = parse(p, "t", "{\"current\":1e400}", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONFINITE &&
            strstr(err, "field \"current\": not finite"), "inf: rc %d %s", rc, err);
    rc = parse(p, "t", "{\"current\":\"NaN\"}", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONFINITE, "NaN string: rc %d %s",
            rc, err);
    T_CHECK(parse(p, "t", "{\"current\":1,\"ts\":\"x\"}", s, &n, &u, err) < 0, "bad ts");
    /* a time no stream can hold is refused (it overflowed to a garbage
     * time), on the fast path and the reference path alike */
    {
        static const char *bad[] = { "{\"ts\":1e30,\"current\":1}", "{\"ts\":1e19,\"current\":1}",
                                     "{\"ts\":-5,\"current\":1}", "{\"current\":1,\"ts\":\"1e30\"}" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            rc = parse(p, "t", bad[i], s, &n, &u, err);
            T_CHECK(rc == AD_ERANGE && n == 0 && strstr(err, "timestamp") &&
                    strstr(err, "outside 1970-01-01 .. 9999-12-31"), "%s: rc %d n %d %s", bad[i],
                    rc, n, err);
            rc = ad_payload_parse_ref(p, "t", bad[i], strlen(bad[i]), 1000.0, s, 16, &n, &u, err,
                                      sizeof err);
            T_CHECK(rc == AD_ERANGE, "reference path, %s: rc %d", bad[i], rc);
        }
        /* microseconds under ms: the error says which unit would fit */
        rc = parse(p, "t", "{\"ts\":1700000000500000,\"current\":1}", s, &n, &u, err);
        T_CHECK(rc == AD_ERANGE && strstr(err, "set payload.timestamp_unit \"us\""),
                "us sent under ms: rc %d %s", rc, err);
        rc = parse(p, "t", "{\"ts\":1e30,\"current\":1}", s, &n, &u, err);
        T_CHECK(rc == AD_ERANGE && !strstr(err, "timestamp_unit \""),
                "no unit fits 1e30: no hint (%s)", err);
        /* an empty payload says so (was: malformed JSON at line 1 column 1) */
        T_CHECK(parse(p, "t", "", s, &n, &u, err) == AD_EFORMAT && n == 0 &&
                strstr(err, "empty payload (0 bytes)"), "empty payload: %s", err);
        T_CHECK(parse(p, "t", " \r\n", s, &n, &u, err) == AD_EFORMAT &&
                strstr(err, "empty payload (3 bytes, all white space)"), "blank payload: %s", err);
        rc = parse(p, "t", "{\"ts\":253402300799000,\"current\":1}", s, &n, &u, err);
        T_CHECK(rc == 0 && n == 1, "9999-12-31T23:59:59Z is a time: rc %d %s", rc, err);
        rc = parse(p, "t", "{\"ts\":0,\"current\":1}", s, &n, &u, err);
        T_CHECK(rc == 0 && n == 1 && s[0].time == 0.0, "1970-01-01 is a time: rc %d %s", rc, err);
    }
    ad_payload_parser_free(p);
}

static void test_json_array_path(void)
{
    const char *k[] = { "pressure" }, *v[] = { "p.1" };
    ad_payload_parser *p = mk(AD_FMT_JSON, k, v, 1, NULL, 0);
    ad_sample s[16];
    int n, u;
    char err[256];
    if (!p) { T_CHECK(0, "parser"); return; }
    T_CHECK(parse(p, "t", "{\"p\":[1,2,3]}", s, &n, &u, err) == 0 && n == 1 && s[0].value == 2,
            "array index in path");
    ad_payload_parser_free(p);
}

static void test_senml(void)
{
    const char *k[] = { "pressure" }, *v[] = { "press" };
    ad_payload_parser *p = mk(AD_FMT_SENML, k, v, 1, NULL, 0);
    ad_sample s[16];
    int n, u, rc;
    char err[256];
    if (!p) { T_CHECK(0, "parser"); return; }
    rc = parse(p, "t", "[{\"bn\":\"\",\"bt\":1.7e9,\"n\":\"vibration\",\"v\":0.5,\"u\":\"m/s2\"},"
               "{\"n\":\"current\",\"v\":4,\"t\":1},{\"n\":\"press\",\"v\":2.5},"
               "{\"n\":\"door\",\"vb\":true},{\"n\":\"other\",\"v\":1}]", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 3, "rc %d n %d %s", rc, n, err);
    T_CHECK(s[0].feature == 0 && s[0].time == 1.7e9, "bt applies");
    T_CHECK(s[1].feature == 1 && s[1].time == 1.7e9 + 1, "bt + t");
    T_CHECK(s[2].feature == 2 && s[2].value == 2.5, "renamed record");
    T_CHECK(u == 2, "vb record and unknown name counted: %d", u);
    rc = parse(p, "t", "[{\"n\":\"current\",\"v\":1,\"t\":-5}]", s, &n, &u, err);
    T_CHECK(rc == 0 && s[0].time == 995.0, "relative time from now: %f", s[0].time);
    rc = parse(p, "t", "[{\"n\":\"current\",\"v\":1}]", s, &n, &u, err);
    T_CHECK(rc == 0 && isnan(s[0].time), "no time -> arrival");
    rc = parse(p, "t", "[{\"bn\":\"dev1/\",\"bv\":10,\"n\":\"current\",\"v\":1}]", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].feature == 1 && s[0].value == 11,
            "device bn: matched by n alone, bv + v");
    rc = parse(p, "t", "[{\"bn\":\"dev1/\",\"n\":\"rpm\",\"v\":1}]", s, &n, &u, err);
    T_CHECK(rc == AD_ENOENT, "unknown n with a bn: no feature");
    T_CHECK(parse(p, "t", "{\"n\":\"current\",\"v\":1}", s, &n, &u, err) == AD_EFORMAT, "not array");
    rc = parse(p, "t", "[{\"n\":\"current\",\"v\":\"1\"}]", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONNUMERIC &&
            strstr(err, "SenML record 0 (\"current\"): v not a number: \"1\""),
            "string v: rc %d %s", rc, err);
    rc = parse(p, "t", "[{\"n\":\"current\",\"v\":1e308,\"bv\":1e308}]", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONFINITE &&
            strstr(err, "bv + v beyond the double range"), "overflowing bv+v: rc %d %s", rc, err);
    rc = parse(p, "t", "[{\"n\":\"rpm\",\"v\":\"x\"}]", s, &n, &u, err);
    T_CHECK(rc == AD_ENOENT && u == 1, "a bad value of an unknown record: unknown, no feature "
            "(rc %d, unknown %d)", rc, u);
    /* bt + t past DBL_MAX is Inf: refused as a time no stream can hold
     * (it was taken, and Inf * 1000 does not convert to int64 ms) */
    rc = parse(p, "t", "[{\"n\":\"current\",\"v\":1,\"t\":1e308,\"bt\":1e308}]", s, &n, &u,
               err);
    T_CHECK(rc == AD_ERANGE && n == 0 && strstr(err, "outside 1970-01-01 .. 9999-12-31"),
            "overflowing bt+t refused: rc %d %s", rc, err);
    /* a bt in milliseconds: the error says SenML times are seconds */
    rc = parse(p, "t", "[{\"bt\":1700000000500,\"n\":\"current\",\"v\":1}]", s, &n, &u, err);
    T_CHECK(rc == AD_ERANGE && strstr(err, "SenML times (bt, t) are seconds"),
            "bt in ms: rc %d %s", rc, err);
    ad_payload_parser_free(p);
}

static void test_senml_base(void)
{
    ad_payload_cfg c;
    ad_payload_parser *p = NULL;
    ad_sample s[4];
    int n, u;
    char err[256];
    memset(&c, 0, sizeof c);
    c.format = AD_FMT_SENML;
    c.senml_base = "urn:dev:pump1:";
    T_CHECK(ad_payload_parser_new(&p, &c, FEAT, 3, "x", err, sizeof err) == 0, "%s", err);
    if (!p) return;
    const char *m = "[{\"bn\":\"urn:dev:pump1:\",\"n\":\"current\",\"bv\":1,\"v\":2}]";
    T_CHECK(ad_payload_parse(p, "t", m, strlen(m), 0, s, 4, &n, &u, err, sizeof err) == 0 &&
            n == 1 && s[0].feature == 1 && s[0].value == 3, "senml_base stripped, bv+v: %s", err);
    T_CHECK(ad_payload_parse(p, "t", m, strlen(m), 0, s, 0, &n, &u, err, sizeof err) == AD_ERANGE,
            "no room");
    ad_payload_parser_free(p);
}

static void test_bad_fields(void)
{
    const char *k[] = { "rpm" }, *v[] = { "x" };
    ad_payload_cfg c;
    ad_payload_parser *p = NULL;
    char err[256] = "";
    memset(&c, 0, sizeof c);
    c.format = AD_FMT_JSON;
    c.fields.key = (char **)k; c.fields.val = (char **)v; c.fields.n = 1;
    T_CHECK(ad_payload_parser_new(&p, &c, FEAT, 3, "detectors[0].payload", err, sizeof err) ==
            AD_EINVAL && p == NULL, "accepted");
    T_CHECK(strstr(err, "detectors[0].payload.fields.rpm: not a feature") != NULL, "%s", err);
}

/* ---- a bad value refuses its feature alone ----------------------------------------------- */

static const char *FEAT5[] = { "vibration", "current", "pressure", "temperature", "flow" };

/* The pump's five sensors, one of them bad: the four good values come out
 * as samples, the bad one as its feature refused (value NaN), named in
 * err; on the fast path's config and the cJSON path's alike. Was: the
 * whole message refused (AD_ENONFINITE / AD_EFORMAT), the four good
 * values lost with it. */
static void test_refused_json(void)
{
    static const struct { const char *v; int why; const char *said; } bad[] = {
        { "1e999", AD_SAMPLE_NONFINITE, "field \"pressure\": not finite" },
        { "-1e999", AD_SAMPLE_NONFINITE, "field \"pressure\": not finite" },
        { "\"abc\"", AD_SAMPLE_NONNUMERIC, "field \"pressure\": not a number: \"abc\"" },
        { "\"NaN\"", AD_SAMPLE_NONFINITE, "field \"pressure\": not finite: \"NaN\"" },
        { "\"0x10\"", AD_SAMPLE_NONNUMERIC, "not a number: \"0x10\"" },
        { "\"N/A\"", AD_SAMPLE_NONNUMERIC, "not a number: \"N/A\"" },
        { "\"idle\"", AD_SAMPLE_NONNUMERIC, "not a number: \"idle\"" },
        { "\"-Infinity\"", AD_SAMPLE_NONFINITE, "not finite: \"-Infinity\"" },
        { "false", AD_SAMPLE_NONNUMERIC, "not a number: false" },
        { "{\"a\":1}", AD_SAMPLE_NONNUMERIC, "not a number: an object" },
        { "[1]", AD_SAMPLE_NONNUMERIC, "not a number: an array" },
        { "\"1234567890123456789012345678901234567890123456789012345678901234567890\"",
          AD_SAMPLE_NONNUMERIC, "\"12345678901234567890123456789012...\"" },
    };
    ad_payload_cfg c;
    ad_payload_parser *p[2] = { NULL, NULL };
    char err[256], msg[512];
    static char *k[] = { "temperature" }, *v[] = { "env.t" };

    memset(&c, 0, sizeof c);
    c.format = AD_FMT_JSON;
    c.timestamp = "ts";
    c.timestamp_unit = AD_TS_MS;
    T_CHECK(ad_payload_parser_new(&p[0], &c, FEAT5, 5, "x", err, sizeof err) == 0, "%s", err);
    c.fields.key = k; c.fields.val = v; c.fields.n = 1;   /* a dotted path: cJSON only */
    T_CHECK(ad_payload_parser_new(&p[1], &c, FEAT5, 5, "x", err, sizeof err) == 0, "%s", err);
    if (!p[0] || !p[1]) goto done;
    for (int j = 0; j < 2; j++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            ad_sample s[16];
            int n = 0, u = 0, rc, good = 0, ok = 1;
            snprintf(msg, sizeof msg, "{\"ts\":1700000000500,\"vibration\":1.5,\"current\":31.2,"
                     "\"pressure\":%s,%s,\"flow\":57.7}", bad[b].v,
                     j ? "\"env\":{\"t\":60.5}" : "\"temperature\":60.5");
            rc = ad_payload_parse(p[j], "t", msg, strlen(msg), 0, s, 16, &n, &u, err, sizeof err);
            for (int i = 0; i < n; i++) {
                if (s[i].feature == 2)
                    ok &= s[i].refused == bad[b].why && isnan(s[i].value);
                else
                    good += s[i].refused == 0 && isfinite(s[i].value);
                ok &= fabs(s[i].time - 1700000000.5) < 1e-6;
            }
            T_CHECK(rc == 0 && n == 5 && good == 4 && ok && u == 0 &&
                    strstr(err, bad[b].said) && strstr(err, "value refused"),
                    "%s, pressure %s: rc %d n %d good %d: %s", j ? "dotted" : "flat", bad[b].v,
                    rc, n, good, err);
        }
    {
        /* every value bad: still a message of the device, each refused */
        ad_sample s[16];
        int n = 0, u = 0, rc;
        const char *m = "{\"vibration\":\"x\",\"current\":1e999,\"pressure\":true,"
                        "\"temperature\":\"inf\",\"flow\":[]}";
        rc = ad_payload_parse(p[0], "t", m, strlen(m), 0, s, 16, &n, &u, err, sizeof err);
        T_CHECK(rc == 0 && n == 5 && s[0].refused == AD_SAMPLE_NONNUMERIC &&
                s[1].refused == AD_SAMPLE_NONFINITE && s[3].refused == AD_SAMPLE_NONFINITE &&
                strstr(err, "5 values refused (missing from this message): field \"vibration\"") &&
                strstr(err, "; and 2 more"), "all five bad: rc %d n %d: %s", rc, n, err);
        /* null is no value (absent), as before */
        m = "{\"vibration\":null,\"current\":2}";
        rc = ad_payload_parse(p[0], "t", m, strlen(m), 0, s, 16, &n, &u, err, sizeof err);
        T_CHECK(rc == 0 && n == 1 && s[0].feature == 1 && s[0].refused == 0 && err[0] == '\0',
                "null: absent, not refused: rc %d n %d %s", rc, n, err);
    }
    {
        /* the message's shape still decides: refused whole (only a
         * presence word such as "offline" is a status: test_status_text) */
        static const char *whole[] = { "{\"pressure\": ", "not json", "not: json", "[1,2,3]",
                                        "{\"x\": 1}", "{\"pressure\":\"abc\"} x",
                                        "{\"ts\":\"x\",\"flow\":1}", "{\"ts\":1e999,\"flow\":1}",
                                        "{\"ts\":1e30,\"flow\":1}", "", "\"abc\"", "abc",
                                        "1e999" };
        for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
            ad_sample s[16];
            int n = -1, u = 0, rc;
            rc = ad_payload_parse(p[0], "t", whole[i], strlen(whole[i]), 0, s, 16, &n, &u, err,
                                  sizeof err);
            T_CHECK(rc < 0 && n == 0 && err[0], "'%s' refused whole: rc %d %s", whole[i], rc, err);
        }
    }
done:
    ad_payload_parser_free(p[0]);
    ad_payload_parser_free(p[1]);
}

/* A SenML pack of 200 records of the five sensors, one non-finite and one
 * string v among them: 198 values, the two records refused and named. Was:
 * the whole pack refused ("SenML record 57: non-finite value"). */
static void test_refused_senml(void)
{
    ad_payload_cfg c;
    ad_payload_parser *p = NULL;
    ad_sample s[256];
    char err[512], *m = malloc(32768);
    size_t o = 0;
    int n = 0, u = 0, rc, good = 0, nf = 0, nn = 0;

    memset(&c, 0, sizeof c);
    c.format = AD_FMT_SENML;
    c.senml_base = "urn:dev:pump1:";
    T_CHECK(m && ad_payload_parser_new(&p, &c, FEAT5, 5, "x", err, sizeof err) == 0, "%s", err);
    if (!p || !m) goto done;
    o += (size_t)snprintf(m + o, 32768 - o, "[{\"bn\":\"urn:dev:pump1:\",\"bt\":1700000000}");
    for (int i = 0; i < 200; i++)
        o += (size_t)snprintf(m + o, 32768 - o, ",{\"n\":\"%s\",\"t\":%d,\"v\":%s}", FEAT5[i % 5],
                              i / 5, i == 57 ? "1e999" : i == 123 ? "\"abc\"" : "1.25");
    snprintf(m + o, 32768 - o, "]");
    rc = ad_payload_parse(p, "t", m, strlen(m), 0, s, 256, &n, &u, err, sizeof err);
    for (int i = 0; i < n; i++) {
        good += s[i].refused == 0 && s[i].value == 1.25;
        nf += s[i].refused == AD_SAMPLE_NONFINITE && s[i].feature == 57 % 5 &&
              s[i].time == 1700000000.0 + 57 / 5;
        nn += s[i].refused == AD_SAMPLE_NONNUMERIC && s[i].feature == 123 % 5;
    }
    T_CHECK(rc == 0 && n == 200 && good == 198 && nf == 1 && nn == 1 &&
            strstr(err, "2 values refused (missing from this message): SenML record 58 "
                   "(\"urn:dev:pump1:pressure\"): v not finite") &&
            strstr(err, "SenML record 124 (\"urn:dev:pump1:temperature\"): v not a number: \"abc\""),
            "pack of 200: rc %d n %d good %d: %s", rc, n, good, err);
    /* its shape still decides: a record that is not an object, a bad t */
    snprintf(m, 32768, "[{\"n\":\"flow\",\"v\":1},2]");
    rc = ad_payload_parse(p, "t", m, strlen(m), 0, s, 256, &n, &u, err, sizeof err);
    T_CHECK(rc == AD_EFORMAT && n == 0, "record not an object: refused whole: %s", err);
    snprintf(m, 32768, "[{\"n\":\"flow\",\"v\":1},{\"n\":\"current\",\"v\":\"x\",\"t\":\"x\"}]");
    rc = ad_payload_parse(p, "t", m, strlen(m), 0, s, 256, &n, &u, err, sizeof err);
    T_CHECK(rc == AD_EFORMAT && n == 0 && strstr(err, "bad t"), "bad t: refused whole: %s", err);
    /* a null v is no value, as a JSON null: absent, nothing refused */
    snprintf(m, 32768, "[{\"n\":\"flow\",\"v\":1},{\"n\":\"current\",\"v\":null}]");
    rc = ad_payload_parse(p, "t", m, strlen(m), 0, s, 256, &n, &u, err, sizeof err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == 0 && err[0] == '\0',
            "v null: absent, not refused: rc %d n %d %s", rc, n, err);
done:
    free(m);
    ad_payload_parser_free(p);
}

/* ---- the flat-JSON fast path against the cJSON path ------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* Append one generated value: mostly plain numbers, sometimes an edge. */
static void gen_value(char *b, size_t cap)
{
    static const char *edge[] = {
        "0", "-0", "0.0", "1e5", "1E+02", "2.5e-3", "-1.5E-7", "123456789012345678",
        "12345678901234567890123", "0.1", "0.30000000000000004", "9007199254740993",
        "1e22", "1e23", "1e-22", "1e-23", "4.9e-324", "1e-400", "1e400", "-1e999",
        "1.7976931348623157e308", "01", "1.", ".5", "-", "+1", "1e", "1.2.3", "1-2",
        "0x10", "NaN", "Infinity", "null", "true", "false", "\"1.5\"", "\"abc\"",
        "\"nan\"", "\"\"", "\"a\\\"b\"", "{}", "{\"x\":1}", "[1,2]", "[]", "nul",
        "0.000000000000000000000000001234", "1234567.000000000000000000000001",
        "17000000000000", "1700000000123", "3.14159265358979323846264338327950288",
        "1e0000000000000000000000000001", "-9.999999999999999e22",
    };
    if (rnd(3) == 0) {
        snprintf(b, cap, "%s", edge[rnd(sizeof edge / sizeof edge[0])]);
        return;
    }
    switch (rnd(4)) {
    case 0: snprintf(b, cap, "%d", (int)rnd(2000000) - 1000000); break;
    case 1: snprintf(b, cap, "%.*f", (int)rnd(8), ((double)rnd(1u << 30) - (1u << 29)) / (1 + rnd(5000))); break;
    case 2: snprintf(b, cap, "%.*g", 1 + (int)rnd(17), ((double)rnd(1u << 30)) * 1e-3 / (1 + rnd(99))); break;
    default: snprintf(b, cap, "%.17g", ((double)rnd(1u << 30) - (1u << 29)) * 1e-6); break;
    }
}

static void gen_payload(char *b, size_t cap)
{
    static const char *keys[] = { "ts", "vibration", "current", "acc", "flow", "id",
                                  "current", "Current", "ts ", "v\\u0069bration", "" };
    static const char *ws[] = { "", "", "", " ", "\n", "\t", "\r\n ", "\f", "\v" };
    size_t o = 0;
    int members = (int)rnd(7);
    o += (size_t)snprintf(b + o, cap - o, "%s%s", rnd(20) ? "" : "\xef\xbb\xbf", ws[rnd(9)]);
    o += (size_t)snprintf(b + o, cap - o, rnd(40) ? "{" : "[");
    for (int i = 0; i < members && o < cap - 200; i++) {
        char v[96];
        gen_value(v, sizeof v);
        o += (size_t)snprintf(b + o, cap - o, "%s%s\"%s\"%s:%s%s%s", i ? "," : "",
                              ws[rnd(9)], keys[rnd(sizeof keys / sizeof keys[0])],
                              ws[rnd(9)], ws[rnd(9)], v, ws[rnd(9)]);
    }
    o += (size_t)snprintf(b + o, cap - o, "%s", rnd(30) ? "}" : (rnd(2) ? "" : "},"));
    if (!rnd(15))
        o += (size_t)snprintf(b + o, cap - o, "%s", rnd(2) ? " " : " x");
    if (!rnd(15) && o > 0)
        b[rnd((unsigned)o)] = (char)rnd(256);             /* corrupt one byte */
}

static int same_result(ad_payload_parser *p, const char *msg, size_t len, int max,
                       char *why, size_t whylen)
{
    ad_sample s1[8], s2[8];
    char e1[256] = "", e2[256] = "";
    int n1 = -1, n2 = -1, u1 = 0, u2 = 0, r1, r2;
    r1 = ad_payload_parse(p, "t/p1/x", msg, len, 1000.0, s1, max, &n1, &u1, e1, sizeof e1);
    r2 = ad_payload_parse_ref(p, "t/p1/x", msg, len, 1000.0, s2, max, &n2, &u2, e2, sizeof e2);
    if (r1 != r2 || n1 != n2 || u1 != u2 || strcmp(e1, e2)) {
        snprintf(why, whylen, "rc %d/%d n %d/%d unknown %d/%d err \"%s\"/\"%s\"", r1, r2,
                 n1, n2, u1, u2, e1, e2);
        return 0;
    }
    for (int i = 0; i < n1; i++) {
        int same_t = (isnan(s1[i].time) && isnan(s2[i].time)) ||
                     memcmp(&s1[i].time, &s2[i].time, sizeof(double)) == 0;
        if (s1[i].feature != s2[i].feature || !same_t || s1[i].refused != s2[i].refused ||
            memcmp(&s1[i].value, &s2[i].value, sizeof(double)) != 0) {
            snprintf(why, whylen, "sample %d: f %d/%d v %.17g/%.17g t %.17g/%.17g", i,
                     s1[i].feature, s2[i].feature, s1[i].value, s2[i].value,
                     s1[i].time, s2[i].time);
            return 0;
        }
    }
    return 1;
}

static void test_json_fast_path(void)
{
    /* a flat config (fast path on: no dotted path) and a dotted one (off) */
    const char *k[] = { "vibration" }, *v[] = { "acc" }, *v2[] = { "acc.rms" };
    const char *v3[] = { "current" };   /* two features read one field */
    ad_payload_parser *p[4];
    char msg[1024], why[600];
    int bad = 0, n_ok = 0;
    p[0] = mk(AD_FMT_JSON, NULL, NULL, 0, "ts", AD_TS_MS);
    p[1] = mk(AD_FMT_JSON, k, v, 1, "ts", AD_TS_US);
    p[2] = mk(AD_FMT_JSON, k, v2, 1, NULL, 0);
    p[3] = mk(AD_FMT_JSON, k, v3, 1, "ts", AD_TS_MS);
    T_CHECK(p[0] && p[1] && p[2] && p[3], "parsers");
    if (!p[0] || !p[1] || !p[2] || !p[3]) goto done;
    {
        /* the common payload: exact values, time, unknown field counted */
        const char *m = "{\"ts\":1700000000123,\"vibration\":1.32,\"current\":-0.07,"
                        "\"flow\":57.7}";
        ad_sample s[8];
        char err[256];
        int n = 0, u = 0;
        int rc = ad_payload_parse(p[0], "t", m, strlen(m), 0, s, 8, &n, &u, err, sizeof err);
        T_CHECK(rc == 0 && n == 2 && s[0].feature == 0 && s[0].value == 1.32 &&
                s[1].feature == 1 && s[1].value == -0.07 && fabs(s[0].time - 1700000000.123) < 1e-6 &&
                s[1].time == s[0].time && u == 1, "flat payload: rc %d n %d u %d", rc, n, u);
    }
    for (int it = 0; it < 20000; it++) {
        size_t len;
        gen_payload(msg, sizeof msg);
        len = strlen(msg);
        if (rnd(10) == 0 && len > 0)
            len = rnd((unsigned)len);                      /* truncated */
        for (int j = 0; j < 4; j++) {
            int max = rnd(8) == 0 ? 1 : 8;
            if (!same_result(p[j], msg, len, max, why, sizeof why)) {
                if (bad++ < 5)
                    T_NOTE("parser %d, payload \"%.*s\": %s", j, (int)len, msg, why);
            } else if (j == 0) {
                ad_sample s[8];
                char err[256];
                int n = 0;
                n_ok += ad_payload_parse(p[0], "t", msg, len, 0, s, max, &n, NULL, err,
                                         sizeof err) == 0;
            }
        }
    }
    T_CHECK(bad == 0, "fast path and cJSON path agree on 80000 generated payloads "
            "(%d differ)", bad);
    T_NOTE("%d of them parsed without error on the flat config", n_ok);
done:
    for (int j = 0; j < 4; j++)
        ad_payload_parser_free(p[j]);
}

/* payload.h STATUS TEXT: a presence word on a device's data topic (its
 * last will, its birth message) is a status, in any case, bare or quoted;
 * any other short text is what the device sends in place of its data:
 * malformed as before (the stream's `rejected`), never a status that lets
 * a talking device look silent. Was: any short word-like text a status
 * ("error", "ERR 5", "null", "0", "\"21.5\"" ignored); the number format
 * keeps its rule (a word is a refused value). */
static void test_status_text(void)
{
    ad_payload_parser *pj = mk(AD_FMT_JSON, NULL, NULL, 0, NULL, 0);
    ad_payload_parser *ps = mk(AD_FMT_SENML, NULL, NULL, 0, NULL, 0);
    ad_payload_parser *pn = mk(AD_FMT_NUMBER, NULL, NULL, 0, NULL, 0);
    static const char *status[] = { "Offline", "online", "offline\n", " ONLINE ", "\"offline\"",
                                    "\"Online\"", "connected", "Disconnected", "lost", "ready",
                                    "init", "sleeping", "alive", "dead" };
    static const char *bad[] = { "error", "ERR 5", "E", "null", "true", "false", "overrange",
                                 "sensor fault", "unavailable", "\"21.5\"", "0", "1", "\"0\"",
                                 "\"error\"", "connection lost", "alert", "offline!", "off line",
                                 "\"offline", "\"off\\line\"", "offlineoffline", "21.5", "nan",
                                 "ERROR: sensor", "{\"current\":", "-1", "1e5" };
    ad_sample s[16];
    int n, u, rc;
    char err[256];
    size_t i;

    T_CHECK(pj && ps && pn, "parsers");
    if (!pj || !ps || !pn) goto done;
    for (i = 0; i < sizeof status / sizeof status[0]; i++) {
        rc = parse(pj, "t", status[i], s, &n, &u, err);
        T_CHECK(rc == AD_PAYLOAD_STATUS && n == 0 && strstr(err, "status"),
                "json: [%s] a status: rc %d %s", status[i], rc, err);
        rc = parse(ps, "t", status[i], s, &n, &u, err);
        T_CHECK(rc == AD_PAYLOAD_STATUS && n == 0, "senml: [%s] a status: rc %d %s", status[i],
                rc, err);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = parse(pj, "t", bad[i], s, &n, &u, err);
        T_CHECK(rc == AD_EFORMAT && n == 0, "json: [%s] malformed: rc %d %s", bad[i], rc, err);
        rc = parse(ps, "t", bad[i], s, &n, &u, err);
        T_CHECK(rc == AD_EFORMAT && n == 0, "senml: [%s] malformed: rc %d %s", bad[i], rc, err);
    }
    rc = parse(pn, "sensors/p1/current", "Offline", s, &n, &u, err);
    T_CHECK(rc == 0 && n == 1 && s[0].refused == AD_SAMPLE_NONNUMERIC,
            "number: a word is a refused value: rc %d %s", rc, err);
done:
    ad_payload_parser_free(pj);
    ad_payload_parser_free(ps);
    ad_payload_parser_free(pn);
}

int main(void)
{
    T_RUN(test_number);
    T_RUN(test_status_text);
    T_RUN(test_json);
    T_RUN(test_json_array_path);
    T_RUN(test_senml);
    T_RUN(test_senml_base);
    T_RUN(test_bad_fields);
    T_RUN(test_refused_json);
    T_RUN(test_refused_senml);
    T_RUN(test_json_fast_path);
    return t_done();
}
