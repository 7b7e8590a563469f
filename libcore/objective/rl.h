/* rl.h — PPO, GRPO and RLOO on per-token arrays, with analytic gradients.
 *
 * Like loss.h, the functions never see the model: a batch of B sampled
 * completions is a row-major B×T array per quantity (token log-probs of the
 * policy lp, of the sampling policy lp_old, of the reference lp_ref, values
 * v, advantages, ...), row i real for t < len[i] (through its EOS, or the
 * last token of a sample that ran out of room) and padding after. Padding
 * entries are neither read nor counted; outputs there are 0. lbdpo-step
 * turns ∂loss/∂lp into per-token weights of logit_grad_rows and ∂loss/∂v
 * into the value head's backward. Formulas: rl.c. Checked against the
 * torch reference tests/ref/make_rl_fixtures.py (tests/unit/test_rl.c).
 */
#ifndef LBDPO_RL_H
#define LBDPO_RL_H

typedef enum {
	RL_AGG_TOKEN = 0, /* mean over every real token of the batch (PPO, TRL GRPO "bnpo") */
	RL_AGG_SEQ,       /* mean over sequences of each one's token mean (TRL GRPO "grpo") */
} rl_agg;

typedef struct {
	double eps_low, eps_high; /* ratio clip [1 − eps_low, 1 + eps_high] */
	double beta;              /* GRPO: β·k3(π‖π_ref) per token in the loss; 0: none */
	int seq_level;            /* RLOO: one ratio per sequence, exp(Σ_t lp − Σ_t lp_old), adv[i·T] */
	rl_agg agg;               /* token-level losses only */
} rl_policy_opts;

typedef struct {
	double loss;     /* the policy loss (TRL loss/policy) */
	double clipfrac; /* policy/clipfrac: share of tokens (sequences) in the clipped region */
	double approxkl; /* policy/approxkl: ½·mean((lp − lp_old)²) over real tokens */
	double ratio;    /* val/ratio: mean ratio */
	double kl;       /* GRPO β > 0: mean k3 KL to the reference over real tokens */
	double ntok;     /* real tokens */
} rl_policy_stats;

typedef struct {
	double loss;     /* ½·masked mean of the clipped squared error (val/vf_loss) */
	double clipfrac; /* val/clipfrac */
} rl_value_stats;

/* PPO per-token rewards: rew[i,t] = −kl_coef·(lp_old − lp_ref) for t < len[i],
 * plus score[i] at t = len[i] − 1. nonscore (may be NULL) gets the KL part
 * alone. */
void rl_token_rewards(double *rew, double *nonscore, const double *lp_old, const double *lp_ref, const double *score,
		      const int *len, int B, int T, double kl_coef);
/* Subtract penalty from the score of every sample without EOS (TRL missing_eos_penalty). */
void rl_eos_penalty(double *score, const int *has_eos, int B, double penalty);
/* TRL masked_whiten over the real tokens: (x − mean)/sqrt(var + 1e-8), var
 * with Bessel's correction; shift_mean = 0 adds the mean back. Padding → 0.
 * Fewer than two real tokens: x unchanged. */
void rl_whiten(double *x, const int *len, int B, int T, int shift_mean);
/* GAE: δ_t = r_t + γ·v_{t+1} − v_t (v_len = 0), A_t = δ_t + γλ·A_{t+1};
 * returns R_t = A_t + v_t. adv, ret: B×T (unwhitened). */
void rl_gae(double *adv, double *ret, const double *rew, const double *val, const int *len, int B, int T, double gamma,
	    double lam);
/* Σ_t (lp_old − lp_ref) of each sequence (the sequence KL estimate). */
void rl_seq_kl(double *kl, const double *lp_old, const double *lp_ref, const int *len, int B, int T);
/* GRPO: (r − mean_group)/(std_group + 1e-4), groups of G consecutive samples,
 * std with Bessel's correction; scale = 0: r − mean only. */
void rl_grpo_advantages(double *adv, const double *r, int n, int G, int scale);
/* RLOO: r − mean of the other G − 1 samples of the group; normalize:
 * then (A − mean)/(std + 1e-4) over the whole batch. */
void rl_rloo_advantages(double *adv, const double *r, int n, int G, int normalize);
/* Clipped surrogate −min(ρA, clip(ρ)A) (+ β·k3), aggregated per o->agg.
 * adv: per token (B×T); sequence level reads adv[i·T]. g_lp (may be NULL)
 * gets ∂loss/∂lp (B×T). lp_ref only when o->beta > 0. */
double rl_policy_loss(double *g_lp, rl_policy_stats *st, const double *lp, const double *lp_old, const double *lp_ref,
		      const double *adv, const int *len, int B, int T, const rl_policy_opts *o);
/* PPO clipped value loss ½·masked_mean(max((v − R)², (clip(v, v_old ± clip) − R)²));
 * g_v (may be NULL) gets ∂loss/∂v. */
double rl_value_loss(double *g_v, rl_value_stats *st, const double *v, const double *v_old, const double *ret,
		     const int *len, int B, int T, double clip);
/* Entropy of softmax(z) of one row of V logits; dz (may be NULL) gets ∂H/∂z. */
double rl_entropy(double *dz, const float *z, int V);
/* TRL AdaptiveKLController.update: coef·(1 + clip(kl/target − 1, ±0.2)·n_steps/horizon). */
double rl_kl_adapt(double coef, double kl, double target, double horizon, double n_steps);

#endif
