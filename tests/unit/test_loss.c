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

#include "libcore/nn/adamw.h"
#include "libcore/objective/betahead.h"
#include "libcore/objective/loss.h"

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

static int load_pairs_from(json_t *j, const char *key, loss_pair *p)
{
	json_t *arr = json_object_get(j, key), *v;
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

static int load_pairs(json_t *j, loss_pair *p) { return load_pairs_from(j, "pairs", p); }

/* loss_batch on the case's pairs against TRL's loss and autograd
 * gradients (and d/dβ_i when the case has them) */
static void expect_case(json_t *c, const char *name, const loss_opts *o, const loss_pair *p, int n)
{
	loss_pair_grad g[16];
	json_t *dbeta = json_object_get(c, "d_beta");
	double L = loss_batch(o, p, n, g, NULL, NULL, NULL);
	double want = json_number_value(json_object_get(c, "loss"));
	cr_expect(fabs(L - want) <= 1e-6 * fmax(1, fabs(want)), "%s: loss %.12g, TRL %.12g", name, L, want);
	for (int i = 0; i < n; i++) {
		double wc = json_number_value(json_array_get(json_object_get(c, "d_pc"), i));
		double wr = json_number_value(json_array_get(json_object_get(c, "d_pr"), i));
		cr_expect(fabs(g[i].d_pc - wc) <= 1e-6, "%s pair %d: dL/dpc %.12g, TRL %.12g", name, i, g[i].d_pc, wc);
		cr_expect(fabs(g[i].d_pr - wr) <= 1e-6, "%s pair %d: dL/dpr %.12g, TRL %.12g", name, i, g[i].d_pr, wr);
		if (dbeta) {
			double wb = json_number_value(json_array_get(dbeta, i));
			cr_expect(fabs(g[i].d_beta - wb) <= 1e-6 * fmax(1, fabs(wb)),
				  "%s pair %d: dL/dbeta %.12g, TRL %.12g", name, i, g[i].d_beta, wb);
		}
	}
}

static void check_case(const char *name, loss_kind kind)
{
	json_t *j = fixture();
	loss_pair p[16];
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
	expect_case(c, name, &o, p, n);
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

/* cDPO and Dr.DPO against the authors' formulas in torch
 * (tests/fixtures/robust_losses.json, made by tests/ref/make_robust_fixtures.py);
 * per-pair β: the β head's gradient */
Test(ref, cdpo_drdpo)
{
	const char *root = getenv("LBDPO_ROOT");
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/fixtures/robust_losses.json", root ? root : ".");
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err), *c;
	cr_assert(j, "cannot load %s: %s", path, err.text);
	const char *key;
	int nc = 0;
	json_object_foreach(json_object_get(j, "cases"), key, c)
	{
		loss_pair p[16];
		int n = load_pairs(j, p);
		loss_opts o;
		loss_opts_default(&o);
		o.kind = loss_kind_parse(json_string_value(json_object_get(c, "loss_type")));
		cr_assert(o.kind == LOSS_DRDPO || o.kind == LOSS_CDPO, "%s: loss", key);
		o.beta = json_number_value(json_object_get(c, "beta"));
		o.drdpo_beta_prime = json_number_value(json_object_get(c, "beta_prime"));
		o.label_smoothing = json_number_value(json_object_get(c, "label_smoothing"));
		json_t *pb = json_object_get(c, "per_pair_beta");
		if (pb) {
			o.learned_beta = 1;
			for (int i = 0; i < n; i++)
				p[i].beta = json_number_value(json_array_get(pb, i));
		}
		expect_case(c, key, &o, p, n);
		nc++;
	}
	cr_expect(nc >= 7, "%d cases", nc);
	json_decref(j);
}

/* TRL's loss_type names that lbdpo spells its own way */
static const char *lbdpo_name(const char *trl)
{
	return !strcmp(trl, "sigmoid") ? "dpo" : !strcmp(trl, "sigmoid_norm") ? "ln-dpo" : trl;
}

/* A "list_*" case: TRL's loss_type list with loss_weights on the random
 * pairs; d/dβ_i where the case has it (per-pair β = the β head's). as_single:
 * a one-loss list also as the single loss (no weights). */
static void check_list_case(const char *name, int as_single)
{
	json_t *j = fixture();
	loss_pair p[16];
	json_t *c = json_object_get(json_object_get(j, "cases"), name);
	cr_assert(c, "no case %s", name);
	int n = load_pairs_from(j, json_string_value(json_object_get(c, "pairs")), p);
	cr_assert(n > 1);
	char names[512] = "", weights[512] = "", err[256];
	json_t *lt = json_object_get(c, "loss_types"), *lw = json_object_get(c, "loss_weights");
	for (size_t t = 0; t < json_array_size(lt); t++) {
		snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", t ? "," : "",
			 lbdpo_name(json_string_value(json_array_get(lt, t))));
		snprintf(weights + strlen(weights), sizeof weights - strlen(weights), "%s%.17g", t ? "," : "",
			 json_number_value(json_array_get(lw, t)));
	}
	loss_opts o;
	loss_opts_default(&o);
	cr_assert_eq(loss_opts_set(&o, names, as_single ? NULL : weights, err, sizeof err), 0, "%s: %s", name, err);
	cr_assert_eq(o.n_terms, as_single ? 0 : (int)json_array_size(lt));
	o.beta = json_number_value(json_object_get(c, "beta"));
	o.label_smoothing = json_number_value(json_object_get(c, "label_smoothing"));
	o.discopop_tau = json_number_value(json_object_get(c, "discopop_tau"));
	if (json_object_get(c, "d_beta")) { /* the β head's per-pair β, all at the case's β */
		o.learned_beta = 1;
		for (int i = 0; i < n; i++)
			p[i].beta = o.beta;
	}
	expect_case(c, name, &o, p, n);
	json_decref(j);
}

/* every "list_*" case of the fixture: each loss alone (as a one-term list
 * and as the single loss) and the weighted lists */
Test(trl, loss_lists)
{
	json_t *j = fixture();
	const char *key;
	json_t *c;
	int n = 0, nbeta = 0;
	json_object_foreach(json_object_get(j, "cases"), key, c)
	{
		if (strncmp(key, "list_", 5))
			continue;
		check_list_case(key, 0);
		if (json_array_size(json_object_get(c, "loss_types")) == 1)
			check_list_case(key, 1);
		n++;
		nbeta += json_object_get(c, "d_beta") != NULL;
	}
	cr_expect(n >= 23 && nbeta >= 15, "%d list cases, %d with d_beta", n, nbeta);
	json_decref(j);
}

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
	{-12.5, -15.0, -13.0, -14.0, 5, 7, 0.15, 0, 1.2, 0.5}, {-30.25, -22.0, -29.0, -23.5, 11, 8, 0.08, 1, 2.5, 0},
	{-4.0, -9.5, -4.5, -8.0, 2, 4, 0.3, 0, 0.7, 1.5},      {-55.0, -48.0, -50.0, -50.0, 20, 18, 2.5, -1, 3.0, -2},
	{-7.75, -7.5, -8.0, -7.0, 3, 3, 0.01, 1, 1.9, 0.25},   {-18.0, -31.0, -19.5, -26.0, 6, 10, 0.5, 2, 0.4, 0},
};
#define NP ((int)(sizeof PAIRS / sizeof PAIRS[0]))

static double L_of(const loss_opts *o, const loss_pair *p) { return loss_batch(o, p, NP, NULL, NULL, NULL, NULL); }

/* analytic dL/dpc, dL/dpr and (learned β) dL/dβ_i against central
 * differences, on PAIRS or on pairs q */
static void fd_check_on(const loss_opts *o, const loss_pair *q)
{
	loss_pair p[NP];
	loss_pair_grad g[NP];
	memcpy(p, q, sizeof p);
	loss_batch(o, p, NP, g, NULL, NULL, NULL);
	const double h = 1e-5;
	char names[512];
	for (int i = 0; i < NP; i++) {
		double *fields[3] = {&p[i].pc, &p[i].pr, &p[i].beta};
		double an[3] = {g[i].d_pc, g[i].d_pr, g[i].d_beta};
		for (int f = 0; f < 3; f++) {
			if (f == 2 && !loss_learned_beta(o))
				continue;
			double x = *fields[f];
			*fields[f] = x + h;
			double lp = L_of(o, p);
			*fields[f] = x - h;
			double lm = L_of(o, p);
			*fields[f] = x;
			double num = (lp - lm) / (2 * h);
			cr_expect(fabs(num - an[f]) <= 1e-6 + 1e-5 * fabs(num),
				  "%s%s pair %d field %d: analytic %.10g, FD %.10g",
				  loss_opts_names(o, names, sizeof names), o->learned_beta ? " (learned beta)" : "", i,
				  f, an[f], num);
		}
	}
}

static void fd_check(const loss_opts *o) { fd_check_on(o, PAIRS); }

/* PAIRS has ρ_w of pairs 0 and 2 equal (0.5): a tie in aot_unpaired's sort,
 * where the loss has no derivative. */
static void fd_check_untied(const loss_opts *o)
{
	loss_pair q[NP];
	memcpy(q, PAIRS, sizeof q);
	q[2].pc += 0.37;
	fd_check_on(o, q);
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
		o.label_smoothing = (k == LOSS_ROBUST || k == LOSS_CDPO || k == LOSS_SIMPO || k == LOSS_EXO_PAIR ||
				     k == LOSS_AOT || k == LOSS_AOT_UNPAIRED)
					    ? 0.15
					    : 0;
		fd_check_untied(&o);
		if (k == LOSS_REWARD) { /* reward centering on top */
			o.center_coef = 0.01;
			fd_check(&o);
			continue; /* no NLL term: scores are not log-probs */
		}
		o.sft_weight = 0.7; /* RPO term on top */
		fd_check_untied(&o);
		if (loss_has_pair_beta((loss_kind)k)) { /* the β head's per-pair β (PAIRS' β), ∂L/∂β_i too */
			o.learned_beta = 1;
			fd_check(&o);
			o.sft_weight = 0;
			fd_check(&o);
		}
	}
}

/* cDPO's ε and Dr.DPO's β′, fixed and learned β */
Test(fd, cdpo_and_drdpo_beta_prime)
{
	const loss_kind kinds[] = {LOSS_CDPO, LOSS_CDPO, LOSS_DRDPO, LOSS_DRDPO};
	const double ls[] = {0.15, 0.4, 0, 0}, bp[] = {1, 1, 0.5, 3};
	for (int t = 0; t < 4; t++)
		for (int learned = 0; learned < 2; learned++) {
			loss_opts o;
			loss_opts_default(&o);
			o.kind = kinds[t];
			o.beta = 0.3;
			o.label_smoothing = ls[t];
			o.drdpo_beta_prime = bp[t];
			o.learned_beta = learned;
			fd_check(&o);
			o.sft_weight = 0.5;
			fd_check(&o);
		}
}

/* every regularizer on the learned β, each active on some pair of PAIRS */
static void set_regularizers(loss_opts *o)
{
	o->range_reg = 0.5;
	o->beta_min = 0.05;
	o->beta_max = 1.0;
	o->group_reg = 2.0;
	o->entropy_reg = 0.3;
	o->entropy_alpha = 0.1;
}

/* weighted lists, with and without the learned β, and the regularizers */
Test(fd, loss_lists)
{
	const char *lists[][2] = {
		{"dpo,bco_pair,sft", "0.8,0.2,1"},
		{"ipo,hinge,robust,simpo,ln-dpo,exo_pair,nca_pair", "0.5,0.1,1,0.3,2,0.7,1.1"},
		{"sppo_hard,apo_zero,apo_down,discopop,sft", "0.05,1,1.5,0.4,0.25"},
		{"aot,aot_unpaired,dpo", "1,0.5,0.25"},
		{"drdpo,cdpo,robust,sft", "0.6,0.5,0.3,1"},
	};
	for (size_t l = 0; l < sizeof lists / sizeof *lists; l++) {
		loss_opts o;
		char err[256];
		loss_opts_default(&o);
		cr_assert_eq(loss_opts_set(&o, lists[l][0], lists[l][1], err, sizeof err), 0, "%s", err);
		o.beta = 0.2;
		o.label_smoothing = 0.1;
		o.discopop_tau = 0.3;
		fd_check_untied(&o);
		o.sft_weight = 0.4;
		fd_check_untied(&o);
		o.learned_beta = 1;
		if (loss_opts_check(&o, err, sizeof err) == 0) {
			set_regularizers(&o);
			fd_check(&o);
		} else {
			cr_expect(l == 3, "%s: %s", lists[l][0], err); /* aot: no per-pair β */
		}
	}
}

/* a list's loss and gradients are the weighted sums of its terms alone */
Test(lists, weighted_sum_of_terms)
{
	loss_opts o, one;
	char err[256];
	loss_opts_default(&o);
	cr_assert_eq(loss_opts_set(&o, "nca_pair,sft,discopop", "0.3,2,1.5", err, sizeof err), 0, "%s", err);
	o.learned_beta = 1;
	loss_pair_grad g[NP], g1[NP];
	double L = loss_batch(&o, PAIRS, NP, g, NULL, NULL, NULL), want = 0;
	double dpc[NP] = {0}, dbeta[NP] = {0}, li[NP] = {0};
	for (int t = 0; t < 3; t++) {
		one = o;
		one.n_terms = 0;
		one.kind = o.terms[t];
		want += o.term_w[t] * loss_batch(&one, PAIRS, NP, g1, NULL, NULL, NULL);
		for (int i = 0; i < NP; i++) {
			dpc[i] += o.term_w[t] * g1[i].d_pc;
			dbeta[i] += o.term_w[t] * g1[i].d_beta;
			li[i] += o.term_w[t] * g1[i].loss;
		}
	}
	cr_expect(fabs(L - want) < 1e-12 * fmax(1, fabs(want)), "%.17g vs %.17g", L, want);
	for (int i = 0; i < NP; i++)
		cr_expect(fabs(g[i].d_pc - dpc[i]) < 1e-12 && fabs(g[i].d_beta - dbeta[i]) < 1e-12 &&
				  fabs(g[i].loss - li[i]) < 1e-12,
			  "pair %d", i);
}

/* lbdpo is dpo with --learned-beta: the same bits */
Test(lists, lbdpo_is_dpo_with_learned_beta)
{
	loss_opts a, b;
	loss_opts_default(&a);
	a.range_reg = 0.5;
	a.beta_max = 1;
	a.group_reg = 0.2;
	b = a;
	b.kind = LOSS_DPO;
	b.learned_beta = 1;
	loss_pair_grad ga[NP], gb[NP];
	loss_stats sa, sb;
	double La = loss_batch(&a, PAIRS, NP, ga, NULL, NULL, &sa), Lb = loss_batch(&b, PAIRS, NP, gb, NULL, NULL, &sb);
	cr_expect(La == Lb);
	cr_expect(!memcmp(ga, gb, sizeof ga));
	cr_expect(!memcmp(&sa, &sb, sizeof sa));
}

Test(lists, parse_and_check)
{
	loss_opts o;
	char err[256];
	loss_opts_default(&o);
	cr_expect_eq(loss_opts_set(&o, "ipo", NULL, err, sizeof err), 0);
	cr_expect(o.kind == LOSS_IPO && o.n_terms == 0, "a single name is the single loss");
	cr_expect_eq(loss_opts_set(&o, "ipo", "0.5", err, sizeof err), 0);
	cr_expect(o.n_terms == 1 && o.term_w[0] == 0.5);
	cr_expect_eq(loss_opts_set(&o, "dpo,bco_pair,sft", NULL, err, sizeof err), 0);
	cr_expect(o.n_terms == 3 && o.terms[1] == LOSS_BCO_PAIR && o.term_w[2] == 1.0, "weights default to 1");
	char names[512];
	cr_expect_str_eq(loss_opts_names(&o, names, sizeof names), "dpo,bco_pair,sft");
	const char *bad[][3] = {
		{"dpo,nope", NULL, "--loss: unknown loss 'nope'"},
		{"dpo,,sft", NULL, "--loss: empty name in 'dpo,,sft'"},
		{"dpo,sft,", NULL, "--loss: empty name in 'dpo,sft,'"},
		{"dpo,sft", "1", "--loss-weights: 1 weights for 2 losses"},
		{"dpo,sft", "1,x", "--loss-weights: '1,x' is not a comma list of numbers"},
		{"dpo,sft", "1,", "--loss-weights: '1,' is not a comma list of numbers"},
		{"lbdpo,sft", NULL, "--loss: 'lbdpo' cannot be in a list (use dpo with --learned-beta)"},
		{"beta-dpo", "1", "--loss: 'beta-dpo' cannot be in a list (its beta is a batch statistic)"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		loss_opts_default(&o);
		cr_expect_eq(loss_opts_set(&o, bad[i][0], bad[i][1], err, sizeof err), -1, "%s accepted", bad[i][0]);
		cr_expect_str_eq(err, bad[i][2]);
	}
	loss_opts_default(&o);
	cr_expect_eq(loss_opts_check(&o, err, sizeof err), 0);
	loss_opts_set(&o, "exo_pair", NULL, err, sizeof err);
	cr_expect_eq(loss_opts_check(&o, err, sizeof err), -1);
	cr_expect_str_eq(err, "exo_pair needs --label-smoothing > 0 (as TRL; the EXO paper uses 1e-3)");
	o.label_smoothing = 1e-3;
	cr_expect_eq(loss_opts_check(&o, err, sizeof err), 0);
	loss_opts_set(&o, "dpo,aot", NULL, err, sizeof err);
	o.learned_beta = 1;
	cr_expect_eq(loss_opts_check(&o, err, sizeof err), -1);
	cr_expect_str_eq(err, "--learned-beta: aot has no per-pair beta");
	loss_opts_set(&o, "sft", NULL, err, sizeof err);
	cr_expect_eq(loss_opts_check(&o, err, sizeof err), -1);
	cr_expect_str_eq(err, "--learned-beta: the loss has no beta");
	cr_expect(loss_needs_whole_batch(&(loss_opts){.kind = LOSS_AOT_UNPAIRED}));
	cr_expect(!loss_needs_whole_batch(&(loss_opts){.kind = LOSS_BCO_PAIR}));
	cr_expect(loss_opts_needs_ref(
		&(loss_opts){.kind = LOSS_SIMPO, .n_terms = 2, .terms = {LOSS_SIMPO, LOSS_APO_ZERO}}));
	cr_expect(!loss_opts_needs_rejected(&(loss_opts){.kind = LOSS_SFT}));
}

Test(fd, lbdpo_regularizers)
{
	loss_opts o;
	loss_opts_default(&o);
	set_regularizers(&o);
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
		cr_expect(fabs(parts[b].beta - parts[b].w * exp(-m[b]) * (1 + (double)bh->eps * tanh(parts[b].a))) <
			  1e-12);
	float *dp = calloc(bh->n_params, sizeof(float));
	double dm[B];
	float dh[B * C];
	betahead_backward(bh, dp, dm, dh, coef, parts, act, h, B);
#define LOSS_NOW()                                                                                                     \
	({                                                                                                             \
		beta_parts q[B];                                                                                       \
		float a2[B * K];                                                                                       \
		betahead_forward(bh, q, a2, h, m, B);                                                                  \
		double s = 0;                                                                                          \
		for (int b = 0; b < B; b++)                                                                            \
			s += coef[b] * q[b].beta;                                                                      \
		s;                                                                                                     \
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

/* Dr.DPO: a large β′ is DPO (log-mean-exp → mean), and the weights a_i
 * (gradient over DPO's) fall with the pair's loss and average to 1 */
Test(drdpo, large_beta_prime_is_dpo_and_weights_fall_with_loss)
{
	loss_opts o, d;
	loss_opts_default(&o);
	o.kind = LOSS_DRDPO;
	o.beta = 0.3;
	o.drdpo_beta_prime = 1e6;
	d = o;
	d.kind = LOSS_DPO;
	loss_pair_grad g[NP], gd[NP];
	double L = loss_batch(&o, PAIRS, NP, g, NULL, NULL, NULL), Ld = loss_batch(&d, PAIRS, NP, gd, NULL, NULL, NULL);
	cr_expect(fabs(L - Ld) < 1e-5, "%.12g vs DPO %.12g", L, Ld);
	o.drdpo_beta_prime = 0.5;
	loss_batch(&o, PAIRS, NP, g, NULL, NULL, NULL);
	double sa = 0;
	for (int i = 0; i < NP; i++) {
		double a = g[i].d_pc / gd[i].d_pc; /* a_i: Dr.DPO's gradient over DPO's */
		sa += a;
		for (int k = 0; k < NP; k++)
			if (gd[k].loss > gd[i].loss + 1e-9)
				cr_expect(g[k].d_pc / gd[k].d_pc < a, "pair %d (loss %g) not below pair %d (loss %g)",
					  k, gd[k].loss, i, gd[i].loss);
	}
	cr_expect(fabs(sa / NP - 1) < 1e-12, "mean weight %.15g", sa / NP);
	cr_expect(L > loss_batch(&o, PAIRS, NP, NULL, NULL, NULL, NULL), "a smaller beta' lowers the loss");
}
