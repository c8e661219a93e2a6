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
    T_CHECK(rc < 0 && t == NULL, "unknown column refused");
    T_CHECK(strstr(err, "unknown column 'nope'") && strstr(err, "'ts', 'a', 'b', 'c'"),
            "message names the column and lists the real ones: %s", err);
}

static void test_errors_name_line_and_column(void)
{
    char err[512] = "";
    int rc;
    ad_table *t;

    t = parse("a,b\n1,2\n3,abc\n", NULL, err, &rc);
    T_CHECK(rc == AD_EFORMAT && t == NULL, "non-numeric cell refused");
    T_CHECK(strstr(err, "x.csv:3") && strstr(err, "'b'") && strstr(err, "abc"),
            "names file:line, column and cell: %s", err);

    t = parse("a,b\n1,2\n3\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "x.csv:3") && strstr(err, "1 fields"), "short row: %s", err);

    t = parse("a,b\n1,2\n3,\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "empty cell"), "empty cell: %s", err);

    t = parse("a,b\n1,nan\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "not a finite"), "nan refused by default: %s", err);

    t = parse("a,b\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "no data rows"), "header only: %s", err);

    t = parse("", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "empty file"), "empty: %s", err);

    t = parse("a,a\n1,2\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "duplicate column name 'a'"), "dup: %s", err);

    t = parse("a,\"b\n1,2\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "unterminated"), "quote: %s", err);

    t = parse("time,a\n2020-01-01 00:00:00,1\nyesterday,2\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "x.csv:3") && strstr(err, "date-time"), "bad time: %s", err);

    t = parse("a,b\n1,1e39\n", NULL, err, &rc);
    T_CHECK(rc < 0 && strstr(err, "finite float"), "float overflow: %s", err);
    (void)t;
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
    T_RUN(test_allow_missing);
    T_RUN(test_datetime);
    T_RUN(test_real_skab_file);
    return t_done();
}
