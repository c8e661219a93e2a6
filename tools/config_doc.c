/*
 * config_doc.c - print the daemon's config key table
 * (daemon/config_keys.c) as markdown table rows:
 * | `path` | type | default | range | reload | doc |.
 * tools/gen_man.py turns them into the KEYS section of
 * docs/man/anomalyd.json.5, and tests/it_install.sh checks that the man page
 * documents every row, so the page cannot drift from the parser.
 *
 *   build/tools/config_doc > keys.md
 */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

int main(void)
{
    char *doc = ad_config_doc();

    if (!doc) {
        fprintf(stderr, "config_doc: out of memory\n");
        return 1;
    }
    fputs(doc, stdout);
    free(doc);
    return ferror(stdout) ? 1 : 0;
}
