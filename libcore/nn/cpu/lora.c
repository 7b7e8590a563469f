/* lora.c — the CPU kernels of LoRA adapters (libcore/nn/lora.c): a strided
 * sgemm for products on column slices of a fused matmul's output, and the
 * dropout whose mask the backward recomputes. kernels.h documents each.
 */
#include "libcore/nn/cpu/kernels.h"

#include <cblas.h>

#include "libcore/nn/cpu/runtime.h"

void gemm_strided(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
		  float beta, float *Cm, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
		    lda, B, ldb, beta, Cm, ldc);
}

LBDPO_KERNEL void dropout_mask(float *out, const float *x, size_t n, float p, uint64_t key)
{
	/* element i is kept iff its hash, a uniform in [0, 1), is >= p (the
	 * hash: splitmix64's output function at key + (i+1)·γ, the state of
	 * base/rng.h's generator after i+1 steps from key, computed without the
	 * steps so the loop runs in parallel); kept
	 * elements are scaled by 1/(1 - p), as torch.nn.Dropout does */
	const float keep = 1.0f / (1.0f - p);
	const uint64_t thr = (uint64_t)((double)p * 18446744073709551616.0);
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ULL;
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
		z ^= z >> 31;
		out[i] = z >= thr ? x[i] * keep : 0.0f;
	}
}
