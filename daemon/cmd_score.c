/* cmd_score.c - `anomalyd score` and `anomalyd info` (placeholder). */
#include <stdio.h>
#include "cmd.h"

int ad_cmd_score(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "anomalyd score: coming next\n");
    return 2;
}

int ad_cmd_info(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "anomalyd info: coming next\n");
    return 2;
}
