/* lbdpo-init — create a randomly initialized model, or convert a llama2.c
 * .bin (or any model lbdpo can load) into a Hugging Face model directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hfconfig.h"
#include "libcore/nn/cpu/runtime.h"
#include "libcore/nn/model.h"
#include "libcore/train/eval.h"
#include "base/cli.h"
#include "base/util.h"

enum {
	O_ARCH = 256, O_DIM, O_LAYERS, O_HEADS, O_KVH, O_HD, O_HIDDEN, O_VOCAB, O_MAXSEQ, O_THETA, O_EPS, O_SEED, O_STD,
	O_TIE, O_NOTIE, O_QKVB, O_VFROM, O_INFO, O_EXPORT, O_SDT, O_CONFIG
};

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

static const cli_opt opts[] = {
	CLI_OPT('m', 'm', "model", "MODEL",
		"convert MODEL (llama2.c .bin or HF directory) instead of creating a random model"),
	CLI_OPT(O_EXPORT, 0, "export", "CHECKPOINT",
		"write just the policy of an lbdpo-step checkpoint into DIR (weights, config, tokenizer files) for publishing"),
	CLI_OPT('o', 'o', "output", "DIR",
		"write the model into DIR (created if needed); with --model or --export, the tokenizer files and "
		"generation_config.json of the source are copied too"),
	CLI_OPT(O_SDT, 0, "save-dtype", "T",
		"float32, float16 or bfloat16 weights (default: the dtype the source came in; random models float32)"),
	CLI_OPT(O_INFO, 0, "info", NULL, "print a one-line summary of the model on stdout"),
	CLI_OPT('q', 'q', "quiet", NULL, "no informational messages"),
	CLI_SECTION("Random models:"),
	CLI_OPT(O_CONFIG, 0, "config", "FILE",
		"random model of the shape a Hugging Face config.json describes (any supported family and RoPE type)"),
	CLI_OPT(O_ARCH, 0, "arch", "NAME", "llama (default) or gpt2"),
	CLI_OPT(O_DIM, 0, "dim", "N", "residual width (default 64)"),
	CLI_OPT(O_LAYERS, 0, "layers", "N", "number of blocks (default 2)"),
	CLI_OPT(O_HEADS, 0, "heads", "N", "attention heads (default 4)"),
	CLI_OPT(O_KVH, 0, "kv-heads", "N", "key/value heads for llama GQA (default: --heads)"),
	CLI_OPT(O_HD, 0, "head-dim", "N", "per-head width (default dim / heads)"),
	CLI_OPT(O_HIDDEN, 0, "hidden", "N", "MLP width (default: llama 8*dim/3 rounded up to 16, gpt2 4*dim)"),
	CLI_OPT(O_VOCAB, 0, "vocab", "N", "vocabulary size (default 512, or from --vocab-from)"),
	CLI_OPT(O_MAXSEQ, 0, "max-seq", "N", "positions (default: llama 2048, gpt2 1024)"),
	CLI_OPT(O_THETA, 0, "rope-theta", "X", "RoPE base (llama; default 10000)"),
	CLI_OPT(O_EPS, 0, "norm-eps", "X", "norm epsilon (default: llama 1e-5, gpt2 1e-5)"),
	CLI_OPT(O_SEED, 0, "seed", "N", "random seed (default 1)"),
	CLI_OPT(O_STD, 0, "std", "X", "weight standard deviation (default 0.02)"),
	CLI_OPT(O_TIE, 0, "tie", NULL, "share the output matrix with the embedding (gpt2: always)"),
	CLI_OPT(O_NOTIE, 0, "no-tie", NULL, "separate lm_head (llama default)"),
	CLI_OPT(O_QKVB, 0, "qkv-bias", NULL, "q/k/v biases, saved as a Qwen2 model (llama only)"),
	CLI_OPT(O_VFROM, 0, "vocab-from", "FILE",
		"take the vocabulary size and bos/eos ids from a tokenizer.json and copy it into DIR"),
	CLI_ALIAS('i', "from", "model"),
	{0}};

static const cli_spec spec = {"lbdpo-init",
			      "lbdpo-init [OPTION]... -o DIR\n"
			      "lbdpo-init -m MODEL [-o DIR] [--info]\n"
			      "lbdpo-init --export CHECKPOINT DIR",
			      "Create a randomly initialized transformer, or convert a llama2.c .bin\n"
			      "(or any model lbdpo loads) into a Hugging Face model directory\n"
			      "(config.json + model.safetensors, loadable by transformers).",
			      opts, print_version};

int main(int argc, char **argv)
{
	set_progname("lbdpo-init");
	const char *from = NULL, *out = NULL, *vfrom = NULL;
	int arch = ARCH_LLAMA, dim = 64, layers = 2, heads = 4, kvh = 0, hd = 0, hidden = 0, vocab = 0, maxseq = 0;
	int tie = -1, qkvb = 0, info_only = 0, shape_given = 0, shape_only = 0, save_dtype = -1;
	const char *export = NULL, *cfgfile = NULL;
	double theta = 10000, eps = 1e-5, stdv = 0.02;
	long seed = 1;
	cli c;
	cli_start(&c, &spec, argc, argv);
	for (int k; (k = cli_next(&c)) != -1;) {
		const char *arg = c.arg;
		if (k >= O_ARCH && k <= O_QKVB && k != O_TIE && k != O_NOTIE)
			shape_given = 1;
		if (k >= O_ARCH && k <= O_QKVB && k != O_TIE && k != O_NOTIE && k != O_SEED && k != O_STD)
			shape_only = 1;
		switch (k) {
		case 'm': from = arg; break;
		case 'o': out = arg; break;
		case 'q': lbdpo_quiet = 1; break;
		case O_INFO: info_only = 1; break;
		case O_ARCH:
			if (model_arch_parse(arg) < 0 || model_arch_parse(arg) == ARCH_NEOX)
				die_usage("--arch: '%s' is not llama or gpt2 (other families: --config FILE)", arg);
			arch = model_arch_parse(arg);
			break;
		case O_DIM: dim = (int)parse_long("--dim", arg, 1, 1 << 16); break;
		case O_LAYERS: layers = (int)parse_long("--layers", arg, 1, 1024); break;
		case O_HEADS: heads = (int)parse_long("--heads", arg, 1, 1 << 12); break;
		case O_KVH: kvh = (int)parse_long("--kv-heads", arg, 1, 1 << 12); break;
		case O_HD: hd = (int)parse_long("--head-dim", arg, 1, 4096); break;
		case O_HIDDEN: hidden = (int)parse_long("--hidden", arg, 1, 1 << 20); break;
		case O_VOCAB: vocab = (int)parse_long("--vocab", arg, 1, 1 << 24); break;
		case O_MAXSEQ: maxseq = (int)parse_long("--max-seq", arg, 1, 1 << 24); break;
		case O_THETA: theta = parse_double("--rope-theta", arg, 1e-6, 1e12); break;
		case O_EPS: eps = parse_double("--norm-eps", arg, 1e-30, 0.5); break;
		case O_SEED: seed = parse_long("--seed", arg, 0, 0x7fffffffffffffffL); break;
		case O_STD: stdv = parse_double("--std", arg, 0, 100); break;
		case O_TIE: tie = 1; break;
		case O_NOTIE: tie = 0; break;
		case O_QKVB: qkvb = 1; break;
		case O_VFROM: vfrom = arg; break;
		case O_EXPORT: export = arg; break;
		case O_CONFIG: cfgfile = arg; break;
		case O_SDT:
			if ((save_dtype = hfconfig_dtype(arg)) < 0)
				die_usage("--save-dtype: '%s' is not float32, float16 or bfloat16", arg);
			break;
		}
	}
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
	if (from) {
		m = model_load(from);
		/* a checkpoint saved in f16/bf16: start from its f32 master weights */
		if (ckpt_is(from) && (save_dtype == 0 || (save_dtype < 0 && model_cfg(m)->save_dtype == 0)))
			ckpt_master_weights(m, from);
		if (vfrom && tvocab > model_cfg(m)->vocab_size)
			die("%s: tokenizer has %d tokens but the model only %d", vfrom, tvocab, model_cfg(m)->vocab_size);
	} else if (cfgfile) {
		model_config cfg;
		hfconfig_load(cfgfile, &cfg);
		if (vfrom && tvocab > cfg.vocab_size)
			die("%s: tokenizer has %d tokens but %s only %d", vfrom, tvocab, cfgfile, cfg.vocab_size);
		m = model_new(&cfg);
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
		m = model_new(&cfg);
		model_init_random(m, (uint64_t)seed, (float)stdv);
	}
	const model_config *cf = model_cfg(m);
	if (info_only) {
		char fp[65];
		model_fingerprint(m, fp);
		printf("arch=%s dim=%d hidden=%d layers=%d heads=%d kv_heads=%d head_dim=%d vocab=%d max_seq=%d tied=%d "
		       "qkv_bias=%d params=%zu fingerprint=%s\n",
		       model_type_name(cf), cf->dim, cf->hidden_dim, cf->n_layers, cf->n_heads,
		       cf->n_kv_heads, cf->head_dim, cf->vocab_size, cf->max_seq_len, cf->tied_embeddings, cf->qkv_bias,
		       model_n_params(m), fp);
	}
	if (out) {
		model_save_hf_dtype(m, out, save_dtype);
		model_carry_config(m, from, out, save_dtype); /* a random model: none */
		model_copy_assets(m, from, out); /* random: just generation_config.json */
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
	close_stdout();
	return 0;
}
