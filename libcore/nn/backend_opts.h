/* backend_opts.h — the command-line group of every program that computes:
 * --device, --tf32 and -t/--threads. It lives apart from backend.h so that
 * the compute interface does not depend on the command line (base/cli.h). */
#ifndef LBDPO_BACKEND_OPTS_H
#define LBDPO_BACKEND_OPTS_H

#include "base/cli.h"
#include "libcore/nn/backend.h"

/* The options of every program that computes: --device, --tf32 and
 * -t/--threads. One group of rows in its option table (base/cli.h), one
 * parse and one apply, so their names, limits and help read the same in
 * all six programs:
 *
 *	backend_opts bo = {0};
 *	... while ((key = cli_next(&c)) != -1) {
 *		if (backend_opts_parse(&bo, key, c.arg)) continue;
 *		switch (key) ...
 *	backend_opts_apply(&bo);   // before loading a model
 */
enum { BACKEND_KEY_DEVICE = 1000, BACKEND_KEY_TF32, BACKEND_KEY_THREADS };
#define BACKEND_CLI_OPTS                                                                                     \
	CLI_OPT(BACKEND_KEY_DEVICE, 0, "device", "DEV",                                                      \
		"cpu, cuda or cuda:N (default: cuda if built with CUDA and a GPU is present, else cpu)"),    \
	CLI_OPT(BACKEND_KEY_TF32, 0, "tf32", NULL,                                                           \
		"on a GPU, allow TF32 tensor-core math in the matrix products (about 1e-3 relative; "     \
		"default: fp32, comparable with the CPU)"),                                                  \
	CLI_OPT(BACKEND_KEY_THREADS, 't', "threads", "N",                                                    \
		"compute threads, OpenMP and OpenBLAS (default: OMP_NUM_THREADS, else one per core)")
typedef struct {
	const char *device; /* --device, NULL: the default */
	int tf32;           /* --tf32 */
	int threads;        /* --threads, 0: the libraries' default */
} backend_opts;
/* 1 when key is one of BACKEND_CLI_OPTS's (its value stored; a bad thread
 * count dies with a usage error), else 0. */
int backend_opts_parse(backend_opts *o, int key, const char *arg);
/* backend_set_tf32, backend_select_device, then the thread count. */
void backend_opts_apply(const backend_opts *o);

#endif
