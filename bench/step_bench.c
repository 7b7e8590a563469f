/* step_bench.c — one full LB-DPO training step (issue 7: "make bench") against
 * the plain packed forward+backward of the same batch:
 *   plain: model_forward(train) + model_backward with d_logp only
 *   step:  train_step() of libcore/train/engine.h, the step lbdpo-step runs (lbdpo,
 *          --beta-grad full: Δ, PPL and h paths, the β head; global norm,
 *          clipping, AdamW on every tensor and the head)
 * Same model (llama ≈110M: dim 768, 12 layers, vocab 32000 by default), same
 * two pairs [prompt 128 | chosen 128 | rejected 128]. Prints tokens/s and
 * pairs/s of both, the per-token slowdown of the step (target: ≤ 10%), and
 * the share of the step's time spent outside the model's forward/backward.
 *
 * --dtype bf16: the matrix products in bf16 (lbdpo's --dtype bf16).
 * --heads, --kv-heads, --hidden, --qkv-bias, --len: other shapes (e.g. a
 * Qwen2.5-0.5B: --dim 896 --layers 24 --heads 14 --kv-heads 2 --hidden 4864
 * --vocab 151936 --qkv-bias); --len L: segments of L tokens (default 128);
 * --plain: only the plain forward+backward (no optimizer state: for a
 * profiler's share of the model's kernels, e.g. attention's under perf).
 *
 * usage: step_bench [--threads N] [--reps N] [--dim C --layers L --vocab V] [--beta-grad full|head|none]
 *                   [--dtype fp32|bf16] [--heads H --kv-heads K --hidden F --qkv-bias --len L] [--plain]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libcore/nn/backend.h"
#include "libcore/train/engine.h"
#include "base/util.h"

static double cpu_s(void) /* CPU time of the process, all threads */
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	set_progname("step_bench");
	lbdpo_runtime_init(argv);
	int threads = 0, reps = 2, dim = 768, layers = 12, vocab = 32000;
	beta_grad_mode bgm = BGRAD_FULL;
	int bf16 = 0, heads = 0, kv_heads = 0, hidden = 0, qkv_bias = 0, L = 128, plain_only = 0;
	static const struct option lo[] = {
		{"threads", required_argument, 0, 't'},  {"reps", required_argument, 0, 'r'},
		{"dim", required_argument, 0, 'd'},      {"layers", required_argument, 0, 'l'},
		{"vocab", required_argument, 0, 'v'},    {"beta-grad", required_argument, 0, 'b'},
		{"dtype", required_argument, 0, 'D'},    {"heads", required_argument, 0, 'H'},
		{"kv-heads", required_argument, 0, 'K'}, {"hidden", required_argument, 0, 'F'},
		{"qkv-bias", no_argument, 0, 'B'},       {"len", required_argument, 0, 'L'},
		{"plain", no_argument, 0, 'P'},          {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "t:r:d:l:v:b:D:H:K:F:BL:P", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': heads = (int)parse_long("--heads", optarg, 1, 1024); break;
		case 'K': kv_heads = (int)parse_long("--kv-heads", optarg, 1, 1024); break;
		case 'F': hidden = (int)parse_long("--hidden", optarg, 16, 1 << 20); break;
		case 'B': qkv_bias = 1; break;
		case 'L': L = (int)parse_long("--len", optarg, 1, 4096); break;
		case 'P': plain_only = 1; break;
		case 't': threads = (int)parse_long("--threads", optarg, 1, 1024); break;
		case 'r': reps = (int)parse_long("--reps", optarg, 1, 100); break;
		case 'd': dim = (int)parse_long("--dim", optarg, 64, 8192); break;
		case 'l': layers = (int)parse_long("--layers", optarg, 1, 256); break;
		case 'v': vocab = (int)parse_long("--vocab", optarg, 16, 1 << 20); break;
		case 'b':
			if ((bgm = (beta_grad_mode)beta_grad_parse(optarg)) == (beta_grad_mode)-1)
				die_usage("--beta-grad: expected full, head or none");
			break;
		case 'D':
			if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16"))
				die_usage("--dtype: expected fp32 or bf16");
			bf16 = !strcmp(optarg, "bf16");
			break;
		default:
			die_usage(
				"usage: step_bench [--threads N] [--reps N] [--dim C --layers L --vocab V] [--dtype fp32|bf16] "
				"[--heads H --kv-heads K --hidden F --qkv-bias --len L] [--plain]");
		}
	}
	lbdpo_set_threads(threads);
	backend_set_dtype(bf16 ? BACKEND_BF16 : BACKEND_FP32); /* dies without bf16 hardware */
	if (!heads)
		heads = dim / 64;
	if (!kv_heads)
		kv_heads = heads;
	if (dim % heads || heads % kv_heads)
		die_usage("--heads must divide --dim and --kv-heads --heads");
	model_config cfg = {.arch = ARCH_LLAMA,
			    .dim = dim,
			    .hidden_dim = hidden ? hidden : dim * 8 / 3 / 16 * 16,
			    .n_layers = layers,
			    .n_heads = heads,
			    .n_kv_heads = kv_heads,
			    .head_dim = dim / heads,
			    .qkv_bias = qkv_bias,
			    .vocab_size = vocab,
			    .max_seq_len = 3 * L > 1024 ? 3 * L : 1024,
			    .rope_theta = 10000.0f,
			    .norm_eps = 1e-5f,
			    .tied_embeddings = 1,
			    .bos_id = 1,
			    .eos_id = 2};
	ckpt c;
	memset(&c, 0, sizeof c);
	c.m = model_new(&cfg);
	model_init_random(c.m, 1, 0.02f);
	c.bh = betahead_new(HEAD_LINEAR, dim, 0, 0.1f);
	betahead_init(c.bh, 1, 0.005);
	size_t np = model_n_params(c.m), hn = c.bh->n_params;
	c.pm = xcalloc(np, sizeof(float)); /* calloc: untouched with --plain */
	c.pv = xcalloc(np, sizeof(float));
	c.hm = xcalloc(hn, sizeof(float));
	c.hv = xcalloc(hn, sizeof(float));
	float *G = xcalloc(np, sizeof(float));

	enum { NP = 2 };
	uint32_t *t = xmalloc(sizeof(uint32_t) * NP * 3 * L);
	uint64_t s = 7;
	for (int i = 0; i < NP * 3 * L; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		t[i] = (uint32_t)((s >> 33) % (uint64_t)vocab);
	}
	pref_rec recs[NP];
	memset(recs, 0, sizeof recs);
	for (int i = 0; i < NP; i++)
		recs[i] = (pref_rec){.prompt = t + i * 3 * L,
				     .np = L,
				     .chosen = t + i * 3 * L + L,
				     .nc = L,
				     .rejected = t + i * 3 * L + 2 * L,
				     .nr = L,
				     .has_ref = 1,
				     .ref_c = -L * log((double)vocab),
				     .ref_r = -L * log((double)vocab),
				     .group = -1,
				     .index = (uint64_t)i + 1};
	pref_set data = {.r = recs, .n = NP, .name = "bench"};
	const long T = NP * 3 * L;
	model_ws *ws = model_ws_new(c.m);

	/* the step: lbdpo-step's train_step (micro-batch, norm, clip, AdamW) */
	train_opts to;
	train_opts_default(&to);
	to.init = "bench";
	to.batch_size = NP;
	to.lr = 1e-6;
	to.weight_decay = 0.01;
	to.total_steps = 1L << 30;
	to.schedule = SCHED_CONSTANT;
	to.beta_grad = bgm;
	to.w_init = 0.005; /* as initialized above: no --beta-init batch */
	train_engine *eng = plain_only ? NULL : train_engine_new(&c, &data, &to);

	/* plain forward+backward of the same pairs */
	model_scores sc[NP];
	model_seq seqs[NP];
	model_seq_grad g[NP];
	for (int i = 0; i < NP; i++) {
		seqs[i] = (model_seq){recs[i].prompt, L, {recs[i].chosen, recs[i].rejected}, {L, L}, 2};
		memset(&sc[i], 0, sizeof sc[i]);
		g[i] = (model_seq_grad){.d_logp = {-0.05, 0.05}};
	}
	double plain = 1e30, step = 1e30, outside = 0, step_cpu = 1e30;
	model_forward(c.m, ws, seqs, NP, sc, 1); /* warm the workspace */
	for (int r = 0; r < reps; r++) {
		double t0 = now_s();
		model_forward(c.m, ws, seqs, NP, sc, 1);
		model_backward(c.m, ws, g, G);
		double t1 = now_s();
		plain = fmin(plain, t1 - t0);
		if (plain_only)
			continue;

		train_metrics tm;
		double c0 = cpu_s();
		if (train_step(eng, &tm) != 0)
			die("non-finite step");
		step_cpu = fmin(step_cpu, cpu_s() - c0);
		if (tm.seconds < step) {
			step = tm.seconds;
			outside = tm.seconds_update / tm.seconds;
		}
	}
	printf("llama dim %d, %d layers, heads %d/%d kv, hidden %d, vocab %d%s (%.1fM params), %d pairs of %d+%d+%d "
	       "tokens, threads %d, dtype %s\n",
	       dim, layers, heads, kv_heads, cfg.hidden_dim, vocab, qkv_bias ? ", qkv bias" : "", np * 1e-6, NP, L, L,
	       L, threads, bf16 ? "bf16" : "fp32");
	printf("plain fwd+bwd: %8.1f tokens/s %6.2f pairs/s\n", T / plain, NP / plain);
	if (plain_only)
		goto done;
	printf("--beta-grad %s\n", beta_grad_name(bgm));
	printf("lbdpo step:    %8.1f tokens/s %6.2f pairs/s   per-token slowdown %+.1f%% (target <= 10%%)\n", T / step,
	       NP / step, 100 * (step / plain - 1));
	printf("lbdpo step per CPU-second: %8.1f tokens/cpu-s\n", T / step_cpu);
	printf("step time outside the model forward/backward (norm, clip, AdamW): %.1f%%\n", 100 * outside);
done:
	train_engine_free(eng);
	model_ws_free(ws);
	free(t);
	free(G);
	free(c.pm), free(c.pv), free(c.hm), free(c.hv);
	betahead_free(c.bh);
	model_free(c.m);
	return 0;
}
