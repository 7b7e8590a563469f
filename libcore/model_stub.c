/* model_stub.c — TEMPORARY weak stand-ins for the parameter-table part of
 * model.c (model_new, model_tensor_at, ...), so that the loaders, savers and
 * lbdpo-init build and can be tested on the modelio branch before model.c
 * lands. Every definition is weak: the real ones in model.c win.
 * DELETE THIS FILE when model.c is merged.
 *
 * The tensor table follows the Hugging Face state-dict names and shapes
 * (LlamaForCausalLM / Qwen2ForCausalLM / GPT2LMHeadModel, gpt2 Conv1D weights
 * stored [in, out]); lm_head only when the embedding is not tied.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

#define WEAK __attribute__((weak))

struct model {
	model_config cfg;
	float *params;
	size_t n_params;
	model_tensor *t;
	int n_t, cap_t;
};

static void add(struct model *m, const char *name, int64_t a, int64_t b)
{
	if (m->n_t == m->cap_t) {
		m->cap_t = m->cap_t ? 2 * m->cap_t : 64;
		m->t = xrealloc(m->t, (size_t)m->cap_t * sizeof *m->t);
	}
	model_tensor *t = &m->t[m->n_t++];
	t->name = xstrdup(name);
	t->ndim = b ? 2 : 1;
	t->shape[0] = a;
	t->shape[1] = b;
	t->numel = (size_t)a * (size_t)(b ? b : 1);
	t->offset = m->n_params;
	m->n_params += t->numel;
}

WEAK model *model_new(const model_config *cfg)
{
	struct model *m = xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	char n[160];
	const int64_t C = cfg->dim, H = cfg->hidden_dim, V = cfg->vocab_size, hd = cfg->head_dim;
	const int64_t q = cfg->n_heads * hd, kv = cfg->n_kv_heads * hd;
	if (cfg->arch == ARCH_LLAMA) {
		add(m, "model.embed_tokens.weight", V, C);
		for (int l = 0; l < cfg->n_layers; l++) {
#define L(s, a, b) (snprintf(n, sizeof n, "model.layers.%d." s, l), add(m, n, a, b))
			L("input_layernorm.weight", C, 0);
			L("self_attn.q_proj.weight", q, C);
			if (cfg->qkv_bias)
				L("self_attn.q_proj.bias", q, 0);
			L("self_attn.k_proj.weight", kv, C);
			if (cfg->qkv_bias)
				L("self_attn.k_proj.bias", kv, 0);
			L("self_attn.v_proj.weight", kv, C);
			if (cfg->qkv_bias)
				L("self_attn.v_proj.bias", kv, 0);
			L("self_attn.o_proj.weight", C, q);
			L("post_attention_layernorm.weight", C, 0);
			L("mlp.gate_proj.weight", H, C);
			L("mlp.up_proj.weight", H, C);
			L("mlp.down_proj.weight", C, H);
#undef L
		}
		add(m, "model.norm.weight", C, 0);
	} else {
		add(m, "transformer.wte.weight", V, C);
		add(m, "transformer.wpe.weight", cfg->max_seq_len, C);
		for (int l = 0; l < cfg->n_layers; l++) {
#define L(s, a, b) (snprintf(n, sizeof n, "transformer.h.%d." s, l), add(m, n, a, b))
			L("ln_1.weight", C, 0);
			L("ln_1.bias", C, 0);
			L("attn.c_attn.weight", C, 3 * C);
			L("attn.c_attn.bias", 3 * C, 0);
			L("attn.c_proj.weight", C, C);
			L("attn.c_proj.bias", C, 0);
			L("ln_2.weight", C, 0);
			L("ln_2.bias", C, 0);
			L("mlp.c_fc.weight", C, H);
			L("mlp.c_fc.bias", H, 0);
			L("mlp.c_proj.weight", H, C);
			L("mlp.c_proj.bias", C, 0);
#undef L
		}
		add(m, "transformer.ln_f.weight", C, 0);
		add(m, "transformer.ln_f.bias", C, 0);
	}
	if (!cfg->tied_embeddings)
		add(m, "lm_head.weight", V, C);
	m->params = xcalloc(m->n_params ? m->n_params : 1, sizeof(float));
	return m;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

WEAK void model_init_random(model *m, uint64_t seed, float std)
{
	uint64_t s = seed;
	for (int i = 0; i < m->n_t; i++) {
		model_tensor *t = &m->t[i];
		float *p = m->params + t->offset;
		int norm = strstr(t->name, "norm") || strstr(t->name, "ln_");
		for (size_t j = 0; j < t->numel; j++) {
			if (t->ndim == 1) {
				p[j] = norm && strstr(t->name, ".weight") ? 1.0f : 0.0f;
				continue;
			}
			/* Box-Muller from two uniforms in (0, 1]. */
			double u1 = ((splitmix(&s) >> 11) + 1.0) / 9007199254740992.0;
			double u2 = (splitmix(&s) >> 11) / 9007199254740992.0;
			p[j] = (float)(std * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
		}
	}
}

WEAK void model_free(model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n_t; i++)
		free((char *)m->t[i].name);
	free(m->t);
	free(m->params);
	free(m);
}

WEAK const model_config *model_cfg(const model *m) { return &m->cfg; }
WEAK float *model_params(model *m) { return m->params; }
WEAK size_t model_n_params(const model *m) { return m->n_params; }
WEAK int model_n_tensors(const model *m) { return m->n_t; }
WEAK const model_tensor *model_tensor_at(const model *m, int i) { return &m->t[i]; }
WEAK void model_fingerprint(const model *m, char out[65]) { sha256_hex(m->params, m->n_params * sizeof(float), out); }
