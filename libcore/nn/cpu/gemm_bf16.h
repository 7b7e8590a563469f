/* gemm_bf16.h — matrix products with bf16 inputs and fp32 accumulation.
 *
 * The --dtype bf16 path of the CPU backend. CPUs of the last years multiply
 * bf16 at twice their fp32 rate or more (AVX512-BF16's vdpbf16ps on AMD Zen
 * 4/5 and Intel Cooper Lake, AMX tiles on Intel Sapphire Rapids and later);
 * Debian's OpenBLAS 0.3.21 has no bf16 GEMM, so the products go through
 * oneDNN (libdnnl, the library PyTorch uses for the same), through its
 * matmul primitive: one primitive per shape, created once and cached.
 *
 * The fp32 operands are rounded to bf16 (round to nearest even: 8 bits of
 * mantissa, a relative error of at most 2^-9 per element) into scratch
 * buffers; the products accumulate in fp32 and write (or add to) an fp32
 * result. Built without oneDNN (libdnnl-dev absent), or on a CPU without
 * bf16 instructions, gemm_bf16_path() says so and gemm_bf16_ok() is 0: the
 * callers then stay on fp32 (never a slow emulation: oneDNN would emulate
 * bf16 on plain AVX-512, slower than sgemm). */
#ifndef LBDPO_GEMM_BF16_H
#define LBDPO_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/* 1 when bf16 products run in hardware here (built with oneDNN and the CPU
 * has AVX512-BF16 or AMX), else 0. Cheap after the first call. */
int gemm_bf16_ok(void);
/* The bf16 path for --version and the benchmarks: "AMX (oneDNN 2.6.3)",
 * "AVX512-BF16 (oneDNN 2.6.3)", or "none (...why...)". */
const char *gemm_bf16_path(void);
/* The parts of the probe, apart so that a test can hand them an AMX CPU:
 * the path oneDNN's effective ISA (dnnl_get_effective_cpu_isa's bits) gives,
 * 2 AMX, 1 AVX512-BF16, 0 none (always 0 built without oneDNN); and the
 * text of gemm_bf16_path for a path, the library ("oneDNN 2.6.3") and the
 * environment setting that capped the ISA ("DNNL_MAX_CPU_ISA=AVX512_CORE",
 * or NULL). */
int gemm_bf16_isa_path(unsigned isa);
void gemm_bf16_describe(char *buf, size_t n, int path, const char *lib, const char *cap);

/* C = op(A)·op(B) + (accumulate ? C : 0), row-major like cblas_sgemm with
 * alpha 1 and beta 0 or 1: op(A) is [M,K], op(B) is [K,N], C is [M,N] with
 * row stride ldc; ta/tb 1 when A (stored [K,M]) or B (stored [N,K]) is
 * transposed. A and B are fp32 and rounded to bf16 first. Only after
 * gemm_bf16_ok() said 1. */
void gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, int accumulate,
	       float *C, int ldc);

/* The products of layers.c (cblas_sgemm's row-major call with alpha 1 and
 * beta 0 or 1): in bf16 while gemm_bf16_set(1) holds and the product is
 * not tiny (every side at least GEMM_BF16_MIN: a reward model's one-column
 * score head, a batch of one token, stay fp32), else cblas_sgemm itself,
 * so fp32 results are those of sgemm bit for bit. */
enum { GEMM_BF16_MIN = 16 };
void gemm_rm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
	     float *C, int ldc);
/* Turn the bf16 products of gemm_rm on (1) or off (0, the default); on
 * only where gemm_bf16_ok() (the caller checks: backend_set_dtype). */
void gemm_bf16_set(int on);
int gemm_bf16_on(void);

/* dst[i] = src[i] rounded to bf16 (nearest even; NaN stays NaN), the upper
 * 16 bits of the fp32 pattern. Rows of n; vectorized. */
void bf16_from_f32(uint16_t *dst, const float *src, size_t n);
/* dst[i] = src[i] widened to fp32 (exact). */
void bf16_to_f32(float *dst, const uint16_t *src, size_t n);

#endif
