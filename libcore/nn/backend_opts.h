/* backend_opts.h — the command-line group of every program that computes:
 * --device, --tf32 and -t/--threads. It lives apart from backend.h so that
 * the compute interface does not depend on the command line (base/cli.h). */
#ifndef LBDPO_BACKEND_OPTS_H
#define LBDPO_BACKEND_OPTS_H

#include "base/cli.h"
#include "libcore/nn/backend.h"

typedef struct {
	const char *device; /* --device, NULL: the default */
	int tf32;           /* --tf32 */
	int threads;        /* --threads, 0: the libraries' default */
	int dtype;          /* --dtype: BACKEND_FP32 (default), BACKEND_BF16, BACKEND_AUTO */
} backend_opts;
/* --dtype's values, by BACKEND_FP32.. (backend.h), NULL-terminated */
extern const char *const backend_dtype_names[];

/* The options of every program that computes: --device, --tf32, --dtype
 * (--bf16) and -t/--threads, as typed rows (base/cli.h) storing into *bo, so their names,
 * limits and help read the same in all seven programs:
 *
 *	backend_opts bo = {0};
 *	const cli_opt opts[] = {..., BACKEND_CLI_OPTS(&bo), ..., {0}};
 *	program_start(&c, &spec, argc, argv);
 *	... cli_next / cli_parse ...
 *	backend_opts_apply(&bo);   // before loading a model
 */
#define BACKEND_CLI_OPTS(bo)                                                                                                 \
	OPT_STRING(0, "device", "DEV", &(bo)->device,                                                                        \
		   "cpu, cuda or cuda:N (default: cuda if built with CUDA and a GPU is present, else cpu)"),                 \
		OPT_BOOL(0, "tf32", &(bo)->tf32,                                                                             \
			 "on a GPU, allow TF32 tensor-core math in the matrix products (about 1e-3 relative; "               \
			 "default: fp32, comparable with the CPU)"),                                                         \
		OPT_ENUM(                                                                                                    \
			0, "dtype", "T", &(bo)->dtype, backend_dtype_names,                                                  \
			"fp32 (the default), bf16: on the CPU, matrix products (attention's too) with bf16 inputs and fp32 " \
			"accumulation (AVX512-BF16 or AMX; an error without them), auto: bf16 where the CPU has it, "        \
			"else fp32"),                                                                                        \
		OPT_SET(0, "bf16", &(bo)->dtype, BACKEND_BF16, "the same as --dtype bf16 (TRL's spelling)"),                 \
		OPT_INT('t', "threads", "N", &(bo)->threads, 1, 4096,                                                        \
			"compute threads, OpenMP and OpenBLAS (default: OMP_NUM_THREADS, else one per core)")
/* backend_set_tf32, backend_select_device, backend_set_dtype, then the
 * thread count. */
void backend_opts_apply(const backend_opts *o);

/* The prologue of every program that computes: its name in messages
 * (spec->prog), the runtime (lbdpo_runtime_init, which may re-execute the
 * program with OpenBLAS's and OpenMP's settings), then cli_start. */
void program_start(cli *c, const cli_spec *spec, int argc, char **argv);

#endif
