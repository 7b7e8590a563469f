/* safetensors.c — hostile-input-safe safetensors reader and f32 writer.
 * See safetensors.h for the format and the checks. */
#define _GNU_SOURCE
#include "formats/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

struct st_file {
	char *name;
	const unsigned char *data; /* start of the data section */
	uint64_t data_len;
	uint64_t data_off; /* file offset of the data section (8 + header length) */
	int n;
	st_info_t *t; /* sorted by begin */
	int n_meta;
	char **meta; /* key, value pairs */
	/* mmap bookkeeping when opened from a file */
	const void *map;
	size_t map_len;
};

static void seterr(char *err, size_t errsz, const char *fmt, ...) LBDPO_PRINTF(3, 4);
static void seterr(char *err, size_t errsz, const char *fmt, ...)
{
	if (!err || !errsz)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

float st_f16_to_f32(uint16_t h)
{
	/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: value = man * 2^-24 */
			float v = ldexpf((float)man, -24);
			return sign ? -v : v;
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | (man << 13);
	} else {
		bits = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

float st_bf16_to_f32(uint16_t h)
{
	/* bfloat16 is the upper half of an f32. */
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static int dtype_size(st_dtype d) { return d == ST_F32 ? 4 : d == ST_OTHER ? 0 : 2; }

/* Byte size of the dtypes we do not read, so size checks still apply. */
static int other_dtype_size(const char *s)
{
	static const struct {
		const char *n;
		int sz;
	} tab[] = {
		{"F64", 8}, {"I64", 8}, {"U64", 8}, {"I32", 4},  {"U32", 4},     {"I16", 2},
		{"U16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (!strcmp(s, tab[i].n))
			return tab[i].sz;
	return 0;
}

static int cmp_begin(const void *a, const void *b)
{
	const st_info_t *x = a, *y = b;
	return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static void free_file(st_file *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n; i++) {
		free((char *)f->t[i].name);
		free((char *)f->t[i].dtype_name);
	}
	free(f->t);
	for (int i = 0; i < 2 * f->n_meta; i++)
		free(f->meta[i]);
	free(f->meta);
	free(f->name);
	unmap_file(f->map, f->map_len);
	free(f);
}

void st_close(st_file *f) { free_file(f); }

/* Parse one tensor entry of the header into *ti; 0 or -1 with err. */
static int parse_entry(const char *fname, const char *key, json_t *v, uint64_t data_len, st_info_t *ti, char *err,
		       size_t errsz)
{
	if (!json_is_object(v)) {
		seterr(err, errsz, "%s: header: tensor '%s' is not an object", fname, key);
		return -1;
	}
	json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
	       *off = json_object_get(v, "data_offsets");
	if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off)) {
		seterr(err, errsz, "%s: header: tensor '%s' needs string dtype, array shape and array data_offsets",
		       fname, key);
		return -1;
	}
	const char *ds = json_string_value(dt);
	int esz;
	if (!strcmp(ds, "F32"))
		ti->dtype = ST_F32;
	else if (!strcmp(ds, "F16"))
		ti->dtype = ST_F16;
	else if (!strcmp(ds, "BF16"))
		ti->dtype = ST_BF16;
	else
		ti->dtype = ST_OTHER;
	esz = ti->dtype == ST_OTHER ? other_dtype_size(ds) : dtype_size(ti->dtype);
	if (esz == 0) {
		seterr(err, errsz, "%s: header: tensor '%s' has unknown dtype '%.32s'", fname, key, ds);
		return -1;
	}
	size_t nd = json_array_size(sh);
	if (nd > ST_MAX_NDIM) {
		seterr(err, errsz, "%s: header: tensor '%s' has %zu dimensions (at most %d)", fname, key, nd,
		       ST_MAX_NDIM);
		return -1;
	}
	ti->ndim = (int)nd;
	uint64_t numel = 1;
	for (size_t d = 0; d < nd; d++) {
		json_t *x = json_array_get(sh, d);
		if (!json_is_integer(x) || json_integer_value(x) < 0) {
			seterr(err, errsz, "%s: header: tensor '%s' shape[%zu] is not a non-negative integer", fname,
			       key, d);
			return -1;
		}
		uint64_t s = (uint64_t)json_integer_value(x);
		ti->shape[d] = (int64_t)s;
		if (__builtin_mul_overflow(numel, s, &numel)) {
			seterr(err, errsz, "%s: header: tensor '%s' shape overflows", fname, key);
			return -1;
		}
	}
	ti->numel = numel;
	if (json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
	    !json_is_integer(json_array_get(off, 1)) || json_integer_value(json_array_get(off, 0)) < 0 ||
	    json_integer_value(json_array_get(off, 1)) < 0) {
		seterr(err, errsz, "%s: header: tensor '%s' data_offsets must be two non-negative integers", fname,
		       key);
		return -1;
	}
	ti->begin = (uint64_t)json_integer_value(json_array_get(off, 0));
	ti->end = (uint64_t)json_integer_value(json_array_get(off, 1));
	if (ti->end < ti->begin || ti->end > data_len) {
		seterr(err, errsz,
		       "%s: header: tensor '%s' data_offsets [%llu, %llu] outside the data section (%llu bytes)", fname,
		       key, (unsigned long long)ti->begin, (unsigned long long)ti->end, (unsigned long long)data_len);
		return -1;
	}
	uint64_t bytes;
	if (__builtin_mul_overflow(numel, (uint64_t)esz, &bytes) || bytes != ti->end - ti->begin) {
		seterr(err, errsz,
		       "%s: header: tensor '%s' has %llu bytes of data but dtype %s and its shape need %llu", fname,
		       key, (unsigned long long)(ti->end - ti->begin), ds, (unsigned long long)(numel * (uint64_t)esz));
		return -1;
	}
	ti->name = xstrdup(key);
	ti->dtype_name = xstrdup(ds);
	return 0;
}

st_file *st_parse(const void *buf, size_t len, const char *name, char *err, size_t errsz)
{
	const unsigned char *b = buf;
	if (len < 8) {
		seterr(err, errsz, "%s: byte offset 0: file too short for a safetensors header (%zu bytes)", name, len);
		return NULL;
	}
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | b[i];
	if (hlen > ST_MAX_HEADER || hlen > len - 8) {
		seterr(err, errsz, "%s: byte offset 0: header length %llu exceeds the file size (%zu bytes)%s", name,
		       (unsigned long long)hlen, len, hlen > ST_MAX_HEADER ? " or the 100 MiB limit" : "");
		return NULL;
	}
	if (hlen < 2 || b[8] != '{') {
		seterr(err, errsz, "%s: byte offset 8: header is not a JSON object", name);
		return NULL;
	}
	json_error_t jerr;
	json_t *root = json_loadb((const char *)b + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		seterr(err, errsz, "%s: byte offset %llu: bad JSON header: %s", name,
		       (unsigned long long)(8 + (jerr.position > 0 ? (uint64_t)jerr.position : 0)), jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		seterr(err, errsz, "%s: byte offset 8: header is not a JSON object", name);
		return NULL;
	}
	st_file *f = xcalloc(1, sizeof *f);
	f->name = xstrdup(name);
	f->data_off = 8 + hlen;
	f->data = b + f->data_off;
	f->data_len = len - f->data_off;
	size_t cap = json_object_size(root);
	if (cap > ST_MAX_TENSORS) {
		seterr(err, errsz, "%s: header: %zu entries (at most %d)", name, cap, ST_MAX_TENSORS);
		goto fail;
	}
	f->t = xcalloc(cap ? cap : 1, sizeof *f->t);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (!strcmp(key, "__metadata__")) {
			if (!json_is_object(v)) {
				seterr(err, errsz, "%s: header: __metadata__ is not an object", name);
				goto fail;
			}
			f->meta = xcalloc(2 * json_object_size(v) + 1, sizeof *f->meta);
			const char *mk;
			json_t *mv;
			json_object_foreach(v, mk, mv)
			{
				if (!json_is_string(mv)) {
					seterr(err, errsz, "%s: header: __metadata__ value of '%.64s' is not a string",
					       name, mk);
					goto fail;
				}
				f->meta[2 * f->n_meta] = xstrdup(mk);
				f->meta[2 * f->n_meta + 1] = xstrdup(json_string_value(mv));
				f->n_meta++;
			}
			continue;
		}
		if (parse_entry(name, key, v, f->data_len, &f->t[f->n], err, errsz))
			goto fail;
		f->n++;
	}
	json_decref(root);
	root = NULL;
	qsort(f->t, f->n, sizeof *f->t, cmp_begin);
	for (int i = 1; i < f->n; i++) {
		/* Empty tensors occupy no bytes and may share an offset. */
		if (f->t[i].begin < f->t[i - 1].end && f->t[i].begin != f->t[i].end) {
			seterr(err, errsz, "%s: header: tensors '%s' and '%s' overlap (data_offsets %llu < %llu)", name,
			       f->t[i - 1].name, f->t[i].name, (unsigned long long)f->t[i].begin,
			       (unsigned long long)f->t[i - 1].end);
			goto fail;
		}
	}
	return f;
fail:
	if (root)
		json_decref(root);
	free_file(f);
	return NULL;
}

st_file *st_open(const char *path)
{
	size_t len;
	const void *map = map_file(path, &len);
	char err[1024];
	st_file *f = st_parse(map, len, path, err, sizeof err);
	if (!f)
		die("%s", err);
	f->map = map;
	f->map_len = len;
	return f;
}

const char *st_name(const st_file *f) { return f->name; }
int st_count(const st_file *f) { return f->n; }
const st_info_t *st_info(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }

const st_info_t *st_find(const st_file *f, const char *name)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
	for (int i = 0; i < f->n_meta; i++)
		if (!strcmp(f->meta[2 * i], key))
			return f->meta[2 * i + 1];
	return NULL;
}

/* A tensor read from a mapped file: its pages need not stay resident (a
 * model's file would otherwise count in full next to the weights read
 * from it). Whole pages only; a read-only private mapping gives them back
 * from the file should anything read them again. */
static void release_pages(const st_file *f, const st_info_t *ti)
{
	if (!f->map || ti->end <= ti->begin)
		return;
	const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)(f->data + ti->begin), b = (uintptr_t)(f->data + ti->end);
	a = (a + pg - 1) & ~(pg - 1);
	b &= ~(pg - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

int st_read_f32_err(const st_file *f, const char *name, float *dst, size_t numel, char *err, size_t errsz)
{
	const st_info_t *ti = st_find(f, name);
	if (!ti) {
		seterr(err, errsz, "%s: tensor '%s' not found", f->name, name);
		return -1;
	}
	if (ti->numel != numel) {
		seterr(err, errsz, "%s: tensor '%s' has %llu elements, expected %zu", f->name, name,
		       (unsigned long long)ti->numel, numel);
		return -1;
	}
	if (ti->dtype == ST_OTHER) {
		seterr(err, errsz, "%s: tensor '%s' has dtype %s (only F32, F16, BF16 are supported)", f->name, name,
		       ti->dtype_name);
		return -1;
	}
	const unsigned char *p = f->data + ti->begin;
	if (ti->dtype == ST_F32) {
		memcpy(dst, p, numel * 4); /* unaligned source is fine for memcpy */
	} else {
		for (size_t i = 0; i < numel; i++) {
			uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
			dst[i] = ti->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
		}
	}
	for (size_t i = 0; i < numel; i++)
		if (!isfinite(dst[i])) {
			int es = dtype_size(ti->dtype);
			seterr(err, errsz, "%s: byte offset %llu: tensor '%s' element %zu is not finite", f->name,
			       (unsigned long long)(f->data_off + ti->begin + (uint64_t)i * es), name, i);
			return -1;
		}
	release_pages(f, ti);
	return 0;
}

void st_read_f32(const st_file *f, const char *name, float *dst, size_t numel)
{
	char err[1024];
	if (st_read_f32_err(f, name, dst, numel, err, sizeof err))
		die("%s", err);
}

void st_read_bits16(const st_file *f, const st_info_t *ti, uint16_t *dst)
{
	if (ti->dtype != ST_F16 && ti->dtype != ST_BF16)
		BUG("st_read_bits16: tensor '%s' is %s", ti->name, ti->dtype_name);
	const unsigned char *p = f->data + ti->begin;
	const uint16_t inf = ti->dtype == ST_F16 ? 0x7c00 : 0x7f80; /* exponent all ones: inf or NaN */
	for (size_t i = 0; i < ti->numel; i++) {
		const uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
		if ((h & inf) == inf)
			die("%s: byte offset %llu: tensor '%s' element %zu is not finite", f->name,
			    (unsigned long long)(f->data_off + ti->begin + 2 * (uint64_t)i), ti->name, i);
		dst[i] = h;
	}
	release_pages(f, ti);
}

uint16_t st_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN stays a (quiet) NaN */
		return (uint16_t)((x >> 16) | 0x40);
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16); /* round to nearest even */
}

uint16_t st_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000, m = x & 0x7fffff, E = (x >> 23) & 0xff;
	if (E == 0xff)
		return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
	int e = (int)E - 127 + 15;
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) { /* f16 subnormal: value = half·2^-24 */
		if (e < -10)
			return (uint16_t)sign;
		m |= 0x800000;
		int sh = 14 - e;
		uint32_t h = m >> sh, rem = m & ((1u << sh) - 1), mid = 1u << (sh - 1);
		if (rem > mid || (rem == mid && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	uint32_t h = ((uint32_t)e << 10) | (m >> 13), rem = m & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* a carry into the exponent is the right rounding (up to inf) */
	return (uint16_t)(sign | h);
}

void st_save(const char *path, const st_tensor_out *t, int n, const char *const *meta)
{
	st_save_as(path, t, n, meta, ST_F32);
}

void st_save_as(const char *path, const st_tensor_out *t, int n, const char *const *meta, st_dtype dt)
{
	st_save_as16(path, t, n, meta, dt, NULL, ST_F32);
}

void st_save_as16(const char *path, const st_tensor_out *t, int n, const char *const *meta, st_dtype dt,
		  const uint16_t *const *d16, st_dtype dt16)
{
	if (dt != ST_F32 && dt != ST_F16 && dt != ST_BF16)
		die("%s: can only write F32, F16 or BF16", path);
	const int es = dtype_size(dt);
	json_t *root = json_object();
	if (meta && meta[0]) {
		json_t *m = json_object();
		for (int i = 0; meta[i] && meta[i + 1]; i += 2)
			json_object_set_new(m, meta[i], json_string(meta[i + 1]));
		json_object_set_new(root, "__metadata__", m);
	}
	uint64_t off = 0;
	for (int i = 0; i < n; i++) {
		if (t[i].ndim < 0 || t[i].ndim > 4)
			die("%s: tensor '%s': %d dimensions (at most 4)", path, t[i].name, t[i].ndim);
		if (json_object_get(root, t[i].name))
			die("%s: duplicate tensor name '%s'", path, t[i].name);
		json_t *e = json_object(), *sh = json_array();
		uint64_t numel = 1;
		for (int d = 0; d < t[i].ndim; d++) {
			if (t[i].shape[d] < 0)
				die("%s: tensor '%s': negative shape", path, t[i].name);
			numel *= (uint64_t)t[i].shape[d];
			json_array_append_new(sh, json_integer(t[i].shape[d]));
		}
		json_object_set_new(e, "dtype", json_string(dt == ST_F32 ? "F32" : dt == ST_F16 ? "F16" : "BF16"));
		json_object_set_new(e, "shape", sh);
		json_t *o = json_array();
		json_array_append_new(o, json_integer((json_int_t)off));
		json_array_append_new(o, json_integer((json_int_t)(off + (uint64_t)es * numel)));
		json_object_set_new(e, "data_offsets", o);
		json_object_set_new(root, t[i].name, e);
		off += (uint64_t)es * numel;
	}
	char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!hdr)
		die("%s: cannot encode the safetensors header", path);
	size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8; /* data 8-byte aligned */
	outfile *o = out_open(path);
	unsigned char lenb[8];
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
	fwrite(lenb, 1, 8, o->fp);
	fwrite(hdr, 1, hl, o->fp);
	for (size_t i = hl; i < padded; i++)
		fputc(' ', o->fp);
	free(hdr);
	for (int i = 0; i < n; i++) {
		size_t numel = 1;
		for (int d = 0; d < t[i].ndim; d++)
			numel *= (size_t)t[i].shape[d];
		const uint16_t *h16 = d16 ? d16[i] : NULL;
		if (h16 && dt == dt16) { /* 16-bit values in their own dtype: as they are */
			if (numel && fwrite(h16, 2, numel, o->fp) != numel)
				die("%s: write error: %s", path, strerror(errno));
			continue;
		}
		if (dt == ST_F32 && !h16) {
			if (numel && fwrite(t[i].data, 4, numel, o->fp) != numel)
				die("%s: write error: %s", path, strerror(errno));
			continue;
		}
		uint16_t buf[4096];
		float wide[4096];
		for (size_t k = 0; k < numel; k += 4096) {
			size_t c = numel - k < 4096 ? numel - k : 4096;
			if (h16) { /* widened (exact), then as f32 values */
				for (size_t j = 0; j < c; j++)
					wide[j] = dt16 == ST_F16 ? st_f16_to_f32(h16[k + j])
								 : st_bf16_to_f32(h16[k + j]);
				if (dt == ST_F32) {
					if (fwrite(wide, 4, c, o->fp) != c)
						die("%s: write error: %s", path, strerror(errno));
					continue;
				}
			}
			for (size_t j = 0; j < c; j++) {
				float v = h16 ? wide[j] : t[i].data[k + j];
				buf[j] = dt == ST_F16 ? st_f32_to_f16(v) : st_f32_to_bf16(v);
				if (isfinite(v) && (buf[j] & 0x7c00) == 0x7c00 && dt == ST_F16)
					die("%s: tensor '%s' element %zu = %g does not fit float16 (use bfloat16 or float32)",
					    path, t[i].name, k + j, (double)v);
			}
			if (fwrite(buf, 2, c, o->fp) != c)
				die("%s: write error: %s", path, strerror(errno));
		}
	}
	out_close(o);
}
