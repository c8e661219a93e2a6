/*
 * test_csv.c - the CSV reader: separators, quotes, time and label columns,
 * feature selection, and the error messages a user sees for bad files.
 */
#include "t.h"
#include "csv.h"
#include "ad.h"

#include <unistd.h>

static ad_table *parse(const char *text, const ad_csv_opts *o, char *err, int *rc)
{
    ad_table *t = NULL;
    *rc = ad_csv_parse(&t, text, strlen(text), "x.csv", o, err, 512);
    return t;
}

static void test_skab_like_semicolon(void)
{
    const char *s =
        "datetime;A;B;anomaly;changepoint\n"
        "2020-03-09 10:14:33;1.5;-2;0.0;0.0\n"
        "2020-03-09 10:14:34;2.5;3e2;1.0;0.0\n";
    char err[512] = "";
    int rc;
    ad_csv_opts o = { 0 };
    o.label_col = "anomaly";
    ad_table *t = parse(s, &o, err, &rc);
    T_CHECK(rc == 0 && t != NULL, "rc=%d err=%s", rc, err);
    if (t == NULL)
        return;
    T_CHECK(t->sep == ';', "sep=%c", t->sep);
    T_CHECK(t->n_features == 2, "features=%d (labels and time must be excluded)", t->n_features);
    T_CHECK(strcmp(t->features[0], "A") == 0 && strcmp(t->features[1], "B") == 0, "names");
    T_CHECK(t->n_rows == 2, "rows=%zu", t->n_rows);
    T_CHECK(t->x[0] == 1.5f && t->x[1] == -2.0f && t->x[3] == 300.0f, "values");
    T_CHECK(t->time != NULL && t->time_is_datetime, "time column detected");
    /* 2020-03-09 10:14:33 UTC = 1583748873 */
    T_CHECK(t->time[0] == 1583748873.0 && t->time[1] == 1583748874.0,
            "time=%.1f,%.1f", t->time[0], t->time[1]);
    T_CHECK(t->label != NULL && t->label[0] == 0.0f && t->label[1] == 1.0f, "labels");
    T_CHECK(t->line[0] == 2 && t->line[1] == 3, "line numbers");
    ad_table_free(t);
}

static void test_quotes_crlf_bom_tabs(void)
{
    const char *s = "\xEF\xBB\xBF" "\"time\",\"dev\",\"x,y\",z\r\n"
                    "1,\"pump \"\"A\"\"\", 4 ,5\r\n"
                    "\r\n"
                    "2,\"pump B\",6,7\r\n";
    char err[512] = "";
    int rc;
    ad_table *t = parse(s, NULL, err, &rc);
    T_CHECK(rc == 0, "rc=%d err=%s", rc, err);
    if (t == NULL)
        return;
    T_CHECK(t->n_features == 2, "string column 'dev' skipped, got %d features", t->n_features);
    T_CHECK(t->n_features == 2 && strcmp(t->features[0], "x,y") == 0, "quoted header with comma");
    T_CHECK(t->n_rows == 2 && t->x[0] == 4 && t->x[3] == 7, "values, blank line skipped");
    T_CHECK(t->time && !t->time_is_datetime && t->time[1] == 2.0, "numeric time column");
    ad_table_free(t);

    t = parse("a\tb\n1\t2\n", NULL, err, &rc);
    T_CHECK(rc == 0 && t && t->sep == '\t' && t->n_features == 2, "tab separated");
    ad_table_free(t);
}

static void test_feature_selection(void)
{
    const char *s = "ts,a,b,c\n1,1,2,3\n2,4,5,6\n";
    const char *want[] = { "c", "a" };
    char err[512] = "";
    int rc;
    ad_csv_opts o = { 0 };
    o.features = want;
    o.n_features = 2;
    ad_table *t = parse(s, &o, err, &rc);
    T_CHECK(rc == 0 && t, "rc=%d err=%s", rc, err);
    if (t) {
        T_CHECK(t->x[0] == 3 && t->x[1] == 1 && t->x[2] == 6 && t->x[3] == 4,
                "columns in the requested order");
        ad_table_free(t);
    }
    const char *bad[] = { "a", "nope" };
    o.features = bad;
    t = parse(s, &o, err, &rc);
    T_CHECK(rc < 0 && t == NULL, "missing column refused");
    T_CHECK(strstr(err, "column 'nope' is missing (the file has columns: ") &&
            strstr(err, "'ts', 'a', 'b', 'c'"),
            "message names the column and lists the real ones: %s", err);
}

/* Expect `text` refused with exactly the message `want`. */
static void expect_err(const char *text, const ad_csv_opts *o, int want_rc, const char *want)
{
    char err[512] = "";
    int rc;
    ad_table *t = parse(text, o, err, &rc);
    T_CHECK(rc == want_rc && t == NULL, "rc %d (want %d) for '%s'", rc, want_rc, text);
    T_CHECK(strcmp(err, want) == 0, "message\n    '%s', expected\n    '%s'", err, want);
    ad_table_free(t);
}

static void test_errors_name_line_and_column(void)
{
    expect_err("a,b\n1,2\n3,abc\n", NULL, AD_EFORMAT,
               "x.csv:3: column 'b': not a number: 'abc'");
    expect_err("a,b\n1,2\n3\n", NULL, AD_EFORMAT, "x.csv:3: 1 fields, the header has 2");
    expect_err("a,b\n1,2\n3,\n", NULL, AD_EFORMAT, "x.csv:3: column 'b': empty cell");
    expect_err("a,b\n1,nan\n", NULL, AD_EFORMAT, "x.csv:2: column 'b': not a finite float: 'nan'");
    expect_err("a,b\n", NULL, AD_EFORMAT, "x.csv: no data rows after the header");
    expect_err("", NULL, AD_EFORMAT, "x.csv: empty file (a header row is required)");
    expect_err("a,a\n1,2\n", NULL, AD_EFORMAT, "x.csv:1: duplicate column name 'a'");
    expect_err("b,a,c,a,b\n1,2,3,4,5\n", NULL, AD_EFORMAT,
               "x.csv:1: duplicate column name 'a'");
    expect_err("a,,b\n1,2,3\n", NULL, AD_EFORMAT, "x.csv:1: header column 2 has no name");
    expect_err("a,\"b\n1,2\n", NULL, AD_EFORMAT, "x.csv:1: unterminated quoted field");
    expect_err("a,\"b\"x\n1,2\n", NULL, AD_EFORMAT, "x.csv:1: text after a closing quote");
    expect_err("time,a\n2020-01-01 00:00:00,1\nyesterday,2\n", NULL, AD_EFORMAT,
               "x.csv:3: column 'time': not a date-time: 'yesterday'");
    expect_err("a,b\n1,1e39\n", NULL, AD_EFORMAT, "x.csv:2: column 'b': not a finite float: '1e39'");
    {
        char err[512] = "";
        ad_table *t = NULL;
        int rc = ad_csv_parse(&t, "a,b\n1,\0002\n", 9, "x.csv", NULL, err, sizeof err);
        T_CHECK(rc == AD_EFORMAT && t == NULL &&
                strcmp(err, "x.csv: binary data (NUL byte) in a CSV file") == 0, "NUL: %s", err);
        ad_table_free(t);
    }
    expect_err("name\nx\n", NULL, AD_EFORMAT, "x.csv: no numeric feature column (columns: 'name')");

    ad_csv_opts o = { 0 };
    const char *twice[] = { "b", "a", "b" };
    o.features = twice;
    o.n_features = 3;
    expect_err("a,b\n1,2\n", &o, AD_EINVAL, "x.csv: column 'b' given twice");
    o.features = NULL;
    o.n_features = 0;
    o.time_col = "t";
    expect_err("a,b\n1,2\n", &o, AD_EINVAL, "x.csv: no time column 't' (columns: 'a', 'b')");
    o.time_col = NULL;
    o.label_col = "anomaly";
    expect_err("a,b\n1,2\n", &o, AD_EINVAL, "x.csv: no label column 'anomaly' (columns: 'a', 'b')");
    expect_err("a,anomaly\n1,x\n", &o, AD_EFORMAT,
               "x.csv:2: label column 'anomaly': not a number: 'x'");
    expect_err("a,anomaly\n1,5e40\n", &o, AD_EFORMAT,       /* found by fuzz_csv */
               "x.csv:2: label column 'anomaly': not 0 or 1: '5e40'");
    /* a label is 0 or 1: the first other value is named with its line */
    expect_err("a,anomaly\n1,0\n2,1.0\n3,2\n4,0.5\n", &o, AD_EFORMAT,
               "x.csv:4: label column 'anomaly': not 0 or 1: '2'");
    expect_err("a,anomaly\n1,0.5\n", &o, AD_EFORMAT,
               "x.csv:2: label column 'anomaly': not 0 or 1: '0.5'");
    o.label_col = "a";                                      /* a feature as label */
    expect_err("a,b\n0.25,2\n", &o, AD_EFORMAT, "x.csv:2: label column 'a': not 0 or 1: '0.25'");
}

/* Old Mac line ends (CR only) read like LF and CRLF files, line numbers
 * included. */
static void test_cr_line_endings(void)
{
    char err[512] = "";
    int rc;
    ad_table *t = parse("time;a;b\r1;2;3\r\r2;4;5\r", NULL, err, &rc);
    T_CHECK(rc == 0 && t, "rc=%d err=%s", rc, err);
    if (t) {
        T_CHECK(t->n_rows == 2 && t->n_features == 2 && t->sep == ';',
                "%zu rows x %d features, sep '%c'", t->n_rows, t->n_features, t->sep);
        T_CHECK(t->n_rows == 2 && t->x[0] == 2 && t->x[3] == 5 && t->time[1] == 2,
                "values and times");
        T_CHECK(t->n_rows == 2 && t->line[0] == 2 && t->line[1] == 4, "line numbers %zu %zu",
                t->line[0], t->n_rows == 2 ? t->line[1] : 0);
        ad_table_free(t);
    }
    expect_err("a,b\r1,2\r3,x\r", NULL, AD_EFORMAT, "x.csv:3: column 'b': not a number: 'x'");
    /* a CR alone at the very end, and CRLF files, are unchanged */
    t = parse("a,b\r\n1,2\r\n3,4\r", NULL, err, &rc);
    T_CHECK(rc == 0 && t && t->n_rows == 2 && t->x[3] == 4, "CRLF with a last lone CR: %s", err);
    ad_table_free(t);
}

/* A header of 200,000 columns: read, a duplicate found, every column
 * selected by name (the checks are O(n log n): a quadratic duplicate check
 * took more than 30 s here). */
static void test_many_columns(void)
{
    enum { N = 200000 };
    size_t cap = (size_t)N * 16 + 64, o = 0;
    char *s = malloc(cap), err[512] = "";
    const char **names = malloc(N * sizeof(*names));
    char *store = malloc((size_t)N * 12);
    ad_table *t = NULL;
    ad_csv_opts opt = { 0 };
    int rc;

    T_CHECK(s && names && store, "out of memory");
    if (!s || !names || !store)
        goto out;
    for (int i = 0; i < N; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%sc%d", i ? "," : "", i);
        snprintf(store + (size_t)i * 12, 12, "c%d", N - 1 - i);
        names[i] = store + (size_t)i * 12;
    }
    o += (size_t)snprintf(s + o, cap - o, "\n");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", i % 10);
    snprintf(s + o, cap - o, "\n");
    t = parse(s, NULL, err, &rc);
    T_CHECK(rc == 0 && t && t->n_features == N && t->x[N - 1] == (N - 1) % 10,
            "200k columns read: rc=%d %s", rc, err);
    ad_table_free(t);

    opt.features = names;           /* every column, in reverse order */
    opt.n_features = N;
    t = parse(s, &opt, err, &rc);
    T_CHECK(rc == 0 && t && t->n_features == N && t->x[0] == (N - 1) % 10 &&
            strcmp(t->features[N - 1], "c0") == 0, "200k columns selected by name: %s", err);
    ad_table_free(t);

    /* the last header name "c199999" becomes "c179999", a name used before */
    memcpy(strchr(s, '\n') - 7, "c17", 3);
    t = parse(s, NULL, err, &rc);
    T_CHECK(rc == AD_EFORMAT && t == NULL &&
            strcmp(err, "x.csv:1: duplicate column name 'c179999'") == 0,
            "duplicate among 200k columns: %s", err);
    ad_table_free(t);
out:
    free(s);
    free(names);
    free(store);
}

static void test_allow_missing(void)
{
    char err[512] = "";
    int rc;
    ad_csv_opts o = { 0 };
    o.allow_missing = 1;
    ad_table *t = parse("a,b\n1,\n,nan\ninf,2\n", &o, err, &rc);
    T_CHECK(rc == 0 && t, "rc=%d %s", rc, err);
    if (t) {
        T_CHECK(isnan(t->x[1]) && isnan(t->x[2]) && isnan(t->x[3]) && isinf(t->x[4]),
                "missing cells kept as NaN/Inf for the pipeline to reject");
        ad_table_free(t);
    }
}

/* lenient: what on_bad was told, one message a line. */
typedef struct bad_log {
    char text[2048];
    int n_value, n_time;
} bad_log;

static void on_bad(int kind, const char *msg, void *ud)
{
    bad_log *b = ud;
    size_t l = strlen(b->text);

    if (kind == AD_CSV_BAD_VALUE)
        b->n_value++;
    else if (kind == AD_CSV_BAD_TIME)
        b->n_time++;
    snprintf(b->text + l, sizeof b->text - l, "%s\n", msg);
}

static void test_lenient(void)
{
    char err[512] = "";
    int rc;
    bad_log b;
    ad_csv_opts o = { 0 };
    ad_table *t;

    /* numbers as unix seconds: non-numeric cells are missing, the rows
     * whose time is out of range have time NaN and are not read further */
    memset(&b, 0, sizeof b);
    o.lenient = 1;
    o.unix_time = 1;
    o.on_bad = on_bad;
    o.on_bad_ud = &b;
    t = parse("ts,a,b\n1,1,2\n2,abc,3\n1e300,4,5\n4,1.2.3,\n-1e300,6,7\n1e19,8,9\n7,,1\n",
              &o, err, &rc);
    T_CHECK(rc == 0 && t, "rc=%d %s", rc, err);
    if (t) {
        T_CHECK(t->n_rows == 7 && t->n_nonnumeric == 2 && t->n_bad_time == 3,
                "rows %zu, non-numeric %zu, bad time %zu", t->n_rows, t->n_nonnumeric,
                t->n_bad_time);
        T_CHECK(isnan(t->x[2]) && t->x[3] == 3 && isnan(t->x[6]) && isnan(t->x[7]) &&
                isnan(t->x[12]) && t->x[13] == 1, "non-numeric cells are NaN, as empty ones");
        T_CHECK(t->time[1] == 2 && isnan(t->time[2]) && isnan(t->time[4]) &&
                isnan(t->time[5]) && t->time[6] == 7, "out-of-range times are NaN");
        T_CHECK(isnan(t->x[4]) && isnan(t->x[5]) && isnan(t->x[8]) && isnan(t->x[9]),
                "a row with a bad time is not read further (it is skipped)");
        ad_table_free(t);
    }
    T_CHECK(b.n_value == 2 && b.n_time == 3, "on_bad: %d values, %d times", b.n_value, b.n_time);
    T_CHECK(strcmp(b.text, "x.csv:3: column 'a': not a number: 'abc'\n"
                           "x.csv:4: column 'ts': time outside 1970-01-01 .. 9999-12-31: '1e300'\n"
                           "x.csv:5: column 'a': not a number: '1.2.3'\n"
                           "x.csv:6: column 'ts': time outside 1970-01-01 .. 9999-12-31: '-1e300'\n"
                           "x.csv:7: column 'ts': time outside 1970-01-01 .. 9999-12-31: '1e19'\n")
            == 0, "messages in file order, naming line, column and cell:\n%s", b.text);

    /* date-times: the same range (years before 1970, a leap second past
     * 9999-12-31); a bad first cell does not decide the column's kind */
    memset(&b, 0, sizeof b);
    t = parse("datetime,a\nnever,1\n0001-01-01 00:00:00,2\n2020-01-01 00:00:00,3\n"
              "9999-12-31T23:59:60Z,4\n9999-12-31T23:59:59Z,5\n", &o, err, &rc);
    T_CHECK(rc == 0 && t, "rc=%d %s", rc, err);
    if (t) {
        T_CHECK(t->time_is_datetime && t->n_bad_time == 3 && isnan(t->time[0]) &&
                isnan(t->time[1]) && t->time[2] == 1577836800.0 && isnan(t->time[3]) &&
                t->time[4] == 253402300799.0, "date-times: bad %zu, times %f %f",
                t->n_bad_time, t->time[2], t->time[4]);
        ad_table_free(t);
    }
    T_CHECK(strstr(b.text, "x.csv:2: column 'datetime': not a date-time: 'never'\n") &&
            strstr(b.text, "x.csv:3: column 'datetime': time outside 1970-01-01 .. 9999-12-31: "
                           "'0001-01-01 00:00:00'\n") &&
            strstr(b.text, "x.csv:5: column 'datetime': time outside"), "%s", b.text);

    /* without lenient the same cells are errors; without unix_time any
     * finite number is a time (a monotonic unit of the file's own) */
    o.lenient = 0;
    expect_err("ts,a\n1,1\n1e300,2\n", &o, AD_EFORMAT,
               "x.csv:3: column 'ts': time outside 1970-01-01 .. 9999-12-31: '1e300'");
    o.unix_time = 0;
    t = parse("ts,a\n-5,1\n1e300,2\n", &o, err, &rc);
    T_CHECK(rc == 0 && t && t->time[0] == -5 && t->time[1] == 1e300, "rc=%d %s", rc, err);
    ad_table_free(t);
}

static void test_datetime(void)
{
    double v;
    T_CHECK(ad_parse_datetime("1970-01-01 00:00:00", &v) == 0 && v == 0.0, "epoch %f", v);
    T_CHECK(ad_parse_datetime("2000-01-01T00:00:00Z", &v) == 0 && v == 946684800.0, "y2k %f", v);
    T_CHECK(ad_parse_datetime("2000-01-01T02:00:00+02:00", &v) == 0 && v == 946684800.0,
            "offset %f", v);
    T_CHECK(ad_parse_datetime("2024-02-29 12:00:00.250", &v) == 0 &&
            fabs(v - 1709208000.25) < 1e-6, "leap day + fraction %f", v);
    T_CHECK(ad_parse_datetime("2024-02-30 00:00:00", &v) < 0, "Feb 30 refused");
    T_CHECK(ad_parse_datetime("2024-01-01 25:00:00", &v) < 0, "hour 25 refused");
    T_CHECK(ad_parse_datetime("2024-01-01 10:00:00 junk", &v) < 0, "trailing junk refused");
    T_CHECK(ad_parse_datetime("12.5", &v) < 0, "a number is not a date-time");
}

static void test_real_skab_file(void)
{
    /* The data is not part of the repository: $SKAB (as bench/skab.sh), or
     * ../shared/data/skab beside the checkout. */
    const char *src = getenv("AD_SRCDIR");
    const char *skab = getenv("SKAB");
    char path[1024];
    char err[512] = "";
    ad_table *t = NULL;
    ad_csv_opts o = { 0 };

    if (skab && *skab)
        snprintf(path, sizeof(path), "%s/valve1/0.csv", skab);
    else
        snprintf(path, sizeof(path), "%s/../shared/data/skab/valve1/0.csv", src ? src : ".");
    if (access(path, R_OK) != 0) {
        T_SKIP("SKAB data not found at %.900s (set SKAB=DIR)", path);
        return;
    }
    o.label_col = "anomaly";
    int rc = ad_csv_read(&t, path, &o, err, sizeof(err));
    T_CHECK(rc == 0, "rc=%d %s", rc, err);
    if (t == NULL)
        return;
    T_CHECK(t->n_features == 8, "8 sensor columns, got %d", t->n_features);
    T_CHECK(t->n_rows == 1147, "rows=%zu", t->n_rows);
    T_CHECK(t->time_is_datetime && t->time[1] > t->time[0], "datetime ascending");
    T_NOTE("valve1/0.csv: %zu rows x %d features, first feature '%s'",
           t->n_rows, t->n_features, t->features[0]);
    ad_table_free(t);
}

int main(void)
{
    T_RUN(test_skab_like_semicolon);
    T_RUN(test_quotes_crlf_bom_tabs);
    T_RUN(test_feature_selection);
    T_RUN(test_errors_name_line_and_column);
    T_RUN(test_cr_line_endings);
    T_RUN(test_many_columns);
    T_RUN(test_allow_missing);
    T_RUN(test_lenient);
    T_RUN(test_datetime);
    T_RUN(test_real_skab_file);
    return t_done();
}
