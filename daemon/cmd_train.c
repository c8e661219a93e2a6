/* cmd_train.c - `anomalyd train` (placeholder until the trainer lands). */
#include <stdio.h>
#include "cmd.h"

int ad_cmd_train(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "anomalyd train: coming next\n");
    return 2;
}
