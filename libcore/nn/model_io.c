/* model_io.c — model_load / model_save_hf on top of model.h's public API
 * (model_new, model_tensor_at with Hugging Face names and shapes).
 *
 * A directory is a Hugging Face model: config.json plus model.safetensors,
 * or shards listed in model.safetensors.index.json. A regular file is a
 * llama2.c .bin. Tensors are matched by name; gpt2 names are accepted with
 * or without the "transformer." prefix. Known non-parameter buffers (causal
 * mask "attn.bias"/"attn.masked_bias", "rotary_emb.inv_freq") are ignored;
 * any other tensor the model does not have is an error (it would mean the
 * config describes a different model than the weights).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/hfconfig.h"
#include "formats/jsonl.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "libcore/nn/model.h"
#include "base/util.h"

#define MAX_SHARDS 4096

/* ---- llama2.c .bin (layout in formats/llama2c.h) ---- */

static const model_tensor *find_tensor(const model *m, const char *name)
{
	for (int i = 0; i < model_n_tensors(m); i++)
		if (!strcmp(model_tensor_at(m, i)->name, name))
			return model_tensor_at(m, i);
	return NULL;
}

/* Copy n floats at file float index *pos into the named tensor (all of it,
 * or one layer's slice), checking finiteness; advances *pos. */
static float *copy_into(model *m, const char *path, const float *src, uint64_t *pos, const char *name, size_t n)
{
	const model_tensor *t = find_tensor(m, name);
	if (!t)
		BUG("%s: model has no tensor '%s'", path, name);
	if (t->numel != n)
		BUG("%s: tensor '%s' has %zu elements, llama2.c layout needs %zu", path, name, t->numel, n);
	float *dst = model_params(m) + t->offset;
	memcpy(dst, src + *pos, n * sizeof *dst);
	for (size_t i = 0; i < n; i++)
		if (!isfinite(dst[i]))
			die("%s: byte offset %llu: weight '%s' element %zu is not finite", path,
			    (unsigned long long)(LLAMA2C_HEADER_BYTES + 4 * (*pos + i)), name, i);
	*pos += n;
	return dst;
}

static model *llama2c_load(const char *path)
{
	size_t size;
	const void *map = map_file(path, &size);
	unsigned char hdr[LLAMA2C_HEADER_BYTES] = {0};
	if (size >= LLAMA2C_HEADER_BYTES)
		memcpy(hdr, map, sizeof hdr);
	model_config cfg;
	int shared;
	char err[768];
	if (llama2c_parse_header(hdr, (uint64_t)size, path, &cfg, &shared, err, sizeof err))
		die("%s", err);
	/* The weights start at byte 28, so src is 4-byte aligned (mmap is page aligned). */
	const float *src = (const float *)((const char *)map + LLAMA2C_HEADER_BYTES);
	model *m = model_new(&cfg);
	const int L = cfg.n_layers, D = cfg.dim, H = cfg.hidden_dim, hd = cfg.head_dim;
	const size_t qd = (size_t)cfg.n_heads * hd, kvd = (size_t)cfg.n_kv_heads * hd;
	uint64_t pos = 0;
	char nm[128];
	copy_into(m, path, src, &pos, "model.embed_tokens.weight", (size_t)cfg.vocab_size * D);
	/* One block per weight kind, each holding every layer in turn. */
	static const struct {
		const char *fmt;
		int kind; /* 0 rms [D], 1 q [qd][D], 2 kv [kvd][D], 3 o [D][qd], 4 w1/w3 [H][D], 5 w2 [D][H] */
	} order[] = {
		{"model.layers.%d.input_layernorm.weight", 0},  {"model.layers.%d.self_attn.q_proj.weight", 1},
		{"model.layers.%d.self_attn.k_proj.weight", 2}, {"model.layers.%d.self_attn.v_proj.weight", 2},
		{"model.layers.%d.self_attn.o_proj.weight", 3}, {"model.layers.%d.post_attention_layernorm.weight", 0},
		{"model.layers.%d.mlp.gate_proj.weight", 4},    {"model.layers.%d.mlp.down_proj.weight", 5},
		{"model.layers.%d.mlp.up_proj.weight", 4},
	};
	for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
		for (int l = 0; l < L; l++) {
			snprintf(nm, sizeof nm, order[k].fmt, l);
			size_t n = order[k].kind == 0   ? (size_t)D
				   : order[k].kind == 1 ? qd * D
				   : order[k].kind == 2 ? kvd * D
				   : order[k].kind == 3 ? (size_t)D * qd
							: (size_t)H * D;
			float *w = copy_into(m, path, src, &pos, nm, n);
			if (order[k].kind == 1)
				model_permute_llama2c_qk(w, cfg.n_heads, hd, D);
			else if (order[k].kind == 2 && strstr(order[k].fmt, "k_proj"))
				model_permute_llama2c_qk(w, cfg.n_kv_heads, hd, D);
		}
	}
	copy_into(m, path, src, &pos, "model.norm.weight", (size_t)D);
	pos += 2 * ((uint64_t)cfg.max_seq_len * hd / 2); /* freq_cis_real, freq_cis_imag: recomputed, skipped */
	if (!shared)
		copy_into(m, path, src, &pos, "lm_head.weight", (size_t)cfg.vocab_size * D);
	unmap_file(map, size);
	return m;
}

/* ---- Hugging Face directories ---- */

static int file_exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* Buffers that live in some state dicts but are not parameters. */
static int is_buffer(const char *n)
{
	return ends_with(n, ".attn.bias") || ends_with(n, ".attn.masked_bias") || ends_with(n, "rotary_emb.inv_freq");
}

/* Shard file names come from an untrusted index: plain names only. */
static void check_shard_name(const char *idx, const char *s)
{
	if (!*s || strchr(s, '/') || s[0] == '.' || strlen(s) > 255)
		die("%s: weight_map: bad shard file name '%.80s' (plain file names in the same directory only)", idx,
		    s);
}

/* Open the safetensors file(s) of an HF directory into files[]; returns n. */
static int open_shards(const char *dir, st_file ***files_out)
{
	char *single = path_join(dir, "model.safetensors");
	st_file **files = NULL;
	int n = 0;
	if (file_exists(single)) {
		files = xmalloc(sizeof *files);
		files[n++] = st_open(single);
		free(single);
		*files_out = files;
		return n;
	}
	char *idx = path_join(dir, "model.safetensors.index.json");
	if (!file_exists(idx)) {
		char *pt = path_join(dir, "pytorch_model.bin"), *pti = path_join(dir, "pytorch_model.bin.index.json");
		if (file_exists(pt) || file_exists(pti))
			die("%s: only pytorch_model.bin (pickle) weights, which lbdpo does not read (unpickling runs "
			    "arbitrary code); convert it to model.safetensors once with transformers: "
			    "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)",
			    dir);
		die("%s: no model.safetensors or model.safetensors.index.json", dir);
	}
	json_error_t je;
	json_t *root = json_load_file(idx, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		die("%s: line %d column %d: bad JSON: %s", idx, je.line, je.column, je.text);
	json_t *wm = json_object_get(root, "weight_map");
	if (!json_is_object(wm))
		die("%s: no weight_map object", idx);
	char **names = NULL;
	size_t cap = 0;
	const char *k;
	json_t *v;
	json_object_foreach(wm, k, v)
	{
		if (!json_is_string(v))
			die("%s: weight_map['%.80s'] is not a string", idx, k);
		const char *s = json_string_value(v);
		check_shard_name(idx, s);
		int seen = 0;
		for (int i = 0; i < n && !seen; i++)
			seen = !strcmp(names[i], s);
		if (seen)
			continue;
		if (n >= MAX_SHARDS)
			die("%s: more than %d shard files", idx, MAX_SHARDS);
		xgrow((void **)&names, &cap, (size_t)n + 1, sizeof *names);
		names[n++] = xstrdup(s);
	}
	json_decref(root);
	if (n == 0)
		die("%s: empty weight_map", idx);
	files = xmalloc((size_t)n * sizeof *files);
	for (int i = 0; i < n; i++) {
		char *p = path_join(dir, names[i]);
		files[i] = st_open(p);
		free(p);
		free(names[i]);
	}
	free(names);
	free(idx);
	free(single);
	*files_out = files;
	return n;
}

/* Find name (or its gpt2 prefix variant) across the shards; dies if it is
 * in more than one. */
static const st_info_t *find_any(st_file **f, int nf, const char *name, int gpt2, int *which)
{
	const st_info_t *hit = NULL;
	char alt[512];
	alt[0] = 0;
	if (gpt2) {
		if (!strncmp(name, "transformer.", 12))
			snprintf(alt, sizeof alt, "%s", name + 12);
		else if (strncmp(name, "lm_head.", 8))
			snprintf(alt, sizeof alt, "transformer.%s", name);
	}
	for (int i = 0; i < nf; i++) {
		for (int a = 0; a < 2; a++) {
			const char *n = a ? alt : name;
			if (!*n)
				continue;
			const st_info_t *t = st_find(f[i], n);
			if (!t)
				continue;
			if (hit)
				die("%s: tensor '%s' appears more than once (also in %s)", st_name(f[i]), name,
				    st_name(f[*which]));
			hit = t;
			*which = i;
		}
	}
	return hit;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int d = 0; d < ndim && o < n; d++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* Phi-3 stores q, k, v as one self_attn.qkv_proj [(H+2KV)·hd, C] and gate,
 * up as one mlp.gate_up_proj [2F, C], rows in the order our model keeps the
 * separate tensors in memory ([q|k|v], [gate|up]). For tensor i of a Phi-3
 * model: 0 = stored under its own name, 1 = first part of a fused tensor
 * (*fname, *rows, *numel get the fused name, row count and size), 2 = a later
 * part (covered by the first). */
static int fused_part(const model *m, int i, char *fname, size_t fsz, int64_t *rows, size_t *numel)
{
	if (model_cfg(m)->family != FAM_PHI3)
		return 0;
	const model_tensor *t = model_tensor_at(m, i);
	static const struct {
		const char *first, *fused;
		const char *rest[2];
		int nrest;
	} F[] = {{"self_attn.q_proj.weight",
		  "self_attn.qkv_proj.weight",
		  {"self_attn.k_proj.weight", "self_attn.v_proj.weight"},
		  2},
		 {"mlp.gate_proj.weight", "mlp.gate_up_proj.weight", {"mlp.up_proj.weight", NULL}, 1}};
	for (size_t k = 0; k < sizeof F / sizeof F[0]; k++) {
		for (int r = 0; r < F[k].nrest; r++)
			if (ends_with(t->name, F[k].rest[r]))
				return 2;
		if (!ends_with(t->name, F[k].first))
			continue;
		size_t pre = strlen(t->name) - strlen(F[k].first);
		snprintf(fname, fsz, "%.*s%s", (int)pre, t->name, F[k].fused);
		*rows = t->shape[0];
		*numel = t->numel;
		for (int r = 1; r <= F[k].nrest; r++) {
			const model_tensor *u = model_tensor_at(m, i + r);
			if (!u || !ends_with(u->name, F[k].rest[r - 1]) || u->offset != t->offset + *numel ||
			    u->shape[1] != t->shape[1])
				BUG("%s is not followed by its fused parts in memory", t->name);
			*rows += u->shape[0];
			*numel += u->numel;
		}
		return 1;
	}
	return 0;
}

/* The dtype most of the weight bytes are stored in (F32 when mixed ties). */
static int main_dtype(st_file **f, int nf)
{
	uint64_t by[3] = {0, 0, 0};
	for (int i = 0; i < nf; i++)
		for (int j = 0; j < st_count(f[i]); j++) {
			const st_info_t *t = st_info(f[i], j);
			if (t->dtype <= ST_BF16)
				by[t->dtype] += t->numel;
		}
	return by[ST_BF16] > by[ST_F32] && by[ST_BF16] >= by[ST_F16] ? ST_BF16
	       : by[ST_F16] > by[ST_F32]                             ? ST_F16
								     : ST_F32;
}

/* The 16-bit dtype every weight tensor of the files is stored in (ST_F16
 * or ST_BF16), else -1: what model_load_frozen keeps as it is. */
static int store16_dtype(st_file **f, int nf)
{
	int dt = -1;
	for (int i = 0; i < nf; i++)
		for (int j = 0; j < st_count(f[i]); j++) {
			const st_info_t *t = st_info(f[i], j);
			if (is_buffer(t->name))
				continue;
			if ((t->dtype != ST_F16 && t->dtype != ST_BF16) || (dt >= 0 && (int)t->dtype != dt))
				return -1;
			dt = (int)t->dtype;
		}
	return dt;
}

static model *load_hf(const char *dir, int frozen)
{
	char *cfgp = path_join(dir, "config.json");
	if (!file_exists(cfgp))
		die("%s: no config.json (not a Hugging Face model directory)", dir);
	model_config cfg;
	hfconfig_load(cfgp, &cfg);
	free(cfgp);
	st_file **f;
	int nf = open_shards(dir, &f);
	/* Before allocating: the files must hold at least 2 bytes (f16/bf16) per
	 * parameter the config asks for. */
	uint64_t bytes = 0, need = hfconfig_n_params(&cfg);
	for (int i = 0; i < nf; i++)
		for (int j = 0; j < st_count(f[i]); j++)
			bytes += st_info(f[i], j)->end - st_info(f[i], j)->begin;
	if (bytes < 2 * need)
		die("%s: config.json describes %llu parameters but the weight files hold only %llu bytes", dir,
		    (unsigned long long)need, (unsigned long long)bytes);
	cfg.save_dtype = main_dtype(f, nf); /* the files, not torch_dtype, say what came in */
	const int st16 = frozen ? store16_dtype(f, nf) : -1;
	model *m = st16 > 0 ? model_new16(&cfg, st16) : model_new(&cfg);
	float *P = st16 > 0 ? NULL : model_params(m);
	uint16_t *P16 = model_params16(m);
	int gpt2 = cfg.arch == ARCH_GPT2;
	/* used[i][j]: tensor j of shard i was consumed */
	char **used = xmalloc((size_t)nf * sizeof *used);
	for (int i = 0; i < nf; i++)
		used[i] = xcalloc((size_t)st_count(f[i]) + 1, 1);
	for (int i = 0; i < model_n_tensors(m); i++) {
		const model_tensor *t = model_tensor_at(m, i);
		char fname[256];
		int64_t want[2] = {t->shape[0], t->shape[1]};
		size_t numel = t->numel;
		const char *name = t->name;
		int part = fused_part(m, i, fname, sizeof fname, &want[0], &numel);
		if (part == 2)
			continue;
		if (part == 1)
			name = fname;
		int w = 0;
		const st_info_t *s = find_any(f, nf, name, gpt2, &w);
		if (!s)
			die("%s: tensor '%s' not found%s", nf == 1 ? st_name(f[0]) : dir, name,
			    !strcmp(name, "lm_head.weight") ? " (config says tie_word_embeddings false)" : "");
		int same = s->ndim == t->ndim;
		for (int d = 0; same && d < t->ndim; d++)
			same = s->shape[d] == want[d];
		if (!same) {
			char a[128], b[128];
			shape_str(a, sizeof a, s->ndim, s->shape);
			shape_str(b, sizeof b, t->ndim, want);
			die("%s: tensor '%s' has shape %s, config.json implies %s", st_name(f[w]), s->name, a, b);
		}
		if (P16) /* the shape matched: numel values */
			st_read_bits16(f[w], s, P16 + t->offset);
		else
			st_read_f32(f[w], s->name, P + t->offset, numel);
		used[w][s - st_info(f[w], 0)] = 1;
		const int qcols = t->ndim == 2 ? cfg.dim : 1;
		if (cfg.arch == ARCH_NEOX && strstr(t->name, ".query_key_value.") && P16)
			model_neox_qkv_permute16(P16 + t->offset, cfg.n_heads, cfg.head_dim, qcols, 0);
		else if (cfg.arch == ARCH_NEOX && strstr(t->name, ".query_key_value."))
			model_neox_qkv_permute(P + t->offset, cfg.n_heads, cfg.head_dim, qcols, 0);
	}
	for (int i = 0; i < nf; i++) {
		for (int j = 0; j < st_count(f[i]); j++) {
			const char *n = st_info(f[i], j)->name;
			if (used[i][j] || is_buffer(n))
				continue;
			/* A stored lm_head is ignored when the config ties it (as transformers does). */
			if ((cfg.tied_embeddings || cfg.score_labels) &&
			    (!strcmp(n, "lm_head.weight") || !strcmp(n, "embed_out.weight")))
				continue;
			die("%s: unexpected tensor '%s' (not a parameter of the %s model config.json describes)",
			    st_name(f[i]), n,
			    gpt2                     ? "gpt2"
			    : cfg.arch == ARCH_NEOX  ? "gpt_neox"
			    : cfg.qkv_bias           ? "qwen2"
			    : cfg.family == FAM_PHI3 ? "phi3"
			    : cfg.qk_norm            ? "qwen3"
						     : "llama");
		}
		free(used[i]);
		st_close(f[i]);
	}
	free(used);
	free(f);
	return m;
}

static model *load_any(const char *path, int frozen)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		die("%s: %s", path, strerror(errno));
	if (!S_ISDIR(sb.st_mode) && (ends_with(path, ".safetensors") || ends_with(path, ".json")))
		die("%s: give the model directory (with config.json), not one of its files", path);
	model *m = S_ISDIR(sb.st_mode) ? load_hf(path, frozen) : llama2c_load(path);
	model_sync(m, 1); /* the weights were read into the host copy */
	return m;
}

model *model_load(const char *path) { return load_any(path, 0); }
model *model_load_frozen(const char *path) { return load_any(path, 1); }

void model_save_hf(const model *m, const char *dir) { model_save_hf_dtype(m, dir, -1); }

void model_save_hf_dtype(const model *mc, const char *dir, int dtype)
{
	model *m = (model *)mc; /* model_params is not const-qualified; we only read */
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		die("%s: cannot create directory: %s", dir, strerror(errno));
	struct stat sb;
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		die("%s: not a directory", dir);
	model_config cfg = *model_cfg(m);
	if (dtype >= 0)
		cfg.save_dtype = dtype;
	int n = model_n_tensors(m), nt = 0;
	st_tensor_out *t = xcalloc((size_t)n + 1, sizeof *t);
	char **names = xcalloc((size_t)n + 1, sizeof *names);
	float **copies = xcalloc((size_t)n + 1, sizeof *copies);
	int n_copies = 0;
	const int st16 = model_store16(m);
	const float *P = st16 ? NULL : model_params(m);
	const uint16_t *P16 = model_params16(m);
	uint16_t **copies16 = xcalloc((size_t)n + 1, sizeof *copies16);
	const uint16_t **d16 = xcalloc((size_t)n + 1, sizeof *d16); /* tensor nt's 16-bit values */
	for (int i = 0; i < n; i++) {
		const model_tensor *mt = model_tensor_at(m, i);
		char fname[256];
		int64_t rows = mt->shape[0];
		size_t numel = mt->numel;
		int part = fused_part(m, i, fname, sizeof fname, &rows, &numel);
		if (part == 2)
			continue;
		st_tensor_out *o = &t[nt];
		/* GPT2LMHeadModel's own names carry the "transformer." prefix. */
		if (cfg.arch == ARCH_GPT2 && strncmp(mt->name, "transformer.", 12) &&
		    strncmp(mt->name, "lm_head.", 8) && strcmp(mt->name, "score.weight")) {
			names[nt] = xmalloc(strlen(mt->name) + 13);
			sprintf(names[nt], "transformer.%s", mt->name);
			o->name = names[nt];
		} else if (part == 1) {
			o->name = names[nt] = xstrdup(fname);
		} else {
			o->name = mt->name;
		}
		o->ndim = mt->ndim;
		for (int d = 0; d < mt->ndim; d++)
			o->shape[d] = mt->shape[d];
		o->shape[0] = rows;
		o->data = P ? P + mt->offset : NULL;
		d16[nt] = P16 ? P16 + mt->offset : NULL;
		if (P16 && cfg.arch == ARCH_NEOX && strstr(mt->name, ".query_key_value.")) {
			uint16_t *cp = xmalloc(sizeof(uint16_t) * mt->numel);
			memcpy(cp, d16[nt], sizeof(uint16_t) * mt->numel);
			model_neox_qkv_permute16(cp, cfg.n_heads, cfg.head_dim, mt->ndim == 2 ? cfg.dim : 1, 1);
			d16[nt] = copies16[n_copies++] = cp;
		} else if (cfg.arch == ARCH_NEOX &&
			   strstr(mt->name, ".query_key_value.")) { /* back to per-head order */
			float *cp = xmalloc(sizeof(float) * mt->numel);
			memcpy(cp, P + mt->offset, sizeof(float) * mt->numel);
			model_neox_qkv_permute(cp, cfg.n_heads, cfg.head_dim, mt->ndim == 2 ? cfg.dim : 1, 1);
			o->data = copies[n_copies++] = cp;
		}
		nt++;
	}
	static const char *const meta[] = {"format", "pt", NULL};
	char *p = path_join(dir, "model.safetensors");
	st_save_as16(p, t, nt, meta, (st_dtype)cfg.save_dtype, d16, (st_dtype)st16);
	free(p);
	p = path_join(dir, "config.json");
	hfconfig_save(&cfg, p);
	free(p);
	for (int i = 0; i < n; i++)
		free(names[i]);
	for (int i = 0; i < n_copies; i++) {
		free(copies[i]);
		free(copies16[i]);
	}
	free(copies);
	free(copies16);
	free(d16);
	free(names);
	free(t);
}

/* Files of a model directory that are not weights or config.json but make
 * it usable on its own: the tokenizer it was trained with (with its chat
 * template) and the generation defaults. */
static const char *const asset_files[] = {
	"tokenizer.json",
	"tokenizer.model",
	"tokenizer_config.json",
	"special_tokens_map.json",
	"added_tokens.json",
	"vocab.json",
	"merges.txt",
	"chat_template.jinja",
	"chat_template.json",
	"generation_config.json",
	NULL,
};

int model_asset_name(const char *name)
{
	for (int i = 0; asset_files[i]; i++)
		if (!strcmp(name, asset_files[i]))
			return 1;
	return 0;
}

int model_carry_config(const model *m, const char *src, const char *dst, int dtype)
{
	static const char *const names[] = {"float32", "float16", "bfloat16"};
	struct stat sb;
	if (!src || stat(src, &sb) || !S_ISDIR(sb.st_mode))
		return 0;
	char *a = path_join(src, "config.json"), *b = path_join(dst, "config.json");
	int have = file_exists(a);
	if (have) {
		const int from = model_cfg(m)->save_dtype, to = dtype >= 0 ? dtype : from;
		json_error_t je;
		json_t *o = json_load_file(a, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(o))
			die("%s: line %d: %s", a, je.line, o ? "not a JSON object" : je.text);
		int changed = 0, named = 0;
		static const char *const keys[] = {"torch_dtype", "dtype"};
		for (int i = 0; i < 2; i++) {
			json_t *v = json_object_get(o, keys[i]);
			if (!json_is_string(v))
				continue;
			named = 1;
			if (hfconfig_dtype(json_string_value(v)) != to) {
				json_object_set_new(o, keys[i], json_string(names[to]));
				changed = 1;
			}
		}
		if (!named && to != from) { /* a config that named none: say what changed */
			json_object_set_new(o, "torch_dtype", json_string(names[to]));
			changed = 1;
		}
		json_t *arch = json_array_get(json_object_get(o, "architectures"), 0);
		if (model_cfg(m)->score_labels &&
		    (!json_is_string(arch) || strcmp(json_string_value(arch), model_class_name(model_cfg(m))))) {
			hfconfig_set_score(o, model_cfg(m)); /* an LM's config, the model made a reward model */
			changed = 1;
		}
		if (!changed)
			copy_file(a, b); /* byte for byte */
		else
			json_save_file(b, o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
		json_decref(o);
	}
	free(a);
	free(b);
	return have;
}

int model_copy_assets(const model *m, const char *src, const char *dst)
{
	struct stat sb;
	int n = 0, have_gen = 0;
	if (src && stat(src, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		for (int i = 0; asset_files[i]; i++) {
			char *a = path_join(src, asset_files[i]), *b = path_join(dst, asset_files[i]);
			if (file_exists(a)) {
				copy_file(a, b);
				n++;
				have_gen |= !strcmp(asset_files[i], "generation_config.json");
			}
			free(a);
			free(b);
		}
	}
	if (!have_gen) { /* what transformers would derive from config.json */
		const model_config *c = model_cfg(m);
		json_t *g = json_object();
		if (c->bos_id >= 0)
			json_object_set_new(g, "bos_token_id", json_integer(c->bos_id));
		if (c->eos_id >= 0)
			json_object_set_new(g, "eos_token_id", json_integer(c->eos_id));
		char *s = json_dumps(g, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(g);
		if (!s)
			die("cannot encode generation_config.json");
		char *p = path_join(dst, "generation_config.json");
		outfile *o = out_open(p);
		fputs(s, o->fp);
		fputc('\n', o->fp);
		out_close(o);
		free(p);
		free(s);
	}
	return n;
}
