/* layers.c — CPU kernels of the transformer (see layers.h for conventions).
 * Every kernel is LBDPO_KERNEL (cpu.h): built for AVX-512, AVX2 and the
 * baseline, picked at load time; exponentials go through vexpf (vexp.h) so
 * that their loops vectorize. */
#include "libcore/layers.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/cpu.h"
#include "base/util.h"
#include "libcore/vexp.h"
#include "libcore/nn/gemm_bf16.h"

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

LBDPO_KERNEL void embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T,
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

LBDPO_KERNEL void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps, int T, int C)
{
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
		      const float *rstd, int T, int C)
{
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

LBDPO_KERNEL void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
		       float eps, int T, int C)
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

LBDPO_KERNEL void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
			const float *mean, const float *rstd, int T, int C)
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

LBDPO_KERNEL void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
		     int T, int IC, int OC, int w_in_out)
{
	if (w_in_out) {
		/* W [IC,OC]: dinp += dout·Wᵀ ; dW += inpᵀ·dout */
		if (dinp)
			gemm_rm(0, 1, T, IC, OC, dout, OC, w, OC, 1.0f, dinp, IC);
		gemm_rm(1, 0, IC, OC, T, inp, IC, dout, OC, 1.0f, dw, OC);
	} else {
		/* W [OC,IC]: dinp += dout·W ; dW += doutᵀ·inp */
		if (dinp)
			gemm_rm(0, 0, T, IC, OC, dout, OC, w, IC, 1.0f, dinp, IC);
		gemm_rm(1, 0, OC, IC, T, dout, OC, inp, IC, 1.0f, dw, IC);
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
LBDPO_INLINE void rope_part_apply(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim,
				  int stride, float sgn)
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

/* ------------------------------------------------------------ attention */

LBDPO_INLINE float dotf(const float *a, const float *b, int n)
{
	/* simd reduction: lets the compiler reassociate (vectorize) the sum */
	float s = 0;
#pragma omp simd reduction(+ : s)
	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* sc[j − j0] = q·k_j·scale for keys j in [j0, j1); k_j = kbase + j·S.
 * Four keys at a time: four independent accumulators keep the FMA units
 * busy where one dot product would wait on its own latency. */
LBDPO_INLINE void att_scores(float *sc, const float *q, const float *kbase, size_t S, int j0, int j1, float scale,
		       int hd)
{
	int j = j0;
	for (; j + 4 <= j1; j += 4) {
		const float *k0 = kbase + (size_t)j * S, *k1 = k0 + S, *k2 = k1 + S, *k3 = k2 + S;
		float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
		for (int i = 0; i < hd; i++) {
			s0 += q[i] * k0[i];
			s1 += q[i] * k1[i];
			s2 += q[i] * k2[i];
			s3 += q[i] * k3[i];
		}
		sc[j - j0] = s0 * scale;
		sc[j - j0 + 1] = s1 * scale;
		sc[j - j0 + 2] = s2 * scale;
		sc[j - j0 + 3] = s3 * scale;
	}
	for (; j < j1; j++)
		sc[j - j0] = dotf(q, kbase + (size_t)j * S, hd) * scale;
}

/* o += Σ_{j in [j0,j1)} p[j − j0]·v_j, four values at a time. */
LBDPO_INLINE void att_pv(float *restrict o, const float *p, const float *vbase, size_t S, int j0, int j1, int hd)
{
	int j = j0;
	for (; j + 4 <= j1; j += 4) {
		const float *v0 = vbase + (size_t)j * S, *v1 = v0 + S, *v2 = v1 + S, *v3 = v2 + S;
		const float p0 = p[j - j0], p1 = p[j - j0 + 1], p2 = p[j - j0 + 2], p3 = p[j - j0 + 3];
#pragma omp simd
		for (int i = 0; i < hd; i++)
			o[i] += p0 * v0[i] + p1 * v1[i] + p2 * v2[i] + p3 * v3[i];
	}
	for (; j < j1; j++) {
		const float *v = vbase + (size_t)j * S, pj = p[j - j0];
#pragma omp simd
		for (int i = 0; i < hd; i++)
			o[i] += pj * v[i];
	}
}

/* Queries per block of the blocked attention paths (one vector lane each). */
enum { ATT_QB = 16 };

/* Forward of a block of nq ≤ ATT_QB queries t0 + a with the same key ranges
 * (head h), the queries across vector lanes: scores of every visible key
 * into sc [keys][QB] (broadcast k_j[i] times column i of Qᵀ), the max per
 * lane, p = e^{s − max}, then Oᵀ[i][a] += v_j[i]·p_a; out = Oᵀ/Σp,
 * lse = max + log Σp. hd a multiple of 16. */
LBDPO_INLINE void att_fwd_block(float *out, float *lse, const float *qkv, float *restrict sc, float *restrict QT,
				float *restrict OT, int t0, int nq, int ka, int kb, int kc, int h, int H, int KV,
				int hd, float scale)
{
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int kh = h / (H / KV);
	const float *kbase = qkv + (size_t)H * hd + (size_t)kh * hd;
	const float *vbase = qkv + (size_t)(H + KV) * hd + (size_t)kh * hd;
	memset(QT, 0, sizeof(float) * (size_t)hd * ATT_QB);
	memset(OT, 0, sizeof(float) * (size_t)hd * ATT_QB);
	for (int a = 0; a < nq; a++) {
		const float *q = qkv + (size_t)(t0 + a) * S + (size_t)h * hd;
		for (int i = 0; i < hd; i++)
			QT[i * ATT_QB + a] = q[i];
	}
	const int n1 = kb - ka, n = n1 + (t0 + nq - kc);
	float mx[ATT_QB], sum[ATT_QB];
	for (int a = 0; a < ATT_QB; a++)
		mx[a] = -INFINITY, sum[a] = 0;
	for (int x = 0; x < n; x++) {
		const int j = x < n1 ? ka + x : kc + (x - n1);
		const float *k = kbase + (size_t)j * S;
		float s[ATT_QB] = { 0 };
		for (int i = 0; i < hd; i++) {
			const float ki = k[i];
#pragma omp simd
			for (int a = 0; a < ATT_QB; a++)
				s[a] += ki * QT[i * ATT_QB + a];
		}
		const int lim = x < n1 ? 0 : j - t0; /* lane a sees key j iff lim ≤ a < nq */
		float *r = sc + (size_t)x * ATT_QB;
#pragma omp simd
		for (int a = 0; a < ATT_QB; a++) {
			float v = (a < nq && a >= lim) ? s[a] * scale : -INFINITY;
			r[a] = v;
			mx[a] = v > mx[a] ? v : mx[a];
		}
	}
	for (int x = 0; x < n; x++) {
		const int j = x < n1 ? ka + x : kc + (x - n1);
		const float *v = vbase + (size_t)j * S;
		float *r = sc + (size_t)x * ATT_QB;
#pragma omp simd
		for (int a = 0; a < ATT_QB; a++) {
			float e = r[a] > -INFINITY ? vexpf(r[a] - mx[a]) : 0.0f;
			r[a] = e;
			sum[a] += e;
		}
		for (int i = 0; i < hd; i++) {
			const float vi = v[i];
#pragma omp simd
			for (int a = 0; a < ATT_QB; a++)
				OT[i * ATT_QB + a] += vi * r[a];
		}
	}
	for (int a = 0; a < nq; a++) {
		float *o = out + (size_t)(t0 + a) * H * hd + (size_t)h * hd;
		const float inv = 1.0f / sum[a];
		for (int i = 0; i < hd; i++)
			o[i] = OT[i * ATT_QB + a] * inv;
		lse[(size_t)(t0 + a) * H + h] = mx[a] + logf(sum[a]);
	}
}

LBDPO_KERNEL void attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc,
		       int T, int H, int KV, int hd)
{
	/* out [T, H·hd], lse [T, H], qkv [T, (H+2KV)·hd] */
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int grp = H / KV;
	const float scale = 1.0f / sqrtf((float)hd);
	if (hd % 16 == 0 && T > 0) {
		/* blocks of consecutive queries with the same key ranges */
		int *bt = xmalloc(sizeof(int) * T), nb = 0;
		for (int t = 0; t < T;) {
			int nq = 1;
			while (nq < ATT_QB && t + nq < T && ka[t + nq] == ka[t] && kb[t + nq] == kb[t] && kc[t + nq] == kc[t])
				nq++;
			bt[nb++] = t;
			t += nq;
		}
#pragma omp parallel
		{
			float *sc = xmalloc(sizeof(float) * (size_t)T * ATT_QB); /* [keys][QB] scores, then p */
			float *QT = xmalloc(sizeof(float) * (size_t)hd * ATT_QB * 2), *OT = QT + (size_t)hd * ATT_QB;
#pragma omp for collapse(2) schedule(dynamic, 1)
			for (int b = 0; b < nb; b++)
				for (int h = 0; h < H; h++) {
					const int t0 = bt[b], nq = (b + 1 < nb ? bt[b + 1] : T) - t0;
					att_fwd_block(out, lse, qkv, sc, QT, OT, t0, nq, ka[t0], kb[t0], kc[t0], h, H, KV,
						      hd, scale);
				}
			free(sc);
			free(QT);
		}
		free(bt);
		return;
	}
#pragma omp parallel
	{
		float *sc = xmalloc(sizeof(float) * (size_t)(T > 0 ? T : 1)); /* [T] scores of one query */
		float *acc = xmalloc(sizeof(float) * hd);                       /* [hd] output accumulator */
#pragma omp for collapse(2) schedule(dynamic, 8)
		for (int t = 0; t < T; t++) {
			for (int h = 0; h < H; h++) {
				const float *q = qkv + (size_t)t * S + (size_t)h * hd;
				const int kh = h / grp;
				const float *kbase = qkv + (size_t)H * hd + (size_t)kh * hd;
				const float *vbase = qkv + (size_t)(H + KV) * hd + (size_t)kh * hd;
				const int na = kb[t] - ka[t], n = na + (t - kc[t] + 1);
				att_scores(sc, q, kbase, S, ka[t], kb[t], scale, hd);
				att_scores(sc + na, q, kbase, S, kc[t], t + 1, scale, hd);
				float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
				for (int i = 0; i < n; i++)
					mx = sc[i] > mx ? sc[i] : mx;
				float sum = 0;
#pragma omp simd reduction(+ : sum)
				for (int i = 0; i < n; i++) {
					sc[i] = vexpf(sc[i] - mx);
					sum += sc[i];
				}
				memset(acc, 0, sizeof(float) * hd);
				att_pv(acc, sc, vbase, S, ka[t], kb[t], hd);
				att_pv(acc, sc + na, vbase, S, kc[t], t + 1, hd);
				float *o = out + (size_t)t * H * hd + (size_t)h * hd;
				const float inv = 1.0f / sum;
				for (int i = 0; i < hd; i++)
					o[i] = acc[i] * inv;
				lse[(size_t)t * H + h] = mx + logf(sum);
			}
		}
		free(sc);
		free(acc);
	}
}

/* Backward over keys [j0, j1) of query (t,h), four keys at a time:
 *   p = exp(q·k/√d − lse),  ds = p·(do·v − D)/√d  with D = do·o,
 *   dq += ds·k,  dk += ds·q,  dv += p·do.
 * dq is the caller's local accumulator (never aliases dk/dv). */
LBDPO_INLINE void att_bwd_range(float *restrict dq, float *dkbase, float *dvbase, const float *q, const float *kbase,
			  const float *vbase, const float *dy, size_t S, int j0, int j1, float l, float D,
			  float scale, int hd)
{
	int j = j0;
	for (; j + 4 <= j1; j += 4) {
		const float *k0 = kbase + (size_t)j * S, *k1 = k0 + S, *k2 = k1 + S, *k3 = k2 + S;
		const float *v0 = vbase + (size_t)j * S, *v1 = v0 + S, *v2 = v1 + S, *v3 = v2 + S;
		float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
		for (int i = 0; i < hd; i++) {
			a0 += q[i] * k0[i];
			a1 += q[i] * k1[i];
			a2 += q[i] * k2[i];
			a3 += q[i] * k3[i];
			b0 += dy[i] * v0[i];
			b1 += dy[i] * v1[i];
			b2 += dy[i] * v2[i];
			b3 += dy[i] * v3[i];
		}
		float p[4] = { vexpf(a0 * scale - l), vexpf(a1 * scale - l), vexpf(a2 * scale - l), vexpf(a3 * scale - l) };
		float ds[4] = { p[0] * (b0 - D) * scale, p[1] * (b1 - D) * scale, p[2] * (b2 - D) * scale,
				p[3] * (b3 - D) * scale };
#pragma omp simd
		for (int i = 0; i < hd; i++)
			dq[i] += ds[0] * k0[i] + ds[1] * k1[i] + ds[2] * k2[i] + ds[3] * k3[i];
		for (int m = 0; m < 4; m++) {
			float *restrict dk = dkbase + (size_t)(j + m) * S, *restrict dv = dvbase + (size_t)(j + m) * S;
			const float pm = p[m], dsm = ds[m];
#pragma omp simd
			for (int i = 0; i < hd; i++) {
				dk[i] += dsm * q[i];
				dv[i] += pm * dy[i];
			}
		}
	}
	for (; j < j1; j++) {
		const float *k = kbase + (size_t)j * S, *v = vbase + (size_t)j * S;
		float *restrict dk = dkbase + (size_t)j * S, *restrict dv = dvbase + (size_t)j * S;
		const float p = vexpf(dotf(q, k, hd) * scale - l), ds = p * (dotf(dy, v, hd) - D) * scale;
#pragma omp simd
		for (int i = 0; i < hd; i++) {
			dq[i] += ds * k[i];
			dk[i] += ds * q[i];
			dv[i] += p * dy[i];
		}
	}
}

/* Backward of a block of up to ATT_QB queries t0 + a (one head, the same key
 * ranges) against keys [j0, j1), the queries across vector lanes:
 *   s_a = q_a·k_j,  dp_a = dy_a·v_j   (broadcast k_j[i] times column i of Qᵀ)
 *   p_a = exp(s_a/√d − lse_a),  ds_a = p_a·(dp_a − D_a)/√d
 *   dQᵀ[:, a] += ds_a·k_j,  dk_j += Σ_a ds_a·q_a,  dv_j += Σ_a p_a·dy_a
 * so k_j, v_j, dk_j and dv_j are touched once per block rather than once per
 * query, and no dot product needs a horizontal sum. diag: key j is visible
 * to lane a only if j ≤ t0 + a (the causal part); lanes ≥ nq are padding.
 * QT, DYT [hd][QB]; Qr, DYr [QB][hd]; hd a multiple of 16. */
LBDPO_INLINE void att_bwd_block(float *restrict dQT, float *dkbase, float *dvbase, const float *restrict QT,
				const float *restrict DYT, const float *restrict Qr, const float *restrict DYr,
				const float *L, const float *Dv, const float *kbase, const float *vbase, size_t S,
				int j0, int j1, int t0, int nq, int diag, float scale, int hd)
{
	for (int j = j0; j < j1; j++) {
		const float *k = kbase + (size_t)j * S, *v = vbase + (size_t)j * S;
		float sc[ATT_QB] = { 0 }, dp[ATT_QB] = { 0 }, p[ATT_QB], ds[ATT_QB];
		for (int i = 0; i < hd; i++) {
			const float ki = k[i], vi = v[i];
#pragma omp simd
			for (int a = 0; a < ATT_QB; a++) {
				sc[a] += ki * QT[i * ATT_QB + a];
				dp[a] += vi * DYT[i * ATT_QB + a];
			}
		}
		const int lim = diag ? j - t0 : 0; /* lane a sees key j iff a >= lim */
#pragma omp simd
		for (int a = 0; a < ATT_QB; a++) {
			float e = vexpf(sc[a] * scale - L[a]);
			e = (a < nq && a >= lim) ? e : 0.0f;
			p[a] = e;
			ds[a] = e * (dp[a] - Dv[a]) * scale;
		}
		for (int i = 0; i < hd; i++) {
			const float ki = k[i];
#pragma omp simd
			for (int a = 0; a < ATT_QB; a++)
				dQT[i * ATT_QB + a] += ki * ds[a];
		}
		float *dk = dkbase + (size_t)j * S, *dv = dvbase + (size_t)j * S;
		for (int i0 = 0; i0 < hd; i0 += 16) {
			float ak[16] = { 0 }, av[16] = { 0 };
			for (int a = lim > 0 ? lim : 0; a < nq; a++) {
				const float da = ds[a], pa = p[a];
				const float *qa = Qr + (size_t)a * hd + i0, *ya = DYr + (size_t)a * hd + i0;
#pragma omp simd
				for (int i = 0; i < 16; i++) {
					ak[i] += da * qa[i];
					av[i] += pa * ya[i];
				}
			}
#pragma omp simd
			for (int i = 0; i < 16; i++) {
				dk[i0 + i] += ak[i];
				dv[i0 + i] += av[i];
			}
		}
	}
}

LBDPO_KERNEL void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			int KV, int hd)
{
	(void)T;
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int grp = H / KV;
	const float scale = 1.0f / sqrtf((float)hd);
	const int blocked = hd % 16 == 0;
#pragma omp parallel
	{
		float *dq = xmalloc(sizeof(float) * hd); /* [hd] one query's gradient */
		/* blocked path: Qᵀ, dYᵀ, Q, dY, dQᵀ of one block, lse and D per lane */
		float *QT = xmalloc(sizeof(float) * (size_t)hd * ATT_QB * 5 + sizeof(float) * 2 * ATT_QB);
		float *DYT = QT + (size_t)hd * ATT_QB, *Qr = DYT + (size_t)hd * ATT_QB, *DYr = Qr + (size_t)hd * ATT_QB;
		float *dQT = DYr + (size_t)hd * ATT_QB, *L = dQT + (size_t)hd * ATT_QB, *Dv = L + ATT_QB;
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int s = 0; s < n_seq; s++) {
			for (int kh = 0; kh < KV; kh++) {
				const size_t koff = (size_t)H * hd + (size_t)kh * hd;
				const size_t voff = (size_t)(H + KV) * hd + (size_t)kh * hd;
				if (blocked) {
					for (int h = kh * grp; h < (kh + 1) * grp; h++) {
						for (int t0 = seq_off[s], nq; t0 < seq_off[s + 1]; t0 += nq) {
							/* consecutive queries with the same key ranges */
							nq = 1;
							while (nq < ATT_QB && t0 + nq < seq_off[s + 1] && ka[t0 + nq] == ka[t0] &&
							       kb[t0 + nq] == kb[t0] && kc[t0 + nq] == kc[t0])
								nq++;
							memset(QT, 0, sizeof(float) * (size_t)hd * ATT_QB * 5);
							for (int a = 0; a < ATT_QB; a++) {
								L[a] = Dv[a] = 0;
								if (a >= nq)
									continue;
								const int t = t0 + a;
								const float *q = qkv + (size_t)t * S + (size_t)h * hd;
								const float *dy = dout + (size_t)t * H * hd + (size_t)h * hd;
								const float *o = out + (size_t)t * H * hd + (size_t)h * hd;
								Dv[a] = dotf(dy, o, hd);
								L[a] = lse[(size_t)t * H + h];
								memcpy(Qr + (size_t)a * hd, q, sizeof(float) * hd);
								memcpy(DYr + (size_t)a * hd, dy, sizeof(float) * hd);
								for (int i = 0; i < hd; i++) {
									QT[i * ATT_QB + a] = q[i];
									DYT[i * ATT_QB + a] = dy[i];
								}
							}
							att_bwd_block(dQT, dqkv + koff, dqkv + voff, QT, DYT, Qr, DYr, L, Dv,
								      qkv + koff, qkv + voff, S, ka[t0], kb[t0], t0, nq, 0, scale,
								      hd);
							att_bwd_block(dQT, dqkv + koff, dqkv + voff, QT, DYT, Qr, DYr, L, Dv,
								      qkv + koff, qkv + voff, S, kc[t0], t0 + nq, t0, nq, 1, scale,
								      hd);
							for (int a = 0; a < nq; a++) {
								float *dqt = dqkv + (size_t)(t0 + a) * S + (size_t)h * hd;
								for (int i = 0; i < hd; i++)
									dqt[i] += dQT[i * ATT_QB + a];
							}
						}
					}
					continue;
				}
				for (int t = seq_off[s]; t < seq_off[s + 1]; t++) {
					for (int h = kh * grp; h < (kh + 1) * grp; h++) {
						const float *q = qkv + (size_t)t * S + (size_t)h * hd;
						const float *dy = dout + (size_t)t * H * hd + (size_t)h * hd;
						const float *o = out + (size_t)t * H * hd + (size_t)h * hd;
						const float D = dotf(dy, o, hd), l = lse[(size_t)t * H + h];
						memset(dq, 0, sizeof(float) * hd);
						att_bwd_range(dq, dqkv + koff, dqkv + voff, q, qkv + koff, qkv + voff, dy, S, ka[t],
							      kb[t], l, D, scale, hd);
						att_bwd_range(dq, dqkv + koff, dqkv + voff, q, qkv + koff, qkv + voff, dy, S, kc[t],
							      t + 1, l, D, scale, hd);
						float *dqt = dqkv + (size_t)t * S + (size_t)h * hd;
						for (int i = 0; i < hd; i++)
							dqt[i] += dq[i];
					}
				}
			}
		}
		free(dq);
		free(QT);
	}
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

/* ------------------------------------------- language-model head, loss hand-off */

void lmhead_forward(float *logits, const float *h, const float *w, int T, int C, int V)
{
	gemm_rm(0, 1, T, V, C, h, C, w, C, 0.0f, logits, V);
}

void lmhead_forward1(float *logits, const float *h, const float *w, int C, int V)
{
	cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, w, C, h, 1, 0.0f, logits, 1);
}

void lmhead_backward(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C, int V)
{
	if (n <= 0)
		return;
	gemm_rm(0, 0, n, C, V, dz, V, w, C, 0.0f, dh, C);
	gemm_rm(1, 0, V, C, n, dz, V, h, C, 1.0f, dw, C);
}

/* Columns per chunk of logsoftmax_rows: 2 KiB, read twice from L1. */
enum { LSE_CHUNK = 512 };

LBDPO_KERNEL void logsoftmax_rows(float *lse_out, float *lp, float *ent, const float *logits, const logit_row *rows,
				  int T, int V)
{
	/* lse = m + log s, s = Σ e^(z−m); log p(y) = z_y − lse; entropy = log s − u/s,
	 * u = Σ e^(z−m)(z−m). One pass over the row (it is 125 KiB at V = 32000,
	 * past L1) in chunks that stay in L1: the chunk's max, then its exps
	 * against the running max m. When a chunk raises m to m', the running
	 * sums move to the new max first (α = e^(m−m')):
	 *   s ← α·s,   u ← α·(u − (m'−m)·s).
	 * Exps are vexpf across the vector lanes, summed in double (a float sum
	 * holding the max's 1 loses the small terms: 3e-6 in lse without lanes). */
#pragma omp parallel for schedule(static)
	for (int r = 0; r < T; r++) {
		const logit_row *ri = &rows[r];
		if (!ri->kind[0] && !ri->kind[1])
			continue;
		const float *z = logits + (size_t)r * V;
		const int want_u = ri->kind[0] == 1;
		float m = -INFINITY;
		double s = 0, u = 0;
		for (int v0 = 0; v0 < V; v0 += LSE_CHUNK) {
			const float *zc = z + v0;
			const int n = V - v0 < LSE_CHUNK ? V - v0 : LSE_CHUNK;
			float cm = -INFINITY;
#pragma omp simd reduction(max : cm)
			for (int i = 0; i < n; i++)
				cm = zc[i] > cm ? zc[i] : cm;
			if (cm > m) {
				if (s > 0) {
					const double a = exp((double)m - cm);
					u = want_u ? a * (u - ((double)cm - m) * s) : 0; /* 0: ent = log s */
					s *= a;
				}
				m = cm;
			}
			double cs = 0, cu = 0;
			if (want_u) {
#pragma omp simd reduction(+ : cs, cu)
				for (int i = 0; i < n; i++) {
					const float d = zc[i] - m, e = vexpf(d);
					cs += e;
					cu += e * d;
				}
			} else {
#pragma omp simd reduction(+ : cs)
				for (int i = 0; i < n; i++)
					cs += vexpf(zc[i] - m);
			}
			s += cs;
			u += cu;
		}
		const double lse = m + log(s);
		lse_out[r] = (float)lse;
		ent[r] = (float)(log(s) - u / s);
		for (int k = 0; k < 2; k++)
			lp[2 * r + k] = ri->kind[k] ? (float)(z[ri->y[k]] - lse) : 0.0f;
	}
}

void seq_logp_sums(double *st, const float *lp, const float *ent, const logit_row *rows, const int *seq_off,
		   int n_seq)
{
	for (int s = 0; s < n_seq; s++) {
		double c[2] = {0, 0}, pl = 0, pe = 0;
		for (int r = seq_off[s]; r < seq_off[s + 1]; r++) {
			const logit_row *ri = &rows[r];
			for (int k = 0; k < 2; k++) {
				if (ri->kind[k] == 1) {
					pl += lp[2 * r + k];
					pe += ent[r];
				} else if (ri->kind[k] >= 2) {
					c[ri->kind[k] - 2] += lp[2 * r + k];
				}
			}
		}
		st[4 * s] = c[0];
		st[4 * s + 1] = c[1];
		st[4 * s + 2] = pl;
		st[4 * s + 3] = pe;
	}
}

LBDPO_KERNEL void logit_grad_rows(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y,
				  int n, int V)
{
	/* dz = Σ_k w_k e_{y_k} − a·e^(z−lse), a = Σ_k w_k: one read and write of the
	 * row, vexpf across the lanes. (It cannot join logsoftmax_rows' pass: the
	 * weights w come from the loss, after every sequence's sums.) */
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++) {
		const int r = idx[i];
		float *z = logits + (size_t)r * V;
		const float a = (float)(w[2 * i] + w[2 * i + 1]), l = lse[r];
#pragma omp simd
		for (int v = 0; v < V; v++)
			z[v] = -a * vexpf(z[v] - l);
		for (int k = 0; k < 2; k++)
			if (y[2 * i + k] >= 0)
				z[y[2 * i + k]] += (float)w[2 * i + k];
	}
}

void rows_gather(float *dst, const float *src, const int *idx, int n, int C)
{
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++)
		memcpy(dst + (size_t)i * C, src + (size_t)idx[i] * C, sizeof(float) * C);
}

void rows_scatter(float *dst, const float *src, const int *idx, int n, int C)
{
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++)
		memcpy(dst + (size_t)idx[i] * C, src + (size_t)i * C, sizeof(float) * C);
}

void rows_compact(float *x, const int *idx, int n, int C)
{
	/* row i moves to slot i; idx[i] ≥ i increasing, so in order */
	for (int i = 0; i < n; i++)
		if (idx[i] != i)
			memmove(x + (size_t)i * C, x + (size_t)idx[i] * C, sizeof(float) * C);
}

void pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq,
		  int C)
{
	for (int s = 0; s < n_seq; s++) {
		const int st = seq_off[s], P = seq_P[s];
		if (last)
			memcpy(last + (size_t)s * C, x + (size_t)(st + P - 1) * C, sizeof(float) * C);
		if (mean) {
			for (int ch = 0; ch < C; ch++) {
				double acc = 0;
				for (int i = 0; i < P; i++)
					acc += x[(size_t)(st + i) * C + ch];
				mean[(size_t)s * C + ch] = (float)(acc / P);
			}
		}
	}
}

void pool_backward(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
		   const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C)
{
	for (int s = 0; s < n_seq; s++) {
		const int st = seq_off[s], P = seq_P[s];
		if (has_last[s]) {
			const float *d = d_last + (size_t)s * C;
			for (int ch = 0; ch < C; ch++)
				dx[(size_t)(st + P - 1) * C + ch] += d[ch];
		}
		if (has_mean[s]) {
			const float *d = d_mean + (size_t)s * C;
			for (int i = 0; i < P; i++)
				for (int ch = 0; ch < C; ch++)
					dx[(size_t)(st + i) * C + ch] += d[ch] / P;
		}
	}
}

/* ------------------------------------------------------- KV-cache decoding */

void kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV)
{
	const int KVD = KV * hd;
	for (int i = 0; i < n; i++) {
		memcpy(kc + (size_t)(at + i) * KVD, qkv + (size_t)i * QKV + (size_t)H * hd, sizeof(float) * KVD);
		memcpy(vc + (size_t)(at + i) * KVD, qkv + (size_t)i * QKV + (size_t)(H + KV) * hd, sizeof(float) * KVD);
	}
}

void attention_decode(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H,
		      int KV, int hd, int QKV)
{
	const int KVD = KV * hd, grp = H / KV;
	const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
	{
		float *sc = xmalloc(sizeof(float) * (size_t)(len0 + n));
#pragma omp for collapse(2) schedule(static)
		for (int i = 0; i < n; i++) {
			for (int h = 0; h < H; h++) {
				const float *q = qkv + (size_t)i * QKV + (size_t)h * hd;
				const int kh = h / grp, nk = len0 + i + 1;
				float mx = -INFINITY, sum = 0;
				for (int j = 0; j < nk; j++) {
					const float *k = K + (size_t)j * KVD + (size_t)kh * hd;
					float d = 0;
					for (int e = 0; e < hd; e++)
						d += q[e] * k[e];
					sc[j] = d * scale;
					mx = sc[j] > mx ? sc[j] : mx;
				}
				for (int j = 0; j < nk; j++) {
					sc[j] = expf(sc[j] - mx);
					sum += sc[j];
				}
				float *o = out + (size_t)i * H * hd + (size_t)h * hd;
				memset(o, 0, sizeof(float) * hd);
				for (int j = 0; j < nk; j++) {
					const float *v = Vc + (size_t)j * KVD + (size_t)kh * hd;
					for (int e = 0; e < hd; e++)
						o[e] += sc[j] * v[e];
				}
				for (int e = 0; e < hd; e++)
					o[e] /= sum;
			}
		}
		free(sc);
	}
}

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

/* ---- partial rotary (GPT-NeoX's rotary_pct) and exact GELU ---- */

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

/* ---- Gemma: (w_off + w) RMSNorm, GeGLU, soft-capped attention and logits ---- */

LBDPO_KERNEL void rmsnorm_off_forward(float *out, float *rstd, const float *inp, const float *w, float w_off,
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

LBDPO_KERNEL void rmsnorm_off_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
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

/* One query's scores s_j over its keys [ka,kb) ∪ [kc,t] (sc indexed by key
 * position − ka); returns the number of keys. z = scale·q·k, s = cap·tanh(z/cap)
 * (cap 0: s = z). */
static int ext_scores(float *sc, const float *q, const float *qkv, size_t S, int koff, int ka, int kb, int kc,
		      int t, int hd, float scale, float cap)
{
	int n = 0;
	for (int r = 0; r < 2; r++) {
		int j0 = r ? kc : ka, j1 = r ? t + 1 : kb;
		for (int j = j0; j < j1; j++) {
			const float *k = qkv + (size_t)j * S + koff;
			float d = 0;
			for (int e = 0; e < hd; e++)
				d += q[e] * k[e];
			d *= scale;
			sc[n++] = cap > 0 ? cap * tanhf(d / cap) : d;
		}
	}
	return n;
}

static int ext_key(int i, int ka, int kb, int kc) { return i < kb - ka ? ka + i : kc + (i - (kb - ka)); }

LBDPO_KERNEL void attention_ext_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb,
					const int *kc, int T, int H, int KV, int hd, float scale, float cap)
{
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int grp = H / KV;
#pragma omp parallel
	{
		float *sc = xmalloc(sizeof(float) * (size_t)(T + 1));
#pragma omp for collapse(2) schedule(static)
		for (int t = 0; t < T; t++)
			for (int h = 0; h < H; h++) {
				const int kh = h / grp;
				const float *q = qkv + (size_t)t * S + (size_t)h * hd;
				int n = ext_scores(sc, q, qkv, S, (H + kh) * hd, ka[t], kb[t], kc[t], t, hd, scale, cap);
				float mx = -INFINITY;
				for (int i = 0; i < n; i++)
					mx = sc[i] > mx ? sc[i] : mx;
				double sum = 0;
				for (int i = 0; i < n; i++)
					sum += sc[i] = expf(sc[i] - mx);
				float *o = out + (size_t)t * H * hd + (size_t)h * hd;
				memset(o, 0, sizeof(float) * hd);
				for (int i = 0; i < n; i++) {
					const float *v = qkv + (size_t)ext_key(i, ka[t], kb[t], kc[t]) * S + (size_t)(H + KV + kh) * hd;
					float p = (float)(sc[i] / sum);
					for (int e = 0; e < hd; e++)
						o[e] += p * v[e];
				}
				lse[(size_t)t * H + h] = mx + (float)log(sum);
			}
		free(sc);
	}
}

LBDPO_KERNEL void attention_ext_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
					 const float *lse, const int *ka, const int *kb, const int *kc,
					 const int *seq_off, int n_seq, int T, int H, int KV, int hd, float scale,
					 float cap)
{
	/* p_j = exp(s_j − lse); ds_j = p_j(do·v_j − do·o); dz_j = ds_j(1 − (s_j/cap)²);
	 * dq += scale·Σ dz_j k_j; dk_j += scale·dz_j q; dv_j += p_j do.
	 * Parallel over (sequence, kv head): keys of one sequence, one kv head
	 * are written by one thread. */
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int grp = H / KV;
	(void)T;
#pragma omp parallel
	{
		float *sc = xmalloc(sizeof(float) * (size_t)(T + 1));
#pragma omp for collapse(2) schedule(dynamic)
		for (int s = 0; s < n_seq; s++)
			for (int kh = 0; kh < KV; kh++)
				for (int t = seq_off[s]; t < seq_off[s + 1]; t++)
					for (int h = kh * grp; h < (kh + 1) * grp; h++) {
						const float *q = qkv + (size_t)t * S + (size_t)h * hd;
						const float *o = out + (size_t)t * H * hd + (size_t)h * hd;
						const float *d = dout + (size_t)t * H * hd + (size_t)h * hd;
						float *dq = dqkv + (size_t)t * S + (size_t)h * hd;
						int n = ext_scores(sc, q, qkv, S, (H + kh) * hd, ka[t], kb[t], kc[t], t, hd, scale, cap);
						float D = 0;
						for (int e = 0; e < hd; e++)
							D += d[e] * o[e];
						const float L = lse[(size_t)t * H + h];
						for (int i = 0; i < n; i++) {
							const size_t j = (size_t)ext_key(i, ka[t], kb[t], kc[t]);
							const float *k = qkv + j * S + (size_t)(H + kh) * hd;
							const float *v = qkv + j * S + (size_t)(H + KV + kh) * hd;
							float *dk = dqkv + j * S + (size_t)(H + kh) * hd;
							float *dv = dqkv + j * S + (size_t)(H + KV + kh) * hd;
							float p = expf(sc[i] - L), dp = 0;
							for (int e = 0; e < hd; e++)
								dp += d[e] * v[e];
							float dz = p * (dp - D);
							if (cap > 0) {
								float u = sc[i] / cap;
								dz *= 1.0f - u * u;
							}
							dz *= scale;
							for (int e = 0; e < hd; e++) {
								dq[e] += dz * k[e];
								dk[e] += dz * q[e];
								dv[e] += p * d[e];
							}
						}
					}
		free(sc);
	}
}

void attention_ext_decode(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H,
			  int KV, int hd, int QKV, float scale, float cap)
{
	const int KVD = KV * hd, grp = H / KV;
#pragma omp parallel
	{
		float *sc = xmalloc(sizeof(float) * (size_t)(len0 + n));
#pragma omp for collapse(2) schedule(static)
		for (int i = 0; i < n; i++)
			for (int h = 0; h < H; h++) {
				const float *q = qkv + (size_t)i * QKV + (size_t)h * hd;
				const int kh = h / grp, nk = len0 + i + 1;
				float mx = -INFINITY;
				for (int j = 0; j < nk; j++) {
					const float *k = K + (size_t)j * KVD + (size_t)kh * hd;
					float d = 0;
					for (int e = 0; e < hd; e++)
						d += q[e] * k[e];
					d *= scale;
					sc[j] = cap > 0 ? cap * tanhf(d / cap) : d;
					mx = sc[j] > mx ? sc[j] : mx;
				}
				double sum = 0;
				for (int j = 0; j < nk; j++)
					sum += sc[j] = expf(sc[j] - mx);
				float *o = out + (size_t)i * H * hd + (size_t)h * hd;
				memset(o, 0, sizeof(float) * hd);
				for (int j = 0; j < nk; j++) {
					const float *v = Vc + (size_t)j * KVD + (size_t)kh * hd;
					float p = (float)(sc[j] / sum);
					for (int e = 0; e < hd; e++)
						o[e] += p * v[e];
				}
			}
		free(sc);
	}
}
