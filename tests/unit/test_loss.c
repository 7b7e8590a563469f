/* test_loss.c — preference losses, BetaHead and AdamW:
 *  - values and gradients against TRL's own loss code and torch autograd
 *    (tests/fixtures/trl_losses.json, made by tests/ref/make_trl_fixtures.py)
 *  - every analytic gradient against central finite differences
 *  - AdamW and the LR schedules against torch.optim.AdamW / transformers. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/adamw.h"
#include "libcore/betahead.h"
#include "libcore/loss.h"

static json_t *fixture(void)
{
	const char *root = getenv("LBDPO_ROOT");
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/fixtures/trl_losses.json", root ? root : ".");
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err);
	cr_assert(j, "cannot load %s: %s", path, err.text);
	return j;
}

static int load_pairs(json_t *j, loss_pair *p)
{
	json_t *arr = json_object_get(j, "pairs"), *v;
	size_t i;
	json_array_foreach(arr, i, v)
	{
		memset(&p[i], 0, sizeof p[i]);
		p[i].pc = json_number_value(json_object_get(v, "pc"));
		p[i].pr = json_number_value(json_object_get(v, "pr"));
		p[i].rc = json_number_value(json_object_get(v, "rc"));
		p[i].rr = json_number_value(json_object_get(v, "rr"));
		p[i].nc = (int)json_integer_value(json_object_get(v, "nc"));
		p[i].nr = (int)json_integer_value(json_object_get(v, "nr"));
		p[i].group = -1;
	}
	return (int)json_array_size(arr);
}

static void check_case(const char *name, loss_kind kind)
{
	json_t *j = fixture();
	loss_pair p[16];
	loss_pair_grad g[16];
	int n = load_pairs(j, p);
	json_t *c = json_object_get(json_object_get(j, "cases"), name);
	cr_assert(c, "no case %s", name);
	loss_opts o;
	loss_opts_default(&o);
	o.kind = kind;
	o.beta = json_number_value(json_object_get(c, "beta"));
	o.label_smoothing = json_number_value(json_object_get(c, "label_smoothing"));
	if (json_object_get(c, "gamma"))
		o.gamma = json_number_value(json_object_get(c, "gamma"));
	double L = loss_batch(&o, p, n, g, NULL, NULL, NULL);
	double want = json_number_value(json_object_get(c, "loss"));
	cr_expect(fabs(L - want) <= 1e-6 * fmax(1, fabs(want)), "%s: loss %.12g, TRL %.12g", name, L, want);
	for (int i = 0; i < n; i++) {
		double wc = json_number_value(json_array_get(json_object_get(c, "d_pc"), i));
		double wr = json_number_value(json_array_get(json_object_get(c, "d_pr"), i));
		cr_expect(fabs(g[i].d_pc - wc) <= 1e-6, "%s pair %d: dL/dpc %.12g, TRL %.12g", name, i, g[i].d_pc, wc);
		cr_expect(fabs(g[i].d_pr - wr) <= 1e-6, "%s pair %d: dL/dpr %.12g, TRL %.12g", name, i, g[i].d_pr, wr);
	}
	json_decref(j);
}

Test(trl, sigmoid) { check_case("dpo", LOSS_DPO); }
Test(trl, sigmoid_beta05) { check_case("dpo_b05", LOSS_DPO); }
Test(trl, ipo) { check_case("ipo", LOSS_IPO); }
Test(trl, hinge) { check_case("hinge", LOSS_HINGE); }
Test(trl, hinge_beta1) { check_case("hinge_b1", LOSS_HINGE); }
Test(trl, robust) { check_case("robust", LOSS_ROBUST); }
Test(trl, sigmoid_norm_is_lndpo) { check_case("ln-dpo", LOSS_LNDPO); }
Test(trl, sft) { check_case("sft", LOSS_SFT); }
Test(trl, simpo) { check_case("simpo", LOSS_SIMPO); }
Test(trl, simpo_label_smoothing) { check_case("simpo_ls", LOSS_SIMPO); }

/* lbdpo with every β equal to the fixed β is TRL's sigmoid loss. */
Test(trl, lbdpo_with_constant_beta_is_sigmoid)
{
	json_t *j = fixture();
	loss_pair p[16];
	loss_pair_grad g[16];
	int n = load_pairs(j, p);
	json_t *c = json_object_get(json_object_get(j, "cases"), "dpo_b05");
	for (int i = 0; i < n; i++)
		p[i].beta = 0.5;
	loss_opts o;
	loss_opts_default(&o);
	double L = loss_batch(&o, p, n, g, NULL, NULL, NULL);
	cr_expect(fabs(L - json_number_value(json_object_get(c, "loss"))) < 1e-9);
	json_decref(j);
}

/* ---- finite differences ---- */

/* the last field, margin, is read by --loss reward only */
static loss_pair PAIRS[] = {
	{-12.5, -15.0, -13.0, -14.0, 5, 7, 0.15, 0, 1.2, 0.5},   {-30.25, -22.0, -29.0, -23.5, 11, 8, 0.08, 1, 2.5, 0},
	{-4.0, -9.5, -4.5, -8.0, 2, 4, 0.3, 0, 0.7, 1.5},        {-55.0, -48.0, -50.0, -50.0, 20, 18, 2.5, -1, 3.0, -2},
	{-7.75, -7.5, -8.0, -7.0, 3, 3, 0.01, 1, 1.9, 0.25},     {-18.0, -31.0, -19.5, -26.0, 6, 10, 0.5, 2, 0.4, 0},
};
#define NP ((int)(sizeof PAIRS / sizeof PAIRS[0]))

static double L_of(const loss_opts *o, const loss_pair *p)
{
	return loss_batch(o, p, NP, NULL, NULL, NULL, NULL);
}

static void fd_check(const loss_opts *o)
{
	loss_pair p[NP];
	loss_pair_grad g[NP];
	memcpy(p, PAIRS, sizeof p);
	loss_batch(o, p, NP, g, NULL, NULL, NULL);
	const double h = 1e-5;
	for (int i = 0; i < NP; i++) {
		double *fields[3] = {&p[i].pc, &p[i].pr, &p[i].beta};
		double an[3] = {g[i].d_pc, g[i].d_pr, g[i].d_beta};
		for (int f = 0; f < 3; f++) {
			if (f == 2 && !loss_uses_learned_beta(o->kind))
				continue;
			double x = *fields[f];
			*fields[f] = x + h;
			double lp = L_of(o, p);
			*fields[f] = x - h;
			double lm = L_of(o, p);
			*fields[f] = x;
			double num = (lp - lm) / (2 * h);
			cr_expect(fabs(num - an[f]) <= 1e-6 + 1e-5 * fabs(num), "%s pair %d field %d: analytic %.10g, FD %.10g",
				  loss_kind_name(o->kind), i, f, an[f], num);
		}
	}
}

Test(fd, every_loss)
{
	for (int k = 0; k < LOSS_N_KINDS; k++) {
		if (k == LOSS_BETADPO)
			continue; /* β_b is a detached batch statistic: tested below */
		loss_opts o;
		loss_opts_default(&o);
		o.kind = (loss_kind)k;
		o.beta = k == LOSS_HINGE ? 0.05 : 0.3;
		o.label_smoothing = (k == LOSS_ROBUST || k == LOSS_SIMPO) ? 0.15 : 0;
		fd_check(&o);
		if (k == LOSS_REWARD) { /* reward centering on top */
			o.center_coef = 0.01;
			fd_check(&o);
			continue; /* no NLL term: scores are not log-probs */
		}
		o.sft_weight = 0.7; /* RPO term on top */
		fd_check(&o);
	}
}

Test(fd, lbdpo_regularizers)
{
	loss_opts o;
	loss_opts_default(&o);
	o.range_reg = 0.5;
	o.beta_min = 0.05;
	o.beta_max = 1.0;
	o.group_reg = 2.0;
	o.entropy_reg = 0.3;
	o.entropy_alpha = 0.1;
	fd_check(&o);
	loss_stats st;
	loss_batch(&o, PAIRS, NP, NULL, NULL, NULL, &st);
	/* range: 2.5 is 1.5 over βmax, 0.01 is 0.04 under βmin */
	cr_expect(fabs(st.reg_range - 0.5 * (1.5 + 0.04) / NP) < 1e-12);
	/* group 0: β 0.15, 0.3 -> mean 0.225; group 1: 0.08, 0.01 -> 0.045; group 2 alone */
	double want = 2.0 * (2 * 0.075 * 0.075 + 2 * 0.035 * 0.035) / 5;
	cr_expect(fabs(st.reg_group - want) < 1e-12, "group %.12g want %.12g", st.reg_group, want);
}

/* doc/design.md §2.4 signs: ∂L/∂β < 0 exactly where Δ > 0. */
Test(fd, lbdpo_beta_gradient_sign)
{
	loss_opts o;
	loss_opts_default(&o);
	loss_pair_grad g[NP];
	loss_batch(&o, PAIRS, NP, g, NULL, NULL, NULL);
	for (int i = 0; i < NP; i++) {
		double d = (PAIRS[i].pc - PAIRS[i].rc) - (PAIRS[i].pr - PAIRS[i].rr);
		cr_expect((d > 0) == (g[i].d_beta < 0), "pair %d Δ=%g dβ=%g", i, d, g[i].d_beta);
	}
}

/* beta-dpo against its formulas (Wu et al. 2024), computed here independently. */
Test(betadpo, no_filter_first_step)
{
	loss_opts o;
	loss_opts_default(&o);
	o.kind = LOSS_BETADPO;
	o.beta = 0.1;
	o.bdpo_alpha = 0.6;
	o.bdpo_rho = 0; /* keep every pair */
	bdpo_state bs = {0, 0, 0};
	uint64_t rng = 42;
	loss_stats st;
	loss_pair_grad g[NP];
	double L = loss_batch(&o, PAIRS, NP, g, &bs, &rng, &st);
	double M[NP], mean = 0, var = 0;
	for (int i = 0; i < NP; i++)
		mean += (M[i] = (PAIRS[i].pc - PAIRS[i].rc) - (PAIRS[i].pr - PAIRS[i].rr)) / NP;
	for (int i = 0; i < NP; i++)
		var += (M[i] - mean) * (M[i] - mean) / (NP - 1);
	double m0 = 0.1 * mean;
	cr_expect(fabs(bs.m0 - m0) < 1e-12);
	cr_expect(fabs(bs.sd - 0.1 * sqrt(var)) < 1e-12);
	double beta = 0.1 * (1 + 0.6 * (mean - m0));
	cr_expect(fabs(st.beta_used - beta) < 1e-12, "β %g want %g", st.beta_used, beta);
	double want = 0;
	for (int i = 0; i < NP; i++)
		want += log1p(exp(-beta * M[i])) / NP;
	cr_expect(fabs(L - want) < 1e-12);
	/* gradient with β_b held constant = dpo's at that β */
	loss_opts d = o;
	d.kind = LOSS_DPO;
	d.beta = beta;
	loss_pair_grad gd[NP];
	loss_batch(&d, PAIRS, NP, gd, NULL, NULL, NULL);
	for (int i = 0; i < NP; i++)
		cr_expect(fabs(gd[i].d_pc - g[i].d_pc) < 1e-15 && fabs(gd[i].d_pr - g[i].d_pr) < 1e-15);
}

Test(betadpo, filter_drops_outliers_more_often)
{
	/* 9 pairs with margin ≈ 1 and one with margin 40: after the moving
	 * statistics settle, the outlier is dropped far more often than kept. */
	loss_pair p[10];
	for (int i = 0; i < 10; i++)
		p[i] = (loss_pair){-10, -11 - 0.01 * i, -10, -10, 4, 4, 0, -1, 0, 0};
	p[9].pr = -50;
	loss_opts o;
	loss_opts_default(&o);
	o.kind = LOSS_BETADPO;
	o.bdpo_rho = 0.2;
	bdpo_state bs = {0, 0, 0};
	uint64_t rng = 7;
	loss_pair_grad g[10];
	int kept = 0, trials = 200;
	for (int t = 0; t < trials; t++) {
		loss_stats st;
		loss_batch(&o, p, 10, g, &bs, &rng, &st);
		cr_assert_eq(st.n_used, 8);
		if (t >= 50)
			kept += g[9].weight > 0;
	}
	cr_expect(kept < (trials - 50) / 2, "outlier kept %d of %d", kept, trials - 50);
}

/* ---- BetaHead ---- */

static void head_fd(head_kind kind)
{
	enum { B = 3, C = 5, K = 4 };
	betahead *bh = betahead_new(kind, C, K, 0.3f);
	betahead_init(bh, 11, 0.05);
	/* nonzero head weights so every path carries gradient */
	for (size_t i = 1; i < bh->n_params; i++)
		bh->p[i] = (float)(0.3 * sin(1.7 * i + 0.2));
	float h[B * C]; /* [B×C] */
	double m[B] = {-2.1, -3.5, -0.7};
	for (int i = 0; i < B * C; i++)
		h[i] = (float)cos(0.9 * i);
	double coef[B] = {0.7, -1.3, 2.0}; /* L = Σ coef_b β_b */
	beta_parts parts[B];
	float act[B * K];
	betahead_forward(bh, parts, act, h, m, B);
	for (int b = 0; b < B; b++)
		cr_expect(fabs(parts[b].beta - parts[b].w * exp(-m[b]) * (1 + (double)bh->eps * tanh(parts[b].a))) < 1e-12);
	float *dp = calloc(bh->n_params, sizeof(float));
	double dm[B];
	float dh[B * C];
	betahead_backward(bh, dp, dm, dh, coef, parts, act, h, B);
#define LOSS_NOW()                                                                                 \
	({                                                                                         \
		beta_parts q[B];                                                                   \
		float a2[B * K];                                                                   \
		betahead_forward(bh, q, a2, h, m, B);                                              \
		double s = 0;                                                                      \
		for (int b = 0; b < B; b++)                                                        \
			s += coef[b] * q[b].beta;                                                  \
		s;                                                                                 \
	})
	const float hf = 1e-3f;
	for (size_t i = 0; i < bh->n_params; i++) {
		float x = bh->p[i];
		bh->p[i] = x + hf;
		double lp = LOSS_NOW();
		bh->p[i] = x - hf;
		double lm = LOSS_NOW();
		bh->p[i] = x;
		double num = (lp - lm) / (bh->p[i] + hf - (bh->p[i] - hf));
		cr_expect(fabs(num - dp[i]) <= 2e-4 + 2e-3 * fabs(num), "param %zu: analytic %g FD %g", i, dp[i], num);
	}
	for (int b = 0; b < B; b++) {
		double x = m[b];
		m[b] = x + 1e-6;
		double lp = LOSS_NOW();
		m[b] = x - 1e-6;
		double lm = LOSS_NOW();
		m[b] = x;
		double num = (lp - lm) / 2e-6;
		cr_expect(fabs(num - dm[b]) <= 1e-6 + 1e-5 * fabs(num), "m[%d]: analytic %g FD %g", b, dm[b], num);
	}
	for (int i = 0; i < B * C; i++) {
		float x = h[i];
		h[i] = x + hf;
		double lp = LOSS_NOW();
		h[i] = x - hf;
		double lm = LOSS_NOW();
		h[i] = x;
		double num = (lp - lm) / (2.0 * hf);
		cr_expect(fabs(num - dh[i]) <= 2e-4 + 2e-3 * fabs(num), "h[%d]: analytic %g FD %g", i, dh[i], num);
	}
#undef LOSS_NOW
	free(dp);
	betahead_free(bh);
}

Test(betahead, linear_fd) { head_fd(HEAD_LINEAR); }
Test(betahead, mlp_fd) { head_fd(HEAD_MLP); }

Test(betahead, init_mean_beta_and_f_one)
{
	enum { B = 4, C = 6 };
	betahead *bh = betahead_new(HEAD_LINEAR, C, 0, 0.1f);
	betahead_init(bh, 1, 1.0);
	float h[B * C];
	for (int i = 0; i < B * C; i++)
		h[i] = (float)i;
	double m[B] = {-3.0, -2.5, -4.0, -1.0}; /* PPL ≈ 20, 12, 55, 2.7 */
	beta_parts parts[B];
	betahead_forward(bh, parts, NULL, h, m, B);
	for (int b = 0; b < B; b++)
		cr_expect_eq(parts[b].f, 1.0);
	betahead_set_mean_beta(bh, parts, B, 0.1);
	betahead_forward(bh, parts, NULL, h, m, B);
	double mean = 0;
	for (int b = 0; b < B; b++)
		mean += parts[b].beta / B;
	cr_expect(fabs(mean - 0.1) < 1e-6, "mean β %g", mean);
	betahead_free(bh);
}

/* ---- AdamW and schedules vs torch / transformers ---- */

Test(adamw, matches_torch)
{
	json_t *j = fixture();
	json_t *a = json_object_get(j, "adamw");
	size_t n = json_array_size(json_object_get(a, "p0"));
	float p[16], m[16] = {0}, v[16] = {0}, g[16];
	for (size_t i = 0; i < n; i++)
		p[i] = (float)json_number_value(json_array_get(json_object_get(a, "p0"), i));
	adamw_hp hp = {json_number_value(json_object_get(a, "beta1")), json_number_value(json_object_get(a, "beta2")),
		       json_number_value(json_object_get(a, "eps"))};
	json_t *gs = json_object_get(a, "grads");
	for (size_t t = 0; t < json_array_size(gs); t++) {
		for (size_t i = 0; i < n; i++)
			g[i] = (float)json_number_value(json_array_get(json_array_get(gs, t), i));
		adamw_update(p, g, m, v, n, json_number_value(json_object_get(a, "lr")),
			     json_number_value(json_object_get(a, "weight_decay")), &hp, (long)t + 1);
	}
	for (size_t i = 0; i < n; i++) {
		double want = json_number_value(json_array_get(json_object_get(a, "p_final"), i));
		cr_expect(fabs(p[i] - want) < 2e-6, "p[%zu] %.9g torch %.9g", i, p[i], want);
	}
	double lr = json_number_value(json_object_get(a, "sched_base_lr"));
	long wu = json_integer_value(json_object_get(a, "sched_warmup"));
	long tot = json_integer_value(json_object_get(a, "sched_total"));
	const char *names[2] = {"linear", "cosine"};
	for (int k = 0; k < 2; k++) {
		json_t *arr = json_object_get(json_object_get(a, "sched"), names[k]);
		for (long s = 0; s < tot; s++) {
			double want = json_number_value(json_array_get(arr, (size_t)s));
			double got = sched_lr((sched_kind)sched_parse(names[k]), lr, s, wu, tot);
			cr_expect(fabs(got - want) < 1e-12, "%s step %ld: %g want %g", names[k], s, got, want);
		}
	}
	json_decref(j);
}

Test(adamw, clip)
{
	float g[3] = {3, 4, 0};
	double nrm = sqrt(sumsq(g, 3));
	cr_expect(fabs(nrm - 5) < 1e-12);
	cr_expect(fabs(clip_factor(nrm, 1.0) - 1.0 / (5 + 1e-6)) < 1e-12);
	cr_expect_eq(clip_factor(nrm, 10.0), 1.0);
	cr_expect_eq(clip_factor(nrm, 0), 1.0);
}
