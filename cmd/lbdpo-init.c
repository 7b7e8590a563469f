/* lbdpo-init — create a randomly initialized model, or convert a llama2.c
 * .bin (or any model lbdpo can load) into a Hugging Face model directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hfconfig.h"
#include "formats/safetensors.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/model.h"
#include "libcore/train/adapter.h"
#include "libcore/train/eval.h"
#include "base/cli.h"
#include "base/util.h"

/* the options that need code (the others are typed rows) */
enum { O_ARCH = 256, O_SDT };

/* The shape options of a random model; --seed and --std only pick its
 * weights. */
static const char *const shape_opts[] = {"arch",  "dim",     "layers",     "heads",    "kv-heads", "head-dim", "hidden",
					 "vocab", "max-seq", "rope-theta", "norm-eps", "qkv-bias", NULL};

static char *read_all(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		die("%s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t cap = 0;
	*n = 0;
	for (;;) {
		xgrow((void **)&buf, &cap, *n + 65536, 1);
		size_t r = fread(buf + *n, 1, cap - *n, fp);
		*n += r;
		if (!r)
			break;
		if (*n > (1u << 30))
			die("%s: larger than 1 GiB", path);
	}
	if (ferror(fp))
		die("%s: read error", path);
	fclose(fp);
	return buf;
}

/* Vocabulary size and special ids of a tokenizer.json: size = 1 + the
 * largest id in model.vocab (object or Unigram list) and added_tokens. */
static void tokenizer_vocab(const char *path, const char *text, size_t n, int *vocab, int *bos, int *eos)
{
	json_error_t je;
	json_t *root = json_loadb(text, n, 0, &je);
	if (!root)
		die("%s: line %d column %d: bad JSON: %s", path, je.line, je.column, je.text);
	long long maxid = -1;
	json_t *v = json_object_get(json_object_get(root, "model"), "vocab");
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			if (!json_is_integer(x) || json_integer_value(x) < 0)
				die("%s: model.vocab['%.40s'] is not a token id", path, k);
			if (json_integer_value(x) > maxid)
				maxid = json_integer_value(x);
		}
	} else if (json_is_array(v)) {
		maxid = (long long)json_array_size(v) - 1;
	} else {
		die("%s: no model.vocab (not a tokenizer.json?)", path);
	}
	json_t *added = json_object_get(root, "added_tokens");
	for (size_t i = 0; json_is_array(added) && i < json_array_size(added); i++) {
		json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
		const char *c = json_string_value(json_object_get(a, "content"));
		if (!json_is_integer(id) || json_integer_value(id) < 0)
			die("%s: added_tokens[%zu].id is not a token id", path, i);
		long long t = json_integer_value(id);
		if (t > maxid)
			maxid = t;
		if (!c)
			continue;
		if (!strcmp(c, "<s>") || !strcmp(c, "<|begin_of_text|>"))
			*bos = (int)t;
		else if (!strcmp(c, "</s>") || !strcmp(c, "<|end_of_text|>"))
			*eos = (int)t;
		else if (!strcmp(c, "<|endoftext|>")) {
			if (*bos < 0)
				*bos = (int)t;
			if (*eos < 0)
				*eos = (int)t;
		}
	}
	json_decref(root);
	if (maxid < 0 || maxid >= (1 << 24))
		die("%s: vocabulary size %lld out of range", path, maxid + 1);
	*vocab = (int)maxid + 1;
}

/* A random model to be saved in save_dtype: made in 16 bits straight away
 * when that is f16/bf16 (the same values as rounding f32 ones on saving,
 * at half the memory: an 8B model fits in 16 GB); f32 when --info reports
 * it (its fingerprint is the f32 numbers'). */
static model *new_random(const model_config *cfg, int save_dtype, int info_only)
{
	if (!info_only && (save_dtype == ST_F16 || save_dtype == ST_BF16))
		return model_new16(cfg, save_dtype);
	return model_new(cfg);
}

int main(int argc, char **argv)
{
	const char *from = NULL, *out = NULL, *vfrom = NULL;
	int arch = ARCH_LLAMA, dim = 64, layers = 2, heads = 4, kvh = 0, hd = 0, hidden = 0, vocab = 0, maxseq = 0;
	int tie = -1, qkvb = 0, info_only = 0, shape_given = 0, shape_only = 0, save_dtype = -1;
	const char *export = NULL, *cfgfile = NULL, *adapter = NULL;
	int merge = 0;
	double theta = 10000, eps = 1e-5, stdv = 0.02;
	long seed = 1;
	const cli_opt opts[] = {
		OPT_STRING('m', "model", "MODEL", &from,
			   "convert MODEL (llama2.c .bin or HF directory) instead of creating a random model"),
		OPT_STRING(
			0, "export", "CHECKPOINT", &export,
			"write just the policy of an lbdpo-step checkpoint into DIR (weights, config, tokenizer files) for "
			"publishing"),
		OPT_STRING(
			'o', "output", "DIR", &out,
			"write the model into DIR (created if needed); with --model or --export, the tokenizer files and "
			"generation_config.json of the source are copied too"),
		CLI_OPT(O_SDT, 0, "save-dtype", "T",
			"float32, float16 or bfloat16 weights (default: the dtype the source came in; random models float32)"),
		OPT_BOOL(
			0, "merge", &merge,
			"write --model with its LoRA --adapter merged in (W + scale*B*A, in the base's dtype): a plain "
			"Hugging Face model"),
		ADAPTER_CLI_OPT(&adapter),
		OPT_BOOL(0, "info", &info_only, "print a one-line summary of the model on stdout"),
		OPT_BOOL('q', "quiet", &lbdpo_quiet, "no informational messages"),
		CLI_SECTION("Random models:"),
		OPT_STRING(
			0, "config", "FILE", &cfgfile,
			"random model of the shape a Hugging Face config.json describes (any supported family and RoPE "
			"type)"),
		CLI_OPT(O_ARCH, 0, "arch", "NAME", "llama (default) or gpt2"),
		OPT_INT(0, "dim", "N", &dim, 1, 1 << 16, "residual width"),
		OPT_INT(0, "layers", "N", &layers, 1, 1024, "number of blocks"),
		OPT_INT(0, "heads", "N", &heads, 1, 1 << 12, "attention heads"),
		OPT_INT(0, "kv-heads", "N", &kvh, 1, 1 << 12, "key/value heads for llama GQA (default: --heads)"),
		OPT_INT(0, "head-dim", "N", &hd, 1, 4096, "per-head width (default dim / heads)"),
		OPT_INT(0, "hidden", "N", &hidden, 1, 1 << 20,
			"MLP width (default: llama 8*dim/3 rounded up to 16, gpt2 4*dim)"),
		OPT_INT(0, "vocab", "N", &vocab, 1, 1 << 24, "vocabulary size (default: 512, or from --vocab-from)"),
		OPT_INT(0, "max-seq", "N", &maxseq, 1, 1 << 24, "positions (default: llama 2048, gpt2 1024)"),
		OPT_DOUBLE(0, "rope-theta", "X", &theta, 1e-6, 1e12, "RoPE base, llama"),
		OPT_DOUBLE(0, "norm-eps", "X", &eps, 1e-30, 0.5, "norm epsilon (default: llama 1e-5, gpt2 1e-5)"),
		OPT_INT(0, "seed", "N", &seed, 0, 0x7fffffffffffffffL, "random seed"),
		OPT_DOUBLE(0, "std", "X", &stdv, 0, 100, "weight standard deviation"),
		OPT_SET(0, "tie", &tie, 1, "share the output matrix with the embedding (gpt2: always)"),
		OPT_SET(0, "no-tie", &tie, 0, "separate lm_head (llama default)"),
		OPT_BOOL(0, "qkv-bias", &qkvb, "q/k/v biases, saved as a Qwen2 model (llama only)"),
		OPT_STRING(0, "vocab-from", "FILE", &vfrom,
			   "take the vocabulary size and bos/eos ids from a tokenizer.json and copy it into DIR"),
		CLI_ALIAS('i', "from", "model"),
		{0}};
	const cli_spec spec = {"lbdpo-init",
			       "lbdpo-init [OPTION]... -o DIR\n"
			       "lbdpo-init -m MODEL [-o DIR] [--info]\n"
			       "lbdpo-init --export CHECKPOINT DIR",
			       "Create a randomly initialized transformer, or convert a llama2.c .bin\n"
			       "(or any model lbdpo loads) into a Hugging Face model directory\n"
			       "(config.json + model.safetensors, loadable by transformers).",
			       opts, print_version};
	set_progname(spec.prog);
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int k; (k = cli_next(&c)) != -1;) {
		const char *arg = c.arg;
		switch (k) {
		case O_ARCH:
			if (model_arch_parse(arg) < 0 || model_arch_parse(arg) == ARCH_NEOX)
				die_usage("--arch: '%s' is not llama or gpt2 (other families: --config FILE)", arg);
			arch = model_arch_parse(arg);
			break;
		case O_SDT:
			if ((save_dtype = hfconfig_dtype(arg)) < 0)
				die_usage("--save-dtype: '%s' is not float32, float16 or bfloat16", arg);
			break;
		}
	}
	for (int i = 0; shape_opts[i]; i++)
		shape_only |= cli_given(&c, shape_opts[i]);
	shape_given = shape_only || cli_given(&c, "seed") || cli_given(&c, "std");
	if (export && !out && c.ind + 1 == argc) /* lbdpo-init --export CHECKPOINT DIR */
		out = argv[c.ind++];
	if (c.ind < argc)
		die_usage("unexpected argument '%s'", argv[c.ind]);
	if (cfgfile && (from || export || shape_only || tie >= 0))
		die_usage("--config takes no --model, --export or shape options (--seed, --std are fine)");
	if (export && (from || vfrom || shape_given || tie >= 0))
		die_usage("--export takes no --model, --vocab-from or shape options");
	if (export && !ckpt_is(export))
		die("%s: not an lbdpo-step checkpoint (no trainer_state.json); use --model for a model directory",
		    export);
	if (export)
		from = export;
	if ((merge || adapter) && (!from || export || vfrom || cfgfile))
		die_usage("--merge takes --model BASE --adapter DIR (or --model ADAPTER_DIR) and no other source");
	if (adapter && !merge)
		die_usage("--adapter: give --merge to write the merged model");
	if (!out && !info_only)
		die_usage("give an output directory with -o DIR (or --info)");
	if (from && (shape_given || tie >= 0))
		die_usage("shape options cannot be combined with --model");

	char *tok_text = NULL;
	size_t tok_len = 0;
	int tbos = -1, teos = -1, tvocab = 0;
	if (vfrom) {
		tok_text = read_all(vfrom, &tok_len);
		tokenizer_vocab(vfrom, tok_text, tok_len, &tvocab, &tbos, &teos);
	}

	model *m;
	lora *lo = NULL;
	char *base_owned = NULL;
	if (merge) {
		const char *base;
		/* a 16-bit base merges in its own dtype (the default); another
		 * --save-dtype gets the f32 merge, rounded once */
		m = adapter_model_load(from, adapter, save_dtype < 0, &lo, &base_owned, &base);
		if (!lo)
			die_usage("--merge: %s is not an adapter directory; give --adapter DIR", from);
		model_set_lora(m, NULL);
		lora_merge(lo, m);
		from = base; /* its config, tokenizer files and dtype */
	} else if (from) {
		/* converted or described, not trained: a 16-bit file stays 16-bit
		 * (saving widens it exactly where another dtype is asked for), but
		 * a checkpoint's f32 master weights need f32 storage */
		m = ckpt_is(from) ? model_load(from) : model_load_frozen(from);
		/* a checkpoint saved in f16/bf16: start from its f32 master weights */
		if (ckpt_is(from) && (save_dtype == 0 || (save_dtype < 0 && model_cfg(m)->save_dtype == 0)))
			ckpt_master_weights(m, from);
		if (vfrom && tvocab > model_cfg(m)->vocab_size)
			die("%s: tokenizer has %d tokens but the model only %d", vfrom, tvocab,
			    model_cfg(m)->vocab_size);
	} else if (cfgfile) {
		model_config cfg;
		hfconfig_load(cfgfile, &cfg);
		if (vfrom && tvocab > cfg.vocab_size)
			die("%s: tokenizer has %d tokens but %s only %d", vfrom, tvocab, cfgfile, cfg.vocab_size);
		m = new_random(&cfg, save_dtype, info_only);
		model_init_random(m, (uint64_t)seed, (float)stdv);
	} else {
		model_config cfg = {0};
		cfg.arch = (model_arch)arch;
		cfg.dim = dim;
		cfg.n_layers = layers;
		cfg.n_heads = heads;
		cfg.n_kv_heads = kvh ? kvh : heads;
		cfg.head_dim = hd ? hd : dim / heads;
		if (!cfg.head_dim)
			die_usage("--heads %d is larger than --dim %d", heads, dim);
		cfg.hidden_dim = hidden ? hidden : arch == ARCH_GPT2 ? 4 * dim : (8 * dim / 3 + 15) / 16 * 16;
		cfg.vocab_size = vocab ? vocab : tvocab ? tvocab : 512;
		if (vocab && tvocab > vocab)
			die_usage("--vocab %d is smaller than the tokenizer's %d tokens", vocab, tvocab);
		cfg.max_seq_len = maxseq ? maxseq : arch == ARCH_GPT2 ? 1024 : 2048;
		cfg.rope_theta = arch == ARCH_GPT2 ? 0 : (float)theta;
		cfg.norm_eps = (float)eps;
		cfg.tied_embeddings = tie >= 0 ? tie : arch == ARCH_GPT2;
		cfg.qkv_bias = qkvb;
		if (arch == ARCH_GPT2 && !cfg.tied_embeddings)
			die_usage("--no-tie: gpt2 always shares the output matrix with the embedding");
		if (qkvb && arch == ARCH_GPT2)
			die_usage("--qkv-bias is for --arch llama (gpt2 always has biases)");
		if (vfrom) {
			cfg.bos_id = tbos;
			cfg.eos_id = teos;
		} else {
			cfg.bos_id = arch == ARCH_LLAMA && cfg.vocab_size > 1 ? 1 : -1;
			cfg.eos_id = arch == ARCH_LLAMA && cfg.vocab_size > 2 ? 2 : -1;
		}
		char err[256];
		if (hfconfig_check(&cfg, err, sizeof err))
			die_usage("%s", err);
		m = new_random(&cfg, save_dtype, info_only);
		model_init_random(m, (uint64_t)seed, (float)stdv);
	}
	const model_config *cf = model_cfg(m);
	if (info_only) {
		char fp[65];
		model_fingerprint(m, fp);
		printf("arch=%s dim=%d hidden=%d layers=%d heads=%d kv_heads=%d head_dim=%d vocab=%d max_seq=%d tied=%d "
		       "qkv_bias=%d params=%zu fingerprint=%s\n",
		       model_type_name(cf), cf->dim, cf->hidden_dim, cf->n_layers, cf->n_heads, cf->n_kv_heads,
		       cf->head_dim, cf->vocab_size, cf->max_seq_len, cf->tied_embeddings, cf->qkv_bias,
		       model_n_params(m), fp);
	}
	if (out) {
		model_save_hf_dtype(m, out, save_dtype);
		model_carry_config(m, from, out, save_dtype); /* a random model: none */
		model_copy_assets(m, from, out);              /* random: just generation_config.json */
		if (vfrom) {
			char *p = path_join(out, "tokenizer.json");
			outfile *o = out_open(p);
			fwrite(tok_text, 1, tok_len, o->fp);
			out_close(o);
			free(p);
		}
		info("wrote %s (%zu parameters)", out, model_n_params(m));
	}
	free(tok_text);
	model_free(m);
	lora_free(lo);
	free(base_owned);
	close_stdout();
	return 0;
}
