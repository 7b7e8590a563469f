/* util.c — error layer, allocation, atomic output files, hashing. */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *g_progname = "lbdpo";
int lbdpo_quiet = 0;

void set_progname(const char *name)
{
	const char *s = strrchr(name, '/');
	g_progname = s ? s + 1 : name;
}

const char *progname(void) { return g_progname; }

static void (*die_hooks[8])(void);
static int n_die_hooks;

void atdie(void (*fn)(void))
{
	if (n_die_hooks < 8)
		die_hooks[n_die_hooks++] = fn;
}

static void vreport(const char *prefix, const char *fmt, va_list ap)
{
	char buf[4096];
	vsnprintf(buf, sizeof buf, fmt, ap);
	/* One line, always: a message that embeds input text must not break it. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "%s: %s%s\n", g_progname, prefix, buf);
}

static void run_die_hooks(void)
{
	for (int i = n_die_hooks - 1; i >= 0; i--)
		die_hooks[i]();
	out_abort_all();
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("error: ", fmt, ap);
	va_end(ap);
	run_die_hooks();
	exit(EXIT_DATA);
}

void die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("error: ", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", g_progname);
	run_die_hooks();
	exit(EXIT_USAGE);
}

int error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("error: ", fmt, ap);
	va_end(ap);
	return -1;
}

void warning(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("warning: ", fmt, ap);
	va_end(ap);
}

void info(const char *fmt, ...)
{
	if (lbdpo_quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vreport("", fmt, ap);
	va_end(ap);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die("out of memory allocating %zu bytes", n);
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

void xgrow(void **p, size_t *cap, size_t need, size_t elsz)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c = c / 2 * 3 + 16;
	*p = xrealloc(*p, c * elsz);
	*cap = c;
}

/* ---- atomic output files ---- */

#define MAX_OUT 16
static outfile *open_outs[MAX_OUT];

outfile *out_open(const char *path)
{
	outfile *o = xcalloc(1, sizeof *o);
	if (!path || !strcmp(path, "-")) {
		o->fp = stdout;
		return o;
	}
	/* A device, FIFO or socket (/dev/null, a named pipe) cannot be replaced
	 * by rename: write to it directly. */
	struct stat sb;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		if (S_ISDIR(sb.st_mode))
			die("%s: is a directory", path);
		o->fp = fopen(path, "wb");
		if (!o->fp)
			die("%s: cannot open for writing: %s", path, strerror(errno));
		o->path = xstrdup(path);
		o->direct = 1;
		return o;
	}
	o->path = xstrdup(path);
	size_t n = strlen(path) + 32;
	o->tmp = xmalloc(n);
	snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
	o->fp = fopen(o->tmp, "wb");
	if (!o->fp)
		die("%s: cannot create: %s", o->tmp, strerror(errno));
	for (int i = 0; i < MAX_OUT; i++)
		if (!open_outs[i]) {
			open_outs[i] = o;
			break;
		}
	return o;
}

static void forget_out(outfile *o)
{
	for (int i = 0; i < MAX_OUT; i++)
		if (open_outs[i] == o)
			open_outs[i] = NULL;
}

void out_close(outfile *o)
{
	if (!o)
		return;
	if (!o->path) {
		if (fflush(stdout) != 0 || ferror(stdout))
			die("write error on standard output: %s", strerror(errno));
		free(o);
		return;
	}
	if (o->direct) {
		if (fclose(o->fp) != 0)
			die("%s: write error: %s", o->path, strerror(errno));
		free(o->path);
		free(o);
		return;
	}
	if (fflush(o->fp) != 0 || ferror(o->fp) || fsync(fileno(o->fp)) != 0) {
		int e = errno;
		die("%s: write error: %s", o->path, strerror(e));
	}
	if (fclose(o->fp) != 0) {
		o->fp = NULL;
		die("%s: write error on close: %s", o->path, strerror(errno));
	}
	o->fp = NULL;
	if (rename(o->tmp, o->path) != 0)
		die("%s: cannot rename from %s: %s", o->path, o->tmp, strerror(errno));
	forget_out(o);
	free(o->tmp);
	free(o->path);
	free(o);
}

void out_abort_all(void)
{
	for (int i = 0; i < MAX_OUT; i++) {
		outfile *o = open_outs[i];
		if (!o)
			continue;
		open_outs[i] = NULL;
		if (o->fp)
			fclose(o->fp);
		if (o->tmp)
			unlink(o->tmp);
	}
}

const void *map_file(const char *path, size_t *len)
{
	static const unsigned char empty[1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		die("%s: %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		die("%s: not a regular file", path);
	*len = (size_t)sb.st_size;
	const void *map = empty;
	if (*len > 0) {
		map = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED)
			die("%s: mmap: %s", path, strerror(errno));
	}
	close(fd);
	return map;
}

void unmap_file(const void *p, size_t len)
{
	if (p && len > 0)
		munmap((void *)p, len);
}

FILE *in_open(const char *path)
{
	if (!path || !strcmp(path, "-"))
		return stdin;
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s: cannot open: %s", path, strerror(errno));
	return f;
}

const char *in_name(const char *path)
{
	return (!path || !strcmp(path, "-")) ? "<stdin>" : path;
}

void close_stdout(void)
{
	int bad = ferror(stdout);
	if (fclose(stdout) != 0 || bad) {
		/* errno may be stale after ferror: say what we know. */
		fprintf(stderr, "%s: error: write error on standard output: %s\n", g_progname,
			errno ? strerror(errno) : "unknown error");
		_exit(EXIT_DATA);
	}
}

long parse_long(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die_usage("option %s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
	return v;
}

double parse_double(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		die_usage("option %s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
	return v;
}

/* ---- hashing ---- */

struct sha256_ctx {
	EVP_MD_CTX *md;
};

sha256_ctx *sha256_new(void)
{
	sha256_ctx *c = xmalloc(sizeof *c);
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		die("sha256: cannot initialise digest");
	return c;
}

void sha256_update(sha256_ctx *c, const void *data, size_t n)
{
	if (n && EVP_DigestUpdate(c->md, data, n) != 1)
		die("sha256: digest update failed");
}

void sha256_final_hex(sha256_ctx *c, char out[65])
{
	unsigned char d[32];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(c->md, d, &n) != 1 || n != 32)
		die("sha256: digest failed");
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	EVP_MD_CTX_free(c->md);
	free(c);
}

void sha256_hex(const void *data, size_t n, char out[65])
{
	sha256_ctx *c = sha256_new();
	sha256_update(c, data, n);
	sha256_final_hex(c, out);
}

void sha256_file_hex(const char *path, char out[65])
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s: cannot open: %s", path, strerror(errno));
	sha256_ctx *c = sha256_new();
	char buf[1 << 16];
	size_t k;
	while ((k = fread(buf, 1, sizeof buf, f)) > 0)
		sha256_update(c, buf, k);
	if (ferror(f))
		die("%s: read error: %s", path, strerror(errno));
	fclose(f);
	sha256_final_hex(c, out);
}

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int stderr_is_tty(void) { return isatty(2); }
