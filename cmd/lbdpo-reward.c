/* lbdpo-reward — score token pairs with a reward model (lbdpo-step --loss
 * reward, or any XxxForSequenceClassification with one label): adds
 * reward_chosen and reward_rejected. The scoring is libcore/score.c's. */
#include <stdlib.h>
#include <string.h>

#include "formats/pairs.h"
#include "formats/records.h"
#include "libcore/dist.h"
#include "libcore/distrec.h"
#include "libcore/model.h"
#include "libcore/score.h"
#include "libcore/train.h"
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
	CLI_OPT('b', 'b', "batch-tokens", "N", "pack pairs into forwards of up to N tokens (default 4096); 0: one pair per forward"),
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
	dist_init(&argc, &argv);
	const int rank = dist_rank(), nrank = dist_size();
	if (nrank > 1 && (!in || !strcmp(in, "-")))
		dist_die_usage("with %d MPI ranks the input must be a file every rank can read "
			       "(-i FILE), not standard input", nrank);
	backend_opts_apply(&bo);

	double t0 = now_s();
	model *m = model_load(model_path);
	const model_config *cfg = model_cfg(m);
	if (!cfg->score_labels)
		die("%s: not a reward model (config.json's architectures names no XxxForSequenceClassification; "
		    "lbdpo-step --loss reward trains one)", model_path);
	char fp[65];
	model_fingerprint(m, fp);
	rs_reader *r = rs_open(in, NULL);
	provenance pv;
	prov_read(r, cfg->vocab_size, &pv);
	prov_check(&pv, rs_name(r), model_path, NULL, 0, NULL, ignore_prov);
	rs_writer *w = rank == 0 ? rs_create(outp) : NULL;
	if (w) {
		rs_header_begin(w, rs_header(r), "rewards", argc, argv);
		pairs_put_model(w, "reward_model", model_path, fp);
		rs_header_end(w);
	}
	distrec *d = distrec_new(w);
	score_run sr = {.batch_tokens = batch_tokens, .put = put_rewards};
	score_records(m, r, d, &sr);
	if (w)
		rs_finish(w);
	rs_close(r);
	double dt = now_s() - t0;
	double tot[2] = {(double)sr.n_rec, (double)sr.n_tok}; /* the job's totals */
	dist_allreduce_sum_f64(tot, 2);
	if (rank == 0)
		info("%.0f records, %.0f tokens in %.2f s (%.1f records/s) on %s", tot[0], tot[1], dt,
		     tot[0] / (dt > 0 ? dt : 1), backend_device());
	model_free(m);
	distrec_free(d);
	close_stdout();
	dist_finalize();
	return 0;
}
