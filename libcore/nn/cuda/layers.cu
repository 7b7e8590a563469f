/* layers.cu — CUDA kernels of the transformer layers. Each mirrors the CPU
 * function of libcore/nn/cpu/layers.c named beside it (same arguments, same
 * semantics; see layers.h for the formulas). Sums that the CPU does in a
 * fixed order over tokens (weight-gradient columns) are done here in the
 * same order by one thread per column, so they are deterministic. */
#include <math.h>

#include "libcore/nn/cuda/check.h"

#define NT 256 /* threads per block of row kernels */

/* ---------------------------------------------------------------- embed */

/* CPU twin: embed_forward. One block per token. */
__global__ void embed_fwd_k(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe, int C)
{
	const size_t t = blockIdx.x;
	const float *e = wte + (size_t)tok[t] * C, *p = wpe ? wpe + (size_t)pos[t] * C : NULL;
	float *o = out + t * C;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		o[c] = p ? e[c] + p[c] : e[c];
}

void cuda_embed_forward(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe, int T,
			int C)
{
	if (T <= 0)
		return;
	LAUNCH(embed_fwd_k, T, NT, out, tok, pos, wte, wpe, C);
	LAUNCH_CHECK();
}

/* CPU twin: embed_backward. Tokens repeat, so one thread per channel walks
 * the tokens in order (no atomics, the CPU's summation order). */
__global__ void embed_bwd_k(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T,
			    int C)
{
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	for (int t = 0; t < T; t++) {
		const float d = dout[(size_t)t * C + c];
		dwte[(size_t)tok[t] * C + c] += d;
		if (dwpe)
			dwpe[(size_t)pos[t] * C + c] += d;
	}
}

void cuda_embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T, int C)
{
	if (T <= 0)
		return;
	LAUNCH(embed_bwd_k, grid_for(C, NT), NT, dwte, dwpe, dout, tok, pos, T, C);
	LAUNCH_CHECK();
}

/* -------------------------------------------------------------- rmsnorm */

/* CPU twin: rmsnorm_forward, gain w_off + w (Gemma: w_off 1): out = x·r·(w_off + w), r = 1/sqrt(mean(x²) + eps).
 * One block per row; Σx² in double. */
__global__ void rmsnorm_fwd_k(float *out, float *rstd, const float *inp, const float *w, float w_off, float eps, int C)
{
	const size_t t = blockIdx.x;
	const float *x = inp + t * C;
	float *o = out + t * C;
	double ss = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		ss += (double)x[c] * x[c];
	ss = block_sum(ss);
	const float r = (float)(1.0 / sqrt(ss / C + eps));
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		o[c] = x[c] * r * (w_off + w[c]);
	if (rstd && threadIdx.x == 0)
		rstd[t] = r;
}

void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float w_off, float eps, int T,
			  int C)
{
	if (T <= 0)
		return;
	LAUNCH(rmsnorm_fwd_k, T, NT, out, rstd, inp, w, w_off, eps, C);
	LAUNCH_CHECK();
}

/* CPU twin: rmsnorm_backward, the dinp part:
 * n = x·r, dn = dy·(w_off + w), dx += r·(dn − n·mean(dn·n)). One block
 * per row. */
__global__ void rmsnorm_bwd_dx_k(float *dinp, const float *dout, const float *inp, const float *w, float w_off,
				 const float *rstd, int C)
{
	const size_t t = blockIdx.x;
	const float *x = inp + t * C, *dy = dout + t * C;
	float *dx = dinp + t * C;
	const float r = rstd[t];
	double dot = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dot += (double)dy[c] * (w_off + w[c]) * x[c] * r;
	dot = block_sum(dot);
	const float m = (float)(dot / C);
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dx[c] += r * (dy[c] * (w_off + w[c]) - x[c] * r * m);
}

/* The dw part: dw += Σ_t dy·x·r, one thread per channel, tokens in order. */
__global__ void rmsnorm_bwd_dw_k(float *dw, const float *dout, const float *inp, const float *rstd, int T, int C)
{
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	float acc = 0;
	for (int t = 0; t < T; t++)
		acc += dout[(size_t)t * C + c] * inp[(size_t)t * C + c] * rstd[t];
	dw[c] += acc;
}

void cuda_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, float w_off,
			   const float *rstd, int T, int C)
{
	if (T <= 0)
		return;
	LAUNCH(rmsnorm_bwd_dx_k, T, NT, dinp, dout, inp, w, w_off, rstd, C);
	LAUNCH_CHECK();
	LAUNCH(rmsnorm_bwd_dw_k, grid_for(C, NT), NT, dw, dout, inp, rstd, T, C);
	LAUNCH_CHECK();
}

/* ------------------------------------------------------------ layernorm */

/* CPU twin: layernorm_forward. One block per row; mean and variance in
 * double. */
__global__ void layernorm_fwd_k(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
				float eps, int C)
{
	const size_t t = blockIdx.x;
	const float *x = inp + t * C;
	float *o = out + t * C;
	double s = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		s += x[c];
	s = block_sum(s);
	const float m = (float)(s / C);
	double v = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		v += (double)(x[c] - m) * (x[c] - m);
	v = block_sum(v);
	const float r = (float)(1.0 / sqrt(v / C + eps));
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		o[c] = (x[c] - m) * r * w[c] + b[c];
	if (threadIdx.x == 0) {
		if (mean)
			mean[t] = m;
		if (rstd)
			rstd[t] = r;
	}
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
			    float eps, int T, int C)
{
	if (T <= 0)
		return;
	LAUNCH(layernorm_fwd_k, T, NT, out, mean, rstd, inp, w, b, eps, C);
	LAUNCH_CHECK();
}

/* CPU twin: layernorm_backward, the dinp part:
 * n = (x−μ)·r, dn = dy·w, dx += r·(dn − mean(dn) − n·mean(dn·n)). */
__global__ void layernorm_bwd_dx_k(float *dinp, const float *dout, const float *inp, const float *w, const float *mean,
				   const float *rstd, int C)
{
	const size_t t = blockIdx.x;
	const float *x = inp + t * C, *dy = dout + t * C;
	float *dx = dinp + t * C;
	const float m = mean[t], r = rstd[t];
	double s1 = 0, s2 = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		const float dn = dy[c] * w[c];
		s1 += dn;
		s2 += (double)dn * (x[c] - m) * r;
	}
	s1 = block_sum(s1);
	s2 = block_sum(s2);
	const float a = (float)(s1 / C), bb = (float)(s2 / C);
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dx[c] += r * (dy[c] * w[c] - a - (x[c] - m) * r * bb);
}

/* dw += Σ_t dy·(x−μ)·r, db += Σ_t dy; one thread per channel. */
__global__ void layernorm_bwd_dw_k(float *dw, float *db, const float *dout, const float *inp, const float *mean,
				   const float *rstd, int T, int C)
{
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	float aw = 0, ab = 0;
	for (int t = 0; t < T; t++) {
		const float dy = dout[(size_t)t * C + c];
		aw += dy * (inp[(size_t)t * C + c] - mean[t]) * rstd[t];
		ab += dy;
	}
	dw[c] += aw;
	db[c] += ab;
}

void cuda_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
			     const float *mean, const float *rstd, int T, int C)
{
	if (T <= 0)
		return;
	LAUNCH(layernorm_bwd_dx_k, T, NT, dinp, dout, inp, w, mean, rstd, C);
	LAUNCH_CHECK();
	LAUNCH(layernorm_bwd_dw_k, grid_for(C, NT), NT, dw, db, dout, inp, mean, rstd, T, C);
	LAUNCH_CHECK();
}

/* --------------------------------------------------------------- matmul */

/* out[t,c] += bias[c] (the bias half of CPU matmul_forward). */
__global__ void bias_add_k(float *out, const float *bias, size_t n, int OC)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		out[i] += bias[i % OC];
}

/* dbias[c] += Σ_t dout[t,c] (the bias half of CPU matmul_backward), one
 * thread per channel, tokens in order. */
__global__ void bias_grad_k(float *dbias, const float *dout, int T, int OC)
{
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= OC)
		return;
	float acc = 0;
	for (int t = 0; t < T; t++)
		acc += dout[(size_t)t * OC + c];
	dbias[c] += acc;
}

/* CPU twin: matmul_forward; the cuBLAS calls carry the cblas arguments of
 * the CPU code unchanged (rm_sgemm maps them). */
void cuda_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC,
			 int w_in_out)
{
	if (T <= 0)
		return;
	if (w_in_out)
		rm_sgemm(0, 0, T, OC, IC, 1.0f, inp, IC, w, OC, 0.0f, out, OC);
	else
		rm_sgemm(0, 1, T, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
	if (bias) {
		const size_t n = (size_t)T * OC;
		LAUNCH(bias_add_k, grid_for(n, NT), NT, out, bias, n, OC);
		LAUNCH_CHECK();
	}
}

/* CPU twin: matmul_backward. */
void cuda_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
			  int T, int IC, int OC, int w_in_out)
{
	if (T <= 0)
		return;
	if (w_in_out) {
		/* W [IC,OC]: dinp += dout·Wᵀ ; dW += inpᵀ·dout */
		if (dinp)
			rm_sgemm(0, 1, T, IC, OC, 1.0f, dout, OC, w, OC, 1.0f, dinp, IC);
		if (dw) /* NULL: a frozen weight (LoRA) */
			rm_sgemm(1, 0, IC, OC, T, 1.0f, inp, IC, dout, OC, 1.0f, dw, OC);
	} else {
		/* W [OC,IC]: dinp += dout·W ; dW += doutᵀ·inp */
		if (dinp)
			rm_sgemm(0, 0, T, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
		if (dw)
			rm_sgemm(1, 0, OC, IC, T, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
	}
	if (dbias) {
		LAUNCH(bias_grad_k, grid_for(OC, NT), NT, dbias, dout, T, OC);
		LAUNCH_CHECK();
	}
}

/* ----------------------------------------------------------------- rope */

/* CPU twin: rope_part_apply (rope_forward and rope_part_forward sgn +1,
 * the backwards sgn −1), on the first rot dims of each head, heads hd
 * apart, cs [T, rot] = [cos | sin]:
 *   x'[i] = x[i]·cos − x[i+rot/2]·sin,  x'[i+rot/2] = x[i+rot/2]·cos + x[i]·sin
 * one thread per (token, head, i < rot/2). */
__global__ void rope_apply_k(float *x, const float *cs, int T, int n_heads, int hd, int rot, int stride, float sgn)
{
	const int h2 = rot / 2;
	const size_t n = (size_t)T * n_heads * h2;
	for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < n; u += (size_t)gridDim.x * blockDim.x) {
		const int i = (int)(u % h2);
		const size_t th = u / h2, t = th / n_heads, h = th % n_heads;
		const float *co = cs + t * rot, *si = co + h2;
		float *v = x + t * stride + h * hd;
		const float a = v[i], b = v[i + h2], c = co[i], s = sgn * si[i];
		v[i] = a * c - b * s;
		v[i + h2] = b * c + a * s;
	}
}

static void rope_apply(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride, float sgn)
{
	const size_t n = (size_t)T * n_heads * (rot_dim / 2);
	if (n == 0)
		return;
	LAUNCH(rope_apply_k, grid_for(n, NT), NT, x, cs, T, n_heads, head_dim, rot_dim, stride, sgn);
	LAUNCH_CHECK();
}

void cuda_rope_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int stride)
{
	rope_apply(x, cs, T, n_heads, head_dim, head_dim, stride, 1.0f);
}

void cuda_rope_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int stride)
{
	rope_apply(dx, cs, T, n_heads, head_dim, head_dim, stride, -1.0f);
}

void cuda_rope_part_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride)
{
	rope_apply(x, cs, T, n_heads, head_dim, rot_dim, stride, 1.0f);
}

void cuda_rope_part_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride)
{
	rope_apply(dx, cs, T, n_heads, head_dim, rot_dim, stride, -1.0f);
}

/* ------------------------------------------------------- MLP activations */

/* CPU twin: swiglu_forward. out = silu(g)·u, rows [g | u]. */
__global__ void swiglu_fwd_k(float *out, const float *inp, int F, size_t n)
{
	for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < n; u += (size_t)gridDim.x * blockDim.x) {
		const size_t t = u / F, i = u % F;
		const float g = inp[t * 2 * F + i], up = inp[t * 2 * F + F + i];
		out[u] = g / (1.0f + expf(-g)) * up;
	}
}

void cuda_swiglu_forward(float *out, const float *inp, int T, int F)
{
	const size_t n = (size_t)T * F;
	if (n == 0)
		return;
	LAUNCH(swiglu_fwd_k, grid_for(n, NT), NT, out, inp, F, n);
	LAUNCH_CHECK();
}

/* CPU twin: swiglu_backward (writes, not adds, dinp [T,2F]):
 * silu'(g) = σ(g)·(1 + g·(1 − σ(g))). */
__global__ void swiglu_bwd_k(float *dinp, const float *dout, const float *inp, int F, size_t n)
{
	for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < n; u += (size_t)gridDim.x * blockDim.x) {
		const size_t t = u / F, i = u % F;
		const float g = inp[t * 2 * F + i], up = inp[t * 2 * F + F + i], d = dout[u];
		const float sg = 1.0f / (1.0f + expf(-g));
		dinp[t * 2 * F + F + i] = d * g * sg;
		dinp[t * 2 * F + i] = d * up * sg * (1.0f + g * (1.0f - sg));
	}
}

void cuda_swiglu_backward(float *dinp, const float *dout, const float *inp, int T, int F)
{
	const size_t n = (size_t)T * F;
	if (n == 0)
		return;
	LAUNCH(swiglu_bwd_k, grid_for(n, NT), NT, dinp, dout, inp, F, n);
	LAUNCH_CHECK();
}

#define GELU_K 0.7978845608028654f /* √(2/π) */

/* The CPU's tanh_fast: tanh(u) = 1 − 2/(1 + e^{2u}). */
__device__ inline float tanh_fast(float u) { return 1.0f - 2.0f / (1.0f + expf(2.0f * u)); }

/* CPU twin: gelu_forward, 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))). */
__global__ void gelu_fwd_k(float *out, const float *inp, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		const float x = inp[i];
		out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
	}
}

void cuda_gelu_forward(float *out, const float *inp, size_t n)
{
	if (n == 0)
		return;
	LAUNCH(gelu_fwd_k, grid_for(n, NT), NT, out, inp, n);
	LAUNCH_CHECK();
}

/* CPU twin: gelu_backward (writes dinp). */
__global__ void gelu_bwd_k(float *dinp, const float *dout, const float *inp, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		const float x = inp[i];
		const float th = tanh_fast(GELU_K * (x + 0.044715f * x * x * x));
		const float sech2 = 1.0f - th * th;
		const float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
		dinp[i] = dout[i] * g;
	}
}

void cuda_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
	if (n == 0)
		return;
	LAUNCH(gelu_bwd_k, grid_for(n, NT), NT, dinp, dout, inp, n);
	LAUNCH_CHECK();
}

/* CPU twin: residual_forward, out = a + b. */
__global__ void residual_k(float *out, const float *a, const float *b, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		out[i] = a[i] + b[i];
}

void cuda_residual_forward(float *out, const float *a, const float *b, size_t n)
{
	if (n == 0)
		return;
	LAUNCH(residual_k, grid_for(n, NT), NT, out, a, b, n);
	LAUNCH_CHECK();
}

/* CPU twin: add_inplace, acc += x. */
__global__ void add_inplace_k(float *acc, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		acc[i] += x[i];
}

void cuda_add_inplace(float *acc, const float *x, size_t n)
{
	if (n == 0)
		return;
	LAUNCH(add_inplace_k, grid_for(n, NT), NT, acc, x, n);
	LAUNCH_CHECK();
}
