/* gemm_map.h — a row-major GEMM as a column-major (cuBLAS) call.
 *
 * A row-major matrix X [r,c] with leading dimension ld is, read column-major,
 * Xᵀ [c,r] with the same ld. So row-major C = op(A)·op(B) is column-major
 * Cᵀ = op(B)ᵀ·op(A)ᵀ: the same call with the operands swapped, M and N
 * swapped, and every transpose flag and leading dimension kept. The CUDA
 * kernels call cuBLAS with exactly the cblas RowMajor arguments of the CPU
 * code through this mapping (plain C so tests/unit/test_gemm_map.c checks it
 * on the CPU against cblas).
 */
#ifndef LBDPO_GEMM_MAP_H
#define LBDPO_GEMM_MAP_H

typedef struct {
	int opa, opb; /* 1 = transpose the first / second column-major operand */
	int m, n, k;  /* column-major C [m,n] = op(first)[m,k] · op(second)[k,n] */
	int lda, ldb, ldc;
	/* the first column-major operand is the row-major B, the second the
	 * row-major A */
} lb_colmajor_gemm;

static inline lb_colmajor_gemm lb_gemm_from_rowmajor(int transA, int transB, int M, int N, int K, int lda, int ldb,
						     int ldc)
{
	lb_colmajor_gemm g;
	g.opa = transB;
	g.opb = transA;
	g.m = N;
	g.n = M;
	g.k = K;
	g.lda = ldb;
	g.ldb = lda;
	g.ldc = ldc;
	return g;
}

#endif
