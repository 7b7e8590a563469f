/* test_model_params.c — the parameter table: Hugging Face names, shapes and
 * parameter counts of published models (numbers from their model cards /
 * transformers' num_parameters()), fingerprints, the llama2.c q/k permutation. */
#include <criterion/criterion.h>

#include "tests/unit/expect_die.h"
#include "tests/unit/model_testlib.h"

static const model_tensor *find(const model *m, const char *name)
{
	for (int i = 0; i < model_n_tensors(m); i++)
		if (!strcmp(model_tensor_at(m, i)->name, name))
			return model_tensor_at(m, i);
	return NULL;
}

static void expect_shape(const model *m, const char *name, int64_t d0, int64_t d1)
{
	const model_tensor *t = find(m, name);
	cr_assert(t, "no tensor %s", name);
	cr_expect(t->shape[0] == d0 && t->shape[1] == d1, "%s: shape [%lld,%lld], want [%lld,%lld]", name,
		  (long long)t->shape[0], (long long)t->shape[1], (long long)d0, (long long)d1);
}

/* Tensors tile the buffer in order, without gaps or overlap. */
static void expect_tiled(const model *m)
{
	size_t off = 0;
	for (int i = 0; i < model_n_tensors(m); i++) {
		const model_tensor *t = model_tensor_at(m, i);
		cr_expect_eq(t->offset, off, "%s", t->name);
		cr_expect_eq(t->numel, (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1));
		off += t->numel;
	}
	cr_expect_eq(off, model_n_params(m));
	cr_expect_null(model_tensor_at(m, model_n_tensors(m)));
}

Test(model_params, gpt2_124M)
{
	model_config c = {.arch = ARCH_GPT2,
			  .dim = 768,
			  .hidden_dim = 3072,
			  .n_layers = 12,
			  .n_heads = 12,
			  .n_kv_heads = 12,
			  .head_dim = 64,
			  .vocab_size = 50257,
			  .max_seq_len = 1024,
			  .norm_eps = 1e-5f,
			  .tied_embeddings = 1};
	model *m = model_new(&c);
	cr_expect_eq(model_n_params(m), 124439808UL); /* GPT2LMHeadModel("gpt2").num_parameters() */
	expect_shape(m, "transformer.wte.weight", 50257, 768);
	expect_shape(m, "transformer.wpe.weight", 1024, 768);
	expect_shape(m, "transformer.h.11.attn.c_attn.weight", 768, 2304);
	expect_shape(m, "transformer.h.0.attn.c_attn.bias", 2304, 0);
	expect_shape(m, "transformer.h.3.mlp.c_fc.weight", 768, 3072);
	expect_shape(m, "transformer.h.3.mlp.c_proj.weight", 3072, 768);
	expect_shape(m, "transformer.ln_f.bias", 768, 0);
	cr_expect_null(find(m, "lm_head.weight"));
	expect_tiled(m);
	model_free(m);
}

Test(model_params, tinyllama_1_1B_untied_gqa)
{
	model_config c = {.arch = ARCH_LLAMA,
			  .dim = 2048,
			  .hidden_dim = 5632,
			  .n_layers = 22,
			  .n_heads = 32,
			  .n_kv_heads = 4,
			  .head_dim = 64,
			  .vocab_size = 32000,
			  .max_seq_len = 2048,
			  .rope_theta = 10000,
			  .norm_eps = 1e-5f,
			  .tied_embeddings = 0};
	model *m = model_new(&c);                      /* calloc'd: pages are not touched */
	cr_expect_eq(model_n_params(m), 1100048384UL); /* TinyLlama-1.1B */
	expect_shape(m, "model.layers.21.self_attn.k_proj.weight", 256, 2048);
	expect_shape(m, "model.layers.0.self_attn.o_proj.weight", 2048, 2048);
	expect_shape(m, "model.layers.0.mlp.down_proj.weight", 2048, 5632);
	expect_shape(m, "lm_head.weight", 32000, 2048);
	expect_tiled(m);
	model_free(m);
}

Test(model_params, qwen2_0_5B_qkv_bias_tied)
{
	model_config c = {.arch = ARCH_LLAMA,
			  .dim = 896,
			  .hidden_dim = 4864,
			  .n_layers = 24,
			  .n_heads = 14,
			  .n_kv_heads = 2,
			  .head_dim = 64,
			  .vocab_size = 151936,
			  .max_seq_len = 32768,
			  .rope_theta = 1000000,
			  .norm_eps = 1e-6f,
			  .tied_embeddings = 1,
			  .qkv_bias = 1};
	model *m = model_new(&c);
	cr_expect_eq(model_n_params(m), 494032768UL); /* Qwen2-0.5B */
	expect_shape(m, "model.layers.5.self_attn.q_proj.bias", 896, 0);
	expect_shape(m, "model.layers.5.self_attn.v_proj.bias", 128, 0);
	cr_expect_null(find(m, "model.layers.5.self_attn.o_proj.bias"));
	cr_expect_null(find(m, "lm_head.weight"));
	expect_tiled(m);
	model_free(m);
}

Test(model_params, rejects_bad_config)
{
	model_config c = tl_cfg(ARCH_LLAMA, 3, 0, 1); /* 4 heads, 3 kv heads */
	lbdpo_quiet = 1;
	EXPECT_DIE(1, "kv heads 3 must divide heads 4", model_new(&c));
	/* the limits are config.json's (hfconfig_check), not a second, wider set */
	c = tl_cfg(ARCH_LLAMA, 2, 0, 1);
	c.n_layers = 2000;
	EXPECT_DIE(1, "layers 2000 out of range [1, 1024]", model_new(&c));
}

Test(model_params, fingerprint)
{
	model_config c = tl_cfg(ARCH_LLAMA, 2, 0, 1);
	model *a = tl_model(&c, 1), *b = tl_model(&c, 1);
	char fa[65], fb[65];
	model_fingerprint(a, fa);
	model_fingerprint(b, fb);
	cr_expect_str_eq(fa, fb);
	cr_expect_eq(strlen(fa), 64);
	model_params(b)[17] += 1e-6f;
	model_fingerprint(b, fb);
	cr_expect_str_neq(fa, fb);
	model_config c2 = c;
	c2.rope_theta = 500000;
	model *d = model_new(&c2);
	memcpy(model_params(d), model_params(a), sizeof(float) * model_n_params(a));
	model_fingerprint(d, fb);
	cr_expect_str_neq(fa, fb, "rope_theta changes the function, so the fingerprint");
	model_free(a), model_free(b), model_free(d);
}

/* llama2.c pairs (2j, 2j+1) of each head become rows (j, hd/2 + j). */
Test(model_params, permute_llama2c_qk)
{
	const int H = 2, hd = 6, C = 3;
	float w[2 * 6 * 3];
	for (int i = 0; i < H * hd * C; i++)
		w[i] = (float)i;
	model_permute_llama2c_qk(w, H, hd, C);
	for (int h = 0; h < H; h++)
		for (int j = 0; j < hd / 2; j++)
			for (int c = 0; c < C; c++) {
				cr_expect_eq(w[(h * hd + j) * C + c], (float)((h * hd + 2 * j) * C + c));
				cr_expect_eq(w[(h * hd + hd / 2 + j) * C + c], (float)((h * hd + 2 * j + 1) * C + c));
			}
}
