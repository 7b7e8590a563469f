/* runtime.cu — device selection, memory, the cuBLAS handle and the
 * row-major GEMM of the CUDA backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/nn/cuda/check.h"
#include "libcore/nn/cuda/gemm_map.h"

static int g_dev = -1;
static cublasHandle_t g_blas;
static int g_tf32;
static void *g_scratch;
static size_t g_scratch_bytes;

int cuda_probe(char *why, size_t n)
{
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess) {
		snprintf(why, n, "no CUDA GPU: %s", cudaGetErrorString(e));
		cudaGetLastError(); /* clear it: later calls must not report it again */
		return 0;
	}
	if (count == 0)
		snprintf(why, n, "no CUDA GPU: the driver reports 0 devices");
	return count;
}

int cuda_select(const char *spec)
{
	long idx = 0;
	if (strncmp(spec, "cuda", 4) || (spec[4] && spec[4] != ':'))
		die("--device %s: expected cpu, cuda or cuda:N", spec);
	if (spec[4] == ':') {
		char *end;
		errno = 0;
		idx = strtol(spec + 5, &end, 10);
		if (!spec[5] || *end || errno || idx < 0 || idx > 1024)
			die("--device %s: expected cuda:N with N a device number", spec);
	}
	char why[256];
	int count = cuda_probe(why, sizeof why);
	if (count == 0)
		die("--device %s: %s", spec, why);
	if (idx >= count)
		die("--device %s: device %ld does not exist (%d CUDA device%s: 0..%d)", spec, idx, count,
		    count == 1 ? "" : "s", count - 1);
	if (g_dev >= 0 && g_dev != idx)
		die("--device %s: device %d is already in use by this process", spec, g_dev);
	if (g_dev < 0) {
		CUDA_CHECK(cudaSetDevice((int)idx));
		CUBLAS_CHECK(cublasCreate(&g_blas));
		/* Results must not depend on cuBLAS picking split-K atomics. */
		CUBLAS_CHECK(cublasSetAtomicsMode(g_blas, CUBLAS_ATOMICS_NOT_ALLOWED));
		g_dev = (int)idx;
	}
	return g_dev;
}

void cuda_device_info(char *name, size_t n, size_t *total_bytes)
{
	cudaDeviceProp p;
	if (g_dev < 0)
		die("cuda: no device selected");
	CUDA_CHECK(cudaGetDeviceProperties(&p, g_dev));
	snprintf(name, n, "%s", p.name);
	if (total_bytes)
		*total_bytes = p.totalGlobalMem;
}

void cuda_set_tf32(int on) { g_tf32 = on != 0; }

int cuda_tf32(void) { return g_tf32; }

cublasComputeType_t cuda_compute_type(void) { return g_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F; }

cublasHandle_t cuda_blas(void)
{
	if (g_dev < 0)
		die("cuda: no device selected (cuda_select first)");
	return g_blas;
}

void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

/* ------------------------------------------------------------- memory */

void *cuda_alloc(size_t bytes)
{
	void *p = NULL;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e == cudaErrorMemoryAllocation) {
		cudaGetLastError();
		size_t fr = 0, tot = 0;
		cudaMemGetInfo(&fr, &tot);
		die("cuda: out of GPU memory: asked for %zu bytes (%.1f MiB) with %.1f of %.1f MiB free; "
		    "lower the batch tokens (--batch-tokens) or the sequence length",
		    bytes, bytes / 1048576.0, fr / 1048576.0, tot / 1048576.0);
	}
	CUDA_CHECK(e);
	return p;
}

void cuda_free(void *d)
{
	if (d)
		CUDA_CHECK(cudaFree(d));
}

void cuda_upload(void *d, const void *host, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
}

void cuda_download(void *host, const void *d, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemcpy(host, d, bytes, cudaMemcpyDeviceToHost));
}

void cuda_memset0(void *d, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemset(d, 0, bytes));
}

void *cuda_scratch(size_t bytes)
{
	if (bytes > g_scratch_bytes) {
		cuda_free(g_scratch);
		g_scratch = cuda_alloc(bytes);
		g_scratch_bytes = bytes;
	}
	return g_scratch;
}

/* --------------------------------------------------------------- gemm */

void rm_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
	      int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) { /* C = beta·C, as BLAS does for an empty product */
		if (beta == 0.0f) {
			for (int r = 0; r < M; r++)
				cuda_memset0(C + (size_t)r * ldc, sizeof(float) * N);
		} else if (beta != 1.0f) {
			for (int r = 0; r < M; r++)
				cuda_scale_inplace(C + (size_t)r * ldc, N, beta);
		}
		return;
	}
	lb_colmajor_gemm g = lb_gemm_from_rowmajor(transA, transB, M, N, K, lda, ldb, ldc);
	CUBLAS_CHECK(cublasGemmEx(cuda_blas(), g.opa ? CUBLAS_OP_T : CUBLAS_OP_N, g.opb ? CUBLAS_OP_T : CUBLAS_OP_N,
				  g.m, g.n, g.k, &alpha, B, CUDA_R_32F, g.lda, A, CUDA_R_32F, g.ldb, &beta, C,
				  CUDA_R_32F, g.ldc, cuda_compute_type(), CUBLAS_GEMM_DEFAULT));
}
