/* samples.h — lbdpo-sample's JSON Lines, shared by the programs that read
 * prompts (lbdpo-sample) and that score its output (lbdpo-reward):
 * telling JSONL input from token records, the tokenizer and chat template a
 * model's prompts are encoded with, and scoring every sample with a reward
 * model (adding "reward"), batched, cached and split over MPI ranks. */
#ifndef LBDPO_SAMPLES_H
#define LBDPO_SAMPLES_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/prefs.h"
#include "formats/tokenizer.h"
#include "libcore/nn/model.h"

/* 1 if the stream in starts like JSON Lines ('{', a space or a newline; '{'
 * is a positive fixint in msgpack, never a record stream's first map), 0 for
 * anything else, -1 when it is empty. The byte is pushed back. */
int input_is_jsonl(FILE *in);

/* The tokenizer prompts are encoded with: tok_path, else the model
 * directory's own (tokenizer.json, else tokenizer.model); NULL when neither
 * exists. It must be the model's (the provenance rule, override: warn), its
 * vocabulary must fit the model's; the chat template is tpl_name, else the
 * tokenizer's own (see pref_tpl_load). */
typedef struct {
	tok *tk;       /* NULL: none */
	pref_tpl *tpl; /* NULL without a tokenizer */
	char *path;    /* the tokenizer's file */
} model_tok;
void model_tok_open(model_tok *t, const model *m, const char *model_path, const char *tok_path, const char *tpl_name,
		    int ignore_prov);
void model_tok_close(model_tok *t);

/* The provenance rule for samples: the completion ids (n) of the line obj
 * must be the tokens of its "text" in t's tokenizer, or the samples come
 * from a policy with another tokenizer and would be scored as other words.
 * Dies naming name and lineno (ignore_prov: warns once, counting in
 * *warned); a line without "text", or no tokenizer, passes. *dec, *dec_cap:
 * the caller's scratch. */
void sample_text_check(const model_tok *t, json_t *obj, const uint32_t *ids, int n, const char *name, uint64_t lineno,
		       int ignore_prov, int *warned, char **dec, size_t *dec_cap);

/* Score each line of lbdpo-sample's output (in, named name) with the reward
 * model m and write it to out_path (atomically; "-": standard output) with
 * "reward" set (added last, or replaced in place). The prompt is the line's
 * "prompt_ids", else its "prompt" encoded as lbdpo-sample encodes it (t);
 * the completion is its "ids", the tokens the policy generated. Lines with
 * the same prompt ids in a row share a forward pass two by two, packed into
 * passes of up to batch_tokens tokens. cache_dir (NULL: none): an
 * lbdpo-refcache(1) directory keyed by the reward model's fingerprint fp,
 * where each score is stored once computed and found again by a later run.
 * Under MPI every rank reads every line and scores those k with k mod N ==
 * rank; rank 0 writes. */
typedef struct {
	const char *out_path, *cache_dir;
	const model_tok *t;
	int add_bos;     /* BOS before string prompts when the tokenizer adds one */
	int ignore_prov; /* ids that do not decode to the line's text: warn, not die */
	long batch_tokens;
	uint64_t n_lines, n_cached, n_tok; /* out: the job's totals */
} samples_run;
void score_samples(const model *m, const char *model_path, const char *fp, FILE *in, const char *name, samples_run *o);

#endif
