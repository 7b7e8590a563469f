/* lbdpo-step — optimizer steps of (LB-)DPO on cached preference records.
 *
 *   lbdpo-step --init MODEL_OR_CHECKPOINT --out CHECKPOINT [--steps N | --epochs E] < train.ref
 *
 * Formulas: libcore/loss.c (losses), libcore/betahead.h (β model),
 * libcore/adamw.h (optimizer); man lbdpo-step(1). */
#define _GNU_SOURCE
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/adamw.h"
#include "libcore/betahead.h"
#include "libcore/loss.h"
#include "libcore/model.h"
#include "libcore/train.h"
#include "libcore/cpu.h"
#include "libcore/util.h"

static void usage(void)
{
	printf("usage: lbdpo-step --init MODEL_OR_CHECKPOINT --out CHECKPOINT [options] < records\n"
	       "Run optimizer steps of learnable-beta DPO (or another --loss) on cached\n"
	       "preference records and write the next checkpoint.\n\n"
	       "  -i, --input FILE       records with reference scores (default stdin)\n"
	       "  -o, --out DIR          checkpoint directory to write (required)\n"
	       "      --init PATH        HF model dir, llama2.c .bin, or checkpoint to start from\n"
	       "      --fresh            treat a checkpoint --init as a model only (new head, step 0)\n"
	       "      --steps N          optimizer steps to run in this invocation\n"
	       "      --epochs E         passes over the records (instead of --steps)\n"
	       "      --total-steps N    schedule length (default: steps done + --steps)\n"
	       "      --batch-size B     pairs per micro-batch (default 8)\n"
	       "      --grad-accum K     micro-batches per optimizer step (default 1)\n"
	       "      --lr X             policy learning rate (default 5e-6)\n"
	       "      --beta-lr X        learning rate of the beta model (default 1e-3)\n"
	       "      --weight-decay X   policy weight decay, 2-D tensors only (default 0)\n"
	       "      --beta-wd X        beta head weight decay, not on log w (default 0)\n"
	       "      --warmup N         warmup steps (default 0)\n"
	       "      --schedule S       constant|linear|cosine (default linear)\n"
	       "      --clip X           clip the global gradient norm to X, 0 = off (default 1)\n"
	       "      --seed N           shuffling, head init and beta-dpo sampling seed (default 1)\n"
	       "      --loss L           lbdpo|dpo|ipo|hinge|robust|simpo|ln-dpo|beta-dpo|sft (default lbdpo)\n"
	       "      --beta X           fixed beta; lbdpo: target mean beta of --beta-init (default 0.1)\n"
	       "      --beta-init B      lbdpo: set w so the first batch's mean beta is B (default: --beta)\n"
	       "      --w-init X         lbdpo: start from w = X instead of --beta-init\n"
	       "      --epsilon X        eps of f = 1 + eps*tanh(NN(h)), in (0,1) (default 0.1)\n"
	       "      --head H           linear|mlp (default linear)\n"
	       "      --head-hidden K    mlp hidden width (default 64)\n"
	       "      --pool P           last|mean: which hidden state is h (default last)\n"
	       "      --ppl-from S       policy|ref: model giving PPL(x) (default policy)\n"
	       "      --beta-grad M      full|head|none: gradient paths of beta (default full)\n"
	       "      --freeze-policy    train only the beta model\n"
	       "      --label-smoothing X  robust and simpo label smoothing (default 0)\n"
	       "      --gamma X          simpo target margin (default 0.5)\n"
	       "      --sft-weight X     add X * NLL(chosen) to the loss (RPO; default 0)\n"
	       "      --bdpo-alpha X     beta-dpo: a in beta0*(1 + a*(M - M0)) (default 0.6)\n"
	       "      --bdpo-rho X       beta-dpo: fraction of pairs filtered out (default 0.2)\n"
	       "      --range-reg X      lambda1 of the range regularizer (default 0)\n"
	       "      --beta-min X       lower end of the beta range (default 0)\n"
	       "      --beta-max X       upper end of the beta range (default 10)\n"
	       "      --group-reg X      lambda2 of the group-consistency regularizer (default 0)\n"
	       "      --entropy-reg X    lambda3 of the entropy regularizer (default 0)\n"
	       "      --entropy-alpha X  alpha of the entropy regularizer (default 0.05)\n"
	       "      --metrics FILE     append per-step JSON lines to FILE (- = stderr)\n"
	       "      --save-every N     also write --out every N steps (default: only at the end)\n"
	       "      --threads N        OpenMP/OpenBLAS threads (default: library default)\n"
	       "  -q, --quiet            no progress bar\n"
	       "  -h, --help             this help\n"
	       "  -V, --version          print the version\n");
}

enum {
	O_INIT = 256, O_FRESH, O_STEPS, O_EPOCHS, O_TOTAL, O_BS, O_ACC, O_LR, O_BLR, O_WD, O_BWD, O_WARM, O_SCHED,
	O_CLIP, O_SEED, O_LOSS, O_BETA, O_BINIT, O_WINIT, O_EPS, O_HEAD, O_HID, O_POOL, O_PPL, O_BGRAD, O_FREEZE,
	O_LS, O_GAMMA, O_SFTW, O_BA, O_BR, O_RREG, O_BMIN, O_BMAX, O_GREG, O_EREG, O_EALPHA, O_METRICS, O_SAVE,
	O_THREADS
};

static const struct option longopts[] = {
	{"input", required_argument, 0, 'i'},	  {"out", required_argument, 0, 'o'},
	{"init", required_argument, 0, O_INIT},	  {"fresh", no_argument, 0, O_FRESH},
	{"steps", required_argument, 0, O_STEPS}, {"epochs", required_argument, 0, O_EPOCHS},
	{"total-steps", required_argument, 0, O_TOTAL},
	{"batch-size", required_argument, 0, O_BS}, {"grad-accum", required_argument, 0, O_ACC},
	{"lr", required_argument, 0, O_LR},	  {"beta-lr", required_argument, 0, O_BLR},
	{"weight-decay", required_argument, 0, O_WD}, {"beta-wd", required_argument, 0, O_BWD},
	{"warmup", required_argument, 0, O_WARM}, {"schedule", required_argument, 0, O_SCHED},
	{"clip", required_argument, 0, O_CLIP},	  {"seed", required_argument, 0, O_SEED},
	{"loss", required_argument, 0, O_LOSS},	  {"beta", required_argument, 0, O_BETA},
	{"beta-init", required_argument, 0, O_BINIT},	  {"w-init", required_argument, 0, O_WINIT},
	{"epsilon", required_argument, 0, O_EPS}, {"head", required_argument, 0, O_HEAD},
	{"head-hidden", required_argument, 0, O_HID}, {"pool", required_argument, 0, O_POOL},
	{"ppl-from", required_argument, 0, O_PPL}, {"beta-grad", required_argument, 0, O_BGRAD},
	{"freeze-policy", no_argument, 0, O_FREEZE}, {"label-smoothing", required_argument, 0, O_LS},
	{"gamma", required_argument, 0, O_GAMMA}, {"sft-weight", required_argument, 0, O_SFTW},
	{"bdpo-alpha", required_argument, 0, O_BA}, {"bdpo-rho", required_argument, 0, O_BR},
	{"range-reg", required_argument, 0, O_RREG}, {"beta-min", required_argument, 0, O_BMIN},
	{"beta-max", required_argument, 0, O_BMAX}, {"group-reg", required_argument, 0, O_GREG},
	{"entropy-reg", required_argument, 0, O_EREG}, {"entropy-alpha", required_argument, 0, O_EALPHA},
	{"metrics", required_argument, 0, O_METRICS}, {"save-every", required_argument, 0, O_SAVE},
	{"threads", required_argument, 0, O_THREADS}, {"quiet", no_argument, 0, 'q'},
	{"help", no_argument, 0, 'h'},		  {"version", no_argument, 0, 'V'},
	{0, 0, 0, 0}};

/* The one place where gradients of all workers are combined (DESIGN §5): a
 * data-parallel build replaces this with an MPI allreduce (sum) of g[n],
 * hg[hn] and the per-step counters, then divides by the worker count. */
static void reduce_gradients(float *g, size_t n, float *hg, size_t hn, double *counters, int nc)
{
	(void)g;
	(void)n;
	(void)hg;
	(void)hn;
	(void)counters;
	(void)nc;
}

/* Permutation of [0, n) for an epoch: Fisher–Yates with splitmix64 seeded by
 * (seed, epoch), so any data position can be recomputed on resume. */
static void epoch_perm(int *perm, int n, uint64_t seed, long epoch)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
	for (int i = 0; i < n; i++)
		perm[i] = i;
	for (int i = n - 1; i > 0; i--) {
		uint64_t z = (s += 0x9E3779B97F4A7C15ull);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		z ^= z >> 31;
		int j = (int)(z % (uint64_t)(i + 1));
		int t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

static int all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	set_progname("lbdpo-step");
	lbdpo_runtime_init(argv);
	const char *in = NULL, *out = NULL, *init = NULL, *metrics = NULL;
	long steps = -1, total = -1, bs = 8, accum = 1, warmup = 0, seed = 1, hidden = 64, save_every = 0;
	long threads = 0;
	double beta_init = -1;
	double epochs = -1, lr = 5e-6, beta_lr = 1e-3, wd = 0, beta_wd = 0, clip = 1.0, w_init = -1, eps = 0.1;
	int sched = SCHED_LINEAR, head = HEAD_LINEAR, pool = POOL_LAST, ppl = PPL_POLICY, bgrad = BGRAD_FULL;
	int freeze = 0, fresh = 0, quiet = 0;
	loss_opts lo;
	loss_opts_default(&lo);
	lo.entropy_alpha = 0.05;
	int c;
	while ((c = getopt_long(argc, argv, "i:o:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case O_INIT: init = optarg; break;
		case O_FRESH: fresh = 1; break;
		case O_STEPS: steps = parse_long("--steps", optarg, 0, 1L << 40); break;
		case O_EPOCHS: epochs = parse_double("--epochs", optarg, 0, 1e6); break;
		case O_TOTAL: total = parse_long("--total-steps", optarg, 1, 1L << 40); break;
		case O_BS: bs = parse_long("--batch-size", optarg, 1, 1 << 20); break;
		case O_ACC: accum = parse_long("--grad-accum", optarg, 1, 1 << 20); break;
		case O_LR: lr = parse_double("--lr", optarg, 0, 10); break;
		case O_BLR: beta_lr = parse_double("--beta-lr", optarg, 0, 10); break;
		case O_WD: wd = parse_double("--weight-decay", optarg, 0, 10); break;
		case O_BWD: beta_wd = parse_double("--beta-wd", optarg, 0, 10); break;
		case O_WARM: warmup = parse_long("--warmup", optarg, 0, 1L << 40); break;
		case O_SCHED:
			if ((sched = sched_parse(optarg)) < 0)
				die_usage("--schedule: expected constant, linear or cosine, got '%s'", optarg);
			break;
		case O_CLIP: clip = parse_double("--clip", optarg, 0, 1e9); break;
		case O_SEED: seed = parse_long("--seed", optarg, 0, 1L << 62); break;
		case O_LOSS: {
			int k = loss_kind_parse(optarg);
			if (k < 0)
				die_usage("--loss: unknown loss '%s'", optarg);
			lo.kind = (loss_kind)k;
			break;
		}
		case O_BETA: lo.beta = parse_double("--beta", optarg, 1e-9, 1e6); break;
		case O_BINIT:
			beta_init = parse_double("--beta-init", optarg, 1e-9, 1e6);
			w_init = -1;
			break;
		case O_WINIT: w_init = parse_double("--w-init", optarg, 1e-30, 1e30); break;
		case O_EPS: eps = parse_double("--epsilon", optarg, 0, 1); if (!(eps > 0 && eps < 1)) die_usage("--epsilon: must be in (0,1)"); break;
		case O_HEAD:
			if (!strcmp(optarg, "linear")) head = HEAD_LINEAR;
			else if (!strcmp(optarg, "mlp")) head = HEAD_MLP;
			else die_usage("--head: expected linear or mlp, got '%s'", optarg);
			break;
		case O_HID: hidden = parse_long("--head-hidden", optarg, 1, 65536); break;
		case O_POOL:
			if (!strcmp(optarg, "last")) pool = POOL_LAST;
			else if (!strcmp(optarg, "mean")) pool = POOL_MEAN;
			else die_usage("--pool: expected last or mean, got '%s'", optarg);
			break;
		case O_PPL:
			if (!strcmp(optarg, "policy")) ppl = PPL_POLICY;
			else if (!strcmp(optarg, "ref")) ppl = PPL_REF;
			else die_usage("--ppl-from: expected policy or ref, got '%s'", optarg);
			break;
		case O_BGRAD:
			if (!strcmp(optarg, "full")) bgrad = BGRAD_FULL;
			else if (!strcmp(optarg, "head")) bgrad = BGRAD_HEAD;
			else if (!strcmp(optarg, "none")) bgrad = BGRAD_NONE;
			else die_usage("--beta-grad: expected full, head or none, got '%s'", optarg);
			break;
		case O_FREEZE: freeze = 1; break;
		case O_LS: lo.label_smoothing = parse_double("--label-smoothing", optarg, 0, 0.499999); break;
		case O_GAMMA: lo.gamma = parse_double("--gamma", optarg, -1e6, 1e6); break;
		case O_SFTW: lo.sft_weight = parse_double("--sft-weight", optarg, 0, 1e6); break;
		case O_BA: lo.bdpo_alpha = parse_double("--bdpo-alpha", optarg, -1e6, 1e6); break;
		case O_BR: lo.bdpo_rho = parse_double("--bdpo-rho", optarg, 0, 0.999999); break;
		case O_RREG: lo.range_reg = parse_double("--range-reg", optarg, 0, 1e9); break;
		case O_BMIN: lo.beta_min = parse_double("--beta-min", optarg, 0, 1e9); break;
		case O_BMAX: lo.beta_max = parse_double("--beta-max", optarg, 0, 1e9); break;
		case O_GREG: lo.group_reg = parse_double("--group-reg", optarg, 0, 1e9); break;
		case O_EREG: lo.entropy_reg = parse_double("--entropy-reg", optarg, 0, 1e9); break;
		case O_EALPHA: lo.entropy_alpha = parse_double("--entropy-alpha", optarg, -1e9, 1e9); break;
		case O_METRICS: metrics = optarg; break;
		case O_SAVE: save_every = parse_long("--save-every", optarg, 0, 1L << 40); break;
		case O_THREADS: threads = parse_long("--threads", optarg, 0, 4096); break;
		case 'q': quiet = 1; break;
		case 'h': usage(); close_stdout(); return 0;
		case 'V': print_version("lbdpo-step"); return 0;
		default: die_usage("unknown option");
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!init)
		die_usage("--init is required");
	if (!out)
		die_usage("--out is required");
	if (steps < 0 && epochs < 0)
		die_usage("give --steps or --epochs");
	if (lo.beta_min > lo.beta_max)
		die_usage("--beta-min is larger than --beta-max");
	if (threads > 0)
		lbdpo_set_threads((int)threads);

	const int learned = loss_uses_learned_beta(lo.kind);
	ckpt *ck = ckpt_load(init, fresh, (head_kind)head, (int)hidden, (float)eps, (pool_kind)pool, (ppl_source)ppl,
			     w_init > 0 ? w_init : 1.0, (uint64_t)seed);
	const model_config *cfg = model_cfg(ck->m);
	pref_set *data = pref_load(in, loss_needs_ref(lo.kind), (uint32_t)cfg->vocab_size);
	if (data->n == 0)
		die("%s: no records", data->name);
	const int n_comp = lo.kind == LOSS_SFT ? 1 : 2;
	for (int i = 0; learned && i < data->n; i++) {
		if (ck->ppl_from == PPL_REF && !data->r[i].has_plogp)
			die("%s: record %llu: no ref_prompt_logp (needed by --ppl-from ref)", data->name,
			    (unsigned long long)data->r[i].index);
		if (lo.entropy_reg != 0 && !data->r[i].has_entropy)
			die("%s: record %llu: no ref_prompt_entropy (needed by --entropy-reg)", data->name,
			    (unsigned long long)data->r[i].index);
	}

	if (steps < 0)
		steps = (long)ceil(epochs * data->n / (double)(bs * accum));
	if (total < 0 && ck->state) {
		json_t *t = json_object_get(json_object_get(ck->state, "options"), "total_steps");
		if (json_is_integer(t) && json_integer_value(t) >= ck->step + steps)
			total = (long)json_integer_value(t);
	}
	if (total < 0)
		total = ck->step + steps;

	/* options recorded in the checkpoint */
	json_t *opts = json_pack("{s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:s, s:f, s:I, s:s, "
				 "s:s, s:s, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f}",
				 "init", init, "loss", loss_kind_name(lo.kind), "beta", lo.beta, "epsilon", eps,
				 "batch_size", (json_int_t)bs, "grad_accum", (json_int_t)accum, "total_steps",
				 (json_int_t)total, "lr", lr, "beta_lr", beta_lr, "weight_decay", wd, "beta_wd", beta_wd,
				 "warmup", (json_int_t)warmup, "schedule",
				 sched == SCHED_CONSTANT ? "constant" : sched == SCHED_LINEAR ? "linear" : "cosine",
				 "clip", clip, "seed", (json_int_t)seed, "beta_grad",
				 bgrad == BGRAD_FULL ? "full" : bgrad == BGRAD_HEAD ? "head" : "none", "pool",
				 ck->pool == POOL_LAST ? "last" : "mean", "ppl_from",
				 ck->ppl_from == PPL_POLICY ? "policy" : "ref", "freeze_policy", freeze,
				 "label_smoothing", lo.label_smoothing, "gamma", lo.gamma, "sft_weight", lo.sft_weight,
				 "bdpo_alpha", lo.bdpo_alpha, "bdpo_rho", lo.bdpo_rho, "range_reg", lo.range_reg,
				 "beta_min", lo.beta_min, "beta_max", lo.beta_max, "group_reg", lo.group_reg,
				 "entropy_reg", lo.entropy_reg, "entropy_alpha", lo.entropy_alpha, "n_records",
				 (json_int_t)data->n, "beta_init", beta_init > 0 ? beta_init : lo.beta, "w_init", w_init);
	if (!opts)
		die("internal: cannot build the options object");

	FILE *mf = NULL;
	if (metrics)
		mf = !strcmp(metrics, "-") ? stderr : fopen(metrics, "a");
	if (metrics && !mf)
		die("cannot open %s for appending", metrics);

	const size_t np = model_n_params(ck->m);
	const size_t hn = ck->bh->n_params;
	float *G = xcalloc(np, sizeof(float));  /* [np] policy gradient */
	float *HG = xcalloc(hn, sizeof(float)); /* [hn] β-model gradient */
	model_ws *ws = model_ws_new(ck->m);
	batch_buf *bb = batch_new((int)bs, cfg->dim, ck->bh->K);
	pref_rec **recs = xmalloc(sizeof(pref_rec *) * (size_t)bs);
	int *perm = xmalloc(sizeof(int) * (size_t)data->n);
	epoch_perm(perm, data->n, (uint64_t)seed, ck->epoch);
	if (ck->pos > data->n)
		die("%s: data position %ld is past the %d records (other data than the checkpoint's?)", init, ck->pos,
		    data->n);
	const adamw_hp hp = {0.9, 0.999, 1e-8};
	const int head_trained = learned && bgrad != BGRAD_NONE;
	const int policy_trained = !freeze;
	if (!policy_trained && !head_trained)
		warning("nothing to train (--freeze-policy with a fixed beta): steps only advance the state");
	const int need_init = learned && !ck->resumed && w_init <= 0;
	const long step_end = ck->step + steps;
	if (need_init) {
		/* --beta-init: mean β of the first batch = --beta (β is linear in w);
		 * the batch is peeked, the data position does not move */
		long e = ck->epoch, p = ck->pos;
		for (int i = 0; i < bs; i++) {
			if (p >= data->n) {
				e++;
				p = 0;
				epoch_perm(perm, data->n, (uint64_t)seed, e);
			}
			recs[i] = &data->r[perm[p++]];
		}
		batch_forward(ck, ws, bb, recs, (int)bs, n_comp, 0, 1, lo.beta);
		betahead_set_mean_beta(ck->bh, bb->parts, (int)bs, beta_init > 0 ? beta_init : lo.beta);
		epoch_perm(perm, data->n, (uint64_t)seed, ck->epoch);
	}

	while (ck->step < step_end) {
		double t0 = now_s();
		memset(G, 0, np * sizeof(float));
		memset(HG, 0, hn * sizeof(float));
		/* per-step sums: loss, rewards, accuracies, logps, β stats, ppl, tokens */
		double S_loss = 0, S_rc = 0, S_rr = 0, S_acc = 0, S_lc = 0, S_lr = 0, S_b = 0, S_b2 = 0, S_ppl = 0,
		       S_tok = 0, S_n = 0, bmin = INFINITY, bmax = -INFINITY;
		for (long a = 0; a < accum; a++) {
			for (int i = 0; i < bs; i++) {
				if (ck->pos >= data->n) {
					ck->epoch++;
					ck->pos = 0;
					epoch_perm(perm, data->n, (uint64_t)seed, ck->epoch);
				}
				recs[i] = &data->r[perm[ck->pos++]];
			}
			loss_stats st;
			double sc = 1.0 / accum;
			train_microbatch(ck, ws, bb, recs, (int)bs, &lo, (beta_grad_mode)bgrad, policy_trained, sc, G, HG,
					 &ck->bs, &ck->rng, &st);
			S_loss += st.loss * sc;
			for (int i = 0; i < bs; i++) {
				const loss_pair *q = &bb->lp[i];
				double b = lo.kind == LOSS_BETADPO ? st.beta_used : q->beta;
				double rc = b * (q->pc - q->rc), rr = b * (q->pr - q->rr);
				S_rc += rc;
				S_rr += rr;
				S_acc += rc > rr;
				S_lc += q->pc;
				S_lr += q->pr;
				S_b += b;
				S_b2 += b * b;
				bmin = fmin(bmin, b);
				bmax = fmax(bmax, b);
				S_ppl += exp(-bb->sc[i].prompt_mean_logp);
				S_tok += recs[i]->np + recs[i]->nc + (n_comp > 1 ? recs[i]->nr : 0);
				S_n += 1;
			}
		}
		double counters[2] = {S_loss, S_n};
		reduce_gradients(G, np, HG, hn, counters, 2);

		double gn2 = (policy_trained ? sumsq(G, np) : 0) + (head_trained ? sumsq(HG, hn) : 0);
		double gnorm = sqrt(gn2);
		if (!isfinite(S_loss) || !isfinite(gnorm) || !all_finite(HG, hn))
			die("step %ld: non-finite %s; stopping without writing this step (%s keeps the last good "
			    "checkpoint, if any)",
			    ck->step + 1, isfinite(S_loss) ? "gradient" : "loss", out);
		float cf = (float)clip_factor(gnorm, clip);
		double lr_p = sched_lr((sched_kind)sched, lr, ck->step, warmup, total);
		double lr_b = sched_lr((sched_kind)sched, beta_lr, ck->step, warmup, total);
		long t = ck->step + 1;
		if (policy_trained) {
			if (cf != 1.0f)
				scale_inplace(G, np, cf);
			float *P = model_params(ck->m);
			for (int k = 0; k < model_n_tensors(ck->m); k++) {
				const model_tensor *mt = model_tensor_at(ck->m, k);
				adamw_update(P + mt->offset, G + mt->offset, ck->pm + mt->offset, ck->pv + mt->offset, mt->numel,
					     lr_p, mt->ndim == 2 ? wd : 0.0, &hp, t);
			}
		}
		if (head_trained) {
			if (cf != 1.0f)
				scale_inplace(HG, hn, cf);
			adamw_update(ck->bh->p, HG, ck->hm, ck->hv, 1, lr_b, 0.0, &hp, t); /* log w: no decay */
			adamw_update(ck->bh->p + 1, HG + 1, ck->hm + 1, ck->hv + 1, hn - 1, lr_b, beta_wd, &hp, t);
		}
		ck->step = t;
		double dt = now_s() - t0;
		double bmean = S_b / S_n, bstd = sqrt(fmax(0, S_b2 / S_n - bmean * bmean));
		if (mf) {
			fprintf(mf,
				"{\"step\": %ld, \"epoch\": %.6f, \"loss\": %.9g, \"rewards/chosen\": %.9g, "
				"\"rewards/rejected\": %.9g, \"rewards/accuracies\": %.9g, \"rewards/margins\": %.9g, "
				"\"logps/chosen\": %.9g, \"logps/rejected\": %.9g, \"grad_norm\": %.9g, "
				"\"learning_rate\": %.9g, \"beta/lr\": %.9g, \"beta/mean\": %.9g, \"beta/std\": %.9g, "
				"\"beta/min\": %.9g, \"beta/max\": %.9g, \"beta/w\": %.9g, \"ppl/prompt\": %.9g, "
				"\"tokens_per_s\": %.6g}\n",
				ck->step, ck->epoch + (double)ck->pos / data->n, S_loss, S_rc / S_n, S_rr / S_n, S_acc / S_n,
				(S_rc - S_rr) / S_n, S_lc / S_n, S_lr / S_n, gnorm, lr_p, lr_b, bmean, bstd, bmin, bmax,
				learned ? exp((double)ck->bh->p[0]) : 0.0, S_ppl / S_n, S_tok / (dt > 0 ? dt : 1e-9));
			fflush(mf);
		}
		if (!quiet && stderr_is_tty())
			fprintf(stderr, "\rlbdpo-step: step %ld/%ld loss %.4f acc %.2f beta %.4g  ", ck->step, step_end, S_loss,
				S_acc / S_n, bmean);
		if (save_every > 0 && ck->step % save_every == 0 && ck->step < step_end)
			ckpt_save(ck, out, opts);
	}
	if (!quiet && stderr_is_tty())
		fputc('\n', stderr);
	ckpt_save(ck, out, opts);
	if (mf && mf != stderr && fclose(mf) != 0)
		die("error writing %s", metrics);
	json_decref(opts);
	free(G);
	free(HG);
	free(perm);
	free(recs);
	batch_free(bb);
	model_ws_free(ws);
	pref_free(data);
	ckpt_free(ck);
	close_stdout();
	return 0;
}
