/*
 * clock_step.c - LD_PRELOAD shim for tests/it_daemon_clock_step.sh: the
 * wall clock (CLOCK_REALTIME, gettimeofday, time) of the process is moved
 * by the number of milliseconds written in the file CLOCK_STEP_FILE (read
 * again at most every 50 ms of monotonic time; none, empty: 0), as an NTP
 * step or an operator's `date -s` would move it. The monotonic clocks are
 * left alone. While it is moved, ntp_adjtime says the clock is not
 * synchronized (as the kernel does after a `date -s`), whatever the
 * host's is; with CLOCK_SYNCED=1 it says it is (an NTP client set it). Built by the test script itself (cc -shared -fPIC ...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>

typedef int (*cg_fn)(clockid_t, struct timespec *);

static cg_fn real_cg(void)
{
    static cg_fn f;
    if (!f)
        f = (cg_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return f;
}

static long long offset_ms(void)
{
    static long long off, next_check;
    struct timespec m;
    long long now;
    const char *path = getenv("CLOCK_STEP_FILE");
    FILE *f;

    if (!path)
        return 0;
    real_cg()(CLOCK_MONOTONIC, &m);
    now = (long long)m.tv_sec * 1000 + m.tv_nsec / 1000000;
    if (now < next_check)
        return off;
    next_check = now + 50;
    if ((f = fopen(path, "r")) != NULL) {
        long long v;
        if (fscanf(f, "%lld", &v) == 1)
            off = v;
        fclose(f);
    }
    return off;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_cg()(id, ts);

    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec +
                       offset_ms() * 1000000LL;
        ts->tv_sec = (time_t)(ns / 1000000000LL);
        ts->tv_nsec = (long)(ns % 1000000000LL);
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t)
        *t = ts.tv_sec;
    return ts.tv_sec;
}

typedef int (*na_fn)(struct timex *);

int ntp_adjtime(struct timex *tx)
{
    static na_fn f;
    int rc;

    if (!f)
        f = (na_fn)dlsym(RTLD_NEXT, "ntp_adjtime");
    rc = f ? f(tx) : -1;
    if (rc != -1 && getenv("CLOCK_SYNCED") && getenv("CLOCK_SYNCED")[0] == '1') {
        tx->status &= ~STA_UNSYNC;
        rc = TIME_OK;
    } else if (rc != -1 && offset_ms() != 0) {
        tx->status |= STA_UNSYNC;
        rc = TIME_ERROR;
    }
    return rc;
}
