/* attention.cu — packed tree-masked attention, forward and backward, and
 * decoding over a KV cache.
 *
 * One warp per query (token t, head h): lane l holds the head dimensions
 * d = l + 32r (r < MAXR), dot products are warp butterflies, and every
 * lane ends with the same score, so there is no shared memory and no
 * atomics. Straightforward rather than fast (a FlashAttention-style tiled
 * kernel can replace these behind the same arguments); scores are computed
 * twice (max pass, then exp/sum/accumulate pass) exactly like the CPU.
 *
 * Query t sees keys [ka[t], kb[t]) then [kc[t], t] (layers.h); the two
 * ranges are disjoint by construction (prompt, then the query's own
 * completion), which the key-side backward relies on.
 *
 * Every kernel takes the score scale and Gemma's logit soft-cap
 * (s = cap·tanh(scale·q·k/cap)); scale 0 means 1/√hd and cap 0 none, and
 * then they compute exactly what they computed before the cap existed (the
 * cap factor is 1). */
#include <math.h>

#include "libcore/nn/cuda/check.h"

#define MAXR (CUDA_MAX_HEAD_DIM / 32)
#define WPB 4 /* warps per block */

static void check_hd(int hd)
{
	if (hd <= 0 || hd > CUDA_MAX_HEAD_DIM)
		die("cuda: attention head_dim %d is not supported (1..%d)", hd, CUDA_MAX_HEAD_DIM);
}

/* q·k over the lane's dimensions, summed over the warp. */
__device__ inline float warp_dot(const float *qr, const float *k, int hd, int lane)
{
	float s = 0;
#pragma unroll
	for (int r = 0; r < MAXR; r++) {
		const int d = lane + 32 * r;
		if (d < hd)
			s += qr[r] * k[d];
	}
	return warp_sum(s);
}

/* The score of z = scale·q·k: cap·tanh(z/cap), or z when cap is 0
 * (CPU twin: ext_scores in layers.c). */
__device__ inline float cap_score(float z, float cap) { return cap > 0 ? cap * tanhf(z / cap) : z; }

/* ds/dz of the cap, from the capped score s: 1 − (s/cap)², 1 with no cap. */
__device__ inline float cap_grad(float s, float cap)
{
	if (!(cap > 0))
		return 1.0f;
	const float u = s / cap;
	return 1.0f - u * u;
}

__device__ inline void load_lane(float *dst, const float *src, int hd, int lane)
{
#pragma unroll
	for (int r = 0; r < MAXR; r++) {
		const int d = lane + 32 * r;
		dst[r] = d < hd ? src[d] : 0.0f;
	}
}

/* CPU twin: attention_forward.
 *   s = cap_score(scale·q·k),  out = softmax(s)·v,
 *   lse[t,h] = max + log Σ exp(s − max) */
__global__ void attn_fwd_k(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc, int T,
			   int H, int KV, int hd, float scale, float cap)
{
	const long long gw = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
	const int lane = threadIdx.x & 31;
	if (gw >= (long long)T * H) /* uniform over the warp */
		return;
	const int t = (int)(gw / H), h = (int)(gw % H), kh = h / (H / KV);
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const float *kbase = qkv + (size_t)H * hd + (size_t)kh * hd;
	const float *vbase = qkv + (size_t)(H + KV) * hd + (size_t)kh * hd;
	float qr[MAXR], acc[MAXR];
	load_lane(qr, qkv + (size_t)t * S + (size_t)h * hd, hd, lane);
	const int a = ka[t], na = kb[t] - a, c = kc[t], n = na + (t - c + 1);
	float mx = -INFINITY;
	for (int i = 0; i < n; i++) {
		const int j = i < na ? a + i : c + (i - na);
		mx = fmaxf(mx, cap_score(warp_dot(qr, kbase + (size_t)j * S, hd, lane) * scale, cap));
	}
	float sum = 0;
#pragma unroll
	for (int r = 0; r < MAXR; r++)
		acc[r] = 0;
	for (int i = 0; i < n; i++) {
		const int j = i < na ? a + i : c + (i - na);
		const float p = expf(cap_score(warp_dot(qr, kbase + (size_t)j * S, hd, lane) * scale, cap) - mx);
		const float *v = vbase + (size_t)j * S;
		sum += p;
#pragma unroll
		for (int r = 0; r < MAXR; r++) {
			const int d = lane + 32 * r;
			if (d < hd)
				acc[r] += p * v[d];
		}
	}
	float *o = out + (size_t)t * H * hd + (size_t)h * hd;
	const float inv = 1.0f / sum;
#pragma unroll
	for (int r = 0; r < MAXR; r++) {
		const int d = lane + 32 * r;
		if (d < hd)
			o[d] = acc[r] * inv;
	}
	if (lane == 0)
		lse[(size_t)t * H + h] = mx + logf(sum);
}

static unsigned warp_grid(long long items)
{
	long long b = (items + WPB - 1) / WPB;
	if (b > 0x7fffffffLL)
		die("cuda: attention over %lld queries is more than one launch handles", items);
	return (unsigned)(b ? b : 1);
}

void cuda_attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc,
			    int T, int H, int KV, int hd, float scale, float cap)
{
	check_hd(hd);
	if (T <= 0)
		return;
	if (scale == 0)
		scale = 1.0f / sqrtf((float)hd);
	LAUNCH(attn_fwd_k, warp_grid((long long)T * H), 32 * WPB, out, lse, qkv, ka, kb, kc, T, H, KV, hd, scale, cap);
	LAUNCH_CHECK();
}

/* CPU twin: attention_backward, the query side.
 * With s = cap_score(scale·q·k), p = exp(s − lse), D = do·o,
 *   ds = p·(do·v − D)·cap_grad(s)·scale:  dq += Σ_j ds·k_j.
 * Also stores D [T,H] for the key side. */
__global__ void attn_bwd_q_k(float *dqkv, float *Dbuf, const float *dout, const float *qkv, const float *out,
			     const float *lse, const int *ka, const int *kb, const int *kc, int T, int H, int KV,
			     int hd, float scale, float cap)
{
	const long long gw = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
	const int lane = threadIdx.x & 31;
	if (gw >= (long long)T * H)
		return;
	const int t = (int)(gw / H), h = (int)(gw % H), kh = h / (H / KV);
	const size_t S = (size_t)(H + 2 * KV) * hd, th = (size_t)t * H + h;
	const float *kbase = qkv + (size_t)H * hd + (size_t)kh * hd;
	const float *vbase = qkv + (size_t)(H + KV) * hd + (size_t)kh * hd;
	float qr[MAXR], dyr[MAXR], dq[MAXR];
	load_lane(qr, qkv + (size_t)t * S + (size_t)h * hd, hd, lane);
	load_lane(dyr, dout + th * hd, hd, lane);
	const float D = warp_dot(dyr, out + th * hd, hd, lane), l = lse[th];
	if (lane == 0)
		Dbuf[th] = D;
#pragma unroll
	for (int r = 0; r < MAXR; r++)
		dq[r] = 0;
	const int a = ka[t], na = kb[t] - a, c = kc[t], n = na + (t - c + 1);
	for (int i = 0; i < n; i++) {
		const int j = i < na ? a + i : c + (i - na);
		const float *k = kbase + (size_t)j * S, *v = vbase + (size_t)j * S;
		const float s = cap_score(warp_dot(qr, k, hd, lane) * scale, cap), p = expf(s - l);
		const float ds = p * (warp_dot(dyr, v, hd, lane) - D) * cap_grad(s, cap) * scale;
#pragma unroll
		for (int r = 0; r < MAXR; r++) {
			const int d = lane + 32 * r;
			if (d < hd)
				dq[r] += ds * k[d];
		}
	}
	float *dqt = dqkv + (size_t)t * S + (size_t)h * hd;
#pragma unroll
	for (int r = 0; r < MAXR; r++) {
		const int d = lane + 32 * r;
		if (d < hd)
			dqt[d] += dq[r];
	}
}

/* The key side: one block per (key j, kv head kh); its warps share the
 * queries (t ≥ j of j's sequence, heads of the group) that see key j:
 *   dk_j += Σ ds·q_t,  dv_j += Σ p·do_t   (ds, p as on the query side)
 * Per-warp partial sums are added in warp order at the end: deterministic,
 * no atomics. */
__global__ void attn_bwd_kv_k(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *Dbuf,
			      const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int H, int KV,
			      int hd, float scale, float cap)
{
	__shared__ float shk[WPB][CUDA_MAX_HEAD_DIM], shv[WPB][CUDA_MAX_HEAD_DIM];
	const int j = blockIdx.x / KV, kh = blockIdx.x % KV, grp = H / KV;
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const size_t S = (size_t)(H + 2 * KV) * hd;
	const size_t koff = (size_t)H * hd + (size_t)kh * hd, voff = (size_t)(H + KV) * hd + (size_t)kh * hd;
	/* j's sequence: the last s with seq_off[s] ≤ j */
	int lo = 0, hi = n_seq - 1;
	while (lo < hi) {
		const int mid = (lo + hi + 1) / 2;
		if (seq_off[mid] <= j)
			lo = mid;
		else
			hi = mid - 1;
	}
	const int end = seq_off[lo + 1];
	float kr[MAXR], vr[MAXR], dk[MAXR], dv[MAXR];
	load_lane(kr, qkv + (size_t)j * S + koff, hd, lane);
	load_lane(vr, qkv + (size_t)j * S + voff, hd, lane);
#pragma unroll
	for (int r = 0; r < MAXR; r++)
		dk[r] = dv[r] = 0;
	const long long total = (long long)(end - j) * grp;
	for (long long u = w; u < total; u += WPB) {
		const int t = j + (int)(u / grp), h = kh * grp + (int)(u % grp);
		if (!((j >= ka[t] && j < kb[t]) || j >= kc[t])) /* j ≤ t always here */
			continue;
		const size_t th = (size_t)t * H + h;
		const float *q = qkv + (size_t)t * S + (size_t)h * hd, *dy = dout + th * hd;
		const float s = cap_score(warp_dot(kr, q, hd, lane) * scale, cap), p = expf(s - lse[th]);
		const float ds = p * (warp_dot(vr, dy, hd, lane) - Dbuf[th]) * cap_grad(s, cap) * scale;
#pragma unroll
		for (int r = 0; r < MAXR; r++) {
			const int d = lane + 32 * r;
			if (d < hd) {
				dk[r] += ds * q[d];
				dv[r] += p * dy[d];
			}
		}
	}
#pragma unroll
	for (int r = 0; r < MAXR; r++) {
		const int d = lane + 32 * r;
		if (d < hd) {
			shk[w][d] = dk[r];
			shv[w][d] = dv[r];
		}
	}
	__syncthreads();
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		float sk = 0, sv = 0;
		for (int ww = 0; ww < WPB; ww++) {
			sk += shk[ww][d];
			sv += shv[ww][d];
		}
		dqkv[(size_t)j * S + koff + d] += sk;
		dqkv[(size_t)j * S + voff + d] += sv;
	}
}

void cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			     const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			     int KV, int hd, float scale, float cap)
{
	check_hd(hd);
	if (T <= 0 || n_seq <= 0)
		return;
	if (scale == 0)
		scale = 1.0f / sqrtf((float)hd);
	float *Dbuf = (float *)cuda_scratch(sizeof(float) * (size_t)T * H);
	LAUNCH(attn_bwd_q_k, warp_grid((long long)T * H), 32 * WPB, dqkv, Dbuf, dout, qkv, out, lse, ka, kb, kc, T, H,
	       KV, hd, scale, cap);
	LAUNCH_CHECK();
	if ((long long)T * KV > 0x7fffffffLL)
		die("cuda: attention backward over %d tokens × %d kv heads is more than one launch handles", T, KV);
	LAUNCH(attn_bwd_kv_k, (unsigned)((long long)T * KV), 32 * WPB, dqkv, dout, qkv, lse, Dbuf, ka, kb, kc, seq_off,
	       n_seq, H, KV, hd, scale, cap);
	LAUNCH_CHECK();
}

/* ------------------------------------------------------------- decoding */

/* CPU twin: kv_append (layers.c). One thread per copied float. */
__global__ void kv_append_k(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV)
{
	const int KVD = KV * hd;
	const size_t tot = (size_t)n * KVD;
	for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < tot; u += (size_t)gridDim.x * blockDim.x) {
		const size_t i = u / KVD, e = u % KVD;
		kc[(at + i) * KVD + e] = qkv[i * QKV + (size_t)H * hd + e];
		vc[(at + i) * KVD + e] = qkv[i * QKV + (size_t)(H + KV) * hd + e];
	}
}

void cuda_kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV)
{
	const size_t tot = (size_t)n * KV * hd;
	if (tot == 0)
		return;
	LAUNCH(kv_append_k, grid_for(tot, 256), 256, kc, vc, qkv, at, n, H, KV, hd, QKV);
	LAUNCH_CHECK();
}

/* CPU twin: attention_decode (cpu/attention.c):
 * token i sees cache rows 0 .. len0 + i; scores as attn_fwd_k's. One warp
 * per (token, head). */
__global__ void attn_decode_k(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H,
			      int KV, int hd, int QKV, float scale, float cap)
{
	const long long gw = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
	const int lane = threadIdx.x & 31;
	if (gw >= (long long)n * H)
		return;
	const int i = (int)(gw / H), h = (int)(gw % H), kh = h / (H / KV), KVD = KV * hd, nk = len0 + i + 1;
	float qr[MAXR], acc[MAXR];
	load_lane(qr, qkv + (size_t)i * QKV + (size_t)h * hd, hd, lane);
	float mx = -INFINITY;
	for (int j = 0; j < nk; j++)
		mx = fmaxf(mx, cap_score(warp_dot(qr, K + (size_t)j * KVD + (size_t)kh * hd, hd, lane) * scale, cap));
	float sum = 0;
#pragma unroll
	for (int r = 0; r < MAXR; r++)
		acc[r] = 0;
	for (int j = 0; j < nk; j++) {
		const float p = expf(
			cap_score(warp_dot(qr, K + (size_t)j * KVD + (size_t)kh * hd, hd, lane) * scale, cap) - mx);
		const float *v = Vc + (size_t)j * KVD + (size_t)kh * hd;
		sum += p;
#pragma unroll
		for (int r = 0; r < MAXR; r++) {
			const int d = lane + 32 * r;
			if (d < hd)
				acc[r] += p * v[d];
		}
	}
	float *o = out + (size_t)i * H * hd + (size_t)h * hd;
#pragma unroll
	for (int r = 0; r < MAXR; r++) {
		const int d = lane + 32 * r;
		if (d < hd)
			o[d] = acc[r] / sum;
	}
}

void cuda_attention_decode(float *out, const float *qkv, const float *kc, const float *vc, int len0, int n, int H,
			   int KV, int hd, int QKV, float scale, float cap)
{
	check_hd(hd);
	if (n <= 0)
		return;
	if (scale == 0)
		scale = 1.0f / sqrtf((float)hd);
	LAUNCH(attn_decode_k, warp_grid((long long)n * H), 32 * WPB, out, qkv, kc, vc, len0, n, H, KV, hd, QKV, scale,
	       cap);
	LAUNCH_CHECK();
}
