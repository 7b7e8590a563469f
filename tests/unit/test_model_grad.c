/* test_model_grad.c — finite-difference checks of model_backward for every
 * parameter tensor of both families, through each gradient path (completion
 * log-prob sums, prompt mean log-prob, h_last, h_mean) separately and all
 * together, on a packed batch with prefix-shared pairs; for a reward model
 * (score head), through its scores (the score head and the whole model
 * below it, trailing pad tokens skipped as transformers does) and h_last;
 * per-token weights of the completion log-probs (PPO, GRPO, RLOO) and a
 * value model's per-token values.
 *
 * For each tensor W and a random direction U, the central difference
 *   (L(W + εU) − L(W − εU)) / 2ε
 * (Richardson-extrapolated, unit-norm U) must match ⟨∂L/∂W, U⟩: a check of
 * every element at once; two single elements per tensor are checked too.
 * The model computes in float: ε = 5e-3 balances truncation against the
 * rounding noise of L (|L| ~ 100). Reached (this machine): directional
 * ≤ 1.5e-3, single element ≤ 3.3e-3 relative to |g| + 1; tolerances 3e-3
 * and 5e-3. FD_EPS overrides ε for experiments. */
#include <criterion/criterion.h>

#include "tests/unit/model_testlib.h"

#define NSEQ 3

typedef struct {
	model_seq s[NSEQ];
	uint32_t *tok[NSEQ][3];
	model_seq_grad g[NSEQ];
	float *r[NSEQ], *u[NSEQ]; /* [C] coefficients of h_last, h_mean */
	double wt[NSEQ][2][8];    /* per-token weights of the completion log-probs */
	float vt[NSEQ][8];        /* per-token weights of the values */
} batch;

/* path bit 1: logp, 2: prompt mean, 4: h_last, 8: h_mean, 16: rewards (a reward model),
 * 32: per-token log-prob weights, 64: per-token values (a reward model) */
static void make_batch(batch *b, const model_config *c, uint64_t seed, int paths)
{
	uint64_t s = seed;
	const int shape[NSEQ][4] = {{5, 4, 3, 2}, {3, 5, 0, 1}, {1, 2, 3, 2}}; /* P, n0, n1, n_comp */
	for (int i = 0; i < NSEQ; i++) {
		for (int k = 0; k < 3; k++)
			b->tok[i][k] = tl_tokens(&s, shape[i][k] ? shape[i][k] : 1, c->vocab_size);
		if (paths & 16) { /* pad id 5 (check_reward): seq 0's chosen ends in one, seq 2's
				     completions are all pad (both scored at its prompt's one token) */
			if (i == 0)
				b->tok[0][1][shape[0][1] - 1] = 5;
			for (int k = 1; i == 2 && k < 3; k++)
				for (int j = 0; j < shape[2][k]; j++)
					b->tok[2][k][j] = 5;
		}
		b->s[i] = (model_seq){.prompt = b->tok[i][0],
				      .n_prompt = shape[i][0],
				      .comp = {b->tok[i][1], b->tok[i][2]},
				      .n_comp_tok = {shape[i][1], shape[i][2]},
				      .n_comp = shape[i][3]};
		b->r[i] = xmalloc(sizeof(float) * c->dim);
		b->u[i] = xmalloc(sizeof(float) * c->dim);
		for (int ch = 0; ch < c->dim; ch++) {
			b->r[i][ch] = (paths & 4) ? (float)tl_normal(&s) : 0;
			b->u[i][ch] = (paths & 8) ? (float)tl_normal(&s) : 0;
		}
		b->g[i] = (model_seq_grad){.d_logp = {(paths & 1) ? 1.0 - 0.7 * i : 0, (paths & 1) ? -0.8 : 0},
					   .d_prompt_mean_logp = (paths & 2) ? 1.5 + i : 0,
					   .d_h_last = b->r[i],
					   .d_h_mean = b->u[i],
					   .d_reward = {(paths & 16) ? 0.9 - 0.4 * i : 0, (paths & 16) ? -1.1 : 0}};
		if (b->s[i].n_comp == 1)
			b->g[i].d_logp[1] = b->g[i].d_reward[1] = 0;
		for (int k = 0; k < 2; k++)
			for (int j = 0; j < 8; j++)
				b->wt[i][k][j] = tl_normal(&s);
		for (int j = 0; j < 8; j++)
			b->vt[i][j] = (float)tl_normal(&s);
		if (paths & 32) {
			b->g[i].d_tok_logp[0] = b->wt[i][0];
			if (b->s[i].n_comp == 2)
				b->g[i].d_tok_logp[1] = b->wt[i][1];
		}
		if (paths & 64)
			b->g[i].d_tok_value = b->vt[i];
	}
}

static void free_batch(batch *b)
{
	for (int i = 0; i < NSEQ; i++) {
		for (int k = 0; k < 3; k++)
			free(b->tok[i][k]);
		free(b->r[i]);
		free(b->u[i]);
	}
}

/* the outputs every path reads (per-token ones only when asked: they switch paths on) */
static void scores_for(model_scores *o, const batch *b, float hl[][64], float hm[][64], float tl[][2][8], float tv[][8])
{
	for (int i = 0; i < NSEQ; i++) {
		o[i] = (model_scores){.h_last = hl[i], .h_mean = hm[i]};
		if (b->g[i].d_tok_logp[0]) {
			o[i].tok_logp[0] = tl[i][0];
			o[i].tok_logp[1] = b->g[i].d_tok_logp[1] ? tl[i][1] : NULL;
		}
		if (b->g[i].d_tok_value)
			o[i].tok_value = tv[i];
	}
}

/* L = Σ_s d_logp·logp + d_pm·prompt_mean + r·h_last + u·h_mean
 *       (+ Σ_j w_j·tok_logp_j instead of d_logp·logp, + Σ_j v_j·tok_value_j) */
static double loss(const model *m, model_ws *ws, const batch *b)
{
	int C = model_cfg(m)->dim;
	model_scores o[NSEQ];
	float hl[NSEQ][64], hm[NSEQ][64], tl[NSEQ][2][8], tv[NSEQ][8];
	scores_for(o, b, hl, hm, tl, tv);
	model_forward(m, ws, b->s, NSEQ, o, 0);
	double L = 0;
	for (int i = 0; i < NSEQ; i++) {
		for (int k = 0; k < 2; k++)
			for (int j = 0; b->g[i].d_tok_logp[k] && j < b->s[i].n_comp_tok[k]; j++)
				L += b->g[i].d_tok_logp[k][j] * tl[i][k][j];
		for (int j = 0; b->g[i].d_tok_value && j < b->s[i].n_comp_tok[0]; j++)
			L += (double)b->g[i].d_tok_value[j] * tv[i][j];
		if (b->g[i].d_tok_logp[0])
			L += b->g[i].d_prompt_mean_logp * o[i].prompt_mean_logp;
		else
			L += b->g[i].d_logp[0] * o[i].logp[0] + b->g[i].d_prompt_mean_logp * o[i].prompt_mean_logp;
		if (b->s[i].n_comp == 2 && !b->g[i].d_tok_logp[1])
			L += b->g[i].d_logp[1] * o[i].logp[1];
		L += b->g[i].d_reward[0] * o[i].reward[0] + b->g[i].d_reward[1] * o[i].reward[1];
		for (int ch = 0; ch < C; ch++)
			L += (double)b->r[i][ch] * hl[i][ch] + (double)b->u[i][ch] * hm[i][ch];
	}
	return L;
}

/* Richardson-extrapolated central difference along dir (error O(ε⁴)):
 * D(h) = (L(w+hU) − L(w−hU))/2h,  (4·D(ε/2) − D(ε))/3 */
static double fd_dir(const model *m, model_ws *ws, const batch *b, float *w, const float *save, const float *dir,
		     size_t n, double eps)
{
	double D[2];
	for (int r = 0; r < 2; r++) {
		double h = r ? eps / 2 : eps, l[2];
		for (int sg = 0; sg < 2; sg++) {
			for (size_t k = 0; k < n; k++)
				w[k] = save[k] + (float)((sg ? -h : h) * dir[k]);
			l[sg] = loss(m, ws, b);
		}
		D[r] = (l[0] - l[1]) / (2 * h);
	}
	memcpy(w, save, sizeof(float) * n);
	return (4 * D[1] - D[0]) / 3;
}

static void check_paths(model_config cfg, const char *label, const int *pms, int npm)
{
	/* thousands of tiny forwards: one thread avoids OpenMP spin-waits on a
	 * loaded machine (test_model_pack covers the threaded paths) */
	lbdpo_set_threads(1);
	model *m = tl_model(&cfg, 7);
	float *P = model_params(m);
	size_t np = model_n_params(m);
	model_ws *ws = model_ws_new(m);
	float *grad = xmalloc(sizeof(float) * np);
	float *dir = xmalloc(sizeof(float) * np);
	float *save = xmalloc(sizeof(float) * np);
	const double eps = getenv("FD_EPS") ? atof(getenv("FD_EPS")) : 5e-3;
	double worst_dir = 0, worst_el = 0;
	for (int pi = 0; pi < npm; pi++) {
		const int pm = pms[pi];
		batch b;
		make_batch(&b, &cfg, 100 + pm, pm);
		/* analytic */
		model_scores o[NSEQ];
		float hl[NSEQ][64], hm[NSEQ][64], tl[NSEQ][2][8], tv[NSEQ][8];
		scores_for(o, &b, hl, hm, tl, tv);
		memset(grad, 0, sizeof(float) * np);
		model_forward(m, ws, b.s, NSEQ, o, 1);
		model_backward(m, ws, b.g, grad);
		uint64_t rs = 55 + pm;
		for (int ti = 0; ti < model_n_tensors(m); ti++) {
			const model_tensor *t = model_tensor_at(m, ti);
			float *w = P + t->offset;
			const float *gw = grad + t->offset;
			memcpy(save, w, sizeof(float) * t->numel);
			/* directional: every element at once, |U| = 1 */
			double ana = 0, gn = 0, un = 0;
			for (size_t k = 0; k < t->numel; k++) {
				dir[k] = (float)tl_normal(&rs);
				un += (double)dir[k] * dir[k];
			}
			for (size_t k = 0; k < t->numel; k++) {
				dir[k] = (float)(dir[k] / sqrt(un));
				ana += (double)gw[k] * dir[k];
				gn += (double)gw[k] * gw[k];
			}
			double num = fd_dir(m, ws, &b, w, save, dir, t->numel, eps);
			/* relative to |g| = the largest ⟨g,U⟩ over unit U */
			double scale = sqrt(gn) + 1.0; /* + 1: float noise floor of L (|L| ~ 100) */
			double err = fabs(num - ana) / scale;
			worst_dir = err > worst_dir ? err : worst_dir;
			cr_expect(err < 3e-3, "%s paths %d %s: directional fd %.6g analytic %.6g (rel %.2g)", label, pm,
				  t->name, num, ana, err);
			/* two single elements */
			for (int e = 0; e < 2; e++) {
				size_t k = rng_next(&rs) % t->numel;
				float one = 1.0f;
				double n1 = fd_dir(m, ws, &b, w + k, save + k, &one, 1, eps);
				double gmax = 0;
				for (size_t q = 0; q < t->numel; q++)
					gmax = fabs(gw[q]) > gmax ? fabs(gw[q]) : gmax;
				double err1 = fabs(n1 - gw[k]) / (gmax + 1.0);
				worst_el = err1 > worst_el ? err1 : worst_el;
				cr_expect(err1 < 5e-3, "%s paths %d %s[%zu]: fd %.6g analytic %.6g", label, pm, t->name,
					  k, n1, gw[k]);
			}
		}
		/* the paths that must reach a tensor do: no all-zero gradient */
		double tot = 0;
		for (size_t k = 0; k < np; k++)
			tot += fabs(grad[k]);
		cr_expect(tot > 0, "%s paths %d: zero gradient", label, pm);
		free_batch(&b);
	}
	fprintf(stderr, "%s: worst relative error directional %.2g, single element %.2g\n", label, worst_dir, worst_el);
	free(grad), free(dir), free(save);
	model_ws_free(ws);
	model_free(m);
}

static void check(model_config cfg, const char *label)
{
	static const int pms[] = {1, 2, 4, 8, 15, 32};
	check_paths(cfg, label, pms, 6);
}

/* A reward model: its scores alone, and with h_last; pad id 5 ends some
 * completions (make_batch): the reward sits at the last non-pad token. */
static void check_reward(model_config cfg, const char *label)
{
	static const int pms[] = {16, 20, 64, 80};
	cfg.score_labels = 1;
	cfg.has_pad = 1;
	cfg.pad_id = 5;
	check_paths(cfg, label, pms, 4);
}

Test(model_grad, llama_gqa_tied) { check(tl_cfg(ARCH_LLAMA, 2, 0, 1), "llama gqa tied"); }
Test(model_grad, llama_qkv_bias_untied) { check(tl_cfg(ARCH_LLAMA, 2, 1, 0), "llama qkv-bias untied"); }
Test(model_grad, llama_mha_mqa) { check(tl_cfg(ARCH_LLAMA, 1, 0, 0), "llama mqa untied"); }
Test(model_grad, gpt2) { check(tl_cfg(ARCH_GPT2, 4, 0, 1), "gpt2"); }
Test(model_grad, reward_llama) { check_reward(tl_cfg(ARCH_LLAMA, 2, 0, 0), "reward llama untied"); }
Test(model_grad, reward_gpt2) { check_reward(tl_cfg(ARCH_GPT2, 4, 0, 1), "reward gpt2"); }
