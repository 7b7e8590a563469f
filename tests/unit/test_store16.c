/* test_store16.c — frozen weights kept in 16 bits (model_load_frozen,
 * model.h): a bf16 file scored with 16-bit storage gives the per-sequence
 * and per-token log-probs, pooled states, LoRA gradients, KV-cache logits,
 * reward scores and a LoRA training step BIT-IDENTICAL to the same file in
 * f32 storage, on llama (tied and untied), qwen2 (q/k/v bias), gemma2, gpt2
 * (Conv1D), neox and phi3, with and without gradient checkpointing, in fp32
 * and (where the CPU has it) bf16 products; the fingerprint is the f32 one;
 * the weights take about half the memory; saving and merging keep the
 * base's dtype exactly.
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
#include "libcore/nn/cpu/gemm_bf16.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/model.h"
#include "libcore/train/checkpoint.h"
#include "libcore/train/engine.h"
#include "tests/unit/model_testlib.h"

/* A fresh temporary directory (removed by rm_dir). */
static char *tmp_dir(void)
{
	char *d = xstrdup("/tmp/lbdpo_s16_XXXXXX");
	cr_assert(mkdtemp(d));
	return d;
}

static void rm_dir(char *d)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", d);
	cr_expect_eq(system(cmd), 0);
	free(d);
}

/* m's weights rounded to bf16 in d16 (a bf16 file) and the same values as
 * f32 in d32. */
static void write_pair(model *m, char **d16, char **d32)
{
	*d16 = tmp_dir();
	model_save_hf_dtype(m, *d16, ST_BF16);
	model *w = model_load(*d16);
	cr_assert_eq(model_store16(w), 0, "model_load keeps f32 storage");
	*d32 = tmp_dir();
	model_save_hf_dtype(w, *d32, ST_F32);
	model_free(w);
}

/* The fixture's base model (tests/fixtures/lora/NAME/ref.json "base"). */
static model *fixture_base(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "tests/fixtures/lora/%s/ref.json", name);
	json_error_t je;
	json_t *ref = json_load_file(path, 0, &je);
	cr_assert(ref, "%s: %s", path, je.text);
	model *m = model_load(json_string_value(json_object_get(ref, "base")));
	json_decref(ref);
	return m;
}

enum { NSEQ = 3 };

typedef struct {
	model_seq seqs[NSEQ];
	model_seq_grad g[NSEQ];
	float *dh;
} tbatch;

static void tbatch_make(tbatch *b, int V, int C, uint64_t seed)
{
	uint64_t s = seed;
	memset(b, 0, sizeof *b);
	b->dh = xmalloc(sizeof(float) * C);
	for (int c = 0; c < C; c++)
		b->dh[c] = (float)(0.1 * tl_normal(&s));
	for (int i = 0; i < NSEQ; i++) {
		model_seq *q = &b->seqs[i];
		q->n_prompt = 3 + i;
		q->prompt = tl_tokens(&s, q->n_prompt, V);
		q->n_comp = i == 2 ? 1 : 2;
		for (int k = 0; k < q->n_comp; k++) {
			q->n_comp_tok[k] = 2 + k + i;
			q->comp[k] = tl_tokens(&s, q->n_comp_tok[k], V);
		}
		b->g[i].d_logp[0] = 0.7 - 0.2 * i;
		b->g[i].d_logp[1] = i == 2 ? 0 : -0.5;
		b->g[i].d_prompt_mean_logp = 0.3;
		b->g[i].d_h_last = i == 1 ? b->dh : NULL;
	}
}

static void tbatch_free(tbatch *b)
{
	for (int i = 0; i < NSEQ; i++) {
		free((void *)b->seqs[i].prompt);
		for (int k = 0; k < b->seqs[i].n_comp; k++)
			free((void *)b->seqs[i].comp[k]);
	}
	free(b->dh);
}

/* Everything one train-mode forward + backward gives, as bytes. */
typedef struct {
	double d[NSEQ * 4];
	float *f; /* per-token log-probs, h_last, h_mean, then the gradient */
	size_t nf;
} result;

static void run(model *m, const tbatch *b, int gc, result *r)
{
	const int C = model_cfg(m)->dim;
	model_scores sc[NSEQ];
	memset(sc, 0, sizeof sc);
	size_t nt = 0;
	for (int i = 0; i < NSEQ; i++)
		nt += b->seqs[i].n_comp_tok[0] + (b->seqs[i].n_comp == 2 ? b->seqs[i].n_comp_tok[1] : 0);
	const size_t ng = model_n_trainable(m);
	r->nf = nt + 2 * (size_t)NSEQ * C + ng;
	r->f = xcalloc(r->nf, sizeof(float));
	float *p = r->f;
	for (int i = 0; i < NSEQ; i++) {
		for (int k = 0; k < b->seqs[i].n_comp; k++)
			sc[i].tok_logp[k] = p, p += b->seqs[i].n_comp_tok[k];
		sc[i].h_last = p, p += C;
		sc[i].h_mean = p, p += C;
	}
	model_ws *ws = model_ws_new(m);
	model_ws_set_checkpointing(ws, gc);
	model_forward(m, ws, b->seqs, NSEQ, sc, 1);
	model_backward(m, ws, b->g, p);
	model_ws_free(ws);
	for (int i = 0; i < NSEQ; i++) {
		r->d[4 * i] = sc[i].logp[0], r->d[4 * i + 1] = sc[i].logp[1];
		r->d[4 * i + 2] = sc[i].prompt_mean_logp, r->d[4 * i + 3] = sc[i].prompt_entropy;
	}
}

/* Decoding: the logits of a prompt fed at once, then two tokens one by one. */
static float *decode(model *m, const tbatch *b)
{
	const int V = model_cfg(m)->vocab_size;
	float *lg = xmalloc(sizeof(float) * 3 * V);
	model_kv *kv = model_kv_new(m, 32);
	model_kv_feed(m, kv, b->seqs[0].prompt, b->seqs[0].n_prompt, lg);
	model_kv_feed(m, kv, b->seqs[0].comp[0], 1, lg + V);
	model_kv_feed(m, kv, b->seqs[0].comp[0] + 1, 1, lg + 2 * V);
	model_kv_free(kv);
	return lg;
}

/* Random adapter numbers (B != 0: the adapter changes the function). */
static lora *random_adapter(model *m, uint64_t seed)
{
	lora *lo = lora_new(m, &(lora_opts){.r = 4}, seed);
	uint64_t s = seed + 1;
	float *p = lora_params(lo);
	for (size_t k = 0; k < lora_n_params(lo); k++)
		p[k] = (float)(0.2 * tl_normal(&s));
	lora_sync(lo, 1);
	model_set_lora(m, lo);
	return lo;
}

/* The f32 and the 16-bit storage of d16 give the same bytes. */
static void check_same_as(const char *what, const char *d16, int dt)
{
	model *a = model_load(d16), *b = model_load_frozen(d16);
	cr_assert_eq(model_store16(a), 0);
	cr_assert_eq(model_store16(b), dt, "%s: a 16-bit file stays 16-bit when frozen", what);
	const model_config *c = model_cfg(a);
	char fa[65], fb[65];
	model_fingerprint(a, fa);
	model_fingerprint(b, fb);
	cr_expect_str_eq(fa, fb, "%s: the fingerprint is the f32 storage's", what);
	/* half the memory: 2 bytes a weight, plus the staging */
	const size_t n = model_n_params(a);
	cr_expect_eq(model_weight_bytes(a), 4 * n);
	cr_expect(model_weight_bytes(b) >= 2 * n && model_weight_bytes(b) < 4 * n, "%s: %zu bytes for %zu weights",
		  what, model_weight_bytes(b), n);
	tbatch bt;
	tbatch_make(&bt, c->vocab_size, c->dim, 17);
	float *la = decode(a, &bt), *lb = decode(b, &bt);
	cr_expect_eq(memcmp(la, lb, sizeof(float) * 3 * c->vocab_size), 0, "%s: decoding logits differ", what);
	free(la), free(lb);
	lora *lo_a = random_adapter(a, 5), *lo_b = random_adapter(b, 5);
	const int nbf = gemm_bf16_ok() ? 2 : 1;
	for (int bf = 0; bf < nbf; bf++)
		for (int gc = 0; gc < 2; gc++) {
			gemm_bf16_set(bf);
			result ra, rb;
			run(a, &bt, gc, &ra);
			run(b, &bt, gc, &rb);
			cr_expect_eq(ra.nf, rb.nf);
			cr_expect_eq(memcmp(ra.d, rb.d, sizeof ra.d), 0,
				     "%s (bf16 %d, gc %d): log-probs differ: %.17g vs %.17g", what, bf, gc, ra.d[0],
				     rb.d[0]);
			cr_expect_eq(memcmp(ra.f, rb.f, sizeof(float) * ra.nf), 0,
				     "%s (bf16 %d, gc %d): per-token log-probs, states or LoRA gradients differ", what,
				     bf, gc);
			double gs = 0;
			for (size_t k = ra.nf - lora_n_params(lo_a); k < ra.nf; k++)
				gs += fabs(ra.f[k]);
			cr_expect_gt(gs, 0, "%s: a zero gradient (a weak test)", what);
			free(ra.f), free(rb.f);
		}
	gemm_bf16_set(0);
	/* an adapter that changes the function changes the fingerprint both ways alike */
	model_fingerprint(a, fa);
	model_fingerprint(b, fb);
	cr_expect_str_eq(fa, fb);
	model_free(a), model_free(b);
	lora_free(lo_a), lora_free(lo_b);
	tbatch_free(&bt);
}

static void check_same(const char *what, const char *d16) { check_same_as(what, d16, ST_BF16); }

/* Files transformers wrote: bf16, and f16 in two shards. */
Test(store16, hf_bf16_and_sharded_f16)
{
	check_same("llama_bf16", "tests/fixtures/hf/llama_bf16");
	check_same_as("llama_f16_sharded", "tests/fixtures/hf/llama_f16_sharded", ST_F16);
}

static void check_fixture(const char *name)
{
	model *m = fixture_base(name);
	char *d16, *d32;
	write_pair(m, &d16, &d32);
	check_same(name, d16);
	model_free(m);
	rm_dir(d16), rm_dir(d32);
}

Test(store16, llama_untied_gqa) { check_fixture("llama"); }
Test(store16, qwen2_bias_tied) { check_fixture("qwen2"); }
Test(store16, gemma2) { check_fixture("gemma2"); }
Test(store16, gpt2_conv1d) { check_fixture("gpt2"); }
Test(store16, neox) { check_fixture("neox"); }
Test(store16, phi3) { check_fixture("phi3"); }

Test(store16, llama_tied_random)
{
	model_config c = tl_cfg(ARCH_LLAMA, 2, 0, 1);
	model *m = tl_model(&c, 3);
	char *d16, *d32;
	write_pair(m, &d16, &d32);
	check_same("llama tied", d16);
	model_free(m);
	rm_dir(d16), rm_dir(d32);
}

/* The weights of a model of some size take 2 bytes each plus one block's
 * (or the head's) f32 staging: at most 60% of f32 storage here. */
Test(store16, memory_is_about_half)
{
	model_config c = tl_cfg(ARCH_LLAMA, 4, 0, 0);
	c.dim = 256, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 32, c.hidden_dim = 704;
	c.n_layers = 12, c.vocab_size = 2048, c.max_seq_len = 64;
	model *m = model_new16(&c, ST_BF16), *f = model_new(&c);
	const size_t n = model_n_params(m);
	cr_expect_eq(model_weight_bytes(f), 4 * n);
	cr_expect(model_weight_bytes(m) <= 0.6 * 4 * n, "%zu bytes for %zu weights (f32: %zu)", model_weight_bytes(m),
		  n, 4 * n);
	cr_log_info("16-bit storage: %zu bytes for %zu weights, f32 storage %zu (%.1f%%)", model_weight_bytes(m), n,
		    4 * n, 100.0 * model_weight_bytes(m) / (4.0 * n));
	model_free(m), model_free(f);
}

/* A reward model (score head) scores alike in both storages. */
Test(store16, reward_model)
{
	model_config c = tl_cfg(ARCH_LLAMA, 4, 1, 0);
	model *lm = tl_model(&c, 8);
	model *rm = model_reward_from(lm, 9, 0.3f);
	char *d16, *d32;
	write_pair(rm, &d16, &d32);
	model *a = model_load(d16), *b = model_load_frozen(d16);
	cr_assert_eq(model_store16(b), ST_BF16);
	tbatch bt;
	tbatch_make(&bt, c.vocab_size, c.dim, 4);
	model_scores sa[NSEQ], sb[NSEQ];
	memset(sa, 0, sizeof sa), memset(sb, 0, sizeof sb);
	model_ws *wa = model_ws_new(a), *wb = model_ws_new(b);
	model_forward(a, wa, bt.seqs, NSEQ, sa, 0);
	model_forward(b, wb, bt.seqs, NSEQ, sb, 0);
	for (int i = 0; i < NSEQ; i++)
		cr_expect(sa[i].reward[0] == sb[i].reward[0] && sa[i].reward[1] == sb[i].reward[1] &&
				  sa[i].reward[0] != 0,
			  "seq %d: reward %.9g vs %.9g", i, sa[i].reward[0], sb[i].reward[0]);
	model_ws_free(wa), model_ws_free(wb);
	model_free(a), model_free(b), model_free(lm), model_free(rm);
	tbatch_free(&bt);
	rm_dir(d16), rm_dir(d32);
}

/* Files not all in one 16-bit dtype load in f32 (nothing is rounded), and
 * model_load never keeps 16 bits. */
Test(store16, f32_file_stays_f32)
{
	model *m = fixture_base("gpt2");
	char *d = tmp_dir();
	model_save_hf_dtype(m, d, ST_F32);
	model *b = model_load_frozen(d);
	cr_expect_eq(model_store16(b), 0);
	model_free(b);
	model_save_hf_dtype(m, d, ST_F16);
	b = model_load_frozen(d);
	cr_expect_eq(model_store16(b), ST_F16, "an f16 file stays f16");
	model_free(b);
	model_free(m);
	rm_dir(d);
}

/* Saving a 16-bit model writes its bits as they are (or widened exactly to
 * f32), and a LoRA merge on it equals the f32 merge saved in bf16. */
static void file_bytes(const char *dir, char **buf, size_t *n)
{
	char *p = path_join(dir, "model.safetensors");
	const void *map = map_file(p, n);
	*buf = xmalloc(*n);
	memcpy(*buf, map, *n);
	unmap_file(map, *n);
	free(p);
}

Test(store16, save_and_merge_in_the_base_dtype)
{
	const char *names[] = {"neox", "gpt2", "llama"};
	for (int q = 0; q < 3; q++) {
		model *m = fixture_base(names[q]);
		char *d16, *d32;
		write_pair(m, &d16, &d32);
		model *a = model_load(d16), *b = model_load_frozen(d16);
		char *o1 = tmp_dir(), *o2 = tmp_dir(), *x, *y;
		size_t nx, ny;
		for (int dt = 0; dt < 3; dt++) {
			model_save_hf_dtype(a, o1, dt);
			model_save_hf_dtype(b, o2, dt);
			file_bytes(o1, &x, &nx), file_bytes(o2, &y, &ny);
			cr_expect(nx == ny && !memcmp(x, y, nx), "%s: saved as dtype %d: the files differ", names[q],
				  dt);
			free(x), free(y);
		}
		lora *la = random_adapter(a, 3), *lb = random_adapter(b, 3);
		model_set_lora(a, NULL), model_set_lora(b, NULL);
		lora_merge(la, a);
		lora_merge(lb, b);
		model_save_hf_dtype(a, o1, ST_BF16);
		model_save_hf_dtype(b, o2, -1);
		file_bytes(o1, &x, &nx), file_bytes(o2, &y, &ny);
		cr_expect(nx == ny && !memcmp(x, y, nx), "%s: the merged model differs", names[q]);
		free(x), free(y);
		model_free(a), model_free(b), model_free(m);
		lora_free(la), lora_free(lb);
		rm_dir(o1), rm_dir(o2), rm_dir(d16), rm_dir(d32);
	}
}

/* A LoRA DPO step through the training engine (as lbdpo-step runs it):
 * on the bf16 file (16-bit storage) and on the same values in f32, the
 * metrics and the adapter after the step are the same bits. */
static void dpo_step(const char *base, const char *adapter, int store, train_metrics *mt, float **ad, size_t *n)
{
	ckpt_opts co;
	ckpt_opts_default(&co);
	co.adapter = adapter;
	ckpt *c = ckpt_load(base, &co);
	cr_assert_not_null(c->lo);
	cr_assert_eq(model_store16(c->m), store, "%s: a LoRA base in the file's 16 bits", base);
	const model_config *cfg = model_cfg(c->m);
	uint64_t s = 77;
	enum { NP = 4 };
	pref_rec recs[NP];
	memset(recs, 0, sizeof recs);
	for (int i = 0; i < NP; i++) {
		pref_rec *r = &recs[i];
		r->np = 3 + i, r->nc = 2 + i, r->nr = 4;
		r->prompt = tl_tokens(&s, r->np, cfg->vocab_size);
		r->chosen = tl_tokens(&s, r->nc, cfg->vocab_size);
		r->rejected = tl_tokens(&s, r->nr, cfg->vocab_size);
		r->has_ref = 1, r->ref_c = -10 - i, r->ref_r = -11 + i;
		r->group = -1;
		r->index = (uint64_t)i + 1;
	}
	pref_set data = {.r = recs, .n = NP, .name = "test"};
	train_opts o;
	train_opts_default(&o);
	o.init = base;
	o.batch_size = NP;
	o.lr = 1e-2;
	o.total_steps = 2;
	o.loss.kind = LOSS_DPO;
	o.loss.beta = 0.5;
	o.grad_ckpt = 1;
	train_engine *e = train_engine_new(c, &data, &o);
	cr_assert_eq(train_step(e, &mt[0]), 0);
	cr_assert_eq(train_step(e, &mt[1]), 0);
	model_sync(c->m, 0);
	*n = lora_n_params(c->lo);
	*ad = xmalloc(sizeof(float) * *n);
	memcpy(*ad, lora_params(c->lo), sizeof(float) * *n);
	train_engine_free(e);
	ckpt_free(c);
	for (int i = 0; i < NP; i++)
		free(recs[i].prompt), free(recs[i].chosen), free(recs[i].rejected);
}

Test(store16, lora_dpo_steps_bit_identical)
{
	const char *names[] = {"qwen2", "gemma2", "neox"};
	for (int q = 0; q < 3; q++) {
		model *m = fixture_base(names[q]);
		char *d16, *d32, ad[128];
		write_pair(m, &d16, &d32);
		snprintf(ad, sizeof ad, "tests/fixtures/lora/%s", names[q]);
		train_metrics m16[2], m32[2];
		float *a16, *a32;
		size_t n16, n32;
		dpo_step(d16, ad, ST_BF16, m16, &a16, &n16);
		dpo_step(d32, ad, 0, m32, &a32, &n32);
		cr_expect(n16 == n32 && !memcmp(a16, a32, sizeof(float) * n16), "%s: adapters differ after 2 steps",
			  names[q]);
		for (int k = 0; k < 2; k++)
			cr_expect(m16[k].loss == m32[k].loss && m16[k].grad_norm == m32[k].grad_norm &&
					  m16[k].logps_chosen == m32[k].logps_chosen,
				  "%s step %d: loss %.17g vs %.17g", names[q], k, m16[k].loss, m32[k].loss);
		free(a16), free(a32);
		model_free(m);
		rm_dir(d16), rm_dir(d32);
	}
}
