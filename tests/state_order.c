/*
 * state_order.c - LD_PRELOAD shim for tests/it_daemon_adapt_cand_order.sh:
 * checks, at the moment each happens, that a kill -9 could never leave a
 * stream's state file naming a fine-tune's candidate whose file is gone.
 *  - rename(tmp, X.state.json) (a state put in place, ad_write_file_atomic):
 *    when the new state names a candidate in shadow ("shadow":{"model_id"),
 *    a candidate file of the stream (X.*.candidate.safetensors) must be
 *    there;
 *  - unlink(X.<..>.candidate.safetensors): the state on disk
 *    (X.state.json) must not name a candidate in shadow.
 * Each check appends a line to the file ORDER_LOG: "ok rename PATH",
 * "ok unlink PATH", or "BAD ..." saying which rule broke. With
 * ORDER_CAND_DELAY_MS, the rename that puts a candidate's file in place
 * waits that long first (a slow disk: widens the time a state could be
 * written ahead of it); with ORDER_CAND_DELAY_FIRST too, only the first
 * one does (one save slow, the next one not: tests/it_daemon_adapt_cand_twice.sh);
 * each candidate file put in place adds "put PATH" ("put held PATH" when
 * its rename was held). While the file
 * ORDER_CAND_FAIL names is there, that rename fails (EIO: a disk error). The stream key is the file name up to its first
 * dot (the test's keys have none). Built by the test script itself.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int ends(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static void note(const char *fmt, const char *a, const char *b)
{
    const char *p = getenv("ORDER_LOG");
    FILE *f;

    if (!p || !(f = fopen(p, "a")))
        return;
    fprintf(f, fmt, a, b);
    fputc('\n', f);
    fclose(f);
}

/* the file at path names a candidate in shadow */
static int names_cand(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;
    int r = 0;

    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    if (n > 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            r = strstr(buf, "\"shadow\":{\"model_id\"") != NULL;
        }
        free(buf);
    }
    fclose(f);
    return r;
}

/* dir and the stream's stem (the name up to its first dot) of path */
static void split(const char *path, char *dir, size_t dl, char *stem, size_t sl)
{
    const char *b = strrchr(path, '/');
    size_t n;

    b = b ? b + 1 : path;
    n = (size_t)(b - path);
    snprintf(dir, dl, "%.*s", (int)(n ? n - 1 : 1), n ? path : ".");
    n = strcspn(b, ".");
    snprintf(stem, sl, "%.*s", (int)n, b);
}

/* a candidate file of stem in dir */
static int cand_there(const char *dir, const char *stem)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = strlen(stem);
    int r = 0;

    if (!d)
        return 0;
    while (!r && (e = readdir(d)) != NULL)
        r = strncmp(e->d_name, stem, n) == 0 && e->d_name[n] == '.' &&
            ends(e->d_name, ".candidate.safetensors");
    closedir(d);
    return r;
}

int rename(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    char dir[4096], stem[1024];
    int rc, held = 0;

    if (!real)
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (ends(to, ".candidate.safetensors") && getenv("ORDER_CAND_DELAY_MS")) {
        static int n_cand;
        long ms = atol(getenv("ORDER_CAND_DELAY_MS"));
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        pthread_mutex_lock(&mu);
        held = n_cand++ == 0 || !getenv("ORDER_CAND_DELAY_FIRST");
        pthread_mutex_unlock(&mu);
        if (held)
            nanosleep(&ts, NULL);
    }
    if (ends(to, ".candidate.safetensors") && getenv("ORDER_CAND_FAIL") &&
        access(getenv("ORDER_CAND_FAIL"), F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    if (ends(to, ".candidate.safetensors")) {
        rc = real(from, to);
        if (rc == 0) {
            pthread_mutex_lock(&mu);
            note("put%s %s", held ? " held" : "", to);
            pthread_mutex_unlock(&mu);
        }
        return rc;
    }
    if (!ends(to, ".state.json"))
        return real(from, to);
    pthread_mutex_lock(&mu);
    split(to, dir, sizeof dir, stem, sizeof stem);
    if (names_cand(from) && !cand_there(dir, stem))
        note("BAD rename %s: names a candidate in shadow, no candidate file%s", to, "");
    else
        note("ok rename %s%s", to, "");
    rc = real(from, to);
    pthread_mutex_unlock(&mu);
    return rc;
}

int unlink(const char *path)
{
    static int (*real)(const char *);
    char dir[4096], stem[1024], st[8192];
    int rc;

    if (!real)
        real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    if (!ends(path, ".candidate.safetensors"))
        return real(path);
    pthread_mutex_lock(&mu);
    split(path, dir, sizeof dir, stem, sizeof stem);
    snprintf(st, sizeof st, "%s/%s.state.json", dir, stem);
    if (names_cand(st))
        note("BAD unlink %s: the state on disk (%s) names a candidate in shadow", path, st);
    else
        note("ok unlink %s%s", path, "");
    rc = real(path);
    pthread_mutex_unlock(&mu);
    return rc;
}
