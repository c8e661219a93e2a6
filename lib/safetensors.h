/*
 * safetensors.h - a bounds-checked reader and a writer for the safetensors
 * container (format described in model.h). Generic: knows nothing about
 * models; model_file.c and the golden tests build on it.
 */
#ifndef AD_SAFETENSORS_H
#define AD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ad.h"

#define AD_ST_MAX_DIMS 8
#define AD_ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct ad_st_tensor {
    char *name;                 /* owned */
    int ndim;
    int64_t shape[AD_ST_MAX_DIMS];
    size_t count;               /* prod(shape), checked for overflow */
    const float *data;          /* points into the reader's buffer (borrowed) */
} ad_st_tensor;

typedef struct ad_st ad_st;

/*
 * Parse a safetensors image held in memory. The buffer is borrowed and must
 * outlive the reader. Checks header length against size, JSON, dtype (F32
 * only), shapes (overflow), offsets inside the data section, no overlaps,
 * full coverage, 4-byte alignment is NOT required (data is copied out by the
 * model loader). `name` prefixes error messages.
 */
int ad_st_parse(ad_st **out, const void *buf, size_t len, const char *name,
                char *err, size_t errlen);
void ad_st_free(ad_st *st);   /* NULL-safe */

int ad_st_count(const ad_st *st);
const ad_st_tensor *ad_st_at(const ad_st *st, int i);
const ad_st_tensor *ad_st_find(const ad_st *st, const char *name);
/* Metadata value for key, or NULL. Borrowed. */
const char *ad_st_meta(const ad_st *st, const char *key);
int ad_st_meta_count(const ad_st *st);
const char *ad_st_meta_key(const ad_st *st, int i);

/* Writer: collect tensors (data copied) and metadata, then serialise. */
typedef struct ad_st_writer ad_st_writer;
ad_st_writer *ad_st_writer_new(void);
void ad_st_writer_free(ad_st_writer *w);
int ad_st_writer_meta(ad_st_writer *w, const char *key, const char *value);
int ad_st_writer_add(ad_st_writer *w, const char *name, const float *data,
                     int ndim, const int64_t *shape);
/* malloc'd image in *buf, length in *len */
int ad_st_writer_finish(ad_st_writer *w, void **buf, size_t *len);

/* ad_read_file() and ad_write_file_atomic() live in ad.h. */

/* SHA-256 of a buffer; hex must hold 65 bytes. */
void ad_sha256_hex(const void *buf, size_t len, char hex[65]);

#endif /* AD_SAFETENSORS_H */
