/*
 * ad.c - error strings, the log callback and small helpers shared by the
 * whole library and the daemon: checked sizes, aligned allocation, the FNV
 * hash, the string builder and whole-file reading and atomic writing.
 */
#include "ad.h"

#include <dirent.h>
#include <cJSON.h>
#include <math.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    default:
        /* the other codes are -errno too (libuv's convention): -ENOTDIR
         * from ad_dir_of_exists, -EACCES from an atomic write, ... */
        return err < 0 && err > AD_EFORMAT ? strerror(-err) : "unknown error";
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

/* ---- shared helpers: hash, string builder, whole-file I/O --------------- */

uint64_t ad_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t ad_fnv1a64_str(const char *s)
{
    return ad_fnv1a64(AD_FNV_INIT, s, strlen(s));
}

/* Make room for n more bytes and the NUL; 0 or -1 (oom set). */
static int buf_grow(ad_buf *b, size_t n)
{
    size_t need, nc;
    char *ns;

    if (b->oom || ad_add_size(b->len, n, &need) || ad_add_size(need, 1, &need)) {
        b->oom = 1;
        return -1;
    }
    if (need <= b->cap)
        return 0;
    nc = b->cap ? b->cap : 256;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        nc *= 2;
    }
    if (!(ns = realloc(b->s, nc))) {
        b->oom = 1;
        return -1;
    }
    b->s = ns;
    b->cap = nc;
    return 0;
}

void ad_buf_put(ad_buf *b, const char *s, size_t n)
{
    if (buf_grow(b, n))
        return;
    if (n)
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void ad_buf_puts(ad_buf *b, const char *s)
{
    ad_buf_put(b, s, strlen(s));
}

void ad_buf_printf(ad_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (buf_grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ad_buf_free(ad_buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

/* Open for reading without blocking (a FIFO without a writer would block
 * open() itself) and check it is a regular file before the first read. */
static int open_regular(const char *path, size_t max, struct stat *sb,
                        char *err, size_t errlen)
{
    int fd, fl, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = errno == ENOENT ? AD_ENOENT : -errno;
        return ad_errf(err, errlen, rc, "%s: %s", path, strerror(errno));
    }
    if (fstat(fd, sb) < 0) {
        rc = ad_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb->st_mode)) {
        rc = ad_errf(err, errlen, AD_EINVAL, "%s: not a regular file (%s)", path,
                     S_ISDIR(sb->st_mode) ? "a directory" : S_ISFIFO(sb->st_mode) ?
                     "a FIFO" : S_ISCHR(sb->st_mode) || S_ISBLK(sb->st_mode) ?
                     "a device" : S_ISSOCK(sb->st_mode) ? "a socket" : "special");
        goto fail;
    }
    if ((unsigned long long)sb->st_size > (unsigned long long)max) {
        rc = ad_errf(err, errlen, AD_ERANGE, "%s: file is %lld bytes, larger than "
                     "the limit %zu", path, (long long)sb->st_size, max);
        goto fail;
    }
    /* regular file: blocking reads again (O_NONBLOCK means nothing for
     * regular files on Linux, but keep the descriptor conventional) */
    if ((fl = fcntl(fd, F_GETFL)) >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
fail:
    close(fd);
    return rc;
}

int ad_read_file(const char *path, size_t max, void **buf, size_t *len,
                 char *err, size_t errlen)
{
    struct stat sb;
    unsigned char *p = NULL;
    size_t got = 0, cap;
    int fd, rc;

    if (path == NULL || buf == NULL || len == NULL || max == SIZE_MAX)
        return ad_errf(err, errlen, AD_EINVAL, "ad_read_file: bad arguments");
    *buf = NULL;
    *len = 0;
    if ((fd = open_regular(path, max, &sb, err, errlen)) < 0)
        return fd;
    /* Read until EOF rather than trusting st_size (the file may change). */
    cap = (size_t)sb.st_size + 1;
    if (!(p = malloc(cap))) {
        rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        ssize_t n;
        if (got + 1 >= cap) {           /* keep room for the NUL */
            unsigned char *np;
            if (got > max) {
                rc = ad_errf(err, errlen, AD_ERANGE, "%s: file larger than the "
                             "limit %zu", path, max);
                goto fail;
            }
            cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            if (!(np = realloc(p, cap))) {
                rc = ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            p = np;
        }
        n = read(fd, p + got, cap - 1 - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ad_errf(err, errlen, AD_EIO, "%s: read: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > max) {
        rc = ad_errf(err, errlen, AD_ERANGE, "%s: file larger than the limit %zu",
                     path, max);
        goto fail;
    }
    close(fd);
    p[got] = '\0';
    *buf = p;
    *len = got;
    return 0;
fail:
    free(p);
    close(fd);
    return rc;
}

int ad_write_file_atomic(const char *path, const void *buf, size_t len,
                         char *err, size_t errlen)
{
    return ad_write_file_atomic_mode(path, buf, len, 0600, err, errlen);
}

/* The directory part of path ("." for a bare name, "/" for the root):
 * malloc'd, NULL on out of memory. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int ad_dir_of_exists(const char *path, char *err, size_t errlen)
{
    char *dir = parent_dir(path), *miss;
    struct stat st;
    int rc;

    if (dir == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
    if (stat(dir, &st) == 0) {
        /* a regular file where the directory should be: refused now too,
         * not when the file is created after the work */
        rc = S_ISDIR(st.st_mode) ? 0 : ad_errf(err, errlen, -ENOTDIR, "%s: %s is not a "
                                               "directory", path, dir);
        free(dir);
        return rc;
    }
    if ((miss = strdup(dir)) == NULL) {
        free(dir);
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
    }
    /* climb while the parent is missing too; a level that exists but is
     * not a directory (a/file/sub/m: stat says ENOTDIR) is named as such */
    for (;;) {
        char *up = parent_dir(miss);
        if (up != NULL && strcmp(up, miss) != 0 && stat(up, &st) == 0 &&
            !S_ISDIR(st.st_mode)) {
            rc = ad_errf(err, errlen, -ENOTDIR, "%s: %s is not a directory", path, up);
            free(up);
            free(miss);
            free(dir);
            return rc;
        }
        if (up == NULL || strcmp(up, miss) == 0 || stat(up, &st) == 0) {
            free(up);
            break;
        }
        free(miss);
        miss = up;
    }
    if (strcmp(miss, dir) == 0)
        rc = ad_errf(err, errlen, AD_ENOENT, "%s: directory %s does not exist", path, dir);
    else
        rc = ad_errf(err, errlen, AD_ENOENT, "%s: directory %s does not exist (%s is "
                     "missing)", path, dir, miss);
    free(miss);
    free(dir);
    return rc;
}

/* The file path could not be created next to (open of its temporary name
 * failed with errno e): the message names path, not the temporary name, and
 * for ENOENT the directory that is missing (ENOTDIR: the file in its way). */
static int create_error(const char *path, int e, char *err, size_t errlen)
{
    int rc;

    if ((e == ENOENT || e == ENOTDIR) && (rc = ad_dir_of_exists(path, err, errlen)) != 0)
        return rc;
    return ad_errf(err, errlen, e == ENOENT ? AD_ENOENT : -e, "%s: %s", path, strerror(e));
}

/* A fresh temporary name next to path (tmp: strlen(path) + 48 bytes),
 * created exclusively and never through a symlink: a file or link planted
 * under a predictable name is never written through (AD_TMP_MARK marks
 * leftovers for ad_clean_tmp_files). The descriptor, or -1 with errno. */
static int open_tmp(const char *path, char *tmp, size_t len)
{
    static unsigned long ctr;
    struct timespec ts;
    int fd, tries = 0;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    do {
        unsigned long c = __atomic_fetch_add(&ctr, 1, __ATOMIC_RELAXED);
        snprintf(tmp, len, "%s" AD_TMP_MARK "%ld.%lx", path, (long)getpid(),
                 (unsigned long)ts.tv_nsec ^ (c * 2654435761ul));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EEXIST && ++tries < 16);
    return fd;
}

int ad_dir_of_writable(const char *path, char *err, size_t errlen)
{
    size_t len = strlen(path) + 48;
    char *tmp = malloc(len);
    int fd, e;

    if (tmp == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
    if ((fd = open_tmp(path, tmp, len)) >= 0) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return 0;
    }
    e = errno;
    free(tmp);
    return create_error(path, e, err, errlen);
}

int ad_write_file_atomic_mode(const char *path, const void *buf, size_t len, unsigned mode,
                              char *err, size_t errlen)
{
    char *tmp = NULL, *dir = NULL, *slash;
    const unsigned char *p = buf;
    size_t plen, off = 0;
    int fd = -1, dfd, rc;

    if (path == NULL || (buf == NULL && len > 0))
        return ad_errf(err, errlen, AD_EINVAL,
                       "ad_write_file_atomic: bad arguments");
    plen = strlen(path);
    tmp = malloc(plen + 48);
    if (tmp == NULL)
        return ad_errf(err, errlen, AD_ENOMEM, "%s: out of memory", path);
    if ((fd = open_tmp(path, tmp, plen + 48)) < 0) {
        rc = create_error(path, errno, err, errlen);
        free(tmp);
        return rc;
    }
    /* the mode as given, whatever the umask (a unit's UMask=0077) */
    if ((mode & 0777) != 0600 && fchmod(fd, (mode_t)(mode & 0777)) < 0) {
        rc = ad_errf(err, errlen, AD_EIO, "%s: chmod %o: %s", path, mode & 0777,
                     strerror(errno));
        goto fail;
    }
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = ad_errf(err, errlen, AD_EIO, "%s: write: %s", path,
                         strerror(errno));
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        rc = ad_errf(err, errlen, AD_EIO, "%s: fsync: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = ad_errf(err, errlen, AD_EIO, "%s: close: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = ad_errf(err, errlen, AD_EIO, "%s: rename of the temporary file %s into "
                     "place: %s", path, tmp, strerror(errno));
        goto fail;
    }
    /* Make the rename durable: fsync the directory (best effort). */
    dir = strdup(path);
    if (dir != NULL) {
        slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash != NULL)
            *slash = '\0';
        dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

int ad_clean_tmp_files(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    int n = 0, dfd;

    if (dp == NULL)
        return -errno;
    dfd = dirfd(dp);
    while ((e = readdir(dp)) != NULL) {
        struct stat st;
        if (strstr(e->d_name, AD_TMP_MARK) == NULL)
            continue;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (unlinkat(dfd, e->d_name, 0) == 0)
            n++;
    }
    closedir(dp);
    return n;
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

int ad_read_text(const char *path, size_t max, char **out, char *err, size_t errlen)
{
    void *buf;
    size_t len;
    int rc;

    *out = NULL;
    if ((rc = ad_read_file(path, max, &buf, &len, err, errlen)) != 0)
        return rc;
    *out = buf;     /* ad_read_file ends the bytes with a NUL */
    return 0;
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

int ad_time_ok(double s)
{
    /* written so that NaN fails both comparisons */
    return s >= 0.0 && s <= AD_TIME_MAX_S;
}

void ad_iso_ms(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;

    if (gmtime_r(&s, &tm) == NULL) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

int ad_json_num(struct cJSON *o, const char *k, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, k, v) : cJSON_AddNullToObject(o, k)) != NULL;
}

void ad_json_fmt_num(char *buf, size_t len, double v)
{
    static const char *const fmt[] = { "%.15g", "%.16g", "%.17g" };
    int i;

    if (!isfinite(v)) {
        snprintf(buf, len, "null");
        return;
    }
    /* the shortest of 15, 16 or 17 digits that reads back as v (17 always
     * does; strtod rounds correctly) */
    for (i = 0; i < 3; i++) {
        snprintf(buf, len, fmt[i], v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* s as a JSON string, escaped as cJSON escapes it. */
static void json_put_string(ad_buf *b, const char *s)
{
    const char *run = s;

    ad_buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;

        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c >= 32)
                continue;
        }
        ad_buf_put(b, run, (size_t)(s - run));
        if (esc)
            ad_buf_puts(b, esc);
        else
            ad_buf_printf(b, "\\u%04x", c);
        run = s + 1;
    }
    ad_buf_put(b, run, (size_t)(s - run));
    ad_buf_put(b, "\"", 1);
}

/* One value (its members or elements too); 0, or -1 for an invalid item
 * or one nested deeper than cJSON parses. */
static int json_put(ad_buf *b, const cJSON *j, int depth)
{
    char num[40];
    const cJSON *c;

    if (depth > CJSON_NESTING_LIMIT)
        return -1;
    switch (j->type & 0xFF) {
    case cJSON_False: ad_buf_puts(b, "false"); return 0;
    case cJSON_True: ad_buf_puts(b, "true"); return 0;
    case cJSON_NULL: ad_buf_puts(b, "null"); return 0;
    case cJSON_Number:
        ad_json_fmt_num(num, sizeof num, j->valuedouble);
        ad_buf_puts(b, num);
        return 0;
    case cJSON_Raw:
        if (j->valuestring == NULL)
            return -1;
        ad_buf_puts(b, j->valuestring);
        return 0;
    case cJSON_String:
        json_put_string(b, j->valuestring ? j->valuestring : "");
        return 0;
    case cJSON_Array:
    case cJSON_Object:
        ad_buf_put(b, cJSON_IsArray(j) ? "[" : "{", 1);
        for (c = j->child; c; c = c->next) {
            if (c != j->child)
                ad_buf_put(b, ",", 1);
            if (cJSON_IsObject(j)) {
                if (c->string == NULL)
                    return -1;
                json_put_string(b, c->string);
                ad_buf_put(b, ":", 1);
            }
            if (json_put(b, c, depth + 1) != 0)
                return -1;
        }
        ad_buf_put(b, cJSON_IsArray(j) ? "]" : "}", 1);
        return 0;
    default:
        return -1;
    }
}

char *ad_json_print(const struct cJSON *item)
{
    ad_buf b = { 0 };

    if (item == NULL || json_put(&b, item, 0) != 0 || b.oom) {
        ad_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* White space as cJSON skips it (every byte up to ' ', NUL included), so
 * that the scan and the parse of the rest take the same bytes as the
 * member's separators. */
static const char *jws(const char *p, const char *e)
{
    while (p < e && (unsigned char)*p <= ' ')
        p++;
    return p;
}

/* Past the closing quote of the string that opens at p, or NULL. */
static const char *jstr_end(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\') {
            if (++p >= e)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Past the value at p (a string, an object or array with its brackets
 * matched, a scalar up to the next separator), or NULL. No recursion: a
 * count of the open brackets, whatever the depth. */
static const char *jval_end(const char *p, const char *e)
{
    size_t depth = 0;

    if (p >= e)
        return NULL;
    if (*p != '{' && *p != '[' && *p != '"') {
        const char *q = p;
        while (q < e && *q != ',' && *q != '}' && *q != ']' && (unsigned char)*q > ' ')
            q++;
        return q > p ? q : NULL;
    }
    do {
        if (*p == '"') {
            if (!(p = jstr_end(p, e)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        p++;
    } while (depth > 0 && p < e);
    return depth == 0 ? p : NULL;
}

/* Is the key whose quoted text is [k, ke) name? Compared as cJSON reads
 * it (cJSON_GetObjectItemCaseSensitive), so that the scan and a parse of
 * the record take the same member: a key with an escape ("st\u0061te") is
 * decoded, and one with a NUL byte ends there. */
static int jkey_is(const char *k, const char *ke, const char *name, size_t nl)
{
    cJSON *s;
    int is;

    if (!memchr(k, '\\', (size_t)(ke - k)) && !memchr(k, '\0', (size_t)(ke - k)))
        return (size_t)(ke - k) == nl + 2 && memcmp(k + 1, name, nl) == 0;
    s = cJSON_ParseWithLength(k, (size_t)(ke - k));
    is = cJSON_IsString(s) && strcmp(s->valuestring, name) == 0;
    cJSON_Delete(s);
    return is;
}

int ad_json_member_span(const char *text, size_t len, const char *name, size_t *start,
                        size_t *end)
{
    const char *p = text, *e = text + len, *k, *ke, *v;
    size_t nl = strlen(name);

    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)     /* a UTF-8 BOM, as cJSON */
        p += 3;
    p = jws(p, e);
    if (p >= e || *p != '{')
        return AD_EINVAL;
    p = jws(p + 1, e);
    if (p < e && *p == '}')
        return AD_ENOENT;
    while (p < e) {
        if (*p != '"' || !(ke = jstr_end(p, e)))
            return AD_EINVAL;
        k = p;
        p = jws(ke, e);
        if (p >= e || *p != ':')
            return AD_EINVAL;
        v = p = jws(p + 1, e);
        if (!(p = jval_end(p, e)))
            return AD_EINVAL;
        if (jkey_is(k, ke, name, nl)) {
            *start = (size_t)(v - text);
            *end = (size_t)(p - text);
            return 0;
        }
        p = jws(p, e);
        if (p < e && *p == '}')
            return AD_ENOENT;
        if (p >= e || *p != ',')
            return AD_EINVAL;
        p = jws(p + 1, e);
    }
    return AD_EINVAL;
}

/* Line and column (1-based) of position p in text. */
static void line_col(const char *text, const char *p, size_t *line, size_t *col)
{
    *line = *col = 1;
    for (const char *q = text; q < p; q++) {
        if (*q == '\n') { (*line)++; *col = 1; } else (*col)++;
    }
}

struct cJSON *ad_json_parse_whole(const char *text, size_t len, const char *what,
                                  char *err, size_t errlen)
{
    const char *ep = NULL, *p;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &ep, 0);
    size_t line, col;

    if (!root) {
        if (!ep || ep < text || ep > text + len)
            ep = text;
        line_col(text, ep, &line, &col);
        ad_errf(err, errlen, AD_EFORMAT, "invalid JSON at line %zu column %zu", line, col);
        return NULL;
    }
    /* only white space (or NUL padding) may follow the value: a second
     * object or trailing text would otherwise be ignored without a word */
    for (p = ep ? ep : text + len; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0')
            break;
    if (p < text + len) {
        line_col(text, p, &line, &col);
        cJSON_Delete(root);
        ad_errf(err, errlen, AD_EFORMAT, "invalid JSON at line %zu column %zu: text after "
                "the end of the %s", line, col, what ? what : "JSON value");
        return NULL;
    }
    return root;
}
