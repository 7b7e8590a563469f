/* test_attention.c — attention_forward/backward of libcore/nn/cpu/attention.c against a
 * direct double-precision evaluation of the formulas, on a packed batch with
 * a preference tree (prompt, two completions) and a plain sequence, grouped
 * kv heads, and head sizes that take the query-blocked backward (multiples
 * of 16, blocks cut at range changes and at 16 queries) and the generic one:
 *   s_j = q·k_j/√d,  p = softmax(s),  out = Σ_j p_j v_j,  lse = log Σ_j e^{s_j}
 *   ds_j = p_j (dy·v_j − dy·out),  dq = Σ_j ds_j k_j/√d,
 *   dk_j += ds_j q/√d,  dv_j += p_j dy. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/nn/cpu/kernels.h"

static float frand(unsigned *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)(*s >> 8) / 16777216.0f * 2 - 1;
}

/* seq 0: prompt P0, completion A0, completion B0 (B sees the prompt, not A);
 * seq 1: a plain causal sequence of N1 */
enum { P0 = 7, A0 = 21, B0 = 18, N1 = 35, T = P0 + A0 + B0 + N1 };

static int visible(const int *ka, const int *kb, const int *kc, int t, int j)
{
	return (j >= ka[t] && j < kb[t]) || (j >= kc[t] && j <= t);
}

static void check(int H, int KV, int hd)
{
	int ka[T], kb[T], kc[T], seq_off[3] = {0, P0 + A0 + B0, T};
	for (int t = 0; t < T; t++) {
		ka[t] = kb[t] = 0;
		if (t < P0 + A0)
			kc[t] = 0;
		else if (t < P0 + A0 + B0)
			ka[t] = 0, kb[t] = P0, kc[t] = P0 + A0;
		else
			kc[t] = seq_off[1];
	}
	const int S = (H + 2 * KV) * hd, grp = H / KV;
	float *qkv = malloc(sizeof(float) * T * S), *out = malloc(sizeof(float) * T * H * hd);
	float *lse = malloc(sizeof(float) * T * H), *dy = malloc(sizeof(float) * T * H * hd);
	float *dqkv = calloc((size_t)T * S, sizeof(float));
	double *rdqkv = calloc((size_t)T * S, sizeof(double));
	unsigned sd = 12345u + hd;
	for (int i = 0; i < T * S; i++)
		qkv[i] = frand(&sd) * 1.5f;
	for (int i = 0; i < T * H * hd; i++)
		dy[i] = frand(&sd);
	for (int i = 0; i < T * S; i++)
		dqkv[i] = 0.25f, rdqkv[i] = 0.25; /* the backward adds */
	attention_forward(out, lse, qkv, ka, kb, kc, T, H, KV, hd, 0.0f, 0.0f);
	attention_backward(dqkv, dy, qkv, out, lse, ka, kb, kc, seq_off, 2, T, H, KV, hd, 0.0f, 0.0f);
	const double scale = 1 / sqrt((double)hd);
	double worst_o = 0, worst_l = 0;
	for (int t = 0; t < T; t++) {
		for (int h = 0; h < H; h++) {
			const int kh = h / grp;
			const float *q = qkv + t * S + h * hd;
			double s[T], mx = -INFINITY, z = 0, o[256] = {0}, D = 0;
			for (int j = 0; j < T; j++) {
				s[j] = -INFINITY;
				if (!visible(ka, kb, kc, t, j))
					continue;
				const float *k = qkv + j * S + H * hd + kh * hd;
				double a = 0;
				for (int i = 0; i < hd; i++)
					a += (double)q[i] * k[i];
				s[j] = a * scale;
				mx = s[j] > mx ? s[j] : mx;
			}
			for (int j = 0; j < T; j++)
				z += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
			for (int j = 0; j < T; j++) {
				if (s[j] == -INFINITY)
					continue;
				const float *v = qkv + j * S + (H + KV) * hd + kh * hd;
				for (int i = 0; i < hd; i++)
					o[i] += exp(s[j] - mx) / z * v[i];
			}
			const float *g = dy + (t * H + h) * hd;
			for (int i = 0; i < hd; i++) {
				double e = fabs(o[i] - out[(t * H + h) * hd + i]);
				worst_o = e > worst_o ? e : worst_o;
				D += g[i] * o[i];
			}
			double e = fabs(mx + log(z) - lse[t * H + h]);
			worst_l = e > worst_l ? e : worst_l;
			for (int j = 0; j < T; j++) {
				if (s[j] == -INFINITY)
					continue;
				const int ko = j * S + H * hd + kh * hd, vo = j * S + (H + KV) * hd + kh * hd;
				double p = exp(s[j] - mx) / z, dp = 0;
				for (int i = 0; i < hd; i++)
					dp += (double)g[i] * qkv[vo + i];
				double ds = p * (dp - D);
				for (int i = 0; i < hd; i++) {
					rdqkv[t * S + h * hd + i] += ds * qkv[ko + i] * scale;
					rdqkv[ko + i] += ds * q[i] * scale;
					rdqkv[vo + i] += p * g[i];
				}
			}
		}
	}
	cr_expect(worst_o < 2e-5, "hd %d: forward out off by %g", hd, worst_o);
	cr_expect(worst_l < 2e-5, "hd %d: lse off by %g", hd, worst_l);
	double worst = 0;
	int at = 0;
	for (int i = 0; i < T * S; i++) {
		double e = fabs(rdqkv[i] - dqkv[i]) / (1 + fabs(rdqkv[i]));
		if (e > worst)
			worst = e, at = i;
	}
	cr_expect(worst < 2e-5, "hd %d H %d KV %d: dqkv[%d] = %g, reference %g", hd, H, KV, at, dqkv[at], rdqkv[at]);
	free(qkv), free(out), free(lse), free(dy), free(dqkv), free(rdqkv);
}

Test(attention, blocked_hd64_mha) { check(3, 3, 64); }
Test(attention, blocked_hd32_gqa) { check(4, 2, 32); }
Test(attention, generic_hd8_gqa) { check(4, 2, 8); }
Test(attention, generic_hd20_mqa) { check(2, 1, 20); }
