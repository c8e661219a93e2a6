/* fuzz_state_record.c - libFuzzer target for the scan of a state topic
 * record (ad_json_member_span, as the Kafka state topic read uses it: the
 * "state" member cut out of its record, the rest parsed with a 0 in its
 * place). Checked against cJSON on the same bytes: whenever cJSON parses
 * the record as an object, the scan finds its first top-level "state"
 * member (or reports none), the span parses to that member (printed
 * alike), and the rest parses to the record with 0 as its state. A record
 * cJSON refuses may still give a span (what lies inside the state is not
 * checked): its rest, when it parses, is a header and the state text is
 * left to its restore, which refuses it. Seeds: fuzz/corpus/state_record.
 * Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include "ad.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The record with its span replaced by "0" (daemon/kafka.c state_header). */
static cJSON *rest_of(const char *t, size_t len, size_t a, size_t b)
{
    char *rest = malloc(len - (b - a) + 1);
    cJSON *o;
    if (rest == NULL)
        abort();
    memcpy(rest, t, a);
    rest[a] = '0';
    memcpy(rest + a + 1, t + b, len - b);
    o = cJSON_ParseWithLength(rest, len - (b - a) + 1);
    free(rest);
    return o;
}

/* The same text printed: not cJSON_Compare, which takes the first of
 * duplicate keys for both sides, so that an object with two members of
 * one name never equals itself. */
static int same(const cJSON *x, const cJSON *y)
{
    char *px = cJSON_PrintUnformatted(x), *py = cJSON_PrintUnformatted(y);
    int eq;
    if (px == NULL || py == NULL)
        abort();
    eq = strcmp(px, py) == 0;
    cJSON_free(px);
    cJSON_free(py);
    return eq;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    size_t a = 0, b = 0;
    int rc = ad_json_member_span(t, size, "state", &a, &b);
    cJSON *w, *ws, *s, *r;

    if (rc != 0 && rc != AD_ENOENT && rc != AD_EINVAL)
        abort();
    if (rc == 0 && !(a < b && b <= size))
        abort();
    w = cJSON_ParseWithLength(t, size);
    if (w == NULL) {
        if (rc == 0)
            cJSON_Delete(rest_of(t, size, a, b));   /* the reader's header */
        return 0;
    }
    if (!cJSON_IsObject(w)) {
        if (rc != AD_EINVAL)
            abort();
        cJSON_Delete(w);
        return 0;
    }
    ws = cJSON_GetObjectItemCaseSensitive(w, "state");
    if (ws == NULL) {
        if (rc != AD_ENOENT)
            abort();
        cJSON_Delete(w);
        return 0;
    }
    if (rc != 0)
        abort();
    s = cJSON_ParseWithLength(t + a, b - a);
    if (s == NULL || !same(s, ws))
        abort();
    r = rest_of(t, size, a, b);
    if (r == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(w, "state", cJSON_CreateNumber(0)) ||
        !same(r, w))
        abort();
    cJSON_Delete(s);
    cJSON_Delete(r);
    cJSON_Delete(w);
    return 0;
}
