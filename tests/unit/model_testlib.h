/* model_testlib.h — helpers shared by tests/unit/test_model_*.c (header-only,
 * not a test binary of its own). */
#ifndef LBDPO_MODEL_TESTLIB_H
#define LBDPO_MODEL_TESTLIB_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/nn/model.h"
#include "base/rng.h"
#include "base/util.h"

/* Test data from base/rng's splitmix64; tl_normal's u1 is its own (in
 * (0, 1) by 1e-300, not rng_polar's (0, 1]), kept so the data stay the same. */
static inline double tl_unif(uint64_t *s) { return rng_unif(s); }
static inline double tl_normal(uint64_t *s)
{
	double u1 = tl_unif(s) + 1e-300, u2 = tl_unif(s);
	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static inline model_config tl_cfg(model_arch arch, int kv_heads, int qkv_bias, int tied)
{
	model_config c = {0};
	c.arch = arch;
	c.dim = 16;
	c.n_heads = 4;
	c.n_kv_heads = kv_heads;
	c.head_dim = 4;
	c.hidden_dim = arch == ARCH_GPT2 ? 32 : 24;
	c.n_layers = 2;
	c.vocab_size = 23;
	c.max_seq_len = 32;
	c.rope_theta = 10000.0f;
	c.norm_eps = 1e-5f;
	c.tied_embeddings = tied;
	c.qkv_bias = qkv_bias;
	c.bos_id = c.eos_id = -1;
	return c;
}

/* Random model whose norm gains/biases are not exactly 1/0 either. */
static inline model *tl_model(const model_config *c, uint64_t seed)
{
	model *m = model_new(c);
	model_init_random(m, seed, 0.3f);
	model *n = model_new(c);
	model_init_random(n, seed + 1000, 0.1f);
	float *p = model_params(m);
	const float *q = model_params(n);
	for (size_t i = 0; i < model_n_params(m); i++)
		p[i] += q[i];
	model_free(n);
	return m;
}

static inline uint32_t *tl_tokens(uint64_t *s, int n, int V)
{
	uint32_t *t = xmalloc(sizeof(uint32_t) * n);
	for (int i = 0; i < n; i++)
		t[i] = (uint32_t)(rng_next(s) % (uint64_t)V);
	return t;
}

/* Offset of a named tensor (aborts the test binary if absent). */
static inline size_t tl_find(const model *m, const char *name)
{
	for (int i = 0; i < model_n_tensors(m); i++)
		if (!strcmp(model_tensor_at(m, i)->name, name))
			return model_tensor_at(m, i)->offset;
	fprintf(stderr, "no tensor %s\n", name);
	abort();
}

/* Test-only llama2.c reader (legacy format): header of 7 int32, then
 * token_embedding, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L],
 * w1[L], w2[L], w3[L], rms_final, freq_cis (skipped), wcls if vocab < 0.
 * Written from the format description; modelio owns the real loader. */
static inline model *tl_load_llama2c(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	int32_t h[7];
	if (fread(h, sizeof h, 1, f) != 1) {
		fclose(f);
		return NULL;
	}
	model_config c = {0};
	c.arch = ARCH_LLAMA;
	c.dim = h[0];
	c.hidden_dim = h[1];
	c.n_layers = h[2];
	c.n_heads = h[3];
	c.n_kv_heads = h[4];
	c.vocab_size = h[5] < 0 ? -h[5] : h[5];
	c.tied_embeddings = h[5] > 0;
	c.max_seq_len = h[6];
	c.head_dim = h[0] / h[3];
	c.rope_theta = 10000.0f;
	c.norm_eps = 1e-5f;
	c.bos_id = 1;
	c.eos_id = 2;
	model *m = model_new(&c);
	const int C = c.dim, F = c.hidden_dim, L = c.n_layers, hd = c.head_dim;
	const int V = c.vocab_size, H = c.n_heads, KV = c.n_kv_heads;
	char nm[128];
#define TP(fmt, l) (snprintf(nm, sizeof nm, fmt, l), tl_find(m, nm))
	float *P = model_params(m);
	int ok = 1;
#define RD(ptr, n) ok = ok && fread((ptr), sizeof(float), (size_t)(n), f) == (size_t)(n)
	RD(P + tl_find(m, "model.embed_tokens.weight"), (size_t)V * C);
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.input_layernorm.weight", l), C);
	for (int l = 0; l < L; l++) {
		float *w = P + TP("model.layers.%d.self_attn.q_proj.weight", l);
		RD(w, (size_t)H * hd * C);
		if (ok)
			model_permute_llama2c_qk(w, H, hd, C);
	}
	for (int l = 0; l < L; l++) {
		float *w = P + TP("model.layers.%d.self_attn.k_proj.weight", l);
		RD(w, (size_t)KV * hd * C);
		if (ok)
			model_permute_llama2c_qk(w, KV, hd, C);
	}
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.self_attn.v_proj.weight", l), (size_t)KV * hd * C);
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.self_attn.o_proj.weight", l), (size_t)C * H * hd);
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.post_attention_layernorm.weight", l), C);
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.mlp.gate_proj.weight", l), (size_t)F * C);
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.mlp.down_proj.weight", l), (size_t)C * F);
	for (int l = 0; l < L; l++)
		RD(P + TP("model.layers.%d.mlp.up_proj.weight", l), (size_t)F * C);
	RD(P + tl_find(m, "model.norm.weight"), C);
	if (ok && fseek(f, (long)sizeof(float) * c.max_seq_len * hd, SEEK_CUR) != 0)
		ok = 0;
	if (!c.tied_embeddings)
		RD(P + tl_find(m, "lm_head.weight"), (size_t)V * C);
#undef RD
#undef TP
	fclose(f);
	if (!ok) {
		model_free(m);
		return NULL;
	}
	return m;
}

#endif
