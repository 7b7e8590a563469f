/* lbdpo-beta — β(x) and its parts per record, from a checkpoint:
 *     beta = w · PPL(x) · f(x),  f = 1 + ε·tanh(a),  a = NN(h(x))
 * Records pass through with "beta", "beta_w", "beta_ppl", "beta_f" and
 * "beta_a" added. man lbdpo-beta(1). */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/records.h"
#include "libcore/objective/betahead.h"
#include "libcore/nn/model.h"
#include "libcore/train/adapter.h"
#include "libcore/train/eval.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"
#include "formats/schema.h"

int main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *ckp = NULL, *adapter = NULL;
	int ignore_prov = 0;
	backend_opts bo = {0};
	const cli_opt opts[] = {
		OPT_STRING_REQUIRED('m', "model", "DIR", &ckp, "checkpoint written by lbdpo-step (required)"),
		OPT_STRING('i', "input", "FILE", &in, "records with prompt_ids (default stdin)"),
		OPT_STRING('o', "output", "FILE", &out,
			   "records with beta, beta_w, beta_ppl, beta_f, beta_a (default stdout)"),
		BACKEND_CLI_OPTS(&bo),
		ADAPTER_CLI_OPT(&adapter),
		OPT_BOOL(0, "ignore-provenance", &ignore_prov,
			 "accept records of another tokenizer or reference than the model's (warns; default: refuse)"),
		CLI_ALIAS('c', "checkpoint", "model"),
		{0}};
	const cli_spec spec = {"lbdpo-beta", "lbdpo-beta -m CHECKPOINT [-i IN] [-o OUT]",
			       "Add beta(x) = w * PPL(x) * (1 + eps*tanh(NN(h(x)))) and its parts to each record.",
			       opts, print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	const char *sdir = adapter ? adapter : ckp; /* a LoRA checkpoint holds the beta model */
	if (!ckpt_is(sdir))
		die("%s: not a checkpoint (no trainer_state.json): lbdpo-beta needs a trained beta model", sdir);
	backend_opts_apply(&bo);
	ckpt *ck = ckpt_load(
		ckp,
		&(ckpt_opts){.head = HEAD_LINEAR, .eps = 0.1, .w0 = 1.0, .seed = 1, .adapter = adapter, .frozen = 1});
	model_need_lm(ck->m, ckp);
	const model_config *cfg = model_cfg(ck->m);
	rs_reader *r = rs_open(in, NULL);
	provenance pv;
	prov_read(r, cfg->vocab_size, &pv);
	prov_check(&pv, rs_name(r), ckp, ck, ck->ppl_from == PPL_REF, NULL, ignore_prov);
	const uint32_t vocab = (uint32_t)(pv.tok_vocab > 0 ? pv.tok_vocab : cfg->vocab_size);
	const char *kind;
	size_t kn;
	rs_get_str(r, rs_header(r), HDR_KIND, &kind, &kn);
	char *k = strndup(kind, kn);
	rs_writer *w = rs_create(out);
	rs_header_begin(w, rs_header(r), k, argc, argv);
	rs_header_end(w);
	free(k);
	model_ws *ws = model_ws_new(ck->m);
	batch_buf *bb = batch_new(1, cfg->dim, ck->bh->K);
	uint32_t *prompt = NULL, *comp = NULL;
	size_t pcap = 0, ccap = 0;
	const msgpack_object *rec;
	while (rs_next(r, &rec)) {
		size_t np, nc = 0;
		rs_req(r, rs_get_ids(r, rec, KEY_PROMPT_IDS, vocab, &prompt, &np, &pcap), KEY_PROMPT_IDS);
		if (np < 1)
			rs_die(r, "empty prompt_ids");
		pref_rec pr;
		memset(&pr, 0, sizeof pr);
		pr.prompt = prompt;
		pr.np = (int)np;
		/* the prompt's quantities do not depend on the completion (causal
		 * attention): score the chosen one if present, else one token */
		int has_c = rs_get_ids(r, rec, KEY_CHOSEN_IDS, vocab, &comp, &nc, &ccap);
		if (has_c && nc < 1)
			rs_die(r, "empty chosen_ids");
		if (has_c) {
			pr.chosen = comp;
			pr.nc = (int)nc;
		} else {
			pr.chosen = prompt + np - 1;
			pr.nc = 1;
		}
		if ((long)np + pr.nc > cfg->max_seq_len)
			rs_die(r, "prompt + completion is %ld tokens, more than the model's context of %d positions",
			       (long)np + pr.nc, cfg->max_seq_len);
		pr.rejected = pr.chosen;
		pr.nr = pr.nc;
		if (ck->ppl_from == PPL_REF)
			rs_req(r, rs_get_f64(r, rec, KEY_REF_PROMPT_LOGP, &pr.ref_plogp), KEY_REF_PROMPT_LOGP);
		pref_rec *rp = &pr;
		batch_forward(ck, ws, bb, &rp, 1, &(batch_opts){.n_comp = 1, .need_head = 1});
		const beta_parts *q = &bb->parts[0];
		if (!isfinite(q->beta))
			rs_die(r, "non-finite beta (PPL %g)", q->ppl);
		rs_rec_begin(w, rec);
		rs_put_f64(w, "beta", q->beta);
		rs_put_f64(w, "beta_w", q->w);
		rs_put_f64(w, "beta_ppl", q->ppl);
		rs_put_f64(w, "beta_f", q->f);
		rs_put_f64(w, "beta_a", q->a);
		rs_rec_end(w);
	}
	rs_finish(w);
	rs_close(r);
	free(prompt);
	free(comp);
	batch_free(bb);
	model_ws_free(ws);
	ckpt_free(ck);
	close_stdout();
	return 0;
}
