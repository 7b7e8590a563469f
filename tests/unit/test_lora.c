/* test_lora.c — LoRA adapters (libcore/lora.h) against transformers + peft
 * (tests/fixtures/lora, made by tests/ref/make_lora_fixtures.py; its
 * docstring is the convention): PEFT-written adapters on the tiny llama,
 * qwen2, gemma2, gpt2, phi3 and neox models load, score within 1e-5
 * relative, and give the gradients of every lora_A/lora_B within 1e-4
 * (the fixed loss of the base fixtures and a DPO loss); PEFT's default
 * initialization leaves the base's numbers exact; save + load is lossless.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/safetensors.h"
#include "tests/unit/json_testlib.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"
#include "libcore/train/engine.h"
#include "libcore/train/checkpoint.h"

#define FIX "tests/fixtures/lora/"

static double jnum(json_t *a, int i) { return json_number_value(json_array_get(a, i)); }

static double worst_lp;

static void expect_rel(double got, double ref, double tol, const char *what, int pair)
{
	double rel = fabs(got - ref) / fmax(1.0, fabs(ref));
	worst_lp = fmax(worst_lp, rel);
	cr_expect(rel <= tol, "pair %d %s: ours %.10g, peft %.10g (rel %.3g)", pair, what, got, ref, rel);
}

/* Per tensor max|ours − ref| <= 1e-4·max|ref| + 1e-7; returns the relative error. */
static double expect_grad(const float *a, const float *b, size_t n, const char *what)
{
	double md = 0, mb = 0;
	for (size_t i = 0; i < n; i++) {
		md = fmax(md, fabs((double)a[i] - b[i]));
		mb = fmax(mb, fabs((double)b[i]));
	}
	cr_expect(mb > 0, "%s: the reference gradient is zero (a weak test)", what);
	cr_expect(md <= 1e-4 * mb + 1e-7, "%s: max diff %.3g, max |ref| %.3g", what, md, mb);
	return md / fmax(mb, 1e-30);
}

typedef struct {
	model *m;
	lora *lo;
	json_t *ref;
	int np;
	model_seq *seqs;
	model_scores *sc;
	model_seq_grad *g;
} fx;

static void fx_open(fx *f, const char *name)
{
	char dir[256], path[320];
	snprintf(dir, sizeof dir, FIX "%s", name);
	snprintf(path, sizeof path, "%s/ref.json", dir);
	json_error_t je;
	f->ref = json_load_file(path, 0, &je);
	cr_assert(f->ref, "%s: %s", path, je.text);
	const char *base = json_string_value(json_object_get(f->ref, "base"));
	cr_assert(base);
	char *ab = lora_base_of(dir);
	cr_assert_str_eq(ab, base, "adapter_config.json names the base");
	free(ab);
	f->m = model_load(base);
	f->lo = lora_load(f->m, dir);
	model_set_lora(f->m, f->lo);
	const int C = model_cfg(f->m)->dim;
	json_t *pairs = json_object_get(f->ref, "pairs");
	f->np = (int)json_array_size(pairs);
	f->seqs = xcalloc(f->np, sizeof *f->seqs);
	f->sc = xcalloc(f->np, sizeof *f->sc);
	f->g = xcalloc(f->np, sizeof *f->g);
	for (int i = 0; i < f->np; i++) {
		json_t *p = json_array_get(pairs, i);
		int n0, n1;
		f->seqs[i].prompt = ids_of(json_object_get(p, "prompt"), &f->seqs[i].n_prompt);
		f->seqs[i].comp[0] = ids_of(json_object_get(p, "chosen"), &n0);
		f->seqs[i].comp[1] = ids_of(json_object_get(p, "rejected"), &n1);
		f->seqs[i].n_comp_tok[0] = n0, f->seqs[i].n_comp_tok[1] = n1;
		f->seqs[i].n_comp = 2;
		f->sc[i].h_last = xmalloc(sizeof(float) * C);
		f->sc[i].h_mean = xmalloc(sizeof(float) * C);
		f->sc[i].tok_logp[0] = xmalloc(sizeof(float) * n0);
		f->sc[i].tok_logp[1] = xmalloc(sizeof(float) * n1);
		json_t *dl = json_object_get(p, "d_logp");
		f->g[i].d_logp[0] = jnum(dl, 0);
		f->g[i].d_logp[1] = jnum(dl, 1);
		f->g[i].d_prompt_mean_logp = json_number_value(json_object_get(p, "d_prompt_mean_logp"));
		f->g[i].d_h_last = floats_of(json_object_get(p, "d_h_last"), C);
		f->g[i].d_h_mean = floats_of(json_object_get(p, "d_h_mean"), C);
	}
}

static void fx_close(fx *f)
{
	for (int i = 0; i < f->np; i++) {
		free((void *)f->seqs[i].prompt), free((void *)f->seqs[i].comp[0]), free((void *)f->seqs[i].comp[1]);
		free(f->sc[i].h_last), free(f->sc[i].h_mean), free(f->sc[i].tok_logp[0]), free(f->sc[i].tok_logp[1]);
		free((void *)f->g[i].d_h_last), free((void *)f->g[i].d_h_mean);
	}
	free(f->seqs), free(f->sc), free(f->g);
	json_decref(f->ref);
	model_free(f->m);
	lora_free(f->lo);
}

/* Compare G (laid out as lora_params) with a gradient file of PEFT's names. */
static void compare_grads(fx *f, const float *G, const char *file)
{
	const model_config *c = model_cfg(f->m);
	st_file *gf = st_open(file);
	double worst = 0;
	int n = 0;
	for (int t = 0; t < lora_n_tensors(f->lo); t++) {
		const model_tensor *mt = lora_tensor_at(f->lo, t);
		const st_info_t *gi = st_find(gf, mt->name);
		cr_assert(gi, "%s: no gradient for %s", file, mt->name);
		cr_assert_eq(gi->numel, mt->numel, "%s: %s size", file, mt->name);
		float *r = xmalloc(sizeof *r * mt->numel);
		st_read_f32(gf, mt->name, r, mt->numel);
		if (c->arch == ARCH_NEOX && strstr(mt->name, ".query_key_value.lora_B")) /* per head → [Q;K;V] */
			model_neox_qkv_permute(r, c->n_heads, c->head_dim, (int)mt->shape[1], 0);
		worst = fmax(worst, expect_grad(G + mt->offset, r, mt->numel, mt->name));
		free(r);
		n++;
	}
	cr_expect_eq(n, st_count(gf), "peft has %d adapter gradients, we compared %d", st_count(gf), n);
	cr_log_info("%s: %d adapter gradients, worst relative error %.3g", file, n, worst);
	st_close(gf);
}

static void check_fixture(const char *name)
{
	fx f;
	fx_open(&f, name);
	const int C = model_cfg(f.m)->dim;
	json_t *pairs = json_object_get(f.ref, "pairs");
	cr_assert_eq(lora_n_tensors(f.lo), json_integer_value(json_object_get(f.ref, "n_lora_tensors")));
	worst_lp = 0;
	model_ws *ws = model_ws_new(f.m);
	model_forward(f.m, ws, f.seqs, f.np, f.sc, 1);
	for (int i = 0; i < f.np; i++) {
		json_t *p = json_array_get(pairs, i);
		for (int k = 0; k < 2; k++) {
			expect_rel(f.sc[i].logp[k], jnum(json_object_get(p, "logp"), k), 1e-5,
				   k ? "logp rejected" : "logp chosen", i);
			json_t *tl = json_array_get(json_object_get(p, "tok_logp"), k);
			for (int j = 0; j < f.seqs[i].n_comp_tok[k]; j++)
				expect_rel(f.sc[i].tok_logp[k][j], jnum(tl, j), 1e-5, "token log-prob", i);
		}
		expect_rel(f.sc[i].prompt_mean_logp, json_number_value(json_object_get(p, "prompt_mean_logp")), 1e-5,
			   "prompt_mean_logp", i);
		expect_rel(f.sc[i].prompt_entropy, json_number_value(json_object_get(p, "prompt_entropy")), 1e-5,
			   "prompt_entropy", i);
		float *hl = floats_of(json_object_get(p, "h_last"), C);
		for (int c = 0; c < C; c++)
			expect_rel(f.sc[i].h_last[c], hl[c], 1e-4, "h_last", i);
		free(hl);
	}
	cr_log_info("%s: worst log-prob relative error %.3g", name, worst_lp);
	/* the fixed loss's gradient */
	size_t n = lora_n_params(f.lo);
	cr_assert_eq(model_n_trainable(f.m), n);
	float *G = xcalloc(n, sizeof *G);
	model_backward(f.m, ws, f.g, G);
	char path[320];
	snprintf(path, sizeof path, FIX "%s/grads.safetensors", name);
	compare_grads(&f, G, path);
	/* the DPO loss's: dL/dlogp from our own log-probs and the base's */
	json_t *dpo = json_object_get(f.ref, "dpo");
	const double beta = json_number_value(json_object_get(dpo, "beta"));
	json_t *rl = json_object_get(dpo, "ref_logp");
	model_forward(f.m, ws, f.seqs, f.np, f.sc, 1);
	model_seq_grad *g2 = xcalloc(f.np, sizeof *g2);
	double L = 0;
	for (int i = 0; i < f.np; i++) {
		json_t *r = json_array_get(rl, i);
		double z = beta * ((f.sc[i].logp[0] - jnum(r, 0)) - (f.sc[i].logp[1] - jnum(r, 1)));
		double sg = 1 / (1 + exp(z)); /* σ(−z) */
		L += log1p(exp(-z));
		g2[i].d_logp[0] = -beta * sg, g2[i].d_logp[1] = beta * sg;
	}
	expect_rel(L, json_number_value(json_object_get(dpo, "loss")), 1e-5, "DPO loss", -1);
	memset(G, 0, sizeof *G * n);
	model_backward(f.m, ws, g2, G);
	snprintf(path, sizeof path, FIX "%s/dpo_grads.safetensors", name);
	compare_grads(&f, G, path);
	free(g2);
	free(G);
	model_ws_free(ws);
	fx_close(&f);
}

Test(lora, llama_all_linear) { check_fixture("llama"); }
Test(lora, qwen2_rslora_q_v_slices) { check_fixture("qwen2"); }
Test(lora, gemma2_all_linear) { check_fixture("gemma2"); }
Test(lora, gpt2_conv1d_fan_in_fan_out) { check_fixture("gpt2"); }
Test(lora, phi3_fused_modules) { check_fixture("phi3"); }
Test(lora, neox_per_head_qkv) { check_fixture("neox"); }

/* PEFT's default initialization (B = 0): the adapted model scores exactly as
 * the base, bit for bit, and the backward still reaches B. */
Test(lora, default_init_is_the_base)
{
	fx f;
	fx_open(&f, "llama");
	model_set_lora(f.m, NULL);
	model_ws *ws = model_ws_new(f.m);
	model_forward(f.m, ws, f.seqs, f.np, f.sc, 0);
	double base[16][2];
	for (int i = 0; i < f.np; i++)
		base[i][0] = f.sc[i].logp[0], base[i][1] = f.sc[i].logp[1];
	lora *lo = lora_new(f.m, &(lora_opts){.r = 8, .targets = "q_proj,v_proj,down_proj"}, 7);
	cr_expect_eq(lora_settings(lo)->alpha, 16.0, "alpha defaults to 2r");
	cr_expect_str_eq(lora_targets(lo), "q_proj,v_proj,down_proj");
	int nz_a = 0, nz_b = 0;
	for (int t = 0; t < lora_n_tensors(lo); t++) {
		const model_tensor *mt = lora_tensor_at(lo, t);
		const float *p = lora_params(lo) + mt->offset;
		const int is_a = strstr(mt->name, "lora_A") != NULL;
		const double bound = 1 / sqrt((double)mt->shape[1]);
		for (size_t k = 0; k < mt->numel; k++) {
			if (is_a) {
				nz_a += p[k] != 0;
				cr_assert(fabs(p[k]) <= bound, "%s: %g outside the Kaiming bound %g", mt->name, p[k],
					  bound);
			} else {
				nz_b += p[k] != 0;
			}
		}
	}
	cr_expect_gt(nz_a, 0);
	cr_expect_eq(nz_b, 0, "B starts at zero");
	model_set_lora(f.m, lo);
	model_forward(f.m, ws, f.seqs, f.np, f.sc, 1);
	for (int i = 0; i < f.np; i++)
		for (int k = 0; k < 2; k++)
			cr_expect_eq(f.sc[i].logp[k], base[i][k], "pair %d: step 0 scores as the base", i);
	float *G = xcalloc(lora_n_params(lo), sizeof *G);
	model_backward(f.m, ws, f.g, G);
	double gb = 0, ga = 0;
	for (int t = 0; t < lora_n_tensors(lo); t++) {
		const model_tensor *mt = lora_tensor_at(lo, t);
		for (size_t k = 0; k < mt->numel; k++)
			*(strstr(mt->name, "lora_A") ? &ga : &gb) += fabs(G[mt->offset + k]);
	}
	cr_expect_gt(gb, 0, "B gets a gradient at B = 0");
	cr_expect_eq(ga, 0, "A's gradient is zero while B is");
	free(G);
	model_ws_free(ws);
	lora_free(lo);
	fx_close(&f);
}

/* lbdpo's adapter files load back identical (config and tensors; NeoX's
 * per-head permutation both ways). */
Test(lora, save_load_roundtrip)
{
	const char *names[] = {"neox", "gpt2", "qwen2"};
	for (int q = 0; q < 3; q++) {
		fx f;
		fx_open(&f, names[q]);
		char tmpl[] = "/tmp/lbdpo_lora_XXXXXX";
		cr_assert(mkdtemp(tmpl));
		lora_save(f.lo, tmpl, "some/base");
		char *b = lora_base_of(tmpl);
		cr_expect_str_eq(b, "some/base");
		free(b);
		lora *l2 = lora_load(f.m, tmpl);
		cr_expect_eq(lora_n_params(l2), lora_n_params(f.lo));
		cr_expect_eq(memcmp(lora_params(l2), lora_params(f.lo), sizeof(float) * lora_n_params(l2)), 0,
			     "%s: tensors differ after save + load", names[q]);
		cr_expect_eq(lora_scale(l2), lora_scale(f.lo));
		cr_expect_eq(lora_settings(l2)->rslora, lora_settings(f.lo)->rslora);
		char a[65], c[65];
		lora_fingerprint(l2, a);
		lora_fingerprint(f.lo, c);
		cr_expect_str_eq(a, c);
		lora_free(l2);
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
		cr_expect_eq(system(cmd), 0);
		fx_close(&f);
	}
}

/* Merging W += s·B·A gives the adapted model's numbers without the adapter. */
Test(lora, merge_matches_adapter)
{
	const char *names[] = {"gpt2", "neox", "phi3"};
	for (int q = 0; q < 3; q++) {
		fx f;
		fx_open(&f, names[q]);
		model_ws *ws = model_ws_new(f.m);
		model_forward(f.m, ws, f.seqs, f.np, f.sc, 0);
		double ad[16][2];
		for (int i = 0; i < f.np; i++)
			ad[i][0] = f.sc[i].logp[0], ad[i][1] = f.sc[i].logp[1];
		model_set_lora(f.m, NULL);
		lora_merge(f.lo, f.m);
		model_forward(f.m, ws, f.seqs, f.np, f.sc, 0);
		for (int i = 0; i < f.np; i++)
			for (int k = 0; k < 2; k++)
				expect_rel(f.sc[i].logp[k], ad[i][k], 1e-5, names[q], i);
		model_ws_free(ws);
		fx_close(&f);
	}
}

/* A target that is not a linear layer of the family is refused in one line
 * (exit 2, usage). */
Test(lora, unknown_target_refused, .exit_code = 2)
{
	model *m = model_load("tests/fixtures/hf/gpt2");
	lora_new(m, &(lora_opts){.r = 2, .targets = "q_proj"}, 1);
}

/* Gradient checkpointing (model_ws_set_checkpointing) recomputes each block
 * in the backward: scores and gradients bit-identical to the plain path, with
 * and without an adapter, on every family of the fixtures. */
static void run_fb(fx *f, int gc, model_scores *sc, float *G)
{
	model_ws *ws = model_ws_new(f->m);
	model_ws_set_checkpointing(ws, gc);
	model_forward(f->m, ws, f->seqs, f->np, sc, 1);
	model_backward(f->m, ws, f->g, G);
	model_ws_free(ws);
}

Test(lora, gradient_checkpointing_bit_identical)
{
	const char *names[] = {"llama", "qwen2", "gemma2", "gpt2", "phi3", "neox"};
	for (int q = 0; q < 6; q++) {
		fx f;
		fx_open(&f, names[q]);
		const int C = model_cfg(f.m)->dim;
		for (int with_lora = 0; with_lora < 2; with_lora++) {
			model_set_lora(f.m, with_lora ? f.lo : NULL);
			size_t n = model_n_trainable(f.m);
			float *G0 = xcalloc(n, sizeof *G0), *G1 = xcalloc(n, sizeof *G1);
			model_scores *s0 = xcalloc(f.np, sizeof *s0), *s1 = xcalloc(f.np, sizeof *s1);
			for (int i = 0; i < f.np; i++) {
				s0[i].h_last = xmalloc(sizeof(float) * C), s1[i].h_last = xmalloc(sizeof(float) * C);
				s0[i].h_mean = xmalloc(sizeof(float) * C), s1[i].h_mean = xmalloc(sizeof(float) * C);
			}
			run_fb(&f, 0, s0, G0);
			run_fb(&f, 1, s1, G1);
			for (int i = 0; i < f.np; i++) {
				cr_expect(s0[i].logp[0] == s1[i].logp[0] && s0[i].logp[1] == s1[i].logp[1] &&
						  s0[i].prompt_mean_logp == s1[i].prompt_mean_logp,
					  "%s pair %d: checkpointing changed the scores", names[q], i);
				cr_expect_eq(memcmp(s0[i].h_last, s1[i].h_last, sizeof(float) * C), 0);
				free(s0[i].h_last), free(s1[i].h_last), free(s0[i].h_mean), free(s1[i].h_mean);
			}
			double gs = 0;
			for (size_t k = 0; k < n; k++)
				gs += fabs(G0[k]);
			cr_expect_gt(gs, 0);
			cr_expect_eq(memcmp(G0, G1, sizeof(float) * n), 0,
				     "%s (%s): checkpointing changed the gradient", names[q],
				     with_lora ? "adapter" : "full");
			free(G0), free(G1), free(s0), free(s1);
		}
		model_set_lora(f.m, f.lo);
		fx_close(&f);
	}
}

/* One TRL-style DPO step on a PEFT adapter (reference = the adapter
 * disabled: the records carry the base's log-probs), through the training
 * engine as lbdpo-step runs it, against peft + torch AdamW
 * (make_lora_fixtures.py "dpo_step"): the step's metrics within 1e-5
 * (relative, absolute below 1) and the adapter after the step within 1e-5
 * of each tensor's scale. */
static void check_dpo_step(const char *name)
{
	char dir[256], path[320];
	snprintf(dir, sizeof dir, FIX "%s", name);
	snprintf(path, sizeof path, "%s/ref.json", dir);
	json_error_t je;
	json_t *ref = json_load_file(path, 0, &je);
	cr_assert(ref, "%s: %s", path, je.text);
	json_t *pairs = json_object_get(ref, "pairs"), *dpo = json_object_get(ref, "dpo");
	json_t *want = json_object_get(ref, "dpo_step"), *rl = json_object_get(dpo, "ref_logp");
	const int np = (int)json_array_size(pairs);
	pref_rec *recs = xcalloc(np, sizeof *recs);
	for (int i = 0; i < np; i++) {
		json_t *p = json_array_get(pairs, i);
		pref_rec *r = &recs[i];
		r->prompt = ids_of(json_object_get(p, "prompt"), &r->np);
		r->chosen = ids_of(json_object_get(p, "chosen"), &r->nc);
		r->rejected = ids_of(json_object_get(p, "rejected"), &r->nr);
		r->has_ref = 1;
		r->ref_c = jnum(json_array_get(rl, i), 0);
		r->ref_r = jnum(json_array_get(rl, i), 1);
		r->group = -1;
		r->index = (uint64_t)i + 1;
	}
	pref_set data = {.r = recs, .n = np, .name = "fixture"};
	ckpt_opts co;
	ckpt_opts_default(&co);
	co.adapter = dir;
	const char *base = json_string_value(json_object_get(ref, "base"));
	ckpt *c = ckpt_load(base, &co);
	cr_assert_not_null(c->lo, "%s: no adapter loaded", name);
	train_opts o;
	train_opts_default(&o);
	o.init = base;
	o.batch_size = np; /* the pairs as one batch, TRL's mean */
	o.lr = json_number_value(json_object_get(want, "lr"));
	o.schedule = SCHED_CONSTANT;
	o.clip = 0;
	o.weight_decay = 0;
	o.total_steps = 1;
	o.loss.kind = LOSS_DPO;
	o.loss.beta = json_number_value(json_object_get(dpo, "beta"));
	train_engine *e = train_engine_new(c, &data, &o);
	train_metrics m;
	cr_assert_eq(train_step(e, &m), 0);
	struct {
		const char *key;
		double got;
	} mk[] = {{"loss", m.loss},
		  {"rewards_chosen", m.rewards_chosen},
		  {"rewards_rejected", m.rewards_rejected},
		  {"margin", m.margin},
		  {"accuracy", m.accuracy},
		  {"logps_chosen", m.logps_chosen},
		  {"logps_rejected", m.logps_rejected},
		  {"grad_norm", m.grad_norm}};
	for (size_t k = 0; k < sizeof mk / sizeof *mk; k++) {
		double w = json_number_value(json_object_get(want, mk[k].key));
		/* 1e-5 relative, absolute below 1: rewards are β × differences of
		 * log-probs of about 10, whose fp32 rounding (1e-7 relative) shows
		 * in them at 4e-8 absolute */
		cr_expect(fabs(mk[k].got - w) <= 1e-5 * fmax(fabs(w), 1.0), "%s: %s %.10g, TRL/peft %.10g", name,
			  mk[k].key, mk[k].got, w);
	}
	model_sync(c->m, 0);
	snprintf(path, sizeof path, "%s/step_adapter.safetensors", dir);
	st_file *sf = st_open(path);
	const model_config *cfg = model_cfg(c->m);
	double worst = 0;
	for (int t = 0; t < lora_n_tensors(c->lo); t++) {
		const model_tensor *mt = lora_tensor_at(c->lo, t);
		float *r = xmalloc(sizeof *r * mt->numel);
		st_read_f32(sf, mt->name, r, mt->numel);
		if (cfg->arch == ARCH_NEOX && strstr(mt->name, ".query_key_value.lora_B"))
			model_neox_qkv_permute(r, cfg->n_heads, cfg->head_dim, (int)mt->shape[1], 0);
		const float *g = lora_params(c->lo) + mt->offset;
		double md = 0, mb = 0;
		for (size_t k = 0; k < mt->numel; k++)
			md = fmax(md, fabs((double)g[k] - r[k])), mb = fmax(mb, fabs((double)r[k]));
		cr_expect(md <= 1e-5 * mb, "%s: %s after the step: max diff %.3g, scale %.3g", name, mt->name, md, mb);
		worst = fmax(worst, md / mb);
		free(r);
	}
	cr_log_info("%s: a DPO step, metrics and %d adapter tensors as TRL/peft's (worst %.3g)", name,
		    lora_n_tensors(c->lo), worst);
	st_close(sf);
	train_engine_free(e);
	ckpt_free(c);
	for (int i = 0; i < np; i++)
		free(recs[i].prompt), free(recs[i].chosen), free(recs[i].rejected);
	free(recs);
	json_decref(ref);
}

Test(lora, dpo_step_as_trl)
{
	const char *names[] = {"llama", "qwen2", "gemma2", "gpt2", "phi3", "neox"};
	for (int q = 0; q < 6; q++)
		check_dpo_step(names[q]);
}

/* Σ_i Σ_t w[i][t]·log π(token t of completion i), the form of an RL loss
 * (lbdpo-step --loss ppo|grpo|rloo hands its per-token gradient down as
 * model_seq_grad.d_tok_logp), over the fixture's chosen completions */
static double tok_objective(fx *f, model_ws *ws, double **w, int train)
{
	model_seq sq[16];
	model_scores sc[16];
	for (int i = 0; i < f->np; i++) {
		sq[i] = f->seqs[i];
		sq[i].n_comp = 1;
		sc[i] = (model_scores){.tok_logp = {f->sc[i].tok_logp[0]}};
	}
	model_forward(f->m, ws, sq, f->np, sc, train);
	double L = 0;
	for (int i = 0; i < f->np; i++)
		for (int t = 0; t < sq[i].n_comp_tok[0]; t++)
			L += w[i][t] * f->sc[i].tok_logp[0][t];
	return L;
}

/* The RL step's gradient path with an adapter: d_tok_logp reaches lora_A
 * and lora_B as central finite differences of the per-token objective say,
 * on the llama and gpt2 fixtures (PEFT adapters with B != 0), for the 8
 * largest gradient elements of A and of B: within 2% (float forwards; h =
 * 2e-4: at 1e-3 the curvature of the tiny models already shows as 2.4%). */
Test(lora, token_logp_gradient_finite_differences)
{
	const char *names[] = {"llama", "gpt2"};
	for (int q = 0; q < 2; q++) {
		fx f;
		fx_open(&f, names[q]);
		cr_assert(f.np <= 16);
		double *w[16];
		uint64_t s = 12345;
		for (int i = 0; i < f.np; i++) {
			w[i] = xmalloc(sizeof(double) * f.seqs[i].n_comp_tok[0]);
			for (int t = 0; t < f.seqs[i].n_comp_tok[0]; t++) {
				s = s * 6364136223846793005ull + 1442695040888963407ull;
				w[i][t] = (double)(s >> 11) / 9007199254740992.0 - 0.5;
			}
		}
		model_ws *ws = model_ws_new(f.m);
		tok_objective(&f, ws, w, 1);
		model_seq_grad g[16];
		for (int i = 0; i < f.np; i++)
			g[i] = (model_seq_grad){.d_tok_logp = {w[i]}};
		const size_t n = lora_n_params(f.lo);
		float *G = xcalloc(n, sizeof *G);
		model_backward(f.m, ws, g, G);
		float *P = lora_params(f.lo);
		for (int ab = 0; ab < 2; ab++) { /* A, then B */
			int top[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
			for (int t = 0; t < lora_n_tensors(f.lo); t++) {
				const model_tensor *mt = lora_tensor_at(f.lo, t);
				if ((strstr(mt->name, "lora_A") != NULL) != (ab == 0))
					continue;
				for (size_t k = 0; k < mt->numel; k++) { /* insert into the 8 largest |G| */
					int j = (int)(mt->offset + k);
					for (int r = 0; r < 8; r++)
						if (top[r] < 0 || fabsf(G[j]) > fabsf(G[top[r]])) {
							int tmp = top[r];
							top[r] = j, j = tmp;
							if (j < 0)
								break;
						}
				}
			}
			for (int r = 0; r < 8; r++) {
				const int j = top[r];
				cr_assert(j >= 0 && G[j] != 0, "%s: no gradient in %s", names[q], ab ? "B" : "A");
				const float p0 = P[j], h = 2e-4f;
				P[j] = p0 + h;
				lora_sync(f.lo, 1);
				double lp = tok_objective(&f, ws, w, 0);
				P[j] = p0 - h;
				lora_sync(f.lo, 1);
				double lm = tok_objective(&f, ws, w, 0);
				P[j] = p0;
				lora_sync(f.lo, 1);
				double fd = (lp - lm) / (2.0 * h);
				cr_expect(fabs(fd - G[j]) <= 0.02 * fabs(G[j]),
					  "%s: %s element %d: backward %g, finite differences %g", names[q],
					  ab ? "lora_B" : "lora_A", j, (double)G[j], fd);
			}
		}
		free(G);
		model_ws_free(ws);
		for (int i = 0; i < f.np; i++)
			free(w[i]);
		fx_close(&f);
	}
}
