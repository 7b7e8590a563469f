/* kernel_bench.c — the non-GEMM kernels of one llama-110M / gpt2-124M layer
 * on model_bench's batch size (T = 896 tokens, two causal sequences of 512
 * and 384), each timed alone: milliseconds of CPU time per call (best of
 * --reps), so that runs on a loaded machine still compare. Multiply by 12
 * layers for the model. AdamW: nanoseconds per parameter.
 *
 * --bf16: attention in bf16 (attention_bf16.c, as under --dtype bf16).
 *
 * usage: kernel_bench [--threads N] [--reps N] [--bf16]   (default 1 thread, 5 reps, fp32) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libcore/nn/adamw.h"
#include "libcore/nn/cpu/gemm_bf16.h"
#include "libcore/nn/cpu/kernels.h"
#include "libcore/nn/model.h"
#include "base/util.h"

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rnd(size_t n, float scale, unsigned seed)
{
	float *p = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 2 * scale;
	}
	return p;
}

static int reps = 5;
static double total;
#define TIME(label, call)                                                                                              \
	do {                                                                                                           \
		call;                                                                                                  \
		double best = 1e30;                                                                                    \
		for (int r_ = 0; r_ < reps; r_++) {                                                                    \
			double c0 = cpu_s();                                                                           \
			call;                                                                                          \
			double d = cpu_s() - c0;                                                                       \
			best = d < best ? d : best;                                                                    \
		}                                                                                                      \
		total += best;                                                                                         \
		printf("  %-22s %8.3f ms\n", label, best * 1e3);                                                       \
		fflush(stdout);                                                                                        \
	} while (0)

int main(int argc, char **argv)
{
	set_progname("kernel_bench");
	lbdpo_runtime_init(argv);
	int threads = 1;
	static const struct option lo[] = {{"threads", required_argument, 0, 't'},
					   {"reps", required_argument, 0, 'r'},
					   {"bf16", no_argument, 0, 'b'},
					   {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "t:r:", lo, NULL)) != -1) {
		if (ch == 't')
			threads = (int)parse_long("--threads", optarg, 1, 1024);
		else if (ch == 'r')
			reps = (int)parse_long("--reps", optarg, 1, 1000);
		else if (ch == 'b') {
			if (!gemm_bf16_ok())
				die("--bf16: no bf16 products here: %s", gemm_bf16_path());
			gemm_bf16_set(1);
		} else
			die_usage("usage: kernel_bench [--threads N] [--reps N] [--bf16]");
	}
	lbdpo_set_threads(threads);
	const int T = 896, C = 768, H = 12, hd = 64, F = 2048, G = 3072, S = 3 * C;
	int *ka = xmalloc(sizeof(int) * T), *kb = xmalloc(sizeof(int) * T), *kc = xmalloc(sizeof(int) * T);
	int *pos = xmalloc(sizeof(int) * T), seq_off[3] = {0, 512, T};
	for (int t = 0; t < T; t++) {
		ka[t] = kb[t] = 0;
		kc[t] = t < 512 ? 0 : 512;
		pos[t] = t - kc[t];
	}
	float *x = rnd((size_t)T * C, 1, 1), *y = rnd((size_t)T * C, 1, 2), *dy = rnd((size_t)T * C, 1, 3);
	float *dx = rnd((size_t)T * C, 1, 4), *w = rnd(C, 1, 5), *b = rnd(C, 1, 6), *dw = rnd(C, 1, 7);
	float *db = rnd(C, 1, 8), *mean = rnd(T, 1, 9), *rstd = rnd(T, 1, 10);
	float *qkv = rnd((size_t)T * S, 1, 11), *dqkv = rnd((size_t)T * S, 1, 12), *att = rnd((size_t)T * C, 1, 13);
	float *datt = rnd((size_t)T * C, 1, 14), *lse = rnd((size_t)T * H, 1, 15), *cs = rnd((size_t)T * hd, 1, 16);
	float *mlp = rnd((size_t)T * 2 * G, 2, 17), *dmlp = rnd((size_t)T * 2 * G, 1, 18);
	float *h = rnd((size_t)T * G, 1, 19), *dh = rnd((size_t)T * G, 1, 20);
	printf("threads %d, T=%d C=%d heads %d×%d, best of %d, ms of CPU time per call, %s\n", threads, T, C, H, hd,
	       reps, gemm_bf16_on() ? "bf16" : "fp32");
	printf("llama layer\n");
	TIME("rmsnorm fwd", rmsnorm_forward(y, rstd, x, w, 0.0f, 1e-5f, T, C));
	TIME("rmsnorm bwd", rmsnorm_backward(dx, dw, dy, x, w, 0.0f, rstd, T, C));
	TIME("rope table", rope_table(cs, pos, T, hd, 10000.0f));
	TIME("rope fwd (q,k)", rope_forward(qkv, cs, T, 2 * H, hd, S));
	TIME("rope bwd (q,k)", rope_backward(dqkv, cs, T, 2 * H, hd, S));
	TIME("attention fwd", attention_forward(att, lse, qkv, ka, kb, kc, T, H, H, hd, 0.0f, 0.0f));
	TIME("attention bwd",
	     attention_backward(dqkv, datt, qkv, att, lse, ka, kb, kc, seq_off, 2, T, H, H, hd, 0.0f, 0.0f));
	TIME("swiglu fwd", swiglu_forward(h, mlp, T, F));
	TIME("swiglu bwd", swiglu_backward(dmlp, dh, mlp, T, F));
	TIME("residual", residual_forward(y, x, dy, (size_t)T * C));
	printf("  %-22s %8.3f ms (×12 layers: %.0f ms)\n", "llama layer total", total * 1e3, total * 12e3);
	total = 0;
	printf("gpt2 layer (attention as above)\n");
	TIME("layernorm fwd", layernorm_forward(y, mean, rstd, x, w, b, 1e-5f, T, C));
	TIME("layernorm bwd", layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, T, C));
	TIME("gelu fwd", gelu_forward(h, mlp, (size_t)T * G));
	TIME("gelu bwd", gelu_backward(dh, dmlp, mlp, (size_t)T * G));
	total = 0;
	/* the loss hand-off over model_bench's rows: prompt rows (with the
	 * entropy) for the first 128, completion rows after */
	const int V = 32000;
	float *logits = rnd((size_t)T * V, 8, 23), *lp = xmalloc(sizeof(float) * 2 * T),
	      *ent = xmalloc(sizeof(float) * T);
	logit_row *rows = xmalloc(sizeof(logit_row) * T);
	int *idx = xmalloc(sizeof(int) * T);
	int32_t *yy = xmalloc(sizeof(int32_t) * 2 * T);
	double *wr = xmalloc(sizeof(double) * 2 * T);
	for (int t = 0; t < T; t++) {
		rows[t] = (logit_row){{(t * 7919) % V, -1}, {t < 128 ? 1 : 2, 0}, {0, 0}, 0};
		idx[t] = t, yy[2 * t] = rows[t].y[0], yy[2 * t + 1] = -1, wr[2 * t] = 1e-3, wr[2 * t + 1] = 0;
	}
	printf("lm head loss, V=%d (the matrix products are sgemm)\n", V);
	TIME("logsoftmax rows", logsoftmax_rows(lse, lp, ent, logits, rows, T, V));
	TIME("logit grad rows", logit_grad_rows(logits, lse, idx, wr, yy, T, V));
	free(logits), free(lp), free(ent), free(rows), free(idx), free(yy), free(wr);
	total = 0;
	size_t n = (size_t)16 << 20;
	float *p = rnd(n, 0.02f, 21), *g = rnd(n, 0.01f, 22), *m1 = xcalloc(n, sizeof(float)),
	      *m2 = xcalloc(n, sizeof(float));
	adamw_hp hp = {0.9, 0.999, 1e-8};
	long step = 1;
	TIME("adamw 16M params", adamw_update(p, g, m1, m2, n, 1e-4, 0.01, &hp, step++));
	printf("  adamw: %.2f ns/param (110M params: %.0f ms)\n", total / n * 1e9, total / n * 110e6 * 1e3);
	return 0;
}
