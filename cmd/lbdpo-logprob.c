/* lbdpo-logprob — score token pairs with a model: completion log-prob sums,
 * prompt mean log-prob / perplexity / entropy, optionally per-token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pairs.h"
#include "formats/records.h"
#include "libcore/dist/dist.h"
#include "libcore/dist/distrec.h"
#include "libcore/nn/model.h"
#include "libcore/train/score.h"
#include "libcore/train/eval.h"
#include "libcore/train/rlstep.h"
#include "libcore/train/samples.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"
#include "formats/schema.h"

/* the keys lbdpo-logprob adds to a record */
static void put_scores(void *ctx, rs_writer *w, const score_out *o)
{
	const int per_token = *(const int *)ctx;
	rs_put_f64(w, KEY_CHOSEN_LOGP, o->chosen_logp);
	rs_put_f64(w, KEY_REJECTED_LOGP, o->rejected_logp);
	rs_put_i64(w, KEY_CHOSEN_N, o->chosen_n);
	rs_put_i64(w, KEY_REJECTED_N, o->rejected_n);
	rs_put_f64(w, KEY_PROMPT_LOGP, o->prompt_logp);
	rs_put_f64(w, KEY_PROMPT_PPL, exp(-o->prompt_logp));
	rs_put_f64(w, KEY_PROMPT_ENTROPY, o->prompt_entropy);
	if (per_token) {
		rs_put_f32v(w, KEY_CHOSEN_TOKEN_LOGPS, o->tok_logp[0], (size_t)o->chosen_n);
		rs_put_f32v(w, KEY_REJECTED_TOKEN_LOGPS, o->tok_logp[1], (size_t)o->rejected_n);
	}
}

int main(int argc, char **argv)
{
	int per_token = 0;
	char about[512];
	snprintf(about, sizeof about,
		 "Score each record's chosen and rejected completions with a model and add\n"
		 "chosen_logp, rejected_logp, chosen_n, rejected_n, prompt_logp, prompt_ppl,\n"
		 "prompt_entropy (and with --per-token chosen_token_logps, rejected_token_logps);\n"
		 "or add \"ref_token_logps\" to each rollout of lbdpo-sample --logprobs (JSON Lines;\n"
		 "32 per forward, or -b 0: one each, lbdpo-refcache's values).\n%s",
		 dist_help_text());
	backend_opts bo = {0};
	/* Under mpirun every rank reads the input and scores the records k with
	 * k mod N == rank; rank 0 writes them all in input order. */
	score_prog sp = {.bo = &bo,
			 .kind = "scores",
			 .model_key = "model",
			 .need_lm = 1,
			 .run = {.batch_tokens = 4096, .put = put_scores, .ctx = &per_token}};
	const cli_opt opts[] = {SCORE_CLI_OPTS(&sp, "model: Hugging Face directory or llama2.c .bin (required)",
					       "scores to write (default: standard output)"),
				OPT_BOOL(0, "per-token", &per_token, "add per-token completion log-probs (f32 bin)"),
				BACKEND_CLI_OPTS(&bo),
				ADAPTER_CLI_OPT(&sp.adapter),
				{0}};
	const cli_spec spec = {"lbdpo-logprob", "lbdpo-logprob -m PATH [OPTIONS] [< pairs.tok] [> pairs.scores]", about,
			       opts, print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	FILE *in = in_open(sp.in);
	if (input_is_jsonl(in) == 1) { /* rollouts of lbdpo-sample --logprobs: the reference's per-token log-probs */
		char fp[65];
		model *m = score_prog_open(&argc, &argv, &sp, fp);
		if (dist_size() > 1)
			die_usage("rollouts (JSON Lines) are scored by one process");
		/* -b 0: one rollout per forward, lbdpo-refcache's values */
		rl_logprobs_run run = {.key = "ref_token_logps", .one_per_forward = sp.run.batch_tokens == 0};
		rl_rollout_logprobs(m, in, in_name(sp.in), sp.out, &run);
		if (in != stdin)
			fclose(in);
		score_prog_close(&sp, m, "rollouts", run.n_lines, run.n_tok, "");
		return 0;
	}
	if (in != stdin)
		fclose(in);
	sp.run.per_token = per_token;
	return score_program(&argc, &argv, &sp);
}
