/* test_rl.c — PPO, GRPO and RLOO math (libcore/objective/rl.c) against the
 * float64 torch reference tests/ref/make_rl_fixtures.py (tests/fixtures/rl.json):
 * per-token rewards, GAE, whitening, advantages, and every step of several
 * epochs over shuffled mini-batches (losses, clip fractions, ∂loss/∂lp,
 * ∂loss/∂v) of a free-logits policy trained by SGD, with padding, early EOS
 * and a sample without EOS; plus entropy and the adaptive KL coefficient.
 * Agreement within 1e-5 relative. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/objective/rl.h"

static json_t *fx;
static int B, T, V, G, lens[16], has_eos[16], tokens[256];
static double Z0[2048], V0[256], lp_old[256], lp_ref[256], scores_raw[16];

static void num_array(double *out, json_t *a, size_t n)
{
	cr_assert(json_is_array(a) && json_array_size(a) == n, "fixture array of %zu", n);
	for (size_t i = 0; i < n; i++)
		out[i] = json_number_value(json_array_get(a, i));
}

static void int_array(int *out, json_t *a, size_t n)
{
	cr_assert(json_is_array(a) && json_array_size(a) == n);
	for (size_t i = 0; i < n; i++)
		out[i] = (int)json_integer_value(json_array_get(a, i));
}

static void load(void)
{
	const char *root = getenv("LBDPO_ROOT");
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/fixtures/rl.json", root ? root : ".");
	json_error_t err;
	fx = json_load_file(path, 0, &err);
	cr_assert(fx, "cannot load %s: %s", path, err.text);
	B = (int)json_integer_value(json_object_get(fx, "B"));
	T = (int)json_integer_value(json_object_get(fx, "T"));
	V = (int)json_integer_value(json_object_get(fx, "V"));
	G = (int)json_integer_value(json_object_get(fx, "G"));
	int_array(lens, json_object_get(fx, "lens"), B);
	int_array(has_eos, json_object_get(fx, "has_eos"), B);
	int_array(tokens, json_object_get(fx, "tokens"), (size_t)B * T);
	num_array(Z0, json_object_get(fx, "Z0"), (size_t)B * T * V);
	num_array(V0, json_object_get(fx, "V0"), (size_t)B * T);
	num_array(lp_old, json_object_get(fx, "lp_old"), (size_t)B * T);
	num_array(lp_ref, json_object_get(fx, "lp_ref"), (size_t)B * T);
	num_array(scores_raw, json_object_get(fx, "scores_raw"), B);
}

static void fini(void) { json_decref(fx); }

TestSuite(rl, .init = load, .fini = fini);

static void near(double got, double want, const char *what, int step, int k)
{
	cr_expect(fabs(got - want) <= 1e-5 * fabs(want) + 1e-10, "%s (step %d, entry %d): %.12g, want %.12g", what,
		  step, k, got, want);
}

static void near_arr(const double *got, json_t *want, size_t n, const char *what, int step)
{
	cr_assert_eq(json_array_size(want), n, "%s size", what);
	for (size_t k = 0; k < n; k++)
		near(got[k], json_number_value(json_array_get(want, k)), what, step, (int)k);
}

static double jnum(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }
static int jint(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

/* lp of rows idx[0..n) of Z (n×T, padding 0) */
static void logprobs(double *lp, const double *Z, const int *idx, int n)
{
	for (int r = 0; r < n; r++) {
		int i = idx[r];
		for (int t = 0; t < T; t++) {
			const double *z = Z + ((size_t)i * T + t) * V;
			double mx = z[0], s = 0;
			for (int k = 1; k < V; k++)
				mx = fmax(mx, z[k]);
			for (int k = 0; k < V; k++)
				s += exp(z[k] - mx);
			lp[r * T + t] = t < lens[i] ? z[tokens[i * T + t]] - mx - log(s) : 0.0;
		}
	}
}

/* Z rows idx −= lr·∂/∂z of Σ g·lp (through log_softmax) */
static void sgd_logits(double *Z, const double *g, const int *idx, int n, double lr)
{
	for (int r = 0; r < n; r++) {
		int i = idx[r];
		for (int t = 0; t < T; t++) {
			double *z = Z + ((size_t)i * T + t) * V, mx = z[0], s = 0, p[64];
			for (int k = 1; k < V; k++)
				mx = fmax(mx, z[k]);
			for (int k = 0; k < V; k++)
				s += (p[k] = exp(z[k] - mx));
			for (int k = 0; k < V; k++)
				z[k] -= lr * g[r * T + t] * ((k == tokens[i * T + t]) - p[k] / s);
		}
	}
}

/* rows idx of a B×T array */
static void gather(double *out, const double *x, const int *idx, int n)
{
	for (int r = 0; r < n; r++)
		memcpy(out + (size_t)r * T, x + (size_t)idx[r] * T, sizeof *x * T);
}

static void run_ppo(const char *name)
{
	json_t *c = json_object_get(fx, name);
	int NT = B * T;
	double score[16], rew[256], nons[256], adv[256], ret[256], val[256];
	memcpy(score, scores_raw, sizeof score);
	rl_eos_penalty(score, has_eos, B, jnum(c, "eos_penalty"));
	near_arr(score, json_object_get(c, "scores"), B, "scores", -1);
	rl_token_rewards(rew, nons, lp_old, lp_ref, score, lens, B, T, jnum(c, "kl_coef"));
	if (jint(c, "whiten_rewards"))
		rl_whiten(rew, lens, B, T, 0);
	near_arr(rew, json_object_get(c, "rewards"), NT, "rewards", -1);
	double ksum = 0, nsum = 0, kl[16];
	rl_seq_kl(kl, lp_old, lp_ref, lens, B, T);
	for (int i = 0; i < B; i++)
		ksum += kl[i] / B;
	for (int k = 0; k < NT; k++)
		nsum += nons[k] / B;
	near(ksum, jnum(c, "kl"), "objective/kl", -1, 0);
	near(nsum, jnum(c, "non_score_reward"), "objective/non_score_reward", -1, 0);
	for (int i = 0; i < B; i++)
		for (int t = 0; t < T; t++)
			val[i * T + t] = t < lens[i] ? V0[i * T + t] : 0.0;
	rl_gae(adv, ret, rew, val, lens, B, T, jnum(c, "gamma"), jnum(c, "lam"));
	near_arr(ret, json_object_get(c, "returns"), NT, "returns", -1);
	rl_whiten(adv, lens, B, T, 1);
	near_arr(adv, json_object_get(c, "advantages"), NT, "advantages", -1);

	static double Z[2048], Vp[256];
	memcpy(Z, Z0, sizeof Z);
	memcpy(Vp, V0, sizeof Vp);
	int mb = jint(c, "mb");
	double lr = jnum(c, "lr"), lr_v = jnum(c, "lr_v"), eps = jnum(c, "eps");
	rl_policy_opts po = {.eps_low = eps, .eps_high = eps, .agg = RL_AGG_TOKEN};
	json_t *steps = json_object_get(c, "steps"), *st;
	size_t si;
	json_array_foreach(steps, si, st)
	{
		int idx[16], ml[16], n = (int)json_array_size(json_object_get(st, "idx"));
		int_array(idx, json_object_get(st, "idx"), n);
		cr_assert_eq(n, mb);
		double lp[256], lo[256], a[256], v[256], vo[256], R[256], glp[256], gv[256];
		logprobs(lp, Z, idx, n);
		gather(lo, lp_old, idx, n);
		gather(a, adv, idx, n);
		gather(v, Vp, idx, n);
		gather(vo, val, idx, n);
		gather(R, ret, idx, n);
		for (int r = 0; r < n; r++)
			ml[r] = lens[idx[r]];
		rl_policy_stats ps;
		rl_value_stats vs;
		double pg = rl_policy_loss(glp, &ps, lp, lo, NULL, a, ml, n, T, &po);
		double vf = rl_value_loss(gv, &vs, v, vo, R, ml, n, T, jnum(c, "eps_v"));
		double vc = jnum(c, "vf_coef");
		for (int k = 0; k < n * T; k++)
			gv[k] *= vc;
		int s = (int)si;
		near(pg + vc * vf, jnum(st, "loss"), "loss", s, 0);
		near(pg, jnum(st, "pg_loss"), "policy loss", s, 0);
		near(vf, jnum(st, "vf_loss"), "val/vf_loss", s, 0);
		near(ps.clipfrac, jnum(st, "clipfrac"), "policy/clipfrac", s, 0);
		near(vs.clipfrac, jnum(st, "vf_clipfrac"), "val/clipfrac", s, 0);
		near(ps.approxkl, jnum(st, "approxkl"), "policy/approxkl", s, 0);
		near(ps.ratio, jnum(st, "ratio"), "val/ratio", s, 0);
		near_arr(glp, json_object_get(st, "d_lp"), (size_t)n * T, "d loss/d lp", s);
		near_arr(gv, json_object_get(st, "d_v"), (size_t)n * T, "d loss/d v", s);
		/* the entropy metric: mean over the real tokens of the mini-batch */
		double H = 0;
		int M = 0;
		for (int r = 0; r < n; r++)
			for (int t = 0; t < ml[r]; t++) {
				float zf[64];
				for (int k = 0; k < V; k++)
					zf[k] = (float)Z[((size_t)idx[r] * T + t) * V + k];
				H += rl_entropy(NULL, zf, V);
				M++;
			}
		cr_expect(fabs(H / M - jnum(st, "entropy")) <= 1e-5 * fabs(jnum(st, "entropy")), "entropy step %d", s);
		sgd_logits(Z, glp, idx, n, lr);
		for (int r = 0; r < n; r++)
			for (int t = 0; t < T; t++)
				Vp[idx[r] * T + t] -= lr_v * gv[r * T + t];
	}
	near_arr(Z, json_object_get(c, "Z_final"), (size_t)B * T * V, "final logits", -1);
	near_arr(Vp, json_object_get(c, "V_final"), (size_t)B * T, "final values", -1);
}

Test(rl, ppo) { run_ppo("ppo"); }
Test(rl, ppo_whitened_rewards_discounted) { run_ppo("ppo_whiten"); }

static void run_group(const char *name)
{
	json_t *c = json_object_get(fx, name);
	int grpo = !strcmp(json_string_value(json_object_get(c, "kind")), "grpo");
	double beta = jnum(c, "beta"), r[16], adv[16], advt[256];
	memcpy(r, scores_raw, sizeof r);
	if (grpo) {
		rl_grpo_advantages(adv, r, B, G, 1);
	} else {
		double kl[16];
		rl_seq_kl(kl, lp_old, lp_ref, lens, B, T);
		for (int i = 0; i < B; i++)
			r[i] -= beta * kl[i];
		rl_rloo_advantages(adv, r, B, G, jint(c, "normalize"));
	}
	near_arr(r, json_object_get(c, "rewards"), B, "rewards", -1);
	near_arr(adv, json_object_get(c, "advantages"), B, "advantages", -1);
	for (int i = 0; i < B; i++)
		for (int t = 0; t < T; t++)
			advt[i * T + t] = adv[i];
	rl_policy_opts po = {.eps_low = jnum(c, "eps"),
			     .eps_high = jnum(c, "eps"),
			     .beta = grpo ? beta : 0,
			     .seq_level = !grpo,
			     .agg = !strcmp(json_string_value(json_object_get(c, "agg")), "grpo") ? RL_AGG_SEQ
												  : RL_AGG_TOKEN};
	static double Z[2048];
	memcpy(Z, Z0, sizeof Z);
	json_t *steps = json_object_get(c, "steps"), *st;
	size_t si;
	json_array_foreach(steps, si, st)
	{
		int idx[16], ml[16], n = (int)json_array_size(json_object_get(st, "idx"));
		int_array(idx, json_object_get(st, "idx"), n);
		double lp[256], lo[256], lr_[256], a[256], glp[256];
		logprobs(lp, Z, idx, n);
		gather(lo, lp_old, idx, n);
		gather(lr_, lp_ref, idx, n);
		gather(a, advt, idx, n);
		for (int k = 0; k < n; k++)
			ml[k] = lens[idx[k]];
		rl_policy_stats ps;
		double loss = rl_policy_loss(glp, &ps, lp, lo, lr_, a, ml, n, T, &po);
		int s = (int)si;
		near(loss, jnum(st, "loss"), "loss", s, 0);
		near(ps.clipfrac, jnum(st, "clipfrac"), "clipfrac", s, 0);
		near(ps.kl, jnum(st, "kl"), "kl", s, 0);
		near_arr(glp, json_object_get(st, "d_lp"), (size_t)n * T, "d loss/d lp", s);
		sgd_logits(Z, glp, idx, n, jnum(c, "lr"));
	}
	near_arr(Z, json_object_get(c, "Z_final"), (size_t)B * T * V, "final logits", -1);
}

Test(rl, grpo_kl_in_loss) { run_group("grpo"); }
Test(rl, grpo_bnpo) { run_group("grpo_bnpo"); }
Test(rl, rloo_kl_in_reward) { run_group("rloo"); }
Test(rl, rloo_normalized) { run_group("rloo_norm"); }

Test(rl, entropy)
{
	json_t *e = json_object_get(fx, "entropy");
	double z[256], H[64], dz[256], got[256];
	num_array(z, json_object_get(e, "logits"), (size_t)T * V);
	num_array(H, json_object_get(e, "H"), T);
	num_array(dz, json_object_get(e, "d_logits"), (size_t)T * V);
	for (int t = 0; t < T; t++) {
		float zf[64];
		for (int k = 0; k < V; k++)
			zf[k] = (float)z[t * V + k];
		double h = rl_entropy(got + t * V, zf, V);
		cr_expect(fabs(h - H[t]) <= 1e-5 * fabs(H[t]), "H[%d] %.9g want %.9g", t, h, H[t]);
		for (int k = 0; k < V; k++)
			cr_expect(fabs(got[t * V + k] - dz[t * V + k]) <= 1e-5 * fabs(dz[t * V + k]) + 1e-6,
				  "dH/dz[%d,%d]", t, k);
	}
}

Test(rl, kl_adaptive)
{
	json_t *a = json_object_get(fx, "kl_adaptive"), *st;
	double c = jnum(a, "init");
	size_t i;
	json_array_foreach(json_object_get(a, "steps"), i, st)
	{
		c = rl_kl_adapt(c, jnum(st, "current"), jnum(a, "target"), jnum(a, "horizon"), jnum(st, "n_steps"));
		near(c, jnum(st, "value"), "kl coef", (int)i, 0);
	}
}

/* a single real token can not be whitened (n − 1 = 0): left as it is */
Test(rl, whiten_one_token)
{
	int len1[2] = {1, 0};
	double x[4] = {3.0, 9.0, 9.0, 9.0};
	rl_whiten(x, len1, 2, 2, 1);
	cr_expect_eq(x[0], 3.0);
}
