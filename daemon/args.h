/*
 * args.h - the command-line parser of every anomalyd command: one table of
 * options per command (name, short letter, type, destination, range, help
 * line), parsed the same way everywhere and printed as the command's --help.
 *
 *   static const ad_arg opts[] = {
 *       AD_ARG_GROUP("input/output"),
 *       { "model", 'm', AD_ARG_STR, &o.model, 0, 0, NULL, "FILE", "model file" },
 *       { "hop", 0, AD_ARG_INT, &cfg.hop, 1, 1e6, NULL, "N", "rows between windows" },
 *       AD_ARG_END
 *   };
 *   rc = ad_args_parse("replay", opts, argc, argv, NULL, 0, &npos);
 *
 * Accepted forms: --name VALUE, --name=VALUE, -x VALUE, -xVALUE, "--" ends
 * the options. Values are checked against the type and range; a bad one is
 * an error naming the command, the option and the value, e.g.
 *   anomalyd replay: --hop: expected an integer 1..1000000, got 'x'
 * Help: ad_args_help() prints the table, each line with "(default X)" taken
 * from the destination's value before parsing when the entry asks for it
 * (AD_ARG_DEF), so the help shows the defaults the code really uses.
 */
#ifndef AD_ARGS_H
#define AD_ARGS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    AD_ARG_END_ = 0,  /* end of table (AD_ARG_END) */
    AD_ARG_GROUP_,    /* heading line (AD_ARG_GROUP) */
    AD_ARG_FLAG,      /* int *: set to 1 */
    AD_ARG_STR,       /* const char **: the argument itself (borrowed) */
    AD_ARG_INT,       /* int *, integer in [min, max] */
    AD_ARG_LONG,      /* long *, integer in [min, max] */
    AD_ARG_U64,       /* uint64_t *, non-negative integer */
    AD_ARG_NUM,       /* double *, finite number in [min, max] */
    AD_ARG_FLOAT,     /* float *, finite number in [min, max] */
    AD_ARG_SECONDS,   /* int64_t * in ms: seconds in [min, max] given */
    AD_ARG_CHOICE,    /* int * (or an enum): index of the value in "a|b|c" */
    AD_ARG_SEP,       /* char *: one character, or "tab" / "\t" */
    AD_ARG_CBUF       /* char[max]: a string of 1..max-1 characters */
} ad_arg_type;

#define AD_ARG_DEF 1u        /* help shows "(default X)" from *dst */

typedef struct ad_arg {
    const char *name;        /* long name without "--" */
    char short_name;         /* 0: none */
    ad_arg_type type;
    void *dst;
    double min, max;         /* INT/LONG/NUM/FLOAT/SECONDS range; CBUF size */
    const char *choices;     /* CHOICE: "a|b|c" */
    const char *meta;        /* argument word in the help ("N", "FILE") */
    const char *help;        /* description; '\n' starts a continuation line */
    unsigned flags;          /* AD_ARG_DEF */
    int *seen;               /* optional: set to 1 when the option is given */
} ad_arg;

#define AD_ARG_GROUP(title) { NULL, 0, AD_ARG_GROUP_, NULL, 0, 0, NULL, NULL, title, 0, NULL }
#define AD_ARG_END { NULL, 0, AD_ARG_END_, NULL, 0, 0, NULL, NULL, NULL, 0, NULL }

/*
 * Parse argv[1..argc-1] (argv[0] is the command name) against tab. Operands
 * (non-options) go to pos (at most max_pos; more is an error), their count
 * to *npos (may be NULL when max_pos is 0). "-h"/"--help" sets the return
 * to 1 without printing. Returns 0 (parsed), 1 (help asked), or 2 (usage
 * error, message printed on stderr as "anomalyd CMD: ...").
 */
int ad_args_parse(const char *cmd, const ad_arg *tab, int argc, char **argv,
                  const char **pos, int max_pos, int *npos);

/* Print the option table as help text (one "  -x, --name META  help" line
 * per option, headings for groups, "-h, --help" last). */
void ad_args_help(FILE *f, const ad_arg *tab);

/* Split "a,b,c" into a NULL-terminated malloc'd array of malloc'd strings
 * (*n of them); NULL on OOM or an empty item (message in err). */
char **ad_args_split(const char *s, int *n, char *err, size_t errlen);
void ad_args_split_free(char **v);

#endif
