/* cmd_run.c - `anomalyd run` and `anomalyd check` (placeholder until the
 * daemon lands). */
#include <stdio.h>
#include "cmd.h"

int ad_cmd_run(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "anomalyd run: the daemon is coming next; "
            "use 'anomalyd score' to check a model end to end\n");
    return 2;
}

int ad_cmd_check(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "anomalyd check: coming next with the daemon\n");
    return 2;
}
