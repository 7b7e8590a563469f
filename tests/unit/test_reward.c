/* test_reward.c — reward models (XxxForSequenceClassification, num_labels 1)
 * against transformers and TRL (tests/fixtures/hf/rm_*, made by
 * tests/ref/make_reward_fixtures.py; its docstring is the convention):
 * lbdpo's rewards of prompt + completion (the last non-pad token), TRL
 * RewardTrainer's loss with margins and centering and its gradient, and a
 * reward model saved by lbdpo reloading as the same model. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/hfconfig.h"
#include "libcore/objective/loss.h"
#include "libcore/nn/model.h"
#include "base/util.h"

#define FIX "tests/fixtures/hf/"
#define MAXP 8

typedef struct {
	int n;
	uint32_t *ids[MAXP][3];
	int len[MAXP][3];
	double rc[MAXP], rr[MAXP], margin[MAXP];
	json_t *j;
} fixture;

static uint32_t *ids_of(json_t *a, int *n)
{
	*n = (int)json_array_size(a);
	uint32_t *v = xmalloc(sizeof(uint32_t) * (*n > 0 ? *n : 1));
	for (int i = 0; i < *n; i++)
		v[i] = (uint32_t)json_integer_value(json_array_get(a, i));
	return v;
}

static void fixture_load(fixture *f, const char *name)
{
	char p[256];
	snprintf(p, sizeof p, FIX "%s/ref.json", name);
	json_error_t e;
	f->j = json_load_file(p, 0, &e);
	cr_assert(f->j, "%s: %s", p, e.text);
	json_t *ps = json_object_get(f->j, "pairs");
	f->n = (int)json_array_size(ps);
	cr_assert(f->n > 0 && f->n <= MAXP);
	static const char *keys[] = {"prompt", "chosen", "rejected"};
	for (int i = 0; i < f->n; i++) {
		json_t *q = json_array_get(ps, i);
		for (int k = 0; k < 3; k++)
			f->ids[i][k] = ids_of(json_object_get(q, keys[k]), &f->len[i][k]);
		f->rc[i] = json_number_value(json_object_get(q, "reward_chosen"));
		f->rr[i] = json_number_value(json_object_get(q, "reward_rejected"));
		f->margin[i] = json_number_value(json_object_get(q, "margin"));
	}
}

static void fixture_free(fixture *f)
{
	for (int i = 0; i < f->n; i++)
		for (int k = 0; k < 3; k++)
			free(f->ids[i][k]);
	json_decref(f->j);
}

/* rewards of every pair, in one packed batch */
static void score(const model *m, const fixture *f, double *rc, double *rr)
{
	model_seq s[MAXP];
	model_scores o[MAXP];
	for (int i = 0; i < f->n; i++) {
		s[i] = (model_seq){.prompt = f->ids[i][0],
				   .n_prompt = f->len[i][0],
				   .comp = {f->ids[i][1], f->ids[i][2]},
				   .n_comp_tok = {f->len[i][1], f->len[i][2]},
				   .n_comp = 2};
		memset(&o[i], 0, sizeof o[i]);
	}
	model_ws *ws = model_ws_new(m);
	model_forward(m, ws, s, f->n, o, 0);
	model_ws_free(ws);
	for (int i = 0; i < f->n; i++)
		rc[i] = o[i].reward[0], rr[i] = o[i].reward[1];
}

/* |ours − ref| ≤ 1e-5·|ref| (a floor of 1e-5·0.1 for rewards near 0) */
static void expect_rewards(const char *what, const fixture *f, const double *rc, const double *rr)
{
	for (int i = 0; i < f->n; i++) {
		cr_expect(fabs(rc[i] - f->rc[i]) <= 1e-5 * fmax(fabs(f->rc[i]), 0.1), "%s pair %d chosen: %.9g vs %.9g",
			  what, i, rc[i], f->rc[i]);
		cr_expect(fabs(rr[i] - f->rr[i]) <= 1e-5 * fmax(fabs(f->rr[i]), 0.1),
			  "%s pair %d rejected: %.9g vs %.9g", what, i, rr[i], f->rr[i]);
	}
}

static void check_model(const char *name)
{
	lbdpo_set_threads(1);
	fixture f;
	fixture_load(&f, name);
	char dir[256];
	snprintf(dir, sizeof dir, FIX "%s", name);
	model *m = model_load(dir);
	const model_config *c = model_cfg(m);
	cr_assert(c->score_labels == 1, "%s: not read as a reward model", name);
	cr_expect(c->has_pad && c->pad_id == json_integer_value(json_object_get(f.j, "pad_token_id")));
	double rc[MAXP], rr[MAXP];
	score(m, &f, rc, rr);
	expect_rewards(name, &f, rc, rr);

	/* saved by lbdpo: the same model, with transformers' classification keys */
	char tmp[] = "/tmp/test_reward_XXXXXX";
	cr_assert(mkdtemp(tmp));
	model_save_hf(m, tmp);
	model *m2 = model_load(tmp);
	score(m2, &f, rc, rr);
	expect_rewards("saved", &f, rc, rr);
	char cp[300];
	snprintf(cp, sizeof cp, "%s/config.json", tmp);
	json_t *cj = json_load_file(cp, 0, NULL);
	cr_assert(cj);
	const char *arch = json_string_value(json_array_get(json_object_get(cj, "architectures"), 0));
	cr_expect(arch && strstr(arch, "ForSequenceClassification"), "architectures %s", arch ? arch : "(none)");
	cr_expect(json_object_size(json_object_get(cj, "id2label")) == 1);
	cr_expect(json_integer_value(json_object_get(cj, "pad_token_id")) == c->pad_id);
	json_decref(cj);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	cr_expect(system(cmd) == 0);
	model_free(m2);
	model_free(m);
	fixture_free(&f);
}

Test(reward, llama_rewards) { check_model("rm_llama"); }
Test(reward, qwen2_rewards) { check_model("rm_qwen2"); }
Test(reward, gemma2_rewards) { check_model("rm_gemma2"); }

/* TRL RewardTrainer's loss (margins, center_rewards_coefficient) and its
 * gradient on the fixture's float64 rewards. */
Test(reward, trl_loss)
{
	fixture f;
	fixture_load(&f, "rm_llama");
	loss_pair p[MAXP];
	loss_pair_grad g[MAXP];
	for (int i = 0; i < f.n; i++)
		p[i] = (loss_pair){.pc = f.rc[i],
				   .pr = f.rr[i],
				   .nc = f.len[i][1],
				   .nr = f.len[i][2],
				   .group = -1,
				   .margin = f.margin[i]};
	loss_opts o;
	loss_opts_default(&o);
	o.kind = LOSS_REWARD;
	cr_expect(!loss_needs_ref(o.kind) && !loss_uses_learned_beta(o.kind));
	double L0 = loss_batch(&o, p, f.n, NULL, NULL, NULL, NULL);
	cr_expect(fabs(L0 - json_number_value(json_object_get(f.j, "loss_nocenter"))) <= 1e-6, "loss %.12g", L0);
	o.center_coef = json_number_value(json_object_get(f.j, "center_coef"));
	o.sft_weight = 1; /* ignored: a reward model's scores are not log-probs */
	double L = loss_batch(&o, p, f.n, g, NULL, NULL, NULL);
	cr_expect(fabs(L - json_number_value(json_object_get(f.j, "loss"))) <= 1e-6, "loss %.12g", L);
	for (int i = 0; i < f.n; i++) {
		double dc = json_number_value(json_array_get(json_object_get(f.j, "d_rc"), i));
		double dr = json_number_value(json_array_get(json_object_get(f.j, "d_rr"), i));
		cr_expect(fabs(g[i].d_pc - dc) <= 1e-6 && fabs(g[i].d_pr - dr) <= 1e-6,
			  "pair %d: %.9g %.9g vs %.9g %.9g", i, g[i].d_pc, g[i].d_pr, dc, dr);
	}
	fixture_free(&f);
}

/* A causal LM made a reward model: the LM's weights, no lm_head, a score
 * head, and pad_token_id its eos when it names none. */
Test(reward, from_lm)
{
	model_config c = {0};
	c.arch = ARCH_LLAMA;
	c.dim = 16, c.n_heads = 2, c.n_kv_heads = 2, c.head_dim = 8, c.hidden_dim = 24, c.n_layers = 1;
	c.vocab_size = 20, c.max_seq_len = 16, c.rope_theta = 10000, c.norm_eps = 1e-5f;
	c.bos_id = 1, c.eos_id = 2;
	model *lm = model_new(&c);
	model_init_random(lm, 3, 0.2f);
	model *rm = model_reward_from(lm, 9, 0.02f);
	const model_config *r = model_cfg(rm);
	cr_expect(r->score_labels == 1 && r->has_pad && r->pad_id == 2);
	cr_expect(model_n_params(rm) == model_n_params(lm) - (size_t)c.vocab_size * c.dim + c.dim);
	cr_expect(hfconfig_n_params(r) == model_n_params(rm));
	int found = 0;
	for (int i = 0; i < model_n_tensors(rm); i++) {
		const model_tensor *t = model_tensor_at(rm, i);
		cr_expect(strcmp(t->name, "lm_head.weight"));
		if (!strcmp(t->name, "score.weight")) {
			found = 1;
			cr_expect(t->shape[0] == 1 && t->shape[1] == c.dim);
			continue;
		}
		cr_expect(!memcmp(model_params(rm) + t->offset, model_params(lm) + model_tensor_at(lm, i)->offset,
				  sizeof(float) * t->numel),
			  "%s differs", t->name);
	}
	cr_expect(found);
	model_free(rm);
	model_free(lm);
}
