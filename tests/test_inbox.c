/* test_inbox.c - the reader of state_dir/inbox.dat records (the messages
 * received during a stop, applied by the next start): records read as
 * written, binary payloads and empty ones; damaged records refused with
 * the position left at them; nothing read outside the bytes given (each
 * case is a copy of exactly its bytes, no NUL after them: under ASan an
 * over-read is an error). */
#include <stdlib.h>
#include <string.h>
#include "t.h"
#include "daemon_int.h"

/* state_inbox_next on an exact-size copy of s (len bytes): its result; the
 * first record's topic, payload length and the position after it. */
static int next(const char *s, size_t len, char *topic, size_t tcap, size_t *plen,
                size_t *pos)
{
    char *buf = malloc(len ? len : 1), *t = NULL;
    const char *p;
    int rc;
    memcpy(buf, s, len);
    *pos = 0;
    rc = state_inbox_next(buf, len, pos, &t, &p, plen);
    if (rc == 1) {
        snprintf(topic, tcap, "%s", t);
        free(t);
    }
    free(buf);
    return rc;
}

static void test_records(void)
{
    static const char two[] = "7 2\nplant/a{}\n1 0\nx\n";
    char b[] = "4 3\nt/xy\0\n\0\n";    /* payload bytes with NUL and newline */
    char topic[64];
    size_t plen, pos;
    char *t;
    const char *p;

    T_CHECK(next(two, sizeof two - 1, topic, sizeof topic, &plen, &pos) == 1 &&
            strcmp(topic, "plant/a") == 0 && plen == 2 && pos == 14,
            "first record: topic %s payload %zu next at %zu", topic, plen, pos);
    pos = 14;
    T_CHECK(state_inbox_next(two, sizeof two - 1, &pos, &t, &p, &plen) == 1 && plen == 0 &&
            pos == sizeof two - 1, "second record: empty payload, at the end (%zu)", pos);
    if (pos == sizeof two - 1)
        free(t);
    T_CHECK(state_inbox_next(two, sizeof two - 1, &pos, &t, &p, &plen) == 0, "then the end");
    T_CHECK(next(b, sizeof b - 1, topic, sizeof topic, &plen, &pos) == 1 && plen == 3 &&
            pos == sizeof b - 1, "binary payload: %zu bytes, next at %zu", plen, pos);
}

static void test_damaged(void)
{
    static const char *bad[] = {
        "\n1",                  /* an empty line: strtoull read on past the bytes */
        "\n7 2\nplant/a{}\n",   /* an empty line before a record */
        " 7 2\nplant/a{}\n",    /* a leading space */
        "+7 2\nplant/a{}\n",    /* a sign */
        "7 -2\nplant/a{}\n",
        "7 2 \nplant/a{}\n",
        "7  2\nplant/a{}\n",
        "72\nplant/a{}\n",
        "0 2\n{}\n",            /* no topic */
        "7 2\npla\0t/a{}\n",    /* a NUL in the topic */
        "7 2\nplant/a{}",       /* no newline after the payload */
        "7 3\nplant/a{}\n",     /* sizes that do not fit */
        "7 99999\nplant/a{}\n",
        "99999999999999999999 1\nx",
        "5",
        "5 3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]), plen, pos;
        char topic[64];
        if (i == 9)
            len = 14;
        T_CHECK(next(bad[i], len, topic, sizeof topic, &plen, &pos) == -1 && pos == 0,
                "case %zu refused, position kept (%zu)", i, pos);
    }
}

int main(void)
{
    T_RUN(test_records);
    T_RUN(test_damaged);
    return t_done();
}
