/* train.h — what lbdpo-step, lbdpo-beta and lbdpo-eval share: cached
 * preference records in memory, checkpoints (doc/design.md §4.2), and scoring a batch
 * of pairs with the policy plus the β model.
 *
 * A checkpoint is a directory:
 *   config.json, model.safetensors   the policy (model_save_hf; HF-loadable)
 *   beta_head.safetensors            "log_w", head tensors; metadata: head
 *                                    kind, eps, hidden width, pool, ppl-from
 *   optimizer.safetensors            AdamW moments "policy.m", "policy.v",
 *                                    "beta.m", "beta.v"
 *   trainer_state.json               step, epoch, data position, RNG state,
 *                                    beta-dpo moving statistics, options
 * written into "<dir>.tmp.<pid>" and renamed into place.
 */
#ifndef LBDPO_TRAIN_H
#define LBDPO_TRAIN_H

#include <jansson.h>
#include <stdint.h>

#include "betahead.h"
#include "loss.h"
#include "model.h"

/* ---- records ---- */
typedef struct {
	uint32_t *prompt, *chosen, *rejected; /* token ids */
	int np, nc, nr;
	int has_ref;
	double ref_c, ref_r;  /* ref_chosen_logp, ref_rejected_logp */
	double ref_plogp;     /* ref_prompt_logp (mean) */
	double ref_entropy;   /* ref_prompt_entropy */
	int has_plogp, has_entropy; /* the two keys above were present */
	int group;            /* index into pref_set.groups, -1 = none */
	char *id;             /* NULL if absent */
	uint64_t index;       /* record index in the stream (1 = first) */
} pref_rec;

typedef struct {
	pref_rec *r;
	int n;
	char **groups;
	int n_groups;
	char *name; /* stream name for messages */
} pref_set;

/* Read every record of a stream. need_ref: the reference keys are required.
 * vocab: token ids must be < vocab (0 = unchecked). Dies naming the stream,
 * record and byte offset on any problem. */
pref_set *pref_load(const char *path, int need_ref, uint32_t vocab);
void pref_free(pref_set *s);

/* ---- the β model's settings ---- */
typedef enum { POOL_LAST = 0, POOL_MEAN = 1 } pool_kind;
typedef enum { PPL_POLICY = 0, PPL_REF = 1 } ppl_source;
typedef enum { BGRAD_FULL = 0, BGRAD_HEAD = 1, BGRAD_NONE = 2 } beta_grad_mode;
const char *pool_kind_name(pool_kind k);       /* "last", "mean" */
int pool_kind_parse(const char *s);            /* -1 if unknown */
const char *ppl_source_name(ppl_source k);     /* "policy", "ref" */
int ppl_source_parse(const char *s);
const char *beta_grad_name(beta_grad_mode k);  /* "full", "head", "none" */
int beta_grad_parse(const char *s);

/* ---- checkpoints ---- */
typedef struct {
	model *m;
	betahead *bh;
	pool_kind pool;
	ppl_source ppl_from;
	/* optimizer moments, [n_params] / [bh->n_params]; zero when fresh */
	float *pm, *pv, *hm, *hv;
	long step;  /* optimizer steps done */
	long epoch; /* data position: epoch and index in its permutation */
	long pos;
	uint64_t rng; /* beta-dpo sampling */
	bdpo_state bs;
	int resumed;  /* loaded from a checkpoint with trainer state */
	json_t *state; /* trainer_state.json as loaded (NULL if fresh) */
} ckpt;

/* How ckpt_load makes a fresh β model (a plain model, or fresh != 0). */
typedef struct {
	int fresh;           /* treat a checkpoint as a model only (new head, step 0) */
	head_kind head;      /* linear | mlp */
	int head_hidden;     /* K, the mlp hidden width */
	double eps;          /* f = 1 + eps·tanh(NN(h)), in (0,1) */
	pool_kind pool;      /* which hidden state is h */
	ppl_source ppl_from; /* model giving PPL(x) */
	double w0;           /* initial w */
	uint64_t seed;       /* head init and beta-dpo sampling */
} ckpt_opts;
void ckpt_opts_default(ckpt_opts *o); /* linear head, K 64, eps 0.1, last, policy, w 1, seed 1 */

/* Is dir a checkpoint (has trainer_state.json)? */
int ckpt_is(const char *path);
/* Load a model path or a checkpoint. With o->fresh != 0 (or a plain model)
 * the head is made from o, and the optimizer state is zero; otherwise
 * everything comes from the checkpoint. */
ckpt *ckpt_load(const char *path, const ckpt_opts *o);
/* Write the checkpoint atomically into dir; options is stored as "options"
 * in trainer_state.json (borrowed). */
void ckpt_save(const ckpt *c, const char *dir, json_t *options);
void ckpt_free(ckpt *c);

/* ---- scoring a batch of pairs ---- */
typedef struct {
	int B, C;
	model_seq *seqs;     /* [B] */
	model_scores *sc;    /* [B] */
	model_seq_grad *sg;  /* [B] */
	float *h;            /* [B×C] pooled hidden state */
	float *act;          /* [B×K] head activations */
	double *m;           /* [B] mean prompt log-prob fed to PPL */
	beta_parts *parts;   /* [B] */
	double *dbeta, *dm;  /* [B] */
	float *dh;           /* [B×C] */
	loss_pair *lp;       /* [B] */
	loss_pair_grad *lg;  /* [B] */
} batch_buf;

batch_buf *batch_new(int B, int C, int K);
void batch_free(batch_buf *b);

/* What batch_forward computes. */
typedef struct {
	int n_comp;        /* 2: chosen and rejected; 1: chosen only (sft) */
	int train;         /* keep what model_backward needs */
	int need_head;     /* run the β model (lp.beta is its β) */
	double fixed_beta; /* lp.beta when !need_head */
} batch_opts;

/* Forward of the policy and the β model over recs[0..B-1]: fills sc, h, m,
 * parts and lp (with the per-pair β). */
void batch_forward(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B, const batch_opts *o);

/* How train_microbatch runs. */
typedef struct {
	const loss_opts *loss;
	beta_grad_mode beta_grad;
	int policy_trained; /* backward into G */
	double scale;       /* the backward is of scale·L (1/accumulation) */
	bdpo_state *bdpo;   /* beta-dpo moving statistics (may be NULL) */
	uint64_t *rng;      /* beta-dpo sampling state (may be NULL) */
} microbatch_opts;

/* One micro-batch of training: forward, loss, and the backward of
 * scale·L into G [n_params] (backend memory; policy, when policy_trained)
 * and HG [head n_params] (host; when the loss learns β and beta_grad !=
 * none). The β gradient paths (doc/design.md §2):
 *   full: dL/dβ reaches the head, log w, and the policy through PPL (when
 *         PPL comes from the policy) and through h
 *   head: dL/dβ reaches the head and log w only
 *   none: β is a constant (no gradient anywhere through it)
 * Returns L (unscaled); st (may be NULL) gets the loss statistics. */
double train_microbatch(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B,
			const microbatch_opts *o, float *G, float *HG, loss_stats *st);

/* mean of n doubles (0 when n = 0) */
double mean_d(const double *x, int n);

#endif
