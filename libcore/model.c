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
#include "libcore/model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcore/layers.h"
#include "libcore/rope.h"
#include "libcore/util.h"

/* Offsets (floats from params) of one block's tensors; (size_t)-1 = absent. */
typedef struct {
	size_t ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b;
} block_off;

#define NONE ((size_t)-1)

struct model {
	model_config cfg;
	float *params;
	size_t n_params;
	model_tensor *tensors;
	int n_tensors, cap_tensors;
	block_off *blk;
	size_t wte, wpe, lnf_w, lnf_b, lm_head; /* lm_head == wte when tied */
	int qkv_dim;                             /* (H + 2KV)·hd */
	int fc_dim;                              /* llama 2F (gate|up), gpt2 F */
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

static void check_cfg(const model_config *c)
{
	if (c->arch != ARCH_LLAMA && c->arch != ARCH_GPT2)
		die("model: unknown architecture %d", (int)c->arch);
	const long lim = 1L << 24;
	if (c->dim <= 0 || c->dim > lim || c->hidden_dim <= 0 || c->hidden_dim > lim || c->n_layers <= 0 ||
	    c->n_layers > 4096 || c->n_heads <= 0 || c->n_heads > 4096 || c->n_kv_heads <= 0 ||
	    c->head_dim <= 0 || c->head_dim > 4096 || c->vocab_size <= 0 || c->vocab_size > (1 << 24) ||
	    c->max_seq_len <= 0 || c->max_seq_len > (1 << 24))
		die("model: configuration has an out-of-range size (dim %d, hidden %d, layers %d, heads %d/%d, "
		    "head_dim %d, vocab %d, positions %d)",
		    c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size,
		    c->max_seq_len);
	if (c->n_heads % c->n_kv_heads)
		die("model: n_heads %d is not a multiple of n_kv_heads %d", c->n_heads, c->n_kv_heads);
	if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
		die("model: norm_eps must be a positive number");
	if (c->arch == ARCH_LLAMA) {
		if (c->head_dim % 2)
			die("model: llama head_dim %d must be even (RoPE)", c->head_dim);
		if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
			die("model: rope_theta must be a positive number");
	} else {
		if (c->n_kv_heads != c->n_heads || (long)c->n_heads * c->head_dim != c->dim)
			die("model: gpt2 needs n_kv_heads == n_heads and n_heads·head_dim == dim");
		if (!c->tied_embeddings)
			die("model: gpt2 has a tied embedding");
		if (c->qkv_bias)
			die("model: qkv_bias is a llama-family option");
	}
}

model *model_new(const model_config *cfg)
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
			b->ln1_b = b->ln2_b = b->o_b = b->fc_b = b->proj_b = b->qkv_b = NONE;
#define T1(field, suffix, n) \
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
			T1(ln2_w, "post_attention_layernorm.weight", C);
			b->fc_w = T2("mlp.gate_proj.weight", F, C);
			T2("mlp.up_proj.weight", F, C);
			b->proj_w = T2("mlp.down_proj.weight", C, F);
#undef T1
#undef T2
		}
		m->lnf_w = add_tensor(m, "model.norm.weight", 1, C, 0);
		m->lm_head = c->tied_embeddings ? m->wte : add_tensor(m, "lm_head.weight", 2, V, C);
	} else {
		m->fc_dim = F;
		m->wte = add_tensor(m, "transformer.wte.weight", 2, V, C);
		m->wpe = add_tensor(m, "transformer.wpe.weight", 2, c->max_seq_len, C);
		for (int l = 0; l < L; l++) {
			block_off *b = &m->blk[l];
#define G(field, suffix, nd, r, cc) \
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
	if (m->n_params > ((size_t)1 << 36))
		die("model: %zu parameters is more than this build handles", m->n_params);
	m->params = xcalloc(m->n_params, sizeof(float));
	return m;
}

void model_free(model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n_tensors; i++)
		free((char *)m->tensors[i].name);
	free(m->tensors);
	free(m->blk);
	free(m->params);
	free(m);
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int is_norm_weight(const char *name)
{
	/* norm gains start at 1: RMSNorm/LayerNorm weights */
	size_t n = strlen(name);
	const char *sfx = ".weight";
	if (n < 7 || strcmp(name + n - 7, sfx))
		return 0;
	return strstr(name, "layernorm") || strstr(name, "ln_") || !strcmp(name, "model.norm.weight");
}

static int is_norm_bias(const char *name)
{
	size_t n = strlen(name);
	return n > 5 && !strcmp(name + n - 5, ".bias") && strstr(name, "ln_");
}

void model_init_random(model *m, uint64_t seed, float std)
{
	uint64_t s = seed;
	for (int i = 0; i < m->n_tensors; i++) {
		const model_tensor *t = &m->tensors[i];
		float *p = m->params + t->offset;
		if (is_norm_weight(t->name)) {
			for (size_t k = 0; k < t->numel; k++)
				p[k] = 1.0f;
		} else if (is_norm_bias(t->name)) {
			memset(p, 0, sizeof(float) * t->numel);
		} else {
			/* Box–Muller on 53-bit uniforms */
			for (size_t k = 0; k < t->numel; k += 2) {
				double u1 = ((splitmix64(&s) >> 11) + 1.0) * 0x1.0p-53;
				double u2 = (splitmix64(&s) >> 11) * 0x1.0p-53;
				double r = sqrt(-2.0 * log(u1));
				p[k] = (float)(std * r * cos(2 * M_PI * u2));
				if (k + 1 < t->numel)
					p[k + 1] = (float)(std * r * sin(2 * M_PI * u2));
			}
		}
	}
}

const model_config *model_cfg(const model *m) { return &m->cfg; }
float *model_params(model *m) { return m->params; }
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
			 c->arch == ARCH_LLAMA ? "llama" : "gpt2", c->dim, c->hidden_dim, c->n_layers, c->n_heads,
			 c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq_len,
			 c->arch == ARCH_LLAMA ? (double)c->rope_theta : 0.0, (double)c->norm_eps,
			 c->tied_embeddings, c->qkv_bias);
	sha256_ctx *h = sha256_new();
	sha256_update(h, txt, (size_t)n);
	if (c->arch == ARCH_LLAMA && c->rope.type != ROPE_DEFAULT) { /* plain-RoPE fingerprints unchanged */
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
	/* f32 little-endian: the in-memory layout on every supported host */
	sha256_update(h, m->params, m->n_params * sizeof(float));
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

void lbdpo_set_threads(int n)
{
	if (n <= 0)
		return;
	omp_set_num_threads(n);
	openblas_set_num_threads(n);
}

/* ------------------------------------------------------------- workspace */

typedef struct {
	int32_t y[2];    /* target token ids, -1 = none */
	int8_t kind[2];  /* 0 none, 1 prompt token, 2 comp0 token, 3 comp1 token */
	int32_t j[2];    /* index of the target inside its completion */
	int32_t seq;
} rowinfo;

/* One block's activations [T, ·]. */
typedef struct {
	float *xin;            /* [T,C] residual entering the block */
	float *ln1, *ln1_m, *ln1_r; /* [T,C], [T], [T] */
	float *qkv;            /* [T,QKV] post-RoPE */
	float *att, *att_lse;  /* [T,H·hd], [T,H] */
	float *xmid;           /* [T,C] residual after attention */
	float *ln2, *ln2_m, *ln2_r; /* [T,C], [T], [T] */
	float *fc;             /* [T,FC] pre-activation (llama: gate|up) */
	float *fca;            /* [T,F] activation */
} block_act;

struct model_ws {
	const model *m;
	float *mem;
	size_t cap, used;
	int *imem;
	size_t icap;
	/* current batch */
	int T, n_seq, train, Lsave;
	block_act *act; /* [Lsave] */
	float *xfin;    /* [T,C] residual after the last block */
	float *lnf, *lnf_m, *lnf_r; /* [T,C], [T], [T] */
	float *tmp;     /* [T,C] projection outputs before the residual add */
	float *logits;  /* [T,V]; in backward, dlogits in place */
	float *row_lse; /* [T] */
	float *row_lp;  /* [T,2] */
	float *row_ent; /* [T] */
	float *cs;      /* [T,hd] RoPE cos|sin */
	/* backward scratch (train only) */
	float *dx, *dln, *dqkv, *datt, *dfc, *dfca; /* [T,C] [T,C] [T,QKV] [T,H·hd] [T,FC] [T,F] */
	uint32_t *tok;  /* [T] */
	int *pos, *ka, *kb, *kc; /* [T] */
	int *seq_off;   /* [n_seq+1] */
	int *seq_P, *seq_n0, *seq_n1; /* [n_seq] */
	int *act_rows;  /* [T] logit rows with a nonzero gradient */
	rowinfo *rows;  /* [T] */
	size_t rows_cap;
	int have_fwd;
};

model_ws *model_ws_new(const model *m)
{
	model_ws *ws = xcalloc(1, sizeof *ws);
	ws->m = m;
	return ws;
}

void model_ws_free(model_ws *ws)
{
	if (!ws)
		return;
	free(ws->mem);
	free(ws->imem);
	free(ws->act);
	free(ws->rows);
	free(ws);
}

size_t model_ws_bytes(const model_ws *ws)
{
	return ws->cap * sizeof(float) + ws->icap * sizeof(int) + ws->rows_cap * sizeof(rowinfo);
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
}

static void ws_plan(model_ws *ws, int T, int n_seq, int train)
{
	const model_config *c = &ws->m->cfg;
	ws->T = T;
	ws->n_seq = n_seq;
	ws->train = train;
	ws->Lsave = train ? c->n_layers : 1;
	ws->act = xrealloc(ws->act, sizeof(block_act) * ws->Lsave);
	float *keep = ws->mem;
	ws->mem = NULL;
	ws_layout(ws); /* measure */
	ws->mem = keep;
	if (ws->used > ws->cap) {
		free(ws->mem);
		ws->mem = xmalloc(sizeof(float) * ws->used);
		ws->cap = ws->used;
	}
	ws_layout(ws);
	size_t ni = (size_t)6 * T + 4 * (size_t)n_seq + 1;
	if (ni > ws->icap) {
		free(ws->imem);
		ws->imem = xmalloc(sizeof(int) * ni);
		ws->icap = ni;
	}
	int *ip = ws->imem;
	ws->tok = (uint32_t *)ip, ip += T;
	ws->pos = ip, ip += T;
	ws->ka = ip, ip += T;
	ws->kb = ip, ip += T;
	ws->kc = ip, ip += T;
	ws->seq_off = ip, ip += n_seq + 1;
	ws->seq_P = ip, ip += n_seq;
	ws->seq_n0 = ip, ip += n_seq;
	ws->seq_n1 = ip, ip += n_seq;
	ws->act_rows = ip, ip += T;
	if ((size_t)T > ws->rows_cap) {
		free(ws->rows);
		ws->rows = xmalloc(sizeof(rowinfo) * T);
		ws->rows_cap = T;
	}
}

/* ------------------------------------------------------------ the blocks */

static const float *P_(const model *m, size_t off) { return off == NONE ? NULL : m->params + off; }

/* Norm + qkv projection + RoPE of one block: ln1, qkv from xin. */
static void block_attn_in(const model *m, const block_off *b, float *ln1, float *ln1_m, float *ln1_r, float *qkv,
			  const float *xin, const float *cs, int T)
{
	const model_config *c = &m->cfg;
	const int C = c->dim;
	if (c->arch == ARCH_LLAMA) {
		rmsnorm_forward(ln1, ln1_r, xin, P_(m, b->ln1_w), c->norm_eps, T, C);
		matmul_forward(qkv, ln1, P_(m, b->qkv_w), P_(m, b->qkv_b), T, C, m->qkv_dim, 0);
		rope_forward(qkv, cs, T, c->n_heads + c->n_kv_heads, c->head_dim, m->qkv_dim);
	} else {
		layernorm_forward(ln1, ln1_m, ln1_r, xin, P_(m, b->ln1_w), P_(m, b->ln1_b), c->norm_eps, T, C);
		matmul_forward(qkv, ln1, P_(m, b->qkv_w), P_(m, b->qkv_b), T, C, m->qkv_dim, 1);
	}
}

/* Output projection + residual + MLP + residual: xmid, ln2, fc, fca, xout. */
static void block_attn_out_mlp(const model *m, const block_off *b, block_act *a, float *xout, float *tmp, int T)
{
	const model_config *c = &m->cfg;
	const int C = c->dim, HD = c->n_heads * c->head_dim, F = c->hidden_dim;
	const int w_io = c->arch == ARCH_GPT2;
	matmul_forward(tmp, a->att, P_(m, b->o_w), P_(m, b->o_b), T, HD, C, w_io);
	residual_forward(a->xmid, a->xin, tmp, (size_t)T * C);
	if (c->arch == ARCH_LLAMA) {
		rmsnorm_forward(a->ln2, a->ln2_r, a->xmid, P_(m, b->ln2_w), c->norm_eps, T, C);
		matmul_forward(a->fc, a->ln2, P_(m, b->fc_w), NULL, T, C, 2 * F, 0);
		swiglu_forward(a->fca, a->fc, T, F);
	} else {
		layernorm_forward(a->ln2, a->ln2_m, a->ln2_r, a->xmid, P_(m, b->ln2_w), P_(m, b->ln2_b), c->norm_eps,
				  T, C);
		matmul_forward(a->fc, a->ln2, P_(m, b->fc_w), P_(m, b->fc_b), T, C, F, 1);
		gelu_forward(a->fca, a->fc, (size_t)T * F);
	}
	matmul_forward(tmp, a->fca, P_(m, b->proj_w), P_(m, b->proj_b), T, F, C, w_io);
	residual_forward(xout, a->xmid, tmp, (size_t)T * C);
}

static void final_norm(const model *m, float *out, float *mean, float *rstd, const float *x, int T)
{
	const model_config *c = &m->cfg;
	if (c->arch == ARCH_LLAMA)
		rmsnorm_forward(out, rstd, x, P_(m, m->lnf_w), c->norm_eps, T, c->dim);
	else
		layernorm_forward(out, mean, rstd, x, P_(m, m->lnf_w), P_(m, m->lnf_b), c->norm_eps, T, c->dim);
}

/* ------------------------------------------------------- packed forward */

static void check_tokens(const model *m, const uint32_t *t, int n, int s, const char *what)
{
	for (int i = 0; i < n; i++)
		if (t[i] >= (uint32_t)m->cfg.vocab_size)
			die("model: sequence %d: %s token %d is %u, outside the vocabulary (%d)", s, what, i, t[i],
			    m->cfg.vocab_size);
}

void model_forward(const model *m, model_ws *ws, const model_seq *seqs, int n, model_scores *out, int train)
{
	const model_config *c = &m->cfg;
	const int C = c->dim, V = c->vocab_size, L = c->n_layers;
	if (ws->m != m)
		die("model: workspace belongs to another model");
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
	const int T = (int)Tl;
	ws_plan(ws, T, n, train);
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
			rowinfo *r = &ws->rows[t];
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
				rowinfo *r = &ws->rows[t];
				r->seq = s;
				r->y[0] = r->y[1] = -1;
				r->kind[0] = r->kind[1] = 0;
				if (j < nk - 1)
					r->y[0] = q->comp[k][j + 1], r->kind[0] = 2 + k, r->j[0] = j + 1;
			}
		}
	}
	ws->seq_off[n] = T;

	/* ---- embedding and blocks ---- */
	embed_forward(ws->act[0].xin, ws->tok, ws->pos, P_(m, m->wte), P_(m, m->wpe), T, C);
	if (c->arch == ARCH_LLAMA)
		rope_table_cfg(ws->cs, ws->pos, T, c);
	for (int l = 0; l < L; l++) {
		block_act *a = &ws->act[train ? l : 0];
		const block_off *b = &m->blk[l];
		block_attn_in(m, b, a->ln1, a->ln1_m, a->ln1_r, a->qkv, a->xin, ws->cs, T);
		attention_forward(a->att, a->att_lse, a->qkv, ws->ka, ws->kb, ws->kc, T, c->n_heads, c->n_kv_heads,
				  c->head_dim);
		float *xout = train ? (l + 1 < L ? ws->act[l + 1].xin : ws->xfin) : a->xin;
		block_attn_out_mlp(m, b, a, xout, ws->tmp, T);
	}
	final_norm(m, ws->lnf, ws->lnf_m, ws->lnf_r, ws->xfin, T);

	/* ---- logits [T,V] and the fused log-softmax ----
	 * lse = m + log Σ e^(z−m); log p(y) = z_y − lse;
	 * entropy = lse − Σ p·z  (computed from the same exp pass). */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, V, C, 1.0f, ws->lnf, C, P_(m, m->lm_head), C, 0.0f,
		    ws->logits, V);
#pragma omp parallel for schedule(static)
	for (int r = 0; r < T; r++) {
		const rowinfo *ri = &ws->rows[r];
		if (!ri->kind[0] && !ri->kind[1])
			continue;
		const float *z = ws->logits + (size_t)r * V;
		float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
		for (int v = 0; v < V; v++)
			mx = z[v] > mx ? z[v] : mx;
		double se = 0, sez = 0;
		if (ri->kind[0] == 1) {
#pragma omp simd reduction(+ : se, sez)
			for (int v = 0; v < V; v++) {
				float e = expf(z[v] - mx);
				se += e;
				sez += (double)e * (z[v] - mx);
			}
		} else {
#pragma omp simd reduction(+ : se)
			for (int v = 0; v < V; v++)
				se += expf(z[v] - mx);
		}
		double lse = mx + log(se);
		ws->row_lse[r] = (float)lse;
		ws->row_ent[r] = (float)(log(se) - sez / se);
		for (int k = 0; k < 2; k++)
			ws->row_lp[2 * r + k] = ri->kind[k] ? (float)(z[ri->y[k]] - lse) : 0.0f;
	}
	/* ---- per-sequence reductions (serial, deterministic order) ---- */
	for (int s = 0; s < n; s++) {
		model_scores *o = &out[s];
		const int st = ws->seq_off[s], P = ws->seq_P[s];
		o->logp[0] = o->logp[1] = 0;
		o->n[0] = ws->seq_n0[s];
		o->n[1] = ws->seq_n1[s];
		double pl = 0, pe = 0;
		for (int r = st; r < ws->seq_off[s + 1]; r++) {
			const rowinfo *ri = &ws->rows[r];
			for (int k = 0; k < 2; k++) {
				if (ri->kind[k] == 1) {
					pl += ws->row_lp[2 * r + k];
					pe += ws->row_ent[r];
				} else if (ri->kind[k] >= 2) {
					int cmp = ri->kind[k] - 2;
					o->logp[cmp] += ws->row_lp[2 * r + k];
					if (o->tok_logp[cmp])
						o->tok_logp[cmp][ri->j[k]] = ws->row_lp[2 * r + k];
				}
			}
		}
		o->prompt_mean_logp = P > 1 ? pl / (P - 1) : 0;
		o->prompt_entropy = P > 1 ? pe / (P - 1) : 0;
		if (o->h_last)
			memcpy(o->h_last, ws->lnf + (size_t)(st + P - 1) * C, sizeof(float) * C);
		if (o->h_mean) {
			for (int ch = 0; ch < C; ch++) {
				double acc = 0;
				for (int i = 0; i < P; i++)
					acc += ws->lnf[(size_t)(st + i) * C + ch];
				o->h_mean[ch] = (float)(acc / P);
			}
		}
	}
	ws->have_fwd = train ? 1 : 0;
}

/* ------------------------------------------------------------- backward */

void model_backward(const model *m, model_ws *ws, const model_seq_grad *g, float *grads)
{
	if (!ws->have_fwd || ws->m != m)
		die("model: backward without a train-mode forward of this model on this workspace");
	const model_config *c = &m->cfg;
	const int T = ws->T, C = c->dim, V = c->vocab_size, L = c->n_layers, F = c->hidden_dim;
	const int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, HD = H * hd, QKV = m->qkv_dim;
	const int FC = m->fc_dim, w_io = c->arch == ARCH_GPT2;
	float *G = grads;
#define GP(off) ((off) == NONE ? NULL : G + (off))

	/* ---- dlogits in place: d log p(y)/dz = e_y − softmax(z) ----
	 * Row r with target weights w_k: dz = Σ_k w_k e_{y_k} − (Σ_k w_k)·p.
	 * Rows whose weights are all zero (no target, or e.g. prompt rows when
	 * d_prompt_mean_logp = 0) are left out of the two lm_head products. */
	int Tn = 0;
	for (int r = 0; r < T; r++) {
		const rowinfo *ri = &ws->rows[r];
		const model_seq_grad *gs = &g[ri->seq];
		int act = 0;
		for (int k = 0; k < 2; k++)
			if ((ri->kind[k] == 1 && gs->d_prompt_mean_logp != 0 && ws->seq_P[ri->seq] > 1) ||
			    (ri->kind[k] >= 2 && gs->d_logp[ri->kind[k] - 2] != 0))
				act = 1;
		if (act)
			ws->act_rows[Tn++] = r;
	}
#pragma omp parallel for schedule(static)
	for (int i = 0; i < Tn; i++) {
		const int r = ws->act_rows[i];
		const rowinfo *ri = &ws->rows[r];
		const model_seq_grad *gs = &g[ri->seq];
		float *z = ws->logits + (size_t)r * V;
		double w[2] = { 0, 0 };
		for (int k = 0; k < 2; k++) {
			if (ri->kind[k] == 1)
				w[k] = gs->d_prompt_mean_logp / (ws->seq_P[ri->seq] - 1);
			else if (ri->kind[k] >= 2)
				w[k] = gs->d_logp[ri->kind[k] - 2];
		}
		const float a = (float)(w[0] + w[1]), l = ws->row_lse[r];
		for (int v = 0; v < V; v++)
			z[v] = -a * expf(z[v] - l);
		for (int k = 0; k < 2; k++)
			if (ri->kind[k])
				z[ri->y[k]] += (float)w[k];
	}
	/* compact: active row i moves to slot i (i ≤ act_rows[i], so in order) */
	for (int i = 0; i < Tn; i++)
		if (ws->act_rows[i] != i)
			memmove(ws->logits + (size_t)i * V, ws->logits + (size_t)ws->act_rows[i] * V, sizeof(float) * V);
	float *hc = ws->tmp, *dhc = ws->dx; /* [Tn,C] gathered lnf rows, their gradient */
#pragma omp parallel for schedule(static)
	for (int i = 0; i < Tn; i++)
		memcpy(hc + (size_t)i * C, ws->lnf + (size_t)ws->act_rows[i] * C, sizeof(float) * C);
	/* dh [Tn,C] = dz·W_lm ; dW_lm += dzᵀ·h */
	if (Tn > 0) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tn, C, V, 1.0f, ws->logits, V, P_(m, m->lm_head),
			    C, 0.0f, dhc, C);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, Tn, 1.0f, ws->logits, V, hc, C, 1.0f,
			    G + m->lm_head, C);
	}
	float *dlnf = ws->dln; /* [T,C] */
	memset(dlnf, 0, sizeof(float) * (size_t)T * C);
#pragma omp parallel for schedule(static)
	for (int i = 0; i < Tn; i++)
		memcpy(dlnf + (size_t)ws->act_rows[i] * C, dhc + (size_t)i * C, sizeof(float) * C);
	/* the logits are consumed: a second backward needs a new forward */
	ws->have_fwd = 0;
	/* pooled hidden states: h_last = lnf[P−1], h_mean = mean_i lnf[i] */
	for (int s = 0; s < ws->n_seq; s++) {
		const int st = ws->seq_off[s], P = ws->seq_P[s];
		if (g[s].d_h_last)
			for (int ch = 0; ch < C; ch++)
				dlnf[(size_t)(st + P - 1) * C + ch] += g[s].d_h_last[ch];
		if (g[s].d_h_mean)
			for (int i = 0; i < P; i++)
				for (int ch = 0; ch < C; ch++)
					dlnf[(size_t)(st + i) * C + ch] += g[s].d_h_mean[ch] / P;
	}
	float *dx = ws->dx; /* [T,C] gradient of the residual stream */
	memset(dx, 0, sizeof(float) * (size_t)T * C);
	if (c->arch == ARCH_LLAMA)
		rmsnorm_backward(dx, G + m->lnf_w, dlnf, ws->xfin, P_(m, m->lnf_w), ws->lnf_r, T, C);
	else
		layernorm_backward(dx, G + m->lnf_w, G + m->lnf_b, dlnf, ws->xfin, P_(m, m->lnf_w), ws->lnf_m,
				   ws->lnf_r, T, C);

	for (int l = L - 1; l >= 0; l--) {
		const block_off *b = &m->blk[l];
		block_act *a = &ws->act[l];
		/* MLP: x_out = x_mid + proj(act(fc(norm2(x_mid)))) */
		memset(ws->dfca, 0, sizeof(float) * (size_t)T * F);
		matmul_backward(ws->dfca, G + b->proj_w, GP(b->proj_b), dx, a->fca, P_(m, b->proj_w), T, F, C, w_io);
		memset(ws->dln, 0, sizeof(float) * (size_t)T * C);
		if (c->arch == ARCH_LLAMA) {
			swiglu_backward(ws->dfc, ws->dfca, a->fc, T, F);
			matmul_backward(ws->dln, G + b->fc_w, NULL, ws->dfc, a->ln2, P_(m, b->fc_w), T, C, FC, 0);
			rmsnorm_backward(dx, G + b->ln2_w, ws->dln, a->xmid, P_(m, b->ln2_w), a->ln2_r, T, C);
		} else {
			gelu_backward(ws->dfc, ws->dfca, a->fc, (size_t)T * F);
			matmul_backward(ws->dln, G + b->fc_w, G + b->fc_b, ws->dfc, a->ln2, P_(m, b->fc_w), T, C, FC, 1);
			layernorm_backward(dx, G + b->ln2_w, G + b->ln2_b, ws->dln, a->xmid, P_(m, b->ln2_w), a->ln2_m,
					   a->ln2_r, T, C);
		}
		/* attention: x_mid = x_in + o(attn(rope(qkv(norm1(x_in))))) */
		memset(ws->datt, 0, sizeof(float) * (size_t)T * HD);
		matmul_backward(ws->datt, G + b->o_w, GP(b->o_b), dx, a->att, P_(m, b->o_w), T, HD, C, w_io);
		memset(ws->dqkv, 0, sizeof(float) * (size_t)T * QKV);
		attention_backward(ws->dqkv, ws->datt, a->qkv, a->att, a->att_lse, ws->ka, ws->kb, ws->kc, ws->seq_off,
				   ws->n_seq, T, H, KV, hd);
		memset(ws->dln, 0, sizeof(float) * (size_t)T * C);
		if (c->arch == ARCH_LLAMA) {
			rope_backward(ws->dqkv, ws->cs, T, H + KV, hd, QKV);
			matmul_backward(ws->dln, G + b->qkv_w, GP(b->qkv_b), ws->dqkv, a->ln1, P_(m, b->qkv_w), T, C, QKV,
					0);
			rmsnorm_backward(dx, G + b->ln1_w, ws->dln, a->xin, P_(m, b->ln1_w), a->ln1_r, T, C);
		} else {
			matmul_backward(ws->dln, G + b->qkv_w, G + b->qkv_b, ws->dqkv, a->ln1, P_(m, b->qkv_w), T, C, QKV,
					1);
			layernorm_backward(dx, G + b->ln1_w, G + b->ln1_b, ws->dln, a->xin, P_(m, b->ln1_w), a->ln1_m,
					   a->ln1_r, T, C);
		}
	}
	embed_backward(G + m->wte, GP(m->wpe), dx, ws->tok, ws->pos, T, C);
#undef GP
}

/* ------------------------------------------------------------- KV cache */

struct model_kv {
	int max_len, len, cap_n;
	float *k, *v;   /* [L, max_len, KV·hd] */
	model_ws *ws;   /* per-feed activations (Lsave = 1) */
	int *pos;       /* [cap_n] */
};

model_kv *model_kv_new(const model *m, int max_len)
{
	const model_config *c = &m->cfg;
	if (max_len < 1)
		die("model: KV cache length must be positive");
	if (c->arch == ARCH_GPT2 && max_len > c->max_seq_len)
		max_len = c->max_seq_len;
	model_kv *kv = xcalloc(1, sizeof *kv);
	kv->max_len = max_len;
	size_t n = (size_t)c->n_layers * max_len * c->n_kv_heads * c->head_dim;
	kv->k = xmalloc(sizeof(float) * n);
	kv->v = xmalloc(sizeof(float) * n);
	kv->ws = model_ws_new(m);
	return kv;
}

void model_kv_reset(model_kv *kv) { kv->len = 0; }
int model_kv_len(const model_kv *kv) { return kv->len; }

void model_kv_free(model_kv *kv)
{
	if (!kv)
		return;
	free(kv->k);
	free(kv->v);
	free(kv->pos);
	model_ws_free(kv->ws);
	free(kv);
}

void model_kv_feed(const model *m, model_kv *kv, const uint32_t *toks, int n, float *logits)
{
	const model_config *c = &m->cfg;
	const int C = c->dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, L = c->n_layers;
	const int QKV = m->qkv_dim, KVD = KV * hd, grp = H / KV;
	if (n < 1)
		return;
	if (n > kv->max_len - kv->len)
		die("model: KV cache full (%d + %d tokens > %d)", kv->len, n, kv->max_len);
	check_tokens(m, toks, n, 0, "decoding");
	model_ws *ws = kv->ws;
	ws_plan(ws, n, 1, 0);
	for (int i = 0; i < n; i++) {
		ws->tok[i] = toks[i];
		ws->pos[i] = kv->len + i;
	}
	block_act *a = &ws->act[0];
	embed_forward(a->xin, ws->tok, ws->pos, P_(m, m->wte), P_(m, m->wpe), n, C);
	if (c->arch == ARCH_LLAMA)
		rope_table_cfg(ws->cs, ws->pos, n, c);
	const float scale = 1.0f / sqrtf((float)hd);
	const int len0 = kv->len;
	for (int l = 0; l < L; l++) {
		const block_off *b = &m->blk[l];
		float *K = kv->k + (size_t)l * kv->max_len * KVD, *Vc = kv->v + (size_t)l * kv->max_len * KVD;
		block_attn_in(m, b, a->ln1, a->ln1_m, a->ln1_r, a->qkv, a->xin, ws->cs, n);
		for (int i = 0; i < n; i++) {
			memcpy(K + (size_t)(len0 + i) * KVD, a->qkv + (size_t)i * QKV + (size_t)H * hd, sizeof(float) * KVD);
			memcpy(Vc + (size_t)(len0 + i) * KVD, a->qkv + (size_t)i * QKV + (size_t)(H + KV) * hd,
			       sizeof(float) * KVD);
		}
		/* token i sees cache positions 0 .. len0 + i */
#pragma omp parallel
		{
			float *sc = xmalloc(sizeof(float) * (size_t)(len0 + n));
#pragma omp for collapse(2) schedule(static)
			for (int i = 0; i < n; i++) {
				for (int h = 0; h < H; h++) {
					const float *q = a->qkv + (size_t)i * QKV + (size_t)h * hd;
					const int kh = h / grp, nk = len0 + i + 1;
					float mx = -INFINITY, sum = 0;
					for (int j = 0; j < nk; j++) {
						const float *k = K + (size_t)j * KVD + (size_t)kh * hd;
						float d = 0;
						for (int e = 0; e < hd; e++)
							d += q[e] * k[e];
						sc[j] = d * scale;
						mx = sc[j] > mx ? sc[j] : mx;
					}
					for (int j = 0; j < nk; j++) {
						sc[j] = expf(sc[j] - mx);
						sum += sc[j];
					}
					float *o = a->att + (size_t)i * H * hd + (size_t)h * hd;
					memset(o, 0, sizeof(float) * hd);
					for (int j = 0; j < nk; j++) {
						const float *v = Vc + (size_t)j * KVD + (size_t)kh * hd;
						for (int e = 0; e < hd; e++)
							o[e] += sc[j] * v[e];
					}
					for (int e = 0; e < hd; e++)
						o[e] /= sum;
				}
			}
			free(sc);
		}
		block_attn_out_mlp(m, b, a, a->xin, ws->tmp, n);
	}
	kv->len += n;
	const float *xl = a->xin + (size_t)(n - 1) * C;
	final_norm(m, ws->lnf, ws->lnf_m, ws->lnf_r, xl, 1);
	cblas_sgemv(CblasRowMajor, CblasNoTrans, c->vocab_size, C, 1.0f, P_(m, m->lm_head), C, ws->lnf, 1, 0.0f,
		    logits, 1);
}
