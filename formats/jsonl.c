/* jsonl.c — JSON Lines reader over zlib's gzread (plain files pass through). */
#include "formats/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "base/util.h"
#include "formats/tokenizer.h"

struct jsonl {
	gzFile gz;
	FILE *fp; /* instead of gz: an open stream (its first bytes already peeked at) */
	char *name;
	char *buf; /* buffered input: [pos, end) not yet consumed */
	size_t pos, end, cap;
	int eof;
	uint64_t lineno;
	char err[256];
};

jsonl *jsonl_open_fd(int fd, const char *name)
{
	jsonl *r = xcalloc(1, sizeof *r);
	r->name = xstrdup(name);
	r->gz = gzdopen(fd, "rb");
	if (!r->gz)
		die("%s: cannot open: %s", name, strerror(errno));
	gzbuffer(r->gz, 1 << 17);
	r->cap = 1 << 16;
	r->buf = xmalloc(r->cap + 1);
	return r;
}

jsonl *jsonl_open_fp(FILE *fp, const char *name)
{
	jsonl *r = xcalloc(1, sizeof *r);
	r->name = xstrdup(name);
	r->fp = fp;
	r->cap = 1 << 16;
	r->buf = xmalloc(r->cap + 1);
	return r;
}

jsonl *jsonl_open(const char *path)
{
	int fd = 0;
	if (path && strcmp(path, "-")) {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("%s: %s", path, strerror(errno));
	} else {
		fd = dup(0);
		if (fd < 0)
			die("<stdin>: %s", strerror(errno));
	}
	return jsonl_open_fd(fd, in_name(path));
}

void jsonl_close(jsonl *r)
{
	if (!r)
		return;
	if (r->gz)
		gzclose(r->gz);
	free(r->buf);
	free(r->name);
	free(r);
}

uint64_t jsonl_lineno(const jsonl *r) { return r->lineno; }
const char *jsonl_name(const jsonl *r) { return r->name; }
const char *jsonl_error(const jsonl *r) { return r->err; }

/* Refill: keep [pos, end), read more after it. Returns bytes read, -1 on error. */
static long fill(jsonl *r)
{
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->end - r->pos);
		r->end -= r->pos;
		r->pos = 0;
	}
	if (r->end == r->cap) {
		if (r->end > JSONL_MAX_LINE) {
			snprintf(r->err, sizeof r->err, "line %llu: longer than %zu bytes",
				 (unsigned long long)r->lineno + 1, JSONL_MAX_LINE);
			return -1;
		}
		r->cap = r->cap * 2 > JSONL_MAX_LINE + 1 ? JSONL_MAX_LINE + 1 : r->cap * 2;
		r->buf = xrealloc(r->buf, r->cap + 1);
	}
	size_t want = r->cap - r->end;
	if (want > (1u << 30))
		want = 1u << 30;
	if (r->fp) {
		size_t k = fread(r->buf + r->end, 1, want, r->fp);
		if (!k && ferror(r->fp)) {
			snprintf(r->err, sizeof r->err, "line %llu: read error: %s", (unsigned long long)r->lineno + 1,
				 strerror(errno));
			return -1;
		}
		r->eof = !k;
		r->end += k;
		return (long)k;
	}
	int n = gzread(r->gz, r->buf + r->end, (unsigned)want);
	if (n < 0) {
		int e;
		const char *m = gzerror(r->gz, &e);
		snprintf(r->err, sizeof r->err, "line %llu: read error: %s", (unsigned long long)r->lineno + 1,
			 e == Z_ERRNO ? strerror(errno) : m);
		return -1;
	}
	if (n == 0) {
		int e;
		const char *m = gzerror(r->gz, &e);
		if (e != Z_OK && e != Z_BUF_ERROR) {
			snprintf(r->err, sizeof r->err, "line %llu: %s", (unsigned long long)r->lineno + 1, m);
			return -1;
		}
		/* a truncated gzip member reads as Z_BUF_ERROR at the end */
		if (e == Z_BUF_ERROR) {
			snprintf(r->err, sizeof r->err, "line %llu: truncated gzip input",
				 (unsigned long long)r->lineno + 1);
			return -1;
		}
		r->eof = 1;
	}
	r->end += (size_t)n;
	return n;
}

int jsonl_next(jsonl *r, const char **line, size_t *len)
{
	for (;;) {
		char *nl = memchr(r->buf + r->pos, '\n', r->end - r->pos);
		while (!nl && !r->eof) {
			size_t old = r->end - r->pos;
			if (fill(r) < 0)
				return -1;
			nl = memchr(r->buf + r->pos + old, '\n', r->end - r->pos - old);
		}
		size_t start = r->pos, stop;
		if (nl) {
			stop = (size_t)(nl - r->buf);
			r->pos = stop + 1;
		} else {
			if (r->pos == r->end)
				return 0;
			stop = r->end;
			r->pos = r->end;
		}
		r->lineno++;
		if (stop > start && r->buf[stop - 1] == '\r')
			stop--;
		size_t k = start;
		while (k < stop && (r->buf[k] == ' ' || r->buf[k] == '\t' || r->buf[k] == '\r'))
			k++;
		if (k == stop)
			continue; /* blank line */
		r->buf[stop] = 0;
		*line = r->buf + start;
		*len = stop - start;
		return 1;
	}
}

int jsonl_limits(const char *line, size_t len, char *err, size_t errlen)
{
	/* count values before jansson allocates one object for each: commas
	 * and opening brackets outside strings */
	size_t nv = 1;
	int in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = line[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == ',' || c == '[' || c == '{') {
			nv++;
		}
	}
	if (nv > JSONL_MAX_VALUES) {
		snprintf(err, errlen, "more than %zu JSON values on one line", JSONL_MAX_VALUES);
		return -1;
	}
	return 0;
}

json_t *jsonl_parse(const char *line, size_t len, char *err, size_t errlen)
{
	size_t bad = utf8_invalid_at(line, len);
	if (bad != len) {
		snprintf(err, errlen, "invalid UTF-8 at byte %zu", bad + 1);
		return NULL;
	}
	if (jsonl_limits(line, len, err, errlen))
		return NULL;
	json_error_t je;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!o) {
		snprintf(err, errlen, "invalid JSON at column %d: %s", je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(err, errlen, "not a JSON object");
		return NULL;
	}
	return o;
}

void json_save_file(const char *path, const json_t *j, size_t flags)
{
	outfile *o = out_open(path);
	if (json_dumpf(j, o->fp, flags) != 0 || fputc('\n', o->fp) == EOF)
		die("%s: cannot write JSON", o->path ? o->path : "standard output");
	out_close(o);
}
