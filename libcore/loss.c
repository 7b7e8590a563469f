/* loss.c — preference losses with analytic gradients (see loss.h notation).
 *
 * Per-pair losses ℓ_i; the batch loss is L = (1/N') Σ_i ℓ_i (+ SFT, + regs),
 * N' = number of pairs entering the term (N except for beta-dpo's filter).
 * Gradients below are of ℓ_i; the code scales them by 1/N'.
 *
 * lbdpo, dpo (TRL "sigmoid"): z = βΔ,  ℓ = −log σ(z),  s = σ(−z)
 *     ∂ℓ/∂Δ = −s·β        (∂Δ/∂pc = +1, ∂Δ/∂pr = −1)
 *     ∂ℓ/∂β = −s·Δ        (doc/design.md §2.4; lbdpo only, β is per pair)
 * ipo (TRL "ipo", length-normalized as TRL does): ℓ = (u − 1/(2β))²
 *     ∂ℓ/∂u = 2(u − 1/(2β)),  ∂u/∂pc = 1/nc,  ∂u/∂pr = −1/nr
 * hinge: ℓ = max(0, 1 − βΔ);  ∂ℓ/∂Δ = −β when 1 − βΔ > 0, else 0
 * robust (cDPO / robust DPO, TRL "robust"), label smoothing ε:
 *     ℓ = [−(1−ε) log σ(z) + ε log σ(−z)] / (1 − 2ε),  z = βΔ
 *     ∂ℓ/∂z = [−(1−ε) σ(−z) − ε σ(z)] / (1 − 2ε)
 * simpo (TRL CPO loss_type="simpo"), no reference, average log-probs:
 *     z = β (pc/nc − pr/nr) − γ,   ℓ = −(1−ε) log σ(z) − ε log σ(−z)
 *     ∂ℓ/∂z = −(1−ε) σ(−z) + ε σ(z),  ∂z/∂pc = β/nc,  ∂z/∂pr = −β/nr
 * ln-dpo (TRL "sigmoid_norm"): z = βu,  ℓ = −log σ(z),  ∂ℓ/∂u = −σ(−z) β
 * beta-dpo (Wu et al. 2024, "β-DPO: Direct Preference Optimization with
 *   Dynamic β", NeurIPS 2024; our reading of the paper and its reference
 *   code): with per-pair margins M_i = Δ_i (detached),
 *     1. moving statistics, updated BEFORE use with momentum m (0.9), from 0:
 *          M0 ← m·M0 + (1−m)·mean_i M_i,   σ_M ← m·σ_M + (1−m)·std_i M_i
 *        (std with n−1 in the denominator, as torch.std)
 *     2. Gaussian weights p_i = exp(−½((M_i − M0)/σ_M)²); draw K = ⌊N(1−ρ)⌋
 *        (at least 1) pairs without replacement with probability ∝ p_i:
 *        outliers far from M0 are likely to be filtered out
 *     3. β_b = max(1e-3, β0·(1 + a·(mean_{i∈sel} M_i − M0))), a constant
 *        (no gradient flows through β_b)
 *     4. ℓ_i = −log σ(β_b Δ_i) on the selected pairs, averaged over K.
 *   When σ_M = 0 (first step of a one-pair batch) all weights are 1.
 * reward (TRL RewardTrainer; pc, pr are the reward model's scores r_c, r_r,
 *   m the pair's margin, c the centering coefficient):
 *     z = r_c − r_r − m,  ℓ = −log σ(z) + c·(r_c + r_r)²
 *     ∂ℓ/∂r_c = −σ(−z) + 2c(r_c + r_r),  ∂ℓ/∂r_r = σ(−z) + 2c(r_c + r_r)
 * sft (TRL "sft"): token mean NLL of the chosen completions over the batch,
 *     L_sft = −Σ_i pc_i / Σ_i nc_i,   ∂L_sft/∂pc_i = −1/Σ nc
 *   --sft-weight w adds w·L_sft to any loss (RPO).
 *
 * Regularizers on the learned β (lbdpo only; doc/design.md §2.5), N pairs:
 *   range:   R1 = λ1/N Σ [max(0, β−βmax) + max(0, βmin−β)]
 *            ∂R1/∂β_i = λ1/N (1[β_i>βmax] − 1[β_i<βmin])
 *   group:   R2 = λ2/N_g Σ_{i tagged} (β_i − β̄_{g(i)})², β̄_g the batch
 *            mean of β in group g, N_g the number of tagged pairs;
 *            ∂R2/∂β_i = 2λ2/N_g (β_i − β̄_{g(i)})   (the terms through β̄
 *            cancel since Σ_{j∈g}(β_j − β̄_g) = 0)
 *   entropy: R3 = λ3/N Σ (β_i − α H_ref,i)²,  ∂R3/∂β_i = 2λ3/N (β_i − α H_ref,i)
 */
#include "libcore/loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const char *kind_names[LOSS_N_KINDS] = {"lbdpo",  "dpo",    "ipo",      "hinge", "robust",
					       "simpo",  "ln-dpo", "beta-dpo", "sft",   "reward"};

int loss_kind_parse(const char *name)
{
	for (int k = 0; k < LOSS_N_KINDS; k++)
		if (!strcmp(name, kind_names[k]))
			return k;
	if (!strcmp(name, "sigmoid")) /* TRL's loss_type for DPO */
		return LOSS_DPO;
	return -1;
}

const char *loss_kind_list(void)
{
	static char buf[160];
	if (!buf[0])
		for (int k = 0; k < LOSS_N_KINDS; k++)
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s%s", k ? ", " : "", kind_names[k],
				 k == LOSS_DPO ? " (alias sigmoid)" : "");
	return buf;
}

const char *loss_kind_name(loss_kind k) { return (unsigned)k < LOSS_N_KINDS ? kind_names[k] : "?"; }

int loss_uses_learned_beta(loss_kind k) { return k == LOSS_LBDPO; }

int loss_needs_ref(loss_kind k) { return k != LOSS_SIMPO && k != LOSS_SFT && k != LOSS_REWARD; }

int loss_needs_whole_batch(const loss_opts *o)
{
	return o->kind == LOSS_BETADPO || (o->kind == LOSS_LBDPO && o->group_reg != 0);
}

void loss_opts_default(loss_opts *o)
{
	memset(o, 0, sizeof *o);
	o->kind = LOSS_LBDPO;
	o->beta = 0.1;
	o->gamma = 0.5;
	o->bdpo_alpha = 0.6;
	o->bdpo_rho = 0.2;
	o->bdpo_momentum = 0.9;
	o->beta_min = 0.0;
	o->beta_max = 10.0;
}

double sigmoid(double z)
{
	if (z >= 0)
		return 1.0 / (1.0 + exp(-z));
	double e = exp(z);
	return e / (1.0 + e);
}

/* log σ(z) = −softplus(−z) = min(z,0) − log1p(e^−|z|) */
double log_sigmoid(double z) { return (z < 0 ? z : 0.0) - log1p(exp(-fabs(z))); }

double rng_uniform(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

/* beta-dpo steps 1–3: fills sel[i] ∈ {0,1}, returns β_b. */
static double bdpo_select(const loss_opts *o, const loss_pair *p, int n, bdpo_state *bs, uint64_t *rng,
			  double *sel)
{
	double mean = 0, var = 0;
	double *M = xmalloc(sizeof(double) * (size_t)n); /* [n] margins */
	for (int i = 0; i < n; i++) {
		M[i] = (p[i].pc - p[i].rc) - (p[i].pr - p[i].rr);
		mean += M[i];
	}
	mean /= n;
	for (int i = 0; i < n; i++)
		var += (M[i] - mean) * (M[i] - mean);
	double sd = n > 1 ? sqrt(var / (n - 1)) : 0.0;
	double m = o->bdpo_momentum;
	bs->m0 = m * bs->m0 + (1 - m) * mean;
	bs->sd = m * bs->sd + (1 - m) * sd;
	bs->n_updates++;

	double *w = xmalloc(sizeof(double) * (size_t)n); /* [n] sampling weights */
	for (int i = 0; i < n; i++) {
		double t = bs->sd > 1e-12 ? (M[i] - bs->m0) / bs->sd : 0.0;
		w[i] = exp(-0.5 * t * t);
		sel[i] = 0;
	}
	int K = (int)(n * (1.0 - o->bdpo_rho));
	if (K < 1)
		K = 1;
	if (K > n)
		K = n;
	double msel = 0;
	for (int k = 0; k < K; k++) {
		double tot = 0;
		int last = -1;
		for (int i = 0; i < n; i++)
			if (!sel[i]) {
				tot += w[i];
				last = i;
			}
		int pick = last;
		if (tot > 0) {
			double u = rng_uniform(rng) * tot, c = 0;
			for (int i = 0; i < n; i++) {
				if (sel[i])
					continue;
				c += w[i];
				if (u < c) {
					pick = i;
					break;
				}
			}
		} else { /* every remaining weight underflowed: take them in order */
			for (int i = 0; i < n; i++)
				if (!sel[i]) {
					pick = i;
					break;
				}
		}
		sel[pick] = 1;
		msel += M[pick];
	}
	msel /= K;
	double beta = o->beta * (1 + o->bdpo_alpha * (msel - bs->m0));
	if (beta < 1e-3)
		beta = 1e-3;
	free(M);
	free(w);
	return beta;
}

double loss_batch(const loss_opts *o, const loss_pair *p, int n, loss_pair_grad *g, bdpo_state *bs,
		  uint64_t *rng, loss_stats *st)
{
	loss_stats s;
	memset(&s, 0, sizeof s);
	loss_pair_grad *gg = g ? g : xcalloc((size_t)n, sizeof *gg);
	memset(gg, 0, sizeof *gg * (size_t)n);
	if (n <= 0) {
		if (st)
			*st = s;
		if (!g)
			free(gg);
		return 0;
	}
	const double b0 = o->beta;
	double *sel = NULL;
	double beta_b = b0;
	if (o->kind == LOSS_BETADPO) {
		bdpo_state tmp = {0, 0, 0};
		uint64_t r0 = 1;
		sel = xmalloc(sizeof(double) * (size_t)n);
		beta_b = bdpo_select(o, p, n, bs ? bs : &tmp, rng ? rng : &r0, sel);
	}

	/* ---- preference term ---- */
	int nused = 0;
	for (int i = 0; i < n; i++)
		nused += (sel == NULL || sel[i] > 0) && o->kind != LOSS_SFT;
	double inv = nused > 0 ? 1.0 / nused : 0.0;
	double pref = 0, beta_sum = 0;
	for (int i = 0; i < n; i++) {
		const loss_pair *q = &p[i];
		loss_pair_grad *d = &gg[i];
		double delta = (q->pc - q->rc) - (q->pr - q->rr);
		double u = (q->pc - q->rc) / q->nc - (q->pr - q->rr) / q->nr;
		double l = 0, dpc = 0, dpr = 0, db = 0;
		double b = o->kind == LOSS_LBDPO ? q->beta : b0;
		beta_sum += o->kind == LOSS_BETADPO ? beta_b : b;
		d->weight = 1;
		switch (o->kind) {
		case LOSS_LBDPO:
		case LOSS_DPO: {
			double z = b * delta, s_ = sigmoid(-z);
			l = -log_sigmoid(z);
			dpc = -s_ * b;
			dpr = s_ * b;
			db = -s_ * delta;
			break;
		}
		case LOSS_IPO: {
			double r = u - 1.0 / (2 * b);
			l = r * r;
			dpc = 2 * r / q->nc;
			dpr = -2 * r / q->nr;
			break;
		}
		case LOSS_HINGE: {
			double h = 1 - b * delta;
			l = h > 0 ? h : 0;
			dpc = h > 0 ? -b : 0;
			dpr = -dpc;
			break;
		}
		case LOSS_ROBUST: {
			double e = o->label_smoothing, z = b * delta;
			l = (-(1 - e) * log_sigmoid(z) + e * log_sigmoid(-z)) / (1 - 2 * e);
			double dz = (-(1 - e) * sigmoid(-z) - e * sigmoid(z)) / (1 - 2 * e);
			dpc = dz * b;
			dpr = -dz * b;
			break;
		}
		case LOSS_SIMPO: {
			double e = o->label_smoothing;
			double z = b * (q->pc / q->nc - q->pr / q->nr) - o->gamma;
			l = -(1 - e) * log_sigmoid(z) - e * log_sigmoid(-z);
			double dz = -(1 - e) * sigmoid(-z) + e * sigmoid(z);
			dpc = dz * b / q->nc;
			dpr = -dz * b / q->nr;
			break;
		}
		case LOSS_LNDPO: {
			double z = b * u;
			l = -log_sigmoid(z);
			double du = -sigmoid(-z) * b;
			dpc = du / q->nc;
			dpr = -du / q->nr;
			break;
		}
		case LOSS_BETADPO: {
			if (sel[i] > 0) {
				double z = beta_b * delta, s_ = sigmoid(-z);
				l = -log_sigmoid(z);
				dpc = -s_ * beta_b;
				dpr = s_ * beta_b;
			} else {
				d->weight = 0;
			}
			break;
		}
		case LOSS_REWARD: {
			double z = q->pc - q->pr - q->margin, s_ = sigmoid(-z), sum = q->pc + q->pr;
			l = -log_sigmoid(z) + o->center_coef * sum * sum;
			dpc = -s_ + 2 * o->center_coef * sum;
			dpr = s_ + 2 * o->center_coef * sum;
			break;
		}
		case LOSS_SFT:
		default:
			d->weight = 0;
			break;
		}
		d->loss = l;
		pref += l * inv;
		d->d_pc = dpc * inv;
		d->d_pr = dpr * inv;
		d->d_beta = db * inv;
	}
	s.pref = pref;
	s.n_used = nused;
	s.beta_used = o->kind == LOSS_BETADPO ? beta_b : beta_sum / n;

	/* ---- SFT term: token-mean NLL of the chosen completions ---- */
	double wsft = o->kind == LOSS_SFT ? 1.0 : o->sft_weight;
	if (o->kind == LOSS_REWARD) /* scores, not log-probs: no NLL term */
		wsft = 0;
	else {
		double sp = 0, sn = 0;
		for (int i = 0; i < n; i++) {
			sp += p[i].pc;
			sn += p[i].nc;
		}
		if (o->sft_tokens > 0)
			sn = o->sft_tokens;
		s.sft = sn > 0 ? -sp / sn : 0;
		if (wsft != 0 && sn > 0)
			for (int i = 0; i < n; i++)
				gg[i].d_pc += -wsft / sn;
	}

	/* ---- regularizers on the learned β ---- */
	if (o->kind == LOSS_LBDPO) {
		if (o->range_reg != 0) {
			double r = 0;
			for (int i = 0; i < n; i++) {
				double b = p[i].beta;
				if (b > o->beta_max) {
					r += b - o->beta_max;
					gg[i].d_beta += o->range_reg / n;
				}
				if (b < o->beta_min) {
					r += o->beta_min - b;
					gg[i].d_beta -= o->range_reg / n;
				}
			}
			s.reg_range = o->range_reg * r / n;
		}
		if (o->group_reg != 0) {
			/* group ids are small; collect the distinct ones */
			int ng = 0, ntag = 0;
			for (int i = 0; i < n; i++)
				if (p[i].group >= 0) {
					ntag++;
					if (p[i].group + 1 > ng)
						ng = p[i].group + 1;
				}
			if (ntag > 0) {
				double *gs = xcalloc((size_t)ng, sizeof(double)); /* [ng] Σβ */
				int *gc = xcalloc((size_t)ng, sizeof(int));       /* [ng] count */
				for (int i = 0; i < n; i++)
					if (p[i].group >= 0) {
						gs[p[i].group] += p[i].beta;
						gc[p[i].group]++;
					}
				double r = 0;
				for (int i = 0; i < n; i++)
					if (p[i].group >= 0) {
						double dv = p[i].beta - gs[p[i].group] / gc[p[i].group];
						r += dv * dv;
						gg[i].d_beta += 2 * o->group_reg * dv / ntag;
					}
				s.reg_group = o->group_reg * r / ntag;
				free(gs);
				free(gc);
			}
		}
		if (o->entropy_reg != 0) {
			double r = 0;
			for (int i = 0; i < n; i++) {
				double dv = p[i].beta - o->entropy_alpha * p[i].h_ref;
				r += dv * dv;
				gg[i].d_beta += 2 * o->entropy_reg * dv / n;
			}
			s.reg_entropy = o->entropy_reg * r / n;
		}
	}
	s.loss = s.pref + wsft * s.sft + s.reg_range + s.reg_group + s.reg_entropy;
	if (st)
		*st = s;
	free(sel);
	if (!g)
		free(gg);
	return s.loss;
}
