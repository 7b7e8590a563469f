/* rl.c — PPO, GRPO and RLOO math on per-token arrays (see rl.h layout).
 *
 * Row i has real tokens t < n_i = len[i]; M = Σ_i n_i; ρ_t = exp(lp_t − lp_old,t);
 * clip(ρ) = min(max(ρ, 1 − ε_lo), 1 + ε_hi).
 *
 * PPO (TRL PPOTrainer):
 *   score_i −= missing_eos_penalty if sample i has no EOS
 *   r_t = −c_kl·(lp_old,t − lp_ref,t),  r_{n−1} += score_i   (KL in the reward)
 *   optional whitening of r (shift_mean = 0)
 *   δ_t = r_t + γ·V_{t+1} − V_t (V_n = 0),  A_t = δ_t + γλ·A_{t+1},  R_t = A_t + V_t
 *   A ← (A − mean)/sqrt(var + 1e-8) over the real tokens (var with n/(n−1))
 *   ℓ_t = max(−A_t ρ_t, −A_t clip(ρ_t)),  L_pg = (1/M) Σ ℓ_t
 *     ∂ℓ_t/∂lp_t = −A_t ρ_t when −A_t ρ_t ≥ −A_t clip(ρ_t) (the unclipped
 *     branch, torch.max's choice on a tie), else 0 (clip(ρ) is flat there
 *     or equals ρ)
 *   value: ṽ_t = min(max(v_t, v_old,t − ε_v), v_old,t + ε_v),
 *     L_vf = ½·(1/M) Σ max((v_t − R_t)², (ṽ_t − R_t)²)
 *     ∂/∂v_t = (v_t − R_t)/M when the first term is the max, else
 *              (ṽ_t − R_t)/M inside the clip range and 0 outside
 *   the step minimizes L_pg + vf_coef·L_vf (policy and value parameters apart)
 *   clipfrac = share of tokens with −A clip(ρ) > −A ρ (TRL's pg_losses2 > pg_losses)
 *
 * GRPO (TRL GRPOTrainer, KL in the LOSS): A_i = (r_i − mean_g)/(std_g + 1e-4)
 *   broadcast over the tokens, ℓ_t = −min(ρA, clip(ρ)A) + β·k3_t,
 *   k3_t = e^{x} − x − 1 with x = lp_ref,t − lp_t,  ∂k3/∂lp = 1 − e^{x};
 *   "grpo": L = (1/B) Σ_i (1/n_i) Σ_t ℓ_t;  "bnpo": L = (1/M) Σ ℓ_t.
 *   ∂(−min(ρA, clip(ρ)A))/∂lp = −Aρ where ρA ≤ clip(ρ)A (torch.min's
 *   first argument on a tie), else 0.
 *   clipfrac: (ρ < 1 − ε_lo ∧ A < 0) ∨ (ρ > 1 + ε_hi ∧ A > 0) (TRL's region)
 *
 * RLOO (TRL RLOOTrainer, KL in the REWARD): r_i ← r_i − β·Σ_t (lp_old − lp_ref),
 *   A_i = r_i − (Σ_{j∈g} r_j − r_i)/(G − 1), optionally whitened over the
 *   batch (+ 1e-4); one ratio per sequence ρ_i = exp(Σ_t lp_t − Σ_t lp_old,t),
 *   L = (1/B) Σ_i −min(ρ_i A_i, clip(ρ_i) A_i);  ∂L/∂lp_t = ∂L/∂log ρ_i for
 *   every real token t of i.
 *
 * Entropy of a row of logits: H = logsumexp(z) − Σ p_k z_k,
 *   ∂H/∂z_k = −p_k (z_k − Σ_j p_j z_j).
 */
#include "libcore/objective/rl.h"

#include <math.h>
#include <string.h>

void rl_eos_penalty(double *score, const int *has_eos, int B, double penalty)
{
	for (int i = 0; i < B; i++)
		if (!has_eos[i])
			score[i] -= penalty;
}

void rl_token_rewards(double *rew, double *nonscore, const double *lp_old, const double *lp_ref, const double *score,
		      const int *len, int B, int T, double kl_coef)
{
	for (int i = 0; i < B; i++)
		for (int t = 0; t < T; t++) {
			size_t k = (size_t)i * T + t;
			double r = t < len[i] ? -kl_coef * (lp_old[k] - lp_ref[k]) : 0.0;
			if (nonscore)
				nonscore[k] = r;
			rew[k] = r + (t == len[i] - 1 ? score[i] : 0.0);
		}
}

void rl_whiten(double *x, const int *len, int B, int T, int shift_mean)
{
	double n = 0, s = 0, ss = 0;
	for (int i = 0; i < B; i++)
		for (int t = 0; t < len[i]; t++) {
			n++;
			s += x[(size_t)i * T + t];
		}
	if (n < 2)
		return;
	double mean = s / n;
	for (int i = 0; i < B; i++)
		for (int t = 0; t < len[i]; t++) {
			double d = x[(size_t)i * T + t] - mean;
			ss += d * d;
		}
	double var = ss / n * (n / (n - 1)), inv = 1.0 / sqrt(var + 1e-8);
	for (int i = 0; i < B; i++)
		for (int t = 0; t < T; t++) {
			double *p = &x[(size_t)i * T + t];
			*p = t < len[i] ? (*p - mean) * inv + (shift_mean ? 0.0 : mean) : 0.0;
		}
}

void rl_gae(double *adv, double *ret, const double *rew, const double *val, const int *len, int B, int T, double gamma,
	    double lam)
{
	for (int i = 0; i < B; i++) {
		const double *r = rew + (size_t)i * T, *v = val + (size_t)i * T;
		double *a = adv + (size_t)i * T, *R = ret + (size_t)i * T;
		double last = 0;
		for (int t = T - 1; t >= 0; t--) {
			if (t >= len[i]) {
				a[t] = R[t] = 0;
				continue;
			}
			double next = t + 1 < len[i] ? v[t + 1] : 0.0;
			last = r[t] + gamma * next - v[t] + gamma * lam * last;
			a[t] = last;
			R[t] = last + v[t];
		}
	}
}

void rl_seq_kl(double *kl, const double *lp_old, const double *lp_ref, const int *len, int B, int T)
{
	for (int i = 0; i < B; i++) {
		double s = 0;
		for (int t = 0; t < len[i]; t++)
			s += lp_old[(size_t)i * T + t] - lp_ref[(size_t)i * T + t];
		kl[i] = s;
	}
}

/* mean and Bessel-corrected std of x[0..n) (std NAN for n < 2, as TRL's nanstd) */
static void mean_std(double *mean, double *std, const double *x, int n)
{
	double s = 0, ss = 0;
	for (int i = 0; i < n; i++)
		s += x[i];
	*mean = s / n;
	for (int i = 0; i < n; i++)
		ss += (x[i] - *mean) * (x[i] - *mean);
	*std = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

void rl_grpo_advantages(double *adv, const double *r, int n, int G, int scale)
{
	for (int g = 0; g + G <= n; g += G) {
		double mean, std;
		mean_std(&mean, &std, r + g, G);
		for (int j = g; j < g + G; j++) {
			double a = r[j] - mean;
			if (scale)
				a /= std + 1e-4;
			adv[j] = isnan(a) ? 0.0 : a; /* a group of one: no signal (TRL's nan_to_num) */
		}
	}
}

void rl_rloo_advantages(double *adv, const double *r, int n, int G, int normalize)
{
	for (int g = 0; g + G <= n; g += G) {
		double s = 0;
		for (int j = g; j < g + G; j++)
			s += r[j];
		for (int j = g; j < g + G; j++)
			adv[j] = G > 1 ? r[j] - (s - r[j]) / (G - 1) : 0.0;
	}
	if (normalize && n > 1) {
		double mean, std;
		mean_std(&mean, &std, adv, n);
		for (int j = 0; j < n; j++)
			adv[j] = (adv[j] - mean) / (std + 1e-4);
	}
}

double rl_policy_loss(double *g_lp, rl_policy_stats *st, const double *lp, const double *lp_old, const double *lp_ref,
		      const double *adv, const int *len, int B, int T, const rl_policy_opts *o)
{
	double lo = 1 - o->eps_low, hi = 1 + o->eps_high;
	double M = 0, loss = 0, clipped = 0, akl = 0, rsum = 0, kl = 0;
	for (int i = 0; i < B; i++)
		M += len[i];
	if (g_lp)
		memset(g_lp, 0, sizeof *g_lp * (size_t)B * T);
	if (o->seq_level) {
		for (int i = 0; i < B; i++) {
			double lr = 0;
			for (int t = 0; t < len[i]; t++) {
				size_t k = (size_t)i * T + t;
				double d = lp[k] - lp_old[k];
				lr += d;
				akl += 0.5 * d * d;
			}
			double A = adv[(size_t)i * T], rho = exp(lr), rc = fmin(fmax(rho, lo), hi);
			double l1 = rho * A, l2 = rc * A;
			loss += -fmin(l1, l2) / B;
			rsum += rho;
			clipped += (rho < lo && A < 0) || (rho > hi && A > 0);
			double g = l1 <= l2 ? -A * rho / B : 0.0;
			if (g_lp)
				for (int t = 0; t < len[i]; t++)
					g_lp[(size_t)i * T + t] = g;
		}
		if (st) {
			st->loss = loss;
			st->clipfrac = clipped / B;
			st->ratio = rsum / B;
			st->approxkl = M > 0 ? akl / M : 0;
			st->kl = 0;
			st->ntok = M;
		}
		return loss;
	}
	for (int i = 0; i < B; i++) {
		/* each token's weight in the aggregate */
		double w = o->agg == RL_AGG_SEQ ? (len[i] > 0 ? 1.0 / len[i] / B : 0.0) : 1.0 / M;
		for (int t = 0; t < len[i]; t++) {
			size_t k = (size_t)i * T + t;
			double d = lp[k] - lp_old[k], rho = exp(d), A = adv[k], rc = fmin(fmax(rho, lo), hi);
			double l1 = rho * A, l2 = rc * A, l = -fmin(l1, l2);
			double g = l1 <= l2 ? -A * rho : 0.0;
			if (o->beta > 0) {
				double x = lp_ref[k] - lp[k], ex = exp(x);
				l += o->beta * (ex - x - 1);
				g += o->beta * (1 - ex);
				kl += ex - x - 1;
			}
			loss += w * l;
			if (g_lp)
				g_lp[k] = w * g;
			akl += 0.5 * d * d;
			rsum += rho;
			/* PPO counts −A·clip(ρ) > −A·ρ; for ε_lo = ε_hi that is TRL GRPO's region test */
			clipped += (rho < lo && A < 0) || (rho > hi && A > 0);
		}
	}
	if (st) {
		st->loss = loss;
		st->clipfrac = M > 0 ? clipped / M : 0;
		st->approxkl = M > 0 ? akl / M : 0;
		st->ratio = M > 0 ? rsum / M : 0;
		st->kl = M > 0 ? kl / M : 0;
		st->ntok = M;
	}
	return loss;
}

double rl_value_loss(double *g_v, rl_value_stats *st, const double *v, const double *v_old, const double *ret,
		     const int *len, int B, int T, double clip)
{
	double M = 0, loss = 0, clipped = 0;
	for (int i = 0; i < B; i++)
		M += len[i];
	if (g_v)
		memset(g_v, 0, sizeof *g_v * (size_t)B * T);
	for (int i = 0; i < B; i++)
		for (int t = 0; t < len[i]; t++) {
			size_t k = (size_t)i * T + t;
			double vc = fmin(fmax(v[k], v_old[k] - clip), v_old[k] + clip);
			double e1 = v[k] - ret[k], e2 = vc - ret[k];
			double l1 = e1 * e1, l2 = e2 * e2;
			loss += 0.5 * fmax(l1, l2) / M;
			clipped += l2 > l1;
			if (g_v) {
				int inside = v[k] >= v_old[k] - clip && v[k] <= v_old[k] + clip;
				g_v[k] = l1 >= l2 ? e1 / M : (inside ? e2 / M : 0.0);
			}
		}
	if (st) {
		st->loss = loss;
		st->clipfrac = M > 0 ? clipped / M : 0;
	}
	return loss;
}

double rl_entropy(double *dz, const float *z, int V)
{
	double mx = -INFINITY, s = 0, pz = 0;
	for (int k = 0; k < V; k++)
		mx = fmax(mx, z[k]);
	for (int k = 0; k < V; k++)
		s += exp(z[k] - mx);
	double lse = mx + log(s);
	for (int k = 0; k < V; k++)
		pz += exp(z[k] - lse) * z[k];
	if (dz)
		for (int k = 0; k < V; k++)
			dz[k] = -exp(z[k] - lse) * (z[k] - pz);
	return lse - pz;
}

double rl_kl_adapt(double coef, double kl, double target, double horizon, double n_steps)
{
	double err = fmin(fmax(kl / target - 1, -0.2), 0.2);
	return coef * (1 + err * n_steps / horizon);
}
