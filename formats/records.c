/* records.c — msgpack record streams: a bounded-memory strict reader and an
 * order-preserving writer. Format: man/lbdpo-records.5.
 *
 * Reading works in two passes over each record's bytes:
 *  1. frame: walk the msgpack headers (not the payloads) to find where the
 *     next top-level object ends, checking every declared length against
 *     RS_MAX_RECORD and the nesting depth against RS_MAX_DEPTH, and reading
 *     exactly those bytes. A truncated stream is reported at its byte offset,
 *     and a hostile "array of 2^32 elements" header never allocates anything.
 *  2. unpack the framed bytes with msgpack-c into a zone.
 * Only one record is held at a time, so a stream of any size passes through
 * in constant memory (bounded by its largest record).
 */
#define _GNU_SOURCE
#include "formats/records.h"
#include "formats/schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================= reading ======================= */

struct rs_reader {
	FILE *fp;
	int own_fp;
	char *name;
	int raw;   /* return the header as a record too */
	char *buf; /* [cap] bytes; buf[start, len) not yet consumed */
	size_t cap, len, start;
	uint64_t buf_off; /* stream offset of buf[0] */
	int eof;
	uint64_t index;   /* index of the last object returned (header = 0) */
	uint64_t n_read;  /* objects read so far */
	uint64_t rec_off; /* stream offset of the last object returned */
	size_t rec_len;
	msgpack_unpacked rec;
	msgpack_unpacked hdr;
	char *hdr_bytes;
	rs_reader *next_live;            /* list of open readers, for rs_close_all */
	const msgpack_object_str **keys; /* [keys_cap] scratch for the duplicate-key check */
	size_t keys_cap;
};

static rs_reader *live;

void rs_die(rs_reader *r, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (r->index == 0)
		die("%s: header (byte offset %llu): %s", r->name, (unsigned long long)r->rec_off, msg);
	die("%s: record %llu (byte offset %llu): %s", r->name, (unsigned long long)r->index,
	    (unsigned long long)r->rec_off, msg);
}

/* Make at least n unconsumed bytes available; 0 if the stream ends first. */
static int fill(rs_reader *r, size_t n)
{
	while (r->len - r->start < n) {
		if (r->eof)
			return 0;
		if (r->start > 0 && (r->start >= r->cap / 2 || r->len == r->start)) {
			memmove(r->buf, r->buf + r->start, r->len - r->start);
			r->buf_off += r->start;
			r->len -= r->start;
			r->start = 0;
		}
		size_t want = n + (1u << 16);
		if (r->cap < want) {
			size_t c = r->cap ? r->cap : (1u << 16);
			while (c < want)
				c *= 2;
			r->buf = xrealloc(r->buf, c);
			r->cap = c;
		}
		size_t k = fread(r->buf + r->len, 1, r->cap - r->len, r->fp);
		if (k == 0) {
			if (ferror(r->fp))
				die("%s: read error: %s", r->name, strerror(errno));
			r->eof = 1;
		}
		r->len += k;
	}
	return 1;
}

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Find the size of the top-level object at buf[start]; dies on corruption. */
static size_t frame(rs_reader *r)
{
	uint64_t stack[RS_MAX_DEPTH + 1]; /* objects still expected per level */
	uint64_t n_obj = 0;
	int depth = 1;
	size_t p = 0; /* relative to start */
	stack[0] = 1;
	while (depth > 0) {
		if (stack[depth - 1] == 0) {
			depth--;
			continue;
		}
		stack[depth - 1]--;
		if (++n_obj > RS_MAX_OBJECTS)
			rs_die(r, "more than %u values in one record (limit: each takes 24 bytes of memory unpacked)",
			       RS_MAX_OBJECTS);
		if (!fill(r, p + 1))
			rs_die(r, "truncated stream at byte offset %llu (object header missing)",
			       (unsigned long long)(r->rec_off + p));
		const unsigned char *h = (const unsigned char *)r->buf + r->start + p;
		unsigned b = h[0];
		int lenbytes = 0;   /* bytes of big-endian length after the type byte */
		uint64_t fixed = 0; /* payload bytes known from the type alone */
		uint64_t children = 0;
		int is_container = 0, kids_per = 0, extra = 0;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		} else if (b <= 0x8f) {
			children = 2 * (uint64_t)(b & 0x0f);
		} else if (b <= 0x9f) {
			children = b & 0x0f;
		} else if (b <= 0xbf) {
			fixed = b & 0x1f;
		} else {
			switch (b) {
			case 0xc4:
			case 0xd9: lenbytes = 1; break;
			case 0xc5:
			case 0xda: lenbytes = 2; break;
			case 0xc6:
			case 0xdb: lenbytes = 4; break;
			case 0xc7:
				lenbytes = 1;
				extra = 1;
				break;
			case 0xc8:
				lenbytes = 2;
				extra = 1;
				break;
			case 0xc9:
				lenbytes = 4;
				extra = 1;
				break;
			case 0xca: fixed = 4; break;
			case 0xcb: fixed = 8; break;
			case 0xcc:
			case 0xd0: fixed = 1; break;
			case 0xcd:
			case 0xd1: fixed = 2; break;
			case 0xce:
			case 0xd2: fixed = 4; break;
			case 0xcf:
			case 0xd3: fixed = 8; break;
			case 0xd4: fixed = 2; break;
			case 0xd5: fixed = 3; break;
			case 0xd6: fixed = 5; break;
			case 0xd7: fixed = 9; break;
			case 0xd8: fixed = 17; break;
			case 0xdc:
				lenbytes = 2;
				is_container = 1;
				kids_per = 1;
				break;
			case 0xdd:
				lenbytes = 4;
				is_container = 1;
				kids_per = 1;
				break;
			case 0xde:
				lenbytes = 2;
				is_container = 1;
				kids_per = 2;
				break;
			case 0xdf:
				lenbytes = 4;
				is_container = 1;
				kids_per = 2;
				break;
			default:
				rs_die(r, "invalid msgpack type byte 0x%02x at byte offset %llu", b,
				       (unsigned long long)(r->rec_off + p));
			}
		}
		if (!fill(r, p + 1 + lenbytes))
			rs_die(r, "truncated stream at byte offset %llu (length field cut)",
			       (unsigned long long)(r->rec_off + p));
		h = (const unsigned char *)r->buf + r->start + p;
		uint64_t payload = fixed;
		if (lenbytes) {
			uint64_t n = be(h + 1, lenbytes);
			if (is_container)
				children = n * kids_per;
			else
				payload = n + extra;
		}
		uint64_t hdr = 1 + lenbytes;
		if (p + hdr + payload > RS_MAX_RECORD)
			rs_die(r, "declared length %llu at byte offset %llu exceeds the %u-byte record limit",
			       (unsigned long long)payload, (unsigned long long)(r->rec_off + p), RS_MAX_RECORD);
		if (p == 0 && !((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)) {
			/* '{', '[' and whitespace are positive fixints in msgpack,
			 * never the first byte of a stream: text, most likely JSONL */
			if (r->n_read == 0 && r->rec_off == 0 &&
			    (b == '{' || b == '[' || b == ' ' || b == '\t' || b == '\n' || b == '\r'))
				rs_die(r, "this looks like JSONL, not a record stream: run lbdpo-tokenize first");
			rs_die(r, "expected a map, found msgpack type byte 0x%02x", b);
		}
		if (!fill(r, p + hdr + payload))
			rs_die(r,
			       "truncated stream: object at byte offset %llu needs %llu bytes, stream ends after %llu",
			       (unsigned long long)(r->rec_off + p), (unsigned long long)(hdr + payload),
			       (unsigned long long)(r->len - r->start - p));
		p += hdr + payload;
		if (children) {
			/* every child takes at least one byte */
			if (children > RS_MAX_RECORD - p)
				rs_die(r, "declared element count %llu at byte offset %llu exceeds the record limit",
				       (unsigned long long)children, (unsigned long long)(r->rec_off + p - hdr));
			if (depth >= RS_MAX_DEPTH)
				rs_die(r, "nesting deeper than %d levels at byte offset %llu", RS_MAX_DEPTH,
				       (unsigned long long)(r->rec_off + p - hdr));
			stack[depth++] = children;
		}
	}
	return p;
}

static int key_is(const msgpack_object *k, const char *key)
{
	size_t n = strlen(key);
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, key, n);
}

static int key_cmp(const void *a, const void *b)
{
	const msgpack_object_str *x = *(const msgpack_object_str *const *)a, *y = *(const msgpack_object_str *const *)b;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return x->size ? memcmp(x->ptr, y->ptr, x->size) : 0;
}

/* Read the next top-level map into u; 0 at a clean end of stream. */
static int read_obj(rs_reader *r, msgpack_unpacked *u)
{
	r->start += r->rec_len;
	r->rec_len = 0;
	if (!fill(r, 1))
		return 0;
	r->rec_off = r->buf_off + r->start;
	r->index = r->n_read;
	size_t n = frame(r);
	size_t off = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(u, r->buf + r->start, n, &off);
	if (ret != MSGPACK_UNPACK_SUCCESS || off != n)
		rs_die(r, "corrupt msgpack object (%s)",
		       ret == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "parse error");
	r->rec_len = n;
	r->n_read++;
	/* Top-level keys: strings, no duplicates. Sorted copies of the keys make
	 * the check O(n log n): a record with 100k keys must not take minutes. */
	const msgpack_object_map *m = &u->data.via.map;
	xgrow((void **)&r->keys, &r->keys_cap, m->size, sizeof *r->keys);
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			rs_die(r, "map key %u is not a string", i);
		r->keys[i] = &k->via.str;
	}
	if (m->size > 1)
		qsort(r->keys, m->size, sizeof *r->keys, key_cmp);
	for (uint32_t i = 1; i < m->size; i++)
		if (!key_cmp(&r->keys[i - 1], &r->keys[i]))
			rs_die(r, "duplicate key '%.*s'", (int)(r->keys[i]->size > 200 ? 200 : r->keys[i]->size),
			       r->keys[i]->ptr);
	return 1;
}

static int kind_ok(const char *kinds, const char *k, size_t n)
{
	/* kinds is a comma-separated list */
	const char *p = kinds;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && !memcmp(p, k, n))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

static rs_reader *reader_new(FILE *fp, const char *name, int own)
{
	rs_reader *r = xcalloc(1, sizeof *r);
	r->fp = fp;
	r->own_fp = own;
	r->name = xstrdup(name);
	msgpack_unpacked_init(&r->rec);
	msgpack_unpacked_init(&r->hdr);
	r->next_live = live;
	live = r;
	return r;
}

rs_reader *rs_open_fp(FILE *fp, const char *name, const char *expect_kind)
{
	rs_reader *r = reader_new(fp, name, 0);
	if (!read_obj(r, &r->rec))
		die("%s: empty stream: no header (is this an lbdpo record stream?)", name);
	/* Keep the header's bytes: the read buffer moves on. */
	r->hdr_bytes = xmalloc(r->rec_len);
	memcpy(r->hdr_bytes, r->buf + r->start, r->rec_len);
	size_t off = 0;
	if (msgpack_unpack_next(&r->hdr, r->hdr_bytes, r->rec_len, &off) != MSGPACK_UNPACK_SUCCESS)
		rs_die(r, "corrupt header");
	const msgpack_object *h = &r->hdr.data;
	int64_t ver;
	if (!rs_get_i64(r, h, HDR_VERSION, &ver))
		rs_die(r, "not an lbdpo record stream: the header has no \"lbdpo\" version key");
	if (ver < 1 || ver > RS_FORMAT_VERSION)
		rs_die(r, "unsupported format version %lld (this build reads %d)", (long long)ver, RS_FORMAT_VERSION);
	const char *kind;
	size_t kn;
	rs_req(r, rs_get_str(r, h, HDR_KIND, &kind, &kn), HDR_KIND);
	if (expect_kind && !kind_ok(expect_kind, kind, kn))
		rs_die(r, "expected a stream of kind '%s', got '%.*s'", expect_kind, (int)kn, kind);
	const msgpack_object *hist = rs_get(h, HDR_HISTORY);
	if (hist && hist->type != MSGPACK_OBJECT_ARRAY)
		rs_die(r, "key 'history': expected an array");
	return r;
}

rs_reader *rs_open(const char *path, const char *expect_kind)
{
	FILE *fp = in_open(path);
	rs_reader *r = rs_open_fp(fp, in_name(path), expect_kind);
	r->own_fp = fp != stdin;
	return r;
}

rs_reader *rs_open_raw(const char *path)
{
	FILE *fp = in_open(path);
	rs_reader *r = reader_new(fp, in_name(path), fp != stdin);
	r->raw = 1;
	return r;
}

void rs_close(rs_reader *r)
{
	if (!r)
		return;
	for (rs_reader **p = &live; *p; p = &(*p)->next_live)
		if (*p == r) {
			*p = r->next_live;
			break;
		}
	if (r->own_fp)
		fclose(r->fp);
	msgpack_unpacked_destroy(&r->rec);
	msgpack_unpacked_destroy(&r->hdr);
	free(r->hdr_bytes);
	free(r->keys);
	free(r->buf);
	free(r->name);
	free(r);
}

void rs_close_all(void)
{
	while (live)
		rs_close(live);
}

const msgpack_object *rs_header(rs_reader *r) { return r->raw ? NULL : &r->hdr.data; }

int rs_next(rs_reader *r, const msgpack_object **rec)
{
	if (!read_obj(r, &r->rec))
		return 0;
	*rec = &r->rec.data;
	return 1;
}

int rs_scan(const char *path, uint64_t *nrec, char sha[65])
{
	int is_stdin = !path || !strcmp(path, "-");
	struct stat sb;
	off_t off = 0;
	FILE *fp;
	if (is_stdin) {
		/* a redirected file: read through a duplicate descriptor, then
		 * put the shared offset back for the real reading */
		int fd;
		if (fstat(0, &sb) || !S_ISREG(sb.st_mode) || (off = lseek(0, 0, SEEK_CUR)) < 0 || (fd = dup(0)) < 0)
			return -1;
		if (!(fp = fdopen(fd, "rb")))
			die("<stdin>: %s", strerror(errno));
	} else {
		if (stat(path, &sb) || !S_ISREG(sb.st_mode))
			return -1;
		fp = in_open(path);
	}
	sha256_ctx *c = sha ? sha256_new() : NULL;
	rs_reader *r = rs_open_fp(fp, in_name(path), NULL);
	const msgpack_object *rec;
	size_t n;
	const char *raw = rs_raw(r, &n);
	uint64_t k = 0;
	for (;;) {
		if (c)
			sha256_update(c, raw, n);
		if (!rs_next(r, &rec))
			break;
		raw = rs_raw(r, &n);
		k++;
	}
	rs_close(r);
	fclose(fp);
	if (is_stdin && lseek(0, off, SEEK_SET) < 0)
		die("<stdin>: cannot seek back: %s", strerror(errno));
	if (c)
		sha256_final_hex(c, sha);
	*nrec = k;
	return 0;
}

const char *rs_raw(rs_reader *r, size_t *len)
{
	*len = r->rec_len;
	return r->buf + r->start;
}

uint64_t rs_index(rs_reader *r) { return r->index; }
uint64_t rs_offset(rs_reader *r) { return r->rec_off; }
const char *rs_name(rs_reader *r) { return r->name; }

/* ---- typed access ---- */

static const char *type_name(msgpack_object_type t)
{
	switch (t) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "bool";
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return "unsigned int";
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative int";
	case MSGPACK_OBJECT_FLOAT32: return "float32";
	case MSGPACK_OBJECT_FLOAT64: return "float64";
	case MSGPACK_OBJECT_STR: return "str";
	case MSGPACK_OBJECT_ARRAY: return "array";
	case MSGPACK_OBJECT_MAP: return "map";
	case MSGPACK_OBJECT_BIN: return "bin";
	case MSGPACK_OBJECT_EXT: return "ext";
	}
	return "?";
}

const msgpack_object *rs_get(const msgpack_object *map, const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++)
		if (key_is(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	return NULL;
}

void rs_req(rs_reader *r, int present, const char *key)
{
	if (!present)
		rs_die(r, "missing key '%s'", key);
}

static LBDPO_NORETURN void wrong_type(rs_reader *r, const char *key, const char *want, const msgpack_object *o)
{
	rs_die(r, "key '%s': expected %s, got %s", key, want, type_name(o->type));
}

int rs_get_str(rs_reader *r, const msgpack_object *map, const char *key, const char **s, size_t *n)
{
	const msgpack_object *o = rs_get(map, key);
	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_STR)
		wrong_type(r, key, "str", o);
	*s = o->via.str.ptr;
	if (n)
		*n = o->via.str.size;
	return 1;
}

int rs_get_i64(rs_reader *r, const msgpack_object *map, const char *key, int64_t *v)
{
	const msgpack_object *o = rs_get(map, key);
	if (!o)
		return 0;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			rs_die(r, "key '%s': integer %llu out of range", key, (unsigned long long)o->via.u64);
		*v = (int64_t)o->via.u64;
	} else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
	} else {
		wrong_type(r, key, "int", o);
	}
	return 1;
}

int rs_get_f64(rs_reader *r, const msgpack_object *map, const char *key, double *v)
{
	const msgpack_object *o = rs_get(map, key);
	if (!o)
		return 0;
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; break;
	default: wrong_type(r, key, "number", o);
	}
	return 1;
}

int rs_get_ids(rs_reader *r, const msgpack_object *map, const char *key, uint32_t limit, uint32_t **ids, size_t *n,
	       size_t *cap)
{
	const msgpack_object *o = rs_get(map, key);
	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		wrong_type(r, key, "array of token ids", o);
	uint32_t m = o->via.array.size;
	xgrow((void **)ids, cap, m, sizeof **ids);
	for (uint32_t i = 0; i < m; i++) {
		const msgpack_object *e = &o->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			rs_die(r, "key '%s': element %u: expected unsigned int token id, got %s", key, i,
			       type_name(e->type));
		if (e->via.u64 > UINT32_MAX || (limit && e->via.u64 >= limit))
			rs_die(r, "key '%s': element %u: token id %llu out of range (vocabulary size %u)", key, i,
			       (unsigned long long)e->via.u64, limit);
		(*ids)[i] = (uint32_t)e->via.u64;
	}
	*n = m;
	return 1;
}

int rs_get_f32v(rs_reader *r, const msgpack_object *map, const char *key, float **v, size_t *n, size_t *cap)
{
	const msgpack_object *o = rs_get(map, key);
	if (!o)
		return 0;
	if (o->type != MSGPACK_OBJECT_BIN)
		wrong_type(r, key, "bin (little-endian f32 vector)", o);
	if (o->via.bin.size % 4)
		rs_die(r, "key '%s': f32 vector of %u bytes is not a multiple of 4", key, o->via.bin.size);
	size_t m = o->via.bin.size / 4;
	xgrow((void **)v, cap, m, sizeof **v);
	const unsigned char *p = (const unsigned char *)o->via.bin.ptr;
	for (size_t i = 0; i < m; i++) {
		uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
			     (uint32_t)p[4 * i + 3] << 24;
		memcpy(&(*v)[i], &u, 4);
	}
	*n = m;
	return 1;
}

/* ======================= writing ======================= */

typedef struct {
	char *key;
	size_t off; /* start of key+value in w->put */
	int dropped;
} put_entry;

struct rs_writer {
	outfile *out;        /* NULL for a memory writer */
	msgpack_sbuffer mem; /* a memory writer's bytes */
	msgpack_sbuffer rec, put;
	msgpack_packer rpk, ppk;
	const msgpack_object *in;
	put_entry *puts;
	size_t nputs, cap;
	int in_header;
};

rs_writer *rs_create(const char *path)
{
	rs_writer *w = xcalloc(1, sizeof *w);
	w->out = out_open(path);
	msgpack_sbuffer_init(&w->rec);
	msgpack_sbuffer_init(&w->put);
	msgpack_packer_init(&w->rpk, &w->rec, msgpack_sbuffer_write);
	msgpack_packer_init(&w->ppk, &w->put, msgpack_sbuffer_write);
	return w;
}

rs_writer *rs_create_mem(void)
{
	rs_writer *w = xcalloc(1, sizeof *w);
	msgpack_sbuffer_init(&w->mem);
	msgpack_sbuffer_init(&w->rec);
	msgpack_sbuffer_init(&w->put);
	msgpack_packer_init(&w->rpk, &w->rec, msgpack_sbuffer_write);
	msgpack_packer_init(&w->ppk, &w->put, msgpack_sbuffer_write);
	return w;
}

const char *rs_mem(rs_writer *w, size_t *n)
{
	*n = w->mem.size;
	return w->mem.data;
}

void rs_mem_clear(rs_writer *w) { msgpack_sbuffer_clear(&w->mem); }

void rs_write_raw(rs_writer *w, const char *buf, size_t n)
{
	if (!w->out) {
		msgpack_sbuffer_write(&w->mem, buf, n);
		return;
	}
	if (n && fwrite(buf, 1, n, w->out->fp) != n)
		die("%s: write error: %s", w->out->path ? w->out->path : "standard output", strerror(errno));
}

void rs_finish(rs_writer *w)
{
	if (w->out)
		out_close(w->out);
	msgpack_sbuffer_destroy(&w->mem);
	msgpack_sbuffer_destroy(&w->rec);
	msgpack_sbuffer_destroy(&w->put);
	for (size_t i = 0; i < w->nputs; i++)
		free(w->puts[i].key);
	free(w->puts);
	free(w);
}

void rs_rec_begin(rs_writer *w, const msgpack_object *in)
{
	if (in && in->type != MSGPACK_OBJECT_MAP)
		BUG("rs_rec_begin on a non-map");
	w->in = in;
	for (size_t i = 0; i < w->nputs; i++)
		free(w->puts[i].key);
	w->nputs = 0;
	msgpack_sbuffer_clear(&w->put);
}

static put_entry *find_put(rs_writer *w, const char *p, size_t n)
{
	for (size_t i = 0; i < w->nputs; i++)
		if (strlen(w->puts[i].key) == n && !memcmp(w->puts[i].key, p, n))
			return &w->puts[i];
	return NULL;
}

static put_entry *new_put(rs_writer *w, const char *key)
{
	if (find_put(w, key, strlen(key)))
		BUG("key '%s' put twice in one record", key);
	xgrow((void **)&w->puts, &w->cap, w->nputs + 1, sizeof *w->puts);
	put_entry *e = &w->puts[w->nputs++];
	e->key = xstrdup(key);
	e->off = w->put.size;
	e->dropped = 0;
	return e;
}

msgpack_packer *rs_put_key(rs_writer *w, const char *key)
{
	new_put(w, key);
	size_t n = strlen(key);
	msgpack_pack_str(&w->ppk, n);
	msgpack_pack_str_body(&w->ppk, key, n);
	return &w->ppk;
}

void rs_drop(rs_writer *w, const char *key) { new_put(w, key)->dropped = 1; }

static size_t put_end(rs_writer *w, size_t i) { return i + 1 < w->nputs ? w->puts[i + 1].off : w->put.size; }

void rs_rec_end(rs_writer *w)
{
	size_t count = 0;
	const msgpack_object_map *m = w->in ? &w->in->via.map : NULL;
	uint32_t nin = m ? m->size : 0;
	for (uint32_t i = 0; i < nin; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		put_entry *e = k->type == MSGPACK_OBJECT_STR ? find_put(w, k->via.str.ptr, k->via.str.size) : NULL;
		if (!e || !e->dropped)
			count++;
	}
	for (size_t i = 0; i < w->nputs; i++) {
		put_entry *e = &w->puts[i];
		if (!e->dropped && !(m && rs_get(w->in, e->key)))
			count++;
	}
	msgpack_sbuffer_clear(&w->rec);
	msgpack_pack_map(&w->rpk, count);
	for (uint32_t i = 0; i < nin; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		put_entry *e = k->type == MSGPACK_OBJECT_STR ? find_put(w, k->via.str.ptr, k->via.str.size) : NULL;
		if (!e) {
			msgpack_pack_object(&w->rpk, *k);
			msgpack_pack_object(&w->rpk, m->ptr[i].val);
		} else if (!e->dropped) {
			size_t j = (size_t)(e - w->puts);
			msgpack_sbuffer_write(&w->rec, w->put.data + e->off, put_end(w, j) - e->off);
		}
	}
	for (size_t i = 0; i < w->nputs; i++) {
		put_entry *e = &w->puts[i];
		if (!e->dropped && !(m && rs_get(w->in, e->key)))
			msgpack_sbuffer_write(&w->rec, w->put.data + e->off, put_end(w, i) - e->off);
	}
	rs_write_raw(w, w->rec.data, w->rec.size);
	w->in = NULL;
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void rs_header_begin(rs_writer *w, const msgpack_object *in, const char *kind, int argc, char **argv)
{
	rs_rec_begin(w, in);
	msgpack_pack_int(rs_put_key(w, HDR_VERSION), RS_FORMAT_VERSION);
	rs_put_cstr(w, HDR_KIND, kind);
	const msgpack_object *h = in ? rs_get(in, HDR_HISTORY) : NULL;
	uint32_t nh = h && h->type == MSGPACK_OBJECT_ARRAY ? h->via.array.size : 0;
	msgpack_packer *pk = rs_put_key(w, HDR_HISTORY);
	msgpack_pack_array(pk, nh + 1);
	for (uint32_t i = 0; i < nh; i++)
		msgpack_pack_object(pk, h->via.array.ptr[i]);
	msgpack_pack_map(pk, lbdpo_run_device ? 4 : 3);
	pack_cstr(pk, "program");
	pack_cstr(pk, progname());
	pack_cstr(pk, "version");
	pack_cstr(pk, LBDPO_VERSION);
	pack_cstr(pk, "args");
	msgpack_pack_array(pk, argc > 1 ? argc - 1 : 0);
	for (int i = 1; i < argc; i++)
		pack_cstr(pk, argv[i]);
	if (lbdpo_run_device) { /* the compute device: results may differ across devices in the last bits */
		pack_cstr(pk, "device");
		pack_cstr(pk, lbdpo_run_device);
	}
}

void rs_header_end(rs_writer *w) { rs_rec_end(w); }

void rs_put_str(rs_writer *w, const char *key, const char *s, size_t n)
{
	msgpack_packer *pk = rs_put_key(w, key);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void rs_put_cstr(rs_writer *w, const char *key, const char *s) { rs_put_str(w, key, s, strlen(s)); }
void rs_put_i64(rs_writer *w, const char *key, int64_t v) { msgpack_pack_int64(rs_put_key(w, key), v); }
void rs_put_f64(rs_writer *w, const char *key, double v) { msgpack_pack_double(rs_put_key(w, key), v); }

void rs_put_bool(rs_writer *w, const char *key, int v)
{
	msgpack_packer *pk = rs_put_key(w, key);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void rs_put_ids(rs_writer *w, const char *key, const uint32_t *ids, size_t n)
{
	msgpack_packer *pk = rs_put_key(w, key);
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++)
		msgpack_pack_uint32(pk, ids[i]);
}

void rs_put_f32v(rs_writer *w, const char *key, const float *v, size_t n)
{
	msgpack_packer *pk = rs_put_key(w, key);
	msgpack_pack_bin(pk, n * 4);
	unsigned char tmp[256];
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		for (; i < n && k + 4 <= sizeof tmp; i++, k += 4) {
			uint32_t u;
			memcpy(&u, &v[i], 4);
			tmp[k] = u & 0xff;
			tmp[k + 1] = u >> 8 & 0xff;
			tmp[k + 2] = u >> 16 & 0xff;
			tmp[k + 3] = u >> 24 & 0xff;
		}
		msgpack_pack_bin_body(pk, tmp, k);
	}
}
