/* cublas_v2.h — cublasGemmEx and friends for the CPU emulator: the GEMM is
 * cblas in column-major order, which is exactly cuBLAS's contract, so the
 * emulated run checks libcore/nn/cuda's row-major argument mapping too. */
#ifndef LBDPO_EMU_CUBLAS_H
#define LBDPO_EMU_CUBLAS_H

#include <cblas.h>

#include "tests/gpu/emu/emu.h"

typedef struct emu_blas *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_ATOMICS_NOT_ALLOWED = 0 } cublasAtomicsMode_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUDA_R_32F = 0 } cudaDataType;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

static inline cublasStatus_t cublasCreate(cublasHandle_t *h) { return *h = (cublasHandle_t)h, CUBLAS_STATUS_SUCCESS; }
static inline cublasStatus_t cublasSetAtomicsMode(cublasHandle_t, cublasAtomicsMode_t) { return CUBLAS_STATUS_SUCCESS; }
static inline const char *cublasGetStatusString(cublasStatus_t s) { return s ? "emulated error" : "success"; }

static inline cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
					  int k, const void *alpha, const void *A, cudaDataType, int lda, const void *B,
					  cudaDataType, int ldb, const void *beta, void *C, cudaDataType, int ldc,
					  cublasComputeType_t, cublasGemmAlgo_t)
{
	/* cuBLAS rejects leading dimensions smaller than the stored rows */
	if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m || lda < 1 || ldb < 1 || ldc < 1)
		return CUBLAS_STATUS_INVALID_VALUE;
	emu_need_dev(A, "cublasGemmEx", 8), emu_need_dev(B, "cublasGemmEx", 11), emu_need_dev(C, "cublasGemmEx", 15);
	cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
		    *(const float *)alpha, (const float *)A, lda, (const float *)B, ldb, *(const float *)beta,
		    (float *)C, ldc);
	return CUBLAS_STATUS_SUCCESS;
}

#endif
