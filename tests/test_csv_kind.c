/*
 * test_csv_kind.c - lib/csv.c's time-column kind
 * detection (alloc_table): "the first cell that is a date-time or a
 * number" counts "nan" / "inf" (strtod reads them) as a number, so a
 * date-time column whose first cell is "nan" is taken for a numeric one
 * and, with lenient (replay), every date-time row after it is skipped as
 * "not a time"; without lenient the whole file is refused on line 3.
 */
#include <math.h>
#include <string.h>

#include "t.h"
#include "ad.h"
#include "csv.h"

static void test_nan_first_time_cell(void)
{
    const char *s = "datetime,a\nnan,1\n2020-01-01 00:00:00,2\n2020-01-01 00:00:01,3\n";
    ad_csv_opts o;
    ad_table *t = NULL;
    char err[512] = "";
    int rc;

    memset(&o, 0, sizeof(o));
    o.lenient = 1;
    o.unix_time = 1;
    rc = ad_csv_parse(&t, s, strlen(s), "x.csv", &o, err, sizeof(err));
    T_CHECK(rc == 0 && t, "rc=%d %s", rc, err);
    if (t) {
        T_CHECK(t->time_is_datetime && t->n_bad_time == 1 && isnan(t->time[0]) &&
                t->time[1] == 1577836800.0,
                "a 'nan' first cell does not decide the kind: datetime %d, bad times %zu "
                "(1 expected), time[1] %f", t->time_is_datetime, t->n_bad_time, t->time[1]);
        ad_table_free(t);
    }
}

int main(void)
{
    T_RUN(test_nan_first_time_cell);
    return t_done();
}
