/* score.h — scoring preference pairs with a model (lbdpo-logprob,
 * lbdpo-refcache): one packed, prefix-shared model_forward per batch of
 * pairs, with the edge cases (empty completions) handled in one place. */
#ifndef LBDPO_SCORE_H
#define LBDPO_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/pairs.h" /* score_pair */
#include "libcore/nn/backend_opts.h"
#include "libcore/train/adapter.h"
#include "libcore/nn/model.h"

typedef struct {
	double chosen_logp, rejected_logp;     /* sums over completion tokens (0 if empty) */
	double reward_chosen, reward_rejected; /* a reward model's scores of prompt + completion (else 0) */
	int chosen_n, rejected_n;
	double prompt_logp;    /* mean prompt-token log-prob (0 if n_prompt == 1) */
	double prompt_entropy; /* mean next-token entropy over prompt positions */
	float *tok_logp[2];    /* caller-owned [chosen_n], [rejected_n] or NULL */
} score_out;

/* Score n pairs with one model_forward. out[i].tok_logp as the caller set them.
 * A reward model scores an empty completion at the prompt's last non-pad
 * token (a pad placeholder; it dies when the model has no pad_token_id). */
void score_pairs(const model *m, model_ws *ws, const score_pair *pairs, int n, score_out *out);

/* ---- scoring a record stream (lbdpo-logprob, lbdpo-reward) ---- */
struct rs_reader;
struct rs_writer;
struct distrec;
typedef struct {
	long batch_tokens; /* pack pairs into forwards of up to this many tokens (0: one pair each) */
	int per_token;     /* fill score_out.tok_logp */
	/* write the keys the program adds to one record (after its own keys) */
	void (*put)(void *ctx, struct rs_writer *w, const score_out *o);
	void *ctx;
	uint64_t n_rec, n_tok; /* out: records and tokens this process scored */
} score_run;

/* Score every record of r that is this rank's (distrec.h) in batches and
 * write each, its keys followed by o->put's, through d in input order;
 * progress on standard error (rank 0). Ends with distrec_round(d, 1). */
void score_stream(const model *m, struct rs_reader *r, struct distrec *d, score_run *o);

/* What lbdpo-logprob and lbdpo-reward do once their options are parsed:
 * under MPI split the records (standard input refused with several ranks),
 * apply the backend options, load model_path, die unless it is the kind
 * p->need_lm asks for, check the input's provenance, write the records with
 * the header kind p->kind and the model under p->model_key, score them
 * (score_stream with p->run), print the summary line. Returns 0. */
typedef struct {
	const backend_opts *bo; /* applied after dist_init */
	const char *model_path, *in, *out;
	const char *adapter; /* --adapter DIR (lbdpo-logprob's ADAPTER_CLI_OPT(&p->adapter) row) */
	int ignore_prov;
	const char *kind, *model_key;
	int need_lm; /* 1: a causal LM (model_need_lm), 0: a reward model */
	score_run run;
	double t0; /* when the model began to load */
	/* set by score_prog_open: the adapter (NULL: none), the path the base
	 * was loaded from (model_path, or an adapter directory's base) */
	struct lora *lo;
	char *base_owned;
	const char *base;
} score_prog;
int score_program(int *argc, char ***argv, score_prog *p);
/* score_program's first and last steps, for a program that scores other
 * input (lbdpo-reward on lbdpo-sample's JSON Lines): check --model, start
 * MPI, refuse standard input under several ranks, apply the backend
 * options, load the model and check its kind; fp gets its fingerprint.
 * score_prog_close prints the summary line ("N unit[extra], T tokens in ...")
 * on rank 0, frees m and ends MPI. */
model *score_prog_open(int *argc, char ***argv, score_prog *p, char fp[65]);
void score_prog_close(score_prog *p, model *m, const char *unit, uint64_t n_rec, uint64_t n_tok, const char *extra);

/* The options lbdpo-logprob and lbdpo-reward share, as typed rows
 * (base/cli.h) storing into the score_prog p (the model's and the output's
 * help differ). p->run.batch_tokens starts at 4096. */
#define SCORE_CLI_OPTS(p, model_help, output_help)                                                                     \
	OPT_STRING('m', "model", "PATH", &(p)->model_path, model_help),                                                \
		OPT_STRING('i', "input", "FILE", &(p)->in, "token records to read (default: standard input)"),         \
		OPT_STRING('o', "output", "FILE", &(p)->out, output_help),                                             \
		OPT_INT('b', "batch-tokens", "N", &(p)->run.batch_tokens, 0, 1L << 24,                                 \
			"pack pairs into forwards of up to N tokens, or 0: one pair per forward as lbdpo-refcache"),   \
		OPT_BOOL(0, "ignore-provenance", &(p)->ignore_prov,                                                    \
			 "score records of another tokenizer than the model's (warns; default: refuse)"),              \
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no progress lines and no summary")

#endif
