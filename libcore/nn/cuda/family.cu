/* family.cu — CUDA kernels of the operations the other model families add
 * (Qwen3's per-head norm, GPT-NeoX's exact GELU, Gemma's GeGLU and
 * soft-capping). Each mirrors the CPU function of libcore/nn/cpu/layers.c named
 * beside it (layers.h gives the formulas); rope_part shares the kernels of
 * layers.cu; Gemma's (1 + w) RMSNorm and soft-capped attention are
 * arguments of layers.cu's and attention.cu's. */
#include <math.h>

#include "libcore/nn/cuda/check.h"

#define NT 256   /* threads per block of elementwise kernels */
#define HN_WPB 4 /* warps per block of the per-head norm */

/* ---------------------------------------------------- per-head RMSNorm */

/* CPU twin: headnorm_forward. One warp per (token t, head h), in place on
 * v = x[t·stride + h·hd .. + hd): v ← v·r·(w_off + w),
 * r = 1/sqrt(mean(v²) + eps), Σv² in double; xs keeps the input, rstd the r. */
__global__ void headnorm_fwd_k(float *x, float *xs, float *rstd, const float *w, float w_off, float eps, int T, int nh,
			       int hd, int stride)
{
	const long long gw = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
	const int lane = threadIdx.x & 31;
	if (gw >= (long long)T * nh) /* uniform over the warp */
		return;
	const size_t t = (size_t)(gw / nh), h = (size_t)(gw % nh);
	float *v = x + t * stride + h * hd;
	double ss = 0;
	for (int c = lane; c < hd; c += 32)
		ss += (double)v[c] * v[c];
	ss = warp_sum(ss);
	const float r = (float)(1.0 / sqrt(ss / hd + eps));
	for (int c = lane; c < hd; c += 32) {
		if (xs)
			xs[(t * nh + h) * hd + c] = v[c];
		v[c] = v[c] * r * (w_off + w[c]);
	}
	if (rstd && lane == 0)
		rstd[t * nh + h] = r;
}

void cuda_headnorm_forward(float *x, float *xs, float *rstd, const float *w, float w_off, float eps, int T, int nh,
			   int hd, int stride)
{
	const long long n = (long long)T * nh;
	if (n <= 0)
		return;
	if ((n + HN_WPB - 1) / HN_WPB > 0x7fffffffLL)
		die("cuda: per-head norm over %lld heads is more than one launch handles", n);
	LAUNCH(headnorm_fwd_k, (unsigned)((n + HN_WPB - 1) / HN_WPB), 32 * HN_WPB, x, xs, rstd, w, w_off, eps, T, nh,
	       hd, stride);
	LAUNCH_CHECK();
}

/* CPU twin: headnorm_backward, the dw part (before dx is overwritten):
 * dw[c] += Σ_rows dy·x·r over the rows (t, h), row = t·nh + h. Two
 * fixed-order passes (deterministic, no atomics): block b sums rows
 * [b·HN_ROWS, (b+1)·HN_ROWS) in order into part[b] [hd]; then one thread
 * per channel adds the parts in block order. */
#define HN_ROWS 64
__global__ void headnorm_bwd_dw_part_k(float *part, const float *dx, const float *xs, const float *rstd, int nrows,
				       int nh, int hd, int stride)
{
	const int r0 = blockIdx.x * HN_ROWS, r1 = r0 + HN_ROWS < nrows ? r0 + HN_ROWS : nrows;
	for (int c = threadIdx.x; c < hd; c += blockDim.x) {
		float acc = 0;
		for (int r = r0; r < r1; r++) {
			const size_t t = (size_t)(r / nh), h = (size_t)(r % nh);
			acc += dx[t * stride + h * hd + c] * xs[(size_t)r * hd + c] * rstd[r];
		}
		part[(size_t)blockIdx.x * hd + c] = acc;
	}
}

__global__ void headnorm_bwd_dw_sum_k(float *dw, const float *part, int nb, int hd)
{
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= hd)
		return;
	float acc = 0;
	for (int b = 0; b < nb; b++)
		acc += part[(size_t)b * hd + c];
	dw[c] += acc;
}

/* The dx part, in place: n = x·r, dn = dy·(w_off + w),
 * dx = r·(dn − n·mean(dn·n)). One warp per (t, h); every lane reads its
 * dy values before the warp sum, so the writes after it are safe. */
__global__ void headnorm_bwd_dx_k(float *dx, const float *xs, const float *w, float w_off, const float *rstd, int T,
				  int nh, int hd, int stride)
{
	const long long gw = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
	const int lane = threadIdx.x & 31;
	if (gw >= (long long)T * nh)
		return;
	const size_t t = (size_t)(gw / nh), h = (size_t)(gw % nh), th = t * nh + h;
	float *d = dx + t * stride + h * hd;
	const float *x = xs + th * hd;
	const float r = rstd[th];
	double dot = 0;
	for (int c = lane; c < hd; c += 32)
		dot += (double)d[c] * (w_off + w[c]) * x[c] * r;
	dot = warp_sum(dot);
	const float m = (float)(dot / hd);
	for (int c = lane; c < hd; c += 32)
		d[c] = r * (d[c] * (w_off + w[c]) - x[c] * r * m);
}

void cuda_headnorm_backward(float *dx, float *dw, const float *xs, const float *w, float w_off, const float *rstd,
			    int T, int nh, int hd, int stride)
{
	const long long n = (long long)T * nh;
	if (n <= 0)
		return;
	if (n > 0x7fffffffLL) /* the row index is an int */
		die("cuda: per-head norm over %lld heads is more than one launch handles", n);
	const int nb = (int)((n + HN_ROWS - 1) / HN_ROWS);
	float *part = (float *)cuda_scratch(sizeof(float) * (size_t)nb * hd);
	LAUNCH(headnorm_bwd_dw_part_k, nb, 128, part, dx, xs, rstd, (int)n, nh, hd, stride);
	LAUNCH_CHECK();
	LAUNCH(headnorm_bwd_dw_sum_k, grid_for(hd, NT), NT, dw, part, nb, hd);
	LAUNCH_CHECK();
	LAUNCH(headnorm_bwd_dx_k, (unsigned)((n + HN_WPB - 1) / HN_WPB), 32 * HN_WPB, dx, xs, w, w_off, rstd, T, nh, hd,
	       stride);
	LAUNCH_CHECK();
}

/* ------------------------------------------------------------ exact GELU */

#define INV_SQRT2 0.7071067811865476f   /* 1/√2 */
#define INV_SQRT2PI 0.3989422804014327f /* 1/√(2π) */

/* CPU twin: gelu_exact_forward, out = ½x(1 + erf(x/√2)). */
__global__ void gelu_exact_fwd_k(float *out, const float *inp, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		const float x = inp[i];
		out[i] = 0.5f * x * (1.0f + erff(x * INV_SQRT2));
	}
}

void cuda_gelu_exact_forward(float *out, const float *inp, size_t n)
{
	if (n == 0)
		return;
	LAUNCH(gelu_exact_fwd_k, grid_for(n, NT), NT, out, inp, n);
	LAUNCH_CHECK();
}

/* CPU twin: gelu_exact_backward (writes dinp):
 * gelu'(x) = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π). */
__global__ void gelu_exact_bwd_k(float *dinp, const float *dout, const float *inp, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		const float x = inp[i];
		const float g = 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * expf(-0.5f * x * x) * INV_SQRT2PI;
		dinp[i] = dout[i] * g;
	}
}

void cuda_gelu_exact_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
	if (n == 0)
		return;
	LAUNCH(gelu_exact_bwd_k, grid_for(n, NT), NT, dinp, dout, inp, n);
	LAUNCH_CHECK();
}

/* ----------------------------------------------------------------- GeGLU */

#define GELU_K 0.7978845608028654f /* √(2/π) */

/* CPU twin: gelu_tanh1 (gelu_pytorch_tanh with the accurate tanhf, not
 * gelu_forward's fast one) and, when dg is not NULL, its derivative. */
__device__ inline float gelu_tanh1(float x, float *dg)
{
	const float u = GELU_K * (x + 0.044715f * x * x * x), th = tanhf(u);
	if (dg)
		*dg = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
	return 0.5f * x * (1.0f + th);
}

/* CPU twin: geglu_forward. Rows [g (F) | u (F)], out = gelu_tanh(g)·u. */
__global__ void geglu_fwd_k(float *out, const float *inp, int F, size_t n)
{
	for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
		const size_t t = k / F, i = k % F;
		out[k] = gelu_tanh1(inp[t * 2 * F + i], NULL) * inp[t * 2 * F + F + i];
	}
}

void cuda_geglu_forward(float *out, const float *inp, int T, int F)
{
	const size_t n = (size_t)T * F;
	if (n == 0)
		return;
	LAUNCH(geglu_fwd_k, grid_for(n, NT), NT, out, inp, F, n);
	LAUNCH_CHECK();
}

/* CPU twin: geglu_backward (writes dinp [T,2F]): dg = do·u·gelu'(g),
 * du = do·gelu(g). */
__global__ void geglu_bwd_k(float *dinp, const float *dout, const float *inp, int F, size_t n)
{
	for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
		const size_t t = k / F, i = k % F;
		const float d = dout[k], u = inp[t * 2 * F + F + i];
		float gd;
		const float ge = gelu_tanh1(inp[t * 2 * F + i], &gd);
		dinp[t * 2 * F + i] = d * u * gd;
		dinp[t * 2 * F + F + i] = d * ge;
	}
}

void cuda_geglu_backward(float *dinp, const float *dout, const float *inp, int T, int F)
{
	const size_t n = (size_t)T * F;
	if (n == 0)
		return;
	LAUNCH(geglu_bwd_k, grid_for(n, NT), NT, dinp, dout, inp, F, n);
	LAUNCH_CHECK();
}

/* ---------------------------------------------------------- soft-capping */

/* CPU twin: softcap_forward, in place x ← cap·tanh(x/cap). */
__global__ void softcap_fwd_k(float *x, size_t n, float cap)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		x[i] = cap * tanhf(x[i] / cap);
}

void cuda_softcap_forward(float *x, size_t n, float cap)
{
	if (n == 0)
		return;
	LAUNCH(softcap_fwd_k, grid_for(n, NT), NT, x, n, cap);
	LAUNCH_CHECK();
}

/* CPU twin: softcap_backward, in place dx ← dx·(1 − (y/cap)²) from the
 * capped values y. */
__global__ void softcap_bwd_k(float *dx, const float *y, size_t n, float cap)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		const float s = y[i] / cap;
		dx[i] *= 1.0f - s * s;
	}
}

void cuda_softcap_backward(float *dx, const float *y, size_t n, float cap)
{
	if (n == 0)
		return;
	LAUNCH(softcap_bwd_k, grid_for(n, NT), NT, dx, y, n, cap);
	LAUNCH_CHECK();
}
