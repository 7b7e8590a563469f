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
 *
 * Frozen weights (a LoRA base, every program that only scores or samples)
 * may instead stay 16-bit: model_load_frozen keeps a bf16 (or f16) file's
 * values as they are, 2 bytes each in the same layout (model_params16),
 * and widens them exactly to f32 where the products need them: block by
 * block, and the language-model head before its products, into one
 * staging buffer the size of the larger of the head and the largest block;
 * the embedding's rows of the tokens only. Every result is bit-identical
 * to the same file in f32 storage. The staging buffer is the model's, so
 * one 16-bit model runs one forward, backward or decode at a time (no
 * caller runs two at once; give each thread its own model if one must).
 */
#ifndef LBDPO_MODEL_H
#define LBDPO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "formats/modelcfg.h"

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
model *model_new(const model_config *cfg); /* zero weights */
/* Zero weights stored in 16 bits (st_dtype ST_F16 or ST_BF16, as in
 * formats/safetensors.h); model_init_random rounds its numbers to them.
 * Such a model is frozen: no full training (model_trainable dies). */
model *model_new16(const model_config *cfg, int st_dtype);
void model_init_random(model *m, uint64_t seed, float std); /* normal(0,std), norms = 1 */
/* Die unless m (loaded from path) is a causal LM: a reward model has no
 * language-model head, so no log-probs and no samples (lbdpo-reward scores
 * with it). */
void model_need_lm(const model *m, const char *path);
/* A reward model made from the causal LM lm: the same weights (its
 * language-model head dropped), a score head [1, dim] ~ normal(0, std),
 * pad_token_id the LM's, else its eos (transformers needs one to find each
 * sequence's last token). */
model *model_reward_from(model *lm, uint64_t seed, float std);
/* An HF directory (config.json + model.safetensors or sharded
 * model.safetensors.index.json; f32/f16/bf16) or a llama2.c .bin file.
 * Dies with a one-line message naming the file on any problem. */
model *model_load(const char *path);
/* model_load for weights that stay frozen (scoring, sampling, a LoRA base):
 * when every tensor of the files is bf16 (or every one f16) the model keeps
 * them in 16 bits (model_store16), half the memory of f32; any other file
 * loads as model_load does. Peak memory while loading is the 16-bit size:
 * the file's pages are let go tensor by tensor. */
model *model_load_frozen(const char *path);
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
/* Replace dst/config.json (written by model_save_hf_dtype) by src's own
 * config.json, the one m was loaded from: every key in its order with its
 * value, so what lbdpo does not model (eos_token_id lists, layer_types,
 * pad_token_id, initializer_range, rope_parameters as spelled...) survives.
 * Only what the save changes is changed: torch_dtype (and dtype) name the
 * dtype the weights were saved in (dtype as for model_save_hf_dtype).
 * Returns 0 (dst keeps the generated config.json) when src is not a
 * directory with a config.json. */
int model_carry_config(const model *m, const char *src, const char *dst, int dtype);

/* 1 when name is one of the files model_copy_assets copies (tokenizer
 * files, chat template, generation_config.json). */
int model_asset_name(const char *name);
void model_free(model *m);

const model_config *model_cfg(const model *m);
/* The f32 weights; dies on a 16-bit model (read those with
 * model_read_params, model_params16). */
float *model_params(model *m);
/* 16-bit storage: ST_F16 or ST_BF16; 0 for f32 storage. */
int model_store16(const model *m);
/* The 16-bit weights [n_params] (f16/bf16 bits), NULL with f32 storage;
 * after writing them, model_sync(m, 1). */
uint16_t *model_params16(model *m);
/* dst[n] = weights off..off+n-1 as f32 (widened from 16 bits: exact). */
void model_read_params(const model *m, size_t off, size_t n, float *dst);
/* Add the weights, as f32 little-endian, to a sha256 (base/util.h). */
struct sha256_ctx;
void model_hash_weights(const model *m, struct sha256_ctx *h);
/* Host bytes the weights take: 4 per parameter in f32 storage; 2 per
 * parameter in 16 bits plus the f32 staging (the head or the largest
 * block, and the small tensors outside the blocks). */
size_t model_weight_bytes(const model *m);
size_t model_n_params(const model *m);
int model_n_tensors(const model *m);
const model_tensor *model_tensor_at(const model *m, int i);
/* sha256 over the config's canonical text and the f32 weights (hex); with
 * an adapter attached that changes the function (some B != 0), over the
 * adapter's fingerprint too. */
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
void model_neox_qkv_permute16(uint16_t *w, int n_heads, int head_dim, int cols, int to_hf);

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
	/* A reward model (model_config.score_labels): the score of prompt +
	 * completion k (at its last non-pad token). It computes no logits:
	 * logp, prompt_mean_logp, prompt_entropy are 0, tok_logp is not
	 * written. */
	double reward[2];
	/* A reward model used as a PPO value model: the score at every position
	 * that predicts a token of completion 0 (the last prompt token and the
	 * completion's tokens but its last), [n_comp_tok[0]]; may be NULL. */
	float *tok_value;
} model_scores;

/* Gradients of a scalar loss on the quantities above; the backward
 * accumulates dL/dparams into grads[n_params]. */
typedef struct {
	double d_logp[2];
	double d_prompt_mean_logp;
	const float *d_h_last; /* [C] or NULL */
	const float *d_h_mean; /* [C] or NULL */
	double d_reward[2];    /* reward model: dL/dreward[k] (d_logp, d_prompt_mean_logp must be 0) */
	/* per-token weights (PPO, GRPO, RLOO): dL/d(log p of token j of
	 * completion k) [n_comp_tok[k]], used instead of d_logp[k] when set */
	const double *d_tok_logp[2];
	const float *d_tok_value; /* value model: dL/dtok_value[j] [n_comp_tok[0]], or NULL */
} model_seq_grad;

typedef struct model_ws model_ws; /* activations, grown once per batch shape */
model_ws *model_ws_new(const model *m);
void model_ws_free(model_ws *ws);
/* Score n sequences. train != 0 keeps what model_backward needs. */
void model_forward(const model *m, model_ws *ws, const model_seq *seqs, int n, model_scores *out, int train);
/* Backward of the last train-mode forward on ws; g has one entry per seq
 * (host memory). Adds into grads [model_n_trainable], backend memory laid
 * out as the trainable parameters (caller zeroes it). Runs once per forward: it reuses the
 * saved logits in place (a second call dies). */
void model_backward(const model *m, model_ws *ws, const model_seq_grad *g, float *grads);
/* Gradient checkpointing (lbdpo-step --gradient-checkpointing): a
 * train-mode forward keeps only each block's input, and model_backward
 * recomputes each block's activations from it before its backward, so
 * activations cost one block's set plus one [T, C] row block per layer, at
 * the price of a second forward of every block. The results are bit-identical
 * to the plain path (the same kernels on the same inputs). Set before a
 * forward. */
void model_ws_set_checkpointing(model_ws *ws, int on);
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

/* ---- the backend's copy of the weights (libcore/nn/backend.h) ----
 * model_params() is the host copy that loaders, savers and fingerprints
 * use; forward and backward read model_params_dev(), which is the same
 * memory on the CPU backend. After writing one side, sync the other:
 * to_device != 0 copies host → device, 0 device → host (no-ops on the CPU). */
struct lb_backend;
const struct lb_backend *model_backend(const model *m);
float *model_params_dev(model *m);
void model_sync(model *m, int to_device);

/* ---- LoRA adapters (libcore/lora.h) and what an optimizer trains ----
 * With an adapter attached the model computes base + adapter, and the base
 * is frozen: model_backward's grads are the adapter's (laid out as
 * lora_params), no gradient of a base weight is formed. The adapter stays
 * the caller's (NULL detaches). model_sync syncs the adapter too. */
struct lora;
void model_set_lora(model *m, struct lora *lo);
struct lora *model_lora(const model *m);
/* The trainable parameters: every tensor of the model, or the adapter's. */
size_t model_n_trainable(const model *m);
int model_n_trainable_tensors(const model *m);
const model_tensor *model_trainable_tensor_at(const model *m, int i);
float *model_trainable(model *m);     /* host */
float *model_trainable_dev(model *m); /* backend */
/* Layer l's matmul kind (lora_kind: 0 qkv, 1 attention output, 2 fc, 3
 * proj): its weight's offset in the parameters, output width, and whether
 * it is stored [in, out] (GPT-2's Conv1D). */
void model_matmul_weight(const model *m, int l, int kind, size_t *off, int *out_dim, int *w_in_out);

/* Threads for OpenMP and OpenBLAS (0 = library default). */
void lbdpo_set_threads(int n);

#endif
