/*
 * model_file.c - the model file (format in model.h, docs/model-format.md):
 * load a safetensors image into an ad_model after validating every
 * metadata value and every tensor against the architecture, and serialise a
 * model back, deterministically, so the same model always gives the same
 * bytes and the same identity (first 16 hex digits of the file's SHA-256).
 *
 * Loading never allocates in proportion to what the header *claims* before
 * it has checked that the file really holds that much: the architecture's
 * shapes are derived first and every expected tensor is found with its exact
 * shape inside the (already bounds-checked) data section; only then is the
 * parameter block allocated and filled.
 */
#include "model.h"
#include "safetensors.h"
#include "ad.h"

#include <cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shape derivation, defined in model.c (library-internal, not in model.h). */
int ad_model_derive_(int window, int n_features, const ad_layer_spec *specs,
                     int n_layers, ad_layer *layers, size_t *n_params,
                     char *err, size_t errlen);

/* Largest model file ad_model_load() reads (4 GiB). */
#define MODEL_FILE_MAX ((size_t)1 << 32)

/* The tensors one layer needs: name suffix and shape (2-D or 1-D). */
typedef struct {
    char name[48];
    int ndim;
    int64_t shape[2];
    size_t count;
} want_t;

/* Expected tensors of layer i, in params order; returns how many (0..3). */
static int layer_tensors(const ad_layer *L, int i, want_t w[3])
{
    int64_t d = L->in_d, u = L->spec.units;
    int n = 0;

    switch (L->spec.type) {
    case AD_LAYER_LSTM:
        snprintf(w[n].name, sizeof(w[n].name), "layers.%d.kernel", i);
        w[n].ndim = 2; w[n].shape[0] = d; w[n].shape[1] = 4 * u; n++;
        snprintf(w[n].name, sizeof(w[n].name), "layers.%d.recurrent_kernel", i);
        w[n].ndim = 2; w[n].shape[0] = u; w[n].shape[1] = 4 * u; n++;
        snprintf(w[n].name, sizeof(w[n].name), "layers.%d.bias", i);
        w[n].ndim = 1; w[n].shape[0] = 4 * u; w[n].shape[1] = 1; n++;
        break;
    case AD_LAYER_TD_DENSE:
    case AD_LAYER_DENSE:
        snprintf(w[n].name, sizeof(w[n].name), "layers.%d.kernel", i);
        w[n].ndim = 2; w[n].shape[0] = d; w[n].shape[1] = u; n++;
        snprintf(w[n].name, sizeof(w[n].name), "layers.%d.bias", i);
        w[n].ndim = 1; w[n].shape[0] = u; w[n].shape[1] = 1; n++;
        break;
    default:
        break;
    }
    for (i = 0; i < n; i++)
        w[i].count = (size_t)w[i].shape[0] * (size_t)w[i].shape[1];
    return n;
}

static void shape_fmt(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t len = 0;
    int i;

    len += (size_t)snprintf(buf, n, "[");
    for (i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? "," : "",
                                (long long)shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

/* ------------------------------------------------------------------------ */
/* metadata parsing                                                         */

static const char *need_meta(const ad_st *st, const char *key, const char *name,
                             int *rc, char *err, size_t errlen)
{
    const char *v = ad_st_meta(st, key);

    if (v == NULL)
        *rc = ad_errf(err, errlen, AD_EFORMAT,
                      "%s: metadata key \"%s\" missing (not an anomalyd model?)",
                      name, key);
    return v;
}

/* A decimal integer 1..max, digits only. */
static int parse_pos_int(const char *s, long max, int *out)
{
    long v = 0;
    int n = 0;

    if (s[0] == '\0')
        return -1;
    for (; *s; s++, n++) {
        if (*s < '0' || *s > '9' || n > 9)
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v < 1 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_features(const char *json, const char *name,
                          char ***out, int *n_out, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithOpts(json, NULL, 1);
    const cJSON *e;
    char **f = NULL;
    int n, i = 0, j, rc = 0;

    if (root == NULL || !cJSON_IsArray(root)) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"features\": expected a JSON array of "
                     "feature names", name);
        goto done;
    }
    n = cJSON_GetArraySize(root);
    if (n < 1 || n > AD_MAX_FEATURES) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"features\": %d names, expected 1..%d",
                     name, n, AD_MAX_FEATURES);
        goto done;
    }
    f = calloc((size_t)n, sizeof(char *));
    if (f == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    for (e = root->child; e != NULL; e = e->next, i++) {
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0') {
            rc = ad_errf(err, errlen, AD_EFORMAT,
                         "%s: metadata \"features\"[%d]: expected a non-empty "
                         "string", name, i);
            goto done;
        }
        for (j = 0; j < i; j++)
            if (strcmp(f[j], e->valuestring) == 0) {
                rc = ad_errf(err, errlen, AD_EFORMAT,
                             "%s: metadata \"features\"[%d]: duplicate feature "
                             "name \"%.60s\"", name, i, e->valuestring);
                goto done;
            }
        if ((f[i] = strdup(e->valuestring)) == NULL) {
            rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
            goto done;
        }
    }
    *out = f;
    *n_out = n;
    f = NULL;
done:
    if (f != NULL) {
        for (j = 0; j < i; j++)
            free(f[j]);
        free(f);
    }
    cJSON_Delete(root);
    return rc;
}

/* Read scaler array `key` of F floats into v; checks finiteness. */
static int scaler_array(const cJSON *o, const char *key, int F, float *v,
                        const char *name, char *err, size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    int i = 0;

    if (!cJSON_IsArray(a))
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: metadata \"scaler\".%s: expected an array of %d "
                       "numbers", name, key, F);
    if (cJSON_GetArraySize(a) != F)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: metadata \"scaler\".%s: %d values, expected %d "
                       "(one per feature)", name, key, cJSON_GetArraySize(a), F);
    for (e = a->child; e != NULL; e = e->next, i++) {
        if (!cJSON_IsNumber(e))
            return ad_errf(err, errlen, AD_EFORMAT,
                           "%s: metadata \"scaler\".%s[%d]: expected a number",
                           name, key, i);
        if (!isfinite(e->valuedouble) || fabs(e->valuedouble) > FLT_MAX)
            return ad_errf(err, errlen, AD_ENONFINITE,
                           "%s: metadata \"scaler\".%s[%d]: %g is not a finite "
                           "float", name, key, i, e->valuedouble);
        v[i] = (float)e->valuedouble;
    }
    return 0;
}

static int parse_scaler(ad_model *m, const char *json, const char *name,
                        char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithOpts(json, NULL, 1);
    const cJSON *ty;
    int F = m->n_features, i, rc = 0;
    ad_scaler_type type;
    float *a = NULL, *b = NULL;

    if (root == NULL || !cJSON_IsObject(root)) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"scaler\": expected a JSON object", name);
        goto done;
    }
    ty = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (!cJSON_IsString(ty)) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"scaler\".type: expected \"standard\", "
                     "\"minmax\" or \"none\"", name);
        goto done;
    }
    if (strcmp(ty->valuestring, "none") == 0) {
        m->scaler = AD_SCALER_NONE;
        goto done;
    }
    if (strcmp(ty->valuestring, "standard") == 0) {
        type = AD_SCALER_STANDARD;
    } else if (strcmp(ty->valuestring, "minmax") == 0) {
        type = AD_SCALER_MINMAX;
    } else {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"scaler\".type: \"%.40s\" unknown, expected "
                     "\"standard\", \"minmax\" or \"none\"", name,
                     ty->valuestring);
        goto done;
    }
    a = malloc((size_t)F * sizeof(float));
    b = malloc((size_t)F * sizeof(float));
    if (a == NULL || b == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    if (type == AD_SCALER_STANDARD) {
        if ((rc = scaler_array(root, "mean", F, a, name, err, errlen)) < 0 ||
            (rc = scaler_array(root, "std", F, b, name, err, errlen)) < 0)
            goto done;
        for (i = 0; i < F; i++)
            if (!(b[i] > 0.0f)) {
                rc = ad_errf(err, errlen, AD_ERANGE,
                             "%s: metadata \"scaler\".std[%d]: %g, expected a "
                             "number > 0", name, i, (double)b[i]);
                goto done;
            }
    } else {
        if ((rc = scaler_array(root, "min", F, a, name, err, errlen)) < 0 ||
            (rc = scaler_array(root, "max", F, b, name, err, errlen)) < 0)
            goto done;
        for (i = 0; i < F; i++)
            if (!(b[i] > a[i]) || !isfinite(b[i] - a[i])) {
                rc = ad_errf(err, errlen, AD_ERANGE,
                             "%s: metadata \"scaler\": max[%d] = %g must be "
                             "greater than min[%d] = %g", name, i,
                             (double)b[i], i, (double)a[i]);
                goto done;
            }
    }
    rc = ad_model_set_scaler(m, type, a, b);
    if (rc < 0)
        rc = ad_errf(err, errlen, rc, "%s: metadata \"scaler\": invalid", name);
done:
    free(a);
    free(b);
    cJSON_Delete(root);
    return rc;
}

/* Optional JSON-object metadata (provenance, training): copied if present. */
static int opt_json_object(const ad_st *st, const char *key, char **out,
                           const char *name, char *err, size_t errlen)
{
    const char *v = ad_st_meta(st, key);
    cJSON *j;
    int ok;

    *out = NULL;
    if (v == NULL)
        return 0;
    j = cJSON_ParseWithOpts(v, NULL, 1);
    ok = j != NULL && cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok)
        return ad_errf(err, errlen, AD_EFORMAT,
                       "%s: metadata \"%s\": expected a JSON object", name, key);
    *out = strdup(v);
    if (*out == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* load                                                                     */

int ad_model_load_mem(ad_model **out, const void *buf, size_t len,
                      const char *name, char *err, size_t errlen)
{
    ad_st *st = NULL;
    ad_model *m = NULL;
    ad_layer_spec specs[AD_MAX_LAYERS];
    ad_layer *layers = NULL;
    char **feat = NULL;
    int n_feat = 0, n_layers = 0, window = 0, n_want = 0, rc, i, j, k;
    const char *v;
    char msg[512], s1[96], s2[96], hex[65];
    size_t np = 0;
    want_t (*want)[3] = NULL;
    int n_per[AD_MAX_LAYERS];

    if (name == NULL)
        name = "model";
    if (out == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "%s: bad arguments", name);
    *out = NULL;

    rc = ad_st_parse(&st, buf, len, name, err, errlen);
    if (rc < 0)
        return rc;

    /* metadata, in the order a user would fix them */
    if ((v = need_meta(st, "format", name, &rc, err, errlen)) == NULL)
        goto fail;
    if (strcmp(v, AD_MODEL_FORMAT) != 0) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"format\": \"%.40s\", expected \"%s\"",
                     name, v, AD_MODEL_FORMAT);
        goto fail;
    }
    if ((v = need_meta(st, "format_version", name, &rc, err, errlen)) == NULL)
        goto fail;
    if (strcmp(v, "1") != 0) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"format_version\": \"%.20s\", this anomalyd "
                     "reads format_version \"%d\"", name, v,
                     AD_MODEL_FORMAT_VERSION);
        goto fail;
    }
    if ((v = need_meta(st, "window", name, &rc, err, errlen)) == NULL)
        goto fail;
    if (parse_pos_int(v, AD_MAX_WINDOW, &window) < 0) {
        rc = ad_errf(err, errlen, AD_EFORMAT,
                     "%s: metadata \"window\": \"%.20s\", expected an integer "
                     "1..%d", name, v, AD_MAX_WINDOW);
        goto fail;
    }
    if ((v = need_meta(st, "features", name, &rc, err, errlen)) == NULL)
        goto fail;
    rc = parse_features(v, name, &feat, &n_feat, err, errlen);
    if (rc < 0)
        goto fail;
    if ((v = need_meta(st, "architecture", name, &rc, err, errlen)) == NULL)
        goto fail;
    rc = ad_arch_parse(v, specs, AD_MAX_LAYERS, &n_layers, msg, sizeof(msg));
    if (rc < 0) {
        rc = ad_errf(err, errlen, rc, "%s: metadata %s", name, msg);
        goto fail;
    }
    if ((v = need_meta(st, "scaler", name, &rc, err, errlen)) == NULL)
        goto fail;

    /* shapes, before allocating anything sized by the architecture */
    layers = calloc(AD_MAX_LAYERS, sizeof(*layers));
    want = calloc(AD_MAX_LAYERS, sizeof(*want));
    if (layers == NULL || want == NULL) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    rc = ad_model_derive_(window, n_feat, specs, n_layers, layers, &np,
                          msg, sizeof(msg));
    if (rc < 0) {
        rc = ad_errf(err, errlen, rc, "%s: architecture: %s (features: %d, "
                     "window: %d)", name, msg, n_feat, window);
        goto fail;
    }
    for (i = 0; i < n_layers; i++) {
        n_per[i] = layer_tensors(&layers[i], i, want[i]);
        for (j = 0; j < n_per[i]; j++) {
            const want_t *w = &want[i][j];
            const ad_st_tensor *t = ad_st_find(st, w->name);
            int same;

            shape_fmt(s2, sizeof(s2), w->ndim, w->shape);
            if (t == NULL) {
                rc = ad_errf(err, errlen, AD_EFORMAT,
                             "%s: tensor %s missing (layer %d (%s) needs shape "
                             "%s)", name, w->name, i,
                             ad_layer_type_name(layers[i].spec.type), s2);
                goto fail;
            }
            same = t->ndim == w->ndim;
            for (k = 0; same && k < w->ndim; k++)
                same = t->shape[k] == w->shape[k];
            if (!same) {
                shape_fmt(s1, sizeof(s1), t->ndim, t->shape);
                rc = ad_errf(err, errlen, AD_ESHAPE,
                             "%s: tensor %s: shape %s, expected %s", name,
                             w->name, s1, s2);
                goto fail;
            }
            n_want++;
        }
    }
    if (n_want != ad_st_count(st)) {
        /* some tensor is not one the architecture uses: name it */
        for (k = 0; k < ad_st_count(st); k++) {
            const char *tn = ad_st_at(st, k)->name;
            int found = 0;
            for (i = 0; i < n_layers && !found; i++)
                for (j = 0; j < n_per[i] && !found; j++)
                    found = strcmp(tn, want[i][j].name) == 0;
            if (!found) {
                rc = ad_errf(err, errlen, AD_EFORMAT,
                             "%s: unexpected tensor %.80s (not used by the "
                             "architecture)", name, tn);
                goto fail;
            }
        }
    }

    /* every expected tensor is in the file, so np floats fit in it */
    rc = ad_model_create(&m, window, n_feat, specs, n_layers, msg, sizeof(msg));
    if (rc < 0) {
        rc = ad_errf(err, errlen, rc, "%s: %s", name, msg);
        goto fail;
    }
    for (i = 0; i < n_layers; i++) {
        ad_layer *L = &m->layers[i];
        float *dst[3];
        int nd = 0;

        if (L->kernel) dst[nd++] = L->kernel;
        if (L->recurrent) dst[nd++] = L->recurrent;
        if (L->bias) dst[nd++] = L->bias;
        for (j = 0; j < n_per[i] && j < nd; j++) {
            const ad_st_tensor *t = ad_st_find(st, want[i][j].name);
            size_t q;

            /* data may be unaligned in the image: copy bytes, then check */
            memcpy(dst[j], (const void *)t->data, t->count * sizeof(float));
            for (q = 0; q < t->count; q++)
                if (!isfinite(dst[j][q])) {
                    rc = ad_errf(err, errlen, AD_ENONFINITE,
                                 "%s: tensor %s[%zu]: %s, weights must be finite",
                                 name, want[i][j].name, q,
                                 isnan(dst[j][q]) ? "NaN" : "Inf");
                    goto fail;
                }
        }
    }
    /* features: replace the default names (ownership moves) */
    for (i = 0; i < m->n_features; i++)
        free(m->features[i]);
    free(m->features);
    m->features = feat;
    feat = NULL;

    rc = parse_scaler(m, ad_st_meta(st, "scaler"), name, err, errlen);
    if (rc < 0)
        goto fail;
    if ((rc = opt_json_object(st, "provenance", &m->provenance, name, err,
                              errlen)) < 0 ||
        (rc = opt_json_object(st, "training", &m->training, name, err,
                              errlen)) < 0)
        goto fail;

    ad_sha256_hex(buf, len, hex);
    memcpy(m->id, hex, AD_MODEL_ID_LEN);
    m->id[AD_MODEL_ID_LEN] = '\0';

    free(layers);
    free(want);
    ad_st_free(st);
    *out = m;
    return 0;
fail:
    if (feat != NULL) {
        for (i = 0; i < n_feat; i++)
            free(feat[i]);
        free(feat);
    }
    free(layers);
    free(want);
    ad_model_free(m);
    ad_st_free(st);
    return rc;
}

int ad_model_load(ad_model **out, const char *path, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t len = 0;
    int rc;

    if (out == NULL || path == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "ad_model_load: bad arguments");
    *out = NULL;
    rc = ad_read_file(path, MODEL_FILE_MAX, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = ad_model_load_mem(out, buf, len, path, err, errlen);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* serialise                                                                */

/*
 * Format a double the way Python's repr() does (shortest digits that read
 * back to the same double; "20.0", "0.1", "1e-05", "1e+16"), so a scaler
 * written here is byte-identical to one written by tools/adformat.py
 * (json.dumps of float32 values widened to double) and the model id agrees.
 */
static void fmt_pyfloat(char *out, size_t n, double v)
{
    char tmp[40], dig[20];
    const char *ep;
    int p, nd = 0, e10, i, pos = 0;

    if (v == 0.0) {
        snprintf(out, n, "%s", signbit(v) ? "-0.0" : "0.0");
        return;
    }
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* tmp is "[-]d[.ddd]e[+-]XX": collect the digits and the exponent */
    for (i = 0; tmp[i] != 'e'; i++)
        if (tmp[i] >= '0' && tmp[i] <= '9')
            dig[nd++] = tmp[i];
    ep = tmp + i + 1;
    e10 = atoi(ep);
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    dig[nd] = '\0';
    if (v < 0)
        tmp[pos++] = '-';
    if (e10 < -4 || e10 >= 16) {
        tmp[pos++] = dig[0];
        if (nd > 1) {
            tmp[pos++] = '.';
            for (i = 1; i < nd; i++)
                tmp[pos++] = dig[i];
        }
        snprintf(tmp + pos, sizeof(tmp) - (size_t)pos, "e%c%02d",
                 e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
    } else if (e10 < 0) {
        tmp[pos++] = '0';
        tmp[pos++] = '.';
        for (i = -1; i > e10; i--)
            tmp[pos++] = '0';
        for (i = 0; i < nd; i++)
            tmp[pos++] = dig[i];
        tmp[pos] = '\0';
    } else {
        for (i = 0; i <= e10; i++)
            tmp[pos++] = i < nd ? dig[i] : '0';
        tmp[pos++] = '.';
        if (nd > e10 + 1)
            for (i = e10 + 1; i < nd; i++)
                tmp[pos++] = dig[i];
        else
            tmp[pos++] = '0';
        tmp[pos] = '\0';
    }
    snprintf(out, n, "%s", tmp);
}

/* "[a,b,...]", each float32 in Python repr() form of its double value. */
static int put_floats(char **p, size_t *cap, size_t *len, const float *v, int n)
{
    char num[40];
    int i;

    for (i = 0; i < n; i++) {
        if (*cap - *len < 48) {
            size_t nc = *cap * 2 + 64;
            char *np = realloc(*p, nc);
            if (np == NULL)
                return AD_ENOMEM;
            *p = np;
            *cap = nc;
        }
        fmt_pyfloat(num, sizeof(num), (double)v[i]);
        *len += (size_t)snprintf(*p + *len, *cap - *len, "%s%s",
                                 i ? "," : "[", num);
    }
    if (n == 0)
        *len += (size_t)snprintf(*p + *len, *cap - *len, "[");
    *len += (size_t)snprintf(*p + *len, *cap - *len, "]");
    return 0;
}

static char *scaler_json(const ad_model *m)
{
    size_t cap = 64 + (size_t)m->n_features * 32, len = 0;
    char *s = malloc(cap);
    const char *ka, *kb;

    if (s == NULL)
        return NULL;
    if (m->scaler == AD_SCALER_NONE) {
        snprintf(s, cap, "{\"type\":\"none\"}");
        return s;
    }
    ka = m->scaler == AD_SCALER_STANDARD ? "mean" : "min";
    kb = m->scaler == AD_SCALER_STANDARD ? "std" : "max";
    len = (size_t)snprintf(s, cap, "{\"type\":\"%s\",\"%s\":",
                           m->scaler == AD_SCALER_STANDARD ? "standard"
                                                           : "minmax", ka);
    if (put_floats(&s, &cap, &len, m->scale_a, m->n_features) < 0)
        goto fail;
    len += (size_t)snprintf(s + len, cap - len, ",\"%s\":", kb);
    if (put_floats(&s, &cap, &len, m->scale_b, m->n_features) < 0)
        goto fail;
    if (cap - len < 2) {
        char *ns = realloc(s, cap + 2);
        if (ns == NULL)
            goto fail;
        s = ns;
        cap += 2;
    }
    snprintf(s + len, cap - len, "}");
    return s;
fail:
    free(s);
    return NULL;
}

/* NULL, or text that parses as a JSON object. */
static int json_object_or_null(const char *s)
{
    cJSON *j;
    int ok;

    if (s == NULL)
        return 1;
    j = cJSON_ParseWithOpts(s, NULL, 1);
    ok = j != NULL && cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

int ad_model_serialize(ad_model *m, void **buf, size_t *len)
{
    ad_st_writer *w = NULL;
    ad_layer_spec specs[AD_MAX_LAYERS];
    cJSON *fa = NULL;
    char *arch = NULL, *feats = NULL, *scal = NULL, num[24], hex[65];
    int rc = AD_ENOMEM, i, j;
    size_t q;

    if (m == NULL || buf == NULL || len == NULL || m->n_layers < 1 ||
        m->n_layers > AD_MAX_LAYERS || m->params == NULL)
        return AD_EINVAL;
    *buf = NULL;
    *len = 0;
    /* A file we write must load: refuse non-finite weights up front. */
    for (q = 0; q < m->n_params; q++)
        if (!isfinite(m->params[q]))
            return AD_ENONFINITE;

    /* ... and metadata that would not load back */
    if (!json_object_or_null(m->provenance) ||
        !json_object_or_null(m->training))
        return AD_EINVAL;

    for (i = 0; i < m->n_layers; i++)
        specs[i] = m->layers[i].spec;
    arch = ad_arch_to_json(specs, m->n_layers);
    fa = cJSON_CreateArray();
    for (i = 0; fa != NULL && i < m->n_features; i++) {
        cJSON *s = cJSON_CreateString(m->features[i]);
        if (s == NULL || !cJSON_AddItemToArray(fa, s)) {
            cJSON_Delete(s);
            goto fail;
        }
    }
    feats = fa ? cJSON_PrintUnformatted(fa) : NULL;
    scal = scaler_json(m);
    w = ad_st_writer_new();
    if (arch == NULL || feats == NULL || scal == NULL || w == NULL)
        goto fail;
    snprintf(num, sizeof(num), "%d", m->window);
    if ((rc = ad_st_writer_meta(w, "format", AD_MODEL_FORMAT)) < 0 ||
        (rc = ad_st_writer_meta(w, "format_version", "1")) < 0 ||
        (rc = ad_st_writer_meta(w, "window", num)) < 0 ||
        (rc = ad_st_writer_meta(w, "features", feats)) < 0 ||
        (rc = ad_st_writer_meta(w, "architecture", arch)) < 0 ||
        (rc = ad_st_writer_meta(w, "scaler", scal)) < 0)
        goto fail;
    if (m->provenance &&
        (rc = ad_st_writer_meta(w, "provenance", m->provenance)) < 0)
        goto fail;
    if (m->training &&
        (rc = ad_st_writer_meta(w, "training", m->training)) < 0)
        goto fail;

    for (i = 0; i < m->n_layers; i++) {
        const ad_layer *L = &m->layers[i];
        const float *src[3];
        want_t want[3];
        int n = layer_tensors(L, i, want), ns = 0;

        if (L->kernel) src[ns++] = L->kernel;
        if (L->recurrent) src[ns++] = L->recurrent;
        if (L->bias) src[ns++] = L->bias;
        if (ns != n) {
            rc = AD_EINVAL;
            goto fail;
        }
        for (j = 0; j < n; j++)
            if ((rc = ad_st_writer_add(w, want[j].name, src[j], want[j].ndim,
                                       want[j].shape)) < 0)
                goto fail;
    }
    rc = ad_st_writer_finish(w, buf, len);
    if (rc < 0)
        goto fail;
    {   /* what we write must read back: e.g. a feature name that is not
         * UTF-8 would make a file no reader accepts */
        ad_st *chk = NULL;
        rc = ad_st_parse(&chk, *buf, *len, "self-check", NULL, 0);
        ad_st_free(chk);
        if (rc < 0) {
            free(*buf);
            *buf = NULL;
            *len = 0;
            rc = AD_EINVAL;
            goto fail;
        }
    }
    ad_sha256_hex(*buf, *len, hex);
    memcpy(m->id, hex, AD_MODEL_ID_LEN);
    m->id[AD_MODEL_ID_LEN] = '\0';
fail:
    ad_st_writer_free(w);
    cJSON_Delete(fa);
    free(arch);
    free(feats);
    free(scal);
    return rc;
}

int ad_model_save(ad_model *m, const char *path, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t len = 0;
    int rc;

    if (m == NULL || path == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "ad_model_save: bad arguments");
    rc = ad_model_serialize(m, &buf, &len);
    if (rc < 0)
        return ad_errf(err, errlen, rc, "%s: cannot serialise the model: %s",
                       path, rc == AD_ENONFINITE ? "a weight is NaN or Inf"
                                                 : ad_strerror(rc));
    rc = ad_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    return rc;
}
