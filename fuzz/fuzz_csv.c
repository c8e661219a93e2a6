/* fuzz_csv.c - libFuzzer target for the CSV reader and the ISO 8601
 * date-time parser. The first input byte picks the reader's options
 * (separator, time column, label column, missing values, row limit,
 * lenient reading as replay does it, unix times), the rest is the file.
 * Any input either gives a table whose shape and values keep the reader's
 * promises (csv.h: lenient, every bad cell told once and counted, its time
 * NaN; with unix times, every time in 1970..9999; every label 0 or 1), or
 * fails with a message naming the file; the rest is also parsed as one
 * date-time, which, when accepted, must be finite. Build: make fuzz. */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* lenient: the messages told, by kind */
static size_t told[3];

static void on_bad(int kind, const char *msg, void *ud)
{
    (void)ud;
    if (kind != AD_CSV_BAD_VALUE && kind != AD_CSV_BAD_TIME)
        abort();
    if (strncmp(msg, "fuzz.csv:", 9) != 0)
        abort();
    told[kind]++;
}

static void check_table(const ad_table *t, const ad_csv_opts *o)
{
    size_t nan_x = 0, nan_t = 0;

    if (t->n_rows == 0 || t->n_features <= 0 || t->x == NULL || t->line == NULL)
        abort();
    if (o->max_rows && t->n_rows > o->max_rows)
        abort();
    if ((t->time != NULL) != (t->time_name != NULL) || (o->label_col != NULL) != (t->label != NULL))
        abort();
    for (int k = 0; k < t->n_features; k++)
        if (t->features[k] == NULL || ad_table_feature(t, t->features[k]) != k)
            abort();
    for (size_t i = 0; i < t->n_rows; i++) {
        if (t->line[i] < 2 || (i > 0 && t->line[i] <= t->line[i - 1]))
            abort();
        for (int k = 0; k < t->n_features; k++)
            if (!isfinite(t->x[i * (size_t)t->n_features + (size_t)k])) {
                if (!o->allow_missing && !o->lenient)
                    abort();
                nan_x++;
            }
        if (t->time && isnan(t->time[i]) && o->lenient)
            nan_t++;
        else if (t->time && (!isfinite(t->time[i]) || (o->unix_time && !ad_time_ok(t->time[i]))))
            abort();
        if (t->label && t->label[i] != 0.0f && t->label[i] != 1.0f)
            abort();            /* a label is 0 or 1 */
    }
    if (t->n_nonnumeric > nan_x || t->n_bad_time != nan_t ||
        told[AD_CSV_BAD_VALUE] != t->n_nonnumeric || told[AD_CSV_BAD_TIME] != t->n_bad_time)
        abort();
    if (!o->lenient && (t->n_nonnumeric || t->n_bad_time))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char seps[4] = { 0, ',', ';', '\t' };
    ad_csv_opts o;
    ad_table *t = NULL;
    char err[512];
    char *s;
    double v;
    int rc;

    if (size == 0)
        return 0;
    memset(&o, 0, sizeof o);
    o.sep = seps[data[0] & 3];
    o.time_col = (data[0] & 4) ? "" : NULL;
    o.label_col = (data[0] & 8) ? "anomaly" : NULL;
    o.allow_missing = (data[0] & 16) != 0;
    o.max_rows = (data[0] & 32) ? 3 : 0;
    o.lenient = (data[0] & 64) != 0;
    o.unix_time = (data[0] & 128) != 0;
    o.on_bad = on_bad;
    memset(told, 0, sizeof told);
    data++;
    size--;

    err[0] = '\0';
    rc = ad_csv_parse(&t, (const char *)data, size, "fuzz.csv", &o, err, sizeof err);
    if (rc == 0) {
        if (t == NULL)
            abort();
        check_table(t, &o);
        ad_table_free(t);
    } else if (t != NULL || rc >= 0 || strncmp(err, "fuzz.csv", 8) != 0) {
        abort();
    }

    /* the same bytes as one date-time string */
    s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (ad_parse_datetime(s, &v) == 0 && !isfinite(v))
        abort();
    free(s);
    return 0;
}
