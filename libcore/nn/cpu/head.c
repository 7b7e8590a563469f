/* head.c — CPU twins of cuda/head.cu: the language-model head, log-softmax
 * rows, per-sequence log-prob sums, row gather/scatter and pooling.
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
	if (dw) /* NULL: a frozen head (LoRA) */
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

void seq_logp_sums(double *st, const float *lp, const float *ent, const logit_row *rows, const int *seq_off, int n_seq)
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

void pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq, int C)
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
