/* refcache.c — the reference-score cache store (design in refcache.h).
 *
 * On-disk format, all integers little-endian:
 *
 * segment header (REFCACHE_SEG_HEADER = 56 bytes)
 *   0  "LBDPORC" 0x01        magic + format version
 *   8  u32 entry size (96)
 *  12  u32 0
 *  16  fingerprint[32]       the model every entry of this segment belongs to
 *  48  sha256(bytes 0..48)[0..8]
 *
 * entry (REFCACHE_ENTRY = 96 bytes)
 *   0  u32 0x45435242 ("BRCE")  marker, lets a reader resynchronise after damage
 *   4  u32 96
 *   8  key[32]               record content hash (refcache_key)
 *  40  f64 chosen_logp, f64 rejected_logp, f64 prompt_logp, f64 prompt_entropy
 *  72  i32 chosen_n, i32 rejected_n, i32 prompt_n, u32 0
 *  88  sha256(fingerprint[32] || bytes 0..88)[0..8]
 *
 * The entry checksum covers the fingerprint the reader expects, so an entry
 * of another model can never pass, wherever its bytes end up.
 *
 * Per-token segments (refcache_open_tokens), DIR/<fp>/tok-*.rc: the same
 * header with magic "LBDPORT" 0x01 and entry size 0 (entries vary), then
 *
 * token entry (REFCACHE_TOK_ENTRY(n) = 56 + 4n bytes)
 *   0  u32 0x45545242 ("BRTE")
 *   4  u32 56 + 4n           entry size
 *   8  key[32]               refcache_key(prompt, completion, NULL)
 *  40  u32 n, u32 0
 *  48  f32 logp[n]           the completion's per-token log-probs
 *  48+4n sha256(fingerprint[32] || bytes 0..48+4n)[0..8]
 */
#define _GNU_SOURCE
#include "formats/refcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

#define TAG_NAME "LBDPO-REFCACHE"
#define ENTRY_MARK 0x45435242u
#define TOK_MARK 0x45545242u
static const uint8_t SEG_MAGIC[8] = {'L', 'B', 'D', 'P', 'O', 'R', 'C', 1};
static const uint8_t TOK_MAGIC[8] = {'L', 'B', 'D', 'P', 'O', 'R', 'T', 1};

typedef struct {
	uint8_t key[32];
	refcache_val v; /* per-token: v.chosen_n is the entry's n */
	size_t off;     /* per-token: its log-probs at arena + off */
	int used;
} slot;

struct refcache {
	char *dir; /* DIR/<fp> */
	uint8_t fp[32];
	slot *tab; /* open addressing, cap a power of two */
	size_t cap, n;
	uint8_t *buf; /* entries not yet written */
	size_t buf_n, buf_cap, buf_entries;
	int fd;       /* our segment, -1 until the first flush */
	int broken;   /* a write failed: stop writing, keep computing */
	int tokens;   /* per-token entries (tok-*.rc), not sequence scores (seg-*.rc) */
	float *arena; /* per-token: every entry's log-probs */
	size_t arena_n, arena_cap;
	refcache_stats st;
};

/* ---- little-endian fields ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static void put_f64(uint8_t *p, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	put_u64(p, v);
}
static double get_f64(const uint8_t *p)
{
	uint64_t v = get_u64(p);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 64 hex chars -> 32 bytes; 0 on success. */
static int unhex32(const char *hex, uint8_t out[32])
{
	for (int i = 0; i < 32; i++) {
		int a = hexval(hex[2 * i]), b = a < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (a < 0 || b < 0)
			return -1;
		out[i] = (uint8_t)(a << 4 | b);
	}
	return hex[64] ? -1 : 0;
}

/* First 8 bytes of sha256(a || b). */
static void sum8(const void *a, size_t na, const void *b, size_t nb, uint8_t out[8])
{
	char hex[65];
	sha256_ctx *c = sha256_new();
	sha256_update(c, a, na);
	sha256_update(c, b, nb);
	sha256_final_hex(c, hex);
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
}

void refcache_key(const uint32_t *prompt, size_t np, const uint32_t *chosen, size_t nc, const uint32_t *rejected,
		  size_t nr, uint8_t key[32])
{
	static const char domain[] = "lbdpo-refcache key v1";
	const uint32_t *parts[3] = {prompt, chosen, rejected};
	size_t lens[3] = {np, nc, nr};
	uint8_t b[8];
	sha256_ctx *c = sha256_new();
	sha256_update(c, domain, sizeof domain); /* with its NUL */
	for (int k = 0; k < 3; k++) {
		put_u64(b, lens[k]);
		sha256_update(c, b, 8);
		for (size_t i = 0; i < lens[k]; i++) {
			put_u32(b, parts[k][i]);
			sha256_update(c, b, 4);
		}
	}
	char hex[65];
	sha256_final_hex(c, hex);
	unhex32(hex, key);
}

/* ---- hash table ---- */

static size_t slot_of(const refcache *c, const uint8_t key[32])
{
	/* The key is a sha256: any 8 of its bytes are a uniform hash. */
	return (size_t)get_u64(key) & (c->cap - 1);
}

static slot *find(const refcache *c, const uint8_t key[32])
{
	for (size_t i = slot_of(c, key);; i = (i + 1) & (c->cap - 1)) {
		slot *s = &c->tab[i];
		if (!s->used || !memcmp(s->key, key, 32))
			return s;
	}
}

/* Insert unless present; returns 1 if inserted. */
static int insert(refcache *c, const uint8_t key[32], const refcache_val *v)
{
	if (2 * (c->n + 1) > c->cap) {
		slot *old = c->tab;
		size_t oc = c->cap;
		c->cap = oc ? 2 * oc : 1024;
		c->tab = xcalloc(c->cap, sizeof *c->tab);
		c->n = 0;
		for (size_t i = 0; i < oc; i++)
			if (old[i].used) {
				*find(c, old[i].key) = old[i];
				c->n++;
			}
		free(old);
	}
	slot *s = find(c, key);
	if (s->used)
		return 0;
	memcpy(s->key, key, 32);
	s->v = *v;
	s->used = 1;
	c->n++;
	return 1;
}

/* ---- entries ---- */

static void encode_entry(const refcache *c, const uint8_t key[32], const refcache_val *v, uint8_t e[REFCACHE_ENTRY])
{
	memset(e, 0, REFCACHE_ENTRY);
	put_u32(e, ENTRY_MARK);
	put_u32(e + 4, REFCACHE_ENTRY);
	memcpy(e + 8, key, 32);
	put_f64(e + 40, v->chosen_logp);
	put_f64(e + 48, v->rejected_logp);
	put_f64(e + 56, v->prompt_logp);
	put_f64(e + 64, v->prompt_entropy);
	put_u32(e + 72, (uint32_t)v->chosen_n);
	put_u32(e + 76, (uint32_t)v->rejected_n);
	put_u32(e + 80, (uint32_t)v->prompt_n);
	sum8(c->fp, 32, e, 88, e + 88);
}

/* 1 if e is a valid entry for this cache's model. */
static int decode_entry(const refcache *c, const uint8_t *e, uint8_t key[32], refcache_val *v)
{
	if (get_u32(e) != ENTRY_MARK || get_u32(e + 4) != REFCACHE_ENTRY || get_u32(e + 84) != 0)
		return 0;
	uint8_t s[8];
	sum8(c->fp, 32, e, 88, s);
	if (memcmp(s, e + 88, 8))
		return 0;
	memcpy(key, e + 8, 32);
	v->chosen_logp = get_f64(e + 40);
	v->rejected_logp = get_f64(e + 48);
	v->prompt_logp = get_f64(e + 56);
	v->prompt_entropy = get_f64(e + 64);
	v->chosen_n = (int32_t)get_u32(e + 72);
	v->rejected_n = (int32_t)get_u32(e + 76);
	v->prompt_n = (int32_t)get_u32(e + 80);
	return 1;
}

/* Insert a per-token entry unless its key is present; 1 if inserted. */
static int insert_tokens(refcache *c, const uint8_t key[32], const float *lp, int32_t n)
{
	refcache_val v = {.chosen_n = n};
	if (!insert(c, key, &v))
		return 0;
	xgrow((void **)&c->arena, &c->arena_cap, c->arena_n + (size_t)n + 1, sizeof *c->arena);
	memcpy(c->arena + c->arena_n, lp, sizeof *lp * (size_t)n);
	find(c, key)->off = c->arena_n;
	c->arena_n += (size_t)n;
	return 1;
}

static void encode_tok_entry(const refcache *c, const uint8_t key[32], const float *lp, int32_t n, uint8_t *e)
{
	const size_t len = REFCACHE_TOK_ENTRY(n);
	memset(e, 0, len);
	put_u32(e, TOK_MARK);
	put_u32(e + 4, (uint32_t)len);
	memcpy(e + 8, key, 32);
	put_u32(e + 40, (uint32_t)n);
	for (int32_t i = 0; i < n; i++) {
		uint32_t b;
		memcpy(&b, &lp[i], 4);
		put_u32(e + 48 + 4 * (size_t)i, b);
	}
	sum8(c->fp, 32, e, len - 8, e + len - 8);
}

/* The size of the valid per-token entry at e (avail bytes there), 0 if
 * none; key, *n and lp (room for *n floats, or NULL to check only) filled. */
static size_t decode_tok_entry(const refcache *c, const uint8_t *e, size_t avail, uint8_t key[32], int32_t *n,
			       float *lp)
{
	if (avail < REFCACHE_TOK_ENTRY(0) || get_u32(e) != TOK_MARK || get_u32(e + 44) != 0)
		return 0;
	const uint32_t nn = get_u32(e + 40);
	const size_t len = get_u32(e + 4);
	if (nn > (1u << 24) || len != REFCACHE_TOK_ENTRY(nn) || len > avail)
		return 0;
	uint8_t s[8];
	sum8(c->fp, 32, e, len - 8, s);
	if (memcmp(s, e + len - 8, 8))
		return 0;
	memcpy(key, e + 8, 32);
	*n = (int32_t)nn;
	for (uint32_t i = 0; lp && i < nn; i++) {
		uint32_t b = get_u32(e + 48 + 4 * (size_t)i);
		memcpy(&lp[i], &b, 4);
	}
	return len;
}

static void encode_header(const refcache *c, uint8_t h[REFCACHE_SEG_HEADER])
{
	memset(h, 0, REFCACHE_SEG_HEADER);
	memcpy(h, c->tokens ? TOK_MAGIC : SEG_MAGIC, 8);
	put_u32(h + 8, c->tokens ? 0 : REFCACHE_ENTRY);
	memcpy(h + 16, c->fp, 32);
	sum8(h, 48, NULL, 0, h + 48);
}

static void fp_hex(const uint8_t fp[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", fp[i]);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		warning("%s: cannot open cache segment: %s (skipped)", path, strerror(errno));
		return NULL;
	}
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0, k;
	do {
		xgrow((void **)&buf, &cap, len + 65536, 1);
		k = fread(buf + len, 1, cap - len, f);
		len += k;
	} while (k > 0);
	if (ferror(f)) {
		warning("%s: read error: %s (segment skipped)", path, strerror(errno));
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*n = len;
	return buf;
}

/* Die unless the segment header h declares this cache's model. */
static void check_model(const refcache *c, const char *path, const uint8_t *h)
{
	if (memcmp(h + 16, c->fp, 32)) {
		char want[65], got[65];
		fp_hex(c->fp, want);
		fp_hex(h + 16, got);
		die("%s: cache segment of model %.16s..., not of the reference %.16s...: refusing a "
		    "wrong-model cache",
		    path, got, want);
	}
}

/* The bytes of a segment file, counted as scanned; NULL if unreadable. */
static uint8_t *read_segment(refcache *c, const char *path, size_t *n)
{
	uint8_t *b = slurp(path, n);
	if (b)
		c->st.segments++;
	return b;
}

static void load_segment(refcache *c, const char *path)
{
	size_t n;
	uint8_t *b = read_segment(c, path, &n);
	if (!b)
		return;
	uint8_t h[8];
	/* A header shorter than its size or failing its checksum: the writer
	 * was killed inside its first write(); there is nothing to read. */
	if (n < REFCACHE_SEG_HEADER || memcmp(b, SEG_MAGIC, 8)) {
		if (n)
			c->st.corrupt++;
		free(b);
		return;
	}
	sum8(b, 48, NULL, 0, h);
	if (memcmp(h, b + 48, 8) || get_u32(b + 8) != REFCACHE_ENTRY) {
		c->st.corrupt++;
		free(b);
		return;
	}
	check_model(c, path, b);
	size_t p = REFCACHE_SEG_HEADER;
	int in_bad = 0;
	while (p + REFCACHE_ENTRY <= n) {
		uint8_t key[32];
		refcache_val v;
		if (decode_entry(c, b + p, key, &v)) {
			if (insert(c, key, &v))
				c->st.loaded++;
			else
				c->st.duplicates++;
			p += REFCACHE_ENTRY;
			in_bad = 0;
		} else {
			/* Damaged bytes: count the run once, resynchronise on the
			 * next byte offset where a whole valid entry starts. */
			if (!in_bad)
				c->st.corrupt++;
			in_bad = 1;
			p++;
		}
	}
	if (p < n && !in_bad)
		c->st.corrupt++; /* a torn tail */
	free(b);
}

/* 1 if the avail bytes at e can be the start of a token entry cut short by
 * a killed writer: nothing else is ever at a segment's end. */
static int torn_tail(const uint8_t *e, size_t avail)
{
	if (avail < 8)
		return 1;
	if (get_u32(e) != TOK_MARK)
		return 0;
	size_t len = get_u32(e + 4);
	return len > avail && (avail < 44 || len == REFCACHE_TOK_ENTRY(get_u32(e + 40)));
}

/* A per-token segment refuses damage instead of skipping it: each flush is
 * one append, so a killed writer leaves at most a torn tail (tolerated and
 * counted); a failed checksum anywhere else is a damaged file, named with
 * the byte offset of the entry. */
static void load_tok_segment(refcache *c, const char *path)
{
	size_t n;
	uint8_t *b = read_segment(c, path, &n);
	if (!b)
		return;
	if (n < REFCACHE_SEG_HEADER) { /* killed inside its first write() */
		if (n)
			c->st.corrupt++;
		free(b);
		return;
	}
	uint8_t h[8];
	sum8(b, 48, NULL, 0, h);
	if (memcmp(b, TOK_MAGIC, 8) || memcmp(h, b + 48, 8) || get_u32(b + 8) != 0)
		die("%s: byte 0: damaged per-token cache segment header: refusing a corrupt cache (remove the file "
		    "to score its rollouts again)",
		    path);
	check_model(c, path, b);
	float *lp = NULL;
	size_t lcap = 0;
	for (size_t p = REFCACHE_SEG_HEADER; p < n;) {
		uint8_t key[32];
		int32_t k;
		uint32_t want = n - p >= 44 ? get_u32(b + p + 40) : 0;
		xgrow((void **)&lp, &lcap, (want <= (1u << 24) ? want : 0) + 1, sizeof *lp);
		size_t len = decode_tok_entry(c, b + p, n - p, key, &k, lp);
		if (len) {
			if (insert_tokens(c, key, lp, k))
				c->st.loaded++;
			else
				c->st.duplicates++;
			p += len;
			continue;
		}
		if (!torn_tail(b + p, n - p))
			die("%s: byte %zu: damaged per-token cache entry: refusing a corrupt cache (remove the file to "
			    "score its rollouts again)",
			    path, p);
		c->st.corrupt++;
		break;
	}
	free(lp);
	free(b);
}

/* Write a small file atomically (tmp + rename); failures are harmless here. */
static void write_small(const char *path, const char *text)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return;
	int ok = fputs(text, f) >= 0;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, path) != 0)
		unlink(tmp);
}

static void ensure_root(const char *dir)
{
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		die("%s: cannot create cache directory: %s", dir, strerror(errno));
	struct stat sb;
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		die("%s: not a directory", dir);
	size_t len = strlen(dir) + sizeof TAG_NAME + 2;
	char *tag = xmalloc(len);
	snprintf(tag, len, "%s/%s", dir, TAG_NAME);
	if (access(tag, F_OK) != 0) {
		/* Only an empty directory (or one another process is making a
		 * cache root right now) becomes a cache: never adopt a directory
		 * of other files, e.g. one model's subdirectory given as DIR. */
		DIR *d = opendir(dir);
		if (!d)
			die("%s: cannot read: %s", dir, strerror(errno));
		struct dirent *de;
		while ((de = readdir(d))) {
			const char *s = de->d_name;
			if (!strcmp(s, ".") || !strcmp(s, "..") || !strncmp(s, TAG_NAME, strlen(TAG_NAME)))
				continue;
			closedir(d);
			die("%s: not an lbdpo-refcache directory (no %s, not empty): refusing to use it", dir,
			    TAG_NAME);
		}
		closedir(d);
		write_small(tag, "lbdpo-refcache cache directory, format 1; see lbdpo-refcache(1)\n");
		if (access(tag, F_OK) != 0)
			die("%s: cannot create: %s", tag, strerror(errno));
	}
	free(tag);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static refcache *open_kind(const char *dir, const char *fp, const char *model_path, int tokens)
{
	refcache *c = xcalloc(1, sizeof *c);
	c->fd = -1;
	c->tokens = tokens;
	const char *prefix = tokens ? "tok-" : "seg-";
	if (strlen(fp) != 64 || unhex32(fp, c->fp))
		die("refcache: bad model fingerprint '%s'", fp);
	if (!dir)
		return c; /* memory only */
	ensure_root(dir);
	size_t len = strlen(dir) + 70;
	c->dir = xmalloc(len);
	snprintf(c->dir, len, "%s/%s", dir, fp);
	if (mkdir(c->dir, 0777) != 0 && errno != EEXIST)
		die("%s: cannot create: %s", c->dir, strerror(errno));
	char *mp = xmalloc(len + 8);
	snprintf(mp, len + 8, "%s/model", c->dir);
	if (access(mp, F_OK) != 0) {
		char text[4200];
		snprintf(text, sizeof text, "fingerprint %s\npath %s\n", fp, model_path ? model_path : "");
		write_small(mp, text);
	}
	free(mp);

	DIR *d = opendir(c->dir);
	if (!d)
		die("%s: cannot read: %s", c->dir, strerror(errno));
	/* Sorted names: the same files load in the same order everywhere, so
	 * which of two duplicate entries wins never depends on readdir. */
	char **names = NULL;
	size_t nn = 0, ncap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (strncmp(de->d_name, prefix, 4) || l < 7 || strcmp(de->d_name + l - 3, ".rc"))
			continue;
		xgrow((void **)&names, &ncap, nn + 1, sizeof *names);
		names[nn++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (nn)
		qsort(names, nn, sizeof *names, cmp_str);
	for (size_t i = 0; i < nn; i++) {
		size_t pl = strlen(c->dir) + strlen(names[i]) + 2;
		char *p = xmalloc(pl);
		snprintf(p, pl, "%s/%s", c->dir, names[i]);
		if (tokens)
			load_tok_segment(c, p);
		else
			load_segment(c, p);
		free(p);
		free(names[i]);
	}
	free(names);
	return c;
}

refcache *refcache_open(const char *dir, const char *fp, const char *model_path)
{
	return open_kind(dir, fp, model_path, 0);
}

refcache *refcache_open_tokens(const char *dir, const char *fp, const char *model_path)
{
	return open_kind(dir, fp, model_path, 1);
}

const float *refcache_get_tokens(const refcache *c, const uint8_t key[32], int32_t *n)
{
	if (!c->tokens)
		BUG("refcache: per-token lookup in a sequence-score cache");
	if (!c->cap)
		return NULL;
	const slot *s = find(c, key);
	if (!s->used)
		return NULL;
	*n = s->v.chosen_n;
	return c->arena + s->off;
}

void refcache_put_tokens(refcache *c, const uint8_t key[32], const float *lp, int32_t n)
{
	if (!c->tokens)
		BUG("refcache: per-token entry in a sequence-score cache");
	if (!insert_tokens(c, key, lp, n) || !c->dir)
		return;
	const size_t len = REFCACHE_TOK_ENTRY(n);
	xgrow((void **)&c->buf, &c->buf_cap, c->buf_n + len, 1);
	encode_tok_entry(c, key, lp, n, c->buf + c->buf_n);
	c->buf_n += len;
	c->buf_entries++;
}

int refcache_get(const refcache *c, const uint8_t key[32], refcache_val *v)
{
	if (!c->cap)
		return 0;
	const slot *s = find(c, key);
	if (!s->used)
		return 0;
	*v = s->v;
	return 1;
}

void refcache_put(refcache *c, const uint8_t key[32], const refcache_val *v)
{
	if (c->tokens)
		BUG("refcache: sequence scores in a per-token cache");
	if (!insert(c, key, v) || !c->dir)
		return;
	xgrow((void **)&c->buf, &c->buf_cap, c->buf_n + REFCACHE_ENTRY, 1);
	encode_entry(c, key, v, c->buf + c->buf_n);
	c->buf_n += REFCACHE_ENTRY;
	c->buf_entries++;
}

static int create_segment(refcache *c)
{
	char host[256] = "host";
	gethostname(host, sizeof host - 1);
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == '.')
			*p = '_';
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	size_t len = strlen(c->dir) + strlen(host) + 96;
	char *path = xmalloc(len);
	for (int tries = 0; tries < 100; tries++) {
		snprintf(path, len, "%s/%s-%s-%ld-%lld%09ld-%d.rc", c->dir, c->tokens ? "tok" : "seg", host,
			 (long)getpid(), (long long)ts.tv_sec, ts.tv_nsec, tries);
		c->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
		if (c->fd >= 0 || errno != EEXIST)
			break;
	}
	if (c->fd < 0) {
		warning("%s: cannot create cache segment: %s (results will not be cached)", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

void refcache_flush(refcache *c)
{
	if (!c || !c->buf_n || c->broken)
		return;
	size_t hn = 0;
	uint8_t *out = c->buf;
	uint8_t *tmp = NULL;
	if (c->fd < 0) {
		if (create_segment(c)) {
			c->broken = 1;
			return;
		}
		/* Header and first entries in one write(): a segment is never
		 * left with a header only, and never entries without one. */
		hn = REFCACHE_SEG_HEADER;
		tmp = xmalloc(hn + c->buf_n);
		encode_header(c, tmp);
		memcpy(tmp + hn, c->buf, c->buf_n);
		out = tmp;
	}
	size_t total = hn + c->buf_n, done = 0;
	while (done < total) {
		ssize_t k = write(c->fd, out + done, total - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			/* Whatever was written is a torn tail readers skip. */
			warning("cache segment write failed: %s (results will not be cached)",
				k < 0 ? strerror(errno) : "short write");
			c->broken = 1;
			break;
		}
		done += (size_t)k;
	}
	if (!c->broken)
		c->st.written += c->buf_entries;
	free(tmp);
	c->buf_n = 0;
	c->buf_entries = 0;
}

void refcache_close(refcache *c)
{
	if (!c)
		return;
	refcache_flush(c);
	if (c->fd >= 0) {
		if (fdatasync(c->fd) != 0 && !c->broken)
			warning("cache segment sync failed: %s", strerror(errno));
		close(c->fd);
	}
	free(c->tab);
	free(c->arena);
	free(c->buf);
	free(c->dir);
	free(c);
}

const refcache_stats *refcache_get_stats(const refcache *c) { return &c->st; }
