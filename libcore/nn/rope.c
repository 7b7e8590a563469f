/* rope.c — RoPE frequencies with scaling (see rope.h), following
 * transformers' modeling_rope_utils (5.x). With d = head_dim, θ = rope_theta,
 * L = original_max_position_embeddings and i < d/2, plain RoPE is
 *   f_i = θ^(-2i/d)
 * and the schemes change it as follows.
 *
 *   linear    f_i / factor.
 *   dynamic   plain RoPE up to max_position_embeddings. transformers raises θ
 *             (NTK: θ·(factor·T/max − factor + 1)^(d/(d−2))) only for a
 *             sequence longer than that, and such sequences are refused
 *             before they reach the model, so training sees plain RoPE.
 *   llama3    wavelength λ_i = 2π/f_i: λ > L/low_freq_factor → f_i/factor;
 *             λ < L/high_freq_factor → f_i; in between
 *             (1 − s)·f_i/factor + s·f_i, s = (L/λ − low)/(high − low).
 *   yarn      f_i·(1 − e_i)/factor + f_i·e_i where the extrapolation weight
 *             e_i = 1 − clamp((i − lo)/(hi − lo), 0, 1) and [lo, hi] is the
 *             correction range d·ln(L/(2π·β))/(2 ln θ) for β = beta_fast,
 *             beta_slow (floor/ceil unless truncate is false, clipped to
 *             [0, d−1]); cos and sin are multiplied by attention_factor,
 *             default 0.1·ln(factor) + 1 (or the ratio of that with mscale
 *             and with mscale_all_dim when both are given), factor default
 *             max_position_embeddings / L.
 *   longrope  f_i / ext_i with ext = long_factor when the sequence is
 *             longer than L, short_factor otherwise; cos and sin are
 *             multiplied by attention_factor, default
 *             √(1 + ln(factor)/ln L) with factor = max_position_embeddings / L
 *             (1 when factor ≤ 1). transformers picks short or long from the
 *             largest position in the whole (padded) batch; we pick per
 *             sequence, which is what transformers computes for a sequence
 *             scored alone.
 */
#include "libcore/nn/rope.h"

#include <math.h>
#include <stdlib.h>

#include "libcore/nn/cpu/kernels.h"
#include "base/util.h"

static double yarn_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

void rope_freqs(const model_config *c, int seq_len, double *f, double *scale)
{
	const rope_scaling *r = &c->rope;
	const int d = c->head_dim, h2 = d / 2;
	const double base = c->rope_theta;
	const double maxpos = c->max_pos ? c->max_pos : c->max_seq_len;
	const double L = r->original_max ? r->original_max : maxpos;
	for (int i = 0; i < h2; i++)
		f[i] = pow(base, -2.0 * i / d);
	*scale = 1;
	switch (r->type) {
	case ROPE_DEFAULT:
	case ROPE_DYNAMIC: break;
	case ROPE_LINEAR:
		for (int i = 0; i < h2; i++)
			f[i] /= r->factor;
		break;
	case ROPE_LLAMA3: {
		const double lo_wl = L / r->low_freq_factor, hi_wl = L / r->high_freq_factor;
		for (int i = 0; i < h2; i++) {
			double wl = 2 * M_PI / f[i];
			if (wl > lo_wl) {
				f[i] /= r->factor;
			} else if (wl >= hi_wl) {
				double s = (L / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
				f[i] = (1 - s) * f[i] / r->factor + s * f[i];
			}
		}
		break;
	}
	case ROPE_YARN: {
		double factor = r->factor > 0 ? r->factor : maxpos / L;
		if (r->attention_factor > 0)
			*scale = r->attention_factor;
		else if (r->mscale != 0 && r->mscale_all_dim != 0)
			*scale = yarn_mscale(factor, r->mscale) / yarn_mscale(factor, r->mscale_all_dim);
		else
			*scale = yarn_mscale(factor, 1);
		double bf = r->beta_fast != 0 ? r->beta_fast : 32, bs = r->beta_slow != 0 ? r->beta_slow : 1;
		double lo = d * log(L / (bf * 2 * M_PI)) / (2 * log(base));
		double hi = d * log(L / (bs * 2 * M_PI)) / (2 * log(base));
		if (r->truncate) {
			lo = floor(lo);
			hi = ceil(hi);
		}
		lo = fmax(lo, 0);
		hi = fmin(hi, d - 1);
		if (lo == hi)
			hi += 0.001; /* as transformers: avoid a zero-width ramp */
		for (int i = 0; i < h2; i++) {
			double ramp = fmin(fmax((i - lo) / (hi - lo), 0), 1), e = 1 - ramp;
			f[i] = f[i] / factor * (1 - e) + f[i] * e;
		}
		break;
	}
	case ROPE_LONGROPE: {
		double factor = r->factor > 0 ? r->factor : maxpos / L;
		*scale = r->attention_factor > 0 ? r->attention_factor
			 : factor <= 1           ? 1.0
						 : sqrt(1 + log(factor) / log(L));
		const float *ext = seq_len > L ? r->long_factor : r->short_factor;
		for (int i = 0; i < h2; i++)
			f[i] /= ext[i];
		break;
	}
	}
}

void rope_table_cfg(float *cs, const int *pos, int T, const model_config *c)
{
	if (c->rope.type == ROPE_DEFAULT) {
		rope_table(cs, pos, T, c->head_dim, c->rope_theta);
		return;
	}
	const int hd = c->head_dim, h2 = hd / 2;
	double *fs = xmalloc(sizeof(double) * 2 * (size_t)h2), *fl = fs + h2, ss, sl = 1;
	const double L = c->rope.original_max ? c->rope.original_max : c->max_pos ? c->max_pos : c->max_seq_len;
	rope_freqs(c, 1, fs, &ss);
	if (c->rope.type == ROPE_LONGROPE)
		rope_freqs(c, (int)L + 1, fl, &sl);
	for (int t0 = 0, t1; t0 < T; t0 = t1) {
		int mx = pos[t0];
		for (t1 = t0 + 1; t1 < T && pos[t1] != 0; t1++)
			if (pos[t1] > mx)
				mx = pos[t1];
		int use_long = c->rope.type == ROPE_LONGROPE && mx + 1 > L;
		const double *f = use_long ? fl : fs, s = use_long ? sl : ss;
#pragma omp parallel for schedule(static)
		for (int t = t0; t < t1; t++) {
			float *row = cs + (size_t)t * hd;
			for (int i = 0; i < h2; i++) {
				double a = pos[t] * f[i];
				row[i] = (float)(s * cos(a));
				row[h2 + i] = (float)(s * sin(a));
			}
		}
	}
	free(fs);
}
