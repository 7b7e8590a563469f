/* util.c — error layer, allocation, atomic output files, hashing. */
#define _GNU_SOURCE
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <openssl/evp.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *g_progname = "lbdpo";
int lbdpo_quiet = 0;
const char *lbdpo_run_device;

static void install_signals(void);

void set_progname(const char *name)
{
	const char *s = strrchr(name, '/');
	g_progname = s ? s + 1 : name;
	opterr = 0; /* option errors: one line of ours (base/cli.c) */
	install_signals();
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
	temp_remove_all();
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

void bug_at(const char *file, int line, const char *fmt, ...)
{
	char where[512];
	snprintf(where, sizeof where, "BUG: %s:%d: ", file, line);
	va_list ap;
	va_start(ap, fmt);
	vreport(where, fmt, ap);
	va_end(ap);
	/* Not the atdie() hooks: they treat a rejection as an ordinary outcome
	 * (the fuzzers jump back), and this is not one. */
	out_abort_all();
	temp_remove_all();
	abort();
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

static mode_t current_umask(void)
{
	mode_t m = umask(022);
	umask(m);
	return m;
}

/* ---- registry of temporaries (removed by die() and by signals) ----
 * Slots are written with signals blocked, so the handler sees either NULL
 * or a complete entry. */
#define MAX_TEMPS 32
static char *volatile temps[MAX_TEMPS];
static volatile sig_atomic_t temp_is_dir[MAX_TEMPS];

static void block_signals(sigset_t *old)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGHUP);
	sigprocmask(SIG_BLOCK, &s, old);
}

void temp_register(const char *path, int is_dir)
{
	char *p = xstrdup(path);
	sigset_t old;
	block_signals(&old);
	for (int i = 0; i < MAX_TEMPS; i++)
		if (!temps[i]) {
			temp_is_dir[i] = is_dir;
			temps[i] = p;
			p = NULL;
			break;
		}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (p) /* full: the temporary is still removed by its owner on errors */
		free(p);
}

void temp_forget(const char *path)
{
	sigset_t old;
	block_signals(&old);
	for (int i = 0; i < MAX_TEMPS; i++)
		if (temps[i] && !strcmp(temps[i], path)) {
			char *p = temps[i];
			temps[i] = NULL;
			free(p);
		}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Only syscalls (getdents64, unlinkat, rmdir): safe in a signal handler. */
int remove_flat_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[4096] __attribute__((aligned(8)));
	long n;
	int bad = 0;
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			const char *nm = d->d_name;
			if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0)))
				continue;
			if (unlinkat(fd, nm, 0) != 0)
				bad = 1; /* a subdirectory (EISDIR) or no permission */
		}
	}
	close(fd);
	if (n < 0 || bad)
		return -1;
	return rmdir(path);
}

void temp_remove_all(void)
{
	for (int i = 0; i < MAX_TEMPS; i++) {
		char *p = temps[i];
		if (!p)
			continue;
		if (temp_is_dir[i])
			remove_flat_dir(p);
		else
			unlink(p);
	}
}

void random_bytes(void *buf, size_t n)
{
	unsigned char *r = buf;
	FILE *f = fopen("/dev/urandom", "rb");
	if (!f || fread(r, 1, n, f) != n) {
		/* no /dev/urandom: time, process and address bits */
		uint64_t x = (uint64_t)(now_s() * 1e6) * 1000003u ^ (uint64_t)(uintptr_t)buf ^ (uint64_t)rand() ^
			     ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			r[i] = (unsigned char)(x >> 56);
		}
	}
	if (f)
		fclose(f);
}

static void temp_name(const char *target, char *buf, size_t n)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[6];
	random_bytes(r, sizeof r); /* O_EXCL protects even without /dev/urandom */
	int k = snprintf(buf, n, "%s.tmp.%ld.", target, (long)getpid());
	for (int i = 0; i < 6 && (size_t)k + 1 < n; i++)
		buf[k++] = al[r[i] % 62];
	buf[k] = 0;
}

void temp_dir_mode(const char *tmp, const char *target)
{
	struct stat sb;
	mode_t mode = lstat(target, &sb) == 0 && S_ISDIR(sb.st_mode) ? (sb.st_mode & 07777) : (0777 & ~current_umask());
	if (chmod(tmp, mode) != 0)
		die("%s: cannot set mode: %s", tmp, strerror(errno));
}

int temp_file_create(const char *target, char **tmp)
{
	size_t n = strlen(target) + 48;
	char *p = xmalloc(n);
	for (int tries = 0; tries < 100; tries++) {
		temp_name(target, p, n);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			temp_register(p, 0);
			*tmp = p;
			return fd;
		}
		if (errno != EEXIST)
			die("%s: cannot create: %s", p, strerror(errno));
	}
	die("%s: cannot create a temporary beside it (100 names taken)", target);
}

char *temp_dir_create(const char *target)
{
	size_t n = strlen(target) + 48;
	char *p = xmalloc(n);
	for (int tries = 0; tries < 100; tries++) {
		temp_name(target, p, n);
		/* mkdir never follows a symlink at p: it fails with EEXIST */
		if (mkdir(p, 0700) == 0) {
			temp_register(p, 1);
			return p;
		}
		if (errno != EEXIST)
			die("%s: cannot create directory: %s", p, strerror(errno));
	}
	die("%s: cannot create a temporary beside it (100 names taken)", target);
}

#define TEMP_STALE_S 600

/* Newest modification time of path and, for a directory, of its entries. */
static time_t newest_mtime(const char *path, const struct stat *sb)
{
	time_t t = sb->st_mtime;
	if (!S_ISDIR(sb->st_mode))
		return t;
	DIR *d = opendir(path);
	if (!d)
		return t;
	struct dirent *e;
	struct stat es;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    fstatat(dirfd(d), e->d_name, &es, AT_SYMLINK_NOFOLLOW) == 0 && es.st_mtime > t)
			t = es.st_mtime;
	closedir(d);
	return t;
}

int temp_sweep(const char *target)
{
	const char *slash = strrchr(target, '/');
	char *dir = slash ? strndup(target, (size_t)(slash - target) + (slash == target)) : xstrdup(".");
	const char *base = slash ? slash + 1 : target;
	size_t bl = strlen(base);
	int removed = 0;
	DIR *d = opendir(dir);
	if (!d) {
		free(dir);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		/* exactly "<base>.tmp.<digits>.<6 alphanumerics>" */
		const char *nm = e->d_name;
		if (strncmp(nm, base, bl) || strncmp(nm + bl, ".tmp.", 5))
			continue;
		const char *q = nm + bl + 5, *ds = q;
		while (*q >= '0' && *q <= '9')
			q++;
		if (q == ds || q - ds > 10 || *q != '.' || strlen(q + 1) != 6)
			continue;
		int ok = 1;
		for (const char *c = q + 1; *c; c++)
			ok &= (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
		long pid = strtol(ds, NULL, 10);
		if (!ok || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* alive (or not ours to signal): maybe a run in progress */
		struct stat sb;
		if (fstatat(dirfd(d), nm, &sb, AT_SYMLINK_NOFOLLOW) != 0 || sb.st_uid != geteuid())
			continue;
		char *full;
		if (asprintf(&full, "%s/%s", dir, nm) < 0)
			continue;
		/* A PID from another host (NFS) or PID namespace looks dead here:
		 * also require no write for TEMP_STALE_S seconds. */
		if (newest_mtime(full, &sb) > time(NULL) - TEMP_STALE_S) {
			free(full);
			continue;
		}
		int r = -1;
		if (S_ISREG(sb.st_mode))
			r = unlink(full);
		else if (S_ISDIR(sb.st_mode))
			r = remove_flat_dir(full);
		if (r == 0) {
			removed++;
			warning("removed %s, left by an interrupted run (process %ld)", full, pid);
		}
		free(full);
	}
	closedir(d);
	free(dir);
	return removed;
}

/* ---- signals ---- */

static volatile sig_atomic_t g_stop, g_graceful;

static void on_signal(int sig)
{
	if (g_graceful && !g_stop) {
		g_stop = sig;
		static const char msg[] = ": interrupted; finishing the current step and writing the checkpoint "
					  "(signal again to stop at once)\n";
		ssize_t w = write(2, g_progname, strlen(g_progname));
		w = write(2, msg, sizeof msg - 1);
		(void)w;
		return;
	}
	temp_remove_all();
	_exit(128 + sig);
}

static void install_signals(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	for (int i = 0; i < 3; i++) {
		struct sigaction old;
		/* a signal ignored by our parent (nohup, `cmd &` in sh) stays ignored */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
}

void signals_graceful(void)
{
	install_signals();
	g_graceful = 1;
}

int stop_requested(void) { return g_stop; }

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
	int had = stat(path, &sb) == 0;
	if (had && !S_ISREG(sb.st_mode)) {
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
	temp_sweep(path);
	int fd = temp_file_create(path, &o->tmp);
	/* keep the mode of the file being replaced; a new one gets the umask's */
	mode_t mode = had ? (sb.st_mode & 07777) : (0666 & ~current_umask());
	if (fchmod(fd, mode) != 0)
		die("%s: cannot set mode: %s", o->tmp, strerror(errno));
	o->fp = fdopen(fd, "wb");
	if (!o->fp)
		die("%s: cannot open: %s", o->tmp, strerror(errno));
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
	temp_forget(o->tmp);
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

const char *in_name(const char *path) { return (!path || !strcmp(path, "-")) ? "<stdin>" : path; }

char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = xmalloc(a + b + 2);
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
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

int run_program(const char *dir, char *const argv[])
{
	/* A close-on-exec pipe carries the child's errno when chdir or exec
	 * fails; a successful exec closes it and the parent reads nothing. */
	int fd[2];
	if (pipe2(fd, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fd[0]);
		close(fd[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0 && nul != 0) {
			dup2(nul, 0);
			close(nul);
		}
		if (!dir || chdir(dir) == 0)
			execvp(argv[0], argv);
		int e = errno;
		if (write(fd[1], &e, sizeof e) < 0) { /* nothing more to tell */
		}
		_exit(127);
	}
	close(fd[1]);
	int e = 0;
	ssize_t k;
	while ((k = read(fd[0], &e, sizeof e)) < 0 && errno == EINTR)
		;
	close(fd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (k == (ssize_t)sizeof e) {
		errno = e;
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void fmt_duration(double s, char *buf, size_t n)
{
	long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
	if (t >= 3600)
		snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void progress_init(progress_meter *p, long total, const char *unit)
{
	memset(p, 0, sizeof *p);
	p->t0 = now_s();
	p->total = total;
	p->unit = unit;
	p->tty = stderr_is_tty();
	const char *e = getenv("LBDPO_PROGRESS_SECONDS");
	p->next = p->t0 + (p->tty ? 0 : (e && *e ? atof(e) : 60));
}

void progress_show(progress_meter *p, long done, const char *fmt, ...)
{
	double now = now_s();
	if (lbdpo_quiet || now < p->next)
		return;
	const char *e = getenv("LBDPO_PROGRESS_SECONDS");
	p->next = now + (p->tty ? 0.25 : (e && *e ? atof(e) : 60));
	char el[32], eta[48] = "", pct[32] = "", detail[256] = "";
	fmt_duration(now - p->t0, el, sizeof el);
	if (p->total > 0) {
		snprintf(pct, sizeof pct, "/%ld", p->total);
		if (done > 0) {
			char d[32];
			fmt_duration((now - p->t0) * (double)(p->total - done) / (double)done, d, sizeof d);
			snprintf(eta, sizeof eta, " (%.0f%%), ETA %s", 100.0 * done / p->total, d);
		}
	}
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		detail[0] = ';';
		detail[1] = ' ';
		vsnprintf(detail + 2, sizeof detail - 2, fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "%s%s: %ld%s %s, %s elapsed%s%s%s", p->tty ? "\r" : "", g_progname, done, pct, p->unit, el, eta,
		detail, p->tty ? "   " : "\n");
	p->drawn = 1;
}

double progress_end(progress_meter *p)
{
	if (p->tty && p->drawn && !lbdpo_quiet)
		fputc('\n', stderr);
	p->drawn = 0;
	return now_s() - p->t0;
}

const char *name_of(const char *const *names, int n, int k) { return k >= 0 && k < n ? names[k] : "?"; }

int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

void copy_file(const char *src, const char *dst)
{
	FILE *in = fopen(src, "rb");
	if (!in)
		die("%s: %s", src, strerror(errno));
	outfile *o = out_open(dst);
	char buf[1 << 16];
	size_t r;
	while ((r = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, r, o->fp) != r)
			die("%s: write error: %s", dst, strerror(errno));
	if (ferror(in))
		die("%s: read error", src);
	fclose(in);
	out_close(o);
}
