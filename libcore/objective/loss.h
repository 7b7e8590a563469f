/* loss.h — preference losses on per-pair quantities, with analytic gradients.
 *
 * The losses see only per-pair scalars (policy and reference completion
 * log-prob sums, token counts, the pair's β), never the model: lbdpo-step
 * turns dL/d(logp) into model_seq_grad and dL/dβ into the BetaHead backward.
 *
 * Notation (doc/design.md §2.1), for pair i:
 *   pc, pr   log πθ(y_w|x), log πθ(y_l|x)     (sums over completion tokens)
 *   rc, rr   log πref(y_w|x), log πref(y_l|x)
 *   nc, nr   completion token counts
 *   Δ        = (pc − rc) − (pr − rr)
 *   u        = (pc − rc)/nc − (pr − rr)/nr     (length-normalized Δ)
 *   σ(z)     = 1/(1+e^−z);  log σ(z) = −softplus(−z)
 * The batch loss is the mean of the per-pair losses plus the optional SFT
 * term and the β regularizers. Formulas and gradients: loss.c.
 *
 * Convention: β multiplies the margin inside the sigmoid (DPO paper, TRL).
 * A seed that writes σ(Δ/τ) with a temperature τ maps to ours by β = 1/τ.
 */
#ifndef LBDPO_LOSS_H
#define LBDPO_LOSS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	LOSS_LBDPO = 0, /* sigmoid with a learned per-pair β (default) */
	LOSS_DPO,       /* sigmoid, fixed β */
	LOSS_IPO,
	LOSS_HINGE,
	LOSS_ROBUST,  /* label smoothing, cDPO / robust DPO (TRL "robust") */
	LOSS_SIMPO,   /* reference-free, length-normalized, margin γ */
	LOSS_LNDPO,   /* length-normalized DPO (TRL "sigmoid_norm") */
	LOSS_BETADPO, /* Wu et al. 2024: batch-level dynamic β + filtering */
	LOSS_SFT,     /* NLL of the chosen completion */
	/* the rest of TRL's DPOTrainer loss_type list, under TRL's names */
	LOSS_EXO_PAIR,
	LOSS_NCA_PAIR,
	LOSS_BCO_PAIR,
	LOSS_SPPO_HARD,
	LOSS_AOT,          /* sorts across the batch */
	LOSS_AOT_UNPAIRED, /* sorts across the batch */
	LOSS_APO_ZERO,
	LOSS_APO_DOWN,
	LOSS_DISCOPOP,
	LOSS_REWARD, /* reward model (TRL RewardTrainer): pc, pr are the scores r_c, r_r */
	LOSS_CDPO,   /* conservative DPO: label smoothing ε (the assumed flip rate) */
	LOSS_DRDPO,  /* Dr.DPO (Wu et al. 2024): β′ log-mean-exp of the DPO terms over the batch */
	LOSS_N_KINDS
} loss_kind;

/* "lbdpo", "dpo", ... ; "sigmoid" (TRL's name) is dpo; -1 when unknown. */
int loss_kind_parse(const char *name);
/* The names loss_kind_parse accepts, for messages: "lbdpo, dpo (alias sigmoid), ..." */
const char *loss_kind_list(void);
const char *loss_kind_name(loss_kind k);
/* 1 when the loss uses the per-pair β of the BetaHead. */
int loss_uses_learned_beta(loss_kind k);
/* 1 when the loss needs reference log-probs. */
int loss_needs_ref(loss_kind k);
/* 1 when the loss has a β that the β head can drive (--learned-beta):
 * every loss but sft, beta-dpo (β_b is a batch statistic) and aot,
 * aot_unpaired (their sort pairs one pair's policy ratio with another's). */
int loss_has_pair_beta(loss_kind k);

/* Most terms in a loss list (TRL's loss_type list). */
#define LOSS_MAX_TERMS 16

typedef struct {
	loss_kind kind;
	double beta;            /* fixed β (dpo, ipo τ, hinge, robust, simpo, ln-dpo); β0 of beta-dpo */
	double label_smoothing; /* cdpo, robust (and simpo, ...): ε in [0, 0.5) */
	double gamma;           /* simpo target margin γ */
	double sft_weight;      /* RPO: + sft_weight · NLL(chosen), any loss */
	/* TRL's loss_type list with loss_weights: L = Σ_k w_k · (batch mean of
	 * term k). n_terms = 0: the one loss `kind` (weight 1). Otherwise kind
	 * is terms[0] and the list is what counts. */
	int n_terms;
	loss_kind terms[LOSS_MAX_TERMS];
	double term_w[LOSS_MAX_TERMS];
	/* the β head's per-pair β drives every β-loss of the list (lbdpo is
	 * dpo with this); the β regularizers apply whenever it is on */
	int learned_beta;
	double discopop_tau;     /* discopop: temperature of the modulation (0.05) */
	double drdpo_beta_prime; /* drdpo: β′ of the batch log-mean-exp (1) */
	/* beta-dpo (Wu et al. 2024) */
	double bdpo_alpha;    /* a: β = β0 (1 + a (mean M_sel − M0)) */
	double bdpo_rho;      /* fraction of the batch filtered out, in [0,1) */
	double bdpo_momentum; /* moving-average factor of M0 and σ (0.9) */
	/* regularizers on the learned β (lbdpo only) */
	double range_reg, beta_min, beta_max; /* λ1 */
	double group_reg;                     /* λ2 */
	double entropy_reg, entropy_alpha;    /* λ3, α */
	/* Data parallelism (engine.c): the token count the SFT mean divides by,
	 * 0 = the batch's own Σ nc. A worker holding n of a batch's B pairs
	 * passes (Σ nc over all B pairs)·n/B, so that its loss, scaled by n/B,
	 * is its exact share of the whole batch's SFT term. */
	double sft_tokens;
	double center_coef; /* reward: + center_coef · mean (r_c + r_r)² (TRL center_rewards_coefficient) */
} loss_opts;

void loss_opts_default(loss_opts *o);

/* Sets the loss from --loss and --loss-weights (weights may be NULL): a
 * single name without weights is that loss (n_terms = 0, as before lists);
 * a comma list "a,b,c" (and/or weights "w1,w2,w3", default 1 each) is a
 * list. Returns 0, or -1 with a one-line message in err. */
int loss_opts_set(loss_opts *o, const char *names, const char *weights, char *err, size_t errlen);
/* Checks the loss against the other options (learned β, label smoothing of
 * exo_pair). Returns 0, or -1 with a one-line message in err. */
int loss_opts_check(const loss_opts *o, char *err, size_t errlen);
/* "a,b,c" of a list, the name of a single loss; buf of 512 bytes. */
const char *loss_opts_names(const loss_opts *o, char *buf, size_t len);
/* The per-pair β comes from the β head (lbdpo, or --learned-beta). */
int loss_learned_beta(const loss_opts *o);
/* Some term needs the reference log-probs / the rejected completion. */
int loss_opts_needs_ref(const loss_opts *o);
int loss_opts_needs_rejected(const loss_opts *o);
/* 1 when a pair's loss term or gradient depends on the other pairs of the
 * batch beyond the 1/N mean: beta-dpo (the batch's margin mean and std, the
 * sampled selection, β_b), aot and aot_unpaired (the sorts), drdpo (the
 * softmax weights over the batch) and the learned
 * β's group regularizer (per-group mean β).
 * A data-parallel worker then needs every worker's per-pair scalars before
 * the loss (engine.h, train_engine_set_worker). */
int loss_needs_whole_batch(const loss_opts *o);

typedef struct {
	double pc, pr; /* policy completion log-prob sums */
	double rc, rr; /* reference sums */
	int nc, nr;    /* token counts (>= 1) */
	double beta;   /* per-pair β (lbdpo); ignored by the fixed-β losses */
	int group;     /* small group index, -1 = no group tag */
	double h_ref;  /* reference prompt entropy (entropy regularizer) */
	double margin; /* reward: the record's margin (0 when absent) */
} loss_pair;

typedef struct {
	double d_pc, d_pr; /* dL/dpc, dL/dpr of the batch loss L */
	double d_beta;     /* dL/dβ_i (learned β: the β-losses + regularizers) */
	double weight;     /* 1 if the pair entered the loss (beta-dpo filters), else 0 */
	double loss;       /* the pair's preference loss term (before the 1/N mean) */
} loss_pair_grad;

/* Moving statistics of beta-dpo, carried between steps (checkpointed).
 * The only loss state: TRL 1.x's bco_pair (DPOTrainer) keeps no running
 * mean of the rewards; it is −log σ(β ρ_w) − log σ(−β ρ_l) alone. */
typedef struct {
	double m0, sd; /* moving mean and std of the margins M_i = Δ_i */
	int64_t n_updates;
} bdpo_state;

typedef struct {
	double loss;                              /* total L */
	double pref;                              /* mean preference term */
	double sft;                               /* NLL term (unweighted), token mean */
	double reg_range, reg_group, reg_entropy; /* weighted regularizer terms */
	double beta_used;                         /* beta-dpo's β of this batch (else mean β) */
	int n_used;                               /* pairs that entered the preference term */
} loss_stats;

/* Batch loss over n pairs; fills g[n] (may be NULL) and st (may be NULL).
 * bs: beta-dpo state (updated); rng: xorshift state for beta-dpo sampling.
 * Both may be NULL for the other losses. Returns L. */
double loss_batch(const loss_opts *o, const loss_pair *p, int n, loss_pair_grad *g, bdpo_state *bs, uint64_t *rng,
		  loss_stats *st);

/* Numerically stable helpers (exposed for tests). */
double log_sigmoid(double z);
double sigmoid(double z);

#endif
