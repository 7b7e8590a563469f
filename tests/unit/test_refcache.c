/* test_refcache.c — the reference-score cache store: round trip, torn and
 * corrupt entries never read back, wrong-model segments refused, concurrent
 * writers from several processes. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include "tests/unit/expect_die.h"
#include "formats/refcache.h"
#include "base/util.h"

static const char FP_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char FP_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static char *made[8];
static int n_made;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

/* Remove this test's directories at exit (also after an expected die()). */
static void cleanup(void)
{
	for (int i = 0; i < n_made; i++)
		nftw(made[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir(void)
{
	char *t = strdup("/tmp/lbdpo-rc-XXXXXX");
	cr_assert_not_null(mkdtemp(t));
	if (!n_made)
		atexit(cleanup);
	if (n_made < 8)
		made[n_made++] = t;
	return t;
}

/* A cache root inside a fresh temporary directory (the root itself must be
 * new or empty). */
static char *newroot(void)
{
	char *t = tmpdir();
	char *r = malloc(strlen(t) + 8);
	sprintf(r, "%s/cache", t);
	return r;
}

static void mkkey(int i, uint8_t key[32])
{
	uint32_t p[3] = {1, (uint32_t)i, 7}, c[2] = {(uint32_t)i, 9}, r[1] = {(uint32_t)i * 3u};
	refcache_key(p, 3, c, 2, r, 1, key);
}

static refcache_val mkval(int i)
{
	refcache_val v = {.chosen_logp = -1.0 / (i + 3),
			  .rejected_logp = -3.25 * i - 0.1,
			  .prompt_logp = -2.0 - i * 1e-7,
			  .prompt_entropy = 4.5 + i,
			  .chosen_n = 2,
			  .rejected_n = 1,
			  .prompt_n = 3};
	return v;
}

static int same(const refcache_val *a, const refcache_val *b)
{
	return !memcmp(&a->chosen_logp, &b->chosen_logp, 8) && !memcmp(&a->rejected_logp, &b->rejected_logp, 8) &&
	       !memcmp(&a->prompt_logp, &b->prompt_logp, 8) && !memcmp(&a->prompt_entropy, &b->prompt_entropy, 8) &&
	       a->chosen_n == b->chosen_n && a->rejected_n == b->rejected_n && a->prompt_n == b->prompt_n;
}

static void fill(const char *root, const char *fp, int from, int to)
{
	refcache *c = refcache_open(root, fp, "model-x");
	for (int i = from; i < to; i++) {
		uint8_t k[32];
		refcache_val v = mkval(i);
		mkkey(i, k);
		refcache_put(c, k, &v);
		if (i % 7 == 0)
			refcache_flush(c);
	}
	refcache_close(c);
}

/* Count of keys in [from, to) found with exactly their values. */
static int count_ok(refcache *c, int from, int to)
{
	int ok = 0;
	for (int i = from; i < to; i++) {
		uint8_t k[32];
		refcache_val v, w = mkval(i);
		mkkey(i, k);
		if (refcache_get(c, k, &v)) {
			cr_assert(same(&v, &w), "entry %d read back with other values", i);
			ok++;
		}
	}
	return ok;
}

/* The one segment file in root/fp whose name starts with prefix. */
static char *segment_of(const char *root, const char *fp, const char *prefix)
{
	char d[512];
	snprintf(d, sizeof d, "%s/%s", root, fp);
	DIR *dd = opendir(d);
	cr_assert_not_null(dd);
	struct dirent *de;
	char *found = NULL;
	int n = 0;
	while ((de = readdir(dd)))
		if (!strncmp(de->d_name, prefix, 4)) {
			found = malloc(strlen(d) + strlen(de->d_name) + 2);
			sprintf(found, "%s/%s", d, de->d_name);
			n++;
		}
	closedir(dd);
	cr_assert_eq(n, 1, "expected one %s segment, found %d", prefix, n);
	return found;
}

static char *the_segment(const char *root, const char *fp) { return segment_of(root, fp, "seg-"); }
static char *the_tok_segment(const char *root, const char *fp) { return segment_of(root, fp, "tok-"); }

static off_t fsize(const char *p)
{
	struct stat sb;
	cr_assert_eq(stat(p, &sb), 0);
	return sb.st_size;
}

Test(refcache, round_trip_exact_values)
{
	char *root = newroot();
	fill(root, FP_A, 0, 50);
	refcache *c = refcache_open(root, FP_A, "model-x");
	cr_assert_eq(count_ok(c, 0, 50), 50);
	cr_assert_eq(count_ok(c, 50, 60), 0);
	cr_assert_eq(refcache_get_stats(c)->loaded, 50);
	cr_assert_eq(refcache_get_stats(c)->corrupt, 0);
	refcache_close(c);
	/* Another model's view of the same root holds nothing. */
	c = refcache_open(root, FP_B, "model-y");
	cr_assert_eq(count_ok(c, 0, 50), 0);
	refcache_close(c);
	char *seg = the_segment(root, FP_A);
	cr_assert_eq(fsize(seg), REFCACHE_SEG_HEADER + 50 * REFCACHE_ENTRY);
}

Test(refcache, key_depends_on_the_split)
{
	uint32_t ids[4] = {5, 6, 7, 8};
	uint8_t a[32], b[32], c[32];
	refcache_key(ids, 2, ids + 2, 1, ids + 3, 1, a);
	refcache_key(ids, 1, ids + 1, 2, ids + 3, 1, b);
	refcache_key(ids, 2, ids + 3, 1, ids + 2, 1, c); /* chosen <-> rejected */
	cr_assert(memcmp(a, b, 32));
	cr_assert(memcmp(a, c, 32));
}

Test(refcache, torn_tail_is_ignored)
{
	char *root = newroot();
	fill(root, FP_A, 0, 10);
	char *seg = the_segment(root, FP_A);
	/* Cut the last entry in the middle, as a SIGKILL inside write() could. */
	cr_assert_eq(truncate(seg, REFCACHE_SEG_HEADER + 9 * REFCACHE_ENTRY + 40), 0);
	refcache *c = refcache_open(root, FP_A, "m");
	cr_assert_eq(count_ok(c, 0, 9), 9);
	cr_assert_eq(count_ok(c, 9, 10), 0);
	cr_assert_eq(refcache_get_stats(c)->corrupt, 1);
	refcache_close(c);
}

static void poke(const char *path, off_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
	close(fd);
}

Test(refcache, flipped_bit_is_never_read_back)
{
	char *root = newroot();
	fill(root, FP_A, 0, 10);
	char *seg = the_segment(root, FP_A);
	/* Flip one bit in the chosen_logp of entry 3 (entry offset 40). */
	int fd = open(seg, O_RDWR);
	off_t off = REFCACHE_SEG_HEADER + 3 * REFCACHE_ENTRY + 44;
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
	refcache *c = refcache_open(root, FP_A, "m");
	uint8_t k[32];
	refcache_val v;
	mkkey(3, k);
	cr_assert_eq(refcache_get(c, k, &v), 0, "a corrupt entry was read back");
	cr_assert_eq(count_ok(c, 0, 10), 9); /* the rest, after resynchronising */
	cr_assert_eq(refcache_get_stats(c)->corrupt, 1);
	refcache_close(c);
}

Test(refcache, zeroed_block_and_damaged_length_resynchronise)
{
	char *root = newroot();
	fill(root, FP_A, 0, 20);
	char *seg = the_segment(root, FP_A);
	char zero[REFCACHE_ENTRY * 2] = {0};
	poke(seg, REFCACHE_SEG_HEADER + 4 * REFCACHE_ENTRY, zero, sizeof zero); /* entries 4, 5 */
	unsigned char bad = 0x61;
	poke(seg, REFCACHE_SEG_HEADER + 10 * REFCACHE_ENTRY + 4, &bad, 1); /* length of entry 10 */
	refcache *c = refcache_open(root, FP_A, "m");
	cr_assert_eq(count_ok(c, 0, 20), 17);
	cr_assert_eq(refcache_get_stats(c)->corrupt, 2);
	refcache_close(c);
}

Test(refcache, foreign_entry_fails_its_checksum)
{
	/* Bytes of a valid entry of model B appended to model A's segment:
	 * the checksum covers the fingerprint, so A never reads it. */
	char *root = newroot();
	fill(root, FP_A, 0, 3);
	fill(root, FP_B, 100, 101);
	char *sa = the_segment(root, FP_A), *sb = the_segment(root, FP_B);
	char e[REFCACHE_ENTRY];
	int fd = open(sb, O_RDONLY);
	cr_assert_eq(pread(fd, e, sizeof e, REFCACHE_SEG_HEADER), (ssize_t)sizeof e);
	close(fd);
	poke(sa, fsize(sa), e, sizeof e);
	refcache *c = refcache_open(root, FP_A, "m");
	cr_assert_eq(count_ok(c, 0, 3), 3);
	cr_assert_eq(count_ok(c, 100, 101), 0);
	cr_assert_eq(refcache_get_stats(c)->corrupt, 1);
	refcache_close(c);
}

Test(refcache, wrong_model_segment_is_refused)
{
	char *root = newroot();
	fill(root, FP_A, 0, 3);
	fill(root, FP_B, 0, 1);
	char *sa = the_segment(root, FP_A);
	char dst[512];
	snprintf(dst, sizeof dst, "%s/%s/seg-copied.rc", root, FP_B);
	cr_assert_eq(link(sa, dst), 0);
	lbdpo_quiet = 1;
	EXPECT_DIE(1, "cache segment of model aaaaaaaaaaaaaaaa..., not of the reference bbbbbbbbbbbbbbbb...",
		   refcache_open(root, FP_B, "m"));
}

Test(refcache, non_cache_directory_is_refused)
{
	char *t = tmpdir();
	char f[512];
	snprintf(f, sizeof f, "%s/precious.txt", t);
	FILE *fp = fopen(f, "w");
	fputs("x", fp);
	fclose(fp);
	EXPECT_DIE(1, "not an lbdpo-refcache directory", refcache_open(t, FP_A, "m"));
}

Test(refcache, concurrent_writers)
{
	char *root = newroot();
	/* Create the root first so children race only on segments. */
	refcache_close(refcache_open(root, FP_A, "m"));
	enum { NPROC = 4, PER = 300 };
	pid_t pids[NPROC];
	for (int p = 0; p < NPROC; p++) {
		pids[p] = fork();
		cr_assert(pids[p] >= 0);
		if (!pids[p]) {
			/* Overlapping ranges: every key written by two processes. */
			fill(root, FP_A, p * PER / 2, p * PER / 2 + PER);
			_exit(0);
		}
	}
	for (int p = 0; p < NPROC; p++) {
		int st;
		waitpid(pids[p], &st, 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d: %s %d", p,
			  WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	refcache *c = refcache_open(root, FP_A, "m");
	int total = (NPROC - 1) * PER / 2 + PER;
	cr_assert_eq(count_ok(c, 0, total), total);
	cr_assert_eq(refcache_get_stats(c)->corrupt, 0);
	/* One segment per writer that had something new to write: a writer
	 * that opens after the others wrote its whole range writes nothing. */
	cr_assert(refcache_get_stats(c)->segments >= 1 && refcache_get_stats(c)->segments <= NPROC, "segments: %zu",
		  (size_t)refcache_get_stats(c)->segments);
	refcache_close(c);
}

Test(refcache, killed_writer_leaves_only_whole_entries)
{
	char *root = newroot();
	refcache_close(refcache_open(root, FP_A, "m"));
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (!pid) {
		refcache *c = refcache_open(root, FP_A, "m");
		for (int i = 0;; i++) {
			uint8_t k[32];
			refcache_val v = mkval(i % 100000);
			mkkey(i % 100000, k);
			refcache_put(c, k, &v);
			refcache_flush(c);
		}
	}
	usleep(200000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	refcache *c = refcache_open(root, FP_A, "m");
	int n = count_ok(c, 0, 100000); /* asserts every value read is exact */
	cr_assert_gt(n, 0);
	refcache_close(c);
}

/* ---- per-token entries (lbdpo-refcache on rollouts) ---- */

/* Rollout i: prompt {1, i}, completion of 1 + i % 5 tokens. */
static int tok_n(int i) { return 1 + i % 5; }
static void tok_key(int i, uint8_t key[32])
{
	uint32_t p[2] = {1, (uint32_t)i}, c[5] = {(uint32_t)i, 3, 4, 5, 6};
	refcache_key(p, 2, c, (size_t)tok_n(i), NULL, 0, key);
}
static float tok_val(int i, int t) { return -1.0f / (float)(i + 3) - (float)t * 0.3f; }

static void tok_fill(const char *root, const char *fp, int from, int to)
{
	refcache *c = refcache_open_tokens(root, fp, "model-x");
	for (int i = from; i < to; i++) {
		uint8_t k[32];
		float v[5];
		for (int t = 0; t < tok_n(i); t++)
			v[t] = tok_val(i, t);
		tok_key(i, k);
		refcache_put_tokens(c, k, v, tok_n(i));
		if (i % 7 == 0)
			refcache_flush(c);
	}
	refcache_close(c);
}

/* Entries in [from, to) found, each with exactly its values. */
static int tok_count(refcache *c, int from, int to)
{
	int ok = 0;
	for (int i = from; i < to; i++) {
		uint8_t k[32];
		int32_t n;
		tok_key(i, k);
		const float *v = refcache_get_tokens(c, k, &n);
		if (!v)
			continue;
		cr_assert_eq(n, tok_n(i), "entry %d: %d log-probs", i, n);
		for (int t = 0; t < n; t++) {
			float w = tok_val(i, t);
			cr_assert(!memcmp(&v[t], &w, 4), "entry %d token %d read back as another value", i, t);
		}
		ok++;
	}
	return ok;
}

/* Byte offset of entry i of a segment written by tok_fill from 0. */
static size_t tok_off(int i)
{
	size_t off = REFCACHE_SEG_HEADER;
	for (int j = 0; j < i; j++)
		off += REFCACHE_TOK_ENTRY(tok_n(j));
	return off;
}

Test(refcache, tokens_round_trip_apart_from_sequence_scores)
{
	char *root = newroot();
	tok_fill(root, FP_A, 0, 40);
	fill(root, FP_A, 0, 10); /* sequence scores in the same directory */
	refcache *c = refcache_open_tokens(root, FP_A, "model-x");
	cr_assert_eq(tok_count(c, 0, 40), 40);
	cr_assert_eq(tok_count(c, 40, 50), 0);
	cr_assert_eq(refcache_get_stats(c)->loaded, 40);
	cr_assert_eq(refcache_get_stats(c)->segments, 1);
	refcache_close(c);
	c = refcache_open(root, FP_A, "model-x"); /* the sequence view: its 10 only */
	cr_assert_eq(refcache_get_stats(c)->loaded, 10);
	cr_assert_eq(count_ok(c, 0, 10), 10);
	refcache_close(c);
	c = refcache_open_tokens(root, FP_B, "model-y");
	cr_assert_eq(tok_count(c, 0, 40), 0);
	refcache_close(c);
	cr_assert_eq(fsize(the_tok_segment(root, FP_A)), (off_t)tok_off(40));
}

Test(refcache, tokens_torn_tail_is_skipped)
{
	char *root = newroot();
	tok_fill(root, FP_A, 0, 10);
	char *seg = the_tok_segment(root, FP_A);
	/* Cut the last entry short, as a kill inside write() could. */
	cr_assert_eq(truncate(seg, (off_t)tok_off(9) + 30), 0);
	refcache *c = refcache_open_tokens(root, FP_A, "m");
	cr_assert_eq(tok_count(c, 0, 9), 9);
	cr_assert_eq(tok_count(c, 9, 10), 0);
	cr_assert_eq(refcache_get_stats(c)->corrupt, 1);
	refcache_close(c);
	cr_assert_eq(truncate(seg, (off_t)tok_off(9) + 5), 0); /* inside the marker and length */
	c = refcache_open_tokens(root, FP_A, "m");
	cr_assert_eq(tok_count(c, 0, 10), 9);
	refcache_close(c);
}

Test(refcache, tokens_flipped_byte_is_refused_with_its_offset)
{
	char *root = newroot();
	tok_fill(root, FP_A, 0, 10);
	char *seg = the_tok_segment(root, FP_A);
	unsigned char b = 0x5a;
	poke(seg, (off_t)tok_off(3) + 50, &b, 1); /* a log-prob of entry 3 */
	char want[64];
	snprintf(want, sizeof want, "byte %zu: damaged per-token cache entry", tok_off(3));
	lbdpo_quiet = 1;
	EXPECT_DIE(1, want, refcache_open_tokens(root, FP_A, "m"));
}

Test(refcache, tokens_damaged_last_entry_is_refused)
{
	/* Whole-length but failing its checksum: not what a kill leaves. */
	char *root = newroot();
	tok_fill(root, FP_A, 0, 4);
	char *seg = the_tok_segment(root, FP_A);
	unsigned char b = 0x01;
	poke(seg, (off_t)tok_off(3) + 48, &b, 1);
	char want[64];
	snprintf(want, sizeof want, "byte %zu: damaged", tok_off(3));
	lbdpo_quiet = 1;
	EXPECT_DIE(1, want, refcache_open_tokens(root, FP_A, "m"));
}

Test(refcache, tokens_zeroed_header_is_refused)
{
	char *root = newroot();
	tok_fill(root, FP_A, 0, 4);
	char *seg = the_tok_segment(root, FP_A);
	char zero[8] = {0};
	poke(seg, 0, zero, sizeof zero);
	lbdpo_quiet = 1;
	EXPECT_DIE(1, "byte 0: damaged per-token cache segment header", refcache_open_tokens(root, FP_A, "m"));
}

Test(refcache, tokens_wrong_model_segment_is_refused)
{
	char *root = newroot();
	tok_fill(root, FP_A, 0, 3);
	tok_fill(root, FP_B, 0, 1);
	char dst[512];
	snprintf(dst, sizeof dst, "%s/%s/tok-copied.rc", root, FP_B);
	cr_assert_eq(link(the_tok_segment(root, FP_A), dst), 0);
	lbdpo_quiet = 1;
	EXPECT_DIE(1, "cache segment of model aaaaaaaaaaaaaaaa..., not of the reference bbbbbbbbbbbbbbbb...",
		   refcache_open_tokens(root, FP_B, "m"));
}

Test(refcache, tokens_killed_writer_leaves_a_readable_cache)
{
	char *root = newroot();
	refcache_close(refcache_open_tokens(root, FP_A, "m"));
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (!pid) {
		refcache *c = refcache_open_tokens(root, FP_A, "m");
		for (int i = 0;; i++) {
			uint8_t k[32];
			float v[5];
			for (int t = 0; t < tok_n(i % 100000); t++)
				v[t] = tok_val(i % 100000, t);
			tok_key(i % 100000, k);
			refcache_put_tokens(c, k, v, tok_n(i % 100000));
			refcache_flush(c);
		}
	}
	usleep(200000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	refcache *c = refcache_open_tokens(root, FP_A, "m"); /* dies on anything but a torn tail */
	cr_assert_gt(tok_count(c, 0, 100000), 0);
	refcache_close(c);
}
