/* hfconfig.h — Hugging Face config.json <-> model_config.
 *
 * Reads llama-family configs (LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM -> qkv_bias = 1, Qwen3ForCausalLM -> qk_norm,
 * Phi3ForCausalLM -> fused tensors, Gemma2ForCausalLM / Gemma3ForCausalLM ->
 * gemma), gpt2 configs (GPT2LMHeadModel) and GPTNeoXForCausalLM, with RoPE
 * scaling (libcore/nn/rope.c).
 * Features our transformer does not implement (partial rotary outside
 * GPT-NeoX, attention or
 * MLP biases beyond Qwen2's q/k/v, other activations, sliding windows
 * shorter than a sequence, ...) are rejected with a one-line error naming
 * the key, never silently ignored.
 *
 * Writes a config.json that `transformers` (4.x and 5.x) loads as the same
 * model (model_type, architectures, rope in both spellings, torch_dtype of
 * the saved weights).
 */
#ifndef LBDPO_HFCONFIG_H
#define LBDPO_HFCONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "formats/modelcfg.h"

/* Parse config.json text (name used in messages). Returns 0, or -1 with a
 * one-line message in err. */
int hfconfig_parse(const char *text, size_t len, const char *name, model_config *cfg, char *err, size_t errsz);
/* Read and parse a config.json file; dies with a one-line message. */
void hfconfig_load(const char *path, model_config *cfg);
/* Check a config for internal consistency and sane ranges (used by every
 * loader and by lbdpo-init). Returns 0, or -1 with a message in err. */
int hfconfig_check(const model_config *cfg, char *err, size_t errsz);
/* Number of parameters (floats) of a model with this config (the same count
 * as model_n_params(model_new(cfg))); used to reject a config that asks for
 * far more weights than the files hold before allocating them. */
uint64_t hfconfig_n_params(const model_config *cfg);
/* The config.json text (malloc'd, ends with a newline). */
char *hfconfig_dump(const model_config *cfg);
/* A --save-dtype argument: "float32" (f32, fp32), "float16" (f16, fp16) or
 * "bfloat16" (bf16) -> st_dtype 0, 1, 2; -1 for anything else. */
int hfconfig_dtype(const char *name);
/* Make config object o a reward model's (cfg->score_labels): architectures
 * XxxForSequenceClassification, id2label/label2id of one label as
 * transformers writes them, and pad_token_id (when cfg has one). */
void hfconfig_set_score(json_t *o, const model_config *cfg);
/* Write config.json atomically; dies on error. */
void hfconfig_save(const model_config *cfg, const char *path);

#endif
