/* attention.c — CPU twins of cuda/attention.cu: causal attention over packed
 * sequences (plain and soft-capped / windowed), forward, backward and
 * KV-cache decoding.
 * Every kernel is LBDPO_KERNEL (runtime.h): built for AVX-512, AVX2 and the
 * baseline, picked at load time; exponentials go through vexpf (vexp.h) so
 * that their loops vectorize. Conventions in kernels.h. */
#include "libcore/nn/cpu/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/nn/cpu/attention_bf16.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/cpu/vexp.h"

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
		float s[ATT_QB] = {0};
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
		att_exp_lanes(r, mx, sum);
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

/* ---- attention with a score scale and soft-cap (Gemma) ----
 * Plain loops (one query, one head at a time), not the blocked kernels:
 * attention_forward/backward/decode come here when given a scale or a cap. */

/* One query's scores s_j over its keys [ka,kb) ∪ [kc,t] (sc indexed by key
 * position − ka); returns the number of keys. z = scale·q·k, s = cap·tanh(z/cap)
 * (cap 0: s = z). */
static int ext_scores(float *sc, const float *q, const float *qkv, size_t S, int koff, int ka, int kb, int kc, int t,
		      int hd, float scale, float cap)
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

LBDPO_KERNEL static void att_ext_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb,
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
				int n = ext_scores(sc, q, qkv, S, (H + kh) * hd, ka[t], kb[t], kc[t], t, hd, scale,
						   cap);
				float mx = -INFINITY;
				for (int i = 0; i < n; i++)
					mx = sc[i] > mx ? sc[i] : mx;
				double sum = 0;
				for (int i = 0; i < n; i++)
					sum += sc[i] = expf(sc[i] - mx);
				float *o = out + (size_t)t * H * hd + (size_t)h * hd;
				memset(o, 0, sizeof(float) * hd);
				for (int i = 0; i < n; i++) {
					const float *v = qkv + (size_t)ext_key(i, ka[t], kb[t], kc[t]) * S +
							 (size_t)(H + KV + kh) * hd;
					float p = (float)(sc[i] / sum);
					for (int e = 0; e < hd; e++)
						o[e] += p * v[e];
				}
				lse[(size_t)t * H + h] = mx + (float)log(sum);
			}
		free(sc);
	}
}

LBDPO_KERNEL static void att_ext_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
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
						int n = ext_scores(sc, q, qkv, S, (H + kh) * hd, ka[t], kb[t], kc[t], t,
								   hd, scale, cap);
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

static void att_ext_decode(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H,
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

LBDPO_KERNEL void attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb,
				    const int *kc, int T, int H, int KV, int hd, float scale, float cap)
{
	if (attention_forward_bf16(out, lse, qkv, ka, kb, kc, T, H, KV, hd, scale, cap))
		return; /* --dtype bf16: the products in bf16 */
	if (scale != 0 || cap != 0) {
		att_ext_forward(out, lse, qkv, ka, kb, kc, T, H, KV, hd, scale ? scale : 1.0f / sqrtf((float)hd), cap);
		return;
	}
	/* out [T, H·hd], lse [T, H], qkv [T, (H+2KV)·hd] */
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int grp = H / KV;
	scale = 1.0f / sqrtf((float)hd);
	if (hd % 16 == 0 && T > 0) {
		/* blocks of consecutive queries with the same key ranges */
		int *bt = xmalloc(sizeof(int) * T), nb = 0;
		for (int t = 0; t < T;) {
			int nq = 1;
			while (nq < ATT_QB && t + nq < T && ka[t + nq] == ka[t] && kb[t + nq] == kb[t] &&
			       kc[t + nq] == kc[t])
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
					att_fwd_block(out, lse, qkv, sc, QT, OT, t0, nq, ka[t0], kb[t0], kc[t0], h, H,
						      KV, hd, scale);
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
		float *acc = xmalloc(sizeof(float) * hd);                     /* [hd] output accumulator */
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
		float p[4] = {vexpf(a0 * scale - l), vexpf(a1 * scale - l), vexpf(a2 * scale - l),
			      vexpf(a3 * scale - l)};
		float ds[4] = {p[0] * (b0 - D) * scale, p[1] * (b1 - D) * scale, p[2] * (b2 - D) * scale,
			       p[3] * (b3 - D) * scale};
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
		float sc[ATT_QB] = {0}, dp[ATT_QB] = {0}, p[ATT_QB], ds[ATT_QB];
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
			float ak[16] = {0}, av[16] = {0};
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

LBDPO_KERNEL void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
				     const float *lse, const int *ka, const int *kb, const int *kc, const int *seq_off,
				     int n_seq, int T, int H, int KV, int hd, float scale, float cap)
{
	if (attention_backward_bf16(dqkv, dout, qkv, out, lse, ka, kb, kc, seq_off, n_seq, T, H, KV, hd, scale, cap))
		return;
	if (scale != 0 || cap != 0) {
		att_ext_backward(dqkv, dout, qkv, out, lse, ka, kb, kc, seq_off, n_seq, T, H, KV, hd,
				 scale ? scale : 1.0f / sqrtf((float)hd), cap);
		return;
	}
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int grp = H / KV;
	scale = 1.0f / sqrtf((float)hd);
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
							while (nq < ATT_QB && t0 + nq < seq_off[s + 1] &&
							       ka[t0 + nq] == ka[t0] && kb[t0 + nq] == kb[t0] &&
							       kc[t0 + nq] == kc[t0])
								nq++;
							memset(QT, 0, sizeof(float) * (size_t)hd * ATT_QB * 5);
							for (int a = 0; a < ATT_QB; a++) {
								L[a] = Dv[a] = 0;
								if (a >= nq)
									continue;
								const int t = t0 + a;
								const float *q = qkv + (size_t)t * S + (size_t)h * hd;
								const float *dy =
									dout + (size_t)t * H * hd + (size_t)h * hd;
								const float *o =
									out + (size_t)t * H * hd + (size_t)h * hd;
								Dv[a] = dotf(dy, o, hd);
								L[a] = lse[(size_t)t * H + h];
								memcpy(Qr + (size_t)a * hd, q, sizeof(float) * hd);
								memcpy(DYr + (size_t)a * hd, dy, sizeof(float) * hd);
								for (int i = 0; i < hd; i++) {
									QT[i * ATT_QB + a] = q[i];
									DYT[i * ATT_QB + a] = dy[i];
								}
							}
							att_bwd_block(dQT, dqkv + koff, dqkv + voff, QT, DYT, Qr, DYr,
								      L, Dv, qkv + koff, qkv + voff, S, ka[t0], kb[t0],
								      t0, nq, 0, scale, hd);
							att_bwd_block(dQT, dqkv + koff, dqkv + voff, QT, DYT, Qr, DYr,
								      L, Dv, qkv + koff, qkv + voff, S, kc[t0], t0 + nq,
								      t0, nq, 1, scale, hd);
							for (int a = 0; a < nq; a++) {
								float *dqt =
									dqkv + (size_t)(t0 + a) * S + (size_t)h * hd;
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
						att_bwd_range(dq, dqkv + koff, dqkv + voff, q, qkv + koff, qkv + voff,
							      dy, S, ka[t], kb[t], l, D, scale, hd);
						att_bwd_range(dq, dqkv + koff, dqkv + voff, q, qkv + koff, qkv + voff,
							      dy, S, kc[t], t + 1, l, D, scale, hd);
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

/* ------------------------------------------------------- KV-cache decoding */

void kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV)
{
	const int KVD = KV * hd;
	for (int i = 0; i < n; i++) {
		memcpy(kc + (size_t)(at + i) * KVD, qkv + (size_t)i * QKV + (size_t)H * hd, sizeof(float) * KVD);
		memcpy(vc + (size_t)(at + i) * KVD, qkv + (size_t)i * QKV + (size_t)(H + KV) * hd, sizeof(float) * KVD);
	}
}

void attention_decode(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H, int KV,
		      int hd, int QKV, float scale, float cap)
{
	if (scale != 0 || cap != 0) {
		att_ext_decode(out, qkv, K, Vc, len0, n, H, KV, hd, QKV, scale ? scale : 1.0f / sqrtf((float)hd), cap);
		return;
	}
	const int KVD = KV * hd, grp = H / KV;
	scale = 1.0f / sqrtf((float)hd);
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
