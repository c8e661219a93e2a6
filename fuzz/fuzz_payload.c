/* fuzz_payload.c - libFuzzer target for the MQTT payload parsers (number,
 * JSON with dotted paths and timestamp, SenML). The first input byte picks
 * the format (bits 0-1), the SenML base name (bit 2) and, for JSON, whether
 * field paths are flat (bit 3), which enables the zero-allocation fast path;
 * the rest is the message. JSON is parsed differentially: the fast path
 * (ad_payload_parse) must give exactly what the cJSON path
 * (ad_payload_parse_ref) gives, refused values and their message included.
 * A refused value (payload.h REFUSED VALUES) is NaN with its reason; every
 * other sample is finite. Seeds: fuzz/corpus/payload. Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

#include "ad.h"
#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *feat[] = { "vibration", "current", "pressure", "temperature" };
    static char *keys[] = { "vibration", "pressure" };
    static char *vals[] = { "acc.rms", "p.0" };
    ad_payload_cfg c;
    ad_payload_parser *p = NULL;
    ad_sample s[8], r[8];
    char err[256], rerr[256];
    int n = 0, unk = 0, rn = 0, runk = 0, rc, rrc;

    if (size < 1)
        return 0;
    memset(&c, 0, sizeof c);
    c.format = data[0] % 3;
    c.feature_level = -1;
    if (!(data[0] & 8)) {          /* dotted paths: cJSON only */
        c.fields.key = keys;
        c.fields.val = vals;
        c.fields.n = 2;
    }
    c.timestamp = c.format == AD_FMT_JSON ? "ts" : NULL;
    c.timestamp_unit = AD_TS_MS;
    c.senml_base = (data[0] & 4) ? "urn:dev:" : NULL;
    if (ad_payload_parser_new(&p, &c, feat, 4, "fuzz", err, sizeof err))
        abort();
    rc = ad_payload_parse(p, "sensors/p1/current", data + 1, size - 1, 1e9, s, 8, &n, &unk,
                          err, sizeof err);
    if (rc == 0) {
        if (n < 1 || n > 8)
            abort();
        for (int i = 0; i < n; i++)
            if (s[i].feature < 0 || s[i].feature >= 4 ||
                (s[i].refused == 0 ? !isfinite(s[i].value) :
                 (s[i].refused != AD_SAMPLE_NONFINITE && s[i].refused != AD_SAMPLE_NONNUMERIC) ||
                 !isnan(s[i].value) || strstr(err, "refused") == NULL))
                abort();
    } else if (n != 0 || err[0] == '\0') {
        abort();
    }
    if (c.format == AD_FMT_JSON) {
        rrc = ad_payload_parse_ref(p, "sensors/p1/current", data + 1, size - 1, 1e9, r, 8,
                                   &rn, &runk, rerr, sizeof rerr);
        if (rrc != rc || rn != n || runk != unk)
            abort();
        for (int i = 0; i < n; i++)
            if (r[i].feature != s[i].feature || r[i].refused != s[i].refused ||
                memcmp(&r[i].value, &s[i].value, sizeof(double)) != 0 ||
                !(r[i].time == s[i].time || (isnan(r[i].time) && isnan(s[i].time))))
                abort();
        if (strcmp(err, rerr) != 0)
            abort();
    }
    ad_payload_parser_free(p);
    return 0;
}
