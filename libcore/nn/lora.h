/* lora.h — LoRA adapters on the linear layers of a frozen model, in PEFT's
 * format (doc/design.md §3, LoRA adapters).
 *
 * An adapter on a linear module W (in → out) adds s·B·(A·x) to its output:
 * A [r, in], B [out, r], s = α/r (rsLoRA: α/√r). Modules are named as PEFT
 * names them (q_proj, ..., GPT-2's c_attn/c_proj/c_fc, GPT-NeoX's
 * query_key_value/dense/dense_h_to_4h/dense_4h_to_h, Phi-3's fused qkv_proj
 * and gate_up_proj); "all-linear" is every linear layer but the output head.
 * Inside the model q/k/v (gate/up) are one fused matmul: each adapter is a
 * "site", a slice [o0, o0 + out) of that matmul's output columns. Phi-3's
 * fused modules cover the whole matmul; GPT-NeoX's B rows are stored per
 * head [q_h; k_h; v_h] in files and kept [Q; K; V] inside.
 *
 * All adapter tensors live in one buffer (lora_A, lora_B of each site in
 * order), mirrored on the model's backend like the model's own weights; the
 * model (model_set_lora) reads and trains them (model.h, "trainable").
 */
#ifndef LBDPO_LORA_H
#define LBDPO_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "libcore/nn/model.h"

typedef struct {
	int r;               /* rank >= 1 */
	double alpha;        /* lora_alpha; <= 0: 2r */
	double dropout;      /* lora_dropout in [0, 1) */
	int rslora;          /* s = α/√r instead of α/r */
	const char *targets; /* comma-separated PEFT module names, or "all-linear"; NULL: all-linear */
} lora_opts;

/* The four matmuls of a block an adapter can sit on. */
typedef enum { LORA_QKV = 0, LORA_O, LORA_FC, LORA_PROJ, LORA_N_KINDS } lora_kind;

typedef struct lora lora;

/* Adapters for m's target modules with PEFT's default initialization: A
 * Kaiming-uniform (a = √5: uniform ±1/√in), B zero, so the adapted model
 * computes exactly what m does. seed draws A. Dies (usage message naming
 * the module) when a target matches no module of m's family. */
lora *lora_new(const model *m, const lora_opts *o, uint64_t seed);
/* A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
 * for m. Dies naming the file on anything lbdpo cannot apply exactly: another
 * peft_type, a bias other than "none", a missing or extra tensor, a shape
 * that is not m's, per-module ranks or alphas, DoRA. */
lora *lora_load(const model *m, const char *dir);
/* Write adapter_config.json and adapter_model.safetensors into dir (which
 * exists), each atomically. base names the base model
 * (base_model_name_or_path). */
void lora_save(const lora *lo, const char *dir, const char *base);
void lora_free(lora *lo);

/* 1 when dir holds an adapter_config.json. */
int lora_is_dir(const char *dir);
/* base_model_name_or_path of the adapter in dir (malloc'd; NULL if none). */
char *lora_base_of(const char *dir);

const lora_opts *lora_settings(const lora *lo);
double lora_scale(const lora *lo);        /* s */
const char *lora_targets(const lora *lo); /* the target list, comma-separated, as saved */
size_t lora_n_params(const lora *lo);
int lora_n_tensors(const lora *lo);
/* Tensor i (PEFT's key name; A [r, in], B [out, r]) in lora_params. */
const model_tensor *lora_tensor_at(const lora *lo, int i);
float *lora_params(lora *lo);     /* host copy */
float *lora_params_dev(lora *lo); /* the backend's copy (== host on the CPU) */
void lora_sync(lora *lo, int to_device);
/* 1 when every B is zero: the adapter changes nothing (PEFT's init). */
int lora_is_identity(const lora *lo);
/* sha256 over the settings and the f32 adapter tensors (hex). */
void lora_fingerprint(const lora *lo, char out[65]);

/* Merge into m's weights: W += s·B·A on every site (m then computes what
 * m + adapter computed; detach the adapter first). */
void lora_merge(const lora *lo, model *m);

/* ---- used by model.c ---- */
/* Dropout RNG: each train-mode forward draws fresh masks from (seed,
 * counter); the counter is part of the trainer state. */
void lora_set_dropout_state(lora *lo, uint64_t seed, uint64_t counter);
void lora_dropout_state(const lora *lo, uint64_t *seed, uint64_t *counter);
/* A forward begins: train != 0 applies dropout, with fresh masks. */
void lora_next_forward(lora *lo, int train);
/* out [T, OC] (row stride OC) += s·(drop(x)·Aᵀ)·Bᵀ on columns [o0, o0+out)
 * of every site of layer l on matmul kind k; x [T, IC]. lo may be NULL
 * (nothing to do). */
void lora_forward(lora *lo, int l, lora_kind k, float *out, const float *x, int T);
/* The backward of lora_forward: given dout [T, OC], add dL/dA, dL/dB into
 * G (laid out as lora_params) and dL/dx into dx [T, IC] (NULL: not
 * needed). */
void lora_backward(lora *lo, int l, lora_kind k, float *dx, float *G, const float *dout, const float *x, int T);
/* Does layer l have an adapter on matmul k? */
int lora_has(const lora *lo, int l, lora_kind k);

#endif
