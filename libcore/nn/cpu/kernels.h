/* layers.h — transformer layer kernels, forward and backward (llm.c style).
 *
 * Conventions: outputs first, then inputs, then weights, shapes last.
 * Activations are row-major [T, X] with T tokens of a packed batch.
 * Every backward ADDS into its weight gradients and into dinp (callers zero
 * what must start at zero). Matrix products go through OpenBLAS sgemm and
 * are called outside OpenMP parallel regions; the rest is OpenMP loops.
 *
 * These are the CPU backend's kernels (libcore/nn/backend_cpu.c puts them in
 * the backend table of libcore/nn/backend.h, doc/design.md §6); a GPU backend
 * implements the same table, and model.c calls only the table.
 */
#ifndef LBDPO_LAYERS_H
#define LBDPO_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* out[t] = wte[tok[t]] (+ wpe[pos[t]] if wpe). */
void embed_forward(float *out, const uint32_t *tok, const int *pos, const float *wte, const float *wpe, int T, int C);
void embed_backward(float *dwte, float *dwpe, const float *dout, const uint32_t *tok, const int *pos, int T, int C);

/* RMSNorm: out = x / sqrt(mean(x^2) + eps) * (w_off + w); rstd[t] kept for
 * backward, which adds into dinp and dw. w_off 0 for most families; Gemma's
 * gain is 1 + w (w_off 1, its own loops). */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float w_off, float eps, int T, int C);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, float w_off,
		      const float *rstd, int T, int C);

/* LayerNorm: out = (x - mean) * rstd * w + b. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
		       float eps, int T, int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
			const float *mean, const float *rstd, int T, int C);

/* Linear layer out[T,OC] = inp[T,IC] · W + bias.
 * w_in_out == 0: W is [OC, IC] (torch nn.Linear), out = inp · Wᵀ.
 * w_in_out == 1: W is [IC, OC] (HF GPT-2 Conv1D),  out = inp · W.
 * bias may be NULL. */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC,
		    int w_in_out);
/* dinp += dout · W(ᵀ); dw += ...; dbias += Σ_t dout. dinp/dw/dbias may be
 * NULL (dw NULL: a frozen weight, the dW product is skipped). */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int T,
		     int IC, int OC, int w_in_out);

/* RoPE, Hugging Face rotate-half layout, in place on the first n_heads
 * heads of each row (row stride `stride` floats). cs holds per token
 * [cos(pos·f_i), i < hd/2 | sin(pos·f_i), i < hd/2], f_i = θ^(-2i/hd):
 *   x'[i]      = x[i]·cos − x[i+hd/2]·sin
 *   x'[i+hd/2] = x[i+hd/2]·cos + x[i]·sin
 * The backward is the inverse rotation applied to the gradient. */
void rope_table(float *cs, const int *pos, int T, int head_dim, float theta);
void rope_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int stride);
void rope_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int stride);

/* Attention over a packed batch with tree masks. qkv rows are
 * [q (H·hd) | k (KV·hd) | v (KV·hd)]. Query t sees keys in two ranges:
 * [ka[t], kb[t]) and [kc[t], t] (absolute token indices; the first range
 * empty for prompt tokens, the prompt for completion tokens). Sequences
 * occupy [seq_off[s], seq_off[s+1]) and never see each other.
 *   out = softmax(s) · v ;  lse[t,h] = log Σ_j exp(s_tj) kept so the
 *   backward recomputes probabilities instead of storing them.
 * The scores s = scale·q·k, with logit soft-capping s = cap·tanh(scale·q·k / cap)
 * when cap > 0 (Gemma 2). scale 0 means 1/√hd; with scale and cap both 0 the
 * blocked kernels run, otherwise plain loops (one query, one head at a time). */
void attention_forward(float *out, float *lse, const float *qkv, const int *ka, const int *kb, const int *kc, int T,
		       int H, int KV, int hd, float scale, float cap);
/* dqkv += ...; needs out and lse of the forward. Parallel over
 * (sequence, kv head) so that dk/dv of grouped heads never race. */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
			const int *ka, const int *kb, const int *kc, const int *seq_off, int n_seq, int T, int H,
			int KV, int hd, float scale, float cap);

/* SwiGLU: inp rows [g (F) | u (F)], out = silu(g)·u, silu(g) = g·σ(g). */
void swiglu_forward(float *out, const float *inp, int T, int F);
void swiglu_backward(float *dinp, const float *dout, const float *inp, int T, int F);

/* GELU, tanh approximation: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))). */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* out += inp (elementwise), the residual connection. */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void add_inplace(float *acc, const float *x, size_t n);

/* ---- the language-model head and the loss hand-off (moved out of model.c) ----
 * One logit row per token of a packed batch; row r predicts up to two
 * targets (the last prompt row predicts the first token of both
 * completions). kind: 0 none, 1 prompt token, 2 comp0 token, 3 comp1 token;
 * j: index of the target inside its completion; seq: the row's sequence. */
typedef struct {
	int32_t y[2]; /* target token ids, -1 = none */
	int8_t kind[2];
	int32_t j[2];
	int32_t seq;
} logit_row;

/* logits [T,V] = h [T,C] · Wᵀ, W [V,C]. */
void lmhead_forward(float *logits, const float *h, const float *w, int T, int C, int V);
/* The same for one row with a matrix-vector product (decoding). */
void lmhead_forward1(float *logits, const float *h, const float *w, int C, int V);
/* dh [n,C] = dz [n,V] · W (overwritten); dW [V,C] += dzᵀ · h [n,C] (dw NULL:
 * frozen, skipped). */
void lmhead_backward(float *dh, float *dw, const float *dz, const float *h, const float *w, int n, int C, int V);

/* ---- LoRA adapters (libcore/lora.c) ----
 * C [M,N] (row stride ldc) = alpha·op(A)·op(B) + beta·C, row-major, op(X)
 * = Xᵀ when its flag is set: a strided BLAS sgemm, for products on column
 * slices of a fused matmul's output. */
void gemm_strided(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
		  float beta, float *Cm, int ldc);
/* Inverted dropout with a mask that is a function of (key, i) only, so the
 * backward recomputes it: out[i] = x[i]/(1−p) or 0 (out may be x). */
void dropout_mask(float *out, const float *x, size_t n, float p, uint64_t key);

/* Fused log-softmax of the rows with a target:
 *   lse = m + log Σ e^(z−m),  lp[r,k] = z_{y_k} − lse (0 without target k),
 *   ent[r] = lse − Σ p·z (only for prompt rows; log Σ e^(z−m) otherwise). */
void logsoftmax_rows(float *lse, float *lp, float *ent, const float *logits, const logit_row *rows, int T, int V);
/* Per-sequence sums of seq_off[s] ≤ r < seq_off[s+1], serial in row order so
 * the result does not depend on threads: st[s] = {Σ lp of comp0 targets,
 * Σ lp of comp1 targets, Σ lp of prompt targets, Σ ent of prompt rows}. */
void seq_logp_sums(double *st, const float *lp, const float *ent, const logit_row *rows, const int *seq_off, int n_seq);
/* The gradient of Σ_k w_k log p(y_k) with respect to the logits, in place
 * on the n rows idx[i] of logits [·,V]:  dz = Σ_k w_k e_{y_k} − (Σ_k w_k)·p,
 * p = exp(z − lse). w [n,2] (double), y [n,2] (−1 = none). */
void logit_grad_rows(float *logits, const float *lse, const int *idx, const double *w, const int32_t *y, int n, int V);
/* Row moves: dst[i] = src[idx[i]] (gather), dst[idx[i]] = src[i] (scatter),
 * and the in-place compaction x[i] = x[idx[i]] for increasing idx[i] ≥ i. */
void rows_gather(float *dst, const float *src, const int *idx, int n, int C);
void rows_scatter(float *dst, const float *src, const int *idx, int n, int C);
void rows_compact(float *x, const int *idx, int n, int C);
/* Pooled hidden states of each sequence's prompt rows [off, off+P):
 * last[s] = x[off+P−1], mean[s] = (1/P) Σ_i x[off+i] (double accumulation);
 * either output may be NULL. */
void pool_forward(float *last, float *mean, const float *x, const int *seq_off, const int *seq_P, int n_seq, int C);
/* Their backward, adding into dx: per sequence (in order) the rows of
 * d_last[s] when has_last[s], then d_mean[s]/P into every prompt row when
 * has_mean[s]. */
void pool_backward(float *dx, const float *d_last, const float *d_mean, const uint8_t *has_last,
		   const uint8_t *has_mean, const int *seq_off, const int *seq_P, int n_seq, int C);

/* ---- decoding with a KV cache ----
 * Copy the k and v parts of n qkv rows (row stride QKV; k at H·hd, v at
 * (H+KV)·hd) into the caches [·, KV·hd] at rows at..at+n−1. */
void kv_append(float *kc, float *vc, const float *qkv, int at, int n, int H, int KV, int hd, int QKV);
/* Attention of n new tokens over a cache: token i sees cache rows
 * 0 .. len0 + i; out [n,H·hd] = softmax(s)·v, q from qkv rows, the scores
 * as attention_forward's (scale, cap). */
void attention_decode(float *out, const float *qkv, const float *kc, const float *vc, int len0, int n, int H, int KV,
		      int hd, int QKV, float scale, float cap);

/* ---- per-head RMSNorm (Qwen3's q_norm / k_norm; Gemma 3's with w_off 1) ----
 * In place on the first nh heads of each row of x [T, stride] (head h of row
 * t at t·stride + h·hd): x ← x·r·(w_off + w), r = 1/sqrt(mean(x²) + eps)
 * over the head's hd values, w [hd]. xs [T, nh·hd] keeps the input and rstd [T, nh]
 * the r's for the backward (either may be NULL in inference). */
void headnorm_forward(float *x, float *xs, float *rstd, const float *w, float w_off, float eps, int T, int nh, int hd,
		      int stride);
/* Its backward, in place like rope_backward: dx holds dL/d(output) of those
 * columns on entry and dL/d(input) on return; dw [hd] += Σ dy·x·r. */
void headnorm_backward(float *dx, float *dw, const float *xs, const float *w, float w_off, const float *rstd, int T,
		       int nh, int hd, int stride);

/* ---- partial rotary (GPT-NeoX: RoPE on the first rot_dim of each head's
 * head_dim values, the rest passed through) ----
 * As rope_forward/rope_backward with heads head_dim apart and the table
 * cs [T, rot_dim] = [cos | sin] of rot_dim/2 frequencies. */
void rope_part_forward(float *x, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride);
void rope_part_backward(float *dx, const float *cs, int T, int n_heads, int head_dim, int rot_dim, int stride);
/* ---- exact GELU (GPT-NeoX's "gelu"): out = ½x(1 + erf(x/√2)); the backward
 * writes (not adds) dinp, as gelu_backward ---- */
void gelu_exact_forward(float *out, const float *inp, size_t n);
void gelu_exact_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- Gemma (its RMSNorm and attention: rmsnorm_* with w_off 1,
 * attention_* with a scale and a soft-cap) ---- */
/* GeGLU: inp rows [g (F) | u (F)], out = gelu_tanh(g)·u; the backward writes
 * (not adds) dinp [T, 2F], as swiglu_backward. */
void geglu_forward(float *out, const float *inp, int T, int F);
void geglu_backward(float *dinp, const float *dout, const float *inp, int T, int F);
/* Soft-capping in place: x ← cap·tanh(x/cap); its backward dx ← dx·(1 − (y/cap)²)
 * from the capped values y. */
void softcap_forward(float *x, size_t n, float cap);
void softcap_backward(float *dx, const float *y, size_t n, float cap);

#endif
