/* rlstep.h — lbdpo-step --loss ppo|grpo|rloo: one policy update from one
 * batch of rollouts (lbdpo-sample --logprobs, scored with a "reward" by
 * lbdpo-reward or a rule-based judge), several epochs over mini-batches
 * with the clipped surrogate of libcore/objective/rl.c. */
#ifndef LBDPO_TRAIN_RLSTEP_H
#define LBDPO_TRAIN_RLSTEP_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/refcache.h"
#include "libcore/nn/adamw.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"
#include "libcore/train/samples.h"

typedef enum { RL_PPO = 0, RL_GRPO, RL_RLOO } rl_algo;

/* "ppo", "grpo", "rloo" (rl_algo_names, NULL-terminated) → rl_algo; -1 for
 * anything else. */
extern const char *const rl_algo_names[];
int rl_algo_parse(const char *name);
const char *rl_algo_name(rl_algo a);
/* The rl_algo of a checkpoint that lbdpo-step --loss ppo|grpo|rloo wrote,
 * from its trainer_state.json (state, as loaded; may be NULL): the loss its
 * "options" name; -1 for any other checkpoint. */
int rl_state_algo(const json_t *state);

typedef struct {
	rl_algo algo;
	const char *policy;   /* -m: the policy that sampled the rollouts (HF directory, an earlier
				 call's output, or a LoRA adapter directory) */
	const char *adapter;  /* --adapter: a LoRA adapter on -m, trained on (NULL: none) */
	lora_opts lora;       /* lora.r > 0: train a new adapter on the frozen -m */
	int fresh;            /* new optimizer state even when -m is an earlier call's output */
	const char *ref;      /* --ref: reference model for the KL (NULL: none, KL 0) */
	const char *value;    /* PPO --value-model: a reward-model directory (NULL: from the policy) */
	const char *out;      /* -o: the new policy (PPO: and OUT/value) */
	const char *in;       /* rollouts, "-": stdin */
	const char *metrics;  /* JSON Lines appended (NULL: none) */
	const char *ptx_data; /* token records whose chosen completions are the PPO-ptx data */
	double lr, value_lr, weight_decay, clip;
	sched_kind schedule; /* of the learning rates over the optimizer steps of the whole run */
	long warmup, total_steps;
	double kl_coef;               /* < 0: the algorithm's TRL default */
	double kl_target, kl_horizon; /* adaptive KL (target > 0) */
	double eps, eps_v, vf_coef, gamma, lam;
	double eos_penalty; /* < 0: none */
	double ptx_coef;
	int epochs, mini_batches, G;
	int whiten_rewards, normalize_adv, scale_rewards;
	int agg_seq; /* GRPO loss_type grpo (1) or bnpo (0) */
	unsigned long long seed;
	int quiet;
} rl_opts;

/* Defaults: TRL's PPOConfig, GRPOConfig, RLOOConfig where they exist. */
void rl_opts_default(rl_opts *o);
/* Read the rollouts, update, write the new policy: dies with a one-line
 * message naming the file and line on bad input; writes nothing then.
 * The output is an lbdpo-step checkpoint (checkpoint.h: the policy or its
 * LoRA adapter, AdamW moments and step; PPO: the value model and its
 * moments in OUT/value): a next call from it (-m OUT) continues the
 * optimizer. Under mpirun (dist.h) the ranks split every mini-batch and
 * sum their gradients; rank 0 writes. */
void rl_train(const rl_opts *o);

/* The per-token log-probs under m of each rollout line of in (named name)
 * (its ids and then its eos_id, the tokens lbdpo-step scores), added to the
 * line as o->key (e.g. "ref_token_logps", replaced when there) and written
 * to out_path ("-": standard output; a file is written aside and renamed).
 * The lines pass through otherwise unchanged. Rollouts are scored 32 per
 * forward, in input order, or one each (one_per_forward: a rollout's values
 * then depend on its tokens only). cache (NULL: none) is an
 * refcache_open_tokens cache of m: a forward whose rollouts are all in it is
 * skipped, and every scored rollout is stored (lbdpo-refcache on rollouts). */
typedef struct {
	const char *key;
	int one_per_forward;
	refcache *cache;
	const model_tok *tok;    /* NULL: none; else each line's ids must decode to its "text" (sample_text_check) */
	int ignore_prov;         /* ... or only a warning */
	uint64_t n_lines, n_tok; /* out: rollouts, their tokens */
	uint64_t n_computed, n_cached, tok_computed; /* out: rollouts scored / from the cache, tokens scored */
} rl_logprobs_run;
void rl_rollout_logprobs(model *m, FILE *in, const char *name, const char *out_path, rl_logprobs_run *o);

#endif
