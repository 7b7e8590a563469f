/* test_records.c — record streams: round trips, pass-through order, and
 * every kind of corruption (each must exit 1 with one "error:" line naming
 * the position, never crash). */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/records.h"
#include "base/util.h"

static char tmpdir[] = "/tmp/lbdpo-test-rec-XXXXXX";
static void setup(void)
{
	cr_assert(mkdtemp(tmpdir) != NULL);
	set_progname("test_records");
}
static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}
static void teardown(void) { cr_assert(nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0); }
TestSuite(records, .init = setup, .fini = teardown);

static char *path(const char *name)
{
	static char p[256];
	snprintf(p, sizeof p, "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *p, const void *buf, size_t n)
{
	FILE *f = fopen(p, "wb");
	cr_assert(f);
	cr_assert(fwrite(buf, 1, n, f) == n);
	fclose(f);
}

static char *read_file(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	cr_assert(f, "cannot open %s", p);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	char *b = malloc(*n + 1);
	cr_assert(fread(b, 1, *n, f) == *n);
	fclose(f);
	return b;
}

/* A sample stream: header + 3 records with ids, strings, floats, f32 bin. */
static void make_sample(const char *p)
{
	rs_writer *w = rs_create(p);
	char *argv[] = {"test", "--opt", "1"};
	rs_header_begin(w, NULL, "tokens", 3, argv);
	rs_put_cstr(w, "tokenizer", "abc");
	rs_header_end(w);
	for (int i = 0; i < 3; i++) {
		uint32_t ids[5] = {1, 2, 300 + i, 70000, 5};
		float v[3] = {0.5f, -1.25f, (float)i};
		rs_rec_begin(w, NULL);
		rs_put_ids(w, "prompt_ids", ids, 3);
		rs_put_ids(w, "chosen_ids", ids + 2, 3);
		rs_put_cstr(w, "group", i ? "math" : "open");
		rs_put_f64(w, "score", -1.5 * i);
		rs_put_f32v(w, "tok", v, 3);
		rs_rec_end(w);
	}
	rs_finish(w);
}

/* Read a whole stream in a child process; return exit status, stderr text. */
static int read_in_child(const char *p, const char *kind, char *err, size_t errlen)
{
	int fd[2];
	cr_assert(pipe(fd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		dup2(fd[1], 2);
		rs_reader *r = rs_open(p, kind);
		const msgpack_object *rec;
		uint32_t *ids = NULL;
		float *v = NULL;
		size_t n, cap = 0, vcap = 0;
		while (rs_next(r, &rec)) {
			rs_get_ids(r, rec, "prompt_ids", 0, &ids, &n, &cap);
			rs_get_ids(r, rec, "chosen_ids", 0, &ids, &n, &cap);
			rs_get_f32v(r, rec, "tok", &v, &n, &vcap);
			double d;
			rs_get_f64(r, rec, "score", &d);
		}
		rs_close(r);
		_exit(0);
	}
	close(fd[1]);
	size_t k = 0;
	ssize_t m;
	while (k + 1 < errlen && (m = read(fd[0], err + k, errlen - 1 - k)) > 0)
		k += (size_t)m;
	err[k] = 0;
	close(fd[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st), "reader crashed (signal %d) on %s: %s", WTERMSIG(st), p, err);
	return WEXITSTATUS(st);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(records, round_trip_values)
{
	make_sample(path("a.rec"));
	rs_reader *r = rs_open(path("a.rec"), "tokens");
	const msgpack_object *h = rs_header(r);
	const char *s;
	size_t n;
	cr_assert(rs_get_str(r, h, "tokenizer", &s, &n));
	cr_assert(n == 3 && !memcmp(s, "abc", 3));
	const msgpack_object *hist = rs_get(h, "history");
	cr_assert(hist && hist->type == MSGPACK_OBJECT_ARRAY && hist->via.array.size == 1);
	const msgpack_object *rec;
	uint32_t *ids = NULL;
	float *v = NULL;
	size_t cap = 0, vcap = 0;
	int k = 0;
	while (rs_next(r, &rec)) {
		cr_assert(rs_index(r) == (uint64_t)k + 1);
		cr_assert(rs_get_ids(r, rec, "prompt_ids", 0, &ids, &n, &cap));
		cr_assert(n == 3 && ids[0] == 1 && ids[2] == (uint32_t)(300 + k));
		cr_assert(rs_get_ids(r, rec, "chosen_ids", 0, &ids, &n, &cap));
		cr_assert(n == 3 && ids[1] == 70000);
		double d;
		cr_assert(rs_get_f64(r, rec, "score", &d) && d == -1.5 * k);
		cr_assert(rs_get_f32v(r, rec, "tok", &v, &n, &vcap));
		cr_assert(n == 3 && v[0] == 0.5f && v[1] == -1.25f && v[2] == (float)k);
		cr_assert(!rs_get(rec, "missing"));
		k++;
	}
	cr_assert(k == 3);
	free(ids);
	free(v);
	rs_close(r);
}

Test(records, pass_through_keeps_order_and_replaces_in_place)
{
	make_sample(path("a.rec"));
	rs_reader *r = rs_open(path("a.rec"), NULL);
	rs_writer *w = rs_create(path("b.rec"));
	char *argv[] = {"second", "-x"};
	rs_header_begin(w, rs_header(r), "scores", 2, argv);
	rs_header_end(w);
	const msgpack_object *rec;
	while (rs_next(r, &rec)) {
		rs_rec_begin(w, rec);
		rs_put_f64(w, "score", 42.0); /* replaces in place */
		rs_drop(w, "tok");
		rs_put_i64(w, "new", 7); /* appended */
		rs_rec_end(w);
	}
	rs_finish(w);
	rs_close(r);

	r = rs_open(path("b.rec"), "scores");
	const msgpack_object *h = rs_header(r);
	const msgpack_object *hist = rs_get(h, "history");
	cr_assert(hist->via.array.size == 2, "history must grow by one entry");
	const char *s;
	size_t n;
	cr_assert(rs_get_str(r, h, "tokenizer", &s, &n), "unknown header keys pass through");
	while (rs_next(r, &rec)) {
		const msgpack_object_map *m = &rec->via.map;
		const char *want[] = {"prompt_ids", "chosen_ids", "group", "score", "new"};
		cr_assert(m->size == 5);
		for (int i = 0; i < 5; i++)
			cr_assert(m->ptr[i].key.via.str.size == strlen(want[i]) &&
					  !memcmp(m->ptr[i].key.via.str.ptr, want[i], strlen(want[i])),
				  "key %d out of order", i);
		cr_assert(m->ptr[3].val.via.f64 == 42.0);
		cr_assert(m->ptr[4].val.via.u64 == 7);
	}
	rs_close(r);
}

Test(records, truncation_at_every_byte)
{
	make_sample(path("a.rec"));
	size_t n;
	char *b = read_file(path("a.rec"), &n);
	/* record boundaries: cutting exactly there is a clean, shorter stream */
	size_t bounds[8];
	int nb = 0;
	{
		rs_reader *r = rs_open(path("a.rec"), NULL);
		const msgpack_object *rec;
		size_t len;
		rs_raw(r, &len);
		while (rs_next(r, &rec)) {
			bounds[nb++] = rs_offset(r);
		}
		rs_close(r);
		bounds[nb++] = n;
	}
	char err[4096];
	for (size_t k = 0; k < n; k++) {
		write_file(path("t.rec"), b, k);
		int clean = 0;
		for (int i = 0; i < nb; i++)
			clean |= bounds[i] == k;
		int rc = read_in_child(path("t.rec"), "tokens", err, sizeof err);
		if (clean && k > 0) {
			cr_assert(rc == 0, "cut at record boundary %zu should read cleanly: %s", k, err);
		} else {
			cr_assert(rc == 1, "cut at %zu: expected exit 1, got %d", k, rc);
			cr_assert(count_lines(err) == 1, "cut at %zu: expected one line, got: %s", k, err);
			cr_assert(strstr(err, "error:"), "cut at %zu: %s", k, err);
			if (k > 0)
				cr_assert(strstr(err, "byte offset") && strstr(err, "t.rec"), "cut at %zu: %s", k, err);
		}
	}
	free(b);
}

static void expect_error(const void *bytes, size_t n, const char *kind, const char *needle)
{
	char err[4096];
	write_file(path("bad.rec"), bytes, n);
	int rc = read_in_child(path("bad.rec"), kind, err, sizeof err);
	cr_assert(rc == 1, "expected exit 1 (%s), got %d: %s", needle, rc, err);
	cr_assert(count_lines(err) == 1, "one line expected: %s", err);
	cr_assert(strstr(err, needle), "expected '%s' in: %s", needle, err);
}

/* header {"lbdpo":1,"kind":"tokens"} */
static const unsigned char HDR[] = {0x82, 0xa5, 'l', 'b',  'd', 'p', 'o', 0x01, 0xa4, 'k',
				    'i',  'n',  'd', 0xa6, 't', 'o', 'k', 'e',  'n',  's'};

static void with_header(const unsigned char *rec, size_t n, const char *needle)
{
	unsigned char buf[4096];
	memcpy(buf, HDR, sizeof HDR);
	memcpy(buf + sizeof HDR, rec, n);
	expect_error(buf, sizeof HDR + n, "tokens", needle);
}

Test(records, wrong_types)
{
	/* {"prompt_ids": "x"} */
	const unsigned char a[] = {0x81, 0xaa, 'p', 'r', 'o', 'm', 'p', 't', '_', 'i', 'd', 's', 0xa1, 'x'};
	with_header(a, sizeof a, "key 'prompt_ids': expected array");
	/* {"prompt_ids": [-1]} */
	const unsigned char b[] = {0x81, 0xaa, 'p', 'r', 'o', 'm', 'p', 't', '_', 'i', 'd', 's', 0x91, 0xff};
	with_header(b, sizeof b, "element 0");
	/* {"score": "x"} */
	const unsigned char c[] = {0x81, 0xa5, 's', 'c', 'o', 'r', 'e', 0xa1, 'x'};
	with_header(c, sizeof c, "expected number");
	/* {"tok": bin of 3 bytes} */
	const unsigned char d[] = {0x81, 0xa3, 't', 'o', 'k', 0xc4, 3, 1, 2, 3};
	with_header(d, sizeof d, "not a multiple of 4");
	/* a record that is not a map */
	const unsigned char e[] = {0x93, 1, 2, 3};
	with_header(e, sizeof e, "expected a map");
	/* a non-string key, duplicate keys */
	const unsigned char f[] = {0x81, 0x01, 0x02};
	with_header(f, sizeof f, "not a string");
	const unsigned char g[] = {0x82, 0xa1, 'a', 1, 0xa1, 'a', 2};
	with_header(g, sizeof g, "duplicate key 'a'");
	/* reserved type byte 0xc1 */
	const unsigned char h[] = {0x81, 0xa1, 'a', 0xc1};
	with_header(h, sizeof h, "invalid msgpack type byte 0xc1");
}

Test(records, huge_declared_lengths)
{
	/* {"a": array32 of 4294967295 elements} */
	const unsigned char a[] = {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff};
	with_header(a, sizeof a, "exceeds the record limit");
	/* {"a": str32 of 4 GiB} */
	const unsigned char b[] = {0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'};
	with_header(b, sizeof b, "exceeds");
	/* map32 with 2^31 pairs */
	const unsigned char c[] = {0xdf, 0x80, 0x00, 0x00, 0x00};
	with_header(c, sizeof c, "exceeds the record limit");
	/* a bin16 that claims more bytes than the stream has */
	const unsigned char d[] = {0x81, 0xa1, 'a', 0xc5, 0x10, 0x00, 1, 2};
	with_header(d, sizeof d, "truncated");
}

Test(records, deep_nesting)
{
	unsigned char buf[300];
	size_t k = 0;
	buf[k++] = 0x81;
	buf[k++] = 0xa1;
	buf[k++] = 'a';
	for (int i = 0; i < 200; i++)
		buf[k++] = 0x91; /* [[[[...]]]] */
	buf[k++] = 0x01;
	with_header(buf, k, "nesting deeper than");
}

Test(records, bad_headers)
{
	expect_error("", 0, NULL, "empty stream");
	/* not a map */
	const unsigned char a[] = {0x01};
	expect_error(a, sizeof a, NULL, "expected a map");
	/* JSON Lines (not yet tokenized), with or without leading blanks */
	const char j1[] = "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n";
	expect_error(j1, sizeof j1 - 1, NULL, "this looks like JSONL, not a record stream: run lbdpo-tokenize first");
	expect_error("\n\n  {\"x\": 1}\n", 13, "tokens", "run lbdpo-tokenize first");
	/* no lbdpo key */
	const unsigned char b[] = {0x81, 0xa4, 'k', 'i', 'n', 'd', 0xa1, 'x'};
	expect_error(b, sizeof b, NULL, "not an lbdpo record stream");
	/* version from the future */
	unsigned char c[sizeof HDR];
	memcpy(c, HDR, sizeof HDR);
	c[7] = 0x09;
	expect_error(c, sizeof c, NULL, "unsupported format version 9");
	/* wrong kind */
	expect_error(HDR, sizeof HDR, "scores", "expected a stream of kind 'scores', got 'tokens'");
	/* a kind list accepts any of its members */
	char err[256];
	write_file(path("ok.rec"), HDR, sizeof HDR);
	cr_assert(read_in_child(path("ok.rec"), "scores,tokens", err, sizeof err) == 0, "%s", err);
}

Test(records, ids_limit)
{
	rs_writer *w = rs_create(path("v.rec"));
	rs_header_begin(w, NULL, "tokens", 0, NULL);
	rs_header_end(w);
	uint32_t ids[2] = {3, 512};
	rs_rec_begin(w, NULL);
	rs_put_ids(w, "prompt_ids", ids, 2);
	rs_rec_end(w);
	rs_finish(w);
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		rs_reader *r = rs_open(path("v.rec"), NULL);
		const msgpack_object *rec;
		uint32_t *v = NULL;
		size_t n, cap = 0;
		rs_next(r, &rec);
		rs_get_ids(r, rec, "prompt_ids", 512, &v, &n, &cap);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "id 512 with vocabulary 512 must be refused");
}

Test(records, atomic_output_on_failure)
{
	/* A writer that dies leaves no file behind, not even a partial one. */
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		rs_writer *w = rs_create(path("partial.rec"));
		rs_header_begin(w, NULL, "tokens", 0, NULL);
		rs_header_end(w);
		die("simulated failure");
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	cr_assert(access(path("partial.rec"), F_OK) != 0, "no final file");
	DIR *d = opendir(tmpdir);
	cr_assert_not_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		cr_assert(!strstr(e->d_name, "tmp"), "temporary file %s left", e->d_name);
	closedir(d);
}
