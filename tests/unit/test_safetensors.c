/* test_safetensors.c — safetensors reader/writer, config.json parsing and the
 * llama2.c header, against facts from elsewhere: IEEE/bfloat16 bit patterns,
 * files written by Python's safetensors + transformers (tests/fixtures/hf),
 * transformers' own config.json output. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/hfconfig.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "libcore/nn/cpu/kernels.h"
#include "libcore/nn/model.h"
#include "libcore/nn/rope.h"
#include "base/util.h"

#define FIX "tests/fixtures/hf"

static char *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	cr_assert(fp, "cannot open %s (run from the repository root)", path);
	fseek(fp, 0, SEEK_END);
	long sz = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *b = malloc((size_t)sz + 1);
	cr_assert(fread(b, 1, (size_t)sz, fp) == (size_t)sz);
	b[sz] = 0;
	fclose(fp);
	*n = (size_t)sz;
	return b;
}

/* A safetensors image from a header text and raw data bytes. */
static unsigned char *mkst(const char *hdr, const void *data, size_t dlen, size_t *len)
{
	size_t hl = strlen(hdr);
	*len = 8 + hl + dlen;
	unsigned char *b = malloc(*len);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, hdr, hl);
	if (dlen)
		memcpy(b + 8 + hl, data, dlen);
	return b;
}

static void expect_parse_error(const char *hdr, const void *data, size_t dlen, const char *want)
{
	size_t len;
	unsigned char *b = mkst(hdr, data, dlen, &len);
	char err[512] = "";
	st_file *f = st_parse(b, len, "x.st", err, sizeof err);
	cr_expect_null(f, "accepted bad header %s", hdr);
	if (f)
		st_close(f);
	cr_expect(strstr(err, want) != NULL, "error '%s' does not mention '%s'", err, want);
	cr_expect(strchr(err, '\n') == NULL, "multi-line error");
	cr_expect(strstr(err, "x.st") == err, "error does not start with the file name: %s", err);
	free(b);
}

Test(safetensors, half_and_bfloat_bit_patterns)
{
	/* IEEE 754 binary16 and bfloat16 reference values. */
	cr_expect_eq(st_f16_to_f32(0x3c00), 1.0f);
	cr_expect_eq(st_f16_to_f32(0xc000), -2.0f);
	cr_expect_eq(st_f16_to_f32(0x7bff), 65504.0f);
	cr_expect_eq(st_f16_to_f32(0x0001), ldexpf(1, -24));  /* smallest subnormal */
	cr_expect_eq(st_f16_to_f32(0x0400), ldexpf(1, -14));  /* smallest normal */
	cr_expect_eq(st_f16_to_f32(0x3555), 0.333251953125f); /* nearest half to 1/3 */
	cr_expect(signbit(st_f16_to_f32(0x8000)) && st_f16_to_f32(0x8000) == 0);
	cr_expect(isinf(st_f16_to_f32(0x7c00)) && isnan(st_f16_to_f32(0x7e00)));
	cr_expect_eq(st_bf16_to_f32(0x3f80), 1.0f);
	cr_expect_eq(st_bf16_to_f32(0xc049), -3.140625f);
	cr_expect(isinf(st_bf16_to_f32(0xff80)) && isnan(st_bf16_to_f32(0x7fc0)));
}

Test(safetensors, round_trip_bit_identical)
{
	char path[] = "/tmp/lbdpo_st_XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	close(fd);
	float a[6] = {1.5f, -2.25f, 3e-38f, 65504.f, -0.0f, 1e30f}, b[3] = {0.1f, 0.2f, 0.3f}, s = 7.0f;
	st_tensor_out t[3] = {
		{"layer.a", 2, {2, 3}, a},
		{"b", 1, {3}, b},
		{"scalar", 0, {0}, &s},
	};
	const char *meta[] = {"format", "pt", "note", "quote \" and \\ ok", NULL};
	st_save(path, t, 3, meta);
	st_file *f = st_open(path);
	cr_assert_eq(st_count(f), 3);
	cr_expect_str_eq(st_meta(f, "format"), "pt");
	cr_expect_str_eq(st_meta(f, "note"), "quote \" and \\ ok");
	const st_info_t *i = st_find(f, "layer.a");
	cr_assert(i);
	cr_expect_eq(i->ndim, 2);
	cr_expect_eq(i->shape[0], 2);
	cr_expect_eq(i->shape[1], 3);
	cr_expect_eq(i->dtype, ST_F32);
	float got[6];
	st_read_f32(f, "layer.a", got, 6);
	cr_expect(memcmp(got, a, sizeof a) == 0);
	st_read_f32(f, "b", got, 3);
	cr_expect(memcmp(got, b, sizeof b) == 0);
	st_read_f32(f, "scalar", got, 1);
	cr_expect_eq(got[0], 7.0f);
	cr_expect_eq(st_find(f, "scalar")->ndim, 0);
	/* the data section starts 8-byte aligned (header length multiple of 8) */
	size_t flen;
	unsigned char *raw = (unsigned char *)slurp(path, &flen);
	cr_expect_eq(raw[0] % 8, 0);
	cr_expect_eq(flen, 8 + (size_t)raw[0] + (size_t)raw[1] * 256 + 40);
	free(raw);
	char err[256];
	cr_expect_eq(st_read_f32_err(f, "b", got, 4, err, sizeof err), -1);
	cr_expect(strstr(err, "3 elements"));
	cr_expect_eq(st_read_f32_err(f, "nope", got, 1, err, sizeof err), -1);
	cr_expect(strstr(err, "not found"));
	st_close(f);
	unlink(path);
}

Test(safetensors, reads_python_written_f32_f16_bf16)
{
	/* The same weights written by Python as F32, F16 (two shards) and BF16:
	 * each narrow value must be the f32 one rounded to that format. */
	st_file *f32 = st_open(FIX "/llama_gqa/model.safetensors");
	st_file *b16 = st_open(FIX "/llama_bf16/model.safetensors");
	st_file *h1 = st_open(FIX "/llama_f16_sharded/model-00001-of-00002.safetensors");
	st_file *h2 = st_open(FIX "/llama_f16_sharded/model-00002-of-00002.safetensors");
	cr_assert_eq(st_count(f32), st_count(b16));
	cr_assert_eq(st_count(f32), st_count(h1) + st_count(h2));
	int checked = 0;
	for (int k = 0; k < st_count(f32); k++) {
		const st_info_t *t = st_info(f32, k);
		cr_expect_eq(st_find(b16, t->name)->dtype, ST_BF16);
		st_file *h = st_find(h1, t->name) ? h1 : h2;
		cr_assert(st_find(h, t->name), "%s missing from shards", t->name);
		cr_expect_eq(st_find(h, t->name)->dtype, ST_F16);
		float *a = malloc(t->numel * 4), *b = malloc(t->numel * 4), *c = malloc(t->numel * 4);
		st_read_f32(f32, t->name, a, t->numel);
		st_read_f32(b16, t->name, b, t->numel);
		st_read_f32(h, t->name, c, t->numel);
		for (size_t j = 0; j < t->numel; j++) {
			cr_assert(fabsf(a[j] - b[j]) <= ldexpf(fabsf(a[j]), -8), "%s[%zu] bf16 %g vs %g", t->name, j,
				  b[j], a[j]);
			cr_assert(fabsf(a[j] - c[j]) <= ldexpf(fabsf(a[j]), -11) + ldexpf(1, -25),
				  "%s[%zu] f16 %g vs %g", t->name, j, c[j], a[j]);
			checked++;
		}
		free(a), free(b), free(c);
	}
	cr_expect_gt(checked, 10000);
	st_close(f32), st_close(b16), st_close(h1), st_close(h2);
}

Test(safetensors, rejects_corrupt_headers)
{
	float d[4] = {1, 2, 3, 4};
	size_t len;
	char err[512];
	/* absurd header length */
	unsigned char *b = mkst("{}", d, 16, &len);
	b[7] = 0x40;
	cr_expect_null(st_parse(b, len, "x.st", err, sizeof err));
	cr_expect(strstr(err, "header length"), "%s", err);
	free(b);
	/* header length just past the end */
	b = mkst("{}", NULL, 0, &len);
	b[0] = 3;
	cr_expect_null(st_parse(b, len, "x.st", err, sizeof err));
	cr_expect(strstr(err, "exceeds the file size"), "%s", err);
	free(b);
	/* too short */
	cr_expect_null(st_parse("abc", 3, "x.st", err, sizeof err));
	cr_expect(strstr(err, "too short"), "%s", err);
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]", d, 16, "bad JSON");
	expect_parse_error("[1,2]", d, 16, "not a JSON object");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,17]}}", d, 16,
			   "outside the data");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}", d, 16,
			   "outside the data");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d, 16, "need 12");
	expect_parse_error("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16, "need 8");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d, 16, "non-negative");
	expect_parse_error(
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}", d,
		16, "overflow");
	expect_parse_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16, "unknown dtype");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
			   d, 16, "overlap");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			   "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
			   d, 16, "bad JSON");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", d, 16, "data_offsets");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1.5]}}", d, 16, "data_offsets");
	expect_parse_error("{\"__metadata__\":{\"k\":1}}", d, 16, "__metadata__");
	expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", d, 16,
			   "dimensions");
}

Test(safetensors, rejects_non_finite_and_other_dtypes)
{
	float d[4] = {1, NAN, 3, 4};
	size_t len;
	unsigned char *b = mkst("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
				"\"i\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[16,16]}}",
				d, 16, &len);
	char err[512];
	st_file *f = st_parse(b, len, "x.st", err, sizeof err);
	cr_assert(f, "%s", err);
	float got[4];
	cr_expect_eq(st_read_f32_err(f, "a", got, 4, err, sizeof err), -1);
	cr_expect(strstr(err, "element 1 is not finite"), "%s", err);
	cr_expect(strstr(err, "byte offset"), "%s", err);
	cr_expect_eq(st_read_f32_err(f, "i", got, 0, err, sizeof err), -1);
	cr_expect(strstr(err, "I32"), "%s", err);
	st_close(f);
	free(b);
	uint16_t h[2] = {0x3c00, 0x7c00}; /* 1.0, +inf in f16 */
	b = mkst("{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", h, 4, &len);
	f = st_parse(b, len, "x.st", err, sizeof err);
	cr_assert(f, "%s", err);
	cr_expect_eq(st_read_f32_err(f, "h", got, 2, err, sizeof err), -1);
	cr_expect(strstr(err, "element 1"), "%s", err);
	st_close(f);
	free(b);
}

/* ---- config.json ---- */

Test(hfconfig, parses_transformers_output)
{
	size_t n;
	char err[512];
	model_config c;
	char *t = slurp(FIX "/qwen2_bias/config.json", &n);
	cr_assert_eq(hfconfig_parse(t, n, "q", &c, err, sizeof err), 0, "%s", err);
	cr_expect_eq(c.arch, ARCH_LLAMA);
	cr_expect_eq(c.qkv_bias, 1);
	cr_expect_eq(c.n_kv_heads, 2);
	cr_expect_eq(c.head_dim, 8);
	cr_expect_eq(c.tied_embeddings, 1);
	cr_expect_eq(c.rope_theta, 1e6f); /* from rope_parameters (transformers 5 spelling) */
	cr_expect_eq(c.norm_eps, 1e-6f);
	cr_expect_eq(c.bos_id, -1);
	cr_expect_eq(c.eos_id, 3); /* first of a list */
	free(t);
	t = slurp(FIX "/gpt2/config.json", &n);
	cr_assert_eq(hfconfig_parse(t, n, "g", &c, err, sizeof err), 0, "%s", err);
	cr_expect_eq(c.arch, ARCH_GPT2);
	cr_expect_eq(c.hidden_dim, 64);
	cr_expect_eq(c.max_seq_len, 32);
	cr_expect_eq(c.tied_embeddings, 1);
	free(t);
	/* gpt2 n_inner null -> 4 * n_embd */
	const char *g =
		"{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_layer\":1,\"n_head\":4,\"vocab_size\":10,\"n_inner\":null}";
	cr_assert_eq(hfconfig_parse(g, strlen(g), "g", &c, err, sizeof err), 0, "%s", err);
	cr_expect_eq(c.hidden_dim, 192);
	cr_expect_eq(c.max_seq_len, 1024);
	/* transformers 4 spelling */
	const char *l = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
			"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":32,\"rope_theta\":500000.0,"
			"\"rope_scaling\":null,\"tie_word_embeddings\":true,\"eos_token_id\":[2,7]}";
	cr_assert_eq(hfconfig_parse(l, strlen(l), "l", &c, err, sizeof err), 0, "%s", err);
	cr_expect_eq(c.rope_theta, 5e5f);
	cr_expect_eq(c.n_kv_heads, 4);
	cr_expect_eq(c.head_dim, 16);
	cr_expect_eq(c.eos_id, 2);
}

static void expect_cfg_error(const char *text, const char *want)
{
	model_config c;
	char err[512] = "";
	cr_expect_eq(hfconfig_parse(text, strlen(text), "config.json", &c, err, sizeof err), -1, "accepted %s", text);
	cr_expect(strstr(err, want) != NULL, "error '%s' does not mention '%s'", err, want);
	cr_expect(strstr(err, "config.json") == err, "%s", err);
}

#define LL                                                                                                             \
	"\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"               \
	"\"num_attention_heads\":4,\"vocab_size\":32"

Test(hfconfig, rejects_unsupported_and_bad)
{
	expect_cfg_error("{" LL ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}}", "rope_scaling");
	expect_cfg_error("{" LL ",\"rope_scaling\":{\"type\":\"linear\"}}", "linear");
	expect_cfg_error("{" LL ",\"rope_parameters\":{\"rope_type\":\"mrope\",\"rope_theta\":1e4}}",
			 "rope_parameters");
	expect_cfg_error("{" LL ",\"rope_parameters\":{\"rope_type\":\"longrope\",\"short_factor\":[1,1]}}",
			 "short_factor");
	expect_cfg_error("{" LL ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2},"
			 "\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":2}}",
			 "disagree");
	expect_cfg_error("{" LL ",\"partial_rotary_factor\":0.75}", "partial_rotary_factor");
	expect_cfg_error("{" LL ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2,\"foo\":1}}", "foo");
	expect_cfg_error("{" LL ",\"attention_bias\":true}", "attention_bias");
	expect_cfg_error("{" LL ",\"mlp_bias\":true}", "mlp_bias");
	expect_cfg_error("{" LL ",\"hidden_act\":\"gelu\"}", "hidden_act");
	expect_cfg_error("{" LL ",\"num_key_value_heads\":3}", "kv heads");
	expect_cfg_error("{" LL ",\"head_dim\":7}", "even");
	expect_cfg_error("{" LL ",\"hidden_size\":64}", "bad JSON"); /* duplicate key */
	expect_cfg_error("{\"model_type\":\"llama\",\"hidden_size\":64}", "intermediate_size");
	expect_cfg_error("{" LL ",\"vocab_size\":-1}", "vocab_size");
	expect_cfg_error(
		"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
		"\"num_attention_heads\":4,\"vocab_size\":\"32\"}",
		"integer");
	expect_cfg_error("{\"model_type\":\"bert\"}", "bert");
	expect_cfg_error(
		"{\"model_type\":\"qwen2\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
		"\"num_attention_heads\":4,\"vocab_size\":32,\"use_sliding_window\":true}",
		"use_sliding_window");
	/* Gemma 2's sliding layers are 0, 2, ...: another pattern is refused */
	expect_cfg_error(
		"{\"model_type\":\"gemma2\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
		"\"num_attention_heads\":4,\"vocab_size\":32,\"sliding_window\":4,"
		"\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
		"alternating");
	expect_cfg_error("{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_layer\":1,\"n_head\":5,\"vocab_size\":10}",
			 "n_head");
	expect_cfg_error("{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_layer\":1,\"n_head\":4,\"vocab_size\":10,"
			 "\"activation_function\":\"relu\"}",
			 "activation_function");
	expect_cfg_error("{\"model_type\":\"gpt2\",\"n_embd\":48,\"n_layer\":1,\"n_head\":4,\"vocab_size\":10,"
			 "\"scale_attn_by_inverse_layer_idx\":true}",
			 "scale_attn_by_inverse_layer_idx");
	expect_cfg_error("{" LL ",\"bos_token_id\":40}", "outside the vocabulary");
	expect_cfg_error("{\"model_type\":", "line 1");
	expect_cfg_error("[]", "not a JSON object");
}

Test(hfconfig, dump_parses_back)
{
	model_config a = {.arch = ARCH_LLAMA,
			  .dim = 96,
			  .hidden_dim = 160,
			  .n_layers = 3,
			  .n_heads = 6,
			  .n_kv_heads = 2,
			  .head_dim = 16,
			  .vocab_size = 300,
			  .max_seq_len = 128,
			  .rope_theta = 10000.f,
			  .norm_eps = 1e-5f,
			  .tied_embeddings = 1,
			  .qkv_bias = 1,
			  .bos_id = -1,
			  .eos_id = 5};
	/* what parsing fills in for a llama-family config */
	a.family = FAM_QWEN2, a.max_pos = a.max_seq_len, a.rope.truncate = 1;
	for (int arch = 0; arch < 5; arch++) {
		model_config b, x = a;
		if (arch == 1) {
			x.arch = ARCH_GPT2, x.n_kv_heads = 6, x.qkv_bias = 0, x.rope_theta = 0, x.family = 0,
			x.max_pos = 0;
			memset(&x.rope, 0, sizeof x.rope);
		} else if (arch == 2) { /* Llama 3.1 RoPE, bf16 */
			x.qkv_bias = 0, x.family = FAM_LLAMA, x.save_dtype = 2;
			x.rope.type = ROPE_LLAMA3, x.rope.factor = 8, x.rope.low_freq_factor = 1;
			x.rope.high_freq_factor = 4, x.rope.original_max = 64;
		} else if (arch == 3) { /* Phi-3 longrope with a window */
			x.qkv_bias = 0, x.family = FAM_PHI3, x.n_heads = 6, x.head_dim = 16,
			x.max_pos = x.max_seq_len = 256;
			x.window = 128, x.rope.type = ROPE_LONGROPE, x.rope.original_max = 32, x.rope.n_factors = 8;
			for (int i = 0; i < 8; i++)
				x.rope.short_factor[i] = 1 + 0.25f * i, x.rope.long_factor[i] = 2 + 0.5f * i;
		} else if (arch == 4) { /* Mistral, yarn with every option */
			x.qkv_bias = 0, x.family = FAM_MISTRAL, x.rope.type = ROPE_YARN, x.rope.factor = 4;
			x.rope.original_max = 32, x.rope.beta_fast = 16, x.rope.beta_slow = 2, x.rope.mscale = 0.7f;
			x.rope.mscale_all_dim = 0.5f, x.rope.attention_factor = 1.25f, x.rope.truncate = 0;
		}
		char *s = hfconfig_dump(&x), err[512];
		cr_assert_eq(hfconfig_parse(s, strlen(s), "dump", &b, err, sizeof err), 0, "%s\n%s", err, s);
		cr_expect(memcmp(&x, &b, sizeof x) == 0, "config changed through config.json:\n%s", s);
		if (!arch)
			cr_expect(strstr(s, "\"rms_norm_eps\": 1e-05") || strstr(s, "\"rms_norm_eps\": 1e-5"), "%s", s);
		free(s);
	}
}

/* ---- llama2.c header ---- */

static int hdr(int32_t d, int32_t h, int32_t l, int32_t nh, int32_t kv, int32_t v, int32_t t, uint64_t size, char *err)
{
	int32_t x[7] = {d, h, l, nh, kv, v, t};
	model_config c;
	int shared;
	return llama2c_parse_header(x, size, "m.bin", &c, &shared, err, 512);
}

Test(llama2c, header_checks)
{
	char err[512];
	/* stories260K's header and size (the asset README gives the shape) */
	uint64_t D = 64, H = 172, L = 5, V = 512, T = 512, hs = 8, kv = 32;
	uint64_t size = 28 + 4 * (V * D + L * (2 * D + 2 * D * D + 2 * D * kv + 3 * D * H) + D + T * hs);
	cr_expect_eq(hdr(64, 172, 5, 8, 4, 512, 512, size, err), 0, "%s", err);
	cr_expect_eq(hdr(64, 172, 5, 8, 4, 512, 512, size - 1, err), -1);
	cr_expect(strstr(err, "truncated"), "%s", err);
	cr_expect_eq(hdr(64, 172, 5, 8, 4, 512, 512, size + 4, err), -1);
	cr_expect(strstr(err, "trailing"), "%s", err);
	/* unshared classifier: negative vocab adds V * D floats */
	cr_expect_eq(hdr(64, 172, 5, 8, 4, -512, 512, size + 4 * V * D, err), 0, "%s", err);
	cr_expect_eq(hdr(64, 172, 5, 8, 4, 512, 512, 10, err), -1);
	cr_expect(strstr(err, "too short"), "%s", err);
	cr_expect_eq(hdr(0x7fffffff, 172, 5, 8, 4, 512, 512, size, err), -1);
	cr_expect(strstr(err, "dim"), "%s", err);
	cr_expect_eq(hdr(64, 172, -5, 8, 4, 512, 512, size, err), -1);
	cr_expect(strstr(err, "n_layers"), "%s", err);
	cr_expect_eq(hdr(64, 172, 5, 8, 3, 512, 512, size, err), -1);
	cr_expect(strstr(err, "heads"), "%s", err);
	cr_expect_eq(hdr(64, 172, 5, 7, 7, 512, 512, size, err), -1);
	cr_expect_eq(hdr(64, 172, 5, 8, 4, (int32_t)0x80000000, 512, size, err), -1);
	cr_expect(strstr(err, "vocab_size"), "%s", err);
}

Test(llama2c, permute_matches_hf_conversion)
{
	/* transformers' convert_llama_weights_to_hf: w.view(nh, hd/2, 2, C)
	 * .transpose(1, 2).reshape(nh*hd, C), i.e. row (h, i, j) <- old row (h, j, i). */
	enum { NH = 3, HD = 6, C = 2 };
	float w[NH * HD * C], ref[NH * HD * C];
	for (int i = 0; i < NH * HD * C; i++)
		w[i] = (float)i;
	for (int h = 0; h < NH; h++)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < HD / 2; j++)
				for (int c = 0; c < C; c++)
					ref[((h * 2 + i) * (HD / 2) + j) * C + c] =
						w[((h * (HD / 2) + j) * 2 + i) * C + c];
	model_permute_llama2c_qk(w, NH, HD, C);
	cr_expect(memcmp(w, ref, sizeof w) == 0);
}

Test(hfconfig, n_params_matches_model)
{
	for (int k = 0; k < 6; k++) {
		model_config c = {.arch = k < 4 ? ARCH_LLAMA : ARCH_GPT2,
				  .dim = 24,
				  .hidden_dim = 40,
				  .n_layers = 2,
				  .n_heads = 4,
				  .n_kv_heads = k == 1 ? 2 : 4,
				  .head_dim = k == 3 ? 8 : 6,
				  .vocab_size = 50,
				  .max_seq_len = 12,
				  .rope_theta = 1e4f,
				  .norm_eps = 1e-5f,
				  .tied_embeddings = k == 2 || k >= 4,
				  .qkv_bias = k == 3,
				  .bos_id = -1,
				  .eos_id = -1};
		model *m = model_new(&c);
		cr_expect_eq(hfconfig_n_params(&c), (uint64_t)model_n_params(m), "config %d: %llu vs model %zu", k,
			     (unsigned long long)hfconfig_n_params(&c), model_n_params(m));
		model_free(m);
	}
}

/* f32 -> f16/bf16 for saving in the dtype a model came in: every f16/bf16
 * value converts back to itself, and other values round to nearest even. */
Test(safetensors, f32_to_half_round_trip_and_rounding)
{
	for (uint32_t h = 0; h < 0x10000; h++) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) /* NaN payloads */
			continue;
		float f = st_f16_to_f32((uint16_t)h);
		cr_expect_eq(st_f32_to_f16(f), (uint16_t)h, "f16 %04x -> %g -> %04x", h, (double)f, st_f32_to_f16(f));
		if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
			continue;
		float b = st_bf16_to_f32((uint16_t)h);
		cr_expect_eq(st_f32_to_bf16(b), (uint16_t)h, "bf16 %04x", h);
	}
	/* halfway cases go to the even neighbour; just above halfway goes up */
	cr_expect_eq(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* 1 + half an ulp -> 1 */
	cr_expect_eq(st_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* 1 + 1.5 ulp -> 1 + 2 ulp */
	cr_expect_eq(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
	cr_expect_eq(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
	cr_expect_eq(st_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
	cr_expect_eq(st_f32_to_f16(65520.0f), 0x7c00); /* rounds past the largest half: inf */
	cr_expect_eq(st_f32_to_f16(0x1p-25f), 0x0000); /* half of the smallest subnormal: even (0) */
	cr_expect_eq(st_f32_to_f16(0x1.8p-25f), 0x0001);
	cr_expect_eq(st_f32_to_f16(-0.0f), 0x8000);
	float nan = NAN;
	cr_expect((st_f32_to_bf16(nan) & 0x7f80) == 0x7f80 && (st_f32_to_bf16(nan) & 0x7f));
}

/* rope_type dynamic: transformers changes θ only for sequences longer than
 * max_position_embeddings, which never reach the model, so the table is
 * plain RoPE's, bit for bit. linear divides every frequency by the factor. */
Test(hfconfig, rope_dynamic_is_plain_linear_divides)
{
	const char *d = "{" LL ",\"max_position_embeddings\":64,\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":4}}";
	const char *l = "{" LL
			",\"max_position_embeddings\":64,\"rope_parameters\":{\"rope_type\":\"linear\",\"factor\":4,"
			"\"rope_theta\":10000}}";
	model_config c, cl;
	char err[512];
	cr_assert_eq(hfconfig_parse(d, strlen(d), "d", &c, err, sizeof err), 0, "%s", err);
	cr_assert_eq(hfconfig_parse(l, strlen(l), "l", &cl, err, sizeof err), 0, "%s", err);
	cr_expect_eq(c.rope.type, ROPE_DYNAMIC);
	cr_expect_eq(cl.rope.type, ROPE_LINEAR);
	int pos[64];
	for (int t = 0; t < 64; t++)
		pos[t] = t;
	const int hd = c.head_dim;
	float *a = malloc(sizeof(float) * 64 * hd), *b = malloc(sizeof(float) * 64 * hd),
	      *e = malloc(sizeof(float) * 64 * hd);
	rope_table_cfg(a, pos, 64, &c);
	rope_table(b, pos, 64, hd, c.rope_theta);
	cr_expect(memcmp(a, b, sizeof(float) * 64 * hd) == 0, "dynamic differs from plain RoPE");
	rope_table_cfg(e, pos, 64, &cl);
	for (int t = 0; t < 64; t += 4) /* position t/4 of plain RoPE is position t of linear-4 */
		for (int i = 0; i < hd; i++)
			cr_expect(fabsf(e[(size_t)t * hd + i] - b[(size_t)(t / 4) * hd + i]) < 1e-6f, "t %d i %d", t,
				  i);
	free(a), free(b), free(e);
}
