/* test_state_corpus.c - the detector state fuzz target's seeds
 * (fuzz/corpus/detector_state) replayed through it without libFuzzer:
 * each restores or is refused with a message, a restored detector saves
 * and restores again and keeps scoring (the target aborts otherwise). A
 * seed that crashed a fuzzing run stays a test. */
#define _GNU_SOURCE     /* memmem */
#include <dirent.h>

#include "../fuzz/fuzz_detector_state.c"
#include "t.h"

static void test_state_corpus(void)
{
    const char *src = getenv("AD_SRCDIR");
    char dir[3100], path[3400];
    struct dirent *e;
    DIR *dp;
    int n = 0, reentry = 0, noise = 0, shadow = 0;

    snprintf(dir, sizeof dir, "%.3000s/fuzz/corpus/detector_state", src && *src ? src : ".");
    if ((dp = opendir(dir)) == NULL) {
        T_SKIP("no corpus at %.900s", dir);
        return;
    }
    while ((e = readdir(dp)) != NULL) {
        static uint8_t buf[1 << 22];
        size_t len;
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%.255s", dir, e->d_name);
        if ((f = fopen(path, "rb")) == NULL)
            continue;
        len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        reentry += memmem(buf, len, "\"reentry\"", 9) != NULL;
        noise += memmem(buf, len, "\"noise\"", 7) != NULL;
        shadow += memmem(buf, len, "\"shadow\":{", 10) != NULL;
        n++;
    }
    closedir(dp);
    T_CHECK(n >= 20 && reentry >= 5 && noise >= 3,
            "%d seeds replayed (%d with a re-entry run, %d with a noise state)", n, reentry,
            noise);
    /* a saved candidate in shadow: taken back with its model (its restored
     * detector saves it again: twice a seed), a damaged span refused */
    T_CHECK(shadow >= 4 && g_resumed >= 2, "%d seeds with a candidate in shadow, %d "
            "resumptions", shadow, g_resumed);
    T_NOTE("%d seeds, %d with a candidate in shadow (%d resumptions)", n, shadow, g_resumed);
}

int main(void)
{
    T_RUN(test_state_corpus);
    return t_done();
}
