/*
 * csv.c - CSV reader for sensor data (see csv.h). The whole file is read
 * into memory, split into fields in place (quotes unescaped, fields
 * NUL-terminated), then the columns are classified (time, label, features)
 * and converted. Every error names the file, the line and the column.
 */
#include "csv.h"
#include "ad.h"
#include "safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CSV_MAX_FILE ((size_t)4 << 30)   /* 4 GiB */

typedef struct rowset {
    char **f;          /* all fields, row after row */
    size_t nf, capf;
    size_t *start;     /* first field of each row */
    size_t *count;     /* fields in each row */
    size_t *line;      /* source line of each row */
    size_t nr, capr;
} rowset;

static void rowset_free(rowset *r)
{
    free(r->f);
    free(r->start);
    free(r->count);
    free(r->line);
}

static int push_field(rowset *r, char *s)
{
    if (r->nf == r->capf) {
        size_t cap = r->capf ? r->capf * 2 : 1024;
        char **f = realloc(r->f, cap * sizeof(*f));
        if (f == NULL)
            return AD_ENOMEM;
        r->f = f;
        r->capf = cap;
    }
    r->f[r->nf++] = s;
    return 0;
}

static int push_row(rowset *r, size_t start, size_t line)
{
    if (r->nr == r->capr) {
        size_t cap = r->capr ? r->capr * 2 : 256;
        size_t *a = realloc(r->start, cap * sizeof(*a));
        if (a == NULL)
            return AD_ENOMEM;
        r->start = a;
        a = realloc(r->count, cap * sizeof(*a));
        if (a == NULL)
            return AD_ENOMEM;
        r->count = a;
        a = realloc(r->line, cap * sizeof(*a));
        if (a == NULL)
            return AD_ENOMEM;
        r->line = a;
        r->capr = cap;
    }
    r->start[r->nr] = start;
    r->count[r->nr] = r->nf - start;
    r->line[r->nr] = line;
    r->nr++;
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* Most frequent of , ; TAB in the first line, outside quotes. */
static char detect_sep(const char *b, size_t len)
{
    size_t n[3] = { 0, 0, 0 };
    int q = 0;

    for (size_t i = 0; i < len && b[i] != '\n'; i++) {
        if (b[i] == '"')
            q = !q;
        else if (!q && b[i] == ',')
            n[0]++;
        else if (!q && b[i] == ';')
            n[1]++;
        else if (!q && b[i] == '\t')
            n[2]++;
    }
    if (n[1] > n[0] && n[1] >= n[2])
        return ';';
    if (n[2] > n[0] && n[2] > n[1])
        return '\t';
    return ',';
}

/* Split the mutable buffer b[0..len) (b[len] == 0) into rows of fields. */
static int split(char *b, size_t len, char sep, rowset *r, const char *name,
                 char *err, size_t errlen)
{
    size_t p = 0, line = 1;
    int rc;

    while (p < len) {
        size_t row_line = line, start = r->nf;
        int blank = 1;

        /* Skip blank lines (only spaces/tabs/CR). */
        for (size_t k = p; k < len && b[k] != '\n'; k++)
            if (b[k] != ' ' && b[k] != '\t' && b[k] != '\r') {
                blank = 0;
                break;
            }
        if (blank) {
            while (p < len && b[p] != '\n')
                p++;
            p++;
            line++;
            continue;
        }
        for (;;) {
            char *field;
            char c;

            while (p < len && (b[p] == ' ' || b[p] == '\t') && b[p] != sep)
                p++;
            if (p < len && b[p] == '"') {
                size_t w = ++p;
                field = b + w;
                for (;;) {
                    if (p >= len)
                        return ad_errf(err, errlen, AD_EFORMAT,
                                       "%s:%zu: unterminated quoted field",
                                       name, row_line);
                    if (b[p] == '"' && p + 1 < len && b[p + 1] == '"') {
                        b[w++] = '"';
                        p += 2;
                    } else if (b[p] == '"') {
                        p++;
                        break;
                    } else {
                        if (b[p] == '\n')
                            line++;
                        b[w++] = b[p++];
                    }
                }
                while (p < len && (b[p] == ' ' || b[p] == '\t' || b[p] == '\r') && b[p] != sep)
                    p++;
                if (p < len && b[p] != sep && b[p] != '\n')
                    return ad_errf(err, errlen, AD_EFORMAT,
                                   "%s:%zu: text after a closing quote", name, line);
                c = p < len ? b[p] : '\n';
                b[w] = '\0';
            } else {
                field = b + p;
                while (p < len && b[p] != sep && b[p] != '\n')
                    p++;
                c = p < len ? b[p] : '\n';
                b[p] = '\0';
                /* drop a CR of CRLF */
                if (p > 0 && b + p - 1 >= field && b[p - 1] == '\r')
                    b[p - 1] = '\0';
                field = trim(field);
            }
            if ((rc = push_field(r, field)) < 0)
                return rc;
            p++;
            if (c == '\n') {
                line++;
                break;
            }
        }
        if ((rc = push_row(r, start, row_line)) < 0)
            return rc;
    }
    return 0;
}

static const char *const default_exclude[] = {
    "anomaly", "changepoint", "label", "labels", "is_anomaly"
};
static const char *const time_names[] = {
    "datetime", "timestamp", "time", "ts", "date"
};

/* Parse a whole field as a number. 0 ok, 1 empty/missing, -1 not a number. */
static int parse_num(const char *s, double *v)
{
    char *end;

    if (*s == '\0')
        return 1;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || *end != '\0')
        return -1;
    return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

int ad_parse_datetime(const char *s, double *out)
{
    int Y, M, D, h = 0, mi = 0, sec = 0, oh = 0, om = 0;
    double frac = 0.0, off = 0.0;
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (digits(&s, 4, &Y) < 0 || *s++ != '-' || digits(&s, 2, &M) < 0 ||
        *s++ != '-' || digits(&s, 2, &D) < 0)
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1])
        return -1;
    if (*s == ' ' || *s == 'T' || *s == 't') {
        s++;
        if (digits(&s, 2, &h) < 0 || *s++ != ':' || digits(&s, 2, &mi) < 0)
            return -1;
        if (*s == ':') {
            s++;
            if (digits(&s, 2, &sec) < 0)
                return -1;
            if (*s == '.' || *s == ',') {
                double scale = 0.1;
                s++;
                if (!isdigit((unsigned char)*s))
                    return -1;
                while (isdigit((unsigned char)*s)) {
                    frac += (*s - '0') * scale;
                    scale /= 10;
                    s++;
                }
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            int sign = *s == '-' ? -1 : 1;
            s++;
            if (digits(&s, 2, &oh) < 0)
                return -1;
            if (*s == ':')
                s++;
            if (*s != '\0' && digits(&s, 2, &om) < 0)
                return -1;
            if (oh > 23 || om > 59)
                return -1;
            off = sign * (oh * 3600.0 + om * 60.0);
        }
    }
    if (*s != '\0')
        return -1;
    *out = (double)days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400.0 +
           h * 3600.0 + mi * 60.0 + sec + frac - off;
    return 0;
}

/* The header: column names and an index of them sorted by name, so that
 * duplicate checks and lookups stay O(n log n) with many columns. */
typedef struct colname {
    const char *s;
    size_t i;          /* column index */
} colname;

typedef struct header {
    char **name;       /* borrowed from the rowset */
    size_t n;
    colname *sorted;   /* owned */
} header;

static int colname_cmp(const void *a, const void *b)
{
    const colname *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Index of the column called `name`, or -1. */
static int find_col(const header *h, const char *name)
{
    size_t lo = 0, hi = h->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(h->sorted[mid].s, name);
        if (c == 0)
            return (int)h->sorted[mid].i;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Build h from the header row: every column named, no name twice (the
 * error names the duplicate whose second use comes first). */
static int header_init(header *h, char **name, size_t n, size_t line, const char *fname,
                       char *err, size_t errlen)
{
    const char *dup = NULL;
    size_t dup_at = 0;

    h->name = name;
    h->n = n;
    h->sorted = malloc((n ? n : 1) * sizeof(*h->sorted));
    if (h->sorted == NULL)
        return AD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (name[i][0] == '\0')
            return ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: header column %zu has no name",
                           fname, line, i + 1);
        h->sorted[i].s = name[i];
        h->sorted[i].i = i;
    }
    qsort(h->sorted, n, sizeof(*h->sorted), colname_cmp);
    for (size_t k = 1; k < n; k++)
        if (strcmp(h->sorted[k].s, h->sorted[k - 1].s) == 0 &&
            (dup == NULL || h->sorted[k].i < dup_at)) {
            dup = h->sorted[k].s;
            dup_at = h->sorted[k].i;
        }
    if (dup != NULL)
        return ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: duplicate column name '%s'",
                       fname, line, dup);
    return 0;
}

static void list_cols(char *const *hdr, size_t n, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < len; i++) {
        int k = snprintf(buf + o, len - o, "%s'%s'", i ? ", " : "", hdr[i]);
        if (k < 0)
            break;
        o += (size_t)k;
    }
    if (o >= len - 4 && len > 4)
        strcpy(buf + len - 4, "...");
}

void ad_table_free(ad_table *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->n_features; i++)
        free(t->features[i]);
    free(t->features);
    free(t->feature_col);
    free(t->x);
    free(t->time);
    free(t->time_name);
    free(t->label);
    free(t->line);
    free(t);
}

int ad_table_feature(const ad_table *t, const char *name)
{
    for (int i = 0; i < t->n_features; i++)
        if (strcmp(t->features[i], name) == 0)
            return i;
    return -1;
}

/* Lone CRs (old Mac line ends) become LFs, so that every line end is a LF
 * (a CR before a LF stays: split() drops it). */
static void normalize_cr(char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b[i] == '\r' && (i + 1 == len || b[i + 1] != '\n'))
            b[i] = '\n';
}

/* Copy buf into *bp (NUL-terminated, owned by the caller even on failure)
 * and split it into rows of fields; *sep gets the separator used. */
static int load_rows(char **bp, const char *buf, size_t len, const char *name,
                     const ad_csv_opts *o, rowset *r, char *sep, char *err, size_t errlen)
{
    size_t skip;
    char *b = malloc(len + 1);

    *bp = b;
    if (b == NULL)
        return AD_ENOMEM;
    memcpy(b, buf, len);
    b[len] = '\0';
    if (memchr(b, '\0', len) != NULL)
        return ad_errf(err, errlen, AD_EFORMAT, "%s: binary data (NUL byte) in a CSV file", name);
    normalize_cr(b, len);
    /* Skip a UTF-8 byte-order mark. */
    skip = (len >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0;
    *sep = o->sep ? o->sep : detect_sep(b + skip, len - skip);
    return split(b + skip, len - skip, *sep, r, name, err, errlen);
}

/* The data rows to convert (at most max_rows), each as wide as the header. */
static int check_rows(const rowset *r, size_t ncol, const ad_csv_opts *o, const char *name,
                      size_t *nrows, char *err, size_t errlen)
{
    size_t n = r->nr - 1;

    if (o->max_rows && n > o->max_rows)
        n = o->max_rows;
    if (n == 0)
        return ad_errf(err, errlen, AD_EFORMAT, "%s: no data rows after the header", name);
    for (size_t i = 1; i <= n; i++)
        if (r->count[i] != ncol)
            return ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: %zu fields, the header has %zu",
                           name, r->line[i], r->count[i], ncol);
    *nrows = n;
    return 0;
}

/* What the columns are: *tcol the time column, *lcol the label column (-1:
 * none), t->feature_col/features the features. `cols` lists the columns for
 * messages. */
static int pick_columns(ad_table *t, const header *h, const rowset *r, size_t nrows,
                        const ad_csv_opts *o, int *tcol, int *lcol, const char *cols,
                        const char *name, char *err, size_t errlen)
{
    size_t ncol = h->n;

    *tcol = *lcol = -1;
    if (o->time_col == NULL) {
        for (size_t i = 0; i < ncol && *tcol < 0; i++)
            for (size_t k = 0; k < sizeof(time_names) / sizeof(time_names[0]); k++)
                if (strcasecmp(h->name[i], time_names[k]) == 0) {
                    *tcol = (int)i;
                    break;
                }
    } else if (o->time_col[0] != '\0' && (*tcol = find_col(h, o->time_col)) < 0) {
        return ad_errf(err, errlen, AD_EINVAL, "%s: no time column '%s' (columns: %s)",
                       name, o->time_col, cols);
    }
    if (o->label_col != NULL && (*lcol = find_col(h, o->label_col)) < 0)
        return ad_errf(err, errlen, AD_EINVAL, "%s: no label column '%s' (columns: %s)",
                       name, o->label_col, cols);

    t->feature_col = malloc((ncol ? ncol : 1) * sizeof(int));
    t->features = calloc(ncol ? ncol : 1, sizeof(char *));
    if (t->feature_col == NULL || t->features == NULL)
        return AD_ENOMEM;
    if (o->features != NULL) {
        unsigned char *taken = calloc(ncol ? ncol : 1, 1);
        if (taken == NULL)
            return AD_ENOMEM;
        for (int k = 0; k < o->n_features; k++) {
            int c = find_col(h, o->features[k]);
            if (c < 0 || taken[c]) {
                free(taken);
                if (c < 0)
                    return ad_errf(err, errlen, AD_EINVAL, "%s: column '%s' is missing "
                                   "(the file has columns: %s)", name, o->features[k], cols);
                return ad_errf(err, errlen, AD_EINVAL, "%s: column '%s' given twice",
                               name, o->features[k]);
            }
            taken[c] = 1;
            t->feature_col[t->n_features++] = c;
        }
        free(taken);
    } else {
        const char *const *excl = o->exclude ? o->exclude : default_exclude;
        int nexcl = o->exclude ? o->n_exclude
                               : (int)(sizeof(default_exclude) / sizeof(default_exclude[0]));
        for (size_t c = 0; c < ncol; c++) {
            int skip = ((int)c == *tcol || (int)c == *lcol);
            double v;
            int st = 1;

            for (int k = 0; k < nexcl && !skip; k++)
                if (strcasecmp(h->name[c], excl[k]) == 0)
                    skip = 1;
            if (skip)
                continue;
            /* Numeric if its first non-empty cell is a number. */
            for (size_t i = 1; i <= nrows && st == 1; i++)
                st = parse_num(r->f[r->start[i] + c], &v);
            if (st == 0)
                t->feature_col[t->n_features++] = (int)c;
        }
        if (t->n_features == 0)
            return ad_errf(err, errlen, AD_EFORMAT, "%s: no numeric feature column (columns: %s)",
                           name, cols);
    }
    for (int k = 0; k < t->n_features; k++)
        if ((t->features[k] = strdup(h->name[t->feature_col[k]])) == NULL)
            return AD_ENOMEM;
    return 0;
}

/* Allocate t's arrays for nrows rows. */
static int alloc_table(ad_table *t, size_t nrows, const header *h, const rowset *r,
                       int tcol, int lcol)
{
    size_t nx;

    if (ad_mul_size(nrows, (size_t)t->n_features, &nx) < 0 ||
        ad_mul_size(nx, sizeof(float), &nx) < 0)
        return AD_ENOMEM;
    t->x = malloc(nx ? nx : 1);
    t->line = malloc(nrows * sizeof(size_t));
    if (t->x == NULL || t->line == NULL)
        return AD_ENOMEM;
    if (tcol >= 0) {
        double v;
        t->time = malloc(nrows * sizeof(double));
        t->time_name = strdup(h->name[tcol]);
        if (t->time == NULL || t->time_name == NULL)
            return AD_ENOMEM;
        /* date-times or numbers, as the first cell that is one of them says:
         * one bad first cell does not turn every later date-time into an
         * error (or, lenient, into a row without a time) */
        for (size_t i = 1; i <= nrows; i++) {
            const char *cell = r->f[r->start[i] + tcol];
            if (ad_parse_datetime(cell, &v) == 0) {
                t->time_is_datetime = 1;
                break;
            }
            if (parse_num(cell, &v) == 0 && isfinite(v))
                break;
        }
    }
    if (lcol >= 0 && (t->label = malloc(nrows * sizeof(float))) == NULL)
        return AD_ENOMEM;
    return 0;
}

/* A feature or time cell that is not what it should be: the error, or with
 * o->lenient its message to o->on_bad and 0 (the caller reads the cell as
 * missing). The message is the error's text either way. */
__attribute__((format(printf, 5, 6)))
static int bad_cell(const ad_csv_opts *o, int kind, char *err, size_t errlen,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!o->lenient)
        return ad_errf(err, errlen, AD_EFORMAT, "%s", msg);
    if (o->on_bad)
        o->on_bad(kind, msg, o->on_bad_ud);
    return 0;
}

/* The time cell of a row (source line ln) into *v: seconds or the file's
 * own unit, NaN for a bad cell when lenient (counted). */
static int convert_time(ad_table *t, const char *cell, size_t ln, const char *col,
                        const ad_csv_opts *o, const char *name, double *v,
                        char *err, size_t errlen)
{
    int ok = t->time_is_datetime ? ad_parse_datetime(cell, v) == 0
                                 : parse_num(cell, v) == 0 && isfinite(*v);
    int rc;

    if (ok && !t->time_is_datetime && o->time_unit_s > 0)
        *v *= o->time_unit_s;

    if (!ok) {
        if (t->time_is_datetime)
            rc = bad_cell(o, AD_CSV_BAD_TIME, err, errlen,
                          "%s:%zu: column '%s': not a date-time: '%.40s'", name, ln, col, cell);
        else
            rc = bad_cell(o, AD_CSV_BAD_TIME, err, errlen,
                          "%s:%zu: column '%s': not a time (date-time or number): '%.40s'",
                          name, ln, col, cell);
    } else if (o->unix_time && !ad_time_ok(*v)) {
        /* 1e300 s would not even convert to milliseconds; a number that is
         * a time in a smaller unit is named so */
        char hint[96] = "", iso[40];
        if (!t->time_is_datetime && (ad_time_ok(*v / 1e3) || ad_time_ok(*v / 1e6))) {
            int ms = ad_time_ok(*v / 1e3);
            ad_iso_ms((int64_t)llround(ms ? *v : *v / 1e3), iso, sizeof iso);
            snprintf(hint, sizeof hint, " (in %s it would be %s)",
                     ms ? "milliseconds" : "microseconds", iso);
        }
        rc = bad_cell(o, AD_CSV_BAD_TIME, err, errlen,
                      "%s:%zu: column '%s': time outside " AD_TIME_RANGE ": '%.40s'%s",
                      name, ln, col, cell, hint);
    } else {
        return 0;
    }
    if (rc < 0)
        return rc;
    *v = NAN;
    t->n_bad_time++;
    return 0;
}

/* Convert one data row (source line ln) into row i of t. */
static int convert_row(ad_table *t, size_t i, char **row, size_t ln, const header *h,
                       int tcol, int lcol, const ad_csv_opts *o, const char *name,
                       char *err, size_t errlen)
{
    double v;
    int st, rc;
    size_t bad_time = t->n_bad_time;

    t->line[i] = ln;
    /* the time first: a row skipped for its time (lenient) is not read
     * further, so its cells are not counted as if they had been used */
    if (tcol >= 0) {
        if ((rc = convert_time(t, row[tcol], ln, h->name[tcol], o, name, &v, err, errlen)) < 0)
            return rc;
        t->time[i] = v;
        if (t->n_bad_time != bad_time) {
            for (int k = 0; k < t->n_features; k++)
                t->x[i * (size_t)t->n_features + (size_t)k] = NAN;
            if (lcol >= 0)
                t->label[i] = 0;
            return 0;
        }
    }
    for (int k = 0; k < t->n_features; k++) {
        const char *cell = row[t->feature_col[k]];
        st = parse_num(cell, &v);
        if (st < 0) {
            if ((rc = bad_cell(o, AD_CSV_BAD_VALUE, err, errlen,
                               "%s:%zu: column '%s': not a number: '%.40s'",
                               name, ln, t->features[k], cell)) < 0)
                return rc;
            t->n_nonnumeric++;
            st = 1;             /* lenient: missing, as an empty cell */
        }
        if (st == 1)
            v = NAN;
        if (!isfinite(v) || fabs(v) > 3.4e38) {
            if (!o->allow_missing && !o->lenient)
                return ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: column '%s': %s%s%s",
                               name, ln, t->features[k],
                               st == 1 ? "empty cell" : "not a finite float: '",
                               st == 1 ? "" : cell, st == 1 ? "" : "'");
            if (st == 0 && isfinite(v))
                v = v > 0 ? INFINITY : -INFINITY;
        }
        t->x[i * (size_t)t->n_features + (size_t)k] = (float)v;
    }
    if (lcol >= 0) {
        if (parse_num(row[lcol], &v) != 0 || !isfinite(v))
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s:%zu: label column '%s': not a number: '%.40s'",
                           name, ln, h->name[lcol], row[lcol]);
        /* a label is 0 (normal) or 1 (anomaly), "1.0" too: another value
         * is a wrong column (a feature, a score), not a label */
        if (v != 0.0 && v != 1.0)
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s:%zu: label column '%s': not 0 or 1: '%.40s'",
                           name, ln, h->name[lcol], row[lcol]);
        t->label[i] = (float)v;
    }
    return 0;
}

int ad_csv_parse(ad_table **out, const char *buf, size_t len, const char *name,
                 const ad_csv_opts *o, char *err, size_t errlen)
{
    ad_csv_opts def;
    rowset r;
    header h;
    ad_table *t = NULL;
    char *b = NULL;
    char sep = ',';
    size_t nrows = 0;
    int rc, tcol = -1, lcol = -1;
    char cols[512];

    memset(&r, 0, sizeof(r));
    memset(&h, 0, sizeof(h));
    memset(&def, 0, sizeof(def));
    if (o == NULL)
        o = &def;
    *out = NULL;
    if (name == NULL)
        name = "<csv>";
    if ((rc = load_rows(&b, buf, len, name, o, &r, &sep, err, errlen)) < 0)
        goto fail;
    if (r.nr == 0) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "%s: empty file (a header row is required)", name);
        goto fail;
    }
    if ((rc = header_init(&h, r.f + r.start[0], r.count[0], r.line[0], name, err, errlen)) < 0)
        goto fail;
    list_cols(h.name, h.n, cols, sizeof(cols));
    if ((rc = check_rows(&r, h.n, o, name, &nrows, err, errlen)) < 0)
        goto fail;
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        rc = AD_ENOMEM;
        goto fail;
    }
    t->sep = sep;
    if ((rc = pick_columns(t, &h, &r, nrows, o, &tcol, &lcol, cols, name, err, errlen)) < 0 ||
        (rc = alloc_table(t, nrows, &h, &r, tcol, lcol)) < 0)
        goto fail;
    for (size_t i = 0; i < nrows; i++)
        if ((rc = convert_row(t, i, r.f + r.start[i + 1], r.line[i + 1], &h, tcol, lcol, o,
                              name, err, errlen)) < 0)
            goto fail;
    t->n_rows = nrows;
    free(h.sorted);
    rowset_free(&r);
    free(b);
    *out = t;
    return 0;

fail:
    free(h.sorted);
    rowset_free(&r);
    free(b);
    ad_table_free(t);
    return rc;
}

int ad_csv_read(ad_table **out, const char *path, const ad_csv_opts *o,
                char *err, size_t errlen)
{
    void *buf;
    size_t len;
    int rc;

    *out = NULL;
    rc = ad_read_file(path, CSV_MAX_FILE, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = ad_csv_parse(out, buf, len, path, o, err, errlen);
    free(buf);
    return rc;
}
