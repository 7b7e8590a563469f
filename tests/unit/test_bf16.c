/* test_bf16.c — --dtype bf16's matrix products (libcore/nn/cpu/gemm_bf16):
 * the fp32→bf16 rounding, gemm_bf16 against a double reference, and the
 * model's per-sequence log-probs and DPO gradients in bf16 against fp32.
 * Skips (with the reason) where bf16 products cannot run: a CPU without
 * AVX512-BF16 or AMX, a build without oneDNN. */
#include <criterion/criterion.h>

#include "libcore/nn/cpu/gemm_bf16.h"
#include "tests/unit/model_testlib.h"

static void need_bf16(void)
{
	if (!gemm_bf16_ok())
		cr_skip_test("no bf16 matrix products here: %s", gemm_bf16_path());
}

static float f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* The path the probe picks from oneDNN's effective ISA (dnnl_cpu_isa_t's
 * values, oneDNN 2.x): no AMX CPU here, so an AMX CPU's bits are handed to
 * it; and the text --version and make bench print for each path. */
Test(bf16, isa_path)
{
	char buf[160];
	if (!gemm_bf16_isa_path(0xe7)) { /* built without oneDNN: always none */
		cr_expect_eq(gemm_bf16_isa_path(0x3e7), 0);
		cr_skip_test("built without oneDNN: %s", gemm_bf16_path());
	}
	cr_expect_eq(gemm_bf16_isa_path(0x3e7), 2, "avx512_core_amx: AMX");
	cr_expect_eq(gemm_bf16_isa_path(0xe7), 1, "avx512_core_bf16");
	cr_expect_eq(gemm_bf16_isa_path(0x67), 0, "avx512_core_vnni: no bf16");
	cr_expect_eq(gemm_bf16_isa_path(0x27), 0, "avx512_core");
	cr_expect_eq(gemm_bf16_isa_path(0x407), 0, "avx2_vnni");
	cr_expect_eq(gemm_bf16_isa_path(0x7), 0, "avx2");
	gemm_bf16_describe(buf, sizeof buf, 2, "oneDNN 2.6.3", NULL);
	cr_expect_str_eq(buf, "AMX (oneDNN 2.6.3)");
	gemm_bf16_describe(buf, sizeof buf, 1, "oneDNN 2.6.3", NULL);
	cr_expect_str_eq(buf, "AVX512-BF16 (oneDNN 2.6.3)");
	gemm_bf16_describe(buf, sizeof buf, 0, "oneDNN 2.6.3", "ONEDNN_MAX_CPU_ISA=AVX2");
	cr_expect_str_eq(buf, "none (ONEDNN_MAX_CPU_ISA=AVX2 rules out AVX512-BF16 and AMX; oneDNN 2.6.3)");
	gemm_bf16_describe(buf, sizeof buf, 0, "oneDNN 2.6.3", NULL);
	cr_expect_str_eq(buf, "none (this CPU has neither AVX512-BF16 nor AMX; oneDNN 2.6.3)");
}

Test(bf16, rounding)
{
	/* nearest, ties to even, at the bits that are cut */
	const uint32_t in[] = {0x3f800000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0xbf80c000, 0x7f7fffff,
			       0x7f800000, 0xff800000, 0x7fc00001, 0x7f800001, 0x00000001, 0x80000000};
	const uint16_t want[] = {0x3f80,
				 0x3f80,
				 0x3f82,
				 0x3f80,
				 0x3f81,
				 0xbf81,
				 0x7f80 /* overflows to inf */,
				 0x7f80,
				 0xff80,
				 0x7fc0,
				 0x7fc0 /* NaN stays NaN */,
				 0x0000,
				 0x8000};
	const size_t n = sizeof in / sizeof *in;
	float x[16];
	uint16_t y[16];
	for (size_t i = 0; i < n; i++)
		x[i] = f32(in[i]);
	bf16_from_f32(y, x, n);
	for (size_t i = 0; i < n; i++)
		cr_expect(y[i] == want[i], "%08x → %04x, want %04x", in[i], y[i], want[i]);
	float back[16];
	bf16_to_f32(back, y, n);
	cr_expect(back[0] == 1.0f && back[2] == f32(0x3f820000));
	/* a long array (the threaded, vectorized loop) against the scalar rule */
	size_t N = 300000;
	float *a = xmalloc(N * sizeof *a);
	uint16_t *b = xmalloc(N * sizeof *b);
	uint64_t s = 1;
	for (size_t i = 0; i < N; i++)
		a[i] = (float)(tl_normal(&s) * 100);
	bf16_from_f32(b, a, N);
	for (size_t i = 0; i < N; i++) {
		double r = f32((uint32_t)b[i] << 16);
		/* within half a step (2⁻⁸ relative: bf16 keeps 8 significant bits),
		 * and never farther than the other neighbour */
		double step = f32(((uint32_t)b[i] << 16) + 0x10000) - r;
		cr_assert(fabs(r - a[i]) <= fabs(a[i]) * 0x1p-8 && fabs(r - a[i]) <= fabs(step) / 2,
			  "element %zu: %g → %g", i, a[i], r);
	}
	free(a), free(b);
}

static double bf(float x)
{
	uint16_t h;
	bf16_from_f32(&h, &x, 1);
	return f32((uint32_t)h << 16);
}

/* gemm_bf16 in every layout, writing and accumulating, against the same
 * product in double of the bf16-rounded inputs: they differ only by fp32
 * accumulation (bounded by K·2⁻²³·Σ|a||b|, generous); and against the exact
 * fp32 inputs by the rounding (each input within 2⁻⁸ relative, so each
 * term within 2⁻⁷ of |a||b|: 2⁻⁷·Σ|a||b|), which is
 * visible: the products did take bf16 inputs. */
Test(bf16, gemm)
{
	need_bf16();
	const int M = 37, N = 53, K = 71;
	uint64_t s = 3;
	float *A = xmalloc(sizeof(float) * M * K), *B = xmalloc(sizeof(float) * K * N);
	float *C = xmalloc(sizeof(float) * M * N), *C0 = xmalloc(sizeof(float) * M * N);
	for (int i = 0; i < M * K; i++)
		A[i] = (float)tl_normal(&s);
	for (int i = 0; i < K * N; i++)
		B[i] = (float)tl_normal(&s);
	for (int i = 0; i < M * N; i++)
		C0[i] = (float)tl_normal(&s);
	for (int layout = 0; layout < 8; layout++) {
		const int ta = layout & 1, tb = layout >> 1 & 1, acc = layout >> 2;
		const int lda = ta ? M : K, ldb = tb ? K : N;
		memcpy(C, C0, sizeof(float) * M * N);
		gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, acc, C, N);
		double worst_acc = 0, worst_round = 0, moved = 0;
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) {
				double r16 = 0, r32 = 0, mag = 0;
				for (int k = 0; k < K; k++) {
					float a = ta ? A[k * lda + i] : A[i * lda + k],
					      b = tb ? B[j * ldb + k] : B[k * ldb + j];
					r16 += bf(a) * bf(b);
					r32 += (double)a * b;
					mag += fabs((double)a * b);
				}
				const double c0 = acc ? C0[i * N + j] : 0, c = C[i * N + j];
				const double e16 = fabs(c - c0 - r16) / ((K + 2) * 0x1p-23 * (mag + fabs(c0)));
				const double e32 =
					fabs(c - c0 - r32) / (0x1p-7 * mag + (K + 2) * 0x1p-23 * (mag + fabs(c0)));
				worst_acc = e16 > worst_acc ? e16 : worst_acc;
				worst_round = e32 > worst_round ? e32 : worst_round;
				moved += fabs(c - c0 - r32) > 1e-5 * mag;
			}
		cr_expect(worst_acc <= 1, "layout %d: %.3g of the fp32 accumulation bound", layout, worst_acc);
		cr_expect(worst_round <= 1, "layout %d: %.3g of the bf16 rounding bound", layout, worst_round);
		cr_expect(moved > M * N / 2, "layout %d: only %g of %d products differ from fp32: not bf16?", layout,
			  moved, M * N);
	}
	free(A), free(B), free(C), free(C0);
}

/* gemm_rm is cblas_sgemm itself while bf16 is off, and for tiny products
 * while it is on. */
Test(bf16, gemm_rm_fp32)
{
	need_bf16();
	const int M = 20, N = 30, K = 40;
	uint64_t s = 5;
	float A[M * K], B[K * N], C1[M * N], C2[M * N];
	for (int i = 0; i < M * K; i++)
		A[i] = (float)tl_normal(&s);
	for (int i = 0; i < K * N; i++)
		B[i] = (float)tl_normal(&s);
	gemm_bf16_set(0);
	gemm_rm(0, 0, M, N, K, A, K, B, N, 0.0f, C1, N);
	gemm_bf16_set(1);
	gemm_rm(0, 0, M, N, K, A, K, B, N, 0.0f, C2, N);
	cr_expect(memcmp(C1, C2, sizeof C1), "bf16 on: a 20×30×40 product must change");
	gemm_rm(0, 0, M, 8, K, A, K, B, N, 0.0f, C2, N); /* N < GEMM_BF16_MIN: sgemm */
	gemm_bf16_set(0);
	gemm_rm(0, 0, M, 8, K, A, K, B, N, 0.0f, C1, N);
	for (int i = 0; i < M; i++)
		cr_expect(!memcmp(C1 + i * N, C2 + i * N, 8 * sizeof(float)), "row %d: a 20×8 product must stay fp32",
			  i);
}

/* ---- the model in bf16 against fp32 ---- */

enum { MAXP = 16 };
typedef struct {
	int n;
	model_seq s[MAXP];
	double ref[MAXP][2]; /* the DPO reference's log-probs (fixed) */
} pairs;

typedef struct {
	double logp[MAXP][2];
	float *tok[MAXP][2];
	float *grad;
} result;

/* Forward, per-token log-probs, and the gradient of the DPO loss
 * −log σ(β((c − c_ref) − (r − r_ref))) summed over the pairs. */
static void run(result *r, model *m, const pairs *p, int bf16)
{
	gemm_bf16_set(bf16);
	model_ws *ws = model_ws_new(m);
	model_scores o[MAXP];
	model_seq_grad g[MAXP];
	for (int i = 0; i < p->n; i++) {
		o[i] = (model_scores){0};
		for (int k = 0; k < 2; k++)
			o[i].tok_logp[k] = r->tok[i][k] = xmalloc(sizeof(float) * p->s[i].n_comp_tok[k]);
	}
	model_forward(m, ws, p->s, p->n, o, 1);
	const double beta = 0.1;
	for (int i = 0; i < p->n; i++) {
		r->logp[i][0] = o[i].logp[0], r->logp[i][1] = o[i].logp[1];
		double z = beta * ((o[i].logp[0] - p->ref[i][0]) - (o[i].logp[1] - p->ref[i][1]));
		double d = -beta / (1 + exp(z)); /* dL/dz·β = −β·σ(−z) */
		g[i] = (model_seq_grad){.d_logp = {d, -d}};
	}
	r->grad = xcalloc(model_n_params(m), sizeof(float));
	model_backward(m, ws, g, r->grad);
	model_ws_free(ws);
	gemm_bf16_set(0);
}

static void free_result(result *r, const pairs *p)
{
	for (int i = 0; i < p->n; i++)
		free(r->tok[i][0]), free(r->tok[i][1]);
	free(r->grad);
}

/* The bounds. bf16 keeps 8 significant bits: rounding an input moves it by
 * at most u = 2⁻⁸ relative (RMS u/√3). A dot product whose two inputs are
 * rounded moves by about u·√(2/3) of the root-sum-square of its terms, at
 * most a few u of a logit's scale (3–5 nats in these models); each layer's
 * products add their share in quadrature, and a token's log-prob
 * z_y − logsumexp(z) carries the error of its logits. Prediction: a
 * per-token RMS error of a few u. Bound: 8u = 0.031 nats (measured on this
 * machine: 4.6u on stories260K, 5.4u on the Qwen-shaped model). A
 * sequence's sum of n tokens: independent errors add in quadrature, so
 * its error is about RMS·√n; tokens of one sequence share their prefix's
 * errors, so allow 5 times that: |Δ| ≤ 40u·√n (measured worst: 3.5 RMS·√n,
 * 0.28 nats for n = 20 where the bound is 0.70).
 * DPO gradient: a relative error e of the gradient gives 1 − cos ≈ e²/2;
 * e of a few u per product over the layers' products (2–3%) predicts
 * 1 − cos ≈ 3e-4. Bound: cos ≥ 0.998, e ≤ 6% (measured 0.99969 and
 * 0.99983). A floor checks that bf16 did change the result (RMS > u/4). */
#define U_BF16 0x1p-8
static void compare(model *m, const pairs *p, const char *label)
{
	result a, b;
	run(&a, m, p, 0);
	run(&b, m, p, 1);
	double worst = 0, se = 0, n_all = 0;
	for (int i = 0; i < p->n; i++)
		for (int k = 0; k < 2; k++) {
			int n = p->s[i].n_comp_tok[k];
			for (int t = 0; t < n; t++) {
				double d = b.tok[i][k][t] - a.tok[i][k][t];
				se += d * d, n_all++;
			}
			double dseq = b.logp[i][k] - a.logp[i][k];
			worst = fmax(worst, fabs(dseq) / (40 * U_BF16 * sqrt(n)));
			cr_expect(fabs(dseq) <= 40 * U_BF16 * sqrt(n),
				  "%s pair %d %c (%d tokens): log-prob %.6f in fp32, %.6f in bf16", label, i,
				  k ? 'r' : 'c', n, a.logp[i][k], b.logp[i][k]);
		}
	double dot = 0, na = 0, nb = 0;
	for (size_t q = 0; q < model_n_params(m); q++)
		dot += (double)a.grad[q] * b.grad[q], na += (double)a.grad[q] * a.grad[q],
			nb += (double)b.grad[q] * b.grad[q];
	double cosv = dot / sqrt(na * nb);
	fprintf(stderr,
		"%s: per-token RMS error %.3g (%.1fu), worst sequence %.2f of its bound, gradient cosine %.6f\n", label,
		sqrt(se / n_all), sqrt(se / n_all) / U_BF16, worst, cosv);
	cr_expect(sqrt(se / n_all) <= 8 * U_BF16, "%s: per-token RMS error %.4g > 8u", label, sqrt(se / n_all));
	cr_expect(sqrt(se / n_all) > U_BF16 / 4, "%s: per-token RMS error %.3g: bf16 changed nothing?", label,
		  sqrt(se / n_all));
	cr_expect(cosv >= 0.998, "%s: DPO gradient cosine %.6f to fp32 < 0.998", label, cosv);
	free_result(&a, p), free_result(&b, p);
}

static pairs random_pairs(uint64_t seed, int V, int n)
{
	pairs p = {.n = n};
	uint64_t s = seed;
	for (int i = 0; i < n; i++) {
		int P = 8 + (int)(rng_next(&s) % 56), n0 = 16 + (int)(rng_next(&s) % 112),
		    n1 = 16 + (int)(rng_next(&s) % 112);
		p.s[i] = (model_seq){.prompt = tl_tokens(&s, P, V),
				     .n_prompt = P,
				     .comp = {tl_tokens(&s, n0, V), tl_tokens(&s, n1, V)},
				     .n_comp_tok = {n0, n1},
				     .n_comp = 2};
		p.ref[i][0] = -8.0 * n0 + tl_normal(&s) * 3, p.ref[i][1] = -8.0 * n1 + tl_normal(&s) * 3;
	}
	return p;
}

Test(bf16, qwen_shaped)
{
	need_bf16();
	model_config c = {0};
	c.arch = ARCH_LLAMA;
	c.dim = 256, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 32, c.hidden_dim = 688, c.n_layers = 4;
	c.vocab_size = 4096, c.max_seq_len = 512, c.rope_theta = 1e6f, c.norm_eps = 1e-6f;
	c.tied_embeddings = 1, c.qkv_bias = 1, c.bos_id = c.eos_id = -1;
	model *m = model_new(&c);
	model_init_random(m, 11, 0.08f);
	pairs p = random_pairs(21, c.vocab_size, 8);
	compare(m, &p, "qwen-shaped");
	model_free(m);
}

/* stories260K (llama2.c) on the texts of the golden log-probs: pairs of
 * prompt = the first 4 tokens, chosen = the rest of text i, rejected =
 * the tail of text i+1. */
Test(bf16, stories260K)
{
	need_bf16();
	const char *sh = getenv("LBDPO_SHARED");
	if (!sh)
		cr_skip_test("LBDPO_SHARED not set: real assets absent");
	char path[4096];
	snprintf(path, sizeof path, "%s/assets/stories260K/stories260K.bin", sh);
	model *m = model_load(path);
	snprintf(path, sizeof path, "%s/golden/stories260K_logprobs.jsonl", sh);
	FILE *f = fopen(path, "r");
	cr_assert(m && f, "stories260K or its golden log-probs missing");
	static uint32_t ids[MAXP][512];
	int len[MAXP], nt = 0;
	char line[65536];
	while (nt < MAXP && fgets(line, sizeof line, f)) {
		char *q = strstr(line, "\"ids\":[");
		cr_assert(q);
		q += 7;
		len[nt] = 0;
		while (*q && *q != ']' && len[nt] < 512) {
			ids[nt][len[nt]++] = (uint32_t)strtoul(q, &q, 10);
			if (*q == ',')
				q++;
		}
		nt++;
	}
	fclose(f);
	pairs p = {.n = nt};
	for (int i = 0; i < nt; i++) {
		int j = (i + 1) % nt;
		p.s[i] = (model_seq){.prompt = ids[i],
				     .n_prompt = 4,
				     .comp = {ids[i] + 4, ids[j] + 4},
				     .n_comp_tok = {len[i] - 4, len[j] - 4},
				     .n_comp = 2};
		p.ref[i][0] = -2.0 * (len[i] - 4), p.ref[i][1] = -2.5 * (len[j] - 4);
	}
	compare(m, &p, "stories260K");
	model_free(m);
}
