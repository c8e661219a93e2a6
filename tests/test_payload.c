/* test_payload.c - number, JSON (dotted paths, timestamps) and SenML
 * parsers: samples produced, unknown fields counted, errors. */
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
    T_CHECK(parse(p, "sensors/p1/rpm", "1", s, &n, &u, err) == AD_ENOENT && strstr(err, "rpm"),
            "unknown feature: %s", err);
    T_CHECK(parse(p, "sensors/p1/current", "abc", s, &n, &u, err) == AD_EFORMAT, "text: %s", err);
    T_CHECK(parse(p, "sensors/p1/current", "nan", s, &n, &u, err) == AD_ENONFINITE, "nan: %s", err);
    T_CHECK(parse(p, "sensors/p1/current", "1e999", s, &n, &u, err) == AD_ENONFINITE, "inf: %s", err);
    T_CHECK(parse(p, "sensors/p1/current", "0x10", s, &n, &u, err) == AD_EFORMAT, "hex refused");
    T_CHECK(parse(p, "sensors/p1/current", "", s, &n, &u, err) == AD_EFORMAT, "empty");
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
    T_CHECK(parse(p, "t", "[1,2]", s, &n, &u, err) == AD_EFORMAT, "array");
    T_CHECK(parse(p, "t", "{\"x\":1}", s, &n, &u, err) == AD_ENOENT, "no feature: %s", err);
    T_CHECK(parse(p, "t", "{\"current\":true}", s, &n, &u, err) == AD_EFORMAT &&
            strstr(err, "current"), "bool: %s", err);
    T_CHECK(parse(p, "t", "{\"current\":1e400}", s, &n, &u, err) == AD_ENONFINITE, "inf: %s", err);
    T_CHECK(parse(p, "t", "{\"current\":\"NaN\"}", s, &n, &u, err) == AD_ENONFINITE, "NaN string");
    T_CHECK(parse(p, "t", "{\"current\":1,\"ts\":\"x\"}", s, &n, &u, err) < 0, "bad ts");
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
    T_CHECK(parse(p, "t", "[{\"n\":\"current\",\"v\":\"1\"}]", s, &n, &u, err) == AD_EFORMAT,
            "string v");
    T_CHECK(parse(p, "t", "[{\"n\":\"current\",\"v\":1e308,\"bv\":1e308}]", s, &n, &u, err) ==
            AD_ENONFINITE, "overflowing bv+v: %s", err);
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

int main(void)
{
    T_RUN(test_number);
    T_RUN(test_json);
    T_RUN(test_json_array_path);
    T_RUN(test_senml);
    T_RUN(test_senml_base);
    T_RUN(test_bad_fields);
    return t_done();
}
