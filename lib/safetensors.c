/*
 * safetensors.c - a bounds-checked reader and a deterministic writer for the
 * safetensors container (format in model.h), plus the small file helpers the
 * model file needs: read a whole file with a size limit, write a file
 * atomically, and SHA-256 (for the model identity).
 *
 * The reader trusts nothing: the header length is checked against the image
 * size and a maximum before anything is parsed, the header is parsed from a
 * NUL-terminated copy, every entry's types, shape (overflow-checked) and
 * offsets are checked, and the tensors must tile the data section exactly
 * (sorted by offset, each begins where the previous ends). Tensor data is
 * only ever pointed to after all of that succeeded.
 *
 * Byte order: tensors are little-endian; this file (and the model loader,
 * which memcpy()s the floats) assumes a little-endian host.
 */
#include "safetensors.h"
#include "ad.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "anomalyd model files are little-endian; big-endian hosts are not supported"
#endif

/* Integers in JSON are doubles: beyond 2^53 they are not exact. */
#define JSON_MAX_INT 9007199254740992.0

struct ad_st {
    int n;
    ad_st_tensor *t;       /* in header order */
    int *by_name;          /* indices sorted by name, for ad_st_find */
    int n_meta;
    char **meta_key;       /* in header order */
    char **meta_val;
};

/* ------------------------------------------------------------------------ */
/* reader                                                                   */

void ad_st_free(ad_st *st)
{
    int i;

    if (st == NULL)
        return;
    for (i = 0; i < st->n; i++)
        free(st->t[i].name);
    for (i = 0; i < st->n_meta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->t);
    free(st->by_name);
    free(st->meta_key);
    free(st->meta_val);
    free(st);
}

/* Scratch for sorting: offsets of each tensor. */
typedef struct {
    size_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;

    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

/* Sort tensor indices by name (merge sort: qsort has no context pointer). */
static void sort_by_name(ad_st *st, int *idx, int *tmp, int n)
{
    int mid, i, j, k;

    if (n < 2)
        return;
    mid = n / 2;
    sort_by_name(st, idx, tmp, mid);
    sort_by_name(st, idx + mid, tmp, n - mid);
    for (i = 0, j = mid, k = 0; i < mid || j < n; k++) {
        if (j >= n || (i < mid && strcmp(st->t[idx[i]].name,
                                         st->t[idx[j]].name) <= 0))
            tmp[k] = idx[i++];
        else
            tmp[k] = idx[j++];
    }
    memcpy(idx, tmp, (size_t)n * sizeof(int));
}

/* Index of the first byte that is not well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, <= U+10FFFF), or -1 if all of it is. */
static long utf8_bad(const unsigned char *s, size_t n)
{
    size_t i = 0, k, len;
    uint32_t cp;

    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return (long)i;
        }
        if (n - i < len)
            return (long)i;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return (long)i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return (long)i;
        i += len;
    }
    return -1;
}

/* A JSON number that is an integer in 0..max (max <= 2^53). */
static int json_uint(const cJSON *j, double max, double *v)
{
    double x;

    if (!cJSON_IsNumber(j))
        return -1;
    x = j->valuedouble;
    if (!(x >= 0.0 && x <= max) || x != floor(x))
        return -1;
    *v = x;
    return 0;
}

static int parse_meta(ad_st *st, const cJSON *md, const char *name,
                      char *err, size_t errlen)
{
    const cJSON *e;
    int n = 0, i;

    if (!cJSON_IsObject(md))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: __metadata__: expected an object of strings", name);
    for (e = md->child; e != NULL; e = e->next)
        n++;
    st->meta_key = calloc((size_t)n + 1, sizeof(char *));
    st->meta_val = calloc((size_t)n + 1, sizeof(char *));
    if (st->meta_key == NULL || st->meta_val == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
    for (e = md->child; e != NULL; e = e->next) {
        if (!cJSON_IsString(e))
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s: __metadata__ key \"%.60s\": value must be a "
                           "string", name, e->string);
        /* Duplicate keys: JSON readers disagree on which wins; refuse. */
        for (i = 0; i < st->n_meta; i++)
            if (strcmp(st->meta_key[i], e->string) == 0)
                return ad_errf(err, errlen, AD_EFORMAT,
                               "%s: __metadata__ key \"%.60s\" appears twice",
                               name, e->string);
        st->meta_key[st->n_meta] = strdup(e->string);
        st->meta_val[st->n_meta] = strdup(e->valuestring);
        st->n_meta++;
        if (st->meta_key[st->n_meta - 1] == NULL ||
            st->meta_val[st->n_meta - 1] == NULL)
            return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
    }
    return 0;
}

/* Parse one tensor entry; fills t (name, shape, count) and its byte span. */
static int parse_entry(const cJSON *e, ad_st_tensor *t, span *sp,
                       size_t data_len, const char *name,
                       char *err, size_t errlen)
{
    const cJSON *dt, *sh, *off, *d;
    size_t count = 1, bytes;
    double v, b, en;
    int nd = 0;
    const char *tn = e->string;

    if (!cJSON_IsObject(e))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: expected an object with dtype, shape, "
                       "data_offsets", name, tn);
    dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (dt == NULL)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: missing dtype", name, tn);
    if (!cJSON_IsString(dt))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: dtype must be a string", name, tn);
    if (strcmp(dt->valuestring, "F32") != 0)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: dtype %.20s not supported, expected F32",
                       name, tn, dt->valuestring);
    if (sh == NULL)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: missing shape", name, tn);
    if (!cJSON_IsArray(sh))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: shape must be an array", name, tn);
    for (d = sh->child; d != NULL; d = d->next) {
        if (nd >= AD_ST_MAX_DIMS)
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s: tensor %.80s: more than %d dimensions",
                           name, tn, AD_ST_MAX_DIMS);
        if (json_uint(d, JSON_MAX_INT, &v) < 0)
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s: tensor %.80s: shape[%d] must be a non-negative "
                           "integer", name, tn, nd);
        t->shape[nd++] = (int64_t)v;
        if (ad_mul_size(count, (size_t)v, &count))
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s: tensor %.80s: shape overflows (element count "
                           "too large)", name, tn);
    }
    t->ndim = nd;
    if (ad_mul_size(count, sizeof(float), &bytes))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: shape overflows (byte size too large)",
                       name, tn);
    t->count = count;
    if (off == NULL)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: missing data_offsets", name, tn);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_uint(off->child, JSON_MAX_INT, &b) < 0 ||
        json_uint(off->child->next, JSON_MAX_INT, &en) < 0)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: data_offsets must be [begin, end], "
                       "non-negative integers", name, tn);
    if (b > en)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: data_offsets [%.0f,%.0f]: begin > end",
                       name, tn, b, en);
    if (en > (double)data_len)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: data_offsets [%.0f,%.0f] out of range "
                       "(data section is %zu bytes)", name, tn, b, en, data_len);
    sp->begin = (size_t)b;
    sp->end = (size_t)en;
    if (sp->end - sp->begin != bytes)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: tensor %.80s: data_offsets [%zu,%zu] hold %zu bytes, "
                       "shape needs %zu", name, tn, sp->begin, sp->end,
                       sp->end - sp->begin, bytes);
    return 0;
}

int ad_st_parse(ad_st **out, const void *buf, size_t len, const char *name,
                char *err, size_t errlen)
{
    const unsigned char *p = buf;
    ad_st *st = NULL;
    cJSON *root = NULL;
    const cJSON *e;
    char *hdr = NULL;
    span *sp = NULL;
    int *tmp = NULL;
    uint64_t hlen = 0;
    size_t data_len, data_off, expect;
    int i, n = 0, rc;

    if (name == NULL)
        name = "safetensors";
    if (out == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "%s: bad arguments", name);
    *out = NULL;
    if (buf == NULL && len > 0)
        return ad_errf(err, errlen, AD_EINVAL, "%s: bad arguments", name);
    if (len < 8)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header "
                       "length", name, len);
    for (i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > AD_ST_MAX_HEADER)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: not a safetensors file (header length %llu exceeds the maximum %u)", name,
                       (unsigned long long)hlen, AD_ST_MAX_HEADER);
    if (hlen > len - 8)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: header length %llu larger than the file (%zu bytes "
                       "after the length)", name, (unsigned long long)hlen,
                       len - 8);
    if (hlen < 2)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: header length %llu too short for a JSON object",
                       name, (unsigned long long)hlen);
    data_off = 8 + (size_t)hlen;
    data_len = len - data_off;

    /* NUL-terminated copy: cJSON reads C strings; a NUL inside the header
     * would silently truncate it, so refuse those. */
    if (memchr(p + 8, '\0', (size_t)hlen) != NULL)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: header contains a NUL byte", name);
    /* Other readers (Python, Rust) refuse invalid UTF-8; so do we, rather
     * than accept a file they would not. */
    if (utf8_bad(p + 8, (size_t)hlen) >= 0)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: header is not valid UTF-8 (byte %ld of the header)",
                       name, utf8_bad(p + 8, (size_t)hlen));
    hdr = malloc((size_t)hlen + 1);
    st = calloc(1, sizeof(*st));
    if (hdr == NULL || st == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    memcpy(hdr, p + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    root = cJSON_ParseWithOpts(hdr, NULL, 1);
    if (root == NULL) {
        const char *at = cJSON_GetErrorPtr();
        long pos = (at && at >= hdr && at <= hdr + hlen) ? (long)(at - hdr) : -1;
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: header is not valid JSON (near byte %ld of the header)",
                     name, pos);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: header must be a JSON object", name);
        goto fail;
    }

    for (e = root->child; e != NULL; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0)
            n++;
    st->t = calloc((size_t)n + 1, sizeof(*st->t));
    st->by_name = calloc((size_t)n + 1, sizeof(int));
    sp = calloc((size_t)n + 1, sizeof(*sp));
    tmp = calloc((size_t)n + 1, sizeof(int));
    if (st->t == NULL || st->by_name == NULL || sp == NULL || tmp == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
        goto fail;
    }

    for (e = root->child; e != NULL; e = e->next) {
        ad_st_tensor *t;

        if (strcmp(e->string, "__metadata__") == 0) {
            if (st->meta_key != NULL) {
                rc = ad_errf(err, errlen, AD_EFORMAT,
                             "%s: __metadata__ appears twice", name);
                goto fail;
            }
            rc = parse_meta(st, e, name, err, errlen);
            if (rc < 0)
                goto fail;
            continue;
        }
        t = &st->t[st->n];
        rc = parse_entry(e, t, &sp[st->n], data_len, name, err, errlen);
        if (rc < 0)
            goto fail;
        sp[st->n].idx = st->n;
        t->name = strdup(e->string);
        st->n++;
        if (t->name == NULL) {
            rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
            goto fail;
        }
    }

    /* Duplicate names (cJSON keeps both; readers disagree on which wins). */
    for (i = 0; i < st->n; i++)
        st->by_name[i] = i;
    sort_by_name(st, st->by_name, tmp, st->n);
    for (i = 1; i < st->n; i++)
        if (strcmp(st->t[st->by_name[i]].name,
                   st->t[st->by_name[i - 1]].name) == 0) {
            rc = ad_errf(err, errlen, AD_EFORMAT,
                         "%s: tensor %.80s appears twice in the header", name,
                         st->t[st->by_name[i]].name);
            goto fail;
        }

    /* The tensors must tile [0, data_len) exactly: no overlap, no gap. */
    qsort(sp, (size_t)st->n, sizeof(*sp), span_cmp);
    expect = 0;
    for (i = 0; i < st->n; i++) {
        if (sp[i].begin < expect) {
            rc = ad_errf(err, errlen, AD_EFORMAT,
                         "%s: tensor %.80s: data_offsets [%zu,%zu] overlap "
                         "tensor %.80s", name, st->t[sp[i].idx].name,
                         sp[i].begin, sp[i].end, st->t[sp[i - 1].idx].name);
            goto fail;
        }
        if (sp[i].begin > expect) {
            rc = ad_errf(err, errlen, AD_EFORMAT,
                         "%s: gap in the data section: bytes %zu..%zu belong "
                         "to no tensor", name, expect, sp[i].begin);
            goto fail;
        }
        expect = sp[i].end;
        st->t[sp[i].idx].data = (const float *)(const void *)
                                (p + data_off + sp[i].begin);
    }
    if (expect != data_len) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: gap in the data section: bytes %zu..%zu belong to no "
                     "tensor", name, expect, data_len);
        goto fail;
    }

    cJSON_Delete(root);
    free(hdr);
    free(sp);
    free(tmp);
    *out = st;
    return 0;
fail:
    cJSON_Delete(root);
    free(hdr);
    free(sp);
    free(tmp);
    ad_st_free(st);
    return rc;
}

int ad_st_count(const ad_st *st)
{
    return st ? st->n : 0;
}

const ad_st_tensor *ad_st_at(const ad_st *st, int i)
{
    if (st == NULL || i < 0 || i >= st->n)
        return NULL;
    return &st->t[i];
}

const ad_st_tensor *ad_st_find(const ad_st *st, const char *name)
{
    int lo = 0, hi, mid, c;

    if (st == NULL || name == NULL)
        return NULL;
    hi = st->n - 1;
    while (lo <= hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(name, st->t[st->by_name[mid]].name);
        if (c == 0)
            return &st->t[st->by_name[mid]];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *ad_st_meta(const ad_st *st, const char *key)
{
    int i;

    if (st == NULL || key == NULL)
        return NULL;
    for (i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_key[i], key) == 0)
            return st->meta_val[i];
    return NULL;
}

int ad_st_meta_count(const ad_st *st)
{
    return st ? st->n_meta : 0;
}

const char *ad_st_meta_key(const ad_st *st, int i)
{
    if (st == NULL || i < 0 || i >= st->n_meta)
        return NULL;
    return st->meta_key[i];
}

/* ------------------------------------------------------------------------ */
/* writer                                                                   */

typedef struct {
    char *name;
    int ndim;
    int64_t shape[AD_ST_MAX_DIMS];
    size_t count;
    float *data;
} wtensor;

struct ad_st_writer {
    int n, cap;
    wtensor *t;
    int n_meta, cap_meta;
    char **meta_key, **meta_val;
};

/* A JSON string literal: quotes, backslash and control bytes escaped the way
 * cJSON and Python's json.dumps(ensure_ascii=False) do; other bytes (UTF-8)
 * copied as they are. */
static void sb_jstr(ad_buf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i, start = 0;

    ad_buf_put(b, "\"", 1);
    for (i = 0; u[i] != '\0'; i++) {
        unsigned char c = u[i];
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        ad_buf_put(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': ad_buf_put(b, "\\\"", 2); break;
        case '\\': ad_buf_put(b, "\\\\", 2); break;
        case '\n': ad_buf_put(b, "\\n", 2); break;
        case '\r': ad_buf_put(b, "\\r", 2); break;
        case '\t': ad_buf_put(b, "\\t", 2); break;
        case '\b': ad_buf_put(b, "\\b", 2); break;
        case '\f': ad_buf_put(b, "\\f", 2); break;
        default: ad_buf_printf(b, "\\u%04x", c); break;
        }
    }
    ad_buf_put(b, s + start, i - start);
    ad_buf_put(b, "\"", 1);
}

ad_st_writer *ad_st_writer_new(void)
{
    return calloc(1, sizeof(ad_st_writer));
}

void ad_st_writer_free(ad_st_writer *w)
{
    int i;

    if (w == NULL)
        return;
    for (i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (i = 0; i < w->n_meta; i++) {
        free(w->meta_key[i]);
        free(w->meta_val[i]);
    }
    free(w->t);
    free(w->meta_key);
    free(w->meta_val);
    free(w);
}

int ad_st_writer_meta(ad_st_writer *w, const char *key, const char *value)
{
    char *k, *v;
    int i;

    if (w == NULL || key == NULL || value == NULL)
        return AD_EINVAL;
    for (i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_key[i], key) == 0)
            return AD_EINVAL;
    if (w->n_meta == w->cap_meta) {
        int nc = w->cap_meta ? w->cap_meta * 2 : 8;
        char **nk = realloc(w->meta_key, (size_t)nc * sizeof(char *));
        char **nv;
        if (nk == NULL)
            return AD_ENOMEM;
        w->meta_key = nk;
        nv = realloc(w->meta_val, (size_t)nc * sizeof(char *));
        if (nv == NULL)
            return AD_ENOMEM;
        w->meta_val = nv;
        w->cap_meta = nc;
    }
    k = strdup(key);
    v = strdup(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return AD_ENOMEM;
    }
    w->meta_key[w->n_meta] = k;
    w->meta_val[w->n_meta] = v;
    w->n_meta++;
    return 0;
}

int ad_st_writer_add(ad_st_writer *w, const char *name, const float *data,
                     int ndim, const int64_t *shape)
{
    wtensor *t;
    size_t count = 1, bytes;
    int i;

    if (w == NULL || name == NULL || name[0] == '\0' ||
        strcmp(name, "__metadata__") == 0 || ndim < 0 ||
        ndim > AD_ST_MAX_DIMS || (ndim > 0 && shape == NULL))
        return AD_EINVAL;
    for (i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return AD_EINVAL;
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return AD_EINVAL;
        if (ad_mul_size(count, (size_t)shape[i], &count))
            return AD_ERANGE;
    }
    if (ad_mul_size(count, sizeof(float), &bytes))
        return AD_ERANGE;
    if (count > 0 && data == NULL)
        return AD_EINVAL;
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 16;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof(*nt));
        if (nt == NULL)
            return AD_ENOMEM;
        w->t = nt;
        w->cap = nc;
    }
    t = &w->t[w->n];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    t->data = malloc(bytes ? bytes : 1);
    if (t->name == NULL || t->data == NULL) {
        free(t->name);
        free(t->data);
        return AD_ENOMEM;
    }
    if (bytes)
        memcpy(t->data, data, bytes);
    t->ndim = ndim;
    for (i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->count = count;
    w->n++;
    return 0;
}

/*
 * Layout: header keys in insertion order, "__metadata__" first (its keys in
 * insertion order), then the tensors, whose data follow in the same order.
 * The header is compact JSON padded with spaces to a multiple of 8 bytes so
 * the data section starts 8-byte aligned. Same inputs, same bytes.
 */
int ad_st_writer_finish(ad_st_writer *w, void **buf, size_t *len)
{
    ad_buf h = {0};
    size_t off = 0, total, hl;
    unsigned char *out;
    int i, j;

    if (w == NULL || buf == NULL || len == NULL)
        return AD_EINVAL;
    *buf = NULL;
    *len = 0;
    ad_buf_put(&h, "{", 1);
    if (w->n_meta > 0) {
        ad_buf_puts(&h, "\"__metadata__\":{");
        for (i = 0; i < w->n_meta; i++) {
            if (i > 0)
                ad_buf_put(&h, ",", 1);
            sb_jstr(&h, w->meta_key[i]);
            ad_buf_put(&h, ":", 1);
            sb_jstr(&h, w->meta_val[i]);
        }
        ad_buf_put(&h, "}", 1);
    }
    for (i = 0; i < w->n; i++) {
        const wtensor *t = &w->t[i];
        size_t bytes = t->count * sizeof(float);

        if (i > 0 || w->n_meta > 0)
            ad_buf_put(&h, ",", 1);
        sb_jstr(&h, t->name);
        ad_buf_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (j = 0; j < t->ndim; j++)
            ad_buf_printf(&h, "%s%lld", j ? "," : "", (long long)t->shape[j]);
        ad_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        if (ad_add_size(off, bytes, &off)) {
            free(h.s);
            return AD_ERANGE;
        }
    }
    ad_buf_put(&h, "}", 1);
    while (!h.oom && h.len % 8 != 0)
        ad_buf_put(&h, " ", 1);
    if (h.oom) {
        free(h.s);
        return AD_ENOMEM;
    }
    hl = h.len;
    if (hl > AD_ST_MAX_HEADER || ad_add_size(8 + hl, off, &total)) {
        free(h.s);
        return AD_ERANGE;
    }
    out = malloc(total);
    if (out == NULL) {
        free(h.s);
        return AD_ENOMEM;
    }
    for (i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, h.s, hl);
    free(h.s);
    off = 8 + hl;
    for (i = 0; i < w->n; i++) {
        size_t bytes = w->t[i].count * sizeof(float);
        if (bytes)
            memcpy(out + off, w->t[i].data, bytes);
        off += bytes;
    }
    *buf = out;
    *len = total;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4)                                                     */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *b)
{
    uint32_t w[64], a, bb, c, d, e, f, g, hh, t1, t2;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; bb = h[1]; c = h[2]; d = h[3];
    e = h[4]; f = h[5]; g = h[6]; hh = h[7];
    for (i = 0; i < 64; i++) {
        t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
             sha_k[i] + w[i];
        t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
             ((a & bb) ^ (a & c) ^ (bb & c));
        hh = g; g = f; f = e; e = d + t1;
        d = c; c = bb; bb = a; a = t1 + t2;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void ad_sha256_hex(const void *buf, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    const unsigned char *p = buf;
    unsigned char last[128];
    size_t full = len / 64 * 64, rest = len - full, n;
    uint64_t bits = (uint64_t)len * 8;
    int i;

    for (n = 0; n < full; n += 64)
        sha256_block(h, p + n);
    /* Padding: 0x80, zeros, 64-bit big-endian bit length; 1 or 2 blocks. */
    memset(last, 0, sizeof(last));
    if (rest)
        memcpy(last, p + full, rest);
    last[rest] = 0x80;
    n = rest + 1 + 8 <= 64 ? 64 : 128;
    for (i = 0; i < 8; i++)
        last[n - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, last);
    if (n == 128)
        sha256_block(h, last + 64);
    for (i = 0; i < 32; i++) {
        unsigned v = (h[i / 4] >> (24 - 8 * (i % 4))) & 0xff;
        hex[2 * i] = digits[v >> 4];
        hex[2 * i + 1] = digits[v & 15];
    }
    hex[64] = '\0';
}
