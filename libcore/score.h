/* score.h — scoring preference pairs with a model (lbdpo-logprob,
 * lbdpo-refcache): one packed, prefix-shared model_forward per batch of
 * pairs, with the edge cases (empty completions) handled in one place. */
#ifndef LBDPO_SCORE_H
#define LBDPO_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/pairs.h" /* score_pair */
#include "libcore/model.h"

typedef struct {
	double chosen_logp, rejected_logp; /* sums over completion tokens (0 if empty) */
	int chosen_n, rejected_n;
	double prompt_logp;    /* mean prompt-token log-prob (0 if n_prompt == 1) */
	double prompt_entropy; /* mean next-token entropy over prompt positions */
	float *tok_logp[2];    /* caller-owned [chosen_n], [rejected_n] or NULL */
} score_out;

/* Score n pairs with one model_forward. out[i].tok_logp as the caller set them. */
void score_pairs(const model *m, model_ws *ws, const score_pair *pairs, int n, score_out *out);

#endif
