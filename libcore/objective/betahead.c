/* betahead.c — forward and backward of β(x) = w·PPL(x)·(1 + ε·tanh(NN(h))).
 * Formulas: betahead.h. Accumulation in double: B and C are small, and the
 * head's gradient must match finite differences closely. */
#include "libcore/objective/betahead.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/util.h"

betahead *betahead_new(head_kind kind, int C, int K, float eps)
{
	betahead *bh = xcalloc(1, sizeof *bh);
	bh->kind = kind;
	bh->C = C;
	bh->K = kind == HEAD_MLP ? K : 0;
	bh->eps = eps;
	bh->n_params = kind == HEAD_MLP ? 1 + (size_t)K * C + K + K + 1 : 1 + (size_t)C + 1;
	bh->p = xcalloc(bh->n_params, sizeof(float));
	return bh;
}

void betahead_free(betahead *bh)
{
	if (!bh)
		return;
	free(bh->p);
	free(bh);
}

void betahead_init(betahead *bh, uint64_t seed, double w0)
{
	memset(bh->p, 0, bh->n_params * sizeof(float));
	bh->p[0] = (float)log(w0);
	if (bh->kind == HEAD_MLP) {
		float *W1 = bh->p + 1; /* [K×C] */
		double sd = 1.0 / sqrt((double)bh->C);
		for (size_t i = 0; i < (size_t)bh->K * bh->C; i++)
			W1[i] = (float)(sd * rng_normal(&seed));
	}
}

void betahead_forward(const betahead *bh, beta_parts *parts, float *act, const float *h, const double *m, int B)
{
	const int C = bh->C, K = bh->K;
	const double w = exp((double)bh->p[0]);
	for (int b = 0; b < B; b++) {
		const float *hb = h + (size_t)b * C; /* [C] */
		double a;
		if (bh->kind == HEAD_LINEAR) {
			const float *W = bh->p + 1;
			a = bh->p[1 + C];
			for (int c = 0; c < C; c++)
				a += (double)W[c] * hb[c];
		} else {
			const float *W1 = bh->p + 1, *b1 = W1 + (size_t)K * C, *W2 = b1 + K, *b2 = W2 + K;
			a = *b2;
			for (int k = 0; k < K; k++) {
				double z = b1[k];
				const float *row = W1 + (size_t)k * C;
				for (int c = 0; c < C; c++)
					z += (double)row[c] * hb[c];
				if (act)
					act[(size_t)b * K + k] = (float)z;
				if (z > 0)
					a += W2[k] * z;
			}
		}
		double ppl = exp(-m[b]);
		double f = 1 + bh->eps * tanh(a);
		parts[b].a = a;
		parts[b].f = f;
		parts[b].ppl = ppl;
		parts[b].w = w;
		parts[b].beta = w * ppl * f;
	}
}

void betahead_backward(const betahead *bh, float *dp, double *dm, float *dh, const double *dbeta,
		       const beta_parts *parts, const float *act, const float *h, int B)
{
	const int C = bh->C, K = bh->K;
	double dlogw = 0;
	for (int b = 0; b < B; b++) {
		const beta_parts *q = &parts[b];
		const float *hb = h + (size_t)b * C; /* [C] */
		double db = dbeta[b];
		dlogw += db * q->beta;
		if (dm)
			dm[b] = -db * q->beta;
		double th = tanh(q->a);
		double da = db * q->w * q->ppl * bh->eps * (1 - th * th);
		float *dhb = dh ? dh + (size_t)b * C : NULL; /* [C] */
		if (bh->kind == HEAD_LINEAR) {
			const float *W = bh->p + 1;
			float *dW = dp + 1;
			for (int c = 0; c < C; c++) {
				dW[c] += (float)(da * hb[c]);
				if (dhb)
					dhb[c] = (float)(da * W[c]);
			}
			dp[1 + C] += (float)da;
		} else {
			const float *W1 = bh->p + 1, *W2 = W1 + (size_t)K * C + K;
			float *dW1 = dp + 1, *db1 = dW1 + (size_t)K * C, *dW2 = db1 + K, *db2 = dW2 + K;
			const float *zb = act + (size_t)b * K; /* [K] */
			if (dhb)
				memset(dhb, 0, sizeof(float) * C);
			for (int k = 0; k < K; k++) {
				double z = zb[k];
				if (z <= 0)
					continue;
				dW2[k] += (float)(da * z);
				double dz = da * W2[k];
				db1[k] += (float)dz;
				const float *row = W1 + (size_t)k * C;
				float *drow = dW1 + (size_t)k * C;
				for (int c = 0; c < C; c++) {
					drow[c] += (float)(dz * hb[c]);
					if (dhb)
						dhb[c] += (float)(dz * row[c]);
				}
			}
			*db2 += (float)da;
		}
	}
	dp[0] += (float)dlogw;
}

void betahead_set_mean_beta(betahead *bh, const beta_parts *parts, int B, double target)
{
	double s = 0;
	for (int b = 0; b < B; b++)
		s += parts[b].ppl * parts[b].f;
	if (B <= 0 || !(s > 0) || !(target > 0))
		return;
	/* mean β = w · mean(PPL·f) = target */
	bh->p[0] = (float)log(target * B / s);
}

const char *const head_kind_names[] = {"linear", "mlp", NULL};
const char *head_kind_name(head_kind k) { return name_of(head_kind_names, 2, (int)k); }
int head_kind_parse(const char *s) { return name_index(head_kind_names, 2, s); }
