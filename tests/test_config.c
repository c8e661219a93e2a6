/* test_config.c - the daemon config: defaults, every kind of error with its
 * JSON path, path resolution, reload rules. */
#include <unistd.h>
#include "t.h"
#include "ad.h"
#include "config.h"

static const char *MIN =
    "{\"detectors\":[{\"name\":\"pump\",\"model\":\"m.safetensors\","
    "\"topics\":[\"sensors/+/data\"]}]}";

/* Parse `json`; return the code and leave the message in err. */
static int parse(const char *json, ad_config **c, char *err, size_t len)
{
    return ad_config_parse(c, json, strlen(json), "/etc/anomalyd/anomalyd.json", err, len);
}

/* Expect failure with exactly the message `want`: the whole message, as the
 * user reads it (prefix checks hid wording that disagreed with the docs). */
static void expect_err(const char *json, const char *want)
{
    ad_config *c = NULL;
    char err[512] = "";
    int rc = parse(json, &c, err, sizeof err);
    T_CHECK(rc < 0 && c == NULL, "accepted: %s", json);
    T_CHECK(strcmp(err, want) == 0, "message\n    '%s', expected\n    '%s'", err, want);
    ad_config_free(c);
}

static void test_defaults(void)
{
    ad_config *c = NULL;
    char err[512] = "";
    int rc = parse(MIN, &c, err, sizeof err);
    T_CHECK(rc == 0, "rc %d: %s", rc, err);
    if (rc) return;
    T_CHECK(strcmp(c->broker.host, "127.0.0.1") == 0, "host %s", c->broker.host);
    T_CHECK(c->broker.port == 1883, "port %d", c->broker.port);
    T_CHECK(c->broker.qos_alerts == 1, "qos_alerts %d", c->broker.qos_alerts);
    T_CHECK(c->broker.clean_session == 0, "persistent session by default");
    T_CHECK(c->broker.tls.verify_hostname == 1, "hostname verification on by default");
    T_CHECK(c->state_retain_days == 90, "state_retain_days %g", c->state_retain_days);
    T_CHECK(c->n_det == 1, "n_det %d", c->n_det);
    T_CHECK(strcmp(c->det[0].model, "/etc/anomalyd/m.safetensors") == 0,
            "model path resolved against the config dir: %s", c->det[0].model);
    T_CHECK(c->det[0].payload.format == AD_FMT_JSON, "json by default");
    T_CHECK(c->det[0].pipe.stream.mode == AD_ASM_ROWS, "auto -> rows for json");
    T_CHECK(c->det[0].pipe.hop == 1, "hop %d", c->det[0].pipe.hop);
    T_CHECK(c->det[0].stream_levels.n == 1 && c->det[0].stream_levels.v[0] == 1,
            "stream key from level 1");
    T_CHECK(strcmp(c->det[0].alert_topic, "anomalyd/alerts/{detector}/{stream}") == 0,
            "alert topic %s", c->det[0].alert_topic);
    ad_config_free(c);
}

static void test_full(void)
{
    const char *j =
        "{\"broker\":{\"host\":\"mq.example\",\"port\":8883,\"protocol\":5,"
        "\"clean_session\":true,\"qos_alerts\":2,\"username\":\"ad\","
        "\"password_file\":\"/dev/null\",\"tls\":{\"enabled\":true,"
        "\"ca_file\":\"/dev/null\"}},"
        "\"state_dir\":\"/tmp\",\"max_payload_bytes\":1024,"
        "\"detectors\":[{\"name\":\"a\",\"model\":\"/m\",\"topics\":\"x/+/#\","
        "\"stream_levels\":[1,-1],\"payload\":{\"format\":\"number\","
        "\"feature_level\":2},\"rows\":{\"mode\":\"period\",\"period_ms\":500},"
        "\"window\":{\"hop\":10},\"score\":{\"metric\":\"mse\"},"
        "\"calibration\":{\"method\":\"pot\",\"windows\":50},"
        "\"alert\":{\"k\":2,\"n\":4,\"m\":3,\"topic\":\"al/{stream}\"},"
        "\"training\":{\"mode\":\"finetune\",\"windows\":100}},"
        "{\"name\":\"b\",\"model\":\"/m2\",\"topics\":[\"y/#\"],"
        "\"score\":{\"metric\":\"peak\",\"normalize\":\"feature\"},"
        "\"payload\":{\"format\":\"senml\",\"fields\":{\"temp\":\"t\"}}}]}";
    ad_config *c = NULL;
    char err[512] = "";
    int rc = parse(j, &c, err, sizeof err);
    T_CHECK(rc == 0, "rc %d: %s", rc, err);
    if (rc) return;
    T_CHECK(c->broker.protocol == AD_PROTO_5, "protocol 5 as a number");
    T_CHECK(c->broker.tls.enabled && strcmp(c->broker.tls.ca_file, "/dev/null") == 0, "tls");
    T_CHECK(c->det[0].topics.n == 1, "single string is a list of one");
    T_CHECK(c->det[0].pipe.stream.mode == AD_ASM_PERIOD && c->det[0].pipe.stream.period_ms == 500,
            "period mode");
    T_CHECK(c->det[0].pipe.hop == 10 && c->det[0].pipe.metric == AD_METRIC_MSE, "window/score");
    T_CHECK(c->det[1].pipe.metric == AD_METRIC_PEAK, "score.metric peak");
    T_CHECK(c->det[1].pipe.normalize == AD_NORM_FEATURE && c->det[0].pipe.normalize == AD_NORM_NONE,
            "score.normalize feature, default none");
    T_CHECK(c->det[0].pipe.thr.method == AD_THR_POT && c->det[0].pipe.calib_windows == 50,
            "calibration");
    T_CHECK(c->det[0].pipe.alert.k == 2 && c->det[0].pipe.alert.n == 4, "alert");
    T_CHECK(c->det[0].pipe.training == AD_TRAIN_FINETUNE, "training");
    T_CHECK(c->det[1].pipe.stream.mode == AD_ASM_ALL, "auto -> all for senml");
    T_CHECK(c->det[1].payload.fields.n == 1 &&
            strcmp(c->det[1].payload.fields.val[0], "t") == 0, "fields map");
    ad_config_free(c);
}

static void test_errors(void)
{
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"]},"
               "{\"name\":\"b\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"payload\":{\"format\":\"xml\"}}]}",
               "detectors[1].payload.format: unknown value \"xml\" (expected number|json|senml)");
    expect_err("{\"broker\":{\"prot\":1},\"detectors\":[]}", 
               "broker.prot: unknown key (expected host|port|client_id|keepalive|protocol|"
               "clean_session|qos_subscribe|qos_alerts|username|password_file|tls|"
               "reconnect_min_s|reconnect_max_s|status_topic|stats_topic|stats_interval_s|"
               "max_queued_alerts)");
    expect_err("{\"broker\":{\"password\":\"x\"},\"detectors\":[]}", 
               "broker.password: not allowed: put the password in a file and name it in "
               "password_file");
    expect_err("{\"broker\":{\"port\":70000}}", "broker.port: 70000 out of range [1, 65535]");
    expect_err("{\"state_retain_days\":-1}", "state_retain_days: -1 out of range [0, 36500]");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"enabled\":true,\"shadow_windows\":5}}]}",
               "detectors[0]: adapt.shadow_windows (5) is fewer than the 10 windows a "
               "candidate's threshold is fitted on (calibration.min_samples)");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"calibration\":{\"method\":\"pot\"},"
               "\"adapt\":{\"enabled\":true,\"shadow_windows\":100}}]}",
               "detectors[0]: adapt.shadow_windows (100) is fewer than the 250 windows a "
               "candidate's threshold is fitted on (calibration.min_samples, pot_init)");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"alert\":{\"accept_after\":480,\"accept_after_ms\":28800000}}]}",
               "detectors[0]: alert.accept_after_ms (28800000) and alert.accept_after (480): "
               "set one of them");
    expect_err("{\"broker\":{\"port\":\"1883\"}}", "broker.port: expected an integer, got a string");
    expect_err("{\"broker\":{\"keepalive\":1.5}}", "broker.keepalive: expected an integer, got 1.5");
    expect_err("{}", "detectors: missing (required)");
    expect_err("{\"detectors\":[]}", "detectors: at least one detector is needed");
    expect_err("{\"detectors\":[{\"model\":\"m\",\"topics\":[\"t\"]}]}", "detectors[0].name: missing (required)");
    expect_err("{\"detectors\":[{\"name\":\"a b\",\"model\":\"m\",\"topics\":[\"t\"]}]}",
               "detectors[0].name: \"a b\": use 1-64 characters A-Z a-z 0-9 _ -");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"]},"
               "{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"]}]}",
               "detectors[1].name: \"a\" already used by detectors[0]");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t/#/x\"]}]}",
               "detectors[0].topics[0]: \"t/#/x\": '#' must be the whole last level");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"alert\":{\"topic\":\"x/{device}\"}}]}", 
               "detectors[0].alert.topic: \"x/{device}\": unknown placeholder "
               "(expected {detector} or {stream})");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"window\":{\"hop\":0}}]}", "detectors[0].window.hop: 0 out of range [1, 1000000]");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"score\":{\"normalize\":\"max\"}}]}",
               "detectors[0].score.normalize: unknown value \"max\" (expected none|feature|feature_rms)");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"score\":{\"normalize\":\"feature\"},"
               "\"calibration\":{\"method\":\"fixed\",\"fixed\":2}}]}",
               "detectors[0]: score.normalize \"feature\": the per-feature scales are learned "
               "in calibration, which threshold method fixed does not run; use quantile, sigma "
               "or pot, or score.normalize \"none\"");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"calibration\":{\"season_ms\":50}}]}",
               "detectors[0]: calibration.season_ms: must be 0 (off) or 96 .. 1e12 (got 50)");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"calibration\":{\"season_ms\":86400000},\"alert\":{\"on\":\"probability\"}}]}",
               "detectors[0]: calibration.season_ms: the seasonal level is a score level and "
               "alert.on \"probability\" judges probabilities; set calibration.season_ms 0 or "
               "alert.on \"score\"");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"payload\":{\"format\":\"number\"},\"rows\":{\"mode\":\"rows\"}}]}",
               
               "detectors[0].rows.mode: \"rows\" needs payload.format json (a message per row)");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"topics\":[\"t\"]}]}", 
               "detectors[0].model: missing (required unless training.mode is bootstrap)");
    expect_err("{\"broker\":{\"tls\":{\"cert_file\":\"/dev/null\"}},\"detectors\":[{\"name\":\"a\","
               "\"model\":\"m\",\"topics\":[\"t\"]}]}", 
               "broker.tls.key_file: missing (cert_file and key_file go together)");
    expect_err("{\"broker\":{\"username\":\"u\",\"password_file\":\"/nonexistent/pw\"},"
               "\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"]}]}",
               "broker.password_file: /nonexistent/pw: No such file or directory");
    expect_err("{\"state_dir\":\"/tmp\",\"state_dir\":\"/x\"}", "state_dir: duplicate key");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"calibration\":{\"method\":\"fixed\"}}]}", 
               "detectors[0].calibration.fixed: must be > 0 with method fixed");
    expect_err("{\"detectors\": [", "invalid JSON at line 1 column 15");
    /* a second object after the first (two files run together) */
    expect_err("{\"detectors\":[]}\n {\"state_dir\":\"/x\"}",
               "invalid JSON at line 2 column 2: text after the end of the configuration object");
    expect_err("{\"detectors\":[]} xx",
               "invalid JSON at line 1 column 18: text after the end of the configuration object");
    expect_err("[1]", "(root): expected an object");
}

/* The examples in docs/config.md's "Errors" section are what the parser
 * prints for those inputs, word for word. */
/* The continual learner's window counts as data time: a day of normal
 * windows in ms reaches the library (counts left at their defaults), 0 is
 * unset; a setting given both ways is refused naming both keys (the count
 * has a default, so the parser looks at the keys); min against normal when
 * both are in data time. */
static void test_adapt_data_time(void)
{
    ad_config *c = NULL;
    char err[512] = "";
    int rc = parse("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
                   "\"adapt\":{\"enabled\":true,\"normal_ms\":86400000,\"min_ms\":43200000,"
                   "\"margin_ms\":3600000,\"shadow_ms\":86400000,\"normal_windows\":0}}]}",
                   &c, err, sizeof err);
    T_CHECK(rc < 0 && strstr(err, "adapt.normal_windows: 0 out of range"),
            "a count of 0 is still out of range: %s", err);
    ad_config_free(c);
    c = NULL;
    rc = parse("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"enabled\":true,\"normal_ms\":86400000,\"min_ms\":43200000,"
               "\"margin_ms\":3600000,\"shadow_ms\":86400000,\"min_windows\":900,"
               "\"min_ms\":0}}]}", &c, err, sizeof err);
    T_CHECK(rc == AD_EINVAL && strcmp(err, "detectors[0].adapt.min_ms: duplicate key") == 0,
            "%s", err);
    ad_config_free(c);
    c = NULL;
    rc = parse("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"enabled\":true,\"normal_ms\":86400000,\"min_windows\":900,"
               "\"margin_ms\":3600000,\"shadow_ms\":86400000,\"min_ms\":0}}]}",
               &c, err, sizeof err);
    T_CHECK(rc == 0, "data time, min as a count (900, more than the default normal_windows "
            "500) and min_ms 0: %s", err);
    if (rc == 0) {
        const ad_adapt_cfg *a = &c->det[0].pipe.adapt;
        T_CHECK(a->normal_ms == 86400000 && a->min_ms == 0 && a->margin_ms == 3600000 &&
                a->shadow_ms == 86400000 && a->min_windows == 900 && a->normal_windows == 500,
                "parsed: normal_ms %lld, margin_ms %lld, shadow_ms %lld, min_windows %d",
                (long long)a->normal_ms, (long long)a->margin_ms, (long long)a->shadow_ms,
                a->min_windows);
    }
    ad_config_free(c);
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"normal_windows\":1440,\"normal_ms\":86400000}}]}",
               "detectors[0]: adapt.normal_ms (86400000) and adapt.normal_windows (1440): "
               "set one of them");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"]},"
               "{\"name\":\"b\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"shadow_ms\":3600000,\"shadow_windows\":500}}]}",
               "detectors[1]: adapt.shadow_ms (3600000) and adapt.shadow_windows (500): "
               "set one of them");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"margin\":50,\"margin_ms\":60000}}]}",
               "detectors[0]: adapt.margin_ms (60000) and adapt.margin (50): set one of them");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"min_windows\":100,\"min_ms\":60000}}]}",
               "detectors[0]: adapt.min_ms (60000) and adapt.min_windows (100): set one of them");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"enabled\":true,\"normal_ms\":3600000,\"min_ms\":7200000}}]}",
               "detectors[0]: adapt.min_ms: must be in 0..adapt.normal_ms (3600000) (got "
               "7200000)");
    expect_err("{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
               "\"adapt\":{\"shadow_ms\":31622400001}}]}",
               "detectors[0].adapt.shadow_ms: 31622400001 out of range [0, 31622400000]");
}

static void test_doc_errors(void)
{
    static const char *inputs[] = {
        "{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"]},"
        "{\"name\":\"b\",\"model\":\"m\",\"topics\":[\"t\"],"
        "\"payload\":{\"format\":\"xml\"}}]}",
        "{\"broker\":{\"password\":\"x\"},\"detectors\":[]}",
        "{\"detectors\":[{\"name\":\"a\",\"model\":\"m\",\"topics\":[\"t\"],"
        "\"window\":{\"hop\":0}}]}",
    };
    const char *dir = getenv("AD_SRCDIR");
    char path[1024], line[600], err[512];
    char *doc = NULL;
    size_t cap = 0, len = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/docs/config.md", dir ? dir : ".");
    f = fopen(path, "r");
    T_CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    for (;;) {
        if (len + 4096 > cap && !(doc = realloc(doc, cap = cap * 2 + 8192))) break;
        size_t n = fread(doc + len, 1, cap - len - 1, f);
        if (n == 0) break;
        len += n;
    }
    fclose(f);
    T_CHECK(doc != NULL, "out of memory");
    if (!doc) return;
    doc[len] = '\0';
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        ad_config *c = NULL;
        err[0] = '\0';
        parse(inputs[i], &c, err, sizeof err);
        ad_config_free(c);
        snprintf(line, sizeof line, "\nanomalyd.json: %s\n", err);
        T_CHECK(strstr(doc, line) != NULL, "docs/config.md lacks the message%s", line);
    }
    free(doc);
}

static void test_reload(void)
{
    const char *b = "{\"broker\":{\"port\":1884},\"detectors\":[{\"name\":\"pump\","
                    "\"model\":\"m.safetensors\",\"topics\":[\"sensors/+/data\"]}]}";
    const char *h = "{\"state_retain_days\":0.5,"
                    "\"detectors\":[{\"name\":\"pump\",\"model\":\"m.safetensors\","
                    "\"topics\":[\"sensors/+/data\"],\"window\":{\"hop\":5}}]}";
    ad_config *c0 = NULL, *c1 = NULL, *c2 = NULL;
    char err[512] = "";
    T_CHECK(parse(MIN, &c0, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(b, &c1, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(h, &c2, err, sizeof err) == 0, "%s", err);
    if (!c0 || !c1 || !c2) goto out;
    T_CHECK(ad_config_reload_ok(c0, c1, err, sizeof err) < 0 &&
            strncmp(err, "broker.port:", 12) == 0, "port change refused: %s", err);
    T_CHECK(ad_config_reload_ok(c0, c2, err, sizeof err) == 0,
            "hop and state_retain_days changes allowed: %s", err);
    T_CHECK(ad_detconf_same_pipeline(&c0->det[0], &c1->det[0]), "same pipeline");
    T_CHECK(!ad_detconf_same_pipeline(&c0->det[0], &c2->det[0]), "hop differs");
out:
    ad_config_free(c0); ad_config_free(c1); ad_config_free(c2);
}

/* quality.ranges: physical ranges by feature name, open-ended sides, the
 * library's borrowed arrays pointing at them, every error with its path,
 * and a change is a pipeline change a reload may make. (Feature names are
 * checked against the model when it is loaded: it_daemon_ranges.sh.) */
#define RDET "{\"detectors\":[{\"name\":\"pump\",\"model\":\"m.safetensors\"," \
             "\"topics\":[\"sensors/+/data\"],\"quality\":{\"ranges\":"
static void test_ranges(void)
{
    const char *ok = RDET "{\"pressure\":[0,16],\"temp\":[-40,null],"
                     "\"flow\":[null,2.5]}}}]}";
    const char *wide = RDET "{\"pressure\":[0,20],\"temp\":[-40,null],"
                       "\"flow\":[null,2.5]}}}]}";
    ad_config *c0 = NULL, *c1 = NULL, *c2 = NULL, *c3 = NULL;
    const ad_detector_cfg *p;
    char err[512] = "";

    T_CHECK(parse(ok, &c1, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(ok, &c2, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(wide, &c3, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(MIN, &c0, err, sizeof err) == 0, "%s", err);
    if (!c0 || !c1 || !c2 || !c3) goto out;
    p = &c1->det[0].pipe;
    T_CHECK(p->dq_n_ranges == 3 && p->dq_range_names && p->dq_range_lo && p->dq_range_hi,
            "3 ranges handed to the library (%d)", p->dq_n_ranges);
    if (p->dq_n_ranges == 3) {
        T_CHECK(!strcmp(p->dq_range_names[0], "pressure") && p->dq_range_lo[0] == 0 &&
                p->dq_range_hi[0] == 16, "pressure 0..16");
        T_CHECK(!strcmp(p->dq_range_names[1], "temp") && p->dq_range_lo[1] == -40 &&
                isnan(p->dq_range_hi[1]), "temp -40..none");
        T_CHECK(!strcmp(p->dq_range_names[2], "flow") && isnan(p->dq_range_lo[2]) &&
                p->dq_range_hi[2] == 2.5, "flow none..2.5");
    }
    T_CHECK(c0->det[0].pipe.dq_n_ranges == 0, "none by default");
    T_CHECK(ad_detconf_same_pipeline(&c1->det[0], &c2->det[0]), "the same ranges: same pipeline");
    T_CHECK(!ad_detconf_same_pipeline(&c1->det[0], &c3->det[0]), "a wider range: another pipeline");
    T_CHECK(!ad_detconf_same_pipeline(&c0->det[0], &c1->det[0]), "ranges added: another pipeline");
    T_CHECK(ad_config_reload_ok(c1, c3, err, sizeof err) == 0 &&
            ad_config_reload_ok(c0, c1, err, sizeof err) == 0, "a reload may change them: %s", err);

    expect_err(RDET "[[0,1]]}}]}", "detectors[0].quality.ranges: expected an object of "
               "feature: [min, max], got an array");
    expect_err(RDET "{\"pressure\":16}}}]}", "detectors[0].quality.ranges.pressure: expected "
               "[min, max] (a number or null each), got a number");
    expect_err(RDET "{\"pressure\":[0]}}}]}", "detectors[0].quality.ranges.pressure: expected "
               "[min, max] (a number or null each), got an array of 1 item");
    expect_err(RDET "{\"pressure\":[0,1,2]}}}]}", "detectors[0].quality.ranges.pressure: "
               "expected [min, max] (a number or null each), got an array of other than 2 items");
    expect_err(RDET "{\"pressure\":[\"0\",16]}}}]}", "detectors[0].quality.ranges.pressure[0]: "
               "expected a number or null (no lower limit), got a string");
    expect_err(RDET "{\"pressure\":[0,true]}}}]}", "detectors[0].quality.ranges.pressure[1]: "
               "expected a number or null (no upper limit), got a boolean");
    expect_err(RDET "{\"pressure\":[0,1e999]}}}]}", "detectors[0].quality.ranges.pressure[1]: "
               "not a finite number (null: no upper limit)");
    expect_err(RDET "{\"pressure\":[16,0]}}}]}", "detectors[0].quality.ranges.pressure: "
               "min 16 is not less than max 0");
    expect_err(RDET "{\"pressure\":[5,5]}}}]}", "detectors[0].quality.ranges.pressure: "
               "min 5 is not less than max 5");
    expect_err(RDET "{\"pressure\":[null,null]}}}]}", "detectors[0].quality.ranges.pressure: "
               "[null, null] sets no limit (remove the entry)");
    expect_err(RDET "{\"pressure\":[0,1],\"pressure\":[0,2]}}}]}",
               "detectors[0].quality.ranges.pressure: duplicate key");
    expect_err(RDET "{\"\":[0,1]}}}]}", "detectors[0].quality.ranges: empty feature name");
out:
    ad_config_free(c0); ad_config_free(c1); ad_config_free(c2); ad_config_free(c3);
}

/* The Kafka topics consumed cannot change by a reload (the subscription is
 * made at start); they may move between detectors; alerts_to may change. */
static void test_reload_kafka(void)
{
#define KC "{\"kafka\":{\"bootstrap_servers\":\"127.0.0.1:9092\"},\"detectors\":["
#define KD(name, topics, to) "{\"name\":\"" name "\",\"model\":\"m.safetensors\"," \
                             "\"kafka_topics\":[" topics "],\"alerts_to\":\"" to "\"}"
    const char *v[] = {
        KC KD("a", "\"in\"", "mqtt") "]}",
        KC KD("a", "\"in\"", "both") "]}",                            /* alerts_to */
        KC KD("a", "\"in\"", "mqtt") "," KD("b", "\"in\"", "mqtt") "]}", /* shared */
        KC KD("b", "\"in\"", "kafka") "]}",                           /* moved */
        KC KD("a", "\"in\",\"in2\"", "mqtt") "]}",                    /* added */
        KC KD("a", "\"in2\"", "mqtt") "]}",                           /* replaced */
    };
    ad_config *c[6] = { 0 };
    char err[512] = "";
    for (int i = 0; i < 6; i++)
        T_CHECK(parse(v[i], &c[i], err, sizeof err) == 0, "config %d: %s", i, err);
    if (!c[0] || !c[1] || !c[2] || !c[3] || !c[4] || !c[5]) goto out;
    for (int i = 1; i <= 3; i++) {
        err[0] = '\0';
        T_CHECK(ad_config_reload_ok(c[0], c[i], err, sizeof err) == 0,
                "reload %d allowed: %s", i, err);
    }
    T_CHECK(ad_config_reload_ok(c[0], c[4], err, sizeof err) < 0 &&
            strstr(err, "detectors[0].kafka_topics: Kafka topic \"in2\" is new"),
            "a new topic refused: %s", err);
    T_CHECK(ad_config_reload_ok(c[4], c[0], err, sizeof err) < 0 &&
            strstr(err, "Kafka topic \"in2\" (of detector a) is no longer consumed"),
            "a topic no longer consumed refused: %s", err);
    T_CHECK(ad_config_reload_ok(c[0], c[5], err, sizeof err) < 0 && strstr(err, "\"in2\""),
            "a replaced topic refused: %s", err);
out:
    for (int i = 0; i < 6; i++)
        ad_config_free(c[i]);
#undef KC
#undef KD
}

/* kafka.row_time: "record" by default, "arrival" on request, nothing else;
 * a reload cannot change it (the streams' times would change clocks). */
static void test_kafka_row_time(void)
{
#define KR(rt) "{\"kafka\":{\"bootstrap_servers\":\"127.0.0.1:9092\"" rt "},\"detectors\":[" \
               "{\"name\":\"a\",\"model\":\"m.safetensors\",\"kafka_topics\":[\"in\"]}]}"
    ad_config *c0 = NULL, *c1 = NULL, *c2 = NULL;
    char err[512] = "";
    T_CHECK(parse(KR(""), &c0, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(KR(",\"row_time\":\"arrival\""), &c1, err, sizeof err) == 0, "%s", err);
    T_CHECK(parse(KR(",\"row_time\":\"payload\""), &c2, err, sizeof err) < 0 &&
            strstr(err, "kafka.row_time") && strstr(err, "record|arrival"),
            "an unknown row_time refused, naming the key and the choices: %s", err);
    if (!c0 || !c1) goto out;
    T_CHECK(c0->kafka.row_time == AD_KROW_RECORD, "default: the record's timestamp");
    T_CHECK(c1->kafka.row_time == AD_KROW_ARRIVAL, "arrival");
    T_CHECK(ad_config_reload_ok(c0, c1, err, sizeof err) < 0 &&
            strncmp(err, "kafka.row_time:", 15) == 0, "a reload cannot change it: %s", err);
out:
    ad_config_free(c0); ad_config_free(c1); ad_config_free(c2);
#undef KR
}

static void test_file(void)
{
    char err[512] = "";
    ad_config *c = NULL;
    char src[1024];
    const char *dir = getenv("AD_SRCDIR");
    snprintf(src, sizeof src, "%s/conf/anomalyd.json", dir ? dir : ".");
    int rc = ad_config_load(&c, src, err, sizeof err);
    T_CHECK(rc == 0, "the shipped config parses: %s", err);
    ad_config_free(c);
    rc = ad_config_load(&c, "/nonexistent/x.json", err, sizeof err);
    T_CHECK(rc == AD_ENOENT && strstr(err, "/nonexistent/x.json"), "missing file: %s", err);
    char *doc = ad_config_doc();
    T_CHECK(doc && strstr(doc, "`detectors[].payload.format`"), "doc table");
    free(doc);
}

int main(void)
{
    T_RUN(test_defaults);
    T_RUN(test_full);
    T_RUN(test_errors);
    T_RUN(test_adapt_data_time);
    T_RUN(test_doc_errors);
    T_RUN(test_reload);
    T_RUN(test_reload_kafka);
    T_RUN(test_ranges);
    T_RUN(test_kafka_row_time);
    T_RUN(test_file);
    return t_done();
}
