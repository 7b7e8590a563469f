/* train.h — what lbdpo-step, lbdpo-beta and lbdpo-eval share: cached
 * preference records in memory, checkpoints (doc/design.md §4.2), and scoring a batch
 * of pairs with the policy plus the β model.
 *
 * A checkpoint is a directory:
 *   config.json, model.safetensors   the policy (model_save_hf; HF-loadable);
 *                                    config.json carried from the input model
 *                                    (model_carry_config)
 *   beta_head.safetensors            "log_w", head tensors; metadata: head
 *                                    kind, eps, hidden width, pool, ppl-from
 *   optimizer.safetensors            AdamW moments "policy.m", "policy.v",
 *                                    "beta.m", "beta.v"; f32 master weights
 *                                    "policy.w" when the policy is f16/bf16
 *   tokenizer files, generation_config.json  copied from the model the run
 *                                    started from (model_copy_assets)
 *   trainer_state.json               step, epoch, data position, RNG state,
 *                                    beta-dpo moving statistics, options
 *   .lbdpo-checkpoint                marker: lbdpo wrote this directory
 * written into "<dir>.tmp.<pid>.XXXXXX" and renamed into place; what else
 * the old directory held (a user's files: eval results, plots) is carried
 * into the new one, lbdpo's own names never.
 */
#ifndef LBDPO_TRAIN_H
#define LBDPO_TRAIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "libcore/objective/betahead.h"
#include "libcore/objective/loss.h"
#include "libcore/nn/model.h"

/* ---- provenance: what made a stream's records ----
 * From the header: kind, tokenizer.sha256, tokenizer.vocab_size and
 * reference.fingerprint ("" / 0 when the header names none). A checkpoint
 * remembers the provenance of the records it was trained on, and every
 * program that combines a checkpoint with records compares the two: a
 * mismatch is an error, never a silent mix. */
typedef struct {
	char kind[16];
	char tok_sha[65];
	char ref_fp[65];
	int64_t tok_vocab;
} provenance;

struct rs_reader;
/* Read and validate r's header: hashes must be 64 hex digits, vocab_size in
 * [1, model_vocab]. Dies naming the stream. */
void prov_read(struct rs_reader *r, int model_vocab, provenance *p);

/* ---- records ---- */
typedef struct {
	uint32_t *prompt, *chosen, *rejected; /* token ids */
	int np, nc, nr;
	int has_ref;
	double ref_c, ref_r;  /* ref_chosen_logp, ref_rejected_logp */
	double ref_plogp;     /* ref_prompt_logp (mean) */
	double ref_entropy;   /* ref_prompt_entropy */
	int has_plogp, has_entropy; /* the two keys above were present */
	double margin;        /* reward margin (--loss reward; 0 when absent) */
	int group;            /* index into pref_set.groups, -1 = none */
	char *id;             /* NULL if absent */
	uint64_t index;       /* record index in the stream (1 = first) */
	uint64_t offset;      /* byte offset of the record in the stream */
} pref_rec;

typedef struct {
	pref_rec *r;
	int n;
	char **groups;
	int n_groups;
	char *name; /* stream name for messages */
	provenance prov;
} pref_set;

/* Read every record of a stream. need_ref: the reference keys are required
 * and the stream must be of kind "ref" (else "tokens" or "ref"). vocab:
 * token ids must be < vocab and < the header's tokenizer vocab_size (0 =
 * unchecked). Every sequence is non-empty. Dies naming the stream, record
 * and byte offset on any problem. */
pref_set *pref_load(const char *path, int need_ref, uint32_t vocab);
/* Die (naming stream, record, byte offset) if a record's prompt + longer
 * completion exceeds max_pos positions, the model's context (every arch). */
void pref_check_context(const pref_set *s, int max_pos);
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
	int has_prov; /* prov is known (trained on records with this provenance) */
	provenance prov;
	json_t *state; /* trainer_state.json as loaded (NULL if fresh) */
	char *src;      /* the path the policy was loaded from: its tokenizer files and
			   generation_config.json are copied into every save */
	int save_dtype; /* st_dtype the policy is saved in; -1 = the one it came in */
	json_t *best;   /* lbdpo-step --save-best: {"metric", "mode", "value", "step"}, saved as
			   "best" in trainer_state.json when set (owned; NULL: none) */
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
	int reward;          /* a plain causal LM becomes a reward model (model_reward_from) */
	int master;          /* resuming: the policy from the f32 master weights (lbdpo-step
				continuing training), else from model.safetensors as shipped */
} ckpt_opts;
void ckpt_opts_default(ckpt_opts *o); /* linear head, K 64, eps 0.1, last, policy, w 1, seed 1 */

/* Is dir a checkpoint (has trainer_state.json)? */
int ckpt_is(const char *path);
/* Load a model path or a checkpoint. With o->fresh != 0 (or a plain model)
 * the head is made from o, and the optimizer state is zero; otherwise
 * everything comes from the checkpoint. The policy is model.safetensors as
 * stored (bf16-rounded in a bf16 checkpoint), what transformers and every
 * scoring program see; o->master (resuming only) takes the f32 master
 * weights instead. */
ckpt *ckpt_load(const char *path, const ckpt_opts *o);
/* Die unless dir is absent or a checkpoint lbdpo wrote (has the marker
 * file): --output never replaces anything else. */
void ckpt_check_out(const char *dir);
/* Write the checkpoint atomically into dir; options is stored as "options"
 * in trainer_state.json (borrowed). Entries of an existing dir that are not
 * lbdpo's own files are linked into the new checkpoint before the swap. */
void ckpt_save(const ckpt *c, const char *dir, json_t *options);
/* A checkpoint whose policy is saved in f16/bf16 keeps the f32 master weights
 * in optimizer.safetensors ("policy.w"); read them into m when present.
 * Returns 1 when read, 0 when dir has none. */
int ckpt_master_weights(model *m, const char *dir);
void ckpt_free(ckpt *c);
/* The provenance rule (lbdpo(7) PROVENANCE), the one check every program
 * runs before it uses records (or a tokenizer) with a model. What the records
 * say (p, from their header; stream names them) must agree with:
 *   - the tokenizer the model ships: tokenizer.json or tokenizer.model in
 *     the directory model_path (NULL or a llama2.c file: nothing to compare);
 *   - c (may be NULL): the provenance a checkpoint remembers: tokenizer
 *     sha256, vocab_size and (when need_ref or the stream names one) the
 *     reference fingerprint;
 *   - ref_fp (may be NULL): the fingerprint the records' reference must have
 *     (lbdpo-step starting a run: the model it starts from).
 * A side that names nothing ("" / 0) constrains nothing. A mismatch dies with
 * one line naming both sides; override (--ignore-provenance): warns instead. */
void prov_check(const provenance *p, const char *stream, const char *model_path, const ckpt *c, int need_ref,
		const char *ref_fp, int override);
/* The checkpoint about to be written was trained on records of provenance p. */
void ckpt_adopt_prov(ckpt *c, const provenance *p);

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

/* ---- held-out scoring (lbdpo-eval, lbdpo-step --eval-input) ---- */
/* One pair's results. nc, nr: completion token counts. */
typedef struct {
	double loss, beta, ppl, delta, pc, pr, rc, rr, nc, nr;
	int group;
} pair_res;

/* The held-out loss of a run trained with run: its kind or loss list with
 * weights, learned β or not, β, label smoothing, γ, discopop τ and SFT
 * weight; beta-dpo is dpo at β0 (no batch calibration held out); no
 * regularizers. */
void eval_loss_opts(loss_opts *lo, const loss_opts *run);
/* Score data's n records in batches of bs (b: batch_new(bs, ...)) with c
 * and lo: per pair the loss term (loss_batch of the pair alone: preference
 * + weighted SFT term), β, PPL, log-probs. pm (may be NULL) shows progress. */
void score_pref_set(const ckpt *c, model_ws *ws, batch_buf *b, const pref_set *data, const loss_opts *lo, int bs,
		   pair_res *res, progress_meter *pm);
/* Implicit rewards of one pair. simpo has no reference: TRL's CPO trainer
 * logs β × the average log-prob, rewards = β·pc/nc, β·pr/nr; every other
 * loss the DPO reward β(log πθ − log πref). */
void pair_rewards(const pair_res *q, int simpo, double *c, double *j);
/* Means over the pairs of group g (g = -2: all); the lbdpo-eval summary
 * and lbdpo-step's eval/ metrics. Values are 0 when n = 0. */
typedef struct {
	int n;
	double loss, acc, rc, rr, margin, lc, lr, dc, dr, bmean, bstd, bmin, bmax, ppl;
} res_summary;
void pair_summary(res_summary *s, const pair_res *r, int n, int g, int simpo);

/* mean of n doubles (0 when n = 0) */
double mean_d(const double *x, int n);

#endif
