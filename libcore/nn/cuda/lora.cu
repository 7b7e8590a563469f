/* lora.cu — the kernels of LoRA adapters on the GPU: the strided GEMM of
 * products on column slices of a fused matmul's output, and the dropout
 * whose mask the backward recomputes. CPU twins in libcore/nn/cpu/lora.c
 * (same names without cuda_; formulas in libcore/nn/cpu/kernels.h). */
#include <stdint.h>

#include "libcore/nn/cuda/check.h"

#define NT 256

/* CPU twin: gemm_strided; the cblas RowMajor arguments unchanged (rm_sgemm). */
void cuda_gemm_strided(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
		       int ldb, float beta, float *Cm, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	rm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc);
}

/* CPU twin: dropout_mask, the same hash of (key, i) per element. */
__global__ void dropout_mask_k(float *out, const float *x, size_t n, float keep, uint64_t thr, uint64_t key)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ULL;
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
		z ^= z >> 31;
		out[i] = z >= thr ? x[i] * keep : 0.0f;
	}
}

void cuda_dropout_mask(float *out, const float *x, size_t n, float p, uint64_t key)
{
	if (n == 0)
		return;
	const float keep = 1.0f / (1.0f - p);
	const uint64_t thr = (uint64_t)((double)p * 18446744073709551616.0);
	LAUNCH(dropout_mask_k, grid_for(n, NT), NT, out, x, n, keep, thr, key);
	LAUNCH_CHECK();
}
