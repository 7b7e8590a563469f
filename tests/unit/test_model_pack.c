/* test_model_pack.c — packing and prefix sharing change nothing:
 *  - a packed batch scores (and backpropagates) like each sequence alone;
 *  - a prefix-shared pair [prompt | chosen | rejected] scores like the two
 *    separate sequences prompt+chosen and prompt+rejected;
 *  - KV-cache decoding gives the log-probs of the packed forward. */
#include <criterion/criterion.h>

#include "tests/unit/model_testlib.h"

static double maxabs(const float *a, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fabs(a[i]) > m ? fabs(a[i]) : m;
	return m;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
	return m;
}

#define NS 3
static const int shp[NS][4] = {{6, 4, 5, 2}, {3, 7, 0, 1}, {1, 3, 2, 2}}; /* P, n0, n1, n_comp */

static void packed_vs_alone(model_config cfg, const char *label)
{
	model *m = tl_model(&cfg, 11);
	const int C = cfg.dim;
	size_t np = model_n_params(m);
	uint64_t rs = 5;
	model_seq s[NS];
	uint32_t *tk[NS][3];
	model_seq_grad g[NS];
	float *dh[NS][2];
	for (int i = 0; i < NS; i++) {
		for (int k = 0; k < 3; k++)
			tk[i][k] = tl_tokens(&rs, shp[i][k] ? shp[i][k] : 1, cfg.vocab_size);
		s[i] = (model_seq){.prompt = tk[i][0],
				   .n_prompt = shp[i][0],
				   .comp = {tk[i][1], tk[i][2]},
				   .n_comp_tok = {shp[i][1], shp[i][2]},
				   .n_comp = shp[i][3]};
		for (int k = 0; k < 2; k++) {
			dh[i][k] = xmalloc(sizeof(float) * C);
			for (int c = 0; c < C; c++)
				dh[i][k][c] = (float)tl_normal(&rs);
		}
		g[i] = (model_seq_grad){.d_logp = {0.7, s[i].n_comp == 2 ? -0.9 : 0},
					.d_prompt_mean_logp = 1.3,
					.d_h_last = dh[i][0],
					.d_h_mean = dh[i][1]};
	}
	model_ws *ws = model_ws_new(m);
	/* packed */
	model_scores op[NS];
	float hl[NS][64], hm[NS][64], tl[NS][2][16];
	for (int i = 0; i < NS; i++)
		op[i] = (model_scores){.h_last = hl[i], .h_mean = hm[i], .tok_logp = {tl[i][0], tl[i][1]}};
	float *gp = xcalloc(np, sizeof(float)), *ga = xcalloc(np, sizeof(float)), *gs = xcalloc(np, sizeof(float));
	model_forward(m, ws, s, NS, op, 1);
	model_backward(m, ws, g, gp);
	/* alone, and each pair as two single-completion sequences */
	for (int i = 0; i < NS; i++) {
		model_scores o = {0};
		float h1[64], h2[64], t1[2][16];
		o.h_last = h1, o.h_mean = h2, o.tok_logp[0] = t1[0], o.tok_logp[1] = t1[1];
		model_forward(m, ws, &s[i], 1, &o, 1);
		model_backward(m, ws, &g[i], ga);
		for (int k = 0; k < s[i].n_comp; k++) {
			cr_expect(fabs(o.logp[k] - op[i].logp[k]) < 1e-4, "%s seq %d comp %d: alone %.7f packed %.7f",
				  label, i, k, o.logp[k], op[i].logp[k]);
			cr_expect_eq(o.n[k], op[i].n[k]);
			cr_expect(maxdiff(t1[k], tl[i][k], s[i].n_comp_tok[k]) < 1e-5);
		}
		cr_expect(fabs(o.prompt_mean_logp - op[i].prompt_mean_logp) < 1e-5);
		cr_expect(fabs(o.prompt_entropy - op[i].prompt_entropy) < 1e-5);
		cr_expect(maxdiff(h1, hl[i], C) < 1e-5 && maxdiff(h2, hm[i], C) < 1e-5,
			  "%s seq %d: pooled states differ", label, i);
		/* the pair split into prompt+chosen and prompt+rejected */
		for (int k = 0; k < s[i].n_comp; k++) {
			model_seq one = {.prompt = s[i].prompt,
					 .n_prompt = s[i].n_prompt,
					 .comp = {s[i].comp[k], NULL},
					 .n_comp_tok = {s[i].n_comp_tok[k], 0},
					 .n_comp = 1};
			model_scores o1 = {0};
			float t2[16];
			o1.tok_logp[0] = t2;
			model_forward(m, ws, &one, 1, &o1, 1);
			cr_expect(fabs(o1.logp[0] - op[i].logp[k]) < 1e-4,
				  "%s seq %d: separate comp %d %.7f vs shared %.7f", label, i, k, o1.logp[0],
				  op[i].logp[k]);
			cr_expect(maxdiff(t2, tl[i][k], s[i].n_comp_tok[k]) < 1e-5);
			/* prompt gradients counted once: on the first of the two */
			model_seq_grad g1 = {.d_logp = {g[i].d_logp[k], 0},
					     .d_prompt_mean_logp = k ? 0 : g[i].d_prompt_mean_logp,
					     .d_h_last = k ? NULL : dh[i][0],
					     .d_h_mean = k ? NULL : dh[i][1]};
			model_backward(m, ws, &g1, gs);
		}
	}
	double scale = maxabs(gp, np);
	cr_expect(scale > 0);
	cr_expect(maxdiff(gp, ga, np) < 1e-4 * scale, "%s: packed grads differ from alone by %.3g (scale %.3g)", label,
		  maxdiff(gp, ga, np), scale);
	cr_expect(maxdiff(gp, gs, np) < 1e-4 * scale, "%s: shared-prefix grads differ from separate by %.3g", label,
		  maxdiff(gp, gs, np));
	for (int i = 0; i < NS; i++) {
		for (int k = 0; k < 3; k++)
			free(tk[i][k]);
		free(dh[i][0]), free(dh[i][1]);
	}
	free(gp), free(ga), free(gs);
	model_ws_free(ws);
	model_free(m);
}

Test(model_pack, llama_gqa) { packed_vs_alone(tl_cfg(ARCH_LLAMA, 2, 1, 0), "llama"); }
Test(model_pack, gpt2) { packed_vs_alone(tl_cfg(ARCH_GPT2, 4, 0, 1), "gpt2"); }

/* Decoding one token at a time (and a chunk) through the KV cache gives
 * the packed forward's log-probs: log_softmax(logits)[next token]. */
static void kv_matches(model_config cfg, const char *label)
{
	model *m = tl_model(&cfg, 3);
	const int V = cfg.vocab_size, N = 14, P0 = 4;
	uint64_t rs = 9;
	uint32_t *t = tl_tokens(&rs, N, V);
	model_seq s = {.prompt = t, .n_prompt = P0, .comp = {t + P0, NULL}, .n_comp_tok = {N - P0, 0}, .n_comp = 1};
	float want[32];
	model_scores o = {.tok_logp = {want, NULL}};
	model_ws *ws = model_ws_new(m);
	model_forward(m, ws, &s, 1, &o, 0);
	model_kv *kv = model_kv_new(m, 20);
	float *lg = xmalloc(sizeof(float) * V);
	for (int rep = 0; rep < 2; rep++) {
		model_kv_reset(kv);
		model_kv_feed(m, kv, t, P0, lg); /* the prompt as one chunk */
		for (int j = 0; j < N - P0; j++) {
			double mx = -INFINITY, se = 0;
			for (int v = 0; v < V; v++)
				mx = lg[v] > mx ? lg[v] : mx;
			for (int v = 0; v < V; v++)
				se += exp(lg[v] - mx);
			double lp = lg[t[P0 + j]] - mx - log(se);
			cr_expect(fabs(lp - want[j]) < 1e-5, "%s token %d: kv %.7f forward %.7f", label, j, lp,
				  want[j]);
			model_kv_feed(m, kv, t + P0 + j, 1, lg);
		}
		cr_expect_eq(model_kv_len(kv), N);
	}
	free(lg);
	free(t);
	model_kv_free(kv);
	model_ws_free(ws);
	model_free(m);
}

Test(model_kv, llama_gqa) { kv_matches(tl_cfg(ARCH_LLAMA, 2, 1, 0), "llama"); }
Test(model_kv, gpt2) { kv_matches(tl_cfg(ARCH_GPT2, 4, 0, 1), "gpt2"); }
