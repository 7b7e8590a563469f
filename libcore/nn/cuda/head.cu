/* head.cu — the language-model head and the loss hand-off on the GPU: the
 * lm_head products, the fused log-softmax of the rows with a target, the
 * per-sequence sums, the logit gradient, row moves and the pooled hidden
 * states. CPU twins: the functions of libcore/nn/cpu/layers.c with these names
 * (without cuda_). */
#include <math.h>

#include "libcore/nn/cuda/check.h"

#define NT 256

/* CPU twin: lmhead_forward, logits [T,V] = h [T,C] · Wᵀ, W [V,C]. */
void cuda_lmhead_forward(float *logits, const float *h, const float *w, int T, int C, int V)
{
	rm_sgemm(0, 1, T, V, C, 1.0f, h, C, w, C, 0.0f, logits, V);
}

/* CPU twin: lmhead_forward1 (cblas_sgemv there; a 1-row GEMM here). */
void cuda_lmhead_forward1(float *logits, const float *h, const float *w, int C, int V)
{
	rm_sgemm(0, 1, 1, V, C, 1.0f, h, C, w, C, 0.0f, logits, V);
}

/* CPU twin: lmhead_backward, dh [n,C] = dz·W (overwritten), dW += dzᵀ·h. */
void cuda_lmhead_backward(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C, int V)
{
	if (n <= 0)
		return;
	rm_sgemm(0, 0, n, C, V, 1.0f, dz, V, w, C, 0.0f, dh, C);
	if (dw) /* NULL: a frozen head (LoRA) */
		rm_sgemm(1, 0, V, C, n, 1.0f, dz, V, h, C, 1.0f, dw, C);
}

/* CPU twin: logsoftmax_rows. One block per row with a target:
 *   lse = m + log Σ e^(z−m) (double sum), lp[r,k] = z_{y_k} − lse,
 *   ent[r] = log Σ e^(z−m) − Σ e^(z−m)(z−m)/Σ e^(z−m) (prompt rows; the
 *   second term is 0 for the others, as on the CPU). */
__global__ void logsoftmax_rows_k(float *lse_out, float *lp, float *ent, const float *logits, const logit_row *rows,
				  int V)
{
	const int r = blockIdx.x;
	const logit_row ri = rows[r];
	if (!ri.kind[0] && !ri.kind[1])
		return; /* uniform over the block */
	const float *z = logits + (size_t)r * V;
	float mx = -INFINITY;
	for (int v = threadIdx.x; v < V; v += blockDim.x)
		mx = fmaxf(mx, z[v]);
	mx = block_max(mx);
	double se = 0, sez = 0;
	const int prompt = ri.kind[0] == 1;
	for (int v = threadIdx.x; v < V; v += blockDim.x) {
		const float e = expf(z[v] - mx);
		se += e;
		if (prompt)
			sez += (double)e * (z[v] - mx);
	}
	se = block_sum(se);
	sez = block_sum(sez);
	if (threadIdx.x == 0) {
		const double lse = mx + log(se);
		lse_out[r] = (float)lse;
		ent[r] = (float)(log(se) - sez / se);
		for (int k = 0; k < 2; k++)
			lp[2 * r + k] = ri.kind[k] ? (float)(z[ri.y[k]] - lse) : 0.0f;
	}
}

void cuda_logsoftmax_rows(float *lse, float *lp, float *ent, const float *logits, const logit_row *rows, int T, int V)
{
	if (T <= 0)
		return;
	LAUNCH(logsoftmax_rows_k, T, NT, lse, lp, ent, logits, rows, V);
	LAUNCH_CHECK();
}

/* CPU twin: seq_logp_sums. One thread per sequence, rows in order (the
 * CPU's serial order: the sums do not depend on the launch). st [n_seq,4] =
 * {Σ comp0 lp, Σ comp1 lp, Σ prompt lp, Σ prompt entropy}. */
__global__ void seq_logp_sums_k(double *st, const float *lp, const float *ent, const logit_row *rows,
				const int *seq_off, int n_seq)
{
	const int s = blockIdx.x * blockDim.x + threadIdx.x;
	if (s >= n_seq)
		return;
	double c[2] = {0, 0}, pl = 0, pe = 0;
	for (int r = seq_off[s]; r < seq_off[s + 1]; r++) {
		const logit_row ri = rows[r];
		for (int k = 0; k < 2; k++) {
			if (ri.kind[k] == 1) {
				pl += lp[2 * r + k];
				pe += ent[r];
			} else if (ri.kind[k] >= 2) {
				c[ri.kind[k] - 2] += lp[2 * r + k];
			}
		}
	}
	st[4 * s] = c[0];
	st[4 * s + 1] = c[1];
	st[4 * s + 2] = pl;
	st[4 * s + 3] = pe;
}

void cuda_seq_logp_sums(double *st, const float *lp, const float *ent, const logit_row *rows, const int *seq_off,
			int n_seq)
{
	if (n_seq <= 0)
		return;
	LAUNCH(seq_logp_sums_k, grid_for(n_seq, 64), 64, st, lp, ent, rows, seq_off, n_seq);
	LAUNCH_CHECK();
}

/* CPU twin: logit_grad_rows. In place on row idx[i]:
 *   dz = Σ_k w_k e_{y_k} − (Σ_k w_k)·exp(z − lse). */
__global__ void logit_grad_rows_k(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y,
				  int V)
{
	const int i = blockIdx.x, r = idx[i];
	float *z = logits + (size_t)r * V;
	const float a = (float)(w[2 * i] + w[2 * i + 1]), l = lse[r];
	for (int v = threadIdx.x; v < V; v += blockDim.x)
		z[v] = -a * expf(z[v] - l);
	__syncthreads(); /* the target entries are written above by any thread */
	if (threadIdx.x == 0)
		for (int k = 0; k < 2; k++)
			if (y[2 * i + k] >= 0)
				z[y[2 * i + k]] += (float)w[2 * i + k];
}

void cuda_logit_grad_rows(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y, int n,
			  int V)
{
	if (n <= 0)
		return;
	LAUNCH(logit_grad_rows_k, n, NT, logits, lse, idx, w, y, V);
	LAUNCH_CHECK();
}

/* CPU twins: rows_gather dst[i] = src[idx[i]], rows_scatter dst[idx[i]] =
 * src[i]. One block per row. */
__global__ void rows_gather_k(float *dst, const float *src, const int *idx, int C)
{
	const int i = blockIdx.x;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dst[(size_t)i * C + c] = src[(size_t)idx[i] * C + c];
}

__global__ void rows_scatter_k(float *dst, const float *src, const int *idx, int C)
{
	const int i = blockIdx.x;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dst[(size_t)idx[i] * C + c] = src[(size_t)i * C + c];
}

void cuda_rows_gather(float *dst, const float *src, const int *idx, int n, int C)
{
	if (n <= 0)
		return;
	LAUNCH(rows_gather_k, n, NT, dst, src, idx, C);
	LAUNCH_CHECK();
}

void cuda_rows_scatter(float *dst, const float *src, const int *idx, int n, int C)
{
	if (n <= 0)
		return;
	LAUNCH(rows_scatter_k, n, NT, dst, src, idx, C);
	LAUNCH_CHECK();
}

/* CPU twin: rows_compact, x[i] = x[idx[i]] for increasing idx[i] ≥ i. Row
 * i may be the source of an earlier row, so rows move in order: one thread
 * per column walks the rows (columns are independent). */
__global__ void rows_compact_k(float *x, const int *idx, int n, int C)
{
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	for (int i = 0; i < n; i++)
		if (idx[i] != i)
			x[(size_t)i * C + c] = x[(size_t)idx[i] * C + c];
}

void cuda_rows_compact(float *x, const int *idx, int n, int C)
{
	if (n <= 0)
		return;
	LAUNCH(rows_compact_k, grid_for(C, NT), NT, x, idx, n, C);
	LAUNCH_CHECK();
}

/* CPU twin: pool_forward. last[s] = x[off+P−1], mean[s] = (1/P) Σ_i x[off+i]
 * (double, rows in order); one thread per (sequence, channel). */
__global__ void pool_fwd_k(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq,
			   int C)
{
	const size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	if (u >= (size_t)n_seq * C)
		return;
	const int s = (int)(u / C), ch = (int)(u % C), st = seq_off[s], P = seq_P[s];
	if (last)
		last[u] = x[(size_t)(st + P - 1) * C + ch];
	if (mean) {
		double acc = 0;
		for (int i = 0; i < P; i++)
			acc += x[(size_t)(st + i) * C + ch];
		mean[u] = (float)(acc / P);
	}
}

void cuda_pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq, int C)
{
	const size_t n = (size_t)n_seq * C;
	if (n == 0)
		return;
	LAUNCH(pool_fwd_k, grid_for(n, NT), NT, last, mean, x, seq_off, seq_P, n_seq, C);
	LAUNCH_CHECK();
}

/* CPU twin: pool_backward. Sequences own disjoint rows, so one thread per
 * (sequence, channel) adds d_last then d_mean/P as the CPU does. */
__global__ void pool_bwd_k(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
			   const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C)
{
	const size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	if (u >= (size_t)n_seq * C)
		return;
	const int s = (int)(u / C), ch = (int)(u % C), st = seq_off[s], P = seq_P[s];
	if (has_last[s])
		dx[(size_t)(st + P - 1) * C + ch] += d_last[u];
	if (has_mean[s]) {
		const float d = d_mean[u] / P;
		for (int i = 0; i < P; i++)
			dx[(size_t)(st + i) * C + ch] += d;
	}
}

void cuda_pool_backward(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
			const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C)
{
	const size_t n = (size_t)n_seq * C;
	if (n == 0)
		return;
	LAUNCH(pool_bwd_k, grid_for(n, NT), NT, dx, d_last, d_mean, has_last, has_mean, seq_off, seq_P, n_seq, C);
	LAUNCH_CHECK();
}
