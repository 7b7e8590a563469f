/* util.h — the one error layer and small helpers shared by every program.
 *
 * Messages look like "lbdpo-show: error: <what>" (git's usage.c style).
 * Exit codes (documented in lbdpo(7)):
 *   0  success
 *   1  runtime or data error (bad input, I/O failure, numeric failure)
 *   2  usage error (bad option or argument)
 *   134 (SIGABRT) a bug in lbdpo itself (BUG(), below), never bad input
 */
#ifndef LBDPO_UTIL_H
#define LBDPO_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LBDPO_VERSION "0.1.0"

#define EXIT_DATA 1
#define EXIT_USAGE 2

#if defined(__GNUC__)
#define LBDPO_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LBDPO_NORETURN __attribute__((noreturn))
#else
#define LBDPO_PRINTF(a, b)
#define LBDPO_NORETURN
#endif

/* Set once from main(argv[0] basename or a literal). Also installs the
 * SIGINT/SIGTERM/SIGHUP handler that removes registered temporaries and
 * exits 128+signal (see signals_graceful for lbdpo-step). */
void set_progname(const char *name);
const char *progname(void);

/* die: print "prog: error: ..." and exit(1). */
LBDPO_NORETURN void die(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* BUG: a programmer error (an impossible state, an inconsistent table), never
 * bad input: prints "prog: BUG: file:line: ...", removes the temporaries and
 * abort()s, so it is never mistaken for the exit 1/2 of a data or usage
 * error (and a fuzzer or a core dump catches it). BUG_ON(cond) when cond. */
#define BUG(...) bug_at(__FILE__, __LINE__, __VA_ARGS__)
#define BUG_ON(cond)                                                                                                   \
	do {                                                                                                           \
		if (cond)                                                                                              \
			bug_at(__FILE__, __LINE__, "%s", #cond);                                                       \
	} while (0)
LBDPO_NORETURN void bug_at(const char *file, int line, const char *fmt, ...) LBDPO_PRINTF(3, 4);
/* die_usage: print "prog: error: ..." plus "try 'prog --help'" and exit(2). */
LBDPO_NORETURN void die_usage(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* error: print "prog: error: ..." and return -1. */
int error(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* warning: print "prog: warning: ..." */
void warning(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* info: print "prog: ..." to stderr unless quiet. */
void info(const char *fmt, ...) LBDPO_PRINTF(1, 2);
extern int lbdpo_quiet;
/* The compute device of this run (backend_select_device sets it; NULL in
 * programs without one): output headers record it in their history. */
extern const char *lbdpo_run_device;

/* Hook run by die() before exiting (e.g. remove a temporary output). */
void atdie(void (*fn)(void));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Grow *p (of *cap elements of size elsz) to hold at least need elements. */
void xgrow(void **p, size_t *cap, size_t need, size_t elsz);

/* Output files: written to a temporary "<path>.tmp.<pid>.XXXXXX" created
 * exclusively beside the target (O_EXCL: a planted file or symlink is never
 * opened; mode 0600 until finished, then the replaced file's mode or
 * 0666 & ~umask) and renamed on close, so a failed run never leaves a
 * half-written file. path "-" or NULL = stdout. */
typedef struct outfile {
	FILE *fp;
	char *path; /* final path, NULL for stdout */
	char *tmp;  /* temporary path, NULL for stdout and direct writes */
	int direct; /* a device or FIFO: written in place, no rename */
} outfile;
outfile *out_open(const char *path);
/* Copy the file src to dst (through out_open: a temporary renamed into
 * place). Dies naming the file on an error. */
void copy_file(const char *src, const char *dst);
/* n unpredictable bytes (/dev/urandom; without it, time and process bits). */
void random_bytes(void *buf, size_t n);
/* Flush, fsync, close and rename; dies on any write error. */
void out_close(outfile *o);
/* Remove the temporary file of every open outfile (called by die()). */
void out_abort_all(void);

/* ---- temporaries ----
 * Names are "<target>.tmp.<pid>.XXXXXX" (XXXXXX random, mkstemp-style).
 * temp_file_create returns an fd opened O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC;
 * temp_dir_create makes a 0700 directory. Both are registered: die() and
 * a terminating signal remove them. */
int temp_file_create(const char *target, char **tmp);
char *temp_dir_create(const char *target);
/* Give the temporary directory tmp the mode of the directory target it will
 * replace, or 0777 & ~umask when there is none (mkdtemp made it 0700). */
void temp_dir_mode(const char *tmp, const char *target);
void temp_register(const char *path, int is_dir);
void temp_forget(const char *path); /* after it was renamed into place */
/* Remove every registered temporary; async-signal-safe. */
void temp_remove_all(void);
/* Remove temporaries of target left by killed runs: names matching
 * "<target>.tmp.<pid>.XXXXXX" exactly, owned by this user, whose <pid> is
 * not a live process here, not written for 10 minutes (a run on another
 * host or in another PID namespace is not seen by kill(pid, 0));
 * directories only when they hold plain files. Anything else is left
 * alone. Returns the number removed. */
int temp_sweep(const char *target);
/* Remove a directory of plain files (no subdirectories); -1 on failure.
 * Async-signal-safe. */
int remove_flat_dir(const char *path);

/* ---- signals ----
 * By default SIGINT/SIGTERM/SIGHUP remove the temporaries and exit 128+sig.
 * After signals_graceful() the first one only sets stop_requested() (the
 * program finishes what it is doing and exits 128+sig itself); a second one
 * removes the temporaries and exits at once. */
void signals_graceful(void);
int stop_requested(void); /* signal number, 0 if none */

/* Map a regular file read-only; *len is its size (an empty file gives a
 * valid pointer to no bytes). Dies naming the file. */
const void *map_file(const char *path, size_t *len);
void unmap_file(const void *p, size_t len);

/* Input: path "-" or NULL = stdin. Dies with the file name on failure. */
FILE *in_open(const char *path);
const char *in_name(const char *path); /* "<stdin>" or path */
/* "dir/name", malloc'd (the one path builder: checkpoints, model directories). */
char *path_join(const char *dir, const char *name);

/* Check and close stdout; die if anything was lost (full disk, EPIPE). */
void close_stdout(void);

/* Enum names: every enum has one table of names indexed by its values;
 * name_of gives "?" outside it, name_index -1 for an unknown name. */
const char *name_of(const char *const *names, int n, int k);
int name_index(const char *const *names, int n, const char *s);

/* Parse helpers for options: die_usage with the option name on error. */
long parse_long(const char *opt, const char *s, long lo, long hi);
double parse_double(const char *opt, const char *s, double lo, double hi);

/* Hex SHA-256 of a buffer / a file (65 bytes with NUL). */
void sha256_hex(const void *data, size_t n, char out[65]);
/* Incremental hashing (OpenSSL's libcrypto underneath). */
typedef struct sha256_ctx sha256_ctx;
sha256_ctx *sha256_new(void);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final_hex(sha256_ctx *c, char out[65]); /* also frees c */
void sha256_file_hex(const char *path, char out[65]);

/* Call first in main() of every program that computes with OpenMP and
 * OpenBLAS. OpenBLAS (pthread build) keeps its own thread pool; OpenMP
 * threads that spin-wait after a parallel region steal the cores OpenBLAS
 * needs for the next sgemm (measured: 20x slower steps on a busy 2-core
 * machine). libgomp reads OMP_WAIT_POLICY only when it is loaded, so unless
 * the user set it, the program re-executes itself once with it "passive";
 * likewise with OPENBLAS_CORETYPE when OpenBLAS chose too old a core (cpu.h). */
void lbdpo_runtime_init(char **argv);

/* Monotonic seconds. */
double now_s(void);

/* Progress on stderr only when it is a terminal. */
int stderr_is_tty(void);

/* Run the program argv[0] (looked up in PATH) with argv in directory dir (NULL:
 * the current one) and wait for it: fork + exec, never a shell, so no byte
 * of argv or dir is interpreted. stdin is /dev/null. Returns its exit status,
 * 128 + signal when killed, or -1 with errno set when it could not be
 * started (ENOENT: not installed; or chdir's errno). */
int run_program(const char *dir, char *const argv[]);

/* Progress of a long loop on stderr, nothing when lbdpo_quiet. On a
 * terminal: one line redrawn at most 4 times a second, "prog: 12/100
 * steps, 0:05 elapsed (12%), ETA 0:31; <detail>". Otherwise (make, nohup, a
 * batch scheduler): that line without the redraw, every
 * LBDPO_PROGRESS_SECONDS seconds (default 60; 0 = every call). total 0 =
 * unknown (no percentage, no ETA). */
typedef struct {
	double t0, next;
	long total;
	const char *unit;
	int tty, drawn;
} progress_meter;
void progress_init(progress_meter *p, long total, const char *unit);
void progress_show(progress_meter *p, long done, const char *fmt, ...) LBDPO_PRINTF(3, 4);
/* End a redrawn terminal line; returns the seconds since progress_init. */
double progress_end(progress_meter *p);
/* "1:02:03" or "2:03" */
void fmt_duration(double s, char *buf, size_t n);

#endif
