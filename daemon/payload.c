/*
 * payload.c - message parsers: bare number, JSON object with dotted paths,
 * SenML JSON (see payload.h for the formats).
 *
 * cJSON does the JSON tokenising (its nesting limit bounds recursion on
 * hostile input); everything here only walks the tree and checks types and
 * finiteness. Nothing is kept between messages. A bad value refuses its
 * feature alone (payload.h REFUSED VALUES): the message's shape decides
 * whether it is taken, its values only what it carries.
 *
 * Fast path: the common payload is a flat object of numbers ({"ts":..,
 * "vibration":1.32,...}). When no configured path has a dot, such a payload
 * is scanned in place without building a cJSON tree (no allocation, no
 * per-member string compares against every path). The scan accepts only
 * strict, unambiguous input that it parses to exactly what the cJSON path
 * gives (numbers: Clinger's exact fast case, else strtod like cJSON); for
 * anything else (nesting, escapes, duplicate keys, non-numeric feature
 * values, any error) it gives up and the cJSON path decides, so results and
 * error messages are the same either way (tests/test_payload.c compares the
 * two on generated payloads).
 */
#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cJSON.h>

#include "ad.h"
#include "payload.h"
#include "topic.h"

struct ad_payload_parser {
    int format;
    int n_features;
    char **features;    /* model names */
    char **names;       /* per feature: path (json), record/level name */
    char *timestamp;    /* json time path or NULL */
    double ts_scale;    /* multiply to get seconds */
    int feature_level;
    char *senml_base;
    int flat;           /* json: no path has a dot, the fast path applies */
    size_t *name_len;   /* strlen(names[i]) */
    size_t ts_len;
    int unique;         /* no two features read the same field */
};

void ad_payload_parser_free(ad_payload_parser *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_features; i++) {
        if (p->features) free(p->features[i]);
        if (p->names) free(p->names[i]);
    }
    free(p->features);
    free(p->names);
    free(p->timestamp);
    free(p->senml_base);
    free(p->name_len);
    free(p);
}

int ad_payload_parser_new(ad_payload_parser **out, const ad_payload_cfg *cfg,
                          const char *const *features, int n_features,
                          const char *path, char *err, size_t errlen)
{
    ad_payload_parser *p;
    int rc = AD_ENOMEM;

    *out = NULL;
    if (n_features < 1)
        return ad_errf(err, errlen, AD_EINVAL, "%s: model has no features", path);
    if (!(p = calloc(1, sizeof *p)))
        return ad_errf(err, errlen, AD_ENOMEM, "out of memory");
    p->format = cfg->format;
    p->feature_level = cfg->feature_level;
    p->ts_scale = cfg->timestamp_unit == AD_TS_MS ? 1e-3 :
                  cfg->timestamp_unit == AD_TS_US ? 1e-6 : 1.0;
    p->features = calloc((size_t)n_features, sizeof(char *));
    p->names = calloc((size_t)n_features, sizeof(char *));
    if (!p->features || !p->names)
        goto fail;
    p->n_features = n_features;
    for (int i = 0; i < n_features; i++) {
        const char *nm = features[i];
        for (int j = 0; j < cfg->fields.n; j++)
            if (strcmp(cfg->fields.key[j], features[i]) == 0)
                nm = cfg->fields.val[j];
        if (!(p->features[i] = strdup(features[i])) || !(p->names[i] = strdup(nm)))
            goto fail;
    }
    for (int j = 0; j < cfg->fields.n; j++) {
        int found = 0;
        for (int i = 0; i < n_features; i++)
            found |= strcmp(cfg->fields.key[j], features[i]) == 0;
        if (!found) {
            char list[256];
            size_t o = 0;
            list[0] = '\0';
            for (int i = 0; i < n_features && o < sizeof list; i++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? "," : "",
                                      features[i]);
            rc = ad_errf(err, errlen, AD_EINVAL, "%s.fields.%s: not a feature of the "
                         "model (features: %s)", path, cfg->fields.key[j], list);
            goto fail_msg;
        }
    }
    if (cfg->timestamp && !(p->timestamp = strdup(cfg->timestamp)))
        goto fail;
    if (cfg->senml_base && !(p->senml_base = strdup(cfg->senml_base)))
        goto fail;
    if (!(p->name_len = calloc((size_t)n_features, sizeof(size_t))))
        goto fail;
    p->flat = p->format == AD_FMT_JSON && n_features <= 64 &&
              (!p->timestamp || (p->timestamp[0] && !strchr(p->timestamp, '.')));
    for (int i = 0; i < n_features; i++) {
        p->name_len[i] = strlen(p->names[i]);
        if (!p->names[i][0] || strchr(p->names[i], '.'))   /* "" is the root */
            p->flat = 0;
    }
    p->ts_len = p->timestamp ? strlen(p->timestamp) : 0;
    p->unique = 1;
    for (int i = 0; i < n_features; i++)
        for (int j = i + 1; j < n_features; j++)
            if (strcmp(p->names[i], p->names[j]) == 0)
                p->unique = 0;
    *out = p;
    return 0;
fail:
    ad_errf(err, errlen, rc, "out of memory");
fail_msg:
    ad_payload_parser_free(p);
    return rc;
}

/* Parse a whole string as a finite number. 0 ok, AD_EFORMAT, AD_ENONFINITE. */
static int parse_num(const char *s, size_t len, double *v)
{
    char buf[64], *end;
    while (len && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) { s++; len--; }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
                   s[len - 1] == '\n')) len--;
    if (len == 0 || len >= sizeof buf)
        return AD_EFORMAT;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod accepts hex and "inf"/"nan" words; take only decimal numbers.
     * Not finite: the words nan, inf, infinity (any case, a sign first);
     * other text ("N/A", "idle") is not a number */
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789+-.eE", buf[i])) {
            const char *w = buf + (buf[0] == '+' || buf[0] == '-');
            return strcasecmp(w, "nan") == 0 || strcasecmp(w, "inf") == 0 ||
                   strcasecmp(w, "infinity") == 0 ? AD_ENONFINITE : AD_EFORMAT;
        }
    errno = 0;
    *v = strtod(buf, &end);
    if (end == buf || *end != '\0')
        return AD_EFORMAT;
    if (!isfinite(*v))
        return AD_ENONFINITE;
    return 0;
}

static int find_feature(const ad_payload_parser *p, const char *name)
{
    for (int i = 0; i < p->n_features; i++)
        if (strcmp(p->names[i], name) == 0)
            return i;
    return -1;
}

/* ---- refused values ---------------------------------------------------------- */

#define REFUSED_NAMED 3     /* refused values a message's log line names */

/* The values one message refused: how many, and the first REFUSED_NAMED
 * said ("field \"pressure\": not a number: \"abc\"; ..."). */
typedef struct refusals {
    int n;
    size_t len;
    char list[320];
} refusals;

/* Up to 32 bytes of untrusted text, quoted, control and non-ASCII bytes as
 * '?' (it goes into a log line), "..." when cut. */
static void quote_text(const char *s, size_t len, char *b, size_t bl)
{
    size_t o = 0, i;

    if (bl < 8)
        return;
    b[o++] = '"';
    for (i = 0; i < len && i < 32 && o + 6 < bl; i++)
        b[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (i < len && o + 6 < bl) {
        memcpy(b + o, "...", 3);
        o += 3;
    }
    b[o++] = '"';
    b[o] = '\0';
}

/* One refused value: out[k] gets the feature with `why` (AD_SAMPLE_*),
 * value NaN, time t; `what` names where it was and what it held. */
static void refuse(refusals *r, ad_sample *o, int f, int why, double t, const char *what)
{
    o->feature = f;
    o->refused = why;
    o->value = NAN;
    o->time = t;
    if (r->n++ < REFUSED_NAMED && r->len < sizeof r->list) {
        int w = snprintf(r->list + r->len, sizeof r->list - r->len, "%s%s",
                         r->n > 1 ? "; " : "", what);
        r->len += w > 0 ? (size_t)w : 0;
        if (r->len >= sizeof r->list)
            r->len = sizeof r->list - 1;
    }
}

/* On success: err says what was refused ("" when nothing was). */
static void refusals_say(const refusals *r, char *err, size_t errlen)
{
    if (r->n == 0)
        ad_errf(err, errlen, 0, "%s", "");
    else if (r->n == 1)
        ad_errf(err, errlen, 0, "%s (value refused: the feature is missing from this "
                "message)", r->list);
    else if (r->n <= REFUSED_NAMED)
        ad_errf(err, errlen, 0, "%d values refused (missing from this message): %s", r->n,
                r->list);
    else
        ad_errf(err, errlen, 0, "%d values refused (missing from this message): %s; "
                "and %d more", r->n, r->list, r->n - REFUSED_NAMED);
}

/* What a JSON value that is not a finite number holds, for the log. */
static void json_bad_text(const cJSON *j, int why, char *b, size_t bl)
{
    char q[48];

    if (cJSON_IsString(j)) {
        quote_text(j->valuestring, strlen(j->valuestring), q, sizeof q);
        snprintf(b, bl, "%s: %s", why == AD_SAMPLE_NONFINITE ? "not finite" : "not a number", q);
    } else if (cJSON_IsNumber(j)) {
        snprintf(b, bl, "not finite: a number beyond the double range");
    } else {
        snprintf(b, bl, "not a number: %s", cJSON_IsBool(j) ? (cJSON_IsTrue(j) ? "true" : "false")
                                            : cJSON_IsObject(j) ? "an object"
                                            : cJSON_IsArray(j) ? "an array" : "not a value");
    }
}

static int parse_number(const ad_payload_parser *p, const char *topic, const char *buf,
                        size_t len, ad_sample *out, int max, int *n,
                        char *err, size_t errlen)
{
    char lev[256];
    double v;
    int f, rc;
    size_t k;

    if (ad_topic_level(topic, p->feature_level, lev, sizeof lev) < 0)
        return ad_errf(err, errlen, AD_ENOENT, "topic has no level %d", p->feature_level);
    if ((f = find_feature(p, lev)) < 0)
        return ad_errf(err, errlen, AD_ENOENT, "unknown feature \"%.64s\"", lev);
    /* nothing sent (an empty payload clears a retained message): no value */
    for (k = 0; k < len && strchr(" \t\r\n", buf[k]) != NULL && buf[k] != '\0'; k++)
        ;
    if (k == len)
        return ad_errf(err, errlen, AD_EFORMAT, "empty payload (%zu bytes%s): a number "
                       "expected", len, len ? ", all white space" : "");
    if (max < 1)
        return ad_errf(err, errlen, AD_ERANGE, "no room for samples");
    if ((rc = parse_num(buf, len, &v))) {
        refusals r = { 0, 0, "" };
        char q[48], what[200];
        /* the payload is not NUL-terminated: quote_text is bounded by len */
        quote_text(buf, len, q, sizeof q);
        snprintf(what, sizeof what, "feature %.64s: %s: %s", p->features[f],
                 rc == AD_ENONFINITE ? "not finite" : "not a number", q);
        refuse(&r, &out[0], f, rc == AD_ENONFINITE ? AD_SAMPLE_NONFINITE : AD_SAMPLE_NONNUMERIC,
               NAN, what);
        refusals_say(&r, err, errlen);
        *n = 1;
        return 0;
    }
    out[0].feature = f;
    out[0].refused = 0;
    out[0].value = v;
    out[0].time = NAN;
    *n = 1;
    ad_errf(err, errlen, 0, "%s", "");         /* nothing refused */
    return 0;
}

/* A JSON value as a finite number: numbers and numeric strings. */
static int json_num(const cJSON *j, double *v)
{
    if (cJSON_IsNumber(j)) {
        *v = j->valuedouble;
        return isfinite(*v) ? 0 : AD_ENONFINITE;
    }
    if (cJSON_IsString(j))
        return parse_num(j->valuestring, strlen(j->valuestring), v);
    return AD_EFORMAT;
}

/* Walk a dotted path; components that are decimal integers index arrays. */
static const cJSON *json_path(const cJSON *root, const char *path)
{
    const cJSON *cur = root;
    const char *s = path;
    char comp[256];

    while (cur && *s) {
        const char *e = strchr(s, '.');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l >= sizeof comp) return NULL;
        memcpy(comp, s, l);
        comp[l] = '\0';
        if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, comp);
        } else if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(comp, &end, 10);
            if (l == 0 || *end || i < 0 || i > 1000000) return NULL;
            cur = cJSON_GetArrayItem(cur, (int)i);
        } else {
            return NULL;
        }
        s = e ? e + 1 : s + l;
    }
    return cur;
}

/* Is `name` the first component of `path`? */
static int first_comp(const char *path, const char *name)
{
    size_t l = strlen(name);
    return strncmp(path, name, l) == 0 && (path[l] == '\0' || path[l] == '.');
}

static int parse_json(const ad_payload_parser *p, const cJSON *root, ad_sample *out,
                      int max, int *n, int *unknown, refusals *r, char *err, size_t errlen)
{
    double t = NAN;
    int k = 0, rc;

    if (!cJSON_IsObject(root))
        return ad_errf(err, errlen, AD_EFORMAT, "expected a JSON object");
    if (p->timestamp) {
        const cJSON *tj = json_path(root, p->timestamp);
        if (tj) {
            if ((rc = json_num(tj, &t)))
                return ad_errf(err, errlen, rc, "timestamp \"%s\": not a finite number",
                               p->timestamp);
            t *= p->ts_scale;
        }
    }
    for (int i = 0; i < p->n_features; i++) {
        const cJSON *j = json_path(root, p->names[i]);
        double v;
        if (!j || cJSON_IsNull(j))
            continue;
        if (k >= max)
            return ad_errf(err, errlen, AD_ERANGE, "too many samples");
        if ((rc = json_num(j, &v))) {
            /* this feature's value alone: the others are good */
            int why = rc == AD_ENONFINITE ? AD_SAMPLE_NONFINITE : AD_SAMPLE_NONNUMERIC;
            char b[96], what[200];
            json_bad_text(j, why, b, sizeof b);
            snprintf(what, sizeof what, "field \"%.64s\": %s", p->names[i], b);
            refuse(r, &out[k++], i, why, t, what);
            continue;
        }
        out[k].feature = i;
        out[k].refused = 0;
        out[k].value = v;
        out[k].time = t;
        k++;
    }
    for (const cJSON *m = root->child; m; m = m->next) {
        int known = p->timestamp && first_comp(p->timestamp, m->string);
        for (int i = 0; i < p->n_features && !known; i++)
            known = first_comp(p->names[i], m->string);
        if (!known && unknown)
            (*unknown)++;
    }
    *n = k;
    if (k == 0)
        return ad_errf(err, errlen, AD_ENOENT, "no known feature in the object");
    return 0;
}

/* ---- fast path for flat JSON objects ---------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A strict JSON number at s[*i..len) to the same double as cJSON (strtod,
 * correctly rounded). 1 ok, 0 give up (grammar not strict, too long). */
static int flat_number(const char *s, size_t len, size_t *i, double *v)
{
    static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                  1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                  1e20, 1e21, 1e22 };
    size_t k = *i, st = *i;
    uint64_t m = 0;
    int nd = 0, e = 0, ee = 0, neg = 0, eneg = 0, exact = 1;

    if (k < len && s[k] == '-') { neg = 1; k++; }
    if (k >= len || s[k] < '0' || s[k] > '9')
        return 0;
    if (s[k] == '0') {
        k++;
    } else {
        for (; k < len && s[k] >= '0' && s[k] <= '9'; k++) {
            if (m || s[k] != '0') nd++;
            if (nd > 19) exact = 0; else m = m * 10 + (uint64_t)(s[k] - '0');
            if (nd > 19) e++;
        }
    }
    if (k < len && s[k] == '.') {
        k++;
        if (k >= len || s[k] < '0' || s[k] > '9')
            return 0;
        for (; k < len && s[k] >= '0' && s[k] <= '9'; k++) {
            if (m || s[k] != '0') nd++;
            if (nd > 19) { exact = 0; continue; }
            m = m * 10 + (uint64_t)(s[k] - '0');
            e--;
        }
    }
    if (k < len && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < len && (s[k] == '+' || s[k] == '-')) { eneg = s[k] == '-'; k++; }
        if (k >= len || s[k] < '0' || s[k] > '9')
            return 0;
        for (; k < len && s[k] >= '0' && s[k] <= '9'; k++)
            if (ee < 100000) ee = ee * 10 + (s[k] - '0');
        e += eneg ? -ee : ee;
    }
    /* cJSON reads numbers of at most 63 characters; the next character must
     * end the token as cJSON sees it */
    if (k - st > 40 || (k < len && ((s[k] >= '0' && s[k] <= '9') || s[k] == '+' ||
                                    s[k] == '-' || s[k] == '.' || s[k] == 'e' || s[k] == 'E')))
        return 0;
    *i = k;
    if (exact && m <= (1ull << 53) && e >= -22 && e <= 22) {
        /* both operands exact: one correctly rounded operation, as strtod */
        double d = (double)m;
        d = e < 0 ? d / p10[-e] : d * p10[e];
        *v = neg ? -d : d;
        return 1;
    }
    {
        char buf[64];
        memcpy(buf, s + st, k - st);
        buf[k - st] = '\0';
        *v = strtod(buf, NULL);
    }
    return 1;
}

/* A string without escapes or control characters at s[*i] (the opening
 * quote): its bytes in [*b, *b + *bl). 1 ok, 0 give up. */
static int flat_string(const char *s, size_t len, size_t *i, const char **b, size_t *bl)
{
    size_t k = *i + 1;
    const char *q = memchr(s + k, '"', len - k);
    if (!q)
        return 0;
    for (const char *c = s + k; c < q; c++)
        if (*c == '\\' || (unsigned char)*c < 0x20)
            return 0;
    *b = s + k;
    *bl = (size_t)(q - (s + k));
    *i = (size_t)(q - s) + 1;
    return 1;
}

/* 1: parsed (success only), 0: take the cJSON path. */
static int parse_json_flat(const ad_payload_parser *p, const char *s, size_t len,
                           ad_sample *out, int max, int *n, int *unknown)
{
    double val[64], t = NAN;
    uint64_t have = 0, isnull = 0;
    int have_ts = 0, unk = 0, k = 0, next = 0;
    size_t i = 0;

    while (i < len && is_ws(s[i])) i++;
    if (i >= len || s[i] != '{')
        return 0;
    i++;
    while (i < len && is_ws(s[i])) i++;
    if (i < len && s[i] == '}')
        return 0;                       /* empty: an error, cJSON's words */
    for (;;) {
        const char *key;
        size_t kl;
        int known = 0, kind;            /* 0 number, 1 null, 2 other */
        double v = 0;

        if (i >= len || s[i] != '"' || !flat_string(s, len, &i, &key, &kl))
            return 0;
        while (i < len && is_ws(s[i])) i++;
        if (i >= len || s[i] != ':')
            return 0;
        i++;
        while (i < len && is_ws(s[i])) i++;
        if (i >= len)
            return 0;
        if (s[i] == '"') {
            const char *b;
            size_t bl;
            if (!flat_string(s, len, &i, &b, &bl))
                return 0;
            kind = 2;
        } else if (s[i] == 'n' && len - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            i += 4;
            kind = 1;
        } else if (s[i] == 't' && len - i >= 4 && memcmp(s + i, "true", 4) == 0) {
            i += 4;
            kind = 2;
        } else if (s[i] == 'f' && len - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
            kind = 2;
        } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
            if (!flat_number(s, len, &i, &v))
                return 0;
            kind = 0;
        } else {
            return 0;                   /* nested, or not JSON */
        }
        if (p->timestamp && kl == p->ts_len && memcmp(key, p->timestamp, kl) == 0) {
            /* a timestamp must be a finite number (strings: cJSON path) */
            if (have_ts || kind != 0 || !isfinite(v))
                return 0;
            have_ts = 1;
            t = v * p->ts_scale;
            known = 1;
        }
        /* fields usually come in the same order every time: try the one
         * after the last match first */
        for (int j = 0, f = next; j < p->n_features; j++, f = f + 1 < p->n_features ? f + 1 : 0) {
            if (kl != p->name_len[f] || memcmp(key, p->names[f], kl) != 0)
                continue;
            if ((have >> f) & 1)
                return 0;               /* duplicate key: cJSON path */
            if (kind == 2 || (kind == 0 && !isfinite(v)))
                return 0;               /* numeric strings, errors: cJSON path */
            have |= 1ull << f;
            if (kind == 1) isnull |= 1ull << f;
            val[f] = v;
            known = 1;
            next = f + 1 < p->n_features ? f + 1 : 0;
            if (p->unique)
                break;
        }
        if (!known)
            unk++;
        while (i < len && is_ws(s[i])) i++;
        if (i >= len)
            return 0;
        if (s[i] == '}')
            break;
        if (s[i] != ',')
            return 0;
        i++;
        while (i < len && is_ws(s[i])) i++;
    }
    i++;
    while (i < len && is_ws(s[i])) i++;
    if (i != len)
        return 0;                       /* trailing bytes: cJSON path */
    for (int f = 0; f < p->n_features; f++) {
        if (!((have >> f) & 1) || ((isnull >> f) & 1))
            continue;
        if (k >= max)
            return 0;
        out[k].feature = f;
        out[k].refused = 0;
        out[k].value = val[f];
        out[k].time = t;
        k++;
    }
    if (k == 0)
        return 0;
    *n = k;
    if (unknown)
        *unknown += unk;
    return 1;
}

#define SENML_REL_LIMIT 268435456.0   /* 2^28: smaller times are relative */

static int parse_senml(const ad_payload_parser *p, const cJSON *root, double now,
                       ad_sample *out, int max, int *n, int *unknown, refusals *rf,
                       char *err, size_t errlen)
{
    char bn[256] = "", name[512];
    double bt = 0, bv = 0;
    int k = 0, idx = 0, rc;
    size_t plen = p->senml_base ? strlen(p->senml_base) : 0;

    if (!cJSON_IsArray(root))
        return ad_errf(err, errlen, AD_EFORMAT, "SenML: expected a JSON array of records");
    for (const cJSON *r = root->child; r; r = r->next, idx++) {
        const cJSON *j, *vj;
        const char *nm, *own;
        double v, t = 0, tt;
        int f, has_t = 0;

        if (!cJSON_IsObject(r))
            return ad_errf(err, errlen, AD_EFORMAT, "SenML record %d: not an object", idx);
        if ((j = cJSON_GetObjectItemCaseSensitive(r, "bn"))) {
            if (!cJSON_IsString(j) || strlen(j->valuestring) >= sizeof bn)
                return ad_errf(err, errlen, AD_EFORMAT, "SenML record %d: bad bn", idx);
            strcpy(bn, j->valuestring);
        }
        if ((j = cJSON_GetObjectItemCaseSensitive(r, "bt"))) {
            if ((rc = json_num(j, &bt)) || !cJSON_IsNumber(j))
                return ad_errf(err, errlen, rc ? rc : AD_EFORMAT, "SenML record %d: bad bt", idx);
        }
        if ((j = cJSON_GetObjectItemCaseSensitive(r, "bv"))) {
            if ((rc = json_num(j, &bv)) || !cJSON_IsNumber(j))
                return ad_errf(err, errlen, rc ? rc : AD_EFORMAT, "SenML record %d: bad bv", idx);
        }
        j = cJSON_GetObjectItemCaseSensitive(r, "n");
        if (j && !cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EFORMAT, "SenML record %d: bad n", idx);
        own = j ? j->valuestring : "";
        snprintf(name, sizeof name, "%s%s", bn, own);
        vj = cJSON_GetObjectItemCaseSensitive(r, "v");
        if (cJSON_IsNull(vj))
            continue;           /* no value, as a JSON null: absent, not refused */
        if (!vj) {
            /* base-only record, or string/bool/data/sum values we do not use */
            if (cJSON_GetObjectItemCaseSensitive(r, "vs") ||
                cJSON_GetObjectItemCaseSensitive(r, "vb") ||
                cJSON_GetObjectItemCaseSensitive(r, "vd") ||
                cJSON_GetObjectItemCaseSensitive(r, "s"))
                if (unknown) (*unknown)++;
            continue;
        }
        if ((j = cJSON_GetObjectItemCaseSensitive(r, "t"))) {
            if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
                return ad_errf(err, errlen, AD_EFORMAT, "SenML record %d: bad t", idx);
            t = j->valuedouble;
            has_t = 1;
        }
        nm = name;
        if (plen && strncmp(nm, p->senml_base, plen) == 0)
            nm += plen;
        if ((f = find_feature(p, nm)) < 0 && (!own[0] || (f = find_feature(p, own)) < 0)) {
            if (unknown) (*unknown)++;
            continue;
        }
        if (k >= max)
            return ad_errf(err, errlen, AD_ERANGE, "SenML: more than %d records", max);
        tt = bt + t;
        tt = has_t || bt != 0 ? (tt < SENML_REL_LIMIT ? now + tt : tt) : NAN;
        v = cJSON_IsNumber(vj) ? bv + vj->valuedouble : NAN;
        if (!isfinite(v)) {
            /* this record's value alone: the pack's others are good */
            int why = cJSON_IsNumber(vj) ? AD_SAMPLE_NONFINITE : AD_SAMPLE_NONNUMERIC;
            char b[96], what[240];
            if (why == AD_SAMPLE_NONFINITE)
                snprintf(b, sizeof b, "not finite: %s", isfinite(vj->valuedouble) ?
                         "bv + v beyond the double range" : "a number beyond the double range");
            else
                json_bad_text(vj, why, b, sizeof b);
            snprintf(what, sizeof what, "SenML record %d (\"%.64s\"): v %s", idx, name, b);
            refuse(rf, &out[k++], f, why, tt, what);
            continue;
        }
        out[k].feature = f;
        out[k].refused = 0;
        out[k].value = v;
        out[k].time = tt;
        k++;
    }
    *n = k;
    if (k == 0)
        return ad_errf(err, errlen, AD_ENOENT, "SenML: no record names a known feature");
    return 0;
}

/* The presence words of payload.h STATUS TEXT. */
static const char *const presence_words[] = {
    "online", "offline", "connected", "disconnected", "lost", "ready", "init",
    "sleeping", "alive", "dead"
};

/* A device's presence text, not data (payload.h STATUS TEXT): the payload
 * b[0..n), blanks around it already skipped, is a presence word, bare or
 * as a JSON string without escapes, in any case. Only those: any other
 * short text ("error", "ERR 5", "null", "0", "21.5" quoted) is what the
 * device sends in place of its data, malformed (its stream's `rejected`),
 * never to be taken silently for a status that lets it look silent. */
static int status_text(const char *b, size_t n)
{
    size_t i;

    if (n >= 2 && b[0] == '"' && b[n - 1] == '"') {
        b++;
        n -= 2;
    }
    if (n == 0 || n > AD_PAYLOAD_STATUS_MAX)
        return 0;
    for (i = 0; i < sizeof presence_words / sizeof presence_words[0]; i++)
        if (strlen(presence_words[i]) == n && strncasecmp(b, presence_words[i], n) == 0)
            return 1;
    return 0;
}

/* The first sample whose time a stream cannot hold (ad_time_ok: 1970-01-01
 * to 9999-12-31), or -1. NaN is no time (the arrival time is used); an
 * infinite one (SenML bt + t past DBL_MAX) is refused like any other. */
static int bad_time(const ad_sample *out, int n)
{
    for (int i = 0; i < n; i++)
        if (!isnan(out[i].time) && !ad_time_ok(out[i].time))
            return i;
    return -1;
}

int ad_payload_parse(const ad_payload_parser *p, const char *topic,
                     const void *buf, size_t len, double now,
                     ad_sample *out, int max, int *n, int *unknown,
                     char *err, size_t errlen)
{
    int unk = 0;

    *n = 0;
    if (p->flat && parse_json_flat(p, buf, len, out, max, n, &unk) && bad_time(out, *n) < 0) {
        if (unknown)
            *unknown += unk;
        ad_errf(err, errlen, 0, "%s", "");     /* nothing refused */
        return 0;
    }
    *n = 0;
    return ad_payload_parse_ref(p, topic, buf, len, now, out, max, n, unknown, err, errlen);
}

int ad_payload_parse_ref(const ad_payload_parser *p, const char *topic,
                         const void *buf, size_t len, double now,
                         ad_sample *out, int max, int *n, int *unknown,
                         char *err, size_t errlen)
{
    cJSON *root;
    refusals rf = { 0, 0, "" };
    int rc, i;

    *n = 0;
    if (p->format == AD_FMT_NUMBER)
        return parse_number(p, topic, buf, len, out, max, n, err, errlen);
    {
        /* a whole payload: text after the value (a second object glued on
         * by a gateway, say) is refused, not silently dropped */
        char e[160];
        size_t k;

        for (k = 0; k < len && strchr(" \t\r\n", ((const char *)buf)[k]) != NULL &&
                    ((const char *)buf)[k] != '\0'; k++)
            ;
        if (k == len)
            return ad_errf(err, errlen, AD_EFORMAT, "empty payload (%zu bytes%s): a JSON %s "
                           "expected", len, len ? ", all white space" : "",
                           p->format == AD_FMT_JSON ? "object" : "array (SenML)");
        {
            const char *b = (const char *)buf + k;
            size_t m = len - k;

            while (m > 0 && strchr(" \t\r\n", b[m - 1]) != NULL && b[m - 1] != '\0')
                m--;
            if (status_text(b, m)) {
                char q[48];
                quote_text(b, m, q, sizeof q);
                return ad_errf(err, errlen, AD_PAYLOAD_STATUS, "a status text, not data: %s",
                               q);
            }
        }
        root = ad_json_parse_whole(buf, len, "payload", e, sizeof e);
        if (!root)
            return ad_errf(err, errlen, AD_EFORMAT, "malformed JSON: %s",
                           strncmp(e, "invalid JSON ", 13) == 0 ? e + 13 : e);
    }
    if (p->format == AD_FMT_JSON)
        rc = parse_json(p, root, out, max, n, unknown, &rf, err, errlen);
    else
        rc = parse_senml(p, root, now, out, max, n, unknown, &rf, err, errlen);
    cJSON_Delete(root);
    if (rc == 0 && (i = bad_time(out, *n)) >= 0) {
        const char *hint = "";

        /* a value a thousand or a million times too large for the unit
         * configured: most likely ms or us sent under a coarser unit */
        if (p->format == AD_FMT_JSON && p->timestamp && p->ts_scale > 1e-6 &&
            ad_time_ok(out[i].time * 1e-3))
            hint = p->ts_scale > 1e-3 ? "; if the devices send milliseconds, set "
                                        "payload.timestamp_unit \"ms\""
                                      : "; if the devices send microseconds, set "
                                        "payload.timestamp_unit \"us\"";
        else if (p->format == AD_FMT_JSON && p->timestamp && p->ts_scale > 1e-3 &&
                 ad_time_ok(out[i].time * 1e-6))
            hint = "; if the devices send microseconds, set payload.timestamp_unit \"us\"";
        else if (p->format == AD_FMT_SENML && ad_time_ok(out[i].time * 1e-3))
            hint = "; SenML times (bt, t) are seconds (RFC 8428): this one reads as "
                   "milliseconds";
        rc = ad_errf(err, errlen, AD_ERANGE, "timestamp %.17g s%s: outside " AD_TIME_RANGE "%s",
                     out[i].time, p->format == AD_FMT_JSON && p->timestamp ?
                     " (payload.timestamp_unit applied)" : "", hint);
    }
    if (rc)
        *n = 0;
    else
        refusals_say(&rf, err, errlen);
    return rc;
}
