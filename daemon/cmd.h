/*
 * cmd.h - the anomalyd subcommands. main.c parses the first argument and
 * calls one of these with the remaining arguments (argv[0] is the
 * subcommand name). Each returns the process exit status:
 * 0 success, 1 failure (bad input, check failed), 2 usage error.
 */
#ifndef AD_CMD_H
#define AD_CMD_H

int ad_cmd_run(int argc, char **argv);     /* cmd_run.c: the daemon */
int ad_cmd_check(int argc, char **argv);   /* cmd_run.c: validate config */
int ad_cmd_score(int argc, char **argv);   /* cmd_score.c */
int ad_cmd_train(int argc, char **argv);   /* cmd_train.c */
int ad_cmd_replay(int argc, char **argv);  /* cmd_replay.c */
int ad_cmd_info(int argc, char **argv);    /* cmd_score.c: describe a model */

/* Log sink for command-line tools and the daemon: stderr with syslog
 * priority prefixes ("<3>...") when stderr is not a terminal (journald keeps
 * levels), plain "error: ..." on a terminal. Messages above `max_level` are
 * dropped. Defined in log.c. */
void ad_cli_log_init(int max_level);
int ad_cli_log_level_parse(const char *s);  /* "err".."debug" or 3..7; -1 bad */
void ad_cli_log(int level, const char *msg, void *ud);

#endif
