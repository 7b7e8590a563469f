/* model.h — the transformer: configuration, parameters, packed forward and
 * backward for the DPO quantities, KV-cache decoding, load and save.
 *
 * Architectures (doc/design.md §3): llama (RMSNorm, RoPE, SwiGLU, GQA,
 * optional q/k/v bias, tied or separate lm_head; options for Qwen3's q/k
 * norms and Gemma 2/3), gpt2 (LayerNorm, learned positions, GELU-tanh,
 * biases, tied embedding) and gpt_neox (Pythia).
 *
 * Internal weight layout is the Hugging Face one (rotate-half RoPE); the
 * llama2.c loader permutes wq/wk rows from interleaved pairs at load time, so
 * one forward serves both file kinds and saving is always HF-loadable.
 *
 * All parameters live in one buffer (m->params, m->n_params floats); the
 * tensors point into it in the order of model_tensor_at(). Gradients use a
 * buffer of the same layout, so optimizers work on flat arrays.
 */
#ifndef LBDPO_MODEL_H
#define LBDPO_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* ARCH_NEOX: GPT-NeoX / Pythia (LayerNorm with bias, RoPE on rot_dim of each
 * head, parallel or sequential residual, GELU, biases everywhere). */
typedef enum { ARCH_LLAMA = 0, ARCH_GPT2 = 1, ARCH_NEOX = 2 } model_arch;
const char *model_arch_name(model_arch a); /* "llama", "gpt2", "gpt_neox" */
int model_arch_parse(const char *s);       /* -1 if unknown */

/* RoPE frequency schemes of transformers' modeling_rope_utils (formulas in
 * libcore/rope.c). All leave the rotate-half layout alone: they change the
 * inverse frequencies f_i and may scale cos/sin by an attention factor. */
typedef enum { ROPE_DEFAULT = 0, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_YARN, ROPE_LLAMA3, ROPE_LONGROPE } rope_kind;
/* Name of a rope_kind as config.json spells it ("default", "llama3", ...);
 * inline so the config reader (formats/hfconfig.c) links without libcore. */
static inline const char *rope_kind_name(rope_kind k)
{
	static const char *const n[] = {"default", "linear", "dynamic", "yarn", "llama3", "longrope"};
	return (unsigned)k < sizeof n / sizeof n[0] ? n[k] : "?";
}
#define ROPE_MAX_FACTORS 512 /* longrope: one factor per frequency, head_dim / 2 */

typedef struct {
	rope_kind type;
	float factor;                           /* linear, dynamic, yarn, llama3, longrope (0 = derived) */
	int original_max;                       /* original_max_position_embeddings (0 = max_pos) */
	float low_freq_factor, high_freq_factor; /* llama3 */
	float beta_fast, beta_slow;             /* yarn (0 = 32, 1) */
	float mscale, mscale_all_dim;           /* yarn (0 = absent) */
	float attention_factor;                 /* yarn, longrope (0 = derived) */
	int truncate;                           /* yarn: floor/ceil the correction range (default 1) */
	int n_factors;                          /* longrope: head_dim / 2 */
	float short_factor[ROPE_MAX_FACTORS], long_factor[ROPE_MAX_FACTORS];
} rope_scaling;

/* Which Hugging Face model class config.json names (saved back the same way).
 * FAM_AUTO: llama, or qwen2 when qkv_bias (configs made by lbdpo-init). */
typedef enum { FAM_AUTO = 0, FAM_LLAMA, FAM_MISTRAL, FAM_QWEN2, FAM_PHI3, FAM_QWEN3, FAM_GEMMA2, FAM_GEMMA3 } model_family;

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
	int max_pos;     /* max_position_embeddings as written (0 = max_seq_len) */
	int window;      /* sliding_window W (0 = none): on its layers query position p
			    sees key positions j with p − j < W (model.c masks the ranges) */
	int save_dtype;  /* st_dtype weights are saved in: the one they came in (0 = F32) */
	int qk_norm;     /* llama family: RMSNorm of each q and k head (weights [head_dim]) before
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
	float query_scalar;             /* query_pre_attn_scalar (0 = head_dim) */
	float attn_softcap, final_softcap; /* 0 = none */
	/* Gemma 3 (gemma, qk_norm with gains 1 + w): layer l is a full-attention
	 * layer when (l + 1) % sliding_pattern == 0, the others sliding-window
	 * layers whose RoPE base is rope_local_theta (0 = rope_theta for all). */
	int sliding_pattern;
	float rope_local_theta;
} model_config;

/* One named tensor inside m->params (HF parameter name, e.g.
 * "model.layers.0.self_attn.q_proj.weight"). */
typedef struct {
	const char *name;
	int ndim;
	int64_t shape[2];
	size_t offset; /* in floats from m->params */
	size_t numel;
} model_tensor;

typedef struct model model; /* opaque; fields in model.c */

/* ---- lifetime, files ---- */
model *model_new(const model_config *cfg);                 /* zero weights */
void model_init_random(model *m, uint64_t seed, float std); /* normal(0,std), norms = 1 */
/* An HF directory (config.json + model.safetensors or sharded
 * model.safetensors.index.json; f32/f16/bf16) or a llama2.c .bin file.
 * Dies with a one-line message naming the file on any problem. */
model *model_load(const char *path);
/* Write config.json + model.safetensors into dir (created if needed);
 * each file written to a temporary name and renamed. */
void model_save_hf(const model *m, const char *dir);
/* Same with the weights rounded to dtype (st_dtype: 0 F32, 1 F16, 2 BF16;
 * -1 = the dtype the model was loaded in, cfg.save_dtype). model_save_hf
 * is model_save_hf_dtype(m, dir, -1). */
void model_save_hf_dtype(const model *m, const char *dir, int dtype);
/* Make dst a model directory that stands alone: copy the tokenizer files
 * (tokenizer.json / tokenizer.model, tokenizer_config.json with its chat
 * template, special_tokens_map.json, ...) and generation_config.json that
 * exist in src (a model directory or checkpoint; NULL or a file: none), and
 * write a generation_config.json from bos/eos when src has none. Each file
 * is written atomically. Returns the number of files copied. */
int model_copy_assets(const model *m, const char *src, const char *dst);
void model_free(model *m);

const model_config *model_cfg(const model *m);
float *model_params(model *m);
size_t model_n_params(const model *m);
int model_n_tensors(const model *m);
const model_tensor *model_tensor_at(const model *m, int i);
/* sha256 over the config's canonical text and the f32 weights (hex). */
void model_fingerprint(const model *m, char out[65]);
/* llama2.c stores wq/wk rows with RoPE pairs interleaved (2j, 2j+1); the
 * internal (HF) layout is rotate-half (j, hd/2 + j). Permute the rows of one
 * such weight [n_heads·head_dim, C] in place: per head, new row j < hd/2 is
 * old row 2j and new row hd/2 + j is old row 2j + 1. Used by every llama2.c
 * reader (and by its writer's inverse, should one exist). */
void model_permute_llama2c_qk(float *w, int n_heads, int head_dim, int C);
/* GPT-NeoX's query_key_value rows [3·H·hd, cols] (cols = C for the weight,
 * 1 for the bias): per head [q_h; k_h; v_h] in files, [Q; K; V] inside.
 * to_hf = 0 converts file → internal, 1 internal → file. */
void model_neox_qkv_permute(float *w, int n_heads, int head_dim, int cols, int to_hf);

/* ---- packed scoring and its backward ----
 * A batch is a list of sequences concatenated along the token axis, each
 * with its own causal mask (no padding). A sequence with two completions is
 * laid out as a tree, [prompt | chosen | rejected], where each completion
 * attends to the prompt and to itself only: the prompt is computed once per
 * pair (prefix sharing). */
typedef struct {
	const uint32_t *prompt; /* [n_prompt] >= 1 token (BOS included if used) */
	int n_prompt;
	const uint32_t *comp[2]; /* completions; comp[1] unused if n_comp == 1 */
	int n_comp_tok[2];       /* >= 1 each */
	int n_comp;              /* 1 or 2 */
} model_seq;

typedef struct {
	/* Sum over completion tokens of log p(tok | everything before it). */
	double logp[2];
	int n[2];
	/* Mean over prompt tokens t = 1..P-1 of log p(x_t | x_<t); 0 if P == 1.
	 * PPL(x) = exp(-prompt_mean_logp). */
	double prompt_mean_logp;
	/* Mean next-token entropy (nats) of the distributions at prompt
	 * positions 0..P-2 (those that predict prompt tokens); 0 if P == 1. */
	double prompt_entropy;
	/* Caller-owned buffers, each may be NULL: */
	float *h_last;      /* [C] final-norm hidden state at the last prompt token */
	float *h_mean;      /* [C] mean of final-norm hidden states over prompt tokens */
	float *tok_logp[2]; /* [n[k]] per-token completion log-probs */
} model_scores;

/* Gradients of a scalar loss on the quantities above; the backward
 * accumulates dL/dparams into grads[n_params]. */
typedef struct {
	double d_logp[2];
	double d_prompt_mean_logp;
	const float *d_h_last; /* [C] or NULL */
	const float *d_h_mean; /* [C] or NULL */
} model_seq_grad;

typedef struct model_ws model_ws; /* activations, grown once per batch shape */
model_ws *model_ws_new(const model *m);
void model_ws_free(model_ws *ws);
/* Score n sequences. train != 0 keeps what model_backward needs. */
void model_forward(const model *m, model_ws *ws, const model_seq *seqs, int n, model_scores *out,
		   int train);
/* Backward of the last train-mode forward on ws; g has one entry per seq
 * (host memory). Adds into grads [n_params], backend memory laid out as
 * the parameters (caller zeroes it). Runs once per forward: it reuses the
 * saved logits in place (a second call dies). */
void model_backward(const model *m, model_ws *ws, const model_seq_grad *g, float *grads);
/* Bytes currently held by ws (for memory reports). */
size_t model_ws_bytes(const model_ws *ws);

/* ---- decoding with a KV cache (lbdpo-sample) ---- */
typedef struct model_kv model_kv;
model_kv *model_kv_new(const model *m, int max_len);
void model_kv_reset(model_kv *kv);
int model_kv_len(const model_kv *kv);
/* Append n tokens at positions len..len+n-1 and write the logits [vocab] of
 * the last one into logits. Dies if max_len would be exceeded. */
void model_kv_feed(const model *m, model_kv *kv, const uint32_t *toks, int n, float *logits);
void model_kv_free(model_kv *kv);

/* ---- the backend's copy of the weights (libcore/backend.h) ----
 * model_params() is the host copy that loaders, savers and fingerprints
 * use; forward and backward read model_params_dev(), which is the same
 * memory on the CPU backend. After writing one side, sync the other:
 * to_device != 0 copies host → device, 0 device → host (no-ops on the CPU). */
struct lb_backend;
const struct lb_backend *model_backend(const model *m);
float *model_params_dev(model *m);
void model_sync(model *m, int to_device);

/* Threads for OpenMP and OpenBLAS (0 = library default). */
void lbdpo_set_threads(int n);

#endif
