/*
 * csv.h - read sensor data from CSV files into a numeric table.
 *
 * Accepted input:
 *   - a header row naming the columns (required);
 *   - separator ',', ';' or TAB, auto-detected from the header (the most
 *     frequent of the three outside quotes) unless given;
 *   - fields optionally in double quotes ("" escapes a quote); line ends
 *     CRLF, LF or CR alone (a lone CR, even inside quotes, is a line end);
 *   - an optional time column: ISO 8601 date-times ("2020-03-09 10:14:33",
 *     "2020-03-09T10:14:33.250Z", "+02:00" offsets) or plain numbers (unix
 *     seconds or any monotonic unit; with unix_time, unix seconds); which of
 *     the two is told by the first cell of the column that is one of them;
 *   - numeric feature columns; label columns kept apart: a label cell is 0
 *     or 1 ("1.0" too), anything else is an error naming its line.
 *
 * Errors name the file, the line (1-based, the header is line 1) and the
 * column, e.g. "data.csv:523: column 'Pressure': not a number: 'abc'".
 * With `lenient` (replay) a bad feature or time cell is not an error: the
 * cell is read as missing (NaN), counted in ad_table, and its message (the
 * same text) goes to on_bad; other errors (shape, quotes, labels) stay
 * errors.
 */
#ifndef AD_CSV_H
#define AD_CSV_H

#include <stddef.h>

typedef struct ad_csv_opts {
    char sep;                   /* 0: auto-detect among , ; TAB */
    const char *time_col;       /* NULL: auto ("datetime", "timestamp", "time",
                                   "ts", "date" — case-insensitive), "": none */
    const char *const *features;/* NULL: every numeric column that is not the
                                   time column nor a label column */
    int n_features;
    const char *label_col;      /* NULL: none; else this column becomes
                                   ad_table.label (every cell 0 or 1) */
    const char *const *exclude; /* columns never taken as features; NULL:
                                   {"anomaly","changepoint","label","labels",
                                   "is_anomaly"} */
    int n_exclude;
    int allow_missing;          /* empty, "nan", "inf" cells: store NaN/Inf
                                   instead of failing (replay: the pipeline
                                   rejects and counts them) */
    size_t max_rows;            /* 0: no limit */
    int unix_time;              /* the time column is unix time: a time
                                   outside 1970-01-01 .. 9999-12-31
                                   (ad_time_ok) is not a time (its message
                                   names the date it would be in ms or us) */
    double time_unit_s;         /* seconds per unit of a numeric time
                                   column (0: 1; 1e-3: milliseconds) */
    int lenient;                /* (implies allow_missing) a feature cell that
                                   is not a number is read as NaN (missing),
                                   a time cell that is not a time as NaN
                                   (the caller skips the row); both counted
                                   in ad_table and told to on_bad */
    void (*on_bad)(int kind, const char *msg, void *ud);
                                /* lenient: called for each such cell in
                                   file order, kind AD_CSV_BAD_VALUE or
                                   AD_CSV_BAD_TIME, msg naming the file,
                                   line, column and cell (valid during the
                                   call); NULL: counted only */
    void *on_bad_ud;
} ad_csv_opts;

enum { AD_CSV_BAD_VALUE = 1, AD_CSV_BAD_TIME = 2 };

typedef struct ad_table {
    int n_features;
    char **features;            /* n_features names, owned */
    int *feature_col;           /* source column index of each feature */
    size_t n_rows;
    float *x;                   /* (n_rows, n_features) row-major */
    double *time;               /* n_rows seconds, or NULL: no time column */
    int time_is_datetime;       /* 1 if parsed as date-times (unix seconds) */
    char *time_name;            /* NULL if no time column */
    float *label;               /* n_rows, or NULL */
    size_t *line;               /* n_rows source line numbers (1-based) */
    char sep;                   /* the separator used */
    size_t n_nonnumeric;        /* lenient: feature cells not a number (NaN) */
    size_t n_bad_time;          /* lenient: rows whose time is not one (NaN) */
} ad_table;

/* Read and parse a CSV file. Returns 0 and *out (free with ad_table_free),
 * or a negative code with a message in err. */
int ad_csv_read(ad_table **out, const char *path, const ad_csv_opts *o,
                char *err, size_t errlen);

/* The same from memory; `name` is used in messages. */
int ad_csv_parse(ad_table **out, const char *buf, size_t len, const char *name,
                 const ad_csv_opts *o, char *err, size_t errlen);

void ad_table_free(ad_table *t);   /* NULL-safe */

/* Index of feature `name` in t, or -1. */
int ad_table_feature(const ad_table *t, const char *name);

/* Parse an ISO 8601 date-time (see above) into unix seconds (UTC unless an
 * offset is given). Returns 0, or -1 if `s` is not one. */
int ad_parse_datetime(const char *s, double *out);

#endif /* AD_CSV_H */
