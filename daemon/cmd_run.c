/*
 * cmd_run.c - `anomalyd run` (the daemon) and `anomalyd check` (validate a
 * config and load its models, no network).
 *
 *   anomalyd run   -c FILE [--log-level LEVEL]
 *   anomalyd check -c FILE [--log-level LEVEL]
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ad.h"
#include "cmd.h"
#include "daemon.h"

static void usage(FILE *f, const char *cmd)
{
    fprintf(f,
        "usage: anomalyd %s -c FILE [--log-level LEVEL]\n"
        "\n"
        "  -c, --config FILE     configuration file (JSON; see anomalyd.json(5))\n"
        "  -l, --log-level LEVEL err|warning|notice|info|debug (default info)\n"
        "  -h, --help            this text\n"
        "\n", cmd);
    if (strcmp(cmd, "run") == 0)
        fprintf(f,
            "Runs until SIGTERM/SIGINT. SIGHUP reloads the configuration and models\n"
            "(the running configuration stays if the new one is invalid).\n");
    else
        fprintf(f,
            "Validates the configuration and loads every model without connecting.\n"
            "Exit status 0 when valid, 1 otherwise (the error names the JSON path).\n");
}

/* Parse the shared options; returns 0 to go on, else the exit status + 1. */
static int parse_opts(int argc, char **argv, const char *cmd, const char **config)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, lvl;

    *config = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *config = optarg;
            break;
        case 'l':
            if ((lvl = ad_cli_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "anomalyd %s: bad --log-level '%s' (err|warning|notice|"
                        "info|debug)\n", cmd, optarg);
                return 3;
            }
            ad_cli_log_init(lvl);
            break;
        case 'h':
            usage(stdout, cmd);
            return 1;
        default:
            usage(stderr, cmd);
            return 3;
        }
    }
    if (optind < argc || !*config) {
        if (optind < argc)
            fprintf(stderr, "anomalyd %s: unexpected argument '%s'\n", cmd, argv[optind]);
        else
            fprintf(stderr, "anomalyd %s: -c FILE is required\n", cmd);
        usage(stderr, cmd);
        return 3;
    }
    return 0;
}

int ad_cmd_run(int argc, char **argv)
{
    const char *config;
    int r = parse_opts(argc, argv, "run", &config);
    if (r)
        return r - 1;
    return ad_daemon_run(config);
}

int ad_cmd_check(int argc, char **argv)
{
    const char *config;
    char err[1024], out[4096];
    int r = parse_opts(argc, argv, "check", &config);
    if (r)
        return r - 1;
    if (ad_daemon_check(config, out, sizeof out, err, sizeof err) != 0) {
        ad_log(AD_LOG_ERR, "%s", err);
        return 1;
    }
    printf("%s: OK\n%s", config, out);
    return 0;
}
