/* records.h — msgpack record streams (see man/lbdpo-records.5).
 *
 * A stream is a sequence of msgpack maps with string keys. The first map is
 * the header: {"lbdpo": 1, "kind": "...", "history": [...], ...}. Each later
 * map is one record. Reading is streaming with bounded memory: one record is
 * held at a time (at most RS_MAX_RECORD bytes).
 *
 * Every error names the stream, the record index (header = record 0) and the
 * byte offset, on one line, and exits 1 (through die()).
 */
#ifndef LBDPO_RECORDS_H
#define LBDPO_RECORDS_H

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

#define RS_FORMAT_VERSION 1
/* Limits of one record. Unpacked, every msgpack value takes a 24-byte
 * object besides its bytes (an array of small ints: 24x its size), so the
 * count of values is bounded too: peak memory of a reader is at most about
 * 2 x RS_MAX_RECORD (read buffer) + 24 x RS_MAX_OBJECTS, ~250 MB. */
#define RS_MAX_RECORD (1u << 26)  /* 64 MiB */
#define RS_MAX_OBJECTS (1u << 22) /* 4M values (keys, values and elements) */
#define RS_MAX_DEPTH 64

/* ---------------- reading ---------------- */

typedef struct rs_reader rs_reader;

/* Open a stream ("-" or NULL = stdin) and read + validate its header.
 * expect_kind: NULL accepts any kind. */
rs_reader *rs_open(const char *path, const char *expect_kind);
/* Same on an already open FILE (name is used in messages). */
rs_reader *rs_open_fp(FILE *fp, const char *name, const char *expect_kind);
/* Open without header interpretation: every map is returned by rs_next,
 * the header included (used by lbdpo-show). */
rs_reader *rs_open_raw(const char *path);
void rs_close(rs_reader *r);
/* Read a stream file through once ahead of its real reading: its number of
 * records (header not counted) and, if sha is not NULL, the sha256 (hex) of
 * its bytes. Standard input ("-" or NULL) only when it is a redirected
 * regular file, read from its offset and put back there: call before
 * opening it. Returns -1, reading nothing, for a pipe or a terminal (it
 * cannot be read twice). Dies like rs_next on a damaged stream. */
int rs_scan(const char *path, uint64_t *nrec, char sha[65]);
/* Close every open reader (for die hooks that unwind, e.g. fuzz targets). */
void rs_close_all(void);

/* The header map (valid until rs_close). */
const msgpack_object *rs_header(rs_reader *r);
/* Next record map; returns 0 at a clean end of stream. The object is valid
 * until the next call. Dies on truncation / corruption. */
int rs_next(rs_reader *r, const msgpack_object **rec);
/* The raw bytes of the last object returned (for exact pass-through). */
const char *rs_raw(rs_reader *r, size_t *len);
/* Index of the last record returned (header = 0, first record = 1). */
uint64_t rs_index(rs_reader *r);
/* Byte offset where the last record returned starts. */
uint64_t rs_offset(rs_reader *r);
const char *rs_name(rs_reader *r);

/* Die with "<stream>: record N (byte offset B): <msg>". */
LBDPO_NORETURN void rs_die(rs_reader *r, const char *fmt, ...) LBDPO_PRINTF(2, 3);

/* ---- typed access to a record's keys; NULL / 0 when absent ----
 * The _req variants die (via rs_die) when the key is absent; every getter
 * dies when the key is present with the wrong type. */
const msgpack_object *rs_get(const msgpack_object *map, const char *key);
int rs_get_str(rs_reader *r, const msgpack_object *map, const char *key, const char **s, size_t *n);
int rs_get_i64(rs_reader *r, const msgpack_object *map, const char *key, int64_t *v);
int rs_get_f64(rs_reader *r, const msgpack_object *map, const char *key, double *v); /* int or float */
/* Token ids: array of unsigned ints < limit (limit 0 = no limit). *ids is
 * (re)allocated into *cap. Returns 1 if present. */
int rs_get_ids(rs_reader *r, const msgpack_object *map, const char *key, uint32_t limit, uint32_t **ids, size_t *n,
	       size_t *cap);
/* f32 vector stored as bin (little-endian f32). *v (re)allocated into *cap. */
int rs_get_f32v(rs_reader *r, const msgpack_object *map, const char *key, float **v, size_t *n, size_t *cap);
void rs_req(rs_reader *r, int present, const char *key); /* dies if !present */

/* ---------------- writing ---------------- */

typedef struct rs_writer rs_writer;

/* Create a stream ("-" or NULL = stdout); written atomically (tmp + rename). */
rs_writer *rs_create(const char *path);
/* Flush and close (renames a file into place); dies on any write error. */
void rs_finish(rs_writer *w);
/* A writer that keeps its bytes in memory (records computed on one MPI rank
 * and written by another, libcore/dist/distrec.h); rs_finish frees it. */
rs_writer *rs_create_mem(void);
const char *rs_mem(rs_writer *w, size_t *n); /* the bytes written since the last clear */
void rs_mem_clear(rs_writer *w);

/* Header: copy `in` (may be NULL) with "kind" set, then append to its
 * "history" array {"program", "version", "args"} for this program.
 * Extra header keys may be put between rs_header_begin and rs_header_end
 * with the rs_put_* calls (they replace keys of the same name). */
void rs_header_begin(rs_writer *w, const msgpack_object *in, const char *kind, int argc, char **argv);
void rs_header_end(rs_writer *w);

/* Record: rs_rec_begin(w, in) remembers `in` (may be NULL); rs_put_* add keys;
 * rs_rec_end writes `in`'s keys in their order (a key that was put gets the
 * new value in place), then the new keys in the order they were put. */
void rs_rec_begin(rs_writer *w, const msgpack_object *in);
void rs_rec_end(rs_writer *w);
/* Drop a key of `in` from the output without replacing it. */
void rs_drop(rs_writer *w, const char *key);

void rs_put_str(rs_writer *w, const char *key, const char *s, size_t n);
void rs_put_cstr(rs_writer *w, const char *key, const char *s);
void rs_put_i64(rs_writer *w, const char *key, int64_t v);
void rs_put_f64(rs_writer *w, const char *key, double v);
void rs_put_bool(rs_writer *w, const char *key, int v);
void rs_put_ids(rs_writer *w, const char *key, const uint32_t *ids, size_t n);
void rs_put_f32v(rs_writer *w, const char *key, const float *v, size_t n); /* bin, LE f32 */
/* For nested values: the packer writes exactly one object after the key. */
msgpack_packer *rs_put_key(rs_writer *w, const char *key);

/* Write one packed record as is (pass-through). */
void rs_write_raw(rs_writer *w, const char *buf, size_t n);

#endif
