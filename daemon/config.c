/*
 * config.c - table-driven parsing and validation of the daemon's JSON config.
 *
 * The key tables live in config_keys.c (their shape in config_int.h); this
 * file owns the engine that walks them. parse_table() walks a cJSON object
 * against a table: unknown keys are errors, every value is type- and
 * range-checked, absent keys get their default. Checks that span keys
 * (cert without key, duplicate detector names, invalid topic filters)
 * follow in validate(). Error messages carry the JSON path built while
 * descending. Also here: relative paths resolved against the config file's
 * directory, freeing, the reload comparison and the password file.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cJSON.h>

#include "ad.h"
#include "config.h"
#include "topic.h"
#include "command.h"
#include "config_int.h"

/* ---- helpers ---------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_value(const key *k, char *base)
{
    void *p = base + k->off;
    switch (k->type) {
    case K_STR: case K_PATH:
        free(*(char **)p); *(char **)p = NULL; break;
    case K_STRLIST: {
        ad_strlist *l = p;
        for (int i = 0; i < l->n; i++) free(l->v[i]);
        free(l->v); l->v = NULL; l->n = 0; break;
    }
    case K_INTLIST: {
        ad_intlist *l = p;
        free(l->v); l->v = NULL; l->n = 0; break;
    }
    case K_STRMAP: {
        ad_strmap *m = p;
        for (int i = 0; i < m->n; i++) { free(m->key[i]); free(m->val[i]); }
        free(m->key); free(m->val); m->key = m->val = NULL; m->n = 0; break;
    }
    case K_RANGES: {
        ad_rangemap *m = p;
        for (int i = 0; i < m->n; i++) free(m->name[i]);
        free(m->name); free(m->lo); free(m->hi);
        m->name = NULL; m->lo = m->hi = NULL; m->n = 0; break;
    }
    default: break;
    }
}

static void free_table(const table *t, char *base)
{
    for (int i = 0; i < t->n; i++) {
        if (t->keys[i].type == K_OBJ)
            free_table(t->keys[i].sub, base + t->keys[i].off);
        else
            free_value(&t->keys[i], base);
    }
}

static int enum_index(const char *list, const char *s)
{
    size_t n = strlen(s);
    int i = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, s, n) == 0)
            return i;
        if (!e) break;
        p = e + 1;
        i++;
    }
    return -1;
}

static int set_default(const key *k, char *base)
{
    void *p = base + k->off;
    if (k->flags & F_LIB)
        return 0;       /* set by ad_detector_cfg_default() before */
    switch (k->type) {
    case K_STR: case K_PATH:
        *(char **)p = xstrdup(k->def);
        return (k->def && !*(char **)p) ? AD_ENOMEM : 0;
    case K_INT:
        *(int *)p = k->def ? atoi(k->def) : 0; return 0;
    case K_I64:
        *(int64_t *)p = k->def ? strtoll(k->def, NULL, 10) : 0; return 0;
    case K_CBUF:
        snprintf((char *)p, (size_t)k->max, "%s", k->def ? k->def : ""); return 0;
    case K_NUM:
        *(double *)p = k->def ? strtod(k->def, NULL) : 0; return 0;
    case K_BOOL:
        *(int *)p = k->def && strcmp(k->def, "true") == 0; return 0;
    case K_ENUM:
        *(int *)p = k->def ? enum_index(k->enums, k->def) : 0; return 0;
    case K_INTLIST: {
        ad_intlist *l = p;
        if (!k->def) return 0;
        l->v = malloc(sizeof(int));
        if (!l->v) return AD_ENOMEM;
        l->v[0] = atoi(k->def); l->n = 1;   /* single-value defaults only */
        return 0;
    }
    default:
        return 0;
    }
}

static const char *jtype(const cJSON *j)
{
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

static void key_list(const table *t, char *out, size_t len, int with_detectors)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < t->n && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "|" : "", t->keys[i].name);
    if (with_detectors && o < len)
        snprintf(out + o, len - o, "|detectors");
}

/* A JSON number that is an integer within the key's range, as a double
 * (exact for the ranges the table allows). */
static int parse_integer(const cJSON *j, const key *k, const char *path, double *out,
                         char *err, size_t errlen)
{
    double v;
    if (!cJSON_IsNumber(j))
        return ad_errf(err, errlen, AD_EINVAL, "%s: expected an integer, got %s",
                       path, jtype(j));
    v = j->valuedouble;
    if (!isfinite(v) || v != floor(v))
        return ad_errf(err, errlen, AD_EINVAL, "%s: expected an integer, got %.15g", path, v);
    if (v < k->min || v > k->max)
        return ad_errf(err, errlen, AD_ERANGE, "%s: %.15g out of range [%.15g, %.15g]",
                       path, v, k->min, k->max);
    *out = v;
    return 0;
}

static int parse_int(const cJSON *j, const key *k, const char *path, int *out,
                     char *err, size_t errlen)
{
    double v;
    int rc = parse_integer(j, k, path, &v, err, errlen);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static int parse_table(const table *t, const cJSON *obj, char *base,
                       const char *path, char *err, size_t errlen);

/* One limit of a range: a finite number, or null (no limit that side). */
static int parse_limit(const cJSON *e, const char *path, int i, double *out,
                       char *err, size_t errlen)
{
    if (cJSON_IsNull(e)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(e))
        return ad_errf(err, errlen, AD_EINVAL, "%s[%d]: expected a number or null (no %s "
                       "limit), got %s", path, i, i ? "upper" : "lower", jtype(e));
    if (!isfinite(e->valuedouble))
        return ad_errf(err, errlen, AD_ERANGE, "%s[%d]: not a finite number (null: no %s "
                       "limit)", path, i, i ? "upper" : "lower");
    *out = e->valuedouble;
    return 0;
}

/* "quality.ranges": {"feature": [min, max], ...}, either limit null. The
 * names are checked against the model's features when it is loaded
 * (generation.c, replay: lib/detector.c). */
static int parse_ranges(const cJSON *j, const key *k, char *base, const char *path,
                        char *err, size_t errlen)
{
    ad_rangemap *m = (ad_rangemap *)(base + k->off);
    char sub[512];
    int n, rc;

    if (!cJSON_IsObject(j))
        return ad_errf(err, errlen, AD_EINVAL, "%s: expected an object of feature: "
                       "[min, max], got %s", path, jtype(j));
    free_value(k, base);
    n = cJSON_GetArraySize(j);
    m->name = calloc((size_t)n + 1, sizeof(char *));
    m->lo = calloc((size_t)n + 1, sizeof(double));
    m->hi = calloc((size_t)n + 1, sizeof(double));
    if (!m->name || !m->lo || !m->hi) return AD_ENOMEM;
    for (const cJSON *e = j->child; e; e = e->next) {
        double lo, hi;
        snprintf(sub, sizeof sub, "%.240s.%.240s", path, e->string);
        for (int i = 0; i < m->n; i++)
            if (strcmp(m->name[i], e->string) == 0)
                return ad_errf(err, errlen, AD_EINVAL, "%s: duplicate key", sub);
        if (!e->string[0])
            return ad_errf(err, errlen, AD_EINVAL, "%s: empty feature name", path);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2)
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected [min, max] (a number or "
                           "null each), got %s%s", sub, cJSON_IsArray(e) ? "an array of " : "",
                           cJSON_IsArray(e) ? (cJSON_GetArraySize(e) == 1 ? "1 item" :
                                               "other than 2 items") : jtype(e));
        if ((rc = parse_limit(cJSON_GetArrayItem(e, 0), sub, 0, &lo, err, errlen)) ||
            (rc = parse_limit(cJSON_GetArrayItem(e, 1), sub, 1, &hi, err, errlen)))
            return rc;
        if (isnan(lo) && isnan(hi))
            return ad_errf(err, errlen, AD_EINVAL, "%s: [null, null] sets no limit (remove "
                           "the entry)", sub);
        if (lo >= hi)
            return ad_errf(err, errlen, AD_ERANGE, "%s: min %.15g is not less than max %.15g",
                           sub, lo, hi);
        if (!(m->name[m->n] = strdup(e->string))) return AD_ENOMEM;
        m->lo[m->n] = lo;
        m->hi[m->n] = hi;
        m->n++;
    }
    return 0;
}

/* Parse one value into base+k->off (the default was set before). */
static int parse_value(const key *k, const cJSON *j, char *base, const char *path,
                       char *err, size_t errlen)
{
    void *p = base + k->off;
    int rc;

    switch (k->type) {
    case K_STR: case K_PATH:
        if (cJSON_IsNull(j) && !(k->flags & F_REQ)) {
            free_value(k, base);
            return 0;
        }
        if (!cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a string, got %s",
                           path, jtype(j));
        if (j->valuestring[0] == '\0' && k->type == K_PATH)
            return ad_errf(err, errlen, AD_EINVAL, "%s: empty path", path);
        free_value(k, base);
        *(char **)p = strdup(j->valuestring);
        return *(char **)p ? 0 : AD_ENOMEM;
    case K_INT:
        return parse_int(j, k, path, p, err, errlen);
    case K_I64: {
        double v;
        if ((rc = parse_integer(j, k, path, &v, err, errlen)) != 0)
            return rc;
        *(int64_t *)p = (int64_t)v;
        return 0;
    }
    case K_CBUF:
        if (!cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a string, got %s",
                           path, jtype(j));
        if (strlen(j->valuestring) + 1 > (size_t)k->max || !j->valuestring[0])
            return ad_errf(err, errlen, AD_ERANGE, "%s: 1 to %d characters", path,
                           (int)k->max - 1);
        snprintf((char *)p, (size_t)k->max, "%s", j->valuestring);
        return 0;
    case K_NUM:
        if (!cJSON_IsNumber(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a number, got %s",
                           path, jtype(j));
        if (!isfinite(j->valuedouble) || j->valuedouble < k->min || j->valuedouble > k->max)
            return ad_errf(err, errlen, AD_ERANGE, "%s: %.15g out of range [%.15g, %.15g]",
                           path, j->valuedouble, k->min, k->max);
        *(double *)p = j->valuedouble;
        return 0;
    case K_BOOL:
        if (!cJSON_IsBool(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected true or false, got %s",
                           path, jtype(j));
        *(int *)p = cJSON_IsTrue(j);
        return 0;
    case K_ENUM: {
        int idx;
        if (cJSON_IsNumber(j) && strchr(k->enums, '5')) {
            /* let "protocol": 5 be written as a number too */
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%g", j->valuedouble);
            idx = enum_index(k->enums, tmp);
            if (idx >= 0) { *(int *)p = idx; return 0; }
        }
        if (!cJSON_IsString(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected a string (%s), got %s",
                           path, k->enums, jtype(j));
        idx = enum_index(k->enums, j->valuestring);
        if (idx < 0)
            return ad_errf(err, errlen, AD_EINVAL, "%s: unknown value \"%.64s\" (expected %s)",
                           path, j->valuestring, k->enums);
        *(int *)p = idx;
        return 0;
    }
    case K_STRLIST: {
        ad_strlist *l = p;
        int n;
        if (cJSON_IsString(j)) {      /* a single string is a list of one */
            free_value(k, base);
            l->v = calloc(1, sizeof(char *));
            if (!l->v || !(l->v[0] = strdup(j->valuestring))) return AD_ENOMEM;
            l->n = 1;
            return 0;
        }
        if (!cJSON_IsArray(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an array of strings, got %s",
                           path, jtype(j));
        free_value(k, base);
        n = cJSON_GetArraySize(j);
        l->v = calloc((size_t)n + 1, sizeof(char *));
        if (!l->v) return AD_ENOMEM;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(j, i);
            if (!cJSON_IsString(e))
                return ad_errf(err, errlen, AD_EINVAL, "%s[%d]: expected a string, got %s",
                               path, i, jtype(e));
            if (!(l->v[i] = strdup(e->valuestring))) return AD_ENOMEM;
            l->n = i + 1;
        }
        return 0;
    }
    case K_INTLIST: {
        ad_intlist *l = p;
        int n;
        if (!cJSON_IsArray(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an array of integers, got %s",
                           path, jtype(j));
        free_value(k, base);
        n = cJSON_GetArraySize(j);
        l->v = calloc((size_t)n + 1, sizeof(int));
        if (!l->v) return AD_ENOMEM;
        for (int i = 0; i < n; i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%.480s[%d]", path, i);
            if ((rc = parse_int(cJSON_GetArrayItem(j, i), k, sub, &l->v[i], err, errlen)))
                return rc;
            l->n = i + 1;
        }
        return 0;
    }
    case K_STRMAP: {
        ad_strmap *m = p;
        int n;
        if (!cJSON_IsObject(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an object, got %s",
                           path, jtype(j));
        free_value(k, base);
        n = cJSON_GetArraySize(j);
        m->key = calloc((size_t)n + 1, sizeof(char *));
        m->val = calloc((size_t)n + 1, sizeof(char *));
        if (!m->key || !m->val) return AD_ENOMEM;
        for (const cJSON *e = j->child; e; e = e->next) {
            for (int i = 0; i < m->n; i++)
                if (strcmp(m->key[i], e->string) == 0)
                    return ad_errf(err, errlen, AD_EINVAL, "%s.%s: duplicate key",
                                   path, e->string);
            if (!cJSON_IsString(e) || e->valuestring[0] == '\0')
                return ad_errf(err, errlen, AD_EINVAL, "%s.%s: expected a non-empty string, got %s",
                               path, e->string, jtype(e));
            m->key[m->n] = strdup(e->string);
            m->val[m->n] = strdup(e->valuestring);
            m->n++;
            if (!m->key[m->n - 1] || !m->val[m->n - 1]) return AD_ENOMEM;
        }
        return 0;
    }
    case K_RANGES:
        return parse_ranges(j, k, base, path, err, errlen);
    case K_OBJ:
        if (!cJSON_IsObject(j))
            return ad_errf(err, errlen, AD_EINVAL, "%s: expected an object, got %s",
                           path, jtype(j));
        return parse_table(k->sub, j, base + k->off, path, err, errlen);
    }
    return AD_EINVAL;
}

static int set_defaults(const table *t, char *base)
{
    int rc;
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        rc = k->type == K_OBJ ? set_defaults(k->sub, base + k->off) : set_default(k, base);
        if (rc) return rc;
    }
    return 0;
}

void cfg_join_path(char *out, size_t len, const char *path, const char *name)
{
    if (path[0])
        snprintf(out, len, "%s.%s", path, name);
    else
        snprintf(out, len, "%s", name);
}

/* Walk obj's members against t (defaults must already be set). */
static int parse_table(const table *t, const cJSON *obj, char *base,
                       const char *path, char *err, size_t errlen)
{
    char sub[512];
    int rc;

    for (const cJSON *e = obj->child; e; e = e->next) {
        const key *k = NULL;
        for (int i = 0; i < t->n; i++)
            if (strcmp(t->keys[i].name, e->string) == 0) { k = &t->keys[i]; break; }
        cfg_join_path(sub, sizeof sub, path, e->string);
        for (const cJSON *d = obj->child; d != e; d = d->next)
            if (strcmp(d->string, e->string) == 0)
                return ad_errf(err, errlen, AD_EINVAL, "%s: duplicate key", sub);
        if (!k) {
            char list[512];
            if (strcmp(e->string, "password") == 0 && t == &cfg_broker_table)
                return ad_errf(err, errlen, AD_EINVAL, "%s: not allowed: put the "
                               "password in a file and name it in password_file", sub);
            key_list(t, list, sizeof list, t == &cfg_root_table);
            return ad_errf(err, errlen, AD_EINVAL, "%s: unknown key (expected %s)", sub, list);
        }
        if ((rc = parse_value(k, e, base, sub, err, errlen)))
            return rc;
    }
    for (int i = 0; i < t->n; i++) {
        if ((t->keys[i].flags & F_REQ) && !cJSON_GetObjectItemCaseSensitive(obj, t->keys[i].name)) {
            cfg_join_path(sub, sizeof sub, path, t->keys[i].name);
            return ad_errf(err, errlen, AD_EINVAL, "%s: missing (required)", sub);
        }
    }
    return 0;
}

/* One setting given both as a window count and as data time (cfg_alt) in
 * detector object det (path "detectors[i]"): an error naming both keys. */
static int check_alts(const cJSON *det, const char *path, char *err, size_t errlen)
{
    for (int i = 0; i < cfg_detector_n_alts; i++) {
        const cfg_alt *a = &cfg_detector_alts[i];
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(det, a->obj), *n, *ms;
        if (!cJSON_IsObject(o))
            continue;
        n = cJSON_GetObjectItemCaseSensitive(o, a->count);
        ms = cJSON_GetObjectItemCaseSensitive(o, a->ms);
        if (n && cJSON_IsNumber(ms) && ms->valuedouble > 0)
            return ad_errf(err, errlen, AD_EINVAL, "%s: %s.%s (%.0f) and %s.%s (%.0f): set "
                           "one of them", path, a->obj, a->ms, ms->valuedouble, a->obj,
                           a->count, n->valuedouble);
    }
    return 0;
}

/* ---- paths ------------------------------------------------------------ */

static int resolve(char **p, const char *dir)
{
    char *n;
    size_t l;
    if (!*p || (*p)[0] == '/' || !dir || !dir[0])
        return 0;
    l = strlen(dir) + strlen(*p) + 2;
    if (!(n = malloc(l))) return AD_ENOMEM;
    snprintf(n, l, "%s/%s", dir, *p);
    free(*p);
    *p = n;
    return 0;
}

static int resolve_table(const table *t, char *base, const char *dir)
{
    int rc;
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        if (k->type == K_OBJ)
            rc = resolve_table(k->sub, base + k->off, dir);
        else if (k->type == K_PATH)
            rc = resolve((char **)(base + k->off), dir);
        else
            rc = 0;
        if (rc) return rc;
    }
    return 0;
}

/* ---- cross-key validation -------------------------------------------- */

static int check_template(const char *t, const char *path, char *err, size_t errlen)
{
    const char *p = t;
    if (!t[0])
        return ad_errf(err, errlen, AD_EINVAL, "%s: empty topic", path);
    if (strpbrk(t, "+#"))
        return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": wildcards not allowed in a "
                       "publish topic", path, t);
    while ((p = strchr(p, '{'))) {
        if (strncmp(p, "{detector}", 10) == 0) p += 10;
        else if (strncmp(p, "{stream}", 8) == 0) p += 8;
        else
            return ad_errf(err, errlen, AD_EINVAL, "%s: \"%s\": unknown placeholder "
                           "(expected {detector} or {stream})", path, t);
    }
    return 0;
}

static int readable(const char *f, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (f && stat(f, &st) != 0)
        return ad_errf(err, errlen, AD_ENOENT, "%s: %s: %s", path, f, strerror(errno));
    return 0;
}

static int validate(ad_config *c, char *err, size_t errlen)
{
    ad_broker_cfg *b = &c->broker;
    char path[256];
    int rc;

    if (!b->host || !b->host[0])
        return ad_errf(err, errlen, AD_EINVAL, "broker.host: empty");
    if (!b->client_id || !b->client_id[0] || strlen(b->client_id) > 65535)
        return ad_errf(err, errlen, AD_EINVAL, "broker.client_id: empty or too long");
    if (b->reconnect_min > b->reconnect_max)
        return ad_errf(err, errlen, AD_ERANGE, "broker.reconnect_min_s: %g is more "
                       "than reconnect_max_s %g", b->reconnect_min, b->reconnect_max);
    if (!b->tls.cert_file != !b->tls.key_file)
        return ad_errf(err, errlen, AD_EINVAL, "broker.tls.%s: missing (cert_file and "
                       "key_file go together)", b->tls.cert_file ? "key_file" : "cert_file");
    if (b->password_file && !b->username)
        return ad_errf(err, errlen, AD_EINVAL, "broker.username: missing (password_file "
                       "needs a user name)");
    if ((rc = readable(b->password_file, "broker.password_file", err, errlen)) ||
        (rc = readable(b->tls.ca_file, "broker.tls.ca_file", err, errlen)) ||
        (rc = readable(b->tls.cert_file, "broker.tls.cert_file", err, errlen)) ||
        (rc = readable(b->tls.key_file, "broker.tls.key_file", err, errlen)))
        return rc;
    if (b->status_topic && (rc = check_template(b->status_topic, "broker.status_topic", err, errlen)))
        return rc;
    if (b->stats_topic && (rc = check_template(b->stats_topic, "broker.stats_topic", err, errlen)))
        return rc;
    if ((rc = check_template(c->ha.state_topic ? c->ha.state_topic : "",
                             "homeassistant.state_topic", err, errlen)) ||
        (rc = check_template(c->ha.discovery_prefix ? c->ha.discovery_prefix : "",
                             "homeassistant.discovery_prefix", err, errlen)) ||
        (rc = check_template(c->cmd.reply_topic ? c->cmd.reply_topic : "",
                             "commands.reply_topic", err, errlen)) ||
        (rc = ad_cmd_topic_check(c->cmd.topic, "commands.topic", err, errlen)))
        return rc;
    if (c->n_det == 0)
        return ad_errf(err, errlen, AD_EINVAL, "detectors: at least one detector is needed");
    for (int i = 0; i < c->n_det; i++) {
        ad_detconf *d = &c->det[i];
        const char *s;
        for (s = d->name; *s; s++)
            if (!(( *s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
                break;
        if (!d->name[0] || *s || strlen(d->name) > 64)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].name: \"%.64s\": use 1-64 "
                           "characters A-Z a-z 0-9 _ -", i, d->name);
        for (int j = 0; j < i; j++)
            if (strcmp(c->det[j].name, d->name) == 0)
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].name: \"%s\" already "
                               "used by detectors[%d]", i, d->name, j);
        if (d->topics.n == 0 && d->kafka_topics.n == 0)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].topics: empty (and no "
                           "kafka_topics)", i);
        if ((d->kafka_topics.n || d->alerts_to != AD_ALERTS_MQTT) &&
            !c->kafka.bootstrap_servers)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].%s: needs "
                           "kafka.bootstrap_servers", i,
                           d->kafka_topics.n ? "kafka_topics" : "alerts_to");
        for (int j = 0; j < d->topics.n; j++) {
            char terr[128];
            if (ad_topic_filter_check(d->topics.v[j], terr, sizeof terr))
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].topics[%d]: \"%.200s\": %s",
                               i, j, d->topics.v[j], terr);
        }
        snprintf(path, sizeof path, "detectors[%d].alert.topic", i);
        if ((rc = check_template(d->alert_topic ? d->alert_topic : "", path, err, errlen)))
            return rc;
        if (d->state_topic) {
            snprintf(path, sizeof path, "detectors[%d].alert.state_topic", i);
            if ((rc = check_template(d->state_topic, path, err, errlen)))
                return rc;
        }
        if (d->payload.format == AD_FMT_JSON || d->payload.format == AD_FMT_SENML) {
            for (int j = 0; j < d->payload.fields.n; j++) {
                const char *v = d->payload.fields.val[j];
                if (d->payload.format == AD_FMT_JSON &&
                    (v[0] == '.' || v[strlen(v) - 1] == '.' || strstr(v, "..")))
                    return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].payload.fields.%s: "
                                   "\"%s\": empty path component", i,
                                   d->payload.fields.key[j], v);
            }
        }
        if (d->payload.timestamp && d->payload.format != AD_FMT_JSON)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].payload.timestamp: only "
                           "for format json", i);
        if (d->asm_mode == AD_ASM_CFG_AUTO)
            d->pipe.stream.mode = d->payload.format == AD_FMT_JSON ? AD_ASM_ROWS : AD_ASM_ALL;
        else
            d->pipe.stream.mode = (ad_asm_mode)d->asm_mode;
        if (d->pipe.stream.mode == AD_ASM_ROWS && d->payload.format != AD_FMT_JSON)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].rows.mode: \"rows\" needs "
                           "payload.format json (a message per row)", i);
        if (d->pipe.thr.method == AD_THR_FIXED && !(d->pipe.thr.fixed > 0))
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].calibration.fixed: "
                           "must be > 0 with method fixed", i);
        if (d->pipe.alert.k > d->pipe.alert.n)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].alert.k: %d is more than "
                           "alert.n %d", i, d->pipe.alert.k, d->pipe.alert.n);
        if (d->pipe.training == AD_TRAIN_BOOTSTRAP) {
            if (d->features.n < 1 || d->window_length < 1)
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].training: bootstrap "
                               "needs training.features and window.length", i);
        } else if (!d->model) {
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].model: missing (required "
                           "unless training.mode is bootstrap)", i);
        }
        {
            char e2[200];
            if (ad_detector_cfg_check(&d->pipe, e2, sizeof e2))
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d]: %s", i, e2);
        }
        d->pipe.name = d->name;     /* log lines of its streams name it */
        /* quality.ranges: the library reads them by name (borrowed) */
        d->pipe.dq_n_ranges = d->dq_ranges.n;
        d->pipe.dq_range_names = (const char *const *)d->dq_ranges.name;
        d->pipe.dq_range_lo = d->dq_ranges.lo;
        d->pipe.dq_range_hi = d->dq_ranges.hi;
    }
    return 0;
}

int ad_config_check_run(const ad_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->n_det; i++) {
        const ad_detconf *d = &c->det[i];
        /* a threshold learned from scores needs an end to calibration
         * (replay's --calibrate-rows ends it by rows instead) */
        if (d->pipe.calib_windows == 0 && d->pipe.calib_duration_ms == 0 &&
            d->pipe.thr.method != AD_THR_FIXED && d->pipe.thr.method != AD_THR_MODEL)
            return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].calibration.windows: 0 (no "
                           "count limit) needs calibration.duration_ms: streams would never "
                           "finish calibrating", i);
    }
    return 0;
}

/* ---- entry points ----------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *s;
    if (!path || !(s = strrchr(path, '/')))
        return strdup("");
    if (s == path)
        return strdup("/");
    return strndup(path, (size_t)(s - path));
}

int ad_config_parse(ad_config **out, const char *json, size_t len,
                    const char *path, char *err, size_t errlen)
{
    ad_config *c = NULL;
    cJSON *root = NULL;
    const cJSON *dets;
    char *dir = NULL;
    int rc;

    *out = NULL;
    if (!(root = ad_json_parse_whole(json, len, "configuration object", err, errlen)))
        return AD_EFORMAT;
    if (!cJSON_IsObject(root)) {
        rc = ad_errf(err, errlen, AD_EINVAL, "(root): expected an object");
        goto fail;
    }
    if (!(c = calloc(1, sizeof *c)) || !(c->path = strdup(path ? path : "(config)"))) {
        rc = AD_ENOMEM;
        goto fail;
    }
    if ((rc = set_defaults(&cfg_root_table, (char *)c)))
        goto fail;
    /* parse_table would call "detectors" unknown: detach it first */
    dets = cJSON_DetachItemFromObjectCaseSensitive(root, "detectors");
    rc = parse_table(&cfg_root_table, root, (char *)c, "", err, errlen);
    if (rc) {
        cJSON_Delete((cJSON *)dets);
        goto fail;
    }
    if (!dets) {
        rc = ad_errf(err, errlen, AD_EINVAL, "detectors: missing (required)");
        goto fail;
    }
    cJSON_AddItemToObject(root, "detectors", (cJSON *)dets);  /* freed with root */
    if (!cJSON_IsArray(dets)) {
        rc = ad_errf(err, errlen, AD_EINVAL, "detectors: expected an array, got %s", jtype(dets));
        goto fail;
    }
    c->n_det = 0;
    c->det = calloc((size_t)cJSON_GetArraySize(dets) + 1, sizeof *c->det);
    if (!c->det) { rc = AD_ENOMEM; goto fail; }
    for (const cJSON *d = dets->child; d; d = d->next) {
        char p[64];
        snprintf(p, sizeof p, "detectors[%d]", c->n_det);
        if (!cJSON_IsObject(d)) {
            rc = ad_errf(err, errlen, AD_EINVAL, "%s: expected an object, got %s", p, jtype(d));
            goto fail;
        }
        ad_detector_cfg_default(&c->det[c->n_det].pipe);
        if ((rc = set_defaults(&cfg_detector_table, (char *)&c->det[c->n_det])))
            goto fail;
        c->n_det++;
        if ((rc = parse_table(&cfg_detector_table, d, (char *)&c->det[c->n_det - 1], p, err, errlen)) ||
            (rc = check_alts(d, p, err, errlen)))
            goto fail;
    }
    if (!(dir = dir_of(path))) { rc = AD_ENOMEM; goto fail; }
    if ((rc = resolve_table(&cfg_root_table, (char *)c, dir)))
        goto fail;
    for (int i = 0; i < c->n_det; i++)
        if ((rc = resolve_table(&cfg_detector_table, (char *)&c->det[i], dir)))
            goto fail;
    if ((rc = validate(c, err, errlen)))
        goto fail;
    free(dir);
    cJSON_Delete(root);
    *out = c;
    return 0;
fail:
    if (rc == AD_ENOMEM)
        ad_errf(err, errlen, rc, "out of memory");
    free(dir);
    cJSON_Delete(root);
    ad_config_free(c);
    return rc;
}

int ad_config_load(ad_config **out, const char *path, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t n;
    char e2[512];
    int rc;

    *out = NULL;
    if ((rc = ad_read_file(path, 16u << 20, &buf, &n, err, errlen)) != 0)
        return rc;      /* message names the file */
    rc = ad_config_parse(out, buf, n, path, e2, sizeof e2);
    free(buf);
    if (rc)
        ad_errf(err, errlen, rc, "%s: %s", path, e2);
    return rc;
}

void ad_config_free(ad_config *c)
{
    if (!c) return;
    free_table(&cfg_root_table, (char *)c);
    for (int i = 0; i < c->n_det; i++)
        free_table(&cfg_detector_table, (char *)&c->det[i]);
    free(c->det);
    free(c->path);
    free(c);
}

/* ---- comparison ------------------------------------------------------- */

static int value_eq(const key *k, const char *a, const char *b)
{
    const void *pa = a + k->off, *pb = b + k->off;
    switch (k->type) {
    case K_STR: case K_PATH: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
    }
    case K_INT: case K_BOOL: case K_ENUM:
        return *(const int *)pa == *(const int *)pb;
    case K_I64:
        return *(const int64_t *)pa == *(const int64_t *)pb;
    case K_CBUF:
        return strcmp((const char *)pa, (const char *)pb) == 0;
    case K_NUM:
        return *(const double *)pa == *(const double *)pb;
    case K_STRLIST: {
        const ad_strlist *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++) if (strcmp(x->v[i], y->v[i])) return 0;
        return 1;
    }
    case K_INTLIST: {
        const ad_intlist *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++) if (x->v[i] != y->v[i]) return 0;
        return 1;
    }
    case K_STRMAP: {
        const ad_strmap *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++)
            if (strcmp(x->key[i], y->key[i]) || strcmp(x->val[i], y->val[i])) return 0;
        return 1;
    }
    case K_RANGES: {
        const ad_rangemap *x = pa, *y = pb;
        if (x->n != y->n) return 0;
        for (int i = 0; i < x->n; i++)
            if (strcmp(x->name[i], y->name[i]) ||
                !((x->lo[i] == y->lo[i]) || (isnan(x->lo[i]) && isnan(y->lo[i]))) ||
                !((x->hi[i] == y->hi[i]) || (isnan(x->hi[i]) && isnan(y->hi[i]))))
                return 0;
        return 1;
    }
    case K_OBJ:
        return 1;
    }
    return 0;
}

/* First key (with all of `need` flags, or lacking F_RELOAD when need == 0)
 * whose value differs; its JSON path goes to out. */
/* The keys that differ between a and b (of those with flags `need`; 0:
 * those a reload cannot change): how many, their JSON paths joined with
 * ", " in out (out[0] = '\0' first; "..." when it is full). */
static int diff_table(const table *t, const char *a, const char *b, unsigned need,
                      const char *path, char *out, size_t len)
{
    char sub[256];
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        const key *k = &t->keys[i];
        cfg_join_path(sub, sizeof sub, path, k->name);
        if (k->type == K_OBJ) {
            n += diff_table(k->sub, a + k->off, b + k->off, need, sub, out, len);
            continue;
        }
        if (need ? (k->flags & need) != need : (k->flags & F_RELOAD) != 0)
            continue;
        if (!value_eq(k, a, b)) {
            size_t o = strlen(out);
            if (o + strlen(sub) + 6 < len)
                snprintf(out + o, len - o, "%s%s", n || o ? ", " : "", sub);
            else if (o + 6 < len && !strstr(out, "..."))
                snprintf(out + o, len - o, ", ...");
            n++;
        }
    }
    return n;
}

/* Whether some detector of c consumes Kafka topic t. */
static int kafka_topic_used(const ad_config *c, const char *t)
{
    for (int i = 0; i < c->n_det; i++)
        for (int j = 0; j < c->det[i].kafka_topics.n; j++)
            if (strcmp(c->det[i].kafka_topics.v[j], t) == 0)
                return 1;
    return 0;
}

/* A Kafka topic that b consumes and a does not (or the other way: new
 * 0): the consumer's subscription is made at start. */
static int kafka_topics_differ(const ad_config *a, const ad_config *b, int new, char *err,
                               size_t errlen)
{
    for (int i = 0; i < b->n_det; i++)
        for (int j = 0; j < b->det[i].kafka_topics.n; j++) {
            const char *t = b->det[i].kafka_topics.v[j];
            if (kafka_topic_used(a, t))
                continue;
            if (new)
                return ad_errf(err, errlen, AD_EINVAL, "detectors[%d].kafka_topics: Kafka "
                               "topic \"%.200s\" is new, but a reload cannot change the "
                               "topics consumed (restart the daemon)", i, t);
            return ad_errf(err, errlen, AD_EINVAL, "kafka_topics: Kafka topic \"%.200s\" "
                           "(of detector %s) is no longer consumed, but a reload cannot "
                           "change the topics consumed (restart the daemon)", t,
                           b->det[i].name);
        }
    return 0;
}

int ad_config_reload_ok(const ad_config *a, const ad_config *b, char *err, size_t errlen)
{
    char p[400] = "";     /* fits the callers' 512-byte message */
    int n = diff_table(&cfg_root_table, (const char *)a, (const char *)b, 0, "", p, sizeof p);
    if (n)
        return ad_errf(err, errlen, AD_EINVAL, "%s: changed, but a reload cannot change %s "
                       "(restart the daemon)", p, n > 1 ? "them" : "it");
    /* the topics of one detector may move to another; the set stays */
    if (kafka_topics_differ(a, b, 1, err, errlen) || kafka_topics_differ(b, a, 0, err, errlen))
        return AD_EINVAL;
    return 0;
}

int ad_detconf_same_pipeline(const ad_detconf *a, const ad_detconf *b)
{
    char p[256] = "";
    return !diff_table(&cfg_detector_table, (const char *)a, (const char *)b, F_PIPE, "",
                       p, sizeof p);
}

int ad_detconf_rows_diff(const ad_detconf *a, const ad_detconf *b, char *out, size_t len)
{
    int n = 0;

    out[0] = '\0';
    for (int i = 0; i < cfg_detector_table.n; i++) {
        const key *k = &cfg_detector_table.keys[i];
        if (k->type == K_OBJ && !strcmp(k->name, "rows"))
            n += diff_table(k->sub, (const char *)a + k->off, (const char *)b + k->off,
                            F_PIPE, k->name, out, len);
    }
    /* rows.mode auto both times, but another payload.format */
    if (a->pipe.stream.mode != b->pipe.stream.mode && !strstr(out, "rows.mode")) {
        size_t o = strlen(out);
        snprintf(out + o, len - o, "%srows.mode (auto, with another payload.format)",
                 o ? ", " : "");
        n++;
    }
    return n;
}

/* ---- secrets ---------------------------------------------------------- */

int ad_config_read_password(const char *path, char **out, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t n;
    int rc;

    *out = NULL;
    if ((rc = ad_read_file(path, 64u << 10, &buf, &n, err, errlen)) != 0)
        return rc;
    ((char *)buf)[strcspn(buf, "\r\n")] = '\0';     /* the first line */
    *out = buf;
    return 0;
}
