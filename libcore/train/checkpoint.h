/* checkpoint.h — a training run on disk: the policy, the β model, AdamW
 * state and where the data stood, loaded and saved atomically; the β
 * model's settings; the provenance rule (prov_check).
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
#ifndef LBDPO_TRAIN_CHECKPOINT_H
#define LBDPO_TRAIN_CHECKPOINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"
#include "libcore/objective/betahead.h"
#include "libcore/objective/loss.h"
#include "libcore/train/data.h"

/* ---- the β model's settings ---- */
typedef enum { POOL_LAST = 0, POOL_MEAN = 1 } pool_kind;
typedef enum { PPL_POLICY = 0, PPL_REF = 1 } ppl_source;
typedef enum { BGRAD_FULL = 0, BGRAD_HEAD = 1, BGRAD_NONE = 2 } beta_grad_mode;
const char *pool_kind_name(pool_kind k); /* "last", "mean" */
/* by pool_kind, ppl_source, beta_grad_mode; NULL-terminated (option rows) */
extern const char *const pool_names[], *const ppl_names[], *const bgrad_names[];
int pool_kind_parse(const char *s);        /* -1 if unknown */
const char *ppl_source_name(ppl_source k); /* "policy", "ref" */
int ppl_source_parse(const char *s);
const char *beta_grad_name(beta_grad_mode k); /* "full", "head", "none" */
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
	json_t *state;  /* trainer_state.json as loaded (NULL if fresh) */
	char *src;      /* the path the policy was loaded from: its tokenizer files and
			   generation_config.json are copied into every save */
	int save_dtype; /* st_dtype the policy is saved in; -1 = the one it came in */
	json_t *best;   /* lbdpo-step --save-best: {"metric", "mode", "value", "step"}, saved as
			   "best" in trainer_state.json when set (owned; NULL: none) */
	/* LoRA: the adapter trained (the policy is base + adapter, the base
	 * frozen); pm/pv are the adapter's moments. A LoRA checkpoint holds
	 * the adapter files instead of the model's, and remembers the base's
	 * fingerprint (trainer_state.json "lora_base"). */
	lora *lo;
	char base_fp[65];
	char *base_owned;
	/* more files of the directory ckpt_save writes (lbdpo-step --loss ppo's
	 * value model, the RL state): written into the temporary directory
	 * before it is renamed into place (NULL: none) */
	void (*save_extra)(void *arg, const char *tmp);
	void *save_extra_arg;
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
	const char *adapter; /* --adapter DIR: a LoRA adapter on the model (a PEFT adapter, or
				an lbdpo LoRA checkpoint whose training state is then resumed) */
	lora_opts lora;      /* lora.r > 0: train a new adapter (PEFT's init) on the frozen model */
	int frozen;          /* the model is only scored (lbdpo-eval, lbdpo-beta): its weights may stay 16-bit */
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

#endif
