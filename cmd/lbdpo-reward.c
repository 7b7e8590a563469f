/* lbdpo-reward — score token pairs with a reward model (lbdpo-step --loss
 * reward, or any XxxForSequenceClassification with one label): adds
 * reward_chosen and reward_rejected. The scoring is libcore/score.c's. */
#include <stdlib.h>
#include <string.h>

#include "libcore/dist.h"
#include "libcore/score.h"
#include "libcore/backend.h"
#include "libcore/cpu.h"
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

enum { OPT_IGNPROV = 256 };
static const cli_opt opts[] = {
	CLI_OPT('m', 'm', "model", "PATH", "reward model: Hugging Face XxxForSequenceClassification directory (required)"),
	CLI_OPT('i', 'i', "input", "FILE", "token records to read (default: standard input)"),
	CLI_OPT('o', 'o', "output", "FILE", "scored records to write (default: standard output)"),
	CLI_OPT('b', 'b', "batch-tokens", "N",
		"pack pairs into forwards of up to N tokens (default 4096); 0: one pair per forward"),
	BACKEND_CLI_OPTS,
	CLI_OPT(OPT_IGNPROV, 0, "ignore-provenance", NULL,
		"score records of another tokenizer than the model's (warns; default: refuse)"),
	CLI_OPT('q', 'q', "quiet", NULL, "no progress lines and no summary"),
	{0}};

static cli_spec spec = {"lbdpo-reward", "lbdpo-reward -m RM [OPTIONS] [-i pairs.tok] [-o pairs.rewards]", NULL, opts,
			print_version};

int main(int argc, char **argv)
{
	set_progname("lbdpo-reward");
	lbdpo_runtime_init(argv);
	const char *model_path = NULL, *in = NULL, *outp = NULL;
	long batch_tokens = 4096;
	int ignore_prov = 0;
	char about[512];
	snprintf(about, sizeof about,
		 "Score each record's prompt + chosen and prompt + rejected with a reward model\n"
		 "(the score at the last non-pad token) and add reward_chosen, reward_rejected.\n%s",
		 dist_help_text());
	spec.about = about;
	backend_opts bo = {0};
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;) {
		const char *arg = c.arg;
		if (backend_opts_parse(&bo, key, arg))
			continue;
		switch (key) {
		case 'm': model_path = arg; break;
		case 'i': in = arg; break;
		case 'o': outp = arg; break;
		case 'b': batch_tokens = parse_long("--batch-tokens", arg, 0, 1L << 24); break;
		case OPT_IGNPROV: ignore_prov = 1; break;
		case 'q': lbdpo_quiet = 1; break;
		}
	}
	if (c.ind < argc)
		die_usage("unexpected argument '%s'", argv[c.ind]);
	if (!model_path)
		die_usage("--model PATH is required");
	score_prog sp = {.bo = &bo, .model_path = model_path, .in = in, .out = outp, .ignore_prov = ignore_prov,
			 .kind = "rewards", .model_key = "reward_model", .need_lm = 0,
			 .run = {.batch_tokens = batch_tokens, .put = put_rewards}};
	return score_program(&argc, &argv, &sp);
}
