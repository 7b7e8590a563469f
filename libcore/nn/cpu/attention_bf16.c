/* attention_bf16.c — attention's products in bf16 (--dtype bf16 on the CPU).
 *
 * The blocked kernels of attention.c (16 queries of one head across the
 * vector lanes, the same key ranges) with their inner products on
 * AVX512-BF16's vdpbf16ps: each instruction multiplies 16 pairs of bf16 and
 * adds both products to 16 fp32 accumulators, twice the fp32 FMA's work.
 * Q, K, V (and dY in the backward) are rounded to bf16 once per call
 * (bf16_from_f32, nearest even); the products accumulate in fp32.
 *   forward:  s = q·k (Qᵀ in bf16 pairs per lane, k's pair broadcast),
 *             o += p·v (p of two keys rounded to bf16 and paired per lane,
 *             the pair of their values broadcast);
 *   backward: s = q·k and dp = dy·v as the forward's s; dQ += ds·k over
 *             pairs of keys as the forward's o; dk += Σ ds·q and
 *             dv += Σ p·dy over pairs of queries (the rows of Q and dY
 *             paired per dimension, the pair of ds or p broadcast).
 * Softmax, lse, the scale and every other step stay fp32 as in attention.c.
 * Only the plain path (no score scale, no soft-cap) with hd a multiple of 32;
 * the callers fall back to the fp32 kernels otherwise. */
#include "libcore/nn/cpu/attention_bf16.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && !defined(LBDPO_NO_BF16_ATT)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "libcore/nn/cpu/gemm_bf16.h"
#include "libcore/nn/cpu/vexp.h"

#define BF16_FN __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define BF16_INLINE static inline __attribute__((always_inline)) BF16_FN

enum { QB = 16 };

static uint32_t ld32(const uint16_t *p)
{
	uint32_t u;
	memcpy(&u, p, 4);
	return u;
}

/* acc += A·B on bf16 pairs (A, B as 32-bit lanes holding two bf16). */
BF16_INLINE __m512 dp2(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

/* 16 lanes of two fp32 vectors rounded to bf16 and paired: lane a holds
 * (lo[a], hi[a]). */
BF16_INLINE __m512i pair_ps(__m512 lo, __m512 hi)
{
	__m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
	__m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
	return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

/* dst[i] = (a[i], b[i]) for i < hd, two bf16 rows paired per element. */
BF16_INLINE void pair_rows(uint32_t *dst, const uint16_t *a, const uint16_t *b, int hd)
{
	for (int i = 0; i < hd; i += 16) {
		__m512i l = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + i)));
		__m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + i)));
		_mm512_storeu_si512(dst + i, _mm512_or_si512(l, _mm512_slli_epi32(h, 16)));
	}
}

/* Xp[p·QB + a] = pair p of row a (rows t0 + a of x, stride S, at off);
 * lanes ≥ nq zero. */
BF16_INLINE void pack_lanes(uint32_t *Xp, const uint16_t *x, size_t S, size_t off, int t0, int nq, int hd)
{
	memset(Xp, 0, sizeof(uint32_t) * (size_t)(hd / 2) * QB);
	for (int a = 0; a < nq; a++) {
		const uint16_t *r = x + (size_t)(t0 + a) * S + off;
		for (int p = 0; p < hd / 2; p++)
			Xp[p * QB + a] = ld32(r + 2 * p);
	}
}

/* s[a] = Σ_p Xp[p][a]·k pair p, four partial sums against the latency. */
BF16_INLINE __m512 dot_lanes(const uint32_t *Xp, const uint16_t *k, int hd)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	for (int p = 0; p < hd / 2; p += 4) {
		s0 = dp2(s0, _mm512_load_si512(Xp + p * QB), _mm512_set1_epi32((int)ld32(k + 2 * p)));
		s1 = dp2(s1, _mm512_load_si512(Xp + (p + 1) * QB), _mm512_set1_epi32((int)ld32(k + 2 * p + 2)));
		s2 = dp2(s2, _mm512_load_si512(Xp + (p + 2) * QB), _mm512_set1_epi32((int)ld32(k + 2 * p + 4)));
		s3 = dp2(s3, _mm512_load_si512(Xp + (p + 3) * QB), _mm512_set1_epi32((int)ld32(k + 2 * p + 6)));
	}
	return _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
}

/* Lanes a with lim ≤ a < nq. */
static __mmask16 lane_mask(int lim, int nq)
{
	unsigned m = (1u << nq) - 1;
	return (__mmask16)(lim > 0 ? m & ~((1u << lim) - 1) : m);
}

static int key_at(int x, int n1, int ka, int kc) { return x < n1 ? ka + x : kc + (x - n1); }

/* Forward of queries t0 .. t0+nq−1 (head h), as att_fwd_block. */
BF16_FN static void attention_forward_bf16_block(float *out, float *lse, const uint16_t *qkvb, float *sc, uint32_t *Qp,
						 float *OT, uint32_t *vp, int t0, int nq, int ka, int kb, int kc, int h,
						 int H, int KV, int hd, float scale)
{
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const int kh = h / (H / KV);
	const uint16_t *kbase = qkvb + (size_t)H * hd + (size_t)kh * hd;
	const uint16_t *vbase = qkvb + (size_t)(H + KV) * hd + (size_t)kh * hd;
	pack_lanes(Qp, qkvb, S, (size_t)h * hd, t0, nq, hd);
	const int n1 = kb - ka, n = n1 + (t0 + nq - kc);
	const __m512 ninf = _mm512_set1_ps(-INFINITY), vs = _mm512_set1_ps(scale);
	__m512 mx = ninf;
	for (int x = 0; x < n; x++) {
		const int j = key_at(x, n1, ka, kc);
		__m512 s = dot_lanes(Qp, kbase + (size_t)j * S, hd);
		const __mmask16 m = lane_mask(x < n1 ? 0 : j - t0, nq);
		s = _mm512_mask_mul_ps(ninf, m, s, vs);
		_mm512_store_ps(sc + (size_t)x * QB, s);
		mx = _mm512_max_ps(mx, s);
	}
	float mxa[QB], sum[QB] = {0};
	_mm512_storeu_ps(mxa, mx);
	for (int x = 0; x < n; x++) {
		float *r = sc + (size_t)x * QB;
		att_exp_lanes(r, mxa, sum);
	}
	/* O += P·V over groups of four key pairs: p rounded to bf16 */
	memset(OT, 0, sizeof(float) * (size_t)hd * QB);
	for (int x0 = 0; x0 < n; x0 += 8) {
		__m512i pp[4];
		for (int g = 0; g < 4; g++) {
			const int xa = x0 + 2 * g, xb = xa + 1;
			const __m512 z = _mm512_setzero_ps();
			__m512 pa = xa < n ? _mm512_load_ps(sc + (size_t)xa * QB) : z;
			__m512 pb = xb < n ? _mm512_load_ps(sc + (size_t)xb * QB) : z;
			pp[g] = pair_ps(pa, pb);
			/* a key past n: any valid row, its p is 0 */
			const int ja = key_at(xa < n ? xa : 0, n1, ka, kc), jb = key_at(xb < n ? xb : 0, n1, ka, kc);
			pair_rows(vp + (size_t)g * hd, vbase + (size_t)ja * S, vbase + (size_t)jb * S, hd);
		}
		for (int i = 0; i < hd; i++) {
			__m512 o = _mm512_load_ps(OT + (size_t)i * QB);
			o = dp2(o, pp[0], _mm512_set1_epi32((int)vp[i]));
			o = dp2(o, pp[1], _mm512_set1_epi32((int)vp[hd + i]));
			o = dp2(o, pp[2], _mm512_set1_epi32((int)vp[2 * hd + i]));
			o = dp2(o, pp[3], _mm512_set1_epi32((int)vp[3 * hd + i]));
			_mm512_store_ps(OT + (size_t)i * QB, o);
		}
	}
	for (int a = 0; a < nq; a++) {
		float *o = out + (size_t)(t0 + a) * H * hd + (size_t)h * hd;
		const float inv = 1.0f / sum[a];
		for (int i = 0; i < hd; i++)
			o[i] = OT[i * QB + a] * inv;
		lse[(size_t)(t0 + a) * H + h] = mxa[a] + logf(sum[a]);
	}
}

static int usable(int hd, float scale, float cap)
{
	static int cpu = -1;
	if (cpu < 0)
		cpu = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
		      __builtin_cpu_supports("avx512vl");
	return gemm_bf16_on() && cpu && scale == 0 && cap == 0 && hd % 32 == 0;
}

/* Blocks of consecutive queries with the same key ranges, at most QB each,
 * within [t, end): the block's length. */
static int block_len(const int *ka, const int *kb, const int *kc, int t, int end)
{
	int nq = 1;
	while (nq < QB && t + nq < end && ka[t + nq] == ka[t] && kb[t + nq] == kb[t] && kc[t + nq] == kc[t])
		nq++;
	return nq;
}

int attention_forward_bf16(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc, int T,
			   int H, int KV, int hd, float scale, float cap)
{
	if (!usable(hd, scale, cap) || T <= 0)
		return 0;
	const size_t S = (size_t)(H + 2 * KV) * hd;
	uint16_t *qkvb = xmalloc(sizeof(uint16_t) * (size_t)T * S);
	bf16_from_f32(qkvb, qkv, (size_t)T * S);
	int *bt = xmalloc(sizeof(int) * T), nb = 0;
	for (int t = 0; t < T; t += block_len(ka, kb, kc, t, T))
		bt[nb++] = t;
	const float sc1 = 1.0f / sqrtf((float)hd);
#pragma omp parallel
	{
		float *sc = aligned_alloc(64, sizeof(float) * ((size_t)T + 8) * QB);
		float *OT = aligned_alloc(64, sizeof(float) * (size_t)hd * QB);
		uint32_t *Qp = aligned_alloc(64, sizeof(uint32_t) * (size_t)hd / 2 * QB);
		uint32_t *vp = aligned_alloc(64, sizeof(uint32_t) * (size_t)hd * 4);
		if (!sc || !OT || !Qp || !vp)
			die("out of memory (attention scratch, %zu bytes)", sizeof(float) * ((size_t)T + 8) * QB);
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int b = 0; b < nb; b++)
			for (int h = 0; h < H; h++) {
				const int t0 = bt[b], nq = (b + 1 < nb ? bt[b + 1] : T) - t0;
				attention_forward_bf16_block(out, lse, qkvb, sc, Qp, OT, vp, t0, nq, ka[t0], kb[t0],
							     kc[t0], h, H, KV, hd, sc1);
			}
		free(sc), free(OT), free(Qp), free(vp);
	}
	free(bt);
	free(qkvb);
	return 1;
}

/* Backward buffers of one block: Qᵀ and dYᵀ in bf16 pairs per lane, Q and dY
 * paired across queries (pair ap of dimension i: rows 2ap and 2ap+1),
 * dQᵀ, lse and D per lane, the key pairs of one step. */
typedef struct {
	uint32_t *Qp, *DYp, *Qq, *DYq, *kp;
	float *dQT, *L, *Dv;
} bwd_buf;

/* Keys [j0, j1) against the block, two keys at a time:
 *   s = q·k_j, dp = dy·v_j, p = exp(s/√d − lse), ds = p(dp − D)/√d,
 *   dQᵀ += ds·k_j, dk_j += Σ_a ds_a q_a, dv_j += Σ_a p_a dy_a. */
BF16_FN static void attention_backward_bf16_range(const bwd_buf *w, float *dkbase, float *dvbase, const uint16_t *kbase,
						  const uint16_t *vbase, size_t S, int j0, int j1, int t0, int nq,
						  int diag, float scale, int hd)
{
	const __m512 vs = _mm512_set1_ps(scale), L = _mm512_loadu_ps(w->L), D = _mm512_loadu_ps(w->Dv);
	for (int j = j0; j < j1; j += 2) {
		__m512 p[2], ds[2];
		const int two = j + 1 < j1;
		for (int m = 0; m < 2; m++) {
			const int jm = m && two ? j + 1 : j;
			__m512 s = dot_lanes(w->Qp, kbase + (size_t)jm * S, hd);
			__m512 d = dot_lanes(w->DYp, vbase + (size_t)jm * S, hd);
			float e[QB], sa[QB];
			_mm512_storeu_ps(sa, _mm512_fmsub_ps(s, vs, L));
#pragma omp simd
			for (int a = 0; a < QB; a++)
				e[a] = vexpf(sa[a]);
			__mmask16 mk = (m && !two) ? 0 : lane_mask(diag ? jm - t0 : 0, nq);
			p[m] = _mm512_maskz_loadu_ps(mk, e);
			ds[m] = _mm512_mul_ps(_mm512_mul_ps(p[m], _mm512_sub_ps(d, D)), vs);
		}
		const int j2 = two ? j + 1 : j;
		/* dQᵀ[i] += ds_j k_j[i] + ds_j2 k_j2[i] */
		pair_rows(w->kp, kbase + (size_t)j * S, kbase + (size_t)j2 * S, hd);
		const __m512i dsp = pair_ps(ds[0], ds[1]);
		for (int i = 0; i < hd; i++) {
			__m512 q = _mm512_load_ps(w->dQT + (size_t)i * QB);
			_mm512_store_ps(w->dQT + (size_t)i * QB, dp2(q, dsp, _mm512_set1_epi32((int)w->kp[i])));
		}
		/* dk_j, dv_j: sums over the block's query pairs */
		for (int m = 0; m < 1 + two; m++) {
			const __m512i dsb = pair_ps(ds[m], _mm512_setzero_ps()),
				      pb = pair_ps(p[m], _mm512_setzero_ps());
			uint32_t dpair[QB / 2], ppair[QB / 2];
			{
				uint32_t t1[QB], t2[QB];
				_mm512_storeu_si512(t1, dsb);
				_mm512_storeu_si512(t2, pb);
				for (int ap = 0; ap < QB / 2; ap++)
					dpair[ap] = t1[2 * ap] | t1[2 * ap + 1] << 16,
					ppair[ap] = t2[2 * ap] | t2[2 * ap + 1] << 16;
			}
			float *dk = dkbase + (size_t)(j + m) * S, *dv = dvbase + (size_t)(j + m) * S;
			const int na = (nq + 1) / 2;
			for (int i0 = 0; i0 < hd; i0 += 16) {
				__m512 ak = _mm512_setzero_ps(), av = ak, ak2 = ak, av2 = ak;
				int ap = 0;
				for (; ap + 2 <= na; ap += 2) {
					ak = dp2(ak, _mm512_load_si512(w->Qq + (size_t)ap * hd + i0),
						 _mm512_set1_epi32((int)dpair[ap]));
					av = dp2(av, _mm512_load_si512(w->DYq + (size_t)ap * hd + i0),
						 _mm512_set1_epi32((int)ppair[ap]));
					ak2 = dp2(ak2, _mm512_load_si512(w->Qq + (size_t)(ap + 1) * hd + i0),
						  _mm512_set1_epi32((int)dpair[ap + 1]));
					av2 = dp2(av2, _mm512_load_si512(w->DYq + (size_t)(ap + 1) * hd + i0),
						  _mm512_set1_epi32((int)ppair[ap + 1]));
				}
				if (ap < na) {
					ak = dp2(ak, _mm512_load_si512(w->Qq + (size_t)ap * hd + i0),
						 _mm512_set1_epi32((int)dpair[ap]));
					av = dp2(av, _mm512_load_si512(w->DYq + (size_t)ap * hd + i0),
						 _mm512_set1_epi32((int)ppair[ap]));
				}
				_mm512_storeu_ps(dk + i0,
						 _mm512_add_ps(_mm512_loadu_ps(dk + i0), _mm512_add_ps(ak, ak2)));
				_mm512_storeu_ps(dv + i0,
						 _mm512_add_ps(_mm512_loadu_ps(dv + i0), _mm512_add_ps(av, av2)));
			}
		}
	}
}

BF16_FN static void attention_backward_bf16_all(float *dqkv, const float *dout, const float *qkv, const float *out,
						const float *lse, const int *ka, const int *kb, const int *kc,
						const int *seq_off, int n_seq, int T, int H, int KV, int hd)
{
	const size_t S = (size_t)(H + 2 * KV) * hd, HD = (size_t)H * hd;
	const int grp = H / KV;
	uint16_t *qkvb = xmalloc(sizeof(uint16_t) * (size_t)T * S), *dyb = xmalloc(sizeof(uint16_t) * (size_t)T * HD);
	bf16_from_f32(qkvb, qkv, (size_t)T * S);
	bf16_from_f32(dyb, dout, (size_t)T * HD);
	const float sc1 = 1.0f / sqrtf((float)hd);
#pragma omp parallel
	{
		const size_t nw = (size_t)hd * QB; /* uint32 or float per buffer */
		uint32_t *all = aligned_alloc(64, sizeof(uint32_t) * (nw * 6 + 2 * QB));
		if (!all)
			die("out of memory (attention scratch, %zu bytes)", sizeof(uint32_t) * (nw * 6 + 2 * QB));
		bwd_buf w = {.Qp = all,
			     .DYp = all + nw,
			     .Qq = all + 2 * nw,
			     .DYq = all + 3 * nw,
			     .kp = all + 4 * nw,
			     .dQT = (float *)(all + 5 * nw),
			     .L = (float *)(all + 6 * nw),
			     .Dv = (float *)(all + 6 * nw) + QB};
#pragma omp for collapse(2) schedule(dynamic, 1)
		for (int s = 0; s < n_seq; s++)
			for (int kh = 0; kh < KV; kh++) {
				const size_t koff = HD + (size_t)kh * hd, voff = HD + (size_t)(KV + kh) * hd;
				for (int h = kh * grp; h < (kh + 1) * grp; h++)
					for (int t0 = seq_off[s], nq; t0 < seq_off[s + 1]; t0 += nq) {
						nq = block_len(ka, kb, kc, t0, seq_off[s + 1]);
						pack_lanes(w.Qp, qkvb, S, (size_t)h * hd, t0, nq, hd);
						pack_lanes(w.DYp, dyb, HD, (size_t)h * hd, t0, nq, hd);
						memset(w.Qq, 0, sizeof(uint32_t) * nw * 2);
						memset(w.dQT, 0, sizeof(float) * nw);
						for (int a = 0; a < QB; a++) {
							w.L[a] = w.Dv[a] = 0;
							if (a >= nq)
								continue;
							const int t = t0 + a;
							const float *dy = dout + (size_t)t * HD + (size_t)h * hd;
							const float *o = out + (size_t)t * HD + (size_t)h * hd;
							float D = 0;
							for (int i = 0; i < hd; i++)
								D += dy[i] * o[i];
							w.Dv[a] = D;
							w.L[a] = lse[(size_t)t * H + h];
						}
						for (int ap = 0; ap < (nq + 1) / 2; ap++) {
							const int a = 2 * ap, b = a + 1 < nq ? a + 1 : a;
							const uint16_t *qa =
								qkvb + (size_t)(t0 + a) * S + (size_t)h * hd;
							const uint16_t *qb =
								qkvb + (size_t)(t0 + b) * S + (size_t)h * hd;
							const uint16_t *ya =
								dyb + (size_t)(t0 + a) * HD + (size_t)h * hd;
							const uint16_t *yb =
								dyb + (size_t)(t0 + b) * HD + (size_t)h * hd;
							/* a lone last row pairs with itself; its partner's ds, p are 0 */
							pair_rows(w.Qq + (size_t)ap * hd, qa, qb, hd);
							pair_rows(w.DYq + (size_t)ap * hd, ya, yb, hd);
						}
						attention_backward_bf16_range(&w, dqkv + koff, dqkv + voff, qkvb + koff,
									      qkvb + voff, S, ka[t0], kb[t0], t0, nq, 0,
									      sc1, hd);
						attention_backward_bf16_range(&w, dqkv + koff, dqkv + voff, qkvb + koff,
									      qkvb + voff, S, kc[t0], t0 + nq, t0, nq,
									      1, sc1, hd);
						for (int a = 0; a < nq; a++) {
							float *dqt = dqkv + (size_t)(t0 + a) * S + (size_t)h * hd;
							for (int i = 0; i < hd; i++)
								dqt[i] += w.dQT[(size_t)i * QB + a];
						}
					}
			}
		free(all);
	}
	free(qkvb), free(dyb);
}

int attention_backward_bf16(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			    const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			    int KV, int hd, float scale, float cap)
{
	if (!usable(hd, scale, cap) || T <= 0)
		return 0;
	attention_backward_bf16_all(dqkv, dout, qkv, out, lse, ka, kb, kc, seq_off, n_seq, T, H, KV, hd);
	return 1;
}

#else
int attention_forward_bf16(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc, int T,
			   int H, int KV, int hd, float scale, float cap)
{
	(void)out, (void)lse, (void)qkv, (void)ka, (void)kb, (void)kc, (void)T, (void)H, (void)KV, (void)hd,
		(void)scale, (void)cap;
	return 0;
}
int attention_backward_bf16(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			    const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			    int KV, int hd, float scale, float cap)
{
	(void)dqkv, (void)dout, (void)qkv, (void)out, (void)lse, (void)ka, (void)kb, (void)kc, (void)seq_off,
		(void)n_seq, (void)T, (void)H, (void)KV, (void)hd, (void)scale, (void)cap;
	return 0;
}
#endif
