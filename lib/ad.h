/*
 * ad.h - common definitions of libanomalyd: version, error codes, logging.
 *
 * Every fallible function of the library returns 0 on success or a negative
 * error code (libuv's -errno convention); ad_strerror() turns a code into
 * text. Functions that parse user input (model files, CSV, config, payloads)
 * also take a caller-owned message buffer `err`/`errlen` and write there a
 * one-line message naming *what* was wrong and *where* (file, tensor, JSON
 * path, row/column). The buffer may be NULL.
 *
 * The library never prints and never exits: it logs through a callback the
 * caller installs with ad_log_set() (default: none, messages are dropped).
 */
#ifndef AD_H
#define AD_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

#define AD_VERSION "0.1.0"

/* Error codes: negative errno values plus a few of our own below -1000. */
#define AD_OK        0
#define AD_ENOENT   (-2)     /* no such file */
#define AD_EIO      (-5)     /* read/write failed */
#define AD_ENOMEM   (-12)    /* out of memory */
#define AD_EINVAL   (-22)    /* invalid argument (programmer or CLI) */
#define AD_ERANGE   (-34)    /* value out of range */
#define AD_EFORMAT  (-1001)  /* malformed file or payload */
#define AD_ESHAPE   (-1002)  /* tensor shape does not match architecture */
#define AD_EARCH    (-1003)  /* unsupported or inconsistent architecture */
#define AD_ENONFINITE (-1004) /* NaN or Inf where a finite number is needed */

const char *ad_strerror(int err);

/* Syslog priorities, so a daemon can map them 1:1 to "<N>" prefixes. */
enum {
    AD_LOG_ERR = 3,
    AD_LOG_WARNING = 4,
    AD_LOG_NOTICE = 5,
    AD_LOG_INFO = 6,
    AD_LOG_DEBUG = 7
};

/* Log sink: `msg` is valid only during the call. */
typedef void (*ad_log_fn)(int level, const char *msg, void *userdata);

/* Install the log sink (NULL to drop messages). Not thread-safe against
 * concurrent ad_log() calls: set it once at start-up. */
void ad_log_set(ad_log_fn fn, void *userdata);
void ad_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Write a formatted message into a caller's error buffer (NULL-safe) and
 * return `code`, so parsers can `return ad_errf(err, errlen, AD_EFORMAT, ...)`. */
int ad_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 64-byte aligned allocation for numeric buffers; free with ad_afree(). */
void *ad_aalloc(size_t bytes);
void ad_afree(void *p);

/* Checked size arithmetic: return 0 and set *out, or -1 on overflow. */
int ad_mul_size(size_t a, size_t b, size_t *out);
int ad_add_size(size_t a, size_t b, size_t *out);

/* Lay out one allocation holding a struct and its arrays: reserve n
 * elements of `size` bytes aligned to `align` (a power of two) at the next
 * suitable offset after *off, advance *off past them and return their
 * offset. On overflow *off becomes SIZE_MAX and stays so (every later call
 * returns SIZE_MAX too): check *off once after the last call. */
size_t ad_place(size_t *off, size_t n, size_t size, size_t align);

/* ---- shared helpers: hash, string builder, whole-file I/O --------------- */

/* Sample times a stream can hold, unix seconds: 1970-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999Z. A time past that would not fit int64
 * milliseconds far enough from overflow (1e300 s would not convert at all);
 * one before 1970 is an unset or broken clock. ad_time_ok(s) is 1 when s is
 * such a time, 0 otherwise (NaN and Inf included). The payload parsers and
 * replay's time column refuse the others with AD_TIME_RANGE in the message. */
#define AD_TIME_MAX_S 253402300799.999
#define AD_TIME_RANGE "1970-01-01 .. 9999-12-31"
int ad_time_ok(double s);

/* ms since the epoch as ISO 8601 UTC with milliseconds
 * ("2026-01-02T03:04:05.678Z"; "?" when out of range). */
void ad_iso_ms(int64_t ms, char *buf, size_t len);

/* Add number v to a cJSON object as key k, or null when v is not finite
 * (JSON has no NaN or Inf). Returns 1, or 0 on out of memory. */
struct cJSON;
int ad_json_num(struct cJSON *o, const char *k, double v);

/* Print a JSON value without white space, as cJSON_PrintUnformatted does,
 * except that every number reads back as the same double, bit for bit
 * (cJSON prints 15 digits when they come within about 1e-16 relative):
 * what a state file or a hand-over record carries through a parse and a
 * print (the daemon's additions, a rewrite) is restored exactly. The
 * shortest of 15, 16 or 17 digits, "null" for NaN and Inf, raw items as
 * they are. A malloc'd string, or NULL (out of memory, an invalid item). */
char *ad_json_print(const struct cJSON *item);
/* One number so printed into buf (32 bytes are enough). */
void ad_json_fmt_num(char *buf, size_t len, double v);

/* Parse text (len bytes; no NUL needed) as one JSON value that only white
 * space (or NUL padding) may follow. Returns the value (the caller frees it
 * with cJSON_Delete), or NULL with "invalid JSON at line L column C" in err
 * (also on out of memory), "...: text after the end of the <what>" when a
 * value is followed by more text (a second object, garbage): that text was
 * never ignored. `what` names the value ("configuration object"). */
struct cJSON *ad_json_parse_whole(const char *text, size_t len, const char *what,
                                  char *err, size_t errlen);

/* Where the value of member `name` of the JSON object in text (len bytes;
 * no NUL needed) lies: [*start, *end) (the first such member). A scan, not
 * a parse: strings and brackets are matched, what lies inside is not
 * checked (a reader that needs the value parses it), so a large member is
 * cut out without a number of it converted. Keys, white space and a
 * leading UTF-8 BOM are read as cJSON reads them (an escaped key decoded,
 * the first of duplicate keys), so the member is the one a parse of the
 * whole text gives. 0, AD_ENOENT (no such member
 * at the top level), or AD_EINVAL (text is not an object, or its
 * brackets or strings do not close). */
int ad_json_member_span(const char *text, size_t len, const char *name, size_t *start,
                        size_t *end);

/* FNV-1a 64: fold n bytes at p into h. Start from AD_FNV_INIT. The one hash
 * of the project (settings hashes, stream tables). */
#define AD_FNV_INIT 14695981039346656037ull
uint64_t ad_fnv1a64(uint64_t h, const void *p, size_t n);
uint64_t ad_fnv1a64_str(const char *s);     /* ad_fnv1a64(AD_FNV_INIT, s, strlen) */

/* Growable NUL-terminated string. Start zeroed ({0}); appends after an
 * allocation failure are ignored and set `oom` (check it once at the end).
 * s is NULL until the first append; free with ad_buf_free(). */
typedef struct ad_buf {
    char *s;
    size_t len, cap;
    int oom;
} ad_buf;
void ad_buf_put(ad_buf *b, const char *s, size_t n);
void ad_buf_puts(ad_buf *b, const char *s);
void ad_buf_printf(ad_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ad_buf_free(ad_buf *b);

/* Read a whole regular file into a malloc'd buffer of *len bytes plus a
 * terminating NUL (not counted), refusing files over `max` bytes. The file
 * is opened non-blocking and must be a regular file (fstat) before anything
 * is read, so a FIFO, a device or a directory given as a model, CSV, config
 * or password file is an error naming the path, never a hang. */
int ad_read_file(const char *path, size_t max, void **buf, size_t *len,
                 char *err, size_t errlen);
/* The same for text: *out is the NUL-terminated content (malloc'd). */
int ad_read_text(const char *path, size_t max, char **out, char *err, size_t errlen);

/* Create directory `dir` and its missing parents with `mode` (like
 * mkdir -p). Returns 0 (also when it exists) or a negative errno with a
 * message naming the directory that could not be made. */
int ad_mkdir_p(const char *dir, unsigned mode, char *err, size_t errlen);

/* Write a buffer atomically: a new temporary file next to path (named
 * path AD_TMP_MARK pid.random, created O_CREAT|O_EXCL|O_NOFOLLOW, mode
 * 0600), fsync, rename over path, fsync the dir. A crash may leave the
 * temporary file: ad_clean_tmp_files removes such leftovers. Messages name
 * path, the name the caller gave, not the temporary file; when path's
 * directory does not exist, it is named, with the first missing level
 * ("m.st: directory a/b/c does not exist (a/b is missing)"). */
#define AD_TMP_MARK ".tmp~"
/* Remove the leftover temporary files of ad_write_file_atomic in dir
 * (regular files whose name contains AD_TMP_MARK; never follows links).
 * Returns how many were removed, or a negative code. */
int ad_clean_tmp_files(const char *dir);

/* 0 when the directory path is in exists, else AD_ENOENT with "path:
 * directory D does not exist (M is missing)" in err (M, the first missing
 * level, when it is not D itself), or -ENOTDIR with "path: X is not a
 * directory" when D or a level above it is a file: a command checks its
 * output path before working for minutes to write there. */
int ad_dir_of_exists(const char *path, char *err, size_t errlen);
/* The same, and a file can be created there now (a temporary one, removed
 * at once): -EACCES, -EROFS, ... with "path: Permission denied" as an
 * atomic write of path would say it. */
int ad_dir_of_writable(const char *path, char *err, size_t errlen);

int ad_write_file_atomic(const char *path, const void *buf, size_t len,
                         char *err, size_t errlen);
/* The same with the file's mode (set whatever the umask): 0644 for a file
 * another user reads (a metrics file for node_exporter). */
int ad_write_file_atomic_mode(const char *path, const void *buf, size_t len, unsigned mode,
                              char *err, size_t errlen);

#endif /* AD_H */
