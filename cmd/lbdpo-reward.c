/* lbdpo-reward — score token pairs with a reward model (lbdpo-step --loss
 * reward, or any XxxForSequenceClassification with one label): adds
 * reward_chosen and reward_rejected. The scoring is libcore/train/score.c's. */
#include <stdlib.h>
#include <string.h>

#include "libcore/dist/dist.h"
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

static const cli_opt opts[] = {
	SCORE_CLI_OPTS("reward model: Hugging Face XxxForSequenceClassification directory (required)",
		       "scored records to write (default: standard output)"),
	BACKEND_CLI_OPTS,
	{0}};

static cli_spec spec = {"lbdpo-reward", "lbdpo-reward -m RM [OPTIONS] [-i pairs.tok] [-o pairs.rewards]", NULL, opts,
			print_version};

int main(int argc, char **argv)
{
	set_progname("lbdpo-reward");
	lbdpo_runtime_init(argv);
	char about[512];
	snprintf(about, sizeof about,
		 "Score each record's prompt + chosen and prompt + rejected with a reward model\n"
		 "(the score at the last non-pad token) and add reward_chosen, reward_rejected.\n%s",
		 dist_help_text());
	spec.about = about;
	backend_opts bo = {0};
	score_prog sp = {.bo = &bo, .kind = "rewards", .model_key = "reward_model", .need_lm = 0,
			 .run = {.batch_tokens = 4096, .put = put_rewards}};
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;)
		if (!backend_opts_parse(&bo, key, c.arg))
			score_prog_parse(&sp, key, c.arg);
	if (c.ind < argc)
		die_usage("unexpected argument '%s'", argv[c.ind]);
	return score_program(&argc, &argv, &sp);
}
