/*
 * model.c - the in-memory autoencoder model: building one from layer specs
 * (shape derivation and validation), the architecture JSON both ways, feature
 * names, the input scaler, deep copy and free. The model file (load/save)
 * lives in model_file.c; the container in safetensors.c.
 *
 * All weights of a model live in one 64-byte aligned block (m->params) so a
 * trainer can treat them as one vector; each layer's kernel, recurrent and
 * bias pointers point into it, in layer order, kernel then recurrent then
 * bias.
 */
#include "model.h"
#include "ad.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* enum names                                                               */

const char *ad_act_name(ad_act a)
{
    switch (a) {
    case AD_ACT_LINEAR: return "linear";
    case AD_ACT_RELU: return "relu";
    case AD_ACT_SIGMOID: return "sigmoid";
    case AD_ACT_TANH: return "tanh";
    }
    return NULL;
}

int ad_act_from_name(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "linear") == 0) return AD_ACT_LINEAR;
    if (strcmp(s, "relu") == 0) return AD_ACT_RELU;
    if (strcmp(s, "sigmoid") == 0) return AD_ACT_SIGMOID;
    if (strcmp(s, "tanh") == 0) return AD_ACT_TANH;
    return -1;
}

const char *ad_layer_type_name(ad_layer_type t)
{
    switch (t) {
    case AD_LAYER_LSTM: return "lstm";
    case AD_LAYER_REPEAT_VECTOR: return "repeat_vector";
    case AD_LAYER_TD_DENSE: return "time_distributed_dense";
    case AD_LAYER_FLATTEN: return "flatten";
    case AD_LAYER_DENSE: return "dense";
    }
    return NULL;
}

int ad_layer_type_from_name(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "lstm") == 0) return AD_LAYER_LSTM;
    if (strcmp(s, "repeat_vector") == 0) return AD_LAYER_REPEAT_VECTOR;
    if (strcmp(s, "time_distributed_dense") == 0) return AD_LAYER_TD_DENSE;
    if (strcmp(s, "flatten") == 0) return AD_LAYER_FLATTEN;
    if (strcmp(s, "dense") == 0) return AD_LAYER_DENSE;
    return -1;
}

static const char *tname(ad_layer_type t)
{
    const char *s = ad_layer_type_name(t);
    return s ? s : "?";
}

/* ------------------------------------------------------------------------ */
/* shape derivation                                                         */

/* "sequence (t,d)" or "vector (d)" into buf. */
static const char *shape_str(char *buf, size_t n, int t, int d)
{
    if (t > 0)
        snprintf(buf, n, "a sequence (%d,%d)", t, d);
    else
        snprintf(buf, n, "a vector (%d)", d);
    return buf;
}

/*
 * Derive every layer's input/output shape and parameter count from the
 * specs, without allocating. Internal to the library (model_file.c uses it to
 * check a file's tensors before allocating anything); not in model.h.
 * layers[i].spec, in/out shapes and n_params are filled; pointers are NULL.
 * *n_params receives the total. Returns 0 or AD_EARCH/AD_EINVAL/AD_ERANGE
 * with a message naming the layer.
 */
int ad_model_derive_(int window, int n_features, const ad_layer_spec *specs,
                     int n_layers, ad_layer *layers, size_t *n_params,
                     char *err, size_t errlen);

int ad_model_derive_(int window, int n_features, const ad_layer_spec *specs,
                     int n_layers, ad_layer *layers, size_t *n_params,
                     char *err, size_t errlen)
{
    int t, d, i;
    size_t total = 0;
    char sb[64];

    if (window < 1 || window > AD_MAX_WINDOW)
        return ad_errf(err, errlen, AD_ERANGE,
                       "window %d out of range 1..%d", window, AD_MAX_WINDOW);
    if (n_features < 1 || n_features > AD_MAX_FEATURES)
        return ad_errf(err, errlen, AD_ERANGE,
                       "features %d out of range 1..%d", n_features,
                       AD_MAX_FEATURES);
    if (specs == NULL || n_layers < 1 || n_layers > AD_MAX_LAYERS)
        return ad_errf(err, errlen, AD_EARCH,
                       "architecture needs 1..%d layers, got %d",
                       AD_MAX_LAYERS, n_layers);

    t = window;
    d = n_features;
    for (i = 0; i < n_layers; i++) {
        const ad_layer_spec *s = &specs[i];
        ad_layer *L = &layers[i];
        size_t u = (size_t)(s->units > 0 ? s->units : 0);
        size_t np = 0, a, b;

        memset(L, 0, sizeof(*L));
        L->spec = *s;
        L->in_t = t;
        L->in_d = d;

        switch (s->type) {
        case AD_LAYER_LSTM:
        case AD_LAYER_TD_DENSE:
        case AD_LAYER_DENSE:
            if (s->units < 1 || s->units > AD_MAX_UNITS)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (%s): units %d out of range 1..%d",
                               i, tname(s->type), s->units, AD_MAX_UNITS);
            break;
        case AD_LAYER_REPEAT_VECTOR:
            if (s->units < 1 || s->units > AD_MAX_WINDOW)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (repeat_vector): n %d out of range 1..%d",
                               i, s->units, AD_MAX_WINDOW);
            break;
        case AD_LAYER_FLATTEN:
            break;
        default:
            return ad_errf(err, errlen, AD_EARCH,
                           "layer %d: unknown layer type %d", i, (int)s->type);
        }

        switch (s->type) {
        case AD_LAYER_LSTM:
            if (s->act != AD_ACT_TANH && s->act != AD_ACT_RELU)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (lstm): activation must be tanh or relu, got %s",
                               i, ad_act_name(s->act) ? ad_act_name(s->act) : "?");
            if (t == 0)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (lstm): input is %s; lstm needs a sequence "
                               "(add a repeat_vector layer)", i,
                               shape_str(sb, sizeof(sb), t, d));
            /* kernel d*4H + recurrent H*4H + bias 4H = 4H*(d+H+1) */
            if (ad_mul_size(4, u, &a) || ad_add_size((size_t)d, u, &b) ||
                ad_add_size(b, 1, &b) || ad_mul_size(a, b, &np))
                goto overflow;
            if (!s->return_sequences)
                t = 0;
            d = s->units;
            break;
        case AD_LAYER_REPEAT_VECTOR:
            if (t != 0)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (repeat_vector): input is %s; "
                               "repeat_vector needs a vector (use an lstm without "
                               "return_sequences or a dense layer before it)", i,
                               shape_str(sb, sizeof(sb), t, d));
            t = s->units;
            break;
        case AD_LAYER_TD_DENSE:
            if (t == 0)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (time_distributed_dense): input is %s; "
                               "it needs a sequence (use dense)", i,
                               shape_str(sb, sizeof(sb), t, d));
            /* fall through */
        case AD_LAYER_DENSE:
            if (s->type == AD_LAYER_DENSE && t != 0)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (dense): input is %s; add a flatten layer "
                               "or use time_distributed_dense", i,
                               shape_str(sb, sizeof(sb), t, d));
            if (ad_act_name(s->act) == NULL)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (%s): unknown activation %d", i,
                               tname(s->type), (int)s->act);
            if (ad_add_size((size_t)d, 1, &a) || ad_mul_size(a, u, &np))
                goto overflow;
            d = s->units;
            break;
        case AD_LAYER_FLATTEN:
            if (t == 0)
                return ad_errf(err, errlen, AD_EARCH,
                               "layer %d (flatten): input is %s; flatten needs a "
                               "sequence", i, shape_str(sb, sizeof(sb), t, d));
            if (ad_mul_size((size_t)t, (size_t)d, &a) || a > INT_MAX)
                return ad_errf(err, errlen, AD_ERANGE,
                               "layer %d (flatten): output (%d*%d) too large",
                               i, t, d);
            d = (int)a;
            t = 0;
            break;
        }
        L->out_t = t;
        L->out_d = d;
        L->n_params = np;
        if (ad_add_size(total, np, &total))
            goto overflow;
        continue;
overflow:
        return ad_errf(err, errlen, AD_ERANGE,
                       "layer %d (%s): parameter count overflows", i,
                       tname(s->type));
    }

    /* The reconstruction: sequence (T,F) or vector (T*F). */
    if (!((t == window && d == n_features) ||
          (t == 0 && (size_t)d == (size_t)window * (size_t)n_features)))
        return ad_errf(err, errlen, AD_EARCH,
                       "layer %d (%s): final output is %s; expected the input "
                       "window: sequence (%d,%d) (window x features) or vector (%zu)",
                       n_layers - 1, tname(specs[n_layers - 1].type),
                       shape_str(sb, sizeof(sb), t, d), window, n_features,
                       (size_t)window * (size_t)n_features);
    if (total > SIZE_MAX / sizeof(float))
        return ad_errf(err, errlen, AD_ERANGE, "parameter count overflows");
    *n_params = total;
    return 0;
}

/* Point each layer's tensors into m->params: kernel, recurrent, bias. */
static void set_pointers(ad_model *m)
{
    float *p = m->params;
    int i;

    for (i = 0; i < m->n_layers; i++) {
        ad_layer *L = &m->layers[i];
        size_t u = (size_t)L->spec.units, d = (size_t)L->in_d;

        L->kernel = L->recurrent = L->bias = NULL;
        switch (L->spec.type) {
        case AD_LAYER_LSTM:
            L->kernel = p;  p += d * 4 * u;
            L->recurrent = p;  p += u * 4 * u;
            L->bias = p;  p += 4 * u;
            break;
        case AD_LAYER_TD_DENSE:
        case AD_LAYER_DENSE:
            L->kernel = p;  p += d * u;
            L->bias = p;  p += u;
            break;
        default:
            break;
        }
    }
}

static int set_default_features(ad_model *m)
{
    int i;

    m->features = calloc((size_t)m->n_features, sizeof(char *));
    if (m->features == NULL)
        return AD_ENOMEM;
    for (i = 0; i < m->n_features; i++) {
        char buf[24];
        snprintf(buf, sizeof(buf), "f%d", i);
        m->features[i] = strdup(buf);
        if (m->features[i] == NULL)
            return AD_ENOMEM;
    }
    return 0;
}

/* The next model's uid: one counter for the process (ad_model.uid), atomic
 * as models are made on worker threads (training, fine-tunes). */
static uint64_t next_uid(void)
{
    static uint64_t last;

    return __atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
}

int ad_model_create(ad_model **out, int window, int n_features,
                    const ad_layer_spec *layers, int n_layers,
                    char *err, size_t errlen)
{
    ad_model *m = NULL;
    size_t np = 0;
    int rc;

    if (out == NULL)
        return ad_errf(err, errlen, AD_EINVAL, "ad_model_create: out is NULL");
    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    rc = ad_model_derive_(window, n_features, layers, n_layers, m->layers,
                          &np, err, errlen);
    if (rc < 0)
        goto fail;
    m->window = window;
    m->n_features = n_features;
    m->n_layers = n_layers;
    m->n_params = np;
    m->scaler = AD_SCALER_NONE;
    m->uid = next_uid();
    rc = AD_ENOMEM;
    m->params = ad_aalloc(np * sizeof(float));
    m->scale_a = calloc((size_t)n_features, sizeof(float));
    m->scale_b = calloc((size_t)n_features, sizeof(float));
    if (m->params == NULL || m->scale_a == NULL || m->scale_b == NULL ||
        set_default_features(m) < 0) {
        ad_errf(err, errlen, rc, "out of memory (%zu parameters)", np);
        goto fail;
    }
    memset(m->params, 0, np * sizeof(float));
    set_pointers(m);
    *out = m;
    return 0;
fail:
    ad_model_free(m);
    return rc;
}

void ad_model_free(ad_model *m)
{
    int i;

    if (m == NULL)
        return;
    if (m->features != NULL) {
        for (i = 0; i < m->n_features; i++)
            free(m->features[i]);
        free(m->features);
    }
    free(m->scale_a);
    free(m->scale_b);
    ad_afree(m->params);
    free(m->provenance);
    free(m->training);
    free(m);
}

ad_model *ad_model_clone(const ad_model *m)
{
    ad_model *c;
    int i;

    if (m == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *m;
    c->uid = next_uid();            /* another model, at another address */
    c->features = NULL;
    c->scale_a = c->scale_b = NULL;
    c->params = NULL;
    c->provenance = c->training = NULL;

    c->params = ad_aalloc(m->n_params * sizeof(float));
    c->scale_a = malloc((size_t)m->n_features * sizeof(float));
    c->scale_b = malloc((size_t)m->n_features * sizeof(float));
    c->features = calloc((size_t)m->n_features, sizeof(char *));
    if (c->params == NULL || c->scale_a == NULL || c->scale_b == NULL ||
        c->features == NULL)
        goto fail;
    memcpy(c->params, m->params, m->n_params * sizeof(float));
    memcpy(c->scale_a, m->scale_a, (size_t)m->n_features * sizeof(float));
    memcpy(c->scale_b, m->scale_b, (size_t)m->n_features * sizeof(float));
    for (i = 0; i < m->n_features; i++)
        if ((c->features[i] = strdup(m->features[i])) == NULL)
            goto fail;
    if (m->provenance && (c->provenance = strdup(m->provenance)) == NULL)
        goto fail;
    if (m->training && (c->training = strdup(m->training)) == NULL)
        goto fail;
    set_pointers(c);
    return c;
fail:
    ad_model_free(c);
    return NULL;
}

int ad_model_set_features(ad_model *m, const char *const *names, int n)
{
    char **f;
    int i, j;

    if (m == NULL || names == NULL || n < 1 || n != m->n_features)
        return AD_EINVAL;
    for (i = 0; i < n; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            return AD_EINVAL;
        for (j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return AD_EINVAL;
    }
    f = calloc((size_t)n, sizeof(char *));
    if (f == NULL)
        return AD_ENOMEM;
    for (i = 0; i < n; i++) {
        if ((f[i] = strdup(names[i])) == NULL) {
            while (i-- > 0)
                free(f[i]);
            free(f);
            return AD_ENOMEM;
        }
    }
    for (i = 0; i < m->n_features; i++)
        free(m->features[i]);
    free(m->features);
    m->features = f;
    return 0;
}

int ad_model_set_scaler(ad_model *m, ad_scaler_type type,
                        const float *a, const float *b)
{
    int i, F;

    if (m == NULL)
        return AD_EINVAL;
    F = m->n_features;
    if (type == AD_SCALER_NONE) {
        m->scaler = type;
        memset(m->scale_a, 0, (size_t)F * sizeof(float));
        memset(m->scale_b, 0, (size_t)F * sizeof(float));
        return 0;
    }
    if ((type != AD_SCALER_STANDARD && type != AD_SCALER_MINMAX) ||
        a == NULL || b == NULL)
        return AD_EINVAL;
    for (i = 0; i < F; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return AD_ENONFINITE;
        if (type == AD_SCALER_STANDARD && !(b[i] > 0.0f))
            return AD_ERANGE;
        /* max - min must be a positive finite float, or scaling divides by
         * 0 or inf */
        if (type == AD_SCALER_MINMAX &&
            !(b[i] > a[i] && isfinite(b[i] - a[i])))
            return AD_ERANGE;
    }
    memcpy(m->scale_a, a, (size_t)F * sizeof(float));
    memcpy(m->scale_b, b, (size_t)F * sizeof(float));
    m->scaler = type;
    return 0;
}

/* One value: centred and divided in double precision, so a raw value with
 * a large offset (101325 Pa +- 2, or a mean of 1e6 with std 0.01) keeps its
 * variation; only the scaled result is rounded to float. */
static inline double scale1(const ad_model *m, size_t f, double x)
{
    switch (m->scaler) {
    case AD_SCALER_STANDARD:
        return (x - (double)m->scale_a[f]) / (double)m->scale_b[f];
    case AD_SCALER_MINMAX:
        return (x - (double)m->scale_a[f]) / ((double)m->scale_b[f] - (double)m->scale_a[f]);
    default:
        return x;
    }
}

static inline double unscale1(const ad_model *m, size_t f, double y)
{
    switch (m->scaler) {
    case AD_SCALER_STANDARD:
        return y * (double)m->scale_b[f] + (double)m->scale_a[f];
    case AD_SCALER_MINMAX:
        return y * ((double)m->scale_b[f] - (double)m->scale_a[f]) + (double)m->scale_a[f];
    default:
        return y;
    }
}

int ad_model_same_scaler(const ad_model *a, const ad_model *b)
{
    size_t F;

    if (a == NULL || b == NULL || a->n_features != b->n_features || a->scaler != b->scaler)
        return 0;
    if (a->scaler == AD_SCALER_NONE)
        return 1;
    F = (size_t)a->n_features;
    return memcmp(a->scale_a, b->scale_a, F * sizeof(float)) == 0 &&
           memcmp(a->scale_b, b->scale_b, F * sizeof(float)) == 0;
}

void ad_model_rescale(const ad_model *from, const ad_model *to, const float *in, float *out,
                      size_t rows)
{
    size_t i, F = (size_t)to->n_features, n = rows * F;

    for (i = 0; i < n; i++)
        out[i] = (float)scale1(to, i % F, unscale1(from, i % F, (double)in[i]));
}

void ad_model_scale(const ad_model *m, const float *raw, float *out, size_t rows)
{
    size_t i, n = rows * (size_t)m->n_features, F = (size_t)m->n_features;

    if (m->scaler != AD_SCALER_STANDARD && m->scaler != AD_SCALER_MINMAX) {
        if (out != raw)
            memmove(out, raw, n * sizeof(float));
        return;
    }
    for (i = 0; i < n; i++)
        out[i] = (float)scale1(m, i % F, (double)raw[i]);
}

int ad_model_scale_d(const ad_model *m, const double *raw, float *out, size_t rows)
{
    size_t i, n = rows * (size_t)m->n_features, F = (size_t)m->n_features;
    int absurd = 0;

    for (i = 0; i < n; i++) {
        double y = scale1(m, i % F, raw[i]);
        if (isfinite(raw[i]) && !(fabs(y) <= AD_SCALED_MAX)) {
            absurd++;
            y = NAN;
        }
        out[i] = (float)y;
    }
    return absurd;
}

/* ------------------------------------------------------------------------ */
/* architecture JSON                                                        */

/* An integer JSON number in lo..hi into *v. */
static int json_int(const cJSON *j, long lo, long hi, int *v)
{
    double x;

    if (!cJSON_IsNumber(j))
        return -1;
    x = j->valuedouble;
    if (!(x >= (double)lo && x <= (double)hi) || x != floor(x))
        return -1;
    *v = (int)x;
    return 0;
}

static int arch_layer(const cJSON *o, int i, ad_layer_spec *s,
                      char *err, size_t errlen)
{
    const cJSON *k, *ty;
    int t, a;
    const char *allowed[5];
    int n_allowed = 0, j;

    memset(s, 0, sizeof(*s));
    if (!cJSON_IsObject(o))
        return ad_errf(err, errlen, AD_EARCH,
                       "architecture[%d]: expected an object", i);
    ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsString(ty))
        return ad_errf(err, errlen, AD_EARCH,
                       "architecture[%d].type: expected a string (lstm, "
                       "repeat_vector, time_distributed_dense, flatten, dense)", i);
    t = ad_layer_type_from_name(ty->valuestring);
    if (t < 0)
        return ad_errf(err, errlen, AD_EARCH,
                       "architecture[%d].type: unknown layer type \"%.40s\" "
                       "(expected lstm, repeat_vector, time_distributed_dense, "
                       "flatten or dense)", i, ty->valuestring);
    s->type = (ad_layer_type)t;
    allowed[n_allowed++] = "type";

    switch (s->type) {
    case AD_LAYER_LSTM:
    case AD_LAYER_TD_DENSE:
    case AD_LAYER_DENSE:
        allowed[n_allowed++] = "units";
        allowed[n_allowed++] = "activation";
        k = cJSON_GetObjectItemCaseSensitive(o, "units");
        if (json_int(k, 1, AD_MAX_UNITS, &s->units) < 0)
            return ad_errf(err, errlen, AD_EARCH,
                           "architecture[%d].units: expected an integer 1..%d",
                           i, AD_MAX_UNITS);
        k = cJSON_GetObjectItemCaseSensitive(o, "activation");
        if (k == NULL) {
            s->act = s->type == AD_LAYER_LSTM ? AD_ACT_TANH : AD_ACT_LINEAR;
        } else {
            a = cJSON_IsString(k) ? ad_act_from_name(k->valuestring) : -1;
            if (s->type == AD_LAYER_LSTM && a != AD_ACT_TANH && a != AD_ACT_RELU)
                return ad_errf(err, errlen, AD_EARCH,
                               "architecture[%d].activation: expected \"tanh\" or "
                               "\"relu\"", i);
            if (a < 0)
                return ad_errf(err, errlen, AD_EARCH,
                               "architecture[%d].activation: expected \"linear\", "
                               "\"relu\", \"sigmoid\" or \"tanh\"", i);
            s->act = (ad_act)a;
        }
        if (s->type == AD_LAYER_LSTM) {
            allowed[n_allowed++] = "return_sequences";
            allowed[n_allowed++] = "recurrent_activation";
            k = cJSON_GetObjectItemCaseSensitive(o, "return_sequences");
            if (k != NULL && !cJSON_IsBool(k))
                return ad_errf(err, errlen, AD_EARCH,
                               "architecture[%d].return_sequences: expected true "
                               "or false", i);
            s->return_sequences = cJSON_IsTrue(k) ? 1 : 0;
            k = cJSON_GetObjectItemCaseSensitive(o, "recurrent_activation");
            if (k != NULL && !(cJSON_IsString(k) &&
                               strcmp(k->valuestring, "sigmoid") == 0))
                return ad_errf(err, errlen, AD_EARCH,
                               "architecture[%d].recurrent_activation: only "
                               "\"sigmoid\" is supported", i);
        }
        break;
    case AD_LAYER_REPEAT_VECTOR:
        allowed[n_allowed++] = "n";
        k = cJSON_GetObjectItemCaseSensitive(o, "n");
        if (json_int(k, 1, AD_MAX_WINDOW, &s->units) < 0)
            return ad_errf(err, errlen, AD_EARCH,
                           "architecture[%d].n: expected an integer 1..%d",
                           i, AD_MAX_WINDOW);
        break;
    case AD_LAYER_FLATTEN:
        break;
    }

    /* Unknown keys are errors: a typo must not silently change the model. */
    for (k = o->child; k != NULL; k = k->next) {
        for (j = 0; j < n_allowed; j++)
            if (k->string && strcmp(k->string, allowed[j]) == 0)
                break;
        if (j == n_allowed)
            return ad_errf(err, errlen, AD_EARCH,
                           "architecture[%d].%.40s: unknown key for a %s layer",
                           i, k->string ? k->string : "?", tname(s->type));
    }
    return 0;
}

int ad_arch_parse(const char *json, ad_layer_spec *layers, int max_layers,
                  int *n_layers, char *err, size_t errlen)
{
    cJSON *root;
    const cJSON *e;
    int n, i = 0, rc = 0;

    if (n_layers)
        *n_layers = 0;
    if (json == NULL || layers == NULL || n_layers == NULL || max_layers < 1)
        return ad_errf(err, errlen, AD_EINVAL, "architecture: bad arguments");
    root = cJSON_ParseWithOpts(json, NULL, 1);
    if (root == NULL)
        return ad_errf(err, errlen, AD_EARCH,
                       "architecture: not valid JSON");
    if (!cJSON_IsArray(root)) {
        rc = ad_errf(err, errlen, AD_EARCH,
                     "architecture: expected a JSON array of layers");
        goto done;
    }
    n = cJSON_GetArraySize(root);
    if (n < 1 || n > max_layers || n > AD_MAX_LAYERS) {
        rc = ad_errf(err, errlen, AD_EARCH,
                     "architecture: expected 1..%d layers, found %d",
                     max_layers < AD_MAX_LAYERS ? max_layers : AD_MAX_LAYERS, n);
        goto done;
    }
    for (e = root->child; e != NULL; e = e->next, i++) {
        rc = arch_layer(e, i, &layers[i], err, errlen);
        if (rc < 0)
            goto done;
    }
    *n_layers = n;
done:
    cJSON_Delete(root);
    return rc;
}

char *ad_arch_to_json(const ad_layer_spec *layers, int n_layers)
{
    /* Hand-written, fixed key order: the same specs always give the same
     * bytes (the model id depends on them). Each layer needs < 160 bytes. */
    size_t cap, len = 0;
    char *s;
    int i;

    if (layers == NULL || n_layers < 0 || n_layers > AD_MAX_LAYERS)
        return NULL;
    cap = 4 + (size_t)n_layers * 160;
    s = malloc(cap);
    if (s == NULL)
        return NULL;
    s[len++] = '[';
    for (i = 0; i < n_layers; i++) {
        const ad_layer_spec *l = &layers[i];
        const char *an = ad_act_name(l->act);
        const char *tn = ad_layer_type_name(l->type);

        if (tn == NULL || (an == NULL && (l->type == AD_LAYER_LSTM ||
                                          l->type == AD_LAYER_DENSE ||
                                          l->type == AD_LAYER_TD_DENSE))) {
            free(s);
            return NULL;
        }
        if (i > 0)
            s[len++] = ',';
        switch (l->type) {
        case AD_LAYER_LSTM:
            len += (size_t)snprintf(s + len, cap - len,
                "{\"type\":\"lstm\",\"units\":%d,\"activation\":\"%s\","
                "\"return_sequences\":%s}", l->units, an,
                l->return_sequences ? "true" : "false");
            break;
        case AD_LAYER_REPEAT_VECTOR:
            len += (size_t)snprintf(s + len, cap - len,
                "{\"type\":\"repeat_vector\",\"n\":%d}", l->units);
            break;
        case AD_LAYER_FLATTEN:
            len += (size_t)snprintf(s + len, cap - len, "{\"type\":\"flatten\"}");
            break;
        case AD_LAYER_TD_DENSE:
        case AD_LAYER_DENSE:
            len += (size_t)snprintf(s + len, cap - len,
                "{\"type\":\"%s\",\"units\":%d,\"activation\":\"%s\"}",
                tn, l->units, an);
            break;
        }
    }
    s[len++] = ']';
    s[len] = '\0';
    return s;
}
