/* test_gemm_map.c — the row-major → column-major GEMM mapping that every
 * cuBLAS call of libcore/nn/cuda goes through (libcore/nn/cuda/gemm_map.h),
 * checked on the CPU: a plain column-major GEMM with the mapped arguments
 * (operands swapped) must equal cblas_sgemm RowMajor with the original ones,
 * for all four transpose combinations, odd sizes and padded leading
 * dimensions. This needs no GPU: it is the part of the matrix products that
 * can be wrong by reading alone. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "libcore/nn/cuda/gemm_map.h"

/* Column-major C[m,n] = alpha·op(X)[m,k]·op(Y)[k,n] + beta·C, the reference
 * semantics of cublasSgemm. */
static void colmajor_sgemm(int opx, int opy, int m, int n, int k, float alpha, const float *X, int ldx, const float *Y,
			   int ldy, float beta, float *C, int ldc)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++) {
			double s = 0;
			for (int l = 0; l < k; l++) {
				float x = opx ? X[l + (size_t)i * ldx] : X[i + (size_t)l * ldx];
				float y = opy ? Y[j + (size_t)l * ldy] : Y[l + (size_t)j * ldy];
				s += (double)x * y;
			}
			C[i + (size_t)j * ldc] = (float)(alpha * s + beta * C[i + (size_t)j * ldc]);
		}
}

static uint64_t st = 7;
static float frand(void)
{
	st = st * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((st >> 40) * 0x1.0p-24 * 2.0 - 1.0);
}

static void one(int tA, int tB, int M, int N, int K, int pad, float beta)
{
	/* row-major stored shapes: A is [M,K] (or [K,M] when transposed) */
	const int ra = tA ? K : M, ca = tA ? M : K, rb = tB ? N : K, cb = tB ? K : N;
	const int lda = ca + pad, ldb = cb + pad, ldc = N + pad;
	float *A = malloc(sizeof(float) * ra * lda), *B = malloc(sizeof(float) * rb * ldb);
	float *C1 = malloc(sizeof(float) * M * ldc), *C2 = malloc(sizeof(float) * M * ldc);
	for (int i = 0; i < ra * lda; i++)
		A[i] = frand();
	for (int i = 0; i < rb * ldb; i++)
		B[i] = frand();
	for (int i = 0; i < M * ldc; i++)
		C1[i] = C2[i] = frand();
	cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, 0.5f, A,
		    lda, B, ldb, beta, C1, ldc);
	lb_colmajor_gemm g = lb_gemm_from_rowmajor(tA, tB, M, N, K, lda, ldb, ldc);
	colmajor_sgemm(g.opa, g.opb, g.m, g.n, g.k, 0.5f, B, g.lda, A, g.ldb, beta, C2, g.ldc);
	for (int r = 0; r < M; r++)
		for (int c = 0; c < ldc; c++) {
			float a = C1[r * ldc + c], b = C2[r * ldc + c];
			cr_assert(fabsf(a - b) <= 1e-5f * (1 + fabsf(a)),
				  "tA=%d tB=%d M=%d N=%d K=%d pad=%d: C[%d,%d] cblas %g, mapped %g", tA, tB, M, N, K,
				  pad, r, c, a, b);
		}
	free(A), free(B), free(C1), free(C2);
}

Test(gemm_map, all_transposes_odd_sizes)
{
	const int sz[][3] = {{1, 1, 1}, {1, 17, 5}, {13, 1, 7}, {9, 11, 1}, {33, 65, 47}, {4, 96, 64}};
	for (int tA = 0; tA < 2; tA++)
		for (int tB = 0; tB < 2; tB++)
			for (size_t s = 0; s < sizeof sz / sizeof sz[0]; s++)
				for (int pad = 0; pad < 4; pad += 3) {
					one(tA, tB, sz[s][0], sz[s][1], sz[s][2], pad, 0.0f);
					one(tA, tB, sz[s][0], sz[s][1], sz[s][2], pad, 1.0f);
				}
}
