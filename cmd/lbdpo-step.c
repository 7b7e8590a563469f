/* lbdpo-step — optimizer steps of (LB-)DPO on cached preference records.
 *
 *   lbdpo-step -m MODEL_OR_CHECKPOINT -o CHECKPOINT [--steps N | --epochs E] < train.ref
 *
 * Option parsing and the step loop; the step itself is train_step()
 * (libcore/train/engine.h). Formulas: doc/design.md, libcore/objective/loss.c (losses),
 * libcore/objective/betahead.h (β model), libcore/nn/adamw.h (optimizer); man lbdpo-step(1). */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/hfconfig.h"
#include "formats/tfevents.h"
#include "libcore/nn/backend_opts.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/dist/dist.h"
#include "libcore/train/adapter.h"
#include "libcore/train/engine.h"
#include "libcore/train/rlstep.h"
#include "libcore/train/parallel.h"
#include "libcore/train/resume.h"
#include "libcore/objective/loss_cli.h"
#include "base/cli.h"
#include "base/util.h"

/* Rank 0 alone writes; before, every rank checks it holds the same weights
 * (the allreduce hands every rank the same sums, so they should). */
static void save(train_engine *eng, ckpt *ck, const char *out, json_t *opts)
{
	if (dist_size() > 1) {
		char h[65];
		dp_params_hash(ck, h);
		dp_check_same("the parameters after the step", h);
	}
	if (dist_rank() == 0)
		train_save(eng, out, opts);
}

/* --eval-input: the held-out records and what scoring them needs (rank 0). */
typedef struct {
	pref_set *d;
	loss_opts lo;
	int bs;
	model_ws *ws;
	batch_buf *bb;
	pair_res *res;
} eval_set;

/* Score the held-out records with the policy and β model as they are now
 * (lbdpo-eval's scoring): rank 0 scores them all and hands the summary to
 * every rank, so that every rank takes the same --save-best decision. */
static void eval_run(eval_set *ev, ckpt *ck, res_summary *s)
{
	memset(s, 0, sizeof *s);
	if (dist_rank() == 0) {
		score_pref_set(ck, ev->ws, ev->bb, ev->d, &ev->lo, ev->bs, ev->res, NULL);
		pair_summary(s, ev->res, ev->d->n, -2, ev->lo.kind == LOSS_SIMPO && ev->lo.n_terms == 0);
	}
	dist_bcast(s, sizeof *s, 0);
}

/* The metrics of one --metrics line as TensorBoard scalars: a training
 * line's keys under train/ (as transformers' TensorBoardCallback names
 * them), an eval line's eval/ keys as they are (its epoch is the training
 * line's). Flushed: a killed run keeps its steps. */
static void tb_write(tfevents *tb, long step, const metric_kv *kv, int n, int train)
{
	if (!tb)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	const double wt = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
	for (int i = 0; i < n; i++) {
		char tag[128];
		if (!train && strncmp(kv[i].key, "eval/", 5))
			continue;
		snprintf(tag, sizeof tag, "%s%s", train ? "train/" : "", kv[i].key);
		if (tfevents_scalar(tb, wt, step, tag, kv[i].v) != 0)
			die("%s: write error: %s", tfevents_path(tb), strerror(errno));
	}
	if (tfevents_flush(tb) != 0)
		die("%s: write error: %s", tfevents_path(tb), strerror(errno));
}

/* the options that need code (the others are typed rows) */
enum { O_BINIT = 256, O_EPS, O_SDT };

static const char *const best_modes[] = {"min", "max", NULL};

/* The options of --loss ppo|grpo|rloo are the rows of the table's section
 * with this title (rl_row); rl_shared are those of the other sections that an
 * RL update also reads. */
static const char rl_title[] = "Reinforcement learning (--loss ppo, grpo, rloo; input: scored lbdpo-sample "
			       "--logprobs rollouts):";
static const char *const rl_shared[] = {
	"model",        "input",        "output",     "init",         "out",     "fresh",       "epochs",  "lr",
	"weight-decay", "clip",         "seed",       "loss",         "metrics", "quiet",       "device",  "tf32",
	"threads",      "dtype",        "bf16",       "schedule",     "warmup",  "total-steps", "adapter", "lora-r",
	"lora-alpha",   "lora-dropout", "use-rslora", "lora-targets", NULL};

/* 1 when row o of the table opts lies in the section titled rl_title */
static int rl_row(const cli_opt *opts, const cli_opt *o)
{
	const char *sec = NULL;
	for (const cli_opt *p = opts; p <= o; p++)
		if (!p->key && !p->shrt && !p->lng && p->help) /* a CLI_SECTION */
			sec = p->help;
	return sec == rl_title;
}

static int in_list(const char *const *l, const char *name)
{
	for (; *l; l++)
		if (!strcmp(*l, name))
			return 1;
	return 0;
}

/* --loss ppo|grpo|rloo: one RL update (libcore/train/rlstep.c); the
 * options of the preference losses are refused */
static int rl_main(rl_opts *ro, const cli *c, const cli_opt *opts, const char *in, const char *out, const char *metrics,
		   const train_opts *to, double epochs, backend_opts *bo, int *argc, char ***argv)
{
	for (const cli_opt *o = opts; o->key || o->lng || o->help; o++)
		if (o->lng && !o->alias_of && cli_given(c, o->lng) && !rl_row(opts, o) && !in_list(rl_shared, o->lng))
			die_usage("--%s is not an option of --loss %s", o->lng, rl_algo_name(ro->algo));
	if (cli_given(c, "epochs") && (epochs < 1 || epochs != floor(epochs)))
		die_usage("--epochs: --loss %s takes a whole number of passes over the rollouts",
			  rl_algo_name(ro->algo));
	if (ro->ptx_coef > 0 && !ro->ptx_data)
		die_usage("--ptx-coef needs --ptx-data");
	if ((ro->ptx_coef > 0 || ro->value || cli_given(c, "value-lr") || cli_given(c, "cliprange-value") ||
	     cli_given(c, "vf-coef") || cli_given(c, "gae-gamma") || cli_given(c, "gae-lambda") ||
	     cli_given(c, "missing-eos-penalty") || cli_given(c, "whiten-rewards")) &&
	    ro->algo != RL_PPO)
		die_usage("--value-model, --value-lr, --cliprange-value, --vf-coef, --gae-gamma, --gae-lambda, "
			  "--missing-eos-penalty, --whiten-rewards and --ptx-coef are options of --loss ppo");
	if ((cli_given(c, "scale-rewards") || cli_given(c, "loss-type")) && ro->algo != RL_GRPO)
		die_usage("--scale-rewards and --loss-type are options of --loss grpo");
	if (cli_given(c, "normalize-advantages") && ro->algo != RL_RLOO)
		die_usage("--normalize-advantages is an option of --loss rloo");
	ro->schedule = cli_given(c, "schedule") ? to->schedule : SCHED_CONSTANT;
	if (ro->schedule != SCHED_CONSTANT && !cli_given(c, "total-steps"))
		die_usage("--schedule %s with --loss %s needs --total-steps: the optimizer steps of the whole run",
			  sched_name(ro->schedule), rl_algo_name(ro->algo));
	ro->warmup = to->warmup;
	ro->total_steps = to->total_steps;
	lora_opts_check(&to->ck.lora);
	ro->lora = to->ck.lora;
	ro->adapter = to->ck.adapter;
	ro->fresh = to->ck.fresh;
	backend_opts_apply(bo);
	/* under mpirun: data parallel (rlstep.h) */
	dist_init(argc, argv);
	if (dist_size() > 1 && (!in || !strcmp(in, "-")))
		dist_die_usage("with %d MPI ranks the input must be a file every rank can read "
			       "(-i FILE), not standard input",
			       dist_size());
	if (dist_rank() > 0)
		lbdpo_quiet = 1; /* rank 0 reports */
	ro->policy = to->init;
	ro->out = out;
	ro->in = in ? in : "-";
	ro->metrics = metrics;
	ro->lr = cli_given(c, "lr") ? to->lr : 1e-5;
	ro->weight_decay = to->weight_decay;
	ro->clip = to->clip;
	ro->seed = to->ck.seed;
	ro->epochs = epochs > 0 ? (int)epochs : -1;
	ro->quiet = lbdpo_quiet;
	rl_train(ro);
	dist_finalize();
	return 0;
}

int main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *metrics = NULL;
	const char *tbdir = NULL, *eval_in = NULL, *best_metric = NULL, *best_mode = NULL;
	char errbuf[256];
	long steps = -1, save_every = 0, eval_steps = 0;
	double epochs = -1;
	int save_dtype = -1, ignore_prov = 0, allow_changed = 0, best_mode_i = -1;
	train_opts to;
	train_opts_default(&to);
	loss_opts *lo = &to.loss;
	loss_cli lc = {.lo = lo, .other_names = rl_algo_names};
	rl_opts ro;
	rl_opts_default(&ro);
	static const char *const scale_names[] = {"none", "group", NULL};
	static const char *const loss_type_names[] = {"bnpo", "grpo", NULL};
	backend_opts bo = {0};
	const cli_opt options[] = {
		OPT_STRING_REQUIRED('m', "model", "PATH", &to.init,
				    "HF model dir, llama2.c .bin, or checkpoint to start from (required)"),
		OPT_STRING('i', "input", "FILE", &in, "records with reference scores (default stdin)"),
		OPT_STRING_REQUIRED('o', "output", "DIR", &out, "checkpoint directory to write (required)"),
		OPT_BOOL(
			0, "fresh", &to.ck.fresh,
			"treat a checkpoint --model as a model only (new head, step 0; ppo, grpo, rloo: new optimizer state)"),
		CLI_SECTION("Schedule:"),
		OPT_INT(0, "steps", "N", &steps, 0, 1L << 40, "optimizer steps to run in this invocation"),
		OPT_DOUBLE(0, "epochs", "E", &epochs, 0, 1e6, "passes over the records (instead of --steps)"),
		OPT_INT(0, "total-steps", "N", &to.total_steps, 1, 1L << 40,
			"schedule length (default: steps done + --steps)"),
		OPT_INT(0, "batch-size", "B", &to.batch_size, 1, 1 << 20, "pairs per micro-batch"),
		OPT_INT(0, "grad-accum", "K", &to.grad_accum, 1, 1 << 20, "micro-batches per optimizer step"),
		OPT_DOUBLE(0, "lr", "X", &to.lr, 0, 10, "policy learning rate"),
		OPT_DOUBLE(0, "beta-lr", "X", &to.beta_lr, 0, 10, "learning rate of the beta model"),
		OPT_DOUBLE(0, "weight-decay", "X", &to.weight_decay, 0, 10, "policy weight decay, 2-D tensors only"),
		OPT_DOUBLE(0, "beta-wd", "X", &to.beta_wd, 0, 10,
			   "beta head weight decay, weights and biases, not log w"),
		OPT_INT(0, "warmup", "N", &to.warmup, 0, 1L << 40, "warmup steps"),
		OPT_ENUM(0, "schedule", "S", &to.schedule, sched_names, "constant|linear|cosine"),
		OPT_DOUBLE(0, "clip", "X", &to.clip, 0, 1e9, "clip the global gradient norm to X, 0 = off"),
		OPT_INT(0, "seed", "N", &to.ck.seed, 0, 1L << 62, "shuffling, head init and beta-dpo sampling seed"),
		CLI_SECTION("Loss:"),
		LOSS_CLI_OPTS(
			&lc,
			"lbdpo (default), dpo, ipo, hinge, robust, simpo, ln-dpo, beta-dpo, sft, exo_pair, nca_pair, "
			"bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, or a comma list of them "
			"(TRL's loss_type list); sigmoid = dpo; reward trains a reward model; ppo, grpo, rloo: one RL "
			"update from rollouts (below)"),
		OPT_BOOL(0, "learned-beta", &lo->learned_beta,
			 "the beta model's per-pair beta drives every loss with a beta (lbdpo is dpo with this)"),
		OPT_DOUBLE(0, "center-rewards-coef", "X", &lo->center_coef, 0, 1e6,
			   "reward: add X * mean (r_chosen + r_rejected)^2"),
		OPT_DOUBLE(0, "sft-weight", "X", &lo->sft_weight, 0, 1e6, "RPO: add X * NLL(chosen) to the loss"),
		OPT_DOUBLE(0, "bdpo-alpha", "X", &lo->bdpo_alpha, -1e6, 1e6, "beta-dpo: a in beta0*(1 + a*(M - M0))"),
		OPT_DOUBLE(0, "bdpo-rho", "X", &lo->bdpo_rho, 0, 0.999999, "beta-dpo: fraction of pairs filtered out"),
		CLI_SECTION(rl_title),
		OPT_STRING(0, "ref", "MODEL", &ro.ref, "reference model of the KL (default: none, KL 0)"),
		OPT_DOUBLE(
			0, "kl-coef", "X", &ro.kl_coef, 0, 1e6,
			"KL coefficient: ppo, rloo in the reward, grpo in the loss (default: ppo, rloo 0.05; grpo 0)"),
		OPT_DOUBLE(0, "kl-target", "X", &ro.kl_target, 0, 1e9,
			   "adaptive KL coefficient toward this KL; 0: a fixed coefficient"),
		OPT_DOUBLE(0, "kl-horizon", "N", &ro.kl_horizon, 1, 1e12, "horizon of the adaptive KL coefficient"),
		OPT_DOUBLE(0, "cliprange", "X", &ro.eps, 0, 10, "ratio clip epsilon"),
		OPT_INT(0, "num-mini-batches", "N", &ro.mini_batches, 1, 1 << 20,
			"mini-batches per epoch over the rollouts"),
		OPT_INT(0, "num-generations", "G", &ro.G, 2, 1 << 20,
			"grpo, rloo: samples per prompt (default: the run of lines with the first line's prompt)"),
		OPT_ENUM(0, "scale-rewards", "S", &ro.scale_rewards, scale_names, "grpo: group or none"),
		OPT_ENUM(0, "loss-type", "T", &ro.agg_seq, loss_type_names,
			 "grpo: grpo (sequence mean) or bnpo (token mean)"),
		OPT_BOOL(0, "normalize-advantages", &ro.normalize_adv, "rloo: whiten the advantages over the batch"),
		OPT_STRING(0, "value-model", "DIR", &ro.value,
			   "ppo: value model, a reward model directory (default: the policy with a zero score head)"),
		OPT_DOUBLE(0, "value-lr", "X", &ro.value_lr, 0, 10, "ppo: value model learning rate (default: --lr)"),
		OPT_DOUBLE(0, "cliprange-value", "X", &ro.eps_v, 0, 1e9, "ppo: value clip"),
		OPT_DOUBLE(0, "vf-coef", "X", &ro.vf_coef, 0, 1e9, "ppo: value loss coefficient"),
		OPT_DOUBLE(0, "gae-gamma", "X", &ro.gamma, 0, 1, "ppo: discount gamma of GAE"),
		OPT_DOUBLE(0, "gae-lambda", "X", &ro.lam, 0, 1, "ppo: lambda of GAE"),
		OPT_DOUBLE(0, "missing-eos-penalty", "X", &ro.eos_penalty, 0, 1e9,
			   "ppo: subtract X from the score of a sample without EOS"),
		OPT_BOOL(0, "whiten-rewards", &ro.whiten_rewards, "ppo: whiten the per-token rewards"),
		OPT_DOUBLE(0, "ptx-coef", "X", &ro.ptx_coef, 0, 1e9, "ppo: PPO-ptx, add X * NLL of --ptx-data"),
		OPT_STRING(0, "ptx-data", "FILE", &ro.ptx_data,
			   "ppo: token records whose chosen completions are the pretraining data"),
		CLI_SECTION("Beta model (lbdpo, --learned-beta):"),
		CLI_OPT(O_BINIT, 0, "beta-init", "B", "set w so the first batch's mean beta is B (default: --beta)"),
		OPT_DOUBLE(0, "w-init", "X", &to.w_init, 1e-30, 1e30, "start from w = X instead of --beta-init"),
		CLI_OPT(O_EPS, 0, "epsilon", "X", "eps of f = 1 + eps*tanh(NN(h)), in [0,1) (default 0.1)"),
		OPT_ENUM(0, "head", "H", &to.ck.head, head_kind_names, "linear|mlp"),
		OPT_INT(0, "head-hidden", "K", &to.ck.head_hidden, 1, 65536, "mlp hidden width"),
		OPT_ENUM(0, "pool", "P", &to.ck.pool, pool_names, "last|mean: which hidden state is h"),
		OPT_ENUM(0, "ppl-from", "S", &to.ck.ppl_from, ppl_names,
			 "ref|policy: model giving PPL(x); policy: see HAZARDS"),
		OPT_ENUM(0, "beta-grad", "M", &to.beta_grad, bgrad_names, "full|head|none: gradient paths of beta"),
		OPT_BOOL(0, "freeze-policy", &to.freeze_policy, "train only the beta model"),
		OPT_DOUBLE(0, "range-reg", "X", &lo->range_reg, 0, 1e9, "lambda1 of the range regularizer"),
		OPT_DOUBLE(0, "beta-min", "X", &lo->beta_min, 0, 1e9, "lower end of the beta range"),
		OPT_DOUBLE(0, "beta-max", "X", &lo->beta_max, 0, 1e9, "upper end of the beta range"),
		OPT_DOUBLE(0, "group-reg", "X", &lo->group_reg, 0, 1e9, "lambda2 of the group-consistency regularizer"),
		OPT_DOUBLE(0, "entropy-reg", "X", &lo->entropy_reg, 0, 1e9, "lambda3 of the entropy regularizer"),
		OPT_DOUBLE(0, "entropy-alpha", "X", &lo->entropy_alpha, -1e9, 1e9, "alpha of the entropy regularizer"),
		CLI_SECTION("Run:"),
		OPT_STRING(
			0, "metrics", "FILE", &metrics,
			"per-step JSON lines into FILE (- = stderr); a fresh run refuses a non-empty FILE, a resumed one "
			"appends"),
		OPT_INT(0, "save-every", "N", &save_every, 0, 1L << 40,
			"also write --output every N steps (default: only at the end)"),
		OPT_STRING(
			0, "tensorboard", "DIR", &tbdir,
			"also write every metric as TensorBoard scalars into a new events.out.tfevents.* file in DIR"),
		CLI_SECTION("Evaluation:"),
		OPT_STRING(0, "eval-input", "FILE", &eval_in,
			   "held-out records scored during training (eval/ metrics)"),
		OPT_INT(0, "eval-steps", "N", &eval_steps, 0, 1L << 40,
			"score --eval-input every N steps (default: 0, after the last step only)"),
		OPT_STRING(0, "save-best", "METRIC", &best_metric,
			   "keep the checkpoint of the best eval/ METRIC (e.g. eval/loss) in OUTPUT.best"),
		OPT_ENUM(0, "save-best-mode", "M", &best_mode_i, best_modes,
			 "min|max: which --save-best value is better (default: min for a name with 'loss', else max)"),
		CLI_OPT(O_SDT, 0, "save-dtype", "T",
			"float32, float16 or bfloat16: the policy's weights in the checkpoint (default: the dtype the model "
			"came in)"),
		BACKEND_CLI_OPTS(&bo),
		OPT_BOOL(
			0, "allow-changed-options", &allow_changed,
			"resuming: accept options that differ from the run's (--loss, --lr, ...; warns; default: refuse)"),
		OPT_BOOL(
			0, "ignore-provenance", &ignore_prov,
			"train on records of another tokenizer or reference than the model's (warns; default: refuse)"),
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no progress lines and no summary"),
		CLI_SECTION("LoRA:"),
		ADAPTER_CLI_OPT(&to.ck.adapter),
		LORA_CLI_OPTS(&to.ck.lora),
		OPT_BOOL(0, "gradient-checkpointing", &to.grad_ckpt,
			 "keep only each layer's input in the forward and recompute the layer in the backward (less "
			 "memory, one more forward; bit-identical results)"),
		CLI_ALIAS(0, "init", "model"),
		CLI_ALIAS(0, "out", "output"),
		{0}};
	const cli_spec spec = {"lbdpo-step", "lbdpo-step -m MODEL_OR_CHECKPOINT -o CHECKPOINT [options] < records",
			       "Run optimizer steps of learnable-beta DPO (or another --loss) on cached\n"
			       "preference records and write the next checkpoint.",
			       options, print_version};
	cli c;
	program_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;) {
		const char *arg = c.arg;
		switch (key) {
		case O_BINIT:
			to.beta_init = parse_double("--beta-init", arg, 1e-9, 1e6);
			to.w_init = -1;
			break;
		case O_EPS:
			to.ck.eps = parse_double("--epsilon", arg, 0, 1);
			if (!(to.ck.eps >= 0 && to.ck.eps < 1))
				die_usage("--epsilon: must be in [0,1)");
			break;
		case O_SDT:
			if ((save_dtype = hfconfig_dtype(arg)) < 0)
				die_usage("--save-dtype: '%s' is not float32, float16 or bfloat16", arg);
			break;
		}
	}
	cli_end(&c, 0);
	if (lc.other) {
		ro.algo = (rl_algo)rl_algo_parse(lc.other);
		return rl_main(&ro, &c, options, in, out, metrics, &to, epochs, &bo, &argc, &argv);
	}
	for (const cli_opt *o = options; o->key || o->lng || o->help; o++)
		if (o->lng && !o->alias_of && rl_row(options, o) && cli_given(&c, o->lng))
			die_usage("--%s is an option of --loss ppo, grpo or rloo", o->lng);
	if (best_mode_i >= 0)
		best_mode = best_modes[best_mode_i];
	if (steps < 0 && epochs < 0)
		die_usage("give --steps or --epochs");
	if (lo->beta_min > lo->beta_max)
		die_usage("--beta-min is larger than --beta-max");
	if (loss_cli_finish(&lc, errbuf, sizeof errbuf) < 0)
		die_usage("%s", errbuf);
	if (cli_given(&c, "eval-steps") && !eval_in)
		die_usage("--eval-steps needs --eval-input");
	if (best_metric && !eval_in)
		die_usage("--save-best needs --eval-input");
	if (best_mode && !best_metric)
		die_usage("--save-best-mode needs --save-best");
	if (eval_in && !strcmp(eval_in, "-") && (!in || !strcmp(in, "-")))
		die_usage("--eval-input -: the training records already come from standard input");
	int best_col = -1; /* the --save-best metric's index in eval_metrics_kv */
	if (best_metric) {
		metric_kv kv[METRIC_KV_MAX];
		res_summary z = {0};
		char names[1024] = "";
		int n = eval_metrics_kv(&z, 0, kv);
		for (int i = 0; i < n; i++) {
			if (strncmp(kv[i].key, "eval/", 5))
				continue;
			if (!strcmp(kv[i].key, best_metric))
				best_col = i;
			snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "",
				 kv[i].key);
		}
		if (best_col < 0)
			die_usage("--save-best: unknown metric '%s' (valid: %s)", best_metric, names);
		if (!best_mode) /* TRL's greater_is_better: false for a loss */
			best_mode = strstr(best_metric, "loss") ? "min" : "max";
	}
	char *best_dir = NULL;
	if (best_metric && asprintf(&best_dir, "%s.best", out) < 0)
		die("out of memory");
	backend_opts_apply(&bo);
	/* Under mpirun: data parallel. Every rank holds the model and takes
	 * slots i ≡ rank (mod N) of each global micro-batch (engine.h). */
	dist_init(&argc, &argv);
	const int rank = dist_rank(), nrank = dist_size();
	if (nrank > 1 && (!in || !strcmp(in, "-")))
		dist_die_usage("with %d MPI ranks the input must be a file every rank can read "
			       "(-i FILE), not standard input",
			       nrank);
	if (rank > 0)
		lbdpo_quiet = 1; /* rank 0 reports progress and the summary */
	ckpt_check_out(out);     /* before any work: --output replaces only a checkpoint */
	if (best_dir)
		ckpt_check_out(best_dir);
	signals_graceful();

	lora_opts_check(&to.ck.lora);
	to.ck.w0 = to.w_init > 0 ? to.w_init : 1.0;
	to.ck.master = 1;                       /* a resumed run continues from the f32 master weights */
	to.ck.reward = lo->kind == LOSS_REWARD; /* an LM gets a score head */
	ckpt *ck = ckpt_load(to.init, &to.ck);
	ck->save_dtype = save_dtype;
	if (ck->resumed && rl_state_algo(ck->state) >= 0) /* its moments are another objective's */
		dist_die_usage("%s: a checkpoint of lbdpo-step --loss %s: give --fresh to train it further with a "
			       "preference loss",
			       to.init, rl_algo_name((rl_algo)rl_state_algo(ck->state)));
	const json_t *prev_opts = ck->resumed ? json_object_get(ck->state, "options") : NULL;
	if (ck->resumed) {
		resume_options(&to, ck, prev_opts, &c, allow_changed);
		if (rank == 0 && prev_opts)
			resume_log(prev_opts, ck->state, metrics, save_every, bo.threads);
	}
	/* after resume_options: a resumed run's loss is the run's unless given */
	if (lo->kind == LOSS_REWARD && lo->sft_weight != 0)
		die_usage("--sft-weight: a reward model has no log-probs to add an NLL of (--loss reward)");
	if (lo->kind != LOSS_REWARD && lo->center_coef != 0)
		die_usage("--center-rewards-coef is an option of --loss reward");
	/* the run's identity, in every --metrics line: made at the fresh start,
	 * kept by every resume (a checkpoint of an older lbdpo gets one now) */
	char run_id[17];
	const char *rid = json_string_value(json_object_get(prev_opts, "run_id"));
	const int legacy_run = ck->resumed && !rid;
	if (rid && strlen(rid) < sizeof run_id) {
		snprintf(run_id, sizeof run_id, "%s", rid);
	} else {
		unsigned char r[8];
		random_bytes(r, sizeof r);
		for (int i = 0; i < 8; i++)
			snprintf(run_id + 2 * i, 3, "%02x", r[i]);
		dist_bcast(run_id, sizeof run_id, 0);
	}
	const model_config *cfg = model_cfg(ck->m);
	pref_set *data = pref_load(in, loss_opts_needs_ref(lo), (uint32_t)cfg->vocab_size);
	if (data->n == 0)
		die("%s: no records", data->name);
	/* a new run's reference is the model it starts from; a resumed one's
	 * the reference its checkpoint was trained against */
	char fp0[65];
	const int new_ref = !ck->resumed && loss_opts_needs_ref(lo) && data->prov.ref_fp[0];
	if (new_ref)
		model_fingerprint(ck->m, fp0);
	prov_check(&data->prov, data->name, to.init, ck, loss_opts_needs_ref(lo), new_ref ? fp0 : NULL, ignore_prov);
	ckpt_adopt_prov(ck, &data->prov);
	pref_check_context(data, cfg->max_seq_len);
	/* held-out records: the same checks as the training records, and
	 * ck now remembers the training records' provenance */
	eval_set ev = {0};
	if (eval_in) {
		ev.d = pref_load(eval_in, loss_needs_ref(lo->kind), (uint32_t)cfg->vocab_size);
		if (ev.d->n == 0)
			die("%s: no records", ev.d->name);
		prov_check(&ev.d->prov, ev.d->name, to.init, ck, loss_needs_ref(lo->kind), new_ref ? fp0 : NULL,
			   ignore_prov);
		pref_check_context(ev.d, cfg->max_seq_len);
	}
	if (best_metric)
		best_resume(ck, best_dir, best_metric, best_mode);
	if (steps < 0)
		steps = (long)ceil(epochs * data->n / (double)((long)to.batch_size * to.grad_accum));
	resume_total_steps(&to, ck, steps);
	/* options recorded in the checkpoint: the β model as loaded */
	to.ck.pool = ck->pool;
	to.ck.ppl_from = ck->ppl_from;
	to.n_records = data->n;
	json_t *opts = train_opts_to_json(&to);
	/* not options of the training itself: a resume logs their changes */
	json_object_set_new(opts, "run_id", json_string(run_id));
	json_object_set_new(opts, "metrics", json_string(metrics ? metrics : ""));
	json_object_set_new(opts, "save_every", json_integer(save_every));
	json_object_set_new(opts, "threads", json_integer(bo.threads));
	dp_reduce_ctx rc = {.be = model_backend(ck->m)};
	if (nrank > 1) {
		char h[65];
		dp_data_hash(data, h);
		dp_check_same("the training records read", h);
		dp_params_hash(ck, h);
		dp_check_same("the model loaded from --model", h);
	}
	train_engine *eng = train_engine_new(ck, data, &to);
	if (ev.d && rank == 0) { /* rank 0 scores the held-out records (eval_run) */
		eval_loss_opts(&ev.lo, lo);
		ev.bs = to.batch_size;
		ev.ws = model_ws_new(ck->m);
		ev.bb = batch_new(ev.bs, cfg->dim, ck->bh->K);
		ev.res = xcalloc((size_t)ev.d->n, sizeof *ev.res);
	}
	if (nrank > 1) {
		train_engine_set_worker(eng, rank, nrank);
		train_engine_set_reduce(eng, dp_reduce_ranks, &rc);
	}

	FILE *mf = NULL;
	if (metrics && rank == 0)
		mf = !strcmp(metrics, "-") ? stderr
					   : train_metrics_open(metrics, run_id, ck->step, ck->resumed, legacy_run);
	tfevents *tb = tbdir && rank == 0 ? tfevents_open(tbdir) : NULL;

	const long step_end = ck->step + steps, step_start = ck->step;
	double last_loss = NAN, last_acc = NAN;
	progress_meter pg;
	progress_init(&pg, steps, "steps");
	int sig = 0;
	while (ck->step < step_end && !(sig = dp_stop_all())) {
		train_metrics tm;
		if (train_step(eng, &tm) != 0)
			dist_die_same(
				EXIT_DATA,
				"step %ld: non-finite %s; stopping without writing this step (%s keeps the last good "
				"checkpoint, if any)",
				tm.step, tm.nonfinite == 1 ? "loss" : "gradient", out);
		metric_kv kv[METRIC_KV_MAX];
		int nkv = train_metrics_kv(&tm, kv);
		if (mf && metrics_line_write(mf, tm.step, kv, nkv, run_id) != 0)
			die("%s: write error: %s", metrics, strerror(errno));
		tb_write(tb, tm.step, kv, nkv, 1);
		last_loss = tm.loss;
		last_acc = tm.accuracy;
		progress_show(&pg, ck->step - step_start, "step %ld, loss %.4f, acc %.2f, beta %.4g", ck->step, tm.loss,
			      tm.accuracy, tm.beta_mean);
		if (ev.d && (eval_steps > 0 ? ck->step % eval_steps == 0 : ck->step == step_end)) {
			res_summary es;
			eval_run(&ev, ck, &es);
			nkv = eval_metrics_kv(&es, tm.epoch, kv);
			if (mf && metrics_line_write(mf, tm.step, kv, nkv, run_id) != 0)
				die("%s: write error: %s", metrics, strerror(errno));
			tb_write(tb, tm.step, kv, nkv, 0);
			info("step %ld: eval/loss %.4f, eval/rewards/accuracies %.2f, eval/rewards/margins %.4g, "
			     "eval/beta/mean %.4g (%d records)",
			     ck->step, es.loss, es.acc, es.margin, es.bmean, es.n);
			if (best_metric && best_better(ck, best_mode, kv[best_col].v)) {
				json_decref(ck->best);
				ck->best = json_pack("{s:s, s:s, s:f, s:I}", "metric", best_metric, "mode", best_mode,
						     "value", kv[best_col].v, "step", (json_int_t)ck->step);
				info("step %ld: best %s so far (%.6g): writing %s", ck->step, best_metric,
				     kv[best_col].v, best_dir);
				save(eng, ck, best_dir, opts);
			}
		}
		if (save_every > 0 && ck->step % save_every == 0 && ck->step < step_end)
			save(eng, ck, out, opts);
	}
	double el = progress_end(&pg);
	char els[32];
	fmt_duration(el, els, sizeof els);
	info("%ld steps in %s (%.2f steps/s) on %s, now at step %ld; last loss %.4f, acc %.2f", ck->step - step_start,
	     els, (ck->step - step_start) / (el > 1e-9 ? el : 1e-9), backend_device(), ck->step, last_loss, last_acc);
	if (nrank > 1)
		info("%d ranks: %.3f s of %.3f s in the all-reduce (%.1f%%; gradient: %s), %.3f s waiting for the slowest rank",
		     nrank, rc.seconds, el, 100 * rc.seconds / (el > 1e-9 ? el : 1e-9), dist_dev_path(), rc.wait);
	if (!sig)
		sig = dp_stop_all(); /* signalled during the last step */
	if (!sig || ck->step > step_start)
		save(eng, ck, out, opts);
	if (sig && rank == 0)
		warning("stopped by signal %d after step %ld; %s", sig, ck->step,
			ck->step > step_start ? "checkpoint written" : "no step done, nothing written");
	if (mf && mf != stderr && fclose(mf) != 0)
		die("%s: write error on close: %s", metrics, strerror(errno));
	if (tb) {
		char *tp = xstrdup(tfevents_path(tb));
		if (tfevents_close(tb) != 0)
			die("%s: write error on close: %s", tp, strerror(errno));
		free(tp);
	}
	if (ev.d) {
		free(ev.res);
		batch_free(ev.bb);
		model_ws_free(ev.ws);
		pref_free(ev.d);
	}
	free(best_dir);
	json_decref(opts);
	train_engine_free(eng);
	pref_free(data);
	ckpt_free(ck);
	dist_finalize();
	close_stdout();
	return sig ? 128 + sig : 0;
}
