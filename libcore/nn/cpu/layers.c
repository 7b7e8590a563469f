/* layers.c — CPU twins of cuda/layers.cu: embedding, RMSNorm (also Gemma's
 * (w_off + w) form), LayerNorm, matmul, RoPE (full and partial), SwiGLU, GELU,
 * residuals.
 * Every kernel is LBDPO_KERNEL (runtime.h): built for AVX-512, AVX2 and the
 * baseline, picked at load time; exponentials go through vexpf (vexp.h) so
 * that their loops vectorize. Conventions in kernels.h. */
#include "libcore/nn/cpu/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/nn/cpu/gemm_bf16.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/cpu/vexp.h"

/* ---------------------------------------------------------------- embed */

LBDPO_KERNEL void embed_forward(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe,
				int T, int C)
{
	/* out [T,C], wte [V,C], wpe [P,C] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		float *o = out + (size_t)t * C;
		const float *e = wte + (size_t)tok[t] * C;
		if (wpe) {
			const float *p = wpe + (size_t)pos[t] * C;
			for (int c = 0; c < C; c++)
				o[c] = e[c] + p[c];
		} else {
			memcpy(o, e, sizeof(float) * C);
		}
	}
}

LBDPO_KERNEL void embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos,
				 int T, int C)
{
	/* Tokens repeat, so rows of dwte race: split the channels instead. */
	int nblk = (C + 63) / 64;
#pragma omp parallel for schedule(static)
	for (int b = 0; b < nblk; b++) {
		int c0 = b * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
		for (int t = 0; t < T; t++) {
			const float *d = dout + (size_t)t * C;
			float *e = dwte + (size_t)tok[t] * C;
			for (int c = c0; c < c1; c++)
				e[c] += d[c];
			if (dwpe) {
				float *p = dwpe + (size_t)pos[t] * C;
				for (int c = c0; c < c1; c++)
					p[c] += d[c];
			}
		}
	}
}

/* -------------------------------------------------------------- rmsnorm */

/* The gain w_off + w (Gemma: w_off 1, the weights stored as w): its own
 * loops, so that w_off 0 stays exactly the plain kernel below. */
LBDPO_KERNEL static void rmsnorm_off_fwd(float *out, float *rstd, const float *inp, const float *w, float w_off,
					 float eps, int T, int C)
{
	/* out = x·r·(w_off + w), r = 1/sqrt(mean(x²) + eps) */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C;
		float *o = out + (size_t)t * C;
		double ss = 0;
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float r = (float)(1.0 / sqrt(ss / C + eps));
		for (int c = 0; c < C; c++)
			o[c] = x[c] * r * (w_off + w[c]);
		if (rstd)
			rstd[t] = r;
	}
}

LBDPO_KERNEL static void rmsnorm_off_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
					 float w_off, const float *rstd, int T, int C)
{
	/* as rmsnorm_backward with gain w_off + w; dw += Σ_t dy·x·r (serial over t) */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
		float *dx = dinp + (size_t)t * C;
		float r = rstd[t];
		double dot = 0;
		for (int c = 0; c < C; c++)
			dot += (double)dy[c] * (w_off + w[c]) * x[c] * r;
		float m = (float)(dot / C);
		for (int c = 0; c < C; c++)
			dx[c] += r * (dy[c] * (w_off + w[c]) - x[c] * r * m);
	}
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
		float r = rstd[t];
		for (int c = 0; c < C; c++)
			dw[c] += dy[c] * x[c] * r;
	}
}

LBDPO_KERNEL void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float w_off, float eps,
				  int T, int C)
{
	if (w_off != 0) {
		rmsnorm_off_fwd(out, rstd, inp, w, w_off, eps, T, C);
		return;
	}
	/* out [T,C], rstd [T], inp [T,C], w [C] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C;
		float *o = out + (size_t)t * C;
		double ss = 0;
#pragma omp simd reduction(+ : ss)
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float r = (float)(1.0 / sqrt(ss / C + eps));
		for (int c = 0; c < C; c++)
			o[c] = x[c] * r * w[c];
		if (rstd)
			rstd[t] = r;
	}
}

LBDPO_KERNEL void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
				   float w_off, const float *rstd, int T, int C)
{
	if (w_off != 0) {
		rmsnorm_off_bwd(dinp, dw, dout, inp, w, w_off, rstd, T, C);
		return;
	}
	/* n = x·r; dn = dy·w; dx = r·(dn − n·mean(dn·n)); dw += Σ_t dy·n */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
		float *dx = dinp + (size_t)t * C;
		float r = rstd[t];
		double dot = 0;
#pragma omp simd reduction(+ : dot)
		for (int c = 0; c < C; c++)
			dot += (double)dy[c] * w[c] * x[c] * r;
		float m = (float)(dot / C);
		for (int c = 0; c < C; c++)
			dx[c] += r * (dy[c] * w[c] - x[c] * r * m);
	}
	int nblk = (C + 63) / 64;
#pragma omp parallel for schedule(static)
	for (int b = 0; b < nblk; b++) {
		int c0 = b * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
		float acc[64] = {0};
		for (int t = 0; t < T; t++) {
			const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
			float r = rstd[t];
			for (int c = c0; c < c1; c++)
				acc[c - c0] += dy[c] * x[c] * r;
		}
		for (int c = c0; c < c1; c++)
			dw[c] += acc[c - c0];
	}
}

/* ------------------------------------------------------------ layernorm */

LBDPO_KERNEL void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
				    const float *b, float eps, int T, int C)
{
	/* out [T,C], mean/rstd [T] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C;
		float *o = out + (size_t)t * C;
		double s = 0;
#pragma omp simd reduction(+ : s)
		for (int c = 0; c < C; c++)
			s += x[c];
		float m = (float)(s / C);
		double v = 0;
#pragma omp simd reduction(+ : v)
		for (int c = 0; c < C; c++)
			v += (double)(x[c] - m) * (x[c] - m);
		float r = (float)(1.0 / sqrt(v / C + eps));
		for (int c = 0; c < C; c++)
			o[c] = (x[c] - m) * r * w[c] + b[c];
		if (mean)
			mean[t] = m;
		if (rstd)
			rstd[t] = r;
	}
}

LBDPO_KERNEL void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
				     const float *w, const float *mean, const float *rstd, int T, int C)
{
	/* n = (x−μ)·r; dn = dy·w; dx = r·(dn − mean(dn) − n·mean(dn·n)) */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
		float *dx = dinp + (size_t)t * C;
		float m = mean[t], r = rstd[t];
		double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
		for (int c = 0; c < C; c++) {
			float dn = dy[c] * w[c];
			s1 += dn;
			s2 += (double)dn * (x[c] - m) * r;
		}
		float a = (float)(s1 / C), bb = (float)(s2 / C);
		for (int c = 0; c < C; c++)
			dx[c] += r * (dy[c] * w[c] - a - (x[c] - m) * r * bb);
	}
	int nblk = (C + 63) / 64;
#pragma omp parallel for schedule(static)
	for (int bl = 0; bl < nblk; bl++) {
		int c0 = bl * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
		float aw[64] = {0}, ab[64] = {0};
		for (int t = 0; t < T; t++) {
			const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
			float m = mean[t], r = rstd[t];
			for (int c = c0; c < c1; c++) {
				aw[c - c0] += dy[c] * (x[c] - m) * r;
				ab[c - c0] += dy[c];
			}
		}
		for (int c = c0; c < c1; c++) {
			dw[c] += aw[c - c0];
			db[c] += ab[c - c0];
		}
	}
}

/* --------------------------------------------------------------- matmul */

LBDPO_KERNEL void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC,
				 int w_in_out)
{
	/* out [T,OC], inp [T,IC], w [OC,IC] or [IC,OC], bias [OC] */
	if (w_in_out)
		gemm_rm(0, 0, T, OC, IC, inp, IC, w, OC, 0.0f, out, OC);
	else
		gemm_rm(0, 1, T, OC, IC, inp, IC, w, IC, 0.0f, out, OC);
	if (bias) {
#pragma omp parallel for schedule(static)
		for (int t = 0; t < T; t++) {
			float *o = out + (size_t)t * OC;
			for (int c = 0; c < OC; c++)
				o[c] += bias[c];
		}
	}
}

LBDPO_KERNEL void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
				  const float *w, int T, int IC, int OC, int w_in_out)
{
	if (w_in_out) {
		/* W [IC,OC]: dinp += dout·Wᵀ ; dW += inpᵀ·dout */
		if (dinp)
			gemm_rm(0, 1, T, IC, OC, dout, OC, w, OC, 1.0f, dinp, IC);
		if (dw) /* NULL: a frozen weight (LoRA), no dW product */
			gemm_rm(1, 0, IC, OC, T, inp, IC, dout, OC, 1.0f, dw, OC);
	} else {
		/* W [OC,IC]: dinp += dout·W ; dW += doutᵀ·inp */
		if (dinp)
			gemm_rm(0, 0, T, IC, OC, dout, OC, w, IC, 1.0f, dinp, IC);
		if (dw)
			gemm_rm(1, 0, OC, IC, T, dout, OC, inp, IC, 1.0f, dw, IC);
	}
	if (dbias) {
		int nblk = (OC + 63) / 64;
#pragma omp parallel for schedule(static)
		for (int b = 0; b < nblk; b++) {
			int c0 = b * 64, c1 = c0 + 64 < OC ? c0 + 64 : OC;
			float acc[64] = {0};
			for (int t = 0; t < T; t++) {
				const float *d = dout + (size_t)t * OC;
				for (int c = c0; c < c1; c++)
					acc[c - c0] += d[c];
			}
			for (int c = c0; c < c1; c++)
				dbias[c] += acc[c - c0];
		}
	}
}

/* ----------------------------------------------------------------- rope */

LBDPO_KERNEL void rope_table(float *cs, const int *pos, int T, int head_dim, float theta)
{
	/* cs [T, hd] = [cos | sin] per token, f_i = θ^(-2i/hd) */
	int h2 = head_dim / 2;
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		float *c = cs + (size_t)t * head_dim;
		for (int i = 0; i < h2; i++) {
			double f = pow((double)theta, -2.0 * i / head_dim);
			double a = pos[t] * f;
			c[i] = (float)cos(a);
			c[h2 + i] = (float)sin(a);
		}
	}
}

/* RoPE on the first rot_dim of each head (rot_dim = head_dim: all of it,
 * GPT-NeoX's rotary_pct: part); sgn = -1 rotates back (the backward). */
LBDPO_INLINE void rope_part_apply(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride,
				  float sgn)
{
	int h2 = rot_dim / 2;
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *co = cs + (size_t)t * rot_dim, *si = co + h2;
		for (int h = 0; h < n_heads; h++) {
			float *v = x + (size_t)t * stride + (size_t)h * head_dim;
			for (int i = 0; i < h2; i++) {
				float a = v[i], b = v[i + h2], c = co[i], s = sgn * si[i];
				v[i] = a * c - b * s;
				v[i + h2] = b * c + a * s;
			}
		}
	}
}

LBDPO_INLINE void rope_apply(float *x, const float *cs, int T, int n_heads, int head_dim, int stride, float sgn)
{
	rope_part_apply(x, cs, T, n_heads, head_dim, head_dim, stride, sgn);
}

LBDPO_KERNEL void rope_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int stride)
{
	rope_apply(x, cs, T, n_heads, head_dim, stride, 1.0f);
}

LBDPO_KERNEL void rope_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int stride)
{
	/* The rotation is orthogonal: its transpose is the rotation by −angle. */
	rope_apply(dx, cs, T, n_heads, head_dim, stride, -1.0f);
}

/* ------------------------------------------------------- MLP activations */

LBDPO_KERNEL void swiglu_forward(float *out, const float *inp, int T, int F)
{
	/* out [T,F], inp [T,2F] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *g = inp + (size_t)t * 2 * F, *u = g + F;
		float *o = out + (size_t)t * F;
#pragma omp simd
		for (int i = 0; i < F; i++)
			o[i] = g[i] / (1.0f + vexpf(-g[i])) * u[i];
	}
}

LBDPO_KERNEL void swiglu_backward(float *dinp, const float *dout, const float *inp, int T, int F)
{
	/* silu'(g) = σ(g)·(1 + g·(1 − σ(g))); writes (not adds) dinp [T,2F] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *g = inp + (size_t)t * 2 * F, *u = g + F, *d = dout + (size_t)t * F;
		float *dg = dinp + (size_t)t * 2 * F, *du = dg + F;
#pragma omp simd
		for (int i = 0; i < F; i++) {
			float sg = 1.0f / (1.0f + vexpf(-g[i]));
			du[i] = d[i] * g[i] * sg;
			dg[i] = d[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
		}
	}
}

#define GELU_K 0.7978845608028654f /* √(2/π) */

/* tanh(u) = 1 − 2/(1 + e^{2u}): one vexpf, vectorized, unlike tanhf; its
 * absolute error (~1e-7) is what GELU's 0.5·x·(1 + tanh) sees. */
LBDPO_INLINE float tanh_fast(float u) { return 1.0f - 2.0f / (1.0f + vexpf(2.0f * u)); }

LBDPO_KERNEL void gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
	}
}

LBDPO_KERNEL void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
	/* writes (not adds) dinp */
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		float th = tanh_fast(GELU_K * (x + 0.044715f * x * x * x));
		float sech2 = 1.0f - th * th;
		float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
		dinp[i] = dout[i] * g;
	}
}

LBDPO_KERNEL void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

LBDPO_KERNEL void add_inplace(float *acc, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		acc[i] += x[i];
}

/* ---- partial rotary (GPT-NeoX's rotary_pct) ---- */

LBDPO_KERNEL void rope_part_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim,
				    int stride)
{
	rope_part_apply(x, cs, T, n_heads, head_dim, rot_dim, stride, 1.0f);
}

LBDPO_KERNEL void rope_part_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int rot_dim,
				     int stride)
{
	rope_part_apply(dx, cs, T, n_heads, head_dim, rot_dim, stride, -1.0f);
}

/* ---- Gemma: (w_off + w) RMSNorm, GeGLU, soft-capped attention and logits ---- */
