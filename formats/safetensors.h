/* safetensors.h — reader and writer for the safetensors format.
 *
 * File layout (https://github.com/huggingface/safetensors):
 *   u64 little-endian N | N bytes of JSON header | data
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [b, e]}
 * (offsets relative to the start of the data section) plus an optional
 * "__metadata__" object of string -> string.
 *
 * The reader is hostile-input safe: the header length is checked against the
 * file size and a hard cap, the JSON is parsed by jansson, every tensor's
 * dtype must be F32/F16/BF16 (other dtypes are listed but cannot be read as
 * f32), its byte size must equal numel * dtype size, offsets must lie inside
 * the data section and tensors must not overlap. Values are converted to f32
 * on read and non-finite values are rejected (a weight file with NaN/Inf is
 * corrupt for every use we have).
 *
 * The writer stores f32 (or f16/bf16, rounded) tensors in the order given, 8-byte aligned header,
 * atomically (tmp + rename through out_open/out_close).
 */
#ifndef LBDPO_SAFETENSORS_H
#define LBDPO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER (100u << 20) /* 100 MiB: the reference implementation's cap */
#define ST_MAX_NDIM 8
#define ST_MAX_TENSORS (1 << 20)

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_OTHER } st_dtype;

typedef struct {
	const char *name;
	st_dtype dtype;
	const char *dtype_name; /* as written in the file, e.g. "F32", "I64" */
	int ndim;
	int64_t shape[ST_MAX_NDIM];
	uint64_t numel;
	uint64_t begin, end; /* byte offsets within the data section */
} st_info_t;

typedef struct st_file st_file;

/* ---- reading ---- */

/* Parse a complete safetensors image held in memory (not copied: buf must
 * outlive the result). name is used in messages. On error returns NULL and
 * writes a one-line message (without the program prefix) into err. */
st_file *st_parse(const void *buf, size_t len, const char *name, char *err, size_t errsz);
/* Open a file (mmap); dies with a one-line message naming the file. */
st_file *st_open(const char *path);
void st_close(st_file *f);

const char *st_name(const st_file *f);
int st_count(const st_file *f);
/* Tensors in file order (by data offset). */
const st_info_t *st_info(const st_file *f, int i);
/* Find a tensor by name; NULL if absent. */
const st_info_t *st_find(const st_file *f, const char *name);
/* A "__metadata__" value; NULL if absent. */
const char *st_meta(const st_file *f, const char *key);

/* Convert a tensor to f32 into dst[numel] (the file's pages of it are let
 * go after: st_read_bits16). numel must equal the tensor's element count. Returns 0, or -1 with a message in err (missing tensor,
 * size mismatch, unsupported dtype, non-finite value at element k). */
int st_read_f32_err(const st_file *f, const char *name, float *dst, size_t numel, char *err, size_t errsz);
/* Same; dies with "FILE: tensor NAME: ..." on error. */
void st_read_f32(const st_file *f, const char *name, float *dst, size_t numel);

/* Copy an F16 or BF16 tensor's bits as they are into dst[numel] (the
 * caller checked ti->dtype), then let the file's pages of it go (a file
 * opened with st_open is mapped: read once, they need not stay resident).
 * Dies with "FILE: byte offset N: tensor NAME element K is not finite". */
void st_read_bits16(const st_file *f, const st_info_t *ti, uint16_t *dst);
/* ---- writing ---- */

typedef struct {
	const char *name;
	int ndim; /* 0..4 */
	int64_t shape[4];
	const float *data; /* numel = product of shape (1 for ndim 0) */
} st_tensor_out;

/* Write f32 tensors (in the given order) to path atomically. meta is NULL or
 * a NULL-terminated list of key, value, key, value, ... strings stored in
 * "__metadata__". Dies on I/O error or a duplicate name. */
void st_save(const char *path, const st_tensor_out *t, int n, const char *const *meta);
/* Same, converting every tensor to dt (F32, F16 or BF16; round to nearest
 * even). Dies when a finite value overflows F16. */
void st_save_as(const char *path, const st_tensor_out *t, int n, const char *const *meta, st_dtype dt);
/* Same where tensor i's values are 16-bit, d16[i] (d16 may be NULL, or
 * d16[i] NULL: t[i].data): F16 or BF16 bits as dt16 says, written as they
 * are when dt is dt16, else widened (exact) and converted as f32 values. */
void st_save_as16(const char *path, const st_tensor_out *t, int n, const char *const *meta, st_dtype dt,
		  const uint16_t *const *d16, st_dtype dt16);

/* Helpers for f16/bf16 (exposed for tests). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);

#endif
