/* gpu_kernels.c — every CUDA kernel of libcore/nn/cuda against its CPU twin
 * (libcore/nn/cpu/layers.c, libcore/nn/adamw.c) on random shapes: odd sizes, grouped-query heads,
 * head_dim 64 and 128, sequence lengths that are not multiples of 32, a
 * long prompt; the operations of the other families (Qwen3's per-head
 * norm, GPT-NeoX's partial rotary and exact GELU, Gemma's offset RMSNorm,
 * GeGLU, soft-caps and soft-capped, scaled, windowed attention). fp32 with
 * TF32 off; then the matrix products once more with TF32 on, within 1e-2
 * (lines tagged "TF32").
 *
 * Pass criterion, per output array: max|gpu − cpu| ≤ 1e-5 · max|cpu|
 * (relative error in the max norm; elementwise relative error is
 * meaningless for entries that cancel to near zero). Outputs that the
 * backward ADDS into start from the same random values on both sides, so
 * accumulation is checked too.
 *
 *   gpu_kernels                run everything; exit 0 all pass, 1 a failure,
 *                              77 (printing the reason) when no GPU is present
 *   gpu_kernels --select SPEC  select a --device spec and print the device
 *   gpu_kernels --oom          ask the device for 2^52 bytes (must die cleanly)
 *   gpu_kernels --tf32         backend_set_tf32 through backend_select_device:
 *                              prints the device descriptions and settings
 *   gpu_kernels --host-pointer hand a kernel a host pointer: the emulator
 *                              must abort naming it (a fault on a GPU; only
 *                              run on the emulator)
 *
 * Linked with the CPU emulator of tests/gpu/emu instead of CUDA (as
 * gpu_kernels_emu) it runs the same kernels without a GPU, with the long
 * cases shortened.
 *
 * LBDPO_GPU_SEED sets the random seed (printed on the first line).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/nn/adamw.h"
#include "libcore/nn/backend.h"
#include "libcore/nn/cuda/cuda.h"
#include "libcore/nn/cpu/kernels.h"
#include "base/rng.h"
#include "base/util.h"

#define TOL 1e-5

static int n_pass, n_fail;
static double tol = TOL;     /* TF32's checks widen it */
static const char *tag = ""; /* prefixed to the names of checks */

/* The CPU twin of cuda_all_finite (engine.c's is static). */
static int all_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}
static uint64_t rng;

static int irand(int n) { return rng_below(&rng, n); }
static float frand(void) { return (float)(rng_unif(&rng) * 2.0 - 1.0); } /* [-1, 1) */

static float *rnd(size_t n, float scale)
{
	float *p = xmalloc(sizeof(float) * (n ? n : 1));
	for (size_t i = 0; i < n; i++)
		p[i] = scale * frand();
	return p;
}

static float *dup(const float *h, size_t n)
{
	float *p = xmalloc(sizeof(float) * (n ? n : 1));
	memcpy(p, h, sizeof(float) * n);
	return p;
}

static void *up(const void *h, size_t bytes)
{
	void *d = cuda_alloc(bytes);
	cuda_upload(d, h, bytes);
	return d;
}

static float *down(const void *d, size_t n)
{
	float *h = xmalloc(sizeof(float) * (n ? n : 1));
	cuda_download(h, d, sizeof(float) * n);
	return h;
}

/* Compare and report one output array; frees got. */
static void check(const char *what, float *got, const float *want, size_t n)
{
	double md = 0, mw = 0;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		if (isfinite(want[i]) != isfinite(got[i]))
			bad = 1;
		double d = fabs((double)got[i] - want[i]);
		md = d > md ? d : md;
		mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
	}
	double rel = mw > 0 ? md / mw : md;
	int ok = !bad && rel <= tol;
	printf("%s%-*s %s  rel %.1e\n", tag, 64 - (int)strlen(tag), what, ok ? "ok  " : "FAIL", rel);
	ok ? n_pass++ : n_fail++;
	free(got);
}

static void check_d(const char *what, const double *got, const double *want, size_t n)
{
	float *g = xmalloc(sizeof(float) * n), *w = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++)
		g[i] = (float)got[i], w[i] = (float)want[i];
	check(what, g, w, n);
	free(w);
}

/* ---------------------------------------------------------------- layers */

static void t_embed(int T, int C, int V, int P, int with_wpe)
{
	char nm[128];
	uint32_t *tok = xmalloc(sizeof(uint32_t) * T);
	int *pos = xmalloc(sizeof(int) * T);
	for (int t = 0; t < T; t++)
		tok[t] = (uint32_t)irand(V), pos[t] = irand(P); /* repeats on purpose */
	float *wte = rnd((size_t)V * C, 1), *wpe = with_wpe ? rnd((size_t)P * C, 1) : NULL;
	float *out = xmalloc(sizeof(float) * T * C);
	uint32_t *dtok = up(tok, sizeof(uint32_t) * T);
	int *dpos = up(pos, sizeof(int) * T);
	float *dwte = up(wte, sizeof(float) * V * C), *dwpe = wpe ? up(wpe, sizeof(float) * P * C) : NULL;
	float *dout = cuda_alloc(sizeof(float) * T * C);
	embed_forward(out, tok, pos, wte, wpe, T, C);
	cuda_embed_forward(dout, dtok, dpos, dwte, dwpe, T, C);
	snprintf(nm, sizeof nm, "embed_forward T=%d C=%d V=%d wpe=%d", T, C, V, with_wpe);
	check(nm, down(dout, (size_t)T * C), out, (size_t)T * C);
	/* backward: gradients accumulate into random starting values */
	float *g = rnd((size_t)T * C, 1), *gwte = rnd((size_t)V * C, 1),
	      *gwpe = with_wpe ? rnd((size_t)P * C, 1) : NULL;
	float *dg = up(g, sizeof(float) * T * C), *dgwte = up(gwte, sizeof(float) * V * C);
	float *dgwpe = gwpe ? up(gwpe, sizeof(float) * P * C) : NULL;
	embed_backward(gwte, gwpe, g, tok, pos, T, C);
	cuda_embed_backward(dgwte, dgwpe, dg, dtok, dpos, T, C);
	snprintf(nm, sizeof nm, "embed_backward dwte T=%d C=%d V=%d", T, C, V);
	check(nm, down(dgwte, (size_t)V * C), gwte, (size_t)V * C);
	if (with_wpe) {
		snprintf(nm, sizeof nm, "embed_backward dwpe T=%d C=%d P=%d", T, C, P);
		check(nm, down(dgwpe, (size_t)P * C), gwpe, (size_t)P * C);
	}
	cuda_free(dtok), cuda_free(dpos), cuda_free(dwte), cuda_free(dwpe), cuda_free(dout);
	cuda_free(dg), cuda_free(dgwte), cuda_free(dgwpe);
	free(tok), free(pos), free(wte), free(wpe), free(out), free(g), free(gwte), free(gwpe);
}

/* layer: 0 rmsnorm, 1 layernorm, 2 rmsnorm with w_off 1 (Gemma's gain 1 + w) */
static void t_norm(int T, int C, int layer)
{
	char nm[128];
	const size_t n = (size_t)T * C, fb = sizeof(float);
	float *x = rnd(n, 2), *w = rnd(C, 1), *b = rnd(C, 1), eps = 1e-5f;
	for (size_t i = 0; i < n; i++)
		x[i] += 0.3f; /* a nonzero mean for the layernorm */
	float *out = xmalloc(fb * n), *mean = xmalloc(fb * T), *rstd = xmalloc(fb * T);
	float *dx = up(x, fb * n), *dw = up(w, fb * C), *db = up(b, fb * C);
	float *dout = cuda_alloc(fb * n), *dmean = cuda_alloc(fb * T), *drstd = cuda_alloc(fb * T);
	const char *k = layer == 2 ? "rmsnorm w_off=1" : layer ? "layernorm" : "rmsnorm";
	const float w_off = layer == 2 ? 1.0f : 0.0f;
	if (layer == 1) {
		layernorm_forward(out, mean, rstd, x, w, b, eps, T, C);
		cuda_layernorm_forward(dout, dmean, drstd, dx, dw, db, eps, T, C);
		snprintf(nm, sizeof nm, "%s_forward mean T=%d C=%d", k, T, C);
		check(nm, down(dmean, T), mean, T);
	} else {
		rmsnorm_forward(out, rstd, x, w, w_off, eps, T, C);
		cuda_rmsnorm_forward(dout, drstd, dx, dw, w_off, eps, T, C);
	}
	snprintf(nm, sizeof nm, "%s_forward out T=%d C=%d", k, T, C);
	check(nm, down(dout, n), out, n);
	snprintf(nm, sizeof nm, "%s_forward rstd T=%d C=%d", k, T, C);
	check(nm, down(drstd, T), rstd, T);
	/* backward from the CPU's statistics on both sides */
	cuda_upload(drstd, rstd, fb * T);
	cuda_upload(dmean, mean, fb * T);
	float *gy = rnd(n, 1), *gx = rnd(n, 1), *gw = rnd(C, 1), *gb = rnd(C, 1);
	float *dgy = up(gy, fb * n), *dgx = up(gx, fb * n), *dgw = up(gw, fb * C), *dgb = up(gb, fb * C);
	if (layer == 1) {
		layernorm_backward(gx, gw, gb, gy, x, w, mean, rstd, T, C);
		cuda_layernorm_backward(dgx, dgw, dgb, dgy, dx, dw, dmean, drstd, T, C);
		snprintf(nm, sizeof nm, "%s_backward db T=%d C=%d", k, T, C);
		check(nm, down(dgb, C), gb, C);
	} else {
		rmsnorm_backward(gx, gw, gy, x, w, w_off, rstd, T, C);
		cuda_rmsnorm_backward(dgx, dgw, dgy, dx, dw, w_off, drstd, T, C);
	}
	snprintf(nm, sizeof nm, "%s_backward dinp T=%d C=%d", k, T, C);
	check(nm, down(dgx, n), gx, n);
	snprintf(nm, sizeof nm, "%s_backward dw T=%d C=%d", k, T, C);
	check(nm, down(dgw, C), gw, C);
	cuda_free(dx), cuda_free(dw), cuda_free(db), cuda_free(dout), cuda_free(dmean), cuda_free(drstd);
	cuda_free(dgy), cuda_free(dgx), cuda_free(dgw), cuda_free(dgb);
	free(x), free(w), free(b), free(out), free(mean), free(rstd), free(gy), free(gx), free(gw), free(gb);
}

static void t_matmul(int T, int IC, int OC, int w_in_out, int with_bias, int with_dinp)
{
	char nm[160];
	const size_t fb = sizeof(float), ni = (size_t)T * IC, no = (size_t)T * OC, nw = (size_t)IC * OC;
	float *x = rnd(ni, 1), *w = rnd(nw, 0.5f), *bias = with_bias ? rnd(OC, 1) : NULL;
	float *out = xmalloc(fb * no);
	float *dx = up(x, fb * ni), *dw = up(w, fb * nw), *dbias = bias ? up(bias, fb * OC) : NULL;
	float *dout = cuda_alloc(fb * no);
	matmul_forward(out, x, w, bias, T, IC, OC, w_in_out);
	cuda_matmul_forward(dout, dx, dw, dbias, T, IC, OC, w_in_out);
	snprintf(nm, sizeof nm, "matmul_forward T=%d IC=%d OC=%d w_in_out=%d bias=%d", T, IC, OC, w_in_out, with_bias);
	check(nm, down(dout, no), out, no);
	float *gy = rnd(no, 1), *gx = rnd(ni, 1), *gw = rnd(nw, 1), *gb = rnd(OC, 1);
	float *dgy = up(gy, fb * no), *dgx = up(gx, fb * ni), *dgw = up(gw, fb * nw), *dgb = up(gb, fb * OC);
	matmul_backward(with_dinp ? gx : NULL, gw, with_bias ? gb : NULL, gy, x, w, T, IC, OC, w_in_out);
	cuda_matmul_backward(with_dinp ? dgx : NULL, dgw, with_bias ? dgb : NULL, dgy, dx, dw, T, IC, OC, w_in_out);
	snprintf(nm, sizeof nm, "matmul_backward dw T=%d IC=%d OC=%d w_in_out=%d", T, IC, OC, w_in_out);
	check(nm, down(dgw, nw), gw, nw);
	if (with_dinp) {
		snprintf(nm, sizeof nm, "matmul_backward dinp T=%d IC=%d OC=%d w_in_out=%d", T, IC, OC, w_in_out);
		check(nm, down(dgx, ni), gx, ni);
	}
	if (with_bias) {
		snprintf(nm, sizeof nm, "matmul_backward dbias T=%d IC=%d OC=%d w_in_out=%d", T, IC, OC, w_in_out);
		check(nm, down(dgb, OC), gb, OC);
	}
	cuda_free(dx), cuda_free(dw), cuda_free(dbias), cuda_free(dout);
	cuda_free(dgy), cuda_free(dgx), cuda_free(dgw), cuda_free(dgb);
	free(x), free(w), free(bias), free(out), free(gy), free(gx), free(gw), free(gb);
}

/* LoRA: the strided GEMM on a column slice of a wider output (row stride
 * ldc > N), every transpose pair, and the recomputable dropout; the frozen
 * matmul backward (dw NULL) leaves dinp right. */
static void t_lora(int M, int N, int K, int ldc, int o0)
{
	char nm[160];
	const size_t fb = sizeof(float), nc = (size_t)M * ldc;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++) {
			const int lda = ta ? M : K, ldb = tb ? K : N;
			const size_t na = (size_t)M * K, nb = (size_t)K * N;
			float *a = rnd(na, 1), *b = rnd(nb, 1), *c = rnd(nc, 1);
			float *da = up(a, fb * na), *db = up(b, fb * nb), *dc = up(c, fb * nc);
			gemm_strided(ta, tb, M, N, K, 0.5f, a, lda, b, ldb, 1.0f, c + o0, ldc);
			cuda_gemm_strided(ta, tb, M, N, K, 0.5f, da, lda, db, ldb, 1.0f, dc + o0, ldc);
			snprintf(nm, sizeof nm, "gemm_strided ta=%d tb=%d M=%d N=%d K=%d ldc=%d", ta, tb, M, N, K, ldc);
			check(nm, down(dc, nc), c, nc);
			cuda_free(da), cuda_free(db), cuda_free(dc);
			free(a), free(b), free(c);
		}
	const size_t n = (size_t)M * K;
	float *x = rnd(n, 1), *y = xmalloc(fb * n), *dx = up(x, fb * n), *dy = cuda_alloc(fb * n);
	dropout_mask(y, x, n, 0.3f, 0x1234abcdULL + (uint64_t)M);
	cuda_dropout_mask(dy, dx, n, 0.3f, 0x1234abcdULL + (uint64_t)M);
	snprintf(nm, sizeof nm, "dropout_mask n=%zu p=0.3", n);
	check(nm, down(dy, n), y, n);
	cuda_free(dx), cuda_free(dy);
	free(x), free(y);
}

static void t_rope(int T, int H, int KV, int hd)
{
	char nm[128];
	const size_t fb = sizeof(float), S = (size_t)(H + 2 * KV) * hd, n = (size_t)T * S;
	int *pos = xmalloc(sizeof(int) * T);
	for (int t = 0; t < T; t++)
		pos[t] = irand(4096);
	float *cs = xmalloc(fb * T * hd);
	float *dcs = cuda_alloc(fb * T * hd);
	/* the table is built on the host (rope.c) and uploaded, as model.c does */
	rope_table(cs, pos, T, hd, 500000.0f);
	cuda_upload(dcs, cs, fb * T * hd);
	float *x = rnd(n, 1), *dx = up(x, fb * n);
	rope_forward(x, cs, T, H + KV, hd, (int)S);
	cuda_rope_forward(dx, dcs, T, H + KV, hd, (int)S);
	snprintf(nm, sizeof nm, "rope_forward T=%d heads=%d+%d hd=%d", T, H, KV, hd);
	check(nm, down(dx, n), x, n);
	float *g = rnd(n, 1), *dg = up(g, fb * n);
	rope_backward(g, cs, T, H + KV, hd, (int)S);
	cuda_rope_backward(dg, dcs, T, H + KV, hd, (int)S);
	snprintf(nm, sizeof nm, "rope_backward T=%d heads=%d+%d hd=%d", T, H, KV, hd);
	check(nm, down(dg, n), g, n);
	cuda_free(dcs), cuda_free(dx), cuda_free(dg);
	free(pos), free(cs), free(x), free(g);
}

/* GPT-NeoX's partial rotary: the first rot of each head's hd dims, the q
 * and k heads of qkv rows (as model.c: 2·H heads, H == KV there). */
static void t_rope_part(int T, int H, int hd, int rot)
{
	char nm[128];
	const size_t fb = sizeof(float), S = (size_t)3 * H * hd, n = (size_t)T * S;
	int *pos = xmalloc(sizeof(int) * T);
	for (int t = 0; t < T; t++)
		pos[t] = irand(2048);
	float *cs = xmalloc(fb * T * rot), *dcs = cuda_alloc(fb * T * rot);
	rope_table(cs, pos, T, rot, 10000.0f);
	cuda_upload(dcs, cs, fb * T * rot);
	float *x = rnd(n, 1), *dx = up(x, fb * n);
	rope_part_forward(x, cs, T, 2 * H, hd, rot, (int)S);
	cuda_rope_part_forward(dx, dcs, T, 2 * H, hd, rot, (int)S);
	snprintf(nm, sizeof nm, "rope_part_forward T=%d heads=2x%d hd=%d rot=%d", T, H, hd, rot);
	check(nm, down(dx, n), x, n);
	float *g = rnd(n, 1), *dg = up(g, fb * n);
	rope_part_backward(g, cs, T, 2 * H, hd, rot, (int)S);
	cuda_rope_part_backward(dg, dcs, T, 2 * H, hd, rot, (int)S);
	snprintf(nm, sizeof nm, "rope_part_backward T=%d heads=2x%d hd=%d rot=%d", T, H, hd, rot);
	check(nm, down(dg, n), g, n);
	cuda_free(dcs), cuda_free(dx), cuda_free(dg);
	free(pos), free(cs), free(x), free(g);
}

/* Qwen3's q_norm/k_norm (w_off 0) and Gemma 3's (w_off 1): per-head RMSNorm
 * in place on nh heads of qkv rows [T, (H+2KV)·hd]. */
static void t_headnorm(int T, int H, int KV, int hd, float w_off)
{
	char nm[160];
	const size_t fb = sizeof(float), S = (size_t)(H + 2 * KV) * hd, n = (size_t)T * S;
	const int nh = H; /* the q heads; the k heads start at column H·hd */
	const size_t nx = (size_t)T * nh * hd, nr = (size_t)T * nh;
	float *x = rnd(n, 2), *w = rnd(hd, 1), *xs = xmalloc(fb * nx), *rstd = xmalloc(fb * nr);
	float *dx = up(x, fb * n), *dw = up(w, fb * hd), *dxs = cuda_alloc(fb * nx), *drstd = cuda_alloc(fb * nr);
	headnorm_forward(x, xs, rstd, w, w_off, 1e-6f, T, nh, hd, (int)S);
	cuda_headnorm_forward(dx, dxs, drstd, dw, w_off, 1e-6f, T, nh, hd, (int)S);
	snprintf(nm, sizeof nm, "headnorm_forward x T=%d nh=%d hd=%d w_off=%g", T, nh, hd, w_off);
	check(nm, down(dx, n), x, n);
	snprintf(nm, sizeof nm, "headnorm_forward xs T=%d nh=%d hd=%d", T, nh, hd);
	check(nm, down(dxs, nx), xs, nx);
	snprintf(nm, sizeof nm, "headnorm_forward rstd T=%d nh=%d hd=%d", T, nh, hd);
	check(nm, down(drstd, nr), rstd, nr);
	/* the k heads too: an offset pointer, inference (no xs, no rstd) */
	headnorm_forward(x + (size_t)H * hd, NULL, NULL, w, w_off, 1e-6f, T, KV, hd, (int)S);
	cuda_headnorm_forward(dx + (size_t)H * hd, NULL, NULL, dw, w_off, 1e-6f, T, KV, hd, (int)S);
	snprintf(nm, sizeof nm, "headnorm_forward k heads T=%d nh=%d hd=%d", T, KV, hd);
	check(nm, down(dx, n), x, n);
	/* backward from the CPU's xs and rstd, into a random dw */
	cuda_upload(dxs, xs, fb * nx);
	cuda_upload(drstd, rstd, fb * nr);
	float *g = rnd(n, 1), *gw = rnd(hd, 1), *dg = up(g, fb * n), *dgw = up(gw, fb * hd);
	headnorm_backward(g, gw, xs, w, w_off, rstd, T, nh, hd, (int)S);
	cuda_headnorm_backward(dg, dgw, dxs, dw, w_off, drstd, T, nh, hd, (int)S);
	snprintf(nm, sizeof nm, "headnorm_backward dx T=%d nh=%d hd=%d w_off=%g", T, nh, hd, w_off);
	check(nm, down(dg, n), g, n);
	snprintf(nm, sizeof nm, "headnorm_backward dw T=%d nh=%d hd=%d w_off=%g", T, nh, hd, w_off);
	check(nm, down(dgw, hd), gw, hd);
	cuda_free(dx), cuda_free(dw), cuda_free(dxs), cuda_free(drstd), cuda_free(dg), cuda_free(dgw);
	free(x), free(w), free(xs), free(rstd), free(g), free(gw);
}

/* A packed batch laid out as model_forward does: per sequence [prompt P |
 * comp0 n0 | comp1 n1]; prompt tokens see the prompt causally, completion
 * tokens the whole prompt and their own completion causally. */
typedef struct {
	int T, n_seq;
	int *ka, *kb, *kc, *seq_off, *seq_P;
} packed;

/* W > 0: a sliding window as model.c's window_clip (a query at position p
 * sees key positions > p − W; each range loses only its start). */
static void clip(packed *b, int t, int p, int kc_pos, int W)
{
	const int lo = p - W + 1, a = b->ka[t] + (lo > 0 ? lo : 0);
	b->ka[t] = a < b->kb[t] ? a : b->kb[t];
	b->kc[t] += lo > kc_pos ? lo - kc_pos : 0;
}

static packed pack_w(int n_seq, const int *P, const int *n0, const int *n1, int W)
{
	packed b = {0, n_seq, NULL, NULL, NULL, NULL, NULL};
	for (int s = 0; s < n_seq; s++)
		b.T += P[s] + n0[s] + n1[s];
	b.ka = xmalloc(sizeof(int) * b.T), b.kb = xmalloc(sizeof(int) * b.T), b.kc = xmalloc(sizeof(int) * b.T);
	b.seq_off = xmalloc(sizeof(int) * (n_seq + 1)), b.seq_P = xmalloc(sizeof(int) * n_seq);
	int t = 0;
	for (int s = 0; s < n_seq; s++) {
		const int st = t;
		b.seq_off[s] = st, b.seq_P[s] = P[s];
		for (int i = 0; i < P[s]; i++, t++) {
			b.ka[t] = b.kb[t] = b.kc[t] = st;
			if (W > 0)
				clip(&b, t, i, 0, W);
		}
		for (int k = 0; k < 2; k++) {
			const int nk = k ? n1[s] : n0[s], cst = t;
			for (int j = 0; j < nk; j++, t++) {
				b.ka[t] = st, b.kb[t] = st + P[s], b.kc[t] = cst;
				if (W > 0)
					clip(&b, t, P[s] + j, P[s], W);
			}
		}
	}
	b.seq_off[n_seq] = t;
	return b;
}

static packed pack(int n_seq, const int *P, const int *n0, const int *n1) { return pack_w(n_seq, P, n0, n1, 0); }

static void unpack(packed *b) { free(b->ka), free(b->kb), free(b->kc), free(b->seq_off), free(b->seq_P); }

static void t_attention(int n_seq, const int *P, const int *n0, const int *n1, int H, int KV, int hd)
{
	char nm[160];
	packed b = pack(n_seq, P, n0, n1);
	const int T = b.T;
	const size_t fb = sizeof(float), ib = sizeof(int) * T, S = (size_t)(H + 2 * KV) * hd;
	const size_t nq = (size_t)T * S, no = (size_t)T * H * hd, nl = (size_t)T * H;
	float *qkv = rnd(nq, 2), *out = xmalloc(fb * no), *lse = xmalloc(fb * nl);
	int *dka = up(b.ka, ib), *dkb = up(b.kb, ib), *dkc = up(b.kc, ib);
	int *doff = up(b.seq_off, sizeof(int) * (n_seq + 1));
	float *dqkv = up(qkv, fb * nq), *dout = cuda_alloc(fb * no), *dlse = cuda_alloc(fb * nl);
	attention_forward(out, lse, qkv, b.ka, b.kb, b.kc, T, H, KV, hd, 0.0f, 0.0f);
	cuda_attention_forward(dout, dlse, dqkv, dka, dkb, dkc, T, H, KV, hd, 0.0f, 0.0f);
	snprintf(nm, sizeof nm, "attention_forward out T=%d seqs=%d H=%d KV=%d hd=%d", T, n_seq, H, KV, hd);
	check(nm, down(dout, no), out, no);
	snprintf(nm, sizeof nm, "attention_forward lse T=%d seqs=%d H=%d KV=%d hd=%d", T, n_seq, H, KV, hd);
	check(nm, down(dlse, nl), lse, nl);
	/* backward from the CPU's out and lse */
	cuda_upload(dout, out, fb * no);
	cuda_upload(dlse, lse, fb * nl);
	float *gy = rnd(no, 1), *gq = rnd(nq, 1);
	float *dgy = up(gy, fb * no), *dgq = up(gq, fb * nq);
	attention_backward(gq, gy, qkv, out, lse, b.ka, b.kb, b.kc, b.seq_off, n_seq, T, H, KV, hd, 0.0f, 0.0f);
	cuda_attention_backward(dgq, dgy, dqkv, dout, dlse, dka, dkb, dkc, doff, n_seq, T, H, KV, hd, 0.0f, 0.0f);
	snprintf(nm, sizeof nm, "attention_backward dqkv T=%d seqs=%d H=%d KV=%d hd=%d", T, n_seq, H, KV, hd);
	check(nm, down(dgq, nq), gq, nq);
	cuda_free(dka), cuda_free(dkb), cuda_free(dkc), cuda_free(doff), cuda_free(dqkv), cuda_free(dout);
	cuda_free(dlse), cuda_free(dgy), cuda_free(dgq);
	free(qkv), free(out), free(lse), free(gy), free(gq);
	unpack(&b);
}

/* Gemma's attention: the score scale given, logit soft-cap (cap 0: none),
 * an optional sliding window W. */
static void t_attention_ext(int n_seq, const int *P, const int *n0, const int *n1, int H, int KV, int hd, float scale,
			    float cap, int W)
{
	char nm[192];
	packed b = pack_w(n_seq, P, n0, n1, W);
	const int T = b.T;
	const size_t fb = sizeof(float), ib = sizeof(int) * T, S = (size_t)(H + 2 * KV) * hd;
	const size_t nq = (size_t)T * S, no = (size_t)T * H * hd, nl = (size_t)T * H;
	float *qkv = rnd(nq, 3), *out = xmalloc(fb * no), *lse = xmalloc(fb * nl);
	int *dka = up(b.ka, ib), *dkb = up(b.kb, ib), *dkc = up(b.kc, ib);
	int *doff = up(b.seq_off, sizeof(int) * (n_seq + 1));
	float *dqkv = up(qkv, fb * nq), *dout = cuda_alloc(fb * no), *dlse = cuda_alloc(fb * nl);
	attention_forward(out, lse, qkv, b.ka, b.kb, b.kc, T, H, KV, hd, scale, cap);
	cuda_attention_forward(dout, dlse, dqkv, dka, dkb, dkc, T, H, KV, hd, scale, cap);
	snprintf(nm, sizeof nm, "attention_forward out T=%d H=%d KV=%d hd=%d scale=%g cap=%g W=%d", T, H, KV, hd, scale,
		 cap, W);
	check(nm, down(dout, no), out, no);
	snprintf(nm, sizeof nm, "attention_forward lse T=%d H=%d KV=%d hd=%d scale=%g cap=%g W=%d", T, H, KV, hd, scale,
		 cap, W);
	check(nm, down(dlse, nl), lse, nl);
	cuda_upload(dout, out, fb * no);
	cuda_upload(dlse, lse, fb * nl);
	float *gy = rnd(no, 1), *gq = rnd(nq, 1);
	float *dgy = up(gy, fb * no), *dgq = up(gq, fb * nq);
	attention_backward(gq, gy, qkv, out, lse, b.ka, b.kb, b.kc, b.seq_off, n_seq, T, H, KV, hd, scale, cap);
	cuda_attention_backward(dgq, dgy, dqkv, dout, dlse, dka, dkb, dkc, doff, n_seq, T, H, KV, hd, scale, cap);
	snprintf(nm, sizeof nm, "attention_backward dqkv T=%d H=%d KV=%d hd=%d scale=%g cap=%g W=%d", T, H, KV, hd,
		 scale, cap, W);
	check(nm, down(dgq, nq), gq, nq);
	cuda_free(dka), cuda_free(dkb), cuda_free(dkc), cuda_free(doff), cuda_free(dqkv), cuda_free(dout);
	cuda_free(dlse), cuda_free(dgy), cuda_free(dgq);
	free(qkv), free(out), free(lse), free(gy), free(gq);
	unpack(&b);
}

/* exact GELU, GeGLU, soft-capping */
static void t_family_act(int T, int F, float cap)
{
	char nm[128];
	const size_t fb = sizeof(float), n = (size_t)T * F;
	float *in2 = rnd(2 * n, 4), *out = xmalloc(fb * n), *gy = rnd(n, 1), *gx = xmalloc(fb * 2 * n);
	float *din2 = up(in2, fb * 2 * n), *dout = cuda_alloc(fb * n), *dgy = up(gy, fb * n);
	float *dgx = cuda_alloc(fb * 2 * n);
	gelu_exact_forward(out, in2, n);
	cuda_gelu_exact_forward(dout, din2, n);
	snprintf(nm, sizeof nm, "gelu_exact_forward n=%zu", n);
	check(nm, down(dout, n), out, n);
	gelu_exact_backward(gx, gy, in2, n);
	cuda_gelu_exact_backward(dgx, dgy, din2, n);
	snprintf(nm, sizeof nm, "gelu_exact_backward n=%zu", n);
	check(nm, down(dgx, n), gx, n);
	geglu_forward(out, in2, T, F);
	cuda_geglu_forward(dout, din2, T, F);
	snprintf(nm, sizeof nm, "geglu_forward T=%d F=%d", T, F);
	check(nm, down(dout, n), out, n);
	geglu_backward(gx, gy, in2, T, F);
	cuda_geglu_backward(dgx, dgy, din2, T, F);
	snprintf(nm, sizeof nm, "geglu_backward T=%d F=%d", T, F);
	check(nm, down(dgx, 2 * n), gx, 2 * n);
	/* soft-cap of values up to 4·cap (deep in the flat part too) */
	float *z = rnd(n, 4 * cap), *dz = up(z, fb * n);
	softcap_forward(z, n, cap);
	cuda_softcap_forward(dz, n, cap);
	snprintf(nm, sizeof nm, "softcap_forward n=%zu cap=%g", n, cap);
	check(nm, down(dz, n), z, n);
	cuda_upload(dz, z, fb * n);
	softcap_backward(gy, z, n, cap);
	cuda_softcap_backward(dgy, dz, n, cap);
	snprintf(nm, sizeof nm, "softcap_backward n=%zu cap=%g", n, cap);
	check(nm, down(dgy, n), gy, n);
	cuda_free(din2), cuda_free(dout), cuda_free(dgy), cuda_free(dgx), cuda_free(dz);
	free(in2), free(out), free(gy), free(gx), free(z);
}

static void t_activations(int T, int F)
{
	char nm[128];
	const size_t fb = sizeof(float), n = (size_t)T * F;
	float *in2 = rnd(2 * n, 4), *out = xmalloc(fb * n), *gy = rnd(n, 1), *gx = xmalloc(fb * 2 * n);
	float *din2 = up(in2, fb * 2 * n), *dout = cuda_alloc(fb * n), *dgy = up(gy, fb * n);
	float *dgx = cuda_alloc(fb * 2 * n);
	swiglu_forward(out, in2, T, F);
	cuda_swiglu_forward(dout, din2, T, F);
	snprintf(nm, sizeof nm, "swiglu_forward T=%d F=%d", T, F);
	check(nm, down(dout, n), out, n);
	swiglu_backward(gx, gy, in2, T, F);
	cuda_swiglu_backward(dgx, dgy, din2, T, F);
	snprintf(nm, sizeof nm, "swiglu_backward T=%d F=%d", T, F);
	check(nm, down(dgx, 2 * n), gx, 2 * n);
	gelu_forward(out, in2, n);
	cuda_gelu_forward(dout, din2, n);
	snprintf(nm, sizeof nm, "gelu_forward n=%zu", n);
	check(nm, down(dout, n), out, n);
	gelu_backward(gx, gy, in2, n);
	cuda_gelu_backward(dgx, dgy, din2, n);
	snprintf(nm, sizeof nm, "gelu_backward n=%zu", n);
	check(nm, down(dgx, n), gx, n);
	residual_forward(out, in2, gy, n);
	cuda_residual_forward(dout, din2, dgy, n);
	snprintf(nm, sizeof nm, "residual_forward n=%zu", n);
	check(nm, down(dout, n), out, n);
	add_inplace(out, in2 + n, n);
	cuda_add_inplace(dout, din2 + n, n);
	snprintf(nm, sizeof nm, "add_inplace n=%zu", n);
	check(nm, down(dout, n), out, n);
	cuda_free(din2), cuda_free(dout), cuda_free(dgy), cuda_free(dgx);
	free(in2), free(out), free(gy), free(gx);
}

/* --------------------------------------------------- head and hand-off */

static void t_head(int n_seq, const int *P, const int *n0, const int *n1, int C, int V)
{
	char nm[160];
	/* rows as model_forward lays them out (targets random) */
	int T = 0;
	for (int s = 0; s < n_seq; s++)
		T += P[s] + n0[s] + n1[s];
	logit_row *rows = xcalloc(T, sizeof *rows);
	int *seq_off = xmalloc(sizeof(int) * (n_seq + 1)), *seq_P = xmalloc(sizeof(int) * n_seq);
	int t = 0;
	for (int s = 0; s < n_seq; s++) {
		seq_off[s] = t, seq_P[s] = P[s];
		for (int i = 0; i < P[s]; i++, t++) {
			logit_row *r = &rows[t];
			r->seq = s, r->y[0] = r->y[1] = -1;
			if (i < P[s] - 1) {
				r->y[0] = irand(V), r->kind[0] = 1, r->j[0] = i + 1;
			} else {
				r->y[0] = irand(V), r->kind[0] = 2, r->j[0] = 0;
				if (n1[s])
					r->y[1] = irand(V), r->kind[1] = 3, r->j[1] = 0;
			}
		}
		for (int k = 0; k < 2; k++) {
			const int nk = k ? n1[s] : n0[s];
			for (int j = 0; j < nk; j++, t++) {
				logit_row *r = &rows[t];
				r->seq = s, r->y[0] = r->y[1] = -1;
				if (j < nk - 1)
					r->y[0] = irand(V), r->kind[0] = 2 + k, r->j[0] = j + 1;
			}
		}
	}
	seq_off[n_seq] = T;
	const size_t fb = sizeof(float), nz = (size_t)T * V, nh = (size_t)T * C, nw = (size_t)V * C;
	float *h = rnd(nh, 1), *w = rnd(nw, 1), *z = xmalloc(fb * nz);
	float *dh = up(h, fb * nh), *dw = up(w, fb * nw), *dz = cuda_alloc(fb * nz);
	lmhead_forward(z, h, w, T, C, V);
	cuda_lmhead_forward(dz, dh, dw, T, C, V);
	snprintf(nm, sizeof nm, "lmhead_forward T=%d C=%d V=%d", T, C, V);
	check(nm, down(dz, nz), z, nz);
	cuda_lmhead_forward1(dz, dh + (size_t)(T - 1) * C, dw, C, V);
	snprintf(nm, sizeof nm, "lmhead_forward1 C=%d V=%d", C, V);
	check(nm, down(dz, V), z + (size_t)(T - 1) * V, V);
	cuda_upload(dz, z, fb * nz);
	/* log-softmax of the rows with a target; untouched rows keep the
	 * same starting values on both sides */
	float *lse = rnd(T, 1), *lp = rnd(2 * (size_t)T, 1), *ent = rnd(T, 1);
	logit_row *drows = up(rows, sizeof *rows * T);
	float *dlse = up(lse, fb * T), *dlp = up(lp, fb * 2 * T), *dent = up(ent, fb * T);
	logsoftmax_rows(lse, lp, ent, z, rows, T, V);
	cuda_logsoftmax_rows(dlse, dlp, dent, dz, drows, T, V);
	snprintf(nm, sizeof nm, "logsoftmax_rows lse T=%d V=%d", T, V);
	check(nm, down(dlse, T), lse, T);
	snprintf(nm, sizeof nm, "logsoftmax_rows lp T=%d V=%d", T, V);
	check(nm, down(dlp, 2 * (size_t)T), lp, 2 * (size_t)T);
	snprintf(nm, sizeof nm, "logsoftmax_rows entropy T=%d V=%d", T, V);
	check(nm, down(dent, T), ent, T);
	/* per-sequence sums from the CPU's lp and entropy */
	cuda_upload(dlp, lp, fb * 2 * T);
	cuda_upload(dent, ent, fb * T);
	int *doff = up(seq_off, sizeof(int) * (n_seq + 1)), *dP = up(seq_P, sizeof(int) * n_seq);
	double *st = xmalloc(sizeof(double) * 4 * n_seq), *gst = xmalloc(sizeof(double) * 4 * n_seq);
	double *dst = cuda_alloc(sizeof(double) * 4 * n_seq);
	seq_logp_sums(st, lp, ent, rows, seq_off, n_seq);
	cuda_seq_logp_sums(dst, dlp, dent, drows, doff, n_seq);
	cuda_download(gst, dst, sizeof(double) * 4 * n_seq);
	snprintf(nm, sizeof nm, "seq_logp_sums seqs=%d", n_seq);
	check_d(nm, gst, st, 4 * (size_t)n_seq);
	/* logit gradient on an increasing subset of the rows with targets */
	int n = 0, *idx = xmalloc(sizeof(int) * T);
	int32_t *y = xmalloc(sizeof(int32_t) * 2 * T);
	double *wt = xmalloc(sizeof(double) * 2 * T);
	for (int r = 0; r < T; r++) {
		if ((!rows[r].kind[0] && !rows[r].kind[1]) || irand(4) == 0)
			continue;
		idx[n] = r;
		for (int k = 0; k < 2; k++) {
			y[2 * n + k] = rows[r].kind[k] ? rows[r].y[k] : -1;
			wt[2 * n + k] = rows[r].kind[k] ? frand() : 0.0;
		}
		n++;
	}
	if (n > 0) { /* one row with both targets on the same token */
		y[0] = y[1] = irand(V), wt[0] = 0.75, wt[1] = -0.25;
	}
	cuda_upload(dlse, lse, fb * T);
	int *didx = up(idx, sizeof(int) * (n ? n : 1));
	int32_t *dy = up(y, sizeof(int32_t) * 2 * (n ? n : 1));
	double *dwt = up(wt, sizeof(double) * 2 * (n ? n : 1));
	logit_grad_rows(z, lse, idx, wt, y, n, V);
	cuda_logit_grad_rows(dz, dlse, didx, dwt, dy, n, V);
	snprintf(nm, sizeof nm, "logit_grad_rows n=%d V=%d", n, V);
	check(nm, down(dz, nz), z, nz);
	/* compaction, gather, lm_head backward, scatter as model_backward does */
	cuda_upload(dz, z, fb * nz);
	rows_compact(z, idx, n, V);
	cuda_rows_compact(dz, didx, n, V);
	snprintf(nm, sizeof nm, "rows_compact n=%d C=%d", n, V);
	check(nm, down(dz, nz), z, nz);
	cuda_upload(dz, z, fb * nz);
	float *hc = xmalloc(fb * (n ? n : 1) * C), *dhc = cuda_alloc(fb * (n ? n : 1) * C);
	rows_gather(hc, h, idx, n, C);
	cuda_rows_gather(dhc, dh, didx, n, C);
	snprintf(nm, sizeof nm, "rows_gather n=%d C=%d", n, C);
	check(nm, down(dhc, (size_t)n * C), hc, (size_t)n * C);
	cuda_upload(dhc, hc, fb * n * C);
	float *gh = xmalloc(fb * (n ? n : 1) * C), *gw = rnd(nw, 1);
	float *dgh = cuda_alloc(fb * (n ? n : 1) * C), *dgw = up(gw, fb * nw);
	lmhead_backward(gh, gw, z, hc, w, n, C, V);
	cuda_lmhead_backward(dgh, dgw, dz, dhc, dw, n, C, V);
	snprintf(nm, sizeof nm, "lmhead_backward dh n=%d C=%d V=%d", n, C, V);
	check(nm, down(dgh, (size_t)n * C), gh, (size_t)n * C);
	snprintf(nm, sizeof nm, "lmhead_backward dW n=%d C=%d V=%d", n, C, V);
	check(nm, down(dgw, nw), gw, nw);
	cuda_upload(dgh, gh, fb * n * C);
	float *dl = rnd(nh, 1), *ddl = up(dl, fb * nh);
	rows_scatter(dl, gh, idx, n, C);
	cuda_rows_scatter(ddl, dgh, didx, n, C);
	snprintf(nm, sizeof nm, "rows_scatter n=%d C=%d", n, C);
	check(nm, down(ddl, nh), dl, nh);
	/* pooled prompt states and their backward */
	float *last = xmalloc(fb * n_seq * C), *mean = xmalloc(fb * n_seq * C);
	float *dlast = cuda_alloc(fb * n_seq * C), *dmean = cuda_alloc(fb * n_seq * C);
	pool_forward(last, mean, h, seq_off, seq_P, n_seq, C);
	cuda_pool_forward(dlast, dmean, dh, doff, dP, n_seq, C);
	snprintf(nm, sizeof nm, "pool_forward last seqs=%d C=%d", n_seq, C);
	check(nm, down(dlast, (size_t)n_seq * C), last, (size_t)n_seq * C);
	snprintf(nm, sizeof nm, "pool_forward mean seqs=%d C=%d", n_seq, C);
	check(nm, down(dmean, (size_t)n_seq * C), mean, (size_t)n_seq * C);
	uint8_t *hl = xmalloc(n_seq), *hm = xmalloc(n_seq);
	for (int s = 0; s < n_seq; s++)
		hl[s] = (uint8_t)(s % 3 != 1), hm[s] = (uint8_t)(s % 3 != 2);
	float *gl = rnd((size_t)n_seq * C, 1), *gm = rnd((size_t)n_seq * C, 1);
	cuda_upload(dlast, gl, fb * n_seq * C);
	cuda_upload(dmean, gm, fb * n_seq * C);
	uint8_t *dhl = up(hl, n_seq), *dhm = up(hm, n_seq);
	pool_backward(dl, gl, gm, hl, hm, seq_off, seq_P, n_seq, C);
	cuda_pool_backward(ddl, dlast, dmean, dhl, dhm, doff, dP, n_seq, C);
	snprintf(nm, sizeof nm, "pool_backward seqs=%d C=%d", n_seq, C);
	check(nm, down(ddl, nh), dl, nh);
	cuda_free(dh), cuda_free(dw), cuda_free(dz), cuda_free(drows), cuda_free(dlse), cuda_free(dlp);
	cuda_free(dent), cuda_free(doff), cuda_free(dP), cuda_free(dst), cuda_free(didx), cuda_free(dy);
	cuda_free(dwt), cuda_free(dhc), cuda_free(dgh), cuda_free(dgw), cuda_free(ddl), cuda_free(dlast);
	cuda_free(dmean), cuda_free(dhl), cuda_free(dhm);
	free(rows), free(seq_off), free(seq_P), free(h), free(w), free(z), free(lse), free(lp), free(ent);
	free(st), free(gst), free(idx), free(y), free(wt), free(hc), free(gh), free(gw), free(dl), free(last);
	free(mean), free(hl), free(hm), free(gl), free(gm);
}

/* cap < 0: the plain attention_decode (scale and cap 0); else with the
 * scale and cap given (cap 0: none) */
static void t_decode_x(int len0, int n, int H, int KV, int hd, float scale, float cap)
{
	char nm[128];
	const int QKV = (H + 2 * KV) * hd, KVD = KV * hd, max = len0 + n + 3;
	const size_t fb = sizeof(float), nc = (size_t)max * KVD, nq = (size_t)n * QKV, no = (size_t)n * H * hd;
	float *kc = rnd(nc, 2), *vc = rnd(nc, 2), *qkv = rnd(nq, 2), *out = xmalloc(fb * no);
	float *dkc = up(kc, fb * nc), *dvc = up(vc, fb * nc), *dqkv = up(qkv, fb * nq), *dout = cuda_alloc(fb * no);
	kv_append(kc, vc, qkv, len0, n, H, KV, hd, QKV);
	cuda_kv_append(dkc, dvc, dqkv, len0, n, H, KV, hd, QKV);
	snprintf(nm, sizeof nm, "kv_append k at=%d n=%d KV=%d hd=%d", len0, n, KV, hd);
	check(nm, down(dkc, nc), kc, nc);
	snprintf(nm, sizeof nm, "kv_append v at=%d n=%d KV=%d hd=%d", len0, n, KV, hd);
	check(nm, down(dvc, nc), vc, nc);
	if (cap < 0) {
		attention_decode(out, qkv, kc, vc, len0, n, H, KV, hd, QKV, 0.0f, 0.0f);
		cuda_attention_decode(dout, dqkv, dkc, dvc, len0, n, H, KV, hd, QKV, 0.0f, 0.0f);
		snprintf(nm, sizeof nm, "attention_decode len0=%d n=%d H=%d KV=%d hd=%d", len0, n, H, KV, hd);
	} else {
		attention_decode(out, qkv, kc, vc, len0, n, H, KV, hd, QKV, scale, cap);
		cuda_attention_decode(dout, dqkv, dkc, dvc, len0, n, H, KV, hd, QKV, scale, cap);
		snprintf(nm, sizeof nm, "attention_decode len0=%d n=%d H=%d KV=%d hd=%d scale=%g cap=%g", len0, n, H,
			 KV, hd, scale, cap);
	}
	check(nm, down(dout, no), out, no);
	cuda_free(dkc), cuda_free(dvc), cuda_free(dqkv), cuda_free(dout);
	free(kc), free(vc), free(qkv), free(out);
}

static void t_decode(int len0, int n, int H, int KV, int hd) { t_decode_x(len0, n, H, KV, hd, 0, -1); }

/* ------------------------------------------------------------- optimizer */

static void t_optim(size_t n)
{
	char nm[128];
	const size_t fb = sizeof(float);
	float *p = rnd(n, 1), *m = xcalloc(n, fb), *v = xcalloc(n, fb);
	float *dp = up(p, fb * n), *dm = up(m, fb * n), *dv = up(v, fb * n), *dg = cuda_alloc(fb * n);
	const adamw_hp hp = {0.9, 0.999, 1e-8};
	for (long t = 1; t <= 3; t++) {
		float *g = rnd(n, 1e-3f * (float)t);
		cuda_upload(dg, g, fb * n);
		adamw_update(p, g, m, v, n, 3e-4 * t, 0.01, &hp, t);
		cuda_adamw_update(dp, dg, dm, dv, n, 3e-4 * t, 0.01, &hp, t);
		free(g);
	}
	snprintf(nm, sizeof nm, "adamw_update ×3 param n=%zu", n);
	check(nm, down(dp, n), p, n);
	snprintf(nm, sizeof nm, "adamw_update ×3 m n=%zu", n);
	check(nm, down(dm, n), m, n);
	snprintf(nm, sizeof nm, "adamw_update ×3 v n=%zu", n);
	check(nm, down(dv, n), v, n);
	double want = sumsq(p, n), got = cuda_sumsq(dp, n);
	snprintf(nm, sizeof nm, "sumsq n=%zu", n);
	check_d(nm, &got, &want, 1);
	scale_inplace(p, n, 0.37f);
	cuda_scale_inplace(dp, n, 0.37f);
	snprintf(nm, sizeof nm, "scale_inplace n=%zu", n);
	check(nm, down(dp, n), p, n);
	/* finite check: clean, then one NaN, then also infinities */
	const size_t at = n / 2;
	float f[3], wf[3];
	f[0] = (float)cuda_all_finite(dp, n), wf[0] = (float)all_finite(p, n);
	float bad = NAN;
	cuda_upload(dp + at, &bad, fb);
	p[at] = bad;
	f[1] = (float)cuda_all_finite(dp, n), wf[1] = (float)all_finite(p, n);
	bad = INFINITY;
	cuda_upload(dp + n - 1, &bad, fb);
	cuda_upload(dp + at, &bad, fb);
	p[n - 1] = p[at] = bad;
	f[2] = (float)cuda_all_finite(dp, n), wf[2] = (float)all_finite(p, n);
	snprintf(nm, sizeof nm, "all_finite (finite, NaN, inf) n=%zu", n);
	if (wf[0] != 1 || wf[1] != 0 || wf[2] != 0)
		die("all_finite reference is wrong");
	check(nm, dup(f, 3), wf, 3);
	cuda_free(dp), cuda_free(dm), cuda_free(dv), cuda_free(dg);
	free(p), free(m), free(v);
}

int main(int argc, char **argv)
{
	set_progname("gpu_kernels");
	if (argc == 3 && !strcmp(argv[1], "--select")) {
		char name[256];
		size_t tot;
		int d = cuda_select(argv[2]);
		cuda_device_info(name, sizeof name, &tot);
		printf("cuda:%d %s %.1f GiB\n", d, name, tot / 1073741824.0);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--oom")) {
		cuda_select("cuda");
		cuda_alloc((size_t)1 << 52);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--tf32")) {
		/* asked before the device is chosen, it holds for the one chosen;
		 * the CPU backend ignores it */
		backend_set_tf32(1);
		backend_select_device("cpu");
		printf("%s | want %d\n", backend_device(), backend_tf32());
		backend_select_device("cuda");
		printf("%s | cuda %d\n", backend_device(), cuda_tf32());
		backend_set_tf32(0);
		printf("%s | cuda %d\n", backend_device(), cuda_tf32());
		backend_set_tf32(1);
		printf("%s | cuda %d\n", backend_device(), cuda_tf32());
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--host-pointer")) {
		static float h[64];
		cuda_select("cuda");
		float *d = cuda_alloc(sizeof h);
		cuda_residual_forward(d, h, d, 64);
		cuda_sync();
		return 0;
	}
	if (argc != 1)
		die_usage("usage: gpu_kernels [--select SPEC | --oom | --tf32 | --host-pointer]");
	char why[256];
	if (cuda_probe(why, sizeof why) == 0) {
		printf("skipped: %s\n", why);
		return 77;
	}
	const char *dev = getenv("LBDPO_CUDA_DEVICE");
	cuda_select(dev && *dev ? dev : "cuda");
	cuda_set_tf32(0);
	const char *sd = getenv("LBDPO_GPU_SEED");
	rng = sd && *sd ? strtoull(sd, NULL, 10) : 20261125;
	/* The CPU emulator (tests/gpu/emu) is slow: the long cases shrink. */
	char name[256];
	size_t tot;
	cuda_device_info(name, sizeof name, &tot);
	const int emu = strstr(name, "emulator") != NULL, L = emu ? 10 : 1;
	printf("gpu_kernels: %s, seed %llu, tolerance %.0e (max-norm relative), TF32 off%s\n", name,
	       (unsigned long long)rng, TOL, emu ? ", long cases shortened 10x" : "");

	t_embed(1, 64, 50, 8, 0);
	t_embed(77, 67, 41, 90, 1);
	t_embed(300, 200, 13, 300, 1); /* many repeats of few tokens */
	for (int layer = 0; layer < 3; layer++) {
		t_norm(1, 64, layer);
		t_norm(45, 67, layer);
		t_norm(130, 1000, layer);
	}
	for (int wio = 0; wio < 2; wio++) {
		t_matmul(1, 64, 96, wio, 1, 1);
		t_matmul(33, 17, 257, wio, 1, 1);
		t_matmul(130, 100, 3, wio, 0, 1);
		t_matmul(77, 256, 768, wio, 1, 0);
	}
	t_lora(33, 16, 100, 48, 16); /* k_proj's columns of a fused q|k|v */
	t_lora(7, 5, 3, 5, 0);
	t_lora(130, 64, 16, 64, 0);
	t_rope(45, 4, 4, 64);
	t_rope(33, 8, 2, 128);
	t_rope(7, 3, 1, 6);
	t_rope_part(45, 4, 64, 16);  /* Pythia: rotary_pct 0.25 */
	t_rope_part(33, 3, 80, 20);  /* head_dim 80 (Pythia 1B/2.8B) */
	t_rope_part(7, 2, 128, 128); /* the whole head */
	t_headnorm(1, 4, 2, 64, 0.0f);
	t_headnorm(37, 8, 2, 128, 0.0f); /* Qwen3: hd 128, GQA */
	t_headnorm(45, 3, 1, 40, 1.0f);  /* Gemma 3's gain 1 + w, hd not a multiple of 32 */
	t_headnorm(130, 2, 2, 256, 1.0f);
	{
		const int P1[] = {5}, a1[] = {3}, b1[] = {0};
		t_attention(1, P1, a1, b1, 4, 4, 64); /* one sequence, one completion */
		const int P2[] = {13, 1, 40}, a2[] = {7, 1, 25}, b2[] = {9, 2, 33};
		t_attention(3, P2, a2, b2, 8, 2, 64);  /* GQA 4:1 */
		t_attention(3, P2, a2, b2, 6, 1, 128); /* MQA, hd 128 */
		t_attention(3, P2, a2, b2, 4, 2, 40);  /* hd not a multiple of 32 */
		const int P3[] = {1000 / L, 37}, a3[] = {61, 5}, b3[] = {45, 12};
		t_attention(2, P3, a3, b3, 4, 2, 128); /* a long prompt */
		const int P4[] = {3, 2, 9, 31, 33}, a4[] = {1, 4, 1, 30, 2}, b4[] = {1, 0, 6, 34, 1};
		t_attention(5, P4, a4, b4, 2, 1, 256); /* hd 256, lengths around 32 */
	}
	{
		/* Gemma: scale query_pre_attn_scalar^−½, caps 50 (Gemma 2) and a
		 * small one that bends the scores, sliding windows */
		const int P2[] = {13, 1, 40}, a2[] = {7, 1, 25}, b2[] = {9, 2, 33};
		t_attention_ext(3, P2, a2, b2, 8, 4, 64, 1.0f / sqrtf(224.0f), 50.0f, 0);
		t_attention_ext(3, P2, a2, b2, 8, 4, 64, 0.125f, 0.0f, 0); /* Gemma 3: no cap */
		t_attention_ext(3, P2, a2, b2, 4, 2, 40, 0.3f, 2.0f, 0);
		t_attention_ext(3, P2, a2, b2, 4, 1, 128, 0.2f, 3.0f, 6); /* a window shorter than prompts */
		t_attention_ext(3, P2, a2, b2, 2, 2, 256, 0.0625f, 5.0f, 33);
		const int P3[] = {1000 / L, 37}, a3[] = {61, 5}, b3[] = {45, 12};
		t_attention_ext(2, P3, a3, b3, 4, 2, 128, 1.0f / sqrtf(128.0f), 50.0f, 512 / L); /* a long prompt */
	}
	t_activations(1, 64);
	t_activations(37, 171);
	t_activations(130, 688);
	t_family_act(1, 64, 30.0f);
	t_family_act(37, 171, 50.0f);
	t_family_act(130, 688, 2.0f);
	{
		const int P[] = {1, 9, 33}, a[] = {3, 1, 31}, b[] = {2, 0, 7};
		t_head(3, P, a, b, 64, 101);
		const int Pl[] = {700 / L, 5}, al[] = {40, 3}, bl[] = {38, 3};
		t_head(2, Pl, al, bl, 96, 1003);
	}
	t_decode(0, 5, 4, 4, 64);
	t_decode(37, 1, 8, 2, 128);
	t_decode(600 / L, 9, 6, 3, 64);
	t_decode_x(0, 5, 4, 4, 64, 0.1f, 50.0f);
	t_decode_x(37, 3, 8, 2, 128, 1.0f / sqrtf(256.0f), 3.0f);
	t_decode_x(600 / L, 9, 6, 3, 40, 0.2f, 0.0f);
	t_optim(1);
	t_optim(1000003 / L);
	/* TF32 matrix products: within 1e-2 of fp32 (about 1e-3 expected on a
	 * GPU; the emulator's cuBLAS has no TF32, so there it is exact) */
	cuda_set_tf32(1), tol = 1e-2, tag = "TF32 ";
	t_matmul(77, 256, 768, 0, 1, 1);
	t_matmul(130, 1000, 300, 1, 0, 1);
	cuda_set_tf32(0), tol = TOL, tag = "";

	printf("gpu kernels: %d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
