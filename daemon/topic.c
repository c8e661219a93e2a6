/*
 * topic.c - MQTT topic filter matching and level extraction (see topic.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "ad.h"
#include "topic.h"

const char *ad_topic_share_strip(const char *f)
{
    const char *g, *e;
    if (strncmp(f, "$share/", 7) != 0)
        return f;
    g = f + 7;
    e = strchr(g, '/');
    if (!e || e == g)
        return f;                 /* malformed: filter_check says why */
    return e + 1;
}

int ad_topic_filter_check(const char *f, char *err, size_t errlen)
{
    size_t n;
    if (strncmp(f, "$share/", 7) == 0) {
        const char *g = f + 7, *e = strchr(g, '/');
        if (!e || e == g)
            return ad_errf(err, errlen, AD_EINVAL, "$share/<group>/<filter>: missing group "
                           "or filter");
        for (const char *p = g; p < e; p++)
            if (*p == '+' || *p == '#')
                return ad_errf(err, errlen, AD_EINVAL, "$share group name with a wildcard");
        f = e + 1;
    }
    n = strlen(f);
    if (n == 0)
        return ad_errf(err, errlen, AD_EINVAL, "empty filter");
    if (n > 65535)
        return ad_errf(err, errlen, AD_EINVAL, "longer than 65535 bytes");
    for (size_t i = 0; i < n; i++) {
        int start = i == 0 || f[i - 1] == '/';
        int end = i + 1 == n || f[i + 1] == '/';
        if (f[i] == '+' && !(start && end))
            return ad_errf(err, errlen, AD_EINVAL, "'+' must occupy a whole level");
        if (f[i] == '#' && !(start && i + 1 == n))
            return ad_errf(err, errlen, AD_EINVAL, "'#' must be the whole last level");
    }
    return 0;
}

/* Filter f against topic t, level by level; with any, a level of t holding
 * '\1' (a template's {stream}) matches whatever f has there. */
static int match_levels(const char *f, const char *t, int any)
{
    f = ad_topic_share_strip(f);
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return 0;
    for (;;) {
        const char *fe = strchrnul(f, '/'), *te = strchrnul(t, '/');
        int wild = any && memchr(t, '\1', (size_t)(te - t)) != NULL;
        if (fe - f == 1 && f[0] == '#')
            return 1;
        if (!(fe - f == 1 && f[0] == '+') && !wild &&
            (fe - f != te - t || memcmp(f, t, (size_t)(fe - f)) != 0))
            return 0;
        if (*fe == '\0' && *te == '\0')
            return 1;
        if (*te == '\0')              /* "a/#" also matches "a" */
            return strcmp(fe, "/#") == 0;
        if (*fe == '\0')
            return 0;
        f = fe + 1;
        t = te + 1;
    }
}

int ad_topic_match(const char *f, const char *t)
{
    return match_levels(f, t, 0);
}

int ad_topic_level(const char *t, int idx, char *out, size_t outlen)
{
    int nlev = 1;
    const char *p, *e;
    size_t l;

    for (p = t; *p; p++)
        if (*p == '/') nlev++;
    if (idx < 0) idx += nlev;
    if (idx < 0 || idx >= nlev) return -1;
    p = t;
    for (int i = 0; i < idx; i++)
        p = strchr(p, '/') + 1;
    e = strchr(p, '/');
    l = e ? (size_t)(e - p) : strlen(p);
    if (l + 1 > outlen) return -1;
    memcpy(out, p, l);
    out[l] = '\0';
    return (int)l;
}

int ad_topic_stream_key(const char *t, const int *levels, int n, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0) return -1;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        int l;
        if (i) {
            if (o + 2 > outlen) return -1;
            out[o++] = '/';
        }
        l = ad_topic_level(t, levels[i], out + o, outlen - o);
        if (l < 0) return -1;
        o += (size_t)l;
    }
    out[o] = '\0';
    return (int)o;
}

int ad_topic_expand(const char *tmpl, const char *det, const char *stream,
                    char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = tmpl; *p; ) {
        const char *s = NULL;
        size_t l;
        if (strncmp(p, "{detector}", 10) == 0) { s = det; p += 10; }
        else if (strncmp(p, "{stream}", 8) == 0) { s = stream; p += 8; }
        if (s) {
            l = strlen(s);
            if (o + l + 1 > outlen) return -1;
            memcpy(out + o, s, l);
            o += l;
        } else {
            if (o + 2 > outlen) return -1;
            out[o++] = *p++;
        }
    }
    if (o + 1 > outlen) return -1;
    out[o] = '\0';
    return (int)o;
}

/* The level count of filter f and whether it ends with '#'. */
static int filter_levels(const char *f, int *hash)
{
    int n = 1;
    for (const char *p = f; *p; p++)
        if (*p == '/') n++;
    *hash = strcmp(f, "#") == 0 || (strlen(f) >= 2 && strcmp(f + strlen(f) - 2, "/#") == 0);
    return n;
}

int ad_topic_share_warning(char *const *filters, int n, const int *levels, int nlev,
                           char *out, size_t outlen)
{
    int shared = -1;
    for (int i = 0; i < n; i++)
        if (ad_topic_share_strip(filters[i]) != filters[i]) { shared = i; break; }
    if (shared < 0)
        return 0;
    if (n > 1) {
        snprintf(out, outlen, "%d topic filters feed the detector under the shared "
                 "subscription \"%s\": a stream's topics may reach different instances",
                 n, filters[shared]);
        return 1;
    }
    {
        const char *f = ad_topic_share_strip(filters[0]);
        int hash, nl = filter_levels(f, &hash);
        const char *p = f;
        if (hash) {
            snprintf(out, outlen, "shared subscription \"%s\" ends with '#': a stream may "
                     "span several topics, which the broker can deliver to different "
                     "instances", filters[0]);
            return 1;
        }
        for (int lv = 0; lv < nl; lv++) {
            const char *e = strchrnul(p, '/');
            if (e - p == 1 && p[0] == '+') {
                int in = 0;
                for (int k = 0; k < nlev; k++)
                    in |= levels[k] == lv || levels[k] + nl == lv;
                if (!in) {
                    snprintf(out, outlen, "shared subscription \"%s\": topic level %d is a "
                             "wildcard outside stream_levels, so one stream's rows come from "
                             "several topics, which the broker can deliver to different "
                             "instances (one topic per stream keeps a stream whole)",
                             filters[0], lv);
                    return 1;
                }
            }
            p = *e ? e + 1 : e;
        }
    }
    return 0;
}

int ad_topic_template_overlap(const char *f, const char *tmpl, const char *detector, int nlev)
{
    char t[1024];
    size_t o = 0;

    /* {stream} becomes nlev levels of '\1', a level that stands for any */
    for (const char *p = tmpl; *p && o + 1 < sizeof t; ) {
        if (strncmp(p, "{detector}", 10) == 0) {
            if (detector)
                o += (size_t)snprintf(t + o, sizeof t - o, "%s", detector);
            else
                t[o++] = '\1';         /* any detector name */
            p += 10;
        } else if (strncmp(p, "{stream}", 8) == 0) {
            for (int i = 0; i < nlev && o + 2 < sizeof t; i++) {
                if (i)
                    t[o++] = '/';
                t[o++] = '\1';
            }
            p += 8;
        } else {
            t[o++] = *p++;
        }
        if (o >= sizeof t)
            o = sizeof t - 1;
    }
    t[o] = '\0';
    return match_levels(f, t, 1);
}
