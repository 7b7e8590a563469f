/* gemm_bench.c — the matrix products of --dtype bf16 against fp32 sgemm:
 * GFLOP/s (wall clock, all threads) of OpenBLAS's cblas_sgemm and of
 * gemm_bf16 (oneDNN matmul, the fp32→bf16 rounding of both operands
 * included) at llama-110M's shapes for T tokens, forward and the two
 * backward products, and at 2048³. The two alternate, call by call, so that
 * a shared machine's load falls on both alike; best of --reps.
 *
 * usage: gemm_bench [--threads N] [--reps N] [-T TOKENS]   (default 2, 5, 768) */
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/model.h"
#include "libcore/nn/cpu/gemm_bf16.h"

static float *rnd(size_t n, unsigned seed)
{
	float *p = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
	}
	return p;
}

static int reps = 5;
static double sum32, sum16, flops;

/* C[M,N] (+)= op(A)·op(B), both ways; prints and returns nothing. */
static void one(const char *label, int ta, int tb, int M, int N, int K, int acc)
{
	float *A = rnd((size_t)M * K, 1), *B = rnd((size_t)K * N, 2), *C = rnd((size_t)M * N, 3);
	int lda = ta ? M : K, ldb = tb ? K : N;
	double b32 = 1e30, b16 = 1e30;
	for (int r = 0; r <= reps; r++) { /* the first round warms up (and creates the primitive) */
		double t0 = now_s();
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
			    1.0f, A, lda, B, ldb, acc ? 1.0f : 0.0f, C, N);
		double t1 = now_s();
		if (gemm_bf16_ok())
			gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, acc, C, N);
		double t2 = now_s();
		if (r) {
			b32 = t1 - t0 < b32 ? t1 - t0 : b32;
			b16 = t2 - t1 < b16 ? t2 - t1 : b16;
		}
	}
	double f = 2.0 * M * N * K;
	sum32 += b32, sum16 += b16, flops += f;
	if (gemm_bf16_ok())
		printf("  %-26s %5d %5d %5d  %7.1f  %7.1f  %5.2fx\n", label, M, N, K, f / b32 * 1e-9, f / b16 * 1e-9,
		       b32 / b16);
	else
		printf("  %-26s %5d %5d %5d  %7.1f        -\n", label, M, N, K, f / b32 * 1e-9);
	fflush(stdout);
	free(A), free(B), free(C);
}

int main(int argc, char **argv)
{
	set_progname("gemm_bench");
	lbdpo_runtime_init(argv);
	int threads = 0, T = 768;
	static const struct option lo[] = {
		{"threads", required_argument, 0, 't'}, {"reps", required_argument, 0, 'r'}, {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "t:r:T:", lo, NULL)) != -1) {
		if (ch == 't')
			threads = (int)parse_long("--threads", optarg, 1, 1024);
		else if (ch == 'r')
			reps = (int)parse_long("--reps", optarg, 1, 1000);
		else if (ch == 'T')
			T = (int)parse_long("-T", optarg, 1, 1 << 20);
		else
			die_usage("usage: gemm_bench [--threads N] [--reps N] [-T TOKENS]");
	}
	if (threads)
		lbdpo_set_threads(threads);
	printf("bf16 path: %s\n", gemm_bf16_path());
	printf("GFLOP/s, wall clock, best of %d; fp32 = OpenBLAS sgemm, bf16 = oneDNN matmul incl. rounding\n", reps);
	printf("  %-26s %5s %5s %5s  %7s  %7s  %6s\n", "product", "M", "N", "K", "fp32", "bf16", "ratio");
	const int C = 768, F = 2048, V = 32000;
	/* the model's weights are [OC,IC] (HF layout): forward op(B) = Wᵀ */
	one("qkv fwd  x·Wᵀ", 0, 1, T, 3 * C, C, 0);
	one("o fwd    x·Wᵀ", 0, 1, T, C, C, 0);
	one("gate+up fwd x·Wᵀ", 0, 1, T, 2 * F, C, 0);
	one("down fwd x·Wᵀ", 0, 1, T, C, F, 0);
	one("lm head fwd h·Wᵀ", 0, 1, T, V, C, 0);
	one("qkv dx  += dy·W", 0, 0, T, C, 3 * C, 1);
	one("qkv dW  += dyᵀ·x", 1, 0, 3 * C, C, T, 1);
	one("gate+up dx += dy·W", 0, 0, T, C, 2 * F, 1);
	one("gate+up dW += dyᵀ·x", 1, 0, 2 * F, C, T, 1);
	one("down dx += dy·W", 0, 0, T, F, C, 1);
	one("down dW += dyᵀ·x", 1, 0, C, F, T, 1);
	one("lm head dh = dz·W", 0, 0, T, C, V, 0);
	one("lm head dW += dzᵀ·h", 1, 0, V, C, T, 1);
	printf("  %-26s %17s  %7.1f  %7.1f  %5.2fx\n", "model shapes, all", "", flops / sum32 * 1e-9,
	       gemm_bf16_ok() ? flops / sum16 * 1e-9 : 0, sum32 / sum16);
	one("square 2048³ (peak)", 0, 0, 2048, 2048, 2048, 0);
	return 0;
}
