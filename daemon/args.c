/*
 * args.c - the table-driven command-line parser shared by every command
 * (args.h): value checking with messages naming the option, and --help
 * text generated from the same table.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "args.h"

static int choice_index(const char *list, const char *s)
{
    size_t n = strlen(s);
    int i = 0;
    for (const char *p = list;; i++) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, s, n) == 0)
            return i;
        if (!e)
            return -1;
        p = e + 1;
    }
}

/* Store one option value; 0, or -1 with the message in err. */
static int set_value(const ad_arg *a, const char *v, char *err, size_t errlen)
{
    char *end;
    double d;
    long long ll;
    unsigned long long ull;

    switch (a->type) {
    case AD_ARG_STR:
        *(const char **)a->dst = v;
        return 0;
    case AD_ARG_INT: case AD_ARG_LONG:
        errno = 0;
        ll = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno != 0 || ll < (long long)a->min ||
            ll > (long long)a->max)
            return ad_errf(err, errlen, -1, "expected an integer %.0f..%.0f, got '%s'",
                           a->min, a->max, v);
        if (a->type == AD_ARG_INT)
            *(int *)a->dst = (int)ll;
        else
            *(long *)a->dst = (long)ll;
        return 0;
    case AD_ARG_U64:
        errno = 0;
        ull = strtoull(v, &end, 10);
        if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0)
            return ad_errf(err, errlen, -1, "expected a non-negative integer, got '%s'", v);
        *(uint64_t *)a->dst = (uint64_t)ull;
        return 0;
    case AD_ARG_NUM: case AD_ARG_FLOAT: case AD_ARG_SECONDS:
        errno = 0;
        d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || !isfinite(d) || d < a->min || d > a->max)
            return ad_errf(err, errlen, -1, "expected a number in [%g, %g], got '%s'",
                           a->min, a->max, v);
        if (a->type == AD_ARG_NUM)
            *(double *)a->dst = d;
        else if (a->type == AD_ARG_FLOAT)
            *(float *)a->dst = (float)d;
        else
            *(int64_t *)a->dst = (int64_t)llround(d * 1000.0);
        return 0;
    case AD_ARG_CHOICE: {
        int i = choice_index(a->choices, v);
        if (i < 0)
            return ad_errf(err, errlen, -1, "expected %s, got '%s'", a->choices, v);
        *(int *)a->dst = i;
        return 0;
    }
    case AD_ARG_SEP:
        if (strcmp(v, "tab") == 0 || strcmp(v, "\\t") == 0 || strcmp(v, "\t") == 0)
            *(char *)a->dst = '\t';
        else if (strlen(v) == 1 && v[0] != '\n' && v[0] != '"')
            *(char *)a->dst = v[0];
        else
            return ad_errf(err, errlen, -1, "expected one character or 'tab', got '%s'", v);
        return 0;
    case AD_ARG_CBUF:
        if (v[0] == '\0' || strlen(v) + 1 > (size_t)a->max)
            return ad_errf(err, errlen, -1, "expected 1 to %d characters, got '%s'",
                           (int)a->max - 1, v);
        memcpy(a->dst, v, strlen(v) + 1);
        return 0;
    default:
        return ad_errf(err, errlen, -1, "bad option table");
    }
}

static const ad_arg *find_long(const ad_arg *tab, const char *name, size_t n)
{
    for (const ad_arg *a = tab; a->type != AD_ARG_END_; a++)
        if (a->name && strlen(a->name) == n && strncmp(a->name, name, n) == 0)
            return a;
    return NULL;
}

static const ad_arg *find_short(const ad_arg *tab, char c)
{
    for (const ad_arg *a = tab; a->type != AD_ARG_END_; a++)
        if (a->name && a->short_name == c)
            return a;
    return NULL;
}

int ad_args_parse(const char *cmd, const ad_arg *tab, int argc, char **argv,
                  const char **pos, int max_pos, int *npos)
{
    int np = 0, only_pos = 0;
    char err[256];

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *val = NULL;
        const ad_arg *a;
        char shown[80];

        if (only_pos || s[0] != '-' || s[1] == '\0') {
            if (np >= max_pos) {
                fprintf(stderr, "anomalyd %s: unexpected argument '%s'\n", cmd, s);
                return 2;
            }
            pos[np++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)
            return 1;
        if (s[1] == '-') {
            const char *eq = strchr(s + 2, '=');
            size_t n = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
            a = find_long(tab, s + 2, n);
            snprintf(shown, sizeof shown, "--%.*s", (int)(n < 60 ? n : 60), s + 2);
            if (eq)
                val = eq + 1;
        } else {
            a = find_short(tab, s[1]);
            snprintf(shown, sizeof shown, "-%c", s[1]);
            if (s[2])
                val = s + 2;
        }
        if (!a) {
            fprintf(stderr, "anomalyd %s: unknown option '%s' (see 'anomalyd %s --help')\n",
                    cmd, shown, cmd);
            return 2;
        }
        snprintf(shown, sizeof shown, "--%s", a->name);
        if (a->type == AD_ARG_FLAG) {
            if (val) {
                fprintf(stderr, "anomalyd %s: %s: takes no value\n", cmd, shown);
                return 2;
            }
            *(int *)a->dst = 1;
        } else {
            if (!val) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "anomalyd %s: %s: missing value%s%s\n", cmd, shown,
                            a->meta ? " " : "", a->meta ? a->meta : "");
                    return 2;
                }
                val = argv[++i];
            }
            if (set_value(a, val, err, sizeof err)) {
                fprintf(stderr, "anomalyd %s: %s: %s\n", cmd, shown, err);
                return 2;
            }
        }
        if (a->seen)
            *a->seen = 1;
    }
    if (npos)
        *npos = np;
    return 0;
}

/* The current value of *dst as default text ("" when none). */
static void default_text(const ad_arg *a, char *out, size_t len)
{
    out[0] = '\0';
    switch (a->type) {
    case AD_ARG_STR:
        if (*(const char *const *)a->dst)
            snprintf(out, len, "%s", *(const char *const *)a->dst);
        break;
    case AD_ARG_INT: snprintf(out, len, "%d", *(const int *)a->dst); break;
    case AD_ARG_LONG: snprintf(out, len, "%ld", *(const long *)a->dst); break;
    case AD_ARG_U64:
        snprintf(out, len, "%llu", (unsigned long long)*(const uint64_t *)a->dst);
        break;
    case AD_ARG_NUM: snprintf(out, len, "%g", *(const double *)a->dst); break;
    case AD_ARG_FLOAT: snprintf(out, len, "%g", (double)*(const float *)a->dst); break;
    case AD_ARG_SECONDS:
        snprintf(out, len, "%g", (double)*(const int64_t *)a->dst / 1000.0);
        break;
    case AD_ARG_CHOICE: {
        const char *p = a->choices, *e;
        for (int n = *(const int *)a->dst; n > 0 && (e = strchr(p, '|')); n--)
            p = e + 1;
        e = strchr(p, '|');
        snprintf(out, len, "%.*s", (int)(e ? (size_t)(e - p) : strlen(p)), p);
        break;
    }
    case AD_ARG_CBUF: snprintf(out, len, "%s", (const char *)a->dst); break;
    default: break;
    }
}

void ad_args_help(FILE *f, const ad_arg *tab)
{
    enum { COL = 26 };
    for (const ad_arg *a = tab; a->type != AD_ARG_END_; a++) {
        char spec[96], def[64];
        const char *h = a->help ? a->help : "", *nl;
        int n;

        if (a->type == AD_ARG_GROUP_) {
            fprintf(f, "%s:\n", a->help);
            continue;
        }
        n = snprintf(spec, sizeof spec, "  %c%c%s--%s%s%s",
                     a->short_name ? '-' : ' ', a->short_name ? a->short_name : ' ',
                     a->short_name ? ", " : "  ", a->name, a->meta ? " " : "",
                     a->meta ? a->meta : "");
        fprintf(f, "%s", spec);
        if (n + 2 > COL)
            fprintf(f, "\n%*s", COL, "");
        else
            fprintf(f, "%*s", COL - n, "");
        def[0] = '\0';
        if (a->flags & AD_ARG_DEF)
            default_text(a, def, sizeof def);
        while ((nl = strchr(h, '\n'))) {
            fprintf(f, "%.*s\n%*s", (int)(nl - h), h, COL, "");
            h = nl + 1;
        }
        fprintf(f, "%s", h);
        if (def[0])
            fprintf(f, "%s(default %s)", h[0] ? " " : "", def);
        fputc('\n', f);
    }
    fprintf(f, "  -h, --help%*sthis text\n", COL - 12, "");
}

char **ad_args_split(const char *s, int *n, char *err, size_t errlen)
{
    char **v;
    int k = 1, i = 0;

    for (const char *p = s; *p; p++)
        k += *p == ',';
    if (!(v = calloc((size_t)k + 1, sizeof *v))) {
        ad_errf(err, errlen, AD_ENOMEM, "out of memory");
        return NULL;
    }
    for (const char *p = s;; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) {
            ad_errf(err, errlen, AD_EINVAL, "empty item in '%s'", s);
            goto fail;
        }
        if (!(v[i] = strndup(p, len))) {
            ad_errf(err, errlen, AD_ENOMEM, "out of memory");
            goto fail;
        }
        if (!e)
            break;
        p = e + 1;
    }
    *n = i + 1;
    return v;
fail:
    ad_args_split_free(v);
    return NULL;
}

void ad_args_split_free(char **v)
{
    if (!v)
        return;
    for (int i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}
