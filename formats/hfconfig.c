/* hfconfig.c — Hugging Face config.json <-> model_config (see hfconfig.h).
 *
 * Accepts both the transformers 4.x spelling (top-level rope_theta,
 * rope_scaling) and the 5.x one (rope_parameters {rope_type, rope_theta}).
 */
#define _GNU_SOURCE
#include "formats/hfconfig.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

typedef struct {
	const char *name;
	char *err;
	size_t errsz;
	json_t *root;
	float prf; /* partial_rotary_factor parse_rope found (1 = none) */
} ctx;

static int fail(ctx *c, const char *fmt, ...) LBDPO_PRINTF(2, 3);
static int fail(ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c->err && c->errsz)
		snprintf(c->err, c->errsz, "%s: %s", c->name, msg);
	return -1;
}

static int is_null(json_t *v) { return !v || json_is_null(v); }

/* Integer key in [lo, hi]; def when absent/null (req: absence is an error). */
static int get_int(ctx *c, const char *key, int req, long def, long lo, long hi, int *out)
{
	json_t *v = json_object_get(c->root, key);
	if (is_null(v)) {
		if (req)
			return fail(c, "missing required key '%s'", key);
		*out = (int)def;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(c, "key '%s' must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return fail(c, "key '%s' = %lld is out of range [%ld, %ld]", key, (long long)x, lo, hi);
	*out = (int)x;
	return 0;
}

static int num_of(json_t *v, double *out)
{
	if (json_is_integer(v))
		*out = (double)json_integer_value(v);
	else if (json_is_real(v))
		*out = json_real_value(v);
	else
		return -1;
	return 0;
}

static int get_num(ctx *c, json_t *obj, const char *key, double def, double lo, double hi, float *out)
{
	json_t *v = json_object_get(obj, key);
	double x = def;
	if (!is_null(v) && num_of(v, &x))
		return fail(c, "key '%s' must be a number", key);
	if (!(x > lo && x < hi))
		return fail(c, "key '%s' = %g is out of range (%g, %g)", key, x, lo, hi);
	*out = (float)x;
	return 0;
}

static int get_bool(ctx *c, const char *key, int def, int *out)
{
	json_t *v = json_object_get(c->root, key);
	if (is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return fail(c, "key '%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

/* A token id that may be a list (take the first) or null (-1). */
static int get_tok(ctx *c, const char *key, int def, int *out)
{
	json_t *v = json_object_get(c->root, key);
	if (json_is_array(v))
		v = json_array_size(v) ? json_array_get(v, 0) : NULL;
	if (!v) {
		*out = def;
		return 0;
	}
	if (json_is_null(v)) {
		*out = -1;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30))
		return fail(c, "key '%s' must be a token id (or a list of them)", key);
	*out = (int)json_integer_value(v);
	return 0;
}

/* A default id (key absent) that the vocabulary cannot hold means "unknown". */
static void default_tok(ctx *c, const char *key, int *id, int vocab)
{
	if (!json_object_get(c->root, key) && *id >= vocab)
		*id = -1;
}

static const char *get_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Optional number in obj: *out untouched when absent or null. */
static int opt_num(ctx *c, json_t *obj, const char *key, double lo, double hi, float *out)
{
	json_t *v = json_object_get(obj, key);
	if (is_null(v))
		return 0;
	return get_num(c, obj, key, 0, lo, hi, out);
}

static rope_kind rope_kind_of(const char *t)
{
	static const char *const n[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope"};
	for (int i = 0; i < 6; i++)
		if (!strcmp(t, n[i]))
			return (rope_kind)i;
	if (!strcmp(t, "su")) /* Phi-3's first name for longrope */
		return ROPE_LONGROPE;
	return (rope_kind)-1;
}

static int rope_factors(ctx *c, const char *where, json_t *v, const char *key, int n, float *out)
{
	json_t *a = json_object_get(v, key);
	if (!json_is_array(a))
		return fail(c, "%s.%s must be a list of %d numbers (longrope)", where, key, n);
	if ((int)json_array_size(a) != n)
		return fail(c, "%s.%s has %zu entries, head_dim %d needs %d", where, key, json_array_size(a), 2 * n, n);
	for (int i = 0; i < n; i++) {
		double x;
		if (num_of(json_array_get(a, i), &x) || !(x > 0 && x < 1e9))
			return fail(c, "%s.%s[%d] must be a positive number", where, key, i);
		out[i] = (float)x;
	}
	return 0;
}

/* RoPE: rope_theta and the scaling dict, spelled rope_scaling (transformers
 * 4.x, "type" or "rope_type") or rope_parameters (5.x, which also holds
 * rope_theta). Types: libcore/nn/rope.c. Call after head_dim and
 * max_position_embeddings are known. */
static int parse_rope(ctx *c, model_config *cfg)
{
	static const char *const known[] = {"type",
					    "rope_type",
					    "rope_theta",
					    "partial_rotary_factor",
					    "factor",
					    "original_max_position_embeddings",
					    "low_freq_factor",
					    "high_freq_factor",
					    "beta_fast",
					    "beta_slow",
					    "mscale",
					    "mscale_all_dim",
					    "attention_factor",
					    "truncate",
					    "short_factor",
					    "long_factor",
					    NULL};
	float theta = 10000.0f;
	if (get_num(c, c->root, "rope_theta", 10000.0, 0, 1e12, &theta))
		return -1;
	float prf = c->prf > 0 ? c->prf : 1; /* gpt_neox: rotary_pct, read before */
	if (opt_num(c, c->root, "partial_rotary_factor", 0, 2, &prf))
		return -1;
	rope_scaling *r = &cfg->rope;
	memset(r, 0, sizeof *r);
	r->truncate = 1;
	const char *keys[] = {"rope_scaling", "rope_parameters"};
	int seen = -1;
	for (int k = 0; k < 2; k++) {
		json_t *v = json_object_get(c->root, keys[k]);
		if (is_null(v))
			continue;
		if (!json_is_object(v))
			return fail(c, "key '%s' must be an object or null", keys[k]);
		const char *kk;
		json_t *x;
		json_object_foreach(v, kk, x)
		{
			int ok = 0;
			for (int i = 0; known[i] && !ok; i++)
				ok = !strcmp(kk, known[i]);
			if (!ok)
				return fail(c, "unsupported %s key '%.40s'", keys[k], kk);
		}
		const char *t = get_str(v, "rope_type");
		if (!t)
			t = get_str(v, "type");
		if (!t && k == 0)
			return fail(c, "rope_scaling has no type");
		rope_kind rk = t ? rope_kind_of(t) : ROPE_DEFAULT;
		if (rk == ROPE_YARN && cfg->family == FAM_PHI3) /* Phi3Config reads "su" and "yarn" as longrope */
			rk = ROPE_LONGROPE;
		if ((int)rk < 0)
			return fail(c,
				    "unsupported %s (type '%.40s'; implemented: default, linear, dynamic, yarn, "
				    "llama3, longrope)",
				    keys[k], t);
		if (seen >= 0 && rk != r->type)
			return fail(c, "rope_scaling (type '%s') and rope_parameters (type '%s') disagree",
				    rope_kind_name(r->type), rope_kind_name(rk));
		seen = k;
		r->type = rk;
		if (opt_num(c, v, "rope_theta", 0, 1e12, &theta) || opt_num(c, v, "partial_rotary_factor", 0, 2, &prf))
			return -1;
		float om = 0;
		if (opt_num(c, v, "original_max_position_embeddings", 0, 1 << 24, &om) ||
		    opt_num(c, v, "factor", 0, 1e6, &r->factor) ||
		    opt_num(c, v, "low_freq_factor", 0, 1e6, &r->low_freq_factor) ||
		    opt_num(c, v, "high_freq_factor", 0, 1e6, &r->high_freq_factor) ||
		    opt_num(c, v, "beta_fast", 0, 1e6, &r->beta_fast) ||
		    opt_num(c, v, "beta_slow", 0, 1e6, &r->beta_slow) ||
		    opt_num(c, v, "mscale", -1e6, 1e6, &r->mscale) ||
		    opt_num(c, v, "mscale_all_dim", -1e6, 1e6, &r->mscale_all_dim) ||
		    opt_num(c, v, "attention_factor", 0, 1e6, &r->attention_factor))
			return -1;
		if (om > 0)
			r->original_max = (int)om;
		json_t *tr = json_object_get(v, "truncate");
		if (!is_null(tr)) {
			if (!json_is_boolean(tr))
				return fail(c, "%s.truncate must be true or false", keys[k]);
			r->truncate = json_is_true(tr);
		}
		if (rk == ROPE_LONGROPE) {
			r->n_factors = cfg->head_dim / 2;
			if (r->n_factors > ROPE_MAX_FACTORS)
				return fail(c, "longrope with head_dim %d: at most %d factors supported", cfg->head_dim,
					    ROPE_MAX_FACTORS);
			if (rope_factors(c, keys[k], v, "short_factor", r->n_factors, r->short_factor) ||
			    rope_factors(c, keys[k], v, "long_factor", r->n_factors, r->long_factor))
				return -1;
		}
		if ((rk == ROPE_LINEAR || rk == ROPE_DYNAMIC || rk == ROPE_LLAMA3) && !(r->factor > 0))
			return fail(c, "%s type '%s' needs a positive factor", keys[k], t);
		if (rk == ROPE_LLAMA3 && !(r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor))
			return fail(c, "%s type 'llama3' needs 0 < low_freq_factor < high_freq_factor", keys[k]);
	}
	/* Phi-3 keeps the pretraining length at the top level; transformers lets
	 * it win over the dict's. */
	float om = cfg->family == FAM_PHI3 ? 4096 : 0; /* Phi3Config's default */
	if (r->type != ROPE_DEFAULT && opt_num(c, c->root, "original_max_position_embeddings", 0, 1 << 24, &om))
		return -1;
	if (om > 0 && r->type >= ROPE_YARN)
		r->original_max = (int)om;
	if (prf != 1.0f && cfg->arch != ARCH_NEOX)
		return fail(c,
			    "unsupported partial_rotary_factor %g (partial rotary embeddings are implemented for "
			    "gpt_neox only)",
			    prf);
	c->prf = prf;
	cfg->rope_theta = theta;
	return 0;
}

/* torch_dtype (4.x) or dtype (5.x): what the weights are saved as again. */
static int parse_dtype(ctx *c, model_config *cfg)
{
	const char *d = get_str(c->root, "dtype");
	if (!d)
		d = get_str(c->root, "torch_dtype");
	cfg->save_dtype = 0;
	if (d && !strcmp(d, "bfloat16"))
		cfg->save_dtype = 2; /* ST_BF16 */
	else if (d && !strcmp(d, "float16"))
		cfg->save_dtype = 1; /* ST_F16 */
	return 0;
}

/* Gemma 2's attention details (the rest is parse_llama's). */
static int parse_gemma(ctx *c, model_config *cfg)
{
	cfg->gemma = 1;
	int qs = 256;
	if (get_int(c, "query_pre_attn_scalar", 0, 256, 1, 1 << 20, &qs))
		return -1;
	cfg->query_scalar = (float)qs;
	const char *k[2] = {"attn_logit_softcapping", "final_logit_softcapping"};
	float *v[2] = {&cfg->attn_softcap, &cfg->final_softcap};
	for (int i = 0; i < 2; i++) {
		json_t *x = json_object_get(c->root, k[i]);
		*v[i] = cfg->family == FAM_GEMMA3 ? 0.0f : i ? 30.0f : 50.0f; /* the configs' defaults when absent */
		if (x && json_is_null(x))
			*v[i] = 0;
		else if (x && get_num(c, c->root, k[i], 0, 0, 1e9, v[i]))
			return -1;
	}
	return 0;
}

/* Gemma 3's RoPE: transformers 5 nests rope_parameters per layer type
 * {full_attention: {...}, sliding_attention: {rope_type default,
 * rope_theta}}; 4.x has rope_theta/rope_scaling for the full layers and
 * rope_local_base_freq. The full layers' dict replaces rope_parameters for
 * parse_rope. */
static int gemma3_rope(ctx *c, model_config *cfg)
{
	float local = 10000;
	if (opt_num(c, c->root, "rope_local_base_freq", 0, 1e12, &local))
		return -1;
	json_t *rp = json_object_get(c->root, "rope_parameters");
	if (json_is_object(rp) && json_object_get(rp, "full_attention")) {
		json_t *full = json_object_get(rp, "full_attention"), *sl = json_object_get(rp, "sliding_attention");
		if (!json_is_object(full) || (sl && !json_is_object(sl)))
			return fail(c, "rope_parameters.full_attention / sliding_attention must be objects");
		if (sl) {
			const char *t = get_str(sl, "rope_type");
			if (t && strcmp(t, "default"))
				return fail(c,
					    "unsupported rope_parameters.sliding_attention type '%.40s' (only default)",
					    t);
			if (opt_num(c, sl, "rope_theta", 0, 1e12, &local))
				return -1;
		}
		json_object_set(c->root, "rope_parameters", full);
	}
	cfg->rope_local_theta = local;
	return 0;
}

/* Gemma 3's layer types: every sliding_window_pattern-th layer full. */
static int gemma3_layers(ctx *c, model_config *cfg)
{
	int p = 6;
	if (get_int(c, "sliding_window_pattern", 0, 6, 1, 1 << 20, &p))
		return -1;
	json_t *lt = json_object_get(c->root, "layer_types");
	if (json_is_array(lt)) {
		if ((int)json_array_size(lt) != cfg->n_layers)
			return fail(c, "layer_types has %zu entries for %d layers", json_array_size(lt), cfg->n_layers);
		for (int l = 0; l < cfg->n_layers; l++)
			if (!json_is_string(json_array_get(lt, l)))
				return fail(c, "layer_types[%d] must be a string", l);
		p = cfg->n_layers + 1; /* all sliding, unless a full layer says otherwise */
		for (int l = 0; l < cfg->n_layers; l++)
			if (!strcmp(json_string_value(json_array_get(lt, l)), "full_attention")) {
				p = l + 1;
				break;
			}
		for (int l = 0; l < cfg->n_layers; l++)
			if (!strcmp(json_string_value(json_array_get(lt, l)), "full_attention") != ((l + 1) % p == 0))
				return fail(c, "unsupported layer_types: not every %d-th layer full attention", p);
	}
	cfg->sliding_pattern = p;
	return 0;
}

static int parse_llama(ctx *c, model_config *cfg, const char *mt)
{
	int fam = model_family_parse(mt);
	cfg->arch = ARCH_LLAMA;
	cfg->family = fam > FAM_AUTO ? (model_family)fam : FAM_LLAMA;
	int qwen = cfg->family == FAM_QWEN2, mistral = cfg->family == FAM_MISTRAL, phi3 = cfg->family == FAM_PHI3;
	int qwen3 = cfg->family == FAM_QWEN3, gemma3 = cfg->family == FAM_GEMMA3;
	int gemma2 = cfg->family == FAM_GEMMA2 || gemma3;
	if (gemma3 && gemma3_rope(c, cfg))
		return -1;
	if (get_int(c, "hidden_size", 1, 0, 1, 1 << 16, &cfg->dim) ||
	    get_int(c, "intermediate_size", 1, 0, 1, 1 << 20, &cfg->hidden_dim) ||
	    get_int(c, "num_hidden_layers", 1, 0, 1, 1024, &cfg->n_layers) ||
	    get_int(c, "num_attention_heads", 1, 0, 1, 1 << 12, &cfg->n_heads) ||
	    get_int(c, "num_key_value_heads", 0, cfg->n_heads, 1, 1 << 12, &cfg->n_kv_heads) ||
	    get_int(c, "head_dim", 0, cfg->dim / cfg->n_heads, 1, 1 << 12, &cfg->head_dim) ||
	    get_int(c, "vocab_size", 1, 0, 1, 1 << 24, &cfg->vocab_size) ||
	    get_int(c, "max_position_embeddings", 0,
		    phi3     ? 4096
		    : gemma3 ? 131072
		    : gemma2 ? 8192
			     : 2048,
		    1, 1 << 24, &cfg->max_seq_len) ||
	    get_num(c, c->root, "rms_norm_eps", phi3 ? 1e-5 : 1e-6, 0, 1, &cfg->norm_eps) ||
	    get_bool(c, "tie_word_embeddings", gemma2, &cfg->tied_embeddings) || parse_rope(c, cfg) ||
	    parse_dtype(c, cfg) ||
	    get_tok(c, "bos_token_id",
		    qwen || qwen3 ? -1
		    : gemma2      ? 2
				  : 1,
		    &cfg->bos_id) ||
	    get_tok(c, "eos_token_id",
		    qwen || qwen3 ? -1
		    : phi3        ? 32000
		    : gemma2      ? 1
				  : 2,
		    &cfg->eos_id))
		return -1;
	cfg->max_pos = cfg->max_seq_len;
	default_tok(c, "bos_token_id", &cfg->bos_id, cfg->vocab_size);
	default_tok(c, "eos_token_id", &cfg->eos_id, cfg->vocab_size);
	const char *act = get_str(c->root, "hidden_act"), *gact = get_str(c->root, "hidden_activation");
	if (gemma2) {
		if ((!is_null(json_object_get(c->root, "hidden_act")) && (!act || strcmp(act, "gelu_pytorch_tanh"))) ||
		    (!is_null(json_object_get(c->root, "hidden_activation")) &&
		     (!gact || strcmp(gact, "gelu_pytorch_tanh"))))
			return fail(c, "unsupported hidden_act '%.40s' (gemma2 needs gelu_pytorch_tanh)",
				    act    ? act
				    : gact ? gact
					   : "?");
		if (parse_gemma(c, cfg))
			return -1;
	} else if (json_object_get(c->root, "hidden_act") && (!act || strcmp(act, "silu")))
		return fail(c, "unsupported hidden_act '%.40s' (llama family needs silu)", act ? act : "?");
	if (gemma3 && gemma3_layers(c, cfg))
		return -1;
	int ab = 0, mb = 0, sw = 0;
	if (get_bool(c, "attention_bias", 0, &ab) || get_bool(c, "mlp_bias", 0, &mb) ||
	    get_bool(c, "use_sliding_window", 0, &sw))
		return -1;
	if (ab)
		return fail(c,
			    "unsupported attention_bias true (q/k/v/o_proj biases); only Qwen2-style q/k/v biases are "
			    "implemented");
	if (mb)
		return fail(c, "unsupported mlp_bias true");
	if ((qwen || qwen3) && sw)
		return fail(c, "unsupported use_sliding_window true");
	json_t *lt = json_object_get(c->root, "layer_types");
	if (json_is_array(lt)) {
		for (size_t i = 0; i < json_array_size(lt); i++) {
			const char *s = json_string_value(json_array_get(lt, i));
			if (!s || (strcmp(s, "full_attention") && !(gemma2 && !strcmp(s, "sliding_attention"))))
				return fail(c, "unsupported layer_types[%zu] '%.40s' (only full_attention%s)", i,
					    s ? s : "?", gemma2 ? " and sliding_attention" : "");
		}
	}
	/* Mistral's and Phi-3's sliding window (token i sees j when i − j < W),
	 * on every layer; Gemma 2 alternates sliding and full layers, Gemma 3
	 * has one full layer in sliding_window_pattern. Attention is masked to
	 * the window (model.c); max_position_embeddings stays the length limit.
	 * A window of at least that length changes nothing and is dropped. */
	json_t *win = json_object_get(c->root, "sliding_window");
	if ((mistral || phi3 || gemma2) && !is_null(win)) {
		if (!json_is_integer(win) || json_integer_value(win) < 1)
			return fail(c, "key 'sliding_window' must be a positive integer or null");
		if (json_integer_value(win) < cfg->max_seq_len)
			cfg->window = (int)json_integer_value(win);
	}
	if (gemma2 && !gemma3 && json_is_array(lt))
		for (size_t i = 0; i < json_array_size(lt); i++)
			if (!strcmp(json_string_value(json_array_get(lt, i)), "full_attention") != (i % 2 == 1))
				return fail(
					c, "unsupported layer_types: gemma2 needs sliding and full layers alternating, "
					   "sliding first");
	cfg->qkv_bias = qwen;
	cfg->qk_norm = qwen3 || gemma3; /* q_norm, k_norm on every head; no q/k/v bias */
	return 0;
}

/* GPT-NeoX / Pythia (GPTNeoXForCausalLM). transformers 4.x spells the
 * partial rotary and the base rotary_pct and rotary_emb_base, 5.x
 * rope_parameters {partial_rotary_factor, rope_theta}. */
static int parse_neox(ctx *c, model_config *cfg)
{
	cfg->arch = ARCH_NEOX;
	cfg->family = FAM_AUTO;
	float base = 10000;
	c->prf = 1;
	if (get_int(c, "hidden_size", 1, 0, 1, 1 << 16, &cfg->dim) ||
	    get_int(c, "intermediate_size", 1, 0, 1, 1 << 20, &cfg->hidden_dim) ||
	    get_int(c, "num_hidden_layers", 1, 0, 1, 1024, &cfg->n_layers) ||
	    get_int(c, "num_attention_heads", 1, 0, 1, 1 << 12, &cfg->n_heads) ||
	    get_int(c, "vocab_size", 1, 0, 1, 1 << 24, &cfg->vocab_size) ||
	    get_int(c, "max_position_embeddings", 0, 2048, 1, 1 << 24, &cfg->max_seq_len) ||
	    get_num(c, c->root, "layer_norm_eps", 1e-5, 0, 1, &cfg->norm_eps) ||
	    get_bool(c, "tie_word_embeddings", 0, &cfg->tied_embeddings) ||
	    get_bool(c, "use_parallel_residual", 1, &cfg->parallel_residual) ||
	    opt_num(c, c->root, "rotary_pct", 0, 2, &c->prf) || opt_num(c, c->root, "rotary_emb_base", 0, 1e12, &base))
		return -1;
	if (cfg->n_heads > cfg->dim || cfg->dim % cfg->n_heads)
		return fail(c, "hidden_size %d is not a multiple of num_attention_heads %d", cfg->dim, cfg->n_heads);
	cfg->n_kv_heads = cfg->n_heads;
	cfg->head_dim = cfg->dim / cfg->n_heads;
	if (!json_object_get(c->root, "rope_theta") && json_object_get(c->root, "rotary_emb_base")) {
		char b[64];
		snprintf(b, sizeof b, "%.9g", (double)base);
		json_object_set_new(c->root, "rope_theta", json_real(strtod(b, NULL)));
	}
	if (parse_rope(c, cfg) || parse_dtype(c, cfg) || get_tok(c, "bos_token_id", 0, &cfg->bos_id) ||
	    get_tok(c, "eos_token_id", 2, &cfg->eos_id))
		return -1;
	cfg->max_pos = cfg->max_seq_len;
	default_tok(c, "bos_token_id", &cfg->bos_id, cfg->vocab_size);
	default_tok(c, "eos_token_id", &cfg->eos_id, cfg->vocab_size);
	/* transformers: rotary_ndims = int(head_size · partial_rotary_factor) */
	cfg->rot_dim = (int)(cfg->head_dim * (double)c->prf);
	if (cfg->rot_dim < 2 || cfg->rot_dim % 2)
		return fail(c,
			    "partial rotary factor %g gives %d rotary dims of head_dim %d (needs an even number >= 2)",
			    (double)c->prf, cfg->rot_dim, cfg->head_dim);
	if (cfg->rot_dim == cfg->head_dim)
		cfg->rot_dim = 0;
	const char *act = get_str(c->root, "hidden_act");
	if (!act || !strcmp(act, "gelu"))
		cfg->gelu_exact = 1;
	else if (strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
		return fail(c, "unsupported hidden_act '%.40s' (gpt_neox: gelu, gelu_new or gelu_pytorch_tanh)", act);
	int ab = 1;
	if (get_bool(c, "attention_bias", 1, &ab))
		return -1;
	if (!ab)
		return fail(c, "unsupported attention_bias false (gpt_neox without q/k/v/dense biases)");
	return 0;
}

static int parse_gpt2(ctx *c, model_config *cfg)
{
	cfg->arch = ARCH_GPT2;
	if (get_int(c, "n_embd", 1, 0, 1, 1 << 16, &cfg->dim) || get_int(c, "n_layer", 1, 0, 1, 1024, &cfg->n_layers) ||
	    get_int(c, "n_head", 1, 0, 1, 1 << 12, &cfg->n_heads) ||
	    get_int(c, "n_positions", 0, 1024, 1, 1 << 24, &cfg->max_seq_len) ||
	    get_int(c, "vocab_size", 1, 0, 1, 1 << 24, &cfg->vocab_size) ||
	    get_int(c, "n_inner", 0, 4L * cfg->dim, 1, 1 << 20, &cfg->hidden_dim) ||
	    get_num(c, c->root, "layer_norm_epsilon", 1e-5, 0, 1, &cfg->norm_eps) ||
	    get_bool(c, "tie_word_embeddings", 1, &cfg->tied_embeddings) ||
	    get_tok(c, "bos_token_id", 50256, &cfg->bos_id) || get_tok(c, "eos_token_id", 50256, &cfg->eos_id) ||
	    parse_dtype(c, cfg))
		return -1;
	default_tok(c, "bos_token_id", &cfg->bos_id, cfg->vocab_size);
	default_tok(c, "eos_token_id", &cfg->eos_id, cfg->vocab_size);
	cfg->n_kv_heads = cfg->n_heads;
	cfg->head_dim = cfg->dim / cfg->n_heads;
	cfg->rope_theta = 0;
	cfg->qkv_bias = 0;
	const char *act = get_str(c->root, "activation_function");
	if (json_object_get(c->root, "activation_function") &&
	    (!act || (strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))))
		return fail(c, "unsupported activation_function '%.40s' (gpt2 needs gelu_new)", act ? act : "?");
	int saw = 1, inv = 0, cross = 0;
	if (get_bool(c, "scale_attn_weights", 1, &saw) || get_bool(c, "scale_attn_by_inverse_layer_idx", 0, &inv) ||
	    get_bool(c, "add_cross_attention", 0, &cross))
		return -1;
	if (!saw)
		return fail(c, "unsupported scale_attn_weights false");
	if (inv)
		return fail(c, "unsupported scale_attn_by_inverse_layer_idx true");
	if (cross)
		return fail(c, "unsupported add_cross_attention true");
	if (!cfg->tied_embeddings)
		return fail(c, "unsupported tie_word_embeddings false for gpt2 (the output matrix is the embedding)");
	if (cfg->dim % cfg->n_heads)
		return fail(c, "n_embd %d is not a multiple of n_head %d", cfg->dim, cfg->n_heads);
	return 0;
}

int hfconfig_check(const model_config *cfg, char *err, size_t errsz)
{
#define BAD(...) (snprintf(err, errsz, __VA_ARGS__), -1)
	if (cfg->arch != ARCH_LLAMA && cfg->arch != ARCH_GPT2 && cfg->arch != ARCH_NEOX)
		return BAD("unknown architecture %d", (int)cfg->arch);
	if (cfg->arch == ARCH_NEOX &&
	    (cfg->n_kv_heads != cfg->n_heads || cfg->head_dim * cfg->n_heads != cfg->dim || cfg->rot_dim < 0 ||
	     cfg->rot_dim > cfg->head_dim || cfg->rot_dim % 2 || cfg->qk_norm || cfg->qkv_bias))
		return BAD("gpt_neox needs head_dim * heads == dim, kv heads == heads, even rotary dims <= head_dim");
	if (cfg->arch != ARCH_NEOX && (cfg->rot_dim || cfg->parallel_residual || cfg->gelu_exact))
		return BAD("partial rotary, parallel residual and exact GELU are gpt_neox options");
	if (cfg->dim < 1 || cfg->dim > (1 << 16))
		return BAD("dim %d out of range [1, 65536]", cfg->dim);
	if (cfg->hidden_dim < 1 || cfg->hidden_dim > (1 << 20))
		return BAD("hidden dim %d out of range [1, 1048576]", cfg->hidden_dim);
	if (cfg->n_layers < 1 || cfg->n_layers > 1024)
		return BAD("layers %d out of range [1, 1024]", cfg->n_layers);
	if (cfg->n_heads < 1 || cfg->n_heads > cfg->dim)
		return BAD("heads %d out of range [1, dim %d]", cfg->n_heads, cfg->dim);
	if (cfg->n_kv_heads < 1 || cfg->n_kv_heads > cfg->n_heads || cfg->n_heads % cfg->n_kv_heads)
		return BAD("kv heads %d must divide heads %d", cfg->n_kv_heads, cfg->n_heads);
	if (cfg->head_dim < 1 || cfg->head_dim > 4096)
		return BAD("head_dim %d out of range [1, 4096]", cfg->head_dim);
	if (cfg->arch == ARCH_LLAMA && cfg->head_dim % 2)
		return BAD("head_dim %d must be even for RoPE", cfg->head_dim);
	if (cfg->arch == ARCH_GPT2 && (cfg->n_kv_heads != cfg->n_heads || cfg->head_dim * cfg->n_heads != cfg->dim))
		return BAD("gpt2 needs head_dim * heads == dim and kv heads == heads");
	if (cfg->arch == ARCH_GPT2 && (cfg->qk_norm || cfg->qkv_bias || cfg->gemma))
		return BAD("qkv_bias, qk_norm and gemma are llama-family options, not gpt2's");
	if (cfg->arch == ARCH_GPT2 && !cfg->tied_embeddings)
		return BAD("gpt2 has a tied embedding");
	if (cfg->vocab_size < 1 || cfg->vocab_size > (1 << 24))
		return BAD("vocab size %d out of range [1, 16777216]", cfg->vocab_size);
	if (cfg->max_seq_len < 1 || cfg->max_seq_len > (1 << 24))
		return BAD("max sequence length %d out of range", cfg->max_seq_len);
	if (!(cfg->norm_eps > 0 && cfg->norm_eps < 1))
		return BAD("norm eps %g out of range (0, 1)", cfg->norm_eps);
	if (cfg->arch != ARCH_GPT2 && !(cfg->rope_theta > 0 && isfinite(cfg->rope_theta)))
		return BAD("rope theta %g must be positive", cfg->rope_theta);
	if (cfg->arch != ARCH_GPT2) {
		const rope_scaling *r = &cfg->rope;
		if ((unsigned)r->type > ROPE_LONGROPE)
			return BAD("unknown rope type %d", (int)r->type);
		if ((r->type == ROPE_LINEAR || r->type == ROPE_DYNAMIC || r->type == ROPE_LLAMA3) && !(r->factor > 0))
			return BAD("rope type %s needs a positive factor", rope_kind_name(r->type));
		if (r->type == ROPE_LLAMA3 && !(r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor))
			return BAD("rope type llama3 needs 0 < low_freq_factor < high_freq_factor");
		if (r->type == ROPE_LONGROPE && r->n_factors != cfg->head_dim / 2)
			return BAD("longrope has %d factors, head_dim %d needs %d", r->n_factors, cfg->head_dim,
				   cfg->head_dim / 2);
		if (r->original_max < 0 || cfg->max_pos < 0 || cfg->window < 0)
			return BAD("negative original_max_position_embeddings, max_position_embeddings or window");
		if (cfg->family == FAM_PHI3 && cfg->head_dim * cfg->n_heads != cfg->dim)
			return BAD("phi3 needs head_dim * heads == hidden size");
		if (!cfg->qk_norm != (cfg->family != FAM_QWEN3 && cfg->family != FAM_GEMMA3) ||
		    (cfg->qk_norm && cfg->qkv_bias))
			return BAD("q/k norms are the qwen3 and gemma3 families' (which have no q/k/v bias)");
		if (!cfg->gemma != (cfg->family != FAM_GEMMA2 && cfg->family != FAM_GEMMA3) ||
		    (cfg->gemma && cfg->qkv_bias))
			return BAD("gemma options are the gemma2/3 families' (which have no q/k/v bias)");
		if ((cfg->family == FAM_GEMMA3) != (cfg->rope_local_theta > 0) ||
		    (cfg->rope_local_theta > 0 && cfg->sliding_pattern < 1))
			return BAD("a local RoPE base and layer pattern are the gemma3 family's");
		if (!(cfg->query_scalar >= 0 && cfg->attn_softcap >= 0 && cfg->final_softcap >= 0))
			return BAD("negative query_pre_attn_scalar or soft-capping");
	}
	if (cfg->save_dtype < 0 || cfg->save_dtype > 2)
		return BAD("unknown save dtype %d", cfg->save_dtype);
	if (cfg->bos_id >= cfg->vocab_size || cfg->eos_id >= cfg->vocab_size)
		return BAD("bos/eos id (%d/%d) outside the vocabulary (%d)", cfg->bos_id, cfg->eos_id, cfg->vocab_size);
	/* Parameter count must fit comfortably in memory arithmetic (2^40 floats). */
	double np =
		(double)cfg->vocab_size * cfg->dim * (cfg->tied_embeddings ? 1 : 2) +
		(double)cfg->n_layers * ((double)cfg->dim * cfg->head_dim * (2 * cfg->n_heads + 2 * cfg->n_kv_heads) +
					 3.0 * cfg->dim * cfg->hidden_dim);
	if (np > (double)(1ull << 40))
		return BAD("model would have %.3g parameters", np);
	return 0;
#undef BAD
}

uint64_t hfconfig_n_params(const model_config *c)
{
	uint64_t C = (uint64_t)c->dim, H = (uint64_t)c->hidden_dim, V = (uint64_t)c->vocab_size,
		 L = (uint64_t)c->n_layers;
	if (c->arch ==
	    ARCH_GPT2) /* wte, wpe, per block ln_1, c_attn, c_proj, ln_2, c_fc, mlp.c_proj (+ biases), ln_f */
		return V * C + (uint64_t)c->max_seq_len * C + (c->score_labels ? C : 0) +
		       L * (2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * H + H) + (H * C + C)) + 2 * C;
	if (c->arch ==
	    ARCH_NEOX) /* embed_in, per block 2 LayerNorms, qkv, dense, h_to_4h, 4h_to_h (+ biases), final LN, embed_out */
		return V * C * (c->tied_embeddings || c->score_labels ? 1 : 2) + (c->score_labels ? C : 0) +
		       L * (4 * C + (3 * C * C + 3 * C) + (C * C + C) + (C * H + H) + (H * C + C)) + 2 * C;
	uint64_t q = (uint64_t)c->n_heads * c->head_dim, kv = (uint64_t)c->n_kv_heads * c->head_dim;
	return V * C * (c->tied_embeddings || c->score_labels ? 1 : 2) + (c->score_labels ? C : 0) +
	       L * (2 * C + C * q + 2 * C * kv + q * C + 3 * C * H + (c->qkv_bias ? q + 2 * kv : 0) +
		    (c->qk_norm ? 2 * (uint64_t)c->head_dim : 0) + (c->gemma ? 2 * C : 0)) +
	       C;
}

/* A sequence-classification head (architectures[0] ends in
 * "ForSequenceClassification"): how many labels (id2label's size, else
 * num_labels, else transformers' default 2); only the reward model's one is
 * supported. pad_token_id for every model. */
static int parse_score(ctx *c, model_config *cfg, const char *a0)
{
	json_t *pad = json_object_get(c->root, "pad_token_id");
	if (json_is_array(pad)) /* some configs list several; transformers uses the first */
		pad = json_array_get(pad, 0);
	if (json_is_integer(pad) && json_integer_value(pad) >= 0 && json_integer_value(pad) < cfg->vocab_size) {
		cfg->has_pad = 1;
		cfg->pad_id = (int)json_integer_value(pad);
	}
	const char *suf = "ForSequenceClassification";
	size_t n = a0 ? strlen(a0) : 0, k = strlen(suf);
	if (n < k || strcmp(a0 + n - k, suf))
		return 0;
	json_t *id2 = json_object_get(c->root, "id2label");
	int labels = 2;
	if (json_is_object(id2))
		labels = (int)json_object_size(id2);
	else if (get_int(c, "num_labels", 0, 2, 1, 1 << 20, &labels))
		return -1;
	if (labels != 1)
		return fail(c, "%s with %d labels: only a reward model's single score (num_labels 1) is supported", a0,
			    labels);
	cfg->score_labels = 1;
	return 0;
}

void hfconfig_set_score(json_t *o, const model_config *cfg)
{
	json_t *a = json_array();
	json_array_append_new(a, json_string(model_class_name(cfg)));
	json_object_set_new(o, "architectures", a);
	json_object_set_new(o, "id2label", json_pack("{s:s}", "0", "LABEL_0"));
	json_object_set_new(o, "label2id", json_pack("{s:i}", "LABEL_0", 0));
	if (cfg->has_pad)
		json_object_set_new(o, "pad_token_id", json_integer(cfg->pad_id));
}

int hfconfig_parse(const char *text, size_t len, const char *name, model_config *cfg, char *err, size_t errsz)
{
	ctx c = {name, err, errsz, NULL, 1};
	json_error_t je;
	memset(cfg, 0, sizeof *cfg);
	c.root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!c.root)
		return fail(&c, "line %d column %d: bad JSON: %s", je.line, je.column, je.text);
	int rc = -1;
	if (!json_is_object(c.root)) {
		fail(&c, "not a JSON object");
		goto out;
	}
	const char *mt = get_str(c.root, "model_type");
	json_t *archs = json_object_get(c.root, "architectures");
	const char *a0 = json_is_array(archs) ? json_string_value(json_array_get(archs, 0)) : NULL;
	if (!mt && a0) /* old configs without model_type */
		mt = !strcmp(a0, "LlamaForCausalLM")     ? "llama"
		     : !strcmp(a0, "MistralForCausalLM") ? "mistral"
		     : !strcmp(a0, "Qwen2ForCausalLM")   ? "qwen2"
		     : !strcmp(a0, "Phi3ForCausalLM")    ? "phi3"
		     : !strcmp(a0, "Qwen3ForCausalLM")   ? "qwen3"
		     : !strcmp(a0, "GPTNeoXForCausalLM") ? "gpt_neox"
		     : !strcmp(a0, "Gemma2ForCausalLM")  ? "gemma2"
		     : !strcmp(a0, "Gemma3ForCausalLM")  ? "gemma3_text"
		     : !strcmp(a0, "GPT2LMHeadModel")    ? "gpt2"
							 : NULL;
	if (!mt) {
		fail(&c, "no model_type (and no known architectures entry)");
		goto out;
	}
	if (model_family_parse(mt) > FAM_AUTO)
		rc = parse_llama(&c, cfg, mt);
	else if (!strcmp(mt, "gpt2"))
		rc = parse_gpt2(&c, cfg);
	else if (!strcmp(mt, "gpt_neox"))
		rc = parse_neox(&c, cfg);
	else
		fail(&c,
		     "unsupported model_type '%.40s' (supported: llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3_text, gpt2, gpt_neox)",
		     mt);
	if (rc == 0)
		rc = parse_score(&c, cfg, a0);
	if (rc == 0) {
		char e2[256];
		if (hfconfig_check(cfg, e2, sizeof e2))
			rc = fail(&c, "%s", e2);
	}
out:
	json_decref(c.root);
	return rc;
}

void hfconfig_load(const char *path, model_config *cfg)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		die("%s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		xgrow((void **)&buf, &cap, n + 65536, 1);
		size_t r = fread(buf + n, 1, cap - n, fp);
		n += r;
		if (r == 0)
			break;
		if (n > (64u << 20))
			die("%s: larger than 64 MiB, not a config.json", path);
	}
	if (ferror(fp))
		die("%s: read error", path);
	fclose(fp);
	char err[768];
	if (hfconfig_parse(buf, n, path, cfg, err, sizeof err))
		die("%s", err);
	free(buf);
}

/* The shortest decimal that reads back as the same float, as a double, so
 * the JSON says 1e-05 rather than 9.99999974737875e-06. */
static json_t *jfloat(float v)
{
	char s[64];
	for (int p = 1; p <= 9; p++) {
		snprintf(s, sizeof s, "%.*g", p, (double)v);
		if ((float)strtod(s, NULL) == v)
			break;
	}
	return json_real(strtod(s, NULL));
}

static json_t *jtok(int id) { return id >= 0 ? json_integer(id) : json_null(); }

/* RoPE in both spellings: transformers 4.x reads rope_theta and rope_scaling,
 * 5.x rope_parameters. */
static void dump_rope(json_t *o, const model_config *cfg, model_family fam)
{
	const rope_scaling *r = &cfg->rope;
	json_object_set_new(o, "rope_theta", jfloat(cfg->rope_theta));
	json_t *rp = json_object();
	json_object_set_new(rp, "rope_type", json_string(rope_kind_name(r->type)));
	json_object_set_new(rp, "rope_theta", jfloat(cfg->rope_theta));
	if (r->factor > 0)
		json_object_set_new(rp, "factor", jfloat(r->factor));
	if (r->original_max > 0 && fam != FAM_PHI3)
		json_object_set_new(rp, "original_max_position_embeddings", json_integer(r->original_max));
	if (r->type == ROPE_LLAMA3) {
		json_object_set_new(rp, "low_freq_factor", jfloat(r->low_freq_factor));
		json_object_set_new(rp, "high_freq_factor", jfloat(r->high_freq_factor));
	}
	if (r->type == ROPE_YARN) {
		if (r->beta_fast != 0)
			json_object_set_new(rp, "beta_fast", jfloat(r->beta_fast));
		if (r->beta_slow != 0)
			json_object_set_new(rp, "beta_slow", jfloat(r->beta_slow));
		if (r->mscale != 0)
			json_object_set_new(rp, "mscale", jfloat(r->mscale));
		if (r->mscale_all_dim != 0)
			json_object_set_new(rp, "mscale_all_dim", jfloat(r->mscale_all_dim));
		if (!r->truncate)
			json_object_set_new(rp, "truncate", json_false());
	}
	if ((r->type == ROPE_YARN || r->type == ROPE_LONGROPE) && r->attention_factor > 0)
		json_object_set_new(rp, "attention_factor", jfloat(r->attention_factor));
	if (r->type == ROPE_LONGROPE) {
		json_t *sf = json_array(), *lf = json_array();
		for (int i = 0; i < r->n_factors; i++) {
			json_array_append_new(sf, jfloat(r->short_factor[i]));
			json_array_append_new(lf, jfloat(r->long_factor[i]));
		}
		json_object_set_new(rp, "short_factor", sf);
		json_object_set_new(rp, "long_factor", lf);
	}
	if (r->type == ROPE_DEFAULT) {
		json_object_set_new(o, "rope_scaling", json_null());
	} else {
		json_t *rs = json_deep_copy(rp);
		json_object_del(rs, "rope_theta");
		json_object_set_new(rs, "type", json_string(rope_kind_name(r->type)));
		json_object_set_new(o, "rope_scaling", rs);
	}
	json_object_set_new(o, "rope_parameters", rp);
}

char *hfconfig_dump(const model_config *cfg)
{
	json_t *o = json_object();
#define SET(k, v) json_object_set_new(o, k, v)
	if (cfg->arch == ARCH_GPT2) {
		json_t *a = json_array();
		json_array_append_new(a, json_string(model_class_name(cfg)));
		SET("architectures", a);
		SET("model_type", json_string("gpt2"));
		SET("n_embd", json_integer(cfg->dim));
		SET("n_layer", json_integer(cfg->n_layers));
		SET("n_head", json_integer(cfg->n_heads));
		SET("n_inner", json_integer(cfg->hidden_dim));
		SET("n_positions", json_integer(cfg->max_seq_len));
		SET("n_ctx", json_integer(cfg->max_seq_len));
		SET("vocab_size", json_integer(cfg->vocab_size));
		SET("layer_norm_epsilon", jfloat(cfg->norm_eps));
		SET("activation_function", json_string("gelu_new"));
		SET("scale_attn_weights", json_true());
		SET("scale_attn_by_inverse_layer_idx", json_false());
		SET("reorder_and_upcast_attn", json_false());
		SET("attn_pdrop", json_real(0));
		SET("embd_pdrop", json_real(0));
		SET("resid_pdrop", json_real(0));
	} else if (cfg->arch == ARCH_NEOX) {
		json_t *a = json_array();
		json_array_append_new(a, json_string(model_class_name(cfg)));
		SET("architectures", a);
		SET("model_type", json_string("gpt_neox"));
		SET("hidden_size", json_integer(cfg->dim));
		SET("intermediate_size", json_integer(cfg->hidden_dim));
		SET("num_hidden_layers", json_integer(cfg->n_layers));
		SET("num_attention_heads", json_integer(cfg->n_heads));
		SET("vocab_size", json_integer(cfg->vocab_size));
		SET("max_position_embeddings", json_integer(cfg->max_pos ? cfg->max_pos : cfg->max_seq_len));
		SET("layer_norm_eps", jfloat(cfg->norm_eps));
		SET("hidden_act", json_string(cfg->gelu_exact ? "gelu" : "gelu_new"));
		SET("use_parallel_residual", json_boolean(cfg->parallel_residual));
		SET("attention_bias", json_true());
		/* 4.x: rotary_pct, rotary_emb_base; 5.x: rope_parameters */
		const float prf = cfg->rot_dim ? (float)cfg->rot_dim / cfg->head_dim : 1.0f;
		SET("rotary_pct", jfloat(prf));
		SET("rotary_emb_base", jfloat(cfg->rope_theta));
		dump_rope(o, cfg, FAM_AUTO);
		json_object_set_new(json_object_get(o, "rope_parameters"), "partial_rotary_factor", jfloat(prf));
		SET("attention_dropout", json_real(0));
		SET("hidden_dropout", json_real(0));
	} else {
		model_family fam = model_config_family(cfg);
		json_t *a = json_array();
		json_array_append_new(a, json_string(model_class_name(cfg)));
		SET("architectures", a);
		SET("model_type", json_string(model_family_name(fam)));
		SET("hidden_size", json_integer(cfg->dim));
		SET("intermediate_size", json_integer(cfg->hidden_dim));
		SET("num_hidden_layers", json_integer(cfg->n_layers));
		SET("num_attention_heads", json_integer(cfg->n_heads));
		SET("num_key_value_heads", json_integer(cfg->n_kv_heads));
		SET("head_dim", json_integer(cfg->head_dim));
		SET("vocab_size", json_integer(cfg->vocab_size));
		SET("max_position_embeddings", json_integer(cfg->max_pos ? cfg->max_pos : cfg->max_seq_len));
		SET("rms_norm_eps", jfloat(cfg->norm_eps));
		const int gemma = fam == FAM_GEMMA2 || fam == FAM_GEMMA3;
		SET("hidden_act", json_string(gemma ? "gelu_pytorch_tanh" : "silu"));
		if (gemma) {
			SET("hidden_activation", json_string("gelu_pytorch_tanh"));
			SET("query_pre_attn_scalar", json_integer((json_int_t)cfg->query_scalar));
			SET("attn_logit_softcapping", cfg->attn_softcap > 0 ? jfloat(cfg->attn_softcap) : json_null());
			SET("final_logit_softcapping",
			    cfg->final_softcap > 0 ? jfloat(cfg->final_softcap) : json_null());
			/* no window: one as long as the sequence (same function) */
			SET("sliding_window", json_integer(cfg->window    ? cfg->window
							   : cfg->max_pos ? cfg->max_pos
									  : cfg->max_seq_len));
			SET("attention_bias", json_false());
		}
		const rope_scaling *r = &cfg->rope;
		dump_rope(o, cfg, fam);
		if (fam == FAM_GEMMA3) { /* 5.x: RoPE per layer type; 4.x: the local base beside */
			json_t *full = json_incref(json_object_get(o, "rope_parameters")), *rp = json_object(),
			       *sl = json_object();
			json_object_set_new(sl, "rope_type", json_string("default"));
			json_object_set_new(sl, "rope_theta", jfloat(cfg->rope_local_theta));
			json_object_set_new(rp, "full_attention", full);
			json_object_set_new(rp, "sliding_attention", sl);
			SET("rope_parameters", rp);
			SET("rope_scaling", json_null()); /* 5.x would merge it into full_attention again */
			SET("rope_local_base_freq", jfloat(cfg->rope_local_theta));
			SET("sliding_window_pattern", json_integer(cfg->sliding_pattern));
			json_t *lt = json_array();
			for (int l = 0; l < cfg->n_layers; l++)
				json_array_append_new(lt,
						      json_string((l + 1) % cfg->sliding_pattern ? "sliding_attention"
												 : "full_attention"));
			SET("layer_types", lt);
		}
		if (fam == FAM_PHI3) /* Phi3Config's default pad id 32000 may lie outside a small vocabulary */
			SET("pad_token_id", json_null());
		if (fam == FAM_PHI3)
			SET("original_max_position_embeddings",
			    json_integer(r->original_max > 0 ? r->original_max : 4096));
		if (fam == FAM_QWEN2 || fam == FAM_QWEN3) {
			SET("use_sliding_window", json_false());
			SET("sliding_window", json_null());
		} else if (fam == FAM_MISTRAL || fam == FAM_PHI3) {
			SET("sliding_window", cfg->window ? json_integer(cfg->window) : json_null());
		}
		if (fam == FAM_LLAMA || fam == FAM_MISTRAL || fam == FAM_QWEN3) {
			SET("attention_bias", json_false());
			SET("mlp_bias", json_false());
		}
		SET("attention_dropout", json_real(0));
	}
	SET("tie_word_embeddings", json_boolean(cfg->tied_embeddings));
	if (cfg->score_labels)
		hfconfig_set_score(o, cfg);
	SET("bos_token_id", jtok(cfg->bos_id));
	SET("eos_token_id", jtok(cfg->eos_id));
	SET("initializer_range", json_real(0.02));
	SET("use_cache", json_true());
	static const char *const dt[] = {"float32", "float16", "bfloat16"};
	SET("torch_dtype", json_string(dt[cfg->save_dtype >= 0 && cfg->save_dtype <= 2 ? cfg->save_dtype : 0]));
#undef SET
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	json_decref(o);
	if (!s)
		die("cannot encode config.json");
	size_t n = strlen(s);
	char *r = xmalloc(n + 2);
	memcpy(r, s, n);
	r[n] = '\n';
	r[n + 1] = 0;
	free(s);
	return r;
}

int hfconfig_dtype(const char *n)
{
	if (!strcmp(n, "float32") || !strcmp(n, "f32") || !strcmp(n, "fp32"))
		return 0;
	if (!strcmp(n, "float16") || !strcmp(n, "f16") || !strcmp(n, "fp16"))
		return 1;
	if (!strcmp(n, "bfloat16") || !strcmp(n, "bf16"))
		return 2;
	return -1;
}

void hfconfig_save(const model_config *cfg, const char *path)
{
	char *s = hfconfig_dump(cfg);
	outfile *o = out_open(path);
	fputs(s, o->fp);
	out_close(o);
	free(s);
}
