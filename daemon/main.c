/*
 * main.c - the anomalyd command line: dispatches to the subcommands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "ad.h"
#include "cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: anomalyd COMMAND [OPTIONS]\n"
        "\n"
        "commands:\n"
        "  run    -c FILE             run the daemon (MQTT in, alerts out)\n"
        "  check  -c FILE             validate a config and load its models\n"
        "  score  --model F --input CSV   reconstruction error of every window\n"
        "  train  --input CSV --output F  train a model in C\n"
        "  replay --model F --input CSV   push a CSV through the live pipeline\n"
        "  replay -c FILE --input CSV     ... the pipeline 'run -c FILE' builds\n"
        "  info   --model F           describe a model file\n"
        "  version                    print the version\n"
        "\n"
        "'anomalyd COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("anomalyd %s\n", AD_VERSION);
        return 0;
    }
    ad_cli_log_init(AD_LOG_INFO);
    /* Products here are small: OpenBLAS's own threading makes them slower.
     * One thread per BLAS call; the daemon scales with its own workers. */
    if (getenv("OPENBLAS_NUM_THREADS") == NULL)
        openblas_set_num_threads(1);
    if (strcmp(cmd, "run") == 0)
        return ad_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return ad_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "score") == 0)
        return ad_cmd_score(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0)
        return ad_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return ad_cmd_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return ad_cmd_info(argc - 1, argv + 1);
    fprintf(stderr, "anomalyd: unknown command '%s'%s\n", cmd,
            cmd[0] == '-' ? " (options follow a command: anomalyd run -c FILE runs the daemon)"
                          : "");
    usage(stderr);
    return 2;
}
