/* model_bench.c — speed of the packed transformer core (issue 4):
 * forward (scoring) and forward+backward tokens/s and GFLOP/s for a llama
 * (dim 768, 12 layers, vocab 32000, ≈110M) and a gpt2-124M shape with random
 * weights, beside the machine's measured OpenBLAS sgemm GFLOP/s, plus the
 * prefix-sharing speedup on long-prompt pairs.
 *
 * FLOPs are model FLOPs: 2 per weight per token for every matrix product
 * (lm_head included) plus attention 4·hd per (query, head, visible key);
 * backward counts twice the forward.
 *
 * The machine may be shared: beside wall-clock rates it reports rates per
 * CPU-second of this process (all threads), and the ratio of the model's
 * to sgemm's FLOP per CPU-second, which contention from other processes
 * changes much less than wall-clock ratios.
 *
 * --dtype bf16: the model's matrix products in bf16 (lbdpo's --dtype bf16),
 * and the peak is then the bf16 GEMM's (oneDNN, rounding included),
 * measured the same way in the same process.
 *
 * usage: model_bench [--threads N] [--reps N] [--quick] [--only llama|gpt2|prefix] [--dtype fp32|bf16] [--lora R]
 *   --reps: best of N timings (default 1); --quick: a 2-layer smoke run;
 *   --only: one of the three measurements (for a profiler); --lora: a LoRA
 *   adapter of rank R on every linear layer, the base frozen (its backward
 *   skips the base's dW products: compare fwd+bwd with and without)
 */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "libcore/nn/backend.h"
#include "libcore/nn/cpu/gemm_bf16.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"
#include "base/util.h"

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sgemm_cpu_gflops; /* best FLOP per CPU-second of the sgemm runs */

static int bf16; /* --dtype bf16: the peak is gemm_bf16's (rounding included) */

static double sgemm_gflops(int M, int N, int K, int reps)
{
	float *a = xmalloc(sizeof(float) * (size_t)M * K), *b = xmalloc(sizeof(float) * (size_t)K * N);
	float *c = xmalloc(sizeof(float) * (size_t)M * N);
	for (size_t i = 0; i < (size_t)M * K; i++)
		a[i] = (float)((i * 7919) % 1000) * 1e-3f;
	for (size_t i = 0; i < (size_t)K * N; i++)
		b[i] = (float)((i * 104729) % 1000) * 1e-3f;
	gemm_rm(0, 1, M, N, K, a, K, b, K, 0, c, N); /* bf16 when --dtype bf16 */
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t0 = now_s(), c0 = cpu_s();
		gemm_rm(0, 1, M, N, K, a, K, b, K, 0, c, N);
		double dt = now_s() - t0, dc = cpu_s() - c0;
		best = dt < best ? dt : best;
		double g = 2.0 * M * N * K / dc * 1e-9;
		sgemm_cpu_gflops = g > sgemm_cpu_gflops ? g : sgemm_cpu_gflops;
	}
	free(a), free(b), free(c);
	return 2.0 * M * N * K / best * 1e-9;
}

/* Forward model FLOPs of a batch. */
static double fwd_flops(const model *m, const model_seq *s, int n)
{
	const model_config *c = model_cfg(m);
	double wflops = 0; /* per token: 2 × (matrix weights) */
	for (int i = 0; i < model_n_tensors(m); i++) {
		const model_tensor *t = model_tensor_at(m, i);
		if (t->ndim == 2 && !strstr(t->name, "wpe") && !strstr(t->name, "embed_tokens") &&
		    !strstr(t->name, "wte"))
			wflops += 2.0 * t->numel;
	}
	if (c->tied_embeddings || c->arch == ARCH_GPT2)
		wflops += 2.0 * c->vocab_size * c->dim; /* lm_head through the tied embedding */
	double f = 0;
	for (int i = 0; i < n; i++) {
		long P = s[i].n_prompt, T = P;
		double keys = P * (P + 1) / 2.0;
		for (int k = 0; k < s[i].n_comp; k++) {
			long nk = s[i].n_comp_tok[k];
			T += nk;
			keys += nk * P + nk * (nk + 1) / 2.0;
		}
		f += wflops * T + 4.0 * c->head_dim * c->n_heads * c->n_layers * keys;
	}
	return f;
}

static long batch_tokens(const model_seq *s, int n)
{
	long T = 0;
	for (int i = 0; i < n; i++)
		T += s[i].n_prompt + s[i].n_comp_tok[0] + (s[i].n_comp == 2 ? s[i].n_comp_tok[1] : 0);
	return T;
}

typedef struct {
	double fwd_s, fb_s, fwd_cpu, fb_cpu;
	size_t ws_bytes;
} timing;

static timing run(const model *m, model_seq *s, int n, int reps, float *grads)
{
	timing r = {1e30, 1e30, 1e30, 1e30, 0};
	model_ws *ws = model_ws_new(m);
	model_scores *o = xcalloc(n, sizeof *o);
	model_seq_grad *g = xcalloc(n, sizeof *g);
	for (int i = 0; i < n; i++)
		g[i] = (model_seq_grad){.d_logp = {0.5, s[i].n_comp == 2 ? -0.5 : 0}, .d_prompt_mean_logp = 0.1};
	/* plan the workspace and touch it and the gradients once: the first
	 * backward's page faults (440 MB of gradients at 110M parameters) are
	 * not a cost of any later step, and fell on whichever shape ran first */
	model_forward(m, ws, s, n, o, 1);
	model_backward(m, ws, g, grads);
	for (int k = 0; k < reps; k++) {
		double t0 = now_s(), c0 = cpu_s();
		model_forward(m, ws, s, n, o, 0);
		double t1 = now_s(), c1 = cpu_s();
		model_forward(m, ws, s, n, o, 1);
		model_backward(m, ws, g, grads);
		double t2 = now_s(), c2 = cpu_s();
		r.fwd_s = t1 - t0 < r.fwd_s ? t1 - t0 : r.fwd_s;
		r.fb_s = t2 - t1 < r.fb_s ? t2 - t1 : r.fb_s;
		r.fwd_cpu = c1 - c0 < r.fwd_cpu ? c1 - c0 : r.fwd_cpu;
		r.fb_cpu = c2 - c1 < r.fb_cpu ? c2 - c1 : r.fb_cpu;
	}
	r.ws_bytes = model_ws_bytes(ws);
	free(o), free(g);
	model_ws_free(ws);
	return r;
}

static uint32_t *toks(int n, int V, uint64_t seed)
{
	uint32_t *t = xmalloc(sizeof(uint32_t) * n);
	for (int i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		t[i] = (uint32_t)((seed >> 33) % (uint64_t)V);
	}
	return t;
}

static int lora_r; /* --lora */

static void bench_model(const char *label, model_config cfg, int reps, double peak)
{
	model *m = model_new(&cfg);
	model_init_random(m, 1, 0.02f);
	lora *lo = lora_r ? lora_new(m, &(lora_opts){.r = lora_r}, 1) : NULL;
	model_set_lora(m, lo);
	float *grads = xcalloc(model_n_trainable(m), sizeof(float));
	/* a preference pair [prompt 128 | chosen 128 | rejected 128] (two sequences
	 * of 256 positions, 384 tokens) and one plain sequence of 512 tokens */
	uint32_t *t = toks(4096, cfg.vocab_size, 7);
	model_seq s[2];
	s[0] = (model_seq){t, 128, {t + 128, t + 256}, {128, 128}, 2};
	s[1] = (model_seq){t + 1024, 64, {t + 1088, NULL}, {448, 0}, 1};
	int n = 2;
	long T = batch_tokens(s, n);
	double F = fwd_flops(m, s, n);
	timing r = run(m, s, n, reps, grads);
	printf("%-10s %6.1fM params  T=%ld  forward: %7.0f tok/s %6.1f GFLOP/s (%4.0f%% of peak)   "
	       "fwd+bwd: %7.0f tok/s %6.1f GFLOP/s (%4.0f%% of peak)   workspace %.0f MiB\n",
	       label, model_n_params(m) * 1e-6, T, T / r.fwd_s, F / r.fwd_s * 1e-9, 100 * F / r.fwd_s * 1e-9 / peak,
	       T / r.fb_s, 3 * F / r.fb_s * 1e-9, 100 * 3 * F / r.fb_s * 1e-9 / peak, r.ws_bytes / 1048576.0);
	printf("%-10s per CPU-second: forward %.1f GFLOP/cpu-s (%.0f%% of the GEMM's %.1f), fwd+bwd %.1f GFLOP/cpu-s "
	       "(%.0f%%)\n",
	       label, F / r.fwd_cpu * 1e-9, 100 * F / r.fwd_cpu * 1e-9 / sgemm_cpu_gflops, sgemm_cpu_gflops,
	       3 * F / r.fb_cpu * 1e-9, 100 * 3 * F / r.fb_cpu * 1e-9 / sgemm_cpu_gflops);
	fflush(stdout);
	free(t);
	free(grads);
	model_free(m);
	lora_free(lo);
}

static void bench_prefix(model_config cfg, int reps)
{
	model *m = model_new(&cfg);
	model_init_random(m, 1, 0.02f);
	float *grads = xcalloc(model_n_params(m), sizeof(float));
	uint32_t *t = toks(1024, cfg.vocab_size, 9);
	/* long prompt 384, completions 64 each */
	model_seq shared = {t, 384, {t + 384, t + 448}, {64, 64}, 2};
	model_seq sep[2] = {{t, 384, {t + 384, NULL}, {64, 0}, 1}, {t, 384, {t + 448, NULL}, {64, 0}, 1}};
	timing a = run(m, &shared, 1, reps, grads), b = run(m, sep, 2, reps, grads);
	printf("prefix sharing (llama, prompt 384 + 2×64): tokens %ld vs %ld; forward %.2fs vs %.2fs (%.2f×), "
	       "fwd+bwd %.2fs vs %.2fs (%.2f×); per CPU-second %.2f× / %.2f×\n",
	       batch_tokens(&shared, 1), batch_tokens(sep, 2), a.fwd_s, b.fwd_s, b.fwd_s / a.fwd_s, a.fb_s, b.fb_s,
	       b.fb_s / a.fb_s, b.fwd_cpu / a.fwd_cpu, b.fb_cpu / a.fb_cpu);
	free(t);
	free(grads);
	model_free(m);
}

int main(int argc, char **argv)
{
	set_progname("model_bench");
	lbdpo_runtime_init(argv);
	int threads = 0, reps = 1, quick = 0;
	const char *only = NULL;
	static const struct option lo[] = {{"threads", required_argument, 0, 't'},
					   {"reps", required_argument, 0, 'r'},
					   {"quick", no_argument, 0, 'q'},
					   {"only", required_argument, 0, 'o'},
					   {"lora", required_argument, 0, 'l'},
					   {"dtype", required_argument, 0, 'd'},
					   {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "t:r:qo:l:d:", lo, NULL)) != -1) {
		if (ch == 't')
			threads = (int)parse_long("--threads", optarg, 1, 1024);
		else if (ch == 'r')
			reps = (int)parse_long("--reps", optarg, 1, 100);
		else if (ch == 'q')
			quick = 1;
		else if (ch == 'l')
			lora_r = (int)parse_long("--lora", optarg, 1, 4096);
		else if (ch == 'd' && (!strcmp(optarg, "fp32") || !strcmp(optarg, "bf16")))
			bf16 = !strcmp(optarg, "bf16");
		else if (ch == 'o' &&
			 (!strcmp(optarg, "llama") || !strcmp(optarg, "gpt2") || !strcmp(optarg, "prefix")))
			only = optarg;
		else
			die_usage(
				"usage: model_bench [--threads N] [--reps N] [--quick] [--only llama|gpt2|prefix] [--dtype fp32|bf16] "
				"[--lora R]");
	}
	lbdpo_set_threads(threads);
	backend_set_dtype(bf16 ? BACKEND_BF16 : BACKEND_FP32); /* dies without bf16 hardware */
	double p1 = sgemm_gflops(2048, 2048, 2048, 3);
	double p2 = sgemm_gflops(768, 3072, 768, 3);
	double peak = p1 > p2 ? p1 : p2;
	char blas[512];
	cpu_blas_describe(blas, sizeof blas);
	printf("BLAS: %s\n", blas);
	printf("bf16: %s\n", gemm_bf16_path());
	printf("threads %d (OpenBLAS %d); dtype %s; %s peak %.1f GFLOP/s (2048³ %.1f, 768×3072×768 %.1f)\n",
	       threads ? threads : openblas_get_num_threads(), openblas_get_num_threads(), bf16 ? "bf16" : "fp32",
	       bf16 ? "bf16 GEMM (oneDNN, rounding included)" : "sgemm", peak, p1, p2);
	model_config ll = {.arch = ARCH_LLAMA,
			   .dim = 768,
			   .hidden_dim = 2048,
			   .n_layers = 12,
			   .n_heads = 12,
			   .n_kv_heads = 12,
			   .head_dim = 64,
			   .vocab_size = 32000,
			   .max_seq_len = 1024,
			   .rope_theta = 10000.0f,
			   .norm_eps = 1e-5f,
			   .tied_embeddings = 1,
			   .bos_id = 1,
			   .eos_id = 2};
	model_config g2 = {.arch = ARCH_GPT2,
			   .dim = 768,
			   .hidden_dim = 3072,
			   .n_layers = 12,
			   .n_heads = 12,
			   .n_kv_heads = 12,
			   .head_dim = 64,
			   .vocab_size = 50257,
			   .max_seq_len = 1024,
			   .norm_eps = 1e-5f,
			   .tied_embeddings = 1,
			   .bos_id = 50256,
			   .eos_id = 50256};
	if (quick) { /* a smoke run: 2 layers of the llama shape */
		ll.n_layers = 2;
		bench_model("llama-2L", ll, reps, peak);
		return 0;
	}
	if (!only || !strcmp(only, "llama"))
		bench_model("llama-110M", ll, reps, peak);
	if (!only || !strcmp(only, "gpt2"))
		bench_model("gpt2-124M", g2, reps, peak);
	if (!only || !strcmp(only, "prefix"))
		bench_prefix(ll, reps);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("peak RSS %.0f MiB\n", ru.ru_maxrss / 1024.0);
	return 0;
}
