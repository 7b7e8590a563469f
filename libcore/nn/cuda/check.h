/* check.h — internal to libcore/nn/cuda: error checks, the cuBLAS handle,
 * launch helpers and warp/block reductions shared by the .cu files. */
#ifndef LBDPO_CUDA_CHECK_H
#define LBDPO_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "libcore/nn/cuda/cuda.h"

extern "C" {
#include "base/util.h"
}

/* Every CUDA call: die naming the call and CUDA's reason. */
#define CUDA_CHECK(call)                                                                                               \
	do {                                                                                                           \
		cudaError_t e_ = (call);                                                                               \
		if (e_ != cudaSuccess)                                                                                 \
			die("cuda: %s (%s:%d): %s", #call, __FILE__, __LINE__, cudaGetErrorString(e_));                \
	} while (0)

/* Every cuBLAS call. */
#define CUBLAS_CHECK(call)                                                                                             \
	do {                                                                                                           \
		cublasStatus_t s_ = (call);                                                                            \
		if (s_ != CUBLAS_STATUS_SUCCESS)                                                                       \
			die("cublas: %s (%s:%d): %s", #call, __FILE__, __LINE__, cublasGetStatusString(s_));           \
	} while (0)

/* kernel<<<grid, block>>>(args...), spelled as a macro so that the CPU
 * emulator of tests/gpu/emu (which defines its own) can run the same code. */
#ifndef LAUNCH
#define LAUNCH(k, grid, block, ...) k<<<(grid), (block)>>>(__VA_ARGS__)
#endif

/* After every kernel launch: a bad launch configuration shows here, a
 * fault in the kernel at the next synchronizing call. */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* The handle of the selected device (cuda_select creates it; dies if no
 * device was selected) and the compute type of matrix products. */
cublasHandle_t cuda_blas(void);
cublasComputeType_t cuda_compute_type(void);

/* Grow-only device scratch shared by the ops that need temporaries (one op
 * uses it at a time; the stream orders them). */
void *cuda_scratch(size_t bytes);

/* Row-major C[M,N] = alpha·op(A)·op(B) + beta·C with cblas RowMajor
 * arguments, mapped to column-major cuBLAS by gemm_map.h. */
void rm_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
	      int ldb, float beta, float *C, int ldc);

/* Grid for n items at nt per block, capped (kernels loop grid-stride). */
static inline unsigned grid_for(size_t n, int nt)
{
	size_t b = (n + nt - 1) / nt;
	return (unsigned)(b > (1u << 20) ? (1u << 20) : (b ? b : 1));
}

/* ---- reductions (blockDim.x a multiple of 32, at most 1024) ----
 * xor butterflies: every lane ends with the same, bitwise, value. */
template <typename F> __device__ inline F warp_sum(F v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ inline float warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

template <typename F> __device__ inline F block_sum(F v)
{
	__shared__ F sh[32];
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum(v);
	__syncthreads(); /* sh may still be read by a previous call */
	if (lane == 0)
		sh[w] = v;
	__syncthreads();
	v = (int)threadIdx.x < nw ? sh[threadIdx.x] : F(0);
	if (w == 0)
		v = warp_sum(v);
	if (threadIdx.x == 0)
		sh[0] = v;
	__syncthreads();
	return sh[0];
}

__device__ inline float block_max(float v)
{
	__shared__ float sh[32];
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0)
		sh[w] = v;
	__syncthreads();
	v = (int)threadIdx.x < nw ? sh[threadIdx.x] : -INFINITY;
	if (w == 0)
		v = warp_max(v);
	if (threadIdx.x == 0)
		sh[0] = v;
	__syncthreads();
	return sh[0];
}

#endif
