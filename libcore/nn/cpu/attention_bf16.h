/* attention_bf16.h — attention's products in bf16 (attention_bf16.c).
 *
 * attention_forward/backward's plain path (no score scale, no soft-cap, hd a
 * multiple of 32) with the inner products on AVX512-BF16: inputs rounded to
 * bf16, fp32 accumulation, everything else as the fp32 kernels. Each
 * returns 1 when it did the work, 0 when the caller must run the fp32 kernel
 * (bf16 products off — gemm_bf16_on() — or a CPU without AVX512-BF16, or a
 * case it does not cover). Same arguments as kernels.h's. */
#ifndef LBDPO_ATTENTION_BF16_H
#define LBDPO_ATTENTION_BF16_H

#include <math.h>

#include "libcore/nn/cpu/vexp.h"

int attention_forward_bf16(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc, int T,
			   int H, int KV, int hd, float scale, float cap);
int attention_backward_bf16(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			    const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			    int KV, int hd, float scale, float cap);

/* The softmax numerators of one key for the 16 query lanes of a blocked
 * kernel (attention.c and attention_bf16.c): r[a] = e^{r[a] − mx[a]}, 0
 * where r[a] is −∞ (a key the lane does not see), and sum[a] += r[a]. */
static inline __attribute__((always_inline)) void att_exp_lanes(float *restrict r, const float *mx, float *sum)
{
#pragma omp simd
	for (int a = 0; a < 16; a++) {
		float e = r[a] > -INFINITY ? vexpf(r[a] - mx[a]) : 0.0f;
		r[a] = e;
		sum[a] += e;
	}
}

#endif
