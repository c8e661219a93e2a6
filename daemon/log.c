/*
 * log.c - the log sink shared by the daemon and the command-line tools.
 * Writes to stderr, one line per message. Under systemd (stderr not a
 * terminal) each line starts with "<N>", the syslog priority, which journald
 * turns into the entry's level.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <unistd.h>

#include "ad.h"
#include "cmd.h"

static int max_level = AD_LOG_INFO;
static int use_prefix;

void ad_cli_log(int level, const char *msg, void *ud)
{
    static const char *names[8] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
    };
    (void)ud;
    if (level > max_level)
        return;
    if (level < 0 || level > 7)
        level = AD_LOG_ERR;
    if (use_prefix)
        fprintf(stderr, "<%d>%s\n", level, msg);
    else
        fprintf(stderr, "anomalyd: %s: %s\n", names[level], msg);
}

void ad_cli_log_init(int level)
{
    max_level = level;
    use_prefix = !isatty(STDERR_FILENO);
    ad_log_set(ad_cli_log, NULL);
}

int ad_cli_log_level_parse(const char *s)
{
    static const char *names[] = { "err", "warning", "notice", "info", "debug" };
    char *end;
    long v;

    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i + 3;
    if (strcasecmp(s, "error") == 0)
        return AD_LOG_ERR;
    if (strcasecmp(s, "warn") == 0)
        return AD_LOG_WARNING;
    v = strtol(s, &end, 10);
    if (*s != '\0' && *end == '\0' && v >= 0 && v <= 7)
        return (int)v;
    return -1;
}
