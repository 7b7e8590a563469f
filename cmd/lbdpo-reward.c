/* lbdpo-reward — score with a reward model (lbdpo-step --loss reward, or
 * any XxxForSequenceClassification with one label): token pairs get
 * reward_chosen and reward_rejected (libcore/train/score.c), lbdpo-sample's JSON
 * Lines a "reward" per sample (libcore/train/samples.c). */
#include <stdlib.h>
#include <string.h>

#include "libcore/dist/dist.h"
#include "libcore/train/samples.h"
#include "libcore/train/score.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "base/cli.h"
#include "base/util.h"
#include "formats/schema.h"

/* the keys lbdpo-reward adds to a record */
static void put_rewards(void *ctx, rs_writer *w, const score_out *o)
{
	(void)ctx;
	rs_put_f64(w, KEY_REWARD_CHOSEN, o->reward_chosen);
	rs_put_f64(w, KEY_REWARD_REJECTED, o->reward_rejected);
}

int main(int argc, char **argv)
{
	char about[640];
	snprintf(about, sizeof about,
		 "Score each record's prompt + chosen and prompt + rejected with a reward model\n"
		 "(the score at the last non-pad token) and add reward_chosen, reward_rejected;\n"
		 "or add \"reward\" to each line of lbdpo-sample's JSON Lines.\n%s",
		 dist_help_text());
	backend_opts bo = {0};
	score_prog sp = {.bo = &bo,
			 .kind = "rewards",
			 .model_key = "reward_model",
			 .need_lm = 0,
			 .run = {.batch_tokens = 4096, .put = put_rewards}};
	const char *tok_path = NULL, *tpl_name = NULL, *cache = getenv("LBDPO_REFCACHE");
	int no_bos = 0;
	const cli_opt opts[] = {
		SCORE_CLI_OPTS(&sp, "reward model: Hugging Face XxxForSequenceClassification directory (required)",
			       "scored records or JSON Lines to write (default: standard output)"),
		BACKEND_CLI_OPTS(&bo),
		CLI_SECTION("lbdpo-sample's JSON Lines (input detected by its first byte):"),
		OPT_STRING('c', "cache", "DIR", &cache,
			   "keep every sample's reward in this lbdpo-refcache directory: a killed run, run again, "
			   "scores only what is missing (default: $LBDPO_REFCACHE, else none)"),
		OPT_STRING(0, "tokenizer", "FILE", &tok_path,
			   "encode \"prompt\" with this tokenizer (default: the reward model directory's own)"),
		OPT_STRING(0, "template", "NAME|FILE", &tpl_name,
			   "chat template for message-list prompts, as lbdpo-sample (default: the tokenizer's own)"),
		OPT_BOOL(0, "no-bos", &no_bos, "no BOS before string prompts (give it when lbdpo-sample had it)"),
		{0}};
	const cli_spec spec = {"lbdpo-reward", "lbdpo-reward -m RM [OPTIONS] [-i pairs.tok|samples.jsonl] [-o OUTPUT]",
			       about, opts, print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	cli_parse(&c, 0);
	const int jsonl_only = cli_given(&c, "cache") || cli_given(&c, "tokenizer") || cli_given(&c, "template") ||
			       cli_given(&c, "no-bos");
	FILE *in = in_open(sp.in);
	if (input_is_jsonl(in) != 1) {
		if (jsonl_only)
			die_usage(
				"--cache, --tokenizer, --template and --no-bos are for lbdpo-sample's JSON Lines; %s is "
				"not JSON Lines",
				in_name(sp.in));
		if (in != stdin)
			fclose(in);
		return score_program(&argc, &argv, &sp);
	}
	char fp[65];
	model *m = score_prog_open(&argc, &argv, &sp, fp);
	model_tok t;
	model_tok_open(&t, m, sp.model_path, tok_path, tpl_name, sp.ignore_prov);
	samples_run o = {.out_path = sp.out,
			 .cache_dir = cache && *cache ? cache : NULL,
			 .t = &t,
			 .add_bos = !no_bos,
			 .ignore_prov = sp.ignore_prov,
			 .batch_tokens = sp.run.batch_tokens};
	score_samples(m, sp.model_path, fp, in, in_name(sp.in), &o);
	if (in != stdin)
		fclose(in);
	model_tok_close(&t);
	char extra[64] = "";
	if (o.cache_dir)
		snprintf(extra, sizeof extra, " (%llu from the cache)", (unsigned long long)o.n_cached);
	score_prog_close(&sp, m, "samples", o.n_lines, o.n_tok, extra);
	return 0;
}
