/* lora.c — LoRA adapters (lora.h): the family's module table, PEFT's
 * adapter files, and the adapter's forward and backward on the backend
 * (gemm and dropout entries of libcore/backend.h).
 */
#include "libcore/nn/lora.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/rng.h"
#include "base/util.h"
#include "formats/jsonl.h"
#include "formats/safetensors.h"
#include "libcore/nn/backend.h"

/* One adapted module: columns [o0, o0 + out) of matmul kind of layer l. */
typedef struct {
	int l, kind, o0, out, in;
	int mod;      /* index into the family's module table */
	int ta, tb;   /* its tensors (lora_A, lora_B) */
	int neox_qkv; /* B rows per head [q;k;v] in files */
} lora_site;

/* A module of the family: PEFT's short name, the path under a layer, where
 * it sits. o0/out in units resolved by module_cols(). */
typedef struct {
	const char *name; /* short name matched against target_modules */
	const char *path; /* printf path with the layer index */
	lora_kind kind;
	int part; /* which slice: 0 whole, 1 q, 2 k, 3 v, 4 gate, 5 up */
} lora_module;

struct lora {
	lora_opts o;
	char *targets; /* as saved: the modules adapted, comma-separated */
	double s;
	const lb_backend *be;
	int L;
	lora_site *sites;
	int n_sites;
	int *first, *count; /* [L·LORA_N_KINDS] runs of sites */
	model_tensor *tensors;
	int n_tensors;
	float *params, *dparams;
	size_t n_params;
	int n_heads, head_dim, max_in;
	int width[LORA_N_KINDS]; /* output width of each matmul kind */
	int fan_in_fan_out;
	/* scratch (device), grown to T */
	float *u, *du, *xd, *dxd;
	size_t cap_T;
	uint64_t drop_seed, drop_ctr;
	int train; /* the current forward is a training one (dropout) */
};

static const lora_module MOD_LLAMA[] = {
	{"q_proj", "model.layers.%d.self_attn.q_proj", LORA_QKV, 1},
	{"k_proj", "model.layers.%d.self_attn.k_proj", LORA_QKV, 2},
	{"v_proj", "model.layers.%d.self_attn.v_proj", LORA_QKV, 3},
	{"o_proj", "model.layers.%d.self_attn.o_proj", LORA_O, 0},
	{"gate_proj", "model.layers.%d.mlp.gate_proj", LORA_FC, 4},
	{"up_proj", "model.layers.%d.mlp.up_proj", LORA_FC, 5},
	{"down_proj", "model.layers.%d.mlp.down_proj", LORA_PROJ, 0},
};
static const lora_module MOD_PHI3[] = {
	{"qkv_proj", "model.layers.%d.self_attn.qkv_proj", LORA_QKV, 0},
	{"o_proj", "model.layers.%d.self_attn.o_proj", LORA_O, 0},
	{"gate_up_proj", "model.layers.%d.mlp.gate_up_proj", LORA_FC, 0},
	{"down_proj", "model.layers.%d.mlp.down_proj", LORA_PROJ, 0},
};
static const lora_module MOD_GPT2[] = {
	{"c_attn", "transformer.h.%d.attn.c_attn", LORA_QKV, 0},
	{"c_proj", "transformer.h.%d.attn.c_proj", LORA_O, 0},
	{"c_fc", "transformer.h.%d.mlp.c_fc", LORA_FC, 0},
	{"c_proj", "transformer.h.%d.mlp.c_proj", LORA_PROJ, 0},
};
static const lora_module MOD_NEOX[] = {
	{"query_key_value", "gpt_neox.layers.%d.attention.query_key_value", LORA_QKV, 0},
	{"dense", "gpt_neox.layers.%d.attention.dense", LORA_O, 0},
	{"dense_h_to_4h", "gpt_neox.layers.%d.mlp.dense_h_to_4h", LORA_FC, 0},
	{"dense_4h_to_h", "gpt_neox.layers.%d.mlp.dense_4h_to_h", LORA_PROJ, 0},
};

static const lora_module *family_modules(const model_config *c, int *n)
{
	if (c->arch == ARCH_GPT2)
		return *n = 4, MOD_GPT2;
	if (c->arch == ARCH_NEOX)
		return *n = 4, MOD_NEOX;
	if (c->family == FAM_PHI3)
		return *n = 4, MOD_PHI3;
	return *n = 7, MOD_LLAMA;
}

/* Input width, output slice [o0, o0 + out) of module md's matmul. */
static void module_cols(const model_config *c, const lora_module *md, int *in, int *o0, int *out)
{
	const int C = c->dim, F = c->hidden_dim, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
	const int QKV = c->arch == ARCH_LLAMA ? (H + 2 * KV) * hd : 3 * H * hd;
	const int FC = c->arch == ARCH_LLAMA ? 2 * F : F;
	*o0 = 0;
	switch (md->kind) {
	case LORA_QKV:
		*in = C;
		*out = md->part == 1 ? H * hd : md->part ? KV * hd : QKV;
		*o0 = md->part == 2 ? H * hd : md->part == 3 ? (H + KV) * hd : 0;
		break;
	case LORA_O: *in = H * hd, *out = C; break;
	case LORA_FC:
		*in = C;
		*out = md->part ? F : FC;
		*o0 = md->part == 5 ? F : 0;
		break;
	default: *in = F, *out = C;
	}
}

/* PEFT's rule: a target names a module when it is the module's full name
 * or its last dotted components. */
static int target_matches(const char *t, const char *full)
{
	size_t nt = strlen(t), nf = strlen(full);
	return nt <= nf && !strcmp(full + nf - nt, t) && (nt == nf || full[nf - nt - 1] == '.');
}

static void add_tensor(lora *lo, const char *name, int64_t d0, int64_t d1)
{
	lo->tensors = xrealloc(lo->tensors, sizeof(model_tensor) * (lo->n_tensors + 1));
	model_tensor *t = &lo->tensors[lo->n_tensors++];
	t->name = xstrdup(name);
	t->ndim = 2;
	t->shape[0] = d0, t->shape[1] = d1;
	t->numel = (size_t)d0 * d1;
	t->offset = lo->n_params;
	lo->n_params += t->numel;
}

/* Lay out the sites of the targets (list: comma-separated or NULL/"all-linear").
 * Returns NULL with a message in err when a target matches nothing. */
static lora *lora_layout(const model *m, const lora_opts *o, char *err, size_t errsz)
{
	const model_config *c = model_cfg(m);
	const lb_backend *be = model_backend(m);
	if (!be->gemm || !be->dropout) /* a backend without the LoRA entries */
		die("LoRA adapters are not implemented on the %s backend (use --device cpu)", be->name);
	if (c->score_labels)
		die("LoRA adapters are for causal language models (a reward model's score head would need training "
		    "too)");
	int nm;
	const lora_module *mods = family_modules(c, &nm);
	const int L = c->n_layers;
	/* use[l·nm + i]: module i of layer l is adapted. A target is matched
	 * against the module's full path as PEFT does (PEFT itself saves
	 * "all-linear" as the list of full paths). */
	uint8_t *use = xcalloc((size_t)L * nm, 1);
	const int all = !o->targets || !strcmp(o->targets, "all-linear");
	if (all)
		memset(use, 1, (size_t)L * nm);
	char *list = xstrdup(all ? "" : o->targets);
	for (char *sv, *t = strtok_r(list, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
		while (*t == ' ')
			t++;
		int hit = 0;
		char full[200];
		for (int l = 0; l < L; l++)
			for (int i = 0; i < nm; i++) {
				snprintf(full, sizeof full, mods[i].path, l);
				if (target_matches(t, full))
					use[l * nm + i] = hit = 1;
			}
		if (!hit) {
			char names[200] = "";
			for (int i = 0; i < nm; i++)
				if (!strstr(names, mods[i].name))
					snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
						 *names ? "," : "", mods[i].name);
			snprintf(err, errsz,
				 "target module '%s' is not a linear layer of this %s model (%s, or all-linear)", t,
				 model_arch_name(c->arch), names);
			free(list);
			free(use);
			return NULL;
		}
	}
	free(list);
	lora *lo = xcalloc(1, sizeof *lo);
	lo->o = *o;
	if (lo->o.alpha <= 0)
		lo->o.alpha = 2.0 * o->r;
	lo->o.targets = NULL;
	lo->s = lo->o.rslora ? lo->o.alpha / sqrt((double)o->r) : lo->o.alpha / o->r;
	lo->be = be;
	lo->L = c->n_layers;
	lo->n_heads = c->n_heads, lo->head_dim = c->head_dim;
	lo->fan_in_fan_out = c->arch == ARCH_GPT2;
	for (int k = 0; k < LORA_N_KINDS; k++) { /* a whole module's columns are the matmul's */
		const lora_module whole = {"", "", (lora_kind)k, 0};
		int in, o0;
		module_cols(c, &whole, &in, &o0, &lo->width[k]);
	}
	/* the targets as saved: short names when every layer has the same
	 * modules, else every full path */
	int uniform = 1;
	for (int l = 1; l < L; l++)
		uniform &= !memcmp(use, use + (size_t)l * nm, nm);
	size_t tcap = 256, tn = 0;
	char *tl = xcalloc(tcap, 1);
	for (int l = 0; l < (uniform ? 1 : L); l++)
		for (int i = 0; i < nm; i++) {
			char full[200];
			snprintf(full, sizeof full, mods[i].path, l);
			const char *nmi = uniform ? mods[i].name : full;
			if (!use[l * nm + i] ||
			    (uniform && strstr(tl, nmi))) /* GPT-2's c_proj: two modules, one name */
				continue;
			xgrow((void **)&tl, &tcap, tn + strlen(nmi) + 2, 1);
			tn += (size_t)sprintf(tl + tn, "%s%s", tn ? "," : "", nmi);
		}
	lo->targets = tl;
	lo->first = xcalloc((size_t)lo->L * LORA_N_KINDS, sizeof(int));
	lo->count = xcalloc((size_t)lo->L * LORA_N_KINDS, sizeof(int));
	lo->sites = xcalloc((size_t)lo->L * nm, sizeof(lora_site));
	char nmb[256];
	for (int l = 0; l < lo->L; l++)
		for (int k = 0; k < LORA_N_KINDS; k++) {
			lo->first[l * LORA_N_KINDS + k] = lo->n_sites;
			for (int i = 0; i < nm; i++) {
				if (!use[l * nm + i] || mods[i].kind != (lora_kind)k)
					continue;
				lora_site *s = &lo->sites[lo->n_sites++];
				s->l = l, s->kind = k, s->mod = i;
				module_cols(c, &mods[i], &s->in, &s->o0, &s->out);
				s->neox_qkv = c->arch == ARCH_NEOX && k == LORA_QKV;
				if (s->in > lo->max_in)
					lo->max_in = s->in;
				char path[200];
				snprintf(path, sizeof path, mods[i].path, l);
				snprintf(nmb, sizeof nmb, "base_model.model.%s.lora_A.weight", path);
				s->ta = lo->n_tensors;
				add_tensor(lo, nmb, o->r, s->in);
				snprintf(nmb, sizeof nmb, "base_model.model.%s.lora_B.weight", path);
				s->tb = lo->n_tensors;
				add_tensor(lo, nmb, s->out, o->r);
			}
			lo->count[l * LORA_N_KINDS + k] = lo->n_sites - lo->first[l * LORA_N_KINDS + k];
		}
	free(use);
	lo->params = xcalloc(lo->n_params ? lo->n_params : 1, sizeof(float));
	lo->drop_seed = 1;
	return lo;
}

static void check_opts(const lora_opts *o)
{
	if (o->r < 1)
		die("LoRA: rank %d: must be at least 1", o->r);
	if (!(o->dropout >= 0 && o->dropout < 1))
		die("LoRA: dropout %g: must be in [0, 1)", o->dropout);
}

lora *lora_new(const model *m, const lora_opts *o, uint64_t seed)
{
	check_opts(o);
	char err[400];
	lora *lo = lora_layout(m, o, err, sizeof err);
	if (!lo)
		die_usage("--lora-targets: %s", err);
	/* A: kaiming_uniform_(a=√5) = uniform(±1/√in); B: zero */
	uint64_t st = seed ^ 0x6c6f7261ULL;
	for (int i = 0; i < lo->n_sites; i++) {
		const model_tensor *t = &lo->tensors[lo->sites[i].ta];
		const double bound = 1.0 / sqrt((double)lo->sites[i].in);
		float *a = lo->params + t->offset;
		for (size_t k = 0; k < t->numel; k++)
			a[k] = (float)(bound * (2.0 * rng_unif(&st) - 1.0));
	}
	lo->drop_seed = seed;
	lo->dparams = backend_mirror(lo->be, lo->params, sizeof(float) * lo->n_params);
	return lo;
}

int lora_is_dir(const char *dir)
{
	char *p = path_join(dir, "adapter_config.json");
	struct stat sb;
	int r = stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
	free(p);
	return r;
}

static json_t *load_config(const char *dir, char **path)
{
	*path = path_join(dir, "adapter_config.json");
	json_error_t je;
	json_t *j = json_load_file(*path, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		die("%s: line %d: %s", *path, je.line, je.text);
	if (!json_is_object(j))
		die("%s: not a JSON object", *path);
	return j;
}

char *lora_base_of(const char *dir)
{
	char *path;
	json_t *j = load_config(dir, &path);
	const char *b = json_string_value(json_object_get(j, "base_model_name_or_path"));
	char *r = b ? xstrdup(b) : NULL;
	json_decref(j);
	free(path);
	return r;
}

/* A key that must be absent, null, false or empty for lbdpo to apply the
 * adapter exactly. */
static void refuse_set(const json_t *j, const char *key, const char *path, const char *why)
{
	const json_t *v = json_object_get(j, key);
	if (!v || json_is_null(v) || json_is_false(v) || (json_is_object(v) && !json_object_size(v)) ||
	    (json_is_array(v) && !json_array_size(v)))
		return;
	die("%s: %s is set: %s", path, key, why);
}

lora *lora_load(const model *m, const char *dir)
{
	char *path;
	json_t *j = load_config(dir, &path);
	const char *pt = json_string_value(json_object_get(j, "peft_type"));
	if (!pt || strcmp(pt, "LORA"))
		die("%s: peft_type %s: only LORA adapters are supported", path, pt ? pt : "(missing)");
	const char *bias = json_string_value(json_object_get(j, "bias"));
	if (bias && strcmp(bias, "none"))
		die("%s: bias \"%s\": only \"none\" is supported (the adapter would train biases)", path, bias);
	refuse_set(j, "use_dora", path, "DoRA is not supported");
	refuse_set(j, "rank_pattern", path, "per-module ranks are not supported");
	refuse_set(j, "alpha_pattern", path, "per-module alphas are not supported");
	refuse_set(j, "modules_to_save", path, "fully trained extra modules are not supported");
	refuse_set(j, "layers_to_transform", path, "adapters on some layers only are not supported");
	refuse_set(j, "target_parameters", path, "adapters on parameters are not supported");
	refuse_set(j, "trainable_token_indices", path, "trainable tokens are not supported");
	json_t *r = json_object_get(j, "r"), *al = json_object_get(j, "lora_alpha");
	if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 65536)
		die("%s: r: a positive integer expected", path);
	if (!json_is_number(al))
		die("%s: lora_alpha: a number expected", path);
	lora_opts o = {.r = (int)json_integer_value(r), .alpha = json_number_value(al)};
	json_t *dr = json_object_get(j, "lora_dropout");
	o.dropout = json_is_number(dr) ? json_number_value(dr) : 0;
	o.rslora = json_is_true(json_object_get(j, "use_rslora"));
	if (o.alpha <= 0)
		die("%s: lora_alpha %g: must be positive", path, o.alpha);
	if (!(o.dropout >= 0 && o.dropout < 1))
		die("%s: lora_dropout %g: must be in [0, 1)", path, o.dropout);
	json_t *tm = json_object_get(j, "target_modules");
	char *list = xcalloc(1, 1);
	size_t lcap = 1, ln = 0;
	if (json_is_string(tm)) {
		if (strcmp(json_string_value(tm), "all-linear"))
			die("%s: target_modules \"%s\": a regular expression; give a list of module names", path,
			    json_string_value(tm));
		free(list);
		list = xstrdup("all-linear");
	} else if (json_is_array(tm) && json_array_size(tm)) {
		size_t i;
		json_t *v;
		json_array_foreach(tm, i, v)
		{
			if (!json_is_string(v))
				die("%s: target_modules[%zu]: a string expected", path, i);
			const char *t = json_string_value(v);
			if (strchr(t, ','))
				die("%s: target_modules[%zu]: a module name has no comma", path, i);
			xgrow((void **)&list, &lcap, ln + strlen(t) + 2, 1);
			ln += (size_t)sprintf(list + ln, "%s%s", i ? "," : "", t);
		}
	} else {
		die("%s: target_modules: a list of module names expected", path);
	}
	o.targets = list;
	char err[400];
	lora *lo = lora_layout(m, &o, err, sizeof err);
	if (!lo)
		die("%s: %s", path, err);
	free(list);
	json_decref(j);
	free(path);
	/* the tensors: every one we expect, nothing else */
	path = path_join(dir, "adapter_model.safetensors");
	st_file *f = st_open(path);
	for (int i = 0; i < lo->n_tensors; i++) {
		const model_tensor *t = &lo->tensors[i];
		const st_info_t *in = st_find(f, t->name);
		if (!in)
			die("%s: no tensor %s", path, t->name);
		if (in->ndim != 2 || in->shape[0] != t->shape[0] || in->shape[1] != t->shape[1])
			die("%s: tensor %s: shape [%lld, %lld], this base model needs [%lld, %lld]", path, t->name,
			    (long long)in->shape[0], (long long)(in->ndim > 1 ? in->shape[1] : 0),
			    (long long)t->shape[0], (long long)t->shape[1]);
		st_read_f32(f, t->name, lo->params + t->offset, t->numel);
	}
	for (int i = 0; i < st_count(f); i++) {
		const char *nm = st_info(f, i)->name;
		int k = 0;
		while (k < lo->n_tensors && strcmp(lo->tensors[k].name, nm))
			k++;
		if (k == lo->n_tensors)
			die("%s: tensor %s: not an adapter of this model's target modules", path, nm);
	}
	st_close(f);
	free(path);
	for (int i = 0; i < lo->n_sites; i++)
		if (lo->sites[i].neox_qkv) /* per head → [Q;K;V] */
			model_neox_qkv_permute(lo->params + lo->tensors[lo->sites[i].tb].offset, lo->n_heads,
					       lo->head_dim, o.r, 0);
	lo->dparams = backend_mirror(lo->be, lo->params, sizeof(float) * lo->n_params);
	return lo;
}

void lora_save(const lora *lo, const char *dir, const char *base)
{
	/* tensors in PEFT's order (the model's module order), NeoX's B per head */
	st_tensor_out *to = xcalloc(lo->n_tensors, sizeof *to);
	float *tmp = xmalloc(sizeof(float) * (lo->n_params ? lo->n_params : 1));
	memcpy(tmp, lo->params, sizeof(float) * lo->n_params);
	for (int i = 0; i < lo->n_sites; i++)
		if (lo->sites[i].neox_qkv)
			model_neox_qkv_permute(tmp + lo->tensors[lo->sites[i].tb].offset, lo->n_heads, lo->head_dim,
					       lo->o.r, 1);
	for (int i = 0; i < lo->n_tensors; i++) {
		const model_tensor *t = &lo->tensors[i];
		to[i] = (st_tensor_out){t->name, 2, {t->shape[0], t->shape[1]}, tmp + t->offset};
	}
	char *p = path_join(dir, "adapter_model.safetensors");
	const char *meta[] = {"format", "pt", NULL};
	st_save(p, to, lo->n_tensors, meta);
	free(p);
	free(tmp);
	free(to);
	json_t *j = json_object();
	json_object_set_new(j, "peft_type", json_string("LORA"));
	json_object_set_new(j, "task_type", json_string("CAUSAL_LM"));
	json_object_set_new(j, "base_model_name_or_path", base ? json_string(base) : json_null());
	json_object_set_new(j, "r", json_integer(lo->o.r));
	json_object_set_new(j, "lora_alpha", json_real(lo->o.alpha));
	json_object_set_new(j, "lora_dropout", json_real(lo->o.dropout));
	json_object_set_new(j, "use_rslora", json_boolean(lo->o.rslora));
	json_t *tm = json_array();
	char *list = xstrdup(lo->targets);
	for (char *sv, *t = strtok_r(list, ",", &sv); t; t = strtok_r(NULL, ",", &sv))
		json_array_append_new(tm, json_string(t));
	free(list);
	json_object_set_new(j, "target_modules", tm);
	json_object_set_new(j, "fan_in_fan_out", json_boolean(lo->fan_in_fan_out));
	json_object_set_new(j, "bias", json_string("none"));
	json_object_set_new(j, "init_lora_weights", json_true());
	json_object_set_new(j, "inference_mode", json_true());
	json_object_set_new(j, "modules_to_save", json_null());
	json_object_set_new(j, "use_dora", json_false());
	p = path_join(dir, "adapter_config.json");
	json_save_file(p, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	free(p);
	json_decref(j);
}

void lora_free(lora *lo)
{
	if (!lo)
		return;
	for (int i = 0; i < lo->n_tensors; i++)
		free((char *)lo->tensors[i].name);
	free(lo->tensors);
	free(lo->sites);
	free(lo->first);
	free(lo->count);
	free(lo->targets);
	backend_mirror_free(lo->be, lo->dparams, lo->params);
	free(lo->params);
	const lb_backend *be = lo->be;
	float *sc[] = {lo->u, lo->du, lo->xd, lo->dxd};
	for (int i = 0; i < 4; i++)
		if (sc[i])
			be->free(sc[i]);
	free(lo);
}

const lora_opts *lora_settings(const lora *lo) { return &lo->o; }
double lora_scale(const lora *lo) { return lo->s; }
const char *lora_targets(const lora *lo) { return lo->targets; }
size_t lora_n_params(const lora *lo) { return lo->n_params; }
int lora_n_tensors(const lora *lo) { return lo->n_tensors; }
const model_tensor *lora_tensor_at(const lora *lo, int i)
{
	return i >= 0 && i < lo->n_tensors ? &lo->tensors[i] : NULL;
}
float *lora_params(lora *lo) { return lo->params; }
float *lora_params_dev(lora *lo) { return lo->dparams; }

void lora_sync(lora *lo, int to_device)
{
	if (to_device)
		backend_sync_up(lo->be, lo->dparams, lo->params, sizeof(float) * lo->n_params);
	else
		backend_sync_down(lo->be, lo->params, lo->dparams, sizeof(float) * lo->n_params);
}

void lora_fingerprint(const lora *lo, char out[65])
{
	char txt[1400];
	int n = snprintf(txt, sizeof txt, "lbdpo-lora 1\nr %d\nalpha %.17g\nrslora %d\ntargets %s\n", lo->o.r,
			 lo->o.alpha, lo->o.rslora, lo->targets);
	sha256_ctx *h = sha256_new();
	sha256_update(h, txt, (size_t)n);
	sha256_update(h, lo->params, lo->n_params * sizeof(float));
	sha256_final_hex(h, out);
}

int lora_is_identity(const lora *lo)
{
	for (int i = 0; i < lo->n_sites; i++) {
		const model_tensor *t = &lo->tensors[lo->sites[i].tb];
		for (size_t k = 0; k < t->numel; k++)
			if (lo->params[t->offset + k] != 0)
				return 0;
	}
	return 1;
}

int lora_has(const lora *lo, int l, lora_kind k) { return lo && lo->count[l * LORA_N_KINDS + k] > 0; }

void lora_set_dropout_state(lora *lo, uint64_t seed, uint64_t counter)
{
	lo->drop_seed = seed;
	lo->drop_ctr = counter;
}

void lora_dropout_state(const lora *lo, uint64_t *seed, uint64_t *counter)
{
	*seed = lo->drop_seed;
	*counter = lo->drop_ctr;
}

void lora_next_forward(lora *lo, int train)
{
	lo->train = train;
	if (train && lo->o.dropout > 0)
		lo->drop_ctr++;
}

static void grow(lora *lo, int T)
{
	if ((size_t)T <= lo->cap_T)
		return;
	const lb_backend *be = lo->be;
	float **sc[] = {&lo->u, &lo->du, &lo->xd, &lo->dxd};
	for (int i = 0; i < 4; i++) {
		if (*sc[i])
			be->free(*sc[i]);
		size_t w = i < 2 ? (size_t)lo->o.r : lo->o.dropout > 0 ? (size_t)lo->max_in : 0;
		*sc[i] = w ? be->alloc(sizeof(float) * T * w) : NULL;
	}
	lo->cap_T = T;
}

/* The dropout key of site i in this forward: the forward recomputes it for
 * the mask of x, the backward for the same mask on the gradient. */
static uint64_t drop_key(const lora *lo, int i)
{
	return lo->drop_seed * RNG_GAMMA ^ (lo->drop_ctr << 20) ^ (uint64_t)i;
}

/* The adapter's input: x, or x with site i's dropout mask of this forward. */
static const float *site_input(lora *lo, int i, const float *x, int T, int train)
{
	if (!train || lo->o.dropout <= 0)
		return x;
	const lora_site *s = &lo->sites[i];
	lo->be->dropout(lo->xd, x, (size_t)T * s->in, (float)lo->o.dropout, drop_key(lo, i));
	return lo->xd;
}

void lora_forward(lora *lo, int l, lora_kind k, float *out, const float *x, int T)
{
	const int train = lo ? lo->train : 0;
	if (!lora_has(lo, l, k))
		return;
	grow(lo, T);
	const lb_backend *be = lo->be;
	const int r = lo->o.r, i0 = lo->first[l * LORA_N_KINDS + k], n = lo->count[l * LORA_N_KINDS + k];
	const int OC = lo->width[k]; /* the matmul's output row stride */
	for (int i = i0; i < i0 + n; i++) {
		const lora_site *s = &lo->sites[i];
		const float *A = lo->dparams + lo->tensors[s->ta].offset, *B = lo->dparams + lo->tensors[s->tb].offset;
		const float *xi = site_input(lo, i, x, T, train);
		/* u [T,r] = x·Aᵀ ; out[:, o0:o0+out] += s·u·Bᵀ */
		be->gemm(0, 1, T, r, s->in, 1.0f, xi, s->in, A, s->in, 0.0f, lo->u, r);
		be->gemm(0, 1, T, s->out, r, (float)lo->s, lo->u, r, B, r, 1.0f, out + s->o0, OC);
	}
}

void lora_backward(lora *lo, int l, lora_kind k, float *dx, float *G, const float *dout, const float *x, int T)
{
	if (!lora_has(lo, l, k))
		return;
	grow(lo, T);
	const lb_backend *be = lo->be;
	const int r = lo->o.r, i0 = lo->first[l * LORA_N_KINDS + k], n = lo->count[l * LORA_N_KINDS + k];
	const int OC = lo->width[k];
	for (int i = i0; i < i0 + n; i++) {
		const lora_site *s = &lo->sites[i];
		const size_t oa = lo->tensors[s->ta].offset, ob = lo->tensors[s->tb].offset;
		const float *A = lo->dparams + oa, *B = lo->dparams + ob;
		const int drop = lo->o.dropout > 0;
		const float *xi = site_input(lo, i, x, T, 1);
		const float *dy = dout + s->o0;
		be->gemm(0, 1, T, r, s->in, 1.0f, xi, s->in, A, s->in, 0.0f, lo->u, r);
		/* dB += s·dyᵀ·u ; du = s·dy·B ; dA += duᵀ·x ; dx += du·A (through the mask) */
		be->gemm(1, 0, s->out, r, T, (float)lo->s, dy, OC, lo->u, r, 1.0f, G + ob, r);
		be->gemm(0, 0, T, r, s->out, (float)lo->s, dy, OC, B, r, 0.0f, lo->du, r);
		be->gemm(1, 0, r, s->in, T, 1.0f, lo->du, r, xi, s->in, 1.0f, G + oa, s->in);
		if (!dx)
			continue;
		if (!drop) {
			be->gemm(0, 0, T, s->in, r, 1.0f, lo->du, r, A, s->in, 1.0f, dx, s->in);
		} else {
			be->gemm(0, 0, T, s->in, r, 1.0f, lo->du, r, A, s->in, 0.0f, lo->dxd, s->in);
			/* the mask of x applied to the gradient: dropout of dxd with the
			 * same key, then add */
			be->dropout(lo->dxd, lo->dxd, (size_t)T * s->in, (float)lo->o.dropout, drop_key(lo, i));
			be->residual_forward(dx, dx, lo->dxd, (size_t)T * s->in);
		}
	}
}

/* lora_merge's weight update: scale·(B·A)[o, in] (the sum in double), and
 * where that weight sits in the base's matrix (rows from the site's o0;
 * GPT-2's Conv1D stores [in, out]). */
static float merge_delta(const lora *lo, const float *A, const float *B, int n_in, int o, int in)
{
	const int r = lo->o.r;
	double acc = 0;
	for (int q = 0; q < r; q++)
		acc += (double)B[(size_t)o * r + q] * A[(size_t)q * n_in + in];
	return (float)(lo->s * acc);
}

static size_t merge_index(const lora_site *s, int o, int in, int OCw, int w_io)
{
	const int row = s->o0 + o;
	return w_io ? (size_t)in * OCw + row : (size_t)row * s->in + in;
}

void lora_merge(const lora *lo, model *m)
{
	/* a 16-bit base: each weight widened, W + scale·B·A in f32 as on f32
	 * weights, rounded back to its dtype (what saving the f32 merge in it gives) */
	uint16_t *P16 = model_params16(m);
	float *P = P16 ? NULL : model_params(m);
	const int bf = model_store16(m) == ST_BF16;
	for (int i = 0; i < lo->n_sites; i++) {
		const lora_site *s = &lo->sites[i];
		const float *A = lo->params + lo->tensors[s->ta].offset, *B = lo->params + lo->tensors[s->tb].offset;
		size_t off;
		int w_io, OCw;
		model_matmul_weight(m, s->l, s->kind, &off, &OCw, &w_io);
		for (int o = 0; o < s->out; o++)
			for (int in = 0; in < s->in; in++) {
				const size_t k = off + merge_index(s, o, in, OCw, w_io);
				const float d = merge_delta(lo, A, B, s->in, o, in);
				if (P) {
					P[k] += d;
					continue;
				}
				float w;
				model_read_params(m, k, 1, &w);
				w += d;
				P16[k] = bf ? st_f32_to_bf16(w) : st_f32_to_f16(w);
			}
	}
	model_sync(m, 1);
}
