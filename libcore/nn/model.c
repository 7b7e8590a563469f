/* model.c — parameters, packed forward/backward with prefix sharing, and
 * KV-cache decoding of the transformer in model.h. model_load/model_save_hf
 * live in formats/ (they use only the public API).
 *
 * Packed layout: sequences are concatenated along the token axis; a
 * sequence is [prompt (P) | comp0 (n0) | comp1 (n1)]. Positions: prompt
 * token i at i, completion token j at P + j (both completions continue the
 * prompt). Query t attends to keys [ka,kb) ∪ [kc,t]: prompt tokens see the
 * prompt causally ([kc = seq start, t]), completion tokens see the whole
 * prompt ([seq start, seq start + P)) and their own completion causally.
 *
 * Which logit row predicts what (row = the token position that predicts):
 *   prompt row i < P−1   → prompt[i+1]   (prompt mean log-prob, entropy)
 *   prompt row P−1       → comp0[0] and comp1[0] (one row, two targets)
 *   comp k row j < n−1   → comp_k[j+1]
 *   comp k row n−1       → nothing
 */
#include "libcore/nn/model.h"
#include "formats/hfconfig.h"
#include "formats/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/nn/backend.h"
#include "libcore/nn/lora.h"
#include "libcore/nn/rope.h"
#include "base/rng.h"
#include "base/util.h"

/* Offsets (floats from params) of one block's tensors; (size_t)-1 = absent. */
typedef struct {
	size_t ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b;
	size_t qn_w, kn_w;   /* per-head q/k RMSNorm [head_dim] (qk_norm) */
	size_t pn1_w, pn2_w; /* gemma: norms of the attention and MLP outputs */
} block_off;

#define NONE ((size_t)-1)
#define STAGED_HEAD (-2) /* model.staged: the stage holds the language-model head */

struct model {
	model_config cfg;
	const lb_backend *be;
	float *params;  /* host copy: loaders, savers, fingerprints */
	float *dparams; /* the backend's copy (== params on the CPU) */
	size_t n_params;
	model_tensor *tensors;
	int n_tensors, cap_tensors;
	block_off *blk;
	size_t wte, wpe, lnf_w, lnf_b, lm_head; /* lm_head == wte when tied */
	size_t score;                           /* score.weight [1,C] of a reward model, else NONE */
	int qkv_dim;                            /* (H + 2KV)·hd */
	int fc_dim;                             /* llama 2F (gate|up), gpt2 F */
	lora *lora;                             /* attached adapter (model_set_lora): the base is frozen */
	float *sink;                            /* [2·max(C, hd)] device: frozen norms' unread weight gradients */
	/* 16-bit storage (model_new16, model_load_frozen: frozen weights): the
	 * weights are p16 [n_params] f16/bf16 bits of the f32 layout, params is
	 * NULL. On a unified backend P_ reads block l from stage, where
	 * stage_block widens it right before its forward or backward (and
	 * stage_head the head before its products); the small tensors outside
	 * the blocks stay widened in wide[]; the embedding widens the rows of
	 * the tokens only. Elsewhere dparams holds the widened f32 weights
	 * (model_sync). */
	uint16_t *p16;
	int st16;       /* ST_F16 or ST_BF16; 0: f32 storage */
	size_t *bstart; /* [L+1] block l's first offset; bstart[L]: the first after the blocks */
	float *stage;   /* [the largest of the blocks and the head] */
	int staged;     /* the block in stage, STAGED_HEAD, -1: none */
	struct {
		size_t off, n;
		float *w;
	} wide[4];
	int n_wide;
	size_t stage_n;
};

/* ------------------------------------------------------------ parameters */

static size_t add_tensor(model *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
	if (m->n_tensors == m->cap_tensors) {
		m->cap_tensors = m->cap_tensors ? 2 * m->cap_tensors : 64;
		m->tensors = xrealloc(m->tensors, sizeof(model_tensor) * m->cap_tensors);
	}
	model_tensor *t = &m->tensors[m->n_tensors++];
	t->name = xstrdup(name);
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = ndim == 2 ? d1 : 0;
	t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
	t->offset = m->n_params;
	m->n_params += t->numel;
	return t->offset;
}

/* One set of limits for every way a model is made (config.json, llama2.c
 * header, lbdpo-init, the tests): formats/hfconfig.c's hfconfig_check. */
static void check_cfg(const model_config *c)
{
	char err[256];
	if (hfconfig_check(c, err, sizeof err))
		die("model: %s", err);
}

/* Widen n f16/bf16 values (st: ST_F16, ST_BF16) to f32: exact. */
static void widen(float *dst, const uint16_t *src, size_t n, int st)
{
	if (st == ST_BF16) {
#pragma omp parallel for schedule(static) if (n >= (1 << 18))
		for (size_t i = 0; i < n; i++) {
			const uint32_t u = (uint32_t)src[i] << 16;
			memcpy(dst + i, &u, 4);
		}
	} else {
#pragma omp parallel for schedule(static) if (n >= (1 << 18))
		for (size_t i = 0; i < n; i++)
			dst[i] = st_f16_to_f32(src[i]);
	}
}

static model *model_make(const model_config *cfg, int st16)
{
	check_cfg(cfg);
	model *m = xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	const model_config *c = &m->cfg;
	const int C = c->dim, F = c->hidden_dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
	const int V = c->vocab_size, L = c->n_layers;
	char nm[160];
	m->blk = xcalloc(L, sizeof(block_off));
	m->qkv_dim = (H + 2 * KV) * hd;
	m->wpe = m->lnf_b = NONE;
	if (c->arch == ARCH_LLAMA) {
		m->fc_dim = 2 * F;
		m->wte = add_tensor(m, "model.embed_tokens.weight", 2, V, C);
		for (int l = 0; l < L; l++) {
			block_off *b = &m->blk[l];
			b->ln1_b = b->ln2_b = b->o_b = b->fc_b = b->proj_b = b->qkv_b = b->qn_w = b->kn_w = NONE;
			b->pn1_w = b->pn2_w = NONE;
#define T1(field, suffix, n)                                                                                           \
	(snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), b->field = add_tensor(m, nm, 1, n, 0))
#define T2(suffix, r, cc) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), add_tensor(m, nm, 2, r, cc))
			T1(ln1_w, "input_layernorm.weight", C);
			/* q, k, v (and gate, up) adjacent: one sgemm computes them all. */
			b->qkv_w = T2("self_attn.q_proj.weight", H * hd, C);
			T2("self_attn.k_proj.weight", KV * hd, C);
			T2("self_attn.v_proj.weight", KV * hd, C);
			if (c->qkv_bias) {
				T1(qkv_b, "self_attn.q_proj.bias", H * hd);
				snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.bias", l);
				add_tensor(m, nm, 1, KV * hd, 0);
				snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.bias", l);
				add_tensor(m, nm, 1, KV * hd, 0);
			}
			b->o_w = T2("self_attn.o_proj.weight", C, H * hd);
			if (c->qk_norm) {
				T1(qn_w, "self_attn.q_norm.weight", hd);
				T1(kn_w, "self_attn.k_norm.weight", hd);
			}
			if (c->gemma) { /* post_attention_layernorm is the attention output's norm here */
				T1(pn1_w, "post_attention_layernorm.weight", C);
				T1(ln2_w, "pre_feedforward_layernorm.weight", C);
				T1(pn2_w, "post_feedforward_layernorm.weight", C);
			} else {
				T1(ln2_w, "post_attention_layernorm.weight", C);
			}
			b->fc_w = T2("mlp.gate_proj.weight", F, C);
			T2("mlp.up_proj.weight", F, C);
			b->proj_w = T2("mlp.down_proj.weight", C, F);
#undef T1
#undef T2
		}
		m->lnf_w = add_tensor(m, "model.norm.weight", 1, C, 0);
		m->lm_head = c->tied_embeddings || c->score_labels ? m->wte : add_tensor(m, "lm_head.weight", 2, V, C);
	} else if (c->arch == ARCH_NEOX) {
		m->fc_dim = F;
		m->wte = add_tensor(m, "gpt_neox.embed_in.weight", 2, V, C);
		for (int l = 0; l < L; l++) {
			block_off *b = &m->blk[l];
			b->qn_w = b->kn_w = b->pn1_w = b->pn2_w = NONE;
#define N(field, suffix, nd, r, cc)                                                                                    \
	(snprintf(nm, sizeof nm, "gpt_neox.layers.%d.%s", l, suffix), b->field = add_tensor(m, nm, nd, r, cc))
			N(ln1_w, "input_layernorm.weight", 1, C, 0);
			N(ln1_b, "input_layernorm.bias", 1, C, 0);
			N(qkv_w, "attention.query_key_value.weight", 2, 3 * H * hd, C);
			N(qkv_b, "attention.query_key_value.bias", 1, 3 * H * hd, 0);
			N(o_w, "attention.dense.weight", 2, C, H * hd);
			N(o_b, "attention.dense.bias", 1, C, 0);
			N(ln2_w, "post_attention_layernorm.weight", 1, C, 0);
			N(ln2_b, "post_attention_layernorm.bias", 1, C, 0);
			N(fc_w, "mlp.dense_h_to_4h.weight", 2, F, C);
			N(fc_b, "mlp.dense_h_to_4h.bias", 1, F, 0);
			N(proj_w, "mlp.dense_4h_to_h.weight", 2, C, F);
			N(proj_b, "mlp.dense_4h_to_h.bias", 1, C, 0);
#undef N
		}
		m->lnf_w = add_tensor(m, "gpt_neox.final_layer_norm.weight", 1, C, 0);
		m->lnf_b = add_tensor(m, "gpt_neox.final_layer_norm.bias", 1, C, 0);
		m->lm_head = c->tied_embeddings || c->score_labels ? m->wte
								   : add_tensor(m, "embed_out.weight", 2, V, C);
	} else {
		m->fc_dim = F;
		m->wte = add_tensor(m, "transformer.wte.weight", 2, V, C);
		m->wpe = add_tensor(m, "transformer.wpe.weight", 2, c->max_seq_len, C);
		for (int l = 0; l < L; l++) {
			block_off *b = &m->blk[l];
			b->qn_w = b->kn_w = b->pn1_w = b->pn2_w = NONE;
#define G(field, suffix, nd, r, cc)                                                                                    \
	(snprintf(nm, sizeof nm, "transformer.h.%d.%s", l, suffix), b->field = add_tensor(m, nm, nd, r, cc))
			G(ln1_w, "ln_1.weight", 1, C, 0);
			G(ln1_b, "ln_1.bias", 1, C, 0);
			G(qkv_w, "attn.c_attn.weight", 2, C, 3 * C);
			G(qkv_b, "attn.c_attn.bias", 1, 3 * C, 0);
			G(o_w, "attn.c_proj.weight", 2, C, C);
			G(o_b, "attn.c_proj.bias", 1, C, 0);
			G(ln2_w, "ln_2.weight", 1, C, 0);
			G(ln2_b, "ln_2.bias", 1, C, 0);
			G(fc_w, "mlp.c_fc.weight", 2, C, F);
			G(fc_b, "mlp.c_fc.bias", 1, F, 0);
			G(proj_w, "mlp.c_proj.weight", 2, F, C);
			G(proj_b, "mlp.c_proj.bias", 1, C, 0);
#undef G
		}
		m->lnf_w = add_tensor(m, "transformer.ln_f.weight", 1, C, 0);
		m->lnf_b = add_tensor(m, "transformer.ln_f.bias", 1, C, 0);
		m->lm_head = m->wte;
	}
	/* a reward model has no language-model head (its forward computes no
	 * logits) but the score head of XxxForSequenceClassification */
	m->score = c->score_labels ? add_tensor(m, "score.weight", 2, 1, C) : NONE;
	if (m->n_params > ((size_t)1 << 36))
		die("model: %zu parameters is more than this build handles", m->n_params);
	m->bstart = xmalloc(sizeof(size_t) * (L + 1));
	for (int l = 0; l < L; l++)
		m->bstart[l] = m->blk[l].ln1_w; /* every family's block starts with its first norm */
	m->bstart[L] = m->lnf_w;
	m->staged = -1;
	m->st16 = st16;
	m->be = backend_current();
	const lb_backend *be = m->be; /* the family's operations exist on this backend */
	if ((c->qk_norm && !(be->headnorm_forward && be->headnorm_backward)) ||
	    (c->arch == ARCH_NEOX &&
	     !(be->rope_part_forward && be->rope_part_backward && be->gelu_exact_forward && be->gelu_exact_backward)) ||
	    (c->gemma && !(be->geglu_forward && be->geglu_backward && be->softcap_forward && be->softcap_backward)))
		die("model: this model family is not implemented on the %s backend", be->name);
	if (!st16) {
		m->params = xcalloc(m->n_params, sizeof(float));
		m->dparams = backend_mirror(m->be, m->params, sizeof(float) * m->n_params);
		return m;
	}
	m->p16 = xcalloc(m->n_params, sizeof(uint16_t));
	if (!be->unified) { /* the device holds the weights widened (model_sync) */
		m->dparams = be->alloc(sizeof(float) * m->n_params);
		be->memset0(m->dparams, sizeof(float) * m->n_params);
		return m;
	}
	size_t big = m->score == NONE ? (size_t)V * C : 0; /* the head, or the largest block */
	for (int l = 0; l < L; l++)
		if (m->bstart[l + 1] - m->bstart[l] > big)
			big = m->bstart[l + 1] - m->bstart[l];
	m->stage_n = big;
	m->stage = xcalloc(big ? big : 1, sizeof(float));
	for (int i = 0; i < m->n_tensors; i++) { /* the small tensors outside the blocks: kept widened */
		const model_tensor *t = &m->tensors[i];
		if ((t->offset >= m->bstart[0] && t->offset < m->bstart[L]) || t->offset == m->wte ||
		    t->offset == m->lm_head)
			continue;
		if (m->n_wide == 4)
			BUG("model: more than 4 tensors outside the blocks");
		m->wide[m->n_wide].off = t->offset;
		m->wide[m->n_wide].n = t->numel;
		m->wide[m->n_wide++].w = xcalloc(t->numel, sizeof(float));
	}
	return m;
}

model *model_new(const model_config *cfg) { return model_make(cfg, 0); }

model *model_new16(const model_config *cfg, int st_dtype)
{
	if (st_dtype != ST_F16 && st_dtype != ST_BF16)
		BUG("model_new16: dtype %d is not F16 or BF16", st_dtype);
	return model_make(cfg, st_dtype);
}

void model_free(model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n_tensors; i++)
		free((char *)m->tensors[i].name);
	free(m->tensors);
	free(m->blk);
	if (m->sink)
		m->be->free(m->sink);
	backend_mirror_free(m->be, m->dparams, m->params);
	free(m->params);
	free(m->p16);
	free(m->bstart);
	free(m->stage);
	for (int i = 0; i < m->n_wide; i++)
		free(m->wide[i].w);
	free(m);
}

static int is_norm_weight(const char *name)
{
	/* norm gains start at 1: RMSNorm/LayerNorm weights */
	size_t n = strlen(name);
	const char *sfx = ".weight";
	if (n < 7 || strcmp(name + n - 7, sfx))
		return 0;
	return strstr(name, "layernorm") || strstr(name, "ln_") || !strcmp(name, "model.norm.weight") ||
	       strstr(name, "_norm.weight");
}

static int is_norm_bias(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && !strcmp(name + n - 5, ".bias") &&
	       (strstr(name, "ln_") || strstr(name, "layernorm") || strstr(name, "layer_norm"));
}

/* Store v as weight i: rounded to nearest even on a 16-bit model. */
static void put(model *m, size_t i, float v)
{
	if (!m->p16) {
		m->params[i] = v;
		return;
	}
	m->p16[i] = m->st16 == ST_BF16 ? st_f32_to_bf16(v) : st_f32_to_f16(v);
	if (m->st16 == ST_F16 && (m->p16[i] & 0x7c00) == 0x7c00) /* as saving f32 weights in f16 says */
		die("model: weight %zu = %g does not fit float16 (use bfloat16 or float32)", i, (double)v);
}

void model_init_random(model *m, uint64_t seed, float std)
{
	uint64_t s = seed;
	if (m->p16) { /* the same numbers as f32 storage, each rounded as a 16-bit save would */
		for (int i = 0; i < m->n_tensors; i++) {
			const model_tensor *t = &m->tensors[i];
			const size_t o = t->offset;
			if (is_norm_weight(t->name) || is_norm_bias(t->name)) {
				for (size_t k = 0; k < t->numel; k++)
					put(m, o + k, is_norm_bias(t->name) || m->cfg.gemma ? 0.0f : 1.0f);
				continue;
			}
			for (size_t k = 0; k < t->numel; k += 2) {
				double r, a;
				rng_polar(&s, &r, &a);
				put(m, o + k, (float)(std * r * cos(a)));
				if (k + 1 < t->numel)
					put(m, o + k + 1, (float)(std * r * sin(a)));
			}
		}
		model_sync(m, 1);
		return;
	}
	for (int i = 0; i < m->n_tensors; i++) {
		const model_tensor *t = &m->tensors[i];
		float *p = m->params + t->offset;
		if (is_norm_weight(t->name)) {
			for (size_t k = 0; k < t->numel; k++)
				p[k] = m->cfg.gemma ? 0.0f : 1.0f; /* gemma's gain is 1 + w */
		} else if (is_norm_bias(t->name)) {
			memset(p, 0, sizeof(float) * t->numel);
		} else {
			/* Box–Muller: both numbers of each draw */
			for (size_t k = 0; k < t->numel; k += 2) {
				double r, a;
				rng_polar(&s, &r, &a);
				p[k] = (float)(std * r * cos(a));
				if (k + 1 < t->numel)
					p[k + 1] = (float)(std * r * sin(a));
			}
		}
	}
	model_sync(m, 1);
}

void model_need_lm(const model *m, const char *path)
{
	if (m->cfg.score_labels)
		die("%s: a reward model (XxxForSequenceClassification) has no language-model head: no log-probs or "
		    "samples; lbdpo-reward scores with it",
		    path);
}

model *model_reward_from(model *lm, uint64_t seed, float std)
{
	model_config cfg = lm->cfg;
	cfg.score_labels = 1;
	if (!cfg.has_pad && cfg.eos_id >= 0)
		cfg.has_pad = 1, cfg.pad_id = cfg.eos_id;
	model *m = model_new(&cfg);
	model_sync(lm, 0);
	for (int i = 0; i < m->n_tensors; i++) {
		const model_tensor *t = &m->tensors[i];
		float *p = m->params + t->offset;
		if ((size_t)t->offset == m->score) {
			uint64_t s = seed;
			for (size_t k = 0; k < t->numel; k++) {
				double r, a;
				rng_polar(&s, &r, &a);
				p[k] = (float)(std * r * cos(a));
			}
			continue;
		}
		for (int j = 0; j < lm->n_tensors; j++) /* the same layout: tensor i is the LM's tensor i */
			if (!strcmp(lm->tensors[j].name, t->name)) {
				model_read_params(lm, lm->tensors[j].offset, t->numel, p);
				break;
			}
	}
	model_sync(m, 1);
	return m;
}

const model_config *model_cfg(const model *m) { return &m->cfg; }

float *model_params(model *m)
{
	if (m->p16) /* every reader of a 16-bit model goes through model_read_params */
		BUG("model_params of a model stored in 16 bits");
	return m->params;
}

uint16_t *model_params16(model *m) { return m->p16; }
int model_store16(const model *m) { return m->st16; }

size_t model_weight_bytes(const model *m)
{
	if (!m->p16)
		return sizeof(float) * m->n_params;
	size_t b = sizeof(uint16_t) * m->n_params + sizeof(float) * m->stage_n;
	for (int i = 0; i < m->n_wide; i++)
		b += sizeof(float) * m->wide[i].n;
	return b;
}

void model_read_params(const model *m, size_t off, size_t n, float *dst)
{
	if (m->p16)
		widen(dst, m->p16 + off, n, m->st16);
	else
		memcpy(dst, m->params + off, sizeof(float) * n);
}

void model_hash_weights(const model *m, sha256_ctx *h)
{
	/* f32 little-endian: the in-memory layout on every supported host; a
	 * 16-bit model hashes its weights widened, a piece at a time, so both
	 * storages of one file give one hash */
	if (!m->p16) {
		sha256_update(h, m->params, m->n_params * sizeof(float));
		return;
	}
	const size_t piece = (size_t)1 << 20;
	float *buf = xmalloc(sizeof(float) * piece);
	for (size_t o = 0; o < m->n_params; o += piece) {
		const size_t n = m->n_params - o < piece ? m->n_params - o : piece;
		widen(buf, m->p16 + o, n, m->st16);
		sha256_update(h, buf, n * sizeof(float));
	}
	free(buf);
}
size_t model_n_params(const model *m) { return m->n_params; }
int model_n_tensors(const model *m) { return m->n_tensors; }

const model_tensor *model_tensor_at(const model *m, int i)
{
	if (i < 0 || i >= m->n_tensors)
		return NULL;
	return &m->tensors[i];
}

void model_fingerprint(const model *m, char out[65])
{
	const model_config *c = &m->cfg;
	char txt[512];
	/* Everything that changes the function computed; not bos/eos. */
	int n = snprintf(txt, sizeof txt,
			 "lbdpo-model 1\narch %s\ndim %d\nhidden_dim %d\nn_layers %d\nn_heads %d\nn_kv_heads %d\n"
			 "head_dim %d\nvocab_size %d\nmax_seq_len %d\nrope_theta %.9g\nnorm_eps %.9g\ntied %d\n"
			 "qkv_bias %d\n",
			 model_arch_name(c->arch), c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
			 c->head_dim, c->vocab_size, c->max_seq_len, c->arch != ARCH_GPT2 ? (double)c->rope_theta : 0.0,
			 (double)c->norm_eps, c->tied_embeddings, c->qkv_bias);
	sha256_ctx *h = sha256_new();
	sha256_update(h, txt, (size_t)n);
	if (c->arch == ARCH_NEOX) {
		n = snprintf(txt, sizeof txt, "rot_dim %d\nparallel_residual %d\ngelu_exact %d\n", c->rot_dim,
			     c->parallel_residual, c->gelu_exact);
		sha256_update(h, txt, (size_t)n);
	}
	if (c->arch != ARCH_GPT2 && c->rope.type != ROPE_DEFAULT) { /* plain-RoPE fingerprints unchanged */
		const rope_scaling *r = &c->rope;
		n = snprintf(txt, sizeof txt,
			     "rope %s\nfactor %.9g\noriginal_max %d\nmax_pos %d\nfreq_factors %.9g %.9g\n"
			     "beta %.9g %.9g\nmscale %.9g %.9g\nattention_factor %.9g\ntruncate %d\n",
			     rope_kind_name(r->type), (double)r->factor, r->original_max, c->max_pos,
			     (double)r->low_freq_factor, (double)r->high_freq_factor, (double)r->beta_fast,
			     (double)r->beta_slow, (double)r->mscale, (double)r->mscale_all_dim,
			     (double)r->attention_factor, r->truncate);
		sha256_update(h, txt, (size_t)n);
		if (r->type == ROPE_LONGROPE) {
			sha256_update(h, r->short_factor, sizeof(float) * (size_t)r->n_factors);
			sha256_update(h, r->long_factor, sizeof(float) * (size_t)r->n_factors);
		}
	}
	if (c->qk_norm) /* a line only where it is set: other fingerprints unchanged */
		sha256_update(h, "qk_norm 1\n", 10);
	if (c->gemma) {
		n = snprintf(txt, sizeof txt,
			     "gemma 1\nquery_scalar %.9g\nsoftcap %.9g %.9g\nwindow %d\nsliding_pattern %d\n"
			     "local_theta %.9g\n",
			     (double)c->query_scalar, (double)c->attn_softcap, (double)c->final_softcap, c->window,
			     c->sliding_pattern, (double)c->rope_local_theta);
		sha256_update(h, txt, (size_t)n);
	}
	if (c->score_labels) { /* a reward model: the pad id picks the token scored */
		n = snprintf(txt, sizeof txt, "score %d\npad %d\n", c->score_labels, c->has_pad ? c->pad_id : -1);
		sha256_update(h, txt, (size_t)n);
	}
	model_hash_weights(m, h);
	if (m->lora && !lora_is_identity(m->lora)) { /* base + adapter; B = 0 computes the base */
		char lf[65];
		lora_fingerprint(m->lora, lf);
		sha256_update(h, "lora ", 5);
		sha256_update(h, lf, 64);
	}
	sha256_final_hex(h, out);
}

void model_permute_llama2c_qk(float *w, int n_heads, int head_dim, int C)
{
	float *tmp = xmalloc(sizeof(float) * (size_t)head_dim * C); /* one head [hd, C] */
	for (int h = 0; h < n_heads; h++) {
		float *hw = w + (size_t)h * head_dim * C;
		for (int j = 0; j < head_dim / 2; j++) {
			memcpy(tmp + (size_t)j * C, hw + (size_t)(2 * j) * C, sizeof(float) * C);
			memcpy(tmp + (size_t)(head_dim / 2 + j) * C, hw + (size_t)(2 * j + 1) * C, sizeof(float) * C);
		}
		memcpy(hw, tmp, sizeof(float) * (size_t)head_dim * C);
	}
	free(tmp);
}

/* model_neox_qkv_permute for elements of es bytes. */
static void qkv_permute(char *w, size_t es, int n_heads, int head_dim, int cols, int to_hf)
{
	/* file row h·3hd + p·hd + j  <->  internal row p·H·hd + h·hd + j (p = q, k, v) */
	const size_t n = (size_t)3 * n_heads * head_dim * cols, blk = (size_t)head_dim * cols;
	char *tmp = xmalloc(es * n);
	for (int h = 0; h < n_heads; h++)
		for (int p = 0; p < 3; p++) {
			size_t f = ((size_t)h * 3 + p) * blk, in = ((size_t)p * n_heads + h) * blk;
			memcpy(tmp + es * (to_hf ? f : in), w + es * (to_hf ? in : f), es * blk);
		}
	memcpy(w, tmp, es * n);
	free(tmp);
}

void model_neox_qkv_permute(float *w, int n_heads, int head_dim, int cols, int to_hf)
{
	qkv_permute((char *)w, sizeof *w, n_heads, head_dim, cols, to_hf);
}

void model_neox_qkv_permute16(uint16_t *w, int n_heads, int head_dim, int cols, int to_hf)
{
	qkv_permute((char *)w, sizeof *w, n_heads, head_dim, cols, to_hf);
}

void lbdpo_set_threads(int n) { backend_current()->set_threads(n); }

void model_sync(model *m, int to_device)
{
	if (m->p16) { /* frozen: the host bits are the weights; the device side is widened from them */
		if (to_device && m->stage) {
			m->staged = -1;
			for (int i = 0; i < m->n_wide; i++)
				widen(m->wide[i].w, m->p16 + m->wide[i].off, m->wide[i].n, m->st16);
		} else if (to_device) {
			const size_t piece = (size_t)1 << 20;
			float *buf = xmalloc(sizeof(float) * piece);
			for (size_t o = 0; o < m->n_params; o += piece) {
				const size_t n = m->n_params - o < piece ? m->n_params - o : piece;
				widen(buf, m->p16 + o, n, m->st16);
				m->be->upload(m->dparams + o, buf, sizeof(float) * n);
			}
			free(buf);
		}
		if (m->lora)
			lora_sync(m->lora, to_device);
		return;
	}
	if (to_device)
		backend_sync_up(m->be, m->dparams, m->params, sizeof(float) * m->n_params);
	else
		backend_sync_down(m->be, m->params, m->dparams, sizeof(float) * m->n_params);
	if (m->lora)
		lora_sync(m->lora, to_device);
}

const lb_backend *model_backend(const model *m) { return m->be; }

/* ------------------------------------------------------ LoRA, trainables */

void model_set_lora(model *m, lora *lo)
{
	m->lora = lo;
	if (lo && !m->sink) {
		const int C = m->cfg.dim, hd = m->cfg.head_dim;
		m->sink = m->be->alloc(sizeof(float) * 2 * (size_t)(C > hd ? C : hd));
	}
}

lora *model_lora(const model *m) { return m->lora; }

size_t model_n_trainable(const model *m) { return m->lora ? lora_n_params(m->lora) : m->n_params; }
int model_n_trainable_tensors(const model *m) { return m->lora ? lora_n_tensors(m->lora) : m->n_tensors; }

const model_tensor *model_trainable_tensor_at(const model *m, int i)
{
	return m->lora ? lora_tensor_at(m->lora, i) : model_tensor_at(m, i);
}

float *model_trainable(model *m) { return m->lora ? lora_params(m->lora) : model_params(m); }

float *model_trainable_dev(model *m)
{
	if (!m->lora && m->p16)
		BUG("model: the weights of a 16-bit model are frozen (full training keeps f32 weights)");
	return m->lora ? lora_params_dev(m->lora) : m->dparams;
}

void model_matmul_weight(const model *m, int l, int kind, size_t *off, int *out_dim, int *w_in_out)
{
	const model_config *c = &m->cfg;
	const block_off *b = &m->blk[l];
	const size_t o[] = {b->qkv_w, b->o_w, b->fc_w, b->proj_w};
	const int od[] = {m->qkv_dim, c->dim, m->fc_dim, c->dim};
	*off = o[kind];
	*out_dim = od[kind];
	*w_in_out = c->arch == ARCH_GPT2;
}
float *model_params_dev(model *m)
{
	if (m->stage)
		BUG("model_params_dev of a model stored in 16 bits");
	return m->dparams;
}

/* ------------------------------------------------------------- workspace */

/* A device buffer mirroring a host array (the host array itself on a
 * unified backend). */
typedef struct {
	void *d;
	size_t cap;
} dbuf;

static void *dbuf_get(const lb_backend *be, dbuf *b, void *host, size_t bytes)
{
	if (be->unified)
		return host;
	if (bytes > b->cap) {
		if (b->d)
			be->free(b->d);
		b->d = be->alloc(bytes);
		b->cap = bytes;
	}
	return b->d;
}

static void *dbuf_up(const lb_backend *be, dbuf *b, void *host, size_t bytes)
{
	void *d = dbuf_get(be, b, host, bytes);
	backend_sync_up(be, d, host, bytes);
	return d;
}

static void dbuf_free(const lb_backend *be, dbuf *b)
{
	if (b->d)
		be->free(b->d);
	b->d = NULL;
	b->cap = 0;
}

/* One block's activations [T, ·] (device memory). */
typedef struct {
	float *xin;                       /* [T,C] residual entering the block */
	float *ln1, *ln1_m, *ln1_r;       /* [T,C], [T], [T] */
	float *qkv;                       /* [T,QKV] post-RoPE */
	float *att, *att_lse;             /* [T,H·hd], [T,H] */
	float *xmid;                      /* [T,C] residual after attention */
	float *ln2, *ln2_m, *ln2_r;       /* [T,C], [T], [T] */
	float *fc;                        /* [T,FC] pre-activation (llama: gate|up) */
	float *fca;                       /* [T,F] activation */
	float *ao, *mo, *pn1_r, *pn2_r;   /* gemma: attention and MLP outputs before their norms [T,C], rstd [T] */
	float *qn_x, *qn_r, *kn_x, *kn_r; /* qk_norm: q, k before the norm [T,H·hd], [T,KV·hd] (train
					     only), their rstd [T,H], [T,KV] */
} block_act;

struct model_ws {
	const model *m;
	const lb_backend *be;
	float *mem; /* device arena */
	size_t cap, used;
	int *imem; /* host index arrays, mirrored to d_imem */
	size_t icap;
	dbuf d_imem_b, d_rows_b, d_act_b, d_w_b, d_y_b, d_st_b, d_h_b, d_dh_b, d_has_b, d_lp_b;
	dbuf d_er_b, d_he_b, d_rw_b, d_dr_b, d_dhe_b; /* reward model: end rows, their states, scores */
	int *d_imem;
	/* current batch */
	int T, n_seq, train, Lsave;
	block_act *act;             /* [Lsave] */
	int gc;                     /* gradient checkpointing (model_ws_set_checkpointing) */
	float **xins;               /* gc, train: [L] each block's input [T,C]; act[0] is the work set */
	float *xfin;                /* [T,C] residual after the last block */
	float *lnf, *lnf_m, *lnf_r; /* [T,C], [T], [T] */
	float *tmp;                 /* [T,C] projection outputs before the residual add */
	float *logits;              /* [T,V]; in backward, dlogits in place */
	float *row_lse;             /* [T] */
	float *row_lp;              /* [T,2] */
	float *row_ent;             /* [T] */
	float *cs;                  /* [T,hd] RoPE cos|sin */
	float *lcap;                /* gemma, train: soft-capped logits of the active rows [T,V] */
	float *dtmp;                /* gemma, train: [T,C] gradient scratch */
	float *cs2;                 /* gemma 3: [T,hd] RoPE cos|sin of the sliding layers (local base) */
	/* backward scratch (train only) */
	float *dx, *dln, *dqkv, *datt, *dfc, *dfca; /* [T,C] [T,C] [T,QKV] [T,H·hd] [T,FC] [T,F] */
	uint32_t *tok;                              /* [T] host */
	int *pos, *ka, *kb, *kc;                    /* [T] host */
	int *wka, *wkc;                             /* [T] host: ka, kc clipped to the sliding window */
	int *seq_off;                               /* [n_seq+1] host */
	int *seq_P, *seq_n0, *seq_n1;               /* [n_seq] host */
	int *act_rows;                              /* [T] logit rows with a nonzero gradient (host) */
	/* device views of the index arrays above */
	uint32_t *d_tok;
	int *d_pos, *d_ka, *d_kb, *d_kc, *d_wka, *d_wkc, *d_seq_off, *d_seq_P;
	logit_row *rows;   /* [T] host */
	logit_row *d_rows; /* [T] device */
	size_t rows_cap;
	/* host scratch of the hand-off (per batch, small) */
	double *hw, *hst; /* [T,2] logit-row weights, [n_seq,4] sequence sums */
	int32_t *hy;      /* [T,2] */
	float *hh, *hdh;  /* [2·n_seq·C] pooled states (last | mean), their gradients */
	float *hlp;       /* [T,2] per-token log-probs on the host (non-unified only) */
	uint8_t *hhas;    /* [2·n_seq] */
	/* reward model (score head): the distinct rows whose final-norm state
	 * is scored, n_end of them; eslot[2s+k] is completion k of sequence s's */
	int *erow, *eslot; /* [2·n_seq (+ T with per-token values)], [2·n_seq] host */
	int n_end;
	int *vslot;        /* [n_seq]: where sequence s's per-token values start in vidx, -1: none */
	int *vidx;         /* [T]: the row slot of each per-token value (an end row's own when they meet) */
	size_t hcap_e;     /* capacity of erow, hhe, hdhe, hrw, hdr (rows) */
	float *hhe, *hdhe; /* [2·n_seq·C] host (the device copy on a unified backend) */
	float *hrw, *hdr;  /* [2·n_seq] scores, their gradients */
	size_t hcap_T, hcap_s;
	int have_fwd;
};

void model_ws_set_checkpointing(model_ws *ws, int on) { ws->gc = on != 0; }

model_ws *model_ws_new(const model *m)
{
	model_ws *ws = xcalloc(1, sizeof *ws);
	ws->m = m;
	ws->be = m->be;
	return ws;
}

void model_ws_free(model_ws *ws)
{
	if (!ws)
		return;
	const lb_backend *be = ws->be;
	if (ws->mem)
		be->free(ws->mem);
	dbuf *bufs[] = {&ws->d_imem_b, &ws->d_rows_b, &ws->d_act_b, &ws->d_w_b,   &ws->d_y_b,
			&ws->d_st_b,   &ws->d_h_b,    &ws->d_dh_b,  &ws->d_has_b, &ws->d_lp_b,
			&ws->d_er_b,   &ws->d_he_b,   &ws->d_rw_b,  &ws->d_dr_b,  &ws->d_dhe_b};
	for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
		dbuf_free(be, bufs[i]);
	free(ws->imem);
	free(ws->act);
	free(ws->xins);
	free(ws->rows);
	free(ws->hw);
	free(ws->hst);
	free(ws->hy);
	free(ws->hh);
	free(ws->hdh);
	free(ws->hlp);
	free(ws->hhas);
	free(ws->erow);
	free(ws->eslot);
	free(ws->vslot);
	free(ws->vidx);
	free(ws->hhe);
	free(ws->hdhe);
	free(ws->hrw);
	free(ws->hdr);
	free(ws);
}

size_t model_ws_bytes(const model_ws *ws)
{
	return ws->cap * sizeof(float) + ws->icap * sizeof(int) + ws->rows_cap * sizeof(logit_row);
}

static float *carve(model_ws *ws, size_t n)
{
	/* 16-float alignment keeps rows of each buffer vector-friendly */
	float *p = ws->mem ? ws->mem + ws->used : NULL;
	ws->used += (n + 15) & ~(size_t)15;
	return p;
}

/* Lay out every buffer for T tokens; called twice: once to measure (mem
 * NULL or too small), once to assign. */
static void ws_layout(model_ws *ws)
{
	const model *m = ws->m;
	const model_config *c = &m->cfg;
	const size_t T = ws->T, C = c->dim, H = c->n_heads, HD = (size_t)c->n_heads * c->head_dim;
	const size_t QKV = m->qkv_dim, FC = m->fc_dim, F = c->hidden_dim, V = c->vocab_size;
	ws->used = 0;
	for (int l = 0; l < ws->Lsave; l++) {
		block_act *a = &ws->act[l];
		a->xin = carve(ws, T * C);
		a->ln1 = carve(ws, T * C);
		a->ln1_m = carve(ws, T);
		a->ln1_r = carve(ws, T);
		a->qkv = carve(ws, T * QKV);
		a->att = carve(ws, T * HD);
		a->att_lse = carve(ws, T * H);
		a->xmid = ws->train ? carve(ws, T * C) : a->xin; /* eval: residual updated in place */
		a->ln2 = carve(ws, T * C);
		a->ln2_m = carve(ws, T);
		a->ln2_r = carve(ws, T);
		a->fc = carve(ws, T * FC);
		a->fca = carve(ws, T * F);
		a->qn_x = a->kn_x = a->qn_r = a->kn_r = NULL;
		a->ao = a->mo = a->pn1_r = a->pn2_r = NULL;
		if (c->gemma) {
			a->ao = carve(ws, T * C);
			a->mo = carve(ws, T * C);
			a->pn1_r = carve(ws, T);
			a->pn2_r = carve(ws, T);
		}
		if (c->qk_norm) { /* only here: other models' layouts unchanged */
			const size_t KV = c->n_kv_heads, hd = c->head_dim;
			a->qn_r = carve(ws, T * H);
			a->kn_r = carve(ws, T * KV);
			if (ws->train) {
				a->qn_x = carve(ws, T * HD);
				a->kn_x = carve(ws, T * KV * hd);
			}
		}
	}
	if (ws->train && ws->gc) { /* one work set of activations; every block's input kept */
		for (int l = 0; l < c->n_layers; l++)
			ws->xins[l] = carve(ws, T * C);
		ws->act[0].xin = ws->xins[0];
	}
	ws->xfin = ws->train ? carve(ws, T * C) : ws->act[0].xin;
	ws->lnf = carve(ws, T * C);
	ws->lnf_m = carve(ws, T);
	ws->lnf_r = carve(ws, T);
	ws->tmp = carve(ws, T * C);
	ws->logits = carve(ws, T * V);
	ws->row_lse = carve(ws, T);
	ws->row_lp = carve(ws, 2 * T);
	ws->row_ent = carve(ws, T);
	ws->cs = carve(ws, T * c->head_dim);
	if (ws->train) {
		ws->dx = carve(ws, T * C);
		ws->dln = carve(ws, T * C);
		ws->dqkv = carve(ws, T * QKV);
		ws->datt = carve(ws, T * HD);
		ws->dfc = carve(ws, T * FC);
		ws->dfca = carve(ws, T * F);
	}
	ws->lcap = ws->dtmp = ws->cs2 = NULL;
	if (c->rope_local_theta > 0)
		ws->cs2 = carve(ws, T * c->head_dim);
	if (c->gemma && ws->train) {
		ws->dtmp = carve(ws, T * C);
		if (c->final_softcap > 0)
			ws->lcap = carve(ws, T * V);
	}
}

static void ws_plan(model_ws *ws, int T, int n_seq, int train)
{
	const model_config *c = &ws->m->cfg;
	const lb_backend *be = ws->be;
	ws->T = T;
	ws->n_seq = n_seq;
	ws->train = train;
	ws->Lsave = train && !ws->gc ? c->n_layers : 1;
	ws->act = xrealloc(ws->act, sizeof(block_act) * ws->Lsave);
	if (train && ws->gc)
		ws->xins = xrealloc(ws->xins, sizeof(float *) * c->n_layers);
	float *keep = ws->mem;
	ws->mem = NULL;
	ws_layout(ws); /* measure */
	ws->mem = keep;
	if (ws->used > ws->cap) {
		if (ws->mem)
			be->free(ws->mem);
		ws->mem = be->alloc(sizeof(float) * ws->used);
		ws->cap = ws->used;
	}
	ws_layout(ws);
	size_t ni = (size_t)8 * T + 4 * (size_t)n_seq + 1;
	if (ni > ws->icap) {
		free(ws->imem);
		ws->imem = xmalloc(sizeof(int) * ni);
		ws->icap = ni;
	}
	ws->d_imem = dbuf_get(be, &ws->d_imem_b, ws->imem, sizeof(int) * ni);
	int *ip = ws->imem, *dp = ws->d_imem;
#define IDX(host, dev, n) (ws->host = (void *)ip, ws->dev = (void *)dp, ip += (n), dp += (n))
	IDX(tok, d_tok, T);
	IDX(pos, d_pos, T);
	IDX(ka, d_ka, T);
	IDX(kb, d_kb, T);
	IDX(kc, d_kc, T);
	IDX(wka, d_wka, T);
	IDX(wkc, d_wkc, T);
	IDX(seq_off, d_seq_off, n_seq + 1);
	IDX(seq_P, d_seq_P, n_seq);
#undef IDX
	ws->seq_n0 = ip, ip += n_seq;
	ws->seq_n1 = ip, ip += n_seq;
	ws->act_rows = ip, ip += T;
	if ((size_t)T > ws->rows_cap) {
		free(ws->rows);
		ws->rows = xmalloc(sizeof(logit_row) * T);
		ws->rows_cap = T;
	}
	ws->d_rows = dbuf_get(be, &ws->d_rows_b, ws->rows, sizeof(logit_row) * T);
	if ((size_t)T > ws->hcap_T) {
		ws->hw = xrealloc(ws->hw, sizeof(double) * 2 * T);
		ws->hy = xrealloc(ws->hy, sizeof(int32_t) * 2 * T);
		ws->hlp = xrealloc(ws->hlp, sizeof(float) * 2 * T);
		ws->hcap_T = T;
	}
	if ((size_t)n_seq > ws->hcap_s) {
		const size_t C = c->dim;
		ws->hst = xrealloc(ws->hst, sizeof(double) * 4 * n_seq);
		ws->hh = xrealloc(ws->hh, sizeof(float) * 2 * n_seq * C);
		ws->hdh = xrealloc(ws->hdh, sizeof(float) * 2 * n_seq * C);
		ws->hhas = xrealloc(ws->hhas, 2 * (size_t)n_seq);
		ws->eslot = xrealloc(ws->eslot, sizeof(int) * 2 * n_seq);
		ws->vslot = xrealloc(ws->vslot, sizeof(int) * n_seq);
		ws->hcap_s = n_seq;
	}
}

/* Upload the index arrays of the batch just laid out (nothing on a unified
 * backend). */
static void ws_upload_index(model_ws *ws)
{
	const size_t ni = (size_t)8 * ws->T + 4 * (size_t)ws->n_seq + 1;
	backend_sync_up(ws->be, ws->d_imem, ws->imem, sizeof(int) * ni);
	backend_sync_up(ws->be, ws->d_rows, ws->rows, sizeof(logit_row) * ws->T);
}

/* ------------------------------------------------------------ the blocks */

static const float *P_(const model *m, size_t off)
{
	if (off == NONE)
		return NULL;
	if (!m->stage)
		return m->dparams + off;
	if (m->staged >= 0 && off >= m->bstart[m->staged] && off < m->bstart[m->staged + 1])
		return m->stage + (off - m->bstart[m->staged]);
	if (m->staged == STAGED_HEAD && off == m->lm_head)
		return m->stage;
	for (int i = 0; i < m->n_wide; i++)
		if (off >= m->wide[i].off && off < m->wide[i].off + m->wide[i].n)
			return m->wide[i].w + (off - m->wide[i].off);
	BUG("model: weight %zu of a 16-bit model read outside the block staged", off);
}

/* A 16-bit model: block l's weights widened into the stage (P_ reads them
 * there) before the block runs, forward or backward. */
static void stage_block(const model *m, int l)
{
	if (!m->stage || m->staged == l)
		return;
	widen(m->stage, m->p16 + m->bstart[l], m->bstart[l + 1] - m->bstart[l], m->st16);
	((model *)m)->staged = l; /* the stage is a cache of the weights, not the model's value */
}

/* The token (and learned position) embeddings of T tokens into x [T,C]:
 * a 16-bit model widens the rows of its tokens only, and adds the
 * positions as embed_forward does. */
static void embed_fwd(const model *m, model_ws *ws, float *x, int T);

/* A 16-bit model: the language-model head widened into the stage (P_
 * reads it there) before a product with it. Whole: OpenBLAS's products
 * over a slice of the vocabulary differ in the last bit from the product
 * over all of it, and every result must be the f32 storage's. */
static void stage_head(const model *m)
{
	if (!m->stage || m->staged == STAGED_HEAD)
		return;
	widen(m->stage, m->p16 + m->lm_head, (size_t)m->cfg.vocab_size * m->cfg.dim, m->st16);
	((model *)m)->staged = STAGED_HEAD;
}

/* RMSNorm of the llama family: gain w, or 1 + w (gemma). */
static void rms_fwd(const model *m, float *out, float *rstd, const float *x, size_t w, int T)
{
	const model_config *c = &m->cfg;
	m->be->rmsnorm_forward(out, rstd, x, P_(m, w), c->gemma ? 1.0f : 0.0f, c->norm_eps, T, c->dim);
}

static void rms_bwd(const model *m, float *dx, float *dw, const float *dy, const float *x, size_t w, const float *rstd,
		    int T)
{
	m->be->rmsnorm_backward(dx, dw, dy, x, P_(m, w), m->cfg.gemma ? 1.0f : 0.0f, rstd, T, m->cfg.dim);
}

/* Attention score scale: gemma 1/√query_pre_attn_scalar; 0 (the kernels' 1/√head_dim) otherwise. */
static float att_scale(const model_config *c)
{
	return c->gemma ? 1.0f / sqrtf(c->query_scalar > 0 ? c->query_scalar : (float)c->head_dim) : 0.0f;
}

/* Attention logit soft-cap (gemma 2; 0: none). With scale and cap 0 the
 * backend runs its plain (blocked) attention kernels. */
static float att_cap(const model_config *c) { return c->gemma ? c->attn_softcap : 0.0f; }

/* The RoPE table of layer l: Gemma 3's sliding layers use the local base. */
static const float *layer_cs(const model_ws *ws, const model_config *c, int l)
{
	return c->rope_local_theta > 0 && (l + 1) % c->sliding_pattern ? ws->cs2 : ws->cs;
}

/* Sliding-window layers: all of them (Mistral, Phi-3), or all but every
 * sliding_pattern-th (Gemma 3; Gemma 2 alternates, pattern 2). */
static int layer_sliding(const model_config *c, int l)
{
	if (c->window <= 0)
		return 0;
	if (c->sliding_pattern > 0)
		return (l + 1) % c->sliding_pattern != 0;
	return c->family == FAM_GEMMA2 ? l % 2 == 0 : 1;
}

/* Clip one query's key ranges [ka,kb) ∪ [kc,t] to the sliding window: a
 * query at position p sees key position j iff p − j < W (transformers'
 * kv > q − W). Prompt keys st.. sit at positions 0..; completion keys cst..
 * at P... Each range only loses its start, so the query keeps itself. */
static void window_clip(model_ws *ws, int t, int p, int kc_pos, int W)
{
	const int lo = p - W + 1; /* first visible position; ka is at position 0, kc at kc_pos */
	const int a = ws->ka[t] + (lo > 0 ? lo : 0);
	ws->wka[t] = a < ws->kb[t] ? a : ws->kb[t];
	ws->wkc[t] = ws->kc[t] + (lo > kc_pos ? lo - kc_pos : 0);
}

/* Rotated dims of each head (GPT-NeoX's partial rotary; all elsewhere). */
static int rot_dim(const model_config *c) { return c->rot_dim > 0 ? c->rot_dim : c->head_dim; }

/* Norm + qkv projection + RoPE of one block: ln1, qkv from xin. */
static void block_attn_in(const model *m, const block_off *b, block_act *a, float *ln1, float *ln1_m, float *ln1_r,
			  float *qkv, const float *xin, const float *cs, int T)
{
	const model_config *c = &m->cfg;
	const lb_backend *be = m->be;
	const int C = c->dim;
	if (c->arch == ARCH_LLAMA) {
		rms_fwd(m, ln1, ln1_r, xin, b->ln1_w, T);
		be->matmul_forward(qkv, ln1, P_(m, b->qkv_w), P_(m, b->qkv_b), T, C, m->qkv_dim, 0);
		lora_forward(m->lora, (int)(b - m->blk), LORA_QKV, qkv, ln1, T);
		if (c->qk_norm) { /* Qwen3: q and k heads RMS-normalized before RoPE */
			const int H = c->n_heads, hd = c->head_dim;
			const float wo = c->gemma ? 1.0f : 0.0f; /* Gemma 3: gains 1 + w */
			be->headnorm_forward(qkv, a->qn_x, a->qn_r, P_(m, b->qn_w), wo, c->norm_eps, T, H, hd,
					     m->qkv_dim);
			be->headnorm_forward(qkv + (size_t)H * hd, a->kn_x, a->kn_r, P_(m, b->kn_w), wo, c->norm_eps, T,
					     c->n_kv_heads, hd, m->qkv_dim);
		}
		be->rope_forward(qkv, cs, T, c->n_heads + c->n_kv_heads, c->head_dim, m->qkv_dim);
	} else {
		const int neox = c->arch == ARCH_NEOX;
		be->layernorm_forward(ln1, ln1_m, ln1_r, xin, P_(m, b->ln1_w), P_(m, b->ln1_b), c->norm_eps, T, C);
		be->matmul_forward(qkv, ln1, P_(m, b->qkv_w), P_(m, b->qkv_b), T, C, m->qkv_dim, !neox);
		lora_forward(m->lora, (int)(b - m->blk), LORA_QKV, qkv, ln1, T);
		if (neox)
			be->rope_part_forward(qkv, cs, T, 2 * c->n_heads, c->head_dim, rot_dim(c), m->qkv_dim);
	}
}

/* Output projection + residual + MLP + residual: xmid, ln2, fc, fca, xout. */
static void block_attn_out_mlp(const model *m, const block_off *b, block_act *a, float *xout, float *tmp, int T)
{
	const model_config *c = &m->cfg;
	const lb_backend *be = m->be;
	const int C = c->dim, HD = c->n_heads * c->head_dim, F = c->hidden_dim;
	const int w_io = c->arch == ARCH_GPT2, l = (int)(b - m->blk);
	lora *lo = m->lora;
	if (c->gemma) { /* x_mid = x + norm(o(att)); x_out = x_mid + norm(mlp(norm2(x_mid))) */
		be->matmul_forward(a->ao, a->att, P_(m, b->o_w), NULL, T, HD, C, 0);
		lora_forward(lo, l, LORA_O, a->ao, a->att, T);
		rms_fwd(m, tmp, a->pn1_r, a->ao, b->pn1_w, T);
		be->residual_forward(a->xmid, a->xin, tmp, (size_t)T * C);
		rms_fwd(m, a->ln2, a->ln2_r, a->xmid, b->ln2_w, T);
		be->matmul_forward(a->fc, a->ln2, P_(m, b->fc_w), NULL, T, C, 2 * F, 0);
		lora_forward(lo, l, LORA_FC, a->fc, a->ln2, T);
		be->geglu_forward(a->fca, a->fc, T, F);
		be->matmul_forward(a->mo, a->fca, P_(m, b->proj_w), NULL, T, F, C, 0);
		lora_forward(lo, l, LORA_PROJ, a->mo, a->fca, T);
		rms_fwd(m, tmp, a->pn2_r, a->mo, b->pn2_w, T);
		be->residual_forward(xout, a->xmid, tmp, (size_t)T * C);
		return;
	}
	if (c->arch == ARCH_NEOX) {
		/* parallel: x + attn(ln1(x)) + mlp(ln2(x)); ln2 before the residual add,
		 * which in inference overwrites x (xmid == xin) */
		const float *x2 = c->parallel_residual ? a->xin : a->xmid;
		if (c->parallel_residual)
			be->layernorm_forward(a->ln2, a->ln2_m, a->ln2_r, x2, P_(m, b->ln2_w), P_(m, b->ln2_b),
					      c->norm_eps, T, C);
		be->matmul_forward(tmp, a->att, P_(m, b->o_w), P_(m, b->o_b), T, HD, C, 0);
		lora_forward(lo, l, LORA_O, tmp, a->att, T);
		be->residual_forward(a->xmid, a->xin, tmp, (size_t)T * C);
		if (!c->parallel_residual)
			be->layernorm_forward(a->ln2, a->ln2_m, a->ln2_r, x2, P_(m, b->ln2_w), P_(m, b->ln2_b),
					      c->norm_eps, T, C);
		be->matmul_forward(a->fc, a->ln2, P_(m, b->fc_w), P_(m, b->fc_b), T, C, F, 0);
		lora_forward(lo, l, LORA_FC, a->fc, a->ln2, T);
		if (c->gelu_exact)
			be->gelu_exact_forward(a->fca, a->fc, (size_t)T * F);
		else
			be->gelu_forward(a->fca, a->fc, (size_t)T * F);
		be->matmul_forward(tmp, a->fca, P_(m, b->proj_w), P_(m, b->proj_b), T, F, C, 0);
		lora_forward(lo, l, LORA_PROJ, tmp, a->fca, T);
		be->residual_forward(xout, a->xmid, tmp, (size_t)T * C);
		return;
	}
	be->matmul_forward(tmp, a->att, P_(m, b->o_w), P_(m, b->o_b), T, HD, C, w_io);
	lora_forward(lo, l, LORA_O, tmp, a->att, T);
	be->residual_forward(a->xmid, a->xin, tmp, (size_t)T * C);
	if (c->arch == ARCH_LLAMA) {
		be->rmsnorm_forward(a->ln2, a->ln2_r, a->xmid, P_(m, b->ln2_w), 0.0f, c->norm_eps, T, C);
		be->matmul_forward(a->fc, a->ln2, P_(m, b->fc_w), NULL, T, C, 2 * F, 0);
		lora_forward(lo, l, LORA_FC, a->fc, a->ln2, T);
		be->swiglu_forward(a->fca, a->fc, T, F);
	} else {
		be->layernorm_forward(a->ln2, a->ln2_m, a->ln2_r, a->xmid, P_(m, b->ln2_w), P_(m, b->ln2_b),
				      c->norm_eps, T, C);
		be->matmul_forward(a->fc, a->ln2, P_(m, b->fc_w), P_(m, b->fc_b), T, C, F, 1);
		lora_forward(lo, l, LORA_FC, a->fc, a->ln2, T);
		be->gelu_forward(a->fca, a->fc, (size_t)T * F);
	}
	be->matmul_forward(tmp, a->fca, P_(m, b->proj_w), P_(m, b->proj_b), T, F, C, w_io);
	lora_forward(lo, l, LORA_PROJ, tmp, a->fca, T);
	be->residual_forward(xout, a->xmid, tmp, (size_t)T * C);
}

static void final_norm(const model *m, float *out, float *mean, float *rstd, const float *x, int T)
{
	const model_config *c = &m->cfg;
	if (c->arch == ARCH_LLAMA)
		rms_fwd(m, out, rstd, x, m->lnf_w, T);
	else
		m->be->layernorm_forward(out, mean, rstd, x, P_(m, m->lnf_w), P_(m, m->lnf_b), c->norm_eps, T, c->dim);
}
/* ------------------------------------------------------- packed forward */

static void embed_fwd(const model *m, model_ws *ws, float *x, int T)
{
	const int C = m->cfg.dim;
	if (!m->stage) {
		m->be->embed_forward(x, ws->d_tok, ws->d_pos, P_(m, m->wte), P_(m, m->wpe), T, C);
		return;
	}
	const float *wpe = P_(m, m->wpe);
#pragma omp parallel for schedule(static)
	for (int t = 0; t < T; t++) {
		float *o = x + (size_t)t * C;
		widen(o, m->p16 + m->wte + (size_t)ws->tok[t] * C, (size_t)C, m->st16);
		if (wpe) {
			const float *p = wpe + (size_t)ws->pos[t] * C;
			for (int c = 0; c < C; c++)
				o[c] = o[c] + p[c];
		}
	}
}

/* Block l of the packed forward on ws's current batch: its activations in
 * act[l] (act[0] in inference and with gradient checkpointing, whose
 * block inputs are xins), its output into the next block's input. */
static void layer_forward(const model *m, model_ws *ws, int l)
{
	const model_config *c = &m->cfg;
	const lb_backend *be = m->be;
	const int T = ws->T, L = c->n_layers, train = ws->train, gc = train && ws->gc;
	block_act *a = &ws->act[train && !gc ? l : 0];
	const block_off *b = &m->blk[l];
	if (gc)
		a->xin = ws->xins[l];
	stage_block(m, l);
	block_attn_in(m, b, a, a->ln1, a->ln1_m, a->ln1_r, a->qkv, a->xin, layer_cs(ws, c, l), T);
	const int sw = layer_sliding(c, l);
	const int *ka = sw ? ws->d_wka : ws->d_ka, *kc = sw ? ws->d_wkc : ws->d_kc;
	be->attention_forward(a->att, a->att_lse, a->qkv, ka, ws->d_kb, kc, T, c->n_heads, c->n_kv_heads, c->head_dim,
			      att_scale(c), att_cap(c));
	float *xout = !train ? a->xin : l + 1 == L ? ws->xfin : gc ? ws->xins[l + 1] : ws->act[l + 1].xin;
	block_attn_out_mlp(m, b, a, xout, ws->tmp, T);
}

static void check_tokens(const model *m, const uint32_t *t, int n, int s, const char *what)
{
	for (int i = 0; i < n; i++)
		if (t[i] >= (uint32_t)m->cfg.vocab_size)
			die("model: sequence %d: %s token %d is %u, outside the vocabulary (%d)", s, what, i, t[i],
			    m->cfg.vocab_size);
}

/* The RoPE cos/sin table is built on the host (rope.c holds every scaling
 * scheme, and longrope depends on each packed sequence's length) and sent
 * up; on a unified backend it is written in place. */
static void rope_cs(const lb_backend *be, float *dcs, const int *pos, int T, const model_config *cfg)
{
	model_config rc = *cfg; /* partial rotary: the frequencies of rot_dim dims */
	rc.head_dim = rot_dim(cfg);
	const model_config *c = &rc;
	if (be->unified) {
		rope_table_cfg(dcs, pos, T, c);
		return;
	}
	size_t bytes = sizeof(float) * (size_t)T * c->head_dim;
	float *h = xmalloc(bytes);
	rope_table_cfg(h, pos, T, c);
	be->upload(dcs, h, bytes);
	free(h);
}

/* The reward model's scores: for completion k of sequence s, the row of
 * the last token of prompt + completion that is not the pad token (as
 * transformers' XxxForSequenceClassification finds it: the rightmost
 * non-pad token, the first when all are pad), r = score·lnf[row]. Both
 * completions may end in the same prompt row: each distinct row is scored
 * once (ws->erow[0..n_end-1]; eslot maps a completion to its row). */
static void score_forward(const model *m, model_ws *ws, const model_seq *seqs, int n, const model_scores *out)
{
	const lb_backend *be = m->be;
	const int C = m->cfg.dim, pad = m->cfg.has_pad ? m->cfg.pad_id : -1;
	int ne = 0;
	size_t cap = 2 * (size_t)n + (size_t)ws->T;
	if (cap > ws->hcap_e) {
		ws->erow = xrealloc(ws->erow, sizeof(int) * cap);
		ws->hhe = xrealloc(ws->hhe, sizeof(float) * cap * C);
		ws->hdhe = xrealloc(ws->hdhe, sizeof(float) * cap * C);
		ws->hrw = xrealloc(ws->hrw, sizeof(float) * cap);
		ws->hdr = xrealloc(ws->hdr, sizeof(float) * cap);
		ws->vidx = xrealloc(ws->vidx, sizeof(int) * cap);
		ws->hcap_e = cap;
	}
	for (int s = 0; s < n; s++) {
		const int st = ws->seq_off[s], P = ws->seq_P[s];
		for (int k = 0; k < 2; k++) {
			ws->eslot[2 * s + k] = -1;
			if (k >= seqs[s].n_comp)
				continue;
			const int nk = seqs[s].n_comp_tok[k], c0 = st + P + (k ? seqs[s].n_comp_tok[0] : 0);
			int row = -1;
			for (int j = nk - 1; j >= 0 && row < 0; j--)
				if ((int)ws->tok[c0 + j] != pad)
					row = c0 + j;
			for (int i = P - 1; i >= 0 && row < 0; i--)
				if ((int)ws->tok[st + i] != pad)
					row = st + i;
			if (row < 0)
				row = st;
			if (k == 1 && ws->eslot[2 * s] >= 0 && ws->erow[ws->eslot[2 * s]] == row) {
				ws->eslot[2 * s + 1] = ws->eslot[2 * s];
				continue;
			}
			ws->erow[ne] = row;
			ws->eslot[2 * s + k] = ne++;
		}
	}
	/* per-token values: the rows that predict completion 0's tokens; a row
	 * that is also an end row keeps one slot (rows_scatter writes, not adds) */
	int nv = 0;
	for (int s = 0; s < n; s++) {
		ws->vslot[s] = -1;
		if (!out[s].tok_value)
			continue;
		ws->vslot[s] = nv;
		for (int j = 0; j < seqs[s].n_comp_tok[0]; j++) {
			int row = ws->seq_off[s] + ws->seq_P[s] - 1 + j, slot = -1;
			for (int k = 0; k < 2 && slot < 0; k++)
				if (ws->eslot[2 * s + k] >= 0 && ws->erow[ws->eslot[2 * s + k]] == row)
					slot = ws->eslot[2 * s + k];
			if (slot < 0) {
				slot = ne;
				ws->erow[ne++] = row;
			}
			ws->vidx[nv++] = slot;
		}
	}
	ws->n_end = ne;
	const int *d_er = dbuf_up(be, &ws->d_er_b, ws->erow, sizeof(int) * ne);
	float *he = dbuf_get(be, &ws->d_he_b, ws->hhe, sizeof(float) * ne * C);
	float *rw = dbuf_get(be, &ws->d_rw_b, ws->hrw, sizeof(float) * ne);
	be->rows_gather(he, ws->lnf, d_er, ne, C);
	be->lmhead_forward(rw, he, P_(m, m->score), ne, C, 1);
	backend_sync_down(be, ws->hrw, rw, sizeof(float) * ne);
}

/* Backward of score_forward: dlnf[row] = Σ dr·score.weight over the
 * completions scored at row, dscore.weight += Σ dr·lnf[row]. dlnf is zero
 * on those rows before (a reward model's logit rows carry no gradient). */
static void score_backward(const model *m, model_ws *ws, const model_seq_grad *g, float *G, float *dlnf)
{
	const lb_backend *be = m->be;
	const int C = m->cfg.dim, ne = ws->n_end, n = ws->n_seq;
	memset(ws->hdr, 0, sizeof(float) * ne);
	int any = 0;
	for (int s = 0; s < n; s++)
		for (int k = 0; k < 2; k++)
			if (ws->eslot[2 * s + k] >= 0 && g[s].d_reward[k] != 0) {
				ws->hdr[ws->eslot[2 * s + k]] += (float)g[s].d_reward[k];
				any = 1;
			}
	for (int s = 0; s < n; s++)
		if (ws->vslot[s] >= 0 && g[s].d_tok_value) {
			for (int j = 0; j < ws->seq_n0[s]; j++)
				ws->hdr[ws->vidx[ws->vslot[s] + j]] += g[s].d_tok_value[j];
			any = 1;
		}
	if (!any)
		return;
	const float *d_dr = dbuf_up(be, &ws->d_dr_b, ws->hdr, sizeof(float) * ne);
	float *dhe = dbuf_get(be, &ws->d_dhe_b, ws->hdhe, sizeof(float) * ne * C);
	const float *he = dbuf_get(be, &ws->d_he_b, ws->hhe, sizeof(float) * ne * C);
	const int *d_er = dbuf_get(be, &ws->d_er_b, ws->erow, sizeof(int) * ne);
	be->lmhead_backward(dhe, G + m->score, d_dr, he, P_(m, m->score), ne, C, 1);
	be->rows_scatter(dlnf, dhe, d_er, ne, C);
}

void model_forward(const model *m, model_ws *ws, const model_seq *seqs, int n, model_scores *out, int train)
{
	const model_config *c = &m->cfg;
	const lb_backend *be = m->be;
	const int C = c->dim, V = c->vocab_size, L = c->n_layers;
	if (ws->m != m)
		BUG("model: workspace belongs to another model");
	ws->have_fwd = 0;
	if (n <= 0)
		return;
	/* ---- layout ---- */
	long Tl = 0;
	for (int s = 0; s < n; s++) {
		const model_seq *q = &seqs[s];
		if (q->n_prompt < 1 || q->n_comp < 1 || q->n_comp > 2 || q->n_comp_tok[0] < 1 ||
		    (q->n_comp == 2 && q->n_comp_tok[1] < 1))
			die("model: sequence %d: needs a prompt and 1 or 2 non-empty completions", s);
		long len0 = q->n_prompt + q->n_comp_tok[0], len1 = q->n_comp == 2 ? q->n_prompt + q->n_comp_tok[1] : 0;
		long mx = len0 > len1 ? len0 : len1;
		if (mx > c->max_seq_len && c->arch == ARCH_GPT2)
			die("model: sequence %d: %ld positions, more than the model's %d", s, mx, c->max_seq_len);
		check_tokens(m, q->prompt, q->n_prompt, s, "prompt");
		for (int k = 0; k < q->n_comp; k++)
			check_tokens(m, q->comp[k], q->n_comp_tok[k], s, "completion");
		Tl += q->n_prompt + q->n_comp_tok[0] + (q->n_comp == 2 ? q->n_comp_tok[1] : 0);
		if (Tl > (1L << 24))
			die("model: batch of more than %ld tokens", 1L << 24);
	}
	const int T = (int)Tl, W = c->window > 0 ? c->window : 1 << 30;
	ws_plan(ws, T, n, train);
	if (m->lora)
		lora_next_forward(m->lora, train);
	int t = 0;
	for (int s = 0; s < n; s++) {
		const model_seq *q = &seqs[s];
		const int P = q->n_prompt, st = t;
		ws->seq_off[s] = st;
		ws->seq_P[s] = P;
		ws->seq_n0[s] = q->n_comp_tok[0];
		ws->seq_n1[s] = q->n_comp == 2 ? q->n_comp_tok[1] : 0;
		for (int i = 0; i < P; i++, t++) {
			ws->tok[t] = q->prompt[i];
			ws->pos[t] = i;
			ws->ka[t] = ws->kb[t] = st;
			ws->kc[t] = st;
			window_clip(ws, t, i, 0, W);
			logit_row *r = &ws->rows[t];
			r->seq = s;
			r->y[0] = r->y[1] = -1;
			r->kind[0] = r->kind[1] = 0;
			if (i < P - 1) {
				r->y[0] = q->prompt[i + 1], r->kind[0] = 1, r->j[0] = i + 1;
			} else {
				for (int k = 0; k < q->n_comp; k++)
					r->y[k] = q->comp[k][0], r->kind[k] = 2 + k, r->j[k] = 0;
			}
		}
		for (int k = 0; k < q->n_comp; k++) {
			const int nk = q->n_comp_tok[k], cst = t;
			for (int j = 0; j < nk; j++, t++) {
				ws->tok[t] = q->comp[k][j];
				ws->pos[t] = P + j;
				ws->ka[t] = st;
				ws->kb[t] = st + P;
				ws->kc[t] = cst;
				window_clip(ws, t, P + j, P, W);
				logit_row *r = &ws->rows[t];
				r->seq = s;
				r->y[0] = r->y[1] = -1;
				r->kind[0] = r->kind[1] = 0;
				if (j < nk - 1)
					r->y[0] = q->comp[k][j + 1], r->kind[0] = 2 + k, r->j[0] = j + 1;
			}
		}
	}
	ws->seq_off[n] = T;
	ws_upload_index(ws);

	/* ---- embedding and blocks ---- */
	embed_fwd(m, ws, ws->act[0].xin, T);
	if (c->gemma) /* embeddings × √dim */
		be->scale(ws->act[0].xin, (size_t)T * C, (float)sqrt((double)C));
	if (c->arch != ARCH_GPT2)
		rope_cs(be, ws->cs, ws->pos, T, c);
	if (c->rope_local_theta > 0)
		rope_cs(be, ws->cs2, ws->pos, T,
			&(model_config){.head_dim = c->head_dim, .rope_theta = c->rope_local_theta});
	for (int l = 0; l < L; l++)
		layer_forward(m, ws, l);
	final_norm(m, ws->lnf, ws->lnf_m, ws->lnf_r, ws->xfin, T);

	/* ---- logits [T,V], log-softmax, per-sequence sums (the hand-off) ----
	 * A reward model has no language-model head: its hand-off is the score. */
	if (m->score == NONE) {
		stage_head(m);
		be->lmhead_forward(ws->logits, ws->lnf, P_(m, m->lm_head), T, C, V);
		if (c->final_softcap > 0)
			be->softcap_forward(ws->logits, (size_t)T * V, c->final_softcap);
		be->logsoftmax_rows(ws->row_lse, ws->row_lp, ws->row_ent, ws->logits, ws->d_rows, T, V);
		double *dst = dbuf_get(be, &ws->d_st_b, ws->hst, sizeof(double) * 4 * n);
		be->seq_logp_sums(dst, ws->row_lp, ws->row_ent, ws->d_rows, ws->d_seq_off, n);
		backend_sync_down(be, ws->hst, dst, sizeof(double) * 4 * n);
	} else {
		memset(ws->hst, 0, sizeof(double) * 4 * n);
		score_forward(m, ws, seqs, n, out);
	}
	int want_tok = 0, want_last = 0, want_mean = 0;
	for (int s = 0; s < n; s++) {
		want_tok |= out[s].tok_logp[0] || out[s].tok_logp[1];
		want_last |= out[s].h_last != NULL;
		want_mean |= out[s].h_mean != NULL;
	}
	const float *lp = ws->row_lp;
	if (want_tok && !be->unified) {
		be->download(ws->hlp, ws->row_lp, sizeof(float) * 2 * T);
		lp = ws->hlp;
	}
	float *hl = ws->hh, *hm = ws->hh + (size_t)n * C; /* [n,C] each */
	if (want_last || want_mean) {
		float *d = dbuf_get(be, &ws->d_h_b, ws->hh, sizeof(float) * 2 * n * C);
		be->pool_forward(want_last ? d : NULL, want_mean ? d + (size_t)n * C : NULL, ws->lnf, ws->d_seq_off,
				 ws->d_seq_P, n, C);
		backend_sync_down(be, ws->hh, d, sizeof(float) * 2 * n * C);
	}
	for (int s = 0; s < n; s++) {
		model_scores *o = &out[s];
		const int P = ws->seq_P[s];
		const double *st = ws->hst + 4 * s;
		o->logp[0] = st[0];
		o->logp[1] = st[1];
		o->n[0] = ws->seq_n0[s];
		o->n[1] = ws->seq_n1[s];
		o->prompt_mean_logp = P > 1 ? st[2] / (P - 1) : 0;
		o->prompt_entropy = P > 1 ? st[3] / (P - 1) : 0;
		if (o->tok_logp[0] || o->tok_logp[1])
			for (int r = ws->seq_off[s]; r < ws->seq_off[s + 1]; r++) {
				const logit_row *ri = &ws->rows[r];
				for (int k = 0; k < 2; k++)
					if (ri->kind[k] >= 2 && o->tok_logp[ri->kind[k] - 2])
						o->tok_logp[ri->kind[k] - 2][ri->j[k]] = lp[2 * r + k];
			}
		if (o->h_last)
			memcpy(o->h_last, hl + (size_t)s * C, sizeof(float) * C);
		if (o->h_mean)
			memcpy(o->h_mean, hm + (size_t)s * C, sizeof(float) * C);
		for (int k = 0; k < 2; k++)
			o->reward[k] = m->score != NONE && k < seqs[s].n_comp ? ws->hrw[ws->eslot[2 * s + k]] : 0;
		for (int j = 0; o->tok_value && m->score != NONE && j < seqs[s].n_comp_tok[0]; j++)
			o->tok_value[j] = ws->hrw[ws->vidx[ws->vslot[s] + j]];
	}
	ws->have_fwd = train ? 1 : 0;
}

/* ------------------------------------------------------------- backward */

void model_backward(const model *m, model_ws *ws, const model_seq_grad *g, float *grads)
{
	if (!ws->have_fwd || ws->m != m)
		BUG("model: backward without a train-mode forward of this model on this workspace");
	const model_config *c = &m->cfg;
	const lb_backend *be = m->be;
	const int T = ws->T, C = c->dim, V = c->vocab_size, L = c->n_layers, F = c->hidden_dim;
	const int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, HD = H * hd, QKV = m->qkv_dim;
	const int FC = m->fc_dim, w_io = c->arch == ARCH_GPT2, n = ws->n_seq;
	/* With an adapter the base is frozen: grads are the adapter's (GL), no
	 * weight gradient of the base is formed (no dW products; norms' go to
	 * an unread sink), and no embedding backward. */
	lora *lo = m->lora;
	float *G = lo ? NULL : grads, *GL = lo ? grads : NULL;
	if (lo)
		be->memset0(m->sink, sizeof(float) * 2 * (size_t)(C > hd ? C : hd));
	float *const sink_w = m->sink, *const sink_b = m->sink ? m->sink + (C > hd ? C : hd) : NULL;
#define GP(off) ((off) == NONE || !G ? NULL : G + (off))
#define GW(off) (G ? G + (off) : NULL)    /* a weight matrix: NULL skips its dW */
#define GN(off) (G ? G + (off) : sink_w)  /* a norm's gain */
#define GNB(off) (G ? G + (off) : sink_b) /* a norm's bias */

	/* ---- dlogits in place: d log p(y)/dz = e_y − softmax(z) ----
	 * Row r with target weights w_k: dz = Σ_k w_k e_{y_k} − (Σ_k w_k)·p.
	 * Rows whose weights are all zero (no target, or e.g. prompt rows when
	 * d_prompt_mean_logp = 0) are left out of the two lm_head products.
	 * The weights are the hand-off up: w = dL/dlogp for completion targets,
	 * dL/d(prompt mean log-prob)/(P−1) for prompt targets. */
	int Tn = 0;
	for (int r = 0; r < T && m->score == NONE; r++) {
		const logit_row *ri = &ws->rows[r];
		const model_seq_grad *gs = &g[ri->seq];
		int act = 0;
		for (int k = 0; k < 2; k++)
			if ((ri->kind[k] == 1 && gs->d_prompt_mean_logp != 0 && ws->seq_P[ri->seq] > 1) ||
			    (ri->kind[k] >= 2 && (gs->d_logp[ri->kind[k] - 2] != 0 || gs->d_tok_logp[ri->kind[k] - 2])))
				act = 1;
		if (!act)
			continue;
		for (int k = 0; k < 2; k++) {
			double w = 0;
			if (ri->kind[k] == 1)
				w = gs->d_prompt_mean_logp / (ws->seq_P[ri->seq] - 1);
			else if (ri->kind[k] >= 2)
				w = gs->d_tok_logp[ri->kind[k] - 2] ? gs->d_tok_logp[ri->kind[k] - 2][ri->j[k]]
								    : gs->d_logp[ri->kind[k] - 2];
			ws->hw[2 * Tn + k] = w;
			ws->hy[2 * Tn + k] = ri->kind[k] ? ri->y[k] : -1;
		}
		ws->act_rows[Tn++] = r;
	}
	const int *d_act = dbuf_up(be, &ws->d_act_b, ws->act_rows, sizeof(int) * Tn);
	const double *d_w = dbuf_up(be, &ws->d_w_b, ws->hw, sizeof(double) * 2 * Tn);
	const int32_t *d_y = dbuf_up(be, &ws->d_y_b, ws->hy, sizeof(int32_t) * 2 * Tn);
	if (ws->lcap) /* the capped logits of those rows, for the soft-cap backward */
		be->rows_gather(ws->lcap, ws->logits, d_act, Tn, V);
	be->logit_grad_rows(ws->logits, ws->row_lse, d_act, d_w, d_y, Tn, V);
	be->rows_compact(ws->logits, d_act, Tn, V);
	if (ws->lcap)
		be->softcap_backward(ws->logits, ws->lcap, (size_t)Tn * V, c->final_softcap);
	float *hc = ws->tmp, *dhc = ws->dx; /* [Tn,C] gathered lnf rows, their gradient */
	be->rows_gather(hc, ws->lnf, d_act, Tn, C);
	/* dh [Tn,C] = dz·W_lm ; dW_lm += dzᵀ·h */
	stage_head(m);
	be->lmhead_backward(dhc, GW(m->lm_head), ws->logits, hc, P_(m, m->lm_head), Tn, C, V);
	float *dlnf = ws->dln; /* [T,C] */
	be->memset0(dlnf, sizeof(float) * (size_t)T * C);
	be->rows_scatter(dlnf, dhc, d_act, Tn, C);
	if (m->score != NONE)
		score_backward(m, ws, g, grads, dlnf); /* no LoRA on reward models (lora_new refuses) */
	/* the logits are consumed: a second backward needs a new forward */
	ws->have_fwd = 0;
	/* pooled hidden states: h_last = lnf[P−1], h_mean = mean_i lnf[i] */
	uint8_t *has_l = ws->hhas, *has_m = ws->hhas + n;
	int any = 0;
	for (int s = 0; s < n; s++) {
		has_l[s] = g[s].d_h_last != NULL;
		has_m[s] = g[s].d_h_mean != NULL;
		if (has_l[s])
			memcpy(ws->hdh + (size_t)s * C, g[s].d_h_last, sizeof(float) * C);
		if (has_m[s])
			memcpy(ws->hdh + (size_t)(n + s) * C, g[s].d_h_mean, sizeof(float) * C);
		any |= has_l[s] | has_m[s];
	}
	if (any) {
		const float *ddh = dbuf_up(be, &ws->d_dh_b, ws->hdh, sizeof(float) * 2 * n * C);
		const uint8_t *dhas = dbuf_up(be, &ws->d_has_b, ws->hhas, 2 * (size_t)n);
		be->pool_backward(dlnf, ddh, ddh + (size_t)n * C, dhas, dhas + n, ws->d_seq_off, ws->d_seq_P, n, C);
	}
	float *dx = ws->dx; /* [T,C] gradient of the residual stream */
	be->memset0(dx, sizeof(float) * (size_t)T * C);
	if (c->arch == ARCH_LLAMA)
		rms_bwd(m, dx, GN(m->lnf_w), dlnf, ws->xfin, m->lnf_w, ws->lnf_r, T);
	else
		be->layernorm_backward(dx, GN(m->lnf_w), GNB(m->lnf_b), dlnf, ws->xfin, P_(m, m->lnf_w), ws->lnf_m,
				       ws->lnf_r, T, C);

	for (int l = L - 1; l >= 0; l--) {
		const block_off *b = &m->blk[l];
		block_act *a = &ws->act[ws->gc ? 0 : l];
		if (ws->gc) /* the block again from its kept input: the same kernels, the same bits */
			layer_forward(m, ws, l);
		stage_block(m, l);
		if (c->gemma) {
			float *dt = ws->dtmp; /* d(MLP output before its norm), then d(o output) */
			be->memset0(dt, sizeof(float) * (size_t)T * C);
			rms_bwd(m, dt, GN(b->pn2_w), dx, a->mo, b->pn2_w, a->pn2_r, T);
			be->memset0(ws->dfca, sizeof(float) * (size_t)T * F);
			be->matmul_backward(ws->dfca, GW(b->proj_w), NULL, dt, a->fca, P_(m, b->proj_w), T, F, C, 0);
			lora_backward(lo, l, LORA_PROJ, ws->dfca, GL, dt, a->fca, T);
			be->memset0(ws->dln, sizeof(float) * (size_t)T * C);
			be->geglu_backward(ws->dfc, ws->dfca, a->fc, T, F);
			be->matmul_backward(ws->dln, GW(b->fc_w), NULL, ws->dfc, a->ln2, P_(m, b->fc_w), T, C, FC, 0);
			lora_backward(lo, l, LORA_FC, ws->dln, GL, ws->dfc, a->ln2, T);
			rms_bwd(m, dx, GN(b->ln2_w), ws->dln, a->xmid, b->ln2_w, a->ln2_r, T);
			be->memset0(dt, sizeof(float) * (size_t)T * C);
			rms_bwd(m, dt, GN(b->pn1_w), dx, a->ao, b->pn1_w, a->pn1_r, T);
			be->memset0(ws->datt, sizeof(float) * (size_t)T * HD);
			be->matmul_backward(ws->datt, GW(b->o_w), NULL, dt, a->att, P_(m, b->o_w), T, HD, C, 0);
			lora_backward(lo, l, LORA_O, ws->datt, GL, dt, a->att, T);
		} else {
			/* MLP: x_out = x_mid + proj(act(fc(norm2(x_mid)))) */
			be->memset0(ws->dfca, sizeof(float) * (size_t)T * F);
			be->matmul_backward(ws->dfca, GW(b->proj_w), GP(b->proj_b), dx, a->fca, P_(m, b->proj_w), T, F,
					    C, w_io);
			lora_backward(lo, l, LORA_PROJ, ws->dfca, GL, dx, a->fca, T);
			be->memset0(ws->dln, sizeof(float) * (size_t)T * C);
			if (c->arch == ARCH_LLAMA) {
				be->swiglu_backward(ws->dfc, ws->dfca, a->fc, T, F);
				be->matmul_backward(ws->dln, GW(b->fc_w), NULL, ws->dfc, a->ln2, P_(m, b->fc_w), T, C,
						    FC, 0);
				lora_backward(lo, l, LORA_FC, ws->dln, GL, ws->dfc, a->ln2, T);
				be->rmsnorm_backward(dx, GN(b->ln2_w), ws->dln, a->xmid, P_(m, b->ln2_w), 0.0f,
						     a->ln2_r, T, C);
			} else {
				if (c->gelu_exact)
					be->gelu_exact_backward(ws->dfc, ws->dfca, a->fc, (size_t)T * F);
				else
					be->gelu_backward(ws->dfc, ws->dfca, a->fc, (size_t)T * F);
				be->matmul_backward(ws->dln, GW(b->fc_w), GP(b->fc_b), ws->dfc, a->ln2, P_(m, b->fc_w),
						    T, C, FC, w_io);
				lora_backward(lo, l, LORA_FC, ws->dln, GL, ws->dfc, a->ln2, T);
				if (!c->parallel_residual)
					be->layernorm_backward(dx, GN(b->ln2_w), GNB(b->ln2_b), ws->dln, a->xmid,
							       P_(m, b->ln2_w), a->ln2_m, a->ln2_r, T, C);
			}
			/* attention: x_mid = x_in + o(attn(rope(qkv(norm1(x_in))))) */
			be->memset0(ws->datt, sizeof(float) * (size_t)T * HD);
			be->matmul_backward(ws->datt, GW(b->o_w), GP(b->o_b), dx, a->att, P_(m, b->o_w), T, HD, C,
					    w_io);
			lora_backward(lo, l, LORA_O, ws->datt, GL, dx, a->att, T);
			/* parallel residual: ln2 read x_in, and dx so far is d x_mid = d(attn out) */
			if (c->parallel_residual)
				be->layernorm_backward(dx, GN(b->ln2_w), GNB(b->ln2_b), ws->dln, a->xin,
						       P_(m, b->ln2_w), a->ln2_m, a->ln2_r, T, C);
		}
		be->memset0(ws->dqkv, sizeof(float) * (size_t)T * QKV);
		const int sw = layer_sliding(c, l);
		const int *ka = sw ? ws->d_wka : ws->d_ka, *kc = sw ? ws->d_wkc : ws->d_kc;
		be->attention_backward(ws->dqkv, ws->datt, a->qkv, a->att, a->att_lse, ka, ws->d_kb, kc, ws->d_seq_off,
				       ws->n_seq, T, H, KV, hd, att_scale(c), att_cap(c));
		be->memset0(ws->dln, sizeof(float) * (size_t)T * C);
		if (c->arch == ARCH_LLAMA) {
			be->rope_backward(ws->dqkv, layer_cs(ws, c, l), T, H + KV, hd, QKV);
			if (c->qk_norm) {
				const float wo = c->gemma ? 1.0f : 0.0f;
				be->headnorm_backward(ws->dqkv, GN(b->qn_w), a->qn_x, P_(m, b->qn_w), wo, a->qn_r, T, H,
						      hd, QKV);
				be->headnorm_backward(ws->dqkv + (size_t)H * hd, GN(b->kn_w), a->kn_x, P_(m, b->kn_w),
						      wo, a->kn_r, T, KV, hd, QKV);
			}
			be->matmul_backward(ws->dln, GW(b->qkv_w), GP(b->qkv_b), ws->dqkv, a->ln1, P_(m, b->qkv_w), T,
					    C, QKV, 0);
			lora_backward(lo, l, LORA_QKV, ws->dln, GL, ws->dqkv, a->ln1, T);
			rms_bwd(m, dx, GN(b->ln1_w), ws->dln, a->xin, b->ln1_w, a->ln1_r, T);
		} else {
			if (c->arch == ARCH_NEOX)
				be->rope_part_backward(ws->dqkv, ws->cs, T, 2 * H, hd, rot_dim(c), QKV);
			be->matmul_backward(ws->dln, GW(b->qkv_w), GP(b->qkv_b), ws->dqkv, a->ln1, P_(m, b->qkv_w), T,
					    C, QKV, w_io);
			lora_backward(lo, l, LORA_QKV, ws->dln, GL, ws->dqkv, a->ln1, T);
			be->layernorm_backward(dx, GN(b->ln1_w), GNB(b->ln1_b), ws->dln, a->xin, P_(m, b->ln1_w),
					       a->ln1_m, a->ln1_r, T, C);
		}
	}
	if (G) { /* a frozen embedding needs no gradient of the residual stream's start */
		if (c->gemma)
			be->scale(dx, (size_t)T * C, (float)sqrt((double)C));
		be->embed_backward(G + m->wte, GP(m->wpe), dx, ws->d_tok, ws->d_pos, T, C);
	}
#undef GP
#undef GW
#undef GN
#undef GNB
}

/* ------------------------------------------------------------- KV cache */

struct model_kv {
	const lb_backend *be;
	int max_len, len;
	float *k, *v; /* device [L, max_len, KV·hd] */
	model_ws *ws; /* per-feed activations (Lsave = 1) */
};

model_kv *model_kv_new(const model *m, int max_len)
{
	const model_config *c = &m->cfg;
	if (max_len < 1)
		die("model: KV cache length must be positive");
	if (c->arch == ARCH_GPT2 && max_len > c->max_seq_len)
		max_len = c->max_seq_len;
	model_kv *kv = xcalloc(1, sizeof *kv);
	kv->be = m->be;
	kv->max_len = max_len;
	size_t n = (size_t)c->n_layers * max_len * c->n_kv_heads * c->head_dim;
	kv->k = m->be->alloc(sizeof(float) * n);
	kv->v = m->be->alloc(sizeof(float) * n);
	kv->ws = model_ws_new(m);
	return kv;
}

void model_kv_reset(model_kv *kv) { kv->len = 0; }
int model_kv_len(const model_kv *kv) { return kv->len; }

void model_kv_free(model_kv *kv)
{
	if (!kv)
		return;
	kv->be->free(kv->k);
	kv->be->free(kv->v);
	model_ws_free(kv->ws);
	free(kv);
}

/* Attention of n new tokens over a cache of len0 (+ the n themselves). */
static void attn_decode(const model *m, float *out, const float *qkv, const float *K, const float *Vc, int len0, int n)
{
	const model_config *c = &m->cfg;
	m->be->attention_decode(out, qkv, K, Vc, len0, n, c->n_heads, c->n_kv_heads, c->head_dim, m->qkv_dim,
				att_scale(c), att_cap(c));
}

void model_kv_feed(const model *m, model_kv *kv, const uint32_t *toks, int n, float *logits)
{
	const model_config *c = &m->cfg;
	const lb_backend *be = m->be;
	const int C = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, L = c->n_layers;
	const int QKV = m->qkv_dim, KVD = KV * hd;
	if (n < 1)
		return;
	if (n > kv->max_len - kv->len)
		die("model: KV cache full (%d + %d tokens > %d)", kv->len, n, kv->max_len);
	check_tokens(m, toks, n, 0, "decoding");
	model_ws *ws = kv->ws;
	ws_plan(ws, n, 1, 0);
	if (m->lora)
		lora_next_forward(m->lora, 0);
	for (int i = 0; i < n; i++) {
		ws->tok[i] = toks[i];
		ws->pos[i] = kv->len + i;
	}
	ws->seq_off[0] = 0;
	ws->seq_off[1] = n;
	ws->seq_P[0] = n;
	backend_sync_up(be, ws->d_imem, ws->imem, sizeof(int) * ((size_t)8 * n + 5));
	block_act *a = &ws->act[0];
	embed_fwd(m, ws, a->xin, n);
	if (c->gemma)
		be->scale(a->xin, (size_t)n * C, (float)sqrt((double)C));
	if (c->arch != ARCH_GPT2)
		rope_cs(be, ws->cs, ws->pos, n, c);
	if (c->rope_local_theta > 0)
		rope_cs(be, ws->cs2, ws->pos, n,
			&(model_config){.head_dim = c->head_dim, .rope_theta = c->rope_local_theta});
	const int len0 = kv->len;
	for (int l = 0; l < L; l++) {
		const block_off *b = &m->blk[l];
		float *K = kv->k + (size_t)l * kv->max_len * KVD, *Vc = kv->v + (size_t)l * kv->max_len * KVD;
		stage_block(m, l);
		block_attn_in(m, b, a, a->ln1, a->ln1_m, a->ln1_r, a->qkv, a->xin, layer_cs(ws, c, l), n);
		be->kv_append(K, Vc, a->qkv, len0, n, H, KV, hd, QKV);
		/* token i sees cache positions 0 .. len0 + i; in a sliding layer only
		 * the last W of them: the tokens whose window starts past 0 go one by
		 * one on a cache view starting there. */
		int n_full = n;
		if (layer_sliding(c, l)) {
			n_full = c->window - len0;
			n_full = n_full < 0 ? 0 : n_full > n ? n : n_full;
		}
		if (n_full > 0)
			attn_decode(m, a->att, a->qkv, K, Vc, len0, n_full);
		for (int i = n_full; i < n; i++) {
			const size_t s0 = (size_t)(len0 + i - c->window + 1);
			attn_decode(m, a->att + (size_t)i * H * hd, a->qkv + (size_t)i * QKV, K + s0 * KVD,
				    Vc + s0 * KVD, c->window - 1, 1);
		}
		block_attn_out_mlp(m, b, a, a->xin, ws->tmp, n);
	}
	kv->len += n;
	const float *xl = a->xin + (size_t)(n - 1) * C;
	final_norm(m, ws->lnf, ws->lnf_m, ws->lnf_r, xl, 1);
	float *dl = be->unified ? logits : ws->logits;
	stage_head(m);
	be->lmhead_forward1(dl, ws->lnf, P_(m, m->lm_head), C, c->vocab_size);
	if (c->final_softcap > 0)
		be->softcap_forward(dl, (size_t)c->vocab_size, c->final_softcap);
	backend_sync_down(be, logits, dl, sizeof(float) * c->vocab_size);
}
