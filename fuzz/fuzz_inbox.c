/* fuzz_inbox.c - libFuzzer target for the reader of state_dir/inbox.dat
 * (the messages received during a stop, applied by the next start). The
 * input is the file after its header line, not NUL-terminated: every
 * record read lies inside it, its topic is not empty and holds no NUL,
 * the position only moves forward, and a malformed record leaves it where
 * it was. The records read, written again as the daemon writes them, read
 * back the same. Build: make fuzz. */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data, *payload;
    char *topic, *out = malloc(size * 2 + 64), *o = out;
    size_t pos = 0, len, before, n = 0, opos = 0;
    int rc;

    if (!out)
        return 0;
    for (;;) {
        before = pos;
        rc = state_inbox_next(buf, size, &pos, &topic, &payload, &len);
        if (rc <= 0) {
            if (pos != before || (rc == 0 && pos < size))
                abort();
            break;
        }
        if (pos <= before || pos > size || payload < buf || payload + len > buf + pos ||
            !topic[0] || strlen(topic) > pos - before)
            abort();
        o += sprintf(o, "%zu %zu\n", strlen(topic), len);
        memcpy(o, topic, strlen(topic));
        o += strlen(topic);
        memcpy(o, payload, len);
        o += len;
        *o++ = '\n';
        free(topic);
        n++;
    }
    /* written again: the same records */
    pos = 0;
    while (n--) {
        const char *p2;
        char *t2;
        size_t l2;
        if (state_inbox_next(buf, size, &pos, &topic, &payload, &len) != 1 ||
            state_inbox_next(out, (size_t)(o - out), &opos, &t2, &p2, &l2) != 1 ||
            strcmp(topic, t2) != 0 || l2 != len || memcmp(payload, p2, len) != 0)
            abort();
        free(topic);
        free(t2);
    }
    if (state_inbox_next(out, (size_t)(o - out), &opos, &topic, &payload, &len) != 0)
        abort();
    free(out);
    return 0;
}
