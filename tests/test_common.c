/* test_common.c - the shared helpers of lib/ad.c (whole-file reading that
 * refuses FIFOs, directories and oversized files without blocking; atomic
 * writing and what its errors name; the string builder; the FNV hash; a
 * JSON text parsed whole) and the single source of pipeline defaults (the
 * config's detector defaults are the library's). */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "t.h"
#include "ad.h"
#include "config.h"
#include <cJSON.h>

static char dir[] = "/tmp/test_common.XXXXXX";

static void test_read_file(void)
{
    char path[256], fifo[256], err[256];
    void *buf = NULL;
    size_t len = 0;
    FILE *f;
    int rc;

    snprintf(path, sizeof path, "%s/a.txt", dir);
    f = fopen(path, "w");
    fputs("hello\nworld", f);
    fclose(f);
    rc = ad_read_file(path, 100, &buf, &len, err, sizeof err);
    T_CHECK(rc == 0 && len == 11 && memcmp(buf, "hello\nworld", 12) == 0,
            "regular file read, NUL-terminated (rc %d)", rc);
    free(buf);
    buf = NULL;
    rc = ad_read_file(path, 10, &buf, &len, err, sizeof err);
    T_CHECK(rc == AD_ERANGE && buf == NULL, "over the limit refused (rc %d)", rc);
    {
        char exp[300];
        snprintf(exp, sizeof exp, "%s: file is 11 bytes, larger than the limit 10", path);
        T_CHECK(strcmp(err, exp) == 0, "message '%s'", err);
    }
    /* a FIFO with no writer: open() would block without O_NONBLOCK */
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    T_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    alarm(10);          /* a hang fails the test instead of blocking make test */
    rc = ad_read_file(fifo, 100, &buf, &len, err, sizeof err);
    alarm(0);
    {
        char exp[300];
        snprintf(exp, sizeof exp, "%s: not a regular file (a FIFO)", fifo);
        T_CHECK(rc == AD_EINVAL && strcmp(err, exp) == 0, "FIFO refused: rc %d '%s'", rc, err);
    }
    rc = ad_read_file(dir, 100, &buf, &len, err, sizeof err);
    {
        char exp[300];
        snprintf(exp, sizeof exp, "%s: not a regular file (a directory)", dir);
        T_CHECK(rc == AD_EINVAL && strcmp(err, exp) == 0, "directory refused: '%s'", err);
    }
    snprintf(path, sizeof path, "%s/missing", dir);
    rc = ad_read_file(path, 100, &buf, &len, err, sizeof err);
    {
        char exp[300];
        snprintf(exp, sizeof exp, "%s: No such file or directory", path);
        T_CHECK(rc == AD_ENOENT && strcmp(err, exp) == 0, "missing file: '%s'", err);
    }
    unlink(fifo);
    snprintf(path, sizeof path, "%s/a.txt", dir);
    unlink(path);
}

/* The config loader and the password reader go through ad_read_file too. */
static void test_config_fifo(void)
{
    char fifo[256], err[512], exp[600];
    ad_config *c = NULL;
    char *pw = NULL;
    int rc;

    snprintf(fifo, sizeof fifo, "%s/conf.json", dir);
    T_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    alarm(10);
    rc = ad_config_load(&c, fifo, err, sizeof err);
    snprintf(exp, sizeof exp, "%s: not a regular file (a FIFO)", fifo);
    T_CHECK(rc < 0 && c == NULL && strcmp(err, exp) == 0, "config FIFO: '%s'", err);
    rc = ad_config_read_password(fifo, &pw, err, sizeof err);
    alarm(0);
    T_CHECK(rc < 0 && pw == NULL && strcmp(err, exp) == 0, "password FIFO: '%s'", err);
    unlink(fifo);
}

static void test_buf_and_hash(void)
{
    ad_buf b = { 0 };
    char big[3000];

    ad_buf_puts(&b, "a");
    ad_buf_printf(&b, "%d-%s", 42, "x");
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ad_buf_puts(&b, big);
    T_CHECK(!b.oom && b.len == 5 + 2999 && strncmp(b.s, "a42-xzz", 7) == 0 &&
            b.s[b.len] == '\0', "builder: len %zu", b.len);
    ad_buf_free(&b);
    /* FNV-1a 64 reference values (Fowler/Noll/Vo test vectors) */
    T_CHECK(ad_fnv1a64_str("") == 0xcbf29ce484222325ull, "fnv('')");
    T_CHECK(ad_fnv1a64_str("a") == 0xaf63dc4c8601ec8cull, "fnv('a') = %llx",
            (unsigned long long)ad_fnv1a64_str("a"));
    T_CHECK(ad_fnv1a64_str("foobar") == 0x85944171f73967e8ull, "fnv('foobar')");
}

/* ad_json_member_span: the value's bytes of a top-level member, strings
 * (with escaped quotes and brackets) and nesting skipped; what is not an
 * object or does not close refused. */
static void test_json_member_span(void)
{
    static const struct { const char *text, *name, *want; int rc; } c[] = {
        { "{\"topic\":\"in\",\"state\":{\"a\":[1,2,{\"b\":\"}]\\\"\"}]},\"x\":1}", "state",
          "{\"a\":[1,2,{\"b\":\"}]\\\"\"}]}", 0 },
        { " { \"s\" : 1.5e3 , \"state\" : null } ", "state", "null", 0 },
        { "{\"state\":\"a,b\"}", "state", "\"a,b\"", 0 },
        { "{\"a\":{\"state\":1},\"b\":2}", "state", NULL, AD_ENOENT },
        { "{}", "state", NULL, AD_ENOENT },
        { "{\"topic\":\"in\",\"state\":{\"a\":[1,2", "state", NULL, AD_EINVAL },
        { "{\"topic\":\"in\",\"sta", "state", NULL, AD_EINVAL },
        { "[1,2]", "state", NULL, AD_EINVAL },
        { "{\"a\" 1}", "state", NULL, AD_EINVAL },
        /* keys as cJSON reads them (found by fuzz_state_record): an escaped
         * key is the member a parse gives, the first of two */
        { "{\"st\\u0061te\":1,\"state\":2}", "state", "1", 0 },
        { "{\"s\\\"tate\":1,\"state\":2}", "state", "2", 0 },
        { "{\"s\":\"\\\\\",\"state\":[]}", "state", "[]", 0 },
        /* white space as cJSON skips it, a UTF-8 BOM */
        { "\xef\xbb\xbf{\x01\"state\"\x1f:\x02true\x03}", "state", "true", 0 },
        { "{\"state\":\"ab\\", "state", NULL, AD_EINVAL },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        size_t a = 0, b = 0;
        int rc = ad_json_member_span(c[i].text, strlen(c[i].text), c[i].name, &a, &b);
        T_CHECK(rc == c[i].rc && (rc != 0 || (b - a == strlen(c[i].want) &&
                memcmp(c[i].text + a, c[i].want, b - a) == 0)),
                "member span %zu: rc %d, '%.*s'", i, rc, (int)(b - a), c[i].text + a);
    }
    {   /* any depth, without recursion */
        size_t n = 200000, a = 0, b = 0;
        char *t = malloc(2 * n + 11);
        T_CHECK(t != NULL, "malloc");
        if (t) {
            memcpy(t, "{\"state\":", 9);
            memset(t + 9, '[', n);
            memset(t + 9 + n, ']', n);
            t[9 + 2 * n] = '}';
            T_CHECK(ad_json_member_span(t, 2 * n + 10, "state", &a, &b) == 0 && a == 9 &&
                    b == 9 + 2 * n, "member span of depth %zu: [%zu, %zu)", n, a, b);
            T_CHECK(ad_json_member_span(t, 2 * n + 9, "state", &a, &b) == 0 &&
                    ad_json_member_span(t, 2 * n + 8, "state", &a, &b) == AD_EINVAL,
                    "member span of depth %zu, truncated", n);
            free(t);
        }
    }
}

/* A detector that states nothing gets exactly ad_detector_cfg_default()
 * (the daemon and replay run the same pipeline), except the row mode,
 * which the config resolves from the payload format (auto), and the name
 * the config lends its log lines. */
static void test_one_set_of_defaults(void)
{
    static const char *json =
        "{\"detectors\":[{\"name\":\"p\",\"model\":\"m.safetensors\","
        "\"topics\":[\"s/#\"]}]}";
    ad_config *c = NULL;
    ad_detector_cfg lib, conf;
    char err[512] = "";
    int rc = ad_config_parse(&c, json, strlen(json), NULL, err, sizeof err);

    T_CHECK(rc == 0, "parse: %s", err);
    if (rc)
        return;
    ad_detector_cfg_default(&lib);
    conf = c->det[0].pipe;
    T_CHECK(conf.stream.mode == AD_ASM_ROWS, "auto row mode for json: rows");
    conf.stream.mode = lib.stream.mode;
    T_CHECK(conf.name && strcmp(conf.name, "p") == 0, "the detector's name, for its log lines");
    conf.name = lib.name;       /* borrowed from the config; none in the library */
    T_CHECK(memcmp(&lib, &conf, sizeof lib) == 0, "config defaults = library defaults");
    T_CHECK(lib.calib_windows == 200 && lib.thr.margin == 1.5 && lib.alert.k == 3 &&
            lib.alert.n == 5 && lib.alert.m == 10 && lib.alert.clear_ratio == 0.8,
            "the documented defaults: 200 windows, margin 1.5, 3 of 5, 10 below 0.8");
    ad_config_free(c);
}

/* ad_write_file_atomic never writes through a planted link (the old fixed
 * temp name path.tmp.PID, or any other), and ad_clean_tmp_files removes
 * leftover temp files but no link and no other file. */
static void test_atomic_write_links(void)
{
    char path[300], link[340], victim[300], left[340], other[300], err[300], *txt = NULL;
    int rc;

    snprintf(path, sizeof path, "%s/s.state.json", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(link, sizeof link, "%s.tmp.%ld", path, (long)getpid());
    T_CHECK(ad_write_file_atomic(victim, "keep", 4, err, sizeof err) == 0, "%s", err);
    T_CHECK(symlink(victim, link) == 0, "symlink planted");
    rc = ad_write_file_atomic(path, "new", 3, err, sizeof err);
    T_CHECK(rc == 0, "written: %s", err);
    T_CHECK(ad_read_text(victim, 100, &txt, err, sizeof err) == 0 && strcmp(txt, "keep") == 0,
            "the link's target is untouched (%s)", txt ? txt : "?");
    free(txt);
    txt = NULL;
    T_CHECK(ad_read_text(path, 100, &txt, err, sizeof err) == 0 && strcmp(txt, "new") == 0,
            "the file has the new content");
    free(txt);
    snprintf(left, sizeof left, "%s" AD_TMP_MARK "123.abc", path);
    snprintf(other, sizeof other, "%s/x" AD_TMP_MARK "1", dir);
    T_CHECK(symlink(victim, other) == 0, "a link with the mark");
    {
        FILE *f = fopen(left, "w");
        if (f) fclose(f);
    }
    T_CHECK(ad_clean_tmp_files(dir) == 1, "one leftover removed");
    T_CHECK(access(left, F_OK) != 0 && access(victim, F_OK) == 0 && access(path, F_OK) == 0,
            "the leftover is gone, the files stay");
    unlink(other);
    unlink(link);
    unlink(path);
    unlink(victim);
}

/* A file in a directory that does not exist: the message names the path
 * the caller gave (not the temporary file) and the missing directory, with
 * its first missing level. */
static void test_atomic_write_missing_dir(void)
{
    char path[300], want[900], err[600] = "";
    int rc;

    snprintf(path, sizeof path, "%s/none/sub/m.safetensors", dir);
    rc = ad_write_file_atomic(path, "x", 1, err, sizeof err);
    snprintf(want, sizeof want, "%s: directory %s/none/sub does not exist (%s/none is missing)",
             path, dir, dir);
    T_CHECK(rc == AD_ENOENT && strcmp(err, want) == 0, "rc %d: '%s'", rc, err);
    T_CHECK(strstr(err, AD_TMP_MARK) == NULL, "no temporary name in '%s'", err);
    snprintf(path, sizeof path, "%s/none/m.safetensors", dir);
    rc = ad_dir_of_exists(path, err, sizeof err);
    snprintf(want, sizeof want, "%s: directory %s/none does not exist", path, dir);
    T_CHECK(rc == AD_ENOENT && strcmp(err, want) == 0, "rc %d: '%s'", rc, err);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    T_CHECK(ad_dir_of_exists(path, err, sizeof err) == 0, "an existing directory: %s", err);
    T_CHECK(ad_dir_of_exists("m.safetensors", err, sizeof err) == 0, "a bare name: %s", err);
}

/* A regular file where the directory should be (file/m) or above it
 * (file/sub/m): refused by ad_dir_of_exists before any work, and by the
 * atomic write, naming the path given and the file in the way. */
static void test_dir_is_a_file(void)
{
    char file[300], path[340], want[900], err[1000] = "";
    int rc, i;

    snprintf(file, sizeof file, "%s/plain", dir);
    T_CHECK(ad_write_file_atomic(file, "x", 1, err, sizeof err) == 0, "%s", err);
    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%sm.safetensors", file, i ? "sub/" : "");
        snprintf(want, sizeof want, "%s: %s is not a directory", path, file);
        err[0] = '\0';
        rc = ad_dir_of_exists(path, err, sizeof err);
        T_CHECK(rc == -ENOTDIR && strcmp(err, want) == 0, "check: rc %d: '%s'", rc, err);
        err[0] = '\0';
        rc = ad_write_file_atomic(path, "x", 1, err, sizeof err);
        T_CHECK(rc == -ENOTDIR && strcmp(err, want) == 0, "write: rc %d: '%s'", rc, err);
        /* the code names itself too, for callers that print ad_strerror */
        T_CHECK(strcmp(ad_strerror(rc), strerror(ENOTDIR)) == 0, "ad_strerror(%d): '%s'", rc,
                ad_strerror(rc));
    }
    unlink(file);
}

/* ad_json_parse_whole: one value, white space or NUL padding after it;
 * anything else is named at its line and column. */
static void test_json_whole(void)
{
    static const struct { const char *text; size_t len; const char *err; } c[] = {
        { "{\"a\":1}", 7, NULL },
        { "{\"a\":1} \r\n\t", 11, NULL },
        { "{\"a\":1}\0\0", 9, NULL },
        { "{\"a\":1}x", 8, "invalid JSON at line 1 column 8: text after the end of the thing" },
        { "{\"a\":1}\n {\"b\":2}", 15, "invalid JSON at line 2 column 2: text after the end of the thing" },
        { "{\"a\":1}\0x", 9, "invalid JSON at line 1 column 9: text after the end of the thing" },
        { "{\"a\":", 5, "invalid JSON at line 1 column 5" },
        { "{\"command\":", 11, "invalid JSON at line 1 column 11" },
        { "", 0, "invalid JSON at line 1 column 1" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char err[200] = "";
        cJSON *j = ad_json_parse_whole(c[i].text, c[i].len, "thing", err, sizeof err);
        if (!c[i].err)
            T_CHECK(j && cJSON_IsObject(j), "case %zu: refused: %s", i, err);
        else
            T_CHECK(!j && strcmp(err, c[i].err) == 0, "case %zu: '%s', want '%s'", i, err,
                    c[i].err);
        cJSON_Delete(j);
    }
}

/* ad_json_print: cJSON's unformatted text, except that every number reads
 * back as the same double (cJSON prints 0.1 + 0.2 as 0.3); strings and
 * keys escaped alike, raw items as they are, NaN and Inf as null. */
static void test_json_print_exact(void)
{
    const double v[] = { 0.1 + 0.2, 1.0 / 3, nextafter(0.5, 1), nextafter(1.0, 2),
                         nextafter(2.0, 0), 1e300, -4.9e-324, 1700000000123.0, 0.5, 3,
                         -7, 123456789012345678.0, 2.5e-8 };
    const size_t n = sizeof v / sizeof v[0];
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "v"), *b;
    char *txt, *ref;
    size_t i;

    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    cJSON_AddStringToObject(o, "s\"\n", "tab\t quote\" back\\ \x01 \xc3\xa9 /");
    cJSON_AddRawToObject(o, "raw", "0.10000000000000001");
    cJSON_AddNumberToObject(o, "nan", NAN);
    cJSON_AddNumberToObject(o, "inf", INFINITY);
    cJSON_AddTrueToObject(o, "t");
    cJSON_AddNullToObject(o, "z");
    cJSON_AddObjectToObject(o, "empty");
    cJSON_AddArrayToObject(o, "none");
    txt = ad_json_print(o);
    b = txt ? cJSON_Parse(txt) : NULL;
    T_CHECK(b != NULL, "printed and parsed: %s", txt ? txt : "(null)");
    for (i = 0; b && i < n; i++) {
        double g = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "v"), (int)i)->valuedouble;
        T_CHECK(memcmp(&g, &v[i], sizeof g) == 0, "v[%zu]: %.17g back as %.17g", i, v[i], g);
    }
    /* the shortest of 15, 16 or 17 digits */
    T_CHECK(txt && strstr(txt, "[0.30000000000000004,0.3333333333333333,0.5000000000000001,"
                          "1.0000000000000002,1.9999999999999998,1e+300,-4.94065645841247e-324,"
                          "1700000000123,0.5,3,-7,1.2345678901234568e+17,2.5e-08]"),
            "numbers: %s", txt ? txt : "(null)");
    /* the rest as cJSON prints it */
    cJSON_DeleteItemFromObject(o, "v");
    cJSON_DeleteItemFromObject(b, "v");
    free(txt);
    txt = ad_json_print(o);
    ref = cJSON_PrintUnformatted(o);
    T_CHECK(txt && ref && strcmp(txt, ref) == 0, "%s\n  cJSON: %s", txt ? txt : "(null)",
            ref ? ref : "(null)");
    free(txt);
    free(ref);
    /* an invalid item prints nothing */
    a = cJSON_CreateArray();
    b->type = cJSON_Invalid;    /* b is ours: nothing else holds it */
    cJSON_AddItemToArray(a, b);
    txt = ad_json_print(a);
    T_CHECK(txt == NULL, "an invalid item: %s", txt);
    free(txt);
    cJSON_Delete(a);
    cJSON_Delete(o);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    T_RUN(test_read_file);
    T_RUN(test_config_fifo);
    T_RUN(test_buf_and_hash);
    T_RUN(test_json_member_span);
    T_RUN(test_one_set_of_defaults);
    T_RUN(test_atomic_write_links);
    T_RUN(test_atomic_write_missing_dir);
    T_RUN(test_dir_is_a_file);
    T_RUN(test_json_whole);
    T_RUN(test_json_print_exact);
    rmdir(dir);
    return t_done();
}
