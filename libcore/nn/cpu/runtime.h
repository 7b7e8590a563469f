/* cpu.h — what the CPU can do and which OpenBLAS kernel runs on it.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from a table of
 * CPU models it knew when it was released; on a newer model it falls back to
 * an old SSE core ("Prescott") and sgemm runs 4-5x slower (measured on an
 * Intel Xeon family 6 model 207: 65 vs 310 GFLOP/s). OPENBLAS_CORETYPE,
 * read when the library loads, overrides the choice; lbdpo_runtime_init()
 * sets it before its re-exec when cpu_blas_core_fix() says so. */
#ifndef LBDPO_CPU_H
#define LBDPO_CPU_H

#include <stdio.h>

/* Instruction-set levels, each including the ones below. */
enum { CPU_SSE = 0, CPU_AVX = 1, CPU_AVX2 = 2, CPU_AVX512 = 3 };

typedef struct {
	int level; /* CPU_SSE .. CPU_AVX512, usable (the OS saves the registers) */
	int amd;   /* vendor AMD (Zen kernels rather than Haswell for AVX2) */
} cpu_features;

/* This CPU, from __builtin_cpu_supports; the level is AVX2 only with FMA,
 * AVX-512 only with F, CD, BW, DQ and VL (what OpenBLAS's SkylakeX needs). */
cpu_features cpu_detect(void);

/* The OpenBLAS core to force for a CPU with features f when OpenBLAS chose
 * `core` (openblas_get_corename()), or NULL to keep it: a core is replaced
 * only when it is a known older core whose instruction set is below what the
 * CPU supports. Names this table does not know (a newer OpenBLAS's) are
 * trusted. AVX-512 → SkylakeX (0.3.21 cannot force "Cooperlake"), AVX2 →
 * Zen on AMD, Haswell otherwise, AVX → Sandybridge. Pure: no I/O. */
const char *cpu_blas_core_fix(const char *core, cpu_features f);

/* Unless the user set OPENBLAS_CORETYPE, set it to cpu_blas_core_fix()'s
 * answer for the running OpenBLAS and CPU; 1 when it did (the variable takes
 * effect only in a new process: lbdpo_runtime_init re-executes). After the
 * re-exec the variable is set, so this fires once. */
int cpu_blas_env_fix(void);

/* "OpenBLAS 0.3.21 ... , core SkylakeX, 2 threads" */
void cpu_blas_describe(char *buf, size_t n);

/* The --version text of every program: "PROG lbdpo VERSION" then a line
 * "BLAS: ..." (cpu_blas_describe) and the SIMD path of the kernels. */
void print_version(const char *prog);

/* LBDPO_KERNEL before a hot function compiles it three times, for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA) and the build's baseline, and
 * lets the loader pick one for the running CPU (GCC target_clones, an
 * ifunc): portable binaries that still use the wide vectors. OpenMP regions
 * inside are cloned with their function. Static helpers called from such a
 * function must be inlined into it (LBDPO_INLINE) to get the wide code. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && !defined(LBDPO_NO_CLONES)
#define LBDPO_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LBDPO_KERNEL
#endif
#define LBDPO_INLINE static inline __attribute__((always_inline))

/* The kernel path the loader picks on this CPU: "x86-64-v4", "x86-64-v3"
 * or "baseline" (matches LBDPO_KERNEL's choice); in a build without clones
 * (ARCHFLAGS), the vector width that build was compiled for. */
const char *cpu_kernel_path(void);

#endif
