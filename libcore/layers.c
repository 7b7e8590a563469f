/* layers.c — CPU kernels of the transformer (see layers.h for conventions). */
#include "libcore/layers.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/util.h"

/* ---------------------------------------------------------------- embed */

void embed_forward(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe,
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

void embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T,
		    int C)
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

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps, int T, int C)
{
	/* out [T,C], rstd [T], inp [T,C], w [C] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C;
		float *o = out + (size_t)t * C;
		double ss = 0;
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float r = (float)(1.0 / sqrt(ss / C + eps));
		for (int c = 0; c < C; c++)
			o[c] = x[c] * r * w[c];
		if (rstd)
			rstd[t] = r;
	}
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
		      const float *rstd, int T, int C)
{
	/* n = x·r; dn = dy·w; dx = r·(dn − n·mean(dn·n)); dw += Σ_t dy·n */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
		float *dx = dinp + (size_t)t * C;
		float r = rstd[t];
		double dot = 0;
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
		float acc[64] = { 0 };
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

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
		       float eps, int T, int C)
{
	/* out [T,C], mean/rstd [T] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C;
		float *o = out + (size_t)t * C;
		double s = 0;
		for (int c = 0; c < C; c++)
			s += x[c];
		float m = (float)(s / C);
		double v = 0;
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

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
			const float *mean, const float *rstd, int T, int C)
{
	/* n = (x−μ)·r; dn = dy·w; dx = r·(dn − mean(dn) − n·mean(dn·n)) */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
		float *dx = dinp + (size_t)t * C;
		float m = mean[t], r = rstd[t];
		double s1 = 0, s2 = 0;
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
		float aw[64] = { 0 }, ab[64] = { 0 };
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

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC,
		    int w_in_out)
{
	/* out [T,OC], inp [T,IC], w [OC,IC] or [IC,OC], bias [OC] */
	if (w_in_out)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, OC, IC, 1.0f, inp, IC, w, OC, 0.0f, out,
			    OC);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out,
			    OC);
	if (bias) {
#pragma omp parallel for schedule(static)
		for (int t = 0; t < T; t++) {
			float *o = out + (size_t)t * OC;
			for (int c = 0; c < OC; c++)
				o[c] += bias[c];
		}
	}
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
		     int T, int IC, int OC, int w_in_out)
{
	if (w_in_out) {
		/* W [IC,OC]: dinp += dout·Wᵀ ; dW += inpᵀ·dout */
		if (dinp)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, IC, OC, 1.0f, dout, OC, w, OC, 1.0f,
				    dinp, IC);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, T, 1.0f, inp, IC, dout, OC, 1.0f, dw,
			    OC);
	} else {
		/* W [OC,IC]: dinp += dout·W ; dW += doutᵀ·inp */
		if (dinp)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, IC, OC, 1.0f, dout, OC, w, IC, 1.0f,
				    dinp, IC);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, T, 1.0f, dout, OC, inp, IC, 1.0f, dw,
			    IC);
	}
	if (dbias) {
		int nblk = (OC + 63) / 64;
#pragma omp parallel for schedule(static)
		for (int b = 0; b < nblk; b++) {
			int c0 = b * 64, c1 = c0 + 64 < OC ? c0 + 64 : OC;
			float acc[64] = { 0 };
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

void rope_table(float *cs, const int *pos, int T, int head_dim, float theta)
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

static void rope_apply(float *x, const float *cs, int T, int n_heads, int head_dim, int stride, float sgn)
{
	int h2 = head_dim / 2;
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *co = cs + (size_t)t * head_dim, *si = co + h2;
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

void rope_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int stride)
{
	rope_apply(x, cs, T, n_heads, head_dim, stride, 1.0f);
}

void rope_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int stride)
{
	/* The rotation is orthogonal: its transpose is the rotation by −angle. */
	rope_apply(dx, cs, T, n_heads, head_dim, stride, -1.0f);
}

/* ------------------------------------------------------------ attention */

static inline float dotf(const float *a, const float *b, int n)
{
	/* simd reduction: lets the compiler reassociate (vectorize) the sum */
	float s = 0;
#pragma omp simd reduction(+ : s)
	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

void attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc,
		       int T, int H, int KV, int hd)
{
	/* out [T, H·hd], lse [T, H], qkv [T, (H+2KV)·hd] */
	const int S = (H + 2 * KV) * hd, grp = H / KV;
	const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
	{
		float *sc = xmalloc(sizeof(float) * (size_t)(T > 0 ? T : 1)); /* scores of one query */
#pragma omp for collapse(2) schedule(dynamic, 8)
		for (int t = 0; t < T; t++) {
			for (int h = 0; h < H; h++) {
				const float *q = qkv + (size_t)t * S + (size_t)h * hd;
				const int kh = h / grp;
				const size_t koff = (size_t)H * hd + (size_t)kh * hd;
				const size_t voff = (size_t)(H + KV) * hd + (size_t)kh * hd;
				int n = 0;
				float mx = -INFINITY;
				for (int j = ka[t]; j < kb[t]; j++, n++) {
					sc[n] = dotf(q, qkv + (size_t)j * S + koff, hd) * scale;
					mx = sc[n] > mx ? sc[n] : mx;
				}
				for (int j = kc[t]; j <= t; j++, n++) {
					sc[n] = dotf(q, qkv + (size_t)j * S + koff, hd) * scale;
					mx = sc[n] > mx ? sc[n] : mx;
				}
				float sum = 0;
				for (int i = 0; i < n; i++) {
					sc[i] = expf(sc[i] - mx);
					sum += sc[i];
				}
				float *o = out + (size_t)t * H * hd + (size_t)h * hd;
				memset(o, 0, sizeof(float) * hd);
				n = 0;
				for (int j = ka[t]; j < kb[t]; j++, n++) {
					const float *v = qkv + (size_t)j * S + voff;
					for (int i = 0; i < hd; i++)
						o[i] += sc[n] * v[i];
				}
				for (int j = kc[t]; j <= t; j++, n++) {
					const float *v = qkv + (size_t)j * S + voff;
					for (int i = 0; i < hd; i++)
						o[i] += sc[n] * v[i];
				}
				float inv = 1.0f / sum;
				for (int i = 0; i < hd; i++)
					o[i] *= inv;
				lse[(size_t)t * H + h] = mx + logf(sum);
			}
		}
		free(sc);
	}
}

/* One key j of the backward for query (t,h): p = exp(s − lse),
 * ds = p·(do·v − D) with D = do·o; dq += ds·k/√d, dk += ds·q/√d, dv += p·do.
 * dq is a local accumulator (restrict: it never aliases dk/dv). */
static inline void att_bwd_key(float *restrict dq, float *restrict dk, float *restrict dv, const float *q,
			       const float *k, const float *v, const float *dout, float l, float D, float scale, int hd)
{
	float p = expf(dotf(q, k, hd) * scale - l);
	float ds = p * (dotf(dout, v, hd) - D) * scale;
#pragma omp simd
	for (int i = 0; i < hd; i++) {
		dq[i] += ds * k[i];
		dk[i] += ds * q[i];
		dv[i] += p * dout[i];
	}
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			int KV, int hd)
{
	(void)T;
	const int S = (H + 2 * KV) * hd, grp = H / KV;
	const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
	{
		float *dq = xmalloc(sizeof(float) * hd); /* [hd] one query's gradient */
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int s = 0; s < n_seq; s++) {
			for (int kh = 0; kh < KV; kh++) {
				const size_t koff = (size_t)H * hd + (size_t)kh * hd;
				const size_t voff = (size_t)(H + KV) * hd + (size_t)kh * hd;
				for (int t = seq_off[s]; t < seq_off[s + 1]; t++) {
					for (int h = kh * grp; h < (kh + 1) * grp; h++) {
						const float *q = qkv + (size_t)t * S + (size_t)h * hd;
						const float *dy = dout + (size_t)t * H * hd + (size_t)h * hd;
						const float *o = out + (size_t)t * H * hd + (size_t)h * hd;
						float D = dotf(dy, o, hd), l = lse[(size_t)t * H + h];
						memset(dq, 0, sizeof(float) * hd);
						for (int j = ka[t]; j < kb[t]; j++)
							att_bwd_key(dq, dqkv + (size_t)j * S + koff, dqkv + (size_t)j * S + voff,
								    q, qkv + (size_t)j * S + koff, qkv + (size_t)j * S + voff, dy,
								    l, D, scale, hd);
						for (int j = kc[t]; j <= t; j++)
							att_bwd_key(dq, dqkv + (size_t)j * S + koff, dqkv + (size_t)j * S + voff,
								    q, qkv + (size_t)j * S + koff, qkv + (size_t)j * S + voff, dy,
								    l, D, scale, hd);
						float *dqt = dqkv + (size_t)t * S + (size_t)h * hd;
						for (int i = 0; i < hd; i++)
							dqt[i] += dq[i];
					}
				}
			}
		}
		free(dq);
	}
}

/* ------------------------------------------------------- MLP activations */

void swiglu_forward(float *out, const float *inp, int T, int F)
{
	/* out [T,F], inp [T,2F] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *g = inp + (size_t)t * 2 * F, *u = g + F;
		float *o = out + (size_t)t * F;
		for (int i = 0; i < F; i++)
			o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
	}
}

void swiglu_backward(float *dinp, const float *dout, const float *inp, int T, int F)
{
	/* silu'(g) = σ(g)·(1 + g·(1 − σ(g))); writes (not adds) dinp [T,2F] */
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		const float *g = inp + (size_t)t * 2 * F, *u = g + F, *d = dout + (size_t)t * F;
		float *dg = dinp + (size_t)t * 2 * F, *du = dg + F;
		for (int i = 0; i < F; i++) {
			float sg = 1.0f / (1.0f + expf(-g[i]));
			du[i] = d[i] * g[i] * sg;
			dg[i] = d[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
		}
	}
}

#define GELU_K 0.7978845608028654f /* √(2/π) */

void gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
	}
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
	/* writes (not adds) dinp */
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		float th = tanhf(GELU_K * (x + 0.044715f * x * x * x));
		float sech2 = 1.0f - th * th;
		float g = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
		dinp[i] = dout[i] * g;
	}
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void add_inplace(float *acc, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		acc[i] += x[i];
}
