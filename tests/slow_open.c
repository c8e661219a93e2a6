/*
 * slow_open.c - LD_PRELOAD shim for tests/it_daemon_reload_restoring.sh:
 * every open() of a path ending in SLOW_OPEN_SUFFIX made by a thread other
 * than the process's main thread (the daemon's loop) first sleeps
 * SLOW_OPEN_MS milliseconds (default 4000), then opens normally. So the
 * restore of a stream, which reads its state file on the libuv thread
 * pool, is still in flight for that long while the loop runs on (so is
 * the start-up scan of the state files, also on the thread pool; the
 * loop's own reads are not delayed). Each slow open appends "start <path>" before the sleep and
 * "end <path>" after it to the file SLOW_OPEN_LOG (if set), so the test
 * can see the restores really were in flight when it acted. Other opens
 * go through at once.
 *
 * Built by the test script itself (cc -shared -fPIC ... -ldl), not by the
 * Makefile.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*open_fn)(const char *, int, ...);

static void note(const char *what, const char *path)
{
    const char *log = getenv("SLOW_OPEN_LOG");
    FILE *f;
    if (!log || !(f = fopen(log, "a")))
        return;
    fprintf(f, "%s %s\n", what, path);
    fclose(f);
}

static void maybe_slow(const char *path)
{
    const char *suffix = getenv("SLOW_OPEN_SUFFIX");
    const char *ms = getenv("SLOW_OPEN_MS");
    size_t pl, sl;
    long d;
    struct timespec ts;
    int e = errno;

    if (!path || !suffix || (pid_t)syscall(SYS_gettid) == getpid() ||
        (pl = strlen(path)) < (sl = strlen(suffix)) || strcmp(path + pl - sl, suffix) != 0) {
        errno = e;
        return;
    }
    d = ms ? atol(ms) : 4000;
    ts.tv_sec = d / 1000;
    ts.tv_nsec = (d % 1000) * 1000000L;
    note("start", path);
    while (nanosleep(&ts, &ts) != 0)
        ;
    note("end", path);
    errno = e;
}

static int call_open(const char *name, const char *path, int flags, mode_t mode)
{
    open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    maybe_slow(path);
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return call_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return call_open("open64", path, flags, mode);
}
