/* test_hf_fixtures.c — our loader + forward + backward against Hugging Face
 * transformers' numbers (tests/fixtures/hf, made by
 * tests/ref/make_hf_fixtures.py; its docstring is the convention), and a
 * llama2.c model converted to HF against llama2.c's own log-probs
 * (../shared/golden/stories260K_logprobs.jsonl).
 *
 * Tolerances (from the script's docstring): log-probs and scalars
 * |ours - ref| <= 1e-4 * max(1, |ref|); hidden states and gradients per
 * tensor max|ours - ref| <= 1e-4 * max|ref| + 1e-6.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "tests/unit/json_testlib.h"
#include "libcore/nn/model.h"
#include "base/util.h"

#define FIX "tests/fixtures/hf/"

static double num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	cr_assert(json_is_number(v), "ref.json: no number '%s'", k);
	return json_number_value(v);
}

/* Tolerance of expect_close (1e-4; the family fixtures ask 1e-5 of log-probs)
 * and the worst relative error it saw. */
static double tol_close = 1e-4, worst_close;

static void expect_close(double got, double ref, const char *what, int pair)
{
	double rel = fabs(got - ref) / fmax(1.0, fabs(ref));
	worst_close = fmax(worst_close, rel);
	cr_expect(rel <= tol_close, "pair %d %s: ours %.8g, transformers %.8g", pair, what, got, ref);
}

/* max|a - b| <= 1e-4 * max|b| + 1e-6 over a vector; returns the relative error. */
static double expect_vec(const float *a, const float *b, size_t n, const char *what, int pair)
{
	double md = 0, mb = 0;
	for (size_t i = 0; i < n; i++) {
		md = fmax(md, fabs((double)a[i] - b[i]));
		mb = fmax(mb, fabs((double)b[i]));
	}
	cr_expect(md <= 1e-4 * mb + 1e-6, "pair %d %s: max diff %.3g, max |ref| %.3g", pair, what, md, mb);
	return md / fmax(mb, 1e-30);
}

static void check_fixture(const char *name)
{
	worst_close = 0;
	char dir[256], path[300];
	snprintf(dir, sizeof dir, FIX "%s", name);
	model *m = model_load(dir);
	model_ws *ws = model_ws_new(m);
	cr_assert_not_null(ws, "model_ws_new failed");
	const model_config *cfg = model_cfg(m);
	const int C = cfg->dim;
	snprintf(path, sizeof path, "%s/ref.json", dir);
	json_error_t je;
	json_t *ref = json_load_file(path, 0, &je);
	cr_assert(ref, "%s: %s", path, je.text);
	json_t *pairs = json_object_get(ref, "pairs");
	int np = (int)json_array_size(pairs);
	cr_assert_gt(np, 0);
	model_seq *seqs = xcalloc(np, sizeof *seqs);
	model_scores *sc = xcalloc(np, sizeof *sc);
	model_seq_grad *g = xcalloc(np, sizeof *g);
	for (int i = 0; i < np; i++) {
		json_t *p = json_array_get(pairs, i);
		int n0, n1;
		seqs[i].prompt = ids_of(json_object_get(p, "prompt"), &seqs[i].n_prompt);
		seqs[i].comp[0] = ids_of(json_object_get(p, "chosen"), &n0);
		seqs[i].comp[1] = ids_of(json_object_get(p, "rejected"), &n1);
		seqs[i].n_comp_tok[0] = n0, seqs[i].n_comp_tok[1] = n1;
		seqs[i].n_comp = 2;
		sc[i].h_last = xmalloc(sizeof(float) * C);
		sc[i].h_mean = xmalloc(sizeof(float) * C);
		sc[i].tok_logp[0] = xmalloc(sizeof(float) * n0);
		sc[i].tok_logp[1] = xmalloc(sizeof(float) * n1);
		json_t *dl = json_object_get(p, "d_logp");
		g[i].d_logp[0] = json_number_value(json_array_get(dl, 0));
		g[i].d_logp[1] = json_number_value(json_array_get(dl, 1));
		g[i].d_prompt_mean_logp = num(p, "d_prompt_mean_logp");
		g[i].d_h_last = floats_of(json_object_get(p, "d_h_last"), C);
		g[i].d_h_mean = floats_of(json_object_get(p, "d_h_mean"), C);
	}
	model_forward(m, ws, seqs, np, sc, 1);
	double loss = 0;
	for (int i = 0; i < np; i++) {
		json_t *p = json_array_get(pairs, i);
		for (int k = 0; k < 2; k++) {
			expect_close(sc[i].logp[k], json_number_value(json_array_get(json_object_get(p, "logp"), k)),
				     k ? "logp rejected" : "logp chosen", i);
			cr_expect_eq(sc[i].n[k], seqs[i].n_comp_tok[k]);
			json_t *tl = json_array_get(json_object_get(p, "tok_logp"), k);
			for (int j = 0; j < seqs[i].n_comp_tok[k]; j++)
				expect_close(sc[i].tok_logp[k][j], json_number_value(json_array_get(tl, j)),
					     "token log-prob", i);
			loss += g[i].d_logp[k] * sc[i].logp[k];
		}
		expect_close(sc[i].prompt_mean_logp, num(p, "prompt_mean_logp"), "prompt_mean_logp", i);
		expect_close(sc[i].prompt_entropy, num(p, "prompt_entropy"), "prompt_entropy", i);
		float *hl = floats_of(json_object_get(p, "h_last"), C),
		      *hm = floats_of(json_object_get(p, "h_mean"), C);
		expect_vec(sc[i].h_last, hl, C, "h_last", i);
		expect_vec(sc[i].h_mean, hm, C, "h_mean", i);
		loss += g[i].d_prompt_mean_logp * sc[i].prompt_mean_logp;
		for (int c = 0; c < C; c++)
			loss += (double)g[i].d_h_last[c] * sc[i].h_last[c] + (double)g[i].d_h_mean[c] * sc[i].h_mean[c];
		free(hl), free(hm);
	}
	expect_close(loss, num(ref, "loss"), "loss", -1);
	cr_log_info("%s: worst log-prob/scalar relative error %.3g (tolerance %g)", name, worst_close, tol_close);

	json_t *gname = json_object_get(ref, "grads");
	if (json_is_string(gname)) {
		size_t P = model_n_params(m);
		float *grads = xcalloc(P, sizeof *grads);
		model_backward(m, ws, g, grads);
		snprintf(path, sizeof path, "%s/%s", dir, json_string_value(gname));
		st_file *gf = st_open(path);
		double worst = 0;
		int n_checked = 0;
		for (int t = 0; t < model_n_tensors(m); t++) {
			const model_tensor *mt = model_tensor_at(m, t);
			const st_info_t *gi = st_find(gf, mt->name);
			if (!gi && !strcmp(mt->name, "embed_out.weight")) /* GPT-NeoX's module name in transformers 5 */
				gi = st_find(gf, "lm_head.weight");
			if (!gi && cfg->family == FAM_PHI3) {
				/* Phi-3: one gradient for the fused [q|k|v] and [gate|up], which
				 * our q/k/v and gate/up tensors hold adjacently */
				char fz[256];
				const char *nm = mt->name, *q = strstr(nm, "q_proj."), *gt = strstr(nm, "gate_proj.");
				if (strstr(nm, "k_proj.") || strstr(nm, "v_proj.") || strstr(nm, "up_proj."))
					continue;
				cr_assert(q || gt, "%s: no gradient for %s", path, nm);
				snprintf(fz, sizeof fz, "%.*s%s", (int)((q ? q : gt) - nm), nm,
					 q ? "qkv_proj.weight" : "gate_up_proj.weight");
				gi = st_find(gf, fz);
				cr_assert(gi, "%s: no gradient for %s", path, fz);
			}
			cr_assert(gi, "%s: no gradient for %s", path, mt->name);
			size_t numel = (size_t)gi->numel;
			cr_assert(mt->offset + numel <= P, "%s: %s larger than the model", path, gi->name);
			float *r = xmalloc(sizeof *r * numel);
			st_read_f32(gf, gi->name, r, numel);
			if (cfg->arch == ARCH_NEOX && strstr(gi->name, ".query_key_value.")) /* per head -> [Q;K;V] */
				model_neox_qkv_permute(r, cfg->n_heads, cfg->head_dim, gi->ndim == 2 ? cfg->dim : 1, 0);
			worst = fmax(worst, expect_vec(grads + mt->offset, r, numel, gi->name, -1));
			free(r);
			n_checked++;
		}
		cr_expect_eq(n_checked, st_count(gf), "transformers has %d parameter tensors, we compared %d",
			     st_count(gf), n_checked);
		cr_log_info("%s: %d gradient tensors, worst relative error %.3g", name, n_checked, worst);
		st_close(gf);
		free(grads);
	}

	/* Each completion scored alone (no prefix sharing) gives the same numbers
	 * (not with longrope: alone, a completion's own length may pick the other
	 * factor set than its pair's longer one). */
	if (cfg->rope.type == ROPE_LONGROPE)
		goto done;
	model_seq *single = xcalloc(2 * np, sizeof *single);
	model_scores *s1 = xcalloc(2 * np, sizeof *s1);
	for (int i = 0; i < np; i++)
		for (int k = 0; k < 2; k++) {
			single[2 * i + k] = seqs[i];
			single[2 * i + k].comp[0] = seqs[i].comp[k];
			single[2 * i + k].n_comp_tok[0] = seqs[i].n_comp_tok[k];
			single[2 * i + k].n_comp = 1;
		}
	model_forward(m, ws, single, 2 * np, s1, 0);
	for (int i = 0; i < 2 * np; i++)
		expect_close(s1[i].logp[0], sc[i / 2].logp[i % 2], "logp without prefix sharing", i / 2);
	free(single), free(s1);
done:

	for (int i = 0; i < np; i++) {
		free((void *)seqs[i].prompt), free((void *)seqs[i].comp[0]), free((void *)seqs[i].comp[1]);
		free(sc[i].h_last), free(sc[i].h_mean), free(sc[i].tok_logp[0]), free(sc[i].tok_logp[1]);
		free((void *)g[i].d_h_last), free((void *)g[i].d_h_mean);
	}
	free(seqs), free(sc), free(g);
	json_decref(ref);
	model_ws_free(ws);
	model_free(m);
}

Test(hf_fixtures, llama_gqa) { check_fixture("llama_gqa"); }
Test(hf_fixtures, qwen2_bias) { check_fixture("qwen2_bias"); }
Test(hf_fixtures, gpt2) { check_fixture("gpt2"); }
Test(hf_fixtures, llama_bf16) { check_fixture("llama_bf16"); }
Test(hf_fixtures, llama_f16_sharded) { check_fixture("llama_f16_sharded"); }
Test(hf_fixtures, gpt2_noprefix) { check_fixture("gpt2_noprefix"); }

/* Model families (tests/ref/make_family_fixtures.py): log-probs within 1e-5. */
static void check_family(const char *name)
{
	tol_close = 1e-5;
	check_fixture(name);
	tol_close = 1e-4;
}

Test(hf_fixtures, fam_llama31_rope_llama3) { check_family("fam_llama31"); }
Test(hf_fixtures, fam_phi3_longrope_fused) { check_family("fam_phi3"); }
Test(hf_fixtures, fam_mistral_window_linear) { check_family("fam_mistral"); }
Test(hf_fixtures, fam_qwen2_yarn) { check_family("fam_qwen2_yarn"); }
Test(hf_fixtures, fam_qwen3_qk_norm) { check_family("fam_qwen3"); }
Test(hf_fixtures, fam_neox_parallel_partial_rotary) { check_family("fam_neox"); }
Test(hf_fixtures, fam_neox_sequential_tied) { check_family("fam_neox_seq"); }
Test(hf_fixtures, fam_gemma2_softcap_postnorm) { check_family("fam_gemma2"); }
Test(hf_fixtures, fam_gemma3_qk_norm_local_rope) { check_family("fam_gemma3"); }
/* sliding window 6, pairs of up to 22 tokens: attention masked to the window */
Test(hf_fixtures, fam_mistral_sliding_window) { check_family("fam_mistral_swa"); }
Test(hf_fixtures, fam_gemma2_sliding_window) { check_family("fam_gemma2_swa"); }
Test(hf_fixtures, fam_gemma3_sliding_window) { check_family("fam_gemma3_swa"); }

/* Decoding with the KV cache (lbdpo-sample) uses the same RoPE scheme: the
 * log-prob of each token of prompt+chosen from the cache, fed as the prompt
 * and then one token at a time, equals the packed forward's. With longrope
 * the factor set follows the length fed so far, so the sequence is fed in
 * one chunk there. */
static void kv_matches_forward(const char *name)
{
	char dir[256], path[300];
	snprintf(dir, sizeof dir, FIX "%s", name);
	model *m = model_load(dir);
	model_ws *ws = model_ws_new(m);
	snprintf(path, sizeof path, "%s/ref.json", dir);
	json_error_t je;
	json_t *ref = json_load_file(path, 0, &je);
	cr_assert(ref, "%s: %s", path, je.text);
	json_t *pairs = json_object_get(ref, "pairs");
	const int V = model_cfg(m)->vocab_size, longrope = model_cfg(m)->rope.type == ROPE_LONGROPE;
	float *lg = xmalloc(sizeof(float) * V);
	double worst = 0;
	for (size_t i = 0; i < json_array_size(pairs); i++) {
		json_t *p = json_array_get(pairs, i);
		int P, n;
		uint32_t *pr = ids_of(json_object_get(p, "prompt"), &P), *c = ids_of(json_object_get(p, "chosen"), &n);
		float tl[64];
		cr_assert_lt(n, 64);
		model_seq sq = {.prompt = pr, .n_prompt = P, .comp = {c, NULL}, .n_comp_tok = {n, 0}, .n_comp = 1};
		model_scores sc = {.tok_logp = {tl, NULL}};
		model_forward(m, ws, &sq, 1, &sc, 0);
		uint32_t all[128];
		memcpy(all, pr, sizeof(uint32_t) * P);
		memcpy(all + P, c, sizeof(uint32_t) * n);
		model_kv *kv = model_kv_new(m, P + n);
		for (int j = 0; j < n; j++) {
			/* logits after all[0 .. P+j-1] predict c[j] */
			if (longrope) {
				model_kv_reset(kv);
				model_kv_feed(m, kv, all, P + j, lg);
			} else {
				model_kv_feed(m, kv, j ? all + P + j - 1 : all, j ? 1 : P, lg);
			}
			double mx = lg[0], z = 0;
			for (int v = 1; v < V; v++)
				mx = fmax(mx, lg[v]);
			for (int v = 0; v < V; v++)
				z += exp(lg[v] - mx);
			double lp = lg[c[j]] - mx - log(z);
			/* with longrope, a prefix shorter than the whole sequence may pick the
			 * other factor set than the forward did: compare where they agree */
			const int L = model_cfg(m)->rope.original_max;
			if (longrope && ((P + j > L) != (P + n > L)))
				continue;
			worst = fmax(worst, fabs(lp - tl[j]) / fmax(1.0, fabs(tl[j])));
			cr_expect(fabs(lp - tl[j]) <= 1e-5 * fmax(1.0, fabs(tl[j])),
				  "%s pair %zu token %d: kv %.8g, forward %.8g", name, i, j, lp, tl[j]);
		}
		model_kv_free(kv);
		free(pr), free(c);
	}
	cr_log_info("%s: KV-cache decoding vs forward, worst relative error %.3g", name, worst);
	free(lg);
	json_decref(ref);
	model_ws_free(ws);
	model_free(m);
}

Test(hf_fixtures, fam_kv_cache_decoding)
{
	kv_matches_forward("fam_llama31");
	kv_matches_forward("fam_phi3");
	kv_matches_forward("fam_mistral");
	kv_matches_forward("fam_qwen2_yarn");
	kv_matches_forward("fam_qwen3");
	kv_matches_forward("fam_neox");
	kv_matches_forward("fam_neox_seq");
	kv_matches_forward("fam_gemma2");
	kv_matches_forward("fam_gemma3");
	kv_matches_forward("fam_mistral_swa");
	kv_matches_forward("fam_gemma2_swa");
	kv_matches_forward("fam_gemma3_swa");
}

/* Saving and loading again gives the same model (fingerprint: config that
 * matters + every weight bit), in the family's own tensor names, with the
 * RoPE scheme and window kept. */
static void roundtrip(const char *name, const char *fused_name)
{
	char dir[256], tmp[] = "/tmp/lbdpo_fam_XXXXXX", p[400];
	snprintf(dir, sizeof dir, FIX "%s", name);
	model *a = model_load(dir);
	cr_assert(mkdtemp(tmp));
	model_save_hf(a, tmp);
	model *b = model_load(tmp);
	char fa[65], fb[65];
	model_fingerprint(a, fa);
	model_fingerprint(b, fb);
	cr_expect_str_eq(fa, fb, "%s: fingerprint changed by save + load", name);
	const model_config *ca = model_cfg(a), *cb = model_cfg(b);
	cr_expect_eq(ca->rope.type, cb->rope.type);
	cr_expect_eq(ca->family, cb->family);
	cr_expect_eq(ca->window, cb->window);
	cr_expect_eq(ca->max_seq_len, cb->max_seq_len);
	cr_expect_eq(ca->max_pos, cb->max_pos);
	cr_expect_eq(ca->head_dim, cb->head_dim);
	cr_expect_eq(ca->tied_embeddings, cb->tied_embeddings);
	snprintf(p, sizeof p, "%s/model.safetensors", tmp);
	st_file *f = st_open(p);
	if (fused_name)
		cr_expect(st_find(f, fused_name), "%s: no fused tensor %s in the saved file", name, fused_name);
	cr_expect(!st_find(f, "model.layers.0.self_attn.k_proj.weight") == !!fused_name);
	st_close(f);
	model_free(a), model_free(b);
	const char *files[] = {"config.json", "model.safetensors", NULL};
	for (int i = 0; files[i]; i++)
		snprintf(p, sizeof p, "%s/%s", tmp, files[i]), unlink(p);
	rmdir(tmp);
}

Test(hf_fixtures, fam_roundtrip)
{
	roundtrip("fam_llama31", NULL);
	roundtrip("fam_phi3", "model.layers.1.mlp.gate_up_proj.weight");
	roundtrip("fam_phi3", "model.layers.0.self_attn.qkv_proj.weight");
	roundtrip("fam_mistral", NULL);
	roundtrip("fam_qwen2_yarn", NULL);
	roundtrip("fam_qwen3", NULL);
	roundtrip("fam_neox", "gpt_neox.layers.0.attention.query_key_value.weight");
	roundtrip("fam_neox_seq", "gpt_neox.layers.1.attention.query_key_value.bias");
	roundtrip("fam_gemma2", NULL);
	roundtrip("fam_gemma3", NULL);
	roundtrip("fam_mistral_swa", NULL);
	roundtrip("fam_gemma2_swa", NULL);
}

/* Per-token log-probs of the golden texts: prompt = the first token (BOS). */
static void golden_logprobs(const model *m, model_ws *ws, json_t *rec, float *out, int *n)
{
	json_t *ids = json_object_get(rec, "ids");
	int T = (int)json_array_size(ids);
	uint32_t *t = xmalloc(sizeof *t * T);
	for (int i = 0; i < T; i++)
		t[i] = (uint32_t)json_integer_value(json_array_get(ids, i));
	model_seq s = {.prompt = t, .n_prompt = 1, .comp = {t + 1, NULL}, .n_comp_tok = {T - 1, 0}, .n_comp = 1};
	model_scores sc = {.tok_logp = {out, NULL}};
	model_forward(m, ws, &s, 1, &sc, 0);
	*n = T - 1;
	free(t);
}

Test(hf_fixtures, llama2c_converted_to_hf_same_logprobs)
{
	const char *sh = getenv("LBDPO_SHARED");
	char bin[512], gold[512], dir[] = "/tmp/lbdpo_s260_XXXXXX";
	if (!sh)
		cr_skip_test("LBDPO_SHARED not set: ../shared assets absent");
	snprintf(bin, sizeof bin, "%s/assets/stories260K/stories260K.bin", sh);
	snprintf(gold, sizeof gold, "%s/golden/stories260K_logprobs.jsonl", sh);
	if (access(bin, R_OK) || access(gold, R_OK))
		cr_skip_test("%s or %s absent", bin, gold);
	model *a = model_load(bin);
	model_ws *wa = model_ws_new(a);
	cr_assert_not_null(wa, "model_ws_new failed");
	cr_assert(mkdtemp(dir));
	model_save_hf(a, dir);
	model *b = model_load(dir);
	model_ws *wb = model_ws_new(b);
	FILE *fp = fopen(gold, "r");
	char line[1 << 16];
	float la[1024], lb[1024];
	int lines = 0;
	double worst = 0;
	while (fgets(line, sizeof line, fp)) {
		json_error_t je;
		json_t *r = json_loads(line, 0, &je);
		cr_assert(r, "%s: %s", gold, je.text);
		int n, n2;
		cr_assert_lt(json_array_size(json_object_get(r, "ids")), 1024);
		golden_logprobs(a, wa, r, la, &n);
		golden_logprobs(b, wb, r, lb, &n2);
		json_t *lp = json_object_get(r, "logprobs");
		cr_assert_eq((int)json_array_size(lp), n);
		for (int i = 0; i < n; i++) {
			double ref = json_number_value(json_array_get(lp, i));
			cr_expect(la[i] == lb[i], "text %d token %d: .bin %.8g vs converted HF %.8g", lines, i, la[i],
				  lb[i]);
			cr_expect(fabs(la[i] - ref) <= 1e-4, "text %d token %d: ours %.8g, llama2.c %.8g", lines, i,
				  la[i], ref);
			worst = fmax(worst, fabs(la[i] - ref));
		}
		json_decref(r);
		lines++;
	}
	fclose(fp);
	cr_expect_gt(lines, 0);
	cr_log_info("stories260K: %d texts, max |ours - llama2.c| = %.3g", lines, worst);
	char p[600];
	snprintf(p, sizeof p, "%s/config.json", dir), unlink(p);
	snprintf(p, sizeof p, "%s/model.safetensors", dir), unlink(p);
	rmdir(dir);
	model_ws_free(wa), model_ws_free(wb);
	model_free(a), model_free(b);
}
