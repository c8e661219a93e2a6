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

static int find_col(char **hdr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(hdr[i], name) == 0)
            return (int)i;
    return -1;
}

static void list_cols(char **hdr, size_t n, char *buf, size_t len)
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

int ad_csv_parse(ad_table **out, const char *buf, size_t len, const char *name,
                 const ad_csv_opts *o, char *err, size_t errlen)
{
    ad_csv_opts def;
    rowset r;
    ad_table *t = NULL;
    char *b = NULL, **hdr;
    size_t ncol, nrows;
    int rc, tcol = -1, lcol = -1;
    char cols[512];
    const char *const *excl;
    int nexcl;

    memset(&r, 0, sizeof(r));
    memset(&def, 0, sizeof(def));
    if (o == NULL)
        o = &def;
    *out = NULL;
    if (name == NULL)
        name = "<csv>";
    b = malloc(len + 1);
    if (b == NULL)
        return AD_ENOMEM;
    memcpy(b, buf, len);
    b[len] = '\0';
    if (memchr(b, '\0', len) != NULL) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "%s: binary data (NUL byte) in a CSV file", name);
        goto fail;
    }
    /* Skip a UTF-8 byte-order mark. */
    {
        size_t skip = (len >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0;
        char sep = o->sep ? o->sep : detect_sep(b + skip, len - skip);
        if ((rc = split(b + skip, len - skip, sep, &r, name, err, errlen)) < 0)
            goto fail;
        t = calloc(1, sizeof(*t));
        if (t == NULL) {
            rc = AD_ENOMEM;
            goto fail;
        }
        t->sep = sep;
    }
    if (r.nr == 0) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "%s: empty file (a header row is required)", name);
        goto fail;
    }
    hdr = r.f + r.start[0];
    ncol = r.count[0];
    for (size_t i = 0; i < ncol; i++) {
        if (hdr[i][0] == '\0') {
            rc = ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: header column %zu has no name",
                         name, r.line[0], i + 1);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(hdr[i], hdr[j]) == 0) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: duplicate column name '%s'",
                             name, r.line[0], hdr[i]);
                goto fail;
            }
    }
    list_cols(hdr, ncol, cols, sizeof(cols));
    nrows = r.nr - 1;
    if (o->max_rows && nrows > o->max_rows)
        nrows = o->max_rows;
    if (nrows == 0) {
        rc = ad_errf(err, errlen, AD_EFORMAT, "%s: no data rows after the header", name);
        goto fail;
    }
    for (size_t i = 1; i <= nrows; i++)
        if (r.count[i] != ncol) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: %zu fields, the header has %zu",
                         name, r.line[i], r.count[i], ncol);
            goto fail;
        }

    /* Time column. */
    if (o->time_col == NULL) {
        for (size_t i = 0; i < ncol && tcol < 0; i++)
            for (size_t k = 0; k < sizeof(time_names) / sizeof(time_names[0]); k++)
                if (strcasecmp(hdr[i], time_names[k]) == 0) {
                    tcol = (int)i;
                    break;
                }
    } else if (o->time_col[0] != '\0') {
        tcol = find_col(hdr, ncol, o->time_col);
        if (tcol < 0) {
            rc = ad_errf(err, errlen, AD_EINVAL, "%s: no time column '%s' (columns: %s)",
                         name, o->time_col, cols);
            goto fail;
        }
    }
    if (o->label_col != NULL) {
        lcol = find_col(hdr, ncol, o->label_col);
        if (lcol < 0) {
            rc = ad_errf(err, errlen, AD_EINVAL, "%s: no label column '%s' (columns: %s)",
                         name, o->label_col, cols);
            goto fail;
        }
    }
    excl = o->exclude ? o->exclude : default_exclude;
    nexcl = o->exclude ? o->n_exclude : (int)(sizeof(default_exclude) / sizeof(default_exclude[0]));

    /* Feature columns. */
    t->feature_col = malloc((ncol ? ncol : 1) * sizeof(int));
    t->features = calloc(ncol ? ncol : 1, sizeof(char *));
    if (t->feature_col == NULL || t->features == NULL) {
        rc = AD_ENOMEM;
        goto fail;
    }
    if (o->features != NULL) {
        for (int k = 0; k < o->n_features; k++) {
            int c = find_col(hdr, ncol, o->features[k]);
            if (c < 0) {
                rc = ad_errf(err, errlen, AD_EINVAL, "%s: unknown column '%s' (columns: %s)",
                             name, o->features[k], cols);
                goto fail;
            }
            if (k >= (int)ncol) {
                rc = ad_errf(err, errlen, AD_EINVAL, "%s: column '%s' given twice",
                             name, o->features[k]);
                goto fail;
            }
            for (int j = 0; j < t->n_features; j++)
                if (t->feature_col[j] == c) {
                    rc = ad_errf(err, errlen, AD_EINVAL, "%s: column '%s' given twice",
                                 name, o->features[k]);
                    goto fail;
                }
            t->feature_col[t->n_features++] = c;
        }
    } else {
        for (size_t c = 0; c < ncol; c++) {
            int skip = ((int)c == tcol || (int)c == lcol);
            double v;
            int st = 1;

            for (int k = 0; k < nexcl && !skip; k++)
                if (strcasecmp(hdr[c], excl[k]) == 0)
                    skip = 1;
            if (skip)
                continue;
            /* Numeric if its first non-empty cell is a number. */
            for (size_t i = 1; i <= nrows && st == 1; i++)
                st = parse_num(r.f[r.start[i] + c], &v);
            if (st == 0)
                t->feature_col[t->n_features++] = (int)c;
        }
        if (t->n_features == 0) {
            rc = ad_errf(err, errlen, AD_EFORMAT, "%s: no numeric feature column (columns: %s)",
                         name, cols);
            goto fail;
        }
    }
    for (int k = 0; k < t->n_features; k++) {
        t->features[k] = strdup(hdr[t->feature_col[k]]);
        if (t->features[k] == NULL) {
            rc = AD_ENOMEM;
            goto fail;
        }
    }

    /* Convert. */
    {
        size_t nx;
        if (ad_mul_size(nrows, (size_t)t->n_features, &nx) < 0 ||
            ad_mul_size(nx, sizeof(float), &nx) < 0) {
            rc = AD_ENOMEM;
            goto fail;
        }
        t->x = malloc(nx ? nx : 1);
        t->line = malloc(nrows * sizeof(size_t));
        if (t->x == NULL || t->line == NULL) {
            rc = AD_ENOMEM;
            goto fail;
        }
    }
    if (tcol >= 0) {
        double v;
        t->time = malloc(nrows * sizeof(double));
        t->time_name = strdup(hdr[tcol]);
        if (t->time == NULL || t->time_name == NULL) {
            rc = AD_ENOMEM;
            goto fail;
        }
        t->time_is_datetime = ad_parse_datetime(r.f[r.start[1] + tcol], &v) == 0;
    }
    if (lcol >= 0) {
        t->label = malloc(nrows * sizeof(float));
        if (t->label == NULL) {
            rc = AD_ENOMEM;
            goto fail;
        }
    }
    for (size_t i = 0; i < nrows; i++) {
        char **row = r.f + r.start[i + 1];
        size_t ln = r.line[i + 1];
        double v;
        int st;

        t->line[i] = ln;
        for (int k = 0; k < t->n_features; k++) {
            const char *cell = row[t->feature_col[k]];
            st = parse_num(cell, &v);
            if (st < 0) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: column '%s': not a number: '%.40s'",
                             name, ln, t->features[k], cell);
                goto fail;
            }
            if (st == 1)
                v = NAN;
            if (!isfinite(v) || fabs(v) > 3.4e38) {
                if (!o->allow_missing) {
                    rc = ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: column '%s': %s%s%s",
                                 name, ln, t->features[k],
                                 st == 1 ? "empty cell" : "not a finite float: '",
                                 st == 1 ? "" : cell, st == 1 ? "" : "'");
                    goto fail;
                }
                if (st == 0 && isfinite(v))
                    v = v > 0 ? INFINITY : -INFINITY;
            }
            t->x[i * (size_t)t->n_features + (size_t)k] = (float)v;
        }
        if (tcol >= 0) {
            const char *cell = row[tcol];
            if (t->time_is_datetime) {
                if (ad_parse_datetime(cell, &v) < 0) {
                    rc = ad_errf(err, errlen, AD_EFORMAT,
                                 "%s:%zu: column '%s': not a date-time: '%.40s'",
                                 name, ln, hdr[tcol], cell);
                    goto fail;
                }
            } else if (parse_num(cell, &v) != 0 || !isfinite(v)) {
                rc = ad_errf(err, errlen, AD_EFORMAT,
                             "%s:%zu: column '%s': not a time (date-time or number): '%.40s'",
                             name, ln, hdr[tcol], cell);
                goto fail;
            }
            t->time[i] = v;
        }
        if (lcol >= 0) {
            if (parse_num(row[lcol], &v) != 0 || !isfinite(v)) {
                rc = ad_errf(err, errlen, AD_EFORMAT, "%s:%zu: label column '%s': not a number: '%.40s'",
                             name, ln, hdr[lcol], row[lcol]);
                goto fail;
            }
            t->label[i] = (float)v;
        }
    }
    t->n_rows = nrows;
    rowset_free(&r);
    free(b);
    *out = t;
    return 0;

fail:
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
