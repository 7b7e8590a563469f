/* modelcfg.h — what a model is, as its files describe it: architecture,
 * shapes, RoPE scaling and the Hugging Face family details. The config
 * readers (hfconfig.h, llama2c.h) fill it; libcore/nn/model.h builds the
 * transformer from it. It lives in formats/ so the readers need nothing from
 * libcore (the layering rule in doc/design.md §7).
 */
#ifndef LBDPO_MODELCFG_H
#define LBDPO_MODELCFG_H

#include <stdint.h>

/* ARCH_NEOX: GPT-NeoX / Pythia (LayerNorm with bias, RoPE on rot_dim of each
 * head, parallel or sequential residual, GELU, biases everywhere). */
typedef enum { ARCH_LLAMA = 0, ARCH_GPT2 = 1, ARCH_NEOX = 2 } model_arch;
const char *model_arch_name(model_arch a); /* "llama", "gpt2", "gpt_neox" */
int model_arch_parse(const char *s);       /* -1 if unknown */

/* RoPE frequency schemes of transformers' modeling_rope_utils (formulas in
 * libcore/nn/rope.c). All leave the rotate-half layout alone: they change the
 * inverse frequencies f_i and may scale cos/sin by an attention factor. */
typedef enum { ROPE_DEFAULT = 0, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_YARN, ROPE_LLAMA3, ROPE_LONGROPE } rope_kind;
/* Name of a rope_kind as config.json spells it ("default", "llama3", ...);
 * inline beside the enum. */
static inline const char *rope_kind_name(rope_kind k)
{
	static const char *const n[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope"};
	return (unsigned)k < sizeof n / sizeof n[0] ? n[k] : "?";
}
#define ROPE_MAX_FACTORS 512 /* longrope: one factor per frequency, head_dim / 2 */

typedef struct {
	rope_kind type;
	float factor;                            /* linear, dynamic, yarn, llama3, longrope (0 = derived) */
	int original_max;                        /* original_max_position_embeddings (0 = max_pos) */
	float low_freq_factor, high_freq_factor; /* llama3 */
	float beta_fast, beta_slow;              /* yarn (0 = 32, 1) */
	float mscale, mscale_all_dim;            /* yarn (0 = absent) */
	float attention_factor;                  /* yarn, longrope (0 = derived) */
	int truncate;                            /* yarn: floor/ceil the correction range (default 1) */
	int n_factors;                           /* longrope: head_dim / 2 */
	float short_factor[ROPE_MAX_FACTORS], long_factor[ROPE_MAX_FACTORS];
} rope_scaling;

/* Which Hugging Face model class config.json names (saved back the same way).
 * FAM_AUTO: llama, or qwen2 when qkv_bias (configs made by lbdpo-init). */
typedef enum {
	FAM_AUTO = 0,
	FAM_LLAMA,
	FAM_MISTRAL,
	FAM_QWEN2,
	FAM_PHI3,
	FAM_QWEN3,
	FAM_GEMMA2,
	FAM_GEMMA3
} model_family;
/* config.json's model_type of a family ("llama", "mistral", "qwen2", "phi3",
 * "qwen3", "gemma2", "gemma3_text"; "auto" for FAM_AUTO); parse: -1 if unknown. */
const char *model_family_name(model_family f);
int model_family_parse(const char *s);

typedef struct {
	model_arch arch;
	int dim;        /* C: residual width */
	int hidden_dim; /* MLP inner width */
	int n_layers;
	int n_heads;
	int n_kv_heads; /* == n_heads for gpt2 */
	int head_dim;   /* usually dim / n_heads */
	int vocab_size;
	int max_seq_len; /* positions (gpt2: n_positions; llama: max_position_embeddings) */
	float rope_theta;
	float norm_eps;
	int tied_embeddings; /* lm_head shares the token embedding */
	int qkv_bias;        /* llama family with q/k/v biases (Qwen2) */
	int bos_id, eos_id;  /* -1 if unknown */
	/* Hugging Face details that do not change the computation below
	 * max_seq_len but are kept so a saved model is the model it came from. */
	model_family family;
	rope_scaling rope;
	int max_pos;    /* max_position_embeddings as written (0 = max_seq_len) */
	int window;     /* sliding_window W (0 = none): on its layers query position p
			    sees key positions j with p − j < W (model.c masks the ranges) */
	int save_dtype; /* st_dtype weights are saved in: the one they came in (0 = F32) */
	int qk_norm;    /* llama family: RMSNorm of each q and k head (weights [head_dim]) before
			    RoPE (Qwen3's q_norm, k_norm) */
	/* gpt_neox: its qkv weight rows are [Q; K; V] here (attention's layout);
	 * files hold them per head [q_h; k_h; v_h] (model_neox_qkv_permute). */
	int rot_dim;           /* RoPE on the first rot_dim of head_dim (0 = all) */
	int parallel_residual; /* x + attn(ln1(x)) + mlp(ln2(x)) */
	int gelu_exact;        /* MLP activation erf GELU (else the tanh form) */
	/* Gemma 2 (llama arch): RMSNorm gains 1 + w, embedding × √dim, norms
	 * after attention and MLP too, GeGLU (gelu_tanh), score scale
	 * query_pre_attn_scalar^−½, soft-capped attention scores and logits. */
	int gemma;
	float query_scalar;                /* query_pre_attn_scalar (0 = head_dim) */
	float attn_softcap, final_softcap; /* 0 = none */
	/* Gemma 3 (gemma, qk_norm with gains 1 + w): layer l is a full-attention
	 * layer when (l + 1) % sliding_pattern == 0, the others sliding-window
	 * layers whose RoPE base is rope_local_theta (0 = rope_theta for all). */
	int sliding_pattern;
	float rope_local_theta;
	/* A reward model (transformers' XxxForSequenceClassification with
	 * num_labels 1): score_labels = 1, a "score.weight" [1, dim] on the
	 * final-norm hidden state, no language-model head; the score of a
	 * sequence is the one at its last token that is not pad_id (when
	 * has_pad), as transformers finds it. 0: a causal LM. */
	int score_labels;
	int has_pad, pad_id; /* pad_token_id of config.json (read for every model) */
} model_config;

/* The llama-arch family a config is saved as (FAM_AUTO resolved: qwen2 when
 * qkv_bias, else llama). */
model_family model_config_family(const model_config *cfg);
/* config.json's model_type of a config: "gpt2", "gpt_neox", or the llama-arch
 * family's ("llama", "mistral", "qwen2", "qwen3", "gemma2", ...). */
const char *model_type_name(const model_config *cfg);
/* transformers' class of a config: "LlamaForCausalLM", "GPT2LMHeadModel",
 * "Qwen2ForSequenceClassification" (score_labels), ... */
const char *model_class_name(const model_config *cfg);

#endif
