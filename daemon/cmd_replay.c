/* cmd_replay.c - `anomalyd replay` (placeholder until the pipeline lands). */
#include <stdio.h>
#include "cmd.h"

int ad_cmd_replay(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "anomalyd replay: coming next\n");
    return 2;
}
