/* util.h — the one error layer and small helpers shared by every program.
 *
 * Messages look like "lbdpo-show: error: <what>" (git's usage.c style).
 * Exit codes (documented in lbdpo(7)):
 *   0  success
 *   1  runtime or data error (bad input, I/O failure, numeric failure)
 *   2  usage error (bad option or argument)
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

/* Set once from main(argv[0] basename or a literal). */
void set_progname(const char *name);
const char *progname(void);

/* die: print "prog: error: ..." and exit(1). */
LBDPO_NORETURN void die(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* die_usage: print "prog: error: ..." plus "try 'prog --help'" and exit(2). */
LBDPO_NORETURN void die_usage(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* error: print "prog: error: ..." and return -1. */
int error(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* warning: print "prog: warning: ..." */
void warning(const char *fmt, ...) LBDPO_PRINTF(1, 2);
/* info: print "prog: ..." to stderr unless quiet. */
void info(const char *fmt, ...) LBDPO_PRINTF(1, 2);
extern int lbdpo_quiet;

/* Hook run by die() before exiting (e.g. remove a temporary output). */
void atdie(void (*fn)(void));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Grow *p (of *cap elements of size elsz) to hold at least need elements. */
void xgrow(void **p, size_t *cap, size_t need, size_t elsz);

/* Output files: written to "<path>.tmp.<pid>" and renamed on close, so a
 * failed run never leaves a half-written file. path "-" or NULL = stdout. */
typedef struct outfile {
	FILE *fp;
	char *path; /* final path, NULL for stdout */
	char *tmp;  /* temporary path, NULL for stdout and direct writes */
	int direct; /* a device or FIFO: written in place, no rename */
} outfile;
outfile *out_open(const char *path);
/* Flush, fsync, close and rename; dies on any write error. */
void out_close(outfile *o);
/* Remove the temporary file of every open outfile (called by die()). */
void out_abort_all(void);

/* Map a regular file read-only; *len is its size (an empty file gives a
 * valid pointer to no bytes). Dies naming the file. */
const void *map_file(const char *path, size_t *len);
void unmap_file(const void *p, size_t len);

/* Input: path "-" or NULL = stdin. Dies with the file name on failure. */
FILE *in_open(const char *path);
const char *in_name(const char *path); /* "<stdin>" or path */

/* Check and close stdout; die if anything was lost (full disk, EPIPE). */
void close_stdout(void);

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

#endif
