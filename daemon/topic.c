/*
 * topic.c - MQTT topic filter matching and level extraction (see topic.h).
 */
#define _GNU_SOURCE
#include <string.h>

#include "ad.h"
#include "topic.h"

int ad_topic_filter_check(const char *f, char *err, size_t errlen)
{
    size_t n = strlen(f);
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

int ad_topic_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return 0;
    for (;;) {
        const char *fe = strchrnul(f, '/'), *te = strchrnul(t, '/');
        if (fe - f == 1 && f[0] == '#')
            return 1;
        if (!(fe - f == 1 && f[0] == '+') &&
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
