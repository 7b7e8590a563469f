/* test_batch.c — libcore/train/batch.c: the full LB-DPO loss through a tiny
 * transformer: analytic gradients (train_microbatch: loss → β model →
 * policy) against central finite differences of the loss, through every path
 * (Δ, PPL, h, head, log w), and what each --beta-grad mode cuts. */
#include <criterion/criterion.h>

#include "libcore/objective/betahead.h"
#include "libcore/objective/loss.h"
#include "libcore/train/eval.h"
#include "tests/unit/model_testlib.h"

enum { NB = 4, HID = 5 };

typedef struct {
	ckpt c;
	model_ws *ws;
	batch_buf *b;
	pref_rec recs[NB];
	pref_rec *rp[NB];
	uint32_t toks[NB][3][8];
	loss_opts lo;
} fixture_t;

static void setup(fixture_t *f, head_kind hk, pool_kind pool, ppl_source ppl)
{
	memset(f, 0, sizeof *f);
	model_config cfg = tl_cfg(ARCH_LLAMA, 2, 0, 0);
	f->c.m = tl_model(&cfg, 5);
	f->c.pool = pool;
	f->c.ppl_from = ppl;
	f->c.bh = betahead_new(hk, cfg.dim, HID, 0.5f);
	betahead_init(f->c.bh, 3, 1.0);
	for (size_t i = 1; i < f->c.bh->n_params; i++)
		f->c.bh->p[i] = (float)(0.4 * sin(1.3 * i + 0.5));
	uint64_t s = 99;
	int lens[NB][3] = {{3, 4, 2}, {5, 2, 3}, {2, 3, 4}, {4, 2, 2}};
	for (int i = 0; i < NB; i++) {
		for (int k = 0; k < 3; k++)
			for (int t = 0; t < lens[i][k]; t++)
				f->toks[i][k][t] = (uint32_t)(rng_next(&s) % (uint64_t)cfg.vocab_size);
		pref_rec *r = &f->recs[i];
		r->prompt = f->toks[i][0];
		r->np = lens[i][0];
		r->chosen = f->toks[i][1];
		r->nc = lens[i][1];
		r->rejected = f->toks[i][2];
		r->nr = lens[i][2];
		r->ref_c = -3.0 * r->nc + 0.3 * i;
		r->ref_r = -3.0 * r->nr - 0.2 * i;
		r->ref_plogp = -2.5 - 0.1 * i;
		r->ref_entropy = 2.0 + 0.2 * i;
		r->group = i % 2;
		f->rp[i] = r;
	}
	f->ws = model_ws_new(f->c.m);
	f->b = batch_new(NB, cfg.dim, HID);
	loss_opts_default(&f->lo);
	/* β near 1 so that every term is well above float noise */
	batch_forward(&f->c, f->ws, f->b, f->rp, NB, &(batch_opts){.n_comp = 2, .need_head = 1, .fixed_beta = 0.1});
	betahead_set_mean_beta(f->c.bh, f->b->parts, NB, 1.0);
	f->lo.group_reg = 0.5;
	f->lo.entropy_reg = 0.2;
	f->lo.entropy_alpha = 0.3;
	f->lo.range_reg = 0.7;
	f->lo.beta_max = 1.0; /* about half the pairs are above */
	f->lo.sft_weight = 0.3;
}

static void teardown(fixture_t *f)
{
	batch_free(f->b);
	model_ws_free(f->ws);
	model_free(f->c.m);
	betahead_free(f->c.bh);
}

/* L at the current parameters; frozen_beta (may be NULL) replaces β. */
static double loss_now(fixture_t *f, const double *frozen_beta)
{
	batch_forward(&f->c, f->ws, f->b, f->rp, NB,
		      &(batch_opts){.n_comp = 2, .need_head = 1, .fixed_beta = f->lo.beta});
	if (frozen_beta)
		for (int i = 0; i < NB; i++)
			f->b->lp[i].beta = frozen_beta[i];
	return loss_batch(&f->lo, f->b->lp, NB, NULL, NULL, NULL, NULL);
}

/* Compare g[idx] with central differences for a few indices of every tensor:
 * the largest |g| and two others. */
static void check_policy(fixture_t *f, const float *G, const double *frozen_beta, const char *what)
{
	float *P = model_params(f->c.m);
	int checked = 0;
	for (int k = 0; k < model_n_tensors(f->c.m); k++) {
		const model_tensor *t = model_tensor_at(f->c.m, k);
		size_t best = 0;
		for (size_t i = 0; i < t->numel; i++)
			if (fabsf(G[t->offset + i]) > fabsf(G[t->offset + best]))
				best = i;
		size_t idx[3] = {best, t->numel / 3, (t->numel * 2) / 3 + 1};
		for (int j = 0; j < 3; j++) {
			size_t o = t->offset + (idx[j] % t->numel);
			float x = P[o];
			const float h = getenv("FD_H") ? strtof(getenv("FD_H"), NULL) : 3e-3f;
			P[o] = x + h;
			double lp = loss_now(f, frozen_beta);
			P[o] = x - h;
			double lm = loss_now(f, frozen_beta);
			P[o] = x;
			double num = (lp - lm) / (2.0 * h);
			cr_expect(fabs(num - G[o]) <= 1e-3 + 3e-2 * fabs(num), "%s: %s[%zu]: analytic %.6g, FD %.6g",
				  what, t->name, idx[j] % t->numel, G[o], num);
			checked++;
		}
	}
	cr_assert(checked > 10);
}

static void check_head(fixture_t *f, const float *HG)
{
	betahead *bh = f->c.bh;
	/* log w, then a spread of head weights (all of them for the linear head) */
	size_t stride = bh->n_params > 40 ? 7 : 1;
	for (size_t i = 0; i < bh->n_params; i += (i == 0 ? 1 : stride)) {
		float x = bh->p[i];
		const float h = 3e-3f;
		bh->p[i] = x + h;
		double lp = loss_now(f, NULL);
		bh->p[i] = x - h;
		double lm = loss_now(f, NULL);
		bh->p[i] = x;
		double num = (lp - lm) / (2.0 * h);
		cr_expect(fabs(num - HG[i]) <= 1e-3 + 3e-2 * fabs(num), "head param %zu: analytic %.6g, FD %.6g", i,
			  HG[i], num);
	}
}

typedef struct {
	float *G, *HG;
	double L;
} grads;

static grads run(fixture_t *f, beta_grad_mode bg)
{
	grads g;
	g.G = calloc(model_n_params(f->c.m), sizeof(float));
	g.HG = calloc(f->c.bh->n_params, sizeof(float));
	g.L = train_microbatch(&f->c, f->ws, f->b, f->rp, NB,
			       &(microbatch_opts){.loss = &f->lo, .beta_grad = bg, .policy_trained = 1, .scale = 1.0},
			       g.G, g.HG, NULL);
	return g;
}

static void full_check(head_kind hk, pool_kind pool, ppl_source ppl)
{
	fixture_t f;
	setup(&f, hk, pool, ppl);
	grads g = run(&f, BGRAD_FULL);
	cr_expect(fabs(g.L - loss_now(&f, NULL)) < 1e-9);
	check_policy(&f, g.G, NULL, "full");
	check_head(&f, g.HG);
	free(g.G);
	free(g.HG);
	teardown(&f);
}

Test(train_fd, full_linear_last_policy) { full_check(HEAD_LINEAR, POOL_LAST, PPL_POLICY); }
Test(train_fd, full_mlp_mean_policy) { full_check(HEAD_MLP, POOL_MEAN, PPL_POLICY); }
Test(train_fd, full_linear_last_ref) { full_check(HEAD_LINEAR, POOL_LAST, PPL_REF); }

/* head and none: the policy gradient is exactly that of the loss with β
 * frozen at its current values; head keeps the head gradient, none drops it;
 * full differs from both (the PPL and h paths carry gradient). */
Test(train_fd, beta_grad_modes_cut_their_paths)
{
	fixture_t f;
	setup(&f, HEAD_LINEAR, POOL_LAST, PPL_POLICY);
	grads full = run(&f, BGRAD_FULL), head = run(&f, BGRAD_HEAD), none = run(&f, BGRAD_NONE);
	size_t np = model_n_params(f.c.m), hn = f.c.bh->n_params;
	double beta0[NB];
	batch_forward(&f.c, f.ws, f.b, f.rp, NB, &(batch_opts){.n_comp = 2, .need_head = 1, .fixed_beta = 0.1});
	for (int i = 0; i < NB; i++)
		beta0[i] = f.b->parts[i].beta;
	check_policy(&f, head.G, beta0, "head (β frozen)");
	double dif = 0;
	for (size_t i = 0; i < np; i++) {
		cr_assert_eq(head.G[i], none.G[i], "policy gradient of head and none differ at %zu", i);
		dif = fmax(dif, fabs(full.G[i] - head.G[i]));
	}
	cr_expect(dif > 1e-4, "full and head policy gradients are equal: the PPL/h paths carry nothing");
	for (size_t i = 0; i < hn; i++) {
		cr_assert_eq(head.HG[i], full.HG[i]);
		cr_assert_eq(none.HG[i], 0.0f);
	}
	free(full.G), free(full.HG), free(head.G), free(head.HG), free(none.G), free(none.HG);
	teardown(&f);
}

/* The PPL hazard of doc/design.md §2.4: with PPL from the policy, the loss gradient through
 * PPL on the mean prompt log-prob is −β·∂L/∂β: raising β lowers the prompt's
 * likelihood. Check the sign on the model_seq_grad handed to the backward. */
Test(train_fd, ppl_path_sign)
{
	fixture_t f;
	setup(&f, HEAD_LINEAR, POOL_LAST, PPL_POLICY);
	f.lo.range_reg = f.lo.group_reg = f.lo.entropy_reg = 0;
	grads g = run(&f, BGRAD_FULL);
	for (int i = 0; i < NB; i++)
		cr_expect(fabs(f.b->sg[i].d_prompt_mean_logp - (-f.b->parts[i].beta * f.b->dbeta[i])) < 1e-12);
	free(g.G);
	free(g.HG);
	teardown(&f);
}
