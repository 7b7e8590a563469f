/* cuda_runtime.h — the part of the CUDA runtime API libcore/nn/cuda uses,
 * on host memory, for the CPU emulator (see emu.h). One "device". */
#ifndef LBDPO_EMU_CUDA_RUNTIME_H
#define LBDPO_EMU_CUDA_RUNTIME_H

#include <stdlib.h>
#include <string.h>

#include "tests/gpu/emu/emu.h"

typedef enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1 } cudaError_t;
typedef enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 } cudaMemcpyKind;
struct cudaDeviceProp {
	char name[256];
	size_t totalGlobalMem;
};

static inline const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int *n) { return *n = 1, cudaSuccess; }
static inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int)
{
	strcpy(p->name, "CPU emulator (tests/gpu/emu)");
	p->totalGlobalMem = (size_t)1 << 34;
	return cudaSuccess;
}
static inline cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot)
{
	*fr = *tot = (size_t)1 << 34;
	return cudaSuccess;
}
static inline cudaError_t cudaMalloc(void **p, size_t n)
{
	/* the emulated device has 16 GiB: larger requests fail like cudaMalloc */
	*p = n > ((size_t)1 << 34) ? NULL : malloc(n);
	if (!*p)
		return cudaErrorMemoryAllocation;
	memset(*p, 0xff, n);
	emu_dev_add(*p, n);
	return cudaSuccess;
}
static inline cudaError_t cudaFree(void *p)
{
	if (p && !emu_dev_del(p))
		return cudaErrorInvalidValue;
	return free(p), cudaSuccess;
}
static inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k)
{
	if (k == cudaMemcpyHostToDevice)
		emu_need_dev(d, "cudaMemcpy(HostToDevice)", 1), emu_need_host(s, "cudaMemcpy(HostToDevice)", 2);
	else if (k == cudaMemcpyDeviceToHost)
		emu_need_host(d, "cudaMemcpy(DeviceToHost)", 1), emu_need_dev(s, "cudaMemcpy(DeviceToHost)", 2);
	else
		emu_need_dev(d, "cudaMemcpy(DeviceToDevice)", 1), emu_need_dev(s, "cudaMemcpy(DeviceToDevice)", 2);
	return memmove(d, s, n), cudaSuccess;
}
static inline cudaError_t cudaMemset(void *d, int v, size_t n)
{
	emu_need_dev(d, "cudaMemset", 1);
	return memset(d, v, n), cudaSuccess;
}

#endif
