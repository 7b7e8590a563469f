/* emu.h — a CPU emulator of the CUDA execution model, just enough to run
 * libcore/nn/cuda's kernels unchanged on a machine without a GPU (g++ with
 * -DLBDPO_CUDA_EMU -Itests/gpu/emu): blocks run one after another; the
 * threads of a block are coroutines that switch at __syncthreads and warp
 * shuffles, so barriers, shared memory and butterfly reductions behave as
 * on the device. A thread that reaches a barrier its warp or block never
 * completes (divergent barriers) aborts the run. Slow: for small shapes.
 * It checks the kernels' indexing, reductions and synchronization, not
 * device-specific behaviour (memory model, rounding of GPU math).
 *
 * Device memory is tracked: cudaMalloc registers each block (filled with
 * 0xff bytes, NaN as floats, as uninitialized device memory may hold
 * anything), and every pointer handed to a kernel, to cudaMemcpy in the
 * device role, to cudaMemset or to cuBLAS must lie in one; a host pointer
 * where the device expects its own memory (a fault on a real GPU) aborts
 * the run naming the call. */
#ifndef LBDPO_EMU_H
#define LBDPO_EMU_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include <functional>

struct dim3 {
	unsigned x, y, z;
	dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

const dim3 &emu_tid(void);
const dim3 &emu_bid(void);
const dim3 &emu_bdim(void);
const dim3 &emu_gdim(void);
void emu_syncthreads(void);
void emu_syncwarp(void);
int emu_lane_linear(void);
void *emu_lane_slot(int linear); /* 8 bytes of exchange space per thread */
void emu_run(dim3 grid, dim3 block, const std::function<void()> &fn);

/* The device-memory registry (emu.cc). */
void emu_dev_add(void *p, size_t n);
int emu_dev_del(void *p); /* 0 when p is not a registered block */
int emu_is_dev(const void *p);
void emu_need_dev(const void *p, const char *call, int arg); /* arg 1-based; NULL passes */
void emu_need_host(const void *p, const char *call, int arg);

template <typename T> inline void emu_arg(const char *, int, const T &) {}
template <typename T> inline void emu_arg(const char *k, int i, T *p) { emu_need_dev(p, k, i); }
template <typename... A> inline void emu_check_args(const char *k, const A &...a)
{
	int i = 0;
	(emu_arg(k, ++i, a), ...); /* 1-based, as in messages */
}

template <typename F> F emu_shfl_xor(F v, int o)
{
	static_assert(sizeof(F) <= 8, "shuffle of at most 8 bytes");
	const int me = emu_lane_linear(), partner = (me & ~31) | ((me & 31) ^ o);
	memcpy(emu_lane_slot(me), &v, sizeof v);
	emu_syncwarp();
	F r;
	memcpy(&r, emu_lane_slot(partner), sizeof r);
	emu_syncwarp(); /* nobody overwrites a slot before every lane read it */
	return r;
}

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __syncthreads() emu_syncthreads()
#define __shfl_xor_sync(mask, v, o) emu_shfl_xor((v), (o))
#define threadIdx (emu_tid())
#define blockIdx (emu_bid())
#define blockDim (emu_bdim())
#define gridDim (emu_gdim())
#define LAUNCH(k, grid, block, ...)                                                                                    \
	(emu_check_args(#k, __VA_ARGS__), emu_run(dim3(grid), dim3(block), [=]() { k(__VA_ARGS__); }))

#endif
