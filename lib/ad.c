/*
 * ad.c - error strings, the log callback and small helpers shared by the
 * whole library: aligned allocation, checked sizes, the FNV-1a hash,
 * mkdir -p and whole text files.
 */
#include "ad.h"
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

static ad_log_fn log_fn;
static void *log_ud;

const char *ad_strerror(int err)
{
    switch (err) {
    case AD_OK: return "success";
    case AD_ENOENT: return "no such file or directory";
    case AD_EIO: return "input/output error";
    case AD_ENOMEM: return "out of memory";
    case AD_EINVAL: return "invalid argument";
    case AD_ERANGE: return "value out of range";
    case AD_EFORMAT: return "malformed input";
    case AD_ESHAPE: return "tensor shape does not match the architecture";
    case AD_EARCH: return "unsupported or inconsistent architecture";
    case AD_ENONFINITE: return "non-finite value";
    default: return "unknown error";
    }
}

void ad_log_set(ad_log_fn fn, void *userdata)
{
    log_fn = fn;
    log_ud = userdata;
}

void ad_log(int level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (log_fn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_ud);
}

int ad_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void *ad_aalloc(size_t bytes)
{
    void *p = NULL;

    if (bytes == 0)
        bytes = 64;
    /* Round up: aligned_alloc wants a multiple of the alignment. */
    if (bytes > SIZE_MAX - 63)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    return p;
}

void ad_afree(void *p)
{
    free(p);
}

int ad_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

int ad_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

size_t ad_place(size_t *off, size_t n, size_t size, size_t align)
{
    size_t at, bytes;

    if (*off == SIZE_MAX || ad_add_size(*off, align - 1, &at))
        goto overflow;
    at &= ~(align - 1);
    if (ad_mul_size(n, size, &bytes) || ad_add_size(at, bytes, off) || *off == SIZE_MAX)
        goto overflow;
    return at;
overflow:
    *off = SIZE_MAX;
    return SIZE_MAX;
}

uint64_t ad_hash64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t ad_hash64_str(const char *s)
{
    return ad_hash64(AD_HASH64_INIT, s, strlen(s));
}

int ad_mkdir_p(const char *dir, unsigned mode, char *err, size_t errlen)
{
    char tmp[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof tmp)
        return ad_errf(err, errlen, AD_EINVAL, "%s: bad directory name", dir);
    memcpy(tmp, dir, n + 1);
    /* each parent in turn, then the directory itself */
    for (char *p = tmp + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST)
            return ad_errf(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    return 0;
}

int ad_read_text(const char *path, size_t max, char **out, char *err, size_t errlen)
{
    void *buf;
    char *s;
    size_t len;
    int rc;

    *out = NULL;
    if ((rc = ad_read_file(path, max, &buf, &len, err, errlen)) != 0)
        return rc;
    if (!(s = realloc(buf, len + 1))) {
        free(buf);
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
    }
    s[len] = '\0';
    *out = s;
    return 0;
}
