/* batch.h — scoring a batch of pairs with the policy and the β model, and
 * one micro-batch of training (forward, loss, backward). */
#ifndef LBDPO_TRAIN_BATCH_H
#define LBDPO_TRAIN_BATCH_H

#include "libcore/train/checkpoint.h"

/* ---- scoring a batch of pairs ---- */
typedef struct {
	int B, C;
	model_seq *seqs;    /* [B] */
	model_scores *sc;   /* [B] */
	model_seq_grad *sg; /* [B] */
	float *h;           /* [B×C] pooled hidden state */
	float *act;         /* [B×K] head activations */
	double *m;          /* [B] mean prompt log-prob fed to PPL */
	beta_parts *parts;  /* [B] */
	double *dbeta, *dm; /* [B] */
	float *dh;          /* [B×C] */
	loss_pair *lp;      /* [B] */
	loss_pair_grad *lg; /* [B] */
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
	/* Data parallelism for a loss that needs the whole batch
	 * (loss_needs_whole_batch): this worker's B pairs are slots
	 * slot[0..B-1] of a micro-batch of n_all pairs (B may be 0). share
	 * must replace x[n] by its sums over workers (an allreduce); every
	 * worker calls it once per micro-batch. NULL: the loss is over the B
	 * pairs alone. */
	int n_all;
	const int *slot;
	void (*share)(void *ctx, double *x, size_t n);
	void *share_ctx;
} microbatch_opts;

/* One micro-batch of training: forward, loss, and the backward of
 * scale·L into G [n_params] (backend memory; policy, when policy_trained)
 * and HG [head n_params] (host; when the loss learns β and beta_grad !=
 * none). The β gradient paths (doc/design.md §2):
 *   full: dL/dβ reaches the head, log w, and the policy through PPL (when
 *         PPL comes from the policy) and through h
 *   head: dL/dβ reaches the head and log w only
 *   none: β is a constant (no gradient anywhere through it)
 * With o->share, the loss (and L, st) is over the whole micro-batch of
 * o->n_all pairs, every worker's per-pair scalars in slot order, so it is
 * the one-worker loss; this worker backpropagates its own pairs' terms.
 * Returns L (unscaled); st (may be NULL) gets the loss statistics. */
double train_microbatch(const ckpt *c, model_ws *ws, batch_buf *b, pref_rec *const *recs, int B,
			const microbatch_opts *o, float *G, float *HG, loss_stats *st);

#endif
