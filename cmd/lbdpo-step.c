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
#include "libcore/train/engine.h"
#include "libcore/train/rlstep.h"
#include "libcore/train/parallel.h"
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

/* Is v better than the best so far (none: yes)? */
static int best_better(const ckpt *ck, const char *mode, double v)
{
	const json_t *b = ck->best ? json_object_get(ck->best, "value") : NULL;
	if (!json_is_number(b))
		return 1;
	const double o = json_number_value(b);
	return !strcmp(mode, "min") ? v < o : v > o;
}

/* The best so far of a resumed run: what the checkpoint's trainer state
 * says, or what best_dir's says when better (the run was killed after
 * writing best_dir and before its next save of --output). Another metric or
 * mode than the run's starts a new best. */
static void best_resume(ckpt *ck, const char *best_dir, const char *metric, const char *mode)
{
	json_t *cand[2] = {ck->state ? json_incref(json_object_get(ck->state, "best")) : NULL, NULL};
	char *p = path_join(best_dir, "trainer_state.json");
	json_t *bs = ckpt_is(best_dir) ? json_load_file(p, 0, NULL) : NULL;
	free(p);
	if (bs)
		cand[1] = json_incref(json_object_get(bs, "best"));
	json_decref(bs);
	for (int i = 0; i < 2; i++) {
		const json_t *c = cand[i];
		const char *m = json_string_value(json_object_get(c, "metric")),
			   *md = json_string_value(json_object_get(c, "mode"));
		if (!c || !m || !md || !json_is_number(json_object_get(c, "value")))
			continue;
		if (strcmp(m, metric) || strcmp(md, mode)) {
			if (i == 0)
				info("--save-best %s (%s): the run kept the best %s (%s); starting a new best", metric, mode,
				     m, md);
			continue;
		}
		if (best_better(ck, mode, json_number_value(json_object_get(c, "value")))) {
			json_decref(ck->best);
			ck->best = json_deep_copy(c);
		}
	}
	json_decref(cand[0]);
	json_decref(cand[1]);
	if (ck->best)
		info("resuming: the best %s so far is %.6g at step %lld (%s)", metric,
		     json_number_value(json_object_get(ck->best, "value")),
		     (long long)json_integer_value(json_object_get(ck->best, "step")), best_dir);
}

enum {
	O_FRESH = 256, O_STEPS, O_EPOCHS, O_TOTAL, O_BS, O_ACC, O_LR, O_BLR, O_WD, O_BWD, O_WARM, O_SCHED,
	O_CLIP, O_SEED, O_LOSS, O_BETA, O_BINIT, O_WINIT, O_EPS, O_HEAD, O_HID, O_POOL, O_PPL, O_BGRAD, O_FREEZE,
	O_LS, O_GAMMA, O_SFTW, O_BA, O_BR, O_RREG, O_BMIN, O_BMAX, O_GREG, O_EREG, O_EALPHA, O_METRICS, O_SAVE,
	O_SDT, O_IGNPROV, O_ALLOW, O_LOSSW, O_LEARNB, O_TAU, O_EVIN, O_EVSTEPS, O_BEST, O_BESTMODE, O_TB, O_CENTER,
	O_REF, O_VALUE, O_VLR, O_KLC, O_KLT, O_KLH, O_CR, O_CRV, O_VFC, O_GGAMMA, O_GLAM, O_NMB, O_NGEN, O_EOSPEN,
	O_WHITEN, O_NORMADV, O_SCALE, O_LTYPE, O_PTXC, O_PTXD, O_LAST
};

static const cli_opt opts[] = {
	CLI_OPT('m', 'm', "model", "PATH", "HF model dir, llama2.c .bin, or checkpoint to start from (required)"),
	CLI_OPT('i', 'i', "input", "FILE", "records with reference scores (default stdin)"),
	CLI_OPT('o', 'o', "output", "DIR", "checkpoint directory to write (required)"),
	CLI_OPT(O_FRESH, 0, "fresh", NULL, "treat a checkpoint --model as a model only (new head, step 0)"),
	CLI_SECTION("Schedule:"),
	CLI_OPT(O_STEPS, 0, "steps", "N", "optimizer steps to run in this invocation"),
	CLI_OPT(O_EPOCHS, 0, "epochs", "E", "passes over the records (instead of --steps)"),
	CLI_OPT(O_TOTAL, 0, "total-steps", "N", "schedule length (default: steps done + --steps)"),
	CLI_OPT(O_BS, 0, "batch-size", "B", "pairs per micro-batch (default 8)"),
	CLI_OPT(O_ACC, 0, "grad-accum", "K", "micro-batches per optimizer step (default 1)"),
	CLI_OPT(O_LR, 0, "lr", "X", "policy learning rate (default 5e-6)"),
	CLI_OPT(O_BLR, 0, "beta-lr", "X", "learning rate of the beta model (default 1e-3)"),
	CLI_OPT(O_WD, 0, "weight-decay", "X", "policy weight decay, 2-D tensors only (default 0)"),
	CLI_OPT(O_BWD, 0, "beta-wd", "X", "beta head weight decay, weights and biases, not log w (default 0)"),
	CLI_OPT(O_WARM, 0, "warmup", "N", "warmup steps (default 0)"),
	CLI_OPT(O_SCHED, 0, "schedule", "S", "constant|linear|cosine (default linear)"),
	CLI_OPT(O_CLIP, 0, "clip", "X", "clip the global gradient norm to X, 0 = off (default 1)"),
	CLI_OPT(O_SEED, 0, "seed", "N", "shuffling, head init and beta-dpo sampling seed (default 1)"),
	CLI_SECTION("Loss:"),
	CLI_OPT(O_LOSS, 0, "loss", "L",
		"lbdpo (default), dpo, ipo, hinge, robust, simpo, ln-dpo, beta-dpo, sft, exo_pair, nca_pair, bco_pair, "
		"sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, or a comma list of them (TRL's loss_type list); "
		"sigmoid = dpo; reward trains a reward model"),
	CLI_OPT(O_LOSSW, 0, "loss-weights", "W,...", "weights of the --loss list, one each (default 1 each)"),
	CLI_OPT(O_LEARNB, 0, "learned-beta", NULL,
		"the beta model's per-pair beta drives every loss with a beta (lbdpo is dpo with this)"),
	CLI_OPT(O_TAU, 0, "discopop-tau", "X", "discopop: temperature of the modulation (default 0.05)"),
	CLI_OPT(O_CENTER, 0, "center-rewards-coef", "X", "reward: add X * mean (r_chosen + r_rejected)^2 (default 0)"),
	CLI_OPT(O_BETA, 0, "beta", "X", "fixed beta; lbdpo: target mean beta of --beta-init (default 0.1)"),
	CLI_OPT(O_LS, 0, "label-smoothing", "X",
		"label smoothing of robust, simpo, aot, aot_unpaired and exo_pair (which needs > 0) (default 0)"),
	CLI_OPT(O_GAMMA, 0, "gamma", "X", "simpo target margin (default 0.5)"),
	CLI_OPT(O_SFTW, 0, "sft-weight", "X", "add X * NLL(chosen) to the loss (RPO; default 0)"),
	CLI_OPT(O_BA, 0, "bdpo-alpha", "X", "beta-dpo: a in beta0*(1 + a*(M - M0)) (default 0.6)"),
	CLI_OPT(O_BR, 0, "bdpo-rho", "X", "beta-dpo: fraction of pairs filtered out (default 0.2)"),
	CLI_SECTION("Reinforcement learning (--loss ppo, grpo, rloo; input: scored lbdpo-sample --logprobs rollouts):"),
	CLI_OPT(O_REF, 0, "ref", "MODEL", "reference model of the KL (default: none, KL 0)"),
	CLI_OPT(O_KLC, 0, "kl-coef", "X",
		"KL coefficient: ppo, rloo in the reward, grpo in the loss (default: ppo, rloo 0.05; grpo 0)"),
	CLI_OPT(O_KLT, 0, "kl-target", "X", "adaptive KL coefficient toward this KL (default 0: fixed)"),
	CLI_OPT(O_KLH, 0, "kl-horizon", "N", "horizon of the adaptive KL coefficient (default 10000)"),
	CLI_OPT(O_CR, 0, "cliprange", "X", "ratio clip epsilon (default 0.2)"),
	CLI_OPT(O_NMB, 0, "num-mini-batches", "N", "mini-batches per epoch over the rollouts (default 1)"),
	CLI_OPT(O_NGEN, 0, "num-generations", "G",
		"grpo, rloo: samples per prompt (default: the run of lines with the first line's prompt)"),
	CLI_OPT(O_SCALE, 0, "scale-rewards", "S", "grpo: group or none (default group)"),
	CLI_OPT(O_LTYPE, 0, "loss-type", "T", "grpo: grpo (sequence mean) or bnpo (token mean) (default grpo)"),
	CLI_OPT(O_NORMADV, 0, "normalize-advantages", NULL, "rloo: whiten the advantages over the batch"),
	CLI_OPT(O_VALUE, 0, "value-model", "DIR",
		"ppo: value model, a reward model directory (default: the policy with a zero score head)"),
	CLI_OPT(O_VLR, 0, "value-lr", "X", "ppo: value model learning rate (default: --lr)"),
	CLI_OPT(O_CRV, 0, "cliprange-value", "X", "ppo: value clip (default 0.2)"),
	CLI_OPT(O_VFC, 0, "vf-coef", "X", "ppo: value loss coefficient (default 0.1)"),
	CLI_OPT(O_GGAMMA, 0, "gae-gamma", "X", "ppo: discount gamma of GAE (default 1)"),
	CLI_OPT(O_GLAM, 0, "gae-lambda", "X", "ppo: lambda of GAE (default 0.95)"),
	CLI_OPT(O_EOSPEN, 0, "missing-eos-penalty", "X", "ppo: subtract X from the score of a sample without EOS"),
	CLI_OPT(O_WHITEN, 0, "whiten-rewards", NULL, "ppo: whiten the per-token rewards"),
	CLI_OPT(O_PTXC, 0, "ptx-coef", "X", "ppo: PPO-ptx, add X * NLL of --ptx-data (default 0)"),
	CLI_OPT(O_PTXD, 0, "ptx-data", "FILE", "ppo: token records whose chosen completions are the pretraining data"),
	CLI_SECTION("Beta model (lbdpo, --learned-beta):"),
	CLI_OPT(O_BINIT, 0, "beta-init", "B", "set w so the first batch's mean beta is B (default: --beta)"),
	CLI_OPT(O_WINIT, 0, "w-init", "X", "start from w = X instead of --beta-init"),
	CLI_OPT(O_EPS, 0, "epsilon", "X", "eps of f = 1 + eps*tanh(NN(h)), in [0,1) (default 0.1)"),
	CLI_OPT(O_HEAD, 0, "head", "H", "linear|mlp (default linear)"),
	CLI_OPT(O_HID, 0, "head-hidden", "K", "mlp hidden width (default 64)"),
	CLI_OPT(O_POOL, 0, "pool", "P", "last|mean: which hidden state is h (default last)"),
	CLI_OPT(O_PPL, 0, "ppl-from", "S", "ref|policy: model giving PPL(x) (default ref; policy: see HAZARDS)"),
	CLI_OPT(O_BGRAD, 0, "beta-grad", "M", "full|head|none: gradient paths of beta (default full)"),
	CLI_OPT(O_FREEZE, 0, "freeze-policy", NULL, "train only the beta model"),
	CLI_OPT(O_RREG, 0, "range-reg", "X", "lambda1 of the range regularizer (default 0)"),
	CLI_OPT(O_BMIN, 0, "beta-min", "X", "lower end of the beta range (default 0)"),
	CLI_OPT(O_BMAX, 0, "beta-max", "X", "upper end of the beta range (default 10)"),
	CLI_OPT(O_GREG, 0, "group-reg", "X", "lambda2 of the group-consistency regularizer (default 0)"),
	CLI_OPT(O_EREG, 0, "entropy-reg", "X", "lambda3 of the entropy regularizer (default 0)"),
	CLI_OPT(O_EALPHA, 0, "entropy-alpha", "X", "alpha of the entropy regularizer (default 0.05)"),
	CLI_SECTION("Run:"),
	CLI_OPT(O_METRICS, 0, "metrics", "FILE",
		"per-step JSON lines into FILE (- = stderr); a fresh run refuses a non-empty FILE, a resumed one appends"),
	CLI_OPT(O_SAVE, 0, "save-every", "N", "also write --output every N steps (default: only at the end)"),
	CLI_OPT(O_TB, 0, "tensorboard", "DIR",
		"also write every metric as TensorBoard scalars into a new events.out.tfevents.* file in DIR"),
	CLI_SECTION("Evaluation:"),
	CLI_OPT(O_EVIN, 0, "eval-input", "FILE", "held-out records scored during training (eval/ metrics)"),
	CLI_OPT(O_EVSTEPS, 0, "eval-steps", "N", "score --eval-input every N steps (default 0: after the last step only)"),
	CLI_OPT(O_BEST, 0, "save-best", "METRIC",
		"keep the checkpoint of the best eval/ METRIC (e.g. eval/loss) in OUTPUT.best"),
	CLI_OPT(O_BESTMODE, 0, "save-best-mode", "M",
		"min|max: which --save-best value is better (default: min for a name with 'loss', else max)"),
	CLI_OPT(O_SDT, 0, "save-dtype", "T",
		"float32, float16 or bfloat16: the policy's weights in the checkpoint (default: the dtype the model came in)"),
	BACKEND_CLI_OPTS,
	CLI_OPT(O_ALLOW, 0, "allow-changed-options", NULL,
		"resuming: accept options that differ from the run's (--loss, --lr, ...; warns; default: refuse)"),
	CLI_OPT(O_IGNPROV, 0, "ignore-provenance", NULL,
		"train on records of another tokenizer or reference than the model's (warns; default: refuse)"),
	CLI_OPT('q', 'q', "quiet", NULL, "no progress lines and no summary"),
	CLI_ALIAS(0, "init", "model"),
	CLI_ALIAS(0, "out", "output"),
	{0}};

static const cli_spec spec = {"lbdpo-step", "lbdpo-step -m MODEL_OR_CHECKPOINT -o CHECKPOINT [options] < records",
			      "Run optimizer steps of learnable-beta DPO (or another --loss) on cached\n"
			      "preference records and write the next checkpoint.",
			      opts, print_version};

/* The long name of option key, for messages. */
static const char *flag_name(int key)
{
	for (const cli_opt *o = opts; o->key || o->lng || o->help; o++)
		if (o->key == key && o->lng && !o->alias_of)
			return o->lng;
	return "?";
}

/* A value of train_opts_to_json, as a flag's argument. */
static void opt_value(const json_t *v, char *out, size_t n)
{
	if (json_is_string(v))
		snprintf(out, n, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, n, "%.9g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, n, "%s", json_is_true(v) ? "on" : "off");
	else
		snprintf(out, n, "(none)");
}

/* What resuming does with each option recorded in the checkpoint (by its
 * train_opts_to_json key). Not given on the command line: the run's value.
 * Given and different: R_RUN (what the steps compute: the loss, its
 * parameters, the batch, the optimizer, the data order) is refused unless
 * --allow-changed-options; R_BETA (the checkpoint's β model) is always
 * refused, --fresh makes a new one; R_LOG is taken and logged. */
enum { R_RUN, R_BETA, R_LOG };
static const struct {
	const char *key;
	int opt, kind;
} resume_keys[] = {
	{"loss", O_LOSS, R_RUN},	       {"beta", O_BETA, R_RUN},		    {"batch_size", O_BS, R_RUN},
	{"grad_accum", O_ACC, R_RUN},	       {"lr", O_LR, R_RUN},		    {"beta_lr", O_BLR, R_RUN},
	{"weight_decay", O_WD, R_RUN},	       {"beta_wd", O_BWD, R_RUN},	    {"warmup", O_WARM, R_RUN},
	{"schedule", O_SCHED, R_RUN},	       {"clip", O_CLIP, R_RUN},		    {"seed", O_SEED, R_RUN},
	{"beta_grad", O_BGRAD, R_RUN},	       {"freeze_policy", O_FREEZE, R_RUN},  {"label_smoothing", O_LS, R_RUN},
	{"gamma", O_GAMMA, R_RUN},	       {"sft_weight", O_SFTW, R_RUN},	    {"bdpo_alpha", O_BA, R_RUN},
	{"bdpo_rho", O_BR, R_RUN},	       {"range_reg", O_RREG, R_RUN},	    {"beta_min", O_BMIN, R_RUN},
	{"beta_max", O_BMAX, R_RUN},	       {"group_reg", O_GREG, R_RUN},	    {"entropy_reg", O_EREG, R_RUN},
	{"entropy_alpha", O_EALPHA, R_RUN},    {"epsilon", O_EPS, R_BETA},	    {"pool", O_POOL, R_BETA},
	{"ppl_from", O_PPL, R_BETA},	       {"total_steps", O_TOTAL, R_LOG},    {"loss_weights", O_LOSSW, R_RUN},
	{"learned_beta", O_LEARNB, R_RUN},     {"discopop_tau", O_TAU, R_RUN},
	{"center_rewards_coef", O_CENTER, R_RUN},
};

/* Resuming ck: take the run's options where none is given, and check the
 * given ones against them (resume_keys). pj: the run's options. Every rank
 * decides alike: a refusal is printed once. */
static void resume_options(train_opts *to, const ckpt *ck, const json_t *pj, const char *given, int allow)
{
	train_opts prev;
	const char *bad;
	train_opts_default(&prev);
	if (!pj || train_opts_from_json(&prev, pj, &bad) != 0) {
		warning("%s: trainer_state.json has no readable options (%s): this run's options are not checked "
			"against the run's",
			to->init, pj ? bad : "none");
		return;
	}
	json_t *jp = train_opts_to_json(&prev), *jc = train_opts_to_json(to);
	char refused[1024] = "", a[64], b[64];
	for (size_t i = 0; i < sizeof resume_keys / sizeof *resume_keys; i++) {
		const char *k = resume_keys[i].key, *f = flag_name(resume_keys[i].opt);
		json_t *vp = json_object_get(jp, k), *vc = json_object_get(jc, k);
		if (json_equal(vp, vc))
			continue;
		if (!given[resume_keys[i].opt]) {
			if (resume_keys[i].kind != R_LOG) /* total steps: the schedule rule in main */
				json_object_set(jc, k, vp);
			continue;
		}
		opt_value(vp, a, sizeof a);
		opt_value(vc, b, sizeof b);
		if (resume_keys[i].kind == R_BETA)
			dist_die_same(EXIT_DATA,
				      "%s: --%s %s: the checkpoint's beta model has %s, fixed on resume (--fresh makes "
				      "a new beta model)",
			    to->init, f, b, a);
		if (resume_keys[i].kind == R_LOG)
			info("resuming with --%s %s (the run's: %s)", f, b, a);
		else if (allow && dist_rank() == 0)
			warning("resuming with --%s %s instead of the run's %s (--allow-changed-options)", f, b, a);
		else if (!allow)
			snprintf(refused + strlen(refused), sizeof refused - strlen(refused), "%s--%s %s (the run's: %s)",
				 refused[0] ? ", " : "", f, b, a);
	}
	if (refused[0])
		dist_die_same(EXIT_DATA,
			      "%s: resuming with options that change what the run trains: %s; give "
			      "--allow-changed-options to change them anyway, or --fresh to start a new run",
		    to->init, refused);
	if (given[O_HEAD] && to->ck.head != ck->bh->kind)
		dist_die_same(EXIT_DATA,
			      "%s: --head %s: the checkpoint's beta model is %s, fixed on resume (--fresh makes a new "
			      "beta model)",
		    to->init, head_kind_name(to->ck.head), head_kind_name(ck->bh->kind));
	if (given[O_HID] && ck->bh->kind == HEAD_MLP && to->ck.head_hidden != ck->bh->K)
		dist_die_same(EXIT_DATA,
			      "%s: --head-hidden %d: the checkpoint's beta model has %d, fixed on resume (--fresh makes "
			      "a new beta model)",
		    to->init, to->ck.head_hidden, ck->bh->K);
	json_object_del(jc, "init"); /* to->init stays the path given */
	if (train_opts_from_json(to, jc, &bad) != 0)
		die("internal: options %s", bad);
	json_decref(jp);
	json_decref(jc);
}

/* What a resumed run may change, not in train_opts: logged when it does. */
static void resume_log(const json_t *pj, const json_t *state, const char *metrics, long save_every, int threads)
{
	const char *pm = json_string_value(json_object_get(pj, "metrics"));
	const json_t *ps = json_object_get(pj, "save_every"), *pt = json_object_get(pj, "threads");
	const char *pd = json_string_value(json_object_get(state, "device"));
	if (pm && strcmp(pm, metrics ? metrics : ""))
		info("resuming with --metrics %s (the run's: %s)", metrics ? metrics : "(none)", pm[0] ? pm : "(none)");
	if (json_is_integer(ps) && json_integer_value(ps) != save_every)
		info("resuming with --save-every %ld (the run's: %lld)", save_every, (long long)json_integer_value(ps));
	if (json_is_integer(pt) && json_integer_value(pt) != threads)
		info("resuming with --threads %d (the run's: %lld; 0 = the default)", threads,
		     (long long)json_integer_value(pt));
	if (pd && lbdpo_run_device && strcmp(pd, lbdpo_run_device))
		info("resuming on %s (the run's: %s)", lbdpo_run_device, pd);
}

/* --loss ppo|grpo|rloo: one RL update (libcore/train/rlstep.c); the
 * options of the preference losses are refused */
static int rl_main(rl_opts *ro, const cli *c, int argc, char **argv, const char *given, const char *in, const char *out,
		   const char *metrics, const train_opts *to, double epochs, backend_opts *bo)
{
	static const int allowed[] = {'m', 'i', 'o', O_EPOCHS, O_LR, O_WD, O_CLIP, O_SEED, O_LOSS, O_METRICS, 'q',
				      O_REF, O_VALUE, O_VLR, O_KLC, O_KLT, O_KLH, O_CR, O_CRV, O_VFC, O_GGAMMA, O_GLAM,
				      O_NMB, O_NGEN, O_EOSPEN, O_WHITEN, O_NORMADV, O_SCALE, O_LTYPE, O_PTXC, O_PTXD};
	for (int k = 1; k < O_LAST; k++) {
		if (!given[k] || (k > 'z' && k < O_FRESH))
			continue;
		int ok = 0;
		for (size_t q = 0; q < sizeof allowed / sizeof *allowed; q++)
			ok |= allowed[q] == k;
		if (!ok && k >= O_FRESH)
			die_usage("--%s is not an option of --loss %s", flag_name(k), rl_algo_name(ro->algo));
	}
	if (c->ind < argc)
		die_usage("unexpected argument '%s'", argv[c->ind]);
	if (!to->init || !out)
		die_usage("--model and --output are required");
	if (given[O_EPOCHS] && (epochs < 1 || epochs != floor(epochs)))
		die_usage("--epochs: --loss %s takes a whole number of passes over the rollouts", rl_algo_name(ro->algo));
	if (ro->ptx_coef > 0 && !ro->ptx_data)
		die_usage("--ptx-coef needs --ptx-data");
	if ((ro->ptx_coef > 0 || ro->value || given[O_VLR] || given[O_CRV] || given[O_VFC] || given[O_GGAMMA] ||
	     given[O_GLAM] || given[O_EOSPEN] || given[O_WHITEN]) && ro->algo != RL_PPO)
		die_usage("--value-model, --value-lr, --cliprange-value, --vf-coef, --gae-gamma, --gae-lambda, "
			  "--missing-eos-penalty, --whiten-rewards and --ptx-coef are options of --loss ppo");
	if ((given[O_SCALE] || given[O_LTYPE]) && ro->algo != RL_GRPO)
		die_usage("--scale-rewards and --loss-type are options of --loss grpo");
	if (given[O_NORMADV] && ro->algo != RL_RLOO)
		die_usage("--normalize-advantages is an option of --loss rloo");
	backend_opts_apply(bo);
	ro->policy = to->init;
	ro->out = out;
	ro->in = in ? in : "-";
	ro->metrics = metrics;
	ro->lr = given[O_LR] ? to->lr : 1e-5;
	ro->weight_decay = to->weight_decay;
	ro->clip = to->clip;
	ro->seed = to->ck.seed;
	ro->epochs = epochs > 0 ? (int)epochs : -1;
	ro->quiet = lbdpo_quiet;
	rl_train(ro);
	return 0;
}

int main(int argc, char **argv)
{
	set_progname("lbdpo-step");
	lbdpo_runtime_init(argv);
	const char *in = NULL, *out = NULL, *metrics = NULL, *loss_list = NULL, *loss_weights = NULL;
	const char *tbdir = NULL, *eval_in = NULL, *best_metric = NULL, *best_mode = NULL;
	char errbuf[256];
	long steps = -1, save_every = 0, eval_steps = 0;
	double epochs = -1;
	int save_dtype = -1, ignore_prov = 0, allow_changed = 0, k;
	char given[O_LAST] = {0}; /* options on the command line, by key */
	train_opts to;
	train_opts_default(&to);
	rl_opts ro;
	rl_opts_default(&ro);
	int rl = 0;
	loss_opts *lo = &to.loss;
	backend_opts bo = {0};
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int key; (key = cli_next(&c)) != -1;) {
		const char *arg = c.arg;
		if (key > 0 && key < O_LAST)
			given[key] = 1;
		if (backend_opts_parse(&bo, key, arg))
			continue;
		switch (key) {
		case 'i': in = arg; break;
		case 'o': out = arg; break;
		case 'm': to.init = arg; break;
		case O_FRESH: to.ck.fresh = 1; break;
		case O_STEPS: steps = parse_long("--steps", arg, 0, 1L << 40); break;
		case O_EPOCHS: epochs = parse_double("--epochs", arg, 0, 1e6); break;
		case O_TOTAL: to.total_steps = parse_long("--total-steps", arg, 1, 1L << 40); break;
		case O_BS: to.batch_size = (int)parse_long("--batch-size", arg, 1, 1 << 20); break;
		case O_ACC: to.grad_accum = (int)parse_long("--grad-accum", arg, 1, 1 << 20); break;
		case O_LR: to.lr = parse_double("--lr", arg, 0, 10); break;
		case O_BLR: to.beta_lr = parse_double("--beta-lr", arg, 0, 10); break;
		case O_WD: to.weight_decay = parse_double("--weight-decay", arg, 0, 10); break;
		case O_BWD: to.beta_wd = parse_double("--beta-wd", arg, 0, 10); break;
		case O_WARM: to.warmup = parse_long("--warmup", arg, 0, 1L << 40); break;
		case O_SCHED:
			if ((k = sched_parse(arg)) < 0)
				die_usage("--schedule: expected constant, linear or cosine, got '%s'", arg);
			to.schedule = (sched_kind)k;
			break;
		case O_CLIP: to.clip = parse_double("--clip", arg, 0, 1e9); break;
		case O_SEED: to.ck.seed = (uint64_t)parse_long("--seed", arg, 0, 1L << 62); break;
		case O_LOSS:
			if ((k = rl_algo_parse(arg)) >= 0) {
				rl = 1;
				ro.algo = (rl_algo)k;
				break;
			}
			if ((loss_list = strchr(arg, ',') ? arg : NULL))
				break; /* a list: set below with --loss-weights */
			if ((k = loss_kind_parse(arg)) < 0)
				die_usage("--loss: unknown loss '%s' (valid: %s)", arg, loss_kind_list());
			lo->kind = (loss_kind)k;
			break;
		case O_BETA: lo->beta = parse_double("--beta", arg, 1e-9, 1e6); break;
		case O_BINIT:
			to.beta_init = parse_double("--beta-init", arg, 1e-9, 1e6);
			to.w_init = -1;
			break;
		case O_WINIT: to.w_init = parse_double("--w-init", arg, 1e-30, 1e30); break;
		case O_EPS:
			to.ck.eps = parse_double("--epsilon", arg, 0, 1);
			if (!(to.ck.eps >= 0 && to.ck.eps < 1))
				die_usage("--epsilon: must be in [0,1)");
			break;
		case O_HEAD:
			if ((k = head_kind_parse(arg)) < 0)
				die_usage("--head: expected linear or mlp, got '%s'", arg);
			to.ck.head = (head_kind)k;
			break;
		case O_HID: to.ck.head_hidden = (int)parse_long("--head-hidden", arg, 1, 65536); break;
		case O_POOL:
			if ((k = pool_kind_parse(arg)) < 0)
				die_usage("--pool: expected last or mean, got '%s'", arg);
			to.ck.pool = (pool_kind)k;
			break;
		case O_PPL:
			if ((k = ppl_source_parse(arg)) < 0)
				die_usage("--ppl-from: expected policy or ref, got '%s'", arg);
			to.ck.ppl_from = (ppl_source)k;
			break;
		case O_BGRAD:
			if ((k = beta_grad_parse(arg)) < 0)
				die_usage("--beta-grad: expected full, head or none, got '%s'", arg);
			to.beta_grad = (beta_grad_mode)k;
			break;
		case O_FREEZE: to.freeze_policy = 1; break;
		case O_LS: lo->label_smoothing = parse_double("--label-smoothing", arg, 0, 0.499999); break;
		case O_GAMMA: lo->gamma = parse_double("--gamma", arg, -1e6, 1e6); break;
		case O_SFTW: lo->sft_weight = parse_double("--sft-weight", arg, 0, 1e6); break;
		case O_BA: lo->bdpo_alpha = parse_double("--bdpo-alpha", arg, -1e6, 1e6); break;
		case O_BR: lo->bdpo_rho = parse_double("--bdpo-rho", arg, 0, 0.999999); break;
		case O_LOSSW: loss_weights = arg; break;
		case O_LEARNB: lo->learned_beta = 1; break;
		case O_TAU: lo->discopop_tau = parse_double("--discopop-tau", arg, 1e-9, 1e6); break;
		case O_CENTER: lo->center_coef = parse_double("--center-rewards-coef", arg, 0, 1e6); break;
		case O_RREG: lo->range_reg = parse_double("--range-reg", arg, 0, 1e9); break;
		case O_BMIN: lo->beta_min = parse_double("--beta-min", arg, 0, 1e9); break;
		case O_BMAX: lo->beta_max = parse_double("--beta-max", arg, 0, 1e9); break;
		case O_GREG: lo->group_reg = parse_double("--group-reg", arg, 0, 1e9); break;
		case O_EREG: lo->entropy_reg = parse_double("--entropy-reg", arg, 0, 1e9); break;
		case O_EALPHA: lo->entropy_alpha = parse_double("--entropy-alpha", arg, -1e9, 1e9); break;
		case O_METRICS: metrics = arg; break;
		case O_SAVE: save_every = parse_long("--save-every", arg, 0, 1L << 40); break;
		case O_TB: tbdir = arg; break;
		case O_EVIN: eval_in = arg; break;
		case O_EVSTEPS: eval_steps = parse_long("--eval-steps", arg, 0, 1L << 40); break;
		case O_BEST: best_metric = arg; break;
		case O_BESTMODE:
			if (strcmp(arg, "min") && strcmp(arg, "max"))
				die_usage("--save-best-mode: expected min or max, got '%s'", arg);
			best_mode = arg;
			break;
		case O_SDT:
			if ((save_dtype = hfconfig_dtype(arg)) < 0)
				die_usage("--save-dtype: '%s' is not float32, float16 or bfloat16", arg);
			break;
		case O_IGNPROV: ignore_prov = 1; break;
		case O_ALLOW: allow_changed = 1; break;
		case 'q': lbdpo_quiet = 1; break;
		case O_REF: ro.ref = arg; break;
		case O_VALUE: ro.value = arg; break;
		case O_VLR: ro.value_lr = parse_double("--value-lr", arg, 0, 10); break;
		case O_KLC: ro.kl_coef = parse_double("--kl-coef", arg, 0, 1e6); break;
		case O_KLT: ro.kl_target = parse_double("--kl-target", arg, 0, 1e9); break;
		case O_KLH: ro.kl_horizon = parse_double("--kl-horizon", arg, 1, 1e12); break;
		case O_CR: ro.eps = parse_double("--cliprange", arg, 0, 10); break;
		case O_CRV: ro.eps_v = parse_double("--cliprange-value", arg, 0, 1e9); break;
		case O_VFC: ro.vf_coef = parse_double("--vf-coef", arg, 0, 1e9); break;
		case O_GGAMMA: ro.gamma = parse_double("--gae-gamma", arg, 0, 1); break;
		case O_GLAM: ro.lam = parse_double("--gae-lambda", arg, 0, 1); break;
		case O_NMB: ro.mini_batches = (int)parse_long("--num-mini-batches", arg, 1, 1 << 20); break;
		case O_NGEN: ro.G = (int)parse_long("--num-generations", arg, 2, 1 << 20); break;
		case O_EOSPEN: ro.eos_penalty = parse_double("--missing-eos-penalty", arg, 0, 1e9); break;
		case O_WHITEN: ro.whiten_rewards = 1; break;
		case O_NORMADV: ro.normalize_adv = 1; break;
		case O_SCALE:
			if (strcmp(arg, "group") && strcmp(arg, "none"))
				die_usage("--scale-rewards: expected group or none, got '%s'", arg);
			ro.scale_rewards = !strcmp(arg, "group");
			break;
		case O_LTYPE:
			if (strcmp(arg, "grpo") && strcmp(arg, "bnpo"))
				die_usage("--loss-type: expected grpo or bnpo, got '%s'", arg);
			ro.agg_seq = !strcmp(arg, "grpo");
			break;
		case O_PTXC: ro.ptx_coef = parse_double("--ptx-coef", arg, 0, 1e9); break;
		case O_PTXD: ro.ptx_data = arg; break;
		}
	}
	static const int rl_only[] = {O_REF, O_VALUE, O_VLR, O_KLC, O_KLT, O_KLH, O_CR, O_CRV, O_VFC, O_GGAMMA, O_GLAM,
				      O_NMB, O_NGEN, O_EOSPEN, O_WHITEN, O_NORMADV, O_SCALE, O_LTYPE, O_PTXC, O_PTXD};
	if (rl)
		return rl_main(&ro, &c, argc, argv, given, in, out, metrics, &to, epochs, &bo);
	for (size_t q = 0; q < sizeof rl_only / sizeof *rl_only; q++)
		if (given[rl_only[q]])
			die_usage("--%s is an option of --loss ppo, grpo or rloo", flag_name(rl_only[q]));
	if (c.ind < argc)
		die_usage("unexpected argument '%s'", argv[c.ind]);
	if (!to.init)
		die_usage("--model is required");
	if (!out)
		die_usage("--output is required");
	if (steps < 0 && epochs < 0)
		die_usage("give --steps or --epochs");
	if (lo->beta_min > lo->beta_max)
		die_usage("--beta-min is larger than --beta-max");
	if ((loss_list || loss_weights) &&
	    loss_opts_set(lo, loss_list ? loss_list : loss_kind_name(lo->kind), loss_weights, errbuf, sizeof errbuf) < 0)
		die_usage("%s", errbuf);
	if (loss_opts_check(lo, errbuf, sizeof errbuf) < 0)
		die_usage("%s", errbuf);
	if (given[O_EVSTEPS] && !eval_in)
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
			       "(-i FILE), not standard input", nrank);
	if (rank > 0)
		lbdpo_quiet = 1; /* rank 0 reports progress and the summary */
	ckpt_check_out(out); /* before any work: --output replaces only a checkpoint */
	if (best_dir)
		ckpt_check_out(best_dir);
	signals_graceful();

	to.ck.w0 = to.w_init > 0 ? to.w_init : 1.0;
	to.ck.master = 1; /* a resumed run continues from the f32 master weights */
	to.ck.reward = lo->kind == LOSS_REWARD; /* an LM gets a score head */
	ckpt *ck = ckpt_load(to.init, &to.ck);
	ck->save_dtype = save_dtype;
	const json_t *prev_opts = ck->resumed ? json_object_get(ck->state, "options") : NULL;
	if (ck->resumed) {
		resume_options(&to, ck, prev_opts, given, allow_changed);
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
	if (to.total_steps < 0 && ck->state) {
		/* resuming: keep the schedule length the run started with */
		train_opts prev;
		const char *bad;
		train_opts_default(&prev);
		if (train_opts_from_json(&prev, json_object_get(ck->state, "options"), &bad) == 0 &&
		    prev.total_steps >= ck->step + steps)
			to.total_steps = prev.total_steps;
	}
	if (to.total_steps < 0) {
		to.total_steps = ck->step + steps;
		const json_t *pt = json_object_get(prev_opts, "total_steps");
		if (json_is_integer(pt) && json_integer_value(pt) != to.total_steps)
			info("resuming: the schedule is now %ld steps long (the run's: %lld), to fit --steps", to.total_steps,
			     (long long)json_integer_value(pt));
	}
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
		mf = !strcmp(metrics, "-") ? stderr : train_metrics_open(metrics, run_id, ck->step, ck->resumed, legacy_run);
	tfevents *tb = tbdir && rank == 0 ? tfevents_open(tbdir) : NULL;

	const long step_end = ck->step + steps, step_start = ck->step;
	double last_loss = NAN, last_acc = NAN;
	progress_meter pg;
	progress_init(&pg, steps, "steps");
	int sig = 0;
	while (ck->step < step_end && !(sig = dp_stop_all())) {
		train_metrics tm;
		if (train_step(eng, &tm) != 0)
			dist_die_same(EXIT_DATA, "step %ld: non-finite %s; stopping without writing this step (%s keeps the last good "
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
				info("step %ld: best %s so far (%.6g): writing %s", ck->step, best_metric, kv[best_col].v,
				     best_dir);
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
