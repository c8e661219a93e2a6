/*
 * config_int.h - private to the config module (config.c, config_keys.c):
 * the shape of a key table and the tables the parser needs by name.
 *
 * config_keys.c owns the tables (one per JSON object: every key with its
 * type, offset in the C struct, range, default, flags and documentation)
 * and the documentation generated from them. config.c owns the engine that
 * walks them: parsing, defaults, path resolution, validation, freeing and
 * the reload comparison. Nothing outside daemon/config*.c includes this.
 */
#ifndef AD_CONFIG_INT_H
#define AD_CONFIG_INT_H

#include <stddef.h>
#include "config.h"

/* K_STRMAP: ad_strmap, an object of strings; K_RANGES: ad_rangemap, an
 * object of [min, max] pairs (a number or null each; quality.ranges). */
typedef enum {
    K_STR, K_PATH, K_INT, K_I64, K_NUM, K_BOOL, K_ENUM, K_CBUF,
    K_STRLIST, K_INTLIST, K_STRMAP, K_RANGES, K_OBJ
} ktype;

#define F_REQ    1u   /* must be present */
#define F_RELOAD 2u   /* a SIGHUP reload may change it */
#define F_PIPE   4u   /* shapes a stream's windows/thresholds */
#define F_LIB    8u   /* default: ad_detector_cfg_default() (lib/detector.c),
                         the one source of pipeline defaults */

struct table;
typedef struct key {
    const char *name;
    ktype type;
    size_t off;
    double min, max;
    const char *def;         /* default in JSON-ish text; NULL: none/null
                                (F_LIB keys: NULL, the library's default) */
    unsigned flags;
    const char *enums;       /* K_ENUM: "a|b|c", stored as index */
    const struct table *sub; /* K_OBJ: keys relative to the same base */
    const char *doc;
} key;

typedef struct table {
    const key *keys;
    int n;
} table;

/* The tables config.c looks up by name (config_keys.c). The root table
 * lists every top-level key except "detectors", an array of objects that
 * ad_config_parse() walks against cfg_detector_table. */
extern const table cfg_root_table;
extern const table cfg_detector_table;
extern const table cfg_broker_table;

/* Settings a detector may give two ways: a window count, or data time that
 * each stream turns into one (lib/adapt.h DATA TIME). The count has a
 * library default, so the library cannot tell it set from left at its
 * default: the parser refuses both keys of a pair in one object (the data
 * time > 0; 0 is unset). config_keys.c owns the list. */
typedef struct cfg_alt {
    const char *obj, *count, *ms;
} cfg_alt;
extern const cfg_alt cfg_detector_alts[];
extern const int cfg_detector_n_alts;

/* "path.name", or "name" at the root, into out (config.c). */
void cfg_join_path(char *out, size_t len, const char *path, const char *name);

#endif
