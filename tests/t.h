/*
 * t.h - a tiny test harness. Each test binary runs its cases with T_RUN and
 * prints one line per case ("ok - name" / "not ok - name", or
 * "skip - name: reason" when the case called T_SKIP); tests/run.sh counts
 * them, skips separately (a skip is never a pass). Checks print what
 * failed and where, plus the figures compared, so a failure explains itself.
 *
 *   static void test_foo(void) { T_CHECK(x == 1, "x=%d", x); }
 *   static void test_bar(void) { if (!data) { T_SKIP("no data at %s", p); return; } }
 *   int main(void) { T_RUN(test_foo); T_RUN(test_bar); return t_done(); }
 *
 * T_CASES=part: only the cases whose name holds part run (the others print
 * nothing), to rerun one case of a long binary.
 */
#ifndef AD_T_H
#define AD_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int t_cur_failed;
static int t_n_failed;
static int t_n_passed;
static char t_skip_reason[1024];

#define T_CHECK(cond, ...) do {                                           \
        if (!(cond)) {                                                    \
            t_cur_failed++;                                               \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

/* Mark the current case skipped, with the reason (printf-style); the case
 * should return right after. A case that also failed a check is a failure. */
#define T_SKIP(...) snprintf(t_skip_reason, sizeof(t_skip_reason), __VA_ARGS__)

/* Print a note that goes with the case (what was measured). */
#define T_NOTE(...) do { printf("# "); printf(__VA_ARGS__); printf("\n"); } while (0)

static void t_run(const char *name, void (*fn)(void))
{
    const char *only = getenv("T_CASES");

    if (only && *only && !strstr(name, only))
        return;
    t_cur_failed = 0;
    t_skip_reason[0] = '\0';
    fn();
    if (!t_cur_failed && t_skip_reason[0]) {
        printf("skip - %s: %s\n", name, t_skip_reason);
    } else if (t_cur_failed) {
        t_n_failed++;
        printf("not ok - %s\n", name);
    } else {
        t_n_passed++;
        printf("ok - %s\n", name);
    }
    fflush(stdout);
}
#define T_RUN(fn) t_run(#fn, fn)

static int t_done(void)
{
    return t_n_failed ? 1 : 0;
}

#endif /* AD_T_H */
