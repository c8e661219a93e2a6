/*
 * cmd_run.c - `anomalyd run` (the daemon) and `anomalyd check` (validate a
 * config and load its models, no network).
 *
 *   anomalyd run   -c FILE [--state-dir DIR] [--log-level LEVEL]
 *   anomalyd check -c FILE [--state-dir DIR] [--log-level LEVEL]
 */
#include <stdio.h>
#include <string.h>

#include "ad.h"
#include "args.h"
#include "cmd.h"
#include "daemon.h"

/* Parse the shared options; returns 0 to go on, else the exit status + 1. */
static int parse_opts(int argc, char **argv, const char *cmd, const char **config)
{
    const char *level = NULL, *state_dir = NULL;
    const ad_arg tab[] = {
        { "config", 'c', AD_ARG_STR, config, 0, 0, NULL, "FILE",
          "configuration file (JSON; see anomalyd.json(5))", 0, NULL },
        { "state-dir", 's', AD_ARG_STR, &state_dir, 0, 0, NULL, "DIR",
          "keep state in DIR instead of the config's state_dir (absolute path)", 0, NULL },
        { "log-level", 'l', AD_ARG_STR, &level, 0, 0, NULL, "LEVEL",
          "err|warning|notice|info|debug (default info)", 0, NULL },
        AD_ARG_END
    };
    int lvl, rc;

    *config = NULL;
    rc = ad_args_parse(cmd, tab, argc, argv, NULL, 0, NULL);
    if (rc == 1) {
        printf("usage: anomalyd %s -c FILE [--state-dir DIR] [--log-level LEVEL]\n\n", cmd);
        ad_args_help(stdout, tab);
        printf("\n%s", strcmp(cmd, "run") == 0 ?
               "Runs until SIGTERM/SIGINT. SIGHUP reloads the configuration and models\n"
               "(the running configuration stays if the new one is invalid).\n" :
               "Validates the configuration and loads every model without connecting.\n"
               "Exit status 0 when valid, 1 otherwise (the error names the JSON path).\n");
        return 1;
    }
    if (rc)
        return 3;
    if (level) {
        if ((lvl = ad_cli_log_level_parse(level)) < 0) {
            fprintf(stderr, "anomalyd %s: --log-level: expected err|warning|notice|info|"
                    "debug, got '%s'\n", cmd, level);
            return 3;
        }
        ad_cli_log_init(lvl);
    }
    if (state_dir) {
        if (state_dir[0] != '/') {
            fprintf(stderr, "anomalyd %s: --state-dir: expected an absolute path, got '%s'\n",
                    cmd, state_dir);
            return 3;
        }
        ad_daemon_set_state_dir(state_dir);
    }
    if (!*config) {
        fprintf(stderr, "anomalyd %s: -c FILE is required\n", cmd);
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
