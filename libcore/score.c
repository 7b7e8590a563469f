/* score.c — see score.h. */
#include "libcore/score.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void score_pairs(const model *m, model_ws *ws, const score_pair *pairs, int n, score_out *out)
{
	if (n <= 0)
		return;
	model_seq *seqs = xcalloc((size_t)n, sizeof *seqs);
	model_scores *sc = xcalloc((size_t)n, sizeof *sc);
	/* which[i][k]: the pair's completion (0 chosen, 1 rejected) that went into
	 * slot k of seqs[i], or -1 for the placeholder of a pair with no
	 * completion tokens at all (the forward needs >= 1 completion token; the
	 * prompt's quantities never see the completions, so it changes nothing). */
	int (*which)[2] = xcalloc((size_t)n, sizeof *which);
	static const uint32_t placeholder = 0;
	for (int i = 0; i < n; i++) {
		const score_pair *p = &pairs[i];
		model_seq *s = &seqs[i];
		s->prompt = p->prompt;
		s->n_prompt = p->n_prompt;
		const uint32_t *c[2] = {p->chosen, p->rejected};
		int nc[2] = {p->n_chosen, p->n_rejected};
		for (int k = 0; k < 2; k++) {
			if (!nc[k])
				continue;
			s->comp[s->n_comp] = c[k];
			s->n_comp_tok[s->n_comp] = nc[k];
			sc[i].tok_logp[s->n_comp] = out[i].tok_logp[k];
			which[i][s->n_comp++] = k;
		}
		if (!s->n_comp) {
			s->comp[0] = &placeholder;
			s->n_comp_tok[0] = 1;
			s->n_comp = 1;
			which[i][0] = -1;
		}
	}
	model_forward(m, ws, seqs, n, sc, 0);
	for (int i = 0; i < n; i++) {
		score_out *o = &out[i];
		o->chosen_logp = o->rejected_logp = 0;
		o->chosen_n = o->rejected_n = 0;
		for (int k = 0; k < seqs[i].n_comp; k++) {
			if (which[i][k] == 0) {
				o->chosen_logp = sc[i].logp[k];
				o->chosen_n = sc[i].n[k];
			} else if (which[i][k] == 1) {
				o->rejected_logp = sc[i].logp[k];
				o->rejected_n = sc[i].n[k];
			}
		}
		o->prompt_logp = sc[i].prompt_mean_logp;
		o->prompt_entropy = sc[i].prompt_entropy;
	}
	free(which);
	free(sc);
	free(seqs);
}
