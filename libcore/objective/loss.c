/* loss.c — preference losses with analytic gradients (see loss.h notation).
 *
 * Per-pair losses ℓ_i; the batch loss is L = (1/N') Σ_i ℓ_i (+ SFT, + regs),
 * N' = number of pairs entering the term (N except for beta-dpo's filter).
 * Gradients below are of ℓ_i; the code scales them by 1/N'.
 *
 * lbdpo, dpo (TRL "sigmoid"): z = βΔ,  ℓ = −log σ(z),  s = σ(−z)
 *     ∂ℓ/∂Δ = −s·β        (∂Δ/∂pc = +1, ∂Δ/∂pr = −1)
 *     ∂ℓ/∂β = −s·Δ        (doc/design.md §2.4; lbdpo only, β is per pair)
 * cdpo (conservative DPO, Mitchell 2023, "A note on DPO with noisy
 *   preferences"; TRL 0.x's "sigmoid" with label_smoothing, which TRL 1.x
 *   dropped), ε = --label-smoothing, the assumed flip rate:
 *     ℓ = −(1−ε) log σ(z) − ε log σ(−z),  z = βΔ
 *     ∂ℓ/∂z = −(1−ε) σ(−z) + ε σ(z),  ∂ℓ/∂Δ = β·∂ℓ/∂z,  ∂ℓ/∂β = Δ·∂ℓ/∂z
 *   (robust below is rDPO, Chowdhury et al. 2024: unbiased, not smoothed)
 * drdpo (Dr.DPO, Wu et al. 2024, "Towards Robust Alignment of Language
 *   Models: Distributionally Robustifying DPO"; the authors' formula, as in
 *   their code): with the DPO terms ℓ_i = −log σ(βΔ_i) of the N pairs,
 *     L = −β′ log( (1/N) Σ_i exp(−ℓ_i/β′) )       (β′ = --drdpo-beta-prime, 1)
 *     ∂L/∂ℓ_i = a_i/N,  a_i = N·softmax_i(−ℓ/β′)   (Σ a_i = N)
 *   so each pair's DPO gradient is scaled by a_i: pairs with a large loss
 *   (likely flipped) get less weight. ℓ_j depends on pair j only, hence
 *     ∂L/∂pc_i = −(a_i/N) σ(−z_i) β,   ∂L/∂β_i = −(a_i/N) σ(−z_i) Δ_i
 *   exactly (--learned-beta). β′ → ∞ gives DPO; the per-pair "loss" it
 *   reports is ℓ_i, the batch loss is L.
 * ipo (TRL "ipo", length-normalized as TRL does): ℓ = (u − 1/(2β))²
 *     ∂ℓ/∂u = 2(u − 1/(2β)),  ∂u/∂pc = 1/nc,  ∂u/∂pr = −1/nr
 * hinge: ℓ = max(0, 1 − βΔ);  ∂ℓ/∂Δ = −β when 1 − βΔ > 0, else 0
 * robust (robust DPO, rDPO, Chowdhury et al. 2024; TRL "robust"), flip rate ε:
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
 * The rest of TRL's list (DPOTrainer._compute_loss, TRL 1.x), with
 * ρ_w = pc − rc, ρ_l = pr − rr (Δ = ρ_w − ρ_l), z = βΔ, z_w = βρ_w,
 * z_l = βρ_l, ε = --label-smoothing, s'(z) = σ(z)σ(−z) = dσ/dz. Each
 * ∂ℓ/∂z_w maps to ∂ℓ/∂pc = β·∂ℓ/∂z_w and ∂ℓ/∂β = ρ_w·∂ℓ/∂z_w (likewise
 * z_l → pr, z → pc and −pr with Δ):
 * exo_pair (EXO, ε > 0): ℓ = σ(z)(log σ(z) − log(1−ε)) + σ(−z)(log σ(−z) − log ε)
 *     ∂ℓ/∂z = s'(z)·(z − log((1−ε)/ε))
 * nca_pair: ℓ = −log σ(z_w) − ½ log σ(−z_w) − ½ log σ(−z_l)
 *     ∂ℓ/∂z_w = −σ(−z_w) + ½σ(z_w),  ∂ℓ/∂z_l = ½σ(z_l)
 * bco_pair: ℓ = −log σ(z_w) − log σ(−z_l)  (no running reward mean in TRL 1.x)
 *     ∂ℓ/∂z_w = −σ(−z_w),  ∂ℓ/∂z_l = σ(z_l)
 * sppo_hard: ℓ = (ρ_w − 1/(2β))² + (ρ_l + 1/(2β))²
 *     ∂ℓ/∂pc = 2(ρ_w − 1/(2β)),  ∂ℓ/∂pr = 2(ρ_l + 1/(2β)),  ∂ℓ/∂β = (ρ_w − ρ_l − 1/β)/β²
 * aot (batch sort): a_i = pc_i − pr_i, b_i = rc_i − rr_i, each sorted
 *   ascending (a_(j) from pair π(j)); δ_j = a_(j) − b_(j), and position j
 *   has ℓ_j = −(1−ε) log σ(βδ_j) − ε log σ(−βδ_j):
 *     ∂ℓ_j/∂δ_j = β(−(1−ε)σ(−βδ_j) + εσ(βδ_j)),  to pc_π(j) with +, pr_π(j) with −
 * aot_unpaired: the same with a_i = ρ_w,i and b_i = ρ_l,i sorted apart:
 *   ∂ℓ_j/∂δ_j goes to pc of a_(j)'s pair (+) and pr of b_(j)'s pair (−).
 *   (Both sorts move pairs, so there is no per-pair β: --learned-beta refuses them.)
 * apo_zero: ℓ = 1 − σ(z_w) + σ(z_l);  ∂ℓ/∂z_w = −s'(z_w),  ∂ℓ/∂z_l = s'(z_l)
 * apo_down: ℓ = σ(z_w) + 1 − σ(z);  ∂ℓ/∂z_w = s'(z_w),  ∂ℓ/∂z = −s'(z)
 * discopop (τ = --discopop-tau, 0.05): m = σ(z/τ),
 *     ℓ = −log σ(z)(1 − m) + e^−z·m   (m is not detached, as in TRL)
 *     ∂ℓ/∂z = −σ(−z)(1−m) − e^−z·m + (log σ(z) + e^−z)·m(1−m)/τ
 *
 * ∂ℓ/∂β of the older losses, for --learned-beta:
 *   ipo: (u − 1/(2β))/β²;  hinge: −Δ where 1 − βΔ > 0;  robust: Δ·∂ℓ/∂z;
 *   simpo: (pc/nc − pr/nr)·∂ℓ/∂z;  ln-dpo: −σ(−z)·u.
 *
 * Loss lists (TRL's loss_type list with loss_weights): L = Σ_k w_k·(mean_i
 * ℓ_k,i), plus the SFT term, plus the regularizers once. "sft" in a list is
 * w·L_sft, the same term as --sft-weight w; both given, the weights add.
 * With --learned-beta (or lbdpo, which is dpo with it) β_i is the β head's
 * for every β-loss of the list and ∂L/∂β_i = Σ_k w_k ∂ℓ_k,i/∂β_i / N.
 *
 * Regularizers on the learned β (lbdpo or --learned-beta; doc/design.md §2.5), N pairs:
 *   range:   R1 = λ1/N Σ [max(0, β−βmax) + max(0, βmin−β)]
 *            ∂R1/∂β_i = λ1/N (1[β_i>βmax] − 1[β_i<βmin])
 *   group:   R2 = λ2/N_g Σ_{i tagged} (β_i − β̄_{g(i)})², β̄_g the batch
 *            mean of β in group g, N_g the number of tagged pairs;
 *            ∂R2/∂β_i = 2λ2/N_g (β_i − β̄_{g(i)})   (the terms through β̄
 *            cancel since Σ_{j∈g}(β_j − β̄_g) = 0)
 *   entropy: R3 = λ3/N Σ (β_i − α H_ref,i)²,  ∂R3/∂β_i = 2λ3/N (β_i − α H_ref,i)
 */
#include "libcore/objective/loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/util.h"

static const char *kind_names[LOSS_N_KINDS] = {
	"lbdpo", "dpo", "ipo", "hinge", "robust", "simpo", "ln-dpo", "beta-dpo", "sft",
	/* TRL's names */
	"exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop",
	/* a reward model's loss (TRL's RewardTrainer) */
	"reward",
	/* label-noise losses: cDPO, Dr.DPO (Wu et al. 2024) */
	"cdpo", "drdpo"};

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
	static char buf[512]; /* every name: the test checks none is cut off */
	if (!buf[0])
		for (int k = 0; k < LOSS_N_KINDS; k++)
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s%s", k ? ", " : "", kind_names[k],
				 k == LOSS_DPO ? " (alias sigmoid)" : "");
	return buf;
}

const char *loss_kind_name(loss_kind k) { return (unsigned)k < LOSS_N_KINDS ? kind_names[k] : "?"; }

int loss_uses_learned_beta(loss_kind k) { return k == LOSS_LBDPO; }

int loss_needs_ref(loss_kind k) { return k != LOSS_SIMPO && k != LOSS_SFT && k != LOSS_REWARD; }

int loss_has_pair_beta(loss_kind k)
{
	return k != LOSS_SFT && k != LOSS_BETADPO && k != LOSS_AOT && k != LOSS_AOT_UNPAIRED && k != LOSS_REWARD;
}

/* The terms of the loss: the list, or the one loss with weight 1. */
static int loss_terms(const loss_opts *o, loss_kind *k, double *w)
{
	if (o->n_terms == 0) {
		k[0] = o->kind;
		w[0] = 1.0;
		return 1;
	}
	memcpy(k, o->terms, sizeof *k * (size_t)o->n_terms);
	memcpy(w, o->term_w, sizeof *w * (size_t)o->n_terms);
	return o->n_terms;
}

int loss_learned_beta(const loss_opts *o) { return o->kind == LOSS_LBDPO || o->learned_beta; }

int loss_opts_needs_ref(const loss_opts *o)
{
	loss_kind k[LOSS_MAX_TERMS];
	double w[LOSS_MAX_TERMS];
	int n = loss_terms(o, k, w), r = 0;
	for (int t = 0; t < n; t++)
		r |= loss_needs_ref(k[t]);
	return r;
}

int loss_opts_needs_rejected(const loss_opts *o)
{
	loss_kind k[LOSS_MAX_TERMS];
	double w[LOSS_MAX_TERMS];
	int n = loss_terms(o, k, w), r = 0;
	for (int t = 0; t < n; t++)
		r |= k[t] != LOSS_SFT;
	return r;
}

int loss_needs_whole_batch(const loss_opts *o)
{
	loss_kind k[LOSS_MAX_TERMS];
	double w[LOSS_MAX_TERMS];
	int n = loss_terms(o, k, w), r = o->kind == LOSS_BETADPO || (loss_learned_beta(o) && o->group_reg != 0);
	for (int t = 0; t < n; t++)
		r |= k[t] == LOSS_AOT || k[t] == LOSS_AOT_UNPAIRED || k[t] == LOSS_DRDPO;
	return r;
}

int loss_opts_set(loss_opts *o, const char *names, const char *weights, char *err, size_t errlen)
{
	int nt = 0, nw = 0;
	loss_kind k[LOSS_MAX_TERMS];
	double w[LOSS_MAX_TERMS];
	char buf[512];
	if (strlen(names) >= sizeof buf) {
		snprintf(err, errlen, "--loss: list too long");
		return -1;
	}
	strcpy(buf, names);
	for (char *save = NULL, *tok = buf;; tok = NULL) {
		char *t = strtok_r(tok, ",", &save);
		if (!t)
			break;
		int kk = loss_kind_parse(t);
		if (kk < 0) {
			snprintf(err, errlen, "--loss: unknown loss '%s'", t);
			return -1;
		}
		if (nt == LOSS_MAX_TERMS) {
			snprintf(err, errlen, "--loss: more than %d losses", LOSS_MAX_TERMS);
			return -1;
		}
		k[nt++] = (loss_kind)kk;
	}
	if (nt == 0 || names[0] == ',' || names[strlen(names) - 1] == ',' || strstr(names, ",,")) {
		snprintf(err, errlen, "--loss: empty name in '%s'", names);
		return -1;
	}
	if (weights) {
		const char *q = weights;
		for (;;) {
			char *end;
			double x = strtod(q, &end);
			if (end == q || !isfinite(x) || (*end != ',' && *end)) {
				snprintf(err, errlen, "--loss-weights: '%s' is not a comma list of numbers", weights);
				return -1;
			}
			if (nw < LOSS_MAX_TERMS)
				w[nw] = x;
			nw++;
			if (!*end)
				break;
			q = end + 1;
		}
		if (nw != nt) {
			snprintf(err, errlen, "--loss-weights: %d weights for %d losses", nw, nt);
			return -1;
		}
	}
	if (nt == 1 && !weights) { /* a single loss, as before lists */
		o->kind = k[0];
		o->n_terms = 0;
		return 0;
	}
	for (int t = 0; t < nt; t++)
		if (k[t] == LOSS_LBDPO || k[t] == LOSS_BETADPO || k[t] == LOSS_REWARD) {
			snprintf(err, errlen, "--loss: '%s' cannot be in a list%s", kind_names[k[t]],
				 k[t] == LOSS_LBDPO    ? " (use dpo with --learned-beta)"
				 : k[t] == LOSS_REWARD ? " (it trains a reward model, not a policy)"
						       : " (its beta is a batch statistic)");
			return -1;
		}
	o->kind = k[0];
	o->n_terms = nt;
	for (int t = 0; t < nt; t++) {
		o->terms[t] = k[t];
		o->term_w[t] = weights ? w[t] : 1.0;
	}
	return 0;
}

int loss_opts_check(const loss_opts *o, char *err, size_t errlen)
{
	loss_kind k[LOSS_MAX_TERMS];
	double w[LOSS_MAX_TERMS];
	int n = loss_terms(o, k, w), any_beta = 0;
	for (int t = 0; t < n; t++) {
		if (k[t] == LOSS_EXO_PAIR && !(o->label_smoothing > 0)) {
			snprintf(err, errlen, "exo_pair needs --label-smoothing > 0 (as TRL; the EXO paper uses 1e-3)");
			return -1;
		}
		if (o->learned_beta && (k[t] == LOSS_BETADPO || k[t] == LOSS_AOT || k[t] == LOSS_AOT_UNPAIRED)) {
			snprintf(err, errlen, "--learned-beta: %s has no per-pair beta", kind_names[k[t]]);
			return -1;
		}
		any_beta |= loss_has_pair_beta(k[t]);
	}
	if (o->learned_beta && !any_beta) {
		snprintf(err, errlen, "--learned-beta: the loss has no beta");
		return -1;
	}
	return 0;
}

const char *loss_opts_names(const loss_opts *o, char *buf, size_t len)
{
	loss_kind k[LOSS_MAX_TERMS];
	double w[LOSS_MAX_TERMS];
	int n = loss_terms(o, k, w);
	size_t at = 0;
	buf[0] = 0;
	for (int t = 0; t < n && at < len; t++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", t ? "," : "", kind_names[k[t]]);
	return buf;
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
	o->discopop_tau = 0.05;
	o->drdpo_beta_prime = 1.0;
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

/* beta-dpo steps 1–3: fills sel[i] ∈ {0,1}, returns β_b. */
static double bdpo_select(const loss_opts *o, const loss_pair *p, int n, bdpo_state *bs, uint64_t *rng, double *sel)
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
			double u = rng_xs_unif(rng) * tot, c = 0;
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

/* Indices 0..n−1 sorted by x ascending (ties by index: deterministic). */
static void sort_index(int *idx, const double *x, int n)
{
	for (int i = 0; i < n; i++) {
		int j = i, v = i;
		while (j > 0 && x[idx[j - 1]] > x[v]) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
}

/* aot / aot_unpaired: the batch-sorted terms (loss.c header). Adds f·∂ℓ_j
 * to the pairs' gradients, w·ℓ_j to the loss of the pair at a_(j). */
static double aot_term(const loss_opts *o, loss_kind kind, double w, double f, int first, const loss_pair *p, int n,
		       loss_pair_grad *gg)
{
	const double b = o->beta, e = o->label_smoothing;
	double *a = xmalloc(sizeof(double) * 2 * (size_t)n); /* [2n] a then b */
	int *ia = xmalloc(sizeof(int) * 2 * (size_t)n);      /* [2n] sorted indices of a then b */
	double *r = a + n, pref = 0;
	int *ir = ia + n;
	for (int i = 0; i < n; i++) {
		a[i] = kind == LOSS_AOT ? p[i].pc - p[i].pr : p[i].pc - p[i].rc;
		r[i] = kind == LOSS_AOT ? p[i].rc - p[i].rr : p[i].pr - p[i].rr;
		if (first) {
			gg[i].loss = 0;
			gg[i].weight = 1;
		}
	}
	sort_index(ia, a, n);
	sort_index(ir, r, n);
	for (int j = 0; j < n; j++) {
		double z = b * (a[ia[j]] - r[ir[j]]);
		double l = -(1 - e) * log_sigmoid(z) - e * log_sigmoid(-z);
		double dd = b * (-(1 - e) * sigmoid(-z) + e * sigmoid(z));
		gg[ia[j]].d_pc += dd * f;
		gg[kind == LOSS_AOT ? ia[j] : ir[j]].d_pr -= dd * f;
		gg[ia[j]].loss += w * l;
		pref += l * f;
	}
	free(a);
	free(ia);
	return pref;
}

/* drdpo: a[i] = N·softmax_i(−ℓ_i/β′) for i < n and a[n] = L, the batch
 * loss −β′ log mean_i exp(−ℓ_i/β′) (loss.c header); ℓ_i the DPO terms.
 * Log-sum-exp from the largest exponent, so no term overflows. */
static double *drdpo_weights(const loss_opts *o, const loss_pair *p, int n, int learned)
{
	double *a = xmalloc(sizeof(double) * ((size_t)n + 1)); /* [n+1] weights, then L */
	const double bp = o->drdpo_beta_prime;
	double mx = -INFINITY, sum = 0;
	for (int i = 0; i < n; i++) {
		double delta = (p[i].pc - p[i].rc) - (p[i].pr - p[i].rr);
		a[i] = log_sigmoid((learned ? p[i].beta : o->beta) * delta) / bp; /* −ℓ_i/β′ */
		if (a[i] > mx)
			mx = a[i];
	}
	for (int i = 0; i < n; i++)
		sum += exp(a[i] - mx);
	for (int i = 0; i < n; i++)
		a[i] = n * exp(a[i] - mx) / sum;
	a[n] = -bp * (mx + log(sum / n));
	return a;
}

/* One term of the loss: adds f·∂ℓ_i (f = w/N') to gg, w·ℓ_i to gg[i].loss
 * (set on the first term) and returns f·Σℓ_i; *nused: N'. */
static double pref_term(const loss_opts *o, loss_kind kind, double w, int first, const loss_pair *p, int n,
			loss_pair_grad *gg, const double *sel, double beta_b, int learned, int *nused, double *beta_sum)
{
	const double b0 = o->beta;
	int nu = 0;
	for (int i = 0; i < n; i++)
		nu += (sel == NULL || sel[i] > 0) && kind != LOSS_SFT;
	*nused = nu;
	double inv = nu > 0 ? 1.0 / nu : 0.0;
	double f = inv * w; /* = inv for a single loss */
	*beta_sum = 0;
	if (kind == LOSS_AOT || kind == LOSS_AOT_UNPAIRED) {
		for (int i = 0; i < n; i++)
			*beta_sum += b0;
		return aot_term(o, kind, w, f, first, p, n, gg);
	}
	double pref = 0, *dr = kind == LOSS_DRDPO ? drdpo_weights(o, p, n, learned) : NULL;
	for (int i = 0; i < n; i++) {
		const loss_pair *q = &p[i];
		loss_pair_grad *d = &gg[i];
		double delta = (q->pc - q->rc) - (q->pr - q->rr);
		double u = (q->pc - q->rc) / q->nc - (q->pr - q->rr) / q->nr;
		double rw = q->pc - q->rc, rl = q->pr - q->rr; /* ρ_w, ρ_l */
		double l = 0, dpc = 0, dpr = 0, db = 0, wt = 1;
		double b = learned ? q->beta : b0;
		*beta_sum += kind == LOSS_BETADPO ? beta_b : b;
		switch (kind) {
		case LOSS_CDPO: {
			double e = o->label_smoothing, z = b * delta;
			l = -(1 - e) * log_sigmoid(z) - e * log_sigmoid(-z);
			double dz = -(1 - e) * sigmoid(-z) + e * sigmoid(z);
			dpc = dz * b;
			dpr = -dz * b;
			db = dz * delta;
			break;
		}
		case LOSS_LBDPO:
		case LOSS_DPO:
		case LOSS_DRDPO: {
			double z = b * delta, s_ = sigmoid(-z), a = dr ? dr[i] : 1.0;
			l = -log_sigmoid(z);
			dpc = -s_ * b * a;
			dpr = s_ * b * a;
			db = -s_ * delta * a;
			break;
		}
		case LOSS_IPO: {
			double r = u - 1.0 / (2 * b);
			l = r * r;
			dpc = 2 * r / q->nc;
			dpr = -2 * r / q->nr;
			db = r / (b * b);
			break;
		}
		case LOSS_HINGE: {
			double h = 1 - b * delta;
			l = h > 0 ? h : 0;
			dpc = h > 0 ? -b : 0;
			dpr = -dpc;
			db = h > 0 ? -delta : 0;
			break;
		}
		case LOSS_ROBUST: {
			double e = o->label_smoothing, z = b * delta;
			l = (-(1 - e) * log_sigmoid(z) + e * log_sigmoid(-z)) / (1 - 2 * e);
			double dz = (-(1 - e) * sigmoid(-z) - e * sigmoid(z)) / (1 - 2 * e);
			dpc = dz * b;
			dpr = -dz * b;
			db = dz * delta;
			break;
		}
		case LOSS_SIMPO: {
			double e = o->label_smoothing, v = q->pc / q->nc - q->pr / q->nr;
			double z = b * v - o->gamma;
			l = -(1 - e) * log_sigmoid(z) - e * log_sigmoid(-z);
			double dz = -(1 - e) * sigmoid(-z) + e * sigmoid(z);
			dpc = dz * b / q->nc;
			dpr = -dz * b / q->nr;
			db = dz * v;
			break;
		}
		case LOSS_LNDPO: {
			double z = b * u;
			l = -log_sigmoid(z);
			double du = -sigmoid(-z) * b;
			dpc = du / q->nc;
			dpr = -du / q->nr;
			db = -sigmoid(-z) * u;
			break;
		}
		case LOSS_BETADPO: {
			if (sel[i] > 0) {
				double z = beta_b * delta, s_ = sigmoid(-z);
				l = -log_sigmoid(z);
				dpc = -s_ * beta_b;
				dpr = s_ * beta_b;
			} else {
				wt = 0;
			}
			break;
		}
		case LOSS_EXO_PAIR: {
			double e = o->label_smoothing, z = b * delta, qw = sigmoid(z), ql = sigmoid(-z);
			l = qw * (log_sigmoid(z) - log1p(-e)) + ql * (log_sigmoid(-z) - log(e));
			double dz = qw * ql * (z - log1p(-e) + log(e));
			dpc = dz * b;
			dpr = -dz * b;
			db = dz * delta;
			break;
		}
		case LOSS_NCA_PAIR:
		case LOSS_BCO_PAIR:
		case LOSS_APO_ZERO: {
			double zw = b * rw, zl = b * rl, dzw, dzl;
			if (kind == LOSS_NCA_PAIR) {
				l = -log_sigmoid(zw) - 0.5 * log_sigmoid(-zw) - 0.5 * log_sigmoid(-zl);
				dzw = -sigmoid(-zw) + 0.5 * sigmoid(zw);
				dzl = 0.5 * sigmoid(zl);
			} else if (kind == LOSS_BCO_PAIR) {
				l = -log_sigmoid(zw) - log_sigmoid(-zl);
				dzw = -sigmoid(-zw);
				dzl = sigmoid(zl);
			} else {
				l = 1 - sigmoid(zw) + sigmoid(zl);
				dzw = -sigmoid(zw) * sigmoid(-zw);
				dzl = sigmoid(zl) * sigmoid(-zl);
			}
			dpc = dzw * b;
			dpr = dzl * b;
			db = dzw * rw + dzl * rl;
			break;
		}
		case LOSS_SPPO_HARD: {
			double ew = rw - 0.5 / b, el = rl + 0.5 / b;
			l = ew * ew + el * el;
			dpc = 2 * ew;
			dpr = 2 * el;
			db = (rw - rl - 1 / b) / (b * b);
			break;
		}
		case LOSS_APO_DOWN: {
			double zw = b * rw, z = b * delta;
			l = sigmoid(zw) + 1 - sigmoid(z);
			double dzw = sigmoid(zw) * sigmoid(-zw), dz = -sigmoid(z) * sigmoid(-z);
			dpc = b * (dzw + dz);
			dpr = -b * dz;
			db = dzw * rw + dz * delta;
			break;
		}
		case LOSS_DISCOPOP: {
			double z = b * delta, t = o->discopop_tau, m = sigmoid(z / t), ex = exp(-z);
			l = -log_sigmoid(z) * (1 - m) + ex * m;
			double dz = -sigmoid(-z) * (1 - m) - ex * m + (log_sigmoid(z) + ex) * m * sigmoid(-z / t) / t;
			dpc = dz * b;
			dpr = -dz * b;
			db = dz * delta;
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
		default: wt = 0; break;
		}
		if (!learned && kind != LOSS_DPO && kind != LOSS_LBDPO && kind != LOSS_DRDPO && kind != LOSS_CDPO)
			db = 0; /* unused without a learned β: as before lists */
		pref += l * f;
		if (first) { /* assigned, not added: a single loss gives the bits it gave before lists */
			d->weight = wt;
			d->loss = w * l;
			d->d_pc = dpc * f;
			d->d_pr = dpr * f;
			d->d_beta = db * f;
		} else {
			d->weight = fmax(d->weight, wt);
			d->loss += w * l;
			d->d_pc += dpc * f;
			d->d_pr += dpr * f;
			d->d_beta += db * f;
		}
	}
	if (dr) { /* the batch loss is the log-mean-exp, not the mean of ℓ_i */
		pref = w * dr[n];
		free(dr);
	}
	return pref;
}

double loss_batch(const loss_opts *o, const loss_pair *p, int n, loss_pair_grad *g, bdpo_state *bs, uint64_t *rng,
		  loss_stats *st)
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
	const int learned = loss_learned_beta(o);
	double *sel = NULL;
	double beta_b = o->beta;
	if (o->kind == LOSS_BETADPO && o->n_terms == 0) {
		bdpo_state tmp = {0, 0, 0};
		uint64_t r0 = 1;
		sel = xmalloc(sizeof(double) * (size_t)n);
		beta_b = bdpo_select(o, p, n, bs ? bs : &tmp, rng ? rng : &r0, sel);
	}

	/* ---- preference terms: Σ_k w_k · batch mean of term k ---- */
	loss_kind kt[LOSS_MAX_TERMS];
	double wt[LOSS_MAX_TERMS];
	int nt = loss_terms(o, kt, wt);
	double wsft = o->n_terms == 0 && o->kind == LOSS_SFT ? 1.0 : o->sft_weight;
	double beta_sum = 0;
	for (int t = 0; t < nt; t++) {
		int nused;
		if (o->n_terms > 0 && kt[t] == LOSS_SFT)
			wsft += wt[t]; /* TRL's "sft" in a list: the SFT term below */
		s.pref += pref_term(o, kt[t], wt[t], t == 0, p, n, gg, sel, beta_b, learned, &nused, &beta_sum);
		if (nused > s.n_used)
			s.n_used = nused;
	}
	s.beta_used = sel ? beta_b : beta_sum / n;

	/* ---- SFT term: token-mean NLL of the chosen completions ---- */
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
	if (learned) {
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
