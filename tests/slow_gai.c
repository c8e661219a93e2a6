/*
 * slow_gai.c - LD_PRELOAD shim for tests/it_daemon_dns.sh: getaddrinfo() of
 * the host name in SLOW_GAI_HOST (default "localhost") first sleeps
 * SLOW_GAI_MS milliseconds (default 3000), then resolves normally. Each slow
 * lookup appends "start" before the sleep and "end" after it to the file
 * SLOW_GAI_LOG (if set), so the test can see the lookup really was slow and
 * still running when it acted. Other names resolve at once.
 *
 * Built by the test script itself (cc -shared -fPIC ... -ldl), not by the
 * Makefile.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
                      struct addrinfo **);

static void note(const char *what)
{
    const char *path = getenv("SLOW_GAI_LOG");
    FILE *f;
    if (!path || !(f = fopen(path, "a")))
        return;
    fprintf(f, "%s\n", what);
    fclose(f);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static gai_fn real;
    const char *host = getenv("SLOW_GAI_HOST");
    const char *ms = getenv("SLOW_GAI_MS");

    if (!real)
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (!real)
        return EAI_SYSTEM;
    if (node && strcmp(node, host ? host : "localhost") == 0) {
        long d = ms ? atol(ms) : 3000;
        struct timespec ts = { d / 1000, (d % 1000) * 1000000L };
        note("start");
        while (nanosleep(&ts, &ts) != 0)
            ;
        note("end");
    }
    return real(node, service, hints, res);
}
