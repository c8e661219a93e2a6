/* fuzz_quality.c - libFuzzer target for the data-quality state parser:
 * any input either restores (and then saves to text that restores again
 * to the same text, and the monitor keeps working on samples) or fails
 * with a message. Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "quality.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_dq_cfg c;
    ad_dq *q = NULL, *r = NULL;
    char err[512], *txt, *s1 = NULL, *s2 = NULL;
    int i;

    txt = malloc(size + 1);
    if (txt == NULL)
        return 0;
    memcpy(txt, data, size);
    txt[size] = '\0';
    ad_dq_cfg_default(&c);
    if (ad_dq_new(&q, &c, "fuzz", 3, NULL, NULL, NULL, NULL, err, sizeof err) != 0)
        abort();
    err[0] = '\0';
    if (ad_dq_restore(q, txt, err, sizeof err) == 0) {
        s1 = ad_dq_save(q);
        if (s1 == NULL || ad_dq_new(&r, &c, "fuzz", 3, NULL, NULL, NULL, NULL, err,
                                    sizeof err) != 0)
            abort();
        if (ad_dq_restore(r, s1, err, sizeof err) != 0)
            abort();
        s2 = ad_dq_save(r);
        if (s2 == NULL || strcmp(s1, s2) != 0)
            abort();
        /* restored limits drive the checks: they must not misbehave */
        for (i = 0; i < 200; i++) {
            ad_dq_sample(q, 1000LL * i, i % 3, (i % 7) * 1e6);
            ad_dq_rejected(q, i % 4 - 1, (uint64_t)i);
            ad_dq_advance(q, 1000LL * i + 500 + (i % 5) * 100000LL);
        }
    } else if (err[0] == '\0') {
        abort();
    }
    free(s1);
    free(s2);
    ad_dq_free(q);
    ad_dq_free(r);
    free(txt);
    return 0;
}
