/* ref_head.c — CPU references of the head and loss hand-off (see
 * ref_head.h: transcriptions of the model.c loops as the backend-table work
 * names them in layers.c). */
#include "tests/gpu/ref_head.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void ref_lmhead_forward(float *logits, const float *h, const float *w, int T, int C, int V)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, V, C, 1.0f, h, C, w, C, 0.0f, logits, V);
}

void ref_lmhead_backward(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C,
			 int V)
{
	if (n <= 0)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, V, 1.0f, dz, V, w, C, 0.0f, dh, C);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, n, 1.0f, dz, V, h, C, 1.0f, dw, C);
}

void ref_logsoftmax_rows(float *lse_out, float *lp, float *ent, const float *logits, const cuda_logit_row *rows,
			 int T, int V)
{
	for (int r = 0; r < T; r++) {
		const cuda_logit_row *ri = &rows[r];
		if (!ri->kind[0] && !ri->kind[1])
			continue;
		const float *z = logits + (size_t)r * V;
		float mx = -INFINITY;
		for (int v = 0; v < V; v++)
			mx = z[v] > mx ? z[v] : mx;
		double se = 0, sez = 0;
		for (int v = 0; v < V; v++) {
			float e = expf(z[v] - mx);
			se += e;
			if (ri->kind[0] == 1)
				sez += (double)e * (z[v] - mx);
		}
		double lse = mx + log(se);
		lse_out[r] = (float)lse;
		ent[r] = (float)(log(se) - sez / se);
		for (int k = 0; k < 2; k++)
			lp[2 * r + k] = ri->kind[k] ? (float)(z[ri->y[k]] - lse) : 0.0f;
	}
}

void ref_seq_logp_sums(double *st, const float *lp, const float *ent, const cuda_logit_row *rows,
		       const int *seq_off, int n_seq)
{
	for (int s = 0; s < n_seq; s++) {
		double c[2] = { 0, 0 }, pl = 0, pe = 0;
		for (int r = seq_off[s]; r < seq_off[s + 1]; r++) {
			const cuda_logit_row *ri = &rows[r];
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

void ref_logit_grad_rows(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y,
			 int n, int V)
{
	for (int i = 0; i < n; i++) {
		const int r = idx[i];
		float *z = logits + (size_t)r * V;
		const float a = (float)(w[2 * i] + w[2 * i + 1]), l = lse[r];
		for (int v = 0; v < V; v++)
			z[v] = -a * expf(z[v] - l);
		for (int k = 0; k < 2; k++)
			if (y[2 * i + k] >= 0)
				z[y[2 * i + k]] += (float)w[2 * i + k];
	}
}

void ref_rows_gather(float *dst, const float *src, const int *idx, int n, int C)
{
	for (int i = 0; i < n; i++)
		memcpy(dst + (size_t)i * C, src + (size_t)idx[i] * C, sizeof(float) * C);
}

void ref_rows_scatter(float *dst, const float *src, const int *idx, int n, int C)
{
	for (int i = 0; i < n; i++)
		memcpy(dst + (size_t)idx[i] * C, src + (size_t)i * C, sizeof(float) * C);
}

void ref_rows_compact(float *x, const int *idx, int n, int C)
{
	for (int i = 0; i < n; i++)
		if (idx[i] != i)
			memmove(x + (size_t)i * C, x + (size_t)idx[i] * C, sizeof(float) * C);
}

void ref_pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq,
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

void ref_pool_backward(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
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

void ref_kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV)
{
	const int KVD = KV * hd;
	for (int i = 0; i < n; i++) {
		memcpy(kc + (size_t)(at + i) * KVD, qkv + (size_t)i * QKV + (size_t)H * hd, sizeof(float) * KVD);
		memcpy(vc + (size_t)(at + i) * KVD, qkv + (size_t)i * QKV + (size_t)(H + KV) * hd, sizeof(float) * KVD);
	}
}

void ref_attention_decode(float *out, const float *qkv, const float *K, const float *Vc, int len0, int n, int H,
			  int KV, int hd, int QKV)
{
	const int KVD = KV * hd, grp = H / KV;
	const float scale = 1.0f / sqrtf((float)hd);
	float sc[len0 + n];
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
}

int ref_all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}
