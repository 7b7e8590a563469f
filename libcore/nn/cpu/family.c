/* family.c — CPU twins of cuda/family.cu, the kernels only some families
 * use: per-head RMSNorm (Qwen3, Gemma 3), exact GELU, GeGLU and soft-capping.
 * Every kernel is LBDPO_KERNEL (runtime.h): built for AVX-512, AVX2 and the
 * baseline, picked at load time; exponentials go through vexpf (vexp.h) so
 * that their loops vectorize. Conventions in kernels.h. */
#include "libcore/nn/cpu/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/cpu/vexp.h"

/* ---- per-head RMSNorm (Qwen3's q_norm and k_norm, Gemma 3's) ---- */

LBDPO_KERNEL void headnorm_forward(float *x, float *xs, float *rstd, const float *w, float w_off, float eps, int T,
				   int nh, int hd, int stride)
{
	/* x [T,stride], head h of row t at x[t·stride + h·hd .. + hd): in place
	 * x ← x·r·(w_off + w), r = 1/sqrt(mean(x²) + eps) per (t, h); xs [T, nh·hd] gets
	 * the input (NULL: not kept), rstd [T, nh] (NULL: not kept) */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++) {
			float *v = x + (size_t)t * stride + (size_t)h * hd;
			if (xs)
				memcpy(xs + ((size_t)t * nh + h) * hd, v, sizeof(float) * hd);
			double ss = 0;
			for (int c = 0; c < hd; c++)
				ss += (double)v[c] * v[c];
			float r = (float)(1.0 / sqrt(ss / hd + eps));
			for (int c = 0; c < hd; c++)
				v[c] = v[c] * r * (w_off + w[c]);
			if (rstd)
				rstd[(size_t)t * nh + h] = r;
		}
}

LBDPO_KERNEL void headnorm_backward(float *dx, float *dw, const float *xs, const float *w, float w_off,
				    const float *rstd, int T, int nh, int hd, int stride)
{
	/* In place on dx [T,stride] (the columns of headnorm_forward): dy on
	 * entry, d(input) on return. n = x·r; dn = dy·(w_off + w);
	 * dx = r·(dn − n·mean(dn·n)); dw += Σ_{t,h} dy·n (serial, in row order:
	 * the same sum for any thread count). */
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++) {
			const float *dy = dx + (size_t)t * stride + (size_t)h * hd, *x = xs + ((size_t)t * nh + h) * hd;
			const float r = rstd[(size_t)t * nh + h];
			for (int c = 0; c < hd; c++)
				dw[c] += dy[c] * x[c] * r;
		}
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++) {
			float *d = dx + (size_t)t * stride + (size_t)h * hd;
			const float *x = xs + ((size_t)t * nh + h) * hd;
			const float r = rstd[(size_t)t * nh + h];
			double dot = 0;
			for (int c = 0; c < hd; c++)
				dot += (double)d[c] * (w_off + w[c]) * x[c] * r;
			float m = (float)(dot / hd);
			for (int c = 0; c < hd; c++)
				d[c] = r * (d[c] * (w_off + w[c]) - x[c] * r * m);
		}
}

/* ---- exact GELU (GPT-NeoX, Phi) ---- */

LBDPO_KERNEL void gelu_exact_forward(float *out, const float *inp, size_t n)
{
	/* gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)) */
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
	}
}

LBDPO_KERNEL void gelu_exact_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
	/* gelu'(x) = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π); writes (not adds) dinp */
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		float g = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) + x * expf(-0.5f * x * x) * 0.3989422804014327f;
		dinp[i] = dout[i] * g;
	}
}

/* ---- Gemma: GeGLU, soft-capping ---- */

static inline float gelu_tanh1(float x, float *dg)
{
	/* gelu_pytorch_tanh and its derivative (libm tanhf: accurate) */
	const float k = 0.7978845608028654f;
	float u = k * (x + 0.044715f * x * x * x), th = tanhf(u);
	if (dg)
		*dg = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * x * x);
	return 0.5f * x * (1.0f + th);
}

LBDPO_KERNEL void geglu_forward(float *out, const float *inp, int T, int F)
{
	/* inp rows [g (F) | u (F)], out = gelu_tanh(g)·u */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *g = inp + (size_t)t * 2 * F, *u = g + F;
		float *o = out + (size_t)t * F;
		for (int i = 0; i < F; i++)
			o[i] = gelu_tanh1(g[i], NULL) * u[i];
	}
}

LBDPO_KERNEL void geglu_backward(float *dinp, const float *dout, const float *inp, int T, int F)
{
	/* writes dinp [T, 2F]: dg = do·u·gelu'(g), du = do·gelu(g) */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *g = inp + (size_t)t * 2 * F, *u = g + F, *d = dout + (size_t)t * F;
		float *dg = dinp + (size_t)t * 2 * F, *du = dg + F;
		for (int i = 0; i < F; i++) {
			float gd, ge = gelu_tanh1(g[i], &gd);
			dg[i] = d[i] * u[i] * gd;
			du[i] = d[i] * ge;
		}
	}
}

LBDPO_KERNEL void softcap_forward(float *x, size_t n, float cap)
{
	/* x ← cap·tanh(x/cap), in place */
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		x[i] = cap * tanhf(x[i] / cap);
}

LBDPO_KERNEL void softcap_backward(float *dx, const float *y, size_t n, float cap)
{
	/* in place: dx ← dx·(1 − (y/cap)²), y the capped values */
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float s = y[i] / cap;
		dx[i] *= 1.0f - s * s;
	}
}
