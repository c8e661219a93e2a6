/*
 * fail_strdup.c - LD_PRELOAD shim for tests/it_daemon_restore_unbuilt.sh:
 * strdup() of a string equal to FAIL_STRDUP returns NULL with errno ENOMEM,
 * as it does when memory is out; every other strdup() goes through. The
 * daemon copies a stream's key with strdup() when it makes the stream's
 * detector (ad_detector_new), so FAIL_STRDUP=<stream key> makes exactly
 * that stream's detector fail to be made ("detector: out of memory"), the
 * one failure left once the settings passed gen_load. Each refusal
 * appends a line "refused <string>" to the file FAIL_STRDUP_LOG (if set),
 * so the test can see the failure really happened.
 *
 * Built by the test script itself (cc -shared -fPIC ... -ldl), not by the
 * Makefile.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char *(*strdup_fn)(const char *);

char *strdup(const char *s)
{
    static strdup_fn real;
    const char *fail = getenv("FAIL_STRDUP");
    const char *log = getenv("FAIL_STRDUP_LOG");

    if (fail && strcmp(s, fail) == 0) {
        FILE *f;
        if (log && (f = fopen(log, "a")) != NULL) {
            fprintf(f, "refused %s\n", s);
            fclose(f);
        }
        errno = ENOMEM;
        return NULL;
    }
    if (!real)
        real = (strdup_fn)dlsym(RTLD_NEXT, "strdup");
    if (!real) {
        errno = ENOMEM;
        return NULL;
    }
    return real(s);
}
