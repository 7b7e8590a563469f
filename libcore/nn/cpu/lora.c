/* lora.c — the CPU kernels of LoRA adapters (libcore/nn/lora.c): a strided
 * sgemm for products on column slices of a fused matmul's output, and the
 * dropout whose mask the backward recomputes. kernels.h documents each.
 */
#include "libcore/nn/cpu/kernels.h"

#include <cblas.h>

#include "base/rng.h"
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
	 * hash: base/rng.h's generator's (i+1)-th number from key, drawn
	 * without the steps before so the loop runs in parallel); kept
	 * elements are scaled by 1/(1 - p), as torch.nn.Dropout does */
	const float keep = 1.0f / (1.0f - p);
	const uint64_t thr = (uint64_t)((double)p * 18446744073709551616.0);
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		const uint64_t z = rng_mix(key + (i + 1) * RNG_GAMMA);
		out[i] = z >= thr ? x[i] * keep : 0.0f;
	}
}
