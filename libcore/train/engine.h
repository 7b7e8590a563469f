/* engine.h — the training engine: one optimizer step of (LB-)DPO over
 * cached preference records (doc/design.md §5).
 *
 * train_step() = grad_accum micro-batches (forward, loss, backward into
 * the accumulated gradients), the reduce point where data-parallel workers
 * combine gradients, the finite check, global-norm clipping, the learning
 * rate schedule, AdamW on every policy tensor and on the β model, and the
 * step's metric sums. lbdpo-step and bench/step_bench.c both run it.
 *
 * Policy gradients, weights and moments live in the model's backend
 * (libcore/nn/backend.h); the β model and its gradient stay on the host.
 */
#ifndef LBDPO_ENGINE_H
#define LBDPO_ENGINE_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "libcore/nn/adamw.h"
#include "libcore/train/eval.h"

/* Everything that shapes a training run; recorded as "options" in the
 * checkpoint's trainer_state.json (train_opts_to_json). */
typedef struct {
	const char *init; /* the model or checkpoint trained from */
	ckpt_opts ck;     /* the β model when made fresh; pool and ppl_from as used */
	loss_opts loss;   /* loss kind, fixed β, regularizers */
	int batch_size;   /* pairs per micro-batch */
	int grad_accum;   /* micro-batches per optimizer step */
	long total_steps; /* schedule length */
	long warmup;
	sched_kind schedule;
	double lr, beta_lr;  /* policy, β model */
	double weight_decay; /* policy, 2-D tensors only */
	double beta_wd;      /* β head, not on log w */
	double clip;         /* global gradient norm, 0 = off */
	beta_grad_mode beta_grad;
	int freeze_policy; /* train only the β model */
	double beta_init;  /* target mean β of the first batch (<= 0: loss.beta) */
	double w_init;     /* start from w = w_init instead (<= 0: off) */
	long n_records;    /* size of the training set (recorded only) */
	int grad_ckpt;     /* --gradient-checkpointing (not recorded: results are bit-identical) */
} train_opts;

/* lbdpo-step's defaults (man lbdpo-step(1)). */
void train_opts_default(train_opts *o);
/* Permutation of [0, n) for an epoch: Fisher–Yates with splitmix64 seeded by
 * (seed, epoch), so any data position can be recomputed on resume. */
void epoch_perm(int *perm, int n, uint64_t seed, long epoch);
/* To JSON, keys in a fixed order; the caller owns the object. */
json_t *train_opts_to_json(const train_opts *o);
/* Back from JSON: every key present overrides o (strings are borrowed from
 * j). Returns 0, or -1 naming the first bad key in *bad. */
int train_opts_from_json(train_opts *o, const json_t *j, const char **bad);

/* The reduce point: called once per step after the micro-batches. With
 * nc > 0: G (backend memory [n]) and HG (host [hn]) are this worker's share
 * of the step's gradient (its pairs' terms of the mean over the whole
 * micro-batch, see train_engine_set_worker) and counters[nc] its per-step
 * sums; a data-parallel build replaces G, HG and counters by their sums
 * over workers (allreduce). With nc < 0 (G and HG NULL): replace
 * counters[-nc] by their minimum over workers. With n = hn = 0 (G and HG
 * NULL) and nc > 0: sum counters[nc] alone; the engine shares each
 * micro-batch's per-pair scalars this way before a loss that needs the whole
 * batch (loss_needs_whole_batch). NULL: one worker, nothing to do. */
typedef void (*grad_reduce_fn)(void *ctx, float *G, size_t n, float *HG, size_t hn, double *counters, int nc);

/* One step's metrics (TRL names in train_metrics_kv). */
typedef struct {
	long step;
	double epoch; /* epochs done, fractional */
	double loss, rewards_chosen, rewards_rejected, accuracy, margin, logps_chosen, logps_rejected;
	double grad_norm, lr, beta_lr, beta_mean, beta_std, beta_min, beta_max, beta_w, ppl_prompt;
	double tokens, seconds;
	double seconds_update;          /* of seconds: reduce, norm, clip, AdamW */
	int nonfinite;                  /* 0, or 1 loss / 2 gradient: the step was not applied */
	int reward;                     /* --loss reward: rewards/chosen, rewards/rejected are the scores r_c, r_r;
			  reward/mean and reward/std are written */
	double reward_mean, reward_std; /* over both sides' scores */
} train_metrics;

typedef struct train_engine train_engine;

/* Set up training of ck on data with o (borrowed; must outlive the
 * engine). Checks the records against what the loss needs and, for a fresh
 * learned β without --w-init, sets w so that the first batch's mean β is
 * beta_init (the batch is peeked; the data position does not move). */
train_engine *train_engine_new(ckpt *ck, const pref_set *data, const train_opts *o);
void train_engine_set_reduce(train_engine *e, grad_reduce_fn fn, void *ctx);
/* Data parallelism: this engine is worker rank of nranks (default 0 of 1).
 * --batch-size and --grad-accum keep their global meaning: every worker
 * walks the same data order and computes the slots i ≡ rank (mod nranks)
 * of each micro-batch, scaled so that the reduce's sum is the one-worker
 * step. The SFT/RPO token mean divides by the whole micro-batch's token
 * count, known to every worker from the records (loss_opts.sft_tokens).
 * beta-dpo (margin statistics, selection and β of the batch) and
 * --group-reg (group means over the batch) need every pair: each
 * micro-batch's per-pair scalars (a few doubles a pair) are summed over
 * workers at the loss through the reduce hook, every worker computes the
 * one-worker loss over the whole micro-batch and backpropagates its own
 * pairs' terms (train_microbatch with microbatch_opts.share). */
void train_engine_set_worker(train_engine *e, int rank, int nranks);
/* One optimizer step; advances ck->step and the data position. Returns 0,
 * or -1 with m->nonfinite set when the loss or gradient is not finite
 * (nothing is updated then). */
int train_step(train_engine *e, train_metrics *m);
/* One metric of a --metrics line: its key and how the line prints it. */
typedef struct {
	const char *key;
	double v;
	const char *fmt;
} metric_kv;
enum { METRIC_KV_MAX = 24 };
/* m's metrics in the line's order (after "step"; tokens_per_s from
 * tokens/seconds), into kv[METRIC_KV_MAX]; returns how many. */
int train_metrics_kv(const train_metrics *m, metric_kv *kv);
/* The eval/ metrics of a held-out summary (s->n pairs) at epoch: the TRL
 * names of the training keys with "eval/" before them, and eval/samples. */
int eval_metrics_kv(const res_summary *s, double epoch, metric_kv *kv);
/* One JSON line {"step": step, kv..., "run": run}. 0, or -1 on a write
 * error (errno set). */
int metrics_line_write(FILE *f, long step, const metric_kv *kv, int n, const char *run);
/* Open the --metrics file path for appending the lines of run (its id),
 * now at step. Absent or empty: fine. A fresh run (!resumed) refuses a
 * non-empty file: two runs' lines would interleave. A resumed run refuses
 * a line of another run (a line without "run" is this run's when legacy:
 * the checkpoint predates run ids), drops its own lines past step (written
 * before a kill, after the last save; and a last line cut short) by
 * rewriting the file, and appends. Dies naming the file and line. */
FILE *train_metrics_open(const char *path, const char *run, long step, int resumed, int legacy);
/* Bring weights and moments to the host and write the checkpoint. */
void train_save(train_engine *e, const char *dir, json_t *options);
void train_engine_free(train_engine *e);

#endif
