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
static const uint8_t SEG_MAGIC[8] = {'L', 'B', 'D', 'P', 'O', 'R', 'C', 1};

typedef struct {
	uint8_t key[32];
	refcache_val v;
	int used;
} slot;

struct refcache {
	char *dir; /* DIR/<fp> */
	uint8_t fp[32];
	slot *tab; /* open addressing, cap a power of two */
	size_t cap, n;
	uint8_t *buf; /* entries not yet written */
	size_t buf_n, buf_cap;
	int fd;     /* our segment, -1 until the first flush */
	int broken; /* a write failed: stop writing, keep computing */
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

static void encode_header(const refcache *c, uint8_t h[REFCACHE_SEG_HEADER])
{
	memset(h, 0, REFCACHE_SEG_HEADER);
	memcpy(h, SEG_MAGIC, 8);
	put_u32(h + 8, REFCACHE_ENTRY);
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

static void load_segment(refcache *c, const char *path)
{
	size_t n;
	uint8_t *b = slurp(path, &n);
	if (!b)
		return;
	c->st.segments++;
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
	if (memcmp(b + 16, c->fp, 32)) {
		char want[65], got[65];
		fp_hex(c->fp, want);
		fp_hex(b + 16, got);
		die("%s: cache segment of model %.16s..., not of the reference %.16s...: refusing a "
		    "wrong-model cache",
		    path, got, want);
	}
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

refcache *refcache_open(const char *dir, const char *fp, const char *model_path)
{
	refcache *c = xcalloc(1, sizeof *c);
	c->fd = -1;
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
		if (strncmp(de->d_name, "seg-", 4) || l < 7 || strcmp(de->d_name + l - 3, ".rc"))
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
		load_segment(c, p);
		free(p);
		free(names[i]);
	}
	free(names);
	return c;
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
	if (!insert(c, key, v) || !c->dir)
		return;
	xgrow((void **)&c->buf, &c->buf_cap, c->buf_n + REFCACHE_ENTRY, 1);
	encode_entry(c, key, v, c->buf + c->buf_n);
	c->buf_n += REFCACHE_ENTRY;
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
		snprintf(path, len, "%s/seg-%s-%ld-%lld%09ld-%d.rc", c->dir, host, (long)getpid(), (long long)ts.tv_sec,
			 ts.tv_nsec, tries);
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
		c->st.written += c->buf_n / REFCACHE_ENTRY;
	free(tmp);
	c->buf_n = 0;
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
	free(c->buf);
	free(c->dir);
	free(c);
}

const refcache_stats *refcache_get_stats(const refcache *c) { return &c->st; }
