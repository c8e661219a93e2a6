/* fuzz_config.c - libFuzzer target for the config parser and validator:
 * any input either parses into a config that passes the reload comparison
 * with itself, or fails with a message. Seeds: fuzz/corpus/config. Build:
 * make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

#include "ad.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_config *c = NULL;
    char err[512];
    char *doc;

    err[0] = '\0';
    if (ad_config_parse(&c, (const char *)data, size, "/fuzz/anomalyd.json", err,
                        sizeof err) == 0) {
        if (ad_config_reload_ok(c, c, err, sizeof err) != 0)
            abort();
        for (int i = 0; i < c->n_det; i++)
            if (!ad_detconf_same_pipeline(&c->det[i], &c->det[i]))
                abort();
        ad_config_free(c);
    } else if (c != NULL || err[0] == '\0') {
        abort();
    }
    if (size == 0) {
        doc = ad_config_doc();
        free(doc);
    }
    return 0;
}
